// vlm sample: generation with a KV cache for every record of a JSONL file (model/generate.h).
//
// Records (JSON Lines): "image" (optional, relative to --images DIR or the JSONL's folder: a path or a list of
// paths, each filling the prompt's next image placeholder; TRL's "images": [paths] too) and either a text prompt, "prompt", "question", "text" (POPE's released files read as they
// are) or "query" (AMBER's) (CV-Bench's "prompt", which begins with its "question", is taken over it) (the first user turn of the chat template, followed by the generation prompt "ASSISTANT:"; an
// optional "system" replaces the template's system line; --prompt-suffix is appended to it; one "<image>" per
// image in place, or none: all in front) or "input_ids" (ids, the image token once per image or expanded). An optional "question_id" (any JSON value) is passed through.
// Output: one line per record and sample, in record order:
//   {"index": i, "sample": j, "question_id": q, "text": "...", "ids": [...], "n_tokens": n, "finish": f}
// plus "prompt_suffix": s when --prompt-suffix was given (so a result file says what was asked).
// with finish "eos" (the EOS token ended it; ids end with it, text does not show it), "stop" (a stop string
// appeared in the text; ids include the token that completed it, text is cut before it) or "length"
// (max_new_tokens). text is null when there is no tokenizer.
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/augment.h"
#include "../data/image.h"
#include "../data/preprocess.h"
#include "../data/records.h"
#include "../model/generate.h"
#include "../util/args.h"
#include "../util/common.h"
#include "../util/json_check.h"
#include "../util/strmap.h"
#include "../util/threads.h"
#include "commands.h"

// --preset NAME: a method's generation settings, each flag's value with its source; a flag given on the
// command line replaces the preset's value. SeVa generates both answers of its pairs (the chosen one on the
// original image, the rejected one on a diffusion-noised copy: add --augment diffusion:500) this way.
typedef struct {
    const char *flag, *value, *source;
} SamplePresetValue;
static const SamplePresetValue seva_preset[] = {
    {"--template", "vicuna_v1", "SeVa data/step2/generate_with_aug.py l.90: conv_mode llava_v1, vicuna_v1's layout "
                                "(SeparatorStyle.TWO, sep2 </s>; seva/llava/conversation.py l.335-345)"},
    {"--system", NULL, "conv_llava_v1's \"curious human\" line (seva/llava/conversation.py l.336-337); SeVa trains with "
                       "vicuna_v1's \"curious user\" (--version v1, l.252-254)"},
    {"--max-new-tokens", "512", "generate_with_aug.py l.159"},
    {"--temperature", "0", "generate_with_aug.py l.157: do_sample=False, greedy"},
    {NULL, NULL, NULL}};

static const SamplePresetValue *sample_preset(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "seva")) return seva_preset;
    fatal("vlm sample: --preset '%s': the only preset is seva", name);
}

// The preset's value of flag (the system line: LLaVA's conv_llava_v1's), else def.
static const char *preset_value(const SamplePresetValue *p, const char *flag, const char *def) {
    for (; p && p->flag; p++)
        if (!strcmp(p->flag, flag)) return !strcmp(flag, "--system") ? CHAT_LLAVA_V1_SYSTEM : p->value;
    return def;
}

static int argv_has(int argc, char **argv, const char *flag) {
    const size_t n = strlen(flag);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], flag, n) && (argv[i][n] == 0 || argv[i][n] == '=')) return 1;
    return 0;
}

