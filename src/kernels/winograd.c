/* Winograd F(4x4, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2015), stride 1, one group.
 *
 * Each 4x4 block of outputs ("tile") of output channel k is
 *     Y = A^T [ sum_c (G g_kc G^T) .* (B^T d_c B) ] A
 * (G's row scales are moved into the output transform: see weight_1d)
 * where g_kc are the 3x3 weights and d_c the 6x6 input patch under the tile (rows and
 * columns 4 * tile - pad .. + 5, zero outside the image). With U[e] = (G g G^T)[e] and
 * V[e] = (B^T d B)[e] for the 36 entries e of a 6x6 transform, the sum over c splits into 36
 * independent products
 *     M[e] (K x tiles) = U[e] (K x C) . V[e] (C x tiles)
 * costing 36 multiply-adds per 16 outputs and input channel instead of 144.
 *
 * Layouts (a vector is 16 lanes: output channels k in U and M, input channels c in V):
 *   U  [kblock][e][c][KB]   KB = 16 * KV output channels per block, lanes past K are zero
 *   V  [e][tile][Cp]        Cp = C rounded up to 16
 *   M  [tile][e][KB]
 * The micro-kernel keeps a KB x NT block of M[e] in registers; per input channel it loads KV
 * vectors of U and broadcasts NT values of V. The transforms work on 16 channels at once,
 * so the images' [C, H, W] planes are transposed to channel-minor strips on the way in and
 * back on the way out, 16 x 16 at a time.
 *
 * Work split (static; every output is computed by the same operations in the same order
 * whichever thread does it, so results do not depend on the thread count):
 *   fused:   when the transformed input of all tiles fits in cache, every thread transforms
 *            the whole input and takes a range of k-blocks, transforming those weights
 *            right before use: the 36 x K x C transformed weights (4x the weights) never
 *            travel to memory, which is what matters for deep layers on small images.
 *   blocked: otherwise the threads first transform all weights into the workspace, then
 *            each takes a range of tile rows and walks it in cache-sized blocks.
 *
 * Three builds of the same code: AVX-512 (when kern_isa_active() is KERN_ISA_AVX512), NEON
 * (KERN_ISA_NEON, aarch64) and portable C. The transforms are written once with GCC vector
 * types, which compile to zmm registers in the AVX-512 build, to four q registers per vector
 * on aarch64 and to narrower vectors in the portable one; the products have a micro-kernel
 * of intrinsics per vector build and a plain C one. */
#include "kernels.h"

#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#define WINO_AVX512 1
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define WINO_NEON 1
#include <arm_neon.h>
#endif

enum { LANES = 16, NE = 36 /* entries of a 6x6 transform */ };
enum { SIMD_NONE, SIMD_AVX512, SIMD_NEON }; /* the products' micro-kernel */

/* Transformed input plus products (floats) of one block: about a third of a 1 MiB L2; of
 * all tiles in fused mode: about all of it. */
#ifndef WINO_BLOCK_FLOATS
#define WINO_BLOCK_FLOATS (96 * 1024)
#endif
#ifndef WINO_FUSE_FLOATS
#define WINO_FUSE_FLOATS (256 * 1024)
#endif
/* Transformed weights of one (k-block, c-block) in fused mode. */
#ifndef WINO_UBLOCK_FLOATS
#define WINO_UBLOCK_FLOATS (96 * 1024)
#endif

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4))); /* unaligned access */
typedef int v16i __attribute__((vector_size(64)));

/* Vectors are never passed by value (that would change the ABI between the two builds). */
#define VLOAD(p) (*(const v16u *)(const void *)(p))
#define VSTORE(p, x) (*(v16u *)(void *)(p) = (x))

#define INLINE static inline __attribute__((always_inline))
#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Stride between the 36 entries of a transform for n floats each: 64 bytes past a multiple of
 * 4 KiB, so that the 36 stores of one tile or weight land in 36 different L1 sets instead of
 * thrashing one (n is often a power of two). */
static size_t entry_stride(size_t n) { return ((n + 1023) & ~(size_t)1023) + LANES; }

/* ---- the plan: sizes, blocking and workspace layout ----------------------------------- */

typedef struct {
    int N, C, H, W, K, ph, pw;
    int OH, OW, TH, TW; /* output size; tiles down and across one image */
    int rows;           /* tile rows of the batch, N * TH */
    int Cp;             /* C rounded up to 16 */
    int kv, kb, nkb;    /* vectors per k-block, its channels (16 * kv), k-blocks */
    int nt;             /* tiles per micro-kernel call */
    int fused, cb;      /* fused mode; input channels per weight block in that mode */
    int rows_blk, tiles_blk; /* tile rows and tiles of one block */
    int strip_w;        /* columns of a staged input strip: 4 * TW + 2, rounded up to 16 */
    size_t ue, ufe, ve; /* entry strides: all weights, fused weight block, input block */
    size_t u_floats;    /* transformed weights of one k-block: 36 * ue */
    /* per thread: V, M, fused weight block, staging; shared: all weights (blocked) */
    size_t v_floats, m_floats, uf_floats, stage_floats, per_thread, shared;
} wplan;

