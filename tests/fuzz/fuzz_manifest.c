// manifest.json of a checkpoint (train/checkpoint.c, checkpoint_verify, run at --resume): the input is
// the manifest of a folder holding fixed small files; the verification passes or dies with a message
// that names the file at fault (a path in the folder), and never reads outside it.
#include <sys/stat.h>

#include "fuzz.h"

#include "../../train/checkpoint.h"

// The folder's files; tests/fuzz/seeds/manifest/good.json lists them with their sizes and CRC-32s (so
// the fuzzer starts from a manifest that passes), the other seeds are manifests of real checkpoints.
static const char *fuzz_ck_names[4] = {"config.json", "model.safetensors", "optimizer.safetensors", "state.json"};
static const char *fuzz_ck_text[4] = {"{\"model_type\": \"llava\"}\n", "weights\n", "moments\n",
                                      "{\"step\": 1, \"epoch\": 0, \"cursor\": 4}\n"};
static char fuzz_ck_dir[96];

static void fuzz_ck_remove(void) {
    char p[160];
    const char *extra[1] = {"manifest.json"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof(p), "%s/%s", fuzz_ck_dir, i < 4 ? fuzz_ck_names[i] : extra[0]);
        unlink(p);
        snprintf(p, sizeof(p), "%s/%s.tmp", fuzz_ck_dir, i < 4 ? fuzz_ck_names[i] : extra[0]);
        unlink(p);
    }
    rmdir(fuzz_ck_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_ck_dir[0]) {  // once per process
        snprintf(fuzz_ck_dir, sizeof(fuzz_ck_dir), "/tmp/vlm_fuzz_%d_checkpoint", (int)getpid());
        if (mkdir(fuzz_ck_dir, 0755) != 0) { perror(fuzz_ck_dir); abort(); }
        for (int i = 0; i < 4; i++) {
            char *p = path_join(fuzz_ck_dir, fuzz_ck_names[i]);
            write_file_atomic(p, fuzz_ck_text[i], strlen(fuzz_ck_text[i]));
            free(p);
        }
        atexit(fuzz_ck_remove);
    }
    char *p = path_join(fuzz_ck_dir, "manifest.json");
    write_file_atomic(p, data, size);
    free(p);
    fatal_message[0] = 0;
    FUZZ_BEGIN
        checkpoint_verify(fuzz_ck_dir);
    FUZZ_END
    // a refusal names the manifest or the file (both in the folder): never a path outside it
    if (fatal_message[0] && strncmp(fatal_message, fuzz_ck_dir, strlen(fuzz_ck_dir)) != 0) abort();
    return 0;
}
