// Attention benchmark and correctness check for cuda/attention.cu (flash) and cuda/attention_cudnn.cu.
//
//   build/bench_attention test     every path (tensor-core flash, generic flash, cuDNN) against the CPU
//                                  reference cpu_attention_forward/backward at small odd shapes: GQA,
//                                  causal, key padding (incl. an all-padded row), segments, HD 4..128,
//                                  strided fused QKV with untouched pad columns, determinism of flash
//   build/bench_attention bench    forward and backward time of flash and cuDNN at the shapes of
//                                  DESIGN.md section 6, median of many runs (CUDA events), TFLOP/s,
//                                  and the largest difference between the two implementations
//   options: --only flash|cudnn   --reps N   --B N (batch)   --shape I (only the I-th bench shape)
//            --maxT N (test: skip cases with T > N, e.g. under compute-sanitizer)
//
// FLOP counts: forward 4*B*NH*T*T*HD (QK^T and PV), backward 2.5x that (5 matmuls); causal halves
// both (the useful work, as FlashAttention reports it). Our flash backward actually runs 7 matmuls
// (a separate deterministic dQ pass); the count stays 2.5x so the numbers compare across kernels.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

extern "C" {  // C headers: backend_cpu (the fp32 reference), fatal, bf16 conversions
#include "../model/ops.h"
#include "../util/common.h"
}
#include "../cuda/common.cuh"  // CUDA_CHECK, stream_main, the attention entry points
#ifdef VLM_CUDNN
#include <cudnn.h>
#endif

// Its buffers are bf16, the act type of every build but the fp32 one (make test-cuda-fp32), which has no
// tensor-core or cuDNN path to measure.
#ifdef VLM_CUDA_FP32
#error "bench_attention measures the bf16 build; build it without VLM_CUDA_FP32"
#endif

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {  // uniform [-1, 1)
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}
static float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

static void upload_bf16(void *d, const float *h, size_t n) {
    std::vector<uint16_t> t(n);
    for (size_t i = 0; i < n; i++) t[i] = f32_to_bf16(h[i]);
    CUDA_CHECK(cudaMemcpy(d, t.data(), n * 2, cudaMemcpyHostToDevice));
}
static void download_bf16(float *h, const void *d, size_t n) {
    std::vector<uint16_t> t(n);
    CUDA_CHECK(cudaMemcpy(t.data(), d, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) h[i] = bf16_to_f32(t[i]);
}

// ----------------------------------------------------------------------------------------------------
// correctness

typedef struct {
    int B, T, NH, NKV, HD, causal, pad, seg;  // pad: key padding (row 1 fully padded when B > 2); seg: segments
    int extra;                               // extra columns per token in the fused buffer (left untouched)
} Case;

// fused (B, T, W) buffer: q at column 0, k at NH*HD, v at (NH+NKV)*HD, `extra` pad columns at the end
typedef struct { float maxerr, maxref; int nan; } Err;

static Err compare(const float *got, const float *ref, int rows, int cols, int gstride, int rstride) {
    Err e = {0, 0, 0};
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float g = got[(size_t)r * gstride + c], f = ref[(size_t)r * rstride + c];
            if (isnan(g) || isinf(g)) e.nan = 1;
            float d = fabsf(g - f);
            if (d > e.maxerr) e.maxerr = d;
            if (fabsf(f) > e.maxref) e.maxref = fabsf(f);
        }
    return e;
}

static int check(const char *what, Err e, float rtol) {
    float rel = e.maxerr / (e.maxref > 1e-3f ? e.maxref : 1e-3f);
    int ok = !e.nan && rel <= rtol;
    if (!ok) printf("    %-4s max|err| %.3g  max|ref| %.3g  rel %.3g%s  FAIL\n", what, e.maxerr, e.maxref, rel, e.nan ? " NaN/inf" : "");
    return ok;
}

