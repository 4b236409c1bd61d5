// Seeded image augmentations (see augment.h for the semantics and value ranges).
#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "preprocess.h"

// ------------------------------------------------------------------------------------------------
// Random numbers

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void augrng_seed(AugRng *r, uint64_t seed) {
    // splitmix64 spreads any seed (0 included) over the 256-bit state, which must not be all zero
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
    r->has_spare = 0;
    r->spare = 0.0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t augrng_next(AugRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double augrng_uniform(AugRng *r) { return (double)(augrng_next(r) >> 11) * 0x1.0p-53; }

double augrng_uniform_range(AugRng *r, double lo, double hi) { return lo + (hi - lo) * augrng_uniform(r); }

int augrng_int(AugRng *r, int lo, int hi) {
    CHECK_OR_DIE(hi > lo, "augrng_int: empty range [%d, %d)", lo, hi);
    uint64_t n = (uint64_t)((int64_t)hi - lo);
    // rejection sampling: drop the top partial block of 2^64 so every value is equally likely
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = augrng_next(r); while (v >= limit);
    return lo + (int)(v % n);
}

double augrng_normal(AugRng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - augrng_uniform(r);  // (0, 1]: log() stays finite
    double u2 = augrng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(2.0 * M_PI * u2);
    r->has_spare = 1;
    return rad * cos(2.0 * M_PI * u2);
}

// ------------------------------------------------------------------------------------------------
// Diffusion forward noise

double diffusion_alpha_bar(int t) {
    CHECK_OR_DIE(t >= 0 && t < DIFFUSION_STEPS, "diffusion step %d outside [0, %d)", t, DIFFUSION_STEPS);
    // recomputed on each call (t + 1 exp's, once per image): no shared table, nothing to lock
    double prod = 1.0;
    for (int i = 0; i <= t; i++) {
        double z = -6.0 + 12.0 * i / (DIFFUSION_STEPS - 1);  // torch.linspace(-6, 6, 1000)
        double beta = 1.0 / (1.0 + exp(-z)) * (0.5e-2 - 1e-5) + 1e-5;
        prod *= 1.0 - beta;
    }
    return prod;
}

void augment_diffusion_noise(float *x, size_t n, int t, AugRng *rng) {
    double ab = diffusion_alpha_bar(t);
    float a = (float)sqrt(ab), b = (float)sqrt(1.0 - ab);
    for (size_t i = 0; i < n; i++) x[i] = a * x[i] + b * (float)augrng_normal(rng);
}

// ------------------------------------------------------------------------------------------------
// RandomResizedCrop

CropBox random_resized_crop_params(AugRng *rng, int H, int W, double scale_lo, double scale_hi,
                                   double ratio_lo, double ratio_hi) {
    double area = (double)H * W;
    double log_lo = log(ratio_lo), log_hi = log(ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * augrng_uniform_range(rng, scale_lo, scale_hi);
        double aspect = exp(augrng_uniform_range(rng, log_lo, log_hi));
        // Python's round() rounds halves to even, as rint() does in the default rounding mode
        int w = (int)rint(sqrt(target * aspect));
        int h = (int)rint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            int top = augrng_int(rng, 0, H - h + 1);
            int left = augrng_int(rng, 0, W - w + 1);
            return (CropBox){top, left, h, w};
        }
    }
    // fallback: the largest centered box whose aspect lies in the ratio range
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < ratio_lo) { w = W; h = (int)rint(w / ratio_lo); }
    else if (in_ratio > ratio_hi) { h = H; w = (int)rint(h * ratio_hi); }
    else { w = W; h = H; }
    return (CropBox){(H - h) / 2, (W - w) / 2, h, w};
}

void augment_crop_resize(const float *src, int C, int H, int W, CropBox b, float *dst, int out_h, int out_w) {
    CHECK_OR_DIE(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 && b.top + b.height <= H && b.left + b.width <= W,
                 "augment_crop_resize: box (%d,%d,%d,%d) outside %dx%d", b.top, b.left, b.height, b.width, H, W);
    float *crop = xmalloc(sizeof(float) * (size_t)C * b.height * b.width);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < b.height; y++)
            memcpy(crop + ((size_t)c * b.height + y) * b.width, src + ((size_t)c * H + b.top + y) * W + b.left,
                   sizeof(float) * b.width);
    resample_planes(crop, C, b.height, b.width, dst, out_h, out_w, RESAMPLE_BILINEAR);
    free(crop);
}

CropBox augment_random_resized_crop(float *x, int C, int H, int W, double scale_lo, double scale_hi, AugRng *rng) {
    CropBox b = random_resized_crop_params(rng, H, W, scale_lo, scale_hi, 3.0 / 4.0, 4.0 / 3.0);
    float *out = xmalloc(sizeof(float) * (size_t)C * H * W);
    augment_crop_resize(x, C, H, W, b, out, H, W);
    memcpy(x, out, sizeof(float) * (size_t)C * H * W);
    free(out);
    return b;
}

