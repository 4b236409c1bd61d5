// The synthetic world (data/synth.h, vlm data synth): rendering, determinism, minimal contrasts that differ in
// one thing only, the priors of the training split (and their absence in the held-out one), QA answers that
// are true of their scenes, and output files that load through the project's own readers and scorers.
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../data/datasets.h"
#include "../data/preprocess.h"
#include "../data/synth.h"
#include "../eval/chair.h"
#include "../eval/csv.h"
#include "../eval/mmvp.h"
#include "../model/config.h"
#include "../train/data.h"
#include "../util/common.h"
#include "test.h"

static const SynthPriors default_priors = {0.8, 0.7, 0.0, 0.35, 0, 0.0};

// A scene with one object in the middle cell, no jitter, on a flat background.
static SynthScene single(int shape, int color, int size) {
    SynthScene s;
    memset(&s, 0, sizeof(s));
    s.bg = SYNTH_BG_GRADIENT;
    for (int c = 0; c < 3; c++) s.bg_a[c] = s.bg_b[c] = 200;
    s.n = 1;
    s.o[0] = (SynthObject){.shape = shape, .color = color, .size = size, .cell = 4};
    return s;
}

TEST(synth_render_circle) {
    const int S = 96;
    SynthScene s = single(SYNTH_SHAPE_CIRCLE, 0, 2);
    Image *im = synth_render(&s, S);
    const uint8_t *red = synth_color_rgb[0];
    const uint8_t *mid = im->data + ((size_t)(S / 2) * S + S / 2) * 3;
    EXPECTF(mid[0] == red[0] && mid[1] == red[1] && mid[2] == red[2], "centre %d %d %d", mid[0], mid[1], mid[2]);
    int corners[4][2] = {{0, 0}, {S - 1, 0}, {0, S - 1}, {S - 1, S - 1}};
    for (int k = 0; k < 4; k++) {
        const uint8_t *p = im->data + ((size_t)corners[k][1] * S + corners[k][0]) * 3;
        EXPECTF(p[0] == 200 && p[1] == 200 && p[2] == 200, "corner %d: %d %d %d", k, p[0], p[1], p[2]);
    }
    // anti-aliasing: edge pixels between background and red; the covered area matches pi r^2
    int partial = 0;
    double area = 0;
    for (int i = 0; i < S * S; i++) {
        const uint8_t *p = im->data + (size_t)i * 3;
        double a = (200.0 - p[1]) / (200.0 - red[1]);  // green channel: 200 background, 30 red
        area += a;
        partial += a > 0.05 && a < 0.95;
    }
    double r = synth_size_frac[2] * S / 2;
    EXPECTF(partial >= 20, "%d anti-aliased edge pixels", partial);
    EXPECT_NEAR(area, M_PI * r * r, 0.02);
    image_free(im);
}

// Every shape is visible, different from every other, and at least a fifth of the side wide at the smallest size.
TEST(synth_shapes_distinct_and_large) {
    const int S = 64;
    Image *ims[SYNTH_N_SHAPES];
    for (int k = 0; k < SYNTH_N_SHAPES; k++) {
        SynthScene s = single(k, 4, 0);
        ims[k] = synth_render(&s, S);
        int x0 = S, x1 = -1, y0 = S, y1 = -1;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                if (ims[k]->data[((size_t)y * S + x) * 3 + 2] != 200) {
                    if (x < x0) x0 = x;
                    if (x > x1) x1 = x;
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                }
        int w = x1 - x0 + 1, h = y1 - y0 + 1, big = w > h ? w : h;
        EXPECTF(big >= S / 5, "%s: %dx%d pixels in a %d-pixel image", synth_shape_names[k], w, h, S);
    }
    for (int a = 0; a < SYNTH_N_SHAPES; a++)
        for (int b = a + 1; b < SYNTH_N_SHAPES; b++) {
            int diff = 0;
            for (int i = 0; i < S * S * 3; i++) diff += abs(ims[a]->data[i] - ims[b]->data[i]) > 40;
            EXPECTF(diff > 30, "%s and %s differ in only %d values", synth_shape_names[a], synth_shape_names[b], diff);
        }
    for (int k = 0; k < SYNTH_N_SHAPES; k++) image_free(ims[k]);
}

