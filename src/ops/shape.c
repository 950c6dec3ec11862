/* Shape operators: reshape, flatten, concat, slice, transpose.
 *
 *   reshape, flatten: the same elements under another shape. They alias their input's
 *   value and gradient buffers (alias_input), so the graph never runs them: whatever
 *   consumers add into their gradient lands directly in the input's.
 *   concat: y = [x_0 | x_1 | ...] along an axis;   dx_k += its block of dy.
 *   slice:  y = x[..., start:end, ...] on an axis;  dx[..., start:end, ...] += dy.
 *   transpose: y[j_0..j_r] = x[i] with i[perm[k]] = j_k;  dx[i] += dy[j].
 *
 * Around an axis a tensor is viewed as [outer, dims[axis], inner]; concat and slice then
 * move rows of contiguous floats between two such views. */
#include "ops.h"

#include <stdio.h>
#include <string.h>

/* Elements before / after axis: the outer and inner extents of the view. */
static size_t outer_of(const node *x, int axis) { return nerve_shape_numel(axis, x->dims); }
static size_t inner_of(const node *x, int axis)
{
    return nerve_shape_numel(x->ndim - axis - 1, x->dims + axis + 1);
}

/* dst[r * dst_stride + i] = (or +=) src[r * src_stride + i], r < rows, i < width. */
static void copy_rows(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                      size_t rows, size_t width, int accumulate)
{
    for (size_t r = 0; r < rows; r++) {
        float *d = dst + r * dst_stride;
        const float *s = src + r * src_stride;
        if (accumulate)
            for (size_t i = 0; i < width; i++)
                d[i] += s[i];
        else
            memcpy(d, s, width * sizeof(float));
    }
}

/* ---- reshape and flatten: aliases ------------------------------------------------------- */

/* Never called for alias_input operators; backward must still be non-NULL, because the
 * graph only lets gradients flow through operators that have one. */
static void alias_nothing(nerve_graph *g, node *n)
{
    (void)g;
    (void)n;
}

/* Names both shapes, as the request was written (with its 0 and -1). */
static int reshape_error(node *n, const node *x, const char *why)
{
    char have[96], want[96];
    return op_shape_error(n, "cannot reshape %s (%zu elements) to %s: %s",
                          nerve_shape_str(x->ndim, x->dims, have, sizeof have), node_numel(x),
                          nerve_shape_str(n->attr.dims.ndim, n->attr.dims.dims, want, sizeof want), why);
}

/* reshape: attr.dims = the requested rank and dims (0 copies, -1 infers). Resolved
 * again at every batch size, so [0, 1, 28, 28] follows the batch. */
static int reshape_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    int ndim = n->attr.dims.ndim, dims[NERVE_MAX_DIMS], unknown = -1;
    int64_t known = 1, total = shape_values64(x->ndim, x->dims);
    for (int i = 0; i < ndim; i++) {
        int d = n->attr.dims.dims[i];
        if (d == 0 && i >= x->ndim)
            return reshape_error(n, x, "a 0 copies a dimension the input lacks");
        if (d == -1 && unknown >= 0)
            return reshape_error(n, x, "at most one dimension may be -1");
        if (d < -1)
            return reshape_error(n, x, "dimensions must be positive, 0 or -1");
        if (d == -1) {
            unknown = i;
            continue;
        }
        dims[i] = d == 0 ? x->dims[i] : d;
        known = size_mul64(known, dims[i]);
    }
    if (known > total)
        return reshape_error(n, x, "the known dimensions hold more elements than the input");
    if (unknown >= 0) {
        if (total % known != 0)
            return reshape_error(n, x, "the known dimensions do not divide the element count");
        int st = node_check_size(n, "the dimension given as -1", total / known);
        if (st)
            return st;
        dims[unknown] = (int)(total / known);
    } else if (known != total) {
        return reshape_error(n, x, "element counts differ");
    }
    n->ndim = ndim;
    memcpy(n->dims, dims, (size_t)ndim * sizeof(int));
    return NERVE_OK;
}

