/* AVX-512F micro-kernel: a 12 x 32 tile of C held in 24 zmm accumulators (two vectors per
 * row). Per k: two loads of B and twelve broadcasts of A feed 24 independent FMAs, enough
 * to cover the FMA latency on both pipes. Column edges use lane masks (masked loads never
 * touch memory beyond nr), row edges a kernel compiled for that row count. */
#include "kernels.h"

#include <immintrin.h>

#define MR 12
#define NV 2 /* vectors of 16 per row */
#define NR (16 * NV)
#define B_PREFETCH_K 16 /* rows of B ahead */

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

AVX512_INLINE __mmask16 lane_mask(int left)
{
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* The tile for a compile-time mr. */
AVX512_INLINE void tile(int kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                        ptrdiff_t ldc, const int mr, int nr, float alpha, float beta)
{
    __mmask16 mask[NV];
    __m512 acc[MR][NV];
    for (int v = 0; v < NV; v++)
        mask[v] = lane_mask(nr - 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + NR - 1), _MM_HINT_T0);
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++, a += MR, b += ldb) {
        __m512 bv[NV];
        for (int v = 0; v < NV; v++) {
            bv[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
            /* B streams from L2; the hardware prefetcher alone leaves FMA slots idle. */
            _mm_prefetch((const char *)(b + B_PREFETCH_K * ldb + 16 * v), _MM_HINT_T0);
        }
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(a[r]);
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++) {
            float *cp = c + r * ldc + 16 * v;
            __m512 x = _mm512_mul_ps(va, acc[r][v]);
            if (beta != 0.0f)
                x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], cp), x);
            _mm512_mask_storeu_ps(cp, mask[v], x);
        }
}

#define TILE_CASE(m)                                                                      \
    case m:                                                                               \
        tile(kc, a, b, ldb, c, ldc, m, nr, alpha, beta);                                  \
        break;

static AVX512 void micro_avx512(int kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                                ptrdiff_t ldc, int mr, int nr, float alpha, float beta)
{
    switch (mr) {
        TILE_CASE(1)
        TILE_CASE(2)
        TILE_CASE(3)
        TILE_CASE(4)
        TILE_CASE(5)
        TILE_CASE(6)
        TILE_CASE(7)
        TILE_CASE(8)
        TILE_CASE(9)
        TILE_CASE(10)
        TILE_CASE(11)
    default:
        TILE_CASE(MR)
    }
}

const kern_gemm_impl kern_gemm_avx512_impl = {"avx512", MR, NR, micro_avx512,
                                              kern_gemm_pack_t_avx2};
