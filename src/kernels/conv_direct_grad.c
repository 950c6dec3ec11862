/* Weight and bias gradients of a direct convolution with few input channels (LeNet's
 * 1 -> 6 and 6 -> 16 channels, 5x5), without im2col:
 *
 *   dw[k,c,ky,kx] += sum_n sum_{oy,ox} dy[n,k,oy,ox] * x[n,c,oy+ky-ph,ox+kx-pw]
 *   db[k]         += sum_n sum_{oy,ox} dy[n,k,oy,ox]
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
 * own partial, vector-wide [K*C*KH*KW + K][16], and after a barrier each thread adds a
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

static int have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
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

static void wgrad_task(void *ctx, int t, int T)
{
    const wgrad_job *j = ctx;
    float *xt = j->scratch + (size_t)t * per_thread(j), *dyt = xt + j->xt, *part = dyt + j->dyt;
    size_t begin, end;
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
    kern_barrier();
    size_t outs = (size_t)j->K * j->taps + j->K;
    kern_split(outs, t, T, &begin, &end);
    reduce_partials(j, T, begin, end);
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
    j.vector = strcmp(kern_isa_name(), "avx512") == 0 && have_avx512();
#endif
    int T = kern_threads();
    kern_run(T < N ? T : N, wgrad_task, &j);
}
