// The files users bring (issue 14, "Users' files trip it"): TRL's "images" list, "question" for "prompt",
// POPE's released files in `vlm sample` (--images, --prompt-suffix), image-like keys nobody reads, unknown
// template names, --skip-bad on unreadable images, out-of-range training flags, and `vlm logprobs` text
// prompts without "<image>". Each is accepted as the anchors accept it, or refused naming file, line and key.
#include <stdlib.h>
#include <string.h>

#include "../data/chat.h"
#include "../data/datasets.h"
#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"
#define TOKM "tests/fixtures/models/llava_tok"

// A fresh folder NAME in the test's temporary directory with the GQA fixture images in NAME/images.
static char *fresh_dir(const char *name) { return test_image_dir(name); }

static char *write_in(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    write_file_atomic(p, text, strlen(text));
    return p;
}

// DPO records in the ids form, with the image given by `image` (a JSON fragment such as "\"image\": \"x\"").
static char *dpo_records(const char *dir, const char *name, const char *const *images, int n) {
    char text[8192];
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += snprintf(text + len, sizeof(text) - len,
                        "{%s, \"prompt_ids\": [1, 5, 90, %d, 7], \"chosen_ids\": [11, %d, 2], \"rejected_ids\": [20, 21, %d, 2]}\n",
                        images[i], 8 + i, 12 + i, 30 + i);
    return write_in(dir, name, text);
}

// test_run_vlm; out or err may be NULL (discarded).
static int vlm(const char *args, char **out, char **err) {
    char *dropped_out = NULL, *dropped_err = NULL;
    int rc = test_run_vlm(args, out ? out : &dropped_out, err ? err : &dropped_err);
    free(dropped_out);
    free(dropped_err);
    return rc;
}

// The last "loss" of a metrics log.
static double last_loss(const char *dir) {
    char *log = path_join(dir, "metrics.jsonl"), *text = read_file(log, NULL), *p = text, *q;
    double x = -1;
    while ((q = strstr(p, "\"loss\":"))) { x = atof(q + 7); p = q + 7; }
    free(text); free(log);
    return x;
}

