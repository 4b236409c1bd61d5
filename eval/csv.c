#include "csv.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/common.h"

typedef struct { char *s; size_t n, cap; } Buf;

static void buf_put(Buf *b, char c) {
    if (b->n + 1 >= b->cap) b->s = xrealloc(b->s, b->cap = b->cap ? 2 * b->cap : 64);
    b->s[b->n++] = c;
    b->s[b->n] = 0;
}

static void row_push(CsvRow *r, Buf *b) {
    r->f = xrealloc(r->f, sizeof(char *) * (size_t)(r->n + 1));
    r->f[r->n++] = xstrdup(b->n ? b->s : "");
    b->n = 0;
    if (b->s) b->s[0] = 0;
}

void csv_parse(CsvFile *c, const char *path, const char *text) {
    memset(c, 0, sizeof(*c));
    c->path = xstrdup(path);
    const char *p = text;
    if (!strncmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    int line = 1, cap = 0;
    Buf b = {0};
    while (*p) {
        CsvRow row = {NULL, 0, line};
        int blank = 1;
        for (;;) {  // one field per pass
            if (*p == '"') {
                int qline = line;
                blank = 0;
                for (p++;; p++) {
                    if (!*p) fatal("%s:%d: unterminated quoted field", path, qline);
                    if (*p == '"') {
                        if (p[1] == '"') { buf_put(&b, '"'); p++; continue; }
                        p++;
                        break;
                    }
                    if (*p == '\n') line++;
                    buf_put(&b, *p);
                }
                if (*p && *p != ',' && *p != '\n' && !(*p == '\r' && p[1] == '\n'))
                    fatal("%s:%d: unexpected text after a closing quote", path, line);
            } else {
                while (*p && *p != ',' && *p != '\n' && !(*p == '\r' && p[1] == '\n')) { buf_put(&b, *p++); blank = 0; }
            }
            row_push(&row, &b);
            if (*p == ',') { p++; blank = 0; continue; }
            if (*p == '\r') p++;
            if (*p == '\n') { p++; line++; }
            break;
        }
        if (blank) {  // an empty line
            for (int i = 0; i < row.n; i++) free(row.f[i]);
            free(row.f);
            continue;
        }
        if (c->n == cap) c->rows = xrealloc(c->rows, sizeof(CsvRow) * (size_t)(cap = cap ? 2 * cap : 64));
        c->rows[c->n++] = row;
    }
    free(b.s);
}

void csv_read(CsvFile *c, const char *path) {
    char *text = read_file(path, NULL);
    csv_parse(c, path, text);
    free(text);
}

void csv_free(CsvFile *c) {
    for (int r = 0; r < c->n; r++) {
        for (int i = 0; i < c->rows[r].n; i++) free(c->rows[r].f[i]);
        free(c->rows[r].f);
    }
    free(c->rows);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

int csv_column(const CsvFile *c, const char *name) {
    if (c->n == 0) return -1;
    const CsvRow *h = &c->rows[0];
    size_t k = strlen(name);
    for (int i = 0; i < h->n; i++) {
        const char *s = h->f[i];
        while (*s == ' ') s++;
        size_t n = strlen(s);
        while (n && s[n - 1] == ' ') n--;
        if (n == k && !strncasecmp(s, name, k)) return i;
    }
    return -1;
}
