/* The course's experiments (nerve experiment NAME, docs/experiments.md): each one run on its
 * tiny --quick setting, its figures read back from the "key = value" lines it prints, and the
 * measures that carry the figures checked on inputs whose answer is known. */
#include "test.h"

#include "../src/apps/experiment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char text[65536];
    size_t len;
} captured;

static void capture(void *user, const char *line)
{
    captured *c = user;
    size_t n = strlen(line);
    if (c->len + n + 2 < sizeof c->text) {
        memcpy(c->text + c->len, line, n);
        c->len += n;
        c->text[c->len++] = '\n';
        c->text[c->len] = 0;
    }
}

/* The value of the line "key = value"; NAN when absent. */
static double figure(const captured *c, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = c->text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, k) && !strncmp(p + k, " = ", 3))
            return strtod(p + k + 3, NULL);
    return NAN;
}

static int run_quick(const char *name, captured *c, nerve_experiment_options *o)
{
    nerve_experiment_defaults(o);
    o->quick = 1;
    o->out_dir = test_tmpdir();
    o->print = capture;
    o->user = c;
    c->len = 0;
    c->text[0] = 0;
    return nerve_experiment_run(name, o);
}

static int file_has(const char *dir, const char *file, const char *needle, int times)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    int count = 0;
    for (const char *p = strstr(buf, needle); p; p = strstr(p + 1, needle))
        count++;
    return count >= times;
}

TEST(experiment_names_and_unknown)
{
    int n = 0;
    while (nerve_experiment_name(n))
        CHECK(nerve_experiment_summary(n++) != NULL);
    CHECK(n == 7);
    CHECK(nerve_experiment_run("lotery", NULL) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "lottery") != NULL);
}

TEST(experiment_perceptron_bound_holds)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("perceptron", c, &o));
    /* the course's worked example converges after 3 updates (COURSE.md §1) */
    CHECK_NEAR(figure(c, "perceptron.example_updates"), 3, 0);
    CHECK_NEAR(figure(c, "perceptron.bound_violations"), 0, 0);
    double ratio = figure(c, "perceptron.max_updates_over_bound");
    CHECK_MSG(ratio > 0 && ratio <= 1, "updates / bound = %g", ratio);
    CHECK(file_has(test_tmpdir(), "perceptron.svg", "<polyline", 2));
    free(c);
}

TEST(experiment_optimisers_quick)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("optimisers", c, &o));
    /* near the saddle the adaptive rules escape long before plain SGD (60 steps: never) */
    double adam = figure(c, "optimisers.saddle_steps.adam"), sgd = figure(c, "optimisers.saddle_steps.sgd");
    CHECK_MSG(adam > 0 && adam < sgd, "saddle: adam %g steps, sgd %g", adam, sgd);
    /* on the canyon Nesterov gets there within the 60 steps, SGD at its rate does not */
    double nesterov = figure(c, "optimisers.canyon_steps.nesterov");
    CHECK_MSG(nesterov > 0 && nesterov < figure(c, "optimisers.canyon_steps.sgd"), "canyon: nesterov %g", nesterov);
    /* the sweep: the good rate ends lower than the too low and the too high one */
    double good = figure(c, "optimisers.sweep_loss_lr0.1");
    CHECK_MSG(good < figure(c, "optimisers.sweep_loss_lr0.001") && good < figure(c, "optimisers.sweep_loss_lr3"),
              "sweep: good rate's loss %g", good);
    CHECK(file_has(test_tmpdir(), "optimisers_canyon.svg", "<polyline", 6));
    CHECK(file_has(test_tmpdir(), "optimisers_saddle.svg", "<polyline", 6));
    CHECK(file_has(test_tmpdir(), "optimisers_lr.svg", "<polyline", 4));
    free(c);
}

TEST(experiment_gradients_follow_sigma_max)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("gradients", c, &o));
    /* at x = 0 the RNN is linear: the per-step factor of s Q is s */
    static const double s[] = {0.5, 0.9, 1.1, 1.5, 2.0};
    for (int k = 0; k < 5; k++) {
        char key[64];
        snprintf(key, sizeof key, "gradients.rnn_factor.orthogonal_s%g", s[k]);
        double f = figure(c, key);
        CHECK_MSG(fabs(f - s[k]) < 0.05 * s[k], "%s = %g", key, f);
        /* saturated units only shrink it */
        snprintf(key, sizeof key, "gradients.rnn_factor.saturated_s%g", s[k]);
        CHECK_MSG(figure(c, key) < f, "%s = %g", key, figure(c, key));
    }
    /* sigmoid: the error vanishes towards the input; tanh at gain 2 grows */
    CHECK(figure(c, "gradients.mlp_first_over_last.logistic_g1") < 1e-6);
    CHECK(figure(c, "gradients.mlp_first_over_last.tanh_g0.5") < 1e-3);
    CHECK(figure(c, "gradients.mlp_first_over_last.tanh_g2") > 1);
    free(c);
}

