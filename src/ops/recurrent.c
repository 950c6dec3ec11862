/* Recurrent operators: the fused sequence operator "rnn" (vanilla RNN, LSTM with its
 * peephole and coupled variants, GRU in two forms; one or two directions; variable
 * lengths), "rnn_state" (its final state as a node of its own) and "embedding".
 *
 * One direction of rnn, for steps s = 0..T-1 (the backward direction walks each sequence's
 * valid prefix from its end), with pre-activations a = x W_ih^T + b_ih + h W_hh^T + b_hh:
 *   RNN   h = tanh(a)
 *   LSTM  (i, f, g, o) = (σ, σ, tanh, σ)(a);  C = f C' + i g;  h = o tanh(C)
 *         peephole: a_i += p_i C', a_f += p_f C', a_o += p_o C;  coupled: i = 1 - f
 *   GRU   r = σ(a_r), z = σ(a_z), h = (1 - z) n + z h', with
 *         linear-before-reset  n = tanh(x W_in^T + b_in + r (h' W_hn^T + b_hn))
 *         course               n = tanh(x W_in^T + b_in + (r h') W_hn^T + b_hn)
 * The input projection of every step is one GEMM ([T*N, F] x W_ih^T); each step adds one
 * recurrent GEMM (two for the course GRU, whose reset gate comes before the product).
 * Backward (BPTT) walks the steps in reverse with one or two GEMMs per step, collecting the
 * pre-activation gradients of every step so that the weight gradients are again single
 * GEMMs over all T*N rows. */
#include "../kernels/kernels.h"
#include "ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- node attributes --------------------------------------------------------------- */

/* rnn: attr.rnn; rnn_params: attr.rnn_params; rnn_state: attr.rnn_state (src/graph/attrs.h) */

static int gates_of(int cell) { return cell == NERVE_CELL_LSTM ? 4 : cell == NERVE_CELL_GRU ? 3 : 1; }

/* ---- activations -----------------------------------------------------------------------
 * The cells spend most of their non-GEMM time in exp and tanh, so these work on GCC/Clang
 * vectors of VLEN floats (lowered to whatever the CPU has) with Cephes' polynomials: within
 * a few float ulps, no libm calls. Selects are bit masks, which also keeps NaN flowing
 * through. The row loops are compiled for AVX-512, AVX2 and the baseline, the copy run named
 * by kern_isa_active() (KERN_ISA_CLONES); without FMA contraction (ISO C mode) every version
 * gives the same bits. */
#define VLEN 8
typedef float vfloat __attribute__((vector_size(VLEN * sizeof(float))));
typedef int32_t vint __attribute__((vector_size(VLEN * sizeof(int32_t))));
typedef uint32_t vuint __attribute__((vector_size(VLEN * sizeof(uint32_t))));

#define VINLINE static inline __attribute__((always_inline))
/* (vectors travel by pointer: passing 32-byte vectors by value would tie the ABI to AVX) */
#define VSPLAT(c) ((vfloat){(c), (c), (c), (c), (c), (c), (c), (c)})
#define VSELECT(m, a, b) ((vfloat)(((m) & (vint)(a)) | (~(m) & (vint)(b))))

/* e^x for x clamped to [-87, 88]: x = n ln2 + r, e^r by a degree-6 polynomial, 2^n built
 * from exponent bits. */
VINLINE void v_exp(vfloat *v)
{
    vfloat x = *v;
    x = VSELECT(x < VSPLAT(-87.0f), VSPLAT(-87.0f), x);
    x = VSELECT(x > VSPLAT(88.0f), VSPLAT(88.0f), x);
    vfloat fx = x * VSPLAT(1.44269504088896341f) + VSPLAT(0.5f);
    vint n = __builtin_convertvector(fx, vint);
    n += (vint)(__builtin_convertvector(n, vfloat) > fx); /* floor: true is -1 */
    vfloat nf = __builtin_convertvector(n, vfloat);
    vfloat r = x - nf * VSPLAT(0.693359375f) + nf * VSPLAT(2.12194440e-4f);
    vfloat y = VSPLAT(1.9875691500e-4f);
    y = y * r + VSPLAT(1.3981999507e-3f);
    y = y * r + VSPLAT(8.3334519073e-3f);
    y = y * r + VSPLAT(4.1665795894e-2f);
    y = y * r + VSPLAT(1.6666665459e-1f);
    y = y * r + VSPLAT(5.0000001201e-1f);
    y = y * r * r + r + VSPLAT(1.0f);
    vuint bits = ((vuint)n + 127u) << 23;
    *v = y * (vfloat)bits;
}

VINLINE void v_sigmoid(vfloat *v)
{
    vfloat e = -*v;
    v_exp(&e);
    *v = VSPLAT(1.0f) / (VSPLAT(1.0f) + e);
}

/* An odd polynomial below |x| = 0.625, 1 - 2 / (e^{2|x|} + 1) with x's sign above. */
VINLINE void v_tanh(vfloat *v)
{
    vfloat x = *v;
    vint sign = (vint)x & (vint)VSPLAT(-0.0f);
    vfloat ax = (vfloat)((vint)x ^ sign), z = x * x;
    vfloat small = ((((VSPLAT(-5.70498872745e-3f) * z + VSPLAT(2.06390887954e-2f)) * z -
                      VSPLAT(5.37397155531e-2f)) * z + VSPLAT(1.33314422036e-1f)) * z -
                    VSPLAT(3.33332819422e-1f)) * z * x + x;
    vfloat e = VSPLAT(2.0f) * ax;
    v_exp(&e);
    vfloat big = VSPLAT(1.0f) - VSPLAT(2.0f) / (e + VSPLAT(1.0f));
    big = (vfloat)((vint)big | sign);
    *v = VSELECT(ax < VSPLAT(0.625f), small, big);
}

/* y[0..n) = f(a[0..n)) (a == y allowed); the tail goes through a padded vector, so every
 * element sees the same arithmetic. */
VINLINE void map_row(void (*f)(vfloat *), const float *a, float *y, int n)
{
    int j = 0;
    vfloat v;
    for (; j + VLEN <= n; j += VLEN) {
        memcpy(&v, a + j, sizeof v);
        f(&v);
        memcpy(y + j, &v, sizeof v);
    }
    if (j < n) {
        v = VSPLAT(0.0f);
        memcpy(&v, a + j, (size_t)(n - j) * sizeof(float));
        f(&v);
        memcpy(y + j, &v, (size_t)(n - j) * sizeof(float));
    }
}

KERN_ISA_CLONES(sigmoid_rows, (float *a, int n), (a, n)) { map_row(v_sigmoid, a, a, n); }
KERN_ISA_CLONES(tanh_rows, (const float *a, float *y, int n), (a, y, n)) { map_row(v_tanh, a, y, n); }

/* ---- rnn_params: one direction's weights as a single input of the rnn node -------------
 * NERVE_MAX_INPUTS cannot hold x, lengths, h0, c0 and five parameters per direction, so
 * each direction's parameters hang off a bundle node. The bundle computes nothing: the rnn
 * node reads the parameters' values and adds into their gradients through it. */