/* Micro-kernel width in tiles for kv vectors of output channels: at most 24 accumulators. */
static int tiles_per_call(int kv) { return kv <= 2 ? 12 : kv == 3 ? 8 : 6; }

static wplan make_plan(int N, int C, int H, int W, int K, int ph, int pw, int T)
{
    wplan p;
    memset(&p, 0, sizeof p);
    p.N = N, p.C = C, p.H = H, p.W = W, p.K = K, p.ph = ph, p.pw = pw;
    p.OH = H + 2 * ph - 2;
    p.OW = W + 2 * pw - 2;
    if (N <= 0 || K <= 0 || C <= 0 || p.OH <= 0 || p.OW <= 0)
        return p;
    p.TH = (p.OH + 3) / 4;
    p.TW = (p.OW + 3) / 4;
    p.rows = N * p.TH;
    p.Cp = (int)round16((size_t)C);
    /* k-blocks of up to 64 channels, as even as 16-channel vectors allow */
    int k16 = (K + 15) / 16;
    p.nkb = (k16 + 3) / 4;
    p.kv = (k16 + p.nkb - 1) / p.nkb;
    p.kb = 16 * p.kv;
    p.nkb = (K + p.kb - 1) / p.kb;
    p.nt = tiles_per_call(p.kv);
    p.ue = entry_stride((size_t)C * (size_t)p.kb);
    p.u_floats = NE * p.ue;

    size_t per_tile = (size_t)NE * (size_t)(p.Cp + p.kb); /* V and M floats */
    p.fused = per_tile * (size_t)p.rows * (size_t)p.TW <= WINO_FUSE_FLOATS && p.nkb >= T;
    if (p.fused) {
        p.rows_blk = p.rows;
    } else {
        int fit = (int)(WINO_BLOCK_FLOATS / per_tile / (size_t)p.TW);
        int mine = (p.rows + T - 1) / T;
        p.rows_blk = imax(1, imin(fit, mine));
    }
    p.tiles_blk = p.rows_blk * p.TW;
    p.strip_w = (int)round16((size_t)(4 * p.TW + 2));

    p.ve = entry_stride((size_t)p.tiles_blk * (size_t)p.Cp);
    p.v_floats = NE * p.ve;
    p.m_floats = round16((size_t)p.tiles_blk * NE * (size_t)p.kb);
    p.cb = imin(p.Cp, imax(LANES, WINO_UBLOCK_FLOATS / (NE * p.kb) / LANES * LANES));
    p.ufe = entry_stride((size_t)p.cb * (size_t)p.kb);
    p.uf_floats = p.fused ? NE * p.ufe : 0;
    size_t strip = (size_t)6 * (size_t)p.strip_w * LANES, weights = (size_t)9 * LANES * LANES;
    p.stage_floats = strip > weights ? strip : weights;
    p.per_thread = p.v_floats + p.m_floats + p.uf_floats + p.stage_floats;
    p.shared = p.fused ? 0 : round16((size_t)p.nkb * p.u_floats);
    return p;
}

static size_t plan_floats(const wplan *p, int T)
{
    return p->shared + (size_t)T * p->per_thread;
}

/* ---- the transforms, on vectors of 16 lanes ------------------------------------------- */

/* o[0..5] = B^T d: d and o hold 6 vectors `s` apart. */
INLINE void input_1d(const v16 *d, int s, v16 *o)
{
    v16 t1 = d[4 * s] - 4.0f * d[2 * s], t2 = d[3 * s] - 4.0f * d[s];
    v16 t3 = d[4 * s] - d[2 * s], t4 = 2.0f * (d[3 * s] - d[s]);
    o[0] = 4.0f * d[0] - d[2 * s] + t1;
    o[s] = t1 + t2;
    o[2 * s] = t1 - t2;
    o[3 * s] = t3 + t4;
    o[4 * s] = t3 - t4;
    o[5 * s] = d[5 * s] - d[3 * s] - 2.0f * t4;
}

/* The weight transform G = D G' has rows G' = (1 0 0), (1 1 1), (1 -1 1), (1 2 4), (1 -2 4),
 * (0 0 1) scaled by D = diag(1/4, -1/6, -1/6, 1/24, 1/24, 1). The weights are transformed
 * with G' only and D is applied to the products instead, folded into the output transform:
 * A^T (D M' D) A = (A^T D) M' (D A). The output side has K x tiles such vectors, the weight
 * side K x C, far more in the deep layers. */

