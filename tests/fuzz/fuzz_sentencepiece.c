// A SentencePiece tokenizer.model (data/tokenizer_sp.c): sptok_load_buffer refuses bad protobuf with a
// message; a model it accepts must encode and decode text without reading out of bounds.
#include "fuzz.h"

#include "../../data/tokenizer_sp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN
        char err[512];
        SpTokenizer *t = sptok_load_buffer(data, size, "tokenizer.model", err, sizeof(err));
        if (t) {
            static const char text[] = "USER: <image>\nIs there a dog? ASSISTANT: Yes, \xc3\xa9t\xc3\xa9 \xe2\x96\x81 42";
            int *ids = NULL;
            int n = sptok_encode(t, text, sizeof(text) - 1, SPTOK_BOS | SPTOK_EOS, &ids, NULL);
            size_t len;
            free(sptok_decode(t, ids, n, 0, &len));
            free(ids);
            sptok_free(t);
        }
    FUZZ_END
    return 0;
}
