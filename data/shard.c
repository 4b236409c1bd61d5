#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "../util/common.h"
#include "augment.h"
#include "datasets.h"
#include "prefetch.h"

_Static_assert(sizeof(ShardHeader) == SHARD_HEADER_BYTES, "ShardHeader must be 256 bytes");
_Static_assert(sizeof(ShardRecord) == 72, "ShardRecord layout is part of the file format");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "shards are little-endian and read in place");

// zlib's crc32 takes a uInt length; feed it in pieces so multi-GB sections are fine everywhere.
static uint32_t crc_update(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n) {
        size_t k = n < (1u << 30) ? n : (1u << 30);
        crc = (uint32_t)crc32(crc, p, (uInt)k);
        p += k;
        n -= k;
    }
    return crc;
}

static uint32_t header_crc(const ShardHeader *h) {
    ShardHeader c = *h;
    c.header_crc = 0;
    return crc_update((uint32_t)crc32(0, NULL, 0), &c, sizeof(c));
}

// ---- writer ----------------------------------------------------------------------------------------

typedef struct { uint8_t *p; size_t n, cap; } Buf;

static void buf_append(Buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

struct ShardWriter {
    char *path, *tmp;
    FILE *f;
    ShardHeader h;
    uint64_t offset;    // bytes written so far
    uint32_t crc;       // running CRC32 of the payload written so far
    Buf records, refs, seqs, ids, mask, text;
};

static void writer_put(ShardWriter *w, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, w->f) != n) fatal("%s: write failed: %s", w->tmp, strerror(errno));
    w->crc = crc_update(w->crc, data, n);
    w->offset += n;
}

static void writer_align(ShardWriter *w) {
    static const uint8_t zeros[SHARD_ALIGN];
    size_t pad = (SHARD_ALIGN - w->offset % SHARD_ALIGN) % SHARD_ALIGN;
    writer_put(w, zeros, pad);
}

ShardWriter *shard_writer_open(const char *path, const ShardSpec *spec) {
    if (spec->image_size < 1 || spec->image_size > 65536) fatal("%s: image size %d is outside 1..65536", path, spec->image_size);
    if (!(spec->flags & (SHARD_HAS_TEXT | SHARD_HAS_IDS)) || (spec->flags & ~(uint32_t)(SHARD_HAS_TEXT | SHARD_HAS_IDS)))
        fatal("%s: shard flags 0x%x: need SHARD_HAS_TEXT and/or SHARD_HAS_IDS", path, spec->flags);
    ShardWriter *w = xcalloc(1, sizeof(ShardWriter));
    w->path = xstrdup(path);
    w->tmp = xmalloc(strlen(path) + 8);
    sprintf(w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) fatal("%s: cannot create: %s", w->tmp, strerror(errno));
    ShardHeader *h = &w->h;
    memcpy(h->magic, SHARD_MAGIC, 8);
    h->version = SHARD_VERSION;
    h->header_bytes = SHARD_HEADER_BYTES;
    h->flags = spec->flags;
    h->image_size = (uint32_t)spec->image_size;
    h->tokenizer_hash = spec->tokenizer_hash;
    PreprocessConfig clip = preprocess_config_clip(spec->image_size);
    const PreprocessConfig *n = spec->norm ? spec->norm : &clip;
    h->do_rescale = (uint32_t)n->do_rescale;
    h->rescale_factor = n->rescale_factor;
    h->do_normalize = (uint32_t)n->do_normalize;
    for (int c = 0; c < 3; c++) { h->image_mean[c] = n->image_mean[c]; h->image_std[c] = n->image_std[c]; }
    // the header is written last, when the counts and checksums are known; reserve its bytes now
    static const uint8_t zeros[SHARD_HEADER_BYTES];
    if (fwrite(zeros, 1, sizeof(zeros), w->f) != sizeof(zeros)) fatal("%s: write failed: %s", w->tmp, strerror(errno));
    w->offset = SHARD_HEADER_BYTES;
    w->crc = (uint32_t)crc32(0, NULL, 0);
    h->off_pixels = w->offset;  // pixels stream straight to the file
    return w;
}

