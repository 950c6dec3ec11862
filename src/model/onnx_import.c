/* ONNX import: an ONNX graph (read by src/io/onnx.c) rebuilt from nerve's operators.
 *
 * Every ONNX value becomes either a constant, known at import (initializers, Constant
 * nodes, and everything computed from constants and from shapes only: the
 * Shape -> Gather -> Concat -> Reshape chains that exporters write), or a graph node.
 * Shapes are fixed at import: each input is a nerve input [1, *dims] viewed as [*dims], so
 * every node's shape is its ONNX shape and Shape() folds. A node whose inputs are all
 * constants is evaluated here (in double precision) when its operator has a folding rule
 * below, else built as nodes over states holding the constants. Constants used by
 * operators become parameters (float initializers) or states (everything else).
 *
 * Unsupported operators, attributes and values are refused with NERVE_ERR_FORMAT and a
 * message "<model>: node N '<name>' (<OpType>): ... not supported ..." so that a test
 * runner can tell "unsupported" from a wrong answer. */
#include "../io/onnx.h"
#include "../core/core.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXR ONNX_MAX_RANK

typedef struct ival {
    const char *name;
    int node;        /* graph node id, -1 while none */
    int dtype;       /* ONNX element type */
    int is_const;
    int ndim;
    int64_t dims[MAXR];
    double *c;       /* constant values (owned), NULL until needed for an initializer */
    size_t n;
    const onnx_tensor *init; /* an initializer, converted lazily */
    int force_state; /* a state even if a float initializer (running statistics) */
} ival;

struct nerve_onnx {
    nerve_graph *g;
    int opset;
    int n_in, n_out;
    int *in_node, *out_node, *in_type, *out_type;
    char (*in_name)[ONNX_MAX_NAME];
    char (*out_name)[ONNX_MAX_NAME];
};

typedef struct imp {
    nerve_onnx *m;
    nerve_graph *g;
    const onnx_model *pm;
    ival *v;
    int nv, cap;
    int batch;
    const char *src;
    const onnx_node *cur;
    int cur_index;
    int n_bind;
    const char *const *bind_names;
    const nerve_tensor *bind_values;
} imp;

/* ---- errors -------------------------------------------------------------------------------- */

static int fail(imp *I, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (I->cur)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: node %d '%s' (%s): %s", I->src,
                               I->cur_index, I->cur->name, I->cur->op_type, msg);
    return nerve_set_error(NERVE_ERR_FORMAT, "%s: %s", I->src, msg);
}

/* A failed graph call: its message, prefixed with the node. */
static int graph_fail(imp *I, int st)
{
    if (st >= 0)
        return st;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", nerve_last_error());
    return fail(I, "%s", msg);
}

#define TRY(expr)                                                                            \
    do {                                                                                     \
        int st_ = (expr);                                                                    \
        if (st_ < 0)                                                                         \
            return st_;                                                                      \
    } while (0)
/* A graph call: a node id or a failure with the node named. */
#define G(expr) graph_check(I, (expr))
static int graph_check(imp *I, int id) { return id < 0 ? graph_fail(I, id) : id; }
#define GTRY(var, expr)                                                                      \
    do {                                                                                     \
        var = graph_check(I, (expr));                                                        \
        if (var < 0)                                                                         \
            return var;                                                                      \
    } while (0)

/* ---- attributes ------------------------------------------------------------------------ */

/* memcpy of n int64 values; src may be NULL when n is 0 (an empty INTS attribute). */
static void copy_i64(int64_t *dst, const int64_t *src, int n)
{
    if (n > 0)
        memcpy(dst, src, (size_t)n * sizeof(int64_t));
}

static const onnx_attr *attr(const onnx_node *n, const char *name)
{
    for (int k = 0; k < n->n_attr; k++)
        if (!strcmp(n->attr[k].name, name))
            return &n->attr[k];
    return NULL;
}
static int64_t attr_i(const onnx_node *n, const char *name, int64_t d)
{
    const onnx_attr *a = attr(n, name);
    return a ? a->i : d;
}
static float attr_f(const onnx_node *n, const char *name, float d)
{
    const onnx_attr *a = attr(n, name);
    return a ? a->f : d;
}
static const char *attr_s(const onnx_node *n, const char *name, const char *d)
{
    const onnx_attr *a = attr(n, name);
    return a && a->s ? a->s : d;
}
/* INTS attribute: count (or -1 when absent) and values. */
static int attr_ints(const onnx_node *n, const char *name, const int64_t **v)
{
    const onnx_attr *a = attr(n, name);
    *v = a ? a->ints : NULL;
    return a ? a->n_ints : -1;
}

/* ---- values -------------------------------------------------------------------------------- */

/* A double as an integer: truncated, NaN as 0, clamped to +-2^62 (the conversion of a value
 * outside int64 would be undefined). */
static int64_t to_i64(double x)
{
    if (x != x)
        return 0;
    if (x > 4.6e18)
        return (int64_t)1 << 62;
    if (x < -4.6e18)
        return -((int64_t)1 << 62);
    return (int64_t)x;
}

static ival *find(imp *I, const char *name)
{
    for (int k = I->nv - 1; k >= 0; k--)
        if (!strcmp(I->v[k].name, name))
            return &I->v[k];
    return NULL;
}

static ival *new_val(imp *I, const char *name)
{
    if (find(I, name)) {
        fail(I, "value '%s' is defined twice", name);
        return NULL;
    }
    if (I->nv == I->cap) {
        int cap = I->cap ? 2 * I->cap : 64;
        ival *p = nerve_xrealloc(I->v, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        I->v = p;
        I->cap = cap;
    }
    ival *v = &I->v[I->nv++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->node = -1;
    return v;
}

static int has_in(const onnx_node *n, int k) { return k < n->n_in && n->in[k][0]; }

static ival *in_val(imp *I, const onnx_node *n, int k)
{
    if (!has_in(n, k)) {
        fail(I, "input %d is missing", k);
        return NULL;
    }
    ival *v = find(I, n->in[k]);
    if (!v)
        fail(I, "input '%s' is not defined before its use", n->in[k]);
    return v;
}

static size_t numel64(int ndim, const int64_t *dims)
{
    size_t s = 1;
    for (int i = 0; i < ndim; i++)
        s *= (size_t)dims[i];
    return s;
}

/* The constant's values as doubles (an initializer is converted on first use). */
static int const_data(imp *I, ival *v)
{
    if (v->c || !v->init)
        return NERVE_OK;
    const onnx_tensor *t = v->init;
    if (t->unusable)
        return fail(I, "tensor '%s' of type %s (or with external data) is not supported",
                    t->name, onnx_dtype_name(t->dtype));
    v->c = nerve_xmalloc((v->n ? v->n : 1) * sizeof(double));
    if (!v->c)
        return NERVE_ERR_NOMEM;
    for (size_t k = 0; k < v->n; k++)
        v->c[k] = t->f ? (double)t->f[k] : (double)t->i[k];
    return NERVE_OK;
}

/* Sets output k of the current node to a constant that takes ownership of data. */
static int set_const(imp *I, const onnx_node *n, int k, int dtype, int ndim, const int64_t *dims,
                     double *data)
{
    if (k >= n->n_out || !n->out[k][0]) {
        nerve_xfree(data);
        return NERVE_OK;
    }
    ival *v = new_val(I, n->out[k]);
    if (!v) {
        nerve_xfree(data);
        return nerve_last_status();
    }
    v->is_const = 1;
    v->dtype = dtype;
    v->ndim = ndim;
    if (ndim > 0)
        memcpy(v->dims, dims, (size_t)ndim * sizeof(int64_t));
    v->n = numel64(ndim, dims);
    v->c = data;
    return NERVE_OK;
}

static int set_node(imp *I, const onnx_node *n, int k, int id, int dtype)
{
    if (id < 0)
        return id;
    if (k >= n->n_out || !n->out[k][0])
        return NERVE_OK;
    ival *v = new_val(I, n->out[k]);
    if (!v)
        return nerve_last_status();
    v->node = id;
    v->dtype = dtype;
    return NERVE_OK;
}

static int is_int_dtype(int t)
{
    return t != ONNX_FLOAT && t != ONNX_DOUBLE && t != ONNX_FLOAT16 && t != ONNX_BFLOAT16;
}

/* The shape of a value (constant or node). */
static int shape_of(imp *I, const ival *v, int *ndim, int64_t *dims)
{
    *ndim = 0;
    if (v->is_const) {
        *ndim = v->ndim;
        copy_i64(dims, v->dims, v->ndim);
        return NERVE_OK;
    }
    int d[NERVE_MAX_DIMS];
    TRY(graph_fail(I, nerve_node_shape(I->g, v->node, ndim, d)));
    for (int i = 0; i < *ndim; i++)
        dims[i] = d[i];
    return NERVE_OK;
}

static int rank_of(imp *I, const ival *v)
{
    int nd = 0;
    int64_t d[MAXR];
    return shape_of(I, v, &nd, d) < 0 ? -1 : nd;
}

/* A node holding a constant: a parameter for float initializers, else a state. */
static int node_of(imp *I, ival *v)
{
    if (v->node >= 0)
        return v->node;
    if (!v->is_const)
        return fail(I, "value '%s' has no node", v->name);
    if (v->ndim > NERVE_MAX_DIMS)
        return fail(I, "constant '%s' has rank %d: not supported (at most %d)", v->name, v->ndim,
                    NERVE_MAX_DIMS);
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] < 1 || v->dims[i] > INT32_MAX)
            return fail(I, "constant '%s' has an empty or huge dimension: not supported", v->name);
    int dims[NERVE_MAX_DIMS];
    for (int i = 0; i < v->ndim; i++)
        dims[i] = (int)v->dims[i];
    char name[64];
    snprintf(name, sizeof name, "%s", v->name[0] ? v->name : "const");
    int is_param = v->init && !is_int_dtype(v->dtype) && !v->force_state;
    int id = is_param ? nerve_param(I->g, name, v->ndim, dims)
                      : nerve_state(I->g, name, v->ndim, dims);
    if (id < 0)
        return graph_fail(I, id);
    nerve_tensor t = nerve_value(I->g, id);
    if (v->init && v->init->f && !v->c) {
        memcpy(t.data, v->init->f, v->n * sizeof(float));
    } else {
        TRY(const_data(I, v));
        for (size_t k = 0; k < v->n; k++)
            t.data[k] = (float)v->c[k];
    }
    v->node = id;
    return id;
}

static int in_node(imp *I, const onnx_node *n, int k)
{
    ival *v = in_val(I, n, k);
    return v ? node_of(I, v) : nerve_last_status();
}

/* A required constant input (its values loaded). */
static ival *in_const(imp *I, const onnx_node *n, int k)
{
    ival *v = in_val(I, n, k);
    if (!v)
        return NULL;
    if (!v->is_const) {
        fail(I, "input %d ('%s') is computed at run time: not supported here (it must be a "
             "constant)", k, v->name);
        return NULL;
    }
    if (const_data(I, v) < 0)
        return NULL;
    return v;
}

/* A new constant (a state node, or a parameter) of the given shape filled from doubles. */
static int const_node_kind(imp *I, int ndim, const int64_t *dims, const double *data,
                           const char *name, int param);

static int const_node(imp *I, int ndim, const int64_t *dims, const double *data, const char *name)
{
    return const_node_kind(I, ndim, dims, data, name, 0);
}

static int const_node_kind(imp *I, int ndim, const int64_t *dims, const double *data,
                           const char *name, int param)
{
    int d[NERVE_MAX_DIMS] = {0};
    if (ndim > NERVE_MAX_DIMS)
        return fail(I, "a rank-%d constant is not supported (at most %d)", ndim, NERVE_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        d[i] = (int)dims[i];
    int id = param ? nerve_param(I->g, name, ndim, d) : nerve_state(I->g, name, ndim, d);
    if (id < 0)
        return graph_fail(I, id);
    nerve_tensor t = nerve_value(I->g, id);
    size_t n = numel64(ndim, dims);
    for (size_t k = 0; k < n; k++)
        t.data[k] = (float)data[k];
    return id;
}

static int scalar_node(imp *I, double x)
{
    return const_node(I, 0, NULL, &x, "scalar");
}

/* ---- shape helpers ------------------------------------------------------------------------ */

static int norm_axis(imp *I, int64_t axis, int rank, int *out)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return fail(I, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return NERVE_OK;
}

static int reshape_node(imp *I, int x, int ndim, const int64_t *dims)
{
    if (ndim > NERVE_MAX_DIMS)
        return fail(I, "a rank-%d tensor is not supported (at most %d)", ndim, NERVE_MAX_DIMS);
    int d[NERVE_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1 || dims[i] > INT32_MAX)
            return fail(I, "an empty or huge dimension (%lld) is not supported",
                        (long long)dims[i]);
        d[i] = (int)dims[i];
    }
    return G(nerve_reshape(I->g, x, ndim, d));
}

/* Integer values of a constant input (axes, shapes, pads). */
static int const_ints(imp *I, ival *v, int64_t *out, int cap)
{
    if (v->n > (size_t)cap)
        return fail(I, "'%s' holds %zu values (at most %d supported)", v->name, v->n, cap);
    for (size_t k = 0; k < v->n; k++)
        out[k] = to_i64(v->c[k]);
    return (int)v->n;
}

/* Axes from an attribute (older opsets) or from input k (newer ones); -1: none given. */
static int axes_of(imp *I, const onnx_node *n, int k, int64_t *axes)
{
    const int64_t *a;
    int na = attr_ints(n, "axes", &a);
    if (na >= 0) {
        if (na > MAXR)
            return fail(I, "%d axes (at most %d)", na, MAXR);
        copy_i64(axes, a, na);
        return na;
    }
    if (has_in(n, k)) {
        ival *v = in_const(I, n, k);
        if (!v)
            return nerve_last_status();
        return const_ints(I, v, axes, MAXR);
    }
    return -1;
}

/* ---- constant folding -------------------------------------------------------------------- */

static double *dalloc(size_t n) { return nerve_xmalloc((n ? n : 1) * sizeof(double)); }

static double cast_value(double x, int to)
{
    switch (to) {
    case ONNX_BOOL: return x != 0.0;
    case ONNX_FLOAT: return (double)(float)x;
    case ONNX_FLOAT16: case ONNX_BFLOAT16: case ONNX_DOUBLE: return x;
    case ONNX_UINT8: return (double)(uint8_t)to_i64(x);
    case ONNX_INT8: return (double)(int8_t)to_i64(x);
    case ONNX_UINT16: return (double)(uint16_t)to_i64(x);
    case ONNX_INT16: return (double)(int16_t)to_i64(x);
    case ONNX_INT32: return (double)(int32_t)to_i64(x);
    case ONNX_UINT32: return (double)(uint32_t)to_i64(x);
    case ONNX_INT64: case ONNX_UINT64: return (double)to_i64(x);
    default: return isfinite(x) ? trunc(x) : x;
    }
}

/* Broadcast shape of two constants. */
static int bcast2(imp *I, const ival *a, const ival *b, int *nd, int64_t *dims)
{
    *nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < *nd; i++) {
        int ka = i - (*nd - a->ndim), kb = i - (*nd - b->ndim);
        int64_t da = ka >= 0 ? a->dims[ka] : 1, db = kb >= 0 ? b->dims[kb] : 1;
        if (da != db && da != 1 && db != 1)
            return fail(I, "shapes do not broadcast");
        dims[i] = da == 1 ? db : da;
    }
    return NERVE_OK;
}

/* Offset into x (rank xn, dims xd) of the output element with coordinates idx (rank nd). */
static size_t bcast_off(const int64_t *idx, int nd, int xn, const int64_t *xd)
{
    size_t off = 0;
    for (int i = 0; i < xn; i++) {
        int64_t c = xd[i] == 1 ? 0 : idx[i + nd - xn];
        off = off * (size_t)xd[i] + (size_t)c;
    }
    return off;
}

static void idx_next(int64_t *idx, int nd, const int64_t *dims)
{
    for (int i = nd - 1; i >= 0; i--) {
        if (++idx[i] < dims[i])
            return;
        idx[i] = 0;
    }
}

static double fold_bin(const char *op, double a, double b, int is_int)
{
    if (!strcmp(op, "Add") || !strcmp(op, "Sum")) return a + b;
    if (!strcmp(op, "Sub")) return a - b;
    if (!strcmp(op, "Mul")) return a * b;
    if (!strcmp(op, "Div")) {
        if (!is_int)
            return a / b;
        return b == 0 ? 0 : trunc(a / b);
    }
    if (!strcmp(op, "Pow")) return pow(a, b);
    if (!strcmp(op, "Max")) return a >= b ? a : b;
    if (!strcmp(op, "Min")) return a <= b ? a : b;
    if (!strcmp(op, "Mod")) {
        if (b == 0)
            return 0;
        double r = fmod(a, b);
        return is_int && r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
    }
    if (!strcmp(op, "Equal")) return a == b;
    if (!strcmp(op, "Less")) return a < b;
    if (!strcmp(op, "Greater")) return a > b;
    if (!strcmp(op, "LessOrEqual")) return a <= b;
    if (!strcmp(op, "GreaterOrEqual")) return a >= b;
    if (!strcmp(op, "And")) return a != 0 && b != 0;
    if (!strcmp(op, "Or")) return a != 0 || b != 0;
    return (a != 0) != (b != 0); /* Xor */
}

