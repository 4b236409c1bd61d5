// The synthetic world's text and files (see synth.h): captions, QA, and `vlm data synth`'s output folder
// (training records for CLIP, SFT and S-VCO; POPE, CHAIR, MMVP and QA evaluation files on held-out scenes).
#include <cJSON.h>
#include <errno.h>
#include <stb_image_write.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "synth.h"
#include "world_tokenizer.h"

const char *const synth_qa_names[SYNTH_N_QA] = {"exist", "color", "count", "position", "relation"};

// Where each cell is, as a caption phrase.
static const char *const cell_phrases[SYNTH_N_CELLS] = {"at the top left", "at the top", "at the top right",
                                                        "on the left", "in the center", "on the right",
                                                        "at the bottom left", "at the bottom", "at the bottom right"};

void synth_object_name(const SynthObject *o, char *buf, int len) {
    snprintf(buf, (size_t)len, "%s %s", synth_color_names[o->color], synth_shape_names[o->shape]);
}

// "a" or "an" before a word.
static const char *article(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

void synth_caption(const SynthScene *s, char *buf, int len) { synth_caption_kind(s, SYNTH_CAPTION_FULL, buf, len); }

void synth_caption_kind(const SynthScene *s, int kind, char *buf, int len) {
    // objects in reading order, so the caption does not depend on the order they were drawn in
    int order[SYNTH_MAX_OBJECTS], n = s->n;
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s->o[order[j]].cell < s->o[order[j - 1]].cell; j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    int used = 0;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const SynthObject *o = &s->o[order[i]];
        const char *sep = i == 0 ? "" : i == n - 1 ? " and " : ", ";
        if (kind == SYNTH_CAPTION_SHAPES)
            used += snprintf(buf + used, (size_t)(len - used), "%s%s %s", sep, article(synth_shape_names[o->shape]), synth_shape_names[o->shape]);
        else
            used += snprintf(buf + used, (size_t)(len - used), "%s%s %s %s %s", sep, article(synth_color_names[o->color]),
                             synth_color_names[o->color], synth_shape_names[o->shape], cell_phrases[o->cell]);
        if (used >= len) fatal("synth_caption: buffer of %d bytes too small", len);
    }
}

static int pick(AugRng *r, const int *v, int n) { return v[augrng_int(r, 0, n)]; }

