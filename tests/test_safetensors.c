// safetensors reader/writer: round trips, conversions, sharding, interop fixtures and one test per way a
// file can be broken (each must give NULL and a message naming the file and the problem).
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../model/safetensors.h"
#include "../util/common.h"
#include "test.h"

// ---------------------------------------------------------------------------------------------------
// helpers

static char *tmp_path(const char *name) { return path_join(test_tmpdir(), name); }

static float bits_f32(uint32_t x) { float f; memcpy(&f, &x, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t x; memcpy(&x, &f, 4); return x; }

// A file with exactly this header text (no padding) followed by n data bytes.
static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t hl = strlen(header);
    unsigned char *buf = xmalloc(8 + hl + n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    write_file_atomic(path, buf, 8 + hl + n);
    free(buf);
}

// st_open(path) must fail with a message naming the file's base name and containing each `want`.
static void expect_open_fails_at(const char *file, int line, const char *path, const char *want1, const char *want2) {
    char err[1024] = "";
    SafeTensors *st = st_open(path, err, sizeof(err));
    if (st) {
        test_fail(file, line, "st_open(%s) succeeded, expected an error containing '%s'", path, want1);
        st_close(st);
        return;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!strstr(err, base)) test_fail(file, line, "message does not name the file '%s': %s", base, err);
    if (want1 && !strstr(err, want1)) test_fail(file, line, "message lacks '%s': %s", want1, err);
    if (want2 && !strstr(err, want2)) test_fail(file, line, "message lacks '%s': %s", want2, err);
}
#define EXPECT_OPEN_FAILS(path, want1, want2) expect_open_fails_at(__FILE__, __LINE__, path, want1, want2)

// Writes `header` as a one-off file named `name` with `n` zero data bytes and expects st_open to fail.
static void expect_header_fails_at(const char *file, int line, const char *name, const char *header, size_t n,
                                   const char *want1, const char *want2) {
    char *p = tmp_path(name);
    void *zeros = xcalloc(n ? n : 1, 1);
    write_raw(p, header, zeros, n);
    expect_open_fails_at(file, line, p, want1, want2);
    free(zeros);
    free(p);
}
#define EXPECT_HEADER_FAILS(name, header, n, want1, want2) expect_header_fails_at(__FILE__, __LINE__, name, header, n, want1, want2)

static int tensor_in_bounds(const SafeTensors *st, const STTensor *t) {
    const char *lo = st->maps[t->shard], *hi = lo + st->map_sizes[t->shard];
    const char *a = t->data;
    return a >= lo + 8 && a <= hi && t->nbytes <= (size_t)(hi - a);
}

static int shape_is(const STTensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++) if (t->shape[i] != shape[i]) return 0;
    return 1;
}

// ---------------------------------------------------------------------------------------------------
// basics and round trips

TEST(safetensors_dtype_table) {
    const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
    for (int i = 0; i < 10; i++) {
        EXPECT(!strcmp(dtype_name((DType)i), names[i]));
        EXPECT_INT_EQ(dtype_size((DType)i), sizes[i]);
        DType d;
        EXPECT(dtype_from_name(names[i], &d) && d == (DType)i);
    }
    DType d;
    EXPECT(!dtype_from_name("F8_E4M3", &d));
    EXPECT(!dtype_from_name("f32", &d));  // case matters in the format
    EXPECT(!dtype_from_name("", &d));
}