static void usage(void) {
    printf("usage: vlm sample --model DIR --data FILE.jsonl [--device auto|cpu|cuda] [--batch N]\n"
           "                  [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--n N] [--seed S]\n"
           "                  [--stop STR]... [--eos ID] [--template NAME] [--tokenizer FILE] [--out FILE]\n"
           "                  [--augment diffusion:T|crop:LO,HI|flip|moco] [--augment-seed S] [--images DIR]\n"
           "                  [--prompt-suffix TEXT] [--system TEXT] [--preset seva]\n\n"
           "Generates a continuation of every record's prompt, with a KV cache. Greedy by default.\n\n"
           "  --model DIR         HF LLaVA directory: config.json, *.safetensors, preprocessor_config.json\n"
           "  --data FILE         JSON Lines: image (optional: a path or a list; or images: [paths]), prompt,\n"
           "                      question, text (POPE's files as released) or query (AMBER's) or input_ids,\n"
           "                      question_id (optional); CV-Bench's prompt (its question and the lettered choices)\n"
           "                      is taken over its question. Several images fill the prompt's \"<image>\"s in order\n"
           "                      (none written: all go in front), or input_ids' image tokens (once per image or expanded)\n"
           "  --images DIR        root of relative image paths (default: the data file's folder; POPE: val2014/)\n"
           "  --prompt-suffix S   appended to every text prompt, e.g. '\\nAnswer the question using a single word or\n"
           "                      phrase.' (LLaVA-1.5's POPE prompt; \\n, \\t and \\\\ are read as escapes); recorded\n"
           "                      as \"prompt_suffix\" on every output line\n"
           "  --device D          auto (default), cpu, cuda\n"
           "  --batch N           sequences generated together (default 8, rounded up to whole records of --n\n"
           "                      samples); a finished sequence's place goes to the next record at once\n"
           "  --max-new-tokens N  new tokens per sequence at most (default 512)\n"
           "  --temperature T     0 (default): greedy, the argmax with the lowest id on ties; > 0: sampling\n"
           "  --top-k K           keep the K most likely tokens (0, the default: off)\n"
           "  --top-p P           nucleus: the smallest set of most likely tokens with probability >= P (1: off)\n"
           "                      Order as in transformers: temperature, then top-k, then top-p.\n"
           "  --n N               samples per record (default 1), each with its own random stream\n"
           "  --seed S            random seed (default 0); sample j of record i draws from stream (S, i, j), so\n"
           "                      outputs do not depend on --batch\n"
           "  --stop STR          stop when the generated text contains STR (repeatable); the text is cut before it\n"
           "  --eos ID            end-of-sequence token (default: generation_config.json, config.json, else 2;\n"
           "                      -1: none)\n"
           "  --template T        chat template for prompt records: vicuna_v1 (default, LLaVA-1.5), llava_hf,\n"
           "                      llava_hf_image_last (the image after the question) or llava_interleave (the\n"
           "                      <|im_start|> turns of LLaVA-Interleave-Qwen)\n"
           "  --system TEXT       the system line of records without a \"system\" (default: the template's own; \"\": none)\n"
           "  --preset seva       SeVa's generation of its pairs' answers (data/step2/generate_with_aug.py): vicuna_v1\n"
           "                      with LLaVA's conv_llava_v1 system line (\"curious human\"; SeVa trains with the\n"
           "                      \"curious user\" one), greedy, 512 new tokens; printed at start with the sources; flags\n"
           "                      given replace its values (the rejected answers: add --augment diffusion:500)\n"
           "  --tokenizer FILE    tokenizer.model (SentencePiece) or tokenizer.json (byte-level BPE); default: DIR's,\n"
           "                      tokenizer.model first; without one, text records are refused and \"text\" is null\n"
           "  --out FILE          write the results here (atomically) instead of stdout\n"
           "  --augment A         generate from an augmented image instead of the original (SeVa's negatives:\n"
           "                      diffusion:500 or diffusion:800; mDPO's crop:0.01,0.2; flip; moco), applied to\n"
           "                      the normalized pixels; record i draws from stream (--augment-seed, i),\n"
           "                      its later images from streams of their own (default 0)\n");
}

// The model's end-of-sequence id: generation_config.json, then config.json (text_config, then top level).
// Both are untrusted: a broken file or an id outside the vocabulary is an error naming the file and value.
static int model_eos_id(const char *dir, int vocab) {
    const char *files[2] = {"generation_config.json", "config.json"};
    for (int f = 0; f < 2; f++) {
        char *p = path_join(dir, files[f]), err[512];
        size_t len;
        char *text = try_read_file(p, &len);
        if (!text) { free(p); continue; }
        cJSON *j = json_parse_document(text, len, p, err, sizeof(err));
        free(text);
        if (!j) fatal("%s", err);
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
        const cJSON *e = tc ? cJSON_GetObjectItemCaseSensitive(tc, "eos_token_id") : NULL;
        if (!e) e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
        if (cJSON_IsArray(e)) e = cJSON_GetArrayItem(e, 0);  // a list: the first (LLaVA-1.5 has one)
        long long id = -1;
        if (e && !cJSON_IsNull(e) && json_int(e, 0, vocab - 1, &id)) {
            char val[96];
            json_value_text(e, val, sizeof(val));
            fatal("%s: eos_token_id = %s: expected an integer from 0 to %d (the vocabulary)", p, val, vocab - 1);
        }
        cJSON_Delete(j);
        free(p);
        if (id >= 0) return (int)id;
    }
    return 2;  // LlamaConfig's default
}

