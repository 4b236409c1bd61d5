// Hugging Face tokenizer.json, byte-level BPE (see tokenizer_hf.h for the rules and what a file may say).
#include "tokenizer_hf.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/json_check.h"
#include "bpe.h"
#include "unicode.h"

// The Split patterns understood, as the files write them once the JSON escapes are undone. They differ only in how
// many digits one pre-token takes.
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Ids and token strings are bounded so that id-indexed tables stay small whatever a file claims.
#define MAX_ID (1 << 24)

// ---------------------------------------------------------------------------------------------------------------
// Hash tables (open addressing, linear probing)

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 16777619u; }
    return h;
}

static uint32_t hash_u64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return (uint32_t)k;
}

static uint32_t table_size(int n) {
    uint32_t size = 16;
    while (size < (uint32_t)n * 2) size <<= 1;
    return size;
}

static const char *tok_str(const HfTokenizer *t, int id) { return t->pool + t->tok_off[id]; }

// The vocabulary id of a token written as in the file, -1 if none.
static int vocab_find(const HfTokenizer *t, const char *s, size_t n) {
    if (!t->vocab_table) return -1;
    for (uint32_t i = hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        int id = t->vocab_table[i];
        if (id < 0) return -1;
        if ((size_t)t->tok_len[id] == n && memcmp(tok_str(t, id), s, n) == 0) return id;
    }
}

static uint64_t pair_key(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

// The slot of pair (a, b) in the merge table: its own, or the empty one where it would go.
static uint32_t merge_slot(const HfTokenizer *t, int a, int b) {
    uint64_t key = pair_key(a, b);
    uint32_t i = hash_u64(key) & t->merge_mask;
    while (t->merge_rank[i] >= 0 && t->merge_key[i] != key) i = (i + 1) & t->merge_mask;
    return i;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

typedef struct {
    const char *name;
    char *err;
    size_t errlen;
} Ld;

static int bad(Ld *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(Ld *L, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (L->err && L->errlen) snprintf(L->err, L->errlen, "%s: %s", L->name, msg);
    return -1;
}

// A field that must be absent, null or false (or a given string/number meaning "off").
static int is_off(const cJSON *v) {
    return !v || cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsNumber(v) && v->valuedouble == 0) ||
           (cJSON_IsString(v) && !v->valuestring[0]);
}

// An optional boolean field: *out = its value, or def when absent or null.
static int get_bool(Ld *L, const cJSON *obj, const char *key, const char *where, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) return bad(L, "%s.%s must be true or false", where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static const char *type_of(const cJSON *obj) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

// Appends a string to the pool; returns its offset.
static int64_t pool_add(StrBuf *pool, const char *s, size_t n) {
    int64_t off = (int64_t)pool->len;
    strbuf_put(pool, s, n);
    strbuf_putc(pool, 0);
    return off;
}

// The bytes a token decodes to under the ByteLevel decoder: each character's byte when every character is in the
// byte alphabet, else the token's own UTF-8 text.
static void byte_level_decode(const char *s, size_t n, const int16_t *cp_to_byte, StrBuf *out) {
    out->len = 0;
    strbuf_put(out, "", 0);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)utf8_decode(s + i, n - i, &cp);
        if (cp >= BPE_BYTE_CP_END || cp_to_byte[cp] < 0) { out->len = 0; strbuf_put(out, s, n); return; }
        strbuf_putc(out, (char)cp_to_byte[cp]);
    }
}

// Sets id's strings (a later call for the same id, an added token over a vocabulary entry, wins: the library's
// decode looks at the added tokens first).
static void set_token(HfTokenizer *t, StrBuf *pool, StrBuf *scratch, const int16_t *cp_to_byte, int id, const char *s,
                      size_t n) {
    t->tok_off[id] = pool_add(pool, s, n);
    t->tok_len[id] = (int)n;
    byte_level_decode(s, n, cp_to_byte, scratch);
    t->dec_off[id] = pool_add(pool, scratch->data, scratch->len);
    t->dec_len[id] = (int)scratch->len;
    t->pool = pool->data;  // lookups during loading read the pool as it grows
}

static void grow_ids(HfTokenizer *t, int vocab_size) {
    int old = t->vocab_size;
    if (vocab_size <= old) return;
    t->tok_off = xrealloc(t->tok_off, sizeof(int64_t) * (size_t)vocab_size);
    t->dec_off = xrealloc(t->dec_off, sizeof(int64_t) * (size_t)vocab_size);
    t->tok_len = xrealloc(t->tok_len, sizeof(int) * (size_t)vocab_size);
    t->dec_len = xrealloc(t->dec_len, sizeof(int) * (size_t)vocab_size);
    t->is_special = xrealloc(t->is_special, (size_t)vocab_size);
    for (int i = old; i < vocab_size; i++) { t->tok_off[i] = t->dec_off[i] = -1; t->tok_len[i] = t->dec_len[i] = 0; t->is_special[i] = 0; }
    t->vocab_size = vocab_size;
}

static int load_vocab(Ld *L, HfTokenizer *t, const cJSON *vocab, StrBuf *pool, StrBuf *scratch, const int16_t *cp_to_byte) {
    if (!cJSON_IsObject(vocab)) return bad(L, "model.vocab is missing or not an object of token: id");
    int n = 0, max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        long long id;
        char v[64];
        if (json_int(it, 0, MAX_ID - 1, &id)) {
            json_value_text(it, v, sizeof(v));
            return bad(L, "model.vocab: the id of '%.80s' is %s, not an integer in 0..%d", it->string, v, MAX_ID - 1);
        }
        if ((int)id > max_id) max_id = (int)id;
        n++;
    }
    if (n == 0) return bad(L, "model.vocab is empty");
    grow_ids(t, max_id + 1);
    t->n_vocab = n;
    t->vocab_mask = table_size(n) - 1;
    t->vocab_table = xmalloc(sizeof(int) * (t->vocab_mask + 1));
    for (uint32_t i = 0; i <= t->vocab_mask; i++) t->vocab_table[i] = -1;
    cJSON_ArrayForEach(it, vocab) {
        int id = (int)it->valuedouble;
        const char *s = it->string;
        size_t len = strlen(s);
        if (len == 0) return bad(L, "model.vocab: token %d is the empty string", id);
        if (t->tok_off[id] >= 0) return bad(L, "model.vocab: id %d is given to both '%.80s' and '%.80s'", id, tok_str(t, id), s);
        set_token(t, pool, scratch, cp_to_byte, id, s, len);
        uint32_t i = hash_bytes(s, len) & t->vocab_mask;
        while (t->vocab_table[i] >= 0) i = (i + 1) & t->vocab_mask;
        t->vocab_table[i] = id;
    }
    // Duplicate keys (the JSON object names one token twice) would leave an id unreachable: refuse them.
    cJSON_ArrayForEach(it, vocab)
        if (vocab_find(t, it->string, strlen(it->string)) != (int)it->valuedouble)
            return bad(L, "model.vocab: '%.80s' appears more than once", it->string);
    return 0;
}

