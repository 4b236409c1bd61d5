#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../model/safetensors.h"
#include "../util/common.h"
#include "../util/threads.h"
#include "dist.h"
#include "metrics.h"
#include "plot.h"
#include "settings.h"

void run_lock_out(const char *out_dir) {
    mkdir_p(out_dir);
    char *path = path_join(out_dir, ".lock");
    // O_CLOEXEC: a child process (none today) must not keep the lock after we exit
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fatal("%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) fatal("%s: cannot lock: %s", path, strerror(errno));
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\r\n")] = 0;
        fatal("%s is in use by another run (%s%s holds the lock on %s); wait for it to end or give another --out", out_dir,
              pid[0] ? "pid " : "a process", pid, path);
    }
    // the holder's pid, for the message above; the fd stays open (and locked) until the process ends
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, n, 0) != n)
        fprintf(stderr, "vlm: warning: %s: cannot write the pid: %s\n", path, strerror(errno));
    free(path);
}

void run_refuse_used_out(const char *out_dir, int force) {
    // what a run leaves: `latest`, its checkpoints, its metrics log
    const char *found = NULL;
    char *latest = path_join(out_dir, "latest"), *log = path_join(out_dir, "metrics.jsonl");
    if (file_exists(latest)) found = "latest";
    else if (file_exists(log)) found = "metrics.jsonl";
    else if (checkpoint_any(out_dir)) found = "checkpoint folders";
    free(latest);
    free(log);
    if (!found) return;
    if (!force)
        fatal("%s holds a run (%s): a new run there would mix the two. Give --resume to continue it, --force to start "
              "a new run over it (its metrics log restarts; its checkpoints are replaced as the new run saves), or "
              "another --out", out_dir, found);
    fprintf(stderr, "vlm train: --force: a new run in %s, over the one there (%s)\n", out_dir, found);
}

void run_write_settings(const TrainConfig *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) fatal("vlm train: cannot build the settings table: %s", strerror(errno));
    settings_print(f, c);
    fclose(f);
    char *path = path_join(c->out_dir, "settings.txt"), err[512];
    if (try_write_file_atomic(path, text, len, err, sizeof(err)) != 0) fprintf(stderr, "vlm: warning: %s\n", err);
    free(path);
    free(text);
}

int run_total_steps(const TrainConfig *c, int n_examples, long long per_step) {
    if (c->steps > 0) return c->steps;
    double t = ceil(c->epochs * n_examples / (double)(per_step > 0 ? per_step : 1));
    if (!(t <= INT_MAX)) fatal("vlm train: --epochs %g over %d examples is %g steps, more than %d", c->epochs, n_examples, t, INT_MAX);
    return t < 1 ? 1 : (int)t;
}

CheckpointLimits run_checkpoint_limits(const char *recipe, unsigned long long data_hash, int total_steps, int n_examples,
                                       long long per_step) {
    // doubles: steps * batch * accumulation can pass 2^63; + 1 for the epoch a run ends in
    double epochs = (double)total_steps * (double)per_step / (n_examples > 0 ? n_examples : 1) + 1;
    return (CheckpointLimits){recipe, data_hash, total_steps, n_examples, epochs < INT_MAX ? (int)epochs : INT_MAX};
}

static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    if (stop_signal) {  // the second signal: no waiting for the step or the checkpoint
        static const char msg[] = "\nvlm: a second signal: exiting at once, without a checkpoint\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)r;
        _exit(128 + sig);
    }
    stop_signal = sig;
    static const char msg[] = "\nvlm: stopping after this step with a checkpoint (a second signal exits at once)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
}

void run_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    // while one handler runs the others wait, so two signals always count as first and second
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sa.sa_flags = SA_RESTART;  // a read or write that the signal interrupts goes on
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) fatal("sigaction(%d): %s", sigs[i], strerror(errno));
}

int run_stop_signal(void) { return stop_signal; }