int synth_qa(const SynthScene *s, AugRng *r, int type, double typical, SynthQA *qa) {
    memset(qa, 0, sizeof(*qa));
    qa->type = type;
    qa->prior = SYNTH_N_COLORS;
    int idx[SYNTH_MAX_OBJECTS], n = 0;
    char name[64], name2[64];
    switch (type) {
    case SYNTH_QA_EXIST: {
        int yes = augrng_uniform(r) < 0.5, shape, color;
        if (yes) {
            const SynthObject *o = &s->o[augrng_int(r, 0, s->n)];
            shape = o->shape; color = o->color;
            qa->hard = o->faint || o->hidden;
        } else {
            // An absent object of one of three kinds, drawn evenly: a present shape in another colour, a present
            // colour on another shape, or any absent object (about a fifth of the negatives end up in each of the
            // first two: the typical-colour draws below often rule them out). Without the second kind a decoder
            // answers from the colour alone ("is there anything red?") and never learns shapes
            // (notes/results/README.md).
            // The object is in its shape's typical colour with probability `typical`. Training passes the colour
            // prior itself, so the question's words say nothing about the answer (a "typical" object is as likely
            // absent as present) and only the image does; otherwise a decoder learns "yes iff the colour is the
            // shape's usual one" and never looks.
            int tries = 0, typ = augrng_uniform(r) < typical, kind = augrng_int(r, 0, 3);
            do {  // the typical-or-not decision stays fixed while the object is redrawn; a kind the scene does not
                  // admit that way (a typical-coloured object whose colour's shape is itself) gives way to any
                if (tries == 50) kind = 2;
                const SynthObject *o = &s->o[augrng_int(r, 0, s->n)];
                if (kind == 1) {  // o's colour; the shape whose typical colour it is, or one whose it is not
                    color = o->color;
                    shape = augrng_int(r, 0, SYNTH_N_SHAPES);
                    for (int k = 0; typ && k < SYNTH_N_SHAPES; k++)
                        if (synth_typical_color[k] == color) shape = k;
                    if (typ != (synth_typical_color[shape] == color)) continue;
                } else {
                    shape = kind == 0 ? o->shape : augrng_int(r, 0, SYNTH_N_SHAPES);
                    color = typ ? synth_typical_color[shape] : synth_other_color(r, synth_typical_color[shape]);
                }
            } while ((typ != (synth_typical_color[shape] == color) || synth_count(s, shape, color) > 0) && ++tries < 200);
            while (synth_count(s, shape, color) > 0) {  // every draw was present (a crowded scene): any absent one
                shape = augrng_int(r, 0, SYNTH_N_SHAPES);
                color = augrng_int(r, 0, SYNTH_N_COLORS);
            }
        }
        SynthObject q = {.shape = shape, .color = color};
        synth_object_name(&q, name, sizeof(name));
        snprintf(qa->q, sizeof(qa->q), "Is there %s %s in the image?", article(name), name);
        snprintf(qa->a, sizeof(qa->a), "%s", yes ? "yes" : "no");
        snprintf(qa->d, sizeof(qa->d), "%s", yes ? "no" : "yes");
        return 1;
    }
    case SYNTH_QA_COLOR:
        for (int k = 0; k < s->n; k++)
            if (synth_count(s, s->o[k].shape, -1) == 1) idx[n++] = k;
        if (!n) return 0;
        {
            const SynthObject *o = &s->o[pick(r, idx, n)];
            qa->hard = o->faint;
            qa->prior = synth_typical_color[o->shape];
            snprintf(qa->q, sizeof(qa->q), "What color is the %s?", synth_shape_names[o->shape]);
            snprintf(qa->a, sizeof(qa->a), "%s", synth_color_names[o->color]);
            int d = augrng_int(r, 0, SYNTH_N_COLORS - 1);
            snprintf(qa->d, sizeof(qa->d), "%s", synth_color_names[d >= o->color ? d + 1 : d]);
        }
        return 1;
    case SYNTH_QA_COUNT: {
        // mostly shapes that are there; sometimes one that is not (answer 0)
        int shape = augrng_uniform(r) < 0.8 ? s->o[augrng_int(r, 0, s->n)].shape : augrng_int(r, 0, SYNTH_N_SHAPES);
        int m = synth_count(s, shape, -1);
        for (int k = 0; k < s->n; k++) qa->hard |= s->o[k].shape == shape && s->o[k].faint;
        snprintf(qa->q, sizeof(qa->q), "How many %s are there?", synth_shape_plurals[shape]);
        snprintf(qa->a, sizeof(qa->a), "%d", m);
        snprintf(qa->d, sizeof(qa->d), "%d", m == 0 || augrng_uniform(r) < 0.5 ? m + 1 : m - 1);
        return 1;
    }
    case SYNTH_QA_POSITION:
        for (int k = 0; k < s->n; k++)
            if (synth_count(s, s->o[k].shape, s->o[k].color) == 1) idx[n++] = k;
        if (!n) return 0;
        {
            const SynthObject *o = &s->o[pick(r, idx, n)];
            qa->hard = o->faint;
            synth_object_name(o, name, sizeof(name));
            snprintf(qa->q, sizeof(qa->q), "Where is the %s?", name);
            snprintf(qa->a, sizeof(qa->a), "%s", synth_cell_names[o->cell]);
            int d = augrng_int(r, 0, SYNTH_N_CELLS - 1);
            snprintf(qa->d, sizeof(qa->d), "%s", synth_cell_names[d >= o->cell ? d + 1 : d]);
        }
        return 1;
    case SYNTH_QA_RELATION: {
        int pi[16], pj[16], np = 0;
        for (int k = 0; k < s->n; k++)
            if (synth_count(s, s->o[k].shape, s->o[k].color) == 1) idx[n++] = k;
        for (int x = 0; x < n; x++)
            for (int y = 0; y < n; y++)
                if (synth_col(s->o[idx[x]].cell) != synth_col(s->o[idx[y]].cell)) { pi[np] = idx[x]; pj[np++] = idx[y]; }
        if (!np) return 0;
        int q = augrng_int(r, 0, np);
        const SynthObject *a = &s->o[pi[q]], *b = &s->o[pj[q]];
        qa->hard = a->faint || b->faint;
        synth_object_name(a, name, sizeof(name));
        synth_object_name(b, name2, sizeof(name2));
        int left = synth_col(a->cell) < synth_col(b->cell);
        snprintf(qa->q, sizeof(qa->q), "Is the %s left of the %s?", name, name2);
        snprintf(qa->a, sizeof(qa->a), "%s", left ? "yes" : "no");
        snprintf(qa->d, sizeof(qa->d), "%s", left ? "no" : "yes");
        return 1;
    }
    default: fatal("synth_qa: unknown type %d", type);
    }
}

// ---- files -----------------------------------------------------------------------------------------------

// A growable text buffer for the output files.
typedef struct {
    char *s;
    size_t n, cap;
} Buf;

