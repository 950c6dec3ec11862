/* Recurrent family: the fused rnn operator (RNN, LSTM and its peephole/coupled variants,
 * GRU in both forms), rnn_state, the layer builder with truncated-BPTT carry, embedding.
 * Checked against PyTorch's nn.RNN/nn.LSTM/nn.GRU (tests/data/rnn_reference.h, made by
 * tests/gen_rnn_reference.py), the course's LSTM vectors, a double-precision restatement
 * of the cells written here, and finite-difference gradient checks. */
#include "test.h"

#include "data/rnn_reference.h"

#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static int gates_of(int cell) { return cell == NERVE_CELL_LSTM ? 4 : cell == NERVE_CELL_GRU ? 3 : 1; }

static void fill_uniform(float *x, size_t n, float scale, nerve_rng *r)
{
    for (size_t k = 0; k < n; k++)
        x[k] = scale * (2.0f * nerve_rng_uniform(r) - 1.0f);
}

/* A leaf (PARAM or STATE) of the given shape holding `data` (or U(-scale, scale)). */
static int leaf(nerve_graph *g, int kind, const char *name, int ndim, const int *dims,
                const float *data, float scale, nerve_rng *r)
{
    int id = kind == NERVE_NODE_PARAM ? nerve_param(g, name, ndim, dims)
                                      : nerve_state(g, name, ndim, dims);
    if (id < 0)
        return id;
    nerve_tensor t = nerve_value(g, id);
    if (data)
        memcpy(t.data, data, nerve_tensor_numel(&t) * sizeof(float));
    else
        fill_uniform(t.data, nerve_tensor_numel(&t), scale, r);
    return id;
}

/* sum(a * w) for a fixed (STATE) weight w shaped like a. */
static int weighted_sum(nerve_graph *g, int a, const float *w, nerve_rng *r)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, a, &nd, dims);
    int ws = leaf(g, NERVE_NODE_STATE, "loss_w", nd, dims, w, 1.0f, r);
    return nerve_sum(g, nerve_mul(g, a, ws), NERVE_AXIS_ALL, 0);
}

/* First k with |got - want| > tol + tol |want|, or -1. */
static long first_mismatch(const float *got, const float *want, size_t n, double tol)
{
    for (size_t k = 0; k < n; k++)
        if (!(fabs((double)got[k] - want[k]) <= tol + tol * fabs(want[k])))
            return (long)k;
    return -1;
}

#define CHECK_CLOSE(got, want, n, tol)                                                   \
    do {                                                                                 \
        long bad_ = first_mismatch((got), (want), (n), (tol));                           \
        CHECK_MSG(bad_ < 0, "%s[%ld] = %.8g, expected %.8g", #got, bad_,                 \
                  bad_ < 0 ? 0.0 : (double)(got)[bad_], bad_ < 0 ? 0.0 : (double)(want)[bad_]); \
    } while (0)

/* A network around one rnn node: x, h0, c0 and the parameters are PARAMs (so every one of
 * them is gradient-checked), the loss is sum(y wy) + sum(h_n wh) + sum(c_n wc) over the
 * parts asked for. */
typedef struct net_spec {
    nerve_rnn_config cfg;
    int T, N, F;
    const float *lengths; /* NULL: all T */
    int h0, c0;           /* trainable initial states */
    int use_y, use_h, use_c;
    uint64_t seed;
} net_spec;

typedef struct rnn_net {
    nerve_graph *g;
    int x, h0, c0, lengths, y, hn, cn, loss;
    nerve_rnn_params p;
} rnn_net;

/* Parameters drawn first, so nets with the same cfg, F and seed share them. */
static int make_params(nerve_graph *g, const nerve_rnn_config *cfg, int F, nerve_rng *r,
                       nerve_rnn_params *p)
{
    int H = cfg->hidden, GH = gates_of(cfg->cell) * H;
    for (int d = 0; d < 2; d++)
        p->w_ih[d] = p->w_hh[d] = p->b_ih[d] = p->b_hh[d] = p->peephole[d] = -1;
    for (int d = 0; d < (cfg->bidirectional ? 2 : 1); d++) {
        p->w_ih[d] = leaf(g, NERVE_NODE_PARAM, "w_ih", 2, (int[]){GH, F}, NULL, 0.6f, r);
        p->w_hh[d] = leaf(g, NERVE_NODE_PARAM, "w_hh", 2, (int[]){GH, H}, NULL, 0.6f, r);
        p->b_ih[d] = leaf(g, NERVE_NODE_PARAM, "b_ih", 1, (int[]){GH}, NULL, 0.6f, r);
        p->b_hh[d] = leaf(g, NERVE_NODE_PARAM, "b_hh", 1, (int[]){GH}, NULL, 0.6f, r);
        if (cfg->cell == NERVE_CELL_LSTM && (cfg->lstm_flags & NERVE_LSTM_PEEPHOLE))
            p->peephole[d] = leaf(g, NERVE_NODE_PARAM, "peephole", 2, (int[]){3, H}, NULL, 0.6f, r);
    }
    return NERVE_OK;
}