// One merge: "a b" (exactly one space) or ["a", "b"]. Sets the two halves (pointers into the JSON or into buf).
static int merge_parts(Ld *L, const cJSON *m, int r, char *buf, size_t bufsize, const char **a, const char **b) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        size_t la = sp ? (size_t)(sp - s) : 0;
        if (!sp || la == 0 || !sp[1] || strchr(sp + 1, ' '))
            return bad(L, "model.merges[%d]: '%.80s' is not two tokens separated by one space", r, s);
        if (la + 1 > bufsize) return bad(L, "model.merges[%d]: a token of %zu bytes is too long", r, la);
        memcpy(buf, s, la);
        buf[la] = 0;
        *a = buf;
        *b = sp + 1;
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *b = m->child->next->valuestring;
        return 0;
    }
    return bad(L, "model.merges[%d] is neither a string \"a b\" nor a pair [\"a\", \"b\"]", r);
}

static int load_merges(Ld *L, HfTokenizer *t, const cJSON *merges) {
    if (!merges || cJSON_IsNull(merges)) merges = NULL;
    else if (!cJSON_IsArray(merges)) return bad(L, "model.merges is not an array");
    int n = merges ? cJSON_GetArraySize(merges) : 0;
    t->n_merges = n;
    t->merge_mask = table_size(n) - 1;
    t->merge_key = xmalloc(sizeof(uint64_t) * (t->merge_mask + 1));
    t->merge_rank = xmalloc(sizeof(int) * (t->merge_mask + 1));
    t->merge_id = xmalloc(sizeof(int) * (t->merge_mask + 1));
    for (uint32_t i = 0; i <= t->merge_mask; i++) t->merge_rank[i] = -1;
    char buf[1024], *joined = NULL;
    size_t cap = 0;
    int r = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a = NULL, *b = NULL;
        if (merge_parts(L, m, r, buf, sizeof(buf), &a, &b)) { free(joined); return -1; }
        size_t la = strlen(a), lb = strlen(b);
        int ia = vocab_find(t, a, la), ib = vocab_find(t, b, lb);
        if (ia < 0 || ib < 0) {
            free(joined);
            return bad(L, "model.merges[%d]: '%.80s' is not in model.vocab", r, ia < 0 ? a : b);
        }
        if (la + lb + 1 > cap) { cap = 2 * (la + lb + 1); joined = xrealloc(joined, cap); }
        memcpy(joined, a, la);
        memcpy(joined + la, b, lb);
        int id = vocab_find(t, joined, la + lb);
        if (id < 0) {
            joined[la + lb] = 0;
            int rc = bad(L, "model.merges[%d]: '%.80s' + '%.80s' makes '%.160s', which is not in model.vocab", r, a, b, joined);
            free(joined);
            return rc;
        }
        // A repeated pair keeps its last rank, as the library's map (filled in order) does.
        uint32_t i = merge_slot(t, ia, ib);
        t->merge_key[i] = pair_key(ia, ib);
        t->merge_rank[i] = r;
        t->merge_id[i] = id;
        r++;
    }
    free(joined);
    return 0;
}

