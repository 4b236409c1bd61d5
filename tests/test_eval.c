// Rule-based benchmark scorers (eval/): POPE's two answer parsers and metrics, answer matching by
// question_id or order, CHAIR's object matching (synonyms, plurals, two-word objects, COCO rules) and
// metrics, MMVP's graders and pairs, the CSV reader, and the singularizer. Every expected metric is worked
// out by hand in the comments next to it.
#include <cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../eval/amber.h"
#include "../eval/answers.h"
#include "../eval/chair.h"
#include "../eval/choice.h"
#include "../eval/csv.h"
#include "../eval/cvbench.h"
#include "../eval/mmvp.h"
#include "../eval/pope.h"
#include "../eval/qa.h"
#include "../eval/text.h"
#include "../util/common.h"
#include "test.h"

// The JSON written by a --out flag, parsed (NULL with a recorded failure when missing).
static cJSON *read_json(const char *path) {
    char *text = try_read_file(path, NULL);
    if (!text) { test_fail(__FILE__, __LINE__, "%s was not written", path); return NULL; }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) test_fail(__FILE__, __LINE__, "%s is not valid JSON", path);
    return j;
}

// A number at a path of object keys, e.g. num(j, "mean", "f1", NULL); NaN when absent.
static double num(const cJSON *j, ...) {
    va_list ap;
    va_start(ap, j);
    for (const char *k; j && (k = va_arg(ap, const char *));) j = cJSON_GetObjectItemCaseSensitive(j, k);
    va_end(ap);
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

// Runs vlm and expects a failure whose stderr contains every one of the given pieces (NULL-terminated).
static void expect_cli_error(const char *args, ...) {
    char *out, *err;
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc != 0, "vlm %s: expected a failure, got exit 0", args);
    va_list ap;
    va_start(ap, args);
    for (const char *piece; (piece = va_arg(ap, const char *));)
        EXPECTF(strstr(err, piece) != NULL, "vlm %s: stderr lacks '%s':\n%s", args, piece, err);
    va_end(ap);
    free(out); free(err);
}

// expects the JSON array a to hold the n ints in want
static void expect_ints(const char *file, int line, const cJSON *a, const int *want, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) { test_fail(file, line, "expected an array of %d ints", n); return; }
    for (int i = 0; i < n; i++)
        if (cJSON_GetArrayItem(a, i)->valueint != want[i])
            test_fail(file, line, "entry %d is %d, expected %d", i, cJSON_GetArrayItem(a, i)->valueint, want[i]);
}
// ... and the n strings in want
static void expect_strs(const char *file, int line, const cJSON *a, const char *const *want, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) { test_fail(file, line, "expected an array of %d strings", n); return; }
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, want[i]))
            test_fail(file, line, "entry %d is %s, expected %s", i, cJSON_IsString(v) ? v->valuestring : "(not text)", want[i]);
    }
}
#define EXPECT_INTS(a, ...) do { const int _w[] = {__VA_ARGS__}; expect_ints(__FILE__, __LINE__, a, _w, (int)(sizeof(_w) / sizeof(int))); } while (0)
#define EXPECT_STRS(a, ...) do { const char *const _w[] = {__VA_ARGS__}; expect_strs(__FILE__, __LINE__, a, _w, (int)(sizeof(_w) / sizeof(char *))); } while (0)

static const cJSON *at(const cJSON *j, const char *k) { return j ? cJSON_GetObjectItemCaseSensitive(j, k) : NULL; }

// ---- POPE ------------------------------------------------------------------------------------------

TEST(eval_pope_reference_parser_quirks) {
    // The rule of POPE/LLaVA/SeVa: first sentence, commas deleted, split on ' ', a token No/no/not -> no.
    EXPECT_INT_EQ(pope_parse_reference("No, there is not."), 0);
    EXPECT_INT_EQ(pope_parse_reference("No"), 0);
    EXPECT_INT_EQ(pope_parse_reference("no"), 0);
    EXPECT_INT_EQ(pope_parse_reference("There is not a dog in the image."), 0);
    EXPECT_INT_EQ(pope_parse_reference("not,"), 0);                   // the comma goes before the split
    EXPECT_INT_EQ(pope_parse_reference(" no"), 0);                    // "" and "no"
    EXPECT_INT_EQ(pope_parse_reference("NO"), 1);                     // case matters
    EXPECT_INT_EQ(pope_parse_reference("NOT"), 1);
    EXPECT_INT_EQ(pope_parse_reference("Nope"), 1);
    EXPECT_INT_EQ(pope_parse_reference("There isn't"), 1);            // contractions are not "not"
    EXPECT_INT_EQ(pope_parse_reference(""), 1);                       // empty reads as yes
    EXPECT_INT_EQ(pope_parse_reference("I cannot tell"), 1);
    EXPECT_INT_EQ(pope_parse_reference("Yes. No, not at all."), 1);   // only the first sentence counts
    EXPECT_INT_EQ(pope_parse_reference("No.\nYes"), 0);
    EXPECT_INT_EQ(pope_parse_reference("No\nthere is none"), 1);      // "No\nthere" is one token
    EXPECT_INT_EQ(pope_parse_reference("Not\tsure"), 1);              // tabs do not split either
    EXPECT_INT_EQ(pope_parse_reference("There is no."), 0);
    EXPECT_INT_EQ(pope_parse_reference("Yes, there is a dog."), 1);
}

TEST(eval_pope_strict_parser) {
    EXPECT_INT_EQ(pope_parse_strict("Yes"), 1);
    EXPECT_INT_EQ(pope_parse_strict("yes, there is a dog."), 1);
    EXPECT_INT_EQ(pope_parse_strict("YES!"), 1);
    EXPECT_INT_EQ(pope_parse_strict("No."), 0);
    EXPECT_INT_EQ(pope_parse_strict("NO"), 0);
    EXPECT_INT_EQ(pope_parse_strict("There is not a dog"), 0);
    EXPECT_INT_EQ(pope_parse_strict("There isn't"), 0);
    EXPECT_INT_EQ(pope_parse_strict("There isn\xE2\x80\x99t one"), 0);  // typographic apostrophe
    EXPECT_INT_EQ(pope_parse_strict(""), -1);
    EXPECT_INT_EQ(pope_parse_strict("I cannot tell"), -1);
    EXPECT_INT_EQ(pope_parse_strict("Nope"), -1);
    EXPECT_INT_EQ(pope_parse_strict("Yes and no"), -1);
    EXPECT_INT_EQ(pope_parse_strict("Yesterday"), -1);
    EXPECT_INT_EQ(pope_parse_strict("Yes, but it is not a dog"), -1);
}

