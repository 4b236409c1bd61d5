// The fp32 CPU matmul (model/gemm_cpu.c behind backend_cpu's matmul_forward/backward) against the plain
// loops computed in double, at sizes that are not multiples of its 8 x 32 tiles; and the three bitwise
// properties generation and resumed runs rely on: a row alone equals that row in a batch, 1 thread equals
// 2, and the AVX-512 kernel equals the plain C one.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../model/gemm_cpu.h"
#include "../model/ops.h"
#include "test.h"

static float *randv(size_t n, unsigned seed) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; x[i] = ((int)(seed >> 9) % 2001 - 1000) / 1000.0f; }
    return x;
}

// max |a - ref| / (sum |terms| + 1e-30) over the matrix: the fp32 rounding bound scales with K and the
// terms' magnitudes, so compare against that, not against the (possibly cancelling) result
static void check_close(const float *got, const double *ref, const double *mag, size_t n, int K, const char *what,
                        int N, int C, int OC) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]) / (mag[i] + 1e-30);
        if (e > worst) worst = e;
    }
    EXPECTF(worst <= 2e-7 * (K + 2), "%s N=%d C=%d OC=%d: error %.3g of the magnitude (bound %.3g)", what, N, C, OC,
            worst, 2e-7 * (K + 2));
}

static void one_size(int N, int C, int OC) {
    const Backend *be = &backend_cpu;
    float *x = randv((size_t)N * C, 1 + N), *w = randv((size_t)OC * C, 2 + C), *b = randv(OC, 3 + OC);
    float *g = randv((size_t)N * OC, 4 + N + OC), *dw0 = randv((size_t)OC * C, 5), *db0 = randv(OC, 6);
    float *y = malloc(sizeof(float) * N * OC), *dx = malloc(sizeof(float) * N * C);
    float *dw = malloc(sizeof(float) * OC * C), *db = malloc(sizeof(float) * OC);
    memcpy(dw, dw0, sizeof(float) * OC * C);
    memcpy(db, db0, sizeof(float) * OC);
    be->matmul_forward(y, x, w, b, N, C, OC);
    be->matmul_backward(dx, dw, db, g, x, w, N, C, OC);
    double *ry = malloc(sizeof(double) * N * OC), *my = malloc(sizeof(double) * N * OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b[o], m = fabs(b[o]);
            for (int c = 0; c < C; c++) { s += (double)x[n * C + c] * w[o * C + c]; m += fabs((double)x[n * C + c] * w[o * C + c]); }
            ry[n * OC + o] = s, my[n * OC + o] = m;
        }
    check_close(y, ry, my, (size_t)N * OC, C, "forward", N, C, OC);
    double *rx = malloc(sizeof(double) * N * C), *mx = malloc(sizeof(double) * N * C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = 0, m = 0;
            for (int o = 0; o < OC; o++) { s += (double)g[n * OC + o] * w[o * C + c]; m += fabs((double)g[n * OC + o] * w[o * C + c]); }
            rx[n * C + c] = s, mx[n * C + c] = m;
        }
    check_close(dx, rx, mx, (size_t)N * C, OC, "dinp", N, C, OC);
    double *rw = malloc(sizeof(double) * OC * C), *mw = malloc(sizeof(double) * OC * C);
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = dw0[o * C + c], m = fabs(dw0[o * C + c]);
            for (int n = 0; n < N; n++) { s += (double)g[n * OC + o] * x[n * C + c]; m += fabs((double)g[n * OC + o] * x[n * C + c]); }
            rw[o * C + c] = s, mw[o * C + c] = m;
        }
    check_close(dw, rw, mw, (size_t)OC * C, N, "dw", N, C, OC);
    double rb[OC > 0 ? OC : 1], mb[OC > 0 ? OC : 1];
    for (int o = 0; o < OC; o++) {
        double s = db0[o], m = fabs(db0[o]);
        for (int n = 0; n < N; n++) { s += g[n * OC + o]; m += fabs(g[n * OC + o]); }
        rb[o] = s, mb[o] = m;
    }
    check_close(db, rb, mb, OC, N, "db", N, C, OC);
    free(x); free(w); free(b); free(g); free(dw0); free(db0); free(y); free(dx); free(dw); free(db);
    free(ry); free(my); free(rx); free(mx); free(rw); free(mw);
}

