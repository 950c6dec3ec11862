/* AVX2+FMA micro-kernel: a 6 x 16 tile of C held in 12 ymm accumulators (two vectors per
 * row), one broadcast of A per row and two loads of B per k. Also the 8x8-transpose pack
 * that the AVX2 and AVX-512 paths share. Compiled for the target via attributes so the rest
 * of the library needs no -march flags; only called after a run-time CPU check. */
#include "kernels.h"

/* x86-64 only: elsewhere this file compiles to nothing (isa.c never chooses this path). */
#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define MR 6
#define NV 2 /* vectors of 8 per row */
#define NR (8 * NV)

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* Lane mask selecting the first `left` floats of a vector (all of them if left >= 8). */
AVX2_INLINE __m256i lane_mask(int left)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The tile for a compile-time mr; `full` (nr == NR) avoids masked loads in the k loop. */
AVX2_INLINE void tile(int kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                      ptrdiff_t ldc, const int mr, int nr, const int full, float alpha, float beta)
{
    __m256i mask[NV];
    __m256 acc[MR][NV];
    for (int v = 0; v < NV; v++)
        mask[v] = lane_mask(nr - 8 * v);
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++, a += MR, b += ldb) {
        __m256 bv[NV];
        for (int v = 0; v < NV; v++)
            bv[v] = full ? _mm256_loadu_ps(b + 8 * v) : _mm256_maskload_ps(b + 8 * v, mask[v]);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_broadcast_ss(a + r);
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++) {
            float *cp = c + r * ldc + 8 * v;
            __m256 x = _mm256_mul_ps(va, acc[r][v]);
            if (full) {
                if (beta != 0.0f)
                    x = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cp), x);
                _mm256_storeu_ps(cp, x);
            } else {
                if (beta != 0.0f)
                    x = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cp, mask[v]), x);
                _mm256_maskstore_ps(cp, mask[v], x);
            }
        }
}

#define TILE_CASE(m)                                                                      \
    case m:                                                                               \
        if (nr == NR)                                                                     \
            tile(kc, a, b, ldb, c, ldc, m, nr, 1, alpha, beta);                           \
        else                                                                              \
            tile(kc, a, b, ldb, c, ldc, m, nr, 0, alpha, beta);                           \
        break;

static AVX2 void micro_avx2(int kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                            ptrdiff_t ldc, int mr, int nr, float alpha, float beta)
{
    switch (mr) {
        TILE_CASE(1)
        TILE_CASE(2)
        TILE_CASE(3)
        TILE_CASE(4)
        TILE_CASE(5)
    default:
        TILE_CASE(6)
    }
}

/* In-register transpose of 8 rows of 8 floats. */
AVX2_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0x44);
        u[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0xEE);
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* Transposes a w x kc block (rows of stride ld) into dst[k*P + r]: 8x8 blocks in registers,
 * 4x4 blocks for a remainder of four rows, scalar for the rest. */
AVX2 void kern_gemm_pack_t_avx2(int kc, int w, const float *src, ptrdiff_t ld, int P, float *dst)
{
    int r = 0;
    for (; r + 8 <= w; r += 8) {
        int k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 x[8];
            for (int i = 0; i < 8; i++)
                x[i] = _mm256_loadu_ps(src + (r + i) * ld + k);
            transpose8(x);
            for (int i = 0; i < 8; i++)
                _mm256_storeu_ps(dst + (size_t)(k + i) * P + r, x[i]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < 8; i++)
                dst[(size_t)k * P + r + i] = src[(r + i) * ld + k];
    }
    for (; r + 4 <= w; r += 4) {
        int k = 0;
        for (; k + 4 <= kc; k += 4) {
            __m128 x0 = _mm_loadu_ps(src + r * ld + k), x1 = _mm_loadu_ps(src + (r + 1) * ld + k);
            __m128 x2 = _mm_loadu_ps(src + (r + 2) * ld + k), x3 = _mm_loadu_ps(src + (r + 3) * ld + k);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            _mm_storeu_ps(dst + (size_t)k * P + r, x0);
            _mm_storeu_ps(dst + (size_t)(k + 1) * P + r, x1);
            _mm_storeu_ps(dst + (size_t)(k + 2) * P + r, x2);
            _mm_storeu_ps(dst + (size_t)(k + 3) * P + r, x3);
        }
        for (; k < kc; k++)
            for (int i = 0; i < 4; i++)
                dst[(size_t)k * P + r + i] = src[(r + i) * ld + k];
    }
    for (; r < w; r++)
        for (int k = 0; k < kc; k++)
            dst[(size_t)k * P + r] = src[r * ld + k];
}

const kern_gemm_impl kern_gemm_avx2_impl = {"avx2", MR, NR, micro_avx2, kern_gemm_pack_t_avx2,
                                            NULL};

#endif
