// The recipe table (train/recipes.h) and the settings it presets (train/settings.h): every entry is
// well-formed and its loss agrees with its metric names and with finite differences through the table; the
// presets reach `vlm train --help` and a run's start with their sources; --resume names a changed setting
// and refuses it unless --force; with default flags S-VCO's rows are token for token its official collator's.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/preprocess.h"
#include "../train/settings.h"
#include "../util/common.h"
#include "test.h"
#include "test_jsonl.h"

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

// S-VCO's rows with the svco preset (no flag given) are token for token what s-vco/s-vco's own collator builds
// (tests/ref/make_svco_collator_fixtures.py ran data_collator.py as released on the 30 MVC-style records of
// svco_collator.json): ids and labels of every row, the image one id (our rows expand it to the tower's tokens);
// and with --max-text-len 128 what the collator builds at run_svco_example.sh's 128 (the EOS cut off long rows).
TEST(recipes_svco_rows_match_official_collator) {
    char *text = read_file("tests/fixtures/train/svco_collator_rows.json", NULL);
    cJSON *fx = cJSON_Parse(text);
    free(text);
    EXPECT(fx != NULL);
    if (!fx) return;
    LlavaConfig cfg;
    EXPECT(llava_config_preset(&cfg, "llava-tiny") == 0);
    PreprocessConfig pcfg = preprocess_config_clip(cfg.vision.image_size);
    char *tok = path_join(test_shared_data(), "tokenizers/llama2_tokenizer.model");
    const char *lengths[2] = {"2048", "128"};
    // our rows (SVCO_* order) against the collator's four: y_w under I_w and I_l, y_w image-free, then y_l
    static const char *const official[SVCO_ROWS] = {"img_chosen", "img_chosen", "no_img_chosen", "img_rejected", "img_rejected",
                                                    "no_img_rejected"};
    for (int L = 0; L < 2; L++) {
        TrainConfig c;
        train_config_preset(&c, recipe_find("svco"));
        c.images_dir = test_shared_data();
        if (L == 1) settings_set_from_command_line(&c, "--max-text-len", "128");
        TrainDataOptions opt = train_config_data_options(&c, tok);
        TrainData td;
        train_data_load(&td, c.recipe, "tests/fixtures/train/svco_collator.json", &cfg, &pcfg, &opt);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(fx, "lengths"), lengths[L]);
        EXPECT_INT_EQ(td.n, cJSON_GetArraySize(want));
        int rows = 0, cut = 0;
        for (int e = 0; e < td.n && e < cJSON_GetArraySize(want); e++)
            for (int k = 0; k < SVCO_ROWS; k++) {
                TrainExample scratch;
                const TrainExample *ex = train_data_example(&td, e, &scratch);
                const TrainRow *r = &ex->rows[k];
                const cJSON *w = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(want, e), official[k]);
                // the image's tokens collapsed to the collator's one <image> id
                int *ids = xmalloc(sizeof(int) * (r->n + 1)), *labels = xmalloc(sizeof(int) * (r->n + 1)), n = 0;
                for (int t = 0; t < r->n; t++) {
                    if (r->ids[t] == cfg.image_token_id && t > 0 && r->ids[t - 1] == cfg.image_token_id) continue;
                    ids[n] = r->ids[t];
                    labels[n++] = r->labels[t];
                }
                char what[96];
                snprintf(what, sizeof(what), "max %s, record %d, row %d (%s) ids", lengths[L], e, k, official[k]);
                rows += EXPECT_IDS(ids, n, cJSON_GetObjectItemCaseSensitive(w, "ids"), what);
                snprintf(what, sizeof(what), "max %s, record %d, row %d (%s) labels", lengths[L], e, k, official[k]);
                EXPECT_IDS(labels, n, cJSON_GetObjectItemCaseSensitive(w, "labels"), what);
                cut += L == 1 && n == 128 && ids[n - 1] != 2;  // cut rows have lost their EOS
                free(ids); free(labels);
                if (ex == &scratch) train_example_free(&scratch);
            }
        EXPECTF(rows == td.n * SVCO_ROWS, "max %s: %d of %d rows equal the collator's", lengths[L], rows, td.n * SVCO_ROWS);
        if (L == 1) EXPECTF(cut >= 6, "%d rows cut at 128 text tokens: the fixture should exercise the cut", cut);
        train_data_free(&td);
    }
    free(tok);
    cJSON_Delete(fx);
}

