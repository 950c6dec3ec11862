/* int8 products with AVX2: a 6 x 16 tile of int32 sums in 12 ymm accumulators. vpmaddubsw
 * (u8 x s8 pairs summed in s16) saturates when two large products meet (2 x 255 x 127 >
 * 32767), so both sides are widened to s16 and multiplied by vpmaddwd (pairs of s16
 * products summed exactly into int32): the weights are packed as s16 once
 * (kern_q8_pack), and each tile's six rows of activations are packed as s16 pairs into
 * the workspace, one 32-bit broadcast per row and pair of depths. */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#define MR KERN_Q8_AVX2_MR
#define NV 2 /* vectors of 8 channels per row */

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))
#define AVX2 __attribute__((target("avx2")))

AVX2_INLINE void tile(int kp, const uint32_t *a, const int16_t *b, int32_t *c, ptrdiff_t ldc,
                      const int mr, int nr)
{
    __m256i acc[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm256_setzero_si256();
    for (int k = 0; k < kp; k++, b += 2 * KERN_Q8_AVX2_NR, a += MR) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b);
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 16));
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m256i av = _mm256_set1_epi32((int)a[r]);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        if (nr == 16) {
            _mm256_storeu_si256((__m256i *)(c + r * ldc), acc[r][0]);
            _mm256_storeu_si256((__m256i *)(c + r * ldc + 8), acc[r][1]);
        } else {
            int32_t tmp[16];
            _mm256_storeu_si256((__m256i *)tmp, acc[r][0]);
            _mm256_storeu_si256((__m256i *)(tmp + 8), acc[r][1]);
            for (int j = 0; j < nr; j++)
                c[r * ldc + j] = tmp[j];
        }
    }
}

/* ws[k * MR + r] = A[r][2k] | A[r][2k + 1] << 16 for r < mr (rows past mr: zero). */
static void pack_rows(int mr, int kp, const uint8_t *A, ptrdiff_t lda, uint32_t *ws)
{
    for (int r = 0; r < MR; r++) {
        const uint8_t *a = A + r * lda;
        for (int k = 0; k < kp; k++)
            ws[k * MR + r] = r < mr ? (uint32_t)a[2 * k] | (uint32_t)a[2 * k + 1] << 16 : 0;
    }
}

AVX2 void kern_q8_gemm_avx2(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const int16_t *w,
                            int32_t *C, ptrdiff_t ldc, uint32_t *ws)
{
    int Kp = kern_q8_kp(K), kp = Kp / 2;
    for (int m0 = 0; m0 < M; m0 += MR) {
        int mr = M - m0 < MR ? M - m0 : MR;
        pack_rows(mr, kp, A + (size_t)m0 * lda, lda, ws);
        for (int n0 = 0; n0 < N; n0 += KERN_Q8_AVX2_NR) {
            const int16_t *panel = w + (size_t)(n0 / KERN_Q8_AVX2_NR) * KERN_Q8_AVX2_NR * Kp;
            int nr = N - n0 < KERN_Q8_AVX2_NR ? N - n0 : KERN_Q8_AVX2_NR;
            int32_t *c = C + (size_t)m0 * ldc + n0;
            switch (mr) {
            case 1: tile(kp, ws, panel, c, ldc, 1, nr); break;
            case 2: tile(kp, ws, panel, c, ldc, 2, nr); break;
            case 3: tile(kp, ws, panel, c, ldc, 3, nr); break;
            case 4: tile(kp, ws, panel, c, ldc, 4, nr); break;
            case 5: tile(kp, ws, panel, c, ldc, 5, nr); break;
            default: tile(kp, ws, panel, c, ldc, 6, nr); break;
            }
        }
    }
}

/* ---- requantisation (kern_q8_requant_one, operation for operation) -----------------------
 * AVX2 has no 64-bit arithmetic shift: x >> s = ((x + 2^63) >>> s) - 2^(63 - s) with >>> the
 * logical shift, and no 64-bit min/max: compares and blends. */
AVX2_INLINE __m256i clamp64(__m256i x, __m256i lo, __m256i hi)
{
    x = _mm256_blendv_epi8(x, lo, _mm256_cmpgt_epi64(lo, x));
    return _mm256_blendv_epi8(x, hi, _mm256_cmpgt_epi64(x, hi));
}

