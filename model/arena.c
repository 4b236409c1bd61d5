#include "arena.h"

#include <string.h>

#include "../util/common.h"

Arena arena_new(const Backend *be) {
    Arena a;
    memset(&a, 0, sizeof(a));
    a.be = be;
    a.measuring = 1;
    return a;
}

void arena_commit(Arena *a) {
    CHECK_OR_DIE(a->measuring, "arena committed twice");
    a->cap = a->used;
    a->base = a->be->malloc(a->cap ? a->cap : 1);
    a->used = 0;
    a->measuring = 0;
}

void arena_free(Arena *a) {
    if (a->base) a->be->free(a->base);
    memset(a, 0, sizeof(*a));
}

void *arena_alloc(Arena *a, size_t bytes) {
    bytes = (bytes + 255) & ~(size_t)255;
    if (a->measuring) { a->used += bytes; return NULL; }
    CHECK_OR_DIE(a->used + bytes <= a->cap, "arena overflow: the second layout pass asked for more than the first");
    void *p = a->base + a->used;
    a->used += bytes;
    return p;
}

void *arena_act(Arena *a, size_t n) { return arena_alloc(a, n * (size_t)a->be->act_bytes); }
void *arena_acc(Arena *a, size_t n) { return arena_alloc(a, n * (size_t)a->be->acc_bytes); }
int *arena_int(Arena *a, size_t n) { return arena_alloc(a, n * sizeof(int)); }
