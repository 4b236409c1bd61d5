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
    for (int i = 0; i < 5; i++) {
        char *p = path_join(fuzz_ck_dir, i < 4 ? fuzz_ck_names[i] : "manifest.json");
        unlink(p);
        free(p);
    }
    rmdir(fuzz_ck_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_ck_dir[0]) {  // once per process
        snprintf(fuzz_ck_dir, sizeof(fuzz_ck_dir), "%s/vlm_fuzz_%d_checkpoint", fuzz_tmp_base(), (int)getpid());
        if (mkdir(fuzz_ck_dir, 0755) != 0) { perror(fuzz_ck_dir); abort(); }
        for (int i = 0; i < 4; i++) {
            char *p = path_join(fuzz_ck_dir, fuzz_ck_names[i]);
            write_file_atomic(p, fuzz_ck_text[i], strlen(fuzz_ck_text[i]));
            free(p);
        }
        atexit(fuzz_ck_remove);
    }
    // a plain write: write_file_atomic's fsync would cost milliseconds a run
    char *p = path_join(fuzz_ck_dir, "manifest.json");
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) { perror(p); abort(); }
    free(p);
    // fatal() caught as in FUZZ_BEGIN/FUZZ_END, without their scan of 256 descriptors (the verification
    // closes each file before it can fail; the scan was most of a run's time)
    fatal_message[0] = 0;
    jmp_buf jb;
    jmp_buf *prev = fatal_catch;
    fatal_catch = &jb;
    if (setjmp(jb) == 0) checkpoint_verify(fuzz_ck_dir);
    fatal_catch = prev;
    // a refusal names the manifest or the file (both in the folder): never a path outside it
    if (fatal_message[0] && strncmp(fatal_message, fuzz_ck_dir, strlen(fuzz_ck_dir)) != 0) abort();
    return 0;
}