TEST(safetensors_roundtrip_all_dtypes) {
    char *path = tmp_path("roundtrip.safetensors");
    float f32[24];
    for (int i = 0; i < 24; i++) f32[i] = (float)i * 0.37f - 4.0f;
    double f64[3] = {1e-300, -2.5, 1e300};
    int64_t i64[4] = {INT64_MIN, -1, 0, INT64_MAX};
    int32_t i32[3] = {INT32_MIN, 5, INT32_MAX};
    int16_t i16[2] = {-32768, 32767};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[3] = {0, 1, 255}, bools[2] = {1, 0};
    uint16_t f16raw[3] = {0x3c00, 0x0001, 0xfc00}, bf16raw[2] = {0x3f80, 0x7fc0};
    float scalar = 42.5f;
    int64_t s3d[3] = {2, 3, 4}, s1[1] = {3}, s2[1] = {2}, s4[1] = {4}, s0[1] = {0}, s0b[3] = {2, 0, 3};

    STWriter *w = stw_new();
    stw_add(w, "a.f32_3d", DT_F32, 3, s3d, f32);
    stw_add(w, "b.f64", DT_F64, 1, s1, f64);
    stw_add(w, "c.i64", DT_I64, 1, s4, i64);
    stw_add(w, "d.i32", DT_I32, 1, s1, i32);
    stw_add(w, "e.i16", DT_I16, 1, s2, i16);
    stw_add(w, "f.i8", DT_I8, 1, s1, i8);
    stw_add(w, "g.u8", DT_U8, 1, s1, u8);
    stw_add(w, "h.bool", DT_BOOL, 1, s2, bools);
    stw_add(w, "i.f16", DT_F16, 1, s1, f16raw);
    stw_add(w, "j.bf16", DT_BF16, 1, s2, bf16raw);
    stw_add(w, "k.scalar", DT_F32, 0, NULL, &scalar);
    stw_add(w, "l.empty", DT_F32, 1, s0, NULL);
    stw_add(w, "m.empty3d", DT_BF16, 3, s0b, NULL);
    stw_write(w, path, NULL);

    char err[512];
    SafeTensors *st = st_open(path, err, sizeof(err));
    EXPECTF(st, "st_open: %s", err);
    if (!st) { free(path); return; }
    EXPECT_INT_EQ(st->n, 13);
    EXPECT_INT_EQ(st->n_files, 1);
    struct { const char *name; DType dt; int ndim; const int64_t *shape; size_t numel; const void *data; } want[] = {
        {"a.f32_3d", DT_F32, 3, s3d, 24, f32}, {"b.f64", DT_F64, 1, s1, 3, f64},   {"c.i64", DT_I64, 1, s4, 4, i64},
        {"d.i32", DT_I32, 1, s1, 3, i32},      {"e.i16", DT_I16, 1, s2, 2, i16},   {"f.i8", DT_I8, 1, s1, 3, i8},
        {"g.u8", DT_U8, 1, s1, 3, u8},         {"h.bool", DT_BOOL, 1, s2, 2, bools}, {"i.f16", DT_F16, 1, s1, 3, f16raw},
        {"j.bf16", DT_BF16, 1, s2, 2, bf16raw}, {"k.scalar", DT_F32, 0, NULL, 1, &scalar},
        {"l.empty", DT_F32, 1, s0, 0, NULL},   {"m.empty3d", DT_BF16, 3, s0b, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const STTensor *t = st_find(st, want[i].name);
        EXPECTF(t, "tensor %s missing", want[i].name);
        if (!t) continue;
        EXPECTF(t->dtype == want[i].dt, "%s: dtype %s", want[i].name, dtype_name(t->dtype));
        EXPECTF(shape_is(t, want[i].ndim, want[i].shape), "%s: shape", want[i].name);
        EXPECT_INT_EQ(t->numel, want[i].numel);
        EXPECT_INT_EQ(t->nbytes, want[i].numel * dtype_size(want[i].dt));
        EXPECT(tensor_in_bounds(st, t));
        if (t->nbytes) EXPECTF(!memcmp(t->data, want[i].data, t->nbytes), "%s: bytes differ", want[i].name);
        // the writer orders by element size, so with an 8-aligned data start every tensor is aligned
        EXPECTF((uintptr_t)t->data % dtype_size(t->dtype) == 0, "%s: misaligned", want[i].name);
    }
    float buf[24];
    st_to_f32(st_find(st, "a.f32_3d"), buf);
    for (int i = 0; i < 24; i++) EXPECT(buf[i] == f32[i]);
    st_to_f32(st_find(st, "b.f64"), buf);
    EXPECT(buf[0] == (float)1e-300 && buf[1] == -2.5f && isinf(buf[2]) && buf[2] > 0);
    st_to_f32(st_find(st, "i.f16"), buf);
    EXPECT(buf[0] == 1.0f && buf[1] == ldexpf(1.0f, -24) && isinf(buf[2]) && buf[2] < 0);
    st_to_f32(st_find(st, "j.bf16"), buf);
    EXPECT(buf[0] == 1.0f && isnan(buf[1]));
    st_to_f32(st_find(st, "k.scalar"), buf);
    EXPECT(buf[0] == 42.5f);
    st_to_f32(st_find(st, "l.empty"), buf);  // zero elements: must not touch dst
    EXPECT(st_find(st, "nope") == NULL);
    EXPECT(st_find(st, "") == NULL);
    EXPECT(st_find(st, "a.f32_3") == NULL);
    EXPECT(st->metadata_json && !strcmp(st->metadata_json, "{\"format\":\"pt\"}"));
    st_close(st);
    free(path);
}

TEST(safetensors_writer_layout) {
    char *path = tmp_path("layout.safetensors");
    uint8_t b = 7;
    float f = 1.0f;
    double d = 2.0;
    int64_t one[1] = {1};
    STWriter *w = stw_new();
    stw_add(w, "byte", DT_U8, 1, one, &b);        // added first, but written last (smallest element)
    stw_add(w, "float", DT_F32, 1, one, &f);
    stw_add(w, "double", DT_F64, 1, one, &d);
    const char *meta[] = {"format", "np", "note", "quote \" backslash \\ tab \t end", NULL};
    stw_write(w, path, meta);
    char *tmp = tmp_path("layout.safetensors.tmp");
    EXPECT(!file_exists(tmp));  // renamed away
    size_t len;
    char *raw = read_file(path, &len);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)(unsigned char)raw[i] << (8 * i);
    EXPECT_INT_EQ(hl % 8, 0);
    EXPECT_INT_EQ(len, 8 + hl + 8 + 4 + 1);
    EXPECT(raw[8] == '{');
    // JSON the way cJSON (and Python's json) reads it: an object, metadata strings intact
    cJSON *root = cJSON_ParseWithLength(raw + 8, (size_t)hl);
    EXPECT(cJSON_IsObject(root));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    EXPECT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "format")) &&
           !strcmp(cJSON_GetObjectItemCaseSensitive(m, "format")->valuestring, "np"));
    EXPECT(cJSON_GetArraySize(m) == 2);  // a user "format" replaces the default, no duplicate key
    EXPECT(!strcmp(cJSON_GetObjectItemCaseSensitive(m, "note")->valuestring, meta[3]));
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "double"), "data_offsets");
    EXPECT(cJSON_GetArrayItem(off, 0)->valueint == 0 && cJSON_GetArrayItem(off, 1)->valueint == 8);
    off = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "byte"), "data_offsets");
    EXPECT(cJSON_GetArrayItem(off, 0)->valueint == 12 && cJSON_GetArrayItem(off, 1)->valueint == 13);
    cJSON_Delete(root);
    free(raw);

    SafeTensors *st = st_open_or_die(path);
    // file order: shard, then offset
    EXPECT(!strcmp(st->tensors[0].name, "double") && !strcmp(st->tensors[1].name, "float") && !strcmp(st->tensors[2].name, "byte"));
    cJSON *mj = cJSON_Parse(st->metadata_json);
    EXPECT(mj && !strcmp(cJSON_GetObjectItemCaseSensitive(mj, "note")->valuestring, meta[3]));
    cJSON_Delete(mj);
    st_close(st);

    // an empty writer is a valid file too
    stw_write(stw_new(), path, NULL);
    st = st_open_or_die(path);
    EXPECT_INT_EQ(st->n, 0);
    EXPECT(st_find(st, "x") == NULL);
    st_close(st);
    free(tmp);
    free(path);
}

TEST(safetensors_nocopy_and_overwrite) {
    char *path = tmp_path("nocopy.safetensors");
    float big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (float)i;
    int64_t shape[2] = {10, 100};
    STWriter *w = stw_new();
    stw_add_nocopy(w, "big", DT_F32, 2, shape, big);
    stw_write(w, path, NULL);
    // writing again over an existing (and mapped) file replaces it atomically; the old map stays valid
    SafeTensors *old = st_open_or_die(path);
    w = stw_new();
    big[0] = -1.0f;
    stw_add_f32(w, "big", DT_BF16, 2, shape, big);
    stw_write(w, path, NULL);
    SafeTensors *st = st_open_or_die(path);
    const STTensor *t = st_get(st, "big"), *o = st_get(old, "big");
    EXPECT(t->dtype == DT_BF16 && o->dtype == DT_F32);
    float a[1000], b[1000];
    st_to_f32(t, a);
    st_to_f32(o, b);
    EXPECT(a[0] == -1.0f && b[0] == 0.0f && a[999] == 1000.0f && b[999] == 999.0f);  // 999 rounds to 1000 in bf16
    st_close(st);
    st_close(old);
    free(path);
}

TEST(safetensors_find_many) {
    // a checkpoint-sized table: every name found, near misses not
    char *path = tmp_path("many.safetensors");
    STWriter *w = stw_new();
    int64_t shape[1] = {1};
    char name[64];
    for (int i = 0; i < 1500; i++) {
        float v = (float)i;
        snprintf(name, sizeof(name), "model.layers.%d.mlp.weight", (i * 7919) % 1500);
        stw_add_f32(w, name, DT_F32, 1, shape, &v);
    }
    stw_write(w, path, NULL);
    SafeTensors *st = st_open_or_die(path);
    EXPECT_INT_EQ(st->n, 1500);
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "model.layers.%d.mlp.weight", (i * 7919) % 1500);
        const STTensor *t = st_find(st, name);
        EXPECTF(t && !strcmp(t->name, name), "%s not found", name);
        float v;
        if (t) { st_to_f32(t, &v); EXPECT(v == (float)i); }
        snprintf(name, sizeof(name), "model.layers.%d.mlp.weightx", i);
        EXPECT(st_find(st, name) == NULL);
    }
    st_close(st);
    free(path);
}

