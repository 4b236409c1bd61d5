#include "recipes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

// ---------------------------------------------------------------------------------------------------
// losses: the table's view of train/losses.c (rows in the recipe's order in, metrics in its names' order out)

// SFT: the mean cross-entropy over the labelled tokens of the batch, as HF's causal-LM loss averages it:
// L = -sum_rows log pi(row) / sum_rows tokens(row).
static double sft_recipe_loss(const LossParams *p, int n, const double *pol, const double *ref, const int *count,
                              double *dpol, double *metrics) {
    double loss = 0;
    int ntok = 0;
    for (int b = 0; b < n; b++) { loss -= pol[b]; ntok += count[b]; }
    loss /= ntok > 0 ? ntok : 1;
    for (int b = 0; b < n; b++) dpol[b] = -1.0 / (ntok > 0 ? ntok : 1);
    return loss;
}

// DPO and TRL's loss family (--loss-type) on rows (chosen, rejected) per example: dpo_loss (train/losses.h).
static double dpo_recipe_loss(const LossParams *p, int n, const double *pol, const double *ref, const int *count,
                              double *dpol, double *metrics) {
    double *v = xmalloc(sizeof(double) * (n ? n : 1) * 6);
    double *pc = v, *pr = v + n, *rc = v + 2 * n, *rr = v + 3 * n, *dpc = v + 4 * n, *dpr = v + 5 * n;
    int *len = xmalloc(sizeof(int) * (n ? n : 1) * 2), *nc = len, *nr = len + n;
    for (int e = 0; e < n; e++) {
        pc[e] = pol[2 * e]; pr[e] = pol[2 * e + 1]; rc[e] = ref[2 * e]; rr[e] = ref[2 * e + 1];
        nc[e] = count[2 * e]; nr[e] = count[2 * e + 1];
    }
    DpoMetrics m;
    double loss = dpo_loss(&p->dpo, n, pc, pr, rc, rr, nc, nr, dpc, dpr, &m);
    for (int e = 0; e < n; e++) { dpol[2 * e] = dpc[e]; dpol[2 * e + 1] = dpr[e]; }
    const double out[6] = {m.reward_chosen, m.reward_rejected, m.reward_accuracy, m.reward_margin, m.logp_chosen, m.logp_rejected};
    memcpy(metrics, out, sizeof(out));
    free(v);
    free(len);
    return loss;
}

// S-VCO and VCO on the six rows of SVCO_*: svco_loss. Metrics per term (loss, accuracy, margin), the rewards, the
// distances per term and the policy log-probs per row (SVCO_METRICS).
static double svco_recipe_loss(const LossParams *p, int n, const double *pol, const double *ref, const int *count,
                               double *dpol, double *metrics) {
    SvcoMetrics m;
    double loss = svco_loss(&p->svco, n, pol, ref, dpol, &m);
    for (int t = 0; t < 4; t++) {
        metrics[3 * t] = m.term[t];
        metrics[3 * t + 1] = m.accuracy[t];
        metrics[3 * t + 2] = m.margin[t];
        metrics[18 + t] = m.distance[t];
    }
    for (int r = 0; r < SVCO_ROWS; r++) {
        metrics[12 + r] = m.reward[r];
        metrics[22 + r] = m.logp[r];
    }
    return loss;
}

// S-VCO's evaluation (trainer.py dpo_loss, train_eval == "eval"): every term on, a term switched off for training
// (beta <= 0) at beta 0.1, so VCO's validation loss has all four terms, as the official eval computes it.
static void svco_eval_params(LossParams *p) {
    for (int t = 0; t < 4; t++) if (p->svco.beta[t] <= 0) p->svco.beta[t] = 0.1;
}

// mDPO on the three rows of MDPO_*: mdpo_loss. Metrics per term (loss, accuracy), then the rewards.
static double mdpo_recipe_loss(const LossParams *p, int n, const double *pol, const double *ref, const int *count,
                               double *dpol, double *metrics) {
    MdpoMetrics m;
    double loss = mdpo_loss(&p->mdpo, n, pol, ref, dpol, &m);
    for (int t = 0; t < 3; t++) {
        metrics[2 * t] = m.term[t];
        metrics[2 * t + 1] = m.accuracy[t];
    }
    metrics[6] = m.reward_chosen;
    metrics[7] = m.reward_rejected;
    metrics[8] = m.reward_corrupt;
    return loss;
}

