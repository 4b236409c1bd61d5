// Generation (model/generate.h, model/sample.h, `vlm sample`): greedy outputs equal transformers' generate
// on the fixture models, KV-cache decode equals recomputing the whole sequence, outputs do not depend on
// the batching, the sampler's filters and random streams, stop strings, max_new_tokens, EOS, and clear
// errors on bad input.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../data/records.h"
#include "../model/generate.h"
#include "../model/safetensors.h"
#include "../util/common.h"
#include "test.h"
#include "test_jsonl.h"

#define MODELS "tests/fixtures/models/"

// ------------------------------------------------------------------------------------------------ sampler

TEST(generate_sampler_philox_known_answers) {
    // Random123's known-answer vectors for Philox4x32-10 (its tests/kat_vectors)
    const uint32_t ctr[3][4] = {{0, 0, 0, 0}, {~0u, ~0u, ~0u, ~0u}, {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    const uint32_t key[3][2] = {{0, 0}, {~0u, ~0u}, {0xa4093822u, 0x299f31d0u}};
    const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                 {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                 {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        philox4x32_10(key[k], ctr[k], out);
        for (int i = 0; i < 4; i++) EXPECTF(out[i] == want[k][i], "vector %d word %d: %08x, expected %08x", k, i, out[i], want[k][i]);
    }
}

// The streams: the same coordinates give the same number, any other coordinate another one; uniform on [0, 1).
TEST(generate_sampler_uniform_streams) {
    EXPECT(sample_uniform(7, 3, 1, 5) == sample_uniform(7, 3, 1, 5));
    double base = sample_uniform(7, 3, 1, 5);
    EXPECT(sample_uniform(8, 3, 1, 5) != base);
    EXPECT(sample_uniform(7, 4, 1, 5) != base);
    EXPECT(sample_uniform(7, 3, 2, 5) != base);
    EXPECT(sample_uniform(7, 3, 1, 6) != base);
    EXPECT(sample_uniform(7, 3 + (1ull << 32), 1, 5) != base);  // the record's high word counts
    double sum = 0, lo = 1, hi = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double u = sample_uniform(1, 0, 0, (uint32_t)i);
        sum += u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    EXPECTF(lo >= 0 && hi < 1, "uniforms outside [0, 1): %g %g", lo, hi);
    EXPECTF(fabs(sum / n - 0.5) < 0.01, "mean of %d uniforms %g", n, sum / n);
}

// Frequencies of each token over a fine grid of u: the filtered, renormalized distribution.
static void sweep(const float *logits, int V, const SamplerConfig *c, double *freq) {
    SampleWork w;
    sample_work_init(&w, V);
    const int n = 20000;
    int *count = xcalloc(V, sizeof(int));
    for (int i = 0; i < n; i++) {
        int t = sample_token(logits, V, c, (i + 0.5) / n, &w);
        if (t >= 0) count[t]++;
    }
    for (int i = 0; i < V; i++) freq[i] = (double)count[i] / n;  // exactly 1 when every draw agrees
    free(count);
    sample_work_free(&w);
}

TEST(generate_sampler_greedy) {
    const float logits[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, NAN};
    SampleWork w;
    sample_work_init(&w, 6);
    SamplerConfig greedy = {0, 0, 1}, k1 = {1.5f, 1, 1};
    for (double u = 0; u < 1; u += 0.1) {
        EXPECT_INT_EQ(sample_token(logits, 6, &greedy, u, &w), 1);  // the lowest id of the tied maxima
        EXPECT_INT_EQ(sample_token(logits, 6, &k1, u, &w), 1);      // top-k 1 is greedy at any temperature
    }
    EXPECT_INT_EQ(sample_argmax(logits, 6), 1);
    const float broken[3] = {NAN, NAN, NAN}, inf[2] = {INFINITY, 1};
    EXPECT_INT_EQ(sample_token(broken, 3, &greedy, 0.5, &w), -1);
    EXPECT_INT_EQ(sample_token(inf, 2, &greedy, 0.5, &w), -1);
    sample_work_free(&w);
}

// top-k 1 equals greedy on random logits for any draw; top-k keeps the k largest and the ties at the k-th.
TEST(generate_sampler_top_k) {
    const int V = 50;
    float logits[50];
    SampleWork w;
    sample_work_init(&w, V);
    unsigned st = 12345;
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++) { st = st * 1664525u + 1013904223u; logits[i] = (float)((st >> 8) % 10000) / 1000.0f; }
        SamplerConfig k1 = {0.7f, 1, 0.9f};
        for (int r = 0; r < 10; r++) EXPECT_INT_EQ(sample_token(logits, V, &k1, sample_uniform(3, trial, 0, r), &w), sample_argmax(logits, V));
    }
    sample_work_free(&w);
    const float l[6] = {1.0f, 3.0f, 2.0f, 3.0f, 2.0f, 0.0f};
    double f[6];
    SamplerConfig k2 = {1, 2, 1}, k3 = {1, 3, 1};
    sweep(l, 6, &k2, f);  // the two 3s
    EXPECT(f[1] > 0.49 && f[3] > 0.49 && f[0] == 0 && f[2] == 0 && f[4] == 0 && f[5] == 0);
    sweep(l, 6, &k3, f);  // the k-th largest is 2, held by ids 2 and 4: both stay (4 tokens)
    double e3 = exp(3.0), e2 = exp(2.0), z = 2 * e3 + 2 * e2;
    EXPECT_NEAR(f[1], e3 / z, 1e-3);
    EXPECT_NEAR(f[2], e2 / z, 1e-3);
    EXPECT_NEAR(f[4], e2 / z, 1e-3);
    EXPECT(f[0] == 0 && f[5] == 0);
}

// top-p keeps the smallest set of most probable tokens whose probability reaches p, and samples from it
// renormalized. Probabilities 0.05, 0.5, 0.1, 0.2, 0.15 for ids 0..4.
TEST(generate_sampler_top_p_smallest_set) {
    const double p[5] = {0.05, 0.5, 0.1, 0.2, 0.15};
    float logits[5];
    for (int i = 0; i < 5; i++) logits[i] = (float)log(p[i]);
    const struct { float top_p; int keep[5]; } cases[] = {
        {0.45f, {0, 1, 0, 0, 0}},   // 0.5 alone reaches 0.45
        {0.6f, {0, 1, 0, 1, 0}},    // 0.5 + 0.2
        {0.75f, {0, 1, 0, 1, 1}},   // 0.5 + 0.2 + 0.15
        {0.9f, {0, 1, 1, 1, 1}},    // ... + 0.1 = 0.95
        {0.99f, {1, 1, 1, 1, 1}},
        {1.0f, {1, 1, 1, 1, 1}},    // off
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        SamplerConfig sc = {1, 0, cases[c].top_p};
        double f[5], kept = 0;
        sweep(logits, 5, &sc, f);
        for (int i = 0; i < 5; i++) kept += cases[c].keep[i] ? p[i] : 0;
        for (int i = 0; i < 5; i++) {
            double want = cases[c].keep[i] ? p[i] / kept : 0;
            EXPECTF(fabs(f[i] - want) < 1e-3, "top_p %.2f: token %d drawn %.4f of the time, expected %.4f", cases[c].top_p, i, f[i], want);
        }
    }
    // equal probabilities: the lower id ranks first at the boundary
    const float flat[4] = {0, 0, 0, 0};
    SamplerConfig half = {1, 0, 0.3f};
    double f[4];
    sweep(flat, 4, &half, f);  // 0.25 < 0.3: two tokens, ids 0 and 1
    EXPECT(fabs(f[0] - 0.5) < 1e-3 && fabs(f[1] - 0.5) < 1e-3 && f[2] == 0 && f[3] == 0);
}

// HF's order: the temperature scales the logits before top-p looks at the probabilities.
TEST(generate_sampler_temperature_before_top_p) {
    const float logits[3] = {2, 1, 0};
    double f[3];
    SamplerConfig warm = {1, 0, 0.8f}, cold = {0.25f, 0, 0.8f};
    sweep(logits, 3, &warm, f);  // probabilities 0.665, 0.245, 0.090: two tokens reach 0.8
    EXPECT(f[0] > 0.7 && f[1] > 0.2 && f[2] == 0);
    sweep(logits, 3, &cold, f);  // at T = 0.25: 0.982, 0.018, ...: the first alone
    EXPECT(f[0] == 1);
    // top-k after temperature: same set at any temperature, renormalized at that temperature
    SamplerConfig k2 = {0.5f, 2, 1};
    sweep(logits, 3, &k2, f);
    EXPECT_NEAR(f[0], exp(4.0) / (exp(4.0) + exp(2.0)), 1e-3);
}

// Temperature -> 0: a unique maximum is chosen for every draw, as greedy, once the temperature is well below
// the gap to the runner-up (here 1e-4: at T = 1e-3 both are still drawn); equal maxima are sampled among,
// where greedy takes the lowest id. Temperature 0 is greedy.
TEST(generate_sampler_temperature_to_zero) {
    const float logits[5] = {0.3f, 1.7f, 1.6999f, -2.0f, 0.0f};
    double f[5];
    SamplerConfig warm = {1e-3f, 0, 1};
    sweep(logits, 5, &warm, f);
    EXPECT(f[1] > 0.5 && f[2] > 0.4);
    for (float t = 1e-6f; t >= 1e-9f; t /= 10) {
        SamplerConfig sc = {t, 0, 1};
        sweep(logits, 5, &sc, f);
        EXPECTF(f[1] == 1, "temperature %g: the argmax drawn %.4f of the time", t, f[1]);
    }
    const float tied[3] = {1.0f, 2.0f, 2.0f};
    SamplerConfig tiny = {1e-6f, 0, 1}, zero = {0, 0, 1};
    sweep(tied, 3, &tiny, f);
    EXPECT(fabs(f[1] - 0.5) < 1e-3 && fabs(f[2] - 0.5) < 1e-3);
    sweep(tied, 3, &zero, f);
    EXPECT(f[1] == 1);
}

// ------------------------------------------------------------------------------------------------ model

typedef struct {
    int ids[64], n, image;  // prompt (image tokens expanded), image index into the fixture's pixels or -1
    int second;             // a second image's index (its tokens two text tokens after the first's), or -1
} Prompt;

// The driver's prompts: make_prompts' first five, then two with two images each (the fixture's images in both
// orders).
enum { N_PROMPTS = 7 };

// Prompts for a fixture model: with and without an image, different lengths, two images.
static int make_prompts(const Llava *m, Prompt *p) {
    const int P = m->cfg.image_tokens, img = m->cfg.image_token_id, V = m->cfg.text.vocab;
    const int shape[N_PROMPTS][4] = {{2, 3, 0, -1}, {5, 0, -1, -1}, {1, 7, 1, -1}, {9, 0, -1, -1}, {3, 2, 0, -1},
                                     {2, 4, 0, 1}, {1, 3, 1, 0}};  // before, after, image, second image
    unsigned st = 99;
    for (int r = 0; r < N_PROMPTS; r++) {
        Prompt *q = &p[r];
        q->n = 0;
        q->image = shape[r][2];
        q->second = shape[r][3];
        q->ids[q->n++] = 1;
        for (int k = 0; k < shape[r][0] + shape[r][1]; k++) {
            if (k == shape[r][0] && q->image >= 0) for (int i = 0; i < P; i++) q->ids[q->n++] = img;
            if (k == shape[r][0] + 2 && q->second >= 0) for (int i = 0; i < P; i++) q->ids[q->n++] = img;
            st = st * 1664525u + 1013904223u;
            int id = 3 + (int)((st >> 8) % (unsigned)(V - 3));
            q->ids[q->n++] = id == img ? 4 : id;
        }
    }
    return N_PROMPTS;
}

static float *fixture_pixels(const char *name, int *n_images) {
    char path[256];
    snprintf(path, sizeof(path), MODELS "%s/expected.safetensors", name);
    SafeTensors *ex = st_open_or_die(path);
    const STTensor *t = st_get(ex, "pixel_values");
    float *px = xmalloc(sizeof(float) * t->numel);
    st_to_f32(t, px);
    *n_images = (int)t->shape[0];
    st_close(ex);
    return px;
}

// Logits (V) of the last position of ids under a plain llava_forward of the whole sequence.
static void full_forward_last(const Llava *m, LlavaActs *a, const int *ids, int n, int image, const float *pixels,
                              float *out) {
    const int S = m->cfg.vision.image_size, V = m->cfg.text.vocab;
    int img_of = image >= 0 ? 0 : -1;
    LlavaBatch bt = {.B = 1, .T = n, .ids = ids, .image_of_row = &img_of, .n_images = image >= 0 ? 1 : 0,
                     .pixels = image >= 0 ? pixels + (size_t)image * 3 * S * S : NULL, .all_logits = 1};
    llava_forward(m, a, &bt);
    float *all = xmalloc(sizeof(float) * (size_t)n * V);
    m->be->download_act(all, a->l.logits, (size_t)n * V);
    memcpy(out, all + (size_t)(n - 1) * V, sizeof(float) * V);
    free(all);
}

static double max_rel_diff(const float *a, const float *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d) || d > num) num = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 1e-6 ? den : 1e-6);
}

