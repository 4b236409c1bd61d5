// AMBER (Wang et al. 2023, "An LLM-free Multi-dimensional Benchmark for MLLMs Hallucination Evaluation";
// research/evals-peers.md A3): 1,004 images, one "Describe this image." caption each (ids 1-1004, the
// generative task) and 14,216 yes/no questions (ids 1005-15220, the discriminative task). Scored as the
// released junyangwang0410/AMBER:inference.py (commit 534babf) scores them, from its data files:
//   data/annotations.json  per id: "type" (generative, discriminative-hallucination (existence),
//                          discriminative-attribute-state / -number / -action, discriminative-relation or
//                          relation), "truth" (the objects in the image, or "yes"/"no"), "hallu" (objects a
//                          model is likely to hallucinate there, generative only)
//   data/relation.json     object -> associated words (a "person" is also "man", "people", ...); its keys and
//                          their words are AMBER's object vocabulary
//   data/safe_words.txt    words that never count as hallucinations
//
// Discriminative: a response is "Yes" or "No" exactly as written (the official comparison; any other text is
// neither and scores wrong). "No" is the positive class: precision = questions answered No whose truth is no
// / questions answered No, recall = the same / questions whose truth is no, F1 their harmonic mean, and
// accuracy; overall and per dimension: existence, attribute (state, number and action pooled, and each alone)
// and relation. `--parser strict` or `reference` reads free text first (POPE's parsers, eval/pope.h).
//
// Generative, per caption, as inference.py does it:
//   1. nouns: the caption's tokens (eval/text.h text_tokens: case kept, hyphens inside words kept) whose
//      noun lemma is an object, mapped to that object by the noun table (below);
//   2. truth words = the association words of every truth object, in truth order, then the truth objects
//      themselves; hallu words likewise from the hallu objects;
//   3. for each noun in order: a global safe word is skipped (counted as a noun, not a hallucination); a
//      noun equal to a truth word covers the truth object it belongs to (the first such word) and is grounded;
//      a noun equal to a hallu word covers that hallu object; then the first hallu word similar to the noun
//      covers its object, and if some truth word is similar to it, it covers that truth object and is
//      grounded; otherwise it is a hallucinated noun. "Similar" is spaCy en_core_web_lg similarity above
//      --similarity (0.8), taken from a similarity table (--similar FILE); a word is similar to itself.
//   Metrics: CHAIR = hallucinated nouns / nouns; Cover = truth objects covered / truth objects (a repeated
//   truth object counts each time, and only its first copy can be covered); Hal = captions with a
//   hallucinated noun / captions; Cog = hallu objects covered / hallu objects.
//
// The noun table (eval/data/amber_nouns.tsv, made once by tests/ref/make_amber_tables.py) replaces NLTK at run
// time: AMBER runs nltk.word_tokenize, nltk.pos_tag and WordNetLemmatizer and keeps tokens tagged NN* whose
// lemma is an object; the table lists every word form whose WordNet lemma (NLTK's lemmatizer run on WordNet
// 3.0) is an object, with that object ("dogs" -> dog, "knives" -> knife, "people" -> people; "Dog" is no
// object, as in AMBER, whose lemmatizer is case-sensitive; "sunglasses" lemmatizes to "sunglass" and never
// counts, as in AMBER). Differences from AMBER that remain: NLTK's POS tagger could not be run where the
// table was made (its model cannot be downloaded there), so every such token counts as a noun, where AMBER
// drops the ones the tagger calls a verb or adjective; tokens are split on punctuation, where NLTK splits
// sentences with Punkt and words with the Treebank rules. spaCy's en_core_web_lg could not be installed
// there either, so no similarity table ships: without --similar only exact words match, which can only
// raise CHAIR and Hal and lower Cover and Cog relative to AMBER. Objects of a relation.json that the table
// does not list (another release) count only as written, with a warning.
//
// The official script starts every denominator at 0.001 (attribute, the sum of three: 0.003) and F1's at
// 0.0001 (existence: 0.001), computes F1
// from the precision and recall rounded to 0.1, and prints percentages rounded to 0.1; amber_official gives
// those numbers from the counts, beside the exact ratios.
#pragma once
#include <cJSON.h>
#include <stdint.h>

#include "../util/strmap.h"

typedef enum {
    AMBER_EXISTENCE = 0, AMBER_STATE, AMBER_NUMBER, AMBER_ACTION, AMBER_RELATION,
    AMBER_ATTRIBUTE,     // state + number + action
    AMBER_DISCRIMINATIVE,  // all yes/no questions
    AMBER_N_DIMS
} AmberDim;
const char *amber_dim_name(AmberDim d);  // "existence", ..., "attribute", "all"

