// Data-parallel training on the CPU backend (train/dist.h): `mpirun -np 2 vlm train` with the tiny fixture
// LLaVA against one process on the same global batch, ZeRO-1 against the whole optimizer on every rank, a
// checkpoint resumed across rank counts, a rank that dies or fails ending the job with an error, never a
// hang, and a build without MPI refusing to be one of several ranks. They start mpirun, so they run when asked for by name (`build/test_vlm mpi`, which `make test` and
// `make test-mpi` run with the MPI build).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../model/safetensors.h"
#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"
// 2 ranks on a 2-core machine (CI): more ranks than cores allowed, root allowed (containers), shared memory
// without the single-copy mechanism that ptrace-restricted containers refuse; a minute at most, never a hang
#define MPIRUN "timeout 120 mpirun -np 2 --oversubscribe --allow-run-as-root --mca btl_vader_single_copy_mechanism none "

// 8 DPO examples (ids form) with the fixture's images, in a fresh folder; returns the data file.
static char *write_dpo_data(const char *name) {
    char *dir = test_image_dir(name);
    char text[8192] = "";
    unsigned rng = 777;
    for (int i = 0; i < 8; i++) {
        size_t k = strlen(text);
        k += snprintf(text + k, sizeof(text) - k, "{\"image\": \"images/%s\", \"prompt_ids\": [1", i % 3 ? "a.png" : "b.png");
        for (int j = 1; j < 5; j++) {
            rng = rng * 1103515245u + 12345u;
            k += snprintf(text + k, sizeof(text) - k, ", %d", j == 2 ? 90 : 3 + (int)((rng >> 8) % 77));  // 90: the image
        }
        k += snprintf(text + k, sizeof(text) - k, "]");
        const char *keys[2] = {"chosen_ids", "rejected_ids"};
        for (int r = 0; r < 2; r++) {
            k += snprintf(text + k, sizeof(text) - k, ", \"%s\": [", keys[r]);
            for (int j = 0; j < 3 + r; j++) {
                rng = rng * 1103515245u + 12345u;
                k += snprintf(text + k, sizeof(text) - k, "%s%d", j ? ", " : "", 3 + (int)((rng >> 8) % 77));
            }
            k += snprintf(text + k, sizeof(text) - k, ", 2]");
        }
        snprintf(text + k, sizeof(text) - k, "}\n");
    }
    char *path = path_join(dir, "data.jsonl");
    write_file_atomic(path, text, strlen(text));
    free(dir);
    return path;
}

static const char *vlm_bin(void) { return getenv("VLM_BIN") ? getenv("VLM_BIN") : "./vlm"; }

