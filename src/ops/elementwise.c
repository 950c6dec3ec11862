/* Element-wise operators: add, sub, mul, div with numpy broadcasting, and affine.
 *
 *   y = f(a, b): shapes are aligned on their trailing dimensions; a missing or size-1
 *   dimension broadcasts. backward: da += reduce(dy * df/da) over the dimensions along
 *   which a was broadcast (likewise b), so a bias [C] added to [N, C] receives the sum of
 *   its N rows of gradient.
 *
 *   affine: y = scale * x + shift (attr.affine); dx += scale * dy.
 *
 * One broadcasting walk serves every binary operator and both directions: it visits the
 * output as contiguous rows and hands each row to a row function, which the operation
 * parameterises (forward value, or the gradient for operand a or b). */
#include "ops.h"
#include "loops.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <string.h>

/* ---- the operations: value and partial derivatives ----------------------------------- */

enum {
    BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_MAX, BIN_MIN, BIN_MOD, BIN_FMOD,
    BIN_EQ, BIN_LT, BIN_GT, BIN_LE, BIN_GE, BIN_AND, BIN_OR, BIN_XOR, BIN_COUNT
};

/* mod: the remainder with the divisor's sign (floored, numpy's and Python's %); fmod: with
 * the dividend's sign (C's fmod). Comparisons and logic give 1 or 0; logic reads any
 * non-zero as true. */
static inline float bin_value(int op, float a, float b)
{
    switch (op) {
    case BIN_ADD: return a + b;
    case BIN_SUB: return a - b;
    case BIN_MUL: return a * b;
    case BIN_DIV: return a / b;
    case BIN_POW: return powf(a, b);
    case BIN_MAX: return a != a ? a : b != b ? b : a >= b ? a : b; /* NaN propagates */
    case BIN_MIN: return a != a ? a : b != b ? b : a <= b ? a : b;
    case BIN_MOD: {
        float r = fmodf(a, b);
        return r != 0.0f && ((r < 0.0f) != (b < 0.0f)) ? r + b : r;
    }
    case BIN_FMOD: return fmodf(a, b);
    case BIN_EQ: return a == b;
    case BIN_LT: return a < b;
    case BIN_GT: return a > b;
    case BIN_LE: return a <= b;
    case BIN_GE: return a >= b;
    case BIN_AND: return (a != 0.0f) && (b != 0.0f);
    case BIN_OR: return (a != 0.0f) || (b != 0.0f);
    default:     return (a != 0.0f) != (b != 0.0f);
    }
}

/* d y / d a (wrt == 0) or d y / d b (wrt == 1), given the operands and the output y. */
static inline float bin_partial(int op, int wrt, float a, float b, float y)
{
    switch (op) {
    case BIN_ADD: return 1.0f;
    case BIN_SUB: return wrt ? -1.0f : 1.0f;
    case BIN_MUL: return wrt ? a : b;
    case BIN_DIV: return wrt ? -y / b : 1.0f / b; /* d(a/b)/db = -a/b^2 = -y/b */
    case BIN_POW: /* d a^b / da = b a^(b-1); d a^b / db = a^b ln a (0 where a^b is 0) */
        return wrt ? (y != 0.0f ? y * logf(a) : 0.0f) : (b != 0.0f ? b * powf(a, b - 1.0f) : 0.0f);
    case BIN_MAX: /* a tie goes to a, as the forward picks a */
        return (a >= b) != wrt ? 1.0f : 0.0f;
    case BIN_MIN: return (a <= b) != wrt ? 1.0f : 0.0f;
    case BIN_MOD: return wrt ? -floorf(a / b) : 1.0f;
    case BIN_FMOD: return wrt ? -truncf(a / b) : 1.0f;
    default: return 0.0f; /* comparisons and logic: piecewise constant */
    }
}

/* ---- rows ------------------------------------------------------------------------------ */

/* Everything a row function reads or writes, as whole buffers; a row is located by the
 * offsets oa, ob (into a, b) and oy (into y, dy). Within a row the output is contiguous
 * and a, b advance by sa, sb, each 0 (broadcast) or 1. */
