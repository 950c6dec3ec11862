/* Training throughput or batch-1 inference latency of a cfg model on synthetic data (the
 * same recipe as bench/torch_conv.py): inputs drawn from N(0,1), labels uniform over the
 * classes, SGD with momentum 0.9 and learning rate 0.01.
 * usage: bench_cfg CFG train|latency BATCH THREADS STEPS
 * prints "samples_per_sec <v>" (train) or "latency_ms <median>" (latency, and the
 * samples/s that makes at the batch), then
 * "peak_rss_mb <v>" (the process's peak resident set, from getrusage). */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"

static int fail(const char *what)
{
    fprintf(stderr, "bench_cfg: %s: %s\n", what, nerve_last_error());
    return 1;
}

/* Fills the input with N(0,1) samples and the labels with classes in 0..k-1. */
static void fill_batch(nerve_graph *g, int x, int y, int k, nerve_rng *rng)
{
    nerve_tensor xv = nerve_value(g, x);
    size_t n = nerve_tensor_numel(&xv);
    for (size_t i = 0; i < n; i++)
        xv.data[i] = nerve_rng_normal(rng);
    if (y >= 0) {
        nerve_tensor yv = nerve_value(g, y);
        for (size_t i = 0; i < nerve_tensor_numel(&yv); i++)
            yv.data[i] = (float)nerve_rng_below(rng, (uint32_t)k);
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_cfg CFG train|latency BATCH THREADS STEPS\n");
        return 2;
    }
    const char *path = argv[1];
    int train = strcmp(argv[2], "train") == 0;
    int batch = atoi(argv[3]), threads = atoi(argv[4]), steps = atoi(argv[5]);
    const int warmup = 3;
    nerve_set_threads(threads);
    nerve_model *m = nerve_model_load_cfg(path);
    if (!m)
        return fail(path);
    if (nerve_model_compile(m, batch) != NERVE_OK)
        return fail("compile");
    nerve_graph *g = nerve_model_graph(m);
    int x = nerve_model_input(m), y = nerve_model_labels(m);
    int k = nerve_model_config(m)->n_classes > 0 ? nerve_model_config(m)->n_classes : 10;
    nerve_rng rng;
    nerve_rng_seed(&rng, 1);
    fill_batch(g, x, y, k, &rng);
    if (train) {
        nerve_optim_config oc = nerve_optim_default(NERVE_OPT_MOMENTUM);
        nerve_optim *opt = nerve_optim_create(g, &oc);
        if (!opt)
            return fail("optimiser");
        nerve_graph_set_training(g, 1);
        int loss = nerve_model_loss(m);
        double t0 = 0;
        for (int s = 0; s < warmup + steps; s++) {
            if (s == warmup)
                t0 = now();
            nerve_optim_prepare(opt);
            if (nerve_forward(g, loss) != NERVE_OK || nerve_backward(g, loss) != NERVE_OK)
                return fail("step");
            nerve_optim_step(opt, 0.01f);
        }
        printf("samples_per_sec %.1f\n", steps * (double)batch / (now() - t0));
        printf("final_loss %.4f\n", (double)nerve_value(g, loss).data[0]);
        nerve_optim_free(opt);
    } else {
        nerve_graph_set_training(g, 0);
        int out = nerve_model_output(m);
        double *t = malloc(sizeof(double) * (size_t)steps);
        if (!t)
            return 1;
        for (int s = 0; s < warmup + steps; s++) {
            double t0 = now();
            if (nerve_forward(g, out) != NERVE_OK)
                return fail("forward");
            if (s >= warmup)
                t[s - warmup] = now() - t0;
        }
        qsort(t, (size_t)steps, sizeof(double), cmp_double);
        printf("latency_ms %.3f\n", 1e3 * t[steps / 2]);
        printf("samples_per_sec %.1f\n", (double)batch / t[steps / 2]);
        free(t);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
    nerve_model_free(m);
    return 0;
}
