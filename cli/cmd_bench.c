// vlm bench: end-to-end training steps at named shapes with random weights, timed the way
// bench/torch_ref.py times the PyTorch side (warm-up, then the median step).
//
//   sft   B rows of [BOS, 576 image tokens, 63 text tokens], loss on the last 32: forward, backward, AdamW
//   svco  P pairs, our formation: 2 images encoded once per pair, 6 rows (4 with the image, 2 image-free),
//         reference log-probs from the cache (a pre-pass), S-VCO loss, backward, AdamW
//   decode  greedy generation with the KV cache (model/generate.h): B prompts of [BOS, image tokens, 31 text
//         tokens] (bench/torch_ref.py decode's), prefilled together, then --new-tokens tokens each, EOS ignored
// Output: one JSON line per workload (ms per step, samples or pairs per second, tokens/s, MFU, peak memory).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cuda/cuda_backend.h"
#include "../model/generate.h"
#include "../model/llava.h"
#include "../train/losses.h"
#include "../train/optim.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Model FLOPs of the step (research/llava.md §9): the frozen tower forward, 3x the trained parts
static double step_flops(const LlavaConfig *c, int n_images, const int *lengths, int B, int n_label) {
    const double Dv = c->vision.hidden, Fv = c->vision.intermediate, Nv = c->vision.image_size / c->vision.patch_size;
    const double Pv = Nv * Nv, Tv = Pv + 1, Lv = c->vision_layers_run;
    double vis = 2 * Pv * 3 * c->vision.patch_size * c->vision.patch_size * Dv + Lv * (8 * Tv * Dv * Dv + 4 * Tv * Dv * Fv + 4 * Tv * Tv * Dv);
    const double D = c->text.hidden, F = c->text.intermediate, L = c->text.layers, Dkv = c->text.kv_heads * c->text.head_dim;
    double proj = 2 * c->image_tokens * (Dv * D + D * D), dec = 0;
    for (int b = 0; b < B; b++) {
        double T = lengths[b];
        dec += L * (2 * T * D * (2 * D + 2 * Dkv) + 6 * T * D * F + 2 * T * T * D);  // causal: half of 4 T^2 D
    }
    dec += 2.0 * n_label * D * c->text.vocab;  // the head runs on the labelled positions only
    return n_images * vis + 3 * (n_images * proj + dec);
}

static void usage(void) {
    printf("usage: vlm bench [--shape llava-1.4b|llava-7b|llava-tiny] [--workload sft|svco|decode] [--batch N] [--steps N]\n"
           "                 [--warmup N] [--device auto|cpu|cuda] [--peak-tflops X] [--new-tokens N]\n\n"
           "Times training steps with random weights. --batch is rows for sft, pairs for svco (default 8).\n"
           "MFU is reported against --peak-tflops (default 760: the bf16 GEMM ceiling measured on the H100).\n"
           "decode: --batch sequences generate --new-tokens tokens each (default 128) after the prompt; --steps\n"
           "times that many whole generations (the median is reported).\n");
}

static void bench_pixels(void *ctx, int prompt, float *out) {
    const LlavaConfig *c = ctx;
    const size_t n = (size_t)3 * c->vision.image_size * c->vision.image_size;
    unsigned st = 17u + (unsigned)prompt;
    for (size_t i = 0; i < n; i++) { st = st * 1664525u + 1013904223u; out[i] = ((int)(st >> 9) % 2000 - 1000) / 500.0f; }
}
static void bench_emit(void *ctx, const GenOutput *o) { (void)ctx; (void)o; }

// Random weights in parallel: params_init_random draws one Box-Muller pair at a time from one stream, which
// takes minutes for LLaVA-7B's 7 billion parameters. Timing needs finite, varied values only: uniform with the
// same standard deviation, each element from a hash of (seed, tensor, element); norm weights 1, biases 0.
static void bench_init_weights(ParamStore *ps, unsigned long long seed, float std) {
    size_t max_numel = 1;
    for (int i = 0; i < ps->n; i++) if (ps->info[i].numel > max_numel) max_numel = ps->info[i].numel;
    float *tmp = xmalloc(sizeof(float) * max_numel);
    const float half_width = std * 1.7320508f;  // uniform on [-a, a] has standard deviation a / sqrt(3)
    for (int i = 0; i < ps->n; i++) {
        const ParamInfo *p = &ps->info[i];
        const int drawn = p->ndim >= 2 || strstr(p->name, "class_embedding");
        const float fill = strstr(p->name, "norm") || strstr(p->name, "layrnorm") ? 1.0f : 0.0f;
        #pragma omp parallel for schedule(static)
        for (size_t k = 0; k < p->numel; k++) {
            uint64_t z = seed * 0x9E3779B97F4A7C15ull + ((uint64_t)i << 40) + k;  // splitmix64's finalizer
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            tmp[k] = drawn ? half_width * (float)((double)(z >> 11) / 4503599627370496.0 - 1.0) : fill;
        }
        ps->be->upload_act(act_at(ps->be, ps->data, p->offset), tmp, p->numel);
    }
    free(tmp);
}