// Runs `[MPIRUN] vlm train ARGS` with stderr into OUT/../NAME.err; returns the exit status (124: timed out).
static int train(int mpi, const char *args, char **err) {
    const char *dir = test_tmpdir();
    char *errp = path_join(dir, "mpi_cmd.err");
    size_t n = strlen(args) + 1024;
    char *cmd = xmalloc(n);
    snprintf(cmd, n, "%s%s train %s >/dev/null 2>%s", mpi ? MPIRUN : "", vlm_bin(), args, errp);
    int status = test_shell(cmd);
    free(cmd);
    char *e = try_read_file(errp, NULL);
    free(errp);
    if (err) *err = e ? e : xstrdup("");
    else free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The common run: DPO, 2 examples a micro-batch, 2 micro-batches a step (a global batch of 4), 3 steps, the
// training data held out too (its reference pre-pass then finds the training one's cache file: rank 0 must
// decide that for every rank) and evaluated at the end.
static char *run_args(const char *data, const char *out, const char *extra) {
    char *a = xmalloc(2048);
    snprintf(a, 2048, "--recipe dpo --model " GQA " --data %s --out %s --device cpu --batch 2 --grad-accum 2 --steps 3 --lr 1e-3 "
             "--warmup-steps 0 --seed 5 --val %s --eval-every 3 --quiet %s", data, out, data, extra);
    return a;
}

// The largest |a - b| over every tensor of two safetensors files with the same tensors (fp32).
static double max_tensor_diff(const char *a, const char *b) {
    SafeTensors *x = st_open_or_die(a), *y = st_open_or_die(b);
    double worst = 0;
    EXPECT_INT_EQ(x->n, y->n);
    for (int i = 0; i < x->n; i++) {
        const STTensor *t = &x->tensors[i], *u = st_find(y, t->name);
        EXPECTF(u && u->numel == t->numel && t->dtype == DT_F32, "%s: tensor %s missing or different in %s", a, t->name, b);
        if (!u || u->numel != t->numel || t->dtype != DT_F32) continue;
        const float *p = t->data, *q = u->data;
        for (size_t k = 0; k < t->numel; k++) worst = fmax(worst, fabs((double)p[k] - q[k]));
    }
    st_close(x);
    st_close(y);
    return worst;
}

// The 2-rank run of run_args (3 steps, ZeRO-1), made once for the tests that compare with it; NULL when it failed.
// Not --quiet: its memory report is in *log (rank 0's stderr).
static const char *two_rank_run(const char **log) {
    static char *out, *data, *err;
    static int done, ok;
    if (!done) {
        done = 1;
        data = write_dpo_data("mpi_two");
        out = path_join(test_tmpdir(), "mpi_two_rank_run");
        char *a = run_args(data, out, "");
        *strstr(a, " --quiet") = 0;  // the last flag but the extra ones (none here)
        int rc = train(1, a, &err);
        EXPECTF(rc == 0, "mpirun -np 2 exited with %d:\n%s", rc, err);
        ok = rc == 0;
        free(a);
    }
    if (log) *log = err;
    return ok ? out : NULL;
}

// The line of `text` that starts with `prefix` (fresh string; "" when none).
static char *line_of(const char *text, const char *prefix) {
    const char *p = strstr(text, prefix);
    if (!p) return xstrdup("");
    size_t n = strcspn(p, "\n");
    char *l = xmalloc(n + 1);
    memcpy(l, p, n);
    l[n] = 0;
    return l;
}

static char *ckpt_file(const char *out, int step, const char *file) {
    char *p = xmalloc(strlen(out) + 64);
    sprintf(p, "%s/checkpoint-%08d/%s", out, step, file);
    return p;
}

// Two ranks, one micro-batch each, against one process running both micro-batches: the same global batch, so
// the same losses and weights up to the order of fp32 sums (one process adds the second micro-batch's
// gradient into the first's; two ranks add the two whole gradients). `mpirun -np 1` is the one process
// exactly: world 1 takes no collective.
TEST(mpi_two_ranks_equal_one_rank) {
    const char *two = two_rank_run(NULL);
    if (!two) return;
    char *data = write_dpo_data("mpi_eq");
    char *one = path_join(test_tmpdir(), "mpi_eq_1"), *np1 = path_join(test_tmpdir(), "mpi_eq_np1");
    char *a1 = run_args(data, one, ""), *a3 = run_args(data, np1, "");
    EXPECT_INT_EQ(train(0, a1, NULL), 0);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "timeout 120 mpirun -np 1 --allow-run-as-root %s train %s >/dev/null 2>&1", vlm_bin(), a3);
    EXPECT_INT_EQ(test_shell(cmd), 0);
    char *l1 = path_join(one, "metrics.jsonl"), *l2 = path_join(two, "metrics.jsonl");
    const char *keys[4] = {"loss", "grad_norm", "logps/mean", "val/loss"};
    for (int k = 0; k < 4; k++) {
        double x[8], y[8];
        const int n = k == 3 ? 1 : 3;  // every step; the evaluation at step 3
        EXPECT_INT_EQ(test_read_metric(l1, keys[k], x, 8), n);
        EXPECT_INT_EQ(test_read_metric(l2, keys[k], y, 8), n);
        for (int i = 0; i < n; i++)
            EXPECTF(fabs(x[i] - y[i]) <= 1e-6 * fmax(1, fabs(x[i])), "%s step %d: %.9g (1 rank) vs %.9g (2 ranks)", keys[k], i + 1,
                    x[i], y[i]);
    }
    double examples[8];
    EXPECT_INT_EQ(test_read_metric(l2, "tokens", examples, 8), 3);  // the global batch's tokens, summed over the ranks
    double ex1[8];
    test_read_metric(l1, "tokens", ex1, 8);
    for (int i = 0; i < 3; i++) EXPECTF(examples[i] == ex1[i], "tokens step %d: %g vs %g", i + 1, ex1[i], examples[i]);
    char *w1 = ckpt_file(one, 3, "model.safetensors"), *w2 = ckpt_file(two, 3, "model.safetensors");
    double d = max_tensor_diff(w1, w2);
    EXPECTF(d <= 2e-6, "weights after 3 steps: 1 rank and 2 ranks differ by up to %g", d);
    // the reference pre-pass split over the ranks (batch j on rank j mod 2) is the one process's, bit for bit. The
    // log-probs after the 40-byte header: the header's data hash names the image files by path, size and time,
    // and the two runs read copies of the data in two folders
    snprintf(cmd, sizeof(cmd), "cmp -s -i 40 %s/ref-*.bin %s/ref-*.bin", one, two);
    EXPECTF(test_shell(cmd) == 0, "the reference cache of 2 ranks differs from 1 rank's (%s)", cmd);
    const char *what = test_checkpoints_differ(one, np1, 3);
    EXPECTF(!what, "mpirun -np 1 differs from the plain process in %s", what);
    free(w1); free(w2); free(l1); free(l2);
    free(a1); free(a3); free(one); free(np1); free(data);
}

