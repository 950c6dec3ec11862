/* Mathematical operators on tensors of any rank: unary functions, clip, where, general
 * reductions, batched matrix products, gather, gather_elements, pad and cumsum.
 *
 *   unary:    y = f(x) (attr.unary.function)               dx += f'(x) dy
 *   clip:     y = min(max(x, lo), hi) (attr.clip)          dx += dy where lo <= x <= hi
 *   where:    y = c ? a : b, broadcast (numpy rules)       da += dy where c, db += dy elsewhere
 *   reduce:   y = R over the axes in the mask attr.reduce.axes (attr.reduce: kind, keepdim,
 *             select_last for argmax/argmin)
 *   matmul_nd: y[..., M, N] = a[..., M, K] b[..., K, N], batch dimensions broadcast
 *   gather:   y[o, j, i] = x[o, idx[j], i] on attr.axis     dx[o, idx[j], i] += dy[o, j, i]
 *   gather_elements: y[p] = x[p with axis coordinate idx[p]]
 *   pad:      pads attr.pad.begin[0..r) at the beginning, end[0..r) at the end (negative
 *             crops); mode (constant, reflect, edge), value: the constant
 *   cumsum:   running sum on axis attr.cumsum.axis; exclusive, reverse
 *
 * Index values (gather, gather_elements) are floats holding integers, as labels are; a
 * negative index counts from the end. An index outside the axis cannot be refused while
 * running (operators raise errors at build time only), so its output elements are NaN,
 * which nerve_graph_check_finite() and every comparison then show, rather than a plausible
 * wrong value. */
#include "ops.h"
#include "loops.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <string.h>

/* ---- shared: strides and index walks -------------------------------------------------- */

/* Row-major strides of a shape. */
static void strides_of(int ndim, const int *dims, size_t *st)
{
    size_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= (size_t)dims[i];
    }
}

/* Strides of x aligned on the trailing dimensions of a rank-ndim output, 0 where x is
 * broadcast (missing or size-1 dimension). */
static void bcast_strides(const node *x, int ndim, size_t *st)
{
    size_t own[NERVE_MAX_DIMS];
    strides_of(x->ndim, x->dims, own);
    for (int i = 0; i < ndim; i++) {
        int k = i - (ndim - x->ndim);
        st[i] = k >= 0 && x->dims[k] != 1 ? own[k] : 0;
    }
}

/* Broadcast output shape of up to three operands (numpy rules); error names them. */
static int bcast_shape(node *n, node *const *xs, int count)
{
    int ndim = 0;
    for (int k = 0; k < count; k++)
        if (xs[k]->ndim > ndim)
            ndim = xs[k]->ndim;
    for (int i = 0; i < ndim; i++) {
        int d = 1;
        for (int k = 0; k < count; k++) {
            int j = i - (ndim - xs[k]->ndim);
            int dk = j >= 0 ? xs[k]->dims[j] : 1;
            if (dk != 1 && d != 1 && dk != d)
                return op_shape_error(n, "operand %d does not broadcast: dimension %d is %d, "
                                      "not %d", k, i, dk, d);
            if (dk != 1)
                d = dk;
        }
        n->dims[i] = d;
    }
    n->ndim = ndim;
    return NERVE_OK;
}

/* Odometer over a shape: advances idx and the offsets of up to 3 operands. */
typedef struct walk {
    int ndim;
    int dims[NERVE_MAX_DIMS], idx[NERVE_MAX_DIMS];
    size_t st[3][NERVE_MAX_DIMS];
    size_t off[3];
} walk;

static void walk_next(walk *w, int ops)
{
    for (int k = w->ndim - 1; k >= 0; k--) {
        for (int o = 0; o < ops; o++)
            w->off[o] += w->st[o][k];
        if (++w->idx[k] < w->dims[k])
            return;
        for (int o = 0; o < ops; o++)
            w->off[o] -= w->st[o][k] * (size_t)w->dims[k];
        w->idx[k] = 0;
    }
}

static void walk_init(walk *w, const node *out)
{
    memset(w, 0, sizeof *w);
    w->ndim = out->ndim;
    memcpy(w->dims, out->dims, (size_t)out->ndim * sizeof(int));
}

static int identity_shape(nerve_graph *g, node *n)
{
    node_copy_shape(n, node_input(g, n, 0));
    return NERVE_OK;
}

/* ---- unary functions --------------------------------------------------------------------- */