uint32_t shard_writer_add_image(ShardWriter *w, const uint8_t *hwc) {
    size_t S = w->h.image_size;
    if (w->h.n_images >= UINT32_MAX) fatal("%s: too many images for one shard", w->path);
    writer_put(w, hwc, S * S * 3);
    return (uint32_t)w->h.n_images++;
}

void shard_writer_add_record(ShardWriter *w, const ShardRecordIn *in) {
    ShardHeader *h = &w->h;
    ShardRecord r;
    memset(&r, 0, sizeof(r));
    r.kind = in->kind;
    r.label = in->label;
    r.n_chosen_images = in->n_chosen_images;
    r.source_index = in->source_index;
    CHECK_OR_DIE(in->n_images >= 0 && in->n_chosen_images <= (uint32_t)in->n_images,
                 "%s: record %llu: bad image counts", w->path, (unsigned long long)h->n_records);
    r.n_images = (uint32_t)in->n_images;
    r.image_first = h->n_refs;
    for (int i = 0; i < in->n_images; i++)
        CHECK_OR_DIE(in->images[i] < h->n_images, "%s: record %llu refers to image %u, %llu added so far", w->path,
                     (unsigned long long)h->n_records, in->images[i], (unsigned long long)h->n_images);
    buf_append(&w->refs, in->images, sizeof(uint32_t) * (size_t)in->n_images);
    h->n_refs += (uint64_t)in->n_images;
    if (h->flags & SHARD_HAS_TEXT) {
        r.text_first = h->text_bytes;
        r.n_fields = (uint32_t)in->n_fields;
        for (int f = 0; f < in->n_fields; f++) buf_append(&w->text, in->fields[f], strlen(in->fields[f]) + 1);
        uint64_t bytes = w->text.n - h->text_bytes;
        if (bytes > UINT32_MAX) fatal("%s: record %llu: text over 4 GB", w->path, (unsigned long long)h->n_records);
        r.text_bytes = (uint32_t)bytes;
        h->text_bytes = w->text.n;
    } else CHECK_OR_DIE(in->n_fields == 0, "%s: text fields given to a shard without SHARD_HAS_TEXT", w->path);
    if (h->flags & SHARD_HAS_IDS) {
        r.ids_first = h->n_tokens;
        r.n_ids = (uint32_t)in->n_ids;
        buf_append(&w->ids, in->ids, sizeof(int32_t) * (size_t)in->n_ids);
        if (in->mask) buf_append(&w->mask, in->mask, (size_t)in->n_ids);
        else for (int i = 0; i < in->n_ids; i++) buf_append(&w->mask, "", 1);
        h->n_tokens += (uint64_t)in->n_ids;
        r.seq_first = h->n_seqs;
        uint64_t total = 0;
        if (in->seq_lens) {
            for (int q = 0; q < in->n_seqs; q++) total += in->seq_lens[q];
            buf_append(&w->seqs, in->seq_lens, sizeof(uint32_t) * (size_t)in->n_seqs);
            r.n_seqs = (uint32_t)in->n_seqs;
        } else {
            uint32_t one = (uint32_t)in->n_ids;
            buf_append(&w->seqs, &one, sizeof(one));
            r.n_seqs = 1;
            total = one;
        }
        CHECK_OR_DIE(total == (uint64_t)in->n_ids, "%s: record %llu: sequence lengths sum to %llu, not %d ids", w->path,
                     (unsigned long long)h->n_records, (unsigned long long)total, in->n_ids);
        h->n_seqs += r.n_seqs;
    } else CHECK_OR_DIE(in->n_ids == 0, "%s: ids given to a shard without SHARD_HAS_IDS", w->path);
    buf_append(&w->records, &r, sizeof(r));
    h->n_records++;
}

static void free_writer(ShardWriter *w) {
    free(w->records.p); free(w->refs.p); free(w->seqs.p); free(w->ids.p); free(w->mask.p); free(w->text.p);
    free(w->path); free(w->tmp);
    free(w);
}