// Prefill two prompts together (an image row and a shorter image-free one) into slots 2 and 0, fork slot 2
// into slot 1, then decode: slots 2 and 0 greedily, slot 1 on forced tokens. Every step's logits equal
// llava_forward over the whole sequence so far.
static void check_cache_vs_full(const char *name) {
    char dir[256];
    snprintf(dir, sizeof(dir), MODELS "%s", name);
    Llava m;
    llava_load(&m, &backend_cpu, dir, (LlavaTrainable){0, 0, 0});
    const int V = m.cfg.text.vocab, steps = 6;
    int n_img;
    float *pixels = fixture_pixels(name, &n_img);
    Prompt p[N_PROMPTS];
    make_prompts(&m, p);
    const Prompt *rows[2] = {&p[2], &p[1]};
    const int slot_of_row[2] = {2, 0};
    Generator g;
    gen_init(&g, &m, 3, 32, steps + 1, 2, 1);
    LlavaActs full;
    llava_acts_init(&full, &m, 1, 32 + steps + 1, 1, 0, ACTS_INFERENCE);
    // the prefill batch: right-padded rows, the image row's pixels as image 0
    const int T = rows[0]->n > rows[1]->n ? rows[0]->n : rows[1]->n, S = m.cfg.vision.image_size;
    int ids[2 * 64], lengths[2], img_of[2] = {0, -1};
    for (int b = 0; b < 2; b++) {
        lengths[b] = rows[b]->n;
        for (int t = 0; t < T; t++) ids[b * T + t] = t < rows[b]->n ? rows[b]->ids[t] : 0;
    }
    LlavaBatch bt = {.B = 2, .T = T, .ids = ids, .lengths = lengths, .image_of_row = img_of, .n_images = 1,
                     .pixels = pixels + (size_t)rows[0]->image * 3 * S * S};
    float *want = xmalloc(sizeof(float) * V), *got = xmalloc(sizeof(float) * 3 * V);
    const float *lg = gen_prefill(&g, &bt, slot_of_row);
    memcpy(got, lg, sizeof(float) * 2 * V);
    {  // the prefill's last layer runs on each row's last token only past its attention: bitwise the full layer
        Generator g0;
        gen_init(&g0, &m, 3, 32, steps + 1, 2, 1);
        setenv("VLM_PRUNE_LAST", "0", 1);
        const float *lg0 = gen_prefill(&g0, &bt, slot_of_row);
        unsetenv("VLM_PRUNE_LAST");
        EXPECTF(!memcmp(lg0, got, sizeof(float) * 2 * V), "%s: prefill logits differ with the full last layer", name);
        gen_free(&g0);
    }
    gen_fork(&g, 2, 1);
    // sequences: slot 2 (row 0 greedy), slot 1 (row 0's prompt, forced tokens), slot 0 (row 1 greedy)
    int seq[3][64], n[3] = {rows[1]->n, rows[0]->n, rows[0]->n}, image[3] = {-1, rows[0]->image, rows[0]->image};
    memcpy(seq[0], rows[1]->ids, sizeof(int) * rows[1]->n);
    memcpy(seq[1], rows[0]->ids, sizeof(int) * rows[0]->n);
    memcpy(seq[2], rows[0]->ids, sizeof(int) * rows[0]->n);
    for (int b = 0; b < 2; b++) {
        full_forward_last(&m, &full, rows[b]->ids, rows[b]->n, rows[b]->image, pixels, want);
        double e = max_rel_diff(got + (size_t)b * V, want, V);
        EXPECTF(e <= 1e-4, "%s prefill row %d: logits differ from the full forward by %.3g", name, b, e);
    }
    int next[3] = {sample_argmax(got + V, V), 5, sample_argmax(got, V)};  // by slot
    for (int step = 0; step < steps; step++) {
        int slots[3] = {2, 0, 1}, toks[3];
        for (int i = 0; i < 3; i++) { toks[i] = next[slots[i]]; seq[slots[i]][n[slots[i]]++] = toks[i]; }
        lg = gen_decode(&g, 3, slots, toks);
        memcpy(got, lg, sizeof(float) * 3 * V);
        for (int i = 0; i < 3; i++) {
            const int s = slots[i];
            full_forward_last(&m, &full, seq[s], n[s], image[s], pixels, want);
            double e = max_rel_diff(got + (size_t)i * V, want, V);
            EXPECTF(e <= 1e-4, "%s step %d slot %d: cached logits differ from the full forward by %.3g", name, step, s, e);
        }
        next[2] = sample_argmax(got, V);
        next[0] = sample_argmax(got + V, V);
        next[1] = 3 + (step * 7) % (V - 3);  // forced
        if (next[1] == m.cfg.image_token_id) next[1] = 4;
    }
    EXPECT_INT_EQ(g.kv.len[2], rows[0]->n + steps);
    EXPECT_INT_EQ(g.kv.len[0], rows[1]->n + steps);
    free(want); free(got); free(pixels);
    llava_acts_free(&full);
    gen_free(&g);
    llava_free(&m);
}

