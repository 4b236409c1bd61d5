// Replays the fuzz corpora committed to the repository (tests/fuzz/regress/NAME/: inputs that once
// crashed or broke an invariant, kept so the fix stays fixed; tests/fuzz/seeds/NAME/: hand-made seeds)
// through the libFuzzer targets of tests/fuzz/, built here as plain functions: `make test` and
// `make test-asan` run them without clang or libFuzzer. A target aborts on a broken invariant and the
// sanitizers catch memory errors; the test also checks the corpora are there.
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/common.h"
#include "test.h"

// every target, its entry point renamed (the sources define no other non-static names)
#define LLVMFuzzerTestOneInput fuzz_clip_bpe
#include "fuzz/fuzz_clip_bpe.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_config
#include "fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_eval
#include "fuzz/fuzz_eval.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_hf_tokenizer
#include "fuzz/fuzz_hf_tokenizer.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_image
#include "fuzz/fuzz_image.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_manifest
#include "fuzz/fuzz_manifest.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_preprocess_config
#include "fuzz/fuzz_preprocess_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_records
#include "fuzz/fuzz_records.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors
#include "fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_shard
#include "fuzz/fuzz_shard.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_sentencepiece
#include "fuzz/fuzz_sentencepiece.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_state
#include "fuzz/fuzz_state.c"
#undef LLVMFuzzerTestOneInput

typedef int (*FuzzFn)(const uint8_t *, size_t);

// Runs fn on every file of dir; returns how many (0 when the folder does not exist).
static int replay_dir(FuzzFn fn, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *path = path_join(dir, e->d_name);
        size_t len;
        char *data = read_file(path, &len);
        fn((const uint8_t *)data, len);
        free(data);
        free(path);
        n++;
    }
    closedir(d);
    return n;
}

static int replay(FuzzFn fn, const char *name) {
    char dir[256];
    int n = 0;
    // the parsers' warnings (records skipped with skip_bad, ...) are expected: keep them off the test log
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    close(null);
    snprintf(dir, sizeof(dir), "tests/fuzz/regress/%s", name);
    n += replay_dir(fn, dir);
    snprintf(dir, sizeof(dir), "tests/fuzz/seeds/%s", name);
    n += replay_dir(fn, dir);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return n;
}

TEST(fuzz_regression_corpus_replays) {
    EXPECT(replay(fuzz_config, "config") >= 4);
    EXPECT(replay(fuzz_image, "image") >= 2);
    EXPECT(replay(fuzz_records, "records") >= 5);
    EXPECT(replay(fuzz_safetensors, "safetensors") >= 1);
    EXPECT(replay(fuzz_preprocess_config, "preprocess_config") >= 1);
    EXPECT(replay(fuzz_shard, "shard") >= 1);
    EXPECT(replay(fuzz_eval, "eval") >= 7);
    EXPECT(replay(fuzz_state, "state") >= 4);
    EXPECT(replay(fuzz_manifest, "manifest") >= 2);
    // no committed inputs yet for these three (their seeds are the shared tokenizers, 0.5 and 1.3 MB, and the
    // tiny tokenizer.json fixture): replayed when a crash input is added
    replay(fuzz_sentencepiece, "sentencepiece");
    replay(fuzz_clip_bpe, "clip_bpe");
    replay(fuzz_hf_tokenizer, "hf_tokenizer");
    size_t n;
    char *tiny = read_file("tests/fixtures/tokenizers/tiny_tokenizer.json", &n);  // the seed runs the accepting path
    fatal_message[0] = 0;
    fuzz_hf_tokenizer((const uint8_t *)tiny, n);  // aborts on an id or span out of range
    EXPECTF(fatal_message[0] == 0, "the tiny tokenizer.json: %s", fatal_message);
    free(tiny);
}

// The AMBER and CV-Bench seeds reach the scoring, not only the refusals: each parses without a fatal.
TEST(fuzz_eval_benchmark_seeds_pass) {
    static const char *const seeds[] = {"amber_relation.json", "amber_annotations.json", "amber_nouns.tsv", "amber_similar.tsv", "cvbench.jsonl"};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char *path = path_join("tests/fuzz/seeds/eval", seeds[i]);
        size_t n;
        char *data = read_file(path, &n);
        fatal_message[0] = 0;
        fuzz_eval((const uint8_t *)data, n);
        EXPECTF(fatal_message[0] == 0, "%s: %s", seeds[i], fatal_message);
        free(data);
        free(path);
    }
}

// The checkpoint seeds start the fuzzer on the paths that pass, not only on refusals: every state.json
// seed (from real runs) is valid under the target's limits, and good.json verifies the target's folder.
TEST(fuzz_checkpoint_seeds_pass) {
    const char *states[4] = {"sft_step4.json", "sft_step8.json", "sft_step12.json", "sft_batch3_step3.json"};
    for (int i = 0; i < 4; i++) {
        char *p = path_join("tests/fuzz/seeds/state", states[i]), *text = read_file(p, NULL), err[512] = "";
        CheckpointState st;
        EXPECTF(checkpoint_state_parse(text, p, &fuzz_state_limits, &st, err, sizeof(err)) == 0, "%s: %s", p, err);
        free(text);
        free(p);
    }
    size_t n;
    char *good = read_file("tests/fuzz/seeds/manifest/good.json", &n);
    fuzz_manifest((const uint8_t *)good, n);
    EXPECTF(fatal_message[0] == 0, "good.json does not verify: %s", fatal_message);
    // and a changed size is caught (the target reports refusals through fatal_message)
    char *bad = xstrdup(good), *at = strstr(bad, "\"bytes\":\t8");
    EXPECT(at != NULL);
    if (at) at[9] = '9';
    fuzz_manifest((const uint8_t *)bad, n);
    EXPECTF(strstr(fatal_message, "model.safetensors: 8 bytes, but manifest.json says 9"), "changed size: '%s'", fatal_message);
    free(bad);
    free(good);
}
