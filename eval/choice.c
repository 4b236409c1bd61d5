#include "choice.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/common.h"

static int is_letter(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); }

// s[0..n) without surrounding spaces and separator punctuation, as a fresh string.
static char *trimmed(const char *a, const char *b) {
    while (a < b && (isspace((unsigned char)*a) || *a == ',')) a++;
    while (b > a && (isspace((unsigned char)b[-1]) || b[-1] == ',' || b[-1] == ';')) b--;
    char *s = xmalloc((size_t)(b - a) + 1);
    memcpy(s, a, (size_t)(b - a));
    s[b - a] = 0;
    return s;
}

void choice_options_parse(const char *s, ChoiceOptions *o) {
    memset(o, 0, sizeof(*o));
    const char *start[26];
    const char *end[26];
    for (const char *p = s; *p && o->n_options < 26; p++) {
        if (p[0] == '(' && is_letter((unsigned char)p[1]) && p[2] == ')') {
            if (o->n_options) end[o->n_options - 1] = p;
            o->letters[o->n_options] = lower(p[1]);
            start[o->n_options++] = p + 3;
            p += 2;
        }
    }
    if (o->n_options) end[o->n_options - 1] = s + strlen(s);
    for (int i = 0; i < o->n_options; i++) o->texts[i] = trimmed(start[i], end[i]);
}

int choice_options_from_list(const char *const *texts, int n, ChoiceOptions *o) {
    memset(o, 0, sizeof(*o));
    if (n > 26) return 0;
    for (int i = 0; i < n; i++) {
        o->letters[i] = (char)('a' + i);
        o->texts[i] = trimmed(texts[i], texts[i] + strlen(texts[i]));
    }
    o->n_options = n;
    return 1;
}

void choice_options_free(ChoiceOptions *o) {
    for (int i = 0; i < o->n_options; i++) free(o->texts[i]);
    memset(o, 0, sizeof(*o));
}

// Python's re.sub(r'[\(\)\s]', '', s) on an already lowercased string: parentheses and whitespace removed.
static void clean(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n && s[i]; i++)
        if (s[i] != '(' && s[i] != ')' && !isspace((unsigned char)s[i])) out[k++] = lower(s[i]);
    out[k] = 0;
}

char choice_label_letter(const char *label) {
    char *c = xmalloc(strlen(label) + 1);
    clean(label, strlen(label), c);
    char letter = strlen(c) == 1 && is_letter((unsigned char)c[0]) ? c[0] : 0;
    free(c);
    return letter;
}

int choice_first4_correct(const char *response, const char *label) {
    while (isspace((unsigned char)*response)) response++;  // .strip() (the end does not matter for [:4])
    char a[8], *b = xmalloc(strlen(label) + 1);
    clean(response, 4, a);
    clean(label, strlen(label), b);
    int ok = !strcmp(a, b);
    free(b);
    return ok;
}

// ---- Cambrian's extract_mcq_answer -------------------------------------------------------------------

// Python's str.strip / rstrip / lstrip over [*a, *b) with a set of characters (NULL: whitespace).
static int in_set(char c, const char *set) { return set ? strchr(set, c) != NULL && c : isspace((unsigned char)c); }
static void lstrip(const char **a, const char *b, const char *set) { while (*a < b && in_set(**a, set)) (*a)++; }
static void rstrip(const char *a, const char **b, const char *set) { while (*b > a && in_set((*b)[-1], set)) (*b)--; }

