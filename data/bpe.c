#include "bpe.h"

#include <stdlib.h>

#include "../util/common.h"

// A candidate merge in the heap. Entries go stale when a neighbour merges first; they are checked when popped
// (both symbols still adjacent and still carrying the ids they had when the entry was pushed) instead of being
// removed eagerly. A merge always changes the left symbol's id (it covers more text, so it is another piece),
// so the ids identify the state.
typedef struct {
    float priority;
    int left, right, left_id, right_id, merged_id;
} Candidate;

typedef struct {
    Candidate *a;
    int n, cap;
} Heap;

// x ranks before y: higher priority, then the leftmost pair.
static int before(const Candidate *x, const Candidate *y) {
    if (x->priority != y->priority) return x->priority > y->priority;
    return x->left < y->left;
}

static void heap_push(Heap *h, Candidate c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->a = xrealloc(h->a, sizeof(Candidate) * (size_t)h->cap);
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(&c, &h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = c;
}

static Candidate heap_pop(Heap *h) {
    Candidate top = h->a[0], last = h->a[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const Candidate *best = &last;
        if (l < h->n && before(&h->a[l], best)) { m = l; best = &h->a[l]; }
        if (r < h->n && before(&h->a[r], best)) { m = r; }
        if (m == i) break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (h->n > 0) h->a[i] = last;
    return top;
}

static void try_pair(Heap *h, const BpeSymbol *syms, int left, BpeCanMerge can_merge, const void *ctx) {
    if (left < 0) return;
    int right = syms[left].next;
    if (right < 0) return;
    Candidate c;
    if (!can_merge(ctx, &syms[left], &syms[right], &c.merged_id, &c.priority)) return;
    c.left = left;
    c.right = right;
    c.left_id = syms[left].id;
    c.right_id = syms[right].id;
    heap_push(h, c);
}

void bpe_merge(BpeSymbol *syms, int n, BpeCanMerge can_merge, const void *ctx) {
    if (n < 2) return;
    Heap h = {0};
    for (int i = 0; i + 1 < n; i++) try_pair(&h, syms, i, can_merge, ctx);
    while (h.n > 0) {
        Candidate c = heap_pop(&h);
        BpeSymbol *a = &syms[c.left], *b = &syms[c.right];
        if (a->len == 0 || b->len == 0 || a->next != c.right || a->id != c.left_id || b->id != c.right_id) continue;
        a->id = c.merged_id;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) syms[b->next].prev = c.left;
        b->len = 0;
        b->prev = b->next = -1;
        try_pair(&h, syms, a->prev, can_merge, ctx);
        try_pair(&h, syms, c.left, can_merge, ctx);
    }
    free(h.a);
}

void bpe_byte_alphabet(uint32_t cp_of[256], int order[256]) {
    int n = 0, extra = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable != (pass == 0)) continue;
            cp_of[b] = printable ? (uint32_t)b : 256 + (uint32_t)extra++;
            if (order) order[n] = b;
            n++;
        }
}
