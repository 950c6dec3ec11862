/* The operator table: every family's operators, found by name (op_find), and the builders
 * that add an operator node by name from named, typed attributes (nerve_op_build). Each
 * builder calls the operator's direct function, so a node built by name is the node that
 * function builds. The cfg builder uses this table, and so will model importers. */
#include "ops.h"

#include <limits.h>
#include <string.h>

static const op_def *const *const families[] = {
    ops_linear, ops_elementwise, ops_reduce, ops_shape, ops_activation, ops_loss, ops_norm,
    ops_recurrent, ops_conv, ops_pool, ops_resample, ops_lrn, ops_roi, ops_rcnn, ops_detection, ops_yolo,
    ops_math, ops_ssd,
};

const op_def *op_find(const char *name)
{
    for (size_t f = 0; f < NERVE_ARRAY_LEN(families); f++)
        for (const op_def *const *op = families[f]; *op; op++)
            if (strcmp((*op)->name, name) == 0)
                return *op;
    return NULL;
}

/* ---- attributes ------------------------------------------------------------------------- */

#define MAX_OP_ATTRS 8

typedef struct attr_spec {
    const char *name;
    nerve_attr_type type;
    int required;
} attr_spec;

/* The attributes given, by the slot of their spec (NULL: not given). */
typedef struct op_args {
    const nerve_attr *at[MAX_OP_ATTRS];
} op_args;

typedef int (*op_build_fn)(nerve_graph *g, const int *in, int n_in, const op_args *a);

typedef struct op_entry {
    const char *name; /* the op_def name of the node it builds */
    int min_in, max_in;
    attr_spec attrs[MAX_OP_ATTRS];
    op_build_fn build;
} op_entry;

/* Optional attributes with their defaults (values were range-checked to int). */
static int int_or(const op_args *a, int k, int dflt) { return a->at[k] ? (int)a->at[k]->i : dflt; }
static float float_or(const op_args *a, int k, float dflt) { return a->at[k] ? a->at[k]->f : dflt; }
static const char *string_or(const op_args *a, int k, const char *dflt)
{
    return a->at[k] ? a->at[k]->s : dflt;
}
/* An input at index k, -1 when absent. */
static int input_or_none(const int *in, int n_in, int k) { return k < n_in ? in[k] : -1; }

/* An INTS attribute as ints (n <= NERVE_MAX_DIMS was checked). */
static void ints_of(const nerve_attr *at, int *out)
{
    for (int k = 0; k < at->n; k++)
        out[k] = (int)at->ints[k];
}

/* ---- builders ---------------------------------------------------------------------------- */

