// Packed shards: round trip (pixels bit-exact against the preprocessing pipeline, ids, masks, text,
// metadata), normalization bit-exact against preprocess_normalize, truncated and corrupted files,
// the loader's seeded order, resume, per-batch image sharing, and `vlm data pack` / `vlm data bench`.
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../data/augment.h"
#include "../data/datasets.h"
#include "../data/image.h"
#include "../data/preprocess.h"
#include "../data/shard.h"
#include "../util/common.h"
#include "test.h"

static char *tmp_path(const char *name) { return path_join(test_tmpdir(), name); }

static char *shared_image(const char *name) {
    char *dir = path_join(test_shared_data(), "images");
    char *p = path_join(dir, name);
    free(dir);
    return p;
}

// The uint8 stage of the pipeline for a shared image: what a shard must hold, byte for byte.
static Image *geometry_of(const char *name, const PreprocessConfig *cfg) {
    char *path = shared_image(name);
    Image *im = image_load_or_die(path, cfg->alpha);
    Image *g = preprocess_geometry(cfg, im);
    image_free(im);
    free(path);
    return g;
}

// A hand-built shard of every record kind over three real images, with text and ids.
#define RT_S 48
static const char *rt_images[3] = {"astronaut.png", "chelsea.png", "coffee.png"};

static void write_round_trip_shard(const char *path, const PreprocessConfig *cfg) {
    ShardSpec spec = {RT_S, SHARD_HAS_TEXT | SHARD_HAS_IDS, cfg, 0xabcdef};
    ShardWriter *w = shard_writer_open(path, &spec);
    for (int i = 0; i < 3; i++) {
        Image *g = geometry_of(rt_images[i], cfg);
        EXPECT_INT_EQ(shard_writer_add_image(w, g->data), i);
        image_free(g);
    }
    {   // llava, one image, one sequence
        uint32_t im[1] = {0};
        const char *f[2] = {"<image>\nWho is this?", "An astronaut."};
        int32_t ids[6] = {1, 2, 3, 32000, 5, 6};
        uint8_t mask[6] = {0, 0, 0, 0, 1, 1};
        ShardRecordIn r = {.kind = DATA_LLAVA, .source_index = 0, .images = im, .n_images = 1, .fields = f, .n_fields = 2,
                           .ids = ids, .mask = mask, .n_ids = 6};
        shard_writer_add_record(w, &r);
    }
    {   // pope
        uint32_t im[1] = {1};
        const char *f[1] = {"Is there a cat in the image?"};
        int32_t ids[2] = {1, 7};
        ShardRecordIn r = {.kind = DATA_POPE, .label = 1, .source_index = 42, .images = im, .n_images = 1, .fields = f,
                           .n_fields = 1, .ids = ids, .n_ids = 2};
        shard_writer_add_record(w, &r);
    }
    {   // mvc: chosen image 0, rejected image 2; two sequences
        uint32_t im[2] = {0, 2};
        const char *f[4] = {"", "Describe.", "A woman in a suit.", "A cup of coffee."};
        int32_t ids[5] = {10, 11, 12, 10, 13};
        uint8_t mask[5] = {0, 1, 1, 0, 1};
        uint32_t seqs[2] = {3, 2};
        ShardRecordIn r = {.kind = DATA_MVC, .n_chosen_images = 1, .source_index = 2, .images = im, .n_images = 2, .fields = f,
                           .n_fields = 4, .ids = ids, .mask = mask, .n_ids = 5, .seq_lens = seqs, .n_seqs = 2};
        shard_writer_add_record(w, &r);
    }
    {   // text-only llava
        const char *f[2] = {"Hi", "Hello \xc3\xa9"};
        int32_t ids[3] = {1, 9, 9};
        uint8_t mask[3] = {0, 1, 1};
        ShardRecordIn r = {.kind = DATA_LLAVA, .source_index = 3, .fields = f, .n_fields = 2, .ids = ids, .mask = mask, .n_ids = 3};
        shard_writer_add_record(w, &r);
    }
    shard_writer_close(w);
}