/* Parameter `what` must have shape [d0] (ndim 1) or [d0, d1] (d1 < 0: any width). */
static int params_check(const node *n, const node *p, int ndim, int d0, int d1, const char *what)
{
    if (p->ndim == ndim && p->dims[0] == d0 && (ndim == 1 || d1 < 0 || p->dims[1] == d1))
        return NERVE_OK;
    char got[64];
    nerve_shape_str(p->ndim, p->dims, got, sizeof got);
    if (ndim == 1)
        return op_shape_error(n, "%s must be [%d], got %s", what, d0, got);
    if (d1 < 0)
        return op_shape_error(n, "%s must be [%d, F], got %s", what, d0, got);
    return op_shape_error(n, "%s must be [%d, %d], got %s", what, d0, d1, got);
}

static int params_infer(nerve_graph *g, node *n)
{
    static const char *const what[] = {"w_ih", "w_hh", "b_ih", "b_hh", "peephole"};
    int st = node_check_size(n, "gates x hidden size",
                             size_mul64(n->attr.rnn_params.gates, n->attr.rnn_params.hidden));
    if (st)
        return st;
    int GH = n->attr.rnn_params.gates * n->attr.rnn_params.hidden, H = n->attr.rnn_params.hidden;
    const int ndim[] = {2, 2, 1, 1, 2}, d0[] = {GH, GH, GH, GH, 3}, d1[] = {-1, H, 0, 0, H};
    for (int k = RNN_W_IH; k <= RNN_PEEPHOLE; k++) {
        if (n->attr.rnn_params.slot[k] < 0)
            continue;
        if ((st = params_check(n, node_input(g, n, n->attr.rnn_params.slot[k]), ndim[k], d0[k], d1[k],
                               what[k])))
            return st;
    }
    n->ndim = 1;
    n->dims[0] = 1;
    return NERVE_OK;
}

static void params_forward(nerve_graph *g, node *n)
{
    (void)g;
    n->value[0] = 0.0f; /* nothing to compute */
}

/* The rnn node's backward already added into the parameters' gradients; this op only needs
 * a backward so that needs_grad flows from the parameters to the rnn node. */
static void params_backward(nerve_graph *g, node *n)
{
    (void)g;
    (void)n;
}

static const op_def op_rnn_params = {"rnn_params", params_infer, NULL, params_forward,
                                     params_backward, 0};

/* ---- the run-time view of an rnn node ------------------------------------------------ */

typedef struct rnn_weights {
    const float *w_ih, *w_hh, *b_ih, *b_hh, *peep; /* [GH,F] [GH,H] [GH] [GH] [3,H] */
    float *dw_ih, *dw_hh, *db_ih, *db_hh, *dpeep;   /* NULL: no gradient wanted */
} rnn_weights;

/* One direction's scratch; every array is laid out for the current batch N. */
typedef struct dir_buf {
    float *gates; /* [T, N, GH]: input projection, then each step's activated gates */
    float *h;     /* [T+1, N, H]: h[0] initial state, h[s+1] state after step s */
    float *c;     /* [T+1, N, H]: LSTM cell states (NULL otherwise) */
    float *aux;   /* [T, N, H]: LSTM tanh(C); GRU W_hn h' + b_hn (linear-before-reset) or r h'
                     (course) */
    float *dgi;   /* [T, N, GH]: gradient of the input-side pre-activations */
    float *dgh;   /* [T, N, GH]: of the recurrent-side ones (GRU; the same array otherwise) */
} dir_buf;

typedef struct rnn_buf {
    float *discard;         /* [3H]: where a frozen peephole's gradient goes (never read) */
    float *whh_t[2];        /* [H, GH]: W_hh^T per direction, so that each step's GEMM
                               reads it in place instead of packing it again */
    dir_buf dir[2];
    float *hh;             /* [N, GH]: GRU recurrent product of one step */
    float *dh, *dh_prev;   /* [N, H]: gradient of the state after / before the current step */
    float *dc, *drh;       /* [N, H]: LSTM cell gradient; course GRU gradient of r h' */
    float *dfin_h, *dfin_c; /* [D, N, H]: gradients of the final state, from rnn_state */
} rnn_buf;

typedef struct rnn_ctx {
    int cell, lstm_flags, gru_form, D, retseq;
    int T, N, F, H, G;
    const float *x;
    float *dx;
    const float *lengths; /* [N] or NULL */
    node *h0, *c0;        /* [D, rows, H] or NULL; rows >= N for carried states */
    rnn_weights w[2];
    rnn_buf b;
} rnn_ctx;

/* Next 64-byte aligned piece of `count` floats of a scratch area starting at base (NULL:
 * only count). */
static float *carve(float *base, size_t *off, size_t count)
{
    size_t at = *off;
    *off += (count + 15) & ~(size_t)15;
    return base ? base + at : NULL;
}

/* Lays out the scratch of an rnn node for T steps and batch N; returns the floats used. */
static size_t rnn_layout(const node *n, int T, int N, float *base, rnn_buf *b)
{
    int cell = n->attr.rnn.cell, H = n->attr.rnn.hidden, D = n->attr.rnn.dirs;
    size_t GH = (size_t)gates_of(cell) * H, NH = (size_t)N * H, TN = (size_t)T * N;
    size_t off = 0;
    rnn_buf tmp;
    if (!b)
        b = &tmp;
    memset(b, 0, sizeof *b);
    b->discard = carve(base, &off, (size_t)3 * H);
    for (int d = 0; d < D; d++)
        b->whh_t[d] = carve(base, &off, GH * H);
    for (int d = 0; d < D; d++) {
        dir_buf *q = &b->dir[d];
        q->gates = carve(base, &off, TN * GH);
        q->h = carve(base, &off, (TN + N) * H);
        if (cell == NERVE_CELL_LSTM)
            q->c = carve(base, &off, (TN + N) * H);
        if (cell != NERVE_CELL_RNN)
            q->aux = carve(base, &off, TN * H);
        q->dgi = carve(base, &off, TN * GH);
        q->dgh = cell == NERVE_CELL_GRU ? carve(base, &off, TN * GH) : q->dgi;
    }
    b->hh = carve(base, &off, (size_t)N * GH);
    b->dh = carve(base, &off, NH);
    b->dh_prev = carve(base, &off, NH);
    b->dc = carve(base, &off, NH);
    b->drh = carve(base, &off, NH);
    b->dfin_h = carve(base, &off, (size_t)D * NH);
    b->dfin_c = carve(base, &off, (size_t)D * NH);
    return off;
}

static const float *value_or_null(nerve_graph *g, const node *bundle, int slot)
{
    int k = bundle->attr.rnn_params.slot[slot];
    return k < 0 ? NULL : node_input(g, bundle, k)->value;
}

static float *grad_or_null(nerve_graph *g, const node *bundle, int slot)
{
    int k = bundle->attr.rnn_params.slot[slot];
    return k < 0 ? NULL : node_input_grad(g, bundle, k);
}

static node *optional_input(nerve_graph *g, const node *n, int slot)
{
    int k = n->attr.rnn.slot[slot];
    return k < 0 ? NULL : node_input(g, n, k);
}