static int load_model(Ld *L, HfTokenizer *t, const cJSON *model, StrBuf *pool, StrBuf *scratch, const int16_t *cp_to_byte) {
    if (!cJSON_IsObject(model)) return bad(L, "model is missing or not an object");
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE")) return bad(L, "model.type is '%.40s'; only BPE models are supported", ty);
    const cJSON *v;
    if (!is_off(v = cJSON_GetObjectItemCaseSensitive(model, "dropout")))
        return bad(L, "model.dropout must be null (BPE dropout makes encoding random)");
    if (!is_off(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix")))
        return bad(L, "model.continuing_subword_prefix is not supported (byte-level BPE has none)");
    if (!is_off(cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix")))
        return bad(L, "model.end_of_word_suffix is not supported (byte-level BPE has none)");
    if (!is_off(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return bad(L, "model.byte_fallback is not supported (a byte-level vocabulary has every byte)");
    if (get_bool(L, model, "ignore_merges", "model", 0, &t->ignore_merges)) return -1;
    if (get_bool(L, model, "fuse_unk", "model", 0, &t->fuse_unk)) return -1;
    if (load_vocab(L, t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), pool, scratch, cp_to_byte)) return -1;
    t->unk_id = -1;
    v = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) return bad(L, "model.unk_token must be a string or null");
        t->unk_id = vocab_find(t, v->valuestring, strlen(v->valuestring));
        if (t->unk_id < 0) return bad(L, "model.unk_token '%.80s' is not in model.vocab", v->valuestring);
    }
    uint32_t cp_of[256];
    bpe_byte_alphabet(cp_of, NULL);
    for (int b = 0; b < 256; b++) {
        char s[4];
        t->byte_id[b] = vocab_find(t, s, (size_t)utf8_encode(cp_of[b], s));
    }
    return load_merges(L, t, cJSON_GetObjectItemCaseSensitive(model, "merges"));
}

// A string as code points (malloc'd); returns the count.
static int to_cps(const char *s, size_t n, uint32_t **out) {
    uint32_t *c = xmalloc(sizeof(uint32_t) * (n + 1));
    int k = 0;
    for (size_t i = 0; i < n;) i += (size_t)utf8_decode(s + i, n - i, &c[k++]);
    *out = c;
    return k;
}

static int load_added(Ld *L, HfTokenizer *t, const cJSON *added, StrBuf *pool, StrBuf *scratch, const int16_t *cp_to_byte) {
    if (!added || cJSON_IsNull(added)) return 0;
    if (!cJSON_IsArray(added)) return bad(L, "added_tokens is not an array");
    int n = cJSON_GetArraySize(added), k = 0;
    t->added = xcalloc((size_t)n + 1, sizeof(HfAddedToken));
    const cJSON *a;
    cJSON_ArrayForEach(a, added) {
        char where[48];
        snprintf(where, sizeof(where), "added_tokens[%d]", k);
        if (!cJSON_IsObject(a)) return bad(L, "%s is not an object", where);
        long long id;
        if (json_int(cJSON_GetObjectItemCaseSensitive(a, "id"), 0, MAX_ID - 1, &id))
            return bad(L, "%s.id is missing or not an integer in 0..%d", where, MAX_ID - 1);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsString(c) || !c->valuestring[0]) return bad(L, "%s.content is missing or empty", where);
        HfAddedToken *A = &t->added[k];
        A->id = (int)id;
        if (get_bool(L, a, "special", where, 0, &A->special) || get_bool(L, a, "lstrip", where, 0, &A->lstrip) ||
            get_bool(L, a, "rstrip", where, 0, &A->rstrip) || get_bool(L, a, "single_word", where, 0, &A->single_word) ||
            get_bool(L, a, "normalized", where, !A->special, &A->normalized))  // the library's default: not for specials
            return -1;
        int max_added = -1;
        for (int j = 0; j < k; j++) {
            if (t->added[j].id == A->id) return bad(L, "%s: id %d is already added_tokens[%d]", where, A->id, j);
            if (!strcmp(tok_str(t, t->added[j].id), c->valuestring))
                return bad(L, "%s: '%.80s' is already added_tokens[%d]", where, c->valuestring, j);
            if (t->added[j].id > max_added) max_added = t->added[j].id;
        }
        // The library does not take the file's ids: it gives an added token the id of the vocabulary entry with its
        // content, else the next id after the vocabulary's count and the added tokens so far (and only warns when
        // the file says otherwise). A file it wrote agrees; one that does not would encode differently here and
        // there, so it is refused.
        int expect = vocab_find(t, c->valuestring, strlen(c->valuestring));
        if (expect < 0) expect = max_added + 1 > t->n_vocab ? max_added + 1 : t->n_vocab;
        if (A->id != expect)
            return bad(L, "%s: '%.80s' has id %d, but the tokenizers library gives it %d (%s)", where, c->valuestring,
                       A->id, expect, expect < t->n_vocab ? "the id of the same string in model.vocab"
                                                          : "the next id after model.vocab and the added tokens before it");
        grow_ids(t, A->id + 1);
        size_t len = strlen(c->valuestring);
        set_token(t, pool, scratch, cp_to_byte, A->id, c->valuestring, len);
        t->is_special[A->id] = (uint8_t)A->special;
        A->n_cps = to_cps(c->valuestring, len, &A->cps);
        k++;
        t->n_added = k;
    }
    return 0;
}

static int load_normalizer(Ld *L, HfTokenizer *t, const cJSON *norm) {
    if (!norm || cJSON_IsNull(norm)) return 0;
    const char *ty = type_of(norm);
    if (ty && !strcmp(ty, "NFC")) { t->nfc = 1; return 0; }
    if (ty && !strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers"), *it;
        if (!cJSON_IsArray(list)) return bad(L, "normalizer.normalizers is not an array");
        cJSON_ArrayForEach(it, list) if (load_normalizer(L, t, it)) return -1;
        return 0;
    }
    return bad(L, "normalizer: type '%.40s' is not supported (null or NFC)", ty ? ty : "(none)");
}

static int load_pre_tokenizer(Ld *L, HfTokenizer *t, const cJSON *pre) {
    static const char *want = "pre_tokenizer must be Sequence[Split(Qwen2's or Llama-3's pattern), ByteLevel]";
    const char *ty = pre ? type_of(pre) : NULL;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (!ty || strcmp(ty, "Sequence") || !cJSON_IsArray(list) || cJSON_GetArraySize(list) != 2)
        return bad(L, "%s; the file has %s", want, !pre || cJSON_IsNull(pre) ? "none" : ty ? ty : "an untyped one");
    const cJSON *split = list->child, *bl = split->next;
    const char *t1 = type_of(split), *t2 = type_of(bl);
    if (!t1 || strcmp(t1, "Split") || !t2 || strcmp(t2, "ByteLevel"))
        return bad(L, "%s; the file has Sequence[%.40s, %.40s]", want, t1 ? t1 : "?", t2 ? t2 : "?");
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
    if (!cJSON_IsString(pat)) return bad(L, "pre_tokenizer: the Split pattern is not a {\"Regex\": ...}");
    if (!strcmp(pat->valuestring, QWEN2_PATTERN)) t->max_digits = 1;
    else if (!strcmp(pat->valuestring, LLAMA3_PATTERN)) t->max_digits = 3;
    else return bad(L, "pre_tokenizer: the Split regex '%.300s' is not one this reader implements (Qwen2's, or Llama-3's "
                    "with \\p{N}{1,3})", pat->valuestring);
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated"))
        return bad(L, "pre_tokenizer: Split behavior must be Isolated");
    if (!is_off(cJSON_GetObjectItemCaseSensitive(split, "invert"))) return bad(L, "pre_tokenizer: Split invert must be false");
    if (!is_off(cJSON_GetObjectItemCaseSensitive(bl, "add_prefix_space")))
        return bad(L, "pre_tokenizer: ByteLevel add_prefix_space must be false");
    if (!is_off(cJSON_GetObjectItemCaseSensitive(bl, "use_regex")))
        return bad(L, "pre_tokenizer: ByteLevel use_regex must be false (the Split before it cuts the text)");
    return 0;
}

// TemplateProcessing's "single" template: special tokens, then $A, then special tokens.
static int load_template(Ld *L, HfTokenizer *t, const cJSON *pp) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single"), *it;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    if (!cJSON_IsArray(single)) return bad(L, "post_processor: TemplateProcessing.single is not an array");
    int seen_a = 0;
    cJSON_ArrayForEach(it, single) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence"), *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (seq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(seq, "id");
            if (seen_a || !cJSON_IsString(id) || strcmp(id->valuestring, "A"))
                return bad(L, "post_processor: TemplateProcessing.single must hold the sequence $A once");
            seen_a = 1;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name)) return bad(L, "post_processor: TemplateProcessing.single has an item that is neither a Sequence nor a SpecialToken");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name->valuestring), "ids"), *x;
        if (!cJSON_IsArray(ids)) return bad(L, "post_processor: special token '%.80s' has no ids in special_tokens", name->valuestring);
        cJSON_ArrayForEach(x, ids) {
            long long id;
            if (json_int(x, 0, t->vocab_size - 1, &id))
                return bad(L, "post_processor: an id of special token '%.80s' is not a token id (0..%d)", name->valuestring, t->vocab_size - 1);
            int *n = seen_a ? &t->n_suffix : &t->n_prefix;
            if (*n == 8) return bad(L, "post_processor: more than 8 special tokens on one side of $A");
            (seen_a ? t->suffix : t->prefix)[(*n)++] = (int)id;
        }
    }
    if (!seen_a) return bad(L, "post_processor: TemplateProcessing.single has no $A");
    return 0;
}

