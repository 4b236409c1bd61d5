// transformers -> C parity: the CPU backend reproduces the fixtures of tests/ref/make_fixtures.py
// (tiny random LLaVA and CLIP models in HF format) to a relative error of 1e-4: logits, per-row
// response log-probs, losses and the gradient of every parameter tensor.
#include <stdlib.h>
#include <string.h>

#include "../data/preprocess.h"
#include "../model/clip.h"
#include "../model/llava.h"
#include "../model/siglip.h"
#include "../model/dinov2.h"
#include "../model/safetensors.h"
#include "../train/losses.h"
#include "../util/common.h"
#include "test.h"

#define FIXTURES "tests/fixtures/models/"

static float *ex_f32(const SafeTensors *ex, const char *name, size_t *n) {
    const STTensor *t = st_find(ex, name);
    if (!t) fatal("expected.safetensors: no tensor '%s'", name);
    float *x = xmalloc(sizeof(float) * (t->numel ? t->numel : 1));
    st_to_f32(t, x);
    if (n) *n = t->numel;
    return x;
}

static int *ex_i32(const SafeTensors *ex, const char *name, size_t *n) {
    const STTensor *t = st_find(ex, name);
    if (!t || t->dtype != DT_I32) fatal("expected.safetensors: no int32 tensor '%s'", name);
    int *x = xmalloc(sizeof(int) * (t->numel ? t->numel : 1));
    memcpy(x, t->data, sizeof(int) * t->numel);
    if (n) *n = t->numel;
    return x;
}

// max |a - b| / max |b|: the error relative to the tensor's scale. The scale has a floor of 1e-6: some
// gradients are zero in exact arithmetic (the key bias cancels in the softmax) and both sides hold noise.
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = d;  // NaN propagates
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 1e-6 ? den : 1e-6);
}

// Compares every gradient in the stores with the fixture's <prefix><name> (prefix "grad." where one fixture has one
// set of gradients); every fixture gradient under the prefix must be used.
static void compare_grads_at(ParamStore **stores, int n_stores, const SafeTensors *ex, const char *prefix, NameCandidates cand,
                             double tol) {
    int matched = 0, expected = 0;
    const size_t np = strlen(prefix);
    for (int i = 0; i < ex->n; i++) if (!strncmp(ex->tensors[i].name, prefix, np)) expected++;
    double worst = 0;
    const char *worst_name = "";
    for (int s = 0; s < n_stores; s++) {
        ParamStore *ps = stores[s];
        float *g = xmalloc(sizeof(float) * ps->numel);
        ps->be->download_act(g, ps->grad, ps->numel);
        for (int i = 0; i < ps->n; i++) {
            const ParamInfo *p = &ps->info[i];
            char names[8][256], key[280];
            int nc = cand ? cand(p->name, names, 8) : 0;
            if (!nc) { snprintf(names[0], 256, "%s", p->name); nc = 1; }
            const STTensor *t = NULL;
            for (int c = 0; c < nc && !t; c++) { snprintf(key, sizeof(key), "%.20s%.256s", prefix, names[c]); t = st_find(ex, key); }
            EXPECTF(t != NULL, "no fixture gradient for %s", p->name);
            if (!t) continue;
            EXPECT_INT_EQ(t->numel, p->numel);
            float *want = xmalloc(sizeof(float) * t->numel);
            st_to_f32(t, want);
            double e = rel_err(g + p->offset, want, p->numel);
            size_t nl = strlen(p->name);
            if (nl > 11 && !strcmp(p->name + nl - 11, "k_proj.bias") && !strstr(p->name, "language_model")) {
                // Zero in exact arithmetic without rotary embeddings: q.(k_j + b) shifts every score of a query
                // by the same q.b, which the softmax cancels. Both sides hold rounding noise: check its size.
                double mine = 0, theirs = 0;
                for (size_t k = 0; k < p->numel; k++) {
                    mine = fmax(mine, fabs(g[p->offset + k]));
                    theirs = fmax(theirs, fabs(want[k]));
                }
                EXPECTF(mine < 1e-5 && theirs < 1e-5, "%s: expected ~0, got %.3g (transformers %.3g)", p->name, mine, theirs);
                e = 0;
            }
            if (!(e <= worst)) { worst = e; worst_name = p->name; }
            EXPECTF(e <= tol, "gradient of %s: relative error %.3g", p->name, e);
            free(want);
            matched++;
        }
        free(g);
    }
    EXPECTF(matched == expected, "compared %d gradients, the fixture has %d", matched, expected);
    printf("      gradients: %d tensors, worst relative error %.2e (%s)\n", matched, worst, worst_name);
}