TEST(eval_pope_metrics_by_hand) {
    //  i  label  answer              reference   strict
    //  0  yes    "Yes"               yes  TP     yes  TP
    //  1  yes    "yes"               yes  TP     yes  TP
    //  2  yes    "No"                no   FN     no   FN
    //  3  yes    "Maybe"             yes  TP     ?    unparseable (yes label)
    //  4  no     "No"                no   TN     no   TN
    //  5  no     "Yes"               yes  FP     yes  FP
    //  6  no     "There is no cat."  no   TN     no   TN
    //  7  no     "NO"                yes  FP     no   TN
    static const int labels[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    static const char *const answers[8] = {"Yes", "yes", "No", "Maybe", "No", "Yes", "There is no cat.", "NO"};
    PopeMetrics m;
    pope_score(labels, answers, 8, POPE_PARSER_REFERENCE, &m, NULL);
    // reference: TP 3, FP 2, TN 2, FN 1. accuracy 5/8; precision 3/5; recall 3/4;
    // F1 = 2 * 0.6 * 0.75 / (0.6 + 0.75) = 0.9 / 1.35 = 2/3; yes-ratio (3 + 2)/8 = 5/8.
    EXPECT_INT_EQ(m.n, 8);
    EXPECT_INT_EQ(m.tp, 3); EXPECT_INT_EQ(m.fp, 2); EXPECT_INT_EQ(m.tn, 2); EXPECT_INT_EQ(m.fn, 1);
    EXPECT_INT_EQ(m.unparseable, 1);       // "Maybe": strict cannot read it, reported anyway
    EXPECT_INT_EQ(m.unparseable_yes, 1);
    EXPECT_NEAR(m.accuracy, 5.0 / 8, 1e-12);
    EXPECT_NEAR(m.precision, 3.0 / 5, 1e-12);
    EXPECT_NEAR(m.recall, 3.0 / 4, 1e-12);
    EXPECT_NEAR(m.f1, 2.0 / 3, 1e-12);
    EXPECT_NEAR(m.yes_ratio, 5.0 / 8, 1e-12);

    pope_score(labels, answers, 8, POPE_PARSER_STRICT, &m, NULL);
    // strict: TP 2, FP 1, TN 3, FN 1, unparseable 1 (wrong). accuracy (2 + 3)/8 = 5/8; precision 2/3;
    // recall 2/4 (all four yes labels, the unparseable one included); F1 = 2 * (2/3)(1/2) / (2/3 + 1/2)
    // = (2/3) / (7/6) = 4/7; yes-ratio (2 + 1)/8 = 3/8.
    EXPECT_INT_EQ(m.tp, 2); EXPECT_INT_EQ(m.fp, 1); EXPECT_INT_EQ(m.tn, 3); EXPECT_INT_EQ(m.fn, 1);
    EXPECT_INT_EQ(m.unparseable, 1);
    EXPECT_NEAR(m.accuracy, 5.0 / 8, 1e-12);
    EXPECT_NEAR(m.precision, 2.0 / 3, 1e-12);
    EXPECT_NEAR(m.recall, 0.5, 1e-12);
    EXPECT_NEAR(m.f1, 4.0 / 7, 1e-12);
    EXPECT_NEAR(m.yes_ratio, 3.0 / 8, 1e-12);

    // Nothing predicted yes: precision and F1 are 0, not NaN.
    static const char *const nos[2] = {"No", "No"};
    pope_score(labels, nos, 2, POPE_PARSER_REFERENCE, &m, NULL);
    EXPECT_NEAR(m.precision, 0, 1e-12);
    EXPECT_NEAR(m.f1, 0, 1e-12);
    EXPECT_NEAR(m.accuracy, 0, 1e-12);
}

static const char *pope_questions =
    "{\"question_id\": 10, \"image\": \"a.jpg\", \"text\": \"Is there a dog in the image?\", \"label\": \"yes\"}\n"
    "{\"question_id\": 11, \"image\": \"a.jpg\", \"text\": \"Is there a cat in the image?\", \"label\": \"no\"}\n"
    "{\"question_id\": 12, \"image\": \"b.jpg\", \"text\": \"Is there a car in the image?\", \"label\": \"yes\"}\n"
    "{\"question_id\": 13, \"image\": \"b.jpg\", \"text\": \"Is there a bus in the image?\", \"label\": \"no\"}\n";

TEST(eval_pope_match_by_question_id_or_order) {
    char *q = test_write_tmp("pope_q.json", pope_questions);
    // Shuffled, with question ids: question 10 (yes) <- "Yes", 11 (no) <- "No", 12 (yes) <- "No",
    // 13 (no) <- "Yes". TP 1, TN 1, FN 1, FP 1: accuracy 1/2, precision 1/2, recall 1/2, yes-ratio 1/2.
    char *a_id = test_write_tmp("pope_a_id.jsonl",
                           "{\"index\": 3, \"question_id\": 13, \"text\": \"Yes\"}\n"
                           "{\"index\": 0, \"question_id\": 10, \"text\": \"Yes\"}\n"
                           "{\"index\": 2, \"question_id\": 12, \"text\": \"No\"}\n"
                           "{\"index\": 1, \"question_id\": \"11\", \"text\": \"No\"}\n");
    // The same answers in order without ids (matched by position): the same metrics.
    char *a_order = test_write_tmp("pope_a_order.jsonl",
                              "{\"index\": 0, \"text\": \"Yes\"}\n{\"index\": 1, \"text\": \"No\"}\n"
                              "{\"index\": 2, \"text\": \"No\"}\n{\"index\": 3, \"text\": \"Yes\"}\n");
    const char *files[2] = {a_id, a_order}, *how[2] = {"question_id", "order"};
    for (int k = 0; k < 2; k++) {
        PopeResult r;
        pope_eval_files(q, files[k], POPE_PARSER_REFERENCE, &r);
        EXPECT(!strcmp(match_mode_name((MatchMode)r.match), how[k]));
        EXPECT_INT_EQ(r.m.tp, 1); EXPECT_INT_EQ(r.m.tn, 1); EXPECT_INT_EQ(r.m.fn, 1); EXPECT_INT_EQ(r.m.fp, 1);
        EXPECT_NEAR(r.m.accuracy, 0.5, 1e-12);
        EXPECT(!strcmp(r.name, "pope_q"));
        pope_result_free(&r);

        char args[1024], *out, *err;
        snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", q, files[k]);
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        EXPECTF(strstr(out, how[k]) != NULL, "the table should say the answers were matched by %s:\n%s", how[k], out);
        free(out); free(err);
    }
    // In order mode an "index" out of place is caught (a shuffled file without question ids).
    char *a_shuffled = test_write_tmp("pope_a_shuffled.jsonl",
                                 "{\"index\": 0, \"text\": \"Yes\"}\n{\"index\": 2, \"text\": \"No\"}\n"
                                 "{\"index\": 1, \"text\": \"No\"}\n{\"index\": 3, \"text\": \"Yes\"}\n");
    char args[1024];
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", q, a_shuffled);
    expect_cli_error(args, "pope_a_shuffled.jsonl:2", "\"index\": 2", NULL);
    free(q); free(a_id); free(a_order); free(a_shuffled);
}

TEST(eval_pope_count_mismatch_and_duplicates) {
    char *q = test_write_tmp("pope_q2.json", pope_questions);
    char *three = test_write_tmp("pope_three.jsonl", "{\"text\": \"Yes\"}\n{\"text\": \"No\"}\n{\"text\": \"No\"}\n");
    char args[1024];
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", q, three);
    expect_cli_error(args, "pope_q2.json has 4 questions", "pope_three.jsonl has 3 answers", NULL);

    char *dup = test_write_tmp("pope_dup.jsonl",
                          "{\"question_id\": 10, \"text\": \"Yes\"}\n{\"question_id\": 11, \"text\": \"No\"}\n"
                          "{\"question_id\": 10, \"text\": \"No\"}\n{\"question_id\": 13, \"text\": \"No\"}\n");
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", q, dup);
    expect_cli_error(args, "pope_dup.jsonl: lines 1 and 3 both answer question_id 10", NULL);

    char *other = test_write_tmp("pope_other.jsonl",
                            "{\"question_id\": 10, \"text\": \"Yes\"}\n{\"question_id\": 11, \"text\": \"No\"}\n"
                            "{\"question_id\": 99, \"text\": \"No\"}\n{\"question_id\": 13, \"text\": \"No\"}\n");
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", q, other);
    expect_cli_error(args, "pope_q2.json:3: question_id 12 has no answer in", "pope_other.jsonl", NULL);

    char *notext = test_write_tmp("pope_notext.jsonl", "{\"index\": 0, \"ids\": [1, 2]}\n");
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", q, notext);
    expect_cli_error(args, "pope_notext.jsonl:1: no \"text\"", NULL);

    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s --parser fuzzy", q, three);
    expect_cli_error(args, "--parser must be reference or strict", NULL);
    snprintf(args, sizeof(args), "eval pope --questions %s --questions %s --answers %s", q, q, three);
    expect_cli_error(args, "2 --questions but 1 --answers", NULL);
    expect_cli_error("eval nosuch", "unknown benchmark 'nosuch'", NULL);
    free(q); free(three); free(dup); free(other); free(notext);
}

TEST(eval_pope_strict_cli_and_mean_row) {
    char *q = test_write_tmp("pope_q3.json", pope_questions);
    // split A: "Yes" "No" "Yes" "No" -> all right: accuracy 1, precision 1, recall 1, F1 1, yes-ratio 1/2.
    char *a = test_write_tmp("pope_a3.jsonl", "{\"text\": \"Yes\"}\n{\"text\": \"No\"}\n{\"text\": \"Yes\"}\n{\"text\": \"No\"}\n");
    // split B (strict): "Yes" TP, "Hmm" unparseable (no label: wrong), "I think so" unparseable (yes label),
    // "no" TN. accuracy 2/4; precision 1/1; recall 1/2; F1 = 2 * 1 * 0.5 / 1.5 = 2/3; yes-ratio 1/4.
    char *b = test_write_tmp("pope_b3.jsonl", "{\"text\": \"Yes\"}\n{\"text\": \"Hmm\"}\n{\"text\": \"I think so\"}\n{\"text\": \"no\"}\n");
    char *outp = path_join(test_tmpdir(), "pope3.json");
    char args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s --questions=%s --answers=%s --parser strict "
             "--suffix ' Please answer yes or no.' --out %s", q, a, q, b, outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECT(strstr(out, "mean") != NULL);
    cJSON *j = read_json(outp);
    if (j) {
        cJSON *splits = cJSON_GetObjectItemCaseSensitive(j, "splits");
        EXPECT_INT_EQ(cJSON_GetArraySize(splits), 2);
        cJSON *s1 = cJSON_GetArrayItem(splits, 1);
        EXPECT_NEAR(num(s1, "accuracy", NULL), 0.5, 1e-12);
        EXPECT_NEAR(num(s1, "precision", NULL), 1.0, 1e-12);
        EXPECT_NEAR(num(s1, "recall", NULL), 0.5, 1e-12);
        EXPECT_NEAR(num(s1, "f1", NULL), 2.0 / 3, 1e-12);
        EXPECT_NEAR(num(s1, "yes_ratio", NULL), 0.25, 1e-12);
        EXPECT_NEAR(num(s1, "unparseable", NULL), 2, 1e-12);
        EXPECT_NEAR(num(s1, "unparseable_yes_label", NULL), 1, 1e-12);
        // mean row: the rates averaged over the two splits, counts summed.
        // accuracy (1 + 1/2)/2 = 3/4; precision (1 + 1)/2 = 1; recall (1 + 1/2)/2 = 3/4;
        // F1 (1 + 2/3)/2 = 5/6; yes-ratio (1/2 + 1/4)/2 = 3/8; n 8; unparseable 2.
        EXPECT_NEAR(num(j, "mean", "accuracy", NULL), 0.75, 1e-12);
        EXPECT_NEAR(num(j, "mean", "precision", NULL), 1.0, 1e-12);
        EXPECT_NEAR(num(j, "mean", "recall", NULL), 0.75, 1e-12);
        EXPECT_NEAR(num(j, "mean", "f1", NULL), 5.0 / 6, 1e-12);
        EXPECT_NEAR(num(j, "mean", "yes_ratio", NULL), 3.0 / 8, 1e-12);
        EXPECT_NEAR(num(j, "mean", "n", NULL), 8, 1e-12);
        EXPECT_NEAR(num(j, "mean", "unparseable", NULL), 2, 1e-12);
        cJSON *suffix = cJSON_GetObjectItemCaseSensitive(j, "prompt_suffix");
        EXPECT(cJSON_IsString(suffix) && !strcmp(suffix->valuestring, " Please answer yes or no."));
        EXPECT(!strcmp(cJSON_GetObjectItemCaseSensitive(j, "parser")->valuestring, "strict"));
        cJSON_Delete(j);
    }
    free(out); free(err); free(q); free(a); free(b); free(outp);
}

TEST(eval_pope_real_files_all_yes) {
    // The released POPE splits (3,000 questions each, 1,500 labelled yes) against an answer file that says
    // "Yes" to everything: TP 1500, FP 1500, TN 0, FN 0 -> recall 1, precision 1/2, yes-ratio 1,
    // accuracy 1/2, F1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    static const char *splits[] = {"random", "popular", "adversarial"};
    char args[4096] = "eval pope";
    for (int s = 0; s < 3; s++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "benchmarks/pope/coco_pope_%s.json", splits[s]);
        char *path = path_join(test_shared_data(), rel);
        if (!file_exists(path)) { test_fail(__FILE__, __LINE__, "%s is missing", path); free(path); return; }
        char name[64];
        snprintf(name, sizeof(name), "all_yes_%s.jsonl", splits[s]);
        char *ans = path_join(test_tmpdir(), name);
        FILE *f = fopen(ans, "w");
        for (int i = 0; i < 3000; i++) fprintf(f, "{\"index\": %d, \"text\": \"Yes\"}\n", i);
        fclose(f);
        PopeResult r;
        pope_eval_files(path, ans, POPE_PARSER_REFERENCE, &r);
        EXPECT_INT_EQ(r.m.n, 3000);
        EXPECT_INT_EQ(r.m.tp, 1500); EXPECT_INT_EQ(r.m.fp, 1500); EXPECT_INT_EQ(r.m.tn, 0); EXPECT_INT_EQ(r.m.fn, 0);
        EXPECT_NEAR(r.m.recall, 1.0, 1e-12);
        EXPECT_NEAR(r.m.precision, 0.5, 1e-12);
        EXPECT_NEAR(r.m.yes_ratio, 1.0, 1e-12);
        EXPECT_NEAR(r.m.accuracy, 0.5, 1e-12);
        EXPECT_NEAR(r.m.f1, 2.0 / 3, 1e-12);
        EXPECT_INT_EQ(r.m.unparseable, 0);
        EXPECT_INT_EQ(r.typo_imange, 0);  // POPE HEAD, after the spelling fix
        EXPECT_INT_EQ(r.match, MATCH_BY_ORDER);
        pope_result_free(&r);
        size_t len = strlen(args);
        snprintf(args + len, sizeof(args) - len, " --questions %s --answers %s", path, ans);
        free(path); free(ans);
    }
    char *outp = path_join(test_tmpdir(), "pope_real.json"), *out, *err;
    size_t len = strlen(args);
    snprintf(args + len, sizeof(args) - len, " --out %s", outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    cJSON *j = read_json(outp);
    if (j) {
        EXPECT_NEAR(num(j, "mean", "recall", NULL), 1.0, 1e-12);
        EXPECT_NEAR(num(j, "mean", "precision", NULL), 0.5, 1e-12);
        EXPECT_NEAR(num(j, "mean", "yes_ratio", NULL), 1.0, 1e-12);
        EXPECT_NEAR(num(j, "mean", "n", NULL), 9000, 1e-12);
        cJSON_Delete(j);
    }
    free(outp); free(out); free(err);
}

// ---- text ------------------------------------------------------------------------------------------

TEST(eval_text_words) {
    Words ws;
    words_init(&ws);
    text_words("A man's T-shirt, two Hot-Dogs... and 3 café chairs!", &ws);
    static const char *const want[] = {"a", "man", "s", "t-shirt", "two", "hot-dogs", "and", "3", "caf\xC3\xA9", "chairs"};
    EXPECT_INT_EQ(ws.n, 10);
    for (int i = 0; i < ws.n && i < 10; i++) EXPECTF(!strcmp(ws.w[i], want[i]), "word %d = '%s', expected '%s'", i, ws.w[i], want[i]);
    words_free(&ws);
    text_words("  -- - ", &ws);
    EXPECT_INT_EQ(ws.n, 0);
    words_free(&ws);
}

TEST(eval_singularizer_pairs) {
    static const char *const pairs[][2] = {
        // irregular
        {"people", "person"}, {"men", "man"}, {"women", "woman"}, {"children", "child"}, {"mice", "mouse"},
        {"geese", "goose"}, {"feet", "foot"}, {"teeth", "tooth"}, {"oxen", "ox"}, {"knives", "knife"},
        {"wives", "wife"}, {"leaves", "leaf"}, {"thieves", "thief"}, {"cacti", "cactus"},
        // compounds
        {"policemen", "policeman"}, {"gentlemen", "gentleman"}, {"snowmen", "snowman"},
        {"grandchildren", "grandchild"}, {"pocketknives", "pocketknife"}, {"minibuses", "minibus"},
        {"townspeople", "townsperson"}, {"businesswomen", "businesswoman"},
        // -men words that are singular
        {"specimen", "specimen"}, {"ramen", "ramen"}, {"abdomen", "abdomen"},
        // -ies
        {"puppies", "puppy"}, {"cherries", "cherry"}, {"skies", "sky"}, {"babies", "baby"}, {"ladies", "lady"},
        {"teddies", "teddy"}, {"ties", "tie"}, {"pies", "pie"}, {"movies", "movie"}, {"cookies", "cookie"},
        {"collies", "collie"}, {"doggies", "doggie"}, {"magpies", "magpie"}, {"lorries", "lorry"},
        // -ves
        {"shelves", "shelf"}, {"calves", "calf"}, {"wolves", "wolf"}, {"halves", "half"}, {"scarves", "scarf"},
        {"olives", "olive"}, {"gloves", "glove"}, {"stoves", "stove"}, {"valves", "valve"}, {"solves", "solve"},
        // -es after sibilants
        {"glasses", "glass"}, {"buses", "bus"}, {"boxes", "box"}, {"dishes", "dish"}, {"benches", "bench"},
        {"sandwiches", "sandwich"}, {"couches", "couch"}, {"toothbrushes", "toothbrush"}, {"foxes", "fox"},
        {"dresses", "dress"}, {"buzzes", "buzz"}, {"niches", "niche"}, {"moustaches", "moustache"},
        // -ses / -zes that keep their e
        {"horses", "horse"}, {"vases", "vase"}, {"suitcases", "suitcase"}, {"houses", "house"},
        {"purses", "purse"}, {"prizes", "prize"}, {"lenses", "lens"},
        // -oes
        {"tomatoes", "tomato"}, {"potatoes", "potato"}, {"heroes", "hero"}, {"shoes", "shoe"},
        {"canoes", "canoe"}, {"toes", "toe"},
        // plain -s
        {"dogs", "dog"}, {"cats", "cat"}, {"bikes", "bike"}, {"plates", "plate"}, {"bananas", "banana"},
        {"donuts", "donut"}, {"boys", "boy"}, {"keys", "key"}, {"tvs", "tv"}, {"photos", "photo"},
        {"kangaroos", "kangaroo"}, {"trees", "tree"}, {"skis", "ski"}, {"taxis", "taxi"}, {"kiwis", "kiwi"},
        {"zebus", "zebu"}, {"menus", "menu"}, {"giraffes", "giraffe"}, {"remotes", "remote"},
        // words that stay
        {"glass", "glass"}, {"grass", "grass"}, {"bus", "bus"}, {"gas", "gas"}, {"cactus", "cactus"},
        {"octopus", "octopus"}, {"asparagus", "asparagus"}, {"tennis", "tennis"}, {"iris", "iris"},
        {"analysis", "analysis"}, {"this", "this"}, {"is", "is"}, {"scissors", "scissors"}, {"pants", "pants"},
        {"jeans", "jeans"}, {"news", "news"}, {"series", "series"}, {"species", "species"}, {"sheep", "sheep"},
        {"deer", "deer"}, {"fish", "fish"}, {"dog", "dog"}, {"person", "person"}, {"a", "a"}, {"various", "various"},
        {"delicious", "delicious"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char *s = text_singular(pairs[i][0]);
        EXPECTF(!strcmp(s, pairs[i][1]), "singular(%s) = %s, expected %s", pairs[i][0], s, pairs[i][1]);
        free(s);
    }
}

// ---- CHAIR -----------------------------------------------------------------------------------------

// A small world: five classes, synonyms, a two-word class and a two-word synonym.
static const char *small_synonyms =
    "# a comment line\n"
    "person, man, woman, people, child, baby\n"
    "dog, puppy, doggie\n"
    "hot dog\n"
    "dining table, table, desk\n"
    "cell phone, mobile phone, phone,  smartphone \n"
    "\n";

static void mentions_are(const ChairVocab *v, const char *caption, const char *const *want, int n_want) {
    ChairMentions m;
    chair_mentions(v, caption, &m);
    EXPECTF(m.n == n_want, "'%s': %d mentions, expected %d", caption, m.n, n_want);
    for (int i = 0; i < m.n && i < n_want; i++)
        EXPECTF(!strcmp(v->classes[m.classes[i]], want[i]), "'%s': mention %d is %s (%s), expected %s", caption, i,
                v->classes[m.classes[i]], m.words[i], want[i]);
    chair_mentions_free(&m);
}

TEST(eval_chair_mentions_small_vocabulary) {
    char *syn = test_write_tmp("small_syn.txt", small_synonyms);
    ChairVocab v;
    chair_vocab_load(&v, syn, 1);
    EXPECT_INT_EQ(v.n_classes, 5);
    EXPECT(!strcmp(v.classes[4], "cell phone"));
    EXPECT_INT_EQ(chair_class_of(&v, "Puppies"), 1);
    EXPECT_INT_EQ(chair_class_of(&v, "smartphone"), 4);   // spaces around entries trimmed
    EXPECT_INT_EQ(chair_class_of(&v, "cat"), -1);
    {   // plurals and synonyms; every mention counts, repeats included
        const char *w[] = {"person", "dog", "dog", "person"};
        mentions_are(&v, "Two men walk their puppies; the dogs love people.", w, 4);
    }
    {   // two-word class: "hot dogs" is one hot dog, not a dog
        const char *w[] = {"hot dog", "dining table"};
        mentions_are(&v, "Hot dogs on a table.", w, 2);
    }
    {   // two-word synonym, and its second word alone ("phone") is also a synonym
        const char *w[] = {"cell phone", "cell phone"};
        mentions_are(&v, "A mobile phone next to another phone.", w, 2);
    }
    {   // COCO rule: "baby dog" is a dog, not a baby (person)
        const char *w[] = {"dog", "person"};
        mentions_are(&v, "A baby dog and a baby.", w, 2);
    }
    chair_vocab_free(&v);
    chair_vocab_load(&v, syn, 0);
    {   // without the COCO rules "baby dog" is a baby and a dog
        const char *w[] = {"person", "dog"};
        mentions_are(&v, "A baby dog.", w, 2);
    }
    chair_vocab_free(&v);
    free(syn);
}

TEST(eval_chair_coco_synonyms) {
    ChairVocab v;
    chair_vocab_load(&v, "eval/data/coco_synonyms.txt", 1);
    EXPECT_INT_EQ(v.n_classes, 80);
    EXPECT(!strcmp(v.classes[0], "person"));
    EXPECT(!strcmp(v.classes[79], "toothbrush"));
    {
        const char *w[] = {"person", "motorcycle", "fire hydrant"};
        mentions_are(&v, "Two men riding motor bikes past a fire hydrant.", w, 3);
    }
    {   // baby elephant -> elephant (not person); toilet seat -> toilet
        const char *w[] = {"elephant", "toilet"};
        mentions_are(&v, "A baby elephant next to a toilet seat.", w, 2);
    }
    {   // "seat" with "toilet" elsewhere in the caption is dropped (not a chair)
        const char *w[] = {"toilet"};
        mentions_are(&v, "The seat of the toilet is up.", w, 1);
    }
    {   // bow tie -> tie; wine glasses -> wine glass; teddy bears -> teddy bear (not bear)
        const char *w[] = {"person", "tie", "wine glass", "teddy bear"};
        mentions_are(&v, "A gentleman in a bow tie holds wine glasses and teddy bears.", w, 4);
    }
    {
        const char *w[] = {"knife", "fork", "skis", "mouse", "person", "cell phone", "motorcycle", "cake"};
        mentions_are(&v, "Knives, forks, skis, mice, children, cell phones, a scooter and a cheesecake.", w, 8);
    }
    {   // entries lowercased: the original never matches "iPhone"
        const char *w[] = {"cell phone"};
        mentions_are(&v, "An iPhone.", w, 1);
    }
    chair_vocab_free(&v);
}

TEST(eval_chair_metrics_by_hand) {
    char *syn = test_write_tmp("chair_syn.txt", small_synonyms);
    // Ground truth: image 1 has a person and a dog; image 2 a dining table; image 3 nothing.
    char *gt = test_write_tmp("chair_gt.json", "{\"1\": [\"person\", \"dogs\"], \"2\": [\"table\"], \"3\": []}");
    // caption 1 (image 1): "A man and his puppy and another dog." mentions person, dog, dog: all grounded.
    //                      8 words. GT {person, dog}: both mentioned.
    // caption 2 (image 2): "Hot dogs and a phone on a desk." mentions hot dog (hallucinated), cell phone
    //                      (hallucinated), dining table: 3 mentions, 2 hallucinated. 8 words. GT {table}: 1 mentioned.
    // caption 3 (image 3): "An empty room." no mentions. 3 words. GT {}.
    // caption 4 (image 1): "People." mentions person. 1 word. GT {person, dog}: 1 mentioned.
    // CHAIR_s = 1 hallucinating caption / 4 = 0.25; CHAIR_i = 2 hallucinated / 7 mentions;
    // recall = (2 + 1 + 0 + 1) / (2 + 1 + 0 + 2) = 4/5; avg_len = (8 + 8 + 3 + 1)/4 = 5.
    char *caps = test_write_tmp("chair_caps.jsonl",
                           "{\"index\": 0, \"image_id\": 1, \"text\": \"A man and his puppy and another dog.\"}\n"
                           "{\"index\": 1, \"image_id\": \"2\", \"text\": \"Hot dogs and a phone on a desk.\"}\n"
                           "{\"index\": 2, \"image\": \"imgs/3.jpg\", \"text\": \"An empty room.\"}\n"
                           "{\"index\": 3, \"image_id\": 1, \"text\": \"People.\"}\n");
    char *outp = path_join(test_tmpdir(), "chair.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval chair --captions %s --objects %s --synonyms %s --out %s", caps, gt, syn, outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    cJSON *j = read_json(outp);
    if (j) {
        EXPECT_NEAR(num(j, "metrics", "chair_s", NULL), 0.25, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "chair_i", NULL), 2.0 / 7, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "recall", NULL), 0.8, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "avg_len", NULL), 5.0, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "mentions", NULL), 7, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "hallucinated_mentions", NULL), 2, 1e-12);
        cJSON *per = cJSON_GetObjectItemCaseSensitive(j, "per_caption");
        EXPECT_INT_EQ(cJSON_GetArraySize(per), 4);
        cJSON *c2 = cJSON_GetArrayItem(per, 1);
        EXPECT_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c2, "hallucinated")), 2);
        EXPECT_NEAR(num(c2, "chair_i", NULL), 2.0 / 3, 1e-12);
        cJSON *c3 = cJSON_GetArrayItem(per, 2);
        EXPECT(!strcmp(cJSON_GetObjectItemCaseSensitive(c3, "image")->valuestring, "3"));  // from imgs/3.jpg
        // per caption for vlm eval table: no questions file, so the ids are the positions
        EXPECT_STRS(at(at(j, "items"), "ids"), "0", "1", "2", "3");
        EXPECT_INTS(at(at(j, "items"), "mentions"), 3, 3, 0, 1);
        EXPECT_INTS(at(at(j, "items"), "hallucinated"), 0, 2, 0, 0);
        cJSON_Delete(j);
    }
    free(out); free(err);

    // The same captions without image fields, images taken from a questions file matched by question_id.
    char *caps2 = test_write_tmp("chair_caps2.jsonl",
                            "{\"question_id\": \"q4\", \"text\": \"People.\"}\n"
                            "{\"question_id\": \"q1\", \"text\": \"A man and his puppy and another dog.\"}\n"
                            "{\"question_id\": \"q2\", \"text\": \"Hot dogs and a phone on a desk.\"}\n"
                            "{\"question_id\": \"q3\", \"text\": \"An empty room.\"}\n");
    char *qs = test_write_tmp("chair_q.jsonl",
                         "{\"question_id\": \"q1\", \"image\": \"/coco/COCO_val2014_000000000001.jpg\", \"prompt\": \"Describe.\"}\n"
                         "{\"question_id\": \"q2\", \"image_id\": 2}\n"
                         "{\"question_id\": \"q3\", \"image_id\": 3}\n"
                         "{\"question_id\": \"q4\", \"image_id\": 1}\n");
    snprintf(args, sizeof(args), "eval chair --captions %s --questions %s --objects %s --synonyms %s --out %s", caps2, qs, gt, syn, outp);
    rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "by question_id") != NULL, "%s", out);
    j = read_json(outp);
    if (j) {
        EXPECT_NEAR(num(j, "metrics", "chair_s", NULL), 0.25, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "chair_i", NULL), 2.0 / 7, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "recall", NULL), 0.8, 1e-12);
        // matched to questions: the ids are the question ids, in caption order
        EXPECT_STRS(at(at(j, "items"), "ids"), "q4", "q1", "q2", "q3");
        EXPECT_INTS(at(at(j, "items"), "hallucinated"), 0, 0, 2, 0);
        cJSON_Delete(j);
    }
    free(out); free(err);

    // Errors: an image without ground truth (naming the line), a ground-truth object outside the vocabulary.
    char *caps3 = test_write_tmp("chair_caps3.jsonl", "{\"image_id\": 1, \"text\": \"A dog.\"}\n{\"image_id\": 7, \"text\": \"A dog.\"}\n");
    snprintf(args, sizeof(args), "eval chair --captions %s --objects %s --synonyms %s", caps3, gt, syn);
    expect_cli_error(args, "chair_caps3.jsonl:2: no ground-truth objects", "\"7\"", NULL);
    char *gt_bad = test_write_tmp("chair_gt_bad.json", "{\"1\": [\"person\", \"unicorn\"]}");
    snprintf(args, sizeof(args), "eval chair --captions %s --objects %s --synonyms %s", caps3, gt_bad, syn);
    expect_cli_error(args, "chair_gt_bad.json: image \"1\": object \"unicorn\" is not in the synonyms file", NULL);
    char *caps4 = test_write_tmp("chair_caps4.jsonl", "{\"text\": \"A dog.\"}\n");
    snprintf(args, sizeof(args), "eval chair --captions %s --objects %s --synonyms %s", caps4, gt, syn);
    expect_cli_error(args, "chair_caps4.jsonl:1: the caption names no image", "--questions", NULL);
    free(syn); free(gt); free(caps); free(caps2); free(caps3); free(caps4); free(qs); free(gt_bad); free(outp);
}

