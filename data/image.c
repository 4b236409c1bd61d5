// Image decoding: JPEGs with libjpeg-turbo (Debian's libjpeg62-turbo-dev, the library PIL wheels
// bundle), everything else with stb_image (the compiled libstb from Debian's libstb-dev; no
// implementation macro here), and the PIL-compatible conversion to 8-bit RGB described in image.h.
#include "image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>  // before jpeglib.h, which uses FILE and size_t without including it
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <stb_image.h>

#include "../util/common.h"

Image *image_new(int width, int height) {
    CHECK_OR_DIE(width > 0 && height > 0 && (long long)width * height <= IMAGE_MAX_PIXELS,
                 "image_new: bad size %dx%d (at most %lld pixels)", width, height, IMAGE_MAX_PIXELS);
    Image *im = xmalloc(sizeof(Image));
    im->width = width;
    im->height = height;
    im->name = NULL;
    im->data = xmalloc((size_t)width * height * 3);
    return im;
}

Image *image_new_filled(int width, int height, const uint8_t rgb[3]) {
    Image *im = image_new(width, height);
    size_t n = (size_t)width * height;
    for (size_t i = 0; i < n; i++) memcpy(im->data + 3 * i, rgb, 3);
    return im;
}

void image_free(Image *im) {
    if (!im) return;
    free(im->name);
    free(im->data);
    free(im);
}

Image *image_copy(const Image *im) {
    Image *c = image_new(im->width, im->height);
    memcpy(c->data, im->data, (size_t)im->width * im->height * 3);
    return c;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// 0 when a w x h image is within IMAGE_MAX_PIXELS, else -1 with a message naming the file and the size.
static int check_pixels(long long w, long long h, const char *name, const char *fname, char *err, size_t errlen) {
    if (w * h <= IMAGE_MAX_PIXELS) return 0;
    set_err(err, errlen, "%s: the %s image is %lldx%lld (%lld pixels), past the bound of %lld pixels (PIL's decompression-bomb limit)",
            name, fname, w, h, w * h, IMAGE_MAX_PIXELS);
    return -1;
}

typedef enum { FMT_UNKNOWN, FMT_JPEG, FMT_PNG, FMT_GIF, FMT_BMP, FMT_PSD, FMT_PNM, FMT_HDR, FMT_WEBP, FMT_TIFF } Format;
static const char *format_names[] = {"image", "JPEG", "PNG", "GIF", "BMP", "PSD", "PNM", "HDR", "WebP", "TIFF"};

// stb_image picks the decoder itself, but when every decoder refuses the data its failure reason is
// the last one tried ("bad png sig" for a broken JPEG), so we identify the format from the magic
// bytes to say which decoder failed.
static Format sniff_format(const uint8_t *p, size_t n) {
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return FMT_JPEG;
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return FMT_PNG;
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return FMT_GIF;
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return FMT_BMP;
    if (n >= 4 && !memcmp(p, "8BPS", 4)) return FMT_PSD;
    if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return FMT_PNM;
    if (n >= 2 && p[0] == '#' && p[1] == '?') return FMT_HDR;
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return FMT_WEBP;
    if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) return FMT_TIFF;
    return FMT_UNKNOWN;
}

// Walks a JPEG's marker segments and entropy-coded scans and returns NULL when an end-of-image
// marker is reached inside the data, else what is wrong. libjpeg reading from memory pads a scan
// that ends early with a fake EOI, only warns, and returns a partly grey image; PIL (whose source
// suspends instead) raises "image file is truncated" there. Bytes after EOI are ignored (as both do).
static const char *jpeg_check_complete(const uint8_t *p, size_t n) {
    static const char *truncated = "truncated JPEG: the data ends before the end-of-image marker";
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return "not a JPEG: no start-of-image marker";
    size_t i = 2;
    for (;;) {
        // libjpeg tolerates stray bytes between segments ("extraneous bytes before marker"): so do we
        while (i < n && p[i] != 0xFF) i++;
        while (i < n && p[i] == 0xFF) i++;  // fill bytes
        if (i >= n) return truncated;
        uint8_t m = p[i++];
        if (m == 0xD9) return NULL;                                          // EOI
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // markers without a length
        if (i + 2 > n) return truncated;
        size_t seglen = ((size_t)p[i] << 8) | p[i + 1];
        if (seglen < 2) return "corrupt JPEG: bad segment length";
        if (i + seglen > n) return truncated;
        i += seglen;
        if (m == 0xDA) {  // start of scan: entropy-coded data runs until a marker that is not RSTn
            for (;;) {
                if (i + 1 >= n) return truncated;
                if (p[i] == 0xFF) {
                    uint8_t b = p[i + 1];
                    if (b == 0x00 || (b >= 0xD0 && b <= 0xD7)) { i += 2; continue; }  // stuffed byte, restart
                    if (b == 0xFF) { i++; continue; }                                 // fill byte
                    break;  // a real marker: the outer loop reads it
                }
                i++;
            }
        }
    }
}

