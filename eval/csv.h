// A small CSV reader (RFC 4180): comma-separated fields, double-quoted fields may hold commas, newlines and
// doubled quotes (""), CRLF or LF line ends, a UTF-8 byte-order mark is skipped, blank lines are skipped.
// Errors (an unterminated quote, text after a closing quote) name the file and line, then exit.
#pragma once

typedef struct {
    char **f;    // fields
    int n;
    int line;    // 1-based line where the row starts
} CsvRow;

typedef struct {
    char *path;
    CsvRow *rows;  // rows[0] is the header when the file has one
    int n;
} CsvFile;

void csv_read(CsvFile *c, const char *path);
// Parses text already in memory (path only names it in messages).
void csv_parse(CsvFile *c, const char *path, const char *text);
void csv_free(CsvFile *c);
// The index of the header column named name (compared without case and surrounding spaces), or -1.
int csv_column(const CsvFile *c, const char *name);
