// Choosing the next token from a row of logits, on the host: greedy, or sampling with temperature, top-k
// and top-p (nucleus), with a counter-based random generator so that every sequence has its own stream.
//
// Sampling follows transformers' order of operations (the logits warpers of `generate`):
//   1. temperature: x_i = logit_i / T
//   2. top-k: keep the tokens with x_i >= the k-th largest x (ties at the boundary are all kept, as HF's
//      `scores < topk(scores, k)[..., -1]` test keeps them)
//   3. top-p: p = softmax of the kept x; keep the smallest set of most probable tokens whose probability
//      sums to >= top_p (at least one token). HF sorts ascending and drops tokens whose ascending cumulative
//      sum is <= 1 - top_p, which is the same set; among equal probabilities the lower id ranks first here
//      (torch.sort leaves that order unspecified).
//   4. draw: u ~ U[0,1) picks the first token, in increasing id order, at which the cumulative probability
//      of the kept tokens exceeds u.
// Defaults differ from HF's generation_config: top_k 0 and top_p 1 mean "off" (HF samples with top_k 50 by
// default).
//
// Greedy: temperature 0 (or top_k 1) takes the argmax, the lowest id on ties, with no random draw. As the
// temperature goes to 0 from above, sampling concentrates on the largest logit and gives the same token
// whenever the largest logit is unique (exp((x_i - max) / T) underflows to 0 for every other token); with
// several equal maxima it samples among them, where greedy picks the lowest id.
#pragma once
#include <stdint.h>

typedef struct {
    float temperature;  // 0: greedy
    int top_k;          // 0: off
    float top_p;        // 1: off; in (0, 1]
} SamplerConfig;

// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the
// counter-based generator of cuRAND and PyTorch's CUDA generator: ten rounds of a keyed bijection that maps
// a 128-bit counter and a 64-bit key to four independent 32-bit words. No state: any draw can be computed
// directly from its coordinates.
void philox4x32_10(const uint32_t key[2], const uint32_t counter[4], uint32_t out[4]);

// The uniform in [0, 1) (53 random bits) of draw `step` of stream (record, sample) under `seed`: the key is
// the seed, the counter (step, sample, record low word, record high word). A sequence's draws depend on its
// record and sample number only, never on which other sequences share its batch.
double sample_uniform(uint64_t seed, uint64_t record, uint32_t sample, uint32_t step);

// Scratch memory for sample_token over a vocabulary of V (one per thread).
typedef struct {
    int V;
    float *x;        // (V) scaled logits
    float *sel;      // (V) copy for the top-k selection
    int *ids;        // (V) kept token ids
    double *e;       // (V) exp(x - max) of the kept tokens
    int *heap;       // (V) positions into ids, for the nucleus
} SampleWork;

void sample_work_init(SampleWork *w, int V);
void sample_work_free(SampleWork *w);

// The argmax of logits (V), lowest id on ties; -1 if no logit is a number (all NaN).
int sample_argmax(const float *logits, int V);
// The next token under the sampler for the uniform u (ignored when greedy); -1 when the logits have no
// finite maximum (a broken model), which callers report.
int sample_token(const float *logits, int V, const SamplerConfig *c, double u, SampleWork *w);
// 1 when c selects greedy decoding (no random draw).
int sample_is_greedy(const SamplerConfig *c);
