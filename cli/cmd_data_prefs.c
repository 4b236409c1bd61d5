// vlm data seva | clipdpo | mvc: the preference-data builders of the three methods (research/methods.md),
// each a join or a filter over files the other commands write, so every stage can be inspected:
//
//   seva     questions + `vlm sample` answers on the original images (chosen) + answers on augmented images
//            (`vlm sample --augment diffusion:500`, rejected) -> DPO pairs (§3.2)
//   clipdpo  questions + several sampled candidates per question (`vlm sample --n 5 --temperature 1`)
//            -> CLIP-scored, best vs worst -> DPO pairs (§2.2)
//   mvc      S-VCO's minimal-contrast records -> those whose two images the CLIP tower finds similar (§1.3), or, as
//            released, those one encoder (SigLIP) finds similar and another (DINOv2) different
//
// The outputs are JSON Lines that `vlm train --recipe dpo|mdpo` (seva, clipdpo) and `--recipe svco|vco`
// (mvc) read. Image paths are written as the input gives them: keep the output next to the input.
#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/prefpairs.h"
#include "../eval/clipscore.h"
#include "../util/args.h"
#include "../util/common.h"
#include "../util/json_check.h"
#include "../util/jsonl.h"
#include "commands.h"

// ---- shared: the question file and the sample files -----------------------------------------------------

typedef struct {
    cJSON **rec;       // (n) the question records (image, prompt, ...)
    int n;
    char **texts;      // (n * k) candidate texts per question, NULL where missing (sample files only)
    int k;             // candidates per question
} Questions;

static void questions_read(Questions *q, const char *path) {
    memset(q, 0, sizeof(*q));
    JsonlReader jr;
    jsonl_open(&jr, path);
    int cap = 0;
    cJSON *j;
    // the question keys `vlm sample` reads: "prompt", "question" or POPE's "text"; "image" or TRL's "images"
    static const char *const prompt_keys[] = {"prompt", "question", "text", NULL};
    static const char *const used[] = {"image", "images", "prompt", "question", "text", "system", "question_id", NULL};
    while ((j = jsonl_next(&jr, 0, NULL))) {
        const char *p, *pk, *im, *ik, *stray = json_stray_image_key(j, used, NULL);
        char err[256];
        if (stray) fatal("%s:%d: \"%s\" looks like an image but is not read: the image goes in \"image\" or \"images\"", path, jr.line, stray);
        if (json_record_text(j, prompt_keys, &p, &pk, err, sizeof(err)) || json_record_image(j, &im, &ik, err, sizeof(err)))
            fatal("%s:%d: %s", path, jr.line, err);
        if (!p) fatal("%s:%d: needs \"prompt\" (or \"question\", or POPE's \"text\")", path, jr.line);
        // the pairs are written with "prompt" and "image", as `vlm train` reads them
        if (strcmp(pk, "prompt")) cJSON_AddStringToObject(j, "prompt", p);
        if (ik && strcmp(ik, "image")) {
            cJSON_AddStringToObject(j, "image", im);
            cJSON_DeleteItemFromObjectCaseSensitive(j, "images");
        }
        if (q->n == cap) q->rec = xrealloc(q->rec, sizeof(cJSON *) * (cap = cap ? 2 * cap : 256));
        q->rec[q->n++] = j;
    }
    jsonl_close(&jr);
    if (q->n == 0) fatal("%s: no questions", path);
}

