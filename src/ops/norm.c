/* Normalisation and regularisation operators: dropout, batch normalisation, z-score.
 *
 *   dropout:   y = x * mask, mask = 0 (probability p) or 1/(1-p)     dx += dy * mask
 *   batchnorm: y = gamma * xhat + beta, xhat = (x - mu) / sqrt(var + eps), per channel
 *              dx += gamma * istd * (dy - mean(dy) - xhat * mean(dy * xhat))   (training)
 *   zscore:    y = (x - mean) / std (std == 0 counts as 1)            dx += dy / std
 *
 * Channels are axis 1; a tensor is seen as [outer, C, inner] around it. */
#include "ops.h"
#include "loops.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <string.h>

/* [outer, len, inner] around axis 1: element (o, c, k) lies at (o * len + c) * inner + k. */
typedef struct {
    size_t outer, len, inner;
} channel_view;

static channel_view view_channels(const node *n)
{
    channel_view v = {(size_t)n->dims[0], (size_t)n->dims[1], 1};
    for (int d = 2; d < n->ndim; d++)
        v.inner *= (size_t)n->dims[d];
    return v;
}

static int same_shape_infer(nerve_graph *g, node *n)
{
    node_copy_shape(n, node_input(g, n, 0));
    return NERVE_OK;
}

/* ---- dropout: attr.dropout ----------------------------------------------------------
 * scratch: one flag (1 if the last forward applied a mask, 0 if it passed x through), then
 * the mask; backward follows what the forward did even if the mode changed in between. */

/* Spatial dropout draws one mask value per (sample, channel) map; plain dropout one per
 * element (a map of one). Ranks below 3 have no maps, so spatial is plain there. */
static channel_view dropout_units(const node *n)
{
    if (n->attr.dropout.spatial && n->ndim >= 3) {
        channel_view v = view_channels(n);
        return (channel_view){v.outer * v.len, 1, v.inner};
    }
    return (channel_view){node_numel(n), 1, 1};
}

static size_t dropout_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return 1 + dropout_units(n).outer; /* the flag and one mask value per unit */
}

/* dst[u, k] (+)= src[u, k] * mask[u] over units x inner. */
static void apply_mask(const float *src, const float *mask, float *dst, channel_view units,
                       int accumulate)
{
    for (size_t u = 0; u < units.outer; u++) {
        const float *s = src + u * units.inner;
        float *d = dst + u * units.inner;
        for (size_t k = 0; k < units.inner; k++)
            d[k] = (accumulate ? d[k] : 0.0f) + s[k] * mask[u];
    }
}

static void dropout_forward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, 0)->value;
    float p = n->attr.dropout.p, *mask = n->scratch + 1;
    int active = nerve_graph_training(g) && p > 0.0f;
    n->scratch[0] = (float)active;
    if (!active) {
        memcpy(n->value, x, node_numel(n) * sizeof(float));
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
    channel_view units = dropout_units(n);
    nerve_rng *rng = nerve_graph_rng(g);
    for (size_t u = 0; u < units.outer; u++)
        mask[u] = nerve_rng_uniform(rng) < p ? 0.0f : keep_scale;
    apply_mask(x, mask, n->value, units, 0);
}

static void dropout_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    if (n->scratch[0] == 0.0f) {
        size_t count = node_numel(n);
        for (size_t i = 0; i < count; i++)
            dx[i] += n->grad[i];
        return;
    }
    apply_mask(n->grad, n->scratch + 1, dx, dropout_units(n), 1);
}

static const op_def op_dropout = {"dropout", same_shape_infer, dropout_scratch, dropout_forward,
                                  dropout_backward, 0};

