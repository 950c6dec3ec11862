/* nerve embed / pca / curse: unsupervised learning from the command line (docs/unsupervised.md).
 * Argument parsing and printing only; PCA, t-SNE, features and plots are libnerve's. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_double(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "nerve: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* Data shared by the commands: IDX images (+ labels) or a CSV file, optionally the first N. */
typedef struct {
    const char *images, *labels, *csv;
    int label_col, limit;
} data_args;

static int data_option(int argc, char **argv, int *i, data_args *a, int *bad)
{
    const char *v;
    if ((v = cli_option_value(argc, argv, i, "--images")))
        a->images = v;
    else if ((v = cli_option_value(argc, argv, i, "--labels")))
        a->labels = v;
    else if ((v = cli_option_value(argc, argv, i, "--csv")))
        a->csv = v;
    else if ((v = cli_option_value(argc, argv, i, "--label-col"))) {
        char *end;
        long k = strtol(v, &end, 10);
        if (!strcmp(v, "none"))
            k = NERVE_CSV_NO_LABEL;
        else if (*end || k < -1000000 || k > 1000000) {
            fprintf(stderr, "nerve: --label-col needs a column number or 'none', got '%s'\n", v);
            *bad = 1;
        }
        a->label_col = (int)k;
    } else if ((v = cli_option_value(argc, argv, i, "--limit"))) {
        if ((a->limit = cli_parse_int("--limit", v)) < 0)
            *bad = 1;
    } else
        return 0;
    return 1;
}

static int load_data(const data_args *a, nerve_dataset *d, const char *cmd)
{
    if (a->images && a->csv) {
        fprintf(stderr, "nerve %s: give --images or --csv, not both\n", cmd);
        return 2;
    }
    if (a->labels && !a->images) {
        fprintf(stderr, "nerve %s: --labels goes with --images\n", cmd);
        return 2;
    }
    int st = a->csv ? nerve_dataset_load_csv(d, a->csv, a->label_col)
                    : nerve_dataset_load_idx(d, a->images, a->labels, 1.0f / 255);
    if (st == NERVE_OK)
        st = nerve_dataset_check_finite(d, a->csv ? a->csv : a->images);
    if (st != NERVE_OK) {
        nerve_dataset_free(d);
        return cli_fail(NULL);
    }
    if (a->limit > 0 && a->limit < d->n)
        d->n = a->limit; /* the first N samples; the buffers stay as allocated */
    return 0;
}