TEST(gemm_matches_reference_odd_sizes) {
    int sizes[][3] = {{1, 1, 1}, {1, 7, 3}, {3, 5, 33}, {7, 13, 31}, {9, 17, 65}, {13, 96, 40}, {17, 33, 1},
                      {33, 100, 47}, {130, 129, 97}, {200, 24, 344}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) one_size(sizes[i][0], sizes[i][1], sizes[i][2]);
}

// forward of N rows and of each row alone; backward dinp likewise (its rows are independent too); all of it
// with 1 and 2 threads and with both kernels: every output must be bitwise the same
TEST(gemm_bitwise_batch_and_thread_invariant) {
    const Backend *be = &backend_cpu;
    const int N = 37, C = 131, OC = 77;
    float *x = randv((size_t)N * C, 11), *w = randv((size_t)OC * C, 12), *b = randv(OC, 13), *g = randv((size_t)N * OC, 14);
    float *y1 = malloc(sizeof(float) * N * OC), *y2 = malloc(sizeof(float) * N * OC), *row = malloc(sizeof(float) * OC);
    float *dx1 = malloc(sizeof(float) * N * C), *dx2 = malloc(sizeof(float) * N * C), *drow = malloc(sizeof(float) * C);
    float *dw1 = calloc((size_t)OC * C, sizeof(float)), *dw2 = calloc((size_t)OC * C, sizeof(float));
    float *db1 = calloc(OC, sizeof(float)), *db2 = calloc(OC, sizeof(float));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    be->matmul_forward(y1, x, w, b, N, C, OC);
    be->matmul_backward(dx1, dw1, db1, g, x, w, N, C, OC);
    omp_set_num_threads(2);
    // big enough for the parallel path: 300 x 131 x 77 multiply-adds > 2^18
    const int NB = 300;
    float *xb = malloc(sizeof(float) * NB * C), *gb = malloc(sizeof(float) * NB * OC), *yb = malloc(sizeof(float) * NB * OC);
    float *dxb = malloc(sizeof(float) * NB * C);
    for (int i = 0; i < NB; i++) {
        memcpy(xb + (size_t)i * C, x + (size_t)(i % N) * C, sizeof(float) * C);
        memcpy(gb + (size_t)i * OC, g + (size_t)(i % N) * OC, sizeof(float) * OC);
    }
    be->matmul_forward(yb, xb, w, b, NB, C, OC);
    be->matmul_backward(dxb, NULL, NULL, gb, xb, w, NB, C, OC);
    be->matmul_forward(y2, x, w, b, N, C, OC);
    be->matmul_backward(dx2, dw2, db2, g, x, w, N, C, OC);
    EXPECT(!memcmp(y1, y2, sizeof(float) * N * OC));
    EXPECT(!memcmp(dx1, dx2, sizeof(float) * N * C));
    EXPECT(!memcmp(dw1, dw2, sizeof(float) * OC * C));
    EXPECT(!memcmp(db1, db2, sizeof(float) * OC));
    int bad_batch = 0, bad_big = 0;
    for (int n = 0; n < N; n++) {
        be->matmul_forward(row, x + (size_t)n * C, w, b, 1, C, OC);
        be->matmul_backward(drow, NULL, NULL, g + (size_t)n * OC, x + (size_t)n * C, w, 1, C, OC);
        bad_batch += memcmp(row, y1 + (size_t)n * OC, sizeof(float) * OC) != 0;
        bad_batch += memcmp(drow, dx1 + (size_t)n * C, sizeof(float) * C) != 0;
    }
    for (int i = 0; i < NB; i++) {
        bad_big += memcmp(yb + (size_t)i * OC, y1 + (size_t)(i % N) * OC, sizeof(float) * OC) != 0;
        bad_big += memcmp(dxb + (size_t)i * C, dx1 + (size_t)(i % N) * C, sizeof(float) * C) != 0;
    }
    EXPECTF(bad_batch == 0, "%d rows computed alone differ from the batch", bad_batch);
    EXPECTF(bad_big == 0, "%d rows of the 300-row parallel product differ from the 37-row one", bad_big);
    // the plain C kernel through gemm_f32 directly: bitwise the AVX-512 kernel's result
    float *ys = malloc(sizeof(float) * N * OC);
    setenv("VLM_CPU_GEMM", "scalar", 1);
    gemm_f32_reset_for_tests();
    gemm_f32(N, OC, C, x, C, 1, w, 1, C, ys, OC, 0, b);
    unsetenv("VLM_CPU_GEMM");
    gemm_f32_reset_for_tests();
    EXPECT(!memcmp(ys, y1, sizeof(float) * N * OC));
    omp_set_num_threads(saved);
    free(x); free(w); free(b); free(g); free(y1); free(y2); free(row); free(dx1); free(dx2); free(drow);
    free(dw1); free(dw2); free(db1); free(db2); free(xb); free(gb); free(yb); free(dxb); free(ys);
}