enum {
    UN_EXP, UN_LOG, UN_SQRT, UN_NEG, UN_ABS, UN_RECIPROCAL, UN_SIN, UN_COS, UN_TAN, UN_ASIN,
    UN_ACOS, UN_ATAN, UN_SINH, UN_COSH, UN_ASINH, UN_ACOSH, UN_ATANH, UN_ERF, UN_FLOOR,
    UN_CEIL, UN_ROUND, UN_TRUNC, UN_SIGN, UN_NOT, UN_ISNAN, UN_ISINF, UN_COUNT
};

static const char *const unary_names[UN_COUNT] = {
    "exp", "log", "sqrt", "neg", "abs", "reciprocal", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erf", "floor", "ceil", "round",
    "trunc", "sign", "not", "isnan", "isinf"};

static float unary_value(int t, float x)
{
    switch (t) {
    case UN_EXP: return expf(x);
    case UN_LOG: return logf(x);
    case UN_SQRT: return sqrtf(x);
    case UN_NEG: return -x;
    case UN_ABS: return fabsf(x);
    case UN_RECIPROCAL: return 1.0f / x;
    case UN_SIN: return sinf(x);
    case UN_COS: return cosf(x);
    case UN_TAN: return tanf(x);
    case UN_ASIN: return asinf(x);
    case UN_ACOS: return acosf(x);
    case UN_ATAN: return atanf(x);
    case UN_SINH: return sinhf(x);
    case UN_COSH: return coshf(x);
    case UN_ASINH: return asinhf(x);
    case UN_ACOSH: return acoshf(x);
    case UN_ATANH: return atanhf(x);
    case UN_ERF: return erff(x);
    case UN_FLOOR: return floorf(x);
    case UN_CEIL: return ceilf(x);
    case UN_ROUND: return nearbyintf(x); /* halves to even, as ONNX and numpy round */
    case UN_TRUNC: return truncf(x);
    case UN_SIGN: return (float)((x > 0.0f) - (x < 0.0f));
    case UN_NOT: return x == 0.0f;
    case UN_ISNAN: return x != x;
    default: return isinf(x) ? 1.0f : 0.0f;
    }
}

/* f'(x), given y = f(x). */
static float unary_derivative(int t, float x, float y)
{
    switch (t) {
    case UN_EXP: return y;
    case UN_LOG: return 1.0f / x;
    case UN_SQRT: return 0.5f / y;
    case UN_NEG: return -1.0f;
    case UN_ABS: return (float)((x > 0.0f) - (x < 0.0f));
    case UN_RECIPROCAL: return -y * y;
    case UN_SIN: return cosf(x);
    case UN_COS: return -sinf(x);
    case UN_TAN: return 1.0f + y * y;
    case UN_ASIN: return 1.0f / sqrtf(1.0f - x * x);
    case UN_ACOS: return -1.0f / sqrtf(1.0f - x * x);
    case UN_ATAN: return 1.0f / (1.0f + x * x);
    case UN_SINH: return coshf(x);
    case UN_COSH: return sinhf(x);
    case UN_ASINH: return 1.0f / sqrtf(x * x + 1.0f);
    case UN_ACOSH: return 1.0f / sqrtf(x * x - 1.0f);
    case UN_ATANH: return 1.0f / (1.0f - x * x);
    case UN_ERF: return 1.1283791670955126f * expf(-x * x);
    default: return 0.0f; /* piecewise constant */
    }
}

static int unary_differentiable(int t) { return t <= UN_ERF; }

typedef struct unary_job {
    int t;
    const float *x, *y, *dy;
    float *out;
} unary_job;

static void unary_forward_range(void *ctx, size_t begin, size_t end)
{
    const unary_job *j = ctx;
    for (size_t i = begin; i < end; i++)
        j->out[i] = unary_value(j->t, j->x[i]);
}

static void unary_backward_range(void *ctx, size_t begin, size_t end)
{
    const unary_job *j = ctx;
    for (size_t i = begin; i < end; i++)
        j->out[i] += j->dy[i] * unary_derivative(j->t, j->x[i], j->y[i]);
}

static void unary_forward(nerve_graph *g, node *n)
{
    unary_job j = {n->attr.unary.function, node_input(g, n, 0)->value, NULL, NULL, n->value};
    kern_parallel_for(node_numel(n), OPS_GRAIN, unary_forward_range, &j);
}

