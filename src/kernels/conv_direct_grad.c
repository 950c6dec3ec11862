/* Weight, bias and input gradients of a direct convolution with few input channels
 * (LeNet's 1 -> 6 and 6 -> 16 channels, 5x5), without im2col:
 *
 *   dw[k,c,ky,kx] += sum_n sum_{oy,ox} dy[n,k,oy,ox] * x[n,c,oy+ky-ph,ox+kx-pw]
 *   db[k]         += sum_n sum_{oy,ox} dy[n,k,oy,ox]
 *   dx (kern_conv_direct_dgrad): see its section at the end of the file.
 *
 * Vector lanes run over images, not over columns: a group of 16 images is transposed into
 * image-minor copies, xt [C, Hp, Wp, 16] (zero-padded: Hp = OH + KH - 1, Wp = OW + KW - 1)
 * and dyt [K, OH*OW, 16], so every output position is one full vector and nothing is
 * wasted on padding columns (LeNet's 10-wide conv2 rows would leave 6 of 16 lanes idle,
 * or 4 of 14 columns in a padded-row layout). A block of up to 4 filters x 5 taps of one
 * kernel row keeps its 16-lane sums in registers over all OH*OW positions: per position
 * 4 + 5 loads feed 20 FMAs. The lanes (images) are summed only once per call.
 *
 * Threads: images are split statically (kern_split); each thread sums its images into its
 * own partial, vector-wide [K*C*KH*KW + K][16], and in a second phase each thread adds a
 * range of outputs: partials in thread order, then the 16 lanes in a fixed order. Results
 * are bit-identical run to run at a given thread count; they change with it (and with the
 * path: FMAs on AVX-512, multiply-adds on the portable path) only by rounding. */
#include "kernels.h"

#include <string.h>

#define LANES 16 /* images per group: one per vector lane */
#define KB 6     /* filters per register block, at most */
#define TB 5     /* taps per register block, at most */

typedef struct wgrad_job {
    int N, C, H, W, K, KH, KW, ph, pw, OH, OW;
    int Hp, Wp;          /* the padded image xt holds */
    size_t taps;         /* C * KH * KW: weights per filter */
    size_t xt, dyt, part; /* floats of each per-thread buffer */
    const float *x, *dy;
    float *dw, *db, *scratch;
    int vector;
} wgrad_job;

static int min_int(int a, int b) { return a < b ? a : b; }
static int max_int(int a, int b) { return a > b ? a : b; }

static size_t per_thread(const wgrad_job *j) { return j->xt + j->dyt + j->part; }

static void job_shape(wgrad_job *j)
{
    j->Hp = j->OH + j->KH - 1;
    j->Wp = j->OW + j->KW - 1;
    j->taps = (size_t)j->C * j->KH * j->KW;
    j->xt = (size_t)j->C * j->Hp * j->Wp * LANES;
    j->dyt = (size_t)j->K * j->OH * j->OW * LANES;
    j->part = ((size_t)j->K * j->taps + j->K) * LANES;
}

/* Columns [0, cols) of a padded row read input columns ix = px - pw; those in [0, W) are
 * copied, the rest are zero. */
static void padded_columns(const wgrad_job *j, int *lo, int *hi)
{
    *lo = min_int(j->pw, j->Wp);
    *hi = max_int(*lo, min_int(j->pw + j->W, j->Wp));
}

/* ---- portable ---------------------------------------------------------------------------- */

/* dst[e*16 + l] = row l [e] for e < len, l < n (row l at base + l * stride); lanes >= n
 * are zero. sum (16 lanes, may be NULL) = the sums of the rows: the bias gradient comes
 * with the transposition of dy. */
static void transpose_rows_portable(const float *base, size_t stride, int n, int len,
                                    float *dst, float *sum)
{
    for (int l = 0; l < LANES; l++) {
        float s = 0.0f;
        for (int e = 0; e < len; e++) {
            float v = l < n ? base[l * stride + e] : 0.0f;
            dst[(size_t)e * LANES + l] = v;
            s += v;
        }
        if (sum)
            sum[l] = s;
    }
}

static void zero_lanes(float *dst, int count) { memset(dst, 0, sizeof(float) * LANES * count); }