int nerve_dropout(nerve_graph *g, int x, float p, int spatial)
{
    if (!(p >= 0.0f && p < 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "dropout: probability %g outside [0, 1)", (double)p);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.dropout.p = p;
    at.dropout.spatial = spatial != 0;
    return graph_add_op(g, &op_dropout, 1, (int[]){x}, &at, "dropout");
}

/* ---- batchnorm: inputs x, gamma, beta, running_mean, running_var ----------------------
 * attr.batchnorm: momentum, eps.
 * scratch: mean[C], istd[C] of the last forward, then one flag: 1 if it used the batch's
 * statistics (training), 0 if the running ones (eval); backward follows the same path. */

enum { BN_X, BN_GAMMA, BN_BETA, BN_RMEAN, BN_RVAR };

static int batchnorm_infer(nerve_graph *g, node *n)
{
    static const char *const what[] = {"", "gamma", "beta", "running_mean", "running_var"};
    node *x = node_input(g, n, BN_X);
    if (x->ndim < 2)
        return op_shape_error(n, "input needs a batch and a channel axis, got rank %d", x->ndim);
    for (int k = BN_GAMMA; k <= BN_RVAR; k++) {
        node *s = node_input(g, n, k);
        if (s->ndim != 1 || s->dims[0] != x->dims[1])
            return op_shape_error(n, "%s must be [%d] (the input's channels)", what[k], x->dims[1]);
    }
    node_copy_shape(n, x);
    return NERVE_OK;
}

static size_t bn_scratch_head(size_t C);

/* scratch: mean and istd per channel (saved by the forward for the backward), the flag
 * "statistics from the batch", the backward's two mean terms per channel, then two partial
 * sums (doubles) per channel for each thread of the current setting. */
static size_t batchnorm_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    size_t C = (size_t)n->dims[1];
    return bn_scratch_head(C) + 4 * C * (size_t)kern_threads();
}

/* ---- batchnorm loops ---------------------------------------------------------------------
 * Threads split the channels: every sum of a channel is computed by one thread, in one
 * order, so results do not depend on the thread count. Sums run in eight double lanes
 * (independent chains that vectorise), combined in a fixed order at the end. */

enum { LANES = 8 };

static double lane_total(const double *lane)
{
    double t = 0.0;
    for (int l = 0; l < LANES; l++)
        t += lane[l];
    return t;
}

/* s1 += x - shift, s2 += (x - shift)^2 over n floats, lane by lane. next_x (n floats, the
 * channel's next segment) is prefetched along: segments are short runs at a large stride,
 * which the hardware prefetchers pick up late at every segment. */
OPS_INLINE void shifted_sums(const float *restrict x, size_t n, double shift,
                             double *restrict s1, double *restrict s2, const float *next_x)
{
    size_t k = 0;
    for (; k + LANES <= n; k += LANES) {
        __builtin_prefetch(next_x + k);
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[k + l] - shift;
            s1[l] += d;
            s2[l] += d * d;
        }
    }
    for (int l = 0; k < n; k++, l++) {
        double d = (double)x[k] - shift;
        s1[l] += d;
        s2[l] += d * d;
    }
}

/* The gradient reaching the norm's output: dy, or with a fused ReLU dy * relu'(z) for the
 * output z = x * scale + shift, recomputed exactly as the forward computed it (the same
 * float expression; ISO C mode contracts nothing into FMAs) and multiplied as the
 * activation's backward does (so an infinite dy at a clipped output still gives NaN). */
/* z > 0 for any float z (NaN: no), by its bits: integer compares, which vectorise where
 * a float compare feeding a select does not. */
OPS_INLINE int relu_passes(float z)
{
    return (uint32_t)ops_float_bits(z) - 1u < 0x7f800000u; /* bits in 1 .. +inf */
}

OPS_INLINE float output_grad(float dy, float x, float scale, float shift, int relu)
{
    if (!relu)
        return dy;
    /* dy * (1 or 0), the factor built from bits: no branch, so the 8-lane loops below
     * vectorise as blocks */
    uint32_t one = (0u - (uint32_t)relu_passes(x * scale + shift)) & 0x3f800000u;
    float factor;
    memcpy(&factor, &one, sizeof factor);
    return dy * factor;
}

/* sum_dy += dy', sum_dy_xhat += dy' * xhat over n elements, xhat = (x - mean) * istd, dy'
 * = output_grad. next_x and next_dy (the channel's next segment) are prefetched along. */
OPS_INLINE void gradient_sums(const float *restrict x, const float *restrict dy, size_t n,
                              float mean, float istd, float scale, float shift, int relu,
                              double *restrict sum_dy, double *restrict sum_dy_xhat,
                              const float *next_x, const float *next_dy)
{
    size_t k = 0;
    for (; k + LANES <= n; k += LANES) {
        __builtin_prefetch(next_x + k);
        __builtin_prefetch(next_dy + k);
        float d[LANES]; /* first the gradients, then the sums: each loop vectorises */
        for (int l = 0; l < LANES; l++)
            d[l] = output_grad(dy[k + l], x[k + l], scale, shift, relu);
        for (int l = 0; l < LANES; l++) {
            float xhat = (x[k + l] - mean) * istd;
            sum_dy[l] += d[l];
            sum_dy_xhat[l] += (double)d[l] * xhat;
        }
    }
    for (int l = 0; k < n; k++, l++) {
        float xhat = (x[k] - mean) * istd;
        float d = output_grad(dy[k], x[k], scale, shift, relu);
        sum_dy[l] += d;
        sum_dy_xhat[l] += (double)d * xhat;
    }
}