// Runs `vlm ARGS` (a training into DIR/runK), expects success, and returns its last logged loss.
static double train_last_loss(const char *args, const char *dir, int k) {
    char *err, run[600];
    int rc = vlm(args, NULL, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    free(err);
    snprintf(run, sizeof(run), "%s/run%d", dir, k);
    return last_loss(run);
}

// TRL's "images": [path] is the record's image: the run equals the one with "image": path (before, the key was
// ignored and DPO trained text-only, even on a file that does not exist).
TEST(user_files_trl_images_key) {
    char *dir = fresh_dir("trl"), args[2048], *err;
    const char *one[3] = {"\"image\": \"images/a.png\"", "\"image\": \"images/b.png\"", "\"image\": \"images/a.png\""};
    const char *trl[3] = {"\"images\": [\"images/a.png\"]", "\"images\": [\"images/b.png\"]", "\"images\": [\"images/a.png\"]"};
    const char *missing[1] = {"\"images\": [\"images/missing.png\"]"};
    const char *stray[1] = {"\"picture\": \"images/a.png\""};
    char *d1 = dpo_records(dir, "one.jsonl", one, 3), *d2 = dpo_records(dir, "trl.jsonl", trl, 3);
    char *d3 = dpo_records(dir, "missing.jsonl", missing, 1), *d4 = dpo_records(dir, "stray.jsonl", stray, 1);
    const char *common = "--recipe dpo --model " GQA " --steps 3 --lr 1e-2 --warmup-steps 0 --device cpu --quiet";
    double loss[2];
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "train %s --data %s --out %s/run%d", common, k ? d2 : d1, dir, k);
        loss[k] = train_last_loss(args, dir, k);
    }
    EXPECTF(loss[0] > 0 && loss[0] == loss[1], "\"image\" run: loss %.9g; \"images\" run: %.9g", loss[0], loss[1]);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/run_missing", common, d3, dir);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "missing.jsonl:1") && strstr(err, "missing.png"), "message: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train %s --data %s --out %s/run_stray", common, d4, dir);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "stray.jsonl:1") && strstr(err, "\"picture\" looks like an image"), "message: %s", err);
    free(err);
    // the same keys in `vlm logprobs` and `vlm sample` records
    char *lp = write_in(dir, "lp.jsonl", "{\"images\": [\"images/a.png\"], \"input_ids\": [1, 90, 5, 6, 2], \"n_response\": 2}\n"
                                         "{\"image\": \"images/a.png\", \"input_ids\": [1, 90, 5, 6, 2], \"n_response\": 2}\n");
    char *lp_out = NULL;
    snprintf(args, sizeof(args), "logprobs --model " GQA " --data %s --device cpu", lp);
    int lp_rc = vlm(args, &lp_out, &err);
    EXPECTF(lp_rc == 0, "exit %d: %s", lp_rc, err);
    const char *a = strstr(lp_out, "\"logprob\":"), *b = a ? strstr(a + 1, "\"logprob\":") : NULL;
    EXPECTF(a && b && atof(a + 10) == atof(b + 10), "output: %s", lp_out);
    free(lp_out); free(err);
    char *sp = write_in(dir, "sp.jsonl", "{\"input_ids\": [1, 90, 5], \"img_path\": \"images/a.png\"}\n");
    snprintf(args, sizeof(args), "sample --model " GQA " --data %s --device cpu --max-new-tokens 2", sp);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "sp.jsonl:1") && strstr(err, "\"img_path\" looks like an image"), "message: %s", err);
    free(err);
    free(lp); free(sp); free(d1); free(d2); free(d3); free(d4); free(dir);
}

// `vlm data pack --kind KIND` of a file holding TEXT fails, its message naming WHERE and WHAT.
static void pack_fails(const char *dir, const char *name, const char *text, const char *kind, const char *where,
                       const char *what) {
    char *in = test_write_tmp(name, text), args[1024], *err;
    snprintf(args, sizeof(args), "data pack --input %s --kind %s --out %s/%s.shard", in, kind, dir, kind);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, where) && strstr(err, what), "message: %s", err);
    free(err);
    free(in);
}

// The preference reader behind `vlm data pack`: "images" and "question" read, an unread image key refused.
TEST(user_files_pref_reader_keys) {
    char *path = test_write_tmp("uf_pref.jsonl",
        "{\"images\": [\"img/1.png\"], \"question\": \"What is it?\", \"chosen\": \"A dog.\", \"rejected\": \"A cat.\"}\n");
    Dataset ds;
    dataset_read_pref(&ds, path, NULL);
    EXPECT_INT_EQ(ds.n, 1);
    char *want = path_join(test_tmpdir(), "img/1.png");
    EXPECTF(ds.pref[0].n_images == 1 && !strcmp(ds.pref[0].images[0], want), "image %s", ds.pref[0].n_images ? ds.pref[0].images[0] : "(none)");
    EXPECTF(ds.pref[0].prompt && !strcmp(ds.pref[0].prompt, "What is it?"), "prompt %s", ds.pref[0].prompt ? ds.pref[0].prompt : "(none)");
    dataset_free(&ds);
    free(want);
    char *dir = path_join(test_tmpdir(), "uf_pack");
    mkdir_p(dir);  // the shards could be written: only the records can fail
    pack_fails(dir, "uf_pref_bad.jsonl", "{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\", \"photo\": \"x.jpg\"}\n", "pref",
               "uf_pref_bad.jsonl:1", "\"photo\"");
    // the conversation and POPE readers too
    pack_fails(dir, "uf_conv.json", "[{\"id\": \"1\", \"img\": \"x.jpg\", \"conversations\": "
               "[{\"from\": \"human\", \"value\": \"Hi?\"}, {\"from\": \"gpt\", \"value\": \"Hello.\"}]}]\n", "llava",
               "uf_conv.json: record 0", "\"img\" looks like an image");
    pack_fails(dir, "uf_pope.json", "{\"question_id\": 1, \"image\": \"a.jpg\", \"text\": \"Is there a cat?\", "
               "\"label\": \"yes\", \"image_file\": \"b.jpg\"}\n", "pope", "uf_pope.json:1", "\"image_file\" looks like an image");
    free(dir); free(path);
}