TEST(experiment_collapse_measures_a_simplex)
{
    /* features at the vertices of a simplex ETF (class c: e_c - 1/C), every sample on its
       class mean, a classifier equal to the means: NC1 = NC2 = NC3 = NC4 = 0 */
    enum { C = 4, D = 6, PER = 3, N = C * PER };
    float h[N * D] = {0}, y[N], w[C * D] = {0}, b[C] = {0};
    for (int i = 0; i < N; i++) {
        int c = i % C;
        y[i] = (float)c;
        for (int j = 0; j < C; j++)
            h[i * D + j] = (j == c) - 1.0f / C;
    }
    for (int c = 0; c < C; c++)
        for (int j = 0; j < C; j++)
            w[c * D + j] = (j == c) - 1.0f / C;
    exp_nc_stats s;
    CHECK_OK(exp_collapse_stats(h, y, N, D, C, w, b, &s));
    CHECK_NEAR(s.nc1, 0, 1e-9);
    CHECK_NEAR(s.equinorm, 0, 1e-6);
    CHECK_NEAR(s.maxangle, 0, 1e-6);
    CHECK_NEAR(s.nc3, 0, 1e-6);
    CHECK_NEAR(s.nc4, 0, 0);
    CHECK_NEAR(s.train_err, 0, 0);
    /* spread each class along its mean: samples m_c (1 - 0.1), m_c, m_c (1 + 0.1) */
    for (int i = 0; i < N; i++) {
        int c = i % C, k = i / C; /* k = 0, 1, 2: -0.1, 0, +0.1 */
        for (int j = 0; j < C; j++)
            h[i * D + j] = ((j == c) - 1.0f / C) * (1.0f + 0.1f * (float)(k - 1));
    }
    CHECK_OK(exp_collapse_stats(h, y, N, D, C, w, b, &s));
    /* Sigma_W = 1/N sum_c sum_k (0.1 (k-1))^2 m_c m_c^T = (2/3) 0.01 (1/C) sum_c m_c m_c^T
       = (0.02/3) Sigma_B, so Tr(Sigma_W Sigma_B^+) / C = (0.02/3) rank / C = (0.02/3)(C-1)/C */
    CHECK_NEAR(s.nc1, 0.02 / 3 * (C - 1) / C, 1e-6);
    /* a class without samples is refused */
    y[0] = y[4] = y[8] = 1;
    CHECK(exp_collapse_stats(h, y, N, D, C, w, b, &s) == NERVE_ERR_ARG);
}

TEST(experiment_collapse_quick)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("collapse", c, &o));
    double nc1 = figure(c, "collapse.nc1_end"), nc4 = figure(c, "collapse.nc4_mismatch_end_pct");
    CHECK_MSG(nc1 > 0 && isfinite(nc1), "nc1 %g", nc1);
    CHECK_MSG(nc4 >= 0 && nc4 <= 100, "nc4 %g", nc4);
    double acc = figure(c, "collapse.test_acc");
    CHECK_MSG(acc > 15 && acc <= 100, "test accuracy %g%%", acc); /* better than chance */
    CHECK(file_has(test_tmpdir(), "collapse_nc1.svg", "<polyline", 1));
    CHECK(file_has(test_tmpdir(), "collapse_nc.svg", "<polyline", 5));
    free(c);
}

TEST(experiment_lottery_quick)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("lottery", c, &o));
    double dense = figure(c, "lottery.dense_acc");
    CHECK_MSG(dense > 30 && dense <= 100, "dense accuracy %g%%", dense);
    /* two rounds at 40% (20% of the output layer): 36.1% of the weights are left */
    CHECK(strstr(c->text, "36.1%") != NULL);
    CHECK(file_has(test_tmpdir(), "lottery.svg", "<polyline", 3));
    free(c);
}

TEST(experiment_recos_quick)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("recos", c, &o));
    /* trained on one polarity, the digits MLP does far worse on the other */
    double pp = figure(c, "recos.digits.pos_on_pos"), pn = figure(c, "recos.digits.pos_on_neg");
    double nn = figure(c, "recos.digits.neg_on_neg"), np = figure(c, "recos.digits.neg_on_pos");
    CHECK_MSG(pp > pn + 20 && nn > np + 20, "digits: %g%% / %g%% (positives), %g%% / %g%% (negatives)", pp, pn, nn, np);
    CHECK(!isnan(figure(c, "recos.fashion.both_on_neg")));
    CHECK(file_has(test_tmpdir(), "recos.svg", "<polyline", 6));
    free(c);
}

TEST(experiment_bcd_quick)
{
    captured *c = calloc(1, sizeof *c);
    nerve_experiment_options o;
    CHECK(c);
    CHECK_OK(run_quick("bcd", c, &o));
    /* three full-batch BCD passes already fit the training images better than chance and
       than three SGD epochs from the same (shrinking) initialisation */
    double bcd = figure(c, "bcd.bcd_train_acc"), sgd = figure(c, "bcd.sgd_train_acc");
    CHECK_MSG(bcd > 30 && bcd > sgd, "BCD %g%%, SGD %g%%", bcd, sgd);
    CHECK(file_has(test_tmpdir(), "bcd.svg", "<polyline", 6));
    free(c);
}