// ---------------------------------------------------------------------------------------------------
// headline accuracies

static double metric(const Recipe *r, const double *metrics, const char *name) {
    int i = recipe_metric_index(r, name);
    CHECK_OR_DIE(i >= 0, "recipe %s has no metric %s", r->name, name);
    return metrics[i];
}

static double dpo_headline(const Recipe *r, const LossParams *p, const double *m) { return metric(r, m, "rewards/accuracies"); }
static double mdpo_headline(const Recipe *r, const LossParams *p, const double *m) { return metric(r, m, "accuracy/response"); }
static double clip_headline(const Recipe *r, const LossParams *p, const double *m) { return metric(r, m, "accuracy/image_to_text"); }

// S-VCO: the mean accuracy of the terms that are on (VCO: attend_w and reject_w).
static double svco_headline(const Recipe *r, const LossParams *p, const double *m) {
    static const char *names[4] = {"accuracy/attend_w", "accuracy/reject_w", "accuracy/attend_l", "accuracy/reject_l"};
    int on = 0;
    double a = 0;
    for (int t = 0; t < 4; t++) if (p->svco.beta[t] > 0) { a += metric(r, m, names[t]); on++; }
    return on ? a / on : 0;
}

// ---------------------------------------------------------------------------------------------------
// presets: the paper's value of each flag and where it comes from (research/methods.md has the details)

static const PresetValue adamw_defaults[] = {
    {"--beta1", "0.9", "torch.optim.AdamW default (HF optim adamw_torch)"},
    {"--beta2", "0.999", "torch.optim.AdamW default (HF optim adamw_torch)"},
    {"--eps", "1e-8", "torch.optim.AdamW default (HF optim adamw_torch)"},
    {"--max-grad-norm", "1", "HF TrainingArguments default"},
    {NULL, NULL, NULL}};

// LLaVA-1.5's fine-tuning stage (scripts/v1_5/finetune.sh), the stage every preference recipe starts from.
static const PresetValue llava_defaults[] = {
    {"--template", "vicuna_v1", "LLaVA-1.5's conversation template (llava_v1), methods.md §6.1"},
    {"--system", NULL, "the template's own system line"},
    {"--train", "projector,decoder", "LLaVA-1.5 fine-tuning: the vision tower frozen"},
    {"--max-len", "0", "vlm.c: rows are not cut (LLaVA-1.5: model_max_length 2048)"},
    {"--lr", "2e-5", "LLaVA-1.5 finetune.sh"},
    {"--weight-decay", "0", "LLaVA-1.5 finetune.sh"},
    {"--schedule", "cosine", "LLaVA-1.5 finetune.sh"},
    {"--warmup-ratio", "0.03", "LLaVA-1.5 finetune.sh"},
    {"--lora-dropout", "0.05", "LLaVA-1.5 finetune_lora.sh"},
    {NULL, NULL, NULL}};

static const PresetValue reference_cached[] = {
    {"--ref", "cache", "vlm.c: a pre-pass of the frozen base model, equal to the papers' frozen reference copy (DESIGN.md §1)"},
    {NULL, NULL, NULL}};

