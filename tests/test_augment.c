// Augmentations: determinism, the SeVa diffusion schedule, crop statistics and torch parity of the
// resize, flips, colour operations and blur.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/augment.h"
#include "../data/npy.h"
#include "../data/preprocess.h"
#include "../util/common.h"
#include "image_fixtures.h"
#include "test.h"

static float *random_image(int C, int H, int W, uint64_t seed) {
    AugRng r;
    augrng_seed(&r, seed);
    float *x = xmalloc(sizeof(float) * (size_t)C * H * W);
    for (size_t i = 0; i < (size_t)C * H * W; i++) x[i] = (float)augrng_uniform(&r);
    return x;
}

TEST(augment_rng_deterministic_and_distributed) {
    AugRng a, b, c;
    augrng_seed(&a, 42);
    augrng_seed(&b, 42);
    augrng_seed(&c, 43);
    int same = 1, differs = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = augrng_next(&a), y = augrng_next(&b), z = augrng_next(&c);
        same &= x == y;
        differs += x != z;
    }
    EXPECT(same);
    EXPECT(differs > 990);
    // uniform in [0, 1) with mean 1/2; normals with mean 0, variance 1; integers cover their range
    augrng_seed(&a, 7);
    double su = 0, sn = 0, sn2 = 0, umin = 1, umax = 0;
    int counts[5] = {0};
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double u = augrng_uniform(&a), n = augrng_normal(&a);
        su += u;
        sn += n;
        sn2 += n * n;
        umin = fmin(umin, u);
        umax = fmax(umax, u);
        counts[augrng_int(&a, 0, 5)]++;
    }
    EXPECT(umin >= 0 && umax < 1);
    EXPECT(fabs(su / N - 0.5) < 0.005);
    EXPECT(fabs(sn / N) < 0.01);
    EXPECT(fabs(sn2 / N - 1.0) < 0.02);
    for (int k = 0; k < 5; k++) EXPECTF(abs(counts[k] - N / 5) < N / 100, "augrng_int bucket %d: %d", k, counts[k]);
    // seed 0 is a valid seed (splitmix64 fills the state)
    augrng_seed(&a, 0);
    EXPECT(augrng_next(&a) != 0 || augrng_next(&a) != 0);
}

// research/methods.md §3.2: 1000 steps, beta = sigmoid(linspace(-6, 6)) * (5e-3 - 1e-5) + 1e-5;
// t=500 -> sqrt(abar) 0.863, sqrt(1-abar) 0.505; t=800 -> 0.467 / 0.884; t=999 -> 0.285 / 0.959.
TEST(augment_diffusion_schedule) {
    EXPECT(fabs(sqrt(diffusion_alpha_bar(500)) - 0.863) < 5e-4);
    EXPECT(fabs(sqrt(1 - diffusion_alpha_bar(500)) - 0.505) < 5e-4);
    EXPECT(fabs(sqrt(diffusion_alpha_bar(800)) - 0.467) < 5e-4);
    EXPECT(fabs(sqrt(1 - diffusion_alpha_bar(800)) - 0.884) < 5e-4);
    EXPECT(fabs(sqrt(diffusion_alpha_bar(999)) - 0.285) < 5e-4);
    EXPECT(fabs(sqrt(1 - diffusion_alpha_bar(999)) - 0.959) < 5e-4);
    // ... and VCD's torch float32 computation, to float32 accuracy
    cJSON *m = image_manifest();
    EXPECT(m);
    if (!m) return;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "augment"), "diffusion");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(d, "t");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(d, "sqrt_alpha_bar");
    const cJSON *sb = cJSON_GetObjectItemCaseSensitive(d, "sqrt_one_minus_alpha_bar");
    EXPECT(cJSON_GetArraySize(ts) >= 6);
    for (int i = 0; i < cJSON_GetArraySize(ts); i++) {
        int t = (int)cJSON_GetArrayItem(ts, i)->valuedouble;
        double ab = diffusion_alpha_bar(t);
        EXPECT_NEAR(sqrt(ab), cJSON_GetArrayItem(sa, i)->valuedouble, 2e-6);
        // 1 - abar near t = 0 cancels in float32: compare absolutely there
        EXPECTF(fabs(sqrt(1 - ab) - cJSON_GetArrayItem(sb, i)->valuedouble) < 2e-5, "t=%d: %g vs %g", t, sqrt(1 - ab),
                cJSON_GetArrayItem(sb, i)->valuedouble);
    }
    // strictly decreasing
    for (int t = 1; t < DIFFUSION_STEPS; t++) EXPECT(diffusion_alpha_bar(t) < diffusion_alpha_bar(t - 1));
}

