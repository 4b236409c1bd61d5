#include "generate.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/threads.h"

void gen_init(Generator *g, const Llava *m, int slots, int cap_prompt, int cap_new, int prefill_rows, int max_images) {
    memset(g, 0, sizeof(*g));
    CHECK_OR_DIE(slots >= 1 && cap_prompt >= 1 && cap_new >= 1 && prefill_rows >= 1 && max_images >= 1,
                 "generator sizes must be positive");
    const Backend *be = m->be;
    const Llama *lm = &m->lm;
    const LlamaConfig *c = &lm->cfg;
    const int L = c->layers, D = c->hidden, F = c->intermediate, V = c->vocab;
    g->m = m;
    g->slots = slots;
    g->cap_prompt = cap_prompt;
    g->cap = cap_prompt + cap_new;
    g->prefill_rows = prefill_rows;
    g->max_images = max_images;
    g->rows = slots > prefill_rows ? slots : prefill_rows;
    g->V = V;
    KVCache *kv = &g->kv;
    kv->layers = L;
    kv->slots = slots;
    kv->cap = g->cap;
    kv->kvdim = lm->kvdim;
    kv->k = xcalloc(L, sizeof(void *));
    kv->v = xcalloc(L, sizeof(void *));
    kv->len = xcalloc(slots, sizeof(int));
    const size_t R = g->rows, cache = (size_t)slots * g->cap * lm->kvdim;
    g->arena = arena_new(be);
    for (int pass = 0; pass < 2; pass++) {
        Arena *ar = &g->arena;
        for (int l = 0; l < L; l++) {
            kv->k[l] = arena_act(ar, cache);
            kv->v[l] = arena_act(ar, cache);
        }
        g->x = arena_act(ar, R * D);
        g->ln = arena_act(ar, R * D);
        g->rstd = arena_acc(ar, R);
        g->qkv = arena_act(ar, R * lm->qkvdim);
        g->att = arena_act(ar, R * lm->qdim);
        g->mid = arena_act(ar, R * D);
        g->gu = arena_act(ar, R * 2 * F);
        g->h = arena_act(ar, R * F);
        g->proj = arena_act(ar, R * D);
        g->fin = arena_act(ar, R * D);
        g->fin_rstd = arena_acc(ar, R);
        g->logits = arena_act(ar, R * V);
        g->ids = arena_int(ar, R);
        g->pos = arena_int(ar, R);
        g->len = arena_int(ar, R);
        g->slot = arena_int(ar, R);
        g->dst = arena_int(ar, R);
        g->sel = arena_int(ar, R);
        g->dst_pre = arena_int(ar, (size_t)prefill_rows * cap_prompt);
        if (pass == 0) arena_commit(ar);
    }
    // the prefill is llava_forward itself: max_images per row at most
    llava_acts_init(&g->pre, m, prefill_rows, cap_prompt, prefill_rows * max_images, 0, ACTS_INFERENCE);
    g->capture.k = kv->k;
    g->capture.v = kv->v;
    g->capture.dst = g->dst_pre;
    g->logits_host = xmalloc(sizeof(float) * R * V);
    g->h_pos = xmalloc(sizeof(int) * R);
    g->h_len = xmalloc(sizeof(int) * R);
    g->h_dst = xmalloc(sizeof(int) * (R > (size_t)prefill_rows * cap_prompt ? R : (size_t)prefill_rows * cap_prompt));
    g->replays = xcalloc(slots, sizeof(void *));
}

void gen_free(Generator *g) {
    const Backend *be = g->m ? g->m->be : NULL;
    for (int i = 0; g->replays && i < g->slots; i++)
        if (g->replays[i] && be->replay_free) be->replay_free(g->replays[i]);
    free(g->replays);
    llava_acts_free(&g->pre);
    arena_free(&g->arena);
    free(g->kv.k); free(g->kv.v); free(g->kv.len);
    free(g->logits_host); free(g->h_pos); free(g->h_len); free(g->h_dst);
    memset(g, 0, sizeof(*g));
}

// lm_head on n rows of the final norm's output fin (n, D) -> logits (n, V)
static void gen_head(Generator *g, int n) {
    const Llama *lm = &g->m->lm;
    g->m->be->matmul_forward(g->logits, g->fin, lm->w.lm_head, NULL, n, lm->cfg.hidden, g->V);  // (n, V)
}

static float *gen_logits_to_host(Generator *g, int n) {
    g->m->be->download_act(g->logits_host, g->logits, (size_t)n * g->V);
    return g->logits_host;
}

