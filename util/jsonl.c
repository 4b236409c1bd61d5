#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    while ((c = fgetc(r->f)) == ' ' || c == '\t' || c == '\r' || c == '\n') r->text_line += c == '\n';
    if (c != '[') {
        rewind(r->f);
        r->text_line = 0;
        return;
    }
    // a JSON array: read element by element (each one's bytes found by a scan that follows strings and nesting), so
    // a file of any size costs one record's memory, and each record's offset and length can be read again later
    r->in_array = 1;
    r->pos = ftell(r->f);
    r->text_line++;
}

// The next element of a JSON array file into r->buf (its text, r->offset and r->len set); 0 at the closing bracket.
// Dies naming the file and line on text that is not an array of values.
static int array_element(JsonlReader *r) {
    int c;
    for (;;) {  // whitespace, then a comma between elements, or the end
        while ((c = getc_unlocked(r->f)) == ' ' || c == '\t' || c == '\r' || c == '\n') { r->pos++; r->text_line += c == '\n'; }
        if (c == EOF) fatal("%s:%d: the JSON array is not closed", r->path, r->text_line);
        r->pos++;
        if (c == ']') {
            if (r->after_comma) fatal("%s:%d: malformed JSON (a comma before the array's closing bracket)", r->path, r->text_line);
            while ((c = getc_unlocked(r->f)) == ' ' || c == '\t' || c == '\r' || c == '\n') r->text_line += c == '\n';
            if (c != EOF) fatal("%s:%d: text after the JSON array's closing bracket", r->path, r->text_line);
            return 0;
        }
        if (c != ',' || r->line == 0) break;
        if (r->after_comma) fatal("%s:%d: malformed JSON (two commas in the array)", r->path, r->text_line);
        r->after_comma = 1;
    }
    if (r->line > 0 && !r->after_comma) fatal("%s:%d: malformed JSON (a comma is missing between records)", r->path, r->text_line);
    r->after_comma = 0;
    r->offset = r->pos - 1;
    size_t n = 0;
    // an object or array runs to its matching bracket (brackets inside strings do not count), a string to its
    // closing quote, a number or literal to the next comma, bracket or space
    const int nested = c == '{' || c == '[', quoted = c == '"';
    int depth = 0, in_string = 0, escaped = 0;
    for (;;) {
        if (n + 2 > r->cap) r->buf = xrealloc(r->buf, r->cap = r->cap ? 2 * r->cap : 4096);
        r->buf[n++] = (char)c;
        r->text_line += c == '\n';
        if (in_string) {
            if (escaped) escaped = 0;
            else if (c == '\\') escaped = 1;
            else if (c == '"') in_string = 0;
        } else if (c == '"') in_string = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        if ((nested && depth == 0) || (quoted && n > 1 && !in_string)) break;
        c = getc_unlocked(r->f);
        if (c == EOF) fatal("%s:%d: the JSON array ends inside a record", r->path, r->text_line);
        if (!nested && !quoted && (c == ',' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
            ungetc(c, r->f);
            break;
        }
        r->pos++;
    }
    r->buf[n] = 0;
    r->len = n;
    return 1;
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
    while (r->in_array) {
        if (!array_element(r)) return NULL;
        r->line++;
        cJSON *j = cJSON_ParseWithLength(r->buf, r->len);
        const char *why = !j ? "malformed JSON" : !cJSON_IsObject(j) ? "expected a JSON object" : NULL;
        if (!why) return j;
        cJSON_Delete(j);
        if (!skip_bad) fatal("%s:%d: record %d: %s", r->path, r->text_line, r->line, why);
        fprintf(stderr, "vlm: warning: %s:%d: record %d: %s, skipped\n", r->path, r->text_line, r->line, why);
        if (n_bad) (*n_bad)++;
    }
    for (;;) {
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) return NULL;
        r->line++;
        r->offset = r->pos;
        r->pos += n;
        while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) r->buf[--n] = 0;
        size_t skip = strspn(r->buf, " \t");
        if (r->buf[skip] == 0) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(r->buf, &end, 1);
        const char *why = NULL;
        if (!j) why = "malformed JSON";
        else if (!cJSON_IsObject(j)) why = "expected a JSON object";
        if (!why) { r->len = (size_t)n; return j; }
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

// ---- record fields

int json_record_images(const cJSON *j, const char **out, int max, int *n, const char **key, char *err, size_t errlen) {
    *n = 0;
    *key = NULL;
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(j, "image"), *list = cJSON_GetObjectItemCaseSensitive(j, "images");
    if (one && cJSON_IsNull(one)) one = NULL;
    if (list && cJSON_IsNull(list)) list = NULL;
    if (one && list) { snprintf(err, errlen, "both \"image\" and \"images\": give one"); return -1; }
    const cJSON *v = one ? one : list;
    if (!v) return 0;
    *key = one ? "image" : "images";
    if (list && !cJSON_IsArray(list)) { snprintf(err, errlen, "\"images\" must be a list of image paths (TRL's format)"); return -1; }
    const int is_list = cJSON_IsArray(v), count = is_list ? cJSON_GetArraySize(v) : 1;
    if (count == 0) { *key = NULL; return 0; }  // TRL's text-only rows: an empty list
    if (count > max) {
        if (max == 1) snprintf(err, errlen, "\"%s\" has %d images; one image per record is supported", *key, count);
        else snprintf(err, errlen, "\"%s\" has %d images; at most %d per record are supported", *key, count, max);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const cJSON *p = is_list ? cJSON_GetArrayItem(v, i) : v;
        if (!cJSON_IsString(p) || !p->valuestring[0]) {
            if (is_list) snprintf(err, errlen, "\"%s\" must be a list of non-empty paths", *key);
            else snprintf(err, errlen, "\"image\" must be a %s", cJSON_IsString(p) ? "non-empty string" : "string (a path)");
            return -1;
        }
        out[i] = p->valuestring;
    }
    *n = count;
    return 0;
}

int json_record_image(const cJSON *j, const char **out, const char **key, char *err, size_t errlen) {
    int n;
    *out = NULL;
    if (json_record_images(j, out, 1, &n, key, err, errlen)) return -1;
    return 0;
}

int json_record_text(const cJSON *j, const char *const *keys, const char **out, const char **key, char *err,
                     size_t errlen) {
    *out = NULL;
    *key = NULL;
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (!v) continue;
        if (!cJSON_IsString(v)) { snprintf(err, errlen, "\"%s\" must be a string", keys[i]); return -1; }
        if (*key && !strcmp(*out, v->valuestring)) continue;  // the same text twice (vlm data synth's POPE files)
        if (*key) { snprintf(err, errlen, "both \"%s\" and \"%s\", with different texts: give one", *key, keys[i]); return -1; }
        *out = v->valuestring;
        *key = keys[i];
    }
    return 0;
}

