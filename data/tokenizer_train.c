// SentencePiece BPE trainer (see tokenizer_train.h for what it learns and why).
#include "tokenizer_train.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "bpe.h"
#include "tokenizer_sp.h"
#include "unicode.h"

static const char SPACE[] = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's escaped space

// ---------------------------------------------------------------------------------------------------------------
// A string -> index map (open addressing, FNV-1a) over strings owned by the caller's arrays.

typedef struct {
    int *slot;  // index into the caller's arrays, -1 empty
    uint32_t mask;
    int n;
} StrMap;

static uint32_t fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 16777619u; }
    return h;
}

// The caller's strings the map's indices point into.
typedef struct { char **str; int *len; } StrArrays;

// Finds s in the map: returns its index, or -1 and sets *at to the empty slot where it would go.
static int map_find(const StrMap *m, const StrArrays *a, const char *s, size_t n, uint32_t *at) {
    if (!m->slot) return -1;
    uint32_t i = fnv1a(s, n) & m->mask;
    for (;;) {
        int k = m->slot[i];
        if (k < 0) { if (at) *at = i; return -1; }
        if ((size_t)a->len[k] == n && memcmp(a->str[k], s, n) == 0) return k;
        i = (i + 1) & m->mask;
    }
}

// Makes room for one more entry (keeps the load under 1/2); rehashes the n existing entries.
static void map_reserve(StrMap *m, const StrArrays *a) {
    if (m->slot && (uint32_t)(m->n + 1) * 2 <= m->mask + 1) return;
    uint32_t size = m->slot ? (m->mask + 1) * 2 : 64;
    free(m->slot);
    m->slot = xmalloc(sizeof(int) * size);
    for (uint32_t i = 0; i < size; i++) m->slot[i] = -1;
    m->mask = size - 1;
    for (int k = 0; k < m->n; k++) {
        uint32_t i = fnv1a(a->str[k], (size_t)a->len[k]) & m->mask;
        while (m->slot[i] >= 0) i = (i + 1) & m->mask;
        m->slot[i] = k;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A growable list of distinct strings with a count each.

typedef struct {
    char **str;
    int *len;
    long long *count;
    int n, cap;
    StrMap map;
} Bag;

// Adds count to s (inserting it); returns its index.
static int bag_add(Bag *b, const char *s, size_t n, long long count) {
    StrArrays a = {b->str, b->len};
    int k = map_find(&b->map, &a, s, n, NULL);
    if (k >= 0) { b->count[k] += count; return k; }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->str = xrealloc(b->str, sizeof(char *) * (size_t)b->cap);
        b->len = xrealloc(b->len, sizeof(int) * (size_t)b->cap);
        b->count = xrealloc(b->count, sizeof(long long) * (size_t)b->cap);
    }
    a = (StrArrays){b->str, b->len};
    map_reserve(&b->map, &a);
    uint32_t at;
    map_find(&b->map, &a, s, n, &at);
    k = b->n++;
    b->str[k] = xmalloc(n + 1);
    memcpy(b->str[k], s, n);
    b->str[k][n] = 0;
    b->len[k] = (int)n;
    b->count[k] = count;
    b->map.slot[at] = k;
    b->map.n++;
    return k;
}

static int bag_find(const Bag *b, const char *s, size_t n) {
    StrArrays a = {b->str, b->len};
    return map_find(&b->map, &a, s, n, NULL);
}

static void bag_free(Bag *b) {
    for (int k = 0; k < b->n; k++) free(b->str[k]);
    free(b->str);
    free(b->len);
    free(b->count);
    free(b->map.slot);
    memset(b, 0, sizeof(*b));
}

// ---------------------------------------------------------------------------------------------------------------
// Corpus: texts -> normalized segments -> words

struct SpTrainer {
    Bag words;           // distinct words (normalized bytes) and how often each occurs
    long long n_tokens;  // word occurrences
};

SpTrainer *sptrain_new(void) { return xcalloc(1, sizeof(SpTrainer)); }

void sptrain_free(SpTrainer *tr) {
    if (!tr) return;
    bag_free(&tr->words);
    free(tr);
}

enum { CLASS_LETTER, CLASS_DIGIT, CLASS_OTHER };

static int char_class(uint32_t cp) {
    if (uni_is_number(cp)) return CLASS_DIGIT;
    if (uni_is_letter(cp)) return CLASS_LETTER;
    return CLASS_OTHER;
}

// Cuts one normalized segment norm[0..n) into words and counts them.
static void add_words(SpTrainer *tr, const char *norm, size_t n, long count) {
    size_t start = 0;  // the current word is norm[start..k)
    int cls = -1;      // its class (-1: empty, or only "▁" so far)
    for (size_t k = 0; k < n;) {
        uint32_t cp;
        int len = utf8_decode(norm + k, n - k, &cp);
        int bad = cp == 0xFFFD && !(len == 3 && memcmp(norm + k, "\xEF\xBF\xBD", 3) == 0);
        if (bad) {  // ill-formed bytes: end the word, leave them to byte fallback
            if (k > start) { bag_add(&tr->words, norm + start, k - start, count); tr->n_tokens += count; }
            k += (size_t)len;
            start = k;
            cls = -1;
            continue;
        }
        int is_space = len == 3 && memcmp(norm + k, SPACE, 3) == 0;
        int c = char_class(cp);
        int only_space = k > start && cls < 0;  // the word so far is "▁"
        int boundary = k > start && (is_space || (!only_space && (c != cls || c == CLASS_DIGIT)));
        if (boundary) {
            bag_add(&tr->words, norm + start, k - start, count);
            tr->n_tokens += count;
            start = k;
            cls = -1;
        }
        if (!is_space) cls = c;
        k += (size_t)len;
    }
    if (n > start) { bag_add(&tr->words, norm + start, n - start, count); tr->n_tokens += count; }
}

// Normalizes text[a..b) as the encoder does for LLaMA's normalizer (dummy prefix, " " -> "▁") and counts it.
static void add_segment(SpTrainer *tr, const char *text, size_t a, size_t b, long count) {
    if (a >= b) return;  // the encoder skips empty segments (no dummy prefix alone)
    StrBuf norm = {0};
    strbuf_put(&norm, SPACE, 3);
    for (size_t i = a; i < b; i++) {
        if (text[i] == ' ') strbuf_put(&norm, SPACE, 3);
        else strbuf_putc(&norm, text[i]);
    }
    add_words(tr, norm.data, norm.len, count);
    strbuf_free(&norm);
}

// The strings the encoder splits out before BPE (tokenizer_sp.c's special and added tokens): the pieces this
// trainer writes as control/unknown, and LLaVA's added tokens.
static const char *const SPECIALS[] = {"<unk>", "<s>", "</s>", "<image>", "<pad>"};

void sptrain_add(SpTrainer *tr, const char *text, size_t len, long count) {
    if (count <= 0) return;
    size_t seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '<') continue;
        size_t best = 0;  // the longest special token starting here, as the encoder matches them
        for (size_t s = 0; s < sizeof(SPECIALS) / sizeof(SPECIALS[0]); s++) {
            size_t n = strlen(SPECIALS[s]);
            if (n <= len - i && n > best && memcmp(text + i, SPECIALS[s], n) == 0) best = n;
        }
        if (!best) continue;
        add_segment(tr, text, seg, i, count);
        i += best - 1;
        seg = i + 1;
    }
    add_segment(tr, text, seg, len, count);
}

