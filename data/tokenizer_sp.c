// SentencePiece BPE tokenizer read from tokenizer.model (see tokenizer_sp.h for the encoding rules).
#include "tokenizer_sp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "bpe.h"
#include "unicode.h"

// ---------------------------------------------------------------------------------------------------------------
// A minimal protobuf (proto2 wire format) reader: varints, length-delimited fields, fixed32/64, with bounds checks.
// Only what ModelProto needs: pieces = 1 (SentencePiece{piece = 1, score = 2, type = 3}), trainer_spec = 2,
// normalizer_spec = 3 (field numbers from sentencepiece's sentencepiece_model.proto).

typedef struct {
    const uint8_t *p, *end, *base;  // base: start of the file, for byte offsets in messages
    char *err;
    size_t errlen;
    const char *name;
} Pb;

static int pb_fail(Pb *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pb_fail(Pb *r, const char *fmt, ...) {
    if (r->err && r->err[0] == 0) {
        int k = snprintf(r->err, r->errlen, "%s: not a valid SentencePiece model: ", r->name);
        if (k >= 0 && (size_t)k < r->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + k, r->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return 0;
}

static int pb_varint(Pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return pb_fail(r, "truncated varint at byte %zu", (size_t)(r->p - r->base));
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) { *v = x; return 1; }
    }
    return pb_fail(r, "varint longer than 10 bytes at byte %zu", (size_t)(r->p - r->base));
}

static int pb_key(Pb *r, int *field, int *wire) {
    uint64_t k;
    if (!pb_varint(r, &k)) return 0;
    *field = (int)(k >> 3);
    *wire = (int)(k & 7);
    if (*field == 0) return pb_fail(r, "field number 0 at byte %zu", (size_t)(r->p - r->base));
    return 1;
}

// A length-delimited field: sets *data/*len and moves past it.
static int pb_bytes(Pb *r, const uint8_t **data, size_t *len) {
    uint64_t n;
    if (!pb_varint(r, &n)) return 0;
    if (n > (uint64_t)(r->end - r->p))
        return pb_fail(r, "field of %llu bytes runs past the end of the file at byte %zu", (unsigned long long)n,
                       (size_t)(r->p - r->base));
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return 1;
}

static int pb_fixed32(Pb *r, uint32_t *v) {
    if (r->end - r->p < 4) return pb_fail(r, "truncated fixed32 at byte %zu", (size_t)(r->p - r->base));
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 1;
}

static int pb_skip(Pb *r, int wire) {
    uint64_t v;
    const uint8_t *d;
    size_t n;
    switch (wire) {
    case 0: return pb_varint(r, &v);
    case 1:
        if (r->end - r->p < 8) return pb_fail(r, "truncated fixed64 at byte %zu", (size_t)(r->p - r->base));
        r->p += 8;
        return 1;
    case 2: return pb_bytes(r, &d, &n);
    case 5:
        if (r->end - r->p < 4) return pb_fail(r, "truncated fixed32 at byte %zu", (size_t)(r->p - r->base));
        r->p += 4;
        return 1;
    default: return pb_fail(r, "unsupported wire type %d at byte %zu", wire, (size_t)(r->p - r->base));
    }
}

static int pb_expect(Pb *r, int field, int wire, int want) {
    if (wire == want) return 1;
    return pb_fail(r, "field %d has wire type %d, expected %d (byte %zu)", field, wire, want,
                   (size_t)(r->p - r->base));
}

// A sub-message reader over data[0..len) that reports offsets relative to the file.
static Pb pb_sub(const Pb *r, const uint8_t *data, size_t len) {
    Pb s = *r;
    s.p = data;
    s.end = data + len;
    return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Piece table: piece string -> id (open addressing, FNV-1a).

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 16777619u; }
    return h;
}

static int table_find(const SpTokenizer *t, const char *s, size_t n) {
    uint32_t i = hash_bytes(s, n) & t->table_mask;
    for (;;) {
        int id = t->table[i];
        if (id < 0) return -1;
        if ((size_t)t->piece_len[id] == n && memcmp(t->pieces[id], s, n) == 0) return id;
        i = (i + 1) & t->table_mask;
    }
}

