// Multiple-choice answers: the options of a question and the graders that read a response's choice. MMVP
// (eval/mmvp.h) and CV-Bench (eval/cvbench.h) both grade with them.
//
// Options come either as one string of "(x)" markers, MMVP's "(a) Open (b) Closed", or as a list of option
// texts, CV-Bench's "choices", lettered a, b, c, ... in order. Labels are written "(a)" / "(C)".
//
// Graders:
//   first4    S-VCO's rule grader (s-vco/s-vco:eval_vlm/llava/eval/mmvp_rule_grader.py and
//             cvbench_rule_grader.py): the response stripped and lowercased, its first 4 characters with
//             parentheses and whitespace removed, must equal the label with parentheses and whitespace
//             removed. "(a) Open" and "A" pass; "a. Open" and "The answer is (a)" fail.
//   cambrian  Cambrian-1's extract_mcq_answer (cambrian-mllm/cambrian:eval/eval/{ade,coco,omni}/*_test.py,
//             the scripts behind CV-Bench's ADE20K, COCO and Omni3D numbers): the response lowercased and
//             stripped; for each of "answer is", "answer is:", "answer:" in turn, when it occurs, only the
//             text after its last occurrence is kept; stripped again, trailing '.' removed (Omni3D: trailing
//             '.', ':' and ','), leading '(' and trailing ')' removed; of a longer result only the first
//             character is kept. It must equal the label's letter (Omni3D: or the option text itself).
//             Characters are compared as bytes after ASCII lowercasing; the first character of a UTF-8
//             response is its first code point, as in Python.
//   letter    a standalone option letter, tried in order:
//             1. "(x)" markers in the response naming exactly one option letter x;
//             2. the whole response is a letter ("B", "b.", "(b)");
//             3. the response starts with a letter followed by '.', ':', ')' or ',' ("B. Closed");
//             4. "answer is x", "answer: x", "option x", "choice x" (x optionally in parentheses);
//             5. exactly one option's text appears in the response as whole words ("Closed").
//             Anything else is unparseable and scored wrong.
#pragma once

typedef struct {
    int n_options;
    char letters[26];     // lowercase option letters, in order
    char *texts[26];      // option texts (trimmed)
} ChoiceOptions;

// Splits "(a) Open (b) Closed" into letters and texts; n_options is 0 when there are no "(x)" markers.
void choice_options_parse(const char *options, ChoiceOptions *o);
// Options a, b, c, ... with the given texts (copied); at most 26, returns 0 when there are more.
int choice_options_from_list(const char *const *texts, int n, ChoiceOptions *o);
void choice_options_free(ChoiceOptions *o);

// The lowercase letter a label names ("(C)" -> 'c', "b" -> 'b'), or 0 when it is not one letter.
char choice_label_letter(const char *label);
// S-VCO's comparison: 1 when the response's cleaned first 4 characters equal the cleaned label.
int choice_first4_correct(const char *response, const char *label);
// Cambrian's reading of a response (a fresh string: empty, or one character), omni selecting the Omni3D
// variant of its stripping.
char *choice_cambrian_extract(const char *response, int omni);
// Cambrian's verdict: the extraction equals the label's letter, or (omni) the text of the labelled option.
int choice_cambrian_correct(const char *response, const char *label, const ChoiceOptions *o, int omni);
// The option letter a response chooses (lowercase), or 0 when it cannot be read.
char choice_parse_letter(const char *response, const ChoiceOptions *o);