// ---------------------------------------------------------------------------------------------------------------
// BPE

typedef struct {
    Bag pieces;     // the ordinary pieces learned so far (characters, then merges); count unused
    float *score;   // (pieces.cap) minus the rank
    int score_cap;
} Vocab;

static int vocab_add(Vocab *v, const char *s, size_t n) {
    int k = bag_add(&v->pieces, s, n, 0);
    if (v->score_cap < v->pieces.cap) {
        v->score_cap = v->pieces.cap;
        v->score = xrealloc(v->score, sizeof(float) * (size_t)v->score_cap);
    }
    v->score[k] = -(float)k;
    return k;
}

typedef struct {
    const Vocab *v;
    const char *word;
} MergeCtx;

// The encoder's rule (tokenizer_sp.c sp_can_merge): a pair merges when its concatenation is a piece, the
// piece's score is its priority.
static int can_merge(const void *ctx, const BpeSymbol *a, const BpeSymbol *b, int *merged_id, float *priority) {
    const MergeCtx *m = ctx;
    if (a->id < 0 || b->id < 0) return 0;
    int id = bag_find(&m->v->pieces, m->word + a->start, (size_t)(a->len + b->len));
    if (id < 0) return 0;
    *merged_id = id;
    *priority = m->v->score[id];
    return 1;
}

