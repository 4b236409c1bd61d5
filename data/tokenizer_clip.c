// CLIP BPE tokenizer (see tokenizer_clip.h for the rules and what the text cleaning covers).
#include "tokenizer_clip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../util/common.h"
#include "bpe.h"
#include "unicode.h"

#define CLIP_N_MERGES (49152 - 256 - 2)  // merge lines used by CLIP (48894), after the header line

// ---------------------------------------------------------------------------------------------------------------
// Code point vectors: the cleaning works on code points, as Python's str does.

typedef struct { uint32_t *a; int n, cap; } Cps;

static void cps_push(Cps *v, uint32_t c) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->a = xrealloc(v->a, sizeof(uint32_t) * (size_t)v->cap);
    }
    v->a[v->n++] = c;
}

static void cps_push_n(Cps *v, const uint32_t *c, int n) { for (int i = 0; i < n; i++) cps_push(v, c[i]); }

static void cps_swap(Cps *a, Cps *b) { Cps t = *a; *a = *b; *b = t; }

static int cps_equal(const Cps *a, const Cps *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->a, b->a, sizeof(uint32_t) * (size_t)a->n) == 0);
}

static int is_ascii_alnum(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// ---------------------------------------------------------------------------------------------------------------
// HTML entities (a common subset of HTML5's named references; `legacy`: also recognized without the ';',
// as HTML5 and Python's html.unescape do for these names).

typedef struct { const char *name; uint32_t cp; int legacy; } Entity;
static const Entity ENTITIES[] = {
    {"amp", 0x26, 1}, {"lt", 0x3C, 1}, {"gt", 0x3E, 1}, {"quot", 0x22, 1}, {"apos", 0x27, 0},
    {"nbsp", 0xA0, 1}, {"copy", 0xA9, 1}, {"reg", 0xAE, 1}, {"trade", 0x2122, 0}, {"hellip", 0x2026, 0},
    {"mdash", 0x2014, 0}, {"ndash", 0x2013, 0}, {"lsquo", 0x2018, 0}, {"rsquo", 0x2019, 0}, {"ldquo", 0x201C, 0},
    {"rdquo", 0x201D, 0}, {"sbquo", 0x201A, 0}, {"bdquo", 0x201E, 0}, {"laquo", 0xAB, 1}, {"raquo", 0xBB, 1},
    {"deg", 0xB0, 1}, {"middot", 0xB7, 1}, {"times", 0xD7, 1}, {"divide", 0xF7, 1}, {"euro", 0x20AC, 0},
    {"pound", 0xA3, 1}, {"yen", 0xA5, 1}, {"cent", 0xA2, 1}, {"sect", 0xA7, 1}, {"para", 0xB6, 1},
    {"bull", 0x2022, 0}, {"iexcl", 0xA1, 1}, {"iquest", 0xBF, 1}, {"szlig", 0xDF, 1}, {"aacute", 0xE1, 1},
    {"agrave", 0xE0, 1}, {"acirc", 0xE2, 1}, {"auml", 0xE4, 1}, {"atilde", 0xE3, 1}, {"aring", 0xE5, 1},
    {"aelig", 0xE6, 1}, {"ccedil", 0xE7, 1}, {"eacute", 0xE9, 1}, {"egrave", 0xE8, 1}, {"ecirc", 0xEA, 1},
    {"euml", 0xEB, 1}, {"iacute", 0xED, 1}, {"igrave", 0xEC, 1}, {"icirc", 0xEE, 1}, {"iuml", 0xEF, 1},
    {"ntilde", 0xF1, 1}, {"oacute", 0xF3, 1}, {"ograve", 0xF2, 1}, {"ocirc", 0xF4, 1}, {"ouml", 0xF6, 1},
    {"otilde", 0xF5, 1}, {"oslash", 0xF8, 1}, {"uacute", 0xFA, 1}, {"ugrave", 0xF9, 1}, {"ucirc", 0xFB, 1},
    {"uuml", 0xFC, 1}, {"yacute", 0xFD, 1}, {"yuml", 0xFF, 1}, {"Aacute", 0xC1, 1}, {"Agrave", 0xC0, 1},
    {"Auml", 0xC4, 1}, {"Ccedil", 0xC7, 1}, {"Eacute", 0xC9, 1}, {"Egrave", 0xC8, 1}, {"Ntilde", 0xD1, 1},
    {"Oacute", 0xD3, 1}, {"Ouml", 0xD6, 1}, {"Uacute", 0xDA, 1}, {"Uuml", 0xDC, 1}, {"AMP", 0x26, 1},
    {"LT", 0x3C, 1}, {"GT", 0x3E, 1}, {"QUOT", 0x22, 1}, {"COPY", 0xA9, 1}, {"REG", 0xAE, 1},
    {"plusmn", 0xB1, 1}, {"micro", 0xB5, 1}, {"frac12", 0xBD, 1}, {"frac14", 0xBC, 1}, {"frac34", 0xBE, 1},
    {"sup2", 0xB2, 1}, {"sup3", 0xB3, 1}, {"shy", 0xAD, 1}, {"ensp", 0x2002, 0}, {"emsp", 0x2003, 0},
    {"thinsp", 0x2009, 0}, {"zwnj", 0x200C, 0}, {"zwj", 0x200D, 0}, {"lrm", 0x200E, 0}, {"rlm", 0x200F, 0},
    {"larr", 0x2190, 0}, {"rarr", 0x2192, 0}, {"uarr", 0x2191, 0}, {"darr", 0x2193, 0}, {"hearts", 0x2665, 0},
    {"check", 0x2713, 0},
};

// Name s[0..n) (code points) in the table; -1 if absent.
static int entity_find(const uint32_t *s, int n, int need_legacy) {
    for (size_t k = 0; k < sizeof(ENTITIES) / sizeof(ENTITIES[0]); k++) {
        const char *name = ENTITIES[k].name;
        if ((int)strlen(name) != n || (need_legacy && !ENTITIES[k].legacy)) continue;
        int i = 0;
        while (i < n && s[i] == (uint32_t)(unsigned char)name[i]) i++;
        if (i == n) return (int)k;
    }
    return -1;
}

// Windows-1252 for 0x80..0x9F (the five undefined bytes map to themselves): what Python's html module makes of
// numeric references in that range, and what ftfy's fix_c1_controls makes of C1 control characters.
static const uint16_t CP1252[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
    0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
    0x0153, 0x9D, 0x017E, 0x0178};

// The character a numeric reference stands for (html.unescape's rules); 0 = removed, else the code point.
static uint32_t numeric_ref(uint64_t num) {
    if (num == 0) return 0xFFFD;
    if (num == 0x0D) return 0x0D;
    if (num >= 0x80 && num <= 0x9F) return CP1252[num - 0x80];
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return 0xFFFD;
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return 0;
    return (uint32_t)num;
}

// Parses digits of a numeric reference at s[i..n) ("&#" already consumed). Returns the end index, 0 if no digit.
static int parse_number(const uint32_t *s, int i, int n, int hex, uint64_t *num) {
    int j = i;
    uint64_t v = 0;
    while (j < n) {
        uint32_t c = s[j];
        int d = c >= '0' && c <= '9' ? (int)(c - '0')
              : hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (int)((c | 0x20) - 'a' + 10) : -1;
        if (d < 0) break;
        if (v < ((uint64_t)1 << 40)) v = v * (hex ? 16 : 10) + (uint64_t)d;
        j++;
    }
    *num = v;
    return j > i ? j : 0;
}

// Uppercase of the few characters an uppercased entity name (&EACUTE;) can stand for (ftfy decodes those).
static int upper_latin(uint32_t c, uint32_t out[2]) {
    if (c == 0xDF) { out[0] = out[1] = 'S'; return 2; }
    if (c == 0xFF) { out[0] = 0x178; return 1; }
    if (c == 0xB5) { out[0] = 0x39C; return 1; }
    out[0] = (c >= 0xE0 && c <= 0xFE && c != 0xF7) ? c - 0x20 : c;
    return 1;
}

// ftfy's unescape_html: only "&#?[0-9A-Za-z]{1,24};" forms, named ones (and uppercased lowercase names) or
// numeric ones that decode completely.
static void ftfy_unescape(const Cps *in, Cps *out) {
    out->n = 0;
    for (int i = 0; i < in->n; i++) {
        const uint32_t *s = in->a;
        if (s[i] != '&') { cps_push(out, s[i]); continue; }
        int j = i + 1, hash = j < in->n && s[j] == '#';
        if (hash) j++;
        int k = j;
        while (k < in->n && k - j < 24 && is_ascii_alnum(s[k])) k++;
        if (k == j || k >= in->n || s[k] != ';') { cps_push(out, s[i]); continue; }
        int done = 0;
        if (!hash) {
            int e = entity_find(s + j, k - j, 0);
            if (e >= 0) { cps_push(out, ENTITIES[e].cp); done = 1; }
            else {  // an all-uppercase name whose lowercase form is an entity
                uint32_t low[24];
                int all_upper = 1;
                for (int q = j; q < k; q++) {
                    if (s[q] >= 'a' && s[q] <= 'z') all_upper = 0;
                    low[q - j] = (s[q] >= 'A' && s[q] <= 'Z') ? s[q] + 32 : s[q];
                }
                e = all_upper ? entity_find(low, k - j, 0) : -1;
                if (e >= 0) {
                    uint32_t up[2];
                    cps_push_n(out, up, upper_latin(ENTITIES[e].cp, up));
                    done = 1;
                }
            }
        } else {
            uint64_t num;
            int hex = s[j] == 'x' || s[j] == 'X';
            int end = parse_number(s, j + hex, k, hex, &num);
            if (end == k) {
                uint32_t c = numeric_ref(num);
                if (c) cps_push(out, c);
                done = 1;
            }
        }
        if (done) i = k;
        else cps_push(out, s[i]);
    }
}

// Python's html.unescape.
static void html_unescape(const Cps *in, Cps *out) {
    out->n = 0;
    for (int i = 0; i < in->n; i++) {
        const uint32_t *s = in->a;
        int n = in->n;
        if (s[i] != '&') { cps_push(out, s[i]); continue; }
        if (i + 1 < n && s[i + 1] == '#') {
            int hex = i + 2 < n && (s[i + 2] == 'x' || s[i + 2] == 'X');
            uint64_t num;
            int end = parse_number(s, i + 2 + hex, n, hex, &num);
            if (!end) { cps_push(out, s[i]); continue; }
            uint32_t c = numeric_ref(num);
            if (c) cps_push(out, c);
            i = (end < n && s[end] == ';') ? end : end - 1;
            continue;
        }
        // Named: up to 32 characters that are not \t \n \f space < & # ; then an optional ';'.
        int j = i + 1;
        while (j < n && j - (i + 1) < 32 && s[j] != '\t' && s[j] != '\n' && s[j] != '\f' && s[j] != ' ' &&
               s[j] != '<' && s[j] != '&' && s[j] != '#' && s[j] != ';')
            j++;
        if (j == i + 1) { cps_push(out, s[i]); continue; }
        if (j < n && s[j] == ';') {
            int e = entity_find(s + i + 1, j - i - 1, 0);
            if (e >= 0) { cps_push(out, ENTITIES[e].cp); i = j; continue; }
        }
        // No exact match: the longest prefix that is a name valid without ';' (so "&amplifier" -> "&lifier").
        int done = 0;
        for (int len = j - i - 1; len >= 2 && !done; len--) {
            int e = entity_find(s + i + 1, len, 1);
            if (e >= 0) { cps_push(out, ENTITIES[e].cp); i += len; done = 1; }
        }
        if (!done) cps_push(out, s[i]);
    }
}

// ftfy's remove_control_chars set.
static int ftfy_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// The character-level ftfy fixes (C1 controls, ligatures, width, quotes, control characters) and NFC, one pass.
static void ftfy_chars_nfc(const Cps *in, Cps *out) {
    Cps tmp = {0};
    for (int i = 0; i < in->n; i++) {
        uint32_t c = in->a[i], rep[3];
        if (c >= 0x80 && c <= 0x9F) c = CP1252[c - 0x80];  // fix_c1_controls: C1 controls as Windows-1252
        int k = uni_ftfy_ligature(c, rep);
        if (k < 0) k = uni_ftfy_width(c, rep);
        if (k >= 0) { cps_push_n(&tmp, rep, k); continue; }
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        if (ftfy_control(c)) continue;
        cps_push(&tmp, c);
    }
    // NFC (ftfy's last step), skipped when the text is ASCII
    int ascii = 1;
    for (int i = 0; i < tmp.n && ascii; i++) ascii = tmp.a[i] < 0x80;
    out->n = 0;
    if (ascii) { cps_push_n(out, tmp.a, tmp.n); free(tmp.a); return; }
    uint32_t *buf = xmalloc(sizeof(uint32_t) * (size_t)(4 * tmp.n + 1));
    int m = uni_nfc(tmp.a, tmp.n, buf);
    cps_push_n(out, buf, m);
    free(buf);
    free(tmp.a);
}

// Python str.lower() on one string, with U+0130 and the final-sigma rule.
static void lower_all(const Cps *in, Cps *out) {
    out->n = 0;
    for (int i = 0; i < in->n; i++) {
        uint32_t c = in->a[i];
        if (c == 0x130) { cps_push(out, 'i'); cps_push(out, 0x307); continue; }
        if (c == 0x3A3) {
            int j = i - 1, final = 0;
            while (j >= 0 && uni_is_case_ignorable(in->a[j])) j--;
            if (j >= 0 && uni_is_cased(in->a[j])) {
                int q = i + 1;
                while (q < in->n && uni_is_case_ignorable(in->a[q])) q++;
                final = q == in->n || !uni_is_cased(in->a[q]);
            }
            cps_push(out, final ? 0x3C2 : 0x3C3);
            continue;
        }
        cps_push(out, uni_lower1(c));
    }
}

// ftfy.fix_text (the subset above) on one line: its fixes repeat until the line stops changing.
static void ftfy_line(Cps *line, int unescape) {
    Cps b = {0}, prev = {0};
    for (int iter = 0; iter < 16; iter++) {
        prev.n = 0;
        cps_push_n(&prev, line->a, line->n);
        if (unescape) { ftfy_unescape(line, &b); cps_swap(line, &b); }
        ftfy_chars_nfc(line, &b);
        cps_swap(line, &b);
        if (cps_equal(line, &prev)) break;
    }
    free(b.a);
    free(prev.a);
}

// The whole cleaning: ftfy.fix_text (subset), html.unescape twice, strip, whitespace collapse, lowercase.
static void clean_cps(const char *text, size_t len, Cps *out) {
    Cps a = {0}, b = {0}, line = {0};
    // ftfy.fix_text works line by line ("\n" ends a line); from the first line that contains '<' on, it stops
    // decoding HTML entities (they may be markup).
    int unescape = 1;
    for (size_t i = 0; i < len;) {
        line.n = 0;
        int has_lt = 0;
        while (i < len) {
            uint32_t c;
            i += (size_t)utf8_decode(text + i, len - i, &c);
            cps_push(&line, c);
            if (c == '<') has_lt = 1;
            if (c == '\n') break;
        }
        if (has_lt) unescape = 0;
        ftfy_line(&line, unescape);
        cps_push_n(&a, line.a, line.n);
    }
    free(line.a);
    html_unescape(&a, &b);
    html_unescape(&b, &a);
    // strip + collapse whitespace runs to one space + strip
    b.n = 0;
    for (int i = 0; i < a.n; i++) {
        if (uni_is_space(a.a[i])) {
            if (b.n > 0 && b.a[b.n - 1] != ' ') cps_push(&b, ' ');
        } else cps_push(&b, a.a[i]);
    }
    if (b.n > 0 && b.a[b.n - 1] == ' ') b.n--;
    lower_all(&b, out);
    free(a.a);
    free(b.a);
}

char *cliptok_clean(const char *text, size_t len) {
    Cps c = {0};
    clean_cps(text, len, &c);
    StrBuf s = {0};
    strbuf_put(&s, "", 0);
    for (int i = 0; i < c.n; i++) strbuf_put_cp(&s, c.a[i]);
    free(c.a);
    return s.data;
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 16777619u; }
    return h;
}