TEST(shard_round_trip) {
    PreprocessConfig cfg = preprocess_config_clip(RT_S);
    char *path = tmp_path("rt.shard");
    write_round_trip_shard(path, &cfg);
    char *tmp = tmp_path("rt.shard.tmp");
    EXPECT(!file_exists(tmp));  // renamed into place
    free(tmp);
    Shard s;
    char err[512];
    EXPECTF(shard_open(&s, path, 1, err, sizeof(err)) == 0, "%s", err);
    if (!s.h) { free(path); return; }
    const ShardHeader *h = s.h;
    EXPECT_INT_EQ(h->version, SHARD_VERSION);
    EXPECT_INT_EQ(h->n_records, 4);
    EXPECT_INT_EQ(h->n_images, 3);
    EXPECT_INT_EQ(h->n_refs, 4);
    EXPECT_INT_EQ(h->n_tokens, 16);
    EXPECT_INT_EQ(h->image_size, RT_S);
    EXPECT_INT_EQ(h->flags, SHARD_HAS_TEXT | SHARD_HAS_IDS);
    EXPECT_INT_EQ(h->tokenizer_hash, 0xabcdef);
    EXPECT_INT_EQ(h->file_bytes, s.size);
    EXPECT_INT_EQ(s.max_record_images, 2);
    EXPECT(h->off_pixels % SHARD_ALIGN == 0 && h->off_records % SHARD_ALIGN == 0 && h->off_text % SHARD_ALIGN == 0);
    // pixels bit-exact against the pipeline's uint8 stage
    for (int i = 0; i < 3; i++) {
        Image *g = geometry_of(rt_images[i], &cfg);
        EXPECTF(!memcmp(shard_image(&s, (uint64_t)i), g->data, (size_t)RT_S * RT_S * 3), "image %d differs", i);
        image_free(g);
    }
    // metadata
    const ShardRecord *r = s.records;
    EXPECT_INT_EQ(r[0].kind, DATA_LLAVA);
    EXPECT_INT_EQ(r[0].n_images, 1);
    EXPECT_INT_EQ(shard_record_images(&s, 0)[0], 0);
    EXPECT_INT_EQ(r[1].kind, DATA_POPE);
    EXPECT_INT_EQ(r[1].label, 1);
    EXPECT_INT_EQ(r[1].source_index, 42);
    EXPECT_INT_EQ(shard_record_images(&s, 1)[0], 1);
    EXPECT_INT_EQ(r[2].kind, DATA_MVC);
    EXPECT_INT_EQ(r[2].n_images, 2);
    EXPECT_INT_EQ(r[2].n_chosen_images, 1);
    EXPECT_INT_EQ(shard_record_images(&s, 2)[0], 0);
    EXPECT_INT_EQ(shard_record_images(&s, 2)[1], 2);
    EXPECT_INT_EQ(r[3].n_images, 0);
    // text
    EXPECT(!strcmp(shard_record_field(&s, 0, 0), "<image>\nWho is this?"));
    EXPECT(!strcmp(shard_record_field(&s, 0, 1), "An astronaut."));
    EXPECT(shard_record_field(&s, 0, 2) == NULL);
    EXPECT(!strcmp(shard_record_field(&s, 1, 0), "Is there a cat in the image?"));
    EXPECT(!strcmp(shard_record_field(&s, 2, 0), ""));
    EXPECT(!strcmp(shard_record_field(&s, 2, 3), "A cup of coffee."));
    EXPECT(!strcmp(shard_record_field(&s, 3, 1), "Hello \xc3\xa9"));
    // ids, masks, sequences
    EXPECT_INT_EQ(r[0].n_ids, 6);
    EXPECT_INT_EQ(s.ids[r[0].ids_first + 3], 32000);
    EXPECT_INT_EQ(s.mask[r[0].ids_first + 4], 1);
    EXPECT_INT_EQ(s.mask[r[0].ids_first + 3], 0);
    EXPECT_INT_EQ(r[1].n_seqs, 1);
    EXPECT_INT_EQ(s.mask[r[1].ids_first + 1], 0);  // no mask given: all 0
    EXPECT_INT_EQ(r[2].n_seqs, 2);
    EXPECT_INT_EQ(s.seqs[r[2].seq_first], 3);
    EXPECT_INT_EQ(s.seqs[r[2].seq_first + 1], 2);
    EXPECT_INT_EQ(s.ids[r[2].ids_first + 4], 13);
    EXPECT_INT_EQ(s.ids[r[3].ids_first + 2], 9);
    shard_close(&s);
    free(path);
}