static void compare_grads(ParamStore **stores, int n_stores, const SafeTensors *ex, NameCandidates cand, double tol) {
    compare_grads_at(stores, n_stores, ex, "grad.", cand, tol);
}

// expected: the fixture file, expected.safetensors (make_fixtures.py) or multi_image.safetensors
// (make_multi_image_fixtures.py: several images in a row, images_of_row given)
static void check_llava_fixture_file(const char *name, const char *expected, ActsMode mode) {
    char dir[256], exp[300];
    snprintf(dir, sizeof(dir), FIXTURES "%s", name);
    snprintf(exp, sizeof(exp), "%s/%s", dir, expected);
    Llava m;
    llava_load(&m, &backend_cpu, dir, (LlavaTrainable){1, 1, 1});
    SafeTensors *ex = st_open_or_die(exp);
    size_t n_ids, n_img;
    int *ids = ex_i32(ex, "input_ids", &n_ids), *labels = ex_i32(ex, "labels", NULL);
    int *lengths = ex_i32(ex, "lengths", NULL), *image_of_row = ex_i32(ex, "image_of_row", NULL);
    int *images_of_row = st_find(ex, "images_of_row") ? ex_i32(ex, "images_of_row", NULL) : NULL;
    const STTensor *tid = st_find(ex, "input_ids");
    int B = (int)tid->shape[0], T = (int)tid->shape[1], V = m.cfg.text.vocab;
    float *pixels = ex_f32(ex, "pixel_values", &n_img);
    int NI = (int)st_find(ex, "pixel_values")->shape[0];
    float *want_logits = ex_f32(ex, "logits", NULL), *want_row = ex_f32(ex, "row_logp", NULL);
    float *want_loss = ex_f32(ex, "loss", NULL);

    LlavaActs a;
    llava_acts_init(&a, &m, B, T, NI, 0, mode);
    LlavaBatch batch = {.B = B, .T = T, .ids = ids, .labels = labels, .lengths = lengths, .image_of_row = image_of_row,
                        .images_of_row = images_of_row, .n_images = NI, .pixels = pixels, .all_logits = 1};
    llava_forward(&m, &a, &batch);

    // logits at every valid position
    float *logits = xmalloc(sizeof(float) * (size_t)a.M * V), *ref = xmalloc(sizeof(float) * (size_t)a.M * V);
    backend_cpu.download_act(logits, a.l.logits, (size_t)a.M * V);
    for (int i = 0; i < a.M; i++)
        memcpy(ref + (size_t)i * V, want_logits + ((size_t)a.out_row[i] * T + a.out_pos[i]) * V, sizeof(float) * V);
    double e_logits = rel_err(logits, ref, (size_t)a.M * V);
    EXPECTF(e_logits <= 1e-4, "%s logits: relative error %.3g", name, e_logits);
    int expect_M = 0;
    for (int b = 0; b < B; b++) expect_M += lengths[b];
    EXPECT_INT_EQ(a.M, expect_M);
    // per-row response log-probs (row 2 is image-free)
    int n_label = 0;
    for (int b = 0; b < B; b++) {
        EXPECT_NEAR(a.row_logp[b], want_row[b], 1e-4);
        n_label += a.row_count[b];
    }
    // loss = mean cross-entropy over the labelled tokens; dL/dlogp = -1/n for each of them
    double loss = 0, *dlogp = xcalloc(a.M, sizeof(double));
    for (int b = 0; b < B; b++) loss -= a.row_logp[b] / n_label;
    EXPECT_NEAR(loss, want_loss[0], 1e-4);
    for (int i = 0; i < a.M; i++) {
        int b = a.out_row[i], t = a.out_pos[i];
        if (t + 1 < lengths[b] && labels[b * T + t + 1] != -100) dlogp[i] = -1.0 / n_label;
    }
    llava_backward(&m, &a, dlogp);
    ParamStore *stores[3] = {&m.ps_vision, &m.ps_projector, &m.ps_text};
    printf("      %s: logits relative error %.2e, loss %.6f (transformers %.6f)\n", name, e_logits, loss, want_loss[0]);
    compare_grads(stores, 3, ex, llava_name_candidates, 1e-4);

    free(dlogp); free(logits); free(ref); free(ids); free(labels); free(lengths); free(image_of_row); free(images_of_row);
    free(pixels); free(want_logits); free(want_row); free(want_loss);
    llava_acts_free(&a);
    st_close(ex);
    llava_free(&m);
}