float *gen_prefill(Generator *g, const LlavaBatch *bt, const int *slot_of_row) {
    const Backend *be = g->m->be;
    const Llama *lm = &g->m->lm;
    const int B = bt->B, T = bt->T, D = lm->cfg.hidden, L = lm->cfg.layers;
    if (B > g->prefill_rows || T > g->cap_prompt)
        fatal("prefill of %d rows x %d tokens exceeds the generator's %d rows x %d tokens", B, T, g->prefill_rows, g->cap_prompt);
    CHECK_OR_DIE(!bt->labels && !bt->all_logits, "the prefill batch takes no labels");
    // The decoder runs on the rows' tokens, row after row without the padding (llava_token_layout), as
    // llava_forward lays them out: the cache row of every token, and the token (and grid cell) of each
    // row's last prompt token, which the head reads (llava_forward has checked the lengths); the last
    // layer runs on those rows only past its attention (llama_forward), the keys and values cover every token.
    int *cell = xmalloc(sizeof(int) * B);
    const int N = llava_token_layout(g->m, bt, g->h_pos);  // h_pos: each row's first token
    for (int b = 0; b < B; b++) {
        const int len = bt->lengths ? bt->lengths[b] : T, s = slot_of_row[b], n0 = g->h_pos[b];
        CHECK_OR_DIE(s >= 0 && s < g->slots, "prefill row %d: slot %d out of range", b, s);
        for (int t = 0; t < len; t++) g->h_dst[n0 + t] = s * g->cap + t;
        if (N == B * T) for (int t = len; t < T; t++) g->h_dst[n0 + t] = -1;  // the grid: padding is not kept
        g->h_pos[b] = n0 + len - 1;
        cell[b] = b * T + len - 1;
    }
    be->to_device(g->dst_pre, g->h_dst, sizeof(int) * N);
    be->to_device(g->sel, g->h_pos, sizeof(int) * B);
    LlavaActs *a = &g->pre;
    be->to_device(a->l.sel_grid, cell, sizeof(int) * B);
    free(cell);
    a->l.kv = &g->capture;
    a->l.last_sel = g->sel;
    a->l.n_last_sel = B;
    llava_forward(g->m, a, bt);  // no labels: no outputs, the layers run and fill the cache
    a->l.kv = NULL;
    a->l.last_sel = NULL;
    CHECK_OR_DIE(a->N == N, "internal: the prefill's token layout");
    for (int b = 0; b < B; b++) g->kv.len[slot_of_row[b]] = bt->lengths ? bt->lengths[b] : T;
    const int pruned = a->l.last_rows < N;  // res[L] holds the B selected rows, in order
    be->copy_rows(g->x, NULL, a->l.res[L], pruned ? NULL : g->sel, B, D);
    be->rmsnorm_forward(g->fin, g->fin_rstd, g->x, lm->w.norm_w, B, D, lm->cfg.eps);
    gen_head(g, B);
    return gen_logits_to_host(g, B);
}

typedef struct {
    Generator *g;
    int n;
} DecodeStep;

// The device work of a decode step on n rows whose inputs (ids, pos, len, slot, dst) are in place: the same
// ops on the same buffers at every step with n rows, so the backend can replay it (Backend.replay).
static void decode_step_ops(void *arg) {
    const DecodeStep *st = (const DecodeStep *)arg;
    Generator *g = st->g;
    const int n = st->n;
    const Backend *be = g->m->be;
    const Llama *lm = &g->m->lm;
    const LlamaConfig *c = &lm->cfg;
    const int D = c->hidden, F = c->intermediate, HD = c->head_dim, qdim = lm->qdim, qkvdim = lm->qkvdim;
    DecodeShape ds = {n, c->heads, c->kv_heads, HD, qkvdim, g->cap, g->len, g->slot};
    // Each residual add is fused with the norm that reads its sum (add_rmsnorm_forward): the attention's with
    // the layer's post-attention norm, the MLP's with the next layer's input norm, or after the last layer
    // with the final norm. Only layer 0's input norm stands alone.
    be->embedding_forward(g->x, g->ids, lm->w.embed, n, D);                                  // (n, D)
    be->rmsnorm_forward(g->ln, g->rstd, g->x, lm->lw[0].ln1_w, n, D, c->eps);
    for (int l = 0; l < c->layers; l++) {
        const LlamaLayerW *w = &lm->lw[l];
        be->matmul_forward(g->qkv, g->ln, w->qkv_w, w->qkv_b, n, D, qkvdim);                  // (n, q | k | v)
        // q and k rotated, k and v appended to the cache at dst
        be->rope_kv_append(g->qkv, g->pos, g->kv.k[l], g->kv.v[l], g->dst, n, c->heads, c->kv_heads, HD, qkvdim,
                           c->rope_theta);
        be->attention_decode(g->att, g->qkv, g->kv.k[l], g->kv.v[l], &ds);                     // (n, H*HD)
        be->matmul_forward(g->proj, g->att, w->o_w, w->o_b, n, qdim, D);
        be->add_rmsnorm_forward(g->mid, g->ln, g->rstd, g->x, g->proj, w->ln2_w, n, D, c->eps);  // mid = x + proj
        be->matmul_swiglu_forward(g->h, g->gu, g->ln, w->gu_w, w->gu_b, n, D, F);             // (n, F)
        be->matmul_forward(g->proj, g->h, w->down_w, w->down_b, n, F, D);
        if (l + 1 < c->layers)  // x = mid + proj, the next layer's input
            be->add_rmsnorm_forward(g->x, g->ln, g->rstd, g->mid, g->proj, lm->lw[l + 1].ln1_w, n, D, c->eps);
        else
            be->add_rmsnorm_forward(g->x, g->fin, g->fin_rstd, g->mid, g->proj, lm->w.norm_w, n, D, c->eps);
    }
    gen_head(g, n);
}

