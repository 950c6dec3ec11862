/* Data-parallel training, the fit loop's side (the transport is a nerve_dist: MPI in the
 * CLI, src/dist/).
 *
 * Gradient buckets. The trainable parameters are laid out in the order backward finishes
 * their gradients (nerve_graph_grad_order) and cut into buckets of about bucket_floats.
 * The graph's grad hook copies each finished gradient, scaled by this rank's share of the
 * global batch (n_r / n: the loss is a mean over the rank's samples), into its bucket; a
 * bucket whose parameters are all in is started (start_sum) at once, buckets strictly in
 * order, so every rank starts the same sums in the same order whatever its timing. After
 * backward the rest are started, all are waited for, and the sums go back into the
 * gradients: every rank then holds the gradient of the global batch and takes the same
 * optimiser step. A rank with no sample in a batch (the last batch of an epoch may be
 * smaller than the number of ranks) contributes zeros. */
#include "dist.h"
#include "train.h"

#include "../core/core.h"

#include <math.h>
#include <string.h>

#define DEFAULT_BUCKET 65536

static void on_grad_ready(void *user, int param);

int dist_init(dist_state *s, const nerve_dist *d, nerve_graph *g, int loss, size_t metric_len)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    s->g = g;
    s->scale = 1.0f;
    int n = nerve_graph_grad_order(g, loss, NULL, 0);
    if (n < 0)
        return n;
    int nodes = nerve_node_count(g);
    s->n_params = n;
    s->order = nerve_xcalloc((size_t)n + 1, sizeof(int));
    s->pos_of = nerve_xmalloc((size_t)nodes * sizeof(int));
    s->grad = nerve_xcalloc((size_t)n + 1, sizeof(float *));
    s->numel = nerve_xcalloc((size_t)n + 1, sizeof(size_t));
    s->offset = nerve_xcalloc((size_t)n + 1, sizeof(size_t));
    s->bucket = nerve_xcalloc((size_t)n + 1, sizeof(int));
    s->first = nerve_xcalloc((size_t)n + 2, sizeof(int));
    s->pending = nerve_xcalloc((size_t)n + 1, sizeof(int));
    s->packed = nerve_xcalloc((size_t)n + 1, 1);
    if (!s->packed || !s->order || !s->pos_of || !s->grad || !s->numel || !s->offset || !s->bucket || !s->first ||
        !s->pending)
        return NERVE_ERR_NOMEM;
    nerve_graph_grad_order(g, loss, s->order, n);
    for (int i = 0; i < nodes; i++)
        s->pos_of[i] = -1;
    size_t cap = d->bucket_floats ? d->bucket_floats : DEFAULT_BUCKET, in_bucket = 0;
    for (int i = 0; i < n; i++) {
        nerve_tensor gt = nerve_grad(g, s->order[i]);
        if (!gt.data)
            return nerve_set_error(NERVE_ERR_STATE, "data-parallel training: parameter '%s' has no gradient",
                                   nerve_node_name(g, s->order[i]));
        s->pos_of[s->order[i]] = i;
        s->grad[i] = gt.data;
        s->numel[i] = nerve_tensor_numel(&gt);
        s->offset[i] = s->total;
        s->total += s->numel[i];
        if (in_bucket > 0 && in_bucket + s->numel[i] > cap) { /* a new bucket starts here */
            s->n_buckets++;
            s->first[s->n_buckets] = i;
            in_bucket = 0;
        }
        s->bucket[i] = s->n_buckets;
        in_bucket += s->numel[i];
    }
    if (n > 0)
        s->n_buckets++;
    s->first[s->n_buckets] = n;
    s->buf = nerve_xalloc_floats(s->total ? s->total : 1);
    if (!s->buf)
        return NERVE_ERR_NOMEM;
    /* the persistent tensors that are not trained: running statistics (and frozen or fixed
     * values, identical on every rank, which averaging in double leaves as they are) */
    int np = nerve_graph_persistent(g, NULL, 0);
    s->state = nerve_xcalloc((size_t)np + 1, sizeof(int));
    if (!s->state)
        return NERVE_ERR_NOMEM;
    int *all = nerve_xcalloc((size_t)np + 1, sizeof(int));
    if (!all)
        return NERVE_ERR_NOMEM;
    nerve_graph_persistent(g, all, np);
    for (int i = 0; i < np; i++)
        if (s->pos_of[all[i]] < 0) {
            nerve_tensor t = nerve_value(g, all[i]);
            s->state[s->n_state++] = all[i];
            s->state_total += nerve_tensor_numel(&t);
        }
    nerve_xfree(all);
    s->dbuf_len = s->state_total + 4;
    if (metric_len > s->dbuf_len)
        s->dbuf_len = metric_len;
    if (s->dbuf_len < 64)
        s->dbuf_len = 64;
    s->dbuf = nerve_xmalloc(s->dbuf_len * sizeof(double));
    if (!s->dbuf)
        return NERVE_ERR_NOMEM;
    return nerve_graph_set_grad_hook(g, on_grad_ready, s);
}