// ------------------------------------------------------------------------------------------------
// Flip and colour

void augment_hflip(float *x, int C, int H, int W) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++) {
            float *row = x + ((size_t)c * H + y) * W;
            for (int i = 0, j = W - 1; i < j; i++, j--) {
                float t = row[i];
                row[i] = row[j];
                row[j] = t;
            }
        }
}

static inline float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }
static inline float luma(float r, float g, float b) { return 0.2989f * r + 0.587f * g + 0.114f * b; }

void augment_grayscale(float *x, int H, int W) {
    size_t hw = (size_t)H * W;
    for (size_t i = 0; i < hw; i++) {
        float l = luma(x[i], x[hw + i], x[2 * hw + i]);
        x[i] = x[hw + i] = x[2 * hw + i] = l;
    }
}

void augment_adjust_brightness(float *x, int H, int W, float f) {
    size_t n = (size_t)3 * H * W;
    for (size_t i = 0; i < n; i++) x[i] = clamp01(f * x[i]);
}

void augment_adjust_contrast(float *x, int H, int W, float f) {
    size_t hw = (size_t)H * W;
    double sum = 0.0;
    for (size_t i = 0; i < hw; i++) sum += luma(x[i], x[hw + i], x[2 * hw + i]);
    float mean = (float)(sum / hw);  // one mean gray level for the whole image
    for (size_t i = 0; i < 3 * hw; i++) x[i] = clamp01(f * x[i] + (1.0f - f) * mean);
}

void augment_adjust_saturation(float *x, int H, int W, float f) {
    size_t hw = (size_t)H * W;
    for (size_t i = 0; i < hw; i++) {
        float l = luma(x[i], x[hw + i], x[2 * hw + i]);
        for (int c = 0; c < 3; c++) x[c * hw + i] = clamp01(f * x[c * hw + i] + (1.0f - f) * l);
    }
}

void augment_adjust_hue(float *x, int H, int W, float shift) {
    CHECK_OR_DIE(shift >= -0.5f && shift <= 0.5f, "hue shift %g outside [-0.5, 0.5]", shift);
    size_t hw = (size_t)H * W;
    for (size_t i = 0; i < hw; i++) {
        float r = x[i], g = x[hw + i], b = x[2 * hw + i];
        float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
        float cr = maxc - minc;
        float h = 0.0f, s = maxc > 0.0f ? cr / maxc : 0.0f, v = maxc;
        if (cr > 0.0f) {  // hue in sixths of a turn, from whichever channel is largest
            if (maxc == r) h = (g - b) / cr;
            else if (maxc == g) h = 2.0f + (b - r) / cr;
            else h = 4.0f + (r - g) / cr;
            h = h / 6.0f;
        }
        h = fmodf(h + shift + 2.0f, 1.0f);  // +2 keeps the argument positive: Python-style modulo
        float h6 = h * 6.0f;
        int sector = (int)floorf(h6);
        float f = h6 - sector;
        sector %= 6;
        float p = clamp01(v * (1.0f - s)), q = clamp01(v * (1.0f - s * f)), t = clamp01(v * (1.0f - s * (1.0f - f)));
        float o[3];
        switch (sector) {
        case 0: o[0] = v; o[1] = t; o[2] = p; break;
        case 1: o[0] = q; o[1] = v; o[2] = p; break;
        case 2: o[0] = p; o[1] = v; o[2] = t; break;
        case 3: o[0] = p; o[1] = q; o[2] = v; break;
        case 4: o[0] = t; o[1] = p; o[2] = v; break;
        default: o[0] = v; o[1] = p; o[2] = q; break;
        }
        x[i] = o[0];
        x[hw + i] = o[1];
        x[2 * hw + i] = o[2];
    }
}