/* o[0..5] = G' g: g holds 3 vectors `s` apart, o 6 vectors `so` apart. */
INLINE void weight_1d(const v16 *g, int s, v16 *o, int so)
{
    v16 a = g[0] + g[2 * s], b = g[0] + 4.0f * g[2 * s], c = 2.0f * g[s];
    o[0] = g[0];
    o[so] = a + g[s];
    o[2 * so] = a - g[s];
    o[3 * so] = b + c;
    o[4 * so] = b - c;
    o[5 * so] = g[2 * s];
}

/* o[0..3] = (A^T D) m: m holds 6 vectors `s` apart, o 4 vectors `so` apart. A^T D has rows
 * (1/4, -1/6, -1/6, 1/24, 1/24, 0), (0, -1/6, 1/6, 1/12, -1/12, 0),
 * (0, -1/6, -1/6, 1/6, 1/6, 0), (0, -1/6, 1/6, 1/3, -1/3, 1). */
INLINE void output_1d(const v16 *m, int s, v16 *o, int so)
{
    v16 a = (-1.0f / 6) * (m[s] + m[2 * s]), b = (-1.0f / 6) * (m[s] - m[2 * s]);
    v16 c = m[3 * s] + m[4 * s], d = m[3 * s] - m[4 * s];
    o[0] = 0.25f * m[0] + a + (1.0f / 24) * c;
    o[so] = b + (1.0f / 12) * d;
    o[2 * so] = a + (1.0f / 6) * c;
    o[3 * so] = b + (1.0f / 3) * d + m[5 * s];
}

/* Transposes 16 vectors in place: r[i][j] <-> r[j][i]. The vector build swaps the
 * off-diagonal blocks of 8, then 4, 2 and 1 rows. */
INLINE void transpose16(v16 *r, int simd)
{
    if (!simd) {
        float a[LANES][LANES], b[LANES][LANES];
        memcpy(a, r, sizeof a);
        for (int i = 0; i < LANES; i++)
            for (int j = 0; j < LANES; j++)
                b[j][i] = a[i][j];
        memcpy(r, b, sizeof b);
        return;
    }
    /* Each round swaps blocks of b = 8, 4, 2, 1 rows; the lane patterns are constants
     * (clang's __builtin_shufflevector takes them as literal arguments). */
#define LO0 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define HI0 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define LO1 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define HI1 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define LO2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define HI2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define LO3 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define HI3 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#if defined(__clang__)
#define SHUF16(x, y, ...) __builtin_shufflevector(x, y, __VA_ARGS__)
#else
#define SHUF16(x, y, ...) __builtin_shuffle(x, y, (v16i){__VA_ARGS__})
#endif
#define TRANSPOSE_ROUND(b, lo, hi)                                                          \
    _Pragma("GCC unroll 16") for (int i = 0; i < LANES; i++) if (!(i & (b)))                \
    {                                                                                       \
        v16 x = r[i], y = r[i + (b)];                                                       \
        r[i] = SHUF16(x, y, lo);                                                            \
        r[i + (b)] = SHUF16(x, y, hi);                                                      \
    }
    TRANSPOSE_ROUND(8, LO0, HI0)
    TRANSPOSE_ROUND(4, LO1, HI1)
    TRANSPOSE_ROUND(2, LO2, HI2)
    TRANSPOSE_ROUND(1, LO3, HI3)
#undef TRANSPOSE_ROUND
#undef SHUF16
#undef LO0
#undef HI0
#undef LO1
#undef HI1
#undef LO2
#undef HI2
#undef LO3
#undef HI3
}

/* n floats of src into a vector, zeros after. */
INLINE void load_partial(v16 *dst, const float *src, int n)
{
    float tmp[LANES] = {0};
    for (int k = 0; k < n; k++)
        tmp[k] = src[k];
    memcpy(dst, tmp, sizeof tmp);
}

/* ---- input: strips of 6 image rows, channel-minor, then tiles -------------------------- */

/* S[i][xs][l] = in[n, c0 + l, y0 + i, xs - pw] for i < 6, xs < strip_w, l < 16 (zero outside
 * the image and for channels past C). */
