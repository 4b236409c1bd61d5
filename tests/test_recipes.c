// The recipe table (train/recipes.h) and the settings it presets (train/settings.h): every entry is
// well-formed and its loss agrees with its metric names and with finite differences through the table; the
// presets reach `vlm train --help` and a run's start with their sources; --resume names a changed setting
// and refuses it unless --force.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../train/settings.h"
#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"

static unsigned rng = 4242;
static double uniform(void) { rng = rng * 1103515245u + 12345u; return (rng >> 8) / 16777216.0; }

TEST(recipes_table_is_consistent) {
    int n = 0;
    for (const Recipe *r; (r = recipe_at(n)); n++) {
        EXPECTF(recipe_find(r->name) == r, "%s: not found by name", r->name);
        for (int k = 0; k < n; k++) EXPECTF(recipe_at(k)->id != r->id, "%s: id %d reused", r->name, r->id);
        TrainConfig c;
        train_config_preset(&c, r);  // dies on a preset flag that is not a setting
        EXPECT(c.recipe == r);
        const int nm = recipe_n_metrics(r);
        for (int i = 0; i < nm; i++)
            for (int j = 0; j < i; j++) EXPECTF(strcmp(r->metrics[i], r->metrics[j]), "%s: metric %s twice", r->name, r->metrics[i]);
        if (r->acc_plot_keys) EXPECTF(r->headline != NULL, "%s: an accuracy plot without a headline accuracy", r->name);
        if (r->model != MODEL_LLAVA) continue;
        EXPECTF(r->loss && r->n_rows >= 1 && r->n_rows <= RECIPE_MAX_ROWS, "%s: loss or rows missing", r->name);
        EXPECTF(!strcmp(r->metrics[0], "logps/mean"), "%s: the LLaVA step writes logps/mean first", r->name);
        for (int k = 0; k < r->n_rows; k++) {
            EXPECTF(r->rows[k].response == 0 || r->rows[k].response == 1, "%s row %d: response", r->name, k);
            EXPECTF(r->rows[k].image >= -1 && r->rows[k].image <= (r->second_image != IMAGE2_NONE), "%s row %d: image slot", r->name, k);
        }
    }
    EXPECTF(n >= 6, "%d recipes", n);
}

// Through the table: the loss writes exactly its metrics after logps/mean, its gradient matches central
// differences, and with policy = reference every preference term is log 2 (DPO log 2, S-VCO 4 log 2, VCO
// 2 log 2, mDPO 3 log 2: the step-0 identities).
TEST(recipes_losses_through_the_table) {
    const struct { const char *name; double step0; } want[] = {{"sft", -1}, {"dpo", 1}, {"svco", 4}, {"vco", 2}, {"mdpo", 3}};
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        const Recipe *r = recipe_find(want[w].name);
        TrainConfig c;
        train_config_preset(&c, r);
        const int E = 3, R = r->n_rows, N = E * R, nm = recipe_n_metrics(r);
        double pol[18], ref[18], d[18], d2[18], m[RECIPE_MAX_METRICS + 1];
        int count[18];
        for (int i = 0; i < N; i++) { pol[i] = -5 - 10 * uniform(); ref[i] = pol[i] + uniform() - 0.5; count[i] = 2 + i % 4; }
        for (int i = 0; i <= RECIPE_MAX_METRICS; i++) m[i] = NAN;
        r->loss(&c.loss, E, pol, ref, count, d, m);
        for (int i = 0; i < nm - 1; i++) EXPECTF(isfinite(m[i]), "%s: metric %s not written", r->name, r->metrics[i + 1]);
        EXPECTF(isnan(m[nm - 1]), "%s: the loss writes past its %d metrics", r->name, nm - 1);
        for (int i = 0; i < N; i++) {
            const double h = 1e-5, x = pol[i];
            pol[i] = x + h;
            double lp = r->loss(&c.loss, E, pol, ref, count, d2, m);
            pol[i] = x - h;
            double lm = r->loss(&c.loss, E, pol, ref, count, d2, m);
            pol[i] = x;
            EXPECT_NEAR(d[i], (lp - lm) / (2 * h), 1e-6);
        }
        if (want[w].step0 > 0) {
            double l = r->loss(&c.loss, E, pol, pol, count, d, m);
            EXPECT_NEAR(l, want[w].step0 * log(2.0), 1e-15);
            if (r->headline) {
                double mm[RECIPE_MAX_METRICS] = {0};
                memcpy(mm + 1, m, sizeof(double) * (nm - 1));
                double a = r->headline(r, &c.loss, mm);
                EXPECTF(a >= 0 && a <= 1, "%s: headline accuracy %g", r->name, a);
            }
        }
    }
}