// "question" (VQA files) and "text" (POPE) stand for "prompt"; POPE's released lines run as they are with
// --images and --prompt-suffix, which every output line records.
TEST(user_files_pope_in_sample) {
    char *dir = path_join(test_tmpdir(), "pope"), args[4096], *out[3], *err, cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/q", dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    char *imgs = realpath(TOKM "/images", NULL);
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"question_id\": 7, \"image\": \"%s/c.png\", \"prompt\": \"Is there a circle in the image?\\nAnswer with one word.\"}\n", imgs);
    char *ref = write_in(dir, "ref.jsonl", text);
    char *pope = write_in(dir, "q/pope.json", "{\"question_id\": 7, \"image\": \"c.png\", \"text\": \"Is there a circle in the image?\", \"label\": \"yes\"}\n");
    char *vqa = write_in(dir, "q/vqa.jsonl", "{\"question_id\": 7, \"image\": \"c.png\", \"question\": \"Is there a circle in the image?\"}\n");
    const char *tail = "--device cpu --max-new-tokens 4";
    snprintf(args, sizeof(args), "sample --model " TOKM " --data %s --tokenizer %s/tokenizers/llama2_tokenizer.model %s", ref,
             test_shared_data(), tail);
    int rc = vlm(args, &out[0], &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    free(err);
    for (int k = 1; k < 3; k++) {
        snprintf(args, sizeof(args), "sample --model " TOKM " --data %s --tokenizer %s/tokenizers/llama2_tokenizer.model %s "
                 "--images %s --prompt-suffix '%sAnswer with one word.'", k == 1 ? pope : vqa, test_shared_data(), tail, imgs,
                 k == 1 ? "\n" : "\\n");  // a newline, or the escape as typed in a shell
        rc = vlm(args, &out[k], &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        free(err);
        EXPECTF(strstr(out[k], "\"question_id\": 7") && strstr(out[k], "\"prompt_suffix\": \"\\nAnswer with one word.\""), "output: %s", out[k]);
        // the same tokens as the hand-made record: the same generation
        char *ids0 = strstr(out[0], "\"ids\":"), *idsk = strstr(out[k], "\"ids\":");
        EXPECTF(ids0 && idsk && !strcmp(ids0, idsk), "hand-made: %s\nas released: %s", out[0], out[k]);
    }
    // vlm eval pope takes the suffix from the answers, and refuses a different one
    char *answers = write_in(dir, "answers.jsonl", out[1]);
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s", pope, answers);
    char *eval_out;
    rc = vlm(args, &eval_out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(eval_out, "prompt suffix \"\nAnswer with one word.\""), "output: %s", eval_out);
    free(eval_out); free(err);
    snprintf(args, sizeof(args), "eval pope --questions %s --answers %s --suffix ' Answer yes or no.'", pope, answers);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "answers.jsonl was generated with the prompt suffix"), "message: %s", err);
    free(err); free(answers);
    // AMBER's query files ("query") and CV-Bench's records (a "prompt" that begins with the "question") as released
    char *amber = write_in(dir, "q/amber.json", "[{\"id\": 1005, \"image\": \"c.png\", \"query\": \"Is there a circle in the image?\"}]");
    char *cvb = write_in(dir, "q/cvbench.jsonl", "{\"idx\": 0, \"image\": \"c.png\", \"question\": \"Is there a circle in the image?\", "
                         "\"prompt\": \"Is there a circle in the image?\\nAnswer with one word.\", \"choices\": [\"yes\", \"no\"]}\n");
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "sample --model " TOKM " --data %s --tokenizer %s/tokenizers/llama2_tokenizer.model %s "
                 "--images %s%s", k ? cvb : amber, test_shared_data(), tail, imgs, k ? "" : " --prompt-suffix '\\nAnswer with one word.'");
        char *o;
        rc = vlm(args, &o, &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        free(err);
        char *ids0 = strstr(out[0], "\"ids\":"), *idsk = rc == 0 ? strstr(o, "\"ids\":") : NULL;
        EXPECTF(ids0 && idsk && !strncmp(ids0, idsk, strcspn(ids0, "]")), "hand-made: %s\nas released: %s", out[0], rc == 0 ? o : "");
        free(o);
    }
    free(amber); free(cvb);
    // vlm data synth's POPE files carry the question as "text" and "prompt": the same text is one prompt,
    // different texts are a guess nobody should make
    char *two = write_in(dir, "q/two.jsonl", "{\"image\": \"c.png\", \"text\": \"Is there a circle?\", \"prompt\": \"Is there a square?\"}\n");
    snprintf(args, sizeof(args), "sample --model " TOKM " --data %s --tokenizer %s/tokenizers/llama2_tokenizer.model %s --images %s", two,
             test_shared_data(), tail, imgs);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "two.jsonl:1: both \"prompt\" and \"text\", with different texts"), "message: %s", err);
    free(err);
    free(two);
    // without --images the relative name is looked up next to the file, and the message says what to give
    snprintf(args, sizeof(args), "sample --model " TOKM " --data %s --tokenizer %s/tokenizers/llama2_tokenizer.model %s", pope,
             test_shared_data(), tail);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "pope.json:1") && strstr(err, "--images DIR"), "message: %s", err);
    free(err);
    for (int k = 0; k < 3; k++) free(out[k]);
    free(imgs); free(ref); free(pope); free(vqa); free(dir);
}

