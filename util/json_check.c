#include "json_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsonl.h"

int json_int(const cJSON *v, long long lo, long long hi, long long *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    // the comparisons are false for NaN and reject +-inf; only then is the cast defined
    if (!(d >= (double)lo && d <= (double)hi)) return -1;
    long long i = (long long)d;
    if ((double)i != d) return -1;  // a fraction (1.5)
    *out = i;
    return 0;
}

void json_value_text(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsNumber(v)) snprintf(buf, n, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(buf, n, "a string (\"%.40s\")", v->valuestring);
    else if (cJSON_IsBool(v)) snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsArray(v)) snprintf(buf, n, "an array");
    else if (cJSON_IsObject(v)) snprintf(buf, n, "an object");
    else snprintf(buf, n, "null");
}

cJSON *json_parse_document(const char *text, size_t len, const char *source, char *err, size_t errlen) {
    if (strlen(text) != len) {
        snprintf(err, errlen, "%s: a NUL byte at offset %zu inside the JSON text", source, strlen(text));
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);  // 1: only whitespace may follow the value
    if (!root) {
        const char *at = end ? end : text;
        snprintf(err, errlen, "%s:%d: invalid JSON (or text after it) near '%.30s'", source, json_error_line(text, at), at);
        return NULL;
    }
    return root;
}
