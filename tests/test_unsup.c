/* The curse-of-dimensionality numbers, the scatter plot, features at a named layer, and the
 * commands nerve pca / embed / curse on small inputs. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

TEST(curse_course_figures)
{
    /* the course's table: d = 3, 5, 10, 20, 30, 50 */
    CHECK_NEAR(nerve_ball_cube_ratio(3), 0.5236, 1e-4);
    CHECK_NEAR(nerve_ball_cube_ratio(5), 0.1645, 1e-4);
    CHECK_NEAR(nerve_ball_cube_ratio(10), 0.00249, 1e-5);
    CHECK_NEAR(nerve_ball_cube_ratio(20) / 2.46e-8, 1.0, 0.01);
    CHECK_NEAR(nerve_ball_cube_ratio(30) / 2.0e-14, 1.0, 0.03);
    CHECK_NEAR(nerve_ball_cube_ratio(50) / 1.54e-28, 1.0, 0.01);
    CHECK(nerve_ball_cube_ratio(1) == 1.0);
    CHECK_NEAR(nerve_ball_cube_ratio(2), 3.14159265358979 / 4, 1e-12);
    CHECK(isnan(nerve_ball_cube_ratio(0)));
    /* 1% of a 100-D cube has edge 0.955: its diagonal is 95% of the cube's */
    CHECK_NEAR(nerve_subcube_edge(0.01, 100), 0.9550, 1e-4);
    CHECK_NEAR(nerve_subcube_edge(0.01, 2), 0.1, 1e-12);
    /* the unit-ball example: 500 points in 10-D, median nearest distance 0.52 */
    CHECK_NEAR(nerve_median_nearest(500, 10), 0.518, 1e-3);
}

TEST(curse_nearest_farthest_ratio_grows_with_dimension)
{
    double r2, r10, r100, again;
    CHECK_OK(nerve_nearest_farthest_ratio(500, 2, 10, 1, &r2));
    CHECK_OK(nerve_nearest_farthest_ratio(500, 10, 10, 1, &r10));
    CHECK_OK(nerve_nearest_farthest_ratio(500, 100, 10, 1, &r100));
    CHECK_OK(nerve_nearest_farthest_ratio(500, 100, 10, 1, &again));
    CHECK(again == r100);
    CHECK_MSG(r2 < 0.1 && r2 < r10 && r10 < r100 && r100 > 0.6 && r100 < 0.8,
              "ratios %g (2-D) %g (10-D) %g (100-D)", r2, r10, r100);
    CHECK(nerve_nearest_farthest_ratio(1, 2, 1, 1, &r2) == NERVE_ERR_ARG);
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, fp);
    s[got] = 0;
    fclose(fp);
    return s;
}

static int count(const char *s, const char *what)
{
    int c = 0;
    for (const char *p = s; (p = strstr(p, what)); p++)
        c++;
    return c;
}

TEST(svg_scatter_colours_labels_and_names)
{
    char path[512];
    snprintf(path, sizeof path, "%s/s.svg", test_tmpdir());
    float xy[10] = {0, 0, 1, 1, 2, 0, 3, 3, NAN, 1};
    int labels[5] = {0, 1, 1, -1, 0};
    const char *names[2] = {"T-shirt/top", "<trouser>"};
    CHECK_OK(nerve_svg_scatter(path, "a & b", xy, 5, labels, 2, names));
    char *s = read_all(path);
    CHECK(s);
    CHECK(strstr(s, "a &amp; b") && strstr(s, "T-shirt/top") && strstr(s, "&lt;trouser&gt;"));
    CHECK(strstr(s, "unlabelled"));
    CHECK_MSG(count(s, "<circle") == 4 + 3, "%d circles", count(s, "<circle")); /* 4 finite + 3 legend */
    free(s);
    CHECK_OK(nerve_svg_scatter(path, NULL, xy, 4, NULL, 0, NULL));
    s = read_all(path);
    CHECK(s && count(s, "<circle") == 4 && !strstr(s, "class 0"));
    free(s);
    CHECK(nerve_svg_scatter(path, NULL, xy, 0, NULL, 0, NULL) == NERVE_ERR_ARG);
}

