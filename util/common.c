#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

jmp_buf *fatal_catch = NULL;
char fatal_message[1024];
void (*fatal_hook)(void) = NULL;

void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (fatal_catch) {
        vsnprintf(fatal_message, sizeof(fatal_message), fmt, ap);
        va_end(ap);
        longjmp(*fatal_catch, 1);
    }
    fflush(stdout);
    fprintf(stderr, "vlm: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (fatal_hook) fatal_hook();
    exit(1);
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fatal("out of host memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal("out of host memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc(void *p, size_t bytes) {
    p = realloc(p, bytes ? bytes : 1);
    if (!p) fatal("out of host memory reallocating %zu bytes", bytes);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *d = xmalloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

char *try_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) { free(buf); errno = EIO; return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

char *read_file(const char *path, size_t *len) {
    char *buf = try_read_file(path, len);
    if (!buf) fatal("%s: cannot read: %s", path, strerror(errno));
    return buf;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int try_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    const char *what = NULL;
    int e = 0;  // the errno of the first failure
    FILE *f = fopen(tmp, "wb");
    if (!f) { what = "cannot create"; e = errno; }
    else {
        if (len && fwrite(data, 1, len, f) != len) { what = "write failed"; e = errno; }
        else if (fflush(f) != 0 || fsync(fileno(f)) != 0) { what = "flush failed"; e = errno; }
        if (fclose(f) != 0 && !what) { what = "close failed"; e = errno; }
        if (!what && rename(tmp, path) != 0) { what = "cannot rename into place"; e = errno; }
    }
    if (what) {
        snprintf(err, errlen, "%s: %s: %s", tmp, what, strerror(e));
        if (f) unlink(tmp);  // no half-written file left behind
    }
    free(tmp);
    return what ? -1 : 0;
}

void write_file_atomic(const char *path, const void *data, size_t len) {
    char err[1024];
    if (try_write_file_atomic(path, data, len, err, sizeof(err))) fatal("%s", err);
}

int copy_file_if_exists(const char *src_dir, const char *dst_dir, const char *name) {
    char *src = path_join(src_dir, name);
    size_t n;
    char *data = try_read_file(src, &n);
    free(src);
    if (!data) return 0;
    char *dst = path_join(dst_dir, name);
    write_file_atomic(dst, data, n);
    free(dst);
    free(data);
    return 1;
}

void mkdir_p(const char *path) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) fatal("%s: cannot create: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) fatal("%s: cannot create: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) fatal("%s: exists and is not a folder", p);
    free(p);
}

char *path_join(const char *dir, const char *name) {
    if (name[0] == '/' || !dir || !dir[0]) return xstrdup(name);
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

char *path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    size_t n = (size_t)(slash - path);
    char *d = xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, x;
    if (exp == 0) {
        if (mant == 0) x = sign;
        else {  // subnormal: renormalize
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            x = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) x = sign | 0x7f800000u | (mant << 13);
    else x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}