TEST(augment_diffusion_noise_statistics_and_determinism) {
    const int n = 3 * 64 * 64;
    float *x = xcalloc(n, sizeof(float)), *y = xcalloc(n, sizeof(float));
    for (int i = 0; i < n; i++) x[i] = y[i] = 1.0f;
    AugRng r1, r2;
    augrng_seed(&r1, 500);
    augrng_seed(&r2, 500);
    augment_diffusion_noise(x, n, 500, &r1);
    augment_diffusion_noise(y, n, 500, &r2);
    EXPECT(!memcmp(x, y, sizeof(float) * n));  // same seed, same noise
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) { s += x[i]; s2 += x[i] * x[i]; }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    EXPECTF(fabs(mean - 0.8630) < 0.02, "mean %g: sqrt(abar_500) * 1 expected", mean);
    EXPECTF(fabs(sd - 0.5052) < 0.02, "std %g: sqrt(1 - abar_500) expected", sd);
    augrng_seed(&r2, 501);
    for (int i = 0; i < n; i++) y[i] = 1.0f;
    augment_diffusion_noise(y, n, 500, &r2);
    EXPECT(memcmp(x, y, sizeof(float) * n) != 0);
    free(x);
    free(y);
}

TEST(augment_hflip_involution) {
    int C = 3, H = 5, W = 7;
    float *x = random_image(C, H, W, 1), *y = random_image(C, H, W, 1);
    augment_hflip(y, C, H, W);
    EXPECT(y[0] == x[W - 1] && y[(size_t)2 * H * W + 3 * W + 1] == x[(size_t)2 * H * W + 3 * W + W - 2]);
    augment_hflip(y, C, H, W);
    EXPECT(!memcmp(x, y, sizeof(float) * C * H * W));
    free(x);
    free(y);
}

// mDPO's RandomResizedCrop(scale (0.01, 0.2), ratio (3/4, 4/3)) on a 336 x 336 tensor.
TEST(augment_random_resized_crop_bounds) {
    AugRng r;
    augrng_seed(&r, 9);
    const int H = 336, W = 336;
    double min_frac = 1, max_frac = 0;
    for (int i = 0; i < 5000; i++) {
        CropBox b = random_resized_crop_params(&r, H, W, 0.01, 0.2, 3.0 / 4, 4.0 / 3);
        EXPECT(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 && b.top + b.height <= H && b.left + b.width <= W);
        double frac = (double)b.height * b.width / (H * W);
        min_frac = fmin(min_frac, frac);
        max_frac = fmax(max_frac, frac);
        // w and h are each rounded to the nearest integer, so the drawn aspect (within [3/4, 4/3])
        // lies between (w - 0.5) / (h + 0.5) and (w + 0.5) / (h - 0.5)
        EXPECTF((b.width - 0.5) / (b.height + 0.5) <= 4.0 / 3 + 1e-9 && (b.width + 0.5) / (b.height - 0.5) >= 0.75 - 1e-9,
                "crop %dx%d outside the aspect range", b.width, b.height);
        if (test_failures_in_current()) break;
    }
    EXPECTF(min_frac >= 0.008 && min_frac < 0.012, "smallest area fraction %g", min_frac);
    EXPECTF(max_frac > 0.19 && max_frac <= 0.205, "largest area fraction %g", max_frac);
    // impossible scales fall back to the centered box: the whole image when its aspect is in range,
    // else clipped to the ratio range
    CropBox b = random_resized_crop_params(&r, 100, 100, 2.0, 3.0, 3.0 / 4, 4.0 / 3);
    EXPECT(b.top == 0 && b.left == 0 && b.height == 100 && b.width == 100);
    b = random_resized_crop_params(&r, 100, 300, 2.0, 3.0, 3.0 / 4, 4.0 / 3);
    EXPECT(b.height == 100 && b.width == 133 && b.left == (300 - 133) / 2 && b.top == 0);
    b = random_resized_crop_params(&r, 300, 100, 2.0, 3.0, 3.0 / 4, 4.0 / 3);
    EXPECT(b.width == 100 && b.height == 133 && b.top == (300 - 133) / 2);
    // the in-place op keeps the size and is reproducible for a seed
    float *x = random_image(3, 48, 48, 2), *y = random_image(3, 48, 48, 2);
    AugRng r1, r2;
    augrng_seed(&r1, 5);
    augrng_seed(&r2, 5);
    CropBox b1 = augment_random_resized_crop(x, 3, 48, 48, 0.01, 0.2, &r1);
    CropBox b2 = augment_random_resized_crop(y, 3, 48, 48, 0.01, 0.2, &r2);
    EXPECT(!memcmp(&b1, &b2, sizeof(b1)));
    EXPECT(!memcmp(x, y, sizeof(float) * 3 * 48 * 48));
    free(x);
    free(y);
}