TEST(generate_kv_cache_matches_full_forward) {
    check_cache_vs_full("llava_gqa");
    check_cache_vs_full("llava_full");
    check_cache_vs_full("llava_siglip_qwen2");  // q/k/v biases without an o bias
}

// ------------------------------------------------------------------------------------------------ driver

typedef struct {
    const Prompt *p;
    const float *pixels;
    int S, n_samples;
    int ids[N_PROMPTS][4][32], n[N_PROMPTS][4], finish[N_PROMPTS][4], emitted, images;  // images: pixels asked for
} Collect;

static int c_image(const Collect *c, int prompt, int k) { return k ? c->p[prompt].second : c->p[prompt].image; }
static void c_pixels(void *ctx, int prompt, int k, float *out) {
    Collect *c = ctx;
    memcpy(out, c->pixels + (size_t)c_image(c, prompt, k) * 3 * c->S * c->S, sizeof(float) * 3 * c->S * c->S);
    c->images++;
}
static int c_image_key(void *ctx, int prompt, int k) { return c_image(ctx, prompt, k); }
static void c_emit(void *ctx, const GenOutput *o) {
    Collect *c = ctx;
    memcpy(c->ids[o->prompt][o->sample], o->ids, sizeof(int) * o->n);
    c->n[o->prompt][o->sample] = o->n;
    c->finish[o->prompt][o->sample] = o->finish;
    c->emitted++;
}