typedef struct bin_args {
    const float *a, *b, *y, *dy;
    float *y_out; /* forward destination */
    float *grad;  /* backward destination: gradient of a or of b */
    size_t sa, sb;
} bin_args;

typedef void (*bin_row_fn)(const bin_args *r, size_t oa, size_t ob, size_t oy, size_t n);

/* The strides are compile-time constants at every call site below, so each instance
 * becomes a plain contiguous (or scalar-broadcast) loop. */
OPS_INLINE void value_row(int op, size_t sa, size_t sb, const float *a, const float *b,
                             float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = bin_value(op, a[i * sa], b[i * sb]);
}

OPS_INLINE void forward_row(int op, const bin_args *r, size_t oa, size_t ob, size_t oy, size_t n)
{
    const float *a = r->a + oa, *b = r->b + ob;
    float *y = r->y_out + oy;
    if (r->sa && r->sb)
        value_row(op, 1, 1, a, b, y, n);
    else if (r->sa)
        value_row(op, 1, 0, a, b, y, n);
    else if (r->sb)
        value_row(op, 0, 1, a, b, y, n);
    else
        value_row(op, 0, 0, a, b, y, n);
}

/* grad[i * sg] += dy[i] * partial: with sg == 0 the row collapses onto one element of the
 * broadcast operand, so it is summed first, in eight double lanes (independent chains the
 * compiler can vectorise; double keeps long sums accurate). */
OPS_INLINE void grad_row_strided(int op, int wrt, size_t sa, size_t sb, const float *a,
                                    const float *b, const float *y, const float *dy, float *g,
                                    size_t n)
{
#define GRAD_TERM(i) (dy[i] * bin_partial(op, wrt, a[(i) * sa], b[(i) * sb], y[i]))
    if (wrt ? sb : sa) {
        for (size_t i = 0; i < n; i++)
            g[i] += GRAD_TERM(i);
        return;
    }
    enum { LANES = 8 };
    double lane[LANES] = {0}, acc = 0.0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (size_t j = 0; j < LANES; j++)
            lane[j] += GRAD_TERM(i + j);
    for (; i < n; i++)
        acc += GRAD_TERM(i);
    for (int j = 0; j < LANES; j++)
        acc += lane[j];
    g[0] += (float)acc;
#undef GRAD_TERM
}

OPS_INLINE void grad_row(int op, int wrt, const bin_args *r, size_t oa, size_t ob, size_t oy,
                            size_t n)
{
    const float *a = r->a + oa, *b = r->b + ob, *y = r->y + oy, *dy = r->dy + oy;
    float *g = r->grad + (wrt ? ob : oa);
    if (r->sa && r->sb)
        grad_row_strided(op, wrt, 1, 1, a, b, y, dy, g, n);
    else if (r->sa)
        grad_row_strided(op, wrt, 1, 0, a, b, y, dy, g, n);
    else if (r->sb)
        grad_row_strided(op, wrt, 0, 1, a, b, y, dy, g, n);
    else
        grad_row_strided(op, wrt, 0, 0, a, b, y, dy, g, n);
}

/* One instance of the row functions per operation (the operation constant-folds). */
#define BIN_ROW_FUNCS(name, OP)                                                               \
    KERN_ISA_CLONES(name##_forward_row,                                                       \
                    (const bin_args *r, size_t oa, size_t ob, size_t oy, size_t n),           \
                    (r, oa, ob, oy, n))                                                       \
    {                                                                                         \
        forward_row(OP, r, oa, ob, oy, n);                                                    \
    }                                                                                         \
    KERN_ISA_CLONES(name##_grad_a_row,                                                        \
                    (const bin_args *r, size_t oa, size_t ob, size_t oy, size_t n),           \
                    (r, oa, ob, oy, n))                                                       \
    {                                                                                         \
        grad_row(OP, 0, r, oa, ob, oy, n);                                                    \
    }                                                                                         \
    KERN_ISA_CLONES(name##_grad_b_row,                                                        \
                    (const bin_args *r, size_t oa, size_t ob, size_t oy, size_t n),           \
                    (r, oa, ob, oy, n))                                                       \
    {                                                                                         \
        grad_row(OP, 1, r, oa, ob, oy, n);                                                    \
    }

