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

void arena_section(Arena *a, const char *name) {
    for (int i = 0; i < a->n_sections; i++)
        if (!strcmp(a->section_name[i], name)) { a->section = i; return; }
    CHECK_OR_DIE(a->n_sections < ARENA_MAX_SECTIONS, "too many arena sections");
    a->section_name[a->n_sections] = name;
    a->section = a->n_sections++;
}

void arena_sections_add(const Arena *a, const char **names, size_t *bytes, int *n, int cap) {
    for (int i = 0; i < a->n_sections; i++) {
        int j = 0;
        while (j < *n && strcmp(names[j], a->section_name[i])) j++;
        if (j == *n) {
            if (*n == cap) continue;
            names[j] = a->section_name[i];
            bytes[j] = 0;
            (*n)++;
        }
        bytes[j] += a->section_bytes[i];
    }
}

void *arena_alloc(Arena *a, size_t bytes) {
    bytes = (bytes + 255) & ~(size_t)255;
    if (a->measuring) {
        if (a->n_sections == 0) arena_section(a, "other");
        a->section_bytes[a->section] += bytes;
        a->used += bytes;
        return NULL;
    }
    CHECK_OR_DIE(a->used + bytes <= a->cap, "arena overflow: the second layout pass asked for more than the first");
    void *p = a->base + a->used;
    a->used += bytes;
    return p;
}

void *arena_act(Arena *a, size_t n) { return arena_alloc(a, n * (size_t)a->be->act_bytes); }
void *arena_acc(Arena *a, size_t n) { return arena_alloc(a, n * (size_t)a->be->acc_bytes); }
int *arena_int(Arena *a, size_t n) { return arena_alloc(a, n * sizeof(int)); }