TEST(eval_chair_coco_instances_and_captions) {
    // COCO-format ground truth: image 5 has a dog (category 18); image 6 has no annotation but is listed.
    // Reference captions add objects for image 6 ("a man on a bench" -> person, bench).
    char *inst = test_write_tmp("instances.json",
                           "{\"images\": [{\"id\": 5}, {\"id\": 6}], \"categories\": [{\"id\": 1, \"name\": \"person\"},"
                           " {\"id\": 18, \"name\": \"dog\"}, {\"id\": 15, \"name\": \"bench\"}],"
                           " \"annotations\": [{\"image_id\": 5, \"category_id\": 18}]}");
    char *refs = test_write_tmp("captions.json", "{\"annotations\": [{\"image_id\": 6, \"caption\": \"A man on a bench.\"},"
                                            " {\"image_id\": 99, \"caption\": \"A cat.\"}]}");
    // caption (5): "A dog and a cat." -> dog grounded, cat hallucinated. caption (6): "A woman sits on a bench."
    // -> person, bench, both grounded thanks to the reference captions. CHAIR_i = 1/4, CHAIR_s = 1/2,
    // recall = (1 + 2) / (1 + 2) = 1.
    char *caps = test_write_tmp("coco_caps.jsonl",
                           "{\"image\": \"COCO_val2014_000000000005.jpg\", \"text\": \"A dog and a cat.\"}\n"
                           "{\"image_id\": 6, \"text\": \"A woman sits on a bench.\"}\n");
    char *outp = path_join(test_tmpdir(), "chair_coco.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval chair --captions %s --objects %s --gt-captions %s --synonyms eval/data/coco_synonyms.txt --out %s",
             caps, inst, refs, outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    cJSON *j = read_json(outp);
    if (j) {
        EXPECT_NEAR(num(j, "metrics", "chair_i", NULL), 0.25, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "chair_s", NULL), 0.5, 1e-12);
        EXPECT_NEAR(num(j, "metrics", "recall", NULL), 1.0, 1e-12);
        cJSON_Delete(j);
    }
    free(out); free(err); free(inst); free(refs); free(caps); free(outp);
}

// ---- MMVP ------------------------------------------------------------------------------------------

TEST(eval_csv_reader) {
    CsvFile c;
    csv_parse(&c, "t.csv",
              "\xEF\xBB\xBFIndex,Question,Options,Correct Answer\r\n"
              "1,\"Is it open, or closed?\",(a) Open (b) Closed,(a)\r\n"
              "\r\n"
              "2,\"She said \"\"hi\"\"\",\"(a) one\nline (b) two\",(b)\n"
              "3,,x,\n"
              "4,last,no newline,(a)");
    EXPECT_INT_EQ(c.n, 5);
    EXPECT_INT_EQ(csv_column(&c, "correct answer"), 3);
    EXPECT_INT_EQ(csv_column(&c, "Index"), 0);      // the byte-order mark is not part of the name
    EXPECT_INT_EQ(csv_column(&c, "Nope"), -1);
    EXPECT(!strcmp(c.rows[1].f[1], "Is it open, or closed?"));
    EXPECT_INT_EQ(c.rows[1].line, 2);
    EXPECT(!strcmp(c.rows[2].f[1], "She said \"hi\""));
    EXPECT(!strcmp(c.rows[2].f[2], "(a) one\nline (b) two"));
    EXPECT_INT_EQ(c.rows[2].line, 4);
    EXPECT_INT_EQ(c.rows[3].line, 6);                // the quoted newline counted
    EXPECT_INT_EQ(c.rows[3].n, 4);
    EXPECT(!strcmp(c.rows[3].f[1], "") && !strcmp(c.rows[3].f[3], ""));
    EXPECT(!strcmp(c.rows[4].f[3], "(a)"));
    csv_free(&c);
}

TEST(eval_mmvp_graders) {
    ChoiceOptions o;
    choice_options_parse("(a) Open (b) Closed", &o);
    EXPECT_INT_EQ(o.n_options, 2);
    EXPECT(o.letters[0] == 'a' && o.letters[1] == 'b');
    EXPECT(!strcmp(o.texts[0], "Open") && !strcmp(o.texts[1], "Closed"));
    // S-VCO's first-4 rule: the first 4 characters, parentheses and spaces removed, equal the cleaned label.
    EXPECT(choice_first4_correct("(a) Open", "(a)"));      // "(a) " -> "a"
    EXPECT(choice_first4_correct("A", "(a)"));
    EXPECT(choice_first4_correct("  (A)", "(a)"));
    EXPECT(!choice_first4_correct("a. Open", "(a)"));      // "a.op" -> "a.op"
    EXPECT(!choice_first4_correct("The answer is (a)", "(a)"));
    EXPECT(!choice_first4_correct("(b)", "(a)"));
    EXPECT(!choice_first4_correct("Open", "(a)"));
    // the letter rule
    EXPECT(choice_parse_letter("(a) Open", &o) == 'a');
    EXPECT(choice_parse_letter("The answer is (b).", &o) == 'b');
    EXPECT(choice_parse_letter("B", &o) == 'b');
    EXPECT(choice_parse_letter(" b. ", &o) == 'b');
    EXPECT(choice_parse_letter("A. Open", &o) == 'a');
    EXPECT(choice_parse_letter("b) Closed", &o) == 'b');
    EXPECT(choice_parse_letter("The answer is B", &o) == 'b');
    EXPECT(choice_parse_letter("Option A is right", &o) == 'a');
    EXPECT(choice_parse_letter("The wings are closed.", &o) == 'b');
    EXPECT(choice_parse_letter("A butterfly with open wings", &o) == 'a');  // the article is not option A
    EXPECT(choice_parse_letter("(a) or (b)", &o) == 0);                     // ambiguous
    EXPECT(choice_parse_letter("Open or closed, hard to say", &o) == 0);
    EXPECT(choice_parse_letter("", &o) == 0);
    EXPECT(choice_parse_letter("Reopened", &o) == 0);                       // whole words only
    choice_options_free(&o);
}

