// vlm export --to-hf DIR: a LLaVA checkpoint in the layout transformers loads.
//
// Weights are written with the key names of the llava-hf files on the Hub (language_model.model.*,
// vision_tower.vision_model.*, multi_modal_projector.*, language_model.lm_head.weight), which every
// transformers version maps onto its own names. Tensors our model does not hold (vision layers past the
// feature layer, the vision post-LayerNorm) are copied from the source folder or, for a training
// checkpoint, from the base model its state.json names, so transformers finds every tensor it expects.
// LoRA adapters of a checkpoint are merged into the decoder's weights (the loader does that).
// config.json, preprocessor_config.json and the tokenizer files are copied.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/llava.h"
#include "../model/safetensors.h"
#include "../util/args.h"
#include "../util/common.h"
#include "commands.h"

// canonical (transformers 4.52+) or any known layout -> the Hub layout
static void hub_name(const char *name, char *out, size_t n) {
    static const char *maps[][2] = {
        {"model.vision_tower.vision_model.", "vision_tower.vision_model."},
        {"model.vision_tower.", "vision_tower.vision_model."},
        {"vision_tower.vision_model.", "vision_tower.vision_model."},
        {"vision_tower.", "vision_tower.vision_model."},
        {"model.multi_modal_projector.", "multi_modal_projector."},
        {"model.language_model.", "language_model.model."},
        {"lm_head.", "language_model.lm_head."},
    };
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        size_t k = strlen(maps[i][0]);
        if (!strncmp(name, maps[i][0], k)) { snprintf(out, n, "%s%s", maps[i][1], name + k); return; }
    }
    snprintf(out, n, "%s", name);
}

static DType parse_dtype(const char *s) {
    if (!strcmp(s, "f32")) return DT_F32;
    if (!strcmp(s, "bf16")) return DT_BF16;
    if (!strcmp(s, "f16")) return DT_F16;
    fatal("vlm export: --dtype '%s': expected f32, bf16 or f16", s);
}

// Adds the tensors of `src` that the writer does not have yet (by Hub name), converted to dtype.
static int add_missing(STWriter *w, char ***have, int *n_have, const char *src_dir, DType dtype) {
    if (!src_dir || !file_exists(src_dir)) return 0;
    char err[512];
    SafeTensors *st = st_open(src_dir, err, sizeof(err));
    if (!st) return 0;
    int added = 0;
    for (int i = 0; i < st->n; i++) {
        const STTensor *t = &st->tensors[i];
        if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16 && t->dtype != DT_F64) continue;
        if (strstr(t->name, ".lora_A.") || strstr(t->name, ".lora_B.")) continue;  // already merged into the weights
        char name[300];
        hub_name(t->name, name, sizeof(name));
        int dup = 0;
        for (int k = 0; k < *n_have && !dup; k++) dup = !strcmp((*have)[k], name);
        if (dup) continue;
        float *x = xmalloc(sizeof(float) * (t->numel ? t->numel : 1));
        st_to_f32(t, x);
        stw_add_f32(w, name, dtype, t->ndim, t->shape, x);
        free(x);
        *have = xrealloc(*have, sizeof(char *) * (*n_have + 1));
        (*have)[(*n_have)++] = xstrdup(name);
        added++;
    }
    st_close(st);
    return added;
}

int cmd_export(int argc, char **argv) {
    Args a = args_init("vlm export", argc, argv);
    if (args_help(&a)) {
        printf("usage: vlm export --model DIR --to-hf OUT [--dtype f32|bf16|f16]\n\n"
               "Writes a LLaVA folder transformers loads (LlavaForConditionalGeneration.from_pretrained(OUT)):\n"
               "model.safetensors in the Hub key layout, config.json, preprocessor and tokenizer files.\n"
               "DIR is an HF LLaVA folder or a checkpoint of vlm train (the tensors a checkpoint does not hold\n"
               "come from the base model named in its state.json). Default dtype: f32.\n");
        return 0;
    }
    const char *dir = arg_str(&a, "--model", NULL), *out = arg_str(&a, "--to-hf", NULL);
    DType dtype = parse_dtype(arg_str(&a, "--dtype", "f32"));
    args_finish(&a);
    if (!dir || !out) fatal("vlm export: --model and --to-hf are required");
    Llava m;
    llava_load(&m, &backend_cpu, dir, (LlavaTrainable){0, 0, 0});
    mkdir_p(out);
    STWriter *w = stw_new();
    char **have = NULL;
    int n_have = 0;
    ParamStore *stores[3] = {&m.ps_vision, &m.ps_projector, &m.ps_text};
    for (int s = 0; s < 3; s++) {
        ParamStore *ps = stores[s];
        float *host = xmalloc(sizeof(float) * ps->numel);
        backend_cpu.download_act(host, ps->data, ps->numel);
        for (int i = 0; i < ps->n; i++) {
            const ParamInfo *p = &ps->info[i];
            char name[300];
            hub_name(p->name, name, sizeof(name));
            stw_add_f32(w, name, dtype, p->ndim, p->shape, host + p->offset);
            have = xrealloc(have, sizeof(char *) * (n_have + 1));
            have[n_have++] = xstrdup(name);
        }
        free(host);
    }
    int copied = add_missing(w, &have, &n_have, dir, dtype);
    // a training checkpoint: the rest of the vision tower lives in the base model
    char *state_path = path_join(dir, "state.json");
    char *state = try_read_file(state_path, NULL);
    if (state) {
        cJSON *j = cJSON_Parse(state);
        const cJSON *base = j ? cJSON_GetObjectItemCaseSensitive(j, "base_model") : NULL;
        if (cJSON_IsString(base)) copied += add_missing(w, &have, &n_have, base->valuestring, dtype);
        cJSON_Delete(j);
        free(state);
    }
    free(state_path);
    char *weights = path_join(out, "model.safetensors");
    const char *meta[] = {"format", "pt", NULL};
    stw_write(w, weights, meta);
    const char *files[] = {"config.json", "preprocessor_config.json", "tokenizer.model", "tokenizer.json",
                           "tokenizer_config.json", "special_tokens_map.json", "chat_template.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) copy_file_if_exists(dir, out, files[i]);
    fprintf(stderr, "export: %d tensors (%d copied from the source files) -> %s (%s)\n", n_have, copied, weights, dtype_name(dtype));
    for (int i = 0; i < n_have; i++) free(have[i]);
    free(have);
    free(weights);
    llava_free(&m);
    return 0;
}