// ZeRO-1 (each rank 1/2 of the AdamW state, as the memory plan counts it) and --no-zero (the whole state on each rank) sum the same gradients
// the same way and take the same norm: the same bits, weights and the optimizer state the checkpoint gathers.
TEST(mpi_zero1_equals_whole_optimizer) {
    const char *log = NULL, *z = two_rank_run(&log);
    if (!z) return;
    // the optimizer state each rank allocated, as its memory report counts it, is what --plan --world-size 2 plans
    char *out = NULL, *perr = NULL;
    EXPECT_INT_EQ(test_run_vlm("train --recipe dpo --model " GQA " --plan --world-size 2 --device cpu --batch 2", &out, &perr), 0);
    char *planned = line_of(out, "  optimizer "), *ran = line_of(log, "  optimizer ");
    EXPECTF(strstr(ran, "1/2: ZeRO-1") && !strcmp(planned, ran), "the 2-rank run's optimizer:\n%s\nthe plan's:\n%s", ran, planned);
    free(planned); free(ran); free(out); free(perr);
    char *data = write_dpo_data("mpi_zero");
    char *w = path_join(test_tmpdir(), "mpi_zero_0");
    char *aw = run_args(data, w, "--no-zero"), *err = NULL;
    int rc = train(1, aw, &err);
    EXPECTF(rc == 0, "--no-zero run exited with %d:\n%s", rc, err);
    free(err);
    const char *what = test_checkpoints_differ(z, w, 3);
    EXPECTF(!what, "ZeRO-1 and the whole optimizer differ in %s", what);
    char *lz = path_join(z, "metrics.jsonl"), *lw = path_join(w, "metrics.jsonl");
    double x[8], y[8];
    EXPECT_INT_EQ(test_read_metric(lz, "grad_norm", x, 8), 3);
    EXPECT_INT_EQ(test_read_metric(lw, "grad_norm", y, 8), 3);
    for (int i = 0; i < 3; i++) EXPECTF(x[i] == y[i], "grad_norm step %d: %.17g vs %.17g", i + 1, x[i], y[i]);
    free(lz); free(lw); free(aw); free(w); free(data);
}

// A 2-rank checkpoint (its sharded optimizer state gathered whole) resumes on 1 rank, and that one's on 2
// again: the run ends where an uninterrupted 2-rank run ends, up to the order of fp32 sums of the one step run
// on 1 rank; and a 2-rank run stopped and resumed on 2 ranks is the uninterrupted one bit for bit.
TEST(mpi_resume_across_rank_counts) {
    const char *full = two_rank_run(NULL);
    if (!full) return;
    char *data = write_dpo_data("mpi_resume");
    char *mix = path_join(test_tmpdir(), "mpi_res_mix"), *same = path_join(test_tmpdir(), "mpi_res_same");
    char *a1 = run_args(data, mix, "--stop-at 1"), *a2 = run_args(data, mix, "--resume --stop-at 2"),
         *a3 = run_args(data, mix, "--resume"), *s1 = run_args(data, same, "--stop-at 2"), *s2 = run_args(data, same, "--resume");
    char *err = NULL;
    int rc;
    EXPECT_INT_EQ(train(1, a1, NULL), 0);  // 2 ranks: step 1
    rc = train(0, a2, &err);               // 1 rank: step 2 from the 2-rank checkpoint
    EXPECTF(rc == 0, "1 rank resuming a 2-rank checkpoint: %d\n%s", rc, err);
    EXPECTF(strstr(err, "resumed from"), "no resume message:\n%s", err);
    free(err);
    rc = train(1, a3, &err);               // 2 ranks: step 3 from the 1-rank checkpoint
    EXPECTF(rc == 0, "2 ranks resuming a 1-rank checkpoint: %d\n%s", rc, err);
    free(err);
    char *wf = ckpt_file(full, 3, "model.safetensors"), *wm = ckpt_file(mix, 3, "model.safetensors");
    char *of = ckpt_file(full, 3, "optimizer.safetensors"), *om = ckpt_file(mix, 3, "optimizer.safetensors");
    double dw = max_tensor_diff(wf, wm), dopt = max_tensor_diff(of, om);
    EXPECTF(dw <= 2e-6, "weights: resumed across rank counts vs uninterrupted differ by up to %g", dw);
    EXPECTF(dopt <= 1e-5, "optimizer state: resumed across rank counts vs uninterrupted differ by up to %g", dopt);
    EXPECT_INT_EQ(train(1, s1, NULL), 0);
    EXPECT_INT_EQ(train(1, s2, NULL), 0);
    const char *what = test_checkpoints_differ(full, same, 3);
    EXPECTF(!what, "2 ranks stopped and resumed on 2 ranks differ from the uninterrupted run in %s", what);
    free(wf); free(wm); free(of); free(om);
    free(a1); free(a2); free(a3); free(s1); free(s2); free(mix); free(same); free(data);
}