static void rnn_context(nerve_graph *g, node *n, rnn_ctx *c)
{
    node *x = node_input(g, n, 0);
    memset(c, 0, sizeof *c);
    c->cell = n->attr.rnn.cell;
    c->lstm_flags = n->attr.rnn.lstm_flags;
    c->gru_form = n->attr.rnn.gru_form;
    c->D = n->attr.rnn.dirs;
    c->retseq = n->attr.rnn.return_sequences;
    c->T = x->dims[0];
    c->N = x->dims[1];
    c->F = x->dims[2];
    c->H = n->attr.rnn.hidden;
    c->G = gates_of(c->cell);
    c->x = x->value;
    c->dx = node_input_grad(g, n, 0);
    node *len = optional_input(g, n, RNN_LENGTHS);
    c->lengths = len ? len->value : NULL;
    c->h0 = optional_input(g, n, RNN_H0);
    c->c0 = optional_input(g, n, RNN_C0);
    for (int d = 0; d < c->D; d++) {
        const node *p = node_input(g, n, n->attr.rnn.slot[RNN_PARAMS0 + d]);
        rnn_weights *w = &c->w[d];
        w->w_ih = value_or_null(g, p, RNN_W_IH);
        w->w_hh = value_or_null(g, p, RNN_W_HH);
        w->b_ih = value_or_null(g, p, RNN_B_IH);
        w->b_hh = value_or_null(g, p, RNN_B_HH);
        w->peep = value_or_null(g, p, RNN_PEEPHOLE);
        w->dw_ih = grad_or_null(g, p, RNN_W_IH);
        w->dw_hh = grad_or_null(g, p, RNN_W_HH);
        w->db_ih = grad_or_null(g, p, RNN_B_IH);
        w->db_hh = grad_or_null(g, p, RNN_B_HH);
        w->dpeep = grad_or_null(g, p, RNN_PEEPHOLE);
    }
    rnn_layout(n, c->T, c->N, n->scratch, &c->b);
}

/* Valid length of sequence i: the lengths input clamped to 0..T (NaN counts as 0). */
static int seq_len(const rnn_ctx *c, int i)
{
    if (!c->lengths)
        return c->T;
    float v = c->lengths[i];
    return v >= (float)c->T ? c->T : v >= 0.0f ? (int)v : 0;
}

/* Time index that sequence i reads at step s of direction d (s < its length). */
static int time_of(const rnn_ctx *c, int d, int i, int s) { return d == 0 ? s : seq_len(c, i) - 1 - s; }

/* Reverses each sequence's valid prefix along time in a [T, N, W] array: turns time order
 * into the backward direction's step order and back. */
static void reverse_valid_steps(const rnn_ctx *c, float *a, int W)
{
    for (int i = 0; i < c->N; i++) {
        int L = seq_len(c, i);
        for (int t = 0; t < L / 2; t++) {
            float *p = a + ((size_t)t * c->N + i) * W, *q = a + ((size_t)(L - 1 - t) * c->N + i) * W;
            for (int j = 0; j < W; j++) {
                float keep = p[j];
                p[j] = q[j];
                q[j] = keep;
            }
        }
    }
}

/* Row i of direction d of a [D, rows, H] state node (NULL past its rows). */
static float *state_row(const node *s, int d, int i, int H)
{
    int rows = s->dims[1];
    return i < rows ? s->value + ((size_t)d * rows + i) * H : NULL;
}

/* Copies the initial state of direction d (zeros when absent) into dst [N, H]. */
static void load_state(const rnn_ctx *c, const node *s, int d, float *dst)
{
    for (int i = 0; i < c->N; i++) {
        const float *src = s ? state_row(s, d, i, c->H) : NULL;
        if (src)
            memcpy(dst + (size_t)i * c->H, src, (size_t)c->H * sizeof(float));
        else
            memset(dst + (size_t)i * c->H, 0, (size_t)c->H * sizeof(float));
    }
}

/* rows x W array: every row = a (+ b), either may be NULL. */
static void fill_bias_rows(float *y, size_t rows, int W, const float *a, const float *b)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * W;
        for (int j = 0; j < W; j++)
            row[j] = (a ? a[j] : 0.0f) + (b ? b[j] : 0.0f);
    }
}

/* at [cols, rows] = a [rows, cols]^T */
static void transpose_into(const float *a, int rows, int cols, float *at)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++)
            at[(size_t)k * rows + r] = a[(size_t)r * cols + k];
}

/* col[j] += sum over rows of a[r, j]. */
static void add_column_sums(float *col, const float *a, size_t rows, int W)
{
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < W; j++)
            col[j] += a[r * W + j];
}

/* ---- cells: one row (one sequence) of one step ---------------------------------------- */

static void rnn_cell_forward(float *a, float *h, int H)
{
    tanh_rows(a, a, H);
    memcpy(h, a, (size_t)H * sizeof(float));
}

/* a: pre-activations (i, f, g, o), replaced by the gates (i = 1 - f when coupled). */
static void lstm_cell_forward(float *a, const float *cp, float *cn, float *tc, float *h,
                              const float *p, int coupled, int H)
{
    float *i = a, *f = a + H, *g = a + 2 * H, *o = a + 3 * H;
    if (p)
        for (int j = 0; j < H; j++) {
            i[j] += p[j] * cp[j];
            f[j] += p[H + j] * cp[j];
        }
    if (coupled) {
        sigmoid_rows(f, H);
        for (int j = 0; j < H; j++)
            i[j] = 1.0f - f[j];
    } else {
        sigmoid_rows(i, 2 * H);
    }
    tanh_rows(g, g, H);
    for (int j = 0; j < H; j++)
        cn[j] = f[j] * cp[j] + i[j] * g[j];
    if (p)
        for (int j = 0; j < H; j++)
            o[j] += p[2 * H + j] * cn[j];
    sigmoid_rows(o, H);
    tanh_rows(cn, tc, H);
    for (int j = 0; j < H; j++)
        h[j] = o[j] * tc[j];
}

/* hh: recurrent pre-activations (r, z, n-part). Linear-before-reset: n-part = W_hn h' + b_hn,
 * saved in aux. Course: r is already in a (gru_reset_gate) and the n-part is W_hn (r h') +
 * b_hn. */
static void gru_cell_forward(float *a, const float *hh, const float *hp, float *aux, float *h,
                             int course, int H)
{
    float *r = a, *z = a + H, *n = a + 2 * H;
    const float *hn = hh + 2 * H;
    int first = course ? H : 0; /* gates still to activate: (r,) z */
    for (int j = first; j < 2 * H; j++)
        a[j] += hh[j];
    sigmoid_rows(a + first, 2 * H - first);
    if (course) {
        for (int j = 0; j < H; j++)
            n[j] += hn[j];
    } else {
        for (int j = 0; j < H; j++) {
            aux[j] = hn[j];
            n[j] += r[j] * hn[j];
        }
    }
    tanh_rows(n, n, H);
    for (int j = 0; j < H; j++)
        h[j] = (1.0f - z[j]) * n[j] + z[j] * hp[j];
}

