/* Export of a nerve model to ONNX (docs/onnx.md, "Export"), and ONNX files that nerve wrote
 * back into checkpoints.
 *
 * The model's graph is walked from its output node back: every operator node the output
 * needs becomes one or a few ONNX nodes (opset 13), every parameter and statistic an
 * initializer named after its node, the model input a graph input whose batch dimension is
 * the symbolic "N". Which dimensions follow the batch is learnt by inferring the graph's
 * shapes at batch 1 and at batch 2 (a reshape keeps -1 there). Batch norm is exported in
 * its inference form with the running statistics, dropout as nothing (its input's value),
 * the recurrent operator as ONNX's LSTM / GRU / RNN with the gates reordered, a carried
 * recurrent state as zeros. A classifier's logits get a second output, their softmax.
 * An operator without an ONNX form stops the export with a message naming the node and
 * the cfg layer it belongs to.
 *
 * Each initializer records where its values come from (a node, copied or transformed), so
 * that an ONNX file nerve wrote converts back into a checkpoint: the model is rebuilt from
 * the cfg kept in its metadata and every initializer is mapped back (nerve_onnx_to_model). */
#include "model.h"
#include "../graph/graph.h"
#include "../io/json.h"
#include "../io/onnx.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_OPSET 13
#define EXPORT_IR_VERSION 7

/* where an initializer's values come from */
enum {
    SRC_NONE = 0, /* a constant of the export (shapes, scales, masks) */
    SRC_COPY,     /* the node's value, possibly with other dims of the same count */
    SRC_FLIP,     /* a conv weight with its taps reversed (a true convolution) */
    SRC_STD,      /* a z-score std with 0 replaced by 1 (as nerve reads it) */
    SRC_RNN_W,    /* LSTM/GRU/RNN inputs W, R, B, P of an rnn node */
    SRC_RNN_R,
    SRC_RNN_B,
    SRC_RNN_P
};

typedef struct xp {
    nerve_model *m;
    nerve_graph *g;
    onnx_model *om;
    int cap_nodes, cap_init;
    int st;                       /* first failure; later calls do nothing */
    char **vname;                 /* ONNX value of each graph node (NULL: not made yet) */
    char **yh, **yc;              /* an rnn node's final hidden and cell states */
    int (*d1)[NERVE_MAX_DIMS];    /* shapes at batch 1 and 2 */
    int (*d2)[NERVE_MAX_DIMS];
    unsigned char *needed;
    unsigned char *borrowed;      /* per initializer: f points into a node's value */
    int *src, *src_kind;          /* per initializer */
    char **names;                 /* every ONNX name given out (uniqueness) */
    int n_names, cap_names;
    int tmp;
} xp;

static node *gn(xp *e, int id) { return &e->g->nodes[id]; }

static int fail_nomem(xp *e)
{
    if (!e->st)
        e->st = NERVE_ERR_NOMEM;
    return e->st;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *c = nerve_xmalloc(n + 1);
    if (c)
        memcpy(c, s, n + 1);
    return c;
}

/* The cfg layer a node belongs to, for messages ("" when the graph has no layers). */
static void layer_of(xp *e, int id, char *buf, size_t size)
{
    buf[0] = 0;
    nerve_model *m = e->m;
    for (int i = 0; m && i < m->n_layers; i++)
        if (m->layer_out[i] >= id) {
            snprintf(buf, size, " in layer %d [%s] '%s' (%s line %d)", i, m->layers[i].type,
                     m->layers[i].name, m->file[0] ? m->file : "cfg", m->layers[i].line);
            return;
        }
}

