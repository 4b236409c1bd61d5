// `vlm train` on the CPU with the tiny fixture LLaVA: every recipe lowers its loss, the first step's
// loss is the step-0 identity (policy = reference), resume is bit-exact, the online reference equals the
// cached one, a non-finite loss stops cleanly keeping the last checkpoint, and bad data gives clear errors.
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/chat.h"
#include "../data/records.h"
#include "../model/llava.h"
#include "../model/safetensors.h"
#include "../train/data.h"
#include "../train/plot.h"
#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"

static unsigned rng = 12345;
static int rnd(int lo, int hi) { rng = rng * 1103515245u + 12345u; return lo + (int)((rng >> 8) % (unsigned)(hi - lo)); }

static void append_ids(char *buf, size_t cap, const char *key, int n, int with_image, int eos) {
    size_t k = strlen(buf);
    k += snprintf(buf + k, cap - k, "\"%s\": [", key);
    for (int i = 0; i < n; i++) {
        int id = i == 0 && !eos ? 1 : rnd(3, 80);
        if (with_image && i == 2) id = 90;  // the image token, where the image goes
        k += snprintf(buf + k, cap - k, "%s%d", i ? ", " : "", id);
    }
    if (eos) k += snprintf(buf + k, cap - k, ", 2");
    snprintf(buf + k, cap - k, "]");
}

// The recipe's response fields (random ids and EOS) and the record's end, appended to a record's line.
static void append_responses(char *line, size_t cap, const char *recipe) {
    if (!strcmp(recipe, "sft")) append_ids(line, cap, "response_ids", 3, 0, 1);
    else {
        append_ids(line, cap, "chosen_ids", 3, 0, 1);
        strcat(line, ", ");
        append_ids(line, cap, "rejected_ids", 4, 0, 1);
    }
    strcat(line, "}\n");
}

// dir/data.jsonl with the records' text (both freed); returns its path.
static char *save_data(char *dir, char *text, size_t len) {
    char *path = path_join(dir, "data.jsonl");
    write_file_atomic(path, text, len);
    free(text);
    free(dir);
    return path;
}

// Writes n examples of a recipe (ids form) into a fresh folder with the fixture images; returns the file.
static char *write_data(const char *name, const char *recipe, int n, int bad_line) {
    char *dir = test_image_dir(name);
    size_t cap = 1 << 20, len = 0;
    char *text = xmalloc(cap), line[4096];
    for (int i = 0; i < n; i++) {
        line[0] = 0;
        if (i + 1 == bad_line) { len += snprintf(text + len, cap - len, "{\"prompt_ids\": [1, 2,\n"); continue; }
        int svco = !strcmp(recipe, "svco") || !strcmp(recipe, "vco");
        if (svco) snprintf(line, sizeof(line), "{\"image_w\": \"images/%s\", \"image_l\": \"images/%s\", ", i % 2 ? "a.png" : "b.png", i % 2 ? "b.png" : "a.png");
        else snprintf(line, sizeof(line), "{\"image\": \"images/%s\", ", i % 3 ? "a.png" : "b.png");
        append_ids(line, sizeof(line), "prompt_ids", 5, 1, 0);
        strcat(line, ", ");
        append_responses(line, sizeof(line), recipe);
        len += snprintf(text + len, cap - len, "%s", line);
    }
    return save_data(dir, text, len);
}

// Expects `key` to be logged n times in each of two metrics logs, pairwise within tol (0: the same bits).
static void expect_same_metric(const char *log_a, const char *log_b, const char *key, int n, double tol) {
    double x[16], y[16];
    EXPECT_INT_EQ(test_read_metric(log_a, key, x, 16), n);
    EXPECT_INT_EQ(test_read_metric(log_b, key, y, 16), n);
    for (int i = 0; i < n && i < 16; i++)
        EXPECTF(tol > 0 ? fabs(x[i] - y[i]) <= tol : x[i] == y[i], "%s, line %d: %.17g vs %.17g", key, i + 1, x[i], y[i]);
}

static int run_train(const char *args, char **err) {
    char *out, *e;
    int rc = test_run_vlm(args, &out, &e);
    free(out);
    if (err) *err = e; else free(e);
    return rc;
}

// Runs `vlm train ARGS --out DIR/a` with the environment variable ENV set to VALUE, then `... --out DIR/b`
// without it (the computation a switch leaves out, and the one it keeps); returns 1 when both ran and their
// weights after STEPS steps are byte-identical, 0 after reporting what failed.
static int same_weights_with_env(const char *env, const char *value, const char *args, const char *dir, int steps) {
    char cmd[2048], pa[600], pb[600], *err;
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        if (k == 0) setenv(env, value, 1);
        else unsetenv(env);
        snprintf(cmd, sizeof(cmd), "train %s --out %s/%c", args, dir, "ab"[k]);
        const int rc = run_train(cmd, &err);
        EXPECTF(rc == 0, "%s%s%s: %s", k ? "" : env, k ? "" : "=", k ? "" : value, err);
        ok &= rc == 0;
        free(err);
    }
    unsetenv(env);
    snprintf(pa, sizeof(pa), "%s/a/checkpoint-%08d/model.safetensors", dir, steps);
    snprintf(pb, sizeof(pb), "%s/b/checkpoint-%08d/model.safetensors", dir, steps);
    return ok && test_files_equal(pa, pb);
}

// The ids of write_data (random ids 3..79, image token 90) fit the vocabulary of the model in `model`.
static void check_recipe_learns_on(const char *model, const char *recipe, const char *flags, double first_loss) {
    char name[128], args[2048], *err;
    snprintf(name, sizeof(name), "learn_%s_%s", recipe, strrchr(model, '/') + 1);
    char *data = write_data(name, recipe, 16, 0);
    char *out = path_join(test_tmpdir(), name);
    snprintf(args, sizeof(args), "train --recipe %s --model %s --data %s --out %s/run --steps 24 --batch 4 --lr 2e-3 "
             "--warmup-steps 0 --device cpu --quiet %s", recipe, model, data, out, flags);
    int rc = run_train(args, &err);
    EXPECTF(rc == 0, "%s: exit %d: %s", recipe, rc, err);
    char log[512];
    snprintf(log, sizeof(log), "%s/run/metrics.jsonl", out);
    double loss[64];
    int n = test_read_metric(log, "loss", loss, 64);
    EXPECT_INT_EQ(n, 24);
    if (first_loss > 0) EXPECT_NEAR(loss[0], first_loss, 1e-9);  // policy = reference at step 1
    double a = (loss[0] + loss[1] + loss[2]) / 3, b = (loss[n - 1] + loss[n - 2] + loss[n - 3]) / 3;
    EXPECTF(b < 0.8 * a, "%s: loss went from %.4f to %.4f", recipe, a, b);
    printf("      %s: loss %.4f -> %.4f over %d steps\n", recipe, a, b, n);
    free(err); free(data); free(out);
}

static void check_recipe_learns(const char *recipe, const char *flags, double first_loss) {
    check_recipe_learns_on(GQA, recipe, flags, first_loss);
}

TEST(train_sft_learns) { check_recipe_learns("sft", "", 0); }
// LLaVA-Interleave's kinds of model: a SigLIP tower (its preprocessing of the PNGs) and a Qwen2 decoder
TEST(train_svco_learns_siglip_qwen2) { check_recipe_learns_on("tests/fixtures/models/llava_siglip_qwen2", "svco", "", 4 * log(2.0)); }
TEST(train_dpo_learns) { check_recipe_learns("dpo", "", log(2.0)); }
TEST(train_svco_learns) { check_recipe_learns("svco", "", 4 * log(2.0)); }
TEST(train_vco_learns) { check_recipe_learns("vco", "", 2 * log(2.0)); }
// one crop per example, shared by the policy and the cached reference: the step-0 identity holds
TEST(train_mdpo_learns) { check_recipe_learns("mdpo", "--crop fixed", 3 * log(2.0)); }

// mDPO's preset draws a fresh crop in every forward pass, as its code does (crop_images inside forward): the policy
// and the reference (run online) see different crops, so at step 1 (policy = reference) the response and anchor
// terms are log 2 and the image term is not; the run learns, resumes bit-exactly (the crops come from the step's
// streams), and a cached reference is refused with the choices named.
TEST(train_mdpo_fresh_crops) {
    check_recipe_learns("mdpo", "", -1);
    char *data = write_data("mdpo_fresh", "mdpo", 8, 0), args[2048], *err;
    char *dir = path_join(test_tmpdir(), "mdpo_fresh_runs");
    const char *common = "--recipe mdpo --model " GQA " --steps 4 --batch 2 --lr 1e-3 --warmup-steps 0 --device cpu --quiet";
    snprintf(args, sizeof(args), "train %s --data %s --out %s/a", common, data, dir);
    EXPECTF(run_train(args, &err) == 0, "a: %s", err);
    free(err);
    char sfile[600];  // the preset's crop and its source, in the settings table (--quiet keeps it off stderr)
    snprintf(sfile, sizeof(sfile), "%s/a/settings.txt", dir);
    char *table = read_file(sfile, NULL);
    EXPECTF(strstr(table, "--crop") && strstr(table, "fresh") && strstr(table, "l.2326"), "the preset's crop and its source: %s", table);
    free(table);
    char mlog[600];
    snprintf(mlog, sizeof(mlog), "%s/a/metrics.jsonl", dir);
    double v[8];
    EXPECT_INT_EQ(test_read_metric(mlog, "loss/response", v, 8), 4);
    EXPECT_NEAR(v[0], log(2.0), 1e-9);
    EXPECT_INT_EQ(test_read_metric(mlog, "loss/anchor", v, 8), 4);
    EXPECT_NEAR(v[0], log(2.0), 1e-9);
    EXPECT_INT_EQ(test_read_metric(mlog, "loss/image", v, 8), 4);
    EXPECTF(fabs(v[0] - log(2.0)) > 1e-6, "the image term at step 1 is log 2 (%.12f): policy and reference saw the same crop", v[0]);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --stop-at 2", common, data, dir);
    EXPECTF(run_train(args, &err) == 0, "b: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --resume", common, data, dir);
    EXPECTF(run_train(args, &err) == 0, "b resumed: %s", err); free(err);
    char a4[600], b4[600];
    snprintf(a4, sizeof(a4), "%s/a", dir);
    snprintf(b4, sizeof(b4), "%s/b", dir);
    const char *differs = test_checkpoints_differ(a4, b4, 4);
    EXPECTF(!differs, "%s differs between the straight and the resumed run", differs);
    // the resumed run's charts hold the steps before the resume too (its log read back into every chart)
    for (int k = 0; k < 3; k++) {
        const char *charts[3] = {"loss.svg", "accuracy.svg", "rewards.svg"};
        char pa[700], pb[700];
        snprintf(pa, sizeof(pa), "%s/%s", a4, charts[k]);
        snprintf(pb, sizeof(pb), "%s/%s", b4, charts[k]);
        char *ta = try_read_file(pa, NULL), *tb = try_read_file(pb, NULL);
        EXPECTF(ta && tb && !strcmp(ta, tb), "%s: the resumed run's chart differs from the straight run's", charts[k]);
        free(ta); free(tb);
    }
    snprintf(args, sizeof(args), "train %s --data %s --out %s/c --ref cache", common, data, dir);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "--crop fresh") && strstr(err, "--ref online") && strstr(err, "--crop fixed"), "message: %s", err);
    free(err);
    free(dir); free(data);
}

// TRL's loss family through `vlm train --loss-type` (train/losses.h): the first step (policy = reference) logs
// each type's step-0 value (sigmoid, robust, sigmoid_norm log 2; hinge 1; ipo and ipo_sum 1/(2 beta)^2; bco_pair
// 2 log 2; a weighted sum the weighted values), the loss falls, and --ipo is --loss-type ipo.
TEST(train_dpo_loss_types) {
    char *data = write_data("loss_types", "dpo", 8, 0), args[2048], *err;
    const double l2 = log(2.0);
    const struct { const char *type; double step0; } cases[] = {
        {"sigmoid", l2}, {"hinge", 1}, {"ipo", 25}, {"ipo_sum", 25}, {"robust --label-smoothing 0.2", l2},
        {"sigmoid_norm", l2}, {"bco_pair", 2 * l2}, {"sigmoid:0.5,bco_pair:2", 0.5 * l2 + 4 * l2}};
    char *dir = path_join(test_tmpdir(), "loss_types");
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/run%zu --steps 8 --batch 4 --lr 1e-3 "
                 "--beta 0.1 --warmup-steps 0 --device cpu --quiet --loss-type %s", data, dir, k, cases[k].type);
        EXPECTF(run_train(args, &err) == 0, "%s: %s", cases[k].type, err);
        free(err);
        char log[600];
        snprintf(log, sizeof(log), "%s/run%zu/metrics.jsonl", dir, k);
        double loss[16];
        EXPECT_INT_EQ(test_read_metric(log, "loss", loss, 16), 8);
        EXPECT_NEAR(loss[0], cases[k].step0, 1e-9);
        EXPECTF(loss[7] < loss[0], "%s: loss %.4f -> %.4f", cases[k].type, loss[0], loss[7]);
    }
    // --ipo: the same run as --loss-type ipo (run2)
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/ipo_flag --steps 8 --batch 4 --lr 1e-3 "
             "--beta 0.1 --warmup-steps 0 --device cpu --quiet --ipo", data, dir);
    EXPECTF(run_train(args, &err) == 0, "--ipo: %s", err);
    free(err);
    char pa[600], pb[600];
    snprintf(pa, sizeof(pa), "%s/run2/checkpoint-00000008/model.safetensors", dir);
    snprintf(pb, sizeof(pb), "%s/ipo_flag/checkpoint-00000008/model.safetensors", dir);
    EXPECTF(test_files_equal(pa, pb), "--ipo trains otherwise than --loss-type ipo");
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/bad --steps 1 --device cpu --loss-type sigmoid,nope",
             data, dir);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "--loss-type 'sigmoid,nope': nope is not a loss type (sigmoid, hinge"), "message: %s", err);
    free(err);
    free(dir); free(data);
}

