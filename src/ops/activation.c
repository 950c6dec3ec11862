/* Activation operators: the element-wise activation family, PReLU, softmax, log-softmax.
 *
 *   activation: y = phi(u), every nerve_act_type    dx += dy * phi'(u)
 *   prelu:      y = u > 0 ? u : a_c u               dx += dy * (u > 0 ? 1 : a_c),
 *                                                   da_c += sum of dy * u over u <= 0
 *   softmax:    y_i = e^{u_i - m} / sum_j e^{u_j - m}          dx = y (dy - sum dy y)
 *   log_softmax: y_i = u_i - m - log sum_j e^{u_j - m}          dx = dy - e^y sum dy
 *
 * The maths of every activation type lives in act_value() and act_derivative_from_output()
 * (or _from_input() for the parameters where y does not determine phi'); the operators only
 * own the loops, which the thread pool splits into ranges. */
#include "ops.h"
#include "loops.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

/* ---- the activation types ------------------------------------------------------------ */

/* SELU's constants (Klambauer et al. 2017), to double precision. */
#define SELU_ALPHA 1.6732632423543772f
#define SELU_LAMBDA 1.0507009873554805f

/* 1/(1+e^-z) without overflow: exp() only ever sees a non-positive argument. */
static inline float stable_sigmoid(float z)
{
    if (z >= 0.0f)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

/* log(1+e^u) = max(u,0) + log(1+e^-|u|): finite for every finite u. */
static inline float stable_softplus(float u) { return fmaxf(u, 0.0f) + log1pf(expf(-fabsf(u))); }

static inline float act_value(nerve_act_type type, float alpha, float beta, float u)
{
    switch (type) {
    case NERVE_ACT_STEP:
        return u >= 0.0f ? 1.0f : 0.0f;
    case NERVE_ACT_SIGMOID:
        return stable_sigmoid(alpha * u);
    case NERVE_ACT_HARD_SIGMOID:
        return fminf(fmaxf(alpha * u + beta, 0.0f), 1.0f);
    case NERVE_ACT_TANH:
        return tanhf(u);
    case NERVE_ACT_RELU:
        return u > 0.0f ? u : 0.0f;
    case NERVE_ACT_LEAKY_RELU: /* the standard piecewise form; max(u, alpha u) when alpha <= 1 */
        return u > 0.0f ? u : alpha * u;
    case NERVE_ACT_ELU:
        return u >= 0.0f ? u : alpha * expm1f(u);
    case NERVE_ACT_SELU:
        return beta * (u > 0.0f ? u : alpha * expm1f(u));
    case NERVE_ACT_SOFTPLUS:
        return stable_softplus(u);
    case NERVE_ACT_SOFTSIGN:
        return u / (1.0f + fabsf(u));
    case NERVE_ACT_RELU6:
        return fminf(fmaxf(u, 0.0f), alpha);
    case NERVE_ACT_RAMP:
        return (u > 0.0f ? u : 0.0f) + alpha * u;
    case NERVE_ACT_IDENTITY:
    default:
        return u;
    }
}

/* Every type but the identity (handled as the default), for specialised loops. */
#define ACT_TYPES(X)                                                                        \
    X(NERVE_ACT_STEP) X(NERVE_ACT_SIGMOID) X(NERVE_ACT_HARD_SIGMOID) X(NERVE_ACT_TANH)     \
    X(NERVE_ACT_RELU) X(NERVE_ACT_LEAKY_RELU) X(NERVE_ACT_ELU) X(NERVE_ACT_SELU)           \
    X(NERVE_ACT_SOFTPLUS) X(NERVE_ACT_SOFTSIGN) X(NERVE_ACT_RELU6) X(NERVE_ACT_RAMP)

/* phi'(u) from the output y = phi(u) alone, for the types and parameters where y
 * determines it (act_derivative_needs_input() is 0): an activation computed in place over
 * its input can still be differentiated. Kinks take the derivative of the flat side
 * (ReLU'(0) = 0); the comparisons test bit patterns so that the loops vectorise (see
 * loops.h). Why y suffices:
 *   ReLU, leaky ReLU (alpha >= 0): y > 0 exactly when u > 0
 *   ELU (alpha > 0): y < 0 exactly when u < 0, and there phi' = alpha e^u = y + alpha
 *   SELU (alpha, beta > 0): y > 0 exactly when u > 0, else phi' = y + alpha beta
 *   hard sigmoid, ReLU6: the slope is non-zero exactly where the clamp leaves v unchanged
 *   softplus: sigma(u) = 1 - e^-y;  softsign: 1/(1+|u|)^2 = (1 - |y|)^2
 *   ramp (alpha >= 0): y > 0 exactly when u > 0 */
static inline float act_derivative_from_output(nerve_act_type type, float alpha, float beta,
                                               float y)
{
    switch (type) {
    case NERVE_ACT_STEP:
        return 0.0f;
    case NERVE_ACT_SIGMOID:
        return alpha * y * (1.0f - y);
    case NERVE_ACT_HARD_SIGMOID:
        return ops_between_zero_and(y, 1.0f) ? alpha : 0.0f;
    case NERVE_ACT_TANH:
        return 1.0f - y * y;
    case NERVE_ACT_RELU:
        return ops_positive(y) ? 1.0f : 0.0f;
    case NERVE_ACT_LEAKY_RELU:
        return ops_positive(y) ? 1.0f : alpha;
    case NERVE_ACT_ELU:
        return ops_negative(y) ? y + alpha : 1.0f;
    case NERVE_ACT_SELU:
        return ops_positive(y) ? beta : y + alpha * beta;
    case NERVE_ACT_SOFTPLUS:
        return -expm1f(-y);
    case NERVE_ACT_SOFTSIGN: {
        float d = 1.0f - fabsf(y);
        return d * d;
    }
    case NERVE_ACT_RELU6:
        return ops_between_zero_and(y, alpha) ? 1.0f : 0.0f;
    case NERVE_ACT_RAMP:
        return ops_positive(y) ? 1.0f + alpha : alpha;
    case NERVE_ACT_IDENTITY:
    default:
        return 1.0f;
    }
}

/* phi'(u) from the input, for the parameters where y does not determine it: a negative
 * leaky slope, a non-positive ELU alpha, SELU constants that are not both positive. */
static inline float act_derivative_from_input(nerve_act_type type, float alpha, float beta,
                                              float u)
{
    switch (type) {
    case NERVE_ACT_LEAKY_RELU:
        return u > 0.0f ? 1.0f : alpha;
    case NERVE_ACT_ELU:
        return u >= 0.0f ? 1.0f : alpha * expf(u);
    case NERVE_ACT_SELU:
        return beta * (u > 0.0f ? 1.0f : alpha * expf(u));
    case NERVE_ACT_RAMP:
        return u > 0.0f ? 1.0f + alpha : alpha;
    default:
        return act_derivative_from_output(type, alpha, beta, act_value(type, alpha, beta, u));
    }
}

/* 1 when the backward pass of the activation needs its input u, 0 when the output y is
 * enough (then the forward may overwrite u: see act_derivative_from_output()). */
static int act_derivative_needs_input(nerve_act_type type, float alpha, float beta)
{
    switch (type) {
    case NERVE_ACT_LEAKY_RELU: return !(alpha >= 0.0f);
    case NERVE_ACT_RAMP:       return !(alpha >= 0.0f);
    case NERVE_ACT_ELU:        return !(alpha > 0.0f);
    case NERVE_ACT_SELU:       return !(alpha > 0.0f && beta > 0.0f);
    default:                   return 0;
    }
}

/* ---- names ----------------------------------------------------------------------------- */

static const char *const canonical_names[NERVE_ACT_COUNT] = {
    [NERVE_ACT_IDENTITY] = "linear",        [NERVE_ACT_STEP] = "step",
    [NERVE_ACT_SIGMOID] = "logistic",       [NERVE_ACT_HARD_SIGMOID] = "hardsigmoid",
    [NERVE_ACT_TANH] = "tanh",              [NERVE_ACT_RELU] = "relu",
    [NERVE_ACT_LEAKY_RELU] = "leaky_relu",  [NERVE_ACT_ELU] = "elu",
    [NERVE_ACT_SELU] = "selu",              [NERVE_ACT_SOFTPLUS] = "softplus",
    [NERVE_ACT_SOFTSIGN] = "softsign",      [NERVE_ACT_RELU6] = "relu6",
    [NERVE_ACT_RAMP] = "ramp",
};

/* Every accepted spelling. alpha != 0 overrides the type's default: darknet's "leaky"
 * uses slope 0.1 (what its cfg files and weights were trained with), while "leaky_relu"
 * keeps the course's default 0.01. */
static const struct act_alias {
    const char *name;
    nerve_act_type type;
    float alpha;
} act_aliases[] = {
    {"linear", NERVE_ACT_IDENTITY, 0},         {"identity", NERVE_ACT_IDENTITY, 0},
    {"step", NERVE_ACT_STEP, 0},               {"threshold", NERVE_ACT_STEP, 0},
    {"logistic", NERVE_ACT_SIGMOID, 0},        {"sigmoid", NERVE_ACT_SIGMOID, 0},
    {"hardsigmoid", NERVE_ACT_HARD_SIGMOID, 0}, {"hard_sigmoid", NERVE_ACT_HARD_SIGMOID, 0},
    {"tanh", NERVE_ACT_TANH, 0},               {"relu", NERVE_ACT_RELU, 0},
    {"leaky", NERVE_ACT_LEAKY_RELU, 0.1f},     {"leaky_relu", NERVE_ACT_LEAKY_RELU, 0},
    {"elu", NERVE_ACT_ELU, 0},                 {"selu", NERVE_ACT_SELU, 0},
    {"softplus", NERVE_ACT_SOFTPLUS, 0},       {"softsign", NERVE_ACT_SOFTSIGN, 0},
    {"relu6", NERVE_ACT_RELU6, 0},             {"ramp", NERVE_ACT_RAMP, 0},
};

nerve_act nerve_act_default(nerve_act_type type)
{
    nerve_act a = {type, 0.0f, 0.0f};
    switch (type) {
    case NERVE_ACT_SIGMOID:      a.alpha = 1.0f; break;
    case NERVE_ACT_HARD_SIGMOID: a.alpha = 0.2f; a.beta = 0.5f; break;
    case NERVE_ACT_LEAKY_RELU:   a.alpha = 0.01f; break;
    case NERVE_ACT_ELU:          a.alpha = 1.0f; break;
    case NERVE_ACT_SELU:         a.alpha = SELU_ALPHA; a.beta = SELU_LAMBDA; break;
    case NERVE_ACT_RELU6:        a.alpha = 6.0f; break;
    case NERVE_ACT_RAMP:         a.alpha = 0.1f; break;
    default:                     break;
    }
    return a;
}

const char *nerve_act_name(nerve_act_type type)
{
    if ((int)type < 0 || type >= NERVE_ACT_COUNT)
        return "unknown";
    return canonical_names[type];
}

int nerve_act_parse(const char *name, nerve_act *out)
{
    if (!name || !out)
        return nerve_set_error(NERVE_ERR_ARG, "nerve_act_parse: null argument");
    for (size_t i = 0; i < NERVE_ARRAY_LEN(act_aliases); i++)
        if (strcasecmp(name, act_aliases[i].name) == 0) {
            *out = nerve_act_default(act_aliases[i].type);
            if (act_aliases[i].alpha != 0.0f)
                out->alpha = act_aliases[i].alpha;
            return NERVE_OK;
        }
    char valid[512];
    size_t len = 0;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(act_aliases) && len < sizeof valid; i++)
        len += (size_t)snprintf(valid + len, sizeof valid - len, "%s%s", i ? ", " : "",
                                act_aliases[i].name);
    return nerve_set_error(NERVE_ERR_ARG, "unknown activation '%s' (valid: %s)", name, valid);
}