static void unary_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx || !unary_differentiable(n->attr.unary.function))
        return;
    unary_job j = {n->attr.unary.function, node_input(g, n, 0)->value, n->value, n->grad, dx};
    kern_parallel_for(node_numel(n), OPS_GRAIN, unary_backward_range, &j);
}

static const op_def op_unary = {"unary", identity_shape, NULL, unary_forward, unary_backward, 0};

int nerve_unary(nerve_graph *g, int x, const char *fn)
{
    for (int t = 0; fn && t < UN_COUNT; t++)
        if (strcmp(unary_names[t], fn) == 0) {
            node_attr at;
            memset(&at, 0, sizeof at);
            at.unary.function = t;
            return graph_add_op(g, &op_unary, 1, &x, &at, fn);
        }
    return nerve_set_error(NERVE_ERR_ARG, "unary: '%s' is no function (exp, log, sqrt, neg, abs, "
                           "reciprocal, sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, "
                           "acosh, atanh, erf, floor, ceil, round, trunc, sign, not, isnan, "
                           "isinf)", fn ? fn : "(null)");
}

const char *nerve_unary_name(int i) { return i >= 0 && i < UN_COUNT ? unary_names[i] : NULL; }

/* ---- clip ----------------------------------------------------------------------------------- */

static void clip_forward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, 0)->value;
    float lo = n->attr.clip.lo, hi = n->attr.clip.hi;
    size_t total = node_numel(n);
    for (size_t i = 0; i < total; i++) {
        float v = x[i] < lo ? lo : x[i];
        n->value[i] = v > hi ? hi : v;
    }
}

static void clip_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    const float *x = node_input(g, n, 0)->value;
    float lo = n->attr.clip.lo, hi = n->attr.clip.hi;
    size_t total = node_numel(n);
    for (size_t i = 0; i < total; i++)
        if (x[i] >= lo && x[i] <= hi)
            dx[i] += n->grad[i];
}

static const op_def op_clip = {"clip", identity_shape, NULL, clip_forward, clip_backward, 0};

int nerve_clip(nerve_graph *g, int x, float lo, float hi)
{
    if (!(lo <= hi))
        return nerve_set_error(NERVE_ERR_ARG, "clip: min %g is above max %g (or NaN)", lo, hi);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.clip.lo = lo;
    at.clip.hi = hi;
    return graph_add_op(g, &op_clip, 1, &x, &at, "clip");
}

/* ---- where ---------------------------------------------------------------------------------- */

static int where_infer(nerve_graph *g, node *n)
{
    node *xs[3] = {node_input(g, n, 0), node_input(g, n, 1), node_input(g, n, 2)};
    return bcast_shape(n, xs, 3);
}

static void where_walk_init(nerve_graph *g, node *n, walk *w)
{
    walk_init(w, n);
    for (int k = 0; k < 3; k++)
        bcast_strides(node_input(g, n, k), n->ndim, w->st[k]);
}

static void where_forward(nerve_graph *g, node *n)
{
    const float *c = node_input(g, n, 0)->value, *a = node_input(g, n, 1)->value,
                *b = node_input(g, n, 2)->value;
    walk w;
    where_walk_init(g, n, &w);
    size_t total = node_numel(n);
    for (size_t i = 0; i < total; i++, walk_next(&w, 3))
        n->value[i] = c[w.off[0]] != 0.0f ? a[w.off[1]] : b[w.off[2]];
}

static void where_backward(nerve_graph *g, node *n)
{
    const float *c = node_input(g, n, 0)->value;
    float *da = node_input_grad(g, n, 1), *db = node_input_grad(g, n, 2);
    walk w;
    where_walk_init(g, n, &w);
    size_t total = node_numel(n);
    for (size_t i = 0; i < total; i++, walk_next(&w, 3)) {
        if (c[w.off[0]] != 0.0f) {
            if (da)
                da[w.off[1]] += n->grad[i];
        } else if (db) {
            db[w.off[2]] += n->grad[i];
        }
    }
}

static const op_def op_where = {"where", where_infer, NULL, where_forward, where_backward, 0};

int nerve_where(nerve_graph *g, int cond, int a, int b)
{
    return graph_add_op(g, &op_where, 3, (int[]){cond, a, b}, NULL, "where");
}

/* ---- reductions --------------------------------------------------------------------------- */

enum {
    RED_SUM, RED_MEAN, RED_MAX, RED_MIN, RED_PROD, RED_L1, RED_L2, RED_SUM_SQUARE, RED_LOG_SUM,
    RED_LOG_SUM_EXP, RED_ARGMAX, RED_ARGMIN, RED_COUNT
};