// Appends s to the command line, in single quotes unless it is made of characters the shell leaves alone.
static void append_quoted(char **buf, size_t *len, size_t *cap, const char *s) {
    size_t need = *len + 4 * strlen(s) + 4;
    if (need > *cap) { *cap = 2 * need; *buf = xrealloc(*buf, *cap); }
    char *p = *buf + *len;
    *p++ = ' ';
    int plain = s[0] != 0;
    for (const char *q = s; *q; q++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *q)) plain = 0;
    if (plain) p += sprintf(p, "%s", s);
    else {
        *p++ = '\'';
        for (const char *q = s; *q; q++) {
            if (*q == '\'') { memcpy(p, "'\\''", 4); p += 4; }  // close the quote, an escaped ', reopen
            else *p++ = *q;
        }
        *p++ = '\'';
        *p = 0;
    }
    *len = (size_t)(p - *buf);
}

char *run_resume_command(const TrainConfig *c) {
    size_t cap = 256, len = 0;
    char *buf = xmalloc(cap);
    buf[0] = 0;
    extern char *program_invocation_name;  // glibc: argv[0] of the process
    append_quoted(&buf, &len, &cap, program_invocation_name);
    memmove(buf, buf + 1, len--);  // no leading space
    append_quoted(&buf, &len, &cap, "train");
    int has_resume = 0;
    for (int i = 0; i < c->argc; i++) {
        append_quoted(&buf, &len, &cap, c->argv[i]);
        has_resume |= !strcmp(c->argv[i], "--resume");
    }
    if (!has_resume) append_quoted(&buf, &len, &cap, "--resume");
    return buf;
}

void run_exit_interrupted(const TrainConfig *c, int sig, int step) {
    char *cmd = run_resume_command(c), name[64];
    snprintf(name, sizeof(name), "checkpoint-%08d", step);
    char *ckpt = path_join(c->out_dir, name);
    fflush(stdout);
    char ranks[64] = "";  // a data-parallel run resumes under mpirun, with this rank count or another
    if (dist_world() > 1) snprintf(ranks, sizeof(ranks), "mpirun -np %d ", dist_world());
    if (dist_rank() == 0)  // every rank stops at this step; one says so
        fprintf(stderr, "vlm: %s: stopped after step %d with a checkpoint in %s. Resume with:\n  %s%s\n",
                sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal", step, ckpt, ranks,
                c->argv ? cmd : "the same command with --resume");
    free(ckpt);
    free(cmd);
    exit(128 + sig);
}

// ---------------------------------------------------------------------------------------------------
// the training loop

// The loss and the recipe's metrics of s into o, each key with `prefix` ("val/" for held-out values).
static void put_stats(cJSON *o, const Recipe *r, const StepStats *s, const char *prefix) {
    char k[96];
    snprintf(k, sizeof(k), "%sloss", prefix);
    cJSON_AddNumberToObject(o, k, s->loss);
    for (int i = 0; i < RECIPE_MAX_METRICS && r->metrics[i]; i++) {
        snprintf(k, sizeof(k), "%s%s", prefix, r->metrics[i]);
        cJSON_AddNumberToObject(o, k, s->metric[i]);
    }
}

// loss.svg, accuracy.svg and rewards.svg of a run (the last two where the recipe names their metrics), in memory,
// redrawn every --log-every steps while that costs at most about 1% of the run's time (a redraw is bounded:
// plot_svg draws at most two points a pixel column, however long the run). A chart that cannot be written is a
// warning, not the end of the run: metrics.jsonl holds every value.
enum { CHART_LOSS, CHART_ACCURACY, CHART_REWARDS, N_CHARTS };
typedef struct {
    PlotChart chart[N_CHARTS];
    int has[N_CHARTS], failed;
    char *path[N_CHARTS];
    const char *title[N_CHARTS];
    double last, cost;  // when the charts were last written, and how long that took (s)
} Charts;

static void charts_add(Charts *ch, const cJSON *rec) {
    for (int k = 0; k < N_CHARTS; k++)
        if (ch->has[k]) plot_chart_add(&ch->chart[k], rec);
}