static int load_post_processor(Ld *L, HfTokenizer *t, const cJSON *pp, int depth) {
    if (!pp || cJSON_IsNull(pp)) return 0;
    const char *ty = type_of(pp);
    if (ty && !strcmp(ty, "ByteLevel")) return 0;  // only moves offsets
    if (ty && !strcmp(ty, "TemplateProcessing")) {
        if (t->n_prefix || t->n_suffix) return bad(L, "post_processor: more than one TemplateProcessing");
        return load_template(L, t, pp);
    }
    if (ty && !strcmp(ty, "Sequence") && depth == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors"), *it;
        if (!cJSON_IsArray(list)) return bad(L, "post_processor.processors is not an array");
        cJSON_ArrayForEach(it, list) if (load_post_processor(L, t, it, 1)) return -1;
        return 0;
    }
    return bad(L, "post_processor: type '%.40s' is not supported (null, ByteLevel, TemplateProcessing or a Sequence of them)",
               ty ? ty : "(none)");
}

static void build_buckets(HfTokenizer *t) {
    int count[257] = {0};
    for (int i = 0; i < t->n_added; i++) count[(t->added[i].cps[0] & 255) + 1]++;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    memcpy(t->bucket_start, count, sizeof(count));
    t->bucket = xmalloc(sizeof(int) * ((size_t)t->n_added + 1));
    int fill[256];
    for (int b = 0; b < 256; b++) fill[b] = count[b];
    for (int i = 0; i < t->n_added; i++) {
        int b = t->added[i].cps[0] & 255, j = fill[b]++;
        // insertion by length, longest first: the longest token that matches at a place wins
        while (j > t->bucket_start[b] && t->added[t->bucket[j - 1]].n_cps < t->added[i].n_cps) { t->bucket[j] = t->bucket[j - 1]; j--; }
        t->bucket[j] = i;
    }
}

