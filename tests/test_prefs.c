// The preference-data builders and their inputs: the pair rules (data/prefpairs.c), named augmentations
// (vlm sample --augment), CLIP similarity (vlm score), and vlm data seva | clipdpo | mvc end to end on
// tiny models.
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/augment.h"
#include "../data/chat.h"
#include "../data/prefpairs.h"
#include "../data/records.h"
#include "../eval/clipscore.h"
#include "../util/common.h"
#include "../util/jsonl.h"
#include "test.h"

#define MODELS "tests/fixtures/models/"

TEST(pref_pair_rules) {
    char a[] = "  The cat sits.</s>\n", b[] = "line one\nline two</s>", c[] = "</s>";
    EXPECT(!strcmp(pref_clean_answer(a), "The cat sits."));
    EXPECT(!strcmp(pref_clean_answer(b), "line one line two"));
    EXPECT(!strcmp(pref_clean_answer(c), ""));
    // SeVa as released: the raw strings compared, then "</s>" and "\n" deleted (no space, no trimming)
    char d[] = " Line one.\nLine two.</s>", e[] = "a</s>b\n\nc ";
    EXPECT(!strcmp(seva_clean_answer(d), " Line one.Line two."));
    EXPECT(!strcmp(seva_clean_answer(e), "abc "));
    EXPECT(seva_keep("yes", "no"));
    EXPECT(!seva_keep("same", "same"));
    EXPECT(seva_keep("Two.</s>", "Two.\n"));  // different raw strings, the same once cleaned: a pair, as in SeVa
    EXPECT_INT_EQ(pref_word_count("  a red  circle\tleft "), 4);
    EXPECT_INT_EQ(pref_word_count(""), 0);
    // CLIP-DPO: best vs worst, gap and length ratio
    double s[4] = {20.0, 25.5, 19.0, 22.0};
    int w[4] = {5, 6, 4, 20}, ch = -1, rj = -1;
    EXPECT(clipdpo_pick(s, w, 4, -INFINITY, 2, 2, &ch, &rj));
    EXPECT_INT_EQ(ch, 1);
    EXPECT_INT_EQ(rj, 2);
    EXPECT(!clipdpo_pick(s, w, 4, -INFINITY, 7, 2, &ch, &rj));          // gap 6.5 < 7
    w[2] = 2;
    EXPECT(!clipdpo_pick(s, w, 4, -INFINITY, 2, 2, &ch, &rj));          // 6 words vs 2: ratio 3 > 2
    EXPECT(clipdpo_pick(s, w, 4, 19.5, 2, 2, &ch, &rj) && rj == 0);     // 19.0 is below --min-score
    EXPECT(!clipdpo_pick(s, w, 1, -INFINITY, 0, 2, &ch, &rj));          // one candidate: no pair
}

TEST(augment_spec_parse_and_apply) {
    AugSpec a;
    char err[256];
    EXPECT(augment_spec_parse("diffusion:500", &a, err, sizeof(err)) == 0 && a.kind == AUG_DIFFUSION && a.t == 500);
    EXPECT(augment_spec_parse("crop:0.01,0.2", &a, err, sizeof(err)) == 0 && a.kind == AUG_CROP && a.lo == 0.01 && a.hi == 0.2);
    EXPECT(augment_spec_parse("flip", &a, err, sizeof(err)) == 0 && a.kind == AUG_FLIP);
    EXPECT(augment_spec_parse("moco", &a, err, sizeof(err)) == 0 && a.kind == AUG_MOCO);
    const char *bad[5] = {"diffusion:1000", "diffusion:5x", "crop:0.3,0.2", "blur", "crop:0,0.5"};
    for (int i = 0; i < 5; i++) {
        EXPECTF(augment_spec_parse(bad[i], &a, err, sizeof(err)) != 0, "'%s' accepted", bad[i]);
        EXPECTF(strstr(err, bad[i]) != NULL, "the message should name '%s': %s", bad[i], err);
    }
    // flip through augment_apply is the mirror image; diffusion at t keeps the mean scaled by sqrt(alpha_bar)
    const int H = 4, W = 6;
    float x[3 * 4 * 6], y[3 * 4 * 6];
    for (int i = 0; i < 3 * H * W; i++) x[i] = y[i] = (float)i;
    augment_spec_parse("flip", &a, err, sizeof(err));
    augment_apply(&a, y, H, W, NULL, NULL);
    for (int c = 0; c < 3; c++)
        for (int h = 0; h < H; h++)
            for (int w2 = 0; w2 < W; w2++) EXPECT(y[(c * H + h) * W + w2] == x[(c * H + h) * W + (W - 1 - w2)]);
}

// ---- vlm sample --augment --------------------------------------------------------------------------