TEST(shard_normalize_bit_exact) {
    // CLIP's statistics and a SigLIP-like config (mean = std = 0.5), and one without rescale
    PreprocessConfig cfgs[3] = {preprocess_config_clip(RT_S), preprocess_config_clip(RT_S), preprocess_config_clip(RT_S)};
    for (int c = 0; c < 3; c++) cfgs[1].image_mean[c] = cfgs[1].image_std[c] = 0.5;
    cfgs[2].do_rescale = 0;
    cfgs[2].image_mean[0] = 120.0;
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof(name), "norm%d.shard", k);
        char *path = tmp_path(name);
        write_round_trip_shard(path, &cfgs[k]);
        Shard s;
        shard_open_or_die(&s, path);
        ShardLut lut;
        shard_lut_init(&lut, s.h);
        float *got = xmalloc(sizeof(float) * 3 * RT_S * RT_S), *want = xmalloc(sizeof(float) * 3 * RT_S * RT_S);
        for (int i = 0; i < 3; i++) {
            Image *g = geometry_of(rt_images[i], &cfgs[k]);
            preprocess_normalize(&cfgs[k], g, want);
            shard_normalize(&lut, shard_image(&s, (uint64_t)i), RT_S, got);
            EXPECTF(!memcmp(got, want, sizeof(float) * 3 * RT_S * RT_S), "config %d image %d: normalized pixels differ", k, i);
            image_free(g);
        }
        // the loader hands out the same values
        ShardLoaderConfig lc = {4, 0, 1, 0};
        ShardLoader *l = shard_loader_open(&s, &lc, (ShardPos){0, 0, 0});
        const ShardBatch *b = shard_loader_next(l);
        EXPECT_INT_EQ(b->n, 4);
        EXPECT_INT_EQ(b->n_images, 3);  // image 0 is used twice but normalized once
        for (int slot = 0; slot < b->n_images; slot++) {
            Image *g = geometry_of(rt_images[b->images[slot]], &cfgs[k]);
            preprocess_normalize(&cfgs[k], g, want);
            EXPECTF(!memcmp(b->pixels + (size_t)slot * 3 * RT_S * RT_S, want, sizeof(float) * 3 * RT_S * RT_S),
                    "config %d slot %d differs", k, slot);
            image_free(g);
        }
        shard_loader_close(l);
        free(got); free(want);
        shard_close(&s);
        free(path);
    }
}

// Writes the first len bytes of data (plus extra junk bytes) as a new file.
static char *write_variant(const char *name, const uint8_t *data, size_t len, size_t extra) {
    char *path = tmp_path(name);
    uint8_t *buf = xcalloc(len + extra + 1, 1);
    memcpy(buf, data, len);
    write_file_atomic(path, buf, len + extra);
    free(buf);
    return path;
}

static void expect_open_error(const char *path, int verify, const char *piece) {
    Shard s;
    char err[512] = "";
    int rc = shard_open(&s, path, verify, err, sizeof(err));
    EXPECTF(rc == -1, "%s: opened, expected an error with \"%s\"", path, piece);
    EXPECTF(strstr(err, path) && strstr(err, piece), "message \"%s\" lacks the file or \"%s\"", err, piece);
    if (rc == 0) shard_close(&s);
}

// Recomputes both CRCs after a deliberate edit, so the structural checks behind them are reached.
static void fix_crcs(uint8_t *data, size_t len) {
    ShardHeader *h = (ShardHeader *)data;
    h->payload_crc = (uint32_t)crc32(crc32(0, NULL, 0), data + SHARD_HEADER_BYTES, (uInt)(len - SHARD_HEADER_BYTES));
    h->header_crc = 0;
    h->header_crc = (uint32_t)crc32(crc32(0, NULL, 0), data, SHARD_HEADER_BYTES);
}

