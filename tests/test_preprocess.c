// The CLIP / LLaVA / SigLIP preprocessing pipelines against transformers' CLIPImageProcessor and
// SiglipImageProcessor (PIL backend), and the `vlm preprocess` command.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/npy.h"
#include "../data/preprocess.h"
#include "../util/common.h"
#include "image_fixtures.h"
#include "test.h"

// For every shared image, sizes 336 and 32, with and without pad-to-square:
//  - the uint8 image after pad/resize/crop and the final float32 values are compared by CRC with
//    transformers' (bit-exact expected for PNG sources);
//  - the max abs error after normalization is measured against the stored references (full
//    float32 at 32; at 336 the uint8 geometry, in full for JPEGs and at stride 3 for PNGs, turned
//    into the reference values by the same normalization, which the 32-pixel cases check bitwise).
// Every source must match bit for bit: PNGs and JPEGs alike (JPEGs are decoded by libjpeg-turbo with
// PIL's settings, see image_decode_matches_pil).
TEST(preprocess_matches_clip_processor) {
    cJSON *m = image_manifest();
    EXPECTF(m, "missing %s/manifest.json: run tests/ref/make_image_fixtures.py", IMAGE_FIXTURES);
    if (!m) return;
    const cJSON *e;
    int n_cases = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "images")) {
        const char *name = json_str(e, "name");
        char *path = shared_image_path(name);
        Image *im = image_load_or_die(path, IMAGE_ALPHA_DROP);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "cases")) {
            int size = (int)json_num(c, "size");
            int pad = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "pad"));
            PreprocessConfig cfg = preprocess_config_clip(size);
            cfg.do_pad = pad;
            Image *g = preprocess_geometry(&cfg, im);
            EXPECT_INT_EQ(g->width, size);
            EXPECT_INT_EQ(g->height, size);
            size_t hw = (size_t)size * size;
            // transformers' geometry is CHW; compare CRCs in that layout
            uint8_t *chw = xmalloc(3 * hw);
            for (size_t i = 0; i < hw; i++)
                for (int ch = 0; ch < 3; ch++) chw[ch * hw + i] = g->data[3 * i + ch];
            int geo_exact = crc32_bytes(chw, 3 * hw) == (unsigned long)json_num(c, "geometry_crc32");
            float *px = xmalloc(sizeof(float) * 3 * hw);
            preprocess_normalize(&cfg, g, px);
            int px_exact = crc32_bytes(px, sizeof(float) * 3 * hw) == (unsigned long)json_num(c, "pixel_values_crc32");
            double max_err = 0, sum_err = 0;
            int max_u8 = -1;  // measured where a uint8 reference exists (336)
            size_t n_cmp = 0, n_diff = 0;
            const char *npy = json_str(c, "pixel_values_npy");
            if (npy) {
                char *p = fixture_path(npy), err[512];
                NpyArray ref;
                EXPECTF(!npy_load(p, &ref, err, sizeof(err)), "%s", err);
                if (ref.data) {
                    EXPECT_INT_EQ(ref.count, 3 * hw);
                    for (size_t i = 0; i < 3 * hw && i < ref.count; i++) {
                        double d = fabs(px[i] - ((float *)ref.data)[i]);
                        max_err = fmax(max_err, d);
                        sum_err += d;
                        n_diff += d != 0;
                        n_cmp++;
                    }
                    npy_free(&ref);
                }
                free(p);
            }
            const char *png = json_str(c, "geometry_png");
            if (png) {
                char *p = fixture_path(png);
                Image *ref = image_load_or_die(p, IMAGE_ALPHA_DROP);
                int stride = (int)json_num(c, "geometry_stride");
                Image *refimg = image_new(1, 1);  // one pixel, to normalize a reference value
                max_u8 = 0;
                for (int y = 0; y < ref->height; y++)
                    for (int x = 0; x < ref->width; x++)
                        for (int ch = 0; ch < 3; ch++) {
                            size_t i = (size_t)(y * stride) * size + x * stride;
                            int ours = g->data[3 * i + ch], theirs = ref->data[((size_t)y * ref->width + x) * 3 + ch];
                            if (abs(ours - theirs) > max_u8) max_u8 = abs(ours - theirs);
                            float v[3];
                            memset(refimg->data, 0, 3);
                            refimg->data[ch] = (uint8_t)theirs;
                            preprocess_normalize(&cfg, refimg, v);
                            double d = fabs(px[ch * hw + i] - v[ch]);
                            max_err = fmax(max_err, d);
                            sum_err += d;
                            n_diff += d != 0;
                            n_cmp++;
                        }
                image_free(refimg);
                image_free(ref);
                free(p);
            }
            double mean_err = n_cmp ? sum_err / n_cmp : 0;
            char u8[16] = "-";
            if (max_u8 >= 0) snprintf(u8, sizeof(u8), "%d", max_u8);
            printf("      %-22s %3d %-3s %s  max|uint8 diff| %s  max abs err %.4f  mean %.2e  values differing %.3f%%\n",
                   name, size, pad ? "pad" : "", geo_exact && px_exact ? "bit-exact" : "differs  ", u8, max_err, mean_err,
                   n_cmp ? 100.0 * n_diff / n_cmp : 0.0);
            EXPECTF(geo_exact && px_exact, "%s size %d pad %d: not bit-exact with transformers", name, size, pad);
            EXPECTF(max_err == 0 && max_u8 <= 0, "%s size %d pad %d: max abs error %g, max uint8 diff %d", name, size, pad,
                    max_err, max_u8);
            free(px);
            free(chw);
            image_free(g);
            n_cases++;
        }
        image_free(im);
        free(path);
    }
    EXPECT(n_cases >= 38);
}

