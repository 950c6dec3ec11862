/* nerve viz classmodel | dream | invert | neighbours | top: what a trained classifier has
 * learnt, seen through inputs: class model visualisation, DeepDream, feature inversion,
 * nearest neighbours in feature space against pixel space, and the test images (and their
 * patches) that most activate a unit. The work is src/apps/visualize.c's and style.c's. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 32

typedef struct {
    const char *mode, *ckpt, *index_s, *layer, *out, *names_file, *classes;
    int n, k, unit, limit, steps;
    float lr, lambda, blur, tv;
} ascent_args;

static int parse_f(const char *opt, const char *v, double lo, double hi, float *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "nerve viz: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

static const char *name_of(int c, const char *const *names, int n_names, char *buf, size_t n)
{
    if (names && c >= 0 && c < n_names)
        return names[c];
    snprintf(buf, n, "class %d", c);
    return buf;
}

/* "a,b" layer names into node ids (NULL: dflt); the count or -1. */
static int layer_list(nerve_model *m, const char *list, int *ids, int cap)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int id = nerve_node_find(nerve_model_graph(m), t);
        if (id < 0 || n == cap) {
            fprintf(stderr, "nerve viz: %s '%s'\n", n == cap ? "too many layers at" : "no layer named", t);
            return -1;
        }
        ids[n++] = id;
    }
    return n;
}

/* The model's layers with maps (ndim 3) or vectors (ndim 1), in order. */
static int layers_of(nerve_model *m, int ndim, int *ids, int cap)
{
    int n = 0;
    for (int i = 0; i < nerve_model_layer_count(m) && n < cap; i++) {
        nerve_layer_info li;
        int id;
        if (nerve_model_layer_info(m, i, &li) == NERVE_OK && li.ndim == ndim &&
            (id = nerve_node_find(nerve_model_graph(m), li.name)) >= 0 && id != nerve_model_output(m) &&
            strcmp(li.type, "softmax"))
            ids[n++] = id;
    }
    return n;
}

static int class_count(nerve_model *m)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    return nd == 2 ? dims[1] : 0;
}

static int write_tiles(const char *path, const float *img, int n, int ch, int h, int w, char **caps, int cols,
                       float lo, float hi, const char *title)
{
    nerve_tiles_options to = {cols, 84, lo, hi, title};
    if (nerve_tiles_write(path, img, n, ch, h, w, (const char *const *)caps, &to) != NERVE_OK)
        return cli_fail("picture");
    printf("wrote %s\n", path);
    return 0;
}

static void free_caps(char **caps, int n)
{
    for (int i = 0; caps && i < n; i++)
        free(caps[i]);
    free(caps);
}

static int run_classmodel(nerve_model *m, const ascent_args *a, const char *const *names, int n_names, int ch, int h,
                          int w)
{
    int k = class_count(m), cls[MAX_LIST], n = 0;
    if (a->classes) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", a->classes);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < MAX_LIST; t = strtok_r(NULL, ",", &save)) {
            char *end;
            long c = strtol(t, &end, 10);
            if (*end || c < 0 || c >= k) {
                fprintf(stderr, "nerve viz: --class takes classes 0..%d, got '%s'\n", k - 1, t);
                return 2;
            }
            cls[n++] = (int)c;
        }
    } else
        for (; n < k && n < MAX_LIST; n++)
            cls[n] = n;
    nerve_dream_options o;
    nerve_dream_defaults(&o);
    if (a->steps >= 0)
        o.steps = a->steps;
    if (a->lr > 0)
        o.lr = a->lr;
    if (a->lambda >= 0)
        o.lambda = a->lambda;
    if (a->blur >= 0)
        o.blur = a->blur;
    size_t d = (size_t)ch * h * w;
    float *img = malloc((size_t)n * d * sizeof *img);
    char **caps = calloc((size_t)n, sizeof *caps);
    int rc = img && caps ? 0 : 1;
    for (int i = 0; i < n && !rc; i++) {
        float score, prob;
        if (nerve_class_model(m, cls[i], &o, img + (size_t)i * d, &score, &prob) != NERVE_OK) {
            rc = cli_fail("class model");
            break;
        }
        char b[32], line[160];
        const char *nm = name_of(cls[i], names, n_names, b, sizeof b);
        printf("%s: score %.3f, softmax %.4f\n", nm, (double)score, (double)prob);
        fflush(stdout);
        snprintf(line, sizeof line, "%s\nS=%.1f p=%.3f", nm, (double)score, (double)prob);
        caps[i] = strdup(line);
    }
    char title[200];
    snprintf(title, sizeof title, "class models: argmax S_c(x) - %g sum x*x, %d steps, blur %g every %d (each tile "
             "to its own range)", (double)o.lambda, o.steps, (double)o.blur, o.blur_every);
    if (!rc)
        rc = write_tiles(a->out ? a->out : "classmodel.png", img, n, ch, h, w, caps, n > 5 ? (n + 1) / 2 : n, 0, 0,
                         title);
    free_caps(caps, n);
    free(img);
    return rc;
}

