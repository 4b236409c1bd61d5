// CHAIR (Caption Hallucination Assessment with Image Relevance, Rohrbach et al. 2018): which objects a
// caption mentions, and how many of them are not in the image (research/evals-peers.md A2).
//
// The object vocabulary is data: a synonyms file in the format of LisaAnne/Hallucination data/synonyms.txt
// (eval/data/coco_synonyms.txt for COCO): one line per object class, comma-separated synonyms, the first
// entry naming the class. Spaces around entries are trimmed, entries are lowercased, blank lines and lines
// starting with '#' are skipped. Two-word entries ("traffic light") are matched as phrases; entries of three
// or more words cannot match (as in the original, whose phrase step joins two words: COCO's "stove top
// oven" is dead there too).
//
// A caption's mentions (chair_mentions), as in utils/chair.py:
//   1. lowercase, split into words (eval/text.h), singularize every word;
//   2. left to right, two consecutive words that form a known phrase become one token: the two-word entries
//      of the synonyms file and, with the COCO rules, chair.py's table: its double words (the synonyms'
//      phrases again, plus "home plate"), "baby X"/"adult X" -> X for animals (so "baby elephant" is no person),
//      "passenger jet/train" -> jet/train, "bow tie" -> tie, "toilet seat" -> toilet, "wine glas" -> wine glass;
//   3. with the COCO rules, if both "toilet" and "seat" are present every "seat" is dropped (not a chair);
//   4. tokens that are synonyms map to their class. Synonym entries are looked up both as written and
//      singularized, so the singularizer's choices cannot hide an entry.
// Every mention counts (CHAIR_i counts mentions, not distinct objects).
//
// Metrics over captions: CHAIR_s = captions with >= 1 hallucinated mention / captions; CHAIR_i =
// hallucinated mentions / mentions; recall = sum over captions of distinct ground-truth classes mentioned /
// sum of ground-truth class counts (as OPERA's chair.py); average length = words per caption (eval/text.h
// words; OPERA counts nltk tokens including punctuation, so its lengths are somewhat larger).
#pragma once
#include <cJSON.h>
#include <stdint.h>

#include "../util/strmap.h"

typedef struct {
    char **classes;      // class names (the first entry of each line), in file order
    int n_classes;
    StrMap word;         // synonym (words joined by one space; as written and singularized) -> class
    StrMap pair;         // two singularized words "a b" -> index into pair_to
    char **pair_to;      // the token a phrase becomes
    int n_pairs, cap_pairs;
    int coco_rules;
} ChairVocab;

void chair_vocab_load(ChairVocab *v, const char *synonyms_path, int coco_rules);
void chair_vocab_free(ChairVocab *v);
// The class of an object name (a ground-truth entry), -1 when it is not in the vocabulary.
int chair_class_of(const ChairVocab *v, const char *name);

typedef struct {
    char **words;   // the matched tokens (singularized, phrases joined), one per mention
    int *classes;   // their classes
    int n;          // mentions
    int n_words;    // words in the caption (for the average length)
} ChairMentions;

void chair_mentions(const ChairVocab *v, const char *caption, ChairMentions *m);
void chair_mentions_free(ChairMentions *m);

// Ground truth: the set of classes in each image, by image key (see chair_image_keys).
typedef struct {
    StrMap image;        // image key -> row
    uint8_t *present;    // (n_images, n_classes)
    int n_images, cap_images, n_classes;
} ChairTruth;

// Reads {"image_id": ["dog", "person", ...], ...} (names are synonyms or classes) or a COCO instances file
// (keys "images", "annotations", "categories"; every listed image gets a row, even with no objects).
void chair_truth_load(ChairTruth *t, const ChairVocab *v, const char *path);
// Adds the objects mentioned in COCO reference captions ({"annotations": [{"image_id", "caption"}]}), as
// the original does; only for images already in t.
void chair_truth_add_captions(ChairTruth *t, const ChairVocab *v, const char *path);
void chair_truth_free(ChairTruth *t);

typedef struct {
    int n_captions, n_hallucinated_captions, n_mentions, n_hallucinated_mentions;
    long n_gt, n_gt_mentioned, n_words;
    double chair_s, chair_i, recall, avg_len;
} ChairMetrics;

// Scores one caption against the classes present in its image (present: n_classes flags), accumulating
// counts into m; returns a JSON record of the caption's mentions when want_json.
cJSON *chair_score_caption(const ChairVocab *v, const uint8_t *present, const char *caption, ChairMetrics *m,
                           int want_json);
void chair_finish(ChairMetrics *m);  // the rates from the counts

typedef struct {
    const char *captions;     // JSON Lines answers (eval/answers.h) or any JSONL with "text"/"caption"
    const char *questions;    // optional: the records the captions were generated from (image_id/image)
    const char *objects;      // ground truth
    const char *synonyms;
    const char *gt_captions;  // optional COCO captions file
    int coco_rules;
} ChairOptions;

// Whole evaluation; *per_caption (when not NULL) receives a JSON array, one record per caption.
// *match receives how captions were matched to questions (-1 when there was no questions file).
void chair_eval_files(const ChairOptions *o, ChairMetrics *m, cJSON **per_caption, int *match);
cJSON *chair_metrics_json(const ChairMetrics *m);