// share: prompts with the same fixture image share it in a prefill (GenCallbacks.image_key)
static void run_driver(const Llava *m, const Prompt *p, const float *pixels, int slots, int prefill_rows,
                       const GenConfig *gc, Collect *c, int share) {
    memset(c, 0, sizeof(*c));
    c->p = p;
    c->pixels = pixels;
    c->S = m->cfg.vision.image_size;
    c->n_samples = gc->n_samples;
    GenPrompt gp[N_PROMPTS];
    int cap = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        gp[i] = (GenPrompt){p[i].ids, p[i].n, (p[i].image >= 0) + (p[i].second >= 0)};
        if (p[i].n > cap) cap = p[i].n;
    }
    Generator g;
    gen_init(&g, m, slots, cap, gc->max_new_tokens, prefill_rows, 2);
    GenCallbacks cb = {c_pixels, NULL, c_emit, c, share ? c_image_key : NULL};
    gen_run(&g, gc, gp, N_PROMPTS, &cb, NULL);
    gen_free(&g);
}

static int same_outputs(const Collect *a, const Collect *b, int ns) {
    for (int i = 0; i < N_PROMPTS; i++)
        for (int j = 0; j < ns; j++) {
            if (a->n[i][j] != b->n[i][j] || a->finish[i][j] != b->finish[i][j]) return 0;
            if (memcmp(a->ids[i][j], b->ids[i][j], sizeof(int) * a->n[i][j])) return 0;
        }
    return 1;
}

// A sequence's output depends on its prompt, sample number and seed only: one slot at a time, several
// prompts per prefill, slots refilled as sequences finish, all give the same tokens (greedy and sampled).
TEST(generate_batch_invariance) {
    Llava m;
    llava_load(&m, &backend_cpu, MODELS "llava_gqa", (LlavaTrainable){0, 0, 0});
    int n_img;
    float *pixels = fixture_pixels("llava_gqa", &n_img);
    Prompt p[N_PROMPTS];
    make_prompts(&m, p);
    GenConfig greedy = {{0, 0, 1}, 10, 1, 0, 2, NULL, 0};
    GenConfig sampled = {{1.3f, 20, 0.95f}, 10, 3, 42, 2, NULL, 0};
    Collect *ref = xmalloc(sizeof(Collect)), *other = xmalloc(sizeof(Collect));
    const int layouts[3][2] = {{1, 1}, {4, 3}, {5, 2}};  // slots, prefill rows
    run_driver(&m, p, pixels, 1, 1, &greedy, ref, 0);
    EXPECT_INT_EQ(ref->emitted, N_PROMPTS);
    for (int l = 1; l < 3; l++) {
        run_driver(&m, p, pixels, layouts[l][0], layouts[l][1], &greedy, other, 0);
        EXPECTF(same_outputs(ref, other, 1), "greedy outputs with %d slots differ from one slot", layouts[l][0]);
    }
    // one prefill of all seven: prompts 0 and 4 show image 0 and prompt 2 image 1, encoded once each; prompt 5's
    // images 0, 1 are that run of prefill images, shared; prompt 6's 1, 0 are not (order counts): 4 encoded
    run_driver(&m, p, pixels, N_PROMPTS, N_PROMPTS, &greedy, other, 1);
    EXPECTF(same_outputs(ref, other, 1), "greedy outputs differ when prompts share their images' features");
    EXPECT_INT_EQ(other->images, 4);
    run_driver(&m, p, pixels, 3, 1, &sampled, ref, 0);
    EXPECT_INT_EQ(ref->emitted, 3 * N_PROMPTS);
    for (int slots = 4; slots <= 9; slots += 5) {
        run_driver(&m, p, pixels, slots, slots / 3, &sampled, other, 0);
        EXPECTF(same_outputs(ref, other, 3), "sampled outputs with %d slots differ from 3 slots", slots);
    }
    // the samples of a prompt differ from each other, and another seed gives other samples
    int differ = 0;
    for (int i = 0; i < N_PROMPTS; i++)
        differ += ref->n[i][0] != ref->n[i][1] || memcmp(ref->ids[i][0], ref->ids[i][1], sizeof(int) * ref->n[i][0]);
    EXPECTF(differ >= 4, "only %d of %d prompts have distinct samples", differ, N_PROMPTS);
    sampled.seed = 43;
    run_driver(&m, p, pixels, 3, 1, &sampled, other, 0);
    EXPECT(!same_outputs(ref, other, 3));
    free(ref); free(other); free(pixels);
    llava_free(&m);
}