static int is_fold_bin(const char *op)
{
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod",
                                      "Equal", "Less", "Greater", "LessOrEqual",
                                      "GreaterOrEqual", "And", "Or", "Xor", "Sum"};
    for (size_t k = 0; k < NERVE_ARRAY_LEN(ops); k++)
        if (!strcmp(op, ops[k]))
            return 1;
    return 0;
}

static int is_bool_result(const char *op)
{
    return !strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater") ||
           !strcmp(op, "LessOrEqual") || !strcmp(op, "GreaterOrEqual") || !strcmp(op, "And") ||
           !strcmp(op, "Or") || !strcmp(op, "Xor") || !strcmp(op, "Not");
}

static int fold_binary(imp *I, const onnx_node *n, ival *a, ival *b, int out)
{
    int nd;
    int64_t dims[MAXR], idx[MAXR] = {0};
    TRY(bcast2(I, a, b, &nd, dims));
    size_t total = numel64(nd, dims);
    double *y = dalloc(total);
    if (!y)
        return NERVE_ERR_NOMEM;
    int is_int = is_int_dtype(a->dtype);
    if (!strcmp(n->op_type, "Mod") && attr_i(n, "fmod", 0))
        is_int = 0;
    for (size_t k = 0; k < total; k++, idx_next(idx, nd, dims))
        y[k] = fold_bin(n->op_type, a->c[bcast_off(idx, nd, a->ndim, a->dims)],
                        b->c[bcast_off(idx, nd, b->ndim, b->dims)], is_int);
    if (is_int_dtype(a->dtype) && !is_bool_result(n->op_type))
        for (size_t k = 0; k < total; k++)
            y[k] = cast_value(y[k], a->dtype);
    return set_const(I, n, out, is_bool_result(n->op_type) ? ONNX_BOOL : a->dtype, nd, dims, y);
}

static int fold_unary(imp *I, const onnx_node *n, ival *a)
{
    double *y = dalloc(a->n);
    if (!y)
        return NERVE_ERR_NOMEM;
    const char *op = n->op_type;
    for (size_t k = 0; k < a->n; k++) {
        double x = a->c[k];
        double r;
        if (!strcmp(op, "Neg")) r = -x;
        else if (!strcmp(op, "Abs")) r = fabs(x);
        else if (!strcmp(op, "Sqrt")) r = sqrt(x);
        else if (!strcmp(op, "Exp")) r = exp(x);
        else if (!strcmp(op, "Log")) r = log(x);
        else if (!strcmp(op, "Floor")) r = floor(x);
        else if (!strcmp(op, "Ceil")) r = ceil(x);
        else if (!strcmp(op, "Reciprocal")) r = 1.0 / x;
        else if (!strcmp(op, "Not")) r = x == 0;
        else if (!strcmp(op, "Sign")) r = (x > 0) - (x < 0);
        else if (!strcmp(op, "Relu")) r = x > 0 ? x : 0;
        else r = x; /* Identity */
        y[k] = r;
    }
    return set_const(I, n, 0, !strcmp(op, "Not") ? ONNX_BOOL : a->dtype, a->ndim, a->dims, y);
}

/* Copies a constant under another shape (same element count). */
static int fold_reshape(imp *I, const onnx_node *n, ival *a, int nd, const int64_t *dims, int dtype)
{
    if (numel64(nd, dims) != a->n)
        return fail(I, "reshape of a constant changes its element count");
    double *y = dalloc(a->n);
    if (!y)
        return NERVE_ERR_NOMEM;
    memcpy(y, a->c, a->n * sizeof(double));
    if (dtype != a->dtype)
        for (size_t k = 0; k < a->n; k++)
            y[k] = cast_value(y[k], dtype);
    return set_const(I, n, 0, dtype, nd, dims, y);
}

static int fold_gather(imp *I, const onnx_node *n, ival *x, ival *idx)
{
    if (x->ndim < 1)
        return fail(I, "gather from a scalar");
    int axis;
    TRY(norm_axis(I, attr_i(n, "axis", 0), x->ndim, &axis));
    int nd = x->ndim - 1 + idx->ndim;
    if (nd > MAXR)
        return fail(I, "result rank %d above %d", nd, MAXR);
    int64_t dims[MAXR];
    int k = 0;
    for (int i = 0; i < axis; i++)
        dims[k++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++)
        dims[k++] = idx->dims[i];
    for (int i = axis + 1; i < x->ndim; i++)
        dims[k++] = x->dims[i];
    size_t outer = numel64(axis, x->dims), inner = numel64(x->ndim - axis - 1, x->dims + axis + 1);
    int64_t len = x->dims[axis];
    double *y = dalloc(numel64(nd, dims));
    if (!y)
        return NERVE_ERR_NOMEM;
    size_t o = 0;
    for (size_t p = 0; p < outer; p++)
        for (size_t j = 0; j < idx->n; j++) {
            int64_t t = to_i64(idx->c[j]);
            if (t < 0)
                t += len;
            if (t < 0 || t >= len) {
                nerve_xfree(y);
                return fail(I, "index %lld is out of range for an axis of %lld",
                            (long long)idx->c[j], (long long)len);
            }
            for (size_t i = 0; i < inner; i++)
                y[o++] = x->c[(p * (size_t)len + (size_t)t) * inner + i];
        }
    return set_const(I, n, 0, x->dtype, nd, dims, y);
}

static int fold_concat(imp *I, const onnx_node *n)
{
    ival *first = in_const(I, n, 0);
    if (!first)
        return nerve_last_status();
    int axis, nd = first->ndim;
    TRY(norm_axis(I, attr_i(n, "axis", 0), nd, &axis));
    int64_t dims[MAXR];
    copy_i64(dims, first->dims, nd);
    dims[axis] = 0;
    for (int k = 0; k < n->n_in; k++) {
        ival *v = in_const(I, n, k);
        if (!v)
            return nerve_last_status();
        if (v->ndim != nd)
            return fail(I, "concatenated ranks differ");
        for (int i = 0; i < nd; i++)
            if (i != axis && v->dims[i] != first->dims[i])
                return fail(I, "concatenated shapes differ off the axis");
        dims[axis] += v->dims[axis];
    }
    size_t outer = numel64(axis, dims), inner = numel64(nd - axis - 1, dims + axis + 1);
    double *y = dalloc(numel64(nd, dims));
    if (!y)
        return NERVE_ERR_NOMEM;
    size_t o = 0;
    for (size_t p = 0; p < outer; p++)
        for (int k = 0; k < n->n_in; k++) {
            ival *v = find(I, n->in[k]);
            size_t block = (size_t)v->dims[axis] * inner;
            memcpy(y + o, v->c + p * block, block * sizeof(double));
            o += block;
        }
    return set_const(I, n, 0, first->dtype, nd, dims, y);
}

/* Slice parameters resolved for one tensor shape: start, step and count per axis. */
typedef struct slice_plan {
    int64_t start[MAXR], step[MAXR], count[MAXR];
} slice_plan;

static int slice_resolve(imp *I, const onnx_node *n, int nd, const int64_t *dims, slice_plan *p)
{
    int64_t starts[MAXR], ends[MAXR], axes[MAXR], steps[MAXR];
    int ns, ne, na = -1, nst = -1;
    for (int i = 0; i < nd; i++) {
        p->start[i] = 0;
        p->step[i] = 1;
        p->count[i] = dims[i];
    }
    if (I->m->opset < 10) {
        const int64_t *a;
        ns = attr_ints(n, "starts", &a);
        if (ns < 0 || ns > MAXR)
            return fail(I, "starts missing");
        copy_i64(starts, a, ns);
        ne = attr_ints(n, "ends", &a);
        if (ne != ns)
            return fail(I, "starts and ends differ in length");
        copy_i64(ends, a, ne);
        na = attr_ints(n, "axes", &a);
        if (na > MAXR)
            return fail(I, "too many axes");
        if (na >= 0)
            copy_i64(axes, a, na);
    } else {
        ival *v;
        if (!(v = in_const(I, n, 1)))
            return nerve_last_status();
        TRY(ns = const_ints(I, v, starts, MAXR));
        if (!(v = in_const(I, n, 2)))
            return nerve_last_status();
        TRY(ne = const_ints(I, v, ends, MAXR));
        if (has_in(n, 3)) {
            if (!(v = in_const(I, n, 3)))
                return nerve_last_status();
            TRY(na = const_ints(I, v, axes, MAXR));
        }
        if (has_in(n, 4)) {
            if (!(v = in_const(I, n, 4)))
                return nerve_last_status();
            TRY(nst = const_ints(I, v, steps, MAXR));
        }
    }
    if (ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return fail(I, "starts, ends, axes and steps differ in length");
    for (int k = 0; k < ns; k++) {
        int ax;
        TRY(norm_axis(I, na >= 0 ? axes[k] : k, nd, &ax));
        int64_t d = dims[ax], st = nst >= 0 ? steps[k] : 1, s = starts[k], e = ends[k];
        if (st == 0)
            return fail(I, "a step of 0");
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        if (st > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
        } else {
            s = s < 0 ? -1 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
        }
        int64_t cnt = st > 0 ? (e - s + st - 1) / st : (s - e + (-st) - 1) / (-st);
        p->start[ax] = s;
        p->step[ax] = st;
        p->count[ax] = cnt > 0 ? cnt : 0;
    }
    return NERVE_OK;
}

static int fold_slice(imp *I, const onnx_node *n, ival *x)
{
    slice_plan p;
    TRY(slice_resolve(I, n, x->ndim, x->dims, &p));
    int nd = x->ndim;
    size_t total = numel64(nd, p.count);
    double *y = dalloc(total);
    if (!y)
        return NERVE_ERR_NOMEM;
    int64_t idx[MAXR] = {0};
    for (size_t o = 0; o < total; o++, idx_next(idx, nd, p.count)) {
        size_t off = 0;
        for (int i = 0; i < nd; i++)
            off = off * (size_t)x->dims[i] + (size_t)(p.start[i] + idx[i] * p.step[i]);
        y[o] = x->c[off];
    }
    return set_const(I, n, 0, x->dtype, nd, p.count, y);
}

static int fold_transpose(imp *I, const onnx_node *n, ival *x)
{
    int nd = x->ndim;
    int64_t perm[MAXR], dims[MAXR], idx[MAXR] = {0}, st[MAXR];
    const int64_t *a;
    int na = attr_ints(n, "perm", &a);
    if (na >= 0 && na != nd)
        return fail(I, "perm has %d entries for rank %d", na, nd);
    for (int i = 0; i < nd; i++) {
        perm[i] = na >= 0 ? a[i] : nd - 1 - i;
        if (perm[i] < 0 || perm[i] >= nd)
            return fail(I, "perm entry out of range");
        dims[i] = x->dims[perm[i]];
    }
    size_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = (int64_t)s;
        s *= (size_t)x->dims[i];
    }
    double *y = dalloc(x->n);
    if (!y)
        return NERVE_ERR_NOMEM;
    for (size_t o = 0; o < x->n; o++, idx_next(idx, nd, dims)) {
        size_t off = 0;
        for (int i = 0; i < nd; i++)
            off += (size_t)(idx[i] * st[perm[i]]);
        y[o] = x->c[off];
    }
    return set_const(I, n, 0, x->dtype, nd, dims, y);
}

/* Squeeze / Unsqueeze / Flatten / Reshape target shapes from a known input shape. */
static int squeeze_shape(imp *I, const onnx_node *n, int nd, const int64_t *dims, int *ond,
                         int64_t *odims)
{
    int64_t axes[MAXR];
    int na;
    TRY(na = axes_of(I, n, 1, axes));
    int drop[MAXR] = {0};
    for (int k = 0; k < na; k++) {
        int ax;
        TRY(norm_axis(I, axes[k], nd, &ax));
        if (dims[ax] != 1)
            return fail(I, "squeezes axis %d of size %lld", ax, (long long)dims[ax]);
        drop[ax] = 1;
    }
    *ond = 0;
    for (int i = 0; i < nd; i++)
        if (na >= 0 ? !drop[i] : dims[i] != 1)
            odims[(*ond)++] = dims[i];
    return NERVE_OK;
}

static int unsqueeze_shape(imp *I, const onnx_node *n, int nd, const int64_t *dims, int *ond,
                           int64_t *odims)
{
    int64_t axes[MAXR];
    int na;
    TRY(na = axes_of(I, n, 1, axes));
    if (na < 0)
        return fail(I, "no axes");
    int r = nd + na;
    if (r > MAXR)
        return fail(I, "rank %d above %d", r, MAXR);
    int ins[MAXR] = {0};
    for (int k = 0; k < na; k++) {
        int ax;
        TRY(norm_axis(I, axes[k], r, &ax));
        if (ins[ax])
            return fail(I, "axis %d given twice", ax);
        ins[ax] = 1;
    }
    for (int i = 0, j = 0; i < r; i++)
        odims[i] = ins[i] ? 1 : dims[j++];
    *ond = r;
    return NERVE_OK;
}

static int flatten_shape(imp *I, const onnx_node *n, int nd, const int64_t *dims, int *ond,
                         int64_t *odims)
{
    int64_t a = attr_i(n, "axis", 1);
    if (a < 0)
        a += nd;
    if (a < 0 || a > nd)
        return fail(I, "axis %lld out of range", (long long)attr_i(n, "axis", 1));
    odims[0] = (int64_t)numel64((int)a, dims);
    odims[1] = (int64_t)numel64(nd - (int)a, dims + a);
    *ond = 2;
    return NERVE_OK;
}

static int reshape_shape(imp *I, const onnx_node *n, int nd, const int64_t *dims, int *ond,
                         int64_t *odims)
{
    int64_t want[MAXR];
    int nw;
    if (I->m->opset < 5) {
        const int64_t *a;
        nw = attr_ints(n, "shape", &a);
        if (nw < 0 || nw > MAXR)
            return fail(I, "no shape");
        copy_i64(want, a, nw);
    } else {
        ival *s = in_const(I, n, 1);
        if (!s)
            return nerve_last_status();
        TRY(nw = const_ints(I, s, want, MAXR));
    }
    int allowzero = (int)attr_i(n, "allowzero", 0);
    size_t total = numel64(nd, dims), known = 1;
    int unknown = -1;
    for (int i = 0; i < nw; i++) {
        if (want[i] == 0 && !allowzero) {
            if (i >= nd)
                return fail(I, "a 0 copies a dimension the input lacks");
            want[i] = dims[i];
        }
        if (want[i] == -1) {
            if (unknown >= 0)
                return fail(I, "two dimensions are -1");
            unknown = i;
            continue;
        }
        if (want[i] < 1)
            return fail(I, "an empty or negative dimension (%lld) is not supported",
                        (long long)want[i]);
        known *= (size_t)want[i];
    }
    if (unknown >= 0) {
        if (!known || total % known)
            return fail(I, "cannot infer the -1 dimension");
        want[unknown] = (int64_t)(total / known);
    } else if (known != total) {
        return fail(I, "element counts differ (%zu vs %zu)", total, known);
    }
    copy_i64(odims, want, nw);
    *ond = nw;
    return NERVE_OK;
}

typedef int (*shape_fn)(imp *, const onnx_node *, int, const int64_t *, int *, int64_t *);

static int fold_range(imp *I, const onnx_node *n)
{
    ival *s = in_const(I, n, 0), *l = s ? in_const(I, n, 1) : NULL, *d = l ? in_const(I, n, 2) : NULL;
    if (!d)
        return nerve_last_status();
    double start = s->c[0], limit = l->c[0], delta = d->c[0];
    if (delta == 0)
        return fail(I, "delta 0");
    double cnt = ceil((limit - start) / delta);
    if (cnt < 1 || cnt > 1e8)
        return fail(I, "%g elements: empty or huge ranges are not supported", cnt);
    int64_t dims[1] = {(int64_t)cnt};
    double *y = dalloc((size_t)cnt);
    if (!y)
        return NERVE_ERR_NOMEM;
    for (int64_t k = 0; k < dims[0]; k++)
        y[k] = cast_value(start + (double)k * delta, s->dtype);
    return set_const(I, n, 0, s->dtype, 1, dims, y);
}

static int fold_constant_of_shape(imp *I, const onnx_node *n, ival *shp)
{
    int64_t dims[MAXR];
    int nd;
    TRY(nd = const_ints(I, shp, dims, MAXR));
    for (int i = 0; i < nd; i++)
        if (dims[i] < 1 || dims[i] > (1 << 28))
            return fail(I, "empty or huge dimension %lld is not supported", (long long)dims[i]);
    const onnx_attr *a = attr(n, "value");
    double val = 0;
    int dtype = ONNX_FLOAT;
    if (a && a->t) {
        if (a->t->unusable || a->t->n < 1)
            return fail(I, "value tensor not supported");
        val = a->t->f ? a->t->f[0] : (double)a->t->i[0];
        dtype = a->t->dtype;
    }
    size_t total = numel64(nd, dims);
    double *y = dalloc(total);
    if (!y)
        return NERVE_ERR_NOMEM;
    for (size_t k = 0; k < total; k++)
        y[k] = val;
    return set_const(I, n, 0, dtype, nd, dims, y);
}