static int str_find(const ClipTokenizer *t, const char *s, size_t n) {
    uint32_t i = hash_bytes(s, n) & t->str_mask;
    for (;;) {
        int id = t->str_table[i];
        if (id < 0) return -1;
        if ((size_t)t->token_len[id] == n && memcmp(t->tokens[id], s, n) == 0) return id;
        i = (i + 1) & t->str_mask;
    }
}

static uint64_t pair_key(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static uint32_t hash_u64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return (uint32_t)k;
}

static int merge_find(const ClipTokenizer *t, int a, int b) {
    uint64_t key = pair_key(a, b);
    uint32_t i = hash_u64(key) & t->merge_mask;
    while (t->merge_rank[i] >= 0) {
        if (t->merge_keys[i] == key) return t->merge_rank[i];
        i = (i + 1) & t->merge_mask;
    }
    return -1;
}

static void set_token(ClipTokenizer *t, int id, const char *s, size_t n) {
    t->tokens[id] = xmalloc(n + 1);
    memcpy(t->tokens[id], s, n);
    t->tokens[id][n] = 0;
    t->token_len[id] = (int)n;
}

static void str_insert(ClipTokenizer *t, int id) {
    uint32_t i = hash_bytes(t->tokens[id], (size_t)t->token_len[id]) & t->str_mask;
    while (t->str_table[i] >= 0) i = (i + 1) & t->str_mask;
    t->str_table[i] = id;
}