/* 8 sums t (+ bias already added, inside int32) -> 8 requantised values in 32-bit lanes. */
AVX2_INLINE __m256i requant8(__m256i t, __m256i vm, __m256i rnd_e, __m256i rnd_o, __m256i sh_e,
                             __m256i sh_o, __m256i top_e, __m256i top_o, __m256i vz, __m256i vlo)
{
    const __m256i sign = _mm256_set1_epi64x(INT64_MIN), lim = _mm256_set1_epi64x(1024),
                  nlim = _mm256_set1_epi64x(-1024);
    __m256i pe = _mm256_mul_epi32(t, vm);
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(t, 32), _mm256_srli_epi64(vm, 32));
    pe = _mm256_add_epi64(pe, rnd_e);
    po = _mm256_add_epi64(po, rnd_o);
    pe = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(pe, sign), sh_e), top_e);
    po = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(po, sign), sh_o), top_o);
    pe = clamp64(pe, nlim, lim);
    po = clamp64(po, nlim, lim);
    __m256i q = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    q = _mm256_add_epi32(q, vz);
    return _mm256_min_epi32(_mm256_max_epi32(q, vlo), _mm256_set1_epi32(255));
}

AVX2_INLINE __m256i lane_mask8(int left)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), idx);
}

/* round = 1 << (s - 1) (0 for s = 0), top = 1 << (63 - s), per 64-bit lane */
AVX2_INLINE void shift_terms(__m256i s64, __m256i *rnd, __m256i *top)
{
    const __m256i one = _mm256_set1_epi64x(1);
    *rnd = _mm256_sllv_epi64(one, _mm256_sub_epi64(s64, one)); /* count -1: 0 */
    *top = _mm256_sllv_epi64(one, _mm256_sub_epi64(_mm256_set1_epi64x(63), s64));
}

/* The 8 lanes' bytes (those the mask keeps) at q8. */
AVX2_INLINE void store_bytes8(uint8_t *q8, __m256i q, int n)
{
    __m128i b = _mm_packus_epi16(_mm_packus_epi32(_mm256_castsi256_si128(q),
                                                  _mm256_extracti128_si256(q, 1)),
                                 _mm_setzero_si128());
    uint8_t tmp[16];
    _mm_storeu_si128((__m128i *)tmp, b);
    memcpy(q8, tmp, (size_t)(n < 8 ? n : 8));
}

AVX2 void kern_q8_requant_run_avx2(const int32_t *c, int n, int32_t bias, int32_t mult,
                                   int32_t shift, int zp, int lo, float scale, float *out,
                                   uint8_t *q8)
{
    __m256i vb = _mm256_set1_epi32(bias), vm = _mm256_set1_epi32(mult),
            vz = _mm256_set1_epi32(zp), vlo = _mm256_set1_epi32(lo), rnd, top;
    __m256i s64 = _mm256_set1_epi64x(shift);
    shift_terms(s64, &rnd, &top);
    __m256 vsc = _mm256_set1_ps(scale);
    for (int i = 0; i < n; i += 8) {
        __m256i m = lane_mask8(n - i);
        __m256i t = _mm256_add_epi32(_mm256_maskload_epi32(c + i, m), vb);
        __m256i q = requant8(t, vm, rnd, rnd, s64, s64, top, top, vz, vlo);
        if (q8) {
            store_bytes8(q8 + i, q, n - i);
            continue;
        }
        __m256 f = _mm256_mul_ps(vsc, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz)));
        _mm256_maskstore_ps(out + i, m, f);
    }
}

AVX2 void kern_q8_requant_row_avx2(const int32_t *c, int n, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int zp, int lo,
                                   float scale, float *out, uint8_t *q8)
{
    __m256i vz = _mm256_set1_epi32(zp), vlo = _mm256_set1_epi32(lo),
            low = _mm256_set1_epi64x(0xffffffffLL);
    __m256 vsc = _mm256_set1_ps(scale);
    for (int i = 0; i < n; i += 8) {
        __m256i m = lane_mask8(n - i);
        __m256i t = _mm256_add_epi32(_mm256_maskload_epi32(c + i, m),
                                     _mm256_maskload_epi32(bias + i, m));
        __m256i vm = _mm256_maskload_epi32(mult + i, m), sh = _mm256_maskload_epi32(shift + i, m);
        __m256i se = _mm256_and_si256(sh, low), so = _mm256_srli_epi64(sh, 32), re, ro, te, to;
        shift_terms(se, &re, &te);
        shift_terms(so, &ro, &to);
        __m256i q = requant8(t, vm, re, ro, se, so, te, to, vz, vlo);
        if (q8) {
            store_bytes8(q8 + i, q, n - i);
            continue;
        }
        __m256 f = _mm256_mul_ps(vsc, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz)));
        _mm256_maskstore_ps(out + i, m, f);
    }
}

/* ---- direct convolution: 6 channels x 16 wide pixels, s16 pairs --------------------------- */

#define CMR 6
#define CNV 2