void shard_writer_close(ShardWriter *w) {
    ShardHeader *h = &w->h;
    // sections in file order; pixels are already written
    writer_align(w); h->off_records = w->offset; writer_put(w, w->records.p, w->records.n);
    writer_align(w); h->off_refs = w->offset; writer_put(w, w->refs.p, w->refs.n);
    writer_align(w); h->off_seqs = w->offset; writer_put(w, w->seqs.p, w->seqs.n);
    writer_align(w); h->off_ids = w->offset; writer_put(w, w->ids.p, w->ids.n);
    writer_align(w); h->off_mask = w->offset; writer_put(w, w->mask.p, w->mask.n);
    writer_align(w); h->off_text = w->offset; writer_put(w, w->text.p, w->text.n);
    writer_align(w);
    h->file_bytes = w->offset;
    h->payload_crc = w->crc;
    h->header_crc = header_crc(h);
    if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof(*h), w->f) != sizeof(*h))
        fatal("%s: write failed: %s", w->tmp, strerror(errno));
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) fatal("%s: flush failed: %s", w->tmp, strerror(errno));
    if (fclose(w->f) != 0) fatal("%s: close failed: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0) fatal("%s: cannot rename to %s: %s", w->tmp, w->path, strerror(errno));
    free_writer(w);
}

void shard_writer_abort(ShardWriter *w) {
    fclose(w->f);
    unlink(w->tmp);
    free_writer(w);
}

// ---- reader ----------------------------------------------------------------------------------------

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

// A section of count elements of elem bytes at off lies inside the payload, aligned, after `*end`.
static int check_section(const Shard *s, const char *name, uint64_t off, uint64_t count, uint64_t elem, uint64_t *end,
                         char *err, size_t errlen) {
    uint64_t size = s->h->file_bytes;
    if (off % SHARD_ALIGN || off < *end || off > size)
        return fail(err, errlen, "%s: corrupted shard: section %s at offset %llu is out of place", s->path, name,
                    (unsigned long long)off);
    if (count > (size - off) / elem)
        return fail(err, errlen, "%s: corrupted shard: section %s (%llu x %llu bytes at %llu) runs past the end of the file (%llu bytes)",
                    s->path, name, (unsigned long long)count, (unsigned long long)elem, (unsigned long long)off,
                    (unsigned long long)size);
    *end = off + count * elem;
    return 0;
}

// Every record's ranges lie inside the sections, so readers can index without checks.
static int check_records(Shard *s, char *err, size_t errlen) {
    const ShardHeader *h = s->h;
    int has_text = h->flags & SHARD_HAS_TEXT, has_ids = h->flags & SHARD_HAS_IDS;
    s->max_record_images = 0;
    for (uint64_t i = 0; i < h->n_records; i++) {
        const ShardRecord *r = &s->records[i];
        unsigned long long ri = (unsigned long long)i;
        if (r->kind < DATA_LLAVA || r->kind > DATA_POPE) return fail(err, errlen, "%s: corrupted shard: record %llu has kind %u", s->path, ri, r->kind);
        if (r->image_first > h->n_refs || r->n_images > h->n_refs - r->image_first || r->n_chosen_images > r->n_images)
            return fail(err, errlen, "%s: corrupted shard: record %llu's images are out of range", s->path, ri);
        for (uint32_t k = 0; k < r->n_images; k++)
            if (s->refs[r->image_first + k] >= h->n_images)
                return fail(err, errlen, "%s: corrupted shard: record %llu refers to image %u of %llu", s->path, ri,
                            s->refs[r->image_first + k], (unsigned long long)h->n_images);
        if ((int)r->n_images > s->max_record_images) s->max_record_images = (int)r->n_images;
        if (has_ids) {
            if (r->ids_first > h->n_tokens || r->n_ids > h->n_tokens - r->ids_first || r->seq_first > h->n_seqs ||
                r->n_seqs > h->n_seqs - r->seq_first)
                return fail(err, errlen, "%s: corrupted shard: record %llu's ids are out of range", s->path, ri);
            uint64_t total = 0;
            for (uint32_t q = 0; q < r->n_seqs; q++) total += s->seqs[r->seq_first + q];
            if (total != r->n_ids)
                return fail(err, errlen, "%s: corrupted shard: record %llu's sequences hold %llu ids, not %u", s->path, ri,
                            (unsigned long long)total, r->n_ids);
        } else if (r->n_ids || r->n_seqs) return fail(err, errlen, "%s: corrupted shard: record %llu has ids but the shard has none", s->path, ri);
        if (has_text) {
            if (r->text_first > h->text_bytes || r->text_bytes > h->text_bytes - r->text_first)
                return fail(err, errlen, "%s: corrupted shard: record %llu's text is out of range", s->path, ri);
            const char *t = s->text + r->text_first;
            uint32_t nuls = 0;
            for (uint32_t b = 0; b < r->text_bytes; b++) nuls += t[b] == 0;
            if (nuls != r->n_fields || (r->text_bytes && t[r->text_bytes - 1] != 0))
                return fail(err, errlen, "%s: corrupted shard: record %llu's text does not hold %u strings", s->path, ri, r->n_fields);
        } else if (r->n_fields || r->text_bytes) return fail(err, errlen, "%s: corrupted shard: record %llu has text but the shard has none", s->path, ri);
    }
    for (uint64_t t = 0; t < (has_ids ? h->n_tokens : 0); t++) {
        if (s->ids[t] < 0) return fail(err, errlen, "%s: corrupted shard: token %llu has id %d", s->path, (unsigned long long)t, s->ids[t]);
        if (s->mask[t] > 1) return fail(err, errlen, "%s: corrupted shard: token %llu has mask %u", s->path, (unsigned long long)t, s->mask[t]);
    }
    return 0;
}