static void table_build(SpTokenizer *t) {
    uint32_t size = 1;
    while (size < (uint32_t)t->vocab_size * 2) size <<= 1;
    t->table = xmalloc(sizeof(int) * size);
    for (uint32_t i = 0; i < size; i++) t->table[i] = -1;
    t->table_mask = size - 1;
    for (int id = 0; id < t->vocab_size; id++) {
        if (table_find(t, t->pieces[id], (size_t)t->piece_len[id]) >= 0) continue;  // first one wins
        uint32_t i = hash_bytes(t->pieces[id], (size_t)t->piece_len[id]) & t->table_mask;
        while (t->table[i] >= 0) i = (i + 1) & t->table_mask;
        t->table[i] = id;
    }
}

int sptok_piece_id(const SpTokenizer *t, const char *piece) { return table_find(t, piece, strlen(piece)); }

// BPE may only produce ordinary pieces (control, byte and unused pieces are never the result of a merge).
static int mergeable_id(const SpTokenizer *t, const char *s, size_t n) {
    int id = table_find(t, s, n);
    if (id < 0) return -1;
    return (t->types[id] == SP_PIECE_NORMAL || t->types[id] == SP_PIECE_USER_DEFINED) ? id : -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

static void add_piece(SpTokenizer *t, int *cap, const char *s, size_t n, float score, int type) {
    if (t->vocab_size == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        t->pieces = xrealloc(t->pieces, sizeof(char *) * (size_t)*cap);
        t->piece_len = xrealloc(t->piece_len, sizeof(int) * (size_t)*cap);
        t->scores = xrealloc(t->scores, sizeof(float) * (size_t)*cap);
        t->types = xrealloc(t->types, (size_t)*cap);
    }
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    int id = t->vocab_size++;
    t->pieces[id] = p;
    t->piece_len[id] = (int)n;
    t->scores[id] = score;
    t->types[id] = (uint8_t)type;
}

static int parse_piece(Pb *r, SpTokenizer *t, int *cap) {
    const uint8_t *str = NULL;
    size_t len = 0;
    float score = 0;
    uint32_t bits = 0;
    uint64_t type = SP_PIECE_NORMAL;  // proto default
    int have_piece = 0;
    while (r->p < r->end) {
        int f, w;
        if (!pb_key(r, &f, &w)) return 0;
        if (f == 1) {
            if (!pb_expect(r, f, w, 2) || !pb_bytes(r, &str, &len)) return 0;
            have_piece = 1;
        } else if (f == 2) {
            if (!pb_expect(r, f, w, 5) || !pb_fixed32(r, &bits)) return 0;
            memcpy(&score, &bits, 4);
        } else if (f == 3) {
            if (!pb_expect(r, f, w, 0) || !pb_varint(r, &type)) return 0;
        } else if (!pb_skip(r, w)) return 0;
    }
    int id = t->vocab_size;
    if (!have_piece || len == 0) return pb_fail(r, "piece %d has no text", id);
    if (type < 1 || type > 6) return pb_fail(r, "piece %d has unknown type %llu", id, (unsigned long long)type);
    if (!utf8_valid((const char *)str, len)) return pb_fail(r, "piece %d is not valid UTF-8", id);
    add_piece(t, cap, (const char *)str, len, score, (int)type);
    return 1;
}

typedef struct {
    uint64_t model_type, byte_fallback, unk_id, bos_id, eos_id, pad_id, ws_suffix;
} TrainerSpec;

static int parse_trainer(Pb *r, TrainerSpec *ts) {
    while (r->p < r->end) {
        int f, w;
        if (!pb_key(r, &f, &w)) return 0;
        uint64_t *dst = f == 3 ? &ts->model_type : f == 35 ? &ts->byte_fallback : f == 40 ? &ts->unk_id
                      : f == 41 ? &ts->bos_id : f == 42 ? &ts->eos_id : f == 43 ? &ts->pad_id
                      : f == 24 ? &ts->ws_suffix : NULL;
        if (dst) {
            if (!pb_expect(r, f, w, 0) || !pb_varint(r, dst)) return 0;
        } else if (!pb_skip(r, w)) return 0;
    }
    return 1;
}

static int parse_normalizer(Pb *r, SpTokenizer *t, size_t *charsmap_len) {
    while (r->p < r->end) {
        int f, w;
        if (!pb_key(r, &f, &w)) return 0;
        if (f >= 3 && f <= 5) {
            uint64_t v;
            if (!pb_expect(r, f, w, 0) || !pb_varint(r, &v)) return 0;
            if (f == 3) t->add_dummy_prefix = v != 0;
            if (f == 4) t->remove_extra_whitespaces = v != 0;
            if (f == 5) t->escape_whitespaces = v != 0;
        } else if (f == 2) {
            const uint8_t *d;
            if (!pb_expect(r, f, w, 2) || !pb_bytes(r, &d, charsmap_len)) return 0;
        } else if (!pb_skip(r, w)) return 0;
    }
    return 1;
}

SpTokenizer *sptok_load_buffer(const uint8_t *data, size_t len, const char *name, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    SpTokenizer *t = xcalloc(1, sizeof(SpTokenizer));
    t->source = xstrdup(name);
    // proto defaults (sentencepiece_model.proto): unigram, unk 0, bos 1, eos 2, pad -1, all three normalizer flags on
    TrainerSpec ts = {1, 0, 0, 1, 2, (uint64_t)-1, 0};
    t->add_dummy_prefix = t->remove_extra_whitespaces = t->escape_whitespaces = 1;
    size_t charsmap_len = 0;
    int cap = 0;
    Pb r = {data, data + len, data, err, errlen, name};
    int ok = 1;
    if (len == 0) ok = pb_fail(&r, "the file is empty");
    while (ok && r.p < r.end) {
        int f, w;
        const uint8_t *d;
        size_t n;
        if (!pb_key(&r, &f, &w)) { ok = 0; break; }
        if (f >= 1 && f <= 3) {
            if (!pb_expect(&r, f, w, 2) || !pb_bytes(&r, &d, &n)) { ok = 0; break; }
            Pb sub = pb_sub(&r, d, n);
            ok = f == 1 ? parse_piece(&sub, t, &cap) : f == 2 ? parse_trainer(&sub, &ts)
                                                          : parse_normalizer(&sub, t, &charsmap_len);
        } else ok = pb_skip(&r, w);
    }
    t->n_pieces = t->vocab_size;
    // What this tokenizer implements: BPE, identity normalization, whitespace as prefix.
    if (ok && t->n_pieces < 3) ok = pb_fail(&r, "it has %d pieces", t->n_pieces);
    if (ok && ts.model_type != 2)
        ok = pb_fail(&r, "model type %llu is not BPE (2); only BPE models (LLaMA's) are supported",
                     (unsigned long long)ts.model_type);
    if (ok && charsmap_len > 0) ok = pb_fail(&r, "it uses a precompiled normalization map, which is not supported");
    if (ok && ts.ws_suffix) ok = pb_fail(&r, "treat_whitespace_as_suffix is not supported");
    int ids[4] = {(int)(int32_t)ts.unk_id, (int)(int32_t)ts.bos_id, (int)(int32_t)ts.eos_id, (int)(int32_t)ts.pad_id};
    for (int k = 0; ok && k < 4; k++)
        if (ids[k] >= t->n_pieces || (k < 3 && ids[k] < 0))
            ok = pb_fail(&r, "special id %d is outside the %d pieces", ids[k], t->n_pieces);
    if (!ok) { sptok_free(t); return NULL; }
    t->unk_id = ids[0]; t->bos_id = ids[1]; t->eos_id = ids[2]; t->pad_id = ids[3] < 0 ? -1 : ids[3];

    // LLaVA's added tokens, as llava-hf's tokenizer has them (ids right after the model's pieces).
    table_build(t);
    const char *added[2] = {"<image>", "<pad>"};
    int added_ids[2];
    for (int k = 0; k < 2; k++) {
        added_ids[k] = table_find(t, added[k], strlen(added[k]));
        if (added_ids[k] < 0) {
            added_ids[k] = t->vocab_size;
            add_piece(t, &cap, added[k], strlen(added[k]), 0.0f, SP_PIECE_ADDED);
        }
    }
    free(t->table);
    table_build(t);
    t->image_id = added_ids[0];
    t->llava_pad_id = added_ids[1];
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int id = 0; id < t->vocab_size; id++) {
        int ty = t->types[id];
        if (ty == SP_PIECE_BYTE) {
            unsigned v;
            char tail;
            if (t->piece_len[id] == 6 && sscanf(t->pieces[id], "<0x%2X%c", &v, &tail) == 2 && tail == '>')
                t->byte_id[v] = id;
        }
        if ((ty == SP_PIECE_CONTROL || ty == SP_PIECE_UNKNOWN || ty == SP_PIECE_ADDED) &&
            t->n_special < (int)(sizeof(t->special_ids) / sizeof(t->special_ids[0])))
            t->special_ids[t->n_special++] = id;
    }
    return t;
}

