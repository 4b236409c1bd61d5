// One function per `vlm <command>`; each parses its own flags (util/args.h) and returns the exit status.
#pragma once

// Declared weak while the commands are being written in parallel: main.c lists only those linked in.
#define VLM_COMMAND __attribute__((weak))
VLM_COMMAND int cmd_logprobs(int argc, char **argv);
VLM_COMMAND int cmd_tokenize(int argc, char **argv);
VLM_COMMAND int cmd_preprocess(int argc, char **argv);
VLM_COMMAND int cmd_train(int argc, char **argv);
VLM_COMMAND int cmd_plot(int argc, char **argv);
VLM_COMMAND int cmd_bench(int argc, char **argv);
VLM_COMMAND int cmd_data(int argc, char **argv);
VLM_COMMAND int cmd_export(int argc, char **argv);
VLM_COMMAND int cmd_eval(int argc, char **argv);
VLM_COMMAND int cmd_sample(int argc, char **argv);