static int b_matmul(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_matmul(g, in[0], in[1], int_or(a, 0, 0), int_or(a, 1, 0));
}
static int b_dense(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)a;
    return nerve_dense(g, in[0], in[1], input_or_none(in, n_in, 2));
}
static int b_add(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_add(g, in[0], in[1]);
}
static int b_sub(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_sub(g, in[0], in[1]);
}
static int b_mul(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_mul(g, in[0], in[1]);
}
static int b_div(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_div(g, in[0], in[1]);
}
static int b_affine(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_affine(g, in[0], float_or(a, 0, 1.0f), float_or(a, 1, 0.0f));
}
static int b_sum(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_sum(g, in[0], int_or(a, 0, 0), int_or(a, 1, 0));
}
static int b_mean(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_mean(g, in[0], int_or(a, 0, 0), int_or(a, 1, 0));
}
static int b_reshape(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    int dims[NERVE_MAX_DIMS];
    ints_of(a->at[0], dims);
    return nerve_reshape(g, in[0], a->at[0]->n, dims);
}
static int b_flatten(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_flatten(g, in[0]);
}
static int b_concat(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    return nerve_concat(g, n_in, in, int_or(a, 0, 0));
}
static int b_slice(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_slice(g, in[0], int_or(a, 0, 0), int_or(a, 1, 0), int_or(a, 2, 0));
}
static int b_transpose(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    int dims[NERVE_MAX_DIMS], ndim = 0;
    int st = nerve_node_shape(g, in[0], &ndim, dims);
    if (st < 0)
        return st;
    if (a->at[0]->n != ndim)
        return nerve_set_error(NERVE_ERR_ARG,
                               "operator 'transpose': attribute 'perm' has %d entries, the "
                               "input has %d axes",
                               a->at[0]->n, ndim);
    int perm[NERVE_MAX_DIMS];
    ints_of(a->at[0], perm);
    return nerve_transpose(g, in[0], perm);
}
static int b_activation(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    nerve_act act;
    if (nerve_act_parse(a->at[0]->s, &act) < 0)
        return nerve_set_error(NERVE_ERR_ARG,
                               "operator 'activation': attribute 'type' is '%s', which is no "
                               "activation",
                               a->at[0]->s);
    act.alpha = float_or(a, 1, act.alpha);
    act.beta = float_or(a, 2, act.beta);
    return nerve_activation(g, in[0], act);
}
static int b_prelu(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_prelu(g, in[0], in[1]);
}
static int b_softmax(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_softmax(g, in[0], int_or(a, 0, 0));
}
static int b_log_softmax(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_log_softmax(g, in[0], int_or(a, 0, 0));
}
static int b_mse(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_mse_loss(g, in[0], in[1], int_or(a, 0, 0));
}
static int b_l1(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_l1_loss(g, in[0], in[1]);
}
static int b_bce(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_bce_logits_loss(g, in[0], in[1]);
}
static int b_softmax_ce(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    return nerve_softmax_ce_loss(g, in[0], in[1], input_or_none(in, n_in, 2), float_or(a, 0, 0.0f));
}
static int b_nll(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)a;
    return nerve_nll_loss(g, in[0], in[1], input_or_none(in, n_in, 2));
}
static int b_hinge(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_hinge_loss(g, in[0], in[1]);
}
static int b_pixel_ce(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)a;
    return nerve_pixel_softmax_ce_loss(g, in[0], in[1], input_or_none(in, n_in, 2));
}
static int b_dropout(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_dropout(g, in[0], float_or(a, 0, 0.0f), int_or(a, 1, 0));
}
static int b_batchnorm(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_batchnorm(g, in[0], in[1], in[2], in[3], in[4], float_or(a, 0, 0.0f),
                           float_or(a, 1, 0.0f));
}
static int b_zscore(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_zscore(g, in[0], in[1], in[2]);
}
static int b_embedding(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_embedding(g, in[0], in[1]);
}
static int b_upsample(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    static const char *const modes[] = {[NERVE_UPSAMPLE_NEAREST] = "nearest",
                                        [NERVE_UPSAMPLE_BED_OF_NAILS] = "bed_of_nails",
                                        [NERVE_UPSAMPLE_BILINEAR] = "bilinear"};
    const char *mode = string_or(a, 1, "nearest");
    for (size_t m = 0; m < NERVE_ARRAY_LEN(modes); m++)
        if (strcmp(mode, modes[m]) == 0)
            return nerve_upsample(g, in[0], int_or(a, 0, 0), (nerve_upsample_mode)m);
    return nerve_set_error(NERVE_ERR_ARG,
                           "operator 'upsample': attribute 'mode' is '%s' (nearest, "
                           "bed_of_nails or bilinear)",
                           mode);
}
static int b_depth_to_space(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_depth_to_space(g, in[0], int_or(a, 0, 0));
}
static int b_space_to_depth(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_space_to_depth(g, in[0], int_or(a, 0, 0));
}
static int b_lrn(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_lrn(g, in[0], int_or(a, 0, NERVE_LRN_SIZE), float_or(a, 1, NERVE_LRN_ALPHA),
                     float_or(a, 2, NERVE_LRN_BETA), float_or(a, 3, NERVE_LRN_K), int_or(a, 4, 0));
}
static int b_max_unpool(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in, (void)a;
    return nerve_max_unpool(g, in[0], in[1]);
}

static int b_roi_pool(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_roi_pool(g, in[0], in[1], int_or(a, 0, 0), int_or(a, 1, 0), float_or(a, 2, 1.0f));
}

static int b_roi_align(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    return nerve_roi_align(g, in[0], in[1], int_or(a, 0, 0), int_or(a, 1, 0), float_or(a, 2, 1.0f),
                           int_or(a, 3, 0), int_or(a, 4, 0));
}

/* The convolution settings shared by conv, conv_transpose and local, for S spatial axes:
 * strides [S], pads [2S] (every axis's begin, then every axis's end), dilations [S], group,
 * same, flip; absent ones keep nerve_conv_default()'s values. */
