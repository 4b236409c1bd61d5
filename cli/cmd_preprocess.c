// vlm preprocess: one image through the CLIP pipeline into a float32 [3,H,W] .npy, for checking the
// C preprocessor against transformers (np.load the result) and for inspecting model inputs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/npy.h"
#include "../data/preprocess.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

static const char *help =
    "usage: vlm preprocess --image FILE --out X.npy [--size N] [--config preprocessor_config.json]\n"
    "                      [--pad] [--alpha drop|white]\n"
    "\n"
    "Runs an image through the CLIP preprocessing pipeline (HF CLIPImageProcessor with the PIL backend),\n"
    "or SigLIP's with a SiglipImageProcessor --config, and writes the pixel values as a float32 .npy of\n"
    "shape (3, H, W) (H = W = N for CLIP and SigLIP):\n"
    "  CLIP:   decode to RGB (PIL convert(\"RGB\") semantics) -> [pad to square] -> resize the short side to N\n"
    "          (PIL bicubic) -> center crop N x N -> x / 255 -> (x - mean) / std (OpenAI CLIP mean and std)\n"
    "  SigLIP: decode to RGB -> resize to N x N (the aspect ratio not kept; the config's filter, bicubic by\n"
    "          default) -> x / 255 -> (x - 0.5) / 0.5\n"
    "\n"
    "  --image FILE    JPEG, PNG, BMP, GIF, PNM, TGA, PSD or HDR image\n"
    "  --out X.npy     output file (written atomically)\n"
    "  --size N        shortest edge and crop size (default 336, llava-1.5's vision tower; overrides\n"
    "                  the sizes of --config; with a SigLIP config, the side of the square resize)\n"
    "  --config F      a model's preprocessor_config.json (size, crop_size, resample, mean, std, ...;\n"
    "                  absent fields take the defaults of its image_processor_type: SiglipImageProcessor's,\n"
    "                  else CLIPImageProcessor's)\n"
    "  --pad           LLaVA-1.5's pad-to-square: paste the image centered on a square of side\n"
    "                  max(W, H) filled with int(255 * mean) = (122, 116, 104) before resizing\n"
    "  --alpha MODE    transparency: drop (default; PIL convert(\"RGB\"), as LLaVA loads images) or\n"
    "                  white (composite on white, as transformers >= 5's convert_to_rgb)\n";

int cmd_preprocess(int argc, char **argv) {
    Args a = args_init("vlm preprocess", argc, argv);
    if (args_help(&a)) {
        fputs(help, stdout);
        return 0;
    }
    const char *image_path = arg_str(&a, "--image", NULL);
    const char *out_path = arg_str(&a, "--out", NULL);
    const char *config_path = arg_str(&a, "--config", NULL);
    long size = arg_int(&a, "--size", -1);  // -1: not given
    int pad = arg_flag(&a, "--pad");
    const char *alpha = arg_str(&a, "--alpha", "drop");
    args_finish(&a);
    if (!image_path) fatal("vlm preprocess: --image is required (see vlm preprocess --help)");
    if (!out_path) fatal("vlm preprocess: --out is required (see vlm preprocess --help)");
    if (size != -1 && (size < 1 || size > 16384)) fatal("vlm preprocess: --size %ld is outside 1..16384", size);

    PreprocessConfig cfg = preprocess_config_from_flags(config_path, size, pad);
    if (!strcmp(alpha, "drop")) cfg.alpha = IMAGE_ALPHA_DROP;
    else if (!strcmp(alpha, "white")) cfg.alpha = IMAGE_ALPHA_WHITE;
    else fatal("vlm preprocess: --alpha must be drop or white, got '%s'", alpha);

    Image *im = image_load_or_die(image_path, cfg.alpha);
    int h, w;
    float *px = preprocess_image(&cfg, im, &h, &w);
    long shape[3] = {3, h, w};
    npy_save_f32(out_path, px, shape, 3);
    printf("%s: %dx%d -> float32 [3,%d,%d] in %s\n", image_path, im->width, im->height, h, w, out_path);
    free(px);
    image_free(im);
    return 0;
}
