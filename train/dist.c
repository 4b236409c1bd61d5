#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

#ifdef VLM_MPI
#include <mpi.h>
#endif

#ifdef VLM_CUDA
int cuda_dist_set_device(int local_rank, char *why, size_t whylen);  // cuda/nccl.cu
#ifdef VLM_NCCL
size_t cuda_nccl_id_bytes(void);
void cuda_nccl_get_id(void *id);
void cuda_nccl_init(const void *id, int rank, int world);
void cuda_nccl_shards(void *x, int elem_bytes, const size_t *lo, const size_t *hi, int world, int gather);
const char *cuda_nccl_version(void);
#endif
#endif

static struct {
    int inited, rank, world, local_rank;
    int mpi;         // MPI_Init was called (and MPI_Finalize is due at exit)
    int nccl;        // the backend's collectives go through NCCL
    char describe[128];
} D = {0, 0, 1, 0, 0, 0, "one process"};

// The rank count and ranks a launcher put in the environment (Open MPI, MPICH/PMI, PMIx), or 0.
static int env_int(const char *const *names, int n) {
    for (int i = 0; i < n; i++) {
        const char *v = getenv(names[i]);
        if (v && v[0]) return atoi(v);
    }
    return -1;
}
static const char *const world_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "WORLD_SIZE"};
static const char *const local_vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMIX_LOCAL_RANK", "LOCAL_RANK"};

#ifdef VLM_MPI
// fatal()'s last act in a job of several ranks: the others may be waiting for this one in a collective, so
// the whole job ends here instead of hanging.
static void abort_job(void) {
    fprintf(stderr, "vlm: rank %d of %d failed (the error above); stopping every rank\n", D.rank, D.world);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void finalize(void) {
    if (D.mpi) MPI_Finalize();
    D.mpi = 0;
}

static void mpi_check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fatal("rank %d: %s: %s", D.rank, what, msg);
}

// MPI counts are ints: buffers are moved in pieces of at most this many elements.
#define MPI_PIECE ((size_t)1 << 28)

static MPI_Datatype mpi_type(int elem_bytes) {
    if (elem_bytes == 4) return MPI_FLOAT;
    if (elem_bytes == 8) return MPI_DOUBLE;
    fatal("internal: no MPI reduction for %d-byte elements (a CPU backend has fp32 or fp64)", elem_bytes);
}
#endif

void dist_init(void) {
    if (D.inited) return;
    D.inited = 1;
    const int want = env_int(world_vars, 4);
    D.local_rank = env_int(local_vars, 4) > 0 ? env_int(local_vars, 4) : 0;
#ifdef VLM_MPI
    // only under an MPI launcher: a plain run stays a plain process (no MPI_Init, no singleton daemon)
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
#ifdef VLM_CUDA
        // the GPU first: CUDA's context must come up on this rank's device
        char why[256] = "";  // no GPU: nothing to take (--device cuda then says why; the CPU backend needs none)
        cuda_dist_set_device(D.local_rank, why, sizeof(why));
#endif
        mpi_check(MPI_Init(NULL, NULL), "MPI_Init");
        D.mpi = 1;
        atexit(finalize);
        MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &D.world);
        // errors come back as codes (mpi_check names them) instead of MPI's own abort
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        if (D.world > 1) fatal_hook = abort_job;
        char lib[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(lib, &len);
        lib[strcspn(lib, ",\n")] = 0;
        snprintf(D.describe, sizeof(D.describe), "MPI (%.100s)", lib);
        if (want > 0 && want != D.world) fprintf(stderr, "vlm: warning: the launcher's environment says %d ranks, MPI %d\n", want, D.world);
        return;
    }
    if (want > 1)  // WORLD_SIZE alone: a torchrun-style launch, whose rendezvous is not built
        fatal("WORLD_SIZE=%d asks for %d ranks without an MPI launcher; vlm's ranks start with mpirun -np %d", want, want, want);
#else
    if (want > 1)
        fatal("the launcher asks for %d ranks, but this vlm was built without MPI (no mpicc at build time, or NO_MPI=1): "
              "it runs one process only. Install libopenmpi-dev (make deps) and rebuild, or run without mpirun",
              want);
#endif
}