// All three products of a linear layer through gemm_f32 (AVX-512 kernel: unmasked full panels, the dw
// product's row blocks copied to strips, tasks ordered row block first) bitwise the plain C kernel's, at
// shapes with several row blocks of 128, partial tiles and partial panels, with 1 and 2 threads
TEST(gemm_vector_paths_equal_scalar_kernel) {
    if (!gemm_f32_avx512()) return;
    const int shapes[][3] = {{41, 77, 300}, {300, 96, 131}, {257, 64, 640}, {9, 32, 33}};  // N, C, OC
    const int saved = omp_get_max_threads();
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = randv((size_t)N * C, 21), *w = randv((size_t)OC * C, 22), *g = randv((size_t)N * OC, 23);
        float *out[3][3];  // [kernel: vector 1 thread, vector 2 threads, scalar][forward, dinp, dw]
        for (int v = 0; v < 3; v++) {
            if (v == 2) setenv("VLM_CPU_GEMM", "scalar", 1);
            gemm_f32_reset_for_tests();
            omp_set_num_threads(v == 1 ? 2 : 1);
            out[v][0] = malloc(sizeof(float) * N * OC);
            out[v][1] = malloc(sizeof(float) * N * C);
            out[v][2] = randv((size_t)OC * C, 24);  // dw accumulates
            gemm_f32(N, OC, C, x, C, 1, w, 1, C, out[v][0], OC, 0, NULL);
            gemm_f32(N, C, OC, g, OC, 1, w, C, 1, out[v][1], C, 0, NULL);
            gemm_f32(OC, C, N, g, 1, OC, x, C, 1, out[v][2], C, 1, NULL);
            unsetenv("VLM_CPU_GEMM");
        }
        gemm_f32_reset_for_tests();
        const size_t n[3] = {(size_t)N * OC, (size_t)N * C, (size_t)OC * C};
        const char *names[3] = {"forward", "dinp", "dw"};
        for (int k = 0; k < 3; k++) {
            EXPECTF(!memcmp(out[0][k], out[2][k], sizeof(float) * n[k]), "%s N=%d C=%d OC=%d: AVX-512 != plain C",
                    names[k], N, C, OC);
            EXPECTF(!memcmp(out[0][k], out[1][k], sizeof(float) * n[k]), "%s N=%d C=%d OC=%d: 2 threads != 1",
                    names[k], N, C, OC);
        }
        for (int v = 0; v < 3; v++) for (int k = 0; k < 3; k++) free(out[v][k]);
        free(x); free(w); free(g);
    }
    omp_set_num_threads(saved);
}