/* The graph's stat reduce (synchronised batch norm): forward sums as they are; backward
 * sums weighted by the ranks' shares, returned in this rank's units. */
static int stat_reduce(void *user, double *buf, int n, int backward)
{
    dist_state *s = user;
    double w = s->share;
    if (backward && !(w > 0))
        return nerve_set_error(NERVE_ERR_STATE, "synchronised batch norm: a rank without samples ran backward");
    for (int i = 0; backward && i < n; i++)
        buf[i] *= w;
    int st = s->d->reduce(s->d->user, buf, n, NERVE_DIST_SUM);
    for (int i = 0; backward && i < n; i++)
        buf[i] /= w;
    return st;
}

void dist_sync_batchnorm(dist_state *s) { nerve_graph_set_stat_reduce(s->g, stat_reduce, s); }

void dist_free(dist_state *s)
{
    if (s->g) {
        nerve_graph_set_grad_hook(s->g, NULL, NULL);
        nerve_graph_set_stat_reduce(s->g, NULL, NULL);
    }
    nerve_xfree(s->order);
    nerve_xfree(s->pos_of);
    nerve_xfree(s->grad);
    nerve_xfree(s->numel);
    nerve_xfree(s->offset);
    nerve_xfree(s->bucket);
    nerve_xfree(s->first);
    nerve_xfree(s->pending);
    nerve_xfree(s->packed);
    nerve_xfree_aligned(s->buf);
    nerve_xfree(s->state);
    nerve_xfree(s->dbuf);
    memset(s, 0, sizeof *s);
}

static void start_bucket(dist_state *s, int b)
{
    size_t lo = s->offset[s->first[b]];
    size_t hi = s->first[b + 1] < s->n_params ? s->offset[s->first[b + 1]] : s->total;
    int st = s->d->start_sum(s->d->user, s->buf + lo, hi - lo);
    if (st && !s->status)
        s->status = st;
}

/* Starts the buckets, in order, whose parameters are all in. */
static void start_ready(dist_state *s)
{
    while (s->next < s->n_buckets && s->pending[s->next] == 0)
        start_bucket(s, s->next++);
}

static void pack(dist_state *s, int pos, int zero)
{
    float *dst = s->buf + s->offset[pos];
    const float *src = s->grad[pos];
    float k = s->scale;
    size_t n = s->numel[pos];
    if (zero)
        memset(dst, 0, n * sizeof(float));
    else if (k == 1.0f)
        memcpy(dst, src, n * sizeof(float));
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] * k;
}

static void on_grad_ready(void *user, int param)
{
    dist_state *s = user;
    int pos = param >= 0 && param < nerve_node_count(s->g) ? s->pos_of[param] : -1;
    if (pos < 0 || s->packed[pos])
        return; /* not a parameter of the buckets, or reported twice: nothing to add */
    pack(s, pos, 0);
    s->packed[pos] = 1;
    s->pending[s->bucket[pos]]--;
    start_ready(s);
    if (s->d->progress) {
        int st = s->d->progress(s->d->user);
        if (st && !s->status)
            s->status = st;
    }
}

void dist_begin_step(dist_state *s, int n_local, int n)
{
    s->share = n > 0 ? (double)n_local / (double)n : 0.0;
    s->scale = (float)s->share;
    for (int b = 0; b < s->n_buckets; b++)
        s->pending[b] = s->first[b + 1] - s->first[b];
    memset(s->packed, 0, (size_t)s->n_params);
    s->next = 0;
}

int dist_end_step(dist_state *s)
{
    /* what the hook did not pack (no backward on a rank without samples) is zero */
    for (int i = 0; i < s->n_params; i++)
        if (!s->packed[i]) {
            pack(s, i, 1);
            s->packed[i] = 1;
            s->pending[s->bucket[i]]--;
        }
    start_ready(s);
    int st = s->status;
    s->status = 0;
    int st2 = s->d->wait_all(s->d->user);
    if (st)
        return st;
    if (st2)
        return st2;
    for (int i = 0; i < s->n_params; i++)
        memcpy(s->grad[i], s->buf + s->offset[i], s->numel[i] * sizeof(float));
    return NERVE_OK;
}

/* ---- reductions in double -------------------------------------------------------------- */

/* The metrics accumulator as numbers: its counts (exact in a double below 2^53) and sums. */
static size_t metrics_numbers(nerve_metrics *mt, double *buf, int put)
{
    size_t k = 0, cc = mt->confusion ? (size_t)mt->n_classes * (size_t)mt->n_classes : 0;
    size_t no = mt->tsum ? (size_t)mt->n_outputs : 0;
#define NUM(field, type)                    \
    do {                                    \
        if (put)                            \
            buf[k] = (double)(field);       \
        else                                \
            (field) = (type)buf[k];         \
        k++;                                \
    } while (0)
    NUM(mt->samples, int64_t);
    NUM(mt->loss_sum, double);
    NUM(mt->counted, int64_t);
    NUM(mt->correct, int64_t);
    NUM(mt->correct_k, int64_t);
    NUM(mt->values, int64_t);
    NUM(mt->sse, double);
    NUM(mt->sae, double);
    NUM(mt->noisy_sse, double);
    NUM(mt->nats, double);
    NUM(mt->tokens, int64_t);
    for (size_t i = 0; i < cc; i++)
        NUM(mt->confusion[i], int64_t);
    for (size_t i = 0; i < no; i++) {
        NUM(mt->tsum[i], double);
        NUM(mt->tsq[i], double);
        NUM(mt->osse[i], double);
    }
#undef NUM
    return k;
}

