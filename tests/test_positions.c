// Rows past max_position_embeddings: `vlm logprobs` and `vlm train` refuse them with an error naming the
// record and both lengths (`vlm sample` warns, since generation may run past on purpose). RoPE has no
// table to overflow, so such rows used to run silently on positions the model never saw.
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"

// The llava_gqa fixture with max_position_embeddings 22 (its records run 11 to 25 tokens).
static char *short_model(void) {
    char *dir = path_join(test_tmpdir(), "short_positions"), cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp " GQA "/config.json " GQA "/model.safetensors " GQA
             "/preprocessor_config.json %s/ && sed -i 's/\"max_position_embeddings\": 256/\"max_position_embeddings\": 22/' %s/config.json"
             " && grep -q '\"max_position_embeddings\": 22' %s/config.json", dir, dir, dir, dir, dir);
    EXPECT(test_shell(cmd) == 0);
    return dir;
}

TEST(positions_logprobs_and_train_refuse_long_rows) {
    char *dir = short_model(), args[2048], *out = NULL, *err = NULL;
    // logprobs: the first record is 8 ids with the image token once, 23 with the 16 image tokens
    snprintf(args, sizeof(args), "logprobs --model %s --data " GQA "/records.jsonl --device cpu", dir);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 1, "exit %d", rc);
    EXPECTF(err && strstr(err, "records.jsonl:1: record 0") && strstr(err, "23 tokens") && strstr(err, "22 positions"),
            "stderr: %s", err ? err : "");
    free(out); free(err);
    // the fixture itself (256 positions) scores those records
    rc = test_run_vlm("logprobs --model " GQA " --data " GQA "/records.jsonl --device cpu", &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err ? err : "");
    free(out); free(err);

    // train: sft.jsonl's rows are 4 prompt ids (+16 image tokens) and 4 response ids = 24 tokens
    snprintf(args, sizeof(args), "train --recipe sft --model %s --data tests/fixtures/train/sft.jsonl --out %s/run --steps 1 "
             "--device cpu --quiet", dir, dir);
    rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 1, "exit %d", rc);
    EXPECTF(err && strstr(err, "sft.jsonl:1:") && strstr(err, "24 tokens") && strstr(err, "22 positions"), "stderr: %s", err ? err : "");
    free(out); free(err);
    // --max-len 22 cuts the responses to fit: the run trains
    snprintf(args, sizeof(args), "train --recipe sft --model %s --data tests/fixtures/train/sft.jsonl --out %s/run2 --steps 1 "
             "--batch 2 --max-len 22 --device cpu --quiet", dir, dir);
    rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err ? err : "");
    free(out); free(err);
    free(dir);
}