// SeVa's DPO (methods.md §3.1, §3.3), also CLIP-DPO's loss (§2.1).
static const PresetValue seva_dpo[] = {
    {"--lr", "2e-6", "SeVa run/llava1.5_lora_*.sh (methods.md §3.3)"},
    {"--schedule", "cosine", "SeVa run/llava1.5_lora_*.sh"},
    {"--warmup-ratio", "0.03", "SeVa: --warmup_steps 0 falls back to warmup_ratio 0.03 (methods.md §3.3)"},
    {"--weight-decay", "0", "SeVa: not passed, the HF default"},
    {"--max-grad-norm", "0", "SeVa passes 1.0, which DeepSpeed ZeRO-3 without gradient_clipping never applies (methods.md §3.3)"},
    {"--system", NULL, "vicuna_v1's own \"curious user\" line: SeVa trains with --version v1 (train_dpo_ours.py l.657-658, "
                       "conv_vicuna_v1 at seva/llava/conversation.py l.252-254); its answers were generated with \"curious "
                       "human\" (vlm sample --preset seva)"},
    {"--beta", "0.1", "SeVa train_dpo_ours.py --beta 0.1 (methods.md §3.1)"},
    {"--loss-type", "sigmoid", "SeVa: sigmoid DPO on summed log-probs, no SFT term (methods.md §3.1)"},
    {"--lora-dropout", "0", "SeVa: train_dpo_ours.py l.607 gives PEFT 0.05, then LlavaDPOTrainer (base_dpo_trainer.py l.128, "
                            "l.189-190: disable_dropout=True) sets every Dropout's p to 0 (trainer/utils.py l.499-502)"},
    {NULL, NULL, NULL}};

// S-VCO (methods.md §1.1, §1.4).
static const PresetValue svco_paper[] = {
    {"--template", "llava_hf", "S-VCO data_collator.py DatasetSVCOForLlava15: llava-hf's chat template (processor.apply_chat_template)"},
    {"--system", NULL, "each MVC record's system_prompt (S-VCO data_collator.py); MVC's are empty: no system line"},
    {"--max-text-len", "0", "vlm.c: rows are not cut; S-VCO cuts at 128 with the image as one (run_svco_example.sh "
                            "MODEL_MAX_LENGTH=128): --max-text-len 128"},
    {"--train", "projector,decoder", "S-VCO run.py: fix_vit, the projector trained (methods.md §1.4)"},
    {"--lr", "1e-6", "S-VCO run_svco_example.sh (methods.md §1.4)"},
    {"--schedule", "cosine", "S-VCO run_svco_example.sh"},
    {"--warmup-ratio", "0.05", "S-VCO run_svco_example.sh"},
    {"--beta2", "0.95", "S-VCO run_svco_example.sh"},
    {"--weight-decay", "0.02", "S-VCO run_svco_example.sh"},
    {"--max-grad-norm", "0", "S-VCO: its ZeRO-3 config has no gradient_clipping (methods.md §1.4)"},
    {"--betas", "0.1,0.1,0.1,0.1", "S-VCO run_svco_example.sh and run.py defaults (methods.md §1.1)"},
    {NULL, NULL, NULL}};

static const PresetValue vco_ablation[] = {
    {"--betas", "0.1,0.1,0,0", "S-VCO's VCO ablation: the symmetric terms off (methods.md §1.1)"},
    {NULL, NULL, NULL}};

// mDPO (methods.md §4, bunny/config.yaml and mdpo_trainer.py).
static const PresetValue mdpo_paper[] = {
    {"--lr", "1e-5", "mDPO bunny/config.yaml (methods.md §4)"},
    {"--schedule", "cosine", "mDPO bunny/config.yaml"},
    {"--warmup-ratio", "0.1", "mDPO bunny/config.yaml"},
    {"--beta2", "0.98", "mDPO bunny/config.yaml"},
    {"--weight-decay", "0.05", "mDPO bunny/config.yaml"},
    {"--beta", "0.1", "mDPO bunny/config.yaml"},
    {"--delta", "0", "mDPO mdpo_trainer.py: the anchor's margin is 0 (methods.md §4)"},
    {"--crop-scale", "0.01,0.2", "mDPO bunny/modeling_bunny_phi.py l.2361 crop_images: RandomResizedCrop scale (0.01, 0.2)"},
    {"--crop", "fresh", "mDPO modeling_bunny_phi.py l.2326-2327: crop_images inside forward, so every pass (the policy's, "
                        "the reference's) draws its own crop"},
    {"--ref", "online", "mDPO mdpo_trainer.py l.154-172 get_batch_metrics: the reference's forward in every step (the model "
                        "with its adapters off); a fresh crop's log-prob cannot be cached"},
    {"--lora-dropout", "0", "mDPO: run_mdpo_bunny.py l.237 gives PEFT 0.05, then TRL 0.7.2's DPOTrainer (disable_dropout=True, "
                            "dpo_trainer.py l.215-216) sets every Dropout's p to 0 after wrapping (l.138)"},
    {NULL, NULL, NULL}};

