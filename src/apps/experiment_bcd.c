/* Block coordinate descent for a deep MLP (Zeng, Lau, Lin & Yao, ICML 2019; COURSE.md §4,
 * slides/001) against SGD on the same network and initialisation.
 *
 * The network: V_0 = X (d_0 x n, one column per image), U_i = W_i V_(i-1) and V_i = relu(U_i)
 * for the N - 1 hidden layers, V_N = W_N V_(N-1) the output, fitted to one-hot targets Y by
 * squares. Every layer's pre-activation and output become variables of their own, tied to
 * the weights by quadratic penalties:
 *
 *   F = 1/2 ||V_N - Y||^2 + gamma/2 ||V_N - W_N V_(N-1)||^2
 *       + sum_(i<N) [ gamma/2 ||V_i - relu(U_i)||^2 + rho/2 ||U_i - W_i V_(i-1)||^2 ].
 *
 * One iteration updates the blocks from the output back to the input, each to the exact
 * minimiser of F in that block plus a proximal term alpha/2 ||B - B_old||^2:
 *   V_N = (Y + gamma W_N V_(N-1) + alpha V_N) / (1 + gamma + alpha);
 *   W_N: W (gamma V V^T + alpha I) = gamma V_N V^T + alpha W_N  (V = V_(N-1));
 *   for i = N-1 .. 1:
 *     V_i: (gamma I + c W^T W + alpha I) V = gamma relu(U_i) + c W^T T + alpha V_i, where the
 *          next block is (W, T, c) = (W_N, V_N, gamma) or (W_(i+1), U_(i+1), rho);
 *     U_i: per entry, argmin_u gamma/2 (v - relu(u))^2 + beta/2 (u - b)^2 with beta = rho + alpha,
 *          b = (rho a + alpha u_old) / beta, a = (W_i V_(i-1)): the better of the branch u >= 0,
 *          u = max(0, (gamma v + beta b) / (gamma + beta)), and the branch u <= 0, u = min(0, b);
 *     W_i: W (rho V V^T + alpha I) = rho U_i V^T + alpha W_i  (V = V_(i-1)).
 * No gradient appears, so nothing vanishes through the depth. The linear systems are solved
 * by Cholesky factorisation in doubles.
 *
 * The comparison: the same network (ReLU, PyTorch's default initialisation U(-1/sqrt(in),
 * 1/sqrt(in)), which shrinks the signal about sqrt(6) times per layer), trained by nerve's SGD
 * with softmax cross-entropy, and by SGD from He's initialisation for reference; accuracy is
 * the plain forward pass's, on the training images and on test images. */
#include "experiment.h"

#include "../core/core.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MAX_LAYERS = 16 };

typedef struct {
    int L;                 /* weight layers: L - 1 hidden, then the output */
    int d[MAX_LAYERS + 1]; /* d[0] inputs ... d[L] classes */
    int n;                 /* training columns */
    float *W[MAX_LAYERS + 1], *U[MAX_LAYERS + 1], *V[MAX_LAYERS + 1]; /* 1-based; V[0] = X */
    float *Y;
    double *A, *B; /* scratch: a d x d system and its right-hand sides */
    float *T, *S;  /* scratch matrices */
} bcd_net;

