/* Convolution family: conv (1-3 spatial dims), conv_transpose and local.
 * The course's vectors exactly; plain-loop references written here for many settings;
 * finite-difference gradients; batch-size changes; no allocation after the first step. */
#include "test.h"
#include "../src/graph/graph.h"
#include "../src/kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

typedef enum { OP_CONV, OP_TCONV, OP_LOCAL } op_kind;

/* ---- single-channel runs for the course's vectors ----------------------------------------- */

/* Runs one operator on one image with one input and one output channel: x has spatial
 * sizes n[S], the kernel k[S]. Writes the output into out and its spatial sizes into
 * out_n; returns the node status. */
static int run_single(op_kind op, int S, const int *n, const float *x, const int *k,
                      const float *w, const nerve_conv_config *c, float *out, int *out_n)
{
    nerve_graph *g = nerve_graph_create();
    int xd[5] = {1, 1}, wd[5] = {1, 1};
    for (int d = 0; d < S; d++) {
        xd[2 + d] = n[d];
        wd[2 + d] = k[d];
    }
    int xi = nerve_input(g, "x", S + 2, xd);
    int wi = nerve_param(g, "w", S + 2, wd);
    int y = op == OP_CONV ? nerve_conv(g, xi, wi, -1, c)
                          : nerve_conv_transpose(g, xi, wi, -1, c, NULL);
    if (y < 0 || nerve_graph_compile(g, 1) < 0) {
        nerve_graph_free(g);
        return -1;
    }
    nerve_tensor xt = nerve_value(g, xi), wt = nerve_value(g, wi);
    memcpy(xt.data, x, nerve_tensor_numel(&xt) * sizeof(float));
    memcpy(wt.data, w, nerve_tensor_numel(&wt) * sizeof(float));
    nerve_forward(g, y);
    nerve_tensor yt = nerve_value(g, y);
    for (int d = 0; d < S; d++)
        out_n[d] = yt.dims[2 + d];
    memcpy(out, yt.data, nerve_tensor_numel(&yt) * sizeof(float));
    nerve_graph_free(g);
    return 0;
}

TEST(conv_course_1d_full_and_valid_convolution)
{
    const float f[] = {0, 1, 2, 3, 4}, k[] = {1, -1, 2};
    nerve_conv_config c = nerve_conv_default();
    c.flip = 1;
    c.pad_begin[0] = c.pad_end[0] = 2; /* k - 1 on both sides: the full convolution */
    float out[16];
    int on[1];
    CHECK_OK(run_single(OP_CONV, 1, (int[]){5}, f, (int[]){3}, k, &c, out, on));
    const float full[] = {0, 1, 1, 3, 5, 2, 8};
    CHECK(on[0] == 7);
    CHECK_ARRAY_NEAR(out, full, 7, 0);
    c.pad_begin[0] = c.pad_end[0] = 0;
    CHECK_OK(run_single(OP_CONV, 1, (int[]){5}, f, (int[]){3}, k, &c, out, on));
    const float valid[] = {1, 3, 5};
    CHECK(on[0] == 3);
    CHECK_ARRAY_NEAR(out, valid, 3, 0);
}

TEST(conv_course_2d_convolution_and_correlation)
{
    const float x[] = {1, 3, 1, 0, -1, 1, 2, 2, -1}, k[] = {1, 2, 0, -1};
    nerve_conv_config c = nerve_conv_default();
    float out[4];
    int on[2];
    c.flip = 1;
    CHECK_OK(run_single(OP_CONV, 2, (int[]){3, 3}, x, (int[]){2, 2}, k, &c, out, on));
    const float conv[] = {-2, -4, 6, 4};
    CHECK(on[0] == 2 && on[1] == 2);
    CHECK_ARRAY_NEAR(out, conv, 4, 0);
    c.flip = 0;
    CHECK_OK(run_single(OP_CONV, 2, (int[]){3, 3}, x, (int[]){2, 2}, k, &c, out, on));
    const float corr[] = {8, 4, -4, 2};
    CHECK_ARRAY_NEAR(out, corr, 4, 0);
}

TEST(conv_course_5x5_image_3x3_kernel)
{
    const float img[] = {1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0};
    const float k[] = {1, 0, 1, 0, 1, 0, 1, 0, 1};
    float out[9];
    int on[2];
    CHECK_OK(run_single(OP_CONV, 2, (int[]){5, 5}, img, (int[]){3, 3}, k, NULL, out, on));
    const float want[] = {4, 3, 4, 2, 4, 3, 2, 3, 4};
    CHECK(on[0] == 3 && on[1] == 3);
    CHECK_ARRAY_NEAR(out, want, 9, 0);
}

TEST(conv_course_1d_same_padding)
{
    const float f[] = {3, 2, 2, -1, -2, -3, -1}, k[] = {-1, 0, 2, 0, -1};
    nerve_conv_config c = nerve_conv_default();
    c.same = 1;
    c.flip = 1;
    float out[8];
    int on[1];
    CHECK_OK(run_single(OP_CONV, 1, (int[]){7}, f, (int[]){5}, k, &c, out, on));
    const float want[] = {4, 5, 3, -1, -5, -5, 0};
    CHECK(on[0] == 7);
    CHECK_ARRAY_NEAR(out, want, 7, 0);
}

TEST(conv_same_even_kernel_puts_the_extra_padding_at_the_end)
{
    /* n = 4, k = 2, stride 1: P = 1, so pb = 0, pe = 1 and y[i] = x[i] w0 + x[i+1] w1. */
    const float x[] = {1, 2, 3, 4}, k[] = {10, 1};
    nerve_conv_config c = nerve_conv_default();
    c.same = 1;
    float out[4];
    int on[1];
    CHECK_OK(run_single(OP_CONV, 1, (int[]){4}, x, (int[]){2}, k, &c, out, on));
    const float want[] = {12, 23, 34, 40};
    CHECK(on[0] == 4);
    CHECK_ARRAY_NEAR(out, want, 4, 0);
    /* stride 2, n = 5: ceil(5/2) = 3 outputs. */
    const float x5[] = {1, 2, 3, 4, 5}, k3[] = {1, 1, 1};
    c.stride[0] = 2;
    CHECK_OK(run_single(OP_CONV, 1, (int[]){5}, x5, (int[]){3}, k3, &c, out, on));
    const float want5[] = {3, 9, 9}; /* P = 2: pads 1/1 -> [0+1+2, 2+3+4, 4+5+0] */
    CHECK(on[0] == 3);
    CHECK_ARRAY_NEAR(out, want5, 3, 0);
}

TEST(conv_transpose_course_5x5_example)
{
    const float x[] = {1, 2, 3, 4}, k[] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    nerve_conv_config c = nerve_conv_default();
    c.stride[0] = c.stride[1] = 2;
    float out[25];
    int on[2];
    CHECK_OK(run_single(OP_TCONV, 2, (int[]){2, 2}, x, (int[]){3, 3}, k, &c, out, on));
    const float want[] = {1, 1, 3, 2, 2, 1, 1, 3,  2, 2, 4, 4, 10,
                          6, 6, 3, 3, 7, 4, 4, 3, 3, 7, 4, 4};
    CHECK(on[0] == 5 && on[1] == 5);
    CHECK_ARRAY_NEAR(out, want, 25, 0);
}

TEST(conv_parameter_counts_match_the_course)
{
    /* (k^2 n_in + 1) n_out: a 9x9 kernel on 1 map -> 64 maps, then 64 -> 256 maps. */
    const int n_in[2] = {1, 64}, n_out[2] = {64, 256};
    const size_t want[2] = {5248, 1327360};
    for (int i = 0; i < 2; i++) {
        nerve_graph *g = nerve_graph_create();
        int x = nerve_input(g, "x", 4, (int[]){1, n_in[i], 28, 28});
        int w = nerve_param(g, "w", 4, (int[]){n_out[i], n_in[i], 9, 9});
        int b = nerve_param(g, "b", 1, (int[]){n_out[i]});
        CHECK_OK(nerve_conv(g, x, w, b, NULL));
        CHECK(nerve_graph_param_count(g) == want[i]);
        CHECK(want[i] == (size_t)(81 * n_in[i] + 1) * (size_t)n_out[i]);
        nerve_graph_free(g);
    }
}

/* ---- problems and plain-loop references ------------------------------------------------ */

typedef struct problem {
    op_kind op;
    int S, N, C, O, G;
    int n[3], k[3]; /* input spatial sizes and kernel, S entries */
    nerve_conv_config cfg;
    int outpad[3];  /* conv_transpose */
    int bias;       /* 0 none, 1 per channel, 2 per output element (local only) */
} problem;