// 8 steps in one run against 4 steps, a stop, and a resumed run of 4 more: the same bytes.
TEST(train_resume_is_bit_exact) {
    char *data = write_data("resume", "svco", 10, 0), args[2048], *err;
    const char *common = "--recipe svco --model " GQA " --steps 8 --batch 3 --grad-accum 2 --lr 1e-3 --max-grad-norm 0.5 "
                         "--warmup-steps 2 --device cpu --quiet";
    char *a = path_join(test_tmpdir(), "resume_a"), *b = path_join(test_tmpdir(), "resume_b");
    snprintf(args, sizeof(args), "train %s --data %s --out %s", common, data, a);
    EXPECTF(run_train(args, &err) == 0, "straight run: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s --stop-at 4", common, data, b);
    EXPECTF(run_train(args, &err) == 0, "first half: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s --resume", common, data, b);
    EXPECTF(run_train(args, &err) == 0, "resumed half: %s", err);
    EXPECTF(strstr(err, "resumed from") != NULL, "no resume message: %s", err);
    free(err);
    const char *differs = test_checkpoints_differ(a, b, 8);
    EXPECTF(!differs, "%s differs between the straight and the resumed run", differs);
    // the metrics log of the resumed run has each step once
    char log[600];
    snprintf(log, sizeof(log), "%s/metrics.jsonl", b);
    double steps[32];
    EXPECT_INT_EQ(test_read_metric(log, "step", steps, 32), 8);
    free(a); free(b); free(data);
}

// --recompute (the decoder layers run again in the backward pass) trains to the same bytes, and the
// run prints its memory plan with a smaller activation total.
TEST(train_recompute_same_checkpoint) {
    char *data = write_data("recompute", "dpo", 8, 0), args[2048], *err[2];
    char *dir = path_join(test_tmpdir(), "recompute");
    const char *mode[2] = {"kept", "recomputed"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/%s --steps 3 --batch 4 --lr 1e-3 "
                 "--warmup-steps 0 --device cpu%s", data, dir, mode[k], k ? " --recompute" : "");
        EXPECTF(run_train(args, &err[k]) == 0, "%s: %s", mode[k], err[k]);
    }
    char pa[600], pb[600];
    snprintf(pa, sizeof(pa), "%s/kept/checkpoint-00000003/model.safetensors", dir);
    snprintf(pb, sizeof(pb), "%s/recomputed/checkpoint-00000003/model.safetensors", dir);
    EXPECTF(test_files_equal(pa, pb), "the weights differ with --recompute");
    double gib[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *p = strstr(err[k], "  activations");
        EXPECTF(p != NULL && strstr(err[k], "memory: ") && strstr(err[k], "decoder layers"), "no memory plan: %s", err[k]);
        char unit[8] = "";
        if (p && sscanf(p + strlen("  activations"), "%lf %3s", &gib[k], unit) == 2)
            gib[k] /= !strcmp(unit, "KiB") ? 1048576.0 : !strcmp(unit, "MiB") ? 1024.0 : 1.0;
        free(err[k]);
    }
    EXPECTF(gib[1] < gib[0], "activations %.4f GiB with --recompute, %.4f without", gib[1], gib[0]);
    free(dir); free(data);
}

// The last decoder layer runs past its attention on the head's rows only (model/llama.c, layer_forward).
// sft: the same weights bit for bit after 3 steps as the full layer (VLM_PRUNE_LAST=0): its output rows are
// distinct and in order, so every weight gradient sums the same products in the same order. dpo, svco
// (packed): a pair's two answers share the prefix's last row, which the full layer backpropagates once
// with both gradients summed and the pruned layer twice; the same losses to rounding.
TEST(train_last_layer_pruning_is_exact) {
    const char *recipes[3] = {"sft", "dpo", "svco"};
    for (int r = 0; r < 3; r++) {
        char name[64], args[2048], *err;
        snprintf(name, sizeof(name), "prune_%s", recipes[r]);
        char *data = write_data(name, recipes[r], 8, 0), *dir = path_join(test_tmpdir(), name);
        const char *mode[2] = {"full", "pruned"};
        for (int k = 0; k < 2; k++) {
            if (k == 0) setenv("VLM_PRUNE_LAST", "0", 1);
            else unsetenv("VLM_PRUNE_LAST");
            snprintf(args, sizeof(args), "train --recipe %s --model " GQA " --data %s --out %s/%s --steps 3 --batch 4 "
                     "--lr 1e-3 --warmup-steps 0 --device cpu --quiet", recipes[r], data, dir, mode[k]);
            EXPECTF(run_train(args, &err) == 0, "%s %s: %s", recipes[r], mode[k], err);
            free(err);
        }
        unsetenv("VLM_PRUNE_LAST");
        char pa[600], pb[600];
        if (r == 0) {
            snprintf(pa, sizeof(pa), "%s/full/checkpoint-00000003/model.safetensors", dir);
            snprintf(pb, sizeof(pb), "%s/pruned/checkpoint-00000003/model.safetensors", dir);
            EXPECTF(test_files_equal(pa, pb), "sft: the weights differ when the last layer runs on the head rows only");
        } else {
            double x[4], y[4];
            snprintf(pa, sizeof(pa), "%s/full/metrics.jsonl", dir);
            snprintf(pb, sizeof(pb), "%s/pruned/metrics.jsonl", dir);
            EXPECT_INT_EQ(test_read_metric(pa, "loss", x, 4), 3);
            EXPECT_INT_EQ(test_read_metric(pb, "loss", y, 4), 3);
            for (int i = 0; i < 3; i++) EXPECT_NEAR(x[i], y[i], 1e-5);  // as packed against unpacked
        }
        free(dir); free(data);
    }
}

// The reference log-probs from the cached pre-pass equal those of a frozen copy run every step.
TEST(train_online_reference_equals_cache) {
    char *data = write_data("refmode", "dpo", 8, 0), args[2048], *err;
    char *a = path_join(test_tmpdir(), "ref_cache"), *b = path_join(test_tmpdir(), "ref_online");
    const char *common = "--recipe dpo --model " GQA " --steps 4 --batch 2 --lr 1e-3 --device cpu --quiet";
    snprintf(args, sizeof(args), "train %s --data %s --out %s --ref cache", common, data, a);
    EXPECTF(run_train(args, &err) == 0, "cache: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s --ref online", common, data, b);
    EXPECTF(run_train(args, &err) == 0, "online: %s", err); free(err);
    char la[600], lb[600];
    snprintf(la, sizeof(la), "%s/metrics.jsonl", a);
    snprintf(lb, sizeof(lb), "%s/metrics.jsonl", b);
    expect_same_metric(la, lb, "rewards/margins", 4, 1e-9);
    free(a); free(b); free(data);
}

// A diverging run stops with a clear message naming the last good checkpoint, which stays loadable.
TEST(train_nonfinite_loss_stops_cleanly) {
    char *data = write_data("nan", "dpo", 8, 0), args[2048], *err;
    char *o = path_join(test_tmpdir(), "nan_run");
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s --steps 40 --batch 2 --lr 1e30 "
             "--warmup-steps 20 --save-every 1 --device cpu --quiet", data, o);  // step 1 has lr 0, then it diverges
    int rc = run_train(args, &err);
    EXPECTF(rc != 0, "expected the run to stop");
    EXPECTF(strstr(err, "last good checkpoint is") && strstr(err, "checkpoint-00000001"), "message: %s", err);
    free(err);
    char *latest = path_join(o, "latest");
    char *name = read_file(latest, NULL);
    char ckpt[600];
    snprintf(ckpt, sizeof(ckpt), "%s/%s", o, name);
    char *out, *e;
    snprintf(args, sizeof(args), "logprobs --model %s --data " GQA "/records.jsonl --device cpu", ckpt);
    rc = test_run_vlm(args, &out, &e);
    EXPECTF(rc == 0, "the last checkpoint %s does not load: %s", ckpt, e);
    EXPECT(strstr(out, "nan") == NULL);
    free(out); free(e); free(name); free(latest); free(o); free(data);
}

// A new run in an --out that holds one is refused (it would mix the two logs and checkpoint sets) unless
// --force; the run names the checkpoint folder it saved, and that folder (not --out) is what --model takes.
TEST(train_out_holding_a_run) {
    char *data = write_data("used_out", "sft", 4, -1), args[2048], *err;
    char *o = path_join(test_tmpdir(), "used_out_run");
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s --steps 2 --batch 2 --device cpu --quiet", data, o);
    EXPECT(run_train(args, &err) == 0);
    char *ckpt = path_join(o, "checkpoint-00000002");
    EXPECTF(strstr(err, ckpt) != NULL, "the done line names the checkpoint folder %s: %s", ckpt, err);
    free(err);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "holds a run (latest)") && strstr(err, "--resume") && strstr(err, "--force"), "message: %s", err);
    free(err);
    char forced[2100];
    snprintf(forced, sizeof(forced), "%s --force", args);
    EXPECT(run_train(forced, &err) == 0);
    EXPECTF(strstr(err, "--force: a new run in") != NULL, "message: %s", err);
    free(err);
    // a folder with only a metrics log (a run stopped before its first save) counts too
    char *o2 = path_join(test_tmpdir(), "used_out_log");
    mkdir_p(o2);
    char *log = path_join(o2, "metrics.jsonl");
    write_file_atomic(log, "{\"step\": 1}\n", 12);
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s --steps 2 --batch 2 --device cpu --quiet", data, o2);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "holds a run (metrics.jsonl)") != NULL, "message: %s", err);
    free(err);
    // --model given the run's folder says which folder to give
    char *out;
    snprintf(args, sizeof(args), "logprobs --model %s --data " GQA "/records.jsonl --device cpu", o);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "is a training run's output folder") && strstr(err, ckpt), "message: %s", err);
    free(out); free(err);
    free(log); free(o2); free(ckpt); free(o); free(data);
}

TEST(train_bad_data) {
    char *data = write_data("bad", "dpo", 6, 3), args[2048], *err;
    char *o = path_join(test_tmpdir(), "bad_run");
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s --steps 2 --device cpu --quiet", data, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "data.jsonl:3: malformed JSON") != NULL, "message: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s --steps 2 --device cpu --quiet --skip-bad", data, o);
    EXPECT(run_train(args, &err) == 0);
    EXPECTF(strstr(err, "1 records skipped") != NULL, "message: %s", err);
    free(err);
    // S-VCO data without the second image (DPO records: their "image" is not what S-VCO reads)
    char *svco = write_data("bad_svco", "dpo", 4, 0);
    free(o);
    o = path_join(test_tmpdir(), "bad_run_svco");  // bad_run holds the run above: a new one there is refused
    snprintf(args, sizeof(args), "train --recipe svco --model " GQA " --data %s --out %s --steps 2 --device cpu", svco, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "\"image\" looks like an image but svco reads the image from \"image_w\" and \"image_l\"") != NULL, "message: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train --recipe nope --model " GQA " --data %s --out %s", svco, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECT(strstr(err, "expected sft, dpo, svco") != NULL);
    free(err);
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s --template chatml", data, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "--template 'chatml': expected " CHAT_TEMPLATE_NAMES) != NULL, "message: %s", err);
    free(err); free(svco); free(o); free(data);
}

