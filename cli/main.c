// vlm: one binary, one command per job. `vlm <command> --help` describes each.
#include <stdio.h>
#include <string.h>

#include "commands.h"

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
