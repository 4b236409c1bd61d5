// vlm bench: end-to-end training steps at named shapes with random weights, timed the way
// bench/torch_ref.py times the PyTorch side (warm-up, then the median step).
//
// The steps run the training path of train/ (row groups, shared-prefix packing) on synthetic examples:
// a prompt of [BOS, 576 image tokens, 31 text tokens] and 32-token responses.
//   sft   B rows: forward, backward, AdamW
//   dpo   B pairs: chosen and rejected packed into one row per pair, cached reference, DPO loss
//   svco  B pairs: 2 images encoded once per pair, 6 logical rows packed into 3 physical rows (two with
//         an image, one image-free), cached reference log-probs, S-VCO loss, backward, AdamW
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
#include "../train/optim.h"
#include "../train/step.h"
#include "../train/trainer.h"
#include "../util/args.h"
#include "../util/common.h"
#include "../util/threads.h"
#include "commands.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    printf("usage: vlm bench [--shape llava-1.4b|llava-7b|llava-tiny|llava-demo] [--workload sft|dpo|svco|decode] [--batch N] [--steps N]\n"
           "                 [--warmup N] [--device auto|cpu|cuda] [--peak-tflops X] [--no-pack] [--attention flash|cudnn]\n"
           "                 [--new-tokens N] [--recompute] [--prompt-len N] [--response-len N] [--decode-text N]\n"
           "                 [--train-vision 0|1] [--caption-len N]\n\n"
           "Times training steps with random weights. --batch is rows for sft, pairs for dpo and svco (default 8);\n"
           "decode times greedy generation of --new-tokens tokens (default 128) for --batch prompts.\n"
           "MFU is reported against --peak-tflops (default 760: the bf16 GEMM ceiling measured on the H100).\n"
           "--recompute runs each decoder layer's forward again in the backward pass instead of keeping its\n"
           "activations (less memory, one more forward of the layers).\n"
           "--shape llava-demo is the miniature study's model (bench/torch_cpu_ref.py times the same steps): its\n"
           "defaults are 12 prompt + 4 response tokens a row after 9 image tokens, the vision tower frozen (as in every\n"
           "stage of the demo; --train-vision 1 trains it), decode prompts of 1 + 9 image + 12 text tokens\n"
           "(--decode-text) and 4 new tokens.\n"
           "--caption-len N gives every seventh example an N-token response (the demo's SFT data: one caption\n"
           "among each scene's questions), so a batch's rows differ in length; vlm.c computes each row's tokens,\n"
           "bench/torch_cpu_ref.py --caption-len N pads them to the longest, as transformers' collators do.\n");
}

// The pixels of prompt `prompt`, made once before the timed runs (transformers' side gets its tensor
// ready-made too): the callback only copies them.
typedef struct { size_t n; float *pixels; } BenchPixels;
static void bench_pixels_make(BenchPixels *bp, const LlavaConfig *c, int batch) {
    bp->n = (size_t)3 * c->vision.image_size * c->vision.image_size;
    bp->pixels = xmalloc(sizeof(float) * bp->n * batch);
    for (int prompt = 0; prompt < batch; prompt++) {
        unsigned st = 17u + (unsigned)prompt;
        for (size_t i = 0; i < bp->n; i++) {
            st = st * 1664525u + 1013904223u;
            bp->pixels[prompt * bp->n + i] = ((int)(st >> 9) % 2000 - 1000) / 500.0f;
        }
    }
}
static void bench_pixels(void *ctx, int prompt, int k, float *out) {
    const BenchPixels *bp = ctx;
    memcpy(out, bp->pixels + prompt * bp->n, sizeof(float) * bp->n);
}
static void bench_emit(void *ctx, const GenOutput *o) { (void)ctx; (void)o; }

// Greedy generation for `batch` prompts at once, timed as prefill and decode (the driver's own clocks:
// each part ends by reading the logits back, so the device has finished it).
static int bench_decode(const LlavaConfig *cfg, const char *shape, const Backend *be, int batch, int new_tokens,
                        int text_tokens, int steps, int warmup) {
    if (batch < 1 || new_tokens < 2 || steps < 1 || warmup < 0) fatal("vlm bench decode: --batch >= 1, --new-tokens >= 2, --steps >= 1");
    Llava m;
    llava_init(&m, be, cfg, (LlavaTrainable){0, 0, 0});
    params_init_random(&m.ps_vision, 1, 0.02f);
    params_init_random(&m.ps_projector, 2, 0.02f);
    params_init_random(&m.ps_text, 3, 0.02f);
    const int P = cfg->image_tokens, T = 1 + P + text_tokens, hi = cfg->text.vocab - 5 < 31990 ? cfg->text.vocab - 5 : 31990;
    int *ids = xmalloc(sizeof(int) * batch * T);
    GenPrompt *prompts = xmalloc(sizeof(GenPrompt) * batch);
    unsigned st = 7;
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < T; t++) {
            st = st * 1664525u + 1013904223u;
            ids[b * T + t] = t == 0 ? 1 : t <= P ? cfg->image_token_id : 3 + (int)(st >> 8) % hi;
        }
        prompts[b] = (GenPrompt){ids + b * T, T, 1};
    }
    Generator g;
    gen_init(&g, &m, batch, T, new_tokens, batch, 1);
    GenConfig gc = {{0, 0, 1}, new_tokens, 1, 0, -1, NULL, 0};
    BenchPixels bp;
    bench_pixels_make(&bp, cfg, batch);
    GenCallbacks cb = {bench_pixels, NULL, bench_emit, &bp, NULL};
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
    if (!strncmp(be->name, "cuda", 4)) mem_gib = cuda_memory_used() / 1073741824.0;