static char *run_ok(const char *args) {
    char *out, *err;
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "vlm %s: exit %d: %s", args, rc, err);
    free(err);
    return out;
}

// `vlm sample --preset seva`: SeVa's generation settings, each printed with its source, and the same run as the
// flags written out (vicuna_v1 with LLaVA's "curious human" line, greedy, the budget given on the command line);
// the system line reaches the prompt's tokens.
TEST(sample_preset_seva) {
    char base[1024], args[2048], *out, *err;
    snprintf(base, sizeof(base), "sample --model " MODELS "llava_tok --data " MODELS "llava_tok/generate_records.jsonl "
             "--tokenizer %s/tokenizers/llama2_tokenizer.model --device cpu --max-new-tokens 3", test_shared_data());
    snprintf(args, sizeof(args), "%s --preset seva", base);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    EXPECTF(strstr(err, "generate_with_aug.py l.90") && strstr(err, "curious human") && strstr(err, "do_sample=False"),
            "the preset's values and sources: %s", err);
    EXPECTF(strstr(err, "--max-new-tokens command line (preset 512"), "the command line's value: %s", err);
    snprintf(args, sizeof(args), "%s --template vicuna_v1 --temperature 0 --system \"%s\"", base, CHAT_LLAVA_V1_SYSTEM);
    char *spelled = run_ok(args);
    EXPECTF(!strcmp(out, spelled), "--preset seva:\n%s\nthe flags written out:\n%s", out, spelled);
    free(out); free(err); free(spelled);
    EXPECT(test_run_vlm("sample --model x --data y --preset sevaa", &out, &err) != 0);
    EXPECTF(strstr(err, "--preset 'sevaa'"), "message: %s", err);
    free(out); free(err);
    // the record's prompt carries the system line (a record's own "system" would replace it)
    char *tp = path_join(test_shared_data(), "tokenizers/llama2_tokenizer.model");
    Tokenizer *tok = tokenizer_load(tp);
    LlavaConfig cfg;
    llava_config_load(&cfg, MODELS "llava_tok");
    SampleRecordSet rs;
    SampleReadOptions sopt = {.tmpl = CHAT_VICUNA_V1, .system = CHAT_LLAVA_V1_SYSTEM};
    records_read_sample(&rs, MODELS "llava_tok/generate_records.jsonl", &cfg, tok, &sopt);
    ChatOptions o = {.tmpl = CHAT_VICUNA_V1, .system = CHAT_LLAVA_V1_SYSTEM, .image = rs.r[0].n_images,
                     .n_image_tokens = cfg.image_tokens};
    ChatTurn t = {"What is in the picture?", NULL};
    ChatTokens c;
    char e[256];
    EXPECT(chat_build(tok, &o, &t, 1, &c, e, sizeof(e)) == 0);
    EXPECTF(strstr(c.text, "curious human") == c.text + 17, "%s", c.text);
    EXPECT_INT_EQ(rs.r[0].n, c.n);
    for (int i = 0; i < c.n && i < rs.r[0].n; i++) EXPECT_INT_EQ(rs.r[0].ids[i], c.ids[i]);
    chat_tokens_free(&c);
    records_free_sample(&rs);
    tokenizer_free(tok);
    free(tp);
}

TEST(sample_augment_is_seeded_and_changes_answers) {
    const char *base = "sample --model " MODELS "llava_gqa --data " MODELS "llava_gqa/generate_records.jsonl --device cpu "
                       "--max-new-tokens 6";
    char args[1024];
    char *plain = run_ok(base);
    snprintf(args, sizeof(args), "%s --augment diffusion:999 --augment-seed 3", base);
    char *noised = run_ok(args);
    snprintf(args, sizeof(args), "%s --augment diffusion:999 --augment-seed 3 --batch 1", base);
    char *again = run_ok(args);
    snprintf(args, sizeof(args), "%s --augment diffusion:999 --augment-seed 4", base);
    char *other = run_ok(args);
    EXPECTF(!strcmp(noised, again), "the same seed gives other answers with --batch 1:\n%s\nvs\n%s", noised, again);
    EXPECTF(strcmp(plain, noised) != 0, "heavy noise on every image left every answer unchanged");
    EXPECTF(strcmp(noised, other) != 0, "another augment seed gave the same answers");
    free(plain); free(noised); free(again); free(other);
    char *out, *err;
    snprintf(args, sizeof(args), "%s --augment blur", base);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "--augment") && strstr(err, "blur"), "message: %s", err);
    free(out); free(err);
}

// ---- vlm data seva ---------------------------------------------------------------------------------