TEST(eval_mmvp_pairs_by_hand) {
    char *csv = test_write_tmp("Questions.csv",
                          "Index,Question,Options,Correct Answer\n"
                          "1,Are the wings open or closed?,(a) Open (b) Closed,(a)\n"
                          "2,Are the wings open or closed?,(a) Open (b) Closed,(b)\n"
                          "3,\"Is the dog facing left, or right?\",\"(a) Left (b) Right\",(b)\n"
                          "4,\"Is the dog facing left, or right?\",\"(a) Left (b) Right\",(a)\n");
    //  Index  label  answer              first4       letter
    //  1      (a)    "(a) Open"          right        a right
    //  2      (b)    "The answer is (b)" wrong        b right
    //  3      (b)    "b"                 right        b right
    //  4      (a)    "Right"             wrong ("rig") b wrong
    // first4: 2/4 right; pair 1 (1,2) wrong, pair 2 (3,4) wrong -> pair accuracy 0/2.
    // letter: 3/4 right; pair 1 right, pair 2 wrong -> pair accuracy 1/2. Unparseable (letter rule): 0.
    char *ans = test_write_tmp("mmvp_ans.jsonl",
                          "{\"question_id\": 2, \"text\": \"The answer is (b)\"}\n"
                          "{\"question_id\": 1, \"text\": \"(a) Open\"}\n"
                          "{\"question_id\": 4, \"text\": \"Right\"}\n"
                          "{\"question_id\": 3, \"text\": \"b\"}\n");
    static const char *rules[2] = {"first4", "letter"};
    static const double acc[2] = {0.5, 0.75}, pair_acc[2] = {0.0, 0.5};
    for (int r = 0; r < 2; r++) {
        char *outp = path_join(test_tmpdir(), "mmvp.json"), args[2048], *out, *err;
        snprintf(args, sizeof(args), "eval mmvp --questions %s --answers %s --rule %s --out %s", csv, ans, rules[r], outp);
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        EXPECTF(strstr(out, "question_id") != NULL, "%s", out);
        cJSON *j = read_json(outp);
        if (j) {
            EXPECT_NEAR(num(j, "metrics", "accuracy", NULL), acc[r], 1e-12);
            EXPECT_NEAR(num(j, "metrics", "pair_accuracy", NULL), pair_acc[r], 1e-12);
            EXPECT_NEAR(num(j, "metrics", "pairs", NULL), 2, 1e-12);
            EXPECT_NEAR(num(j, "metrics", "unparseable", NULL), 0, 1e-12);
            // per pair (Index 1-2, 3-4): questions right and both right
            EXPECT_STRS(at(at(j, "items"), "ids"), "1", "3");
            if (r == 0) { EXPECT_INTS(at(at(j, "items"), "right"), 1, 1); EXPECT_INTS(at(at(j, "items"), "correct"), 0, 0); }
            else { EXPECT_INTS(at(at(j, "items"), "right"), 2, 1); EXPECT_INTS(at(at(j, "items"), "correct"), 1, 0); }
            cJSON_Delete(j);
        }
        free(out); free(err); free(outp);
    }
    // an odd number of rows cannot form pairs; a label that is no option fails the letter rule
    char *odd = test_write_tmp("odd.csv", "Index,Question,Options,Correct Answer\n1,Q?,(a) x (b) y,(a)\n");
    char args[2048];
    snprintf(args, sizeof(args), "eval mmvp --questions %s --answers %s", odd, ans);
    expect_cli_error(args, "odd.csv: 1 questions, an odd number", NULL);
    char *bad = test_write_tmp("badlabel.csv", "Index,Question,Options,Correct Answer\n1,Q?,(a) x (b) y,(c)\n2,Q?,(a) x (b) y,(a)\n");
    char *ans2 = test_write_tmp("mmvp_ans2.jsonl", "{\"text\": \"a\"}\n{\"text\": \"a\"}\n");
    snprintf(args, sizeof(args), "eval mmvp --questions %s --answers %s --rule letter", bad, ans2);
    expect_cli_error(args, "badlabel.csv:2: the correct answer \"(c)\" is not one of the options", NULL);
    snprintf(args, sizeof(args), "eval mmvp --questions %s --answers %s", csv, ans2);
    expect_cli_error(args, "Questions.csv has 4 questions", "mmvp_ans2.jsonl has 2 answers", NULL);
    free(csv); free(ans); free(odd); free(bad); free(ans2);
}

// ---- QA ----------------------------------------------------------------------------------------------

TEST(eval_qa_rules) {
    EXPECT(qa_correct("Red.", "red", QA_RULE_EXACT));
    EXPECT(qa_correct("The circle", "circle", QA_RULE_EXACT));
    EXPECT(qa_correct("top left", "Top-left", QA_RULE_EXACT) == 0);  // a hyphen joins words: "top-left" is one
    EXPECT(!qa_correct("It is red.", "red", QA_RULE_EXACT));
    EXPECT(qa_correct("It is red.", "red", QA_RULE_CONTAINS));
    EXPECT(qa_correct("at the top left.", "top left", QA_RULE_CONTAINS));
    EXPECT(!qa_correct("left top", "top left", QA_RULE_CONTAINS));
    EXPECT(!qa_correct("reddish", "red", QA_RULE_CONTAINS));          // whole words only
    EXPECT(!qa_correct("anything", "", QA_RULE_CONTAINS));            // an empty answer is never matched
}

TEST(eval_qa_cli_by_type) {
    char *q = test_write_tmp("qa_q.jsonl", "{\"question_id\": 1, \"type\": \"color\", \"answer\": \"red\"}\n"
                                      "{\"question_id\": 2, \"type\": \"count\", \"answer\": \"2\"}\n"
                                      "{\"question_id\": 3, \"type\": \"color\", \"answer\": \"blue\"}\n"
                                      "{\"question_id\": 4, \"type\": \"count\", \"answer\": \"3\"}\n");
    // answers out of order, matched by question_id: 1 right, 2 right, 3 wrong, 4 right only with contains
    char *a = test_write_tmp("qa_a.jsonl", "{\"question_id\": 3, \"text\": \"Green.\"}\n{\"question_id\": 1, \"text\": \"Red.\"}\n"
                                      "{\"question_id\": 4, \"text\": \"There are 3.\"}\n{\"question_id\": 2, \"text\": \"2\"}\n");
    char *o = path_join(test_tmpdir(), "qa.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s --out %s", q, a, o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    free(out); free(err);
    cJSON *j = read_json(o);
    EXPECT_NEAR(num(j, "metrics", "accuracy", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by_type", "color", "accuracy", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by_type", "count", "accuracy", NULL), 0.5, 1e-12);
    EXPECT_STRS(at(at(at(j, "items"), "by"), "type"), "color", "count", "color", "count");  // without --by type
    cJSON_Delete(j);
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s --rule contains --out %s", q, a, o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    free(out); free(err);
    j = read_json(o);
    EXPECT_NEAR(num(j, "metrics", "accuracy", NULL), 0.75, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by_type", "count", "n", NULL), 2, 0);
    cJSON_Delete(j);
    char *bad = test_write_tmp("qa_bad.jsonl", "{\"question_id\": 1, \"answer\": 5}\n");
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s", bad, a);
    expect_cli_error(args, "qa_bad.jsonl:1", "answer", NULL);
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s --rule fuzzy", q, a);
    expect_cli_error(args, "--rule", "fuzzy", NULL);
    free(q); free(a); free(o); free(bad);
}

// ---- per-question items and breakdowns ------------------------------------------------------------------

TEST(eval_pope_items_and_breakdown_by_field) {
    // five questions with the synthetic world's extra fields
    char *q = test_write_tmp("pope_by.jsonl",
        "{\"question_id\": 1, \"image\": \"a.png\", \"text\": \"Is there a red circle?\", \"label\": \"yes\", \"difficulty\": \"easy\"}\n"
        "{\"question_id\": 2, \"image\": \"a.png\", \"text\": \"Is there a blue square?\", \"label\": \"no\", \"difficulty\": \"hard\", \"negative\": \"partner\"}\n"
        "{\"question_id\": 3, \"image\": \"a.png\", \"text\": \"Is there a star?\", \"label\": \"no\", \"difficulty\": \"easy\", \"negative\": \"random\"}\n"
        "{\"question_id\": 4, \"image\": \"b.png\", \"text\": \"Is there a cross?\", \"label\": \"yes\", \"difficulty\": \"hard\"}\n"
        "{\"question_id\": 5, \"image\": \"b.png\", \"text\": \"Is there a circle?\", \"label\": \"no\", \"difficulty\": \"hard\", \"negative\": \"partner\"}\n");
    // answers out of order: 1 Yes (TP), 2 Yes (FP), 3 No (TN), 4 No (FN), 5 No (TN)
    char *a = test_write_tmp("pope_by_a.jsonl",
        "{\"question_id\": 4, \"text\": \"No.\"}\n{\"question_id\": 1, \"text\": \"Yes.\"}\n{\"question_id\": 2, \"text\": \"Yes\"}\n"
        "{\"question_id\": 5, \"text\": \"No\"}\n{\"question_id\": 3, \"text\": \"No\"}\n");
    char *o = path_join(test_tmpdir(), "pope_by.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s --by negative --by=difficulty --out %s", q, a, o);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "by negative") && strstr(out, "partner") && strstr(out, "by difficulty"), "%s", out);
    cJSON *j = read_json(o);
    const cJSON *s = cJSON_GetArrayItem(at(j, "splits"), 0), *items = at(s, "items");
    // per question in question-file order, whatever the answer order
    EXPECT_STRS(at(items, "ids"), "1", "2", "3", "4", "5");
    EXPECT_INTS(at(items, "label"), 1, 0, 0, 1, 0);
    EXPECT_INTS(at(items, "pred"), 1, 1, 0, 0, 0);
    EXPECT_INTS(at(items, "correct"), 1, 0, 1, 0, 1);
    EXPECT_STRS(at(at(items, "by"), "negative"), "none", "partner", "random", "none", "partner");
    // by negative: none {1, 4}: acc 1/2, yes 1/2, nothing labelled no (fp rate null);
    // partner {2, 5}: acc 1/2, yes 1/2, fp rate 1/2; random {3}: acc 1, yes 0, fp rate 0
    EXPECT_NEAR(num(s, "by", "negative", "none", "accuracy", NULL), 0.5, 1e-12);
    EXPECT(cJSON_IsNull(at(at(at(at(s, "by"), "negative"), "none"), "fp_rate")));
    EXPECT_NEAR(num(s, "by", "negative", "partner", "n", NULL), 2, 0);
    EXPECT_NEAR(num(s, "by", "negative", "partner", "accuracy", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(s, "by", "negative", "partner", "yes_ratio", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(s, "by", "negative", "partner", "fp_rate", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(s, "by", "negative", "random", "accuracy", NULL), 1.0, 1e-12);
    EXPECT_NEAR(num(s, "by", "negative", "random", "fp_rate", NULL), 0.0, 1e-12);
    // by difficulty: easy {1, 3}: acc 1, yes 1/2, fp rate 0/1; hard {2, 4, 5}: acc 1/3, yes 1/3, fp rate 1/2
    EXPECT_NEAR(num(s, "by", "difficulty", "easy", "accuracy", NULL), 1.0, 1e-12);
    EXPECT_NEAR(num(s, "by", "difficulty", "easy", "yes_ratio", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(s, "by", "difficulty", "hard", "accuracy", NULL), 1.0 / 3, 1e-12);
    EXPECT_NEAR(num(s, "by", "difficulty", "hard", "yes_ratio", NULL), 1.0 / 3, 1e-12);
    EXPECT_NEAR(num(s, "by", "difficulty", "hard", "fp_rate", NULL), 0.5, 1e-12);
    EXPECT_NEAR(num(s, "by", "difficulty", "hard", "labelled_no", NULL), 2, 0);
    cJSON_Delete(j);
    free(out); free(err); free(q); free(a); free(o);
}

TEST(eval_qa_prior_following_errors) {
    // q1 typical colour answered right; q2, q5 wrong with the prior's colour; q3 wrong otherwise; q4 has no
    // prior answer. Accuracy 1/5; wrong answers to questions with a prior: q2, q3, q5, of which q2 and q5
    // follow the prior: prior err 2/3.
    char *q = test_write_tmp("qa_prior.jsonl",
        "{\"question_id\": 1, \"type\": \"color\", \"answer\": \"red\", \"prior_answer\": \"red\", \"atypical\": false}\n"
        "{\"question_id\": 2, \"type\": \"color\", \"answer\": \"blue\", \"prior_answer\": \"red\", \"atypical\": true}\n"
        "{\"question_id\": 3, \"type\": \"color\", \"answer\": \"green\", \"prior_answer\": \"yellow\", \"atypical\": true}\n"
        "{\"question_id\": 4, \"type\": \"count\", \"answer\": \"2\"}\n"
        "{\"question_id\": 5, \"type\": \"color\", \"answer\": \"pink\", \"prior_answer\": \"purple\", \"atypical\": true}\n");
    char *a = test_write_tmp("qa_prior_a.jsonl", "{\"question_id\": 1, \"text\": \"red\"}\n{\"question_id\": 2, \"text\": \"Red.\"}\n"
                             "{\"question_id\": 3, \"text\": \"blue\"}\n{\"question_id\": 4, \"text\": \"3\"}\n"
                             "{\"question_id\": 5, \"text\": \"purple\"}\n");
    char *o = path_join(test_tmpdir(), "qa_prior.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s --by atypical --by type --by type+atypical --out %s", q, a, o);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "prior-following errors: 2 of 3 wrong answers"), "%s", out);
    cJSON *j = read_json(o);
    EXPECT_NEAR(num(j, "metrics", "accuracy", NULL), 0.2, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "prior_err", NULL), 2.0 / 3, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "wrong_with_prior", NULL), 3, 0);
    EXPECT_STRS(at(at(j, "items"), "ids"), "1", "2", "3", "4", "5");
    EXPECT_INTS(at(at(j, "items"), "correct"), 1, 0, 0, 0, 0);
    EXPECT_INTS(at(at(j, "items"), "prior"), 1, 1, 0, -1, 1);  // right for the prior answer; -1: none
    EXPECT_STRS(at(at(at(j, "items"), "by"), "atypical"), "false", "true", "true", "none", "true");
    // atypical true {2, 3, 5}: acc 0, prior err 2/3; false {1}: acc 1, no wrong answer (null);
    // none {4}: no prior answer at all (no prior fields)
    EXPECT_NEAR(num(j, "metrics", "by", "atypical", "true", "accuracy", NULL), 0.0, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by", "atypical", "true", "prior_err", NULL), 2.0 / 3, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by", "atypical", "false", "accuracy", NULL), 1.0, 1e-12);
    EXPECT(cJSON_IsNull(at(at(at(at(at(j, "metrics"), "by"), "atypical"), "false"), "prior_err")));
    EXPECT(at(at(at(at(at(j, "metrics"), "by"), "atypical"), "none"), "prior_err") == NULL);
    // type color {1, 2, 3, 5}: acc 1/4, prior err 2/3
    EXPECT_NEAR(num(j, "metrics", "by", "type", "color", "accuracy", NULL), 0.25, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by", "type", "color", "prior_err", NULL), 2.0 / 3, 1e-12);
    // crossed fields (--by type+atypical): color+false {1}: acc 1; color+true {2, 3, 5}: acc 0; count+none {4}
    EXPECT_STRS(at(at(at(j, "items"), "by"), "type+atypical"), "color+false", "color+true", "color+true", "count+none", "color+true");
    EXPECT_NEAR(num(j, "metrics", "by", "type+atypical", "color+false", "accuracy", NULL), 1.0, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by", "type+atypical", "color+true", "accuracy", NULL), 0.0, 1e-12);
    EXPECT_NEAR(num(j, "metrics", "by", "type+atypical", "color+true", "n", NULL), 3, 0);
    EXPECT_NEAR(num(j, "metrics", "by", "type+atypical", "count+none", "n", NULL), 1, 0);
    cJSON_Delete(j);
    free(out); free(err);
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s --by type+", q, a);
    expect_cli_error(args, "type+", "a field name on each side", NULL);
    char *bad = test_write_tmp("qa_prior_bad.jsonl", "{\"question_id\": 1, \"answer\": \"red\", \"prior_answer\": 3}\n");
    char *a1 = test_write_tmp("qa_prior_a1.jsonl", "{\"question_id\": 1, \"text\": \"red\"}\n");
    snprintf(args, sizeof(args), "eval qa --questions %s --answers %s", bad, a1);
    expect_cli_error(args, "qa_prior_bad.jsonl:1", "prior_answer", NULL);
    free(q); free(a); free(o); free(bad); free(a1);
}

// ---- the results table -------------------------------------------------------------------------------

// A run folder with qa.json and pope.json (one split, pope_adversarial) holding per-question items: n
// questions with ids "q<first + i>" (written in reverse order when reversed), question i right when
// i < right; every POPE label is yes, so right = answered yes. run_json (or NULL) goes to run.json.
static void write_items_run(const char *dir, int n, int right, int first, int reversed, const char *run_json) {
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", dir);
    if (test_shell(cmd) != 0) fatal("setup");
    cJSON *ids = cJSON_CreateArray(), *ok = cJSON_CreateArray(), *lab = cJSON_CreateArray();
    for (int k = 0; k < n; k++) {
        const int i = reversed ? n - 1 - k : k;
        char id[32];
        snprintf(id, sizeof(id), "q%d", first + i);
        cJSON_AddItemToArray(ids, cJSON_CreateString(id));
        cJSON_AddItemToArray(ok, cJSON_CreateNumber(i < right));
        cJSON_AddItemToArray(lab, cJSON_CreateNumber(1));
    }
    cJSON *qa = cJSON_CreateObject(), *items = cJSON_AddObjectToObject(qa, "items");
    cJSON_AddItemToObject(items, "ids", cJSON_Duplicate(ids, 1));
    cJSON_AddItemToObject(items, "correct", cJSON_Duplicate(ok, 1));
    cJSON *pope = cJSON_CreateObject(), *split = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(pope, "splits"), split);
    cJSON_AddStringToObject(split, "name", "pope_adversarial");
    items = cJSON_AddObjectToObject(split, "items");
    cJSON_AddItemToObject(items, "ids", ids);
    cJSON_AddItemToObject(items, "label", lab);
    cJSON_AddItemToObject(items, "pred", cJSON_Duplicate(ok, 1));
    cJSON_AddItemToObject(items, "correct", ok);
    const char *names[2] = {"qa.json", "pope.json"};
    cJSON *docs[2] = {qa, pope};
    for (int f = 0; f < 2; f++) {
        char *p = path_join(dir, names[f]), *text = cJSON_PrintUnformatted(docs[f]);
        write_file_atomic(p, text, strlen(text));
        free(p); free(text);
        cJSON_Delete(docs[f]);
    }
    if (run_json) {
        char *p = path_join(dir, "run.json");
        write_file_atomic(p, run_json, strlen(run_json));
        free(p);
    }
}