void augment_color_jitter(float *x, int H, int W, ColorJitter cj, AugRng *rng) {
    // torchvision: a random order of the four, then the four factors drawn in a fixed order
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = augrng_int(rng, 0, i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    float fb = cj.brightness > 0 ? (float)augrng_uniform_range(rng, fmax(0.0, 1.0 - cj.brightness), 1.0 + cj.brightness) : 1.0f;
    float fc = cj.contrast > 0 ? (float)augrng_uniform_range(rng, fmax(0.0, 1.0 - cj.contrast), 1.0 + cj.contrast) : 1.0f;
    float fs = cj.saturation > 0 ? (float)augrng_uniform_range(rng, fmax(0.0, 1.0 - cj.saturation), 1.0 + cj.saturation) : 1.0f;
    float fh = cj.hue > 0 ? (float)augrng_uniform_range(rng, -cj.hue, cj.hue) : 0.0f;
    for (int k = 0; k < 4; k++) {
        switch (order[k]) {
        case 0: if (cj.brightness > 0) augment_adjust_brightness(x, H, W, fb); break;
        case 1: if (cj.contrast > 0) augment_adjust_contrast(x, H, W, fc); break;
        case 2: if (cj.saturation > 0) augment_adjust_saturation(x, H, W, fs); break;
        default: if (cj.hue > 0) augment_adjust_hue(x, H, W, fh); break;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Gaussian blur

void gaussian_kernel(float *k, int ksize, double sigma) {
    CHECK_OR_DIE(ksize > 0 && ksize % 2 == 1 && sigma > 0, "gaussian kernel: size %d must be odd and sigma %g > 0", ksize, sigma);
    double half = (ksize - 1) * 0.5, sum = 0.0;
    double *tmp = xmalloc(sizeof(double) * ksize);
    for (int i = 0; i < ksize; i++) {
        double x = -half + i;
        tmp[i] = exp(-0.5 * (x / sigma) * (x / sigma));
        sum += tmp[i];
    }
    for (int i = 0; i < ksize; i++) k[i] = (float)(tmp[i] / sum);
    free(tmp);
}

// torch's "reflect" padding mirrors about the edge pixel (-1 -> 1, n -> n - 2); repeated for
// kernels wider than the image, where torch itself would refuse.
static inline int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

void augment_gaussian_blur(float *x, int C, int H, int W, int ksize, double sigma) {
    float *k = xmalloc(sizeof(float) * ksize);
    gaussian_kernel(k, ksize, sigma);
    int r = ksize / 2;
    float *tmp = xmalloc(sizeof(float) * (size_t)H * W);
    for (int c = 0; c < C; c++) {
        float *p = x + (size_t)c * H * W;
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                float acc = 0.0f;
                for (int t = -r; t <= r; t++) acc += k[t + r] * p[(size_t)y * W + reflect(xx + t, W)];
                tmp[(size_t)y * W + xx] = acc;
            }
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                float acc = 0.0f;
                for (int t = -r; t <= r; t++) acc += k[t + r] * tmp[(size_t)reflect(y + t, H) * W + xx];
                p[(size_t)y * W + xx] = acc;
            }
    }
    free(tmp);
    free(k);
}

// ------------------------------------------------------------------------------------------------

void augment_moco_v2(float *x, int H, int W, AugRng *rng) {
    augment_random_resized_crop(x, 3, H, W, 0.2, 1.0, rng);
    if (augrng_uniform(rng) < 0.8) augment_color_jitter(x, H, W, (ColorJitter){0.4f, 0.4f, 0.4f, 0.1f}, rng);
    if (augrng_uniform(rng) < 0.2) augment_grayscale(x, H, W);
    if (augrng_uniform(rng) < 0.5) {
        int side = H < W ? H : W;
        int ksize = (int)(0.1 * side) | 1;  // SimCLR's choice: about a tenth of the image, odd
        augment_gaussian_blur(x, 3, H, W, ksize, augrng_uniform_range(rng, 0.1, 2.0));
    }
    if (augrng_uniform(rng) < 0.5) augment_hflip(x, 3, H, W);
}

// ---- named augmentations ----------------------------------------------------------------------------

int augment_spec_parse(const char *spec, AugSpec *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    char tail;
    if (!strcmp(spec, "flip")) out->kind = AUG_FLIP;
    else if (!strcmp(spec, "moco")) out->kind = AUG_MOCO;
    else if (!strncmp(spec, "diffusion:", 10)) {
        out->kind = AUG_DIFFUSION;
        if (sscanf(spec + 10, "%d%c", &out->t, &tail) != 1 || out->t < 0 || out->t >= DIFFUSION_STEPS) {
            snprintf(err, errlen, "augmentation '%s': the diffusion step must be an integer in [0, %d]", spec, DIFFUSION_STEPS - 1);
            return -1;
        }
    } else if (!strncmp(spec, "crop:", 5)) {
        out->kind = AUG_CROP;
        if (sscanf(spec + 5, "%lf,%lf%c", &out->lo, &out->hi, &tail) != 2 || !(out->lo > 0 && out->lo <= out->hi && out->hi <= 1)) {
            snprintf(err, errlen, "augmentation '%s': expected crop:LO,HI with 0 < LO <= HI <= 1 (mDPO: crop:0.01,0.2)", spec);
            return -1;
        }
    } else {
        snprintf(err, errlen, "augmentation '%s': expected diffusion:T, crop:LO,HI, flip or moco", spec);
        return -1;
    }
    return 0;
}

void augment_apply(const AugSpec *a, float *x, int H, int W, const PreprocessConfig *pcfg, AugRng *rng) {
    switch (a->kind) {
    case AUG_NONE: break;
    case AUG_DIFFUSION: augment_diffusion_noise(x, (size_t)3 * H * W, a->t, rng); break;
    case AUG_CROP: augment_random_resized_crop(x, 3, H, W, a->lo, a->hi, rng); break;
    case AUG_FLIP: augment_hflip(x, 3, H, W); break;
    case AUG_MOCO:
        pixels_to_unit(pcfg, x, H, W);
        augment_moco_v2(x, H, W, rng);
        pixels_from_unit(pcfg, x, H, W);
        break;
    }
}