// EOS ends a sequence with the EOS as its last token; max_new_tokens ends it with "length".
TEST(generate_eos_and_max_new_tokens) {
    Llava m;
    llava_load(&m, &backend_cpu, MODELS "llava_gqa", (LlavaTrainable){0, 0, 0});
    int n_img;
    float *pixels = fixture_pixels("llava_gqa", &n_img);
    Prompt p[N_PROMPTS];
    make_prompts(&m, p);
    Collect *free_run = xmalloc(sizeof(Collect)), *c = xmalloc(sizeof(Collect));
    GenConfig gc = {{0, 0, 1}, 12, 1, 0, -1, NULL, 0};  // no EOS: every sequence runs to the length
    run_driver(&m, p, pixels, 2, 2, &gc, free_run, 0);
    for (int i = 0; i < N_PROMPTS; i++) {
        EXPECT_INT_EQ(free_run->n[i][0], 12);
        EXPECT_INT_EQ(free_run->finish[i][0], GEN_FINISH_LENGTH);
    }
    gc.eos_id = free_run->ids[0][0][3];  // prompt 0's fourth token becomes the EOS
    run_driver(&m, p, pixels, 2, 2, &gc, c, 0);
    for (int i = 0; i < N_PROMPTS; i++) {
        int stop_at = -1;
        for (int t = 0; t < 12 && stop_at < 0; t++) if (free_run->ids[i][0][t] == gc.eos_id) stop_at = t;
        EXPECT_INT_EQ(c->n[i][0], stop_at >= 0 ? stop_at + 1 : 12);
        EXPECT_INT_EQ(c->finish[i][0], stop_at >= 0 ? GEN_FINISH_EOS : GEN_FINISH_LENGTH);
        EXPECT(!memcmp(c->ids[i][0], free_run->ids[i][0], sizeof(int) * c->n[i][0]));
    }
    EXPECT(c->n[0][0] <= 4);
    gc.eos_id = -1;
    gc.max_new_tokens = 1;
    run_driver(&m, p, pixels, 3, 1, &gc, c, 0);
    for (int i = 0; i < N_PROMPTS; i++) {
        EXPECT_INT_EQ(c->n[i][0], 1);
        EXPECT_INT_EQ(c->ids[i][0][0], free_run->ids[i][0][0]);
    }
    free(free_run); free(c); free(pixels);
    llava_free(&m);
}

// ------------------------------------------------------------------------------------------------ CLI

// Runs vlm sample with --out and returns the parsed lines.
static cJSON **run_sample(const char *args, int *n, int expect_ok) {
    char cmd[2048], *out, *err;
    char *path = path_join(test_tmpdir(), "sample.jsonl");
    snprintf(cmd, sizeof(cmd), "sample %s --device cpu --out %s", args, path);
    unlink(path);
    int rc = test_run_vlm(cmd, &out, &err);
    cJSON **rows = NULL;
    *n = 0;
    if (expect_ok) {
        EXPECTF(rc == 0, "vlm %s: exit %d: %s", cmd, rc, err);
        if (rc == 0) rows = jsonl_read(path, n);
    }
    free(out); free(err); free(path);
    return rows;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int json_int(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -999;
}

static char *tokenizer_path(void) { return path_join(test_shared_data(), "tokenizers/llama2_tokenizer.model"); }

// The outputs against {prefix}generate_expected.jsonl (of {prefix}generate_records.jsonl, max_new new tokens): ids,
// finish, text (where expected), index, sample, question_id; one record at a time and three together.
static void check_expected_files(const char *name, const char *prefix, int max_new, const char *extra) {
    char args[1024], exp_path[256];
    for (int batch = 1; batch <= 3; batch += 2) {
        snprintf(args, sizeof(args), "--model " MODELS "%s --data " MODELS "%s/%sgenerate_records.jsonl --max-new-tokens %d --batch %d %s",
                 name, name, prefix, max_new, batch, extra);
        int n, ne;
        cJSON **got = run_sample(args, &n, 1);
        snprintf(exp_path, sizeof(exp_path), MODELS "%s/%sgenerate_expected.jsonl", name, prefix);
        cJSON **want = jsonl_read(exp_path, &ne);
        snprintf(exp_path, sizeof(exp_path), MODELS "%s/%sgenerate_records.jsonl", name, prefix);
        cJSON **recs = jsonl_read(exp_path, &ne);
        EXPECT_INT_EQ(n, ne);
        for (int i = 0; i < n && i < ne; i++) {
            char what[128];
            snprintf(what, sizeof(what), "%s record %d (batch %d)", name, i, batch);
            int nids;
            int *ids = json_ints(cJSON_GetObjectItemCaseSensitive(got[i], "ids"), &nids);
            ids_match(ids, nids, cJSON_GetObjectItemCaseSensitive(want[i], "ids"), what, __FILE__, __LINE__);
            free(ids);
            EXPECT_INT_EQ(json_int(got[i], "index"), i);
            EXPECT_INT_EQ(json_int(got[i], "sample"), 0);
            EXPECT_INT_EQ(json_int(got[i], "n_tokens"), nids);
            const char *f = json_str(got[i], "finish"), *wf = json_str(want[i], "finish");
            EXPECTF(f && !strcmp(f, wf), "%s: finish %s, expected %s", what, f ? f : "(none)", wf);
            const char *wt = json_str(want[i], "text"), *t = json_str(got[i], "text");
            if (wt) EXPECTF(t && !strcmp(t, wt), "%s: text '%s', expected '%s'", what, t ? t : "(null)", wt);
            else EXPECTF(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(got[i], "text")), "%s: text should be null without a tokenizer", what);
            char *q1 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(got[i], "question_id"));
            char *q2 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(recs[i], "question_id"));
            EXPECTF(q1 && q2 && !strcmp(q1, q2), "%s: question_id %s, expected %s", what, q1 ? q1 : "(none)", q2 ? q2 : "(none)");
            free(q1); free(q2);
        }
        if (got) jsonl_free(got, n);
        jsonl_free(want, ne);
        jsonl_free(recs, ne);
    }
}

static void check_expected(const char *name, const char *extra) { check_expected_files(name, "", 12, extra); }

