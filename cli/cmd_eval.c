// vlm eval: rule-based benchmark scorers, one subcommand each (eval/*.h describe the rules).
//   pope    yes/no object probing: accuracy, precision, recall, F1, yes-ratio per split and their mean
//   chair   object hallucination in captions: CHAIR_s, CHAIR_i, recall, average length
//   mmvp    two-option visual pattern questions: per-question and paired accuracy
//   amber   AMBER: generative CHAIR, Cover, Hal, Cog and discriminative yes/no metrics per dimension
//   cvbench multiple-choice vision-centric questions: per source and task, CV-Bench's 2D/3D combination
// Answers are what `vlm sample` writes (eval/answers.h), matched to questions by question_id or by order.
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../eval/amber.h"
#include "../eval/answers.h"
#include "../eval/chair.h"
#include "../eval/cvbench.h"
#include "../eval/fields.h"
#include "../eval/mmvp.h"
#include "../eval/qa.h"
#include "../eval/verdict.h"
#include "../train/plot.h"
#include "../eval/pope.h"
#include "../eval/table.h"
#include "../util/args.h"
#include "../util/common.h"
#include "../util/jsonl.h"
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

// The per-item block of an output JSON: {"ids": [...]} plus int arrays added by the caller. ids are the
// question ids as text; vlm eval table pairs two runs question by question through them.
static cJSON *items_json(char *const *ids, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "ids", cJSON_CreateStringArray((const char *const *)ids, n));
    return o;
}

static void add_ints(cJSON *o, const char *name, const int *v, int n) {
    cJSON_AddItemToObject(o, name, cJSON_CreateIntArray(v, n));
}

// ---- vlm eval pope ---------------------------------------------------------------------------------

static const char *pope_help =
    "usage: vlm eval pope --questions FILE --answers FILE.jsonl [--questions FILE --answers FILE.jsonl ...]\n"
    "                     [--parser reference|strict] [--suffix TEXT] [--by FIELD ...] [--out FILE.json]\n"
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
    "                    e.g. LLaVA's \"\\nAnswer the question using a single word or phrase.\"); default: the\n"
    "                    \"prompt_suffix\" vlm sample --prompt-suffix wrote in the answers; a different one is an error\n"
    "  --by FIELD        also per value of this field of the question records (repeatable), e.g.\n"
    "                    difficulty, atypical, negative: n, accuracy, yes-ratio and the false-positive\n"
    "                    rate (questions labelled no answered yes / questions labelled no); records\n"
    "                    without the field form the group \"none\"; a+b crosses two fields (groups like\n"
    "                    \"hard+3\" for difficulty+n_objects)\n"
    "  --out FILE        write the results as JSON (atomically), with every question's outcome per split:\n"
    "                    \"items\": {\"ids\", \"label\", \"pred\" (1 yes, 0 no, -1 unparseable), \"correct\",\n"
    "                    \"by\": {FIELD: values}} -- what vlm eval table pairs and resamples\n";

// The breakdown of one split by one field: printed, and added to the split's JSON (s) when s is not NULL.
static void pope_by(const PopeResult *r, const char *field, cJSON *s) {
    const int n = r->m.n;
    char **values = fields_read(r->questions, field, n), **names;
    int *group = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    int ng = fields_groups(values, n, &names, group);
    unsigned char *mask = xmalloc((size_t)(n ? n : 1));
    cJSON *jb = NULL;
    if (s) {
        cJSON *by = cJSON_GetObjectItemCaseSensitive(s, "by");
        if (!by) by = cJSON_AddObjectToObject(s, "by");
        jb = cJSON_AddObjectToObject(by, field);
        cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items"), *ib = cJSON_GetObjectItemCaseSensitive(items, "by");
        if (!ib) ib = cJSON_AddObjectToObject(items, "by");
        cJSON_AddItemToObject(ib, field, cJSON_CreateStringArray((const char *const *)values, n));
    }
    for (int g = 0; g < ng; g++) {
        for (int i = 0; i < n; i++) mask[i] = group[i] == g;
        PopeMetrics m;
        pope_score_preds(r->labels, r->preds, mask, n, &m);
        const int no = m.n - (m.tp + m.fn + m.unparseable_yes);
        const double fpr = no ? (double)m.fp / no : NAN;
        printf("%-24s %-14s %6d %7.2f %7.2f ", r->name, names[g], m.n, 100 * m.accuracy, 100 * m.yes_ratio);
        if (no) printf("%7.2f %6d %6d\n", 100 * fpr, no, m.fp);
        else printf("%7s %6d %6d\n", "-", no, m.fp);
        if (jb) {
            cJSON *o = pope_metrics_json(cJSON_AddObjectToObject(jb, names[g]), &m);
            cJSON_AddNumberToObject(o, "labelled_no", no);
            if (no) cJSON_AddNumberToObject(o, "fp_rate", fpr);
            else cJSON_AddNullToObject(o, "fp_rate");
        }
    }
    fields_free(names, ng);
    fields_free(values, n);
    free(group); free(mask);
}

// The "prompt_suffix" `vlm sample --prompt-suffix` wrote on the answers' first line; NULL when there is none.
static char *answers_prompt_suffix(const char *path) {
    JsonlReader jr;
    jsonl_open(&jr, path);
    cJSON *j = jsonl_next(&jr, 0, NULL);
    const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt_suffix") : NULL;
    char *out = cJSON_IsString(s) ? xstrdup(s->valuestring) : NULL;
    cJSON_Delete(j);
    jsonl_close(&jr);
    return out;
}

