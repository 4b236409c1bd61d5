// A tiny test framework: TEST(name) registers a test; EXPECT* record failures without stopping the test.
// The runner (tests/test_main.c) runs every registered test by name (or those matching argv filters),
// prints one line per test and ends with "N passed, N failed"; any failure makes it exit non-zero.
#pragma once
#include <math.h>
#include <stdio.h>

typedef void (*TestFn)(void);
void test_register(const char *name, const char *file, TestFn fn);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int test_failures_in_current(void);
// Path of the shared data folder (../shared/data from the repository root, or $VLM_SHARED_DATA).
const char *test_shared_data(void);
// Runs the vlm binary with a shell command line (the binary path is prepended) and returns the exit status;
// stdout and stderr are captured into out/err (malloc'd, may be NULL to discard).
int test_run_vlm(const char *args, char **out, char **err);
// A fresh folder NAME in the test's temporary directory with the GQA fixture's images in NAME/images (fresh string).
char *test_image_dir(const char *name);
// Reads "key" of every line of a metrics log (metrics.jsonl) into out; returns the count.
int test_read_metric(const char *log, const char *key, double *out, int max);
// Runs a shell command line; returns its wait status as system() does (-1 if it could not start). It spawns
// rather than forks (see tests/test_main.c).
int test_shell(const char *cmd);
// 1 when the two files have the same bytes (dies naming a file it cannot read).
int test_files_equal(const char *a, const char *b);
// NULL when the checkpoints of `step` in two runs' --out folders hold the same weights and optimizer state, else
// the name of the first file that differs (a resumed run against a straight one).
const char *test_checkpoints_differ(const char *run_a, const char *run_b, int step);
// A fresh temporary directory for this test (removed at exit).
const char *test_tmpdir(void);
// Writes text to NAME in the temporary directory; returns the path (malloc'd).
char *test_write_tmp(const char *name, const char *text);
// A text of at least min_len bytes: words drawn from words[0..n_words) by a fixed LCG (the same text every run),
// for timing tokenizers. Malloc'd, NUL-terminated; *len gets its length.
char *test_word_text(const char *const *words, int n_words, size_t min_len, size_t *len);

#define TEST(name) \
    static void test_##name(void); \
    __attribute__((constructor)) static void test_register_##name(void) { test_register(#name, __FILE__, test_##name); } \
    static void test_##name(void)

#define EXPECT(cond) do { if (!(cond)) test_fail(__FILE__, __LINE__, "expected %s", #cond); } while (0)
#define EXPECTF(cond, ...) do { if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define EXPECT_INT_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
    if (_a != _b) test_fail(__FILE__, __LINE__, "%s = %lld, expected %s = %lld", #a, _a, #b, _b); } while (0)
// Relative closeness with an absolute floor: |a-b| <= tol * max(|b|, floor). NaN never passes.
#define EXPECT_NEAR(a, b, tol) do { double _a = (double)(a), _b = (double)(b); \
    double _s = fabs(_b) > 1e-6 ? fabs(_b) : 1e-6; \
    if (!(fabs(_a - _b) <= (tol) * _s)) test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g (tol %g)", #a, _a, _b, (double)(tol)); } while (0)