/* xt [C, Hp, Wp, 16] and dyt [K, OH*OW, 16] of images n0 .. n0 + n - 1 ... */
typedef void (*transpose_fn)(const float *base, size_t stride, int n, int len, float *dst,
                             float *sum);

/* part[i] (16 lanes) = or += v. */
static void put_lanes(float *part, const float *v, int first)
{
    for (int l = 0; l < LANES; l++)
        part[l] = first ? v[l] : part[l] + v[l];
}

/* ... and the bias sums into the thread's partial. */
static void pack_group(const wgrad_job *j, size_t n0, int n, float *xt, float *dyt,
                       float *part, int first, transpose_fn transpose)
{
    size_t image = (size_t)j->C * j->H * j->W, plane = (size_t)j->OH * j->OW;
    int lo, hi;
    padded_columns(j, &lo, &hi);
    for (int c = 0; c < j->C; c++)
        for (int py = 0; py < j->Hp; py++) {
            float *dst = xt + ((size_t)c * j->Hp + py) * j->Wp * LANES;
            int iy = py - j->ph;
            if (iy < 0 || iy >= j->H) {
                zero_lanes(dst, j->Wp);
                continue;
            }
            zero_lanes(dst, lo);
            transpose(j->x + n0 * image + ((size_t)c * j->H + iy) * j->W, image, n, hi - lo,
                      dst + (size_t)lo * LANES, NULL);
            zero_lanes(dst + (size_t)hi * LANES, j->Wp - hi);
        }
    for (int k = 0; k < j->K; k++) {
        float sum[LANES];
        transpose(j->dy + (n0 * j->K + k) * plane, (size_t)j->K * plane, n, (int)plane,
                  dyt + k * plane * LANES, sum);
        put_lanes(part + (j->K * j->taps + k) * LANES, sum, first);
    }
}

/* The group's weight sums into the thread's partial [K * taps + K][16]. */
static void group_sums_portable(const wgrad_job *j, const float *xt, const float *dyt,
                                float *part, int first)
{
    size_t plane = (size_t)j->OH * j->OW;
    float s[LANES];
    for (int k = 0; k < j->K; k++) {
        const float *d = dyt + k * plane * LANES;
        for (int c = 0; c < j->C; c++)
            for (int ky = 0; ky < j->KH; ky++)
                for (int kx = 0; kx < j->KW; kx++) {
                    memset(s, 0, sizeof s);
                    for (int oy = 0; oy < j->OH; oy++) {
                        const float *xr =
                            xt + (((size_t)c * j->Hp + oy + ky) * j->Wp + kx) * LANES;
                        const float *dr = d + (size_t)oy * j->OW * LANES;
                        for (int ox = 0; ox < j->OW; ox++)
                            for (int l = 0; l < LANES; l++)
                                s[l] += dr[ox * LANES + l] * xr[ox * LANES + l];
                    }
                    size_t i = k * j->taps + ((size_t)c * j->KH + ky) * j->KW + kx;
                    put_lanes(part + i * LANES, s, first);
                }
    }
}

/* ---- AVX-512 ----------------------------------------------------------------------------- */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WGRAD_AVX512 1
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

AVX512_INLINE __mmask16 lanes_below(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* r[i][l] <- r[l][i]: pairs, quads, then 128-bit blocks twice. */
AVX512_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* u[4i + e]: rows 4i..4i+3 of columns e, e+4, e+8, e+12 */
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int e = 0; e < 4; e++) {
        __m512 w0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xDD);
        __m512 w2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        __m512 w3 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xDD);
        r[e] = _mm512_shuffle_f32x4(w0, w2, 0x88);
        r[e + 8] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
        r[e + 4] = _mm512_shuffle_f32x4(w1, w3, 0x88);
        r[e + 12] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
    }
}

