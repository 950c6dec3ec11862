/* The fit loop: epochs of shuffled mini-batches, validation, early stopping, learning-rate
 * schedules, checkpoints that resume bit for bit, a CSV log and an SVG plot.
 *
 * Reproducibility: the batch order of epoch e depends only on (seed, e) and the graph's
 * generator (dropout) is saved in every checkpoint, so a run resumed from the checkpoint
 * of epoch e replays epochs e+1.. exactly as the uninterrupted run does. */
#include "train.h"
#include "dist.h"
#include "tokens.h"
#include "adversarial.h"

#include "../core/core.h"
#include "../model/model.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- persistent tensors: best-weight snapshots ---------------------------------------- */

typedef struct snapshot {
    int n;
    int *ids;
    float **data;
} snapshot;

static int snapshot_init(snapshot *s, nerve_graph *g)
{
    s->n = nerve_graph_persistent(g, NULL, 0);
    s->ids = nerve_xcalloc((size_t)s->n + 1, sizeof(int));
    s->data = nerve_xcalloc((size_t)s->n + 1, sizeof(float *));
    if (!s->ids || !s->data)
        return NERVE_ERR_NOMEM;
    nerve_graph_persistent(g, s->ids, s->n);
    for (int i = 0; i < s->n; i++) {
        nerve_tensor t = nerve_value(g, s->ids[i]);
        s->data[i] = nerve_xalloc_floats(nerve_tensor_numel(&t));
        if (!s->data[i])
            return NERVE_ERR_NOMEM;
    }
    return NERVE_OK;
}

static void snapshot_copy(snapshot *s, nerve_graph *g, int to_graph)
{
    for (int i = 0; i < s->n; i++) {
        nerve_tensor t = nerve_value(g, s->ids[i]);
        size_t bytes = nerve_tensor_numel(&t) * sizeof(float);
        if (to_graph)
            memcpy(t.data, s->data[i], bytes);
        else
            memcpy(s->data[i], t.data, bytes);
    }
}

static void snapshot_free(snapshot *s)
{
    for (int i = 0; s->data && i < s->n; i++)
        nerve_xfree_aligned(s->data[i]);
    nerve_xfree(s->data);
    nerve_xfree(s->ids);
}

/* ---- the training state that a checkpoint carries -------------------------------------- */

typedef struct run_state {
    int epoch;          /* completed epochs */
    int64_t iter;       /* completed iterations */
    int best_epoch;
    double best_val;
    int bad_epochs;
    int have_best;
    /* Position inside the unfinished epoch epoch + 1 (an interrupted run's checkpoint):
     * batches done and their running sums, so that a resume finishes that epoch exactly. */
    int batch;
    double part_loss;
    int64_t part_seen, part_correct;
    char *history;      /* CSV text of the log, header included */
    size_t history_len, history_cap;
} run_state;

/* The log's header: the third and fifth columns are the task's main metric ("acc" for a
 * classifier, "r2", "psnr", "miou", "bpc" for the others). */
static void csv_header(char *buf, size_t n, const char *metric)
{
    snprintf(buf, n, "epoch,train_loss,train_%s,val_loss,val_%s,lr,seconds\n", metric, metric);
}

static int history_append(run_state *r, const char *line)
{
    size_t n = strlen(line);
    if (r->history_len + n + 1 > r->history_cap) {
        size_t cap = (r->history_len + n + 1) * 2;
        char *p = nerve_xrealloc(r->history, cap);
        if (!p)
            return NERVE_ERR_NOMEM;
        r->history = p;
        r->history_cap = cap;
    }
    memcpy(r->history + r->history_len, line, n + 1);
    r->history_len += n;
    return NERVE_OK;
}

/* Exact text form of a double ("%a" round-trips every bit). */
static void put_double(nerve_st_writer *w, const char *key, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%a", v);
    nerve_st_writer_meta(w, key, buf);
}

static void put_int(nerve_st_writer *w, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    nerve_st_writer_meta(w, key, buf);
}

static int get_meta(const nerve_st_file *f, const char *key, const char **out, const char *path)
{
    *out = nerve_st_metadata(f, key);
    if (!*out)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: not a training checkpoint (no '%s' in its metadata)",
                               path, key);
    return NERVE_OK;
}

static int save_checkpoint(const char *path, nerve_model *m, nerve_optim *opt, const run_state *r,
                           const snapshot *best, const nerve_schedule *sched)
{
    nerve_st_writer *w = nerve_st_writer_create();
    if (!w)
        return nerve_last_status();
    int st = nerve_model_write_into(m, w);
    for (int i = 0; st == NERVE_OK && i < nerve_optim_state_count(opt); i++) {
        const char *name;
        nerve_tensor t;
        char key[160];
        if ((st = nerve_optim_state_get(opt, i, &name, &t)) != NERVE_OK)
            break;
        snprintf(key, sizeof key, "optim.%s", name);
        st = nerve_st_writer_add(w, key, t.ndim, t.dims, t.data);
    }
    nerve_graph *g = nerve_model_graph(m);
    for (int i = 0; st == NERVE_OK && r->have_best && i < best->n; i++) {
        char key[160];
        nerve_tensor t = nerve_value(g, best->ids[i]);
        snprintf(key, sizeof key, "best.%s", nerve_node_name(g, best->ids[i]));
        st = nerve_st_writer_add(w, key, t.ndim, t.dims, best->data[i]);
    }
    int carried[16], n_carried = nerve_graph_carried_states(g, carried, 16);
    for (int i = 0; st == NERVE_OK && i < n_carried && i < 16; i++) { /* where the streams are */
        char key[160];
        nerve_tensor t = nerve_value(g, carried[i]);
        snprintf(key, sizeof key, "carry.%s", nerve_node_name(g, carried[i]));
        st = nerve_st_writer_add(w, key, t.ndim, t.dims, t.data);
    }
    if (st == NERVE_OK) {
        put_int(w, "train.epoch", r->epoch);
        put_int(w, "train.iter", r->iter);
        put_int(w, "train.optim_steps", nerve_optim_steps(opt));
        put_int(w, "train.best_epoch", r->best_epoch);
        put_double(w, "train.best_val", r->best_val);
        put_int(w, "train.bad_epochs", r->bad_epochs);
        put_int(w, "train.have_best", r->have_best);
        put_double(w, "train.sched_best", sched->best);
        put_int(w, "train.sched_bad", sched->bad_epochs);
        put_double(w, "train.sched_scale", sched->plateau_scale);
        put_int(w, "train.batch", r->batch);
        put_double(w, "train.part_loss", r->part_loss);
        put_int(w, "train.part_seen", r->part_seen);
        put_int(w, "train.part_correct", r->part_correct);
        const nerve_rng *rng = nerve_graph_rng(g);
        char buf[96];
        snprintf(buf, sizeof buf, "%" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32, rng->s[0], rng->s[1],
                 rng->s[2], rng->s[3]);
        nerve_st_writer_meta(w, "train.rng", buf);
        nerve_st_writer_meta(w, "train.history", r->history ? r->history : "");
        st = nerve_st_writer_save(w, path);
    }
    nerve_st_writer_free(w);
    return st;
}