/* Every setting padded to 3-D with neutral leading dimensions, padding resolved. */
typedef struct geom3 {
    int n[3], k[3], out[3], s[3], d[3], pb[3];
} geom3;

static geom3 resolve(const problem *p)
{
    geom3 r;
    for (int i = 0; i < 3; i++)
        r.n[i] = r.k[i] = r.out[i] = r.s[i] = r.d[i] = 1, r.pb[i] = 0;
    for (int i = 0; i < p->S; i++) {
        int D = 3 - p->S + i, n = p->n[i], k = p->k[i];
        int s = p->cfg.stride[i], d = p->cfg.dilation[i], e = d * (k - 1) + 1;
        int pb = p->cfg.pad_begin[i], pe = p->cfg.pad_end[i], op = p->outpad[i];
        r.n[D] = n, r.k[D] = k, r.s[D] = s, r.d[D] = d;
        if (p->op == OP_TCONV) {
            if (p->cfg.same) {
                int P = e - s;
                pb = P > 0 ? P / 2 : 0, pe = P > 0 ? P - pb : 0, op = P < 0 ? -P : 0;
            }
            r.out[D] = (n - 1) * s - pb - pe + e + op;
        } else {
            if (p->cfg.same) {
                int o = (n + s - 1) / s, P = (o - 1) * s + e - n;
                pb = P > 0 ? P / 2 : 0, pe = P > 0 ? P - pb : 0;
            }
            r.out[D] = (n + pb + pe - e) / s + 1;
        }
        r.pb[D] = pb;
    }
    return r;
}

static int tap(const problem *p, const geom3 *r, int D, int k)
{
    return p->cfg.flip ? r->k[D] - 1 - k : k;
}

static size_t prod3(const int *a) { return (size_t)a[0] * a[1] * a[2]; }
/* Row-major index of (a, b, c) in a 3-D extent. */
static size_t idx3(const int *ext, int a, int b, int c)
{
    return ((size_t)a * ext[1] + b) * ext[2] + c;
}

/* Input index of output position o at tap k along D, or -1 outside the input of size n. */
static int conv_index(const problem *p, const geom3 *r, int D, int o, int k)
{
    int i = o * r->s[D] - r->pb[D] + tap(p, r, D, k) * r->d[D];
    return i >= 0 && i < r->n[D] ? i : -1;
}

static void ref_conv(const problem *p, const float *x, const float *w, const float *b, float *y)
{
    geom3 r = resolve(p);
    int Cg = p->C / p->G, Og = p->O / p->G;
    size_t K = prod3(r.k), L = prod3(r.out), P = prod3(r.n);
    for (int i = 0; i < p->N; i++)
        for (int o = 0; o < p->O; o++)
            for (int a = 0; a < r.out[0]; a++)
                for (int bb = 0; bb < r.out[1]; bb++)
                    for (int c3 = 0; c3 < r.out[2]; c3++) {
                        double acc = b ? b[o] : 0;
                        int grp = o / Og;
                        for (int ci = 0; ci < Cg; ci++)
                            for (int u = 0; u < r.k[0]; u++)
                                for (int v = 0; v < r.k[1]; v++)
                                    for (int t = 0; t < r.k[2]; t++) {
                                        int i0 = conv_index(p, &r, 0, a, u);
                                        int i1 = conv_index(p, &r, 1, bb, v);
                                        int i2 = conv_index(p, &r, 2, c3, t);
                                        if (i0 < 0 || i1 < 0 || i2 < 0)
                                            continue;
                                        size_t xc = (size_t)i * p->C + grp * Cg + ci;
                                        acc += x[xc * P + idx3(r.n, i0, i1, i2)] *
                                               w[((size_t)o * Cg + ci) * K + idx3(r.k, u, v, t)];
                                    }
                        y[((size_t)i * p->O + o) * L + idx3(r.out, a, bb, c3)] = (float)acc;
                    }
}

/* Transposed convolution by scattering: each input value adds w times itself to the
 * output positions its kernel covers. */
static void ref_conv_transpose(const problem *p, const float *x, const float *w, const float *b,
                               float *y)
{
    geom3 r = resolve(p);
    int Cg = p->C / p->G, Og = p->O / p->G;
    size_t K = prod3(r.k), L = prod3(r.out), P = prod3(r.n);
    double *acc = calloc((size_t)p->N * p->O * L, sizeof *acc);
    for (int i = 0; i < p->N; i++)
        for (int c = 0; c < p->C; c++)
            for (int a = 0; a < r.n[0]; a++)
                for (int bb = 0; bb < r.n[1]; bb++)
                    for (int c3 = 0; c3 < r.n[2]; c3++) {
                        float xv = x[((size_t)i * p->C + c) * P + idx3(r.n, a, bb, c3)];
                        for (int oi = 0; oi < Og; oi++)
                            for (int u = 0; u < r.k[0]; u++)
                                for (int v = 0; v < r.k[1]; v++)
                                    for (int t = 0; t < r.k[2]; t++) {
                                        int y0 = a * r.s[0] - r.pb[0] + tap(p, &r, 0, u) * r.d[0];
                                        int y1 = bb * r.s[1] - r.pb[1] + tap(p, &r, 1, v) * r.d[1];
                                        int y2 = c3 * r.s[2] - r.pb[2] + tap(p, &r, 2, t) * r.d[2];
                                        if (y0 < 0 || y1 < 0 || y2 < 0 || y0 >= r.out[0] ||
                                            y1 >= r.out[1] || y2 >= r.out[2])
                                            continue;
                                        int o = (c / Cg) * Og + oi;
                                        acc[((size_t)i * p->O + o) * L + idx3(r.out, y0, y1, y2)] +=
                                            xv * w[((size_t)c * Og + oi) * K + idx3(r.k, u, v, t)];
                                    }
                    }
    for (size_t e = 0; e < (size_t)p->N * p->O * L; e++)
        y[e] = (float)(acc[e] + (b ? b[(e / L) % (size_t)p->O] : 0));
    free(acc);
}

/* Locally connected: the kernel of output position l is w[l, o, c, *k]. */
static void ref_local(const problem *p, const float *x, const float *w, const float *b, float *y)
{
    geom3 r = resolve(p);
    size_t K = prod3(r.k), L = prod3(r.out), P = prod3(r.n);
    for (int i = 0; i < p->N; i++)
        for (int o = 0; o < p->O; o++)
            for (size_t l = 0; l < L; l++) {
                int a = (int)(l / ((size_t)r.out[1] * r.out[2]));
                int bb = (int)(l / r.out[2] % r.out[1]), c3 = (int)(l % r.out[2]);
                double acc = !b ? 0 : p->bias == 2 ? b[(size_t)o * L + l] : b[o];
                for (int c = 0; c < p->C; c++)
                    for (int u = 0; u < r.k[0]; u++)
                        for (int v = 0; v < r.k[1]; v++)
                            for (int t = 0; t < r.k[2]; t++) {
                                int i0 = conv_index(p, &r, 0, a, u);
                                int i1 = conv_index(p, &r, 1, bb, v);
                                int i2 = conv_index(p, &r, 2, c3, t);
                                if (i0 < 0 || i1 < 0 || i2 < 0)
                                    continue;
                                acc += x[((size_t)i * p->C + c) * P + idx3(r.n, i0, i1, i2)] *
                                       w[((l * p->O + o) * p->C + c) * K + idx3(r.k, u, v, t)];
                            }
                y[((size_t)i * p->O + o) * L + l] = (float)acc;
            }
}

static void reference(const problem *p, const float *x, const float *w, const float *b, float *y)
{
    if (p->op == OP_CONV)
        ref_conv(p, x, w, b, y);
    else if (p->op == OP_TCONV)
        ref_conv_transpose(p, x, w, b, y);
    else
        ref_local(p, x, w, b, y);
}

/* ---- building a problem's graph ------------------------------------------------------------ */

typedef struct built {
    nerve_graph *g;
    int x, w, b, y;
} built;

static void weight_shape(const problem *p, int *ndim, int *dims)
{
    geom3 r = resolve(p);
    int lead;
    if (p->op == OP_CONV)
        dims[0] = p->O, dims[1] = p->C / p->G, lead = 2;
    else if (p->op == OP_TCONV)
        dims[0] = p->C, dims[1] = p->O / p->G, lead = 2;
    else
        dims[0] = (int)prod3(r.out), dims[1] = p->O, dims[2] = p->C, lead = 3;
    for (int d = 0; d < p->S; d++)
        dims[lead + d] = p->k[d];
    *ndim = lead + p->S;
}