// S-VCO's diagnostics under its own names (trainer.py get_batch_metrics): the |policy log-ratio| distance of each
// term and the policy log-prob of each row, batch means; VCO's evaluation has all four terms at beta 0.1 (the
// official eval), so its held-out loss at policy = reference is 4 log 2 while its training loss is 2 log 2.
TEST(recipes_svco_distances_logps_and_vco_eval) {
    const Recipe *r = recipe_find("svco");
    TrainConfig c;
    train_config_preset(&c, r);
    enum { E = 3 };
    double pol[E * SVCO_ROWS], ref[E * SVCO_ROWS], d[E * SVCO_ROWS], m[RECIPE_MAX_METRICS] = {0};
    int count[E * SVCO_ROWS];
    for (int i = 0; i < E * SVCO_ROWS; i++) { pol[i] = -5 - 10 * uniform(); ref[i] = pol[i] + uniform() - 0.5; count[i] = 3; }
    r->loss(&c.loss, E, pol, ref, count, d, m + 1);  // m[0] is logps/mean, the step's own
    static const struct { const char *name; int a, b; } dist[4] = {
        {"pi_logratios/pi_logratios_img_win_vs_no_img_distance", SVCO_W_IW, SVCO_W_NONE},
        {"pi_logratios/pi_logratios_no_img_vs_img_lose_distance", SVCO_W_NONE, SVCO_W_IL},
        {"pi_logratios/pi_logratios_img_lose_vs_no_img_distance", SVCO_L_IL, SVCO_L_NONE},
        {"pi_logratios/pi_logratios_no_img_vs_img_win_distance", SVCO_L_NONE, SVCO_L_IW}};
    for (int t = 0; t < 4; t++) {
        double want = 0;
        for (int e = 0; e < E; e++) want += fabs(pol[e * SVCO_ROWS + dist[t].a] - pol[e * SVCO_ROWS + dist[t].b]) / E;
        const int k = recipe_metric_index(r, dist[t].name);
        EXPECTF(k > 0, "no metric %s", dist[t].name);
        if (k > 0) EXPECT_NEAR(m[k], want, 1e-12);
    }
    static const char *const logps[SVCO_ROWS] = {"logps/policy_logps_img_chosen_res_chosen", "logps/policy_logps_img_rejected_res_chosen",
                                                 "logps/policy_logps_no_img_res_chosen", "logps/policy_logps_img_chosen_res_rejected",
                                                 "logps/policy_logps_img_rejected_res_rejected", "logps/policy_logps_no_img_res_rejected"};
    for (int row = 0; row < SVCO_ROWS; row++) {
        double want = 0;
        for (int e = 0; e < E; e++) want += pol[e * SVCO_ROWS + row] / E;
        const int k = recipe_metric_index(r, logps[row]);
        EXPECTF(k > 0, "no metric %s", logps[row]);
        if (k > 0) EXPECT_NEAR(m[k], want, 1e-12);
    }
    // VCO: trained on two terms, evaluated on four
    const Recipe *v = recipe_find("vco");
    train_config_preset(&c, v);
    EXPECT_NEAR(v->loss(&c.loss, E, pol, pol, count, d, m + 1), 2 * log(2.0), 1e-15);
    LossParams ev = c.loss;
    EXPECT(v->eval_params != NULL);
    if (v->eval_params) v->eval_params(&ev);
    EXPECT_NEAR(v->loss(&ev, E, pol, pol, count, d, m + 1), 4 * log(2.0), 1e-15);
    // end to end: the first step's val/loss (lr 1e-12: policy = reference to 1e-9) is 4 log 2, the loss 2 log 2,
    // and the distances reach metrics.jsonl
    char *out, *err, args[1024];
    char *o = path_join(test_tmpdir(), "vco_eval");
    snprintf(args, sizeof(args), "train --recipe vco --model " GQA " --data tests/fixtures/train/svco.jsonl --val "
             "tests/fixtures/train/svco.jsonl --out %s --steps 1 --batch 2 --lr 1e-12 --eval-every 1 --device cpu --quiet", o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    free(out); free(err);
    char *mpath = path_join(o, "metrics.jsonl"), *text = read_file(mpath, NULL);
    cJSON *j = cJSON_Parse(text);
    const cJSON *vl = cJSON_GetObjectItemCaseSensitive(j, "val/loss"), *tl = cJSON_GetObjectItemCaseSensitive(j, "loss");
    EXPECTF(cJSON_IsNumber(vl) && fabs(vl->valuedouble - 4 * log(2.0)) < 1e-6, "val/loss %g", cJSON_IsNumber(vl) ? vl->valuedouble : NAN);
    EXPECTF(cJSON_IsNumber(tl) && fabs(tl->valuedouble - 2 * log(2.0)) < 1e-6, "loss %g", cJSON_IsNumber(tl) ? tl->valuedouble : NAN);
    EXPECT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "pi_logratios/pi_logratios_no_img_vs_img_win_distance")));
    EXPECT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "val/logps/policy_logps_no_img_res_rejected")));
    cJSON_Delete(j);
    free(text); free(mpath); free(o);
}