static int build_net(rnn_net *m, const net_spec *s)
{
    nerve_rng r;
    nerve_rng_seed(&r, s->seed);
    int D = s->cfg.bidirectional ? 2 : 1, H = s->cfg.hidden;
    memset(m, 0, sizeof *m);
    m->g = nerve_graph_create();
    nerve_graph *g = m->g;
    make_params(g, &s->cfg, s->F, &r, &m->p);
    m->x = leaf(g, NERVE_NODE_PARAM, "x", 3, (int[]){s->T, s->N, s->F}, NULL, 1.0f, &r);
    m->h0 = s->h0 ? leaf(g, NERVE_NODE_PARAM, "h0", 3, (int[]){D, s->N, H}, NULL, 0.5f, &r) : -1;
    m->c0 = s->c0 ? leaf(g, NERVE_NODE_PARAM, "c0", 3, (int[]){D, s->N, H}, NULL, 0.5f, &r) : -1;
    m->lengths = s->lengths ? leaf(g, NERVE_NODE_STATE, "lengths", 1, (int[]){s->N}, s->lengths, 0, &r)
                            : -1;
    m->y = nerve_rnn(g, m->x, m->lengths, m->h0, m->c0, &m->p, &s->cfg);
    if (m->y < 0)
        return m->y;
    m->hn = nerve_rnn_state(g, m->y, 0);
    m->cn = s->cfg.cell == NERVE_CELL_LSTM ? nerve_rnn_state(g, m->y, 1) : -1;
    int terms[3], k = 0;
    if (s->use_y)
        terms[k++] = weighted_sum(g, m->y, NULL, &r);
    if (s->use_h)
        terms[k++] = weighted_sum(g, m->hn, NULL, &r);
    if (s->use_c && m->cn >= 0)
        terms[k++] = weighted_sum(g, m->cn, NULL, &r);
    m->loss = terms[0];
    for (int i = 1; i < k; i++)
        m->loss = nerve_add(g, m->loss, terms[i]);
    if (m->loss < 0)
        return m->loss;
    return nerve_graph_compile(g, 1);
}

static nerve_rnn_config config(nerve_cell_type cell, int H, int flags, int bidir, int retseq)
{
    nerve_rnn_config c;
    memset(&c, 0, sizeof c);
    c.cell = cell;
    c.hidden = H;
    if (cell == NERVE_CELL_LSTM)
        c.lstm_flags = flags;
    else if (cell == NERVE_CELL_GRU)
        c.gru_form = flags;
    c.bidirectional = bidir;
    c.return_sequences = retseq;
    return c;
}

/* Builds the net and checks every gradient (x, h0, c0, all parameters) numerically. */
static int gradcheck_spec(const net_spec *s)
{
    rnn_net m;
    int st = build_net(&m, s);
    if (st == NERVE_OK)
        st = nerve_gradcheck(m.g, m.loss, 1e-2f, 1e-3f, 1e-2f);
    nerve_graph_free(m.g);
    return st;
}

static net_spec spec(nerve_rnn_config cfg, const float *lengths, uint64_t seed)
{
    net_spec s = {cfg, 3, 3, 2, lengths, 1, cfg.cell == NERVE_CELL_LSTM, 1, 1, 1, seed};
    return s;
}

static const float some_lengths[3] = {3, 1, 2};

/* ---- PyTorch agreement -------------------------------------------------------------------- */

static void check_reference(const char *name)
{
    const rnn_reference *r = NULL;
    for (size_t k = 0; k < sizeof rnn_references / sizeof rnn_references[0]; k++)
        if (!strcmp(rnn_references[k].name, name))
            r = &rnn_references[k];
    CHECK(r != NULL);
    nerve_graph *g = nerve_graph_create();
    int T = r->T, N = r->N, F = r->F, H = r->H, D = r->D, GH = gates_of(r->cell) * H;
    nerve_rnn_config cfg = config(r->cell, H, 0, D == 2, 1);
    cfg.gru_form = NERVE_GRU_LINEAR_BEFORE_RESET; /* PyTorch's GRU */
    nerve_rnn_params p = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    for (int d = 0; d < D; d++) {
        p.w_ih[d] = leaf(g, NERVE_NODE_PARAM, "w_ih", 2, (int[]){GH, F}, r->w_ih[d], 0, NULL);
        p.w_hh[d] = leaf(g, NERVE_NODE_PARAM, "w_hh", 2, (int[]){GH, H}, r->w_hh[d], 0, NULL);
        p.b_ih[d] = leaf(g, NERVE_NODE_PARAM, "b_ih", 1, (int[]){GH}, r->b_ih[d], 0, NULL);
        p.b_hh[d] = leaf(g, NERVE_NODE_PARAM, "b_hh", 1, (int[]){GH}, r->b_hh[d], 0, NULL);
    }
    int x = leaf(g, NERVE_NODE_PARAM, "x", 3, (int[]){T, N, F}, r->x, 0, NULL);
    int h0 = leaf(g, NERVE_NODE_PARAM, "h0", 3, (int[]){D, N, H}, r->h0, 0, NULL);
    int c0 = r->c0 ? leaf(g, NERVE_NODE_PARAM, "c0", 3, (int[]){D, N, H}, r->c0, 0, NULL) : -1;
    int len = r->lengths ? leaf(g, NERVE_NODE_STATE, "len", 1, (int[]){N}, r->lengths, 0, NULL) : -1;
    int y = nerve_rnn(g, x, len, h0, c0, &p, &cfg);
    CHECK_OK(y);
    int hn = nerve_rnn_state(g, y, 0), cn = c0 >= 0 ? nerve_rnn_state(g, y, 1) : -1;
    int loss = nerve_add(g, weighted_sum(g, y, r->wy, NULL), weighted_sum(g, hn, r->wh, NULL));
    if (cn >= 0)
        loss = nerve_add(g, loss, weighted_sum(g, cn, r->wc, NULL));
    CHECK_OK(loss);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    const double tol = 1e-5;
    size_t TNDH = (size_t)T * N * D * H, DNH = (size_t)D * N * H;
    CHECK_CLOSE(nerve_value(g, y).data, r->y, TNDH, tol);
    CHECK_CLOSE(nerve_value(g, hn).data, r->h_n, DNH, tol);
    CHECK_CLOSE(nerve_grad(g, x).data, r->dx, (size_t)T * N * F, tol);
    CHECK_CLOSE(nerve_grad(g, h0).data, r->dh0, DNH, tol);
    if (cn >= 0) {
        CHECK_CLOSE(nerve_value(g, cn).data, r->c_n, DNH, tol);
        CHECK_CLOSE(nerve_grad(g, c0).data, r->dc0, DNH, tol);
    }
    for (int d = 0; d < D; d++) {
        CHECK_CLOSE(nerve_grad(g, p.w_ih[d]).data, r->dw_ih[d], (size_t)GH * F, tol);
        CHECK_CLOSE(nerve_grad(g, p.w_hh[d]).data, r->dw_hh[d], (size_t)GH * H, tol);
        CHECK_CLOSE(nerve_grad(g, p.b_ih[d]).data, r->db_ih[d], (size_t)GH, tol);
        CHECK_CLOSE(nerve_grad(g, p.b_hh[d]).data, r->db_hh[d], (size_t)GH, tol);
    }
    nerve_graph_free(g);
}

