// vlm: one binary, one command per job. `vlm <command> --help` describes each.
#include <stdio.h>
#include <string.h>

#include "../model/ops.h"
#include "commands.h"

// vlm device [auto|cpu|cuda]: the backend a command given --device would run on, as one word on stdout
// ("cpu" or "cuda"), with the no-GPU notice on stderr once; scripts ask once and pass the answer on.
static int cmd_device(int argc, char **argv) {
    if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: vlm device [auto|cpu|cuda]\n\nPrints the backend that --device NAME (default auto) selects: cpu or cuda.\n");
        return 0;
    }
    if (argc > 1) { fprintf(stderr, "vlm device: expected at most one device name\n"); return 2; }
    const Backend *be = backend_select(argc ? argv[0] : "auto");
    printf("%s\n", be == &backend_cpu ? "cpu" : be == &backend_cpu64 ? "cpu64" : "cuda");
    return 0;
}

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"train", cmd_train, "SFT, DPO, S-VCO, VCO, mDPO (LLaVA) and CLIP contrastive training"},
    {"plot", cmd_plot, "SVG charts of a training run's metrics"},
    {"bench", cmd_bench, "timed training steps or decoding at named shapes (random weights)"},
    {"export", cmd_export, "a LLaVA folder transformers loads, from a model or a checkpoint"},
    {"logprobs", cmd_logprobs, "per-record summed log-prob of the response under a model"},
    {"sample", cmd_sample, "generation with a KV cache: greedy, temperature, top-k, top-p"},
    {"tokenize", cmd_tokenize, "JSONL {\"text\":..} on stdin -> {\"ids\":[..]}"},
    {"preprocess", cmd_preprocess, "the CLIP image pipeline to a float32 [3,N,N] .npy"},
    {"data", cmd_data, "dataset tools: synth (the synthetic world of the miniature study), pack (dataset + images -> binary shard), bench"},
    {"eval", cmd_eval, "rule-based benchmark scorers: pope, chair, mmvp"},
    {"score", cmd_score, "CLIP similarity: image-text CLIPScore or image-image cosine per record"},
    {"device", cmd_device, "the backend --device auto selects here: cpu or cuda"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: vlm <command> [flags]   (vlm <command> --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "vlm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