static void bias_shape(const problem *p, int *ndim, int *dims)
{
    geom3 r = resolve(p);
    dims[0] = p->O;
    *ndim = 1;
    if (p->bias == 2) {
        for (int d = 0; d < p->S; d++)
            dims[1 + d] = r.out[3 - p->S + d];
        *ndim = 1 + p->S;
    }
}

static int add_op(const problem *p, built *m)
{
    if (p->op == OP_CONV)
        return nerve_conv(m->g, m->x, m->w, m->b, &p->cfg);
    if (p->op == OP_TCONV)
        return nerve_conv_transpose(m->g, m->x, m->w, m->b, &p->cfg, p->outpad);
    return nerve_local(m->g, m->x, m->w, m->b, &p->cfg);
}

/* Builds (not compiled) the problem's graph; returns the output node or a negative status. */
static int build(const problem *p, built *m)
{
    int xd[5] = {p->N, p->C}, wd[6], bd[4], wn, bn;
    for (int d = 0; d < p->S; d++)
        xd[2 + d] = p->n[d];
    weight_shape(p, &wn, wd);
    bias_shape(p, &bn, bd);
    m->g = nerve_graph_create();
    m->x = nerve_input(m->g, "x", p->S + 2, xd);
    m->w = nerve_param(m->g, "w", wn, wd);
    m->b = p->bias ? nerve_param(m->g, "b", bn, bd) : -1;
    m->y = add_op(p, m);
    return m->y;
}

static void fill_uniform(nerve_graph *g, int node, nerve_rng *r)
{
    if (node < 0)
        return;
    nerve_tensor t = nerve_value(g, node);
    for (size_t i = 0; i < nerve_tensor_numel(&t); i++)
        t.data[i] = nerve_rng_uniform(r) * 2 - 1;
}

/* Builds, compiles, fills randomly, runs and compares with the reference. Returns the
 * number of mismatches (0 when all agree); describes the first one in msg. */
static int check_against_reference(const problem *p, nerve_rng *r, char *msg, size_t cap)
{
    built m;
    if (build(p, &m) < 0) {
        snprintf(msg, cap, "build failed: %s", nerve_last_error());
        nerve_graph_free(m.g);
        return 1;
    }
    if (nerve_graph_compile(m.g, p->N) < 0) {
        snprintf(msg, cap, "compile failed: %s", nerve_last_error());
        nerve_graph_free(m.g);
        return 1;
    }
    fill_uniform(m.g, m.x, r);
    fill_uniform(m.g, m.w, r);
    fill_uniform(m.g, m.b, r);
    nerve_forward(m.g, m.y);
    geom3 gr = resolve(p);
    nerve_tensor y = nerve_value(m.g, m.y);
    int bad = y.ndim != p->S + 2 || y.dims[0] != p->N || y.dims[1] != p->O;
    for (int d = 0; !bad && d < p->S; d++)
        bad = y.dims[2 + d] != gr.out[3 - p->S + d];
    if (bad) {
        char s[64];
        snprintf(msg, cap, "output shape %s", nerve_shape_str(y.ndim, y.dims, s, sizeof s));
        nerve_graph_free(m.g);
        return 1;
    }
    size_t numel = nerve_tensor_numel(&y);
    float *want = malloc(numel * sizeof *want);
    reference(p, nerve_value(m.g, m.x).data, nerve_value(m.g, m.w).data,
              p->bias ? nerve_value(m.g, m.b).data : NULL, want);
    int mismatches = 0;
    for (size_t i = 0; i < numel; i++)
        if (!(fabsf(y.data[i] - want[i]) <= 1e-4f * (1 + fabsf(want[i])))) {
            if (!mismatches++)
                snprintf(msg, cap, "element %zu: got %g, want %g", i, y.data[i], want[i]);
        }
    free(want);
    nerve_graph_free(m.g);
    return mismatches;
}

static void describe(const problem *p, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "op %d S=%d N=%d C=%d O=%d G=%d same=%d flip=%d bias=%d:", p->op,
                       p->S, p->N, p->C, p->O, p->G, p->cfg.same, p->cfg.flip, p->bias);
    for (int d = 0; d < p->S && len > 0 && (size_t)len < cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, " [n%d k%d s%d d%d p%d/%d op%d]", p->n[d],
                        p->k[d], p->cfg.stride[d], p->cfg.dilation[d], p->cfg.pad_begin[d],
                        p->cfg.pad_end[d], p->outpad[d]);
}

static problem make_problem(op_kind op, int S, int N, int C, int O, int G, const int *n,
                            const int *k)
{
    problem p;
    memset(&p, 0, sizeof p);
    p.op = op, p.S = S, p.N = N, p.C = C, p.O = O, p.G = G;
    p.cfg = nerve_conv_default();
    p.cfg.groups = G;
    for (int d = 0; d < S; d++)
        p.n[d] = n[d], p.k[d] = k[d];
    return p;
}

static void set_dims(int *a, int S, int v0, int v1, int v2)
{
    int v[3] = {v0, v1, v2};
    for (int d = 0; d < S; d++)
        a[d] = v[d];
}

/* A random valid problem of the given kind (small sizes). */
static problem random_problem(op_kind op, nerve_rng *r)
{
    int S = 1 + (int)nerve_rng_below(r, 3);
    int G = op == OP_LOCAL ? 1 : 1 + (int)nerve_rng_below(r, 3);
    int C = G * (1 + (int)nerve_rng_below(r, 2)), O = G * (1 + (int)nerve_rng_below(r, 3));
    problem p = make_problem(op, S, 1 + (int)nerve_rng_below(r, 2), C, O, G, (int[]){1, 1, 1},
                             (int[]){1, 1, 1});
    p.cfg.same = nerve_rng_below(r, 4) == 0;
    p.cfg.flip = (int)nerve_rng_below(r, 2);
    p.bias = (int)nerve_rng_below(r, op == OP_LOCAL ? 3 : 2);
    int small = S == 3; /* keep 3-D problems small */
    for (int d = 0; d < S; d++) {
        int k = 1 + (int)nerve_rng_below(r, small ? 2 : 3), s = 1 + (int)nerve_rng_below(r, 2);
        int dil = 1 + (int)nerve_rng_below(r, 2);
        int pb = (int)nerve_rng_below(r, 2), pe = (int)nerve_rng_below(r, 3);
        int e = dil * (k - 1) + 1, base = e - pb - pe;
        p.k[d] = k;
        p.cfg.stride[d] = s, p.cfg.dilation[d] = dil;
        p.cfg.pad_begin[d] = pb, p.cfg.pad_end[d] = pe;
        if (op == OP_TCONV) {
            int m = s > dil ? s : dil;
            p.outpad[d] = (int)nerve_rng_below(r, (uint32_t)m);
            p.n[d] = 1 + (int)nerve_rng_below(r, small ? 2 : 4);
            /* the output must keep at least one position */
            while ((p.n[d] - 1) * s - pb - pe + e + p.outpad[d] < 1)
                p.n[d]++;
        } else {
            p.n[d] = (base > 1 ? base : 1) + (int)nerve_rng_below(r, small ? 3 : 5);
        }
    }
    return p;
}

static void check_random_problems(op_kind op, int count, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    for (int t = 0; t < count; t++) {
        problem p = random_problem(op, &r);
        char msg[256], what[512];
        if (check_against_reference(&p, &r, msg, sizeof msg)) {
            describe(&p, what, sizeof what);
            test_fail(__FILE__, __LINE__, "trial %d %s: %s", t, what, msg);
            return;
        }
    }
}