static char *read_gz(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) fatal("%s: cannot open", path);
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 65536 + 1 > cap) { cap *= 2; buf = xrealloc(buf, cap); }
        int got = gzread(f, buf + n, 65536);
        if (got < 0) {
            int errnum;
            const char *msg = gzerror(f, &errnum);
            fatal("%s: cannot read: %s", path, msg);
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

ClipTokenizer *cliptok_load(const char *path) {
    if (!file_exists(path)) fatal("%s: no such file (the CLIP BPE vocabulary, bpe_simple_vocab_16e6.txt.gz)", path);
    size_t len;
    char *text = read_gz(path, &len);
    ClipTokenizer *t = xcalloc(1, sizeof(ClipTokenizer));
    t->source = xstrdup(path);
    t->vocab_size = CLIP_VOCAB_SIZE;
    t->tokens = xcalloc((size_t)t->vocab_size, sizeof(char *));
    t->token_len = xcalloc((size_t)t->vocab_size, sizeof(int));
    uint32_t cp_of[256];
    int order[256];
    bpe_byte_alphabet(cp_of, order);  // the vocabulary lists the printable bytes first
    memset(t->cp_to_byte, 0, sizeof(t->cp_to_byte));
    for (int i = 0; i < 256; i++) {
        char sym[8];
        int k = utf8_encode(cp_of[order[i]], sym);
        set_token(t, i, sym, (size_t)k);
        memcpy(sym + k, "</w>", 4);
        set_token(t, 256 + i, sym, (size_t)k + 4);
        t->byte_id[order[i]] = i;
        t->cp_to_byte[cp_of[order[i]]] = (uint8_t)order[i];
    }
    uint32_t size = 1;
    while (size < (uint32_t)t->vocab_size * 2) size <<= 1;
    t->str_table = xmalloc(sizeof(int) * size);
    for (uint32_t i = 0; i < size; i++) t->str_table[i] = -1;
    t->str_mask = size - 1;
    for (int i = 0; i < 512; i++) str_insert(t, i);
    size = 1;
    while (size < CLIP_N_MERGES * 2) size <<= 1;
    t->merge_keys = xmalloc(sizeof(uint64_t) * size);
    t->merge_rank = xmalloc(sizeof(int) * size);
    for (uint32_t i = 0; i < size; i++) t->merge_rank[i] = -1;
    t->merge_mask = size - 1;
    // Line 0 is a version header; lines 1..48894 are "left right" merges in rank order.
    char *line = text, *end = text + len;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    if (!nl || strstr(line, "version") == NULL || strstr(line, "version") > nl)
        fatal("%s: not a CLIP BPE merges file (no '#version' header line)", path);
    line = nl + 1;
    for (int r = 0; r < CLIP_N_MERGES; r++) {
        nl = line < end ? memchr(line, '\n', (size_t)(end - line)) : NULL;
        if (!nl) fatal("%s: has %d merge lines, CLIP needs %d", path, r, CLIP_N_MERGES);
        char *sp = memchr(line, ' ', (size_t)(nl - line));
        if (!sp || sp == line || sp + 1 == nl || memchr(sp + 1, ' ', (size_t)(nl - sp - 1)))
            fatal("%s: line %d is not a 'left right' merge", path, r + 2);
        int a = str_find(t, line, (size_t)(sp - line)), b = str_find(t, sp + 1, (size_t)(nl - sp - 1));
        if (a < 0 || b < 0) fatal("%s: line %d merges a token that no earlier line made", path, r + 2);
        int id = 512 + r;
        size_t la = (size_t)t->token_len[a], lb = (size_t)t->token_len[b];
        char *s = xmalloc(la + lb + 1);
        memcpy(s, t->tokens[a], la);
        memcpy(s + la, t->tokens[b], lb);
        s[la + lb] = 0;
        t->tokens[id] = s;
        t->token_len[id] = (int)(la + lb);
        if (str_find(t, s, la + lb) >= 0) fatal("%s: line %d makes a token that already exists", path, r + 2);
        str_insert(t, id);
        uint64_t key = pair_key(a, b);
        uint32_t i = hash_u64(key) & t->merge_mask;
        while (t->merge_rank[i] >= 0) {
            if (t->merge_keys[i] == key) fatal("%s: line %d repeats a merge", path, r + 2);
            i = (i + 1) & t->merge_mask;
        }
        t->merge_keys[i] = key;
        t->merge_rank[i] = r;
        line = nl + 1;
    }
    set_token(t, CLIP_SOT, "<|startoftext|>", 15);
    set_token(t, CLIP_EOT, "<|endoftext|>", 13);
    str_insert(t, CLIP_SOT);
    str_insert(t, CLIP_EOT);
    free(text);
    return t;
}

void cliptok_free(ClipTokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->vocab_size; i++) free(t->tokens[i]);
    free(t->tokens);
    free(t->token_len);
    free(t->merge_keys);
    free(t->merge_rank);
    free(t->str_table);
    free(t->source);
    free(t);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

static int clip_can_merge(const void *ctx, const BpeSymbol *a, const BpeSymbol *b, int *merged_id, float *priority) {
    int rank = merge_find(ctx, a->id, b->id);
    if (rank < 0) return 0;
    *merged_id = 512 + rank;
    *priority = -(float)rank;  // lowest rank first; ranks < 2^24 are exact in a float
    return 1;
}

typedef struct { int *a; int n, cap; } Ids;

static void ids_push(Ids *v, int id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->a = xrealloc(v->a, sizeof(int) * (size_t)v->cap);
    }
    v->a[v->n++] = id;
}