TEST(generate_cli_matches_transformers) {
    check_expected("llava_gqa", "");
    check_expected("llava_full", "");
    check_expected("llava_siglip_qwen2", "");  // SigLIP tower (its preprocessing of the PNGs), Qwen2 decoder
    char extra[512], *tp = tokenizer_path();
    snprintf(extra, sizeof(extra), "--tokenizer %s", tp);
    check_expected("llava_tok", extra);  // text prompts through vicuna_v1, decoded text
    free(tp);
}

// Two-image prompts (make_multi_image_fixtures.py): each image's features fill its image-token run in order, as
// transformers' greedy generate has them; the image token once per image or expanded, a pair in both orders.
TEST(generate_cli_multi_image_matches_transformers) {
    check_expected_files("llava_gqa", "multi_image_", 10, "");
    check_expected_files("llava_siglip_qwen2", "multi_image_", 10, "");
}

static char *records_file(const char *name, const char *text);

// A text prompt with two "<image>" gets each image's token run where its placeholder is, in order; one without
// any gets both runs in front of the question (after "USER: ").
TEST(generate_records_two_image_text_prompt) {
    char *tp = tokenizer_path();
    Tokenizer *tok = tokenizer_load(tp);
    LlavaConfig cfg;
    llava_config_load(&cfg, MODELS "llava_tok");
    char *path = records_file("two_image_text", "{\"image\": [\"a.png\", \"b.png\"], \"prompt\": \"<image> left, <image> right: which differs?\"}\n"
                                                "{\"image\": [\"a.png\", \"b.png\"], \"prompt\": \"Which differs?\"}\n");
    SampleRecordSet rs;
    SampleReadOptions sopt = {.tmpl = CHAT_VICUNA_V1, .images_dir = MODELS "llava_gqa/images"};
    records_read_sample(&rs, path, &cfg, tok, &sopt);
    EXPECT_INT_EQ(rs.n, 2);
    EXPECT_INT_EQ(rs.max_images, 2);
    for (int i = 0; i < rs.n; i++) {
        const SampleRecord *r = &rs.r[i];
        EXPECT_INT_EQ(r->n_images, 2);
        EXPECTF(r->n_images == 2 && strstr(r->images[1], "b.png"), "record %d: images in the record's order", i);
        int runs = 0, tokens = 0, gap = 0;  // gap: text tokens between the two runs
        for (int t = 0; t < r->n; t++) {
            const int img = r->ids[t] == cfg.image_token_id;
            tokens += img;
            runs += img && (t == 0 || r->ids[t - 1] != cfg.image_token_id);
            gap += !img && runs == 1;
        }
        EXPECT_INT_EQ(tokens, 2 * cfg.image_tokens);
        if (i == 0) EXPECTF(runs == 2 && gap >= 3, "record 0: %d runs, %d tokens between them", runs, gap);
        else EXPECTF(runs == 2 && gap >= 1 && gap <= 2, "record 1: %d runs, %d tokens between them (the placeholder's \"\\n\" only)", runs, gap);
    }
    records_free_sample(&rs);
    tokenizer_free(tok);
    free(path); free(tp);
}

// Our rendering and tokenization of the text records equals the ids transformers generated from.
TEST(generate_prompt_ids_match_transformers) {
    char *tp = tokenizer_path();
    Tokenizer *tok = tokenizer_load(tp);
    LlavaConfig cfg;
    llava_config_load(&cfg, MODELS "llava_tok");
    SampleRecordSet rs;
    SampleReadOptions sopt = {.tmpl = CHAT_VICUNA_V1};
    records_read_sample(&rs, MODELS "llava_tok/generate_records.jsonl", &cfg, tok, &sopt);
    int n;
    cJSON **want = jsonl_read(MODELS "llava_tok/generate_expected.jsonl", &n);
    EXPECT_INT_EQ(rs.n, n);
    for (int i = 0; i < n && i < rs.n; i++) {
        int nw, *w = json_ints(cJSON_GetObjectItemCaseSensitive(want[i], "prompt_ids"), &nw);
        // expand the fixture's single image id as the reader does
        int ne;
        char err[256], what[64];
        int *we = records_expand_image_tokens(w, nw, rs.r[i].n_images, &cfg, &ne, err, sizeof(err));
        snprintf(what, sizeof(what), "record %d prompt ids", i);
        EXPECTF(we && ne == rs.r[i].n && !memcmp(we, rs.r[i].ids, sizeof(int) * ne), "%s differ from transformers'", what);
        free(w); free(we);
    }
    jsonl_free(want, n);
    records_free_sample(&rs);
    tokenizer_free(tok);
    free(tp);
}

