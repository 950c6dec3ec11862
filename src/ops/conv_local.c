/* local: a convolution with unshared weights. x [N, C, *n], w [L, O, C, *k], bias [O] or
 * [O, *out]. It gathers every image's patches position-major (im2row) and takes one dot
 * product per (position, output channel). Its settings are conv's (conv_geometry.c). */
#include "conv_internal.h"

#include <string.h>

typedef struct local_geom {
    int batch, in_c, out_c;
    size_t in_plane, positions; /* L */
    kern_conv_shape ks;         /* every input channel of one image */
    size_t patch;               /* C * prod(k) */
    int bias_per_position;
} local_geom;

static int local_check_bias(const nerve_graph *g, const node *n, const local_geom *lg, int S)
{
    if (n->n_in < 3)
        return NERVE_OK;
    const node *b = conv_input_of(g, n, 2);
    if (b->ndim == 1 && b->dims[0] == lg->out_c)
        return NERVE_OK;
    int ok = b->ndim == S + 1 && b->dims[0] == lg->out_c;
    for (int d = 0; ok && d < S; d++)
        ok = b->dims[1 + d] == lg->ks.out[MAX_SPATIAL - S + d];
    if (!ok) {
        char want[64];
        int dims[1 + MAX_SPATIAL] = {lg->out_c};
        for (int d = 0; d < S; d++)
            dims[1 + d] = lg->ks.out[MAX_SPATIAL - S + d];
        return op_shape_error(n, "bias must be [%d] or %s", lg->out_c,
                              nerve_shape_str(S + 1, dims, want, sizeof want));
    }
    return NERVE_OK;
}

static int local_geometry(const nerve_graph *g, const node *n, local_geom *lg)
{
    const node *x = conv_input_of(g, n, 0), *w = conv_input_of(g, n, 1);
    int outpad[MAX_SPATIAL], S = w->ndim - 3, st;
    nerve_conv_config c = conv_attr_config(&n->attr, outpad);
    if ((st = conv_check_input_rank(n, x, S)) || (st = conv_check_config(n, &c, S)))
        return st;
    if (c.groups != 1)
        return conv_op_arg_error(n, "groups is %d; a locally connected layer has one group", c.groups);
    if (w->dims[2] != x->dims[1])
        return op_shape_error(n, "weight [L, O, C, *k] has C = %d but the input has %d channels",
                              w->dims[2], x->dims[1]);
    *lg = (local_geom){.batch = x->dims[0], .in_c = x->dims[1], .out_c = w->dims[1]};
    lg->ks = conv_neutral_shape();
    if ((st = conv_plan_forward_dims(n, &c, S, x->dims + 2, w->dims + 3, &lg->ks)) ||
        (st = node_check_size(n, "one sample of the output (channels x spatial sizes)",
                              size_mul64(lg->out_c, shape_values64(MAX_SPATIAL, lg->ks.out)))))
        return st;
    lg->ks.channels = lg->in_c;
    lg->in_plane = conv_image_plane(lg->ks.image);
    lg->positions = conv_image_plane(lg->ks.out);
    lg->patch = kern_conv_rows(&lg->ks);
    if ((size_t)w->dims[0] != lg->positions) {
        char shape[64];
        return op_shape_error(n, "weight has %d positions but the output %s has %zu",
                              w->dims[0],
                              nerve_shape_str(S, lg->ks.out + MAX_SPATIAL - S, shape, sizeof shape),
                              lg->positions);
    }
    if ((st = local_check_bias(g, n, lg, S)))
        return st;
    lg->bias_per_position = n->n_in == 3 && conv_input_of(g, n, 2)->ndim > 1;
    return NERVE_OK;
}

static int local_infer(nerve_graph *g, node *n)
{
    local_geom lg;
    int st = local_geometry(g, n, &lg);
    if (st)
        return st;
    conv_set_output_shape(n, lg.batch, lg.out_c, node_input(g, n, 1)->ndim - 3, lg.ks.out);
    return NERVE_OK;
}

static size_t local_scratch(const nerve_graph *g, const node *n)
{
    local_geom lg;
    return local_geometry(g, n, &lg) ? 0 : lg.positions * lg.patch;
}

static float dot(const float *a, const float *b, size_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* y[o, l] += w[l, o, :] . rows[l, :] for one image. */
static void local_image_forward(const local_geom *lg, const float *w, const float *rows, float *y)
{
    for (size_t l = 0; l < lg->positions; l++)
        for (int o = 0; o < lg->out_c; o++)
            y[(size_t)o * lg->positions + l] +=
                dot(w + (l * lg->out_c + o) * lg->patch, rows + l * lg->patch, lg->patch);
}

/* dw[l, o, :] += dy[o, l] rows[l, :] (when dw), then rows[l, :] = sum_o dy[o, l] w[l, o, :]:
 * each position's patch is used for its weight gradient before it is overwritten by its
 * input gradient, so one buffer holds both. */
static void local_image_backward(const local_geom *lg, const float *w, const float *dy,
                                 float *rows, float *dw)
{
    for (size_t l = 0; l < lg->positions; l++) {
        float *r = rows + l * lg->patch;
        for (int o = 0; o < lg->out_c && dw; o++) {
            float g = dy[(size_t)o * lg->positions + l];
            float *d = dw + (l * lg->out_c + o) * lg->patch;
            for (size_t k = 0; k < lg->patch; k++)
                d[k] += g * r[k];
        }
        memset(r, 0, lg->patch * sizeof(float));
        for (int o = 0; o < lg->out_c; o++) {
            float g = dy[(size_t)o * lg->positions + l];
            const float *wr = w + (l * lg->out_c + o) * lg->patch;
            for (size_t k = 0; k < lg->patch; k++)
                r[k] += g * wr[k];
        }
    }
}

static void local_forward(nerve_graph *g, node *n)
{
    local_geom lg;
    local_geometry(g, n, &lg);
    const float *x = node_input(g, n, 0)->value, *w = node_input(g, n, 1)->value;
    conv_bias_fill(n->value, conv_bias_value(g, n), lg.batch, lg.out_c, lg.positions, lg.bias_per_position);
    for (int i = 0; i < lg.batch; i++) {
        kern_im2row(&lg.ks, x + (size_t)i * lg.in_c * lg.in_plane, n->scratch);
        local_image_forward(&lg, w, n->scratch, n->value + (size_t)i * lg.out_c * lg.positions);
    }
}

static void local_backward(nerve_graph *g, node *n)
{
    local_geom lg;
    local_geometry(g, n, &lg);
    const float *x = node_input(g, n, 0)->value, *w = node_input(g, n, 1)->value;
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1), *db = conv_bias_gradient(g, n);
    for (int i = 0; (dx || dw) && i < lg.batch; i++) {
        const float *dy = n->grad + (size_t)i * lg.out_c * lg.positions;
        if (dw)
            kern_im2row(&lg.ks, x + (size_t)i * lg.in_c * lg.in_plane, n->scratch);
        local_image_backward(&lg, w, dy, n->scratch, dw);
        if (dx)
            kern_row2im(&lg.ks, n->scratch, dx + (size_t)i * lg.in_c * lg.in_plane);
    }
    if (db)
        conv_bias_grad(n->grad, db, lg.batch, lg.out_c, lg.positions, lg.bias_per_position);
}

const op_def conv_op_local = {"local", local_infer, local_scratch, local_forward,
                                local_backward, OP_SCRATCH_TRANSIENT};

int nerve_local(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg)
{
    return conv_add_op(g, &conv_op_local, x, w, bias, cfg, NULL);
}
