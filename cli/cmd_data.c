// vlm data: dataset builders and tools, one subcommand each.
//   pack    a dataset file + its images -> a packed binary shard (data/shard.h)
//   bench   the shard loader's sustained throughput on a synthetic shard
//   synth   the synthetic world of the miniature study (data/synth.h): images, training and evaluation files
//   seva, clipdpo, mvc  the preference-data builders of the three methods (cli/cmd_data_prefs.c)
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../data/augment.h"
#include "../data/datasets.h"
#include "../data/image.h"
#include "../data/preprocess.h"
#include "../data/shard.h"
#include "../data/synth.h"
#include "../data/tokenizer_train.h"
#include "../data/world_tokenizer.h"
#include "../data/records.h"
#include "../data/tokenizer.h"
#include "../model/config.h"
#include "../train/data.h"
#include "../train/recipes.h"
#include "../util/jsonl.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

// ---- vlm data pack ---------------------------------------------------------------------------------

static const char *pack_help =
    "usage: vlm data pack --input FILE --kind llava|pref|mvc|pope [--images DIR] [--size N] [--pad]\n"
    "                     [--config preprocessor_config.json] [--out SHARD] [--skip-bad]\n"
    "\n"
    "Reads a dataset file and its images, runs every distinct image once through the geometric part of\n"
    "the CLIP pipeline (decode to RGB, [pad to square], resize the short side to N, center crop N x N)\n"
    "and writes a packed shard: uint8 pixels [n_images][N][N][3] plus per-record metadata and text\n"
    "(see data/shard.h). Normalization happens when the shard is loaded. Text is stored as UTF-8 strings;\n"
    "token ids come with tokenization, a later step. The shard is written to SHARD.tmp and renamed.\n"
    "\n"
    "  --input FILE   llava: LLaVA conversation JSON (array of {id, image, conversations})\n"
    "                 pref:  preference JSON Lines {image, prompt, chosen, rejected}\n"
    "                        (llava, pref: image is a path or a list, one <image> per image in the text or none;\n"
    "                        the shard keeps each record's images in order)\n"
    "                 mvc:   S-VCO MVC JSON (array of {system_prompt, instruction_prompt, chosen_images,\n"
    "                        rejected_images, chosen_response, rejected_response})\n"
    "                 pope:  POPE question file (JSON Lines {question_id, image, text, label})\n"
    "  --kind K       the format of --input\n"
    "  --images DIR   folder the image paths are relative to (default: the input file's folder)\n"
    "  --size N       image side in the shard (default 336, llava-1.5's tower; overrides --config's sizes)\n"
    "  --pad          LLaVA-1.5's pad-to-square with the mean colour before resizing\n"
    "  --config F     a model's preprocessor_config.json (resample, mean, std, ...; default CLIP's)\n"
    "  --out SHARD    output (default: the input's name with .shard.bin for its extension)\n"
    "  --skip-bad     report and count bad records and unreadable images instead of stopping\n";

// Distinct image paths, by open addressing on an FNV-1a hash; keys are borrowed from the dataset.
typedef struct {
    const char *path;
    int first_record;   // the first record that uses it, for messages
    int64_t index;      // shard image index; -1 before packing, -2 when it could not be read
    char *err;
} PackImage;

