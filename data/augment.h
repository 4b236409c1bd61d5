// Image augmentations for the preference-data builders, seeded and reproducible:
//   SeVa      diffusion forward noise on normalized pixel values (research/methods.md §3.2)
//   mDPO      RandomResizedCrop(scale (0.01, 0.2)) of the preprocessed tensor, resized back (§4)
//   MVC       horizontal flip (left-right counterfactuals)
//   MoCo-v2   crop, colour jitter, grayscale, Gaussian blur, flip (SeVa's third variant; its code
//             is not released, so this is the MoCo-v2 recipe, [unverified] as SeVa's exact one)
//
// Images are float CHW planes [C][H][W]. Which value range each function expects:
//   any range (linear ops, commute with normalization): diffusion noise, crop/resize, flip, blur
//   [0, 1] RGB (they clamp to [0, 1] like torchvision on float tensors): brightness, contrast,
//   saturation, hue, grayscale; pixels_to_unit / pixels_from_unit (preprocess.h) convert
//   normalized pixel values to [0, 1] and back.
// Semantics follow torchvision's tensor implementations (torchvision.transforms.v1 functional_tensor);
// the random numbers come from our own generator, so the draws differ from torch's but follow the
// same distributions.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "preprocess.h"

// xoshiro256** seeded through splitmix64: fast, 256-bit state, good statistical quality.
typedef struct {
    uint64_t s[4];
    int has_spare;  // Box-Muller makes normals in pairs; the second is kept for the next call
    double spare;
} AugRng;

void augrng_seed(AugRng *r, uint64_t seed);
uint64_t augrng_next(AugRng *r);
double augrng_uniform(AugRng *r);                         // [0, 1), 53 random bits
double augrng_uniform_range(AugRng *r, double lo, double hi);  // [lo, hi)
int augrng_int(AugRng *r, int lo, int hi);                // uniform integer in [lo, hi), unbiased
double augrng_normal(AugRng *r);                          // standard normal (Box-Muller)

// ---- SeVa / VCD diffusion forward noise ----------------------------------------------------------
// 1000 steps, beta_i = sigmoid(linspace(-6, 6, 1000)_i) * (5e-3 - 1e-5) + 1e-5,
// alpha_bar_t = prod_{i <= t} (1 - beta_i), t in [0, 999] (VCD's add_diffusion_noise, used by SeVa
// with t = 500 and t = 800). Computed in double; torch's float32 values agree to ~1e-6.
#define DIFFUSION_STEPS 1000
double diffusion_alpha_bar(int t);
// In place on n values: x = sqrt(alpha_bar_t) * x + sqrt(1 - alpha_bar_t) * eps, eps ~ N(0, 1),
// applied to normalized pixel values as SeVa does.
void augment_diffusion_noise(float *x, size_t n, int t, AugRng *rng);

// ---- RandomResizedCrop ----------------------------------------------------------------------------
typedef struct { int top, left, height, width; } CropBox;
// torchvision's RandomResizedCrop.get_params: up to 10 tries of area fraction ~ U(scale) and
// log-aspect ~ U(log ratio), w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio)),
// accepted when 0 < w <= W and 0 < h <= H, position uniform; then a center crop fallback
// (the whole image, clipped to the ratio range).
CropBox random_resized_crop_params(AugRng *rng, int H, int W, double scale_lo, double scale_hi,
                                   double ratio_lo, double ratio_hi);
// Crops box from src [C][H][W] and resizes it to dst [C][out_h][out_w] with bilinear,
// align_corners=False, antialias=True: torchvision's F.resized_crop on tensors (antialias defaults
// to True since torchvision 0.17; mDPO's crops are upscales, where antialiasing changes nothing).
void augment_crop_resize(const float *src, int C, int H, int W, CropBox box, float *dst, int out_h, int out_w);
// mDPO's corruption: RandomResizedCrop(size = (H, W), scale = (scale_lo, scale_hi), ratio = (3/4, 4/3))
// in place. Returns the box used.
CropBox augment_random_resized_crop(float *x, int C, int H, int W, double scale_lo, double scale_hi, AugRng *rng);

// ---- Flip, colour, blur ------------------------------------------------------------------------------
void augment_hflip(float *x, int C, int H, int W);
// ITU-R 601-2 luma with torchvision's tensor weights (0.2989, 0.587, 0.114) written to all 3
// channels (PIL's convert("L") uses 0.299 and integer rounding on uint8).
void augment_grayscale(float *x, int H, int W);
// torchvision adjust_*: blend with black (brightness), with the mean gray level (contrast), with the
// grayscale image (saturation), each clamped to [0, 1]; hue rotates H in HSV by `shift` turns,
// shift in [-0.5, 0.5].
void augment_adjust_brightness(float *x, int H, int W, float factor);
void augment_adjust_contrast(float *x, int H, int W, float factor);
void augment_adjust_saturation(float *x, int H, int W, float factor);
void augment_adjust_hue(float *x, int H, int W, float shift);
// ColorJitter(brightness, contrast, saturation, hue): factors drawn from [max(0, 1 - b), 1 + b]
// (likewise c, s) and [-h, h]; the four adjustments run in a random order (torchvision draws a
// permutation of the four, then the four factors, and skips those whose parameter is 0).
typedef struct { float brightness, contrast, saturation, hue; } ColorJitter;
void augment_color_jitter(float *x, int H, int W, ColorJitter cj, AugRng *rng);
// torchvision's Gaussian kernel: x = linspace(-(k-1)/2, (k-1)/2, k), exp(-x^2 / (2 sigma^2)),
// normalized. ksize odd and positive.
void gaussian_kernel(float *k, int ksize, double sigma);
// Separable Gaussian blur with reflect padding (torch's "reflect": no edge repeat), in place.
void augment_gaussian_blur(float *x, int C, int H, int W, int ksize, double sigma);

// The MoCo-v2 recipe on a [0, 1] image, in place, output the same size:
// RandomResizedCrop(scale 0.2-1) -> ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8 -> grayscale p 0.2
// -> Gaussian blur sigma ~ U(0.1, 2), kernel ~10% of the side (odd), p 0.5 -> horizontal flip p 0.5.
void augment_moco_v2(float *x, int H, int W, AugRng *rng);

// ---- A named augmentation, for `vlm sample --augment` and the preference-data builders -----------
//   diffusion:T      SeVa's noise at step T (0..999; SeVa used 500 and 800)
//   crop:LO,HI       mDPO's RandomResizedCrop with area scale in [LO, HI] (mDPO: crop:0.01,0.2)
//   flip             horizontal flip (MVC's left-right counterfactuals)
//   moco             the MoCo-v2 recipe above
typedef enum { AUG_NONE, AUG_DIFFUSION, AUG_CROP, AUG_FLIP, AUG_MOCO } AugKind;
typedef struct {
    AugKind kind;
    int t;              // diffusion step
    double lo, hi;      // crop area scale
} AugSpec;
// 0 and *out on success; -1 with a message in err otherwise.
int augment_spec_parse(const char *spec, AugSpec *out, char *err, size_t errlen);
// Applies the augmentation to normalized pixel values x [3][H][W] in place (moco converts to [0, 1]
// with the preprocessor's mean and std and back, since its colour ops clamp there).
void augment_apply(const AugSpec *a, float *x, int H, int W, const PreprocessConfig *pcfg, AugRng *rng);
