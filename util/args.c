#include "args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

Args args_init(const char *command, int argc, char **argv) {
    Args a;
    memset(&a, 0, sizeof(a));
    if (argc > (int)sizeof(a.used)) fatal("%s: too many arguments (%d)", command, argc);
    a.argc = argc;
    a.argv = argv;
    a.command = command;
    return a;
}

int args_help(Args *a) {
    for (int i = 0; i < a->argc; i++)
        if (!strcmp(a->argv[i], "--help") || !strcmp(a->argv[i], "-h")) return 1;
    return 0;
}

// Finds --name; returns its value (next entry or after '='), marks both used. NULL if absent.
static const char *find(Args *a, const char *name, int needs_value) {
    size_t n = strlen(name);
    const char *found = NULL;
    for (int i = 0; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (strncmp(s, name, n) != 0) continue;
        if (s[n] == '=' && needs_value) { a->used[i] = 1; found = s + n + 1; }
        else if (s[n] == 0) {
            a->used[i] = 1;
            if (!needs_value) found = s;
            else {
                if (i + 1 >= a->argc) fatal("%s: %s needs a value", a->command, name);
                a->used[++i] = 1;
                found = a->argv[i];
            }
        }
    }
    return found;  // the last occurrence wins
}

const char *arg_str(Args *a, const char *name, const char *def) {
    const char *v = find(a, name, 1);
    return v ? v : def;
}

long arg_int(Args *a, const char *name, long def) {
    const char *v = find(a, name, 1);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v) fatal("%s: %s expects an integer, got '%s'", a->command, name, v);
    return x;
}

double arg_float(Args *a, const char *name, double def) {
    const char *v = find(a, name, 1);
    if (!v) return def;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v) fatal("%s: %s expects a number, got '%s'", a->command, name, v);
    return x;
}

int arg_flag(Args *a, const char *name) { return find(a, name, 0) != NULL; }

void args_finish(Args *a) {
    for (int i = 0; i < a->argc; i++)
        if (!a->used[i]) fatal("%s: unknown argument '%s' (see %s --help)", a->command, a->argv[i], a->command);
}