// Bilinear, align_corners=False, antialias=True against torch.nn.functional.interpolate.
TEST(augment_resize_matches_torch_bilinear) {
    cJSON *m = image_manifest();
    EXPECT(m);
    if (!m) return;
    const cJSON *bl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "augment"), "bilinear");
    char err[512];
    char *inp = fixture_path(json_str(bl, "in_npy"));
    NpyArray in;
    EXPECTF(!npy_load(inp, &in, err, sizeof(err)), "%s", err);
    free(inp);
    if (!in.data) return;
    int C = (int)in.shape[0], H = (int)in.shape[1], W = (int)in.shape[2];
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(bl, "cases")) {
        int oh = (int)json_num(c, "h"), ow = (int)json_num(c, "w");
        char *p = fixture_path(json_str(c, "npy"));
        NpyArray ref;
        EXPECTF(!npy_load(p, &ref, err, sizeof(err)), "%s", err);
        free(p);
        if (!ref.data) continue;
        float *out = xmalloc(sizeof(float) * C * oh * ow);
        augment_crop_resize(in.data, C, H, W, (CropBox){0, 0, H, W}, out, oh, ow);
        double maxd = 0;
        for (size_t i = 0; i < (size_t)C * oh * ow; i++) maxd = fmax(maxd, fabs(out[i] - ((float *)ref.data)[i]));
        EXPECTF(maxd < 2e-6, "%dx%d -> %dx%d: max diff %g vs torch", H, W, oh, ow, maxd);
        free(out);
        npy_free(&ref);
        n++;
    }
    EXPECT(n >= 4);
    npy_free(&in);
}

TEST(augment_grayscale_weights) {
    float px[3 * 4] = {1, 0, 0, 0.5f, /* R */ 0, 1, 0, 0.5f, /* G */ 0, 0, 1, 0.5f /* B */};
    augment_grayscale(px, 1, 4);
    const float want[4] = {0.2989f, 0.587f, 0.114f, 0.5f * (0.2989f + 0.587f + 0.114f)};
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++) EXPECT_NEAR(px[c * 4 + i], want[i], 1e-6);
}

TEST(augment_blur) {
    float k[7];
    gaussian_kernel(k, 7, 1.5);
    double sum = 0;
    for (int i = 0; i < 7; i++) { sum += k[i]; EXPECT_NEAR(k[i], k[6 - i], 1e-7); }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    // torchvision's formula for ksize 3, sigma 1: exp(-0.5) / (1 + 2 exp(-0.5)) at the sides
    gaussian_kernel(k, 3, 1.0);
    EXPECT_NEAR(k[0], exp(-0.5) / (1 + 2 * exp(-0.5)), 1e-6);
    // a constant image stays constant (reflect padding, normalized kernel), even with a kernel wider than it
    int C = 3, H = 9, W = 6;
    float *x = xmalloc(sizeof(float) * C * H * W);
    for (int i = 0; i < C * H * W; i++) x[i] = 0.37f;
    augment_gaussian_blur(x, C, H, W, 15, 2.0);
    for (int i = 0; i < C * H * W; i++) EXPECT_NEAR(x[i], 0.37f, 1e-5);
    // an impulse far from the borders spreads into the outer product of the kernel
    H = 9; W = 9;
    float *y = xcalloc((size_t)H * W, sizeof(float));
    y[4 * 9 + 4] = 1.0f;
    augment_gaussian_blur(y, 1, H, W, 3, 1.0);
    EXPECT_NEAR(y[3 * 9 + 3], k[0] * k[0], 1e-6);
    EXPECT_NEAR(y[4 * 9 + 4], k[1] * k[1], 1e-6);
    double total = 0;
    for (int i = 0; i < H * W; i++) total += y[i];
    EXPECT_NEAR(total, 1.0, 1e-5);
    free(x);
    free(y);
}

TEST(augment_hue_matches_colorsys) {
    cJSON *m = image_manifest();
    EXPECT(m);
    if (!m) return;
    const cJSON *hue = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "augment"), "hue");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(hue, "in");
    int n = cJSON_GetArraySize(in);
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(hue, "cases")) {
        float *x = xmalloc(sizeof(float) * 3 * n);
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++) x[ch * n + i] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(in, i), ch)->valuedouble;
        float shift = (float)json_num(c, "shift");
        augment_adjust_hue(x, 1, n, shift);
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(c, "out");
        double maxd = 0;
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++)
                maxd = fmax(maxd, fabs(x[ch * n + i] - cJSON_GetArrayItem(cJSON_GetArrayItem(out, i), ch)->valuedouble));
        EXPECTF(maxd < 1e-5, "hue shift %g: max diff %g vs colorsys", shift, maxd);
        free(x);
        cases++;
    }
    EXPECT(cases >= 5);
}