/* ---- resuming: every field of the training state is checked ---------------------------- */

static int bad_field(const char *path, const char *key, const char *v, const char *want)
{
    char q[48];
    size_t i = 0;
    for (; v[i] && i + 1 < sizeof q; i++)
        q[i] = v[i] >= 32 && v[i] < 127 ? v[i] : '?';
    q[i] = '\0';
    return nerve_set_error(NERVE_ERR_FORMAT,
                           "%s: training state '%s' is '%s%s', %s (a damaged or edited checkpoint?)", path,
                           key, q, v[i] ? "..." : "", want);
}

/* A whole-text integer in lo..hi. An absent optional key reads as 0. */
static int meta_int(const nerve_st_file *f, const char *path, const char *key, int optional, int64_t lo,
                    int64_t hi, int64_t *out)
{
    const char *v = nerve_st_metadata(f, key);
    if (!v && optional) {
        *out = 0;
        return NERVE_OK;
    }
    int st = get_meta(f, key, &v, path);
    if (st)
        return st;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || isspace((unsigned char)v[0]) || x < lo || x > hi) {
        char want[96];
        snprintf(want, sizeof want, "not an integer in %lld..%lld", (long long)lo, (long long)hi);
        return bad_field(path, key, v, want);
    }
    *out = x;
    return NERVE_OK;
}

/* A whole-text number, never NaN; infinite only where `finite` is 0. */
static int meta_double(const nerve_st_file *f, const char *path, const char *key, int optional, int finite,
                       double *out)
{
    const char *v = nerve_st_metadata(f, key);
    if (!v && optional) {
        *out = 0;
        return NERVE_OK;
    }
    int st = get_meta(f, key, &v, path);
    if (st)
        return st;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || isspace((unsigned char)v[0]) || isnan(x) || (finite && !isfinite(x)))
        return bad_field(path, key, v, finite ? "not a finite number" : "not a number");
    *out = x;
    return NERVE_OK;
}

/* Four 32-bit words, not all zero (xoshiro's one forbidden state). */
static int meta_rng(const nerve_st_file *f, const char *path, nerve_rng *rng)
{
    const char *v;
    int st = get_meta(f, "train.rng", &v, path);
    if (st)
        return st;
    uint32_t s[4];
    const char *p = v;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(p, &end, 10);
        if (end == p || !isdigit((unsigned char)*p) || errno || x > UINT32_MAX || (i < 3 && *end != ' ') ||
            (i == 3 && *end))
            return bad_field(path, "train.rng", v, "not four 32-bit integers");
        s[i] = (uint32_t)x;
        p = end + (i < 3);
    }
    if (!(s[0] | s[1] | s[2] | s[3]))
        return bad_field(path, "train.rng", v, "an all-zero generator state");
    memcpy(rng->s, s, sizeof s);
    return NERVE_OK;
}

/* The log carried by the checkpoint: a header, then one row per completed epoch, numbered
 * 1..epochs, so that the log rewritten from it agrees with the checkpoint. */
static int check_history(const char *path, const char *h, int64_t epochs)
{
    if (strncmp(h, "epoch,", 6) != 0)
        return bad_field(path, "train.history", h, "not a log (no 'epoch,...' header)");
    const char *p = strchr(h, '\n');
    int64_t rows = 0;
    while (p && *++p) {
        char *end;
        long long e = strtoll(p, &end, 10);
        rows++;
        if (end == p || *end != ',' || e != rows) {
            char want[80];
            snprintf(want, sizeof want, "not row %lld of the log (epoch %lld)", (long long)rows,
                     (long long)rows);
            return bad_field(path, "train.history", p, want);
        }
        p = strchr(p, '\n');
    }
    if (!p)
        return bad_field(path, "train.history", h, "cut short (no newline after its last row)");
    if (rows != epochs) {
        char want[96];
        snprintf(want, sizeof want, "a log of %lld epochs, but train.epoch is %lld", (long long)rows,
                 (long long)epochs);
        return bad_field(path, "train.history", h, want);
    }
    return NERVE_OK;
}

/* Copies the message of the last error (to quote it inside another). */
static void last_message(char *buf, size_t n) { snprintf(buf, n, "%s", nerve_last_error()); }

/* Checks, without copying anything, that the checkpoint holds every persistent tensor of
 * the model with its shape; another model is an error that says so, with what changed in
 * the cfg when the cfgs differ. */
static int check_same_model(const char *path, nerve_model *m, const nerve_st_file *f, int changes,
                            const char *diff)
{
    nerve_graph *g = nerve_model_graph(m);
    int n = nerve_graph_persistent(g, NULL, 0);
    int *ids = nerve_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!ids)
        return NERVE_ERR_NOMEM;
    nerve_graph_persistent(g, ids, n);
    char why[400] = "";
    int st = NERVE_OK;
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        const char *name = nerve_node_name(g, ids[i]);
        int nd, dims[NERVE_MAX_DIMS], fnd, fdims[NERVE_MAX_DIMS];
        char want[96], got[96];
        nerve_node_shape(g, ids[i], &nd, dims);
        nerve_shape_str(nd, dims, want, sizeof want);
        int k = nerve_st_find(f, name);
        if (k < 0) {
            snprintf(why, sizeof why, "tensor '%s' (shape %s in the model) is not in it", name, want);
            st = NERVE_ERR_FORMAT;
        } else if ((st = nerve_st_shape(f, k, &fnd, fdims)) == NERVE_OK && !nerve_same_shape(nd, dims, fnd, fdims)) {
            snprintf(why, sizeof why, "tensor '%s' has shape %s there and %s in the model", name,
                     nerve_shape_str(fnd, fdims, got, sizeof got), want);
            st = NERVE_ERR_SHAPE;
        }
    }
    nerve_xfree(ids);
    if (st == NERVE_OK || !why[0])
        return st;
    if (changes > 0)
        return nerve_set_error(st, "%s holds another model than the one being trained: %s (the cfg changed: %s)",
                               path, why, diff);
    return nerve_set_error(st, "%s holds another model than the one being trained: %s", path, why);
}