typedef struct {
    const SampleRecordSet *rs;
    PreprocessConfig pcfg;
    int S;                       // the vision tower's image size
    const Tokenizer *tok;
    const char *prompt_suffix;   // --prompt-suffix, recorded on every line (NULL: none)
    AugSpec aug;                 // kind AUG_NONE: the images as they are
    uint64_t aug_seed;
    int *image_key;              // (records, max_images) index of each image among the distinct paths, -1 with --augment
    int max_images;              // the most images a record has (image_key's row length)
    int n_samples, n_total;      // samples per record, records x samples
    char **lines;                // (n_total) finished output lines not yet written
    int next_line;               // the first line not yet written
    int *left;                   // (records) samples still running
    int records_done;
    long tokens;
    FILE *out;                   // stdout, or NULL with --out
    char *buf;                   // --out: everything, written at the end
    size_t buf_len, buf_cap;
    double t0, last_progress;
} SampleRun;

static void on_pixels(void *ctx, int prompt, int k, float *out) {
    SampleRun *r = ctx;
    const SampleRecord *rec = &r->rs->r[prompt];
    char err[512];
    Image *im = image_load(rec->images[k], r->pcfg.alpha, err, sizeof(err));
    if (!im) fatal("%s:%d: %s", r->rs->path, rec->line, err);
    int h, w;
    float *px = preprocess_image(&r->pcfg, im, &h, &w);
    if (h != r->S || w != r->S)
        fatal("%s:%d: the preprocessor gives %dx%d pixels but the vision tower expects %dx%d (check preprocessor_config.json)",
              r->rs->path, rec->line, w, h, r->S, r->S);
    if (r->aug.kind != AUG_NONE) {  // a stream per record and image: the same noise whatever the batching
        AugRng rng;                  // (a record's first image: the stream of one-image records)
        augrng_seed(&rng, r->aug_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)rec->index + (uint64_t)k * 0xD1B54A32D192ED03ULL);
        augment_apply(&r->aug, px, r->S, r->S, &r->pcfg, &rng);
    }
    memcpy(out, px, sizeof(float) * 3 * r->S * r->S);
    free(px);
    image_free(im);
}

// Records that name the same image files share their pixels (and, in one prefill, their features), unless each
// record's images are augmented with their own noise.
static int on_image_key(void *ctx, int prompt, int k) {
    const SampleRun *r = ctx;
    return r->image_key[(size_t)prompt * r->max_images + k];
}

// Ids past the tokenizer's vocabulary (LLaVA's embedding has padding rows beyond it) decode to nothing.
static char *on_detok(void *ctx, const int *ids, int n) {
    SampleRun *r = ctx;
    int *keep = xmalloc(sizeof(int) * (n ? n : 1)), k = 0;
    for (int i = 0; i < n; i++) if (ids[i] >= 0 && ids[i] < r->tok->vocab_size) keep[k++] = ids[i];
    char *text = tokenizer_decode(r->tok, keep, k, 1, NULL);
    free(keep);
    return text;
}

static void progress(SampleRun *r, int final) {
    double now = now_seconds(), dt = now - r->t0;
    if (!final && now - r->last_progress < 0.25) return;
    r->last_progress = now;
    if (dt <= 0) dt = 1e-9;
    fprintf(stderr, "\rsample: %d/%d records, %.2f records/s, %.1f tokens/s", r->records_done, r->rs->n,
            r->records_done / dt, r->tokens / dt);
    if (final) fprintf(stderr, "\n");
}