// Greedy generation for `batch` prompts at once, timed as prefill and decode (the driver's own clocks:
// each part ends by reading the logits back, so the device has finished it).
static int bench_decode(const LlavaConfig *cfg, const char *shape, const Backend *be, int batch, int new_tokens,
                        int steps, int warmup) {
    if (batch < 1 || new_tokens < 2 || steps < 1 || warmup < 0) fatal("vlm bench decode: --batch >= 1, --new-tokens >= 2, --steps >= 1");
    Llava m;
    llava_init(&m, be, cfg, (LlavaTrainable){0, 0, 0});
    bench_init_weights(&m.ps_vision, 1, 0.02f);
    bench_init_weights(&m.ps_projector, 2, 0.02f);
    bench_init_weights(&m.ps_text, 3, 0.02f);
    const int P = cfg->image_tokens, T = 1 + P + 31;
    int *ids = xmalloc(sizeof(int) * batch * T);
    GenPrompt *prompts = xmalloc(sizeof(GenPrompt) * batch);
    unsigned st = 7;
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < T; t++) {
            st = st * 1664525u + 1013904223u;
            ids[b * T + t] = t == 0 ? 1 : t <= P ? cfg->image_token_id : 3 + (int)(st >> 8) % 31990;
        }
        prompts[b] = (GenPrompt){ids + b * T, T, 1};
    }
    Generator g;
    gen_init(&g, &m, batch, T, new_tokens, batch);
    GenConfig gc = {{0, 0, 1}, new_tokens, 1, 0, -1, NULL, 0};
    GenCallbacks cb = {bench_pixels, NULL, bench_emit, (void *)cfg};
    double *pre = xmalloc(sizeof(double) * (steps + warmup)), *dec = xmalloc(sizeof(double) * (steps + warmup));
    long decode_steps = 0;
    for (int it = 0; it < steps + warmup; it++) {
        GenStats gs;
        gen_run(&g, &gc, prompts, batch, &cb, &gs);
        pre[it] = gs.prefill_seconds;
        dec[it] = gs.decode_seconds;
        decode_steps = gs.steps;
        fprintf(stderr, "\rbench %s decode: run %d/%d, prefill %.1f ms, %.2f ms per decode step", shape, it + 1, steps + warmup,
                pre[it] * 1e3, dec[it] * 1e3 / (gs.steps ? gs.steps : 1));
    }
    fprintf(stderr, "\n");
    qsort(pre + warmup, steps, sizeof(double), cmp_double);
    qsort(dec + warmup, steps, sizeof(double), cmp_double);
    const double prefill_s = pre[warmup + steps / 2], decode_s = dec[warmup + steps / 2];
    const double step_s = decode_s / (decode_steps ? decode_steps : 1);
    // bytes a decode step must read at least: the decoder's weights but the embedding table, and the head
    const size_t embed = (size_t)cfg->text.vocab * cfg->text.hidden;
    const double weight_bytes = (double)(m.ps_text.numel - (cfg->text.tie_embeddings ? 0 : embed)) * be->act_bytes;
    double mem_gib = 0;
#ifdef VLM_CUDA
    if (!strcmp(be->name, "cuda")) mem_gib = cuda_memory_used() / 1073741824.0;
