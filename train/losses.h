// Losses computed on the host from small per-row quantities (embeddings, summed log-probs), each with its
// gradient. The model side (forward/backward of the towers) stays on the backend.
#pragma once
#include <stddef.h>

typedef struct {
    double loss;
    double *img_normed, *txt_normed;  // (B, P) L2-normalized embeddings
    double *logits_per_image;         // (B, B) exp(logit_scale) * img . txt
    double dlogit_scale;              // dL/d logit_scale
    double acc_i2t, acc_t2i;          // retrieval accuracy of the matching pairs
} ClipLossOut;

// CLIP's symmetric InfoNCE (transformers CLIPModel with return_loss): image i matches text i;
// L = (CE(logits_per_text, arange) + CE(logits_per_image, arange)) / 2 with the logits scaled by
// exp(logit_scale). img, txt (B, P) are the projected, unnormalized embeddings; dimg, dtxt (B, P) receive
// the gradients (either may be NULL).
void clip_contrastive_loss(const float *img, const float *txt, int B, int P, float logit_scale, ClipLossOut *out,
                           float *dimg, float *dtxt);
void clip_loss_out_free(ClipLossOut *out);

// ---- preference losses on summed response log-probs (research/methods.md) ----
// Every function takes per-pair policy log-probs and reference log-probs, returns the batch loss (mean
// over pairs) and writes dL/d(policy log-prob) for every row; reference log-probs get no gradient.

// DPO and TRL's family of pair losses (trl.DPOTrainer's loss_type, as TRL 1.16 computes them). Per pair, with
// h_c = log pi(y_w) - log pi_ref(y_w) and h_r the same for y_l (the log-ratios; pi_ref = 1 with reference_free),
// D = h_c - h_r, n_c and n_r the responses' lengths in tokens, b = beta and e = label_smoothing:
//   sigmoid       -log s(b D)                                   DPO (Rafailov et al.); with e > 0 cDPO,
//                 -(1-e) log s(b D) - e log s(-b D)             as TRL < 1.0 computed it (TRL 1.x ignores e here)
//   hinge         max(0, 1 - b D)                               SLiC
//   ipo           (h_c / n_c - h_r / n_r - 1 / (2b))^2          IPO on length-averaged log-probs, as TRL >= 0.7.11
//   ipo_sum       (D - 1 / (2b))^2                              IPO's equation on summed log-probs
//   robust        ((1-e) (-log s(b D)) - e (-log s(-b D))) / (1 - 2e)   rDPO: unbiased under a label-flip rate e < 1/2
//   sigmoid_norm  -log s(b (h_c / n_c - h_r / n_r))             DPO on length-normalized log-ratios (SimPO-style,
//                                                               with the reference)
//   bco_pair      -log s(b h_c) - log s(-b h_r)                 BCO on pairs (TRL 1.x: no running reward shift)
//   sft           -sum_i log pi(y_w,i) / sum_i n_c,i            the chosen responses' NLL per token over the batch
// The loss is the weighted sum of the terms' batch means (TRL's loss_weights; MPO: sigmoid 0.8, bco_pair 0.2,
// sft 1). s is the logistic sigmoid. Adding a type: its enum value, its function and table entry in losses.c, its
// line above and its case in tests/ref/make_trl_loss_fixtures.py.
typedef enum { DPO_SIGMOID, DPO_HINGE, DPO_IPO, DPO_IPO_SUM, DPO_ROBUST, DPO_SIGMOID_NORM, DPO_BCO_PAIR, DPO_SFT, DPO_LOSS_TYPES } DpoLossType;
enum { DPO_MAX_TERMS = 8 };

typedef struct {
    double beta;             // 0.1 in SeVa, CLIP-DPO (methods.md §2.1, §3.1)
    double label_smoothing;  // e above: sigmoid (cDPO) and robust
    int reference_free;      // treat the reference log-probs as 0
    int n_terms;             // the loss is sum_k weight[k] * term[k]; 0: sigmoid alone
    DpoLossType term[DPO_MAX_TERMS];  // (n_terms)
    double weight[DPO_MAX_TERMS];     // (n_terms)
} DpoParams;