#endif
    printf("{\"bench\": \"decode\", \"impl\": \"vlm.c\", \"backend\": \"%s\", \"shape\": \"%s\", \"batch\": %d, "
           "\"prompt_tokens\": %d, \"new_tokens\": %d, \"prefill_ms\": %.2f, \"decode_ms_per_step\": %.3f, "
           "\"decode_tokens_per_s\": %.1f, \"tokens_per_s\": %.1f, \"weight_read_gb_per_s\": %.1f, \"gpu_mem_gib\": %.2f}\n",
           be->name, shape, batch, T, new_tokens, prefill_s * 1e3, step_s * 1e3, batch / step_s,
           (double)batch * new_tokens / (prefill_s + decode_s), weight_bytes / step_s / 1e9, mem_gib);
    free(pre); free(dec); free(ids); free(prompts); free(bp.pixels);
    gen_free(&g);
    llava_free(&m);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    threads_adapt_off();  // a benchmark times the thread count it is given
    Args a = args_init("vlm bench", argc, argv);
    if (args_help(&a)) { usage(); return 0; }
    const char *shape = arg_str(&a, "--shape", "llava-1.4b"), *workload = arg_str(&a, "--workload", "sft");
    const char *device = arg_str(&a, "--device", "auto");
    backend_set_attention(arg_str(&a, "--attention", NULL));
    int batch = (int)arg_int(&a, "--batch", 8), steps = (int)arg_int(&a, "--steps", 10), warmup = (int)arg_int(&a, "--warmup", 3);
    double peak = arg_float(&a, "--peak-tflops", 760);
    int svco = !strcmp(workload, "svco"), dpo = !strcmp(workload, "dpo"), pack = !arg_flag(&a, "--no-pack");
    int recompute = arg_flag(&a, "--recompute");
    // the miniature study's shape has its own text lengths (issue 12): ~16 text tokens and 9 image tokens a
    // training row, 22-token prompts and a few new tokens when sampling (yes/no answers), the tower frozen
    const int demo = !strcmp(shape, "llava-demo");
    int new_tokens = (int)arg_int(&a, "--new-tokens", demo ? 4 : 128);
    int prompt_len = (int)arg_int(&a, "--prompt-len", demo ? 12 : 32), resp_len = (int)arg_int(&a, "--response-len", demo ? 4 : 32);
    int decode_text = (int)arg_int(&a, "--decode-text", demo ? 12 : 31);
    int caption_len = (int)arg_int(&a, "--caption-len", 0);
    int train_vision = (int)arg_int(&a, "--train-vision", 0);
    args_finish(&a);
    if (steps < 1 || warmup < 0 || batch < 1) fatal("vlm bench: --steps and --batch must be at least 1, --warmup at least 0");
    if (caption_len < 0) fatal("vlm bench: --caption-len must be 0 (off) or positive");
    if (!strcmp(workload, "decode")) {
        LlavaConfig dcfg;
        if (llava_config_preset(&dcfg, shape)) fatal("vlm bench: --shape '%s': expected llava-1.4b, llava-7b, llava-tiny or llava-demo", shape);
        return bench_decode(&dcfg, shape, backend_select(device), batch, new_tokens, decode_text, steps, warmup);
    }
    if (!svco && !dpo && strcmp(workload, "sft")) fatal("vlm bench: --workload '%s': expected sft, dpo, svco or decode", workload);
    LlavaConfig cfg;
    if (llava_config_preset(&cfg, shape)) fatal("vlm bench: --shape '%s': expected llava-1.4b, llava-7b, llava-tiny or llava-demo", shape);
    const Backend *be = backend_select(device);
    Llava m;
    llava_init(&m, be, &cfg, (LlavaTrainable){train_vision, 1, 1});  // the paper setting: the vision tower is frozen
    params_init_random(&m.ps_vision, 1, 0.02f);
    params_init_random(&m.ps_projector, 2, 0.02f);
    params_init_random(&m.ps_text, 3, 0.02f);
    ParamStore *tr[3] = {&m.ps_projector, &m.ps_text, &m.ps_vision};
    OptimConfig oc = {1e-6, 0.9, 0.95, 1e-8, 0.02, 0, SCHED_CONSTANT, 0, steps + warmup};
    Optimizer opt;
    optim_init(&opt, &oc, tr, train_vision ? 3 : 2);

    // examples through the training path: row groups, shared-prefix packing, explicit outputs
    TrainData d;
    const Recipe *recipe = recipe_find(workload);  // the workloads are recipes: their rows and their loss
    TrainConfig preset;                            // the loss parameters of the recipe's paper preset
    train_config_preset(&preset, recipe);
    // 32 prompt + 32 response tokens (+ image) by default; with --caption-len every seventh example's response
    train_data_synthetic(&d, recipe, batch, &cfg, prompt_len, resp_len, caption_len, 7);
    TrainBatch tb;
    train_batch_init(&tb, &d, batch, pack);
    int *idx = xmalloc(sizeof(int) * batch);
    for (int i = 0; i < batch; i++) idx[i] = i;
    train_batch_build(&tb, &d, idx, batch, NULL);
    BatchActs ba;
    batch_acts_init(&ba, &m, &tb, recompute ? ACTS_BACKWARD_RECOMPUTE : ACTS_BACKWARD);
    memory_report(stderr, &m, &opt, &ba, NULL, NULL);
    const int B = tb.B;
    double *ref = xmalloc(sizeof(double) * B), *drow = xmalloc(sizeof(double) * B), *times = xmalloc(sizeof(double) * (steps + warmup));
    double metrics[RECIPE_MAX_METRICS];
    double loss = 0, first_loss = 0;
    int n_tokens = 0;
    for (int g = 0; g < 2; g++) for (int i = 0; i < tb.g[g].B; i++) n_tokens += tb.g[g].lengths[i];
    for (int it = 0; it < steps + warmup; it++) {
        be->synchronize();
        double t0 = now_seconds();
        batch_forward(&m, &ba, &tb);
        if (it == 0) for (int b = 0; b < B; b++) ref[b] = ba.row_logp[b] - 0.01 * (b % 3);  // a cached reference
        loss = recipe->loss(&preset.loss, B / recipe->n_rows, ba.row_logp, recipe->uses_reference ? ref : NULL, ba.row_count,
                            drow, metrics);
        if (it == 0) first_loss = loss;
        if (!isfinite(loss)) fatal("bench: step %d: the loss is %g", it + 1, loss);
        batch_backward(&m, &ba, &tb, drow, 1.0);
        optim_step(&opt, NULL);
        optim_zero_grad(&opt);
        be->synchronize();
        times[it] = now_seconds() - t0;
        fprintf(stderr, "\rbench %s %s: step %d/%d %.1f ms", shape, workload, it + 1, steps + warmup, times[it] * 1e3);
    }
    fprintf(stderr, "\n");
    qsort(times + warmup, steps, sizeof(double), cmp_double);
    double ms = times[warmup + steps / 2] * 1e3;
    double flops = batch_step_flops(&m, &tb);
    double mem_gib = 0;
    const char *attn = "cpu";
