/* Portable C micro-kernel (4 x 16 tile) and transposing pack: the reference path and the
 * fallback for CPUs without AVX2. Written so that the compiler can vectorise the full tile
 * with baseline SIMD. */
#include "kernels.h"

#define MR 4
#define NR 16

/* Writes acc[mr, nr] into C as alpha * acc + beta * C (beta == 0 ignores C). */
static void store_tile(const float acc[MR][NR], float *c, ptrdiff_t ldc, int mr, int nr,
                       float alpha, float beta)
{
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        for (int j = 0; j < nr; j++)
            cr[j] = beta == 0.0f ? alpha * acc[r][j] : alpha * acc[r][j] + beta * cr[j];
    }
}

static void micro_portable(int kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                           ptrdiff_t ldc, int mr, int nr, float alpha, float beta)
{
    float acc[MR][NR] = {{0}};
    if (nr == NR) {
        /* Full width: constant bounds let the compiler keep acc in vector registers. */
        for (int k = 0; k < kc; k++, a += MR, b += ldb)
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < NR; j++)
                    acc[r][j] += a[r] * b[j];
    } else {
        for (int k = 0; k < kc; k++, a += MR, b += ldb)
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < nr; j++)
                    acc[r][j] += a[r] * b[j];
    }
    store_tile((const float(*)[NR])acc, c, ldc, mr, nr, alpha, beta);
}

void kern_gemm_pack_t_portable(int kc, int w, const float *src, ptrdiff_t ld, int P, float *dst)
{
    /* Row by row: reads are contiguous, writes stride through a panel that sits in L1. */
    for (int r = 0; r < w; r++)
        for (int k = 0; k < kc; k++)
            dst[(size_t)k * P + r] = src[r * ld + k];
}

const kern_gemm_impl kern_gemm_portable_impl = {"portable", MR, NR, micro_portable,
                                                kern_gemm_pack_t_portable, NULL};