TEST(rnn_tanh_matches_pytorch) { check_reference("rnn"); }
TEST(rnn_lstm_matches_pytorch) { check_reference("lstm"); }
TEST(rnn_lstm_bidirectional_matches_pytorch) { check_reference("lstm_bidir"); }
TEST(rnn_lstm_bidirectional_lengths_match_pytorch_packed) { check_reference("lstm_bidir_len"); }
TEST(rnn_gru_matches_pytorch_linear_before_reset) { check_reference("gru"); }
TEST(rnn_gru_bidirectional_lengths_match_pytorch_packed) { check_reference("gru_bidir_len"); }

/* ---- the course's LSTM vectors ------------------------------------------------------------- */

/* One LSTM step, N = 1, F = 1, H = 2, zero weights: the gates are sigma/tanh of the biases.
 * Returns C_t (and h_t) for C_{t-1} = [-0.5, 0.2]. */
static int lstm_forced_step(const float i[2], const float f[2], const float g_[2],
                            const float o[2], float c_out[2], float h_out[2])
{
    nerve_graph *g = nerve_graph_create();
    nerve_rnn_config cfg = config(NERVE_CELL_LSTM, 2, 0, 0, 1);
    nerve_rnn_params p = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    p.w_ih[0] = nerve_param(g, "w_ih", 2, (int[]){8, 1});
    p.w_hh[0] = nerve_param(g, "w_hh", 2, (int[]){8, 2});
    p.b_ih[0] = nerve_param(g, "b_ih", 1, (int[]){8});
    float *b = nerve_value(g, p.b_ih[0]).data;
    /* a gate value v in (0,1) needs the logit log(v/(1-v)); 0 and 1 are +-30 (exact in
     * float after the sigmoid to ~1e-13) */
    for (int j = 0; j < 2; j++) {
        const float *gate[3] = {i, f, o};
        const int row[3] = {0, 2, 6};
        for (int k = 0; k < 3; k++) {
            float v = gate[k][j];
            b[row[k] + j] = v <= 0.0f ? -30.0f : v >= 1.0f ? 30.0f : logf(v / (1.0f - v));
        }
        b[4 + j] = atanhf(g_[j]);
    }
    int x = nerve_param(g, "x", 3, (int[]){1, 1, 1});
    int c0 = nerve_param(g, "c0", 3, (int[]){1, 1, 2});
    nerve_value(g, c0).data[0] = -0.5f;
    nerve_value(g, c0).data[1] = 0.2f;
    int y = nerve_rnn(g, x, -1, -1, c0, &p, &cfg);
    int c = nerve_rnn_state(g, y, 1);
    int st = c < 0 ? c : nerve_graph_compile(g, 1);
    if (st == NERVE_OK)
        st = nerve_forward(g, -1);
    if (st == NERVE_OK) {
        memcpy(c_out, nerve_value(g, c).data, 2 * sizeof(float));
        memcpy(h_out, nerve_value(g, y).data, 2 * sizeof(float));
    }
    nerve_graph_free(g);
    return st;
}

