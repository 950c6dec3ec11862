/* Vanishing and exploding gradients (COURSE.md §2, §10), measured with nerve's graphs.
 *
 * Deep MLPs: 20 dense layers of 64 units on 64 N(0, 1) inputs with random labels: the norm of
 * the back-propagated error dL/da_l at each layer's pre-activation, for tanh with weights
 * N(0, g^2 / fan_in) at gains g = 0.5, 1, 2 and for the sigmoid (g = 1, and g = 4, which makes
 * its slope 1/4 at the origin up). Below the critical gain the gradient shrinks layer by layer
 * towards the input; tanh above it is chaotic and the gradient grows; the sigmoid's slope of at
 * most 1/4 makes it vanish.
 *
 * An RNN h_t = tanh(W_hh h_{t-1} + W_ih x_t), H = 32 units, T = 40 steps, the loss r.h_T: the
 * norm of dL/dx_t against T - 1 - t, for W_hh = s Q (Q orthogonal, every singular value s)
 * and W_hh Gaussian scaled to a largest singular value s. At x = 0 every state is 0 and
 * tanh' = 1, so dL/dx_t = W_ih^T (W_hh^T)^(T-1-t) r: for s Q the norm goes exactly as
 * s^(T-1-t); for the Gaussian matrix as its spectral radius (below s). With N(0, 1) inputs
 * the saturated units (tanh' < 1) shrink it further: sigma_max < 1 guarantees vanishing
 * (||dh_T/dh_t|| <= sigma_max^(T-t)), sigma_max > 1 only allows exploding. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { DEPTH = 20, WIDTH = 64, RNN_H = 32, RNN_F = 8, RNN_T = 40, RNN_N = 16 };

/* The norms of the errors delta_l = dL/da_l at the DEPTH pre-activations of a deep MLP at
 * its initialisation (dL/dW_l = delta_l h_(l-1)^T adds the forward signal's own decay). */
static int mlp_gradients(nerve_act_type act, float gain, uint64_t seed, double *norms)
{
    nerve_graph *g = nerve_graph_create();
    if (!g)
        return NERVE_ERR_NOMEM;
    nerve_rng rng;
    nerve_rng_seed(&rng, seed);
    int dims[2] = {1, WIDTH}, ldims[1] = {1};
    int x = nerve_input(g, "x", 2, dims), labels = nerve_input(g, "labels", 1, ldims), h = x, w[DEPTH];
    for (int l = 0; l < DEPTH; l++) {
        char name[32];
        snprintf(name, sizeof name, "dense%d", l + 1);
        nerve_init init = {NERVE_INIT_NORMAL, 0.0f, gain / sqrtf((float)WIDTH)};
        h = nerve_layer_dense(g, h, WIDTH, 1, init, &rng, name);
        w[l] = h; /* the pre-activation a_l: its gradient is the back-propagated error delta_l */
        h = nerve_activation(g, h, nerve_act_default(act));
    }
    nerve_init head = {NERVE_INIT_NORMAL, 0.0f, 1.0f / sqrtf((float)WIDTH)};
    int logits = nerve_layer_dense(g, h, 10, 1, head, &rng, "head");
    int loss = nerve_softmax_ce_loss(g, logits, labels, -1, 0.0f);
    nerve_graph_keep_buffers(g, 1);
    int st = loss < 0 ? loss : nerve_graph_compile(g, 64);
    if (st == NERVE_OK) {
        float *xv = nerve_value(g, x).data, *yv = nerve_value(g, labels).data;
        for (int i = 0; i < 64 * WIDTH; i++)
            xv[i] = nerve_rng_normal(&rng);
        for (int i = 0; i < 64; i++)
            yv[i] = (float)(i % 10);
        if ((st = nerve_forward(g, loss)) == NERVE_OK && (st = nerve_backward(g, loss)) == NERVE_OK)
            for (int l = 0; l < DEPTH; l++) {
                nerve_tensor gr = nerve_grad(g, w[l]);
                double s = 0;
                for (size_t i = 0; i < nerve_tensor_numel(&gr); i++)
                    s += (double)gr.data[i] * gr.data[i];
                norms[l] = sqrt(s);
            }
    }
    nerve_graph_free(g);
    return st;
}