INLINE void stage_strip(const wplan *p, const float *in, int n, int y0, int c0, float *S,
                        int simd)
{
    int cc = imin(LANES, p->C - c0);
    size_t plane = (size_t)p->H * p->W;
    for (int i = 0; i < 6; i++) {
        int y = y0 + i;
        float *Si = S + (size_t)i * p->strip_w * LANES;
        if (y < 0 || y >= p->H) {
            memset(Si, 0, (size_t)p->strip_w * LANES * sizeof(float));
            continue;
        }
        for (int xq = 0; xq < p->strip_w; xq += LANES) {
            v16 r[LANES];
            int x = xq - p->pw, lo = imax(0, -x), hi = imin(LANES, p->W - x);
            for (int l = 0; l < LANES; l++) {
                if (l >= cc || hi <= lo) {
                    r[l] = (v16){0};
                    continue;
                }
                const float *row = in + ((size_t)n * p->C + (size_t)(c0 + l)) * plane +
                                   (size_t)y * p->W;
                if (lo == 0 && hi == LANES) {
                    r[l] = VLOAD(row + x);
                } else { /* a border: element by element (no library call per row) */
                    float tmp[LANES] = {0};
                    for (int k = lo; k < hi; k++)
                        tmp[k] = row[x + k];
                    memcpy(&r[l], tmp, sizeof tmp);
                }
            }
            transpose16(r, simd);
            for (int j = 0; j < LANES; j++)
                VSTORE(Si + (size_t)(xq + j) * LANES, r[j]);
        }
    }
}

/* V[e][tt][c0..c0+15] for the TW tiles of one staged strip, tt = t_first + tx. */
INLINE void transform_strip(const wplan *p, const float *S, int c0, int t_first, float *V)
{
    for (int tx = 0; tx < p->TW; tx++) {
        v16 d[NE], t[NE];
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++)
                d[i * 6 + j] = VLOAD(S + ((size_t)i * p->strip_w + 4 * tx + j) * LANES);
        for (int j = 0; j < 6; j++) /* columns: B^T d */
            input_1d(d + j, 6, t + j);
        for (int a = 0; a < 6; a++) /* rows: (B^T d) B */
            input_1d(t + 6 * a, 1, d + 6 * a);
#pragma GCC unroll 36
        for (int e = 0; e < NE; e++)
            VSTORE(V + (size_t)e * p->ve + (size_t)(t_first + tx) * p->Cp + c0, d[e]);
    }
}

/* V for tile rows [r0, r0 + nr) of the batch, all channels. */
INLINE void input_block(const wplan *p, const float *in, int r0, int nr, float *V, float *S,
                        int simd)
{
    for (int r = r0; r < r0 + nr; r++) {
        int n = r / p->TH, ty = r % p->TH;
        for (int c0 = 0; c0 < p->C; c0 += LANES) {
            stage_strip(p, in, n, 4 * ty - p->ph, c0, S, simd);
            transform_strip(p, S, c0, (r - r0) * p->TW, V);
        }
    }
}

/* ---- weights ----------------------------------------------------------------------------- */

/* U[e * ue + c * kb + 16 s ..] = (G' g G'^T)[e] of k-block kblk for input channels c0 + c,
 * c < 16: the 9 taps x 16 input channels of the 16 output channels of vector s are first
 * transposed to S[c * 9 + tap] (lanes k). */
INLINE void weight_chunk(const wplan *p, const float *w, int kblk, int c0, float *U, size_t ue,
                         float *S, int simd)
{
    int cc = imin(LANES, p->C - c0), valid = 9 * cc;
    for (int s = 0; s < p->kv; s++) {
        int k0 = kblk * p->kb + LANES * s;
        for (int q = 0; 16 * q < valid; q++) {
            v16 r[LANES];
            for (int l = 0; l < LANES; l++) {
                if (k0 + l >= p->K) {
                    r[l] = (v16){0};
                    continue;
                }
                const float *src = w + ((size_t)(k0 + l) * p->C + (size_t)c0) * 9 + 16 * q;
                if (valid - 16 * q >= LANES)
                    r[l] = VLOAD(src);
                else
                    load_partial(&r[l], src, valid - 16 * q);
            }
            transpose16(r, simd);
            for (int j = 0; j < LANES; j++)
                VSTORE(S + (size_t)(16 * q + j) * LANES, r[j]);
        }
        for (int c = 0; c < cc; c++) {
            v16 g[9], t[18], u[NE];
            for (int i = 0; i < 9; i++)
                g[i] = VLOAD(S + (size_t)(9 * c + i) * LANES);
            for (int j = 0; j < 3; j++) /* columns: G' g, t is 6 x 3 */
                weight_1d(g + j, 3, t + j, 3);
            for (int a = 0; a < 6; a++) /* rows: (G' g) G'^T */
                weight_1d(t + 3 * a, 1, u + 6 * a, 1);
#pragma GCC unroll 36
            for (int e = 0; e < NE; e++)
                VSTORE(U + (size_t)e * ue + (size_t)c * p->kb + LANES * s, u[e]);
        }
    }
}