/* ---- activation: attr.activation --------------------------------------------------------- */

static int same_shape_infer(nerve_graph *g, node *n)
{
    node_copy_shape(n, node_input(g, n, 0));
    return NERVE_OK;
}

/* One activation pass over a range of elements, as a thread-pool task. */
typedef struct act_job {
    nerve_act_type type;
    float alpha, beta;
    const float *u, *y, *dy;
    float *out; /* forward: y; backward: du */
    int overwrite; /* backward: du is fresh, write it instead of adding */
} act_job;

/* y[i] = phi(u[i]) over n elements. u == y (in place) is fine: each element is read before
 * it is written. One loop per type, so that the type is a constant inside it. */
OPS_INLINE void act_forward_span(nerve_act_type type, float alpha, float beta, const float *u,
                                 float *y, size_t n)
{
    switch (type) {
#define FORWARD_LOOP(T)                                    \
    case T:                                                \
        for (size_t i = 0; i < n; i++)                     \
            y[i] = act_value(T, alpha, beta, u[i]);        \
        break;
        ACT_TYPES(FORWARD_LOOP)
#undef FORWARD_LOOP
    default:
        if (y != u)
            memcpy(y, u, n * sizeof(float));
    }
}

KERN_ISA_CLONES(act_forward_range, (void *ctx, size_t begin, size_t end), (ctx, begin, end))
{
    const act_job *j = ctx;
    float *y = j->out + begin;
    if (j->u == j->out) /* in place: one pointer, so the compiler needs no overlap test */
        act_forward_span(j->type, j->alpha, j->beta, y, y, end - begin);
    else
        act_forward_span(j->type, j->alpha, j->beta, j->u + begin, y, end - begin);
}