static int write_coords(const char *path, const float *y, const nerve_dataset *d,
                        const char *const *names, int n_names)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "nerve embed: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    fputs("index,x,y,label,name\n", fp);
    for (int i = 0; i < d->n; i++) {
        int l = (int)d->y[i];
        fprintf(fp, "%d,%.7g,%.7g,%d,", i, y[2 * i], y[2 * i + 1], l);
        if (names && l >= 0 && l < n_names && !strpbrk(names[l], ",\"\n"))
            fputs(names[l], fp);
        fputc('\n', fp);
    }
    if (fclose(fp) != 0) {
        fprintf(stderr, "nerve embed: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

/* PCA of x [n, d] to k dimensions into out; prints the variance the components keep. */
static int pca_reduce(const float *x, int n, int d, int k, float *out, int print)
{
    nerve_pca p;
    if (nerve_pca_fit(&p, x, n, d, k, 0) != NERVE_OK)
        return cli_fail("pca");
    int st = nerve_pca_transform(&p, x, n, k, 0, out);
    if (print && st == NERVE_OK)
        printf("pca: %d components keep %.2f%% of the variance (PC1 %.2f%%, PC2 %.2f%%)\n", k,
               100 * nerve_pca_cumulative(&p, k - 1), 100 * nerve_pca_proportion(&p, 0),
               100 * nerve_pca_proportion(&p, k > 1 ? 1 : 0));
    nerve_pca_free(&p);
    return st == NERVE_OK ? 0 : cli_fail("pca");
}

static int tsne_progress(int it, double kl, void *user)
{
    (void)user;
    if (it % 250 == 0)
        fprintf(stderr, "t-SNE iteration %d: KL %.4f\n", it, kl);
    return 0;
}

int cmd_embed(int argc, char **argv)
{
    data_args a = {0};
    a.label_col = -1;
    const char *ckpt = NULL, *layer = NULL, *method = "tsne", *out = "embed.svg", *coords = NULL;
    const char *names_path = NULL, *title = NULL, *v;
    nerve_tsne_options o;
    nerve_tsne_defaults(&o);
    o.progress = tsne_progress;
    int pca_dims = 50, bad = 0, theta_set = 0, quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (data_option(argc, argv, &i, &a, &bad))
            ;
        else if ((v = cli_option_value(argc, argv, &i, "--layer")))
            layer = v;
        else if ((v = cli_option_value(argc, argv, &i, "--method")))
            method = v;
        else if ((v = cli_option_value(argc, argv, &i, "--out")))
            out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--coords")))
            coords = v;
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            names_path = v;
        else if ((v = cli_option_value(argc, argv, &i, "--title")))
            title = v;
        else if ((v = cli_option_value(argc, argv, &i, "--pca-dims"))) {
            pca_dims = strcmp(v, "0") ? cli_parse_int("--pca-dims", v) : 0;
            bad |= pca_dims < 0;
        } else if ((v = cli_option_value(argc, argv, &i, "--perplexity")))
            bad |= parse_double("--perplexity", v, 1, 1e6, &o.perplexity);
        else if ((v = cli_option_value(argc, argv, &i, "--iterations")))
            bad |= (o.iterations = cli_parse_int("--iterations", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--theta"))) {
            bad |= parse_double("--theta", v, 0, 0.7, &o.theta);
            theta_set = 1;
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            double s;
            bad |= parse_double("--seed", v, 0, 4e18, &s);
            o.seed = (uint64_t)s;
        } else if ((v = cli_option_value(argc, argv, &i, "--init"))) {
            if (!strcmp(v, "pca"))
                o.init = NERVE_TSNE_INIT_PCA;
            else if (!strcmp(v, "random"))
                o.init = NERVE_TSNE_INIT_RANDOM;
            else {
                fprintf(stderr, "nerve embed: --init is pca or random, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (argv[i][0] != '-' && !ckpt)
            ckpt = argv[i];
        else {
            fprintf(stderr, "nerve embed: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (bad)
        return 2;
    if (strcmp(method, "tsne") && strcmp(method, "pca") && strcmp(method, "none")) {
        fprintf(stderr, "nerve embed: --method is tsne, pca or none, not '%s'\n", method);
        return 2;
    }
    if (layer && !ckpt) {
        fprintf(stderr, "nerve embed: --layer needs a checkpoint (nerve embed CKPT --layer NAME)\n");
        return 2;
    }
    if (!ckpt && !a.images && !a.csv) {
        fprintf(stderr, "nerve embed: no data: give --images F [--labels F] or --csv F, or a "
                        "checkpoint (its cfg's test data)\n");
        return 2;
    }
    if (quiet)
        o.progress = NULL;
    nerve_model *m = ckpt ? nerve_model_load(ckpt) : NULL;
    if (ckpt && !m)
        return cli_fail(NULL);
    nerve_dataset d = {0};
    int rc = 0;
    if (a.images || a.csv)
        rc = load_data(&a, &d, "embed");
    else if (nerve_config_load_data(nerve_model_config(m), NULL, &d) != NERVE_OK)
        rc = cli_fail(NULL);
    else if (a.limit > 0 && a.limit < d.n)
        d.n = a.limit;
    char **file_names = NULL;
    int n_file_names = 0, n_names = 0;
    float *x = NULL, *red = NULL, *y = NULL;
    if (rc)
        goto done;
    /* the vectors: raw samples, or the checkpoint's features at a node */
    int dim = (int)d.sample_numel;
    if (m) {
        if (nerve_model_feature_dim(m, layer, &dim) != NERVE_OK) {
            rc = cli_fail(NULL);
            goto done;
        }
        x = malloc(sizeof(float) * (size_t)d.n * dim);
        if (!x || nerve_model_features(m, &d, layer, x) != NERVE_OK) {
            rc = cli_fail("features");
            goto done;
        }
    }
    const float *vec = x ? x : d.x;
    printf("%d vectors of %d values (%s%s)\n", d.n, dim, m ? "features at " : "raw samples",
           m ? (layer ? layer : "the model's output") : "");
    y = malloc(sizeof(float) * (size_t)d.n * 2);
    if (!y) {
        rc = cli_fail(NULL);
        goto done;
    }
    if (!strcmp(method, "none")) {
        if (dim != 2) {
            fprintf(stderr, "nerve embed: --method none plots 2-D vectors as they are; these have "
                            "%d values (use tsne or pca)\n", dim);
            rc = 2;
            goto done;
        }
        memcpy(y, vec, sizeof(float) * (size_t)d.n * 2);
    } else if (!strcmp(method, "pca")) {
        if ((rc = pca_reduce(vec, d.n, dim, 2, y, 1)))
            goto done;
    } else {
        if (pca_dims > 0 && dim > pca_dims && d.n > pca_dims) {
            red = malloc(sizeof(float) * (size_t)d.n * pca_dims);
            if (!red || (rc = pca_reduce(vec, d.n, dim, pca_dims, red, 1))) {
                rc = rc ? rc : cli_fail(NULL);
                goto done;
            }
            vec = red, dim = pca_dims;
        }
        if (!theta_set)
            o.theta = d.n > 1000 ? 0.5 : 0.0;
        double kl;
        if (nerve_tsne(vec, d.n, dim, &o, y, &kl) != NERVE_OK) {
            rc = cli_fail("t-SNE");
            goto done;
        }
        printf("t-SNE (%s, perplexity %g, %d iterations): KL %.4f\n",
               o.theta > 0 ? "Barnes-Hut" : "exact", o.perplexity, o.iterations, kl);
    }
    /* labels and names: --names, else the data's, else the checkpoint's */
    int *labels = malloc(sizeof(int) * (size_t)d.n), n_classes = 0;
    if (!labels) {
        rc = cli_fail(NULL);
        goto done;
    }
    for (int i = 0; i < d.n; i++) {
        labels[i] = d.y[i] >= 0 ? (int)d.y[i] : -1;
        if (labels[i] + 1 > n_classes)
            n_classes = labels[i] + 1;
    }
    const char *const *names = (const char *const *)d.names;
    n_names = d.n_names;
    if (names_path) {
        if (nerve_names_load(names_path, &file_names, &n_file_names) != NERVE_OK) {
            free(labels);
            rc = cli_fail(NULL);
            goto done;
        }
        names = (const char *const *)file_names, n_names = n_file_names;
    } else if (!names && m)
        names = nerve_model_names(m, &n_names);
    if (names && n_names < n_classes)
        names = NULL; /* fewer names than classes: numbers instead */
    char auto_title[256];
    if (!title) {
        snprintf(auto_title, sizeof auto_title, "%s of %d %s",
                 !strcmp(method, "pca") ? "PCA" : !strcmp(method, "none") ? "2-D vectors" : "t-SNE",
                 d.n, m ? "feature vectors" : "samples");
        title = auto_title;
    }
    if (nerve_svg_scatter(out, title, y, d.n, n_classes ? labels : NULL, n_classes, names) != NERVE_OK)
        rc = cli_fail(NULL);
    else
        printf("wrote %s\n", out);
    free(labels);
    char csv_path[1024];
    if (!coords) {
        const char *dot = strrchr(out, '.');
        int stem = dot && !strchr(dot, '/') ? (int)(dot - out) : (int)strlen(out);
        snprintf(csv_path, sizeof csv_path, "%.*s.csv", stem, out);
        coords = csv_path;
    }
    if (!rc && !(rc = write_coords(coords, y, &d, names, names ? n_names : 0)))
        printf("wrote %s\n", coords);
done:
    nerve_names_free(file_names, n_file_names);
    free(x), free(red), free(y);
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return rc;
}

int cmd_pca(int argc, char **argv)
{
    data_args a = {0}, test = {0};
    a.label_col = test.label_col = -1;
    const char *scree = NULL, *v;
    int k = 10, flags = 0, bad = 0, recon = 0;
    for (int i = 0; i < argc; i++) {
        if (data_option(argc, argv, &i, &a, &bad))
            ;
        else if ((v = cli_option_value(argc, argv, &i, "--k")))
            bad |= (k = cli_parse_int("--k", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--scree")))
            scree = v;
        else if ((v = cli_option_value(argc, argv, &i, "--reconstruct")))
            bad |= (recon = cli_parse_int("--reconstruct", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--test-images")))
            test.images = v;
        else if ((v = cli_option_value(argc, argv, &i, "--test-csv")))
            test.csv = v;
        else if (!strcmp(argv[i], "--standardise"))
            flags |= NERVE_PCA_STANDARDISE;
        else {
            fprintf(stderr, "nerve pca: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (bad)
        return 2;
    if (!a.images && !a.csv) {
        fprintf(stderr, "nerve pca: no data: give --images F or --csv F\n");
        return 2;
    }
    nerve_dataset d = {0}, t = {0};
    int rc = load_data(&a, &d, "pca");
    if (rc)
        return rc;
    int dim = (int)d.sample_numel, small = d.n < dim ? d.n : dim;
    int keep = k > small ? small : k;
    if (recon > small) {
        fprintf(stderr, "nerve pca: --reconstruct %d is above min(samples, features) = %d\n", recon, small);
        nerve_dataset_free(&d);
        return 2;
    }
    if (recon > keep)
        keep = recon;
    nerve_pca p;
    if (nerve_pca_fit(&p, d.x, d.n, dim, keep, flags) != NERVE_OK) {
        nerve_dataset_free(&d);
        return cli_fail("pca");
    }
    printf("%d samples of %d features (%s route%s); total variance %.6g\n", d.n, dim,
           p.flags & NERVE_PCA_GRAM ? "Gram/SVD" : "covariance",
           flags & NERVE_PCA_STANDARDISE ? ", standardised" : "", p.total_variance);
    printf("%-10s %14s %12s %12s\n", "component", "variance", "proportion", "cumulative");
    for (int i = 0; i < keep && i < k; i++)
        printf("PC%-8d %14.6g %11.4f%% %11.4f%%\n", i + 1, p.eigval[i],
               100 * nerve_pca_proportion(&p, i), 100 * nerve_pca_cumulative(&p, i));
    if (scree && nerve_pca_scree_svg(&p, scree, keep) != NERVE_OK)
        rc = cli_fail(NULL);
    else if (scree)
        printf("wrote %s\n", scree);
    if (!rc && recon) {
        const nerve_dataset *e = &d;
        if ((test.images || test.csv) && !(rc = load_data(&test, &t, "pca")))
            e = &t;
        if (!rc && e->sample_numel != d.sample_numel) {
            fprintf(stderr, "nerve pca: the test data has %zu features, the fit %d\n", e->sample_numel, dim);
            rc = 2;
        }
        float *codes = rc ? NULL : malloc(sizeof(float) * (size_t)e->n * recon);
        float *back = rc ? NULL : malloc(sizeof(float) * (size_t)e->n * dim);
        if (!rc && (!codes || !back || nerve_pca_transform(&p, e->x, e->n, recon, 0, codes) != NERVE_OK ||
                    nerve_pca_reconstruct(&p, codes, e->n, recon, 0, back) != NERVE_OK))
            rc = cli_fail("pca");
        if (!rc) {
            double se = 0.0;
            for (size_t q = 0; q < (size_t)e->n * dim; q++)
                se += ((double)back[q] - e->x[q]) * ((double)back[q] - e->x[q]);
            printf("reconstruction mse with %d components on %s: %.6f\n", recon,
                   e == &t ? "the test data" : "the fitted data", se / ((double)e->n * dim));
        }
        free(codes), free(back);
    }
    nerve_pca_free(&p);
    nerve_dataset_free(&d);
    nerve_dataset_free(&t);
    return rc;
}

int cmd_curse(int argc, char **argv)
{
    int n = 1000, queries = 20, bad = 0;
    const char *v;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--n")))
            bad |= (n = cli_parse_int("--n", v)) < 2;
        else if ((v = cli_option_value(argc, argv, &i, "--queries")))
            bad |= (queries = cli_parse_int("--queries", v)) < 0;
        else {
            fprintf(stderr, "nerve curse: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (bad)
        return 2;
    static const int dims[] = {1, 2, 3, 5, 10, 20, 30, 50, 100, 1000};
    printf("%6s %14s %18s %20s %22s\n", "d", "ball/cube", "edge of 1% cube", "median NN (n=500)",
           "nearest/farthest (MC)");
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        double r;
        if (nerve_nearest_farthest_ratio(n, dims[k], queries, 1, &r) != NERVE_OK)
            return cli_fail(NULL);
        double ball = nerve_ball_cube_ratio(dims[k]);
        if (ball > 0)
            printf("%6d %14.3g", dims[k], ball);
        else
            printf("%6d %14s", dims[k], "< 1e-308");
        printf(" %18.3f %20.3f %22.3f\n",
               nerve_subcube_edge(0.01, dims[k]), nerve_median_nearest(500, dims[k]), r);
    }
    printf("(nearest/farthest: mean over %d uniform queries of the ratio of the nearest to the\n"
           " farthest of %d uniform points in the unit cube)\n", queries, n);
    return 0;
}