/* panel[(g * CNV + v) * 16 + px * 2 + j] (s16) = img[p0 + 8 v + px + off[2 g + j]] */
AVX2_INLINE void pack_panel(int kp, const uint8_t *img, size_t p0, const int32_t *off,
                            int16_t *panel)
{
    for (int g = 0; g < kp; g++, off += 2)
        for (int v = 0; v < CNV; v++) {
            const uint8_t *base = img + p0 + 8 * v;
            __m128i a = _mm_loadl_epi64((const __m128i *)(base + off[0]));
            __m128i b = _mm_loadl_epi64((const __m128i *)(base + off[1]));
            _mm256_storeu_si256((__m256i *)(panel + ((size_t)g * CNV + v) * 16),
                                _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
        }
}

/* w16: the AVX2 weight panels ([N/16][Kp/2][16][2] s16); channel n's pair g is 4 bytes. */
AVX2_INLINE void conv_tile(int kp, const int16_t *panel, const int16_t *w16, int n0, int Kp,
                           int32_t *c, size_t ldc, const int mr)
{
    __m256i acc[CMR][CNV];
    const int16_t *wrow[CMR];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        int n = n0 + r;
        wrow[r] = w16 + (size_t)(n / KERN_Q8_AVX2_NR) * KERN_Q8_AVX2_NR * Kp + (n % KERN_Q8_AVX2_NR) * 2;
        for (int v = 0; v < CNV; v++)
            acc[r][v] = _mm256_setzero_si256();
    }
    for (int g = 0; g < kp; g++, panel += 16 * CNV) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)panel);
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(panel + 16));
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            int32_t w2;
            memcpy(&w2, wrow[r] + (size_t)g * 2 * KERN_Q8_AVX2_NR, 4);
            __m256i wb = _mm256_set1_epi32(w2);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a0, wb));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a1, wb));
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < CNV; v++)
            _mm256_storeu_si256((__m256i *)(c + r * ldc + 8 * v), acc[r][v]);
}

AVX2 void kern_q8_conv_sums_avx2(const kern_q8_conv_plan *p, const int32_t *off,
                                 const uint8_t *img, const int16_t *w16, int16_t *panel,
                                 int32_t *sums)
{
    int Kp = p->Kp, kp = Kp / 2;
    for (size_t p0 = 0; p0 < p->spanp; p0 += 8 * CNV) {
        pack_panel(kp, img, p0, off, panel);
        for (int n0 = 0; n0 < p->N; n0 += CMR) {
            int32_t *c = sums + (size_t)n0 * p->spanp + p0;
            switch (p->N - n0 < CMR ? p->N - n0 : CMR) {
            case 1: conv_tile(kp, panel, w16, n0, Kp, c, p->spanp, 1); break;
            case 2: conv_tile(kp, panel, w16, n0, Kp, c, p->spanp, 2); break;
            case 3: conv_tile(kp, panel, w16, n0, Kp, c, p->spanp, 3); break;
            case 4: conv_tile(kp, panel, w16, n0, Kp, c, p->spanp, 4); break;
            case 5: conv_tile(kp, panel, w16, n0, Kp, c, p->spanp, 5); break;
            default: conv_tile(kp, panel, w16, n0, Kp, c, p->spanp, 6); break;
            }
        }
    }
}

/* ---- the residual add: 16 bytes of each input a step, the rest as kern_q8_add_one ------------ */

AVX2_INLINE __m256i add8(const uint8_t *a, const uint8_t *b, __m256i za, __m256i zb, __m256i ma,
                         __m256i mb, __m256i zy, __m256i lo, __m256i top, __m256i rnd, __m128i sh)
{
    __m256i va = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)a));
    __m256i vb = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)b));
    __m256i t = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_sub_epi32(va, za), ma),
                                 _mm256_mullo_epi32(_mm256_sub_epi32(vb, zb), mb));
    t = _mm256_sra_epi32(_mm256_add_epi32(t, rnd), sh);
    return _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(t, zy), lo), top);
}

AVX2 void kern_q8_add_avx2(const kern_q8_addp *p, const uint8_t *a, const uint8_t *b, size_t n,
                           uint8_t *out)
{
    __m256i za = _mm256_set1_epi32(p->za), zb = _mm256_set1_epi32(p->zb),
            ma = _mm256_set1_epi32(p->ma), mb = _mm256_set1_epi32(p->mb),
            zy = _mm256_set1_epi32(p->zy), lo = _mm256_set1_epi32(p->lo),
            top = _mm256_set1_epi32(255),
            rnd = _mm256_set1_epi32(p->shift > 0 ? (int32_t)1 << (p->shift - 1) : 0);
    __m128i sh = _mm_cvtsi32_si128(p->shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i t0 = add8(a + i, b + i, za, zb, ma, mb, zy, lo, top, rnd, sh);
        __m256i t1 = add8(a + i + 8, b + i + 8, za, zb, ma, mb, zy, lo, top, rnd, sh);
        /* 0..255 in every lane: the packs saturate nothing; the permute undoes their lane
         * interleave */
        __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(t0, t1), 0xD8);
        __m128i q = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        _mm_storeu_si128((__m128i *)(out + i), q);
    }
    for (; i < n; i++)
        out[i] = (uint8_t)kern_q8_add_one(a[i], b[i], p);
}

#endif
