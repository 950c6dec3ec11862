/* int8 products with AVX-512 VNNI: an 8 x 32 tile of int32 sums in 16 zmm accumulators.
 * Per group of 4 depths: two loads of the weight panel (32 channels x 4 s8) and eight
 * broadcasts of 4 activation bytes feed 16 vpdpbusd (u8 x s8, four products summed into
 * each int32 lane, no saturation). Weights are packed once (kern_q8_pack), channels past N
 * are zero, and stores of a panel's last columns are masked. Also the vector quantiser of
 * activations, which does kern_q8_quantize's float multiply, clamps and rounding. */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#define MR 8
#define NV 2 /* vectors of 16 channels per row */

#define VNNI_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

VNNI_INLINE __mmask16 lane_mask(int left)
{
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

VNNI_INLINE void tile(int k4, const uint8_t *a, ptrdiff_t lda, const int8_t *b, int32_t *c,
                      ptrdiff_t ldc, const int mr, int nr)
{
    __m512i acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_setzero_si512();
    for (int k = 0; k < k4; k++, b += 4 * KERN_Q8_VNNI_NR) {
        __m512i b0 = _mm512_loadu_si512((const void *)b);
        __m512i b1 = _mm512_loadu_si512((const void *)(b + 64));
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            int32_t a4;
            memcpy(&a4, a + r * lda + 4 * k, 4);
            __m512i av = _mm512_set1_epi32(a4);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
        }
    }
    __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - 16);
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_epi32(c + r * ldc, m0, acc[r][0]);
        _mm512_mask_storeu_epi32(c + r * ldc + 16, m1, acc[r][1]);
    }
}

VNNI void kern_q8_gemm_avx512vnni(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const int8_t *w,
                            int32_t *C, ptrdiff_t ldc)
{
    int Kp = kern_q8_kp(K), k4 = Kp / 4;
    for (int n0 = 0; n0 < N; n0 += KERN_Q8_VNNI_NR) {
        const int8_t *panel = w + (size_t)(n0 / KERN_Q8_VNNI_NR) * KERN_Q8_VNNI_NR * Kp;
        int nr = N - n0 < KERN_Q8_VNNI_NR ? N - n0 : KERN_Q8_VNNI_NR;
        for (int m0 = 0; m0 < M; m0 += MR) {
            const uint8_t *a = A + (size_t)m0 * lda;
            int32_t *c = C + (size_t)m0 * ldc + n0;
            switch (M - m0 < MR ? M - m0 : MR) {
            case 1: tile(k4, a, lda, panel, c, ldc, 1, nr); break;
            case 2: tile(k4, a, lda, panel, c, ldc, 2, nr); break;
            case 3: tile(k4, a, lda, panel, c, ldc, 3, nr); break;
            case 4: tile(k4, a, lda, panel, c, ldc, 4, nr); break;
            case 5: tile(k4, a, lda, panel, c, ldc, 5, nr); break;
            case 6: tile(k4, a, lda, panel, c, ldc, 6, nr); break;
            case 7: tile(k4, a, lda, panel, c, ldc, 7, nr); break;
            default: tile(k4, a, lda, panel, c, ldc, 8, nr); break;
            }
        }
    }
}

VNNI void kern_q8_quantize_avx512(const float *x, size_t n, float inv_scale, int zp, uint8_t *q)
{
    __m512 inv = _mm512_set1_ps(inv_scale), lo = _mm512_set1_ps(-512.0f),
           hi = _mm512_set1_ps(512.0f);
    __m512i z = _mm512_set1_epi32(zp), zero = _mm512_setzero_si512(),
            top = _mm512_set1_epi32(255);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = lane_mask(n - i > 16 ? 16 : (int)(n - i));
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        v = _mm512_max_ps(v, lo); /* NaN: the second operand, as fmaxf(NaN, lo) gives lo */
        v = _mm512_min_ps(v, hi);
        __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(v), z); /* round half to even */
        r = _mm512_min_epi32(_mm512_max_epi32(r, zero), top);
        _mm_mask_storeu_epi8(q + i, m, _mm512_cvtepi32_epi8(r));
    }
}

/* ---- requantisation of a run of one channel ---------------------------------------------- */