static int run_dream(nerve_model *m, const ascent_args *a, const nerve_dataset *test, int index, int ch, int h, int w)
{
    int ids[MAX_LIST], n = a->layer ? layer_list(m, a->layer, ids, MAX_LIST) : layers_of(m, 3, ids, MAX_LIST);
    if (n < 1) {
        fprintf(stderr, "nerve viz: the model has no layer with maps; name one with --layer\n");
        return 2;
    }
    if (!a->layer) { /* the last layer with maps */
        ids[0] = ids[n - 1];
        n = 1;
    }
    nerve_dream_options o;
    nerve_dream_defaults(&o);
    o.steps = a->steps >= 0 ? a->steps : 40;
    o.lr = a->lr > 0 ? a->lr : 0.005f;
    size_t d = (size_t)ch * h * w;
    float *img = malloc((size_t)(n + 1) * d * sizeof *img);
    char **caps = calloc((size_t)n + 1, sizeof *caps);
    int rc = img && caps ? 0 : 1;
    if (!rc) {
        memcpy(img, test->x + (size_t)index * d, d * sizeof(float));
        caps[0] = strdup("input\n");
    }
    for (int i = 0; i < n && !rc; i++) {
        float *x = img + (size_t)(i + 1) * d;
        memcpy(x, img, d * sizeof(float));
        double before, after;
        if (nerve_deepdream(m, ids[i], &o, x, &before, &after) != NERVE_OK) {
            rc = cli_fail("DeepDream");
            break;
        }
        const char *ln = nerve_node_name(nerve_model_graph(m), ids[i]);
        printf("%s: 1/2 sum f^2 %.4g -> %.4g after %d steps\n", ln, before, after, o.steps);
        char line[160];
        snprintf(line, sizeof line, "dream at %s\n%.3g -> %.3g", ln, before, after);
        caps[i + 1] = strdup(line);
    }
    char title[200];
    snprintf(title, sizeof title, "DeepDream of test image %d: ascent on sum f*f / 2, %d steps of %g", index, o.steps,
             (double)o.lr);
    if (!rc)
        rc = write_tiles(a->out ? a->out : "dream.png", img, n + 1, ch, h, w, caps, n + 1, o.lo, o.hi, title);
    free_caps(caps, n + 1);
    free(img);
    return rc;
}