SpTokenizer *sptok_load(const char *path) {
    size_t len;
    char *data = read_file(path, &len);
    char err[512];
    SpTokenizer *t = sptok_load_buffer((const uint8_t *)data, len, path, err, sizeof(err));
    free(data);
    if (!t) fatal("%s", err);
    return t;
}

void sptok_free(SpTokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->vocab_size; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    free(t->table);
    free(t->source);
    free(t);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

typedef struct {
    int *ids, *spans;
    int n, cap;
} Out;

static void out_push(Out *o, int id, int start, int end) {
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->ids = xrealloc(o->ids, sizeof(int) * (size_t)o->cap);
        o->spans = xrealloc(o->spans, sizeof(int) * 2 * (size_t)o->cap);
    }
    o->ids[o->n] = id;
    o->spans[2 * o->n] = start;
    o->spans[2 * o->n + 1] = end;
    o->n++;
}

typedef struct {
    const SpTokenizer *t;
    const char *norm;  // the normalized segment the symbols index
} MergeCtx;

static int sp_can_merge(const void *ctx, const BpeSymbol *a, const BpeSymbol *b, int *merged_id, float *priority) {
    const MergeCtx *m = ctx;
    int id = mergeable_id(m->t, m->norm + a->start, (size_t)(a->len + b->len));
    if (id < 0) return 0;
    *merged_id = id;
    *priority = m->t->scores[id];
    return 1;
}