// Same seed -> the same bytes in every file; another seed -> different files.
TEST(synth_cli_deterministic) {
    const char *dir = test_tmpdir();
    char args[1024], *err;
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof(args), "data synth --out %s/det%d --seed %d --train 20 --eval 6 --pairs 12 --size 64 --quiet", dir, k,
                 k == 2 ? 8 : 7);
        EXPECTF(test_run_vlm(args, NULL, &err) == 0, "%s", err);
        free(err);
    }
    const char *files[] = {"sft.jsonl", "clip.jsonl", "mvc.json", "pope_random.jsonl", "pope_popular.jsonl",
                           "pope_adversarial.jsonl", "chair_objects.json", "chair_prompts.jsonl", "synonyms.txt", "mmvp.csv",
                           "mmvp_prompts.jsonl", "qa.jsonl", "eval_scenes.jsonl", "world.json", "images/train/t000003.png",
                           "images/eval/e000005.png", "images/pairs/p000011_b.png", "images/mmvp/m000004_a.png"};
    int n_diff = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char a[600], b[600], c[600];
        snprintf(a, sizeof(a), "%s/det0/%s", dir, files[i]);
        snprintf(b, sizeof(b), "%s/det1/%s", dir, files[i]);
        snprintf(c, sizeof(c), "%s/det2/%s", dir, files[i]);
        EXPECTF(test_files_equal(a, b), "%s differs between two runs with the same seed", files[i]);
        n_diff += !test_files_equal(a, c);
    }
    // synonyms.txt (the world's vocabulary) and chair_prompts.jsonl (ids, paths and one prompt) are the same for
    // every seed; everything else changes
    EXPECT_INT_EQ(n_diff, (int)(sizeof(files) / sizeof(files[0])) - 2);
    snprintf(args, sizeof(args), "%s/det0/images/train/t000003.png.tmp", dir);
    EXPECTF(!file_exists(args), "a temporary file was left behind");
}

// Each contrast changes one thing: the pixels differ only inside the changed object's box (both sides), the
// scenes differ only in the intended attribute, and the answers differ. A flip is the exact mirror image.
TEST(synth_contrasts_minimal) {
    const int S = 64;
    for (int type = 0; type < SYNTH_N_CTS; type++)
        for (int t = 0; t < 15; t++) {
            AugRng r;
            synth_rng(&r, 99, 3, type * 100 + t);
            SynthContrast c;
            synth_contrast(&c, &r, type, &default_priors, t % 2);
            EXPECTF(strcmp(c.answer_a, c.answer_b) != 0, "%s: the same answer '%s' on both sides", synth_contrast_names[type], c.answer_a);
            Image *a = synth_render(&c.a, S), *b = synth_render(&c.b, S);
            if (type == SYNTH_CT_FLIP) {
                int same = 1;
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++)
                        same &= !memcmp(a->data + ((size_t)y * S + x) * 3, b->data + ((size_t)y * S + S - 1 - x) * 3, 3);
                EXPECTF(same, "flip %d: b is not the mirror image of a", t);
            } else {
                uint8_t *mask = xcalloc((size_t)S * S, 1);
                int x0, y0, x1, y1;
                if (c.changed_a >= 0) {
                    synth_object_bbox(&c.a, c.changed_a, S, &x0, &y0, &x1, &y1);
                    for (int y = y0; y < y1; y++) memset(mask + (size_t)y * S + x0, 1, (size_t)(x1 - x0));
                }
                if (c.changed_b >= 0) {
                    synth_object_bbox(&c.b, c.changed_b, S, &x0, &y0, &x1, &y1);
                    for (int y = y0; y < y1; y++) memset(mask + (size_t)y * S + x0, 1, (size_t)(x1 - x0));
                }
                int outside = 0, inside = 0;
                for (int i = 0; i < S * S; i++) {
                    int d = memcmp(a->data + (size_t)i * 3, b->data + (size_t)i * 3, 3) != 0;
                    if (mask[i]) inside += d;
                    else outside += d;
                }
                EXPECTF(outside == 0, "%s %d: %d pixels differ outside the changed object", synth_contrast_names[type], t, outside);
                EXPECTF(inside > 20, "%s %d: only %d pixels differ", synth_contrast_names[type], t, inside);
                free(mask);
                // the scene-level difference is the intended one
                int k = c.changed_a;
                switch (type) {
                case SYNTH_CT_COLOR:
                    EXPECT(c.a.o[k].color != c.b.o[k].color && c.a.o[k].shape == c.b.o[k].shape && c.a.o[k].cell == c.b.o[k].cell);
                    break;
                case SYNTH_CT_SHAPE:
                    EXPECT(c.a.o[k].shape != c.b.o[k].shape && c.a.o[k].color == c.b.o[k].color && c.a.o[k].cell == c.b.o[k].cell);
                    break;
                case SYNTH_CT_POSITION:
                    EXPECT(c.a.o[k].cell != c.b.o[k].cell && c.a.o[k].shape == c.b.o[k].shape && c.a.o[k].color == c.b.o[k].color);
                    break;
                case SYNTH_CT_EXIST: EXPECT_INT_EQ(c.b.n, c.a.n - 1); break;
                case SYNTH_CT_COUNT:
                    EXPECT_INT_EQ(c.b.n, c.a.n + 1);
                    EXPECT_INT_EQ(atoi(c.answer_b), atoi(c.answer_a) + 1);
                    break;
                }
                if (type != SYNTH_CT_EXIST && type != SYNTH_CT_COUNT) EXPECT_INT_EQ(c.a.n, c.b.n);
            }
            image_free(a);
            image_free(b);
        }
}

