// Strict reading of values from untrusted JSON files (config.json, preprocessor_config.json,
// generation_config.json, lora_config.json). cJSON keeps every number as a double: casting one that
// is out of range to int is undefined behaviour (2^63, 1e999 = inf), so integers go through
// json_int, which range-checks before any cast.
#pragma once
#include <cJSON.h>
#include <stddef.h>

// 0 and *out = v when v is a JSON number that is finite, has no fractional part and lies in [lo, hi];
// else -1 (out untouched). lo and hi must lie within +-2^53, where doubles hold every integer.
int json_int(const cJSON *v, long long lo, long long hi, long long *out);
// The number in v as text for messages ("100000000", "9.2233720368547758e+18", "-inf"), or the JSON
// type name ("a string", ...) when it is not a number.
void json_value_text(const cJSON *v, char *buf, size_t n);
// Parses a whole document of len bytes: one JSON value, then nothing but whitespace. cJSON_Parse alone
// stops after the first value and ignores whatever follows ("{...} garbage"), and a NUL byte would end
// the text early. NULL with a message naming `source` and the place in err on failure.
cJSON *json_parse_document(const char *text, size_t len, const char *source, char *err, size_t errlen);
