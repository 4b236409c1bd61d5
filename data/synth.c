// The synthetic world's scenes and their rendering (see synth.h): drawing scenes with or without the
// language priors, minimal-contrast pairs, and anti-aliased rasterization by 4x4 supersampling.
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

const char *const synth_shape_names[SYNTH_N_SHAPES] = {"circle", "square", "triangle", "star", "diamond", "cross", "hexagon"};
const char *const synth_shape_plurals[SYNTH_N_SHAPES] = {"circles", "squares", "triangles", "stars", "diamonds", "crosses", "hexagons"};
const char *const synth_color_names[SYNTH_N_COLORS] = {"red", "orange", "yellow", "green", "blue", "purple", "pink", "black"};
// Saturated colours far from the light, greyish backgrounds and from each other.
const uint8_t synth_color_rgb[SYNTH_N_COLORS][3] = {
    {220, 30, 30}, {245, 135, 15}, {235, 205, 20}, {30, 160, 50}, {30, 80, 220}, {135, 50, 185}, {240, 105, 180}, {25, 25, 25}};
// Each shape has its own typical colour (black is nobody's), and shapes pair up (cross pairs with the circle
// without being its partner's partner, so the co-occurrence prior is not symmetric everywhere).
const int synth_typical_color[SYNTH_N_SHAPES] = {0, 4, 3, 2, 5, 1, 6};
const int synth_partner_shape[SYNTH_N_SHAPES] = {SYNTH_SHAPE_SQUARE, SYNTH_SHAPE_CIRCLE, SYNTH_SHAPE_STAR, SYNTH_SHAPE_TRIANGLE,
                                                 SYNTH_SHAPE_HEXAGON, SYNTH_SHAPE_CIRCLE, SYNTH_SHAPE_DIAMOND};
const char *const synth_cell_names[SYNTH_N_CELLS] = {"top left", "top", "top right", "left", "center", "right",
                                                     "bottom left", "bottom", "bottom right"};
// The smallest object is over 1/5 of the side (DESIGN.md §5.5: objects must span several ViT patches);
// the largest still fits a third of the side with room to jitter.
const double synth_size_frac[SYNTH_N_SIZES] = {0.21, 0.25, 0.29};
const char *const synth_contrast_names[SYNTH_N_CTS] = {"color", "shape", "exist", "position", "count", "flip"};

void synth_rng(AugRng *r, uint64_t seed, int split, int index) {
    // distinct streams per (seed, split, index); augrng_seed runs splitmix64 over the mixed value
    augrng_seed(r, seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(uint32_t)split << 40) ^ (uint64_t)(uint32_t)index ^
                       ((uint64_t)split * 0xD1B54A32D192ED03ull));
}

// ---- scenes ----------------------------------------------------------------------------------------------

static void scene_background(SynthScene *s, AugRng *r) {
    s->bg = augrng_int(r, 0, SYNTH_N_BGS);
    int g = augrng_int(r, 165, 215);
    for (int c = 0; c < 3; c++) {
        int a = g + augrng_int(r, -12, 13);
        int b = a + augrng_int(r, -28, 29);
        s->bg_a[c] = (uint8_t)(a < 0 ? 0 : a > 255 ? 255 : a);
        s->bg_b[c] = (uint8_t)(b < 0 ? 0 : b > 255 ? 255 : b);
    }
    s->bg_angle = (float)augrng_uniform_range(r, 0.0, 2.0 * M_PI);
    s->bg_period = (float)augrng_uniform_range(r, 0.08, 0.2);
    s->bg_seed = (uint32_t)augrng_next(r);
    s->mirrored = 0;
}

// Places object k at a free cell with a size and jitter that keep it inside its cell.
static void place(SynthScene *s, AugRng *r, SynthObject *o, int cell) {
    o->cell = cell;
    o->size = augrng_int(r, 0, SYNTH_N_SIZES);
    double slack = (1.0 / 3.0 - synth_size_frac[o->size]) / 2.0 * 0.8;
    o->dx = (float)augrng_uniform_range(r, -slack, slack);
    o->dy = (float)augrng_uniform_range(r, -slack, slack);
}

