// CUDA graphs for op sequences that repeat with the same shapes and buffers: a decode step of the
// generator queues about 14 kernels per layer, most of them tiny (one row), so at batch 1 the GPU spends
// a large part of the step between launches. Recorded once into a graph, the step is one launch.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_generate_matches_cpu and cuda_sample_cli (their decode
// steps replay graphs).
//
// What a recorded sequence must not do (the ops of a decode step don't): synchronize, allocate, or take
// different shapes, pointers or host-side values from call to call. Values that change (token ids,
// positions, cache lengths) live in device buffers written before the replay. The one buffer that can move
// under a graph is the shared scratch (cuda_scratch grows by reallocating): a graph recorded before a
// growth is dropped and recorded again.
#include <stdlib.h>

#include "common.cuh"

typedef struct {
    int calls;
    unsigned scratch_generation;  // of the scratch buffer the graph was recorded with
    cudaGraphExec_t exec;
} Replay;

static int graphs_enabled(void) {  // VLM_CUDA_GRAPHS=0: every call runs plainly
    static int on = -1;
    if (on < 0) on = env_switch_on("VLM_CUDA_GRAPHS");
    return on;
}

extern "C" void cuda_replay(void **slot, void (*fn)(void *), void *arg) {
    Replay *r = (Replay *)*slot;
    if (!r) *slot = r = (Replay *)xcalloc(1, sizeof(Replay));
    if (r->exec && r->scratch_generation != cuda_scratch_generation()) {
        CUDA_CHECK(cudaGraphExecDestroy(r->exec));
        r->exec = NULL;
        r->calls = 0;
    }
    if (r->exec) {
        CUDA_CHECK(cudaGraphLaunch(r->exec, stream_main()));
        return;
    }
    // the first call runs plainly, so what the ops set up lazily (scratch, cuBLASLt plans, workspaces)
    // is in place before anything is recorded
    if (r->calls++ == 0 || !graphs_enabled()) {
        fn(arg);
        return;
    }
    cudaGraph_t graph;
    CUDA_CHECK(cudaStreamBeginCapture(stream_main(), cudaStreamCaptureModeThreadLocal));
    fn(arg);  // queues nothing: the ops are recorded
    CUDA_CHECK(cudaStreamEndCapture(stream_main(), &graph));
    CUDA_CHECK(cudaGraphInstantiate(&r->exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    r->scratch_generation = cuda_scratch_generation();
    CUDA_CHECK(cudaGraphLaunch(r->exec, stream_main()));
}

extern "C" void cuda_replay_free(void *slot) {
    Replay *r = (Replay *)slot;
    if (!r) return;
    if (r->exec) CUDA_CHECK(cudaGraphExecDestroy(r->exec));
    free(r);
}