typedef struct {  // batch means
    double loss, reward_chosen, reward_rejected, reward_accuracy, reward_margin, logp_chosen, logp_rejected;
} DpoMetrics;

// "sigmoid", or a weighted sum "sigmoid:0.8,bco_pair:0.2,sft:1" (a missing weight is 1), into p's terms. Returns 0,
// or -1 with a message naming the part that is not a type or not a weight in err.
int dpo_loss_types_parse(DpoParams *p, const char *text, char *err, size_t errlen);
// p's terms back as that text ("sigmoid" for none).
void dpo_loss_types_format(const DpoParams *p, char *buf, size_t len);
// The name and a one-line description of type t (for --help); NULL past the last.
const char *dpo_loss_type_name(int t);
const char *dpo_loss_type_summary(int t);

// The loss above, mean over the n pairs; rewards are beta h as TRL logs them. pc, pr, rc, rr (n) policy/reference
// log-probs of chosen/rejected; nc, nr (n) their lengths in tokens (read by ipo, sigmoid_norm and sft); dpc, dpr
// (n) dL/d(pc), dL/d(pr).
double dpo_loss(const DpoParams *p, int n, const double *pc, const double *pr, const double *rc, const double *rr,
                const int *nc, const int *nr, double *dpc, double *dpr, DpoMetrics *m);

// S-VCO (methods.md §1.1): the six log-probs of a pair, in this order
enum { SVCO_W_IW, SVCO_W_IL, SVCO_W_NONE, SVCO_L_IW, SVCO_L_IL, SVCO_L_NONE, SVCO_ROWS };
typedef struct {
    double beta[4];  // attend_w, reject_w, attend_l, reject_l (all 0.1 in the paper); <= 0 switches a term off
} SvcoParams;

typedef struct {
    double loss, term[4];             // batch mean of the total and of each term (A_w, R_w, A_l, R_l)
    double reward[SVCO_ROWS];         // mean r = log pi - log pi_ref for every (response, condition)
    double accuracy[4];               // fraction of pairs with each term's comparison won (argument > 0)
    double margin[4];                 // mean argument of each term (before beta)
    double distance[4];               // mean |policy log-ratio| of each term's two rows, the reference left out
                                      // (S-VCO trainer.py dpo_loss: dist_* = (policy_logps_a - policy_logps_b).abs())
    double logp[SVCO_ROWS];           // mean policy log-prob of every (response, condition)
} SvcoMetrics;

// pol, ref (n, SVCO_ROWS); dpol (n, SVCO_ROWS) gradients.
//   A_w = -log s(b1 [r(w|Iw) - r(w|0)])     R_w = -log s(b2 [r(w|0) - r(w|Il)])
//   A_l = -log s(b3 [r(l|Il) - r(l|0)])     R_l = -log s(b4 [r(l|0) - r(l|Iw)])
// VCO, the ablation without symmetry, is b3 = b4 = 0.
double svco_loss(const SvcoParams *p, int n, const double *pol, const double *ref, double *dpol, SvcoMetrics *m);

// mDPO (methods.md §4): rows (m, y_w), (m, y_l), (m', y_w) with m' the corrupted image
enum { MDPO_W, MDPO_L, MDPO_W_CORRUPT, MDPO_ROWS };
typedef struct { double beta, delta; } MdpoParams;
typedef struct { double loss, term[3], reward_chosen, reward_rejected, reward_corrupt, accuracy[3]; } MdpoMetrics;
//   L = -log s(b[r(w|m) - r(l|m)]) - log s(b[r(w|m) - r(w|m')]) - log s(b r(w|m) - delta)
double mdpo_loss(const MdpoParams *p, int n, const double *pol, const double *ref, double *dpol, MdpoMetrics *m);