// The training split carries the priors (typical colour ~ prior; partners co-occur), the held-out split not.
TEST(synth_priors_hold_in_train_only) {
    const int N = 4000;
    SynthPriors p = {0.7, 0.7, 0.0, 0.35, 0, 0.0};
    long obj[3] = {0}, typ[3] = {0}, pairs[2] = {0}, partner[2] = {0};
    for (int i = 0; i < N; i++) {
        AugRng r;
        SynthScene s[3];
        synth_rng(&r, 5, 1, i);
        synth_scene_train(&s[0], &r, &p);
        synth_rng(&r, 5, 2, i);
        synth_scene_eval(&s[1], &r, 0, &p);
        synth_rng(&r, 5, 4, i);
        synth_scene_eval(&s[2], &r, 1, &p);
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < s[k].n; j++) {
                obj[k]++;
                typ[k] += s[k].o[j].color == synth_typical_color[s[k].o[j].shape];
            }
        for (int k = 0; k < 2; k++)
            if (s[k].n >= 2) {  // is the second object the first's partner?
                pairs[k]++;
                partner[k] += s[k].o[1].shape == synth_partner_shape[s[k].o[0].shape];
            }
    }
    EXPECT_NEAR((double)typ[0] / obj[0], 0.7, 0.04);
    EXPECT_NEAR((double)typ[1] / obj[1], 1.0 / SYNTH_N_COLORS, 0.15);
    EXPECT_INT_EQ(typ[2], 0);
    // training: 0.7 + 0.3/7 of second objects are the partner; held out: 1/7
    EXPECT_NEAR((double)partner[0] / pairs[0], 0.7 + 0.3 / SYNTH_N_SHAPES, 0.06);
    EXPECT_NEAR((double)partner[1] / pairs[1], 1.0 / SYNTH_N_SHAPES, 0.15);
}

// Parses "[a|an] COLOR SHAPE" at s into (shape, color); returns the characters used, 0 on no match.
static int parse_object(const char *s, int *shape, int *color) {
    const char *p = s;
    if (!strncmp(p, "a ", 2)) p += 2;
    else if (!strncmp(p, "an ", 3)) p += 3;
    for (int c = 0; c < SYNTH_N_COLORS; c++) {
        size_t lc = strlen(synth_color_names[c]);
        if (strncmp(p, synth_color_names[c], lc) || p[lc] != ' ') continue;
        for (int k = 0; k < SYNTH_N_SHAPES; k++) {
            size_t ls = strlen(synth_shape_names[k]);
            if (!strncmp(p + lc + 1, synth_shape_names[k], ls)) {
                *shape = k;
                *color = c;
                return (int)(p + lc + 1 + ls - s);
            }
        }
    }
    return 0;
}

static int shape_of(const char *name) {
    for (int k = 0; k < SYNTH_N_SHAPES; k++)
        if (!strcmp(name, synth_shape_names[k]) || !strcmp(name, synth_shape_plurals[k])) return k;
    return -1;
}

