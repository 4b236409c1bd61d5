// Images in memory and decoding from files (JPEG: libjpeg-turbo; the rest: stb_image), converted to
// 8-bit RGB the way PIL's Image.open(path).convert("RGB") does, which is what LLaVA and HF
// processors see.
//
// Conversion rules (each checked against PIL in tests/test_image.c):
//   RGB                      as is
//   RGBA, palette + tRNS     alpha dropped, no compositing (PIL convert("RGB"));
//                            IMAGE_ALPHA_WHITE composites on white instead, as transformers >= 5's
//                            convert_to_rgb does for images that carry transparency
//   L (grayscale), LA        gray replicated into R, G, B (alpha dropped)
//   palette (P)              expanded through the palette
//   16-bit RGB/RGBA/LA PNG   high byte (v >> 8), as PIL's "RGB;16B" unpacker
//   16-bit grayscale PNG     min(v, 255): PIL opens it as mode "I;16" and its I;16 -> RGB
//                            conversion clips instead of scaling, so most such images come out
//                            white. We match PIL on purpose (parity with the reference pipeline).
//   JPEG                     libjpeg-turbo with PIL's settings (islow IDCT, fancy upsampling):
//                            bit-exact with PIL. Gray JPEGs replicated; CMYK/YCCK JPEGs read as
//                            inverted (Adobe) CMYK and converted with PIL's cmyk2rgb formula.
//                            A JPEG whose data ends before its end-of-image marker is an error
//                            ("truncated JPEG"), as PIL's "image file is truncated".
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width, height;
    uint8_t *data;  // [height][width][3] RGB, row-major, no padding
    char *name;     // the file it was decoded from (for messages), or NULL
} Image;

// The most pixels a decoded image, or any image the preprocessor makes from one, may have: PIL's
// DecompressionBombError threshold (2 * Image.MAX_IMAGE_PIXELS), 537 MB of RGB. Image files are
// untrusted: a 106-byte PNG can declare 1 x 20000 pixels, and a shortest-edge resize of it to 336
// would be 336 x 6720000 (6.8 GB).
#define IMAGE_MAX_PIXELS 178956970LL

typedef enum {
    IMAGE_ALPHA_DROP = 0,  // PIL convert("RGB"): ignore alpha (LLaVA's loader, transformers 4.x)
    IMAGE_ALPHA_WHITE = 1, // composite over opaque white with PIL's alpha_composite rounding (transformers 5.x)
} ImageAlpha;

// A fresh image, pixels uninitialized (name NULL); dies past IMAGE_MAX_PIXELS (callers check first).
Image *image_new(int width, int height);
// A fresh image filled with one colour.
Image *image_new_filled(int width, int height, const uint8_t rgb[3]);
void image_free(Image *im);
Image *image_copy(const Image *im);

// Decodes an encoded image (JPEG, PNG, BMP, GIF first frame, PNM, TGA, PSD, ...) held in memory.
// name is used in messages (and kept in im->name). An image past IMAGE_MAX_PIXELS is refused from its
// header, before anything is allocated for it. On failure returns NULL and writes a message naming `name` and the
// reason ("truncated JPEG ...", "not an image ...", libjpeg's or stb_image's reason) into err[errlen]
// (err may be NULL). Thread-safe for JPEGs; stb_image's failure reason is a global.
Image *image_decode(const uint8_t *bytes, size_t len, const char *name, ImageAlpha alpha, char *err, size_t errlen);
// Reads and decodes a file; NULL + message (naming the path) on a missing/unreadable file or a decode error.
Image *image_load(const char *path, ImageAlpha alpha, char *err, size_t errlen);
// Checks from the first bytes of a file that it exists and has a header we decode (the format, the size), without
// decoding it: 0, or -1 with a message as image_load's. Training checks every image so at load and decodes it when a
// batch needs it.
int image_probe(const char *path, char *err, size_t errlen);
// Like image_load but dies (fatal) with the message.
Image *image_load_or_die(const char *path, ImageAlpha alpha);

// Pastes src into dst with its top-left corner at (x, y); parts outside dst are clipped (PIL paste).
void image_paste(Image *dst, const Image *src, int x, int y);
// LLaVA's expand2square: a square of side max(W, H) filled with `fill`, the image pasted at
// ((side - W) / 2, (side - H) / 2) (floor). Returns a fresh copy even when the image is square.
Image *image_expand_to_square(const Image *im, const uint8_t fill[3]);
// The sub-rectangle [y0, y0 + h) x [x0, x0 + w); must lie inside the image.
Image *image_crop(const Image *im, int x0, int y0, int w, int h);
