// A Hugging Face tokenizer.json (data/tokenizer_hf.c): hftok_load_buffer refuses a bad file with a message; a file it
// accepts must encode text (added tokens, NFC, every branch of the Split pattern) with every id in range and decode it
// without reading out of bounds.
#include "fuzz.h"

#include "../../data/tokenizer_hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FUZZ_BEGIN
        char err[1024];
        HfTokenizer *t = hftok_load_buffer((const char *)data, size, "tokenizer.json", err, sizeof(err));
        if (t) {
            static const char text[] = "<|im_start|>user\n<image>\nIt's 12 cafe\xcc\x81s\xe2\x80\x94 \xf0\x9f\x98\x80!!\r\n\n"
                                       "  the cat <L>word\xc5\xbf 'LL x\xe2\x80\x83\t<|endoftext|>\xff";
            int *ids = NULL, *spans = NULL;
            int n = hftok_encode(t, text, sizeof(text) - 1, 1, &ids, &spans);
            for (int i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= t->vocab_size || spans[2 * i] < 0 || spans[2 * i] > spans[2 * i + 1] ||
                    spans[2 * i + 1] > (int)sizeof(text) - 1)
                    abort();
            size_t len;
            free(hftok_decode(t, ids, n, 0, &len));
            free(ids);
            free(spans);
            hftok_free(t);
        }
    FUZZ_END
    return 0;
}
