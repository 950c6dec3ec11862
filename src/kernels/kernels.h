/* Kernels: raw loops on float pointers. They never allocate and never print.
 * Matrices are row-major; ld* are row strides in elements. */
#ifndef NERVE_KERNELS_H
#define NERVE_KERNELS_H

#include <stddef.h>

/* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, op = transpose when trans_* != 0.
 * A is [M,K] (lda >= K) or, transposed, [K,M] (lda >= M); likewise B. beta == 0 ignores
 * C's previous contents (NaN included). Dispatches at run time to the best kernel for the
 * CPU (AVX-512, AVX2+FMA, portable C) and uses the thread pool for large products. */
void kern_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Forces a kernel path ("auto", "portable", "avx2", "avx512") for tests; returns 0 if
 * the path is not available on this CPU. */
int kern_set_isa(const char *name);
const char *kern_isa_name(void);

/* Number of worker threads used by kernels (default: NERVE_THREADS or the cores). */
void kern_set_threads(int n);
int kern_threads(void);

#endif