static void check_llava_fixture(const char *name, ActsMode mode) { check_llava_fixture_file(name, "expected.safetensors", mode); }

TEST(parity_llava_gqa) { check_llava_fixture("llava_gqa", ACTS_BACKWARD); }
TEST(parity_llava_full_strategy_hub_layout) { check_llava_fixture("llava_full", ACTS_BACKWARD); }
// SigLIP towers and Qwen2 decoders (LLaVA-Interleave's kinds): feature layers -1 and -2, "full", untied and tied
TEST(parity_llava_siglip_qwen2) { check_llava_fixture("llava_siglip_qwen2", ACTS_BACKWARD); }
TEST(parity_llava_siglip_qwen2_tied_hub_layout) { check_llava_fixture("llava_siglip_qwen2_tied", ACTS_BACKWARD); }
// several images in one prompt, each image's tokens taking its own features in order (CLIP and SigLIP towers)
TEST(parity_llava_multi_image) { check_llava_fixture_file("llava_gqa", "multi_image.safetensors", ACTS_BACKWARD); }
TEST(parity_llava_multi_image_siglip_qwen2) {
    check_llava_fixture_file("llava_siglip_qwen2", "multi_image.safetensors", ACTS_BACKWARD);
}
// activation recomputation: the decoder layers run again in the backward pass, against the same fixtures
TEST(parity_llava_gqa_recompute) { check_llava_fixture("llava_gqa", ACTS_BACKWARD_RECOMPUTE); }

// Loss gradients of every parameter with the decoder's activations kept or recomputed: the recomputed
// layers see the same inputs and run the same ops, so the gradients are the same bits; the recomputing
// layout is smaller (only the layers' inputs are kept per layer).
TEST(recompute_gradients_equal_kept_bitwise) {
    const char *dir = FIXTURES "llava_gqa";
    SafeTensors *ex = st_open_or_die(FIXTURES "llava_gqa/expected.safetensors");
    int *ids = ex_i32(ex, "input_ids", NULL), *labels = ex_i32(ex, "labels", NULL);
    int *lengths = ex_i32(ex, "lengths", NULL), *image_of_row = ex_i32(ex, "image_of_row", NULL);
    const STTensor *tid = st_find(ex, "input_ids");
    int B = (int)tid->shape[0], T = (int)tid->shape[1], NI = (int)st_find(ex, "pixel_values")->shape[0];
    float *pixels = ex_f32(ex, "pixel_values", NULL);
    LlavaBatch batch = {.B = B, .T = T, .ids = ids, .labels = labels, .lengths = lengths, .image_of_row = image_of_row,
                        .n_images = NI, .pixels = pixels};
    float *grads[2] = {NULL, NULL};
    size_t n_grad = 0, arena_bytes[2];
    double loss[2];
    for (int k = 0; k < 2; k++) {
        Llava m;
        llava_load(&m, &backend_cpu, dir, (LlavaTrainable){1, 1, 1});
        LlavaActs a;
        llava_acts_init(&a, &m, B, T, NI, 0, k == 0 ? ACTS_BACKWARD : ACTS_BACKWARD_RECOMPUTE);
        arena_bytes[k] = a.arena.cap;
        llava_forward(&m, &a, &batch);
        double *dlogp = xcalloc(a.M, sizeof(double));
        loss[k] = 0;
        for (int i = 0; i < a.M; i++) {
            dlogp[i] = a.out_target[i] >= 0 ? -0.1 * (1 + a.out_row[i]) : 0;  // a different weight per row
            loss[k] += dlogp[i] * a.logp[i];
        }
        llava_backward(&m, &a, dlogp);
        ParamStore *stores[3] = {&m.ps_vision, &m.ps_projector, &m.ps_text};
        n_grad = 0;
        for (int s = 0; s < 3; s++) n_grad += stores[s]->numel;
        grads[k] = xmalloc(sizeof(float) * n_grad);
        for (int s = 0, off = 0; s < 3; off += (int)stores[s]->numel, s++) memcpy(grads[k] + off, stores[s]->grad, sizeof(float) * stores[s]->numel);
        free(dlogp);
        llava_acts_free(&a);
        llava_free(&m);
    }
    EXPECTF(loss[0] == loss[1], "the forward pass differs: %.9g vs %.9g", loss[0], loss[1]);
    size_t differ = 0, nonzero = 0;
    for (size_t i = 0; i < n_grad; i++) { differ += memcmp(&grads[0][i], &grads[1][i], sizeof(float)) != 0; nonzero += grads[0][i] != 0; }
    EXPECTF(differ == 0, "%zu of %zu gradient entries differ with recomputation", differ, n_grad);
    EXPECTF(nonzero > n_grad / 2, "only %zu of %zu gradient entries are nonzero", nonzero, n_grad);
    EXPECTF(arena_bytes[1] < arena_bytes[0], "the recomputing layout (%zu bytes) should be smaller than %zu", arena_bytes[1], arena_bytes[0]);
    printf("      activations %zu -> %zu bytes with recomputation\n", arena_bytes[0], arena_bytes[1]);
    free(grads[0]); free(grads[1]); free(ids); free(labels); free(lengths); free(image_of_row); free(pixels);
    st_close(ex);
}

