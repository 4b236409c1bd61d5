// Dataset record readers: the training and evaluation files as released by the papers, read into
// plain C structs and validated.
//
//   LLaVA conversations (SFT)   a JSON array of {"id", "image" (optional; or "images": [path]), "conversations":
//                               [{"from": "human"|"gpt", "value": ...}, ...]} (llava_v1_5_mix665k.json)
//   preference pairs (DPO/SeVa) JSON Lines {"image" (optional; or TRL's "images": [path]), "prompt" (or
//                               "question"), "chosen", "rejected"}
//   MVC pairs (S-VCO)           a JSON array of {"system_prompt", "instruction_prompt", "chosen_images",
//                               "rejected_images", "chosen_response", "rejected_response"}, images as
//                               lists of paths (S-VCO's data/mvc.json)
//   POPE questions              JSON Lines despite the .json name: {"question_id", "image", "text",
//                               "label": "yes"|"no"} (RUCAIBox/POPE output/coco/*.json)
//   (llava, pref and pope records: another key that looks like an image path is an error naming it)
//
// Errors name the file and the line (JSON Lines) or the record index (JSON arrays, 0-based) and the
// problem, then exit (fatal). With skip_bad a bad record is reported on stderr as a warning, counted
// in Dataset.n_bad and left out instead; a file that is not valid JSON at all stays fatal for the
// JSON-array formats (there is no record boundary to resume at).
//
// Image paths are resolved against DatasetOptions.image_root, or the data file's folder when that is
// NULL; absolute paths are kept. Readers do not open the images (POPE's COCO images are usually not
// at hand when the questions are read); `vlm data pack` loads them and names the record on failure.
#pragma once
#include <stdint.h>

typedef enum {
    DATA_NONE = 0,
    DATA_LLAVA = 1,  // conversation records (SFT)
    DATA_PREF = 2,   // preference pairs (DPO, SeVa, CLIP-DPO, mDPO)
    DATA_MVC = 3,    // minimal visual contrast pairs (S-VCO)
    DATA_POPE = 4,   // yes/no object probing questions (evaluation)
} DataKind;

// "llava", "pref", "mvc", "pope" <-> DataKind; parse returns DATA_NONE for anything else.
DataKind data_kind_parse(const char *name);
const char *data_kind_name(DataKind kind);

typedef struct {
    const char *image_root;  // folder image paths are relative to; NULL: the data file's folder
    int skip_bad;            // report and count bad records instead of dying
} DatasetOptions;

// Where every record came from, for messages: line > 0 for JSON Lines, else the array index.
typedef struct {
    int index;  // 0-based position in the file (JSON Lines: among non-blank lines), bad records included
    int line;   // 1-based line (JSON Lines), 0 for JSON arrays
} RecordSource;

// The most images one LLaVA or preference record may list (as training's TRAIN_MAX_SIDE_IMAGES).
enum { DATASET_MAX_RECORD_IMAGES = 8 };

// LLaVA conversation. Turns alternate human, gpt, human, gpt, ... and end with gpt, so turn t is the
// human's when t is even. One image: "<image>" appears at most once, only in turn 0; an image whose turn 0
// has no "<image>" goes before the first question (LLaVA-1.5's layout). Several images ("image" as a list):
// one "<image>" per image in the human turns, in order, or none (all go before the first question).
typedef struct {
    RecordSource src;
    char *id;         // the "id" field as text ("" when absent; numbers are printed)
    char **images;    // (n_images) resolved paths in order; none for a text-only conversation
    int n_images;
    char **turns;     // (n_turns) UTF-8 values
    int n_turns;
} LlavaRecord;

// Preference pair: the same images and prompt, a preferred and a dispreferred response. The prompt has one
// "<image>" per image or none.
typedef struct {
    RecordSource src;
    char **images;    // (n_images) resolved paths in order; none for an image-free pair
    int n_images;
    char *prompt, *chosen, *rejected;
} PrefRecord;

// MVC pair: two minimally different image sets, each with the response that matches it.
typedef struct {
    RecordSource src;
    char *system_prompt;       // may be ""
    char *instruction_prompt;
    char **chosen_images, **rejected_images;  // resolved paths, >= 1 each
    int n_chosen_images, n_rejected_images;
    char *chosen_response, *rejected_response;
} MvcRecord;

// POPE question.
typedef struct {
    RecordSource src;
    long question_id;
    char *image;      // resolved path
    char *text;
    int label;        // 1 = "yes" (the object is in the image), 0 = "no"
} PopeRecord;

// The records of one file; exactly one of the arrays is set, by kind.
typedef struct {
    DataKind kind;
    char *path;
    int n;            // records kept
    int n_bad;        // records skipped (skip_bad)
    LlavaRecord *llava;
    PrefRecord *pref;
    MvcRecord *mvc;
    PopeRecord *pope;
} Dataset;

void dataset_read_llava(Dataset *ds, const char *path, const DatasetOptions *opt);
void dataset_read_pref(Dataset *ds, const char *path, const DatasetOptions *opt);
void dataset_read_mvc(Dataset *ds, const char *path, const DatasetOptions *opt);
void dataset_read_pope(Dataset *ds, const char *path, const DatasetOptions *opt);
// One of the above by kind. opt may be NULL (image paths relative to the file, no skipping).
void dataset_read(Dataset *ds, DataKind kind, const char *path, const DatasetOptions *opt);
void dataset_free(Dataset *ds);

// "FILE:LINE" (JSON Lines) or "FILE: record N" (JSON arrays) for record i, into buf.
const char *dataset_where(const Dataset *ds, int i, char *buf, int len);