static const char *const reduce_names[RED_COUNT] = {
    "sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum", "log_sum_exp",
    "argmax", "argmin"};

static int reduce_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    unsigned mask = n->attr.reduce.axes;
    if (mask >> x->ndim)
        return op_shape_error(n, "reduces axis %d of a rank-%d input", 31 - __builtin_clz(mask),
                              x->ndim);
    int kind = n->attr.reduce.kind, keep = n->attr.reduce.keepdim, out = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!(mask >> i & 1))
            n->dims[out++] = x->dims[i];
        else if (keep)
            n->dims[out++] = 1;
    }
    n->ndim = out;
    if ((kind == RED_ARGMAX || kind == RED_ARGMIN) && __builtin_popcount(mask) != 1)
        return op_shape_error(n, "%s takes exactly one axis", reduce_names[kind]);
    return NERVE_OK;
}

/* Walk over x with offset 0 = x's element, 1 = the output element it reduces into; the
 * reduced axis coordinate (argmax) is w.idx[axis]. */
static void reduce_walk_init(const node *x, const node *n, walk *w)
{
    walk_init(w, x);
    strides_of(x->ndim, x->dims, w->st[0]);
    unsigned mask = n->attr.reduce.axes;
    size_t s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        if (mask >> i & 1) {
            w->st[1][i] = 0;
        } else {
            w->st[1][i] = s;
            s *= (size_t)x->dims[i];
        }
    }
}

static size_t reduce_len(const node *x, const node *n)
{
    return node_numel(n) ? node_numel(x) / node_numel(n) : 0;
}

static size_t reduce_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return node_numel(n); /* best values (argmax) or sums (log_sum_exp) */
}

static int reduce_axis(const node *n)
{
    return __builtin_ctz(n->attr.reduce.axes);
}

static void reduce_forward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    int kind = n->attr.reduce.kind, last = n->attr.reduce.select_last;
    size_t total = node_numel(x), nout = node_numel(n);
    float *y = n->value, *acc = n->scratch;
    const float *xv = x->value;
    float init = 0.0f;
    if (kind == RED_MAX || kind == RED_LOG_SUM_EXP || kind == RED_ARGMAX)
        init = -INFINITY;
    else if (kind == RED_MIN || kind == RED_ARGMIN)
        init = INFINITY;
    else if (kind == RED_PROD)
        init = 1.0f;
    for (size_t o = 0; o < nout; o++) {
        y[o] = kind == RED_ARGMAX || kind == RED_ARGMIN ? 0.0f : init;
        acc[o] = kind == RED_ARGMAX || kind == RED_ARGMIN ? init : 0.0f;
    }
    walk w;
    reduce_walk_init(x, n, &w);
    int axis = kind == RED_ARGMAX || kind == RED_ARGMIN ? reduce_axis(n) : 0;
    for (size_t i = 0; i < total; i++, walk_next(&w, 2)) {
        float v = xv[w.off[0]];
        float *t = &y[w.off[1]];
        switch (kind) {
        case RED_SUM: case RED_MEAN: case RED_LOG_SUM: *t += v; break;
        case RED_MAX: case RED_LOG_SUM_EXP: if (v > *t || v != v) *t = v; break;
        case RED_MIN: if (v < *t || v != v) *t = v; break;
        case RED_PROD: *t *= v; break;
        case RED_L1: *t += fabsf(v); break;
        case RED_L2: case RED_SUM_SQUARE: *t += v * v; break;
        case RED_ARGMAX: case RED_ARGMIN: {
            float *best = &acc[w.off[1]];
            int better = kind == RED_ARGMAX ? (v > *best || (last && v == *best))
                                            : (v < *best || (last && v == *best));
            if (better || w.idx[axis] == 0) {
                *best = v;
                *t = (float)w.idx[axis];
            }
            break;
        }
        }
    }
    size_t len = reduce_len(x, n);
    if (kind == RED_LOG_SUM_EXP) {
        reduce_walk_init(x, n, &w);
        for (size_t i = 0; i < total; i++, walk_next(&w, 2)) {
            float m = y[w.off[1]];
            acc[w.off[1]] += isinf(m) ? (xv[w.off[0]] == m ? 1.0f : 0.0f) : expf(xv[w.off[0]] - m);
        }
        for (size_t o = 0; o < nout; o++)
            y[o] = isinf(y[o]) && y[o] > 0 ? y[o] : y[o] + logf(acc[o]);
    }
    for (size_t o = 0; o < nout; o++) {
        if (kind == RED_MEAN)
            y[o] /= (float)len;
        else if (kind == RED_L2)
            y[o] = sqrtf(y[o]);
        else if (kind == RED_LOG_SUM)
            y[o] = logf(y[o]);
    }
}