// ---------------------------------------------------------------------------------------------------
// conversions (util/common.c), checked bit-exactly on the edge cases

TEST(safetensors_f16_conversion_values) {
    struct { float f; uint16_t h; } enc[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65519.0f, 0x7bff},                        // below the halfway point to 65536: stays finite
        {65520.0f, 0x7c00},                        // exact tie between 65504 and 2^16: even is inf
        {1e6f, 0x7c00}, {-1e6f, 0xfc00}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},                        // smallest normal
        {0x1p-24f, 0x0001},                        // smallest subnormal
        {0x3ffp-24f, 0x03ff},                      // largest subnormal
        {0x1p-25f, 0x0000},                        // tie between 0 and 2^-24: even is 0
        {0x1.8p-25f, 0x0001},                      // above the tie
        {0x3p-25f, 0x0002},                        // 1.5 * 2^-24: tie between 1 and 2 ulps: even is 2
        {0x5p-25f, 0x0002},                        // 2.5 * 2^-24: tie between 2 and 3: even is 2
        {1.0f + 0x1p-11f, 0x3c00},                 // tie between 1 and 1+2^-10: even is 1
        {1.0f + 0x3p-11f, 0x3c02},                 // tie between 1+2^-10 and 1+2^-9: even is the upper
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},      // just above a tie rounds up
        {0.1f, 0x2e66}, {3.14159274f, 0x4248},
    };
    for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++)
        EXPECTF(f32_to_f16(enc[i].f) == enc[i].h, "f32_to_f16(%a) = 0x%04x, expected 0x%04x", (double)enc[i].f, f32_to_f16(enc[i].f), enc[i].h);
    uint16_t n1 = f32_to_f16(NAN), n2 = f32_to_f16(bits_f32(0x7f800001u));  // a signalling NaN must not become inf
    EXPECT((n1 & 0x7c00) == 0x7c00 && (n1 & 0x3ff) != 0);
    EXPECT((n2 & 0x7c00) == 0x7c00 && (n2 & 0x3ff) != 0);
    // decoding is exact for every half: check all 65536 patterns against the definition
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        float sign = (h & 0x8000) ? -1.0f : 1.0f;
        if (e == 31) {
            EXPECTF(m ? isnan(f) : (isinf(f) && (f > 0) == (sign > 0)), "f16 0x%04x", h);
            continue;
        }
        float want = sign * (e ? ldexpf((float)(1024 + m), (int)e - 25) : ldexpf((float)m, -24));
        if (f32_bits(f) != f32_bits(want)) { test_fail(__FILE__, __LINE__, "f16_to_f32(0x%04x) = %a, expected %a", h, (double)f, (double)want); break; }
        // and every finite half survives the round trip bit-exactly (including -0 and subnormals)
        if (f32_to_f16(f) != h) { test_fail(__FILE__, __LINE__, "f16 0x%04x does not round-trip", h); break; }
    }
}

TEST(safetensors_bf16_conversion_values) {
    struct { uint32_t f; uint16_t h; } enc[] = {
        {0x3f800000u, 0x3f80},  // 1
        {0x3f808000u, 0x3f80},  // tie, kept half even: down
        {0x3f818000u, 0x3f82},  // tie, kept half odd: up
        {0x3f808001u, 0x3f81},  // just above the tie
        {0x3f807fffu, 0x3f80},  // just below
        {0x80000000u, 0x8000},  // -0
        {0x00000001u, 0x0000},  // smallest f32 subnormal rounds to +0
        {0x00008000u, 0x0000},  // subnormal tie: even
        {0x00018000u, 0x0002},  // subnormal tie: up to even
        {0x7f7fffffu, 0x7f80},  // FLT_MAX rounds to inf (as torch does)
        {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80},
        {0x40490fdbu, 0x4049},  // pi
    };
    for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++)
        EXPECTF(f32_to_bf16(bits_f32(enc[i].f)) == enc[i].h, "f32_to_bf16(0x%08x) = 0x%04x, expected 0x%04x",
                enc[i].f, f32_to_bf16(bits_f32(enc[i].f)), enc[i].h);
    // NaNs stay NaN (rounding must not carry a signalling NaN's low mantissa into inf) and quiet
    uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu};
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        uint16_t h = f32_to_bf16(bits_f32(nans[i]));
        EXPECTF((h & 0x7f80) == 0x7f80 && (h & 0x7f) && (h & 0x40), "NaN 0x%08x -> 0x%04x", nans[i], h);
        EXPECT(isnan(bf16_to_f32(h)));
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        if (f32_bits(f) != h << 16) { test_fail(__FILE__, __LINE__, "bf16_to_f32(0x%04x)", h); break; }
        if (!isnan(f) && f32_to_bf16(f) != h) { test_fail(__FILE__, __LINE__, "bf16 0x%04x does not round-trip", h); break; }
    }
}

TEST(safetensors_f16_bf16_through_file) {
    // stw_add_f32 stores with the same rounding, and st_to_f32 decodes it back
    float v[] = {0.0f, -0.0f, 1.0f, 0.1f, -3.14159274f, 65504.0f, 65520.0f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f,
                 1.0f + 0x1p-11f, 1e-40f, 3e38f, INFINITY, -INFINITY, NAN};
    const int n = (int)(sizeof(v) / sizeof(v[0]));
    int64_t shape[1] = {n};
    char *path = tmp_path("halfs.safetensors");
    STWriter *w = stw_new();
    stw_add_f32(w, "h", DT_F16, 1, shape, v);
    stw_add_f32(w, "b", DT_BF16, 1, shape, v);
    stw_add_f32(w, "f", DT_F32, 1, shape, v);
    stw_write(w, path, NULL);
    SafeTensors *st = st_open_or_die(path);
    float h[16], b[16], f[16];
    st_to_f32(st_get(st, "h"), h);
    st_to_f32(st_get(st, "b"), b);
    st_to_f32(st_get(st, "f"), f);
    for (int i = 0; i < n; i++) {
        float wh = f16_to_f32(f32_to_f16(v[i])), wb = bf16_to_f32(f32_to_bf16(v[i]));
        EXPECTF(isnan(v[i]) ? isnan(h[i]) : f32_bits(h[i]) == f32_bits(wh), "f16 [%d] %a vs %a", i, (double)h[i], (double)wh);
        EXPECTF(isnan(v[i]) ? isnan(b[i]) : f32_bits(b[i]) == f32_bits(wb), "bf16 [%d] %a vs %a", i, (double)b[i], (double)wb);
        EXPECTF(f32_bits(f[i]) == f32_bits(v[i]), "f32 [%d]", i);
    }
    EXPECT(isinf(h[6]) && h[8] == 0.0f && h[9] == 0x1p-24f && h[10] == 1.0f && h[11] == 0.0f && isinf(h[12]));
    st_close(st);
    free(path);
}