// SiglipImageProcessor (PIL backend) for every shared image: the square resize without a crop, with its filter,
// rescale and the 0.5 mean/std, bit for bit (CRC of the float32 values) at 384 and 32 (bicubic) and 45 (bilinear).
TEST(preprocess_matches_siglip_processor) {
    cJSON *m = image_manifest();
    EXPECTF(m, "missing %s/manifest.json: run tests/ref/make_image_fixtures.py", IMAGE_FIXTURES);
    if (!m) return;
    const cJSON *e;
    int n_cases = 0, n_exact = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "images")) {
        const char *name = json_str(e, "name");
        char *path = shared_image_path(name);
        Image *im = image_load_or_die(path, IMAGE_ALPHA_DROP);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "siglip")) {
            const int size = (int)json_num(c, "size");
            PreprocessConfig cfg = preprocess_config_siglip(size);
            cfg.resample = (Resample)(int)json_num(c, "resample");
            int h, w;
            float *px = preprocess_image(&cfg, im, &h, &w);
            EXPECTF(h == size && w == size, "%s: %dx%d, expected %dx%d", name, w, h, size, size);
            const int exact = crc32_bytes(px, sizeof(float) * 3 * (size_t)size * size) == (unsigned long)json_num(c, "pixel_values_crc32");
            EXPECTF(exact, "%s size %d resample %d: not bit-exact with SiglipImageProcessor", name, size, cfg.resample);
            n_exact += exact;
            n_cases++;
            free(px);
        }
        image_free(im);
        free(path);
    }
    printf("      %d of %d SigLIP cases bit-exact\n", n_exact, n_cases);
    EXPECT(n_cases >= 36);
}

TEST(preprocess_resize_output_size) {
    PreprocessConfig cfg = preprocess_config_clip(336);
    cfg.do_center_crop = 0;
    int h, w;
    preprocess_output_size(&cfg, 451, 300, &h, &w);  // int(336 * 451 / 300) = int(505.12)
    EXPECT_INT_EQ(h, 336);
    EXPECT_INT_EQ(w, 505);
    preprocess_output_size(&cfg, 427, 640, &h, &w);  // int(336 * 640 / 427) = int(503.6): truncated
    EXPECT_INT_EQ(w, 336);
    EXPECT_INT_EQ(h, 503);
    cfg.do_pad = 1;
    preprocess_output_size(&cfg, 427, 640, &h, &w);
    EXPECT_INT_EQ(h, 336);
    EXPECT_INT_EQ(w, 336);
    cfg = preprocess_config_clip(336);
    preprocess_output_size(&cfg, 3, 5, &h, &w);
    EXPECT_INT_EQ(h, 336);
    EXPECT_INT_EQ(w, 336);
}

