/* nerve's side of the darknet checks (tests/darknet_check.sh):
 *
 *   nerve_shapes CFG     the layers of a cfg as nerve builds them (weights left at zero:
 *                        only shapes are read), in the format of `dn_ref shapes` (index type
 *                        outputs c h w params). An output of one axis [n] is n x 1 x 1, as
 *                        darknet stores a vector, and so is a sequence [T, n] of [net]'s
 *                        time_steps=T (darknet's layers give one step's size); other ranks
 *                        print their element count and zeros.
 *   nerve_shapes write CFG OUT.weights IN.bin OUT.bin
 *                        the model with nerve's initial weights (batch-norm statistics set to
 *                        varied values) written as darknet .weights, an input of U(0, 1)
 *                        values and nerve's output for it (softmax of a [softmax] head)
 *   nerve_shapes forward CFG WEIGHTS IN.bin OUT.bin LAYER
 *                        the cfg's model with darknet's .weights, evaluated on IN (raw
 *                        float32, one sample); writes layer LAYER's output
 *   nerve_shapes compare A.bin B.bin TOL
 *                        the largest difference of two float files; exit 1 above TOL
 *   nerve_shapes detect CFG WEIGHTS IN.bin THRESH NMS
 *                        the cfg's model with darknet's .weights, its [yolo] / [region]
 *                        detections of the input IN (raw float32) in the format of `dn_ref
 *                        detect` (class score x1 y1 x2 y2 in the input's pixels)
 *   nerve_shapes match A.txt B.txt SCORE_TOL BOX_TOL
 *                        pairs two such lists (same class, score within SCORE_TOL, corners
 *                        within BOX_TOL pixels); exit 1 unless every line of each has its pair */
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the library's builder without weight initialisation (src/model/model.h) */
nerve_model *model_from_cfg_ex(const char *text, const char *filename, const char *base_dir,
                               int init_weights);

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *t = malloc(cap + 1);
    size_t got;
    while (t && (got = fread(t + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *u = realloc(t, 2 * cap + 1);
            if (!u) {
                free(t);
                t = NULL;
                break;
            }
            t = u;
            cap *= 2;
        }
    }
    fclose(f);
    if (t)
        t[n] = 0;
    return t;
}

static int write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof *x, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : 1;
}

