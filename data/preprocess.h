// The image side of a CLIP- or SigLIP-style model: PIL-compatible resizing and the CLIPImageProcessor /
// LlavaImageProcessor / SiglipImageProcessor pipeline (optional pad-to-square, resize, center crop, rescale,
// normalize) from an image to float32 CHW pixel values, as transformers' PIL backend computes them.
//
// Exactness: image_resize reproduces Pillow's Resample.c arithmetic (double-precision filter
// weights, 22-bit fixed-point coefficients, uint8 rounding and clamping after each pass, Pillow 13's
// pass order), and the rescale/normalize steps use the same float64/float32
// operations as numpy, so for a PNG the output equals transformers' bit for bit.
#pragma once
#include <stddef.h>

#include "image.h"

// PIL's resampling filter codes (the "resample" field of preprocessor_config.json).
typedef enum {
    RESAMPLE_NEAREST = 0,
    RESAMPLE_LANCZOS = 1,
    RESAMPLE_BILINEAR = 2,
    RESAMPLE_BICUBIC = 3,
    RESAMPLE_BOX = 4,
    RESAMPLE_HAMMING = 5,
} Resample;

// Pillow's Image.resize((out_w, out_h), resample) of an RGB image. Separable, one pass per axis, each
// rounded to uint8; each filter's support is widened by the downscale factor (antialiasing).
// The pass order follows Pillow >= 13 (resize_vertical_first); image_resize_ordered takes it
// explicitly (vertical_first = 0 reproduces Pillow <= 12, which always went horizontal first).
Image *image_resize(const Image *im, int out_w, int out_h, Resample filter);
Image *image_resize_ordered(const Image *im, int out_w, int out_h, Resample filter, int vertical_first);
// Pillow 13's choice: vertical first when the height shrinks by more than twice the pixels the width does.
int resize_vertical_first(int in_w, int in_h, int out_w, int out_h);

// The same filters on float planes (no rounding): src [C][H][W] -> dst [C][out_h][out_w].
// With RESAMPLE_BILINEAR this is torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=True), which is also plain bilinear when upscaling.
void resample_planes(const float *src, int C, int H, int W, float *dst, int out_h, int out_w, Resample filter);

// torch.nn.functional.interpolate(mode="bicubic", align_corners=False) without antialias, in float as torch's CPU
// kernel computes it: src [C][H][W] -> dst [C][out_h][out_w]. (With antialias=True torch uses Pillow's bicubic
// filter, resample_planes(..., RESAMPLE_BICUBIC).) DINOv2 interpolates its position embeddings this way.
void interpolate_bicubic_planes(const float *src, int C, int H, int W, float *dst, int out_h, int out_w);

// LLaVA's pad colour: tuple(int(x * 255) for x in image_mean), (122, 116, 104) for CLIP.
void preprocess_pad_color(const double mean[3], unsigned char rgb[3]);

#define OPENAI_CLIP_MEAN_INIT {0.48145466, 0.4578275, 0.40821073}
#define OPENAI_CLIP_STD_INIT {0.26862954, 0.26130258, 0.27577711}

typedef struct {
    int do_resize;
    int shortest_edge;             // > 0: resize the short side to this, keep the aspect (long = int(s * long / short))
    int resize_height, resize_width;  // used when shortest_edge == 0: resize to exactly this
    Resample resample;
    int do_center_crop;
    int crop_height, crop_width;   // top = (H - crop_h) // 2, left = (W - crop_w) // 2; zero-padded if larger
    int do_rescale;
    double rescale_factor;         // x * factor in float64, then cast to float32 (numpy's rescale)
    int do_normalize;
    double image_mean[3], image_std[3];  // (x - mean) / std, computed in float32 as numpy does
    int do_pad;                    // LLaVA pad-to-square (expand2square) before resizing
    ImageAlpha alpha;              // how decoding treats transparency (see image.h)
} PreprocessConfig;

// CLIPImageProcessor defaults at a given size: shortest edge `size`, center crop size x size,
// bicubic, rescale 1/255, OpenAI CLIP mean/std, no padding. size 336 is llava-1.5's tower.
PreprocessConfig preprocess_config_clip(int size);
// SiglipImageProcessor's defaults at a given size: resize to size x size (the aspect ratio not kept), no crop,
// bicubic, rescale 1/255, mean = std = 0.5. size 384 is SigLIP-so400m/14-384's (LLaVA-Interleave's tower).
PreprocessConfig preprocess_config_siglip(int size);
// Fills cfg from an HF preprocessor_config.json text. Fields absent from the file keep the class defaults of its
// image_processor_type: SiglipImageProcessor's for a Siglip type, else CLIP's. Understands: size (int, {shortest_edge} or {height, width}), crop_size (int or
// {height, width}), do_resize, resample, do_center_crop, do_rescale, rescale_factor, do_normalize,
// image_mean, image_std (3 numbers or one), do_convert_rgb (must not be false), and pad-to-square
// from "do_pad" of a LlavaImageProcessor or an original-LLaVA "image_aspect_ratio": "pad".
// Returns 0, or -1 with a message naming `name` and the field in err.
int preprocess_config_parse(PreprocessConfig *cfg, const char *json, const char *name, char *err, size_t errlen);
// Reads and parses a file (dies naming the file on error).
PreprocessConfig preprocess_config_load(const char *path);

// The settings of the CLI flags --config F (a preprocessor_config.json), --size N (the square output:
// shortest-edge resize and center crop to N, or with a SigLIP-style config, a square resize to N; with --config it
// overrides the file's sizes; -1 = unset)
// and --pad (LLaVA's pad-to-square). Without --config: CLIP's defaults at N (336 when unset).
PreprocessConfig preprocess_config_from_flags(const char *config_path, long size, int pad);
// Output height and width for an input of w x h (after the optional pad, resize and crop).
void preprocess_output_size(const PreprocessConfig *cfg, int w, int h, int *out_h, int *out_w);
// 0 when every image the pipeline makes from a w x h input (the padded square, the resize and its
// intermediate pass, the crop) stays within IMAGE_MAX_PIXELS; else -1 with a message naming `name`
// (the file), the input size and what it would resize to. A shortest-edge resize scales the long side
// with the aspect ratio, so a tiny 1 x 20000 PNG would become 336 x 6720000.
int preprocess_check_size(const PreprocessConfig *cfg, int w, int h, const char *name, char *err, size_t errlen);
// The uint8 stage: pad-to-square, resize, center crop. Returns a fresh image; dies with
// preprocess_check_size's message (naming im->name) when the input is too large for it.
Image *preprocess_geometry(const PreprocessConfig *cfg, const Image *im);
// The float stage: rescale and normalize a uint8 image into out [3][H][W].
void preprocess_normalize(const PreprocessConfig *cfg, const Image *im, float *out);
// The whole pipeline: returns malloc'd float32 [3][out_h][out_w] (out_h/out_w may be NULL).
float *preprocess_image(const PreprocessConfig *cfg, const Image *im, int *out_h, int *out_w);
// Pixel values [3][H][W] back to uint8-scale [0, 1] values and forth (for augmentations that work
// on [0, 1] images: x01 = x * std + mean, and the reverse).
void pixels_to_unit(const PreprocessConfig *cfg, float *x, int H, int W);
void pixels_from_unit(const PreprocessConfig *cfg, float *x, int H, int W);