TEST(parity_clip) {
    const char *dir = FIXTURES "clip";
    ClipModel m;
    clip_model_load(&m, &backend_cpu, dir, 1);
    SafeTensors *ex = st_open_or_die(FIXTURES "clip/expected.safetensors");
    int *ids = ex_i32(ex, "input_ids", NULL);
    const STTensor *tid = st_find(ex, "input_ids");
    int B = (int)tid->shape[0], T = (int)tid->shape[1], P = m.cfg.projection_dim;
    float *pixels = ex_f32(ex, "pixel_values", NULL);
    float *want_img = ex_f32(ex, "image_embeds", NULL), *want_txt = ex_f32(ex, "text_embeds", NULL);
    float *want_logits = ex_f32(ex, "logits_per_image", NULL), *want_loss = ex_f32(ex, "loss", NULL);
    ClipActs a;
    clip_acts_init(&a, &m, B, B, T, 1);
    clip_model_forward(&m, &a, pixels, B, ids, B, T);
    float *img = xmalloc(sizeof(float) * B * P), *txt = xmalloc(sizeof(float) * B * P);
    backend_cpu.download_act(img, a.img_emb, (size_t)B * P);
    backend_cpu.download_act(txt, a.txt_emb, (size_t)B * P);
    ClipLossOut out;
    float *dimg = xmalloc(sizeof(float) * B * P), *dtxt = xmalloc(sizeof(float) * B * P);
    clip_contrastive_loss(img, txt, B, P, clip_model_logit_scale(&m), &out, dimg, dtxt);
    float *img_n = xmalloc(sizeof(float) * B * P), *txt_n = xmalloc(sizeof(float) * B * P);
    for (int i = 0; i < B * P; i++) { img_n[i] = (float)out.img_normed[i]; txt_n[i] = (float)out.txt_normed[i]; }
    float logits[64];
    for (int i = 0; i < B * B; i++) logits[i] = (float)out.logits_per_image[i];
    EXPECTF(rel_err(img_n, want_img, (size_t)B * P) <= 1e-4, "image embeds off by %.3g", rel_err(img_n, want_img, (size_t)B * P));
    EXPECTF(rel_err(txt_n, want_txt, (size_t)B * P) <= 1e-4, "text embeds off by %.3g", rel_err(txt_n, want_txt, (size_t)B * P));
    EXPECTF(rel_err(logits, want_logits, (size_t)B * B) <= 1e-4, "logits off by %.3g", rel_err(logits, want_logits, (size_t)B * B));
    EXPECT_NEAR(out.loss, want_loss[0], 1e-4);
    clip_model_backward(&m, &a, dimg, B, dtxt, B, T, (float)out.dlogit_scale);
    printf("      clip: loss %.6f (transformers %.6f)\n", out.loss, want_loss[0]);
    ParamStore *stores[1] = {&m.ps};
    compare_grads(stores, 1, ex, NULL, 1e-4);
    clip_loss_out_free(&out);
    free(ids); free(pixels); free(want_img); free(want_txt); free(want_logits); free(want_loss);
    free(img); free(txt); free(dimg); free(dtxt); free(img_n); free(txt_n);
    clip_acts_free(&a);
    st_close(ex);
    clip_model_free(&m);
}

