/* Direct convolution for few input channels (LeNet's 1 -> 6 and 6 -> 16 channels, 5x5):
 * im2col + GEMM spends most of its time gathering patches and runs a 6-row product at half
 * the micro-kernel's height. Here each output row is computed in place: a vector of up to
 * 16 output columns, for a block of up to 16 output channels held in registers; per input
 * channel and kernel tap, one (masked) load of the input row feeds one FMA per channel
 * with the tap's weight broadcast. Padding: input rows outside the image are skipped,
 * columns outside it are masked off (an expanding load at the left edge, so no pointer
 * ever points before the row).
 *
 * Sums run bias first, then channels and taps in (c, ky, kx) order, fused on AVX-512 and
 * NEON (aarch64: the same scheme in 4-lane vectors, below) and plain multiply-adds on the
 * portable path: results depend on the path, never on the
 * thread count (each output is computed by one thread).
 *
 * The same kernel gives the input gradient of such a convolution (kern_conv_direct_adjoint):
 * the gradient of the output correlated with the flipped, transposed weights, padded by
 * kernel - 1 - pad, optionally added to what the gradient buffer holds. */
#include "kernels.h"

#include <stddef.h>

typedef struct direct_job {
    int C, H, W, K, KH, KW, ph, pw, OH, OW;
    const float *x, *w, *b;
    float *y;
    int accumulate; /* y += the sums (b unused) instead of y = b + the sums */
} direct_job;

/* ---- portable ---------------------------------------------------------------------------- */

/* Output channel k of one image. */
static void direct_channel_portable(const direct_job *j, const float *x, int k, float *y)
{
    const float *wk = j->w + (size_t)k * j->C * j->KH * j->KW;
    for (int oy = 0; oy < j->OH; oy++)
        for (int ox = 0; ox < j->OW; ox++) {
            float *out = y + (size_t)oy * j->OW + ox;
            float s = j->accumulate ? *out : j->b ? j->b[k] : 0.0f;
            for (int c = 0; c < j->C; c++)
                for (int ky = 0; ky < j->KH; ky++) {
                    int iy = oy - j->ph + ky;
                    if (iy < 0 || iy >= j->H)
                        continue;
                    const float *row = x + ((size_t)c * j->H + iy) * j->W;
                    const float *wr = wk + ((size_t)c * j->KH + ky) * j->KW;
                    for (int kx = 0; kx < j->KW; kx++) {
                        int ix = ox - j->pw + kx;
                        if (ix >= 0 && ix < j->W)
                            s += wr[kx] * row[ix];
                    }
                }
            *out = s;
        }
}

static void direct_image_portable(const direct_job *j, const float *x, float *y)
{
    size_t plane = (size_t)j->OH * j->OW;
    for (int k = 0; k < j->K; k++)
        direct_channel_portable(j, x, k, y + k * plane);
}

#if (defined(__x86_64__) && defined(__GNUC__)) || (defined(__aarch64__) && defined(__ARM_NEON))
/* wt [C, KH, KW, kb] = w[k0 + k, c, ky, kx]: a vector route's block of weights, tap-major. */
static void block_weights(const direct_job *j, int k0, int kb, float *wt)
{
    size_t taps = (size_t)j->C * j->KH * j->KW;
    for (size_t t = 0; t < taps; t++)
        for (int k = 0; k < kb; k++)
            wt[t * kb + k] = j->w[(size_t)(k0 + k) * taps + t];
}
#endif

/* ---- AVX-512 ----------------------------------------------------------------------------- */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DIRECT_AVX512 1
static int min_int(int a, int b) { return a < b ? a : b; }
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))
#define KB_MAX 16 /* output channels per block: accumulators in registers */

