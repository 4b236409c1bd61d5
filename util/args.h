// Command-line flags: "--name value" or "--name=value", and bare "--flag" switches.
// Every command parses its flags with these, then calls args_finish, which rejects anything unknown.
#pragma once

typedef struct {
    int argc;
    char **argv;
    char used[256];  // which argv entries were consumed
    const char *command;  // for messages ("vlm logprobs")
} Args;

Args args_init(const char *command, int argc, char **argv);
// True when --help or -h is present.
int args_help(Args *a);
const char *arg_str(Args *a, const char *name, const char *def);
long arg_int(Args *a, const char *name, long def);
double arg_float(Args *a, const char *name, double def);
int arg_flag(Args *a, const char *name);  // 1 if the bare switch is present
// Dies naming the first argument that no arg_* call consumed.
void args_finish(Args *a);