TEST(rnn_lstm_course_vectors)
{
    const float f[2] = {0.1f, 1.0f}, i[2] = {0.8f, 0.0f}, cand[2] = {0.9f, -0.75f};
    const float o[2] = {0.5f, 0.25f}, none[2] = {0.0f, 0.0f};
    float c[2], h[2];
    /* input gate shut: C_t = f * C_{t-1} = [-0.05, 0.2] */
    CHECK_OK(lstm_forced_step(none, f, cand, o, c, h));
    CHECK_NEAR(c[0], -0.05, 1e-6);
    CHECK_NEAR(c[1], 0.2, 1e-6);
    /* forget gate shut: C_t = i * C~ = [0.72, 0] */
    CHECK_OK(lstm_forced_step(i, none, cand, o, c, h));
    CHECK_NEAR(c[0], 0.72, 1e-6);
    CHECK_NEAR(c[1], 0.0, 1e-6);
    /* both: C_t = [0.67, 0.2], h_t = o * tanh(C_t) */
    CHECK_OK(lstm_forced_step(i, f, cand, o, c, h));
    CHECK_NEAR(c[0], 0.67, 1e-6);
    CHECK_NEAR(c[1], 0.2, 1e-6);
    CHECK_NEAR(h[0], 0.5 * tanh(0.67), 1e-6);
    CHECK_NEAR(h[1], 0.25 * tanh(0.2), 1e-6);
}

/* ---- the variants against a double-precision restatement --------------------------------- */

static double sig(double z) { return 1.0 / (1.0 + exp(-z)); }

/* pre[r] = b_ih[r] + b_hh[r] + W_ih[r,:] x + W_hh[r,:] h (rows r0..r0+n) */
static void affine_rows(double *pre, const float *wih, const float *whh, const float *bih,
                        const float *bhh, const float *x, const double *h, int F, int H, int r0, int n)
{
    for (int r = r0; r < r0 + n; r++) {
        double s = (double)bih[r] + bhh[r];
        for (int k = 0; k < F; k++)
            s += (double)wih[(size_t)r * F + k] * x[k];
        for (int k = 0; k < H; k++)
            s += (double)whh[(size_t)r * H + k] * h[k];
        pre[r - r0] = s;
    }
}

/* One LSTM step of one sequence (peephole p may be NULL). */
static void ref_lstm_step(const float *w[4], const float *p, int coupled, const float *x,
                          double *h, double *c, int F, int H)
{
    double pre[4 * 64], cn[64];
    affine_rows(pre, w[0], w[1], w[2], w[3], x, h, F, H, 0, 4 * H);
    for (int j = 0; j < H; j++) {
        double ai = pre[j] + (p ? p[j] * c[j] : 0), af = pre[H + j] + (p ? p[H + j] * c[j] : 0);
        double f = sig(af), i = coupled ? 1 - f : sig(ai);
        cn[j] = f * c[j] + i * tanh(pre[2 * H + j]);
    }
    for (int j = 0; j < H; j++) {
        double o = sig(pre[3 * H + j] + (p ? p[2 * H + j] * cn[j] : 0));
        c[j] = cn[j];
        h[j] = o * tanh(cn[j]);
    }
}

/* One course-form GRU step: n = tanh(W_in x + b_in + W_hn (r h) + b_hn). */
static void ref_gru_course_step(const float *w[4], const float *x, double *h, int F, int H)
{
    double rz[2 * 64], rh[64], n[64], zero_h[64] = {0};
    affine_rows(rz, w[0], w[1], w[2], w[3], x, h, F, H, 0, 2 * H);
    for (int j = 0; j < H; j++)
        rh[j] = sig(rz[j]) * h[j];
    affine_rows(n, w[0], w[1], w[2], w[3], x, zero_h, F, H, 2 * H, H); /* input side + biases */
    for (int j = 0; j < H; j++) {
        double s = n[j];
        for (int k = 0; k < H; k++)
            s += (double)w[1][(size_t)(2 * H + j) * H + k] * rh[k];
        n[j] = tanh(s);
    }
    for (int j = 0; j < H; j++) {
        double z = sig(rz[H + j]);
        h[j] = (1 - z) * n[j] + z * h[j];
    }
}

/* Runs the net's forward and compares y (every step) and the final states with the
 * reference cells stepped here from h0 (and c0). */
static void check_against_double(nerve_rnn_config cfg)
{
    net_spec s = spec(cfg, NULL, 17);
    rnn_net m;
    CHECK_OK(build_net(&m, &s));
    CHECK_OK(nerve_forward(m.g, -1));
    nerve_graph *g = m.g;
    int T = s.T, N = s.N, F = s.F, H = cfg.hidden;
    const float *w[4] = {nerve_value(g, m.p.w_ih[0]).data, nerve_value(g, m.p.w_hh[0]).data,
                         nerve_value(g, m.p.b_ih[0]).data, nerve_value(g, m.p.b_hh[0]).data};
    const float *peep = m.p.peephole[0] >= 0 ? nerve_value(g, m.p.peephole[0]).data : NULL;
    const float *x = nerve_value(g, m.x).data, *y = nerve_value(g, m.y).data;
    for (int i = 0; i < N; i++) {
        double h[64], c[64];
        for (int j = 0; j < H; j++) {
            h[j] = nerve_value(g, m.h0).data[i * H + j];
            c[j] = m.c0 >= 0 ? nerve_value(g, m.c0).data[i * H + j] : 0.0;
        }
        for (int t = 0; t < T; t++) {
            const float *xt = x + ((size_t)t * N + i) * F;
            if (cfg.cell == NERVE_CELL_LSTM)
                ref_lstm_step(w, peep, (cfg.lstm_flags & NERVE_LSTM_COUPLED) != 0, xt, h, c, F, H);
            else
                ref_gru_course_step(w, xt, h, F, H);
            for (int j = 0; j < H; j++)
                CHECK_NEAR(y[((size_t)t * N + i) * H + j], h[j], 1e-5);
        }
        for (int j = 0; j < H; j++) {
            CHECK_NEAR(nerve_value(g, m.hn).data[i * H + j], h[j], 1e-5);
            if (m.cn >= 0)
                CHECK_NEAR(nerve_value(g, m.cn).data[i * H + j], c[j], 1e-5);
        }
    }
    nerve_graph_free(g);
}