/* transpose_rows_portable, 16 x 16 blocks at a time. */
__attribute__((target("avx512f"))) static void transpose_rows_avx512(const float *base,
                                                                      size_t stride, int n,
                                                                      int len, float *dst,
                                                                      float *sum)
{
    __m512 r[16], s = _mm512_setzero_ps();
    for (int e0 = 0; e0 < len; e0 += 16) {
        int cnt = min_int(16, len - e0);
        __mmask16 m = lanes_below(cnt);
        for (int l = 0; l < 16; l++)
            r[l] = l < n ? _mm512_maskz_loadu_ps(m, base + l * stride + e0) : _mm512_setzero_ps();
        transpose16(r);
        for (int i = 0; i < cnt; i++) {
            _mm512_storeu_ps(dst + (size_t)(e0 + i) * LANES, r[i]);
            s = _mm512_add_ps(s, r[i]);
        }
    }
    if (sum)
        _mm512_storeu_ps(sum, s);
}

/* Sums of filters k0 .. k0 + kb - 1 against the flattened taps t0 .. t0 + tb - 1 (in
 * (c, ky, kx) order) over every output position, into part. Per position: kb gradient
 * vectors and tb input vectors feed kb * tb FMAs. */
AVX512_INLINE void block_sums(const wgrad_job *j, const float *xt, const float *dyt,
                              float *part, int first, int k0, const int kb, size_t t0,
                              const int tb)
{
    size_t plane = (size_t)j->OH * j->OW, off[TB];
    for (int t = 0; t < tb; t++) { /* tap (c, ky, kx) reads xt at (c, oy + ky, ox + kx) */
        size_t tap = t0 + t, per_c = (size_t)j->KH * j->KW;
        size_t c = tap / per_c, ky = tap % per_c / j->KW, kx = tap % j->KW;
        off[t] = ((c * j->Hp + ky) * j->Wp + kx) * LANES;
    }
    __m512 acc[KB][TB];
    for (int k = 0; k < kb; k++)
        for (int t = 0; t < tb; t++)
            acc[k][t] = _mm512_setzero_ps();
    const float *d = dyt + k0 * plane * LANES;
    for (int oy = 0; oy < j->OH; oy++) {
        const float *xr = xt + (size_t)oy * j->Wp * LANES;
        const float *dr = d + (size_t)oy * j->OW * LANES;
        for (int ox = 0; ox < j->OW; ox++) {
            __m512 xv[TB];
            for (int t = 0; t < tb; t++)
                xv[t] = _mm512_loadu_ps(xr + (size_t)ox * LANES + off[t]);
            for (int k = 0; k < kb; k++) {
                __m512 g = _mm512_loadu_ps(dr + k * plane * LANES + (size_t)ox * LANES);
                for (int t = 0; t < tb; t++)
                    acc[k][t] = _mm512_fmadd_ps(g, xv[t], acc[k][t]);
            }
        }
    }
    for (int k = 0; k < kb; k++)
        for (int t = 0; t < tb; t++) {
            float *p = part + ((k0 + k) * j->taps + t0 + t) * LANES;
            _mm512_storeu_ps(p, first ? acc[k][t] : _mm512_add_ps(_mm512_loadu_ps(p), acc[k][t]));
        }
}

#define TB_CASE(kb, tb)                                                                      \
    case tb:                                                                                 \
        block_sums(j, xt, dyt, part, first, k0, kb, t0, tb);                                 \
        break;
#define KB_CASE(kb)                                                                          \
    case kb:                                                                                 \
        switch (tb) { TB_CASE(kb, 1) TB_CASE(kb, 2) TB_CASE(kb, 3) TB_CASE(kb, 4) TB_CASE(kb, 5) } \
        break;

__attribute__((target("avx512f"))) static void block_sums_avx512(
    const wgrad_job *j, const float *xt, const float *dyt, float *part, int first, int k0,
    int kb, size_t t0, int tb)
{
    switch (kb) { KB_CASE(1) KB_CASE(2) KB_CASE(3) KB_CASE(4) KB_CASE(5) KB_CASE(6) }
}
#undef KB_CASE
#undef TB_CASE

/* Even splits of n into blocks of at most b: the first `size` of each. */
static int block_size(int n, int b, int i)
{
    int blocks = (n + b - 1) / b, q = n / blocks, r = n % blocks;
    return q + (i < r);
}

/* Register blocks: up to 4 filters x 5 taps, or for 5 or 6 filters all of them x 4 taps
 * (LeNet's conv1: 6 x 4 taps, 10 loads per 24 FMAs); at most 31 vector registers. */