static int validate(Shard *s, int verify_checksum, char *err, size_t errlen) {
    const char *path = s->path;
    if (s->size < SHARD_HEADER_BYTES)
        return fail(err, errlen, "%s: truncated shard: %zu bytes, less than the %d-byte header", path, s->size, SHARD_HEADER_BYTES);
    const ShardHeader *h = s->h = (const ShardHeader *)s->map;
    if (memcmp(h->magic, SHARD_MAGIC, 8)) return fail(err, errlen, "%s: not a vlm shard (no \"%s\" magic at the start)", path, SHARD_MAGIC);
    if (h->version != SHARD_VERSION)
        return fail(err, errlen, "%s: shard version %u, this build reads version %d (pack it again with vlm data pack)", path,
                    h->version, SHARD_VERSION);
    if (h->header_crc != header_crc(h)) return fail(err, errlen, "%s: corrupted shard: the header's CRC32 does not match", path);
    if (h->header_bytes != SHARD_HEADER_BYTES) return fail(err, errlen, "%s: corrupted shard: header size %u", path, h->header_bytes);
    if (s->size < h->file_bytes)
        return fail(err, errlen, "%s: truncated shard: the header says %llu bytes, the file has %zu (an interrupted write or copy?)",
                    path, (unsigned long long)h->file_bytes, s->size);
    if (s->size > h->file_bytes)
        return fail(err, errlen, "%s: corrupted shard: the header says %llu bytes, the file has %zu", path,
                    (unsigned long long)h->file_bytes, s->size);
    if (!(h->flags & (SHARD_HAS_TEXT | SHARD_HAS_IDS)) || (h->flags & ~(uint32_t)(SHARD_HAS_TEXT | SHARD_HAS_IDS)))
        return fail(err, errlen, "%s: corrupted shard: flags 0x%x", path, h->flags);
    if (h->image_size < 1 || h->image_size > 65536) return fail(err, errlen, "%s: corrupted shard: image size %u", path, h->image_size);
    uint64_t S = h->image_size, end = SHARD_HEADER_BYTES;
    if (check_section(s, "pixels", h->off_pixels, h->n_images, S * S * 3, &end, err, errlen) ||
        check_section(s, "records", h->off_records, h->n_records, sizeof(ShardRecord), &end, err, errlen) ||
        check_section(s, "refs", h->off_refs, h->n_refs, 4, &end, err, errlen) ||
        check_section(s, "seqs", h->off_seqs, h->n_seqs, 4, &end, err, errlen) ||
        check_section(s, "ids", h->off_ids, h->n_tokens, 4, &end, err, errlen) ||
        check_section(s, "mask", h->off_mask, h->n_tokens, 1, &end, err, errlen) ||
        check_section(s, "text", h->off_text, h->text_bytes, 1, &end, err, errlen))
        return -1;
    if (!(h->flags & SHARD_HAS_IDS) && (h->n_tokens || h->n_seqs)) return fail(err, errlen, "%s: corrupted shard: ids without the ids flag", path);
    if (!(h->flags & SHARD_HAS_TEXT) && h->text_bytes) return fail(err, errlen, "%s: corrupted shard: text without the text flag", path);
    if (verify_checksum) {
        uint32_t crc = crc_update((uint32_t)crc32(0, NULL, 0), s->map + SHARD_HEADER_BYTES, h->file_bytes - SHARD_HEADER_BYTES);
        if (crc != h->payload_crc)
            return fail(err, errlen, "%s: corrupted shard: the payload's CRC32 is %08x, the header says %08x", path, crc, h->payload_crc);
    }
    s->pixels = s->map + h->off_pixels;
    s->records = (const ShardRecord *)(s->map + h->off_records);
    s->refs = (const uint32_t *)(s->map + h->off_refs);
    s->seqs = (const uint32_t *)(s->map + h->off_seqs);
    s->ids = (const int32_t *)(s->map + h->off_ids);
    s->mask = s->map + h->off_mask;
    s->text = (const char *)(s->map + h->off_text);
    return check_records(s, err, errlen);
}

