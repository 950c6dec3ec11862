/* int8 against float inference of one cfg model, in the same process, on every kernel path
 * this CPU has (docs/quantize.md). The float model keeps its initial weights; the int8 one
 * is the same model quantised (nerve_model_quantize) on 4 batches of N(0,1) inputs. Batch-1
 * latency (median of samples of several forwards each, STEPS forwards in all) and batch-64 throughput (STEPS/4 forwards; both
 * counts lowered for a large model so that each side takes about 2 s), float and int8 timed
 * alternately so that both see the same machine load. With THREADS = 1 the times are the
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which time slices lost to other processes on
 * a shared machine do not inflate; with more threads, wall time.
 * usage: q8_bench CFG THREADS STEPS
 * prints per path: "q8 <path> <int8 path> b1_float_ms <v> b1_int8_ms <v> b64_float_sps <v>
 * b64_int8_sps <v>". */
#include "nerve.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

enum { BATCH = 64 };

static int fail(const char *what)
{
    fprintf(stderr, "q8_bench: %s: %s\n", what, nerve_last_error());
    return 1;
}

static nerve_model *build(const char *cfg)
{
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (m && nerve_model_compile(m, BATCH) != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    return m;
}

static int cpu_clock; /* one thread: time the thread's CPU time */

static double clock_now(void)
{
    if (!cpu_clock)
        return now();
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds per forward of m at batch n (inputs already in place), over reps forwards timed
 * together: reading the thread's CPU clock is a system call of about a microsecond here, as
 * long as a fifth of an int8 LeNet-5 forward, so a batch-1 sample spans many forwards. */
static double forward_seconds(nerve_model *m, int n, int reps)
{
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_batch(g, n);
    int out = nerve_model_output(m);
    double t0 = clock_now();
    for (int r = 0; r < reps; r++)
        nerve_forward(g, out);
    return (clock_now() - t0) / reps;
}

/* count, lowered so that count runs of t seconds take about budget seconds (at least lo). */
static int fit(int count, double t, double budget, int lo)
{
    if (t > 0 && count * t > budget)
        count = (int)(budget / t);
    return count < lo ? lo : count;
}

static void fill(nerve_model *m, const float *x)
{
    nerve_tensor t = nerve_value(nerve_model_graph(m), nerve_model_input(m));
    memcpy(t.data, x, nerve_tensor_numel(&t) * sizeof(float));
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: q8_bench CFG THREADS STEPS\n");
        return 2;
    }
    int threads = atoi(argv[2]), steps = atoi(argv[3]);
    if (steps < 4)
        steps = 4;
    nerve_set_threads(threads);
    cpu_clock = threads == 1;
    nerve_model *f = build(argv[1]), *q = build(argv[1]);
    if (!f || !q)
        return fail(argv[1]);
    /* the same weights in both */
    nerve_graph *gf = nerve_model_graph(f), *gq = nerve_model_graph(q);
    for (int id = 0; id < nerve_node_count(gf); id++)
        if (nerve_node_kind(gf, id) == NERVE_NODE_PARAM || nerve_node_kind(gf, id) == NERVE_NODE_STATE) {
            nerve_tensor a = nerve_value(gf, id), b = nerve_value(gq, id);
            memcpy(b.data, a.data, nerve_tensor_numel(&a) * sizeof(float));
        }
    nerve_tensor in = nerve_value(gf, nerve_model_input(f));
    size_t numel = nerve_tensor_numel(&in);
    nerve_dataset d = {0};
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(gf, nerve_model_input(f), &nd, dims);
    if (nerve_dataset_alloc(&d, 4 * BATCH, nd - 1, dims + 1) != NERVE_OK)
        return fail("data");
    nerve_rng rng;
    nerve_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)d.n * d.sample_numel; i++)
        d.x[i] = nerve_rng_normal(&rng);
    nerve_quantize_info qi;
    if (nerve_model_quantize(q, &d, 4, &qi) != NERVE_OK)
        return fail("quantize");
    nerve_graph_set_training(gf, 0);
    nerve_graph_set_training(gq, 0);
    fill(f, d.x);
    fill(q, d.x);
    (void)numel;
    double *tf = malloc((size_t)steps * sizeof(double)), *tq = malloc((size_t)steps * sizeof(double));
    static const char *const all_isas[] = {"avx512", "avx2", "portable"};
    const char *only = getenv("Q8_BENCH_ISA");
    const char *const *isas = all_isas;
    size_t n_isas = 3;
    if (only) {
        isas = &only;
        n_isas = 1;
    }
    for (size_t p = 0; p < n_isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        double t1 = 0, t64;
        for (int i = 0; i < 10; i++) { /* warm up */
            t1 = forward_seconds(f, 1, 1);
            forward_seconds(q, 1, 1);
        }
        /* forwards per sample: at least 0.2 ms of the float model's time */
        int reps = t1 > 0 && t1 < 2e-4 ? (int)(2e-4 / t1) + 1 : 1;
        int n1 = fit(steps / reps > 9 ? steps / reps : 9, t1 * reps, 2.0, 9);
        for (int i = 0; i < n1; i++) {
            tf[i] = forward_seconds(f, 1, reps);
            tq[i] = forward_seconds(q, 1, reps);
        }
        qsort(tf, (size_t)n1, sizeof(double), cmp_double);
        qsort(tq, (size_t)n1, sizeof(double), cmp_double);
        double b1f = 1e3 * tf[n1 / 2], b1q = 1e3 * tq[n1 / 2];
        double sf = 0, sq = 0;
        t64 = forward_seconds(f, BATCH, 1);
        forward_seconds(q, BATCH, 1);
        int big = fit(steps / 4, t64, 2.0, 3);
        for (int i = 0; i < big; i++) {
            sf += forward_seconds(f, BATCH, 1);
            sq += forward_seconds(q, BATCH, 1);
        }
        printf("q8 %s %s b1_float_ms %.4f b1_int8_ms %.4f b64_float_sps %.0f b64_int8_sps %.0f\n",
               isas[p], kern_q8_path(), b1f, b1q, big * BATCH / sf, big * BATCH / sq);
        fflush(stdout);
    }
    kern_set_isa("auto");
    free(tf);
    free(tq);
    nerve_dataset_free(&d);
    nerve_model_free(f);
    nerve_model_free(q);
    return 0;
}
