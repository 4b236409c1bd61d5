// Charts as standalone SVG files (no dependencies): line charts of loss curves and metrics against steps,
// and grouped bar charts of evaluation results.
#pragma once

typedef struct {
    const char *name;
    const double *x, *y;  // (n) points; NaN y values leave a gap
    int n;
} PlotSeries;

// Writes an SVG chart with one line per series, axes with ticks, and a legend. Dies naming the file on
// write errors.
void plot_svg(const char *path, const char *title, const char *xlabel, const PlotSeries *series, int n_series);

// Reads the numeric `keys` (comma separated) of a metrics.jsonl against "step" and writes one chart per
// group: the keys of a group share an axis. Returns the number of series that had data.
int plot_metrics(const char *log_path, const char *keys, const char *svg_path, const char *title);

// Grouped bars: for each group g (a metric) one bar per series k (a model), value[k * n_groups + g], with an
// error bar from lo[k * n_groups + g] to hi[...] (an interval; lo/hi NULL, NaN entries or lo == hi: none);
// NaN values draw no bar. The axis starts at 0.
void plot_bars_svg(const char *path, const char *title, const char *const *groups, int n_groups,
                   const char *const *series, int n_series, const double *value, const double *lo, const double *hi);