// Normalizes and encodes one segment text[a..b) (no special tokens in it), appending to o.
static void encode_segment(const SpTokenizer *t, const char *text, int a, int b, Out *o) {
    // Optional SentencePiece whitespace cleanup (LLaMA's model has it off): drop leading/trailing spaces and
    // collapse runs of spaces. Done by marking the bytes to keep.
    if (t->remove_extra_whitespaces) {
        while (a < b && text[a] == ' ') a++;
        while (b > a && text[b - 1] == ' ') b--;
    }
    if (a >= b) return;
    // norm: the normalized bytes; src[k]: which text byte norm[k] came from (-1 for the dummy prefix)
    size_t cap = (size_t)(b - a) * 3 + 3;
    char *norm = xmalloc(cap + 1);
    int *src = xmalloc(sizeof(int) * (cap + 1));
    size_t n = 0;
    static const char SPACE[] = "\xE2\x96\x81";  // U+2581 "▁"
    if (t->add_dummy_prefix) {
        for (int k = 0; k < 3; k++) { norm[n] = SPACE[k]; src[n++] = -1; }
    }
    for (int i = a; i < b; i++) {
        if (text[i] == ' ') {
            if (t->remove_extra_whitespaces && i > a && text[i - 1] == ' ') continue;
            if (t->escape_whitespaces) {
                for (int k = 0; k < 3; k++) { norm[n] = SPACE[k]; src[n++] = i; }
                continue;
            }
        }
        norm[n] = text[i];
        src[n++] = i;
    }
    // One symbol per code point (an ill-formed byte is a symbol of its own and falls back to its byte).
    BpeSymbol *syms = xmalloc(sizeof(BpeSymbol) * (n + 1));
    int ns = 0;
    for (size_t k = 0; k < n;) {
        uint32_t cp;
        int len = utf8_decode(norm + k, n - k, &cp);
        syms[ns] = (BpeSymbol){mergeable_id(t, norm + k, (size_t)len), (int)k, len, ns - 1, -1};
        if (ns > 0) syms[ns - 1].next = ns;
        ns++;
        k += (size_t)len;
    }
    MergeCtx ctx = {t, norm};
    bpe_merge(syms, ns, sp_can_merge, &ctx);
    int last_was_unk = 0;
    for (int s = 0; s >= 0; s = syms[s].next) {
        const BpeSymbol *y = &syms[s];
        // Source range: the text bytes behind the symbol's normalized bytes (empty for the dummy prefix alone).
        int start = -1, end = -1;
        for (int k = y->start; k < y->start + y->len; k++)
            if (src[k] >= 0) { if (start < 0) start = src[k]; end = src[k] + 1; }
        if (start < 0) start = end = a;
        if (y->id >= 0) {
            out_push(o, y->id, start, end);
            last_was_unk = 0;
            continue;
        }
        // Byte fallback: the symbol's UTF-8 bytes as <0xNN> pieces; without byte pieces, one <unk> per run.
        for (int k = y->start; k < y->start + y->len; k++) {
            int id = t->byte_id[(uint8_t)norm[k]];
            if (id >= 0) { out_push(o, id, start, end); last_was_unk = 0; }
            else if (!last_was_unk) { out_push(o, t->unk_id, start, end); last_was_unk = 1; }
        }
    }
    free(syms);
    free(src);
    free(norm);
}