static HfTokenizer *load_tree(const cJSON *root, Ld *L) {
    if (!cJSON_IsObject(root)) { bad(L, "not a tokenizer.json (the top level is not a JSON object)"); return NULL; }
    HfTokenizer *t = xcalloc(1, sizeof(HfTokenizer));
    t->source = xstrdup(L->name);
    StrBuf pool = {0}, scratch = {0};
    strbuf_put(&pool, "", 0);
    int16_t cp_to_byte[BPE_BYTE_CP_END];
    uint32_t cp_of[256];
    bpe_byte_alphabet(cp_of, NULL);
    for (int i = 0; i < BPE_BYTE_CP_END; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte[cp_of[b]] = (int16_t)b;
    const char *dec_ty = type_of(cJSON_GetObjectItemCaseSensitive(root, "decoder"));
    int rc = 0;
    if (!is_off(cJSON_GetObjectItemCaseSensitive(root, "truncation"))) rc = bad(L, "truncation must be null (vlm cuts sequences itself)");
    else if (!is_off(cJSON_GetObjectItemCaseSensitive(root, "padding"))) rc = bad(L, "padding must be null (vlm pads batches itself)");
    else if (load_model(L, t, cJSON_GetObjectItemCaseSensitive(root, "model"), &pool, &scratch, cp_to_byte)) rc = -1;
    else if (load_normalizer(L, t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) rc = -1;
    else if (load_pre_tokenizer(L, t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) rc = -1;
    else if (load_added(L, t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), &pool, &scratch, cp_to_byte)) rc = -1;
    else if (load_post_processor(L, t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0)) rc = -1;
    else if (!dec_ty || strcmp(dec_ty, "ByteLevel"))
        rc = bad(L, "decoder: type '%.40s' is not supported (ByteLevel)", dec_ty ? dec_ty : "(none)");
    strbuf_free(&scratch);
    t->pool = pool.data;
    if (rc) { hftok_free(t); return NULL; }
    for (int i = 0; i < t->n_added; i++) {
        HfAddedToken *A = &t->added[i];
        if (A->normalized && t->nfc) {  // matched against normalized text, so by its normalized form
            uint32_t *n = xmalloc(sizeof(uint32_t) * (4 * (size_t)A->n_cps + 1));
            A->n_cps = uni_nfc(A->cps, A->n_cps, n);
            free(A->cps);
            A->cps = n;
        }
        if (A->normalized) t->any_normalized_added = 1;
        else t->any_raw_added = 1;
    }
    build_buckets(t);
    return t;
}

HfTokenizer *hftok_load_json(const cJSON *root, const char *name, char *err, size_t errlen) {
    Ld L = {name, err, errlen};
    return load_tree(root, &L);
}

HfTokenizer *hftok_load_buffer(const char *data, size_t len, const char *name, char *err, size_t errlen) {
    if (!utf8_valid(data, len)) {
        Ld L = {name, err, errlen};
        bad(&L, "not valid UTF-8");
        return NULL;
    }
    char *text = xmalloc(len + 1);  // the JSON reader wants a NUL-terminated text; a buffer need not be
    memcpy(text, data, len);
    text[len] = 0;
    cJSON *root = json_parse_document(text, len, name, err, errlen);
    free(text);
    if (!root) return NULL;
    HfTokenizer *t = hftok_load_json(root, name, err, errlen);
    cJSON_Delete(root);
    return t;
}

HfTokenizer *hftok_load(const char *path) {
    size_t len;
    char *data = try_read_file(path, &len);
    if (!data) fatal("%s: cannot read the tokenizer.json (%s)", path, file_exists(path) ? "unreadable" : "no such file");
    char err[1024];
    HfTokenizer *t = hftok_load_buffer(data, len, path, err, sizeof(err));
    free(data);
    if (!t) fatal("%s", err);
    return t;
}

void hftok_free(HfTokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_added; i++) free(t->added[i].cps);
    free(t->added);
    free(t->bucket);
    free(t->pool);
    free(t->tok_off);
    free(t->dec_off);
    free(t->tok_len);
    free(t->dec_len);
    free(t->is_special);
    free(t->vocab_table);
    free(t->merge_key);
    free(t->merge_rank);
    free(t->merge_id);
    free(t->source);
    free(t);
}

int hftok_token_id(const HfTokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++) {
        int id = t->added[i].id;
        if ((size_t)t->tok_len[id] == n && !memcmp(tok_str(t, id), token, n)) return id;
    }
    return vocab_find(t, token, n);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

typedef struct { int *a; int n, cap; } IntVec;

static void iv_push(IntVec *v, int x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->a = xrealloc(v->a, sizeof(int) * (size_t)v->cap);
    }
    v->a[v->n++] = x;
}

