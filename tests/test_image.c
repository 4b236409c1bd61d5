// Image decoding against PIL's convert("RGB"), and clear errors for bad files.
#include <stdlib.h>
#include <string.h>

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
        if (!ends_with(name, ".jpg")) {
            // PNG: exact, byte for byte (palette expansion, gray replication, alpha dropped)
            EXPECTF(crc == (unsigned long)json_num(e, "rgb_crc32"), "%s: decoded RGB differs from PIL's", name);
        } else {
            // JPEG: stb_image vs libjpeg-turbo; compare with PIL's pixels at a stride of 5
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
            printf("      %-24s stb vs PIL (libjpeg-turbo): max |diff| %d, mean %.3f levels%s\n", name, maxd,
                   sumd / cnt, crc == (unsigned long)json_num(e, "rgb_crc32") ? " (identical)" : "");
            // decoders differ in IDCT rounding and chroma upsampling: a few levels, rarely more at edges
            EXPECTF(maxd <= 8 && sumd / cnt < 0.25, "%s: JPEG decode too far from PIL: max %d mean %.3f", name, maxd, sumd / cnt);
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