// ---------------------------------------------------------------------------------------------------
// sharded checkpoints and directories

static void write_two_shards(const char *dir, const char *index_extra) {
    float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {7, 8}, c = 9, junk = 0;
    int64_t sa[2] = {2, 3}, sb[1] = {2};
    char *p1 = path_join(dir, "model-00001-of-00002.safetensors"), *p2 = path_join(dir, "model-00002-of-00002.safetensors");
    STWriter *w = stw_new();
    stw_add_f32(w, "layer.0.w", DT_F32, 2, sa, a);
    stw_add_f32(w, "layer.0.b", DT_BF16, 1, sb, b);
    const char *meta[] = {"shard", "1", NULL};
    stw_write(w, p1, meta);
    w = stw_new();
    stw_add_f32(w, "layer.1.s", DT_F16, 0, NULL, &c);
    stw_add_f32(w, "not.in.map", DT_F32, 0, NULL, &junk);
    stw_write(w, p2, NULL);
    char *ip = path_join(dir, "model.safetensors.index.json");
    char idx[1024];
    snprintf(idx, sizeof(idx),
             "{\"metadata\": {\"total_size\": 38}, \"weight_map\": {\"layer.1.s\": \"model-00002-of-00002.safetensors\", "
             "\"layer.0.w\": \"model-00001-of-00002.safetensors\", \"layer.0.b\": \"model-00001-of-00002.safetensors\"%s}}",
             index_extra);
    write_file_atomic(ip, idx, strlen(idx));
    free(p1); free(p2); free(ip);
}

static void check_two_shards(SafeTensors *st) {
    EXPECT_INT_EQ(st->n_files, 2);
    EXPECT_INT_EQ(st->n, 3);  // "not.in.map" is left out, as transformers does
    EXPECT(st_find(st, "not.in.map") == NULL);
    EXPECT(strstr(st->files[0], "model-00001-of-00002.safetensors") && strstr(st->files[1], "model-00002-of-00002.safetensors"));
    const STTensor *w = st_find(st, "layer.0.w"), *b = st_find(st, "layer.0.b"), *s = st_find(st, "layer.1.s");
    EXPECT(w && b && s);
    if (!w || !b || !s) return;
    EXPECT(w->shard == 0 && b->shard == 0 && s->shard == 1);
    EXPECT(w->dtype == DT_F32 && b->dtype == DT_BF16 && s->dtype == DT_F16 && s->ndim == 0 && s->numel == 1);
    EXPECT(tensor_in_bounds(st, w) && tensor_in_bounds(st, b) && tensor_in_bounds(st, s));
    float v[6];
    st_to_f32(w, v);
    EXPECT(v[0] == 1 && v[5] == 6);
    st_to_f32(b, v);
    EXPECT(v[0] == 7 && v[1] == 8);
    st_to_f32(s, v);
    EXPECT(v[0] == 9);
    EXPECT(st->metadata_json && strstr(st->metadata_json, "\"shard\":\"1\""));  // from the first shard
}

TEST(safetensors_sharded_index) {
    char *dir = tmp_path("sharded");
    mkdir(dir, 0755);
    write_two_shards(dir, "");
    char *ip = path_join(dir, "model.safetensors.index.json");
    char err[512];
    SafeTensors *st = st_open(ip, err, sizeof(err));
    EXPECTF(st, "st_open: %s", err);
    if (st) { check_two_shards(st); st_close(st); }
    st = st_open(dir, err, sizeof(err));  // the directory resolves to the index
    EXPECTF(st, "st_open(dir): %s", err);
    if (st) { check_two_shards(st); st_close(st); }
    free(ip);
    free(dir);
}

TEST(safetensors_directory_path) {
    char *dir = tmp_path("single_dir");
    mkdir(dir, 0755);
    EXPECT_OPEN_FAILS(dir, "neither model.safetensors nor model.safetensors.index.json", NULL);
    char *p = path_join(dir, "model.safetensors");
    float x = 5;
    STWriter *w = stw_new();
    stw_add_f32(w, "x", DT_F32, 0, NULL, &x);
    stw_write(w, p, NULL);
    SafeTensors *st = st_open_or_die(dir);
    EXPECT(st->n == 1 && st_find(st, "x") && strstr(st->files[0], "model.safetensors"));
    st_close(st);
    // with both present, model.safetensors wins (that is what the index would point at anyway)
    write_two_shards(dir, "");
    st = st_open_or_die(dir);
    EXPECT(st->n == 1 && st->n_files == 1 && st_find(st, "x"));
    st_close(st);
    // a trailing slash works too
    char *slash = xmalloc(strlen(dir) + 2);
    sprintf(slash, "%s/", dir);
    st = st_open_or_die(slash);
    EXPECT(st->n == 1);
    st_close(st);
    free(slash);
    free(p);
    free(dir);
}

// ---------------------------------------------------------------------------------------------------
// interop with the Python safetensors library (tests/ref/make_safetensors_fixture.py)

TEST(safetensors_python_written_fixture) {
    const char *path = "tests/fixtures/safetensors/py_written.safetensors";
    char err[512];
    SafeTensors *st = st_open(path, err, sizeof(err));
    EXPECTF(st, "st_open: %s (run from the repository root)", err);
    if (!st) return;
    EXPECT_INT_EQ(st->n, 9);
    EXPECT(st->metadata_json && strstr(st->metadata_json, "\"source\":\"make_safetensors_fixture.py\""));
    float v[24];
    const STTensor *t = st_find(st, "f32");
    int64_t s23[2] = {2, 3};
    EXPECT(t && t->dtype == DT_F32 && shape_is(t, 2, s23));
    if (t) { st_to_f32(t, v); for (int i = 0; i < 6; i++) EXPECT(v[i] == (float)i * 0.5f - 1.0f); }
    t = st_find(st, "f16");
    EXPECT(t && t->dtype == DT_F16 && t->numel == 5);
    if (t) { st_to_f32(t, v); EXPECT(v[0] == 1.0f && v[1] == -2.5f && v[2] == 65504.0f && v[3] == 0x1p-24f && isinf(v[4])); }
    t = st_find(st, "bf16");
    int64_t s22[2] = {2, 2};
    EXPECT(t && t->dtype == DT_BF16 && shape_is(t, 2, s22));
    if (t) { st_to_f32(t, v); EXPECT(v[0] == 1.0f && v[1] == -2.5f && isinf(v[2]) && v[3] == 0x1p-133f); }
    t = st_find(st, "i64");
    EXPECT(t && t->dtype == DT_I64 && shape_is(t, 2, s22));
    if (t) {
        int64_t x[4];
        memcpy(x, t->data, sizeof(x));
        EXPECT(x[0] == -1 && x[1] == 0 && x[2] == ((int64_t)1 << 40) && x[3] == 7);
    }
    t = st_find(st, "scalar");
    EXPECT(t && t->dtype == DT_F32 && t->ndim == 0 && t->numel == 1 && t->nbytes == 4);
    if (t) { st_to_f32(t, v); EXPECT(v[0] == 3.25f); }
    t = st_find(st, "f64");
    EXPECT(t && t->dtype == DT_F64);
    if (t) { st_to_f32(t, v); EXPECT(v[0] == 0.1f && v[1] == 1e-3f); }
    t = st_find(st, "u8");
    EXPECT(t && t->dtype == DT_U8 && t->numel == 3 && !memcmp(t->data, "\x00\x80\xff", 3));
    t = st_find(st, "empty");
    int64_t s04[2] = {0, 4};
    EXPECT(t && t->numel == 0 && t->nbytes == 0 && shape_is(t, 2, s04));
    t = st_find(st, "model.layers.0.self_attn.q_proj.weight");
    int64_t s342[3] = {3, 4, 2};
    EXPECT(t && shape_is(t, 3, s342));
    if (t) { st_to_f32(t, v); for (int i = 0; i < 24; i++) EXPECT(v[i] == (float)i); }
    for (int i = 0; i < st->n; i++) EXPECT(tensor_in_bounds(st, &st->tensors[i]));
    st_close(st);
}

