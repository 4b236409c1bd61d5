// The CUDA side of data-parallel training (train/dist.h): each rank's GPU, and NCCL's collectives on the
// gradients and weights in device memory, on the backend's one stream. NCCL's unique id travels over MPI
// (train/dist.c); here nothing knows about MPI. Built with NCCL where nccl.h was found (VLM_NCCL).
// Checked by: dev/gpu_session.sh's data-parallel runs (world size 1, and 2 ranks on one GPU).
#include <stdio.h>
#include <string.h>

#include "common.cuh"

#ifdef VLM_NCCL
#include <nccl.h>
#endif

// This rank's GPU: local rank mod the GPUs the process sees (one rank per GPU on a node; two ranks share the
// one GPU of a test machine). Returns 0 with a reason when there is no usable device (the CPU backend may run).
extern "C" int cuda_dist_set_device(int local_rank, char *why, size_t whylen) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        snprintf(why, whylen, "no GPU to take (%s)", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        cudaGetLastError();
        return 0;
    }
    CUDA_CHECK(cudaSetDevice(local_rank % count));
    return 1;
}

#ifdef VLM_NCCL
static ncclComm_t comm;

#define NCCL_CHECK(call)                                                                               \
    do {                                                                                               \
        ncclResult_t r_ = (call);                                                                      \
        if (r_ != ncclSuccess)                                                                         \
            fatal("%s:%d: NCCL error %d: %s (in %s)", __FILE__, __LINE__, (int)r_, ncclGetErrorString(r_), #call); \
    } while (0)

extern "C" size_t cuda_nccl_id_bytes(void) { return sizeof(ncclUniqueId); }

extern "C" void cuda_nccl_get_id(void *id) { NCCL_CHECK(ncclGetUniqueId((ncclUniqueId *)id)); }

extern "C" void cuda_nccl_init(const void *id, int rank, int world) {
    ncclUniqueId u;
    memcpy(&u, id, sizeof(u));
    NCCL_CHECK(ncclCommInitRank(&comm, world, u, rank));
}

// "2.28.3": the library's version at run time (the header's may be older)
extern "C" const char *cuda_nccl_version(void) {
    static char s[32];
    int v = 0;
    NCCL_CHECK(ncclGetVersion(&v));
    snprintf(s, sizeof(s), "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
    return s;
}

static ncclDataType_t nccl_type(int elem_bytes) {
    if (elem_bytes == 2) return ncclBfloat16;
    if (elem_bytes == 4) return ncclFloat;
    if (elem_bytes == 8) return ncclDouble;
    fatal("internal: no NCCL type of %d bytes", elem_bytes);
}

// The shards [lo[r], hi[r]) of x, in one NCCL group on the backend's stream: gather = 0 sums shard r into rank
// r (ncclReduce at root r, in place: a reduce-scatter whose shards need not be equal), 1 broadcasts rank r's
// shard to every rank (an all-gather, in place).
extern "C" void cuda_nccl_shards(void *x, int elem_bytes, const size_t *lo, const size_t *hi, int world, int gather) {
    const ncclDataType_t t = nccl_type(elem_bytes);
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < world; r++) {
        if (hi[r] == lo[r]) continue;
        char *p = (char *)x + lo[r] * (size_t)elem_bytes;
        if (gather) NCCL_CHECK(ncclBroadcast(p, p, hi[r] - lo[r], t, r, comm, stream_main()));
        else NCCL_CHECK(ncclReduce(p, p, hi[r] - lo[r], t, ncclSum, r, comm, stream_main()));
    }
    NCCL_CHECK(ncclGroupEnd());
}
#endif
