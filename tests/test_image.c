// Image decoding against PIL's convert("RGB"), and clear errors for bad files.
#include <stdio.h>  // before jpeglib.h
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "../data/image.h"
#include "../util/common.h"
#include "image_fixtures.h"
#include "test.h"

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

TEST(image_decode_matches_pil) {
    cJSON *m = image_manifest();
    EXPECTF(m, "missing %s/manifest.json: run tests/ref/make_image_fixtures.py", IMAGE_FIXTURES);
    if (!m) return;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "images")) {
        const char *name = json_str(e, "name");
        char *path = shared_image_path(name);
        char err[512];
        Image *im = image_load(path, IMAGE_ALPHA_DROP, err, sizeof(err));
        EXPECTF(im, "%s", err);
        if (!im) { free(path); continue; }
        EXPECT_INT_EQ(im->width, json_num(e, "width"));
        EXPECT_INT_EQ(im->height, json_num(e, "height"));
        size_t n = (size_t)im->width * im->height * 3;
        unsigned long crc = crc32_bytes(im->data, n);
        // PNG (palette expansion, gray replication, alpha dropped) and JPEG (libjpeg-turbo with PIL's
        // settings) alike: byte for byte
        EXPECTF(crc == (unsigned long)json_num(e, "rgb_crc32"), "%s: decoded RGB differs from PIL's", name);
        if (ends_with(name, ".jpg") && crc != (unsigned long)json_num(e, "rgb_crc32")) {
            // say by how much, against PIL's pixels at a stride of 5 (a different libjpeg build?)
            char *ref_path = fixture_path(json_str(e, "jpeg_stride5_png"));
            Image *ref = image_load_or_die(ref_path, IMAGE_ALPHA_DROP);
            int maxd = 0;
            double sumd = 0;
            size_t cnt = 0;
            for (int y = 0; y < ref->height; y++)
                for (int x = 0; x < ref->width; x++)
                    for (int c = 0; c < 3; c++) {
                        int a = im->data[((size_t)(y * 5) * im->width + x * 5) * 3 + c];
                        int b = ref->data[((size_t)y * ref->width + x) * 3 + c];
                        int d = abs(a - b);
                        if (d > maxd) maxd = d;
                        sumd += d;
                        cnt++;
                    }
            printf("      %-24s vs PIL at stride 5: max |diff| %d, mean %.3f levels\n", name, maxd, sumd / cnt);
            image_free(ref);
            free(ref_path);
        }
        if (cJSON_GetObjectItemCaseSensitive(e, "white_crc32")) {
            Image *w = image_load(path, IMAGE_ALPHA_WHITE, err, sizeof(err));
            EXPECTF(w, "%s", err);
            if (w) {
                EXPECTF(crc32_bytes(w->data, n) == (unsigned long)json_num(e, "white_crc32"),
                        "%s: composite on white differs from transformers' convert_to_rgb", name);
                image_free(w);
            }
        }
        image_free(im);
        free(path);
    }
}

TEST(image_16bit_and_gray_alpha_png) {
    cJSON *m = image_manifest();
    EXPECT(m);
    if (!m) return;
    const cJSON *e;
    int n_cases = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "extra_png")) {
        const char *name = json_str(e, "name");
        char *path = fixture_path(name);
        Image *im = image_load_or_die(path, IMAGE_ALPHA_DROP);
        EXPECT_INT_EQ(im->width, json_num(e, "width"));
        EXPECT_INT_EQ(im->height, json_num(e, "height"));
        const cJSON *rgb = cJSON_GetObjectItemCaseSensitive(e, "rgb");
        EXPECT_INT_EQ(cJSON_GetArraySize(rgb), im->width * im->height * 3);
        int i = 0, bad = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, rgb) {
            if (i < im->width * im->height * 3 && im->data[i] != (int)v->valuedouble) bad++;
            i++;
        }
        EXPECTF(!bad, "%s (PIL mode %s): %d of %d values differ from PIL's convert(\"RGB\")", name, json_str(e, "mode"), bad, i);
        image_free(im);
        free(path);
        n_cases++;
    }
    EXPECT(n_cases >= 5);
}