static int conv_settings(const char *op, const op_args *a, int S, nerve_conv_config *c)
{
    *c = nerve_conv_default();
    if (S < 1 || S > 3)
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s': %d spatial axes (1 to 3)", op, S);
    static const char *const names[] = {"strides", "pads", "dilations"};
    for (int k = 0; k < 3; k++) {
        const nerve_attr *at = a->at[k];
        int want = k == 1 ? 2 * S : S;
        if (at && at->n != want)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "operator '%s': attribute '%s' has %d values, the kernel "
                                   "has %d spatial axes (%d values)",
                                   op, names[k], at->n, S, want);
    }
    for (int d = 0; d < S; d++) {
        if (a->at[0])
            c->stride[d] = (int)a->at[0]->ints[d];
        if (a->at[1]) {
            c->pad_begin[d] = (int)a->at[1]->ints[d];
            c->pad_end[d] = (int)a->at[1]->ints[S + d];
        }
        if (a->at[2])
            c->dilation[d] = (int)a->at[2]->ints[d];
    }
    c->groups = int_or(a, 3, 1);
    c->same = int_or(a, 4, 0);
    c->flip = int_or(a, 5, 0);
    return NERVE_OK;
}

/* Number of spatial axes: rank of node id minus `less`. */
static int spatial_axes(nerve_graph *g, int id, int less, int *S)
{
    int dims[NERVE_MAX_DIMS], nd = 0;
    int st = nerve_node_shape(g, id, &nd, dims);
    *S = nd - less;
    return st;
}

static int b_conv(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    int S, st = spatial_axes(g, in[1], 2, &S);
    nerve_conv_config c;
    if (st < 0 || (st = conv_settings("conv", a, S, &c)) < 0)
        return st;
    return nerve_conv(g, in[0], in[1], input_or_none(in, n_in, 2), &c);
}
static int b_conv_transpose(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    int S, st = spatial_axes(g, in[1], 2, &S);
    nerve_conv_config c;
    if (st < 0 || (st = conv_settings("conv_transpose", a, S, &c)) < 0)
        return st;
    int op[3] = {0, 0, 0};
    if (a->at[6]) {
        if (a->at[6]->n != S)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "operator 'conv_transpose': attribute 'output_padding' has "
                                   "%d values, the kernel has %d spatial axes",
                                   a->at[6]->n, S);
        ints_of(a->at[6], op);
    }
    return nerve_conv_transpose(g, in[0], in[1], input_or_none(in, n_in, 2), &c,
                                a->at[6] ? op : NULL);
}
static int b_local(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    int S, st = spatial_axes(g, in[0], 2, &S);
    nerve_conv_config c;
    if (st < 0 || (st = conv_settings("local", a, S, &c)) < 0)
        return st;
    return nerve_local(g, in[0], in[1], input_or_none(in, n_in, 2), &c);
}

static int b_pool(nerve_graph *g, const int *in, int n_in, const op_args *a)
{
    (void)n_in;
    static const char *const types[] = {[NERVE_POOL_MAX] = "max", [NERVE_POOL_AVG] = "avg",
                                        [NERVE_POOL_L2] = "l2",
                                        [NERVE_POOL_GLOBAL_AVG] = "global_avg",
                                        [NERVE_POOL_GLOBAL_MAX] = "global_max"};
    size_t t = 0;
    while (t < NERVE_ARRAY_LEN(types) && strcmp(types[t], a->at[0]->s) != 0)
        t++;
    if (t == NERVE_ARRAY_LEN(types))
        return nerve_set_error(NERVE_ERR_ARG,
                               "operator 'pool': attribute 'type' is '%s' (max, avg, l2, "
                               "global_avg or global_max)",
                               a->at[0]->s);
    nerve_pool_config c = nerve_pool_config_make((nerve_pool_type)t, 1, 0, 0);
    int global = t == NERVE_POOL_GLOBAL_AVG || t == NERVE_POOL_GLOBAL_MAX;
    if (!global && !a->at[1])
        return nerve_set_error(NERVE_ERR_ARG, "operator 'pool': type '%s' needs attribute "
                               "'kernel' (a list of ints)", types[t]);
    static const char *const names[] = {"type", "kernel", "strides", "pads"};
    int *dst[] = {NULL, c.kernel, c.stride, c.pad};
    for (int k = 1; k < 4; k++) {
        if (!a->at[k])
            continue;
        if (a->at[k]->n != 2)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "operator 'pool': attribute '%s' has %d values (2: height, "
                                   "width)",
                                   names[k], a->at[k]->n);
        ints_of(a->at[k], dst[k]);
    }
    c.ceil_mode = int_or(a, 4, 0);
    c.count_include_pad = int_or(a, 5, 0);
    return nerve_pool(g, in[0], &c);
}

