// The evaluation inputs: the first byte picks MMVP's question CSV (eval/csv.c, then the option lists of
// its rows, eval/mmvp.c) or a generated-answers JSON Lines file (eval/answers.c); the rest is the file.
#include "fuzz.h"

#include "../../eval/answers.h"
#include "../../eval/choice.h"
#include "../../eval/csv.h"
#include "../../eval/mmvp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] % 2 == 0) {
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
                    choice_options_free(&o);
                }
            csv_free(&c);
        FUZZ_END
        free(text);
    } else {
        const char *path = fuzz_write_file(data + 1, size - 1, ".jsonl");
        FUZZ_BEGIN
            AnswerFile af;
            answers_read(&af, path);
            answers_free(&af);
        FUZZ_END
    }
    return 0;
}
