// Charts as standalone SVG files (no dependencies): line charts of loss curves and metrics against steps,
// and grouped bar charts of evaluation results.
#pragma once
#include <cJSON.h>

typedef struct {
    const char *name;
    const double *x, *y;  // (n) points; NaN y values are left out
    int n;
} PlotSeries;

// Writes an SVG chart of the series against x: each series' points raw and faint (dots, or past 400 points the
// band between each pixel column's lowest and highest value, so the file stays small however long the run) and a
// smoothed line drawn over them (plot_smooth, one point per pixel column at most), axes with ticks and a legend;
// with a finite mark, a dashed horizontal line at that value labelled mark_label (the step-0 identity of a
// preference loss). Returns 0; on a write error -1 with the message (naming the file) in err, or, err NULL, dies.
int plot_svg(const char *path, const char *title, const char *xlabel, const PlotSeries *series, int n_series, double mark,
             const char *mark_label, char *err, size_t errlen);
// The smoothed line of y (n): an exponential moving average debiased at the start, as TensorBoard smooths, with
// its span a twentieth of the points (none below 40 points: the line goes through them). out (n) may be y.
void plot_smooth(const double *y, int n, double *out);

enum { PLOT_MAX_KEYS = 16 };

// A chart of numeric metrics against the step, kept in memory: a training run adds each step's record and redraws
// the chart as it logs (train/run.c), and `vlm plot` draws a finished log with the same code.
typedef struct {
    int n_keys;
    char *keys[PLOT_MAX_KEYS];         // (n_keys) the metric names, a line each
    double *x[PLOT_MAX_KEYS], *y[PLOT_MAX_KEYS];  // (n[k]) steps and values of key k
    int n[PLOT_MAX_KEYS], cap[PLOT_MAX_KEYS];
    double mark;                       // a dashed line at this value (NaN: none)
    char mark_label[96];
} PlotChart;

// keys: comma separated (at most PLOT_MAX_KEYS); mark, mark_label: see plot_svg.
void plot_chart_init(PlotChart *c, const char *keys, double mark, const char *mark_label);
// The record's "step" against the value of each key it has (records without a step add nothing).
void plot_chart_add(PlotChart *c, const cJSON *record);
// Every line of a metrics log into each of the n charts, the log read once (dies naming the file and line on one
// that is not JSON).
void plot_chart_add_log(PlotChart *const *charts, int n, const char *log_path);
// Writes the chart to path; returns the number of keys with data (0: nothing is written), or -1 on a write error
// with the message in err (err NULL: dies).
int plot_chart_write(const PlotChart *c, const char *path, const char *title, char *err, size_t errlen);
void plot_chart_free(PlotChart *c);

// Reads the numeric `keys` (comma separated) of a metrics.jsonl against "step" and writes them as one chart
// (a PlotChart). Returns the number of series that had data.
int plot_metrics(const char *log_path, const char *keys, const char *svg_path, const char *title);

// Grouped bars: for each group g (a metric) one bar per series k (a model), value[k * n_groups + g], with an
// error bar from lo[k * n_groups + g] to hi[...] (an interval; lo/hi NULL, NaN entries or lo == hi: none);
// NaN values draw no bar. The axis starts at 0.
void plot_bars_svg(const char *path, const char *title, const char *const *groups, int n_groups,
                   const char *const *series, int n_series, const double *value, const double *lo, const double *hi);

// Points with intervals joined by a line per series, on two axes that both cross 0: a trade-off chart (vlm eval
// frontier: each method's change in hallucination against its change in general ability, one point per
// learning rate). Dashed lines mark x = 0 and y = 0 (the baseline); each point gets its interval as a cross
// and its label beside it. x_min, y_min (negative, or NaN: none): floors of the axes, so that a model that
// collapses far below the others does not squeeze them; a point past one sits hollow on the frame, its values
// in its label.
typedef struct {
    const char *name;
    int n;
    const double *x, *xlo, *xhi, *y, *ylo, *yhi;  // (n) points and their intervals (NaN bounds: none drawn)
    const char *const *label;                      // (n) a short text beside each point, or NULL
} PlotPoints;
void plot_tradeoff_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, const PlotPoints *series,
                       int n_series, double x_min, double y_min);
