// Data-parallel training across processes ("ranks"): `mpirun -np N vlm train ...` starts N copies of the run,
// one per GPU on the CUDA backend. MPI launches and bootstraps them and carries the collectives on host memory
// (the CPU backend, the checkpoint's gather); NCCL carries them on device memory (the CUDA backend's gradients
// and weights), with its unique id handed out over MPI. Nothing here is a transport of our own.
//
// The state is the process's (as MPI's is): dist_init once, then every function reads it. A process that was
// not started by an MPI launcher is rank 0 of 1 and never touches MPI, so single-process runs and the tests are
// exactly what they were. A binary built without MPI (make NO_MPI=1, or no mpicc at build time) refuses a
// launch of more than one rank by name.
//
// Sharding (ZeRO-1, train/optim.h): a flat buffer of numel elements is cut into `world` contiguous shards of
// ceil(numel / world) elements (the last one shorter, possibly empty); rank r owns shard r. The memory plan
// (train/plan.h) counts the same ceil(numel / world) per rank.
//
// A rank that fails (fatal) aborts the whole job through MPI_Abort, so no rank waits forever in a collective
// for a peer that is gone; mpirun reports a rank killed by a signal and ends the others.
#pragma once
#include <stddef.h>

#include "../model/ops.h"

// Joins the job when an MPI launcher started this process (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the
// environment); else one rank. On the CUDA build each rank takes GPU (local rank mod the GPUs it sees) before
// any CUDA call. Idempotent. Dies naming the reason when the launch asks for more than one rank and this binary
// has no MPI.
void dist_init(void);
// After backend_select: the communicator of the backend's memory (NCCL for CUDA when world > 1). Dies when
// the backend cannot run world > 1 (CUDA built without NCCL).
void dist_use_backend(const Backend *be);
int dist_rank(void);
int dist_world(void);
// What the library under the collectives is, for the log: "MPI (Open MPI v4.1.4)", "NCCL 2.28.3 + MPI", ...
const char *dist_describe(void);

// Rank r's shard [*lo, *hi) of a flat buffer of numel elements (see above).
void dist_shard_of(size_t numel, int r, size_t *lo, size_t *hi);
// ceil(numel / world): the elements every rank allocates for its shard.
size_t dist_shard_cap(size_t numel, int world);

// Collectives on a backend buffer x of numel act-type elements (every rank calls them with the same numel):
//   reduce_scatter: rank r's shard of x becomes the sum over ranks of that shard (the rest of x is left as it was)
//   all_gather: every rank's x becomes each rank's own shard put together
// Rank r's sum is reduced at root r in one fixed order, so the same inputs give the same bits.
void dist_reduce_scatter(const Backend *be, void *x, size_t numel);
void dist_all_gather(const Backend *be, void *x, size_t numel);
// x (n) host doubles: every rank gets the sums over ranks.
void dist_sum(double *x, int n);
// The largest x over the ranks, on every rank.
int dist_max_int(int x);
// mine (n) host doubles of each rank into all (world, n) on every rank, in rank order.
void dist_all_gather_doubles(const double *mine, int n, double *all);
// x (n) host doubles, identical on every rank afterwards: rank root's values.
void dist_broadcast_doubles(double *x, size_t n, int root);
// A host buffer of numel elements of elem_bytes: rank 0's buffer receives every rank's shard (its own is in
// place already); the others' buffers are not changed.
void dist_gather_to_root(void *host, size_t numel, int elem_bytes);
void dist_barrier(void);