TEST(rnn_lstm_peephole_values)
{
    check_against_double(config(NERVE_CELL_LSTM, 4, NERVE_LSTM_PEEPHOLE, 0, 1));
}

TEST(rnn_lstm_coupled_values)
{
    check_against_double(config(NERVE_CELL_LSTM, 4, NERVE_LSTM_COUPLED, 0, 1));
    check_against_double(config(NERVE_CELL_LSTM, 4, NERVE_LSTM_COUPLED | NERVE_LSTM_PEEPHOLE, 0, 1));
}

TEST(rnn_gru_course_form_values)
{
    check_against_double(config(NERVE_CELL_GRU, 4, NERVE_GRU_COURSE, 0, 1));
}

/* ---- gradient checks ---------------------------------------------------------------------- */

TEST(rnn_gradcheck_tanh)
{
    CHECK_OK(gradcheck_spec(&(net_spec){config(NERVE_CELL_RNN, 3, 0, 0, 1), 3, 3, 2, NULL, 1, 0, 1, 1, 0, 1}));
}

TEST(rnn_gradcheck_lstm)
{
    net_spec s = spec(config(NERVE_CELL_LSTM, 3, 0, 0, 1), NULL, 2);
    CHECK_OK(gradcheck_spec(&s));
}

TEST(rnn_gradcheck_lstm_peephole)
{
    net_spec s = spec(config(NERVE_CELL_LSTM, 3, NERVE_LSTM_PEEPHOLE, 0, 1), NULL, 3);
    CHECK_OK(gradcheck_spec(&s));
}

TEST(rnn_gradcheck_lstm_coupled_and_its_unused_input_gate)
{
    net_spec s = spec(config(NERVE_CELL_LSTM, 3, NERVE_LSTM_COUPLED, 0, 1), NULL, 4);
    CHECK_OK(gradcheck_spec(&s));
    s.cfg.lstm_flags |= NERVE_LSTM_PEEPHOLE;
    CHECK_OK(gradcheck_spec(&s));
    /* the i rows (the first H of every weight) get no gradient */
    rnn_net m;
    CHECK_OK(build_net(&m, &s));
    CHECK_OK(nerve_forward(m.g, m.loss));
    CHECK_OK(nerve_backward(m.g, m.loss));
    int H = 3;
    for (int j = 0; j < H * s.F; j++)
        CHECK(nerve_grad(m.g, m.p.w_ih[0]).data[j] == 0.0f);
    for (int j = 0; j < H; j++)
        CHECK(nerve_grad(m.g, m.p.b_ih[0]).data[j] == 0.0f &&
              nerve_grad(m.g, m.p.peephole[0]).data[j] == 0.0f);
    CHECK(nerve_grad(m.g, m.p.b_ih[0]).data[H] != 0.0f); /* the f rows do */
    nerve_graph_free(m.g);
}

TEST(rnn_gradcheck_gru_both_forms)
{
    net_spec s = spec(config(NERVE_CELL_GRU, 3, NERVE_GRU_COURSE, 0, 1), NULL, 5);
    CHECK_OK(gradcheck_spec(&s));
    s.cfg.gru_form = NERVE_GRU_LINEAR_BEFORE_RESET;
    CHECK_OK(gradcheck_spec(&s));
}

TEST(rnn_gradcheck_bidirectional_with_lengths_every_cell)
{
    const nerve_rnn_config cfgs[] = {
        config(NERVE_CELL_RNN, 3, 0, 1, 1),
        config(NERVE_CELL_LSTM, 3, 0, 1, 1),
        config(NERVE_CELL_LSTM, 2, NERVE_LSTM_PEEPHOLE | NERVE_LSTM_COUPLED, 1, 1),
        config(NERVE_CELL_GRU, 3, NERVE_GRU_COURSE, 1, 1),
        config(NERVE_CELL_GRU, 3, NERVE_GRU_LINEAR_BEFORE_RESET, 1, 1),
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        net_spec s = spec(cfgs[k], some_lengths, 10 + k);
        CHECK_MSG(gradcheck_spec(&s) == NERVE_OK, "config %zu: %s", k, nerve_last_error());
    }
}

TEST(rnn_gradcheck_last_output_only)
{
    for (int cell = NERVE_CELL_RNN; cell <= NERVE_CELL_GRU; cell++) {
        net_spec s = spec(config(cell, 3, 0, 1, 0), some_lengths, 20 + cell);
        s.use_h = s.use_c = 0; /* the loss sees only y [N, D*H] */
        CHECK_MSG(gradcheck_spec(&s) == NERVE_OK, "cell %d: %s", cell, nerve_last_error());
    }
}