static int eval_pope(int argc, char **argv) {
    Args a = args_init("vlm eval pope", argc, argv);
    if (args_help(&a)) { fputs(pope_help, stdout); return 0; }
    const char *qs[16], *as[16];
    int nq = arg_all(&a, "--questions", qs, 16), na = arg_all(&a, "--answers", as, 16);
    const char *parser_name = arg_str(&a, "--parser", "reference"), *suffix = arg_str(&a, "--suffix", NULL);
    const char *out = arg_str(&a, "--out", NULL);
    const char *by[16];
    int nby = arg_all(&a, "--by", by, 16);
    args_finish(&a);
    if (nq == 0) fatal("vlm eval pope: --questions and --answers are required (see --help)");
    if (nq != na) fatal("vlm eval pope: %d --questions but %d --answers; give one answer file per question file", nq, na);
    // the suffix the answers record (vlm sample --prompt-suffix): it fills in --suffix, and a different one is refused
    char *recorded = NULL;
    for (int i = 0; i < na; i++) {
        char *rs = answers_prompt_suffix(as[i]);
        if (rs && suffix && strcmp(rs, suffix))
            fatal("vlm eval pope: --suffix \"%s\", but %s was generated with the prompt suffix \"%s\"", suffix, as[i], rs);
        if (rs && recorded && strcmp(rs, recorded))
            fatal("vlm eval pope: the answer files were generated with different prompt suffixes (\"%s\", \"%s\" in %s)", recorded, rs, as[i]);
        if (rs && !recorded) recorded = rs;
        else free(rs);
    }
    if (!suffix) suffix = recorded;
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

    // the JSON is built before the breakdowns, which print and add to it
    cJSON *split_json[16] = {0}, *j = NULL;
    if (out) {
        j = cJSON_CreateObject();
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
            cJSON *items = items_json(r[i].ids, r[i].m.n);
            add_ints(items, "label", r[i].labels, r[i].m.n);
            add_ints(items, "pred", r[i].preds, r[i].m.n);
            int *ok = xmalloc(sizeof(int) * (size_t)(r[i].m.n ? r[i].m.n : 1));
            for (int k = 0; k < r[i].m.n; k++) ok[k] = r[i].preds[k] == r[i].labels[k];
            add_ints(items, "correct", ok, r[i].m.n);
            free(ok);
            cJSON_AddItemToObject(s, "items", items);
            split_json[i] = s;
        }
        cJSON_AddItemToObject(j, "mean", pope_metrics_json(cJSON_CreateObject(), &mean));
    }
    for (int f = 0; f < nby; f++) {
        printf("\nby %s: fp rate = questions labelled no answered yes / questions labelled no\n", by[f]);
        printf("%-24s %-14s %6s %7s %7s %7s %6s %6s\n", "split", by[f], "n", "acc", "yes%", "fp rate", "no", "fp");
        for (int i = 0; i < nq; i++) pope_by(&r[i], by[f], split_json[i]);
    }
    if (j) {
        write_json(j, out);
        cJSON_Delete(j);
    }
    for (int i = 0; i < nq; i++) pope_result_free(&r[i]);
    free(recorded);
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
    "  --out FILE         write the metrics and every caption's mentions as JSON (atomically), and per caption\n"
    "                     \"items\": {\"ids\" (question_id, else the caption's 0-based position), \"mentions\",\n"
    "                     \"hallucinated\"} -- what vlm eval table pairs and resamples\n"
    "\n"
    "Images are found under image_id, else the image path, its file name, the name without extension, or\n"
    "COCO's number in it (COCO_val2014_000000310196.jpg -> 310196).\n";

// Per caption: its id, object mentions and hallucinated mentions, from the per-caption records.
static cJSON *chair_items(const cJSON *per) {
    const int n = cJSON_GetArraySize(per);
    char **ids = xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
    int *men = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), *hal = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const cJSON *rec = cJSON_GetArrayItem(per, i), *q = cJSON_GetObjectItemCaseSensitive(rec, "question_id");
        char buf[32];
        snprintf(buf, sizeof(buf), "%d", i);
        ids[i] = xstrdup(cJSON_IsString(q) ? q->valuestring : buf);
        hal[i] = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rec, "hallucinated"));
        men[i] = hal[i] + cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rec, "grounded"));
    }
    cJSON *items = items_json(ids, n);
    add_ints(items, "mentions", men, n);
    add_ints(items, "hallucinated", hal, n);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids); free(men); free(hal);
    return items;
}

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
        cJSON_AddItemToObject(j, "items", chair_items(per));
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
    "  --out FILE       write the metrics and every answer's grading as JSON (atomically), and per pair\n"
    "                   \"items\": {\"ids\" (the first row's Index), \"right\" (0-2), \"correct\" (both)}\n";

// Per pair (rows 2k and 2k+1, the unit of MMVP's paired accuracy, so resampling keeps pairs whole): the
// first row's Index as the id, questions right (0-2), and 1 when both are.
static cJSON *mmvp_items(const cJSON *per) {
    const int n = cJSON_GetArraySize(per) / 2;
    char **ids = xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
    int *right = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), *both = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int k = 0; k < n; k++) {
        const cJSON *a = cJSON_GetArrayItem(per, 2 * k), *b = cJSON_GetArrayItem(per, 2 * k + 1);
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(a, "index");
        ids[k] = xstrdup(cJSON_IsString(ix) ? ix->valuestring : "?");
        int ra = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "correct")), rb = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "correct"));
        right[k] = ra + rb;
        both[k] = ra && rb;
    }
    cJSON *items = items_json(ids, n);
    add_ints(items, "right", right, n);
    add_ints(items, "correct", both, n);
    for (int k = 0; k < n; k++) free(ids[k]);
    free(ids); free(right); free(both);
    return items;
}

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
        cJSON_AddItemToObject(j, "items", mmvp_items(per));
        cJSON_AddItemToObject(j, "per_question", per);
        write_json(j, out);
        cJSON_Delete(j);
    }
    return 0;
}

