#include "settings.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

typedef enum {
    K_DOUBLE,    // double
    K_FLOAT,     // float
    K_INT,       // int
    K_SEED,      // unsigned long long, given as a non-negative integer
    K_TEXT,      // const char * (NULL: unset)
    K_DOUBLES,   // double[n], given as "a,b,..."
    K_SWITCH,    // int: a bare flag that stores n (e.g. --no-pack stores 0 into pack)
    K_SCHEDULE,  // Schedule
    K_CHOICE,    // int: the index of the value among the setting's choices ("cache|online": 0 or 1)
    K_PARTS,     // LlavaTrainable, given as a comma list of vision, projector, decoder (or none)
    K_TARGETS,   // unsigned LoRA target mask, given as a comma list of modules or all
    K_LOSS,      // DpoParams' terms, given as TYPE[:WEIGHT],... (train/losses.h)
} Kind;

// Every setting here changes the numbers a run computes, so a resumed run with another value does not continue
// bit-exactly; flags that do not (--save-every, --log-every, --stop-at, --recompute, ...) are not settings.
typedef struct {
    const char *flag;
    Kind kind;
    size_t off;     // the field of TrainConfig
    long off2;      // a second double field the flag also sets (--beta: DPO's and mDPO's), -1: none
    int n;          // K_DOUBLES: how many numbers; K_SWITCH: the value the switch stores
    const char *def;  // the default, as the flag takes it (K_SWITCH: none, the field is !n)
    int length;     // the run's length (--steps, --epochs): a resumed run may lengthen or shorten the run (the
                    // schedule then spans the new length), so a change is reported, not refused
    unsigned needs;       // the READS_* bit of what it sets (train/recipes.h); 0: every recipe reads it
    const char *choices;  // K_CHOICE: the values, "|"-separated, in the order of the numbers they store
} Setting;

#define F(field) offsetof(TrainConfig, field)
static const Setting settings[] = {
    {"--template", K_TEXT, F(template_name), -1, 0, "vicuna_v1", 0, READS_LLAVA, NULL},
    {"--system", K_TEXT, F(system), -1, 0, NULL, 0, READS_LLAVA, NULL},
    {"--max-len", K_INT, F(max_len), -1, 0, "0", 0, READS_LLAVA, NULL},
    {"--max-text-len", K_INT, F(max_text_len), -1, 0, "0", 0, READS_LLAVA, NULL},
    {"--train", K_PARTS, F(trainable), -1, 0, "projector,decoder", 0, READS_LLAVA, NULL},
    {"--lr", K_DOUBLE, F(optim.lr), -1, 0, "2e-5", 0, 0, NULL},
    {"--beta1", K_DOUBLE, F(optim.beta1), -1, 0, "0.9", 0, 0, NULL},
    {"--beta2", K_DOUBLE, F(optim.beta2), -1, 0, "0.999", 0, 0, NULL},
    {"--eps", K_DOUBLE, F(optim.eps), -1, 0, "1e-8", 0, 0, NULL},
    {"--weight-decay", K_DOUBLE, F(optim.weight_decay), -1, 0, "0", 0, 0, NULL},
    {"--max-grad-norm", K_DOUBLE, F(optim.max_grad_norm), -1, 0, "1", 0, 0, NULL},
    {"--schedule", K_SCHEDULE, F(optim.schedule), -1, 0, "cosine", 0, 0, NULL},
    {"--warmup-steps", K_INT, F(optim.warmup_steps), -1, 0, "-1", 0, 0, NULL},  // -1: from --warmup-ratio
    {"--warmup-ratio", K_DOUBLE, F(warmup_ratio), -1, 0, "0.03", 0, 0, NULL},
    {"--steps", K_INT, F(steps), -1, 0, "0", 1, 0, NULL},
    {"--epochs", K_DOUBLE, F(epochs), -1, 0, "1", 1, 0, NULL},
    {"--batch", K_INT, F(batch), -1, 0, "1", 0, 0, NULL},
    {"--grad-accum", K_INT, F(grad_accum), -1, 0, "1", 0, 0, NULL},
    {"--seed", K_SEED, F(seed), -1, 0, "42", 0, 0, NULL},
    {"--beta", K_DOUBLE, F(loss.dpo.beta), (long)F(loss.mdpo.beta), 0, "0.1", 0, READS_BETA, NULL},
    {"--betas", K_DOUBLES, F(loss.svco.beta), -1, 4, "0.1,0.1,0.1,0.1", 0, READS_SVCO_BETAS, NULL},
    {"--delta", K_DOUBLE, F(loss.mdpo.delta), -1, 0, "0", 0, READS_MDPO, NULL},
    {"--label-smoothing", K_DOUBLE, F(loss.dpo.label_smoothing), -1, 0, "0", 0, READS_DPO_LOSS, NULL},
    {"--loss-type", K_LOSS, F(loss.dpo), -1, 0, "sigmoid", 0, READS_DPO_LOSS, NULL},
    {"--reference-free", K_SWITCH, F(loss.dpo.reference_free), -1, 1, NULL, 0, READS_DPO_LOSS, NULL},
    {"--crop-scale", K_DOUBLES, F(crop_scale), -1, 2, "0.01,0.2", 0, READS_MDPO, NULL},
    {"--crop", K_CHOICE, F(crop_fixed), -1, 0, "fresh", 0, READS_MDPO, "fresh|fixed"},
    {"--ref", K_CHOICE, F(ref_online), -1, 0, "cache", 0, READS_REFERENCE, "cache|online"},
    {"--no-pack", K_SWITCH, F(pack), -1, 0, NULL, 0, READS_LLAVA, NULL},
    {"--lora-r", K_INT, F(lora.r), -1, 0, "0", 0, READS_LLAVA, NULL},
    {"--lora-alpha", K_FLOAT, F(lora.alpha), -1, 0, "0", 0, READS_LLAVA, NULL},  // 0: twice the rank (cmd_train)
    {"--lora-dropout", K_FLOAT, F(lora.dropout), -1, 0, "0.05", 0, READS_LLAVA, NULL},
    {"--lora-targets", K_TARGETS, F(lora.targets), -1, 0, "all", 0, READS_LLAVA, NULL},
};
#undef F
enum { N_SETTINGS = sizeof(settings) / sizeof(settings[0]) };
_Static_assert(N_SETTINGS <= 64, "TrainConfig.given has 64 bits");