// Every answer is checked against the scene by an independent reading of the question.
TEST(synth_qa_answers_true) {
    int checked[SYNTH_N_QA] = {0};
    for (int i = 0; i < 1500; i++) {
        AugRng r;
        synth_rng(&r, 11, 1, i);
        SynthScene s;
        if (i % 2) synth_scene_train(&s, &r, &default_priors);
        else synth_scene_eval(&s, &r, i % 4 == 0, &default_priors);
        // the caption lists exactly the scene's objects, each with its position
        char cap[512];
        synth_caption(&s, cap, sizeof(cap));
        int listed = 0;
        for (const char *p = cap; *p;) {
            int shape, color, used = parse_object(p, &shape, &color);
            if (!used) { p++; continue; }
            const char *where = p + used + 1;  // "at the top left", "in the center", ...
            int k = -1;
            for (int j = 0; j < s.n; j++)
                if (s.o[j].shape == shape && s.o[j].color == color) {
                    const char *name = synth_cell_names[s.o[j].cell];
                    const char *hit = strstr(where, name);
                    // the cell name follows "the " right away ("top" must not match "top left")
                    if (hit && hit - where <= 7 && (hit[strlen(name)] == 0 || hit[strlen(name)] == ',' || hit[strlen(name)] == ' ')) {
                        size_t ln = strlen(name);
                        if (strncmp(hit + ln, " left", 5) && strncmp(hit + ln, " right", 6)) k = j;
                    }
                }
            EXPECTF(k >= 0, "caption '%s': object at '%s' is not in the scene", cap, p);
            listed++;
            p += used;
        }
        EXPECTF(listed == s.n, "caption '%s' lists %d objects, the scene has %d", cap, listed, s.n);

        for (int t = 0; t < SYNTH_N_QA; t++) {
            SynthQA qa;
            if (!synth_qa(&s, &r, t, 0.5, &qa)) continue;
            checked[t]++;
            EXPECTF(strcmp(qa.a, qa.d) != 0, "'%s': the distractor equals the answer", qa.q);
            int shape = -1, color = -1, shape2 = -1, color2 = -1;
            char word[64];
            switch (t) {
            case SYNTH_QA_EXIST: {
                EXPECT(parse_object(qa.q + strlen("Is there "), &shape, &color) > 0);
                EXPECTF(!strcmp(qa.a, synth_count(&s, shape, color) ? "yes" : "no"), "'%s' -> '%s'", qa.q, qa.a);
                break;
            }
            case SYNTH_QA_COLOR: {
                EXPECT(sscanf(qa.q, "What color is the %63[a-z]?", word) == 1);
                shape = shape_of(word);
                EXPECT_INT_EQ(synth_count(&s, shape, -1), 1);
                int k = synth_find(&s, shape, -1);
                EXPECTF(k >= 0 && !strcmp(qa.a, synth_color_names[s.o[k].color]), "'%s' -> '%s'", qa.q, qa.a);
                break;
            }
            case SYNTH_QA_COUNT: {
                EXPECT(sscanf(qa.q, "How many %63[a-z] are there?", word) == 1);
                shape = shape_of(word);
                int n = 0;
                for (int j = 0; j < s.n; j++) n += s.o[j].shape == shape;
                EXPECTF(shape >= 0 && atoi(qa.a) == n, "'%s' -> '%s', the scene has %d", qa.q, qa.a, n);
                break;
            }
            case SYNTH_QA_POSITION: {
                EXPECT(parse_object(qa.q + strlen("Where is the "), &shape, &color) > 0);
                EXPECT_INT_EQ(synth_count(&s, shape, color), 1);
                int k = synth_find(&s, shape, color);
                EXPECTF(k >= 0 && !strcmp(qa.a, synth_cell_names[s.o[k].cell]), "'%s' -> '%s'", qa.q, qa.a);
                break;
            }
            case SYNTH_QA_RELATION: {
                int used = parse_object(qa.q + strlen("Is the "), &shape, &color);
                EXPECT(used > 0);
                EXPECT(parse_object(qa.q + strlen("Is the ") + used + strlen(" left of the "), &shape2, &color2) > 0);
                int i1 = synth_find(&s, shape, color), i2 = synth_find(&s, shape2, color2);
                EXPECT(i1 >= 0 && i2 >= 0);
                if (i1 >= 0 && i2 >= 0) {
                    int left = synth_col(s.o[i1].cell) < synth_col(s.o[i2].cell);
                    EXPECTF(!strcmp(qa.a, left ? "yes" : "no"), "'%s' -> '%s'", qa.q, qa.a);
                }
                break;
            }
            }
        }
    }
    for (int t = 0; t < SYNTH_N_QA; t++) EXPECTF(checked[t] > 300, "%s: only %d questions", synth_qa_names[t], checked[t]);
}