static int run_invert(nerve_model *m, const ascent_args *a, const nerve_dataset *test, int index, int ch, int h, int w)
{
    int ids[MAX_LIST], n = a->layer ? layer_list(m, a->layer, ids, MAX_LIST) : 0;
    if (!a->layer) {
        n = layers_of(m, 3, ids, MAX_LIST);
        n += layers_of(m, 1, ids + n, MAX_LIST - n);
    }
    if (n < 1) {
        fprintf(stderr, "nerve viz: no layer to invert; name them with --layer\n");
        return 2;
    }
    size_t d = (size_t)ch * h * w;
    float *img = malloc((size_t)(n + 1) * d * sizeof *img);
    char **caps = calloc((size_t)n + 1, sizeof *caps);
    int rc = img && caps ? 0 : 1;
    if (!rc) {
        memcpy(img, test->x + (size_t)index * d, d * sizeof(float));
        caps[0] = strdup("input\n");
    }
    nerve_graph *g = nerve_model_graph(m);
    for (int i = 0; i < n && !rc; i++) {
        /* alpha = 1 / ||phi(x0)||^2: the content loss becomes half the relative squared error */
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(g, ids[i], &nd, dims);
        size_t f = nerve_shape_numel(nd - 1, dims + 1);
        float *phi = malloc(f * sizeof *phi);
        if (!phi || nerve_layer_features(m, ids[i], img, 1, phi) != NERVE_OK) {
            free(phi);
            rc = cli_fail("invert");
            break;
        }
        double norm = 0;
        for (size_t j = 0; j < f; j++)
            norm += (double)phi[j] * phi[j];
        free(phi);
        nerve_style_options o;
        nerve_style_defaults(&o);
        o.content_layer = ids[i];
        o.alpha = norm > 0 ? (float)(1.0 / norm) : 1.0f;
        o.beta = 0;
        o.tv = a->tv >= 0 ? a->tv : 0.005f;
        o.steps = a->steps >= 0 ? a->steps : 300;
        o.lr = a->lr > 0 ? a->lr : 0.02f;
        o.report_every = 0;
        float *x = img + (size_t)(i + 1) * d;
        nerve_rng r;
        nerve_rng_seed(&r, 1);
        for (size_t j = 0; j < d; j++)
            x[j] = 0.5f + 0.1f * (nerve_rng_uniform(&r) - 0.5f);
        nerve_style *s = nerve_style_create(g, nerve_model_input(m), &o, NULL, img);
        double first[3], last[3];
        if (!s || nerve_style_run(s, x, first, last) != NERVE_OK) {
            nerve_style_free(s);
            rc = cli_fail("invert");
            break;
        }
        nerve_style_free(s);
        double rel = norm > 0 ? sqrt(2 * last[0] / norm) : 0;
        const char *ln = nerve_node_name(g, ids[i]);
        printf("%s: relative feature error %.4f (from %.4f), total variation %.4g\n", ln, rel,
               norm > 0 ? sqrt(2 * first[0] / norm) : 0.0, last[2]);
        char line[160];
        snprintf(line, sizeof line, "from %s\nerror %.3f", ln, rel);
        caps[i + 1] = strdup(line);
    }
    char title[200];
    snprintf(title, sizeof title, "feature inversion of test image %d: relative squared error of the features + %g TV",
             index, a->tv >= 0 ? (double)a->tv : 0.005);
    if (!rc)
        rc = write_tiles(a->out ? a->out : "invert.png", img, n + 1, ch, h, w, caps, n + 1, 0, 1, title);
    free_caps(caps, n + 1);
    free(img);
    return rc;
}

