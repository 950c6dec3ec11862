/* nerve's side of bench/onnx/compare.sh: imports MODEL.onnx, runs it on the raw float32
 * input IN.bin, writes output 0 as raw float32 to OUT.bin and prints the median batch-1
 * latency of REPEAT forward passes ("nerve_ms X"), threads as set by NERVE_THREADS.
 * usage: onnx_latency MODEL.onnx IN.bin OUT.bin [REPEAT] */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: onnx_latency MODEL.onnx IN.bin OUT.bin [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 4 ? atoi(argv[4]) : 0;
    nerve_onnx *m = nerve_import_onnx(argv[1], 1);
    if (!m) {
        fprintf(stderr, "onnx_latency: %s\n", nerve_last_error());
        return 1;
    }
    nerve_graph *g = nerve_onnx_graph(m);
    nerve_tensor x = nerve_value(g, nerve_onnx_input(m, 0));
    size_t n = nerve_tensor_numel(&x);
    FILE *fp = fopen(argv[2], "rb");
    if (!fp || fread(x.data, sizeof(float), n, fp) != n) {
        fprintf(stderr, "onnx_latency: %s does not hold %zu floats\n", argv[2], n);
        return 1;
    }
    fclose(fp);
    if (nerve_onnx_run(m, 0) < 0) {
        fprintf(stderr, "onnx_latency: %s\n", nerve_last_error());
        return 1;
    }
    nerve_tensor y = nerve_value(g, nerve_onnx_output(m, 0));
    fp = fopen(argv[3], "wb");
    if (!fp || fwrite(y.data, sizeof(float), nerve_tensor_numel(&y), fp) != nerve_tensor_numel(&y)) {
        fprintf(stderr, "onnx_latency: cannot write %s\n", argv[3]);
        return 1;
    }
    fclose(fp);
    if (repeat > 0) {
        double *t = malloc((size_t)repeat * sizeof *t);
        for (int i = 0; i < repeat; i++) {
            double t0 = now_ms();
            nerve_onnx_run(m, 0);
            t[i] = now_ms() - t0;
        }
        qsort(t, (size_t)repeat, sizeof *t, cmp_double);
        printf("nerve_ms %.3f\n", t[repeat / 2]);
        free(t);
    }
    nerve_onnx_free(m);
    return 0;
}