// Scratch space of one encode call, grown as needed.
typedef struct {
    const HfTokenizer *t;
    IntVec ids, spans;
    int want_spans;
    const uint32_t *cp; // the input as code points
    const int *src;     // (2 per code point) their bytes
    uint32_t *ncp;      // normalized code points of the stretch being encoded
    int *nsrc;          // (2 per code point) the bytes of the input each came from
    int ncap;
    uint8_t *bytes;     // a pre-token's UTF-8 bytes
    int *bsrc;          // (2 per byte) the input bytes each came from
    BpeSymbol *syms;
    int bcap;
    StrBuf word;        // a pre-token in the byte alphabet (the vocabulary's spelling)
    uint32_t cp_of[256];
} Enc;

static void emit(Enc *E, int id, int start, int end) {
    iv_push(&E->ids, id);
    if (E->want_spans) { iv_push(&E->spans, start); iv_push(&E->spans, end); }
}

static int hf_can_merge(const void *ctx, const BpeSymbol *a, const BpeSymbol *b, int *merged_id, float *priority) {
    const HfTokenizer *t = ctx;
    uint32_t i = merge_slot(t, a->id, b->id);
    if (t->merge_rank[i] < 0) return 0;
    *merged_id = t->merge_id[i];
    *priority = -(float)t->merge_rank[i];  // lowest rank first; ranks below 2^24 are exact in a float
    return 1;
}

// ByteLevel + BPE of one pre-token: code points s[0..n) whose input bytes are src[2i], src[2i + 1].
static void encode_pretoken(Enc *E, const uint32_t *s, const int *src, int n) {
    const HfTokenizer *t = E->t;
    if (4 * n > E->bcap) {
        E->bcap = 8 * n;
        E->bytes = xrealloc(E->bytes, (size_t)E->bcap);
        E->bsrc = xrealloc(E->bsrc, sizeof(int) * 2 * (size_t)E->bcap);
        E->syms = xrealloc(E->syms, sizeof(BpeSymbol) * (size_t)E->bcap);
    }
    int nb = 0;
    for (int i = 0; i < n; i++) {
        int k = utf8_encode(s[i], (char *)E->bytes + nb);
        for (int q = 0; q < k; q++, nb++) { E->bsrc[2 * nb] = src[2 * i]; E->bsrc[2 * nb + 1] = src[2 * i + 1]; }
    }
    if (t->ignore_merges) {  // a pre-token that is a vocabulary entry is that entry, merges or not
        E->word.len = 0;
        for (int i = 0; i < nb; i++) strbuf_put_cp(&E->word, E->cp_of[E->bytes[i]]);
        int id = vocab_find(t, E->word.data, E->word.len);
        if (id >= 0) { emit(E, id, E->bsrc[0], E->bsrc[2 * nb - 1]); return; }
    }
    // One symbol per byte. A byte missing from the vocabulary becomes unk_token (consecutive ones fused into one
    // with fuse_unk) or, without unk_token, nothing: what the library does.
    BpeSymbol *sy = E->syms;
    int m = 0;
    for (int i = 0; i < nb; i++) {
        int id = t->byte_id[E->bytes[i]];
        if (id < 0) {
            if (t->unk_id < 0) continue;
            if (t->fuse_unk && m > 0 && sy[m - 1].id == t->unk_id && sy[m - 1].start + sy[m - 1].len == i) { sy[m - 1].len++; continue; }
            id = t->unk_id;
        }
        sy[m] = (BpeSymbol){id, i, 1, m - 1, m + 1};
        m++;
    }
    if (m == 0) return;
    sy[m - 1].next = -1;
    bpe_merge(sy, m, hf_can_merge, t);
    for (int i = 0; i >= 0; i = sy[i].next)
        emit(E, sy[i].id, E->bsrc[2 * sy[i].start], E->bsrc[2 * (sy[i].start + sy[i].len - 1) + 1]);
}