// ---- vlm eval amber ---------------------------------------------------------------------------------

static const char *amber_help =
    "usage: vlm eval amber --answers FILE (--data AMBER/data | --annotations F --relation F --safe-words F)\n"
    "                      [--questions QUERY.json] [--parser exact|strict|reference] [--nouns TABLE.tsv]\n"
    "                      [--similar TABLE.tsv] [--similarity T] [--out FILE.json]\n"
    "\n"
    "AMBER hallucination benchmark (junyangwang0410/AMBER, scored as its inference.py scores):\n"
    "  generative (captions, ids 1-1004): CHAIR (hallucinated nouns / nouns), Cover (truth objects\n"
    "    mentioned), Hal (captions with a hallucination), Cog (likely-hallucinated objects mentioned);\n"
    "  discriminative (yes/no, ids 1005-): accuracy, and precision, recall, F1 with \"No\" as the positive\n"
    "    class, overall and for existence, attribute (state, number, action) and relation.\n"
    "Printed as the official script prints them (percent, its 0.001 denominators, rounded to 0.1); --out\n"
    "also keeps the exact ratios and every count.\n"
    "\n"
    "  --answers FILE      responses: AMBER's [{\"id\", \"response\"}] or what vlm sample writes (\"text\");\n"
    "                      without an \"id\" each, give --questions\n"
    "  --data DIR          AMBER's data/ folder: annotations.json, relation.json, safe_words.txt in it\n"
    "  --annotations F, --relation F, --safe-words F   the three files one by one (override --data)\n"
    "  --questions F       the query file the answers follow (data/query/query_*.json), matched by id, else\n"
    "                      by order; every query must be answered\n"
    "  --parser P          exact (default): the official rule, a response is \"Yes\" or \"No\" exactly as\n"
    "                      written and anything else scores wrong (counted as \"neither\");\n"
    "                      strict / reference: POPE's parsers read yes/no from free text first\n"
    "  --nouns TABLE       the noun table (default: eval/data/amber_nouns.tsv beside the vlm binary):\n"
    "                      word form -> AMBER object, NLTK's WordNet lemmatizer run once by\n"
    "                      tests/ref/make_amber_tables.py. AMBER keeps only tokens NLTK's POS tagger calls\n"
    "                      nouns; that tagger could not be run here, so every token whose lemma is an object\n"
    "                      counts (a verb or adjective use of an object word may count where AMBER skips it)\n"
    "  --similar TABLE     spaCy en_core_web_lg similarities of object words (\"word<TAB>word<TAB>sim\", as\n"
    "                      tests/ref/make_amber_tables.py writes where the model installs); none ships, since\n"
    "                      the model could not be installed here: without it only identical words match,\n"
    "                      which can only raise CHAIR and Hal and lower Cover and Cog against AMBER's numbers\n"
    "  --similarity T      near-synonyms are pairs above T (default 0.8, AMBER's --similarity_score)\n"
    "  --out FILE          write the results as JSON (atomically), with every answer's outcome (\"per_item\")\n"
    "                      and \"items\": {\"ids\", \"correct\" (yes/no questions; -1 for captions),\n"
    "                      \"hallucinated\" (nouns, captions; -1 for questions)}\n";

// The folder of the running binary (where the repository's eval/data is), or NULL.
static char *binary_dir(void) {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) return NULL;
    buf[n] = 0;
    return path_dirname(buf);
}

