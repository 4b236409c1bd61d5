// Test helpers for JSONL fixtures (tests/fixtures/...): read every line as a cJSON object, compare id lists.
#pragma once
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "test.h"

// All non-blank lines of a JSONL file, parsed; dies naming the file and line on a parse error.
static inline cJSON **jsonl_read(const char *path, int *n_out) {
    size_t len;
    char *text = read_file(path, &len);
    int n = 0, cap = 64;
    cJSON **rows = xmalloc(sizeof(cJSON *) * (size_t)cap);
    int lineno = 0;
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t l = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        lineno++;
        if (l > 0) {
            cJSON *o = cJSON_ParseWithLength(line, l);
            if (!o) fatal("%s:%d: not valid JSON", path, lineno);
            if (n == cap) { cap *= 2; rows = xrealloc(rows, sizeof(cJSON *) * (size_t)cap); }
            rows[n++] = o;
        }
        line += l + 1;
    }
    free(text);
    *n_out = n;
    return rows;
}

static inline void jsonl_free(cJSON **rows, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(rows[i]);
    free(rows);
}

// A JSON array of integers as a malloc'd int array.
static inline int *json_ints(const cJSON *arr, int *n_out) {
    int n = cJSON_GetArraySize(arr), k = 0;
    int *v = xmalloc(sizeof(int) * (size_t)(n + 1));
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) v[k++] = (int)it->valuedouble;
    *n_out = n;
    return v;
}

// 1 if a[0..na) == the JSON int array b; on a mismatch, reports the first difference with `what`.
static inline int ids_match(const int *a, int na, const cJSON *b, const char *what, const char *file, int line) {
    int nb;
    int *vb = json_ints(b, &nb);
    int ok = na == nb;
    int first = -1;
    for (int i = 0; i < (na < nb ? na : nb); i++)
        if (a[i] != vb[i]) { ok = 0; first = i; break; }
    if (!ok)
        test_fail(file, line, "%s: %d ids vs %d expected; first difference at %d (%d vs %d)", what, na, nb, first,
                  first >= 0 ? a[first] : -1, first >= 0 ? vb[first] : -1);
    free(vb);
    return ok;
}
#define EXPECT_IDS(a, na, json, what) ids_match(a, na, json, what, __FILE__, __LINE__)

// A fixture's text: "text_hex" (exact bytes, for strings with a NUL) or "text". Returns a malloc'd buffer.
static inline char *fixture_text(const cJSON *row, size_t *len) {
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(row, "text_hex");
    if (cJSON_IsString(hex)) {
        size_t n = strlen(hex->valuestring) / 2;
        char *s = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(hex->valuestring + 2 * i, "%2x", &v);
            s[i] = (char)v;
        }
        s[n] = 0;
        *len = n;
        return s;
    }
    const char *t = cJSON_GetObjectItemCaseSensitive(row, "text")->valuestring;
    *len = strlen(t);
    return xstrdup(t);
}
