/* Reductions: sum and mean over one axis or over everything.
 *
 *   x is viewed as [outer, len, inner] around the reduced axis (len = every element and
 *   outer = inner = 1 for NERVE_AXIS_ALL):
 *     y[o, i] = scale * sum_l x[o, l, i]        scale = 1 (sum) or 1/len (mean)
 *     dx[o, l, i] += scale * dy[o, i]
 *   attr.axis_reduce: the axis as given (negative or NERVE_AXIS_ALL; normalised at each
 *   infer, since the reduced length may be the batch), keepdim. */
#include "ops.h"

#include <string.h>

static const op_def op_sum, op_mean;

typedef struct reduce_view {
    size_t outer, len, inner;
} reduce_view;

static reduce_view view_of(const node *x, int axis)
{
    reduce_view v = {1, node_numel(x), 1};
    if (axis == NERVE_AXIS_ALL)
        return v;
    axis = normalize_axis(axis, x->ndim);
    v.outer = nerve_shape_numel(axis, x->dims);
    v.len = (size_t)x->dims[axis];
    v.inner = nerve_shape_numel(x->ndim - axis - 1, x->dims + axis + 1);
    return v;
}

static float reduce_scale(const node *n, const reduce_view *v)
{
    return n->op == &op_mean ? 1.0f / (float)v->len : 1.0f;
}

static int reduce_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    int axis = n->attr.axis_reduce.axis, keepdim = n->attr.axis_reduce.keepdim;
    if (axis == NERVE_AXIS_ALL) {
        /* keepdim keeps the rank with every dimension 1, as numpy does */
        n->ndim = keepdim ? x->ndim : 0;
        for (int i = 0; i < n->ndim; i++)
            n->dims[i] = 1;
        return NERVE_OK;
    }
    int ax = normalize_axis(axis, x->ndim);
    if (ax < 0)
        return op_shape_error(n, "axis %d is out of range for rank %d", axis, x->ndim);
    int out = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != ax)
            n->dims[out++] = x->dims[i];
        else if (keepdim)
            n->dims[out++] = 1;
    }
    n->ndim = out;
    return NERVE_OK;
}

/* Sum of a contiguous run in eight double lanes: independent chains that the compiler
 * can vectorise (a single accumulator would be one long dependency chain), and double
 * keeps long sums accurate. */
static double sum_run(const float *x, size_t n)
{
    enum { LANES = 8 };
    double lane[LANES] = {0};
    size_t l = 0;
    for (; l + LANES <= n; l += LANES)
        for (int j = 0; j < LANES; j++)
            lane[j] += x[l + j];
    double acc = 0.0;
    for (; l < n; l++)
        acc += x[l];
    for (int j = 0; j < LANES; j++)
        acc += lane[j];
    return acc;
}

static void reduce_forward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, 0)->value;
    reduce_view v = view_of(node_input(g, n, 0), n->attr.axis_reduce.axis);
    float scale = reduce_scale(n, &v);
    for (size_t o = 0; o < v.outer; o++) {
        const float *xo = x + o * v.len * v.inner;
        float *y = n->value + o * v.inner;
        if (v.inner == 1) { /* the reduced axis is contiguous */
            y[0] = (float)(sum_run(xo, v.len) * scale);
            continue;
        }
        memcpy(y, xo, v.inner * sizeof(float));
        for (size_t l = 1; l < v.len; l++) /* add whole rows: contiguous, vectorised */
            for (size_t i = 0; i < v.inner; i++)
                y[i] += xo[l * v.inner + i];
        if (scale != 1.0f)
            for (size_t i = 0; i < v.inner; i++)
                y[i] *= scale;
    }
}

static void reduce_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    reduce_view v = view_of(node_input(g, n, 0), n->attr.axis_reduce.axis);
    float scale = reduce_scale(n, &v);
    for (size_t o = 0; o < v.outer; o++) {
        const float *dy = n->grad + o * v.inner;
        float *dxo = dx + o * v.len * v.inner;
        if (v.inner == 1) { /* one value spread over a contiguous run */
            float d = scale * dy[0];
            for (size_t l = 0; l < v.len; l++)
                dxo[l] += d;
            continue;
        }
        for (size_t l = 0; l < v.len; l++)
            for (size_t i = 0; i < v.inner; i++)
                dxo[l * v.inner + i] += scale * dy[i];
    }
}

static const op_def op_sum = {"sum", reduce_infer, NULL, reduce_forward, reduce_backward, 0};
static const op_def op_mean = {"mean", reduce_infer, NULL, reduce_forward, reduce_backward, 0};

static int reduce(nerve_graph *g, const op_def *op, int x, int axis, int keepdim)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.axis_reduce.axis = axis;
    at.axis_reduce.keepdim = keepdim != 0;
    return graph_add_op(g, op, 1, &x, &at, op->name);
}

int nerve_sum(nerve_graph *g, int x, int axis, int keepdim)
{
    return reduce(g, &op_sum, x, axis, keepdim);
}

int nerve_mean(nerve_graph *g, int x, int axis, int keepdim)
{
    return reduce(g, &op_mean, x, axis, keepdim);
}

const op_def *const ops_reduce[] = {&op_sum, &op_mean, NULL};