int shard_open(Shard *s, const char *path, int verify_checksum, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file", path);
    }
    s->path = xstrdup(path);
    s->size = (size_t)st.st_size;
    if (s->size == 0) {
        close(fd);
        int rc = fail(err, errlen, "%s: truncated shard: the file is empty", path);
        shard_close(s);
        return rc;
    }
    void *map = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);  // the mapping keeps the file
    if (map == MAP_FAILED) {
        int rc = fail(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        shard_close(s);
        return rc;
    }
    s->map = map;
    if (validate(s, verify_checksum, err, errlen)) {
        shard_close(s);
        return -1;
    }
    return 0;
}

void shard_open_or_die(Shard *s, const char *path) {
    char err[1024];
    if (shard_open(s, path, 1, err, sizeof(err))) fatal("%s", err);
}

void shard_close(Shard *s) {
    if (s->map) munmap((void *)s->map, s->size);
    free(s->path);
    memset(s, 0, sizeof(*s));
}

const char *shard_record_field(const Shard *s, uint64_t r, int f) {
    const ShardRecord *rec = &s->records[r];
    if (f < 0 || (uint32_t)f >= rec->n_fields) return NULL;
    const char *t = s->text + rec->text_first;
    while (f--) t += strlen(t) + 1;
    return t;
}

// ---- normalization ---------------------------------------------------------------------------------

void shard_lut_init(ShardLut *lut, const ShardHeader *h) {
    for (int c = 0; c < 3; c++) {
        // the same operations, in the same precisions, as preprocess_normalize
        float mean = (float)h->image_mean[c], std = (float)h->image_std[c];
        for (int u = 0; u < 256; u++) {
            float v = h->do_rescale ? (float)((double)u * h->rescale_factor) : (float)u;
            if (h->do_normalize) v = (v - mean) / std;
            lut->v[c][u] = v;
        }
    }
}