// A flag that sets what a recipe does not read is refused, naming the recipe and the recipes that read it: TRL's
// loss types apply to dpo only (S-VCO's and mDPO's losses are their papers'), --beta to dpo and mdpo, --betas to
// svco and vco, the LLaVA flags not to clip; the ones a recipe reads pass.
TEST(recipes_refuse_flags_they_do_not_read) {
    const struct { const char *args, *want[3]; } refused[] = {
        {"--recipe svco --loss-type ipo", {"--loss-type sets DPO's loss", "--recipe svco does not read", "read it: dpo"}},
        {"--recipe mdpo --loss-type hinge", {"--loss-type", "--recipe mdpo does not read", "read it: dpo"}},
        {"--recipe vco --label-smoothing 0.1", {"--label-smoothing", "--recipe vco", "read it: dpo"}},
        {"--recipe svco --ipo", {"--ipo is --loss-type ipo", "--recipe svco does not read", ""}},
        {"--recipe sft --beta 0.2", {"--beta sets the beta", "--recipe sft", "read it: dpo, mdpo"}},
        {"--recipe dpo --betas 0.1,0.1,0,0", {"--betas", "--recipe dpo", "read it: svco, vco"}},
        {"--recipe svco --crop fixed", {"--crop", "--recipe svco", "read it: mdpo"}},
        {"--recipe sft --ref online", {"--ref sets the frozen reference", "--recipe sft", "read it: dpo, svco, vco, mdpo"}},
        {"--recipe clip --template llava_hf", {"--template", "--recipe clip", "sft, dpo"}},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char args[256], *out, *err;
        snprintf(args, sizeof(args), "train %s --model x --data y --out z", refused[i].args);
        EXPECTF(test_run_vlm(args, &out, &err) != 0, "accepted: %s", args);
        for (int k = 0; k < 3; k++) EXPECTF(strstr(err, refused[i].want[k]), "%s: message: %s", args, err);
        free(out); free(err);
    }
    // read: parsed, so the run gets as far as the missing model
    const char *read[] = {"--recipe dpo --loss-type hinge --beta 0.2", "--recipe mdpo --beta 0.2 --crop fixed --delta 0.1",
                          "--recipe vco --betas 0.1,0.1,0,0", "--recipe sft --template llava_hf"};
    for (size_t i = 0; i < sizeof(read) / sizeof(read[0]); i++) {
        char args[256], *out, *err;
        snprintf(args, sizeof(args), "train %s --model /nonexistent --data y --out %s/read%zu", read[i], test_tmpdir(), i);
        EXPECT(test_run_vlm(args, &out, &err) != 0);
        EXPECTF(!strstr(err, "does not read"), "%s: %s", read[i], err);
        free(out); free(err);
    }
}