// `vlm logprobs`: --images, "question", and a text prompt without "<image>" placed as the chat templates do.
TEST(user_files_logprobs_places_image) {
    char *dir = path_join(test_tmpdir(), "lp_place"), args[2048], *out[2], *err, cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    char *imgs = realpath(TOKM "/images", NULL);
    // the fixture's first record, with "<image>" where vicuna_v1 and llava_hf put it
    char *with = write_in(dir, "with.jsonl",
        "{\"prompt\": \"USER: <image>\\nWhat color is the  circle? ASSISTANT:\", \"response\": \"It is red.\", \"image\": \"c.png\"}\n"
        "{\"prompt\": \"<image>\\nWhat color is the  circle?\", \"response\": \"It is red.\", \"image\": \"c.png\"}\n");
    char *without = write_in(dir, "without.jsonl",
        "{\"prompt\": \"USER: What color is the  circle? ASSISTANT:\", \"response\": \"It is red.\", \"image\": \"c.png\"}\n"
        "{\"question\": \"What color is the  circle?\", \"response\": \"It is red.\", \"image\": \"c.png\"}\n");
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "logprobs --model " TOKM " --data %s --images %s --device cpu --tokenizer %s/tokenizers/llama2_tokenizer.model",
                 k ? without : with, imgs, test_shared_data());
        int rc = vlm(args, &out[k], &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        if (k == 1) EXPECTF(strstr(err, "without.jsonl:1: the prompt has no \"<image>\": placed"), "stderr: %s", err);
        free(err);
    }
    EXPECTF(!strcmp(out[0], out[1]) && strstr(out[0], "\"index\": 1"), "with <image>:\n%swithout:\n%s", out[0], out[1]);
    free(out[0]); free(out[1]); free(imgs); free(with); free(without); free(dir);
}

