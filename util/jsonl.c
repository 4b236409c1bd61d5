#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int json_error_line(const char *text, const char *end) {
    int line = 1;
    for (const char *p = text; end && p < end && *p; p++) line += *p == '\n';
    return line;
}

void jsonl_open(JsonlReader *r, const char *path) {
    memset(r, 0, sizeof(*r));
    if (!strcmp(path, "-")) {
        r->f = stdin;
        r->path = "<stdin>";
        return;
    }
    r->f = fopen(path, "rb");
    if (!r->f) fatal("%s: cannot open: %s", path, strerror(errno));
    r->path = path;
    r->owns = 1;
    int c;
    while ((c = fgetc(r->f)) == ' ' || c == '\t' || c == '\r' || c == '\n') {}
    if (c != '[') {
        rewind(r->f);
        return;
    }
    size_t len;
    char *text = read_file(path, &len);
    const char *end = NULL;
    cJSON *array = cJSON_ParseWithOpts(text, &end, 1);
    if (!array) fatal("%s:%d: malformed JSON (the file is one JSON array)", path, json_error_line(text, end));
    if (!cJSON_IsArray(array)) fatal("%s: expected a JSON array of records", path);
    free(text);
    fclose(r->f);
    r->f = NULL;
    r->owns = 0;
    r->array = array;
}

void jsonl_open_array(JsonlReader *r, cJSON *array, const char *path) {
    memset(r, 0, sizeof(*r));
    r->path = path;
    r->array = array;
}

// the next object of an array, detached (the caller owns it)
static cJSON *array_next(JsonlReader *r, int skip_bad, int *n_bad) {
    for (;;) {
        cJSON *j = cJSON_DetachItemFromArray(r->array, 0);
        if (!j) return NULL;
        r->line++;
        if (cJSON_IsObject(j)) return j;
        cJSON_Delete(j);
        if (!skip_bad) fatal("%s: record %d: expected a JSON object", r->path, r->line);
        fprintf(stderr, "vlm: warning: %s: record %d: expected a JSON object, skipped\n", r->path, r->line);
        if (n_bad) (*n_bad)++;
    }
}

cJSON *jsonl_next(JsonlReader *r, int skip_bad, int *n_bad) {
    if (r->array) return array_next(r, skip_bad, n_bad);
    for (;;) {
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) return NULL;
        r->line++;
        while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) r->buf[--n] = 0;
        size_t skip = strspn(r->buf, " \t");
        if (r->buf[skip] == 0) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(r->buf, &end, 1);
        const char *why = NULL;
        if (!j) why = "malformed JSON";
        else if (!cJSON_IsObject(j)) why = "expected a JSON object";
        if (!why) return j;
        cJSON_Delete(j);
        if (!skip_bad) fatal("%s:%d: %s", r->path, r->line, why);
        fprintf(stderr, "vlm: warning: %s:%d: %s, skipped\n", r->path, r->line, why);
        if (n_bad) (*n_bad)++;
    }
}

void jsonl_close(JsonlReader *r) {
    if (r->owns) fclose(r->f);
    cJSON_Delete(r->array);
    free(r->buf);
    memset(r, 0, sizeof(*r));
}