TEST(model_features_at_a_named_layer)
{
    const char *cfg = "[net]\ninputs=3\nbatch=2\n\n[connected]\nname=code\noutput=2\n\n"
                      "[connected]\noutput=3\n\n[cost]\ntype=mse\ntarget=input\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "ae.cfg");
    CHECK(m);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 5, 1, (int[]){3}));
    for (int i = 0; i < 15; i++)
        d.x[i] = test_pseudo((size_t)i, 11);
    int dim;
    CHECK_OK(nerve_model_feature_dim(m, "code", &dim));
    CHECK(dim == 2);
    float f[10];
    CHECK_OK(nerve_model_features(m, &d, "code", f)); /* 5 samples in batches of 2 */
    nerve_graph *g = nerve_model_graph(m);
    const float *w = nerve_value(g, nerve_node_find(g, "code.weight")).data;
    const float *b = nerve_value(g, nerve_node_find(g, "code.bias")).data;
    for (int i = 0; i < 5; i++)
        for (int o = 0; o < 2; o++) {
            double s = b[o];
            for (int k = 0; k < 3; k++)
                s += w[o * 3 + k] * d.x[i * 3 + k];
            CHECK_NEAR(f[i * 2 + o], s, 1e-5);
        }
    CHECK_OK(nerve_model_feature_dim(m, NULL, &dim));
    CHECK(dim == 3);
    CHECK(nerve_model_feature_dim(m, "nope", &dim) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "nope"));
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_alloc(&d, 2, 1, (int[]){4}));
    CHECK(nerve_model_features(m, &d, "code", f) == NERVE_ERR_SHAPE);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

/* Runs `nerve ARGS` and captures stdout and stderr. */
static int run_nerve(const char *args, char *out, size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/nerve %s 2>&1", test_build_dir(), args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const int uk[4][17] = {
    {105, 245, 685, 147, 193, 156, 720, 253, 488, 198, 360, 1102, 1472, 57, 1374, 375, 54},
    {103, 227, 803, 160, 235, 175, 874, 265, 570, 203, 365, 1137, 1582, 73, 1256, 475, 64},
    {103, 242, 750, 122, 184, 147, 566, 171, 418, 220, 337, 957, 1462, 53, 1572, 458, 62},
    {66, 267, 586, 93, 209, 139, 1033, 143, 355, 187, 334, 674, 1494, 47, 1506, 135, 41}};

TEST(cli_pca_uk_food_and_curse)
{
    char csv[512], scree[512], args[2048], out[16384];
    snprintf(csv, sizeof csv, "%s/uk.csv", test_tmpdir());
    snprintf(scree, sizeof scree, "%s/scree.svg", test_tmpdir());
    FILE *fp = fopen(csv, "w");
    for (int c = 0; c < 4; c++)
        for (int j = 0; j < 17; j++)
            fprintf(fp, "%d%c", uk[c][j], j == 16 ? '\n' : ',');
    fclose(fp);
    snprintf(args, sizeof args, "pca --csv %s --label-col none --k 4 --scree %s --reconstruct 3",
             csv, scree);
    CHECK(run_nerve(args, out, sizeof out) == 0);
    CHECK_MSG(strstr(out, "Gram/SVD route") && strstr(out, "67.4443%") &&
                  strstr(out, "29.0525%") && strstr(out, "3.5032%"),
              "%s", out);
    CHECK_MSG(strstr(out, "reconstruction mse with 3 components on the fitted data: 0.0000"), "%s", out);
    char *s = read_all(scree);
    CHECK(s && strstr(s, "cumulative"));
    free(s);
    CHECK(run_nerve("pca --csv /nonexistent.csv", out, sizeof out) == 1);
    CHECK(run_nerve("pca", out, sizeof out) == 2);
    CHECK(run_nerve("curse --n 200 --queries 3", out, sizeof out) == 0);
    CHECK_MSG(strstr(out, "0.524") && strstr(out, "0.00249") && strstr(out, "2.46e-08") &&
                  strstr(out, "0.955"),
              "%s", out);
}