// A rank killed mid-run (SIGKILL, no chance to say anything) ends the job with an error instead of leaving the
// other rank waiting in a collective; a rank that fails (bad data on rank 1 only) stops every rank with its
// message.
TEST(mpi_failing_rank_ends_the_job) {
    char *data = write_dpo_data("mpi_kill");
    char *out = path_join(test_tmpdir(), "mpi_kill"), *a = run_args(data, out, "--steps 100000");
    char args[4096];
    // rank 1's shell becomes vlm (exec), and a background child kills that pid a second later
    snprintf(args, sizeof(args), "sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then (sleep 1; kill -9 $$) & fi; exec %s train %s'",
             vlm_bin(), a);
    const char *dir = test_tmpdir();
    char *errp = path_join(dir, "mpi_kill.err"), cmd[8192];
    snprintf(cmd, sizeof(cmd), MPIRUN "%s >/dev/null 2>%s", args, errp);
    double t0 = now_seconds();
    int status = test_shell(cmd);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char *err = try_read_file(errp, NULL);
    EXPECTF(rc != 0 && rc != 124, "mpirun with a killed rank exited with %d after %.0f s (124: it hung)\n%s", rc, now_seconds() - t0,
            err ? err : "");
    EXPECTF(err && strstr(err, "signal 9"), "mpirun does not name the killed rank's signal:\n%s", err ? err : "");
    free(err);
    // rank 1 reads a file that is not there: its error, and every rank stops
    // (a fresh --out: the killed run's holds its log, and a new run there is refused)
    char *out2 = path_join(dir, "mpi_kill_2"), *a2 = run_args(data, out2, "--steps 100000");
    char *bad = path_join(dir, "mpi_missing.jsonl"), *b = run_args(bad, out2, "--steps 100000");
    snprintf(args, sizeof(args), "sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then exec %s train %s; fi; exec %s train %s'",
             vlm_bin(), b, vlm_bin(), a2);
    snprintf(cmd, sizeof(cmd), MPIRUN "%s >/dev/null 2>%s", args, errp);
    status = test_shell(cmd);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    err = try_read_file(errp, NULL);
    EXPECTF(rc != 0 && rc != 124, "mpirun with a failing rank exited with %d (124: it hung)\n%s", rc, err ? err : "");
    EXPECTF(err && strstr(err, "mpi_missing.jsonl") && strstr(err, "rank 1 of 2 failed"), "no clear message:\n%s", err ? err : "");
    free(err); free(errp); free(bad); free(b); free(a); free(a2); free(out); free(out2); free(data);
}

// A binary built without MPI (make NO_MPI=1, or no mpicc) runs one process: started as one of several ranks it
// refuses by name instead of training alone N times over. train/dist.c compiled here without VLM_MPI, as such
// a build compiles it, behind a main that joins the job.
TEST(mpi_build_without_mpi_refuses_ranks) {
    const char *dir = test_tmpdir();
    char *src = test_write_tmp("nompi_main.c", "#include \"train/dist.h\"\n#include <stdio.h>\n"
                                               "int main(void) { dist_init(); printf(\"world %d\\n\", dist_world()); return 0; }\n");
    char *bin = path_join(dir, "nompi"), *log = path_join(dir, "nompi.log"), cmd[2048];
    snprintf(cmd, sizeof(cmd), "cc -std=c11 -D_GNU_SOURCE -I. -o %s %s train/dist.c util/common.c -lm 2>%s", bin, src, log);
    int rc = test_shell(cmd);
    EXPECTF(rc == 0, "cannot build train/dist.c without MPI: %s", cmd);
    if (rc != 0) { free(src); free(bin); free(log); return; }
    snprintf(cmd, sizeof(cmd), "%s >%s 2>&1", bin, log);
    EXPECT_INT_EQ(test_shell(cmd), 0);  // no launcher: one rank
    char *out = read_file(log, NULL);
    EXPECTF(strstr(out, "world 1"), "alone: %s", out);
    free(out);
    snprintf(cmd, sizeof(cmd), "OMPI_COMM_WORLD_SIZE=2 %s >%s 2>&1", bin, log);
    EXPECT(test_shell(cmd) != 0);
    out = read_file(log, NULL);
    EXPECTF(strstr(out, "asks for 2 ranks, but this vlm was built without MPI") && !strstr(out, "world"), "as rank of 2: %s", out);
    free(out); free(src); free(bin); free(log);
}