/* The final state alone carries the loss: its gradient must reach every weight. */
TEST(rnn_gradcheck_through_the_state_node_only)
{
    for (int cell = NERVE_CELL_RNN; cell <= NERVE_CELL_GRU; cell++) {
        net_spec s = spec(config(cell, 3, 0, 1, 1), some_lengths, 30 + cell);
        s.use_y = 0;
        CHECK_MSG(gradcheck_spec(&s) == NERVE_OK, "cell %d: %s", cell, nerve_last_error());
    }
    net_spec s = spec(config(NERVE_CELL_LSTM, 3, 0, 0, 1), NULL, 40);
    s.use_y = s.use_h = 0; /* only the cell state */
    CHECK_OK(gradcheck_spec(&s));
}

/* ---- masking and last outputs ----------------------------------------------------------- */

/* Each sequence run alone with T = its length gives the same outputs and final state as
 * the padded batch; padded steps output zeros; return_sequences 0 gives the final state. */
TEST(rnn_lengths_equal_running_each_sequence_alone)
{
    nerve_rnn_config cfg = config(NERVE_CELL_GRU, 3, NERVE_GRU_COURSE, 1, 1);
    net_spec s = spec(cfg, some_lengths, 50);
    rnn_net all;
    CHECK_OK(build_net(&all, &s));
    CHECK_OK(nerve_forward(all.g, -1));
    int T = s.T, N = s.N, F = s.F, H = 3, DH = 6;
    const float *y = nerve_value(all.g, all.y).data, *hn = nerve_value(all.g, all.hn).data;
    for (int i = 0; i < N; i++) {
        int L = (int)some_lengths[i];
        net_spec one = s;
        one.T = L;
        one.N = 1;
        one.lengths = NULL;
        rnn_net m;
        CHECK_OK(build_net(&m, &one));
        float *x1 = nerve_value(m.g, m.x).data, *h01 = nerve_value(m.g, m.h0).data;
        for (int t = 0; t < L; t++)
            memcpy(x1 + (size_t)t * F, nerve_value(all.g, all.x).data + ((size_t)t * N + i) * F,
                   (size_t)F * sizeof(float));
        for (int d = 0; d < 2; d++)
            memcpy(h01 + d * H, nerve_value(all.g, all.h0).data + ((size_t)d * N + i) * H,
                   (size_t)H * sizeof(float));
        CHECK_OK(nerve_forward(m.g, -1));
        const float *y1 = nerve_value(m.g, m.y).data, *hn1 = nerve_value(m.g, m.hn).data;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < DH; j++) {
                float got = y[((size_t)t * N + i) * DH + j];
                CHECK_NEAR(got, t < L ? y1[(size_t)t * DH + j] : 0.0f, 1e-6);
            }
        for (int d = 0; d < 2; d++)
            for (int j = 0; j < H; j++)
                CHECK_NEAR(hn[((size_t)d * N + i) * H + j], hn1[d * H + j], 1e-6);
        nerve_graph_free(m.g);
    }
    /* return_sequences 0: [N, 2H] = (forward final state, backward final state) */
    net_spec last = s;
    last.cfg.return_sequences = 0;
    rnn_net m;
    CHECK_OK(build_net(&m, &last));
    CHECK_OK(nerve_forward(m.g, -1));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(m.g, m.y, &nd, dims);
    CHECK(nd == 2 && dims[0] == N && dims[1] == DH);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < 2; d++)
            for (int j = 0; j < H; j++)
                CHECK_NEAR(nerve_value(m.g, m.y).data[(size_t)i * DH + d * H + j],
                           hn[((size_t)d * N + i) * H + j], 1e-6);
    nerve_graph_free(m.g);
    nerve_graph_free(all.g);
}

/* ---- running without allocating ------------------------------------------------------- */

TEST(rnn_training_step_allocates_nothing)
{
    net_spec s = spec(config(NERVE_CELL_LSTM, 8, NERVE_LSTM_PEEPHOLE, 1, 1), some_lengths, 60);
    rnn_net m;
    CHECK_OK(build_net(&m, &s));
    CHECK_OK(nerve_forward(m.g, m.loss)); /* warms the GEMM's packing buffers */
    CHECK_OK(nerve_backward(m.g, m.loss));
    uint64_t before = nerve_alloc_count();
    CHECK_OK(nerve_forward(m.g, m.loss));
    CHECK_OK(nerve_backward(m.g, m.loss));
    CHECK(nerve_alloc_count() == before);
    nerve_graph_free(m.g);
}

/* ---- the layer builder and truncated BPTT ------------------------------------------------ */

/* A carried (or not) LSTM layer on a batch-major input [N, T, F] turned time-major. */
typedef struct layer_net {
    nerve_graph *g;
    int in, y, hn, loss;
} layer_net;

