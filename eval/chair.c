#include "chair.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"
#include "answers.h"
#include "text.h"

// ---- vocabulary ------------------------------------------------------------------------------------

// The words joined by single spaces, each singularized when sing; fresh string.
static char *join_words(const Words *ws, int sing) {
    size_t len = 1;
    char **parts = xmalloc(sizeof(char *) * (size_t)(ws->n ? ws->n : 1));
    for (int i = 0; i < ws->n; i++) {
        parts[i] = sing ? text_singular(ws->w[i]) : xstrdup(ws->w[i]);
        len += strlen(parts[i]) + 1;
    }
    char *s = xmalloc(len), *p = s;
    *p = 0;
    for (int i = 0; i < ws->n; i++) {
        p += sprintf(p, "%s%s", i ? " " : "", parts[i]);
        free(parts[i]);
    }
    free(parts);
    return s;
}

static void add_pair(ChairVocab *v, const char *key, const char *to) {
    int k = strmap_get(&v->pair, key);
    if (k >= 0) {  // a later rule wins, as in chair.py's dict
        free(v->pair_to[k]);
        v->pair_to[k] = xstrdup(to);
        return;
    }
    if (v->n_pairs == v->cap_pairs)
        v->pair_to = xrealloc(v->pair_to, sizeof(char *) * (size_t)(v->cap_pairs = v->cap_pairs ? 2 * v->cap_pairs : 64));
    v->pair_to[v->n_pairs] = xstrdup(to);
    strmap_put(&v->pair, key, v->n_pairs++);
}

// chair.py's hard-coded COCO phrases (its double words and special cases), applied after the synonyms'
// own phrases so that they win where both exist ("bow tie" -> "tie").
static void add_coco_rules(ChairVocab *v) {
    static const char *const double_words[] = {
        "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
        "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat",
        "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear",
        "hair drier", "potted plant", "bow tie", "laptop computer", "home plate", NULL};
    static const char *const animals[] = {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear",
                                          "zebra", "giraffe", "animal", "cub", NULL};
    for (int i = 0; double_words[i]; i++) {
        Words ws;
        words_init(&ws);
        text_words(double_words[i], &ws);
        char *key = join_words(&ws, 1);
        add_pair(v, key, key);
        free(key);
        words_free(&ws);
    }
    char key[64];
    for (int i = 0; animals[i]; i++) {
        snprintf(key, sizeof(key), "baby %s", animals[i]);
        add_pair(v, key, animals[i]);
        snprintf(key, sizeof(key), "adult %s", animals[i]);
        add_pair(v, key, animals[i]);
    }
    add_pair(v, "passenger jet", "jet");
    add_pair(v, "passenger train", "train");
    add_pair(v, "bow tie", "tie");
    add_pair(v, "toilet seat", "toilet");
    add_pair(v, "wine glas", "wine glass");  // repairs pattern.en's "glasses" -> "glas"; harmless here
}

void chair_vocab_load(ChairVocab *v, const char *path, int coco_rules) {
    memset(v, 0, sizeof(*v));
    strmap_init(&v->word);
    strmap_init(&v->pair);
    v->coco_rules = coco_rules;
    char *text = read_file(path, NULL);
    StrMap class_index;
    strmap_init(&class_index);
    int cap = 0;
    for (char *s = text, *next; s && *s; s = next) {
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        char *lead = s;
        while (*lead == ' ' || *lead == '\t' || *lead == '\r') lead++;
        if (!*lead || *lead == '#') continue;
        int cls = -1;
        for (char *e = lead, *comma; e; e = comma) {
            comma = strchr(e, ',');
            if (comma) *comma++ = 0;
            Words ws;
            words_init(&ws);
            text_words(e, &ws);
            if (ws.n == 0) { words_free(&ws); continue; }  // empty entry (",," or a trailing comma)
            char *raw = join_words(&ws, 0), *sing = join_words(&ws, 1);
            if (cls < 0) {  // the first entry names the class; a class on several lines merges them
                cls = strmap_get(&class_index, raw);
                if (cls < 0) {
                    if (v->n_classes == cap) v->classes = xrealloc(v->classes, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 64));
                    v->classes[v->n_classes] = xstrdup(raw);
                    cls = v->n_classes++;
                    strmap_put(&class_index, raw, cls);
                }
            }
            // A synonym listed under two classes goes to the later one, as chair.py's dict does.
            strmap_put(&v->word, raw, cls);
            strmap_put(&v->word, sing, cls);
            if (ws.n == 2) add_pair(v, sing, sing);
            free(raw); free(sing);
            words_free(&ws);
        }
    }
    strmap_free(&class_index);
    free(text);
    if (v->n_classes == 0) fatal("%s: no object classes (expected lines of comma-separated synonyms)", path);
    if (coco_rules) add_coco_rules(v);
}