void shard_normalize(const ShardLut *lut, const uint8_t *restrict hwc, int S, float *restrict chw) {
    // One pass over the interleaved pixels, three contiguous output planes: each byte is read once
    // and each float written once, sequentially (the table is 3 KB and stays in L1).
    size_t hw = (size_t)S * S;
    float *restrict r = chw, *restrict g = chw + hw, *restrict b = chw + 2 * hw;
    const float *lr = lut->v[0], *lg = lut->v[1], *lb = lut->v[2];
    size_t i = 0;
#ifdef __SSE2__
    // A large image's floats (1.35 MB at 336 px) go out through the cache to memory anyway: batches
    // are far larger than the caches. Non-temporal stores skip reading each line in before writing
    // it, which doubles the throughput (notes/perf.md). Small images stay cached for the consumer.
    if (hw * 12 >= (1u << 19) && ((uintptr_t)chw % 16) == 0 && hw % 4 == 0) {
        for (; i + 4 <= hw; i += 4) {
            const uint8_t *p = hwc + 3 * i;
            _mm_stream_ps(r + i, _mm_setr_ps(lr[p[0]], lr[p[3]], lr[p[6]], lr[p[9]]));
            _mm_stream_ps(g + i, _mm_setr_ps(lg[p[1]], lg[p[4]], lg[p[7]], lg[p[10]]));
            _mm_stream_ps(b + i, _mm_setr_ps(lb[p[2]], lb[p[5]], lb[p[8]], lb[p[11]]));
        }
        _mm_sfence();  // streaming stores are weakly ordered: publish them before the batch is handed out
    }
#endif
    for (; i + 4 <= hw; i += 4) {
        const uint8_t *p = hwc + 3 * i;
        r[i] = lr[p[0]]; g[i] = lg[p[1]]; b[i] = lb[p[2]];
        r[i + 1] = lr[p[3]]; g[i + 1] = lg[p[4]]; b[i + 1] = lb[p[5]];
        r[i + 2] = lr[p[6]]; g[i + 2] = lg[p[7]]; b[i + 2] = lb[p[8]];
        r[i + 3] = lr[p[9]]; g[i + 3] = lg[p[10]]; b[i + 3] = lb[p[11]];
    }
    for (; i < hw; i++) {
        const uint8_t *p = hwc + 3 * i;
        r[i] = lr[p[0]]; g[i] = lg[p[1]]; b[i] = lb[p[2]];
    }
}

// ---- order -----------------------------------------------------------------------------------------