static cJSON **read_lines(const char *text, int *n) {
    cJSON **v = NULL;
    *n = 0;
    const char *p = text;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0) {
            char *line = xmalloc(len + 1);
            memcpy(line, p, len);
            line[len] = 0;
            v = xrealloc(v, sizeof(cJSON *) * (*n + 1));
            v[(*n)++] = cJSON_Parse(line);
            free(line);
        }
        p = e ? e + 1 : NULL;
    }
    return v;
}

static void free_lines(cJSON **v, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static const char *str_of(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

TEST(data_seva_pairs) {
    // as SeVa's step 3 (data/step3/make_pair_*.py l.24-30): question 0 a pair; question 1 the same answer, dropped;
    // question 2 two raw answers that differ ("</s>" against "\n") but are the same once cleaned: kept, as SeVa
    // keeps them; question 3 the same text, one ended by the end token (raw "Left.</s>"), one by the length: kept;
    // question 4 cleaned to nothing: dropped; question 5 no rejected answer
    char *q = test_write_tmp("seva_q.jsonl", "{\"image\": \"a.png\", \"prompt\": \"What shape?\"}\n"
                                        "{\"image\": \"b.png\", \"prompt\": \"What color?\"}\n"
                                        "{\"image\": \"c.png\", \"prompt\": \"How many?\"}\n"
                                        "{\"image\": \"d.png\", \"prompt\": \"Where?\"}\n"
                                        "{\"image\": \"e.png\", \"prompt\": \"Why?\"}\n"
                                        "{\"image\": \"f.png\", \"prompt\": \"Who?\"}\n");
    char *a = test_write_tmp("seva_a.jsonl", "{\"index\": 0, \"sample\": 0, \"text\": \"A circle.\\nIt is red.\", \"finish\": \"eos\"}\n"
                                        "{\"index\": 1, \"sample\": 0, \"text\": \"Red.\", \"finish\": \"eos\"}\n"
                                        "{\"index\": 2, \"sample\": 0, \"text\": \"Two.</s>\"}\n"
                                        "{\"index\": 3, \"sample\": 0, \"text\": \"Left.\", \"finish\": \"eos\"}\n"
                                        "{\"index\": 4, \"sample\": 0, \"text\": \"\\n\"}\n"
                                        "{\"index\": 5, \"sample\": 0, \"text\": \"Bob.\"}\n");
    char *b = test_write_tmp("seva_b.jsonl", "{\"index\": 2, \"sample\": 0, \"text\": \"Two.\\n\"}\n"
                                        "{\"index\": 0, \"sample\": 0, \"text\": \"A square.\", \"finish\": \"eos\"}\n"
                                        "{\"index\": 1, \"sample\": 0, \"text\": \"Red.\", \"finish\": \"eos\"}\n"
                                        "{\"index\": 3, \"sample\": 0, \"text\": \"Left.\", \"finish\": \"length\"}\n"
                                        "{\"index\": 4, \"sample\": 0, \"text\": \"</s>\"}\n");
    char args[1024];
    snprintf(args, sizeof(args), "data seva --questions %s --chosen %s --rejected %s --repeat 2", q, a, b);
    char *out = run_ok(args);
    int n;
    cJSON **v = read_lines(out, &n);
    EXPECT_INT_EQ(n, 6);  // three pairs, twice each
    static const char *const want[3][4] = {{"a.png", "What shape?", "A circle.It is red.", "A square."},
                                           {"c.png", "How many?", "Two.", "Two."},
                                           {"d.png", "Where?", "Left.", "Left."}};
    for (int i = 0; i < n && i < 6; i++) {
        const char *const *w = want[i / 2];
        EXPECTF(!strcmp(str_of(v[i], "image"), w[0]) && !strcmp(str_of(v[i], "prompt"), w[1]), "pair %d: %s", i, str_of(v[i], "prompt"));
        EXPECTF(!strcmp(str_of(v[i], "chosen"), w[2]) && !strcmp(str_of(v[i], "rejected"), w[3]), "pair %d: '%s' / '%s'", i,
                str_of(v[i], "chosen"), str_of(v[i], "rejected"));
    }
    free_lines(v, n);
    free(out);
    // a sample index past the questions: named by file and line
    char *bad = test_write_tmp("seva_bad.jsonl", "{\"index\": 0, \"text\": \"x\"}\n{\"index\": 9, \"text\": \"y\"}\n");
    snprintf(args, sizeof(args), "data seva --questions %s --chosen %s --rejected %s", q, a, bad);
    char *err;
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "seva_bad.jsonl:2") && strstr(err, "index 9"), "message: %s", err);
    free(out); free(err); free(bad); free(q); free(a); free(b);
}

// ---- CLIP scoring: a tiny CLIPModel with OpenAI's vocabulary, made by vlm train --recipe clip --init random