// Text examples through the chat template and the real tokenizer (the fixture with the 32064-id vocabulary).
TEST(train_text_examples_with_tokenizer) {
    char *dir = path_join(test_tmpdir(), "text"), cmd[1024], args[2048], *err;
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -r tests/fixtures/models/llava_tok/images %s/", dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    const char *text =
        "{\"image\": \"images/c.png\", \"prompt\": \"What color is the circle?\", \"chosen\": \"It is red.\", \"rejected\": \"It is blue.\"}\n"
        "{\"prompt\": \"Is there a dog?\", \"chosen\": \"No.\", \"rejected\": \"Yes, a big dog.\"}\n";
    char *path = path_join(dir, "pref.jsonl");
    write_file_atomic(path, text, strlen(text));
    snprintf(args, sizeof(args), "train --recipe dpo --model tests/fixtures/models/llava_tok --data %s --out %s/run --steps 6 "
             "--batch 2 --lr 1e-2 --warmup-steps 0 --tokenizer %s/tokenizers/llama2_tokenizer.model --device cpu --quiet",
             path, dir, test_shared_data());
    int rc = run_train(args, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    free(err);
    char logf[600];
    snprintf(logf, sizeof(logf), "%s/run/metrics.jsonl", dir);
    double loss[8];
    EXPECT_INT_EQ(test_read_metric(logf, "loss", loss, 8), 6);
    EXPECT_NEAR(loss[0], log(2.0), 1e-9);
    EXPECTF(loss[5] < loss[0], "loss %.4f -> %.4f", loss[0], loss[5]);
    free(path); free(dir);
}

// Packing [image + prompt][y_w][y_l] into one row with a tree mask gives the same log-probs and so the
// same training as separate rows (up to float summation order).
TEST(train_packing_is_exact) {
    const char *recipes[3] = {"dpo", "svco", "mdpo"};
    for (int k = 0; k < 3; k++) {
        char name[64], args[2048], *err;
        snprintf(name, sizeof(name), "pack_%s", recipes[k]);
        char *data = write_data(name, recipes[k], 8, 0);
        char *a = path_join(test_tmpdir(), name), la[600], lb[600];
        snprintf(args, sizeof(args), "train --recipe %s --model " GQA " --data %s --out %s/packed --steps 5 --batch 4 --lr 1e-3 "
                 "--warmup-steps 0 --device cpu --quiet", recipes[k], data, a);
        EXPECTF(run_train(args, &err) == 0, "%s packed: %s", recipes[k], err); free(err);
        snprintf(args, sizeof(args), "train --recipe %s --model " GQA " --data %s --out %s/plain --steps 5 --batch 4 --lr 1e-3 "
                 "--warmup-steps 0 --device cpu --quiet --no-pack", recipes[k], data, a);
        EXPECTF(run_train(args, &err) == 0, "%s plain: %s", recipes[k], err); free(err);
        snprintf(la, sizeof(la), "%s/packed/metrics.jsonl", a);
        snprintf(lb, sizeof(lb), "%s/plain/metrics.jsonl", a);
        double x[8], y[8], tx[8], ty[8];
        EXPECT_INT_EQ(test_read_metric(la, "loss", x, 8), 5);
        EXPECT_INT_EQ(test_read_metric(lb, "loss", y, 8), 5);
        for (int i = 0; i < 5; i++) EXPECT_NEAR(x[i], y[i], 1e-5);
        // and packing really removed tokens: the shared prefixes are counted once
        test_read_metric(la, "tokens", tx, 8);
        test_read_metric(lb, "tokens", ty, 8);
        EXPECTF(tx[0] == ty[0], "both runs count the logical rows' tokens (%g vs %g)", tx[0], ty[0]);
        free(a); free(data);
    }
}

// Training from a packed shard (vlm data pack: images decoded and resized once, normalized on load) gives exactly
// the run that the JSON Lines file gives (records of `kind` trained with `recipe`); with save_every, the run's
// data position is in its checkpoints.
static void check_shard_equals_jsonl(const char *name, const char *kind, const char *recipe, const char *text, int steps,
                                     int save_every) {
    char *dir = path_join(test_tmpdir(), name), cmd[1024], args[2048], *err, *out;
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -r tests/fixtures/models/llava_tok/images %s/ && cp " GQA "/images/*.png %s/images/",
             dir, dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    char *jsonl = path_join(dir, "data.jsonl");
    write_file_atomic(jsonl, text, strlen(text));
    snprintf(args, sizeof(args), "data pack --input %s --kind %s --config tests/fixtures/models/llava_tok/preprocessor_config.json "
             "--out %s/data.shard.bin", jsonl, kind, dir);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "%s: pack: %s", name, err);
    free(out); free(err);
    double loss[2][8];
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "train --recipe %s --model tests/fixtures/models/llava_tok --data %s/%s --out %s/run%d --steps %d "
                 "--batch 2 --lr 1e-2 --warmup-steps 0 --tokenizer %s/tokenizers/llama2_tokenizer.model --device cpu --quiet%s",
                 recipe, dir, k ? "data.shard.bin" : "data.jsonl", dir, k, steps, test_shared_data(), save_every ? " --save-every 2" : "");
        rc = run_train(args, &err);
        EXPECTF(rc == 0, "%s: train on %s: %s", name, k ? "the shard" : "the JSONL", err);
        free(err);
        char logf[600];
        snprintf(logf, sizeof(logf), "%s/run%d/metrics.jsonl", dir, k);
        EXPECT_INT_EQ(test_read_metric(logf, "loss", loss[k], 8), steps);
    }
    for (int i = 0; i < steps; i++) EXPECTF(loss[1][i] == loss[0][i], "%s step %d: loss %.17g from the shard, %.17g from the JSONL",
                                        name, i, loss[1][i], loss[0][i]);
    if (save_every) {
        char state[600];
        snprintf(state, sizeof(state), "%s/run1/checkpoint-00000002/state.json", dir);
        char *st = read_file(state, NULL);
        EXPECT(strstr(st, "\"epoch\"") && strstr(st, "\"cursor\""));  // the data position a resume continues from
        free(st);
    }
    free(jsonl); free(dir);
}

TEST(train_from_shard_equals_jsonl) {
    check_shard_equals_jsonl("shard_train", "pref", "dpo",
        "{\"image\": \"images/c.png\", \"prompt\": \"What color is the circle?\", \"chosen\": \"It is red.\", \"rejected\": \"It is blue.\"}\n"
        "{\"image\": \"images/c.png\", \"prompt\": \"Is there a dog?\", \"chosen\": \"No.\", \"rejected\": \"Yes, a big dog.\"}\n"
        "{\"prompt\": \"How many stars?\", \"chosen\": \"Two.\", \"rejected\": \"Seven stars.\"}\n", 4, 1);
}

// Records with image lists: the shard keeps each record's images in order (placeholders in place or none), and
// training from it is the JSONL's run, for preference pairs (DPO) and LLaVA conversations (SFT).
TEST(train_from_shard_equals_jsonl_image_lists) {
    check_shard_equals_jsonl("shard_train_pref_lists", "pref", "dpo",
        "{\"image\": [\"images/c.png\", \"images/a.png\"], \"prompt\": \"<image> left, <image> right: which is red?\", "
        "\"chosen\": \"The left.\", \"rejected\": \"The right one.\"}\n"
        "{\"image\": [\"images/a.png\", \"images/c.png\"], \"prompt\": \"Which is red?\", \"chosen\": \"The second.\", "
        "\"rejected\": \"The first.\"}\n"
        "{\"image\": \"images/b.png\", \"prompt\": \"Is there a dog?\", \"chosen\": \"No.\", \"rejected\": \"Yes, a big dog.\"}\n"
        "{\"prompt\": \"How many stars?\", \"chosen\": \"Two.\", \"rejected\": \"Seven stars.\"}\n", 2, 0);
    check_shard_equals_jsonl("shard_train_llava_lists", "llava", "sft",  // LLaVA's format: one JSON array
        "[{\"image\": [\"images/c.png\", \"images/gray.png\"], \"conversations\": [{\"from\": \"human\", \"value\": \"Compare <image> "
        "with <image>.\"}, {\"from\": \"gpt\", \"value\": \"The first has a circle.\"}]},\n"
        "{\"image\": [\"images/b.png\", \"images/c.png\", \"images/a.png\"], \"conversations\": [{\"from\": \"human\", \"value\": "
        "\"What changes?\"}, {\"from\": \"gpt\", \"value\": \"The colors.\"}]},\n"
        "{\"image\": \"images/a.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat is it?\"}, "
        "{\"from\": \"gpt\", \"value\": \"A picture.\"}]}]\n", 2, 0);
}

// vlm export writes the Hub key layout with every tensor transformers expects (also those our model
// does not load), and the exported folder scores exactly like the checkpoint it came from.
TEST(train_export_to_hf) {
    char *dir = path_join(test_tmpdir(), "export"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data tests/fixtures/train/dpo.jsonl --out %s/run --steps 3 "
             "--batch 4 --lr 1e-2 --warmup-steps 0 --device cpu --quiet", dir);
    EXPECT(run_train(args, &err) == 0);
    free(err);
    snprintf(args, sizeof(args), "export --model %s/run/checkpoint-00000003 --to-hf %s/hf", dir, dir);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "export: %s", err);
    free(out); free(err);
    char p[600];
    snprintf(p, sizeof(p), "%s/hf/model.safetensors", dir);
    SafeTensors *st = st_open_or_die(p);
    SafeTensors *base = st_open_or_die(GQA "/model.safetensors");
    EXPECT_INT_EQ(st->n, base->n);  // every tensor of the base model, incl. the vision layer LLaVA skips
    EXPECT(st_find(st, "language_model.model.embed_tokens.weight") != NULL);
    EXPECT(st_find(st, "vision_tower.vision_model.post_layernorm.weight") != NULL);
    EXPECT(st_find(st, "language_model.lm_head.weight") != NULL);
    st_close(st);
    st_close(base);
    char *a, *b;
    snprintf(args, sizeof(args), "logprobs --model %s/hf --data " GQA "/records.jsonl --device cpu", dir);
    EXPECT(test_run_vlm(args, &a, &err) == 0);
    free(err);
    snprintf(args, sizeof(args), "logprobs --model %s/run/checkpoint-00000003 --data " GQA "/records.jsonl --device cpu", dir);
    EXPECT(test_run_vlm(args, &b, &err) == 0);
    free(err);
    EXPECTF(!strcmp(a, b), "exported model scores differently:\n%s\nvs\n%s", a, b);
    free(a); free(b); free(dir);
}

// CLIP contrastive training: the loss falls and retrieval becomes right; from a config alone with
// --init random; resume is bit-exact; bad records are named.
static char *clip_data(void) {
    char *dir = path_join(test_tmpdir(), "clipdata"), cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp " GQA "/images/*.png tests/fixtures/models/llava_tok/images/c.png %s/", dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    const char *text = "{\"image\": \"a.png\", \"caption_ids\": [62, 5, 6, 7, 63]}\n"
                       "{\"image\": \"b.png\", \"caption_ids\": [62, 9, 10, 63, 0, 0]}\n"
                       "{\"image\": \"c.png\", \"caption_ids\": [62, 20, 21, 22, 23, 63]}\n"
                       "{\"image\": \"gray.png\", \"caption_ids\": [62, 30, 63]}\n";
    char *p = path_join(dir, "cap.jsonl");
    write_file_atomic(p, text, strlen(text));
    free(dir);
    return p;
}

TEST(train_clip_learns_and_resumes) {
    char *data = clip_data(), args[2048], *err;
    char *o = path_join(test_tmpdir(), "clip_run");
    const char *common = "--recipe clip --model tests/fixtures/models/clip --steps 12 --batch 4 --lr 3e-3 --warmup-steps 2 --device cpu --quiet";
    snprintf(args, sizeof(args), "train %s --data %s --out %s/a", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "%s", err); free(err);
    char logf[600];
    snprintf(logf, sizeof(logf), "%s/a/metrics.jsonl", o);
    double loss[16], acc[16];
    EXPECT_INT_EQ(test_read_metric(logf, "loss", loss, 16), 12);
    test_read_metric(logf, "accuracy/image_to_text", acc, 16);
    EXPECTF(loss[11] < 0.3 * loss[0], "clip loss %.4f -> %.4f", loss[0], loss[11]);
    EXPECT_NEAR(acc[11], 1.0, 0);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --stop-at 5", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "%s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --resume", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "%s", err); free(err);
    char pa[600], pb[600];
    snprintf(pa, sizeof(pa), "%s/a/checkpoint-00000012/model.safetensors", o);
    snprintf(pb, sizeof(pb), "%s/b/checkpoint-00000012/model.safetensors", o);
    EXPECTF(test_files_equal(pa, pb), "the resumed CLIP run differs");
    free(o); free(data);
}

// The text tower runs each caption up to its end-of-text token only, not the padding to the batch's longest
// caption nor what follows the token (model/clip_text.h): the weights after 4 steps are bitwise those of the
// run that computes every position (VLM_KEEP_PADDING=1), on captions of 3 to 6 tokens, one with ids past its end.
TEST(train_clip_text_tokens_only_is_exact) {
    char *data = clip_data(), args[2048];
    char *o = path_join(test_tmpdir(), "clip_tokens");
    snprintf(args, sizeof(args), "--recipe clip --model tests/fixtures/models/clip --data %s --steps 4 --batch 4 --lr 3e-3 "
             "--warmup-steps 0 --device cpu --quiet", data);
    EXPECTF(same_weights_with_env("VLM_KEEP_PADDING", "1", args, o, 4),
            "the CLIP weights differ when the text after each caption's end is not computed");
    free(o); free(data);
}

TEST(train_clip_from_scratch_and_errors) {
    char *data = clip_data(), args[2048], *err;
    char *dir = path_join(test_tmpdir(), "clip_cfg"), cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp tests/fixtures/models/clip/config.json tests/fixtures/models/clip/preprocessor_config.json %s/",
             dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    snprintf(args, sizeof(args), "train --recipe clip --model %s --data %s --out %s/run --steps 3 --batch 4 --device cpu --quiet", dir, data, dir);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "--init random") != NULL, "message: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train --recipe clip --model %s --data %s --out %s/run --steps 3 --batch 4 --device cpu --quiet --init random",
             dir, data, dir);
    EXPECT(run_train(args, &err) == 0);
    EXPECTF(strstr(err, "random initialization") != NULL, "message: %s", err);
    free(err);
    // a caption without its end-of-text token, and one with an id outside the vocabulary
    char *bad = path_join(test_tmpdir(), "clipdata/bad.jsonl");
    const char *t = "{\"image\": \"a.png\", \"caption_ids\": [62, 5, 6]}\n{\"image\": \"b.png\", \"caption_ids\": [62, 99, 63]}\n";
    write_file_atomic(bad, t, strlen(t));
    snprintf(args, sizeof(args), "train --recipe clip --model tests/fixtures/models/clip --data %s --out %s/bad --steps 1 --device cpu", bad, dir);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "bad.jsonl:1: caption_ids has no end-of-text id") != NULL, "message: %s", err);
    free(err);
    free(bad); free(dir); free(data);
}

// The metrics log without its timing keys, one canonical JSON line per step (fresh string).
static char *metrics_without_timing(const char *log) {
    char *text = read_file(log, NULL), *out = xmalloc(strlen(text) + 1);
    size_t k = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j) { k += sprintf(out + k, "(malformed)\n"); continue; }
        const char *timing[] = {"tokens_per_s", "pairs_per_s", "step_time_s", "mfu"};
        for (int i = 0; i < 4; i++) cJSON_DeleteItemFromObjectCaseSensitive(j, timing[i]);
        char *s = cJSON_PrintUnformatted(j);
        out = xrealloc(out, k + strlen(s) + strlen(text) + 2);
        k += sprintf(out + k, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    out[k] = 0;
    free(text);
    return out;
}

// CLIP runs through the same loop as the LLaVA recipes (train/run.c): with accumulation, a save midway, a
// stop and a resume, the weights, the optimizer state and every logged value are the straight run's.
TEST(train_clip_resume_is_bit_exact) {
    char *data = clip_data(), args[2048], *err;
    char *o = path_join(test_tmpdir(), "clip_exact");
    const char *common = "--recipe clip --model tests/fixtures/models/clip --steps 6 --batch 2 --grad-accum 2 --lr 3e-3 "
                         "--warmup-steps 1 --save-every 2 --device cpu --quiet";
    snprintf(args, sizeof(args), "train %s --data %s --out %s/a", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "straight: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --stop-at 3", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "first part: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --resume", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "resumed: %s", err);
    EXPECTF(strstr(err, "resumed from") && strstr(err, "checkpoint-00000003"), "no resume from step 3: %s", err);
    free(err);
    char la[600], lb[600];
    snprintf(la, sizeof(la), "%s/a", o);
    snprintf(lb, sizeof(lb), "%s/b", o);
    const char *differs = test_checkpoints_differ(la, lb, 6);
    EXPECTF(!differs, "%s differs between the straight and the resumed CLIP run", differs);
    snprintf(la, sizeof(la), "%s/a/metrics.jsonl", o);
    snprintf(lb, sizeof(lb), "%s/b/metrics.jsonl", o);
    char *ma = metrics_without_timing(la), *mb = metrics_without_timing(lb);
    EXPECTF(!strcmp(ma, mb), "the logged values differ:\n%s\nagainst\n%s", ma, mb);
    EXPECTF(strstr(ma, "\"epoch\":") && strstr(ma, "\"logit_scale\":"), "CLIP's log lacks the loop's keys: %s", ma);
    free(ma); free(mb); free(o); free(data);
}

// A resumed CLIP run checks what a resumed LLaVA run checks: the data (a changed caption), the recipe (a
// checkpoint of another recipe in --out) and the settings (a changed --lr, accepted with --force).
TEST(train_clip_resume_checks_data_recipe_settings) {
    char *data = clip_data(), args[2048], *err;
    char *o = path_join(test_tmpdir(), "clip_checks");
    const char *common = "--recipe clip --model tests/fixtures/models/clip --steps 4 --batch 4 --lr 3e-3 --device cpu --quiet";
    snprintf(args, sizeof(args), "train %s --data %s --out %s/run --stop-at 2", common, data, o);
    EXPECTF(run_train(args, &err) == 0, "first part: %s", err); free(err);
    // the same records with one caption changed
    char *text = read_file(data, NULL), *changed = path_join(test_tmpdir(), "clipdata/changed.jsonl");
    char *p = strstr(text, "[62, 30, 63]");
    EXPECT(p != NULL);
    if (p) memcpy(p, "[62, 31, 63]", 12);
    write_file_atomic(changed, text, strlen(text));
    snprintf(args, sizeof(args), "train %s --data %s --out %s/run --resume", common, changed, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "trained on other data") != NULL, "changed data: %s", err);
    free(err);
    // another --lr: named, refused, then accepted with --force
    snprintf(args, sizeof(args), "train --recipe clip --model tests/fixtures/models/clip --steps 4 --batch 4 --lr 1e-3 --device cpu "
             "--quiet --data %s --out %s/run --resume", data, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "--lr 0.001 (the run: 0.003)") && strstr(err, "--force"), "changed --lr: %s", err);
    free(err);
    strcat(args, " --force");
    EXPECT(run_train(args, &err) == 0);
    EXPECTF(strstr(err, "--lr 0.001 (the run: 0.003)") && strstr(err, "resumed from"), "--force: %s", err);
    free(err);
    // a checkpoint of an SFT run in --out
    char *sft = write_data("clip_checks_sft", "sft", 4, 0);
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s/other --steps 2 --stop-at 1 --device cpu --quiet",
             sft, o);
    EXPECTF(run_train(args, &err) == 0, "sft: %s", err); free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/other --resume", common, data, o);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "\"recipe\" is sft, but this run's recipe is clip") != NULL, "changed recipe: %s", err);
    free(err);
    free(sft); free(text); free(changed); free(o); free(data);
}

// CLIP's checkpoints pass the loop's finite-loss guard: a diverging run (lr 1e30 after a warm-up step at lr 0)
// keeps the checkpoint of step 1 and never publishes weights that give a non-finite loss.
TEST(train_clip_nonfinite_loss_keeps_last_good_checkpoint) {
    char *data = clip_data(), args[2048], *err;
    char *o = path_join(test_tmpdir(), "clip_nan");
    snprintf(args, sizeof(args), "train --recipe clip --model tests/fixtures/models/clip --data %s --out %s --steps 20 --batch 4 "
             "--lr 1e30 --warmup-steps 20 --save-every 1 --device cpu --quiet", data, o);
    int rc = run_train(args, &err);
    EXPECTF(rc != 0, "expected the run to stop");
    EXPECTF(strstr(err, "last good checkpoint is") && strstr(err, "checkpoint-00000001"), "message: %s", err);
    free(err);
    char *latest = path_join(o, "latest"), *name = read_file(latest, NULL);
    EXPECTF(!strcmp(name, "checkpoint-00000001"), "latest is %s", name);
    // the kept checkpoint trains on: its loss is finite
    snprintf(args, sizeof(args), "train --recipe clip --model %s/%s --data %s --out %s/again --steps 1 --batch 4 --device cpu --quiet",
             o, name, data, o);
    EXPECTF(run_train(args, &err) == 0, "the last checkpoint does not train: %s", err);
    free(err);
    double loss[2];
    char log[600];
    snprintf(log, sizeof(log), "%s/again/metrics.jsonl", o);
    EXPECT_INT_EQ(test_read_metric(log, "loss", loss, 2), 1);
    EXPECTF(isfinite(loss[0]), "loss %g", loss[0]);
    free(latest); free(name); free(o); free(data);
}

// --init random --vision-from: a LLaVA born from a config, with the vision tower of a CLIPModel (the
// demo's CLIP-pretrain-then-SFT path). The checkpoint's tower holds the CLIP tower's exact weights; a
// tower whose depth does not match the config is refused by name.
TEST(train_llava_vision_from_clip) {
    char *data = write_data("vision_from", "sft", 8, 0), args[2048], *err, cmd[1024];
    char *dir = path_join(test_tmpdir(), "vision_from_run");
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/cfg", dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    // LLaVA config of the fixture, with a 2-layer tower like the CLIP fixture's (the fixture LLaVA has 3)
    char *text = read_file(GQA "/config.json", NULL);
    cJSON *cfg = cJSON_Parse(text);
    cJSON *vis = cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
    cJSON_ReplaceItemInObjectCaseSensitive(vis, "num_hidden_layers", cJSON_CreateNumber(2));
    char *out = cJSON_Print(cfg), path[600];
    snprintf(path, sizeof(path), "%s/cfg/config.json", dir);
    write_file_atomic(path, out, strlen(out));
    free(out); cJSON_Delete(cfg); free(text);
    snprintf(args, sizeof(args), "train --recipe sft --model %s/cfg --data %s --out %s/run --steps 2 --batch 4 --device cpu --quiet "
             "--init random --vision-from tests/fixtures/models/clip --train projector,decoder", dir, data, dir);
    EXPECTF(run_train(args, &err) == 0, "%s", err);
    EXPECTF(strstr(err, "vision tower from tests/fixtures/models/clip") != NULL, "message: %s", err);
    free(err);
    snprintf(path, sizeof(path), "%s/run/checkpoint-00000002/model.safetensors", dir);
    SafeTensors *ck = st_open_or_die(path), *clip = st_open_or_die("tests/fixtures/models/clip/model.safetensors");
    int compared = 0, equal = 0;
    for (int i = 0; i < clip->n; i++) {
        const STTensor *t = &clip->tensors[i];
        if (strncmp(t->name, "vision_model.", 13) || strstr(t->name, "post_layernorm")) continue;
        char name[300];
        snprintf(name, sizeof(name), "model.vision_tower.%s", t->name);
        const STTensor *u = st_find(ck, name);
        // feature layer -2: the tower's last layer never runs, and LLaVA does not hold it
        EXPECTF(u != NULL || strstr(t->name, "layers.1."), "%s not in the checkpoint", name);
        if (!u) continue;
        float *a = xmalloc(sizeof(float) * t->numel), *b = xmalloc(sizeof(float) * u->numel);
        st_to_f32(t, a);
        st_to_f32(u, b);
        compared++;
        equal += u->numel == t->numel && !memcmp(a, b, sizeof(float) * t->numel);
        free(a); free(b);
    }
    EXPECTF(compared >= 10 && equal == compared, "%d of %d vision tensors equal the CLIP tower's", equal, compared);
    st_close(ck); st_close(clip);
    // a tower config that does not match the CLIP's (a wider MLP): a clear error naming the tensor
    cfg = cJSON_Parse(text = read_file(GQA "/config.json", NULL));
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "vision_config"), "intermediate_size",
                                           cJSON_CreateNumber(80));
    out = cJSON_Print(cfg);
    snprintf(path, sizeof(path), "%s/cfg/config.json", dir);
    write_file_atomic(path, out, strlen(out));
    free(out); cJSON_Delete(cfg); free(text);
    snprintf(args, sizeof(args), "train --recipe sft --model %s/cfg --data %s --out %s/bad --steps 2 --batch 4 --device cpu --quiet "
             "--init random --vision-from tests/fixtures/models/clip", dir, data, dir);
    EXPECT(run_train(args, &err) != 0);
    EXPECTF(strstr(err, "fc1.weight' has shape [64, 32] but the config implies [80, 32]") != NULL, "message: %s", err);
    free(err); free(dir); free(data);
}

// Random initialization: matrices ~ N(0, std), norm weights 1, every bias (norm biases included) 0. A norm
// bias of 1 would add the same vector to every token and make every image look alike.
TEST(params_init_random_values) {
    LlavaConfig cfg;
    EXPECT(llava_config_preset(&cfg, "llava-tiny") == 0);
    cfg.projector_bias = 1;
    Llava m;
    llava_init(&m, &backend_cpu, &cfg, (LlavaTrainable){0, 0, 0});
    ParamStore *stores[3] = {&m.ps_vision, &m.ps_projector, &m.ps_text};
    int norm_w = 0, biases = 0, mats = 0;
    for (int s = 0; s < 3; s++) {
        params_init_random(stores[s], 5 + s, 0.02f);
        const float *x = stores[s]->data;
        for (int i = 0; i < stores[s]->n; i++) {
            const ParamInfo *p = &stores[s]->info[i];
            const float *v = x + p->offset;
            const size_t nl = strlen(p->name);
            const int is_bias = nl > 4 && !strcmp(p->name + nl - 4, "bias");
            const int is_norm_w = (strstr(p->name, "norm") || strstr(p->name, "layrnorm")) && !is_bias;
            if (p->ndim >= 2) {
                double ss = 0;
                for (size_t k = 0; k < p->numel; k++) ss += (double)v[k] * v[k];
                const double sd = sqrt(ss / p->numel);
                EXPECTF(fabs(sd - 0.02) < 0.02 * (p->numel > 4096 ? 0.05 : 0.5), "%s: std %.4f", p->name, sd);
                mats++;
            } else if (is_bias) {
                for (size_t k = 0; k < p->numel; k++) EXPECTF(v[k] == 0, "%s[%zu] = %g, expected 0", p->name, k, v[k]);
                biases++;
            } else if (is_norm_w) {
                for (size_t k = 0; k < p->numel; k++) EXPECTF(v[k] == 1, "%s[%zu] = %g, expected 1", p->name, k, v[k]);
                norm_w++;
            }
        }
    }
    EXPECTF(norm_w >= 10 && biases >= 10 && mats >= 10, "checked %d norm weights, %d biases, %d matrices", norm_w, biases, mats);
    llava_free(&m);
}

// The smoothed line: debiased from the first point, flat on a flat series, through the points below 40 of them,
// and over 2,000 noisy points within a fifth of the noise of the mean; a chart of 5,000 points stays small (the
// raw values as a band of each pixel column's extremes, the smoothed line one point a column) and draws the
// step-0 marker when given.
TEST(plot_smoothed_lines_over_raw_points) {
    enum { N = 5000 };
    double *x = xmalloc(sizeof(double) * N), *y = xmalloc(sizeof(double) * N), *sm = xmalloc(sizeof(double) * N);
    unsigned r = 7;
    for (int i = 0; i < N; i++) {
        x[i] = i + 1;
        r = r * 1103515245u + 12345u;
        y[i] = 1 + ((r >> 8) / 16777216.0 - 0.5);  // 1 +- 0.5
    }
    plot_smooth(y, 2000, sm);
    EXPECT(sm[0] == y[0]);
    double worst = 0;
    for (int i = 300; i < 2000; i++) worst = fmax(worst, fabs(sm[i] - 1));
    EXPECTF(worst < 0.1, "smoothed values stray %.3f from the mean (raw: 0.5)", worst);
    plot_smooth(y, 30, sm);
    for (int i = 0; i < 30; i++) EXPECT(sm[i] == y[i]);
    double flat[100];
    for (int i = 0; i < 100; i++) flat[i] = 0.5;
    plot_smooth(flat, 100, sm);
    for (int i = 0; i < 100; i++) EXPECT_NEAR(sm[i], 0.5, 1e-15);
    char *svg = path_join(test_tmpdir(), "smooth.svg");
    PlotSeries s = {"loss", x, y, N};
    EXPECT(plot_svg(svg, "t", "step", &s, 1, log(2.0), "step 0: log 2", NULL, 0) == 0);
    size_t len;
    char *text = read_file(svg, &len);
    EXPECTF(len < 60000, "%zu bytes for %d points", len, N);
    EXPECT(strstr(text, "<polyline class=\"raw\"") && strstr(text, "<polyline class=\"smooth\""));
    EXPECT(strstr(text, "class=\"mark\"") && strstr(text, ">step 0: log 2</text>"));
    const char *sp = strstr(text, "class=\"smooth\"");
    int pts = 0;
    for (const char *q = sp; q && *q && *q != '/'; q++) pts += *q == ',';
    EXPECTF(pts > 100 && pts <= 481, "%d points on the smoothed line (the plot spans 481 pixel columns)", pts);
    free(text); free(svg); free(x); free(y); free(sm);
}

// A run redraws loss.svg every --log-every steps, not only at its end: a run that diverges at step 3 (and so never
// reaches the end) leaves the chart of its first steps, with the step-0 identity of its loss marked (DPO: log 2);
// S-VCO's chart marks 4 log 2, mDPO's 3 log 2, and both draw rewards.svg; a chart that cannot be written does not
// stop a run.
TEST(train_plots_refresh_during_the_run) {
    char *data = write_data("plots_live", "dpo", 8, 0), args[2048], *err;
    char *o = path_join(test_tmpdir(), "plots_live_run");
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s --steps 40 --batch 2 --lr 1e30 "
             "--warmup-steps 20 --device cpu --quiet", data, o);  // step 1 has lr 0, then it diverges
    EXPECT(run_train(args, &err) != 0);
    free(err);
    char *svg = path_join(o, "loss.svg"), *text = try_read_file(svg, NULL);
    EXPECTF(text != NULL, "no %s after the run stopped", svg);
    EXPECTF(text && strstr(text, "class=\"smooth\"") && strstr(text, "policy = reference): log 2</text>"), "%s", text ? text : "");
    free(text); free(svg); free(o);
    // and each preference recipe draws its rewards (S-VCO: each term's margin) beside the loss
    const char *recipes[2][3] = {{"svco", "4 log 2", ">margin/reject_l</text>"}, {"mdpo", "3 log 2", ">rewards/corrupted</text>"}};
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof(name), "plots_%s", recipes[k][0]);
        char *d = write_data(name, recipes[k][0], 4, 0), *dir = path_join(test_tmpdir(), name);
        snprintf(args, sizeof(args), "train --recipe %s --model " GQA " --data %s --out %s --steps 1 --batch 2 --device cpu --quiet",
                 recipes[k][0], d, dir);
        EXPECTF(run_train(args, &err) == 0, "%s: %s", recipes[k][0], err);
        free(err);
        char *p = path_join(dir, "loss.svg"), *t = try_read_file(p, NULL);
        EXPECTF(t && strstr(t, recipes[k][1]), "%s: no %s marker", recipes[k][0], recipes[k][1]);
        free(t); free(p);
        p = path_join(dir, "rewards.svg");
        t = try_read_file(p, NULL);
        EXPECTF(t && strstr(t, recipes[k][2]), "%s: rewards.svg missing or without %s", recipes[k][0], recipes[k][2]);
        free(t); free(p); free(d); free(dir);
    }
    // a chart that cannot be written (here a folder in its place) is a warning: the run goes on and ends well
    char *blocked = path_join(test_tmpdir(), "plots_blocked"), cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/loss.svg", blocked, blocked);
    EXPECT(test_shell(cmd) == 0);
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s --steps 2 --batch 2 --device cpu --quiet", data,
             blocked);
    EXPECTF(run_train(args, &err) == 0, "a chart that cannot be written ended the run: %s", err);
    EXPECTF(strstr(err, "warning") && strstr(err, "loss.svg") && strstr(err, "no longer redrawn"), "message: %s", err);
    free(err); free(blocked);
    free(data);
}

// vlm plot: one polyline per key that has data (steps without the key are left out of its line), a legend
// entry per line, and a clear error for a log that is not JSON Lines.
TEST(plot_cli_lines_and_legend) {
    char *log = test_write_tmp("plot_metrics.jsonl", "{\"step\": 1, \"loss\": 2.0, \"val/loss\": 2.5}\n"
                                                     "{\"step\": 2, \"loss\": 1.5}\n"
                                                     "{\"step\": 3, \"loss\": 1.0, \"val/loss\": 1.8}\n");
    char *svg = path_join(test_tmpdir(), "plot.svg"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "plot --log %s --out %s --keys loss,val/loss,missing --title demo", log, svg);
    EXPECTF(test_run_vlm(args, &out, &err) == 0, "%s", err);
    free(out); free(err);
    char *text = try_read_file(svg, NULL);
    int lines = 0, dots = 0;
    for (const char *p = text; p && (p = strstr(p, "<polyline class=\"smooth\"")); p++) lines++;
    for (const char *p = text; p && (p = strstr(p, "<circle")); p++) dots++;
    EXPECTF(text && !strncmp(text, "<svg", 4) && strstr(text, "</svg>"), "not an SVG document");
    EXPECT_INT_EQ(lines, 2);  // loss, val/loss ("missing" has no data)
    EXPECT_INT_EQ(dots, 5);   // their raw points
    EXPECTF(text && strstr(text, ">val/loss</text>") && strstr(text, ">demo</text>"), "legend or title missing");
    free(text);
    char *bad = test_write_tmp("plot_bad.jsonl", "{\"step\": 1, \"loss\": 2.0}\nnot json\n");
    snprintf(args, sizeof(args), "plot --log %s --out %s", bad, svg);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "plot_bad.jsonl:2") != NULL, "message: %s", err);
    free(out); free(err); free(bad); free(svg); free(log);
}

// SFT weights after 3 steps are bitwise the same with 1 and 2 threads: every parallel op splits independent
// outputs (matmul tiles, attention heads, rows, fixed chunks of the gradient norm), so the thread count
// changes no sum's order. Last in this file: its data draws from the file's random ids, and tests whose
// tolerances depend on their data (train_packing_is_exact) keep the draws they had.
TEST(train_sft_thread_count_invariant) {
    char *data = write_data("threads_sft", "sft", 16, 0), *dir = path_join(test_tmpdir(), "threads_sft"), args[2048], *err;
    const char *saved = getenv("OMP_NUM_THREADS");
    char *keep = saved ? xstrdup(saved) : NULL;
    for (int t = 1; t <= 2; t++) {
        setenv("OMP_NUM_THREADS", t == 1 ? "1" : "2", 1);
        snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s/t%d --steps 3 --batch 8 "
                 "--lr 1e-3 --warmup-steps 0 --device cpu --quiet", data, dir, t);
        EXPECTF(run_train(args, &err) == 0, "%d threads: %s", t, err);
        free(err);
    }
    if (keep) setenv("OMP_NUM_THREADS", keep, 1); else unsetenv("OMP_NUM_THREADS");
    free(keep);
    char pa[600], pb[600];
    snprintf(pa, sizeof(pa), "%s/t1/checkpoint-00000003/model.safetensors", dir);
    snprintf(pb, sizeof(pb), "%s/t2/checkpoint-00000003/model.safetensors", dir);
    EXPECTF(test_files_equal(pa, pb), "sft: the weights after 3 steps differ between 1 and 2 threads");
    free(dir); free(data);
}

// Rows of different lengths: the decoder runs on their tokens only, not on the padding to the longest row
// (llava_token_layout). Every op but the attention is row-wise or a batch-invariant matmul, the attention sees
// the same padded rows, and each weight gradient sums the same tokens' products in the same order (the padding
// added zeros), so the weights after 3 steps are bitwise those of the padded run (VLM_KEEP_PADDING=1): sft
// (also with the layers recomputed in the backward pass), dpo and svco (packed rows, tree masks, image-free
// rows), in a batch whose responses take 1 to 12 tokens.
TEST(train_dropping_padding_is_exact) {
    const char *recipes[3] = {"sft", "dpo", "svco"};
    unsigned s = 12345;
#define DRAW(lo, hi) (s = s * 1103515245u + 12345u, (lo) + (int)((s >> 8) % (unsigned)((hi) - (lo))))
    for (int r = 0; r < 4; r++) {
        const char *recipe = recipes[r < 3 ? r : 0];
        char name[64], args[2048], line[4096];
        snprintf(name, sizeof(name), "padding_%s%s", recipe, r == 3 ? "_recompute" : "");
        char *dir = path_join(test_tmpdir(), name), cmd[1024];
        snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -r " GQA "/images %s/", dir, dir, dir);
        EXPECT(test_shell(cmd) == 0);
        size_t cap = 1 << 16, len = 0;
        char *text = xmalloc(cap);
        for (int i = 0; i < 8; i++) {
            const int svco = !strcmp(recipe, "svco");
            const char *a = i % 2 ? "a.png" : "b.png", *b = i % 2 ? "b.png" : "a.png";
            size_t k = svco ? snprintf(line, sizeof(line), "{\"image_w\": \"images/%s\", \"image_l\": \"images/%s\", \"prompt_ids\": [1, 5, 90", a, b)
                            : snprintf(line, sizeof(line), "{\"image\": \"images/%s\", \"prompt_ids\": [1, 5, 90", a);
            for (int t = DRAW(0, 6); t > 0; t--) k += snprintf(line + k, sizeof(line) - k, ", %d", DRAW(3, 80));
            const char *keys[2] = {!strcmp(recipe, "sft") ? "response_ids" : "chosen_ids", "rejected_ids"};
            for (int j = 0; j < (!strcmp(recipe, "sft") ? 1 : 2); j++) {
                k += snprintf(line + k, sizeof(line) - k, "], \"%s\": [%d", keys[j], DRAW(3, 80));
                for (int t = DRAW(0, 11); t > 0; t--) k += snprintf(line + k, sizeof(line) - k, ", %d", DRAW(3, 80));
            }
            k += snprintf(line + k, sizeof(line) - k, ", 2]}\n");
            len += snprintf(text + len, cap - len, "%s", line);
        }
        char *data = path_join(dir, "data.jsonl");
        write_file_atomic(data, text, len);
        free(text);
        char *runs = path_join(dir, "runs");
        snprintf(args, sizeof(args), "--recipe %s --model " GQA " --data %s --steps 3 --batch 4 --lr 1e-3 --warmup-steps 0 "
                 "--device cpu --quiet%s", recipe, data, r == 3 ? " --recompute" : "");
        EXPECTF(same_weights_with_env("VLM_KEEP_PADDING", "1", args, runs, 3), "%s: the weights differ when the padding is not computed", name);
        free(runs);
        free(dir); free(data);
    }
#undef DRAW
}

// A frozen tower's features are computed once per image before training (train_data_encode_images) instead
// of in every batch: the tower's ops are per image, so the weights after 3 steps are bitwise those of the run
// that encodes each batch's images (VLM_CACHE_FEATURES=0), for sft, mdpo (its fixed crops; the reference
// pre-pass sees the features too) and svco (two images a pair, image-free rows), with a validation split.
TEST(train_frozen_tower_features_once_is_exact) {
    const char *recipes[3] = {"sft", "mdpo", "svco"};
    for (int r = 0; r < 3; r++) {
        char name[64], args[2048];
        snprintf(name, sizeof(name), "features_%s", recipes[r]);
        char *data = write_data(name, recipes[r], 8, 0), *dir = path_join(test_tmpdir(), name);
        snprintf(args, sizeof(args), "--recipe %s --model " GQA " --data %s --val %s --eval-every 2 --steps 3 --batch 4 --lr 1e-3 "
                 "--warmup-steps 0 --device cpu --quiet%s", recipes[r], data, data,
                 r == 1 ? " --crop fixed" : "");  // fresh crops go through the tower in every pass: nothing to cache
        EXPECTF(same_weights_with_env("VLM_CACHE_FEATURES", "0", args, dir, 3),
                "%s: the weights differ when the tower's features are computed once", recipes[r]);
        char pa[600], pb[600];
        snprintf(pa, sizeof(pa), "%s/a/metrics.jsonl", dir);
        snprintf(pb, sizeof(pb), "%s/b/metrics.jsonl", dir);
        expect_same_metric(pa, pb, "val/loss", 2, 0);
        free(dir); free(data);
    }
}

// Runs of one model on one data set share the reference pre-pass through --ref-cache: the second run reads
// the first one's file (another learning rate and seed do not change the reference) and trains exactly as it
// does with its own pre-pass; another data set gets its own file.
TEST(train_shared_reference_cache) {
    char *data = write_data("refshare", "dpo", 8, 0), *other = write_data("refshare2", "dpo", 6, 0), args[2048], *err;
    char *dir = path_join(test_tmpdir(), "refshare_runs");
    const char *common = "--recipe dpo --model " GQA " --steps 3 --batch 2 --warmup-steps 0 --device cpu --quiet";
    snprintf(args, sizeof(args), "train %s --data %s --out %s/a --lr 1e-3 --ref-cache %s/cache", common, data, dir, dir);
    EXPECTF(run_train(args, &err) == 0, "a: %s", err);
    EXPECTF(!strstr(err, "reference log-probs from"), "the first run found a cache: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/b --lr 3e-3 --seed 7 --ref-cache %s/cache", common, data, dir, dir);
    EXPECTF(run_train(args, &err) == 0, "b: %s", err);
    EXPECTF(strstr(err, "reference log-probs from") != NULL, "the second run computed its own pre-pass: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/c --lr 3e-3 --seed 7", common, data, dir);
    EXPECTF(run_train(args, &err) == 0, "c: %s", err);
    free(err);
    char pa[600], pb[600];
    snprintf(pa, sizeof(pa), "%s/b/checkpoint-00000003/model.safetensors", dir);
    snprintf(pb, sizeof(pb), "%s/c/checkpoint-00000003/model.safetensors", dir);
    EXPECTF(test_files_equal(pa, pb), "the run on the shared cache differs from the run with its own pre-pass");
    snprintf(args, sizeof(args), "train %s --data %s --out %s/d --lr 1e-3 --ref-cache %s/cache", common, other, dir, dir);
    EXPECTF(run_train(args, &err) == 0, "d: %s", err);
    EXPECTF(!strstr(err, "reference log-probs from"), "another data set read the cache: %s", err);
    free(err);
    free(dir); free(data); free(other);
}

// The streaming loader (train/data.h: TrainStream) makes each micro-batch's images on its threads ahead of the step:
// the weights are bitwise those of making every batch's images on the training thread (VLM_LOADER_WORKERS=0), for
// svco (two images a pair), mdpo with fresh crops (drawn per pass from the streamed image) and with fixed crops
// (made per batch from (seed, example)), with a validation split and the reference pre-pass streaming too.
TEST(train_streaming_loader_is_exact) {
    static const char *const cases[3][2] = {{"svco", ""}, {"mdpo", " --ref online"}, {"mdpo", " --crop fixed"}};
    setenv("VLM_CACHE_FEATURES", "0", 1);  // the tower runs on the streamed pixels in every batch
    for (int r = 0; r < 3; r++) {
        char name[64], args[2048];
        snprintf(name, sizeof(name), "stream_%s_%d", cases[r][0], r);
        char *data = write_data(name, cases[r][0], 9, 0), *dir = path_join(test_tmpdir(), name);
        snprintf(args, sizeof(args), "--recipe %s --model " GQA " --data %s --val %s --eval-every 2 --steps 3 --batch 2 "
                 "--grad-accum 2 --lr 1e-3 --warmup-steps 0 --device cpu --quiet%s", cases[r][0], data, data, cases[r][1]);
        EXPECTF(same_weights_with_env("VLM_LOADER_WORKERS", "0", args, dir, 3),
                "%s%s: the weights differ between the prefetching loader and images made on the training thread", cases[r][0],
                cases[r][1]);
        free(dir); free(data);
    }
    unsetenv("VLM_CACHE_FEATURES");
}

// A run stopped mid-epoch and resumed with the streaming loader (3 threads, a ring of 2 slots) continues with the
// batches it would have seen: the same weights and optimizer state as a straight run whose images are made on
// the training thread. 10 examples in micro-batches of 3: the stop after step 3 falls at example 9 of epoch 0,
// and micro-batches span epochs.
TEST(train_streaming_resume_mid_epoch) {
    char *data = write_data("stream_resume", "dpo", 10, 0), args[2048], *err;
    const char *common = "--recipe dpo --model " GQA " --steps 7 --batch 3 --lr 1e-3 --warmup-steps 1 --device cpu --quiet";
    char *a = path_join(test_tmpdir(), "stream_resume_a"), *b = path_join(test_tmpdir(), "stream_resume_b");
    setenv("VLM_LOADER_WORKERS", "0", 1);
    snprintf(args, sizeof(args), "train %s --data %s --out %s", common, data, a);
    EXPECTF(run_train(args, &err) == 0, "straight run: %s", err); free(err);
    setenv("VLM_LOADER_WORKERS", "3", 1);
    setenv("VLM_LOADER_DEPTH", "2", 1);
    snprintf(args, sizeof(args), "train %s --data %s --out %s --stop-at 3", common, data, b);
    EXPECTF(run_train(args, &err) == 0, "first part: %s", err); free(err);
    char state[600];
    snprintf(state, sizeof(state), "%s/checkpoint-00000003/state.json", b);
    char *text = try_read_file(state, NULL);
    EXPECTF(text && strstr(text, "\"cursor\":\t9") && strstr(text, "\"epoch\":\t0"), "not mid-epoch: %s", text ? text : "(none)");
    free(text);
    snprintf(args, sizeof(args), "train %s --data %s --out %s --resume", common, data, b);
    EXPECTF(run_train(args, &err) == 0, "resumed: %s", err);
    EXPECTF(strstr(err, "resumed from") != NULL, "no resume message: %s", err);
    free(err);
    unsetenv("VLM_LOADER_WORKERS");
    unsetenv("VLM_LOADER_DEPTH");
    const char *differs = test_checkpoints_differ(a, b, 7);
    EXPECTF(!differs, "%s differs between the straight run and the streamed, resumed one", differs);
    free(a); free(b); free(data);
}

// Loads a recipe's data for the fixture model GQA (its config into cfg), with the default options.
static void load_gqa_data(TrainData *d, const char *recipe, const char *data, LlavaConfig *cfg) {
    llava_config_load(cfg, GQA);
    PreprocessConfig pcfg = records_tower_preprocess_config(GQA, &cfg->vision);
    TrainDataOptions opt = {.max_len = 0};
    train_data_load(d, recipe_find(recipe), data, cfg, &pcfg, &opt);
}

// Loading keeps no pixels: each distinct image once (by its path, through the hash map), found but not decoded;
// its pixels are made when a batch needs them, the same as a batch made from a prefetched micro-batch.
TEST(train_data_holds_no_pixels) {
    char *data = write_data("stream_lazy", "dpo", 6, 0);
    TrainData d;
    LlavaConfig cfg;
    load_gqa_data(&d, "dpo", data, &cfg);
    EXPECT(d.pixels == NULL && d.feats == NULL);
    EXPECT(d.n_images >= 1 && d.n_images < d.n);  // write_data names a few images in many records
    for (int i = 0; i < d.n_images; i++) EXPECT_INT_EQ(d.images[i].kind, TRAIN_IMAGE_FILE);
    TrainBatch direct, streamed;
    train_batch_init(&direct, &d, 4, 1);
    train_batch_init(&streamed, &d, 4, 1);
    DataOrder order = {d.n, 0, 0, 5, xmalloc(sizeof(int) * d.n)};
    data_order_shuffle(&order);
    TrainStream *s = train_stream_open(&d, &order, 4, 2, 3);
    for (int k = 0; k < 4; k++) {  // crossing the epoch: 16 examples of 6
        int idx[4];
        data_order_next(&order, idx, 4);
        const TrainPrefetched *pre = train_stream_next(s);
        EXPECT(pre && pre->n == 4 && !memcmp(pre->idx, idx, sizeof(idx)));
        train_batch_build(&direct, &d, idx, 4, NULL);
        train_batch_build(&streamed, &d, idx, 4, pre);
        const size_t px = (size_t)direct.n_images * 3 * d.image_size * d.image_size;
        EXPECT(direct.n_images == streamed.n_images && !memcmp(direct.pixels, streamed.pixels, sizeof(float) * px));
    }
    train_stream_close(s);
    s = train_stream_open(&d, NULL, 4, 1, 0);  // file order: 4 + 2, then the end
    const TrainPrefetched *pre = train_stream_next(s);
    EXPECT(pre && pre->n == 4 && pre->idx[0] == 0);
    pre = train_stream_next(s);
    EXPECT(pre && pre->n == 2 && pre->idx[1] == 5);
    EXPECT(train_stream_next(s) == NULL);
    train_stream_close(s);
    s = train_stream_open_part(&d, NULL, 2, 1, 0, 1, 2);  // part 1 of 2 (a rank's share): batches 1 (2, 3) and 3 (none)
    pre = train_stream_next(s);
    EXPECT(pre && pre->n == 2 && pre->idx[0] == 2 && pre->idx[1] == 3);
    EXPECT(train_stream_next(s) == NULL);
    train_stream_close(s);
    free(order.perm);
    train_batch_free(&direct);
    train_batch_free(&streamed);
    train_data_free(&d);
    free(data);
}

// Load only indexes the records (no rows: tokenizing waits for the batch that needs one); a record whose rows
// cannot be made stops the run when a batch reaches it, naming the file and the line, or with --skip-bad is
// skipped at load; the data hash follows the file's bytes.
TEST(train_data_records_tokenized_when_needed) {
    char *data = write_data("lazy_records", "sft", 6, 0);
    LlavaConfig cfg;
    TrainData d;
    load_gqa_data(&d, "sft", data, &cfg);
    EXPECT(d.ex == NULL && d.rec != NULL && d.n == 6);
    TrainExample scratch;
    const TrainExample *ex = train_data_example(&d, 4, &scratch);
    EXPECT(ex == &scratch && ex->line == 5 && ex->n_rows == 1 && ex->rows[0].n == 5 + cfg.image_tokens - 1 + 4);
    EXPECT_INT_EQ(ex->rows[0].labels[ex->rows[0].n - 1], 2);  // the response's EOS is labelled
    train_example_free(&scratch);
    const unsigned long long h = d.hash;
    train_data_free(&d);
    load_gqa_data(&d, "sft", data, &cfg);
    EXPECT(d.hash == h);  // the same bytes: the same hash
    train_data_free(&d);
    // line 3: a token id outside the vocabulary (only tokenizing finds it), appended with a changed byte elsewhere
    size_t len;
    char *text = read_file(data, &len), *bad = xmalloc(len + 256), *nl = strchr(strchr(text, '\n') + 1, '\n') + 1;
    size_t head = (size_t)(nl - text);
    memcpy(bad, text, head);
    int k = snprintf(bad + head, 256, "{\"image\": \"images/a.png\", \"prompt_ids\": [1, 90, 5], \"response_ids\": [7, 99999, 2]}\n");
    memcpy(bad + head + k, nl, len - head);
    write_file_atomic(data, bad, len + k);
    load_gqa_data(&d, "sft", data, &cfg);
    EXPECT(d.n == 7 && d.hash != h);  // indexed, not tokenized: the bad record is not found at load
    train_data_free(&d);
    char args[1024], *err;
    char *out = path_join(test_tmpdir(), "lazy_records_run");
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s --steps 4 --batch 2 --device cpu --quiet", data, out);
    EXPECT(run_train(args, &err) != 0);
    char want[700];
    snprintf(want, sizeof(want), "%s:3: token id 99999 is outside the vocabulary", data);
    EXPECTF(strstr(err, want) != NULL, "message: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s-skip --steps 4 --batch 2 --device cpu --quiet --skip-bad",
             data, out);
    EXPECTF(run_train(args, &err) == 0, "--skip-bad: %s", err);
    EXPECTF(strstr(err, ":3: token id 99999") && strstr(err, "1 records skipped"), "message: %s", err);
    free(err);
    free(text); free(bad); free(out); free(data);
}

// ---- several images per row (MVC sides and records with image lists)

// n examples (ids form) whose image sides are lists: svco/vco {"image_w": [..], "image_l": [..]}, otherwise
// {"image": [..]}; each prompt has one image token per image (expanded when loaded). Example i's sides take two
// or (every third) one of the fixture images, so sides share images, and lists share them in other orders.
static char *write_multi_data(const char *name, const char *recipe, int n) {
    static const char *const img[3] = {"images/a.png", "images/b.png", "images/gray.png"};
    char *dir = test_image_dir(name);
    size_t cap = 1 << 20, len = 0;
    char *text = xmalloc(cap), line[4096];
    const int svco = !strcmp(recipe, "svco") || !strcmp(recipe, "vco");
    for (int i = 0; i < n; i++) {
        const int k = i % 3 == 2 ? 1 : 2;  // images per side
        char sides[2][128];
        for (int s = 0; s < 2; s++)
            snprintf(sides[s], sizeof(sides[s]), k == 2 ? "[\"%s\", \"%s\"]" : "[\"%s\"]", img[(i + s) % 3], img[(i + s + 1) % 3]);
        if (svco) snprintf(line, sizeof(line), "{\"image_w\": %s, \"image_l\": %s, \"prompt_ids\": [1", sides[0], sides[1]);
        else snprintf(line, sizeof(line), "{\"image\": %s, \"prompt_ids\": [1", sides[0]);
        size_t m = strlen(line);
        for (int q = 0; q < 4; q++) m += snprintf(line + m, sizeof(line) - m, ", %d%s", rnd(3, 80), q < k ? ", 90" : "");
        m += snprintf(line + m, sizeof(line) - m, "], ");
        append_responses(line, sizeof(line), recipe);
        len += snprintf(text + len, cap - len, "%s", line);
    }
    return save_data(dir, text, len);
}

// Loading: each side's images in order, the rows' prompts with one run of image tokens per image; a batch gives each
// side its images as consecutive batch images (a one-image side shares an earlier copy) and each row their count.
TEST(train_multi_image_rows) {
    char *data = write_multi_data("multi_rows", "svco", 3);
    TrainData d;
    LlavaConfig cfg;
    load_gqa_data(&d, "svco", data, &cfg);
    EXPECT_INT_EQ(d.n, 3);
    EXPECT_INT_EQ(d.n_images, 3);
    EXPECT_INT_EQ(d.max_example_images, 4);
    TrainExample scratch[3];
    const TrainExample *ex[3];
    for (int i = 0; i < 3; i++) ex[i] = train_data_example(&d, i, &scratch[i]);  // the records' rows, as a batch makes them
    EXPECT(ex[0]->n_image[0] == 2 && ex[0]->n_image[1] == 2 && ex[2]->n_image[0] == 1 && ex[2]->n_image[1] == 1);
    // example 0: w = (a, b), l = (b, gray); example 1: w = (b, gray), l = (gray, a)
    EXPECT(ex[0]->image[0][0] == ex[1]->image[1][1] && ex[0]->image[0][1] == ex[1]->image[0][0]);
    int n_side;
    const int *side = train_data_example_images(&d, 1, 1, &n_side);  // the index holds the same lists
    EXPECT(n_side == 2 && side[0] == ex[1]->image[1][0] && side[1] == ex[1]->image[1][1]);
    for (int r = 0; r < ex[0]->n_rows; r++) {
        const TrainRow *row = &ex[0]->rows[r];
        int n_img = 0;
        for (int t = 0; t < row->n; t++) n_img += row->ids[t] == cfg.image_token_id;
        EXPECT_INT_EQ(n_img, row->image >= 0 ? 2 * cfg.image_tokens : 0);
    }
    for (int i = 0; i < 3; i++) train_example_free(&scratch[i]);
    TrainBatch b;
    train_batch_init(&b, &d, 3, 0);
    EXPECT_INT_EQ(b.cap_images, 12);
    const int idx[3] = {0, 1, 2};
    train_batch_build(&b, &d, idx, 3, NULL);
    // batch images: ex 0 w (a, b) l (b, gray), ex 1 w (b, gray) = ex 0's l, l (gray, a), ex 2 w (gray) shared, l (a)
    EXPECT_INT_EQ(b.n_images, 6);
    const BatchGroup *G = &b.g[0];
    int rows_seen[3] = {0, 0, 0};
    for (int i = 0; i < G->B; i++) {
        EXPECT(G->image_of_row[i] >= 0 && G->image_of_row[i] + G->images_of_row[i] <= b.n_images);
        EXPECT_INT_EQ(G->images_of_row[i], b.example_of_row[G->members[i]] == 2 ? 1 : 2);
        rows_seen[b.example_of_row[G->members[i]]]++;
    }
    EXPECT(rows_seen[0] == 4 && rows_seen[1] == 4 && rows_seen[2] == 4);  // S-VCO's four image rows, unpacked
    train_batch_free(&b);
    train_data_free(&d);
    free(data);
}

// mDPO on records with image lists: the corrupted row crops every image of the record, each with its own draw (mDPO's
// crop_images crops each image of its list), with --crop fixed (a table image per crop, (seed, example, part)) and
// with fresh crops (drawn per pass); a record showing one image twice gets two different crops of it. Training runs
// on such records, and with fixed crops the step-0 loss is 3 log 2 (policy = reference).
TEST(train_mdpo_multi_image_crops) {
    char *dir = test_image_dir("mdpo_multi_crops");
    const char *rec = "{\"image\": [\"images/a.png\", \"images/a.png\"], \"prompt_ids\": [1, 5, 90, 6, 90, 7], "
                      "\"chosen_ids\": [6, 2], \"rejected_ids\": [7, 2]}\n"
                      "{\"image\": [\"images/b.png\", \"images/gray.png\", \"images/a.png\"], \"prompt_ids\": [1, 90, 90, 8, 90], "
                      "\"chosen_ids\": [9, 2], \"rejected_ids\": [10, 2]}\n";
    char *data = save_data(dir, xstrdup(rec), strlen(rec));
    LlavaConfig cfg;
    llava_config_load(&cfg, GQA);
    PreprocessConfig pcfg = records_tower_preprocess_config(GQA, &cfg.vision);
    const int S = cfg.vision.image_size;
    const size_t img = (size_t)3 * S * S;
    float *px = xmalloc(sizeof(float) * img * 3);
    for (int fresh = 0; fresh < 2; fresh++) {
        TrainDataOptions opt = {.seed = 7, .crop_lo = 0.01, .crop_hi = 0.2, .fresh_crops = fresh};
        TrainData d;
        train_data_load(&d, recipe_find("mdpo"), data, &cfg, &pcfg, &opt);
        TrainExample scratch[2] = {0};
        const TrainExample *ex[2];
        for (int e = 0; e < 2; e++) ex[e] = train_data_example(&d, e, &scratch[e]);  // the rows, as a batch makes them
        EXPECT(ex[0]->n_image[1] == 2 && ex[1]->n_image[1] == 3);
        EXPECT_INT_EQ(d.max_example_images, 6);
        for (int e = 0; e < 2; e++)
            for (int r = 0; r < ex[e]->n_rows; r++) {  // every row (the cropped one too) has a run per image
                const TrainRow *row = &ex[e]->rows[r];
                int n_img = 0;
                for (int t = 0; t < row->n; t++) n_img += row->ids[t] == cfg.image_token_id;
                EXPECT_INT_EQ(n_img, ex[e]->n_image[0] * cfg.image_tokens);
            }
        if (!fresh) {
            for (int e = 0; e < 2; e++)
                for (int q = 0; q < ex[e]->n_image[1]; q++) {
                    const TrainImage *c = &d.images[ex[e]->image[1][q]];
                    EXPECTF(c->kind == TRAIN_IMAGE_CROP && c->index == ex[e]->image[0][q] && c->part == q,
                            "example %d crop %d: kind %d of image %ld, part %d", e, q, c->kind, c->index, c->part);
                }
            train_data_image(&d, ex[0]->image[0][0], px);            // a.png
            train_data_image(&d, ex[0]->image[1][0], px + img);      // its first crop
            train_data_image(&d, ex[0]->image[1][1], px + 2 * img);  // its second
        } else {
            TrainBatch b;
            train_batch_init(&b, &d, 2, 0);
            const int idx[2] = {0, 1};
            train_batch_build(&b, &d, idx, 2, NULL);
            train_batch_draw_crops(&b, &d, train_crop_stream(7, 0, 0, 0));
            // batch images: ex 0 (a, a), its crops, ex 1 (b, gray, a), its crops
            EXPECT_INT_EQ(b.n_images, 10);
            for (int i = 0; i < b.n_images; i++) {
                const int crop = (i >= 2 && i < 4) || i >= 7, q = i < 4 ? i - 2 : i - 7;
                EXPECTF(b.crop_source[i] == (crop ? (i < 4 ? q : 4 + q) : -1) && b.crop_part[i] == (crop ? q : -1),
                        "batch image %d: crop of %d, part %d", i, b.crop_source[i], b.crop_part[i]);
            }
            memcpy(px, b.pixels, sizeof(float) * img * 3);
            memcpy(px + img, b.pixels + 2 * img, sizeof(float) * img * 2);
            train_batch_free(&b);
        }
        EXPECTF(memcmp(px, px + img, sizeof(float) * img) && memcmp(px + img, px + 2 * img, sizeof(float) * img),
                "%s crops: the two crops of one image are the image or each other", fresh ? "fresh" : "fixed");
        for (int e = 0; e < 2; e++) train_example_free(&scratch[e]);
        train_data_free(&d);
    }
    free(px);
    char *out = path_join(test_tmpdir(), "mdpo_multi_crops_runs"), args[2048], *err, mlog[600];
    for (int fresh = 0; fresh < 2; fresh++) {
        snprintf(args, sizeof(args), "train --recipe mdpo --model " GQA " --data %s --out %s/%d --steps 2 --batch 2 --lr 1e-3 "
                 "--warmup-steps 0 --device cpu --quiet%s", data, out, fresh, fresh ? " --ref online" : " --crop fixed");
        EXPECTF(run_train(args, &err) == 0, "mdpo %s crops: %s", fresh ? "fresh" : "fixed", err);
        free(err);
        snprintf(mlog, sizeof(mlog), "%s/%d/metrics.jsonl", out, fresh);
        double v[4];
        EXPECT_INT_EQ(test_read_metric(mlog, "loss", v, 4), 2);
        if (!fresh) EXPECT_NEAR(v[0], 3 * log(2.0), 1e-9);
    }
    free(out); free(data);
}

// S-VCO on MVC pairs with two images a side: packing gives the same losses as separate rows, the step-0 loss is the
// policy = reference identity, and the streaming loader decodes every image of a row (the same weights as images
// made on the training thread). DPO on records with image lists, packed and not, the same.
TEST(train_multi_image_packing_is_exact) {
    static const char *const recipes[2] = {"svco", "dpo"};
    for (int k = 0; k < 2; k++) {
        char name[64], args[2048], *err, la[600], lb[600];
        snprintf(name, sizeof(name), "multi_pack_%s", recipes[k]);
        char *data = write_multi_data(name, recipes[k], 6), *a = path_join(test_tmpdir(), name);
        for (int p = 0; p < 2; p++) {
            snprintf(args, sizeof(args), "train --recipe %s --model " GQA " --data %s --out %s/%s --steps 3 --batch 3 --lr 2e-3 "
                     "--warmup-steps 0 --device cpu --quiet%s", recipes[k], data, a, p ? "plain" : "packed", p ? " --no-pack" : "");
            EXPECTF(run_train(args, &err) == 0, "%s %s: %s", recipes[k], p ? "plain" : "packed", err);
            free(err);
        }
        snprintf(la, sizeof(la), "%s/packed/metrics.jsonl", a);
        snprintf(lb, sizeof(lb), "%s/plain/metrics.jsonl", a);
        double x[4], y[4];
        EXPECT_INT_EQ(test_read_metric(la, "loss", x, 4), 3);
        EXPECT_INT_EQ(test_read_metric(lb, "loss", y, 4), 3);
        EXPECT_NEAR(x[0], (k == 0 ? 4 : 1) * log(2.0), 1e-9);
        for (int i = 0; i < 3; i++) EXPECT_NEAR(x[i], y[i], 1e-5);
        EXPECTF(x[2] != x[0], "%s: the loss did not move (%.9f)", recipes[k], x[2]);
        printf("      %s: losses %.6f %.6f %.6f packed, %.6f %.6f %.6f not\n", recipes[k], x[0], x[1], x[2], y[0], y[1], y[2]);
        if (k == 0) {
            char dir[700];
            snprintf(dir, sizeof(dir), "%s/stream", a);
            snprintf(args, sizeof(args), "--recipe svco --model " GQA " --data %s --steps 2 --batch 3 --lr 2e-3 --warmup-steps 0 "
                     "--device cpu --quiet", data);
            setenv("VLM_CACHE_FEATURES", "0", 1);  // the tower runs on the streamed pixels
            EXPECTF(same_weights_with_env("VLM_LOADER_WORKERS", "0", args, dir, 2),
                    "multi-image svco: the weights differ between the prefetching loader and images made on the training thread");
            unsetenv("VLM_CACHE_FEATURES");
        }
        free(a); free(data);
    }
}

// SFT on records with image lists trains (ids form), and its loss depends on the second image: swapping the two
// images of every record changes the first loss.
TEST(train_multi_image_sft) {
    char *data = write_multi_data("multi_sft", "sft", 6), *dir = path_join(test_tmpdir(), "multi_sft_runs"), args[2048], *err;
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s/a --steps 4 --batch 3 --lr 2e-3 "
             "--warmup-steps 0 --device cpu --quiet", data, dir);
    EXPECTF(run_train(args, &err) == 0, "%s", err);
    free(err);
    char *text = read_file(data, NULL), *swapped = path_join(dir, "swapped.jsonl"), logs[2][700];
    for (char *p = text; (p = strstr(p, "\"images/a.png\", \"images/b.png\"")); p += 10)  // (a, b) -> (b, a)
        memcpy(p, "\"images/b.png\", \"images/a.png\"", 30);
    write_file_atomic(swapped, text, strlen(text));
    char cmd[1200], *src_dir = path_dirname(data);
    snprintf(cmd, sizeof(cmd), "cp -r %s/images %s/", src_dir, dir);
    EXPECT(test_shell(cmd) == 0);
    snprintf(args, sizeof(args), "train --recipe sft --model " GQA " --data %s --out %s/b --steps 4 --batch 3 --lr 2e-3 "
             "--warmup-steps 0 --device cpu --quiet", swapped, dir);
    EXPECTF(run_train(args, &err) == 0, "%s", err);
    free(err);
    double x[4], y[4];
    snprintf(logs[0], sizeof(logs[0]), "%s/a/metrics.jsonl", dir);
    snprintf(logs[1], sizeof(logs[1]), "%s/b/metrics.jsonl", dir);
    EXPECT_INT_EQ(test_read_metric(logs[0], "loss", x, 4), 4);
    EXPECT_INT_EQ(test_read_metric(logs[1], "loss", y, 4), 4);
    EXPECTF(x[3] < x[0], "sft loss %.4f -> %.4f", x[0], x[3]);
    EXPECTF(fabs(x[0] - y[0]) > 1e-6, "swapping the images left the loss at %.9f", x[0]);
    free(text); free(swapped); free(src_dir); free(dir); free(data);
}

// The frozen tower's feature cache encodes the data a micro-batch of LLAVA_FEATURE_CHUNK examples at a time: with
// three distinct images per example a chunk has more than two per example (192 paths, links to one file), and the
// cached features train the same weights as the tower run in every batch.
TEST(train_multi_image_feature_cache_chunk) {
    enum { N = LLAVA_FEATURE_CHUNK, PER = 3 };
    char *dir = test_image_dir("multi_feature_chunk"), cmd[1200];
    snprintf(cmd, sizeof(cmd), "cd %s/images && for i in $(seq 0 %d); do ln -s a.png i$i.png; done", dir, N * PER - 1);
    EXPECT(test_shell(cmd) == 0);
    size_t cap = 1 << 20, len = 0;
    char *text = xmalloc(cap), line[1024];
    for (int i = 0; i < N; i++) {
        snprintf(line, sizeof(line), "{\"image\": [\"images/i%d.png\", \"images/i%d.png\", \"images/i%d.png\"], "
                 "\"prompt_ids\": [1, 90, 90, 90, %d], ", PER * i, PER * i + 1, PER * i + 2, rnd(3, 80));
        append_responses(line, sizeof(line), "sft");
        len += snprintf(text + len, cap - len, "%s", line);
    }
    char *data = save_data(xstrdup(dir), text, len), *runs = path_join(dir, "runs"), args[1024];
    snprintf(args, sizeof(args), "--recipe sft --model " GQA " --data %s --steps 1 --batch 2 --lr 2e-3 --warmup-steps 0 --device cpu "
             "--quiet", data);
    EXPECTF(same_weights_with_env("VLM_CACHE_FEATURES", "0", args, runs, 1),
            "192 images in a chunk of 64 examples: the weights differ between cached features and the tower run per batch");
    free(runs); free(data); free(dir);
}

// The reference log-prob cache is keyed by the data hash, which depends on every image of every side in order: data
// that differ only in a row's second image (or in the order of its images) hash differently.
TEST(train_multi_image_reference_cache_key) {
    // row 1's w images, row 2's w images: variant 1 changes row 2's second image, variant 2 swaps row 1's images
    static const char *const w[3][2] = {{"a.png\", \"images/b.png", "a.png\", \"images/b.png"},
                                        {"a.png\", \"images/b.png", "a.png\", \"images/gray.png"},
                                        {"b.png\", \"images/a.png", "a.png\", \"images/b.png"}};
    char *dir = test_image_dir("multi_hash"), path[3][600];
    for (int v = 0; v < 3; v++) {
        char text[1024];
        size_t m = 0;
        for (int r = 0; r < 2; r++)
            m += snprintf(text + m, sizeof(text) - m, "{\"image_w\": [\"images/%s\"], \"image_l\": [\"images/gray.png\", "
                          "\"images/a.png\"], \"prompt_ids\": [1, 5, 90, 6, 90, 7], \"chosen_ids\": [8, 2], \"rejected_ids\": [9, 2]}\n",
                          w[v][r]);
        snprintf(path[v], sizeof(path[v]), "%s/data%d.jsonl", dir, v);
        write_file_atomic(path[v], text, m);
    }
    unsigned long long h[4];
    for (int v = 0; v < 4; v++) {
        TrainData d;
        LlavaConfig cfg;
        load_gqa_data(&d, "svco", path[v % 3], &cfg);
        EXPECT_INT_EQ(d.n, 2);
        h[v] = d.hash;
        train_data_free(&d);
    }
    EXPECTF(h[0] != h[1], "the rows differ in their second image only, the hashes are the same");
    EXPECTF(h[0] != h[2], "the rows differ in the order of their images only, the hashes are the same");
    EXPECT(h[3] == h[0]);  // the same data: the same key
    free(dir);
}

// Mismatched counts and too many images are errors naming the file, the record and the two counts.
TEST(train_multi_image_errors) {
    char *dir = test_image_dir("multi_errors"), args[2048], *err, cmd[1200];
    snprintf(cmd, sizeof(cmd), "cp tests/fixtures/models/llava_tok/images/c.png %s/images/", dir);
    EXPECT(test_shell(cmd) == 0);
    static const struct { const char *recipe, *model, *record, *want; } cases[] = {
        {"sft", GQA, "{\"image\": [\"images/a.png\", \"images/b.png\"], \"prompt_ids\": [1, 90, 5], \"response_ids\": [6, 2]}",
         "data.jsonl:2: 1 image tokens (id 90) for 2 images: expected 2 (one per image, expanded here) or exactly 32"},
        {"svco", GQA, "{\"image_w\": [\"images/a.png\", \"images/b.png\"], \"image_l\": [\"images/a.png\"], \"prompt_ids\": "
         "[1, 90, 90, 5], \"chosen_ids\": [6, 2], \"rejected_ids\": [7, 2]}",
         "data.jsonl:2: 2 image tokens (id 90): expected one (expanded here) or exactly 16"},
        {"sft", "tests/fixtures/models/llava_tok", "{\"image\": [\"images/c.png\", \"images/c.png\"], \"conversations\": "
         "[{\"from\": \"human\", \"value\": \"<image>\\nWhat is it?\"}, {\"from\": \"gpt\", \"value\": \"A circle.\"}]}",
         "data.jsonl:2: the conversation has 1 <image> placeholders for 2 images"},
        {"svco", GQA, "{\"image_w\": [\"images/a.png\", \"images/a.png\", \"images/a.png\", \"images/a.png\", \"images/a.png\", "
         "\"images/a.png\", \"images/a.png\", \"images/a.png\", \"images/a.png\"], \"image_l\": \"images/b.png\", "
         "\"prompt_ids\": [1, 90, 5], \"chosen_ids\": [6, 2], \"rejected_ids\": [7, 2]}",
         "data.jsonl:2: \"image_w\" has 9 images; at most 8 per side are supported"},
        {"mdpo", GQA, "{\"prompt_ids\": [1, 5], \"chosen_ids\": [6, 2], \"rejected_ids\": [7, 2]}",
         "data.jsonl:2: mdpo needs an image (its corrupted images are crops of the record's), the record has none"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char text[2048], path[700];
        // a good record first: the bad one is record (line) 2
        const int tok = strstr(cases[c].model, "llava_tok") != NULL;
        snprintf(text, sizeof(text), "%s\n%s\n",
                 tok ? "{\"image\": \"images/c.png\", \"prompt\": \"What is it?\", \"response\": \"A circle.\"}"
                 : !strcmp(cases[c].recipe, "svco") ? "{\"image_w\": \"images/a.png\", \"image_l\": \"images/b.png\", \"prompt_ids\": "
                 "[1, 90, 5], \"chosen_ids\": [6, 2], \"rejected_ids\": [7, 2]}"
                 : !strcmp(cases[c].recipe, "mdpo") ? "{\"image\": \"images/a.png\", \"prompt_ids\": [1, 90, 5], \"chosen_ids\": [6, 2], "
                 "\"rejected_ids\": [7, 2]}" : "{\"image\": \"images/a.png\", \"prompt_ids\": [1, 90, 5], \"response_ids\": [6, 2]}",
                 cases[c].record);
        snprintf(path, sizeof(path), "%s/data.jsonl", dir);
        write_file_atomic(path, text, strlen(text));
        char tok_flag[600] = "";
        if (tok) snprintf(tok_flag, sizeof(tok_flag), " --tokenizer %s/tokenizers/llama2_tokenizer.model", test_shared_data());
        snprintf(args, sizeof(args), "train --recipe %s --model %s --data %s --out %s/run%zu --steps 1 --device cpu --quiet%s",
                 cases[c].recipe, cases[c].model, path, dir, c, tok_flag);
        EXPECTF(run_train(args, &err) != 0, "case %zu ran", c);
        EXPECTF(strstr(err, cases[c].want) != NULL, "case %zu: message: %s", c, err);
        free(err);
    }
    free(dir);
}