static int run_neighbours(nerve_model *m, const ascent_args *a, const nerve_dataset *train, const nerve_dataset *test,
                          const char *const *names, int n_names, int ch, int h, int w)
{
    int id;
    if (a->layer) {
        if (layer_list(m, a->layer, &id, 1) != 1)
            return 2;
    } else {
        int ids[MAX_LIST], n = layers_of(m, 1, ids, MAX_LIST);
        if (n < 1 && (n = layers_of(m, 3, ids, MAX_LIST)) < 1) {
            fprintf(stderr, "nerve viz: no layer for features; name one with --layer\n");
            return 2;
        }
        id = ids[n - 1];
    }
    int pool = a->limit > 0 && a->limit < train->n ? a->limit : train->n, k = a->k > 0 ? a->k : 5;
    int nq = a->n > 0 && a->n < test->n ? a->n : test->n < 8 ? test->n : 8;
    if (k > pool)
        k = pool;
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, id, &nd, dims);
    size_t f = nerve_shape_numel(nd - 1, dims + 1), d = (size_t)ch * h * w;
    float *pf = malloc((size_t)pool * f * sizeof *pf), *qf = malloc((size_t)nq * f * sizeof *qf);
    int *ip = malloc((size_t)k * sizeof *ip), *iff = malloc((size_t)k * sizeof *iff);
    int rows = nq < 6 ? nq : 6, cols = 1 + 2 * k;
    float *img = malloc((size_t)rows * cols * d * sizeof *img);
    char **caps = calloc((size_t)rows * cols, sizeof *caps);
    int rc = pf && qf && ip && iff && img && caps ? 0 : 1;
    if (!rc && (nerve_layer_features(m, id, train->x, pool, pf) != NERVE_OK ||
                nerve_layer_features(m, id, test->x, nq, qf) != NERVE_OK))
        rc = cli_fail("features");
    long same_p = 0, same_f = 0;
    for (int q = 0; q < nq && !rc; q++) {
        if (nerve_nearest(train->x, pool, (int)d, test->x + (size_t)q * d, k, ip, NULL) != NERVE_OK ||
            nerve_nearest(pf, pool, (int)f, qf + (size_t)q * f, k, iff, NULL) != NERVE_OK) {
            rc = cli_fail("neighbours");
            break;
        }
        int yq = test->y ? (int)test->y[q] : -1;
        for (int j = 0; j < k; j++) {
            same_p += train->y && (int)train->y[ip[j]] == yq;
            same_f += train->y && (int)train->y[iff[j]] == yq;
        }
        if (q >= rows)
            continue;
        char b[32], line[120];
        float *row = img + (size_t)q * cols * d;
        memcpy(row, test->x + (size_t)q * d, d * sizeof(float));
        snprintf(line, sizeof line, "query\n%s", name_of(yq, names, n_names, b, sizeof b));
        caps[(size_t)q * cols] = strdup(line);
        for (int j = 0; j < k; j++) {
            memcpy(row + (size_t)(1 + j) * d, train->x + (size_t)ip[j] * d, d * sizeof(float));
            memcpy(row + (size_t)(1 + k + j) * d, train->x + (size_t)iff[j] * d, d * sizeof(float));
            snprintf(line, sizeof line, "pixels %d\n%s", j + 1,
                     name_of(train->y ? (int)train->y[ip[j]] : -1, names, n_names, b, sizeof b));
            caps[(size_t)q * cols + 1 + j] = strdup(line);
            snprintf(line, sizeof line, "%s %d\n%s", nerve_node_name(g, id), j + 1,
                     name_of(train->y ? (int)train->y[iff[j]] : -1, names, n_names, b, sizeof b));
            caps[(size_t)q * cols + 1 + k + j] = strdup(line);
        }
    }
    if (!rc && train->y && test->y)
        printf("%d test queries, %d nearest of %d training images: same class as the query %.4f in pixel space, "
               "%.4f in the features of %s\n", nq, k, pool, (double)same_p / ((double)nq * k),
               (double)same_f / ((double)nq * k), nerve_node_name(g, id));
    char title[200];
    snprintf(title, sizeof title, "nearest training images: %d in pixel space, then %d in the features of %s", k, k,
             nerve_node_name(g, id));
    if (!rc)
        rc = write_tiles(a->out ? a->out : "neighbours.png", img, rows * cols, ch, h, w, caps, cols, 0, 1, title);
    free_caps(caps, rows * cols);
    free(img);
    free(pf);
    free(qf);
    free(ip);
    free(iff);
    return rc;
}

