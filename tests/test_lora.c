// LoRA on the decoder (fp64 backend): adapter gradients against finite differences (with dropout too),
// merged weights equal the unmerged forward, disabled adapters give the base model back.
#include <stdlib.h>
#include <string.h>

#include "../model/llava.h"
#include "../model/lora.h"
#include "../model/safetensors.h"
#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"

typedef struct {
    Llava m;
    Lora lo;
    LlavaActs a;
    LlavaBatch b;
    int *ids, *labels, *lengths, *img;
    float *pixels;
    double w[8];  // per-row weights of the loss: L = sum_b w_b logp_b
} LoraRig;

static void rig_init(LoraRig *r, float dropout, int attach, ActsMode mode) {
    memset(r, 0, sizeof(*r));
    llava_load(&r->m, &backend_cpu64, GQA, (LlavaTrainable){0, 0, 0});
    SafeTensors *ex = st_open_or_die(GQA "/expected.safetensors");
    const STTensor *tid = st_find(ex, "input_ids"), *tpx = st_find(ex, "pixel_values");
    int B = (int)tid->shape[0], T = (int)tid->shape[1], NI = (int)tpx->shape[0];
    r->ids = xmalloc(sizeof(int) * B * T); r->labels = xmalloc(sizeof(int) * B * T);
    r->lengths = xmalloc(sizeof(int) * B); r->img = xmalloc(sizeof(int) * B);
    memcpy(r->ids, tid->data, sizeof(int) * B * T);
    memcpy(r->labels, st_find(ex, "labels")->data, sizeof(int) * B * T);
    memcpy(r->lengths, st_find(ex, "lengths")->data, sizeof(int) * B);
    memcpy(r->img, st_find(ex, "image_of_row")->data, sizeof(int) * B);
    r->pixels = xmalloc(sizeof(float) * tpx->numel);
    st_to_f32(tpx, r->pixels);
    st_close(ex);
    r->b = (LlavaBatch){.B = B, .T = T, .ids = r->ids, .labels = r->labels, .lengths = r->lengths, .image_of_row = r->img,
                        .n_images = NI, .pixels = r->pixels};
    for (int i = 0; i < B; i++) r->w[i] = 0.3 + 0.2 * i;
    if (attach) {
        LoraConfig cfg = {3, 6.0f, dropout, lora_targets_parse("all")};
        lora_init(&r->lo, &r->m.lm, &cfg, 5);
        // nonzero B so that A's gradient is not zero either
        for (int i = 0; i < r->lo.ps.n; i++) {
            const ParamInfo *p = &r->lo.ps.info[i];
            if (!strstr(p->name, "lora_B")) continue;
            double *x = (double *)r->lo.ps.data + p->offset;
            for (size_t k = 0; k < p->numel; k++) x[k] = 0.05 * sin(1.3 * k + i);
        }
        r->lo.training = dropout > 0;
        r->lo.seed = 99;
        r->m.lm.lora = &r->lo;
    }
    llava_acts_init(&r->a, &r->m, B, T, NI, 0, mode);
}

static double rig_loss(LoraRig *r) {
    llava_forward(&r->m, &r->a, &r->b);
    double L = 0;
    for (int i = 0; i < r->b.B; i++) L += r->w[i] * r->a.row_logp[i];
    return L;
}

static void rig_free(LoraRig *r, int attached) {
    llava_acts_free(&r->a);
    if (attached) lora_free(&r->lo);
    llava_free(&r->m);
    free(r->ids); free(r->labels); free(r->lengths); free(r->img); free(r->pixels);
}

static void check_lora_fd(float dropout, ActsMode mode) {
    LoraRig r;
    rig_init(&r, dropout, 1, mode);
    rig_loss(&r);
    double *dlogp = xcalloc(r.a.M, sizeof(double));
    for (int i = 0; i < r.a.M; i++) dlogp[i] = r.a.out_target[i] >= 0 ? r.w[r.a.out_row[i]] : 0;
    llava_backward(&r.m, &r.a, dlogp);
    double *x = r.lo.ps.data, *g = r.lo.ps.grad, worst = 0;
    size_t n = r.lo.ps.numel, step = n / 300 + 1;
    for (size_t i = 0; i < n; i += step) {
        double x0 = x[i], h = 1e-5;  // the loss sums ~100 log-probs: a wider step keeps rounding noise down
        x[i] = x0 + h;
        double lp = rig_loss(&r);
        x[i] = x0 - h;
        double lm = rig_loss(&r);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h), e = fabs(fd - g[i]) / fmax(1e-3, fmax(fabs(fd), fabs(g[i])));
        if (e > worst) worst = e;
    }
    EXPECTF(worst < 1e-5, "LoRA gradients (dropout %.2f) differ from finite differences by %.3g", dropout, worst);
    free(dlogp);
    rig_free(&r, 1);
}

TEST(lora_gradients_fd) { check_lora_fd(0, ACTS_BACKWARD); }
TEST(lora_gradients_fd_with_dropout) { check_lora_fd(0.3f, ACTS_BACKWARD); }
// recomputed layers draw the same dropout masks again (the mask is a function of the seed and the adapter)
TEST(lora_gradients_fd_with_dropout_recompute) { check_lora_fd(0.3f, ACTS_BACKWARD_RECOMPUTE); }

