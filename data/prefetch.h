// The prefetching loader: a ring of batch slots that background threads fill in order while the consumer
// works on the batch before, so decoding and preprocessing overlap the training step. Memory is the ring's
// slots (the consumer's batch and depth - 1 made ahead), whatever the size of the data.
//
// One home for the threads, the queue and its ordering; what a batch is belongs to the client (data/shard.c's
// ShardLoader, train/data.c's TrainStream), through two callbacks:
//   claim(ctx, slot, seq)  under the ring's lock, in batch order: decides what batch `seq` holds (cheap: the
//                          next records of the order) and writes it into slot `slot`; returns 0 when the stream
//                          has ended (no batch `seq`)
//   fill(ctx, slot)        outside the lock, on a worker: the work (decode, preprocess) for the slot's batch
// Batches come out in claim order whatever the number of workers, so results never depend on it.
#pragma once
#include <stdint.h>

typedef struct Prefetch Prefetch;
typedef int (*PrefetchClaim)(void *ctx, int slot, uint64_t seq);
typedef void (*PrefetchFill)(void *ctx, int slot);

// n_workers 0: each batch is claimed and filled on the calling thread, in prefetch_next (one slot is used).
// depth: ring slots (the consumer's batch + those made ahead; 0: 2 * n_workers + 1; at least 2 with workers).
// what: named in messages. Returns the ring; prefetch_depth says how many slots the client must provide.
Prefetch *prefetch_open(int n_workers, int depth, void *ctx, PrefetchClaim claim, PrefetchFill fill, const char *what);
int prefetch_depth(const Prefetch *p);
// Starts the workers (after the client has allocated prefetch_depth slots).
void prefetch_start(Prefetch *p);
// Releases the slot handed out last time and returns the slot of the next batch, or -1 when the stream ended.
int prefetch_next(Prefetch *p);
// Stops the workers (a batch being filled is finished first) and frees the ring.
void prefetch_close(Prefetch *p);
