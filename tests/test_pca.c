/* PCA and the symmetric eigen-decomposition: residuals, the course's UK food example (exact),
 * both routes, whitening, reconstruction, standardising, the scree plot and refusals. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* max |A v - l v| over all pairs, and max |V V^T - I| */
static void eig_residuals(int n, const double *a, const double *w, const double *v, double *res,
                          double *orth)
{
    *res = 0.0, *orth = 0.0;
    for (int i = 0; i < n; i++) {
        for (int r = 0; r < n; r++) {
            double s = 0.0;
            for (int c = 0; c < n; c++)
                s += a[r * n + c] * v[i * n + c];
            *res = fmax(*res, fabs(s - w[i] * v[i * n + r]));
        }
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int c = 0; c < n; c++)
                s += v[i * n + c] * v[j * n + c];
            *orth = fmax(*orth, fabs(s - (i == j)));
        }
    }
}

TEST(symeig_small_exact)
{
    /* [[2, 1], [1, 2]]: 3 with (1, 1)/sqrt2, 1 with (1, -1)/sqrt2 (largest entry positive) */
    double a[4] = {2, 1, 1, 2}, w[2], v[4];
    CHECK_OK(nerve_symeig(2, a, w, v));
    CHECK_NEAR(w[0], 3.0, 1e-14);
    CHECK_NEAR(w[1], 1.0, 1e-14);
    CHECK_NEAR(v[0], sqrt(0.5), 1e-14);
    CHECK_NEAR(v[1], sqrt(0.5), 1e-14);
    CHECK_NEAR(fabs(v[2]), sqrt(0.5), 1e-14);
    CHECK_NEAR(v[2] + v[3], 0.0, 1e-14);
    double one = -4.0, w1, v1;
    CHECK_OK(nerve_symeig(1, &one, &w1, &v1));
    CHECK(w1 == -4.0 && v1 == 1.0);
    /* diagonal with a repeated value; only the lower triangle is read */
    double dg[9] = {1, 99, 99, 0, 5, 99, 0, 0, 1}, wd[3], vd[9];
    CHECK_OK(nerve_symeig(3, dg, wd, vd));
    CHECK(wd[0] == 5.0 && wd[1] == 1.0 && wd[2] == 1.0);
    CHECK(vd[1] == 1.0);
    double zero[9] = {0}, wz[3], vz[9], res, orth;
    CHECK_OK(nerve_symeig(3, zero, wz, vz));
    eig_residuals(3, zero, wz, vz, &res, &orth);
    CHECK(wz[0] == 0.0 && wz[2] == 0.0 && orth < 1e-14);
}

TEST(symeig_random_residuals)
{
    int n = 60;
    double *a = malloc(sizeof(double) * n * n), *w = malloc(sizeof(double) * n);
    double *v = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            a[i * n + j] = a[j * n + i] = test_pseudo((size_t)(i * n + j), 7);
    CHECK_OK(nerve_symeig(n, a, w, v));
    double res, orth, trace = 0.0, sum = 0.0;
    eig_residuals(n, a, w, v, &res, &orth);
    for (int i = 0; i < n; i++) {
        trace += a[i * n + i], sum += w[i];
        if (i)
            CHECK(w[i] <= w[i - 1]);
    }
    CHECK_MSG(res < 1e-12 && orth < 1e-12, "residual %g, orthogonality %g", res, orth);
    CHECK_NEAR(sum, trace, 1e-11);
    a[5] = NAN;
    a[5 * n] = NAN;
    CHECK(nerve_symeig(n, a, w, v) == NERVE_ERR_NUMERIC);
    free(a), free(w), free(v);
}

/* The course's UK food table (DEFRA 1997, g/person/week): 4 countries x 17 foods. */
static const float uk_food[4][17] = {
    {105, 245, 685, 147, 193, 156, 720, 253, 488, 198, 360, 1102, 1472, 57, 1374, 375, 54},
    {103, 227, 803, 160, 235, 175, 874, 265, 570, 203, 365, 1137, 1582, 73, 1256, 475, 64},
    {103, 242, 750, 122, 184, 147, 566, 171, 418, 220, 337, 957, 1462, 53, 1572, 458, 62},
    {66, 267, 586, 93, 209, 139, 1033, 143, 355, 187, 334, 674, 1494, 47, 1506, 135, 41}};