// BPE of one word (code points w[0..n)), appending ids.
static void encode_word(const ClipTokenizer *t, const uint32_t *w, int n, Ids *out, BpeSymbol **syms, int *cap) {
    char bytes[4];
    int nb = 0;
    for (int i = 0; i < n; i++) nb += utf8_encode(w[i], bytes);
    if (nb > *cap) { *cap = nb * 2; *syms = xrealloc(*syms, sizeof(BpeSymbol) * (size_t)*cap); }
    BpeSymbol *s = *syms;
    int k = 0;
    for (int i = 0; i < n; i++) {
        int m = utf8_encode(w[i], bytes);
        for (int q = 0; q < m; q++, k++) s[k] = (BpeSymbol){t->byte_id[(uint8_t)bytes[q]], k, 1, k - 1, k + 1};
    }
    s[nb - 1].next = -1;
    s[nb - 1].id += 256;  // the end-of-word form of the last byte
    bpe_merge(s, nb, clip_can_merge, t);
    for (int i = 0; i >= 0; i = s[i].next) ids_push(out, s[i].id);
}

static int match_ascii(const uint32_t *s, int n, int i, const char *lit) {
    int k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || s[i + k] != (uint32_t)(unsigned char)lit[k]) return 0;
    return k;
}

// Which part of the split pattern a character falls in: 1 [\p{L}], 2 [\p{N}], 3 [^\s\p{L}\p{N}], 0 none (skipped).
// U+0345 (combining ypogegrammeni) matches none: under the pattern's IGNORECASE flag it counts as a case variant
// of iota, so it is neither outside \p{L} nor in it (the only code point the flag affects, checked exhaustively).
static int split_class(uint32_t c) {
    if (uni_is_space(c) || c == 0x345) return 0;
    if (uni_is_letter(c)) return 1;
    if (uni_is_number(c)) return 2;
    return 3;
}