void chair_vocab_free(ChairVocab *v) {
    for (int i = 0; i < v->n_classes; i++) free(v->classes[i]);
    free(v->classes);
    for (int i = 0; i < v->n_pairs; i++) free(v->pair_to[i]);
    free(v->pair_to);
    strmap_free(&v->word);
    strmap_free(&v->pair);
    memset(v, 0, sizeof(*v));
}

int chair_class_of(const ChairVocab *v, const char *name) {
    Words ws;
    words_init(&ws);
    text_words(name, &ws);
    char *raw = join_words(&ws, 0), *sing = join_words(&ws, 1);
    int c = strmap_get(&v->word, raw);
    if (c < 0) c = strmap_get(&v->word, sing);
    free(raw); free(sing);
    words_free(&ws);
    return c;
}

// ---- mentions --------------------------------------------------------------------------------------

void chair_mentions(const ChairVocab *v, const char *caption, ChairMentions *m) {
    memset(m, 0, sizeof(*m));
    Words ws;
    words_init(&ws);
    text_words(caption, &ws);
    m->n_words = ws.n;
    char **sing = xmalloc(sizeof(char *) * (size_t)(ws.n ? ws.n : 1));
    for (int i = 0; i < ws.n; i++) sing[i] = text_singular(ws.w[i]);

    // Step 2: phrases, left to right, two words at a time.
    Words tok;
    words_init(&tok);
    for (int i = 0; i < ws.n;) {
        if (i + 1 < ws.n) {
            size_t len = strlen(sing[i]) + strlen(sing[i + 1]) + 2;
            char *key = xmalloc(len);
            snprintf(key, len, "%s %s", sing[i], sing[i + 1]);
            int k = strmap_get(&v->pair, key);
            free(key);
            if (k >= 0) {
                words_push(&tok, v->pair_to[k], strlen(v->pair_to[k]));
                i += 2;
                continue;
            }
        }
        words_push(&tok, sing[i], strlen(sing[i]));
        i++;
    }
    // Step 3: a seat next to a toilet is part of the toilet ("the seat of the toilet"), not a chair.
    int drop_seat = 0;
    if (v->coco_rules) {
        int toilet = 0, seat = 0;
        for (int i = 0; i < tok.n; i++) { toilet |= !strcmp(tok.w[i], "toilet"); seat |= !strcmp(tok.w[i], "seat"); }
        drop_seat = toilet && seat;
    }
    // Step 4: synonyms to classes.
    m->words = xmalloc(sizeof(char *) * (size_t)(tok.n ? tok.n : 1));
    m->classes = xmalloc(sizeof(int) * (size_t)(tok.n ? tok.n : 1));
    for (int i = 0; i < tok.n; i++) {
        if (drop_seat && !strcmp(tok.w[i], "seat")) continue;
        int c = strmap_get(&v->word, tok.w[i]);
        if (c < 0) continue;
        m->words[m->n] = xstrdup(tok.w[i]);
        m->classes[m->n++] = c;
    }
    words_free(&tok);
    for (int i = 0; i < ws.n; i++) free(sing[i]);
    free(sing);
    words_free(&ws);
}

void chair_mentions_free(ChairMentions *m) {
    for (int i = 0; i < m->n; i++) free(m->words[i]);
    free(m->words);
    free(m->classes);
    memset(m, 0, sizeof(*m));
}

// ---- ground truth ----------------------------------------------------------------------------------