/* The optimiser's slots: all present, or (only when the cfg may change, e.g. another
 * optimiser) none, which starts the optimiser afresh. */
static int resume_optimiser(const char *path, const nerve_st_file *f, nerve_optim *opt, int allow_change,
                            int *fresh)
{
    int n = nerve_optim_state_count(opt), found = 0;
    *fresh = 0;
    for (int i = 0; i < n; i++) {
        const char *name;
        nerve_tensor t;
        char key[160];
        nerve_optim_state_get(opt, i, &name, &t);
        snprintf(key, sizeof key, "optim.%s", name);
        found += nerve_st_find(f, key) >= 0;
    }
    if (n > 0 && found == 0 && allow_change) {
        *fresh = 1;
        return NERVE_OK;
    }
    for (int i = 0; i < n; i++) {
        const char *name;
        nerve_tensor t;
        char key[160];
        nerve_optim_state_get(opt, i, &name, &t);
        snprintf(key, sizeof key, "optim.%s", name);
        int k = nerve_st_find(f, key);
        int st = k < 0 ? nerve_set_error(NERVE_ERR_FORMAT,
                                         "%s: optimiser state '%s' is missing (%d of %d slots present: was it "
                                         "saved with another optimiser?)",
                                         path, key, found, n)
                       : nerve_st_read(f, k, t.data, nerve_tensor_numel(&t));
        if (st)
            return st;
    }
    return NERVE_OK;
}

#define MAX_EPOCHS 1000000000LL         /* as many as `nerve train --epochs` accepts */
#define MAX_ITERATIONS (INT64_MAX / 4)  /* schedules compute with iterations in 64 bits */

/* Restores model, optimiser, early-stopping and schedule state and the position inside an
 * unfinished epoch (per_epoch batches of max_batch) from the checkpoint at path. */
static int load_resume(const char *path, nerve_model *m, nerve_optim *opt, run_state *r, snapshot *best,
                       nerve_schedule *sched, int allow_change, int64_t per_epoch, int max_batch)
{
    nerve_st_file *f = nerve_st_open(path);
    if (!f)
        return nerve_last_status();
    const char *saved_cfg = nerve_st_metadata(f, "nerve.cfg");
    const char *cfg = nerve_model_cfg_text(m);
    char diff[600] = "";
    int changes = 0, st = NERVE_OK;
    if (!saved_cfg)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: not a nerve checkpoint (no 'nerve.cfg' in its metadata)",
                             path);
    else if (model_refuse_quantized(f) != NERVE_OK) {
        char why[512];
        last_message(why, sizeof why);
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: %s", path, why);
    } else if (cfg && (changes = nerve_cfg_diff(saved_cfg, cfg, diff, sizeof diff)) < 0) {
        char why[512];
        last_message(why, sizeof why);
        st = nerve_set_error(changes, "%s: the cfg it carries does not read: %s", path, why);
    }
    if (st == NERVE_OK)
        st = check_same_model(path, m, f, changes, diff);
    if (st == NERVE_OK && changes > 0 && !allow_change)
        st = nerve_set_error(NERVE_ERR_STATE,
                             "%s was trained with another cfg (%d change%s: %s); resuming with the new one needs "
                             "nerve train --force (nerve_fit_options.allow_cfg_change)",
                             path, changes, changes == 1 ? "" : "s", diff);
    int64_t epoch = 0, iter = 0, steps = 0, best_epoch = 0, bad = 0, have_best = 0, sched_bad = 0;
    int64_t batch = 0, seen = 0, correct = 0;
    double best_val = 0, sched_best = 0, scale = 0, part_loss = 0;
    const char *history = NULL;
    nerve_rng rng = {{0}};
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.epoch", 0, 0, MAX_EPOCHS, &epoch);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.iter", 0, 0, MAX_ITERATIONS, &iter);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.optim_steps", 0, 0, MAX_ITERATIONS, &steps);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.have_best", 0, 0, epoch > 0, &have_best);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.best_epoch", 0, have_best, have_best ? epoch : 0, &best_epoch);
    if (st == NERVE_OK)
        st = meta_double(f, path, "train.best_val", 0, 0, &best_val);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.bad_epochs", 0, 0, epoch, &bad);
    if (st == NERVE_OK)
        st = meta_double(f, path, "train.sched_best", 0, 0, &sched_best);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.sched_bad", 0, 0, epoch, &sched_bad);
    if (st == NERVE_OK && (st = meta_double(f, path, "train.sched_scale", 0, 1, &scale)) == NERVE_OK &&
        !(scale > 0))
        st = bad_field(path, "train.sched_scale", nerve_st_metadata(f, "train.sched_scale"), "not positive");
    /* the unfinished epoch: only whole batches of max_batch come before its last one */
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.batch", 1, 0, per_epoch - 1, &batch);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.part_seen", 1, batch * max_batch, batch * max_batch, &seen);
    if (st == NERVE_OK)
        st = meta_int(f, path, "train.part_correct", 1, 0, seen, &correct);
    if (st == NERVE_OK)
        st = meta_double(f, path, "train.part_loss", 1, 1, &part_loss);
    if (st == NERVE_OK)
        st = meta_rng(f, path, &rng);
    if (st == NERVE_OK && (st = get_meta(f, "train.history", &history, path)) == NERVE_OK)
        st = check_history(path, history, epoch);
    if (st == NERVE_OK && epoch + (batch > 0) >= MAX_EPOCHS)
        st = bad_field(path, "train.epoch", nerve_st_metadata(f, "train.epoch"), "too many to go on from");
    /* the carried states (where the streams are inside the epoch) */
    int carried[16], carry_at[16], n_carried = nerve_graph_carried_states(nerve_model_graph(m), carried, 16);
    size_t carry_numel[16];
    if (n_carried > 16)
        st = st ? st : nerve_set_error(NERVE_ERR_STATE, "more than 8 carried recurrent layers");
    for (int i = 0; st == NERVE_OK && i < n_carried; i++) {
        char key[160];
        nerve_tensor t = nerve_value(nerve_model_graph(m), carried[i]);
        snprintf(key, sizeof key, "carry.%s", nerve_node_name(nerve_model_graph(m), carried[i]));
        int k = carry_at[i] = nerve_st_find(f, key), nd, dims[NERVE_MAX_DIMS];
        carry_numel[i] = nerve_tensor_numel(&t);
        if (k < 0 || nerve_st_shape(f, k, &nd, dims) != NERVE_OK || !nerve_same_shape(nd, dims, t.ndim, t.dims))
            st = nerve_set_error(NERVE_ERR_FORMAT,
                                 "%s: the carried state '%s' is missing or has another shape (another batch?)",
                                 path, key);
    }
    /* everything checked: now the copies */
    int fresh_optim = 0;
    if (st == NERVE_OK)
        st = nerve_model_read_from(m, f, 1);
    if (st == NERVE_OK)
        st = resume_optimiser(path, f, opt, allow_change, &fresh_optim);
    nerve_graph *g = nerve_model_graph(m);
    for (int i = 0; st == NERVE_OK && have_best && i < best->n; i++) {
        char key[160];
        nerve_tensor t = nerve_value(g, best->ids[i]);
        snprintf(key, sizeof key, "best.%s", nerve_node_name(g, best->ids[i]));
        int k = nerve_st_find(f, key);
        if (k < 0)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: best weights '%s' are missing", path, key);
        else
            st = nerve_st_read(f, k, best->data[i], nerve_tensor_numel(&t));
    }
    if (st == NERVE_OK) {
        r->epoch = (int)epoch;
        r->iter = iter;
        nerve_optim_set_steps(opt, fresh_optim ? 0 : steps);
        r->best_epoch = (int)best_epoch;
        r->best_val = best_val;
        r->bad_epochs = (int)bad;
        r->have_best = (int)have_best;
        sched->best = (float)sched_best;
        sched->bad_epochs = (int)sched_bad;
        sched->plateau_scale = (float)scale;
        r->batch = (int)batch;
        r->part_seen = seen;
        r->part_correct = correct;
        r->part_loss = part_loss;
        memcpy(nerve_graph_rng(g)->s, rng.s, sizeof rng.s);
        r->history_len = 0;
        st = history_append(r, history);
    }
    for (int i = 0; st == NERVE_OK && i < n_carried; i++)
        st = nerve_st_read(f, carry_at[i], nerve_value(g, carried[i]).data, carry_numel[i]);
    nerve_st_close(f);
    return st;
}