// impl: 0 flash (normal choice), 1 flash forced generic, 2 cuDNN
static int run_case(const Case *c, int impl) {
    const int B = c->B, T = c->T, NH = c->NH, NKV = c->NKV, HD = c->HD;
    const int W = (NH + 2 * NKV) * HD + c->extra;  // fused row width = q_stride = kv_stride
    const size_t nqkv = (size_t)B * T * W, nout = (size_t)B * T * NH * HD, nlse = (size_t)B * NH * T;
    std::vector<float> qkv(nqkv), dout(nout);
    for (size_t i = 0; i < nqkv; i++) qkv[i] = bf16_round(frand() * 1.5f);
    for (size_t i = 0; i < nout; i++) dout[i] = bf16_round(frand());
    std::vector<int> kvl(B), seg((size_t)B * T);
    for (int b = 0; b < B; b++) {
        kvl[b] = T - (b * 7) % (T > 1 ? T : 1);
        if (B > 2 && b == 1) kvl[b] = 0;  // a row with no visible key at all
        if (b == 0) kvl[b] = T + 3;        // > T means all keys
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int P = T / 3 + b;  // shared prefix length, then segments 1, 2, 3 in runs of 5 + b
            seg[(size_t)b * T + t] = t < P ? 0 : 1 + ((t - P) / (5 + b)) % 3;
        }

    AttnShape hs = {B, T, NH, NKV, HD, W, W, c->causal, c->pad ? kvl.data() : NULL, c->seg ? seg.data() : NULL};
    // CPU reference (fp32) on the same bf16-rounded inputs
    std::vector<float> ref_out(nout), ref_lse(nlse), ref_d(nqkv, 0.f);
    backend_cpu.attention_forward(ref_out.data(), ref_lse.data(), qkv.data(), qkv.data() + NH * HD,
                                  qkv.data() + (NH + NKV) * HD, &hs);
    backend_cpu.attention_backward(ref_d.data(), ref_d.data() + NH * HD, ref_d.data() + (NH + NKV) * HD, dout.data(),
                                   ref_out.data(), ref_lse.data(), qkv.data(), qkv.data() + NH * HD,
                                   qkv.data() + (NH + NKV) * HD, &hs);

    void *d_qkv, *d_dqkv, *d_out, *d_dout, *d_lse;
    int *d_kvl, *d_seg;
    CUDA_CHECK(cudaMalloc(&d_qkv, nqkv * 2)); CUDA_CHECK(cudaMalloc(&d_dqkv, nqkv * 2));
    CUDA_CHECK(cudaMalloc(&d_out, nout * 2));
    CUDA_CHECK(cudaMalloc(&d_dout, nout * 2)); CUDA_CHECK(cudaMalloc(&d_lse, nlse * 4));
    CUDA_CHECK(cudaMalloc(&d_kvl, B * 4)); CUDA_CHECK(cudaMalloc(&d_seg, (size_t)B * T * 4));
    upload_bf16(d_qkv, qkv.data(), nqkv);
    upload_bf16(d_dout, dout.data(), nout);
    CUDA_CHECK(cudaMemcpy(d_kvl, kvl.data(), B * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_seg, seg.data(), (size_t)B * T * 4, cudaMemcpyHostToDevice));
    // sentinels: 7.0 everywhere in dqkv, NaN in out and lse, so unwritten or wrongly written places show
    std::vector<float> sent(nqkv, 7.f);
    upload_bf16(d_dqkv, sent.data(), nqkv);
    CUDA_CHECK(cudaMemset(d_out, 0xFF, nout * 2));
    CUDA_CHECK(cudaMemset(d_lse, 0xFF, nlse * 4));

    AttnShape ds = hs;
    ds.kv_len = c->pad ? d_kvl : NULL;
    ds.segment = c->seg ? d_seg : NULL;
    char *q = (char *)d_qkv, *dq = (char *)d_dqkv;
    void *k = q + (size_t)NH * HD * 2, *v = q + (size_t)(NH + NKV) * HD * 2;
    void *dk = dq + (size_t)NH * HD * 2, *dv = dq + (size_t)(NH + NKV) * HD * 2;
    flash_attention_force_generic(impl == 1);
    if (impl == 2) {
        cudnn_attention_forward(d_out, d_lse, q, k, v, &ds);
        cudnn_attention_backward(dq, dk, dv, d_dout, d_out, d_lse, q, k, v, &ds);
    } else {
        flash_attention_forward(d_out, d_lse, q, k, v, &ds);
        flash_attention_backward(dq, dk, dv, d_dout, d_out, d_lse, q, k, v, &ds);
    }
    CUDA_CHECK(cudaDeviceSynchronize());

    std::vector<float> out(nout), lse(nlse), dqkv(nqkv);
    download_bf16(out.data(), d_out, nout);
    CUDA_CHECK(cudaMemcpy(lse.data(), d_lse, nlse * 4, cudaMemcpyDeviceToHost));
    download_bf16(dqkv.data(), d_dqkv, nqkv);

    int ok = 1;
    const float rtol = 2.5e-2f;
    ok &= check("out", compare(out.data(), ref_out.data(), B * T, NH * HD, NH * HD, NH * HD), rtol);
    {
        Err e = compare(lse.data(), ref_lse.data(), B * NH, T, T, T);
        e.maxref = 1.f;  // absolute tolerance for lse (nats)
        ok &= check("lse", e, 2e-2f);
    }
    ok &= check("dq", compare(dqkv.data(), ref_d.data(), B * T, NH * HD, W, W), rtol);
    ok &= check("dk", compare(dqkv.data() + NH * HD, ref_d.data() + NH * HD, B * T, NKV * HD, W, W), rtol);
    ok &= check("dv", compare(dqkv.data() + (NH + NKV) * HD, ref_d.data() + (NH + NKV) * HD, B * T, NKV * HD, W, W), rtol);
    // the pad columns must still hold the sentinel
    for (size_t r = 0; r < (size_t)B * T && c->extra; r++)
        for (int e = (NH + 2 * NKV) * HD; e < W; e++)
            if (dqkv[r * W + e] != 7.f) { printf("    pad column written\n"); ok = 0; r = (size_t)B * T; break; }

    // determinism of the flash backward: a second run must give identical bits
    if (ok && impl != 2) {
        std::vector<uint16_t> a(nqkv), b2(nqkv);
        CUDA_CHECK(cudaMemcpy(a.data(), d_dqkv, nqkv * 2, cudaMemcpyDeviceToHost));
        flash_attention_backward(dq, dk, dv, d_dout, d_out, d_lse, q, k, v, &ds);
        CUDA_CHECK(cudaMemcpy(b2.data(), d_dqkv, nqkv * 2, cudaMemcpyDeviceToHost));
        if (memcmp(a.data(), b2.data(), nqkv * 2)) { printf("    backward not deterministic\n"); ok = 0; }
    }
    flash_attention_force_generic(0);
    cudaFree(d_qkv); cudaFree(d_dqkv); cudaFree(d_out); cudaFree(d_dout); cudaFree(d_lse); cudaFree(d_kvl); cudaFree(d_seg);
    return ok;
}