// The miniature study's CLIP pretraining (DESIGN.md §5): no paper fixes these, they are vlm.c's.
static const PresetValue clip_defaults[] = {
    {"--lr", "2e-5", "vlm.c default (the SFT stage's value)"},
    {"--weight-decay", "0", "vlm.c default"},
    {"--schedule", "cosine", "vlm.c default"},
    {"--warmup-ratio", "0.03", "vlm.c default"},
    {NULL, NULL, NULL}};

// ---------------------------------------------------------------------------------------------------
// the table

#define PLOT_LOSS "loss"
// S-VCO and VCO share rows and metrics: rows in the order of SVCO_* (train/losses.h), y_w under I_w, I_l and
// no image, then y_l under the same; per term its loss, accuracy and margin (svco_recipe_loss), the rewards, then
// the |policy log-ratio| distances of the terms and the policy log-probs of the rows under S-VCO's own names
// (trainer.py get_batch_metrics: pi_logratios/..._distance, logps/policy_logps_...; its train_/eval_ prefix is
// our "" and "val/")
#define SVCO_ROW_SPECS {{0, 0}, {0, 1}, {0, -1}, {1, 0}, {1, 1}, {1, -1}}
// S-VCO's and VCO's reward chart: the margin of each of the four terms (its preferred minus its dispreferred
// log-ratio to the reference, before beta: SvcoMetrics.margin)
#define SVCO_REWARD_PLOT_KEYS "margin/attend_w,margin/reject_w,margin/attend_l,margin/reject_l"
#define SVCO_REWARD_PLOT_TITLE "margin of each term (log-ratio difference, before beta)"
#define SVCO_METRICS                                                                                                      \
    {"logps/mean", "loss/attend_w", "accuracy/attend_w", "margin/attend_w", "loss/reject_w", "accuracy/reject_w",         \
     "margin/reject_w", "loss/attend_l", "accuracy/attend_l", "margin/attend_l", "loss/reject_l", "accuracy/reject_l",     \
     "margin/reject_l", "rewards/w|Iw", "rewards/w|Il", "rewards/w|none", "rewards/l|Iw", "rewards/l|Il", "rewards/l|none", \
     "pi_logratios/pi_logratios_img_win_vs_no_img_distance", "pi_logratios/pi_logratios_no_img_vs_img_lose_distance",       \
     "pi_logratios/pi_logratios_img_lose_vs_no_img_distance", "pi_logratios/pi_logratios_no_img_vs_img_win_distance",       \
     "logps/policy_logps_img_chosen_res_chosen", "logps/policy_logps_img_rejected_res_chosen",                              \
     "logps/policy_logps_no_img_res_chosen", "logps/policy_logps_img_chosen_res_rejected",                                  \
     "logps/policy_logps_img_rejected_res_rejected", "logps/policy_logps_no_img_res_rejected", NULL}