/* t + bias cannot overflow int32 (KERN_Q8_MAX_K and the folded bias bound it), so the sums
 * stay in 32-bit lanes: even and odd lanes are multiplied into 64 bits separately, rounded,
 * shifted and clamped there, and the low halves recombined. */
VNNI_INLINE __m512i requant_tail(__m512i p, __m512i vr, __m128i vs)
{
    p = _mm512_sra_epi64(_mm512_add_epi64(p, vr), vs);
    return _mm512_min_epi64(_mm512_max_epi64(p, _mm512_set1_epi64(-1024)), _mm512_set1_epi64(1024));
}

VNNI void kern_q8_requant_run_avx512(const int32_t *c, int n, int32_t bias, int32_t mult,
                                     int32_t shift, int zp, int lo, float scale, float *out,
                                     uint8_t *q8)
{
    __m512i vb = _mm512_set1_epi32(bias), vm = _mm512_set1_epi64(mult),
            vr = _mm512_set1_epi64(shift > 0 ? (int64_t)1 << (shift - 1) : 0),
            vz = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo),
            vhi = _mm512_set1_epi32(255);
    __m128i vs = _mm_cvtsi32_si128(shift);
    __m512 vsc = _mm512_set1_ps(scale);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = lane_mask(n - i);
        __m512i t = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, c + i), vb);
        __m512i even = requant_tail(_mm512_mul_epi32(t, vm), vr, vs);
        __m512i odd = requant_tail(_mm512_mul_epi32(_mm512_srli_epi64(t, 32), vm), vr, vs);
        __m512i q = _mm512_mask_blend_epi32((__mmask16)0xAAAA, even, _mm512_slli_epi64(odd, 32));
        q = _mm512_add_epi32(q, vz);
        q = _mm512_min_epi32(_mm512_max_epi32(q, vlo), vhi);
        if (q8) {
            _mm512_mask_cvtepi32_storeu_epi8(q8 + i, m, q);
            continue;
        }
        __m512 f = _mm512_mul_ps(vsc, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, vz)));
        _mm512_mask_storeu_ps(out + i, m, f);
    }
}

/* 2 x 2 max pooling with stride 2 of sums then their requantisation to bytes, one channel:
 * q8[py * OW + px] = requant(max of rows 2py, 2py + 1 and columns 2px, 2px + 1 of s) for
 * py < OH, px < OW (row stride sy). Max and requantisation commute (it is nondecreasing). */
VNNI void kern_q8_pool2_requant_avx512(const int32_t *s, ptrdiff_t sy, int OH, int OW,
                                       int32_t bias, int32_t mult, int32_t shift, int zp, int lo,
                                       uint8_t *q8)
{
    __m512i vb = _mm512_set1_epi32(bias), vm = _mm512_set1_epi64(mult),
            vr = _mm512_set1_epi64(shift > 0 ? (int64_t)1 << (shift - 1) : 0),
            vz = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo),
            vhi = _mm512_set1_epi32(255);
    __m128i vs = _mm_cvtsi32_si128(shift);
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int py = 0; py < OH; py++) {
        const int32_t *r0 = s + 2 * py * sy, *r1 = r0 + sy;
        for (int px = 0; px < OW; px += 16) {
            int left = 2 * (OW - px);
            __mmask16 m0 = lane_mask(left), m1 = lane_mask(left - 16), m = lane_mask(OW - px);
            const int32_t *a = r0 + 2 * px, *b = r1 + 2 * px;
            __m512i v0 = _mm512_max_epi32(_mm512_maskz_loadu_epi32(m0, a),
                                          _mm512_maskz_loadu_epi32(m0, b));
            __m512i v1 = _mm512_max_epi32(_mm512_maskz_loadu_epi32(m1, a + 16),
                                          _mm512_maskz_loadu_epi32(m1, b + 16));
            __m512i t = _mm512_max_epi32(_mm512_permutex2var_epi32(v0, ev, v1),
                                         _mm512_permutex2var_epi32(v0, od, v1));
            t = _mm512_add_epi32(t, vb);
            __m512i even = requant_tail(_mm512_mul_epi32(t, vm), vr, vs);
            __m512i odd = requant_tail(_mm512_mul_epi32(_mm512_srli_epi64(t, 32), vm), vr, vs);
            __m512i q = _mm512_mask_blend_epi32((__mmask16)0xAAAA, even, _mm512_slli_epi64(odd, 32));
            q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, vz), vlo), vhi);
            _mm512_mask_cvtepi32_storeu_epi8(q8 + (size_t)py * OW + px, m, q);
        }
    }
}