BIN_ROW_FUNCS(add, BIN_ADD)
BIN_ROW_FUNCS(sub, BIN_SUB)
BIN_ROW_FUNCS(mul, BIN_MUL)
BIN_ROW_FUNCS(div, BIN_DIV)
BIN_ROW_FUNCS(pow, BIN_POW)
BIN_ROW_FUNCS(max, BIN_MAX)
BIN_ROW_FUNCS(min, BIN_MIN)
BIN_ROW_FUNCS(mod, BIN_MOD)
BIN_ROW_FUNCS(fmod, BIN_FMOD)
BIN_ROW_FUNCS(eq, BIN_EQ)
BIN_ROW_FUNCS(lt, BIN_LT)
BIN_ROW_FUNCS(gt, BIN_GT)
BIN_ROW_FUNCS(le, BIN_LE)
BIN_ROW_FUNCS(ge, BIN_GE)
BIN_ROW_FUNCS(and, BIN_AND)
BIN_ROW_FUNCS(or, BIN_OR)
BIN_ROW_FUNCS(xor, BIN_XOR)

typedef struct bin_kind {
    bin_row_fn forward, grad[2];
} bin_kind;

/* Indexed like binary_ops below. */
static const bin_kind bin_kinds[] = {
    {add_forward_row, {add_grad_a_row, add_grad_b_row}},
    {sub_forward_row, {sub_grad_a_row, sub_grad_b_row}},
    {mul_forward_row, {mul_grad_a_row, mul_grad_b_row}},
    {div_forward_row, {div_grad_a_row, div_grad_b_row}},
#define BIN_KIND(name) {name##_forward_row, {name##_grad_a_row, name##_grad_b_row}}
    BIN_KIND(pow), BIN_KIND(max), BIN_KIND(min), BIN_KIND(mod), BIN_KIND(fmod), BIN_KIND(eq),
    BIN_KIND(lt), BIN_KIND(gt), BIN_KIND(le), BIN_KIND(ge), BIN_KIND(and), BIN_KIND(or),
    BIN_KIND(xor),
#undef BIN_KIND
};

/* ---- broadcasting ---------------------------------------------------------------------- */

/* Dimension i (of the output's rank ndim) of x aligned on the trailing dimensions; 1 where
 * x has fewer dimensions. */
static int aligned_dim(const node *x, int ndim, int i)
{
    int k = i - (ndim - x->ndim);
    return k >= 0 ? x->dims[k] : 1;
}

/* 1 if x has exactly the last x->ndim dimensions of y and is not y's shape: x repeats as a
 * block of y (the [N, C] op [C] case). Single elements are left to the general walk, which
 * treats them as one broadcast row instead of many one-element blocks. */
static int is_trailing_block(const node *x, const node *y)
{
    if (x->ndim >= y->ndim || node_numel(x) < 2)
        return 0;
    return memcmp(x->dims, y->dims + (y->ndim - x->ndim), (size_t)x->ndim * sizeof(int)) == 0;
}

static int same_shape(const node *x, const node *y)
{
    return x->ndim == y->ndim && memcmp(x->dims, y->dims, (size_t)x->ndim * sizeof(int)) == 0;
}

/* The output as nested loops with the innermost first: dims[0] is the contiguous row.
 * Output dimensions of size 1 are dropped and neighbours that are contiguous for both
 * operands are merged, so the walk has as few levels and as long rows as possible. */
typedef struct bcast_plan {
    int ndim;
    size_t dims[NERVE_MAX_DIMS];
    size_t sa[NERVE_MAX_DIMS], sb[NERVE_MAX_DIMS]; /* operand strides, 0 when broadcast */
} bcast_plan;