// The vocabulary and the tables.
typedef struct {
    char **words;            // (n_words) the objects: relation.json's keys, then the other associated words
    int n_words;
    StrMap index;            // word -> its index
    int *assoc_start, *assoc;  // association words of object w: assoc[assoc_start[w] .. assoc_start[w + 1])
    uint8_t *is_key;         // (n_words) a key of relation.json
    uint8_t *safe;           // (n_words) a global safe word
    StrMap form;             // word form -> object index + 1, 0 for a form that is no object
    int not_in_table;        // objects the noun table does not list (they count only as written)
    StrMap pair;             // "i j" (object indices, i < j) -> index into sims
    double *sims;
    int n_sims;
    double threshold;        // similarity above which two words are near-synonyms (0.8)
} AmberVocab;

// relation.json, safe_words.txt, the noun table, and optionally a similarity table (NULL: none).
void amber_vocab_load(AmberVocab *v, const char *relation, const char *safe_words, const char *nouns,
                      const char *similar, double threshold);
void amber_vocab_free(AmberVocab *v);
// The object a token counts as (index), or -1.
int amber_noun(const AmberVocab *v, const char *token);
// Whether two objects are near-synonyms (a word is one of itself).
int amber_similar(const AmberVocab *v, int a, int b);

// One annotation: a caption's objects or a question's answer.
typedef struct {
    int generative;
    AmberDim dim;           // questions: existence, state, number, action or relation
    int truth_yes;          // questions: 1 when the truth is "yes"
    int *truth, n_truth;    // captions: object indices (repeats kept)
    int *hallu, n_hallu;
} AmberItem;

typedef struct {
    AmberItem *items;       // by id - 1
    int n;                  // the largest id
    uint8_t *present;       // (n) the id has an annotation
} AmberAnnotations;

void amber_annotations_load(AmberAnnotations *a, const AmberVocab *v, const char *path);
void amber_annotations_free(AmberAnnotations *a);

// Counts of one dimension of the discriminative task ("No" positive).
typedef struct {
    int n;         // questions
    int correct;
    int truth_no;  // questions whose truth is no
    int ans_no;    // answered No
    int tp;        // answered No, truth no
    int other;     // answered neither Yes nor No (after the parser)
} AmberQaCounts;

typedef struct {
    int captions, hallucinated_captions;
    long nouns, hallucinated_nouns, truth, truth_covered, hallu, hallu_covered;
} AmberGenCounts;

// The result of one caption (amber_score_caption).
typedef struct {
    int *nouns, n_nouns;    // the objects the caption's nouns count as, in order
    uint8_t *hallucinated;  // (n_nouns)
    uint8_t *truth_covered, *hallu_covered;  // (n_truth), (n_hallu)
} AmberCaption;

void amber_score_caption(const AmberVocab *v, const AmberItem *it, const char *caption, AmberCaption *c,
                         AmberGenCounts *g);
void amber_caption_free(AmberCaption *c);

typedef enum { AMBER_PARSER_EXACT = 0, AMBER_PARSER_STRICT = 1, AMBER_PARSER_REFERENCE = 2 } AmberParser;
// 1 yes, 0 no, -1 neither.
int amber_parse(const char *response, AmberParser p);
// Adds one answered question to its dimension and to the pooled ones; returns 1 when right.
int amber_score_answer(const AmberItem *it, int answer, AmberQaCounts *dims);

typedef struct {
    double accuracy, precision, recall, f1;
} AmberQaRates;
typedef struct {
    double chair, cover, hal, cog;
} AmberGenRates;
// Exact ratios (0 where a denominator is 0), and the official script's numbers (percent, rounded to 0.1).
void amber_qa_rates(const AmberQaCounts *c, AmberQaRates *r);
void amber_qa_official(const AmberQaCounts *c, AmberDim d, AmberQaRates *r);
void amber_gen_rates(const AmberGenCounts *g, AmberGenRates *r);
void amber_gen_official(const AmberGenCounts *g, AmberGenRates *r);

typedef struct {
    const char *answers;      // responses: JSON array or JSON Lines with "response" or "text"
    const char *questions;    // optional: the query file they answer (matched by id, else by order)
    const char *annotations, *relation, *safe_words, *nouns, *similar;
    double threshold;
    AmberParser parser;
} AmberOptions;

typedef struct {
    AmberQaCounts dims[AMBER_N_DIMS];
    AmberGenCounts gen;
    int match;                // MatchMode with a questions file, -1 without
    int not_in_table;         // objects the noun table lacks
    int n_items;
    char **ids;               // (n_items) the AMBER id of each answer, in answer order
    int *item_generative, *item_value;  // per answer: 1 for captions; value: right (questions) or hallucinated nouns
} AmberResult;

// Whole evaluation; *per_item (when not NULL) gets one JSON record per answer.
void amber_eval_files(const AmberOptions *o, AmberResult *r, cJSON **per_item);
void amber_result_free(AmberResult *r);
cJSON *amber_result_json(const AmberResult *r);
