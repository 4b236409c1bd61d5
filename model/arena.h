// Activation memory is laid out in two passes: a "measure" pass sums the sizes every module asks for,
// then one backend allocation holds them all and a second pass hands out the pointers. This keeps the
// peak memory known before the first step and gives one place to print a breakdown.
#pragma once
#include <stddef.h>

#include "ops.h"

#define ARENA_MAX_SECTIONS 16

typedef struct {
    const Backend *be;
    char *base;
    size_t used, cap;
    int measuring;
    // what the measure pass counted under each section name, for the breakdown
    const char *section_name[ARENA_MAX_SECTIONS];
    size_t section_bytes[ARENA_MAX_SECTIONS];
    int n_sections, section;
} Arena;

Arena arena_new(const Backend *be);           // starts in measure mode
void arena_commit(Arena *a);                  // allocates what was measured; the next pass gets pointers
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t bytes);    // NULL while measuring; 256-byte aligned
void *arena_act(Arena *a, size_t n);          // n act elements
void *arena_acc(Arena *a, size_t n);          // n acc elements
int *arena_int(Arena *a, size_t n);           // n int32
// Later allocations count under `name` (a string literal) in the breakdown; "other" before the first call.
void arena_section(Arena *a, const char *name);
// Adds this arena's sections into (names, bytes, *n) (at most `cap` entries; equal names merge), so the
// arenas of several models or row groups print as one breakdown.
void arena_sections_add(const Arena *a, const char **names, size_t *bytes, int *n, int cap);