TEST(shard_truncated_or_corrupted_is_a_clear_error) {
    PreprocessConfig cfg = preprocess_config_clip(RT_S);
    char *path = tmp_path("good.shard");
    write_round_trip_shard(path, &cfg);
    size_t len;
    uint8_t *data = (uint8_t *)read_file(path, &len);
    // truncated anywhere
    size_t cuts[] = {0, 100, SHARD_HEADER_BYTES, len / 2, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char *p = write_variant("cut.shard", data, cuts[i], 0);
        expect_open_error(p, 1, "truncated");
        free(p);
    }
    char *p = write_variant("long.shard", data, len, 3);
    expect_open_error(p, 1, "the header says");
    free(p);
    // a flipped pixel: the payload CRC catches it; without verification the structure is still sound
    uint8_t *bad = xmalloc(len);
    memcpy(bad, data, len);
    bad[SHARD_HEADER_BYTES + 1000] ^= 0x10;
    p = write_variant("flip.shard", bad, len, 0);
    expect_open_error(p, 1, "payload's CRC32");
    Shard s;
    char err[512];
    EXPECTF(shard_open(&s, p, 0, err, sizeof(err)) == 0, "%s", err);
    if (s.h) shard_close(&s);
    free(p);
    // a changed header field
    memcpy(bad, data, len);
    ((ShardHeader *)bad)->n_records = 5;
    p = write_variant("hdr.shard", bad, len, 0);
    expect_open_error(p, 1, "header's CRC32");
    free(p);
    // not a shard, another version
    memcpy(bad, data, len);
    memcpy(bad, "NOTSHARD", 8);
    p = write_variant("magic.shard", bad, len, 0);
    expect_open_error(p, 1, "not a vlm shard");
    free(p);
    memcpy(bad, data, len);
    ((ShardHeader *)bad)->version = 99;
    fix_crcs(bad, len);
    p = write_variant("version.shard", bad, len, 0);
    expect_open_error(p, 1, "version 99");
    free(p);
    // records pointing outside their sections, with consistent checksums: caught by the structural checks
    memcpy(bad, data, len);
    ShardHeader *h = (ShardHeader *)bad;
    ShardRecord *recs = (ShardRecord *)(bad + h->off_records);
    recs[1].n_images = 9;
    fix_crcs(bad, len);
    p = write_variant("rec.shard", bad, len, 0);
    expect_open_error(p, 1, "record 1's images are out of range");
    free(p);
    memcpy(bad, data, len);
    ((uint32_t *)(bad + h->off_refs))[2] = 3;  // image 3 of 3
    fix_crcs(bad, len);
    p = write_variant("ref.shard", bad, len, 0);
    expect_open_error(p, 1, "refers to image 3 of 3");
    free(p);
    memcpy(bad, data, len);
    recs = (ShardRecord *)(bad + h->off_records);
    recs[3].n_fields = 3;
    fix_crcs(bad, len);
    p = write_variant("text.shard", bad, len, 0);
    expect_open_error(p, 1, "record 3's text does not hold 3 strings");
    free(p);
    memcpy(bad, data, len);
    h->off_text = h->file_bytes + 64;
    fix_crcs(bad, len);
    p = write_variant("section.shard", bad, len, 0);
    expect_open_error(p, 1, "section text");
    free(p);
    p = tmp_path("missing.shard");
    expect_open_error(p, 1, "cannot open");
    free(p);
    free(bad);
    free(data);
    free(path);
}

// n records over n_images tiny random images; record i uses image i % n_images (and, when two is set,
// also image (i + 1) % n_images).
static void write_order_shard(const char *path, int n, int n_images, int two) {
    ShardSpec spec = {4, SHARD_HAS_TEXT, NULL, 0};
    ShardWriter *w = shard_writer_open(path, &spec);
    AugRng rng;
    augrng_seed(&rng, 5);
    for (int i = 0; i < n_images; i++) {
        uint8_t px[48];
        for (int k = 0; k < 48; k++) px[k] = (uint8_t)augrng_next(&rng);
        shard_writer_add_image(w, px);
    }
    for (int i = 0; i < n; i++) {
        uint32_t im[2] = {(uint32_t)(i % n_images), (uint32_t)((i + 1) % n_images)};
        char text[32];
        snprintf(text, sizeof(text), "record %d", i);
        const char *f[1] = {text};
        ShardRecordIn r = {.kind = DATA_POPE, .source_index = i, .images = im, .n_images = two ? 2 : 1, .fields = f, .n_fields = 1};
        shard_writer_add_record(w, &r);
    }
    shard_writer_close(w);
}

// The record indices of the first n_batches batches.
static void collect(const Shard *s, int batch, int shuffle, int workers, ShardPos start, int n_batches, uint32_t *out) {
    ShardLoaderConfig lc = {batch, shuffle, workers, 0};
    ShardLoader *l = shard_loader_open(s, &lc, start);
    ShardPos expect_pos = start;
    for (int k = 0; k < n_batches; k++) {
        const ShardBatch *b = shard_loader_next(l);
        EXPECT_INT_EQ(b->seq, k);
        EXPECT(b->pos.epoch == expect_pos.epoch && b->pos.index == expect_pos.index);  // batches tile the stream
        expect_pos = b->next;
        memcpy(out + (size_t)k * batch, b->records, sizeof(uint32_t) * (size_t)batch);
    }
    shard_loader_close(l);
}