/* Course GRU, first half of a step: r = σ(a_r + hh_r) and r h' (kept in aux). */
static void gru_reset_gate(float *a, const float *hh, const float *hp, float *rh, int H)
{
    for (int j = 0; j < H; j++)
        a[j] += hh[j];
    sigmoid_rows(a, H);
    for (int j = 0; j < H; j++)
        rh[j] = a[j] * hp[j];
}

/* Backward of one LSTM row. In: dh, dc (gradient of C at this step). Out: the gates'
 * pre-activation gradients dg (i, f, g, o), dc replaced by the gradient of C'. Branch-free
 * so that it vectorises: coupled is 1.0 or 0.0, and `peephole` is a constant after
 * inlining (p, dp: peephole weights and their gradient, or a sink for it). */
VINLINE void lstm_row_backward(const float *a, const float *cp, const float *cn,
                               const float *tc, const float *dh, float *dc, float *dg,
                               const float *p, float *dp, float coupled, int peephole, int H)
{
    for (int j = 0; j < H; j++) {
        float i = a[j], f = a[H + j], gg = a[2 * H + j], o = a[3 * H + j], t = tc[j];
        float dao = dh[j] * t * o * (1.0f - o);
        float dct = dc[j] + dh[j] * o * (1.0f - t * t);
        if (peephole)
            dct += dao * p[2 * H + j];
        float daf = dct * (cp[j] - coupled * gg) * f * (1.0f - f); /* coupled: dC/df = C' - g */
        float dai = (1.0f - coupled) * dct * gg * i * (1.0f - i);
        float dag = dct * i * (1.0f - gg * gg);
        dc[j] = dct * f;
        if (peephole) {
            dc[j] += dai * p[j] + daf * p[H + j];
            dp[j] += dai * cp[j];
            dp[H + j] += daf * cp[j];
            dp[2 * H + j] += dao * cn[j];
        }
        dg[j] = dai;
        dg[H + j] = daf;
        dg[2 * H + j] = dag;
        dg[3 * H + j] = dao;
    }
}

KERN_ISA_CLONES(lstm_cell_backward,
                (const float *a, const float *cp, const float *cn, const float *tc,
                 const float *dh, float *dc, float *dg, const float *p, float *dp, float coupled,
                 int H),
                (a, cp, cn, tc, dh, dc, dg, p, dp, coupled, H))
{
    if (p)
        lstm_row_backward(a, cp, cn, tc, dh, dc, dg, p, dp, coupled, 1, H);
    else
        lstm_row_backward(a, cp, cn, tc, dh, dc, dg, NULL, NULL, coupled, 0, H);
}

/* Backward of one GRU row, all but the course form's reset gate (gru_reset_backward, which
 * then overwrites the r part). dgi/dgh: input-side and recurrent-side pre-activation
 * gradients; dhp: the direct part of the gradient of h' (z dh). course is 1.0 or 0.0. */
KERN_ISA_CLONES(gru_cell_backward,
                (const float *a, const float *hp, const float *aux, const float *dh, float *dgi,
                 float *dgh, float *dhp, float course, int H),
                (a, hp, aux, dh, dgi, dgh, dhp, course, H))
{
    for (int j = 0; j < H; j++) {
        float r = a[j], z = a[H + j], n = a[2 * H + j];
        float dn = dh[j] * (1.0f - z) * (1.0f - n * n);
        float dz = dh[j] * (hp[j] - n) * z * (1.0f - z);
        dhp[j] = dh[j] * z;
        dgi[H + j] = dgh[H + j] = dz;
        dgi[2 * H + j] = dn;
        dgh[2 * H + j] = dn * (course + (1.0f - course) * r); /* course: dn; else dn r */
        dgi[j] = dgh[j] = dn * aux[j] * r * (1.0f - r);       /* n = tanh(x_n + r hn) */
    }
}

/* Course GRU: with drh = dL/d(r h') known, the reset gate's gradient and h''s share. */
static void gru_reset_backward(const float *a, const float *hp, const float *drh, float *dgi,
                               float *dgh, float *dhp, int H)
{
    for (int j = 0; j < H; j++) {
        float r = a[j];
        dgi[j] = dgh[j] = drh[j] * hp[j] * r * (1.0f - r);
        dhp[j] += drh[j] * r;
    }
}

/* ---- forward ------------------------------------------------------------------------- */

static int active(const rnn_ctx *c, int i, int s) { return s < seq_len(c, i); }

/* Copies row i of the state before step s into the state after it (a finished sequence). */
static void hold_state(const rnn_ctx *c, const dir_buf *q, int s, int i)
{
    size_t H = (size_t)c->H, from = ((size_t)s * c->N + i) * H, to = from + (size_t)c->N * H;
    memcpy(q->h + to, q->h + from, H * sizeof(float));
    if (q->c)
        memcpy(q->c + to, q->c + from, H * sizeof(float));
}

/* The recurrent products of step s: RNN/LSTM add h' W_hh^T into the gates; GRU writes
 * b_hh + h' W_hh^T into b->hh (the course form only its r and z parts here). */
static void step_recurrent_product(const rnn_ctx *c, const rnn_weights *w, const float *whh_t,
                                   const dir_buf *q, int s)
{
    int N = c->N, H = c->H, GH = c->G * c->H;
    const float *hp = q->h + (size_t)s * N * H;
    if (c->cell != NERVE_CELL_GRU) {
        kern_sgemm(0, 0, N, GH, H, 1.0f, hp, H, whh_t, GH, 1.0f, q->gates + (size_t)s * N * GH, GH);
        return;
    }
    fill_bias_rows(c->b.hh, (size_t)N, GH, w->b_hh, NULL);
    int cols = c->gru_form == NERVE_GRU_COURSE ? 2 * H : GH;
    kern_sgemm(0, 0, N, cols, H, 1.0f, hp, H, whh_t, GH, 1.0f, c->b.hh, GH);
}

static void step_forward(const rnn_ctx *c, const rnn_weights *w, const float *whh_t,
                         const dir_buf *q, int s)
{
    int N = c->N, H = c->H, GH = c->G * c->H;
    int course = c->cell == NERVE_CELL_GRU && c->gru_form == NERVE_GRU_COURSE;
    size_t at = (size_t)s * N;
    step_recurrent_product(c, w, whh_t, q, s);
    if (course) { /* r first, then the n part's product on r h' */
        for (int i = 0; i < N; i++)
            gru_reset_gate(q->gates + (at + i) * GH, c->b.hh + (size_t)i * GH,
                           q->h + (at + i) * H, q->aux + (at + i) * H, H);
        kern_sgemm(0, 0, N, H, H, 1.0f, q->aux + at * H, H, whh_t + 2 * H, GH, 1.0f,
                   c->b.hh + 2 * H, GH);
    }
    for (int i = 0; i < N; i++) {
        if (!active(c, i, s)) {
            hold_state(c, q, s, i);
            continue;
        }
        float *a = q->gates + (at + i) * GH;
        const float *hp = q->h + (at + i) * H;
        float *h = q->h + (at + N + i) * H;
        if (c->cell == NERVE_CELL_RNN)
            rnn_cell_forward(a, h, H);
        else if (c->cell == NERVE_CELL_LSTM)
            lstm_cell_forward(a, q->c + (at + i) * H, q->c + (at + N + i) * H, q->aux + (at + i) * H,
                              h, w->peep, (c->lstm_flags & NERVE_LSTM_COUPLED) != 0, H);
        else
            gru_cell_forward(a, c->b.hh + (size_t)i * GH, hp, q->aux + (at + i) * H, h, course, H);
    }
}