/* ---- output: tiles back to [N, K, OH, OW] ---------------------------------------------- */

/* out for tile rows [r0, r0 + nr) and k-block kblk from M [tile][e][kb]. */
INLINE void output_block(const wplan *p, const float *M, int kblk, int r0, int nr,
                         const float *bias, float *out, int simd)
{
    size_t plane = (size_t)p->OH * p->OW;
    for (int s = 0; s < p->kv; s++) {
        int k0 = kblk * p->kb + LANES * s, kk = imin(LANES, p->K - k0);
        if (kk <= 0)
            break;
        float bl[LANES] = {0};
        for (int l = 0; l < kk && bias; l++)
            bl[l] = bias[k0 + l];
        v16 bv;
        memcpy(&bv, bl, sizeof bl);
        for (int r = r0; r < r0 + nr; r++) {
            int n = r / p->TH, ty = r % p->TH, ny = imin(4, p->OH - 4 * ty);
            for (int tx = 0; tx < p->TW; tx++) {
                const float *m = M + ((size_t)(r - r0) * p->TW + tx) * NE * p->kb + LANES * s;
                v16 a[NE], t[24], y[LANES];
                for (int e = 0; e < NE; e++)
                    a[e] = VLOAD(m + (size_t)e * p->kb);
                for (int b = 0; b < 6; b++) /* columns: A^T m, t is 4 x 6 */
                    output_1d(a + b, 6, t + b, 6);
                for (int i = 0; i < 4; i++) /* rows: (A^T m) A */
                    output_1d(t + 6 * i, 1, y + 4 * i, 1);
                for (int i = 0; i < LANES; i++)
                    y[i] += bv;
                transpose16(y, simd); /* y[l]: the tile's 16 outputs of channel k0 + l */
                int x0 = 4 * tx, nx = imin(4, p->OW - x0);
                for (int l = 0; l < kk; l++) {
                    float *o = out + ((size_t)n * p->K + (size_t)(k0 + l)) * plane +
                               (size_t)(4 * ty) * p->OW + x0;
                    const float *yl = (const float *)(const void *)&y[l];
                    for (int i = 0; i < ny; i++) {
                        if (nx == 4) /* a constant size: one 16-byte move */
                            memcpy(o + (size_t)i * p->OW, yl + 4 * i, 4 * sizeof(float));
                        else
                            for (int k = 0; k < nx; k++)
                                o[(size_t)i * p->OW + k] = yl[4 * i + k];
                    }
                }
            }
        }
    }
}

/* ---- the 36 products, M[tile][e][kb] = U[e] V[e] -------------------------------------- */

#ifdef WINO_AVX512
/* One register block: m[j * ldm + i] (+)= sum_c u[c * 16 KV + i] v[j * ldv + c], j < NT,
 * adding to m when `add`. */
AVX512_INLINE void micro_avx512(int C, const float *u, const float *v, ptrdiff_t ldv, float *m,
                                ptrdiff_t ldm, int add, const int KV, const int NT)
{
    __m512 acc[4][12];
#pragma GCC unroll 12
    for (int j = 0; j < NT; j++)
#pragma GCC unroll 4
        for (int i = 0; i < KV; i++)
            acc[i][j] = add ? _mm512_loadu_ps(m + j * ldm + LANES * i) : _mm512_setzero_ps();
    for (int c = 0; c < C; c++, u += LANES * KV) {
        __m512 a[4];
#pragma GCC unroll 4
        for (int i = 0; i < KV; i++)
            a[i] = _mm512_loadu_ps(u + LANES * i);
#pragma GCC unroll 12
        for (int j = 0; j < NT; j++) {
            __m512 b = _mm512_set1_ps(v[j * ldv + c]);
#pragma GCC unroll 4
            for (int i = 0; i < KV; i++)
                acc[i][j] = _mm512_fmadd_ps(a[i], b, acc[i][j]);
        }
    }
#pragma GCC unroll 12
    for (int j = 0; j < NT; j++)
#pragma GCC unroll 4
        for (int i = 0; i < KV; i++)
            _mm512_storeu_ps(m + j * ldm + LANES * i, acc[i][j]);
}

/* One case of the dispatch below: kv and nt are constants, so each case is a register
 * block of its own. */
#define MICRO_CASE(kv, nt)                                                                 \
    case kv * 16 + nt:                                                                     \
        micro_avx512(C, u, v, ldv, m, ldm, add, kv, nt);                                   \
        break;
#define MICRO_CASES_6(kv)                                                                  \
    MICRO_CASE(kv, 1) MICRO_CASE(kv, 2) MICRO_CASE(kv, 3) MICRO_CASE(kv, 4)               \
    MICRO_CASE(kv, 5) MICRO_CASE(kv, 6)