static void group_sums_avx512(const wgrad_job *j, const float *xt, const float *dyt,
                              float *part, int first)
{
    int kmax = j->K == 5 || j->K == 6 ? j->K : 4, tmax = kmax > 4 ? 4 : TB;
    int kblocks = (j->K + kmax - 1) / kmax, taps = (int)j->taps;
    int tblocks = (taps + tmax - 1) / tmax;
    for (int bk = 0, k0 = 0; bk < kblocks; k0 += block_size(j->K, kmax, bk++))
        for (int bt = 0, t0 = 0; bt < tblocks; t0 += block_size(taps, tmax, bt++))
            block_sums_avx512(j, xt, dyt, part, first, k0, block_size(j->K, kmax, bk),
                              (size_t)t0, block_size(taps, tmax, bt));
}

/* Outputs [begin, end) of the T partials (thread stride `stride` floats), dw then db:
 * partials in thread order, then the lanes. */
__attribute__((target("avx512f"))) static void reduce_partials_avx512(const wgrad_job *j,
                                                                       int T, size_t stride,
                                                                       size_t begin, size_t end)
{
    size_t wcount = (size_t)j->K * j->taps;
    const float *p0 = j->scratch + j->xt + j->dyt;
    for (size_t i = begin; i < end; i++) {
        __m512 v = _mm512_loadu_ps(p0 + i * LANES);
        for (int t = 1; t < T; t++)
            v = _mm512_add_ps(v, _mm512_loadu_ps(p0 + t * stride + i * LANES));
        float s = _mm512_reduce_add_ps(v);
        if (i < wcount)
            j->dw[i] += s;
        else if (j->db)
            j->db[i - wcount] += s;
    }
}

#endif

/* ---- threads ------------------------------------------------------------------------------ */

/* Outputs [begin, end) of all partials: dw then db, partials in thread order, then the
 * lanes. */
static void reduce_partials(const wgrad_job *j, int T, size_t begin, size_t end)
{
#ifdef WGRAD_AVX512
    if (j->vector) {
        reduce_partials_avx512(j, T, per_thread(j), begin, end);
        return;
    }
#endif
    size_t wcount = (size_t)j->K * j->taps;
    const float *p0 = j->scratch + j->xt + j->dyt;
    for (size_t i = begin; i < end; i++) {
        float v[LANES], s = 0.0f;
        memcpy(v, p0 + i * LANES, sizeof v);
        for (int t = 1; t < T; t++)
            for (int l = 0; l < LANES; l++)
                v[l] += p0[(size_t)t * per_thread(j) + i * LANES + l];
        for (int l = 0; l < LANES; l++)
            s += v[l];
        if (i < wcount)
            j->dw[i] += s;
        else if (j->db)
            j->db[i - wcount] += s;
    }
}

/* Phase 0: part t sums its images into its partial; phase 1: part t adds every partial, in
 * part order, into its share of the outputs. */
static void wgrad_task(void *ctx, int phase, int t, int T)
{
    const wgrad_job *j = ctx;
    size_t begin, end;
    if (phase == 1) {
        size_t outs = (size_t)j->K * j->taps + j->K;
        kern_split(outs, t, T, &begin, &end);
        reduce_partials(j, T, begin, end);
        return;
    }
    float *xt = j->scratch + (size_t)t * per_thread(j), *dyt = xt + j->xt, *part = dyt + j->dyt;
    kern_split((size_t)j->N, t, T, &begin, &end); /* T <= N: never empty */
    for (size_t n0 = begin; n0 < end; n0 += LANES) {
        int n = (int)(end - n0 < LANES ? end - n0 : LANES), first = n0 == begin;
#ifdef WGRAD_AVX512
        if (j->vector) {
            pack_group(j, n0, n, xt, dyt, part, first, transpose_rows_avx512);
            group_sums_avx512(j, xt, dyt, part, first);
            continue;
        }
#endif
        pack_group(j, n0, n, xt, dyt, part, first, transpose_rows_portable);
        group_sums_portable(j, xt, dyt, part, first);
    }
}

/* ---- entry points ------------------------------------------------------------------------- */

