// The settings of a training run that `vlm train` flags set, one descriptor each: the flag, the field of
// TrainConfig it sets, its default, and whether a resumed run with another value still continues bit-exactly.
// One home for what a flag means: the recipe presets (train/recipes.h) are applied through it, the command
// line is parsed through it, the values are printed at start with their source, and --resume compares them
// with the run it continues.
#pragma once
#include <cJSON.h>
#include <stdio.h>

#include "trainer.h"

// Sets every setting to its default, then applies r's preset (its lists in order).
void settings_defaults(TrainConfig *c, const Recipe *r);
// Parses `value` (NULL for a switch) into the setting of `flag` and marks it as given on the command line.
// Returns 0, or -1 when no setting has that flag; dies naming the flag on a malformed value.
int settings_set_from_command_line(TrainConfig *c, const char *flag, const char *value);
// The i-th setting's flag (NULL past the end) and whether it takes a value (0: a switch such as --ipo).
const char *settings_flag(int i, int *takes_value);
// Whether `flag` was given on the command line.
int settings_given(const TrainConfig *c, const char *flag);
// Prints the recipe's preset as this run uses it, in the order of the settings: each value with its source,
// or "command line" (with the preset value it replaced); and the other settings given on the command line.
void settings_print(FILE *f, const TrainConfig *c);
// Every recipe of the table with its preset, in the order of the settings (for `vlm train --help`).
void settings_print_recipes(FILE *f);
// Every setting as {flag: value} (values as text, numbers exact), for state.json; "--device" is the backend
// that runs (a run continued on another backend does not continue bit-exactly).
cJSON *settings_json(const TrainConfig *c, const char *backend);
// Compares the settings of a checkpoint's state.json (`saved`, the "settings" object; NULL for a checkpoint
// written before settings were recorded, which is only warned about) with this run's. Prints every
// difference; dies, naming them, when one breaks bit-exactness unless c->force.
void settings_check_resume(const TrainConfig *c, const cJSON *saved, const char *backend, const char *file);