/* y = x * scale + shift over n elements, or its ReLU. */
OPS_INLINE void scale_shift(const float *restrict x, float *restrict y, size_t n, float scale,
                            float shift, int relu)
{
    if (relu) {
        for (size_t k = 0; k < n; k++) {
            float z = x[k] * scale + shift;
            y[k] = relu_passes(z) ? z : 0.0f; /* z > 0 ? z : 0, as the activation does */
        }
        return;
    }
    for (size_t k = 0; k < n; k++)
        y[k] = x[k] * scale + shift;
}

/* dx += scale * (dy' - mean_dy - xhat * mean_dy_xhat) over n elements (dy' = output_grad
 * with the output's scale and shift); dx = ... when overwrite (a fresh gradient buffer:
 * saves zeroing it and reading it back). */
OPS_INLINE void input_gradient(const float *restrict x, const float *restrict dy,
                               float *restrict dx, size_t n, float mean, float istd,
                               float scale, float out_scale, float out_shift, int relu,
                               float mean_dy, float mean_dy_xhat, int overwrite)
{
    if (overwrite) {
        for (size_t k = 0; k < n; k++) {
            float xhat = (x[k] - mean) * istd;
            float d = output_grad(dy[k], x[k], out_scale, out_shift, relu);
            dx[k] = scale * (d - mean_dy - xhat * mean_dy_xhat);
        }
        return;
    }
    for (size_t k = 0; k < n; k++) {
        float xhat = (x[k] - mean) * istd;
        float d = output_grad(dy[k], x[k], out_scale, out_shift, relu);
        dx[k] += scale * (d - mean_dy - xhat * mean_dy_xhat);
    }
}

/* Everything a batchnorm pass over a range of channels reads or writes. */
typedef struct bn_job {
    channel_view v;
    const float *x, *gamma, *beta, *dy;
    float *y, *dx, *dgamma, *dbeta;
    float *rmean, *rvar; /* forward in training: the running statistics to update */
    float *mean, *istd;  /* the statistics the forward used (scratch) */
    float *mean_dy, *mean_dy_xhat; /* backward: the input gradient's mean terms (scratch) */
    double *partials;    /* per thread, per channel: two partial sums (scratch) */
    float momentum, eps;
    int through_stats;   /* training: the statistics depend on x */
    int overwrite_dx;    /* dx is fresh: write it instead of adding */
    int relu;            /* a fused ReLU on the output (n->fused_relu) */
    int first_stage;     /* the stages a run takes, from first_stage on: 0 the per-thread
                            sums, 1 the channels' terms, 2 the element-wise part (synchronised
                            statistics run 0, add the sums over the ranks, then run 2) */
    const float *shift;  /* the channels' shifts of the sums (synchronised: the running
                            mean, the same on every rank), or NULL: each channel's first
                            element */
} bn_job;

/* The element (o, c, 0) of the [outer, C, inner] view. */
static size_t segment(const channel_view *v, size_t o, size_t c)
{
    return (o * v->len + c) * v->inner;
}

/* The segment after (o, c) of channel c, or (o, c) itself at the last: a prefetch target. */
static size_t next_segment(const channel_view *v, size_t o, size_t c)
{
    return segment(v, o + 1 < v->outer ? o + 1 : o, c);
}

/* ---- batchnorm passes ------------------------------------------------------------------
 * Every pass splits the samples across threads, as the convolutions around the norm do,
 * so that each thread reads and writes the part of each tensor it has in its own cache
 * (splitting by channel made every tensor cross between the cores twice a step). A
 * channel's sums are then taken per thread over its samples, and in the next phase each
 * channel's partial sums are added in thread order by one thread: the same bits run to
 * run at a given thread count, and on one thread the same sums as a single loop. */

/* Thread t's partial sums: two doubles per channel. */
static double *bn_partials(const bn_job *j, int t)
{
    return j->partials + (size_t)t * 2 * j->v.len;
}