float *gen_decode(Generator *g, int n, const int *slots, const int *tokens) {
    const Backend *be = g->m->be;
    CHECK_OR_DIE(n >= 1 && n <= g->slots, "decode step of %d rows with %d slots", n, g->slots);
    for (int i = 0; i < n; i++) {
        const int s = slots[i], p = g->kv.len[s];
        CHECK_OR_DIE(s >= 0 && s < g->slots, "decode row %d: slot %d out of range", i, s);
        if (p >= g->cap) fatal("slot %d: the KV cache is full (%d positions)", s, g->cap);
        if (tokens[i] < 0 || tokens[i] >= g->V) fatal("decode row %d: token id %d is outside the vocabulary (%d)", i, tokens[i], g->V);
        g->h_pos[i] = p;        // the new token's position: the sequence so far
        g->h_len[i] = p + 1;    // it attends to itself too
        g->h_dst[i] = s * g->cap + p;
    }
    be->to_device(g->ids, tokens, sizeof(int) * n);
    be->to_device(g->pos, g->h_pos, sizeof(int) * n);
    be->to_device(g->len, g->h_len, sizeof(int) * n);
    be->to_device(g->slot, slots, sizeof(int) * n);
    be->to_device(g->dst, g->h_dst, sizeof(int) * n);
    DecodeStep st = {g, n};
    be_replay(be, &g->replays[n - 1], decode_step_ops, &st);  // one cache per row count
    for (int i = 0; i < n; i++) g->kv.len[slots[i]]++;
    return gen_logits_to_host(g, n);
}

void gen_fork(Generator *g, int src, int dst) {
    const Backend *be = g->m->be;
    const KVCache *kv = &g->kv;
    const size_t slot_elems = (size_t)kv->cap * kv->kvdim, bytes = (size_t)kv->len[src] * kv->kvdim * be->act_bytes;
    for (int l = 0; l < kv->layers; l++) {
        be->copy(act_at(be, kv->k[l], dst * slot_elems), act_at(be, kv->k[l], src * slot_elems), bytes);
        be->copy(act_at(be, kv->v[l], dst * slot_elems), act_at(be, kv->v[l], src * slot_elems), bytes);
    }
    g->kv.len[dst] = kv->len[src];
}

// ----------------------------------------------------------------------------------------------------
// the driver

const char *gen_finish_name(GenFinish f) {
    return f == GEN_FINISH_EOS ? "eos" : f == GEN_FINISH_STOP ? "stop" : "length";
}

typedef struct {
    int prompt, sample;  // prompt -1: the slot is free
    int *ids, n;         // (max_new_tokens) the new tokens so far
} Seq;

typedef struct {
    Generator *g;
    const GenConfig *c;
    const GenCallbacks *cb;
    GenStats *st;
    Seq *seq;            // (slots)
} Run;