// Whether a new object is faint (p->hard), and the opacity the scene draws faint objects with. One draw per
// object whenever p is given, so the other draws of a stream do not depend on the knob's value.
static void set_faint(SynthScene *s, AugRng *r, SynthObject *o, const SynthPriors *p) {
    s->faint_alpha = p ? (float)p->faint_alpha : 1.0f;
    s->faint_desaturate = p ? p->faint_desaturate : 0;
    o->faint = p && augrng_uniform(r) < p->hard;
}

static int free_cell(const SynthScene *s, AugRng *r) {
    int used[SYNTH_N_CELLS] = {0}, n_free = 0;
    for (int k = 0; k < s->n; k++) used[s->o[k].cell] = 1;
    for (int c = 0; c < SYNTH_N_CELLS; c++) n_free += !used[c];
    if (!n_free) return -1;
    int pick = augrng_int(r, 0, n_free);
    for (int c = 0; c < SYNTH_N_CELLS; c++)
        if (!used[c] && pick-- == 0) return c;
    return -1;
}

// A colour other than `not`, uniformly.
int synth_other_color(AugRng *r, int not) {
    int c = augrng_int(r, 0, SYNTH_N_COLORS - 1);
    return c >= not ? c + 1 : c;
}

static int other_shape(AugRng *r, int not) {
    int c = augrng_int(r, 0, SYNTH_N_SHAPES - 1);
    return c >= not ? c + 1 : c;
}

void synth_scene_train(SynthScene *s, AugRng *r, const SynthPriors *p) {
    memset(s, 0, sizeof(*s));
    scene_background(s, r);
    int n = augrng_int(r, 1, SYNTH_MAX_OBJECTS + 1);
    for (int k = 0; k < n; k++) {
        SynthObject *o = &s->o[k];
        // co-occurrence prior: a later object is often the partner of an earlier one
        int partner = k > 0 && augrng_uniform(r) < p->cooc;
        if (partner) o->shape = synth_partner_shape[s->o[augrng_int(r, 0, k)].shape];
        else o->shape = augrng_int(r, 0, SYNTH_N_SHAPES);
        // drawn only when unseen > 0, so the streams of worlds without hidden partners stay as they were
        if (partner && p->unseen > 0) o->hidden = augrng_uniform(r) < p->unseen;
        int typical = synth_typical_color[o->shape];
        o->color = augrng_uniform(r) < p->prior ? typical : synth_other_color(r, typical);
        // text written from context names the stereotype: a partner nobody saw is named in its typical colour
        // (the one POPE's adversarial split asks about), so the prior it teaches is "anchor -> that object"
        if (o->hidden) o->color = typical;
        place(s, r, o, free_cell(s, r));
        set_faint(s, r, o, p);
        s->n = k + 1;
    }
}

void synth_scene_eval(SynthScene *s, AugRng *r, int atypical, const SynthPriors *p) {
    memset(s, 0, sizeof(*s));
    scene_background(s, r);
    int n = augrng_int(r, 1, SYNTH_MAX_OBJECTS + 1);
    for (int k = 0; k < n; k++) {
        SynthObject *o = &s->o[k];
        o->shape = augrng_int(r, 0, SYNTH_N_SHAPES);
        o->color = atypical ? synth_other_color(r, synth_typical_color[o->shape]) : augrng_int(r, 0, SYNTH_N_COLORS);
        place(s, r, o, free_cell(s, r));
        set_faint(s, r, o, p);
        s->n = k + 1;
    }
}

int synth_count(const SynthScene *s, int shape, int color) {
    int n = 0;
    for (int k = 0; k < s->n; k++) n += s->o[k].shape == shape && (color < 0 || s->o[k].color == color);
    return n;
}