static int fold_where(imp *I, const onnx_node *n, ival *c, ival *a, ival *b)
{
    int nd, nd2;
    int64_t d1[MAXR], dims[MAXR], idx[MAXR] = {0};
    TRY(bcast2(I, c, a, &nd, d1));
    ival tmp = {0};
    tmp.ndim = nd;
    memcpy(tmp.dims, d1, sizeof d1);
    TRY(bcast2(I, &tmp, b, &nd2, dims));
    size_t total = numel64(nd2, dims);
    double *y = dalloc(total);
    if (!y)
        return NERVE_ERR_NOMEM;
    for (size_t k = 0; k < total; k++, idx_next(idx, nd2, dims))
        y[k] = c->c[bcast_off(idx, nd2, c->ndim, c->dims)] != 0
                   ? a->c[bcast_off(idx, nd2, a->ndim, a->dims)]
                   : b->c[bcast_off(idx, nd2, b->ndim, b->dims)];
    return set_const(I, n, 0, a->dtype, nd2, dims, y);
}

static int fold_expand(imp *I, const onnx_node *n, ival *x, ival *shp)
{
    ival want = {0};
    TRY(want.ndim = const_ints(I, shp, want.dims, MAXR));
    int nd;
    int64_t dims[MAXR], idx[MAXR] = {0};
    TRY(bcast2(I, x, &want, &nd, dims));
    size_t total = numel64(nd, dims);
    double *y = dalloc(total);
    if (!y)
        return NERVE_ERR_NOMEM;
    for (size_t k = 0; k < total; k++, idx_next(idx, nd, dims))
        y[k] = x->c[bcast_off(idx, nd, x->ndim, x->dims)];
    return set_const(I, n, 0, x->dtype, nd, dims, y);
}

/* Reductions of constants (shape arithmetic: ReduceProd of a shape and the like). */
static int fold_reduce(imp *I, const onnx_node *n, ival *x)
{
    int64_t axes[MAXR];
    int na, nd = x->ndim, keep = (int)attr_i(n, "keepdims", 1);
    TRY(na = axes_of(I, n, 1, axes));
    int red[MAXR] = {0};
    if (na <= 0) {
        if (na == 0 && attr_i(n, "noop_with_empty_axes", 0))
            return fold_reshape(I, n, x, x->ndim, x->dims, x->dtype);
        for (int i = 0; i < nd; i++)
            red[i] = 1;
    }
    for (int k = 0; k < na; k++) {
        int ax;
        TRY(norm_axis(I, axes[k], nd, &ax));
        red[ax] = 1;
    }
    int ond = 0;
    int64_t odims[MAXR], full[MAXR], idx[MAXR] = {0};
    for (int i = 0; i < nd; i++) {
        full[i] = red[i] ? 1 : x->dims[i];
        if (!red[i] || keep)
            odims[ond++] = full[i];
    }
    size_t total = numel64(nd, full);
    double *y = dalloc(total);
    if (!y)
        return NERVE_ERR_NOMEM;
    const char *op = n->op_type;
    int is_prod = !strcmp(op, "ReduceProd"), is_max = !strcmp(op, "ReduceMax"),
        is_min = !strcmp(op, "ReduceMin"), is_mean = !strcmp(op, "ReduceMean");
    for (size_t k = 0; k < total; k++)
        y[k] = is_prod ? 1 : is_max ? -INFINITY : is_min ? INFINITY : 0;
    for (size_t k = 0; k < x->n; k++, idx_next(idx, nd, x->dims)) {
        size_t o = 0;
        for (int i = 0; i < nd; i++)
            o = o * (size_t)full[i] + (size_t)(red[i] ? 0 : idx[i]);
        double v = x->c[k];
        if (is_prod) y[o] *= v;
        else if (is_max) y[o] = v > y[o] ? v : y[o];
        else if (is_min) y[o] = v < y[o] ? v : y[o];
        else y[o] += v;
    }
    if (is_mean && total)
        for (size_t k = 0; k < total; k++)
            y[k] /= (double)(x->n / total);
    return set_const(I, n, 0, x->dtype, ond, odims, y);
}

/* Shape / Size of any value (its shape is known at import). */
static int fold_shape(imp *I, const onnx_node *n, ival *x)
{
    int nd;
    int64_t dims[MAXR];
    TRY(shape_of(I, x, &nd, dims));
    if (!strcmp(n->op_type, "Size")) {
        double *y = dalloc(1);
        if (!y)
            return NERVE_ERR_NOMEM;
        y[0] = (double)numel64(nd, dims);
        return set_const(I, n, 0, ONNX_INT64, 0, NULL, y);
    }
    int64_t s = attr_i(n, "start", 0), e = attr_i(n, "end", nd);
    if (s < 0)
        s += nd;
    if (e < 0)
        e += nd;
    s = s < 0 ? 0 : s > nd ? nd : s;
    e = e < 0 ? 0 : e > nd ? nd : e;
    int64_t cnt = e > s ? e - s : 0;
    if (cnt < 1)
        return fail(I, "an empty shape slice is not supported");
    double *y = dalloc((size_t)cnt);
    if (!y)
        return NERVE_ERR_NOMEM;
    for (int64_t k = 0; k < cnt; k++)
        y[k] = (double)dims[s + k];
    int64_t od[1] = {cnt};
    return set_const(I, n, 0, ONNX_INT64, 1, od, y);
}

/* A Constant node's value. */
static int fold_constant(imp *I, const onnx_node *n)
{
    const onnx_attr *a;
    if ((a = attr(n, "value")) && a->t) {
        const onnx_tensor *t = a->t;
        if (t->unusable)
            return fail(I, "a constant of type %s is not supported", onnx_dtype_name(t->dtype));
        double *y = dalloc(t->n);
        if (!y)
            return NERVE_ERR_NOMEM;
        for (size_t k = 0; k < t->n; k++)
            y[k] = t->f ? t->f[k] : (double)t->i[k];
        if (t->n == 0) {
            nerve_xfree(y);
            return fail(I, "an empty constant is not supported");
        }
        return set_const(I, n, 0, t->dtype, t->ndim, t->dims, y);
    }
    int64_t one[1];
    if ((a = attr(n, "value_float")) || (a = attr(n, "value_int"))) {
        double *y = dalloc(1);
        if (!y)
            return NERVE_ERR_NOMEM;
        int is_f = !strcmp(a->name, "value_float");
        y[0] = is_f ? a->f : (double)a->i;
        return set_const(I, n, 0, is_f ? ONNX_FLOAT : ONNX_INT64, 0, NULL, y);
    }
    if ((a = attr(n, "value_floats")) || (a = attr(n, "value_ints"))) {
        int is_f = !strcmp(a->name, "value_floats");
        one[0] = is_f ? a->n_floats : a->n_ints;
        if (!one[0])
            return fail(I, "an empty constant is not supported");
        double *y = dalloc((size_t)one[0]);
        if (!y)
            return NERVE_ERR_NOMEM;
        for (int64_t k = 0; k < one[0]; k++)
            y[k] = is_f ? a->floats[k] : (double)a->ints[k];
        return set_const(I, n, 0, is_f ? ONNX_FLOAT : ONNX_INT64, 1, one, y);
    }
    return fail(I, "a constant of this kind (sparse or string) is not supported");
}

static int cast_target(imp *I, const onnx_node *n, int *to)
{
    *to = ONNX_FLOAT;
    if (!strcmp(n->op_type, "CastLike")) {
        ival *l = in_val(I, n, 1);
        if (!l)
            return nerve_last_status();
        *to = l->dtype;
        return NERVE_OK;
    }
    if (!attr(n, "to"))
        return fail(I, "no 'to'");
    *to = (int)attr_i(n, "to", 1);
    if (*to == ONNX_STRING || *to == ONNX_COMPLEX64 || *to == ONNX_COMPLEX128 ||
        *to == ONNX_BFLOAT16 || *to < 1 || *to > 16)
        return fail(I, "cast to %s is not supported", onnx_dtype_name(*to));
    return NERVE_OK;
}

/* Tries to evaluate node n at import. Returns 1 when done, 0 when it has no rule or a
 * non-constant input, < 0 on error. */
static int try_fold(imp *I, const onnx_node *n)
{
    const char *op = n->op_type;
    if (!strcmp(op, "Constant"))
        return fold_constant(I, n) < 0 ? -1 : 1;
    if (!strcmp(op, "Shape") || !strcmp(op, "Size")) {
        ival *x = in_val(I, n, 0);
        if (!x)
            return -1;
        return fold_shape(I, n, x) < 0 ? -1 : 1;
    }
    if (!strcmp(op, "Range"))
        return fold_range(I, n) < 0 ? -1 : 1;
    if (!strcmp(op, "ConstantOfShape")) {
        ival *s = in_const(I, n, 0);
        return !s || fold_constant_of_shape(I, n, s) < 0 ? -1 : 1;
    }
    for (int k = 0; k < n->n_in; k++) {
        if (!has_in(n, k))
            continue;
        ival *v = in_val(I, n, k);
        if (!v)
            return -1;
        if (!v->is_const)
            return 0;
    }
    if (n->n_in == 0)
        return 0;
    ival *a = in_const(I, n, 0);
    if (!a)
        return -1;
    int st;
    if (is_fold_bin(op) && n->n_in == 2) {
        ival *b = in_const(I, n, 1);
        st = b ? fold_binary(I, n, a, b, 0) : -1;
    } else if (!strcmp(op, "Neg") || !strcmp(op, "Abs") || !strcmp(op, "Sqrt") ||
               !strcmp(op, "Exp") || !strcmp(op, "Log") || !strcmp(op, "Floor") ||
               !strcmp(op, "Ceil") || !strcmp(op, "Reciprocal") || !strcmp(op, "Not") ||
               !strcmp(op, "Sign") || !strcmp(op, "Relu") || !strcmp(op, "Identity")) {
        st = fold_unary(I, n, a);
    } else if (!strcmp(op, "Cast") || !strcmp(op, "CastLike")) {
        int to;
        st = cast_target(I, n, &to);
        if (!st)
            st = fold_reshape(I, n, a, a->ndim, a->dims, to);
    } else if (!strcmp(op, "Gather")) {
        ival *b = in_const(I, n, 1);
        st = b ? fold_gather(I, n, a, b) : -1;
    } else if (!strcmp(op, "Concat")) {
        st = fold_concat(I, n);
    } else if (!strcmp(op, "Slice")) {
        st = fold_slice(I, n, a);
    } else if (!strcmp(op, "Transpose")) {
        st = fold_transpose(I, n, a);
    } else if (!strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze") || !strcmp(op, "Flatten") ||
               !strcmp(op, "Reshape")) {
        shape_fn f = !strcmp(op, "Squeeze") ? squeeze_shape
                     : !strcmp(op, "Unsqueeze") ? unsqueeze_shape
                     : !strcmp(op, "Flatten") ? flatten_shape : reshape_shape;
        int nd;
        int64_t dims[MAXR];
        st = f(I, n, a->ndim, a->dims, &nd, dims);
        if (!st)
            st = fold_reshape(I, n, a, nd, dims, a->dtype);
    } else if (!strcmp(op, "Where")) {
        ival *b = in_const(I, n, 1), *c = b ? in_const(I, n, 2) : NULL;
        st = c ? fold_where(I, n, a, b, c) : -1;
    } else if (!strcmp(op, "Expand")) {
        ival *b = in_const(I, n, 1);
        st = b ? fold_expand(I, n, a, b) : -1;
    } else if (!strcmp(op, "ReduceProd") || !strcmp(op, "ReduceSum") || !strcmp(op, "ReduceMax") ||
               !strcmp(op, "ReduceMin") || !strcmp(op, "ReduceMean")) {
        st = fold_reduce(I, n, a);
    } else {
        return 0;
    }
    return st < 0 ? -1 : 1;
}

/* ---- runtime operators ---------------------------------------------------------------------- */

static int act_out(imp *I, const onnx_node *n, nerve_act_type t, float alpha, float beta)
{
    int x;
    TRY(x = in_node(I, n, 0));
    nerve_act a = nerve_act_default(t);
    if (alpha == alpha)
        a.alpha = alpha;
    if (beta == beta)
        a.beta = beta;
    return set_node(I, n, 0, G(nerve_activation(I->g, x, a)), ONNX_FLOAT);
}

/* Binary operator by nerve name over inputs a, b; integer division truncates. */
static int binary_nodes(imp *I, const char *op, int a, int b, int dtype)
{
    int y;
    GTRY(y, nerve_binary(I->g, op, a, b));
    if (!strcmp(op, "div") && is_int_dtype(dtype))
        y = G(nerve_unary(I->g, y, "trunc"));
    return y;
}

static const char *nerve_binary_name(const onnx_node *n)
{
    static const char *const map[][2] = {
        {"Add", "add"}, {"Sub", "sub"}, {"Mul", "mul"}, {"Div", "div"}, {"Pow", "pow"},
        {"Equal", "equal"}, {"Less", "less"}, {"Greater", "greater"},
        {"LessOrEqual", "less_equal"}, {"GreaterOrEqual", "greater_equal"},
        {"And", "logical_and"}, {"Or", "logical_or"}, {"Xor", "logical_xor"},
        {"Max", "maximum"}, {"Min", "minimum"}, {"Sum", "add"}, {"Mean", "add"}};
    for (size_t k = 0; k < NERVE_ARRAY_LEN(map); k++)
        if (!strcmp(n->op_type, map[k][0]))
            return map[k][1];
    if (!strcmp(n->op_type, "Mod"))
        return attr_i(n, "fmod", 0) ? "fmod" : "mod";
    return NULL;
}

static int op_binary(imp *I, const onnx_node *n)
{
    const char *op = nerve_binary_name(n);
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    if (!strcmp(n->op_type, "Mod") && !attr_i(n, "fmod", 0) && !is_int_dtype(a->dtype))
        return fail(I, "Mod with fmod = 0 on floats is not allowed by ONNX");
    int y;
    TRY(y = in_node(I, n, 0));
    for (int k = 1; k < n->n_in; k++) {
        int b;
        TRY(b = in_node(I, n, k));
        TRY(y = binary_nodes(I, op, y, b, a->dtype));
    }
    if (!strcmp(n->op_type, "Mean") && n->n_in > 1)
        TRY(y = G(nerve_affine(I->g, y, 1.0f / (float)n->n_in, 0.0f)));
    int dtype = is_bool_result(n->op_type) ? ONNX_BOOL : a->dtype;
    return set_node(I, n, 0, y, dtype);
}

static int op_identity(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int x;
    TRY(x = node_of(I, a));
    /* a view, so that the output has a node of its own (graph outputs are nodes) */
    int nd;
    int64_t dims[MAXR];
    TRY(shape_of(I, a, &nd, dims));
    int y;
    TRY(y = reshape_node(I, x, nd, dims));
    TRY(set_node(I, n, 0, y, a->dtype));
    if (!strcmp(n->op_type, "Dropout") && n->n_out > 1 && n->out[1][0]) {
        size_t total = numel64(nd, dims);
        double *ones = dalloc(total);
        if (!ones)
            return NERVE_ERR_NOMEM;
        for (size_t k = 0; k < total; k++)
            ones[k] = 1;
        return set_const(I, n, 1, ONNX_BOOL, nd, dims, ones);
    }
    return NERVE_OK;
}

static int op_dropout(imp *I, const onnx_node *n)
{
    if (has_in(n, 2)) {
        ival *t = in_const(I, n, 2);
        if (!t)
            return nerve_last_status();
        if (t->c[0] != 0) {
            float ratio = 0.5f;
            if (has_in(n, 1)) {
                ival *r = in_const(I, n, 1);
                if (!r)
                    return nerve_last_status();
                ratio = (float)r->c[0];
            }
            if (ratio != 0)
                return fail(I, "training_mode = 1 (random masks) is not supported");
        }
    }
    return op_identity(I, n);
}

static int op_cast(imp *I, const onnx_node *n)
{
    int to;
    TRY(cast_target(I, n, &to));
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int x, y;
    TRY(x = node_of(I, a));
    if (to == ONNX_BOOL) {
        GTRY(y, nerve_unary(I->g, x, "not"));
        GTRY(y, nerve_unary(I->g, y, "not"));
    } else if (is_int_dtype(to) && !is_int_dtype(a->dtype)) {
        GTRY(y, nerve_unary(I->g, x, "trunc"));
    } else {
        int nd;
        int64_t dims[MAXR];
        TRY(shape_of(I, a, &nd, dims));
        TRY(y = reshape_node(I, x, nd, dims));
    }
    return set_node(I, n, 0, y, to);
}