static int run_top(nerve_model *m, const ascent_args *a, const nerve_dataset *test, const char *const *names,
                   int n_names, int ch, int h, int w)
{
    int ids[MAX_LIST], n = a->layer ? layer_list(m, a->layer, ids, 1) : layers_of(m, 3, ids, MAX_LIST);
    if (n < 1) {
        fprintf(stderr, "nerve viz: the model has no layer with maps; name one with --layer\n");
        return 2;
    }
    int id = ids[a->layer ? 0 : n - 1], k = a->k > 0 ? a->k : 8;
    if (k > test->n)
        k = test->n;
    size_t d = (size_t)ch * h * w;
    int *idx = malloc((size_t)k * sizeof *idx), *pos = malloc((size_t)k * sizeof *pos);
    float *act = malloc((size_t)k * sizeof *act), *img = malloc((size_t)2 * k * d * sizeof *img);
    char **caps = calloc((size_t)2 * k, sizeof *caps);
    int rc = idx && pos && act && img && caps ? 0 : 1;
    if (!rc && nerve_top_activations(m, id, a->unit, test, a->limit, k, idx, act, pos) != NERVE_OK)
        rc = cli_fail("top activations");
    const char *ln = nerve_node_name(nerve_model_graph(m), id);
    for (int i = 0; i < k && !rc; i++) {
        const float *x = test->x + (size_t)idx[i] * d;
        int box[4];
        if (nerve_unit_box(m, id, a->unit, pos[i], x, box) != NERVE_OK) {
            rc = cli_fail("unit box");
            break;
        }
        memcpy(img + (size_t)i * d, x, d * sizeof(float));
        float *p = img + (size_t)(k + i) * d; /* the box, scaled to the tile (nearest pixel) */
        int bh = box[0] < 0 ? h : box[2] - box[0] + 1, bw = box[0] < 0 ? w : box[3] - box[1] + 1;
        int y0 = box[0] < 0 ? 0 : box[0], x0 = box[0] < 0 ? 0 : box[1];
        for (int c = 0; c < ch; c++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    p[((size_t)c * h + y) * w + xx] =
                        x[((size_t)c * h + y0 + y * bh / h) * w + x0 + xx * bw / w];
        char b[32], line[160];
        printf("#%d (%s): activation %.4f, reads rows %d..%d, columns %d..%d\n", idx[i],
               name_of(test->y ? (int)test->y[idx[i]] : -1, names, n_names, b, sizeof b), (double)act[i], box[0],
               box[2], box[1], box[3]);
        snprintf(line, sizeof line, "#%d %s\n%.3g", idx[i],
                 name_of(test->y ? (int)test->y[idx[i]] : -1, names, n_names, b, sizeof b), (double)act[i]);
        caps[i] = strdup(line);
        snprintf(line, sizeof line, "patch %dx%d\n", bh, bw);
        caps[k + i] = strdup(line);
    }
    char title[200];
    snprintf(title, sizeof title, "the test images that most activate unit %d of %s, and the patch it reads", a->unit,
             ln);
    if (!rc)
        rc = write_tiles(a->out ? a->out : "top.png", img, 2 * k, ch, h, w, caps, k, 0, 1, title);
    free_caps(caps, 2 * k);
    free(img);
    free(idx);
    free(pos);
    free(act);
    return rc;
}

int viz_ascent(int argc, char **argv)
{
    ascent_args a = {0};
    a.mode = argv[0];
    a.steps = -1;
    a.lambda = -1;
    a.blur = -1;
    a.tv = -1;
    const char *v;
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        if ((v = cli_option_value(argc, argv, &i, "--layer")))
            a.layer = v;
        else if ((v = cli_option_value(argc, argv, &i, "--out")))
            a.out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            a.names_file = v;
        else if ((v = cli_option_value(argc, argv, &i, "--class")))
            a.classes = v;
        else if ((v = cli_option_value(argc, argv, &i, "--n")))
            bad = (a.n = cli_parse_int("--n", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--k")))
            bad = (a.k = cli_parse_int("--k", v)) < 0 || a.k > 64;
        else if ((v = cli_option_value(argc, argv, &i, "--unit")))
            bad = (a.unit = cli_parse_int("--unit", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--limit")))
            bad = (a.limit = cli_parse_int("--limit", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--steps")))
            bad = (a.steps = cli_parse_int("--steps", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--lr")))
            bad = parse_f("--lr", v, 1e-9, 1e6, &a.lr);
        else if ((v = cli_option_value(argc, argv, &i, "--lambda")))
            bad = parse_f("--lambda", v, 0, 1e6, &a.lambda);
        else if ((v = cli_option_value(argc, argv, &i, "--blur")))
            bad = parse_f("--blur", v, 0, 10, &a.blur);
        else if ((v = cli_option_value(argc, argv, &i, "--tv")))
            bad = parse_f("--tv", v, 0, 1e6, &a.tv);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve viz: unknown option '%s' (nerve viz --help)\n", argv[i]);
            bad = 1;
        } else if (!a.ckpt)
            a.ckpt = argv[i];
        else if (!a.index_s)
            a.index_s = argv[i];
        else {
            fprintf(stderr, "nerve viz: unexpected argument '%s'\n", argv[i]);
            bad = 1;
        }
        if (bad)
            return 2;
    }
    int wants_index = !strcmp(a.mode, "dream") || !strcmp(a.mode, "invert");
    if (!a.ckpt || (a.index_s && !wants_index)) {
        fprintf(stderr, "nerve viz %s: %s (nerve viz --help)\n", a.mode, a.ckpt ? "takes no IMAGE-INDEX" : "missing CKPT");
        return 2;
    }
    int index = 0;
    if (a.index_s) {
        char *end;
        long x = strtol(a.index_s, &end, 10);
        if (*end || end == a.index_s || x < 0 || x > 1000000000) {
            fprintf(stderr, "nerve viz: IMAGE-INDEX must be an integer >= 0, got '%s'\n", a.index_s);
            return 2;
        }
        index = (int)x;
    }
    nerve_model *m = nerve_model_load(a.ckpt);
    if (!m)
        return cli_fail(NULL);
    int rc = nerve_explain_prepare(m, 64) != NERVE_OK ? cli_fail("viz") : 0, ch = 1, h = 1, w = 1;
    if (!rc && nerve_explain_geometry(m, &ch, &h, &w) != NERVE_OK)
        rc = cli_fail("viz");
    char **file_names = NULL;
    int n_names = 0, n_file = 0;
    const char *const *names = rc ? NULL : nerve_model_names(m, &n_names);
    const nerve_net_config *c = nerve_model_config(m);
    const char *nf = a.names_file ? a.names_file : c->data.names[0] ? c->data.names : NULL;
    if (!rc && (a.names_file || !names) && nf) {
        if (nerve_names_load(nf, &file_names, &n_file) != NERVE_OK)
            rc = cli_fail(NULL);
        names = (const char *const *)file_names;
        n_names = n_file;
    }
    nerve_dataset train = {0}, test = {0};
    int need_data = strcmp(a.mode, "classmodel") != 0, need_train = !strcmp(a.mode, "neighbours");
    if (!rc && need_data && nerve_config_load_data(c, need_train ? &train : NULL, &test) != NERVE_OK)
        rc = cli_fail(NULL);
    if (!rc && need_data && (test.n < 1 || index >= test.n || (need_train && train.n < 1))) {
        fprintf(stderr, "nerve viz: %s\n", index >= test.n && test.n > 0 ? "IMAGE-INDEX beyond the test set"
                                                                       : "the cfg names no test (and training) data");
        rc = 1;
    }
    if (!rc) {
        if (!strcmp(a.mode, "classmodel"))
            rc = run_classmodel(m, &a, names, n_names, ch, h, w);
        else if (!strcmp(a.mode, "dream"))
            rc = run_dream(m, &a, &test, index, ch, h, w);
        else if (!strcmp(a.mode, "invert"))
            rc = run_invert(m, &a, &test, index, ch, h, w);
        else if (!strcmp(a.mode, "neighbours"))
            rc = run_neighbours(m, &a, &train, &test, names, n_names, ch, h, w);
        else
            rc = run_top(m, &a, &test, names, n_names, ch, h, w);
    }
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_names_free(file_names, n_file);
    nerve_model_free(m);
    return rc;
}
