/* Normalisation and regularisation operators: dropout, batch normalisation, z-score.
 *
 *   dropout:   y = x * mask, mask = 0 (probability p) or 1/(1-p)     dx += dy * mask
 *   batchnorm: y = gamma * xhat + beta, xhat = (x - mu) / sqrt(var + eps), per channel
 *              dx += gamma * istd * (dy - mean(dy) - xhat * mean(dy * xhat))   (training)
 *   zscore:    y = (x - mean) / std (std == 0 counts as 1)            dx += dy / std
 *
 * Channels are axis 1; a tensor is seen as [outer, C, inner] around it. */
#include "ops.h"

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

/* ---- dropout: attr.f[0] = p, attr.i[0] = spatial -----------------------------------------
 * scratch: one flag (1 if the last forward applied a mask, 0 if it passed x through), then
 * the mask; backward follows what the forward did even if the mode changed in between. */

/* Spatial dropout draws one mask value per (sample, channel) map; plain dropout one per
 * element (a map of one). Ranks below 3 have no maps, so spatial is plain there. */
static channel_view dropout_units(const node *n)
{
    if (n->attr.i[0] && n->ndim >= 3) {
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
    float p = n->attr.f[0], *mask = n->scratch + 1;
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
    node_attr at = {0};
    at.f[0] = p;
    at.i[0] = spatial != 0;
    return graph_add_op(g, &op_dropout, 1, (int[]){x}, &at, "dropout");
}

/* ---- batchnorm: inputs x, gamma, beta, running_mean, running_var ----------------------
 * attr.f[0] = momentum, attr.f[1] = eps.
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

static size_t batchnorm_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return 2 * (size_t)n->dims[1] + 1;
}

/* Biased mean and variance of channel c (two passes: no cancellation). */
static void channel_moments(const float *x, channel_view v, size_t c, double *mean, double *var)
{
    double sum = 0.0, sq = 0.0;
    for (size_t o = 0; o < v.outer; o++) {
        const float *p = x + (o * v.len + c) * v.inner;
        for (size_t k = 0; k < v.inner; k++)
            sum += p[k];
    }
    double m = (double)(v.outer * v.inner);
    *mean = sum / m;
    for (size_t o = 0; o < v.outer; o++) {
        const float *p = x + (o * v.len + c) * v.inner;
        for (size_t k = 0; k < v.inner; k++)
            sq += (p[k] - *mean) * (p[k] - *mean);
    }
    *var = sq / m;
}

/* Batch statistics of every channel into mean/istd, and the running update
 * r = (1 - momentum) r + momentum * batch, with the unbiased variance for running_var. */
static void batchnorm_batch_stats(nerve_graph *g, node *n, channel_view v, float *mean, float *istd)
{
    float momentum = n->attr.f[0], eps = n->attr.f[1];
    float *rmean = node_input(g, n, BN_RMEAN)->value, *rvar = node_input(g, n, BN_RVAR)->value;
    size_t m = v.outer * v.inner;
    double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0;
    for (size_t c = 0; c < v.len; c++) {
        double mu, var;
        channel_moments(node_input(g, n, BN_X)->value, v, c, &mu, &var);
        mean[c] = (float)mu;
        istd[c] = (float)(1.0 / sqrt(var + eps));
        rmean[c] = (1.0f - momentum) * rmean[c] + momentum * (float)mu;
        rvar[c] = (1.0f - momentum) * rvar[c] + momentum * (float)(var * unbias);
    }
}

static void batchnorm_running_stats(nerve_graph *g, node *n, size_t C, float *mean, float *istd)
{
    const float *rmean = node_input(g, n, BN_RMEAN)->value, *rvar = node_input(g, n, BN_RVAR)->value;
    for (size_t c = 0; c < C; c++) {
        mean[c] = rmean[c];
        istd[c] = 1.0f / sqrtf(rvar[c] + n->attr.f[1]);
    }
}

static void batchnorm_forward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, BN_X)->value;
    const float *gamma = node_input(g, n, BN_GAMMA)->value, *beta = node_input(g, n, BN_BETA)->value;
    channel_view v = view_channels(n);
    float *mean = n->scratch, *istd = n->scratch + v.len;
    int training = nerve_graph_training(g);
    if (training)
        batchnorm_batch_stats(g, n, v, mean, istd);
    else
        batchnorm_running_stats(g, n, v.len, mean, istd);
    n->scratch[2 * v.len] = (float)training;
    for (size_t o = 0; o < v.outer; o++)
        for (size_t c = 0; c < v.len; c++) {
            size_t base = (o * v.len + c) * v.inner;
            float scale = gamma[c] * istd[c], shift = beta[c] - mean[c] * scale;
            for (size_t k = 0; k < v.inner; k++)
                n->value[base + k] = x[base + k] * scale + shift;
        }
}