static int op_reshape_like(imp *I, const onnx_node *n, shape_fn f)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int nd, ond;
    int64_t dims[MAXR], odims[MAXR];
    TRY(shape_of(I, a, &nd, dims));
    TRY(f(I, n, nd, dims, &ond, odims));
    int x;
    TRY(x = node_of(I, a));
    return set_node(I, n, 0, reshape_node(I, x, ond, odims), a->dtype);
}

static int op_transpose(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int nd = rank_of(I, a), perm[NERVE_MAX_DIMS];
    const int64_t *p;
    int np = attr_ints(n, "perm", &p);
    if (np >= 0 && np != nd)
        return fail(I, "perm has %d entries for rank %d", np, nd);
    for (int i = 0; i < nd; i++)
        perm[i] = np >= 0 ? (int)p[i] : nd - 1 - i;
    int x;
    TRY(x = node_of(I, a));
    return set_node(I, n, 0, G(nerve_transpose(I->g, x, perm)), a->dtype);
}

static int concat_nodes(imp *I, int count, const int *ids, int axis)
{
    int y = ids[0];
    int k = 1;
    if (count == 1)
        return y;
    /* groups of at most NERVE_MAX_INPUTS */
    int chunk[NERVE_MAX_INPUTS];
    int m = 0;
    chunk[m++] = ids[0];
    for (; k < count; k++) {
        if (m == NERVE_MAX_INPUTS) {
            GTRY(y, nerve_concat(I->g, m, chunk, axis));
            m = 0;
            chunk[m++] = y;
        }
        chunk[m++] = ids[k];
    }
    return G(nerve_concat(I->g, m, chunk, axis));
}

static int op_concat(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int axis, ids[256] = {0};
    TRY(norm_axis(I, attr_i(n, "axis", 0), rank_of(I, a), &axis));
    if (n->n_in > 256)
        return fail(I, "more than 256 inputs");
    for (int k = 0; k < n->n_in; k++)
        TRY(ids[k] = in_node(I, n, k));
    return set_node(I, n, 0, concat_nodes(I, n->n_in, ids, axis), a->dtype);
}

/* Gather along axis with constant integer indices (a state node). */
static int gather_const(imp *I, int x, int axis, int count, const double *idx, const char *name)
{
    int64_t d[1] = {count};
    int ind;
    TRY(ind = const_node(I, 1, d, idx, name));
    return G(nerve_gather(I->g, x, ind, axis));
}

static int op_slice(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int nd;
    int64_t dims[MAXR];
    TRY(shape_of(I, a, &nd, dims));
    slice_plan p;
    TRY(slice_resolve(I, n, nd, dims, &p));
    int y;
    TRY(y = node_of(I, a));
    for (int i = 0; i < nd; i++) {
        if (p.count[i] == dims[i] && p.step[i] == 1)
            continue;
        if (p.count[i] < 1)
            return fail(I, "an empty slice is not supported");
        if (p.step[i] == 1) {
            GTRY(y, nerve_slice(I->g, y, i, (int)p.start[i], (int)(p.start[i] + p.count[i])));
        } else {
            double *idx = dalloc((size_t)p.count[i]);
            if (!idx)
                return NERVE_ERR_NOMEM;
            for (int64_t k = 0; k < p.count[i]; k++)
                idx[k] = (double)(p.start[i] + k * p.step[i]);
            y = gather_const(I, y, i, (int)p.count[i], idx, "slice_index");
            nerve_xfree(idx);
            TRY(y);
        }
    }
    if (y == a->node) /* a slice of everything: still a node of its own */
        TRY(y = reshape_node(I, y, nd, dims));
    return set_node(I, n, 0, y, a->dtype);
}

static int op_split(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int nd, axis;
    int64_t dims[MAXR], sizes[256];
    TRY(shape_of(I, a, &nd, dims));
    TRY(norm_axis(I, attr_i(n, "axis", 0), nd, &axis));
    int ns = -1;
    const int64_t *s;
    int na = attr_ints(n, "split", &s);
    if (na >= 0) {
        if (na > 256)
            return fail(I, "too many parts");
        copy_i64(sizes, s, na);
        ns = na;
    } else if (has_in(n, 1)) {
        ival *v = in_const(I, n, 1);
        if (!v)
            return nerve_last_status();
        TRY(ns = const_ints(I, v, sizes, 256));
    }
    if (ns < 0) {
        if (n->n_out < 1 || dims[axis] % n->n_out)
            return fail(I, "axis of %lld does not split evenly into %d", (long long)dims[axis],
                        n->n_out);
        ns = n->n_out;
        for (int k = 0; k < ns; k++)
            sizes[k] = dims[axis] / ns;
    }
    if (ns != n->n_out)
        return fail(I, "%d sizes for %d outputs", ns, n->n_out);
    int x;
    TRY(x = node_of(I, a));
    int64_t at = 0;
    for (int k = 0; k < ns; k++) {
        if (sizes[k] < 1)
            return fail(I, "an empty part is not supported");
        if (at + sizes[k] > dims[axis])
            return fail(I, "parts exceed the axis");
        TRY(set_node(I, n, k, G(nerve_slice(I->g, x, axis, (int)at, (int)(at + sizes[k]))),
                     a->dtype));
        at += sizes[k];
    }
    if (at != dims[axis])
        return fail(I, "parts do not cover the axis");
    return NERVE_OK;
}

static int op_gather(imp *I, const onnx_node *n, int elements)
{
    ival *a = in_val(I, n, 0), *idx = a ? in_val(I, n, 1) : NULL;
    if (!idx)
        return nerve_last_status();
    int nd = rank_of(I, a), axis;
    TRY(norm_axis(I, attr_i(n, "axis", 0), nd, &axis));
    if (idx->is_const) {
        TRY(const_data(I, idx));
        int64_t dims[MAXR];
        int dn;
        TRY(shape_of(I, a, &dn, dims));
        for (size_t k = 0; k < idx->n; k++)
            if (idx->c[k] < -(double)dims[axis] || idx->c[k] >= (double)dims[axis])
                return fail(I, "index %g is out of range for an axis of %lld", idx->c[k],
                            (long long)dims[axis]);
    }
    int x, ind;
    TRY(x = node_of(I, a));
    TRY(ind = node_of(I, idx));
    if (!elements && idx->is_const && idx->ndim == 0) {
        /* a scalar index drops the axis */
        int y;
        GTRY(y, nerve_gather(I->g, x, ind, axis));
        return set_node(I, n, 0, y, a->dtype);
    }
    return set_node(I, n, 0,
                    G(elements ? nerve_gather_elements(I->g, x, ind, axis)
                               : nerve_gather(I->g, x, ind, axis)),
                    a->dtype);
}

/* x broadcast to `dims` (rank nd): multiplication by ones, whose gradient sums back. */
static int expand_to(imp *I, int x, int nd, const int64_t *dims)
{
    size_t total = numel64(nd, dims);
    double *ones = dalloc(total);
    if (!ones)
        return NERVE_ERR_NOMEM;
    for (size_t k = 0; k < total; k++)
        ones[k] = 1;
    int o = const_node(I, nd, dims, ones, "ones");
    nerve_xfree(ones);
    TRY(o);
    return G(nerve_mul(I->g, x, o));
}

static int op_expand(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0), *s = a ? in_const(I, n, 1) : NULL;
    if (!s)
        return nerve_last_status();
    ival cur = {0}, want = {0};
    TRY(shape_of(I, a, &cur.ndim, cur.dims));
    TRY(want.ndim = const_ints(I, s, want.dims, MAXR));
    int nd;
    int64_t dims[MAXR];
    TRY(bcast2(I, &cur, &want, &nd, dims));
    int x;
    TRY(x = node_of(I, a));
    return set_node(I, n, 0, expand_to(I, x, nd, dims), a->dtype);
}

static int op_tile(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0), *r = a ? in_const(I, n, 1) : NULL;
    if (!r)
        return nerve_last_status();
    int nd;
    int64_t dims[MAXR], reps[MAXR];
    TRY(shape_of(I, a, &nd, dims));
    int nr;
    TRY(nr = const_ints(I, r, reps, MAXR));
    if (nr != nd)
        return fail(I, "%d repeats for rank %d", nr, nd);
    int y;
    TRY(y = node_of(I, a));
    for (int i = 0; i < nd; i++) {
        if (reps[i] == 1)
            continue;
        if (reps[i] < 1 || reps[i] > (1 << 26) || dims[i] * reps[i] > (1 << 26))
            return fail(I, "repeat %lld not supported", (long long)reps[i]);
        size_t cnt = (size_t)(dims[i] * reps[i]);
        double *idx = dalloc(cnt);
        if (!idx)
            return NERVE_ERR_NOMEM;
        for (size_t k = 0; k < cnt; k++)
            idx[k] = (double)(k % (size_t)dims[i]);
        y = gather_const(I, y, i, (int)cnt, idx, "tile_index");
        nerve_xfree(idx);
        TRY(y);
    }
    if (y == a->node)
        TRY(y = reshape_node(I, y, nd, dims));
    return set_node(I, n, 0, y, a->dtype);
}

static int op_where(imp *I, const onnx_node *n)
{
    int c, a, b;
    TRY(c = in_node(I, n, 0));
    TRY(a = in_node(I, n, 1));
    TRY(b = in_node(I, n, 2));
    return set_node(I, n, 0, G(nerve_where(I->g, c, a, b)), find(I, n->in[1])->dtype);
}

static int op_clip(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    float lo = attr_f(n, "min", -FLT_MAX), hi = attr_f(n, "max", FLT_MAX);
    int x, y;
    TRY(x = node_of(I, a));
    y = x;
    int lo_node = -1, hi_node = -1;
    for (int k = 1; k <= 2; k++) {
        if (!has_in(n, k))
            continue;
        ival *v = in_val(I, n, k);
        if (!v)
            return nerve_last_status();
        if (v->is_const) {
            TRY(const_data(I, v));
            if (k == 1)
                lo = (float)v->c[0];
            else
                hi = (float)v->c[0];
        } else {
            TRY(*(k == 1 ? &lo_node : &hi_node) = node_of(I, v));
        }
    }
    if (lo_node < 0 && hi_node < 0) {
        if (!(lo <= hi)) /* ONNX: every output is max when min > max */
            return set_node(I, n, 0, G(nerve_affine(I->g, x, 0.0f, hi)), a->dtype);
        return set_node(I, n, 0, G(nerve_clip(I->g, x, lo, hi)), a->dtype);
    }
    if (lo_node >= 0)
        GTRY(y, nerve_binary(I->g, "maximum", y, lo_node));
    else if (lo > -FLT_MAX)
        GTRY(y, nerve_clip(I->g, y, lo, FLT_MAX));
    if (hi_node >= 0)
        GTRY(y, nerve_binary(I->g, "minimum", y, hi_node));
    else if (hi < FLT_MAX)
        GTRY(y, nerve_clip(I->g, y, -FLT_MAX, hi));
    return set_node(I, n, 0, y, a->dtype);
}

/* Softmax family: opset < 13 works on the input coerced to 2-D at axis (default 1);
 * 13 and later on one axis (default -1). */
static int op_softmax(imp *I, const onnx_node *n, int log_space)
{
    ival *a = in_val(I, n, 0);
    if (!a)
        return nerve_last_status();
    int nd;
    int64_t dims[MAXR];
    TRY(shape_of(I, a, &nd, dims));
    int x, y, axis;
    TRY(x = node_of(I, a));
    if (I->m->opset >= 13) {
        TRY(norm_axis(I, attr_i(n, "axis", -1), nd, &axis));
        y = G(log_space ? nerve_log_softmax(I->g, x, axis) : nerve_softmax(I->g, x, axis));
        return set_node(I, n, 0, y, ONNX_FLOAT);
    }
    int64_t ax = attr_i(n, "axis", 1);
    if (ax < 0)
        ax += nd;
    if (ax < 0 || ax > nd)
        return fail(I, "axis out of range");
    int64_t d2[2] = {(int64_t)numel64((int)ax, dims), (int64_t)numel64(nd - (int)ax, dims + ax)};
    TRY(x = reshape_node(I, x, 2, d2));
    GTRY(y, log_space ? nerve_log_softmax(I->g, x, 1) : nerve_softmax(I->g, x, 1));
    return set_node(I, n, 0, reshape_node(I, y, nd, dims), ONNX_FLOAT);
}

static int op_matmul(imp *I, const onnx_node *n)
{
    ival *a = in_val(I, n, 0), *b = a ? in_val(I, n, 1) : NULL;
    if (!b)
        return nerve_last_status();
    int na, nb;
    int64_t da[MAXR], db[MAXR];
    TRY(shape_of(I, a, &na, da));
    TRY(shape_of(I, b, &nb, db));
    int x, w;
    TRY(x = node_of(I, a));
    TRY(w = node_of(I, b));
    if (na == 1) {
        int64_t d[2] = {1, da[0]};
        TRY(x = reshape_node(I, x, 2, d));
    }
    if (nb == 1) {
        int64_t d[2] = {db[0], 1};
        TRY(w = reshape_node(I, w, 2, d));
    }
    int y;
    if ((na <= 2) && (nb <= 2))
        GTRY(y, nerve_matmul(I->g, x, w, 0, 0));
    else
        GTRY(y, nerve_matmul_nd(I->g, x, w));
    if (na == 1 || nb == 1) {
        int nd;
        int64_t dims[MAXR], out[MAXR];
        TRY(shape_of(I, &(ival){.node = y}, &nd, dims));
        int k = 0;
        for (int i = 0; i < nd; i++) {
            if (na == 1 && i == nd - 2)
                continue;
            if (nb == 1 && i == nd - 1)
                continue;
            out[k++] = dims[i];
        }
        TRY(y = reshape_node(I, y, k, out));
    }
    return set_node(I, n, 0, y, a->dtype);
}

static int op_gemm(imp *I, const onnx_node *n)
{
    int ta = (int)attr_i(n, "transA", 0), tb = (int)attr_i(n, "transB", 0);
    float alpha = attr_f(n, "alpha", 1.0f), beta = attr_f(n, "beta", 1.0f);
    ival *a = in_val(I, n, 0), *b = a ? in_val(I, n, 1) : NULL;
    if (!b)
        return nerve_last_status();
    if (rank_of(I, a) != 2 || rank_of(I, b) != 2)
        return fail(I, "A and B must be 2-D");
    int x, w, y;
    TRY(x = node_of(I, a));
    TRY(w = node_of(I, b));
    int c = -1, c_rank = -1;
    int64_t cd[MAXR];
    if (has_in(n, 2)) {
        ival *cv = in_val(I, n, 2);
        if (!cv)
            return nerve_last_status();
        TRY(shape_of(I, cv, &c_rank, cd));
        TRY(c = node_of(I, cv));
    }
    int64_t wd[MAXR];
    int wn;
    TRY(shape_of(I, b, &wn, wd));
    /* the fully connected case: x [M, K] times w^T with w [N, K] and a bias [N] */
    if (!ta && tb && alpha == 1.0f && (c < 0 || (beta == 1.0f && c_rank == 1 && cd[0] == wd[0]))) {
        GTRY(y, nerve_dense(I->g, x, w, c));
        return set_node(I, n, 0, y, a->dtype);
    }
    GTRY(y, nerve_matmul(I->g, x, w, ta, tb));
    if (alpha != 1.0f)
        GTRY(y, nerve_affine(I->g, y, alpha, 0.0f));
    if (c >= 0 && beta != 0.0f) {
        if (beta != 1.0f)
            GTRY(c, nerve_affine(I->g, c, beta, 0.0f));
        GTRY(y, nerve_add(I->g, y, c));
    }
    return set_node(I, n, 0, y, a->dtype);
}

/* Explicit pads of a convolution or pooling node for S spatial axes: pads attribute or
 * auto_pad (SAME_UPPER: the extra at the end; SAME_LOWER: at the beginning). */