// Epoch e's order: identity, or a Fisher-Yates shuffle drawn from (seed, e) alone, so any epoch's
// order can be rebuilt from the position without replaying earlier epochs.
static void make_order(uint32_t *order, uint64_t n, int shuffle, uint64_t seed, uint64_t epoch) {
    for (uint64_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    if (!shuffle || n < 2) return;
    AugRng rng;
    augrng_seed(&rng, seed ^ (0x9E3779B97F4A7C15ull * (epoch + 1)));
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = (uint64_t)augrng_int(&rng, 0, (int)(i + 1));
        uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
}

uint32_t shard_order_at(const Shard *s, int shuffle, ShardPos pos) {
    uint64_t n = s->h->n_records;
    if (n == 0) fatal("%s: the shard has no records", s->path);
    pos = shard_pos_advance(s, pos, 0);
    uint32_t *order = xmalloc(sizeof(uint32_t) * n);
    make_order(order, n, shuffle, pos.seed, pos.epoch);
    uint32_t r = order[pos.index];
    free(order);
    return r;
}

ShardPos shard_pos_advance(const Shard *s, ShardPos pos, uint64_t k) {
    uint64_t n = s->h->n_records;
    if (n == 0) return pos;
    pos.index += k;
    pos.epoch += pos.index / n;
    pos.index %= n;
    return pos;
}

// ---- loader ----------------------------------------------------------------------------------------

typedef struct {
    ShardBatch b;
    uint32_t *records, *images, *slot_first, *record_slots;
    float *pixels;
} Slot;

struct ShardLoader {
    const Shard *s;
    ShardLoaderConfig cfg;
    ShardLut lut;
    int max_images;       // per batch: batch_size * the most images a record uses
    Prefetch *ring;       // the threads and the order of the batches (data/prefetch.h)
    Slot *slots;          // (prefetch_depth(ring))
    // guarded by the ring's lock (touched in claim only):
    ShardPos cursor;      // where the next claimed batch starts
    uint32_t *order;      // cursor.epoch's order
    uint64_t order_epoch;
};

// Under the ring's lock: batch `seq` takes the next records from the cursor (the stream never ends).
static int claim(void *ctx, int slot, uint64_t seq) {
    ShardLoader *l = ctx;
    Slot *sl = &l->slots[slot];
    sl->b.seq = seq;
    sl->b.pos = l->cursor;
    uint64_t n = l->s->h->n_records;
    for (int j = 0; j < l->cfg.batch_size; j++) {
        if (l->cursor.epoch != l->order_epoch) {
            make_order(l->order, n, l->cfg.shuffle, l->cursor.seed, l->cursor.epoch);
            l->order_epoch = l->cursor.epoch;
        }
        sl->records[j] = l->order[l->cursor.index];
        l->cursor = shard_pos_advance(l->s, l->cursor, 1);
    }
    sl->b.next = l->cursor;
    return 1;
}

// Outside the lock: finds the batch's distinct images and normalizes each once.
static void fill(void *ctx, int slot) {
    ShardLoader *l = ctx;
    Slot *sl = &l->slots[slot];
    const Shard *s = l->s;
    int S = (int)s->h->image_size, n_images = 0, k = 0;
    size_t plane = (size_t)3 * S * S;
    for (int j = 0; j < l->cfg.batch_size; j++) {
        const ShardRecord *r = &s->records[sl->records[j]];
        const uint32_t *refs = s->refs + r->image_first;
        sl->slot_first[j] = (uint32_t)k;
        for (uint32_t q = 0; q < r->n_images; q++) {
            int slot = 0;
            while (slot < n_images && sl->images[slot] != refs[q]) slot++;  // a batch holds few images
            if (slot == n_images) {
                sl->images[n_images++] = refs[q];
                shard_normalize(&l->lut, shard_image(s, refs[q]), S, sl->pixels + plane * (size_t)slot);
            }
            sl->record_slots[k++] = (uint32_t)slot;
        }
    }
    sl->slot_first[l->cfg.batch_size] = (uint32_t)k;
    ShardBatch *b = &sl->b;
    b->n = l->cfg.batch_size;
    b->records = sl->records;
    b->n_images = n_images;
    b->images = sl->images;
    b->pixels = sl->pixels;
    b->slot_first = sl->slot_first;
    b->record_slots = sl->record_slots;
}

ShardLoader *shard_loader_open(const Shard *s, const ShardLoaderConfig *cfg, ShardPos start) {
    uint64_t n = s->h->n_records;
    if (n == 0) fatal("%s: the shard has no records", s->path);
    if (n > UINT32_MAX) fatal("%s: %llu records, the loader handles at most 2^32 - 1", s->path, (unsigned long long)n);
    if (cfg->batch_size < 1) fatal("%s: batch size %d", s->path, cfg->batch_size);
    if (start.index >= n)
        fatal("%s: the resume position (epoch %llu, index %llu) is past the shard's %llu records: a different shard?", s->path,
              (unsigned long long)start.epoch, (unsigned long long)start.index, (unsigned long long)n);
    ShardLoader *l = xcalloc(1, sizeof(ShardLoader));
    l->s = s;
    l->cfg = *cfg;
    l->ring = prefetch_open(cfg->n_workers, cfg->depth, l, claim, fill, s->path);
    l->cfg.depth = prefetch_depth(l->ring);
    shard_lut_init(&l->lut, s->h);
    l->max_images = cfg->batch_size * s->max_record_images;
    l->cursor = start;
    l->order = xmalloc(sizeof(uint32_t) * n);
    make_order(l->order, n, cfg->shuffle, start.seed, start.epoch);
    l->order_epoch = start.epoch;
    size_t S = s->h->image_size;
    l->slots = xcalloc((size_t)l->cfg.depth, sizeof(Slot));
    for (int i = 0; i < l->cfg.depth; i++) {
        Slot *sl = &l->slots[i];
        sl->records = xmalloc(sizeof(uint32_t) * (size_t)cfg->batch_size);
        sl->slot_first = xmalloc(sizeof(uint32_t) * ((size_t)cfg->batch_size + 1));
        sl->images = xmalloc(sizeof(uint32_t) * (size_t)(l->max_images + 1));
        sl->record_slots = xmalloc(sizeof(uint32_t) * (size_t)(l->max_images + 1));
        sl->pixels = xmalloc(sizeof(float) * 3 * S * S * (size_t)(l->max_images + 1));  // (max_images, 3, S, S)
    }
    prefetch_start(l->ring);
    return l;
}

const ShardBatch *shard_loader_next(ShardLoader *l) {
    return &l->slots[prefetch_next(l->ring)].b;  // the stream is endless: always a slot
}

void shard_loader_close(ShardLoader *l) {
    prefetch_close(l->ring);
    for (int i = 0; i < l->cfg.depth; i++) {
        Slot *sl = &l->slots[i];
        free(sl->records); free(sl->slot_first); free(sl->images); free(sl->record_slots); free(sl->pixels);
    }
    free(l->slots);
    free(l->order);
    free(l);
}