static void activation_forward(nerve_graph *g, node *n)
{
    act_job j = {n->attr.activation.type, n->attr.activation.alpha, n->attr.activation.beta,
                 node_input(g, n, 0)->value, NULL, NULL, n->value, 0};
    kern_parallel_for(node_numel(n), OPS_GRAIN, act_forward_range, &j);
}

/* du[i] += term(i) over i < n, or du[i] = term(i) when overwrite (du is a fresh gradient
 * buffer: no zeroing, no read). Two loops, so that each vectorises without a test. */
#define ACCUMULATE(overwrite, du, n, term)      \
    do {                                        \
        if (overwrite)                          \
            for (size_t i = 0; i < (n); i++)    \
                (du)[i] = (term);               \
        else                                    \
            for (size_t i = 0; i < (n); i++)    \
                (du)[i] += (term);              \
    } while (0)

/* du[i] (+)= dy[i] * phi'(y[i]) over n elements (du never aliases y or dy). */
OPS_INLINE void act_backward_span_from_output(nerve_act_type type, float alpha, float beta,
                                              const float *restrict y,
                                              const float *restrict dy, float *restrict du,
                                              size_t n, int overwrite)
{
    switch (type) {
#define BACKWARD_LOOP(T)                                                                    \
    case T:                                                                                 \
        ACCUMULATE(overwrite, du, n, dy[i] * act_derivative_from_output(T, alpha, beta, y[i])); \
        break;
        ACT_TYPES(BACKWARD_LOOP)
#undef BACKWARD_LOOP
    default:
        ACCUMULATE(overwrite, du, n, dy[i]);
    }
}