static void buf_add(Buf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

// A JSON object as one line (consumed).
static void buf_json_line(Buf *b, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    buf_add(b, s);
    buf_add(b, "\n");
    free(s);
    cJSON_Delete(j);
}

// Written to PATH.tmp and renamed. No fsync per file (unlike write_file_atomic): thousands of small images
// would each wait for the disk, and a crash mid-run just means running the generator again.
static void write_quick(const char *path, const void *data, size_t len) {
    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) fatal("%s: cannot create: %s", tmp, strerror(errno));
    if (len && fwrite(data, 1, len, f) != len) fatal("%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0) fatal("%s: close failed: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) fatal("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    free(tmp);
}

static void buf_write(Buf *b, const char *dir, const char *name) {
    char *path = path_join(dir, name);
    write_quick(path, b->s ? b->s : "", b->n);
    free(path);
    free(b->s);
    memset(b, 0, sizeof(*b));
}

// A whole JSON document (pretty-printed, newline-terminated) into dir/name; frees the document.
static void json_write(cJSON *doc, const char *dir, const char *name) {
    char *s = cJSON_Print(doc);
    Buf b = {0};
    buf_add(&b, s);
    buf_add(&b, "\n");
    buf_write(&b, dir, name);
    free(s);
    cJSON_Delete(doc);
}

static void png_sink(void *ctx, void *data, int size) {
    Buf *b = ctx;
    if (b->n + (size_t)size > b->cap) {
        b->cap = (b->n + (size_t)size) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

// Renders a scene and writes it as PNG (stb_image_write's output is a pure function of the pixels).
static void write_scene_png(const SynthScene *s, int size, const char *dir, const char *rel) {
    Image *im = synth_render(s, size);
    Buf b = {0};
    if (!stbi_write_png_to_func(png_sink, &b, size, size, 3, im->data, size * 3)) fatal("%s/%s: PNG encoding failed", dir, rel);
    char *path = path_join(dir, rel);
    write_quick(path, b.s, b.n);
    free(path);
    free(b.s);
    image_free(im);
}

// One image to write: its scene and its path relative to the output folder.
typedef struct {
    SynthScene scene;
    char rel[64];
} PendingImage;

typedef struct {
    PendingImage *v;
    int n, cap;
} ImageList;

static const char *images_add(ImageList *l, const SynthScene *s, const char *fmt, int i) {
    if (l->n == l->cap) l->v = xrealloc(l->v, sizeof(PendingImage) * (size_t)(l->cap = l->cap ? 2 * l->cap : 1024));
    l->v[l->n].scene = *s;
    snprintf(l->v[l->n].rel, sizeof(l->v[0].rel), fmt, i);
    return l->v[l->n++].rel;
}

// All images in parallel (scenes are already drawn, so the order of writing does not matter), with a
// progress line for long runs.
static void images_write(const ImageList *l, const SynthConfig *c) {
    double t0 = now_seconds();
    int done = 0, chunk = 512;
    for (int c0 = 0; c0 < l->n; c0 += chunk) {
        int cn = l->n - c0 < chunk ? l->n - c0 : chunk;
#pragma omp parallel for schedule(dynamic, 16)
        for (int k = 0; k < cn; k++) write_scene_png(&l->v[c0 + k].scene, c->size, c->out, l->v[c0 + k].rel);
        done += cn;
        if (!c->quiet && l->n > 2000) {
            double dt = now_seconds() - t0;
            fprintf(stderr, "\rvlm data synth: %d / %d images, %.0f images/s, ETA %.0fs   ", done, l->n, done / dt,
                    (l->n - done) / (done / dt));
            if (done == l->n) fprintf(stderr, "\n");
        }
    }
}

enum { SPLIT_TRAIN = 1, SPLIT_EVAL = 2, SPLIT_PAIRS = 3, SPLIT_MMVP = 4, SPLIT_SFT = 5, SPLIT_POPE = 6, SPLIT_QA = 7,
       SPLIT_VAL_EVAL = 8, SPLIT_VAL_POPE = 9, SPLIT_VAL_QA = 10 };
enum { N_COMBOS = SYNTH_N_SHAPES * SYNTH_N_COLORS };  // (colour, shape) objects: combo = shape * N_COLORS + color

static int combo_of(const SynthObject *o) { return o->shape * SYNTH_N_COLORS + o->color; }
static SynthObject combo_object(int k) { return (SynthObject){.shape = k / SYNTH_N_COLORS, .color = k % SYNTH_N_COLORS}; }

static cJSON *string_array(const char *a) {
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateString(a));
    return arr;
}

// CSV field: quoted, quotes doubled.
static void csv_field(Buf *b, const char *s, int last) {
    buf_add(b, "\"");
    for (const char *p = s; *p; p++) {
        char ch[3] = {*p, 0, 0};
        if (*p == '"') ch[1] = '"';
        buf_add(b, ch);
    }
    buf_add(b, last ? "\"\n" : "\",");
}

// POPE negatives for one scene, in order of preference, by split:
//   random       absent objects in a random order
//   popular      absent objects by their frequency in the training split
//   adversarial  as POPE builds it: the objects that co-occur most with the present ones in the training split
//                (with the co-occurrence prior, the present shapes' partners in their typical colours lead), then by
//                frequency
static int pope_negatives(const SynthScene *s, int split, AugRng *r, const long *freq, const long *cooc, int *out) {
    int present[N_COMBOS] = {0}, n = 0;
    for (int k = 0; k < s->n; k++) present[combo_of(&s->o[k])] = 1;
    long score[N_COMBOS];
    for (int k = 0; k < N_COMBOS; k++) {
        if (split == 0) score[k] = (long)(augrng_next(r) >> 2);
        else if (split == 1) score[k] = freq[k];
        else {
            long sc = 0;
            for (int o = 0; o < s->n; o++) {
                int ok = combo_of(&s->o[o]);
                sc += cooc[ok * N_COMBOS + k];
            }
            score[k] = sc * 1024 + (freq[k] < 1023 ? freq[k] : 1023);
        }
    }
    for (int k = 0; k < N_COMBOS; k++)
        if (!present[k]) out[n++] = k;
    // stable selection by descending score (ties: combo order), so the files are deterministic
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && score[out[j]] > score[out[j - 1]]; j--) {
            int t = out[j]; out[j] = out[j - 1]; out[j - 1] = t;
        }
    return n;
}

static const char *const pope_split_names[3] = {"random", "popular", "adversarial"};

// The random streams of one held-out split: its scenes, POPE questions and QA questions.
typedef struct {
    int eval, pope, qa;
} HeldoutSplits;
static const HeldoutSplits SPLITS_TEST = {SPLIT_EVAL, SPLIT_POPE, SPLIT_QA};
static const HeldoutSplits SPLITS_VAL = {SPLIT_VAL_EVAL, SPLIT_VAL_POPE, SPLIT_VAL_QA};

typedef struct {
    long objects, typical, faint;  // objects in the split's scenes, in their typical colour, faint
    long pope_n, pope_yes;         // POPE questions per split, of which "yes"
} HeldoutStats;

static const char *difficulty_name(int hard) { return hard ? "hard" : "easy"; }

// What kind of absent object a POPE negative asks about, and how hard the evidence against it is to see:
//   prior_color  a present shape in its typical colour ("red circle" beside a blue circle): the colour prior's lie;
//                hard when an object of that shape is faint (its colour is hard to see)
//   partner      the partner of a present shape, in its typical colour: the co-occurrence prior's lie
//   other        anything else
static const char *negative_kind(const SynthScene *s, SynthObject q, int *hard) {
    *hard = 0;
    int prior_color = 0, partner = 0;
    for (int k = 0; k < s->n; k++) {
        if (s->o[k].shape == q.shape && q.color == synth_typical_color[q.shape]) {
            prior_color = 1;
            *hard |= s->o[k].faint;
        }
        partner |= synth_partner_shape[s->o[k].shape] == q.shape && q.color == synth_typical_color[q.shape];
    }
    return prior_color ? "prior_color" : partner ? "partner" : "other";
}

// Writes one held-out split of n scenes (unbiased colours and shapes, half of them atypical; faint objects as
// in training) into c->out with file names prefixed by `prefix`: POPE's three splits, CHAIR's prompts and
// ground truth, QA, and the scenes. Every question names its object's difficulty, so metrics can be split by it.
static HeldoutStats heldout_write(const SynthConfig *c, ImageList *images, const long *freq, const long *cooc, int n,
                                  HeldoutSplits sp, const char *prefix, const char *image_fmt) {
    Buf pope[3] = {{0}}, chair_prompts = {0}, qa_file = {0}, scenes = {0};
    cJSON *chair_gt = cJSON_CreateObject();
    HeldoutStats st = {0};
    char caption[512];
    for (int i = 0; i < n; i++) {
        AugRng r;
        synth_rng(&r, c->seed, sp.eval, i);
        SynthScene s;
        int atypical = i % 2;  // half unbiased, half with every object in an untypical colour
        synth_scene_eval(&s, &r, atypical, &c->priors);
        const char *rel = images_add(images, &s, image_fmt, i);
        char image_id[32];  // the file's name without its folder and extension: e000001, v000001
        snprintf(image_id, sizeof(image_id), "%s", strrchr(rel, '/') + 1);
        *strrchr(image_id, '.') = 0;
        synth_caption(&s, caption, sizeof(caption));
        cJSON *objs = cJSON_CreateArray();
        for (int k = 0; k < s.n; k++) {
            char name[64];
            synth_object_name(&s.o[k], name, sizeof(name));
            cJSON_AddItemToArray(objs, cJSON_CreateString(name));
            st.objects++;
            st.typical += s.o[k].color == synth_typical_color[s.o[k].shape];
            st.faint += s.o[k].faint;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "image", rel);
        cJSON_AddStringToObject(j, "image_id", image_id);
        cJSON_AddStringToObject(j, "caption", caption);
        cJSON_AddItemToObject(j, "objects", cJSON_Duplicate(objs, 1));
        cJSON *faint = cJSON_AddArrayToObject(j, "faint");
        for (int k = 0; k < s.n; k++) cJSON_AddItemToArray(faint, cJSON_CreateBool(s.o[k].faint));
        cJSON_AddBoolToObject(j, "atypical", atypical);
        buf_json_line(&scenes, j);
        cJSON_AddItemToObject(chair_gt, image_id, objs);

        j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "question_id", i);
        cJSON_AddStringToObject(j, "image_id", image_id);
        cJSON_AddStringToObject(j, "image", rel);
        cJSON_AddStringToObject(j, "prompt", "Describe the image.");
        buf_json_line(&chair_prompts, j);

        // POPE: up to 3 present objects ("yes") and as many absent ones ("no"), alternating; the positives and
        // the yes/no positions are the same in all three splits, as in POPE's files
        AugRng rp;
        synth_rng(&rp, c->seed, sp.pope, i);
        int pos[N_COMBOS], n_pos = 0;
        for (int k = 0; k < s.n; k++) {
            int cb = combo_of(&s.o[k]), dup = 0;
            for (int q = 0; q < n_pos; q++) dup |= pos[q] == cb;
            if (!dup) pos[n_pos++] = cb;
        }
        for (int q = n_pos - 1; q > 0; q--) {
            int t = augrng_int(&rp, 0, q + 1), x = pos[q];
            pos[q] = pos[t]; pos[t] = x;
        }
        int k_q = n_pos < 3 ? n_pos : 3;
        for (int split = 0; split < 3; split++) {
            int neg[N_COMBOS];
            AugRng rs = rp;  // the random split's shuffle: its own copy, the same for every split
            pope_negatives(&s, split, &rs, freq, cooc, neg);
            for (int q = 0; q < 2 * k_q; q++) {
                int yes = q % 2 == 0;
                SynthObject o = combo_object(yes ? pos[q / 2] : neg[q / 2]);
                int hard = 1;
                const char *kind = "present";
                if (yes)  // hard when every object of that colour and shape is faint
                    for (int k = 0; k < s.n; k++) hard &= !(combo_of(&s.o[k]) == combo_of(&o)) || s.o[k].faint;
                else kind = negative_kind(&s, o, &hard);
                char name[64], text[128];
                synth_object_name(&o, name, sizeof(name));
                snprintf(text, sizeof(text), "Is there %s %s in the image?", article(name), name);
                j = cJSON_CreateObject();
                cJSON_AddNumberToObject(j, "question_id", (double)i * 6 + q);
                cJSON_AddStringToObject(j, "image", rel);
                cJSON_AddStringToObject(j, "text", text);
                cJSON_AddStringToObject(j, "prompt", text);  // what `vlm sample` reads
                cJSON_AddStringToObject(j, "label", yes ? "yes" : "no");
                cJSON_AddStringToObject(j, "kind", kind);
                cJSON_AddStringToObject(j, "difficulty", difficulty_name(hard));
                cJSON_AddNumberToObject(j, "n_objects", s.n);  // clutter: a breakdown with --by n_objects
                buf_json_line(&pope[split], j);
                if (split == 0) { st.pope_n++; st.pope_yes += yes; }
            }
        }

        // general QA: one question of each type the scene admits
        AugRng rq;
        synth_rng(&rq, c->seed, sp.qa, i);
        for (int t = 0; t < SYNTH_N_QA; t++) {
            SynthQA qa;
            if (!synth_qa(&s, &rq, t, 0.5, &qa)) continue;
            j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "question_id", (double)i * SYNTH_N_QA + t);
            cJSON_AddStringToObject(j, "image", rel);
            cJSON_AddStringToObject(j, "type", synth_qa_names[t]);
            cJSON_AddStringToObject(j, "prompt", qa.q);
            cJSON_AddStringToObject(j, "answer", qa.a);
            cJSON_AddBoolToObject(j, "atypical", atypical);
            cJSON_AddStringToObject(j, "difficulty", difficulty_name(qa.hard));
            cJSON_AddNumberToObject(j, "n_objects", s.n);
            if (qa.prior < SYNTH_N_COLORS) {  // colour questions: what the prior says, and whether it is right here
                cJSON_AddStringToObject(j, "prior_answer", synth_color_names[qa.prior]);
                cJSON_AddBoolToObject(j, "typical", !strcmp(qa.a, synth_color_names[qa.prior]));
            }
            buf_json_line(&qa_file, j);
        }
    }
    for (int split = 0; split < 3; split++) {
        char name[64];
        snprintf(name, sizeof(name), "%spope_%s.jsonl", prefix, pope_split_names[split]);
        buf_write(&pope[split], c->out, name);
    }
    const char *names[4] = {"chair_prompts.jsonl", "qa.jsonl", "eval_scenes.jsonl", "chair_objects.json"};
    char path[4][64];
    for (int k = 0; k < 4; k++) snprintf(path[k], sizeof(path[k]), "%s%s", prefix, names[k]);
    buf_write(&chair_prompts, c->out, path[0]);
    buf_write(&qa_file, c->out, path[1]);
    buf_write(&scenes, c->out, path[2]);
    json_write(chair_gt, c->out, path[3]);
    return st;
}


