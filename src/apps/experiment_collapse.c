/* Neural collapse (Papyan, Han & Donoho 2020; COURSE.md §11): an MLP trained on a balanced
 * Fashion-MNIST subset well past zero training error, and after every epoch the collapse
 * measures of its last hidden layer's features h_i (labels y_i, C classes, N samples):
 *   NC1  Tr(Sigma_W Sigma_B^+) / C: Sigma_W = 1/N sum (h_i - mu_{y_i})(h_i - mu_{y_i})^T the
 *        within-class covariance, Sigma_B = 1/C sum (mu_c - mu_G)(mu_c - mu_G)^T the
 *        between-class one (mu_G the mean of the class means), ^+ the pseudo-inverse;
 *   NC2  equal norms: std / mean of ||mu_c - mu_G||; equal angles: std of the cosines between
 *        the centred means, and the mean of |cos + 1/(C - 1)| (0 for a simplex ETF);
 *   NC3  || W / ||W|| - M / ||M|| ||^2 (Frobenius): the classifier's rows against the
 *        centred means;
 *   NC4  the fraction of training samples where the network's class differs from the
 *        nearest class mean's.
 * Sigma_B^+ comes from the C x C Gram matrix of the centred means: with M^T M = V L V^T and
 * u_k = M v_k / sqrt(l_k), Sigma_B^+ = C sum_k u_k u_k^T / l_k over the non-zero l_k, so
 * NC1 = sum_k (u_k^T Sigma_W u_k) / l_k. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char mlp_cfg[] = "[net]\nheight=28\nwidth=28\nchannels=1\nbatch=%d\nseed=%llu\n"
                              "optimizer=%s\nlearning_rate=%g\ndecay=%g\nclasses=10\n\n"
                              "[connected]\noutput=%d\nactivation=relu\n\n"
                              "[connected]\noutput=%d\nactivation=relu\n\n"
                              "[connected]\nname=features\noutput=%d\nactivation=relu\n\n"
                              "[connected]\nname=classifier\noutput=10\n\n[softmax]\nlabel_smoothing=%g\n";

int exp_collapse_stats(const float *h, const float *y, int n, int d, int C, const float *w, const float *b,
                       exp_nc_stats *s)
{
    double *mu = nerve_xcalloc((size_t)C * d, sizeof(double)), *mg = nerve_xcalloc((size_t)d, sizeof(double));
    double *gram = nerve_xcalloc((size_t)C * C, sizeof(double)), *lam = nerve_xcalloc((size_t)C, sizeof(double));
    double *vec = nerve_xcalloc((size_t)C * C, sizeof(double)), *u = nerve_xcalloc((size_t)C * d, sizeof(double));
    double *proj = nerve_xcalloc((size_t)C, sizeof(double));
    int *count = nerve_xcalloc((size_t)C, sizeof(int));
    int st = NERVE_OK;
    if (C < 2 || C > 64) {
        st = nerve_set_error(NERVE_ERR_ARG, "collapse: %d classes (2 to 64 are measured)", C);
        goto done;
    }
    if (!mu || !mg || !gram || !lam || !vec || !u || !proj || !count) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int c = (int)y[i];
        count[c]++;
        for (int j = 0; j < d; j++)
            mu[(size_t)c * d + j] += h[(size_t)i * d + j];
    }
    for (int c = 0; c < C; c++) {
        if (!count[c]) {
            st = nerve_set_error(NERVE_ERR_ARG, "collapse: class %d has no training sample", c);
            goto done;
        }
        for (int j = 0; j < d; j++) {
            mu[(size_t)c * d + j] /= count[c];
            mg[j] += mu[(size_t)c * d + j] / C;
        }
    }
    /* centred means M (rows) in place of mu from here on are mu - mg; keep mu for NC4 */
    for (int a = 0; a < C; a++)
        for (int c = 0; c <= a; c++) {
            double g = 0;
            for (int j = 0; j < d; j++)
                g += (mu[(size_t)a * d + j] - mg[j]) * (mu[(size_t)c * d + j] - mg[j]);
            gram[(size_t)a * C + c] = gram[(size_t)c * C + a] = g;
        }
    if ((st = nerve_symeig(C, gram, lam, vec)) != NERVE_OK)
        goto done;
    int rank = 0;
    for (int k = 0; k < C; k++)
        if (lam[k] > lam[0] * 1e-9 && lam[k] > 0)
            rank++;
    for (int k = 0; k < rank; k++) {
        double inv = 1.0 / sqrt(lam[k]);
        for (int c = 0; c < C; c++)
            for (int j = 0; j < d; j++)
                u[(size_t)k * d + j] += vec[(size_t)k * C + c] * (mu[(size_t)c * d + j] - mg[j]) * inv;
    }
    double nc1 = 0;
    long mismatch = 0, wrong = 0;
    for (int i = 0; i < n; i++) {
        const float *hi = h + (size_t)i * d;
        int c = (int)y[i];
        for (int k = 0; k < rank; k++) {
            double p = 0;
            for (int j = 0; j < d; j++)
                p += u[(size_t)k * d + j] * (hi[j] - mu[(size_t)c * d + j]);
            nc1 += p * p / lam[k];
        }
        /* the network's class and the nearest class mean's */
        int net = 0, ncc = 0;
        double best = -INFINITY, near = INFINITY;
        for (int a = 0; a < C; a++) {
            double z = b[a], dist = 0;
            for (int j = 0; j < d; j++) {
                z += (double)w[(size_t)a * d + j] * hi[j];
                double e = hi[j] - mu[(size_t)a * d + j];
                dist += e * e;
            }
            if (z > best)
                best = z, net = a;
            if (dist < near)
                near = dist, ncc = a;
        }
        mismatch += net != ncc;
        wrong += net != c;
    }
    s->nc1 = nc1 / n;
    s->nc4 = (double)mismatch / n;
    s->train_err = (double)wrong / n;
    /* NC2: norms and angles of the centred means */
    double norm[64], mean_norm = 0, var_norm = 0;
    for (int c = 0; c < C; c++) {
        double q = 0;
        for (int j = 0; j < d; j++)
            q += (mu[(size_t)c * d + j] - mg[j]) * (mu[(size_t)c * d + j] - mg[j]);
        norm[c] = sqrt(q);
        mean_norm += norm[c] / C;
    }
    for (int c = 0; c < C; c++)
        var_norm += (norm[c] - mean_norm) * (norm[c] - mean_norm) / C;
    s->equinorm = sqrt(var_norm) / mean_norm;
    double cs = 0, cs2 = 0, dev = 0;
    int pairs = 0;
    for (int a = 0; a < C; a++)
        for (int c = a + 1; c < C; c++) {
            double dot = 0;
            for (int j = 0; j < d; j++)
                dot += (mu[(size_t)a * d + j] - mg[j]) * (mu[(size_t)c * d + j] - mg[j]);
            double cosv = dot / (norm[a] * norm[c]);
            cs += cosv, cs2 += cosv * cosv, dev += fabs(cosv + 1.0 / (C - 1));
            pairs++;
        }
    s->equiangle = sqrt(fmax(cs2 / pairs - (cs / pairs) * (cs / pairs), 0));
    s->maxangle = dev / pairs;
    /* NC3: self-duality of the classifier and the centred means */
    double wn = 0, mn = 0;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < d; j++) {
            double m = mu[(size_t)c * d + j] - mg[j];
            wn += (double)w[(size_t)c * d + j] * w[(size_t)c * d + j];
            mn += m * m;
        }
    wn = sqrt(wn), mn = sqrt(mn);
    double nc3 = 0;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < d; j++) {
            double e = w[(size_t)c * d + j] / wn - (mu[(size_t)c * d + j] - mg[j]) / mn;
            nc3 += e * e;
        }
    s->nc3 = nc3;
