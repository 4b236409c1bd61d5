// The CLIP BPE merges file (bpe_simple_vocab_16e6.txt[.gz], data/tokenizer_clip.c): cliptok_load dies
// naming the file on a malformed one; one it accepts must tokenize text.
#include "fuzz.h"

#include "../../data/tokenizer_clip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(data, size, ".txt");
    FUZZ_BEGIN
        ClipTokenizer *t = cliptok_load(path);
        static const char text[] = "a photo of two <b>cats</b> isn't 3.5 \xc3\xa9l\xc3\xa8ves!";
        int out[16];
        cliptok_tokenize(t, text, sizeof(text) - 1, 16, 0, out);
        cliptok_free(t);
    FUZZ_END
    return 0;
}