/* In training, mu and var depend on every x of the channel, which adds the two mean terms
 * of the closed form; with running statistics they are constants and only the scale is left. */
static void batchnorm_backward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, BN_X)->value, *gamma = node_input(g, n, BN_GAMMA)->value;
    float *dx = node_input_grad(g, n, BN_X), *dgamma = node_input_grad(g, n, BN_GAMMA);
    float *dbeta = node_input_grad(g, n, BN_BETA);
    channel_view v = view_channels(n);
    const float *mean = n->scratch, *istd = n->scratch + v.len;
    int through_stats = n->scratch[2 * v.len] != 0.0f;
    double m = (double)(v.outer * v.inner);
    for (size_t c = 0; c < v.len; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (size_t o = 0; o < v.outer; o++) {
            size_t base = (o * v.len + c) * v.inner;
            for (size_t k = 0; k < v.inner; k++) {
                float xhat = (x[base + k] - mean[c]) * istd[c];
                sum_dy += n->grad[base + k];
                sum_dy_xhat += (double)n->grad[base + k] * xhat;
            }
        }
        if (dgamma)
            dgamma[c] += (float)sum_dy_xhat;
        if (dbeta)
            dbeta[c] += (float)sum_dy;
        if (!dx)
            continue;
        float scale = gamma[c] * istd[c];
        float mean_dy = through_stats ? (float)(sum_dy / m) : 0.0f;
        float mean_dy_xhat = through_stats ? (float)(sum_dy_xhat / m) : 0.0f;
        for (size_t o = 0; o < v.outer; o++) {
            size_t base = (o * v.len + c) * v.inner;
            for (size_t k = 0; k < v.inner; k++) {
                float xhat = (x[base + k] - mean[c]) * istd[c];
                dx[base + k] += scale * (n->grad[base + k] - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
}

static const op_def op_batchnorm = {"batchnorm", batchnorm_infer, batchnorm_scratch,
                                    batchnorm_forward, batchnorm_backward, 0};

int nerve_batchnorm(nerve_graph *g, int x, int gamma, int beta, int running_mean,
                    int running_var, float momentum, float eps)
{
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "batchnorm: momentum %g outside [0, 1]", (double)momentum);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return nerve_set_error(NERVE_ERR_ARG, "batchnorm: eps %g must be finite and >= 0", (double)eps);
    node_attr at = {0};
    at.f[0] = momentum;
    at.f[1] = eps;
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

static void zscore_forward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *mean = node_input(g, n, 1), *std = node_input(g, n, 2);
    size_t S = sample_numel(n), N = (size_t)n->dims[0];
    float *mu = n->scratch, *inv = n->scratch + S;
    for (size_t i = 0; i < S; i++) {
        float sd = std->value[broadcast_index(x, std, i)];
        mu[i] = mean->value[broadcast_index(x, mean, i)];
        inv[i] = 1.0f / (sd == 0.0f ? 1.0f : sd); /* a constant feature: centre it only */
    }
    for (size_t r = 0; r < N; r++)
        for (size_t i = 0; i < S; i++)
            n->value[r * S + i] = (x->value[r * S + i] - mu[i]) * inv[i];
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
