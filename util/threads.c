#include "threads.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

int threads_choose(double others, int current, int max, int ncpu) {
    const double free = ncpu - others;  // the cores the other processes leave
    int target = (int)floor(free + 0.5);
    // within a sixth of a core of the midpoint between two counts, keep the current one (no flapping)
    const int lo = (int)floor(free);
    if (fabs(free - lo - 0.5) < 1.0 / 6 && (current == lo || current == lo + 1)) target = current;
    return target < 1 ? 1 : target > max ? max : target;
}

// The machine's busy CPU time (all CPUs) and this process's own, both in clock ticks; 0 on failure.
static int cpu_ticks(double *machine_busy, double *own) {
    char buf[512];
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[8] = {0};
    int n = fgets(buf, sizeof(buf), f) ? sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                                                 &v[3], &v[4], &v[5], &v[6], &v[7]) : 0;
    fclose(f);
    if (n < 5) return 0;
    *machine_busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);  // all but idle (3) and iowait (4)
    f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    char *line = fgets(buf, sizeof(buf), f);
    fclose(f);
    const char *p = line ? strrchr(line, ')') : NULL;  // the command name may hold spaces
    unsigned long long utime = 0, stime = 0;
    // after ") ": state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return 0;
    *own = (double)(utime + stime);
    return 1;
}

static int state = -1;  // -1: not started; 0: off; 1: on, first decision pending; 2: on
static int verbose;     // VLM_ADAPT_THREADS=verbose: each decision on stderr

void threads_adapt_off(void) { state = 0; }

void threads_adapt(void) {
    static int max, current;
    static double t_last, busy_last, own_last;
    if (state == 0) return;
    const double t = now_seconds();
    if (state < 0) {
        const char *e = getenv("VLM_ADAPT_THREADS");
        state = !getenv("OMP_NUM_THREADS") && !(e && !strcmp(e, "0"));
        verbose = e && !strcmp(e, "verbose");
        max = current = omp_get_max_threads();
        if (!state || max <= 1 || !cpu_ticks(&busy_last, &own_last)) { state = 0; return; }
        t_last = t;
        return;
    }
    if (t - t_last < (state == 1 ? 0.25 : 1.0)) return;  // a first look soon after the start, then once a second
    state = 2;
    double busy, own;
    if (!cpu_ticks(&busy, &own)) return;
    const double others = (busy - busy_last - (own - own_last)) / (double)sysconf(_SC_CLK_TCK) / (t - t_last);
    const int next = threads_choose(others, current, max, omp_get_num_procs());
    if (verbose) fprintf(stderr, "vlm: other processes used %.2f cores over %.2f s: %d thread%s\n", others, t - t_last, next, next > 1 ? "s" : "");
    if (next != current) omp_set_num_threads(next);
    current = next;
    t_last = t, busy_last = busy, own_last = own;
}