static void charts_open(Charts *ch, const TrainConfig *c, const char *log_path, int resume_step) {
    const Recipe *r = c->recipe;
    memset(ch, 0, sizeof(*ch));
    char label[96];
    const double step0 = recipe_step0_loss(r, &c->loss, label, sizeof(label));
    const char *keys[N_CHARTS] = {"loss,val/loss", r->acc_plot_keys, r->reward_plot_keys};
    const char *files[N_CHARTS] = {"loss.svg", "accuracy.svg", "rewards.svg"};
    const char *titles[N_CHARTS] = {r->loss_plot_title, r->acc_plot_title, r->reward_plot_title};
    for (int k = 0; k < N_CHARTS; k++) {
        if (!(ch->has[k] = keys[k] != NULL)) continue;
        // the loss chart marks the step-0 value of a preference loss (the policy equals the reference)
        plot_chart_init(&ch->chart[k], keys[k], k == CHART_LOSS ? step0 : NAN, k == CHART_LOSS ? label : NULL);
        ch->path[k] = path_join(c->out_dir, files[k]);
        ch->title[k] = titles[k];
    }
    ch->last = -INFINITY;
    if (resume_step > 0) {  // metrics_open kept the log's lines up to the checkpoint: read once, into every chart
        PlotChart *open_charts[N_CHARTS];
        int n = 0;
        for (int k = 0; k < N_CHARTS; k++)
            if (ch->has[k]) open_charts[n++] = &ch->chart[k];
        plot_chart_add_log(open_charts, n, log_path);
    }
}

// Writes the charts; unless `final`, only when the time since the last write is 100 times what a write takes (and
// no write has failed).
static void charts_refresh(Charts *ch, int final) {
    const double t0 = now_seconds();
    if (!final && (ch->failed || t0 - ch->last < 100 * ch->cost)) return;
    char err[1024];
    for (int k = 0; k < N_CHARTS; k++) {
        if (!ch->has[k] || plot_chart_write(&ch->chart[k], ch->path[k], ch->title[k], err, sizeof(err)) >= 0) continue;
        if (!ch->failed || final)
            fprintf(stderr, "vlm: warning: %s; the charts are %s (metrics.jsonl has every value: vlm plot draws them)\n", err,
                    final ? "not written" : "no longer redrawn during the run");
        ch->failed = 1;
        break;
    }
    ch->last = now_seconds();
    ch->cost = ch->last - t0;
}

static void charts_close(Charts *ch) {
    for (int k = 0; k < N_CHARTS; k++) {
        if (ch->has[k]) plot_chart_free(&ch->chart[k]);
        free(ch->path[k]);
    }
}

// state.json: the position (step, epoch, cursor), what the run was (recipe, data hash, base model, data, backend)
// and every setting (train/settings.h), which --resume compares.
static char *state_json(const TrainConfig *c, const TrainModel *M, const DataOrder *order, int step, int total, const char *backend) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", step);
    cJSON_AddNumberToObject(o, "total_steps", total);
    cJSON_AddNumberToObject(o, "epoch", order->epoch);
    cJSON_AddNumberToObject(o, "cursor", order->cursor);
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", c->seed);
    cJSON_AddStringToObject(o, "seed", buf);
    snprintf(buf, sizeof(buf), "%016llx", M->data_hash);
    cJSON_AddStringToObject(o, "data_hash", buf);
    cJSON_AddStringToObject(o, "recipe", c->recipe->name);
    cJSON_AddStringToObject(o, "base_model", c->model_dir);
    cJSON_AddStringToObject(o, "data", c->data_path);
    cJSON_AddNumberToObject(o, "lr", c->optim.lr);
    cJSON_AddNumberToObject(o, "batch", c->batch);
    cJSON_AddNumberToObject(o, "grad_accum", c->grad_accum);
    cJSON_AddStringToObject(o, "backend", backend);
    cJSON_AddItemToObject(o, "settings", settings_json(c, backend));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

// A checkpoint is only written when its weights give a finite loss on the first examples of the data: a
// diverged run must not replace the last good checkpoint with garbage. Every rank calls it (the optimizer's
// shards gather at rank 0); rank 0 writes.
static void save(const TrainConfig *c, TrainModel *M, const Optimizer *opt, const DataOrder *order, int step, int total,
                 const char *backend) {
    const int root = dist_rank() == 0;
    double loss = root ? M->probe_loss(M) : 0;
    if (!isfinite(loss)) {
        char *last = checkpoint_latest(c->out_dir);
        fatal("step %d: the weights give a loss of %g; not saving them. The last good checkpoint is %s", step, loss,
              last ? last : "(none: no checkpoint was written)");
    }
    void **state = xcalloc(3 * (size_t)opt->n_stores, sizeof(void *));  // (n_stores, 3) m, v, master whole on rank 0
    for (int i = 0; i < 3 * opt->n_stores; i++) state[i] = optim_state_download(opt, i / 3, i % 3);
    if (root) {
        char *s = state_json(c, M, order, step, total, backend);
        checkpoint_save(c->out_dir, step, M->stores, M->n_stores, opt, state, s, c->model_dir, M->save_extra, M->save_ctx);
        free(s);
    }
    for (int i = 0; i < 3 * opt->n_stores; i++) free(state[i]);
    free(state);
}