static int eval_amber(int argc, char **argv) {
    Args a = args_init("vlm eval amber", argc, argv);
    if (args_help(&a)) { fputs(amber_help, stdout); return 0; }
    AmberOptions o = {0};
    o.answers = arg_str(&a, "--answers", NULL);
    o.questions = arg_str(&a, "--questions", NULL);
    const char *data = arg_str(&a, "--data", NULL);
    o.annotations = arg_str(&a, "--annotations", NULL);
    o.relation = arg_str(&a, "--relation", NULL);
    o.safe_words = arg_str(&a, "--safe-words", NULL);
    o.nouns = arg_str(&a, "--nouns", NULL);
    o.similar = arg_str(&a, "--similar", NULL);
    o.threshold = arg_float(&a, "--similarity", 0.8f);
    const char *parser_name = arg_str(&a, "--parser", "exact"), *out = arg_str(&a, "--out", NULL);
    args_finish(&a);
    if (!o.answers) fatal("vlm eval amber: --answers is required (see --help)");
    char *owned[4] = {0};
    if (data) {
        if (!o.annotations) o.annotations = owned[0] = path_join(data, "annotations.json");
        if (!o.relation) o.relation = owned[1] = path_join(data, "relation.json");
        if (!o.safe_words) o.safe_words = owned[2] = path_join(data, "safe_words.txt");
    }
    if (!o.annotations || !o.relation || !o.safe_words)
        fatal("vlm eval amber: give --data (AMBER's data/ folder) or --annotations, --relation and --safe-words");
    if (!o.nouns) {
        char *dir = binary_dir();
        o.nouns = owned[3] = path_join(dir ? dir : ".", "eval/data/amber_nouns.tsv");
        free(dir);
        if (!file_exists(o.nouns)) fatal("vlm eval amber: no noun table at %s; give --nouns eval/data/amber_nouns.tsv", o.nouns);
    }
    if (!(o.threshold >= -1 && o.threshold <= 1)) fatal("vlm eval amber: --similarity must be in [-1, 1], got %g", o.threshold);
    if (!strcmp(parser_name, "exact")) o.parser = AMBER_PARSER_EXACT;
    else if (!strcmp(parser_name, "strict")) o.parser = AMBER_PARSER_STRICT;
    else if (!strcmp(parser_name, "reference")) o.parser = AMBER_PARSER_REFERENCE;
    else fatal("vlm eval amber: --parser must be exact, strict or reference, got '%s'", parser_name);

    AmberResult r;
    cJSON *per = NULL;
    amber_eval_files(&o, &r, out ? &per : NULL);
    if (r.not_in_table)
        fprintf(stderr, "vlm eval amber: warning: %d objects of %s are not in the noun table %s (made for another "
                "relation.json?): they count only as written\n", r.not_in_table, o.relation, o.nouns);
    printf("AMBER, parser %s, similarity table %s%s%s\n", parser_name, o.similar ? o.similar : "none (identical words only)",
           r.match >= 0 ? ", answers matched to the queries by " : "", r.match >= 0 ? match_mode_name((MatchMode)r.match) : "");
    if (r.gen.captions) {
        AmberGenRates g;
        amber_gen_official(&r.gen, &g);
        printf("generative: %d captions, %ld nouns\n%8s %8s %8s %8s\n%8.1f %8.1f %8.1f %8.1f\n", r.gen.captions, r.gen.nouns,
               "CHAIR", "Cover", "Hal", "Cog", g.chair, g.cover, g.hal, g.cog);
    }
    const AmberQaCounts *all = &r.dims[AMBER_DISCRIMINATIVE];
    if (all->n) {
        printf("discriminative (\"No\" is the positive class):\n%-12s %6s %8s %9s %8s %8s %8s\n", "dimension", "n", "accuracy",
               "precision", "recall", "f1", "neither");
        static const AmberDim order[] = {AMBER_DISCRIMINATIVE, AMBER_EXISTENCE, AMBER_ATTRIBUTE, AMBER_STATE,
                                         AMBER_NUMBER, AMBER_ACTION, AMBER_RELATION};
        for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
            const AmberQaCounts *c = &r.dims[order[k]];
            if (!c->n) continue;
            AmberQaRates q;
            amber_qa_official(c, order[k], &q);
            printf("%-12s %6d %8.1f %9.1f %8.1f %8.1f %8d\n", amber_dim_name(order[k]), c->n, q.accuracy, q.precision,
                   q.recall, q.f1, c->other);
        }
        if (all->other && o.parser == AMBER_PARSER_EXACT)
            printf("note: %d responses are neither \"Yes\" nor \"No\" exactly and score wrong, as in the official script "
                   "(--parser strict reads yes/no words)\n", all->other);
    }
    if (out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "amber");
        cJSON_AddStringToObject(j, "parser", parser_name);
        cJSON_AddStringToObject(j, "answers", o.answers);
        cJSON_AddStringToObject(j, "annotations", o.annotations);
        cJSON_AddStringToObject(j, "nouns", o.nouns);
        if (o.similar) cJSON_AddStringToObject(j, "similar", o.similar);
        else cJSON_AddNullToObject(j, "similar");
        cJSON_AddNumberToObject(j, "similarity", o.threshold);
        if (r.match >= 0) cJSON_AddStringToObject(j, "matched_by", match_mode_name((MatchMode)r.match));
        cJSON_AddItemToObject(j, "metrics", amber_result_json(&r));
        cJSON *items = items_json(r.ids, r.n_items);
        int *correct = xmalloc(sizeof(int) * (size_t)(r.n_items ? r.n_items : 1));
        int *hall = xmalloc(sizeof(int) * (size_t)(r.n_items ? r.n_items : 1));
        for (int i = 0; i < r.n_items; i++) {
            correct[i] = r.item_generative[i] ? -1 : r.item_value[i];
            hall[i] = r.item_generative[i] ? r.item_value[i] : -1;
        }
        add_ints(items, "correct", correct, r.n_items);
        add_ints(items, "hallucinated", hall, r.n_items);
        free(correct); free(hall);
        cJSON_AddItemToObject(j, "items", items);
        cJSON_AddItemToObject(j, "per_item", per);
        write_json(j, out);
        cJSON_Delete(j);
    }
    amber_result_free(&r);
    for (int i = 0; i < 4; i++) free(owned[i]);
    return 0;
}

// ---- vlm eval cvbench ------------------------------------------------------------------------------

static const char *cvbench_help =
    "usage: vlm eval cvbench --questions FILE --answers FILE.jsonl [--questions F --answers F ...]\n"
    "                        [--rule first4|cambrian|letter] [--out FILE.json]\n"
    "\n"
    "CV-Bench's multiple-choice questions (Cambrian-1): accuracy per source (ADE20K, COCO, Omni3D) and per\n"
    "task (Count, Relation, Depth, Distance), and the CV-Bench number as the dataset card computes it:\n"
    "2D = mean of the ADE20K and COCO accuracies, 3D = the Omni3D accuracy, CV-Bench = mean of 2D and 3D\n"
    "(the accuracy over all questions is printed beside it).\n"
    "\n"
    "  --questions FILE  the released annotations (test_2d.jsonl, test_3d.jsonl, or S-VCO's cvbench_test.jsonl:\n"
    "                    JSON Lines or a JSON array with idx, source, task, choices, answer \"(C)\"); repeat\n"
    "                    the --questions/--answers pair for several files, pooled into one score\n"
    "  --answers FILE    generated answers (JSON Lines with \"text\", or S-VCO's \"response\"), matched by\n"
    "                    question_id (the question's question_id, else idx), else by order\n"
    "  --rule R          first4 (default): S-VCO's grader -- the first 4 characters of the answer without\n"
    "                    parentheses and spaces must equal the label (\"(C) 1\" and \"C\" pass).\n"
    "                    cambrian: Cambrian-1's extract_mcq_answer -- the text after \"answer is\"/\"answer:\",\n"
    "                    stripped of '.', '(' and ')', its first character must be the label's letter (on\n"
    "                    Omni3D questions also ':' and ',' are stripped, and the option text itself counts).\n"
    "                    letter: a standalone option letter (\"(c)\", \"C.\", \"answer is c\") or the text of\n"
    "                    exactly one option. Either way \"unparseable\" counts the answers the letter rule\n"
    "                    cannot read.\n"
    "  --out FILE        write the metrics and every answer's grading as JSON (atomically), and per question\n"
    "                    \"items\": {\"ids\", \"correct\", \"by\": {\"source\", \"task\"}}\n";