/* Named settings first (each a feature the issue lists), then random ones. */
TEST(conv_matches_plain_loops_for_named_settings)
{
    problem ps[16];
    int np = 0;
    /* 1-D, stride 2, asymmetric padding, bias */
    ps[np] = make_problem(OP_CONV, 1, 2, 3, 4, 1, (int[]){11}, (int[]){3});
    ps[np].cfg.stride[0] = 2, ps[np].cfg.pad_begin[0] = 1, ps[np].bias = 1, np++;
    /* 1-D dilation 3, flip */
    ps[np] = make_problem(OP_CONV, 1, 1, 2, 2, 1, (int[]){12}, (int[]){3});
    ps[np].cfg.dilation[0] = 3, ps[np].cfg.flip = 1, np++;
    /* 2-D: per-dim stride, asymmetric padding, dilation, groups 2, bias */
    ps[np] = make_problem(OP_CONV, 2, 2, 4, 6, 2, (int[]){7, 6}, (int[]){3, 2});
    set_dims(ps[np].cfg.stride, 2, 2, 1, 0), set_dims(ps[np].cfg.pad_begin, 2, 1, 0, 0);
    set_dims(ps[np].cfg.pad_end, 2, 0, 2, 0), set_dims(ps[np].cfg.dilation, 2, 1, 2, 0);
    ps[np].bias = 1, np++;
    /* depthwise, same */
    ps[np] = make_problem(OP_CONV, 2, 2, 4, 4, 4, (int[]){6, 5}, (int[]){3, 3});
    ps[np].cfg.same = 1, ps[np].bias = 1, np++;
    /* depthwise with channel multiplier 2 */
    ps[np] = make_problem(OP_CONV, 2, 1, 3, 6, 3, (int[]){5, 5}, (int[]){3, 3});
    ps[np].cfg.stride[0] = ps[np].cfg.stride[1] = 2, np++;
    /* same with an even kernel, and with stride 2 */
    ps[np] = make_problem(OP_CONV, 2, 1, 2, 3, 1, (int[]){6, 7}, (int[]){4, 2});
    ps[np].cfg.same = 1, np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 2, 3, 1, (int[]){7, 8}, (int[]){3, 4});
    ps[np].cfg.same = 1, set_dims(ps[np].cfg.stride, 2, 2, 3, 0), np++;
    /* 1x1 direct path, with bias and with groups */
    ps[np] = make_problem(OP_CONV, 2, 3, 5, 7, 1, (int[]){4, 6}, (int[]){1, 1});
    ps[np].bias = 1, np++;
    ps[np] = make_problem(OP_CONV, 2, 2, 4, 6, 2, (int[]){3, 5}, (int[]){1, 1});
    np++;
    /* 1x1 with stride 2 and padding (not direct) */
    ps[np] = make_problem(OP_CONV, 2, 1, 3, 2, 1, (int[]){5, 4}, (int[]){1, 1});
    set_dims(ps[np].cfg.stride, 2, 2, 2, 0), ps[np].cfg.pad_end[1] = 1, np++;
    /* 3-D: stride, padding, dilation, flip, bias */
    ps[np] = make_problem(OP_CONV, 3, 1, 2, 3, 1, (int[]){5, 4, 6}, (int[]){2, 3, 2});
    set_dims(ps[np].cfg.stride, 3, 1, 2, 1), set_dims(ps[np].cfg.pad_begin, 3, 1, 0, 1);
    set_dims(ps[np].cfg.dilation, 3, 1, 1, 2), ps[np].cfg.flip = 1, ps[np].bias = 1, np++;
    /* 3-D depthwise same */
    ps[np] = make_problem(OP_CONV, 3, 2, 2, 2, 2, (int[]){3, 4, 5}, (int[]){3, 3, 3});
    ps[np].cfg.same = 1, np++;
    /* kernel as large as the padded input: one output */
    ps[np] = make_problem(OP_CONV, 2, 1, 1, 2, 1, (int[]){3, 3}, (int[]){5, 4});
    set_dims(ps[np].cfg.pad_begin, 2, 1, 1, 0), set_dims(ps[np].cfg.pad_end, 2, 1, 0, 0), np++;
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    for (int i = 0; i < np; i++) {
        char msg[256], what[512];
        if (check_against_reference(&ps[i], &r, msg, sizeof msg)) {
            describe(&ps[i], what, sizeof what);
            CHECK_MSG(0, "setting %d %s: %s", i, what, msg);
        }
    }
}

TEST(conv_matches_plain_loops_for_random_settings) { check_random_problems(OP_CONV, 60, 11); }

TEST(conv_transpose_matches_scatter_reference)
{
    problem ps[6];
    int np = 0;
    /* stride 2 with output padding, groups, bias */
    ps[np] = make_problem(OP_TCONV, 2, 2, 4, 6, 2, (int[]){3, 4}, (int[]){3, 3});
    set_dims(ps[np].cfg.stride, 2, 2, 2, 0), set_dims(ps[np].outpad, 2, 1, 0, 0), ps[np].bias = 1;
    set_dims(ps[np].cfg.pad_begin, 2, 1, 0, 0), set_dims(ps[np].cfg.pad_end, 2, 0, 1, 0), np++;
    /* same (output n*s), even kernel */
    ps[np] = make_problem(OP_TCONV, 2, 1, 2, 3, 1, (int[]){3, 4}, (int[]){4, 2});
    ps[np].cfg.same = 1, set_dims(ps[np].cfg.stride, 2, 2, 3, 0), np++;
    /* 1-D dilation, flip */
    ps[np] = make_problem(OP_TCONV, 1, 2, 3, 2, 1, (int[]){5}, (int[]){3});
    ps[np].cfg.dilation[0] = 2, ps[np].cfg.flip = 1, ps[np].bias = 1, np++;
    /* 1x1 direct */
    ps[np] = make_problem(OP_TCONV, 2, 2, 5, 3, 1, (int[]){3, 3}, (int[]){1, 1});
    ps[np].bias = 1, np++;
    /* 3-D depthwise */
    ps[np] = make_problem(OP_TCONV, 3, 1, 2, 2, 2, (int[]){2, 3, 2}, (int[]){2, 2, 3});
    set_dims(ps[np].cfg.stride, 3, 2, 1, 2), np++;
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    for (int i = 0; i < np; i++) {
        char msg[256], what[512];
        if (check_against_reference(&ps[i], &r, msg, sizeof msg)) {
            describe(&ps[i], what, sizeof what);
            CHECK_MSG(0, "setting %d %s: %s", i, what, msg);
        }
    }
    check_random_problems(OP_TCONV, 40, 12);
}

TEST(local_matches_plain_loops)
{
    problem p = make_problem(OP_LOCAL, 2, 2, 3, 4, 1, (int[]){5, 6}, (int[]){3, 2});
    p.cfg.stride[1] = 2, p.cfg.pad_begin[0] = 1, p.bias = 2;
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    char msg[256];
    CHECK_MSG(check_against_reference(&p, &r, msg, sizeof msg) == 0, "local 2-D: %s", msg);
    p.bias = 1, p.cfg.flip = 1, p.cfg.dilation[0] = 2;
    CHECK_MSG(check_against_reference(&p, &r, msg, sizeof msg) == 0, "local flip: %s", msg);
    check_random_problems(OP_LOCAL, 30, 13);
}

/* ---- gradients ------------------------------------------------------------------------------ */

/* loss = sum(y * r) with a fixed random r: every gradient is exercised, and the loss is
 * linear in each variable so central differences are exact up to rounding. */
static int gradcheck_problem(const problem *p, uint64_t seed)
{
    built m;
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    int st = build(p, &m);
    int rn = 0, rd[NERVE_MAX_DIMS], loss = -1;
    if (st >= 0)
        st = nerve_node_shape(m.g, m.y, &rn, rd);
    int weights = st >= 0 ? nerve_state(m.g, "r", rn, rd) : st;
    if (weights >= 0)
        loss = nerve_sum(m.g, nerve_mul(m.g, m.y, weights), NERVE_AXIS_ALL, 0);
    st = loss;
    if (st >= 0)
        st = nerve_input_set_requires_grad(m.g, m.x, 1);
    if (st >= 0)
        st = nerve_graph_compile(m.g, p->N);
    if (st >= 0) {
        fill_uniform(m.g, m.x, &r);
        fill_uniform(m.g, m.w, &r);
        fill_uniform(m.g, m.b, &r);
        fill_uniform(m.g, weights, &r);
        st = nerve_gradcheck(m.g, loss, 1e-2f, 1e-3f, 1e-2f);
    }
    nerve_graph_free(m.g);
    return st;
}

TEST(conv_gradients_pass_finite_differences)
{
    problem p = make_problem(OP_CONV, 2, 2, 4, 4, 2, (int[]){7, 6}, (int[]){3, 2});
    set_dims(p.cfg.stride, 2, 2, 1, 0), set_dims(p.cfg.dilation, 2, 1, 2, 0);
    set_dims(p.cfg.pad_begin, 2, 1, 0, 0), set_dims(p.cfg.pad_end, 2, 0, 2, 0), p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 1)); /* groups, dilation, stride 2, asymmetric padding */
    p = make_problem(OP_CONV, 2, 2, 3, 4, 1, (int[]){3, 4}, (int[]){1, 1});
    p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 2)); /* 1x1 direct path */
    p = make_problem(OP_CONV, 3, 1, 2, 2, 1, (int[]){3, 4, 3}, (int[]){2, 2, 2});
    set_dims(p.cfg.stride, 3, 1, 2, 1), p.cfg.pad_end[2] = 1, p.cfg.flip = 1, p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 3)); /* 3-D */
    p = make_problem(OP_CONV, 2, 2, 3, 3, 3, (int[]){5, 4}, (int[]){3, 3});
    p.cfg.same = 1;
    CHECK_OK(gradcheck_problem(&p, 4)); /* depthwise, same */
    p = make_problem(OP_CONV, 1, 2, 2, 3, 1, (int[]){9}, (int[]){4});
    p.cfg.same = 1, p.cfg.stride[0] = 2, p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 5)); /* 1-D, even kernel, same, stride 2 */
}