static int spatial_pads(imp *I, const onnx_node *n, int S, const int64_t *in, const int64_t *k,
                        const int64_t *s, const int64_t *d, int64_t *pb, int64_t *pe)
{
    const char *ap = attr_s(n, "auto_pad", "NOTSET");
    const int64_t *p;
    int np = attr_ints(n, "pads", &p);
    for (int i = 0; i < S; i++)
        pb[i] = pe[i] = 0;
    if (!strcmp(ap, "NOTSET")) {
        if (np >= 0 && np != 2 * S)
            return fail(I, "pads has %d values for %d spatial axes", np, S);
        for (int i = 0; np >= 0 && i < S; i++) {
            pb[i] = p[i];
            pe[i] = p[S + i];
            if (pb[i] < 0 || pe[i] < 0 || pb[i] > (1 << 20) || pe[i] > (1 << 20))
                return fail(I, "pads of %lld and %lld are not supported (0 to 2^20)",
                            (long long)pb[i], (long long)pe[i]);
        }
        return NERVE_OK;
    }
    if (!strcmp(ap, "VALID"))
        return NERVE_OK;
    int upper = !strcmp(ap, "SAME_UPPER");
    if (!upper && strcmp(ap, "SAME_LOWER"))
        return fail(I, "auto_pad '%s' is not supported", ap);
    for (int i = 0; i < S; i++) {
        int64_t out = (in[i] + s[i] - 1) / s[i];
        int64_t total = (out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - in[i];
        if (total < 0)
            total = 0;
        pb[i] = upper ? total / 2 : total - total / 2;
        pe[i] = total - pb[i];
    }
    return NERVE_OK;
}

/* kernel, strides, dilations of S axes (defaults: kernel from k_default, 1, 1). */
static int spatial_attrs(imp *I, const onnx_node *n, int S, int64_t *k, int64_t *s, int64_t *d,
                         const int64_t *k_default)
{
    static const char *const names[] = {"kernel_shape", "strides", "dilations"};
    int64_t *dst[] = {k, s, d};
    for (int a = 0; a < 3; a++) {
        const int64_t *v;
        int nv = attr_ints(n, names[a], &v);
        if (nv >= 0 && nv != S)
            return fail(I, "%s has %d values for %d spatial axes", names[a], nv, S);
        for (int i = 0; i < S; i++) {
            dst[a][i] = nv >= 0 ? v[i] : a == 0 && k_default ? k_default[i] : 1;
            if (dst[a][i] < 1 || dst[a][i] > (1 << 20))
                return fail(I, "%s = %lld is not supported (1 to 2^20)", names[a],
                            (long long)dst[a][i]);
        }
    }
    return NERVE_OK;
}

static int op_conv(imp *I, const onnx_node *n, int transpose)
{
    ival *xv = in_val(I, n, 0), *wv = xv ? in_val(I, n, 1) : NULL;
    if (!wv)
        return nerve_last_status();
    int xn, wn;
    int64_t xd[MAXR], wd[MAXR];
    TRY(shape_of(I, xv, &xn, xd));
    TRY(shape_of(I, wv, &wn, wd));
    int S = wn - 2;
    if (S < 1 || S > 3 || xn != wn)
        return fail(I, "%d spatial axes are not supported (1 to 3)", S);
    int64_t k[3], s[3], d[3], pb[3], pe[3];
    TRY(spatial_attrs(I, n, S, k, s, d, wd + 2));
    for (int i = 0; i < S; i++)
        if (k[i] != wd[2 + i])
            return fail(I, "kernel_shape differs from the weight's");
    nerve_conv_config c = nerve_conv_default();
    c.groups = (int)attr_i(n, "group", 1);
    int x, w, b = -1;
    TRY(x = node_of(I, xv));
    TRY(w = node_of(I, wv));
    if (has_in(n, 2))
        TRY(b = in_node(I, n, 2));
    int op[3] = {0, 0, 0};
    if (!transpose) {
        TRY(spatial_pads(I, n, S, xd + 2, k, s, d, pb, pe));
    } else {
        const int64_t *v;
        int nv = attr_ints(n, "output_padding", &v);
        if (nv >= 0 && nv != S)
            return fail(I, "output_padding has %d values", nv);
        for (int i = 0; i < S; i++) {
            op[i] = nv >= 0 && v[i] >= 0 && v[i] < (1 << 20) ? (int)v[i] : 0;
            if (nv >= 0 && op[i] != v[i])
                return fail(I, "output_padding %lld is not supported", (long long)v[i]);
        }
        const int64_t *os;
        int nos = attr_ints(n, "output_shape", &os);
        const char *ap = attr_s(n, "auto_pad", "NOTSET");
        if (nos >= 0 || strcmp(ap, "NOTSET")) {
            if (nos >= 0 && nos != S)
                return fail(I, "output_shape has %d values", nos);
            int upper = !strcmp(ap, "SAME_UPPER");
            for (int i = 0; i < S; i++) {
                if (nos >= 0 && (os[i] < 1 || os[i] > (1 << 28)))
                    return fail(I, "output_shape %lld is not supported", (long long)os[i]);
                int64_t want = nos >= 0 ? os[i] : xd[2 + i] * s[i];
                if (!strcmp(ap, "VALID") && nos < 0)
                    want = (xd[2 + i] - 1) * s[i] + op[i] + (k[i] - 1) * d[i] + 1;
                int64_t total = s[i] * (xd[2 + i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - want;
                if (total < 0) {
                    op[i] += (int)-total; /* rows added at the end */
                    total = 0;
                }
                pb[i] = upper ? total / 2 : total - total / 2;
                pe[i] = total - pb[i];
            }
        } else {
            TRY(spatial_pads(I, n, S, xd + 2, k, s, d, pb, pe));
        }
    }
    for (int i = 0; i < S; i++) {
        c.stride[i] = (int)s[i];
        c.dilation[i] = (int)d[i];
        c.pad_begin[i] = (int)pb[i];
        c.pad_end[i] = (int)pe[i];
    }
    int y = transpose ? nerve_conv_transpose(I->g, x, w, b, &c, op) : nerve_conv(I->g, x, w, b, &c);
    return set_node(I, n, 0, G(y), ONNX_FLOAT);
}

static int op_pool(imp *I, const onnx_node *n, nerve_pool_type type)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    if (n->n_out > 1 && n->out[1][0])
        return fail(I, "the Indices output is not supported");
    int xn;
    int64_t xd[MAXR];
    TRY(shape_of(I, xv, &xn, xd));
    int S = xn - 2;
    if (S < 1 || S > 2)
        return fail(I, "%d spatial axes are not supported (1 or 2)", S);
    int64_t k[2], s[2], d[2], pb[2], pe[2];
    TRY(spatial_attrs(I, n, S, k, s, d, NULL));
    if (!attr(n, "kernel_shape"))
        return fail(I, "no kernel_shape");
    for (int i = 0; i < S; i++)
        if (d[i] != 1)
            return fail(I, "dilations are not supported");
    TRY(spatial_pads(I, n, S, xd + 2, k, s, d, pb, pe));
    int ceil_mode = (int)attr_i(n, "ceil_mode", 0);
    int cip = (int)attr_i(n, "count_include_pad", 0);
    int x;
    TRY(x = node_of(I, xv));
    if (S == 1) { /* [N, C, L] as [N, C, 1, L] */
        int64_t d4[4] = {xd[0], xd[1], 1, xd[2]};
        TRY(x = reshape_node(I, x, 4, d4));
        k[1] = k[0], s[1] = s[0], pb[1] = pb[0], pe[1] = pe[0];
        k[0] = s[0] = 1, pb[0] = pe[0] = 0;
    }
    nerve_pool_config c = nerve_pool_config_make(type, 1, 0, 0);
    int explicit_pad = 0;
    for (int i = 0; i < 2; i++) {
        c.kernel[i] = (int)k[i];
        c.stride[i] = (int)s[i];
        c.pad[i] = (int)pb[i];
        if (pb[i] != pe[i] || 2 * pb[i] > k[i])
            explicit_pad = 1;
    }
    if (explicit_pad) {
        if (type == NERVE_POOL_AVG && !cip)
            return fail(I, "asymmetric padding without count_include_pad is not supported");
        if (ceil_mode)
            return fail(I, "asymmetric padding with ceil_mode is not supported");
        int begin[4] = {0, 0, (int)pb[0], (int)pb[1]}, end[4] = {0, 0, (int)pe[0], (int)pe[1]};
        GTRY(x, nerve_pad(I->g, x, begin, end, 4, NERVE_PAD_CONSTANT,
                          type == NERVE_POOL_MAX ? -FLT_MAX : 0.0f));
        c.pad[0] = c.pad[1] = 0;
    }
    c.ceil_mode = ceil_mode;
    c.count_include_pad = cip;
    int y;
    GTRY(y, nerve_pool(I->g, x, &c));
    if (S == 1) {
        int nd;
        int64_t od[MAXR];
        TRY(shape_of(I, &(ival){.node = y}, &nd, od));
        int64_t d3[3] = {od[0], od[1], od[3]};
        TRY(y = reshape_node(I, y, 3, d3));
    }
    return set_node(I, n, 0, y, ONNX_FLOAT);
}

/* Reduction over an axis mask of a node; keepdim as given. */
static int reduce_nodes(imp *I, int x, const char *kind, unsigned mask, int keep, int last)
{
    return G(nerve_reduce(I->g, x, kind, mask, keep, last));
}

static int op_global_pool(imp *I, const onnx_node *n, int is_max)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd = rank_of(I, xv), x;
    TRY(x = node_of(I, xv));
    if (nd == 4) {
        nerve_pool_config c = nerve_pool_config_make(is_max ? NERVE_POOL_GLOBAL_MAX
                                                            : NERVE_POOL_GLOBAL_AVG, 1, 0, 0);
        int y;
        GTRY(y, nerve_pool(I->g, x, &c));
        int64_t d[4];
        int yn;
        TRY(shape_of(I, &(ival){.node = y}, &yn, d));
        if (yn != 4) {
            int64_t xd[MAXR];
            int xn;
            TRY(shape_of(I, xv, &xn, xd));
            int64_t od[4] = {xd[0], xd[1], 1, 1};
            TRY(y = reshape_node(I, y, 4, od));
        }
        return set_node(I, n, 0, y, ONNX_FLOAT);
    }
    if (nd < 3)
        return fail(I, "needs spatial axes");
    unsigned mask = 0;
    for (int i = 2; i < nd; i++)
        mask |= 1u << i;
    return set_node(I, n, 0, reduce_nodes(I, x, is_max ? "max" : "mean", mask, 1, 0), ONNX_FLOAT);
}

static int op_reduce(imp *I, const onnx_node *n, const char *kind)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd = rank_of(I, xv), keep = (int)attr_i(n, "keepdims", 1);
    int64_t axes[MAXR];
    int na;
    TRY(na = axes_of(I, n, 1, axes));
    int x;
    TRY(x = node_of(I, xv));
    unsigned mask = 0;
    if (na == 0 && attr_i(n, "noop_with_empty_axes", 0)) {
        int64_t d[MAXR];
        int dn;
        TRY(shape_of(I, xv, &dn, d));
        return set_node(I, n, 0, reshape_node(I, x, dn, d), xv->dtype);
    }
    if (na <= 0)
        mask = nd ? (1u << nd) - 1 : 0;
    for (int k = 0; k < na; k++) {
        int ax;
        TRY(norm_axis(I, axes[k], nd, &ax));
        mask |= 1u << ax;
    }
    if (!mask) { /* a scalar reduced over nothing */
        int64_t d[1];
        return set_node(I, n, 0, reshape_node(I, x, 0, d), xv->dtype);
    }
    return set_node(I, n, 0, reduce_nodes(I, x, kind, mask, keep, 0), xv->dtype);
}

static int op_argmax(imp *I, const onnx_node *n, int is_max)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd = rank_of(I, xv), axis, x;
    TRY(norm_axis(I, attr_i(n, "axis", 0), nd, &axis));
    TRY(x = node_of(I, xv));
    return set_node(I, n, 0,
                    reduce_nodes(I, x, is_max ? "argmax" : "argmin", 1u << axis,
                                 (int)attr_i(n, "keepdims", 1),
                                 (int)attr_i(n, "select_last_index", 0)),
                    ONNX_INT64);
}

static int op_batchnorm(imp *I, const onnx_node *n)
{
    if (attr_i(n, "training_mode", 0))
        return fail(I, "training_mode = 1 is not supported");
    if (n->n_out > 1)
        return fail(I, "the running-statistics outputs are not supported");
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int ids[5];
    TRY(ids[0] = node_of(I, xv));
    for (int k = 1; k < 5; k++) {
        ival *v = in_val(I, n, k);
        if (!v)
            return nerve_last_status();
        if (k >= 3 && v->node < 0) /* running statistics are states */
            v->force_state = 1;
        TRY(ids[k] = node_of(I, v));
    }
    float eps = attr_f(n, "epsilon", 1e-5f), mom = attr_f(n, "momentum", 0.9f);
    return set_node(I, n, 0,
                    G(nerve_batchnorm(I->g, ids[0], ids[1], ids[2], ids[3], ids[4], 1.0f - mom, eps)),
                    ONNX_FLOAT);
}

/* (x - mean) / sqrt(var + eps) over the axes of mask, keeping dims; writes mean and the
 * inverse standard deviation nodes when asked. */
static int normalize_nodes(imp *I, int x, unsigned mask, float eps, int *mean_out, int *istd_out)
{
    int mu, d, var, sd, y, e;
    TRY(mu = reduce_nodes(I, x, "mean", mask, 1, 0));
    GTRY(d, nerve_sub(I->g, x, mu));
    GTRY(var, nerve_mul(I->g, d, d));
    TRY(var = reduce_nodes(I, var, "mean", mask, 1, 0));
    GTRY(e, nerve_affine(I->g, var, 1.0f, eps));
    GTRY(sd, nerve_unary(I->g, e, "sqrt"));
    GTRY(y, nerve_div(I->g, d, sd));
    if (mean_out)
        *mean_out = mu;
    if (istd_out)
        GTRY(*istd_out, nerve_unary(I->g, sd, "reciprocal"));
    return y;
}

static int op_instance_norm(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd;
    int64_t dims[MAXR];
    TRY(shape_of(I, xv, &nd, dims));
    if (nd < 3)
        return fail(I, "needs spatial axes");
    unsigned mask = 0;
    for (int i = 2; i < nd; i++)
        mask |= 1u << i;
    int x, y, sc, b;
    TRY(x = node_of(I, xv));
    TRY(y = normalize_nodes(I, x, mask, attr_f(n, "epsilon", 1e-5f), NULL, NULL));
    int64_t cd[MAXR];
    cd[0] = dims[1];
    for (int i = 1; i < nd - 1; i++)
        cd[i] = 1;
    TRY(sc = in_node(I, n, 1));
    TRY(sc = reshape_node(I, sc, nd - 1, cd));
    TRY(b = in_node(I, n, 2));
    TRY(b = reshape_node(I, b, nd - 1, cd));
    GTRY(y, nerve_mul(I->g, y, sc));
    return set_node(I, n, 0, G(nerve_add(I->g, y, b)), ONNX_FLOAT);
}

static int op_layer_norm(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd = rank_of(I, xv), axis;
    TRY(norm_axis(I, attr_i(n, "axis", -1), nd, &axis));
    unsigned mask = 0;
    for (int i = axis; i < nd; i++)
        mask |= 1u << i;
    int x, y, mu, istd, sc;
    TRY(x = node_of(I, xv));
    TRY(y = normalize_nodes(I, x, mask, attr_f(n, "epsilon", 1e-5f), &mu, &istd));
    TRY(sc = in_node(I, n, 1));
    GTRY(y, nerve_mul(I->g, y, sc));
    if (has_in(n, 2)) {
        int b;
        TRY(b = in_node(I, n, 2));
        GTRY(y, nerve_add(I->g, y, b));
    }
    TRY(set_node(I, n, 0, y, ONNX_FLOAT));
    TRY(set_node(I, n, 1, mu, ONNX_FLOAT));
    return set_node(I, n, 2, istd, ONNX_FLOAT);
}

static int op_mvn(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd = rank_of(I, xv);
    const int64_t *a;
    int na = attr_ints(n, "axes", &a);
    static const int64_t dflt[] = {0, 2, 3};
    if (na < 0) {
        a = dflt;
        na = 3;
    }
    unsigned mask = 0;
    for (int k = 0; k < na; k++) {
        int ax;
        TRY(norm_axis(I, a[k], nd, &ax));
        mask |= 1u << ax;
    }
    int x;
    TRY(x = node_of(I, xv));
    return set_node(I, n, 0, normalize_nodes(I, x, mask, 1e-9f, NULL, NULL), ONNX_FLOAT);
}

static int op_lrn(imp *I, const onnx_node *n)
{
    int size = (int)attr_i(n, "size", 0);
    if (size < 1 || size % 2 == 0)
        return fail(I, "size %d: only odd sizes are supported", size);
    int x;
    TRY(x = in_node(I, n, 0));
    float alpha = attr_f(n, "alpha", 1e-4f), beta = attr_f(n, "beta", 0.75f),
          bias = attr_f(n, "bias", 1.0f);
    return set_node(I, n, 0, G(nerve_lrn(I->g, x, size, alpha / (float)size, beta, bias, 0)),
                    ONNX_FLOAT);
}

/* PRelu with any broadcastable slope: x < 0 ? slope x : x. */
static int op_prelu(imp *I, const onnx_node *n)
{
    int x, s, zero, neg, sx;
    TRY(x = in_node(I, n, 0));
    TRY(s = in_node(I, n, 1));
    /* a slope [C] of an input [N, C, ...] is per channel (PyTorch's exports of opset < 7) */
    ival *xv = find(I, n->in[0]), *sv = find(I, n->in[1]);
    int xn, sn;
    int64_t xd[MAXR], sd[MAXR];
    TRY(shape_of(I, xv, &xn, xd));
    TRY(shape_of(I, sv, &sn, sd));
    if (sn == 1 && xn > 2 && sd[0] == xd[1] && sd[0] != xd[xn - 1]) {
        int64_t cd[MAXR];
        cd[0] = sd[0];
        for (int i = 1; i < xn - 1; i++)
            cd[i] = 1;
        TRY(s = reshape_node(I, s, xn - 1, cd));
    }
    TRY(zero = scalar_node(I, 0));
    GTRY(neg, nerve_binary(I->g, "less", x, zero));
    GTRY(sx, nerve_mul(I->g, x, s));
    return set_node(I, n, 0, G(nerve_where(I->g, neg, sx, x)), ONNX_FLOAT);
}