// Continues from checkpoint `ckpt`: the settings, recipe and data must be the run's; then the position, the
// weights and the optimizer state. Returns the step.
static int resume(const TrainConfig *c, TrainModel *M, Optimizer *opt, DataOrder *order, int total, const char *ckpt,
                  const char *backend) {
    const Recipe *r = c->recipe;
    // the settings first, when the recipe is the run's: a changed flag is named (the data hash would only
    // say that the data differ when the flag changed the rows)
    char *path = path_join(ckpt, "state.json");
    char *text = try_read_file(path, NULL);
    cJSON *state = text ? cJSON_Parse(text) : NULL;
    const cJSON *rcp = state ? cJSON_GetObjectItemCaseSensitive(state, "recipe") : NULL;
    if (cJSON_IsString(rcp) && !strcmp(rcp->valuestring, r->name))
        settings_check_resume(c, cJSON_GetObjectItemCaseSensitive(state, "settings"), backend, path);
    cJSON_Delete(state);
    free(text);
    free(path);
    CheckpointLimits lim = run_checkpoint_limits(r->name, M->data_hash, total, M->n_examples, (long long)M->batch * c->grad_accum);
    CheckpointState cs = checkpoint_read_state(ckpt, &lim);
    order->epoch = cs.epoch;
    order->cursor = cs.cursor;
    data_order_shuffle(order);
    char *w = path_join(ckpt, "model.safetensors");
    SafeTensors *st = st_open_or_die(w);
    for (int i = 0; i < M->n_stores; i++) params_load(M->stores[i], st, NULL);
    st_close(st);
    free(w);
    checkpoint_load_optimizer(ckpt, opt);
    opt->step = cs.step;
    if (dist_rank() == 0) fprintf(stderr, "resumed from %s at step %d (epoch %d, example %d)\n", ckpt, cs.step, cs.epoch, cs.cursor);
    return cs.step;
}

// The step's metrics summed over the ranks (each rank's are weighted by 1/grad_accum of the global batch, so
// the sums are the global batch's means), and the stop signal any rank got: every rank stops at the same step.
static int sum_over_ranks(StepStats *st, int sig) {
    if (dist_world() == 1) return sig;
    double x[RECIPE_MAX_METRICS + 4];
    x[0] = st->loss; x[1] = st->n_examples; x[2] = (double)st->n_items; x[3] = st->flops;
    memcpy(x + 4, st->metric, sizeof(st->metric));
    dist_sum(x, RECIPE_MAX_METRICS + 4);
    st->loss = x[0]; st->n_examples = (int)x[1]; st->n_items = (long long)x[2]; st->flops = x[3];
    memcpy(st->metric, x + 4, sizeof(st->metric));
    return dist_max_int(sig);  // mpirun hands a signal to every rank; one that got none stops with the others
}

