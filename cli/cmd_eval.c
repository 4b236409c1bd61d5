// vlm eval: rule-based benchmark scorers, one subcommand each (eval/*.h describe the rules).
//   pope    yes/no object probing: accuracy, precision, recall, F1, yes-ratio per split and their mean
//   chair   object hallucination in captions: CHAIR_s, CHAIR_i, recall, average length
//   mmvp    two-option visual pattern questions: per-question and paired accuracy
// Answers are what `vlm sample` writes (eval/answers.h), matched to questions by question_id or by order.
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../eval/answers.h"
#include "../eval/chair.h"
#include "../eval/mmvp.h"
#include "../eval/qa.h"
#include "../train/plot.h"
#include "../eval/pope.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

// Every value of a flag that may repeat ("--name V" or "--name=V"), in order; marks them used.
static int arg_all(Args *a, const char *name, const char **out, int max) {
    size_t n = strlen(name);
    int k = 0;
    for (int i = 0; i < a->argc; i++) {
        const char *s = a->argv[i], *v = NULL;
        if (strncmp(s, name, n)) continue;
        if (s[n] == '=') { a->used[i] = 1; v = s + n + 1; }
        else if (s[n] == 0) {
            if (i + 1 >= a->argc) fatal("%s: %s needs a value", a->command, name);
            a->used[i] = a->used[i + 1] = 1;
            v = a->argv[++i];
        } else continue;
        if (k == max) fatal("%s: at most %d %s", a->command, max, name);
        out[k++] = v;
    }
    return k;
}

static void write_json(cJSON *j, const char *path) {
    char *s = cJSON_Print(j);
    size_t len = strlen(s);
    s = xrealloc(s, len + 2);
    s[len++] = '\n';
    write_file_atomic(path, s, len);
    free(s);
}

// ---- vlm eval pope ---------------------------------------------------------------------------------

static const char *pope_help =
    "usage: vlm eval pope --questions FILE --answers FILE.jsonl [--questions FILE --answers FILE.jsonl ...]\n"
    "                     [--parser reference|strict] [--suffix TEXT] [--out FILE.json]\n"
    "\n"
    "Scores yes/no answers to POPE questions, positive class yes: accuracy, precision, recall, F1,\n"
    "yes-ratio, TP/FP/TN/FN, per question file (random, popular, adversarial) and their mean.\n"
    "\n"
    "  --questions FILE  POPE question file (JSON Lines {question_id, image, text, label}); repeat the\n"
    "                    --questions/--answers pair for several splits, paired in the order given\n"
    "  --answers FILE    generated answers (JSON Lines {\"index\", \"question_id\"?, \"text\"}, as vlm sample\n"
    "                    writes), matched by question_id when both files have them, else by order\n"
    "  --parser P        reference (default): POPE/LLaVA/SeVa's rule -- the first sentence, commas\n"
    "                    deleted, split on spaces; a token No/no/not -> no, else yes (so \"NO\", \"Nope\",\n"
    "                    \"There isn't\" read as yes).\n"
    "                    strict: yes/no words after lowercasing; answers with neither or both are\n"
    "                    unparseable and scored wrong\n"
    "                    Either way \"unparseable\" counts the answers the strict parser cannot read.\n"
    "  --suffix TEXT     the prompt suffix the answers were generated with (recorded in the output,\n"
    "                    e.g. LLaVA's \"\\nAnswer the question using a single word or phrase.\")\n"
    "  --out FILE        write the results as JSON (atomically)\n";