static int is_nl(uint32_t c) { return c == '\r' || c == '\n'; }
static int is_l(uint32_t c) { return uni_is_letter_onig(c); }
static int is_n(uint32_t c) { return uni_is_number_onig(c); }
static int is_s(uint32_t c) { return uni_is_white_space(c); }
static int is_other(uint32_t c) { return !is_s(c) && !is_l(c) && !is_n(c); }  // [^\s\p{L}\p{N}]

// Case-insensitive equality with a lowercase ASCII letter, by Unicode case folding as Oniguruma matches (?i:...):
// ASCII case, plus U+017F LATIN SMALL LETTER LONG S, which folds to 's' (U+212A KELVIN SIGN folds to 'k', which no
// contraction has).
static int fold_eq(uint32_t c, char want) {
    if (c < 0x80) return c == (uint32_t)want || c == (uint32_t)want - 32;
    return want == 's' && c == 0x17F;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] == '\'': the length matched, 0 if none.
static int contraction(const uint32_t *s, int n, int i) {
    static const char *const alts[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (int a = 0; a < 7; a++) {
        int k = 0;
        while (alts[a][k] && i + 1 + k < n && fold_eq(s[i + 1 + k], alts[a][k])) k++;
        if (!alts[a][k]) return 1 + k;
    }
    return 0;
}

// The end of the pattern's match at s[i] (every position matches at least one character, so Split's Isolated pieces
// are just the successive matches). The alternatives in order, each with the backtracking a regex engine would do:
static int split_match(const uint32_t *s, int n, int i, int max_digits) {
    uint32_t c = s[i];
    int j;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c == '\'' && (j = contraction(s, n, i)) > 0) return i + j;
    // [^\r\n\p{L}\p{N}]?\p{L}+ : one optional leading character (a space, punctuation), then letters
    j = i;
    if (!is_l(c) && !is_n(c) && !is_nl(c) && i + 1 < n && is_l(s[i + 1])) j = i + 1;
    if (is_l(s[j])) {
        while (j < n && is_l(s[j])) j++;
        return j;
    }
    // \p{N} (Llama-3: \p{N}{1,3})
    if (is_n(c)) {
        j = i + 1;
        while (j < n && j - i < max_digits && is_n(s[j])) j++;
        return j;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]* : punctuation with one optional space before it and the line breaks after it
    j = i + (c == ' ' && i + 1 < n && is_other(s[i + 1]));
    if (is_other(s[j])) {
        while (j < n && is_other(s[j])) j++;
        while (j < n && is_nl(s[j])) j++;
        return j;
    }
    // c is whitespace here; e ends its run
    int e = i + 1;
    while (e < n && is_s(s[e])) e++;
    // \s*[\r\n]+ : \s* gives back characters until a line break follows, so the match ends after the run's last one
    for (j = e - 1; j >= i; j--)
        if (is_nl(s[j])) return j + 1;
    // \s+(?!\S) : the whole run at the end of the text; before a non-space, all of it but its last character
    if (e == n || e - i == 1) return e;  // (a single space before a non-space falls through to \s+: itself)
    return e - 1;
}

// The stretch ncp[a..b) of normalized text, without added tokens: pre-tokens, each through BPE.
static void encode_pretokens(Enc *E, int a, int b) {
    for (int i = a; i < b;) {
        int e = a + split_match(E->ncp + a, b - a, i - a, E->t->max_digits);
        encode_pretoken(E, E->ncp + i, E->nsrc + 2 * i, e - i);
        i = e;
    }
}

static int word_char(uint32_t c) { return c == '_' || uni_is_letter(c) || uni_is_number(c); }

// Splits s[a..b) (code points; src[2i], src[2i + 1] their input bytes) at the added tokens whose "normalized" flag is
// `normalized`, as the library's AddedVocabulary does; each stretch between them goes to gap(E, start, end).
static void split_added(Enc *E, const uint32_t *s, const int *src, int a, int b, int normalized,
                        void (*gap)(Enc *, int, int)) {
    const HfTokenizer *t = E->t;
    int done = a;  // everything before this is emitted
    for (int i = a; i < b;) {
        int bk = s[i] & 255, hit = -1;
        for (int q = t->bucket_start[bk]; q < t->bucket_start[bk + 1] && hit < 0; q++) {
            const HfAddedToken *A = &t->added[t->bucket[q]];
            if (A->normalized == normalized && A->n_cps <= b - i && !memcmp(A->cps, s + i, sizeof(uint32_t) * (size_t)A->n_cps))
                hit = t->bucket[q];
        }
        if (hit < 0) { i++; continue; }
        const HfAddedToken *A = &t->added[hit];
        int ms = i, me = i + A->n_cps;
        i = me;  // the library's match iterator goes on after the match itself, whatever the flags below do
        if (A->single_word && ((ms > a && word_char(s[ms - 1])) || (me < b && word_char(s[me])))) continue;
        if (A->lstrip) while (ms > done && is_s(s[ms - 1])) ms--;
        if (A->rstrip) while (me < b && is_s(s[me])) me++;
        if (done < ms) gap(E, done, ms);
        emit(E, A->id, src[2 * ms], src[2 * (me - 1) + 1]);
        if (me > done) done = me;
    }
    if (done < b) gap(E, done, b);
}