/* du[i] (+)= dy[i] * phi'(u[i]) for the types whose derivative needs the input. */
OPS_INLINE void act_backward_span_from_input(nerve_act_type type, float alpha, float beta,
                                             const float *restrict u,
                                             const float *restrict dy, float *restrict du,
                                             size_t n, int overwrite)
{
    switch (type) {
#define BACKWARD_LOOP(T)                                                                   \
    case T:                                                                                \
        ACCUMULATE(overwrite, du, n, dy[i] * act_derivative_from_input(T, alpha, beta, u[i])); \
        break;
        BACKWARD_LOOP(NERVE_ACT_LEAKY_RELU)
        BACKWARD_LOOP(NERVE_ACT_ELU)
        BACKWARD_LOOP(NERVE_ACT_SELU)
#undef BACKWARD_LOOP
    default:
        ACCUMULATE(overwrite, du, n, dy[i] * act_derivative_from_input(type, alpha, beta, u[i]));
    }
}

/* u is NULL when the derivative comes from the output; overwrite says du is fresh. */
KERN_ISA_CLONES(act_backward_range, (void *ctx, size_t begin, size_t end), (ctx, begin, end))
{
    const act_job *j = ctx;
    if (j->u)
        act_backward_span_from_input(j->type, j->alpha, j->beta, j->u + begin, j->dy + begin,
                                     j->out + begin, end - begin, j->overwrite);
    else
        act_backward_span_from_output(j->type, j->alpha, j->beta, j->y + begin,
                                      j->dy + begin, j->out + begin, end - begin, j->overwrite);
}

