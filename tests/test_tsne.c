/* t-SNE: the perplexity search, P, the KL gradient against finite differences, Barnes-Hut
 * against the exact sums, and small embeddings of separated clusters. */
#include "test.h"

#include "../src/apps/tsne.h"

#include <stdlib.h>
#include <string.h>

TEST(tsne_conditional_hits_the_perplexity)
{
    double d2[20], p[20];
    for (int j = 0; j < 20; j++)
        d2[j] = 100.0 + j * j * 0.3; /* a large common offset must not underflow */
    tsne_conditional(d2, 20, 5.0, p);
    double h = 0.0, s = 0.0;
    for (int j = 0; j < 20; j++) {
        s += p[j];
        if (p[j] > 0)
            h -= p[j] * log(p[j]);
        if (j)
            CHECK(p[j] <= p[j - 1]);
    }
    CHECK_NEAR(s, 1.0, 1e-12);
    CHECK_NEAR(exp(h), 5.0, 1e-4);
    /* equal distances: uniform whatever the precision */
    double eq[4] = {2, 2, 2, 2}, pe[4];
    tsne_conditional(eq, 4, 3.0, pe);
    for (int j = 0; j < 4; j++)
        CHECK_NEAR(pe[j], 0.25, 1e-12);
}

static void random_points(float *x, int n, int d, unsigned salt)
{
    for (int i = 0; i < n * d; i++)
        x[i] = test_pseudo((size_t)i, salt);
}

TEST(tsne_dense_p_is_symmetric_and_normalised)
{
    int n = 12, d = 4;
    float x[12 * 4];
    random_points(x, n, d, 1);
    double P[144];
    CHECK_OK(tsne_dense_p(x, n, d, 4.0, P));
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        CHECK(P[i * n + i] == 0.0);
        for (int j = 0; j < n; j++) {
            CHECK(P[i * n + j] == P[j * n + i]);
            s += P[i * n + j];
        }
    }
    CHECK_NEAR(s, 1.0, 1e-12);
    /* the sparse P over all n - 1 neighbours is the same matrix */
    tsne_sparse S;
    CHECK_OK(tsne_sparse_p(x, n, d, 4.0, n - 1, &S));
    CHECK(S.row[n] == (size_t)(n * (n - 1)));
    for (int i = 0; i < n; i++)
        for (size_t e = S.row[i]; e < S.row[i + 1]; e++)
            CHECK_NEAR(S.val[e], P[i * n + S.col[e]], 1e-9);
    tsne_sparse_free(&S);
}

TEST(tsne_kl_gradient_matches_finite_differences)
{
    int n = 9, d = 3, dims = 2;
    float x[27];
    random_points(x, n, d, 2);
    double P[81], y[18], g[18], gd[18];
    CHECK_OK(tsne_dense_p(x, n, d, 3.0, P));
    for (int q = 0; q < n * dims; q++)
        y[q] = 2.0 * test_pseudo((size_t)q, 3);
    double kl = tsne_kl_dense(P, y, n, dims, g);
    CHECK(kl > 0.0);
    double h = 1e-6, worst = 0.0;
    for (int q = 0; q < n * dims; q++) {
        double keep = y[q];
        y[q] = keep + h;
        double up = tsne_kl_dense(P, y, n, dims, NULL);
        y[q] = keep - h;
        double down = tsne_kl_dense(P, y, n, dims, NULL);
        y[q] = keep;
        gd[q] = (up - down) / (2 * h);
        worst = fmax(worst, fabs(gd[q] - g[q]));
    }
    double scale = 0.0;
    for (int q = 0; q < n * dims; q++)
        scale = fmax(scale, fabs(g[q]));
    CHECK_MSG(worst < 1e-6 * fmax(scale, 1.0), "gradient error %g (largest component %g)",
              worst, scale);
    /* and in 3 output dimensions */
    double y3[27], g3[27];
    for (int q = 0; q < 27; q++)
        y3[q] = test_pseudo((size_t)q, 9);
    tsne_kl_dense(P, y3, n, 3, g3);
    for (int q = 0; q < 27; q += 5) {
        double keep = y3[q];
        y3[q] = keep + h;
        double up = tsne_kl_dense(P, y3, n, 3, NULL);
        y3[q] = keep - h;
        double down = tsne_kl_dense(P, y3, n, 3, NULL);
        y3[q] = keep;
        CHECK_NEAR((up - down) / (2 * h), g3[q], 1e-6);
    }
}