// The presets are the official recipes' settings (issue 14): S-VCO and VCO on llava-hf's chat template with each
// MVC record's own system prompt and no cut; SeVa's DPO on vicuna_v1 with its "curious user" line, sigmoid DPO,
// LoRA dropout 0 (its trainer zeroes every dropout after wrapping); mDPO with a fresh crop in every pass and the
// reference run online, LoRA dropout 0; IPO on length-averaged log-probs (TRL >= 0.7.11), the summed form ipo_sum.
TEST(recipes_presets_are_the_official_settings) {
    TrainConfig c;
    const char *mvc[2] = {"svco", "vco"};
    for (int k = 0; k < 2; k++) {
        train_config_preset(&c, recipe_find(mvc[k]));
        EXPECTF(!strcmp(c.template_name, "llava_hf") && c.system == NULL && c.max_text_len == 0 && c.max_len == 0,
                "%s: template %s, system %s, cut %d/%d", mvc[k], c.template_name, c.system ? c.system : "(record's)", c.max_len, c.max_text_len);
    }
    train_config_preset(&c, recipe_find("dpo"));
    EXPECT(!strcmp(c.template_name, "vicuna_v1") && c.system == NULL && c.lora.dropout == 0);
    EXPECT(c.loss.dpo.n_terms == 0 || (c.loss.dpo.n_terms == 1 && c.loss.dpo.term[0] == DPO_SIGMOID));
    train_config_preset(&c, recipe_find("mdpo"));
    EXPECT(c.crop_fixed == 0 && c.ref_online == 1 && c.lora.dropout == 0);
    EXPECT(c.crop_scale[0] == 0.01 && c.crop_scale[1] == 0.2);
    train_config_preset(&c, recipe_find("sft"));
    EXPECT(c.lora.dropout == 0.05f);  // LLaVA-1.5's finetune_lora.sh, which keeps its dropout
    // "ipo" is TRL's averaged form: (h_c / n_c - h_r / n_r - 1 / (2 beta))^2
    DpoParams p = {.beta = 0.1};
    char err[128];
    EXPECT(dpo_loss_types_parse(&p, "ipo", err, sizeof(err)) == 0 && p.n_terms == 1 && p.term[0] == DPO_IPO);
    const double pc = -3, pr = -9, rc = -4, rr = -5;
    const int nc = 2, nr = 5;
    double dpc, dpr;
    DpoMetrics m;
    const double want = pow((pc - rc) / nc - (pr - rr) / nr - 5, 2);
    EXPECT_NEAR(dpo_loss(&p, 1, &pc, &pr, &rc, &rr, &nc, &nr, &dpc, &dpr, &m), want, 1e-12);
    EXPECT(dpo_loss_types_parse(&p, "ipo_sum", err, sizeof(err)) == 0 && p.term[0] == DPO_IPO_SUM);
    EXPECT_NEAR(dpo_loss(&p, 1, &pc, &pr, &rc, &rr, &nc, &nr, &dpc, &dpr, &m), pow((pc - rc) - (pr - rr) - 5, 2), 1e-12);
}