int synth_find(const SynthScene *s, int shape, int color) {
    for (int k = 0; k < s->n; k++)
        if (s->o[k].shape == shape && (color < 0 || s->o[k].color == color)) return k;
    return -1;
}

int synth_count_color(const SynthScene *s, int color) {
    int n = 0;
    for (int k = 0; k < s->n; k++) n += s->o[k].color == color;
    return n;
}

void synth_scene_mirror(const SynthScene *src, SynthScene *dst) {
    *dst = *src;
    for (int k = 0; k < dst->n; k++) {
        SynthObject *o = &dst->o[k];
        o->cell = synth_row(o->cell) * 3 + (2 - synth_col(o->cell));
        o->dx = -o->dx;
    }
    dst->mirrored = !src->mirrored;
}

// ---- rendering -------------------------------------------------------------------------------------------

// Object geometry in pixels: centre and half-width.
static void object_geometry(const SynthObject *o, int size, double *cx, double *cy, double *r) {
    *cx = ((synth_col(o->cell) + 0.5) / 3.0 + o->dx) * size;
    *cy = ((synth_row(o->cell) + 0.5) / 3.0 + o->dy) * size;
    *r = synth_size_frac[o->size] * size / 2.0;
}

// Even-odd rule: handles the star's concave outline as well as the convex shapes.
static int in_polygon(const double *px, const double *py, int n, double u, double v) {
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++)
        if ((py[i] > v) != (py[j] > v) && u < (px[j] - px[i]) * (v - py[i]) / (py[j] - py[i]) + px[i]) in = !in;
    return in;
}

typedef struct {
    int shape, n;
    double px[10], py[10];  // outline in units of the half-width, y down; every shape is symmetric about x = 0
} Outline;

static void outline_make(Outline *ol, int shape) {
    ol->shape = shape;
    ol->n = 0;
    if (shape == SYNTH_SHAPE_TRIANGLE) {
        double x[3] = {0, 0.95, -0.95}, y[3] = {-0.95, 0.75, 0.75};
        for (int i = 0; i < 3; i++) { ol->px[i] = x[i]; ol->py[i] = y[i]; }
        ol->n = 3;
    } else if (shape == SYNTH_SHAPE_STAR) {
        for (int i = 0; i < 10; i++) {
            double a = -M_PI / 2 + i * M_PI / 5, rad = i % 2 ? 0.45 : 1.0;
            ol->px[i] = rad * cos(a);
            ol->py[i] = rad * sin(a) + 0.1;  // the star's mass sits low; nudged down to centre it in its box
        }
        ol->n = 10;
    } else if (shape == SYNTH_SHAPE_HEXAGON) {
        for (int i = 0; i < 6; i++) { ol->px[i] = cos(i * M_PI / 3); ol->py[i] = sin(i * M_PI / 3); }
        ol->n = 6;
    }
}

// Whether the point (u, v), in units of the half-width from the centre, is inside the shape.
static int shape_inside(const Outline *ol, double u, double v) {
    double au = fabs(u), av = fabs(v);
    switch (ol->shape) {
    case SYNTH_SHAPE_CIRCLE: return u * u + v * v <= 1.0;
    case SYNTH_SHAPE_SQUARE: return au <= 0.85 && av <= 0.85;
    case SYNTH_SHAPE_DIAMOND: return au / 0.8 + av <= 1.0;
    case SYNTH_SHAPE_CROSS: return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95);
    default: return in_polygon(ol->px, ol->py, ol->n, u, v);
    }
}

// Cheap deterministic lattice noise in [0, 1].
static double lattice(uint32_t seed, int x, int y) {
    uint32_t h = seed ^ (uint32_t)x * 0x8DA6B343u ^ (uint32_t)y * 0xD8163841u;
    h ^= h >> 15; h *= 0x2C1B3C6Du; h ^= h >> 12; h *= 0x297A2D39u; h ^= h >> 15;
    return (h & 0xFFFFFF) / (double)0xFFFFFF;
}