static int has_image_extension(const char *s) {
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", NULL};
    size_t n = strlen(s);
    for (int i = 0; ext[i]; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && !strcasecmp(s + n - k, ext[i])) return 1;
    }
    return 0;
}

static int named_like_image(const char *key) {
    char low[64];
    size_t n = strlen(key);
    if (n >= sizeof(low)) return 0;
    for (size_t i = 0; i <= n; i++) low[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
    if (n >= 3 && (!strcmp(low + n - 3, "_id") || (n >= 4 && !strcmp(low + n - 4, "_ids")))) return 0;
    return strstr(low, "image") || strstr(low, "img") || strstr(low, "picture") || strstr(low, "photo");
}

static int in_list(const char *key, const char *const *list) {
    for (int i = 0; list && list[i]; i++) if (!strcmp(key, list[i])) return 1;
    return 0;
}

const char *json_stray_image_key(const cJSON *j, const char *const *used_a, const char *const *used_b) {
    const cJSON *v;
    cJSON_ArrayForEach(v, j) {
        if (!v->string || in_list(v->string, used_a) || in_list(v->string, used_b)) continue;
        const int named = named_like_image(v->string);
        if (cJSON_IsString(v) && v->valuestring[0] && (named || has_image_extension(v->valuestring))) return v->string;
        if (cJSON_IsArray(v)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, v)
                if (cJSON_IsString(e) && e->valuestring[0] && (named || has_image_extension(e->valuestring))) return v->string;
        }
    }
    return NULL;
}