#define INT_ATTR(n) {n, NERVE_ATTR_INT, 0}
#define INT_REQ(n) {n, NERVE_ATTR_INT, 1}
#define FLOAT_ATTR(n) {n, NERVE_ATTR_FLOAT, 0}
#define FLOAT_REQ(n) {n, NERVE_ATTR_FLOAT, 1}
#define INTS_ATTR(n) {n, NERVE_ATTR_INTS, 0}
#define CONV_ATTRS                                                                         \
    {INTS_ATTR("strides"), INTS_ATTR("pads"), INTS_ATTR("dilations"), INT_ATTR("group"),   \
     INT_ATTR("same"), INT_ATTR("flip")}

/* docs/ops.md lists this table; tests/test_op_build.c checks both against each other. */
static const op_entry table[] = {
    {.name = "matmul", .min_in = 2, .max_in = 2, .attrs = {INT_ATTR("trans_a"), INT_ATTR("trans_b")},
     .build = b_matmul},
    {.name = "dense", .min_in = 2, .max_in = 3, .build = b_dense},
    {.name = "add", .min_in = 2, .max_in = 2, .build = b_add},
    {.name = "sub", .min_in = 2, .max_in = 2, .build = b_sub},
    {.name = "mul", .min_in = 2, .max_in = 2, .build = b_mul},
    {.name = "div", .min_in = 2, .max_in = 2, .build = b_div},
    {.name = "affine", .min_in = 1, .max_in = 1, .attrs = {FLOAT_ATTR("scale"), FLOAT_ATTR("shift")},
     .build = b_affine},
    {.name = "sum", .min_in = 1, .max_in = 1, .attrs = {INT_REQ("axis"), INT_ATTR("keepdim")},
     .build = b_sum},
    {.name = "mean", .min_in = 1, .max_in = 1, .attrs = {INT_REQ("axis"), INT_ATTR("keepdim")},
     .build = b_mean},
    {.name = "reshape", .min_in = 1, .max_in = 1, .attrs = {{"shape", NERVE_ATTR_INTS, 1}},
     .build = b_reshape},
    {.name = "flatten", .min_in = 1, .max_in = 1, .build = b_flatten},
    {.name = "concat", .min_in = 1, .max_in = NERVE_MAX_INPUTS, .attrs = {INT_REQ("axis")},
     .build = b_concat},
    {.name = "slice", .min_in = 1, .max_in = 1,
     .attrs = {INT_REQ("axis"), INT_REQ("start"), INT_REQ("end")}, .build = b_slice},
    {.name = "transpose", .min_in = 1, .max_in = 1, .attrs = {{"perm", NERVE_ATTR_INTS, 1}},
     .build = b_transpose},
    {.name = "activation", .min_in = 1, .max_in = 1,
     .attrs = {{"type", NERVE_ATTR_STRING, 1}, FLOAT_ATTR("alpha"), FLOAT_ATTR("beta")},
     .build = b_activation},
    {.name = "prelu", .min_in = 2, .max_in = 2, .build = b_prelu},
    {.name = "softmax", .min_in = 1, .max_in = 1, .attrs = {INT_REQ("axis")}, .build = b_softmax},
    {.name = "log_softmax", .min_in = 1, .max_in = 1, .attrs = {INT_REQ("axis")},
     .build = b_log_softmax},
    {.name = "mse_loss", .min_in = 2, .max_in = 2, .attrs = {INT_ATTR("half")}, .build = b_mse},
    {.name = "l1_loss", .min_in = 2, .max_in = 2, .build = b_l1},
    {.name = "bce_logits_loss", .min_in = 2, .max_in = 2, .build = b_bce},
    {.name = "softmax_ce_loss", .min_in = 2, .max_in = 3, .attrs = {FLOAT_ATTR("smoothing")},
     .build = b_softmax_ce},
    {.name = "nll_loss", .min_in = 2, .max_in = 3, .build = b_nll},
    {.name = "hinge_loss", .min_in = 2, .max_in = 2, .build = b_hinge},
    {.name = "pixel_softmax_ce_loss", .min_in = 2, .max_in = 3, .build = b_pixel_ce},
    {.name = "conv", .min_in = 2, .max_in = 3, .attrs = CONV_ATTRS, .build = b_conv},
    {.name = "conv_transpose", .min_in = 2, .max_in = 3,
     .attrs = {INTS_ATTR("strides"), INTS_ATTR("pads"), INTS_ATTR("dilations"), INT_ATTR("group"),
               INT_ATTR("same"), INT_ATTR("flip"), INTS_ATTR("output_padding")},
     .build = b_conv_transpose},
    {.name = "local", .min_in = 2, .max_in = 3, .attrs = CONV_ATTRS, .build = b_local},
    {.name = "pool", .min_in = 1, .max_in = 1,
     .attrs = {{"type", NERVE_ATTR_STRING, 1}, INTS_ATTR("kernel"), INTS_ATTR("strides"),
               INTS_ATTR("pads"), INT_ATTR("ceil_mode"), INT_ATTR("count_include_pad")},
     .build = b_pool},
    {.name = "dropout", .min_in = 1, .max_in = 1, .attrs = {FLOAT_REQ("p"), INT_ATTR("spatial")},
     .build = b_dropout},
    {.name = "batchnorm", .min_in = 5, .max_in = 5,
     .attrs = {FLOAT_REQ("momentum"), FLOAT_REQ("eps")}, .build = b_batchnorm},
    {.name = "zscore", .min_in = 3, .max_in = 3, .build = b_zscore},
    {.name = "embedding", .min_in = 2, .max_in = 2, .build = b_embedding},
    {.name = "upsample", .min_in = 1, .max_in = 1,
     .attrs = {INT_REQ("scale"), {"mode", NERVE_ATTR_STRING, 0}}, .build = b_upsample},
    {.name = "depth_to_space", .min_in = 1, .max_in = 1, .attrs = {INT_REQ("block")},
     .build = b_depth_to_space},
    {.name = "space_to_depth", .min_in = 1, .max_in = 1, .attrs = {INT_REQ("block")},
     .build = b_space_to_depth},
    {.name = "lrn", .min_in = 1, .max_in = 1,
     .attrs = {INT_ATTR("size"), FLOAT_ATTR("alpha"), FLOAT_ATTR("beta"), FLOAT_ATTR("k"),
               INT_ATTR("within_map")},
     .build = b_lrn},
    {.name = "max_unpool", .min_in = 2, .max_in = 2, .build = b_max_unpool},
    {.name = "roi_pool", .min_in = 2, .max_in = 2,
     .attrs = {INT_REQ("out_h"), INT_REQ("out_w"), FLOAT_ATTR("spatial_scale")},
     .build = b_roi_pool},
    {.name = "roi_align", .min_in = 2, .max_in = 2,
     .attrs = {INT_REQ("out_h"), INT_REQ("out_w"), FLOAT_ATTR("spatial_scale"),
               INT_ATTR("sampling_ratio"), INT_ATTR("aligned")},
     .build = b_roi_align},
};