TEST(conv_transpose_and_local_gradients_pass_finite_differences)
{
    problem p = make_problem(OP_TCONV, 2, 2, 4, 2, 2, (int[]){3, 3}, (int[]){3, 2});
    set_dims(p.cfg.stride, 2, 2, 2, 0), set_dims(p.outpad, 2, 1, 0, 0), p.cfg.pad_begin[1] = 1;
    p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 6));
    p = make_problem(OP_TCONV, 1, 2, 2, 3, 1, (int[]){4}, (int[]){3});
    p.cfg.dilation[0] = 2, p.cfg.flip = 1;
    CHECK_OK(gradcheck_problem(&p, 7));
    p = make_problem(OP_TCONV, 2, 1, 3, 2, 1, (int[]){3, 2}, (int[]){1, 1});
    p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 8)); /* direct */
    p = make_problem(OP_LOCAL, 2, 2, 2, 3, 1, (int[]){4, 5}, (int[]){2, 3});
    p.cfg.pad_begin[1] = p.cfg.pad_end[1] = 1, p.cfg.stride[0] = 2, p.bias = 2;
    CHECK_OK(gradcheck_problem(&p, 9));
    p = make_problem(OP_LOCAL, 1, 2, 2, 2, 1, (int[]){6}, (int[]){3});
    p.cfg.same = 1, p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 10));
}

/* ---- batch size and allocation --------------------------------------------------------------- */

/* A conv -> conv_transpose -> local chain with loss sum(out * r), compiled for max_batch. */
typedef struct chain {
    nerve_graph *g;
    int x, loss, params[6];
} chain;

