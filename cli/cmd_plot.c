// vlm plot: line charts (SVG) of the metrics a training run logged.
#include <stdio.h>

#include "../train/plot.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

int cmd_plot(int argc, char **argv) {
    Args a = args_init("vlm plot", argc, argv);
    if (args_help(&a)) {
        printf("usage: vlm plot --log out/metrics.jsonl --out chart.svg [--keys loss,val/loss] [--title TEXT]\n\n"
               "Draws the chosen numeric fields of a metrics log against the step: every value as a faint point (past\n"
               "400, the band of each pixel column's extremes) and a smoothed line over them (a debiased moving average\n"
               "over a twentieth of the points). `vlm train` redraws its loss.svg and accuracy.svg so every --log-every\n"
               "steps, with the step-0 identity of a preference loss (log 2, 4 log 2, 3 log 2) as a dashed line.\n");
        return 0;
    }
    const char *log = arg_str(&a, "--log", NULL), *out = arg_str(&a, "--out", NULL);
    const char *keys = arg_str(&a, "--keys", "loss,val/loss"), *title = arg_str(&a, "--title", keys);
    args_finish(&a);
    if (!log || !out) fatal("vlm plot: --log and --out are required");
    int n = plot_metrics(log, keys, out, title);
    if (n == 0) fatal("%s: none of the fields %s has values", log, keys);
    fprintf(stderr, "plot: %d series -> %s\n", n, out);
    return 0;
}
