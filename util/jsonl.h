// Record input: JSON Lines (one JSON object per line; blank lines skipped; a malformed line is an error
// naming the file and the line number) or one JSON array of objects (S-VCO's mvc.json, LLaVA's
// conversation files), told apart by the first character. For an array, `line` is the record number.
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
    cJSON *array;       // the records of a JSON array, detached one by one; NULL for JSON Lines
} JsonlReader;

// path "-" reads standard input (JSON Lines only). Dies naming the file if it cannot be opened or an
// array does not parse.
void jsonl_open(JsonlReader *r, const char *path);
// The records of an array already in memory (taken over: jsonl_close frees it); path names it in messages.
void jsonl_open_array(JsonlReader *r, cJSON *array, const char *path);
// The next record as a JSON object (caller frees with cJSON_Delete), or NULL at end of file.
// With skip_bad, malformed lines are counted in *n_bad (and reported on stderr) instead of fatal.
cJSON *jsonl_next(JsonlReader *r, int skip_bad, int *n_bad);
void jsonl_close(JsonlReader *r);
// The 1-based line of text at which cJSON_ParseWithOpts stopped (its end pointer), for messages.
int json_error_line(const char *text, const char *end);
