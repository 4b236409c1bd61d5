// Line charts as standalone SVG files (no dependencies): loss curves, metrics against steps.
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