/* numpy.linalg.eigh of the 1/n covariance: PC1 up to sign */
static const double uk_pc1[17] = {-0.05695538, 0.04792763,  -0.25891666, -0.08441498, -0.00519362,
                                  -0.03762098, 0.40140206,  -0.15184994, -0.24359373, -0.02688623,
                                  -0.03648827, -0.6326409,  -0.04770286, -0.02618776, 0.23224414,
                                  -0.46396817, -0.0296502};

static void check_uk_food(int flags)
{
    nerve_pca p;
    CHECK_OK(nerve_pca_fit(&p, &uk_food[0][0], 4, 17, 3, flags));
    CHECK(p.k == 3 && p.n == 4 && p.d == 17);
    CHECK_NEAR(100 * nerve_pca_proportion(&p, 0), 67.44, 0.005);
    CHECK_NEAR(100 * nerve_pca_proportion(&p, 1), 29.05, 0.005);
    CHECK_NEAR(100 * nerve_pca_proportion(&p, 2), 3.50, 0.005);
    CHECK_NEAR(nerve_pca_cumulative(&p, 2), 1.0, 1e-9);
    CHECK_NEAR(p.eigval[0], 78805.0093, 0.01);
    double dot = 0.0;
    for (int j = 0; j < 17; j++)
        dot += p.components[j] * uk_pc1[j];
    double sign = dot < 0 ? -1.0 : 1.0;
    for (int j = 0; j < 17; j++)
        CHECK_NEAR(sign * p.components[j], uk_pc1[j], 2e-6);
    /* PC1 separates N. Ireland: its score has the other sign from the other three */
    float s[4 * 3];
    CHECK_OK(nerve_pca_transform(&p, &uk_food[0][0], 4, 3, 0, s));
    for (int c = 0; c < 3; c++)
        CHECK(s[c * 3] * s[9] < 0 && fabs(s[c * 3]) < fabs(s[9]) / 1.9);
    CHECK_NEAR(fabs(s[9]), 477.3916, 1e-3);
    nerve_pca_free(&p);
}

TEST(pca_uk_food_both_routes)
{
    check_uk_food(0); /* d > n: the Gram (SVD) route */
    if (test_failed())
        return;
    check_uk_food(NERVE_PCA_COVARIANCE);
}

TEST(pca_routes_agree_and_reconstruct)
{
    int n = 12, d = 30;
    float *x = malloc(sizeof(float) * n * d), *codes = malloc(sizeof(float) * n * d);
    float *rec = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n * d; i++)
        x[i] = test_pseudo((size_t)i, 3) + 0.5f * test_pseudo((size_t)(i % d), 4);
    nerve_pca g, c;
    CHECK_OK(nerve_pca_fit(&g, x, n, d, 0, 0));
    CHECK_OK(nerve_pca_fit(&c, x, n, d, 0, NERVE_PCA_COVARIANCE));
    CHECK(g.k == n && c.k == n && (g.flags & NERVE_PCA_GRAM) && (c.flags & NERVE_PCA_COVARIANCE));
    CHECK_NEAR(g.total_variance, c.total_variance, 1e-9);
    for (int i = 0; i < n - 1; i++) { /* centred data has rank n - 1 */
        CHECK_NEAR(g.eigval[i], c.eigval[i], 1e-5 * c.eigval[0]);
        double dot = 0.0;
        for (int j = 0; j < d; j++)
            dot += g.components[i * d + j] * c.components[i * d + j];
        CHECK_NEAR(dot, 1.0, 1e-4); /* same sign convention */
    }
    CHECK(g.eigval[n - 1] == 0.0);
    /* the completed null component is orthogonal to the rest and of unit length */
    for (int i = 0; i < n; i++) {
        double dot = 0.0;
        for (int j = 0; j < d; j++)
            dot += g.components[(n - 1) * d + j] * g.components[i * d + j];
        CHECK_NEAR(dot, i == n - 1, 1e-5);
    }
    /* all components: reconstruction exact */
    CHECK_OK(nerve_pca_transform(&g, x, n, n, 0, codes));
    CHECK_OK(nerve_pca_reconstruct(&g, codes, n, n, 0, rec));
    CHECK_ARRAY_NEAR(rec, x, n * d, 1e-5);
    /* k components: mean squared error = the variance left over (1/n covariance) */
    int k = 4;
    CHECK_OK(nerve_pca_transform(&c, x, n, k, 0, codes));
    CHECK_OK(nerve_pca_reconstruct(&c, codes, n, k, 0, rec));
    double sse = 0.0, left = 0.0;
    for (int q = 0; q < n * d; q++)
        sse += (rec[q] - x[q]) * (double)(rec[q] - x[q]);
    for (int i = k; i < c.k; i++)
        left += c.eigval[i];
    CHECK_NEAR(sse / n, left, 1e-5);
    /* whitening: unit variances, no covariance; whitened codes reconstruct the same */
    CHECK_OK(nerve_pca_transform(&c, x, n, k, 1, codes));
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += codes[i * k + a] * (double)codes[i * k + b];
            CHECK_NEAR(s / n, a == b, 1e-5);
        }
    float *rec2 = malloc(sizeof(float) * n * d);
    CHECK_OK(nerve_pca_reconstruct(&c, codes, n, k, 1, rec2));
    CHECK_ARRAY_NEAR(rec2, rec, n * d, 1e-5);
    /* the zero-variance component cannot be whitened */
    CHECK(nerve_pca_transform(&g, x, n, n, 1, codes) == NERVE_ERR_NUMERIC);
    CHECK(strstr(nerve_last_error(), "ask for at most 11"));
    nerve_pca_free(&g);
    nerve_pca_free(&c);
    free(x), free(codes), free(rec), free(rec2);
}