static int eval_cvbench(int argc, char **argv) {
    Args a = args_init("vlm eval cvbench", argc, argv);
    if (args_help(&a)) { fputs(cvbench_help, stdout); return 0; }
    const char *qs[16], *as[16];
    int nq = arg_all(&a, "--questions", qs, 16), na = arg_all(&a, "--answers", as, 16);
    const char *rule_name = arg_str(&a, "--rule", "first4"), *out = arg_str(&a, "--out", NULL);
    args_finish(&a);
    if (nq == 0) fatal("vlm eval cvbench: --questions and --answers are required (see --help)");
    if (nq != na) fatal("vlm eval cvbench: %d --questions but %d --answers; give one answer file per question file", nq, na);
    CvbenchRule rule;
    if (!strcmp(rule_name, "first4")) rule = CVBENCH_RULE_FIRST4;
    else if (!strcmp(rule_name, "cambrian")) rule = CVBENCH_RULE_CAMBRIAN;
    else if (!strcmp(rule_name, "letter")) rule = CVBENCH_RULE_LETTER;
    else fatal("vlm eval cvbench: --rule must be first4, cambrian or letter, got '%s'", rule_name);
    CvbenchResult r;
    cJSON *per = NULL;
    int match[16];
    cvbench_eval_files(qs, as, nq, rule, &r, out ? &per : NULL, match);
    printf("CV-Bench, rule %s, answers matched by %s", rule_name, match_mode_name((MatchMode)match[0]));
    for (int i = 1; i < nq; i++) printf(", %s", match_mode_name((MatchMode)match[i]));
    printf("\n%-12s %6s %8s\n", "source", "n", "acc");
    for (int i = 0; i < r.n_sources; i++)
        printf("%-12s %6d %8.2f\n", r.sources[i].name, r.sources[i].n, 100.0 * r.sources[i].correct / r.sources[i].n);
    printf("%-12s %6s %8s\n", "task", "n", "acc");
    for (int i = 0; i < r.n_tasks; i++)
        printf("%-12s %6d %8.2f\n", r.tasks[i].name, r.tasks[i].n, 100.0 * r.tasks[i].correct / r.tasks[i].n);
    const struct { const char *name; double v; const char *missing; } rows[3] = {
        {"2D (mean of ADE20K and COCO)", r.acc_2d, "needs ADE20K and COCO questions"},
        {"3D (Omni3D)", r.acc_3d, "needs Omni3D questions"},
        {"CV-Bench (mean of 2D and 3D)", r.combined, "needs all three sources"}};
    for (int k = 0; k < 3; k++) {
        if (isnan(rows[k].v)) printf("%-30s %8s  (%s)\n", rows[k].name, "-", rows[k].missing);
        else printf("%-30s %8.2f\n", rows[k].name, 100 * rows[k].v);
    }
    printf("%-30s %8.2f  (%d of %d; unparseable by the letter rule: %d)\n", "all questions", 100 * r.accuracy,
           r.correct, r.n, r.unparseable);
    if (out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "cvbench");
        cJSON_AddStringToObject(j, "rule", rule_name);
        cJSON *files = cJSON_AddArrayToObject(j, "files");
        for (int i = 0; i < nq; i++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "questions", qs[i]);
            cJSON_AddStringToObject(f, "answers", as[i]);
            cJSON_AddStringToObject(f, "matched_by", match_mode_name((MatchMode)match[i]));
            cJSON_AddItemToArray(files, f);
        }
        cJSON_AddItemToObject(j, "metrics", cvbench_metrics_json(&r));
        cJSON *items = items_json(r.ids, r.n);
        add_ints(items, "correct", r.item_correct, r.n);
        cJSON *by = cJSON_AddObjectToObject(items, "by");
        const char **names = xmalloc(sizeof(char *) * (size_t)r.n);
        for (int i = 0; i < r.n; i++) names[i] = r.sources[r.item_source[i]].name;
        cJSON_AddItemToObject(by, "source", cJSON_CreateStringArray(names, r.n));
        for (int i = 0; i < r.n; i++) names[i] = r.tasks[r.item_task[i]].name;
        cJSON_AddItemToObject(by, "task", cJSON_CreateStringArray(names, r.n));
        free(names);
        cJSON_AddItemToObject(j, "items", items);
        cJSON_AddItemToObject(j, "per_question", per);
        write_json(j, out);
        cJSON_Delete(j);
    }
    cvbench_result_free(&r);
    return 0;
}

// ---- vlm eval qa ------------------------------------------------------------------------------------