static void normalized_gap(Enc *E, int a, int b) { encode_pretokens(E, a, b); }

// Input code points [a, b), between raw added tokens: normalize into E->ncp, then split at normalized added tokens
// and pre-tokenize.
static void raw_gap(Enc *E, int a, int b) {
    const HfTokenizer *t = E->t;
    const uint32_t *cp = E->cp;
    const int *src = E->src;
    int n = b - a;
    if (4 * n + 4 > E->ncap) {
        E->ncap = 8 * n + 8;
        E->ncp = xrealloc(E->ncp, sizeof(uint32_t) * (size_t)E->ncap);
        E->nsrc = xrealloc(E->nsrc, sizeof(int) * 2 * (size_t)E->ncap);
    }
    int m = 0;
    if (!t->nfc) {
        memcpy(E->ncp, cp + a, sizeof(uint32_t) * (size_t)n);
        memcpy(E->nsrc, src + 2 * a, sizeof(int) * 2 * (size_t)n);
        m = n;
    } else {
        // NFC chunk by chunk, each chunk a starter and what may join it: outputs of a chunk NFC changed all come
        // from the whole chunk (the library tracks finer alignments; spans only need to stay inside the input)
        for (int j = a; j < b;) {
            int k = j + 1;
            while (k < b && !uni_nfc_boundary(cp[k])) k++;
            int got = (k - j == 1 && cp[j] < 0x300) ? (E->ncp[m] = cp[j], 1) : uni_nfc(cp + j, k - j, E->ncp + m);
            int same = got == k - j && !memcmp(E->ncp + m, cp + j, sizeof(uint32_t) * (size_t)got);
            for (int q = 0; q < got; q++) {
                E->nsrc[2 * (m + q)] = same ? src[2 * (j + q)] : src[2 * j];
                E->nsrc[2 * (m + q) + 1] = same ? src[2 * (j + q) + 1] : src[2 * (k - 1) + 1];
            }
            m += got;
            j = k;
        }
    }
    if (t->any_normalized_added) split_added(E, E->ncp, E->nsrc, 0, m, 1, normalized_gap);
    else encode_pretokens(E, 0, m);
}

int hftok_encode(const HfTokenizer *t, const char *text, size_t len, int add_special, int **ids, int **spans) {
    CHECK_OR_DIE(len < (size_t)1 << 30, "%s: text of %zu bytes is too long to encode at once", t->source, len);
    Enc E = {0};
    E.t = t;
    E.want_spans = spans != NULL;
    bpe_byte_alphabet(E.cp_of, NULL);
    // the input as code points, each with its bytes (an ill-formed UTF-8 stretch is one U+FFFD)
    uint32_t *cp = xmalloc(sizeof(uint32_t) * (len + 1));
    int *src = xmalloc(sizeof(int) * 2 * (len + 1));
    int n = 0;
    for (size_t i = 0; i < len;) {
        int k = utf8_decode(text + i, len - i, &cp[n]);
        src[2 * n] = (int)i;
        src[2 * n + 1] = (int)(i + (size_t)k);
        n++;
        i += (size_t)k;
    }
    if (add_special) for (int i = 0; i < t->n_prefix; i++) emit(&E, t->prefix[i], 0, 0);
    E.cp = cp;
    E.src = src;
    if (t->any_raw_added) split_added(&E, cp, src, 0, n, 0, raw_gap);
    else raw_gap(&E, 0, n);
    if (add_special) for (int i = 0; i < t->n_suffix; i++) emit(&E, t->suffix[i], (int)len, (int)len);
    free(cp);
    free(src);
    free(E.ncp);
    free(E.nsrc);
    free(E.bytes);
    free(E.bsrc);
    free(E.syms);
    strbuf_free(&E.word);
    *ids = E.ids.a ? E.ids.a : xmalloc(sizeof(int));
    if (spans) *spans = E.spans.a ? E.spans.a : xmalloc(sizeof(int));
    else free(E.spans.a);
    return E.ids.n;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

char *hftok_decode(const HfTokenizer *t, const int *ids, int n, int skip_special, size_t *out_len) {
    StrBuf raw = {0};
    strbuf_put(&raw, "", 0);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        CHECK_OR_DIE(id >= 0 && id < t->vocab_size, "%s: token id %d is outside the vocabulary (0..%d)", t->source, id,
                     t->vocab_size - 1);
        if ((skip_special && t->is_special[id]) || t->dec_off[id] < 0) continue;
        strbuf_put(&raw, t->pool + t->dec_off[id], (size_t)t->dec_len[id]);
    }
    StrBuf out = {0};
    utf8_sanitize(&out, raw.data, raw.len);
    strbuf_free(&raw);
    if (out_len) *out_len = out.len;
    return out.data;
}
