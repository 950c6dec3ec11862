/* Settings, shapes and bias of the convolution operators (conv, conv_transpose, local; the
 * engine and the routes are described in conv.c).
 *
 * Attributes: attr.conv (src/graph/attrs.h), the caller's settings with same and flip as 0
 * or 1. Per-dimension settings are stored in the caller's order (entries 0..S-1). */
#include "conv_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

nerve_conv_config nerve_conv_default(void)
{
    nerve_conv_config c;
    memset(&c, 0, sizeof c);
    for (int d = 0; d < MAX_SPATIAL; d++)
        c.stride[d] = c.dilation[d] = 1;
    c.groups = 1;
    return c;
}

static node_attr conv_attr(const nerve_conv_config *c, const int *output_padding)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.conv.cfg = *c;
    at.conv.cfg.same = c->same != 0;
    at.conv.cfg.flip = c->flip != 0;
    for (int d = 0; d < MAX_SPATIAL; d++)
        at.conv.output_padding[d] = output_padding ? output_padding[d] : 0;
    return at;
}

nerve_conv_config conv_attr_config(const node_attr *at, int output_padding[MAX_SPATIAL])
{
    for (int d = 0; d < MAX_SPATIAL; d++)
        output_padding[d] = at->conv.output_padding[d];
    return at->conv.cfg;
}

/* Like op_shape_error, for settings rather than shapes. */
int conv_op_arg_error(const node *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nerve_set_error(NERVE_ERR_ARG, "%s (node '%s'): %s", n->op->name, n->name, msg);
}

int conv_check_config(const node *n, const nerve_conv_config *c, int S)
{
    for (int d = 0; d < S; d++) {
        if (c->stride[d] < 1)
            return conv_op_arg_error(n, "stride[%d] is %d; must be >= 1", d, c->stride[d]);
        if (c->dilation[d] < 1)
            return conv_op_arg_error(n, "dilation[%d] is %d; must be >= 1", d, c->dilation[d]);
        if (!c->same && (c->pad_begin[d] < 0 || c->pad_end[d] < 0))
            return conv_op_arg_error(n, "padding of spatial dim %d is %d/%d; must be >= 0", d,
                                c->pad_begin[d], c->pad_end[d]);
    }
    if (c->groups < 1)
        return conv_op_arg_error(n, "groups is %d; must be >= 1", c->groups);
    return NERVE_OK;
}

/* ---- geometry ------------------------------------------------------------------------- */

/* Shape computations run from scratch() too, which sees a const graph. */
const node *conv_input_of(const nerve_graph *g, const node *n, int i)
{
    return &g->nodes[n->in[i]];
}

/* A shape with every dimension neutral; spatial dim d of S lands at 3 - S + d. */
kern_conv_shape conv_neutral_shape(void)
{
    kern_conv_shape ks;
    memset(&ks, 0, sizeof ks);
    for (int d = 0; d < MAX_SPATIAL; d++)
        ks.image[d] = ks.kernel[d] = ks.out[d] = ks.stride[d] = ks.dilation[d] = 1;
    return ks;
}

/* Spatial sizes are computed in 64 bits and checked (node_check_size) before they are
 * stored in the kernel shape's ints: padding, stride, dilation and kernel come from the
 * caller (a cfg file), and their products need not fit an int. */
static int64_t extent(const nerve_conv_config *c, int d, int k)
{
    return size_add64(size_mul64(c->dilation[d], (int64_t)k - 1), 1);
}

/* Stores a checked size: v is within 1..NERVE_MAX_SAMPLE_VALUES, so it fits an int. */
static int spatial_size(const node *n, const char *what, int d, int64_t v, int *out)
{
    char msg[96];
    snprintf(msg, sizeof msg, "%s along spatial dim %d", what, d);
    int st = node_check_size(n, msg, v);
    if (!st)
        *out = (int)v;
    return st;
}

/* Forward convolutions (conv, local): padding and output size of each spatial dim from the
 * input sizes n[S] and kernel sizes k[S]. */