/* An n x n orthogonal matrix (Gram-Schmidt on Gaussian columns) times s into m (row-major). */
static void scaled_orthogonal(int n, double s, nerve_rng *rng, float *m)
{
    double q[RNN_H][RNN_H];
    for (int j = 0; j < n; j++) {
        for (;;) {
            for (int i = 0; i < n; i++)
                q[j][i] = nerve_rng_normal(rng);
            for (int k = 0; k < j; k++) {
                double d = 0;
                for (int i = 0; i < n; i++)
                    d += q[j][i] * q[k][i];
                for (int i = 0; i < n; i++)
                    q[j][i] -= d * q[k][i];
            }
            double norm = 0;
            for (int i = 0; i < n; i++)
                norm += q[j][i] * q[j][i];
            if (norm > 1e-6) {
                norm = sqrt(norm);
                for (int i = 0; i < n; i++)
                    q[j][i] /= norm;
                break;
            }
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            m[i * n + j] = (float)(s * q[j][i]);
}

/* The largest singular value of an n x n matrix (power iteration on M^T M). */
static double sigma_max(int n, const float *m)
{
    double v[RNN_H], u[RNN_H], s = 0;
    for (int i = 0; i < n; i++)
        v[i] = 1.0 / sqrt(n) * (1 + 0.01 * i);
    for (int it = 0; it < 500; it++) {
        for (int i = 0; i < n; i++) {
            u[i] = 0;
            for (int j = 0; j < n; j++)
                u[i] += m[i * n + j] * v[j];
        }
        double norm = 0;
        for (int j = 0; j < n; j++) {
            v[j] = 0;
            for (int i = 0; i < n; i++)
                v[j] += m[i * n + j] * u[i];
            norm += v[j] * v[j];
        }
        norm = sqrt(norm);
        s = sqrt(norm);
        for (int j = 0; j < n; j++)
            v[j] /= norm;
    }
    return s;
}

/* ||dL/dx_t|| for t = 0..T-1 of a tanh RNN whose W_hh is s Q (orthogonal) or a Gaussian matrix
 * scaled to sigma_max s; inputs zero or N(0, 1). */
static int rnn_gradients(double s, int gaussian, int zero_input, uint64_t seed, double *norms)
{
    nerve_graph *g = nerve_graph_create();
    if (!g)
        return NERVE_ERR_NOMEM;
    nerve_rng rng;
    nerve_rng_seed(&rng, seed);
    int xd[3] = {1, RNN_T, RNN_F}, perm[3] = {1, 0, 2}, rd[2] = {1, RNN_H};
    int x = nerve_input(g, "x", 3, xd);
    int tm = nerve_transpose(g, x, perm);
    nerve_rnn_config rc = {NERVE_CELL_RNN, RNN_H, 0, 0, 0, 0};
    int y = nerve_layer_rnn(g, tm, -1, &rc, 0, &rng, "rnn");
    int r = nerve_state(g, "r", 2, rd);
    int loss = nerve_sum(g, nerve_mul(g, y, r), NERVE_AXIS_ALL, 0);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, RNN_N);
    if (st == NERVE_OK) {
        float *whh = nerve_value(g, nerve_node_find(g, "rnn.w_hh")).data;
        float *wih = nerve_value(g, nerve_node_find(g, "rnn.w_ih")).data;
        memset(nerve_value(g, nerve_node_find(g, "rnn.b_ih")).data, 0, RNN_H * sizeof(float));
        memset(nerve_value(g, nerve_node_find(g, "rnn.b_hh")).data, 0, RNN_H * sizeof(float));
        if (gaussian) {
            for (int i = 0; i < RNN_H * RNN_H; i++)
                whh[i] = nerve_rng_normal(&rng);
            double sm = sigma_max(RNN_H, whh);
            for (int i = 0; i < RNN_H * RNN_H; i++)
                whh[i] = (float)(whh[i] * s / sm);
        } else {
            scaled_orthogonal(RNN_H, s, &rng, whh);
        }
        for (int i = 0; i < RNN_H * RNN_F; i++)
            wih[i] = nerve_rng_normal(&rng) / sqrtf((float)RNN_F);
        float *rv = nerve_value(g, r).data, *xv = nerve_value(g, x).data;
        for (int i = 0; i < RNN_H; i++)
            rv[i] = nerve_rng_normal(&rng) / sqrtf((float)RNN_H);
        for (int i = 0; i < RNN_N * RNN_T * RNN_F; i++)
            xv[i] = zero_input ? 0.0f : nerve_rng_normal(&rng);
        if ((st = nerve_forward(g, loss)) == NERVE_OK && (st = nerve_backward(g, loss)) == NERVE_OK) {
            const float *gx = nerve_grad(g, x).data; /* [N, T, F] */
            for (int t = 0; t < RNN_T; t++) {
                double q = 0;
                for (int n = 0; n < RNN_N; n++)
                    for (int f = 0; f < RNN_F; f++) {
                        double v = gx[((size_t)n * RNN_T + t) * RNN_F + f];
                        q += v * v;
                    }
                norms[t] = sqrt(q);
            }
        }
    }
    nerve_graph_free(g);
    return st;
}

int exp_gradients(const nerve_experiment_options *o)
{
    static const struct {
        nerve_act_type act;
        float gain;
        const char *label;
    } nets[] = {{NERVE_ACT_TANH, 0.5f, "tanh g=0.5"},
                {NERVE_ACT_TANH, 1.0f, "tanh g=1"},
                {NERVE_ACT_TANH, 2.0f, "tanh g=2"},
                {NERVE_ACT_SIGMOID, 1.0f, "sigmoid g=1"},
                {NERVE_ACT_SIGMOID, 4.0f, "sigmoid g=4"}};
    enum { N_NETS = 5 };
    double norms[N_NETS][DEPTH], lx[DEPTH], curves[N_NETS][DEPTH];
    exp_say(o, "gradients: a %d-layer MLP (%d units a layer, weights N(0, g^2/%d), biases 0) on 64 N(0, 1) inputs "
               "with random labels; the norm of the error dL/da_l at each layer's pre-activation at initialisation",
            DEPTH, WIDTH, WIDTH);
    exp_say(o, "%-12s %12s %12s %12s %16s", "network", "layer 1", "layer 10", "layer 20", "layer 1 / layer 20");
    for (int k = 0; k < N_NETS; k++) {
        int st = mlp_gradients(nets[k].act, nets[k].gain, o->seed + 3, norms[k]);
        if (st != NERVE_OK)
            return st;
        for (int l = 0; l < DEPTH; l++)
            curves[k][l] = log10(norms[k][l]), lx[l] = l + 1;
        double ratio = norms[k][0] / norms[k][DEPTH - 1];
        exp_say(o, "%-12s %12.3g %12.3g %12.3g %16.3g", nets[k].label, norms[k][0], norms[k][9], norms[k][DEPTH - 1],
                ratio);
        char key[64];
        snprintf(key, sizeof key, "gradients.mlp_first_over_last.%s_g%g", nerve_act_name(nets[k].act),
                 (double)nets[k].gain);
        exp_figure(o, key, ratio);
    }
    nerve_series ms[N_NETS];
    for (int k = 0; k < N_NETS; k++)
        ms[k] = (nerve_series){nets[k].label, curves[k]};
    int st = exp_plot(o, "gradients_mlp.svg", "log10 ||dL/da_l|| per layer of a 20-layer MLP at initialisation",
                      "layer (1 = next to the input)", lx, DEPTH, ms, N_NETS);
    if (st != NERVE_OK)
        return st;

    static const double sv[] = {0.5, 0.9, 1.0, 1.1, 1.5, 2.0};
    enum { N_S = 6 };
    double rx[RNN_T], rcurve[N_S][RNN_T], gn[RNN_T];
    exp_say(o, "RNN: tanh, %d units, %d steps, loss r.h_T; per-step factor = (||dL/dx_0|| / ||dL/dx_T-1||)^(1/%d)",
            RNN_H, RNN_T, RNN_T - 1);
    exp_say(o, "%10s %22s %22s %24s", "sigma_max", "s Q, x = 0", "s Q, x ~ N(0,1)", "Gaussian W, x = 0");
    for (int k = 0; k < N_S; k++) {
        double factor[3];
        for (int mode = 0; mode < 3; mode++) {
            if ((st = rnn_gradients(sv[k], mode == 2, mode != 1, o->seed + 5 + k, gn)) != NERVE_OK)
                return st;
            factor[mode] = pow(gn[0] / gn[RNN_T - 1], 1.0 / (RNN_T - 1));
            if (mode == 0)
                for (int t = 0; t < RNN_T; t++)
                    rx[t] = RNN_T - 1 - t, rcurve[k][t] = log10(gn[t]);
        }
        exp_say(o, "%10g %22.4f %22.4f %24.4f", sv[k], factor[0], factor[1], factor[2]);
        char key[64];
        snprintf(key, sizeof key, "gradients.rnn_factor.orthogonal_s%g", sv[k]);
        exp_figure(o, key, factor[0]);
        snprintf(key, sizeof key, "gradients.rnn_factor.saturated_s%g", sv[k]);
        exp_figure(o, key, factor[1]);
        snprintf(key, sizeof key, "gradients.rnn_factor.gaussian_s%g", sv[k]);
        exp_figure(o, key, factor[2]);
    }
    /* the curves against the distance T - 1 - t, nearest step first */
    double rxs[RNN_T], rcs[N_S][RNN_T];
    for (int t = 0; t < RNN_T; t++) {
        rxs[t] = rx[RNN_T - 1 - t];
        for (int k = 0; k < N_S; k++)
            rcs[k][t] = rcurve[k][RNN_T - 1 - t];
    }
    char labels[N_S][32];
    nerve_series rs[N_S];
    for (int k = 0; k < N_S; k++) {
        snprintf(labels[k], sizeof labels[k], "sigma_max %g", sv[k]);
        rs[k] = (nerve_series){labels[k], rcs[k]};
    }
    return exp_plot(o, "gradients_rnn.svg", "RNN: log10 ||dL/dx_t|| against T-1-t (W_hh = sigma Q, x = 0)",
                    "steps back from the loss", rxs, RNN_T, rs, N_S);
}
