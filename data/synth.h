// The synthetic visual world of the miniature study (DESIGN.md §5.1, §5.2): scenes of 1-4 flat shapes on a
// 3x3 grid over a lightly textured background, rendered anti-aliased in plain C, with the text that goes
// with them (captions, QA, minimal-contrast pairs) and the files `vlm data synth` writes.
//
// World: 7 shapes x 8 colours x 3 sizes x 9 cells (plus a jitter inside the cell). Every object is at least
// 1/5 of the image side wide, so a ViT with 8..14-pixel patches sees it across several patches.
//
// Language priors: in the training split each shape takes its typical colour with probability `prior`
// (the rest uniform over the other colours), and a second object is the first one's partner shape with
// probability `cooc`. Held-out scenes are unbiased (uniform colours and shapes), half of them "atypical"
// (no object in its shape's typical colour), so a model that answers from the priors is caught.
//
// Minimal contrasts: a pair of scenes that differ in exactly one thing (colour, shape, presence of one
// object, position, count, left-right mirror), with a question whose right answer differs between the two.
//
// Determinism: every scene is drawn from its own seeded stream (seed, split, index), so the same flags give
// the same bytes, and scene i does not depend on how many other scenes are drawn.
#pragma once
#include <stdint.h>

#include "image.h"

enum { SYNTH_SHAPE_CIRCLE, SYNTH_SHAPE_SQUARE, SYNTH_SHAPE_TRIANGLE, SYNTH_SHAPE_STAR, SYNTH_SHAPE_DIAMOND,
       SYNTH_SHAPE_CROSS, SYNTH_SHAPE_HEXAGON, SYNTH_N_SHAPES };
enum { SYNTH_N_COLORS = 8, SYNTH_N_SIZES = 3, SYNTH_N_CELLS = 9, SYNTH_MAX_OBJECTS = 4 };
enum { SYNTH_BG_NOISE, SYNTH_BG_STRIPES, SYNTH_BG_GRADIENT, SYNTH_N_BGS };

extern const char *const synth_shape_names[SYNTH_N_SHAPES];   // "circle", ...
extern const char *const synth_shape_plurals[SYNTH_N_SHAPES]; // "circles", ...
extern const char *const synth_color_names[SYNTH_N_COLORS];   // "red", ...
extern const uint8_t synth_color_rgb[SYNTH_N_COLORS][3];
extern const int synth_typical_color[SYNTH_N_SHAPES];         // the prior: shape -> its usual colour
extern const int synth_partner_shape[SYNTH_N_SHAPES];         // the prior: shape -> the shape it co-occurs with
extern const char *const synth_cell_names[SYNTH_N_CELLS];     // "top left", ..., "center", ... (row-major)
extern const double synth_size_frac[SYNTH_N_SIZES];           // object width / image side

typedef struct {
    int shape, color, size, cell;
    float dx, dy;  // jitter of the centre, as a fraction of the image side (mirrored with the scene)
    int faint;     // drawn at low opacity (the scene's faint_alpha): its colour, and its outline less so, are
                   // hard to see; the "hard" difficulty, where a model that cannot see falls back to the priors
    int hidden;    // named by the scene's text but not drawn (training scenes only, see SynthPriors.unseen)
} SynthObject;

typedef struct {
    int n;
    SynthObject o[SYNTH_MAX_OBJECTS];   // distinct cells
    int bg;                              // SYNTH_BG_*
    uint8_t bg_a[3], bg_b[3];            // background colours (light, low saturation)
    float bg_angle, bg_period;           // stripes/gradient direction (radians), stripe period (fraction of side)
    uint32_t bg_seed;                    // noise lattice
    int mirrored;                        // the background is drawn mirrored (left-right contrasts)
    float faint_alpha;                   // opacity of the faint objects (1: as clear as the others)
    int faint_desaturate;                // faint objects keep full opacity and lose colour instead: their
                                         // colour mixed toward its own grey, faint_alpha of it left
} SynthScene;

// The world's settings: the language priors of the training split and the visual difficulty of every split.
typedef struct {
    double prior;        // P(typical colour) in the training split
    double cooc;         // P(second object = partner of the first) in the training split
    double hard;         // P(an object is faint), every split: the difficulty knob
    double faint_alpha;  // opacity of a faint object over the background (0..1), or with faint_desaturate the
                         // share of its colour left (the rest its grey)
    int faint_desaturate;
    double unseen;       // P(a partner that the co-occurrence prior adds to a training scene is hidden): named
                         // in the scene's captions and answers but not drawn, as text written from context
                         // rather than from the pixels; where the image cannot refute it, the co-occurrence
                         // prior is what a model learns (POPE's adversarial hallucination)
} SynthPriors;

// Random numbers: splitmix64-seeded xoshiro256** (data/augment.h), one stream per (seed, split, index).
#include "augment.h"
void synth_rng(AugRng *r, uint64_t seed, int split, int index);