size_t kern_conv_direct_wgrad_scratch(int C, int H, int W, int K, int KH, int KW, int pad_h,
                                      int pad_w, int OH, int OW, int threads)
{
    wgrad_job j = {.C = C, .H = H, .W = W, .K = K, .KH = KH, .KW = KW, .ph = pad_h,
                   .pw = pad_w, .OH = OH, .OW = OW};
    if (C < 1 || K < 1 || KH < 1 || KW < 1 || OH < 1 || OW < 1)
        return 0;
    job_shape(&j);
    return per_thread(&j) * (size_t)(threads > 1 ? threads : 1);
}

void kern_conv_direct_wgrad(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                            int pad_w, int OH, int OW, const float *x, const float *dy,
                            float *dw, float *db, float *scratch)
{
    wgrad_job j = {N, C, H, W, K, KH, KW, pad_h, pad_w, OH, OW, 0, 0, 0, 0, 0, 0,
                   x, dy, dw, db, scratch, 0};
    if (N < 1 || C < 1 || K < 1 || KH < 1 || KW < 1 || OH < 1 || OW < 1)
        return;
    job_shape(&j);
#ifdef WGRAD_AVX512
    j.vector = kern_isa_active() == KERN_ISA_AVX512;
#endif
    int T = kern_threads();
    kern_run_phases(T < N ? T : N, 2, wgrad_task, &j);
}

/* ==== input gradient (kern_conv_direct_dgrad) ============================================ */
/*
 *   dx[n,c,y,x] = sum_k sum_{i,j} w[k,c,i,j] * dy[n,k,y-i+ph,x-j+pw]   (dy positions that exist)
 *
 * Same lanes-over-images layout: per group of 16 images dy becomes dyt [K, OH*OW, 16] and
 * the group's dx is computed as dxt [C, H*W, 16], then transposed back. A register block
 * holds up to 6 channels x up to 8 columns of one output row over all filters and taps:
 * per tap, nx gradient loads and cb weight broadcasts feed cb * nx FMAs. Only taps that
 * reach an existing dy position are computed: half of those of LeNet's 10x10 -> 14x14 full
 * correlation fall outside dy. Tap rows are exact per output row; tap columns are exact per
 * column, blocks near the left and right borders testing each column (edge blocks), the
 * others not. Every output is one lane of one accumulator summed over (k, i, j) in
 * ascending order whatever the block, group or thread: results are bit-identical across
 * thread counts. */

#define DG_CB 6 /* channels per register block, at most */
#define DG_NX 8 /* columns per register block, at most */

typedef struct dgrad_job {
    int N, C, H, W, K, KH, KW, ph, pw, OH, OW;
    size_t dyt, dxt; /* floats of each per-thread buffer */
    const float *dy, *w;
    float *dx, *scratch;
    int accumulate, vector;
} dgrad_job;

static size_t dgrad_per_thread(const dgrad_job *j) { return j->dyt + j->dxt; }

static void dgrad_shape(dgrad_job *j)
{
    j->dyt = (size_t)j->K * j->OH * j->OW * LANES;
    j->dxt = (size_t)j->C * j->H * j->W * LANES;
}

/* Taps [lo, hi] of a kernel of n along one axis that reach an existing dy index at output
 * index x (dy index x + pad - tap in [0, out)); empty when lo > hi. */
static int tap_lo(int x, int pad, int out) { return max_int(0, x + pad - out + 1); }
static int tap_hi(int x, int pad, int n) { return min_int(n - 1, x + pad); }

/* dyt [K, OH*OW, 16] of images n0 .. n0 + n - 1 (lanes >= n zero). */
static void dgrad_pack(const dgrad_job *j, size_t n0, int n, float *dyt, transpose_fn transpose)
{
    size_t plane = (size_t)j->OH * j->OW;
    for (int k = 0; k < j->K; k++)
        transpose(j->dy + (n0 * j->K + k) * plane, (size_t)j->K * plane, n, (int)plane,
                  dyt + k * plane * LANES, NULL);
}

/* Row l < n (at base + l * stride) = or += lane l of the len vectors at src. */
typedef void (*untranspose_fn)(const float *src, int len, float *base, size_t stride, int n,
                               int accumulate);

