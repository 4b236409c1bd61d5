// Small helpers every file uses: fatal errors that name the place, checked allocation and file I/O.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>

// Print "vlm: error: <message>" and exit(1). Messages name the file, the record or line, and the problem.
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
// For tests and fuzz targets, which must see an error without the process ending: while fatal_catch
// points at a jmp_buf, fatal() keeps its message in fatal_message (without the "vlm: error: ") and
// longjmps there with 1 instead of printing and exiting. Memory held by the interrupted code leaks;
// single-threaded callers only. NULL (the default) everywhere else.
extern jmp_buf *fatal_catch;
extern char fatal_message[1024];
// Called by fatal() after the message, before exit(1) (NULL: none): a data-parallel job ends every rank there
// (train/dist.h), which must not wait for this one in a collective.
extern void (*fatal_hook)(void);
// Like fatal, but for broken invariants inside the program: names the source file and line.
#define CHECK_OR_DIE(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); fatal(__VA_ARGS__); } } while (0)

void *xmalloc(size_t bytes);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t bytes);
char *xstrdup(const char *s);

// Reads a whole file into a NUL-terminated buffer; *len gets the size without the NUL. Dies naming the file.
char *read_file(const char *path, size_t *len);
// Like read_file but returns NULL (errno set) instead of dying.
char *try_read_file(const char *path, size_t *len);
int file_exists(const char *path);
// Writes data to path + ".tmp" then renames it over path, so a crash never leaves a half-written file.
void write_file_atomic(const char *path, const void *data, size_t len);
// The same, returning -1 with a message naming the file in err instead of dying (0 on success).
int try_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);
// Copies dir/name to dst_dir/name (atomically) when it exists; returns whether it did.
int copy_file_if_exists(const char *src_dir, const char *dst_dir, const char *name);
// Creates a folder and its missing parents (mkdir -p); dies naming the folder on failure.
void mkdir_p(const char *path);
// dir + "/" + name into a fresh string (name is returned as is when absolute).
char *path_join(const char *dir, const char *name);
// The folder part of a path ("." when there is none), fresh string.
char *path_dirname(const char *path);

double now_seconds(void);  // monotonic clock

// fp32 <-> bf16 / fp16 conversions (round to nearest even, NaN kept quiet).
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