int cliptok_encode(const ClipTokenizer *t, const char *text, size_t len, int **ids) {
    Cps c = {0};
    clean_cps(text, len, &c);
    Ids out = {0};
    BpeSymbol *syms = NULL;
    int cap = 0;
    const uint32_t *s = c.a;
    int n = c.n;
    // The split pattern's alternatives in order; whatever none of them matches (whitespace) is skipped.
    for (int i = 0; i < n;) {
        int k;
        if ((k = match_ascii(s, n, i, "<|startoftext|>")) > 0) { ids_push(&out, CLIP_SOT); i += k; continue; }
        if ((k = match_ascii(s, n, i, "<|endoftext|>")) > 0) { ids_push(&out, CLIP_EOT); i += k; continue; }
        if (s[i] == '\'') {
            static const char *contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
            int hit = 0;
            for (int q = 0; q < 7 && !hit; q++) {
                // the pattern is case-insensitive; the text is lowercased already, so only ASCII case is left
                int m = 1;
                const char *lit = contractions[q];
                while (lit[m] && i + m < n && (s[i + m] | 0x20) == (uint32_t)lit[m] && s[i + m] < 0x80) m++;
                if (!lit[m]) hit = m;
            }
            if (hit) { encode_word(t, s + i, hit, &out, &syms, &cap); i += hit; continue; }
        }
        int j = i, cls = split_class(s[i]);
        if (cls == 0) { i++; continue; }
        if (cls == 2) j = i + 1;
        else while (j < n && split_class(s[j]) == cls) j++;
        encode_word(t, s + i, j - i, &out, &syms, &cap);
        i = j;
    }
    free(syms);
    free(c.a);
    if (!out.a) out.a = xmalloc(sizeof(int));
    *ids = out.a;
    return out.n;
}