// `vlm sample` output: {"index", "sample", "text", ...}; k samples per question. Each (index, sample) once.
// raw: SeVa's answer as its generation wrote it (data/step2/generate_with_aug.py l.163 decodes the new ids with
// the special tokens, so an answer that the end token ended carries "</s>": "text" + "</s>" when "finish" is
// "eos"); else CLIP-DPO's candidate, cleaned (pref_clean_answer).
static char **samples_read(const char *path, int n_questions, int k, int raw) {
    char **t = xcalloc((size_t)n_questions * k, sizeof(char *));
    JsonlReader jr;
    jsonl_open(&jr, path);
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index"), *sm = cJSON_GetObjectItemCaseSensitive(j, "sample");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!cJSON_IsNumber(ix) || !cJSON_IsString(tx)) fatal("%s:%d: needs \"index\" and \"text\" (vlm sample's output)", path, jr.line);
        long long ii = -1, ss = 0;  // range-checked before any cast (an out-of-range double to int is undefined)
        if (json_int(ix, -1, INT_MAX, &ii) || (cJSON_IsNumber(sm) && json_int(sm, -1, INT_MAX, &ss)))
            fatal("%s:%d: \"index\" and \"sample\" must be integers from 0", path, jr.line);
        const int i = (int)ii, s = (int)ss;
        if (i < 0 || i >= n_questions) fatal("%s:%d: index %d: the question file has %d questions", path, jr.line, i, n_questions);
        if (s < 0 || s >= k) fatal("%s:%d: sample %d outside 0..%d", path, jr.line, s, k - 1);
        if (t[(size_t)i * k + s]) fatal("%s:%d: index %d sample %d appears twice", path, jr.line, i, s);
        if (raw) {
            const cJSON *fin = cJSON_GetObjectItemCaseSensitive(j, "finish");
            const int eos = cJSON_IsString(fin) && !strcmp(fin->valuestring, "eos");
            char *a = xmalloc(strlen(tx->valuestring) + 5);
            sprintf(a, "%s%s", tx->valuestring, eos ? "</s>" : "");
            t[(size_t)i * k + s] = a;
        } else t[(size_t)i * k + s] = pref_clean_answer(xstrdup(tx->valuestring));
        cJSON_Delete(j);
    }
    jsonl_close(&jr);
    return t;
}

static void questions_free(Questions *q) {
    for (int i = 0; i < q->n; i++) cJSON_Delete(q->rec[i]);
    free(q->rec);
}