size_t dist_metrics_len(const nerve_metrics *mt)
{
    return 11 + (mt->confusion ? (size_t)mt->n_classes * (size_t)mt->n_classes : 0) +
           (mt->tsum ? 3 * (size_t)mt->n_outputs : 0);
}

int dist_reduce_metrics(dist_state *s, nerve_metrics *mt)
{
    size_t n = dist_metrics_len(mt);
    if (n > s->dbuf_len || n > (size_t)INT32_MAX)
        return nerve_set_error(NERVE_ERR_STATE, "data-parallel training: metrics of %zu numbers, buffer %zu", n,
                               s->dbuf_len);
    metrics_numbers(mt, s->dbuf, 1);
    int st = s->d->reduce(s->d->user, s->dbuf, (int)n, NERVE_DIST_SUM);
    if (st == NERVE_OK)
        metrics_numbers(mt, s->dbuf, 0);
    return st;
}

int dist_sync_state(dist_state *s)
{
    int size = s->d->size;
    size_t k = 0;
    for (int i = 0; i < s->n_state; i++) {
        nerve_tensor t = nerve_value(s->g, s->state[i]);
        size_t n = nerve_tensor_numel(&t);
        for (size_t j = 0; j < n; j++)
            s->dbuf[k++] = t.data[j];
    }
    nerve_rng *rng = nerve_graph_rng(s->g);
    for (int j = 0; j < 4; j++)
        s->dbuf[k++] = s->d->rank == 0 ? (double)rng->s[j] : 0.0;
    int st = s->d->reduce(s->d->user, s->dbuf, (int)k, NERVE_DIST_SUM);
    if (st)
        return st;
    k = 0;
    for (int i = 0; i < s->n_state; i++) {
        nerve_tensor t = nerve_value(s->g, s->state[i]);
        size_t n = nerve_tensor_numel(&t);
        /* n equal floats sum exactly in double, and the quotient rounds back to the float */
        for (size_t j = 0; j < n; j++)
            t.data[j] = (float)(s->dbuf[k++] / size);
    }
    /* rank 0 goes on with its generator (the one a checkpoint saves); rank r > 0 with one
     * seeded from it and r: ranks draw different dropout masks, reproducibly */
    if (s->d->rank > 0) {
        uint64_t h = 0x9E3779B97F4A7C15ull * (uint64_t)(s->d->rank + 1);
        for (int j = 0; j < 4; j++)
            h = (h ^ (uint64_t)s->dbuf[k + (size_t)j]) * 0x100000001B3ull;
        nerve_rng_seed(rng, h);
    }
    return NERVE_OK;
}

/* FNV-1a over the bytes of the trainable parameters. */
static uint64_t params_hash(const dist_state *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < s->n_params; i++) {
        nerve_tensor t = nerve_value(s->g, s->order[i]);
        const unsigned char *p = (const unsigned char *)t.data;
        size_t n = nerve_tensor_numel(&t) * sizeof(float);
        for (size_t j = 0; j < n; j++)
            h = (h ^ p[j]) * 0x100000001B3ull;
    }
    return h;
}

int dist_check_same(dist_state *s, const double *data, const char *const *names, int n, const char *what)
{
    int m = 3 + n;
    if ((size_t)(2 * m) > s->dbuf_len)
        return nerve_set_error(NERVE_ERR_ARG, "data-parallel training: %d numbers to compare", n);
    uint64_t h = params_hash(s);
    double v[3] = {(double)(h >> 44), (double)((h >> 22) & 0x3FFFFF), (double)(h & 0x3FFFFF)};
    for (int i = 0; i < m; i++) {
        double x = i < 3 ? v[i] : data[i - 3];
        s->dbuf[i] = x;
        s->dbuf[m + i] = -x;
    }
    int st = s->d->reduce(s->d->user, s->dbuf, 2 * m, NERVE_DIST_MAX);
    if (st)
        return st;
    for (int i = 0; i < m; i++)
        if (s->dbuf[i] != -s->dbuf[m + i]) {
            if (i < 3)
                return nerve_set_error(NERVE_ERR_STATE,
                                       "data-parallel training: the ranks' weights differ %s (the transport's "
                                       "sums are not the same on every rank, or the ranks started from "
                                       "different weights)", what);
            return nerve_set_error(NERVE_ERR_STATE,
                                   "data-parallel training: the ranks disagree %s on %s: from %.17g to %.17g "
                                   "(another cfg, data set or checkpoint on some host?)",
                                   what, names[i - 3], -s->dbuf[m + i], s->dbuf[i]);
        }
    return NERVE_OK;
}
