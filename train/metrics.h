// The metrics log: one JSON object per optimizer step in out/metrics.jsonl (what `vlm plot` reads).
#pragma once
#include <cJSON.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char *path;
} MetricsLog;

// resume_step > 0 keeps the lines of steps <= resume_step (a crashed run may have logged past its last
// checkpoint) and appends after them; 0 starts a fresh file.
void metrics_open(MetricsLog *m, const char *path, int resume_step);
// Both die naming the file when a write, flush or close fails (a full disk fails the run).
void metrics_write(MetricsLog *m, const cJSON *record);
void metrics_close(MetricsLog *m);