static void direction_forward(const rnn_ctx *c, int d)
{
    const rnn_weights *w = &c->w[d];
    const dir_buf *q = &c->b.dir[d];
    int GH = c->G * c->H;
    size_t rows = (size_t)c->T * c->N;
    /* All steps' input projections at once; RNN/LSTM fold both biases in here. */
    fill_bias_rows(q->gates, rows, GH, w->b_ih, c->cell == NERVE_CELL_GRU ? NULL : w->b_hh);
    kern_sgemm(0, 1, (int)rows, GH, c->F, 1.0f, c->x, c->F, w->w_ih, c->F, 1.0f, q->gates, GH);
    if (d == 1)
        reverse_valid_steps(c, q->gates, GH);
    load_state(c, c->h0, d, q->h);
    if (q->c)
        load_state(c, c->c0, d, q->c);
    transpose_into(w->w_hh, GH, c->H, c->b.whh_t[d]);
    for (int s = 0; s < c->T; s++)
        step_forward(c, w, c->b.whh_t[d], q, s);
}

/* y [T, N, D*H] (each valid step's state; zero past a sequence's length) or [N, D*H] (the
 * final state, which is the last valid step's). */
static void write_outputs(const rnn_ctx *c, int d, float *y)
{
    const dir_buf *q = &c->b.dir[d];
    int N = c->N, H = c->H, DH = c->D * c->H;
    size_t bytes = (size_t)H * sizeof(float);
    if (!c->retseq) {
        for (int i = 0; i < N; i++)
            memcpy(y + (size_t)i * DH + (size_t)d * H, q->h + ((size_t)c->T * N + i) * H, bytes);
        return;
    }
    for (int s = 0; s < c->T; s++)
        for (int i = 0; i < N; i++)
            if (active(c, i, s))
                memcpy(y + ((size_t)time_of(c, d, i, s) * N + i) * DH + (size_t)d * H,
                       q->h + ((size_t)(s + 1) * N + i) * H, bytes);
}

/* Truncated BPTT: the final state becomes the next chunk's initial state. */
static void write_carry(const rnn_ctx *c)
{
    size_t bytes = (size_t)c->H * sizeof(float), last = (size_t)c->T * c->N;
    for (int d = 0; d < c->D; d++)
        for (int i = 0; i < c->N; i++) {
            float *hrow = state_row(c->h0, d, i, c->H);
            if (hrow)
                memcpy(hrow, c->b.dir[d].h + (last + i) * c->H, bytes);
            float *crow = c->c0 ? state_row(c->c0, d, i, c->H) : NULL;
            if (crow)
                memcpy(crow, c->b.dir[d].c + (last + i) * c->H, bytes);
        }
}

static void rnn_forward(nerve_graph *g, node *n)
{
    rnn_ctx c;
    rnn_context(g, n, &c);
    size_t fin = (size_t)c.D * c.N * c.H;
    memset(c.b.dfin_h, 0, fin * sizeof(float)); /* rnn_state's backward adds into these */
    memset(c.b.dfin_c, 0, fin * sizeof(float));
    memset(n->value, 0, node_numel(n) * sizeof(float));
    for (int d = 0; d < c.D; d++) {
        direction_forward(&c, d);
        write_outputs(&c, d, n->value);
    }
    if (n->attr.rnn.carry && (g->training || g->carry_in_eval) && c.h0)
        write_carry(&c);
}

/* ---- backward ------------------------------------------------------------------------ */

/* dh += the output gradient of step s (return_sequences) for the sequences still running. */
static void add_output_grad(const rnn_ctx *c, int d, int s, const float *dy, float *dh)
{
    int N = c->N, H = c->H, DH = c->D * c->H;
    for (int i = 0; i < N; i++) {
        if (!active(c, i, s))
            continue;
        const float *g = dy + ((size_t)time_of(c, d, i, s) * N + i) * DH + (size_t)d * H;
        for (int j = 0; j < H; j++)
            dh[(size_t)i * H + j] += g[j];
    }
}

/* Gradients of the state after the last step: the final-state output (return_sequences 0)
 * plus whatever rnn_state deposited. */
static void init_state_grads(const rnn_ctx *c, int d, const float *dy)
{
    int N = c->N, H = c->H, DH = c->D * c->H;
    size_t NH = (size_t)N * H;
    memcpy(c->b.dh, c->b.dfin_h + d * NH, NH * sizeof(float));
    memcpy(c->b.dc, c->b.dfin_c + d * NH, NH * sizeof(float));
    if (!c->retseq)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < H; j++)
                c->b.dh[(size_t)i * H + j] += dy[(size_t)i * DH + (size_t)d * H + j];
}

/* Whether some sequence has finished before step s. */
static int any_held(const rnn_ctx *c, int s)
{
    for (int i = 0; i < c->N; i++)
        if (!active(c, i, s))
            return 1;
    return 0;
}

/* Element-wise part of step s's backward, row by row: the pre-activation gradients and the
 * direct share of dh' (z dh for GRU, all of dh for finished sequences). Returns whether
 * dh' now holds something the recurrent GEMM must add to (else it overwrites). */
static int step_cells_backward(const rnn_ctx *c, const rnn_weights *w, const dir_buf *q, int s)
{
    int N = c->N, H = c->H, GH = c->G * c->H;
    int held = any_held(c, s), direct = held || c->cell == NERVE_CELL_GRU;
    float course = c->cell == NERVE_CELL_GRU && c->gru_form == NERVE_GRU_COURSE;
    float coupled = (c->lstm_flags & NERVE_LSTM_COUPLED) != 0;
    float *dpeep = w->dpeep ? w->dpeep : c->b.discard;
    size_t at = (size_t)s * N;
    for (int i = 0; i < N; i++) {
        float *dgi = q->dgi + (at + i) * GH, *dgh = q->dgh + (at + i) * GH;
        const float *dh = c->b.dh + (size_t)i * H;
        float *dhp = c->b.dh_prev + (size_t)i * H;
        if (!active(c, i, s)) { /* the state passes through unchanged */
            memset(dgi, 0, (size_t)GH * sizeof(float));
            if (dgh != dgi)
                memset(dgh, 0, (size_t)GH * sizeof(float));
            memcpy(dhp, dh, (size_t)H * sizeof(float));
            continue;
        }
        const float *a = q->gates + (at + i) * GH;
        if (c->cell == NERVE_CELL_RNN) {
            for (int j = 0; j < H; j++)
                dgi[j] = dh[j] * (1.0f - a[j] * a[j]);
        } else if (c->cell == NERVE_CELL_LSTM) {
            lstm_cell_backward(a, q->c + (at + i) * H, q->c + (at + N + i) * H, q->aux + (at + i) * H,
                               dh, c->b.dc + (size_t)i * H, dgi, w->peep, dpeep, coupled, H);
        } else {
            gru_cell_backward(a, q->h + (at + i) * H, q->aux + (at + i) * H, dh, dgi, dgh, dhp,
                              course, H);
        }
        if (held && c->cell != NERVE_CELL_GRU)
            memset(dhp, 0, (size_t)H * sizeof(float));
    }
    return direct;
}