const char *op_buildable_name(int i)
{
    return i >= 0 && (size_t)i < NERVE_ARRAY_LEN(table) ? table[i].name : NULL;
}

static const char *type_name(nerve_attr_type t)
{
    switch (t) {
    case NERVE_ATTR_INT:    return "an int";
    case NERVE_ATTR_FLOAT:  return "a float";
    case NERVE_ATTR_INTS:   return "a list of ints";
    case NERVE_ATTR_STRING: return "a string";
    }
    return "of no known type";
}

/* "axis, keepdim" or "none" */
static void list_attrs(const op_entry *e, char *out, size_t size)
{
    size_t used = 0;
    out[0] = 0;
    for (int k = 0; k < MAX_OP_ATTRS && e->attrs[k].name; k++) {
        int n = snprintf(out + used, size - used, "%s%s", k ? ", " : "", e->attrs[k].name);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    if (!out[0])
        snprintf(out, size, "none");
}

/* Checks one attribute against the entry's specs and files it in args. */
static int take_attr(const op_entry *e, const nerve_attr *at, op_args *args)
{
    if (!at->name)
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s': an attribute has no name", e->name);
    int k = 0;
    while (k < MAX_OP_ATTRS && e->attrs[k].name && strcmp(e->attrs[k].name, at->name) != 0)
        k++;
    if (k == MAX_OP_ATTRS || !e->attrs[k].name) {
        char names[128];
        list_attrs(e, names, sizeof names);
        return nerve_set_error(NERVE_ERR_ARG,
                               "operator '%s' has no attribute '%s' (its attributes: %s)",
                               e->name, at->name, names);
    }
    const attr_spec *s = &e->attrs[k];
    if (args->at[k])
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s': attribute '%s' is given twice",
                               e->name, at->name);
    if (at->type != s->type)
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s': attribute '%s' must be %s, not %s",
                               e->name, at->name, type_name(s->type), type_name(at->type));
    switch (at->type) {
    case NERVE_ATTR_INT:
        if (at->i < INT_MIN || at->i > INT_MAX)
            return nerve_set_error(NERVE_ERR_ARG, "operator '%s': attribute '%s' = %lld is out "
                                   "of range", e->name, at->name, (long long)at->i);
        break;
    case NERVE_ATTR_INTS:
        if (at->n < 0 || at->n > NERVE_MAX_DIMS || (at->n > 0 && !at->ints))
            return nerve_set_error(NERVE_ERR_ARG, "operator '%s': attribute '%s' has %d values "
                                   "(0 to %d)", e->name, at->name, at->n, NERVE_MAX_DIMS);
        for (int v = 0; v < at->n; v++)
            if (at->ints[v] < INT_MIN || at->ints[v] > INT_MAX)
                return nerve_set_error(NERVE_ERR_ARG, "operator '%s': attribute '%s'[%d] = %lld "
                                       "is out of range", e->name, at->name, v,
                                       (long long)at->ints[v]);
        break;
    case NERVE_ATTR_STRING:
        if (!at->s)
            return nerve_set_error(NERVE_ERR_ARG, "operator '%s': attribute '%s' is a null "
                                   "string", e->name, at->name);
        break;
    case NERVE_ATTR_FLOAT:
        break;
    }
    args->at[k] = at;
    return NERVE_OK;
}