static const Recipe recipes[] = {
    {.name = "sft", .id = 0, .summary = "supervised fine-tuning: mean cross-entropy of the response tokens (LLaVA-1.5)",
     .model = MODEL_LLAVA, .records = RECORDS_SFT, .n_rows = 1, .rows = {{0, 0}}, .second_image = IMAGE2_NONE,
     .uses_reference = 0, .loss = sft_recipe_loss, .metrics = {"logps/mean", NULL}, .headline = NULL,
     .loss_plot_title = PLOT_LOSS, .presets = {adamw_defaults, llava_defaults, NULL}},
    {.name = "dpo", .id = 1, .summary = "DPO on preference pairs, as SeVa and CLIP-DPO train it (methods.md §2, §3)",
     .model = MODEL_LLAVA, .records = RECORDS_PAIR, .n_rows = 2, .rows = {{0, 0}, {1, 0}}, .second_image = IMAGE2_NONE,
     .uses_reference = 1, .reads = READS_DPO_LOSS | READS_BETA, .loss = dpo_recipe_loss,
     .metrics = {"logps/mean", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                 "logps/rejected", NULL},
     .headline = dpo_headline, .loss_plot_title = PLOT_LOSS, .acc_plot_keys = "rewards/accuracies,val/rewards/accuracies",
     .acc_plot_title = "reward accuracy", .reward_plot_keys = "rewards/chosen,rewards/rejected,rewards/margins",
     .reward_plot_title = "rewards (beta x log-ratio to the reference)",
     .presets = {adamw_defaults, llava_defaults, reference_cached, seva_dpo}},
    {.name = "svco", .id = 2, .summary = "S-VCO: four image-conditioned terms on MVC pairs of minimally different images (methods.md §1)",
     .model = MODEL_LLAVA, .records = RECORDS_MVC, .n_rows = 6, .rows = SVCO_ROW_SPECS,
     .second_image = IMAGE2_RECORD, .uses_reference = 1, .reads = READS_SVCO_BETAS, .loss = svco_recipe_loss,
     .metrics = SVCO_METRICS, .eval_params = svco_eval_params,
     .headline = svco_headline, .loss_plot_title = PLOT_LOSS,
     .acc_plot_keys = "accuracy/attend_w,accuracy/reject_w,accuracy/attend_l,accuracy/reject_l,val/accuracy",
     .acc_plot_title = "reward accuracy", .reward_plot_keys = SVCO_REWARD_PLOT_KEYS, .reward_plot_title = SVCO_REWARD_PLOT_TITLE,
     .presets = {adamw_defaults, llava_defaults, reference_cached, svco_paper}},
    {.name = "vco", .id = 3, .summary = "VCO: S-VCO without its symmetric terms (the ablation of methods.md §1.1)",
     .model = MODEL_LLAVA, .records = RECORDS_MVC, .n_rows = 6, .rows = SVCO_ROW_SPECS,
     .second_image = IMAGE2_RECORD, .uses_reference = 1, .reads = READS_SVCO_BETAS, .loss = svco_recipe_loss,
     .metrics = SVCO_METRICS, .eval_params = svco_eval_params,
     .headline = svco_headline, .loss_plot_title = PLOT_LOSS,
     .acc_plot_keys = "accuracy/attend_w,accuracy/reject_w,accuracy/attend_l,accuracy/reject_l,val/accuracy",
     .acc_plot_title = "reward accuracy", .reward_plot_keys = SVCO_REWARD_PLOT_KEYS, .reward_plot_title = SVCO_REWARD_PLOT_TITLE,
     .presets = {adamw_defaults, llava_defaults, reference_cached, svco_paper, vco_ablation}},
    // rows in the order of MDPO_*: (m, y_w), (m, y_l), (m', y_w) with m' the corrupted crop
    {.name = "mdpo", .id = 4, .summary = "mDPO: DPO + preference of the image over a corrupted crop + an anchor (methods.md §4)",
     .model = MODEL_LLAVA, .records = RECORDS_PAIR, .n_rows = 3, .rows = {{0, 0}, {1, 0}, {0, 1}}, .second_image = IMAGE2_CROP,
     .uses_reference = 1, .reads = READS_BETA | READS_MDPO, .loss = mdpo_recipe_loss,
     .metrics = {"logps/mean", "loss/response", "accuracy/response", "loss/image", "accuracy/image", "loss/anchor",
                 "accuracy/anchor", "rewards/chosen", "rewards/rejected", "rewards/corrupted", NULL},
     .headline = mdpo_headline, .loss_plot_title = PLOT_LOSS, .acc_plot_keys = "accuracy/response,accuracy/image,val/accuracy",
     .acc_plot_title = "reward accuracy", .reward_plot_keys = "rewards/chosen,rewards/rejected,rewards/corrupted",
     .reward_plot_title = "rewards (beta x log-ratio to the reference)",
     .presets = {adamw_defaults, llava_defaults, reference_cached, mdpo_paper}},
    {.name = "clip", .id = 5, .summary = "CLIP contrastive training of both towers: symmetric InfoNCE over image-caption pairs",
     .model = MODEL_CLIP, .records = RECORDS_CAPTION, .n_rows = 0, .uses_reference = 0, .loss = NULL,
     .metrics = {"accuracy/image_to_text", "accuracy/text_to_image", NULL}, .headline = clip_headline,
     .loss_plot_title = "CLIP contrastive loss",
     .acc_plot_keys = "accuracy/image_to_text,accuracy/text_to_image,val/accuracy/image_to_text",
     .acc_plot_title = "retrieval accuracy", .presets = {adamw_defaults, clip_defaults, NULL}},
};
enum { N_RECIPES = sizeof(recipes) / sizeof(recipes[0]) };