/* The channel's first element: the sums are taken around it, which is close to the mean
 * on the scale of the spread, so that the one-pass variance S2/m - (S1/m)^2 does not
 * cancel away its digits. */
static double channel_shift(const bn_job *j, size_t c)
{
    return j->shift ? j->shift[c] : j->x[segment(&j->v, 0, c)];
}

/* out = the sums of x - shift and (x - shift)^2 over channel c of samples [o0, o1). */
OPS_INLINE void moment_sums(const bn_job *j, size_t c, size_t o0, size_t o1, double *out)
{
    double s1[LANES] = {0}, s2[LANES] = {0}, shift = channel_shift(j, c);
    for (size_t o = o0; o < o1; o++)
        shifted_sums(j->x + segment(&j->v, o, c), j->v.inner, shift, s1, s2,
                     j->x + next_segment(&j->v, o, c));
    out[0] = lane_total(s1);
    out[1] = lane_total(s2);
}

/* Batch statistics of channel c from the T threads' partial sums into mean/istd, and the
 * running update r = (1 - momentum) r + momentum * batch, with the unbiased variance for
 * running_var. */
static void channel_batch_stats(const bn_job *j, size_t c, int T)
{
    double S1 = 0.0, S2 = 0.0;
    for (int t = 0; t < T; t++) {
        S1 += bn_partials(j, t)[2 * c];
        S2 += bn_partials(j, t)[2 * c + 1];
    }
    size_t m = j->v.outer * j->v.inner;
    double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0, d = S1 / (double)m;
    double mu = channel_shift(j, c) + d, var = fmax(S2 / (double)m - d * d, 0.0);
    j->mean[c] = (float)mu;
    j->istd[c] = (float)(1.0 / sqrt(var + j->eps));
    j->rmean[c] = (1.0f - j->momentum) * j->rmean[c] + j->momentum * (float)mu;
    j->rvar[c] = (1.0f - j->momentum) * j->rvar[c] + j->momentum * (float)(var * unbias);
}

/* Part t of T, by stage: 0, its samples' sums; 1, the statistics of its share of the
 * channels; 2, y = x * scale + shift, and the fused ReLU, over its samples. */
KERN_ISA_CLONES(batchnorm_forward_task, (void *ctx, int phase, int t, int T), (ctx, phase, t, T))
{
    const bn_job *j = ctx;
    size_t o0, o1, c0, c1;
    kern_split(j->v.outer, t, T, &o0, &o1);
    int stage = j->first_stage + phase;
    if (stage == 0) {
        for (size_t c = 0; c < j->v.len; c++)
            moment_sums(j, c, o0, o1, bn_partials(j, t) + 2 * c);
        return;
    }
    if (stage == 1) {
        kern_split(j->v.len, t, T, &c0, &c1);
        for (size_t c = c0; c < c1; c++)
            channel_batch_stats(j, c, T);
        return;
    }
    for (size_t o = o0; o < o1; o++)
        for (size_t c = 0; c < j->v.len; c++) {
            float scale = j->gamma[c] * j->istd[c], shift = j->beta[c] - j->mean[c] * scale;
            size_t at = segment(&j->v, o, c);
            scale_shift(j->x + at, j->y + at, j->v.inner, scale, shift, j->relu);
        }
}

static void batchnorm_running_stats(nerve_graph *g, node *n, size_t C, float *mean, float *istd)
{
    const float *rmean = node_input(g, n, BN_RMEAN)->value, *rvar = node_input(g, n, BN_RVAR)->value;
    for (size_t c = 0; c < C; c++) {
        mean[c] = rmean[c];
        istd[c] = 1.0f / sqrtf(rvar[c] + n->attr.batchnorm.eps);
    }
}

/* Floats of scratch before the partial sums: mean, istd, the flag, the two mean terms,
 * the global sample count of synchronised statistics (a float), rounded up to whole
 * doubles, then one double (the count in the sums sent to the other ranks). */
static size_t bn_scratch_head(size_t C) { return ((4 * C + 2 + 1) & ~(size_t)1) + 2; }

