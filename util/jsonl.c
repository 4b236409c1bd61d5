#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

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
}

cJSON *jsonl_next(JsonlReader *r, int skip_bad, int *n_bad) {
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
    free(r->buf);
    memset(r, 0, sizeof(*r));
}