static char *tiny_clip(void) {
    static char *dir = NULL;
    if (dir) return dir;
    char *cfg_dir = path_join(test_tmpdir(), "tiny_clip_cfg"), cmd[2048];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp " MODELS "clip/preprocessor_config.json %s/", cfg_dir, cfg_dir);
    if (test_shell(cmd) != 0) fatal("setup");
    char *text = read_file(MODELS "clip/config.json", NULL);
    cJSON *c = cJSON_Parse(text);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text_config");
    cJSON_ReplaceItemInObjectCaseSensitive(t, "vocab_size", cJSON_CreateNumber(49408));
    cJSON_ReplaceItemInObjectCaseSensitive(t, "bos_token_id", cJSON_CreateNumber(49406));
    cJSON_ReplaceItemInObjectCaseSensitive(t, "eos_token_id", cJSON_CreateNumber(49407));
    cJSON_ReplaceItemInObjectCaseSensitive(t, "max_position_embeddings", cJSON_CreateNumber(20));
    char *js = cJSON_Print(c), path[600];
    snprintf(path, sizeof(path), "%s/config.json", cfg_dir);
    write_file_atomic(path, js, strlen(js));
    free(js); cJSON_Delete(c); free(text);
    char *data = test_write_tmp("tiny_clip_data.jsonl", "");
    free(data);
    snprintf(cmd, sizeof(cmd), "cp " MODELS "llava_gqa/images/*.png %s/", test_tmpdir());
    if (test_shell(cmd) != 0) fatal("setup");
    data = test_write_tmp("tiny_clip_data.jsonl", "{\"image\": \"a.png\", \"caption\": \"a red circle\"}\n"
                                             "{\"image\": \"b.png\", \"caption\": \"two blue squares\"}\n"
                                             "{\"image\": \"gray.png\", \"caption\": \"a gray picture\"}\n");
    char args[2048], *out, *err;
    snprintf(args, sizeof(args), "train --recipe clip --model %s --init random --data %s --out %s/tiny_clip_run --steps 2 --batch 3 "
             "--device cpu --quiet --tokenizer %s/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz", cfg_dir, data, test_tmpdir(), test_shared_data());
    int rc = test_run_vlm(args, &out, &err);
    if (rc != 0) fatal("tiny CLIP: %s", err);
    free(out); free(err); free(data); free(cfg_dir);
    dir = path_join(test_tmpdir(), "tiny_clip_run/checkpoint-00000002");
    return dir;
}

static char *bpe_path(void) { return path_join(test_shared_data(), "tokenizers/clip_bpe_simple_vocab_16e6.txt.gz"); }

TEST(score_cli_clip_similarity) {
    char *clip = tiny_clip(), *bpe = bpe_path(), args[2048];
    char *d = test_write_tmp("score.jsonl", "{\"image\": \"a.png\", \"text\": \"a red circle\", \"id\": 7}\n"
                                       "{\"image\": \"a.png\", \"image2\": \"a.png\"}\n"
                                       "{\"image\": \"b.png\", \"text\": \"two blue squares on the left\"}\n"
                                       "{\"image\": \"a.png\", \"image2\": \"gray.png\"}\n");
    snprintf(args, sizeof(args), "score --clip %s --tokenizer %s --data %s --device cpu", clip, bpe, d);
    char *out = run_ok(args);
    snprintf(args, sizeof(args), "score --clip %s --tokenizer %s --data %s --device cpu --batch 1", clip, bpe, d);
    char *out1 = run_ok(args);
    EXPECTF(!strcmp(out, out1), "scores depend on --batch:\n%s\nvs\n%s", out, out1);
    int n;
    cJSON **v = read_lines(out, &n);
    EXPECT_INT_EQ(n, 4);
    if (n == 4) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(v[0], "id");
        EXPECT(cJSON_IsNumber(id) && id->valuedouble == 7);  // records come back whole
        const cJSON *self = cJSON_GetObjectItemCaseSensitive(v[1], "image_cosine");
        EXPECT(cJSON_IsNumber(self) && fabs(self->valuedouble - 1) < 1e-5);
        const cJSON *ag = cJSON_GetObjectItemCaseSensitive(v[3], "image_cosine");
        EXPECT(cJSON_IsNumber(ag) && ag->valuedouble < 1 - 1e-6 && ag->valuedouble > -1);
        // the CLIPScore of record 0 against the library directly: 100 x the cosine of unit embeddings
        ClipScorer s;
        clipscore_open(&s, clip, bpe, &backend_cpu, 4);
        char *ip = path_join(test_tmpdir(), "a.png");
        const char *ips[1] = {ip}, *txt[1] = {"a red circle"};
        float *ei = xmalloc(sizeof(float) * s.P), *et = xmalloc(sizeof(float) * s.P);
        clipscore_images(&s, ips, 1, ei);
        clipscore_texts(&s, txt, 1, et);
        double norm = 0;
        for (int k = 0; k < s.P; k++) norm += (double)ei[k] * ei[k];
        EXPECT_NEAR(norm, 1.0, 1e-5);
        const cJSON *cs = cJSON_GetObjectItemCaseSensitive(v[0], "clip_score");
        EXPECT(cJSON_IsNumber(cs));
        if (cJSON_IsNumber(cs)) EXPECT_NEAR(cs->valuedouble, 100 * clipscore_cosine(ei, et, s.P), 1e-6);
        free(ei); free(et); free(ip);
        clipscore_close(&s);
    }
    free_lines(v, n);
    free(out); free(out1);
    // a record with both "text" and "image2", and a CLIP whose vocabulary cannot hold the BPE ids
    char *bad = test_write_tmp("score_bad.jsonl", "{\"image\": \"a.png\", \"text\": \"x\"}\n{\"image\": \"a.png\", \"text\": \"x\", \"image2\": \"b.png\"}\n");
    char *err;
    snprintf(args, sizeof(args), "score --clip %s --tokenizer %s --data %s --device cpu", clip, bpe, bad);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "score_bad.jsonl:2") && strstr(err, "exactly one"), "message: %s", err);
    free(out); free(err);
    snprintf(args, sizeof(args), "score --clip " MODELS "clip --tokenizer %s --data %s --device cpu", bpe, d);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "outside the text tower's vocabulary") != NULL, "message: %s", err);
    free(out); free(err); free(bad); free(d); free(bpe);
}