#ifdef VLM_CUDA
    if (!strncmp(be->name, "cuda", 4)) { mem_gib = cuda_memory_used() / 1073741824.0; attn = cuda_attention_selected(); }
#endif
    printf("{\"bench\": \"%s\", \"impl\": \"vlm.c\", \"backend\": \"%s\", \"shape\": \"%s\", \"%s\": %d, \"ms_per_step\": %.3f, "
           "\"%s\": %.3f, \"tokens_per_s\": %.1f, \"model_tflops\": %.2f, \"mfu\": %.4f, \"gpu_mem_gib\": %.2f, "
           "\"steps\": %d, \"first_loss\": %.6f, \"last_loss\": %.6f, \"attention\": \"%s\", \"packed\": %d, \"recompute\": %d}\n",
           workload, be->name, shape, svco || dpo ? "pairs" : "batch", batch, ms, svco || dpo ? "pairs_per_s" : "samples_per_s",
           batch / ms * 1e3, n_tokens / ms * 1e3, flops / ms / 1e9, flops / ms / 1e9 / peak, mem_gib, steps + warmup, first_loss,
           loss, attn, pack, recompute);
    free(idx); free(ref); free(drow); free(times);
    batch_acts_free(&ba);
    train_batch_free(&tb);
    train_data_free(&d);
    optim_free(&opt);
    llava_free(&m);
    return 0;
}