/* The deconvnet (y NULL: du (+)= max(dy, 0)) and guided (du (+)= dy where y > 0 and
 * dy > 0) ReLU backward passes of nerve_graph_set_relu_backward. */
typedef struct {
    const float *y, *dy;
    float *du;
    int overwrite;
} relu_job;

static void relu_modified_range(void *ctx, size_t begin, size_t end)
{
    const relu_job *j = ctx;
    const float *dy = j->dy + begin;
    float *du = j->du + begin;
    size_t n = end - begin;
    if (j->y) {
        const float *y = j->y + begin;
        ACCUMULATE(j->overwrite, du, n, y[i] > 0.0f && dy[i] > 0.0f ? dy[i] : 0.0f);
    } else
        ACCUMULATE(j->overwrite, du, n, dy[i] > 0.0f ? dy[i] : 0.0f);
}

static void activation_backward(nerve_graph *g, node *n)
{
    float *du = node_input_grad(g, n, 0);
    if (!du)
        return;
    int overwrite = node_input_grad_fresh(g, n, 0);
    nerve_act_type type = n->attr.activation.type;
    if (type == NERVE_ACT_STEP) { /* the step's gradient is zero: nothing to add */
        if (overwrite)            /* but a fresh buffer must still read as zero */
            node_zero_input_grad(g, n, 0);
        return;
    }
    if (type == NERVE_ACT_RELU && g->relu_backward != NERVE_RELU_BACKPROP) {
        relu_job j = {g->relu_backward == NERVE_RELU_GUIDED ? n->value : NULL, n->grad, du, overwrite};
        kern_parallel_for(node_numel(n), OPS_GRAIN, relu_modified_range, &j);
        return;
    }
    float alpha = n->attr.activation.alpha, beta = n->attr.activation.beta;
    const float *u = act_derivative_needs_input(type, alpha, beta) ? node_input(g, n, 0)->value
                                                                   : NULL;
    act_job j = {type, alpha, beta, u, n->value, n->grad, du, overwrite};
    kern_parallel_for(node_numel(n), OPS_GRAIN, act_backward_range, &j);
}

static const op_def op_activation = {"activation", same_shape_infer, NULL, activation_forward,
                                     activation_backward,
                                     OP_INPLACE | OP_GRAD_OVERWRITE};

