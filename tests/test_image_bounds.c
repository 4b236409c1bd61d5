// Image files are untrusted: a pixel-count bound (IMAGE_MAX_PIXELS) on decoded images, checked from the
// header before anything is allocated, and on every image the preprocessor makes from one. A tiny
// 1 x 20000 PNG is a valid image, but CLIP's shortest-edge resize to 336 would make it 336 x 6720000
// (6.8 GB): refused with a message naming the file and both sizes.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>
#include <zlib.h>

#include "../data/image.h"
#include "../data/preprocess.h"
#include "../util/common.h"
#include "test.h"

// A PNG with only a signature, an IHDR declaring w x h 8-bit RGB, and IEND: enough for the header
// check, which must refuse it before looking for pixel data.
static char *png_header_only(const char *name, uint32_t w, uint32_t h) {
    uint8_t b[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *c = b + 8;
    const uint8_t ihdr[17] = {'I', 'H', 'D', 'R', w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h, 8, 2, 0, 0, 0};
    c[0] = c[1] = c[2] = 0; c[3] = 13;
    memcpy(c + 4, ihdr, 17);
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), ihdr, 17);
    c[21] = crc >> 24; c[22] = crc >> 16; c[23] = crc >> 8; c[24] = crc;
    const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    memcpy(b + 33, iend, 12);
    char *path = path_join(test_tmpdir(), name);
    write_file_atomic(path, b, sizeof(b));
    return path;
}

TEST(image_pixel_bound_tall_png_and_huge_headers) {
    // 1 x 20000, written by stb_image_write: decodes (20000 pixels), the preprocessor refuses it
    char *tall = path_join(test_tmpdir(), "tall_1x20000.png");
    uint8_t *px = xcalloc(20000, 3);
    EXPECT(stbi_write_png(tall, 1, 20000, 3, px, 3) != 0);
    free(px);
    char err[512];
    Image *im = image_load(tall, IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECTF(im != NULL, "%s", err);
    if (im) {
        EXPECT(im->width == 1 && im->height == 20000);
        EXPECTF(im->name && !strcmp(im->name, tall), "name %s", im->name ? im->name : "(null)");
        PreprocessConfig clip = preprocess_config_clip(336);
        EXPECT_INT_EQ(preprocess_check_size(&clip, im->width, im->height, im->name, err, sizeof(err)), -1);
        EXPECTF(strstr(err, tall) && strstr(err, "1x20000") && strstr(err, "336x6720000"), "%s", err);
        clip.do_pad = 1;  // pad-to-square first: 20000 x 20000
        EXPECT_INT_EQ(preprocess_check_size(&clip, im->width, im->height, im->name, err, sizeof(err)), -1);
        // ordinary shapes pass, and so does a long strip the bound allows
        clip.do_pad = 0;
        EXPECT_INT_EQ(preprocess_check_size(&clip, 640, 480, "a", err, sizeof(err)), 0);
        EXPECT_INT_EQ(preprocess_check_size(&clip, 100, 4000, "a", err, sizeof(err)), 0);
        // an aspect ratio so extreme that the long side passes int
        clip.shortest_edge = 16384;
        EXPECT_INT_EQ(preprocess_check_size(&clip, 1, 2000000000, "a", err, sizeof(err)), -1);
        image_free(im);
    }
    // the CLI: a clear error and exit 1, no output
    char args[1024], *se = NULL, *out = path_join(test_tmpdir(), "tall.npy");
    snprintf(args, sizeof(args), "preprocess --image %s --out %s", tall, out);
    int rc = test_run_vlm(args, NULL, &se);
    EXPECTF(rc == 1 && se && strstr(se, tall) && strstr(se, "1x20000"), "exit %d: %s", rc, se ? se : "");
    EXPECT(!file_exists(out));
    free(se);

    // headers declaring more pixels than the bound (stb_image alone allows up to 2^30 bytes): refused
    // before decoding, naming the file and size
    char *big = png_header_only("big_header.png", 15000, 15000);
    EXPECT(image_load(big, IMAGE_ALPHA_DROP, err, sizeof(err)) == NULL);
    EXPECTF(strstr(err, big) && strstr(err, "15000x15000"), "%s", err);
    // a real JPEG whose start-of-frame is patched to 65000 x 65000
    size_t len;
    char *jpg = read_file("tests/fixtures/image/jpeg_422.jpg", &len);
    int patched = 0;
    for (size_t i = 2; i + 9 < len && !patched; i++)
        if ((uint8_t)jpg[i] == 0xFF && ((uint8_t)jpg[i + 1] == 0xC0 || (uint8_t)jpg[i + 1] == 0xC2)) {
            jpg[i + 5] = (char)0xFD; jpg[i + 6] = (char)0xE8;  // height 65000
            jpg[i + 7] = (char)0xFD; jpg[i + 8] = (char)0xE8;  // width 65000
            patched = 1;
        }
    EXPECT(patched);
    char *jbig = path_join(test_tmpdir(), "big_header.jpg");
    write_file_atomic(jbig, jpg, len);
    EXPECT(image_load(jbig, IMAGE_ALPHA_DROP, err, sizeof(err)) == NULL);
    EXPECTF(strstr(err, jbig) && strstr(err, "65000x65000"), "%s", err);
    free(jpg); free(jbig); free(big); free(out); free(tall);
}