// Keep in sync with c_expected() in tests/ref/make_safetensors_fixture.py, which loads the committed
// file with the Python library.
static void c_written_build(const char *path) {
    float f32[6], f16[4] = {1.0f, -2.0f, 1.0f / 3.0f, 65504.0f}, bf16[3] = {1.0f, -2.5f, 3.14159274f}, scalar = 2.5f;
    for (int i = 0; i < 6; i++) f32[i] = (float)i * 0.25f - 0.5f;
    int64_t i64[3] = {-5, 0, (int64_t)1 << 40};
    int32_t i32[2] = {-7, 7};
    uint8_t u8[4] = {0, 1, 128, 255}, bools[2] = {1, 0};
    double cube[8];
    for (int i = 0; i < 8; i++) cube[i] = i;
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s0[1] = {0}, s222[3] = {2, 2, 2};
    STWriter *w = stw_new();
    stw_add_f32(w, "w.f32", DT_F32, 2, s23, f32);
    stw_add_f32(w, "w.f16", DT_F16, 1, s4, f16);
    stw_add_f32(w, "w.bf16", DT_BF16, 1, s3, bf16);
    stw_add(w, "i64", DT_I64, 1, s3, i64);
    stw_add(w, "i32", DT_I32, 1, s2, i32);
    stw_add(w, "u8", DT_U8, 1, s4, u8);
    stw_add(w, "bool", DT_BOOL, 1, s2, bools);
    stw_add_f32(w, "scalar", DT_F32, 0, NULL, &scalar);
    stw_add(w, "empty", DT_F16, 1, s0, NULL);
    stw_add(w, "cube", DT_F64, 3, s222, cube);
    const char *meta[] = {"step", "7", "note", "quote \" and backslash \\", NULL};
    stw_write(w, path, meta);
}

TEST(safetensors_c_written_fixture) {
    // The committed file is what the Python library is checked against; the writer must still produce it
    // byte for byte. VLM_UPDATE_FIXTURES=1 rewrites it (then rerun the Python script).
    const char *fixture = "tests/fixtures/safetensors/c_written.safetensors";
    char *path = tmp_path("c_written.safetensors");
    c_written_build(path);
    if (getenv("VLM_UPDATE_FIXTURES")) c_written_build(fixture);
    size_t n1 = 0, n2 = 0;
    char *a = read_file(path, &n1), *b = try_read_file(fixture, &n2);
    EXPECTF(b, "%s missing: run `VLM_UPDATE_FIXTURES=1 build/test_vlm safetensors_c_written_fixture` from the repository root", fixture);
    if (b) EXPECTF(n1 == n2 && !memcmp(a, b, n1), "the writer's output differs from %s (%zu vs %zu bytes); if intended, "
                   "regenerate with VLM_UPDATE_FIXTURES=1 and recheck with tests/ref/make_safetensors_fixture.py", fixture, n1, n2);
    SafeTensors *st = st_open_or_die(path);
    EXPECT_INT_EQ(st->n, 10);
    float v[8];
    st_to_f32(st_get(st, "w.bf16"), v);
    EXPECT(v[0] == 1.0f && v[1] == -2.5f && v[2] == bf16_to_f32(0x4049));
    st_to_f32(st_get(st, "cube"), v);
    EXPECT(v[7] == 7.0f);
    st_close(st);
    free(a); free(b); free(path);
}

// ---------------------------------------------------------------------------------------------------
// broken files: one test per failure mode

static char *write_valid(const char *name, size_t *len, uint64_t *hl) {
    char *p = tmp_path(name);
    float a[8] = {0};
    int64_t s[2] = {2, 4}, s1[1] = {3};
    STWriter *w = stw_new();
    stw_add_f32(w, "a.weight", DT_F32, 2, s, a);
    stw_add_f32(w, "b.bias", DT_BF16, 1, s1, a);
    stw_write(w, p, NULL);
    char *raw = read_file(p, len);
    *hl = 0;
    for (int i = 0; i < 8; i++) *hl |= (uint64_t)(unsigned char)raw[i] << (8 * i);
    free(p);
    return raw;
}

TEST(safetensors_bad_truncated) {
    size_t len;
    uint64_t hl;
    char *raw = write_valid("valid_for_trunc.safetensors", &len, &hl);
    size_t cuts[] = {0, 1, 4, 7, 8, 9, 8 + (size_t)hl / 2, 8 + (size_t)hl - 1, 8 + (size_t)hl, 8 + (size_t)hl + 1, len - 1};
    char *p = tmp_path("truncated.safetensors");
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        write_file_atomic(p, raw, cuts[i]);
        const char *want = cuts[i] < 8 ? "shorter than the 8-byte header length" : cuts[i] < 8 + hl ? "exceeds the" : "beyond the";
        EXPECT_OPEN_FAILS(p, want, cuts[i] >= 8 + hl ? "truncated file?" : NULL);
    }
    write_file_atomic(p, raw, len);  // and the untruncated file opens
    SafeTensors *st = st_open_or_die(p);
    EXPECT_INT_EQ(st->n, 2);
    st_close(st);
    free(p);
    free(raw);
}

TEST(safetensors_bad_header_length) {
    size_t len;
    uint64_t hl;
    char *raw = write_valid("valid_for_hlen.safetensors", &len, &hl);
    char *p = tmp_path("hlen.safetensors");
    uint64_t bad[] = {UINT64_MAX, (uint64_t)1 << 63, 100000001, len - 7, len};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int k = 0; k < 8; k++) raw[k] = (char)(bad[i] >> (8 * k));
        write_file_atomic(p, raw, len);
        EXPECT_OPEN_FAILS(p, bad[i] > 100000000 ? "is absurd" : "exceeds the", NULL);
    }
    // shorter than the JSON: the header is cut mid-object
    for (int k = 0; k < 8; k++) raw[k] = (char)((hl - 10) >> (8 * k));
    write_file_atomic(p, raw, len);
    EXPECT_OPEN_FAILS(p, "not valid JSON", NULL);
    // zero-length header
    for (int k = 0; k < 8; k++) raw[k] = 0;
    write_file_atomic(p, raw, len);
    EXPECT_OPEN_FAILS(p, "not valid JSON", NULL);
    free(p);
    free(raw);
}

