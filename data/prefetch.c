#include "prefetch.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_END };

struct Prefetch {
    void *ctx;
    PrefetchClaim claim;
    PrefetchFill fill;
    int n_workers, depth;
    // guarded by mu:
    int *state;           // (depth) SLOT_*
    uint64_t *seq;        // (depth) the batch number each slot holds
    uint64_t next_claim;  // next batch number a worker claims
    uint64_t next_take;   // next batch number the consumer takes
    int held;             // the consumer holds batch next_take - 1
    int ended, stop, started;
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_free;
    pthread_t *threads;
};

// Under the lock: claims batch next_claim into its slot (SLOT_END when the stream has ended).
static int claim_next(Prefetch *p) {
    int slot = (int)(p->next_claim % (uint64_t)p->depth);
    p->seq[slot] = p->next_claim++;
    if (p->ended || !p->claim(p->ctx, slot, p->seq[slot])) {
        p->ended = 1;
        p->state[slot] = SLOT_END;
        return -1;
    }
    p->state[slot] = SLOT_FILLING;
    return slot;
}

static void *worker_main(void *arg) {
    Prefetch *p = arg;
    // the workers are the loader's parallelism: an OpenMP loop inside a fill (preprocess.c's resize) runs on this
    // thread alone instead of starting a team per worker next to the training step's own
    omp_set_num_threads(1);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && !p->ended && p->state[p->next_claim % (uint64_t)p->depth] != SLOT_FREE)
            pthread_cond_wait(&p->cv_free, &p->mu);
        if (p->stop || p->ended) break;
        int slot = claim_next(p);
        if (slot < 0) { pthread_cond_broadcast(&p->cv_ready); break; }
        pthread_mutex_unlock(&p->mu);
        p->fill(p->ctx, slot);
        pthread_mutex_lock(&p->mu);
        p->state[slot] = SLOT_READY;
        pthread_cond_broadcast(&p->cv_ready);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

Prefetch *prefetch_open(int n_workers, int depth, void *ctx, PrefetchClaim claim, PrefetchFill fill, const char *what) {
    if (n_workers < 0 || n_workers > 64) fatal("%s: %d loader workers (0..64)", what, n_workers);
    Prefetch *p = xcalloc(1, sizeof(Prefetch));
    p->ctx = ctx;
    p->claim = claim;
    p->fill = fill;
    p->n_workers = n_workers;
    if (n_workers == 0) p->depth = 1;
    else if (depth <= 0) p->depth = 2 * n_workers + 1;
    else p->depth = depth < 2 ? 2 : depth;  // one slot for the consumer, at least one to fill
    p->state = xcalloc((size_t)p->depth, sizeof(int));
    p->seq = xcalloc((size_t)p->depth, sizeof(uint64_t));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_ready, NULL);
    pthread_cond_init(&p->cv_free, NULL);
    p->threads = xcalloc((size_t)(n_workers ? n_workers : 1), sizeof(pthread_t));
    return p;
}

int prefetch_depth(const Prefetch *p) { return p->depth; }

void prefetch_start(Prefetch *p) {
    for (int i = 0; i < p->n_workers; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc) fatal("cannot start a loader thread: %s", strerror(rc));
    }
    p->started = 1;
}

int prefetch_next(Prefetch *p) {
    pthread_mutex_lock(&p->mu);
    if (p->held) {  // the batch handed out last time is done with: its slot can be refilled
        p->state[(p->next_take - 1) % (uint64_t)p->depth] = SLOT_FREE;
        p->held = 0;
        pthread_cond_broadcast(&p->cv_free);
    }
    int slot = (int)(p->next_take % (uint64_t)p->depth);
    if (p->n_workers == 0 && !p->ended) {
        int s = claim_next(p);
        if (s >= 0) {
            pthread_mutex_unlock(&p->mu);
            p->fill(p->ctx, s);
            pthread_mutex_lock(&p->mu);
            p->state[s] = SLOT_READY;
        }
    }
    // ready, or the end: claimed as SLOT_END, or no worker will ever claim this number
    while (!((p->state[slot] == SLOT_READY || p->state[slot] == SLOT_END) && p->seq[slot] == p->next_take) &&
           !(p->ended && p->next_take >= p->next_claim))
        pthread_cond_wait(&p->cv_ready, &p->mu);
    int ready = p->state[slot] == SLOT_READY && p->seq[slot] == p->next_take;
    if (ready) { p->next_take++; p->held = 1; }
    pthread_mutex_unlock(&p->mu);
    return ready ? slot : -1;
}

void prefetch_close(Prefetch *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_free);
    pthread_mutex_unlock(&p->mu);
    if (p->started) for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_ready);
    pthread_cond_destroy(&p->cv_free);
    free(p->state); free(p->seq); free(p->threads);
    free(p);
}
