// Helpers shared by the image tests: the fixture manifest written by tests/ref/make_image_fixtures.py.
#pragma once
#include <stdlib.h>

#include <cJSON.h>
#include <zlib.h>

#include "../util/common.h"
#include "test.h"

#define IMAGE_FIXTURES "tests/fixtures/image"

// The parsed manifest.json (cached for the run; NULL with a test failure when missing).
static inline cJSON *image_manifest(void) {
    static cJSON *m = NULL;
    if (!m) {
        char *text = try_read_file(IMAGE_FIXTURES "/manifest.json", NULL);
        if (!text) return NULL;
        m = cJSON_Parse(text);
        free(text);
    }
    return m;
}

static inline char *fixture_path(const char *name) { return path_join(IMAGE_FIXTURES, name); }

static inline char *shared_image_path(const char *name) {
    char *dir = path_join(test_shared_data(), "images");
    char *p = path_join(dir, name);
    free(dir);
    return p;
}

static inline unsigned long crc32_bytes(const void *p, size_t n) {
    return crc32(crc32(0L, Z_NULL, 0), (const Bytef *)p, (uInt)n);
}

static inline double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

static inline const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