static int op_celu(imp *I, const onnx_node *n)
{
    float alpha = attr_f(n, "alpha", 1.0f);
    int x, pos, e, neg, zero;
    TRY(x = in_node(I, n, 0));
    TRY(zero = scalar_node(I, 0));
    GTRY(pos, nerve_binary(I->g, "maximum", x, zero));
    GTRY(e, nerve_affine(I->g, x, 1.0f / alpha, 0.0f));
    GTRY(e, nerve_unary(I->g, e, "exp"));
    GTRY(e, nerve_affine(I->g, e, alpha, -alpha));
    GTRY(neg, nerve_binary(I->g, "minimum", e, zero));
    return set_node(I, n, 0, G(nerve_add(I->g, pos, neg)), ONNX_FLOAT);
}

static int op_thresholded_relu(imp *I, const onnx_node *n)
{
    int x, t, m;
    TRY(x = in_node(I, n, 0));
    TRY(t = scalar_node(I, attr_f(n, "alpha", 1.0f)));
    GTRY(m, nerve_binary(I->g, "greater", x, t));
    return set_node(I, n, 0, G(nerve_mul(I->g, x, m)), ONNX_FLOAT);
}

static int op_hardswish(imp *I, const onnx_node *n)
{
    int x, h;
    TRY(x = in_node(I, n, 0));
    nerve_act a = {NERVE_ACT_HARD_SIGMOID, 1.0f / 6.0f, 0.5f};
    GTRY(h, nerve_activation(I->g, x, a));
    return set_node(I, n, 0, G(nerve_mul(I->g, x, h)), ONNX_FLOAT);
}

static int op_shrink(imp *I, const onnx_node *n)
{
    float l = attr_f(n, "lambd", 0.5f), b = attr_f(n, "bias", 0.0f);
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int x, lo, hi, c1, c2, xm, xp, zero, y;
    TRY(x = node_of(I, xv));
    TRY(lo = scalar_node(I, -l));
    TRY(hi = scalar_node(I, l));
    TRY(zero = scalar_node(I, 0));
    GTRY(c1, nerve_binary(I->g, "less", x, lo));
    GTRY(c2, nerve_binary(I->g, "greater", x, hi));
    GTRY(xp, nerve_affine(I->g, x, 1.0f, b));
    GTRY(xm, nerve_affine(I->g, x, 1.0f, -b));
    GTRY(y, nerve_where(I->g, c2, xm, zero));
    GTRY(y, nerve_where(I->g, c1, xp, y));
    if (is_int_dtype(xv->dtype))
        GTRY(y, nerve_unary(I->g, y, "trunc"));
    return set_node(I, n, 0, y, xv->dtype);
}

static int op_isinf(imp *I, const onnx_node *n)
{
    int pos = (int)attr_i(n, "detect_positive", 1), neg = (int)attr_i(n, "detect_negative", 1);
    int x, y, zero, s;
    TRY(x = in_node(I, n, 0));
    GTRY(y, nerve_unary(I->g, x, "isinf"));
    if (pos != neg) {
        TRY(zero = scalar_node(I, 0));
        GTRY(s, nerve_binary(I->g, pos ? "greater" : "less", x, zero));
        GTRY(y, nerve_mul(I->g, y, s));
    } else if (!pos) {
        GTRY(y, nerve_affine(I->g, y, 0.0f, 0.0f));
    }
    return set_node(I, n, 0, y, ONNX_BOOL);
}

static int op_trilu(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd;
    int64_t dims[MAXR];
    TRY(shape_of(I, xv, &nd, dims));
    if (nd < 2)
        return fail(I, "needs rank 2 or more");
    int64_t k = 0;
    if (has_in(n, 1)) {
        ival *kv = in_const(I, n, 1);
        if (!kv)
            return nerve_last_status();
        k = to_i64(kv->c[0]);
    }
    int upper = (int)attr_i(n, "upper", 1);
    int64_t R = dims[nd - 2], C = dims[nd - 1];
    double *mask = dalloc((size_t)(R * C));
    if (!mask)
        return NERVE_ERR_NOMEM;
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++)
            mask[i * C + j] = upper ? (j - i >= k) : (j - i <= k);
    int64_t md[2] = {R, C};
    int m = const_node(I, 2, md, mask, "trilu_mask");
    nerve_xfree(mask);
    TRY(m);
    int x;
    TRY(x = node_of(I, xv));
    return set_node(I, n, 0, G(nerve_mul(I->g, x, m)), xv->dtype);
}

static int op_cumsum(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0), *av = xv ? in_const(I, n, 1) : NULL;
    if (!av)
        return nerve_last_status();
    int x, axis;
    TRY(norm_axis(I, to_i64(av->c[0]), rank_of(I, xv), &axis));
    TRY(x = node_of(I, xv));
    return set_node(I, n, 0,
                    G(nerve_cumsum(I->g, x, axis, (int)attr_i(n, "exclusive", 0),
                                   (int)attr_i(n, "reverse", 0))),
                    xv->dtype);
}

static int op_pad(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd = rank_of(I, xv);
    int64_t pads[2 * MAXR];
    int np;
    float value = 0;
    if (I->m->opset < 11) {
        const int64_t *p;
        np = attr_ints(n, "pads", &p);
        if (np < 0 || np > 2 * MAXR)
            return fail(I, "no pads");
        copy_i64(pads, p, np);
        value = attr_f(n, "value", 0.0f);
    } else {
        ival *pv = in_const(I, n, 1);
        if (!pv)
            return nerve_last_status();
        TRY(np = const_ints(I, pv, pads, 2 * MAXR));
        if (has_in(n, 2)) {
            ival *cv = in_const(I, n, 2);
            if (!cv)
                return nerve_last_status();
            value = (float)cv->c[0];
        }
        if (has_in(n, 3))
            return fail(I, "the axes input is not supported");
    }
    if (np != 2 * nd)
        return fail(I, "%d pads for rank %d", np, nd);
    const char *mode = attr_s(n, "mode", "constant");
    nerve_pad_mode m = !strcmp(mode, "reflect") ? NERVE_PAD_REFLECT
                       : !strcmp(mode, "edge")  ? NERVE_PAD_EDGE
                                                : NERVE_PAD_CONSTANT;
    if (m == NERVE_PAD_CONSTANT && strcmp(mode, "constant"))
        return fail(I, "mode '%s' is not supported", mode);
    int begin[NERVE_MAX_DIMS], end[NERVE_MAX_DIMS];
    if (nd > NERVE_MAX_DIMS || nd < 1)
        return fail(I, "rank %d is not supported", nd);
    for (int i = 0; i < nd; i++) {
        begin[i] = (int)pads[i];
        end[i] = (int)pads[nd + i];
    }
    int x;
    TRY(x = node_of(I, xv));
    return set_node(I, n, 0, G(nerve_pad(I->g, x, begin, end, nd, m, value)), xv->dtype);
}

static int op_depth_to_space(imp *I, const onnx_node *n, int inverse)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int b = (int)attr_i(n, "blocksize", 0), x;
    TRY(x = node_of(I, xv));
    const char *mode = attr_s(n, "mode", "DCR");
    if (inverse || !strcmp(mode, "DCR"))
        return set_node(I, n, 0,
                        G(inverse ? nerve_space_to_depth(I->g, x, b) : nerve_depth_to_space(I->g, x, b)),
                        xv->dtype);
    if (strcmp(mode, "CRD"))
        return fail(I, "mode '%s' is not supported", mode);
    int64_t d[MAXR];
    int nd;
    TRY(shape_of(I, xv, &nd, d));
    if (nd != 4 || b < 1 || d[1] % ((int64_t)b * b))
        return fail(I, "needs [N, C b^2, H, W]");
    int64_t C = d[1] / b / b, d6[6] = {d[0], C, b, b, d[2], d[3]},
            out[4] = {d[0], C, d[2] * b, d[3] * b};
    TRY(x = reshape_node(I, x, 6, d6));
    GTRY(x, nerve_transpose(I->g, x, (int[]){0, 1, 4, 2, 5, 3}));
    return set_node(I, n, 0, reshape_node(I, x, 4, out), xv->dtype);
}

/* Resize / Upsample: nearest with integer scales (asymmetric coordinates, floor or any
 * rounding that agrees for integer factors) and linear with integer scales and half_pixel
 * or pytorch_half_pixel coordinates, on the two last axes; anything else is refused. */
static int op_resize(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd;
    int64_t d[MAXR];
    TRY(shape_of(I, xv, &nd, d));
    double scales[MAXR];
    int have = 0;
    if (!strcmp(n->op_type, "Upsample") && I->m->opset < 9) {
        const onnx_attr *a = attr(n, "scales");
        if (!a || a->n_floats != nd)
            return fail(I, "scales missing");
        for (int i = 0; i < nd; i++)
            scales[i] = a->floats[i];
        have = 1;
    } else {
        int si = !strcmp(n->op_type, "Upsample") ? 1 : I->m->opset >= 11 ? 2 : 1;
        if (has_in(n, si)) {
            ival *s = in_const(I, n, si);
            if (!s)
                return nerve_last_status();
            if (s->n == (size_t)nd) {
                for (int i = 0; i < nd; i++)
                    scales[i] = s->c[i];
                have = 1;
            } else if (s->n) {
                return fail(I, "%zu scales for rank %d", s->n, nd);
            }
        }
        if (!have && has_in(n, 3)) {
            ival *s = in_const(I, n, 3);
            if (!s)
                return nerve_last_status();
            if (s->n != (size_t)nd)
                return fail(I, "%zu sizes for rank %d", s->n, nd);
            for (int i = 0; i < nd; i++)
                scales[i] = s->c[i] / (double)d[i];
            have = 1;
        }
    }
    if (!have)
        return fail(I, "no scales or sizes");
    if (nd < 3)
        return fail(I, "needs spatial axes");
    for (int i = 0; i < 2; i++)
        if (scales[i] != 1)
            return fail(I, "scaling the batch or channel axis is not supported");
    double sc = scales[2];
    for (int i = 2; i < nd; i++)
        if (scales[i] != sc)
            return fail(I, "unequal scales are not supported");
    if (sc < 1 || sc != floor(sc) || sc > 64)
        return fail(I, "scale %g is not supported (integer upscaling only)", sc);
    const char *mode = attr_s(n, "mode", "nearest");
    const char *ct = attr_s(n, "coordinate_transformation_mode", "half_pixel");
    const char *nm = attr_s(n, "nearest_mode", "round_prefer_floor");
    nerve_upsample_mode um;
    if (!strcmp(mode, "nearest")) {
        if (!strcmp(n->op_type, "Resize") && I->m->opset >= 11 &&
            !(!strcmp(ct, "asymmetric") && !strcmp(nm, "floor")) &&
            !(!strcmp(ct, "half_pixel") && sc == 1))
            /* only asymmetric + floor copies each value into its block for every factor */
            if (!((!strcmp(ct, "asymmetric") || !strcmp(ct, "tf_half_pixel_for_nn")) &&
                  !strcmp(nm, "floor")))
                return fail(I, "nearest with %s / %s is not supported (asymmetric + floor is)", ct, nm);
        um = NERVE_UPSAMPLE_NEAREST;
    } else if (!strcmp(mode, "linear") || !strcmp(mode, "bilinear")) {
        if (!strcmp(n->op_type, "Resize") && I->m->opset >= 11 && strcmp(ct, "half_pixel") &&
            strcmp(ct, "pytorch_half_pixel"))
            return fail(I, "linear with %s is not supported (half_pixel is)", ct);
        if (!strcmp(n->op_type, "Upsample") || I->m->opset < 11)
            return fail(I, "linear with asymmetric coordinates is not supported");
        if (nd != 4)
            return fail(I, "linear needs [N, C, H, W]");
        um = NERVE_UPSAMPLE_BILINEAR;
    } else {
        return fail(I, "mode '%s' is not supported", mode);
    }
    int x;
    TRY(x = node_of(I, xv));
    if (nd != 3 && nd != 4)
        return fail(I, "rank %d is not supported", nd);
    return set_node(I, n, 0, G(nerve_upsample(I->g, x, (int)sc, um)), xv->dtype);
}

static int op_onehot(imp *I, const onnx_node *n)
{
    ival *iv = in_val(I, n, 0), *dv = iv ? in_const(I, n, 1) : NULL, *vv = dv ? in_const(I, n, 2) : NULL;
    if (!vv)
        return nerve_last_status();
    int64_t depth = to_i64(dv->c[0]);
    if (depth < 1 || depth > (1 << 20) || vv->n != 2)
        return fail(I, "depth %lld or values not supported", (long long)depth);
    int nd;
    int64_t d[MAXR];
    TRY(shape_of(I, iv, &nd, d));
    int axis;
    TRY(norm_axis(I, attr_i(n, "axis", -1), nd + 1, &axis));
    int x, r, eq, on, off, wrapped, dn, y;
    TRY(x = node_of(I, iv));
    /* negative indices count from the end: x + depth * (x < 0) */
    int zero, neg, ud[MAXR];
    (void)ud;
    TRY(zero = scalar_node(I, 0));
    TRY(dn = scalar_node(I, (double)depth));
    GTRY(neg, nerve_binary(I->g, "less", x, zero));
    GTRY(neg, nerve_mul(I->g, neg, dn));
    GTRY(wrapped, nerve_add(I->g, x, neg));
    int64_t ud2[MAXR];
    for (int i = 0, j = 0; i <= nd; i++)
        ud2[i] = i == axis ? 1 : d[j++];
    TRY(wrapped = reshape_node(I, wrapped, nd + 1, ud2));
    double *rng = dalloc((size_t)depth);
    if (!rng)
        return NERVE_ERR_NOMEM;
    for (int64_t k = 0; k < depth; k++)
        rng[k] = (double)k;
    int64_t rd[MAXR];
    for (int i = 0; i <= nd; i++)
        rd[i] = i == axis ? depth : 1;
    r = const_node(I, nd + 1, rd, rng, "onehot_range");
    nerve_xfree(rng);
    TRY(r);
    GTRY(eq, nerve_binary(I->g, "equal", wrapped, r));
    TRY(on = scalar_node(I, vv->c[1]));
    TRY(off = scalar_node(I, vv->c[0]));
    GTRY(y, nerve_where(I->g, eq, on, off));
    return set_node(I, n, 0, y, vv->dtype);
}

/* NegativeLogLikelihoodLoss on log-probabilities x [N, C, d...] and targets [N, d...]
 * (reduction none / sum / mean, optional class weights, ignore_index). */
static int nll_nodes(imp *I, const onnx_node *n, int x, int xdtype, int *out)
{
    (void)xdtype;
    ival *tv = in_val(I, n, 1);
    if (!tv)
        return nerve_last_status();
    int nd;
    int64_t d[MAXR];
    TRY(shape_of(I, tv, &nd, d));
    int t, y, wsel = -1, mask = -1;
    TRY(t = node_of(I, tv));
    const onnx_attr *ia = attr(n, "ignore_index");
    if (ia) {
        int ii, zero, keep;
        TRY(ii = scalar_node(I, (double)ia->i));
        TRY(zero = scalar_node(I, 0));
        GTRY(keep, nerve_binary(I->g, "equal", t, ii));
        GTRY(t, nerve_where(I->g, keep, zero, t)); /* an index that gathers safely */
        GTRY(mask, nerve_unary(I->g, keep, "not"));
    }
    int64_t ud[MAXR];
    ud[0] = d[0];
    ud[1] = 1;
    for (int i = 1; i < nd; i++)
        ud[i + 1] = d[i];
    int tu;
    TRY(tu = reshape_node(I, t, nd + 1, ud));
    GTRY(y, nerve_gather_elements(I->g, x, tu, 1));
    TRY(y = reshape_node(I, y, nd, d));
    GTRY(y, nerve_unary(I->g, y, "neg"));
    if (has_in(n, 2)) {
        int w;
        TRY(w = in_node(I, n, 2));
        GTRY(wsel, nerve_gather(I->g, w, t, 0));
    }
    if (mask >= 0 && wsel >= 0)
        GTRY(wsel, nerve_mul(I->g, wsel, mask));
    else if (mask >= 0)
        wsel = mask;
    if (wsel >= 0)
        GTRY(y, nerve_mul(I->g, y, wsel));
    const char *red = attr_s(n, "reduction", "mean");
    unsigned all = (1u << nd) - 1;
    if (!strcmp(red, "none")) {
        *out = y;
        return NERVE_OK;
    }
    GTRY(y, nerve_reduce(I->g, y, "sum", all, 0, 0));
    if (!strcmp(red, "sum")) {
        *out = y;
        return NERVE_OK;
    }
    if (strcmp(red, "mean"))
        return fail(I, "reduction '%s' is not supported", red);
    if (wsel >= 0) {
        int den;
        GTRY(den, nerve_reduce(I->g, wsel, "sum", all, 0, 0));
        GTRY(y, nerve_div(I->g, y, den));
    } else {
        GTRY(y, nerve_affine(I->g, y, 1.0f / (float)numel64(nd, d), 0.0f));
    }
    *out = y;
    return NERVE_OK;
}