#endif
    printf("{\"bench\": \"decode\", \"impl\": \"vlm.c\", \"backend\": \"%s\", \"shape\": \"%s\", \"batch\": %d, "
           "\"prompt_tokens\": %d, \"new_tokens\": %d, \"prefill_ms\": %.2f, \"decode_ms_per_step\": %.3f, "
           "\"decode_tokens_per_s\": %.1f, \"tokens_per_s\": %.1f, \"weight_read_gb_per_s\": %.1f, \"gpu_mem_gib\": %.2f}\n",
           be->name, shape, batch, T, new_tokens, prefill_s * 1e3, step_s * 1e3, batch / step_s,
           (double)batch * new_tokens / (prefill_s + decode_s), weight_bytes / step_s / 1e9, mem_gib);
    free(pre); free(dec); free(ids); free(prompts);
    gen_free(&g);
    llava_free(&m);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    Args a = args_init("vlm bench", argc, argv);
    if (args_help(&a)) { usage(); return 0; }
    const char *shape = arg_str(&a, "--shape", "llava-1.4b"), *workload = arg_str(&a, "--workload", "sft");
    const char *device = arg_str(&a, "--device", "auto");
    int batch = (int)arg_int(&a, "--batch", 8), steps = (int)arg_int(&a, "--steps", 10), warmup = (int)arg_int(&a, "--warmup", 3);
    double peak = arg_float(&a, "--peak-tflops", 760);
    int new_tokens = (int)arg_int(&a, "--new-tokens", 128);
    args_finish(&a);
    if (!strcmp(workload, "decode")) {
        LlavaConfig dcfg;
        if (llava_config_preset(&dcfg, shape)) fatal("vlm bench: --shape '%s': expected llava-1.4b, llava-7b or llava-tiny", shape);
        return bench_decode(&dcfg, shape, backend_select(device), batch, new_tokens, steps, warmup);
    }
    int svco = !strcmp(workload, "svco");
    if (!svco && strcmp(workload, "sft")) fatal("vlm bench: --workload '%s': expected sft, svco or decode", workload);
    LlavaConfig cfg;
    if (llava_config_preset(&cfg, shape)) fatal("vlm bench: --shape '%s': expected llava-1.4b, llava-7b or llava-tiny", shape);
    const Backend *be = backend_select(device);
    Llava m;
    llava_init(&m, be, &cfg, (LlavaTrainable){0, 1, 1});  // the paper setting: the vision tower is frozen
    params_init_random(&m.ps_vision, 1, 0.02f);
    params_init_random(&m.ps_projector, 2, 0.02f);
    params_init_random(&m.ps_text, 3, 0.02f);
    ParamStore *tr[2] = {&m.ps_projector, &m.ps_text};
    OptimConfig oc = {1e-6, 0.9, 0.95, 1e-8, 0.02, 0, SCHED_CONSTANT, 0, steps + warmup};
    Optimizer opt;
    optim_init(&opt, &oc, tr, 2);

    // rows: group 0 holds the rows with an image, group 1 the image-free rows (S-VCO), each padded to its
    // own length and run as its own forward pass, as the trainer does
    const int P = cfg.image_tokens, text = 64, img_len = P + text, S = cfg.vision.image_size;
    const int NI = svco ? 2 * batch : batch;
    int GB[2] = {svco ? 4 * batch : batch, svco ? 2 * batch : 0}, GT[2] = {img_len, text};
    int *ids[2], *labels[2], *lengths[2], *img_of[2];
    unsigned st = 7;
    for (int g = 0; g < 2; g++) {
        int n = GB[g] ? GB[g] : 1;
        ids[g] = xmalloc(sizeof(int) * n * GT[g]);
        labels[g] = xmalloc(sizeof(int) * n * GT[g]);
        lengths[g] = xmalloc(sizeof(int) * n);
        img_of[g] = xmalloc(sizeof(int) * n);
        for (int b = 0; b < GB[g]; b++) {
            // svco image rows per pair: (w|Iw) (w|Il) (l|Iw) (l|Il) -> images 2p, 2p+1, 2p, 2p+1
            img_of[g][b] = g ? -1 : svco ? 2 * (b / 4) + (b % 2) : b;
            lengths[g][b] = GT[g];
            for (int t = 0; t < GT[g]; t++) {
                st = st * 1664525u + 1013904223u;
                int id = t == 0 ? 1 : 3 + (int)(st >> 8) % 31990;
                if (!g && t >= 1 && t <= P) id = cfg.image_token_id;
                ids[g][b * GT[g] + t] = id;
                labels[g][b * GT[g] + t] = t >= GT[g] - text / 2 ? id : -100;
            }
        }
    }
    float *pixels = xmalloc(sizeof(float) * (size_t)NI * 3 * S * S);
    for (size_t i = 0; i < (size_t)NI * 3 * S * S; i++) { st = st * 1664525u + 1013904223u; pixels[i] = ((int)(st >> 9) % 2000 - 1000) / 500.0f; }
    LlavaActs acts[2];
    LlavaBatch lb[2];
    for (int g = 0; g < 2; g++) {
        if (!GB[g]) continue;
        llava_acts_init(&acts[g], &m, GB[g], GT[g], g ? 0 : NI, 1);
        lb[g] = (LlavaBatch){GB[g], GT[g], ids[g], labels[g], lengths[g], img_of[g], g ? 0 : NI, pixels, 0};
    }
    const int B = GB[0] + GB[1];
    double *pol = xmalloc(sizeof(double) * B), *ref = xmalloc(sizeof(double) * B), *drow = xmalloc(sizeof(double) * B);
    double *dlogp = xmalloc(sizeof(double) * GB[0] * GT[0]), *times = xmalloc(sizeof(double) * (steps + warmup));
    SvcoParams sp = {{0.1, 0.1, 0.1, 0.1}};
    int n_label = 0, n_tokens = 0, all_lengths[4096];
    for (int g = 0, k = 0; g < 2; g++) for (int b = 0; b < GB[g] && k < 4096; b++) { all_lengths[k++] = GT[g]; n_tokens += GT[g]; }
    // batch row (SVCO_* order per pair) of group row b
    #define SVCO_ROW(g, b) ((g) ? 6 * ((b) / 2) + ((b) % 2 ? SVCO_L_NONE : SVCO_W_NONE) \
                            : 6 * ((b) / 4) + (int[]){SVCO_W_IW, SVCO_W_IL, SVCO_L_IW, SVCO_L_IL}[(b) % 4])
    for (int it = 0; it < steps + warmup; it++) {
        be->synchronize();
        double t0 = now_seconds();
        for (int g = 0; g < 2; g++) if (GB[g]) llava_forward(&m, &acts[g], &lb[g]);
        for (int g = 0; g < 2; g++)
            for (int b = 0; b < GB[g]; b++) pol[svco ? SVCO_ROW(g, b) : b] = acts[g].row_logp[b];
        if (it == 0) for (int b = 0; b < B; b++) ref[b] = pol[b] - 0.01 * (b % 3);  // a cached reference
        if (svco) svco_loss(&sp, batch, pol, ref, drow, NULL);
        else {
            int ntok = 0;
            for (int b = 0; b < B; b++) ntok += acts[0].row_count[b];
            for (int b = 0; b < B; b++) drow[b] = -1.0 / ntok;
        }
        for (int g = 0; g < 2; g++) {
            if (!GB[g]) continue;
            for (int i = 0; i < acts[g].M; i++)
                dlogp[i] = acts[g].out_target[i] >= 0 ? drow[svco ? SVCO_ROW(g, acts[g].out_row[i]) : acts[g].out_row[i]] : 0;
            llava_backward(&m, &acts[g], dlogp);
        }
        optim_step(&opt, NULL);
        optim_zero_grad(&opt);
        be->synchronize();
        times[it] = now_seconds() - t0;
        if (it == 0) for (int g = 0; g < 2; g++) for (int b = 0; b < GB[g]; b++) n_label += acts[g].row_count[b];
        fprintf(stderr, "\rbench %s %s: step %d/%d %.1f ms", shape, workload, it + 1, steps + warmup, times[it] * 1e3);
    }
    fprintf(stderr, "\n");
    qsort(times + warmup, steps, sizeof(double), cmp_double);
    double ms = times[warmup + steps / 2] * 1e3;
    double flops = step_flops(&cfg, NI, all_lengths, B, n_label);
    double mem_gib = 0;
#ifdef VLM_CUDA
    if (!strcmp(be->name, "cuda")) mem_gib = cuda_memory_used() / 1073741824.0;
#endif
    printf("{\"bench\": \"%s\", \"impl\": \"vlm.c\", \"backend\": \"%s\", \"shape\": \"%s\", \"%s\": %d, \"ms_per_step\": %.3f, "
           "\"%s\": %.3f, \"tokens_per_s\": %.1f, \"model_tflops\": %.2f, \"mfu\": %.4f, \"gpu_mem_gib\": %.2f}\n",
           workload, be->name, shape, svco ? "pairs" : "batch", batch, ms, svco ? "pairs_per_s" : "samples_per_s",
           batch / ms * 1e3, n_tokens / ms * 1e3, flops / ms / 1e9, flops / ms / 1e9 / peak, mem_gib);
    for (int g = 0; g < 2; g++) {
        if (GB[g]) llava_acts_free(&acts[g]);
        free(ids[g]); free(labels[g]); free(lengths[g]); free(img_of[g]);
    }
    free(pixels); free(dlogp); free(pol); free(ref); free(drow); free(times);
    optim_free(&opt);
    llava_free(&m);
    return 0;
}