TEST(lora_merge_equals_unmerged_and_disable_is_base) {
    LoraRig base, r;
    rig_init(&base, 0, 0, ACTS_BACKWARD);
    rig_init(&r, 0, 1, ACTS_BACKWARD);
    double lb = rig_loss(&base);
    double with = rig_loss(&r);
    double *rows = xmalloc(sizeof(double) * r.b.B);
    memcpy(rows, r.a.row_logp, sizeof(double) * r.b.B);
    EXPECTF(fabs(with - lb) > 1e-6, "the adapters should change the output");
    r.lo.enabled = 0;  // the reference: adapters off
    EXPECT_NEAR(rig_loss(&r), lb, 1e-12);
    r.lo.enabled = 1;
    lora_merge(&r.lo, &r.m.lm);  // fold into the weights, then run without adapters
    r.m.lm.lora = NULL;
    LlavaActs plain;
    llava_acts_init(&plain, &r.m, r.b.B, r.b.T, r.b.n_images, 0, ACTS_INFERENCE);
    llava_forward(&r.m, &plain, &r.b);
    for (int i = 0; i < r.b.B; i++) EXPECT_NEAR(plain.row_logp[i], rows[i], 1e-10);
    llava_acts_free(&plain);
    r.m.lm.lora = &r.lo;
    free(rows);
    rig_free(&r, 1);
    rig_free(&base, 0);
}

TEST(lora_config_errors) {
    char *out, *err;
    EXPECT(test_run_vlm("train --recipe dpo --model " GQA " --data tests/fixtures/train/dpo.jsonl --out /tmp/x --lora-targets q,nope",
                        &out, &err) != 0);
    EXPECTF(strstr(err, "LoRA target 'nope'") != NULL, "message: %s", err);
    free(out); free(err);
}

static int read_losses(const char *log, double *out, int max) {
    char *text = read_file(log, NULL);
    int n = 0;
    for (char *p = text; n < max && (p = strstr(p, "\"loss\":")); p += 7) out[n++] = atof(p + 7);
    free(text);
    return n;
}

// vlm train with LoRA: learns, resumes bit-exactly with dropout on, the online reference (adapters off)
// equals the cached one, and the checkpoint loads with the adapters merged (and exports that way).
TEST(lora_training) {
    char args[2048], *out, *err, *dir = path_join(test_tmpdir(), "lora_train");
    const char *common = "--recipe dpo --model " GQA " --data tests/fixtures/train/dpo.jsonl --steps 6 --batch 4 --lr 3e-3 "
                         "--warmup-steps 0 --lora-r 4 --lora-dropout 0.1 --device cpu --quiet";
    // --train none: only the adapters learn, so the reference (adapters off) is exactly the base model
    const char *runs[4][2] = {{"a", "--train none"}, {"b", "--train none --stop-at 3"}, {"b", "--train none --resume"},
                              {"c", "--train none --ref online"}};
    for (int k = 0; k < 4; k++) {
        snprintf(args, sizeof(args), "train %s --out %s/%s %s", common, dir, runs[k][0], runs[k][1]);
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "run %s %s: %s", runs[k][0], runs[k][1], err);
        free(out); free(err);
    }
    char la[600], lc[600];
    snprintf(la, sizeof(la), "%s/a/metrics.jsonl", dir);
    snprintf(lc, sizeof(lc), "%s/c/metrics.jsonl", dir);
    double x[8], y[8];
    EXPECT_INT_EQ(read_losses(la, x, 8), 6);
    EXPECT_INT_EQ(read_losses(lc, y, 8), 6);
    EXPECT_NEAR(x[0], log(2.0), 1e-12);  // B = 0 at the start: the policy is the reference
    EXPECTF(x[5] < x[0], "LoRA loss %.4f -> %.4f", x[0], x[5]);
    for (int i = 0; i < 6; i++) EXPECT_NEAR(y[i], x[i], 1e-9);
    char ra[600], rb[600];
    snprintf(ra, sizeof(ra), "%s/a", dir);
    snprintf(rb, sizeof(rb), "%s/b", dir);
    const char *differs = test_checkpoints_differ(ra, rb, 6);
    EXPECTF(!differs, "%s differs after a LoRA resume", differs);
    // the checkpoint scores differently from the base (the adapters are merged at load), like its export
    char *base, *ck, *ex;
    EXPECT(test_run_vlm("logprobs --model " GQA " --data " GQA "/records.jsonl --device cpu", &base, &err) == 0); free(err);
    snprintf(args, sizeof(args), "logprobs --model %s/a/checkpoint-00000006 --data " GQA "/records.jsonl --device cpu", dir);
    EXPECT(test_run_vlm(args, &ck, &err) == 0); free(err);
    snprintf(args, sizeof(args), "export --model %s/a/checkpoint-00000006 --to-hf %s/hf", dir, dir);
    EXPECT(test_run_vlm(args, &out, &err) == 0); free(out); free(err);
    snprintf(args, sizeof(args), "logprobs --model %s/hf --data " GQA "/records.jsonl --device cpu", dir);
    EXPECT(test_run_vlm(args, &ex, &err) == 0); free(err);
    EXPECT(strcmp(base, ck) != 0);
    EXPECTF(!strcmp(ck, ex), "the export (merged) scores differently from the checkpoint:\n%s\nvs\n%s", ex, ck);
    char hf[600];
    snprintf(hf, sizeof(hf), "%s/hf/model.safetensors", dir);
    SafeTensors *st = st_open_or_die(hf);
    int lora_tensors = 0;
    for (int i = 0; i < st->n; i++) lora_tensors += strstr(st->tensors[i].name, "lora_") != NULL;
    EXPECT_INT_EQ(lora_tensors, 0);  // merged: transformers sees a plain LLaVA
    st_close(st);
    free(base); free(ck); free(ex); free(dir);
}