static int refuse(xp *e, int id, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int refuse(xp *e, int id, const char *fmt, ...)
{
    if (e->st)
        return e->st;
    char why[256], where[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    layer_of(e, id, where, sizeof where);
    node *n = gn(e, id);
    e->st = nerve_set_error(NERVE_ERR_ARG,
                            "ONNX export: node '%s' (operator '%s')%s: %s; exportable operators: "
                            "dense, conv, conv_transpose, pool, lrn, batchnorm, zscore, dropout, "
                            "activation, prelu, softmax, log_softmax, add, sub, mul, div, pow, "
                            "maximum, minimum, affine, concat, slice, transpose, reshape, flatten, "
                            "upsample, depth_to_space, space_to_depth, pad, embedding, rnn (RNN, LSTM, "
                            "GRU), rnn_state",
                            n->name, n->op ? n->op->name : "leaf", where, why);
    return e->st;
}

/* ---- names ---------------------------------------------------------------------------- */

static int name_used(xp *e, const char *s)
{
    for (int k = 0; k < e->n_names; k++)
        if (!strcmp(e->names[k], s))
            return 1;
    return 0;
}

/* A name not given out before: base, else base_2, base_3, ... (stored by e). */
static const char *uniq(xp *e, const char *base)
{
    if (e->st)
        return "";
    char buf[ONNX_MAX_NAME];
    snprintf(buf, sizeof buf, "%.200s", base[0] ? base : "v");
    for (int k = 2; name_used(e, buf); k++)
        snprintf(buf, sizeof buf, "%.200s_%d", base[0] ? base : "v", k);
    if (e->n_names == e->cap_names) {
        int cap = e->cap_names ? 2 * e->cap_names : 256;
        char **p = nerve_xrealloc(e->names, (size_t)cap * sizeof *p);
        if (!p)
            return fail_nomem(e), "";
        e->names = p;
        e->cap_names = cap;
    }
    char *c = dup_str(buf);
    if (!c)
        return fail_nomem(e), "";
    e->names[e->n_names++] = c;
    return c;
}

/* A helper value of node id: "<its name>/<what>". */
static const char *tmp_name(xp *e, int id, const char *what)
{
    char buf[ONNX_MAX_NAME];
    snprintf(buf, sizeof buf, "%.150s/%s", gn(e, id)->name, what);
    return uniq(e, buf);
}

/* ---- building the ONNX model ---------------------------------------------------------- */

static onnx_node *add_node(xp *e, const char *op, int id, int n_in, const char *const *in,
                           int n_out, const char *const *out)
{
    if (e->st)
        return NULL;
    onnx_model *om = e->om;
    if (om->n_nodes == e->cap_nodes) {
        int cap = e->cap_nodes ? 2 * e->cap_nodes : 64;
        onnx_node *p = nerve_xrealloc(om->nodes, (size_t)cap * sizeof *p);
        if (!p)
            return fail_nomem(e), NULL;
        om->nodes = p;
        e->cap_nodes = cap;
    }
    onnx_node *n = &om->nodes[om->n_nodes];
    memset(n, 0, sizeof *n);
    snprintf(n->op_type, sizeof n->op_type, "%s", op);
    char nm[ONNX_MAX_NAME];
    snprintf(nm, sizeof nm, "%.150s/%s", id >= 0 ? gn(e, id)->name : "graph", op);
    snprintf(n->name, sizeof n->name, "%s", uniq(e, nm));
    n->in = nerve_xcalloc((size_t)(n_in ? n_in : 1), sizeof(char *));
    n->out = nerve_xcalloc((size_t)(n_out ? n_out : 1), sizeof(char *));
    n->attr = nerve_xcalloc(8, sizeof(onnx_attr));
    om->n_nodes++; /* freed by onnx_model_free from here on */
    if (!n->in || !n->out || !n->attr)
        return fail_nomem(e), NULL;
    for (int k = 0; k < n_in; k++) {
        if (!(n->in[k] = dup_str(in[k])))
            return fail_nomem(e), NULL;
        n->n_in++;
    }
    for (int k = 0; k < n_out; k++) {
        if (!(n->out[k] = dup_str(out[k])))
            return fail_nomem(e), NULL;
        n->n_out++;
    }
    return n;
}

static onnx_attr *new_attr(xp *e, onnx_node *n, const char *name, int type)
{
    if (!n || e->st)
        return NULL;
    if (n->n_attr >= 8) {
        e->st = nerve_set_error(NERVE_ERR_ARG, "ONNX export: too many attributes on %s", n->name);
        return NULL;
    }
    onnx_attr *a = &n->attr[n->n_attr++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->type = type;
    return a;
}

static void attr_i(xp *e, onnx_node *n, const char *name, int64_t v)
{
    onnx_attr *a = new_attr(e, n, name, ONNX_ATTR_INT);
    if (a)
        a->i = v;
}

static void attr_f(xp *e, onnx_node *n, const char *name, float v)
{
    onnx_attr *a = new_attr(e, n, name, ONNX_ATTR_FLOAT);
    if (a)
        a->f = v;
}

static void attr_s(xp *e, onnx_node *n, const char *name, const char *v)
{
    onnx_attr *a = new_attr(e, n, name, ONNX_ATTR_STRING);
    if (!a)
        return;
    if (!(a->s = dup_str(v))) {
        fail_nomem(e);
        return;
    }
    a->s_len = strlen(v);
}

static void attr_ints(xp *e, onnx_node *n, const char *name, int count, const int64_t *v)
{
    onnx_attr *a = new_attr(e, n, name, ONNX_ATTR_INTS);
    if (!a)
        return;
    if (!(a->ints = nerve_xmalloc((size_t)(count ? count : 1) * sizeof(int64_t)))) {
        fail_nomem(e);
        return;
    }
    memcpy(a->ints, v, (size_t)count * sizeof(int64_t));
    a->n_ints = count;
}

/* One node with one input and one output: returns the output's name. */
static const char *op1(xp *e, const char *op, int id, const char *x, const char *out)
{
    add_node(e, op, id, 1, &x, 1, &out);
    return out;
}

static onnx_tensor *new_init(xp *e, const char *base, int ndim, const int64_t *dims, int src, int kind)
{
    if (e->st)
        return NULL;
    onnx_model *om = e->om;
    if (om->n_init == e->cap_init) {
        int cap = e->cap_init ? 2 * e->cap_init : 64;
        onnx_tensor *p = nerve_xrealloc(om->init, (size_t)cap * sizeof *p);
        unsigned char *b = nerve_xrealloc(e->borrowed, (size_t)cap);
        int *s = nerve_xrealloc(e->src, (size_t)cap * sizeof(int));
        int *k = nerve_xrealloc(e->src_kind, (size_t)cap * sizeof(int));
        if (p)
            om->init = p;
        if (b)
            e->borrowed = b;
        if (s)
            e->src = s;
        if (k)
            e->src_kind = k;
        if (!p || !b || !s || !k)
            return fail_nomem(e), NULL;
        e->cap_init = cap;
    }
    int idx = om->n_init;
    onnx_tensor *t = &om->init[idx];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", uniq(e, base));
    t->ndim = ndim;
    t->n = 1;
    for (int k = 0; k < ndim; k++) {
        t->dims[k] = dims[k];
        t->n *= (size_t)dims[k];
    }
    t->dtype = ONNX_FLOAT;
    e->borrowed[idx] = 0;
    e->src[idx] = src;
    e->src_kind[idx] = kind;
    om->n_init++;
    return t;
}

/* A float initializer holding a copy of n values (data NULL: zeros). */
static const char *init_f(xp *e, const char *base, int ndim, const int64_t *dims, const float *data,
                          int src, int kind)
{
    onnx_tensor *t = new_init(e, base, ndim, dims, src, kind);
    if (!t)
        return "";
    if (!(t->f = nerve_xcalloc(t->n ? t->n : 1, sizeof(float))))
        return fail_nomem(e), "";
    if (data && t->n)
        memcpy(t->f, data, t->n * sizeof(float));
    return t->name;
}

static const char *init_i64(xp *e, const char *base, int ndim, const int64_t *dims, const int64_t *data)
{
    onnx_tensor *t = new_init(e, base, ndim, dims, -1, SRC_NONE);
    if (!t)
        return "";
    t->dtype = ONNX_INT64;
    if (!(t->i = nerve_xcalloc(t->n ? t->n : 1, sizeof(int64_t))))
        return fail_nomem(e), "";
    memcpy(t->i, data, t->n * sizeof(int64_t));
    return t->name;
}

static const char *ints_1d(xp *e, int id, const char *what, int count, const int64_t *v)
{
    int64_t d = count;
    return init_i64(e, tmp_name(e, id, what), 1, &d, v);
}

static const char *scalar_f(xp *e, int id, const char *what, float v)
{
    return init_f(e, tmp_name(e, id, what), 0, NULL, &v, -1, SRC_NONE);
}

/* The node's shape with its batch-dependent dimensions as -1. */
static int shape_of(xp *e, int id, int64_t *dims)
{
    node *n = gn(e, id);
    for (int k = 0; k < n->ndim; k++)
        dims[k] = e->d1[id][k] != e->d2[id][k] ? -1 : e->d1[id][k];
    return n->ndim;
}

/* The ONNX value of a leaf or an already exported node. Parameters and states become
 * initializers (sharing the node's values), inputs graph inputs. */
static const char *value(xp *e, int id)
{
    if (e->st)
        return "";
    if (e->vname[id])
        return e->vname[id];
    node *n = gn(e, id);
    if (n->op) { /* exported in order: cannot happen */
        e->st = nerve_set_error(NERVE_ERR_ARG, "ONNX export: node '%s' used before it is made", n->name);
        return "";
    }
    int64_t dims[NERVE_MAX_DIMS];
    int nd = shape_of(e, id, dims);
    if (n->kind == NERVE_NODE_INPUT) {
        onnx_model *om = e->om;
        onnx_value_info *p = nerve_xrealloc(om->inputs, (size_t)(om->n_inputs + 1) * sizeof *p);
        if (!p)
            return fail_nomem(e), "";
        om->inputs = p;
        onnx_value_info *vi = &om->inputs[om->n_inputs++];
        memset(vi, 0, sizeof *vi);
        snprintf(vi->name, sizeof vi->name, "%s", uniq(e, n->name));
        vi->is_tensor = vi->has_shape = 1;
        vi->dtype = ONNX_FLOAT;
        vi->ndim = nd;
        memcpy(vi->dims, dims, sizeof(int64_t) * (size_t)nd);
        e->vname[id] = dup_str(vi->name);
    } else {
        for (int k = 0; k < nd; k++)
            if (dims[k] < 0)
                return refuse(e, id, "a parameter or state whose shape follows the batch"), "";
        onnx_tensor *t = new_init(e, n->name, nd, dims, id, SRC_COPY);
        if (!t)
            return "";
        t->f = n->value;
        e->borrowed[e->om->n_init - 1] = 1;
        e->vname[id] = dup_str(t->name);
    }
    if (!e->vname[id])
        return fail_nomem(e), "";
    return e->vname[id];
}

/* The ONNX value of input k of node n. */
static const char *in_value(xp *e, const node *n, int k) { return value(e, n->in[k]); }

/* Sets node id's value name (the output of the ONNX nodes that compute it). */
static const char *out_name(xp *e, int id)
{
    const char *s = uniq(e, gn(e, id)->name);
    if (!e->st && !(e->vname[id] = dup_str(s)))
        fail_nomem(e);
    return s;
}

static void alias(xp *e, int id, const char *v)
{
    if (!e->st && !(e->vname[id] = dup_str(v)))
        fail_nomem(e);
}

/* ---- operators ------------------------------------------------------------------------ */

static void ex_dense(xp *e, int id, node *n)
{
    const char *x = in_value(e, n, 0);
    if (gn(e, n->in[0])->ndim != 2) {
        onnx_node *f = add_node(e, "Flatten", id, 1, &x, 1, (const char *[]){tmp_name(e, id, "flat")});
        attr_i(e, f, "axis", 1);
        x = f ? f->out[0] : "";
    }
    const char *in[3] = {x, in_value(e, n, 1), n->n_in == 3 ? in_value(e, n, 2) : ""};
    const char *out = out_name(e, id);
    onnx_node *o = add_node(e, "Gemm", id, n->n_in == 3 ? 3 : 2, in, 1, &out);
    attr_i(e, o, "transB", 1);
}

/* A conv weight with its spatial taps reversed (a true convolution as a correlation). */
static const char *flipped_weight(xp *e, int id, int w)
{
    node *wn = gn(e, w);
    int64_t dims[NERVE_MAX_DIMS];
    int nd = shape_of(e, w, dims);
    char base[ONNX_MAX_NAME];
    snprintf(base, sizeof base, "%.200s.flipped", wn->name);
    onnx_tensor *t = new_init(e, base, nd, dims, w, SRC_FLIP);
    if (!t)
        return "";
    if (!(t->f = nerve_xmalloc(t->n * sizeof(float))))
        return fail_nomem(e), "";
    size_t taps = t->n / ((size_t)dims[0] * (size_t)dims[1]);
    for (size_t r = 0; r < (size_t)dims[0] * (size_t)dims[1]; r++)
        for (size_t k = 0; k < taps; k++)
            t->f[r * taps + k] = wn->value[r * taps + taps - 1 - k];
    (void)id;
    return t->name;
}

static void ex_conv(xp *e, int id, node *n, int transpose)
{
    node *x = gn(e, n->in[0]), *w = gn(e, n->in[1]);
    const nerve_conv_config *c = &n->attr.conv.cfg;
    int S = w->ndim - 2;
    int64_t k[3], s[3], d[3], pads[6], outpad[3];
    for (int i = 0; i < S; i++) {
        k[i] = w->dims[2 + i];
        s[i] = c->stride[i];
        d[i] = c->dilation[i];
        int64_t pb = c->pad_begin[i], pe = c->pad_end[i], op = n->attr.conv.output_padding[i];
        int64_t ext = d[i] * (k[i] - 1) + 1, in = x->dims[2 + i];
        if (c->same) { /* nerve's split of "same" padding (src/ops/conv_geometry.c) */
            int64_t total = transpose ? ext - s[i] : ((in + s[i] - 1) / s[i] - 1) * s[i] + ext - in;
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
            op = transpose && total < 0 ? -total : transpose ? 0 : op;
        }
        pads[i] = pb;
        pads[S + i] = pe;
        outpad[i] = op;
    }
    const char *wv = c->flip ? flipped_weight(e, id, n->in[1]) : in_value(e, n, 1);
    const char *in[3] = {in_value(e, n, 0), wv, n->n_in == 3 ? in_value(e, n, 2) : ""};
    const char *out = out_name(e, id);
    onnx_node *o = add_node(e, transpose ? "ConvTranspose" : "Conv", id, n->n_in == 3 ? 3 : 2, in, 1, &out);
    attr_ints(e, o, "kernel_shape", S, k);
    attr_ints(e, o, "strides", S, s);
    attr_ints(e, o, "dilations", S, d);
    attr_ints(e, o, "pads", 2 * S, pads);
    attr_i(e, o, "group", c->groups);
    if (transpose)
        attr_ints(e, o, "output_padding", S, outpad);
}

enum { POOL_MAX, POOL_AVG, POOL_L2, POOL_GLOBAL_AVG, POOL_GLOBAL_MAX }; /* nerve_pool_type */

static void ex_pool(xp *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    const attr_pool *a = &n->attr.pool;
    int type = (int)a->type, ceil_mode = a->ceil_mode, incl = a->count_include_pad;
    if (type == POOL_GLOBAL_AVG || type == POOL_GLOBAL_MAX) {
        op1(e, type == POOL_GLOBAL_AVG ? "GlobalAveragePool" : "GlobalMaxPool", id, in_value(e, n, 0),
            out_name(e, id));
        return;
    }
    int one_d = x->ndim == 3, S = one_d ? 1 : 2;
    if (x->ndim != 3 && x->ndim != 4) {
        refuse(e, id, "pooling of a rank-%d input", x->ndim);
        return;
    }
    int64_t k[2], s[2], pads[4];
    for (int i = 0; i < S; i++) {
        int ax = one_d ? 0 : i;
        k[i] = a->kernel[ax];
        s[i] = a->stride[ax];
        int64_t p = a->pad[ax], in = x->dims[2 + i], out = n->dims[2 + i];
        /* ceil mode as explicit end padding: floor((in + p + pe - k) / s) + 1 = out */
        int64_t pe = p;
        if (ceil_mode && (out - 1) * s[i] + k[i] > in + 2 * p) {
            pe = (out - 1) * s[i] + k[i] - in - p;
            if (type == POOL_AVG && incl) {
                refuse(e, id, "average pooling in ceil mode counting the padding, whose last "
                              "window overhangs the padded input, has no ONNX form");
                return;
            }
        }
        pads[i] = p;
        pads[S + i] = pe;
    }
    const char *op = type == POOL_MAX ? "MaxPool" : type == POOL_AVG ? "AveragePool" : "LpPool";
    onnx_node *o = add_node(e, op, id, 1, (const char *[]){in_value(e, n, 0)}, 1,
                            (const char *[]){out_name(e, id)});
    attr_ints(e, o, "kernel_shape", S, k);
    attr_ints(e, o, "strides", S, s);
    attr_ints(e, o, "pads", 2 * S, pads);
    if (type == POOL_AVG)
        attr_i(e, o, "count_include_pad", incl);
    if (type == POOL_L2)
        attr_i(e, o, "p", 2);
}

static void ex_lrn(xp *e, int id, node *n)
{
    int size = n->attr.lrn.size;
    if (n->attr.lrn.within_map) {
        refuse(e, id, "LRN within a map has no ONNX form (ONNX's LRN is across channels)");
        return;
    }
    if (size % 2 == 0) {
        refuse(e, id, "LRN of even size %d: ONNX's window is not symmetric", size);
        return;
    }
    onnx_node *o = add_node(e, "LRN", id, 1, (const char *[]){in_value(e, n, 0)}, 1,
                            (const char *[]){out_name(e, id)});
    attr_i(e, o, "size", size);
    attr_f(e, o, "alpha", n->attr.lrn.alpha * (float)size); /* ONNX divides alpha by size */
    attr_f(e, o, "beta", n->attr.lrn.beta);
    attr_f(e, o, "bias", n->attr.lrn.k);
}

static void ex_batchnorm(xp *e, int id, node *n)
{
    const char *in[5];
    for (int k = 0; k < 5; k++)
        in[k] = in_value(e, n, k);
    const char *out = out_name(e, id);
    onnx_node *o = add_node(e, "BatchNormalization", id, 5, in, 1, &out);
    attr_f(e, o, "epsilon", n->attr.batchnorm.eps);
}

static void ex_zscore(xp *e, int id, node *n)
{
    node *sd = gn(e, n->in[2]);
    int64_t dims[NERVE_MAX_DIMS];
    int nd = shape_of(e, n->in[2], dims);
    const char *std_name = init_f(e, sd->name, nd, dims, sd->value, n->in[2], SRC_STD);
    onnx_tensor *t = e->st ? NULL : &e->om->init[e->om->n_init - 1];
    for (size_t k = 0; t && k < t->n; k++)
        if (t->f[k] == 0.0f)
            t->f[k] = 1.0f;
    const char *centred = tmp_name(e, id, "centred"), *istd = tmp_name(e, id, "istd");
    add_node(e, "Sub", id, 2, (const char *[]){in_value(e, n, 0), in_value(e, n, 1)}, 1, &centred);
    op1(e, "Reciprocal", id, std_name, istd);
    const char *out = out_name(e, id);
    add_node(e, "Mul", id, 2, (const char *[]){centred, istd}, 1, &out);
}

enum { ACT_IDENTITY, ACT_STEP, ACT_SIGMOID, ACT_HARD_SIGMOID, ACT_TANH, ACT_RELU, ACT_LEAKY,
       ACT_ELU, ACT_SELU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_RELU6 };

static void ex_activation(xp *e, int id, node *n)
{
    const char *x = in_value(e, n, 0);
    float a = n->attr.activation.alpha, b = n->attr.activation.beta;
    onnx_node *o;
    switch (n->attr.activation.type) {
    case NERVE_ACT_IDENTITY: op1(e, "Identity", id, x, out_name(e, id)); return;
    case NERVE_ACT_STEP: {
        const char *ge = tmp_name(e, id, "ge");
        add_node(e, "GreaterOrEqual", id, 2, (const char *[]){x, scalar_f(e, id, "zero", 0.0f)}, 1, &ge);
        o = add_node(e, "Cast", id, 1, &ge, 1, (const char *[]){out_name(e, id)});
        attr_i(e, o, "to", ONNX_FLOAT);
        return;
    }
    case NERVE_ACT_SIGMOID:
        if (a != 1.0f) {
            const char *ax = tmp_name(e, id, "scaled");
            add_node(e, "Mul", id, 2, (const char *[]){x, scalar_f(e, id, "slope", a)}, 1, &ax);
            x = ax;
        }
        op1(e, "Sigmoid", id, x, out_name(e, id));
        return;
    case NERVE_ACT_HARD_SIGMOID:
        o = add_node(e, "HardSigmoid", id, 1, &x, 1, (const char *[]){out_name(e, id)});
        attr_f(e, o, "alpha", a);
        attr_f(e, o, "beta", b);
        return;
    case NERVE_ACT_TANH: op1(e, "Tanh", id, x, out_name(e, id)); return;
    case NERVE_ACT_RELU: op1(e, "Relu", id, x, out_name(e, id)); return;
    case NERVE_ACT_LEAKY_RELU:
        o = add_node(e, "LeakyRelu", id, 1, &x, 1, (const char *[]){out_name(e, id)});
        attr_f(e, o, "alpha", a);
        return;
    case NERVE_ACT_ELU:
        o = add_node(e, "Elu", id, 1, &x, 1, (const char *[]){out_name(e, id)});
        attr_f(e, o, "alpha", a);
        return;
    case NERVE_ACT_SELU:
        o = add_node(e, "Selu", id, 1, &x, 1, (const char *[]){out_name(e, id)});
        attr_f(e, o, "alpha", a);
        attr_f(e, o, "gamma", b);
        return;
    case NERVE_ACT_SOFTPLUS: op1(e, "Softplus", id, x, out_name(e, id)); return;
    case NERVE_ACT_SOFTSIGN: op1(e, "Softsign", id, x, out_name(e, id)); return;
    case NERVE_ACT_RELU6:
        add_node(e, "Clip", id, 3,
                 (const char *[]){x, scalar_f(e, id, "min", 0.0f), scalar_f(e, id, "max", a)}, 1,
                 (const char *[]){out_name(e, id)});
        return;
    case NERVE_ACT_RAMP: { /* darknet's ramp: Relu(x) + alpha x */
        const char *r = tmp_name(e, id, "relu"), *sx = tmp_name(e, id, "sloped");
        op1(e, "Relu", id, x, r);
        add_node(e, "Mul", id, 2, (const char *[]){x, scalar_f(e, id, "alpha", a)}, 1, &sx);
        add_node(e, "Add", id, 2, (const char *[]){r, sx}, 1, (const char *[]){out_name(e, id)});
        return;
    }
    default: refuse(e, id, "activation type %d", (int)n->attr.activation.type);
    }
}

static void ex_prelu(xp *e, int id, node *n)
{
    node *x = gn(e, n->in[0]), *a = gn(e, n->in[1]);
    int64_t dims[NERVE_MAX_DIMS] = {1};
    int nd = 1;
    if (a->dims[0] != 1 && x->ndim >= 2) { /* per channel (axis 1): [C, 1, ...] */
        dims[0] = a->dims[0];
        for (nd = 1; nd < x->ndim - 1; nd++)
            dims[nd] = 1;
    }
    onnx_tensor *t = new_init(e, a->name, nd, dims, n->in[1], SRC_COPY);
    if (!t)
        return;
    t->f = a->value;
    e->borrowed[e->om->n_init - 1] = 1;
    add_node(e, "PRelu", id, 2, (const char *[]){in_value(e, n, 0), t->name}, 1,
             (const char *[]){out_name(e, id)});
}

static void ex_softmax(xp *e, int id, node *n)
{
    int ax = normalize_axis(n->attr.softmax.axis, n->ndim);
    onnx_node *o = add_node(e, n->attr.softmax.log_space ? "LogSoftmax" : "Softmax", id, 1,
                            (const char *[]){in_value(e, n, 0)}, 1, (const char *[]){out_name(e, id)});
    attr_i(e, o, "axis", ax);
}

static void ex_binary(xp *e, int id, node *n, const char *op)
{
    add_node(e, op, id, 2, (const char *[]){in_value(e, n, 0), in_value(e, n, 1)}, 1,
             (const char *[]){out_name(e, id)});
}

static void ex_affine(xp *e, int id, node *n)
{
    const char *scaled = tmp_name(e, id, "scaled");
    add_node(e, "Mul", id, 2, (const char *[]){in_value(e, n, 0), scalar_f(e, id, "scale", n->attr.affine.scale)},
             1, &scaled);
    add_node(e, "Add", id, 2, (const char *[]){scaled, scalar_f(e, id, "shift", n->attr.affine.shift)}, 1,
             (const char *[]){out_name(e, id)});
}

static void ex_concat(xp *e, int id, node *n)
{
    const char *in[NERVE_MAX_INPUTS];
    for (int k = 0; k < n->n_in; k++)
        in[k] = in_value(e, n, k);
    onnx_node *o = add_node(e, "Concat", id, n->n_in, in, 1, (const char *[]){out_name(e, id)});
    attr_i(e, o, "axis", normalize_axis(n->attr.axis.axis, n->ndim));
}

static void ex_slice(xp *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    int ax = normalize_axis(n->attr.slice.axis, x->ndim);
    if (e->d1[n->in[0]][ax] != e->d2[n->in[0]][ax]) {
        refuse(e, id, "a slice along the batch axis");
        return;
    }
    int dim = x->dims[ax];
    int64_t start = n->attr.slice.start, end = n->attr.slice.end;
    start = start < 0 ? start + dim : start;
    end = end < 0 ? end + dim : end;
    start = start < 0 ? 0 : start > dim ? dim : start;
    end = end < 0 ? 0 : end > dim ? dim : end;
    int64_t axis = ax;
    add_node(e, "Slice", id, 4,
             (const char *[]){in_value(e, n, 0), ints_1d(e, id, "starts", 1, &start),
                              ints_1d(e, id, "ends", 1, &end), ints_1d(e, id, "axes", 1, &axis)},
             1, (const char *[]){out_name(e, id)});
}

static void ex_transpose(xp *e, int id, node *n)
{
    int64_t perm[NERVE_MAX_DIMS];
    for (int k = 0; k < n->attr.dims.ndim; k++)
        perm[k] = n->attr.dims.dims[k];
    onnx_node *o = add_node(e, "Transpose", id, 1, (const char *[]){in_value(e, n, 0)}, 1,
                            (const char *[]){out_name(e, id)});
    attr_ints(e, o, "perm", n->attr.dims.ndim, perm);
}

/* Reshape to the node's shape, -1 on the one dimension that follows the batch. */
static void reshape_to(xp *e, int id, const char *x, const char *out)
{
    int64_t dims[NERVE_MAX_DIMS];
    int nd = shape_of(e, id, dims), batch_dims = 0;
    for (int k = 0; k < nd; k++)
        batch_dims += dims[k] < 0;
    if (batch_dims > 1) {
        refuse(e, id, "a reshape with %d dimensions that follow the batch", batch_dims);
        return;
    }
    add_node(e, "Reshape", id, 2, (const char *[]){x, ints_1d(e, id, "shape", nd, dims)}, 1, &out);
}

static void ex_upsample(xp *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    int s = n->attr.upsample.scale, mode = n->attr.upsample.mode;
    float scales[NERVE_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++)
        scales[k] = k < 2 ? 1.0f : (float)s;
    int64_t sd = x->ndim;
    const char *sc = init_f(e, tmp_name(e, id, "scales"), 1, &sd, scales, -1, SRC_NONE);
    const char *roi = init_f(e, tmp_name(e, id, "roi"), 1, (int64_t[]){0}, NULL, -1, SRC_NONE);
    const char *out = mode == NERVE_UPSAMPLE_BED_OF_NAILS ? tmp_name(e, id, "nearest") : out_name(e, id);
    onnx_node *o = add_node(e, "Resize", id, 3, (const char *[]){in_value(e, n, 0), roi, sc}, 1, &out);
    if (mode == NERVE_UPSAMPLE_BILINEAR) {
        attr_s(e, o, "mode", "linear");
        attr_s(e, o, "coordinate_transformation_mode", "half_pixel");
    } else {
        attr_s(e, o, "mode", "nearest");
        attr_s(e, o, "coordinate_transformation_mode", "asymmetric");
        attr_s(e, o, "nearest_mode", "floor");
    }
    if (mode == NERVE_UPSAMPLE_BED_OF_NAILS) { /* keep each block's top-left value */
        int64_t md[NERVE_MAX_DIMS];
        int nd = n->ndim - 2;
        size_t cnt = 1;
        for (int k = 0; k < nd; k++)
            cnt *= (size_t)(md[k] = n->dims[2 + k]);
        float *mask = nerve_xcalloc(cnt, sizeof(float));
        if (!mask) {
            fail_nomem(e);
            return;
        }
        for (size_t p = 0; p < cnt; p++) {
            size_t r = p;
            int keep = 1;
            for (int k = nd - 1; k >= 0; k--) {
                keep &= (r % (size_t)md[k]) % (size_t)s == 0;
                r /= (size_t)md[k];
            }
            mask[p] = (float)keep;
        }
        const char *mk = init_f(e, tmp_name(e, id, "nails"), nd, md, mask, -1, SRC_NONE);
        nerve_xfree(mask);
        add_node(e, "Mul", id, 2, (const char *[]){out, mk}, 1, (const char *[]){out_name(e, id)});
    }
}

/* nerve's pad: attr.pad, begin and end (negative crops), mode, value (src/ops/math.c) ->
 * Pad with pads [begin..., end...] (darknet's [shortcut] between different channel counts
 * pads or crops the channels). */
static void ex_pad(xp *e, int id, node *n)
{
    int nd = gn(e, n->in[0])->ndim, mode = n->attr.pad.mode;
    static const char *const modes[] = {"constant", "reflect", "edge"};
    if (nd > 6 || mode < 0 || mode > 2) {
        refuse(e, id, "pad of rank %d or mode %d", nd, mode);
        return;
    }
    int64_t pads[12];
    for (int k = 0; k < nd; k++) {
        pads[k] = n->attr.pad.begin[k];
        pads[nd + k] = n->attr.pad.end[k];
    }
    onnx_node *o = add_node(e, "Pad", id, 3,
                            (const char *[]){in_value(e, n, 0), ints_1d(e, id, "pads", 2 * nd, pads),
                                             scalar_f(e, id, "value", n->attr.pad.value)},
                            1, (const char *[]){out_name(e, id)});
    attr_s(e, o, "mode", modes[mode]);
}

static void ex_depth_space(xp *e, int id, node *n)
{
    if (n->ndim != 4) {
        refuse(e, id, "depth/space rearrangement of a rank-%d value (ONNX's is 4-D)", n->ndim);
        return;
    }
    onnx_node *o = add_node(e, n->attr.block.to_space ? "DepthToSpace" : "SpaceToDepth", id, 1,
                            (const char *[]){in_value(e, n, 0)}, 1, (const char *[]){out_name(e, id)});
    attr_i(e, o, "blocksize", n->attr.block.block);
}

/* nerve's embedding: row floor(v) of the table for 0 <= v < V, a zero row otherwise (ONNX's
 * Gather would refuse or wrap such an index): the index is made safe and the row masked. */
static void ex_embedding(xp *e, int id, node *n)
{
    const char *x = in_value(e, n, 0), *table = in_value(e, n, 1);
    int V = gn(e, n->in[1])->dims[0];
    const char *ge = tmp_name(e, id, "ge0"), *lt = tmp_name(e, id, "ltV"), *ok = tmp_name(e, id, "valid");
    const char *idx = tmp_name(e, id, "index"), *safe = tmp_name(e, id, "safe_index");
    const char *rows = tmp_name(e, id, "rows"), *okf = tmp_name(e, id, "validf"), *okf1 = tmp_name(e, id, "validf1");
    add_node(e, "GreaterOrEqual", id, 2, (const char *[]){x, scalar_f(e, id, "zero", 0.0f)}, 1, &ge);
    add_node(e, "Less", id, 2, (const char *[]){x, scalar_f(e, id, "V", (float)V)}, 1, &lt);
    add_node(e, "And", id, 2, (const char *[]){ge, lt}, 1, &ok);
    onnx_node *c = add_node(e, "Cast", id, 1, &x, 1, &idx);
    attr_i(e, c, "to", ONNX_INT64);
    int64_t zero = 0, minus1 = -1;
    add_node(e, "Where", id, 3, (const char *[]){ok, idx, init_i64(e, tmp_name(e, id, "zero_index"), 0, NULL, &zero)},
             1, &safe);
    onnx_node *gth = add_node(e, "Gather", id, 2, (const char *[]){table, safe}, 1, &rows);
    attr_i(e, gth, "axis", 0);
    c = add_node(e, "Cast", id, 1, &ok, 1, &okf);
    attr_i(e, c, "to", ONNX_FLOAT);
    add_node(e, "Unsqueeze", id, 2, (const char *[]){okf, ints_1d(e, id, "last_axis", 1, &minus1)}, 1, &okf1);
    add_node(e, "Mul", id, 2, (const char *[]){rows, okf1}, 1, (const char *[]){out_name(e, id)});
}

/* ---- recurrent layers --------------------------------------------------------------------
 * nerve's gates (LSTM i f g o, GRU r z n) in ONNX's order (LSTM i o f c, GRU z r h): nerve's
 * block g is ONNX's block perm[g]; the peephole rows i f o are ONNX's i o f. */

static const int lstm_perm[4] = {0, 2, 3, 1}, gru_perm[3] = {1, 0, 2}, rnn_perm[1] = {0};
static const int peep_perm[3] = {0, 2, 1};
/* A coupled LSTM: nerve computes f and takes i = 1 - f; ONNX's input_forget (as ONNX Runtime
 * runs it) computes i and takes f = 1 - i. So nerve's f rows go to ONNX's i slot negated
 * (sigmoid(-z) = 1 - sigmoid(z)) and nerve's ignored i rows to ONNX's ignored f slot. */
static const int coupled_perm[4] = {2, 0, 3, 1}, coupled_peep[3] = {2, 0, 1};

static int rnn_coupled(const node *r)
{
    return r->attr.rnn.cell == NERVE_CELL_LSTM && (r->attr.rnn.lstm_flags & NERVE_LSTM_COUPLED);
}

static int rnn_gates(const node *r)
{
    return r->attr.rnn.cell == NERVE_CELL_LSTM ? 4 : r->attr.rnn.cell == NERVE_CELL_GRU ? 3 : 1;
}
static const int *rnn_perm_of(const node *r)
{
    if (rnn_coupled(r))
        return coupled_perm;
    return r->attr.rnn.cell == NERVE_CELL_LSTM ? lstm_perm : r->attr.rnn.cell == NERVE_CELL_GRU ? gru_perm : rnn_perm;
}

/* The parameter node of slot `slot` of direction d of rnn node r, or -1. */
static int rnn_param(nerve_graph *g, const node *r, int d, int slot)
{
    const node *p = &g->nodes[r->in[r->attr.rnn.slot[RNN_PARAMS0 + d]]];
    return p->attr.rnn_params.slot[slot] >= 0 ? p->in[p->attr.rnn_params.slot[slot]] : -1;
}

/* Moves values between nerve's parameters of rnn node r and ONNX's tensor of kind `kind`
 * (SRC_RNN_*): to_onnx 1 fills t from the parameters, 0 fills the parameters from t. */
static void rnn_pack(nerve_graph *g, const node *r, int kind, float *t, int to_onnx)
{
    int G = rnn_gates(r), H = r->attr.rnn.hidden, D = r->attr.rnn.dirs;
    const int *perm = rnn_perm_of(r), *pperm = rnn_coupled(r) ? coupled_peep : peep_perm;
    int neg = rnn_coupled(r) ? 1 : -1; /* nerve's block negated on the way (an involution) */
    for (int d = 0; d < D; d++) {
        if (kind == SRC_RNN_W || kind == SRC_RNN_R) {
            int p = rnn_param(g, r, d, kind == SRC_RNN_W ? RNN_W_IH : RNN_W_HH);
            size_t cols = (size_t)g->nodes[p].dims[1];
            float *v = g->nodes[p].value;
            for (int gi = 0; gi < G; gi++)
                for (int row = 0; row < H; row++) {
                    float *o = t + ((size_t)d * G * H + (size_t)perm[gi] * H + row) * cols;
                    float *nv = v + ((size_t)gi * H + row) * cols;
                    for (size_t k = 0; k < cols; k++) {
                        if (to_onnx)
                            o[k] = gi == neg ? -nv[k] : nv[k];
                        else
                            nv[k] = gi == neg ? -o[k] : o[k];
                    }
                }
        } else if (kind == SRC_RNN_B) {
            for (int half = 0; half < 2; half++) {
                int p = rnn_param(g, r, d, half ? RNN_B_HH : RNN_B_IH);
                for (int gi = 0; gi < G; gi++)
                    for (int row = 0; row < H; row++) {
                        float *o = t + (size_t)d * 2 * G * H + (size_t)half * G * H + (size_t)perm[gi] * H + row;
                        if (p < 0) {
                            if (to_onnx)
                                *o = 0.0f;
                            continue;
                        }
                        float *nv = g->nodes[p].value + (size_t)gi * H + row;
                        if (to_onnx)
                            *o = gi == neg ? -*nv : *nv;
                        else
                            *nv = gi == neg ? -*o : *o;
                    }
            }
        } else { /* SRC_RNN_P */
            int p = rnn_param(g, r, d, RNN_PEEPHOLE);
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < H; j++) {
                    float *o = t + (size_t)d * 3 * H + (size_t)pperm[k] * H + j;
                    float *nv = g->nodes[p].value + (size_t)k * H + j;
                    if (to_onnx)
                        *o = k == neg ? -*nv : *nv;
                    else
                        *nv = k == neg ? -*o : *o;
                }
        }
    }
}

static const char *rnn_init(xp *e, int id, const char *what, int kind, int ndim, const int64_t *dims)
{
    onnx_tensor *t = new_init(e, tmp_name(e, id, what), ndim, dims, id, kind);
    if (!t)
        return "";
    if (!(t->f = nerve_xcalloc(t->n, sizeof(float))))
        return fail_nomem(e), "";
    rnn_pack(e->g, gn(e, id), kind, t->f, 1);
    return t->name;
}

static void ex_rnn(xp *e, int id, node *n)
{
    int cell = n->attr.rnn.cell, H = n->attr.rnn.hidden, D = n->attr.rnn.dirs;
    int G = rnn_gates(n), flags = n->attr.rnn.lstm_flags;
    node *x = gn(e, n->in[0]);
    int64_t F = x->dims[2];
    int has_b = 0, has_p = (cell == NERVE_CELL_LSTM) && (flags & NERVE_LSTM_PEEPHOLE);
    for (int d = 0; d < D; d++)
        has_b |= rnn_param(e->g, n, d, RNN_B_IH) >= 0 || rnn_param(e->g, n, d, RNN_B_HH) >= 0;
    const char *in[8] = {in_value(e, n, 0), "", "", "", "", "", "", ""};
    in[1] = rnn_init(e, id, "W", SRC_RNN_W, 3, (int64_t[]){D, (int64_t)G * H, F});
    in[2] = rnn_init(e, id, "R", SRC_RNN_R, 3, (int64_t[]){D, (int64_t)G * H, H});
    int n_in = 3;
    if (has_b) {
        in[3] = rnn_init(e, id, "B", SRC_RNN_B, 2, (int64_t[]){D, 2LL * G * H});
        n_in = 4;
    }
    if (n->attr.rnn.slot[RNN_LENGTHS] >= 0) {
        const char *len = tmp_name(e, id, "lengths");
        onnx_node *c = add_node(e, "Cast", id, 1, (const char *[]){in_value(e, n, n->attr.rnn.slot[RNN_LENGTHS])}, 1, &len);
        attr_i(e, c, "to", ONNX_INT32);
        in[4] = len;
        n_in = 5;
    }
    if (!n->attr.rnn.carry) { /* a carried state starts from zeros: the ONNX default */
        if (n->attr.rnn.slot[RNN_H0] >= 0) {
            in[5] = in_value(e, n, n->attr.rnn.slot[RNN_H0]);
            n_in = 6;
        }
        if (cell == NERVE_CELL_LSTM && n->attr.rnn.slot[RNN_C0] >= 0) {
            in[6] = in_value(e, n, n->attr.rnn.slot[RNN_C0]);
            n_in = 7;
        }
    }
    if (has_p) {
        in[7] = rnn_init(e, id, "P", SRC_RNN_P, 2, (int64_t[]){D, 3LL * H});
        n_in = 8;
    }
    const char *outs[3] = {tmp_name(e, id, "Y"), tmp_name(e, id, "Y_h"),
                           cell == NERVE_CELL_LSTM ? tmp_name(e, id, "Y_c") : ""};
    const char *op = cell == NERVE_CELL_LSTM ? "LSTM" : cell == NERVE_CELL_GRU ? "GRU" : "RNN";
    onnx_node *o = add_node(e, op, id, n_in, in, cell == NERVE_CELL_LSTM ? 3 : 2, outs);
    if (!e->st && (!(e->yh[id] = dup_str(outs[1])) || !(e->yc[id] = dup_str(outs[2]))))
        fail_nomem(e);
    attr_i(e, o, "hidden_size", H);
    attr_s(e, o, "direction", D == 2 ? "bidirectional" : "forward");
    if (cell == NERVE_CELL_GRU)
        attr_i(e, o, "linear_before_reset", n->attr.rnn.gru_form == NERVE_GRU_LINEAR_BEFORE_RESET);
    if (cell == NERVE_CELL_LSTM && (flags & NERVE_LSTM_COUPLED))
        attr_i(e, o, "input_forget", 1);
    if (n->attr.rnn.return_sequences) { /* Y [T, D, N, H] -> [T, N, D, H] -> [T, N, D*H] */
        const char *tr = tmp_name(e, id, "Y_tnd");
        onnx_node *t = add_node(e, "Transpose", id, 1, &outs[0], 1, &tr);
        attr_ints(e, t, "perm", 4, (int64_t[]){0, 2, 1, 3});
        add_node(e, "Reshape", id, 2, (const char *[]){tr, ints_1d(e, id, "shape", 3, (int64_t[]){0, 0, -1})},
                 1, (const char *[]){out_name(e, id)});
    } else { /* the last valid step of each direction: Y_h [D, N, H] -> [N, D*H] */
        const char *tr = tmp_name(e, id, "Y_h_nd");
        onnx_node *t = add_node(e, "Transpose", id, 1, &outs[1], 1, &tr);
        attr_ints(e, t, "perm", 3, (int64_t[]){1, 0, 2});
        add_node(e, "Reshape", id, 2, (const char *[]){tr, ints_1d(e, id, "shape", 2, (int64_t[]){0, -1})},
                 1, (const char *[]){out_name(e, id)});
    }
}

static void ex_rnn_state(xp *e, int id, node *n)
{
    char *v = n->attr.rnn_state.which ? e->yc[n->in[0]] : e->yh[n->in[0]];
    if (v && v[0])
        alias(e, id, v);
    else
        refuse(e, id, "the state of an rnn node that was not exported");
}

static void export_node(xp *e, int id)
{
    node *n = gn(e, id);
    const char *op = n->op->name;
    if (!strcmp(op, "dense")) ex_dense(e, id, n);
    else if (!strcmp(op, "conv")) ex_conv(e, id, n, 0);
    else if (!strcmp(op, "conv_transpose")) ex_conv(e, id, n, 1);
    else if (!strcmp(op, "pool")) ex_pool(e, id, n);
    else if (!strcmp(op, "lrn")) ex_lrn(e, id, n);
    else if (!strcmp(op, "batchnorm")) ex_batchnorm(e, id, n);
    else if (!strcmp(op, "zscore")) ex_zscore(e, id, n);
    else if (!strcmp(op, "dropout")) alias(e, id, in_value(e, n, 0));
    else if (!strcmp(op, "activation")) ex_activation(e, id, n);
    else if (!strcmp(op, "prelu")) ex_prelu(e, id, n);
    else if (!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) ex_softmax(e, id, n);
    else if (!strcmp(op, "add")) ex_binary(e, id, n, "Add");
    else if (!strcmp(op, "sub")) ex_binary(e, id, n, "Sub");
    else if (!strcmp(op, "mul")) ex_binary(e, id, n, "Mul");
    else if (!strcmp(op, "div")) ex_binary(e, id, n, "Div");
    else if (!strcmp(op, "pow")) ex_binary(e, id, n, "Pow");
    else if (!strcmp(op, "maximum")) ex_binary(e, id, n, "Max");
    else if (!strcmp(op, "minimum")) ex_binary(e, id, n, "Min");
    else if (!strcmp(op, "affine")) ex_affine(e, id, n);
    else if (!strcmp(op, "concat")) ex_concat(e, id, n);
    else if (!strcmp(op, "slice")) ex_slice(e, id, n);
    else if (!strcmp(op, "transpose")) ex_transpose(e, id, n);
    else if (!strcmp(op, "reshape") || !strcmp(op, "flatten")) reshape_to(e, id, in_value(e, n, 0), out_name(e, id));
    else if (!strcmp(op, "upsample")) ex_upsample(e, id, n);
    else if (!strcmp(op, "depth_to_space") || !strcmp(op, "space_to_depth")) ex_depth_space(e, id, n);
    else if (!strcmp(op, "embedding")) ex_embedding(e, id, n);
    else if (!strcmp(op, "pad")) ex_pad(e, id, n);
    else if (!strcmp(op, "rnn")) ex_rnn(e, id, n);
    else if (!strcmp(op, "rnn_params")) { /* read by its rnn node */ }
    else if (!strcmp(op, "rnn_state")) ex_rnn_state(e, id, n);
    else refuse(e, id, "has no ONNX form in nerve's export");
}

/* ---- the whole model ------------------------------------------------------------------ */

static void mark(xp *e, int id)
{
    if (e->needed[id])
        return;
    e->needed[id] = 1;
    node *n = gn(e, id);
    for (int k = 0; k < n->n_in; k++)
        mark(e, n->in[k]);
}

static void add_output(xp *e, int id, const char *v)
{
    onnx_model *om = e->om;
    if (e->st)
        return;
    onnx_value_info *p = nerve_xrealloc(om->outputs, (size_t)(om->n_outputs + 1) * sizeof *p);
    if (!p) {
        fail_nomem(e);
        return;
    }
    om->outputs = p;
    onnx_value_info *vi = &om->outputs[om->n_outputs++];
    memset(vi, 0, sizeof *vi);
    snprintf(vi->name, sizeof vi->name, "%s", v);
    vi->is_tensor = vi->has_shape = 1;
    vi->dtype = ONNX_FLOAT;
    vi->ndim = shape_of(e, id, vi->dims);
}

static void add_meta(xp *e, const char *key, const char *value)
{
    onnx_model *om = e->om;
    if (e->st)
        return;
    if (!om->meta_key) {
        om->meta_key = nerve_xcalloc(ONNX_MAX_METADATA, sizeof(char *));
        om->meta_value = nerve_xcalloc(ONNX_MAX_METADATA, sizeof(char *));
        if (!om->meta_key || !om->meta_value) {
            fail_nomem(e);
            return;
        }
    }
    om->meta_key[om->n_meta] = dup_str(key);
    om->meta_value[om->n_meta] = dup_str(value);
    om->n_meta++;
    if (!om->meta_key[om->n_meta - 1] || !om->meta_value[om->n_meta - 1])
        fail_nomem(e);
}

static void add_model_meta(xp *e)
{
    nerve_model *m = e->m;
    add_meta(e, "nerve.cfg", m->text ? m->text : "");
    char dir[PATH_MAX + 520];
    model_absolute_base_dir(m, dir, sizeof dir);
    add_meta(e, "nerve.cfg_dir", dir);
    if (m->n_names) {
        nerve_strbuf b = {0};
        nerve_strbuf_puts(&b, "[");
        for (int i = 0; i < m->n_names; i++) {
            if (i)
                nerve_strbuf_puts(&b, ",");
            nerve_json_append_string(&b, m->names[i]);
        }
        nerve_strbuf_puts(&b, "]");
        if (b.failed)
            fail_nomem(e);
        else
            add_meta(e, "nerve.names", b.data);
        nerve_strbuf_free(&b);
    }
    if (m->vocab.n > 0) {
        char hex[513];
        nerve_vocab_format(&m->vocab, hex);
        add_meta(e, "nerve.vocab", hex);
    }
}

static void xp_free(xp *e)
{
    if (e->om) {
        for (int k = 0; k < e->om->n_init; k++)
            if (e->borrowed[k])
                e->om->init[k].f = NULL;
        onnx_model_free(e->om);
    }
    int n = e->g ? e->g->n_nodes : 0;
    for (int k = 0; k < n; k++) {
        if (e->vname)
            nerve_xfree(e->vname[k]);
        if (e->yh)
            nerve_xfree(e->yh[k]);
        if (e->yc)
            nerve_xfree(e->yc[k]);
    }
    nerve_xfree(e->yh);
    nerve_xfree(e->yc);
    for (int k = 0; k < e->n_names; k++)
        nerve_xfree(e->names[k]);
    nerve_xfree(e->names);
    nerve_xfree(e->vname);
    nerve_xfree(e->d1);
    nerve_xfree(e->d2);
    nerve_xfree(e->needed);
    nerve_xfree(e->borrowed);
    nerve_xfree(e->src);
    nerve_xfree(e->src_kind);
}

/* Builds the ONNX model of m into e (e->om). The graph is left in evaluation mode at its
 * compiled batch as it was found. */
static int build(xp *e, nerve_model *m)
{
    memset(e, 0, sizeof *e);
    e->m = m;
    nerve_graph *g = e->g = nerve_model_graph(m);
    int out = nerve_model_output(m);
    if (out < 0)
        return nerve_set_error(NERVE_ERR_ARG, "ONNX export: the model has no output node");
    int st = g->compiled ? NERVE_OK : nerve_model_compile(m, 2);
    if (st)
        return st;
    if (g->max_batch < 2)
        return nerve_set_error(NERVE_ERR_ARG, "ONNX export: the model is compiled for batch 1; "
                               "export needs a maximum batch of 2 or more to tell the batch axis");
    int old_batch = g->batch, was_training = g->training;
    e->d1 = nerve_xcalloc((size_t)g->n_nodes, sizeof *e->d1);
    e->d2 = nerve_xcalloc((size_t)g->n_nodes, sizeof *e->d2);
    e->vname = nerve_xcalloc((size_t)g->n_nodes, sizeof(char *));
    e->yh = nerve_xcalloc((size_t)g->n_nodes, sizeof(char *));
    e->yc = nerve_xcalloc((size_t)g->n_nodes, sizeof(char *));
    e->needed = nerve_xcalloc((size_t)g->n_nodes, 1);
    e->om = nerve_xcalloc(1, sizeof *e->om);
    if (!e->d1 || !e->d2 || !e->vname || !e->yh || !e->yc || !e->needed || !e->om)
        return NERVE_ERR_NOMEM;
    for (int b = 1; b <= 2; b++) {
        if ((st = nerve_graph_set_batch(g, b)))
            return st;
        for (int id = 0; id < g->n_nodes; id++)
            memcpy(b == 1 ? e->d1[id] : e->d2[id], g->nodes[id].dims, sizeof e->d1[id]);
    }
    /* export at batch 1 (the values the initializers are read from do not depend on it) */
    if ((st = nerve_graph_set_batch(g, 1)))
        return st;
    nerve_graph_set_training(g, 0);
    e->om->ir_version = EXPORT_IR_VERSION;
    e->om->opset = EXPORT_OPSET;
    snprintf(e->om->graph_name, sizeof e->om->graph_name, "%s",
             m->file[0] ? m->file : "nerve");
    mark(e, out);
    value(e, nerve_model_input(m)); /* the model input first, even if unused */
    for (int id = 0; id < g->n_nodes && !e->st; id++)
        if (e->needed[id] && g->nodes[id].op)
            export_node(e, id);
    const char *ov = e->st ? "" : value(e, out);
    add_output(e, out, ov);
    nerve_head_info h = nerve_model_head(m);
    node *o = gn(e, out);
    int axis = h.task == NERVE_TASK_LANGUAGE ? o->ndim - 1 : 1;
    if (!e->st && h.logits && o->ndim >= 2 && o->dims[axis] > 1 &&
        (h.task == NERVE_TASK_CLASSIFY || h.task == NERVE_TASK_SEGMENT || h.task == NERVE_TASK_LANGUAGE)) {
        const char *p = uniq(e, "probabilities");
        onnx_node *sm = add_node(e, "Softmax", out, 1, &ov, 1, &p);
        attr_i(e, sm, "axis", axis);
        add_output(e, out, p);
    }
    add_model_meta(e);
    nerve_graph_set_training(g, was_training);
    int st2 = nerve_graph_set_batch(g, old_batch);
    return e->st ? e->st : st2;
}

int model_export_onnx_buffer(nerve_model *m, unsigned char **buf, size_t *len)
{
    if (!m || !buf || !len)
        return nerve_set_error(NERVE_ERR_ARG, "export_onnx: null argument");
    xp e;
    int st = build(&e, m);
    if (!st && !(*buf = onnx_model_write(e.om, "nerve", len)))
        st = nerve_last_status();
    xp_free(&e);
    return st;
}

int nerve_export_onnx(nerve_model *m, const char *path)
{
    if (!m || !path)
        return nerve_set_error(NERVE_ERR_ARG, "export_onnx: null model or path");
    unsigned char *buf = NULL;
    size_t len = 0;
    int st = model_export_onnx_buffer(m, &buf, &len);
    if (st)
        return st;
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        nerve_xfree(buf);
        return nerve_set_error(NERVE_ERR_IO, "export_onnx: cannot write %s", tmp);
    }
    size_t put = fwrite(buf, 1, len, f);
    int bad = fclose(f) != 0 || put != len;
    nerve_xfree(buf);
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return nerve_set_error(NERVE_ERR_IO, "export_onnx: writing %s failed", path);
    }
    return NERVE_OK;
}

