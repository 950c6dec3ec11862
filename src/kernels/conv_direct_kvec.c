/* Direct convolution with the output channels in the vector lanes (LeNet's 6 -> 16 channels,
 * 5x5, 10x10 outputs). kern_conv_direct puts output columns in the lanes, so a row of 10
 * fills 10 of 16; here each vector holds one output pixel's 16 channels and every lane
 * works. The weights are rearranged once per call as wk [kblocks][C*KH*KW][16] (one vector
 * per tap, zero lanes past K); a block of up to 2 rows x 12 columns of output pixels keeps
 * its accumulators in registers. Per input row and tap column, each input value is
 * broadcast once and feeds both output rows (through tap rows ky and ky - 1), each with its
 * weight vector: about one load per two FMAs.
 *
 * Padding: an image that needs it is first copied into a zero-bordered buffer, so the inner
 * loop never tests bounds (padding taps add 0 * w). The accumulators go pixel-major into a
 * small band buffer [2 * OW][16], which 16 x 16 in-register transposes turn into the
 * channel-major output rows (a band of whole rows is contiguous in each output plane).
 *
 * Sums run bias first, then (c, ky, kx) in order, fused: each output is computed by one
 * thread, so results do not depend on the thread count. Without AVX-512 (or when
 * kern_isa_name() is not "avx512") the call is served by kern_conv_direct. */
#include "kernels.h"

#include <stddef.h>
#include <string.h>

#define KVEC_LANES 16
#define KVEC_MAX_ROWS 2  /* output rows per register block */
#define KVEC_MAX_COLS 12 /* output columns per register block: 2 x 12 accumulators */
/* Where the route wins over kern_conv_direct (bench/conv_kvec_bench.c): from 16 output
 * channels always; from 8 when enough taps (C * KH * KW) amortise the padded copy and the
 * transposes (LeNet conv2's 150 taps win by 1.3x at K = 8; 25 taps lose at K = 12). */
#define KVEC_MIN_K 8
#define KVEC_FULL_K 16
#define KVEC_MIN_TAPS 64

typedef struct kvec_job {
    int N, C, H, W, K, KH, KW, ph, pw, OH, OW;
    int HP, WP;          /* extents of the image the taps read: OH + KH - 1, OW + KW - 1 */
    int copy;            /* the image needs a zero-bordered copy (padding) */
    int ld;              /* row stride of the image read: WP for a copy, else W */
    size_t plane;        /* channel stride of the image read */
    size_t taps;         /* C * KH * KW */
    int kblocks;         /* ceil(K / 16) */
    const float *x, *b;
    float *y;
    float *wk;           /* [kblocks][taps][16] weights, then [kblocks][16] bias */
    float *per_thread;   /* per thread: padded image [C][HP][WP], band [2 * OW][16] */
    size_t thread_floats;
} kvec_job;

static size_t weight_floats(int C, int K, int KH, int KW)
{
    size_t kblocks = ((size_t)K + KVEC_LANES - 1) / KVEC_LANES;
    return kblocks * ((size_t)C * KH * KW + 1) * KVEC_LANES;
}

static size_t thread_floats(int C, int KH, int KW, int OH, int OW)
{
    size_t HP = (size_t)OH + KH - 1, WP = (size_t)OW + KW - 1;
    return (size_t)C * HP * WP + (size_t)KVEC_MAX_ROWS * OW * KVEC_LANES;
}