static int run_tests(int only, int maxT) {
    static const Case cases[] = {
        // B  T   NH NKV HD causal pad seg extra
        {2, 37, 4, 2, 16, 1, 0, 0, 0},   {2, 37, 4, 4, 16, 0, 1, 0, 8},   {3, 65, 4, 1, 32, 1, 1, 1, 0},
        {2, 130, 8, 2, 64, 1, 0, 0, 0},  {3, 130, 4, 4, 64, 0, 1, 0, 8},  {1, 200, 4, 2, 80, 1, 0, 1, 0},
        {2, 77, 4, 4, 96, 0, 0, 0, 0},   {3, 257, 4, 2, 128, 1, 1, 0, 0}, {2, 129, 4, 4, 128, 0, 0, 1, 8},
        {2, 64, 2, 2, 128, 1, 0, 0, 0},  {1, 1, 2, 1, 64, 1, 0, 0, 0},    {2, 3, 2, 2, 16, 0, 1, 0, 0},
        {3, 300, 4, 2, 64, 1, 1, 1, 8},  {2, 577, 2, 2, 64, 0, 0, 0, 0},  {1, 640, 2, 1, 128, 1, 0, 0, 0},
        // generic-only head dims (the tiny test models) and odd ones
        {2, 19, 4, 2, 4, 1, 1, 0, 0},    {3, 33, 2, 1, 8, 1, 1, 1, 0},    {2, 21, 3, 3, 12, 0, 0, 0, 4},
        {2, 45, 4, 2, 48, 1, 0, 1, 0},   {1, 40, 2, 1, 200, 1, 1, 0, 0},  {2, 17, 2, 2, 40, 0, 1, 0, 0},
    };
    int fails = 0, n = 0;
    const char *names[3] = {"flash", "generic", "cudnn"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const Case *c = &cases[i];
        for (int impl = 0; impl < 3; impl++) {
            if (only == 1 && impl == 2) continue;
            if (only == 2 && impl != 2) continue;
            AttnShape s = {c->B, c->T, c->NH, c->NKV, c->HD, (c->NH + 2 * c->NKV) * c->HD + c->extra, 0, c->causal,
                           NULL, NULL};
            s.kv_stride = s.q_stride;
            if (c->seg) s.segment = (const int *)1;  // only its presence matters to the support check
            if (impl == 2 && !cudnn_attention_supported(&s)) continue;
            if (impl == 1 && c->T > 300) continue;  // the generic kernels are slow
            if (maxT > 0 && c->T > maxT) continue;
            printf("%-7s B=%d T=%d NH=%d NKV=%d HD=%d causal=%d pad=%d seg=%d extra=%d\n", names[impl], c->B, c->T,
                   c->NH, c->NKV, c->HD, c->causal, c->pad, c->seg, c->extra);
            fflush(stdout);
            int ok = run_case(c, impl);
            n++;
            if (!ok) fails++;
            printf("    %s\n", ok ? "ok" : "FAILED");
            fflush(stdout);
        }
    }
    printf("attention tests: %d of %d passed\n", n - fails, n);
    return fails ? 1 : 0;
}