AVX512_INLINE __mmask16 lanes_below(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* The loads of one span of outputs: per tap column kx, the lanes that read inside the row
 * and where they start. */
typedef struct span_loads {
    __mmask16 mask[KERN_CONV_DIRECT_MAX_KERNEL];
    int from[KERN_CONV_DIRECT_MAX_KERNEL]; /* first column read */
    int expand[KERN_CONV_DIRECT_MAX_KERNEL]; /* lanes start past lane 0 (left padding) */
} span_loads;

/* Columns ix0 + lane (lane < n), zero outside [0, W), for ix0 = ox0 - pw + kx. */
AVX512_INLINE span_loads plan_loads(const direct_job *j, int ox0, int n)
{
    span_loads s;
    for (int kx = 0; kx < j->KW; kx++) {
        int ix0 = ox0 - j->pw + kx, lo = -ix0 > 0 ? -ix0 : 0, hi = min_int(n, j->W - ix0);
        s.mask[kx] = (__mmask16)(lanes_below(hi) & ~lanes_below(lo));
        s.expand[kx] = lo > 0;
        s.from[kx] = lo > 0 ? 0 : ix0;
    }
    return s;
}

AVX512_INLINE __m512 load_span(const float *row, const span_loads *s, int kx)
{
    if (s->expand[kx]) /* lanes lo.. take columns 0.. */
        return _mm512_maskz_expandloadu_ps(s->mask[kx], row);
    return _mm512_maskz_loadu_ps(s->mask[kx], row + s->from[kx]);
}

/* Outputs ox0 .. ox0 + n - 1 (n <= 16) of rows oy .. oy + rows - 1 (rows <= 2), channels
 * k0 .. k0 + kb - 1, with the block's weights wt [C, KH, KW, kb] (tap-major: one pointer
 * serves the block). Input row oy - ph + r feeds output row oy + q through tap row r - q:
 * each load serves both rows, and each output still sums in (c, ky, kx) order. */
AVX512_INLINE void direct_span(const direct_job *j, const float *x, const float *wt, int k0,
                               const int kb, const int rows, int oy, int ox0, int n, float *y)
{
    size_t plane = (size_t)j->OH * j->OW;
    span_loads loads = plan_loads(j, ox0, n);
    __m512 acc[2][KB_MAX];
    __mmask16 out = lanes_below(n);
    for (int q = 0; q < rows; q++)
        for (int k = 0; k < kb; k++)
            acc[q][k] = j->accumulate
                            ? _mm512_maskz_loadu_ps(out, y + (k0 + k) * plane +
                                                             (size_t)(oy + q) * j->OW + ox0)
                            : _mm512_set1_ps(j->b ? j->b[k0 + k] : 0.0f);
    for (int c = 0; c < j->C; c++)
        for (int r = 0; r < j->KH + rows - 1; r++) {
            int iy = oy - j->ph + r;
            if (iy < 0 || iy >= j->H)
                continue;
            const float *row = x + ((size_t)c * j->H + iy) * j->W;
            for (int kx = 0; kx < j->KW; kx++) {
                __m512 v = load_span(row, &loads, kx);
                for (int q = 0; q < rows; q++) {
                    int ky = r - q;
                    if (ky < 0 || ky >= j->KH)
                        continue;
                    const float *wr = wt + (((size_t)c * j->KH + ky) * j->KW + kx) * kb;
                    for (int k = 0; k < kb; k++)
                        acc[q][k] = _mm512_fmadd_ps(v, _mm512_set1_ps(wr[k]), acc[q][k]);
                }
            }
        }
    for (int q = 0; q < rows; q++)
        for (int k = 0; k < kb; k++)
            _mm512_mask_storeu_ps(y + (k0 + k) * plane + (size_t)(oy + q) * j->OW + ox0, out,
                                  acc[q][k]);
}

/* One block of kb output channels over the whole image: two rows at a time while their
 * accumulators fit in registers (enough independent sums to hide the FMA latency). */
AVX512_INLINE void direct_block(const direct_job *j, const float *x, const float *wt, int k0,
                                const int kb, float *y)
{
    int oy = 0;
    if (2 * kb <= 24)
        for (; oy + 1 < j->OH; oy += 2)
            for (int ox = 0; ox < j->OW; ox += 16)
                direct_span(j, x, wt, k0, kb, 2, oy, ox, min_int(16, j->OW - ox), y);
    for (; oy < j->OH; oy++)
        for (int ox = 0; ox < j->OW; ox += 16)
            direct_span(j, x, wt, k0, kb, 1, oy, ox, min_int(16, j->OW - ox), y);
}

#define BLOCK_CASE(n)                                                                        \
    case n:                                                                                  \
        direct_block(j, x, wt, k0, n, y);                                                    \
        break;

/* Channels k0 .. k0 + kb - 1 of one image, kb <= KB_MAX. */
__attribute__((target("avx512f"))) static void direct_image_block_avx512(
    const direct_job *j, const float *x, const float *wt, int k0, int kb, float *y)
{
    switch (kb) {
        BLOCK_CASE(1) BLOCK_CASE(2) BLOCK_CASE(3) BLOCK_CASE(4) BLOCK_CASE(5) BLOCK_CASE(6)
        BLOCK_CASE(7) BLOCK_CASE(8) BLOCK_CASE(9) BLOCK_CASE(10) BLOCK_CASE(11)
        BLOCK_CASE(12) BLOCK_CASE(13) BLOCK_CASE(14) BLOCK_CASE(15) BLOCK_CASE(16)
    }
}
#undef BLOCK_CASE

/* Images [begin, end), a block of channels at a time (the block's weights rearranged once
 * on the stack: at most 16 * 7 * 7 * 16 floats, 50 KB). */
static void direct_images_avx512(const direct_job *j, size_t begin, size_t end)
{
    float wt[KERN_CONV_DIRECT_MAX_CHANNELS * KERN_CONV_DIRECT_MAX_KERNEL *
             KERN_CONV_DIRECT_MAX_KERNEL * KB_MAX];
    size_t in_image = (size_t)j->C * j->H * j->W, out_image = (size_t)j->K * j->OH * j->OW;
    for (int k0 = 0; k0 < j->K; k0 += KB_MAX) {
        int kb = min_int(KB_MAX, j->K - k0);
        block_weights(j, k0, kb, wt);
        for (size_t n = begin; n < end; n++)
            direct_image_block_avx512(j, j->x + n * in_image, wt, k0, kb, j->y + n * out_image);
    }
}

#endif

/* ---- NEON (aarch64) ----------------------------------------------------------------------
 * The AVX-512 route's scheme in 4-lane vectors: a span of 4 output columns, for a block of
 * up to 8 output channels and 2 output rows held in 16 q-register accumulators; per input
 * channel, input row and tap column, one load of 4 input columns feeds one fused
 * multiply-add per channel and row (the weight a scalar operand). Spans at the image's
 * edges load through a zero-padded copy of their 4 columns, so that no load leaves the row
 * and padding adds 0 * w; a last span of fewer than 4 outputs stores only those. On
 * 4 lanes a row of output columns fills its vectors (LeNet's 10-wide rows: 3 spans), so
 * this route also serves the many-output-channel shapes that the kvec route takes on
 * AVX-512. Sums run as on AVX-512: bias first, then (c, ky, kx) in order, fused. */
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define DIRECT_NEON 1
#define NEON_KB 8 /* output channels per block: 2 rows x 8 channels = 16 accumulators */
#define NEON_INLINE static inline __attribute__((always_inline))

static int min_int(int a, int b) { return a < b ? a : b; }

/* Columns ix0 .. ix0 + 3 of row, zero outside [0, W). */
NEON_INLINE float32x4_t neon_columns(const float *row, int ix0, int W)
{
    if (ix0 >= 0 && ix0 + 4 <= W)
        return vld1q_f32(row + ix0);
    float t[4];
    for (int l = 0; l < 4; l++)
        t[l] = ix0 + l >= 0 && ix0 + l < W ? row[ix0 + l] : 0.0f;
    return vld1q_f32(t);
}

NEON_INLINE float32x4_t neon_load_n(const float *p, int n)
{
    if (n == 4)
        return vld1q_f32(p);
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int l = 0; l < n; l++)
        t[l] = p[l];
    return vld1q_f32(t);
}

