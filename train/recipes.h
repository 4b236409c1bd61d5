// The recipe table: one entry per training objective of `vlm train --recipe NAME`, and the only place that
// says what a recipe is. An entry holds
//   - its data: how a record is read (the data builder, train/data.c) and the rows an example becomes, in
//     the order its loss reads them;
//   - its loss: row log-probs in, loss, gradient and metrics out (the math is in train/losses.h);
//   - its metrics, named as TRL names them where TRL has the quantity (rewards/chosen, rewards/rejected,
//     rewards/margins, rewards/accuracies, logps/chosen, logps/rejected), plus S-VCO's per-term names;
//     the headline accuracy of the progress line and the keys of its plots;
//   - its paper preset: the default of every flag the paper fixes, each with the source of the value
//     (train/settings.h applies, prints and checks them).
// The training loop (train/run.c) and the per-model steps (train/trainer.c for LLaVA, train/clip_train.c for
// CLIP) ask the table and never branch on the recipe. Adding a recipe is one entry here, its loss function
// and its test.
#pragma once
#include "losses.h"

// Which model a recipe trains, and so which per-model step the loop runs.
typedef enum { MODEL_LLAVA, MODEL_CLIP } RecipeModel;

// How the data builder reads one record (train/data.h lists the keys of each).
typedef enum {
    RECORDS_SFT,      // {"image"?, "prompt", "response"} or LLaVA's {"image"?, "conversations"}
    RECORDS_PAIR,     // {"image"?, "prompt", "chosen", "rejected"} (TRL's preference records)
    RECORDS_MVC,      // S-VCO's MVC records: two images, one instruction, a response for each image
    RECORDS_CAPTION,  // {"image", "caption"} for CLIP (train/clip_train.c)
} RecordKind;

// What an example's second image (slot 1) is.
typedef enum {
    IMAGE2_NONE,    // one image at most (slot 0 is the record's image, if it has one)
    IMAGE2_RECORD,  // the record's second image (MVC's rejected image)
    IMAGE2_CROP,    // a corrupted copy of slot 0: a random-resized crop (mDPO's m')
} SecondImage;

// One row of an example: which response it scores and under which image.
typedef struct {
    int response;  // 0: the chosen (or only) response, 1: the rejected one
    int image;     // image slot 0 or 1, or -1 for an image-free row (the prompt without its image)
} RowSpec;

enum { RECIPE_MAX_ROWS = 6, RECIPE_MAX_METRICS = 32 };

// What only some recipes read (train/settings.c marks the flags that set each): a flag given to a recipe that does
// not read what it sets is an error naming the recipe and the recipes that do read it, never silently ignored.
enum {
    READS_DPO_LOSS = 1 << 0,    // --loss-type, --label-smoothing, --reference-free (--ipo): dpo_loss's family
    READS_BETA = 1 << 1,        // --beta: the beta of DPO's and mDPO's sigmoids
    READS_SVCO_BETAS = 1 << 2,  // --betas: S-VCO's per-term betas
    READS_MDPO = 1 << 3,        // --delta, --crop-scale, --crop: mDPO's anchor margin and corrupted image
    READS_REFERENCE = 1 << 4,   // --ref: the frozen reference (every recipe with uses_reference)
    READS_LLAVA = 1 << 5,       // the LLaVA model's and its chat data's flags (every MODEL_LLAVA recipe)
    READS_KINDS = 6
};

// One value of a paper preset: the `vlm train` flag it is the default of, its value as that flag takes it
// (NULL: unset, e.g. the template's own system prompt) and where the value comes from.
typedef struct {
    const char *flag, *value, *source;
} PresetValue;

// The parameters of every loss of the table (each recipe reads its own).
typedef struct {
    DpoParams dpo;
    SvcoParams svco;
    MdpoParams mdpo;
} LossParams;

// pol, ref (n, rows): the policy's and the reference's summed response log-probs of n examples, rows in the
// recipe's order (ref is NULL for a recipe without a reference); count (n, rows): labelled tokens per row.
// Writes dpol (n, rows) = dL/d(pol) and metrics (batch means, in the order of the recipe's metric names after
// "logps/mean", which the LLaVA step computes itself). Returns the loss.
typedef double (*RecipeLoss)(const LossParams *p, int n, const double *pol, const double *ref, const int *count,
                             double *dpol, double *metrics);

typedef struct Recipe {
    const char *name;             // --recipe NAME
    int id;                       // stable number (never reused): hashed into the data hash and the reference
                                  // cache, so checkpoints and caches of earlier versions stay valid
    const char *summary;          // one line for `vlm train --help`
    RecipeModel model;
    // data
    RecordKind records;
    int n_rows;                   // rows per example
    RowSpec rows[RECIPE_MAX_ROWS];  // (n_rows) in the order the loss reads them
    SecondImage second_image;
    int uses_reference;           // the loss compares with a frozen reference (the cached pre-pass or --ref online)
    unsigned reads;               // READS_* of its loss (READS_REFERENCE and READS_LLAVA follow from the entry)
    // loss and metrics
    RecipeLoss loss;              // NULL for CLIP: its loss is on the embeddings (clip_contrastive_loss)
    const char *metrics[RECIPE_MAX_METRICS];  // names of the logged metrics, NULL-terminated; LLaVA recipes
                                  // start with "logps/mean" (the mean summed log-prob of the batch's rows)
    void (*eval_params)(LossParams *p);  // the loss's parameters on held-out data, from the run's (NULL: the same)
    double (*headline)(const struct Recipe *r, const LossParams *p, const double *metrics);  // the accuracy
                                  // of the progress line and of val/accuracy, from the metrics above; NULL: none
    const char *loss_plot_title;  // loss.svg: loss and val/loss
    const char *acc_plot_keys;    // accuracy.svg (NULL: no accuracy plot)
    const char *acc_plot_title;
    const char *reward_plot_keys; // rewards.svg: the implicit rewards (beta times the policy-reference log-ratio)
                                  // or their margins, the curves the papers plot (NULL: none)
    const char *reward_plot_title;
    // the paper's settings: lists of values, each terminated by {NULL}, a later list's value replacing an
    // earlier one's (shared lists first: the optimizer defaults, the LLaVA recipes', the recipe's own)
    const PresetValue *presets[6];  // NULL-terminated
} Recipe;

// The recipe named `name`; dies listing the names on an unknown one.
const Recipe *recipe_find(const char *name);
// The i-th recipe of the table (NULL past the end), in the order of `vlm train --help`.
const Recipe *recipe_at(int i);
// The READS_* bits of r: its loss's, READS_REFERENCE when it uses a reference, READS_LLAVA when it trains a LLaVA.
unsigned recipe_reads(const Recipe *r);
// What a READS_* bit stands for, for messages ("DPO's loss type family").
const char *recipe_reads_name(unsigned bit);
// The loss of r with parameters p when the policy is the reference (every step-1 preference loss: DPO log 2,
// S-VCO 4 log 2, VCO 2 log 2, mDPO 3 log 2; hinge 1, IPO 1/(4 beta^2)), with a label for the loss plot's marker
// ("3 log 2"); NaN when r has no reference or its loss also reads the log-probs themselves (an sft term).
double recipe_step0_loss(const Recipe *r, const LossParams *p, char *label, size_t label_len);
// Number of metric names of r, and the index of `name` among them (-1: none).
int recipe_n_metrics(const Recipe *r);
int recipe_metric_index(const Recipe *r, const char *name);
// The value of `flag` in r's preset (from the last list that sets it), with its source; NULL when the preset
// does not set the flag.
const PresetValue *recipe_preset(const Recipe *r, const char *flag);