int conv_plan_forward_dims(const node *n, const nerve_conv_config *c, int S, const int *in,
                             const int *k, kern_conv_shape *ks)
{
    for (int d = 0; d < S; d++) {
        int D = MAX_SPATIAL - S + d, e, st;
        if ((st = spatial_size(n, "the kernel extent dilation * (size - 1) + 1", d,
                               extent(c, d, k[d]), &e)))
            return st;
        int64_t s = c->stride[d], pb = c->pad_begin[d], pe = c->pad_end[d];
        if (c->same) {
            int64_t out = (in[d] + s - 1) / s;
            int64_t total = (out - 1) * s + e - in[d]; /* < in + e: no overflow */
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
        }
        int64_t padded = (int64_t)in[d] + pb + pe;
        if (padded < e)
            return op_shape_error(n,
                                  "kernel extent %d (size %d, dilation %d) is larger than the "
                                  "padded input %lld (%d + %lld + %lld) along spatial dim %d",
                                  e, k[d], c->dilation[d], (long long)padded, in[d],
                                  (long long)pb, (long long)pe, d);
        if ((st = spatial_size(n, "the output size", d, (padded - e) / s + 1, &ks->out[D])))
            return st;
        if (pb > NERVE_MAX_SAMPLE_VALUES) /* same=1 pads by at most the extent */
            return op_shape_error(n, "padding %lld along spatial dim %d is beyond the limit of "
                                  "%lld", (long long)pb, d, NERVE_MAX_SAMPLE_VALUES);
        ks->image[D] = in[d];
        ks->kernel[D] = k[d];
        ks->stride[D] = (int)s;
        ks->pad[D] = (int)pb;
        ks->dilation[D] = c->dilation[d];
    }
    ks->flip = c->flip;
    return NERVE_OK;
}

/* Transposed convolution: the output (the big side) from the input sizes in[S]. */
static int plan_transpose_dims(const node *n, const nerve_conv_config *c, const int *outpad,
                               int S, const int *in, const int *k, kern_conv_shape *ks)
{
    for (int d = 0; d < S; d++) {
        int D = MAX_SPATIAL - S + d, e, st;
        if ((st = spatial_size(n, "the kernel extent dilation * (size - 1) + 1", d,
                               extent(c, d, k[d]), &e)))
            return st;
        int64_t s = c->stride[d], pb = c->pad_begin[d], pe = c->pad_end[d], op = outpad[d];
        if (c->same) {
            int64_t total = e - s;
            pb = total > 0 ? total / 2 : 0;
            pe = total > 0 ? total - pb : 0;
            op = total < 0 ? -total : 0;
        } else if (op < 0 || (op >= s && op >= c->dilation[d])) {
            return conv_op_arg_error(n, "output_padding[%d] is %lld; must be in 0..max(stride, "
                                   "dilation) - 1 = %d", d, (long long)op,
                                (c->stride[d] > c->dilation[d] ? c->stride[d] : c->dilation[d]) - 1);
        }
        /* (in - 1) * s + e + op - pb - pe: each term below 2^62, so the sum is exact */
        int64_t grown = size_add64(size_add64(size_mul64((int64_t)in[d] - 1, s), e), op);
        int64_t out = grown - pb - pe;
        if (out < 1)
            return op_shape_error(n, "output size %lld along spatial dim %d: the padding %lld + "
                                     "%lld removes more than (%d - 1) * %lld + %lld",
                                  (long long)out, d, (long long)pb, (long long)pe, in[d],
                                  (long long)s, (long long)(e + op));
        if ((st = spatial_size(n, "the output size (input - 1) * stride + extent + "
                               "output_padding - padding", d, out, &ks->image[D])))
            return st;
        if (pb > NERVE_MAX_SAMPLE_VALUES)
            return op_shape_error(n, "padding %lld along spatial dim %d is beyond the limit of "
                                  "%lld", (long long)pb, d, NERVE_MAX_SAMPLE_VALUES);
        ks->kernel[D] = k[d];
        ks->out[D] = in[d];
        ks->stride[D] = (int)s;
        ks->pad[D] = (int)pb;
        ks->dilation[D] = c->dilation[d];
    }
    ks->flip = c->flip;
    return NERVE_OK;
}

size_t conv_image_plane(const int *dims) { return (size_t)dims[0] * dims[1] * dims[2]; }

static int is_direct(const kern_conv_shape *ks)
{
    for (int d = 0; d < MAX_SPATIAL; d++)
        if (ks->kernel[d] != 1 || ks->stride[d] != 1 || ks->pad[d] != 0 ||
            ks->image[d] != ks->out[d])
            return 0;
    return 1;
}