/* ---- ONNX files nerve wrote, back into a model ------------------------------------------- */

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open", path);
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = nerve_xmalloc(cap);
    while (b) {
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        if (cap > (size_t)INT32_MAX) {
            nerve_xfree(b);
            fclose(f);
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: larger than 2 GiB", path);
        }
        unsigned char *p = nerve_xrealloc(b, cap * 2);
        if (!p)
            nerve_xfree(b);
        b = p;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!b)
        return NERVE_ERR_NOMEM;
    if (err) {
        nerve_xfree(b);
        return nerve_set_error(NERVE_ERR_IO, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return NERVE_OK;
}

static int same_dims(const onnx_tensor *a, const onnx_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int k = 0; k < a->ndim; k++)
        if (a->dims[k] != b->dims[k])
            return 0;
    return 1;
}

nerve_model *nerve_onnx_to_model(const char *path)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "onnx_to_model: null path");
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t len = 0;
    if (read_file(path, &buf, &len))
        return NULL;
    onnx_model *pm = onnx_model_parse(buf, len, path);
    nerve_xfree(buf);
    if (!pm)
        return NULL;
    const char *text = onnx_model_meta(pm, "nerve.cfg");
    if (!text) {
        nerve_set_error(NERVE_ERR_FORMAT, "%s: no 'nerve.cfg' in its metadata: only ONNX files that nerve "
                        "exported convert into a checkpoint (run any other with nerve run)", path);
        onnx_model_free(pm);
        return NULL;
    }
    char cfg_name[PATH_MAX + 8];
    snprintf(cfg_name, sizeof cfg_name, "%s:cfg", path);
    const char *dir = onnx_model_meta(pm, "nerve.cfg_dir"), *hex = onnx_model_meta(pm, "nerve.vocab");
    nerve_vocab vocab;
    if (hex && nerve_vocab_parse(&vocab, hex) != NERVE_OK) {
        onnx_model_free(pm);
        return NULL;
    }
    model_build_opts o = {0, hex ? &vocab : NULL, 0};
    nerve_model *m = model_from_cfg_opts(text, cfg_name, dir ? dir : ".", &o);
    const char *names = onnx_model_meta(pm, "nerve.names");
    int st = m ? NERVE_OK : nerve_last_status();
    if (!st && names)
        st = model_names_from_json(m, names);
    xp e;
    memset(&e, 0, sizeof e);
    if (!st)
        st = build(&e, m);
    for (int k = 0; !st && k < e.om->n_init; k++) {
        const onnx_tensor *want = &e.om->init[k];
        int kind = e.src_kind[k];
        if (kind == SRC_NONE)
            continue;
        const onnx_tensor *got = NULL;
        for (int j = 0; j < pm->n_init && !got; j++)
            if (!strcmp(pm->init[j].name, want->name))
                got = &pm->init[j];
        if (!got || !got->f || !same_dims(got, want)) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: initializer '%s' is %s; the model of its cfg "
                                 "needs it as a float tensor of the shape nerve exports", path,
                                 want->name, got ? "of another shape or type" : "missing");
            break;
        }
        node *n = gn(&e, e.src[k]);
        if (kind == SRC_COPY || kind == SRC_STD) {
            memcpy(n->value, got->f, got->n * sizeof(float));
        } else if (kind == SRC_FLIP) {
            size_t rows = (size_t)want->dims[0] * (size_t)want->dims[1], taps = want->n / rows;
            for (size_t r = 0; r < rows; r++)
                for (size_t t = 0; t < taps; t++)
                    n->value[r * taps + t] = got->f[r * taps + taps - 1 - t];
        } else {
            rnn_pack(e.g, n, kind, got->f, 0);
        }
    }
    xp_free(&e);
    onnx_model_free(pm);
    if (st) {
        nerve_model_free(m);
        return NULL;
    }
    return m;
}
