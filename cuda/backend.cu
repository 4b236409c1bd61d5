// The CUDA backend: device check, the one stream, memory and host transfers, and the table `backend_cuda`
// that model/backend.c hands out for --device cuda|auto. The ops themselves live in the other cuda/*.cu.
// Checked by: every test of tests/test_cuda.c (make test-cuda) goes through it; cuda_build_precision checks
// the act type it reports, cuda_resume_is_bit_exact its transfers.
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

// ----------------------------------------------------------------------------------------------------
// device and stream

__global__ void probe_kernel(int *p) {
    if (p) *p = 1;
}

// 1 when device 0 can run this binary's kernels. Without a driver cudaGetDeviceCount returns an error:
// that is the cue to fall back to the CPU. A GPU whose architecture the binary was not built for (it
// holds sm_80 and sm_90a code) fails the kernel-image probe.
extern "C" int cuda_device_usable(char *why, size_t whylen) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        snprintf(why, whylen, "cudaGetDeviceCount: %s", cudaGetErrorString(err));
        cudaGetLastError();  // clear the error state so later calls start clean
        return 0;
    }
    if (count == 0) {
        snprintf(why, whylen, "no CUDA device found");
        return 0;
    }
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, 0);
    if (err != cudaSuccess) {
        snprintf(why, whylen, "cudaGetDeviceProperties: %s", cudaGetErrorString(err));
        cudaGetLastError();
        return 0;
    }
    cudaFuncAttributes attr;
    err = cudaFuncGetAttributes(&attr, probe_kernel);
    if (err != cudaSuccess) {
        snprintf(why, whylen, "%s (compute capability %d.%d) cannot run this build (sm_80, sm_90a): %s", prop.name,
                 prop.major, prop.minor, cudaGetErrorString(err));
        cudaGetLastError();
        return 0;
    }
    return 1;
}

static cudaStream_t main_stream;
static int main_stream_made;

// A blocking stream (ordered with the legacy default stream too, so a stray default-stream call from a
// library cannot race it). Created on first use.
extern "C" void *cuda_stream(void) {
    if (!main_stream_made) {
        CUDA_CHECK(cudaStreamCreate(&main_stream));
        main_stream_made = 1;
    }
    return (void *)main_stream;
}

static void cuda_synchronize(void) { CUDA_CHECK(cudaStreamSynchronize(stream_main())); }

// ----------------------------------------------------------------------------------------------------
// memory

static void *cuda_malloc(size_t bytes) {
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);  // never NULL: NULL means "no buffer" to the ops
    if (err != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        fatal("cudaMalloc of %.1f MiB failed: %s (GPU memory: %.1f MiB free of %.1f MiB)", bytes / 1048576.0,
              cudaGetErrorString(err), free_b / 1048576.0, total_b / 1048576.0);
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 1, stream_main()));
    return p;
}

// Device memory in use now (the context, cuBLAS/cuDNN workspaces and every buffer): all our buffers are
// allocated up front, so after a step this is the run's footprint.
extern "C" size_t cuda_memory_used(void) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}

static void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

static void cuda_zero(void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_main()));
}

static void cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_main()));
}

static void *scratch_buf;
static size_t scratch_bytes;
static unsigned scratch_generation;

unsigned cuda_scratch_generation(void) { return scratch_generation; }

void *cuda_scratch(size_t bytes) {
    if (bytes > scratch_bytes) {
        if (scratch_buf) {
            CUDA_CHECK(cudaStreamSynchronize(stream_main()));  // queued kernels may still use the old one
            CUDA_CHECK(cudaFree(scratch_buf));
        }
        size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes + bytes / 4;
        CUDA_CHECK(cudaMalloc(&scratch_buf, want));
        scratch_bytes = want;
        scratch_generation++;
    }
    return scratch_buf;
}

// ----------------------------------------------------------------------------------------------------
// host transfers through a pinned staging ring
//
// Host -> device copies (token ids, positions, pixels: every step) are written into a pinned ring and
// the DMA is queued on the stream, so the host does not wait for the GPU. When the ring wraps around we
// wait for the last queued copy, which stream order makes the last user of the whole ring. Device -> host
// copies wait for the stream anyway (the host needs the data).

#define STAGING_BYTES ((size_t)32 << 20)
#define STAGING_CHUNK (STAGING_BYTES / 2)  // largest single piece, so a wrap always makes room
static char *staging;
static size_t staging_pos;
static cudaEvent_t staging_done;
static int staging_pending;

static char *staging_take(size_t bytes) {
    if (!staging) {
        CUDA_CHECK(cudaHostAlloc((void **)&staging, STAGING_BYTES, cudaHostAllocDefault));
        CUDA_CHECK(cudaEventCreateWithFlags(&staging_done, cudaEventDisableTiming));
    }
    bytes = (bytes + 255) & ~(size_t)255;
    if (staging_pos + bytes > STAGING_BYTES) {
        if (staging_pending) CUDA_CHECK(cudaEventSynchronize(staging_done));
        staging_pos = 0;
    }
    char *p = staging + staging_pos;
    staging_pos += bytes;
    return p;
}

// queue staged bytes to the device and mark the ring as in use until they have gone
static void staging_send(void *dst, const char *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_main()));
    CUDA_CHECK(cudaEventRecord(staging_done, stream_main()));
    staging_pending = 1;
}