static int op_nll(imp *I, const onnx_node *n)
{
    int x, y;
    TRY(x = in_node(I, n, 0));
    TRY(nll_nodes(I, n, x, ONNX_FLOAT, &y));
    return set_node(I, n, 0, y, ONNX_FLOAT);
}

static int op_sce(imp *I, const onnx_node *n)
{
    int x, lp, y;
    TRY(x = in_node(I, n, 0));
    GTRY(lp, nerve_log_softmax(I->g, x, 1));
    TRY(nll_nodes(I, n, lp, ONNX_FLOAT, &y));
    TRY(set_node(I, n, 0, y, ONNX_FLOAT));
    return set_node(I, n, 1, lp, ONNX_FLOAT);
}

static int op_eyelike(imp *I, const onnx_node *n)
{
    ival *xv = in_val(I, n, 0);
    if (!xv)
        return nerve_last_status();
    int nd;
    int64_t d[MAXR];
    TRY(shape_of(I, xv, &nd, d));
    if (nd != 2)
        return fail(I, "needs a 2-D input");
    int64_t k = attr_i(n, "k", 0);
    double *y = dalloc((size_t)(d[0] * d[1]));
    if (!y)
        return NERVE_ERR_NOMEM;
    for (int64_t i = 0; i < d[0]; i++)
        for (int64_t j = 0; j < d[1]; j++)
            y[i * d[1] + j] = j - i == k;
    return set_const(I, n, 0, (int)attr_i(n, "dtype", xv->dtype), 2, d, y);
}

/* ---- recurrent layers ---------------------------------------------------------------------- */

/* A parameter from rows of a constant W [D, G*H, cols]: direction d, its G gate blocks of
 * H rows taken in the order `perm` (ONNX's gate order to nerve's), rows `offset` blocks in
 * (the recurrent bias half of B); nerve's block `neg` (-1: none) negated. */
static int gate_rows(imp *I, ival *v, int d, int G, int H, int64_t cols, const int *perm,
                     int offset, int neg, const char *what)
{
    TRY(const_data(I, v));
    int64_t dims[2] = {(int64_t)G * H, cols};
    size_t per_dir = v->n / (size_t)v->dims[0];
    double *c = dalloc((size_t)(G * H) * (size_t)cols);
    if (!c)
        return NERVE_ERR_NOMEM;
    for (int g = 0; g < G; g++)
        for (int r = 0; r < H; r++)
            for (int64_t k = 0; k < cols; k++)
                c[((size_t)g * H + r) * (size_t)cols + (size_t)k] =
                    (g == neg ? -1.0 : 1.0) *
                    v->c[(size_t)d * per_dir + ((size_t)(perm[g] + offset * G) * H + r) * (size_t)cols + (size_t)k];
    char name[64];
    snprintf(name, sizeof name, "%.40s.%s%d", v->name, what, d);
    int nd = cols == 1 ? 1 : 2;
    int id = const_node_kind(I, nd, dims, c, name, v->init != NULL); /* initializers: trainable */
    nerve_xfree(c);
    return id;
}

/* LSTM, GRU and RNN (layout 0: X [T, N, F]) onto nerve's fused recurrent operator: gates
 * reordered from ONNX's (LSTM i o f c, GRU z r h) to nerve's (i f g o, r z n); forward or
 * bidirectional; default activations only. input_forget = 1 couples the gates as ONNX
 * Runtime does, f = 1 - i, where nerve's coupled LSTM computes f and takes i = 1 - f: nerve's
 * f gate is then ONNX's i gate with every weight, bias and peephole negated (sigmoid(-z) =
 * 1 - sigmoid(z)), and its ignored i rows hold ONNX's ignored f rows. */
static int op_recurrent(imp *I, const onnx_node *n)
{
    const char *op = n->op_type;
    int is_lstm = !strcmp(op, "LSTM"), is_gru = !strcmp(op, "GRU");
    int G = is_lstm ? 4 : is_gru ? 3 : 1;
    static const int lstm_perm[4] = {0, 2, 3, 1}; /* nerve i f g o from ONNX i o f c */
    static const int gru_perm[3] = {1, 0, 2};      /* nerve r z n from ONNX z r h */
    static const int rnn_perm[1] = {0};
    static const int coupled_perm[4] = {2, 0, 3, 1}; /* nerve i f g o from ONNX f i c o */
    const int *perm = is_lstm ? lstm_perm : is_gru ? gru_perm : rnn_perm;
    const char *dir = attr_s(n, "direction", "forward");
    int D = !strcmp(dir, "bidirectional") ? 2 : 1;
    if (strcmp(dir, "forward") && D == 1)
        return fail(I, "direction '%s' is not supported (forward, bidirectional)", dir);
    int batch_first = (int)attr_i(n, "layout", 0);
    if (attr(n, "clip"))
        return fail(I, "clip is not supported");
    const onnx_attr *acts = attr(n, "activations");
    if (acts && acts->n_strings)
        return fail(I, "explicit activations are not supported (the defaults are)");
    int H = (int)attr_i(n, "hidden_size", 0);
    ival *xv = in_val(I, n, 0), *wv = xv ? in_const(I, n, 1) : NULL, *rv = wv ? in_const(I, n, 2) : NULL;
    if (!rv)
        return nerve_last_status();
    int64_t xd[MAXR];
    int xn;
    TRY(shape_of(I, xv, &xn, xd));
    if (xn == 3 && batch_first) { /* layout 1: X [N, T, F] */
        int64_t t = xd[0];
        xd[0] = xd[1];
        xd[1] = t;
    }
    if (xn != 3 || wv->ndim != 3 || rv->ndim != 3 || wv->dims[0] != D || rv->dims[0] != D ||
        H < 1 || wv->dims[1] != (int64_t)G * H || rv->dims[1] != (int64_t)G * H ||
        rv->dims[2] != H || wv->dims[2] != xd[2])
        return fail(I, "X, W, R or hidden_size do not fit together");
    nerve_rnn_config cfg = {0};
    cfg.cell = is_lstm ? NERVE_CELL_LSTM : is_gru ? NERVE_CELL_GRU : NERVE_CELL_RNN;
    cfg.hidden = H;
    cfg.bidirectional = D == 2;
    cfg.return_sequences = 1;
    cfg.gru_form = attr_i(n, "linear_before_reset", 0) ? NERVE_GRU_LINEAR_BEFORE_RESET : NERVE_GRU_COURSE;
    int neg = -1;
    if (is_lstm && attr_i(n, "input_forget", 0)) {
        cfg.lstm_flags |= NERVE_LSTM_COUPLED;
        perm = coupled_perm;
        neg = 1; /* nerve's f = 1 - ONNX's i */
    }
    nerve_rnn_params p;
    for (int d = 0; d < 2; d++)
        p.w_ih[d] = p.w_hh[d] = p.b_ih[d] = p.b_hh[d] = p.peephole[d] = -1;
    ival *bv = NULL, *pv = NULL;
    if (has_in(n, 3) && !(bv = in_const(I, n, 3)))
        return nerve_last_status();
    if (bv && (bv->ndim != 2 || bv->dims[0] != D || bv->dims[1] != 2LL * G * H))
        return fail(I, "B must be [%d, %d]", D, 2 * G * H);
    if (is_lstm && has_in(n, 7)) {
        if (!(pv = in_const(I, n, 7)))
            return nerve_last_status();
        if (pv->ndim != 2 || pv->dims[0] != D || pv->dims[1] != 3LL * H)
            return fail(I, "P must be [%d, %d]", D, 3 * H);
        cfg.lstm_flags |= NERVE_LSTM_PEEPHOLE;
    }
    if ((bv && const_data(I, bv) < 0) || (pv && const_data(I, pv) < 0))
        return nerve_last_status();
    for (int d = 0; d < D; d++) {
        TRY(p.w_ih[d] = gate_rows(I, wv, d, G, H, wv->dims[2], perm, 0, neg, "w"));
        TRY(p.w_hh[d] = gate_rows(I, rv, d, G, H, H, perm, 0, neg, "r"));
        if (bv) {
            /* B [D, 2GH] as [D, 2G blocks of H, 1] */
            ival b1 = *bv;
            b1.ndim = 3;
            b1.dims[1] = 2LL * G * H;
            b1.dims[2] = 1;
            TRY(p.b_ih[d] = gate_rows(I, &b1, d, G, H, 1, perm, 0, neg, "wb"));
            TRY(p.b_hh[d] = gate_rows(I, &b1, d, G, H, 1, perm, 1, neg, "rb"));
        }
        if (pv) {
            static const int peep_perm[3] = {0, 2, 1}; /* nerve i f o from ONNX i o f */
            static const int coupled_peep[3] = {2, 0, 1}; /* (coupled) from ONNX f i o */
            ival p1 = *pv;
            p1.ndim = 3;
            p1.dims[1] = 3LL * H;
            p1.dims[2] = 1;
            int id;
            TRY(id = gate_rows(I, &p1, d, 3, H, 1, neg >= 0 ? coupled_peep : peep_perm, 0, neg, "p"));
            int64_t pd[2] = {3, H};
            TRY(p.peephole[d] = reshape_node(I, id, 2, pd));
        }
    }
    int x, lengths = -1, h0 = -1, c0 = -1;
    static const int swap01[3] = {1, 0, 2};
    TRY(x = node_of(I, xv));
    if (batch_first)
        GTRY(x, nerve_transpose(I->g, x, swap01));
    if (has_in(n, 4))
        TRY(lengths = in_node(I, n, 4));
    if (has_in(n, 5))
        TRY(h0 = in_node(I, n, 5));
    if (is_lstm && has_in(n, 6))
        TRY(c0 = in_node(I, n, 6));
    if (batch_first && h0 >= 0) /* [N, D, H] -> [D, N, H] */
        GTRY(h0, nerve_transpose(I->g, h0, swap01));
    if (batch_first && c0 >= 0)
        GTRY(c0, nerve_transpose(I->g, c0, swap01));
    int y;
    GTRY(y, nerve_rnn(I->g, x, lengths, h0, c0, &p, &cfg));
    /* Y [T, N, D*H] -> [T, D, N, H] (layout 1: [N, T, D, H]) */
    int64_t d4[4] = {xd[0], xd[1], D, H};
    int yy;
    TRY(yy = reshape_node(I, y, 4, d4));
    GTRY(yy, nerve_transpose(I->g, yy, batch_first ? (int[]){1, 0, 2, 3} : (int[]){0, 2, 1, 3}));
    TRY(set_node(I, n, 0, yy, ONNX_FLOAT));
    for (int k = 1; k <= (is_lstm ? 2 : 1); k++) {
        if (n->n_out <= k || !n->out[k][0])
            continue;
        int st;
        GTRY(st, nerve_rnn_state(I->g, y, k - 1));
        if (batch_first)
            GTRY(st, nerve_transpose(I->g, st, swap01));
        TRY(set_node(I, n, k, st, ONNX_FLOAT));
    }
    return NERVE_OK;
}

/* ---- the operator table ------------------------------------------------------------------- */

typedef struct unary_map {
    const char *onnx, *nerve;
} unary_map;

static const unary_map unary_ops[] = {
    {"Abs", "abs"}, {"Neg", "neg"}, {"Exp", "exp"}, {"Log", "log"}, {"Sqrt", "sqrt"},
    {"Reciprocal", "reciprocal"}, {"Sin", "sin"}, {"Cos", "cos"}, {"Tan", "tan"},
    {"Asin", "asin"}, {"Acos", "acos"}, {"Atan", "atan"}, {"Sinh", "sinh"}, {"Cosh", "cosh"},
    {"Asinh", "asinh"}, {"Acosh", "acosh"}, {"Atanh", "atanh"}, {"Erf", "erf"},
    {"Floor", "floor"}, {"Ceil", "ceil"}, {"Round", "round"}, {"Sign", "sign"}, {"Not", "not"},
    {"IsNaN", "isnan"}};

static int build_node(imp *I, const onnx_node *n)
{
    const char *op = n->op_type;
    if (n->domain[0] && strcmp(n->domain, "ai.onnx"))
        return fail(I, "domain '%s' is not supported", n->domain);
    int f = try_fold(I, n);
    if (f != 0)
        return f < 0 ? nerve_last_status() : NERVE_OK;
    for (size_t k = 0; k < NERVE_ARRAY_LEN(unary_ops); k++)
        if (!strcmp(op, unary_ops[k].onnx)) {
            ival *v = in_val(I, n, 0);
            if (!v)
                return nerve_last_status();
            int dt = !strcmp(op, "Not") || !strcmp(op, "IsNaN") ? ONNX_BOOL : v->dtype;
            int x;
            TRY(x = node_of(I, v));
            return set_node(I, n, 0, G(nerve_unary(I->g, x, unary_ops[k].nerve)), dt);
        }
    if (nerve_binary_name(n))
        return op_binary(I, n);
    if (!strcmp(op, "Relu")) return act_out(I, n, NERVE_ACT_RELU, NAN, NAN);
    if (!strcmp(op, "Sigmoid")) return act_out(I, n, NERVE_ACT_SIGMOID, 1.0f, NAN);
    if (!strcmp(op, "Tanh")) return act_out(I, n, NERVE_ACT_TANH, NAN, NAN);
    if (!strcmp(op, "LeakyRelu")) return act_out(I, n, NERVE_ACT_LEAKY_RELU, attr_f(n, "alpha", 0.01f), NAN);
    if (!strcmp(op, "Elu")) return act_out(I, n, NERVE_ACT_ELU, attr_f(n, "alpha", 1.0f), NAN);
    if (!strcmp(op, "Selu"))
        return act_out(I, n, NERVE_ACT_SELU, attr_f(n, "alpha", 1.67326319217681884765625f),
                       attr_f(n, "gamma", 1.05070102214813232421875f));
    if (!strcmp(op, "HardSigmoid"))
        return act_out(I, n, NERVE_ACT_HARD_SIGMOID, attr_f(n, "alpha", 0.2f), attr_f(n, "beta", 0.5f));
    if (!strcmp(op, "Softplus")) return act_out(I, n, NERVE_ACT_SOFTPLUS, NAN, NAN);
    if (!strcmp(op, "Softsign")) return act_out(I, n, NERVE_ACT_SOFTSIGN, NAN, NAN);
    if (!strcmp(op, "Celu")) return op_celu(I, n);
    if (!strcmp(op, "ThresholdedRelu")) return op_thresholded_relu(I, n);
    if (!strcmp(op, "HardSwish")) return op_hardswish(I, n);
    if (!strcmp(op, "Shrink")) return op_shrink(I, n);
    if (!strcmp(op, "IsInf")) return op_isinf(I, n);
    if (!strcmp(op, "PRelu")) return op_prelu(I, n);
    if (!strcmp(op, "Softmax")) return op_softmax(I, n, 0);
    if (!strcmp(op, "LogSoftmax")) return op_softmax(I, n, 1);
    if (!strcmp(op, "Identity")) return op_identity(I, n);
    if (!strcmp(op, "Dropout")) return op_dropout(I, n);
    if (!strcmp(op, "Cast") || !strcmp(op, "CastLike")) return op_cast(I, n);
    if (!strcmp(op, "Reshape")) return op_reshape_like(I, n, reshape_shape);
    if (!strcmp(op, "Flatten")) return op_reshape_like(I, n, flatten_shape);
    if (!strcmp(op, "Squeeze")) return op_reshape_like(I, n, squeeze_shape);
    if (!strcmp(op, "Unsqueeze")) return op_reshape_like(I, n, unsqueeze_shape);
    if (!strcmp(op, "Transpose")) return op_transpose(I, n);
    if (!strcmp(op, "Concat")) return op_concat(I, n);
    if (!strcmp(op, "Slice")) return op_slice(I, n);
    if (!strcmp(op, "Split")) return op_split(I, n);
    if (!strcmp(op, "Gather")) return op_gather(I, n, 0);
    if (!strcmp(op, "GatherElements")) return op_gather(I, n, 1);
    if (!strcmp(op, "Expand")) return op_expand(I, n);
    if (!strcmp(op, "Tile")) return op_tile(I, n);
    if (!strcmp(op, "Where")) return op_where(I, n);
    if (!strcmp(op, "Clip")) return op_clip(I, n);
    if (!strcmp(op, "MatMul")) return op_matmul(I, n);
    if (!strcmp(op, "Gemm")) return op_gemm(I, n);
    if (!strcmp(op, "Conv")) return op_conv(I, n, 0);
    if (!strcmp(op, "ConvTranspose")) return op_conv(I, n, 1);
    if (!strcmp(op, "MaxPool")) return op_pool(I, n, NERVE_POOL_MAX);
    if (!strcmp(op, "AveragePool")) return op_pool(I, n, NERVE_POOL_AVG);
    if (!strcmp(op, "GlobalAveragePool")) return op_global_pool(I, n, 0);
    if (!strcmp(op, "GlobalMaxPool")) return op_global_pool(I, n, 1);
    if (!strcmp(op, "BatchNormalization")) return op_batchnorm(I, n);
    if (!strcmp(op, "InstanceNormalization")) return op_instance_norm(I, n);
    if (!strcmp(op, "LayerNormalization")) return op_layer_norm(I, n);
    if (!strcmp(op, "MeanVarianceNormalization")) return op_mvn(I, n);
    if (!strcmp(op, "LRN")) return op_lrn(I, n);
    if (!strcmp(op, "ReduceSum")) return op_reduce(I, n, "sum");
    if (!strcmp(op, "ReduceMean")) return op_reduce(I, n, "mean");
    if (!strcmp(op, "ReduceMax")) return op_reduce(I, n, "max");
    if (!strcmp(op, "ReduceMin")) return op_reduce(I, n, "min");
    if (!strcmp(op, "ReduceProd")) return op_reduce(I, n, "prod");
    if (!strcmp(op, "ReduceL1")) return op_reduce(I, n, "l1");
    if (!strcmp(op, "ReduceL2")) return op_reduce(I, n, "l2");
    if (!strcmp(op, "ReduceSumSquare")) return op_reduce(I, n, "sum_square");
    if (!strcmp(op, "ReduceLogSum")) return op_reduce(I, n, "log_sum");
    if (!strcmp(op, "ReduceLogSumExp")) return op_reduce(I, n, "log_sum_exp");
    if (!strcmp(op, "ArgMax")) return op_argmax(I, n, 1);
    if (!strcmp(op, "ArgMin")) return op_argmax(I, n, 0);
    if (!strcmp(op, "Trilu")) return op_trilu(I, n);
    if (!strcmp(op, "CumSum")) return op_cumsum(I, n);
    if (!strcmp(op, "Pad")) return op_pad(I, n);
    if (!strcmp(op, "DepthToSpace")) return op_depth_to_space(I, n, 0);
    if (!strcmp(op, "SpaceToDepth")) return op_depth_to_space(I, n, 1);
    if (!strcmp(op, "Resize") || !strcmp(op, "Upsample")) return op_resize(I, n);
    if (!strcmp(op, "OneHot")) return op_onehot(I, n);
    if (!strcmp(op, "NegativeLogLikelihoodLoss")) return op_nll(I, n);
    if (!strcmp(op, "SoftmaxCrossEntropyLoss")) return op_sce(I, n);
    if (!strcmp(op, "EyeLike")) return op_eyelike(I, n);
    if (!strcmp(op, "LSTM") || !strcmp(op, "GRU") || !strcmp(op, "RNN")) return op_recurrent(I, n);
    return fail(I, "operator %s is not supported", op);
}