// Background blend factor in [0, 1] at pixel (x, y): value noise, stripes or a linear gradient.
// ca, sa: cos and sin of the scene's background angle (computed once per image).
static double background_t(const SynthScene *s, int x, int y, int size, double ca, double sa) {
    double fx = (x + 0.5) / size, fy = (y + 0.5) / size;
    switch (s->bg) {
    case SYNTH_BG_NOISE: {
        double gx = fx * 6, gy = fy * 6;  // a 6 x 6 lattice over the image, bilinear
        int ix = (int)floor(gx), iy = (int)floor(gy);
        double tx = gx - ix, ty = gy - iy;
        double a = lattice(s->bg_seed, ix, iy), b = lattice(s->bg_seed, ix + 1, iy);
        double c = lattice(s->bg_seed, ix, iy + 1), d = lattice(s->bg_seed, ix + 1, iy + 1);
        return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
    }
    case SYNTH_BG_STRIPES: return 0.5 + 0.5 * sin(2 * M_PI * (fx * ca + fy * sa) / s->bg_period);
    default: {
        double t = 0.5 + ((fx - 0.5) * ca + (fy - 0.5) * sa) / 1.4143;
        return t < 0 ? 0 : t > 1 ? 1 : t;
    }
    }
}

void synth_object_bbox(const SynthScene *s, int k, int size, int *x0, int *y0, int *x1, int *y1) {
    double cx, cy, r;
    object_geometry(&s->o[k], size, &cx, &cy, &r);
    *x0 = (int)floor(cx - r) - 1; *x1 = (int)ceil(cx + r) + 1;
    *y0 = (int)floor(cy - r) - 1; *y1 = (int)ceil(cy + r) + 1;
    if (*x0 < 0) *x0 = 0;
    if (*y0 < 0) *y0 = 0;
    if (*x1 > size) *x1 = size;
    if (*y1 > size) *y1 = size;
}

enum { SS = 4 };  // supersampling: SS x SS samples per pixel, so edge pixels take 17 coverage levels

Image *synth_render(const SynthScene *scene, int size) {
    // A mirrored scene is drawn as its unmirrored original and flipped, so that the pair of a left-right
    // contrast is an exact horizontal flip (as S-VCO's PIL FLIP_LEFT_RIGHT), with no rounding differences.
    SynthScene un;
    const SynthScene *s = scene;
    if (scene->mirrored) { synth_scene_mirror(scene, &un); s = &un; }
    Image *im = image_new(size, size);
    double ca = cos(s->bg_angle), sa = sin(s->bg_angle);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double t = background_t(s, x, y, size, ca, sa);
            uint8_t *p = im->data + ((size_t)y * size + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)lround(s->bg_a[c] + (s->bg_b[c] - s->bg_a[c]) * t);
        }
    for (int k = 0; k < s->n; k++) {
        const SynthObject *o = &s->o[k];
        if (o->hidden) continue;
        Outline ol;
        outline_make(&ol, o->shape);
        double cx, cy, r;
        object_geometry(o, size, &cx, &cy, &r);
        int x0, y0, x1, y1;
        synth_object_bbox(s, k, size, &x0, &y0, &x1, &y1);
        const uint8_t *rgb = synth_color_rgb[o->color];
        uint8_t grey_rgb[3];
        if (o->faint && s->faint_desaturate) {  // the shape stays plain, the hue mostly goes
            double g = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
            for (int c = 0; c < 3; c++) grey_rgb[c] = (uint8_t)lround(g + (rgb[c] - g) * s->faint_alpha);
            rgb = grey_rgb;
        }
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                int hits = 0;
                for (int sy = 0; sy < SS; sy++)
                    for (int sx = 0; sx < SS; sx++)
                        hits += shape_inside(&ol, (x + (sx + 0.5) / SS - cx) / r, (y + (sy + 0.5) / SS - cy) / r);
                if (!hits) continue;
                double a = (double)hits / (SS * SS) * (o->faint && !s->faint_desaturate ? s->faint_alpha : 1.0);
                uint8_t *p = im->data + ((size_t)y * size + x) * 3;
                for (int c = 0; c < 3; c++) p[c] = (uint8_t)lround(p[c] * (1 - a) + rgb[c] * a);
            }
    }
    if (scene->mirrored)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size / 2; x++) {
                uint8_t *a = im->data + ((size_t)y * size + x) * 3, *b = im->data + ((size_t)y * size + size - 1 - x) * 3;
                for (int c = 0; c < 3; c++) { uint8_t t = a[c]; a[c] = b[c]; b[c] = t; }
            }
    return im;
}