TEST(eval_table_intervals_constant_identical_deterministic) {
    char d[8][600], args[8192], md[600], js[600], js2[600], svg[600];
    const char *T = test_tmpdir();
    // 20 questions. sft: 14 right in both seeds; same: identical answers (seed 2's items in reverse order,
    // so pairing must go by question id); all: every answer right.
    snprintf(d[0], 600, "%s/t1/seed1/eval/sft", T);
    snprintf(d[1], 600, "%s/t1/seed2/eval/sft", T);
    snprintf(d[2], 600, "%s/t1/seed1/eval/same", T);
    snprintf(d[3], 600, "%s/t1/seed2/eval/same", T);
    snprintf(d[4], 600, "%s/t1/seed1/eval/all", T);
    snprintf(d[5], 600, "%s/t1/seed2/eval/all", T);
    write_items_run(d[0], 20, 14, 0, 0, NULL);
    write_items_run(d[1], 20, 14, 0, 0, NULL);
    write_items_run(d[2], 20, 14, 0, 0, NULL);
    write_items_run(d[3], 20, 14, 0, 1, NULL);
    write_items_run(d[4], 20, 20, 0, 0, "{\"method\": \"all\", \"lr\": 0.0001, \"beta\": 0.1, \"steps\": 100}");
    write_items_run(d[5], 20, 20, 0, 0, "{\"method\": \"all\", \"lr\": 0.0002, \"beta\": 0.1, \"steps\": 100}");
    snprintf(md, sizeof(md), "%s/t1.md", T);
    snprintf(js, sizeof(js), "%s/t1.json", T);
    snprintf(js2, sizeof(js2), "%s/t1b.json", T);
    snprintf(svg, sizeof(svg), "%s/t1.svg", T);
    snprintf(args, sizeof(args), "eval table --baseline sft --metrics qa.acc,pope.adversarial.yes --resamples 400 --out %s "
             "--json %s --svg %s %s %s %s %s %s %s", md, js, svg, d[0], d[2], d[4], d[1], d[3], d[5]);
    char *o, *e;
    int rc = test_run_vlm(args, &o, &e);
    EXPECTF(rc == 0, "exit %d: %s", rc, e);
    char *t = try_read_file(md, NULL);
    EXPECTF(t && !strcmp(t, o), "the file and stdout differ");
    // 14/20 = 70% in every run; the constant 100% has a zero-width interval
    EXPECTF(t && strstr(t, "| all | 2 | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |"), "%s", t ? t : "");
    EXPECTF(t && strstr(t, "| sft | 2 | 70.0 ["), "%s", t ? t : "");
    // identical answers: difference 0 in every resample, so [0, 0], not marked
    EXPECTF(t && strstr(t, "| same | 2 | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] |"), "%s", t ? t : "");
    // all - sft = +30 points; the hyper-parameters differ in lr between the seeds
    EXPECTF(t && strstr(t, "| all | 2 | +30.0 ["), "%s", t ? t : "");
    EXPECTF(t && strstr(t, "| all | all | 0.0001 / 0.0002 | 0.1 | 100 |"), "%s", t ? t : "");
    EXPECTF(t && strstr(t, "two-level percentile bootstrap, 400 resamples"), "footnote: %s", t ? t : "");
    cJSON *j = read_json(js);
    const cJSON *models = at(j, "models"), *same = cJSON_GetArrayItem(models, 1);
    EXPECT(same && !strcmp(at(same, "name")->valuestring, "same"));
    EXPECT(cJSON_IsFalse(at(at(at(at(same, "vs"), "sft"), "qa.acc"), "excludes_zero")));
    EXPECT_NEAR(num(same, "vs", "sft", "qa.acc", "hi", NULL), 0.0, 0);
    EXPECT_NEAR(num(cJSON_GetArrayItem(models, 0), "values", "qa.acc", "mean", NULL), 70.0, 1e-12);
    cJSON_Delete(j);
    // the chart: an interval (line and caps) for each (model, metric) with a nonzero width: sft and same, 2 each
    char *chart = try_read_file(svg, NULL);
    int caps = 0;
    for (const char *p = chart; p && (p = strstr(p, "<path d=\"M")); p++) caps++;
    EXPECTF(chart && !strncmp(chart, "<svg", 4), "not an SVG document");
    EXPECT_INT_EQ(caps, 4);
    free(chart);
    // deterministic: the same command gives the same bytes
    snprintf(args, sizeof(args), "eval table --baseline sft --metrics qa.acc,pope.adversarial.yes --resamples 400 --json %s "
             "%s %s %s %s %s %s", js2, d[0], d[2], d[4], d[1], d[3], d[5]);
    char *o2, *e2;
    EXPECT(test_run_vlm(args, &o2, &e2) == 0);
    EXPECTF(!strcmp(o, o2), "two runs printed different tables");
    EXPECT(test_files_equal(js, js2));
    free(o2); free(e2);
    free(t); free(o); free(e);
}

TEST(eval_table_shift_detected_with_enough_questions) {
    // baseline b right on 70% of the questions, model m on 90% (a superset): m - b = +20 points. With 10
    // questions only 2 differ, and a resample misses both with probability 0.8^10 = 0.11 > 0.025, so the
    // interval reaches 0; with 1000 questions (200 differ) it is about +20 +- 2.5 and excludes 0. b has a
    // single run (one SFT model for every seed), paired with both of m's seeds.
    const char *T = test_tmpdir();
    int sizes[2] = {10, 1000};
    for (int k = 0; k < 2; k++) {
        const int n = sizes[k];
        char b[600], m1[600], m2[600], args[4096], *o, *e;
        snprintf(b, sizeof(b), "%s/shift%d/shared/eval/b", T, n);
        snprintf(m1, sizeof(m1), "%s/shift%d/seed1/eval/m", T, n);
        snprintf(m2, sizeof(m2), "%s/shift%d/seed2/eval/m", T, n);
        write_items_run(b, n, n * 7 / 10, 0, 0, NULL);
        write_items_run(m1, n, n * 9 / 10, 0, 0, NULL);
        write_items_run(m2, n, n * 9 / 10, 0, 1, NULL);
        snprintf(args, sizeof(args), "eval table --baseline=b --metrics=qa.acc %s %s %s", b, m1, m2);
        int rc = test_run_vlm(args, &o, &e);
        EXPECTF(rc == 0, "exit %d: %s", rc, e);
        const char *row = strstr(o, "| m | 2 | +20.0 [");
        EXPECTF(row != NULL, "%s", o);
        const char *end = row ? strchr(row + 4, '\n') : NULL;
        const int marked = row && end && memchr(row, '*', (size_t)(end - row)) != NULL;
        if (n == 10) EXPECTF(!marked && strstr(o, "| m | 2 | +20.0 [+0.0, "), "10 questions: not resolvable:\n%s", o);
        else EXPECTF(marked, "1000 questions: the shift is resolved:\n%s", o);
        free(o); free(e);
        if (n != 1000) continue;
        // against m (two runs) the single-run b pairs with each of them: -20 points, resolved
        snprintf(args, sizeof(args), "eval table --baseline b --baseline m --metrics qa.acc %s %s %s", b, m1, m2);
        rc = test_run_vlm(args, &o, &e);
        EXPECTF(rc == 0, "exit %d: %s", rc, e);
        row = strstr(o, "| b | 1 | -20.0 [");
        end = row ? strchr(row, '\n') : NULL;
        EXPECTF(row && end && memchr(row, '*', (size_t)(end - row)), "%s", o);
        free(o); free(e);
    }
}

TEST(eval_table_errors) {
    const char *T = test_tmpdir();
    char a[600], b[600], c[600], old[600], args[4096];
    snprintf(a, sizeof(a), "%s/terr/seed1/eval/sft", T);
    snprintf(b, sizeof(b), "%s/terr/seed1/eval/svco", T);
    snprintf(c, sizeof(c), "%s/terr/seed2/eval/svco", T);
    snprintf(old, sizeof(old), "%s/terr/seed1/eval/old", T);
    write_items_run(a, 10, 5, 0, 0, NULL);
    write_items_run(b, 10, 5, 1, 0, NULL);  // ids q1..q10 against q0..q9
    write_items_run(c, 9, 5, 0, 0, NULL);   // 9 questions
    // a folder without chair.json
    snprintf(args, sizeof(args), "eval table --metrics qa.acc,chair.s %s", a);
    expect_cli_error(args, "sft/chair.json: missing", "vlm eval chair --out", NULL);
    snprintf(args, sizeof(args), "eval table --metrics qa.acc %s %s", a, b);
    expect_cli_error(args, "question ids differ", "has question id q10", NULL);
    snprintf(args, sizeof(args), "eval table --metrics qa.acc %s %s", a, c);
    expect_cli_error(args, "question ids differ", "has 9 questions", NULL);
    snprintf(args, sizeof(args), "eval table --metrics qa.acc,qa.bogus %s", a);
    expect_cli_error(args, "unknown metric 'qa.bogus'", NULL);
    snprintf(args, sizeof(args), "eval table --metrics pope.sideways.acc %s", a);
    expect_cli_error(args, "no split 'sideways'", "pope_adversarial", NULL);
    snprintf(args, sizeof(args), "eval table --metrics qa.by.type.color.acc %s", a);
    expect_cli_error(args, "no breakdown by \"type\"", "--by type", NULL);
    snprintf(args, sizeof(args), "eval table --metrics qa.acc --baseline dpo %s", a);
    expect_cli_error(args, "--baseline dpo", NULL);
    // a baseline with several runs but none in the seed folders of a model with several runs
    char s3[600], s4[600], a2[600];
    snprintf(s3, sizeof(s3), "%s/terr/seed3/eval/svco", T);
    snprintf(s4, sizeof(s4), "%s/terr/seed4/eval/svco", T);
    snprintf(a2, sizeof(a2), "%s/terr/seed2/eval/sft", T);
    write_items_run(s3, 10, 5, 0, 0, NULL);
    write_items_run(s4, 10, 5, 0, 0, NULL);
    write_items_run(a2, 10, 5, 0, 0, NULL);
    snprintf(args, sizeof(args), "eval table --metrics qa.acc --baseline sft %s %s %s %s", a, a2, s3, s4);
    expect_cli_error(args, "no sft run in", "seed3", NULL);
    // eval JSON from before per-question items
    snprintf(args, sizeof(args), "mkdir -p %s", old);
    test_shell(args);
    char *p = path_join(old, "qa.json");
    write_file_atomic(p, "{\"metrics\": {\"accuracy\": 0.5}}", 30);
    free(p);
    snprintf(args, sizeof(args), "eval table --metrics qa.acc %s", old);
    expect_cli_error(args, "old/qa.json", "no per-question \"items\"", NULL);
    expect_cli_error("eval table", "at least one run folder", NULL);
    snprintf(args, sizeof(args), "eval table --bogus %s", a);
    expect_cli_error(args, "--bogus", NULL);
}