static const op_def op_reshape = {"reshape", reshape_infer, NULL, alias_nothing, alias_nothing, 1};

/* attr.dims of reshape and transpose: ndim (0..NERVE_MAX_DIMS, checked by the caller)
 * entries of dims. */
static node_attr dims_attr(int ndim, const int *dims)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.dims.ndim = ndim;
    if (ndim > 0)
        memcpy(at.dims.dims, dims, (size_t)ndim * sizeof(int));
    return at;
}

int nerve_reshape(nerve_graph *g, int x, int ndim, const int *dims)
{
    if (ndim < 0 || ndim > NERVE_MAX_DIMS || (ndim > 0 && !dims))
        return nerve_set_error(NERVE_ERR_ARG, "reshape: rank %d outside 0..%d or no dims", ndim,
                               NERVE_MAX_DIMS);
    node_attr at = dims_attr(ndim, dims);
    return graph_add_op(g, &op_reshape, 1, &x, &at, "reshape");
}

static int flatten_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    if (x->ndim < 1)
        return op_shape_error(n, "needs a batch dimension, got a rank-0 input");
    int64_t inner = shape_values64(x->ndim - 1, x->dims + 1);
    int st = node_check_size(n, "the flattened sample", inner);
    if (st)
        return st;
    n->ndim = 2;
    n->dims[0] = x->dims[0];
    n->dims[1] = (int)inner;
    return NERVE_OK;
}

static const op_def op_flatten = {"flatten", flatten_infer, NULL, alias_nothing, alias_nothing, 1};

int nerve_flatten(nerve_graph *g, int x)
{
    return graph_add_op(g, &op_flatten, 1, &x, NULL, "flatten");
}

/* ---- concat: attr.axis.axis --------------------------------------------------------------- */

static int concat_infer(nerve_graph *g, node *n)
{
    node *x0 = node_input(g, n, 0);
    int ax = normalize_axis(n->attr.axis.axis, x0->ndim);
    if (ax < 0)
        return op_shape_error(n, "axis %d is out of range for rank %d", n->attr.axis.axis, x0->ndim);
    node_copy_shape(n, x0);
    int64_t sum = x0->dims[ax]; /* in 64 bits: a sum of ints may not fit one */
    for (int k = 1; k < n->n_in; k++) {
        node *x = node_input(g, n, k);
        int fits = x->ndim == x0->ndim;
        for (int i = 0; fits && i < x->ndim; i++)
            fits = i == ax || x->dims[i] == x0->dims[i];
        if (!fits) {
            char s0[96], sk[96];
            return op_shape_error(n, "input %d %s does not match input 0 %s outside axis %d", k,
                                  nerve_shape_str(x->ndim, x->dims, sk, sizeof sk),
                                  nerve_shape_str(x0->ndim, x0->dims, s0, sizeof s0), ax);
        }
        sum = size_add64(sum, x->dims[ax]);
    }
    char what[48];
    snprintf(what, sizeof what, "the sum of the sizes along axis %d", ax);
    int st = node_check_size(n, what, sum);
    if (st)
        return st;
    n->dims[ax] = (int)sum;
    return NERVE_OK;
}

/* Walks the inputs' blocks: input k occupies columns [off, off + width_k) of each of the
 * output's `outer` rows of out_row floats. */
static void concat_move(nerve_graph *g, node *n, int backward)
{
    int ax = normalize_axis(n->attr.axis.axis, n->ndim);
    size_t outer = outer_of(n, ax), out_row = inner_of(n, ax) * (size_t)n->dims[ax], off = 0;
    for (int k = 0; k < n->n_in; k++) {
        node *x = node_input(g, n, k);
        size_t width = inner_of(x, ax) * (size_t)x->dims[ax];
        if (!backward)
            copy_rows(n->value + off, out_row, x->value, width, outer, width, 0);
        else if (node_input_grad(g, n, k))
            copy_rows(node_input_grad(g, n, k), width, n->grad + off, out_row, outer, width, 1);
        off += width;
    }
}

