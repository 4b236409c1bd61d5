// state.json of a checkpoint (train/checkpoint.c, checkpoint_state_parse, read at --resume): either an
// error naming the file, or step, epoch and cursor inside the run's limits, which resume() then trusts
// to index the data order (a cursor past the data was a heap overflow before the checks).
#include "fuzz.h"

#include "../../train/checkpoint.h"

// the run of the seeds (tests/fuzz/seeds/state/, every one valid under these limits): SFT on
// tests/fixtures/train/sft.jsonl, 8 examples, 12 steps of 4, so at most 12 * 4 / 8 + 1 = 7 epochs
// (run_checkpoint_limits)
static const CheckpointLimits fuzz_state_limits = {"sft", 0x65c40ec65db27601ULL, 12, 8, 7};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size), err[512] = "";
    const CheckpointLimits lim = fuzz_state_limits;
    CheckpointState st = {-1, -1, -1};
    int rc = checkpoint_state_parse(text, "state.json", &lim, &st, err, sizeof(err));
    if (rc == 0 && (st.step < 0 || st.step > lim.total_steps || st.epoch < 0 || st.epoch > lim.max_epoch || st.cursor < 0 ||
                    st.cursor > lim.n_examples))
        abort();
    if (rc != 0 && (rc != -1 || strncmp(err, "state.json: ", 12) != 0)) abort();  // every message names the file
    free(text);
    return 0;
}