TEST(preprocess_pad_color_is_llava_mean) {
    PreprocessConfig cfg = preprocess_config_clip(336);
    unsigned char rgb[3];
    preprocess_pad_color(cfg.image_mean, rgb);
    EXPECT_INT_EQ(rgb[0], 122);
    EXPECT_INT_EQ(rgb[1], 116);
    EXPECT_INT_EQ(rgb[2], 104);
}

// Resizing a constant image gives the same constant (weights sum to one; fixed-point rounding must
// not drift), for every filter, up and down.
TEST(preprocess_resize_constant_and_identity) {
    static const uint8_t col[3] = {7, 128, 250};
    Image *im = image_new_filled(37, 23, col);
    Resample filters[] = {RESAMPLE_NEAREST, RESAMPLE_LANCZOS, RESAMPLE_BILINEAR, RESAMPLE_BICUBIC, RESAMPLE_BOX, RESAMPLE_HAMMING};
    int sizes[][2] = {{5, 3}, {80, 61}, {37, 9}, {11, 23}};
    for (int f = 0; f < 6; f++)
        for (int s = 0; s < 4; s++) {
            Image *r = image_resize(im, sizes[s][0], sizes[s][1], filters[f]);
            int bad = 0;
            for (int i = 0; i < r->width * r->height; i++) bad += memcmp(r->data + 3 * i, col, 3) != 0;
            EXPECTF(!bad, "filter %d to %dx%d: %d pixels changed", (int)filters[f], sizes[s][0], sizes[s][1], bad);
            image_free(r);
        }
    image_free(im);
}

TEST(preprocess_center_crop_larger_than_image_pads_with_zero) {
    // shortest edge 4 then a 6x6 crop: transformers zero-pads, the image placed at ceil(excess/2)
    PreprocessConfig cfg = preprocess_config_clip(4);
    cfg.crop_height = cfg.crop_width = 6;
    cfg.do_normalize = 0;
    cfg.do_rescale = 0;
    static const uint8_t white[3] = {255, 255, 255};
    Image *im = image_new_filled(4, 4, white);
    int h, w;
    float *px = preprocess_image(&cfg, im, &h, &w);
    EXPECT_INT_EQ(h, 6);
    EXPECT_INT_EQ(w, 6);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++) {
            float want = (y >= 1 && y < 5 && x >= 1 && x < 5) ? 255.0f : 0.0f;
            EXPECTF(px[y * 6 + x] == want, "(%d,%d) = %g, expected %g", y, x, px[y * 6 + x], want);
        }
    free(px);
    image_free(im);
}

