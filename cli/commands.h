// One function per `vlm <command>`; each parses its own flags (util/args.h) and returns the exit status.
#pragma once

int cmd_logprobs(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_score(int argc, char **argv);
// vlm data subcommands that live in their own files (cli/cmd_data_prefs.c)
int data_seva(int argc, char **argv);
int data_clipdpo(int argc, char **argv);
int data_mvc(int argc, char **argv);