void dist_use_backend(const Backend *be) {
    if (D.world == 1) return;
    if (strcmp(be->name, "cuda") != 0) return;  // the CPU backends: MPI on host memory
#if defined(VLM_CUDA) && defined(VLM_NCCL) && defined(VLM_MPI)
    char id[256];
    const size_t n = cuda_nccl_id_bytes();
    CHECK_OR_DIE(n <= sizeof(id), "ncclUniqueId of %zu bytes", n);
    if (D.rank == 0) cuda_nccl_get_id(id);
    mpi_check(MPI_Bcast(id, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the NCCL id");
    cuda_nccl_init(id, D.rank, D.world);
    D.nccl = 1;
    char mpi[128];
    snprintf(mpi, sizeof(mpi), "%s", D.describe);
    snprintf(D.describe, sizeof(D.describe), "NCCL %s (gradients, weights) + %.80s", cuda_nccl_version(), mpi);
#else
    fatal("--device cuda with %d ranks needs NCCL, and this binary was built without it (nccl.h was not found at build "
          "time)", D.world);
#endif
}

int dist_rank(void) { return D.rank; }
int dist_world(void) { return D.world; }
const char *dist_describe(void) { return D.describe; }

size_t dist_shard_cap(size_t numel, int world) { return (numel + (size_t)world - 1) / (size_t)world; }

void dist_shard_of(size_t numel, int r, size_t *lo, size_t *hi) {
    const size_t cap = dist_shard_cap(numel, D.world);
    *lo = (size_t)r * cap < numel ? (size_t)r * cap : numel;
    *hi = *lo + cap < numel ? *lo + cap : numel;
}

#ifdef VLM_MPI
// Every rank's shard of x through the library of x's memory: gather = 0 reduces shard r into rank r, 1 hands
// rank r's shard to every rank.
static void shards(const Backend *be, void *x, size_t numel, int gather) {
    size_t lo[D.world], hi[D.world];
    for (int r = 0; r < D.world; r++) dist_shard_of(numel, r, &lo[r], &hi[r]);
#ifdef VLM_NCCL
    if (D.nccl) {
        cuda_nccl_shards(x, be->act_bytes, lo, hi, D.world, gather);
        return;
    }
#endif
    CHECK_OR_DIE(strcmp(be->name, "cuda") != 0, "CUDA buffers go through NCCL (dist_use_backend)");
    const MPI_Datatype t = mpi_type(be->act_bytes);
    for (int r = 0; r < D.world; r++)
        for (size_t off = lo[r]; off < hi[r]; off += MPI_PIECE) {
            const int k = (int)(hi[r] - off < MPI_PIECE ? hi[r] - off : MPI_PIECE);
            char *p = (char *)x + off * (size_t)be->act_bytes;
            if (gather) mpi_check(MPI_Bcast(p, k, t, r, MPI_COMM_WORLD), "MPI_Bcast of a shard");
            else mpi_check(MPI_Reduce(D.rank == r ? MPI_IN_PLACE : p, p, k, t, MPI_SUM, r, MPI_COMM_WORLD), "MPI_Reduce of a shard");
        }
}
#endif

void dist_reduce_scatter(const Backend *be, void *x, size_t numel) {
#ifdef VLM_MPI
    if (D.world > 1) shards(be, x, numel, 0);
#endif
}

void dist_all_gather(const Backend *be, void *x, size_t numel) {
#ifdef VLM_MPI
    if (D.world > 1) shards(be, x, numel, 1);
#endif
}

void dist_sum(double *x, int n) {
#ifdef VLM_MPI
    if (D.world > 1) mpi_check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

int dist_max_int(int x) {
#ifdef VLM_MPI
    if (D.world > 1) mpi_check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
    return x;
}

void dist_all_gather_doubles(const double *mine, int n, double *all) {
    if (D.world == 1) {
        memcpy(all, mine, sizeof(double) * n);
        return;
    }
#ifdef VLM_MPI
    mpi_check(MPI_Allgather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
#endif
}

void dist_broadcast_doubles(double *x, size_t n, int root) {
#ifdef VLM_MPI
    if (D.world == 1) return;
    for (size_t off = 0; off < n; off += MPI_PIECE) {
        const int k = (int)(n - off < MPI_PIECE ? n - off : MPI_PIECE);
        mpi_check(MPI_Bcast(x + off, k, MPI_DOUBLE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
#endif
}

void dist_gather_to_root(void *host, size_t numel, int elem_bytes) {
#ifdef VLM_MPI
    if (D.world == 1) return;
    // point to point, a piece at a time: the checkpoint's shards are larger than an MPI count
    const size_t piece = MPI_PIECE / (size_t)elem_bytes;
    for (int r = 1; r < D.world; r++) {
        if (D.rank != 0 && D.rank != r) continue;
        size_t lo, hi;
        dist_shard_of(numel, r, &lo, &hi);
        for (size_t off = lo; off < hi; off += piece) {
            const int k = (int)((hi - off < piece ? hi - off : piece) * (size_t)elem_bytes);
            char *p = (char *)host + off * (size_t)elem_bytes;
            if (D.rank == 0) mpi_check(MPI_Recv(p, k, MPI_BYTE, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv of a shard");
            else mpi_check(MPI_Send(p, k, MPI_BYTE, 0, 7, MPI_COMM_WORLD), "MPI_Send of a shard");
        }
    }
#endif
}

void dist_barrier(void) {
#ifdef VLM_MPI
    if (D.world > 1) mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}