TEST(preprocess_config_json) {
    PreprocessConfig c;
    char err[512];
    // llava-1.5's vision tower (openai/clip-vit-large-patch14-336): integer size and crop_size
    const char *clip336 = "{\"crop_size\": 336, \"do_center_crop\": true, \"do_normalize\": true, \"do_resize\": true,"
                          " \"feature_extractor_type\": \"CLIPFeatureExtractor\", \"image_mean\": [0.48145466, 0.4578275, 0.40821073],"
                          " \"image_std\": [0.26862954, 0.26130258, 0.27577711], \"resample\": 3, \"size\": 336}";
    EXPECT(!preprocess_config_parse(&c, clip336, "clip.json", err, sizeof(err)));
    EXPECT_INT_EQ(c.shortest_edge, 336);
    EXPECT_INT_EQ(c.crop_height, 336);
    EXPECT_INT_EQ(c.crop_width, 336);
    EXPECT_INT_EQ(c.resample, RESAMPLE_BICUBIC);
    EXPECT_INT_EQ(c.do_pad, 0);
    EXPECT_NEAR(c.rescale_factor, 1.0 / 255, 1e-12);
    // llava-hf style: dict sizes, LlavaImageProcessor with do_pad
    const char *llava = "{\"image_processor_type\": \"LlavaImageProcessor\", \"size\": {\"shortest_edge\": 224},"
                        " \"crop_size\": {\"height\": 224, \"width\": 200}, \"do_pad\": true, \"resample\": 2}";
    EXPECT(!preprocess_config_parse(&c, llava, "llava.json", err, sizeof(err)));
    EXPECT_INT_EQ(c.shortest_edge, 224);
    EXPECT_INT_EQ(c.crop_width, 200);
    EXPECT_INT_EQ(c.do_pad, 1);
    EXPECT_INT_EQ(c.resample, RESAMPLE_BILINEAR);
    EXPECT_NEAR(c.image_mean[0], 0.48145466, 1e-9);  // absent: CLIP defaults
    // do_pad of a plain CLIP processor is batch padding, not pad-to-square
    EXPECT(!preprocess_config_parse(&c, "{\"image_processor_type\": \"CLIPImageProcessor\", \"do_pad\": true}", "c.json", err, sizeof(err)));
    EXPECT_INT_EQ(c.do_pad, 0);
    EXPECT(!preprocess_config_parse(&c, "{\"image_aspect_ratio\": \"pad\"}", "c.json", err, sizeof(err)));
    EXPECT_INT_EQ(c.do_pad, 1);
    // SigLIP-like: exact resize, no crop, scalar mean/std
    const char *siglip = "{\"image_processor_type\": \"SiglipImageProcessor\", \"size\": {\"height\": 384, \"width\": 384},"
                         " \"do_center_crop\": false, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": 0.5, \"resample\": 2,"
                         " \"rescale_factor\": 0.00392156862745098}";
    EXPECT(!preprocess_config_parse(&c, siglip, "siglip.json", err, sizeof(err)));
    EXPECT_INT_EQ(c.shortest_edge, 0);
    EXPECT_INT_EQ(c.resize_height, 384);
    EXPECT_INT_EQ(c.do_center_crop, 0);
    EXPECT_NEAR(c.image_std[2], 0.5, 1e-12);
    int h, w;
    preprocess_output_size(&c, 640, 427, &h, &w);
    EXPECT(h == 384 && w == 384);
    // LLaVA-Interleave's file (llava-hf/llava-interleave-qwen-7b-hf): no crop or pad fields, so SiglipImageProcessor's
    // class defaults hold (no center crop), not CLIP's (a 224 crop)
    const char *interleave = "{\"do_convert_rgb\": null, \"do_normalize\": true, \"do_rescale\": true, \"do_resize\": true,"
                             " \"image_mean\": [0.5, 0.5, 0.5], \"image_processor_type\": \"SiglipImageProcessor\","
                             " \"image_std\": [0.5, 0.5, 0.5], \"processor_class\": \"LlavaProcessor\", \"resample\": 3,"
                             " \"rescale_factor\": 0.00392156862745098, \"size\": {\"height\": 384, \"width\": 384}}";
    EXPECT(!preprocess_config_parse(&c, interleave, "interleave.json", err, sizeof(err)));
    EXPECT(c.do_center_crop == 0 && c.shortest_edge == 0 && c.resize_width == 384 && c.resample == RESAMPLE_BICUBIC);
    preprocess_output_size(&c, 640, 427, &h, &w);
    EXPECT(h == 384 && w == 384);
    // a bare SiglipImageProcessor type: every field the class default (224 square, 0.5 mean and std)
    EXPECT(!preprocess_config_parse(&c, "{\"image_processor_type\": \"SiglipImageProcessor\"}", "s.json", err, sizeof(err)));
    PreprocessConfig d = preprocess_config_siglip(224);
    EXPECT(c.resize_height == 224 && c.resize_width == 224 && !c.do_center_crop && c.image_mean[1] == 0.5 && c.image_std[0] == 0.5);
    EXPECT(c.resample == d.resample && c.rescale_factor == d.rescale_factor && c.do_normalize && c.do_rescale);
    // errors name the file and the field
    const char *bad[][2] = {{"{\"size\": -3}", "\"size\""}, {"{\"crop_size\": \"big\"}", "crop_size"},
                            {"{\"image_mean\": [1, 2]}", "image_mean"}, {"{\"do_resize\": 1}", "do_resize"},
                            {"[1, 2]", "not a JSON object"}, {"{\"size\": ", "parse error"},
                            {"{\"resample\": 9}", "resample"}, {"{\"image_std\": [1, 0, 1]}", "zero"},
                            {"{\"do_convert_rgb\": false}", "do_convert_rgb"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        EXPECTF(preprocess_config_parse(&c, bad[i][0], "bad.json", err, sizeof(err)) == -1, "accepted %s", bad[i][0]);
        EXPECTF(strstr(err, "bad.json") && strstr(err, bad[i][1]), "for %s: message '%s'", bad[i][0], err);
    }
}

static NpyArray load_npy_or_fail(const char *path) {
    NpyArray a;
    char err[512];
    if (npy_load(path, &a, err, sizeof(err))) test_fail(__FILE__, __LINE__, "%s", err);
    return a;
}

TEST(preprocess_cli_writes_npy) {
    const char *dir = test_tmpdir();
    char *out = path_join(dir, "chelsea.npy");
    char *img = shared_image_path("chelsea.png");
    const char *variants[][2] = {{"", "p32_chelsea.npy"}, {"--pad", "p32pad_chelsea.npy"}};
    for (int v = 0; v < 2; v++) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "preprocess --image %s --size 32 %s --out %s", img, variants[v][0], out);
        char *so, *se;
        int rc = test_run_vlm(cmd, &so, &se);
        EXPECTF(rc == 0, "vlm %s: exit %d: %s", cmd, rc, se);
        NpyArray a = load_npy_or_fail(out);
        char *refp = fixture_path(variants[v][1]);
        NpyArray b = load_npy_or_fail(refp);
        if (a.data && b.data) {
            EXPECT_INT_EQ(a.dtype, NPY_F32);
            EXPECT_INT_EQ(a.ndim, 3);
            EXPECT(a.shape[0] == 3 && a.shape[1] == 32 && a.shape[2] == 32);
            EXPECT(a.count == b.count && !memcmp(a.data, b.data, a.count * 4));  // bit-exact with transformers
        }
        npy_free(&a);
        npy_free(&b);
        free(refp);
        free(so);
        free(se);
    }
    // the header is what numpy writes: v1.0, '<f4', 64-byte aligned data
    size_t len;
    char *bytes = read_file(out, &len);
    EXPECT(len == 128 + 3 * 32 * 32 * 4);
    EXPECT(!memcmp(bytes, "\x93NUMPY\x01\x00", 8));
    EXPECT(strstr(bytes + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 32, 32), }") == bytes + 10);
    EXPECT(bytes[127] == '\n');
    free(bytes);
    // --config: a preprocessor_config.json with 24-pixel crops
    char *cfgp = path_join(dir, "preprocessor_config.json");
    const char *cfg = "{\"size\": {\"shortest_edge\": 24}, \"crop_size\": 24, \"image_processor_type\": \"CLIPImageProcessor\"}";
    write_file_atomic(cfgp, cfg, strlen(cfg));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "preprocess --image %s --config %s --out %s", img, cfgp, out);
    EXPECT_INT_EQ(test_run_vlm(cmd, NULL, NULL), 0);
    NpyArray a = load_npy_or_fail(out);
    EXPECT(a.ndim == 3 && a.shape[1] == 24 && a.shape[2] == 24);
    npy_free(&a);
    // a SigLIP config with --size: the square resize at that size (no crop), equal to the library call
    const char *sg = "{\"image_processor_type\": \"SiglipImageProcessor\", \"size\": {\"height\": 384, \"width\": 384}}";
    write_file_atomic(cfgp, sg, strlen(sg));
    snprintf(cmd, sizeof(cmd), "preprocess --image %s --config %s --size 30 --out %s", img, cfgp, out);
    EXPECT_INT_EQ(test_run_vlm(cmd, NULL, NULL), 0);
    a = load_npy_or_fail(out);
    PreprocessConfig sc = preprocess_config_siglip(30);
    Image *im = image_load_or_die(img, IMAGE_ALPHA_DROP);
    float *want = preprocess_image(&sc, im, NULL, NULL);
    EXPECT(a.ndim == 3 && a.shape[1] == 30 && a.shape[2] == 30 && a.count == 3 * 30 * 30 && !memcmp(a.data, want, a.count * 4));
    free(want);
    image_free(im);
    npy_free(&a);
    free(cfgp);
    free(out);
    free(img);
}