/* ---- outputs: CSV log and SVG plot ---------------------------------------------------- */

/* Writes text to path through path.tmp (renamed over path), so that a reader sees the old
 * file or the new one; on any failure the .tmp is removed and the message names the file
 * and the system's reason. */
static int write_text_file(const char *path, const char *text)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fputs(text, fp) >= 0 && fflush(fp) == 0;
    int err = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        remove(tmp);
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    return NERVE_OK;
}

/* Re-reads the history CSV into columns and plots losses and accuracies. */
static int write_plot(const char *path, const char *history)
{
    int rows = 0;
    for (const char *p = history; *p; p++)
        rows += *p == '\n';
    rows -= 1; /* header */
    if (rows < 1)
        return NERVE_OK;
    double *cols = nerve_xcalloc((size_t)rows * 5, sizeof(double));
    if (!cols)
        return NERVE_ERR_NOMEM;
    const char *p = strchr(history, '\n') + 1;
    for (int i = 0; i < rows && *p; i++) {
        double e, tl, ta, vl, va;
        if (sscanf(p, "%lf,%lf,%lf,%lf,%lf", &e, &tl, &ta, &vl, &va) == 5) {
            cols[i] = e;
            cols[rows + i] = tl;
            cols[2 * rows + i] = ta;
            cols[3 * rows + i] = vl;
            cols[4 * rows + i] = va;
        }
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    /* the metric's name is the third column's header minus "train_" */
    char metric[32] = "acc", train_label[48], val_label[48];
    const char *col = strstr(history, "train_loss,train_");
    if (col)
        sscanf(col + strlen("train_loss,train_"), "%31[a-z0-9_]", metric);
    if (strcmp(metric, "acc") == 0)
        snprintf(metric, sizeof metric, "accuracy");
    snprintf(train_label, sizeof train_label, "train %s", metric);
    snprintf(val_label, sizeof val_label, "validation %s", metric);
    nerve_series s[4] = {{"train loss", cols + rows},
                         {"validation loss", cols + 3 * rows},
                         {train_label, cols + 2 * rows},
                         {val_label, cols + 4 * rows}};
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int st = nerve_svg_lineplot(tmp, "training curves", "epoch", cols, rows, s, 4);
    nerve_xfree(cols);
    if (st == NERVE_OK && rename(tmp, path) != 0)
        st = nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (st != NERVE_OK)
        remove(tmp);
    return st;
}

/* ---- augmentation of training batches ------------------------------------------------ */

/* A copy of the cfg's augmentation with the PCA colour statistics of the training set (a
 * function of the data only, so a resumed run recomputes the same), and its scratch. */
static int augment_prepare(const nerve_net_config *c, const nerve_dataset *train, nerve_augment *a,
                           float **scratch)
{
    *a = c->augment;
    *scratch = NULL;
    if (!a->on)
        return NERVE_OK;
    if ((a->on & NERVE_AUG_PCA) && !a->pca_fitted) {
        nerve_dataset images = *train; /* seen with the model's [3, H, W] (CSV rows are flat) */
        images.ndim = 3;
        memcpy(images.dims, c->dims, 3 * sizeof(int));
        int st = nerve_pca_colour_fit(&images, a->pca_eigval, a->pca_eigvec);
        if (st)
            return st;
        a->pca_fitted = 1;
    }
    *scratch = nerve_xalloc_floats(nerve_augment_scratch(c->dims[0], c->dims[1], c->dims[2], 1));
    return *scratch ? NERVE_OK : NERVE_ERR_NOMEM;
}

/* Geometric augmentation moves a mask target with its image (nearest neighbour), which
 * needs the mask to have the image's height and width; boxes are not moved yet. */
static int augment_check(const nerve_net_config *c, const feeder *f)
{
    const unsigned geometric = NERVE_AUG_CROP | NERVE_AUG_FLIP | NERVE_AUG_TRANSLATE | NERVE_AUG_ROTATE |
                               NERVE_AUG_RESCALE | NERVE_AUG_ELASTIC | NERVE_AUG_DARKNET_CROP;
    if (!(c->augment.on & geometric))
        return NERVE_OK;
    if (f->head.target == NERVE_TARGET_MASK && c->ndim == 3 &&
        f->label_numel != (size_t)c->dims[1] * (size_t)c->dims[2])
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "geometric augmentation moves the mask with its image, but the masks "
                               "have %zu values per sample and the images %d x %d pixels",
                               f->label_numel, c->dims[1], c->dims[2]);
    if (f->head.target == NERVE_TARGET_BOXES)
        return nerve_set_error(NERVE_ERR_ARG, "geometric augmentation (augment=) does not move boxes "
                               "yet; use photometric transforms only (brightness, contrast, noise, pca)");
    return NERVE_OK;
}

