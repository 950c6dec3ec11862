/* AVX-512F micro-kernel: a 12 x 32 tile of C held in 24 zmm accumulators (two vectors per
 * row). Per k: two loads of B and twelve broadcasts of A feed 24 independent FMAs, enough
 * to cover the FMA latency on both pipes. Column edges use lane masks (masked loads never
 * touch memory beyond nr), row edges a kernel compiled for that row count. */
#include "kernels.h"

/* x86-64 only: elsewhere this file compiles to nothing (isa.c never chooses this path). */
#if defined(__x86_64__) && defined(__GNUC__)

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

/* ---- small M: one pass over B, nothing packed ----------------------------------------- */

#define SMALL_M KERN_GEMM_SMALL_M
#define SMALL_M_CACHED_BYTES (4 << 20) /* a B up to this size is expected to sit in cache */

AVX512_INLINE void store_scaled(float *c, float s, float alpha, float beta)
{
    *c = beta != 0.0f ? alpha * s + beta * *c : alpha * s;
}

/* op(B) = B^T: C[0:M, 0:nb] from dot products of A's M rows with NB rows of B (nb <= NB;
 * rows past nb re-read the last one and are dropped). M * NB independent accumulators hide
 * the FMA latency; every B vector feeds M FMAs. */
AVX512_INLINE void dot_block(const int M, const int NB, int nb, int K, const float *A,
                             ptrdiff_t lda, const float *B, ptrdiff_t ldb, float *c,
                             ptrdiff_t ldc, float alpha, float beta)
{
    const float *b[8];
    __m512 acc[SMALL_M][8];
    for (int j = 0; j < NB; j++)
        b[j] = B + (j < nb ? j : nb - 1) * ldb;
    for (int m = 0; m < M; m++)
        for (int j = 0; j < NB; j++)
            acc[m][j] = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 16) {
        __mmask16 mk = lane_mask(K - k);
        __m512 av[SMALL_M];
        for (int m = 0; m < M; m++)
            av[m] = _mm512_maskz_loadu_ps(mk, A + m * lda + k);
#pragma GCC unroll 8
        for (int j = 0; j < NB; j++) {
            __m512 bv = _mm512_maskz_loadu_ps(mk, b[j] + k);
            for (int m = 0; m < M; m++)
                acc[m][j] = _mm512_fmadd_ps(av[m], bv, acc[m][j]);
        }
    }
    float sum[SMALL_M][8]; /* reduced with constant indices: acc stays in registers */
    for (int m = 0; m < M; m++)
        for (int j = 0; j < NB; j++)
            sum[m][j] = _mm512_reduce_add_ps(acc[m][j]);
    for (int m = 0; m < M; m++)
        for (int j = 0; j < nb; j++)
            store_scaled(c + m * ldc + j, sum[m][j], alpha, beta);
}

/* op(B) = B: C[0:M, 0:nc] (nc <= 16 VECS) as M rows of VECS vectors accumulated over B's rows,
 * each B vector feeding M FMAs. */
AVX512_INLINE void axpy_block(const int M, const int VECS, int nc, int K, const float *A,
                              ptrdiff_t lda, const float *B, ptrdiff_t ldb, int far, float *c,
                              ptrdiff_t ldc, float alpha, float beta)
{
    __mmask16 mask[8];
    __m512 acc[SMALL_M][8];
    for (int v = 0; v < VECS; v++)
        mask[v] = lane_mask(nc - 16 * v);
    for (int m = 0; m < M; m++)
        for (int v = 0; v < VECS; v++)
            acc[m][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < K; k++, B += ldb) {
        /* From memory, rows far apart lose the hardware prefetcher; from cache, the extra
         * instructions only cost. */
        if (far)
            for (int v = 0; v < VECS; v++)
                _mm_prefetch((const char *)(B + B_PREFETCH_K * ldb + 16 * v), _MM_HINT_T0);
        for (int m = 0; m < M; m++) {
            __m512 av = _mm512_set1_ps(A[m * lda + k]);
#pragma GCC unroll 8
            for (int v = 0; v < VECS; v++)
                acc[m][v] = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(mask[v], B + 16 * v),
                                            acc[m][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int m = 0; m < M; m++)
        for (int v = 0; v < VECS; v++) {
            float *cp = c + m * ldc + 16 * v;
            __m512 x = _mm512_mul_ps(va, acc[m][v]);
            if (beta != 0.0f)
                x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], cp), x);
            _mm512_mask_storeu_ps(cp, mask[v], x);
        }
}

/* Columns [n0, n1) for a compile-time M: 8 rows of B^T per dot block (4 from M = 3 on, to
 * stay within the registers), 128 (64) columns per axpy block. */
AVX512_INLINE void small_cols(const int M, int tb, int n0, int n1, int K, float alpha,
                              const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                              float beta, float *C, ptrdiff_t ldc)
{
    const int NB = M <= 2 ? 8 : 4, VECS = M == 1 ? 8 : 4;
    if (tb)
        for (int j = n0; j < n1; j += NB)
            dot_block(M, NB, n1 - j < NB ? n1 - j : NB, K, A, lda, B + j * ldb, ldb, C + j, ldc,
                      alpha, beta);
    else {
        int j = n0, far = (double)K * ldb * sizeof(float) > SMALL_M_CACHED_BYTES;
        for (; j + 16 * VECS <= n1; j += 16 * VECS)
            axpy_block(M, VECS, 16 * VECS, K, A, lda, B + j, ldb, far, C + j, ldc, alpha, beta);
        for (; j < n1; j += 32) /* the remainder in narrower blocks: no idle lanes */
            axpy_block(M, 2, n1 - j, K, A, lda, B + j, ldb, far, C + j, ldc, alpha, beta);
    }
}

static AVX512 void small_m_avx512(int tb, int M, int n0, int n1, int K, float alpha,
                                  const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                                  float beta, float *C, ptrdiff_t ldc)
{
    switch (M) {
    case 1:
        small_cols(1, tb, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
        break;
    case 2:
        small_cols(2, tb, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
        break;
    case 3:
        small_cols(3, tb, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
        break;
    default:
        small_cols(SMALL_M, tb, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
}

const kern_gemm_impl kern_gemm_avx512_impl = {"avx512", MR, NR, micro_avx512,
                                              kern_gemm_pack_t_avx2, small_m_avx512};

#endif
