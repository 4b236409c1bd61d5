// Losses computed on the host from small per-row quantities (embeddings, summed log-probs), each with its
// gradient. The model side (forward/backward of the towers) stays on the backend.
#pragma once

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

typedef struct {
    double beta;             // 0.1 in SeVa, CLIP-DPO (methods.md §2.1, §3.1)
    double label_smoothing;  // cDPO: the preference label is flipped with this probability (0 = plain DPO)
    int ipo;                 // IPO: (h - 1/(2 beta))^2 instead of the sigmoid loss
    int reference_free;      // treat the reference log-probs as 0
} DpoParams;

typedef struct {  // batch means
    double loss, reward_chosen, reward_rejected, reward_accuracy, reward_margin, logp_chosen, logp_rejected;
} DpoMetrics;

// DPO (Rafailov et al.): h = [pc - rc] - [pr - rr];  L = -log sigmoid(beta h) (with label smoothing:
// -(1-e) log sigmoid(beta h) - e log sigmoid(-beta h)); rewards are beta (p - r) as TRL logs them.
// pc, pr, rc, rr (n) policy/reference log-probs of chosen/rejected; dpc, dpr (n) gradients.
double dpo_loss(const DpoParams *p, int n, const double *pc, const double *pr, const double *rc, const double *rr,
                double *dpc, double *dpr, DpoMetrics *m);

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