// Template names other commands do not render are refused everywhere a template is chosen.
TEST(user_files_unknown_template) {
    char *err;
    EXPECT(vlm("sample --model " GQA " --data " GQA "/generate_records.jsonl --device cpu --template chatml", NULL, &err) != 0);
    EXPECTF(strstr(err, "--template 'chatml': expected " CHAT_TEMPLATE_NAMES), "message: %s", err);
    free(err);
    EXPECT(vlm("train --recipe sft --model " GQA " --data x.jsonl --out x --template chatml", NULL, &err) != 0);
    EXPECTF(strstr(err, "--template 'chatml'"), "message: %s", err);
    free(err);
}

// --skip-bad skips records whose image is missing or unreadable, and counts them; without it the first one
// stops the run naming the record.
TEST(user_files_skip_bad_images) {
    char *dir = fresh_dir("skip_img"), args[2048], *err;
    char *junk = path_join(dir, "images/corrupt.png");
    write_file_atomic(junk, "not a png at all", 16);
    // a sound header over a body cut short: the load's header check passes it, decoding does not
    char *good = path_join(dir, "images/a.png"), *cut = path_join(dir, "images/cut.png");
    size_t len;
    char *bytes = read_file(good, &len);
    write_file_atomic(cut, bytes, len / 2);
    free(bytes); free(good); free(cut);
    const char *recs[5] = {"\"image\": \"images/a.png\"", "\"image\": \"images/missing.png\"", "\"image\": \"images/corrupt.png\"",
                           "\"image\": \"images/b.png\"", "\"image\": \"images/cut.png\""};
    char *data = dpo_records(dir, "data.jsonl", recs, 5);
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/run --steps 2 --device cpu --quiet", data, dir);
    EXPECT(vlm(args, NULL, &err) != 0);
    EXPECTF(strstr(err, "data.jsonl:2") && strstr(err, "missing.png"), "message: %s", err);
    free(err);
    snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/run2 --steps 2 --device cpu --quiet --skip-bad", data, dir);
    int rc = vlm(args, NULL, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(err, "data.jsonl:2") && strstr(err, "data.jsonl:3") && strstr(err, "data.jsonl:5") && strstr(err, "3 records skipped"),
            "stderr: %s", err);
    free(err); free(junk); free(data); free(dir);
}