// --max-text-len on records given as ids: the image counts as one token however many it expands to, only response
// tokens are cut, and a prompt that does not fit is an error naming the flag.
TEST(recipes_max_text_len_on_id_records) {
    LlavaConfig cfg;
    llava_config_load(&cfg, GQA);  // its image token is 90
    EXPECT_INT_EQ(cfg.image_token_id, 90);
    PreprocessConfig pcfg = preprocess_config_clip(cfg.vision.image_size);
    char *data = test_write_tmp("mtl_ids.jsonl", "{\"image_w\": \"images/a.png\", \"image_l\": \"images/b.png\", \"prompt_ids\": "
                                                 "[1, 90, 5, 6, 7], \"chosen_ids\": [8, 9, 10, 11, 2], \"rejected_ids\": [12, 13, 2]}\n");
    TrainConfig c;
    train_config_preset(&c, recipe_find("svco"));
    c.images_dir = "tests/fixtures/models/llava_gqa";
    settings_set_from_command_line(&c, "--max-text-len", "8");
    TrainDataOptions opt = train_config_data_options(&c, NULL);
    TrainData td;
    train_data_load(&td, c.recipe, data, &cfg, &pcfg, &opt);
    const int P = cfg.image_tokens;
    EXPECT(P > 1);
    TrainExample ex0;
    train_data_example(&td, 0, &ex0);
    const TrainRow *w = &ex0.rows[SVCO_W_IW], *w0 = &ex0.rows[SVCO_W_NONE], *l = &ex0.rows[SVCO_L_IW];
    EXPECT_INT_EQ(w->n, 8 + P - 1);       // [1, image, 5, 6, 7, 8, 9, 10]: the response's last two cut
    EXPECT_INT_EQ(w->ids[w->n - 1], 10);
    EXPECT_INT_EQ(w0->n, 8);              // [1, 5, 6, 7, 8, 9, 10, 11]: one more response token without the image
    EXPECT_INT_EQ(w0->ids[7], 11);
    EXPECT_INT_EQ(l->n, 8 + P - 1);       // [1, image, 5, 6, 7, 12, 13, 2]: 8, not cut
    EXPECT_INT_EQ(l->ids[l->n - 1], 2);
    train_example_free(&ex0);
    train_data_free(&td);
    char *out, *err, args[1024];
    snprintf(args, sizeof(args), "train --recipe svco --model " GQA " --data %s --images tests/fixtures/models/llava_gqa --out %s/mtl "
             "--max-text-len 4 --steps 1 --device cpu --quiet", data, test_tmpdir());
    EXPECT(test_run_vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "does not fit in --max-text-len 4") && strstr(err, "with the image as one"), "message: %s", err);
    free(out); free(err); free(data);
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
             "--batch 2 --lr 1e-3 --device cpu", o);
    EXPECT(test_run_vlm(args, &out, &err) == 0);
    // the same table in OUT/settings.txt, and there alone with --quiet (the terminal keeps only what went wrong)
    char *sp = path_join(o, "settings.txt"), *table = read_file(sp, NULL);
    EXPECTF(strstr(table, "command line (preset 1e-6: S-VCO run_svco_example.sh") && strstr(table, "0.1,0.1,0.1,0.1"),
            "settings.txt: %s", table);
    free(table);
    char *oq = path_join(test_tmpdir(), "preset_print_quiet"), *out2, *err2, qargs[1100];
    snprintf(qargs, sizeof(qargs), "train --recipe svco --model " GQA " --data tests/fixtures/train/svco.jsonl --out %s --steps 1 "
             "--batch 2 --lr 1e-3 --device cpu --quiet", oq);
    EXPECT(test_run_vlm(qargs, &out2, &err2) == 0);
    EXPECTF(!strstr(err2, "run_svco_example.sh"), "--quiet printed the settings: %s", err2);
    char *sq = path_join(oq, "settings.txt"), *tq = read_file(sq, NULL);
    EXPECTF(strstr(tq, "command line (preset 1e-6: S-VCO run_svco_example.sh"), "settings.txt with --quiet: %s", tq);
    free(tq); free(sq); free(out2); free(err2); free(oq); free(sp);
    EXPECTF(strstr(err, "S-VCO run_svco_example.sh") && strstr(err, "0.95"), "no preset beta2 with its source: %s", err);
    EXPECTF(strstr(err, "command line (preset 1e-6: S-VCO run_svco_example.sh"), "the --lr override: %s", err);
    EXPECTF(strstr(err, "--betas") && strstr(err, "0.1,0.1,0.1,0.1"), "no betas: %s", err);
    EXPECTF(strstr(err, "llava_hf") && strstr(err, "S-VCO data_collator.py") && strstr(err, "--max-text-len"),
            "no template or cut with their sources: %s", err);
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