#define MICRO_CASES_8(kv) MICRO_CASES_6(kv) MICRO_CASE(kv, 7) MICRO_CASE(kv, 8)
#define MICRO_CASES_12(kv)                                                                 \
    MICRO_CASES_8(kv) MICRO_CASE(kv, 9) MICRO_CASE(kv, 10) MICRO_CASE(kv, 11)             \
    MICRO_CASE(kv, 12)

/* The register block for kv vectors and nt <= tiles_per_call(kv) tiles. */
static AVX512 void micro_dispatch_avx512(int kv, int nt, int C, const float *u, const float *v,
                                         ptrdiff_t ldv, float *m, ptrdiff_t ldm, int add)
{
    switch (kv * 16 + nt) {
        MICRO_CASES_12(1)
        MICRO_CASES_12(2)
        MICRO_CASES_8(3)
        MICRO_CASES_6(4)
    default:
        break;
    }
}
#endif

#ifdef WINO_NEON
/* One register block of NEON: m[j * ldm + i] (+)= sum_c u[c * kb + i0 + i] v[j * ldv + c]
 * for i < 16 (four q registers) and j < NJ <= 4 tiles: 16 accumulators, fused multiply-adds
 * in channel order. */
static inline __attribute__((always_inline)) void micro_neon_block(int C, int kb,
                                                                   const float *u,
                                                                   const float *v,
                                                                   ptrdiff_t ldv, float *m,
                                                                   ptrdiff_t ldm, int add,
                                                                   const int NJ)
{
    float32x4_t acc[4][4];
    for (int j = 0; j < NJ; j++)
        for (int q = 0; q < 4; q++)
            acc[j][q] = add ? vld1q_f32(m + j * ldm + 4 * q) : vdupq_n_f32(0.0f);
    for (int c = 0; c < C; c++, u += kb) {
        float32x4_t a0 = vld1q_f32(u), a1 = vld1q_f32(u + 4), a2 = vld1q_f32(u + 8),
                    a3 = vld1q_f32(u + 12);
        for (int j = 0; j < NJ; j++) {
            float32x4_t b = vdupq_n_f32(v[j * ldv + c]);
            acc[j][0] = vfmaq_f32(acc[j][0], a0, b);
            acc[j][1] = vfmaq_f32(acc[j][1], a1, b);
            acc[j][2] = vfmaq_f32(acc[j][2], a2, b);
            acc[j][3] = vfmaq_f32(acc[j][3], a3, b);
        }
    }
    for (int j = 0; j < NJ; j++)
        for (int q = 0; q < 4; q++)
            vst1q_f32(m + j * ldm + 4 * q, acc[j][q]);
}

/* micro_portable's contract on NEON: 16 output channels by up to 4 tiles at a time. */
static void micro_neon(int kb, int nt, int C, const float *u, const float *v, ptrdiff_t ldv,
                       float *m, ptrdiff_t ldm, int add)
{
    for (int i0 = 0; i0 < kb; i0 += LANES)
        for (int j0 = 0; j0 < nt; j0 += 4) {
            const float *vj = v + j0 * ldv;
            float *mj = m + j0 * ldm + i0;
            switch (imin(4, nt - j0)) {
            case 4: micro_neon_block(C, kb, u + i0, vj, ldv, mj, ldm, add, 4); break;
            case 3: micro_neon_block(C, kb, u + i0, vj, ldv, mj, ldm, add, 3); break;
            case 2: micro_neon_block(C, kb, u + i0, vj, ldv, mj, ldm, add, 2); break;
            default: micro_neon_block(C, kb, u + i0, vj, ldv, mj, ldm, add, 1); break;
            }
        }
}
#endif

static void micro_portable(int kb, int nt, int C, const float *u, const float *v, ptrdiff_t ldv,
                           float *m, ptrdiff_t ldm, int add)
{
    float acc[12][64];
    for (int j = 0; j < nt; j++) {
        if (add)
            memcpy(acc[j], m + j * ldm, (size_t)kb * sizeof(float));
        else
            memset(acc[j], 0, (size_t)kb * sizeof(float));
    }
    for (int c = 0; c < C; c++, u += kb)
        for (int j = 0; j < nt; j++) {
            float b = v[j * ldv + c];
            for (int i = 0; i < kb; i++)
                acc[j][i] += u[i] * b;
        }
    for (int j = 0; j < nt; j++)
        memcpy(m + j * ldm, acc[j], (size_t)kb * sizeof(float));
}

/* M (+)= U V over input channels [c0, c0 + cn) for the block's `tiles` tiles and one
 * k-block: U [e][c][kb] (entries ue floats apart) starts at channel c0. Adds to M when
 * `add` (the later channel blocks): the sums see the channels in the same order either way. */
