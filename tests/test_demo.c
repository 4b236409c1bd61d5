// make demo's pipeline (demo/run.sh) at its smallest size: every stage runs, every model is evaluated, the
// table has a row per model, and a second run finds its stages done.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "test.h"

// run_demo CONFIG OUT: demo/run.sh CONFIG into OUT with ENV (variable assignments, or "") before it
static int run_demo_env(const char *env, const char *config, const char *out, char **log) {
    const char *bin = getenv("VLM_BIN") ? getenv("VLM_BIN") : "./vlm";
    char *log_path = path_join(test_tmpdir(), "demo_run.log"), cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s VLM=%s DEMO_OUT=%s RESULTS=%s/results DEVICE=cpu BPE=%s/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz "
             "bash demo/run.sh %s > %s 2>&1",
             env, bin, out, out, test_shared_data(), config, log_path);
    int rc = test_shell(cmd);
    *log = try_read_file(log_path, NULL);
    if (!*log) *log = xstrdup("");
    free(log_path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
static int run_demo(const char *config, const char *out, char **log) { return run_demo_env("", config, out, log); }

TEST(demo_pipeline_end_to_end) {
    char *out = path_join(test_tmpdir(), "demo"), *log;
    int rc = run_demo("test", out, &log);
    EXPECTF(rc == 0, "demo/run.sh test: exit %d:\n%s", rc, log + (strlen(log) > 3000 ? strlen(log) - 3000 : 0));
    const char *models[7] = {"sft", "dpo-seva", "dpo-clipdpo", "dpo-mvc", "mdpo", "vco", "svco"};
    char path[700];
    snprintf(path, sizeof(path), "%s/results/table.md", out);
    char *table = try_read_file(path, NULL);
    EXPECTF(table != NULL, "no table at %s", path);
    int rows = 0;
    for (int i = 0; i < 7 && table; i++) {
        char row[64];
        snprintf(row, sizeof(row), "| %s | 1 |", models[i]);
        // a method whose builder found no pair is skipped, and the log says so
        char skipped[96];
        snprintf(skipped, sizeof(skipped), "%s skipped", models[i]);
        EXPECTF(strstr(table, row) || (i > 0 && strstr(log, skipped)), "no row for %s and no skip message:\n%s", models[i], table);
        rows += strstr(table, row) != NULL;
        if (!strstr(table, row)) continue;
        // the SFT model is evaluated once (every seed pairs with it), each method per seed
        const char *files[4] = {"pope.json", "chair.json", "mmvp.json", "qa.json"};
        for (int f = 0; f < 4; f++) {
            if (i == 0) snprintf(path, sizeof(path), "%s/sft1/eval/sft/%s", out, files[f]);
            else snprintf(path, sizeof(path), "%s/sft1/seed1/eval/%s/%s", out, models[i], files[f]);
            EXPECTF(file_exists(path), "%s missing", path);
        }
        if (i == 0) continue;
        // the learning rate came from the grid on the validation split, and the run says which
        snprintf(path, sizeof(path), "%s/grid/%s/chosen", out, models[i]);
        EXPECTF(file_exists(path), "%s missing", path);
        snprintf(path, sizeof(path), "%s/sft1/seed1/eval/%s/run.json", out, models[i]);
        EXPECTF(file_exists(path), "%s missing", path);
    }
    EXPECTF(rows >= 5, "only %d of 7 models in the table", rows);  // sft, dpo-mvc, vco and svco always have data
    const char *outputs[7] = {"loss-clip.svg", "table.json", "verdict.txt", "timings.tsv", "results.svg", "colour-probe.json",
                              "rewards-svco-seed1.svg"};
    for (int k = 0; k < 7; k++) {
        snprintf(path, sizeof(path), "%s/results/%s", out, outputs[k]);
        EXPECTF(file_exists(path), "%s missing", path);
    }
    EXPECTF(strstr(log, "Verdict: svco") && strstr(log, "far too small"), "no verdict or no warning on screen:\n%s", log);
    // the colour probe: the SFT model on more held-out scenes, whose first are the test split's
    snprintf(path, sizeof(path), "%s/results/colour-probe.md", out);
    char *probe = try_read_file(path, NULL);
    EXPECTF(probe && strstr(probe, "| sft | 1 |") && strstr(probe, "sft1  color+true") && strstr(probe, "sft1  color+false"),
            "%s: %s", path, probe ? probe : "(none)");
    free(probe);
    char *test_qa = path_join(out, "world/qa.jsonl");
    long n = 0;
    char *text = try_read_file(test_qa, NULL);
    if (text) n = (long)strlen(text);
    snprintf(path, sizeof(path), "cmp -s -n %ld %s/world/qa.jsonl %s/probe_world/qa.jsonl", n, out, out);
    EXPECTF(n > 0 && test_shell(path) == 0, "the probe's questions do not start with the test split's (%s)", path);
    free(text); free(test_qa);
    free(table); free(log);
    // again: every stage is found done (the table is made again)
    rc = run_demo("test", out, &log);
    EXPECTF(rc == 0 && !strstr(log, "CLIP contrastive pretraining") && !strstr(log, "SFT of the LLaVA") && strstr(log, "results table"),
            "the second run redid finished stages (exit %d):\n%s", rc, log);
    free(log);
    rc = run_demo("bogus", out, &log);
    EXPECTF(rc == 2 && strstr(log, "unknown configuration 'bogus'"), "exit %d: %s", rc, log);
    free(log);
    rc = run_demo_env("SWEEP=yes", "test", out, &log);
    EXPECTF(rc == 2 && strstr(log, "SWEEP must be 0 or 1 (got 'yes')"), "exit %d: %s", rc, log);
    free(log); free(out);
}

// SFT_SEEDS="1 2" runs the whole pipeline per seed (an SFT model each, aligned with its own seed), and SWEEP
// every method at every rate of the grid on the test split, reusing the grid's own runs rather than training
// them again; one sweep table per rate, each pairing every method with the SFT model of its seed.
TEST(demo_pipeline_per_seed_and_sweep) {
    char *out = path_join(test_tmpdir(), "demo_sweep"), *log;
    int rc = run_demo_env("SFT_SEEDS='1 2' SEEDS='1 2' SWEEP=1", "test", out, &log);
    EXPECTF(rc == 0, "demo/run.sh test: exit %d:\n%s", rc, log + (strlen(log) > 3000 ? strlen(log) - 3000 : 0));
    char path[700];
    for (int s = 1; s <= 2; s++) {
        snprintf(path, sizeof(path), "%s/sft%d/seed%d/eval/sft/qa.json", out, s, s);
        EXPECTF(file_exists(path), "%s missing: no SFT model of seed %d", path, s);
    }
    snprintf(path, sizeof(path), "%s/results/table.md", out);
    char *table = try_read_file(path, NULL);
    EXPECTF(table && strstr(table, "| sft | 2 |") && strstr(table, "| svco | 2 |"), "the table lacks two SFT and two S-VCO runs:\n%s",
            table ? table : "(none)");
    free(table);
    const char *rates[2] = {"1e-4", "1e-3"};  // the test configuration's grid
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof(path), "%s/results/lr-sweep/lr%s.md", out, rates[k]);
        char *sweep = try_read_file(path, NULL);
        EXPECTF(sweep && strstr(sweep, "| sft | 2 |") && strstr(sweep, "| svco | 2 |") && strstr(sweep, "Difference from dpo-mvc"),
                "%s: expected sft and svco with 2 runs each and differences from dpo-mvc:\n%s", path, sweep ? sweep : "(none)");
        free(sweep);
    }
    // the trade-off across the rates, and S-VCO against DPO-MVC at each rate on screen
    snprintf(path, sizeof(path), "%s/results/lr-sweep/frontier.md", out);
    char *frontier = try_read_file(path, NULL);
    EXPECTF(frontier && strstr(frontier, "| svco | lr 1e-4 | 2 |") && strstr(frontier, "svco - dpo-mvc at the same setting: lr 1e-4:"),
            "%s: %s", path, frontier ? frontier : "(none)");
    EXPECTF(frontier && strstr(frontier, "svco - vco at the same setting: lr 1e-4:"), "%s: no line against VCO", path);
    EXPECTF(strstr(log, "svco - dpo-mvc at the same setting") && strstr(log, "svco - vco at the same setting"),
            "the sweep's lines are not on screen");
    free(frontier);
    snprintf(path, sizeof(path), "%s/results/lr-sweep/frontier.svg", out);
    EXPECTF(file_exists(path), "%s missing", path);
    // the first SFT model's seed-1 runs at every rate are the grid's: evaluated in the sweep, never trained again
    EXPECTF(!strstr(log, "sweep: svco seed 1 at lr") && strstr(log, "sweep: evaluating svco seed 1 at lr") && strstr(log, "sweep: svco seed 2 at lr"),
            "the sweep retrained a grid run or skipped a seed:\n%s", log + (strlen(log) > 3000 ? strlen(log) - 3000 : 0));
    free(log); free(out);
}

// vlm device names the backend --device selects, one word, so scripts ask once.
TEST(cli_device) {
    char *out, *err;
    int rc = test_run_vlm("device cpu", &out, &err);
    EXPECTF(rc == 0 && out && !strcmp(out, "cpu\n"), "exit %d: '%s'", rc, out ? out : "");
    free(out); free(err);
    rc = test_run_vlm("device auto", &out, &err);
    EXPECTF(rc == 0 && out && (!strcmp(out, "cpu\n") || !strcmp(out, "cuda\n")), "exit %d: '%s'", rc, out ? out : "");
    free(out); free(err);
    rc = test_run_vlm("device tpu", &out, &err);
    EXPECTF(rc != 0 && err && strstr(err, "--device 'tpu'"), "exit %d: %s", rc, err ? err : "");
    free(out); free(err);
}
