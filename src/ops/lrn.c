/* Operators that couple the values at one position across its neighbourhood of channels
 * or pixels: local response normalisation and the pixel-wise softmax cross-entropy.
 *
 * LRN (AlexNet, the course's formula: alpha is not divided by n):
 *   s_i = k + alpha sum_{j in B(i)} x_j^2,   y_i = x_i s_i^-beta
 * where B(i) is the box of radius r = n/2 (rounded down) around i, clipped to the tensor:
 * across channels (c - r .. c + r at the same pixel) or within the map (an n x n square
 * of the same channel). B is symmetric (j in B(i) iff i in B(j)), so
 *   dx_m = dy_m s_m^-beta - 2 alpha beta x_m sum_{i in B(m)} dy_i y_i / s_i.
 * scratch: s [numel], then a work buffer [numel] (x^2 in forward, dy y / s in backward).
 *
 * Pixel-wise softmax cross-entropy: logits z [N, C, P...], labels [N, P...]; at each of
 * the N*P pixels p = softmax over the C channels, and with weights w (1 when absent)
 *   loss = sum_pix w_y (lse - z_y) / Z,  Z = sum_pix w_y    dz_c += w_y (p_c - [c == y]) / Z
 * scratch: the probabilities [N, C, P...]. A label that is not a class makes the loss NaN
 * (see loss.c); backward skips those pixels. With attr.pixel_ce.use_ignore, pixels labelled its
 * ignore_index are left out of the sums, Z included. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- lrn: attr.lrn -------------------------------------------------------------------- */

/* The tensor as [N, C, H, W] boxes: the neighbourhood of (n, c, y, x) is
 * [c - rc, c + rc] x [y - rh, y + rh] x [x - rw, x + rw] clipped. Across channels the
 * pixels are one row (H = 1) with rh = rw = 0; within a map rc = 0. */
typedef struct box_geom {
    int N, C, H, W;
    int rc, rh, rw;
} box_geom;

static box_geom lrn_geometry(const node *n)
{
    int r = n->attr.lrn.size / 2, one_d = n->ndim == 3;
    box_geom b = {n->dims[0], n->dims[1], 1, 1, 0, 0, 0};
    if (n->attr.lrn.within_map) {
        b.H = one_d ? 1 : n->dims[2];
        b.W = n->dims[n->ndim - 1];
        b.rh = one_d ? 0 : r;
        b.rw = r;
    } else {
        b.W = (int)(node_numel(n) / ((size_t)b.N * b.C));
        b.rc = r;
    }
    return b;
}

static int clip_lo(int v, int r) { return v - r < 0 ? 0 : v - r; }
static int clip_hi(int v, int r, int size) { return v + r >= size ? size - 1 : v + r; }

/* Sum of w over the box around (n, c, y, x). */
static float box_sum(const box_geom *b, const float *w, int n, int c, int y, int x)
{
    float s = 0.0f;
    for (int cc = clip_lo(c, b->rc); cc <= clip_hi(c, b->rc, b->C); cc++)
        for (int yy = clip_lo(y, b->rh); yy <= clip_hi(y, b->rh, b->H); yy++) {
            const float *row = w + (((size_t)n * b->C + cc) * b->H + yy) * b->W;
            for (int xx = clip_lo(x, b->rw); xx <= clip_hi(x, b->rw, b->W); xx++)
                s += row[xx];
        }
    return s;
}

/* out[i] += scale * mul[i] * box_sum(w, i) for every element i (mul NULL: 1). */
static void add_box_sums(const box_geom *b, const float *w, float scale, const float *mul,
                         float *out)
{
    size_t i = 0;
    for (int n = 0; n < b->N; n++)
        for (int c = 0; c < b->C; c++)
            for (int y = 0; y < b->H; y++)
                for (int x = 0; x < b->W; x++, i++)
                    out[i] += scale * (mul ? mul[i] : 1.0f) * box_sum(b, w, n, c, y, x);
}

static int lrn_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0);
    if (x->ndim < 2)
        return op_shape_error(n, "input needs a batch and a channel axis, got rank %d", x->ndim);
    if (n->attr.lrn.within_map && x->ndim != 3 && x->ndim != 4)
        return op_shape_error(n, "within-map LRN needs [N, C, H, W] or [N, C, L], got rank %d",
                              x->ndim);
    node_copy_shape(n, x);
    return NERVE_OK;
}

static size_t lrn_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return 2 * node_numel(n);
}