TEST(shard_shuffle_is_seeded_and_deterministic) {
    char *path = tmp_path("order.shard");
    enum { N = 37, B = 5, NB = 23 };  // 115 records: three epochs and a bit; batches straddle epochs
    write_order_shard(path, N, N, 0);
    Shard s;
    shard_open_or_die(&s, path);
    uint32_t a[NB * B], b[NB * B], c[NB * B], d[NB * B];
    collect(&s, B, 1, 2, (ShardPos){7, 0, 0}, NB, a);
    collect(&s, B, 1, 0, (ShardPos){7, 0, 0}, NB, b);  // no threads: the same stream
    collect(&s, B, 1, 4, (ShardPos){7, 0, 0}, NB, c);  // more threads than slots to fill: the same stream
    EXPECT(!memcmp(a, b, sizeof(a)));
    EXPECT(!memcmp(a, c, sizeof(a)));
    collect(&s, B, 1, 1, (ShardPos){8, 0, 0}, NB, d);
    EXPECT(memcmp(a, d, sizeof(a)) != 0);
    // each epoch is a permutation, and the epochs differ
    for (int e = 0; e < 3; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) seen[a[e * N + i]]++;
        int all = 1;
        for (int i = 0; i < N; i++) all &= seen[i] == 1;
        EXPECTF(all, "epoch %d is not a permutation", e);
    }
    EXPECT(memcmp(a, a + N, sizeof(uint32_t) * N) != 0);
    // the loader's order is shard_order_at's
    for (int i = 0; i < NB * B; i++) {
        ShardPos p = shard_pos_advance(&s, (ShardPos){7, 0, 0}, (uint64_t)i);
        if (shard_order_at(&s, 1, p) != a[i]) { test_fail(__FILE__, __LINE__, "position %d differs", i); break; }
    }
    // unshuffled: file order, epoch after epoch
    collect(&s, B, 0, 1, (ShardPos){7, 0, 0}, NB, d);
    int in_order = 1;
    for (int i = 0; i < NB * B; i++) in_order &= d[i] == (uint32_t)(i % N);
    EXPECT(in_order);
    shard_close(&s);
    free(path);
}

TEST(shard_resume_continues_with_the_same_batch) {
    char *path = tmp_path("resume.shard");
    enum { N = 29, B = 4 };
    write_order_shard(path, N, 11, 1);
    Shard s;
    shard_open_or_die(&s, path);
    size_t plane = 3 * 4 * 4;
    for (int cut = 0; cut < 12; cut += 5) {
        // run A: 12 batches; a checkpoint saved after batch `cut` (its `next`)
        ShardLoaderConfig la = {B, 1, 2, 0};
        ShardLoader *l = shard_loader_open(&s, &la, (ShardPos){123, 0, 0});
        uint32_t rec[12][B], imgs[12][2 * B];
        float *px = xmalloc(sizeof(float) * 12 * 2 * B * plane);
        int n_img[12];
        ShardPos saved = {0, 0, 0};
        for (int k = 0; k < 12; k++) {
            const ShardBatch *b = shard_loader_next(l);
            memcpy(rec[k], b->records, sizeof(rec[k]));
            n_img[k] = b->n_images;
            memcpy(imgs[k], b->images, sizeof(uint32_t) * (size_t)b->n_images);
            memcpy(px + (size_t)k * 2 * B * plane, b->pixels, sizeof(float) * plane * (size_t)b->n_images);
            if (k == cut) saved = b->next;
        }
        shard_loader_close(l);
        // run B resumes there with another thread count and continues with batch cut + 1
        ShardLoaderConfig lb = {B, 1, cut % 2 ? 0 : 3, 0};
        l = shard_loader_open(&s, &lb, saved);
        for (int k = cut + 1; k < 12; k++) {
            const ShardBatch *b = shard_loader_next(l);
            EXPECTF(!memcmp(b->records, rec[k], sizeof(rec[k])), "cut %d: batch %d's records differ after resume", cut, k);
            EXPECT_INT_EQ(b->n_images, n_img[k]);
            EXPECT(!memcmp(b->images, imgs[k], sizeof(uint32_t) * (size_t)n_img[k]));
            EXPECT(!memcmp(b->pixels, px + (size_t)k * 2 * B * plane, sizeof(float) * plane * (size_t)n_img[k]));
        }
        shard_loader_close(l);
        free(px);
    }
    // positions wrap into the next epoch
    ShardPos p = shard_pos_advance(&s, (ShardPos){1, 0, N - 1}, 2);
    EXPECT(p.epoch == 1 && p.index == 1);
    shard_close(&s);
    free(path);
}

TEST(shard_batch_shares_images_between_records) {
    char *path = tmp_path("share.shard");
    write_order_shard(path, 12, 3, 1);  // record i uses images i % 3 and (i + 1) % 3
    Shard s;
    shard_open_or_die(&s, path);
    ShardLut lut;
    shard_lut_init(&lut, s.h);
    ShardLoaderConfig lc = {6, 1, 1, 0};
    ShardLoader *l = shard_loader_open(&s, &lc, (ShardPos){3, 0, 0});
    float want[48];
    for (int k = 0; k < 4; k++) {
        const ShardBatch *b = shard_loader_next(l);
        EXPECT_INT_EQ(b->n_images, 3);  // 6 records x 2 images, 3 distinct
        for (int j = 0; j < b->n; j++) {
            const uint32_t *refs = shard_record_images(&s, b->records[j]);
            EXPECT_INT_EQ(b->slot_first[j + 1] - b->slot_first[j], 2);
            for (int q = 0; q < 2; q++) {
                uint32_t slot = b->record_slots[b->slot_first[j] + q];
                EXPECT_INT_EQ(b->images[slot], refs[q]);
                shard_normalize(&lut, shard_image(&s, refs[q]), 4, want);
                EXPECT(!memcmp(b->pixels + slot * 48, want, sizeof(want)));
            }
        }
    }
    shard_loader_close(l);
    shard_close(&s);
    free(path);
}