static int make_chain(chain *c, int max_batch)
{
    nerve_graph *g = c->g = nerve_graph_create();
    nerve_conv_config s2 = nerve_conv_default();
    s2.stride[0] = s2.stride[1] = 2;
    s2.pad_begin[0] = s2.pad_begin[1] = s2.pad_end[0] = s2.pad_end[1] = 1;
    c->x = nerve_input(g, "x", 4, (int[]){1, 2, 6, 6});
    c->params[0] = nerve_param(g, "w1", 4, (int[]){4, 2, 3, 3});
    c->params[1] = nerve_param(g, "b1", 1, (int[]){4});
    int h = nerve_conv(g, c->x, c->params[0], c->params[1], &s2); /* [N, 4, 3, 3] */
    c->params[2] = nerve_param(g, "w2", 4, (int[]){4, 1, 2, 2});
    c->params[3] = nerve_param(g, "b2", 1, (int[]){2});
    nerve_conv_config tg = nerve_conv_default();
    tg.groups = 2;
    tg.stride[0] = tg.stride[1] = 2;
    int t = nerve_conv_transpose(g, h, c->params[2], c->params[3], &tg, NULL); /* [N, 2, 6, 6] */
    c->params[4] = nerve_param(g, "w3", 5, (int[]){16, 3, 2, 3, 3});
    c->params[5] = nerve_param(g, "b3", 3, (int[]){3, 4, 4});
    int y = nerve_local(g, t, c->params[4], c->params[5], NULL); /* [N, 3, 4, 4] */
    int r = nerve_state(g, "r", 4, (int[]){1, 3, 4, 4}); /* broadcast over the batch */
    int yr = nerve_mul(g, y, r);
    c->loss = nerve_sum(g, yr, NERVE_AXIS_ALL, 0);
    if (c->loss < 0)
        return c->loss;
    int st = nerve_graph_compile(g, max_batch);
    if (st < 0)
        return st;
    nerve_rng rng;
    nerve_rng_seed(&rng, 21);
    for (int i = 0; i < 6; i++)
        fill_uniform(g, c->params[i], &rng);
    fill_uniform(g, r, &rng);
    nerve_tensor xt = nerve_value(g, c->x);
    for (size_t i = 0; i < nerve_tensor_numel(&xt); i++)
        xt.data[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    return NERVE_OK;
}

static int step(chain *c)
{
    int st = nerve_forward(c->g, c->loss);
    return st < 0 ? st : nerve_backward(c->g, c->loss);
}

TEST(conv_family_follows_batch_changes_and_steps_allocate_nothing)
{
    chain big, small;
    CHECK_OK(make_chain(&big, 4));
    CHECK_OK(step(&big));
    uint64_t before = nerve_alloc_count();
    CHECK_OK(step(&big));
    CHECK_OK(nerve_graph_set_batch(big.g, 2));
    CHECK_OK(step(&big));
    CHECK_MSG(nerve_alloc_count() == before, "%llu allocations in steps after the first",
              (unsigned long long)(nerve_alloc_count() - before));
    /* The same two images in a graph compiled for batch 2 give the same loss and gradients. */
    CHECK_OK(make_chain(&small, 2));
    CHECK_OK(step(&small));
    CHECK_NEAR(nerve_value(big.g, big.loss).data[0], nerve_value(small.g, small.loss).data[0],
               1e-4);
    for (int i = 0; i < 6; i++) {
        nerve_tensor a = nerve_grad(big.g, big.params[i]), b = nerve_grad(small.g, small.params[i]);
        CHECK_ARRAY_NEAR(a.data, b.data, nerve_tensor_numel(&a), 1e-4);
    }
    nerve_graph_free(big.g);
    nerve_graph_free(small.g);
}

TEST(conv_1x1_stride_1_skips_im2col)
{
    /* The direct path needs no column buffer: on one thread the node's scratch is empty;
     * on two, each thread's slice holds only its partial weight gradient (4 x 3). */
    problem p = make_problem(OP_CONV, 2, 2, 3, 4, 1, (int[]){5, 5}, (int[]){1, 1});
    for (int threads = 1; threads <= 2; threads++) {
        nerve_set_threads(threads);
        built m;
        CHECK_OK(build(&p, &m));
        CHECK_OK(nerve_graph_compile(m.g, 2));
        CHECK(m.g->nodes[m.y].scratch_n == (threads == 1 ? 0 : 2 * 4 * 3));
        nerve_graph_free(m.g);
    }
    p.cfg.stride[1] = 2; /* strided 1x1 convolutions gather their columns */
    for (int threads = 1; threads <= 2; threads++) {
        nerve_set_threads(threads);
        built m;
        CHECK_OK(build(&p, &m));
        CHECK_OK(nerve_graph_compile(m.g, 2));
        CHECK(m.g->nodes[m.y].scratch_n == (threads == 1 ? 3 * 5 * 3 : 2 * (3 * 5 * 3 + 4 * 3)));
        nerve_graph_free(m.g);
    }
    nerve_set_threads(0);
}

/* <col2im(c), x> == <c, im2col(x)> for random geometries: the scatter is the adjoint. */
TEST(im2col_and_col2im_are_adjoint)
{
    nerve_rng r;
    nerve_rng_seed(&r, 17);
    for (int t = 0; t < 20; t++) {
        kern_conv_shape s = {.channels = 1 + (int)nerve_rng_below(&r, 3), .flip = t & 1};
        for (int d = 0; d < 3; d++) {
            s.kernel[d] = 1 + (int)nerve_rng_below(&r, 3);
            s.stride[d] = 1 + (int)nerve_rng_below(&r, 2);
            s.dilation[d] = 1 + (int)nerve_rng_below(&r, 2);
            s.pad[d] = (int)nerve_rng_below(&r, 2);
            s.image[d] = 1 + (int)nerve_rng_below(&r, 5);
            s.out[d] = 1 + (int)nerve_rng_below(&r, 4);
        }
        size_t ni = (size_t)s.channels * s.image[0] * s.image[1] * s.image[2];
        size_t nc = kern_conv_rows(&s) * kern_conv_cols(&s);
        float *x = malloc(ni * sizeof *x), *c = malloc(nc * sizeof *c);
        float *cx = malloc(nc * sizeof *cx), *xc = calloc(ni, sizeof *xc);
        for (size_t i = 0; i < ni; i++)
            x[i] = nerve_rng_uniform(&r) - 0.5f;
        for (size_t i = 0; i < nc; i++)
            c[i] = nerve_rng_uniform(&r) - 0.5f;
        int row_major = t % 4 >= 2;
        (row_major ? kern_im2row : kern_im2col)(&s, x, cx);
        (row_major ? kern_row2im : kern_col2im)(&s, c, xc);
        double a = 0, b = 0;
        for (size_t i = 0; i < nc; i++)
            a += (double)c[i] * cx[i];
        for (size_t i = 0; i < ni; i++)
            b += (double)x[i] * xc[i];
        free(x), free(c), free(cx), free(xc);
        CHECK_MSG(fabs(a - b) <= 1e-5 * (1 + fabs(a)), "trial %d: %.9g vs %.9g", t, a, b);
    }
}

/* Runs the problem forward and backward on `threads` threads; out[k] gets copies of the
 * value, dx and dw (freed by the caller). */
static void run_on_threads(const problem *p, int threads, float *out[3], size_t n[3])
{
    nerve_set_threads(threads);
    built m;
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    CHECK_OK(build(p, &m));
    int loss = nerve_sum(m.g, m.y, NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_input_set_requires_grad(m.g, m.x, 1));
    CHECK_OK(nerve_graph_compile(m.g, p->N));
    fill_uniform(m.g, m.x, &r);
    fill_uniform(m.g, m.w, &r);
    fill_uniform(m.g, m.b, &r);
    CHECK_OK(nerve_forward(m.g, loss));
    CHECK_OK(nerve_backward(m.g, loss));
    nerve_tensor t[3] = {nerve_value(m.g, m.y), nerve_grad(m.g, m.x), nerve_grad(m.g, m.w)};
    for (int k = 0; k < 3; k++) {
        n[k] = nerve_tensor_numel(&t[k]);
        out[k] = malloc(n[k] * sizeof(float));
        memcpy(out[k], t[k].data, n[k] * sizeof(float));
    }
    nerve_graph_free(m.g);
    nerve_set_threads(0);
}

TEST(conv_results_are_reproducible_at_each_thread_count)
{
    /* One image's products are below kern_sgemm's threading size, so with two threads the
     * images of the batch are split across them. The value and dx do not depend on the
     * thread count; dw sums per-thread partials, so it is bit-identical run to run at a
     * given thread count and equal within rounding across thread counts. */
    for (int op = 0; op < 2; op++) {
        problem p = make_problem(op ? OP_TCONV : OP_CONV, 2, 3, 32, 8, 1, (int[]){24, 24},
                                 (int[]){3, 3});
        p.cfg.pad_begin[0] = p.cfg.pad_begin[1] = p.cfg.pad_end[0] = p.cfg.pad_end[1] = 1;
        p.bias = 1;
        float *one[3], *two[3], *again[3];
        size_t n[3];
        run_on_threads(&p, 1, one, n);
        run_on_threads(&p, 2, two, n);
        run_on_threads(&p, 2, again, n);
        for (int k = 0; k < 3; k++) {
            size_t bytes = n[k] * sizeof(float);
            CHECK_MSG(memcmp(two[k], again[k], bytes) == 0, "op %d result %d not reproducible",
                      op, k);
            if (k < 2)
                CHECK_MSG(memcmp(one[k], two[k], bytes) == 0, "op %d result %d depends on the "
                          "thread count", op, k);
            else
                CHECK_ARRAY_NEAR(one[k], two[k], n[k], 1e-3);
            free(one[k]), free(two[k]), free(again[k]);
        }
    }
}

/* ---- thread routes and Winograd --------------------------------------------------------- */

/* dx and dW of loss = sum(y * r) for a 2-D, undilated, one-group conv with strides s_h, s_w,
 * by plain loops (r is one image's worth, broadcast over the batch); with h = oh * s_h + i -
 * pad_h and w = ow * s_w + j - pad_w inside the image:
 *   dx[n, c, h, w] += W[k, c, i, j] r[k, oh, ow]      for every k, i, j, oh, ow
 *   dW[k, c, i, j] += r[k, oh, ow] x[n, c, h, w]       for every n, oh, ow */
static void ref_conv_grads(const problem *p, const float *x, const float *w, const float *r,
                           float *dx, float *dw)
{
    geom3 gr = resolve(p);
    int H = p->n[0], W = p->n[1], OH = gr.out[1], OW = gr.out[2], kh = p->k[0], kw = p->k[1];
    size_t nx = (size_t)p->N * p->C * H * W, nw = (size_t)p->O * p->C * kh * kw;
    memset(dx, 0, nx * sizeof *dx);
    memset(dw, 0, nw * sizeof *dw);
    for (int n = 0; n < p->N; n++)
        for (int k = 0; k < p->O; k++)
            for (int c = 0; c < p->C; c++)
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        for (int oh = 0; oh < OH; oh++)
                            for (int ow = 0; ow < OW; ow++) {
                                int h = oh * gr.s[1] + i - gr.pb[1];
                                int v = ow * gr.s[2] + j - gr.pb[2];
                                if (h < 0 || h >= H || v < 0 || v >= W)
                                    continue;
                                size_t xi = (((size_t)n * p->C + c) * H + h) * W + v;
                                size_t wi = (((size_t)k * p->C + c) * kh + i) * kw + j;
                                float g = r[((size_t)k * OH + oh) * OW + ow];
                                dx[xi] += w[wi] * g;
                                dw[wi] += x[xi] * g;
                            }
}

/* Runs forward and backward of loss = sum(y * r) on the current thread setting and checks
 * dx and dW against ref_conv_grads. */
static void check_grads_against_loops(const problem *p, uint64_t seed)
{
    built m;
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    CHECK_OK(build(p, &m));
    int rn = 0, rd[NERVE_MAX_DIMS];
    CHECK_OK(nerve_node_shape(m.g, m.y, &rn, rd));
    int rs = nerve_state(m.g, "r", rn, rd);
    int loss = nerve_sum(m.g, nerve_mul(m.g, m.y, rs), NERVE_AXIS_ALL, 0);
    CHECK_OK(nerve_input_set_requires_grad(m.g, m.x, 1));
    CHECK_OK(nerve_graph_compile(m.g, p->N));
    fill_uniform(m.g, m.x, &r), fill_uniform(m.g, m.w, &r), fill_uniform(m.g, m.b, &r);
    fill_uniform(m.g, rs, &r);
    CHECK_OK(nerve_forward(m.g, loss));
    CHECK_OK(nerve_backward(m.g, loss));
    nerve_tensor dx = nerve_grad(m.g, m.x), dw = nerve_grad(m.g, m.w), rt = nerve_value(m.g, rs);
    geom3 gr = resolve(p);
    CHECK(nerve_tensor_numel(&rt) == (size_t)p->O * gr.out[1] * gr.out[2]);
    size_t nx = nerve_tensor_numel(&dx), nw = nerve_tensor_numel(&dw);
    float *want_dx = malloc(nx * sizeof(float)), *want_dw = malloc(nw * sizeof(float));
    ref_conv_grads(p, nerve_value(m.g, m.x).data, nerve_value(m.g, m.w).data, rt.data, want_dx,
                   want_dw);
    CHECK_ARRAY_NEAR(dx.data, want_dx, nx, 1e-4);
    CHECK_ARRAY_NEAR(dw.data, want_dw, nw, 1e-3);
    free(want_dx), free(want_dw);
    nerve_graph_free(m.g);
}

/* Batches smaller than the thread count split each image's work instead of the images:
 * the forward by output channels (or by column blocks when an image has several), the
 * input gradient by input channels. Each problem below takes one of those routes at two
 * threads; all must match the plain loops and finite differences there, reproduce bit for
 * bit run to run, and agree with one thread within rounding. */
static int small_batch_problems(problem *ps)
{
    int np = 0;
    /* one block per image: forward split by output channels, adjoint by input channels */
    ps[np] = make_problem(OP_CONV, 2, 1, 8, 6, 1, (int[]){10, 10}, (int[]){3, 3});
    set_dims(ps[np].cfg.pad_begin, 2, 1, 1, 0), set_dims(ps[np].cfg.pad_end, 2, 1, 1, 0);
    ps[np].bias = 1, np++;
    /* several column blocks per image (units across threads), asymmetric padding */
    ps[np] = make_problem(OP_CONV, 2, 1, 16, 5, 1, (int[]){40, 37}, (int[]){3, 3});
    set_dims(ps[np].cfg.pad_begin, 2, 1, 0, 0), set_dims(ps[np].cfg.pad_end, 2, 1, 2, 0), np++;
    /* 1x1 direct, groups, strided, 1-D and conv_transpose */
    ps[np] = make_problem(OP_CONV, 2, 1, 6, 5, 1, (int[]){9, 7}, (int[]){1, 1});
    ps[np].bias = 1, np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 4, 6, 2, (int[]){7, 8}, (int[]){3, 2});
    set_dims(ps[np].cfg.stride, 2, 2, 1, 0), np++;
    ps[np] = make_problem(OP_CONV, 1, 1, 3, 4, 1, (int[]){300}, (int[]){5});
    ps[np].cfg.same = 1, np++;
    ps[np] = make_problem(OP_TCONV, 2, 1, 6, 4, 1, (int[]){6, 5}, (int[]){3, 3});
    set_dims(ps[np].cfg.stride, 2, 2, 2, 0), ps[np].bias = 1, np++;
    return np;
}