int nerve_activation(nerve_graph *g, int x, nerve_act act)
{
    if ((int)act.type < 0 || act.type >= NERVE_ACT_COUNT)
        return nerve_set_error(NERVE_ERR_ARG, "activation: unknown type %d", (int)act.type);
    if (!isfinite(act.alpha) || !isfinite(act.beta))
        return nerve_set_error(NERVE_ERR_ARG, "activation %s: alpha and beta must be finite",
                               nerve_act_name(act.type));
    node_attr at;
    memset(&at, 0, sizeof at);
    at.activation = act;
    int id = graph_add_op(g, &op_activation, 1, (int[]){x}, &at, nerve_act_name(act.type));
    if (id < 0)
        return id;
    /* For the memory plan: in place only where the backward reads y, dy and du alone; a
     * plain ReLU may be folded into a batch norm before it. */
    node *n = graph_node(g, id);
    if (act_derivative_needs_input(act.type, act.alpha, act.beta))
        n->flags &= ~(unsigned)OP_INPLACE;
    if (act.type == NERVE_ACT_RELU)
        n->flags |= OP_PLAIN_RELU;
    return id;
}

/* ---- axis views ---------------------------------------------------------------------- */

/* A tensor seen as [outer, len, inner] around one axis: element (o, j, k) lies at
 * (o * len + j) * inner + k. */
typedef struct {
    size_t outer, len, inner;
} axis_view;

static axis_view view_around(const node *n, int axis)
{
    axis_view v = {1, (size_t)n->dims[axis], 1};
    for (int d = 0; d < axis; d++)
        v.outer *= (size_t)n->dims[d];
    for (int d = axis + 1; d < n->ndim; d++)
        v.inner *= (size_t)n->dims[d];
    return v;
}

/* ---- prelu: inputs x, slope ([1] shared or [C] per channel, axis 1) ------------------------ */

static int prelu_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *a = node_input(g, n, 1);
    if (a->ndim != 1)
        return op_shape_error(n, "slope must be 1-D ([1] or [channels]), got rank %d", a->ndim);
    if (a->dims[0] != 1 && (x->ndim < 2 || a->dims[0] != x->dims[1]))
        return op_shape_error(n, "slope has %d entries; needs 1 or one per channel (axis 1 of x%s)",
                              a->dims[0], x->ndim < 2 ? ", which has none" : "");
    node_copy_shape(n, x);
    return NERVE_OK;
}

/* A shared slope sees x as one channel; a per-channel slope as [N, C, rest]. */
static axis_view prelu_view(nerve_graph *g, const node *n)
{
    const node *x = node_input(g, n, 0), *a = node_input(g, n, 1);
    if (a->dims[0] == 1 || x->ndim < 2)
        return (axis_view){1, 1, node_numel(x)};
    return view_around(x, 1);
}

static void prelu_forward(nerve_graph *g, node *n)
{
    const float *u = node_input(g, n, 0)->value, *slope = node_input(g, n, 1)->value;
    axis_view v = prelu_view(g, n);
    for (size_t o = 0; o < v.outer; o++)
        for (size_t c = 0; c < v.len; c++) {
            size_t base = (o * v.len + c) * v.inner;
            for (size_t k = 0; k < v.inner; k++)
                n->value[base + k] = act_value(NERVE_ACT_LEAKY_RELU, slope[c], 0.0f, u[base + k]);
        }
}

static void prelu_backward(nerve_graph *g, node *n)
{
    const float *u = node_input(g, n, 0)->value, *slope = node_input(g, n, 1)->value;
    float *du = node_input_grad(g, n, 0), *dslope = node_input_grad(g, n, 1);
    axis_view v = prelu_view(g, n);
    for (size_t c = 0; c < v.len; c++) {
        double ds = 0.0;
        for (size_t o = 0; o < v.outer; o++) {
            size_t base = (o * v.len + c) * v.inner;
            for (size_t k = 0; k < v.inner; k++) {
                float x = u[base + k], dy = n->grad[base + k];
                if (du)
                    du[base + k] += dy * act_derivative_from_input(NERVE_ACT_LEAKY_RELU, slope[c], 0.0f, x);
                if (x <= 0.0f)
                    ds += (double)dy * x;
            }
        }
        if (dslope)
            dslope[c] += (float)ds;
    }
}

static const op_def op_prelu = {"prelu", prelu_infer, NULL, prelu_forward, prelu_backward, 0};

int nerve_prelu(nerve_graph *g, int x, int slope)
{
    return graph_add_op(g, &op_prelu, 2, (int[]){x, slope}, NULL, "prelu");
}