static void reduce_backward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    float *dx = node_input_grad(g, n, 0);
    int kind = n->attr.reduce.kind;
    if (!dx || kind == RED_ARGMAX || kind == RED_ARGMIN)
        return;
    size_t total = node_numel(x), len = reduce_len(x, n);
    const float *xv = x->value, *y = n->value, *dy = n->grad;
    walk w;
    reduce_walk_init(x, n, &w);
    for (size_t i = 0; i < total; i++, walk_next(&w, 2)) {
        float v = xv[w.off[0]], yo = y[w.off[1]], d = dy[w.off[1]], r;
        switch (kind) {
        case RED_SUM: r = d; break;
        case RED_MEAN: r = d / (float)len; break;
        case RED_MAX: case RED_MIN: r = v == yo ? d : 0.0f; break; /* every tie gets it */
        case RED_PROD: r = v != 0.0f ? d * yo / v : 0.0f; break;  /* see docs/onnx.md */
        case RED_L1: r = d * (float)((v > 0.0f) - (v < 0.0f)); break;
        case RED_L2: r = yo > 0.0f ? d * v / yo : 0.0f; break;
        case RED_SUM_SQUARE: r = 2.0f * v * d; break;
        case RED_LOG_SUM: r = d / expf(yo); break;
        default: r = d * expf(v - yo); break; /* log_sum_exp: softmax weights */
        }
        dx[w.off[0]] += r;
    }
}

static const op_def op_reduce = {"reduce", reduce_infer, reduce_scratch, reduce_forward,
                                 reduce_backward, 0};

int nerve_reduce(nerve_graph *g, int x, const char *kind, unsigned axes, int keepdim,
                 int select_last)
{
    for (int k = 0; kind && k < RED_COUNT; k++)
        if (strcmp(reduce_names[k], kind) == 0) {
            if (axes == 0 || axes >> NERVE_MAX_DIMS)
                return nerve_set_error(NERVE_ERR_ARG, "reduce: axis mask 0x%x names no axis or "
                                       "one past %d", axes, NERVE_MAX_DIMS - 1);
            node_attr at;
            memset(&at, 0, sizeof at);
            at.reduce.kind = k;
            at.reduce.axes = axes;
            at.reduce.keepdim = keepdim != 0;
            at.reduce.select_last = select_last != 0;
            return graph_add_op(g, &op_reduce, 1, &x, &at, kind);
        }
    return nerve_set_error(NERVE_ERR_ARG, "reduce: '%s' is no reduction (sum, mean, max, min, "
                           "prod, l1, l2, sum_square, log_sum, log_sum_exp, argmax, argmin)",
                           kind ? kind : "(null)");
}

/* ---- matmul_nd -------------------------------------------------------------------------------- */

static int matmul_nd_infer(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    if (a->ndim < 2 || b->ndim < 2)
        return op_shape_error(n, "needs operands of rank 2 or more, got %d and %d", a->ndim,
                              b->ndim);
    int K = a->dims[a->ndim - 1];
    if (b->dims[b->ndim - 2] != K)
        return op_shape_error(n, "inner dimensions differ: %d vs %d", K, b->dims[b->ndim - 2]);
    int nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
    for (int i = 0; i < nb; i++) {
        int ka = i - (nb - (a->ndim - 2)), kb = i - (nb - (b->ndim - 2));
        int da = ka >= 0 ? a->dims[ka] : 1, db = kb >= 0 ? b->dims[kb] : 1;
        if (da != db && da != 1 && db != 1)
            return op_shape_error(n, "batch dimension %d does not broadcast: %d vs %d", i, da, db);
        n->dims[i] = da == 1 ? db : da;
    }
    n->dims[nb] = a->dims[a->ndim - 2];
    n->dims[nb + 1] = b->dims[b->ndim - 1];
    n->ndim = nb + 2;
    return NERVE_OK;
}