/* Augments batch `batch` of `epoch` in place with a generator that depends on (seed, epoch,
 * batch) only, so that --resume replays it bit for bit. */
static int augment_batch(const nerve_net_config *c, const nerve_augment *a, float *x, float *mask, int n,
                         int epoch, int batch, float *scratch)
{
    nerve_rng r;
    nerve_augment_seed(&r, c->seed, epoch, batch);
    return nerve_augment_apply(a, x, mask, n, c->dims[0], c->dims[1], c->dims[2], mask ? 1 : 0, &r,
                               scratch);
}

/* ---- the loop ------------------------------------------------------------------------- */

/* The caller's interrupt flag (set by a signal handler) is read between steps. */
static int interrupt_requested(const nerve_fit_options *opt)
{
    return opt && opt->interrupt && *opt->interrupt;
}

/* Data-parallel: the validation metrics of the ranks' shares of val, summed. */
static int evaluate_shared(nerve_model *m, const nerve_dataset *val, dist_state *ds, nerve_metrics *vm)
{
    int rank = ds->d->rank, size = ds->d->size;
    int lo = (int)((int64_t)val->n * rank / size), hi = (int)((int64_t)val->n * (rank + 1) / size);
    int st = evaluate_range(m, val, lo, hi, vm);
    if (st == NERVE_OK && (st = dist_reduce_metrics(ds, vm)) != NERVE_OK)
        nerve_metrics_free(vm);
    return st;
}

/* Data-parallel: one number per rank summed, for a decision every rank takes alike. */
static int reduce_step(dist_state *ds, double *v, int n)
{
    return ds->d->reduce(ds->d->user, v, n, NERVE_DIST_SUM);
}