// vlm eval verdict and score read a table's JSON: the sentence follows the intervals (a difference whose
// interval contains 0 is "not resolved", an interval above 0 on a higher-is-better metric is "reduced"), the
// ranking follows the means, and a lower-is-better metric counts as 100 - value in a score.
TEST(eval_verdict_and_score) {
    const char *table =
        "{\"metrics\": [{\"name\": \"pope.adversarial.acc\", \"label\": \"POPE adv acc\", \"lower_is_better\": false},"
        "               {\"name\": \"qa.acc\", \"label\": \"QA acc\", \"lower_is_better\": false},"
        "               {\"name\": \"chair.s\", \"label\": \"CHAIR_s\", \"lower_is_better\": true}],"
        " \"models\": ["
        "  {\"name\": \"sft\", \"values\": {\"pope.adversarial.acc\": {\"mean\": 70, \"lo\": 68, \"hi\": 72},"
        "      \"qa.acc\": {\"mean\": 80, \"lo\": 79, \"hi\": 81}, \"chair.s\": {\"mean\": 30, \"lo\": 28, \"hi\": 32}}},"
        "  {\"name\": \"dpo-mvc\", \"values\": {\"pope.adversarial.acc\": {\"mean\": 73, \"lo\": 71, \"hi\": 75},"
        "      \"qa.acc\": {\"mean\": 80, \"lo\": 79, \"hi\": 81}, \"chair.s\": {\"mean\": 20, \"lo\": 18, \"hi\": 22}}},"
        "  {\"name\": \"svco\", \"values\": {\"pope.adversarial.acc\": {\"mean\": 74, \"lo\": 72, \"hi\": 76},"
        "      \"qa.acc\": {\"mean\": 79, \"lo\": 78, \"hi\": 80}, \"chair.s\": {\"mean\": 10, \"lo\": 8, \"hi\": 12}},"
        "   \"vs\": {\"sft\": {\"pope.adversarial.acc\": {\"diff\": 4, \"lo\": 2.5, \"hi\": 5.5},"
        "                    \"qa.acc\": {\"diff\": -1, \"lo\": -2.5, \"hi\": 0.4}},"
        "            \"dpo-mvc\": {\"pope.adversarial.acc\": {\"diff\": 1, \"lo\": -0.5, \"hi\": 2.5},"
        "                    \"qa.acc\": {\"diff\": -1, \"lo\": -1.8, \"hi\": -0.2}}}}]}\n";
    char *t = test_write_tmp("verdict_table.json", table), args[1024], *out, *err;
    snprintf(args, sizeof(args), "eval verdict --table %s --method svco --baseline sft --baseline dpo-mvc", t);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(out && strstr(out, "svco reduced prior-driven hallucination relative to sft (POPE adv acc +4.0 points"), "%s", out);
    EXPECTF(out && strstr(out, "ranked 1 of 3 models"), "%s", out);
    EXPECTF(out && strstr(out, "against dpo-mvc it is not resolved at 95% (+1.0 [-0.5, +2.5])"), "%s", out);
    EXPECTF(out && strstr(out, "General ability (QA acc) showed no measurable change (-1.0 [-2.5, +0.4]"), "%s", out);
    EXPECTF(out && strstr(out, "ranking on POPE adv acc (mean over runs): svco 74.0, dpo-mvc 73.0, sft 70.0"), "%s", out);
    free(out); free(err);
    // a baseline the table has no differences against, an unknown model: named errors
    snprintf(args, sizeof(args), "eval verdict --table %s --method svco --baseline mdpo", t);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(err && strstr(err, "no differences against 'mdpo' (make the table with --baseline mdpo)"), "%s", err);
    free(out); free(err);
    snprintf(args, sizeof(args), "eval verdict --table %s --method nope", t);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(err && strstr(err, "no model named 'nope'"), "%s", err);
    free(out); free(err);
    // score: the mean of the metrics, CHAIR_s as 100 - value
    snprintf(args, sizeof(args), "eval score --table %s --metrics pope.adversarial.acc,chair.s", t);
    rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0 && out && strstr(out, "sft\t70.0000\ndpo-mvc\t76.5000\nsvco\t82.0000\n"), "exit %d: %s", rc, out ? out : "");
    free(out); free(err);
    snprintf(args, sizeof(args), "eval score --table %s --metrics qa.nope", t);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(err && strstr(err, "the table has no metric 'qa.nope'"), "%s", err);
    free(out); free(err); free(t);
}

// vlm eval frontier reads one table per setting (a learning-rate sweep): each model's differences from the
// baselines at each setting, labelled by its runs' lr (else the file name), the method's line per rival that
// counts the settings where the interval puts it ahead or behind, and the trade-off chart, where a point
// below a floor sits hollow on the frame with its values.
TEST(eval_frontier) {
    // one table: svco's and dpo-mvc's differences from sft, svco's from dpo-mvc
    static const char *const fmt =
        "{\"metrics\": [{\"name\": \"pope.adversarial.acc\", \"label\": \"POPE adv acc\", \"lower_is_better\": false},"
        "               {\"name\": \"qa.acc\", \"label\": \"QA acc\", \"lower_is_better\": false}],"
        " \"models\": ["
        "  {\"name\": \"sft\", \"runs\": [{\"dir\": \"s/sft\"}], \"values\": {}},"
        "  {\"name\": \"dpo-mvc\", \"runs\": [{\"dir\": \"s/dpo-mvc\", \"run\": %s}],"
        "   \"vs\": {\"sft\": {\"pope.adversarial.acc\": {\"diff\": %s, \"lo\": 1, \"hi\": 3}, \"qa.acc\": {\"diff\": -30, \"lo\": -31, \"hi\": -29}}}},"
        "  {\"name\": \"svco\", \"runs\": [{\"dir\": \"s/svco\"}, {\"dir\": \"t/svco\"}],"
        "   \"vs\": {\"sft\": {\"pope.adversarial.acc\": {\"diff\": 4, \"lo\": 2.5, \"hi\": 5.5}, \"qa.acc\": {\"diff\": 1, \"lo\": -0.5, \"hi\": 2}},"
        "            \"dpo-mvc\": {\"pope.adversarial.acc\": {\"diff\": %s, \"lo\": %s, \"hi\": %s}, \"qa.acc\": {\"diff\": 0.5, \"lo\": -1, \"hi\": 2}}}}]}\n";
    char a[4096], b[4096];
    snprintf(a, sizeof(a), fmt, "{\"lr\": 0.0001}", "2", "2", "0.5", "3.5");
    snprintf(b, sizeof(b), fmt, "{\"seed\": 1}", "2", "-1", "-1.5", "-0.5");
    char *ta = test_write_tmp("frontier_lr1e-4.json", a), *tb = test_write_tmp("frontier_second.json", b);
    char *svg = path_join(test_tmpdir(), "frontier.svg"), *md = path_join(test_tmpdir(), "frontier.md"), args[4096], *out, *err;
    snprintf(args, sizeof(args), "eval frontier --baseline sft --baseline dpo-mvc --method svco --y-min -10 --out %s --svg %s %s %s",
             md, svg, ta, tb);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(out && strstr(out, "| svco | lr 1e-4 | 2 | +4.0 [+2.5, +5.5]* | +1.0 [-0.5, +2.0] | +2.0 [+0.5, +3.5]* | +0.5 [-1.0, +2.0] |"), "%s", out);
    EXPECTF(out && strstr(out, "| svco | frontier_second | 2 |") && strstr(out, "| -1.0 [-1.5, -0.5]* |"), "%s", out);
    EXPECTF(out && strstr(out, "| dpo-mvc | lr 1e-4 | 1 | +2.0 [+1.0, +3.0]* | -30.0 [-31.0, -29.0]* | | |"), "%s", out);
    EXPECTF(out && strstr(out, "svco - dpo-mvc at the same setting: lr 1e-4: POPE adv acc +2.0*, QA acc +0.5; frontier_second: POPE adv acc -1.0*"),
            "%s", out);
    EXPECTF(out && strstr(out, "ahead of dpo-mvc, resolved at 95%, at 1 of 2 settings and behind at 1."), "%s", out);
    char *m = try_read_file(md, NULL), *g = try_read_file(svg, NULL);
    EXPECTF(m && out && !strcmp(m, out), "--out differs from the printed table");
    // dpo-mvc's QA -30 is past the -10 floor: hollow, with its values
    EXPECTF(g && strstr(g, "fill=\"white\"/>") && strstr(g, "lr 1e-4 (2.0, -30.0)") && strstr(g, ">svco</text>"), "%s", g ? g : "(no chart)");
    free(m); free(g); free(out); free(err);
    // a table without a baseline, a positive floor, an unknown method: named errors
    snprintf(args, sizeof(args), "eval frontier --baseline mdpo %s", ta);
    expect_cli_error(args, "frontier_lr1e-4.json: no model named 'mdpo'", NULL);
    snprintf(args, sizeof(args), "eval frontier --baseline sft --y-min 5 %s", ta);
    expect_cli_error(args, "--y-min '5': expected a negative number", NULL);
    snprintf(args, sizeof(args), "eval frontier --baseline sft --method nope %s", ta);
    expect_cli_error(args, "no table has a model named 'nope'", NULL);
    expect_cli_error("eval frontier --baseline sft", "give TABLE.json files", NULL);
    free(ta); free(tb); free(svg); free(md);
}

// ---- CV-Bench ---------------------------------------------------------------------------------------

TEST(eval_choice_cambrian_extract) {
    // Cambrian-1's extract_mcq_answer: lowercase, strip, keep what follows "answer is" / "answer is:" /
    // "answer:", strip, drop a trailing '.', a leading '(' and a trailing ')', keep the first character.
    static const char *const cases[][3] = {
        // response, ADE20K/COCO variant, Omni3D variant
        {"(C) 1", "c", "c"},
        {"The answer is (A).", "a", "a"},
        {"Answer: B,", "b", "b"},
        {"b", "b", "b"},
        {"  (d)  ", "d", "d"},
        {"above", "a", "a"},                 // any word reads as its first letter
        {"", "", ""},
        {"()", "", ""},
        {".", "", ""},
        {"answer is: c", ":", ":"},          // "answer is" splits first, leaving ": c"
        {"the answer is a. the answer is b", "b", "b"},  // after the last occurrence
        {"x:", "x", "x"},
        {":", ":", ""},                      // the Omni3D variant strips ':' and ','
        {"\xC3\x89t\xC3\xA9", "\xC3\x89", "\xC3\x89"},  // the first code point (bytes >= 0x80 are not lowercased)
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int omni = 0; omni < 2; omni++) {
            char *got = choice_cambrian_extract(cases[i][0], omni);
            EXPECTF(!strcmp(got, cases[i][1 + omni]), "\"%s\" (%s): got \"%s\", expected \"%s\"", cases[i][0],
                    omni ? "Omni3D" : "ADE20K", got, cases[i][1 + omni]);
            free(got);
        }
    ChoiceOptions o;
    const char *texts[2] = {"x", "y"};
    EXPECT(choice_options_from_list(texts, 2, &o));
    EXPECT(choice_cambrian_correct("y", "(B)", &o, 1));   // Omni3D: the option text itself counts
    EXPECT(!choice_cambrian_correct("y", "(B)", &o, 0));
    EXPECT(choice_cambrian_correct("B) y", "(B)", &o, 0));
    EXPECT_INT_EQ(choice_label_letter("(C)"), 'c');
    EXPECT_INT_EQ(choice_label_letter(" b "), 'b');
    EXPECT_INT_EQ(choice_label_letter("(AB)"), 0);
    EXPECT_INT_EQ(choice_label_letter("(1)"), 0);
    choice_options_free(&o);
}

// tests/fixtures/cvbench: 11 questions (ADE20K 0-2, COCO 3-5, Omni3D 6-10) and these answers:
//   i  source  task      label  choices          answer                  first4  cambrian  letter
//   0  ADE20K  Count     (C)    3 2 1 0          "(C) 1"                 yes     yes       yes
//   1  ADE20K  Count     (A)    4 5 8            "The answer is (A)."    no      yes       yes
//   2  ADE20K  Relation  (B)    left right       "It is hard to tell."   no      no        no (unparseable)
//   3  COCO    Count     (D)    2 4 3 1          "D"                     yes     yes       yes
//   4  COCO    Relation  (A)    above below      "(A) above"             yes     yes       yes
//   5  COCO    Count     (B)    0 1 2            "b. 1"                  no      yes       yes
//   6  Omni3D  Depth     (A)    lamp chair       "(A)"                   yes     yes       yes
//   7  Omni3D  Distance  (B)    table sofa       "B"                     yes     yes       yes
//   8  Omni3D  Depth     (B)    x y              "y"                     no      yes (text) yes (text)
//   9  Omni3D  Distance  (A)    bed desk         "I think it is the bed." no     no        yes (text)
//  10  Omni3D  Distance  (B)    door window      "Answer: B,"            no      yes       yes
// first4:   ADE20K 1/3, COCO 2/3, Omni3D 2/5; 2D = 1/2, 3D = 2/5, CV-Bench = 0.45; all 5/11
// cambrian: ADE20K 2/3, COCO 3/3, Omni3D 4/5; 2D = 5/6, 3D = 4/5, CV-Bench = 49/60; all 9/11
// letter:   ADE20K 2/3, COCO 3/3, Omni3D 5/5; 2D = 5/6, 3D = 1, CV-Bench = 11/12; all 10/11
// Tasks under first4: Count 2/4, Relation 1/2, Depth 1/2, Distance 1/3.
#define CVB_Q "tests/fixtures/cvbench/questions.jsonl"
#define CVB_A "tests/fixtures/cvbench/answers.jsonl"

TEST(eval_cvbench_by_hand) {
    static const char *const rules[3] = {"first4", "cambrian", "letter"};
    const double want[3][7] = {
        // ADE20K, COCO, Omni3D, 2D, 3D, CV-Bench, all
        {1.0 / 3, 2.0 / 3, 2.0 / 5, 0.5, 0.4, 0.45, 5.0 / 11},
        {2.0 / 3, 1.0, 4.0 / 5, 5.0 / 6, 0.8, 49.0 / 60, 9.0 / 11},
        {2.0 / 3, 1.0, 1.0, 5.0 / 6, 1.0, 11.0 / 12, 10.0 / 11},
    };
    for (int k = 0; k < 3; k++) {
        char *outp = path_join(test_tmpdir(), "cvbench.json"), args[1024], *out, *err;
        snprintf(args, sizeof(args), "eval cvbench --questions %s --answers %s --rule %s --out %s", CVB_Q, CVB_A, rules[k], outp);
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        EXPECTF(strstr(out, "CV-Bench (mean of 2D and 3D)") != NULL, "%s", out);
        cJSON *j = read_json(outp);
        if (j) {
            const cJSON *m = at(j, "metrics");
            EXPECT_NEAR(num(m, "by_source", "ADE20K", "accuracy", NULL), want[k][0], 1e-12);
            EXPECT_NEAR(num(m, "by_source", "COCO", "accuracy", NULL), want[k][1], 1e-12);
            EXPECT_NEAR(num(m, "by_source", "Omni3D", "accuracy", NULL), want[k][2], 1e-12);
            EXPECT_NEAR(num(m, "accuracy_2d", NULL), want[k][3], 1e-12);
            EXPECT_NEAR(num(m, "accuracy_3d", NULL), want[k][4], 1e-12);
            EXPECT_NEAR(num(m, "cv_bench", NULL), want[k][5], 1e-12);
            EXPECT_NEAR(num(m, "accuracy", NULL), want[k][6], 1e-12);
            EXPECT_NEAR(num(m, "unparseable", NULL), 1, 0);
            EXPECT_STRS(at(at(j, "items"), "ids"), "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10");
            if (k == 0) {
                EXPECT_NEAR(num(m, "by_task", "Count", "accuracy", NULL), 0.5, 1e-12);
                EXPECT_NEAR(num(m, "by_task", "Relation", "accuracy", NULL), 0.5, 1e-12);
                EXPECT_NEAR(num(m, "by_task", "Depth", "accuracy", NULL), 0.5, 1e-12);
                EXPECT_NEAR(num(m, "by_task", "Distance", "accuracy", NULL), 1.0 / 3, 1e-12);
                EXPECT_INTS(at(at(j, "items"), "correct"), 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0);
            }
            cJSON_Delete(j);
        }
        free(out); free(err); free(outp);
    }
}