// JPEG layouts the shared images lack (gray, CMYK, progressive 4:2:0, 4:2:2, restart markers; odd
// sizes), made by PIL: our RGB must be PIL's convert("RGB") byte for byte. No alpha in a JPEG, so
// IMAGE_ALPHA_WHITE changes nothing.
TEST(image_jpeg_variants_match_pil) {
    cJSON *m = image_manifest();
    EXPECT(m);
    if (!m) return;
    const cJSON *e;
    int n_cases = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "extra_jpeg")) {
        const char *name = json_str(e, "name");
        char *path = fixture_path(name);
        char err[512];
        for (int a = 0; a < 2; a++) {
            Image *im = image_load(path, a ? IMAGE_ALPHA_WHITE : IMAGE_ALPHA_DROP, err, sizeof(err));
            EXPECTF(im, "%s", err);
            if (!im) continue;
            EXPECT_INT_EQ(im->width, json_num(e, "width"));
            EXPECT_INT_EQ(im->height, json_num(e, "height"));
            EXPECTF(crc32_bytes(im->data, (size_t)im->width * im->height * 3) == (unsigned long)json_num(e, "rgb_crc32"),
                    "%s (PIL mode %s): decoded RGB differs from PIL's convert(\"RGB\")", name, json_str(e, "mode"));
            image_free(im);
        }
        free(path);
        n_cases++;
    }
    EXPECT(n_cases >= 5);
}