static int fit_epochs(nerve_model *m, const nerve_dataset *train, const nerve_dataset *val,
                      const nerve_fit_options *opt, nerve_fit_result *res, nerve_optim *optim,
                      nerve_schedule *sched, run_state *r, snapshot *best, feeder *f, int max_batch,
                      dist_state *ds)
{
    const nerve_net_config *c = nerve_model_config(m);
    nerve_graph *g = f->g;
    int local_batch = nerve_graph_batch(g);
    int epochs = opt && opt->max_epochs > 0 ? opt->max_epochs : c->epochs;
    int stop_after = opt ? opt->stop_after_epochs : 0;
    int every = opt && opt->progress_every > 0 ? opt->progress_every : 50;
    nerve_prefetch *pf = NULL;
    int st = NERVE_OK;
    nerve_augment aug;
    float *aug_scratch = NULL;
    nerve_metrics mt;
    if ((st = feed_metrics_init(f, &mt)) != NERVE_OK || (st = augment_check(c, f)) != NERVE_OK ||
        (st = augment_prepare(c, train, &aug, &aug_scratch)) != NERVE_OK) {
        nerve_metrics_free(&mt);
        nerve_xfree_aligned(aug_scratch);
        return st;
    }
    /* batches are assembled, and augmented, on a background thread while the step runs,
     * bit-identical to doing it here (docs/data.md); a mask moves with its image, so a
     * batch with masks is augmented below, after its targets are fed */
    int aug_here = aug.on && feed_mask(f) != NULL;
    pf = nerve_prefetch_create(train, max_batch, aug.on && !aug_here ? &aug : NULL, c->dims[0],
                               c->ndim == 3 ? c->dims[1] : 1, c->ndim == 3 ? c->dims[2] : 1,
                               c->seed);
    if (!pf) {
        nerve_metrics_free(&mt);
        nerve_xfree_aligned(aug_scratch);
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_NOMEM;
    }
    if (ds && aug_here)
        st = nerve_set_error(NERVE_ERR_ARG, "data-parallel training with augmented mask targets is not "
                             "supported: train it in one process, or without augmentation");
    else if (ds)
        st = nerve_prefetch_set_shard(pf, ds->d->rank, ds->d->size);
    if (st)
        epochs = 0;
    /* robust training: the attack's buffers and generator (seeded per run; a resumed run
     * draws other random starts than an uninterrupted one) */
    int adv = c->adversarial.kind != NERVE_ADV_NONE;
    adv_scratch adv_s = {0};
    nerve_rng adv_rng;
    nerve_rng_seed(&adv_rng, c->seed * 0x2545F4914F6CDD1Dull + (uint64_t)r->iter + 7);
    if (adv && st == NERVE_OK) {
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(g, f->output, &nd, dims);
        st = adv_scratch_init(&adv_s, max_batch, f->sample_numel, nd == 2 ? dims[1] : 1);
        if (st == NERVE_OK && c->adversarial.kind == NERVE_ADV_TRADES)
            st = adv_scratch_grads(&adv_s, g);
        if (st)
            epochs = 0;
    }
    float *x = nerve_value(g, f->input).data;
    double t_run = now_seconds();
    int ran = 0;
    int out_of_steps = (c->max_batches > 0 || c->max_batches_set) && r->iter >= c->max_batches;
    for (int epoch = r->epoch + 1; epoch <= epochs && st == NERVE_OK && !out_of_steps; epoch++) {
        /* batch order of this epoch: a function of (seed, epoch) only (a text stream is read
         * in its order: batch k is chunk k of every stream); a run resumed from an interrupted
         * epoch goes on at the batch it stopped before */
        if ((st = nerve_prefetch_start(pf, c->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch, epoch,
                                       r->batch)) != NERVE_OK)
            break;
        nerve_graph_set_training(g, 1);
        /* an epoch reads every stream from its start (a resumed partial epoch goes on from
         * the carried states its checkpoint saved) */
        if (r->batch == 0)
            nerve_graph_reset_carry(g);
        /* a run resumed from an interrupted epoch goes on at the batch it stopped before */
        double t0 = now_seconds(), loss_sum = r->part_loss;
        int64_t seen = r->part_seen, seen0 = seen;
        /* agreed_stop: data-parallel, whether any rank had been interrupted at the last step's
         * reduction; every rank decides on it, never on its own flag, which the signal may
         * reach at different moments on different ranks */
        int batches = r->batch, n, stop = 0, agreed_stop = 0;
        /* the running training metric: a classifier's counts of the interrupted epoch are
         * restored; other tasks' figures of a resumed epoch cover the batches after the
         * resume (docs/metrics.md) */
        nerve_metrics_reset(&mt);
        if (mt.task == NERVE_TASK_CLASSIFY && (!ds || ds->d->rank == 0)) { /* counted once */
            mt.samples = mt.counted = r->part_seen;
            mt.correct = r->part_correct;
        }
        r->batch = 0;
        r->part_loss = 0;
        r->part_seen = r->part_correct = 0;
        float lr = nerve_schedule_lr(sched, r->iter, epoch - 1);
        while (!out_of_steps && (n = nerve_prefetch_next(pf, x, f->ybuf, NULL)) > 0) {
            /* data-parallel: this rank's shard of the global batch of n (maybe none) */
            int got;
            const int *idx = nerve_prefetch_last_indices(pf, &got);
            if (!ds)
                got = n;
            if (got > 0 && got != nerve_graph_batch(g) && (st = nerve_graph_set_batch(g, got)) != NERVE_OK)
                break;
            if (got > 0 && (st = feed_targets(f, train, idx, got)) != NERVE_OK)
                break;
            if (aug_here && (st = augment_batch(c, &aug, x, feed_mask(f), n, epoch, batches, aug_scratch)) != NERVE_OK)
                break;
            if (got > 0)
                feed_finish_inputs(f, idx, got, epoch);
            lr = nerve_schedule_lr(sched, r->iter, epoch - 1);
            nerve_optim_prepare(optim);
            float loss = 0;
            if (got > 0 && adv) {
                if ((st = adv_train_forward(m, got, epoch, &adv_rng, &adv_s, &loss)) != NERVE_OK)
                    break;
            } else if (got > 0) {
                nerve_forward(g, f->loss);
                loss = nerve_value(g, f->loss).data[0];
            }
            if (ds && (st = nerve_graph_stat_status(g)) != NERVE_OK)
                break;
            int stop_here = interrupt_requested(opt);
            if (ds) { /* every rank learns the global loss, and whether any rank stops */
                double v[3] = {(double)loss * got, isfinite(loss) ? 0 : 1, stop_here}, tw = now_seconds();
                if ((st = reduce_step(ds, v, 3)) != NERVE_OK)
                    break;
                res->dist_wait_seconds += now_seconds() - tw;
                loss = v[1] > 0 ? (isfinite(loss) ? NAN : loss) : (float)(v[0] / n);
                stop_here = agreed_stop = v[2] > 0;
            }
            if (!isfinite(loss)) {
                st = nerve_set_error(NERVE_ERR_NUMERIC,
                                     "the loss became %s at epoch %d, batch %d (learning rate %g); training "
                                     "stopped, the last checkpoint on disk is from epoch %d",
                                     isnan(loss) ? "NaN" : "infinite", epoch, batches + 1, (double)lr,
                                     r->epoch);
                break;
            }
            double tb = now_seconds();
            if (ds)
                dist_begin_step(ds, got, n);
            if (got > 0 && adv && (st = adv_train_backward(m, got, &adv_s)) != NERVE_OK)
                break;
            if (got > 0 && !adv)
                nerve_backward(g, f->loss);
            if (ds) {
                double tw = now_seconds();
                res->backward_seconds += tw - tb;
                if ((st = nerve_graph_stat_status(g)) != NERVE_OK || (st = dist_end_step(ds)) != NERVE_OK)
                    break;
                res->dist_wait_seconds += now_seconds() - tw;
            }
            nerve_optim_step(optim, lr);
            r->iter++;
            batches++;
            loss_sum += (double)loss * n;
            if (got > 0)
                feed_measure(f, &mt, got);
            seen += n;
            out_of_steps = (c->max_batches > 0 || c->max_batches_set) && r->iter >= c->max_batches;
            if (opt && opt->on_progress && (batches % every == 0 || seen == train->n)) {
                double el = now_seconds() - t0;
                nerve_progress p = {epoch, epochs, seen, train->n, loss_sum / (double)seen,
                                    el > 0 ? (double)(seen - seen0) / el : 0,
                                    el > 0 ? el * (double)(train->n - seen) / (double)(seen - seen0) : 0};
                opt->on_progress(&p, opt->user);
            }
            /* alone: the flag as it is now (a progress callback may just have set it); data-
             * parallel: as the ranks agreed on it before backward */
            if ((ds ? stop_here : interrupt_requested(opt)) && seen < train->n) {
                if (ds && (st = dist_reduce_metrics(ds, &mt)) != NERVE_OK)
                    break;
                r->batch = batches;
                r->part_loss = loss_sum;
                r->part_seen = seen;
                r->part_correct = mt.task == NERVE_TASK_CLASSIFY ? mt.correct : 0;
                stop = 1;
                break;
            }
        }
        /* A non-finite value the loss did not show (a max-pool or a clamp can hide one, and
         * updates can break parameters after the last forward): the epoch's last forward
         * and the updated parameters are checked once, before validation overwrites the
         * values and before the checkpoint is written. */
        if (st == NERVE_OK && (st = nerve_graph_check_finite(g, f->loss)) != NERVE_OK) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", nerve_last_error());
            st = nerve_set_error(NERVE_ERR_NUMERIC, "training stopped at the end of epoch %d: %s; "
                                 "the last checkpoint on disk is from epoch %d",
                                 epoch, msg, r->epoch);
        }
        if (nerve_graph_batch(g) != local_batch)
            nerve_graph_set_batch(g, local_batch);
        if (st)
            break;
        /* data-parallel: the ranks' running statistics averaged, weights compared */
        if (ds && ((st = dist_sync_state(ds)) != NERVE_OK ||
                   (st = dist_check_same(ds, NULL, NULL, 0, "after a step")) != NERVE_OK))
            break;
        if (stop) { /* the checkpoint of the partial epoch; the log has whole epochs only */
            res->interrupted = 1;
            res->interrupted_epoch = epoch;
            res->interrupted_batch = batches;
            if (opt->checkpoint)
                st = save_checkpoint(opt->checkpoint, m, optim, r, best, sched);
            break;
        }
        double secs = now_seconds() - t0;
        nerve_epoch_stats es = {epoch, loss_sum / (double)seen, NAN, NAN, NAN, NULL, NAN, NAN, lr,
                                secs, secs > 0 ? (double)seen / secs : 0};
        if (ds && (st = dist_reduce_metrics(ds, &mt)) != NERVE_OK)
            break;
        es.metric = nerve_metrics_main(&mt, &es.train_metric, NULL);
        if (mt.task == NERVE_TASK_CLASSIFY)
            es.train_acc = es.train_metric;
        if (val && val->n > 0) {
            nerve_metrics vm;
            if ((st = ds ? evaluate_shared(m, val, ds, &vm) : nerve_evaluate_metrics(m, val, &vm)) != NERVE_OK)
                break;
            es.val_loss = nerve_metrics_loss(&vm);
            nerve_metrics_main(&vm, &es.val_metric, NULL);
            if (vm.task == NERVE_TASK_CLASSIFY)
                es.val_acc = es.val_metric;
            nerve_metrics_free(&vm);
        }
        double metric = val && val->n > 0 ? es.val_loss : es.train_loss;
        nerve_schedule_observe(sched, (float)metric);
        if (!r->have_best || metric < r->best_val) {
            r->best_val = metric;
            r->best_epoch = epoch;
            r->bad_epochs = 0;
            r->have_best = 1;
            snapshot_copy(best, g, 0);
        } else {
            r->bad_epochs++;
        }
        char line[256];
        snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", epoch, es.train_loss, es.train_metric,
                 es.val_loss, es.val_metric, (double)lr, secs);
        if ((st = history_append(r, line)) != NERVE_OK)
            break;
        r->epoch = epoch;
        ran++;
        /* checkpoint first: the log never runs ahead of the checkpoint it describes */
        if (opt && opt->checkpoint && (st = save_checkpoint(opt->checkpoint, m, optim, r, best, sched)))
            break;
        if (opt && opt->log_csv && (st = write_text_file(opt->log_csv, r->history)) != NERVE_OK)
            break;
        if (opt && opt->plot_svg && (st = write_plot(opt->plot_svg, r->history)) != NERVE_OK)
            break;
        if (opt && opt->on_epoch)
            opt->on_epoch(&es, opt->user);
        if (c->patience > 0 && r->bad_epochs >= c->patience) {
            res->stopped_early = 1;
            break;
        }
        if (stop_after > 0 && ran >= stop_after)
            break;
        if ((ds ? agreed_stop : interrupt_requested(opt)) && epoch < epochs) {
            res->interrupted = 1;
            res->interrupted_epoch = epoch + 1;
            res->interrupted_batch = 0;
            break;
        }
    }
    nerve_prefetch_free(pf);
    adv_scratch_free(&adv_s);
    nerve_metrics_free(&mt);
    nerve_xfree_aligned(aug_scratch);
    res->epochs_run = ran;
    res->best_epoch = r->best_epoch;
    res->best_val_loss = r->best_val;
    res->seconds = now_seconds() - t_run;
    return st;
}