// Adds a token to the sequence in slot s; reports the sequence and frees the slot when it has finished.
static void seq_push(Run *r, int s, int token) {
    const GenConfig *c = r->c;
    Seq *q = &r->seq[s];
    q->ids[q->n++] = token;
    r->st->new_tokens++;
    int finish = -1;
    char *text = NULL;
    if (c->eos_id >= 0 && token == c->eos_id) finish = GEN_FINISH_EOS;
    if (finish < 0 && c->n_stop > 0) {
        // the whole text again: a piece may complete a stop string that began several tokens back, and byte
        // fallback runs decode only once complete
        text = r->cb->detok(r->cb->ctx, q->ids, q->n);
        char *cut = NULL;
        for (int i = 0; i < c->n_stop; i++) {
            char *at = strstr(text, c->stop[i]);
            if (at && (!cut || at < cut)) cut = at;
        }
        if (cut) { *cut = 0; finish = GEN_FINISH_STOP; }
    }
    if (finish < 0 && q->n >= c->max_new_tokens) finish = GEN_FINISH_LENGTH;
    if (finish < 0) { free(text); return; }
    if (!text && r->cb->detok) text = r->cb->detok(r->cb->ctx, q->ids, finish == GEN_FINISH_EOS ? q->n - 1 : q->n);
    GenOutput o = {q->prompt, q->sample, q->ids, q->n, (GenFinish)finish, text};
    r->cb->emit(r->cb->ctx, &o);
    free(text);
    q->prompt = -1;
    q->n = 0;
}

// The token for row `row` of logits (V) of sequence (prompt, sample) at step t; dies on broken logits.
static int pick(const Run *r, const float *logits, int prompt, int sample, int step, SampleWork *w) {
    const GenConfig *c = r->c;
    double u = sample_is_greedy(&c->sampler) ? 0 : sample_uniform(c->seed, (uint64_t)prompt, (uint32_t)sample, (uint32_t)step);
    int tok = sample_token(logits, r->g->V, &c->sampler, u, w);
    if (tok < 0) fatal("prompt %d, sample %d, step %d: the logits are not finite (a broken model?)", prompt, sample, step);
    return tok;
}

