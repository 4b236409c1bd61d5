#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

uint8_t *npy_encode_f32(const float *data, const long *shape, int ndim, size_t *len) {
    CHECK_OR_DIE(ndim >= 0 && ndim <= NPY_MAX_DIMS, "npy: %d dimensions", ndim);
    char dict[256];
    int n = snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        // numpy's repr of the shape tuple: "(3, 32, 32)", "(5,)", "()"
        n += snprintf(dict + n, sizeof(dict) - n, "%s%ld%s", i ? " " : "", shape[i], (i < ndim - 1 || ndim == 1) ? "," : "");
        count *= (size_t)shape[i];
    }
    n += snprintf(dict + n, sizeof(dict) - n, "), }");
    // numpy pads the header with spaces and a final newline so the data starts 64-byte aligned
    size_t header = 10 + (size_t)n + 1;
    size_t padded = (header + 63) / 64 * 64;
    size_t total = padded + count * sizeof(float);
    uint8_t *buf = xmalloc(total);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    uint16_t hlen = (uint16_t)(padded - 10);
    buf[8] = hlen & 0xff;
    buf[9] = hlen >> 8;
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', padded - 10 - n - 1);
    buf[padded - 1] = '\n';
    memcpy(buf + padded, data, count * sizeof(float));  // little-endian host assumed (x86-64, aarch64)
    *len = total;
    return buf;
}

void npy_save_f32(const char *path, const float *data, const long *shape, int ndim) {
    size_t len;
    uint8_t *buf = npy_encode_f32(data, shape, ndim, &len);
    write_file_atomic(path, buf, len);
    free(buf);
}

int npy_load(const char *path, NpyArray *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    size_t len;
    char *buf = try_read_file(path, &len);
    if (!buf) { snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno)); return -1; }
    const uint8_t *u = (const uint8_t *)buf;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) { snprintf(err, errlen, "%s: not a .npy file (bad magic)", path); goto fail; }
    size_t hlen, off;
    if (u[6] == 1) { hlen = u[8] | (size_t)u[9] << 8; off = 10; }
    else if (u[6] == 2 || u[6] == 3) {
        if (len < 12) goto short_file;
        hlen = u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 | (size_t)u[11] << 24;
        off = 12;
    } else { snprintf(err, errlen, "%s: unsupported .npy version %d", path, u[6]); goto fail; }
    if (off + hlen > len) goto short_file;
    char *hdr = xmalloc(hlen + 1);
    memcpy(hdr, buf + off, hlen);
    hdr[hlen] = 0;
    const char *d = strstr(hdr, "'descr':");
    const char *f = strstr(hdr, "'fortran_order':");
    const char *s = strstr(hdr, "'shape':");
    int ok = d && f && s;
    size_t esize = 0;
    if (ok) {
        d = strchr(d + 8, '\'');
        if (!d) ok = 0;
        else if (!strncmp(d, "'<f4'", 5)) { out->dtype = NPY_F32; esize = 4; }
        else if (!strncmp(d, "'<f8'", 5)) { out->dtype = NPY_F64; esize = 8; }
        else if (!strncmp(d, "'|u1'", 5)) { out->dtype = NPY_U8; esize = 1; }
        else { snprintf(err, errlen, "%s: unsupported dtype in header %s", path, hdr); free(hdr); goto fail; }
    }
    if (ok && strncmp(f + 16 + strspn(f + 16, " "), "False", 5)) {
        snprintf(err, errlen, "%s: Fortran-order arrays are not supported", path);
        free(hdr);
        goto fail;
    }
    if (ok) {
        const char *p = strchr(s, '(');
        ok = p != NULL;
        out->count = 1;
        while (ok) {  // "(3, 336, 336)", "(5,)", "()"
            p++;
            while (*p == ' ' || *p == ',') p++;
            if (*p == ')') break;
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || out->ndim == NPY_MAX_DIMS) ok = 0;
            else { out->shape[out->ndim++] = v; out->count *= (size_t)v; p = end - 1; }
        }
    }
    if (!ok) { snprintf(err, errlen, "%s: cannot parse .npy header %s", path, hdr); free(hdr); goto fail; }
    free(hdr);
    size_t need = out->count * esize;
    if (len - off - hlen < need) goto short_file;
    out->data = xmalloc(need ? need : 1);
    memcpy(out->data, buf + off + hlen, need);
    free(buf);
    return 0;
short_file:
    snprintf(err, errlen, "%s: truncated .npy file (%zu bytes)", path, len);
fail:
    free(buf);
    return -1;
}

void npy_free(NpyArray *a) {
    free(a->data);
    a->data = NULL;
}