int cliptok_tokenize(const ClipTokenizer *t, const char *text, size_t len, int ctx, int pad_id, int *out) {
    CHECK_OR_DIE(ctx >= 2, "CLIP context length %d is too short", ctx);
    int *ids;
    int n = cliptok_encode(t, text, len, &ids);
    int k = 0;
    out[k++] = CLIP_SOT;
    for (int i = 0; i < n && k < ctx; i++) out[k++] = ids[i];
    if (k < ctx) out[k++] = CLIP_EOT;
    else out[ctx - 1] = CLIP_EOT;  // truncated: the last position is forced to <|endoftext|>
    int used = k;
    while (k < ctx) out[k++] = pad_id;
    free(ids);
    return used;
}

char *cliptok_decode(const ClipTokenizer *t, const int *ids, int n, int skip_special, size_t *out_len) {
    StrBuf raw = {0};
    strbuf_put(&raw, "", 0);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        CHECK_OR_DIE(id >= 0 && id < t->vocab_size, "%s: token id %d is outside the vocabulary (0..%d)", t->source,
                     id, t->vocab_size - 1);
        if (skip_special && (id == CLIP_SOT || id == CLIP_EOT)) continue;
        const char *s = t->tokens[id];
        for (int k = 0; k < t->token_len[id];) {
            uint32_t cp;
            k += utf8_decode(s + k, (size_t)(t->token_len[id] - k), &cp);
            char b = (char)(cp < 324 ? t->cp_to_byte[cp] : '?');
            strbuf_put(&raw, &b, 1);
        }
    }
    StrBuf clean = {0};
    utf8_sanitize(&clean, raw.data, raw.len);
    strbuf_free(&raw);
    // "</w>" -> " " (after the UTF-8 decode, as OpenAI's decode does)
    StrBuf out = {0};
    strbuf_put(&out, "", 0);
    for (size_t i = 0; i < clean.len;) {
        if (i + 4 <= clean.len && memcmp(clean.data + i, "</w>", 4) == 0) { strbuf_putc(&out, ' '); i += 4; }
        else strbuf_putc(&out, clean.data[i++]);
    }
    strbuf_free(&clean);
    if (out_len) *out_len = out.len;
    return out.data;
}