// A training scene (priors on), or a held-out one (uniform; atypical: no object has its typical colour). Both
// make objects faint with probability p->hard (p NULL: none).
void synth_scene_train(SynthScene *s, AugRng *r, const SynthPriors *p);
void synth_scene_eval(SynthScene *s, AugRng *r, int atypical, const SynthPriors *p);

// The pixels of a scene, size x size RGB.
Image *synth_render(const SynthScene *s, int size);
// The pixel box [x0, x1) x [y0, y1) that object k can touch (anti-aliasing included), clipped to the image.
void synth_object_bbox(const SynthScene *s, int k, int size, int *x0, int *y0, int *x1, int *y1);
// The left-right mirror of a scene: cells' columns swapped, jitter negated, background mirrored. Its
// rendering is the exact horizontal flip of the original's.
void synth_scene_mirror(const SynthScene *src, SynthScene *dst);
// How many objects of a shape (color < 0: any colour) / of a colour the scene holds; first index or -1.
int synth_count(const SynthScene *s, int shape, int color);
int synth_find(const SynthScene *s, int shape, int color);
int synth_count_color(const SynthScene *s, int color);
// A colour other than `not`, uniformly.
int synth_other_color(AugRng *r, int not);
// The column (0 left .. 2 right) and row of a cell.
static inline int synth_col(int cell) { return cell % 3; }
static inline int synth_row(int cell) { return cell / 3; }

// ---- minimal contrasts -----------------------------------------------------------------------------------

enum { SYNTH_CT_COLOR, SYNTH_CT_SHAPE, SYNTH_CT_EXIST, SYNTH_CT_POSITION, SYNTH_CT_COUNT, SYNTH_CT_FLIP, SYNTH_N_CTS };
extern const char *const synth_contrast_names[SYNTH_N_CTS];

typedef struct {
    int type;              // SYNTH_CT_*
    SynthScene a, b;       // the two sides (b mirrors a for FLIP)
    int changed_a, changed_b;  // the object that differs (index in a / in b; -1 where absent); FLIP: -1
    char question[160];    // asked of both images
    char answer_a[48], answer_b[48];   // differ
    char option_a[48], option_b[48];   // two-option form: the option texts (answer_a, answer_b)
} SynthContrast;

// Draws a contrast of the given type from a base scene made with training (train = 1: priors) or held-out
// (uniform) settings, objects faint as p says (p NULL: none faint, uniform); retries internally until the
// base scene admits the type.
void synth_contrast(SynthContrast *c, AugRng *r, int type, const SynthPriors *p, int train);

// ---- text (data/synth_text.c) ----------------------------------------------------------------------------

// "a red circle at the top left and a blue square in the center" (objects in reading order).
void synth_caption(const SynthScene *s, char *buf, int len);
// The caption of a kind: SYNTH_CAPTION_FULL as above, SYNTH_CAPTION_SHAPES the shapes alone ("a circle and a square").
enum { SYNTH_CAPTION_FULL, SYNTH_CAPTION_SHAPES };
void synth_caption_kind(const SynthScene *s, int kind, char *buf, int len);
// "red circle"
void synth_object_name(const SynthObject *o, char *buf, int len);

enum { SYNTH_QA_EXIST, SYNTH_QA_COLOR, SYNTH_QA_COUNT, SYNTH_QA_POSITION, SYNTH_QA_RELATION, SYNTH_N_QA };
extern const char *const synth_qa_names[SYNTH_N_QA];
typedef struct {
    int type;
    char q[160];     // "What color is the star?"
    char a[48];      // the right answer: "yes"/"no", a colour, a count ("2"), a cell name
    char d[48];      // a wrong answer of the same kind, for the two-option form
    int hard;        // the question is about a faint object (exist-yes, colour, position: that object; count,
                     // relation: any object it involves)
    int prior;       // colour questions: the shape's typical colour (SYNTH_N_COLORS otherwise)
} SynthQA;
// A question of the type about the scene, drawn with r; returns 0 when the scene admits no question of that
// type (e.g. a colour question needs a shape that occurs once). Answers are short and lowercase. typical: the
// probability that an existence question about an absent object names its shape's typical colour.
int synth_qa(const SynthScene *s, AugRng *r, int type, double typical, SynthQA *qa);

// ---- the dataset (data/synth_text.c) ---------------------------------------------------------------------

typedef struct {
    const char *out;     // folder
    uint64_t seed;
    int n_train, n_eval, n_val, n_pairs, size;  // n_val: held-out scenes for choosing hyper-parameters
    SynthPriors priors;
    int qa_per_scene;    // SFT QA records per training scene (besides its caption)
    double exist_share;  // the fraction of those that are existence questions (the others share the rest)
    int quiet;           // no progress lines
} SynthConfig;

// Writes every file of `vlm data synth` (see cli/cmd_data.c's help) into c->out; dies naming the problem.
void synth_build(const SynthConfig *c);