TEST(pca_standardise)
{
    /* feature 0 has variance 4, feature 1 variance 100 (perfectly correlated), feature 2 is
     * constant: standardised, the total variance is 2 and PC1 takes all of it */
    float x[4 * 3] = {0, 0, 7, 2, 10, 7, 4, 20, 7, 6, 30, 7};
    nerve_pca p;
    CHECK_OK(nerve_pca_fit(&p, x, 4, 3, 0, NERVE_PCA_STANDARDISE | NERVE_PCA_COVARIANCE));
    CHECK(p.scale && p.scale[2] == 1.0);
    CHECK_NEAR(p.scale[0], sqrt(5.0), 1e-12);
    CHECK_NEAR(p.total_variance, 2.0, 1e-12);
    CHECK_NEAR(nerve_pca_proportion(&p, 0), 1.0, 1e-6);
    CHECK_NEAR(p.components[0], sqrt(0.5), 1e-6);
    CHECK_NEAR(p.components[1], sqrt(0.5), 1e-6);
    float codes[4 * 3], rec[4 * 3];
    CHECK_OK(nerve_pca_transform(&p, x, 4, 1, 0, codes));
    CHECK_OK(nerve_pca_reconstruct(&p, codes, 4, 1, 0, rec));
    CHECK_ARRAY_NEAR(rec, x, 12, 1e-4);
    nerve_pca_free(&p);
    nerve_pca q;
    CHECK_OK(nerve_pca_fit(&q, x, 4, 3, 0, NERVE_PCA_COVARIANCE));
    CHECK(!q.scale);
    CHECK_NEAR(q.total_variance, 5.0 + 125.0, 1e-9);
    nerve_pca_free(&q);
}

TEST(pca_scree_and_refusals)
{
    nerve_pca p;
    CHECK_OK(nerve_pca_fit(&p, &uk_food[0][0], 4, 17, 0, 0));
    char path[512];
    snprintf(path, sizeof path, "%s/scree.svg", test_tmpdir());
    CHECK_OK(nerve_pca_scree_svg(&p, path, 0));
    FILE *fp = fopen(path, "r");
    CHECK(fp);
    char buf[8192];
    size_t len = fread(buf, 1, sizeof buf - 1, fp);
    buf[len] = 0;
    fclose(fp);
    CHECK(strstr(buf, "cumulative") && strstr(buf, "<polyline"));
    CHECK(isnan(nerve_pca_proportion(&p, 4)) && isnan(nerve_pca_proportion(&p, -1)));
    nerve_pca_free(&p);
    float x[6] = {1, 2, 3, 4, 5, 6};
    CHECK(nerve_pca_fit(&p, x, 1, 6, 0, 0) == NERVE_ERR_ARG);
    CHECK(nerve_pca_fit(&p, x, 3, 2, 3, 0) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "at most 2"));
    CHECK(nerve_pca_fit(&p, x, 3, 2, 0, NERVE_PCA_GRAM | NERVE_PCA_COVARIANCE) == NERVE_ERR_ARG);
    x[3] = NAN;
    CHECK(nerve_pca_fit(&p, x, 3, 2, 0, 0) == NERVE_ERR_NUMERIC);
    CHECK(strstr(nerve_last_error(), "sample 1, feature 1"));
}