static void lrn_forward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, 0)->value;
    float alpha = n->attr.lrn.alpha, beta = n->attr.lrn.beta, k = n->attr.lrn.k;
    size_t count = node_numel(n);
    float *s = n->scratch, *sq = n->scratch + count;
    box_geom b = lrn_geometry(n);
    for (size_t i = 0; i < count; i++) {
        sq[i] = x[i] * x[i];
        s[i] = k;
    }
    add_box_sums(&b, sq, alpha, NULL, s);
    for (size_t i = 0; i < count; i++)
        n->value[i] = x[i] * powf(s[i], -beta);
}

static void lrn_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    const float *x = node_input(g, n, 0)->value, *dy = n->grad, *y = n->value;
    float alpha = n->attr.lrn.alpha, beta = n->attr.lrn.beta;
    size_t count = node_numel(n);
    const float *s = n->scratch;
    float *t = n->scratch + count;
    box_geom b = lrn_geometry(n);
    for (size_t i = 0; i < count; i++) {
        dx[i] += dy[i] * powf(s[i], -beta); /* the direct path */
        t[i] = dy[i] * y[i] / s[i];
    }
    add_box_sums(&b, t, -2.0f * alpha * beta, x, dx); /* through the neighbours' s */
}

static const op_def op_lrn = {"lrn", lrn_infer, lrn_scratch, lrn_forward, lrn_backward, 0};

int nerve_lrn(nerve_graph *g, int x, int size, float alpha, float beta, float k, int within_map)
{
    if (size < 1)
        return nerve_set_error(NERVE_ERR_ARG, "lrn: size %d must be at least 1", size);
    if (!isfinite(alpha) || !isfinite(beta) || !isfinite(k) || !(k > 0.0f) || alpha < 0.0f)
        return nerve_set_error(NERVE_ERR_ARG,
                               "lrn: need finite alpha >= 0, beta, and k > 0 (got %g, %g, %g)",
                               (double)alpha, (double)beta, (double)k);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.lrn.size = size;
    at.lrn.within_map = within_map != 0;
    at.lrn.alpha = alpha;
    at.lrn.beta = beta;
    at.lrn.k = k;
    return graph_add_op(g, &op_lrn, 1, (int[]){x}, &at, "lrn");
}

/* ---- pixel-wise softmax cross-entropy: inputs logits, labels [, class weights] -------- */

/* [N, C, P] view of the logits: channel c of pixel p of sample i at (i C + c) P + p. */
typedef struct pixel_view {
    int N, C;
    size_t P;
} pixel_view;

static pixel_view view_pixels(const node *z)
{
    pixel_view v = {z->dims[0], z->dims[1], 1};
    v.P = node_numel(z) / ((size_t)v.N * v.C);
    return v;
}

static int labels_fit(const node *z, const node *y)
{
    int skip_one = y->ndim == z->ndim && y->dims[1] == 1; /* [N, 1, H, W] */
    if (y->ndim != z->ndim - 1 && !skip_one)
        return 0;
    if (y->dims[0] != z->dims[0])
        return 0;
    for (int d = 2; d < z->ndim; d++)
        if (y->dims[d - 1 + skip_one] != z->dims[d])
            return 0;
    return 1;
}

static int pixel_ce_infer(nerve_graph *g, node *n)
{
    const node *z = node_input(g, n, 0), *y = node_input(g, n, 1);
    char zs[64], ys[64];
    if (z->ndim < 3)
        return op_shape_error(n, "logits must be [N, C, H, W] or [N, C, L], got %s",
                              nerve_shape_str(z->ndim, z->dims, zs, sizeof zs));
    if (!labels_fit(z, y))
        return op_shape_error(n, "labels %s do not fit logits %s (want the logits' shape without "
                                 "the channel axis)",
                              nerve_shape_str(y->ndim, y->dims, ys, sizeof ys),
                              nerve_shape_str(z->ndim, z->dims, zs, sizeof zs));
    if (n->n_in == 3) {
        const node *w = node_input(g, n, 2);
        if (w->ndim != 1 || w->dims[0] != z->dims[1])
            return op_shape_error(n, "class weights must be [%d], got %s", z->dims[1],
                                  nerve_shape_str(w->ndim, w->dims, ys, sizeof ys));
    }
    n->ndim = 0;
    return NERVE_OK;
}

static size_t pixel_ce_scratch(const nerve_graph *g, const node *n)
{
    return node_numel(&g->nodes[n->in[0]]);
}

/* p = softmax of the C values z[0], z[stride], ... (max-subtracted); returns lse. */
static double softmax_strided(const float *z, float *p, int C, size_t stride)
{
    float m = z[0];
    for (int c = 1; c < C; c++)
        m = fmaxf(m, z[c * stride]);
    double sum = 0;
    for (int c = 0; c < C; c++)
        sum += exp((double)z[c * stride] - m);
    double lse = m + log(sum);
    for (int c = 0; c < C; c++)
        p[c * stride] = (float)exp((double)z[c * stride] - lse);
    return lse;
}