// Finds the special/added token string that starts at text[i] (the longest), or -1.
static int match_special(const SpTokenizer *t, const char *text, size_t len, size_t i) {
    int best = -1, best_len = 0;
    for (int k = 0; k < t->n_special; k++) {
        int id = t->special_ids[k], n = t->piece_len[id];
        if ((size_t)n <= len - i && n > best_len && memcmp(text + i, t->pieces[id], (size_t)n) == 0) {
            best = id;
            best_len = n;
        }
    }
    return best;
}

int sptok_encode(const SpTokenizer *t, const char *text, size_t len, int flags, int **ids, int **spans) {
    if (len > (size_t)0x3FFFFFFF) fatal("%s: text of %zu bytes is too long to tokenize", t->source, len);
    Out o = {0};
    if (flags & SPTOK_BOS) out_push(&o, t->bos_id, 0, 0);
    size_t seg = 0;
    if (!(flags & SPTOK_RAW)) {
        for (size_t i = 0; i < len; i++) {
            if (text[i] != '<') continue;  // every special token starts with '<'
            int id = match_special(t, text, len, i);
            if (id < 0) continue;
            encode_segment(t, text, (int)seg, (int)i, &o);
            out_push(&o, id, (int)i, (int)i + t->piece_len[id]);
            i += (size_t)t->piece_len[id] - 1;
            seg = i + 1;
        }
    }
    encode_segment(t, text, (int)seg, (int)len, &o);
    if (flags & SPTOK_EOS) out_push(&o, t->eos_id, (int)len, (int)len);
    if (o.n == 0) {  // keep the arrays valid (callers free them)
        o.ids = xmalloc(sizeof(int));
        o.spans = xmalloc(sizeof(int) * 2);
    }
    *ids = o.ids;
    if (spans) *spans = o.spans;
    else free(o.spans);
    return o.n;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

static void flush_bytes(StrBuf *out, StrBuf *run) {
    if (run->len == 0) return;
    if (utf8_valid(run->data, run->len)) strbuf_put(out, run->data, run->len);
    else for (size_t i = 0; i < run->len; i++) strbuf_put_cp(out, 0xFFFD);
    run->len = 0;
}

char *sptok_decode(const SpTokenizer *t, const int *ids, int n, int skip_special, size_t *out_len) {
    StrBuf out = {0}, run = {0};
    strbuf_put(&out, "", 0);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        CHECK_OR_DIE(id >= 0 && id < t->vocab_size, "%s: token id %d is outside the vocabulary (0..%d)", t->source,
                     id, t->vocab_size - 1);
        int ty = t->types[id];
        if (ty == SP_PIECE_CONTROL || ty == SP_PIECE_UNKNOWN || ty == SP_PIECE_ADDED) {
            if (skip_special) continue;
            flush_bytes(&out, &run);
            strbuf_put(&out, t->pieces[id], (size_t)t->piece_len[id]);
        } else if (ty == SP_PIECE_BYTE) {
            unsigned v = 0;
            sscanf(t->pieces[id], "<0x%2X>", &v);
            char c = (char)v;
            strbuf_put(&run, &c, 1);
        } else {
            flush_bytes(&out, &run);
            const char *p = t->pieces[id];
            for (int k = 0; k < t->piece_len[id];) {
                if (k + 3 <= t->piece_len[id] && memcmp(p + k, "\xE2\x96\x81", 3) == 0) { strbuf_putc(&out, ' '); k += 3; }
                else strbuf_putc(&out, p[k++]);
            }
        }
    }
    flush_bytes(&out, &run);
    strbuf_free(&run);
    // HF's decoder ends with Strip(" ", left=1): the dummy prefix's space goes away.
    if (out.len > 0 && out.data[0] == ' ') {
        memmove(out.data, out.data + 1, out.len);
        out.len--;
    }
    if (out_len) *out_len = out.len;
    return out.data;
}