TEST(preprocess_cli_errors) {
    const char *dir = test_tmpdir();
    char *out = path_join(dir, "bad.npy");
    char *trunc = shared_image_path("truncated.jpg");
    char *txt = path_join(dir, "readme.txt");
    write_file_atomic(txt, "hello\n", 6);
    struct { const char *args; const char *expect; } cases[4];
    char a0[1024], a1[1024], a2[1024], a3[1024];
    snprintf(a0, sizeof(a0), "preprocess --image %s --size 32 --out %s", trunc, out);
    snprintf(a1, sizeof(a1), "preprocess --image %s --size 32 --out %s", txt, out);
    snprintf(a2, sizeof(a2), "preprocess --image %s/missing.png --out %s", dir, out);
    snprintf(a3, sizeof(a3), "preprocess --image %s --size 32 --out %s --config %s/nope.json", txt, out, dir);
    cases[0].args = a0; cases[0].expect = "truncated.jpg";
    cases[1].args = a1; cases[1].expect = "readme.txt";
    cases[2].args = a2; cases[2].expect = "missing.png";
    cases[3].args = a3; cases[3].expect = "nope.json";
    for (int i = 0; i < 4; i++) {
        char *se;
        int rc = test_run_vlm(cases[i].args, NULL, &se);
        EXPECTF(rc == 1, "vlm %s: exit %d, expected 1", cases[i].args, rc);
        EXPECTF(strstr(se, cases[i].expect), "vlm %s: stderr does not name %s: %s", cases[i].args, cases[i].expect, se);
        free(se);
    }
    EXPECTF(!file_exists(out), "an output was written for bad input");
    const char *usage[] = {"preprocess --size 32 --out x.npy", "preprocess --image a.png", "preprocess --image a.png --out x.npy --size -4",
                           "preprocess --image a.png --out x.npy --size abc", "preprocess --image a.png --out x.npy --size 0", "preprocess --image a.png --out x.npy --bogus",
                           "preprocess --image a.png --out x.npy --alpha pink"};
    for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
        char *se;
        int rc = test_run_vlm(usage[i], NULL, &se);
        EXPECTF(rc != 0 && rc < 128 && strstr(se, "preprocess"), "vlm %s: exit %d: %s", usage[i], rc, se);
        free(se);
    }
    char *so;
    EXPECT_INT_EQ(test_run_vlm("preprocess --help", &so, NULL), 0);
    EXPECT(strstr(so, "--image") && strstr(so, "--pad") && strstr(so, "--config"));
    free(so);
    free(out); free(trunc); free(txt);
}

