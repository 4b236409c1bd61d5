// Autoregressive generation for LLaVA with a KV cache: prefill, incremental decode steps, and a driver that
// generates for many prompts at once.
//
// KV cache: per decoder layer, keys (after rotary embedding) and values of (slots, cap, NKV, HD), allocated
// once. A slot holds one sequence; its length (positions filled) lives on the host.
//
// Prefill runs the prompts through llava_forward, exactly as training and `vlm logprobs` do (image features
// written at the image-token positions, each row's images in order into its image-token runs, rows right-padded with per-row lengths as key masks), with a capture
// attached to the decoder (LlamaActs.kv) that copies each layer's keys and values into the rows' cache slots;
// then the head runs on each row's last prompt token.
//
// A decode step takes one new token for each of n sequences (any subset of the slots, in any order): token
// embedding, then per layer RMSNorm -> fused qkv matmul -> rotary embedding at the sequence's own position
// (its cache length) -> keys and values appended to its slot -> attention_decode over the slot's first
// len + 1 positions -> o_proj -> residual -> RMSNorm -> SwiGLU MLP -> residual; final norm and lm_head on the
// n rows (the rotation and the append are one op, rope_kv_append; each residual add is one op with the
// norm that reads it, add_rmsnorm_forward). Every op is row-wise or indexed by slot, so a sequence's numbers
// do not depend on which other sequences share the step (on the CPU backend they are bit-identical; cuBLAS
// may pick other kernels for other row counts, so on the GPU they agree to bf16 rounding).
//
// The driver (gen_run) keeps up to `slots` sequences in flight: it admits prompts in order while slots are
// free (a prompt takes n_samples slots; its prompt is prefilled once and the cache copied to the other
// samples' slots), steps every unfinished sequence together, and when a sequence finishes (EOS, a stop
// string, or max_new_tokens) it is reported at once and its slot goes to the next prompt. Finished
// sequences are not computed any more: the step runs on the unfinished ones only.
#pragma once
#include <stdint.h>

#include "llava.h"
#include "sample.h"

typedef struct {
    int layers, slots, cap, kvdim;  // kvdim = NKV * HD
    void **k, **v;                  // (layers) backend memory, each (slots, cap, NKV, HD)
    int *len;                       // (slots) host: positions filled in each slot
} KVCache;

typedef struct {
    const Llava *m;
    int slots, cap, cap_prompt, prefill_rows, rows, V;  // rows = max(slots, prefill_rows): step buffers
    int max_images;                 // images per prompt at most
    KVCache kv;
    LlavaActs pre;                  // prefill activations: prefill_rows x cap_prompt tokens
    LlamaKVCapture capture;
    Arena arena;                    // decode-step buffers
    void *x, *ln, *rstd, *qkv, *att, *mid, *gu, *h, *proj;  // (rows, D), (rows, D), (rows) acc, (rows, qkvdim),
                                                            // (rows, qdim), (rows, D), (rows, 2F), (rows, F), (rows, D)
    void *fin, *fin_rstd, *logits;  // (rows, D), (rows) acc, (rows, V)
    int *ids, *pos, *len, *slot, *dst, *sel;  // (rows) backend int inputs of a step
    int *dst_pre;                   // (prefill_rows * cap_prompt) cache row of each prefill token
    float *logits_host;             // (rows, V)
    int *h_pos, *h_len, *h_dst;     // (rows) host staging
    void **replays;                 // (slots) the backend's replay cache of a decode step of n rows, at n - 1
} Generator;

// slots: sequences in flight; cap_prompt: the longest prompt (image tokens expanded); cap_new: the most new
// tokens per sequence; prefill_rows: prompts per prefill pass; max_images: images per prompt at most (>= 1).
void gen_init(Generator *g, const Llava *m, int slots, int cap_prompt, int cap_new, int prefill_rows, int max_images);
void gen_free(Generator *g);

// Runs the rows of bt (ids with image tokens expanded, lengths, images: as for llava_forward, at most
// prefill_rows * max_images of them; no labels) and
// stores row b's keys and values in cache slot slot_of_row[b] (its length becomes lengths[b]). Returns the
// logits of each row's last prompt token, (B, V) host fp32, valid until the next call.
float *gen_prefill(Generator *g, const LlavaBatch *bt, const int *slot_of_row);
// Appends tokens[i] to the sequence in slot slots[i] (at position kv.len[slot], which then grows by one) and
// returns the logits after it, (n, V) host fp32, valid until the next call. The slots must be distinct.
float *gen_decode(Generator *g, int n, const int *slots, const int *tokens);
// Copies slot src's cache (and length) into slot dst: samples of one prompt share its prefill.
void gen_fork(Generator *g, int src, int dst);

// ---- the driver

typedef struct {
    SamplerConfig sampler;
    int max_new_tokens;       // >= 1
    int n_samples;            // sequences per prompt, each with its own random stream
    uint64_t seed;
    int eos_id;               // generation ends after this token; -1: never (benchmarks)
    const char *const *stop;  // stop strings, matched on the decoded text of the new tokens
    int n_stop;
} GenConfig;

typedef struct {
    const int *ids;           // (n) the prompt with image tokens expanded
    int n;
    int n_images;             // its images (0 to the generator's max_images), filling its image-token runs in order
} GenPrompt;

typedef enum { GEN_FINISH_EOS, GEN_FINISH_STOP, GEN_FINISH_LENGTH } GenFinish;
const char *gen_finish_name(GenFinish f);  // "eos", "stop", "length"

typedef struct {
    int prompt, sample;       // which prompt (index into the array given to gen_run) and which of its samples
    const int *ids;           // (n) the new tokens: the EOS included when finish is eos, the token that
    int n;                    //     completed a stop string included when finish is stop
    GenFinish finish;
    const char *text;         // the decoded new tokens (EOS excluded, cut before a stop string), or NULL
} GenOutput;

typedef struct {
    // pixels (3, S, S) fp32 of image k of prompt i, called for each image of a prompt when it is admitted
    void (*pixels)(void *ctx, int prompt, int k, float *out);
    // decoded text of ids, malloc'd; NULL: no text (and no stop strings)
    char *(*detok)(void *ctx, const int *ids, int n);
    // each sequence as it finishes (not in prompt order); the output's memory is valid during the call
    void (*emit)(void *ctx, const GenOutput *o);
    void *ctx;
    // optional: a key of image k of prompt i, equal (and >= 0) for images whose pixels are the same (one image
    // file, not augmented), or -1. A prefill then encodes each key's image once and rows whose whole image
    // lists have the same keys share the features (POPE asks ~4.5 questions of each scene, in a row); the
    // tower's ops are per image, so the outputs do not change. NULL: every prompt's images are its own.
    int (*image_key)(void *ctx, int prompt, int k);
} GenCallbacks;

typedef struct {
    long prompt_tokens, new_tokens, steps, prefills;
    double prefill_seconds, decode_seconds;
} GenStats;

// Generates for every prompt. The random draw of step t of sample j of prompt i is sample_uniform(seed, i,
// j, t), so outputs do not depend on the batching. Dies with a message on bad input (an over-long prompt).
void gen_run(Generator *g, const GenConfig *c, const GenPrompt *prompts, int n_prompts, const GenCallbacks *cb,
             GenStats *stats);