/* One image of either side within the per-sample limit, so that the engine's int
 * arithmetic on planes and rows (and finish_geom's) cannot overflow. */
static int check_sides(const node *n, const conv_geom *cg)
{
    int64_t big = size_mul64(cg->big_c, shape_values64(MAX_SPATIAL, cg->ks.image));
    int64_t small = size_mul64(cg->small_c, shape_values64(MAX_SPATIAL, cg->ks.out));
    int st = node_check_size(n, "one sample of the larger side (channels x spatial sizes)", big);
    return st ? st : node_check_size(n, "one sample of the smaller side (channels x spatial sizes)",
                                     small);
}

static void finish_geom(conv_geom *cg)
{
    cg->ks.channels = cg->big_c / cg->groups;
    cg->big_plane = conv_image_plane(cg->ks.image);
    cg->small_plane = conv_image_plane(cg->ks.out);
    cg->rows = kern_conv_rows(&cg->ks);
    cg->direct = is_direct(&cg->ks);
    conv_plan_blocks(cg);
}

static int check_bias(const nerve_graph *g, const node *n, int channels)
{
    if (n->n_in < 3)
        return NERVE_OK;
    const node *b = conv_input_of(g, n, 2);
    if (b->ndim != 1 || b->dims[0] != channels)
        return op_shape_error(n, "bias must be [%d] (one per output channel)", channels);
    return NERVE_OK;
}

/* Output dims [N, C, *spatial of the given 3-D extents]. */
void conv_set_output_shape(node *n, int N, int C, int S, const int *ext3)
{
    n->ndim = 2 + S;
    n->dims[0] = N;
    n->dims[1] = C;
    for (int d = 0; d < S; d++)
        n->dims[2 + d] = ext3[MAX_SPATIAL - S + d];
}

/* Checks x [N, C, *n] against a kernel whose spatial rank is S. */
int conv_check_input_rank(const node *n, const node *x, int S)
{
    if (S < 1 || S > MAX_SPATIAL)
        return op_shape_error(n, "the weight gives %d spatial dims; 1 to 3 are supported", S);
    if (x->ndim != S + 2)
        return op_shape_error(n, "input must be [N, C] + %d spatial dims (rank %d), got rank %d",
                              S, S + 2, x->ndim);
    return NERVE_OK;
}

static int check_groups(const node *n, int G, int C, int O)
{
    if (C % G)
        return op_shape_error(n, "%d input channels are not divisible by %d groups", C, G);
    if (O % G)
        return op_shape_error(n, "%d output channels are not divisible by %d groups", O, G);
    return NERVE_OK;
}

/* conv: x [N, C, *n], w [O, C/G, *k]. */
int conv_geometry(const nerve_graph *g, const node *n, conv_geom *cg)
{
    const node *x = conv_input_of(g, n, 0), *w = conv_input_of(g, n, 1);
    int outpad[MAX_SPATIAL], S = w->ndim - 2, st;
    nerve_conv_config c = conv_attr_config(&n->attr, outpad);
    if ((st = conv_check_input_rank(n, x, S)) || (st = conv_check_config(n, &c, S)))
        return st;
    int C = x->dims[1], O = w->dims[0];
    if ((st = check_groups(n, c.groups, C, O)))
        return st;
    if (w->dims[1] != C / c.groups)
        return op_shape_error(n, "weight has %d input channels per group; the input's %d "
                                 "channels in %d groups need %d", w->dims[1], C, c.groups,
                              C / c.groups);
    if ((st = check_bias(g, n, O)))
        return st;
    *cg = (conv_geom){.batch = x->dims[0], .groups = c.groups, .big_c = C, .small_c = O};
    cg->ks = conv_neutral_shape();
    if ((st = conv_plan_forward_dims(n, &c, S, x->dims + 2, w->dims + 2, &cg->ks)) ||
        (st = check_sides(n, cg)))
        return st;
    finish_geom(cg);
    return NERVE_OK;
}