static bn_job batchnorm_job(nerve_graph *g, node *n)
{
    bn_job j = {0};
    j.v = view_channels(n);
    j.x = node_input(g, n, BN_X)->value;
    j.gamma = node_input(g, n, BN_GAMMA)->value;
    j.beta = node_input(g, n, BN_BETA)->value;
    j.rmean = node_input(g, n, BN_RMEAN)->value;
    j.rvar = node_input(g, n, BN_RVAR)->value;
    j.y = n->value;
    j.dy = n->grad;
    j.mean = n->scratch;
    j.istd = n->scratch + j.v.len;
    j.mean_dy = n->scratch + 2 * j.v.len + 1;
    j.mean_dy_xhat = j.mean_dy + j.v.len;
    j.partials = (double *)(void *)(n->scratch + bn_scratch_head(j.v.len));
    j.momentum = n->attr.batchnorm.momentum;
    j.eps = n->attr.batchnorm.eps;
    j.relu = n->fused_relu;
    return j;
}

/* Threads for a pass: as many as the scratch has partial sums for (the setting may have
 * grown since compile), the samples allow and the size is worth. */
static int bn_threads(const node *n, const bn_job *j)
{
    size_t per_thread = 4 * j->v.len; /* floats of partial sums */
    size_t room = (n->scratch_n - bn_scratch_head(j->v.len)) / per_thread;
    size_t T = (size_t)kern_threads();
    if (T > room)
        T = room;
    if (T > j->v.outer)
        T = j->v.outer;
    if (j->v.outer * j->v.len * j->v.inner < OPS_GRAIN)
        T = 1;
    return T < 1 ? 1 : (int)T;
}

/* Thread 0's partial sums become the totals over the T threads (in thread order). */
static void combine_partials(const bn_job *j, int T)
{
    double *p0 = bn_partials(j, 0);
    for (size_t c = 0; c < j->v.len; c++) {
        double a = 0.0, b = 0.0;
        for (int t = 0; t < T; t++) {
            a += bn_partials(j, t)[2 * c];
            b += bn_partials(j, t)[2 * c + 1];
        }
        p0[2 * c] = a;
        p0[2 * c + 1] = b;
    }
}

/* Synchronised statistics (data-parallel training): the sums around the running mean (the
 * same shift on every rank) and the sample count, added over the ranks, give the global
 * batch's mean and variance; then the element-wise pass. */
static void batchnorm_forward_synced(nerve_graph *g, node *n, bn_job *j)
{
    size_t C = j->v.len;
    int T = bn_threads(n, j);
    double *buf = j->partials - 1; /* [count, (S1, S2) per channel] */
    j->shift = j->rmean;
    j->first_stage = 0;
    kern_run_phases(T, 1, batchnorm_forward_task, j);
    combine_partials(j, T);
    buf[0] = (double)(j->v.outer * j->v.inner);
    graph_stat_reduce(g, buf, (int)(2 * C + 1), 0);
    double m = buf[0] > 0 ? buf[0] : 1.0, unbias = m > 1 ? m / (m - 1) : 1.0;
    for (size_t c = 0; c < C; c++) {
        double d = buf[1 + 2 * c] / m, mu = j->rmean[c] + d;
        double var = fmax(buf[2 + 2 * c] / m - d * d, 0.0);
        j->mean[c] = (float)mu;
        j->istd[c] = (float)(1.0 / sqrt(var + j->eps));
        j->rmean[c] = (1.0f - j->momentum) * j->rmean[c] + j->momentum * (float)mu;
        j->rvar[c] = (1.0f - j->momentum) * j->rvar[c] + j->momentum * (float)(var * unbias);
    }
    n->scratch[4 * C + 1] = (float)m;
    j->first_stage = 2;
    kern_run_phases(T, 1, batchnorm_forward_task, j);
}

static void batchnorm_forward(nerve_graph *g, node *n)
{
    bn_job j = batchnorm_job(g, n);
    j.through_stats = nerve_graph_training(g);
    if (!j.through_stats)
        batchnorm_running_stats(g, n, j.v.len, j.mean, j.istd);
    n->scratch[2 * j.v.len] = (float)j.through_stats;
    n->scratch[4 * j.v.len + 1] = 0.0f; /* not synchronised */
    if (j.through_stats && g->stat_reduce) {
        batchnorm_forward_synced(g, n, &j);
        return;
    }
    j.first_stage = j.through_stats ? 0 : 2;
    kern_run_phases(bn_threads(n, &j), 3 - j.first_stage, batchnorm_forward_task, &j);
}

/* out = the sums of dy' and dy' * xhat over channel c of samples [o0, o1), dy' the
 * gradient reaching the norm's output (output_grad). */