static const Setting *find(const char *flag) {
    for (int i = 0; i < N_SETTINGS; i++) if (!strcmp(settings[i].flag, flag)) return &settings[i];
    return NULL;
}

#define FIELD(c, s, type) ((type *)((char *)(c) + (s)->off))

static double parse_double(const char *flag, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v) fatal("vlm train: %s expects a number, got '%s'", flag, v);
    return x;
}

// Parses v (as the flag takes it; NULL for a switch) into the field of s; dies naming the flag on a bad value.
static void parse(TrainConfig *c, const Setting *s, const char *v) {
    switch (s->kind) {
    case K_DOUBLE:
        *FIELD(c, s, double) = parse_double(s->flag, v);
        if (s->off2 >= 0) *(double *)((char *)c + s->off2) = *FIELD(c, s, double);
        break;
    case K_FLOAT: *FIELD(c, s, float) = (float)parse_double(s->flag, v); break;
    case K_INT:
    case K_SEED: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || *end || end == v) fatal("vlm train: %s expects an integer, got '%s'", s->flag, v);
        if (s->kind == K_SEED) {
            if (x < 0) fatal("vlm train: %s %lld: must be 0 or positive", s->flag, x);
            *FIELD(c, s, unsigned long long) = (unsigned long long)x;
        } else {
            if (x < INT_MIN || x > INT_MAX) fatal("vlm train: %s %lld: out of range", s->flag, x);
            *FIELD(c, s, int) = (int)x;
        }
        break;
    }
    case K_TEXT: *FIELD(c, s, const char *) = v; break;
    case K_DOUBLES: {
        double *d = FIELD(c, s, double);
        const char *p = v;
        for (int i = 0; i < s->n; i++) {
            char *end;
            errno = 0;
            d[i] = strtod(p, &end);
            if (errno || end == p || *end != (i + 1 < s->n ? ',' : 0))
                fatal("vlm train: %s expects %d comma-separated numbers, got '%s'", s->flag, s->n, v);
            p = end + 1;
        }
        break;
    }
    case K_SWITCH: *FIELD(c, s, int) = s->n; break;
    case K_SCHEDULE: *FIELD(c, s, Schedule) = schedule_from_name(v); break;
    case K_CHOICE: {
        int i = 0;
        for (const char *p = s->choices;; i++) {
            const size_t n = strcspn(p, "|");
            if (strlen(v) == n && !strncmp(p, v, n)) break;
            if (!p[n]) fatal("vlm train: %s '%s': expected %s", s->flag, v, s->choices);
            p += n + 1;
        }
        *FIELD(c, s, int) = i;
        break;
    }
    case K_PARTS: {
        LlavaTrainable *t = FIELD(c, s, LlavaTrainable);
        *t = (LlavaTrainable){0, 0, 0};
        char *copy = xstrdup(v);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
            if (!strcmp(tok, "vision")) t->train_vision = 1;
            else if (!strcmp(tok, "projector")) t->train_projector = 1;
            else if (!strcmp(tok, "decoder")) t->train_text = 1;
            else if (strcmp(tok, "none"))
                fatal("vlm train: %s '%s': parts are vision, projector, decoder (or none: the LoRA adapters only)", s->flag, tok);
        }
        free(copy);
        break;
    }
    case K_TARGETS: *FIELD(c, s, unsigned) = lora_targets_parse(v); break;
    case K_LOSS: {
        char err[512];
        if (dpo_loss_types_parse(FIELD(c, s, DpoParams), v, err, sizeof(err))) fatal("vlm train: %s %s", s->flag, err);
        break;
    }
    }
}