// The official graders' verdicts and aggregates on the same files (tests/fixtures/cvbench/official.json,
// written by tests/ref/cvbench_official.py running S-VCO's cvbench_rule_grader.py and Cambrian-1's
// {ade,coco,omni}_test.py).
TEST(eval_cvbench_matches_official_graders) {
    char *text = read_file("tests/fixtures/cvbench/official.json", NULL);
    cJSON *off = cJSON_Parse(text);
    free(text);
    if (!off) { test_fail(__FILE__, __LINE__, "official.json does not parse"); return; }
    static const char *const rules[2] = {"first4", "cambrian"};
    for (int k = 0; k < 2; k++) {
        const char *qs[1] = {CVB_Q}, *as[1] = {CVB_A};
        CvbenchResult r;
        int match[1];
        cvbench_eval_files(qs, as, 1, k ? CVBENCH_RULE_CAMBRIAN : CVBENCH_RULE_FIRST4, &r, NULL, match);
        const cJSON *o = at(off, rules[k]), *correct = at(o, "correct");
        EXPECT_INT_EQ(cJSON_GetArraySize(correct), r.n);
        for (int i = 0; i < r.n && i < cJSON_GetArraySize(correct); i++)
            EXPECTF(cJSON_IsTrue(cJSON_GetArrayItem(correct, i)) == r.item_correct[i], "%s, question %d: official %d, vlm %d",
                    rules[k], i, cJSON_IsTrue(cJSON_GetArrayItem(correct, i)), r.item_correct[i]);
        for (int s = 0; s < r.n_sources; s++)
            EXPECT_NEAR((double)r.sources[s].correct / r.sources[s].n, num(o, "by_source", r.sources[s].name, NULL), 1e-15);
        for (int t = 0; k == 0 && t < r.n_tasks; t++)
            EXPECT_NEAR((double)r.tasks[t].correct / r.tasks[t].n, num(o, "by_task", r.tasks[t].name, NULL), 1e-15);
        EXPECT_NEAR(r.acc_2d, num(o, "accuracy_2d", NULL), 1e-15);
        EXPECT_NEAR(r.acc_3d, num(o, "accuracy_3d", NULL), 1e-15);
        EXPECT_NEAR(r.combined, num(o, "cv_bench", NULL), 1e-15);
        cvbench_result_free(&r);
    }
    cJSON_Delete(off);
}

TEST(eval_cvbench_errors_and_partial_files) {
    // only the 2D questions: 2D and the per-source numbers, no 3D or CV-Bench number
    char *q2d = test_write_tmp("cvb_2d.jsonl",
        "{\"idx\": 0, \"task\": \"Count\", \"source\": \"ADE20K\", \"choices\": [\"1\", \"2\"], \"answer\": \"(A)\"}\n"
        "{\"idx\": 1, \"task\": \"Count\", \"source\": \"COCO\", \"choices\": [\"1\", \"2\"], \"answer\": \"(B)\"}\n");
    // by question_id, shuffled: question 0 <- "(A)" right, question 1 <- "(A)" wrong; 2D = (1 + 0) / 2
    char *a2d = test_write_tmp("cvb_2d_a.jsonl", "{\"question_id\": 1, \"text\": \"(A)\"}\n{\"question_id\": 0, \"text\": \"(A)\"}\n");
    char *outp = path_join(test_tmpdir(), "cvb_2d.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval cvbench --questions %s --answers %s --out %s", q2d, a2d, outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "needs Omni3D questions") != NULL && strstr(out, "question_id") != NULL, "%s", out);
    cJSON *j = read_json(outp);
    if (j) {
        EXPECT_NEAR(num(j, "metrics", "accuracy_2d", NULL), 0.5, 1e-12);
        EXPECT(cJSON_IsNull(at(at(j, "metrics"), "cv_bench")));
        cJSON_Delete(j);
    }
    free(out); free(err); free(outp);

    static const struct { const char *line, *want; } bad[] = {
        {"{\"idx\": 0, \"task\": \"Count\", \"choices\": [\"1\", \"2\"], \"answer\": \"(A)\"}", "cvb_bad.jsonl:2: no \"source\""},
        {"{\"idx\": 0, \"task\": \"Count\", \"source\": \"COCO\", \"choices\": [\"1\", \"2\"], \"answer\": \"(C)\"}",
         "cvb_bad.jsonl:2: \"answer\" \"(C)\" does not name one of the 2 choices"},
        {"{\"idx\": 0, \"task\": \"Count\", \"source\": \"COCO\", \"choices\": \"1, 2\", \"answer\": \"(A)\"}",
         "cvb_bad.jsonl:2: \"choices\" must be a list"},
        {"{\"idx\": 0, \"task\": \"Count\", \"source\": \"COCO\", \"choices\": [\"1\", 2], \"answer\": \"(A)\"}",
         "cvb_bad.jsonl:2: choice 2 is not a string"},
        {"{\"idx\": 0, \"task\": \"Count\", \"source\": \"COCO\", \"choices\": [\"1\", \"2\"], \"answer\": 1}",
         "cvb_bad.jsonl:2: \"answer\" must be a non-empty string"},
        {"{\"idx\": 0.5, \"task\": \"Count\", \"source\": \"COCO\", \"choices\": [\"1\", \"2\"], \"answer\": \"(A)\"}",
         "cvb_bad.jsonl:2: \"idx\" must be an integer or a string"},
        {"{\"idx\": 0, \"task\": \"Count\",", "cvb_bad.jsonl:2"},
    };
    char *two = test_write_tmp("cvb_two.jsonl", "{\"text\": \"A\"}\n{\"text\": \"B\"}\n");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "{\"idx\": 5, \"task\": \"Depth\", \"source\": \"Omni3D\", \"choices\": [\"a\", \"b\"], \"answer\": \"(A)\"}\n%s\n", bad[i].line);
        char *q = test_write_tmp("cvb_bad.jsonl", text);
        snprintf(args, sizeof(args), "eval cvbench --questions %s --answers %s", q, two);
        expect_cli_error(args, bad[i].want, NULL);
        free(q);
    }
    char *three = test_write_tmp("cvb_three.jsonl", "{\"text\": \"A\"}\n{\"text\": \"B\"}\n{\"text\": \"B\"}\n");
    snprintf(args, sizeof(args), "eval cvbench --questions %s --answers %s", q2d, three);
    expect_cli_error(args, "cvb_2d.jsonl has 2 questions", "cvb_three.jsonl has 3 answers", NULL);
    snprintf(args, sizeof(args), "eval cvbench --questions %s --answers %s --rule guess", q2d, two);
    expect_cli_error(args, "--rule must be first4, cambrian or letter", NULL);
    free(q2d); free(a2d); free(two); free(three);
}

// ---- AMBER ------------------------------------------------------------------------------------------

// tests/fixtures/amber: a 16-word vocabulary (relation.json: person -> man, woman, people; grass -> ground;
// table -> desk; car -> vehicle, tire; ground -> floor; dog, cat, bird, cup), safe word "floor", hand-made
// similarities (similar.tsv: cat~dog 0.85, bird~car 0.81, cup~table 0.6 below 0.8), and these answers:
//  id 1  truth person grass grass, hallu dog car
//        "Two men and a Dog stand on the grass. A woman sits on the floor near cars."
//        nouns grass, woman, floor, car ("men" lemmatizes to "men", no object; "Dog" is capitalized: no noun)
//        grass covers truth 2 (its first copy; the third, the second grass, is never covered), woman covers
//        person through its association; floor is a safe word; car covers hallu car and is hallucinated
//        -> 4 nouns, 1 hallucinated, truth 2/3, hallu 1/2
//  id 2  truth table cup, hallu cat person; "A cat and a bird on the desk, with cups."
//        cat covers hallu cat, hallucinated; bird hallucinated; desk covers table; cups -> cup covers cup
//        -> 4 nouns, 2 hallucinated, truth 2/2, hallu 1/2
//  id 3  truth dog, hallu bird; "A cat on the ground, and a car."
//        cat ~ dog (0.85) covers dog, grounded; ground hallucinated; car ~ bird (0.81) covers bird, and is
//        hallucinated (nothing in the truth is like it) -> 3 nouns, 2 hallucinated, truth 1/1, hallu 1/1
//  id 12 truth cup, hallu cat; "Nothing much." -> no nouns, truth 0/1, hallu 0/1
// CHAIR 5/11 = 45.45%, Cover 5/7 = 71.43%, Hal 3/4 = 75%, Cog 3/6 = 50%.
// Questions ("No" positive; exact parser: only "Yes"/"No" as written):
//   4 existence no "No" tp; 5 existence yes "Yes" right; 11 existence no "Yes" wrong;
//   6 state yes "No" wrong (answered no); 7 number no "No." neither; 8 action no "No" tp;
//   9 relation yes "yes" neither; 10 relation no "No" tp.
//   all: n 8, right 4, truth no 5, answered no 4, tp 3 -> acc 1/2, P 3/4, R 3/5, F1 2/3
//   existence: n 3, right 2, truth no 2, answered no 1, tp 1 -> acc 2/3, P 1, R 1/2, F1 2/3
//   attribute: n 3, right 1, truth no 2, answered no 2, tp 1 -> 1/3, 1/2, 1/2, 1/2
//   relation: n 2, right 1, truth no 1, answered no 1, tp 1 -> 1/2, 1, 1, 1
// With --parser strict "No." and "yes" are read: all right 6, answered no 5, tp 4 -> 3/4, 4/5, 4/5, 4/5.
#define AMBER_FIX "tests/fixtures/amber"
#define AMBER_ARGS "eval amber --data " AMBER_FIX " --nouns eval/data/amber_nouns.tsv --similar " AMBER_FIX "/similar.tsv"

static const cJSON *amber_dim(const cJSON *j, const char *dim) { return at(at(at(j, "metrics"), "discriminative"), dim); }

TEST(eval_amber_by_hand) {
    char *outp = path_join(test_tmpdir(), "amber.json"), args[1024], *out, *err;
    snprintf(args, sizeof(args), AMBER_ARGS " --answers " AMBER_FIX "/answers.json --out %s", outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "2 responses are neither \"Yes\" nor \"No\"") != NULL, "%s", out);
    EXPECTF(err[0] == 0, "no warning expected: %s", err);  // every object is in the noun table
    cJSON *j = read_json(outp);
    if (j) {
        const cJSON *g = at(at(j, "metrics"), "generative");
        EXPECT_NEAR(num(g, "chair", NULL), 5.0 / 11, 1e-12);
        EXPECT_NEAR(num(g, "cover", NULL), 5.0 / 7, 1e-12);
        EXPECT_NEAR(num(g, "hal", NULL), 0.75, 1e-12);
        EXPECT_NEAR(num(g, "cog", NULL), 0.5, 1e-12);
        EXPECT_NEAR(num(g, "nouns", NULL), 11, 0);
        const struct { const char *dim; double acc, p, r, f1; int other; } want[] = {
            {"all", 0.5, 0.75, 0.6, 2.0 / 3, 2}, {"existence", 2.0 / 3, 1, 0.5, 2.0 / 3, 0},
            {"attribute", 1.0 / 3, 0.5, 0.5, 0.5, 1}, {"state", 0, 0, 0, 0, 0}, {"number", 0, 0, 0, 0, 1},
            {"action", 1, 1, 1, 1, 0}, {"relation", 0.5, 1, 1, 1, 1}};
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            const cJSON *d = amber_dim(j, want[k].dim);
            EXPECTF(d != NULL, "no %s", want[k].dim);
            EXPECT_NEAR(num(d, "accuracy", NULL), want[k].acc, 1e-12);
            EXPECT_NEAR(num(d, "precision", NULL), want[k].p, 1e-12);
            EXPECT_NEAR(num(d, "recall", NULL), want[k].r, 1e-12);
            EXPECT_NEAR(num(d, "f1", NULL), want[k].f1, 1e-12);
            EXPECT_NEAR(num(d, "neither_yes_nor_no", NULL), want[k].other, 0);
        }
        // the per-answer record of caption 1: which nouns, which covered
        const cJSON *per = at(j, "per_item"), *c1 = cJSON_GetArrayItem(per, 1);
        EXPECT_NEAR(num(c1, "id", NULL), 1, 0);
        EXPECT_STRS(at(c1, "nouns"), "grass", "woman", "floor", "car");
        EXPECT_STRS(at(c1, "hallucinated"), "car");
        EXPECT_STRS(at(c1, "truth_covered"), "person", "grass");
        EXPECT_STRS(at(c1, "hallu_covered"), "car");
        EXPECT_STRS(at(at(j, "items"), "ids"), "3", "1", "12", "2", "11", "4", "5", "6", "7", "8", "9", "10");
        EXPECT_INTS(at(at(j, "items"), "correct"), -1, -1, -1, -1, 0, 1, 1, 0, 0, 1, 0, 1);
        EXPECT_INTS(at(at(j, "items"), "hallucinated"), 2, 1, 0, 2, -1, -1, -1, -1, -1, -1, -1, -1);
        cJSON_Delete(j);
    }
    free(out); free(err);

    // --parser strict reads "No." and "yes"
    snprintf(args, sizeof(args), AMBER_ARGS " --answers " AMBER_FIX "/answers.json --parser strict --out %s", outp);
    rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    j = read_json(outp);
    if (j) {
        const cJSON *d = amber_dim(j, "all");
        EXPECT_NEAR(num(d, "accuracy", NULL), 0.75, 1e-12);
        EXPECT_NEAR(num(d, "precision", NULL), 0.8, 1e-12);
        EXPECT_NEAR(num(d, "recall", NULL), 0.8, 1e-12);
        EXPECT_NEAR(num(d, "f1", NULL), 0.8, 1e-12);
        cJSON_Delete(j);
    }
    free(out); free(err);

    // without the similarity table: cat is no longer like dog (caption 3's cat is hallucinated, dog not
    // covered) and car no longer like bird: CHAIR 6/11, Cover 4/7, Hal 3/4, Cog 2/6 (and the noun table is the
    // default one, eval/data beside the binary)
    snprintf(args, sizeof(args), "eval amber --data " AMBER_FIX " --answers " AMBER_FIX
             "/answers.json --out %s", outp);
    rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    j = read_json(outp);
    if (j) {
        const cJSON *g = at(at(j, "metrics"), "generative");
        EXPECT_NEAR(num(g, "chair", NULL), 6.0 / 11, 1e-12);
        EXPECT_NEAR(num(g, "cover", NULL), 4.0 / 7, 1e-12);
        EXPECT_NEAR(num(g, "hal", NULL), 0.75, 1e-12);
        EXPECT_NEAR(num(g, "cog", NULL), 2.0 / 6, 1e-12);
        cJSON_Delete(j);
    }
    free(out); free(err); free(outp);
}