static int write_model(const char *cfg, const char *weights, const char *in, const char *out)
{
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (!m || nerve_model_compile(m, 1) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    nerve_graph *g = nerve_model_graph(m);
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (int i = 0; i < nerve_node_count(g); i++) {
        const char *name = nerve_node_name(g, i);
        int mean = name && strstr(name, ".running_mean"), var = name && strstr(name, ".running_var");
        nerve_tensor t = nerve_value(g, i);
        for (size_t k = 0; (mean || var) && k < nerve_tensor_numel(&t); k++)
            t.data[k] = mean ? nerve_rng_uniform(&r) - 0.5f : 0.5f + nerve_rng_uniform(&r);
    }
    if (nerve_model_save_darknet(m, weights, 0) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    nerve_graph_set_training(g, 0);
    nerve_tensor x = nerve_value(g, nerve_model_input(m));
    for (size_t k = 0; k < nerve_tensor_numel(&x); k++)
        x.data[k] = nerve_rng_uniform(&r);
    if (nerve_forward(g, nerve_model_output(m)) < 0)
        return 1;
    nerve_tensor y = nerve_value(g, nerve_model_output(m));
    size_t n = nerve_tensor_numel(&y);
    float *p = malloc(n * sizeof *p);
    memcpy(p, y.data, n * sizeof *p);
    if (nerve_model_head(m).task == NERVE_TASK_CLASSIFY) {
        float mx = p[0], sum = 0;
        for (size_t k = 1; k < n; k++)
            mx = p[k] > mx ? p[k] : mx;
        for (size_t k = 0; k < n; k++)
            sum += p[k] = expf(p[k] - mx);
        for (size_t k = 0; k < n; k++)
            p[k] /= sum;
    }
    int st = write_floats(in, x.data, nerve_tensor_numel(&x)) || write_floats(out, p, n);
    free(p);
    nerve_model_free(m);
    return st;
}

static int compare(const char *a, const char *b, double tol)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    if (!fa || !fb)
        return 2;
    float x, y;
    double worst = 0;
    size_t n = 0;
    while (fread(&x, sizeof x, 1, fa) == 1) {
        if (fread(&y, sizeof y, 1, fb) != 1)
            return 2;
        double d = fabs((double)x - y);
        worst = d > worst || isnan(d) ? d : worst;
        n++;
    }
    if (fread(&y, sizeof y, 1, fb) == 1)
        return 2;
    fclose(fa);
    fclose(fb);
    printf("%zu values, largest difference %.3g\n", n, worst);
    return n > 0 && worst <= tol ? 0 : 1;
}

static int detect(const char *cfg, const char *weights, const char *in, float thresh, float nms)
{
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (!m || nerve_model_load_darknet(m, weights) < 0 || nerve_model_compile(m, 1) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    nerve_graph *g = nerve_model_graph(m);
    nerve_tensor x = nerve_value(g, nerve_model_input(m));
    size_t n = nerve_tensor_numel(&x);
    float *v = malloc(n * sizeof *v);
    FILE *f = fopen(in, "rb");
    int ok = v && f && fread(v, sizeof *v, n, f) == n;
    if (f)
        fclose(f);
    nerve_yolo_config c;
    nerve_model_yolo_heads(m, &c, NULL, 1);
    enum { MAX = 100000 };
    nerve_detection *d = malloc(MAX * sizeof *d);
    int k = ok && d ? nerve_yolo_detect(m, v, (float)c.net_w, (float)c.net_h, thresh, nms, d, MAX)
                    : -1;
    if (k < 0)
        fprintf(stderr, "%s\n", ok ? nerve_last_error() : "cannot read the input");
    for (int i = 0; i < k; i++)
        printf("%d %.7g %.7g %.7g %.7g %.7g\n", d[i].cls, (double)d[i].score, (double)d[i].box[0],
               (double)d[i].box[1], (double)d[i].box[2], (double)d[i].box[3]);
    free(d);
    free(v);
    nerve_model_free(m);
    return k < 0;
}

static int forward_layer(const char *cfg, const char *weights, const char *in, const char *out,
                         int layer)
{
    nerve_model *m = nerve_model_load_cfg(cfg);
    nerve_layer_info li;
    if (!m || nerve_model_load_darknet(m, weights) < 0 || nerve_model_compile(m, 1) < 0 ||
        nerve_model_layer_info(m, layer, &li) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_training(g, 0);
    nerve_tensor x = nerve_value(g, nerve_model_input(m));
    size_t n = nerve_tensor_numel(&x);
    FILE *f = fopen(in, "rb");
    int ok = f && fread(x.data, sizeof *x.data, n, f) == n;
    if (f)
        fclose(f);
    int node = nerve_node_find(g, li.name);
    if (!ok || node < 0 || nerve_forward(g, node) < 0) {
        fprintf(stderr, "%s\n", ok ? nerve_last_error() : "cannot read the input");
        return 1;
    }
    nerve_tensor y = nerve_value(g, node);
    int st = write_floats(out, y.data, nerve_tensor_numel(&y));
    nerve_model_free(m);
    return st;
}

typedef struct {
    int cls, used;
    double v[5];
} det_line;

static int read_dets(const char *path, det_line **out)
{
    FILE *f = fopen(path, "r");
    int n = 0, cap = 0;
    det_line l = {0};
    *out = NULL;
    while (f && fscanf(f, "%d %lf %lf %lf %lf %lf", &l.cls, &l.v[0], &l.v[1], &l.v[2], &l.v[3],
                       &l.v[4]) == 6) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            *out = realloc(*out, (size_t)cap * sizeof **out);
        }
        (*out)[n++] = l;
    }
    if (f)
        fclose(f);
    return f ? n : -1;
}

static int match(const char *a, const char *b, double score_tol, double box_tol)
{
    det_line *x, *y;
    int nx = read_dets(a, &x), ny = read_dets(b, &y), paired = 0;
    double ds = 0, db = 0;
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) {
            if (y[j].used || x[i].cls != y[j].cls || fabs(x[i].v[0] - y[j].v[0]) > score_tol)
                continue;
            double w = 0;
            for (int k = 1; k < 5; k++)
                w = fmax(w, fabs(x[i].v[k] - y[j].v[k]));
            if (w > box_tol)
                continue;
            y[j].used = 1;
            paired++;
            ds = fmax(ds, fabs(x[i].v[0] - y[j].v[0]));
            db = fmax(db, w);
            break;
        }
    printf("%d and %d detections, %d paired; largest score difference %.3g, largest corner "
           "difference %.3g px\n", nx, ny, paired, ds, db);
    free(x);
    free(y);
    return nx >= 0 && nx == ny && paired == nx ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 7 && !strcmp(argv[1], "detect"))
        return detect(argv[2], argv[3], argv[4], (float)atof(argv[5]), (float)atof(argv[6]));
    if (argc == 6 && !strcmp(argv[1], "match"))
        return match(argv[2], argv[3], atof(argv[4]), atof(argv[5]));
    if (argc == 6 && !strcmp(argv[1], "write"))
        return write_model(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 7 && !strcmp(argv[1], "forward"))
        return forward_layer(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
    if (argc == 5 && !strcmp(argv[1], "compare"))
        return compare(argv[2], argv[3], atof(argv[4]));
    if (argc != 2) {
        fprintf(stderr, "usage: nerve_shapes CFG | write CFG OUT.weights IN.bin OUT.bin | "
                        "compare A.bin B.bin TOL\n");
        return 2;
    }
    char *text = read_text(argv[1]);
    int read = text != NULL;
    nerve_model *m = read ? model_from_cfg_ex(text, argv[1], NULL, 0) : NULL;
    free(text);
    if (!m) {
        printf("error %s\n", read ? nerve_last_error() : "cannot read the cfg");
        return 1;
    }
    const nerve_net_config *nc = nerve_model_config(m);
    int steps = nc->ndim == 2 ? nc->dims[0] : 1; /* time_steps= */
    int n = nerve_model_layer_count(m);
    long total = 0;
    printf("layers %d\n", n);
    for (int i = 0; i < n; i++) {
        nerve_layer_info li;
        if (nerve_model_layer_info(m, i, &li) < 0)
            return 1;
        long numel = 1;
        for (int k = 0; k < li.ndim; k++)
            numel *= li.dims[k];
        int c = 0, h = 0, w = 0;
        if (steps > 1 && li.ndim == 2 && li.dims[0] == steps)
            c = li.dims[1], h = 1, w = 1, numel = c;
        else if (li.ndim == 3)
            c = li.dims[0], h = li.dims[1], w = li.dims[2];
        else if (li.ndim == 1)
            c = li.dims[0], h = 1, w = 1;
        total += (long)li.params;
        printf("%d %s %ld %d %d %d %zu\n", i, li.type, numel, c, h, w, li.params);
    }
    printf("params %ld\n", total);
    nerve_model_free(m);
    return 0;
}
