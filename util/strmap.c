#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

void strmap_init(StrMap *m) { memset(m, 0, sizeof(*m)); }

void strmap_free(StrMap *m) {
    for (int i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

// The slot holding key, or the empty slot where it would go.
static int slot(const StrMap *m, const char *key) {
    uint64_t mask = (uint64_t)m->cap - 1, h = fnv1a(key) & mask;
    while (m->keys[h] && strcmp(m->keys[h], key)) h = (h + 1) & mask;
    return (int)h;
}

int strmap_get(const StrMap *m, const char *key) {
    if (!m->cap) return -1;
    int s = slot(m, key);
    return m->keys[s] ? m->vals[s] : -1;
}

static void grow(StrMap *m) {
    StrMap big = {xcalloc((size_t)(m->cap ? 2 * m->cap : 64), sizeof(char *)),
                  xcalloc((size_t)(m->cap ? 2 * m->cap : 64), sizeof(int)), m->n, m->cap ? 2 * m->cap : 64};
    for (int i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        int s = slot(&big, m->keys[i]);
        big.keys[s] = m->keys[i];
        big.vals[s] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    *m = big;
}

int strmap_put(StrMap *m, const char *key, int val) {
    if (2 * (m->n + 1) > m->cap) grow(m);  // at most half full keeps probe runs short
    int s = slot(m, key), old = -1;
    if (m->keys[s]) old = m->vals[s];
    else { m->keys[s] = xstrdup(key); m->n++; }
    m->vals[s] = val;
    return old;
}