static int build_layer(layer_net *m, int T, int F, int carry, int max_batch)
{
    nerve_rng r;
    nerve_rng_seed(&r, 77);
    m->g = nerve_graph_create();
    m->in = nerve_input(m->g, "seq", 3, (int[]){1, T, F});
    int x = nerve_transpose(m->g, m->in, (int[]){1, 0, 2});
    nerve_rnn_config cfg = config(NERVE_CELL_LSTM, 3, 0, 1, 1);
    m->y = nerve_layer_rnn(m->g, x, -1, &cfg, carry, &r, "enc");
    if (m->y < 0)
        return m->y;
    m->hn = nerve_rnn_state(m->g, m->y, 0);
    m->loss = nerve_sum(m->g, nerve_mul(m->g, m->y, m->y), NERVE_AXIS_ALL, 0);
    return nerve_graph_compile(m->g, max_batch);
}

/* seq [N, T, F] = a fixed function of (n, t, f) for t in t0..t0+T */
static void feed(layer_net *m, int N, int T, int F, int t0)
{
    float *v = nerve_value(m->g, m->in).data;
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int f = 0; f < F; f++)
                v[((size_t)n * T + t) * F + f] = sinf(0.7f * n + 1.3f * (t + t0) + 0.4f * f);
}

TEST(rnn_layer_names_shapes_and_init)
{
    layer_net m;
    CHECK_OK(build_layer(&m, 4, 2, 0, 2));
    nerve_graph *g = m.g;
    const char *names[] = {"enc.w_ih", "enc.w_hh", "enc.b_ih", "enc.b_hh", "enc.reverse.w_ih",
                           "enc.reverse.w_hh", "enc.reverse.b_ih", "enc.reverse.b_hh"};
    const int rows[] = {12, 12, 12, 12, 12, 12, 12, 12}, cols[] = {2, 3, 0, 0, 2, 3, 0, 0};
    float bound = 1.0f / sqrtf(3.0f);
    for (int k = 0; k < 8; k++) {
        int id = nerve_node_find(g, names[k]);
        CHECK_MSG(id >= 0 && nerve_node_kind(g, id) == NERVE_NODE_PARAM, "%s missing", names[k]);
        nerve_tensor t = nerve_value(g, id);
        CHECK(t.dims[0] == rows[k] && (cols[k] == 0 ? t.ndim == 1 : t.dims[1] == cols[k]));
        for (size_t j = 0; j < nerve_tensor_numel(&t); j++)
            CHECK(fabsf(t.data[j]) <= bound);
    }
    CHECK(nerve_node_find(g, "enc.h_carry") < 0);
    CHECK(!strcmp(nerve_node_op(g, m.y), "rnn") && nerve_node_find(g, "enc") == m.y);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, m.y, &nd, dims);
    CHECK(nd == 3 && dims[0] == 4 && dims[1] == 2 && dims[2] == 6);
    CHECK(nerve_layer_rnn(g, m.y, -1, &(nerve_rnn_config){NERVE_CELL_RNN, 2, 0, 0, 0, 1}, 0,
                          NULL, "late") < 0); /* compiled: no more nodes */
    nerve_graph_free(g);
}

/* Two chunks of 3 steps with carry give the outputs of one 6-step run; batch 2 of a graph
 * compiled for 3 uses the carried state's first rows; eval forwards leave it alone. */
TEST(rnn_layer_carry_continues_the_sequence)
{
    const int N = 2, F = 2, H = 3;
    layer_net whole, chunk;
    CHECK_OK(build_layer(&whole, 6, F, 0, N));
    CHECK_OK(build_layer(&chunk, 3, F, 1, 3));
    CHECK_OK(nerve_graph_set_batch(chunk.g, N));
    int hc = nerve_node_find(chunk.g, "enc.h_carry"), cc = nerve_node_find(chunk.g, "enc.c_carry");
    CHECK(hc >= 0 && cc >= 0 && nerve_node_kind(chunk.g, hc) == NERVE_NODE_STATE);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(chunk.g, hc, &nd, dims);
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == H); /* grown to max batch */

    feed(&whole, N, 6, F, 0);
    CHECK_OK(nerve_forward(whole.g, -1));
    const float *yw = nerve_value(whole.g, whole.y).data; /* [6, N, 2H] */
    feed(&chunk, N, 3, F, 0);
    CHECK_OK(nerve_forward(chunk.g, -1));
    CHECK_OK(nerve_backward(chunk.g, chunk.loss));
    CHECK(nerve_grad(chunk.g, hc).data == NULL); /* no gradient flows into the carry */
    /* the forward direction continues exactly (the backward one restarts per chunk) */
    const float *yc = nerve_value(chunk.g, chunk.y).data;
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < H; j++)
                CHECK_NEAR(yc[((size_t)t * N + i) * 2 * H + j], yw[((size_t)t * N + i) * 2 * H + j], 1e-6);
    float *carried = nerve_value(chunk.g, hc).data;
    for (int i = 0; i < N; i++) /* row i of direction 0 is the state after step 3 */
        for (int j = 0; j < H; j++)
            CHECK_NEAR(carried[i * H + j], yw[((size_t)2 * N + i) * 2 * H + j], 1e-6);
    feed(&chunk, N, 3, F, 3);
    CHECK_OK(nerve_forward(chunk.g, -1));
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < H; j++)
                CHECK_NEAR(yc[((size_t)t * N + i) * 2 * H + j],
                           yw[((size_t)(t + 3) * N + i) * 2 * H + j], 1e-5);

    /* eval mode reads the carry but does not advance it */
    float keep = carried[0];
    nerve_graph_set_training(chunk.g, 0);
    CHECK_OK(nerve_forward(chunk.g, -1));
    CHECK(carried[0] == keep);
    /* the gradient with a carried state is that of a constant initial state */
    CHECK_OK(nerve_gradcheck(chunk.g, chunk.loss, 1e-2f, 1e-3f, 1e-2f));

    CHECK_OK(nerve_rnn_reset_carry(chunk.g, chunk.y));
    for (int k = 0; k < 2 * 3 * H; k++)
        CHECK(carried[k] == 0.0f && nerve_value(chunk.g, cc).data[k] == 0.0f);
    CHECK(nerve_rnn_reset_carry(whole.g, whole.y) == NERVE_ERR_ARG); /* not carried */
    nerve_graph_free(whole.g);
    nerve_graph_free(chunk.g);
}

