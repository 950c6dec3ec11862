/* nerve explain: pictures of why a classifier decides as it does (saliency, backprop,
 * deconvnet, guided back-propagation, SmoothGrad, occlusion, Grad-CAM), and the model-
 * randomisation sanity check. The work is src/apps/explain.c's. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The inputs: PNG/JPEG files and folders, one IDX or CSV file, or (none) the cfg's test set. */
static int load_inputs(nerve_model *m, const char **files, int n_files, nerve_dataset *d)
{
    const nerve_net_config *c = nerve_model_config(m);
    if (!n_files) {
        if (!c->test_images[0] && !c->test_csv[0] && !c->data.test_folder[0] && !c->data.test_cifar[0]) {
            fprintf(stderr, "nerve explain: give INPUT files, or a checkpoint whose cfg names test data\n");
            return 1;
        }
        return nerve_config_load_data(c, NULL, d) == NERVE_OK ? 0 : cli_fail(NULL);
    }
    int images = 1;
    for (int i = 0; i < n_files; i++)
        images &= cli_is_image_arg(files[i]);
    if (!images && n_files > 1) {
        fprintf(stderr, "nerve explain: several inputs must all be PNG/JPEG files or folders of them; give one "
                "IDX or CSV file\n");
        return 2;
    }
    int st;
    if (images) {
        if (c->ndim != 3) {
            fprintf(stderr, "nerve explain: the model does not take images (channels x height x width)\n");
            return 1;
        }
        nerve_image_options o = {c->dims[0], c->dims[1], c->dims[2], c->data.resize, c->input_scale * 255.0f};
        char **paths = NULL;
        int n_paths = 0;
        st = nerve_image_paths(files, n_files, &paths, &n_paths);
        if (st == NERVE_OK)
            st = nerve_dataset_load_images(d, (const char *const *)paths, n_paths, &o);
        nerve_names_free(paths, n_paths);
    } else {
        size_t len = strlen(files[0]);
        int csv = len > 4 && !strcasecmp(files[0] + len - 4, ".csv");
        st = cli_load_data(d, csv ? NULL : files[0], NULL, csv ? files[0] : NULL,
                           c->input_scale > 0 ? c->input_scale : 1.0f, csv ? NERVE_CSV_NO_LABEL : -1);
    }
    return st == NERVE_OK ? 0 : cli_fail(NULL);
}

/* "saliency,guided": methods[] and their count, or -1 after a message. */
static int parse_methods(const char *list, int *methods)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    int k = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int mth = nerve_explain_method_parse(t);
        if (mth < 0 || k == NERVE_EXPLAIN_COUNT) {
            fprintf(stderr, "nerve explain: %s\n", mth < 0 ? nerve_last_error() : "too many methods");
            return -1;
        }
        methods[k++] = mth;
    }
    if (!k)
        fprintf(stderr, "nerve explain: --method needs at least one method\n");
    return k ? k : -1;
}