// image_resize against PIL's Image.resize for every filter, shrinking and enlarging (bit-exact).
TEST(preprocess_resize_every_filter_matches_pil) {
    cJSON *m = image_manifest();
    EXPECT(m);
    if (!m) return;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(m, "resize");
    char *path = shared_image_path(json_str(rs, "image"));
    Image *im = image_load_or_die(path, IMAGE_ALPHA_DROP);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(rs, "cases")) {
        int f = (int)json_num(c, "filter"), w = (int)json_num(c, "width"), h = (int)json_num(c, "height");
        Image *r = image_resize(im, w, h, (Resample)f);
        EXPECTF(crc32_bytes(r->data, (size_t)w * h * 3) == (unsigned long)json_num(c, "crc32"),
                "filter %d, %dx%d -> %dx%d differs from PIL", f, im->width, im->height, w, h);
        image_free(r);
        n++;
    }
    EXPECT(n >= 40);
    // the pass order rule of Pillow 13, and the older horizontal-first order still at hand
    EXPECT(resize_vertical_first(600, 400, 590, 150));
    EXPECT(!resize_vertical_first(600, 400, 300, 390));
    EXPECT(!resize_vertical_first(600, 400, 580, 360));  // 40 == 2 * 20: not strictly more
    EXPECT(resize_vertical_first(600, 400, 579, 357));
    EXPECT(resize_vertical_first(100, 100, 200, 50));    // widening while shrinking the height
    EXPECT(!resize_vertical_first(100, 100, 50, 200));
    Image *a = image_resize(im, 590, 150, RESAMPLE_BICUBIC), *b = image_resize_ordered(im, 590, 150, RESAMPLE_BICUBIC, 0);
    EXPECT(memcmp(a->data, b->data, (size_t)590 * 150 * 3) != 0);
    image_free(a);
    image_free(b);
    image_free(im);
    free(path);
}