/* Offsets (in matrices) of operand x for the batch index of output matrix m. */
static size_t batch_offset(const node *x, const node *n, size_t m)
{
    int nb = n->ndim - 2, xb = x->ndim - 2;
    size_t off = 0, stride = 1;
    for (int i = nb - 1; i >= 0; i--) {
        size_t coord = m % (size_t)n->dims[i];
        m /= (size_t)n->dims[i];
        int k = i - (nb - xb);
        if (k < 0)
            continue;
        if (x->dims[k] != 1)
            off += coord * stride;
        stride *= (size_t)x->dims[k];
    }
    return off;
}

static void matmul_nd_forward(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    int M = n->dims[n->ndim - 2], N = n->dims[n->ndim - 1], K = a->dims[a->ndim - 1];
    size_t mats = node_numel(n) / ((size_t)M * N);
    for (size_t m = 0; m < mats; m++)
        kern_sgemm(0, 0, M, N, K, 1.0f, a->value + batch_offset(a, n, m) * M * K, K,
                   b->value + batch_offset(b, n, m) * K * N, N, 0.0f, n->value + m * M * N, N);
}

static void matmul_nd_backward(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    float *da = node_input_grad(g, n, 0), *db = node_input_grad(g, n, 1);
    int M = n->dims[n->ndim - 2], N = n->dims[n->ndim - 1], K = a->dims[a->ndim - 1];
    size_t mats = node_numel(n) / ((size_t)M * N);
    for (size_t m = 0; m < mats; m++) {
        const float *dy = n->grad + m * M * N;
        size_t oa = batch_offset(a, n, m) * M * K, ob = batch_offset(b, n, m) * K * N;
        if (da) /* da[M,K] += dy[M,N] b^T */
            kern_sgemm(0, 1, M, K, N, 1.0f, dy, N, b->value + ob, N, 1.0f, da + oa, K);
        if (db) /* db[K,N] += a^T dy */
            kern_sgemm(1, 0, K, N, M, 1.0f, a->value + oa, K, dy, N, 1.0f, db + ob, N);
    }
}

static const op_def op_matmul_nd = {"matmul_nd", matmul_nd_infer, NULL, matmul_nd_forward,
                                    matmul_nd_backward, OP_OUTPUT_UNREAD};

int nerve_matmul_nd(nerve_graph *g, int a, int b)
{
    return graph_add_op(g, &op_matmul_nd, 2, (int[]){a, b}, NULL, "matmul_nd");
}

/* ---- gather and gather_elements -------------------------------------------------------------- */

/* A float index for an axis of length len: -1 when it is not an integer in [-len, len). */
static long index_of(float v, int len)
{
    if (!(v == floorf(v)) || v < -(float)len || v >= (float)len)
        return -1;
    long k = (long)v;
    return k < 0 ? k + len : k;
}

static int gather_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *idx = node_input(g, n, 1);
    int axis = normalize_axis(n->attr.axis.axis, x->ndim);
    if (axis < 0)
        return op_shape_error(n, "axis %d is out of range for rank %d", n->attr.axis.axis, x->ndim);
    if (n->attr.axis.elements) { /* elements: the indices' shape, same rank as x */
        if (idx->ndim != x->ndim)
            return op_shape_error(n, "indices have rank %d, the data %d", idx->ndim, x->ndim);
        node_copy_shape(n, idx);
        return NERVE_OK;
    }
    int ndim = x->ndim - 1 + idx->ndim;
    if (ndim > NERVE_MAX_DIMS)
        return op_shape_error(n, "the result would have rank %d (at most %d)", ndim, NERVE_MAX_DIMS);
    int k = 0;
    for (int i = 0; i < axis; i++)
        n->dims[k++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++)
        n->dims[k++] = idx->dims[i];
    for (int i = axis + 1; i < x->ndim; i++)
        n->dims[k++] = x->dims[i];
    n->ndim = ndim;
    return NERVE_OK;
}

/* Calls fn(ctx, out_offset, x_offset or -1) for every output element. */
typedef void (*gather_fn)(node *n, float *xv_or_dx, size_t o, long src);