// ---- vlm data pack / bench ---------------------------------------------------------------------------

// Packs with the CLI; returns the exit status, stdout and stderr (malloc'd).
static int pack(const char *input, const char *kind, const char *out, const char *extra, char **o, char **e) {
    char args[2048];
    char *images = path_join(test_shared_data(), "images");
    snprintf(args, sizeof(args), "data pack --input %s --kind %s --images %s --out %s %s", input, kind, images, out, extra);
    free(images);
    return test_run_vlm(args, o, e);
}

static void expect_image(const Shard *s, uint32_t i, const char *name, const PreprocessConfig *cfg) {
    Image *g = geometry_of(name, cfg);
    int S = (int)s->h->image_size;
    EXPECT(g->width == S && g->height == S);
    EXPECTF(!memcmp(shard_image(s, i), g->data, (size_t)S * S * 3), "shard image %u is not %s's pixels", i, name);
    image_free(g);
}

TEST(shard_pack_cli_llava) {
    char *in = test_write_tmp("pack_llava.json",
        "[{\"id\": \"a\", \"image\": \"astronaut.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWho?\"},"
        " {\"from\": \"gpt\", \"value\": \"An astronaut.\"}]},\n"
        " {\"id\": \"b\", \"image\": \"chelsea.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat?\"},"
        " {\"from\": \"gpt\", \"value\": \"A cat.\"}, {\"from\": \"human\", \"value\": \"Color?\"}, {\"from\": \"gpt\", \"value\": \"Orange.\"}]},\n"
        " {\"id\": \"c\", \"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello\"}]},\n"
        " {\"id\": \"d\", \"image\": \"astronaut.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"Again?\"},"
        " {\"from\": \"gpt\", \"value\": \"Yes.\"}]}]");
    for (int pad = 0; pad < 2; pad++) {
        char *out = tmp_path(pad ? "pack_llava_pad.shard" : "pack_llava.shard"), *o, *e;
        int rc = pack(in, "llava", out, pad ? "--size 40 --pad" : "--size 40", &o, &e);
        EXPECTF(rc == 0, "exit %d: %s", rc, e);
        EXPECTF(strstr(o, "4 records, 2 images (40x40") != NULL, "stdout: %s", o);
        Shard s;
        shard_open_or_die(&s, out);
        EXPECT_INT_EQ(s.h->n_records, 4);
        EXPECT_INT_EQ(s.h->n_images, 2);  // astronaut.png is stored once
        EXPECT_INT_EQ(s.h->flags, SHARD_HAS_TEXT);
        PreprocessConfig cfg = preprocess_config_clip(40);
        cfg.do_pad = pad;
        expect_image(&s, 0, "astronaut.png", &cfg);
        expect_image(&s, 1, "chelsea.png", &cfg);
        EXPECT_INT_EQ(s.records[3].n_images, 1);
        EXPECT_INT_EQ(shard_record_images(&s, 3)[0], 0);
        EXPECT_INT_EQ(s.records[2].n_images, 0);
        EXPECT_INT_EQ(s.records[1].n_fields, 4);
        EXPECT(!strcmp(shard_record_field(&s, 1, 3), "Orange."));
        EXPECT(!strcmp(shard_record_field(&s, 0, 0), "<image>\nWho?"));
        EXPECT_INT_EQ(s.records[2].kind, DATA_LLAVA);
        EXPECT_INT_EQ(s.records[3].source_index, 3);
        shard_close(&s);
        free(o); free(e); free(out);
    }
    // the default output name
    char *o, *e;
    char args[1024];
    char *images = path_join(test_shared_data(), "images");
    snprintf(args, sizeof(args), "data pack --input %s --kind llava --images %s --size 16", in, images);
    EXPECT_INT_EQ(test_run_vlm(args, &o, &e), 0);
    char *def = tmp_path("pack_llava.shard.bin");
    EXPECTF(file_exists(def), "%s not written: %s", def, e);
    free(def); free(images); free(o); free(e); free(in);
}

