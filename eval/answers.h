// Generated answers (what `vlm sample` writes) and their matching to benchmark questions.
//
// An answer file is JSON Lines, one record per input record, in input order:
//   {"index": i, "question_id"?: ..., "text": "generated answer", "ids": [...], ...}
// The answer text is "text"; "response" (S-VCO's answer files) and "caption" (OPERA's CHAIR files) are
// accepted when "text" is absent. "image_id" and "image" are kept for CHAIR, which needs to know which
// image a caption describes. The question id is "question_id", or "id" where that is absent (AMBER's
// response files, {"id": 1005, "response": "Yes"}).
//
// Matching (answers_match): by question_id when every question and every answer carries one (numbers and
// strings compare by their text, so 7 and "7" match); otherwise by order, where answer i belongs to
// question i and, as a guard against shuffled or partial files, an answer's "index" (when present) must
// be i and a question_id present on both sides must agree. Either way the counts must be equal and ids
// unique; every failure names the files and lines.
#pragma once

typedef struct {
    char *text;      // the generated answer
    char *qid;       // question_id (else id) as text, or NULL
    char *image_id;  // image_id as text, or NULL
    char *image;     // image path as written, or NULL
    long index;      // the "index" field, or -1
    int line;        // 1-based line in the file
} Answer;

typedef struct {
    char *path;
    Answer *v;
    int n;
} AnswerFile;

void answers_read(AnswerFile *af, const char *path);
void answers_free(AnswerFile *af);

// A JSON id (integer number or string) as text, or NULL when j is NULL; dies (naming where) otherwise.
char *answers_id_text(const void *cjson_item, const char *where, const char *field);

typedef enum { MATCH_BY_ORDER = 0, MATCH_BY_QUESTION_ID = 1 } MatchMode;
const char *match_mode_name(MatchMode m);  // "order", "question_id"

// The questions side: n ids (qids[i] NULL when question i has none) and lines (for messages).
typedef struct {
    const char *path;
    char **qids;
    const int *lines;
    int n;
} QuestionKeys;

// Fills order[q] with the answer index of question q (order has q->n entries). Dies on any mismatch.
MatchMode answers_match(const AnswerFile *af, const QuestionKeys *q, int *order);