// Segments a word with the current pieces: fills syms (one per code point on entry) and returns the number of
// code points; the survivors stay linked from syms[0].
static int segment(const Vocab *v, const char *w, int len, BpeSymbol *syms) {
    int ns = 0;
    for (int k = 0; k < len;) {
        uint32_t cp;
        int cl = utf8_decode(w + k, (size_t)(len - k), &cp);
        syms[ns] = (BpeSymbol){bag_find(&v->pieces, w + k, (size_t)cl), k, cl, ns - 1, -1};
        if (ns > 0) syms[ns - 1].next = ns;
        ns++;
        k += cl;
    }
    MergeCtx ctx = {v, w};
    bpe_merge(syms, ns, can_merge, &ctx);
    return ns;
}

// Order of candidate pairs: more frequent first, then the shorter piece, then bytewise smaller.
static int better(long long ca, const char *a, int la, long long cb, const char *b, int lb) {
    if (ca != cb) return ca > cb;
    if (la != lb) return la < lb;
    return memcmp(a, b, (size_t)la) < 0;
}

// qsort_r orders of a Bag's indices: bytewise, or most frequent first and then bytewise.
static int cmp_bytes(const void *pa, const void *pb, void *ctx) {
    const Bag *c = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    int n = c->len[a] < c->len[b] ? c->len[a] : c->len[b];
    int r = memcmp(c->str[a], c->str[b], (size_t)n);
    return r ? r : c->len[a] - c->len[b];
}