/* The same for a row of channels: constants per lane. */
VNNI void kern_q8_requant_row_avx512(const int32_t *c, int n, const int32_t *bias,
                                     const int32_t *mult, const int32_t *shift, int zp, int lo,
                                     float scale, float *out, uint8_t *q8)
{
    __m512i vz = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(255),
            low = _mm512_set1_epi64(0xffffffffLL), one = _mm512_set1_epi64(1),
            lim = _mm512_set1_epi64(1024), nlim = _mm512_set1_epi64(-1024);
    __m512 vsc = _mm512_set1_ps(scale);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = lane_mask(n - i);
        __m512i t = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, c + i),
                                     _mm512_maskz_loadu_epi32(m, bias + i));
        __m512i vm = _mm512_maskz_loadu_epi32(m, mult + i), sh = _mm512_maskz_loadu_epi32(m, shift + i);
        __m512i q2[2];
        for (int h = 0; h < 2; h++) {
            __m512i th = h ? _mm512_srli_epi64(t, 32) : t;
            __m512i mh = h ? _mm512_srli_epi64(vm, 32) : vm;
            __m512i s64 = h ? _mm512_srli_epi64(sh, 32) : _mm512_and_si512(sh, low);
            /* 1 << (shift - 1); a count of -1 (shift 0) shifts everything out: no rounding */
            __m512i rnd = _mm512_sllv_epi64(one, _mm512_sub_epi64(s64, one));
            __m512i p = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(th, mh), rnd), s64);
            q2[h] = _mm512_min_epi64(_mm512_max_epi64(p, nlim), lim);
        }
        __m512i q = _mm512_mask_blend_epi32((__mmask16)0xAAAA, q2[0], _mm512_slli_epi64(q2[1], 32));
        q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, vz), vlo), vhi);
        if (q8) {
            _mm512_mask_cvtepi32_storeu_epi8(q8 + i, m, q);
            continue;
        }
        __m512 f = _mm512_mul_ps(vsc, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, vz)));
        _mm512_mask_storeu_ps(out + i, m, f);
    }
}

/* ---- link tables: o[i] = lut[o[i]] with vpermi2b (AVX-512 VBMI) -------------------------- */

/* Two lookups of 128 entries each (index bits 0..6), the result chosen by index bit 7. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void
kern_q8_lut_avx512vbmi(const uint8_t *lut, uint8_t *o, size_t n)
{
    __m512i t0 = _mm512_loadu_si512((const void *)lut),
            t1 = _mm512_loadu_si512((const void *)(lut + 64)),
            t2 = _mm512_loadu_si512((const void *)(lut + 128)),
            t3 = _mm512_loadu_si512((const void *)(lut + 192));
    for (size_t i = 0; i < n; i += 64) {
        __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
        __m512i x = _mm512_maskz_loadu_epi8(m, o + i);
        __m512i lo = _mm512_permutex2var_epi8(t0, x, t1), hi = _mm512_permutex2var_epi8(t2, x, t3);
        __m512i y = _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), lo, hi);
        _mm512_mask_storeu_epi8(o + i, m, y);
    }
}

/* ---- direct convolution: 6 channels x 64 wide pixels ------------------------------------- */

#define CMR 6
#define CNV 4

/* panel[g * 256 + v * 64 + px * 4 + j] = img[p0 + 16 v + px + off[4 g + j]]: for each group of
 * 4 taps, 4 vectors of 16 pixels x 4 taps (the byte order vpdpbusd reads). */
