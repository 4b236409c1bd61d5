#include "sample.h"

#include <math.h>
#include <stdlib.h>

#include "../util/common.h"

// ----------------------------------------------------------------------------------------------------
// Philox4x32-10: each round multiplies two counter words by fixed odd constants, keeps both halves of the
// 64-bit products and mixes them with the other two words and the key; the key is bumped by two Weyl
// constants (golden ratio, sqrt(3) - 1) between rounds.

void philox4x32_10(const uint32_t key[2], const uint32_t counter[4], uint32_t out[4]) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round) { k0 += W0; k1 += W1; }
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

double sample_uniform(uint64_t seed, uint64_t record, uint32_t sample, uint32_t step) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {step, sample, (uint32_t)record, (uint32_t)(record >> 32)};
    uint32_t r[4];
    philox4x32_10(key, ctr, r);
    // 27 + 26 bits, numpy's random_sample construction: exactly representable, never 1
    return ((double)(r[0] >> 5) * 67108864.0 + (double)(r[1] >> 6)) / 9007199254740992.0;
}

// ----------------------------------------------------------------------------------------------------

void sample_work_init(SampleWork *w, int V) {
    w->V = V;
    w->x = xmalloc(sizeof(float) * V);
    w->sel = xmalloc(sizeof(float) * V);
    w->ids = xmalloc(sizeof(int) * V);
    w->e = xmalloc(sizeof(double) * V);
    w->heap = xmalloc(sizeof(int) * V);
}

void sample_work_free(SampleWork *w) {
    free(w->x); free(w->sel); free(w->ids); free(w->e); free(w->heap);
}

int sample_is_greedy(const SamplerConfig *c) { return c->temperature <= 0 || c->top_k == 1; }

int sample_argmax(const float *logits, int V) {
    int best = -1;
    for (int i = 0; i < V; i++)
        if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;  // strict: lowest id on ties
    return best;
}

// The k-th largest of x (n), k in 1..n, by quickselect; reorders x.
static float kth_largest(float *x, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;  // position in descending order
    while (lo < hi) {
        float pivot = x[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] > pivot) i++;
            while (x[j] < pivot) j--;
            if (i <= j) { float t = x[i]; x[i] = x[j]; x[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;  // x[j+1 .. i-1] all equal the pivot
    }
    return x[want];
}

// Nucleus order: higher probability first, the lower id on ties. Max-heap of positions into w->ids.
static int heap_before(const SampleWork *w, int a, int b) {
    return w->e[a] > w->e[b] || (w->e[a] == w->e[b] && w->ids[a] < w->ids[b]);
}
static void heap_down(SampleWork *w, int n, int i) {
    int *h = w->heap;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && heap_before(w, h[l], h[top])) top = l;
        if (r < n && heap_before(w, h[r], h[top])) top = r;
        if (top == i) return;
        int t = h[i]; h[i] = h[top]; h[top] = t;
        i = top;
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int sample_token(const float *logits, int V, const SamplerConfig *c, double u, SampleWork *w) {
    CHECK_OR_DIE(V <= w->V, "sampler scratch is for %d tokens, not %d", w->V, V);
    int best = sample_argmax(logits, V);
    if (best < 0 || !isfinite(logits[best])) return -1;
    if (sample_is_greedy(c)) return best;
    // 1. temperature (in fp32, as HF divides the fp32 scores)
    for (int i = 0; i < V; i++) w->x[i] = isnan(logits[i]) ? -INFINITY : logits[i] / c->temperature;
    // 2. top-k: the threshold is the k-th largest scaled logit; ties with it stay
    float thresh = -INFINITY;
    if (c->top_k > 0 && c->top_k < V) {
        for (int i = 0; i < V; i++) w->sel[i] = w->x[i];
        thresh = kth_largest(w->sel, V, c->top_k);
    }
    // 3. softmax over the kept tokens, in double, relative to the largest
    const double xmax = w->x[best];
    int n = 0;
    double total = 0;
    for (int i = 0; i < V; i++) {
        if (w->x[i] < thresh || w->x[i] == -INFINITY) continue;
        w->ids[n] = i;
        w->e[n] = exp((double)w->x[i] - xmax);
        total += w->e[n];
        n++;
    }
    // 4. top-p: pop the most probable tokens until they hold top_p of the mass; they become the kept set
    if (c->top_p < 1) {
        for (int i = 0; i < n; i++) w->heap[i] = i;
        for (int i = n / 2 - 1; i >= 0; i--) heap_down(w, n, i);
        double target = (double)c->top_p * total, mass = 0;
        int kept = 0, heap_n = n;
        while (heap_n > 0 && (kept == 0 || mass < target)) {
            int top = w->heap[0];
            mass += w->e[top];
            w->heap[0] = w->heap[--heap_n];
            heap_down(w, heap_n, 0);
            // the popped positions collect at the end of the heap array, in order of popping
            w->heap[n - 1 - kept] = top;
            kept++;
        }
        // the kept set, by increasing id, replaces the candidate list (ids and e at the same positions)
        int *pos = w->heap + n - kept;
        for (int i = 0; i < kept; i++) pos[i] = w->ids[pos[i]];  // position -> token id
        qsort(pos, kept, sizeof(int), cmp_int);
        total = 0;
        for (int i = 0; i < kept; i++) {
            w->ids[i] = pos[i];
            w->e[i] = exp((double)w->x[pos[i]] - xmax);
            total += w->e[i];
        }
        n = kept;
    }
    // 5. the draw, walking the kept tokens by increasing id
    double r = u * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += w->e[i];
        if (acc > r) return w->ids[i];
    }
    return w->ids[n - 1];  // u * total rounded up to the full sum
}