static void untranspose_rows_portable(const float *src, int len, float *base, size_t stride,
                                      int n, int accumulate)
{
    for (int l = 0; l < n; l++) {
        float *row = base + l * stride;
        for (int e = 0; e < len; e++) {
            float v = src[(size_t)e * LANES + l];
            row[e] = accumulate ? row[e] + v : v;
        }
    }
}

/* dx of images n0 .. n0 + n - 1 from dxt. */
static void dgrad_unpack(const dgrad_job *j, size_t n0, int n, const float *dxt,
                         untranspose_fn untranspose)
{
    size_t plane = (size_t)j->H * j->W, image = (size_t)j->C * plane;
    for (int c = 0; c < j->C; c++)
        untranspose(dxt + c * plane * LANES, (int)plane, j->dx + n0 * image + c * plane,
                    image, n, j->accumulate);
}

/* dxt of one group in plain loops. */
static void dgrad_sums_portable(const dgrad_job *j, const float *dyt, float *dxt)
{
    float s[LANES];
    for (int c = 0; c < j->C; c++)
        for (int y = 0; y < j->H; y++)
            for (int x = 0; x < j->W; x++) {
                memset(s, 0, sizeof s);
                for (int k = 0; k < j->K; k++)
                    for (int i = tap_lo(y, j->ph, j->OH); i <= tap_hi(y, j->ph, j->KH); i++)
                        for (int t = tap_lo(x, j->pw, j->OW); t <= tap_hi(x, j->pw, j->KW);
                             t++) {
                            float wv = j->w[(((size_t)k * j->C + c) * j->KH + i) * j->KW + t];
                            const float *d = dyt + (((size_t)k * j->OH + y + j->ph - i) * j->OW +
                                                    x + j->pw - t) * LANES;
                            for (int l = 0; l < LANES; l++)
                                s[l] += wv * d[l];
                        }
                memcpy(dxt + (((size_t)c * j->H + y) * j->W + x) * LANES, s, sizeof s);
            }
}

/* Registers a block of cb channels x nx columns needs: cb * nx sums and nx gradients and
 * one weight (or, in edge blocks, cb weights and one gradient); at most 30 of 32. */
#ifdef WGRAD_AVX512
static int dgrad_max_width(int cb) { return min_int(DG_NX, 30 / (cb + 1)); }

/* untranspose_rows_portable, 16 x 16 blocks at a time. */
__attribute__((target("avx512f"))) static void untranspose_rows_avx512(const float *src,
                                                                        int len, float *base,
                                                                        size_t stride, int n,
                                                                        int accumulate)
{
    __m512 r[16];
    for (int e0 = 0; e0 < len; e0 += 16) {
        int cnt = min_int(16, len - e0);
        __mmask16 m = lanes_below(cnt);
        for (int i = 0; i < 16; i++)
            r[i] = i < cnt ? _mm512_loadu_ps(src + (size_t)(e0 + i) * LANES) : _mm512_setzero_ps();
        transpose16(r);
        for (int l = 0; l < n; l++) {
            float *row = base + l * stride + e0;
            __m512 v = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, row), r[l]) : r[l];
            _mm512_mask_storeu_ps(row, m, v);
        }
    }
}

/* Channels c0 .. c0 + cb - 1 of output row y, columns x0 .. x0 + nx - 1, over every filter,
 * the tap rows [ilo, ihi] that exist for y and the tap columns [tlo, thi] that exist for
 * some column of the block. Edge blocks test each column against each tap column (column
 * x0 + p reads dy column p - (t - pw - x0), which must lie in [0, OW)); others need not. */