/* Course GRU: dL/d(r h') = dn_pre W_hn, then the reset gate's gradient. */
static void step_reset_backward(const rnn_ctx *c, const rnn_weights *w, const dir_buf *q, int s)
{
    int N = c->N, H = c->H, GH = c->G * c->H;
    size_t at = (size_t)s * N;
    kern_sgemm(0, 0, N, H, H, 1.0f, q->dgh + at * GH + 2 * H, GH, w->w_hh + (size_t)2 * H * H, H,
               0.0f, c->b.drh, H);
    for (int i = 0; i < N; i++)
        if (active(c, i, s))
            gru_reset_backward(q->gates + (at + i) * GH, q->h + (at + i) * H, c->b.drh + (size_t)i * H,
                               q->dgi + (at + i) * GH, q->dgh + (at + i) * GH,
                               c->b.dh_prev + (size_t)i * H, H);
}

static void step_backward(rnn_ctx *c, const rnn_weights *w, const dir_buf *q, int s)
{
    int N = c->N, H = c->H, GH = c->G * c->H;
    int course = c->cell == NERVE_CELL_GRU && c->gru_form == NERVE_GRU_COURSE;
    int accumulate = step_cells_backward(c, w, q, s);
    if (course)
        step_reset_backward(c, w, q, s);
    /* dh' (+)= dgh W_hh (the course GRU's n rows were handled through r h') */
    kern_sgemm(0, 0, N, H, course ? 2 * H : GH, 1.0f, q->dgh + (size_t)s * N * GH, GH, w->w_hh, H,
               accumulate ? 1.0f : 0.0f, c->b.dh_prev, H);
    float *t = c->b.dh;
    c->b.dh = c->b.dh_prev;
    c->b.dh_prev = t;
}

/* Weight and input gradients of direction d from the pre-activation gradients of all steps:
 * one GEMM each over the T*N rows. */
static void direction_param_grads(const rnn_ctx *c, int d)
{
    const rnn_weights *w = &c->w[d];
    const dir_buf *q = &c->b.dir[d];
    int H = c->H, GH = c->G * c->H, F = c->F;
    int rows = c->T * c->N;
    /* recurrent side first: dgh is in step order, like the states h[0..T-1] */
    if (w->dw_hh) {
        if (c->cell == NERVE_CELL_GRU && c->gru_form == NERVE_GRU_COURSE) {
            kern_sgemm(1, 0, 2 * H, H, rows, 1.0f, q->dgh, GH, q->h, H, 1.0f, w->dw_hh, H);
            kern_sgemm(1, 0, H, H, rows, 1.0f, q->dgh + 2 * H, GH, q->aux, H, 1.0f,
                       w->dw_hh + (size_t)2 * H * H, H);
        } else {
            kern_sgemm(1, 0, GH, H, rows, 1.0f, q->dgh, GH, q->h, H, 1.0f, w->dw_hh, H);
        }
    }
    if (w->db_hh)
        add_column_sums(w->db_hh, q->dgh, (size_t)rows, GH);
    if (d == 1) /* back to time order, like x */
        reverse_valid_steps(c, q->dgi, GH);
    if (w->dw_ih)
        kern_sgemm(1, 0, GH, F, rows, 1.0f, q->dgi, GH, c->x, F, 1.0f, w->dw_ih, F);
    if (w->db_ih)
        add_column_sums(w->db_ih, q->dgi, (size_t)rows, GH);
    if (c->dx)
        kern_sgemm(0, 0, rows, F, GH, 1.0f, q->dgi, GH, w->w_ih, F, 1.0f, c->dx, F);
}

/* Adds the gradient of the initial state (row i of direction d) into a state input. */
static void add_initial_grad(const rnn_ctx *c, const node *s, int d, const float *src)
{
    if (!s || !s->needs_grad || !s->grad)
        return;
    size_t NH = (size_t)c->N * c->H;
    float *dst = s->grad + (size_t)d * NH; /* a differentiable state input is [D, N, H] */
    for (size_t k = 0; k < NH; k++)
        dst[k] += src[k];
}

static void rnn_backward(nerve_graph *g, node *n)
{
    rnn_ctx c;
    rnn_context(g, n, &c);
    for (int d = 0; d < c.D; d++) {
        const rnn_weights *w = &c.w[d];
        const dir_buf *q = &c.b.dir[d];
        init_state_grads(&c, d, n->grad);
        for (int s = c.T - 1; s >= 0; s--) {
            if (c.retseq)
                add_output_grad(&c, d, s, n->grad, c.b.dh);
            step_backward(&c, w, q, s);
        }
        direction_param_grads(&c, d);
        add_initial_grad(&c, c.h0, d, c.b.dh);
        add_initial_grad(&c, c.c0, d, c.b.dc);
    }
    size_t fin = (size_t)c.D * c.N * c.H; /* consumed: a second backward starts clean */
    memset(c.b.dfin_h, 0, fin * sizeof(float));
    memset(c.b.dfin_c, 0, fin * sizeof(float));
}

/* ---- shapes and scratch --------------------------------------------------------------- */

static int check_state_input(const node *n, const node *s, int D, int N, int H, const char *what)
{
    int carried = n->attr.rnn.carry;
    if (s->ndim != 3 || s->dims[0] != D || s->dims[2] != H || (!carried && s->dims[1] != N))
        return op_shape_error(n, "%s must be [%d, %d, %d]", what, D, N, H);
    return NERVE_OK;
}

static int rnn_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0);
    int D = n->attr.rnn.dirs, H = n->attr.rnn.hidden;
    if (x->ndim != 3)
        return op_shape_error(n, "x must be time-major [T, N, F], got rank %d", x->ndim);
    int T = x->dims[0], N = x->dims[1], F = x->dims[2];
    node *len = optional_input(g, n, RNN_LENGTHS);
    if (len && nerve_shape_numel(len->ndim, len->dims) != (size_t)N)
        return op_shape_error(n, "lengths must hold one value per sequence (%d)", N);
    node *h0 = optional_input(g, n, RNN_H0), *c0 = optional_input(g, n, RNN_C0);
    int st = h0 ? check_state_input(n, h0, D, N, H, "h0") : NERVE_OK;
    if (!st && c0)
        st = check_state_input(n, c0, D, N, H, "c0");
    if (st)
        return st;
    for (int d = 0; d < D; d++) {
        const node *p = node_input(g, n, n->attr.rnn.slot[RNN_PARAMS0 + d]);
        const node *w = node_input(g, p, p->attr.rnn_params.slot[RNN_W_IH]);
        if (w->dims[1] != F)
            return op_shape_error(n, "w_ih has %d inputs per gate but x has %d features",
                                  w->dims[1], F);
    }
    if ((st = node_check_size(n, "directions x hidden size", size_mul64(D, H))))
        return st;
    if (n->attr.rnn.return_sequences) {
        n->ndim = 3;
        n->dims[0] = T;
        n->dims[1] = N;
        n->dims[2] = D * H;
    } else {
        n->ndim = 2;
        n->dims[0] = N;
        n->dims[1] = D * H;
    }
    return NERVE_OK;
}

