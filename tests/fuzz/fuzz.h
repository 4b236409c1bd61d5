// Shared by the libFuzzer targets in this folder (`make fuzz`) and by their plain replay in `make test`
// (tests/test_fuzz_replay.c, which includes every target with its entry point renamed).
//
// The parsers under test report bad input through fatal(), which exits: a fuzz target must return
// instead, so each one runs the parser with fatal_catch set (util/common.h) and counts the longjmp as
// a refused input. What the interrupted parser held leaks (libFuzzer runs with -detect_leaks=0), except
// file descriptors, which FUZZ_END closes so that millions of runs do not exhaust them.
#pragma once
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../util/common.h"

// Which descriptors were open before a run (the first 256 after stdio), so FUZZ_END closes only new ones.
typedef struct { unsigned char open[256]; } FuzzFds;

static inline void fuzz_fds_note(FuzzFds *f) {
    for (int fd = 0; fd < 256; fd++) f->open[fd] = fcntl(fd + 3, F_GETFD) != -1;
}

static inline void fuzz_fds_restore(const FuzzFds *f) {
    for (int fd = 0; fd < 256; fd++)
        if (!f->open[fd] && fcntl(fd + 3, F_GETFD) != -1) close(fd + 3);
}

// Where scratch files go: /dev/shm (memory) when it is there, else /tmp. Rewriting a file on disk every
// run is slow (ext4 flushes a truncated file on close): in 5 s on an idle 2-core machine, /tmp against
// /dev/shm gave records 19k against 66k runs, safetensors 14k against 34k, manifest 24k against 155k
// (and manifest 4.5k in 16 s against 425k in 11 s while other jobs loaded the machine).
static inline const char *fuzz_tmp_base(void) {
    static const char *base;
    if (!base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return base;
}

// The scratch files written so far (one per extension), removed at exit: in /dev/shm they hold memory.
static char fuzz_scratch[8][128];
static int fuzz_n_scratch;

static inline void fuzz_scratch_remove(void) {
    for (int i = 0; i < fuzz_n_scratch; i++) unlink(fuzz_scratch[i]);
}

// A per-process scratch file holding the input, for parsers that read from a path. `ext` matters to
// readers that pick a format by name (".jsonl" vs ".json").
static inline const char *fuzz_write_file(const uint8_t *data, size_t size, const char *ext) {
    static char path[128];
    snprintf(path, sizeof(path), "%s/vlm_fuzz_%d%s", fuzz_tmp_base(), (int)getpid(), ext);
    int known = 0;
    for (int i = 0; i < fuzz_n_scratch; i++) known |= !strcmp(fuzz_scratch[i], path);
    if (!known && fuzz_n_scratch < 8) {
        if (!fuzz_n_scratch) atexit(fuzz_scratch_remove);
        snprintf(fuzz_scratch[fuzz_n_scratch++], sizeof(fuzz_scratch[0]), "%s", path);
    }
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(path); abort(); }
    fclose(f);
    return path;
}

// The input as a NUL-terminated string (a fresh copy: libFuzzer's buffer has no terminator).
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

// FUZZ_BEGIN ... FUZZ_END brackets the code under test: a fatal() inside jumps to FUZZ_END.
// (Locals changed between them must be volatile to be read after the jump.)
#define FUZZ_BEGIN                          \
    {                                       \
    FuzzFds fuzz_fds_;                      \
    fuzz_fds_note(&fuzz_fds_);              \
    jmp_buf fuzz_jb_;                       \
    jmp_buf *fuzz_prev_ = fatal_catch;      \
    fatal_catch = &fuzz_jb_;                \
    if (setjmp(fuzz_jb_) == 0) {
#define FUZZ_END                            \
    }                                       \
    fatal_catch = fuzz_prev_;               \
    fuzz_fds_restore(&fuzz_fds_);           \
    }