TEST(safetensors_bad_json) {
    EXPECT_HEADER_FAILS("json1.safetensors", "{\"a\": {\"dtype\": \"F32\"", 0, "header is not valid JSON", NULL);
    EXPECT_HEADER_FAILS("json2.safetensors", "not json at all", 0, "header is not valid JSON", NULL);
    EXPECT_HEADER_FAILS("json3.safetensors", "[1, 2, 3]", 0, "header is not a JSON object", NULL);
    EXPECT_HEADER_FAILS("json4.safetensors", "\"a string\"", 0, "header is not a JSON object", NULL);
    EXPECT_HEADER_FAILS("json5.safetensors", "{} {}", 0, "trailing bytes", NULL);
    EXPECT_HEADER_FAILS("json6.safetensors", "{}xyz", 0, "trailing bytes", NULL);
    EXPECT_HEADER_FAILS("json7.safetensors", "{\"a\xff\": 1}", 0, "not valid UTF-8", NULL);
    char with_nul[] = "{\"a\0b\": 1}";
    char *p = tmp_path("json8.safetensors");
    unsigned char buf[8 + sizeof(with_nul) - 1] = {(unsigned char)(sizeof(with_nul) - 1)};
    memcpy(buf + 8, with_nul, sizeof(with_nul) - 1);
    write_file_atomic(p, buf, sizeof(buf));
    EXPECT_OPEN_FAILS(p, "not valid UTF-8 JSON text", NULL);
    free(p);
    // valid minimal headers, with space padding and newlines, open fine
    char *q = tmp_path("json_ok.safetensors");
    write_raw(q, "{}", NULL, 0);
    SafeTensors *st = st_open_or_die(q);
    EXPECT(st->n == 0 && st->metadata_json == NULL);
    st_close(st);
    write_raw(q, "\n{\"__metadata__\": {\"k\": \"v\"}}\r\n\t      ", NULL, 0);
    st = st_open_or_die(q);
    EXPECT(st->n == 0 && st->metadata_json && !strcmp(st->metadata_json, "{\"k\":\"v\"}"));
    st_close(st);
    free(q);
}