static void products(const wplan *p, const float *U, size_t ue, const float *V, int c0, int cn,
                     float *M, int tiles, int add, int simd)
{
    ptrdiff_t ldv = p->Cp, ldm = (ptrdiff_t)NE * p->kb;
    int groups = (tiles + p->nt - 1) / p->nt; /* of even sizes: 14 tiles run 5 + 5 + 4 */
    for (int e = 0; e < NE; e++) {
        const float *u = U + (size_t)e * ue;
        for (int g = 0; g < groups; g++) {
            int t0 = tiles * g / groups, nt = tiles * (g + 1) / groups - t0;
            const float *v = V + (size_t)e * p->ve + (size_t)t0 * p->Cp + c0;
            float *m = M + ((size_t)t0 * NE + (size_t)e) * p->kb;
            switch (simd) {
#ifdef WINO_AVX512
            case SIMD_AVX512:
                micro_dispatch_avx512(p->kv, nt, cn, u, v, ldv, m, ldm, add);
                break;
#endif
#ifdef WINO_NEON
            case SIMD_NEON:
                micro_neon(p->kb, nt, cn, u, v, ldv, m, ldm, add);
                break;
#endif
            default:
                micro_portable(p->kb, nt, cn, u, v, ldv, m, ldm, add);
            }
        }
    }
}

/* ---- the two builds of the transforms ------------------------------------------------- */

typedef struct {
    void (*input)(const wplan *p, const float *in, int r0, int nr, float *V, float *S);
    void (*weights)(const wplan *p, const float *w, int kblk, int c0, float *U, size_t ue,
                    float *S);
    void (*output)(const wplan *p, const float *M, int kblk, int r0, int nr, const float *bias,
                   float *out);
    int simd; /* SIMD_NONE (portable), SIMD_AVX512 or SIMD_NEON */
} wino_path;

#ifdef WINO_AVX512
static AVX512 void input_avx512(const wplan *p, const float *in, int r0, int nr, float *V,
                                float *S)
{
    input_block(p, in, r0, nr, V, S, 1);
}
static AVX512 void weights_avx512(const wplan *p, const float *w, int kblk, int c0, float *U,
                                  size_t ue, float *S)
{
    weight_chunk(p, w, kblk, c0, U, ue, S, 1);
}
static AVX512 void output_avx512(const wplan *p, const float *M, int kblk, int r0, int nr,
                                 const float *bias, float *out)
{
    output_block(p, M, kblk, r0, nr, bias, out, 1);
}
static const wino_path path_avx512 = {input_avx512, weights_avx512, output_avx512, SIMD_AVX512};
#endif
#ifdef WINO_NEON
/* The transforms in generic vectors (NEON is the aarch64 baseline), the shuffle transpose. */
static void input_neon(const wplan *p, const float *in, int r0, int nr, float *V, float *S)
{
    input_block(p, in, r0, nr, V, S, 1);
}
static void weights_neon(const wplan *p, const float *w, int kblk, int c0, float *U, size_t ue,
                         float *S)
{
    weight_chunk(p, w, kblk, c0, U, ue, S, 1);
}
static void output_neon(const wplan *p, const float *M, int kblk, int r0, int nr,
                        const float *bias, float *out)
{
    output_block(p, M, kblk, r0, nr, bias, out, 1);
}
static const wino_path path_neon = {input_neon, weights_neon, output_neon, SIMD_NEON};
#endif
static void input_portable(const wplan *p, const float *in, int r0, int nr, float *V, float *S)
{
    input_block(p, in, r0, nr, V, S, 0);
}
static void weights_portable(const wplan *p, const float *w, int kblk, int c0, float *U,
                             size_t ue, float *S)
{
    weight_chunk(p, w, kblk, c0, U, ue, S, 0);
}
static void output_portable(const wplan *p, const float *M, int kblk, int r0, int nr,
                            const float *bias, float *out)
{
    output_block(p, M, kblk, r0, nr, bias, out, 0);
}

static const wino_path path_portable = {input_portable, weights_portable, output_portable,
                                        SIMD_NONE};

/* ---- threads ----------------------------------------------------------------------------- */

typedef struct {
    const wplan *p;
    const wino_path *path;
    const float *in, *w, *bias;
    float *out, *ws;
} wino_job;

/* One k-block in fused mode: weights transformed cb input channels at a time into Uf
 * [e][cb][kb], each block multiplied in while it is in cache, then the output transform. */