TEST(tsne_barnes_hut_matches_exact_sums)
{
    int n = 60, d = 5;
    float *x = malloc(sizeof(float) * n * d);
    random_points(x, n, d, 4);
    double *P = malloc(sizeof(double) * n * n), *y = malloc(sizeof(double) * n * 2);
    double *ge = malloc(sizeof(double) * n * 2), *gb = malloc(sizeof(double) * n * 2);
    CHECK_OK(tsne_dense_p(x, n, d, 10.0, P));
    tsne_sparse S;
    CHECK_OK(tsne_sparse_p(x, n, d, 10.0, n - 1, &S));
    for (int q = 0; q < n * 2; q++)
        y[q] = 5.0 * test_pseudo((size_t)q, 5);
    y[2] = y[0], y[3] = y[1]; /* two points at the same place */
    double ke = tsne_kl_dense(P, y, n, 2, ge), kb = tsne_kl_bh(&S, y, n, 0.0, gb);
    CHECK_NEAR(kb, ke, 1e-9);
    CHECK_ARRAY_NEAR(gb, ge, n * 2, 1e-9);
    /* theta 0.5: an approximation, close to the exact gradient */
    double ka = tsne_kl_bh(&S, y, n, 0.5, gb), num = 0.0, den = 0.0;
    for (int q = 0; q < n * 2; q++)
        num += (gb[q] - ge[q]) * (gb[q] - ge[q]), den += ge[q] * ge[q];
    CHECK_MSG(sqrt(num / den) < 0.05, "relative gradient error %g", sqrt(num / den));
    CHECK_NEAR(ka, ke, 0.02 * ke);
    tsne_sparse_free(&S);
    free(x), free(P), free(y), free(ge), free(gb);
}

/* Three clusters in 10-D far apart: every point's nearest neighbour in the embedding is of its
 * own cluster. */
static double cluster_purity(const float *y, int n)
{
    int good = 0;
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            if (dx * dx + dy * dy < bd)
                bd = dx * dx + dy * dy, best = j;
        }
        good += best / (n / 3) == i / (n / 3);
    }
    return (double)good / n;
}

static int n_reports;
static double first_kl, last_kl;
static int record(int it, double kl, void *user)
{
    (void)user;
    if (it == 300)
        first_kl = kl;
    last_kl = kl;
    n_reports++;
    return 0;
}

TEST(tsne_separates_clusters_exact_and_barnes_hut)
{
    int n = 90, d = 10;
    float *x = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * 2);
    for (int i = 0; i < n; i++)
        for (int q = 0; q < d; q++)
            x[i * d + q] = (q == i / 30 ? 8.0f : 0.0f) + test_pseudo((size_t)(i * d + q), 6);
    nerve_tsne_options o;
    nerve_tsne_defaults(&o);
    o.perplexity = 10;
    o.iterations = 350;
    o.theta = 0;
    o.progress = record;
    double kl;
    n_reports = 0;
    CHECK_OK(nerve_tsne(x, n, d, &o, y, &kl));
    CHECK(n_reports == 7);
    CHECK_MSG(last_kl < first_kl, "KL %g at 300, %g at 350", first_kl, last_kl);
    CHECK(kl > 0 && kl < 2.0);
    CHECK(cluster_purity(y, n) == 1.0);
    o.theta = 0.5;
    o.init = NERVE_TSNE_INIT_RANDOM;
    o.seed = 3;
    o.progress = NULL;
    double kb;
    CHECK_OK(nerve_tsne(x, n, d, &o, y, &kb));
    CHECK(cluster_purity(y, n) == 1.0);
    CHECK(kb > 0 && kb < 2.0);
    free(x), free(y);
}

TEST(tsne_refuses_what_it_cannot_do)
{
    float x[10 * 2], y[10 * 3];
    random_points(x, 10, 2, 8);
    nerve_tsne_options o;
    nerve_tsne_defaults(&o);
    CHECK(nerve_tsne(x, 10, 2, &o, y, NULL) == NERVE_ERR_ARG); /* perplexity 30 of 10 points */
    CHECK(strstr(nerve_last_error(), "perplexity 30"));
    o.perplexity = 3;
    o.theta = 0.9;
    CHECK(nerve_tsne(x, 10, 2, &o, y, NULL) == NERVE_ERR_ARG);
    o.theta = 0.5;
    o.dims = 3;
    CHECK(nerve_tsne(x, 10, 2, &o, y, NULL) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "theta=0"));
    o.dims = 2;
    x[7] = NAN;
    CHECK(nerve_tsne(x, 10, 2, &o, y, NULL) == NERVE_ERR_NUMERIC);
}