// Stop strings end a sequence when its text contains one (the text cut before it, the ids through the token
// that completed it); --max-new-tokens cuts every sequence.
TEST(generate_cli_stop_strings_and_max_new_tokens) {
    int ne, n;
    cJSON **want = jsonl_read(MODELS "llava_tok/generate_expected.jsonl", &ne);
    // a stop string from the expected text of record 0: its third word
    const char *t0 = json_str(want[0], "text");
    char stop[64] = {0};
    const char *w = t0;
    for (int k = 0; k < 2 && w; k++) { w = strchr(w, ' '); if (w) w++; }
    EXPECT(w != NULL);
    if (!w) { jsonl_free(want, ne); return; }
    size_t wl = strcspn(w, " ");
    memcpy(stop, w, wl < sizeof(stop) - 1 ? wl : sizeof(stop) - 1);
    char args[1024], *tp = tokenizer_path();
    snprintf(args, sizeof(args), "--model " MODELS "llava_tok --data " MODELS "llava_tok/generate_records.jsonl --max-new-tokens 12 "
             "--tokenizer %s --stop '%s' --stop 'never appears here' --batch 2", tp, stop);
    cJSON **got = run_sample(args, &n, 1);
    EXPECT_INT_EQ(n, ne);
    SpTokenizer *tok = sptok_load(tp);
    int stopped = 0;
    for (int i = 0; i < n && i < ne; i++) {
        const char *wt = json_str(want[i], "text"), *t = json_str(got[i], "text"), *f = json_str(got[i], "finish");
        const char *at = strstr(wt, stop);
        int nids, nw;
        int *ids = json_ints(cJSON_GetObjectItemCaseSensitive(got[i], "ids"), &nids);
        int *wids = json_ints(cJSON_GetObjectItemCaseSensitive(want[i], "ids"), &nw);
        EXPECTF(nids <= nw && !memcmp(ids, wids, sizeof(int) * nids), "record %d: ids are not a prefix of the greedy ids", i);
        if (at) {
            stopped++;
            EXPECTF(f && !strcmp(f, "stop"), "record %d: finish %s, expected stop", i, f ? f : "(none)");
            EXPECTF(t && strlen(t) == (size_t)(at - wt) && !strncmp(t, wt, strlen(t)), "record %d: text '%s' should be '%.*s'",
                    i, t ? t : "(null)", (int)(at - wt), wt);
            // the last id completed the stop string: without it the text does not contain it
            char *full = sptok_decode(tok, ids, nids, 1, NULL), *before = sptok_decode(tok, ids, nids - 1, 1, NULL);
            EXPECT(strstr(full, stop) && !strstr(before, stop));
            free(full); free(before);
        } else {
            EXPECTF(f && !strcmp(f, json_str(want[i], "finish")), "record %d: finish %s", i, f ? f : "(none)");
            EXPECTF(t && !strcmp(t, wt), "record %d: text changed without a stop string", i);
        }
        free(ids); free(wids);
    }
    EXPECTF(stopped >= 1, "the stop string '%s' stopped no record", stop);
    jsonl_free(got, n);
    // --max-new-tokens 5: the first five greedy tokens
    snprintf(args, sizeof(args), "--model " MODELS "llava_tok --data " MODELS "llava_tok/generate_records.jsonl --max-new-tokens 5 --tokenizer %s", tp);
    got = run_sample(args, &n, 1);
    for (int i = 0; i < n && i < ne; i++) {
        int nids, nw;
        int *ids = json_ints(cJSON_GetObjectItemCaseSensitive(got[i], "ids"), &nids);
        int *wids = json_ints(cJSON_GetObjectItemCaseSensitive(want[i], "ids"), &nw);
        EXPECT_INT_EQ(nids, nw < 5 ? nw : 5);
        EXPECT(!memcmp(ids, wids, sizeof(int) * (nids < nw ? nids : nw)));
        EXPECT(!strcmp(json_str(got[i], "finish"), nw < 5 ? json_str(want[i], "finish") : "length"));
        free(ids); free(wids);
    }
    jsonl_free(got, n);
    // --eos: a token of record 0's greedy output ends it there
    int nw0, *w0 = json_ints(cJSON_GetObjectItemCaseSensitive(want[0], "ids"), &nw0);
    snprintf(args, sizeof(args), "--model " MODELS "llava_tok --data " MODELS "llava_tok/generate_records.jsonl --max-new-tokens 12 "
             "--tokenizer %s --eos %d", tp, w0[2]);
    got = run_sample(args, &n, 1);
    if (n > 0) {
        int nids, *ids = json_ints(cJSON_GetObjectItemCaseSensitive(got[0], "ids"), &nids);
        EXPECT_INT_EQ(nids, 3);
        EXPECT(!strcmp(json_str(got[0], "finish"), "eos"));
        char *before = sptok_decode(tok, w0, 2, 1, NULL);
        EXPECTF(!strcmp(json_str(got[0], "text"), before), "the EOS must not show in the text");
        free(before); free(ids);
        jsonl_free(got, n);
    }
    free(w0);
    sptok_free(tok);
    free(tp);
    jsonl_free(want, ne);
}

// --n samples per record with their own streams: reproducible for a seed, independent of --batch.
TEST(generate_cli_samples_seeded) {
    const char *base = "--model " MODELS "llava_gqa --data " MODELS "llava_gqa/generate_records.jsonl --max-new-tokens 8 "
                       "--temperature 1.2 --top-k 30 --top-p 0.9 --n 3";
    char args[1024];
    char *text[3];
    const char *variants[3] = {"--seed 5 --batch 3", "--seed 5 --batch 7", "--seed 6 --batch 3"};
    for (int v = 0; v < 3; v++) {
        snprintf(args, sizeof(args), "%s %s", base, variants[v]);
        int n;
        cJSON **rows = run_sample(args, &n, 1);
        EXPECT_INT_EQ(n, 15);
        for (int i = 0; i < n; i++) {
            EXPECT_INT_EQ(json_int(rows[i], "index"), i / 3);
            EXPECT_INT_EQ(json_int(rows[i], "sample"), i % 3);
        }
        char *p = path_join(test_tmpdir(), "sample.jsonl");
        text[v] = read_file(p, NULL);
        free(p);
        if (rows) jsonl_free(rows, n);
    }
    EXPECTF(!strcmp(text[0], text[1]), "the same seed with another --batch gave other samples");
    EXPECTF(strcmp(text[0], text[2]), "another seed gave the same samples");
    for (int v = 0; v < 3; v++) free(text[v]);
}

// Writes `text` as records.jsonl in a fresh folder with a copy of the fixture images; returns the path.
static char *records_file(const char *name, const char *text) {
    char *dir = path_join(test_tmpdir(), name);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp -r " MODELS "llava_gqa/images %s/", dir, dir);
    if (test_shell(cmd) != 0) fatal("cannot prepare %s", dir);
    char *path = path_join(dir, "records.jsonl");
    write_file_atomic(path, text, strlen(text));
    free(dir);
    return path;
}

// Expects `vlm sample <args>` (records written to a file when given) to fail with `needle` in the message.
static void expect_error(const char *name, const char *model, const char *records, const char *flags, const char *needle) {
    char args[2048], *out, *err, *path = records ? records_file(name, records) : NULL;
    snprintf(args, sizeof(args), "sample%s%s%s%s --device cpu %s", model ? " --model " : "", model ? model : "",
             path ? " --data " : "", path ? path : "", flags);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc != 0, "%s: expected a failure, got exit 0", name);
    EXPECTF(strstr(err, needle) != NULL, "%s: message should contain '%s', got: %s", name, needle, err);
    EXPECTF(strstr(err, "vlm: error:") != NULL || strstr(err, "usage") != NULL, "%s: no error line: %s", name, err);
    free(path); free(out); free(err);
}