static int parse_float(const char *opt, const char *v, float lo, float hi, float *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "nerve explain: %s needs a number in [%g, %g], got '%s'\n", opt, (double)lo, (double)hi, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

static const char *class_name(int c, const char *const *names, int n_names, char *buf, size_t n)
{
    if (names && c >= 0 && c < n_names)
        return names[c];
    snprintf(buf, n, "class %d", c);
    return buf;
}

typedef struct {
    const char *ckpt, *out, *layer, *names_file;
    int methods[NERVE_EXPLAIN_COUNT], k, first, count, sanity;
    nerve_explain_options o;
} explain_args;

static int run_sanity(nerve_model *m, const nerve_dataset *d, const explain_args *a)
{
    int n = a->sanity < d->n ? a->sanity : d->n;
    for (int j = 0; j < a->k; j++) {
        double rho = 0;
        double *rhos = malloc((size_t)n * sizeof *rhos);
        if (!rhos || nerve_explain_randomization(m, d, n, a->methods[j], &a->o, &rho, rhos) != NERVE_OK) {
            free(rhos);
            return cli_fail("sanity check");
        }
        double lo = rhos[0], hi = rhos[0];
        for (int i = 1; i < n; i++) {
            lo = rhos[i] < lo ? rhos[i] : lo;
            hi = rhos[i] > hi ? rhos[i] : hi;
        }
        printf("%s: Spearman rank correlation, trained vs re-initialised network, mean over %d images: %.4f "
               "(min %.4f, max %.4f)\n", nerve_explain_method_name(a->methods[j]), n, rho, lo, hi);
        free(rhos);
    }
    return 0;
}

static int run_pictures(nerve_model *m, const nerve_dataset *d, const explain_args *a, const char *const *names,
                        int n_names)
{
    int ch, h, w;
    if (nerve_explain_geometry(m, &ch, &h, &w) != NERVE_OK)
        return cli_fail("explain");
    int first = a->first < d->n ? a->first : d->n - 1, n = a->count;
    if (first < 0 || n > d->n - first)
        n = d->n - first;
    if (n < 1) {
        fprintf(stderr, "nerve explain: no input at index %d (%d inputs)\n", a->first, d->n);
        return 1;
    }
    size_t plane = (size_t)h * w, dim = plane * (size_t)ch;
    float *maps = malloc((size_t)n * a->k * plane * sizeof(float));
    char **captions = calloc((size_t)n, sizeof *captions);
    const char *titles[NERVE_EXPLAIN_COUNT];
    for (int j = 0; j < a->k; j++)
        titles[j] = nerve_explain_method_name(a->methods[j]);
    int rc = maps && captions ? 0 : 1;
    for (int i = 0; i < n && !rc; i++) {
        const float *x = d->x + (size_t)(first + i) * dim;
        int cls = -1;
        float score = 0;
        for (int j = 0; j < a->k && !rc; j++)
            if (nerve_explain(m, x, a->methods[j], &a->o, maps + ((size_t)i * a->k + j) * plane, &cls, &score) !=
                NERVE_OK)
                rc = cli_fail("explain");
        if (rc)
            break;
        char b1[32], b2[32], line[200];
        int truth = d->y ? (int)d->y[first + i] : -1;
        if (truth >= 0)
            snprintf(line, sizeof line, "#%d true %s, %s %s (score %.2f)", first + i,
                     class_name(truth, names, n_names, b1, sizeof b1), a->o.target >= 0 ? "explained" : "predicted",
                     class_name(cls, names, n_names, b2, sizeof b2), (double)score);
        else
            snprintf(line, sizeof line, "#%d %s %s (score %.2f)", first + i, a->o.target >= 0 ? "explained" : "predicted",
                     class_name(cls, names, n_names, b2, sizeof b2), (double)score);
        printf("%s\n", line);
        captions[i] = strdup(line);
    }
    if (!rc && nerve_explain_picture(a->out, d->x + (size_t)first * dim, n, ch, h, w, maps, a->k, titles,
                                     (const char *const *)captions) != NERVE_OK)
        rc = cli_fail("explain picture");
    else if (!rc)
        printf("wrote %s: %d input%s x %d method%s\n", a->out, n, n == 1 ? "" : "s", a->k, a->k == 1 ? "" : "s");
    for (int i = 0; captions && i < n; i++)
        free(captions[i]);
    free(captions);
    free(maps);
    return rc;
}

int cmd_explain(int argc, char **argv)
{
    explain_args a = {0};
    nerve_explain_defaults(&a.o);
    a.out = "explain.png";
    a.count = 6;
    a.k = parse_methods("saliency,backprop,deconvnet,guided,smoothgrad,occlusion,gradcam", a.methods);
    const char **files = calloc((size_t)(argc > 0 ? argc : 1), sizeof *files);
    int n_files = 0;
    const char *v;
    if (!files)
        return 1;
    int rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--method")))
            rc = (a.k = parse_methods(v, a.methods)) < 0 ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--out")))
            a.out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--layer")))
            a.o.layer = v;
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            a.names_file = v;
        else if ((v = cli_option_value(argc, argv, &i, "--n")))
            rc = (a.count = cli_parse_int("--n", v)) < 0 || a.count > 64 ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--first"))) {
            char *end;
            long f = strtol(v, &end, 10);
            rc = *end || end == v || f < 0 || f > 1000000000 ? 2 : 0;
            a.first = (int)f;
        } else if ((v = cli_option_value(argc, argv, &i, "--class"))) {
            char *end;
            long f = strtol(v, &end, 10);
            rc = *end || end == v || f < 0 || f > 1000000 ? 2 : 0;
            a.o.target = (int)f;
        } else if ((v = cli_option_value(argc, argv, &i, "--samples")))
            rc = (a.o.samples = cli_parse_int("--samples", v)) < 0 ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--noise")))
            rc = parse_float("--noise", v, 0, 10, &a.o.noise) ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--patch")))
            rc = (a.o.patch = cli_parse_int("--patch", v)) < 0 ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--stride")))
            rc = (a.o.stride = cli_parse_int("--stride", v)) < 0 ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--fill")))
            rc = parse_float("--fill", v, -1e6f, 1e6f, &a.o.fill) ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--sanity")))
            rc = (a.sanity = cli_parse_int("--sanity", v)) < 0 ? 2 : 0;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve explain: unknown option '%s' (nerve explain --help)\n", argv[i]);
            rc = 2;
        } else if (!a.ckpt)
            a.ckpt = argv[i];
        else
            files[n_files++] = argv[i];
    }
    if (!rc && !a.ckpt) {
        fprintf(stderr, "nerve explain: missing CKPT (nerve explain --help)\n");
        rc = 2;
    }
    if (rc) {
        if (rc == 2 && a.k >= 0)
            fprintf(stderr, "nerve explain: bad arguments (nerve explain --help)\n");
        free(files);
        return rc;
    }
    nerve_model *m = nerve_model_load(a.ckpt);
    if (!m) {
        free(files);
        return cli_fail(NULL);
    }
    nerve_dataset d = {0};
    rc = load_inputs(m, files, n_files, &d);
    free(files);
    char **file_names = NULL;
    int n_names = 0, n_file_names = 0;
    const char *const *names = NULL;
    if (!rc) {
        const char *nf = a.names_file ? a.names_file : nerve_model_config(m)->data.names[0] ? nerve_model_config(m)->data.names : NULL;
        names = nerve_model_names(m, &n_names);
        if (a.names_file || !names) {
            if (nf && nerve_names_load(nf, &file_names, &n_file_names) != NERVE_OK)
                rc = cli_fail(NULL);
            names = (const char *const *)file_names;
            n_names = n_file_names;
        }
        if (!names && d.names) {
            names = (const char *const *)d.names;
            n_names = d.n_names;
        }
    }
    if (!rc && nerve_explain_prepare(m, 64) != NERVE_OK)
        rc = cli_fail("explain");
    if (!rc)
        rc = a.sanity ? run_sanity(m, &d, &a) : run_pictures(m, &d, &a, names, n_names);
    nerve_names_free(file_names, n_file_names);
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return rc;
}