static const char *qa_help =
    "usage: vlm eval qa --questions FILE.jsonl --answers FILE.jsonl [--rule exact|contains] [--by FIELD ...]\n"
    "                   [--out FILE.json]\n"
    "\n"
    "Short-answer accuracy, overall and per question type (the miniature study's general QA).\n"
    "\n"
    "  --questions FILE  JSON Lines {question_id, type?, answer, prior_answer?, ...} (vlm data synth's qa.jsonl)\n"
    "  --answers FILE    generated answers (JSON Lines with \"text\"), matched by question_id, else by order\n"
    "  --rule R          both sides lowercased, split into words, a/an/the dropped; then exact (default): the\n"
    "                    same words (\"The circle.\" = \"circle\"); contains: the answer's words appear in a row\n"
    "                    in the response (\"It is red.\" contains \"red\")\n"
    "  --by FIELD        also per value of this field of the question records (repeatable), e.g. type,\n"
    "                    difficulty, atypical; records without it form the group \"none\"; a+b crosses two\n"
    "                    fields (groups like \"color+3\" for type+n_objects)\n"
    "  --out FILE        write the metrics and every answer's grading as JSON (atomically), and per question\n"
    "                    \"items\": {\"ids\", \"correct\", \"prior\" (1/0 right for the prior answer, -1 none),\n"
    "                    \"by\": {FIELD: values}} (type always) -- what vlm eval table pairs and resamples\n"
    "\n"
    "Records with \"prior_answer\" (the answer the training prior suggests) add prior-following errors:\n"
    "of the wrong answers to them, the fraction right for the prior answer (prior err), overall and per group.\n";

static int eval_qa(int argc, char **argv) {
    Args a = args_init("vlm eval qa", argc, argv);
    if (args_help(&a)) { fputs(qa_help, stdout); return 0; }
    const char *q = arg_str(&a, "--questions", NULL), *ans = arg_str(&a, "--answers", NULL);
    const char *rule_name = arg_str(&a, "--rule", "exact"), *out = arg_str(&a, "--out", NULL);
    const char *by[16];
    int nby = arg_all(&a, "--by", by, 16);
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
    if (m.with_prior)
        printf("prior-following errors: %d of %d wrong answers to the %d questions with a prior answer (%.2f%%)\n",
               m.prior_following, m.wrong_with_prior, m.with_prior,
               m.wrong_with_prior ? 100.0 * m.prior_following / m.wrong_with_prior : 0.0);
    cJSON *j = NULL, *jby = NULL, *items = NULL;
    if (out) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "benchmark", "qa");
        cJSON_AddStringToObject(j, "rule", rule_name);
        cJSON_AddStringToObject(j, "questions", q);
        cJSON_AddStringToObject(j, "answers", ans);
        cJSON_AddStringToObject(j, "matched_by", match_mode_name((MatchMode)match));
        cJSON *mj = qa_metrics_json(&m);
        cJSON_AddItemToObject(j, "metrics", mj);
        if (nby) jby = cJSON_AddObjectToObject(mj, "by");
        items = items_json(m.ids, m.n);
        add_ints(items, "correct", m.item_correct, m.n);
        if (m.with_prior) add_ints(items, "prior", m.item_prior, m.n);
        cJSON_AddItemToObject(j, "items", items);
        cJSON_AddItemToObject(j, "per_question", per);
    }
    // breakdowns: per group n, accuracy and (with prior answers) the prior-following errors
    for (int f = 0; f < nby; f++) {
        char **values = fields_read(q, by[f], m.n), **names;
        int *group = xmalloc(sizeof(int) * (size_t)m.n);
        const int ng = fields_groups(values, m.n, &names, group);
        printf("\nby %s:\n%-16s %6s %8s %7s %11s\n", by[f], by[f], "n", "acc", "wrong", "prior err %");
        cJSON *jf = jby ? cJSON_AddObjectToObject(jby, by[f]) : NULL;
        for (int g = 0; g < ng; g++) {
            int n = 0, right = 0, wrong_p = 0, follow = 0, with_p = 0;
            for (int i = 0; i < m.n; i++) {
                if (group[i] != g) continue;
                n++;
                right += m.item_correct[i];
                with_p += m.item_prior[i] >= 0;
                if (!m.item_correct[i] && m.item_prior[i] >= 0) { wrong_p++; follow += m.item_prior[i]; }
            }
            const double pe = wrong_p ? (double)follow / wrong_p : NAN;
            printf("%-16s %6d %8.2f %7d", names[g], n, 100.0 * right / n, n - right);
            if (with_p) printf(" %11.2f\n", 100 * pe);
            else printf(" %11s\n", "-");
            if (jf) {
                cJSON *o = cJSON_AddObjectToObject(jf, names[g]);
                cJSON_AddNumberToObject(o, "n", n);
                cJSON_AddNumberToObject(o, "correct", right);
                cJSON_AddNumberToObject(o, "accuracy", (double)right / n);
                if (with_p) {
                    cJSON_AddNumberToObject(o, "wrong_with_prior", wrong_p);
                    cJSON_AddNumberToObject(o, "prior_following", follow);
                    if (wrong_p) cJSON_AddNumberToObject(o, "prior_err", pe);
                    else cJSON_AddNullToObject(o, "prior_err");
                }
            }
        }
        if (items) {
            cJSON *ib = cJSON_GetObjectItemCaseSensitive(items, "by");
            if (!ib) ib = cJSON_AddObjectToObject(items, "by");
            cJSON_AddItemToObject(ib, by[f], cJSON_CreateStringArray((const char *const *)values, m.n));
        }
        fields_free(names, ng);
        fields_free(values, m.n);
        free(group);
    }
    // the question type is always kept per question, so that vlm eval table can break accuracy down by it
    if (items && !cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(items, "by"), "type")) {
        cJSON *ib = cJSON_GetObjectItemCaseSensitive(items, "by");
        if (!ib) ib = cJSON_AddObjectToObject(items, "by");
        char **values = fields_read(q, "type", m.n);
        cJSON_AddItemToObject(ib, "type", cJSON_CreateStringArray((const char *const *)values, m.n));
        fields_free(values, m.n);
    }
    if (j) {
        write_json(j, out);
        cJSON_Delete(j);
    }
    qa_metrics_free(&m);
    return 0;
}