/* C [m, n] = A [m, k] B [k, n] (op: transposes) */
static void gemm(int ta, int tb, int m, int n, int k, const float *a, const float *b, float *c, float beta)
{
    kern_sgemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

/* Solves X M = R for X [r, d] given SPD M [d, d] (both in doubles, M overwritten by its
 * Cholesky factor, R by X). */
static int solve_right(double *m, int d, double *r, int rows)
{
    for (int j = 0; j < d; j++) {
        double s = m[(size_t)j * d + j];
        for (int k = 0; k < j; k++)
            s -= m[(size_t)j * d + k] * m[(size_t)j * d + k];
        if (!(s > 0))
            return nerve_set_error(NERVE_ERR_NUMERIC, "bcd: a block's system is not positive definite");
        double l = sqrt(s);
        m[(size_t)j * d + j] = l;
        for (int i = j + 1; i < d; i++) {
            double t = m[(size_t)i * d + j];
            for (int k = 0; k < j; k++)
                t -= m[(size_t)i * d + k] * m[(size_t)j * d + k];
            m[(size_t)i * d + j] = t / l;
        }
    }
    /* X M = R  <=>  M X^T = R^T (M symmetric): L L^T x = r for each row x of X */
    for (int row = 0; row < rows; row++) {
        double *x = r + (size_t)row * d;
        for (int i = 0; i < d; i++) {
            double t = x[i];
            for (int k = 0; k < i; k++)
                t -= m[(size_t)i * d + k] * x[k];
            x[i] = t / m[(size_t)i * d + i];
        }
        for (int i = d - 1; i >= 0; i--) {
            double t = x[i];
            for (int k = i + 1; k < d; k++)
                t -= m[(size_t)k * d + i] * x[k];
            x[i] = t / m[(size_t)i * d + i];
        }
    }
    return NERVE_OK;
}

/* W (c V V^T + alpha I) = c T V^T + alpha W, with V [din, n], T [dout, n]. */
static int update_w(bcd_net *b, float *w, int dout, int din, const float *t, const float *v, float c, float alpha)
{
    gemm(0, 1, din, din, b->n, v, v, b->S, 0.0f); /* V V^T */
    for (size_t i = 0; i < (size_t)din * din; i++)
        b->A[i] = (double)c * b->S[i];
    for (int i = 0; i < din; i++)
        b->A[(size_t)i * din + i] += alpha;
    gemm(0, 1, dout, din, b->n, t, v, b->S, 0.0f); /* T V^T */
    for (size_t i = 0; i < (size_t)dout * din; i++)
        b->B[i] = (double)c * b->S[i] + (double)alpha * w[i];
    int st = solve_right(b->A, din, b->B, dout);
    for (size_t i = 0; st == NERVE_OK && i < (size_t)dout * din; i++)
        w[i] = (float)b->B[i];
    return st;
}

/* (gamma + alpha) I + c W^T W) V = gamma relu(U) + c W^T T + alpha V for V [di, n]: solved as
 * V^T M = R^T row by row (M symmetric). W [dnext, di], T [dnext, n]. */
static int update_v(bcd_net *b, float *v, int di, const float *u, const float *w, int dnext, const float *t,
                    float gamma, float c, float alpha)
{
    gemm(1, 0, di, di, dnext, w, w, b->S, 0.0f); /* W^T W */
    for (size_t i = 0; i < (size_t)di * di; i++)
        b->A[i] = (double)c * b->S[i];
    for (int i = 0; i < di; i++)
        b->A[(size_t)i * di + i] += gamma + alpha;
    gemm(1, 0, di, b->n, dnext, w, t, b->T, 0.0f); /* W^T T [di, n] */
    /* right-hand sides as rows: R^T [n, di] */
    for (int j = 0; j < b->n; j++)
        for (int i = 0; i < di; i++) {
            size_t k = (size_t)i * b->n + j;
            double relu = u[k] > 0 ? u[k] : 0;
            b->B[(size_t)j * di + i] = gamma * relu + (double)c * b->T[k] + (double)alpha * v[k];
        }
    int st = solve_right(b->A, di, b->B, b->n);
    for (int j = 0; st == NERVE_OK && j < b->n; j++)
        for (int i = 0; i < di; i++)
            v[(size_t)i * b->n + j] = (float)b->B[(size_t)j * di + i];
    return st;
}

/* U = argmin gamma/2 (V - relu(U))^2 + rho/2 (U - W V_prev)^2 + alpha/2 (U - U_old)^2, per entry. */
static void update_u(bcd_net *b, float *u, int di, const float *v, const float *w, const float *vprev, int dprev,
                     float gamma, float rho, float alpha)
{
    gemm(0, 0, di, b->n, dprev, w, vprev, b->T, 0.0f);
    double beta = (double)rho + alpha;
    for (size_t k = 0; k < (size_t)di * b->n; k++) {
        double bb = ((double)rho * b->T[k] + (double)alpha * u[k]) / beta, vv = v[k];
        double up = fmax(0.0, (gamma * vv + beta * bb) / (gamma + beta)), un = fmin(0.0, bb);
        double fp = 0.5 * gamma * (vv - up) * (vv - up) + 0.5 * beta * (up - bb) * (up - bb);
        double fn = 0.5 * gamma * vv * vv + 0.5 * beta * (un - bb) * (un - bb);
        u[k] = (float)(fp <= fn ? up : un);
    }
}

/* One BCD iteration (the blocks from the output back). */
static int bcd_iteration(bcd_net *b, float gamma, float rho, float alpha)
{
    int L = b->L, n = b->n;
    float *vn = b->V[L], *vprev = b->V[L - 1];
    gemm(0, 0, b->d[L], n, b->d[L - 1], b->W[L], vprev, b->T, 0.0f);
    for (size_t k = 0; k < (size_t)b->d[L] * n; k++)
        vn[k] = (b->Y[k] + gamma * b->T[k] + alpha * vn[k]) / (1 + gamma + alpha);
    int st = update_w(b, b->W[L], b->d[L], b->d[L - 1], vn, vprev, gamma, alpha);
    for (int i = L - 1; i >= 1 && st == NERVE_OK; i--) {
        int last = i + 1 == L;
        st = update_v(b, b->V[i], b->d[i], b->U[i], b->W[i + 1], b->d[i + 1], last ? b->V[L] : b->U[i + 1], gamma,
                      last ? gamma : rho, alpha);
        if (st != NERVE_OK)
            break;
        update_u(b, b->U[i], b->d[i], b->V[i], b->W[i], b->V[i - 1], b->d[i - 1], gamma, rho, alpha);
        st = update_w(b, b->W[i], b->d[i], b->d[i - 1], b->U[i], b->V[i - 1], rho, alpha);
    }
    return st;
}

/* Accuracy of the plain forward pass of weights W on x [n, d0] (rows), labels y. */
static double forward_accuracy(bcd_net *b, const float *x, const float *y, int n)
{
    int width = 0;
    for (int i = 0; i <= b->L; i++)
        width = b->d[i] > width ? b->d[i] : width;
    float *h = nerve_xmalloc((size_t)n * width * sizeof(float)), *g = nerve_xmalloc((size_t)n * width * sizeof(float));
    if (!h || !g) {
        nerve_xfree(h), nerve_xfree(g);
        return NAN;
    }
    memcpy(h, x, (size_t)n * b->d[0] * sizeof(float));
    for (int i = 1; i <= b->L; i++) {
        gemm(0, 1, n, b->d[i], b->d[i - 1], h, b->W[i], g, 0.0f); /* rows: h W^T */
        if (i < b->L)
            for (size_t k = 0; k < (size_t)n * b->d[i]; k++)
                g[k] = g[k] > 0 ? g[k] : 0;
        float *t = h;
        h = g, g = t;
    }
    long correct = 0;
    int C = b->d[b->L];
    for (int s = 0; s < n; s++) {
        int best = 0;
        for (int c = 1; c < C; c++)
            if (h[(size_t)s * C + c] > h[(size_t)s * C + best])
                best = c;
        correct += best == (int)y[s];
    }
    nerve_xfree(h), nerve_xfree(g);
    return (double)correct / n;
}

static void bcd_free(bcd_net *b)
{
    for (int i = 0; i <= MAX_LAYERS; i++)
        nerve_xfree(b->W[i]), nerve_xfree(b->U[i]), nerve_xfree(b->V[i]);
    nerve_xfree(b->Y), nerve_xfree(b->A), nerve_xfree(b->B), nerve_xfree(b->T), nerve_xfree(b->S);
    memset(b, 0, sizeof *b);
}

/* The network's weights from an exp_net of the same layers (no biases), then V and U by a
 * forward pass over the training set x [n, d0]. */
static int bcd_init(bcd_net *b, exp_net *net, const float *x, const float *y, int n)
{
    int width = 0;
    b->n = n;
    for (int i = 0; i <= b->L; i++)
        width = b->d[i] > width ? b->d[i] : width;
    size_t big = (size_t)width * (width > n ? width : n);
    b->A = nerve_xmalloc(big * sizeof(double));
    b->B = nerve_xmalloc(big * sizeof(double));
    b->T = nerve_xmalloc(big * sizeof(float));
    b->S = nerve_xmalloc(big * sizeof(float));
    b->Y = nerve_xcalloc((size_t)b->d[b->L] * n, sizeof(float));
    if (!b->A || !b->B || !b->T || !b->S || !b->Y)
        return NERVE_ERR_NOMEM;
    for (int s = 0; s < n; s++)
        b->Y[(size_t)(int)y[s] * n + s] = 1.0f;
    b->V[0] = nerve_xmalloc((size_t)b->d[0] * n * sizeof(float));
    if (!b->V[0])
        return NERVE_ERR_NOMEM;
    for (int s = 0; s < n; s++) /* columns are samples */
        for (int j = 0; j < b->d[0]; j++)
            b->V[0][(size_t)j * n + s] = x[(size_t)s * b->d[0] + j];
    for (int i = 1; i <= b->L; i++) {
        b->W[i] = nerve_xmalloc((size_t)b->d[i] * b->d[i - 1] * sizeof(float));
        b->U[i] = nerve_xmalloc((size_t)b->d[i] * n * sizeof(float));
        b->V[i] = nerve_xmalloc((size_t)b->d[i] * n * sizeof(float));
        if (!b->W[i] || !b->U[i] || !b->V[i])
            return NERVE_ERR_NOMEM;
        char name[32];
        snprintf(name, sizeof name, "connected%d.weight", i);
        int node = nerve_node_find(net->g, name);
        if (node < 0)
            return nerve_set_error(NERVE_ERR_STATE, "bcd: no parameter %s", name);
        memcpy(b->W[i], nerve_value(net->g, node).data, (size_t)b->d[i] * b->d[i - 1] * sizeof(float));
        gemm(0, 0, b->d[i], n, b->d[i - 1], b->W[i], b->V[i - 1], b->U[i], 0.0f);
        for (size_t k = 0; k < (size_t)b->d[i] * n; k++)
            b->V[i][k] = i < b->L ? (b->U[i][k] > 0 ? b->U[i][k] : 0) : b->U[i][k];
    }
    return NERVE_OK;
}

/* The cfg of the MLP (no biases: BCD's formulation has none). */
static void mlp_cfg(char *out, size_t size, int hidden, int width, const char *init, uint64_t seed, float lr)
{
    int k = snprintf(out, size,
                     "[net]\nheight=28\nwidth=28\nchannels=1\nbatch=100\nseed=%llu\noptimizer=sgd\n"
                     "learning_rate=%g\nclasses=10\n\n",
                     (unsigned long long)seed, (double)lr);
    for (int i = 0; i < hidden && k > 0 && (size_t)k < size; i++)
        k += snprintf(out + k, size - (size_t)k, "[connected]\noutput=%d\nactivation=relu\nbias=0\ninit=%s\n\n", width,
                      init);
    if (k > 0 && (size_t)k < size)
        snprintf(out + k, size - (size_t)k, "[connected]\noutput=10\nbias=0\ninit=%s\n\n[softmax]\n", init);
}

int exp_bcd(const nerve_experiment_options *o)
{
    int quick = o->quick;
    int n_train = o->train ? o->train : quick ? 300 : 2000, n_test = quick ? 200 : 2000;
    int hidden = quick ? 3 : 8, width = quick ? 32 : 128, iters = o->epochs ? o->epochs : quick ? 3 : 40;
    float gamma = 1.0f, rho = 1.0f, alpha = 1.0f, lr = 0.1f;
    nerve_dataset train, test;
    int st = exp_fashion(o, &train, n_train, 1, &test, n_test);
    if (st != NERVE_OK)
        return st;
    char cfg[8192];
    exp_net torch_net, he_net;
    memset(&torch_net, 0, sizeof torch_net);
    memset(&he_net, 0, sizeof he_net);
    bcd_net b;
    memset(&b, 0, sizeof b);
    double *ep = NULL, *curve[6] = {NULL};
    nerve_optim *opt[2] = {NULL, NULL};
    nerve_batcher bat[2];
    memset(bat, 0, sizeof bat);
    mlp_cfg(cfg, sizeof cfg, hidden, width, "torch", o->seed, lr);
    if ((st = exp_net_build(&torch_net, cfg, "bcd-mlp")) != NERVE_OK)
        goto done;
    mlp_cfg(cfg, sizeof cfg, hidden, width, "he", o->seed, lr);
    if ((st = exp_net_build(&he_net, cfg, "bcd-mlp-he")) != NERVE_OK)
        goto done;
    b.L = hidden + 1;
    b.d[0] = 784;
    for (int i = 1; i <= hidden; i++)
        b.d[i] = width;
    b.d[b.L] = 10;
    if ((st = bcd_init(&b, &torch_net, train.x, train.y, train.n)) != NERVE_OK)
        goto done;
    ep = nerve_xmalloc((size_t)(iters + 1) * sizeof(double));
    for (int k = 0; k < 6; k++)
        curve[k] = nerve_xmalloc((size_t)(iters + 1) * sizeof(double));
    exp_net *nets[2] = {&torch_net, &he_net};
    for (int k = 0; k < 2; k++) {
        nerve_optim_config oc = nerve_optim_default(NERVE_OPT_SGD);
        opt[k] = nerve_optim_create(nets[k]->g, &oc);
        if (!opt[k] || (st = nerve_batcher_init(&bat[k], &train, nets[k]->batch, 1, o->seed + 21)) != NERVE_OK) {
            st = st ? st : nerve_last_status();
            goto done;
        }
    }
    if (!ep || !curve[5]) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    exp_say(o, "bcd: MLP 784-%d x %d-10 (ReLU, no biases, PyTorch's default initialisation), %d Fashion-MNIST "
               "training images (%d a class), %d test images; BCD: full batch, gamma %g, rho %g, alpha %g; SGD: "
               "softmax cross-entropy, lr %g, batch 100 (one epoch = one pass, as one BCD iteration); SGD from He's "
               "initialisation for reference",
            width, hidden, train.n, train.n / 10, test.n, (double)gamma, (double)rho, (double)alpha, (double)lr);
    exp_say(o, "%5s %14s %14s %14s %14s %14s %14s", "pass", "BCD train", "BCD test", "SGD train", "SGD test",
            "SGD(He) train", "SGD(He) test");
    for (int it = 0; it <= iters; it++) {
        if (it > 0) {
            if ((st = bcd_iteration(&b, gamma, rho, alpha)) != NERVE_OK)
                goto done;
            for (int k = 0; k < 2; k++)
                if ((st = exp_train_epoch(nets[k], opt[k], &bat[k], lr, NULL, NULL, NULL, NULL)) != NERVE_OK)
                    goto done;
        }
        ep[it] = it;
        curve[0][it] = 100 * forward_accuracy(&b, train.x, train.y, train.n);
        curve[1][it] = 100 * forward_accuracy(&b, test.x, test.y, test.n);
        for (int k = 0; k < 2; k++) {
            double a = NAN, t = NAN;
            if ((st = exp_accuracy(nets[k], &train, &a)) != NERVE_OK || (st = exp_accuracy(nets[k], &test, &t)) != NERVE_OK)
                goto done;
            curve[2 + 2 * k][it] = 100 * a, curve[3 + 2 * k][it] = 100 * t;
        }
        if (it < 5 || it % 5 == 0 || it == iters)
            exp_say(o, "%5d %13.2f%% %13.2f%% %13.2f%% %13.2f%% %13.2f%% %13.2f%%", it, curve[0][it], curve[1][it],
                    curve[2][it], curve[3][it], curve[4][it], curve[5][it]);
    }
    exp_figure(o, "bcd.bcd_train_acc", curve[0][iters]);
    exp_figure(o, "bcd.bcd_test_acc", curve[1][iters]);
    exp_figure(o, "bcd.sgd_train_acc", curve[2][iters]);
    exp_figure(o, "bcd.sgd_test_acc", curve[3][iters]);
    exp_figure(o, "bcd.sgd_he_train_acc", curve[4][iters]);
    exp_figure(o, "bcd.sgd_he_test_acc", curve[5][iters]);
    {
        nerve_series s[6] = {{"BCD train", curve[0]},     {"BCD test", curve[1]},
                             {"SGD train", curve[2]},     {"SGD test", curve[3]},
                             {"SGD (He init) train", curve[4]}, {"SGD (He init) test", curve[5]}};
        st = exp_plot(o, "bcd.svg", "BCD vs SGD: a deep ReLU MLP on Fashion-MNIST (accuracy %)",
                      "pass over the training images", ep, iters + 1, s, 6);
    }
done:
    for (int k = 0; k < 2; k++) {
        nerve_optim_free(opt[k]);
        nerve_batcher_free(&bat[k]);
    }
    nerve_xfree(ep);
    for (int k = 0; k < 6; k++)
        nerve_xfree(curve[k]);
    bcd_free(&b);
    exp_net_free(&torch_net);
    exp_net_free(&he_net);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    return st;
}