TEST(data_clipdpo_and_mvc) {
    char *clip = tiny_clip(), *bpe = bpe_path(), args[2048];
    char *q = test_write_tmp("cd_q.jsonl", "{\"image\": \"a.png\", \"prompt\": \"Describe the image.\"}\n"
                                      "{\"prompt\": \"No image here.\"}\n"
                                      "{\"image\": \"b.png\", \"prompt\": \"Describe the image.\"}\n");
    char *s = test_write_tmp("cd_s.jsonl", "{\"index\": 0, \"sample\": 0, \"text\": \"a red circle\"}\n"
                                      "{\"index\": 0, \"sample\": 1, \"text\": \"a blue square\"}\n"
                                      "{\"index\": 0, \"sample\": 2, \"text\": \"a gray picture\"}\n"
                                      "{\"index\": 1, \"sample\": 0, \"text\": \"x\"}\n"
                                      "{\"index\": 1, \"sample\": 1, \"text\": \"y\"}\n"
                                      "{\"index\": 1, \"sample\": 2, \"text\": \"z\"}\n"
                                      "{\"index\": 2, \"sample\": 0, \"text\": \"two squares\"}\n"
                                      "{\"index\": 2, \"sample\": 1, \"text\": \"two squares</s>\"}\n"
                                      "{\"index\": 2, \"sample\": 2, \"text\": \"two squares\"}\n");
    snprintf(args, sizeof(args), "data clipdpo --questions %s --samples %s --clip %s --tokenizer %s --n 3 --min-gap 0 "
             "--device cpu", q, s, clip, bpe);
    char *out = run_ok(args);
    int n;
    cJSON **v = read_lines(out, &n);
    EXPECT_INT_EQ(n, 1);  // question 1 has no image; question 2's candidates are one text
    if (n == 1) {
        EXPECT(!strcmp(str_of(v[0], "image"), "a.png"));
        // chosen is the best of the three by vlm score's own numbers, rejected the worst
        char *sd = test_write_tmp("cd_score.jsonl", "{\"image\": \"a.png\", \"text\": \"a red circle\"}\n"
                                               "{\"image\": \"a.png\", \"text\": \"a blue square\"}\n"
                                               "{\"image\": \"a.png\", \"text\": \"a gray picture\"}\n");
        snprintf(args, sizeof(args), "score --clip %s --tokenizer %s --data %s --device cpu", clip, bpe, sd);
        char *so = run_ok(args);
        int m;
        cJSON **sv = read_lines(so, &m);
        int hi = 0, lo = 0;
        double sc[3] = {0, 0, 0};
        for (int i = 0; i < m && i < 3; i++) sc[i] = cJSON_GetObjectItemCaseSensitive(sv[i], "clip_score")->valuedouble;
        for (int i = 1; i < 3; i++) { if (sc[i] > sc[hi]) hi = i; if (sc[i] < sc[lo]) lo = i; }
        const char *texts[3] = {"a red circle", "a blue square", "a gray picture"};
        EXPECTF(!strcmp(str_of(v[0], "chosen"), texts[hi]) && !strcmp(str_of(v[0], "rejected"), texts[lo]),
                "chosen '%s' rejected '%s'; scores %.4f %.4f %.4f", str_of(v[0], "chosen"), str_of(v[0], "rejected"), sc[0], sc[1], sc[2]);
        EXPECT_NEAR(cJSON_GetObjectItemCaseSensitive(v[0], "clip_score_chosen")->valuedouble, sc[hi], 1e-6);
        free_lines(sv, m);
        free(so); free(sd);
    }
    free_lines(v, n);
    free(out);
    // MVC: every record with its image cosine (identical images: 1), then a threshold between the two keeps one
    char *mv = test_write_tmp("mvc_in.json", "[{\"instruction_prompt\": \"q\", \"chosen_images\": [\"a.png\"], \"rejected_images\": [\"a.png\"], "
                                        "\"chosen_response\": \"x\", \"rejected_response\": \"y\"},\n"
                                        " {\"instruction_prompt\": \"q\", \"chosen_images\": [\"a.png\"], \"rejected_images\": [\"gray.png\"], "
                                        "\"chosen_response\": \"x\", \"rejected_response\": \"y\"}]\n");
    snprintf(args, sizeof(args), "data mvc --data %s --clip %s --tokenizer %s --min-sim -1 --device cpu", mv, clip, bpe);
    out = run_ok(args);
    v = read_lines(out, &n);
    EXPECT_INT_EQ(n, 2);
    double cos[2] = {0, 0};
    for (int i = 0; i < n && i < 2; i++) cos[i] = cJSON_GetObjectItemCaseSensitive(v[i], "image_cosine")->valuedouble;
    EXPECT_NEAR(cos[0], 1.0, 1e-6);
    EXPECTF(cos[1] < cos[0], "different images: cosine %.9f, identical %.9f", cos[1], cos[0]);
    free_lines(v, n);
    free(out);
    snprintf(args, sizeof(args), "data mvc --data %s --clip %s --tokenizer %s --min-sim %.12f --device cpu", mv, clip, bpe,
             (cos[0] + cos[1]) / 2);
    out = run_ok(args);
    v = read_lines(out, &n);
    EXPECT_INT_EQ(n, 1);
    if (n == 1) EXPECT(!strcmp(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(v[0], "rejected_images"), 0)->valuestring, "a.png"));
    free_lines(v, n);
    free(out);
    // --dpo-out: the same kept pairs as DPO records on the chosen image (S-VCO's DPO baseline)
    char *dpo = path_join(test_tmpdir(), "mvc_dpo.jsonl");
    snprintf(args, sizeof(args), "data mvc --data %s --clip %s --tokenizer %s --min-sim %.12f --device cpu --dpo-out %s", mv,
             clip, bpe, (cos[0] + cos[1]) / 2, dpo);
    free(run_ok(args));
    char *text = read_file(dpo, NULL);
    v = read_lines(text, &n);
    EXPECT_INT_EQ(n, 1);
    if (n == 1) {
        const char *want[4][2] = {{"image", "a.png"}, {"prompt", "q"}, {"chosen", "x"}, {"rejected", "y"}};
        for (int k = 0; k < 4; k++) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(v[0], want[k][0]);
            EXPECTF(cJSON_IsString(f) && !strcmp(f->valuestring, want[k][1]), "dpo field %s", want[k][0]);
        }
        EXPECT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(v[0], "image_cosine")));
    }
    free_lines(v, n);
    free(text); free(dpo); free(mv); free(q); free(s); free(bpe);
}