static const char *rec_str(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// One DPO record {image?, prompt, chosen, rejected} (+ scores) appended to the output stream.
static void write_pair(FILE *f, const cJSON *q, const char *chosen, const char *rejected, const char *extra_key,
                       double extra_a, double extra_b) {
    cJSON *o = cJSON_CreateObject();
    const char *im = rec_str(q, "image");
    if (im) cJSON_AddStringToObject(o, "image", im);
    cJSON_AddStringToObject(o, "prompt", rec_str(q, "prompt"));
    cJSON_AddStringToObject(o, "chosen", chosen);
    cJSON_AddStringToObject(o, "rejected", rejected);
    if (extra_key) {
        char k[64];
        snprintf(k, sizeof(k), "%s_chosen", extra_key);
        cJSON_AddNumberToObject(o, k, extra_a);
        snprintf(k, sizeof(k), "%s_rejected", extra_key);
        cJSON_AddNumberToObject(o, k, extra_b);
    }
    char *line = cJSON_PrintUnformatted(o);
    fprintf(f, "%s\n", line);
    free(line);
    cJSON_Delete(o);
}

typedef struct {
    FILE *f;
    char *buf;
    size_t len;
    const char *path;
} Out;

static void out_open(Out *o, const char *path) {
    memset(o, 0, sizeof(*o));
    o->path = path;
    o->f = path ? open_memstream(&o->buf, &o->len) : stdout;
    if (!o->f) fatal("open_memstream failed");
}

static void out_close(Out *o) {
    if (!o->path) { fflush(stdout); return; }
    fclose(o->f);
    write_file_atomic(o->path, o->buf, o->len);
    free(o->buf);
}

// An empty result is an error unless the caller allows it (the demo goes on without that method).
static void no_pairs_check(int kept, int allow_empty, const char *what) {
    if (kept > 0) return;
    if (!allow_empty) fatal("%s", what);
    fprintf(stderr, "vlm: warning: %s (--allow-empty: an empty file)\n", what);
}

// ---- seva ---------------------------------------------------------------------------------------------

static const char *seva_help =
    "usage: vlm data seva --questions Q.jsonl --chosen A.jsonl --rejected B.jsonl [--repeat K] [--allow-empty] [--out FILE]\n"
    "\n"
    "SeVa's pairs (research/methods.md §3.2): A holds `vlm sample` answers on the original images, B the\n"
    "answers on augmented images (`vlm sample --augment diffusion:500`, greedy both). A question becomes\n"
    "{image, prompt, chosen: A's answer, rejected: B's answer} unless the two raw answers are the same string\n"
    "(\"</s>\" ending an answer that the end token stopped, as SeVa's generation decodes it); the answers are then\n"
    "cleaned as SeVa's step 3 does: every \"</s>\" and every newline deleted (data/step3/make_pair_*.py l.24-30).\n"
    "A pair whose cleaned answer is empty is dropped (training refuses empty responses). --repeat K writes each\n"
    "pair K times (SeVa used 2). Generate A and B with `vlm sample --preset seva` (SeVa's generation settings).\n"
    "No pair at all is an error, unless --allow-empty (then an empty file and a warning).\n";

int data_seva(int argc, char **argv) {
    Args a = args_init("vlm data seva", argc, argv);
    if (args_help(&a)) { printf("%s", seva_help); return 0; }
    const char *qp = arg_str(&a, "--questions", NULL), *ap = arg_str(&a, "--chosen", NULL), *bp = arg_str(&a, "--rejected", NULL);
    const char *out_path = arg_str(&a, "--out", NULL);
    long repeat = arg_int(&a, "--repeat", 1);
    const int allow_empty = arg_flag(&a, "--allow-empty");
    args_finish(&a);
    if (!qp || !ap || !bp) fatal("vlm data seva: --questions, --chosen and --rejected are required (see --help)");
    if (repeat < 1 || repeat > 100) fatal("vlm data seva: --repeat must be between 1 and 100");
    Questions q;
    questions_read(&q, qp);
    char **ca = samples_read(ap, q.n, 1, 1), **cb = samples_read(bp, q.n, 1, 1);
    Out o;
    out_open(&o, out_path);
    int kept = 0, same = 0, empty = 0, missing = 0;
    for (int i = 0; i < q.n; i++) {
        if (!ca[i] || !cb[i]) { missing++; continue; }
        if (!seva_keep(ca[i], cb[i])) { same++; continue; }  // the raw strings, before the cleaning
        seva_clean_answer(ca[i]);
        seva_clean_answer(cb[i]);
        if (!ca[i][0] || !cb[i][0]) { empty++; continue; }
        for (int r = 0; r < repeat; r++) write_pair(o.f, q.rec[i], ca[i], cb[i], NULL, 0, 0);
        kept++;
    }
    out_close(&o);
    fprintf(stderr, "seva: %d questions -> %d pairs (x%ld), %d dropped as identical, %d as empty, %d without both answers\n",
            q.n, kept, repeat, same, empty, missing);
    for (int i = 0; i < q.n; i++) { free(ca[i]); free(cb[i]); }
    free(ca); free(cb);
    questions_free(&q);
    no_pairs_check(kept, allow_empty, "vlm data seva: no pair survived: every question's two answers are the same");
    return 0;
}

// ---- clipdpo --------------------------------------------------------------------------------------------

static const char *clipdpo_help =
    "usage: vlm data clipdpo --questions Q.jsonl --samples S.jsonl --clip DIR [--n K] [--tokenizer F]\n"
    "                        [--min-gap G] [--max-length-ratio R] [--min-score X] [--device D] [--allow-empty] [--out FILE]\n"
    "\n"
    "CLIP-DPO's pairs (research/methods.md §2.2): S holds K sampled candidates per question (`vlm sample\n"
    "--n K --temperature 1`); each gets its CLIPScore (100 x cosine) with the question's image under the\n"
    "CLIPModel in DIR. The best becomes chosen and the worst rejected when their gap is at least G (default\n"
    "2) and the longer is at most R times the shorter in words (default 2); candidates below --min-score\n"
    "take no part. Identical candidates count once. Questions without an image are skipped.\n"
    "No pair at all is an error, unless --allow-empty (then an empty file and a warning).\n";

int data_clipdpo(int argc, char **argv) {
    Args a = args_init("vlm data clipdpo", argc, argv);
    if (args_help(&a)) { printf("%s", clipdpo_help); return 0; }
    const char *qp = arg_str(&a, "--questions", NULL), *sp = arg_str(&a, "--samples", NULL), *clip = arg_str(&a, "--clip", NULL);
    const char *tok = arg_str(&a, "--tokenizer", NULL), *device = arg_str(&a, "--device", "auto");
    const char *out_path = arg_str(&a, "--out", NULL);
    long k = arg_int(&a, "--n", 5);
    double min_gap = arg_float(&a, "--min-gap", 2), max_ratio = arg_float(&a, "--max-length-ratio", 2);
    double min_score = arg_float(&a, "--min-score", -INFINITY);
    const int allow_empty = arg_flag(&a, "--allow-empty");
    args_finish(&a);
    if (!qp || !sp || !clip) fatal("vlm data clipdpo: --questions, --samples and --clip are required (see --help)");
    if (k < 2 || k > 4096) fatal("vlm data clipdpo: --n must be between 2 and 4096 (candidates per question)");
    if (!(min_gap >= 0) || !(max_ratio >= 1)) fatal("vlm data clipdpo: --min-gap must be >= 0 and --max-length-ratio >= 1");
    Questions q;
    questions_read(&q, qp);
    char **cand = samples_read(sp, q.n, (int)k, 0);
    char *dir = path_dirname(qp);
    // pass 1: each question's distinct, non-empty candidates (first[i] .. first[i+1] in texts); questions
    // without an image or with fewer than two candidates take no part
    int *first = xmalloc(sizeof(int) * (q.n + 1)), n_texts = 0, n_images = 0, no_image = 0, too_few = 0;
    const char **texts = xmalloc(sizeof(char *) * ((size_t)q.n * k + 1));
    char **images = xmalloc(sizeof(char *) * (q.n + 1));
    int *image_of = xmalloc(sizeof(int) * (q.n + 1));
    for (int i = 0; i < q.n; i++) {
        first[i] = n_texts;
        image_of[i] = -1;
        const char *im = rec_str(q.rec[i], "image");
        if (!im) { no_image++; continue; }
        int m = 0;
        for (int j = 0; j < k; j++) {
            const char *t = cand[(size_t)i * k + j];
            if (!t || !t[0]) continue;
            int dup = 0;
            for (int u = 0; u < m && !dup; u++) dup = !strcmp(texts[first[i] + u], t);
            if (!dup) texts[first[i] + m++] = t;
        }
        if (m < 2) { too_few++; continue; }
        n_texts += m;
        image_of[i] = n_images;
        images[n_images++] = path_join(dir, im);
    }
    first[q.n] = n_texts;
    // pass 2: every image and every candidate through the CLIP in batches, then best vs worst per question
    ClipScorer s;
    clipscore_open(&s, clip, tok, backend_select(device), 64);
    float *ei = xmalloc(sizeof(float) * s.P * (n_images + 1)), *et = xmalloc(sizeof(float) * s.P * (n_texts + 1));
    fprintf(stderr, "clipdpo: scoring %d candidates against %d images\n", n_texts, n_images);
    clipscore_images(&s, (const char *const *)images, n_images, ei);
    clipscore_texts(&s, texts, n_texts, et);
    double *score = xmalloc(sizeof(double) * k);
    int *words = xmalloc(sizeof(int) * k);
    Out o;
    out_open(&o, out_path);
    int kept = 0, filtered = 0;
    for (int i = 0; i < q.n; i++) {
        if (image_of[i] < 0) continue;
        const int m = first[i + 1] - first[i];
        for (int u = 0; u < m; u++) {
            score[u] = 100.0 * clipscore_cosine(ei + (size_t)image_of[i] * s.P, et + (size_t)(first[i] + u) * s.P, s.P);
            words[u] = pref_word_count(texts[first[i] + u]);
        }
        int c, r;
        if (!clipdpo_pick(score, words, m, min_score, min_gap, max_ratio, &c, &r)) { filtered++; continue; }
        write_pair(o.f, q.rec[i], texts[first[i] + c], texts[first[i] + r], "clip_score", score[c], score[r]);
        kept++;
    }
    out_close(&o);
    fprintf(stderr, "clipdpo: %d questions -> %d pairs; %d without an image, %d with fewer than 2 distinct candidates, "
            "%d below the gap or over the length ratio\n", q.n, kept, no_image, too_few, filtered);
    for (size_t i = 0; i < (size_t)q.n * k; i++) free(cand[i]);
    for (int i = 0; i < n_images; i++) free(images[i]);
    free(cand); free(ei); free(et); free(score); free(words); free(texts); free(images); free(image_of); free(first); free(dir);
    clipscore_close(&s);
    questions_free(&q);
    no_pairs_check(kept, allow_empty, "vlm data clipdpo: no pair passed the filters");
    return 0;
}

// ---- mvc ------------------------------------------------------------------------------------------------

static const char *mvc_help =
    "usage: vlm data mvc --data MVC.json --clip DIR [--min-sim X] [--max-sim Y] [--tokenizer F] [--images DIR]\n"
    "                    [--device D] [--allow-empty] [--out FILE] [--dpo-out FILE]\n"
    "       vlm data mvc --data MVC.json --similar DIR --different DIR [--similar-above X] [--different-below Y] [...]\n"
    "\n"
    "Two encoders, as the released MVC was filtered (s-vco/s-vco README.md line 35: SigLIP-so400m similarity > 0.7\n"
    "and DINOv2-large similarity < 0.5): keeps the records whose first chosen and first rejected image have a cosine\n"
    "above X (default 0.7) under --similar DIR and below Y (default 0.5) under --different DIR. Either folder is a\n"
    "CLIPModel, a SigLIP vision model with its pooling head or a DINOv2 (see `vlm score --help`). Kept records gain\n"
    "\"similar_cosine\" and \"different_cosine\" (also in --dpo-out's records).\n"
    "\n"
    "One encoder:\n"
    "S-VCO's vision-centric filter (research/methods.md §1.3): keeps the minimal-contrast records (JSON array\n"
    "or JSON Lines with chosen_images, rejected_images, ...) whose first chosen and first rejected image have\n"
    "an image-image cosine under the CLIPModel in DIR within [X, Y] (default [0.7, 1]: pairs a CLIP-like\n"
    "encoder finds hard to tell apart). The paper's second condition (DINOv2 similarity < 0.5) needs a model\n"
    "we do not have; --max-sim is the knob to drop near-duplicates instead. Records keep every field; each\n"
    "gains \"image_cosine\". Output: JSON Lines. No record kept is an error, unless --allow-empty.\n"
    "  --dpo-out FILE  the kept pairs also as DPO records, S-VCO's own DPO baseline (its Table 1): the chosen\n"
    "                  image with the chosen and the rejected response, {image, prompt, chosen, rejected,\n"
    "                  image_cosine}; the rejected image is not used\n";

// One kept MVC record as a DPO pair on its chosen image: (I_w, y_w) preferred to (I_w, y_l).
static void mvc_write_dpo(Out *o, const cJSON *rec, const char *path, int index) {
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(rec, "chosen_images");
    const cJSON *img = cJSON_IsArray(ci) ? cJSON_GetArrayItem(ci, 0) : ci;
    const char *keys[3] = {"instruction_prompt", "chosen_response", "rejected_response"};
    const cJSON *v[3];
    for (int k = 0; k < 3; k++) {
        v[k] = cJSON_GetObjectItemCaseSensitive(rec, keys[k]);
        if (!cJSON_IsString(v[k])) fatal("%s: record %d: --dpo-out needs the string field \"%s\"", path, index + 1, keys[k]);
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "image", img->valuestring);
    cJSON_AddStringToObject(d, "prompt", v[0]->valuestring);
    cJSON_AddStringToObject(d, "chosen", v[1]->valuestring);
    cJSON_AddStringToObject(d, "rejected", v[2]->valuestring);
    static const char *const scores[] = {"image_cosine", "similar_cosine", "different_cosine"};
    for (int k = 0; k < 3; k++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(rec, scores[k]);
        if (c) cJSON_AddItemToObject(d, scores[k], cJSON_Duplicate(c, 0));
    }
    char *line = cJSON_PrintUnformatted(d);
    fprintf(o->f, "%s\n", line);
    free(line);
    cJSON_Delete(d);
}

// A kept MVC record (its scores already added) into the output, and as a DPO pair into --dpo-out when given.
static void mvc_keep(Out *o, Out *od, const cJSON *rec, const char *dpo_path, const char *path, int index) {
    char *line = cJSON_PrintUnformatted(rec);
    fprintf(o->f, "%s\n", line);
    free(line);
    if (dpo_path) mvc_write_dpo(od, rec, path, index);
}

// unit vectors: a cosine past +-1 is the rounding of their fp32 norms (an image with itself can sum to 1 + 1e-7)
static double clamped_cosine(const float *a, const float *b, int P) {
    double c = clipscore_cosine(a, b, P);
    return c > 1 ? 1 : c < -1 ? -1 : c;
}

// paths (2n): each record's chosen and rejected image
static void mvc_two_encoders(const char *dp, cJSON **recs, char **paths, int n, const char *sim_dir, const char *diff_dir,
                             double above, double below, const Backend *be, const char *out_path, const char *dpo_path,
                             int allow_empty) {
    double *cs = xmalloc(sizeof(double) * n), *cd = xmalloc(sizeof(double) * n);
    const char *dirs[2] = {sim_dir, diff_dir};
    const char *names[2];
    for (int k = 0; k < 2; k++) {  // one encoder in memory at a time
        ImageEncoder e;
        image_encoder_open(&e, dirs[k], be, 64);
        names[k] = e.name;
        float *emb = xmalloc(sizeof(float) * 2 * (size_t)n * e.P);
        image_encoder_images(&e, (const char *const *)paths, 2 * n, emb);
        for (int i = 0; i < n; i++)
            (k ? cd : cs)[i] = clamped_cosine(emb + (size_t)2 * i * e.P, emb + (size_t)(2 * i + 1) * e.P, e.P);
        free(emb);
        image_encoder_close(&e);
    }
    Out o, od = {0};
    out_open(&o, out_path);
    if (dpo_path) out_open(&od, dpo_path);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (cs[i] > above && cd[i] < below) {  // strict, as the release states it
            cJSON_AddNumberToObject(recs[i], "similar_cosine", cs[i]);
            cJSON_AddNumberToObject(recs[i], "different_cosine", cd[i]);
            mvc_keep(&o, &od, recs[i], dpo_path, dp, i);
            kept++;
        }
        cJSON_Delete(recs[i]);
    }
    out_close(&o);
    if (dpo_path) out_close(&od);
    fprintf(stderr, "mvc: %d records -> %d kept with %s cosine > %g and %s cosine < %g\n", n, kept, names[0], above, names[1],
            below);
    free(cs);
    free(cd);
    no_pairs_check(kept, allow_empty, "vlm data mvc: no record passed the two-encoder filter");
}