OPS_INLINE void gradient_sums_part(const bn_job *j, size_t c, size_t o0, size_t o1, double *out)
{
    double lane_dy[LANES] = {0}, lane_dy_xhat[LANES] = {0};
    /* the output's scale and shift, as the forward computed them */
    float scale = j->gamma[c] * j->istd[c], shift = j->beta[c] - j->mean[c] * scale;
    for (size_t o = o0; o < o1; o++) {
        size_t at = segment(&j->v, o, c), next = next_segment(&j->v, o, c);
        if (j->relu) /* a constant in each call: two specialised loops */
            gradient_sums(j->x + at, j->dy + at, j->v.inner, j->mean[c], j->istd[c], scale,
                          shift, 1, lane_dy, lane_dy_xhat, j->x + next, j->dy + next);
        else
            gradient_sums(j->x + at, j->dy + at, j->v.inner, j->mean[c], j->istd[c], scale,
                          shift, 0, lane_dy, lane_dy_xhat, j->x + next, j->dy + next);
    }
    out[0] = lane_total(lane_dy);
    out[1] = lane_total(lane_dy_xhat);
}

/* dgamma, dbeta and the input gradient's two mean terms of channel c from the T threads'
 * partial sums. In training, mu and var depend on every x of the channel, which adds the
 * two mean terms of the closed form; with running statistics they are constants and only
 * the scale is left. */
static void channel_gradient_terms(const bn_job *j, size_t c, int T)
{
    double sum_dy = 0.0, sum_dy_xhat = 0.0, m = (double)(j->v.outer * j->v.inner);
    for (int t = 0; t < T; t++) {
        sum_dy += bn_partials(j, t)[2 * c];
        sum_dy_xhat += bn_partials(j, t)[2 * c + 1];
    }
    if (j->dgamma)
        j->dgamma[c] += (float)sum_dy_xhat;
    if (j->dbeta)
        j->dbeta[c] += (float)sum_dy;
    j->mean_dy[c] = j->through_stats ? (float)(sum_dy / m) : 0.0f;
    j->mean_dy_xhat[c] = j->through_stats ? (float)(sum_dy_xhat / m) : 0.0f;
}

/* Part t of T, by stage: 0, its samples' sums; 1, its share of the channels' terms; 2, the
 * input gradient of its samples. Without sums to take (running statistics, frozen scale and
 * shift) the run starts at stage 2 and the mean terms are zero. */
KERN_ISA_CLONES(batchnorm_backward_task, (void *ctx, int phase, int t, int T), (ctx, phase, t, T))
{
    const bn_job *j = ctx;
    size_t o0, o1, c0, c1;
    kern_split(j->v.outer, t, T, &o0, &o1);
    int stage = j->first_stage + phase;
    if (stage == 0) {
        for (size_t c = 0; c < j->v.len; c++)
            gradient_sums_part(j, c, o0, o1, bn_partials(j, t) + 2 * c);
        return;
    }
    if (stage == 1) {
        kern_split(j->v.len, t, T, &c0, &c1);
        for (size_t c = c0; c < c1; c++)
            channel_gradient_terms(j, c, T);
        return;
    }
    for (size_t o = o0; j->dx && o < o1; o++)
        for (size_t c = 0; c < j->v.len; c++) {
            float scale = j->gamma[c] * j->istd[c];
            float out_shift = j->beta[c] - j->mean[c] * scale; /* the output's, as above */
            size_t at = segment(&j->v, o, c);
            if (j->relu)
                input_gradient(j->x + at, j->dy + at, j->dx + at, j->v.inner, j->mean[c],
                               j->istd[c], scale, scale, out_shift, 1, j->mean_dy[c],
                               j->mean_dy_xhat[c], j->overwrite_dx);
            else
                input_gradient(j->x + at, j->dy + at, j->dx + at, j->v.inner, j->mean[c],
                               j->istd[c], scale, scale, out_shift, 0, j->mean_dy[c],
                               j->mean_dy_xhat[c], j->overwrite_dx);
        }
}