TEST(safetensors_bad_entry_fields) {
    EXPECT_HEADER_FAILS("f1.safetensors", "{\"t.w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "tensor 't.w': missing \"dtype\"", NULL);
    EXPECT_HEADER_FAILS("f2.safetensors", "{\"t.w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8, "tensor 't.w': missing \"shape\"", NULL);
    EXPECT_HEADER_FAILS("f3.safetensors", "{\"t.w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "tensor 't.w': missing \"data_offsets\"", NULL);
    EXPECT_HEADER_FAILS("f4.safetensors", "{\"t.w\": {\"dtype\": 5, \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "\"dtype\" is 5, not a string", NULL);
    EXPECT_HEADER_FAILS("f5.safetensors", "{\"t.w\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", 8, "\"shape\" is 2, not an array", NULL);
    EXPECT_HEADER_FAILS("f6.safetensors", "{\"t.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4, 8]}}", 8, "tensor 't.w'", "must be [begin, end]");
    EXPECT_HEADER_FAILS("f7.safetensors", "{\"t.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": \"0-8\"}}", 8, "must be [begin, end]", NULL);
    EXPECT_HEADER_FAILS("f8.safetensors", "{\"t.w\": [1, 2]}", 8, "tensor 't.w': entry is an array, not an object", NULL);
    EXPECT_HEADER_FAILS("f9.safetensors", "{\"t.w\": null}", 8, "entry is null", NULL);
    EXPECT_HEADER_FAILS("f10.safetensors", "{\"\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "empty name", NULL);
    EXPECT_HEADER_FAILS("f11.safetensors", "{\"t.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, \"8\"]}}", 8, "data_offsets end is a string", NULL);
    // unknown extra keys in an entry are ignored, as the reference library does
    char *p = tmp_path("f_ok.safetensors");
    float x[2] = {1, 2};
    write_raw(p, "{\"t.w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"extra\": true}}", x, 8);
    SafeTensors *st = st_open_or_die(p);
    EXPECT(st->n == 1);
    st_close(st);
    free(p);
}

TEST(safetensors_bad_unknown_dtype) {
    EXPECT_HEADER_FAILS("dt1.safetensors", "{\"emb\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2, "tensor 'emb': unknown dtype 'F8_E4M3'", NULL);
    EXPECT_HEADER_FAILS("dt2.safetensors", "{\"emb\": {\"dtype\": \"f32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "unknown dtype 'f32'", NULL);
    EXPECT_HEADER_FAILS("dt3.safetensors", "{\"emb\": {\"dtype\": \"\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "unknown dtype ''", NULL);
}

TEST(safetensors_bad_shape) {
    EXPECT_HEADER_FAILS("sh1.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -3], \"data_offsets\": [0, 8]}}", 8, "tensor 'w': shape dimension 1 is -3, not a non-negative integer", NULL);
    EXPECT_HEADER_FAILS("sh2.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 8]}}", 8, "shape dimension 0 is 1.5", NULL);
    EXPECT_HEADER_FAILS("sh3.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 8, "shape dimension 0 is a string", NULL);
    EXPECT_HEADER_FAILS("sh4.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4, "9 dimensions", NULL);
    EXPECT_HEADER_FAILS("sh5.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 4]}}", 4, "not a non-negative integer", NULL);
    EXPECT_HEADER_FAILS("sh6.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [null], \"data_offsets\": [0, 4]}}", 4, "shape dimension 0 is null", NULL);
}

TEST(safetensors_bad_offsets) {
    EXPECT_HEADER_FAILS("of1.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, "tensor 'w': data_offsets [8, 0] has begin > end", NULL);
    EXPECT_HEADER_FAILS("of2.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8, "tensor 'w': data_offsets [0, 16] end is beyond the 8-byte data buffer", NULL);
    EXPECT_HEADER_FAILS("of3.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}}", 8, "data_offsets begin is -8", NULL);
    EXPECT_HEADER_FAILS("of4.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0.5, 8.5]}}", 9, "data_offsets begin is 0.5", NULL);
    EXPECT_HEADER_FAILS("of5.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [18446744073709551608, 18446744073709551616]}}", 8, "not a non-negative integer", NULL);
    EXPECT_HEADER_FAILS("of6.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8, "must be [begin, end]", NULL);
    // an empty tensor may sit at the very end of the buffer, but not past it
    EXPECT_HEADER_FAILS("of7.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [9, 9]}}", 8, "beyond the 8-byte data buffer", NULL);
    char *p = tmp_path("of_ok.safetensors");
    write_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]}}", "12345678", 8);
    SafeTensors *st = st_open_or_die(p);
    EXPECT(st->n == 1 && st->tensors[0].nbytes == 0 && tensor_in_bounds(st, &st->tensors[0]));
    st_close(st);
    free(p);
}

TEST(safetensors_bad_size_mismatch) {
    // the message of the brief, verbatim
    char *p = tmp_path("model.safetensors");
    char zeros[128] = {0};
    write_raw(p, "{\"a.weight\": {\"dtype\": \"F32\", \"shape\": [4, 8], \"data_offsets\": [0, 96]}}", zeros, 128);
    char err[512];
    EXPECT(st_open(p, err, sizeof(err)) == NULL);
    char want[600];
    snprintf(want, sizeof(want), "%s: tensor 'a.weight': data_offsets [0, 96] but shape [4, 8] of F32 needs 128 bytes", p);
    EXPECTF(!strcmp(err, want), "got '%s'", err);
    free(p);
    EXPECT_HEADER_FAILS("sz2.safetensors", "{\"s\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [0, 4]}}", 4, "shape [] of BF16 needs 2 bytes", NULL);
    EXPECT_HEADER_FAILS("sz3.safetensors", "{\"s\": {\"dtype\": \"I64\", \"shape\": [0], \"data_offsets\": [0, 8]}}", 8, "shape [0] of I64 needs 0 bytes", NULL);
    EXPECT_HEADER_FAILS("sz4.safetensors", "{\"s\": {\"dtype\": \"F16\", \"shape\": [2, 0, 5], \"data_offsets\": [0, 2]}}", 2, "needs 0 bytes", NULL);
}

TEST(safetensors_bad_size_overflow) {
    // products that wrap around 64 bits must not sneak past the size check
    EXPECT_HEADER_FAILS("ov1.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 0]}}", 0, "too large", NULL);
    EXPECT_HEADER_FAILS("ov2.safetensors", "{\"w\": {\"dtype\": \"F64\", \"shape\": [2305843009213693952], \"data_offsets\": [0, 0]}}", 0, "not a non-negative integer", NULL);
    EXPECT_HEADER_FAILS("ov3.safetensors", "{\"w\": {\"dtype\": \"F64\", \"shape\": [4503599627370496, 1024], \"data_offsets\": [0, 0]}}", 0, "too large", NULL);
    // rejected even though a later 0 would make it empty: the reference library multiplies left to right
    // with overflow checks and refuses it the same way
    EXPECT_HEADER_FAILS("ov4.safetensors", "{\"w\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296, 0], \"data_offsets\": [0, 0]}}", 0, "too large", NULL);
}

TEST(safetensors_bad_overlap) {
    float z[8] = {0};
    EXPECT_HEADER_FAILS("ol1.safetensors",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [12, 28]}}",
        32, "overlap tensor 'a'", "tensor 'b'");
    EXPECT_HEADER_FAILS("ol2.safetensors",  // identical ranges
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
        8, "overlap", NULL);
    EXPECT_HEADER_FAILS("ol3.safetensors",  // b inside a, listed first
        "{\"b\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [5, 6]}, \"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
        16, "overlap tensor 'a'", NULL);
    EXPECT_HEADER_FAILS("ol4.safetensors",  // c overlaps a even though b (short) sits between them
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, \"b\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [2, 3]},"
        " \"c\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [10, 11]}}",
        16, "overlap tensor 'a'", NULL);
    // adjacent, gapped, and empty tensors sharing an offset are fine
    char *p = tmp_path("ol_ok.safetensors");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}, \"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [24, 28]}}",
              z, 32);
    char err[512];
    SafeTensors *st = st_open(p, err, sizeof(err));
    EXPECTF(st, "%s", err);
    if (st) {
        EXPECT(st->n == 4);
        // file order: by offset
        EXPECT(!strcmp(st->tensors[0].name, "a") && !strcmp(st->tensors[1].name, "e") && !strcmp(st->tensors[3].name, "c"));
        st_close(st);
    }
    free(p);
}

TEST(safetensors_bad_duplicate_name) {
    EXPECT_HEADER_FAILS("dup.safetensors",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
        8, "tensor 'a' is defined twice", NULL);
}

TEST(safetensors_bad_metadata) {
    EXPECT_HEADER_FAILS("md1.safetensors", "{\"__metadata__\": [1]}", 0, "\"__metadata__\" is not an object", NULL);
    EXPECT_HEADER_FAILS("md2.safetensors", "{\"__metadata__\": {\"total\": 5}}", 0, "value for 'total' is not a string", NULL);
}

TEST(safetensors_bad_index) {
    char *dir = tmp_path("bad_index");
    mkdir(dir, 0755);
    char *ip = path_join(dir, "model.safetensors.index.json");
    // a shard the index names does not exist
    write_two_shards(dir, ", \"layer.2.w\": \"model-00003-of-00003.safetensors\"");
    EXPECT_OPEN_FAILS(ip, "shard 'model-00003-of-00003.safetensors' (holding tensor 'layer.2.w' and others) is missing", NULL);
    EXPECT_OPEN_FAILS(dir, "is missing", "model.safetensors.index.json");
    // a name mapped to a shard that lacks it
    write_two_shards(dir, ", \"layer.9.w\": \"model-00001-of-00002.safetensors\"");
    EXPECT_OPEN_FAILS(ip, "tensor 'layer.9.w' is mapped to shard 'model-00001-of-00002.safetensors' but that shard does not contain it", NULL);
    // a name mapped to the wrong shard (it exists, but in the other one)
    write_two_shards(dir, "");
    const char *wrong = "{\"weight_map\": {\"layer.0.w\": \"model-00002-of-00002.safetensors\"}}";
    write_file_atomic(ip, wrong, strlen(wrong));
    EXPECT_OPEN_FAILS(ip, "tensor 'layer.0.w' is mapped to shard 'model-00002-of-00002.safetensors'", NULL);
    // index JSON itself broken
    const char *cases[][2] = {
        {"{\"weight_map\": {\"a\": ", "not valid JSON"},
        {"{\"metadata\": {}}", "no \"weight_map\" object"},
        {"[1]", "no \"weight_map\" object"},
        {"{\"weight_map\": {}}", "\"weight_map\" is empty"},
        {"{\"weight_map\": {\"a\": 3}}", "weight_map entry for tensor 'a' is not a file name"},
        {"{\"weight_map\": {\"a\": \"\"}}", "weight_map entry for tensor 'a' is not a file name"},
        {"{\"weight_map\": {\"layer.0.w\": \"model-00001-of-00002.safetensors\", \"layer.0.w\": \"model-00001-of-00002.safetensors\"}}", "appears twice in weight_map"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file_atomic(ip, cases[i][0], strlen(cases[i][0]));
        EXPECT_OPEN_FAILS(ip, cases[i][1], NULL);
    }
    // a broken shard: the message names the shard, not just the index
    write_two_shards(dir, "");
    char *s2 = path_join(dir, "model-00002-of-00002.safetensors");
    size_t len;
    char *raw = read_file(s2, &len);
    write_file_atomic(s2, raw, len - 1);
    EXPECT_OPEN_FAILS(ip, "model-00002-of-00002.safetensors: tensor 'layer.1.s'", "beyond the");
    EXPECT_OPEN_FAILS(dir, "(shard listed in", "beyond the");
    free(raw);
    free(s2);
    // missing index file altogether
    char *none = path_join(dir, "nothing.index.json");
    EXPECT_OPEN_FAILS(none, "cannot open", "No such file");
    free(none);
    free(ip);
    free(dir);
}

TEST(safetensors_bad_missing_path) {
    char *p = tmp_path("does_not_exist.safetensors");
    EXPECT_OPEN_FAILS(p, "cannot open", "No such file");
    free(p);
}

// Random damage to a valid file: st_open may accept or reject, but an accepted file must satisfy every
// invariant (tensors inside the map, sizes consistent, no overlaps) and reading it must not fault.
TEST(safetensors_fuzz_never_out_of_bounds) {
    size_t len;
    uint64_t hl;
    char *p = tmp_path("fuzz_src.safetensors");
    {
        float a[12];
        for (int i = 0; i < 12; i++) a[i] = (float)i;
        int64_t s34[2] = {3, 4}, s5[1] = {5}, s2[1] = {2};
        uint8_t u[5] = {1, 2, 3, 4, 5};
        STWriter *w = stw_new();
        stw_add_f32(w, "a", DT_F32, 2, s34, a);
        stw_add_f32(w, "h", DT_F16, 1, s2, a);
        stw_add(w, "u", DT_U8, 1, s5, u);
        stw_add_f32(w, "s", DT_BF16, 0, NULL, a);
        stw_write(w, p, NULL);
    }
    char *raw = read_file(p, &len);
    for (int i = 0; i < 8; i++) ((unsigned char *)&hl)[i] = (unsigned char)raw[i];
    char *buf = xmalloc(len);
    char *q = tmp_path("fuzz.safetensors");
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int accepted = 0, rejected = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, raw, len);
        size_t n = len;
        int muts = 1 + (int)((rng >> 60) & 3);
        for (int m = 0; m < muts; m++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(rng >> 33) % len;
            int kind = (int)((rng >> 20) % 4);
            if (kind == 0) buf[pos] = (char)(rng >> 8);                              // any byte
            else if (kind == 1) {                                                    // a digit in the header: JSON stays valid
                size_t at = 8 + (size_t)(rng >> 33) % hl;
                if (buf[at] >= '0' && buf[at] <= '9') buf[at] = (char)('0' + (rng >> 12) % 10);
            } else if (kind == 2) n = (size_t)(rng >> 33) % (len + 1);               // truncate
            else buf[(rng >> 40) % 8] = (char)(rng >> 16);                           // header length
        }
        write_file_atomic(q, buf, n);
        char err[512];
        SafeTensors *st = st_open(q, err, sizeof(err));
        if (!st) {
            rejected++;
            EXPECTF(strstr(err, "fuzz.safetensors"), "message does not name the file: %s", err);
            continue;
        }
        accepted++;
        for (int i = 0; i < st->n; i++) {
            const STTensor *t = &st->tensors[i];
            EXPECTF(tensor_in_bounds(st, t), "iteration %d: tensor %s out of bounds", it, t->name);
            EXPECT_INT_EQ(t->nbytes, t->numel * dtype_size(t->dtype));
            if (i > 0 && t->nbytes && st->tensors[i - 1].nbytes)
                EXPECT((const char *)t->data >= (const char *)st->tensors[i - 1].data + st->tensors[i - 1].nbytes);
            if (t->numel < 1000 && (t->dtype == DT_F32 || t->dtype == DT_F16 || t->dtype == DT_BF16 || t->dtype == DT_F64)) {
                float out[1000];
                st_to_f32(t, out);
            }
            EXPECT(st_find(st, t->name) == t);
        }
        st_close(st);
    }
    EXPECT(accepted > 0 && rejected > 0);
    free(buf); free(raw); free(q); free(p);
}

// Death tests run in a child; on_exit's handler leaves with _exit so the runner's atexit cleanup of the
// shared temporary directory does not run in the child.
static void child_exit(int status, void *arg) { (void)arg; fflush(stderr); _exit(status); }

static int dies_with(void (*fn)(void *), void *arg, const char *want) {
    char *errp = tmp_path("death.err");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        on_exit(child_exit, NULL);
        if (!freopen(errp, "w", stderr)) _exit(99);
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char *msg = try_read_file(errp, NULL);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 1 && msg && strstr(msg, want);
    if (!ok) test_fail(__FILE__, __LINE__, "expected death with '%s'; status %d, stderr: %s", want, status, msg ? msg : "(none)");
    free(msg);
    free(errp);
    return ok;
}

static void die_int_to_f32(void *arg) {
    SafeTensors *st = st_open_or_die((const char *)arg);
    float out[4];
    st_to_f32(st_get(st, "ids"), out);
}
static void die_open(void *arg) { st_open_or_die((const char *)arg); }
static void die_get(void *arg) { st_get(st_open_or_die((const char *)arg), "missing.tensor"); }
static void die_dup(void *arg) {
    float x = 1;
    STWriter *w = stw_new();
    stw_add_f32(w, "x", DT_F32, 0, NULL, &x);
    stw_add_f32(w, "x", DT_F32, 0, NULL, &x);
}
static void die_add_f32_int(void *arg) {
    float x = 1;
    stw_add_f32(stw_new(), "x", DT_I32, 0, NULL, &x);
}
static void die_write(void *arg) {
    float x = 1;
    STWriter *w = stw_new();
    stw_add_f32(w, "x", DT_F32, 0, NULL, &x);
    stw_write(w, "/nonexistent_dir_for_vlm_test/out.safetensors", NULL);
}

TEST(safetensors_dies_with_clear_messages) {
    char *p = tmp_path("ints.safetensors");
    int64_t ids[4] = {1, 2, 3, 4}, s[1] = {4};
    STWriter *w = stw_new();
    stw_add(w, "ids", DT_I64, 1, s, ids);
    stw_write(w, p, NULL);
    dies_with(die_int_to_f32, p, "tensor 'ids' has integer dtype I64; st_to_f32 converts only F32/F16/BF16/F64");
    dies_with(die_get, p, "ints.safetensors: no tensor named 'missing.tensor'");
    char *missing = tmp_path("missing.safetensors");
    dies_with(die_open, missing, "missing.safetensors: cannot open");
    dies_with(die_dup, NULL, "tensor 'x' added twice");
    dies_with(die_add_f32_int, NULL, "stores F32, F16 or BF16, not I32");
    dies_with(die_write, NULL, "/nonexistent_dir_for_vlm_test/out.safetensors.tmp: cannot create");
    free(missing);
    free(p);
}