/* Leftovers of a write that a killed process left half done (the files they were to
 * replace are whole: every write goes through a temporary renamed over its target). */
static void remove_stale_temporaries(const nerve_fit_options *opt)
{
    const char *paths[3] = {opt->checkpoint, opt->log_csv, opt->plot_svg};
    for (int i = 0; i < 3; i++) {
        char tmp[1100];
        if (!paths[i])
            continue;
        snprintf(tmp, sizeof tmp, "%s.tmp", paths[i]);
        remove(tmp);
    }
}

/* What data-parallel training does not do (yet), refused rather than done wrong. */
static int dist_refuse(nerve_model *m, const nerve_dataset *train, const nerve_dist *d)
{
    if (!d->start_sum || !d->wait_all || !d->reduce || d->rank < 0 || d->rank >= d->size)
        return nerve_set_error(NERVE_ERR_ARG, "data-parallel training: rank %d of %d, or a transport without "
                               "start_sum, wait_all or reduce", d->rank, d->size);
    if (train->streams || train->target == NERVE_TARGET_TOKENS)
        return nerve_set_error(NERVE_ERR_ARG, "data-parallel training of a text model (streams carried from "
                               "batch to batch) is not supported: train it in one process");
    if (nerve_model_config(m)->adversarial.kind == NERVE_ADV_TRADES)
        return nerve_set_error(NERVE_ERR_ARG, "data-parallel TRADES training is not supported (its step runs "
                               "three backward passes, each of which would sum the gradients across the "
                               "processes): train it in one process, or use adversarial=pgd");
    return NERVE_OK;
}

/* Data-parallel: the buckets, then the ranks' agreement on where they start from. */
static int dist_start(dist_state *ds, const nerve_dist *d, nerve_model *m, int loss, feeder *f,
                      const nerve_dataset *train, const nerve_dataset *val, const run_state *r)
{
    nerve_metrics probe;
    int st = feed_metrics_init(f, &probe);
    if (st)
        return st;
    size_t len = dist_metrics_len(&probe);
    nerve_metrics_free(&probe);
    if ((st = dist_init(ds, d, nerve_model_graph(m), loss, len)) != NERVE_OK)
        return st;
    const char *cfg = nerve_model_cfg_text(m);
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = cfg ? cfg : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001B3ull;
    double v[7] = {(double)(h >> 32), (double)(h & 0xFFFFFFFFu), train->n, val ? val->n : 0,
                   (double)r->epoch, (double)r->iter, (double)r->batch};
    static const char *const names[7] = {"the cfg (a hash of its text)", "the cfg (a hash of its text)",
                                         "the number of training samples", "the number of validation samples",
                                         "the resumed epoch", "the resumed iteration", "the resumed batch"};
    if ((st = dist_check_same(ds, v, names, 7, "at the start")) != NERVE_OK)
        return st;
    const nerve_net_config *c = nerve_model_config(m);
    if (c->sync_batchnorm) {
        /* every rank must run every forward: no batch may leave a rank without samples */
        int gb = batch_for(c->batch, train->n), last = train->n % gb;
        if (gb < d->size || (last > 0 && last < d->size))
            return nerve_set_error(NERVE_ERR_ARG,
                                   "sync_batchnorm=1 on %d ranks needs every batch to hold at least %d samples, "
                                   "but %s holds %d (%d training samples in batches of %d): change batch, the "
                                   "validation fraction or the number of ranks",
                                   d->size, d->size, gb < d->size ? "each batch" : "the last batch of an epoch",
                                   gb < d->size ? gb : last, train->n, gb);
        dist_sync_batchnorm(ds);
    }
    return dist_sync_state(ds);
}

