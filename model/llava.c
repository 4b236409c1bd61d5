#include "llava.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "safetensors.h"

static const char *VISION_PREFIX = "model.vision_tower.vision_model";

int llava_name_candidates(const char *name, char out[][256], int max) {
    // Our names are those of transformers 4.52+ save_pretrained. Other layouts in the wild: the llava-hf
    // files on the Hub (language_model.model.*, vision_tower.vision_model.*), and transformers 5's own
    // saves, which drop the vision_model level (vision_tower.embeddings.*).
    static const char *maps[][2] = {
        {"model.vision_tower.vision_model.", "vision_tower.vision_model."},
        {"model.vision_tower.vision_model.", "vision_tower."},
        {"model.vision_tower.vision_model.", "model.vision_tower."},
        {"model.multi_modal_projector.", "multi_modal_projector."},
        {"model.language_model.", "language_model.model."},
        {"lm_head.", "language_model.lm_head."},
        // a CLIPModel's vision tower (e.g. one trained with `vlm train --recipe clip`) as LLaVA's
        {"model.vision_tower.vision_model.", "vision_model."},
    };
    int n = 0;
    snprintf(out[n++], 256, "%s", name);
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]) && n < max; i++) {
        size_t k = strlen(maps[i][0]);
        if (!strncmp(name, maps[i][0], k)) snprintf(out[n++], 256, "%s%s", maps[i][1], name + k);
    }
    return n;
}

static void projector_bind(Llava *m, ParamStore *ps, void *base, int grads) {
    const int Cv = m->cfg.vision.hidden, D = m->cfg.text.hidden, bias = m->cfg.projector_bias;
    ProjectorW *d = grads ? &m->pg : &m->pw;
    d->w1 = param(ps, base, "model.multi_modal_projector.linear_1.weight", 2, D, Cv, 0, 0);
    d->b1 = bias ? param(ps, base, "model.multi_modal_projector.linear_1.bias", 1, D, 0, 0, 0) : NULL;
    d->w2 = param(ps, base, "model.multi_modal_projector.linear_2.weight", 2, D, D, 0, 0);
    d->b2 = bias ? param(ps, base, "model.multi_modal_projector.linear_2.bias", 1, D, 0, 0, 0) : NULL;
}

// One pass over all three stores: registration (base NULL, first call), weights or gradients.
static void llava_bind(Llava *m, int pass) {
    ParamStore *stores[3] = {&m->ps_vision, &m->ps_projector, &m->ps_text};
    for (int s = 0; s < 3; s++) {
        ParamStore *ps = stores[s];
        void *base = pass == 0 ? NULL : pass == 1 ? ps->data : ps->grad;
        int grads = pass == 2;
        params_begin(ps);
        if (s == 0) vit_bind(&m->vision, ps, base, grads, VISION_PREFIX);
        if (s == 1) projector_bind(m, ps, base, grads);
        if (s == 2) llama_bind(&m->lm, ps, base, grads, "model.language_model", "lm_head.weight");
        params_end(ps);
    }
}