// ---- vlm eval table ---------------------------------------------------------------------------------

static const char *table_help_head =
    "usage: vlm eval table [--baseline NAME ...] [--metrics a,b,c] [--resamples N] [--out FILE.md]\n"
    "                      [--json FILE.json] [--svg FILE.svg] RUN_DIR...\n"
    "\n"
    "One markdown table over evaluated models, with 95% intervals, printed and written to --out. Each RUN_DIR\n"
    "holds the pope.json, chair.json, mmvp.json and qa.json that vlm eval ... --out wrote (with their\n"
    "per-question \"items\"; the metrics chosen say which files are needed). The folder's name is the model;\n"
    "folders of the same name are its seeds (seed1/eval/svco, seed2/eval/svco), and the folder above\n"
    "(seed1/eval) pairs a model's run with a baseline's. Rows keep the order of first appearance. A run.json\n"
    "in a RUN_DIR (e.g. {\"method\": \"svco\", \"lr\": 1e-4, \"beta\": 0.1}) adds a table of hyper-parameters.\n"
    "\n"
    "Each cell: the mean over the model's runs of the metric on all questions, and a 95% percentile interval\n"
    "from a two-level bootstrap (N resamples, fixed seed: the runs drawn with replacement, then the questions\n"
    "-- MMVP: question pairs -- with replacement, the same questions for every model). Deterministic.\n"
    "\n"
    "  --baseline NAME  also a table of differences model - NAME (repeatable), paired by seed folder (a\n"
    "                   baseline with a single run pairs with every seed, a model with a single run with\n"
    "                   every baseline run) and by question (the same resampled questions on both\n"
    "                   sides); the pairs are resampled at the seed level; * marks an interval that\n"
    "                   excludes 0\n"
    "  --metrics LIST   the columns, comma-separated (names below)\n"
    "  --resamples N    bootstrap resamples (default 2000)\n"
    "  --out FILE       the markdown table (atomically); the same text goes to stdout\n"
    "  --json FILE      every number: per model and run, means, intervals, differences\n"
    "  --svg FILE       grouped bars of the means, the 95% intervals as error bars\n"
    "\n";

static int eval_table(int argc, char **argv) {
    TableOptions o = {0};
    o.resamples = 2000;
    const char **dirs = xmalloc(sizeof(char *) * (argc + 1)), **bases = xmalloc(sizeof(char *) * (argc + 1));
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(table_help_head, stdout);
            fputs(table_metrics_help, stdout);
            free(dirs); free(bases);
            return 0;
        }
        if (s[0] != '-') { dirs[o.n_dirs++] = s; continue; }
        // "--flag value" or "--flag=value"
        const char *eq = strchr(s, '='), *v;
        size_t nlen = eq ? (size_t)(eq - s) : strlen(s);
        static const char *const flags[] = {"--out", "--svg", "--json", "--baseline", "--metrics", "--resamples", NULL};
        int fi = -1;
        for (int k = 0; flags[k] && fi < 0; k++) if (strlen(flags[k]) == nlen && !strncmp(s, flags[k], nlen)) fi = k;
        if (fi < 0) fatal("vlm eval table: unknown flag '%s' (see --help)", s);
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else fatal("vlm eval table: %s needs a value", s);
        switch (fi) {
        case 0: o.out_md = v; break;
        case 1: o.out_svg = v; break;
        case 2: o.out_json = v; break;
        case 3: bases[o.n_baselines++] = v; break;
        case 4: o.metrics = v; break;
        case 5: {
            char *end;
            long r = strtol(v, &end, 10);
            if (*end || r < 1 || r > 1000000) fatal("vlm eval table: --resamples must be a whole number from 1 to 1000000, got '%s'", v);
            o.resamples = (int)r;
            break;
        }
        }
    }
    if (o.n_dirs == 0) fatal("vlm eval table: give at least one run folder (see --help)");
    o.dirs = dirs;
    o.baselines = bases;
    table_run(&o);
    free(dirs); free(bases);
    return 0;
}

// ---- vlm eval verdict | score -----------------------------------------------------------------------

static const char *verdict_help =
    "usage: vlm eval verdict --table T.json --method NAME [--baseline NAME ...] [--metric M] [--general M]\n"
    "                        [--out FILE]\n"
    "\n"
    "What a table of vlm eval table --json says about one method, in words: its rank among the models on the\n"
    "hallucination metric, its difference from each baseline on that metric and on the general one, with the\n"
    "table's 95% intervals, and one sentence. The first baseline is the starting model (reduced / increased /\n"
    "no measurable change), the others are rivals (ahead / behind / not resolved); an interval that contains 0\n"
    "is never called a difference.\n"
    "\n"
    "  --metric M    the prior-driven hallucination metric (default pope.adversarial.acc)\n"
    "  --general M   the general-ability metric (default qa.acc)\n"
    "  --out FILE    also write the text here\n";

static const char *score_help =
    "usage: vlm eval score --table T.json --metrics a,b,c\n"
    "\n"
    "One line per model of a vlm eval table --json file: its name and the mean of the listed metrics' means\n"
    "(a lower-is-better metric counts as 100 - value). The demo picks learning rates by this on validation runs.\n";

