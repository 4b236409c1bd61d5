// LLaMA decoder (HF LlamaForCausalLM): token embedding, pre-norm layers
//   h = x + o_proj(attn(rope(q), rope(k), v)),  y = h + down(silu(gate(n)) * up(n)),  n = RMSNorm(h)
// with grouped-query heads, a final RMSNorm and the lm_head. q, k, v rows are registered back to back
// (one (q + 2 kv, D) matrix), and so are gate and up (one (2F, D) matrix): one matmul each, and
// attention / SwiGLU read their inputs at a stride, with no copies.
// The head runs only on the rows whose outputs are wanted (label positions, or the last token when
// generating): with 576 image tokens per row most positions need no logits at all.
#pragma once
#include "arena.h"
#include "config.h"
#include "lora.h"
#include "params.h"

typedef struct { void *ln1_w, *qkv_w, *qkv_b, *o_w, *o_b, *ln2_w, *gu_w, *gu_b, *down_w, *down_b; } LlamaLayerW;
typedef struct { void *embed, *norm_w, *lm_head; } LlamaW;

typedef struct Llama {
    const Backend *be;
    LlamaConfig cfg;
    int qdim, kvdim, qkvdim;  // heads*head_dim, kv_heads*head_dim, qdim + 2 kvdim
    LlamaLayerW *lw, *lg;     // (layers) weights and gradients
    LlamaW w, g;
    Lora *lora;               // adapters on the linear layers, or NULL (model/lora.h)
} Llama;

void llama_init(Llama *m, const Backend *be, const LlamaConfig *cfg);
void llama_free(Llama *m);
// prefix: "model.language_model" (LLaVA) or "model" (LlamaForCausalLM); head: "lm_head.weight"
void llama_bind(Llama *m, ParamStore *ps, void *base, int grads, const char *prefix, const char *head);

// Generation prefill: with a capture attached to the activations (LlamaActs.kv), llama_forward also copies
// every layer's rotated keys and its values into a KV cache, token n of the batch to cache row dst[n]
// (negative: not kept, e.g. padding). Rows of the cache are (NKV*HD) wide; model/generate.h lays them out.
typedef struct {
    void **k, **v;    // (layers) backend memory, each (cache rows, NKV*HD)
    const int *dst;   // (N) backend memory
} LlamaKVCapture;

// Which activations the forward pass keeps for the backward pass.
//   NONE       inference: every layer reuses one set of buffers
//   ALL        every layer's activations (the fastest backward)
//   RESIDUALS  each layer's input only; the backward pass runs a layer's forward again into one shared
//              set of buffers before its backward (activation recomputation: about 1/16 of the decoder's
//              activation memory at the llava shapes for one more forward pass of the layers)
typedef enum { LLAMA_KEEP_NONE, LLAMA_KEEP_ALL, LLAMA_KEEP_RESIDUALS } LlamaKeep;

// Tokens and the grid. The layers run on N token rows, (N, D); the attention needs them as B rows of T
// positions, the grid (B*T cells, right padding included). When N = B*T the tokens are the grid itself. When
// N < B*T (llava_forward drops the padding: a batch of short questions and long captions is a third
// padding) every op but the attention runs on the N tokens only, and the attention reads and writes the grid:
// the rotated q, k, v copied into qkv[l], its output gathered back from att[l]. tok_pos then maps token n to
// its cell b*T + t, cell_tok each cell to its token or, for padding, to the spare row cap_tokens of qkv_tok and
// datt_tok, which stays zero (so one gather fills the grid, padding zeroed); sel_grid names the cells of the
// rows the pruned last layer keeps (idx_out's, or last_sel's). Row-wise ops and the batch-invariant matmuls
// give each token the same bits either way, and the attention sees the same grid, so dropping the padding
// changes no result.
typedef struct {
    int cap_tokens, cap_rows, cap_out, backward;
    LlamaKeep keep;
    const LlamaKVCapture *kv;  // NULL (the default): no capture; dst indexes the N tokens
    void **res;   // (layers+1) (N, D)
    void **ln1, **ln1_rstd, **qkv, **att, **lse, **mid, **ln2, **ln2_rstd, **gu, **h;  // qkv, att, lse: the grid
    void *proj;   // (N, D) scratch
    void *qkv_tok, *att_tok, *datt_tok;   // (N + 1, qkv), (N, H*HD), (N + 1, H*HD) token rows of the grid's qkv, att, datt
    int *tok_pos, *cell_tok;              // (N) grid cell of each token, (B*T) token of each cell (used when N < B*T)
    int *sel_grid;                        // (max(M, B)) grid cells of the last layer's kept rows (N < B*T)
    int *pos, *kv_len, *segment;          // (N) per token, (B) per row, (B*T) grid inputs, backend memory
    int *idx_out, *targets;               // (M) token rows that get logits, and their target ids (-1: none)
    void *hsel, *fin, *fin_rstd, *logits; // (M, D), (M, D), (M), (M, V)
    void *logp, *lse_v, *dlogp;           // (M) acc
    // The last layer after its attention on the M head rows only (see llama_forward): those rows of its
    // input and of the attention output, and the gradient of the latter. last_rows: the rows the last
    // layer's output res[layers] holds (N, or M when it ran on the head rows), set by llama_forward.
    // With no head (M = 0, generation's prefill) the caller may name the rows it will read from
    // res[layers] in last_sel (n_last_sel <= cap_rows token rows, device memory; NULL: all N), and, when
    // N < B*T, their grid cells in sel_grid.
    void *xsel, *attsel, *dattsel;        // (max(M, B), D), (max(M, B), H*HD), (M, H*HD)
    const int *last_sel;
    int n_last_sel, last_rows, n_tokens;  // n_tokens: the N of the last forward
    void *dres, *dln, *dqkv, *datt, *dgu, *dh, *dhsel, *dfin;
    LoraActs lora;            // laid out when the model has adapters
} LlamaActs;

// cap_tokens: grid cells (B*T), which also bounds the tokens
void llama_acts_layout(LlamaActs *a, const Llama *m, int cap_rows, int cap_tokens, int cap_out, LlamaKeep keep, int backward,
                       Arena *ar);
void llama_acts_free(LlamaActs *a);
// Runs the layers on the N tokens a->res[0] (N, D) with a->pos, a->kv_len (and a->segment if use_segments;
// a->tok_pos and a->sel_grid when N < B*T), then the head on the M token rows a->idx_out with targets
// a->targets: a->logits (M, V) and a->logp (M).
void llama_forward(const Llama *m, LlamaActs *a, int B, int T, int N, int M, int use_segments);
// a->dlogp (M) holds dL/dlogp; on return a->dres holds dL/d res[0] (N, D). Weight gradients accumulate.
// Destroys a->logits (the classifier gradient is written in place). With LLAMA_KEEP_RESIDUALS it runs each
// layer's forward again first (same kernels, same inputs: the same activations, so the same gradients).
void llama_backward(const Llama *m, LlamaActs *a, int B, int T, int N, int M, int use_segments);