static int truth_row(ChairTruth *t, const char *key) {
    int r = strmap_get(&t->image, key);
    if (r >= 0) return r;
    if (t->n_images == t->cap_images) {
        int cap = t->cap_images ? 2 * t->cap_images : 256;
        t->present = xrealloc(t->present, (size_t)cap * (size_t)t->n_classes);
        t->cap_images = cap;
    }
    memset(t->present + (size_t)t->n_images * (size_t)t->n_classes, 0, (size_t)t->n_classes);
    strmap_put(&t->image, key, t->n_images);
    return t->n_images++;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

void chair_truth_load(ChairTruth *t, const ChairVocab *v, const char *path) {
    memset(t, 0, sizeof(*t));
    strmap_init(&t->image);
    t->n_classes = v->n_classes;
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) fatal("%s: expected a JSON object ({\"image_id\": [objects]} or COCO instances)", path);
    const cJSON *anns = get(j, "annotations"), *cats = get(j, "categories");
    if (cJSON_IsArray(anns) && cJSON_IsArray(cats)) {
        // COCO instances: category id -> class, then one row per image.
        StrMap cat;
        strmap_init(&cat);
        const cJSON *c;
        cJSON_ArrayForEach(c, cats) {
            char where[64];
            snprintf(where, sizeof(where), "%s: a category", path);
            char *id = answers_id_text(get(c, "id"), where, "id");
            const cJSON *name = get(c, "name");
            if (!id || !cJSON_IsString(name)) fatal("%s: every category needs \"id\" and \"name\"", path);
            int cls = chair_class_of(v, name->valuestring);
            if (cls < 0) fatal("%s: category \"%s\" is not in the synonyms file", path, name->valuestring);
            strmap_put(&cat, id, cls);
            free(id);
        }
        const cJSON *im;
        cJSON_ArrayForEach(im, get(j, "images")) {
            char *id = answers_id_text(get(im, "id"), path, "images[].id");
            if (id) truth_row(t, id);
            free(id);
        }
        const cJSON *a;
        int i = 0;
        cJSON_ArrayForEach(a, anns) {
            char where[64];
            snprintf(where, sizeof(where), "%s: annotation %d", path, i++);
            char *id = answers_id_text(get(a, "image_id"), where, "image_id");
            char *cid = answers_id_text(get(a, "category_id"), where, "category_id");
            if (!id || !cid) fatal("%s: missing \"image_id\" or \"category_id\"", where);
            int cls = strmap_get(&cat, cid);
            if (cls < 0) fatal("%s: category_id %s is not among the categories", where, cid);
            t->present[(size_t)truth_row(t, id) * (size_t)t->n_classes + (size_t)cls] = 1;
            free(id); free(cid);
        }
        strmap_free(&cat);
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            if (!cJSON_IsArray(e)) fatal("%s: image \"%s\": expected a list of object names", path, e->string);
            int row = truth_row(t, e->string);
            const cJSON *name;
            cJSON_ArrayForEach(name, e) {
                if (!cJSON_IsString(name)) fatal("%s: image \"%s\": object names must be strings", path, e->string);
                int cls = chair_class_of(v, name->valuestring);
                if (cls < 0) fatal("%s: image \"%s\": object \"%s\" is not in the synonyms file", path, e->string, name->valuestring);
                t->present[(size_t)row * (size_t)t->n_classes + (size_t)cls] = 1;
            }
        }
    }
    cJSON_Delete(j);
}

void chair_truth_add_captions(ChairTruth *t, const ChairVocab *v, const char *path) {
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *anns = j ? get(j, "annotations") : NULL;
    if (!cJSON_IsArray(anns)) fatal("%s: expected a COCO captions file ({\"annotations\": [{\"image_id\", \"caption\"}]})", path);
    const cJSON *a;
    int i = 0;
    cJSON_ArrayForEach(a, anns) {
        char where[64];
        snprintf(where, sizeof(where), "%s: annotation %d", path, i++);
        char *id = answers_id_text(get(a, "image_id"), where, "image_id");
        const cJSON *cap = get(a, "caption");
        if (!id || !cJSON_IsString(cap)) fatal("%s: needs \"image_id\" and \"caption\"", where);
        int row = strmap_get(&t->image, id);
        if (row >= 0) {
            ChairMentions m;
            chair_mentions(v, cap->valuestring, &m);
            for (int k = 0; k < m.n; k++) t->present[(size_t)row * (size_t)t->n_classes + (size_t)m.classes[k]] = 1;
            chair_mentions_free(&m);
        }
        free(id);
    }
    cJSON_Delete(j);
}

void chair_truth_free(ChairTruth *t) {
    strmap_free(&t->image);
    free(t->present);
    memset(t, 0, sizeof(*t));
}