TEST(shard_pack_cli_pope_pref_mvc) {
    char *in = test_write_tmp("pack_pope.json",
        "{\"question_id\": 11, \"image\": \"coffee.png\", \"text\": \"Is there a cup in the image?\", \"label\": \"yes\"}\n"
        "{\"question_id\": 12, \"image\": \"coffee.png\", \"text\": \"Is there a dog in the image?\", \"label\": \"no\"}\n"
        "{\"question_id\": 13, \"image\": \"chelsea.png\", \"text\": \"Is there a cat in the image?\", \"label\": \"yes\"}\n");
    char *out = tmp_path("pack_pope.shard"), *o, *e;
    int rc = pack(in, "pope", out, "--size 24", &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    Shard s;
    shard_open_or_die(&s, out);
    EXPECT_INT_EQ(s.h->n_records, 3);
    EXPECT_INT_EQ(s.h->n_images, 2);
    EXPECT_INT_EQ(s.records[0].label, 1);
    EXPECT_INT_EQ(s.records[1].label, 0);
    EXPECT_INT_EQ(s.records[2].source_index, 13);
    EXPECT_INT_EQ(s.records[2].kind, DATA_POPE);
    EXPECT(!strcmp(shard_record_field(&s, 1, 0), "Is there a dog in the image?"));
    PreprocessConfig cfg = preprocess_config_clip(24);
    expect_image(&s, 0, "coffee.png", &cfg);
    shard_close(&s);
    free(o); free(e); free(out); free(in);

    in = test_write_tmp("pack_pref.jsonl",
        "{\"image\": \"coffee.png\", \"prompt\": \"<image>\\nWhat is this?\", \"chosen\": \"Coffee.\", \"rejected\": \"Tea.\"}\n"
        "{\"prompt\": \"Say hi.\", \"chosen\": \"Hi.\", \"rejected\": \"No.\"}\n");
    out = tmp_path("pack_pref.shard");
    rc = pack(in, "pref", out, "--size 24", &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    shard_open_or_die(&s, out);
    EXPECT_INT_EQ(s.h->n_records, 2);
    EXPECT_INT_EQ(s.h->n_images, 1);
    EXPECT(!strcmp(shard_record_field(&s, 0, 2), "Tea."));
    EXPECT_INT_EQ(s.records[1].n_images, 0);
    shard_close(&s);
    free(o); free(e); free(out); free(in);

    in = test_write_tmp("pack_mvc.json",
        "[{\"system_prompt\": \"sys\", \"instruction_prompt\": \"Which way does the motorcycle face?\",\n"
        "  \"chosen_images\": [\"motorcycle_left.png\"], \"rejected_images\": [\"motorcycle_right.png\"],\n"
        "  \"chosen_response\": \"Left view.\", \"rejected_response\": \"Right view.\"},\n"
        " {\"instruction_prompt\": \"Compare.\", \"chosen_images\": [\"motorcycle_right.png\", \"coffee.png\"],\n"
        "  \"rejected_images\": [\"motorcycle_left.png\"], \"chosen_response\": \"A.\", \"rejected_response\": \"B.\"}]");
    out = tmp_path("pack_mvc.shard");
    rc = pack(in, "mvc", out, "--size 24 --pad", &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    shard_open_or_die(&s, out);
    EXPECT_INT_EQ(s.h->n_records, 2);
    EXPECT_INT_EQ(s.h->n_images, 3);
    EXPECT_INT_EQ(s.records[0].n_images, 2);
    EXPECT_INT_EQ(s.records[0].n_chosen_images, 1);
    EXPECT_INT_EQ(s.records[1].n_images, 3);
    EXPECT_INT_EQ(s.records[1].n_chosen_images, 2);
    EXPECT_INT_EQ(shard_record_images(&s, 1)[0], 1);
    EXPECT_INT_EQ(shard_record_images(&s, 1)[2], 0);
    EXPECT(!strcmp(shard_record_field(&s, 0, 0), "sys"));
    EXPECT(!strcmp(shard_record_field(&s, 1, 0), ""));
    EXPECT(!strcmp(shard_record_field(&s, 1, 3), "B."));
    cfg.do_pad = 1;
    expect_image(&s, 1, "motorcycle_right.png", &cfg);
    EXPECT_INT_EQ(s.max_record_images, 3);
    shard_close(&s);
    free(o); free(e); free(out); free(in);
}

TEST(shard_pack_cli_bad_input) {
    char *o, *e;
    // a bad record: named, non-zero exit, nothing written
    char *in = test_write_tmp("pack_bad.json",
        "[{\"image\": \"coffee.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]},\n"
        " {\"image\": \"coffee.png\", \"conversations\": [{\"from\": \"gpt\", \"value\": \"a\"}]}]");
    char *out = tmp_path("pack_bad.shard"), *tmp = tmp_path("pack_bad.shard.tmp");
    int rc = pack(in, "llava", out, "--size 16", &o, &e);
    EXPECT(rc != 0);
    EXPECTF(strstr(e, "pack_bad.json: record 1") != NULL, "stderr: %s", e);
    EXPECT(!file_exists(out) && !file_exists(tmp));
    free(o); free(e);
    rc = pack(in, "llava", out, "--size 16 --skip-bad", &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    EXPECTF(strstr(o, "1 record, 1 image") && strstr(o, "1 bad record skipped"), "stdout: %s", o);
    free(o); free(e); free(in); free(out); free(tmp);
    // an unreadable image: names the record and the file
    out = tmp_path("pack_badimg.shard");
    tmp = tmp_path("pack_badimg.shard.tmp");
    in = test_write_tmp("pack_badimg.jsonl",
        "{\"image\": \"coffee.png\", \"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
        "{\"image\": \"truncated.jpg\", \"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
        "{\"image\": \"no_such.png\", \"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n");
    rc = pack(in, "pref", out, "--size 16", &o, &e);
    EXPECT(rc != 0);
    EXPECTF(strstr(e, "pack_badimg.jsonl:2") && strstr(e, "truncated.jpg"), "stderr: %s", e);
    EXPECT(!file_exists(out) && !file_exists(tmp));
    free(o); free(e);
    rc = pack(in, "pref", out, "--size 16 --skip-bad", &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    EXPECTF(strstr(o, "2 bad records skipped (2 unreadable images)"), "stdout: %s", o);
    EXPECTF(strstr(e, "pack_badimg.jsonl:3") && strstr(e, "no_such.png"), "stderr: %s", e);
    Shard s;
    shard_open_or_die(&s, out);
    EXPECT_INT_EQ(s.h->n_records, 1);
    EXPECT_INT_EQ(s.h->n_images, 1);
    shard_close(&s);
    free(o); free(e); free(in);
    // usage errors
    EXPECT(test_run_vlm("data pack --input x.json", &o, &e) != 0);
    EXPECTF(strstr(e, "--kind is required") != NULL, "stderr: %s", e);
    free(o); free(e);
    EXPECT(test_run_vlm("data pack --input x.json --kind sft", &o, &e) != 0);
    EXPECTF(strstr(e, "llava, pref, mvc or pope") != NULL, "stderr: %s", e);
    free(o); free(e);
    EXPECT_INT_EQ(test_run_vlm("data frobnicate", &o, &e), 2);
    EXPECTF(strstr(e, "unknown subcommand") != NULL, "stderr: %s", e);
    free(o); free(e);
    EXPECT_INT_EQ(test_run_vlm("data pack --help", &o, &e), 0);
    EXPECT(strstr(o, "--skip-bad") != NULL);
    free(o); free(e); free(out); free(tmp);
}

TEST(shard_bench_cli_runs) {
    char *o, *e, args[512];
    snprintf(args, sizeof(args), "data bench --records 24 --size 32 --batch 4 --epochs 2 --repeat 1 --shard %s/bench.shard",
             test_tmpdir());
    int rc = test_run_vlm(args, &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    EXPECTF(strstr(o, "median:") && strstr(o, "images/s"), "stdout: %s", o);
    free(o); free(e);
}

TEST(shard_normalize_large_images_bit_exact) {
    // large images take the streaming-store path (aligned, S even) or the plain one (odd S, unaligned)
    PreprocessConfig cfg = preprocess_config_clip(336);
    ShardHeader h;
    memset(&h, 0, sizeof(h));
    h.do_rescale = 1;
    h.rescale_factor = cfg.rescale_factor;
    h.do_normalize = 1;
    for (int c = 0; c < 3; c++) { h.image_mean[c] = cfg.image_mean[c]; h.image_std[c] = cfg.image_std[c]; }
    ShardLut lut;
    shard_lut_init(&lut, &h);
    AugRng rng;
    augrng_seed(&rng, 9);
    int sizes[2] = {336, 335};
    for (int k = 0; k < 2; k++) {
        int S = sizes[k];
        size_t n = (size_t)3 * S * S;
        Image *im = image_new(S, S);
        for (size_t i = 0; i < n; i++) im->data[i] = (uint8_t)augrng_next(&rng);
        float *want = xmalloc(sizeof(float) * n), *got = xmalloc(sizeof(float) * (n + 4));
        preprocess_normalize(&cfg, im, want);
        for (int off = 0; off < 2; off++) {
            memset(got, 0, sizeof(float) * (n + 4));
            shard_normalize(&lut, im->data, S, got + off);
            EXPECTF(!memcmp(got + off, want, sizeof(float) * n), "S %d, offset %d: differs", S, off);
        }
        free(want); free(got);
        image_free(im);
    }
}