static void gather_visit(nerve_graph *g, node *n, float *buf, gather_fn fn)
{
    node *x = node_input(g, n, 0), *idx = node_input(g, n, 1);
    int axis = normalize_axis(n->attr.axis.axis, x->ndim);
    int len = x->dims[axis];
    if (n->attr.axis.elements) {
        size_t xs[NERVE_MAX_DIMS];
        strides_of(x->ndim, x->dims, xs);
        walk w;
        walk_init(&w, n);
        /* offset 0: x's element at the same coordinates, axis excluded */
        for (int i = 0; i < x->ndim; i++)
            w.st[0][i] = i == axis ? 0 : xs[i];
        size_t total = node_numel(n);
        for (size_t o = 0; o < total; o++, walk_next(&w, 1)) {
            long k = index_of(idx->value[o], len);
            int fits = k >= 0;
            for (int i = 0; i < x->ndim && fits; i++)
                fits = i == axis || w.idx[i] < x->dims[i];
            fn(n, buf, o, fits ? (long)(w.off[0] + (size_t)k * xs[axis]) : -1);
        }
        return;
    }
    size_t outer = nerve_shape_numel(axis, x->dims);
    size_t inner = nerve_shape_numel(x->ndim - axis - 1, x->dims + axis + 1);
    size_t count = node_numel(idx);
    size_t o = 0;
    for (size_t p = 0; p < outer; p++)
        for (size_t j = 0; j < count; j++) {
            long k = index_of(idx->value[j], len);
            for (size_t i = 0; i < inner; i++, o++)
                fn(n, buf, o, k < 0 ? -1 : (long)((p * (size_t)len + (size_t)k) * inner + i));
        }
}

static void gather_value(node *n, float *xv, size_t o, long src)
{
    n->value[o] = src < 0 ? NAN : xv[src];
}

static void gather_grad(node *n, float *dx, size_t o, long src)
{
    if (src >= 0)
        dx[src] += n->grad[o];
}

static void gather_forward(nerve_graph *g, node *n)
{
    gather_visit(g, n, node_input(g, n, 0)->value, gather_value);
}

static void gather_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        gather_visit(g, n, dx, gather_grad);
}

static const op_def op_gather = {"gather", gather_infer, NULL, gather_forward, gather_backward, 0};
static const op_def op_gather_elements = {"gather_elements", gather_infer, NULL, gather_forward,
                                          gather_backward, 0};

int nerve_gather(nerve_graph *g, int x, int indices, int axis)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.axis.axis = axis;
    return graph_add_op(g, &op_gather, 2, (int[]){x, indices}, &at, "gather");
}

int nerve_gather_elements(nerve_graph *g, int x, int indices, int axis)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.axis.axis = axis;
    at.axis.elements = 1;
    return graph_add_op(g, &op_gather_elements, 2, (int[]){x, indices}, &at, "gather_elements");
}

/* ---- pad ------------------------------------------------------------------------------------ */

static int pad_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    for (int i = 0; i < x->ndim; i++) {
        int64_t d = (int64_t)x->dims[i] + n->attr.pad.begin[i] + n->attr.pad.end[i];
        if (d < 1)
            return op_shape_error(n, "axis %d: %d padded by %d and %d leaves nothing", i,
                                  x->dims[i], n->attr.pad.begin[i], n->attr.pad.end[i]);
        int st = node_check_size(n, "a padded dimension", d);
        if (st)
            return st;
        if (n->attr.pad.mode == NERVE_PAD_REFLECT &&
            (n->attr.pad.begin[i] >= x->dims[i] || n->attr.pad.end[i] >= x->dims[i]))
            return op_shape_error(n, "axis %d: reflect padding of %d and %d needs more than %d "
                                  "elements", i, n->attr.pad.begin[i], n->attr.pad.end[i], x->dims[i]);
        n->dims[i] = (int)d;
    }
    n->ndim = x->ndim;
    return NERVE_OK;
}

/* Source offset of output element (coordinates in w.idx), or -1 for the constant. */
static long pad_source(const node *x, const node *n, const int *idx, const size_t *xs)
{
    long off = 0;
    for (int i = 0; i < x->ndim; i++) {
        long c = (long)idx[i] - n->attr.pad.begin[i], d = x->dims[i];
        if (c < 0 || c >= d) {
            switch (n->attr.pad.mode) {
            case NERVE_PAD_CONSTANT: return -1;
            case NERVE_PAD_EDGE: c = c < 0 ? 0 : d - 1; break;
            default: /* reflect, without repeating the edge */
                if (d == 1)
                    c = 0;
                else
                    while (c < 0 || c >= d)
                        c = c < 0 ? -c : 2 * (d - 1) - c;
            }
        }
        off += c * (long)xs[i];
    }
    return off;
}

static void pad_forward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    size_t xs[NERVE_MAX_DIMS], total = node_numel(n);
    strides_of(x->ndim, x->dims, xs);
    walk w;
    walk_init(&w, n);
    for (size_t o = 0; o < total; o++, walk_next(&w, 0)) {
        long s = pad_source(x, n, w.idx, xs);
        n->value[o] = s < 0 ? n->attr.pad.value : x->value[s];
    }
}