// ", \"key\": <value as a JSON string>" (null for NULL), escaped by cJSON.
static void json_string_field(FILE *f, const char *key, const char *value) {
    if (!value) { fprintf(f, ", \"%s\": null", key); return; }
    cJSON *s = cJSON_CreateString(value);
    char *js = cJSON_PrintUnformatted(s);
    fprintf(f, ", \"%s\": %s", key, js);
    free(js);
    cJSON_Delete(s);
}

static void on_emit(void *ctx, const GenOutput *o) {
    SampleRun *r = ctx;
    const SampleRecord *rec = &r->rs->r[o->prompt];
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (!f) fatal("open_memstream failed");
    fprintf(f, "{\"index\": %d, \"sample\": %d", rec->index, o->sample);
    if (rec->question_id) fprintf(f, ", \"question_id\": %s", rec->question_id);
    if (r->prompt_suffix) json_string_field(f, "prompt_suffix", r->prompt_suffix);
    json_string_field(f, "text", o->text);
    fprintf(f, ", \"ids\": [");
    for (int i = 0; i < o->n; i++) fprintf(f, i ? ", %d" : "%d", o->ids[i]);
    fprintf(f, "], \"n_tokens\": %d, \"finish\": \"%s\"}\n", o->n, gen_finish_name(o->finish));
    fclose(f);
    r->lines[o->prompt * r->n_samples + o->sample] = line;
    r->tokens += o->n;
    if (--r->left[o->prompt] == 0) r->records_done++;
    // write every line whose predecessors are all written: the output is in record order
    while (r->next_line < r->n_total && r->lines[r->next_line]) {
        char *l = r->lines[r->next_line];
        size_t n = strlen(l);
        if (r->out) fwrite(l, 1, n, r->out);
        else {
            while (r->buf_len + n + 1 > r->buf_cap) r->buf = xrealloc(r->buf, r->buf_cap = r->buf_cap ? 2 * r->buf_cap : 1 << 16);
            memcpy(r->buf + r->buf_len, l, n);
            r->buf_len += n;
        }
        free(l);
        r->lines[r->next_line++] = NULL;
    }
    if (r->out) fflush(r->out);
    progress(r, 0);
}

// --prompt-suffix as typed in a shell: "\n", "\t" and "\\" become the characters (LLaVA's POPE suffix starts
// with a newline, which '\n...' in single quotes does not give). A fresh string.
static char *unescape(const char *s) {
    char *out = xmalloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (*s == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) { s++; *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : '\\'; }
        else *o++ = *s;
    }
    *o = 0;
    return out;
}