static void expect_load_error(const char *path, const char *must_contain) {
    char err[512] = "";
    Image *im = image_load(path, IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECTF(!im, "%s: decoded although it should fail", path);
    image_free(im);
    EXPECTF(strstr(err, path), "error does not name the file: '%s'", err);
    EXPECTF(strstr(err, must_contain), "error '%s' lacks '%s'", err, must_contain);
}

TEST(image_truncated_jpeg_is_an_error) {
    char *path = shared_image_path("truncated.jpg");
    expect_load_error(path, "truncated JPEG");
    free(path);
}

// A JPEG cut inside its scan data: stb_image alone returns a partly grey image, PIL says "image file
// is truncated"; we must refuse it. The same file with junk after EOI must still decode.
TEST(image_jpeg_cut_mid_scan_and_trailing_bytes) {
    char *src = shared_image_path("rocket.jpg");
    size_t len;
    char *bytes = read_file(src, &len);
    char err[512];
    Image *full = image_decode((uint8_t *)bytes, len, "rocket.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECT(full);
    for (int pct = 30; pct <= 99; pct += 23) {
        size_t cut = len * pct / 100;
        Image *im = image_decode((uint8_t *)bytes, cut, "cut.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
        EXPECTF(!im, "rocket.jpg cut at %d%% decoded", pct);
        image_free(im);
        EXPECTF(strstr(err, "cut.jpg") && strstr(err, "truncated"), "message: %s", err);
    }
    char *longer = xmalloc(len + 100);
    memcpy(longer, bytes, len);
    memset(longer + len, 0x5a, 100);
    Image *im = image_decode((uint8_t *)longer, len + 100, "trailing.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECTF(im, "trailing bytes after EOI rejected: %s", err);
    if (im && full) EXPECT(!memcmp(im->data, full->data, (size_t)im->width * im->height * 3));
    image_free(im);
    image_free(full);
    free(longer);
    free(bytes);
    free(src);
}

// Offset of the first SOFn marker's segment (just after FF Cn) in a JPEG, or 0.
static size_t jpeg_find_sof(const uint8_t *p, size_t n) {
    size_t i = 2;
    while (i + 4 <= n && p[i] == 0xFF) {
        uint8_t m = p[i + 1];
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return i + 2;
        i += 2 + (((size_t)p[i + 2] << 8) | p[i + 3]);
    }
    return 0;
}

// An 8x8 JPEG with 2 components, written by libjpeg into *out (malloc'd).
static void jpeg_two_components(unsigned char **out, unsigned long *out_len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, out, out_len);
    c.image_width = c.image_height = 8;
    c.input_components = 2;
    c.in_color_space = JCS_UNKNOWN;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t line[16];
    for (int i = 0; i < 16; i++) line[i] = (uint8_t)(i * 16);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = line;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
}

// Errors libjpeg itself raises come back as messages naming the file (no exit, no leak); corrupt
// entropy-coded data is decoded anyway, as PIL does (libjpeg only warns).
TEST(image_corrupt_jpeg_errors_and_warnings) {
    char err[512];
    // an SOI and an EOI with nothing between: complete, but no image
    const uint8_t empty[] = {0xFF, 0xD8, 0xFF, 0xD9};
    Image *im = image_decode(empty, sizeof(empty), "noimage.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECT(!im);
    EXPECTF(strstr(err, "noimage.jpg") && strstr(err, "libjpeg") && strstr(err, "no image"), "message: %s", err);
    image_free(im);
    char *src = shared_image_path("rocket.jpg");
    size_t len;
    uint8_t *bytes = (uint8_t *)read_file(src, &len);
    size_t sof = jpeg_find_sof(bytes, len);
    EXPECT(sof > 0);
    uint8_t *bad = xmalloc(len);
    if (sof) {
        // 12-bit samples (PIL: "cannot handle 12-bit layers"; this libjpeg build decodes 8 bits only)
        memcpy(bad, bytes, len);
        bad[sof + 2] = 12;
        im = image_decode(bad, len, "deep.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
        EXPECT(!im);
        EXPECTF(strstr(err, "deep.jpg") && strstr(err, "cannot decode JPEG image"), "message: %s", err);
        image_free(im);
        // a frame header whose component count disagrees with its length
        memcpy(bad, bytes, len);
        bad[sof + 7] = 2;
        im = image_decode(bad, len, "bogus.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
        EXPECT(!im);
        EXPECTF(strstr(err, "bogus.jpg") && strstr(err, "cannot decode JPEG image: libjpeg"), "message: %s", err);
        image_free(im);
    }
    // a valid JPEG with two components (libjpeg writes any count as JCS_UNKNOWN): PIL refuses it
    // ("cannot handle 2-layer images"), so do we
    unsigned char *two = NULL;
    unsigned long two_len = 0;
    jpeg_two_components(&two, &two_len);
    im = image_decode(two, two_len, "two.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECT(!im);
    EXPECTF(strstr(err, "two.jpg") && strstr(err, "2 color components"), "message: %s", err);
    image_free(im);
    free(two);
    // flip bits in the middle of the scan data, never making or breaking a marker: decodes
    memcpy(bad, bytes, len);
    int flipped = 0;
    for (size_t i = len / 2; i < len - 2 && flipped < 20; i += 97)
        if (bad[i - 1] != 0xFF && bad[i] != 0xFF && (bad[i] ^ 0x5A) != 0xFF) { bad[i] ^= 0x5A; flipped++; }
    im = image_decode(bad, len, "flipped.jpg", IMAGE_ALPHA_DROP, err, sizeof(err));
    EXPECTF(im, "corrupt scan data refused: %s", err);
    if (im) EXPECT(im->width == 640 && im->height == 427);
    image_free(im);
    free(bad);
    free(bytes);
    free(src);
}

TEST(image_bad_files_are_errors) {
    const char *dir = test_tmpdir();
    char *txt = path_join(dir, "notes.png");
    const char *text = "this is not an image\n";
    write_file_atomic(txt, text, strlen(text));
    expect_load_error(txt, "not a recognized image");
    char *empty = path_join(dir, "empty.jpg");
    write_file_atomic(empty, "", 0);
    expect_load_error(empty, "empty");
    char *missing = path_join(dir, "no_such_file.png");
    expect_load_error(missing, "No such file");
    expect_load_error(dir, "cannot read");  // a directory
    // a PNG cut in half: stb reports the failure, we name the format
    char *src = shared_image_path("coffee.png");
    size_t len;
    char *bytes = read_file(src, &len);
    char *half = path_join(dir, "half.png");
    write_file_atomic(half, bytes, len / 2);
    expect_load_error(half, "cannot decode PNG image");
    char *webp = path_join(dir, "x.webp");
    write_file_atomic(webp, "RIFF\x10\0\0\0WEBPVP8 ", 16);
    expect_load_error(webp, "WebP");
    free(txt); free(empty); free(missing); free(src); free(bytes); free(half); free(webp);
}

TEST(image_expand_to_square_offsets) {
    static const uint8_t fill[3] = {122, 116, 104}, red[3] = {255, 0, 0};
    Image *wide = image_new_filled(5, 2, red);
    Image *sq = image_expand_to_square(wide, fill);
    EXPECT_INT_EQ(sq->width, 5);
    EXPECT_INT_EQ(sq->height, 5);
    // (5 - 2) // 2 = 1: rows 1 and 2 hold the image, rows 0, 3, 4 the fill
    for (int y = 0; y < 5; y++) {
        const uint8_t *want = (y == 1 || y == 2) ? red : fill;
        for (int x = 0; x < 5; x++) EXPECT(!memcmp(sq->data + (y * 5 + x) * 3, want, 3));
    }
    Image *tall = image_new_filled(2, 5, red);
    Image *sq2 = image_expand_to_square(tall, fill);
    for (int x = 0; x < 5; x++) EXPECT(!memcmp(sq2->data + (2 * 5 + x) * 3, (x == 1 || x == 2) ? red : fill, 3));
    image_free(wide); image_free(sq); image_free(tall); image_free(sq2);
}