TEST(cli_embed_csv_by_tsne_and_pca)
{
    char csv[512], svg[512], coords[512], args[2048], out[16384];
    snprintf(csv, sizeof csv, "%s/blobs.csv", test_tmpdir());
    snprintf(svg, sizeof svg, "%s/e.svg", test_tmpdir());
    snprintf(coords, sizeof coords, "%s/e.csv", test_tmpdir());
    FILE *fp = fopen(csv, "w");
    for (int i = 0; i < 60; i++) { /* two blobs in 6-D, label last */
        for (int k = 0; k < 6; k++)
            fprintf(fp, "%.4f,", (k == i % 2 ? 6.0 : 0.0) + test_pseudo((size_t)(i * 6 + k), 12));
        fprintf(fp, "%d\n", i % 2);
    }
    fclose(fp);
    snprintf(args, sizeof args, "embed --csv %s --perplexity 8 --iterations 300 --out %s --quiet",
             csv, svg);
    CHECK_MSG(run_nerve(args, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "60 vectors of 6 values") && strstr(out, "exact"), "%s", out);
    char *s = read_all(coords); /* next to the SVG by default */
    CHECK_MSG(s && !strncmp(s, "index,x,y,label,name\n", 21) && count(s, "\n") == 61, "%s", s ? s : "");
    free(s);
    s = read_all(svg);
    CHECK(s && strstr(s, "class 1") && count(s, "<circle") == 62);
    free(s);
    snprintf(args, sizeof args, "embed --csv %s --method pca --out %s --coords %s", csv, svg, coords);
    CHECK_MSG(run_nerve(args, out, sizeof out) == 0, "%s", out);
    CHECK(strstr(out, "pca: 2 components keep"));
    snprintf(args, sizeof args, "embed --csv %s --method umap", csv);
    CHECK(run_nerve(args, out, sizeof out) == 2);
    snprintf(args, sizeof args, "embed --csv %s --layer code", csv);
    CHECK(run_nerve(args, out, sizeof out) == 2 && strstr(out, "needs a checkpoint"));
}

/* The course's claim: a linear undercomplete autoencoder (MSE) spans the top-k principal
 * subspace. 6-D data with variances far apart; a 6 -> 2 -> 6 linear autoencoder trained by
 * nerve_fit; the principal angles between its decoder's column space and PCA's first two
 * components are near zero. */
TEST(linear_autoencoder_spans_the_principal_subspace)
{
    enum { N = 512, D = 6, K = 2 };
    const char *cfg = "[net]\ninputs=6\nbatch=32\nepochs=40\nseed=3\noptimizer=adam\n"
                      "learning_rate=0.01\npolicy=cosine\n\n"
                      "[connected]\nname=code\noutput=2\n\n[connected]\nname=decoder\noutput=6\n\n"
                      "[cost]\ntype=mse\ntarget=input\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "linear_ae.cfg");
    CHECK(m);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, N, 1, (int[]){D}));
    const double scale[D] = {3, 2, 0.5, 0.3, 0.2, 0.1};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double s = 1.0; /* a fixed mixing of the scaled coordinates, plus an offset */
            for (int k = 0; k < D; k++)
                s += scale[k] * test_pseudo((size_t)(i * D + k), 21) * 1.7 *
                     test_pseudo((size_t)(k * D + j), 22);
            d.x[i * D + j] = (float)s;
        }
    nerve_fit_options fo = {0};
    nerve_fit_result fr;
    CHECK_OK(nerve_fit(m, &d, NULL, &fo, &fr));
    nerve_pca p;
    CHECK_OK(nerve_pca_fit(&p, d.x, N, D, K + 1, NERVE_PCA_COVARIANCE));
    CHECK_MSG(p.eigval[1] > 5 * p.eigval[2], "eigenvalues %g %g %g", p.eigval[0], p.eigval[1], p.eigval[2]);
    nerve_graph *g = nerve_model_graph(m);
    const float *w = nerve_value(g, nerve_node_find(g, "decoder.weight")).data; /* [6, 2] */
    double q[K][D];
    for (int c = 0; c < K; c++) { /* Gram-Schmidt on the decoder's columns */
        for (int j = 0; j < D; j++)
            q[c][j] = w[j * K + c];
        for (int b = 0; b < c; b++) {
            double dot = 0;
            for (int j = 0; j < D; j++)
                dot += q[c][j] * q[b][j];
            for (int j = 0; j < D; j++)
                q[c][j] -= dot * q[b][j];
        }
        double nn = 0;
        for (int j = 0; j < D; j++)
            nn += q[c][j] * q[c][j];
        for (int j = 0; j < D; j++)
            q[c][j] /= sqrt(nn);
    }
    /* cosines of the principal angles: singular values of Q^T V */
    double mtm[K * K] = {0}, mm[K][K], sv2[K];
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) {
            double s = 0;
            for (int j = 0; j < D; j++)
                s += q[a][j] * p.components[b * D + j];
            mm[a][b] = s;
        }
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++)
            for (int c = 0; c < K; c++)
                mtm[a * K + b] += mm[c][a] * mm[c][b];
    CHECK_OK(nerve_symeig(K, mtm, sv2, NULL));
    double angle = acos(fmin(1.0, sqrt(sv2[K - 1]))) * 180 / 3.14159265358979;
    CHECK_MSG(angle < 2.0, "largest principal angle %.3f degrees", angle);
    nerve_pca_free(&p);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}