void llava_init(Llava *m, const Backend *be, const LlavaConfig *cfg, LlavaTrainable tr) {
    memset(m, 0, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    vit_init(&m->vision, be, &cfg->vision, cfg->vision_layers_run, 0);
    llama_init(&m->lm, be, &cfg->text);
    params_init(&m->ps_vision, be, "vision");
    params_init(&m->ps_projector, be, "projector");
    params_init(&m->ps_text, be, "decoder");
    llava_bind(m, 0);
    params_alloc(&m->ps_vision, tr.train_vision);
    params_alloc(&m->ps_projector, tr.train_projector);
    params_alloc(&m->ps_text, tr.train_text);
    llava_bind(m, 1);
    llava_bind(m, 2);
}

void llava_load(Llava *m, const Backend *be, const char *dir, LlavaTrainable tr) {
    LlavaConfig cfg;
    llava_config_load(&cfg, dir);
    llava_init(m, be, &cfg, tr);
    SafeTensors *st = st_open_or_die(dir);
    params_load(&m->ps_vision, st, llava_name_candidates);
    params_load(&m->ps_projector, st, llava_name_candidates);
    params_load(&m->ps_text, st, llava_name_candidates);
    // a LoRA checkpoint of vlm train: the adapters are folded into the decoder's weights
    LoraConfig lc;
    if (lora_config_load(&lc, dir)) {
        Lora lo;
        lora_init(&lo, &m->lm, &lc, 0);
        params_load(&lo.ps, st, NULL);
        lora_merge(&lo, &m->lm);
        lora_free(&lo);
    }
    st_close(st);
}

void llava_free(Llava *m) {
    vit_free(&m->vision);
    llama_free(&m->lm);
    params_free(&m->ps_vision);
    params_free(&m->ps_projector);
    params_free(&m->ps_text);
}

void llava_acts_init(LlavaActs *a, const Llava *m, int cap_rows, int cap_len, int cap_images, int cap_out, ActsMode mode) {
    memset(a, 0, sizeof(*a));
    const int backward = mode != ACTS_INFERENCE;
    const LlamaKeep keep = mode == ACTS_BACKWARD ? LLAMA_KEEP_ALL : mode == ACTS_BACKWARD_RECOMPUTE ? LLAMA_KEEP_RESIDUALS
                                                                                                 : LLAMA_KEEP_NONE;
    const int N = cap_rows * cap_len, NI = cap_images > 0 ? cap_images : 1, P = m->cfg.image_tokens;
    const int Cv = m->cfg.vision.hidden, D = m->cfg.text.hidden, S = m->cfg.vision.image_size;
    const int vision_grad = backward && m->ps_vision.grad != NULL;
    a->cap_rows = cap_rows;
    a->cap_tokens = N;
    a->cap_images = NI;
    a->cap_out = cap_out > 0 && cap_out < N ? cap_out : N;
    a->backward = backward;
    a->arena = arena_new(m->be);
    for (int pass = 0; pass < 2; pass++) {
        Arena *ar = &a->arena;
        arena_section(ar, "vision tower");
        vit_acts_layout(&a->v, &m->vision, NI, vision_grad, vision_grad, ar);
        llama_acts_layout(&a->l, &m->lm, cap_rows, N, a->cap_out, keep, backward, ar);
        arena_section(ar, "projector and inputs");
        a->pixels = arena_act(ar, (size_t)NI * 3 * S * S);
        a->feats = arena_act(ar, (size_t)NI * P * Cv);
        a->p1 = arena_act(ar, (size_t)NI * P * D);
        a->p1a = arena_act(ar, (size_t)NI * P * D);
        a->p2 = arena_act(ar, (size_t)NI * P * D);
        a->embed_ids = arena_int(ar, N);
        a->img_dst = arena_int(ar, N);
        a->img_src = arena_int(ar, N);
        a->feat_sel = arena_int(ar, (size_t)NI * P);
        if (backward) {
            a->dp2 = arena_act(ar, (size_t)NI * P * D);
            a->dp1 = arena_act(ar, (size_t)NI * P * D);
            if (vision_grad) a->dfeats = arena_act(ar, (size_t)NI * P * Cv);
        }
        if (pass == 0) arena_commit(ar);
    }
    a->out_row = xmalloc(sizeof(int) * N);
    a->out_pos = xmalloc(sizeof(int) * N);
    a->out_target = xmalloc(sizeof(int) * N);
    a->logp = xmalloc(sizeof(double) * N);
    a->cap_logical = cap_rows;
    a->row_logp = xmalloc(sizeof(double) * cap_rows);
    a->row_count = xmalloc(sizeof(int) * cap_rows);
}

void llava_acts_free(LlavaActs *a) {
    vit_acts_free(&a->v);
    llama_acts_free(&a->l);
    arena_free(&a->arena);
    free(a->out_row); free(a->out_pos); free(a->out_target); free(a->logp); free(a->row_logp); free(a->row_count);
}

// pixels (NI, 3, S, S) host -> a->feats (NI*P, Cv): the feature layer's hidden state of each image, class
// token dropped unless "full"
static void tower_forward(const Llava *m, LlavaActs *a, const float *pixels, int NI) {
    const Backend *be = m->be;
    const LlavaConfig *c = &m->cfg;
    const int S = c->vision.image_size, N_v = m->vision.n_tokens, P = c->image_tokens, Cv = c->vision.hidden;
    be->upload_act(a->pixels, pixels, (size_t)NI * 3 * S * S);
    vit_forward(&m->vision, &a->v, a->pixels, NI, c->vision_layers_run);
    int *sel = xmalloc(sizeof(int) * NI * P);
    for (int i = 0; i < NI; i++)
        for (int p = 0; p < P; p++) sel[i * P + p] = i * N_v + p + (c->select_full ? 0 : 1);  // drop the class token
    be->to_device(a->feat_sel, sel, sizeof(int) * NI * P);
    free(sel);
    be->copy_rows(a->feats, NULL, a->v.enc.res[c->vision_layers_run], a->feat_sel, NI * P, Cv);   // (NI*P, Cv)
}

void llava_features_acts_init(LlavaActs *a, const Llava *m) {
    llava_acts_init(a, m, 1, 1, LLAVA_FEATURE_CHUNK, 1, ACTS_INFERENCE);
}

void llava_image_features(const Llava *m, const float *pixels, int n, float *out) {
    const int chunk = LLAVA_FEATURE_CHUNK, S = m->cfg.vision.image_size;
    const size_t per = (size_t)m->cfg.image_tokens * m->cfg.vision.hidden;
    LlavaActs a;
    llava_features_acts_init(&a, m);
    for (int i = 0; i < n; i += chunk) {
        const int k = n - i < chunk ? n - i : chunk;
        tower_forward(m, &a, pixels + (size_t)i * 3 * S * S, k);
        m->be->download_act(out + (size_t)i * per, a.feats, (size_t)k * per);
    }
    llava_acts_free(&a);
}

int llava_token_layout(const Llava *m, const LlavaBatch *bt, int *first) {
    const int B = bt->B, T = bt->T;
    int N = 0;
    for (int b = 0; b < B; b++) N += bt->lengths ? bt->lengths[b] : T;
    const char *e = getenv("VLM_KEEP_PADDING");  // "1": compute the padding too (tests compare the two)
    const int grid = N < B * T && !m->lm.lora && !(e && !strcmp(e, "1"));
    for (int b = 0, n = 0; b < B; b++) {
        first[b] = grid ? n : b * T;
        n += bt->lengths ? bt->lengths[b] : T;
    }
    return grid ? N : B * T;
}

void llava_forward(const Llava *m, LlavaActs *a, const LlavaBatch *bt) {
    const Backend *be = m->be;
    const LlavaConfig *c = &m->cfg;
    const int B = bt->B, T = bt->T, G = B * T, V = c->text.vocab, D = c->text.hidden;
    const int P = c->image_tokens, NI = bt->n_images, Cv = c->vision.hidden;
    if (B > a->cap_rows || G > a->cap_tokens) fatal("batch of %d rows x %d tokens exceeds the capacity of %d rows x %d tokens", B, T, a->cap_rows, a->cap_tokens / a->cap_rows);
    if (NI > a->cap_images) fatal("batch has %d images, capacity is %d", NI, a->cap_images);
    a->B = B;
    a->T = T;

    // ---- host: validate, and build the index arrays
    // The decoder's tokens (llava_token_layout): tok_of[b*T + t] is the token of cell (b, t), -1 for padding
    // that is not computed
    int *kv_len = xmalloc(sizeof(int) * B), *first = xmalloc(sizeof(int) * B), *tok_of = xmalloc(sizeof(int) * G);
    for (int b = 0; b < B; b++) {
        int len = bt->lengths ? bt->lengths[b] : T;
        if (len < 1 || len > T) fatal("row %d: length %d is outside 1..%d", b, len, T);
        kv_len[b] = len;
    }
    const int N = llava_token_layout(m, bt, first), grid = N < G;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tok_of[b * T + t] = !grid ? b * T + t : t < kv_len[b] ? first[b] + t : -1;
    free(first);
    int *embed_ids = xmalloc(sizeof(int) * N), *img_dst = xmalloc(sizeof(int) * N), *img_src = xmalloc(sizeof(int) * N);
    int *pos = xmalloc(sizeof(int) * N), *tok_pos = xmalloc(sizeof(int) * N), *targets = xmalloc(sizeof(int) * G);
    int n_img = 0, M = 0;
    for (int b = 0; b < B; b++) {
        const int len = kv_len[b];
        const int img = bt->image_of_row ? bt->image_of_row[b] : -1;
        const int k_img = img < 0 ? 0 : bt->images_of_row ? bt->images_of_row[b] : 1;  // the row's images
        if (img < -1 || img >= NI) fatal("row %d: image index %d but the batch has %d images", b, img, NI);
        if (img >= 0 && (k_img < 1 || img + k_img > NI))
            fatal("row %d: %d images from image %d but the batch has %d images", b, k_img, img, NI);
        int count = 0;
        for (int t = 0; t < T; t++) {
            int g = b * T + t, n = tok_of[g], id = bt->ids[g];
            if (n < 0) continue;  // padding that is not computed
            pos[n] = bt->pos ? bt->pos[g] : t;
            tok_pos[n] = g;
            embed_ids[n] = -1;
            if (t >= len) continue;  // padding on the grid: a zero row, never attended to
            if (id < 0 || id >= V) fatal("row %d, position %d: token id %d is outside the vocabulary (%d)", b, t, id, V);
            if (id == c->image_token_id) {
                // the row's images are consecutive: its count-th image token is row count of their features
                if (img >= 0 && count < k_img * P) { img_dst[n_img] = n; img_src[n_img] = img * P + count; n_img++; }
                count++;
            } else embed_ids[n] = id;
        }
        if (img >= 0 && count != k_img * P)
            fatal("row %d: %d image tokens (id %d) but its %d image%s give%s %d features%s", b, count, c->image_token_id, k_img,
                  k_img == 1 ? "" : "s", k_img == 1 ? "s" : "", k_img * P, count < k_img * P ? " (were image tokens truncated?)" : "");
        if (img < 0 && count > 0) fatal("row %d: %d image tokens (id %d) but the row has no image", b, count, c->image_token_id);
        if (bt->n_out > 0) continue;  // explicit outputs: taken below
        for (int t = 0; t < len; t++) {
            int g = b * T + t, target = -1;
            if (bt->labels && t + 1 < len) {
                int lab = bt->labels[g + 1];
                if (lab != -100) {
                    if (lab < 0 || lab >= V) fatal("row %d, position %d: label %d is outside the vocabulary (%d)", b, t + 1, lab, V);
                    target = lab;
                }
            }
            if (target >= 0 || bt->all_logits) {
                a->out_row[M] = b;
                a->out_pos[M] = t;
                a->out_target[M] = target;
                targets[M] = target;
                M++;
            }
        }
    }
    if (bt->n_out > 0) {
        if (bt->n_out > a->cap_out) fatal("batch has %d outputs, capacity is %d", bt->n_out, a->cap_out);
        for (int i = 0; i < bt->n_out; i++) {
            int g = bt->out_index[i], tg = bt->out_target[i];
            if (g < 0 || g >= G || g % T >= kv_len[g / T]) fatal("output %d: position %d is outside the batch's tokens", i, g);
            if (tg < 0 || tg >= V) fatal("output %d: target %d is outside the vocabulary (%d)", i, tg, V);
            if (bt->out_row[i] < 0 || bt->out_row[i] >= bt->n_logical) fatal("output %d: row %d of %d", i, bt->out_row[i], bt->n_logical);
            a->out_row[M] = bt->out_row[i];
            a->out_pos[M] = g % T;
            a->out_target[M] = tg;
            targets[M] = tg;
            M++;
        }
    }
    // the outputs' token rows, and their grid cells (the pruned last layer's attention queries)
    int *idx_out = xmalloc(sizeof(int) * (M ? M : 1)), *out_cell = xmalloc(sizeof(int) * (M ? M : 1));
    for (int i = 0; i < M; i++) {
        out_cell[i] = bt->n_out > 0 ? bt->out_index[i] : a->out_row[i] * T + a->out_pos[i];
        idx_out[i] = tok_of[out_cell[i]];
    }
    a->M = M;
    a->N = N;
    a->n_img_tokens = n_img;

    // ---- vision tower (or its features, given) and projector, once per distinct image
    if (NI > 0 && n_img > 0) {
        if (bt->feats) {
            if (a->backward && m->ps_vision.grad) fatal("precomputed image features with a trained vision tower");
            be->upload_act(a->feats, bt->feats, (size_t)NI * P * Cv);
        } else tower_forward(m, a, bt->pixels, NI);
        be->matmul_forward(a->p1, a->feats, m->pw.w1, m->pw.b1, NI * P, Cv, D);
        be->act_forward(c->projector_act, a->p1a, a->p1, (size_t)NI * P * D);
        be->matmul_forward(a->p2, a->p1a, m->pw.w2, m->pw.b2, NI * P, D, D);                        // (NI*P, D)
    }

    // ---- token embeddings with the image features written at the image positions
    be->to_device(a->embed_ids, embed_ids, sizeof(int) * N);
    be->embedding_forward(a->l.res[0], a->embed_ids, m->lm.w.embed, N, D);
    if (n_img > 0) {
        be->to_device(a->img_dst, img_dst, sizeof(int) * n_img);
        be->to_device(a->img_src, img_src, sizeof(int) * n_img);
        be->copy_rows(a->l.res[0], a->img_dst, a->p2, a->img_src, n_img, D);
    }
    be->to_device(a->l.pos, pos, sizeof(int) * N);
    be->to_device(a->l.kv_len, kv_len, sizeof(int) * B);
    if (grid) {  // padding cells copy the zero row past the last token row (model/llama.h)
        for (int g = 0; g < G; g++) if (tok_of[g] < 0) tok_of[g] = a->l.cap_tokens;
        be->to_device(a->l.tok_pos, tok_pos, sizeof(int) * N);
        be->to_device(a->l.cell_tok, tok_of, sizeof(int) * G);
        if (M) be->to_device(a->l.sel_grid, out_cell, sizeof(int) * M);
    }
    a->use_segments = bt->segment != NULL;
    if (bt->segment) be->to_device(a->l.segment, bt->segment, sizeof(int) * G);
    if (M) {
        be->to_device(a->l.idx_out, idx_out, sizeof(int) * M);
        be->to_device(a->l.targets, targets, sizeof(int) * M);
    }
    llama_forward(&m->lm, &a->l, B, T, N, M, a->use_segments);

    // ---- per-token and per-row log-probs on the host
    if (M) be->download_acc(a->logp, a->l.logp, M);
    a->n_rows = bt->n_out > 0 ? bt->n_logical : B;
    if (a->n_rows > a->cap_logical) {  // host arrays: grow to the logical rows of this batch
        a->cap_logical = a->n_rows;
        a->row_logp = xrealloc(a->row_logp, sizeof(double) * a->cap_logical);
        a->row_count = xrealloc(a->row_count, sizeof(int) * a->cap_logical);
    }
    for (int r = 0; r < a->n_rows; r++) { a->row_logp[r] = 0; a->row_count[r] = 0; }
    for (int i = 0; i < M; i++)
        if (targets[i] >= 0) { a->row_logp[a->out_row[i]] += a->logp[i]; a->row_count[a->out_row[i]]++; }
    free(embed_ids); free(img_dst); free(img_src); free(pos); free(kv_len); free(targets); free(idx_out);
    free(tok_of); free(tok_pos); free(out_cell);
}

void llava_backward(const Llava *m, LlavaActs *a, const double *dlogp) {
    const Backend *be = m->be;
    const LlavaConfig *c = &m->cfg;
    const int B = a->B, T = a->T, N = a->N, D = c->text.hidden, Cv = c->vision.hidden, P = c->image_tokens;
    CHECK_OR_DIE(a->backward, "llava_backward needs activations laid out for backward");
    if (a->M) be->upload_acc(a->l.dlogp, dlogp, a->M);
    llama_backward(&m->lm, &a->l, B, T, N, a->M, a->use_segments);
    if (m->lm.g.embed) be->embedding_backward(m->lm.g.embed, a->l.dres, a->embed_ids, N, D);
    int NI = 0;  // images actually encoded: recover from the largest source row used
    if (a->n_img_tokens == 0 || (!m->ps_projector.grad && !m->ps_vision.grad)) return;
    int *src = xmalloc(sizeof(int) * a->n_img_tokens);
    be->to_host(src, a->img_src, sizeof(int) * a->n_img_tokens);
    for (int i = 0; i < a->n_img_tokens; i++) if (src[i] / P + 1 > NI) NI = src[i] / P + 1;
    free(src);
    // image positions -> their feature rows (rows that share an image add up)
    be->zero(a->dp2, (size_t)NI * P * D * be->act_bytes);
    be->add_rows(a->dp2, a->img_src, a->l.dres, a->img_dst, a->n_img_tokens, D);
    be->matmul_backward(a->dp1, m->pg.w2, m->pg.b2, a->dp2, a->p1a, m->pw.w2, NI * P, D, D);
    be->act_backward(c->projector_act, a->dp1, a->dp1, a->p1, (size_t)NI * P * D);
    // the features' gradient only feeds a trained tower
    be->matmul_backward(m->ps_vision.grad ? a->dfeats : NULL, m->pg.w1, m->pg.b1, a->dp1, a->feats, m->pw.w1, NI * P, Cv, D);
    if (m->ps_vision.grad) {
        be->zero(a->v.enc.dres, (size_t)NI * m->vision.n_tokens * Cv * be->act_bytes);
        be->add_rows(a->v.enc.dres, a->feat_sel, a->dfeats, NULL, NI * P, Cv);
        vit_backward(&m->vision, &a->v, NULL, NULL, NI, c->vision_layers_run);
    }
}