// ---- JPEG: libjpeg-turbo with the settings PIL's JpegDecode.c uses ----
// PIL leaves every decompression parameter at libjpeg's default (islow integer IDCT, fancy
// upsampling, block smoothing for progressive files, no scaling; its "draft" mode, which changes
// them, is opt-in), lets the library guess the colour space from the JFIF/Adobe markers and asks
// for RGB (via JCS_EXT_RGBX, same values), gray, or CMYK by the number of components. With the same
// library and the same settings our pixels are PIL's bit for bit: libjpeg-turbo's islow IDCT,
// upsampling and colour conversion give the same results with and without SIMD, and Debian 12's
// 2.1.5 matches the 3.2.0 bundled in Pillow 13's wheels on every fixture (tests/test_image.c).

typedef struct {
    struct jpeg_error_mgr pub;  // first: libjpeg hands us a pointer to it
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int hit_eof;  // the data ran out (libjpeg then pads with an EOI and only warns)
} JpegErr;

static void jpeg_on_error(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

// Warnings (level -1: corrupt data that libjpeg recovers from) are silent as in PIL, whose decoder
// ignores them too; traces (level >= 0) likewise. Running out of data is remembered: it is an error.
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    JpegErr *e = (JpegErr *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->hit_eof = 1;
    if (level < 0) cinfo->err->num_warnings++;
}

// PIL's cmyk2rgb (Convert.c): r = (255 - k) - c * (255 - k) / 255, the product rounded as MULDIV255.
static uint8_t cmyk_channel(uint8_t c, uint8_t k) {
    int nk = 255 - k, t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Decodes a complete JPEG (jpeg_check_complete passed) into RGB the way PIL's
// Image.open(f).convert("RGB") does: 3 components as RGB (YCbCr converted by libjpeg), 1 as gray
// replicated, 4 (CMYK, or YCCK converted to CMYK by libjpeg) read inverted as PIL does ("CMYK;I":
// it assumes Adobe's inverted convention for every 4-component JPEG) and then turned into RGB by
// PIL's cmyk2rgb formula. Other component counts are refused, as by PIL.
static Image *jpeg_decode(const uint8_t *bytes, size_t len, const char *name, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    memset(&cinfo, 0, sizeof(cinfo));  // mem == NULL: jpeg_destroy_decompress is safe even if create fails
    memset(&jerr, 0, sizeof(jerr));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error;
    jerr.pub.emit_message = jpeg_on_message;
    // set before setjmp and written after it: volatile, so their values survive the longjmp
    Image *volatile im = NULL;
    uint8_t *volatile row = NULL;
    if (setjmp(jerr.jump)) {
        set_err(err, errlen, "%s: cannot decode JPEG image: libjpeg: %s", name, jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        image_free(im);
        free(row);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (check_pixels(cinfo.image_width, cinfo.image_height, name, "JPEG", err, errlen)) {
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    int nc = cinfo.num_components;
    if (nc != 1 && nc != 3 && nc != 4) {
        set_err(err, errlen, "%s: cannot decode JPEG image: %d color components (PIL and we handle 1, 3 or 4)", name, nc);
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    cinfo.out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, oc = cinfo.output_components;
    if (w <= 0 || h <= 0 || oc != (nc == 1 ? 1 : nc == 3 ? 3 : 4)) {
        set_err(err, errlen, "%s: cannot decode JPEG image: unexpected size %dx%d with %d channels", name, w, h, oc);
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    im = image_new(w, h);
    im->name = name ? xstrdup(name) : NULL;
    if (oc != 3) row = xmalloc((size_t)w * oc);
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        uint8_t *d = im->data + y * w * 3;
        JSAMPROW r = oc == 3 ? d : row;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1) break;  // cannot happen with an in-memory source
        if (oc == 1) {
            for (int x = 0; x < w; x++) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = row[x];
        } else if (oc == 4) {
            for (int x = 0; x < w; x++) {
                const uint8_t *s = row + 4 * x;
                uint8_t k = (uint8_t)~s[3];
                for (int c = 0; c < 3; c++) d[3 * x + c] = cmyk_channel((uint8_t)~s[c], k);
            }
        }
    }
    int complete = cinfo.output_scanline == cinfo.output_height;
    if (complete) jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (!complete || jerr.hit_eof) {
        // PIL raises "image file is truncated" here; libjpeg alone pads the missing part with grey
        set_err(err, errlen, "%s: cannot decode image: truncated JPEG: libjpeg ran out of data (Premature end of JPEG file)", name);
        image_free(im);
        return NULL;
    }
    return im;
}

// PIL's alpha_composite of (c, a) over opaque white, in its integer arithmetic
// (7 extra precision bits, rounded division by 255). With an opaque white destination the
// coefficients simplify to c1 = a * 128 and c2 = (255 - a) * 128.
static uint8_t over_white(uint8_t c, uint8_t a) {
    if (a == 0) return 255;
    uint32_t coef1 = (uint32_t)a * 255 * 255 * 128 / (255 * 255);
    uint32_t coef2 = 255 * 128 - coef1;
    uint32_t t = (uint32_t)c * coef1 + 255u * coef2 + (0x80u << 7);
    return (uint8_t)((((t >> 8) + t) >> 8) >> 7);
}

Image *image_decode(const uint8_t *bytes, size_t len, const char *name, ImageAlpha alpha, char *err, size_t errlen) {
    if (len == 0) { set_err(err, errlen, "%s: empty file, not an image", name); return NULL; }
    if (len > (size_t)0x7fffffff) { set_err(err, errlen, "%s: file too large to decode (%zu bytes)", name, len); return NULL; }
    Format fmt = sniff_format(bytes, len);
    const char *fname = format_names[fmt];
    if (fmt == FMT_WEBP || fmt == FMT_TIFF) {
        set_err(err, errlen, "%s: %s images are not supported (we decode JPEG, PNG, BMP, GIF, PSD, PNM, TGA, HDR); convert it to PNG", name, fname);
        return NULL;
    }
    if (fmt == FMT_JPEG) {
        const char *why = jpeg_check_complete(bytes, len);
        if (why) { set_err(err, errlen, "%s: cannot decode image: %s", name, why); return NULL; }
        return jpeg_decode(bytes, len, name, err, errlen);  // no alpha in a JPEG: `alpha` has no effect
    }
    int w = 0, h = 0, n = 0;
    // the size from the header, before stb_image allocates for it (a header it cannot read fails below)
    if (stbi_info_from_memory(bytes, (int)len, &w, &h, &n) && check_pixels(w, h, name, fname, err, errlen)) return NULL;
    int is16 = stbi_is_16_bit_from_memory(bytes, (int)len);
    // A 16-bit grayscale PNG (colour type 0, IHDR byte 25) is the one case PIL clips instead of
    // taking the high byte; every other 16-bit layout is taken by stb's own >> 8 conversion.
    int gray16 = is16 && fmt == FMT_PNG && len > 25 && bytes[24] == 16 && bytes[25] == 0;
    uint8_t *px = NULL;
    if (gray16) {
        uint16_t *px16 = stbi_load_16_from_memory(bytes, (int)len, &w, &h, &n, 1);
        if (px16) {
            px = xmalloc((size_t)w * h);
            for (size_t i = 0; i < (size_t)w * h; i++) px[i] = px16[i] > 255 ? 255 : (uint8_t)px16[i];
            stbi_image_free(px16);
            n = 1;
        }
    } else {
        px = stbi_load_from_memory(bytes, (int)len, &w, &h, &n, 0);
    }
    if (!px) {
        const char *reason = stbi_failure_reason();
        if (fmt == FMT_UNKNOWN)
            set_err(err, errlen, "%s: not a recognized image file (we decode JPEG, PNG, BMP, GIF, PSD, PNM, TGA, HDR)", name);
        else
            set_err(err, errlen, "%s: cannot decode %s image: stb_image: %s", name, fname, reason ? reason : "unknown error");
        return NULL;
    }
    if (w <= 0 || h <= 0 || n < 1 || n > 4 || check_pixels(w, h, name, fname, err, errlen)) {
        if (gray16) free(px); else stbi_image_free(px);
        if (w <= 0 || h <= 0 || n < 1 || n > 4)
            set_err(err, errlen, "%s: cannot decode %s image: unexpected size %dx%d with %d channels", name, fname, w, h, n);
        return NULL;
    }
    Image *im = image_new(w, h);
    im->name = name ? xstrdup(name) : NULL;
    size_t npix = (size_t)w * h;
    int composite = alpha == IMAGE_ALPHA_WHITE && (n == 2 || n == 4);
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + i * n;
        uint8_t *d = im->data + 3 * i;
        uint8_t r, g, b;
        if (n <= 2) r = g = b = s[0];
        else { r = s[0]; g = s[1]; b = s[2]; }
        if (composite) {
            uint8_t a = s[n - 1];
            r = over_white(r, a); g = over_white(g, a); b = over_white(b, a);
        }
        d[0] = r; d[1] = g; d[2] = b;
    }
    if (gray16) free(px); else stbi_image_free(px);
    return im;
}

Image *image_load(const char *path, ImageAlpha alpha, char *err, size_t errlen) {
    size_t len = 0;
    char *bytes = try_read_file(path, &len);
    if (!bytes) {
        set_err(err, errlen, "%s: cannot read image: %s", path, strerror(errno));
        return NULL;
    }
    Image *im = image_decode((const uint8_t *)bytes, len, path, alpha, err, errlen);
    free(bytes);
    return im;
}

int image_probe(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { set_err(err, errlen, "%s: cannot read image: %s", path, strerror(errno)); return -1; }
    uint8_t head[4096];  // enough for every header stbi_info reads (a PNG's IHDR, a BMP's info header, ...)
    size_t n = fread(head, 1, sizeof(head), f);
    fclose(f);
    if (n == 0) { set_err(err, errlen, "%s: empty file, not an image", path); return -1; }
    Format fmt = sniff_format(head, n);
    if (fmt == FMT_WEBP || fmt == FMT_TIFF) {
        set_err(err, errlen, "%s: %s images are not supported (we decode JPEG, PNG, BMP, GIF, PSD, PNM, TGA, HDR); convert it to PNG", path,
                format_names[fmt]);
        return -1;
    }
    if (fmt == FMT_JPEG) return 0;  // libjpeg reads the header; a broken body is found when it is decoded
    int w = 0, h = 0, c = 0;
    if (!stbi_info_from_memory(head, (int)n, &w, &h, &c)) {
        if (fmt == FMT_UNKNOWN)
            set_err(err, errlen, "%s: not a recognized image file (we decode JPEG, PNG, BMP, GIF, PSD, PNM, TGA, HDR)", path);
        else
            set_err(err, errlen, "%s: cannot decode %s image: its header is unreadable", path, format_names[fmt]);
        return -1;
    }
    return check_pixels(w, h, path, format_names[fmt], err, errlen) ? -1 : 0;
}

Image *image_load_or_die(const char *path, ImageAlpha alpha) {
    char err[512];
    Image *im = image_load(path, alpha, err, sizeof(err));
    if (!im) fatal("%s", err);
    return im;
}

void image_paste(Image *dst, const Image *src, int x, int y) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + src->width < dst->width ? x + src->width : dst->width;
    int y1 = y + src->height < dst->height ? y + src->height : dst->height;
    if (x1 <= x0) return;
    for (int yy = y0; yy < y1; yy++)
        memcpy(dst->data + ((size_t)yy * dst->width + x0) * 3,
               src->data + ((size_t)(yy - y) * src->width + (x0 - x)) * 3, (size_t)(x1 - x0) * 3);
}

Image *image_expand_to_square(const Image *im, const uint8_t fill[3]) {
    if (im->width == im->height) return image_copy(im);
    int side = im->width > im->height ? im->width : im->height;
    Image *sq = image_new_filled(side, side, fill);
    image_paste(sq, im, (side - im->width) / 2, (side - im->height) / 2);
    return sq;
}

Image *image_crop(const Image *im, int x0, int y0, int w, int h) {
    CHECK_OR_DIE(x0 >= 0 && y0 >= 0 && w > 0 && h > 0 && x0 + w <= im->width && y0 + h <= im->height,
                 "image_crop: box (%d,%d,%d,%d) outside a %dx%d image", x0, y0, w, h, im->width, im->height);
    Image *c = image_new(w, h);
    for (int y = 0; y < h; y++)
        memcpy(c->data + (size_t)y * w * 3, im->data + ((size_t)(y0 + y) * im->width + x0) * 3, (size_t)w * 3);
    return c;
}