// AMBER's inference.py itself on the same files (tests/fixtures/amber/official.json from
// tests/ref/amber_official.py, its spaCy, POS tagger and Punkt stood in for as that script says): every count
// it keeps, and every number it prints.
TEST(eval_amber_matches_official_scorer) {
    char *text = read_file(AMBER_FIX "/official.json", NULL);
    cJSON *off = cJSON_Parse(text);
    free(text);
    if (!off) { test_fail(__FILE__, __LINE__, "official.json does not parse"); return; }
    AmberOptions o = {.answers = AMBER_FIX "/answers.json", .annotations = AMBER_FIX "/annotations.json",
                      .relation = AMBER_FIX "/relation.json", .safe_words = AMBER_FIX "/safe_words.txt",
                      .nouns = "eval/data/amber_nouns.tsv", .similar = AMBER_FIX "/similar.tsv", .threshold = 0.8};
    AmberResult r;
    amber_eval_files(&o, &r, NULL);
    const cJSON *c = at(off, "counts");
    const AmberGenCounts *g = &r.gen;
    EXPECT_NEAR(num(c, "chair_score", NULL), g->hallucinated_nouns, 0);
    EXPECT_NEAR(num(c, "chair_num", NULL), g->nouns, 0);
    EXPECT_NEAR(num(c, "safe_cover_score", NULL), g->truth_covered, 0);
    EXPECT_NEAR(num(c, "safe_cover_num", NULL), g->truth, 0);
    EXPECT_NEAR(num(c, "hallu_cover_score", NULL), g->hallu_covered, 0);
    EXPECT_NEAR(num(c, "hallu_cover_num", NULL), g->hallu, 0);
    EXPECT_NEAR(num(c, "non_hallu_score", NULL), g->captions - g->hallucinated_captions, 0);
    EXPECT_NEAR(num(c, "non_hallu_num", NULL), g->captions, 0);
    AmberGenRates gr;
    amber_gen_official(g, &gr);
    const cJSON *gt = at(off, "Generative Task");
    EXPECT_NEAR(num(gt, "CHAIR", NULL), gr.chair, 1e-9);
    EXPECT_NEAR(num(gt, "Cover", NULL), gr.cover, 1e-9);
    EXPECT_NEAR(num(gt, "Hal", NULL), gr.hal, 1e-9);
    EXPECT_NEAR(num(gt, "Cog", NULL), gr.cog, 1e-9);
    // the script's count prefixes and printed sections for each dimension
    const struct { AmberDim d; const char *prefix, *section; } dims[] = {
        {AMBER_DISCRIMINATIVE, "qa", "Descriminative Task"}, {AMBER_EXISTENCE, "ha_qa", "Exsitence"},
        {AMBER_STATE, "as_qa", "State"}, {AMBER_NUMBER, "an_qa", "Number"}, {AMBER_ACTION, "aa_qa", "Action"},
        {AMBER_RELATION, "asso_qa", "Relation"}, {AMBER_ATTRIBUTE, NULL, "Attribute"}};
    for (size_t k = 0; k < sizeof(dims) / sizeof(dims[0]); k++) {
        const AmberQaCounts *q = &r.dims[dims[k].d];
        if (dims[k].prefix) {
            const struct { const char *suffix; int v; } counts[] = {
                {"correct_score", q->correct}, {"correct_num", q->n}, {"no_score", q->tp}, {"no_num", q->truth_no},
                {"ans_no_score", q->tp}, {"ans_no_num", q->ans_no}};
            for (size_t m = 0; m < 6; m++) {
                char key[64];
                snprintf(key, sizeof(key), "%s_%s", dims[k].prefix, counts[m].suffix);
                EXPECTF(num(c, key, NULL) == counts[m].v, "%s: official %g, vlm %d", key, num(c, key, NULL), counts[m].v);
            }
        }
        AmberQaRates qr;
        amber_qa_official(q, dims[k].d, &qr);
        const cJSON *s = at(off, dims[k].section);
        EXPECTF(num(s, "Accuracy", NULL) == qr.accuracy, "%s accuracy: %g vs %g", dims[k].section, num(s, "Accuracy", NULL), qr.accuracy);
        EXPECTF(num(s, "Precision", NULL) == qr.precision, "%s precision: %g vs %g", dims[k].section, num(s, "Precision", NULL), qr.precision);
        EXPECTF(num(s, "Recall", NULL) == qr.recall, "%s recall: %g vs %g", dims[k].section, num(s, "Recall", NULL), qr.recall);
        EXPECTF(num(s, "F1", NULL) == qr.f1, "%s F1: %g vs %g", dims[k].section, num(s, "F1", NULL), qr.f1);
    }
    amber_result_free(&r);
    cJSON_Delete(off);
}

TEST(eval_amber_answers_by_query_order) {
    // what vlm sample writes for query.json (no ids, in query order) scores as the id-keyed answers do
    char *outp = path_join(test_tmpdir(), "amber_q.json"), args[1024], *out, *err;
    snprintf(args, sizeof(args), AMBER_ARGS " --answers " AMBER_FIX "/answers_sample.jsonl --questions " AMBER_FIX
             "/query.json --out %s", outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "matched to the queries by order") != NULL, "%s", out);
    cJSON *j = read_json(outp);
    if (j) {
        EXPECT_NEAR(num(j, "metrics", "generative", "chair", NULL), 5.0 / 11, 1e-12);
        EXPECT_NEAR(num(amber_dim(j, "all"), "f1", NULL), 2.0 / 3, 1e-12);
        cJSON_Delete(j);
    }
    free(out); free(err); free(outp);
    // without the query file these answers carry no id
    snprintf(args, sizeof(args), AMBER_ARGS " --answers " AMBER_FIX "/answers_sample.jsonl");
    expect_cli_error(args, "answers_sample.jsonl:1: the answer has no \"id\"", "--questions", NULL);
}

TEST(eval_amber_tables_and_lemmas) {
    AmberVocab v;
    amber_vocab_load(&v, AMBER_FIX "/relation.json", AMBER_FIX "/safe_words.txt", "eval/data/amber_nouns.tsv",
                     AMBER_FIX "/similar.tsv", 0.8);
    EXPECT_INT_EQ(v.n_words, 16);
    EXPECT_INT_EQ(v.not_in_table, 0);
    // NLTK's lemmas, as the table keeps them; AMBER's lemmatizer is case-sensitive
    static const char *const forms[][2] = {
        {"dogs", "dog"}, {"people", "people"}, {"tires", "tire"}, {"women", "woman"}, {"desks", "desk"},
        {"cups", "cup"}, {"men", NULL}, {"Dog", NULL}, {"DOG", NULL}, {"doggy", NULL}, {"grasses", "grass"}};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        int w = amber_noun(&v, forms[i][0]);
        EXPECTF(forms[i][1] ? w >= 0 && !strcmp(v.words[w], forms[i][1]) : w < 0, "%s -> %s, expected %s", forms[i][0],
                w >= 0 ? v.words[w] : "(none)", forms[i][1] ? forms[i][1] : "(none)");
    }
    const int cat = strmap_get(&v.index, "cat"), dog = strmap_get(&v.index, "dog"), cup = strmap_get(&v.index, "cup"),
              table = strmap_get(&v.index, "table");
    EXPECT(amber_similar(&v, cat, dog) && amber_similar(&v, dog, cat) && amber_similar(&v, cup, cup));
    EXPECT(!amber_similar(&v, cup, table));  // 0.6
    EXPECT(v.safe[strmap_get(&v.index, "floor")] && !v.safe[cat]);
    amber_vocab_free(&v);
    // the released vocabulary's lemmas that differ from the word (tests/ref/make_amber_tables.py's table)
    char *tsv = read_file("eval/data/amber_nouns.tsv", NULL);
    EXPECT(strstr(tsv, "\nknives\tknife\n") && strstr(tsv, "\nchildren\tchild\n") && strstr(tsv, "\nmice\tmouse\n"));
    EXPECT(strstr(tsv, "\nsunglasses\t-\n") != NULL);  // WordNet's shortest lemma is "sunglass", not an object
    free(tsv);

    // an object the table does not list counts as written, with a warning
    char *rel = test_write_tmp("amber_rel.json", "{\"zorb\": [], \"dog\": [\"cat\"]}");
    char *ann = test_write_tmp("amber_ann.json", "[{\"id\": 1, \"type\": \"generative\", \"truth\": [\"dog\"], \"hallu\": [\"zorb\"]}]");
    char *ans = test_write_tmp("amber_ans.json", "[{\"id\": 1, \"response\": \"A zorb, zorbs and cats.\"}]");
    char *outp = path_join(test_tmpdir(), "amber_z.json"), args[2048], *out, *err;
    snprintf(args, sizeof(args), "eval amber --annotations %s --relation %s --safe-words " AMBER_FIX "/safe_words.txt "
             "--nouns eval/data/amber_nouns.tsv --answers %s --out %s", ann, rel, ans, outp);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(err, "warning: 1 objects of") != NULL, "%s", err);
    cJSON *j = read_json(outp);
    if (j) {  // zorb (as written; not "zorbs") and cats -> cat, an association of dog: 2 nouns, zorb hallucinated
        const cJSON *c = cJSON_GetArrayItem(at(j, "per_item"), 0);
        EXPECT_STRS(at(c, "nouns"), "zorb", "cat");
        EXPECT_STRS(at(c, "hallucinated"), "zorb");
        EXPECT_STRS(at(c, "truth_covered"), "dog");
        cJSON_Delete(j);
    }
    free(out); free(err); free(outp); free(rel); free(ann); free(ans);
}

TEST(eval_amber_bad_input) {
    char args[2048];
    char *ans = test_write_tmp("amber_e_ans.json", "[{\"id\": 4, \"response\": \"No\"}, {\"id\": 99, \"response\": \"No\"}]");
    snprintf(args, sizeof(args), AMBER_ARGS " --answers %s", ans);
    expect_cli_error(args, "amber_e_ans.json:2: id 99 is not annotated in", NULL);
    char *dup = test_write_tmp("amber_e_dup.json", "[{\"id\": 4, \"response\": \"No\"}, {\"id\": \"4\", \"response\": \"Yes\"}]");
    snprintf(args, sizeof(args), AMBER_ARGS " --answers %s", dup);
    expect_cli_error(args, "amber_e_dup.json:2: id 4 is answered twice", NULL);
    char *noresp = test_write_tmp("amber_e_noresp.json", "[{\"id\": 4, \"answer\": \"No\"}]");
    snprintf(args, sizeof(args), AMBER_ARGS " --answers %s", noresp);
    expect_cli_error(args, "amber_e_noresp.json:1: no \"text\"", NULL);

    static const struct { const char *file, *text, *flag, *want; } bad[] = {
        {"amber_e_ann1.json", "[{\"id\": 1, \"type\": \"generative\", \"truth\": [\"unicorn\"], \"hallu\": []}]", "--annotations",
         "amber_e_ann1.json: record 1 (id 1): truth object \"unicorn\" is not a key of relation.json"},
        {"amber_e_ann2.json", "[{\"id\": 4, \"type\": \"discriminative-colour\", \"truth\": \"no\"}]", "--annotations",
         "amber_e_ann2.json: record 1 (id 4): unknown \"type\" \"discriminative-colour\""},
        {"amber_e_ann3.json", "[{\"id\": 4, \"type\": \"relation\", \"truth\": \"maybe\"}]", "--annotations",
         "amber_e_ann3.json: record 1 (id 4): \"truth\" of a yes/no question must be \"yes\" or \"no\""},
        {"amber_e_ann4.json", "[{\"id\": 4, \"type\": \"relation\", \"truth\": \"no\"}, {\"id\": 4, \"type\": \"relation\", \"truth\": \"no\"}]",
         "--annotations", "amber_e_ann4.json: record 2 (id 4): the id is annotated twice"},
        {"amber_e_ann5.json", "[{\"id\": 0, \"type\": \"relation\", \"truth\": \"no\"}]", "--annotations",
         "amber_e_ann5.json: record 1: \"id\" must be a positive integer"},
        {"amber_e_ann6.json", "[{\"id\": 1, \"type\": \"generative\", \"truth\": [\"dog\"]}]", "--annotations",
         "amber_e_ann6.json: record 1 (id 1): \"hallu\" must be a list of objects"},
        {"amber_e_rel1.json", "{\"dog\": \"puppy\"}", "--relation", "amber_e_rel1.json: \"dog\": expected a list of associated words"},
        {"amber_e_rel2.json", "{\"dog\": [\n\"puppy\",\n", "--relation", "amber_e_rel2.json:3: invalid JSON"},
        {"amber_e_nouns.tsv", "# a table\ndogs\tdog\ncats cat\n", "--nouns", "amber_e_nouns.tsv:3: expected \"form<TAB>object\""},
        {"amber_e_sim.tsv", "cat\tdog\t0.9\ncat\tdog\tvery\n", "--similar", "amber_e_sim.tsv:2: expected \"word<TAB>word<TAB>similarity\""},
        {"amber_e_sim2.tsv", "cat\tdog\t0.9\ndog\tcat\t0.8\n", "--similar", "amber_e_sim2.tsv:2: the pair dog, cat is listed twice"},
    };
    char *good = test_write_tmp("amber_e_good.json", "[{\"id\": 4, \"response\": \"No\"}]");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *f = test_write_tmp(bad[i].file, bad[i].text);
        snprintf(args, sizeof(args), AMBER_ARGS " --answers %s %s %s", good, bad[i].flag, f);
        expect_cli_error(args, bad[i].want, NULL);
        free(f);
    }
    snprintf(args, sizeof(args), AMBER_ARGS " --answers %s --parser loose", good);
    expect_cli_error(args, "--parser must be exact, strict or reference", NULL);
    expect_cli_error("eval amber --answers x.json", "give --data", NULL);
    free(ans); free(dup); free(noresp); free(good);
}