NEON_INLINE void neon_store_n(float *p, float32x4_t v, int n)
{
    if (n == 4) {
        vst1q_f32(p, v);
        return;
    }
    float t[4];
    vst1q_f32(t, v);
    for (int l = 0; l < n; l++)
        p[l] = t[l];
}

/* Outputs ox0 .. ox0 + n - 1 (n <= 4) of rows oy .. oy + rows - 1 (rows <= 2), channels
 * k0 .. k0 + kb - 1, with the block's weights wt [C, KH, KW, kb]. Input row oy - ph + r
 * feeds output row oy + q through tap row r - q: each load serves both rows, and each
 * output still sums in (c, ky, kx) order. */
NEON_INLINE void direct_span_neon(const direct_job *j, const float *x, const float *wt, int k0,
                                  const int kb, const int rows, int oy, int ox0, int n, float *y)
{
    size_t plane = (size_t)j->OH * j->OW;
    float32x4_t acc[2][NEON_KB];
    for (int q = 0; q < rows; q++)
        for (int k = 0; k < kb; k++)
            acc[q][k] = j->accumulate
                            ? neon_load_n(y + (k0 + k) * plane + (size_t)(oy + q) * j->OW + ox0, n)
                            : vdupq_n_f32(j->b ? j->b[k0 + k] : 0.0f);
    for (int c = 0; c < j->C; c++)
        for (int r = 0; r < j->KH + rows - 1; r++) {
            int iy = oy - j->ph + r;
            if (iy < 0 || iy >= j->H)
                continue;
            const float *row = x + ((size_t)c * j->H + iy) * j->W;
            for (int kx = 0; kx < j->KW; kx++) {
                float32x4_t v = neon_columns(row, ox0 - j->pw + kx, j->W);
                for (int q = 0; q < rows; q++) {
                    int ky = r - q;
                    if (ky < 0 || ky >= j->KH)
                        continue;
                    const float *wr = wt + (((size_t)c * j->KH + ky) * j->KW + kx) * kb;
                    for (int k = 0; k < kb; k++)
                        acc[q][k] = vfmaq_n_f32(acc[q][k], v, wr[k]);
                }
            }
        }
    for (int q = 0; q < rows; q++)
        for (int k = 0; k < kb; k++)
            neon_store_n(y + (k0 + k) * plane + (size_t)(oy + q) * j->OW + ox0, acc[q][k], n);
}