static int cmp_frequent(const void *pa, const void *pb, void *ctx) {
    const Bag *c = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (c->count[a] != c->count[b]) return c->count[a] > c->count[b] ? -1 : 1;
    return cmp_bytes(pa, pb, ctx);
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// ModelProto writer (proto2 wire format; field numbers from sentencepiece_model.proto)

static void pb_varint(StrBuf *b, uint64_t v) {
    do {
        uint8_t byte = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) byte |= 0x80;
        strbuf_putc(b, (char)byte);
    } while (v);
}
static void pb_key(StrBuf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
// int32 fields: negative values are sign-extended to 64 bits (10 bytes), as protobuf writes them.
static void pb_int(StrBuf *b, int field, int64_t v) { pb_key(b, field, 0); pb_varint(b, (uint64_t)v); }
static void pb_bytes(StrBuf *b, int field, const void *p, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    strbuf_put(b, p, n);
}
static void pb_str(StrBuf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_float(StrBuf *b, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    char le[4] = {(char)(u & 0xFF), (char)(u >> 8 & 0xFF), (char)(u >> 16 & 0xFF), (char)(u >> 24)};
    pb_key(b, field, 5);
    strbuf_put(b, le, 4);
}

static void write_piece(StrBuf *out, const char *s, size_t n, float score, int type) {
    StrBuf m = {0};
    pb_bytes(&m, 1, s, n);
    pb_float(&m, 2, score);
    pb_int(&m, 3, type);
    pb_bytes(out, 1, m.data, m.len);
    strbuf_free(&m);
}

static void write_model(StrBuf *out, const Vocab *v, int n_pieces, int max_piece_chars) {
    write_piece(out, "<unk>", 5, 0.0f, SP_PIECE_UNKNOWN);
    write_piece(out, "<s>", 3, 0.0f, SP_PIECE_CONTROL);
    write_piece(out, "</s>", 4, 0.0f, SP_PIECE_CONTROL);
    for (int c = 0; c < 256; c++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", c);
        write_piece(out, name, 6, 0.0f, SP_PIECE_BYTE);
    }
    for (int k = 0; k < v->pieces.n; k++)
        write_piece(out, v->pieces.str[k], (size_t)v->pieces.len[k], v->score[k], SP_PIECE_NORMAL);

    // trainer_spec: how these pieces were made, in LLaMA's terms (fields in number order, as protobuf does)
    StrBuf t = {0};
    pb_str(&t, 2, "vlm-world");                         // model_prefix
    pb_int(&t, 3, 2);                                   // model_type: BPE
    pb_int(&t, 4, n_pieces);                            // vocab_size
    pb_str(&t, 7, "text");                              // input_format
    pb_float(&t, 10, 1.0f);                             // character_coverage: every character of the corpus
    pb_int(&t, 20, max_piece_chars);                    // max_sentencepiece_length
    pb_int(&t, 21, 1);                                  // split_by_unicode_script (letters / other)
    pb_int(&t, 22, 1);                                  // split_by_whitespace
    pb_int(&t, 23, 1);                                  // split_by_number
    pb_int(&t, 24, 0);                                  // treat_whitespace_as_suffix
    pb_int(&t, 25, 1);                                  // split_digits
    pb_int(&t, 32, 1);                                  // vocabulary_output_piece_score
    pb_int(&t, 33, 0);                                  // hard_vocab_limit: stops early when every word is a piece
    pb_int(&t, 35, 1);                                  // byte_fallback
    pb_int(&t, 40, 0);                                  // unk_id
    pb_int(&t, 41, 1);                                  // bos_id
    pb_int(&t, 42, 2);                                  // eos_id
    pb_int(&t, 43, -1);                                 // pad_id: none (LLaVA adds its own <pad> after the pieces)
    pb_str(&t, 44, " \xE2\x81\x87 ");                   // unk_surface " ⁇ "
    pb_str(&t, 45, "<unk>");
    pb_str(&t, 46, "<s>");
    pb_str(&t, 47, "</s>");
    pb_str(&t, 48, "<pad>");
    pb_bytes(out, 2, t.data, t.len);
    strbuf_free(&t);

    // normalizer_spec: LLaMA's
    StrBuf ns = {0};
    pb_str(&ns, 1, "identity");
    pb_int(&ns, 3, 1);  // add_dummy_prefix
    pb_int(&ns, 4, 0);  // remove_extra_whitespaces
    pb_int(&ns, 5, 1);  // escape_whitespaces
    pb_bytes(out, 3, ns.data, ns.len);
    strbuf_free(&ns);
}

// ---------------------------------------------------------------------------------------------------------------

uint8_t *sptrain_build(SpTrainer *tr, const SpTrainOptions *opt, size_t *len, SpTrainStats *stats, char *err,
                       size_t errlen) {
    if (err && errlen) err[0] = 0;
    int cap = opt && opt->max_pieces > 0 ? opt->max_pieces : 8000;
    const int n_fixed = 3 + 256;  // <unk> <s> </s> and the byte pieces
    const Bag *W = &tr->words;
    if (W->n == 0) {
        fail(err, errlen, "no text to train the tokenizer on (the corpus is empty or only whitespace and special "
             "tokens)");
        return NULL;
    }
    // Words in bytewise order, so that nothing depends on the order the texts came in.
    int *order = xmalloc(sizeof(int) * (size_t)W->n);
    for (int k = 0; k < W->n; k++) order[k] = k;
    qsort_r(order, (size_t)W->n, sizeof(int), cmp_bytes, (void *)W);

    // The characters, most frequent first.
    Bag chars = {0};
    int max_word = 0;
    for (int i = 0; i < W->n; i++) {
        int w = order[i];
        if (W->len[w] > max_word) max_word = W->len[w];
        for (int k = 0; k < W->len[w];) {
            uint32_t cp;
            int cl = utf8_decode(W->str[w] + k, (size_t)(W->len[w] - k), &cp);
            bag_add(&chars, W->str[w] + k, (size_t)cl, W->count[w]);
            k += cl;
        }
    }
    if (n_fixed + chars.n > cap) {
        fail(err, errlen, "the vocabulary cap of %d pieces is smaller than the 259 fixed pieces and the corpus' %d "
             "characters", cap, chars.n);
        bag_free(&chars);
        free(order);
        return NULL;
    }
    int *corder = xmalloc(sizeof(int) * (size_t)chars.n);
    for (int k = 0; k < chars.n; k++) corder[k] = k;
    qsort_r(corder, (size_t)chars.n, sizeof(int), cmp_frequent, &chars);
    Vocab v = {0};
    for (int k = 0; k < chars.n; k++) vocab_add(&v, chars.str[corder[k]], (size_t)chars.len[corder[k]]);
    int n_chars = chars.n;
    free(corder);
    bag_free(&chars);

    // Merge until every word is one piece or the cap is reached. Each round segments every word with the
    // pieces so far (the encoder's rule), counts the adjacent pairs by the string they would make, and adds the
    // best one. The new piece scores below all others, so the words' earlier merges are unchanged and each
    // round joins at least one pair: it ends.
    BpeSymbol *syms = xmalloc(sizeof(BpeSymbol) * (size_t)(max_word + 1));
    int n_split = 0;
    Bag pairs = {0};
    for (;;) {
        for (int k = 0; k < pairs.n; k++) free(pairs.str[k]);
        pairs.n = pairs.map.n = 0;
        if (pairs.map.slot) memset(pairs.map.slot, 0xFF, sizeof(int) * (pairs.map.mask + 1));
        n_split = 0;
        for (int i = 0; i < W->n; i++) {
            int w = order[i];
            segment(&v, W->str[w], W->len[w], syms);
            if (syms[0].next < 0) continue;
            n_split++;
            for (int s = 0; syms[s].next >= 0; s = syms[s].next) {
                const BpeSymbol *a = &syms[s], *b = &syms[a->next];
                bag_add(&pairs, W->str[w] + a->start, (size_t)(a->len + b->len), W->count[w]);
            }
        }
        if (n_split == 0 || n_fixed + v.pieces.n >= cap) break;
        int best = 0;
        for (int k = 1; k < pairs.n; k++)
            if (better(pairs.count[k], pairs.str[k], pairs.len[k], pairs.count[best], pairs.str[best], pairs.len[best]))
                best = k;
        CHECK_OR_DIE(bag_find(&v.pieces, pairs.str[best], (size_t)pairs.len[best]) < 0,
                     "tokenizer trainer: pair '%s' is already a piece", pairs.str[best]);
        vocab_add(&v, pairs.str[best], (size_t)pairs.len[best]);
    }
    bag_free(&pairs);
    free(syms);
    free(order);

    int n_pieces = n_fixed + v.pieces.n, max_chars = 1;
    for (int k = 0; k < v.pieces.n; k++) {
        int nc = 0;
        for (int i = 0; i < v.pieces.len[k]; i++) nc += ((uint8_t)v.pieces.str[k][i] & 0xC0) != 0x80;
        if (nc > max_chars) max_chars = nc;
    }
    StrBuf out = {0};
    write_model(&out, &v, n_pieces, max_chars);
    if (stats) {
        stats->n_pieces = n_pieces;
        stats->n_chars = n_chars;
        stats->n_merges = v.pieces.n - n_chars;
        stats->n_words = W->n;
        stats->n_words_split = n_split;
        stats->n_tokens = tr->n_tokens;
    }
    bag_free(&v.pieces);
    free(v.score);
    *len = out.len;
    return (uint8_t *)out.data;
}
