#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../util/common.h"

void run_lock_out(const char *out_dir) {
    mkdir_p(out_dir);
    char *path = path_join(out_dir, ".lock");
    // O_CLOEXEC: a child process (none today) must not keep the lock after we exit
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fatal("%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) fatal("%s: cannot lock: %s", path, strerror(errno));
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\r\n")] = 0;
        fatal("%s is in use by another run (%s%s holds the lock on %s); wait for it to end or give another --out", out_dir,
              pid[0] ? "pid " : "a process", pid, path);
    }
    // the holder's pid, for the message above; the fd stays open (and locked) until the process ends
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, n, 0) != n)
        fprintf(stderr, "vlm: warning: %s: cannot write the pid: %s\n", path, strerror(errno));
    free(path);
}

int run_total_steps(const TrainConfig *c, int n_examples, long long per_step) {
    if (c->steps > 0) return c->steps;
    double t = ceil(c->epochs * n_examples / (double)(per_step > 0 ? per_step : 1));
    if (!(t <= INT_MAX)) fatal("vlm train: --epochs %g over %d examples is %g steps, more than %d", c->epochs, n_examples, t, INT_MAX);
    return t < 1 ? 1 : (int)t;
}

CheckpointLimits run_checkpoint_limits(const char *recipe, unsigned long long data_hash, int total_steps, int n_examples,
                                       long long per_step) {
    // doubles: steps * batch * accumulation can pass 2^63; + 1 for the epoch a run ends in
    double epochs = (double)total_steps * (double)per_step / (n_examples > 0 ? n_examples : 1) + 1;
    return (CheckpointLimits){recipe, data_hash, total_steps, n_examples, epochs < INT_MAX ? (int)epochs : INT_MAX};
}

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    if (stop_signal) {  // the second signal: no waiting for the step or the checkpoint
        static const char msg[] = "\nvlm: a second signal: exiting at once, without a checkpoint\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)r;
        _exit(128 + sig);
    }
    stop_signal = sig;
    static const char msg[] = "\nvlm: stopping after this step with a checkpoint (a second signal exits at once)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
}

void run_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    // while one handler runs the others wait, so two signals always count as first and second
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sa.sa_flags = SA_RESTART;  // a read or write that the signal interrupts goes on
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) fatal("sigaction(%d): %s", sigs[i], strerror(errno));
}

int run_stop_signal(void) { return stop_signal; }

// Appends s to the command line, in single quotes unless it is made of characters the shell leaves alone.
static void append_quoted(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t need = *len + 4 * strlen(s) + 4;
    if (need > *cap) { *cap = 2 * need; *buf = xrealloc(*buf, *cap); }
    char *p = *buf + *len;
    *p++ = ' ';
    int plain = s[0] != 0;
    for (const char *q = s; *q; q++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *q)) plain = 0;
    if (plain) p += sprintf(p, "%s", s);
    else {
        *p++ = '\'';
        for (const char *q = s; *q; q++) {
            if (*q == '\'') { memcpy(p, "'\\''", 4); p += 4; }  // close the quote, an escaped ', reopen
            else *p++ = *q;
        }
        *p++ = '\'';
        *p = 0;
    }
    *len = (size_t)(p - *buf);
}

char *run_resume_command(const TrainConfig *c) {
    size_t cap = 256, len = 0;
    char *buf = xmalloc(cap);
    buf[0] = 0;
    extern char *program_invocation_name;  // glibc: argv[0] of the process
    append_quoted(&buf, &len, &cap, program_invocation_name);
    memmove(buf, buf + 1, len--);  // no leading space
    append_quoted(&buf, &len, &cap, "train");
    int has_resume = 0;
    for (int i = 0; i < c->argc; i++) {
        append_quoted(&buf, &len, &cap, c->argv[i]);
        has_resume |= !strcmp(c->argv[i], "--resume");
    }
    if (!has_resume) append_quoted(&buf, &len, &cap, "--resume");
    return buf;
}

void run_exit_interrupted(const TrainConfig *c, int sig, int step) {
    char *cmd = run_resume_command(c), name[64];
    snprintf(name, sizeof(name), "checkpoint-%08d", step);
    char *ckpt = path_join(c->out_dir, name);
    fflush(stdout);
    fprintf(stderr, "vlm: %s: stopped after step %d with a checkpoint in %s. Resume with:\n  %s\n",
            sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal", step, ckpt,
            c->argv ? cmd : "the same command with --resume");
    free(ckpt);
    free(cmd);
    exit(128 + sig);
}
