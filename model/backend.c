// Backend selection: --device auto|cpu|cpu64|cuda.
#include <stdatomic.h>
#include <string.h>

#include "../util/common.h"
#include "ops.h"

#ifdef VLM_CUDA
extern const Backend backend_cuda;
void cuda_attention_select(const char *impl);  // cuda/attention.cu
int cuda_device_usable(char *why, size_t whylen);  // cuda/backend.cu
#endif

const Backend *backend_select(const char *name) {
    if (!name || !strcmp(name, "cpu")) return &backend_cpu;
    if (!strcmp(name, "cpu64")) return &backend_cpu64;
    if (!strcmp(name, "cuda") || !strcmp(name, "auto")) {
#ifdef VLM_CUDA
        char why[256] = "";
        if (cuda_device_usable(why, sizeof(why))) return &backend_cuda;
        if (!strcmp(name, "cuda")) fatal("--device cuda: no usable GPU (%s)", why);
        fprintf(stderr, "vlm: no usable GPU (%s); running on the CPU\n", why);
        return &backend_cpu;
#else
        if (!strcmp(name, "cuda")) fatal("--device cuda: this binary was built without CUDA (nvcc was not found at build time)");
        return &backend_cpu;
#endif
    }
    fatal("--device '%s': expected auto, cpu, cpu64 or cuda", name);
}

void backend_set_attention(const char *impl) {
    if (!impl) return;
    if (strcmp(impl, "flash") && strcmp(impl, "cudnn")) fatal("--attention '%s': expected flash or cudnn", impl);
#ifdef VLM_CUDA
    cuda_attention_select(impl);
#endif
}

// The CPU backends' byte count (model/ops.h). Atomic: a buffer may be freed on another thread than the one
// that allocated it.
static _Atomic long long cpu_in_use, cpu_peak;

void cpu_memory_count(long long delta) {
    long long now = atomic_fetch_add(&cpu_in_use, delta) + delta;
    long long peak = atomic_load(&cpu_peak);
    while (now > peak && !atomic_compare_exchange_weak(&cpu_peak, &peak, now)) {}
}
size_t cpu_memory_in_use(void) { return (size_t)atomic_load(&cpu_in_use); }
size_t cpu_memory_peak(void) { return (size_t)atomic_load(&cpu_peak); }
void cpu_memory_reset_peak(void) { atomic_store(&cpu_peak, atomic_load(&cpu_in_use)); }