/* conv_transpose: x [N, C, *n], w [C, O/G, *k]; the big side is the output. */
int conv_transpose_geometry(const nerve_graph *g, const node *n, conv_geom *cg)
{
    const node *x = conv_input_of(g, n, 0), *w = conv_input_of(g, n, 1);
    int outpad[MAX_SPATIAL], S = w->ndim - 2, st;
    nerve_conv_config c = conv_attr_config(&n->attr, outpad);
    if ((st = conv_check_input_rank(n, x, S)) || (st = conv_check_config(n, &c, S)))
        return st;
    int C = x->dims[1], O;
    if ((st = node_check_size(n, "the output channels (weight dim 1 * groups)",
                              size_mul64(w->dims[1], c.groups))))
        return st;
    O = w->dims[1] * c.groups;
    if (w->dims[0] != C)
        return op_shape_error(n, "weight [C, O/groups, *k] has C = %d but the input has %d "
                                 "channels", w->dims[0], C);
    if ((st = check_groups(n, c.groups, C, O)) || (st = check_bias(g, n, O)))
        return st;
    *cg = (conv_geom){.batch = x->dims[0], .groups = c.groups, .big_c = O, .small_c = C};
    cg->ks = conv_neutral_shape();
    if ((st = plan_transpose_dims(n, &c, outpad, S, x->dims + 2, w->dims + 2, &cg->ks)) ||
        (st = check_sides(n, cg)))
        return st;
    finish_geom(cg);
    return NERVE_OK;
}

/* ---- bias over [N, C, plane]: one value per channel, or per (channel, position) ------- */

void conv_bias_fill(float *y, const float *b, int N, int C, size_t plane, int per_position)
{
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            float *row = y + ((size_t)i * C + c) * plane;
            if (!b)
                memset(row, 0, plane * sizeof(float));
            else if (per_position)
                memcpy(row, b + (size_t)c * plane, plane * sizeof(float));
            else
                for (size_t p = 0; p < plane; p++)
                    row[p] = b[c];
        }
}

typedef struct bias_grad_job {
    const float *dy;
    float *db;
    int N, C;
    size_t plane;
} bias_grad_job;

/* db[c] += the sum of channel c over the images, for channels [c0, c1): each channel is
 * summed by one thread, in the same order whatever the thread count. */
static void bias_grad_channels(void *p, size_t c0, size_t c1)
{
    const bias_grad_job *j = p;
    for (size_t c = c0; c < c1; c++) {
        float s = 0.0f;
        for (int i = 0; i < j->N; i++) {
            const float *row = j->dy + ((size_t)i * j->C + c) * j->plane;
            float r = 0.0f;
#pragma omp simd reduction(+ : r)
            for (size_t p = 0; p < j->plane; p++)
                r += row[p];
            s += r;
        }
        j->db[c] += s;
    }
}

void conv_bias_grad(const float *dy, float *db, int N, int C, size_t plane, int per_position)
{
    if (!per_position) {
        bias_grad_job j = {dy, db, N, C, plane};
        size_t per_channel = (size_t)N * plane;
        kern_parallel_for((size_t)C, per_channel >= (1u << 14) ? 1 : (1u << 14) / per_channel,
                          bias_grad_channels, &j);
        return;
    }
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            const float *row = dy + ((size_t)i * C + c) * plane;
            for (size_t p = 0; p < plane; p++)
                db[(size_t)c * plane + p] += row[p];
        }
}

const float *conv_bias_value(nerve_graph *g, const node *n)
{
    return n->n_in == 3 ? node_input(g, n, 2)->value : NULL;
}

float *conv_bias_gradient(nerve_graph *g, const node *n)
{
    return n->n_in == 3 ? node_input_grad(g, n, 2) : NULL;
}

/* ---- adding the operators ------------------------------------------------------------ */

static const nerve_conv_config *config_or_default(const nerve_conv_config *c,
                                                  nerve_conv_config *fallback)
{
    if (c)
        return c;
    *fallback = nerve_conv_default();
    return fallback;
}

int conv_add_op(nerve_graph *g, const op_def *op, int x, int w, int bias,
                const nerve_conv_config *cfg, const int *output_padding)
{
    nerve_conv_config fallback;
    node_attr at = conv_attr(config_or_default(cfg, &fallback), output_padding);
    int in[3] = {x, w, bias};
    return graph_add_op(g, op, bias >= 0 ? 3 : 2, in, &at, op->name);
}