int nerve_op_build(nerve_graph *g, const char *op, const int *inputs, int n_inputs,
                   const nerve_attr *attrs, int n_attrs)
{
    if (!g || !op)
        return nerve_set_error(NERVE_ERR_ARG, "nerve_op_build: null graph or operator name");
    const op_entry *e = NULL;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(table) && !e; i++)
        if (strcmp(table[i].name, op) == 0)
            e = &table[i];
    if (!e)
        return op_find(op) ? nerve_set_error(NERVE_ERR_ARG,
                                              "operator '%s' cannot be built by name: call its "
                                              "nerve_ function",
                                              op)
                           : nerve_set_error(NERVE_ERR_ARG, "unknown operator '%s'", op);
    if (n_inputs > 0 && !inputs)
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s': null input list", op);
    if (n_inputs < e->min_in || n_inputs > e->max_in) {
        if (e->min_in == e->max_in)
            return nerve_set_error(NERVE_ERR_ARG, "operator '%s' takes %d inputs, not %d", op,
                                   e->min_in, n_inputs);
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s' takes %d to %d inputs, not %d", op,
                               e->min_in, e->max_in, n_inputs);
    }
    if (n_attrs < 0 || (n_attrs > 0 && !attrs))
        return nerve_set_error(NERVE_ERR_ARG, "operator '%s': %d attributes at %p", op, n_attrs,
                               (const void *)attrs);
    op_args args = {{0}};
    for (int i = 0; i < n_attrs; i++) {
        int st = take_attr(e, &attrs[i], &args);
        if (st < 0)
            return st;
    }
    for (int k = 0; k < MAX_OP_ATTRS && e->attrs[k].name; k++)
        if (e->attrs[k].required && !args.at[k])
            return nerve_set_error(NERVE_ERR_ARG, "operator '%s' needs attribute '%s' (%s)", op,
                                   e->attrs[k].name, type_name(e->attrs[k].type));
    return e->build(g, inputs, n_inputs, &args);
}

nerve_attr nerve_attr_int(const char *name, int64_t v)
{
    return (nerve_attr){.name = name, .type = NERVE_ATTR_INT, .i = v};
}
nerve_attr nerve_attr_float(const char *name, float v)
{
    return (nerve_attr){.name = name, .type = NERVE_ATTR_FLOAT, .f = v};
}
nerve_attr nerve_attr_ints(const char *name, const int64_t *v, int n)
{
    return (nerve_attr){.name = name, .type = NERVE_ATTR_INTS, .ints = v, .n = n};
}
nerve_attr nerve_attr_string(const char *name, const char *v)
{
    return (nerve_attr){.name = name, .type = NERVE_ATTR_STRING, .s = v};
}