// bring bytes back into the ring and wait for them
static char *staging_fetch(const void *src, size_t bytes) {
    char *p = staging_take(bytes);
    CUDA_CHECK(cudaMemcpyAsync(p, src, bytes, cudaMemcpyDeviceToHost, stream_main()));
    CUDA_CHECK(cudaStreamSynchronize(stream_main()));
    return p;
}

static void cuda_to_device(void *dst, const void *host, size_t bytes) {
    for (size_t off = 0; off < bytes; off += STAGING_CHUNK) {
        size_t len = bytes - off < STAGING_CHUNK ? bytes - off : STAGING_CHUNK;
        char *p = staging_take(len);
        memcpy(p, (const char *)host + off, len);
        staging_send((char *)dst + off, p, len);
    }
}

static void cuda_to_host(void *host, const void *src, size_t bytes) {
    for (size_t off = 0; off < bytes; off += STAGING_CHUNK) {
        size_t len = bytes - off < STAGING_CHUNK ? bytes - off : STAGING_CHUNK;
        memcpy((char *)host + off, staging_fetch((const char *)src + off, len), len);
    }
}

#ifdef VLM_CUDA_FP32
// the act type is fp32: the host floats travel as they are
static void cuda_upload_act(void *dst, const float *host, size_t n) { cuda_to_device(dst, host, n * sizeof(float)); }
static void cuda_download_act(float *host, const void *src, size_t n) { cuda_to_host(host, src, n * sizeof(float)); }
#else
// fp32 -> bf16 with round to nearest even (util's f32_to_bf16, the same rounding as __float2bfloat16_rn)
static void cuda_upload_act(void *dst, const float *host, size_t n) {
    const size_t chunk = STAGING_CHUNK / sizeof(uint16_t);
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        uint16_t *p = (uint16_t *)staging_take(len * sizeof(uint16_t));
        const float *h = host + off;
#pragma omp parallel for if (len > ((size_t)1 << 18)) schedule(static)
        for (size_t i = 0; i < len; i++) p[i] = f32_to_bf16(h[i]);
        staging_send((uint16_t *)dst + off, (const char *)p, len * sizeof(uint16_t));
    }
}

static void cuda_download_act(float *host, const void *src, size_t n) {
    const size_t chunk = STAGING_CHUNK / sizeof(uint16_t);
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        const uint16_t *p = (const uint16_t *)staging_fetch((const uint16_t *)src + off, len * sizeof(uint16_t));
        float *h = host + off;
#pragma omp parallel for if (len > ((size_t)1 << 18)) schedule(static)
        for (size_t i = 0; i < len; i++) h[i] = bf16_to_f32(p[i]);
    }
}
#endif

static void cuda_upload_acc(void *dst, const double *host, size_t n) {
    const size_t chunk = STAGING_CHUNK / sizeof(float);
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        float *p = (float *)staging_take(len * sizeof(float));
        for (size_t i = 0; i < len; i++) p[i] = (float)host[off + i];
        staging_send((float *)dst + off, (const char *)p, len * sizeof(float));
    }
}

static void cuda_download_acc(double *host, const void *src, size_t n) {
    const size_t chunk = STAGING_CHUNK / sizeof(float);
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        const float *p = (const float *)staging_fetch((const float *)src + off, len * sizeof(float));
        for (size_t i = 0; i < len; i++) host[off + i] = p[i];
    }
}

// ----------------------------------------------------------------------------------------------------
// the table (fields in the order of struct Backend: C++ wants designated initializers in order)

extern "C" const Backend backend_cuda = {
#ifdef VLM_CUDA_FP32
    .name = "cuda-fp32",  // shows in logs and metrics which build ran (--device cuda selects either)
#else
    .name = "cuda",
#endif
    .act_bytes = sizeof(floatX),
    .acc_bytes = 4,
    .malloc = cuda_malloc,
    .free = cuda_free,
    .zero = cuda_zero,
    .copy = cuda_copy,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .upload_act = cuda_upload_act,
    .download_act = cuda_download_act,
    .upload_acc = cuda_upload_acc,
    .download_acc = cuda_download_acc,
    .synchronize = cuda_synchronize,
    .replay = cuda_replay,
    .replay_free = cuda_replay_free,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .add_rmsnorm_forward = cuda_add_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .act_forward = cuda_act_forward,
    .act_backward = cuda_act_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .matmul_swiglu_forward = cuda_matmul_swiglu_forward,
    .add = cuda_add,
    .scale = cuda_scale,
    .channel_scale_forward = cuda_channel_scale_forward,
    .channel_scale_backward = cuda_channel_scale_backward,
    .rope_forward = cuda_rope_forward,
    .rope_backward = cuda_rope_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .logprob_forward = cuda_logprob_forward,
    .logprob_backward = cuda_logprob_backward,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .copy_rows = cuda_copy_rows,
    .add_rows = cuda_add_rows,
    .add_broadcast_forward = cuda_add_broadcast_forward,
    .add_broadcast_backward = cuda_add_broadcast_backward,
    .im2col = cuda_im2col,
    .sumsq = cuda_sumsq,
    .adamw_update = cuda_adamw_update,
    .copy_rows_strided = cuda_copy_rows_strided,
    .attention_decode = cuda_attention_decode,
    .rope_kv_append = cuda_rope_kv_append,
    .add_strided = cuda_add_strided,
    .dropout = cuda_dropout,
};
