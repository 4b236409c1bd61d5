// JSON Lines input: one JSON value per line, read with cJSON. Blank lines are skipped; a malformed line
// is an error naming the file and the line number.
#pragma once
#include <cJSON.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    const char *path;   // for messages ("<stdin>" for standard input)
    int line;           // number of the line last returned
    char *buf;
    size_t cap;
    int owns;
} JsonlReader;

// path "-" reads standard input. Dies naming the file if it cannot be opened.
void jsonl_open(JsonlReader *r, const char *path);
// The next record as a JSON object (caller frees with cJSON_Delete), or NULL at end of file.
// With skip_bad, malformed lines are counted in *n_bad (and reported on stderr) instead of fatal.
cJSON *jsonl_next(JsonlReader *r, int skip_bad, int *n_bad);
void jsonl_close(JsonlReader *r);