static void batchnorm_backward(nerve_graph *g, node *n)
{
    bn_job j = batchnorm_job(g, n);
    j.dx = node_input_grad(g, n, BN_X);
    j.dgamma = node_input_grad(g, n, BN_GAMMA);
    j.dbeta = node_input_grad(g, n, BN_BETA);
    j.overwrite_dx = j.dx && node_input_grad_fresh(g, n, BN_X);
    j.through_stats = n->scratch[2 * j.v.len] != 0.0f;
    if (!j.dx && !j.dgamma && !j.dbeta)
        return;
    if (!j.dgamma && !j.dbeta && !j.through_stats)
        memset(j.mean_dy, 0, 2 * j.v.len * sizeof(float));
    float m_global = n->scratch[4 * j.v.len + 1];
    if (j.through_stats && m_global > 0 && g->stat_reduce) {
        /* synchronised: this rank's sums give dgamma and dbeta (the transport adds the
         * ranks' parameter gradients later); the mean terms come from the sums over the
         * ranks, each rank's weighted by its share of the batch (graph_stat_reduce) */
        size_t C = j.v.len;
        int T = bn_threads(n, &j);
        j.first_stage = 0;
        kern_run_phases(T, 1, batchnorm_backward_task, &j);
        combine_partials(&j, T);
        double *p0 = bn_partials(&j, 0);
        for (size_t c = 0; c < C; c++) {
            if (j.dgamma)
                j.dgamma[c] += (float)p0[2 * c + 1];
            if (j.dbeta)
                j.dbeta[c] += (float)p0[2 * c];
        }
        graph_stat_reduce(g, p0, (int)(2 * C), 1);
        for (size_t c = 0; c < C; c++) {
            j.mean_dy[c] = (float)(p0[2 * c] / m_global);
            j.mean_dy_xhat[c] = (float)(p0[2 * c + 1] / m_global);
        }
        j.first_stage = 2;
        kern_run_phases(T, 1, batchnorm_backward_task, &j);
        return;
    }
    j.first_stage = j.dgamma || j.dbeta || j.through_stats ? 0 : 2;
    kern_run_phases(bn_threads(n, &j), 3 - j.first_stage, batchnorm_backward_task, &j);
}

static const op_def op_batchnorm = {"batchnorm", batchnorm_infer, batchnorm_scratch,
                                    batchnorm_forward, batchnorm_backward,
                                    OP_OUTPUT_UNREAD | OP_GRAD_OVERWRITE | OP_FUSE_RELU};

int nerve_batchnorm(nerve_graph *g, int x, int gamma, int beta, int running_mean,
                    int running_var, float momentum, float eps)
{
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "batchnorm: momentum %g outside [0, 1]", (double)momentum);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return nerve_set_error(NERVE_ERR_ARG, "batchnorm: eps %g must be finite and >= 0", (double)eps);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.batchnorm.momentum = momentum;
    at.batchnorm.eps = eps;
    int in[5] = {x, gamma, beta, running_mean, running_var};
    return graph_add_op(g, &op_batchnorm, 5, in, &at, "batchnorm");
}

/* ---- zscore: inputs x, mean, std (broadcast against one sample, numpy rules) ----------
 * scratch: mean and 1/std expanded to one sample's shape, refreshed each forward (the
 * stored statistics may change between runs, e.g. when a model loads them). */

static int zscore_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    if (x->ndim < 1)
        return op_shape_error(n, "input needs a batch dimension");
    for (int k = 1; k <= 2; k++) {
        node *s = node_input(g, n, k);
        if (s->ndim > x->ndim)
            return op_shape_error(n, "%s has rank %d, more than the input's %d",
                                  k == 1 ? "mean" : "std", s->ndim, x->ndim);
        for (int d = 0; d < s->ndim; d++) {
            int xd = x->ndim - s->ndim + d; /* aligned from the right */
            int fits = s->dims[d] == 1 || (xd > 0 && s->dims[d] == x->dims[xd]);
            if (!fits)
                return op_shape_error(n, "%s's dimension %d (%d) does not broadcast to the sample's %d",
                                      k == 1 ? "mean" : "std", d, s->dims[d],
                                      xd > 0 ? x->dims[xd] : 1);
        }
    }
    node_copy_shape(n, x);
    return NERVE_OK;
}

static size_t sample_numel(const node *n) { return node_numel(n) / (size_t)n->dims[0]; }

static size_t zscore_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return 2 * sample_numel(n);
}

/* Index into the broadcast statistic s of the sample element at flat offset i. */
static size_t broadcast_index(const node *x, const node *s, size_t i)
{
    size_t idx = 0, stride = 1;
    for (int d = x->ndim - 1, sd = s->ndim - 1; d >= 1; d--, sd--) {
        size_t coord = i % (size_t)x->dims[d];
        i /= (size_t)x->dims[d];
        if (sd >= 0) {
            if (s->dims[sd] != 1)
                idx += coord * stride;
            stride *= (size_t)s->dims[sd];
        }
    }
    return idx;
}