void gen_run(Generator *g, const GenConfig *c, const GenPrompt *prompts, int n_prompts, const GenCallbacks *cb,
             GenStats *stats) {
    const Llava *m = g->m;
    const int V = g->V, S = m->cfg.vision.image_size, ns = c->n_samples, max_new = c->max_new_tokens;
    if (ns < 1 || ns > g->slots) fatal("%d samples per prompt need as many slots; the generator has %d", ns, g->slots);
    if (max_new < 1 || max_new > g->cap - g->cap_prompt)
        fatal("max_new_tokens %d is outside 1..%d (the generator's capacity)", max_new, g->cap - g->cap_prompt);
    if (c->n_stop > 0 && !cb->detok) fatal("stop strings need a tokenizer to decode the text");
    for (int i = 0; i < n_prompts; i++) {
        if (prompts[i].n < 1) fatal("prompt %d is empty", i);
        if (prompts[i].n > g->cap_prompt)
            fatal("prompt %d has %d tokens, more than the generator's %d", i, prompts[i].n, g->cap_prompt);
        if (prompts[i].n_images < 0 || prompts[i].n_images > g->max_images)
            fatal("prompt %d has %d images; the generator takes 0 to %d", i, prompts[i].n_images, g->max_images);
    }
    GenStats st_local;
    GenStats *st = stats ? stats : &st_local;
    memset(st, 0, sizeof(*st));
    Run r = {g, c, cb, st, xcalloc(g->slots, sizeof(Seq))};
    for (int s = 0; s < g->slots; s++) { r.seq[s].prompt = -1; r.seq[s].ids = xmalloc(sizeof(int) * max_new); }
    const int P = g->prefill_rows, PI = P * g->max_images, nthreads = omp_get_max_threads();
    SampleWork *work = xmalloc(sizeof(SampleWork) * nthreads);
    for (int t = 0; t < nthreads; t++) sample_work_init(&work[t], V);
    int *ids = xmalloc(sizeof(int) * P * g->cap_prompt), *lengths = xmalloc(sizeof(int) * P);
    int *img_of = xmalloc(sizeof(int) * P), *n_img_of = xmalloc(sizeof(int) * P);
    int *row_slot = xmalloc(sizeof(int) * P), *row_prompt = xmalloc(sizeof(int) * P);
    int *img_key = xmalloc(sizeof(int) * PI);  // the key of each image of the prefill (GenCallbacks.image_key)
    int *keys = xmalloc(sizeof(int) * g->max_images);  // the admitted prompt's image keys
    float *pixels = xmalloc(sizeof(float) * (size_t)PI * 3 * S * S);
    int *act_slot = xmalloc(sizeof(int) * g->slots), *act_tok = xmalloc(sizeof(int) * g->slots), *next_tok = xmalloc(sizeof(int) * g->slots);
    int next = 0;
    for (;;) {
        threads_adapt();  // 1 thread while other processes hold the cores (util/threads.h); the same outputs
        // ---- admit prompts into free slots and prefill them together
        int n_free = 0, B = 0, T = 0, NI = 0;
        for (int s = 0; s < g->slots; s++) n_free += r.seq[s].prompt < 0;
        while (next < n_prompts && n_free >= ns && B < P) {
            for (int j = 0, s = 0; j < ns; j++, s++) {  // the lowest free slots; the first holds the prefill
                while (r.seq[s].prompt >= 0) s++;
                r.seq[s].prompt = next;
                r.seq[s].sample = j;
                r.seq[s].n = 0;
                if (j == 0) row_slot[B] = s;
            }
            n_free -= ns;
            row_prompt[B] = next;
            // the row's images are consecutive prefill images (model/llava.h): a run the prefill already has
            // (the same keys) is shared, not encoded again; else each image goes into the next place
            const int k_n = prompts[next].n_images;
            img_of[B] = -1;
            n_img_of[B] = k_n;
            int keyed = k_n > 0 && cb->image_key;
            for (int k = 0; k < k_n && keyed; k++) keyed = (keys[k] = cb->image_key(cb->ctx, next, k)) >= 0;
            for (int i = 0; keyed && i + k_n <= NI && img_of[B] < 0; i++)
                if (!memcmp(img_key + i, keys, sizeof(int) * k_n)) img_of[B] = i;
            if (k_n > 0 && img_of[B] < 0) {
                img_of[B] = NI;
                for (int k = 0; k < k_n; k++, NI++) {
                    cb->pixels(cb->ctx, next, k, pixels + (size_t)NI * 3 * S * S);
                    img_key[NI] = keyed ? keys[k] : -1;
                }
            }
            if (prompts[next].n > T) T = prompts[next].n;
            B++;
            next++;
        }
        if (B > 0) {
            for (int b = 0; b < B; b++) {
                const GenPrompt *p = &prompts[row_prompt[b]];
                lengths[b] = p->n;
                for (int t = 0; t < T; t++) ids[b * T + t] = t < p->n ? p->ids[t] : 0;  // right padding
                st->prompt_tokens += p->n;
            }
            double t0 = now_seconds();
            LlavaBatch bt = {.B = B, .T = T, .ids = ids, .lengths = lengths, .image_of_row = NI ? img_of : NULL,
                             .images_of_row = NI ? n_img_of : NULL, .n_images = NI, .pixels = pixels};
            const float *lg = gen_prefill(g, &bt, row_slot);
            st->prefill_seconds += now_seconds() - t0;
            st->prefills++;
            // the prompt's other samples start from a copy of its cache; then every sample draws its first token
            // from the prompt's logits
            for (int b = 0; b < B; b++) {
                const int prompt = row_prompt[b];
                for (int s = 0; s < g->slots; s++) {
                    if (r.seq[s].prompt != prompt || r.seq[s].n != 0) continue;
                    if (s != row_slot[b]) gen_fork(g, row_slot[b], s);
                }
                for (int s = 0; s < g->slots; s++)
                    if (r.seq[s].prompt == prompt && r.seq[s].n == 0)
                        seq_push(&r, s, pick(&r, lg + (size_t)b * V, prompt, r.seq[s].sample, 0, &work[0]));
            }
        }
        // ---- one decode step for every unfinished sequence
        int n = 0;
        for (int s = 0; s < g->slots; s++)
            if (r.seq[s].prompt >= 0) { act_slot[n] = s; act_tok[n] = r.seq[s].ids[r.seq[s].n - 1]; n++; }
        if (n == 0) {
            if (next >= n_prompts) break;
            continue;
        }
        double t0 = now_seconds();
        const float *lg = gen_decode(g, n, act_slot, act_tok);
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const Seq *q = &r.seq[act_slot[i]];
            next_tok[i] = pick(&r, lg + (size_t)i * V, q->prompt, q->sample, q->n, &work[omp_get_thread_num()]);
        }
        st->decode_seconds += now_seconds() - t0;
        st->steps++;
        for (int i = 0; i < n; i++) seq_push(&r, act_slot[i], next_tok[i]);
    }
    for (int t = 0; t < nthreads; t++) sample_work_free(&work[t]);
    for (int s = 0; s < g->slots; s++) free(r.seq[s].ids);
    free(r.seq); free(work); free(ids); free(lengths); free(img_of); free(n_img_of); free(img_key); free(keys); free(row_slot); free(row_prompt); free(pixels);
    free(act_slot); free(act_tok); free(next_tok);
}