TEST(conv_small_batch_routes_match_references_on_two_threads)
{
    problem ps[8];
    int np = small_batch_problems(ps);
    nerve_rng r;
    nerve_rng_seed(&r, 23);
    nerve_set_threads(2);
    for (int i = 0; i < np; i++) {
        char msg[256], what[512];
        describe(&ps[i], what, sizeof what);
        CHECK_MSG(check_against_reference(&ps[i], &r, msg, sizeof msg) == 0, "%s: %s", what,
                  msg);
        if (i == 1) { /* several blocks: too big for finite differences */
            check_grads_against_loops(&ps[i], 30);
            continue;
        }
        problem small = ps[i]; /* finite differences on a cheaper copy of the same route */
        if (small.S == 1)
            small.n[0] = 40;
        CHECK_MSG(gradcheck_problem(&small, 30 + (uint64_t)i) == NERVE_OK, "%s: %s", what,
                  nerve_last_error());
    }
    nerve_set_threads(0);
}

TEST(conv_small_batch_routes_are_reproducible)
{
    problem ps[8];
    int np = small_batch_problems(ps);
    for (int i = 0; i < np; i++) {
        float *one[3], *two[3], *again[3];
        size_t n[3];
        run_on_threads(&ps[i], 1, one, n);
        run_on_threads(&ps[i], 2, two, n);
        run_on_threads(&ps[i], 2, again, n);
        for (int k = 0; k < 3; k++) {
            CHECK_MSG(memcmp(two[k], again[k], n[k] * sizeof(float)) == 0,
                      "problem %d result %d not reproducible", i, k);
            CHECK_ARRAY_NEAR(one[k], two[k], n[k], 1e-4);
            free(one[k]), free(two[k]), free(again[k]);
        }
    }
}

/* 3x3 stride-1 convolutions with >= 16 channels run forward through Winograd; other
 * settings keep the column product. Both sides of each boundary match the plain loops.
 * (The backward is the engine's whatever the forward route; finite differences of a
 * Winograd forward are dominated by its rounding, so they are not checked here.) */
TEST(conv_winograd_route_matches_plain_loops)
{
    problem ps[8];
    int np = 0, wino[8];
    ps[np] = make_problem(OP_CONV, 2, 2, 16, 16, 1, (int[]){8, 8}, (int[]){3, 3});
    ps[np].cfg.same = 1, ps[np].bias = 1, wino[np++] = 1;
    ps[np] = make_problem(OP_CONV, 2, 1, 17, 24, 1, (int[]){9, 11}, (int[]){3, 3});
    wino[np++] = 1; /* no padding */
    ps[np] = make_problem(OP_CONV, 2, 3, 20, 16, 1, (int[]){13, 10}, (int[]){3, 3});
    ps[np].cfg.same = 1, wino[np++] = 1;
    ps[np] = ps[0], ps[np].cfg.flip = 1, wino[np++] = 0;
    ps[np] = ps[0], ps[np].cfg.stride[0] = 2, wino[np++] = 0;
    ps[np] = ps[0], ps[np].cfg.pad_end[1] = 2, ps[np].cfg.same = 0, wino[np++] = 0;
    ps[np] = make_problem(OP_CONV, 2, 2, 16, 15, 1, (int[]){8, 8}, (int[]){3, 3});
    wino[np++] = 0; /* too few output channels */
    nerve_rng r;
    nerve_rng_seed(&r, 29);
    for (int threads = 1; threads <= 2; threads++) {
        nerve_set_threads(threads);
        for (int i = 0; i < np; i++) {
            char msg[256], what[512];
            describe(&ps[i], what, sizeof what);
            CHECK_MSG(check_against_reference(&ps[i], &r, msg, sizeof msg) == 0,
                      "threads %d %s: %s", threads, what, msg);
            built m;
            CHECK_OK(build(&ps[i], &m));
            CHECK_OK(nerve_graph_compile(m.g, ps[i].N));
            geom3 gr = resolve(&ps[i]);
            size_t ws = kern_winograd_workspace(ps[i].N, ps[i].C, ps[i].n[0], ps[i].n[1],
                                                ps[i].O, gr.pb[1], gr.pb[2], threads);
            if (wino[i]) /* the scratch holds the route's workspace */
                CHECK_MSG(m.g->nodes[m.y].scratch_n >= ws, "%s: scratch %zu < %zu", what,
                          m.g->nodes[m.y].scratch_n, ws);
            nerve_graph_free(m.g);
        }
    }
    nerve_set_threads(0);
}

/* The gradients of Winograd-eligible convs (dx by Winograd, as a correlation of dy with
 * the flipped, transposed weights; dW by columns) against plain loops, for padding 0, 1
 * and 2, on one and two threads. */
TEST(conv_winograd_input_gradient_matches_plain_loops)
{
    int pads[3] = {1, 0, 2};
    for (int threads = 1; threads <= 2; threads++)
        for (int t = 0; t < 3; t++) {
            nerve_set_threads(threads);
            problem p = make_problem(OP_CONV, 2, 3, 16, 17, 1, (int[]){10, 9}, (int[]){3, 3});
            set_dims(p.cfg.pad_begin, 2, pads[t], pads[t], 0);
            set_dims(p.cfg.pad_end, 2, pads[t], pads[t], 0);
            p.bias = 1;
            check_grads_against_loops(&p, 51 + (uint64_t)t);
        }
    nerve_set_threads(0);
}

/* With a batch of at least the thread count, the Winograd input gradient splits the
 * images across threads, each working its share in chunks (4 images of 16 x 32 x 32 here:
 * 11 images make chunks of 4 + 2 and 4 + 1 on two threads, 4 + 4 + 3 on one). dx matches
 * the plain loops, is the same bit for bit on one and two threads (each image's arithmetic
 * does not depend on the chunking) and run to run. */
TEST(conv_winograd_input_gradient_split_across_threads_is_exact)
{
    problem p = make_problem(OP_CONV, 2, 11, 16, 16, 1, (int[]){32, 32}, (int[]){3, 3});
    set_dims(p.cfg.pad_begin, 2, 1, 1, 0);
    set_dims(p.cfg.pad_end, 2, 1, 1, 0);
    nerve_set_threads(2);
    check_grads_against_loops(&p, 61);
    float *one[3], *two[3], *again[3];
    size_t n[3];
    run_on_threads(&p, 1, one, n);
    run_on_threads(&p, 2, two, n);
    run_on_threads(&p, 2, again, n);
    for (int k = 0; k < 2; k++) { /* the value and dx */
        size_t bytes = n[k] * sizeof(float);
        CHECK_MSG(memcmp(two[k], again[k], bytes) == 0, "result %d not reproducible", k);
        CHECK_MSG(memcmp(one[k], two[k], bytes) == 0, "result %d depends on the threads", k);
    }
    for (int k = 0; k < 3; k++)
        free(one[k]), free(two[k]), free(again[k]);
    nerve_set_threads(0);
}

/* The weight gradient of stride-1, one-group convs with >= 8 input channels skips the
 * column matrix (a pixel-major copy of each image read in place, one product per kernel
 * row, over a padded width). Against plain loops: odd sizes, asymmetric and no padding,
 * non-square and 1x1 and 5x5 kernels, and on both sides of the route (stride 2, too few
 * channels), for batch 1 and 3 on one and two threads (a batch of one on two threads
 * keeps the column route, which splits one image's blocks). */