// ---- minimal contrasts -----------------------------------------------------------------------------------

static void base_scene(SynthScene *s, AugRng *r, const SynthPriors *p, int train) {
    // no hidden objects in a contrast: the pair's difference must be in the pixels
    SynthPriors seen;
    if (p) { seen = *p; seen.unseen = 0; p = &seen; }
    if (train) synth_scene_train(s, r, p);
    else synth_scene_eval(s, r, 0, p);
}

// Objects whose (colour, shape) is unique in the scene, so "the red circle" names one of them.
static int unique_objects(const SynthScene *s, int *idx) {
    int n = 0;
    for (int k = 0; k < s->n; k++)
        if (synth_count(s, s->o[k].shape, s->o[k].color) == 1) idx[n++] = k;
    return n;
}

// Fills c from base scene a; returns 0 when a does not admit the contrast type.
static int contrast_try(SynthContrast *c, AugRng *r, int type, const SynthPriors *p) {
    SynthScene *a = &c->a, *b = &c->b;
    *b = *a;
    c->changed_a = c->changed_b = -1;
    int idx[SYNTH_MAX_OBJECTS], n;
    char name[64];
    switch (type) {
    case SYNTH_CT_COLOR: {  // "What color is the circle?": the circle's colour changes
        n = 0;
        for (int k = 0; k < a->n; k++)
            if (synth_count(a, a->o[k].shape, -1) == 1) idx[n++] = k;
        if (!n) return 0;
        int k = idx[augrng_int(r, 0, n)], c1 = a->o[k].color, typical = synth_typical_color[a->o[k].shape];
        // half of the pairs are typical vs atypical colour: the contrast the priors get wrong
        int c2 = c1 != typical && augrng_uniform(r) < 0.5 ? typical : synth_other_color(r, c1);
        b->o[k].color = c2;
        c->changed_a = c->changed_b = k;
        snprintf(c->question, sizeof(c->question), "What color is the %s?", synth_shape_names[a->o[k].shape]);
        snprintf(c->answer_a, sizeof(c->answer_a), "%s", synth_color_names[c1]);
        snprintf(c->answer_b, sizeof(c->answer_b), "%s", synth_color_names[c2]);
        break;
    }
    case SYNTH_CT_SHAPE: {  // "What shape is the red object?": the red object's shape changes
        n = 0;
        for (int k = 0; k < a->n; k++)
            if (synth_count_color(a, a->o[k].color) == 1) idx[n++] = k;
        if (!n) return 0;
        int k = idx[augrng_int(r, 0, n)], s1 = a->o[k].shape, s2 = other_shape(r, s1);
        b->o[k].shape = s2;
        c->changed_a = c->changed_b = k;
        snprintf(c->question, sizeof(c->question), "What shape is the %s object?", synth_color_names[a->o[k].color]);
        snprintf(c->answer_a, sizeof(c->answer_a), "%s", synth_shape_names[s1]);
        snprintf(c->answer_b, sizeof(c->answer_b), "%s", synth_shape_names[s2]);
        break;
    }
    case SYNTH_CT_EXIST: {  // "Is there a red circle in the image?": the red circle is removed
        if (a->n < 2 || !(n = unique_objects(a, idx))) return 0;
        int k = idx[augrng_int(r, 0, n)];
        synth_object_name(&a->o[k], name, sizeof(name));
        for (int j = k; j + 1 < b->n; j++) b->o[j] = b->o[j + 1];
        b->n--;
        c->changed_a = k;
        snprintf(c->question, sizeof(c->question), "Is there %s %s in the image?", strchr("aeiou", name[0]) ? "an" : "a", name);
        snprintf(c->answer_a, sizeof(c->answer_a), "yes");
        snprintf(c->answer_b, sizeof(c->answer_b), "no");
        break;
    }
    case SYNTH_CT_POSITION: {  // "Where is the red circle?": it moves to a free cell
        if (a->n >= SYNTH_N_CELLS || !(n = unique_objects(a, idx))) return 0;
        int k = idx[augrng_int(r, 0, n)], cell = free_cell(a, r);
        // its jitter must keep it inside the new cell too: it is relative to the cell, and the size is unchanged
        b->o[k].cell = cell;
        c->changed_a = c->changed_b = k;
        synth_object_name(&a->o[k], name, sizeof(name));
        snprintf(c->question, sizeof(c->question), "Where is the %s?", name);
        snprintf(c->answer_a, sizeof(c->answer_a), "%s", synth_cell_names[a->o[k].cell]);
        snprintf(c->answer_b, sizeof(c->answer_b), "%s", synth_cell_names[cell]);
        break;
    }
    case SYNTH_CT_COUNT: {  // "How many circles are there?": one more circle
        if (a->n >= SYNTH_MAX_OBJECTS) return 0;
        int shape = a->o[augrng_int(r, 0, a->n)].shape, m = synth_count(a, shape, -1);
        SynthObject *o = &b->o[b->n];
        o->shape = shape;
        o->color = augrng_int(r, 0, SYNTH_N_COLORS);
        place(b, r, o, free_cell(b, r));
        set_faint(b, r, o, p);
        c->changed_b = b->n++;
        snprintf(c->question, sizeof(c->question), "How many %s are there?", synth_shape_plurals[shape]);
        snprintf(c->answer_a, sizeof(c->answer_a), "%d", m);
        snprintf(c->answer_b, sizeof(c->answer_b), "%d", m + 1);
        break;
    }
    case SYNTH_CT_FLIP: {  // "Is the red circle left of the blue square?": the whole image is mirrored
        n = unique_objects(a, idx);
        int pi[16], pj[16], np = 0;
        for (int x = 0; x < n; x++)
            for (int y = 0; y < n; y++)
                if (synth_col(a->o[idx[x]].cell) != synth_col(a->o[idx[y]].cell)) { pi[np] = idx[x]; pj[np++] = idx[y]; }
        if (!np) return 0;
        int q = augrng_int(r, 0, np), i = pi[q], j = pj[q];
        synth_scene_mirror(a, b);
        char name2[64];
        synth_object_name(&a->o[i], name, sizeof(name));
        synth_object_name(&a->o[j], name2, sizeof(name2));
        int left = synth_col(a->o[i].cell) < synth_col(a->o[j].cell);
        snprintf(c->question, sizeof(c->question), "Is the %s left of the %s?", name, name2);
        snprintf(c->answer_a, sizeof(c->answer_a), "%s", left ? "yes" : "no");
        snprintf(c->answer_b, sizeof(c->answer_b), "%s", left ? "no" : "yes");
        break;
    }
    default: fatal("synth_contrast: unknown type %d", type);
    }
    snprintf(c->option_a, sizeof(c->option_a), "%s", c->answer_a);
    snprintf(c->option_b, sizeof(c->option_b), "%s", c->answer_b);
    return 1;
}

void synth_contrast(SynthContrast *c, AugRng *r, int type, const SynthPriors *p, int train) {
    memset(c, 0, sizeof(*c));
    c->type = type;
    if (train && !p) fatal("synth_contrast: a training-split contrast needs the priors");
    for (int tries = 0; tries < 10000; tries++) {
        base_scene(&c->a, r, p, train);
        if (contrast_try(c, r, type, p)) return;
    }
    fatal("synth_contrast: no scene admits a '%s' contrast after 10000 draws", synth_contrast_names[type]);
}