/* ---- the model --------------------------------------------------------------------------------- */

static int add_inputs(imp *I)
{
    const onnx_model *pm = I->pm;
    nerve_onnx *m = I->m;
    for (int k = 0; k < pm->n_inputs; k++) {
        const onnx_value_info *vi = &pm->inputs[k];
        int is_init = 0;
        for (int j = 0; j < pm->n_init && !is_init; j++)
            is_init = !strcmp(pm->init[j].name, vi->name);
        if (is_init)
            continue; /* an initializer listed as an input (IR < 4): a constant */
        int bound = -1;
        for (int j = 0; j < I->n_bind && bound < 0; j++)
            if (I->bind_names[j] && !strcmp(I->bind_names[j], vi->name))
                bound = j;
        if (bound >= 0) { /* a value given at import: a constant */
            const nerve_tensor *t = &I->bind_values[bound];
            if (t->ndim < 0 || t->ndim > MAXR || (nerve_tensor_numel(t) && !t->data))
                return fail(I, "the value bound to input '%s' is malformed", vi->name);
            int64_t d64[MAXR];
            for (int i = 0; i < t->ndim; i++)
                d64[i] = t->dims[i];
            size_t cnt = numel64(t->ndim, d64);
            double *c = dalloc(cnt);
            if (!c)
                return NERVE_ERR_NOMEM;
            for (size_t e = 0; e < cnt; e++)
                c[e] = t->data[e];
            ival *v = new_val(I, vi->name);
            if (!v) {
                nerve_xfree(c);
                return nerve_last_status();
            }
            v->is_const = 1;
            v->dtype = vi->dtype;
            v->ndim = t->ndim;
            copy_i64(v->dims, d64, t->ndim);
            v->n = cnt;
            v->c = c;
            continue;
        }
        if (!vi->is_tensor || !vi->has_shape)
            return fail(I, "input '%s' is not a tensor with a known rank: not supported", vi->name);
        if (vi->dtype == ONNX_STRING || vi->dtype == ONNX_COMPLEX64 ||
            vi->dtype == ONNX_COMPLEX128 || vi->dtype == ONNX_BFLOAT16)
            return fail(I, "input '%s' of type %s is not supported", vi->name,
                        onnx_dtype_name(vi->dtype));
        if (vi->ndim + 1 > NERVE_MAX_DIMS)
            return fail(I, "input '%s' has rank %d: not supported (at most %d)", vi->name,
                        vi->ndim, NERVE_MAX_DIMS - 1);
        int dims[NERVE_MAX_DIMS];
        int64_t d64[MAXR];
        dims[0] = 1;
        for (int i = 0; i < vi->ndim; i++) {
            int64_t d = vi->dims[i] < 0 ? I->batch : vi->dims[i];
            if (d < 1 || d > INT32_MAX)
                return fail(I, "input '%s': dimension %d is %lld; empty tensors are not supported",
                            vi->name, i, (long long)vi->dims[i]);
            dims[i + 1] = (int)d;
            d64[i] = d;
        }
        char name[64];
        snprintf(name, sizeof name, "%.63s", vi->name);
        int id = nerve_input(I->g, name, vi->ndim + 1, dims);
        if (id < 0)
            return graph_fail(I, id);
        int view;
        TRY(view = reshape_node(I, id, vi->ndim, d64));
        ival *v = new_val(I, vi->name);
        if (!v)
            return nerve_last_status();
        v->node = view;
        v->dtype = vi->dtype;
        int i = m->n_in++;
        m->in_node[i] = id;
        m->in_type[i] = vi->dtype;
        snprintf(m->in_name[i], ONNX_MAX_NAME, "%s", vi->name);
    }
    return NERVE_OK;
}

static int add_initializers(imp *I)
{
    for (int k = 0; k < I->pm->n_init; k++) {
        const onnx_tensor *t = &I->pm->init[k];
        ival *old = find(I, t->name);
        if (old)
            return fail(I, "initializer '%s' is defined twice", t->name);
        ival *v = new_val(I, t->name);
        if (!v)
            return nerve_last_status();
        v->is_const = 1;
        v->init = t;
        v->dtype = t->dtype;
        v->ndim = t->ndim;
        copy_i64(v->dims, t->dims, t->ndim);
        v->n = t->n;
    }
    return NERVE_OK;
}

static int add_outputs(imp *I)
{
    nerve_onnx *m = I->m;
    for (int k = 0; k < I->pm->n_outputs; k++) {
        const onnx_value_info *vi = &I->pm->outputs[k];
        ival *v = find(I, vi->name);
        if (!v)
            return fail(I, "output '%s' is never computed", vi->name);
        int id;
        TRY(id = node_of(I, v));
        int i = m->n_out++;
        m->out_node[i] = id;
        m->out_type[i] = v->is_const ? v->dtype : (vi->dtype ? vi->dtype : v->dtype);
        snprintf(m->out_name[i], ONNX_MAX_NAME, "%s", vi->name);
    }
    return NERVE_OK;
}

void nerve_onnx_free(nerve_onnx *m)
{
    if (!m)
        return;
    nerve_graph_free(m->g);
    nerve_xfree(m->in_node);
    nerve_xfree(m->out_node);
    nerve_xfree(m->in_type);
    nerve_xfree(m->out_type);
    nerve_xfree(m->in_name);
    nerve_xfree(m->out_name);
    nerve_xfree(m);
}

nerve_onnx *nerve_import_onnx_buffer(const void *buf, size_t len, const char *name, int batch)
{
    return nerve_import_onnx_bound(buf, len, name, batch, 0, NULL, NULL);
}

nerve_onnx *nerve_import_onnx_bound(const void *buf, size_t len, const char *name, int batch,
                                    int n_bind, const char *const *bind_names,
                                    const nerve_tensor *bind_values)
{
    const char *src = name ? name : "model";
    if (batch < 1) {
        nerve_set_error(NERVE_ERR_ARG, "%s: batch %d must be at least 1", src, batch);
        return NULL;
    }
    onnx_model *pm = onnx_model_parse(buf, len, src);
    if (!pm)
        return NULL;
    imp I = {0};
    I.pm = pm;
    I.batch = batch;
    I.src = src;
    I.n_bind = n_bind > 0 && bind_names && bind_values ? n_bind : 0;
    I.bind_names = bind_names;
    I.bind_values = bind_values;
    int st = NERVE_ERR_NOMEM;
    nerve_onnx *m = nerve_xcalloc(1, sizeof *m);
    if (!m)
        goto done;
    I.m = m;
    m->opset = (int)(pm->opset > 0 && pm->opset < 1000 ? pm->opset : 0);
    if (!m->opset) {
        st = fail(&I, "a model without an opset of the default domain is not supported");
        goto done;
    }
    int ni = pm->n_inputs > 0 ? pm->n_inputs : 1, no = pm->n_outputs > 0 ? pm->n_outputs : 1;
    m->in_node = nerve_xcalloc((size_t)ni, sizeof(int));
    m->in_type = nerve_xcalloc((size_t)ni, sizeof(int));
    m->in_name = nerve_xcalloc((size_t)ni, ONNX_MAX_NAME);
    m->out_node = nerve_xcalloc((size_t)no, sizeof(int));
    m->out_type = nerve_xcalloc((size_t)no, sizeof(int));
    m->out_name = nerve_xcalloc((size_t)no, ONNX_MAX_NAME);
    m->g = nerve_graph_create();
    I.g = m->g;
    if (!m->in_node || !m->in_type || !m->in_name || !m->out_node || !m->out_type ||
        !m->out_name || !m->g)
        goto done;
    if (pm->n_outputs < 1) {
        st = fail(&I, "the graph has no outputs");
        goto done;
    }
    if ((st = add_initializers(&I)) < 0 || (st = add_inputs(&I)) < 0)
        goto done;
    for (int k = 0; k < pm->n_nodes; k++) {
        I.cur = &pm->nodes[k];
        I.cur_index = k;
        if ((st = build_node(&I, I.cur)) < 0)
            goto done;
    }
    I.cur = NULL;
    if ((st = add_outputs(&I)) < 0)
        goto done;
    nerve_graph_set_training(m->g, 0);
    st = nerve_graph_compile(m->g, 1);
    if (st < 0)
        st = graph_fail(&I, st);
done:
    for (int k = 0; k < I.nv; k++)
        nerve_xfree(I.v[k].c);
    nerve_xfree(I.v);
    if (st < 0) {
        nerve_onnx_free(m);
        m = NULL;
    }
    /* names in I.v point into pm: freed last */
    onnx_model_free(pm);
    return m;
}

static unsigned char *slurp(const char *path, size_t *len);

nerve_onnx *nerve_import_onnx(const char *path, int batch)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "nerve_import_onnx: null path");
        return NULL;
    }
    size_t len;
    unsigned char *buf = slurp(path, &len);
    if (!buf)
        return NULL;
    nerve_onnx *m = nerve_import_onnx_buffer(buf, len, path, batch);
    nerve_xfree(buf);
    return m;
}

nerve_graph *nerve_onnx_graph(nerve_onnx *m) { return m ? m->g : NULL; }
int nerve_onnx_opset(const nerve_onnx *m) { return m ? m->opset : 0; }
int nerve_onnx_num_inputs(const nerve_onnx *m) { return m ? m->n_in : 0; }
int nerve_onnx_num_outputs(const nerve_onnx *m) { return m ? m->n_out : 0; }
int nerve_onnx_input(const nerve_onnx *m, int i)
{
    return m && i >= 0 && i < m->n_in ? m->in_node[i] : -1;
}
int nerve_onnx_output(const nerve_onnx *m, int i)
{
    return m && i >= 0 && i < m->n_out ? m->out_node[i] : -1;
}
const char *nerve_onnx_input_name(const nerve_onnx *m, int i)
{
    return m && i >= 0 && i < m->n_in ? m->in_name[i] : NULL;
}
const char *nerve_onnx_output_name(const nerve_onnx *m, int i)
{
    return m && i >= 0 && i < m->n_out ? m->out_name[i] : NULL;
}
int nerve_onnx_input_type(const nerve_onnx *m, int i)
{
    return m && i >= 0 && i < m->n_in ? m->in_type[i] : 0;
}
int nerve_onnx_output_type(const nerve_onnx *m, int i)
{
    return m && i >= 0 && i < m->n_out ? m->out_type[i] : 0;
}
int nerve_onnx_output_shape(const nerve_onnx *m, int i, int *ndim, int *dims)
{
    if (!m || i < 0 || i >= m->n_out)
        return nerve_set_error(NERVE_ERR_ARG, "nerve_onnx_output_shape: no output %d", i);
    return nerve_node_shape(m->g, m->out_node[i], ndim, dims);
}
int nerve_onnx_run(nerve_onnx *m, int i)
{
    if (!m || i < 0 || i >= m->n_out)
        return nerve_set_error(NERVE_ERR_ARG, "nerve_onnx_run: no output %d", i);
    return nerve_forward(m->g, m->out_node[i]);
}

/* ---- tensor files ---------------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nerve_set_error(NERVE_ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            unsigned char *p = nerve_xrealloc(buf, nc);
            if (!p) {
                nerve_xfree(buf);
                fclose(fp);
                return NULL;
            }
            buf = p;
            cap = nc;
        }
        size_t got = fread(buf + *len, 1, cap - *len, fp);
        *len += got;
        if (!got)
            break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        nerve_xfree(buf);
        nerve_set_error(NERVE_ERR_IO, "%s: read error", path);
        return NULL;
    }
    return buf;
}

int nerve_onnx_tensor_load(const char *path, nerve_tensor *out)
{
    if (!path || !out)
        return nerve_set_error(NERVE_ERR_ARG, "nerve_onnx_tensor_load: null argument");
    memset(out, 0, sizeof *out);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    if (!buf)
        return nerve_last_status();
    onnx_tensor t;
    int st = onnx_tensor_parse(buf, len, path, &t);
    nerve_xfree(buf);
    if (st < 0)
        return st;
    if (t.unusable || (!t.f && !t.i) || t.ndim > NERVE_MAX_DIMS || t.n == 0) {
        onnx_tensor_clear(&t);
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: a %s tensor of rank %d with %zu values is "
                               "not supported (float, integer or bool; rank at most %d; not empty)",
                               path, onnx_dtype_name(t.dtype), t.ndim, t.n, NERVE_MAX_DIMS);
    }
    int dims[NERVE_MAX_DIMS];
    for (int i = 0; i < t.ndim; i++)
        dims[i] = (int)t.dims[i];
    *out = nerve_tensor_create(t.ndim, dims);
    if (!out->data) {
        onnx_tensor_clear(&t);
        return nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    }
    for (size_t k = 0; k < t.n; k++)
        out->data[k] = t.f ? t.f[k] : (float)t.i[k];
    onnx_tensor_clear(&t);
    return NERVE_OK;
}

int nerve_onnx_tensor_save(const char *path, const nerve_tensor *t, const char *name)
{
    if (!path || !t || !t->data || t->ndim < 0 || t->ndim > NERVE_MAX_DIMS)
        return nerve_set_error(NERVE_ERR_ARG, "nerve_onnx_tensor_save: bad argument");
    onnx_tensor o = {0};
    snprintf(o.name, sizeof o.name, "%s", name ? name : "");
    o.dtype = ONNX_FLOAT;
    o.ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++)
        o.dims[i] = t->dims[i];
    o.n = nerve_tensor_numel(t);
    o.f = t->data;
    size_t len;
    unsigned char *b = onnx_tensor_write(&o, &len);
    if (!b)
        return nerve_last_status();
    FILE *fp = fopen(path, "wb");
    int ok = fp && fwrite(b, 1, len, fp) == len;
    if (fp && fclose(fp) != 0)
        ok = 0;
    nerve_xfree(b);
    return ok ? NERVE_OK : nerve_set_error(NERVE_ERR_IO, "%s: cannot write", path);
}