TEST(augment_color_jitter) {
    int H = 6, W = 5;
    size_t n = (size_t)3 * H * W;
    float *x = random_image(3, H, W, 3), *y = random_image(3, H, W, 3);
    // neutral factors change nothing
    augment_adjust_brightness(y, H, W, 1.0f);
    augment_adjust_contrast(y, H, W, 1.0f);
    augment_adjust_saturation(y, H, W, 1.0f);
    augment_adjust_hue(y, H, W, 0.0f);
    double maxd = 0;
    for (size_t i = 0; i < n; i++) maxd = fmax(maxd, fabs(x[i] - y[i]));
    EXPECTF(maxd < 1e-6, "identity jitter moved pixels by %g", maxd);
    // brightness 0 -> black; saturation 0 -> grayscale; contrast 0 -> the mean gray everywhere
    memcpy(y, x, sizeof(float) * n);
    augment_adjust_brightness(y, H, W, 0.0f);
    for (size_t i = 0; i < n; i++) EXPECT(y[i] == 0.0f);
    memcpy(y, x, sizeof(float) * n);
    augment_adjust_saturation(y, H, W, 0.0f);
    float *g = random_image(3, H, W, 3);
    augment_grayscale(g, H, W);
    for (size_t i = 0; i < n; i++) EXPECT_NEAR(y[i], g[i], 1e-5);
    memcpy(y, x, sizeof(float) * n);
    augment_adjust_contrast(y, H, W, 0.0f);
    double mean = 0;
    for (int i = 0; i < H * W; i++) mean += g[i];
    mean /= H * W;
    for (size_t i = 0; i < n; i++) EXPECT_NEAR(y[i], mean, 1e-5);
    // brightness 3 clamps at 1
    memcpy(y, x, sizeof(float) * n);
    augment_adjust_brightness(y, H, W, 3.0f);
    for (size_t i = 0; i < n; i++) EXPECT(y[i] <= 1.0f && y[i] >= 0.0f);
    // ColorJitter is reproducible for a seed and stays in [0, 1]
    AugRng r1, r2;
    augrng_seed(&r1, 77);
    augrng_seed(&r2, 77);
    memcpy(y, x, sizeof(float) * n);
    ColorJitter cj = {0.4f, 0.4f, 0.4f, 0.1f};
    augment_color_jitter(x, H, W, cj, &r1);
    augment_color_jitter(y, H, W, cj, &r2);
    EXPECT(!memcmp(x, y, sizeof(float) * n));
    for (size_t i = 0; i < n; i++) EXPECT(x[i] >= 0.0f && x[i] <= 1.0f);
    free(x);
    free(y);
    free(g);
}

// The MoCo-v2 recipe on a preprocessed image, through pixels_to_unit and back; reproducible.
TEST(augment_moco_v2_roundtrip) {
    PreprocessConfig cfg = preprocess_config_clip(32);
    int S = 32;
    size_t n = (size_t)3 * S * S;
    float *x = random_image(3, S, S, 4);
    pixels_from_unit(&cfg, x, S, S);
    float *y = xmalloc(sizeof(float) * n);
    memcpy(y, x, sizeof(float) * n);
    pixels_to_unit(&cfg, y, S, S);
    pixels_from_unit(&cfg, y, S, S);
    double maxd = 0;
    for (size_t i = 0; i < n; i++) maxd = fmax(maxd, fabs(x[i] - y[i]));
    EXPECTF(maxd < 1e-5, "to_unit/from_unit round trip: %g", maxd);
    float *a = random_image(3, S, S, 4), *b = random_image(3, S, S, 4);
    for (int seed = 0; seed < 8; seed++) {
        AugRng r1, r2;
        augrng_seed(&r1, seed);
        augrng_seed(&r2, seed);
        augment_moco_v2(a, S, S, &r1);
        augment_moco_v2(b, S, S, &r2);
        EXPECT(!memcmp(a, b, sizeof(float) * n));
        for (size_t i = 0; i < n; i++) EXPECT(a[i] >= -1e-6f && a[i] <= 1.0f + 1e-6f && a[i] == a[i]);
    }
    free(x); free(y); free(a); free(b);
}
