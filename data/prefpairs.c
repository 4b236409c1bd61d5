#include "prefpairs.h"

#include <ctype.h>
#include <string.h>

char *pref_clean_answer(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (!strncmp(r, "</s>", 4)) { r += 4; continue; }
        *w++ = (*r == '\n' || *r == '\r') ? ' ' : *r;
        r++;
    }
    *w = 0;
    size_t n = strlen(s), lead = 0;
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    while (isspace((unsigned char)s[lead])) lead++;
    memmove(s, s + lead, n - lead + 1);
    return s;
}

char *seva_clean_answer(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (!strncmp(r, "</s>", 4)) { r += 4; continue; }  // .replace('</s>', '')
        if (*r == '\n') { r++; continue; }                 // .replace('\n', '')
        *w++ = *r++;
    }
    *w = 0;
    return s;
}

int seva_keep(const char *raw_chosen, const char *raw_rejected) { return strcmp(raw_chosen, raw_rejected) != 0; }

int pref_word_count(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        int sp = isspace((unsigned char)*s);
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

int clipdpo_pick(const double *score, const int *words, int n, double min_score, double min_gap, double max_length_ratio,
                 int *chosen, int *rejected) {
    int hi = -1, lo = -1;
    for (int i = 0; i < n; i++) {
        if (!(score[i] >= min_score)) continue;
        if (hi < 0 || score[i] > score[hi]) hi = i;   // ties: the first candidate
        if (lo < 0 || score[i] < score[lo]) lo = i;
    }
    if (hi < 0 || hi == lo || score[hi] - score[lo] < min_gap) return 0;
    const int a = words[hi], b = words[lo], longer = a > b ? a : b, shorter = a > b ? b : a;
    if (shorter <= 0 || (double)longer / shorter > max_length_ratio) return 0;
    *chosen = hi;
    *rejected = lo;
    return 1;
}