// Out-of-range training flags die naming the flag and the value (before, e.g. --lr -1 trained uphill).
TEST(user_files_train_flag_ranges) {
    char *dir = fresh_dir("ranges"), args[2048], *err;
    const char *recs[2] = {"\"image\": \"images/a.png\"", "\"image\": \"images/b.png\""};
    char *data = dpo_records(dir, "data.jsonl", recs, 2);
    static const struct { const char *flags, *msg; } cases[] = {
        {"--lr -1", "--lr -1: must be a positive number"},
        {"--lr nan", "--lr nan: must be a positive number"},
        {"--warmup-ratio 2", "--warmup-ratio 2: must be in [0, 1]"},
        {"--epochs 0", "--epochs 0: must be a positive number"},
        {"--warmup-steps -5", "--warmup-steps -5: must be 0 or positive"},
        {"--beta2 1", "--beta2 1: must be in [0, 1)"},
        {"--beta 0", "--beta 0: must be a positive number"},
        {"--weight-decay -0.1", "--weight-decay -0.1: must be 0 or positive"},
        {"--label-smoothing 0.7", "--label-smoothing 0.7: must be in [0, 0.5]"},
        {"--lora-r 4 --lora-dropout 1", "--lora-dropout 1: must be in [0, 1)"},
        {"--log-every 0", "--log-every 0: must be at least 1"},
        {"--seed -3", "--seed -3: must be 0 or positive"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(args, sizeof(args), "train --recipe dpo --model " GQA " --data %s --out %s/run%zu --steps 1 --device cpu --quiet %s",
                 data, dir, i, cases[i].flags);
        EXPECTF(vlm(args, NULL, &err) != 0, "%s: accepted", cases[i].flags);
        EXPECTF(strstr(err, cases[i].msg) != NULL, "%s: message: %s", cases[i].flags, err);
        free(err);
    }
    free(data); free(dir);
}

// `vlm data seva` reads the question files `vlm sample` reads ("question", POPE's "text", TRL's "images") and
// writes pairs with "prompt" and "image", as `vlm train` reads them.
TEST(user_files_seva_question_keys) {
    char *q = test_write_tmp("uf_seva_q.jsonl", "{\"images\": [\"a.png\"], \"question\": \"What shape?\"}\n"
                                                "{\"image\": \"b.png\", \"text\": \"What color?\"}\n");
    char *a = test_write_tmp("uf_seva_a.jsonl", "{\"index\": 0, \"text\": \"A circle.\"}\n{\"index\": 1, \"text\": \"Red.\"}\n");
    char *b = test_write_tmp("uf_seva_b.jsonl", "{\"index\": 0, \"text\": \"A square.\"}\n{\"index\": 1, \"text\": \"Blue.\"}\n");
    char args[2048], *out, *err;
    snprintf(args, sizeof(args), "data seva --questions %s --chosen %s --rejected %s", q, a, b);
    int rc = vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    EXPECTF(strstr(out, "\"image\":\"a.png\",") && strstr(out, "\"prompt\":\"What shape?\"") && strstr(out, "\"image\":\"b.png\",")
            && strstr(out, "\"prompt\":\"What color?\"") && !strstr(out, "\"images\""), "output: %s", out);
    free(out); free(err);
    char *bad = test_write_tmp("uf_seva_bad.jsonl", "{\"prompt\": \"What?\", \"img\": \"a.png\"}\n");
    snprintf(args, sizeof(args), "data seva --questions %s --chosen %s --rejected %s", bad, a, b);
    EXPECT(vlm(args, &out, &err) != 0);
    EXPECTF(strstr(err, "uf_seva_bad.jsonl:1") && strstr(err, "\"img\" looks like an image"), "message: %s", err);
    free(out); free(err); free(bad); free(q); free(a); free(b);
}

// `vlm train` text records in TRL's shape ("images": [path], "question") train exactly as "image" + "prompt".
TEST(user_files_train_question_and_images) {
    char *dir = path_join(test_tmpdir(), "trl_text"), cmd[1024], args[2048];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp -r " TOKM "/images %s/", dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("setup");
    char *plain = write_in(dir, "plain.jsonl",
        "{\"image\": \"images/c.png\", \"prompt\": \"What color is the circle?\", \"chosen\": \"It is red.\", \"rejected\": \"It is blue.\"}\n"
        "{\"prompt\": \"Is there a dog?\", \"chosen\": \"No.\", \"rejected\": \"Yes, a big dog.\"}\n");
    char *trl = write_in(dir, "trl.jsonl",
        "{\"images\": [\"images/c.png\"], \"question\": \"What color is the circle?\", \"chosen\": \"It is red.\", \"rejected\": \"It is blue.\"}\n"
        "{\"images\": [], \"question\": \"Is there a dog?\", \"chosen\": \"No.\", \"rejected\": \"Yes, a big dog.\"}\n");
    double loss[2];
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "train --recipe dpo --model " TOKM " --data %s --out %s/run%d --steps 2 --lr 1e-2 "
                 "--warmup-steps 0 --tokenizer %s/tokenizers/llama2_tokenizer.model --device cpu --quiet", k ? trl : plain, dir, k,
                 test_shared_data());
        loss[k] = train_last_loss(args, dir, k);
    }
    EXPECTF(loss[0] > 0 && loss[0] == loss[1], "image + prompt: loss %.9g; images + question: %.9g", loss[0], loss[1]);
    free(plain); free(trl); free(dir);
}