static const char *frontier_help =
    "usage: vlm eval frontier --baseline NAME [--baseline NAME ...] [--x M] [--y M] [--method NAME]\n"
    "                         [--out FILE.md] [--svg FILE.svg] TABLE.json...\n"
    "\n"
    "The trade-off each model offers across settings: TABLE.json files of vlm eval table --json, one per setting\n"
    "(the demo's SWEEP writes one per learning rate of its grid; a table's setting is its runs' run.json \"lr\",\n"
    "else its file name), in the order given. For every model and setting, its difference from each baseline on\n"
    "the hallucination metric --x and the general one --y with the tables' paired 95% intervals, signed so that\n"
    "+ is better; the chart draws x against y relative to the first baseline, a line per model through its\n"
    "settings. Every table must have every baseline, and the first --baseline's differences.\n"
    "\n"
    "  --x M          the prior-driven hallucination metric (default pope.adversarial.acc)\n"
    "  --y M          the general-ability metric (default qa.acc)\n"
    "  --method NAME  also a line per other baseline: NAME's difference from it at each setting\n"
    "  --out FILE     also write the markdown here\n"
    "  --svg FILE     the chart\n"
    "  --x-min V, --y-min V  floors of the chart's axes (negative): a model far below the others is drawn\n"
    "                 hollow on the frame with its values, so it does not squeeze the rest\n";

// "--flag value" pairs; repeated --baseline collected. Returns the index of the flag in `flags` or dies.
static int flag_index(const char *cmd, const char *s, const char *const *flags) {
    for (int k = 0; flags[k]; k++) if (!strcmp(s, flags[k])) return k;
    fatal("vlm eval %s: unknown flag '%s' (see --help)", cmd, s);
}

static int eval_verdict(int argc, char **argv) {
    VerdictOptions o = {.hallucination = "pope.adversarial.acc", .general = "qa.acc"};
    const char **bases = xmalloc(sizeof(char *) * (argc + 1));
    static const char *const flags[] = {"--table", "--method", "--baseline", "--metric", "--general", "--out", NULL};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(verdict_help, stdout); free(bases); return 0; }
        int k = flag_index("verdict", argv[i], flags);
        if (i + 1 == argc) fatal("vlm eval verdict: %s needs a value", argv[i]);
        const char *v = argv[++i];
        switch (k) {
        case 0: o.table = v; break;
        case 1: o.method = v; break;
        case 2: bases[o.n_baselines++] = v; break;
        case 3: o.hallucination = v; break;
        case 4: o.general = v; break;
        case 5: o.out = v; break;
        }
    }
    if (!o.table || !o.method) fatal("vlm eval verdict: --table and --method are required (see --help)");
    o.baselines = bases;
    verdict_run(&o);
    free(bases);
    return 0;
}

static int eval_score(int argc, char **argv) {
    const char *table = NULL, *metrics = NULL;
    static const char *const flags[] = {"--table", "--metrics", NULL};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(score_help, stdout); return 0; }
        int k = flag_index("score", argv[i], flags);
        if (i + 1 == argc) fatal("vlm eval score: %s needs a value", argv[i]);
        if (k == 0) table = argv[++i];
        else metrics = argv[++i];
    }
    if (!table || !metrics) fatal("vlm eval score: --table and --metrics are required (see --help)");
    score_run(table, metrics);
    return 0;
}

static int eval_frontier(int argc, char **argv) {
    FrontierOptions o = {.x = "pope.adversarial.acc", .y = "qa.acc", .x_min = NAN, .y_min = NAN};
    const char **bases = xmalloc(sizeof(char *) * (argc + 1)), **tables = xmalloc(sizeof(char *) * (argc + 1));
    static const char *const flags[] = {"--baseline", "--x", "--y", "--method", "--out", "--svg", "--x-min", "--y-min", NULL};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(frontier_help, stdout); free(bases); free(tables); return 0; }
        if (strncmp(argv[i], "--", 2)) { tables[o.n_tables++] = argv[i]; continue; }
        int k = flag_index("frontier", argv[i], flags);
        if (i + 1 == argc) fatal("vlm eval frontier: %s needs a value", argv[i]);
        const char *v = argv[++i];
        switch (k) {
        case 0: bases[o.n_baselines++] = v; break;
        case 1: o.x = v; break;
        case 2: o.y = v; break;
        case 3: o.method = v; break;
        case 4: o.out = v; break;
        case 5: o.svg = v; break;
        case 6: case 7: {
            char *end;
            const double d = strtod(v, &end);
            if (end == v || *end || !(d < 0)) fatal("vlm eval frontier: %s '%s': expected a negative number", argv[i - 1], v);
            if (k == 6) o.x_min = d;
            else o.y_min = d;
            break;
        }
        }
    }
    if (!o.n_tables || !o.n_baselines) fatal("vlm eval frontier: give TABLE.json files and a --baseline (see --help)");
    o.tables = tables;
    o.baselines = bases;
    frontier_run(&o);
    free(bases);
    free(tables);
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
    {"amber", eval_amber, "AMBER hallucination: CHAIR, Cover, Hal, Cog; yes/no accuracy, precision, recall, F1"},
    {"cvbench", eval_cvbench, "CV-Bench multiple choice: accuracy per source and task, the 2D/3D combination"},
    {"qa", eval_qa, "short-answer QA: accuracy overall and per question type"},
    {"table", eval_table, "a markdown table of evaluated runs: means, 95% intervals, paired differences"},
    {"verdict", eval_verdict, "what a table says about one method, with its intervals, in a sentence"},
    {"score", eval_score, "one number per model of a table: the mean of a few metrics (for choosing settings)"},
    {"frontier", eval_frontier, "the trade-off across settings (a learning-rate sweep): differences on two metrics, a chart"},
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