// Record files may be one JSON array, read element by element: a broken element or one that is not an object is
// named by the line where it ends and its record number (before any model is loaded).
TEST(records_json_array_errors) {
    char *broken = test_write_tmp("arr_broken.json", "[{\"image\": \"a.png\", \"text\": \"x\"},\n {\"image\": \"b.png\",, }]\n");
    char *scalar = test_write_tmp("arr_scalar.json", "[{\"image\": \"a.png\", \"text\": \"x\"}, 7]\n");
    char args[1024], *out, *err;
    snprintf(args, sizeof(args), "score --clip /nonexistent --data %s", broken);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "arr_broken.json:2: record 2: malformed JSON") != NULL, "message: %s", err);
    free(out); free(err);
    snprintf(args, sizeof(args), "score --clip /nonexistent --data %s", scalar);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "arr_scalar.json:1: record 2: expected a JSON object") != NULL, "message: %s", err);
    free(out); free(err); free(broken); free(scalar);
}

// A JSON array file is read one element at a time: brackets, braces and quotes inside strings do not end an
// element, each record's offset and length are its exact bytes (train/data.c reads them again lazily), and an
// array that is not well formed between its elements is an error naming the line.
TEST(records_json_array_read_by_element) {
    const char *text = "[ {\"a\": \"x]}\\\"[{\", \"b\": [1, {\"c\": \"]\"}]} ,\n\n  {\"a\": \"y\"}\n]\n";
    char *path = test_write_tmp("arr_tricky.json", text);
    JsonlReader jr;
    jsonl_open(&jr, path);
    int n = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        EXPECT(n < 2);
        if (n >= 2) break;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
        EXPECTF(cJSON_IsString(a) && !strcmp(a->valuestring, n ? "y" : "x]}\"[{"), "record %d: a = %s", n + 1,
                cJSON_IsString(a) ? a->valuestring : "?");
        cJSON *again = cJSON_ParseWithLength(text + jr.offset, jr.len);  // the bytes a lazy reader reads again
        EXPECTF(again && cJSON_Compare(again, j, 1), "record %d: offset %lld length %zu do not hold it", n + 1, jr.offset, jr.len);
        cJSON_Delete(again);
        cJSON_Delete(j);
        n++;
    }
    EXPECT_INT_EQ(n, 2);
    jsonl_close(&jr);
    const char *bad[][2] = {{"[{\"image\": \"a.png\", \"text\": \"x\"},\n{\"image\": \"b.png\", \"text\": \"y\"},\n]\n", ":3: malformed JSON (a comma before the array's closing bracket)"},
                            {"[{\"image\": \"a.png\", \"text\": \"x\"}\n{\"image\": \"b.png\", \"text\": \"y\"}]\n", ":2: malformed JSON (a comma is missing between records)"},
                            {"[{\"image\": \"a.png\", \"text\": \"x\"}] x\n", ":1: text after the JSON array's closing bracket"},
                            {"[{\"image\": \"a.png\", \"text\": \"x\"},\n{\"image\": \"]\"", ":2: the JSON array ends inside a record"}};
    for (int k = 0; k < 4; k++) {
        char name[32], args[1024], *out, *err;
        snprintf(name, sizeof(name), "arr_bad%d.json", k);
        char *p = test_write_tmp(name, bad[k][0]);
        snprintf(args, sizeof(args), "score --clip /nonexistent --data %s", p);
        EXPECT(test_run_vlm(args, &out, &err) != 0);
        char needle[160];
        snprintf(needle, sizeof(needle), "%s%s", name, bad[k][1]);
        EXPECTF(strstr(err, needle) != NULL, "case %d: expected '%s' in: %s", k, needle, err);
        free(out); free(err); free(p);
    }
    free(path);
}