// SiglipVisionModel with its pooling head: last_hidden_state, pooler_output and every gradient of a loss on both
TEST(parity_siglip_vision) {
    SiglipVision m;
    siglip_vision_load(&m, &backend_cpu, FIXTURES "siglip_vision", 1);
    EXPECT(m.vision.has_head);
    SafeTensors *ex = st_open_or_die(FIXTURES "siglip_vision/expected.safetensors");
    const int B = (int)st_find(ex, "pixel_values")->shape[0], N = m.vision.n_tokens, C = m.cfg.hidden;
    float *pixels = ex_f32(ex, "pixel_values", NULL), *want_hidden = ex_f32(ex, "last_hidden_state", NULL);
    float *want_pooled = ex_f32(ex, "pooler_output", NULL), *dpooled = ex_f32(ex, "dpooled", NULL);
    float *dhidden = ex_f32(ex, "dhidden", NULL), *want_loss = ex_f32(ex, "loss", NULL);
    SiglipVisionActs a;
    siglip_vision_acts_init(&a, &m, B, 1);
    siglip_vision_forward(&m, &a, pixels, B);
    float *hidden = xmalloc(sizeof(float) * B * N * C), *pooled = xmalloc(sizeof(float) * B * C);
    backend_cpu.download_act(hidden, a.v.post, (size_t)B * N * C);
    backend_cpu.download_act(pooled, a.v.pooled, (size_t)B * C);
    double e_hidden = rel_err(hidden, want_hidden, (size_t)B * N * C), e_pooled = rel_err(pooled, want_pooled, (size_t)B * C);
    EXPECTF(e_hidden <= 1e-4, "last_hidden_state: relative error %.3g", e_hidden);
    EXPECTF(e_pooled <= 1e-4, "pooler_output: relative error %.3g", e_pooled);
    double loss = 0;
    for (int i = 0; i < B * C; i++) loss += (double)pooled[i] * dpooled[i];
    for (int i = 0; i < B * N * C; i++) loss += (double)hidden[i] * dhidden[i];
    EXPECT_NEAR(loss, want_loss[0], 1e-4 * fabs(want_loss[0]));
    siglip_vision_backward(&m, &a, dpooled, dhidden, B);
    printf("      siglip_vision: hidden %.2e, pooled %.2e relative error, loss %.6f (transformers %.6f)\n", e_hidden, e_pooled,
           loss, want_loss[0]);
    ParamStore *stores[1] = {&m.ps};
    compare_grads(stores, 1, ex, siglip_name_candidates, 1e-4);
    // the embedding helper gives the same pooled rows
    float *emb = xmalloc(sizeof(float) * B * C);
    siglip_vision_embed(&m, pixels, B, emb);
    EXPECTF(!memcmp(emb, pooled, sizeof(float) * B * C), "siglip_vision_embed differs from the forward pass");
    free(emb); free(hidden); free(pooled); free(pixels); free(want_hidden); free(want_pooled); free(dpooled); free(dhidden);
    free(want_loss);
    siglip_vision_acts_free(&a);
    st_close(ex);
    siglip_vision_free(&m);
}