static cJSON *load_json(const char *path) {
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

// Writes a JSONL answer file with one answer per question of a JSONL question file (by question_id).
static void write_answers(const char *questions, const char *out, const char *text) {
    size_t n;
    char *q = read_file(questions, &n);
    FILE *f = fopen(out, "w");
    for (char *line = strtok(q, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        fprintf(f, "{\"question_id\": %d, \"text\": \"%s\"}\n", cJSON_GetObjectItem(j, "question_id")->valueint, text);
        cJSON_Delete(j);
    }
    fclose(f);
    free(q);
}

// The files load through the readers and scorers that will consume them.
TEST(synth_files_load) {
    char dir[512], args[4096], *err, *out;
    snprintf(dir, sizeof(dir), "%s/load", test_tmpdir());
    snprintf(args, sizeof(args), "data synth --out %s --seed 3 --train 24 --eval 12 --pairs 18 --size 56 --quiet", dir);
    EXPECTF(test_run_vlm(args, NULL, &err) == 0, "%s", err);
    free(err);
    char p[4][700];

    // POPE: the three splits share images, question ids and labels; half yes; adversarial negatives lean on the priors
    const char *splits[3] = {"random", "popular", "adversarial"};
    Dataset pope[3];
    int typical_neg[3] = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(p[0], sizeof(p[0]), "%s/pope_%s.jsonl", dir, splits[k]);
        dataset_read_pope(&pope[k], p[0], NULL);
        for (int i = 0; i < pope[k].n; i++) {
            const PopeRecord *r = &pope[k].pope[i];
            int shape, color;
            EXPECT(parse_object(r->text + strlen("Is there "), &shape, &color) > 0);
            if (!r->label) typical_neg[k] += color == synth_typical_color[shape];
            EXPECT(file_exists(r->image));
        }
    }
    EXPECT(pope[0].n >= 12 * 2);
    int yes = 0;
    for (int i = 0; i < pope[0].n; i++) {
        yes += pope[0].pope[i].label;
        for (int k = 1; k < 3 && pope[k].n == pope[0].n; k++) {
            EXPECT_INT_EQ(pope[k].pope[i].label, pope[0].pope[i].label);
            EXPECT_INT_EQ(pope[k].pope[i].question_id, pope[0].pope[i].question_id);
        }
    }
    EXPECT_INT_EQ(2 * yes, pope[0].n);
    EXPECTF(typical_neg[2] > typical_neg[0] && typical_neg[1] > typical_neg[0],
            "negatives in their shape's typical colour: random %d, popular %d, adversarial %d", typical_neg[0], typical_neg[1],
            typical_neg[2]);
    // adversarial negatives, as POPE builds them, are what co-occurs with the present objects: partners lead
    int partner_neg[3] = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(p[0], sizeof(p[0]), "%s/pope_%s.jsonl", dir, splits[k]);
        size_t len;
        char *text = read_file(p[0], &len);
        for (char *q = text; (q = strstr(q, "\"kind\":\"partner\"")); q++) partner_neg[k]++;
        free(text);
    }
    EXPECTF(partner_neg[2] > 2 * partner_neg[0] && partner_neg[2] > 0, "partner negatives: random %d, adversarial %d",
            partner_neg[0], partner_neg[2]);
    // vlm eval pope with "yes" to everything: yes-ratio 1, accuracy = the fraction of yes labels
    snprintf(p[0], sizeof(p[0]), "%s/pope_adversarial.jsonl", dir);
    snprintf(p[1], sizeof(p[1]), "%s/yes.jsonl", dir);
    snprintf(p[2], sizeof(p[2]), "%s/pope.json", dir);
    write_answers(p[0], p[1], "Yes");
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s --out %s", p[0], p[1], p[2]);
    EXPECTF(test_run_vlm(args, &out, &err) == 0, "%s", err);
    free(out); free(err);
    cJSON *pj = load_json(p[2]);
    cJSON *m = cJSON_GetObjectItem(pj, "mean");
    EXPECT(m != NULL);
    if (m) {
        EXPECT_NEAR(cJSON_GetObjectItem(m, "yes_ratio")->valuedouble, 1.0, 1e-12);
        EXPECT_NEAR(cJSON_GetObjectItem(m, "accuracy")->valuedouble, (double)yes / pope[0].n, 1e-12);
    }
    cJSON_Delete(pj);
    for (int k = 0; k < 3; k++) dataset_free(&pope[k]);

    // MVC through the dataset reader and the S-VCO example loader; SFT through the SFT loader (real tokenizer)
    snprintf(p[0], sizeof(p[0]), "%s/mvc.json", dir);
    Dataset mvc;
    dataset_read_mvc(&mvc, p[0], NULL);
    EXPECT_INT_EQ(mvc.n, 18);
    int a_chosen = 0;
    for (int i = 0; i < mvc.n; i++) {
        EXPECT(file_exists(mvc.mvc[i].chosen_images[0]) && file_exists(mvc.mvc[i].rejected_images[0]));
        EXPECT(strcmp(mvc.mvc[i].chosen_response, mvc.mvc[i].rejected_response) != 0);
        a_chosen += strstr(mvc.mvc[i].chosen_images[0], "_a.png") != NULL;
    }
    EXPECTF(a_chosen > 0 && a_chosen < mvc.n, "side a chosen in %d of %d pairs: the chosen side is not random", a_chosen, mvc.n);
    dataset_free(&mvc);

    LlavaConfig cfg;
    EXPECT(llava_config_preset(&cfg, "llava-tiny") == 0);
    PreprocessConfig pcfg = preprocess_config_clip(cfg.vision.image_size);
    snprintf(p[3], sizeof(p[3]), "%s/tokenizers/llama2_tokenizer.model", test_shared_data());
    TrainDataOptions opt = {.tokenizer = p[3]};
    TrainData td;
    train_data_load(&td, recipe_find("svco"), p[0], &cfg, &pcfg, &opt);
    EXPECT_INT_EQ(td.n, 18);
    EXPECT_INT_EQ(td.n_images, 36);
    EXPECT_INT_EQ(td.n_bad, 0);
    train_data_free(&td);
    snprintf(p[1], sizeof(p[1]), "%s/sft.jsonl", dir);
    train_data_load(&td, recipe_find("sft"), p[1], &cfg, &pcfg, &opt);
    EXPECT(td.n >= 24 * 3);
    EXPECT_INT_EQ(td.n_images, 24);
    train_data_free(&td);

    // CLIP: a step of contrastive training on clip.jsonl with the CLIP tokenizer (a tiny tower, random init)
    char cdir[600];
    snprintf(cdir, sizeof(cdir), "%s/clipmodel", dir);
    mkdir_p(cdir);
    char *cfgtext = read_file("tests/fixtures/models/clip/config.json", NULL);
    const char *edits[4][2] = {{"\"bos_token_id\": 62", "\"bos_token_id\": 49406"}, {"\"eos_token_id\": 63", "\"eos_token_id\": 49407"},
                               {"\"vocab_size\": 64", "\"vocab_size\": 49408"}, {"\"max_position_embeddings\": 16", "\"max_position_embeddings\": 77"}};
    for (int k = 0; k < 4; k++) {
        char *at = strstr(cfgtext, edits[k][0]);
        EXPECT(at != NULL);
        if (!at) continue;
        char *nt = xmalloc(strlen(cfgtext) + 64);
        sprintf(nt, "%.*s%s%s", (int)(at - cfgtext), cfgtext, edits[k][1], at + strlen(edits[k][0]));
        free(cfgtext);
        cfgtext = nt;
    }
    snprintf(p[2], sizeof(p[2]), "%s/config.json", cdir);
    write_file_atomic(p[2], cfgtext, strlen(cfgtext));
    free(cfgtext);
    snprintf(args, sizeof(args), "train --recipe clip --model %s --init random --data %s/clip.jsonl --tokenizer %s/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz "
             "--out %s/cliprun --steps 1 --batch 4 --device cpu --quiet", cdir, dir, test_shared_data(), dir);
    EXPECTF(test_run_vlm(args, &out, &err) == 0, "%s", err);
    free(out); free(err);

    // CHAIR: the true captions hallucinate nothing and recall everything; giving each object its shape's typical
    // colour (when it had another) is caught
    ChairVocab v;
    snprintf(p[0], sizeof(p[0]), "%s/synonyms.txt", dir);
    chair_vocab_load(&v, p[0], 0);
    EXPECT_INT_EQ(v.n_classes, SYNTH_N_SHAPES * SYNTH_N_COLORS);
    ChairMentions men;
    chair_mentions(&v, "Two orange crosses and a black hexagon.", &men);
    EXPECT_INT_EQ(men.n, 2);
    if (men.n == 2) {
        EXPECT_INT_EQ(men.classes[0], chair_class_of(&v, "orange cross"));
        EXPECT_INT_EQ(men.classes[1], chair_class_of(&v, "black hexagon"));
    }
    chair_mentions_free(&men);
    chair_vocab_free(&v);
    snprintf(p[1], sizeof(p[1]), "%s/eval_scenes.jsonl", dir);
    char *scenes = read_file(p[1], NULL);
    snprintf(p[2], sizeof(p[2]), "%s/true_caps.jsonl", dir);
    snprintf(p[3], sizeof(p[3]), "%s/prior_caps.jsonl", dir);
    FILE *ft = fopen(p[2], "w"), *fp = fopen(p[3], "w");
    int qid = 0, n_changed = 0;
    for (char *line = strtok(scenes, "\n"); line; line = strtok(NULL, "\n"), qid++) {
        cJSON *j = cJSON_Parse(line);
        const char *cap = cJSON_GetObjectItem(j, "caption")->valuestring;
        fprintf(ft, "{\"question_id\": %d, \"text\": \"%s.\"}\n", qid, cap);
        // the prior-riding caption: every object in its shape's typical colour
        char pc[1024] = "";
        for (const char *q = cap; *q;) {
            int shape, color, used = parse_object(q, &shape, &color);
            if (!used) { strncat(pc, q, 1); q++; continue; }
            // a hallucination when the typical-colour object is not in the scene after all
            char name[64];
            SynthObject o = {.shape = shape, .color = synth_typical_color[shape]};
            synth_object_name(&o, name, sizeof(name));
            int present = 0;
            const cJSON *it;
            cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "objects")) present |= !strcmp(it->valuestring, name);
            n_changed += !present;
            const char *cn = synth_color_names[synth_typical_color[shape]];
            strcat(pc, strchr("aeiou", cn[0]) ? "an " : "a ");
            strcat(pc, cn); strcat(pc, " "); strcat(pc, synth_shape_names[shape]);
            q += used;
        }
        fprintf(fp, "{\"question_id\": %d, \"text\": \"%s.\"}\n", qid, pc);
        cJSON_Delete(j);
    }
    fclose(ft); fclose(fp);
    free(scenes);
    snprintf(p[0], sizeof(p[0]), "%s/chair_objects.json", dir);
    snprintf(p[1], sizeof(p[1]), "%s/synonyms.txt", dir);
    char prompts[700];
    snprintf(prompts, sizeof(prompts), "%s/chair_prompts.jsonl", dir);
    ChairOptions co = {.captions = p[2], .questions = prompts, .objects = p[0], .synonyms = p[1], .coco_rules = 0};
    ChairMetrics cm;
    int match;
    chair_eval_files(&co, &cm, NULL, &match);
    EXPECT_INT_EQ(cm.n_captions, 12);
    EXPECT_NEAR(cm.chair_i, 0.0, 0);
    EXPECT_NEAR(cm.recall, 1.0, 1e-12);
    co.captions = p[3];
    chair_eval_files(&co, &cm, NULL, &match);
    EXPECT(n_changed > 0);
    EXPECT_INT_EQ(cm.n_hallucinated_mentions, n_changed);

    // MMVP: the right letters score 1; one fixed letter gets no pair right (the two answers of a pair differ)
    snprintf(p[0], sizeof(p[0]), "%s/mmvp.csv", dir);
    CsvFile csv;
    csv_read(&csv, p[0]);
    snprintf(p[1], sizeof(p[1]), "%s/mmvp_right.jsonl", dir);
    snprintf(p[2], sizeof(p[2]), "%s/mmvp_a.jsonl", dir);
    ft = fopen(p[1], "w");
    fp = fopen(p[2], "w");
    int ca = csv_column(&csv, "Correct Answer"), ci = csv_column(&csv, "Index"), cimg = csv_column(&csv, "Image");
    EXPECT(ca >= 0 && ci >= 0 && cimg >= 0);
    for (int i = 1; i < csv.n && ca >= 0 && ci >= 0; i++) {
        fprintf(ft, "{\"question_id\": %s, \"text\": \"%s\"}\n", csv.rows[i].f[ci], csv.rows[i].f[ca]);
        fprintf(fp, "{\"question_id\": %s, \"text\": \"(a)\"}\n", csv.rows[i].f[ci]);
    }
    fclose(ft); fclose(fp);
    EXPECT_INT_EQ(csv.n - 1, 2 * 12);
    csv_free(&csv);
    MmvpMetrics mm;
    mmvp_eval_files(p[0], p[1], MMVP_RULE_LETTER, &mm, NULL, &match);
    EXPECT_NEAR(mm.pair_accuracy, 1.0, 0);
    mmvp_eval_files(p[0], p[2], MMVP_RULE_FIRST4, &mm, NULL, &match);
    EXPECT_NEAR(mm.pair_accuracy, 0.0, 0);
    EXPECT_NEAR(mm.accuracy, 0.5, 1e-12);

    // world.json records the settings
    snprintf(p[0], sizeof(p[0]), "%s/world.json", dir);
    cJSON *w = load_json(p[0]);
    EXPECT_INT_EQ(cJSON_GetObjectItem(w, "seed")->valueint, 3);
    EXPECT_INT_EQ(cJSON_GetObjectItem(w, "size")->valueint, 56);
    EXPECT_NEAR(cJSON_GetObjectItem(w, "prior")->valuedouble, 0.8, 1e-12);
    cJSON_Delete(w);
}