done:
    nerve_xfree(mu), nerve_xfree(mg), nerve_xfree(gram), nerve_xfree(lam);
    nerve_xfree(vec), nerve_xfree(u), nerve_xfree(proj), nerve_xfree(count);
    return st;
}

int exp_collapse(const nerve_experiment_options *o)
{
    int quick = o->quick;
    int n_train = o->train ? o->train : quick ? 200 : 500, n_test = quick ? 200 : 0;
    int epochs = o->epochs ? o->epochs : quick ? 4 : 400, width = quick ? 64 : 256;
    /* the rate drops tenfold for the last fifth of the run; label smoothing gives the loss a
       finite optimum (every sample of a class at the same logits), which weight decay alone
       approaches too slowly here */
    float lr = 0.05f, decay = 5e-4f, late = 0.8f, smoothing = 0.2f;
    int batch = 32;
    const char *optname = "momentum";
    nerve_dataset train, test;
    int st = exp_fashion(o, &train, n_train, 1, &test, n_test);
    if (st != NERVE_OK)
        return st;
    char cfg[sizeof mlp_cfg + 128];
    snprintf(cfg, sizeof cfg, mlp_cfg, batch, (unsigned long long)o->seed, optname, (double)lr, (double)decay, width,
             width, width, (double)smoothing);
    exp_net net;
    nerve_optim *opt = NULL;
    nerve_batcher b;
    memset(&b, 0, sizeof b);
    float *h = NULL;
    double *ep = NULL, *series[7] = {NULL};
    if ((st = exp_net_build(&net, cfg, "collapse-mlp")) != NERVE_OK)
        goto done_data;
    int wnode = nerve_node_find(net.g, "classifier.weight"), bnode = nerve_node_find(net.g, "classifier.bias");
    int C = train.n_classes, d = width;
    h = nerve_xmalloc((size_t)train.n * d * sizeof(float));
    ep = nerve_xmalloc((size_t)epochs * sizeof(double));
    for (int k = 0; k < 7; k++)
        series[k] = nerve_xmalloc((size_t)epochs * sizeof(double));
    opt = nerve_optim_create(net.g, &nerve_model_config(net.m)->optim);
    if (!h || !ep || !series[6] || !opt || wnode < 0 || bnode < 0) {
        st = opt ? NERVE_ERR_NOMEM : nerve_last_status();
        goto done;
    }
    if ((st = nerve_batcher_init(&b, &train, net.batch, 1, o->seed * 17 + 3)) != NERVE_OK)
        goto done;
    exp_say(o, "collapse: MLP 784-%d-%d-%d-10 (ReLU), %d Fashion-MNIST training images (%d a class), SGD with "
               "momentum 0.9, batch %d, lr %g (x0.1 from epoch %d), weight decay %g, label smoothing %g, %d epochs; "
               "features: the last hidden layer",
            d, d, d, train.n, train.n / C, batch, (double)lr, (int)(late * epochs) + 1, (double)decay,
            (double)smoothing, epochs);
    exp_say(o, "%5s %9s %11s %10s %10s %10s %9s %9s", "epoch", "train err", "NC1", "NC2 norms", "NC2 cos sd",
            "|cos+1/9|", "NC3", "NC4");
    int zero_epoch = -1;
    for (int e = 0; e < epochs; e++) {
        float rate = lr * (e >= (int)(late * epochs) ? 0.1f : 1.0f);
        if ((st = exp_train_epoch(&net, opt, &b, rate, NULL, NULL, NULL, NULL)) != NERVE_OK ||
            (st = nerve_model_features(net.m, &train, "features", h)) != NERVE_OK)
            goto done;
        exp_nc_stats s = {0, 0, 0, 0, 0, 0, 0};
        if ((st = exp_collapse_stats(h, train.y, train.n, d, C, nerve_value(net.g, wnode).data,
                                 nerve_value(net.g, bnode).data, &s)) != NERVE_OK)
            goto done;
        ep[e] = e + 1;
        series[0][e] = log10(s.nc1);
        series[1][e] = s.equinorm;
        series[2][e] = s.maxangle;
        series[3][e] = s.nc3;
        series[4][e] = s.nc4;
        series[5][e] = s.train_err;
        series[6][e] = s.nc1;
        int newly_zero = zero_epoch < 0 && s.train_err == 0;
        if (newly_zero)
            zero_epoch = e;
        if (newly_zero || e < 10 || (e + 1) % 10 == 0 || e == epochs - 1)
            exp_say(o, "%5d %8.2f%% %11.4g %10.4f %10.4f %10.4f %9.4f %8.2f%%%s", e + 1, 100 * s.train_err, s.nc1,
                    s.equinorm, s.equiangle, s.maxangle, s.nc3, 100 * s.nc4,
                    newly_zero ? "  <- zero training error" : "");
    }
    double test_acc = NAN;
    if ((st = exp_accuracy(&net, &test, &test_acc)) != NERVE_OK)
        goto done;
    exp_figure(o, "collapse.test_acc", 100 * test_acc);
    exp_figure(o, "collapse.final_train_err", 100 * series[5][epochs - 1]);
    exp_figure(o, "collapse.nc1_end", series[6][epochs - 1]);
    exp_figure(o, "collapse.nc2_equinorm_end", series[1][epochs - 1]);
    exp_figure(o, "collapse.nc2_maxangle_end", series[2][epochs - 1]);
    exp_figure(o, "collapse.nc3_end", series[3][epochs - 1]);
    exp_figure(o, "collapse.nc4_mismatch_end_pct", 100 * series[4][epochs - 1]);
    if (zero_epoch >= 0) {
        exp_figure(o, "collapse.zero_error_epoch", zero_epoch + 1);
        exp_figure(o, "collapse.nc1_at_zero_error", series[6][zero_epoch]);
        exp_figure(o, "collapse.nc1_fall", series[6][zero_epoch] / series[6][epochs - 1]);
    } else {
        exp_say(o, "(the training error never reached zero)");
    }
    nerve_series s1[1] = {{"log10 NC1", series[0]}};
    if ((st = exp_plot(o, "collapse_nc1.svg", "Neural collapse NC1: log10 Tr(Sw Sb+)/C per epoch", "epoch", ep,
                       epochs, s1, 1)) != NERVE_OK)
        goto done;
    nerve_series s2[5] = {{"NC2 std/mean of norms", series[1]},
                          {"NC2 mean |cos + 1/(C-1)|", series[2]},
                          {"NC3 ||W/|W| - M/|M| ||^2", series[3]},
                          {"NC4 mismatch with NCC", series[4]},
                          {"training error", series[5]}};
    st = exp_plot(o, "collapse_nc.svg", "Neural collapse NC2-NC4 per epoch", "epoch", ep, epochs, s2, 5);
done:
    nerve_batcher_free(&b);
    nerve_optim_free(opt);
    nerve_xfree(h), nerve_xfree(ep);
    for (int k = 0; k < 7; k++)
        nerve_xfree(series[k]);
    exp_net_free(&net);
done_data:
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    return st;
}