AVX512_INLINE void dgrad_block(const dgrad_job *j, const float *dyt, float *dxt, int c0,
                               const int cb, int y, int x0, const int nx, const int edge,
                               int ilo, int ihi, int tlo, int thi)
{
    __m512 acc[DG_CB][DG_NX];
    for (int c = 0; c < cb; c++)
        for (int p = 0; p < nx; p++)
            acc[c][p] = _mm512_setzero_ps();
    size_t row = (size_t)j->OW * LANES, wc = (size_t)j->KH * j->KW;
    for (int k = 0; k < j->K; k++) {
        const float *wk = j->w + ((size_t)k * j->C + c0) * wc;
        const float *dk = dyt + (size_t)k * j->OH * row;
        for (int i = ilo; i <= ihi; i++) {
            const float *wi = wk + (size_t)i * j->KW, *di = dk + (size_t)(y + j->ph - i) * row;
            for (int t = tlo; t <= thi; t++) {
                int shift = t - j->pw - x0; /* column x0 + p reads dy column p - shift */
                if (edge) {
                    __m512 wv[DG_CB];
                    for (int c = 0; c < cb; c++)
                        wv[c] = _mm512_set1_ps(wi[c * wc + t]);
                    for (int p = 0; p < nx; p++)
                        if ((unsigned)(p - shift) < (unsigned)j->OW) {
                            __m512 g = _mm512_loadu_ps(di + (size_t)(p - shift) * LANES);
                            for (int c = 0; c < cb; c++)
                                acc[c][p] = _mm512_fmadd_ps(wv[c], g, acc[c][p]);
                        }
                    continue;
                }
                const float *d = di - (ptrdiff_t)shift * LANES;
                __m512 g[DG_NX];
                for (int p = 0; p < nx; p++)
                    g[p] = _mm512_loadu_ps(d + p * LANES);
                for (int c = 0; c < cb; c++) {
                    __m512 wv = _mm512_set1_ps(wi[c * wc + t]);
                    for (int p = 0; p < nx; p++)
                        acc[c][p] = _mm512_fmadd_ps(wv, g[p], acc[c][p]);
                }
            }
        }
    }
    for (int c = 0; c < cb; c++)
        for (int p = 0; p < nx; p++)
            _mm512_storeu_ps(dxt + (((size_t)(c0 + c) * j->H + y) * j->W + x0 + p) * LANES,
                             acc[c][p]);
}

#define NX_CASE(cb, nx)                                                                      \
    case nx:                                                                                 \
        if (edge)                                                                            \
            dgrad_block(j, dyt, dxt, c0, cb, y, x0, nx, 1, ilo, ihi, tlo, thi);              \
        else                                                                                 \
            dgrad_block(j, dyt, dxt, c0, cb, y, x0, nx, 0, ilo, ihi, tlo, thi);              \
        break;
#define CB_CASE(cb, ...)                                                                     \
    case cb:                                                                                 \
        switch (nx) { __VA_ARGS__ }                                                          \
        break;

/* The widths dgrad_max_width allows for each channel count. */
__attribute__((target("avx512f"))) static void dgrad_block_avx512(
    const dgrad_job *j, const float *dyt, float *dxt, int c0, int cb, int y, int x0, int nx,
    int edge, int ilo, int ihi, int tlo, int thi)
{
    switch (cb) {
        CB_CASE(1, NX_CASE(1, 1) NX_CASE(1, 2) NX_CASE(1, 3) NX_CASE(1, 4) NX_CASE(1, 5)
                       NX_CASE(1, 6) NX_CASE(1, 7) NX_CASE(1, 8))
        CB_CASE(2, NX_CASE(2, 1) NX_CASE(2, 2) NX_CASE(2, 3) NX_CASE(2, 4) NX_CASE(2, 5)
                       NX_CASE(2, 6) NX_CASE(2, 7) NX_CASE(2, 8))
        CB_CASE(3, NX_CASE(3, 1) NX_CASE(3, 2) NX_CASE(3, 3) NX_CASE(3, 4) NX_CASE(3, 5)
                       NX_CASE(3, 6) NX_CASE(3, 7))
        CB_CASE(4, NX_CASE(4, 1) NX_CASE(4, 2) NX_CASE(4, 3) NX_CASE(4, 4) NX_CASE(4, 5)
                       NX_CASE(4, 6))
        CB_CASE(5, NX_CASE(5, 1) NX_CASE(5, 2) NX_CASE(5, 3) NX_CASE(5, 4) NX_CASE(5, 5))
        CB_CASE(6, NX_CASE(6, 1) NX_CASE(6, 2) NX_CASE(6, 3) NX_CASE(6, 4))
    }
}
#undef CB_CASE
#undef NX_CASE