// The shortest text that reads back as x (so equal values print equal, and the text is exact).
static void format_double(double x, char *buf, size_t len) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static void format(const TrainConfig *c, const Setting *s, char *buf, size_t len) {
    const char *base = (const char *)c;
    switch (s->kind) {
    case K_DOUBLE: format_double(*(const double *)(base + s->off), buf, len); break;
    case K_FLOAT: {
        float x = *(const float *)(base + s->off);
        for (int p = 1; p <= 9; p++) {
            snprintf(buf, len, "%.*g", p, x);
            if (strtof(buf, NULL) == x) break;
        }
        break;
    }
    case K_INT: snprintf(buf, len, "%d", *(const int *)(base + s->off)); break;
    case K_SEED: snprintf(buf, len, "%llu", *(const unsigned long long *)(base + s->off)); break;
    case K_TEXT: {
        const char *t = *(const char *const *)(base + s->off);
        snprintf(buf, len, "%s", t ? t : "(unset)");
        break;
    }
    case K_DOUBLES: {
        size_t k = 0;
        buf[0] = 0;
        for (int i = 0; i < s->n && k < len; i++) {
            char one[32];
            format_double(((const double *)(base + s->off))[i], one, sizeof(one));
            k += snprintf(buf + k, len - k, "%s%s", i ? "," : "", one);
        }
        break;
    }
    case K_SWITCH: snprintf(buf, len, "%s", *(const int *)(base + s->off) == s->n ? "on" : "off"); break;
    case K_SCHEDULE: snprintf(buf, len, "%s", schedule_name(*(const Schedule *)(base + s->off))); break;
    case K_CHOICE: {
        const char *p = s->choices;
        for (int i = *(const int *)(base + s->off); i > 0 && strchr(p, '|'); i--) p = strchr(p, '|') + 1;
        snprintf(buf, len, "%.*s", (int)strcspn(p, "|"), p);
        break;
    }
    case K_PARTS: {
        const LlavaTrainable *t = (const LlavaTrainable *)(base + s->off);
        snprintf(buf, len, "%s%s%s%s%s%s", t->train_vision ? "vision" : "", t->train_vision && (t->train_projector || t->train_text) ? "," : "",
                 t->train_projector ? "projector" : "", t->train_projector && t->train_text ? "," : "", t->train_text ? "decoder" : "",
                 !t->train_vision && !t->train_projector && !t->train_text ? "none" : "");
        break;
    }
    case K_TARGETS: lora_targets_format(*(const unsigned *)(base + s->off), buf, len); break;
    case K_LOSS: dpo_loss_types_format((const DpoParams *)(base + s->off), buf, len); break;
    }
}

void train_config_preset(TrainConfig *c, const Recipe *r) {
    memset(c, 0, sizeof(*c));
    c->recipe = r;
    c->device = "auto";
    c->log_every = 1;
    c->peak_tflops = 760;  // the bf16 GEMM ceiling measured on the H100 (DESIGN.md §6)
    settings_defaults(c, r);
}

void settings_defaults(TrainConfig *c, const Recipe *r) {
    for (int i = 0; i < N_SETTINGS; i++) {
        const Setting *s = &settings[i];
        if (s->kind == K_SWITCH) *FIELD(c, s, int) = !s->n;
        else if (s->def || s->kind == K_TEXT) parse(c, s, s->def);
    }
    for (int k = 0; r->presets[k]; k++)
        for (const PresetValue *p = r->presets[k]; p->flag; p++) {
            const Setting *s = find(p->flag);
            CHECK_OR_DIE(s != NULL, "recipe %s: preset flag %s is not a setting", r->name, p->flag);
            if (s->kind == K_SWITCH) { if (p->value && !strcmp(p->value, "on")) parse(c, s, NULL); }
            else parse(c, s, p->value);
        }
}

int settings_set_from_command_line(TrainConfig *c, const char *flag, const char *value) {
    const Setting *s = find(flag);
    if (!s) return -1;
    if (s->needs && !(recipe_reads(c->recipe) & s->needs)) {  // never set what the recipe then ignores
        char readers[256] = "";
        size_t k = 0;
        for (int i = 0; recipe_at(i); i++)
            if (recipe_reads(recipe_at(i)) & s->needs && k < sizeof(readers))
                k += (size_t)snprintf(readers + k, sizeof(readers) - k, "%s%s", k ? ", " : "", recipe_at(i)->name);
        fatal("vlm train: %s sets %s, which --recipe %s does not read (%s); the recipes that read it: %s", flag,
              recipe_reads_name(s->needs), c->recipe->name, c->recipe->summary, readers);
    }
    parse(c, s, value);
    c->given |= 1ULL << (s - settings);
    return 0;
}