static int eval_pope(int argc, char **argv) {
    Args a = args_init("vlm eval pope", argc, argv);
    if (args_help(&a)) { fputs(pope_help, stdout); return 0; }
    const char *qs[16], *as[16];
    int nq = arg_all(&a, "--questions", qs, 16), na = arg_all(&a, "--answers", as, 16);
    const char *parser_name = arg_str(&a, "--parser", "reference"), *suffix = arg_str(&a, "--suffix", NULL);
    const char *out = arg_str(&a, "--out", NULL);
    args_finish(&a);
    if (nq == 0) fatal("vlm eval pope: --questions and --answers are required (see --help)");
    if (nq != na) fatal("vlm eval pope: %d --questions but %d --answers; give one answer file per question file", nq, na);
    PopeParser parser;
    if (!strcmp(parser_name, "reference")) parser = POPE_PARSER_REFERENCE;
    else if (!strcmp(parser_name, "strict")) parser = POPE_PARSER_STRICT;
    else fatal("vlm eval pope: --parser must be reference or strict, got '%s'", parser_name);

    PopeResult r[16];
    PopeMetrics ms[16], mean;
    for (int i = 0; i < nq; i++) {
        pope_eval_files(qs[i], as[i], parser, &r[i]);
        ms[i] = r[i].m;
    }
    pope_mean(ms, nq, &mean);

    printf("POPE, parser %s, prompt suffix %s%s%s\n", parser_name, suffix ? "\"" : "", suffix ? suffix : "not given (--suffix)",
           suffix ? "\"" : "");
    printf("%-24s %6s %-12s %7s %7s %7s %7s %7s %6s %6s %6s %6s %11s\n", "split", "n", "matched by", "acc", "prec",
           "recall", "f1", "yes%", "tp", "fp", "tn", "fn", "unparseable");
    for (int i = 0; i < nq; i++) {
        const PopeMetrics *m = &r[i].m;
        printf("%-24s %6d %-12s %7.2f %7.2f %7.2f %7.2f %7.2f %6d %6d %6d %6d %11d\n", r[i].name, m->n,
               match_mode_name((MatchMode)r[i].match), 100 * m->accuracy, 100 * m->precision, 100 * m->recall,
               100 * m->f1, 100 * m->yes_ratio, m->tp, m->fp, m->tn, m->fn, m->unparseable);
    }
    if (nq > 1)
        printf("%-24s %6d %-12s %7.2f %7.2f %7.2f %7.2f %7.2f %6s %6s %6s %6s %11d\n", "mean", mean.n, "", 100 * mean.accuracy,
               100 * mean.precision, 100 * mean.recall, 100 * mean.f1, 100 * mean.yes_ratio, "", "", "", "", mean.unparseable);
    for (int i = 0; i < nq; i++)
        if (r[i].typo_imange)
            printf("note: %s has %d questions with the typo \"imange\": POPE before its spelling fix (the revision "
                   "LLaVA pins, e3e3926); numbers differ from POPE HEAD's files\n", r[i].questions, r[i].typo_imange);
    if (parser == POPE_PARSER_STRICT && mean.unparseable)
        printf("note: the %d unparseable answers are scored wrong (neither predicted yes nor no)\n", mean.unparseable);

    if (out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "pope");
        cJSON_AddStringToObject(j, "parser", parser_name);
        if (suffix) cJSON_AddStringToObject(j, "prompt_suffix", suffix);
        else cJSON_AddNullToObject(j, "prompt_suffix");
        cJSON *splits = cJSON_AddArrayToObject(j, "splits");
        for (int i = 0; i < nq; i++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "name", r[i].name);
            cJSON_AddStringToObject(s, "questions", r[i].questions);
            cJSON_AddStringToObject(s, "answers", r[i].answers);
            cJSON_AddStringToObject(s, "matched_by", match_mode_name((MatchMode)r[i].match));
            cJSON_AddNumberToObject(s, "imange_typos", r[i].typo_imange);
            cJSON_AddItemToArray(splits, pope_metrics_json(s, &r[i].m));
        }
        cJSON_AddItemToObject(j, "mean", pope_metrics_json(cJSON_CreateObject(), &mean));
        write_json(j, out);
        cJSON_Delete(j);
    }
    for (int i = 0; i < nq; i++) pope_result_free(&r[i]);
    return 0;
}

// ---- vlm eval chair --------------------------------------------------------------------------------

