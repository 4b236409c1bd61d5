// Image decoding and preprocessing (data/image.c, data/preprocess.c): a PNG, JPEG, GIF, BMP, ... from
// memory to RGB, then CLIP's pipeline (pad, resize, crop, normalize) at a small size. Bad files give
// a message; sizes past the pixel bound are refused before anything large is allocated.
#include "fuzz.h"

#include "../../data/image.h"
#include "../../data/preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN
        char err[512];
        Image *im = image_decode(data, size, "input", size % 2 ? IMAGE_ALPHA_WHITE : IMAGE_ALPHA_DROP, err, sizeof(err));
        if (im) {
            if ((long long)im->width * im->height > IMAGE_MAX_PIXELS) abort();
            PreprocessConfig c = preprocess_config_clip(24);
            c.do_pad = (im->width + im->height) % 2;
            c.resample = (Resample)(im->width % 6);
            // the pipeline's cost grows with the image (a 1.6 KB JPEG of 61 x 12032 pads to 12032^2, within
            // the bound but seconds of work under the sanitizers): run it on sides up to 1024, the size
            // check on all
            if (preprocess_check_size(&c, im->width, im->height, im->name, err, sizeof(err)) == 0 && im->width <= 1024 &&
                im->height <= 1024) {
                int h, w;
                free(preprocess_image(&c, im, &h, &w));
                if (h != 24 || w != 24) abort();
            }
            image_free(im);
        }
    FUZZ_END
    return 0;
}