char *choice_cambrian_extract(const char *response, int omni) {
    char *t = xstrdup(response);
    for (char *p = t; *p; p++) *p = lower(*p);
    const char *a = t, *b = t + strlen(t);
    lstrip(&a, b, NULL);
    rstrip(a, &b, NULL);
    // text.split(keyword)[-1] for each keyword found, in order: what follows its last occurrence
    static const char *const keywords[] = {"answer is", "answer is:", "answer:"};
    for (int k = 0; k < 3; k++) {
        size_t kl = strlen(keywords[k]);
        const char *last = NULL;
        for (const char *p = a; p + kl <= b; p++)
            if (!memcmp(p, keywords[k], kl)) { last = p; p += kl - 1; }  // split() takes occurrences left to right
        if (last) a = last + kl;
    }
    lstrip(&a, b, NULL);
    rstrip(a, &b, NULL);
    rstrip(a, &b, omni ? ".:," : ".");
    lstrip(&a, b, "(");
    rstrip(a, &b, ")");
    if (b > a) {  // more than one character (code point) keeps only the first
        size_t first = 1;
        unsigned char c = (unsigned char)*a;
        if (c >= 0xC0) first = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if ((size_t)(b - a) > first) b = a + first;
    }
    char *out = xmalloc((size_t)(b - a) + 1);
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = 0;
    free(t);
    return out;
}

int choice_cambrian_correct(const char *response, const char *label, const ChoiceOptions *o, int omni) {
    // gt_answer = label.lower()[1]: the character after "("
    char want[2] = {label[0] && label[1] ? lower(label[1]) : 0, 0};
    char *got = choice_cambrian_extract(response, omni);
    int ok = want[0] && !strcmp(got, want);
    if (!ok && omni && o) {
        int pos = want[0] - 'a';  // options[ord(gt) - ord('a')], compared as written
        if (pos >= 0 && pos < o->n_options && !strcmp(got, o->texts[pos])) ok = 1;
    }
    free(got);
    return ok;
}

// ---- the letter rule ---------------------------------------------------------------------------------

static int option_index(const ChoiceOptions *o, char c) {
    c = lower(c);
    for (int i = 0; i < o->n_options; i++) if (o->letters[i] == c) return i;
    return -1;
}

// Case-insensitive search for needle in hay as whole words (not inside a longer word).
static int contains_words(const char *hay, const char *needle) {
    size_t k = strlen(needle);
    if (!k) return 0;
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, k)) continue;
        int before = p > hay && isalnum((unsigned char)p[-1]), after = isalnum((unsigned char)p[k]);
        if (!before && !after) return 1;
    }
    return 0;
}

char choice_parse_letter(const char *r, const ChoiceOptions *o) {
    // 1. "(x)" markers naming exactly one option.
    char found = 0;
    int ambiguous = 0;
    for (const char *p = r; *p; p++)
        if (p[0] == '(' && p[1] && p[2] == ')' && option_index(o, p[1]) >= 0) {
            if (found && found != lower(p[1])) ambiguous = 1;
            found = lower(p[1]);
        }
    if (found && !ambiguous) return found;
    if (ambiguous) return 0;
    // 2. the whole response is a letter, give or take punctuation.
    const char *a = r, *b = r + strlen(r);
    while (a < b && (isspace((unsigned char)*a) || strchr("(\"'", *a))) a++;
    while (b > a && (isspace((unsigned char)b[-1]) || strchr(".:)\"'", b[-1]))) b--;
    if (b - a == 1 && option_index(o, *a) >= 0) return lower(*a);
    // 3. a leading letter with punctuation after it: "B. Closed", "a) Open", "A: Open".
    if (b - a >= 2 && option_index(o, a[0]) >= 0 && strchr(".:),", a[1])) return lower(a[0]);
    // 4. "answer is x", "answer: x", "option x", "choice x".
    static const char *const cues[] = {"answer is", "answer:", "option", "choice", NULL};
    for (int c = 0; cues[c]; c++) {
        size_t k = strlen(cues[c]);
        for (const char *p = r; *p; p++) {
            if (strncasecmp(p, cues[c], k) || (p > r && isalpha((unsigned char)p[-1]))) continue;
            const char *q = p + k;
            while (*q == ' ' || *q == '(') q++;
            if (option_index(o, *q) >= 0 && !isalnum((unsigned char)q[1])) return lower(*q);
        }
    }
    // 5. exactly one option's text.
    int hit = -1, hits = 0;
    for (int i = 0; i < o->n_options; i++)
        if (contains_words(r, o->texts[i])) { hit = i; hits++; }
    return hits == 1 ? o->letters[hit] : 0;
}