static const char *chair_help =
    "usage: vlm eval chair --captions FILE.jsonl --objects GT.json --synonyms SYN.txt [--questions FILE.jsonl]\n"
    "                      [--gt-captions captions.json] [--no-coco-rules] [--out FILE.json]\n"
    "\n"
    "Object hallucination in generated captions (Rohrbach et al. 2018): CHAIR_s (captions with a\n"
    "hallucinated object), CHAIR_i (hallucinated object mentions / object mentions), recall (ground-truth\n"
    "objects mentioned) and the average caption length in words.\n"
    "\n"
    "  --captions FILE    generated captions (JSON Lines with \"text\"; \"image_id\" or \"image\" names the image,\n"
    "                     else the matching --questions record does)\n"
    "  --objects GT       ground truth: {\"image_id\": [\"dog\", \"person\", ...]} or a COCO instances file\n"
    "  --synonyms SYN     the object vocabulary: one line per class, comma-separated synonyms, the first\n"
    "                     naming the class (eval/data/coco_synonyms.txt for COCO)\n"
    "  --questions FILE   the records the captions were generated from (image_id / image, question_id)\n"
    "  --gt-captions F    COCO reference captions: their objects join the ground truth, as in the original\n"
    "  --no-coco-rules    leave out chair.py's COCO phrase rules (baby/adult animals, passenger jet/train,\n"
    "                     bow tie, toilet seat, home plate) for a vocabulary of another world\n"
    "  --out FILE         write the metrics and every caption's mentions as JSON (atomically)\n"
    "\n"
    "Images are found under image_id, else the image path, its file name, the name without extension, or\n"
    "COCO's number in it (COCO_val2014_000000310196.jpg -> 310196).\n";

static int eval_chair(int argc, char **argv) {
    Args a = args_init("vlm eval chair", argc, argv);
    if (args_help(&a)) { fputs(chair_help, stdout); return 0; }
    ChairOptions o = {0};
    o.captions = arg_str(&a, "--captions", NULL);
    o.questions = arg_str(&a, "--questions", NULL);
    o.objects = arg_str(&a, "--objects", NULL);
    o.synonyms = arg_str(&a, "--synonyms", NULL);
    o.gt_captions = arg_str(&a, "--gt-captions", NULL);
    o.coco_rules = !arg_flag(&a, "--no-coco-rules");
    const char *out = arg_str(&a, "--out", NULL);
    args_finish(&a);
    if (!o.captions || !o.objects || !o.synonyms)
        fatal("vlm eval chair: --captions, --objects and --synonyms are required (see --help)");
    ChairMetrics m;
    cJSON *per = NULL;
    int match;
    chair_eval_files(&o, &m, out ? &per : NULL, &match);
    printf("CHAIR, %s%s%s\n", o.synonyms, o.coco_rules ? " + COCO phrase rules" : "",
           match >= 0 ? (match == MATCH_BY_QUESTION_ID ? ", captions matched to questions by question_id"
                                                       : ", captions matched to questions by order") : "");
    printf("%8s %8s %8s %8s %8s %9s %13s\n", "captions", "CHAIR_s", "CHAIR_i", "recall", "avg_len", "mentions",
           "hallucinated");
    printf("%8d %8.2f %8.2f %8.2f %8.2f %9d %13d\n", m.n_captions, 100 * m.chair_s, 100 * m.chair_i, 100 * m.recall,
           m.avg_len, m.n_mentions, m.n_hallucinated_mentions);
    if (out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "chair");
        cJSON_AddStringToObject(j, "captions", o.captions);
        cJSON_AddStringToObject(j, "objects", o.objects);
        cJSON_AddStringToObject(j, "synonyms", o.synonyms);
        cJSON_AddBoolToObject(j, "coco_rules", o.coco_rules);
        if (match >= 0) cJSON_AddStringToObject(j, "matched_by", match_mode_name((MatchMode)match));
        cJSON_AddItemToObject(j, "metrics", chair_metrics_json(&m));
        cJSON_AddItemToObject(j, "per_caption", per);
        write_json(j, out);
        cJSON_Delete(j);
    }
    return 0;
}

// ---- vlm eval mmvp ---------------------------------------------------------------------------------

static const char *mmvp_help =
    "usage: vlm eval mmvp --questions Questions.csv --answers FILE.jsonl [--rule first4|letter] [--out FILE.json]\n"
    "\n"
    "MMVP's 300 two-option questions: per-question accuracy and paired accuracy (rows 2k-1 and 2k form a\n"
    "pair; a pair counts when both answers are right -- the official MMVP number).\n"
    "\n"
    "  --questions CSV  Questions.csv (columns Index, Question, Options, Correct Answer)\n"
    "  --answers FILE   generated answers (JSON Lines with \"text\"), matched to Index by question_id, else\n"
    "                   by order\n"
    "  --rule R         first4 (default): S-VCO's grader -- the first 4 characters of the answer without\n"
    "                   parentheses and spaces must equal the label (\"(a) Open\" passes, \"The answer is (a)\"\n"
    "                   fails). letter: a standalone option letter -- \"(b)\", \"B\", \"B. Closed\",\n"
    "                   \"answer is b\", or the text of exactly one option\n"
    "                   Either way \"unparseable\" counts the answers the letter rule cannot read.\n"
    "  --out FILE       write the metrics and every answer's grading as JSON (atomically)\n";