int data_mvc(int argc, char **argv) {
    Args a = args_init("vlm data mvc", argc, argv);
    if (args_help(&a)) { printf("%s", mvc_help); return 0; }
    const char *dp = arg_str(&a, "--data", NULL), *clip = arg_str(&a, "--clip", NULL), *tok = arg_str(&a, "--tokenizer", NULL);
    const char *images = arg_str(&a, "--images", NULL), *device = arg_str(&a, "--device", "auto");
    const char *out_path = arg_str(&a, "--out", NULL), *dpo_path = arg_str(&a, "--dpo-out", NULL);
    const char *sim_dir = arg_str(&a, "--similar", NULL), *diff_dir = arg_str(&a, "--different", NULL);
    const int two = sim_dir || diff_dir;
    double lo = 0.7, hi = 1.0, above = 0.7, below = 0.5;
    if (two) {  // the released filter's two thresholds; the one-encoder window's flags do not apply
        above = arg_float(&a, "--similar-above", 0.7);
        below = arg_float(&a, "--different-below", 0.5);
    } else {
        lo = arg_float(&a, "--min-sim", 0.7);
        hi = arg_float(&a, "--max-sim", 1.0);
    }
    const int allow_empty = arg_flag(&a, "--allow-empty");
    args_finish(&a);
    if (two && (!sim_dir || !diff_dir)) fatal("vlm data mvc: --similar and --different go together (see --help)");
    if (two && (clip || tok)) fatal("vlm data mvc: --clip and --tokenizer are the one-encoder filter; with --similar and --different, give the encoders' folders only");
    if (!dp || (!clip && !two)) fatal("vlm data mvc: --data and --clip (or --similar and --different) are required (see --help)");
    if (!(lo <= hi)) fatal("vlm data mvc: --min-sim must not exceed --max-sim");
    if (!(above >= -1 && above <= 1 && below >= -1 && below <= 1))
        fatal("vlm data mvc: --similar-above and --different-below are cosines, from -1 to 1");
    char *dir = images ? xstrdup(images) : path_dirname(dp);
    JsonlReader jr;
    jsonl_open(&jr, dp);
    cJSON **recs = NULL;
    char **paths = NULL;  // (2n): chosen, rejected
    int n = 0, cap = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(j, "chosen_images"), *ri = cJSON_GetObjectItemCaseSensitive(j, "rejected_images");
        const cJSON *c0 = cJSON_IsArray(ci) ? cJSON_GetArrayItem(ci, 0) : ci, *r0 = cJSON_IsArray(ri) ? cJSON_GetArrayItem(ri, 0) : ri;
        if (!cJSON_IsString(c0) || !cJSON_IsString(r0))
            fatal("%s:%d: needs chosen_images and rejected_images (lists of paths)", dp, jr.line);
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            recs = xrealloc(recs, sizeof(cJSON *) * cap);
            paths = xrealloc(paths, sizeof(char *) * 2 * cap);
        }
        recs[n] = j;
        paths[2 * n] = path_join(dir, c0->valuestring);
        paths[2 * n + 1] = path_join(dir, r0->valuestring);
        n++;
    }
    jsonl_close(&jr);
    if (n == 0) fatal("%s: no records", dp);
    if (two) {
        mvc_two_encoders(dp, recs, paths, n, sim_dir, diff_dir, above, below, backend_select(device), out_path, dpo_path,
                         allow_empty);
        for (int i = 0; i < 2 * n; i++) free(paths[i]);
        free(recs); free(paths); free(dir);
        return 0;
    }
    ClipScorer s;
    clipscore_open(&s, clip, tok, backend_select(device), 64);
    float *e = xmalloc(sizeof(float) * 2 * n * s.P);
    clipscore_images(&s, (const char *const *)paths, 2 * n, e);
    Out o, od = {0};
    out_open(&o, out_path);
    if (dpo_path) out_open(&od, dpo_path);
    int kept = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        // unit vectors: a cosine past +-1 is the rounding of their fp32 norms (an image with itself can sum to
        // 1 + 1e-7), which must not drop identical images from the default [0.7, 1]
        double c = clipscore_cosine(e + (size_t)2 * i * s.P, e + (size_t)(2 * i + 1) * s.P, s.P);
        c = c > 1 ? 1 : c < -1 ? -1 : c;
        sum += c;
        if (c >= lo && c <= hi) {
            cJSON_AddNumberToObject(recs[i], "image_cosine", c);
            mvc_keep(&o, &od, recs[i], dpo_path, dp, i);
            kept++;
        }
        cJSON_Delete(recs[i]);
        free(paths[2 * i]);
        free(paths[2 * i + 1]);
    }
    out_close(&o);
    if (dpo_path) out_close(&od);
    fprintf(stderr, "mvc: %d records -> %d kept with image cosine in [%g, %g] (mean cosine %.3f)\n", n, kept, lo, hi, sum / n);
    free(e); free(recs); free(paths); free(dir);
    clipscore_close(&s);
    no_pairs_check(kept, allow_empty, "vlm data mvc: no record passed the similarity filter");
    return 0;
}