VNNI_INLINE void pack_panel(int k4, const uint8_t *img, size_t p0, const int32_t *off,
                            uint8_t *panel)
{
    for (int g = 0; g < k4; g++, off += 4)
        for (int v = 0; v < CNV; v++) {
            const uint8_t *base = img + p0 + 16 * v;
            __m128i a = _mm_loadu_si128((const __m128i *)(base + off[0]));
            __m128i b = _mm_loadu_si128((const __m128i *)(base + off[1]));
            __m128i c = _mm_loadu_si128((const __m128i *)(base + off[2]));
            __m128i d = _mm_loadu_si128((const __m128i *)(base + off[3]));
            __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
            __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
            uint8_t *dst = panel + (size_t)g * 256 + v * 64;
            _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(ab_lo, cd_lo));
            _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
            _mm_storeu_si128((__m128i *)(dst + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
            _mm_storeu_si128((__m128i *)(dst + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
        }
}

VNNI_INLINE void conv_tile(int k4, const uint8_t *panel, const int8_t *w, int Kp, int32_t *c,
                           size_t ldc, const int mr)
{
    __m512i acc[CMR][CNV];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < CNV; v++)
            acc[r][v] = _mm512_setzero_si512();
    for (int g = 0; g < k4; g++, panel += 256) {
        __m512i a[CNV];
        for (int v = 0; v < CNV; v++)
            a[v] = _mm512_loadu_si512((const void *)(panel + 64 * v));
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            int32_t w4;
            memcpy(&w4, w + (size_t)r * Kp + 4 * g, 4);
            __m512i wb = _mm512_set1_epi32(w4);
            for (int v = 0; v < CNV; v++)
                acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], a[v], wb);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < CNV; v++)
            _mm512_storeu_si512((void *)(c + r * ldc + 16 * v), acc[r][v]);
}

VNNI void kern_q8_conv_sums_avx512vnni(const kern_q8_conv_plan *p, const int32_t *off,
                                 const uint8_t *img, const int8_t *w, uint8_t *panel,
                                 int32_t *sums)
{
    int Kp = p->Kp, k4 = Kp / 4;
    for (size_t p0 = 0; p0 < p->spanp; p0 += 16 * CNV) {
        pack_panel(k4, img, p0, off, panel);
        for (int n0 = 0; n0 < p->N; n0 += CMR) {
            const int8_t *wr = w + (size_t)n0 * Kp;
            int32_t *c = sums + (size_t)n0 * p->spanp + p0;
            switch (p->N - n0 < CMR ? p->N - n0 : CMR) {
            case 1: conv_tile(k4, panel, wr, Kp, c, p->spanp, 1); break;
            case 2: conv_tile(k4, panel, wr, Kp, c, p->spanp, 2); break;
            case 3: conv_tile(k4, panel, wr, Kp, c, p->spanp, 3); break;
            case 4: conv_tile(k4, panel, wr, Kp, c, p->spanp, 4); break;
            case 5: conv_tile(k4, panel, wr, Kp, c, p->spanp, 5); break;
            default: conv_tile(k4, panel, wr, Kp, c, p->spanp, 6); break;
            }
        }
    }
}

/* ---- the residual add: 16 bytes of each input a step ---------------------------------------- */

VNNI void kern_q8_add_avx512(const kern_q8_addp *p, const uint8_t *a, const uint8_t *b, size_t n,
                             uint8_t *out)
{
    __m512i za = _mm512_set1_epi32(p->za), zb = _mm512_set1_epi32(p->zb),
            ma = _mm512_set1_epi32(p->ma), mb = _mm512_set1_epi32(p->mb),
            zy = _mm512_set1_epi32(p->zy), lo = _mm512_set1_epi32(p->lo),
            top = _mm512_set1_epi32(255),
            rnd = _mm512_set1_epi32(p->shift > 0 ? (int32_t)1 << (p->shift - 1) : 0);
    __m128i sh = _mm_cvtsi32_si128(p->shift);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = lane_mask(n - i > 16 ? 16 : (int)(n - i));
        __m512i va = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i));
        __m512i vb = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i));
        __m512i t = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_sub_epi32(va, za), ma),
                                     _mm512_mullo_epi32(_mm512_sub_epi32(vb, zb), mb));
        t = _mm512_sra_epi32(_mm512_add_epi32(t, rnd), sh);
        t = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(t, zy), lo), top);
        _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(t));
    }
}

#endif