TEST(generate_cli_errors) {
    const char *gqa = MODELS "llava_gqa", *tok_model = MODELS "llava_tok";
    const char *good = "{\"input_ids\": [1, 5, 6]}\n";
    expect_error("no_args", NULL, NULL, "", "--model and --data are required");
    expect_error("top_p_zero", gqa, good, "--top-p 0", "--top-p must be in (0, 1]");
    expect_error("top_p_big", gqa, good, "--top-p 1.5", "--top-p must be in (0, 1]");
    expect_error("temperature", gqa, good, "--temperature -1", "--temperature");
    expect_error("top_k", gqa, good, "--top-k -2", "--top-k");
    expect_error("n", gqa, good, "--n 0", "--n must be");
    expect_error("max_new", gqa, good, "--max-new-tokens 0", "--max-new-tokens");
    expect_error("batch", gqa, good, "--batch 0", "--batch");
    expect_error("seed", gqa, good, "--seed -3", "--seed");
    expect_error("template", gqa, good, "--template chatml", "--template 'chatml'");
    expect_error("unknown_flag", gqa, good, "--beams 4", "unknown argument '--beams'");
    expect_error("not_a_number", gqa, good, "--top-k many", "expects an integer");
    expect_error("eos_oov", gqa, good, "--eos 500", "--eos 500 is outside the vocabulary");
    expect_error("stop_without_tokenizer", gqa, good, "--stop x", "--stop needs a tokenizer");
    expect_error("missing_tokenizer", gqa, good, "--tokenizer /nonexistent/tokenizer.model", "not found");
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s{\"input_ids\": [1, 5,\n", good);
    expect_error("malformed", gqa, buf, "", "records.jsonl:2: malformed JSON");
    expect_error("not_object", gqa, "[1, 2, 3]\n", "", "records.jsonl:1: record 1: expected a JSON object");
    expect_error("neither", gqa, "{\"instruction\": \"hi\"}\n", "", "records.jsonl:1: a record needs \"prompt\" (or \"question\", POPE's \"text\", AMBER's \"query\") or \"input_ids\"");
    expect_error("both", gqa, "{\"prompt\": \"hi\", \"input_ids\": [1]}\n", "", "not both");
    expect_error("empty_ids", gqa, "{\"input_ids\": []}\n", "", "\"input_ids\" is empty");
    expect_error("ids_type", gqa, "{\"input_ids\": [1, 2.5]}\n", "", "array of integers");
    expect_error("oov", gqa, "{\"input_ids\": [1, 96]}\n", "", "records.jsonl:1: token id 96 at position 1 is outside the vocabulary (96)");
    expect_error("image_tokens_no_image", gqa, "{\"input_ids\": [1, 90, 5]}\n", "", "no \"image\"");
    expect_error("image_no_tokens", gqa, "{\"image\": \"images/a.png\", \"input_ids\": [1, 5]}\n", "", "input_ids have no image token: write 90 once where each image goes");
    expect_error("missing_image", gqa, "{\"image\": \"images/nope.png\", \"input_ids\": [1, 90, 5]}\n", "", "nope.png not found");
    expect_error("image_type", gqa, "{\"image\": 3, \"input_ids\": [1, 90, 5]}\n", "", "\"image\" must be a string (a path)");
    expect_error("text_without_tokenizer", gqa, "{\"prompt\": \"hi\"}\n", "", "text records need a tokenizer");
    char flags[512], *tp = tokenizer_path();
    snprintf(flags, sizeof(flags), "--tokenizer %s", tp);
    expect_error("image_placeholder_without_image", tok_model, "{\"prompt\": \"<image>\\nWhat is it?\"}\n", flags,
                 "records.jsonl:1: the prompt has \"<image>\" but the record has no \"image\"");
    expect_error("prompt_type", tok_model, "{\"prompt\": 5}\n", flags, "\"prompt\" must be a string");
    expect_error("system_type", tok_model, "{\"prompt\": \"hi\", \"system\": []}\n", flags, "\"system\" must be a string");
    expect_error("empty_file", gqa, "\n\n", "", "no records");
    // image lists: one image token per image (or all expanded), one "<image>" per image (or none)
    const char *pair = "{\"image\": [\"images/a.png\", \"images/b.png\"], ";
    snprintf(buf, sizeof(buf), "%s\"input_ids\": [1, 90, 5]}\n", pair);
    expect_error("two_images_one_token", gqa, buf, "--images " MODELS "llava_gqa", "records.jsonl:1: 1 image tokens (id 90) for 2 images");
    snprintf(buf, sizeof(buf), "%s\"prompt\": \"<image>\\nWhich differs?\"}\n", pair);
    snprintf(flags, sizeof(flags), "--tokenizer %s --images " MODELS "llava_gqa", tp);
    expect_error("two_images_one_placeholder", tok_model, buf, flags, "records.jsonl:1: the conversation has 1 <image> placeholders for 2 images");
    snprintf(flags, sizeof(flags), "--tokenizer %s", tp);
    // a broken image fails with the file and line of its record
    char trunc[1024], cwd[512];
    if (!getcwd(cwd, sizeof(cwd))) fatal("getcwd failed");
    const char *shared = test_shared_data();
    snprintf(trunc, sizeof(trunc), "{\"input_ids\": [1, 5]}\n{\"image\": \"%s%s%s/images/truncated.jpg\", \"input_ids\": [1, 90, 6]}\n",
             shared[0] == '/' ? "" : cwd, shared[0] == '/' ? "" : "/", shared);
    expect_error("truncated_image", gqa, trunc, "", "records.jsonl:2");
    free(tp);
}

// The decode benchmark runs end to end (tiny shape, CPU) and reports its figures.
TEST(generate_bench_decode_smoke) {
    char *out, *err;
    int rc = test_run_vlm("bench --workload decode --shape llava-tiny --batch 2 --new-tokens 4 --device cpu --steps 1 --warmup 0", &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "\"bench\": \"decode\"") && strstr(out, "\"decode_tokens_per_s\""), "unexpected output: %s", out);
    free(out); free(err);
}