/* ---- softmax and log_softmax: attr.softmax (the axis as given) ---------------------------- */

static int softmax_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    if (normalize_axis(n->attr.softmax.axis, x->ndim) < 0)
        return op_shape_error(n, "axis %d outside a rank-%d input", n->attr.softmax.axis, x->ndim);
    node_copy_shape(n, x);
    return NERVE_OK;
}

/* One softmax row: len values spaced by `stride`. Subtracting the max keeps every exp()
 * at most 1; log-softmax uses log-sum-exp instead of log(softmax), which underflows. */
static void softmax_row(const float *u, float *y, size_t len, size_t stride, int log_space)
{
    float m = u[0];
    for (size_t j = 1; j < len; j++)
        m = fmaxf(m, u[j * stride]);
    double sum = 0.0;
    for (size_t j = 0; j < len; j++) {
        float e = expf(u[j * stride] - m);
        if (!log_space)
            y[j * stride] = e;
        sum += e;
    }
    if (log_space) {
        float log_sum = (float)log(sum);
        for (size_t j = 0; j < len; j++)
            y[j * stride] = (u[j * stride] - m) - log_sum;
    } else {
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < len; j++)
            y[j * stride] *= inv;
    }
}

/* Backward of one row, added into du: with p = softmax,
 *   softmax:     du += y (dy - sum dy y)
 *   log_softmax: du += dy - p sum dy,  p = e^y */
static void softmax_row_backward(const float *y, const float *dy, float *du, size_t len,
                                 size_t stride, int log_space)
{
    double dot = 0.0;
    for (size_t j = 0; j < len; j++)
        dot += log_space ? (double)dy[j * stride] : (double)dy[j * stride] * y[j * stride];
    float s = (float)dot;
    for (size_t j = 0; j < len; j++) {
        size_t i = j * stride;
        du[i] += log_space ? dy[i] - expf(y[i]) * s : y[i] * (dy[i] - s);
    }
}

static void softmax_forward(nerve_graph *g, node *n)
{
    const float *u = node_input(g, n, 0)->value;
    axis_view v = view_around(n, normalize_axis(n->attr.softmax.axis, n->ndim));
    for (size_t o = 0; o < v.outer; o++)
        for (size_t k = 0; k < v.inner; k++) {
            size_t base = o * v.len * v.inner + k;
            softmax_row(u + base, n->value + base, v.len, v.inner, n->attr.softmax.log_space);
        }
}

static void softmax_backward(nerve_graph *g, node *n)
{
    float *du = node_input_grad(g, n, 0);
    if (!du)
        return;
    axis_view v = view_around(n, normalize_axis(n->attr.softmax.axis, n->ndim));
    for (size_t o = 0; o < v.outer; o++)
        for (size_t k = 0; k < v.inner; k++) {
            size_t base = o * v.len * v.inner + k;
            softmax_row_backward(n->value + base, n->grad + base, du + base, v.len, v.inner,
                                 n->attr.softmax.log_space);
        }
}

static const op_def op_softmax = {"softmax", softmax_infer, NULL, softmax_forward,
                                  softmax_backward, 0};
static const op_def op_log_softmax = {"log_softmax", softmax_infer, NULL, softmax_forward,
                                      softmax_backward, 0};

static int add_softmax(nerve_graph *g, int x, int axis, int log_space)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.softmax.axis = axis;
    at.softmax.log_space = log_space;
    const op_def *op = log_space ? &op_log_softmax : &op_softmax;
    return graph_add_op(g, op, 1, (int[]){x}, &at, op->name);
}

int nerve_softmax(nerve_graph *g, int x, int axis) { return add_softmax(g, x, axis, 0); }
int nerve_log_softmax(nerve_graph *g, int x, int axis) { return add_softmax(g, x, axis, 1); }

const op_def *const ops_activation[] = {&op_activation, &op_prelu, &op_softmax, &op_log_softmax,
                                        NULL};