// A DINOv2 fixture at each of its image sizes: the pretraining grid and sizes whose grid needs the position
// embeddings interpolated (bicubic up and down; antialiased for the registers model). Outputs, and every parameter's
// gradient of sum(pooler_output * dpooled): layer scales, class token, registers, position table (through the
// interpolation), patch embedding, norms, attention and MLP.
static void dinov2_parity(const char *name, const int *sizes, int n_sizes) {
    char dir[256], path[300], key[64];
    snprintf(dir, sizeof(dir), FIXTURES "%s", name);
    snprintf(path, sizeof(path), "%s/expected.safetensors", dir);
    SafeTensors *ex = st_open_or_die(path);
    for (int s = 0; s < n_sizes; s++) {
        const int S = sizes[s];
        Dinov2 m;
        dinov2_load(&m, &backend_cpu, dir, S, 1);
        snprintf(key, sizeof(key), "pixel_values_%d", S);
        const int B = (int)st_find(ex, key)->shape[0], N = m.vision.n_tokens, C = m.cfg.hidden;
        float *pixels = ex_f32(ex, key, NULL);
        snprintf(key, sizeof(key), "last_hidden_state_%d", S);
        EXPECT(st_find(ex, key)->shape[1] == N);
        float *want_hidden = ex_f32(ex, key, NULL);
        snprintf(key, sizeof(key), "pooler_output_%d", S);
        float *want_pooled = ex_f32(ex, key, NULL);
        Dinov2Acts a;
        dinov2_acts_init(&a, &m, B, 1);
        dinov2_forward(&m, &a, pixels, B);
        float *hidden = xmalloc(sizeof(float) * B * N * C), *pooled = xmalloc(sizeof(float) * B * C);
        backend_cpu.download_act(hidden, a.v.post, (size_t)B * N * C);
        backend_cpu.download_act(pooled, a.v.pooled, (size_t)B * C);
        double e_hidden = rel_err(hidden, want_hidden, (size_t)B * N * C), e_pooled = rel_err(pooled, want_pooled, (size_t)B * C);
        printf("      %s at %d px (grid %d, trained %d): hidden %.2e, pooled %.2e relative error\n", name, S, m.vision.grid,
               m.cfg.pos_grid, e_hidden, e_pooled);
        EXPECTF(e_hidden <= 1e-4, "%s at %d px: last_hidden_state relative error %.3g", name, S, e_hidden);
        EXPECTF(e_pooled <= 1e-4, "%s at %d px: pooler_output relative error %.3g", name, S, e_pooled);
        snprintf(key, sizeof(key), "dpooled_%d", S);
        float *dpooled = ex_f32(ex, key, NULL);
        snprintf(key, sizeof(key), "loss_%d", S);
        float *want_loss = ex_f32(ex, key, NULL);
        double loss = 0;
        for (int i = 0; i < B * C; i++) loss += (double)pooled[i] * dpooled[i];
        EXPECT_NEAR(loss, want_loss[0], 1e-4 * fabs(want_loss[0]));
        dinov2_backward(&m, &a, dpooled, B);
        printf("      %s at %d px: loss %.6f (transformers %.6f)\n", name, S, loss, want_loss[0]);
        snprintf(key, sizeof(key), "grad_%d.", S);
        ParamStore *stores[1] = {&m.ps};
        compare_grads_at(stores, 1, ex, key, dinov2_name_candidates, 1e-4);
        free(dpooled); free(want_loss);
        float *emb = xmalloc(sizeof(float) * B * C);
        dinov2_embed(&m, pixels, B, emb);
        EXPECTF(!memcmp(emb, pooled, sizeof(float) * B * C), "dinov2_embed differs from the forward pass");
        free(emb); free(hidden); free(pooled); free(pixels); free(want_hidden); free(want_pooled);
        dinov2_acts_free(&a);
        dinov2_free(&m);
    }
    st_close(ex);
}

// Dinov2Model in the Hub's key layout: 28 px (the 4 x 4 grid it was built for), 42 px (6 x 6) and 21 px (3 x 3)
TEST(parity_dinov2) {
    const int sizes[] = {28, 42, 21};
    dinov2_parity("dinov2", sizes, 3);
}

// Dinov2WithRegistersModel (2 registers) under transformers 5's names: 28 px and 35 px (antialiased bicubic)
TEST(parity_dinov2_registers) {
    const int sizes[] = {28, 35};
    dinov2_parity("dinov2_reg", sizes, 2);
}

// torch.nn.functional.interpolate(mode="bicubic", align_corners=False) with and without antialias on 5 x 5 planes
TEST(dinov2_interpolate_matches_torch) {
    SafeTensors *ex = st_open_or_die(FIXTURES "dinov2/interp.safetensors");
    float *src = ex_f32(ex, "src", NULL);
    const int shapes[][2] = {{3, 3}, {8, 8}, {2, 7}, {11, 4}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (int aa = 0; aa < 2; aa++) {
            const int h = shapes[i][0], w = shapes[i][1];
            char key[64];
            snprintf(key, sizeof(key), "out_%dx%d_aa%d", h, w, aa);
            float *want = ex_f32(ex, key, NULL), *got = xmalloc(sizeof(float) * 3 * h * w);
            if (aa) resample_planes(src, 3, 5, 5, got, h, w, RESAMPLE_BICUBIC);
            else interpolate_bicubic_planes(src, 3, 5, 5, got, h, w);
            double e = rel_err(got, want, (size_t)3 * h * w);
            EXPECTF(e <= 1e-6, "%s: relative error %.3g", key, e);
            free(want);
            free(got);
        }
    free(src);
    st_close(ex);
}