/* ---- errors ------------------------------------------------------------------------------- */

TEST(rnn_rejects_bad_arguments_and_shapes)
{
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    nerve_graph *g = nerve_graph_create();
    nerve_rnn_config lstm = config(NERVE_CELL_LSTM, 2, 0, 0, 1);
    nerve_rnn_config gru = config(NERVE_CELL_GRU, 2, NERVE_GRU_COURSE, 0, 1);
    nerve_rnn_params pl, pg;
    make_params(g, &lstm, 3, &r, &pl);
    make_params(g, &gru, 3, &r, &pg);
    int x = nerve_param(g, "x", 3, (int[]){4, 2, 3});
    int x_bad = nerve_param(g, "x_bad", 3, (int[]){4, 2, 5});
    int c0 = nerve_param(g, "c0", 3, (int[]){1, 2, 2});
    int h0_bad = nerve_param(g, "h0_bad", 3, (int[]){1, 3, 2});
    int count = nerve_node_count(g);
    CHECK(nerve_rnn(g, x, -1, -1, c0, &pg, &gru) == NERVE_ERR_ARG); /* c0 without LSTM */
    CHECK(nerve_rnn(g, x_bad, -1, -1, -1, &pl, &lstm) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "w_ih") != NULL);
    CHECK(nerve_rnn(g, x, -1, h0_bad, -1, &pl, &lstm) == NERVE_ERR_SHAPE);
    CHECK(nerve_rnn(g, x, -1, -1, -1, &pg, &lstm) == NERVE_ERR_SHAPE); /* 3H weights for 4 gates */
    nerve_rnn_config peep = lstm;
    peep.lstm_flags = NERVE_LSTM_PEEPHOLE;
    CHECK(nerve_rnn(g, x, -1, -1, -1, &pl, &peep) == NERVE_ERR_ARG); /* no peephole given */
    nerve_rnn_config bad = lstm;
    bad.hidden = 0;
    CHECK(nerve_rnn(g, x, -1, -1, -1, &pl, &bad) == NERVE_ERR_ARG);
    CHECK(nerve_node_count(g) == count); /* failures leave no nodes behind */
    int y = nerve_rnn(g, x, -1, -1, -1, &pg, &gru);
    CHECK_OK(y);
    CHECK(nerve_rnn_state(g, y, 1) == NERVE_ERR_SHAPE); /* a GRU has no cell state */
    CHECK(nerve_rnn_state(g, x, 0) == NERVE_ERR_ARG);
    CHECK(nerve_rnn_state(g, y, 2) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* ---- embedding ---------------------------------------------------------------------------- */

TEST(embedding_gathers_rows_and_scatters_gradients)
{
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    nerve_graph *g = nerve_graph_create();
    const int V = 5, E = 3;
    const float ids[6] = {0, 4, 4, -1, 7, 2}; /* -1 and 7 are out of range */
    int idx = leaf(g, NERVE_NODE_STATE, "idx", 2, (int[]){2, 3}, ids, 0, NULL);
    int table = leaf(g, NERVE_NODE_PARAM, "table", 2, (int[]){V, E}, NULL, 1.0f, &r);
    int y = nerve_embedding(g, idx, table);
    CHECK_OK(y);
    int loss = weighted_sum(g, y, NULL, &r);
    CHECK_OK(nerve_graph_compile(g, 1));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == E);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    const float *tv = nerve_value(g, table).data, *yv = nerve_value(g, y).data;
    const float *w = nerve_value(g, nerve_node_input(g, nerve_node_input(g, loss, 0), 1)).data;
    const float *dt = nerve_grad(g, table).data;
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < E; j++) {
            int row = (int)ids[k];
            CHECK(yv[k * E + j] == ((row >= 0 && row < V) ? tv[row * E + j] : 0.0f));
        }
    for (int j = 0; j < E; j++) {
        CHECK_NEAR(dt[4 * E + j], w[1 * E + j] + w[2 * E + j], 1e-6); /* repeated index adds */
        CHECK_NEAR(dt[0 * E + j], w[j], 1e-6);
        CHECK_NEAR(dt[2 * E + j], w[5 * E + j], 1e-6);
        CHECK(dt[1 * E + j] == 0.0f && dt[3 * E + j] == 0.0f); /* unused rows */
    }
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-4f, 1e-3f));
    nerve_graph_free(g);
}