int train_run(const TrainConfig *config) {
    const TrainConfig *c = config;
    if (!c->model_dir || !c->data_path || !c->out_dir) fatal("vlm train: --model, --data and --out are required");
    if (c->batch < 1 || c->grad_accum < 1) fatal("vlm train: --batch and --grad-accum must be at least 1");
    const Recipe *r = c->recipe;
    // data parallel (train/dist.h): the ranks share every step's global batch of --batch x --grad-accum examples,
    // each running grad_accum / world of its micro-batches; rank 0 alone locks --out, logs and writes
    dist_init();
    const int rank = dist_rank(), world = dist_world();
    if (c->grad_accum % world != 0)
        fatal("vlm train: %d ranks share each step's %d micro-batches (--grad-accum %d) of %d examples: --grad-accum must be a "
              "multiple of the rank count (e.g. --grad-accum %d for a global batch of %d examples)", world, c->grad_accum,
              c->grad_accum, c->batch, world * ((c->grad_accum + world - 1) / world), c->batch * world * ((c->grad_accum + world - 1) / world));
    TrainConfig quiet_rank;  // the other ranks print nothing of their own
    if (rank != 0) { quiet_rank = *c; quiet_rank.quiet = 1; c = &quiet_rank; }
    threads_adapt();  // starts watching the machine's load (util/threads.h)
    const Backend *be = backend_select(c->device);
    dist_use_backend(be);
    if (rank == 0) {
        run_lock_out(c->out_dir);
        if (!c->resume) run_refuse_used_out(c->out_dir, c->force);
        if (!c->quiet) settings_print(stderr, c);
        run_write_settings(c);
    }
    TrainModel M;
    if (r->model == MODEL_CLIP) clip_train_open(&M, c, be);
    else llava_train_open(&M, c, be);

    // steps, warm-up, optimizer, data order, and the checkpoint to continue from
    const int total = run_total_steps(c, M.n_examples, (long long)M.batch * c->grad_accum);
    OptimConfig oc = c->optim;
    oc.total_steps = total;
    if (oc.warmup_steps < 0) oc.warmup_steps = (int)ceil(c->warmup_ratio * total);
    Optimizer opt;
    optim_init_dist(&opt, &oc, M.trainable, M.n_trainable, !c->no_zero);
    DataOrder order = {M.n_examples, 0, 0, c->seed, xmalloc(sizeof(int) * M.n_examples)};
    data_order_shuffle(&order);
    int step = 0;
    char *latest = c->resume ? checkpoint_resume_dir(c->out_dir) : NULL;
    if (c->resume && !latest && rank == 0) fprintf(stderr, "vlm train: --resume: no checkpoint in %s yet; starting from the base model\n", c->out_dir);
    if (latest) step = resume(c, &M, &opt, &order, total, latest, be->name);
    free(latest);

    char *log_path = path_join(c->out_dir, "metrics.jsonl");
    MetricsLog log;
    // the curves people look at, redrawn as the run logs: the loss (with the validation loss and, for a preference
    // loss, its step-0 identity) and the recipe's accuracy; a resumed run's start from its log
    Charts charts;
    if (rank == 0) {
        metrics_open(&log, log_path, step);
        charts_open(&charts, c, log_path, step);
        fprintf(stderr, "train: recipe %s, %d examples%s, %d steps of %d x %d examples, lr %g (%s, %d warm-up), backend %s\n",
                r->name, M.n_examples, M.has_val ? " (+ validation)" : "", total, M.batch, c->grad_accum, oc.lr,
                schedule_name(oc.schedule), oc.warmup_steps, be->name);
        if (world > 1)
            fprintf(stderr, "train: %d ranks over %s, %d micro-batches each per step, optimizer state %s\n", world,
                    dist_describe(), c->grad_accum / world, opt.sharded ? "sharded (ZeRO-1)" : "whole on every rank (--no-zero)");
    }
    if (!c->quiet && M.memory_report) M.memory_report(&M, &opt);
    const int on_gpu = strcmp(be->name, "cpu") != 0 && strcmp(be->name, "cpu64") != 0;
    char per_s[64];
    snprintf(per_s, sizeof(per_s), "%s_per_s", M.unit);

    int *idx = xmalloc(sizeof(int) * M.batch);
    if (M.stream_from) M.stream_from(&M, &order);  // the loader prefetches the micro-batches this loop will ask for
    double t_start = now_seconds(), items_total = 0;
    const int first_step = step;
    optim_zero_grad(&opt);
    run_signals_install();  // from here a stop signal ends the run with a checkpoint
    while (step < total) {
        threads_adapt();  // 1 thread while other processes hold the cores (util/threads.h); the same results
        double t0 = now_seconds();
        StepStats st;
        memset(&st, 0, sizeof(st));
        for (int micro = 0; micro < c->grad_accum; micro++) {
            data_order_next(&order, idx, M.batch);
            if (micro % world != rank) continue;  // another rank's slice of the global batch
            double loss = M.micro_step(&M, idx, M.batch, step, micro, 1.0 / c->grad_accum, &st);
            if (!isfinite(loss)) {
                char *last = checkpoint_latest(c->out_dir);
                fatal("step %d: the loss is %g; stopping without an update. The last good checkpoint is %s", step + 1, loss,
                      last ? last : "(none yet: no checkpoint was written)");
            }
        }
        double lr, norm = optim_step(&opt, &lr);
        if (!isfinite(norm)) {
            char *last = checkpoint_latest(c->out_dir);
            fatal("step %d: the gradient norm is %g; stopping. The last good checkpoint is %s", step + 1, norm, last ? last : "(none yet)");
        }
        optim_zero_grad(&opt);
        step++;
        be->synchronize();
        const int sig = sum_over_ranks(&st, run_stop_signal());
        double dt = now_seconds() - t0;
        items_total += st.n_items;
        double elapsed = now_seconds() - t_start, rate = (step - first_step) / elapsed;
        double eta = rate > 0 ? (total - step) / rate : 0;
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddNumberToObject(rec, "step", step);
        cJSON_AddNumberToObject(rec, "epoch", order.epoch + (double)order.cursor / M.n_examples);
        put_stats(rec, r, &st, "");
        if (M.log_extra) M.log_extra(&M, rec);
        cJSON_AddNumberToObject(rec, "lr", lr);
        cJSON_AddNumberToObject(rec, "grad_norm", norm);
        cJSON_AddNumberToObject(rec, M.unit, (double)st.n_items);
        cJSON_AddNumberToObject(rec, per_s, st.n_items / dt);
        cJSON_AddNumberToObject(rec, "step_time_s", dt);
        const double mfu = st.flops / dt / (c->peak_tflops * 1e12 * world);  // the job's FLOPs against its GPUs' ceiling
        if (on_gpu && st.flops > 0) cJSON_AddNumberToObject(rec, "mfu", mfu);
        // rank 0 evaluates (the others wait for it at the next step) and logs
        int eval_now = rank == 0 && M.has_val && c->eval_every > 0 && (step % c->eval_every == 0 || step == total);
        StepStats ev;
        memset(&ev, 0, sizeof(ev));
        if (eval_now) {
            M.evaluate(&M, &ev);
            eval_now = ev.n_examples > 0;  // CLIP: held-out data smaller than a batch gives nothing
        }
        if (eval_now) {
            put_stats(rec, r, &ev, "val/");
            if (r->headline) cJSON_AddNumberToObject(rec, "val/accuracy", r->headline(r, &c->loss, ev.metric));
        }
        if (rank == 0) {
            metrics_write(&log, rec);
            charts_add(&charts, rec);
            if (step % (c->log_every > 0 ? c->log_every : 1) == 0) charts_refresh(&charts, 0);
        }
        cJSON_Delete(rec);
        if (!c->quiet && (step % (c->log_every > 0 ? c->log_every : 1) == 0 || step == total)) {
            char acc[64] = "";
            if (r->headline) snprintf(acc, sizeof(acc), " | acc %.2f", r->headline(r, &c->loss, st.metric));
            char val[64] = "";
            if (eval_now) snprintf(val, sizeof(val), " | val %.4f", ev.loss);
            char mfu_s[32] = "";  // MFU means something against a GPU's matmul ceiling only
            if (on_gpu && st.flops > 0) snprintf(mfu_s, sizeof(mfu_s), " | MFU %.1f%%", 100 * mfu);
            fprintf(stderr, "step %d/%d | loss %.4f%s%s | lr %.2e | grad %.3f | %.0f %s/s%s | ETA %dm%02ds\n", step, total, st.loss,
                    acc, val, lr, norm, st.n_items / dt, M.unit_short, mfu_s, (int)eta / 60, (int)eta % 60);
        }
        if (c->stop_at > 0 && step >= c->stop_at) break;
        if (sig || (c->save_every > 0 && step % c->save_every == 0 && step < total)) save(c, &M, &opt, &order, step, total, be->name);
        if (sig) run_exit_interrupted(c, sig, step);
    }
    save(c, &M, &opt, &order, step, total, be->name);
    if (rank == 0) {
        char *saved = checkpoint_latest(c->out_dir);  // the model folder --model takes
        fprintf(stderr, "train: done, %d steps in %.1f s (%.0f %s/s); checkpoint in %s\n", step - first_step,
                now_seconds() - t_start, items_total / (now_seconds() - t_start), M.unit, saved ? saved : c->out_dir);
        free(saved);
        metrics_close(&log);
        charts_refresh(&charts, 1);
        charts_close(&charts);
    }
    free(log_path);
    free(idx);
    free(order.perm);
    optim_free(&opt);  // before the model's stores it points to
    M.close(&M);
    return 0;
}