// The row of an image named by image_id and/or an image path. Tried in order: image_id; the path as
// written; its file name; the file name without extension; the digits after the last '_' of that
// without leading zeros (COCO_val2014_000000310196.jpg -> 310196). Returns the row and copies the key that
// matched into found[512]; -1 when none is known, with the keys tried listed in tried.
static int truth_find(const ChairTruth *t, const char *image_id, const char *image, char *found, char *tried, size_t cap) {
    char cand[5][512];
    int n = 0;
    if (image_id) snprintf(cand[n++], sizeof(cand[0]), "%s", image_id);
    if (image) {
        snprintf(cand[n++], sizeof(cand[0]), "%s", image);
        const char *base = strrchr(image, '/');
        base = base ? base + 1 : image;
        snprintf(cand[n++], sizeof(cand[0]), "%s", base);
        char stem[512];
        snprintf(stem, sizeof(stem), "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = 0;
        snprintf(cand[n++], sizeof(cand[0]), "%s", stem);
        const char *us = strrchr(stem, '_'), *digits = us ? us + 1 : stem;
        int all = *digits != 0;
        for (const char *p = digits; *p; p++) all &= isdigit((unsigned char)*p) != 0;
        if (all) {
            while (digits[0] == '0' && digits[1]) digits++;
            snprintf(cand[n++], sizeof(cand[0]), "%s", digits);
        }
    }
    size_t used = 0;
    if (cap) tried[0] = 0;
    for (int i = 0; i < n; i++) {
        int r = strmap_get(&t->image, cand[i]);
        if (r >= 0) { memcpy(found, cand[i], sizeof(cand[0])); return r; }
        if (used < cap) used += (size_t)snprintf(tried + used, cap - used, "%s\"%s\"", i ? ", " : "", cand[i]);
    }
    return -1;
}

// ---- scoring ---------------------------------------------------------------------------------------

cJSON *chair_score_caption(const ChairVocab *v, const uint8_t *present, const char *caption, ChairMetrics *m,
                           int want_json) {
    ChairMentions men;
    chair_mentions(v, caption, &men);
    uint8_t *seen = xcalloc((size_t)v->n_classes, 1);
    int hallucinated = 0, gt = 0, covered = 0;
    cJSON *rec = want_json ? cJSON_CreateObject() : NULL;
    cJSON *jm = want_json ? cJSON_CreateArray() : NULL, *jh = want_json ? cJSON_CreateArray() : NULL;
    for (int k = 0; k < men.n; k++) {
        int c = men.classes[k];
        if (!present[c]) hallucinated++;
        else if (!seen[c]) covered++;
        seen[c] = 1;
        if (want_json) {
            const char *pair[2] = {men.words[k], v->classes[c]};
            cJSON_AddItemToArray(present[c] ? jm : jh, cJSON_CreateStringArray(pair, 2));
        }
    }
    for (int c = 0; c < v->n_classes; c++) gt += present[c];
    m->n_captions++;
    m->n_mentions += men.n;
    m->n_hallucinated_mentions += hallucinated;
    m->n_hallucinated_captions += hallucinated > 0;
    m->n_gt += gt;
    m->n_gt_mentioned += covered;
    m->n_words += men.n_words;
    if (want_json) {
        cJSON_AddStringToObject(rec, "caption", caption);
        cJSON_AddItemToObject(rec, "grounded", jm);
        cJSON_AddItemToObject(rec, "hallucinated", jh);
        cJSON *g = cJSON_CreateArray();
        for (int c = 0; c < v->n_classes; c++) if (present[c]) cJSON_AddItemToArray(g, cJSON_CreateString(v->classes[c]));
        cJSON_AddItemToObject(rec, "gt_objects", g);
        cJSON_AddNumberToObject(rec, "chair_s", hallucinated > 0);
        cJSON_AddNumberToObject(rec, "chair_i", men.n ? (double)hallucinated / men.n : 0.0);
        cJSON_AddNumberToObject(rec, "recall", gt ? (double)covered / gt : 0.0);
        cJSON_AddNumberToObject(rec, "length", men.n_words);
    }
    free(seen);
    chair_mentions_free(&men);
    return rec;
}

void chair_finish(ChairMetrics *m) {
    m->chair_s = m->n_captions ? (double)m->n_hallucinated_captions / m->n_captions : 0.0;
    m->chair_i = m->n_mentions ? (double)m->n_hallucinated_mentions / m->n_mentions : 0.0;
    m->recall = m->n_gt ? (double)m->n_gt_mentioned / (double)m->n_gt : 0.0;
    m->avg_len = m->n_captions ? (double)m->n_words / m->n_captions : 0.0;
}

// The optional questions file: records with "image_id" and/or "image", and "question_id" when there is one.
typedef struct {
    char **qids, **image_ids, **images;
    int *lines;
    int n;
} ChairQuestions;

static void questions_read(ChairQuestions *q, const char *path) {
    memset(q, 0, sizeof(*q));
    JsonlReader r;
    jsonl_open(&r, path);
    int cap = 0;
    cJSON *j;
    while ((j = jsonl_next(&r, 0, NULL))) {
        if (q->n == cap) {
            cap = cap ? 2 * cap : 256;
            q->qids = xrealloc(q->qids, sizeof(char *) * (size_t)cap);
            q->image_ids = xrealloc(q->image_ids, sizeof(char *) * (size_t)cap);
            q->images = xrealloc(q->images, sizeof(char *) * (size_t)cap);
            q->lines = xrealloc(q->lines, sizeof(int) * (size_t)cap);
        }
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", r.path, r.line);
        q->qids[q->n] = answers_id_text(get(j, "question_id"), where, "question_id");
        q->image_ids[q->n] = answers_id_text(get(j, "image_id"), where, "image_id");
        const cJSON *im = get(j, "image");
        if (im && !cJSON_IsString(im)) fatal("%s: \"image\" must be a string", where);
        q->images[q->n] = im ? xstrdup(im->valuestring) : NULL;
        q->lines[q->n++] = r.line;
        cJSON_Delete(j);
    }
    jsonl_close(&r);
}

static void questions_free(ChairQuestions *q) {
    for (int i = 0; i < q->n; i++) { free(q->qids[i]); free(q->image_ids[i]); free(q->images[i]); }
    free(q->qids); free(q->image_ids); free(q->images); free(q->lines);
}

void chair_eval_files(const ChairOptions *o, ChairMetrics *m, cJSON **per_caption, int *match) {
    memset(m, 0, sizeof(*m));
    ChairVocab v;
    chair_vocab_load(&v, o->synonyms, o->coco_rules);
    ChairTruth t;
    chair_truth_load(&t, &v, o->objects);
    if (o->gt_captions) chair_truth_add_captions(&t, &v, o->gt_captions);
    AnswerFile af;
    answers_read(&af, o->captions);

    ChairQuestions q = {0};
    int *order = NULL;
    *match = -1;
    if (o->questions) {
        questions_read(&q, o->questions);
        QuestionKeys keys = {o->questions, q.qids, q.lines, q.n};
        order = xmalloc(sizeof(int) * (size_t)(q.n ? q.n : 1));
        *match = answers_match(&af, &keys, order);
    }
    // question_of[i]: the question caption i answers (-1 without a questions file)
    int *question_of = xmalloc(sizeof(int) * (size_t)(af.n ? af.n : 1));
    for (int i = 0; i < af.n; i++) question_of[i] = -1;
    for (int k = 0; order && k < q.n; k++) question_of[order[k]] = k;
    if (per_caption) *per_caption = cJSON_CreateArray();
    for (int i = 0; i < af.n; i++) {
        // The image comes from the caption record when it names one, else from its question.
        int qi = question_of[i];
        const Answer *a = &af.v[i];
        const char *image_id = a->image_id, *image = a->image;
        if (!image_id && !image && qi >= 0) { image_id = q.image_ids[qi]; image = q.images[qi]; }
        if (!image_id && !image)
            fatal("%s:%d: the caption names no image (\"image_id\" or \"image\")%s", o->captions, a->line,
                  o->questions ? ", and neither does its question" : "; pass --questions with the records it was generated from");
        char tried[1024], found[512];
        int row = truth_find(&t, image_id, image, found, tried, sizeof(tried));
        if (row < 0) fatal("%s:%d: no ground-truth objects in %s for this image (tried %s)", o->captions, a->line, o->objects, tried);
        cJSON *rec = chair_score_caption(&v, t.present + (size_t)row * (size_t)t.n_classes, a->text, m, per_caption != NULL);
        if (rec) {
            cJSON_AddStringToObject(rec, "image", found);  // the ground-truth key it was found under
            cJSON_AddNumberToObject(rec, "line", a->line);
            // the key vlm eval table pairs runs by
            if (qi >= 0 && q.qids[qi]) cJSON_AddStringToObject(rec, "question_id", q.qids[qi]);
            cJSON_AddItemToArray(*per_caption, rec);
        }
    }
    chair_finish(m);
    free(question_of);
    free(order);
    questions_free(&q);
    answers_free(&af);
    chair_truth_free(&t);
    chair_vocab_free(&v);
}

cJSON *chair_metrics_json(const ChairMetrics *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "chair_s", m->chair_s);
    cJSON_AddNumberToObject(o, "chair_i", m->chair_i);
    cJSON_AddNumberToObject(o, "recall", m->recall);
    cJSON_AddNumberToObject(o, "avg_len", m->avg_len);
    cJSON_AddNumberToObject(o, "captions", m->n_captions);
    cJSON_AddNumberToObject(o, "hallucinated_captions", m->n_hallucinated_captions);
    cJSON_AddNumberToObject(o, "mentions", m->n_mentions);
    cJSON_AddNumberToObject(o, "hallucinated_mentions", m->n_hallucinated_mentions);
    cJSON_AddNumberToObject(o, "gt_objects", (double)m->n_gt);
    cJSON_AddNumberToObject(o, "gt_objects_mentioned", (double)m->n_gt_mentioned);
    cJSON_AddNumberToObject(o, "words", (double)m->n_words);
    return o;
}