static void concat_forward(nerve_graph *g, node *n) { concat_move(g, n, 0); }
static void concat_backward(nerve_graph *g, node *n) { concat_move(g, n, 1); }

static const op_def op_concat = {"concat", concat_infer, NULL, concat_forward, concat_backward,
                                 OP_OUTPUT_UNREAD};

int nerve_concat(nerve_graph *g, int n, const int *xs, int axis)
{
    if (n < 1 || n > NERVE_MAX_INPUTS || !xs)
        return nerve_set_error(NERVE_ERR_ARG, "concat: %d inputs (needs 1..%d)", n,
                               NERVE_MAX_INPUTS);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.axis.axis = axis;
    return graph_add_op(g, &op_concat, n, xs, &at, "concat");
}

/* ---- slice: attr.slice (axis, [start, end)) ------------------------------------------------ */

/* Resolves negative indices (from the end) and clamps to the axis, as Python slices do. */
static int slice_bound(int i, int dim)
{
    if (i < 0)
        i += dim;
    return i < 0 ? 0 : i > dim ? dim : i;
}

static int slice_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    int ax = normalize_axis(n->attr.slice.axis, x->ndim);
    if (ax < 0)
        return op_shape_error(n, "axis %d is out of range for rank %d", n->attr.slice.axis, x->ndim);
    int start = slice_bound(n->attr.slice.start, x->dims[ax]);
    int end = slice_bound(n->attr.slice.end, x->dims[ax]);
    if (end <= start)
        return op_shape_error(n, "[%d, %d) selects nothing of axis %d (size %d)", n->attr.slice.start,
                              n->attr.slice.end, ax, x->dims[ax]);
    node_copy_shape(n, x);
    n->dims[ax] = end - start;
    return NERVE_OK;
}

static void slice_move(nerve_graph *g, node *n, int backward)
{
    node *x = node_input(g, n, 0);
    int ax = normalize_axis(n->attr.slice.axis, x->ndim);
    size_t inner = inner_of(x, ax), outer = outer_of(x, ax);
    size_t x_row = inner * (size_t)x->dims[ax], width = inner * (size_t)n->dims[ax];
    size_t first = inner * (size_t)slice_bound(n->attr.slice.start, x->dims[ax]);
    float *dx = node_input_grad(g, n, 0);
    if (!backward)
        copy_rows(n->value, width, x->value + first, x_row, outer, width, 0);
    else if (dx)
        copy_rows(dx + first, x_row, n->grad, width, outer, width, 1);
}

static void slice_forward(nerve_graph *g, node *n) { slice_move(g, n, 0); }
static void slice_backward(nerve_graph *g, node *n) { slice_move(g, n, 1); }

static const op_def op_slice = {"slice", slice_infer, NULL, slice_forward, slice_backward, 0};

int nerve_slice(nerve_graph *g, int x, int axis, int start, int end)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.slice.axis = axis;
    at.slice.start = start;
    at.slice.end = end;
    return graph_add_op(g, &op_slice, 1, &x, &at, "slice");
}

/* ---- transpose: attr.dims = the rank and the permutation ------------------------------ */

static int transpose_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    int ndim = n->attr.dims.ndim, seen = 0;
    if (x->ndim != ndim)
        return op_shape_error(n, "permutation has %d entries but the input has rank %d", ndim,
                              x->ndim);
    for (int k = 0; k < ndim; k++) {
        int p = n->attr.dims.dims[k];
        if (p < 0 || p >= ndim || (seen & (1 << p)))
            return op_shape_error(n, "entry %d (%d) makes the permutation invalid for rank %d",
                                  k, p, ndim);
        seen |= 1 << p;
        n->dims[k] = x->dims[p];
    }
    n->ndim = ndim;
    return NERVE_OK;
}

/* The 2-D core of a transpose: y[i * ldy + j] = x[i + j * ldx] (backward: x += y), i < rows,
 * j < cols, visited in square tiles so that the strided side reuses its cache lines
 * instead of touching a new one per element. */