const Recipe *recipe_at(int i) { return i >= 0 && i < N_RECIPES ? &recipes[i] : NULL; }

const Recipe *recipe_find(const char *name) {
    for (int i = 0; i < N_RECIPES; i++) if (!strcmp(name, recipes[i].name)) return &recipes[i];
    char list[256] = "";
    size_t k = 0;
    for (int i = 0; i < N_RECIPES; i++)
        k += snprintf(list + k, sizeof(list) - k, "%s%s", i == 0 ? "" : i + 1 < N_RECIPES ? ", " : " or ", recipes[i].name);
    fatal("--recipe '%s': expected %s", name, list);
}

unsigned recipe_reads(const Recipe *r) {
    return r->reads | (r->uses_reference ? READS_REFERENCE : 0) | (r->model == MODEL_LLAVA ? READS_LLAVA : 0);
}

const char *recipe_reads_name(unsigned bit) {
    static const char *const names[READS_KINDS] = {"DPO's loss (TRL's loss_type family, train/losses.h)",
                                                   "the beta of DPO's and mDPO's sigmoids", "S-VCO's per-term betas",
                                                   "mDPO's anchor margin and corrupted crop", "the frozen reference",
                                                   "the LLaVA model and its chat-templated data"};
    for (int i = 0; i < READS_KINDS; i++) if (bit == 1u << i) return names[i];
    return "?";
}

double recipe_step0_loss(const Recipe *r, const LossParams *p, char *label, size_t label_len) {
    if (label_len) label[0] = 0;
    if (!r->loss || !r->uses_reference) return NAN;
    // policy = reference at two log-prob levels: a loss of the log-ratios alone gives one value, the identity
    double v[2], pol[RECIPE_MAX_ROWS], d[RECIPE_MAX_ROWS], m[RECIPE_MAX_METRICS];
    int count[RECIPE_MAX_ROWS];
    for (int level = 0; level < 2; level++) {
        for (int k = 0; k < r->n_rows; k++) { pol[k] = level ? -7.5 : -1.25; count[k] = 1 + k; }
        v[level] = r->loss(p, 1, pol, pol, count, d, m);
    }
    if (!isfinite(v[0]) || fabs(v[0] - v[1]) > 1e-12 * fmax(1, fabs(v[0]))) return NAN;
    const double k = v[0] / log(2.0);
    if (fabs(k - round(k)) < 1e-9 && round(k) >= 1) {
        if (round(k) == 1) snprintf(label, label_len, "step 0 (policy = reference): log 2");
        else snprintf(label, label_len, "step 0 (policy = reference): %.0f log 2", round(k));
    } else snprintf(label, label_len, "step 0 (policy = reference): %.4g", v[0]);
    return v[0];
}

int recipe_n_metrics(const Recipe *r) {
    int n = 0;
    while (n < RECIPE_MAX_METRICS && r->metrics[n]) n++;
    return n;
}

int recipe_metric_index(const Recipe *r, const char *name) {
    for (int i = 0; i < RECIPE_MAX_METRICS && r->metrics[i]; i++) if (!strcmp(r->metrics[i], name)) return i;
    return -1;
}

const PresetValue *recipe_preset(const Recipe *r, const char *flag) {
    const PresetValue *found = NULL;
    for (int k = 0; r->presets[k]; k++)
        for (const PresetValue *p = r->presets[k]; p->flag; p++) if (!strcmp(p->flag, flag)) found = p;
    return found;
}