/* wk[kb][t][l] = w[kb * 16 + l][t] (t = (c, ky, kx)), bias after; zero lanes past K. */
static void arrange_weights(const kvec_job *j, const float *w)
{
    float *bk = j->wk + (size_t)j->kblocks * j->taps * KVEC_LANES;
    for (int kb = 0; kb < j->kblocks; kb++) {
        float *dst = j->wk + (size_t)kb * j->taps * KVEC_LANES;
        for (size_t t = 0; t < j->taps; t++)
            for (int l = 0; l < KVEC_LANES; l++) {
                int k = kb * KVEC_LANES + l;
                dst[t * KVEC_LANES + l] = k < j->K ? w[(size_t)k * j->taps + t] : 0.0f;
            }
        for (int l = 0; l < KVEC_LANES; l++) {
            int k = kb * KVEC_LANES + l;
            bk[kb * KVEC_LANES + l] = k < j->K && j->b ? j->b[k] : 0.0f;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) /* the AVX-512 route and its helpers */
static int min_int(int a, int b) { return a < b ? a : b; }

/* xp [C][HP][WP]: xp[c][iy][ix] = x[c][iy - ph][ix - pw], zero outside the image. */
static void pad_image(const kvec_job *j, const float *x, float *xp)
{
    for (int c = 0; c < j->C; c++)
        for (int iy = 0; iy < j->HP; iy++) {
            float *dst = xp + ((size_t)c * j->HP + iy) * j->WP;
            int sy = iy - j->ph;
            memset(dst, 0, sizeof(float) * (size_t)j->WP);
            if (sy < 0 || sy >= j->H)
                continue;
            int lo = j->pw > 0 ? j->pw : 0, hi = min_int(j->WP, j->W + j->pw);
            if (hi > lo)
                memcpy(dst + lo, x + ((size_t)c * j->H + sy) * j->W + (lo - j->pw),
                       sizeof(float) * (size_t)(hi - lo));
        }
}

/* ---- AVX-512 ----------------------------------------------------------------------------- */
#include <immintrin.h>
#define KVEC_AVX512 1
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

AVX512_INLINE __mmask16 lanes_below(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Input row `row` (taps kx = 0 .. KW - 1) into the accumulators of output row 0 with tap
 * row w0 (when use0) and of output row 1 with tap row w1 (when use1): each broadcast input
 * serves both output rows. The pointer is hidden from the optimiser per tap, so that it
 * does not carry inputs shared by neighbouring taps in registers (shuffles and spills). */
AVX512_INLINE void kvec_tap_row(const float *row, int KW, const float *w0, const float *w1,
                                const int use0, const int use1, const int B,
                                __m512 acc[KVEC_MAX_ROWS][KVEC_MAX_COLS])
{
    for (int kx = 0; kx < KW; kx++) {
        const float *at = row + kx;
        __asm__("" : "+r"(at));
        __m512 a = use0 ? _mm512_loadu_ps(w0 + kx * KVEC_LANES) : _mm512_setzero_ps();
        __m512 b = use1 ? _mm512_loadu_ps(w1 + kx * KVEC_LANES) : _mm512_setzero_ps();
        for (int q = 0; q < B; q++) {
            __m512 v = _mm512_set1_ps(at[q]);
            if (use0)
                acc[0][q] = _mm512_fmadd_ps(v, a, acc[0][q]);
            if (use1)
                acc[1][q] = _mm512_fmadd_ps(v, b, acc[1][q]);
        }
    }
}

/* Output pixels (oy + r, ox + q) for r < R (1 or 2), q < B, channels of block kb:
 * accumulators in registers over all taps, then stored pixel-major into
 * band[(r * OW + ox + q) * 16]. Input row oy + i feeds output row oy + r through tap row
 * i - r; each output still sums its taps in (c, ky, kx) order. */
AVX512_INLINE void kvec_block(const kvec_job *j, const float *xp, int kb, const int R,
                              const int B, int oy, int ox, float *band)
{
    const float *wt = j->wk + (size_t)kb * j->taps * KVEC_LANES;
    const float *bk = j->wk + (size_t)j->kblocks * j->taps * KVEC_LANES + kb * KVEC_LANES;
    size_t wrow = (size_t)j->KW * KVEC_LANES; /* floats per tap row */
    __m512 acc[KVEC_MAX_ROWS][KVEC_MAX_COLS];
    __m512 bias = _mm512_loadu_ps(bk);
    for (int r = 0; r < R; r++)
        for (int q = 0; q < B; q++)
            acc[r][q] = bias;
    const float *origin = xp + (size_t)oy * j->ld + ox;
    for (int c = 0; c < j->C; c++) {
        const float *img = origin + c * j->plane;
        const float *wc = wt + (size_t)c * j->KH * wrow;
        if (R == 1) {
            for (int ky = 0; ky < j->KH; ky++)
                kvec_tap_row(img + (size_t)ky * j->ld, j->KW, wc + ky * wrow, NULL, 1, 0, B,
                             acc);
            continue;
        }
        kvec_tap_row(img, j->KW, wc, NULL, 1, 0, B, acc);
        for (int i = 1; i < j->KH; i++)
            kvec_tap_row(img + (size_t)i * j->ld, j->KW, wc + i * wrow, wc + (i - 1) * wrow, 1,
                         1, B, acc);
        kvec_tap_row(img + (size_t)j->KH * j->ld, j->KW, NULL, wc + (j->KH - 1) * wrow, 0, 1,
                     B, acc);
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < B; q++)
            _mm512_storeu_ps(band + ((size_t)r * j->OW + ox + q) * KVEC_LANES, acc[r][q]);
}

#define COLS_CASE(n)                                                                         \
    case n:                                                                                  \
        kvec_block(j, xp, kb, R, n, oy, ox, band);                                           \
        break;

/* One register block of R (1 or 2) rows and B (1..12) columns. */
AVX512_INLINE void kvec_block_rows(const kvec_job *j, const float *xp, int kb, const int R,
                                   int B, int oy, int ox, float *band)
{
    switch (B) {
        COLS_CASE(1) COLS_CASE(2) COLS_CASE(3) COLS_CASE(4) COLS_CASE(5) COLS_CASE(6)
        COLS_CASE(7) COLS_CASE(8) COLS_CASE(9) COLS_CASE(10) COLS_CASE(11) COLS_CASE(12)
    }
}
#undef COLS_CASE

/* Lane sources of the butterfly stage at distance d = 8 >> s (vpermt2ps indices, 16 + l
 * picks lane l of the second row): row i keeps its lanes l (l & d == 0) and takes lanes
 * l - d of row i + d; row i + d takes lanes l + d of row i and keeps its lanes l + d. */
static const int butterfly_lo[4][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
    {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
    {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
    {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}};
static const int butterfly_hi[4][16] = {
    {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
    {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
    {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
    {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}};

/* Stage s of the transpose: rows i and i + d (i & d == 0) exchange their off-diagonal
 * d x d blocks. A function per stage, so that d is a constant and the loop unrolls with r[]
 * in registers. */
AVX512_INLINE void butterfly_stage(__m512 r[16], const int s, const int d)
{
    __m512i lo = _mm512_loadu_si512(butterfly_lo[s]), hi = _mm512_loadu_si512(butterfly_hi[s]);
    for (int i0 = 0; i0 < 16; i0 += 2 * d)
        for (int i = i0; i < i0 + d; i++) {
            __m512 a = r[i], b = r[i + d];
            r[i] = _mm512_permutex2var_ps(a, lo, b);
            r[i + d] = _mm512_permutex2var_ps(a, hi, b);
        }
}

/* r[i][l] <- r[l][i]. */
AVX512_INLINE void transpose16(__m512 r[16])
{
    butterfly_stage(r, 0, 8);
    butterfly_stage(r, 1, 4);
    butterfly_stage(r, 2, 2);
    butterfly_stage(r, 3, 1);
}

/* out[k0 + k][p] = band[p][k] for p < npix, k < kb: 16 pixels at a time, transposed. */
AVX512_INLINE void store_band(const float *band, int npix, int kb, float *out, size_t plane)
{
    __m512 r[16];
    for (int p0 = 0; p0 < npix; p0 += 16) {
        int cnt = min_int(16, npix - p0);
        for (int i = 0; i < 16; i++)
            r[i] = i < cnt ? _mm512_loadu_ps(band + (size_t)(p0 + i) * KVEC_LANES)
                           : _mm512_setzero_ps();
        transpose16(r);
        __mmask16 m = lanes_below(cnt);
        for (int k = 0; k < kb; k++)
            _mm512_mask_storeu_ps(out + k * plane + p0, m, r[k]);
    }
}

/* One image: per channel block, bands of 2 rows (1 for an odd last row), each split into
 * near-equal column blocks of at most 12. */
__attribute__((target("avx512f"))) static void kvec_image_avx512(const kvec_job *j,
                                                                  const float *xp, float *band,
                                                                  float *y)
{
    size_t plane = (size_t)j->OH * j->OW;
    int nb = (j->OW + KVEC_MAX_COLS - 1) / KVEC_MAX_COLS;
    int base = j->OW / nb, extra = j->OW % nb;
    for (int kb = 0; kb < j->kblocks; kb++) {
        int kn = min_int(KVEC_LANES, j->K - kb * KVEC_LANES);
        for (int oy = 0; oy < j->OH; oy += KVEC_MAX_ROWS) {
            int R = min_int(KVEC_MAX_ROWS, j->OH - oy);
            for (int b = 0, ox = 0; b < nb; b++) {
                int B = base + (b < extra);
                if (R == 2)
                    kvec_block_rows(j, xp, kb, 2, B, oy, ox, band);
                else
                    kvec_block_rows(j, xp, kb, 1, B, oy, ox, band);
                ox += B;
            }
            store_band(band, R * j->OW, kn,
                       y + (size_t)kb * KVEC_LANES * plane + (size_t)oy * j->OW, plane);
        }
    }
}

#endif

/* ---- entry points ------------------------------------------------------------------------ */

static int kvec_vector(void)
{
#ifdef KVEC_AVX512
    return kern_isa_active() == KERN_ISA_AVX512;
#else
    return 0;
#endif
}

int kern_conv_direct_kvec_fits(int C, int K, int KH, int KW)
{
    int enough_k = K >= KVEC_FULL_K || (K >= KVEC_MIN_K && C * KH * KW >= KVEC_MIN_TAPS);
    return C >= 1 && C <= KERN_CONV_DIRECT_MAX_CHANNELS && enough_k && KH >= 1 && KW >= 1 &&
           KH <= KERN_CONV_DIRECT_MAX_KERNEL && KW <= KERN_CONV_DIRECT_MAX_KERNEL &&
           kvec_vector();
}

size_t kern_conv_direct_kvec_scratch(int C, int K, int KH, int KW, int OH, int OW, int threads)
{
    if (C < 1 || K < 1 || KH < 1 || KW < 1 || OH < 1 || OW < 1)
        return 0;
    return weight_floats(C, K, KH, KW) +
           thread_floats(C, KH, KW, OH, OW) * (size_t)(threads > 1 ? threads : 1);
}

static void kvec_task(void *ctx, int t, int T)
{
    const kvec_job *j = ctx;
#ifdef KVEC_AVX512
    float *xp = j->per_thread + (size_t)t * j->thread_floats;
    float *band = xp + (size_t)j->C * j->HP * j->WP;
    size_t in_image = (size_t)j->C * j->H * j->W, out_image = (size_t)j->K * j->OH * j->OW;
    size_t begin, end;
    kern_split((size_t)j->N, t, T, &begin, &end);
    for (size_t n = begin; n < end; n++) {
        const float *x = j->x + n * in_image;
        if (j->copy)
            pad_image(j, x, xp);
        kvec_image_avx512(j, j->copy ? xp : x, band, j->y + n * out_image);
    }
#else
    (void)j, (void)t, (void)T; /* kern_conv_direct_kvec never starts it without AVX-512 */
#endif
}

void kern_conv_direct_kvec(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                           int pad_w, int OH, int OW, const float *in, const float *w,
                           const float *bias, float *out, float *scratch)
{
    if (N < 1 || C < 1 || K < 1 || KH < 1 || KW < 1 || OH < 1 || OW < 1)
        return;
    if (!kvec_vector()) {
        kern_conv_direct(N, C, H, W, K, KH, KW, pad_h, pad_w, OH, OW, in, w, bias, out);
        return;
    }
    kvec_job j = {.N = N, .C = C, .H = H, .W = W, .K = K, .KH = KH, .KW = KW, .ph = pad_h,
                  .pw = pad_w, .OH = OH, .OW = OW, .x = in, .b = bias, .y = out};
    j.HP = OH + KH - 1;
    j.WP = OW + KW - 1;
    /* Without padding before and with the taps inside the image, read the input itself. */
    j.copy = pad_h != 0 || pad_w != 0 || j.HP > H || j.WP > W;
    j.ld = j.copy ? j.WP : W;
    j.plane = j.copy ? (size_t)j.HP * j.WP : (size_t)H * W;
    j.taps = (size_t)C * KH * KW;
    j.kblocks = (K + KVEC_LANES - 1) / KVEC_LANES;
    j.wk = scratch;
    j.per_thread = scratch + weight_floats(C, K, KH, KW);
    j.thread_floats = thread_floats(C, KH, KW, OH, OW);
    arrange_weights(&j, w);
    int T = kern_threads();
    kern_run(T < N ? T : N, kvec_task, &j);
}
