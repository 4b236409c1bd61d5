// Rule-based benchmark scorers (eval/): POPE's two answer parsers and metrics, answer matching by
// question_id or order, CHAIR's object matching (synonyms, plurals, two-word objects, COCO rules) and
// metrics, MMVP's graders and pairs, the CSV reader, and the singularizer. Every expected metric is worked
// out by hand in the comments next to it.
#include <cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../eval/answers.h"
#include "../eval/chair.h"
#include "../eval/csv.h"
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
    MmvpOptions o;
    mmvp_options_parse("(a) Open (b) Closed", &o);
    EXPECT_INT_EQ(o.n_options, 2);
    EXPECT(o.letters[0] == 'a' && o.letters[1] == 'b');
    EXPECT(!strcmp(o.texts[0], "Open") && !strcmp(o.texts[1], "Closed"));
    // S-VCO's first-4 rule: the first 4 characters, parentheses and spaces removed, equal the cleaned label.
    EXPECT(mmvp_first4_correct("(a) Open", "(a)"));      // "(a) " -> "a"
    EXPECT(mmvp_first4_correct("A", "(a)"));
    EXPECT(mmvp_first4_correct("  (A)", "(a)"));
    EXPECT(!mmvp_first4_correct("a. Open", "(a)"));      // "a.op" -> "a.op"
    EXPECT(!mmvp_first4_correct("The answer is (a)", "(a)"));
    EXPECT(!mmvp_first4_correct("(b)", "(a)"));
    EXPECT(!mmvp_first4_correct("Open", "(a)"));
    // the letter rule
    EXPECT(mmvp_parse_letter("(a) Open", &o) == 'a');
    EXPECT(mmvp_parse_letter("The answer is (b).", &o) == 'b');
    EXPECT(mmvp_parse_letter("B", &o) == 'b');
    EXPECT(mmvp_parse_letter(" b. ", &o) == 'b');
    EXPECT(mmvp_parse_letter("A. Open", &o) == 'a');
    EXPECT(mmvp_parse_letter("b) Closed", &o) == 'b');
    EXPECT(mmvp_parse_letter("The answer is B", &o) == 'b');
    EXPECT(mmvp_parse_letter("Option A is right", &o) == 'a');
    EXPECT(mmvp_parse_letter("The wings are closed.", &o) == 'b');
    EXPECT(mmvp_parse_letter("A butterfly with open wings", &o) == 'a');  // the article is not option A
    EXPECT(mmvp_parse_letter("(a) or (b)", &o) == 0);                     // ambiguous
    EXPECT(mmvp_parse_letter("Open or closed, hard to say", &o) == 0);
    EXPECT(mmvp_parse_letter("", &o) == 0);
    EXPECT(mmvp_parse_letter("Reopened", &o) == 0);                       // whole words only
    mmvp_options_free(&o);
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

// ---- the results table -------------------------------------------------------------------------------

static void write_run(const char *dir, double pope_adv_acc, double mmvp_pairs, int with_qa) {
    char cmd[700], path[700], text[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", dir);
    if (test_shell(cmd) != 0) fatal("setup");
    snprintf(path, sizeof(path), "%s/pope.json", dir);
    snprintf(text, sizeof(text), "{\"splits\": [{\"name\": \"r\", \"accuracy\": 0.9}, {\"name\": \"p\", \"accuracy\": 0.8}, "
             "{\"name\": \"a\", \"accuracy\": %g, \"f1\": 0.5, \"yes_ratio\": 0.25}]}", pope_adv_acc);
    write_file_atomic(path, text, strlen(text));
    snprintf(path, sizeof(path), "%s/chair.json", dir);
    snprintf(text, sizeof(text), "{\"metrics\": {\"chair_s\": 0.125, \"chair_i\": 0.0625}}");
    write_file_atomic(path, text, strlen(text));
    snprintf(path, sizeof(path), "%s/mmvp.json", dir);
    snprintf(text, sizeof(text), "{\"metrics\": {\"accuracy\": 0.75, \"pair_accuracy\": %g}}", mmvp_pairs);
    write_file_atomic(path, text, strlen(text));
    if (with_qa) {
        snprintf(path, sizeof(path), "%s/qa.json", dir);
        snprintf(text, sizeof(text), "{\"metrics\": {\"accuracy\": 0.5}}");
        write_file_atomic(path, text, strlen(text));
    }
}

TEST(eval_table_mean_and_std_over_seeds) {
    char a[600], b[600], c[600], out[600], args[4096];
    snprintf(a, sizeof(a), "%s/table/seed1/svco", test_tmpdir());
    snprintf(b, sizeof(b), "%s/table/seed2/svco/", test_tmpdir());  // a trailing slash names the same run
    snprintf(c, sizeof(c), "%s/table/seed1/sft", test_tmpdir());
    write_run(a, 0.6, 0.2, 1);
    write_run(b, 0.7, 0.4, 1);
    write_run(c, 0.55, 0.1, 0);
    snprintf(out, sizeof(out), "%s/table.md", test_tmpdir());
    char svg[640];
    snprintf(svg, sizeof(svg), "%s/table.svg", test_tmpdir());
    snprintf(args, sizeof(args), "eval table --out %s --svg %s %s %s %s", out, svg, a, c, b);
    char *o, *e;
    EXPECT(test_run_vlm(args, &o, &e) == 0);
    char *t = try_read_file(out, NULL);
    EXPECTF(t && !strcmp(t, o), "the file and stdout differ");
    // svco: adversarial accuracy 65 +- 7.07 (sample std of 60 and 70), pairs 30 +- 14.1; sft alone, no QA
    EXPECTF(t && strstr(t, "| svco | 2 | 90.0 ± 0.0 | 80.0 ± 0.0 | 65.0 ± 7.1 | 50.0 ± 0.0 | 25.0 ± 0.0 | 12.5 ± 0.0 | 6.2 ± 0.0 | 75.0 ± 0.0 | 30.0 ± 14.1 | 50.0 ± 0.0 |"),
            "table:\n%s", t ? t : "(none)");
    EXPECTF(t && strstr(t, "| sft | 1 | 90.0 | 80.0 | 55.0 | 50.0 | 25.0 | 12.5 | 6.2 | 75.0 | 10.0 | |"), "table:\n%s", t ? t : "(none)");
    EXPECTF(t && strstr(t, "| svco |") < strstr(t, "| sft |"), "rows keep the order of first appearance");
    // the chart: a bar per (model, metric) with a value (sft has no QA: 19 of 20), an error bar per value with
    // a spread (svco's adversarial accuracy and MMVP pairs), a legend entry per model
    char *chart = try_read_file(svg, NULL);
    int bars = 0, lines = 0;
    for (const char *p = chart; p && (p = strstr(p, "<rect x=")); p++) bars++;
    for (const char *p = chart; p && (p = strstr(p, "stroke=\"#222\"")); p++) lines++;
    EXPECTF(chart && strncmp(chart, "<svg", 4) == 0 && strstr(chart, "</svg>"), "not an SVG document");
    EXPECT_INT_EQ(bars, 19 + 1 + 2);  // 19 bars, the plot frame, 2 legend swatches
    EXPECT_INT_EQ(lines, 2);
    EXPECTF(chart && strstr(chart, ">svco</text>") && strstr(chart, ">sft</text>"), "legend missing");
    free(chart);
    free(t); free(o); free(e);
    expect_cli_error("eval table", "at least one run folder", NULL);
    snprintf(args, sizeof(args), "eval table --bogus %s", a);
    expect_cli_error(args, "--bogus", NULL);
}