static void transpose_2d(float *y, size_t ldy, float *x, size_t ldx, size_t rows, size_t cols,
                         int backward)
{
    enum { TILE = 16 };
    for (size_t i0 = 0; i0 < rows; i0 += TILE)
        for (size_t j0 = 0; j0 < cols; j0 += TILE) {
            size_t ie = i0 + TILE < rows ? i0 + TILE : rows;
            size_t je = j0 + TILE < cols ? j0 + TILE : cols;
            if (backward) /* the read-modify-write side runs contiguously */
                for (size_t j = j0; j < je; j++)
                    for (size_t i = i0; i < ie; i++)
                        x[i + j * ldx] += y[i * ldy + j];
            else
                for (size_t i = i0; i < ie; i++)
                    for (size_t j = j0; j < je; j++)
                        y[i * ldy + j] = x[i + j * ldx];
        }
}

/* Splits y's axes into the two that matter for memory (q, where x's contiguous axis went,
 * and y's own last axis) and the rest, walked odometer-style (no index division) with the
 * matching offsets into y and x; each outer position is one 2-D transpose. Forward gathers
 * y from x; backward scatter-adds dy into dx. */
static void transpose_move(nerve_graph *g, node *n, int backward)
{
    node *x = node_input(g, n, 0);
    float *xbuf = backward ? node_input_grad(g, n, 0) : x->value;
    float *ybuf = backward ? n->grad : n->value;
    if (!xbuf)
        return;
    int nd = n->ndim, last = nd - 1, q = last;
    size_t x_stride[NERVE_MAX_DIMS], y_stride[NERVE_MAX_DIMS], s[NERVE_MAX_DIMS] = {0};
    for (int k = nd - 1, xs = 1, ys = 1; k >= 0; xs *= x->dims[k], ys *= n->dims[k], k--) {
        x_stride[k] = (size_t)xs;
        y_stride[k] = (size_t)ys;
    }
    for (int k = 0; k < nd; k++) {
        s[k] = x_stride[n->attr.dims.dims[k]]; /* step in x when y's index k advances */
        if (n->attr.dims.dims[k] == nd - 1)
            q = k;
    }
    size_t cols = nd ? (size_t)n->dims[last] : 1, ldx = nd ? s[last] : 0;
    size_t rows = q != last ? (size_t)n->dims[q] : 1, ldy = q != last ? y_stride[q] : 0;
    size_t outer = node_numel(n) / (rows * cols), idx[NERVE_MAX_DIMS] = {0}, yo = 0, xo = 0;
    for (size_t o = 0; o < outer; o++) {
        transpose_2d(ybuf + yo, ldy, xbuf + xo, ldx, rows, cols, backward);
        for (int k = nd - 2; k >= 0; k--) {
            if (k == q)
                continue;
            yo += y_stride[k];
            xo += s[k];
            if (++idx[k] < (size_t)n->dims[k])
                break;
            yo -= y_stride[k] * (size_t)n->dims[k];
            xo -= s[k] * (size_t)n->dims[k];
            idx[k] = 0;
        }
    }
}

static void transpose_forward(nerve_graph *g, node *n) { transpose_move(g, n, 0); }
static void transpose_backward(nerve_graph *g, node *n) { transpose_move(g, n, 1); }

static const op_def op_transpose = {"transpose", transpose_infer, NULL, transpose_forward,
                                    transpose_backward, 0};

int nerve_transpose(nerve_graph *g, int x, const int *perm)
{
    int ndim = 0;
    int st = nerve_node_shape(g, x, &ndim, NULL);
    if (st)
        return st;
    if (!perm && ndim > 0)
        return nerve_set_error(NERVE_ERR_ARG, "transpose: no permutation given");
    node_attr at = dims_attr(ndim, perm);
    return graph_add_op(g, &op_transpose, 1, &x, &at, "transpose");
}

const op_def *const ops_shape[] = {&op_reshape, &op_flatten, &op_concat, &op_slice, &op_transpose,
                                   NULL};