static void pad_backward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    size_t xs[NERVE_MAX_DIMS], total = node_numel(n);
    strides_of(x->ndim, x->dims, xs);
    walk w;
    walk_init(&w, n);
    for (size_t o = 0; o < total; o++, walk_next(&w, 0)) {
        long s = pad_source(x, n, w.idx, xs);
        if (s >= 0)
            dx[s] += n->grad[o];
    }
}

static const op_def op_pad = {"pad", pad_infer, NULL, pad_forward, pad_backward, 0};

int nerve_pad(nerve_graph *g, int x, const int *begin, const int *end, int ndim,
              nerve_pad_mode mode, float value)
{
    if (ndim < 1 || ndim > NERVE_MAX_DIMS || !begin || !end)
        return nerve_set_error(NERVE_ERR_ARG, "pad: %d axes (1 to %d) or no pads", ndim,
                               NERVE_MAX_DIMS);
    if (mode != NERVE_PAD_CONSTANT && mode != NERVE_PAD_REFLECT && mode != NERVE_PAD_EDGE)
        return nerve_set_error(NERVE_ERR_ARG, "pad: unknown mode %d", (int)mode);
    int xd[NERVE_MAX_DIMS], xn = 0;
    int st = nerve_node_shape(g, x, &xn, xd);
    if (st < 0)
        return st;
    if (xn != ndim)
        return nerve_set_error(NERVE_ERR_ARG, "pad: %d pads for a rank-%d input", ndim, xn);
    node_attr at;
    memset(&at, 0, sizeof at);
    for (int i = 0; i < ndim; i++) {
        at.pad.begin[i] = begin[i];
        at.pad.end[i] = end[i];
    }
    at.pad.mode = (int)mode;
    at.pad.value = value;
    return graph_add_op(g, &op_pad, 1, &x, &at, "pad");
}

/* ---- cumsum --------------------------------------------------------------------------------- */

/* y[o, l, i] = sum over l' before l (or at it: not exclusive; after it: reverse) of x[o, l', i]:
 * the backward is the same sum in the opposite direction. */
static void cumsum_run(const node *n, const node *x, const float *src, float *dst, int reverse,
                       int accumulate)
{
    int axis = normalize_axis(n->attr.cumsum.axis, x->ndim), excl = n->attr.cumsum.exclusive;
    size_t outer = nerve_shape_numel(axis, x->dims), len = (size_t)x->dims[axis];
    size_t inner = nerve_shape_numel(x->ndim - axis - 1, x->dims + axis + 1);
    for (size_t p = 0; p < outer; p++)
        for (size_t i = 0; i < inner; i++) {
            double s = 0.0;
            for (size_t k = 0; k < len; k++) {
                size_t l = reverse ? len - 1 - k : k;
                size_t off = (p * len + l) * inner + i;
                if (!excl)
                    s += src[off];
                if (accumulate)
                    dst[off] += (float)s;
                else
                    dst[off] = (float)s;
                if (excl)
                    s += src[off];
            }
        }
}

static int cumsum_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    if (normalize_axis(n->attr.cumsum.axis, x->ndim) < 0)
        return op_shape_error(n, "axis %d is out of range for rank %d", n->attr.cumsum.axis, x->ndim);
    node_copy_shape(n, x);
    return NERVE_OK;
}

static void cumsum_forward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    cumsum_run(n, x, x->value, n->value, n->attr.cumsum.reverse, 0);
}

static void cumsum_backward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    float *dx = node_input_grad(g, n, 0);
    if (dx)
        cumsum_run(n, x, n->grad, dx, !n->attr.cumsum.reverse, 1);
}

static const op_def op_cumsum = {"cumsum", cumsum_infer, NULL, cumsum_forward, cumsum_backward, 0};

int nerve_cumsum(nerve_graph *g, int x, int axis, int exclusive, int reverse)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.cumsum.axis = axis;
    at.cumsum.exclusive = exclusive != 0;
    at.cumsum.reverse = reverse != 0;
    return graph_add_op(g, &op_cumsum, 1, &x, &at, "cumsum");
}

const op_def *const ops_math[] = {&op_unary, &op_clip, &op_where, &op_reduce, &op_matmul_nd,
                                  &op_gather, &op_gather_elements, &op_pad, &op_cumsum, NULL};
