/* Timing helpers shared by the benchmark programs in bench/. */
#ifndef NERVE_BENCH_UTIL_H
#define NERVE_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* qsort order for doubles (medians of timings). */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median and best microseconds of `calls` timed calls of fn(ctx), after 20 untimed
 * ones; t holds `calls` doubles. */
static inline void bench_time_calls(void (*fn)(void *), void *ctx, int calls, double *t,
                                    double *median, double *best)
{
    for (int i = 0; i < 20; i++)
        fn(ctx);
    for (int i = 0; i < calls; i++) {
        double t0 = now();
        fn(ctx);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)calls, sizeof(double), cmp_double);
    *median = 1e6 * t[calls / 2];
    *best = 1e6 * t[0];
}

#endif