const char *settings_flag(int i, int *takes_value) {
    if (i < 0 || i >= N_SETTINGS) return NULL;
    if (takes_value) *takes_value = settings[i].kind != K_SWITCH;
    return settings[i].flag;
}

int settings_given(const TrainConfig *c, const char *flag) {
    const Setting *s = find(flag);
    return s && (c->given >> (s - settings) & 1);
}

void settings_print(FILE *f, const TrainConfig *c) {
    const Recipe *r = c->recipe;
    fprintf(f, "train: recipe %s: %s\n", r->name, r->summary);
    for (int i = 0; i < N_SETTINGS; i++) {
        const PresetValue *p = recipe_preset(r, settings[i].flag);
        const int given = c->given >> i & 1;
        if (!p && !given) continue;
        char now[2048];
        format(c, &settings[i], now, sizeof(now));
        if (!given) fprintf(f, "  %-16s %-20s %s\n", settings[i].flag, now, p->source);
        else if (p) fprintf(f, "  %-16s %-20s command line (preset %s: %s)\n", settings[i].flag, now, p->value ? p->value : "unset", p->source);
        else fprintf(f, "  %-16s %-20s command line\n", settings[i].flag, now);
    }
}

void settings_print_recipes(FILE *f) {
    static const char *records[] = {"sft records", "preference pairs", "MVC records", "image-caption lines"};
    for (int k = 0; recipe_at(k); k++) {
        const Recipe *r = recipe_at(k);
        fprintf(f, "  %s: %s\n    data: %s", r->name, r->summary, records[r->records]);
        if (r->n_rows) fprintf(f, ", %d row%s per example", r->n_rows, r->n_rows > 1 ? "s" : "");
        fprintf(f, "\n    preset:\n");
        for (int i = 0; i < N_SETTINGS; i++) {
            const PresetValue *p = recipe_preset(r, settings[i].flag);
            if (p) fprintf(f, "      %-16s %-18s %s\n", p->flag, p->value ? p->value : "(unset)", p->source);
        }
    }
}

cJSON *settings_json(const TrainConfig *c, const char *backend) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < N_SETTINGS; i++) {
        char v[2048];
        format(c, &settings[i], v, sizeof(v));
        cJSON_AddStringToObject(o, settings[i].flag, v);
    }
    cJSON_AddStringToObject(o, "--device", backend);
    return o;
}

void settings_check_resume(const TrainConfig *c, const cJSON *saved, const char *backend, const char *file) {
    if (!cJSON_IsObject(saved)) {
        fprintf(stderr, "vlm: warning: %s records no settings (an older checkpoint); this run's are not compared with it\n", file);
        return;
    }
    int differ = 0;
    char list[4096] = "";
    size_t k = 0;
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(saved, "--device");
    if (cJSON_IsString(dev) && strcmp(dev->valuestring, backend)) {
        differ++;
        k += snprintf(list + k, sizeof(list) - k, "\n  --device %s (the run: %s)", backend, dev->valuestring);
    }
    for (int i = 0; i < N_SETTINGS; i++) {
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(saved, settings[i].flag);
        char now[2048];
        format(c, &settings[i], now, sizeof(now));
        if (cJSON_IsString(was) && !strcmp(was->valuestring, now)) continue;
        if (!cJSON_IsString(was)) {  // a setting newer than the checkpoint: its value then was the default
            TrainConfig d;
            memset(&d, 0, sizeof(d));
            settings_defaults(&d, c->recipe);
            char def[2048];
            format(&d, &settings[i], def, sizeof(def));
            if (!strcmp(def, now)) continue;
        }
        const char *was_text = cJSON_IsString(was) ? was->valuestring : "not recorded";
        if (settings[i].length) {
            fprintf(stderr, "vlm: --resume: %s %s (the run: %s): the run's length changes; the schedule spans the new length\n",
                    settings[i].flag, now, was_text);
            continue;
        }
        differ++;
        if (k < sizeof(list)) k += snprintf(list + k, sizeof(list) - k, "\n  %s %s (the run: %s)", settings[i].flag, now, was_text);
    }
    if (!differ) return;
    if (c->force) {
        fprintf(stderr, "vlm: warning: --resume --force: %d setting%s from %s, so the run does not continue as it "
                "would have:%s\n", differ, differ > 1 ? "s differ" : " differs", file, list);
        return;
    }
    fatal("--resume: %d setting%s from the run in %s, and the run would no longer continue bit-exactly:%s\n"
          "Give the run's values, or --force to continue with these", differ, differ > 1 ? "s differ" : " differs", file, list);
}