/* dxt of one group: channel blocks of up to 6 and column blocks of up to dgrad_max_width,
 * both evenly split, for every row. */
static void dgrad_sums_avx512(const dgrad_job *j, const float *dyt, float *dxt)
{
    int cblocks = (j->C + DG_CB - 1) / DG_CB;
    for (int bc = 0, c0 = 0; bc < cblocks; c0 += block_size(j->C, DG_CB, bc++)) {
        int cb = block_size(j->C, DG_CB, bc), nmax = dgrad_max_width(cb);
        int xblocks = (j->W + nmax - 1) / nmax;
        for (int y = 0; y < j->H; y++) {
            int ilo = tap_lo(y, j->ph, j->OH), ihi = tap_hi(y, j->ph, j->KH);
            for (int bx = 0, x0 = 0; bx < xblocks; x0 += block_size(j->W, nmax, bx++)) {
                int nx = block_size(j->W, nmax, bx), xl = x0 + nx - 1;
                int tlo = tap_lo(x0, j->pw, j->OW), thi = tap_hi(xl, j->pw, j->KW);
                /* interior: every column of the block reaches every tap of [tlo, thi] */
                int edge = tap_hi(x0, j->pw, j->KW) < thi || tap_lo(xl, j->pw, j->OW) > tlo;
                dgrad_block_avx512(j, dyt, dxt, c0, cb, y, x0, nx, edge, ilo, ihi, tlo, thi);
            }
        }
    }
}
#endif

static void dgrad_task(void *ctx, int t, int T)
{
    const dgrad_job *j = ctx;
    float *dyt = j->scratch + (size_t)t * dgrad_per_thread(j), *dxt = dyt + j->dyt;
    size_t begin, end;
    kern_split((size_t)j->N, t, T, &begin, &end); /* T <= N: never empty */
    for (size_t n0 = begin; n0 < end; n0 += LANES) {
        int n = (int)(end - n0 < LANES ? end - n0 : LANES);
#ifdef WGRAD_AVX512
        if (j->vector) {
            dgrad_pack(j, n0, n, dyt, transpose_rows_avx512);
            dgrad_sums_avx512(j, dyt, dxt);
            dgrad_unpack(j, n0, n, dxt, untranspose_rows_avx512);
            continue;
        }
#endif
        dgrad_pack(j, n0, n, dyt, transpose_rows_portable);
        dgrad_sums_portable(j, dyt, dxt);
        dgrad_unpack(j, n0, n, dxt, untranspose_rows_portable);
    }
}

size_t kern_conv_direct_dgrad_scratch(int C, int H, int W, int K, int KH, int KW, int pad_h,
                                      int pad_w, int OH, int OW, int threads)
{
    dgrad_job j = {.C = C, .H = H, .W = W, .K = K, .KH = KH, .KW = KW, .ph = pad_h,
                   .pw = pad_w, .OH = OH, .OW = OW};
    if (C < 1 || H < 1 || W < 1 || K < 1 || KH < 1 || KW < 1 || OH < 1 || OW < 1)
        return 0;
    dgrad_shape(&j);
    return dgrad_per_thread(&j) * (size_t)(threads > 1 ? threads : 1);
}

void kern_conv_direct_dgrad(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                            int pad_w, int OH, int OW, const float *dy, const float *w,
                            float *dx, int accumulate, float *scratch)
{
    dgrad_job j = {.N = N, .C = C, .H = H, .W = W, .K = K, .KH = KH, .KW = KW, .ph = pad_h,
                   .pw = pad_w, .OH = OH, .OW = OW, .dy = dy, .w = w, .dx = dx,
                   .scratch = scratch, .accumulate = accumulate};
    if (N < 1 || C < 1 || H < 1 || W < 1)
        return;
    if (K < 1 || KH < 1 || KW < 1 || OH < 1 || OW < 1) { /* no gradient reaches dx */
        if (!accumulate)
            memset(dx, 0, sizeof(float) * (size_t)N * C * H * W);
        return;
    }
    dgrad_shape(&j);
#ifdef WGRAD_AVX512
    j.vector = kern_isa_active() == KERN_ISA_AVX512;
#endif
    int T = kern_threads();
    kern_run(T < N ? T : N, dgrad_task, &j);
}