static void plan_broadcast(bcast_plan *p, const node *y, const node *a, const node *b)
{
    size_t stride_a = 1, stride_b = 1;
    p->ndim = 0;
    for (int i = y->ndim - 1; i >= 0; i--) {
        size_t d = (size_t)y->dims[i];
        size_t da = (size_t)aligned_dim(a, y->ndim, i), db = (size_t)aligned_dim(b, y->ndim, i);
        size_t sa = da == 1 ? 0 : stride_a, sb = db == 1 ? 0 : stride_b;
        stride_a *= da;
        stride_b *= db;
        if (d == 1)
            continue;
        int k = p->ndim - 1;
        if (k >= 0 && sa == p->sa[k] * p->dims[k] && sb == p->sb[k] * p->dims[k]) {
            p->dims[k] *= d; /* contiguous continuation for both operands */
            continue;
        }
        p->dims[p->ndim] = d;
        p->sa[p->ndim] = sa;
        p->sb[p->ndim] = sb;
        p->ndim++;
    }
    if (p->ndim == 0) { /* a single element */
        p->ndim = 1;
        p->dims[0] = 1;
        p->sa[0] = p->sb[0] = 0;
    }
}

/* Visits every row of the output, odometer style (no per-element index arithmetic). */
static void walk_plan(const bcast_plan *p, bin_row_fn fn, bin_args *r)
{
    size_t n = p->dims[0], rows = 1, idx[NERVE_MAX_DIMS] = {0}, oa = 0, ob = 0;
    for (int k = 1; k < p->ndim; k++)
        rows *= p->dims[k];
    r->sa = p->sa[0] ? 1 : 0;
    r->sb = p->sb[0] ? 1 : 0;
    for (size_t row = 0; row < rows; row++) {
        fn(r, oa, ob, row * n, n);
        for (int k = 1; k < p->ndim; k++) {
            oa += p->sa[k];
            ob += p->sb[k];
            if (++idx[k] < p->dims[k])
                break;
            oa -= p->sa[k] * p->dims[k];
            ob -= p->sb[k] * p->dims[k];
            idx[k] = 0;
        }
    }
}

/* A row function applied over part of the output, as a thread-pool task. Every split
 * below gives each output element (or each element of a summed gradient) to one thread,
 * which does exactly what the serial loop does for it: results are bit-identical whatever
 * the thread count. */
typedef struct bin_job {
    bin_row_fn fn;
    const bin_args *r;
    size_t block, blocks; /* the trailing-block case: one operand repeats `blocks` times */
    int a_full, b_full;   /* operand has the output's shape */
} bin_job;

/* Equal shapes: elements [begin, end) are one row. */
static void same_shape_range(void *ctx, size_t begin, size_t end)
{
    const bin_job *j = ctx;
    j->fn(j->r, begin, begin, begin, end - begin);
}

/* Whole blocks [begin, end): the forward, and the gradient of the full operand. */
static void block_range(void *ctx, size_t begin, size_t end)
{
    const bin_job *j = ctx;
    for (size_t k = begin; k < end; k++) {
        size_t off = k * j->block;
        j->fn(j->r, j->a_full ? off : 0, j->b_full ? off : 0, off, j->block);
    }
}

/* Columns [begin, end) of every block, blocks in order: the gradient of the repeating
 * operand, where all blocks add into the same elements. */
static void column_range(void *ctx, size_t begin, size_t end)
{
    const bin_job *j = ctx;
    for (size_t k = 0; k < j->blocks; k++) {
        size_t off = k * j->block;
        j->fn(j->r, (j->a_full ? off : 0) + begin, (j->b_full ? off : 0) + begin, off + begin,
              end - begin);
    }
}

/* Applies a row function over the whole output of binary node n, taking the (threaded)
 * fast path for equal shapes and for one operand repeating as a trailing block of the
 * other. target: -1 for the forward, else the operand whose gradient fn adds to. */
