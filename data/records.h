// Records read from JSON Lines files, validated against the model they will run on. Every error names
// the file, the line and the problem.
#pragma once
#include "../model/config.h"
#include "chat.h"
#include "preprocess.h"

// One `vlm logprobs` record, resolved to token ids (image tokens expanded).
typedef struct {
    int index;        // 0-based record number (blank lines not counted)
    int line;         // line in the file
    int *ids, n;      // token ids
    int n_response;   // the last n_response ids are the response
    char **images;    // (n_images) resolved paths in prompt order; none for an image-free row
    int n_images;
} LogprobRecord;

// The most images one `vlm logprobs` record may have.
enum { RECORDS_MAX_IMAGES = 8 };

typedef struct {
    const char *path;
    LogprobRecord *r;
    int n;
} RecordSet;

// Reads `vlm logprobs` records (see cli/cmd_logprobs.c for the format). Image paths ("image", a path or a list, or
// TRL's "images": [paths]) are resolved relative to images_dir, or the JSONL's folder when it is NULL. Text records
// ("prompt" or "question", and "response") are tokenized with tok_path (or model_dir/tokenizer.model); a text
// prompt of a record with images but no "<image>" gets one per image where the chat templates put the image
// (records_place_image); one with some must have one per image. Any other key that looks like an image is an error.
void records_read_logprobs(RecordSet *rs, const char *path, const LlavaConfig *cfg, const char *model_dir,
                           const char *tok_path, const char *images_dir);
void records_free(RecordSet *rs);

// The model's preprocessor_config.json, or, when it has none, the defaults of its tower's processor (CLIP's or
// SigLIP's) at the tower's image size.
PreprocessConfig records_tower_preprocess_config(const char *model_dir, const VisionConfig *tower);

// "<image>\n" placed in a text prompt as the chat templates place it: after the first "USER: " (vicuna_v1 and
// llava_hf render "USER: <image>\n{question}"), else in front. A fresh string.
char *records_place_image(const char *prompt);

// How many of ids are the image token.
int records_count_image_tokens(const int *ids, int n, const LlavaConfig *cfg);

// Expands token ids for a model with n_images images: each image token given once (n_images of them) becomes
// image_tokens copies; a row that already has exactly n_images * image_tokens copies is kept. Returns a fresh
// array (n_out set), or NULL with a message in err when the count is neither (or the row has image tokens but no
// image, or vice versa).
int *records_expand_image_tokens(const int *ids, int n, int n_images, const LlavaConfig *cfg, int *n_out,
                                 char *err, size_t errlen);

// ---- `vlm sample` records


// One `vlm sample` record: a prompt to continue.
typedef struct {
    int index;          // 0-based record number (blank lines not counted)
    int line;           // line in the file
    int *ids, n;        // the prompt's token ids, image tokens expanded
    char *image;        // resolved path, or NULL for an image-free prompt
    char *question_id;  // the record's "question_id" as JSON text (passed through), or NULL
} SampleRecord;

typedef struct {
    const char *path;
    SampleRecord *r;
    int n;
    int max_len;        // the longest prompt
} SampleRecordSet;

typedef struct {
    ChatTemplate tmpl;          // renders text prompts
    const char *images_dir;     // root of relative image paths (NULL: the JSONL's folder)
    const char *prompt_suffix;  // appended to every text prompt (POPE's " Answer the question using a single
                                // word or phrase."), NULL: none
    const char *system;         // the system line of records without a "system" (NULL: the template's own)
} SampleReadOptions;

// Reads `vlm sample` records: "image" (optional; or TRL's "images": [path]; relative to opt->images_dir or
// the JSONL's folder; it must exist) and either a text prompt — "prompt", "question" or "text" (POPE's
// released files) — rendered with the chat template as the first user turn with the generation prompt after
// it (an optional "system" replacing opt->system or else the template's system line; needs tok), or "input_ids" (ids, the image
// token once or expanded). Dies naming the file and line on a bad record, or on another key that looks like
// an image (it would be silently dropped).
void records_read_sample(SampleRecordSet *rs, const char *path, const LlavaConfig *cfg, const Tokenizer *tok,
                         const SampleReadOptions *opt);
void records_free_sample(SampleRecordSet *rs);