TEST(conv_weight_gradient_routes_match_plain_loops)
{
    problem ps[8];
    int np = 0;
    ps[np] = make_problem(OP_CONV, 2, 1, 16, 16, 1, (int[]){10, 9}, (int[]){3, 3});
    ps[np].cfg.same = 1, np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 8, 5, 1, (int[]){7, 12}, (int[]){3, 2});
    set_dims(ps[np].cfg.pad_begin, 2, 2, 0, 0), set_dims(ps[np].cfg.pad_end, 2, 0, 1, 0), np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 9, 13, 1, (int[]){6, 5}, (int[]){1, 1});
    np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 12, 7, 1, (int[]){11, 8}, (int[]){5, 5});
    set_dims(ps[np].cfg.pad_begin, 2, 2, 2, 0), set_dims(ps[np].cfg.pad_end, 2, 2, 2, 0), np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 10, 6, 1, (int[]){9, 8}, (int[]){3, 3});
    np++; /* no padding */
    ps[np] = make_problem(OP_CONV, 2, 1, 8, 6, 1, (int[]){9, 9}, (int[]){3, 3});
    set_dims(ps[np].cfg.stride, 2, 2, 2, 0), ps[np].cfg.same = 1, np++;
    ps[np] = make_problem(OP_CONV, 2, 1, 4, 6, 1, (int[]){9, 9}, (int[]){3, 3});
    ps[np].cfg.same = 1, np++;
    for (int threads = 1; threads <= 2; threads++)
        for (int batch = 1; batch <= 3; batch += 2)
            for (int i = 0; i < np; i++) {
                nerve_set_threads(threads);
                problem p = ps[i];
                p.N = batch;
                p.bias = i % 2;
                check_grads_against_loops(&p, 70 + (uint64_t)i);
            }
    nerve_set_threads(0);
}

/* The same route for 1-D convs, by finite differences. */
TEST(conv_weight_gradient_route_1d_passes_finite_differences)
{
    problem p = make_problem(OP_CONV, 1, 2, 8, 3, 1, (int[]){13}, (int[]){3});
    p.cfg.pad_begin[0] = 2;
    p.bias = 1;
    for (int threads = 1; threads <= 2; threads++) {
        nerve_set_threads(threads);
        CHECK_MSG(gradcheck_problem(&p, 90) == NERVE_OK, "%s", nerve_last_error());
    }
    nerve_set_threads(0);
}

/* ---- errors ------------------------------------------------------------------------------ */

static int conv_status(const int *xd, int wn, const int *wd, const nerve_conv_config *c,
                       op_kind op)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, xd);
    int w = nerve_param(g, "w", wn, wd);
    int y = op == OP_CONV    ? nerve_conv(g, x, w, -1, c)
            : op == OP_TCONV ? nerve_conv_transpose(g, x, w, -1, c, (int[]){2, 0, 0})
                             : nerve_local(g, x, w, -1, c);
    nerve_graph_free(g);
    return y;
}

#define CHECK_ERROR(expr, status, text)                                                      \
    do {                                                                                     \
        CHECK((expr) == (status));                                                           \
        CHECK_MSG(strstr(nerve_last_error(), text) != NULL, "message '%s' lacks '%s'",       \
                  nerve_last_error(), text);                                                 \
    } while (0)

TEST(conv_shape_errors_are_reported_clearly)
{
    nerve_conv_config c = nerve_conv_default();
    c.groups = 2;
    CHECK_ERROR(conv_status((int[]){1, 3, 5, 5}, 4, (int[]){4, 1, 3, 3}, &c, OP_CONV),
                NERVE_ERR_SHAPE, "3 input channels are not divisible by 2 groups");
    CHECK_ERROR(conv_status((int[]){1, 4, 5, 5}, 4, (int[]){3, 2, 3, 3}, &c, OP_CONV),
                NERVE_ERR_SHAPE, "3 output channels are not divisible by 2 groups");
    CHECK_ERROR(conv_status((int[]){1, 4, 5, 5}, 4, (int[]){4, 4, 3, 3}, &c, OP_CONV),
                NERVE_ERR_SHAPE, "per group");
    c = nerve_conv_default();
    c.pad_begin[1] = 1;
    CHECK_ERROR(conv_status((int[]){1, 1, 5, 5}, 4, (int[]){1, 1, 3, 7}, &c, OP_CONV),
                NERVE_ERR_SHAPE, "larger than the padded input 6 (5 + 1 + 0) along spatial dim 1");
    CHECK_ERROR(conv_status((int[]){1, 1, 5, 5}, 3, (int[]){1, 1, 3}, &c, OP_CONV),
                NERVE_ERR_SHAPE, "rank");
    c = nerve_conv_default();
    c.stride[0] = 0;
    CHECK_ERROR(conv_status((int[]){1, 1, 5, 5}, 4, (int[]){1, 1, 3, 3}, &c, OP_CONV),
                NERVE_ERR_ARG, "stride[0] is 0");
    c = nerve_conv_default();
    CHECK_ERROR(conv_status((int[]){1, 2, 3, 3}, 4, (int[]){2, 1, 3, 3}, &c, OP_TCONV),
                NERVE_ERR_ARG, "output_padding[0] is 2");
    CHECK_ERROR(conv_status((int[]){1, 2, 5, 5}, 5, (int[]){8, 4, 2, 3, 3}, &c, OP_LOCAL),
                NERVE_ERR_SHAPE, "weight has 8 positions but the output [3, 3] has 9");
    /* a wrong bias names the expected shape */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 2, 5, 5});
    int w = nerve_param(g, "w", 4, (int[]){3, 2, 3, 3});
    int b = nerve_param(g, "b", 1, (int[]){2});
    CHECK_ERROR(nerve_conv(g, x, w, b, NULL), NERVE_ERR_SHAPE, "bias must be [3]");
    CHECK(strstr(nerve_last_error(), "conv") != NULL);
    nerve_graph_free(g);
}

/* Stride-1 convs with few input channels take the direct routes on AVX-512: the forward
 * with output channels in the vector lanes (from 16 of them, or 8 with 64 taps) or with
 * output columns in them, the weight and bias gradient with images in the lanes (fewer
 * than 8 input channels), the input gradient as a direct correlation with the flipped
 * weights (up to 16 output channels). LeNet's two layers, ResNet-20's stem and shapes on
 * both sides of each limit, against plain loops on one and two threads (batches of 3 and
 * 17: a partial group of 16 images), and by finite differences with a bias. */
TEST(conv_direct_routes_match_plain_loops)
{
    problem ps[8];
    int np = 0;
    ps[np] = make_problem(OP_CONV, 2, 3, 1, 6, 1, (int[]){28, 28}, (int[]){5, 5});
    ps[np].cfg.same = 1, ps[np].bias = 1, np++; /* LeNet C1 */
    ps[np] = make_problem(OP_CONV, 2, 3, 6, 16, 1, (int[]){14, 14}, (int[]){5, 5});
    ps[np].bias = 1, np++; /* LeNet C3 */
    ps[np] = make_problem(OP_CONV, 2, 17, 3, 16, 1, (int[]){7, 9}, (int[]){3, 3});
    ps[np].cfg.same = 1, np++; /* ResNet stem, 17 images */
    ps[np] = make_problem(OP_CONV, 2, 3, 6, 10, 1, (int[]){9, 11}, (int[]){5, 5});
    set_dims(ps[np].cfg.pad_begin, 2, 1, 3, 0), set_dims(ps[np].cfg.pad_end, 2, 2, 0, 0);
    ps[np].bias = 1, np++; /* 10 channels in the lanes, uneven padding */
    ps[np] = make_problem(OP_CONV, 2, 3, 8, 20, 1, (int[]){6, 6}, (int[]){7, 7});
    ps[np].cfg.same = 1, np++; /* a kernel wider than the image; dx by columns (20 > 16) */
    ps[np] = make_problem(OP_CONV, 2, 3, 12, 6, 1, (int[]){8, 7}, (int[]){3, 5});
    ps[np].cfg.same = 1, ps[np].bias = 1, np++; /* 12 channels: implicit dW, direct dx */
    nerve_rng r;
    nerve_rng_seed(&r, 91);
    for (int threads = 1; threads <= 2; threads++)
        for (int i = 0; i < np; i++) {
            nerve_set_threads(threads);
            char msg[256], what[512];
            describe(&ps[i], what, sizeof what);
            CHECK_MSG(check_against_reference(&ps[i], &r, msg, sizeof msg) == 0,
                      "threads %d %s: %s", threads, what, msg);
            check_grads_against_loops(&ps[i], 90 + (uint64_t)i);
        }
    nerve_set_threads(0);
    problem p = make_problem(OP_CONV, 2, 2, 2, 4, 1, (int[]){6, 5}, (int[]){3, 3});
    p.cfg.same = 1, p.bias = 1;
    CHECK_OK(gradcheck_problem(&p, 92)); /* direct dW with the bias, direct dx */
}