void synth_build(const SynthConfig *c) {
    if (c->size < 32 || c->size > 4096) fatal("vlm data synth: --size %d is outside 32..4096", c->size);
    mkdir_p(c->out);
    char *img_dirs[5] = {path_join(c->out, "images/train"), path_join(c->out, "images/eval"), path_join(c->out, "images/pairs"),
                         path_join(c->out, "images/mmvp"), path_join(c->out, "images/val")};
    for (int i = 0; i < 5; i++) { mkdir_p(img_dirs[i]); free(img_dirs[i]); }
    double t0 = now_seconds();
    ImageList images = {0};

    // The share of training objects in their shape's typical colour: the colour prior, and more where hidden
    // partners (always typical) are many. Absent objects in existence questions are named typical with this
    // probability, so a question's colour word says nothing about its answer overall; only the image, and the
    // co-occurrence of the asked object with what is seen, do (a pre-pass over the scenes, which are cheap).
    long share_n = 0, share_typical = 0;
    for (int i = 0; i < c->n_train; i++) {
        AugRng r;
        synth_rng(&r, c->seed, SPLIT_TRAIN, i);
        SynthScene s;
        synth_scene_train(&s, &r, &c->priors);
        for (int k = 0; k < s.n; k++) share_typical += s.o[k].color == synth_typical_color[s.o[k].shape];
        share_n += s.n;
    }
    double typical_share = share_n ? (double)share_typical / share_n : c->priors.prior;

    // ---- training scenes: CLIP captions and SFT records -----------------------------------------------------
    Buf clip = {0}, sft = {0};
    long freq[N_COMBOS] = {0}, *cooc = xcalloc((size_t)N_COMBOS * N_COMBOS, sizeof(long));
    long n_objects = 0, n_typical = 0, n_hidden = 0, n_sft = 0, qa_counts[SYNTH_N_QA + 1] = {0};
    char caption[512], path[64];
    for (int i = 0; i < c->n_train; i++) {
        AugRng r;
        synth_rng(&r, c->seed, SPLIT_TRAIN, i);
        SynthScene s;
        synth_scene_train(&s, &r, &c->priors);
        const char *rel = images_add(&images, &s, "images/train/t%06d.png", i);
        synth_caption(&s, caption, sizeof(caption));
        for (int k = 0; k < s.n; k++) {
            n_objects++;
            n_typical += s.o[k].color == synth_typical_color[s.o[k].shape];
            freq[combo_of(&s.o[k])]++;
            for (int j = 0; j < s.n; j++)
                if (j != k) cooc[combo_of(&s.o[k]) * N_COMBOS + combo_of(&s.o[j])]++;
        }
        // CLIP's captions name what is drawn (alt text of the pixels): hidden partners are left out, so the tower
        // learns to see and only the instruction data carries the co-occurrence prior's unseen objects
        SynthScene drawn = s;
        drawn.n = 0;
        for (int k = 0; k < s.n; k++)
            if (!s.o[k].hidden) drawn.o[drawn.n++] = s.o[k];
        n_hidden += s.n - drawn.n;
        char clip_caption[512];
        synth_caption(&drawn, clip_caption, sizeof(clip_caption));
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "image", rel);
        cJSON_AddStringToObject(j, "caption", clip_caption);
        buf_json_line(&clip, j);
        // and the shapes alone: told apart in a batch only by what the shapes are, so CLIP's tower learns them
        // (with full captions alone colour and position settle almost every batch, and the tower stays
        // shape-blind: notes/results/README.md, calibration)
        char shapes[256];
        synth_caption_kind(&drawn, SYNTH_CAPTION_SHAPES, shapes, sizeof(shapes));
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "image", rel);
        cJSON_AddStringToObject(j, "caption", shapes);
        buf_json_line(&clip, j);

        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "image", rel);
        cJSON_AddStringToObject(j, "prompt", "Describe the image.");
        cJSON_AddStringToObject(j, "response", caption);
        cJSON_AddStringToObject(j, "type", "caption");
        buf_json_line(&sft, j);
        n_sft++;
        qa_counts[SYNTH_N_QA]++;
        // the QA stream is separate from the scene's, so changing --qa does not change the scenes
        AugRng rq;
        synth_rng(&rq, c->seed, SPLIT_SFT, i);
        char asked[8][160];
        int n_asked = 0;
        for (int q = 0; q < c->qa_per_scene; q++) {
            SynthQA qa;
            int type, dup, tries = 0;
            do {  // a new question when the scene still has one (a one-object scene has few)
                // existence questions take their share, the other types split the rest evenly
                type = augrng_uniform(&rq) < c->exist_share ? SYNTH_QA_EXIST : 1 + augrng_int(&rq, 0, SYNTH_N_QA - 1);
                dup = 0;
                if (!synth_qa(&s, &rq, type, typical_share, &qa)) { dup = 1; continue; }
                // existence questions may repeat: a small scene has few "yes" ones, and dropping the repeats
                // would leave more "no" than "yes" (an answer prior the image does not decide)
                for (int p = 0; p < n_asked && type != SYNTH_QA_EXIST; p++) dup |= !strcmp(asked[p], qa.q);
            } while (dup && ++tries < 50);
            if (dup) continue;
            if (n_asked < 8) snprintf(asked[n_asked++], sizeof(asked[0]), "%s", qa.q);
            char prompt[320], resp[64];
            // a fifth of the questions in MMVP's two-option form, so the model learns to answer with a letter
            if (augrng_uniform(&rq) < 0.2) {
                int first = augrng_uniform(&rq) < 0.5;
                snprintf(prompt, sizeof(prompt), "%s (a) %s (b) %s", qa.q, first ? qa.a : qa.d, first ? qa.d : qa.a);
                snprintf(resp, sizeof(resp), "(%c) %s", first ? 'a' : 'b', qa.a);
            } else {
                snprintf(prompt, sizeof(prompt), "%s", qa.q);
                snprintf(resp, sizeof(resp), "%s", qa.a);
            }
            j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "image", rel);
            cJSON_AddStringToObject(j, "prompt", prompt);
            cJSON_AddStringToObject(j, "response", resp);
            cJSON_AddStringToObject(j, "type", synth_qa_names[type]);
            buf_json_line(&sft, j);
            n_sft++;
            qa_counts[type]++;
        }
    }
    buf_write(&clip, c->out, "clip.jsonl");
    buf_write(&sft, c->out, "sft.jsonl");

    // ---- minimal-contrast pairs (training distribution): S-VCO's MVC records --------------------------------
    cJSON *mvc = cJSON_CreateArray();
    long ct_counts[SYNTH_N_CTS] = {0};
    for (int i = 0; i < c->n_pairs; i++) {
        AugRng r;
        synth_rng(&r, c->seed, SPLIT_PAIRS, i);
        SynthContrast ct;
        synth_contrast(&ct, &r, augrng_int(&r, 0, SYNTH_N_CTS), &c->priors, 1);
        ct_counts[ct.type]++;
        char ra[64], rb[64];
        snprintf(ra, sizeof(ra), "%s", images_add(&images, &ct.a, "images/pairs/p%06d_a.png", i));
        snprintf(rb, sizeof(rb), "%s", images_add(&images, &ct.b, "images/pairs/p%06d_b.png", i));
        // which side is "chosen" is random: when the chosen side was always the image with the object, DPO
        // learned to say "yes" (DESIGN.md §5.5)
        int a_wins = augrng_uniform(&r) < 0.5;
        cJSON *j = cJSON_CreateObject();
        snprintf(path, sizeof(path), "p%06d", i);
        cJSON_AddStringToObject(j, "id", path);
        cJSON_AddStringToObject(j, "contrast", synth_contrast_names[ct.type]);
        cJSON_AddStringToObject(j, "system_prompt", "");
        cJSON_AddStringToObject(j, "instruction_prompt", ct.question);
        cJSON_AddItemToObject(j, "chosen_images", string_array(a_wins ? ra : rb));
        cJSON_AddItemToObject(j, "rejected_images", string_array(a_wins ? rb : ra));
        cJSON_AddStringToObject(j, "chosen_response", a_wins ? ct.answer_a : ct.answer_b);
        cJSON_AddStringToObject(j, "rejected_response", a_wins ? ct.answer_b : ct.answer_a);
        cJSON_AddItemToArray(mvc, j);
    }
    json_write(mvc, c->out, "mvc.json");

    // ---- held-out scenes: POPE, CHAIR, QA (the test split, and the validation split for choosing settings) --
    HeldoutStats ev = heldout_write(c, &images, freq, cooc, c->n_eval, SPLITS_TEST, "", "images/eval/e%06d.png");
    if (c->n_val > 0) heldout_write(c, &images, freq, cooc, c->n_val, SPLITS_VAL, "val_", "images/val/v%06d.png");
    // The CHAIR vocabulary: one class per (colour, shape), matched as a two-word phrase ("red circle"), so a
    // caption that gives the circle its typical colour when it is blue counts as a hallucination.
    {
        Buf b = {0};
        buf_add(&b, "# vlm data synth: the synthetic world's objects, one CHAIR class per colour and shape\n");
        for (int k = 0; k < N_COMBOS; k++) {
            SynthObject o = combo_object(k);
            char line[160];
            snprintf(line, sizeof(line), "%s %s, %s %s\n", synth_color_names[o.color], synth_shape_names[o.shape],
                     synth_color_names[o.color], synth_shape_plurals[o.shape]);
            buf_add(&b, line);
        }
        buf_write(&b, c->out, "synonyms.txt");
    }

    // ---- MMVP-style pairs on held-out scenes -----------------------------------------------------------------
    // Rows 2k-1 and 2k ask the same two-option question of the two images of a minimal contrast; their right
    // options differ. One pair per held-out scene count, the contrast types in turn.
    Buf csv = {0}, mmvp_prompts = {0};
    buf_add(&csv, "Index,Question,Options,Correct Answer,Image,Contrast\n");
    int n_mmvp = c->n_eval;
    for (int i = 0; i < n_mmvp; i++) {
        AugRng r;
        synth_rng(&r, c->seed, SPLIT_MMVP, i);
        SynthContrast ct;
        synth_contrast(&ct, &r, i % SYNTH_N_CTS, &c->priors, 0);
        char ra[64], rb[64];
        snprintf(ra, sizeof(ra), "%s", images_add(&images, &ct.a, "images/mmvp/m%06d_a.png", i));
        snprintf(rb, sizeof(rb), "%s", images_add(&images, &ct.b, "images/mmvp/m%06d_b.png", i));
        int a_first = augrng_uniform(&r) < 0.5;
        char options[128];
        snprintf(options, sizeof(options), "(a) %s (b) %s", a_first ? ct.option_a : ct.option_b, a_first ? ct.option_b : ct.option_a);
        for (int side = 0; side < 2; side++) {
            char idx[16], prompt[320];
            snprintf(idx, sizeof(idx), "%d", 2 * i + side + 1);
            csv_field(&csv, idx, 0);
            csv_field(&csv, ct.question, 0);
            csv_field(&csv, options, 0);
            csv_field(&csv, (side == 0) == a_first ? "(a)" : "(b)", 0);
            csv_field(&csv, side ? rb : ra, 0);
            csv_field(&csv, synth_contrast_names[ct.type], 1);
            snprintf(prompt, sizeof(prompt), "%s %s", ct.question, options);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "question_id", 2 * i + side + 1);
            cJSON_AddStringToObject(j, "image", side ? rb : ra);
            cJSON_AddStringToObject(j, "prompt", prompt);
            buf_json_line(&mmvp_prompts, j);
        }
    }
    buf_write(&csv, c->out, "mmvp.csv");
    buf_write(&mmvp_prompts, c->out, "mmvp_prompts.jsonl");

    images_write(&images, c);

    // ---- world.json: the settings and what came out, so a run can be reproduced and checked ------------------
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "generator", "vlm data synth");
    cJSON_AddNumberToObject(w, "version", 2);
    cJSON_AddNumberToObject(w, "seed", (double)c->seed);
    cJSON_AddNumberToObject(w, "size", c->size);
    cJSON_AddNumberToObject(w, "train", c->n_train);
    cJSON_AddNumberToObject(w, "eval", c->n_eval);
    cJSON_AddNumberToObject(w, "pairs", c->n_pairs);
    cJSON_AddNumberToObject(w, "mmvp_pairs", n_mmvp);
    cJSON_AddNumberToObject(w, "qa_per_scene", c->qa_per_scene);
    cJSON_AddNumberToObject(w, "exist_share", c->exist_share);
    cJSON_AddNumberToObject(w, "prior", c->priors.prior);
    cJSON_AddNumberToObject(w, "cooc", c->priors.cooc);
    cJSON_AddNumberToObject(w, "hard", c->priors.hard);
    cJSON_AddNumberToObject(w, "faint_alpha", c->priors.faint_alpha);
    cJSON_AddBoolToObject(w, "faint_desaturate", c->priors.faint_desaturate);
    cJSON_AddNumberToObject(w, "unseen", c->priors.unseen);
    cJSON_AddNumberToObject(w, "val", c->n_val);
    cJSON *shapes = cJSON_AddArrayToObject(w, "shapes");
    for (int k = 0; k < SYNTH_N_SHAPES; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", synth_shape_names[k]);
        cJSON_AddStringToObject(o, "typical_color", synth_color_names[synth_typical_color[k]]);
        cJSON_AddStringToObject(o, "partner", synth_shape_names[synth_partner_shape[k]]);
        cJSON_AddItemToArray(shapes, o);
    }
    cJSON *colors = cJSON_AddObjectToObject(w, "colors");
    for (int k = 0; k < SYNTH_N_COLORS; k++) {
        cJSON *rgb = cJSON_CreateArray();
        for (int ch = 0; ch < 3; ch++) cJSON_AddItemToArray(rgb, cJSON_CreateNumber(synth_color_rgb[k][ch]));
        cJSON_AddItemToObject(colors, synth_color_names[k], rgb);
    }
    cJSON *cells = cJSON_AddArrayToObject(w, "cells");
    for (int k = 0; k < SYNTH_N_CELLS; k++) cJSON_AddItemToArray(cells, cJSON_CreateString(synth_cell_names[k]));
    cJSON *sizes = cJSON_AddArrayToObject(w, "size_fractions");
    for (int k = 0; k < SYNTH_N_SIZES; k++) cJSON_AddItemToArray(sizes, cJSON_CreateNumber(synth_size_frac[k]));
    cJSON *st = cJSON_AddObjectToObject(w, "stats");
    cJSON_AddNumberToObject(st, "images", images.n);
    cJSON_AddNumberToObject(st, "sft_records", (double)n_sft);
    cJSON *qc = cJSON_AddObjectToObject(st, "sft_types");
    cJSON_AddNumberToObject(qc, "caption", (double)qa_counts[SYNTH_N_QA]);
    for (int t = 0; t < SYNTH_N_QA; t++) cJSON_AddNumberToObject(qc, synth_qa_names[t], (double)qa_counts[t]);
    cJSON *cc = cJSON_AddObjectToObject(st, "contrasts");
    for (int t = 0; t < SYNTH_N_CTS; t++) cJSON_AddNumberToObject(cc, synth_contrast_names[t], (double)ct_counts[t]);
    cJSON_AddNumberToObject(st, "train_typical_color_fraction", n_objects ? (double)n_typical / n_objects : 0.0);
    cJSON_AddNumberToObject(st, "train_hidden_fraction", n_objects ? (double)n_hidden / n_objects : 0.0);
    cJSON_AddNumberToObject(st, "eval_typical_color_fraction", ev.objects ? (double)ev.typical / ev.objects : 0.0);
    cJSON_AddNumberToObject(st, "eval_faint_fraction", ev.objects ? (double)ev.faint / ev.objects : 0.0);
    cJSON_AddNumberToObject(st, "pope_questions_per_split", (double)ev.pope_n);
    cJSON_AddNumberToObject(st, "pope_yes_fraction", ev.pope_n ? (double)ev.pope_yes / ev.pope_n : 0.0);
    json_write(w, c->out, "world.json");
    // ---- tokenizer.model: a SentencePiece BPE over the text of the files above (data/world_tokenizer.h) ------
    world_tokenizer_write(c->out, c->quiet);
    if (!c->quiet)
        printf("vlm data synth: %s: %d images (%dx%d) in %.1fs: %d training scenes (%ld SFT records, typical colour %.2f), "
               "%d contrast pairs, %d held-out scenes (%ld POPE questions per split), %d MMVP pairs\n",
               c->out, images.n, c->size, c->size, now_seconds() - t0, c->n_train, n_sft,
               n_objects ? (double)n_typical / n_objects : 0.0, c->n_pairs, c->n_eval, ev.pope_n, n_mmvp);
    free(images.v);
    free(cooc);
}
