// preprocessor_config.json (data/preprocess.c): returns an error, never exits.
#include "fuzz.h"

#include "../../data/preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size), err[512];
    PreprocessConfig c;
    if (preprocess_config_parse(&c, text, "preprocessor_config.json", err, sizeof(err)) == 0) {
        int h, w;
        preprocess_output_size(&c, 640, 480, &h, &w);
        if (c.do_resize && c.shortest_edge == 0 && (c.resize_width < 1 || c.resize_height < 1)) abort();
    }
    free(text);
    return 0;
}