// ----------------------------------------------------------------------------------------------------
// benchmark

typedef struct { const char *name, *key; int B, T, NH, NKV, HD, causal; } BenchShape;  // key: as torch_ref.py names it

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static void run_bench(int only, int reps, int Bover, int shape) {
    const BenchShape shapes[] = {
        {"ViT-L 577x16x64 bidirectional", "vit-l", 8, 577, 16, 16, 64, 0},
        {"decoder 640x16x128 causal", "decoder-640", 8, 640, 16, 16, 128, 1},
        {"decoder 2048x32x128 causal", "decoder-2048", 8, 2048, 32, 32, 128, 1},
    };
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    cudaStream_t st = stream_main();
    for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
        if (shape >= 0 && (int)si != shape) continue;
        BenchShape bs = shapes[si];
        if (Bover > 0) bs.B = Bover;
        const int B = bs.B, T = bs.T, NH = bs.NH, NKV = bs.NKV, HD = bs.HD;
        const int W = (NH + 2 * NKV) * HD;
        const size_t nqkv = (size_t)B * T * W, nout = (size_t)B * T * NH * HD, nlse = (size_t)B * NH * T;
        std::vector<float> h(nqkv > nout ? nqkv : nout);
        void *qkv, *dqkv, *out[2], *dout, *lse[2], *dq2;
        CUDA_CHECK(cudaMalloc(&qkv, nqkv * 2)); CUDA_CHECK(cudaMalloc(&dqkv, nqkv * 2));
        CUDA_CHECK(cudaMalloc(&dq2, nqkv * 2));
        CUDA_CHECK(cudaMalloc(&dout, nout * 2));
        for (int i = 0; i < 2; i++) {
            CUDA_CHECK(cudaMalloc(&out[i], nout * 2));
            CUDA_CHECK(cudaMalloc(&lse[i], nlse * 4));
        }
        for (size_t i = 0; i < nqkv; i++) h[i] = frand();
        upload_bf16(qkv, h.data(), nqkv);
        for (size_t i = 0; i < nout; i++) h[i] = frand();
        upload_bf16(dout, h.data(), nout);
        AttnShape s = {B, T, NH, NKV, HD, W, W, bs.causal, NULL, NULL};
        char *q = (char *)qkv;
        void *k = q + (size_t)NH * HD * 2, *v = q + (size_t)(NH + NKV) * HD * 2;
        double fwd_flops = 4.0 * B * NH * (double)T * T * HD * (bs.causal ? 0.5 : 1.0);
        double bwd_flops = 2.5 * fwd_flops;
        printf("%s, B=%d (%s)\n", bs.name, B, bs.causal ? "causal: FLOPs halved" : "full FLOPs");
        float tf[2] = {0, 0}, tb[2] = {0, 0};
        for (int impl = 0; impl < 2; impl++) {
            if (only == 1 && impl == 1) continue;
            if (only == 2 && impl == 0) continue;
            if (impl == 1 && !cudnn_attention_supported(&s)) { printf("  cudnn: shape not supported\n"); continue; }
            char *dqb = (char *)(impl ? dq2 : dqkv);
            void *dk = dqb + (size_t)NH * HD * 2, *dv = dqb + (size_t)(NH + NKV) * HD * 2;
            std::vector<float> fw, bw;
            for (int r = 0; r < reps + 3; r++) {
                CUDA_CHECK(cudaEventRecord(e0, st));
                if (impl) cudnn_attention_forward(out[impl], lse[impl], q, k, v, &s);
                else flash_attention_forward(out[impl], lse[impl], q, k, v, &s);
                CUDA_CHECK(cudaEventRecord(e1, st));
                CUDA_CHECK(cudaEventSynchronize(e1));
                float ms;
                CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
                if (r >= 3) fw.push_back(ms);
                CUDA_CHECK(cudaEventRecord(e0, st));
                if (impl) cudnn_attention_backward(dqb, dk, dv, dout, out[impl], lse[impl], q, k, v, &s);
                else flash_attention_backward(dqb, dk, dv, dout, out[impl], lse[impl], q, k, v, &s);
                CUDA_CHECK(cudaEventRecord(e1, st));
                CUDA_CHECK(cudaEventSynchronize(e1));
                CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
                if (r >= 3) bw.push_back(ms);
            }
            tf[impl] = median(fw);
            tb[impl] = median(bw);
            printf("  %-6s fwd %8.3f ms %6.1f TFLOP/s | bwd %8.3f ms %6.1f TFLOP/s | fwd+bwd %6.1f TFLOP/s\n",
                   impl ? "cudnn" : "flash", tf[impl], fwd_flops / tf[impl] * 1e-9, tb[impl], bwd_flops / tb[impl] * 1e-9,
                   (fwd_flops + bwd_flops) / (tf[impl] + tb[impl]) * 1e-9);
            // the same as one JSON line, for dev/gpu_table.py (fwd+bwd, as bench/torch_ref.py attention times it)
            printf("{\"bench\": \"attention\", \"impl\": \"%s\", \"shape\": \"%s\", \"batch\": %d, \"fwd_ms\": %.4f, "
                   "\"bwd_ms\": %.4f, \"ms\": %.4f, \"tflops\": %.2f}\n", impl ? "cudnn" : "flash", bs.key, B, tf[impl],
                   tb[impl], tf[impl] + tb[impl], (fwd_flops + bwd_flops) / (tf[impl] + tb[impl]) * 1e-9);
            fflush(stdout);
        }
        if (tf[0] > 0 && tf[1] > 0) {
            printf("  flash/cudnn throughput: fwd %.2f  bwd %.2f  fwd+bwd %.2f\n", tf[1] / tf[0], tb[1] / tb[0],
                   (tf[1] + tb[1]) / (tf[0] + tb[0]));
            // agreement of the two implementations on this shape
            std::vector<float> a(nqkv), b(nqkv);
            download_bf16(a.data(), out[0], nout);
            download_bf16(b.data(), out[1], nout);
            Err eo = compare(a.data(), b.data(), 1, (int)nout, 0, 0);
            std::vector<float> la(nlse), lb(nlse);
            CUDA_CHECK(cudaMemcpy(la.data(), lse[0], nlse * 4, cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(lb.data(), lse[1], nlse * 4, cudaMemcpyDeviceToHost));
            Err el = compare(la.data(), lb.data(), 1, (int)nlse, 0, 0);
            download_bf16(a.data(), dqkv, nqkv);
            download_bf16(b.data(), dq2, nqkv);
            Err eg = compare(a.data(), b.data(), 1, (int)nqkv, 0, 0);
            printf("  flash vs cudnn: out max|diff| %.3g (max %.3g), lse %.3g, dqkv %.3g (max %.3g)%s\n", eo.maxerr,
                   eo.maxref, el.maxerr, eg.maxerr, eg.maxref,
                   (eo.nan || el.nan || eg.nan || eo.maxerr > 0.03f * eo.maxref || el.maxerr > 0.02f ||
                    eg.maxerr > 0.03f * eg.maxref) ? "  MISMATCH" : "  ok");
        }
        fflush(stdout);
        cudaFree(qkv); cudaFree(dqkv); cudaFree(dq2); cudaFree(dout);
        for (int i = 0; i < 2; i++) { cudaFree(out[i]); cudaFree(lse[i]); }
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "test";
    int only = 0, reps = 20, B = 0, shape = -1, maxT = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            i++;
            only = !strcmp(argv[i], "flash") ? 1 : !strcmp(argv[i], "cudnn") ? 2 : 0;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--B") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--maxT") && i + 1 < argc) maxT = atoi(argv[++i]);
        else fatal("bench_attention: unknown option '%s'", argv[i]);
    }
    int dev = 0;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    printf("device: %s, %d SMs; attention default: %s\n", prop.name, prop.multiProcessorCount, cuda_attention_selected());
#ifdef VLM_CUDNN
    printf("cuDNN: built against %d, running %zu\n", CUDNN_VERSION, cudnnGetVersion());
#endif
    if (!strcmp(mode, "test")) return run_tests(only, maxT);
    if (!strcmp(mode, "bench")) { run_bench(only, reps, B, shape); return 0; }
    fatal("bench_attention: mode '%s': expected test or bench", mode);
}