/* Carried states are built [D, 1, H]; at compile they grow to the compiled batch so that
 * every stream of a batch keeps its own state. (The scratch hook is the one place that runs
 * once at compile, after shapes are known; a failed allocation keeps the small state and
 * the rows past it start from zero.) */
static void grow_carried_state(node *s, int N)
{
    if (!s || s->kind != NERVE_NODE_STATE || s->dims[1] >= N)
        return;
    size_t numel = (size_t)s->dims[0] * N * s->dims[2];
    float *v = nerve_xalloc_floats(numel);
    if (!v)
        return;
    nerve_xfree_aligned(s->value);
    s->value = v;
    s->dims[1] = N;
    s->capacity = numel;
}

static size_t rnn_scratch(const nerve_graph *g, const node *n)
{
    const node *x = &g->nodes[n->in[0]];
    if (n->attr.rnn.carry) {
        for (int slot = RNN_H0; slot <= RNN_C0; slot++)
            if (n->attr.rnn.slot[slot] >= 0)
                grow_carried_state(&g->nodes[n->in[n->attr.rnn.slot[slot]]], x->dims[1]);
    }
    return rnn_layout(n, x->dims[0], x->dims[1], NULL, NULL);
}

static const op_def op_rnn = {"rnn", rnn_infer, rnn_scratch, rnn_forward, rnn_backward, 0};

/* ---- builders ----------------------------------------------------------------------------- */

static int check_config(const nerve_rnn_config *cfg)
{
    if (!cfg)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: null config");
    if ((int)cfg->cell < NERVE_CELL_RNN || (int)cfg->cell > NERVE_CELL_GRU)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: unknown cell type %d", (int)cfg->cell);
    if (cfg->hidden < 1)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: hidden size %d; must be at least 1", cfg->hidden);
    if (cfg->cell == NERVE_CELL_LSTM &&
        (cfg->lstm_flags & ~(NERVE_LSTM_PEEPHOLE | NERVE_LSTM_COUPLED)))
        return nerve_set_error(NERVE_ERR_ARG, "rnn: unknown LSTM flags %#x", cfg->lstm_flags);
    if (cfg->cell == NERVE_CELL_GRU && cfg->gru_form != NERVE_GRU_COURSE &&
        cfg->gru_form != NERVE_GRU_LINEAR_BEFORE_RESET)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: unknown GRU form %d", cfg->gru_form);
    return NERVE_OK;
}

static int wants_peephole(const nerve_rnn_config *cfg)
{
    return cfg->cell == NERVE_CELL_LSTM && (cfg->lstm_flags & NERVE_LSTM_PEEPHOLE);
}

/* The bundle node of direction d's parameters. */
static int add_params_bundle(nerve_graph *g, const nerve_rnn_params *p, int d,
                             const nerve_rnn_config *cfg)
{
    const int ids[] = {p->w_ih[d], p->w_hh[d], p->b_ih[d], p->b_hh[d], p->peephole[d]};
    if (ids[RNN_W_IH] < 0 || ids[RNN_W_HH] < 0)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: direction %d needs w_ih and w_hh", d);
    if ((ids[RNN_PEEPHOLE] >= 0) != (wants_peephole(cfg) != 0))
        return nerve_set_error(NERVE_ERR_ARG, "rnn: a peephole parameter is needed exactly when "
                                              "the LSTM has NERVE_LSTM_PEEPHOLE");
    node_attr at;
    memset(&at, 0, sizeof at);
    int in[5], k = 0;
    for (int slot = RNN_W_IH; slot <= RNN_PEEPHOLE; slot++) {
        at.rnn_params.slot[slot] = ids[slot] >= 0 ? k : -1;
        if (ids[slot] >= 0)
            in[k++] = ids[slot];
    }
    at.rnn_params.gates = gates_of(cfg->cell);
    at.rnn_params.hidden = cfg->hidden;
    return graph_add_op(g, &op_rnn_params, k, in, &at, "rnn_params");
}

/* nerve_rnn with carry: h0/c0 are STATE nodes that each training forward overwrites with
 * the final state (used by nerve_layer_rnn in src/nn/recurrent_layers.c). */
int rnn_add_node(nerve_graph *g, int x, int lengths, int h0, int c0, const nerve_rnn_params *p,
                 const nerve_rnn_config *cfg, int carry)
{
    if (!g || !p)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: null graph or parameters");
    int st = check_config(cfg);
    if (st)
        return st;
    if (c0 >= 0 && cfg->cell != NERVE_CELL_LSTM)
        return nerve_set_error(NERVE_ERR_ARG, "rnn: c0 is for LSTM cells only");
    int D = cfg->bidirectional ? 2 : 1, first = g->n_nodes;
    node_attr at;
    memset(&at, 0, sizeof at);
    at.rnn.cell = cfg->cell;
    at.rnn.hidden = cfg->hidden;
    at.rnn.lstm_flags = cfg->cell == NERVE_CELL_LSTM ? cfg->lstm_flags : 0;
    at.rnn.gru_form = cfg->gru_form;
    at.rnn.dirs = D;
    at.rnn.return_sequences = cfg->return_sequences != 0;
    at.rnn.carry = carry != 0;
    int in[NERVE_MAX_INPUTS], k = 0;
    in[k++] = x;
    const int optional[] = {lengths, h0, c0};
    for (int slot = RNN_LENGTHS; slot <= RNN_C0; slot++) {
        at.rnn.slot[slot] = optional[slot] >= 0 ? k : -1;
        if (optional[slot] >= 0)
            in[k++] = optional[slot];
    }
    for (int d = 0; d < D; d++) {
        int b = add_params_bundle(g, p, d, cfg);
        if (b < 0) {
            g->n_nodes = first; /* drop a bundle made for the other direction */
            return b;
        }
        at.rnn.slot[RNN_PARAMS0 + d] = k;
        in[k++] = b;
    }
    int id = graph_add_op(g, &op_rnn, k, in, &at, "rnn");
    if (id < 0)
        g->n_nodes = first;
    return id;
}

int nerve_rnn(nerve_graph *g, int x, int lengths, int h0, int c0, const nerve_rnn_params *p,
              const nerve_rnn_config *cfg)
{
    return rnn_add_node(g, x, lengths, h0, c0, p, cfg, 0);
}

static int is_rnn(const nerve_graph *g, int id)
{
    return g && id >= 0 && id < g->n_nodes && g->nodes[id].op == &op_rnn;
}

