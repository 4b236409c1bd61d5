// The evaluation inputs; the first byte picks the parser, the rest is the file:
//   0  MMVP's question CSV (eval/csv.c, then the option lists of its rows, eval/choice.c)
//   1  a generated-answers JSON Lines file (eval/answers.c)
//   2  AMBER's relation.json (eval/amber.c), with the committed noun table
//   3  AMBER's annotations.json, against tests/fixtures/amber's vocabulary
//   4  AMBER's noun table
//   5  CV-Bench questions (eval/cvbench.c), answered "(A)" once per line
//   6  AMBER's similarity table
#include "fuzz.h"

#include "../../eval/amber.h"
#include "../../eval/answers.h"
#include "../../eval/choice.h"
#include "../../eval/csv.h"
#include "../../eval/cvbench.h"
#include "../../eval/mmvp.h"

#define AMBER_FIX "tests/fixtures/amber/"
#define AMBER_NOUNS "eval/data/amber_nouns.tsv"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int kind = data[0] % 7;
    // the AMBER kinds read the repository's files beside the input: only from the repository root
    if (kind != 0 && kind != 1 && kind != 5 && (!file_exists(AMBER_NOUNS) || !file_exists(AMBER_FIX "relation.json"))) return 0;
    if (kind == 0) {
        char *text = fuzz_cstr(data + 1, size - 1);
        FUZZ_BEGIN
            CsvFile c;
            csv_parse(&c, "questions.csv", text);
            int col = csv_column(&c, "Options");
            for (int r = 1; r < c.n && col >= 0; r++)
                if (col < c.rows[r].n) {
                    ChoiceOptions o;
                    choice_options_parse(c.rows[r].f[col], &o);
                    if (o.n_options < 0 || o.n_options > 26) abort();
                    choice_parse_letter("The answer is (b).", &o);
                    char *x = choice_cambrian_extract(c.rows[r].f[col], r % 2);
                    if (strlen(x) > 4) abort();  // one character (code point) at most
                    free(x);
                    choice_options_free(&o);
                }
            csv_free(&c);
        FUZZ_END
        free(text);
    } else if (kind == 1) {
        const char *path = fuzz_write_file(data + 1, size - 1, ".jsonl");
        FUZZ_BEGIN
            AnswerFile af;
            answers_read(&af, path);
            answers_free(&af);
        FUZZ_END
    } else if (kind == 2 || kind == 4 || kind == 6) {
        const char *path = fuzz_write_file(data + 1, size - 1, kind == 2 ? ".json" : ".tsv");
        FUZZ_BEGIN
            AmberVocab v;
            const char *rel = kind == 2 ? path : AMBER_FIX "relation.json", *nouns = kind == 4 ? path : AMBER_NOUNS;
            amber_vocab_load(&v, rel, AMBER_FIX "safe_words.txt", nouns, kind == 6 ? path : NULL, 0.8);
            for (int w = 0; w < v.n_words; w++)
                if (amber_noun(&v, v.words[w]) >= v.n_words || !amber_similar(&v, w, w)) abort();
            amber_vocab_free(&v);
        FUZZ_END
    } else if (kind == 3) {
        const char *path = fuzz_write_file(data + 1, size - 1, ".json");
        FUZZ_BEGIN
            AmberVocab v;
            amber_vocab_load(&v, AMBER_FIX "relation.json", AMBER_FIX "safe_words.txt", AMBER_NOUNS, NULL, 0.8);
            AmberAnnotations a;
            amber_annotations_load(&a, &v, path);
            AmberGenCounts g = {0};
            for (int i = 0; i < a.n; i++)
                if (a.present[i] && a.items[i].generative) {
                    AmberCaption c;
                    amber_score_caption(&v, &a.items[i], "Two dogs, a cat and people on the grass.", &c, &g);
                    amber_caption_free(&c);
                }
            if (g.truth_covered > g.truth || g.hallu_covered > g.hallu || g.hallucinated_nouns > g.nouns) abort();
            amber_annotations_free(&a);
            amber_vocab_free(&v);
        FUZZ_END
    } else {
        const char *path = fuzz_write_file(data + 1, size - 1, ".jsonl");
        static char answers[160];
        snprintf(answers, sizeof(answers), "%s/vlm_fuzz_%d_answers.jsonl", fuzz_tmp_base(), (int)getpid());
        FILE *f = fopen(answers, "w");
        if (!f) abort();
        for (size_t i = 1; i < size; i++) if (data[i] == '\n') fputs("{\"text\": \"(A)\"}\n", f);
        fclose(f);
        FUZZ_BEGIN
            const char *q[1] = {path}, *a[1] = {answers};
            CvbenchResult r;
            int match[1];
            cvbench_eval_files(q, a, 1, (CvbenchRule)(size % 3), &r, NULL, match);
            if (r.correct > r.n) abort();
            cvbench_result_free(&r);
        FUZZ_END
        unlink(answers);
    }
    return 0;
}