TEST(synth_cli_errors) {
    char args[1024], *err;
    const char *dir = test_tmpdir();
    struct { const char *flags, *piece; } cases[] = {
        {"--size 10", "--size 10 is outside"},
        {"--prior 1.5", "--prior 1.5 is outside"},
        {"--train -1", "--train -1 is outside"},
        {"--bogus 3", "--bogus"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        snprintf(args, sizeof(args), "data synth --out %s/bad %s", dir, cases[k].flags);
        EXPECT(test_run_vlm(args, NULL, &err) != 0);
        EXPECTF(strstr(err, cases[k].piece) != NULL, "%s: message: %s", cases[k].flags, err);
        free(err);
    }
    EXPECT(test_run_vlm("data synth --train 3", NULL, &err) != 0);
    EXPECTF(strstr(err, "--out") != NULL, "message: %s", err);
    free(err);
    // a folder that cannot be created: its parent is a file
    char file[400];
    snprintf(file, sizeof(file), "%s/plainfile", dir);
    write_file_atomic(file, "x", 1);
    snprintf(args, sizeof(args), "data synth --out %s/sub --train 2 --eval 2 --pairs 2 --quiet", file);
    EXPECT(test_run_vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "plainfile") != NULL && strstr(err, "cannot create") != NULL, "message: %s", err);
    free(err);
}

