#include "fields.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"
#include "../util/strmap.h"

char **fields_read(const char *path, const char *field, int n) {
    const char *plus = strchr(field, '+');
    if (plus) {  // "a+b": the values of a and of b joined by '+', one group per combination
        if (plus == field || !plus[1]) fatal("--by %s: a field name on each side of '+'", field);
        char *first = xstrdup(field);
        first[plus - field] = '\0';
        char **a = fields_read(path, first, n), **b = fields_read(path, plus + 1, n);
        free(first);
        for (int i = 0; i < n; i++) {
            char *joined = xmalloc(strlen(a[i]) + strlen(b[i]) + 2);
            sprintf(joined, "%s+%s", a[i], b[i]);
            free(a[i]);
            a[i] = joined;
        }
        fields_free(b, n);
        return a;
    }
    char **v = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    JsonlReader r;
    jsonl_open(&r, path);
    int k = 0;
    cJSON *j;
    while ((j = jsonl_next(&r, 0, NULL))) {
        if (k == n) fatal("%s: more records than the %d questions scored from it", path, n);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, field);
        char buf[64];
        if (!f || cJSON_IsNull(f)) v[k] = xstrdup("none");
        else if (cJSON_IsString(f)) v[k] = xstrdup(f->valuestring);
        else if (cJSON_IsBool(f)) v[k] = xstrdup(cJSON_IsTrue(f) ? "true" : "false");
        else if (cJSON_IsNumber(f)) { snprintf(buf, sizeof(buf), "%g", f->valuedouble); v[k] = xstrdup(buf); }
        else fatal("%s:%d: \"%s\" is an object or array; --by needs a string, number or boolean", path, r.line, field);
        k++;
        cJSON_Delete(j);
    }
    jsonl_close(&r);
    if (k != n) fatal("%s: %d records but %d questions scored from it", path, k, n);
    return v;
}

void fields_free(char **values, int n) {
    for (int i = 0; values && i < n; i++) free(values[i]);
    free(values);
}

int fields_groups(char *const *values, int n, char ***names, int *group_of) {
    StrMap m;
    strmap_init(&m);
    int g = 0;
    *names = NULL;
    for (int i = 0; i < n; i++) {
        int k = strmap_get(&m, values[i]);
        if (k < 0) {
            k = g++;
            strmap_put(&m, values[i], k);
            *names = xrealloc(*names, sizeof(char *) * (size_t)g);
            (*names)[k] = xstrdup(values[i]);
        }
        group_of[i] = k;
    }
    strmap_free(&m);
    return g;
}