/* The class a label names, or -1 unless it is an integer in [0, C). */
static int pixel_class(float y, int C)
{
    if (!(y >= 0.0f && y < (float)C) || y != floorf(y))
        return -1;
    return (int)y;
}

/* attr.pixel_ce: with use_ignore, pixels labelled ignore_index carry no label and are
 * skipped. */
static int pixel_ignored(const node *n, float y)
{
    return n->attr.pixel_ce.use_ignore && y == (float)n->attr.pixel_ce.ignore_index;
}

static double pixel_weight(const float *w, int c) { return w ? (double)w[c] : 1.0; }

/* Summed weight of every labelled pixel's class: the mean's denominator. */
static double pixel_normaliser(const node *n, const float *labels, const float *w, size_t pixels,
                               int C)
{
    double z = 0;
    for (size_t i = 0; i < pixels; i++) {
        if (pixel_ignored(n, labels[i]))
            continue;
        int y = pixel_class(labels[i], C);
        if (y >= 0)
            z += pixel_weight(w, y);
    }
    return z;
}

static const float *pixel_weights(nerve_graph *g, const node *n)
{
    return n->n_in == 3 ? node_input(g, n, 2)->value : NULL;
}

static void pixel_ce_forward(nerve_graph *g, node *n)
{
    const node *z = node_input(g, n, 0);
    const float *labels = node_input(g, n, 1)->value, *w = pixel_weights(g, n);
    pixel_view v = view_pixels(z);
    double total = 0;
    int bad_label = 0;
    for (int i = 0; i < v.N; i++)
        for (size_t p = 0; p < v.P; p++) {
            size_t at = (size_t)i * v.C * v.P + p;
            double lse = softmax_strided(z->value + at, n->scratch + at, v.C, v.P);
            float label = labels[(size_t)i * v.P + p];
            if (pixel_ignored(n, label))
                continue;
            int y = pixel_class(label, v.C);
            if (y < 0)
                bad_label = 1;
            else
                total += pixel_weight(w, y) * (lse - z->value[at + y * v.P]);
        }
    double norm = pixel_normaliser(n, labels, w, (size_t)v.N * v.P, v.C);
    /* a batch whose every pixel is ignored contributes nothing (not 0/0) */
    n->value[0] = bad_label ? NAN : norm > 0 ? (float)(total / norm) : 0.0f;
}

static void pixel_ce_backward(nerve_graph *g, node *n)
{
    float *dz = node_input_grad(g, n, 0);
    if (!dz)
        return;
    const float *labels = node_input(g, n, 1)->value, *w = pixel_weights(g, n);
    pixel_view v = view_pixels(node_input(g, n, 0));
    double norm = pixel_normaliser(n, labels, w, (size_t)v.N * v.P, v.C);
    if (!(norm > 0))
        return;
    double scale = n->grad[0] / norm;
    for (int i = 0; i < v.N; i++)
        for (size_t p = 0; p < v.P; p++) {
            float label = labels[(size_t)i * v.P + p];
            int y = pixel_ignored(n, label) ? -1 : pixel_class(label, v.C);
            if (y < 0)
                continue;
            size_t at = (size_t)i * v.C * v.P + p;
            double s = scale * pixel_weight(w, y);
            for (int c = 0; c < v.C; c++) {
                size_t k = at + (size_t)c * v.P;
                dz[k] += (float)(s * (n->scratch[k] - (c == y)));
            }
        }
}

static const op_def op_pixel_ce = {"pixel_softmax_ce_loss", pixel_ce_infer, pixel_ce_scratch,
                                   pixel_ce_forward, pixel_ce_backward, 0};

int nerve_pixel_softmax_ce_loss(nerve_graph *g, int logits, int labels, int class_weights)
{
    return nerve_pixel_softmax_ce_loss_ignore(g, logits, labels, class_weights, 0, 0);
}

int nerve_pixel_softmax_ce_loss_ignore(nerve_graph *g, int logits, int labels, int class_weights,
                                       int use_ignore, int ignore_index)
{
    int in[3] = {logits, labels, class_weights};
    node_attr at;
    memset(&at, 0, sizeof at);
    at.pixel_ce.use_ignore = use_ignore != 0;
    at.pixel_ce.ignore_index = ignore_index;
    return graph_add_op(g, &op_pixel_ce, class_weights >= 0 ? 3 : 2, in, &at,
                        "pixel_softmax_ce_loss");
}

const op_def *const ops_lrn[] = {&op_lrn, &op_pixel_ce, NULL};