// Hidden partners (SynthPriors.unseen): only partners the co-occurrence prior adds are hidden, a hidden object
// is not drawn (the image equals the scene's without it), and unseen = 0 hides nothing.
TEST(synth_unseen_partners) {
    SynthPriors p = default_priors;
    p.unseen = 0.5;
    int hidden = 0, seen_partner = 0;
    for (int i = 0; i < 400; i++) {
        AugRng r;
        synth_rng(&r, 9, 1, i);
        SynthScene s;
        synth_scene_train(&s, &r, &p);
        SynthScene drawn = s;
        drawn.n = 0;
        for (int k = 0; k < s.n; k++) {
            if (!s.o[k].hidden) { drawn.o[drawn.n++] = s.o[k]; continue; }
            hidden++;
            EXPECTF(s.o[k].color == synth_typical_color[s.o[k].shape], "scene %d: hidden object %d not in its typical colour", i, k);
            int anchored = 0;  // some earlier object has it as partner
            for (int j = 0; j < k; j++) anchored |= synth_partner_shape[s.o[j].shape] == s.o[k].shape;
            EXPECTF(k > 0 && anchored, "scene %d: hidden object %d is nobody's partner", i, k);
        }
        for (int k = 1; k < s.n; k++) seen_partner += !s.o[k].hidden && synth_partner_shape[s.o[0].shape] == s.o[k].shape;
        if (i < 40 && drawn.n < s.n) {
            Image *a = synth_render(&s, 48), *b = synth_render(&drawn, 48);
            EXPECT(!memcmp(a->data, b->data, (size_t)48 * 48 * 3));
            image_free(a);
            image_free(b);
        }
        synth_rng(&r, 9, 1, i);
        synth_scene_train(&s, &r, &default_priors);
        for (int k = 0; k < s.n; k++) EXPECT(!s.o[k].hidden);
    }
    EXPECTF(hidden > 50 && seen_partner > 50, "hidden %d, visible partners %d", hidden, seen_partner);
}