static void broadcast_apply(nerve_graph *g, const node *n, bin_row_fn fn, bin_args *r,
                            int target)
{
    const node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    size_t total = node_numel(n);
    bin_job j = {fn, r, 0, 0, same_shape(a, n), same_shape(b, n)};
    if (j.a_full && j.b_full) {
        r->sa = r->sb = 1;
        kern_parallel_for(total, OPS_GRAIN, same_shape_range, &j);
        return;
    }
    if ((j.a_full && is_trailing_block(b, n)) || (j.b_full && is_trailing_block(a, n))) {
        j.block = j.a_full ? node_numel(b) : node_numel(a);
        j.blocks = total / j.block;
        r->sa = r->sb = 1;
        int per_block = target < 0 || (target == 0 ? j.a_full : j.b_full);
        if (per_block)
            kern_parallel_for(j.blocks, ops_grain(j.block), block_range, &j);
        else
            kern_parallel_for(j.block, ops_grain(j.blocks), column_range, &j);
        return;
    }
    bcast_plan p;
    plan_broadcast(&p, n, a, b);
    walk_plan(&p, fn, r);
}

/* ---- add, sub, mul, div ---------------------------------------------------------------- */

static const op_def binary_ops[BIN_COUNT];

static const bin_kind *kind_of(const node *n) { return &bin_kinds[n->op - binary_ops]; }

static int binary_infer(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    int ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < ndim; i++) {
        int da = aligned_dim(a, ndim, i), db = aligned_dim(b, ndim, i);
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return op_shape_error(n, "cannot broadcast %s with %s (dimension %d: %d vs %d)",
                                  nerve_shape_str(a->ndim, a->dims, sa, sizeof sa),
                                  nerve_shape_str(b->ndim, b->dims, sb, sizeof sb), i, da, db);
        }
        n->dims[i] = da == 1 ? db : da;
    }
    n->ndim = ndim;
    return NERVE_OK;
}

static void binary_forward(nerve_graph *g, node *n)
{
    bin_args r = {.a = node_input(g, n, 0)->value, .b = node_input(g, n, 1)->value,
                  .y_out = n->value};
    broadcast_apply(g, n, kind_of(n)->forward, &r, -1);
}

static void binary_backward(nerve_graph *g, node *n)
{
    bin_args r = {.a = node_input(g, n, 0)->value, .b = node_input(g, n, 1)->value,
                  .y = n->value, .dy = n->grad};
    for (int wrt = 0; wrt < 2; wrt++) {
        r.grad = node_input_grad(g, n, wrt);
        if (r.grad)
            broadcast_apply(g, n, kind_of(n)->grad[wrt], &r, wrt);
    }
}

static const op_def binary_ops[] = {
    {"add", binary_infer, NULL, binary_forward, binary_backward, OP_OUTPUT_UNREAD},
    {"sub", binary_infer, NULL, binary_forward, binary_backward, OP_OUTPUT_UNREAD},
    {"mul", binary_infer, NULL, binary_forward, binary_backward, OP_OUTPUT_UNREAD},
    {"div", binary_infer, NULL, binary_forward, binary_backward, 0},
    {"pow", binary_infer, NULL, binary_forward, binary_backward, 0},
    {"maximum", binary_infer, NULL, binary_forward, binary_backward, 0},
    {"minimum", binary_infer, NULL, binary_forward, binary_backward, 0},
    {"mod", binary_infer, NULL, binary_forward, binary_backward, 0},
    {"fmod", binary_infer, NULL, binary_forward, binary_backward, 0},
    /* piecewise constant: no gradient flows through them */
    {"equal", binary_infer, NULL, binary_forward, NULL, 0},
    {"less", binary_infer, NULL, binary_forward, NULL, 0},
    {"greater", binary_infer, NULL, binary_forward, NULL, 0},
    {"less_equal", binary_infer, NULL, binary_forward, NULL, 0},
    {"greater_equal", binary_infer, NULL, binary_forward, NULL, 0},
    {"logical_and", binary_infer, NULL, binary_forward, NULL, 0},
    {"logical_or", binary_infer, NULL, binary_forward, NULL, 0},
    {"logical_xor", binary_infer, NULL, binary_forward, NULL, 0},
};