static int eval_mmvp(int argc, char **argv) {
    Args a = args_init("vlm eval mmvp", argc, argv);
    if (args_help(&a)) { fputs(mmvp_help, stdout); return 0; }
    const char *q = arg_str(&a, "--questions", NULL), *ans = arg_str(&a, "--answers", NULL);
    const char *rule_name = arg_str(&a, "--rule", "first4"), *out = arg_str(&a, "--out", NULL);
    args_finish(&a);
    if (!q || !ans) fatal("vlm eval mmvp: --questions and --answers are required (see --help)");
    MmvpRule rule;
    if (!strcmp(rule_name, "first4")) rule = MMVP_RULE_FIRST4;
    else if (!strcmp(rule_name, "letter")) rule = MMVP_RULE_LETTER;
    else fatal("vlm eval mmvp: --rule must be first4 or letter, got '%s'", rule_name);
    MmvpMetrics m;
    cJSON *per = NULL;
    int match;
    mmvp_eval_files(q, ans, rule, &m, out ? &per : NULL, &match);
    printf("MMVP, rule %s, answers matched by %s\n", rule_name, match_mode_name((MatchMode)match));
    printf("%6s %8s %6s %9s %11s\n", "n", "acc", "pairs", "pair_acc", "unparseable");
    printf("%6d %8.2f %6d %9.2f %11d\n", m.n, 100 * m.accuracy, m.pairs, 100 * m.pair_accuracy, m.unparseable);
    if (out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "mmvp");
        cJSON_AddStringToObject(j, "rule", rule_name);
        cJSON_AddStringToObject(j, "questions", q);
        cJSON_AddStringToObject(j, "answers", ans);
        cJSON_AddStringToObject(j, "matched_by", match_mode_name((MatchMode)match));
        cJSON_AddItemToObject(j, "metrics", mmvp_metrics_json(&m));
        cJSON_AddItemToObject(j, "per_question", per);
        write_json(j, out);
        cJSON_Delete(j);
    }
    return 0;
}

// ---- vlm eval qa ------------------------------------------------------------------------------------

static const char *qa_help =
    "usage: vlm eval qa --questions FILE.jsonl --answers FILE.jsonl [--rule exact|contains] [--out FILE.json]\n"
    "\n"
    "Short-answer accuracy, overall and per question type (the miniature study's general QA).\n"
    "\n"
    "  --questions FILE  JSON Lines {question_id, type?, answer, ...} (vlm data synth's qa.jsonl)\n"
    "  --answers FILE    generated answers (JSON Lines with \"text\"), matched by question_id, else by order\n"
    "  --rule R          both sides lowercased, split into words, a/an/the dropped; then exact (default): the\n"
    "                    same words (\"The circle.\" = \"circle\"); contains: the answer's words appear in a row\n"
    "                    in the response (\"It is red.\" contains \"red\")\n"
    "  --out FILE        write the metrics and every answer's grading as JSON (atomically)\n";

static int eval_qa(int argc, char **argv) {
    Args a = args_init("vlm eval qa", argc, argv);
    if (args_help(&a)) { fputs(qa_help, stdout); return 0; }
    const char *q = arg_str(&a, "--questions", NULL), *ans = arg_str(&a, "--answers", NULL);
    const char *rule_name = arg_str(&a, "--rule", "exact"), *out = arg_str(&a, "--out", NULL);
    args_finish(&a);
    if (!q || !ans) fatal("vlm eval qa: --questions and --answers are required (see --help)");
    QaRule rule;
    if (!strcmp(rule_name, "exact")) rule = QA_RULE_EXACT;
    else if (!strcmp(rule_name, "contains")) rule = QA_RULE_CONTAINS;
    else fatal("vlm eval qa: --rule must be exact or contains, got '%s'", rule_name);
    QaMetrics m;
    cJSON *per = NULL;
    int match;
    qa_eval_files(q, ans, rule, &m, out ? &per : NULL, &match);
    printf("QA, rule %s, answers matched by %s\n", rule_name, match_mode_name((MatchMode)match));
    printf("%-16s %6s %8s\n", "type", "n", "acc");
    for (int i = 0; i < m.n_types; i++)
        printf("%-16s %6d %8.2f\n", m.types[i].name, m.types[i].n, 100.0 * m.types[i].correct / m.types[i].n);
    printf("%-16s %6d %8.2f\n", "all", m.n, 100 * m.accuracy);
    if (out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "qa");
        cJSON_AddStringToObject(j, "rule", rule_name);
        cJSON_AddStringToObject(j, "questions", q);
        cJSON_AddStringToObject(j, "answers", ans);
        cJSON_AddStringToObject(j, "matched_by", match_mode_name((MatchMode)match));
        cJSON_AddItemToObject(j, "metrics", qa_metrics_json(&m));
        cJSON_AddItemToObject(j, "per_question", per);
        write_json(j, out);
        cJSON_Delete(j);
    }
    qa_metrics_free(&m);
    return 0;
}

