/* nerve's side of the darknet checks (tests/darknet_check.sh):
 *
 *   nerve_shapes CFG     the layers of a cfg as nerve builds them, in the format of
 *                        `dn_ref shapes` (index type outputs c h w params). An output of one
 *                        axis [n] is n x 1 x 1, as darknet stores a vector; other ranks print
 *                        their element count and zeros.
 *   nerve_shapes write CFG OUT.weights IN.bin OUT.bin
 *                        the model with nerve's initial weights (batch-norm statistics set to
 *                        varied values) written as darknet .weights, an input of U(0, 1)
 *                        values and nerve's output for it (softmax of a [softmax] head)
 *   nerve_shapes compare A.bin B.bin TOL
 *                        the largest difference of two float files; exit 1 above TOL */
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "write"))
        return write_model(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 5 && !strcmp(argv[1], "compare"))
        return compare(argv[2], argv[3], atof(argv[4]));
    if (argc != 2) {
        fprintf(stderr, "usage: nerve_shapes CFG | write CFG OUT.weights IN.bin OUT.bin | "
                        "compare A.bin B.bin TOL\n");
        return 2;
    }
    nerve_model *m = nerve_model_load_cfg(argv[1]);
    if (!m) {
        printf("error %s\n", nerve_last_error());
        return 1;
    }
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
        if (li.ndim == 3)
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