int nerve_fit(nerve_model *m, const nerve_dataset *train, const nerve_dataset *val,
              const nerve_fit_options *opt, nerve_fit_result *result)
{
    if (!m || !train || train->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "fit: no model or an empty training set");
    if (nerve_model_quantized(m))
        return nerve_set_error(NERVE_ERR_STATE, "fit: the model is int8 (nerve quantize): it "
                               "runs inference only; train the float model it came from");
    if (m->refuse_train[0])
        return nerve_set_error(NERVE_ERR_STATE, "fit: %s", m->refuse_train);
    nerve_head_info head = nerve_model_head(m);
    if (head.target == NERVE_TARGET_CLASS && (!train->y || train->n_classes < 1))
        return nerve_set_error(NERVE_ERR_ARG, "fit: the training set has no labels");
    nerve_fit_result res_local = {0};
    nerve_fit_result *res = result ? result : &res_local;
    memset(res, 0, sizeof *res);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_graph *g = nerve_model_graph(m);
    int st = NERVE_OK;
    const nerve_dist *dist = opt && opt->dist && opt->dist->size > 1 ? opt->dist : NULL;
    if (dist && (st = dist_refuse(m, train, opt->dist)) != NERVE_OK)
        return st;
    /* data-parallel: the global batch is the cfg's, a rank's graph holds its shard */
    int gbatch = batch_for(c->batch, train->n);
    if (!nerve_graph_is_compiled(g) &&
        (st = nerve_model_compile(m, dist ? (gbatch + dist->size - 1) / dist->size : gbatch)) != NERVE_OK)
        return st;
    if (!dist)
        gbatch = nerve_graph_batch(g);
    nerve_rng_seed(nerve_graph_rng(g), c->seed + 1);
    if (nerve_model_normalizes(m)) {
        float *mean = nerve_xmalloc(train->sample_numel * sizeof(float));
        float *std = nerve_xmalloc(train->sample_numel * sizeof(float));
        st = mean && std ? nerve_dataset_stats(train, mean, std) : NERVE_ERR_NOMEM;
        if (st == NERVE_OK)
            st = nerve_model_set_input_stats(m, mean, std);
        nerve_xfree(mean);
        nerve_xfree(std);
        if (st)
            return st;
    }
    feeder f;
    if ((st = feeder_init(&f, m, train, 1)) != NERVE_OK)
        return st;
    if (train->target == NERVE_TARGET_TOKENS && (st = tokens_check(m, train, 1)) != NERVE_OK) {
        feeder_free(&f);
        return st;
    }
    if (val && val->n > 0) {
        feeder fv;
        st = feeder_init(&fv, m, val, 1);
        feeder_free(&fv);
        if (st) {
            feeder_free(&f);
            return st;
        }
    }
    char header[128];
    nerve_metrics probe;
    if ((st = feed_metrics_init(&f, &probe)) != NERVE_OK) {
        feeder_free(&f);
        return st;
    }
    const char *metric = nerve_metrics_main(&probe, NULL, NULL);
    nerve_metrics_free(&probe);
    csv_header(header, sizeof header, metric ? metric : "acc");
    nerve_optim *optim = nerve_optim_create(g, &c->optim);
    nerve_schedule sched = c->schedule;
    if ((sched.type == NERVE_SCHED_LINEAR || sched.type == NERVE_SCHED_COSINE) && sched.tau <= 0) {
        /* unset tau: decay over the whole run */
        int epochs = opt && opt->max_epochs > 0 ? opt->max_epochs : c->epochs;
        int64_t per_epoch = (train->n + gbatch - 1) / gbatch;
        sched.tau = per_epoch * (epochs > 0 ? epochs : 1);
        if (c->max_batches > 0 && c->max_batches < sched.tau)
            sched.tau = c->max_batches;
    }
    run_state r = {0};
    snapshot best = {0};
    dist_state ds = {0};
    if (!optim)
        st = nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = snapshot_init(&best, g);
    if (st == NERVE_OK)
        st = history_append(&r, header);
    if (st == NERVE_OK && opt)
        remove_stale_temporaries(opt);
    if (st == NERVE_OK && opt && opt->resume)
        st = load_resume(opt->resume, m, optim, &r, &best, &sched, opt->allow_cfg_change,
                         (train->n + gbatch - 1) / gbatch, gbatch);
    if (st == NERVE_OK && dist)
        st = dist_start(&ds, dist, m, f.loss, &f, train, val, &r);
    /* a resumed run's log starts as the checkpoint's, before the first new epoch */
    if (st == NERVE_OK && opt && opt->resume && opt->log_csv)
        st = write_text_file(opt->log_csv, r.history);
    if (st == NERVE_OK)
        st = fit_epochs(m, train, val, opt, res, optim, &sched, &r, &best, &f, gbatch, dist ? &ds : NULL);
    res->dist_buckets = ds.n_buckets;
    /* Early stopping's promise: the model ends with its best weights (only meaningful
     * when a validation set chose them). */
    int epochs = opt && opt->max_epochs > 0 ? opt->max_epochs : c->epochs;
    int finished = r.epoch >= epochs || res->stopped_early ||
                   ((c->max_batches > 0 || c->max_batches_set) && r.iter >= c->max_batches);
    if (st == NERVE_OK && finished && val && val->n > 0 && r.have_best) {
        snapshot_copy(&best, g, 1);
        if (opt && opt->checkpoint)
            st = save_checkpoint(opt->checkpoint, m, optim, &r, &best, &sched);
    }
    snapshot_free(&best);
    dist_free(&ds);
    nerve_optim_free(optim);
    feeder_free(&f);
    nerve_xfree(r.history);
    return st;
}