// ---- the released MVC filter: SigLIP and DINOv2 image embeddings ------------------------------------------

#define MVC_FILTER "tests/fixtures/mvc_filter/"

// transformers' cosine of record i under encoder key ("siglip_cosine" or "dinov2_cosine")
static double mvc_expected(const cJSON *ex, int i, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ex, i), key)->valuedouble;
}

// `vlm score --encoder` with each encoder: PIL-exact preprocessing (SiglipImageProcessor; dinov2's BitImageProcessor
// with its shortest-edge resize, crop and ImageNet statistics, at a crop whose grid needs the positions
// interpolated) and the models' pooler_output, against transformers' cosines of the same files
TEST(score_encoder_matches_transformers) {
    char *ej = read_file(MVC_FILTER "expected.json", NULL);
    cJSON *ex = cJSON_Parse(ej);
    char *recs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&recs, &len);
    static const char *const pairs[6][2] = {{"a", "b"}, {"a", "c"}, {"a", "d"}, {"e", "f"}, {"c", "c"}, {"d", "e"}};
    for (int i = 0; i < 6; i++) fprintf(f, "{\"image\": \"images/%s.png\", \"image2\": \"images/%s.png\"}\n", pairs[i][0], pairs[i][1]);
    fclose(f);
    char *data = test_write_tmp("mvc_filter_pairs.jsonl", recs);
    const char *encoders[2][2] = {{"siglip", "siglip_cosine"}, {"dinov2", "dinov2_cosine"}};
    for (int k = 0; k < 2; k++) {
        char args[1024];
        snprintf(args, sizeof(args), "score --encoder " MVC_FILTER "%s --data %s --images " MVC_FILTER " --device cpu",
                 encoders[k][0], data);
        char *out = run_ok(args);
        int n;
        cJSON **v = read_lines(out, &n);
        EXPECT_INT_EQ(n, 6);
        double worst = 0;
        for (int i = 0; i < n && i < 6; i++) {
            const double got = cJSON_GetObjectItemCaseSensitive(v[i], "image_cosine")->valuedouble;
            const double want = mvc_expected(ex, i, encoders[k][1]), e = fabs(got - want) / fabs(want);
            worst = e > worst ? e : worst;
        }
        printf("      %s: image cosines within %.2e relative of transformers\n", encoders[k][0], worst);
        EXPECTF(worst <= 1e-4, "%s: relative error %.3g", encoders[k][0], worst);
        free_lines(v, n);
        free(out);
    }
    // the encoder scores image pairs only; a text record is an error naming the line
    char *txt = test_write_tmp("mvc_filter_text.jsonl", "{\"image\": \"images/a.png\", \"image2\": \"images/b.png\"}\n"
                                                      "{\"image\": \"images/a.png\", \"text\": \"a red box\"}\n");
    char args[1024], *out, *err;
    snprintf(args, sizeof(args), "score --encoder " MVC_FILTER "dinov2 --data %s --device cpu", txt);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "mvc_filter_text.jsonl:2") && strstr(err, "image2"), "message: %s", err);
    free(out); free(err);
    // a folder that is not an image encoder
    snprintf(args, sizeof(args), "score --encoder " MODELS "llava_gqa --data %s --device cpu", data);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "model_type 'llava' is not an image encoder"), "message: %s", err);
    free(out); free(err); free(txt); free(data); free(recs); free(ej);
    cJSON_Delete(ex);
}

