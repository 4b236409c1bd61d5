// A string -> int map (open addressing, FNV-1a). The scorers use it for synonym look-ups, question ids
// and image ids, the training data loader for image paths. Keys are copied; values are whatever the caller stores (usually an index).
#pragma once

typedef struct {
    char **keys;   // (cap) owned copies, NULL = empty slot
    int *vals;     // (cap)
    int n, cap;    // entries, slots (a power of two, or 0 before the first put)
} StrMap;

void strmap_init(StrMap *m);
void strmap_free(StrMap *m);
// The value stored under key, or -1 when absent (so store values >= 0).
int strmap_get(const StrMap *m, const char *key);
// Stores key -> val, replacing any previous value; returns the previous value or -1.
int strmap_put(StrMap *m, const char *key, int val);