int nerve_rnn_reset_carry(nerve_graph *g, int rnn)
{
    if (!is_rnn(g, rnn) || !g->nodes[rnn].attr.rnn.carry)
        return nerve_set_error(NERVE_ERR_ARG, "rnn_reset_carry: node %d is not a carried rnn", rnn);
    node *n = graph_node(g, rnn);
    for (int slot = RNN_H0; slot <= RNN_C0; slot++)
        if (n->attr.rnn.slot[slot] >= 0) {
            node *s = node_input(g, n, n->attr.rnn.slot[slot]);
            memset(s->value, 0, node_numel(s) * sizeof(float));
        }
    return NERVE_OK;
}

int nerve_graph_carried_states(const nerve_graph *g, int *out, int cap)
{
    int count = 0;
    for (int id = 0; g && id < g->n_nodes; id++) {
        const node *n = &g->nodes[id];
        if (n->op != &op_rnn || !n->attr.rnn.carry)
            continue;
        for (int slot = RNN_H0; slot <= RNN_C0; slot++)
            if (n->attr.rnn.slot[slot] >= 0) {
                if (out && count < cap)
                    out[count] = n->in[n->attr.rnn.slot[slot]];
                count++;
            }
    }
    return count;
}

int nerve_graph_reset_carry(nerve_graph *g)
{
    int layers = 0;
    for (int id = 0; g && id < g->n_nodes; id++)
        if (is_rnn(g, id) && g->nodes[id].attr.rnn.carry) {
            nerve_rnn_reset_carry(g, id);
            layers++;
        }
    return layers;
}

void nerve_graph_set_carry_in_eval(nerve_graph *g, int on)
{
    if (g)
        g->carry_in_eval = on != 0;
}

/* ---- rnn_state: the final state [D, N, H] of an rnn node (attr.rnn_state.which: 0 h, 1 C) */

static int state_infer(nerve_graph *g, node *n)
{
    node *r = node_input(g, n, 0);
    if (r->op != &op_rnn)
        return op_shape_error(n, "input must be an rnn node");
    if (n->attr.rnn_state.which == 1 && r->attr.rnn.cell != NERVE_CELL_LSTM)
        return op_shape_error(n, "only LSTM cells have a cell state");
    n->ndim = 3;
    n->dims[0] = r->attr.rnn.dirs;
    n->dims[1] = node_input(g, r, 0)->dims[1];
    n->dims[2] = r->attr.rnn.hidden;
    return NERVE_OK;
}

/* The rnn node's final-state array of direction d and its gradient deposit. */
static void state_arrays(nerve_graph *g, const node *n, int d, float **fin, float **dfin)
{
    node *r = node_input(g, n, 0), *x = node_input(g, r, 0);
    int T = x->dims[0], N = x->dims[1], H = r->attr.rnn.hidden, cellstate = n->attr.rnn_state.which;
    rnn_buf b;
    rnn_layout(r, T, N, r->scratch, &b);
    size_t NH = (size_t)N * H;
    *fin = (cellstate ? b.dir[d].c : b.dir[d].h) + (size_t)T * NH;
    *dfin = (cellstate ? b.dfin_c : b.dfin_h) + (size_t)d * NH;
}

static void state_forward(nerve_graph *g, node *n)
{
    size_t NH = (size_t)n->dims[1] * n->dims[2];
    for (int d = 0; d < n->dims[0]; d++) {
        float *fin, *dfin;
        state_arrays(g, n, d, &fin, &dfin);
        memcpy(n->value + d * NH, fin, NH * sizeof(float));
    }
}

/* Deposits the gradient for the rnn node, whose backward runs later (it was created
 * earlier) and starts its time loop from it. */
static void state_backward(nerve_graph *g, node *n)
{
    size_t NH = (size_t)n->dims[1] * n->dims[2];
    for (int d = 0; d < n->dims[0]; d++) {
        float *fin, *dfin;
        state_arrays(g, n, d, &fin, &dfin);
        for (size_t k = 0; k < NH; k++)
            dfin[k] += n->grad[d * NH + k];
    }
}

static const op_def op_rnn_state = {"rnn_state", state_infer, NULL, state_forward, state_backward, 0};

int nerve_rnn_state(nerve_graph *g, int rnn, int which)
{
    if (!is_rnn(g, rnn))
        return nerve_set_error(NERVE_ERR_ARG, "rnn_state: node %d is not an rnn node", rnn);
    if (which != 0 && which != 1)
        return nerve_set_error(NERVE_ERR_ARG, "rnn_state: which = %d; 0 (hidden) or 1 (cell)", which);
    node_attr at;
    memset(&at, 0, sizeof at);
    at.rnn_state.which = which;
    return graph_add_op(g, &op_rnn_state, 1, &rnn, &at, which ? "rnn_cell_state" : "rnn_state");
}

/* ---- embedding: y[..., :] = table[index, :]; inputs indices, table [V, E] --------------- */

/* Row of the table for an index value, or -1 when it is not in 0..V-1 (NaN included). */
static int embedding_row(float v, int V) { return v >= 0.0f && v < (float)V ? (int)v : -1; }

static int embedding_infer(nerve_graph *g, node *n)
{
    node *idx = node_input(g, n, 0), *table = node_input(g, n, 1);
    if (table->ndim != 2)
        return op_shape_error(n, "table must be 2-D [V, E], got rank %d", table->ndim);
    if (idx->ndim >= NERVE_MAX_DIMS)
        return op_shape_error(n, "indices of rank %d leave no room for the embedding axis",
                              idx->ndim);
    node_copy_shape(n, idx);
    n->dims[n->ndim++] = table->dims[1];
    return NERVE_OK;
}

static void embedding_forward(nerve_graph *g, node *n)
{
    node *idx = node_input(g, n, 0), *table = node_input(g, n, 1);
    int V = table->dims[0], E = table->dims[1];
    size_t count = node_numel(idx);
    for (size_t k = 0; k < count; k++) {
        int row = embedding_row(idx->value[k], V);
        float *y = n->value + k * E;
        if (row >= 0)
            memcpy(y, table->value + (size_t)row * E, (size_t)E * sizeof(float));
        else
            memset(y, 0, (size_t)E * sizeof(float));
    }
}

/* Indices get no gradient (they are not continuous); out-of-range ones touch nothing. */
static void embedding_backward(nerve_graph *g, node *n)
{
    node *idx = node_input(g, n, 0), *table = node_input(g, n, 1);
    float *dt = node_input_grad(g, n, 1);
    if (!dt)
        return;
    int V = table->dims[0], E = table->dims[1];
    size_t count = node_numel(idx);
    for (size_t k = 0; k < count; k++) {
        int row = embedding_row(idx->value[k], V);
        if (row < 0)
            continue;
        const float *dy = n->grad + k * E;
        float *d = dt + (size_t)row * E;
        for (int j = 0; j < E; j++)
            d[j] += dy[j];
    }
}

static const op_def op_embedding = {"embedding", embedding_infer, NULL, embedding_forward,
                                    embedding_backward, 0};

int nerve_embedding(nerve_graph *g, int indices, int table)
{
    return graph_add_op(g, &op_embedding, 2, (int[]){indices, table}, NULL, "embedding");
}

const op_def *const ops_recurrent[] = {&op_rnn, &op_rnn_params, &op_rnn_state, &op_embedding,
                                       NULL};