// ---- vlm eval table ---------------------------------------------------------------------------------

static const char *table_help =
    "usage: vlm eval table [--out FILE.md] [--svg FILE.svg] RUN_DIR...\n"
    "\n"
    "One markdown table over evaluated models: each RUN_DIR holds pope.json, chair.json, mmvp.json and qa.json\n"
    "(vlm eval ... --out). Runs whose folders share a name (seed1/eval/svco, seed2/eval/svco) form one row,\n"
    "mean +- standard deviation over them; rows keep the order of first appearance. Missing files leave\n"
    "their cells empty. Values in percent. --svg also draws them as grouped bars (mean, +- std as a line).\n";

// a number at a path of keys in a JSON file's object, NaN when the file or the key is missing
static double json_at(const cJSON *j, const char *k1, const char *k2) {
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, k1) : NULL;
    if (v && k2) v = cJSON_GetObjectItemCaseSensitive(v, k2);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static cJSON *json_file(const char *dir, const char *name) {
    char *p = path_join(dir, name), *text = try_read_file(p, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (text && !j) fatal("%s: not valid JSON", p);
    free(text);
    free(p);
    return j;
}

enum { TABLE_COLS = 10 };
static const char *table_cols[TABLE_COLS] = {"POPE rand acc", "POPE pop acc", "POPE adv acc", "POPE adv F1", "adv yes %",
                                             "CHAIR_s (lower)", "CHAIR_i (lower)", "MMVP acc", "MMVP pairs", "QA acc"};

// the row of one run folder, in percent
static void table_row(const char *dir, double v[TABLE_COLS]) {
    for (int c = 0; c < TABLE_COLS; c++) v[c] = NAN;
    cJSON *pope = json_file(dir, "pope.json"), *chair = json_file(dir, "chair.json");
    cJSON *mmvp = json_file(dir, "mmvp.json"), *qa = json_file(dir, "qa.json");
    const cJSON *splits = pope ? cJSON_GetObjectItemCaseSensitive(pope, "splits") : NULL;
    // the splits in the order they were scored: random, popular, adversarial (demo/run.sh)
    for (int k = 0; k < 3 && cJSON_IsArray(splits); k++) {
        const cJSON *s = cJSON_GetArrayItem(splits, k);
        v[k] = 100 * json_at(s, "accuracy", NULL);
        if (k == 2) { v[3] = 100 * json_at(s, "f1", NULL); v[4] = 100 * json_at(s, "yes_ratio", NULL); }
    }
    v[5] = 100 * json_at(chair, "metrics", "chair_s");
    v[6] = 100 * json_at(chair, "metrics", "chair_i");
    v[7] = 100 * json_at(mmvp, "metrics", "accuracy");
    v[8] = 100 * json_at(mmvp, "metrics", "pair_accuracy");
    v[9] = 100 * json_at(qa, "metrics", "accuracy");
    cJSON_Delete(pope); cJSON_Delete(chair); cJSON_Delete(mmvp); cJSON_Delete(qa);
}

static int eval_table(int argc, char **argv) {
    const char *out = NULL, *svg = NULL;
    int n = 0;
    const char **dirs = xmalloc(sizeof(char *) * (argc + 1));
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(table_help, stdout); free(dirs); return 0; }
        if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "--svg")) {
            if (i + 1 == argc) fatal("vlm eval table: %s needs a file", argv[i]);
            if (!strcmp(argv[i], "--out")) out = argv[++i];
            else svg = argv[++i];
        } else if (argv[i][0] == '-') fatal("vlm eval table: unknown flag '%s' (see --help)", argv[i]);
        else dirs[n++] = argv[i];
    }
    if (n == 0) fatal("vlm eval table: give at least one run folder (see --help)");
    // rows: the folder names, in order of first appearance
    char **names = xmalloc(sizeof(char *) * n);
    int *row_of = xmalloc(sizeof(int) * n), rows = 0;
    for (int i = 0; i < n; i++) {
        char *copy = xstrdup(dirs[i]);
        size_t len = strlen(copy);
        while (len > 1 && copy[len - 1] == '/') copy[--len] = 0;
        const char *slash = strrchr(copy, '/'), *base = slash ? slash + 1 : copy;
        row_of[i] = -1;
        for (int r = 0; r < rows && row_of[i] < 0; r++) if (!strcmp(names[r], base)) row_of[i] = r;
        if (row_of[i] < 0) { names[rows] = xstrdup(base); row_of[i] = rows++; }
        free(copy);
    }
    double *vals = xmalloc(sizeof(double) * n * TABLE_COLS);
    for (int i = 0; i < n; i++) table_row(dirs[i], vals + (size_t)i * TABLE_COLS);
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) fatal("open_memstream failed");
    fprintf(f, "| model | runs |");
    for (int c = 0; c < TABLE_COLS; c++) fprintf(f, " %s |", table_cols[c]);
    fprintf(f, "\n|---|---|");
    for (int c = 0; c < TABLE_COLS; c++) fprintf(f, "---|");
    fprintf(f, "\n");
    // mean and sample standard deviation of each (row, column) over its runs; NaN where it has none
    double *mean = xmalloc(sizeof(double) * rows * TABLE_COLS), *sd = xmalloc(sizeof(double) * rows * TABLE_COLS);
    for (int r = 0; r < rows; r++) {
        int k = 0;
        for (int i = 0; i < n; i++) k += row_of[i] == r;
        fprintf(f, "| %s | %d |", names[r], k);
        for (int c = 0; c < TABLE_COLS; c++) {
            double sum = 0, sq = 0;
            int m = 0;
            for (int i = 0; i < n; i++) {
                double x = vals[(size_t)i * TABLE_COLS + c];
                if (row_of[i] != r || isnan(x)) continue;
                sum += x; sq += x * x; m++;
            }
            const double mu = m ? sum / m : NAN, var = m > 1 ? (sq - m * mu * mu) / (m - 1) : NAN;
            mean[r * TABLE_COLS + c] = mu;
            sd[r * TABLE_COLS + c] = m > 1 ? sqrt(var > 0 ? var : 0) : NAN;
            if (m == 0) fprintf(f, " |");
            else if (m == 1) fprintf(f, " %.1f |", mu);
            else fprintf(f, " %.1f ± %.1f |", mu, sd[r * TABLE_COLS + c]);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    if (svg) plot_bars_svg(svg, "held-out scenes (percent)", table_cols, TABLE_COLS, (const char *const *)names, rows, mean, sd);
    free(mean); free(sd);
    fwrite(buf, 1, blen, stdout);
    if (out) write_file_atomic(out, buf, blen);
    free(buf); free(vals); free(row_of); free(dirs);
    for (int r = 0; r < rows; r++) free(names[r]);
    free(names);
    return 0;
}

// ---- dispatch --------------------------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Sub;

static const Sub subs[] = {
    {"pope", eval_pope, "POPE yes/no object probing: accuracy, precision, recall, F1, yes-ratio"},
    {"chair", eval_chair, "CHAIR object hallucination in captions: CHAIR_s, CHAIR_i, recall, length"},
    {"mmvp", eval_mmvp, "MMVP two-option pairs: per-question and paired accuracy"},
    {"qa", eval_qa, "short-answer QA: accuracy overall and per question type"},
    {"table", eval_table, "a markdown table of evaluated runs, mean +- std over seeds"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: vlm eval <benchmark> [flags]   (vlm eval <benchmark> --help for its flags)\n\nbenchmarks:\n");
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].summary);
}

int cmd_eval(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (!strcmp(argv[0], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vlm eval: unknown benchmark '%s'\n\n", argv[0]);
    usage(stderr);
    return 2;
}