// Existence questions about absent objects: many a present shape in another colour or a present colour
// on another shape (without them a decoder answers from the colour alone; the colour prior makes a typical one
// rare, so about a fifth each), and the question's words say nothing
// about the answer: an object in its typical colour is as likely present as absent.
TEST(synth_exist_negatives) {
    long n[2][2] = {{0}}, same_color = 0, same_shape = 0, negatives = 0;  // n[typical][yes]
    for (int i = 0; i < 6000; i++) {
        AugRng r;
        synth_rng(&r, 13, 1, i);
        SynthScene s;
        synth_scene_train(&s, &r, &default_priors);
        SynthQA qa;
        EXPECT(synth_qa(&s, &r, SYNTH_QA_EXIST, default_priors.prior, &qa));
        int shape, color, yes = !strcmp(qa.a, "yes");
        EXPECT(parse_object(qa.q + strlen("Is there "), &shape, &color) > 0);
        n[color == synth_typical_color[shape]][yes]++;
        if (yes) continue;
        negatives++;
        same_color += synth_count_color(&s, color) > 0;
        same_shape += synth_count(&s, shape, -1) > 0;
    }
    double yes_typical = (double)n[1][1] / (n[1][0] + n[1][1]), yes_atypical = (double)n[0][1] / (n[0][0] + n[0][1]);
    EXPECTF(fabs(yes_typical - yes_atypical) < 0.06, "P(yes | typical colour) %.3f, P(yes | other) %.3f", yes_typical, yes_atypical);
    EXPECTF(same_color > negatives / 6 && same_shape > negatives / 6, "of %ld negatives %ld share a present colour, %ld a shape",
            negatives, same_color, same_shape);
}

// With many hidden partners (all in their typical colour) the written SFT questions still give nothing away by
// their colour word: absent objects are named typical as often as the training objects are, so P(yes | typical)
// stays P(yes | other). Before the share was measured, unseen 0.5 gave 0.535 against 0.434.
TEST(synth_exist_words_balanced_with_hidden) {
    char dir[512], args[1024], *err;
    snprintf(dir, sizeof(dir), "%s/balanced", test_tmpdir());
    snprintf(args, sizeof(args), "data synth --out %s --seed 5 --train 2500 --eval 2 --val 2 --pairs 2 --size 32 --qa 6 "
             "--prior 0.6 --cooc 0.9 --unseen 0.5 --quiet", dir);
    EXPECTF(test_run_vlm(args, NULL, &err) == 0, "%s", err);
    free(err);
    char path[600];
    snprintf(path, sizeof(path), "%s/sft.jsonl", dir);
    FILE *f = fopen(path, "r");
    EXPECT(f != NULL);
    if (!f) return;
    long n[2][2] = {{0}};  // n[typical][yes]
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        cJSON *j = cJSON_Parse(line);
        EXPECT(j != NULL);
        if (!j) break;
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
        const char *q = cJSON_GetStringValue(cJSON_GetObjectItem(j, "prompt"));
        const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(j, "response"));
        int shape, color;
        if (type && q && a && !strcmp(type, "exist") && !strncmp(q, "Is there ", 9) && parse_object(q + 9, &shape, &color) > 0)
            n[color == synth_typical_color[shape]][!strcmp(a, "yes")]++;
        cJSON_Delete(j);
    }
    fclose(f);
    double yes_typical = (double)n[1][1] / (n[1][0] + n[1][1] + 1e-9), yes_atypical = (double)n[0][1] / (n[0][0] + n[0][1] + 1e-9);
    EXPECTF(n[1][0] + n[1][1] > 1000 && n[0][0] + n[0][1] > 500, "too few existence questions: %ld typical, %ld other",
            n[1][0] + n[1][1], n[0][0] + n[0][1]);
    EXPECTF(fabs(yes_typical - yes_atypical) < 0.04, "P(yes | typical colour) %.3f, P(yes | other) %.3f", yes_typical, yes_atypical);
}

// The difficulty knob: a faint object drawn at opacity A blends into the background; with faint_desaturate it
// keeps full opacity and only A of its colour (the rest its grey), so its outline stays plain.
TEST(synth_faint_objects) {
    const int S = 96;
    SynthScene s = single(SYNTH_SHAPE_CIRCLE, 0, 2);  // red on a flat 200-grey background
    s.o[0].faint = 1;
    s.faint_alpha = 0.25f;
    Image *im = synth_render(&s, S);
    const uint8_t *red = synth_color_rgb[0], *mid = im->data + ((size_t)(S / 2) * S + S / 2) * 3;
    for (int c = 0; c < 3; c++) EXPECT_INT_EQ(mid[c], (int)lround(200 * 0.75 + red[c] * 0.25));
    image_free(im);
    s.faint_desaturate = 1;
    im = synth_render(&s, S);
    mid = im->data + ((size_t)(S / 2) * S + S / 2) * 3;
    double g = 0.299 * red[0] + 0.587 * red[1] + 0.114 * red[2];
    for (int c = 0; c < 3; c++) EXPECT_INT_EQ(mid[c], (int)lround(g + (red[c] - g) * 0.25));
    image_free(im);
}