static int binary(nerve_graph *g, int op, int a, int b)
{
    return graph_add_op(g, &binary_ops[op], 2, (int[]){a, b}, NULL, binary_ops[op].name);
}

int nerve_add(nerve_graph *g, int a, int b) { return binary(g, BIN_ADD, a, b); }
int nerve_sub(nerve_graph *g, int a, int b) { return binary(g, BIN_SUB, a, b); }
int nerve_mul(nerve_graph *g, int a, int b) { return binary(g, BIN_MUL, a, b); }
int nerve_div(nerve_graph *g, int a, int b) { return binary(g, BIN_DIV, a, b); }

int nerve_binary(nerve_graph *g, const char *op, int a, int b)
{
    for (int k = 0; op && k < BIN_COUNT; k++)
        if (strcmp(binary_ops[k].name, op) == 0)
            return binary(g, k, a, b);
    return nerve_set_error(NERVE_ERR_ARG, "nerve_binary: '%s' is no binary operator (add, sub, "
                           "mul, div, pow, maximum, minimum, mod, fmod, equal, less, greater, "
                           "less_equal, greater_equal, logical_and, logical_or, logical_xor)",
                           op ? op : "(null)");
}

/* ---- affine: attr.affine (scale, shift) ------------------------------------------------ */

static int affine_infer(nerve_graph *g, node *n)
{
    node_copy_shape(n, node_input(g, n, 0));
    return NERVE_OK;
}

/* An affine pass over elements [begin, end), as a thread-pool task. */
typedef struct affine_job {
    const float *x, *dy;
    float *out; /* forward: y; backward: dx */
    float scale, shift;
} affine_job;

/* y = scale * x + shift; x == y (in place) is fine. */
KERN_ISA_CLONES(affine_forward_range, (void *ctx, size_t begin, size_t end), (ctx, begin, end))
{
    const affine_job *j = ctx;
    const float *x = j->x;
    float *y = j->out, scale = j->scale, shift = j->shift;
    for (size_t i = begin; i < end; i++)
        y[i] = scale * x[i] + shift;
}

KERN_ISA_CLONES(affine_backward_range, (void *ctx, size_t begin, size_t end), (ctx, begin, end))
{
    const affine_job *j = ctx;
    const float *restrict dy = j->dy;
    float *restrict dx = j->out;
    float scale = j->scale;
    for (size_t i = begin; i < end; i++)
        dx[i] += scale * dy[i];
}

static void affine_forward(nerve_graph *g, node *n)
{
    affine_job j = {node_input(g, n, 0)->value, NULL, n->value, n->attr.affine.scale, n->attr.affine.shift};
    kern_parallel_for(node_numel(n), OPS_GRAIN, affine_forward_range, &j);
}

static void affine_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    affine_job j = {NULL, n->grad, dx, n->attr.affine.scale, 0.0f};
    kern_parallel_for(node_numel(n), OPS_GRAIN, affine_backward_range, &j);
}

static const op_def op_affine = {"affine", affine_infer, NULL, affine_forward, affine_backward, 0};

int nerve_affine(nerve_graph *g, int x, float scale, float shift)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.affine.scale = scale;
    at.affine.shift = shift;
    return graph_add_op(g, &op_affine, 1, &x, &at, "affine");
}

const op_def *const ops_elementwise[] = {
    &binary_ops[BIN_ADD], &binary_ops[BIN_SUB], &binary_ops[BIN_MUL], &binary_ops[BIN_DIV],
    &op_affine, &binary_ops[BIN_POW], &binary_ops[BIN_MAX], &binary_ops[BIN_MIN],
    &binary_ops[BIN_MOD], &binary_ops[BIN_FMOD], &binary_ops[BIN_EQ], &binary_ops[BIN_LT],
    &binary_ops[BIN_GT], &binary_ops[BIN_LE], &binary_ops[BIN_GE], &binary_ops[BIN_AND],
    &binary_ops[BIN_OR], &binary_ops[BIN_XOR], NULL};