// `vlm data mvc --similar --different`: kept when SigLIP's cosine > X and DINOv2's < Y, both cosines written;
// the defaults (0.7, 0.5) keep none of these random models' pairs (every DINOv2 cosine is above 0.85)
TEST(data_mvc_two_encoders) {
    char *ej = read_file(MVC_FILTER "expected.json", NULL);
    cJSON *ex = cJSON_Parse(ej);
    char args[1024], *out, *err;
    char *dpo = path_join(test_tmpdir(), "mvc_two_dpo.jsonl");
    const double above = 0.75, below = 0.95;
    snprintf(args, sizeof(args), "data mvc --data " MVC_FILTER "mvc.json --similar " MVC_FILTER "siglip --different " MVC_FILTER
             "dinov2 --similar-above %g --different-below %g --device cpu --dpo-out %s", above, below, dpo);
    out = run_ok(args);
    int n, kept_want = 0;
    cJSON **v = read_lines(out, &n);
    for (int i = 0; i < cJSON_GetArraySize(ex); i++) {
        const int keep = mvc_expected(ex, i, "siglip_cosine") > above && mvc_expected(ex, i, "dinov2_cosine") < below;
        kept_want += keep;
        int found = -1;
        for (int j = 0; j < n; j++)
            if (cJSON_GetObjectItemCaseSensitive(v[j], "id")->valueint == i) found = j;
        EXPECTF((found >= 0) == keep, "record %d: kept %d, expected %d", i, found >= 0, keep);
        if (found >= 0) {
            EXPECT_NEAR(cJSON_GetObjectItemCaseSensitive(v[found], "similar_cosine")->valuedouble, mvc_expected(ex, i, "siglip_cosine"), 1e-4);
            EXPECT_NEAR(cJSON_GetObjectItemCaseSensitive(v[found], "different_cosine")->valuedouble, mvc_expected(ex, i, "dinov2_cosine"), 1e-4);
        }
    }
    EXPECTF(kept_want >= 2 && kept_want < cJSON_GetArraySize(ex), "the thresholds should split the fixture (%d kept)", kept_want);
    EXPECT_INT_EQ(n, kept_want);
    free_lines(v, n);
    free(out);
    char *text = read_file(dpo, NULL);
    v = read_lines(text, &n);
    EXPECT_INT_EQ(n, kept_want);
    for (int j = 0; j < n; j++)
        EXPECT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(v[j], "similar_cosine")) &&
               cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(v[j], "different_cosine")));
    free_lines(v, n);
    free(text);
    // the released thresholds: nothing passes here, an error unless --allow-empty
    snprintf(args, sizeof(args), "data mvc --data " MVC_FILTER "mvc.json --similar " MVC_FILTER "siglip --different " MVC_FILTER
             "dinov2 --device cpu");
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "SigLIP cosine > 0.7 and DINOv2 cosine < 0.5") && strstr(err, "no record passed"), "message: %s", err);
    free(out); free(err);
    // flags of the other mode, or one encoder of the two, are errors
    const char *bad[3][2] = {{"--similar " MVC_FILTER "siglip", "go together"},
                             {"--similar " MVC_FILTER "siglip --different " MVC_FILTER "dinov2 --min-sim 0.5", "--min-sim"},
                             {"--similar " MVC_FILTER "siglip --different " MVC_FILTER "dinov2 --clip x", "--clip"}};
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof(args), "data mvc --data " MVC_FILTER "mvc.json %s --device cpu", bad[k][0]);
        EXPECT(test_run_vlm(args, &out, &err) != 0);
        EXPECTF(strstr(err, bad[k][1]), "%s: message: %s", bad[k][0], err);
        free(out); free(err);
    }
    free(dpo); free(ej);
    cJSON_Delete(ex);
}