typedef struct {
    PackImage *v;
    int n, cap;
    int *table;         // (table_cap) index into v, -1 empty
    int table_cap;
} ImageSet;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void imageset_grow(ImageSet *set) {
    int cap = set->table_cap ? set->table_cap * 2 : 1024;
    int *t = xmalloc(sizeof(int) * (size_t)cap);
    for (int i = 0; i < cap; i++) t[i] = -1;
    for (int i = 0; i < set->n; i++) {
        uint64_t h = fnv1a(set->v[i].path) & (uint64_t)(cap - 1);
        while (t[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
        t[h] = i;
    }
    free(set->table);
    set->table = t;
    set->table_cap = cap;
}

// The id of path in the set, added (used first by record) when new.
static int imageset_add(ImageSet *set, const char *path, int record) {
    if (2 * (set->n + 1) > set->table_cap) imageset_grow(set);
    uint64_t mask = (uint64_t)(set->table_cap - 1), h = fnv1a(path) & mask;
    for (; set->table[h] >= 0; h = (h + 1) & mask)
        if (!strcmp(set->v[set->table[h]].path, path)) return set->table[h];
    if (set->n == set->cap) set->v = xrealloc(set->v, sizeof(PackImage) * (size_t)(set->cap = set->cap ? 2 * set->cap : 256));
    set->v[set->n] = (PackImage){path, record, -1, NULL};
    set->table[h] = set->n;
    return set->n++;
}

// A record's images (in shard order), text fields and kind-specific metadata.
typedef struct {
    const char *images[2];   // POPE's one image
    const char **image_list; // all images (points at images[] or an MVC's lists, gathered)
    int n_images, n_chosen_images;
    const char *fields[4];
    const char *const *field_list;
    int n_fields;
    uint32_t label;
    int64_t source_index;
} PackRecord;

static void pack_record(const Dataset *ds, int i, PackRecord *p, const char **scratch) {
    memset(p, 0, sizeof(*p));
    p->image_list = p->images;
    p->field_list = p->fields;
    switch (ds->kind) {
    case DATA_LLAVA: {
        const LlavaRecord *r = &ds->llava[i];
        p->image_list = (const char **)r->images;
        p->n_images = r->n_images;
        p->field_list = (const char *const *)r->turns;
        p->n_fields = r->n_turns;
        p->source_index = r->src.index;
        break;
    }
    case DATA_PREF: {
        const PrefRecord *r = &ds->pref[i];
        p->image_list = (const char **)r->images;
        p->n_images = r->n_images;
        p->fields[0] = r->prompt; p->fields[1] = r->chosen; p->fields[2] = r->rejected;
        p->n_fields = 3;
        p->source_index = r->src.index;
        break;
    }
    case DATA_MVC: {
        const MvcRecord *r = &ds->mvc[i];
        for (int k = 0; k < r->n_chosen_images; k++) scratch[p->n_images++] = r->chosen_images[k];
        for (int k = 0; k < r->n_rejected_images; k++) scratch[p->n_images++] = r->rejected_images[k];
        p->image_list = scratch;
        p->n_chosen_images = r->n_chosen_images;
        p->fields[0] = r->system_prompt; p->fields[1] = r->instruction_prompt;
        p->fields[2] = r->chosen_response; p->fields[3] = r->rejected_response;
        p->n_fields = 4;
        p->source_index = r->src.index;
        break;
    }
    case DATA_POPE: {
        const PopeRecord *r = &ds->pope[i];
        p->images[p->n_images++] = r->image;
        p->fields[0] = r->text;
        p->n_fields = 1;
        p->label = (uint32_t)r->label;
        p->source_index = r->question_id;
        break;
    }
    default: fatal("vlm data pack: unknown kind");
    }
}

static int max_images_per_record(const Dataset *ds) {
    int m = 1;
    for (int i = 0; i < ds->n; i++) {
        const int k = ds->kind == DATA_MVC ? ds->mvc[i].n_chosen_images + ds->mvc[i].n_rejected_images
                    : ds->kind == DATA_LLAVA ? ds->llava[i].n_images : ds->kind == DATA_PREF ? ds->pref[i].n_images : 1;
        if (k > m) m = k;
    }
    return m;
}

static char *default_out(const char *input) {
    const char *slash = strrchr(input, '/'), *dot = strrchr(input, '.');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - input) : strlen(input);
    char *out = xmalloc(stem + 16);
    memcpy(out, input, stem);
    strcpy(out + stem, ".shard.bin");
    return out;
}

static int data_pack(int argc, char **argv) {
    Args a = args_init("vlm data pack", argc, argv);
    if (args_help(&a)) {
        fputs(pack_help, stdout);
        return 0;
    }
    const char *input = arg_str(&a, "--input", NULL);
    const char *kind_name = arg_str(&a, "--kind", NULL);
    const char *images_dir = arg_str(&a, "--images", NULL);
    long size = arg_int(&a, "--size", -1);
    int pad = arg_flag(&a, "--pad");
    const char *config_path = arg_str(&a, "--config", NULL);
    const char *out_arg = arg_str(&a, "--out", NULL);
    int skip_bad = arg_flag(&a, "--skip-bad");
    args_finish(&a);
    if (!input) fatal("vlm data pack: --input is required (see vlm data pack --help)");
    if (!kind_name) fatal("vlm data pack: --kind is required: llava, pref, mvc or pope");
    DataKind kind = data_kind_parse(kind_name);
    if (kind == DATA_NONE) fatal("vlm data pack: --kind must be llava, pref, mvc or pope, got '%s'", kind_name);
    if (size != -1 && (size < 1 || size > 16384)) fatal("vlm data pack: --size %ld is outside 1..16384", size);

    PreprocessConfig cfg = preprocess_config_from_flags(config_path, size, pad);
    // A shard holds square S x S images: the pipeline must end in a square crop (any input size).
    int S = cfg.crop_height;
    if (!cfg.do_center_crop || cfg.crop_height != cfg.crop_width || S < 1)
        fatal("vlm data pack: %s: the preprocessing must end with a square center crop (got %s %dx%d)",
              config_path ? config_path : "config", cfg.do_center_crop ? "crop" : "no crop", cfg.crop_width, cfg.crop_height);
    char *out = out_arg ? xstrdup(out_arg) : default_out(input);

    double t0 = now_seconds();
    Dataset ds;
    DatasetOptions opt = {images_dir, skip_bad};
    dataset_read(&ds, kind, input, &opt);

    // Distinct images in order of first use: packed once each, whatever the number of records using them.
    ImageSet set = {0};
    int max_imgs = max_images_per_record(&ds);
    const char **scratch = xmalloc(sizeof(char *) * (size_t)max_imgs);
    int *rec_ids = xmalloc(sizeof(int) * (size_t)max_imgs);
    for (int i = 0; i < ds.n; i++) {
        PackRecord p;
        pack_record(&ds, i, &p, scratch);
        for (int k = 0; k < p.n_images; k++) imageset_add(&set, p.image_list[k], i);
    }

    ShardSpec spec = {S, SHARD_HAS_TEXT, &cfg, 0};
    ShardWriter *w = shard_writer_open(out, &spec);
    size_t img_bytes = (size_t)S * S * 3;
    enum { CHUNK = 32 };  // images decoded in parallel, then appended in order (the shard is deterministic)
    uint8_t *chunk = xmalloc(img_bytes * CHUNK);
    int n_failed = 0;
    for (int c0 = 0; c0 < set.n; c0 += CHUNK) {
        int cn = set.n - c0 < CHUNK ? set.n - c0 : CHUNK;
#pragma omp parallel for schedule(dynamic, 1)
        for (int k = 0; k < cn; k++) {
            PackImage *pi = &set.v[c0 + k];
            char err[512];
            Image *im = image_load(pi->path, cfg.alpha, err, sizeof(err));
            if (!im) { pi->err = xstrdup(err); continue; }
            if (preprocess_check_size(&cfg, im->width, im->height, pi->path, err, sizeof(err))) {
                pi->err = xstrdup(err);  // an error for this record (skipped with --skip-bad), not for the run
                image_free(im);
                continue;
            }
            Image *g = preprocess_geometry(&cfg, im);
            if (g->width != S || g->height != S) {
                snprintf(err, sizeof(err), "%s: preprocessed to %dx%d, expected %dx%d", pi->path, g->width, g->height, S, S);
                pi->err = xstrdup(err);
            } else memcpy(chunk + img_bytes * (size_t)k, g->data, img_bytes);
            image_free(g);
            image_free(im);
        }
        for (int k = 0; k < cn; k++) {
            PackImage *pi = &set.v[c0 + k];
            if (pi->err) {
                char where[1024];
                dataset_where(&ds, pi->first_record, where, sizeof(where));
                if (!skip_bad) {
                    shard_writer_abort(w);
                    fatal("%s: %s", where, pi->err);
                }
                fprintf(stderr, "vlm: warning: %s: %s\n", where, pi->err);
                pi->index = -2;
                n_failed++;
            } else pi->index = shard_writer_add_image(w, chunk + img_bytes * (size_t)k);
        }
        if (set.n > 2000 && (c0 / CHUNK) % 64 == 63) fprintf(stderr, "vlm data pack: %d / %d images\n", c0 + cn, set.n);
    }
    free(chunk);

    int n_written = 0, n_skipped = 0;
    uint32_t *refs = xmalloc(sizeof(uint32_t) * (size_t)max_imgs);
    for (int i = 0; i < ds.n; i++) {
        PackRecord p;
        pack_record(&ds, i, &p, scratch);
        int ok = 1;
        for (int k = 0; k < p.n_images; k++) {
            rec_ids[k] = imageset_add(&set, p.image_list[k], i);
            int64_t idx = set.v[rec_ids[k]].index;
            if (idx < 0) ok = 0;
            else refs[k] = (uint32_t)idx;
        }
        if (!ok) {  // only with --skip-bad: without it the unreadable image was fatal above
            char where[1024];
            fprintf(stderr, "vlm: warning: %s: an image could not be read, record skipped\n", dataset_where(&ds, i, where, sizeof(where)));
            n_skipped++;
            continue;
        }
        ShardRecordIn in = {.kind = (uint32_t)kind, .label = p.label, .n_chosen_images = (uint32_t)p.n_chosen_images,
                            .source_index = p.source_index, .images = refs, .n_images = p.n_images,
                            .fields = p.field_list, .n_fields = p.n_fields};
        shard_writer_add_record(w, &in);
        n_written++;
    }
    if (n_written == 0) {
        shard_writer_abort(w);
        fatal("%s: no record could be packed", input);
    }
    int n_images = set.n - n_failed;
    shard_writer_close(w);
    int n_bad = ds.n_bad + n_skipped;
    printf("%s: %d record%s, %d image%s (%dx%d%s) -> %s in %.1fs", input, n_written, n_written == 1 ? "" : "s", n_images,
           n_images == 1 ? "" : "s", S, S, cfg.do_pad ? ", padded" : "", out, now_seconds() - t0);
    if (n_bad) printf("; %d bad record%s skipped", n_bad, n_bad == 1 ? "" : "s");
    if (n_failed) printf(" (%d unreadable image%s)", n_failed, n_failed == 1 ? "" : "s");
    printf("\n");

    for (int i = 0; i < set.n; i++) free(set.v[i].err);
    free(set.v);
    free(set.table);
    free(scratch);
    free(rec_ids);
    free(refs);
    free(out);
    dataset_free(&ds);
    return 0;
}

// ---- vlm data bench --------------------------------------------------------------------------------

static const char *bench_help =
    "usage: vlm data bench [--records N] [--size S] [--batch B] [--workers W] [--epochs E] [--repeat R]\n"
    "                      [--pin] [--shard PATH] [--keep]\n"
    "       vlm data bench --data FILE --model DIR [--recipe R] [--batch B] [--workers W] [--images N]\n"
    "\n"
    "With --data: training's streaming loader on a real data set (JSONL, JSON array or shard) as `vlm train\n"
    "--model DIR` reads it: the load time, then W threads decode and preprocess the images of micro-batches of\n"
    "B examples in the seeded order while this thread takes them, until N images (default 2000); prints the\n"
    "images/s the loader sustains (what a training step needs is B images per step time).\n"
    "\n"
    "Writes a shard of N synthetic random S x S images (one per record), then measures the loader:\n"
    "W prefetch threads normalize uint8 pixels to float (3, S, S) while this thread consumes batches\n"
    "of B records, for E epochs; repeated R times (the median is reported). --pin keeps the whole process\n"
    "on one CPU. Defaults: 1000 records, 336 px, batch 16, 1 worker, 3 epochs, 3 repeats.\n";

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The training loader on a data set: load (index) time, then images/s through TrainStream (records tokenized and
// images made on its threads).
static int data_bench_train(const char *data, const char *model, const char *recipe_name, long batch, long workers, long images) {
    if (batch < 1 || workers < 0 || workers > 64 || images < 1) fatal("vlm data bench: bad arguments (see --help)");
    const Recipe *recipe = recipe_find(recipe_name);
    if (!recipe || recipe->model != MODEL_LLAVA) fatal("vlm data bench: --recipe %s: not a LLaVA recipe", recipe_name);
    LlavaConfig cfg;
    llava_config_load(&cfg, model);
    PreprocessConfig pcfg = records_tower_preprocess_config(model, &cfg.vision);
    char *tok = tokenizer_find(model);
    TrainDataOptions opt = {.tokenizer = tok, .crop_lo = 0.01, .crop_hi = 0.2};
    double t0 = now_seconds();
    TrainData d;
    train_data_load(&d, recipe, data, &cfg, &pcfg, &opt);
    const double t_load = now_seconds() - t0;
    printf("data: %d examples, %d distinct images, indexed (records read, image files found; rows are tokenized by the loader) in %.2f s\n", d.n, d.n_images, t_load);
    DataOrder order = {d.n, 0, 0, 1, xmalloc(sizeof(int) * d.n)};
    data_order_shuffle(&order);
    TrainStream *s = train_stream_open(&d, &order, (int)batch, (int)workers, 0);
    train_stream_next(s);  // the first batch: what a run waits for before its first step
    const double t_first = now_seconds() - t0;
    long done = 0;
    const double c0 = cpu_seconds();
    t0 = now_seconds();
    while (done < images) done += train_stream_next(s)->n_images;
    const double dt = now_seconds() - t0, dc = cpu_seconds() - c0;
    train_stream_close(s);
    printf("loader: %ld images of %dx%d in %.2f s with %ld workers: %.1f images/s (%.1f per CPU-second); first batch %.2f s "
           "after the start\n", done, d.image_size, d.image_size, dt, workers, done / dt, done / dc, t_first);
    free(order.perm);
    train_data_free(&d);
    free(tok);
    return 0;
}

static int data_bench(int argc, char **argv) {
    Args a = args_init("vlm data bench", argc, argv);
    const char *train_data = arg_str(&a, "--data", NULL);
    if (train_data) {
        const char *model = arg_str(&a, "--model", NULL), *recipe = arg_str(&a, "--recipe", "sft");
        long batch = arg_int(&a, "--batch", 4), workers = arg_int(&a, "--workers", 2), images = arg_int(&a, "--images", 2000);
        args_finish(&a);
        if (!model) fatal("vlm data bench: --data needs --model (the tower's image size and preprocessing, the tokenizer)");
        return data_bench_train(train_data, model, recipe, batch, workers, images);
    }
    if (args_help(&a)) {
        fputs(bench_help, stdout);
        return 0;
    }
    long n_records = arg_int(&a, "--records", 1000);
    long S = arg_int(&a, "--size", 336);
    long batch = arg_int(&a, "--batch", 16);
    long workers = arg_int(&a, "--workers", 1);
    long epochs = arg_int(&a, "--epochs", 3);
    long repeat = arg_int(&a, "--repeat", 3);
    int pin = arg_flag(&a, "--pin");
    const char *shard_arg = arg_str(&a, "--shard", NULL);
    int keep = arg_flag(&a, "--keep");
    args_finish(&a);
    if (n_records < 1 || S < 1 || S > 4096 || batch < 1 || workers < 0 || epochs < 1 || repeat < 1 || repeat > 100)
        fatal("vlm data bench: bad arguments (see --help)");
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "/tmp/vlm_bench_shard_%d.bin", (int)getpid());
    const char *path = shard_arg ? shard_arg : tmp;
    if (pin) {  // threads started later inherit the mask
        cpu_set_t set;
        CPU_ZERO(&set);
        int cpu = sched_getcpu();
        CPU_SET(cpu < 0 ? 0 : cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0) fatal("vlm data bench: cannot pin to one CPU");
    }

    // synthetic shard: random pixels, one image and one short text field per record
    double t0 = now_seconds();
    ShardSpec spec = {(int)S, SHARD_HAS_TEXT, NULL, 0};
    ShardWriter *w = shard_writer_open(path, &spec);
    size_t img_bytes = (size_t)S * S * 3;
    uint8_t *img = xmalloc(img_bytes + 8);
    AugRng rng;
    augrng_seed(&rng, 1234);
    for (long i = 0; i < n_records; i++) {
        for (size_t b = 0; b < img_bytes; b += 8) { uint64_t v = augrng_next(&rng); memcpy(img + b, &v, 8); }
        uint32_t idx = shard_writer_add_image(w, img);
        const char *fields[1] = {"Describe the image."};
        ShardRecordIn in = {.kind = DATA_LLAVA, .images = &idx, .n_images = 1, .fields = fields, .n_fields = 1,
                            .source_index = i};
        shard_writer_add_record(w, &in);
    }
    free(img);
    shard_writer_close(w);
    double t_write = now_seconds() - t0;

    Shard s;
    t0 = now_seconds();
    shard_open_or_die(&s, path);
    double t_open = now_seconds() - t0;
    double mb = (double)s.size / 1e6;
    printf("shard: %ld records of %ldx%ld px, %.0f MB; written in %.2fs, opened + CRC-checked in %.2fs (%.1f GB/s)\n",
           n_records, S, S, mb, t_write, t_open, mb / 1e3 / t_open);

    // the normalize kernel alone, on this thread
    ShardLut lut;
    shard_lut_init(&lut, s.h);
    float *px = xmalloc(sizeof(float) * img_bytes);  // (3, S, S)
    t0 = now_seconds();
    long n_norm = n_records < 500 ? n_records : 500;
    for (long i = 0; i < n_norm; i++) shard_normalize(&lut, shard_image(&s, (uint64_t)i), (int)S, px);
    double t_norm = now_seconds() - t0;
    printf("normalize only (this thread): %.0f images/s\n", n_norm / t_norm);
    free(px);

    double *rates = xmalloc(sizeof(double) * (size_t)repeat), *cpu_rates = xmalloc(sizeof(double) * (size_t)repeat);
    for (long rep = 0; rep < repeat; rep++) {
        ShardLoaderConfig lc = {(int)batch, 1, (int)workers, 0};
        ShardLoader *l = shard_loader_open(&s, &lc, (ShardPos){(uint64_t)rep, 0, 0});
        const ShardBatch *b = shard_loader_next(l);  // warm-up: first-touch of the ring buffers
        double sink = b->pixels[0];
        long target = epochs * n_records, images = 0;
        double c0 = cpu_seconds();
        t0 = now_seconds();
        while (images < target) {
            b = shard_loader_next(l);
            // consume: read one value per image plane so the pixels are really produced and used
            for (int k = 0; k < b->n_images; k++) sink += b->pixels[(size_t)k * 3 * S * S + (size_t)(k % 3) * S * S];
            images += b->n_images;
        }
        double dt = now_seconds() - t0, dc = cpu_seconds() - c0;
        shard_loader_close(l);
        rates[rep] = images / dt;
        cpu_rates[rep] = images / dc;
        printf("run %ld: %ld images in %.2fs: %.0f images/s (%.2f GB/s of float pixels), %.2f CPU s: %.0f images per CPU-second%s\n",
               rep + 1, images, dt, rates[rep], images * 12.0 * S * S / dt / 1e9, dc, cpu_rates[rep], sink == 12345.678 ? "!" : "");
    }
    qsort(rates, (size_t)repeat, sizeof(double), cmp_double);
    qsort(cpu_rates, (size_t)repeat, sizeof(double), cmp_double);
    printf("median: %.0f images/s (%ld worker%s, batch %ld, %ldx%ld px%s); %.0f images per CPU-second\n", rates[repeat / 2], workers,
           workers == 1 ? "" : "s", batch, S, S, pin ? ", pinned to one CPU" : "", cpu_rates[repeat / 2]);
    free(rates);
    free(cpu_rates);
    shard_close(&s);
    if (!keep && !shard_arg) unlink(path);
    return 0;
}

// ---- vlm data synth --------------------------------------------------------------------------------

static const char *synth_help =
    "usage: vlm data synth --out DIR [--seed S] [--train N] [--eval N] [--val N] [--pairs N] [--size PX]\n"
    "                      [--prior P] [--cooc P] [--hard P] [--faint-alpha A] [--faint-desaturate] [--qa K]\n"
    "                      [--exist-share P] [--unseen P] [--quiet]\n"
    "\n"
    "Generates the synthetic visual world of the miniature study (DESIGN.md section 5): scenes of 1-4 shapes\n"
    "(circle, square, triangle, star, diamond, cross, hexagon) in 8 colours and 3 sizes on a 3x3 grid over a\n"
    "textured background, rendered anti-aliased. Training scenes carry language priors: each shape takes its\n"
    "typical colour with probability P and shapes co-occur with a partner; held-out scenes are unbiased, half\n"
    "of them atypical (no object in its typical colour). The difficulty knob: in every split an object is\n"
    "faint (drawn at opacity A over the background: its colour hard to see) with probability --hard; held-out\n"
    "questions say whether they are about a faint object (\"difficulty\": \"hard\") or not (\"easy\").\n"
    "Deterministic: the same flags give the same bytes.\n"
    "\n"
    "  --out DIR     output folder (created); files are written to NAME.tmp and renamed\n"
    "  --seed S      random seed (default 1)\n"
    "  --train N     training scenes (default 200)\n"
    "  --eval N      held-out (test) scenes, and as many MMVP pairs (default 50)\n"
    "  --val N       validation scenes, drawn as the held-out ones from their own streams, for choosing\n"
    "                hyper-parameters without looking at the test files (default 0: none)\n"
    "  --pairs N     minimal-contrast pairs for S-VCO (default 100)\n"
    "  --size PX     image side in pixels, 32..4096 (default 96; objects are 21-29%% of the side)\n"
    "  --prior P     probability of a shape's typical colour in training scenes (default 0.8)\n"
    "  --cooc P      probability that a later object is an earlier one's partner shape (default 0.7)\n"
    "  --hard P      probability that an object is faint, in every split (default 0)\n"
    "  --faint-alpha A   opacity of a faint object, 0..1 (default 0.35)\n"
    "  --faint-desaturate  faint objects keep their opacity and lose colour instead (A of it left, the rest\n"
    "                its grey): the shape plain, the hue not\n"
    "  --unseen P    probability that a partner the co-occurrence prior adds to a training scene is hidden:\n"
    "                named in its SFT caption and answers but not drawn (CLIP's captions leave it out), as text\n"
    "                written from context rather than the pixels; the co-occurrence prior is then what a model\n"
    "                learns where the image cannot refute it, POPE's adversarial hallucination (default 0)\n"
    "  --qa K        SFT questions per training scene besides its caption (default 3)\n"
    "  --exist-share P   the fraction of those that are existence questions (default 0.2, the five types\n"
    "                evenly); a small decoder learns existence only when it sees many (notes/results/README.md)\n"
    "  --quiet       no progress or summary lines\n"
    "\n"
    "Writes into DIR (image paths in the records are relative to DIR):\n"
    "  images/{train,eval,val,pairs,mmvp}/*.png\n"
    "  clip.jsonl            {image, caption} per training scene      (vlm train --recipe clip)\n"
    "  sft.jsonl             {image, prompt, response, type}: captions and QA (existence, colour, count,\n"
    "                        position, left/right), a fifth in the two-option form \"Q (a) X (b) Y\" -> \"(a) X\"\n"
    "                                                                 (vlm train --recipe sft)\n"
    "  mvc.json              S-VCO MVC records: two images differing in one thing (colour, shape, an object\n"
    "                        removed, position, count, left-right mirror), the question whose answer differs,\n"
    "                        the chosen side random                   (vlm train --recipe svco|vco)\n"
    "  pope_{random,popular,adversarial}.jsonl   POPE questions on held-out scenes {question_id, image, text,\n"
    "                        label, kind, difficulty}; negatives random, most frequent in training, or\n"
    "                        co-occurring most with the present ones in training (POPE's adversarial);\n"
    "                        kind: present, prior_color, partner or other   (vlm eval pope)\n"
    "  chair_prompts.jsonl, chair_objects.json, synonyms.txt   caption prompts, ground truth and the vocabulary\n"
    "                        (one class per colour and shape)         (vlm eval chair --no-coco-rules)\n"
    "  mmvp.csv, mmvp_prompts.jsonl   two-option questions on held-out contrast pairs (vlm eval mmvp)\n"
    "  qa.jsonl              general QA on held-out scenes {question_id, image, type, prompt, answer,\n"
    "                        atypical, difficulty; colour questions: prior_answer (the typical colour), typical}\n"
    "  eval_scenes.jsonl     held-out scenes: image, image_id, true caption, objects, faint, atypical\n"
    "  val_*                 the validation split's pope, qa, chair and scene files (with --val)\n"
    "  world.json            the settings, the world's vocabulary and priors, and counts\n"
    "  tokenizer.model       a SentencePiece BPE over the words of the files above (vlm data tokenizer);\n"
    "                        world.json gets its size: tokenizer_pieces, image_token_index, vocab_size\n"
    "Prompts (sft, mvc, pope, chair, mmvp, qa) carry no \"<image>\": the chat template puts the image first.\n";

static int data_synth(int argc, char **argv) {
    Args a = args_init("vlm data synth", argc, argv);
    if (args_help(&a)) {
        fputs(synth_help, stdout);
        return 0;
    }
    SynthConfig c = {0};
    c.out = arg_str(&a, "--out", NULL);
    long seed = arg_int(&a, "--seed", 1);
    long n_train = arg_int(&a, "--train", 200), n_eval = arg_int(&a, "--eval", 50), n_pairs = arg_int(&a, "--pairs", 100);
    long n_val = arg_int(&a, "--val", 0);
    long size = arg_int(&a, "--size", 96), qa = arg_int(&a, "--qa", 3);
    c.priors.prior = arg_float(&a, "--prior", 0.8);
    c.priors.cooc = arg_float(&a, "--cooc", 0.7);
    c.priors.hard = arg_float(&a, "--hard", 0.0);
    c.priors.faint_alpha = arg_float(&a, "--faint-alpha", 0.35);
    c.priors.faint_desaturate = arg_flag(&a, "--faint-desaturate");
    c.exist_share = arg_float(&a, "--exist-share", 0.2);
    c.priors.unseen = arg_float(&a, "--unseen", 0.0);
    c.quiet = arg_flag(&a, "--quiet");
    args_finish(&a);
    if (!c.out) fatal("vlm data synth: --out DIR is required (see vlm data synth --help)");
    if (seed < 0) fatal("vlm data synth: --seed %ld must be >= 0", seed);
    if (n_train < 0 || n_train > 10000000) fatal("vlm data synth: --train %ld is outside 0..10000000", n_train);
    if (n_eval < 0 || n_eval > 1000000) fatal("vlm data synth: --eval %ld is outside 0..1000000", n_eval);
    if (n_val < 0 || n_val > 1000000) fatal("vlm data synth: --val %ld is outside 0..1000000", n_val);
    if (n_pairs < 0 || n_pairs > 10000000) fatal("vlm data synth: --pairs %ld is outside 0..10000000", n_pairs);
    if (size < 32 || size > 4096) fatal("vlm data synth: --size %ld is outside 32..4096", size);
    if (qa < 0 || qa > 100) fatal("vlm data synth: --qa %ld is outside 0..100", qa);
    if (!(c.priors.prior >= 0 && c.priors.prior <= 1)) fatal("vlm data synth: --prior %g is outside 0..1", c.priors.prior);
    if (!(c.priors.cooc >= 0 && c.priors.cooc <= 1)) fatal("vlm data synth: --cooc %g is outside 0..1", c.priors.cooc);
    if (!(c.priors.hard >= 0 && c.priors.hard <= 1)) fatal("vlm data synth: --hard %g is outside 0..1", c.priors.hard);
    if (!(c.priors.unseen >= 0 && c.priors.unseen <= 1)) fatal("vlm data synth: --unseen %g is outside 0..1", c.priors.unseen);
    if (!(c.exist_share >= 0 && c.exist_share <= 1)) fatal("vlm data synth: --exist-share %g is outside 0..1", c.exist_share);
    if (!(c.priors.faint_alpha > 0 && c.priors.faint_alpha <= 1))
        fatal("vlm data synth: --faint-alpha %g is outside (0, 1]", c.priors.faint_alpha);
    c.seed = (uint64_t)seed;
    c.n_train = (int)n_train;
    c.n_eval = (int)n_eval;
    c.n_val = (int)n_val;
    c.n_pairs = (int)n_pairs;
    c.size = (int)size;
    c.qa_per_scene = (int)qa;
    synth_build(&c);
    return 0;
}

// ---- vlm data tokenizer ----------------------------------------------------------------------------

static const char *tokenizer_help =
    "usage: vlm data tokenizer --world DIR\n"
    "       vlm data tokenizer --texts FILE --out tokenizer.model [--max-pieces N]\n"
    "\n"
    "Trains a SentencePiece BPE tokenizer.model (LLaMA's format and normalization, byte fallback, <unk> <s> </s>\n"
    "= 0 1 2) whose pieces are the words of a corpus: merges are learned until every word is one piece\n"
    "(data/tokenizer_train.h). The same bytes for the same corpus.\n"
    "\n"
    "  --world DIR      a `vlm data synth` folder: train on the text of its *.json and *.jsonl files, write\n"
    "                   DIR/tokenizer.model and its sizes into DIR/world.json (what synth does at its end;\n"
    "                   for folders made before it did)\n"
    "  --texts FILE     JSON lines {\"text\": ...} (a text may hold <image> and </s>, split out as the encoder does)\n"
    "  --out FILE       where --texts writes the model\n"
    "  --max-pieces N   cap on the vocabulary, fixed and byte pieces included (default 8000)\n";

static int data_tokenizer(int argc, char **argv) {
    Args a = args_init("vlm data tokenizer", argc, argv);
    if (args_help(&a)) {
        fputs(tokenizer_help, stdout);
        return 0;
    }
    const char *world = arg_str(&a, "--world", NULL), *texts = arg_str(&a, "--texts", NULL);
    const char *out = arg_str(&a, "--out", NULL);
    long max_pieces = arg_int(&a, "--max-pieces", 8000);
    args_finish(&a);
    if (!world == !texts) fatal("vlm data tokenizer: give exactly one of --world DIR or --texts FILE (see --help)");
    if (world) {
        if (out) fatal("vlm data tokenizer: --out is for --texts; --world writes DIR/tokenizer.model");
        world_tokenizer_write(world, 0);
        return 0;
    }
    if (!out) fatal("vlm data tokenizer: --texts needs --out FILE");
    if (max_pieces < 260 || max_pieces > 1000000) fatal("vlm data tokenizer: --max-pieces %ld is outside 260..1000000", max_pieces);
    SpTrainer *tr = sptrain_new();
    JsonlReader r;
    jsonl_open(&r, texts);
    for (cJSON *j; (j = jsonl_next(&r, 0, NULL));) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!cJSON_IsString(t)) fatal("%s:%d: no \"text\" string", texts, r.line);
        sptrain_add(tr, t->valuestring, strlen(t->valuestring), 1);
        cJSON_Delete(j);
    }
    jsonl_close(&r);
    SpTrainStats st;
    char err[512];
    size_t len;
    uint8_t *model = sptrain_build(tr, &(SpTrainOptions){.max_pieces = (int)max_pieces}, &len, &st, err, sizeof(err));
    if (!model) fatal("vlm data tokenizer: %s: %s", texts, err);
    write_file_atomic(out, model, len);
    printf("vlm data tokenizer: %s: %d pieces (%d characters, %d merges); %d words, %d of them in several pieces\n",
           out, st.n_pieces, st.n_chars, st.n_merges, st.n_words, st.n_words_split);
    free(model);
    sptrain_free(tr);
    return 0;
}