static void fused_kblock(const wino_job *j, int kblk, const float *V, float *M, float *Uf,
                         float *S)
{
    const wplan *p = j->p;
    size_t ue = p->ufe;
    for (int c0 = 0; c0 < p->C; c0 += p->cb) {
        int cn = imin(p->cb, p->C - c0);
        for (int c = c0; c < c0 + cn; c += LANES)
            j->path->weights(p, j->w, kblk, c, Uf + (size_t)(c - c0) * p->kb, ue, S);
        products(p, Uf, ue, V, c0, cn, M, p->tiles_blk, c0 > 0, j->path->simd);
    }
    j->path->output(p, M, kblk, 0, p->rows, j->bias, j->out);
}

/* Fused: one phase. Otherwise phase 0 transforms the weights, phase 1 takes the items. */
static void wino_task(void *ctx, int phase, int t, int T)
{
    const wino_job *j = ctx;
    const wplan *p = j->p;
    float *V = j->ws + p->shared + (size_t)t * p->per_thread;
    float *M = V + p->v_floats, *Uf = M + p->m_floats, *S = Uf + p->uf_floats;
    size_t b, e;
    if (p->fused) {
        kern_split((size_t)p->nkb, t, T, &b, &e);
        if (b == e)
            return;
        j->path->input(p, j->in, 0, p->rows, V, S);
        for (int kblk = (int)b; kblk < (int)e; kblk++)
            fused_kblock(j, kblk, V, M, Uf, S);
        return;
    }
    if (phase == 0) {
        /* all weights, split over (k-block, 16 input channels) */
        int cchunks = (p->C + LANES - 1) / LANES;
        kern_split((size_t)p->nkb * (size_t)cchunks, t, T, &b, &e);
        for (size_t i = b; i < e; i++) {
            int kblk = (int)(i / (size_t)cchunks), c0 = LANES * (int)(i % (size_t)cchunks);
            float *U = j->ws + (size_t)kblk * p->u_floats + (size_t)c0 * p->kb;
            j->path->weights(p, j->w, kblk, c0, U, p->ue, S);
        }
        return;
    }
    /* then the (tile row, k-block) items, a contiguous range per thread: whole rows in
     * blocks of up to rows_blk, a row split between two threads with part of its k-blocks
     * (7 rows of 2 k-blocks on 2 threads: 3.5 rows each, not 4 and 3) */
    kern_split((size_t)p->rows * (size_t)p->nkb, t, T, &b, &e);
    for (size_t item = b; item < e;) {
        int r = (int)(item / (size_t)p->nkb), k0 = (int)(item % (size_t)p->nkb);
        int whole = k0 == 0 ? (int)((e - item) / (size_t)p->nkb) : 0;
        int nr = whole ? imin(p->rows_blk, whole) : 1;
        int k1 = whole ? p->nkb : (int)imin(p->nkb, k0 + (int)(e - item));
        j->path->input(p, j->in, r, nr, V, S);
        for (int kblk = k0; kblk < k1; kblk++) {
            products(p, j->ws + (size_t)kblk * p->u_floats, p->ue, V, 0, p->C,
                     M, nr * p->TW, 0, j->path->simd);
            j->path->output(p, M, kblk, r, nr, j->bias, j->out);
        }
        item += (size_t)nr * (size_t)(k1 - k0);
    }
}

/* ---- entry points --------------------------------------------------------------------- */

size_t kern_winograd_workspace(int N, int C, int H, int W, int K, int pad_h, int pad_w,
                               int threads)
{
    /* The largest need of any thread count up to `threads`: the kernel runs on
     * kern_threads() threads, which may be fewer than the caller planned for. */
    size_t most = 0;
    for (int T = 1; T <= imax(1, threads); T++) {
        wplan p = make_plan(N, C, H, W, K, pad_h, pad_w, T);
        size_t n = p.TH ? plan_floats(&p, T) : 0;
        most = n > most ? n : most;
    }
    return most;
}

void kern_winograd_conv3x3(int N, int C, int H, int W, int K, int pad_h, int pad_w,
                           const float *in, const float *w, const float *bias, float *out,
                           float *ws)
{
    int T = kern_threads_now(); /* the results do not depend on T */
    wplan p = make_plan(N, C, H, W, K, pad_h, pad_w, T);
    if (!p.TH)
        return;
    const wino_path *path = &path_portable;
#ifdef WINO_AVX512
    if (kern_isa_active() == KERN_ISA_AVX512)
        path = &path_avx512;
#endif
#ifdef WINO_NEON
    if (kern_isa_active() == KERN_ISA_NEON)
        path = &path_neon;
#endif
    wino_job j = {&p, path, in, w, bias, out, ws};
    /* each thread needs at least one k-block (fused) or one (tile row, k-block) (blocked) */
    int useful = p.fused ? p.nkb : p.rows * p.nkb;
    kern_run_phases(imin(T, useful), p.fused ? 1 : 2, wino_task, &j);
}