int cmd_sample(int argc, char **argv) {
    threads_adapt();  // starts watching the machine's load (util/threads.h)
    Args a = args_init("vlm sample", argc, argv);
    if (args_help(&a)) { usage(); return 0; }
    // --stop may be repeated: collect every value (arg_str below marks them all as used)
    const char **stop = xmalloc(sizeof(char *) * (argc + 1));
    int n_stop = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--stop") && i + 1 < argc) stop[n_stop++] = argv[++i];
        else if (!strncmp(argv[i], "--stop=", 7)) stop[n_stop++] = argv[i] + 7;
    }
    arg_str(&a, "--stop", NULL);
    const char *model_dir = arg_str(&a, "--model", NULL), *data = arg_str(&a, "--data", NULL);
    const char *device = arg_str(&a, "--device", "auto"), *out_path = arg_str(&a, "--out", NULL);
    const SamplePresetValue *preset = sample_preset(arg_str(&a, "--preset", NULL));
    const char *tok_path = arg_str(&a, "--tokenizer", NULL);
    const char *tmpl_name = arg_str(&a, "--template", preset_value(preset, "--template", "vicuna_v1"));
    const char *system = arg_str(&a, "--system", preset_value(preset, "--system", NULL));
    long batch = arg_int(&a, "--batch", 8), max_new = arg_int(&a, "--max-new-tokens", atol(preset_value(preset, "--max-new-tokens", "512")));
    long top_k = arg_int(&a, "--top-k", 0), n_samples = arg_int(&a, "--n", 1), seed = arg_int(&a, "--seed", 0);
    long eos = arg_int(&a, "--eos", -2), aug_seed = arg_int(&a, "--augment-seed", 0);
    const char *aug_spec = arg_str(&a, "--augment", NULL), *images_dir = arg_str(&a, "--images", NULL);
    const char *suffix_arg = arg_str(&a, "--prompt-suffix", NULL);
    char *prompt_suffix = suffix_arg ? unescape(suffix_arg) : NULL;
    double temperature = arg_float(&a, "--temperature", atof(preset_value(preset, "--temperature", "0"))), top_p = arg_float(&a, "--top-p", 1);
    args_finish(&a);
    for (const SamplePresetValue *p = preset; p && p->flag; p++) {  // the values this run uses, with their sources
        const char *v = preset_value(preset, p->flag, NULL);
        if (argv_has(argc, argv, p->flag)) fprintf(stderr, "sample: preset seva: %-16s command line (preset %s: %s)\n", p->flag, v, p->source);
        else fprintf(stderr, "sample: preset seva: %-16s %s  (%s)\n", p->flag, v, p->source);
    }
    if (!model_dir || !data) fatal("vlm sample: --model and --data are required (see --help)");
    if (batch < 1 || batch > 4096) fatal("vlm sample: --batch must be between 1 and 4096");
    if (max_new < 1 || max_new > 1 << 20) fatal("vlm sample: --max-new-tokens must be at least 1");
    if (!(temperature >= 0) || !isfinite(temperature)) fatal("vlm sample: --temperature must be 0 (greedy) or positive");
    if (top_k < 0) fatal("vlm sample: --top-k must be 0 (off) or positive");
    if (!(top_p > 0 && top_p <= 1)) fatal("vlm sample: --top-p must be in (0, 1]");
    if (n_samples < 1 || n_samples > 4096) fatal("vlm sample: --n must be between 1 and 4096");
    if (seed < 0) fatal("vlm sample: --seed must be non-negative");
    if (eos < -2) fatal("vlm sample: --eos must be a token id or -1 (none)");
    AugSpec aug = {AUG_NONE, 0, 0, 0};
    char aug_err[256];
    if (aug_spec && augment_spec_parse(aug_spec, &aug, aug_err, sizeof(aug_err))) fatal("vlm sample: --augment: %s", aug_err);
    if (aug_seed < 0) fatal("vlm sample: --augment-seed must be non-negative");
    for (int i = 0; i < n_stop; i++) if (!stop[i][0]) fatal("vlm sample: --stop needs a non-empty string");
    int tmpl = chat_template_from_name(tmpl_name);
    if (tmpl < 0) fatal("vlm sample: --template '%s': expected " CHAT_TEMPLATE_NAMES, tmpl_name);

    // the tokenizer: given, or the model's own when it has one
    char *tp = tok_path ? xstrdup(tok_path) : tokenizer_find(model_dir);
    if (tok_path && !file_exists(tp)) fatal("vlm sample: tokenizer %s not found", tp);
    Tokenizer *tok = tp ? tokenizer_load(tp) : NULL;
    free(tp);
    if (n_stop > 0 && !tok) fatal("vlm sample: --stop needs a tokenizer to decode the text (tokenizer.model or tokenizer.json in %s, or --tokenizer)", model_dir);

    LlavaConfig cfg;
    llava_config_load(&cfg, model_dir);
    SampleRecordSet rs;
    if (images_dir && !file_exists(images_dir)) fatal("vlm sample: --images %s: no such folder", images_dir);
    if (prompt_suffix && !tok) fatal("vlm sample: --prompt-suffix goes with text prompts, which need a tokenizer (tokenizer.model or tokenizer.json in %s, or --tokenizer)", model_dir);
    if (system && !tok) fatal("vlm sample: --system goes with text prompts, which need a tokenizer (tokenizer.model or tokenizer.json in %s, or --tokenizer)", model_dir);
    SampleReadOptions sopt = {.tmpl = (ChatTemplate)tmpl, .images_dir = images_dir, .prompt_suffix = prompt_suffix, .system = system};
    records_read_sample(&rs, data, &cfg, tok, &sopt);  // before the weights: bad records fail fast
    const Backend *be = backend_select(device);
    Llava m;
    llava_load(&m, be, model_dir, (LlavaTrainable){0, 0, 0});

    SamplerConfig sc = {(float)temperature, (int)top_k, (float)top_p};
    if (n_samples > 1 && sample_is_greedy(&sc)) fprintf(stderr, "vlm sample: greedy decoding: the %ld samples of a record will be identical\n", n_samples);
    // a record's samples are generated together: slots in whole records
    const int per = (int)n_samples, slots = (int)((batch + per - 1) / per) * per, prefill_rows = slots / per;
    if (rs.max_len + max_new > cfg.text.max_positions)
        fprintf(stderr, "vlm sample: warning: prompts of up to %d tokens plus %ld new tokens pass the model's %d positions "
                "(max_position_embeddings)\n", rs.max_len, max_new, cfg.text.max_positions);
    Generator g;
    const int max_images = rs.max_images > 1 ? rs.max_images : 1;
    gen_init(&g, &m, slots, rs.max_len, (int)max_new, prefill_rows, max_images);
    GenPrompt *prompts = xmalloc(sizeof(GenPrompt) * rs.n);
    for (int i = 0; i < rs.n; i++) prompts[i] = (GenPrompt){rs.r[i].ids, rs.r[i].n, rs.r[i].n_images};
    GenConfig gc = {sc, (int)max_new, (int)n_samples, (uint64_t)seed, eos == -2 ? model_eos_id(model_dir, cfg.text.vocab) : (int)eos, stop, n_stop};
    if (gc.eos_id >= cfg.text.vocab) fatal("vlm sample: --eos %d is outside the vocabulary (%d)", gc.eos_id, cfg.text.vocab);

    SampleRun run;
    memset(&run, 0, sizeof(run));
    run.rs = &rs;
    run.pcfg = records_tower_preprocess_config(model_dir, &cfg.vision);
    run.S = cfg.vision.image_size;
    run.tok = tok;
    run.prompt_suffix = prompt_suffix;
    run.aug = aug;
    run.aug_seed = (uint64_t)aug_seed;
    run.n_samples = (int)n_samples;
    run.n_total = rs.n * (int)n_samples;
    run.lines = xcalloc(run.n_total, sizeof(char *));
    run.left = xmalloc(sizeof(int) * rs.n);
    for (int i = 0; i < rs.n; i++) run.left[i] = (int)n_samples;
    run.out = out_path ? NULL : stdout;
    run.t0 = now_seconds();
    StrMap paths;
    strmap_init(&paths);
    run.max_images = max_images;
    run.image_key = xmalloc(sizeof(int) * (size_t)rs.n * max_images);
    for (int i = 0; i < rs.n; i++)
        for (int j = 0; j < rs.r[i].n_images; j++) {
            int *key = &run.image_key[(size_t)i * max_images + j];
            *key = -1;
            if (aug.kind != AUG_NONE) continue;
            if ((*key = strmap_get(&paths, rs.r[i].images[j])) < 0)
                strmap_put(&paths, rs.r[i].images[j], *key = paths.n);  // the next index
        }
    strmap_free(&paths);
    GenCallbacks cb = {on_pixels, tok ? on_detok : NULL, on_emit, &run, on_image_key};
    GenStats st;
    gen_run(&g, &gc, prompts, rs.n, &cb, &st);
    progress(&run, 1);
    fprintf(stderr, "sample: %ld prompt tokens in %ld prefills (%.2f s), %ld new tokens, %ld decode steps (%.2f s, %.1f tokens/s)\n",
            st.prompt_tokens, st.prefills, st.prefill_seconds, st.new_tokens, st.steps, st.decode_seconds,
            st.decode_seconds > 0 ? st.new_tokens / st.decode_seconds : 0.0);
    if (out_path) write_file_atomic(out_path, run.buf ? run.buf : "", run.buf_len);
    free(run.buf); free(run.lines); free(run.left); free(run.image_key); free(prompts); free(stop); free(prompt_suffix);
    gen_free(&g);
    records_free_sample(&rs);
    llava_free(&m);
    tokenizer_free(tok);
    return 0;
}
