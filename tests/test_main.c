// Test runner: runs every test registered with TEST(), or those whose name contains one of argv[1..].
#include "test.h"

#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../util/common.h"
#include "../util/threads.h"

typedef struct { const char *name, *file; TestFn fn; } TestCase;
static TestCase tests[1024];
static int n_tests = 0, current_failures = 0;
static char tmpdir_path[256];
static pid_t tmpdir_owner;  // only the process that made the folder removes it (forked children exit too)

void test_register(const char *name, const char *file, TestFn fn) {
    if (n_tests == (int)(sizeof(tests) / sizeof(tests[0]))) { fprintf(stderr, "too many tests\n"); exit(2); }
    tests[n_tests++] = (TestCase){name, file, fn};
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    if (current_failures < 10) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "    %s:%d: ", file, line);
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    } else if (current_failures == 10) fprintf(stderr, "    (further failures not shown)\n");
    current_failures++;
}

int test_failures_in_current(void) { return current_failures; }

const char *test_shared_data(void) {
    const char *env = getenv("VLM_SHARED_DATA");
    if (env) return env;
    // next to the checkout, or next to a folder above it (make test runs from the repository root); .ci/run
    // sets VLM_SHARED_DATA the same way
    static const char *const near[] = {"../shared/data", "../../shared/data", "../../../shared/data"};
    for (int i = 0; i < 3; i++)
        if (file_exists(near[i])) return near[i];
    return near[0];  // absent: the tests that need it say which file is missing
}

const char *test_tmpdir(void) {
    if (!tmpdir_path[0]) {
        snprintf(tmpdir_path, sizeof(tmpdir_path), "/tmp/vlm_test_XXXXXX");
        if (!mkdtemp(tmpdir_path)) { perror("mkdtemp"); exit(2); }
        tmpdir_owner = getpid();
    }
    return tmpdir_path;
}

// Runs a shell command line and returns its wait status, like system(), but through posix_spawn: no fork
// of this process. Under compute-sanitizer a fork of a process holding a CUDA context corrupted the
// parent's heap (an abort at exit after every test had passed); a spawned child shares nothing with us.
int test_shell(const char *cmd) {
    extern char **environ;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return status;
}

static void remove_tmpdir(void) {
    if (tmpdir_path[0] && getpid() == tmpdir_owner) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir_path);
        if (test_shell(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir_path);
    }
}

char *test_write_tmp(const char *name, const char *text) {
    char *path = path_join(test_tmpdir(), name);
    write_file_atomic(path, text, strlen(text));
    return path;
}

char *test_word_text(const char *const *words, int n_words, size_t min_len, size_t *len) {
    size_t cap = min_len + 256, n = 0;
    char *text = xmalloc(cap);
    uint32_t rng = 12345;
    while (n < min_len) {
        rng = rng * 1664525u + 1013904223u;
        const char *w = words[(rng >> 16) % (uint32_t)n_words];
        size_t k = strlen(w);
        if (n + k + 1 > cap) text = xrealloc(text, cap = 2 * (n + k + 1));
        memcpy(text + n, w, k);
        n += k;
    }
    text[n] = 0;
    *len = n;
    return text;
}

int test_files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_file(a, &na), *y = read_file(b, &nb);
    int eq = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return eq;
}

const char *test_checkpoints_differ(const char *run_a, const char *run_b, int step) {
    static const char *files[2] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        char pa[1024], pb[1024];
        snprintf(pa, sizeof(pa), "%s/checkpoint-%08d/%s", run_a, step, files[i]);
        snprintf(pb, sizeof(pb), "%s/checkpoint-%08d/%s", run_b, step, files[i]);
        if (!test_files_equal(pa, pb)) return files[i];
    }
    return NULL;
}

int test_run_vlm(const char *args, char **out, char **err) {
    const char *bin = getenv("VLM_BIN") ? getenv("VLM_BIN") : "./vlm";
    const char *dir = test_tmpdir();
    char *outp = path_join(dir, "cmd.out"), *errp = path_join(dir, "cmd.err");
    size_t n = strlen(bin) + strlen(args) + strlen(outp) + strlen(errp) + 32;
    char *cmd = xmalloc(n);
    snprintf(cmd, n, "%s %s >%s 2>%s", bin, args, outp, errp);
    int status = test_shell(cmd);
    int rc = status < 0 ? 127 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (out) { *out = try_read_file(outp, NULL); if (!*out) *out = xstrdup(""); }
    if (err) { *err = try_read_file(errp, NULL); if (!*err) *err = xstrdup(""); }
    free(cmd); free(outp); free(errp);
    return rc;
}

char *test_image_dir(const char *name) {
    char *dir = path_join(test_tmpdir(), name), cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -r tests/fixtures/models/llava_gqa/images %s/", dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("cannot prepare %s", dir);
    return dir;
}

int test_read_metric(const char *log, const char *key, double *out, int max) {
    char *text = read_file(log, NULL), pat[96];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    int n = 0;
    for (char *p = text; n < max && (p = strstr(p, pat)); p += strlen(pat)) out[n++] = atof(p + strlen(pat));
    free(text);
    return n;
}

int main(int argc, char **argv) {
    atexit(remove_tmpdir);
    threads_adapt_off();  // the tests set the thread counts they compare; the vlm they start adapts its own
    int passed = 0, failed = 0, gpu_skipped = 0, mpi_skipped = 0;
    double t_all = now_seconds();
    for (int i = 0; i < n_tests; i++) {
        int selected = argc <= 1;
        for (int a = 1; a < argc; a++) if (strstr(tests[i].name, argv[a])) selected = 1;
        // GPU tests run only when asked for by name (make test-cuda), and the summary says how many were not run;
        // so do the tests that start mpirun (make test runs them in a second pass, `build/test_vlm mpi`)
        int gpu = !strncmp(tests[i].name, "cuda_", 5), mpi = !strncmp(tests[i].name, "mpi_", 4), asked = 0, asked_mpi = 0;
        for (int a = 1; a < argc; a++) if (!strncmp(argv[a], "cuda", 4)) asked = 1;
        for (int a = 1; a < argc; a++) if (!strncmp(argv[a], "mpi", 3)) asked_mpi = 1;
        if (gpu && !asked) { gpu_skipped += selected; continue; }
        if (mpi && !asked_mpi) { mpi_skipped += selected; continue; }
        if (!selected) continue;
        current_failures = 0;
        double t0 = now_seconds();
        tests[i].fn();
        double dt = now_seconds() - t0;
        if (current_failures) { failed++; printf("FAIL  %-48s %7.2fs  (%s)\n", tests[i].name, dt, tests[i].file); }
        else { passed++; printf("ok    %-48s %7.2fs\n", tests[i].name, dt); }
        fflush(stdout);
    }
    printf("total time %.1fs\n", now_seconds() - t_all);
    if (gpu_skipped) printf("%d GPU tests not run here (make test-cuda runs them on a GPU machine)\n", gpu_skipped);
    if (mpi_skipped) printf("%d mpirun tests not run in this pass (build/test_vlm mpi, make test-mpi, runs them)\n", mpi_skipped);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
