/* The thread pool behind every parallel loop, and the public face of the thread count.
 * This first implementation maps onto OpenMP; see kernels.h for the contract. */
#include "nerve.h"
#include "kernels.h"

#include <omp.h>

void nerve_set_threads(int n) { kern_set_threads(n); }
int nerve_threads(void) { return kern_threads(); }

void kern_split(size_t n, int t, int T, size_t *begin, size_t *end)
{
    size_t q = n / (size_t)T, r = n % (size_t)T, ut = (size_t)t;
    *begin = ut * q + (ut < r ? ut : r);
    *end = *begin + q + (ut < r ? 1 : 0);
}

void kern_run(int T, kern_task_fn fn, void *ctx)
{
    int max = kern_threads();
    if (T > max)
        T = max;
    if (T < 2 || omp_in_parallel()) {
        fn(ctx, 0, 1);
        return;
    }
#pragma omp parallel num_threads(T)
    fn(ctx, omp_get_thread_num(), omp_get_num_threads());
}

void kern_barrier(void)
{
#pragma omp barrier
}

typedef struct {
    size_t n;
    kern_range_fn fn;
    void *ctx;
} range_job;

static void range_task(void *p, int t, int T)
{
    range_job *j = p;
    size_t b, e;
    kern_split(j->n, t, T, &b, &e);
    if (b < e)
        j->fn(j->ctx, b, e);
}

void kern_parallel_for(size_t n, size_t grain, kern_range_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (grain < 1)
        grain = 1;
    size_t T = n / grain;
    if (T > (size_t)kern_threads())
        T = (size_t)kern_threads();
    if (T < 2) {
        fn(ctx, 0, n);
        return;
    }
    range_job j = {n, fn, ctx};
    kern_run((int)T, range_task, &j);
}
