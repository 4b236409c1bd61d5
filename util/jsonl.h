// Record input: JSON Lines (one JSON object per line; blank lines skipped; a malformed line is an error
// naming the file and the line number) or one JSON array of objects (S-VCO's mvc.json, LLaVA's
// conversation files), told apart by the first character. For an array, `line` is the record number; an
// array file is read one element at a time (a record's memory, whatever the file's size).
#pragma once
#include <cJSON.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    const char *path;   // for messages ("<stdin>" for standard input)
    int line;           // number of the line last returned
    long long offset;   // the byte offset of the line (or array element) last returned, and its length without the end
    size_t len;         // of line (the text a later reader parses again from there: train/data.c's lazy records)
    long long pos;      // the bytes read so far
    int in_array;       // the file is one JSON array, read element by element
    int text_line;      // array files: the line of text the reader is at, for messages
    int after_comma;    // array files: a comma was read and no element after it yet
    char *buf;
    size_t cap;
    int owns;
    cJSON *array;       // the records of an array given in memory (jsonl_open_array), detached one by one
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

// ---- fields every record reader shares (the files users bring: TRL, POPE, VQA question files)

// A record's image: "image" (a path) or TRL's "images" (a list holding one path). Returns 0 with *out the
// path (not a copy; NULL when the record has neither, or "image" is null) and *key the key it came from; -1
// with a message in err (both keys, a list of zero or several paths, a path that is not a non-empty string).
int json_record_image(const cJSON *j, const char **out, const char **key, char *err, size_t errlen);
// A record's images: "image" (a path or a list of paths) or TRL's "images" (a list; [] is none), at most max, in
// order into out (not copies), their count in *n and the key in *key (NULL when none); -1 with a message in err.
int json_record_images(const cJSON *j, const char **out, int max, int *n, const char **key, char *err, size_t errlen);

// A record's text under the first of keys (NULL-terminated, e.g. {"prompt", "question", NULL}) present.
// Returns 0 with *out the text (not a copy; NULL when none is present) and *key its key; -1 with a message in
// err when two of the keys hold different texts (which one is meant would be a guess) or a value is not a string.
int json_record_text(const cJSON *j, const char *const *keys, const char **out, const char **key, char *err,
                     size_t errlen);

// The first key of j that no reader consumed (it is in neither NULL-terminated list; either may be NULL) and
// whose value looks like an image: a string, or a list of strings, ending in an image file extension (.png,
// .jpg, ...), or a non-empty string under a key named like an image ("image", "img", "picture", "photo" in
// it, but not an "*_id"). NULL when there is none. Readers make such a key an error: an image the record
// names but training never sees would be silently dropped.
const char *json_stray_image_key(const cJSON *j, const char *const *used_a, const char *const *used_b);