/* One block of kb output channels over the whole image: two rows at a time, then a last
 * odd row. */
NEON_INLINE void direct_block_neon(const direct_job *j, const float *x, const float *wt, int k0,
                                   const int kb, float *y)
{
    int oy = 0;
    for (; oy + 1 < j->OH; oy += 2)
        for (int ox = 0; ox < j->OW; ox += 4)
            direct_span_neon(j, x, wt, k0, kb, 2, oy, ox, min_int(4, j->OW - ox), y);
    for (; oy < j->OH; oy++)
        for (int ox = 0; ox < j->OW; ox += 4)
            direct_span_neon(j, x, wt, k0, kb, 1, oy, ox, min_int(4, j->OW - ox), y);
}

#define BLOCK_CASE(n)                                                                        \
    case n:                                                                                  \
        direct_block_neon(j, x, wt, k0, n, y);                                               \
        break;

/* Channels k0 .. k0 + kb - 1 of one image, kb <= NEON_KB. */
static void direct_image_block_neon(const direct_job *j, const float *x, const float *wt, int k0,
                                    int kb, float *y)
{
    switch (kb) {
        BLOCK_CASE(1) BLOCK_CASE(2) BLOCK_CASE(3) BLOCK_CASE(4) BLOCK_CASE(5) BLOCK_CASE(6)
        BLOCK_CASE(7) BLOCK_CASE(8)
    }
}
#undef BLOCK_CASE

/* Images [begin, end), a block of channels at a time (its weights rearranged once on the
 * stack: at most 16 * 7 * 7 * 8 floats, 25 KB). */
static void direct_images_neon(const direct_job *j, size_t begin, size_t end)
{
    float wt[KERN_CONV_DIRECT_MAX_CHANNELS * KERN_CONV_DIRECT_MAX_KERNEL *
             KERN_CONV_DIRECT_MAX_KERNEL * NEON_KB];
    size_t in_image = (size_t)j->C * j->H * j->W, out_image = (size_t)j->K * j->OH * j->OW;
    for (int k0 = 0; k0 < j->K; k0 += NEON_KB) {
        int kb = min_int(NEON_KB, j->K - k0);
        block_weights(j, k0, kb, wt);
        for (size_t n = begin; n < end; n++)
            direct_image_block_neon(j, j->x + n * in_image, wt, k0, kb, j->y + n * out_image);
    }
}
#endif

/* ---- entry points ---------------------------------------------------------------------- */

int kern_conv_direct_fits(int C, int KH, int KW)
{
    return C >= 1 && C <= KERN_CONV_DIRECT_FORWARD_CHANNELS && KH >= 1 && KW >= 1 &&
           KH <= KERN_CONV_DIRECT_MAX_KERNEL && KW <= KERN_CONV_DIRECT_MAX_KERNEL &&
           kern_conv_direct_vector();
}