// `vlm train --help` lists every recipe with every preset value and its source, from the table.
TEST(recipes_help_lists_presets_with_sources) {
    char *out, *err;
    EXPECT(test_run_vlm("train --help", &out, &err) == 0);
    for (int i = 0; recipe_at(i); i++) {
        const Recipe *r = recipe_at(i);
        char line[128];
        snprintf(line, sizeof(line), "  %s: %s", r->name, r->summary);
        EXPECTF(strstr(out, line) != NULL, "--help does not list %s", r->name);
        for (int k = 0; r->presets[k]; k++)
            for (const PresetValue *p = r->presets[k]; p->flag; p++)
                if (recipe_preset(r, p->flag) == p) EXPECTF(strstr(out, p->source) != NULL, "%s %s: no source in --help", r->name, p->flag);
    }
    EXPECTF(strstr(out, "S-VCO run_svco_example.sh") && strstr(out, "mDPO bunny/config.yaml"), "help: %s", out);
    free(out); free(err);
}

// A run prints its preset at start: each value with its source, and a value from the command line with the
// preset value it replaced.
TEST(recipes_run_prints_preset_sources) {
    char *out, *err, args[1024];
    char *o = path_join(test_tmpdir(), "preset_print");
    snprintf(args, sizeof(args), "train --recipe svco --model " GQA " --data tests/fixtures/train/svco.jsonl --out %s --steps 1 "
             "--batch 2 --lr 1e-3 --device cpu --quiet", o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    EXPECTF(strstr(err, "S-VCO run_svco_example.sh") && strstr(err, "0.95"), "no preset beta2 with its source: %s", err);
    EXPECTF(strstr(err, "command line (preset 1e-6: S-VCO run_svco_example.sh"), "the --lr override: %s", err);
    EXPECTF(strstr(err, "--betas") && strstr(err, "0.1,0.1,0.1,0.1"), "no betas: %s", err);
    free(out); free(err); free(o);
}

// --resume compares every setting with the run's state.json: a changed --beta or --no-pack is named and
// refused; --force continues (saying so); an unchanged command resumes silently.
TEST(recipes_resume_refuses_changed_settings) {
    char *out, *err, args[1024];
    char *o = path_join(test_tmpdir(), "resume_settings");
    const char *common = "train --recipe dpo --model " GQA " --data tests/fixtures/train/dpo.jsonl --steps 4 --batch 2 --device cpu --quiet";
    snprintf(args, sizeof(args), "%s --out %s --stop-at 2", common, o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    free(out); free(err);
    snprintf(args, sizeof(args), "%s --out %s --resume --beta 0.2 --no-pack", common, o);
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "2 settings differ") && strstr(err, "--beta 0.2 (the run: 0.1)") && strstr(err, "--no-pack on (the run: off)"),
            "message: %s", err);
    free(out); free(err);
    snprintf(args, sizeof(args), "%s --out %s --resume --beta 0.2 --force --stop-at 3", common, o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    EXPECTF(strstr(err, "--force: 1 setting differs") && strstr(err, "resumed from"), "message: %s", err);
    free(out); free(err);
    snprintf(args, sizeof(args), "%s --out %s --resume --beta 0.2", common, o);  // the --force run's settings now
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    EXPECTF(!strstr(err, "differ"), "message: %s", err);
    free(out); free(err); free(o);
}