/* value = (x - mu) * inv over whole samples [r0, r1), as a thread-pool task. */
typedef struct zscore_job {
    const float *x, *mu, *inv; /* [S] each, or NULL for the one value m, v */
    float *y;
    size_t S;
    float m, v;
} zscore_job;

static void zscore_rows(void *ctx, size_t r0, size_t r1)
{
    const zscore_job *j = ctx;
    if (!j->mu) { /* the same arithmetic with the one mean and 1/std */
        const float m = j->m, v = j->v;
        for (size_t i = r0 * j->S; i < r1 * j->S; i++)
            j->y[i] = (j->x[i] - m) * v;
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->S;
        float *y = j->y + r * j->S;
        for (size_t i = 0; i < j->S; i++)
            y[i] = (x[i] - j->mu[i]) * j->inv[i];
    }
}

/* The statistic s at sample element i: one value (dataset-wide statistics, the common
 * case) or broadcast from its shape. */
static float statistic(const node *x, const node *s, size_t i)
{
    return node_numel(s) == 1 ? s->value[0] : s->value[broadcast_index(x, s, i)];
}

static void zscore_forward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *mean = node_input(g, n, 1), *std = node_input(g, n, 2);
    size_t S = sample_numel(n), N = (size_t)n->dims[0];
    float *mu = n->scratch, *inv = n->scratch + S;
    size_t nm = node_numel(mean), ns = node_numel(std);
    if (nm == 1 && ns == 1) { /* dataset-wide statistics: no per-element copies */
        float sd = std->value[0];
        zscore_job j = {x->value, NULL, NULL, n->value, S, mean->value[0],
                        1.0f / (sd == 0.0f ? 1.0f : sd)};
        kern_parallel_for(N, ops_grain(S), zscore_rows, &j);
        return;
    }
    if ((nm == 1 || nm == S) && (ns == 1 || ns == S)) {
        /* one value, or one per sample element (every dimension the sample's: zscore_infer
         * lets a dimension be 1 or the sample's, so S values index as the sample does) */
        const float *restrict sv = std->value, *mv = mean->value;
        float *restrict iv = inv;
        if (ns == S) /* in vectors: the scratch holds no statistic */
            for (size_t i = 0; i < S; i++) {
                float sd = sv[i]; /* sd + 1 where sd is 0, else sd + 0 = sd: no branch */
                iv[i] = 1.0f / (sd + (float)(sd == 0.0f));
            }
        else
            for (size_t i = 0; i < S; i++)
                inv[i] = 1.0f / (sv[0] == 0.0f ? 1.0f : sv[0]);
        for (size_t i = 0; i < S; i++)
            mu[i] = mv[nm == S ? i : 0];
    } else {
        for (size_t i = 0; i < S; i++) {
            float sd = statistic(x, std, i);
            mu[i] = statistic(x, mean, i);
            inv[i] = 1.0f / (sd == 0.0f ? 1.0f : sd); /* a constant feature: centre it only */
        }
    }
    zscore_job j = {x->value, mu, inv, n->value, S, 0.0f, 0.0f};
    kern_parallel_for(N, ops_grain(S), zscore_rows, &j);
}

static void zscore_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    size_t S = sample_numel(n), N = (size_t)n->dims[0];
    const float *inv = n->scratch + S;
    for (size_t r = 0; r < N; r++)
        for (size_t i = 0; i < S; i++)
            dx[r * S + i] += n->grad[r * S + i] * inv[i];
}

static const op_def op_zscore = {"zscore", zscore_infer, zscore_scratch, zscore_forward,
                                 zscore_backward, 0};

/* The statistics are data, not trainable: this operator gives them no gradient. */
int nerve_zscore(nerve_graph *g, int x, int mean, int std)
{
    if (nerve_node_kind(g, mean) == NERVE_NODE_PARAM || nerve_node_kind(g, std) == NERVE_NODE_PARAM)
        return nerve_set_error(NERVE_ERR_ARG, "zscore: mean and std must be states, not parameters");
    return graph_add_op(g, &op_zscore, 3, (int[]){x, mean, std}, NULL, "zscore");
}

const op_def *const ops_norm[] = {&op_dropout, &op_batchnorm, &op_zscore, NULL};