// ---- dispatch --------------------------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Subcommand;

static const Subcommand subcommands[] = {
    {"pack", data_pack, "a dataset file and its images -> a packed binary shard"},
    {"bench", data_bench, "shard loader throughput (normalized images/s) on a synthetic shard"},
    {"synth", data_synth, "the synthetic world of the miniature study: images, training and evaluation files"},
    {"tokenizer", data_tokenizer, "a SentencePiece BPE tokenizer.model over a world's (or a corpus') words"},
    {"seva", data_seva, "SeVa pairs: answers on original (chosen) vs augmented images (rejected)"},
    {"clipdpo", data_clipdpo, "CLIP-DPO pairs: sampled candidates ranked by CLIPScore, best vs worst"},
    {"mvc", data_mvc, "S-VCO minimal-contrast records kept by CLIP image-image similarity, or SigLIP-similar and DINOv2-different as released"},
};

static void data_usage(FILE *f) {
    fprintf(f, "usage: vlm data <subcommand> [flags]   (vlm data <subcommand> --help for its flags)\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        fprintf(f, "  %-9s %s\n", subcommands[i].name, subcommands[i].summary);
}

int cmd_data(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        data_usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        if (!strcmp(argv[0], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vlm data: unknown subcommand '%s'\n\n", argv[0]);
    data_usage(stderr);
    return 2;
}