int kern_conv_direct_vector(void)
{
#if defined(DIRECT_AVX512)
    return kern_isa_active() == KERN_ISA_AVX512;
#elif defined(DIRECT_NEON)
    return kern_isa_active() == KERN_ISA_NEON;
#else
    return 0;
#endif
}

typedef struct direct_task {
    direct_job j;
    int vector;
} direct_task;

#if defined(DIRECT_AVX512) || defined(DIRECT_NEON)
/* The vector route's limits: its weight block and per-tap tables. */
static int direct_vector_fits(const direct_job *j)
{
    return j->C <= KERN_CONV_DIRECT_MAX_CHANNELS && j->KH <= KERN_CONV_DIRECT_MAX_KERNEL &&
           j->KW <= KERN_CONV_DIRECT_MAX_KERNEL;
}
#endif

static void direct_images(void *ctx, size_t begin, size_t end)
{
    const direct_task *t = ctx;
    const direct_job *j = &t->j;
    size_t in_image = (size_t)j->C * j->H * j->W, out_image = (size_t)j->K * j->OH * j->OW;
#ifdef DIRECT_AVX512
    if (t->vector && direct_vector_fits(j)) {
        direct_images_avx512(j, begin, end);
        return;
    }
#endif
#ifdef DIRECT_NEON
    if (t->vector && direct_vector_fits(j)) {
        direct_images_neon(j, begin, end);
        return;
    }
#endif
    for (size_t n = begin; n < end; n++)
        direct_image_portable(j, j->x + n * in_image, j->y + n * out_image);
}

static void direct_run(int N, int C, int H, int W, int K, int KH, int KW, int pad_h, int pad_w,
                       int OH, int OW, const float *in, const float *w, const float *bias,
                       float *out, int accumulate)
{
    direct_task t = {{C, H, W, K, KH, KW, pad_h, pad_w, OH, OW, in, w, bias, out, accumulate},
                     kern_conv_direct_vector()};
    if (N < 1 || C < 1 || K < 1 || t.j.OH < 1 || t.j.OW < 1)
        return;
    size_t work = (size_t)K * t.j.OH * t.j.OW * C * KH * KW; /* multiply-adds per image */
    size_t grain = work >= (1u << 16) ? 1 : (1u << 16) / (work ? work : 1);
    kern_parallel_for((size_t)N, grain, direct_images, &t);
}

void kern_conv_direct(int N, int C, int H, int W, int K, int KH, int KW, int pad_h, int pad_w,
                      int OH, int OW, const float *in, const float *w, const float *bias,
                      float *out)
{
    direct_run(N, C, H, W, K, KH, KW, pad_h, pad_w, OH, OW, in, w, bias, out, 0);
}

int kern_conv_direct_adjoint_fits(int C, int K, int KH, int KW, int pad_h, int pad_w)
{
    return C >= 1 && K >= 1 && K <= KERN_CONV_DIRECT_MAX_CHANNELS &&
           C <= KERN_CONV_DIRECT_ADJOINT_OUT_CHANNELS && KH >= 1 && KW >= 1 &&
           KH <= KERN_CONV_DIRECT_MAX_KERNEL && KW <= KERN_CONV_DIRECT_MAX_KERNEL && pad_h >= 0 &&
           pad_w >= 0 && pad_h < KH && pad_w < KW && kern_conv_direct_vector();
}

/* The input gradient of out = conv(in, w) is the correlation of dout with the weights
 * flipped in space and transposed in channels, padded by KH - 1 - pad_h and KW - 1 - pad_w:
 * the same kernel with the roles of C and K exchanged. */
void kern_conv_direct_adjoint(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                              int pad_w, int OH, int OW, const float *dout, const float *wt,
                              float *din, int accumulate)
{
    direct_run(N, K, OH, OW, C, KH, KW, KH - 1 - pad_h, KW - 1 - pad_w, H, W, dout, wt, NULL,
               din, accumulate);
}

void kern_conv_flip_transpose(int K, int C, int KH, int KW, const float *w, float *wt)
{
    size_t taps = (size_t)KH * KW;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++)
            for (size_t t = 0; t < taps; t++)
                wt[((size_t)c * K + k) * taps + (taps - 1 - t)] = w[((size_t)k * C + c) * taps + t];
}
