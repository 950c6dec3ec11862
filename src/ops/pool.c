/* Pooling operators: max, average, L2-norm and global pooling, and max unpooling.
 *
 * x [N, C, H, W] (or [N, C, L], seen as H = 1) is a stack of N*C maps; each output
 * y[oy, ox] reduces the window of rows oy*sh - ph .. + kh and columns ox*sw - pw .. + kw,
 * clipped to the map (padding never wins a max and adds nothing to a sum):
 *   max  y = x[a], a = argmax over the window      dx[a] += dy
 *   avg  y = sum / d                               dx[i] += dy / d for i in the window
 *        d = real elements, or with count_include_pad the window clipped to the padded map
 *   L2   y = sqrt(sum x^2)                         dx[i] += dy x[i] / y  (0 where y = 0)
 *   global avg / max: one window covering the whole map.
 * Output size per axis: floor((in + 2p - k) / s) + 1; ceil mode rounds up, then drops a
 * last window that would start at or past in + p (entirely in the padding).
 * Max pooling saves each output's argmax (an index into its map, as a float: exact below
 * 2^24) in scratch; max unpooling reads them back to scatter its input there:
 *   max_unpool  y[a(o)] += x[o]                    dx[o] += dy[a(o)]
 *
 * Maps are split across the thread pool (each map belongs to one thread). Max and average
 * windows that lie inside the map take a fast path computing exactly the same values;
 * the general per-window path serves the border windows, L2 pooling, and everything else.
 *
 * attr.pool (src/graph/attrs.h): the configuration, its stride resolved (0: the kernel). */
#include "ops.h"
#include "loops.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <string.h>

#define MAX_MAP_ELEMENTS (1 << 24) /* argmax indices are stored exactly as floats */

/* One pooling problem: `planes` maps of H x W reduced to OH x OW. */
typedef struct pool_geom {
    size_t planes;
    int H, W, OH, OW;
    int kh, kw, sh, sw, ph, pw;
    int ceil_mode;
} pool_geom;

static int is_global(int type) { return type == NERVE_POOL_GLOBAL_AVG || type == NERVE_POOL_GLOBAL_MAX; }
static int takes_argmax(int type) { return type == NERVE_POOL_MAX || type == NERVE_POOL_GLOBAL_MAX; }

/* In 64 bits: pool_infer checks the padded map against the limits before it stores this. */
static int64_t pooled_extent(int in, int k, int s, int p, int ceil_mode)
{
    int64_t span = (int64_t)in + 2 * (int64_t)p - k;
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= (int64_t)in + p) /* the last window starts in the padding */
        out--;
    return out;
}

/* The geometry of pooling x with attributes a (the output size is left to the caller). */
static pool_geom pool_geometry(const node *x, const node_attr *a)
{
    pool_geom p = {0};
    int one_d = x->ndim == 3;
    p.planes = (size_t)x->dims[0] * (size_t)x->dims[1];
    p.H = one_d ? 1 : x->dims[2];
    p.W = one_d ? x->dims[2] : x->dims[3];
    if (is_global(a->pool.type)) {
        p.kh = p.H, p.kw = p.W, p.sh = p.sw = 1;
    } else if (one_d) { /* the configuration's first entries apply to L */
        p.kh = p.sh = 1;
        p.kw = a->pool.kernel[0], p.sw = a->pool.stride[0], p.pw = a->pool.pad[0];
        p.ceil_mode = a->pool.ceil_mode;
    } else {
        p.kh = a->pool.kernel[0], p.kw = a->pool.kernel[1];
        p.sh = a->pool.stride[0], p.sw = a->pool.stride[1];
        p.ph = a->pool.pad[0], p.pw = a->pool.pad[1];
        p.ceil_mode = a->pool.ceil_mode;
    }
    return p;
}

static void complete_output(pool_geom *p)
{
    p->OH = (int)pooled_extent(p->H, p->kh, p->sh, p->ph, p->ceil_mode);
    p->OW = (int)pooled_extent(p->W, p->kw, p->sw, p->pw, p->ceil_mode);
}

/* Window of output (oy, ox): rows y0..y1 and columns x0..x1 (exclusive ends) clipped to
 * the map, and `padded`, its size clipped to the padded map (the count_include_pad divisor). */
typedef struct window {
    int y0, y1, x0, x1;
    int padded;
} window;

static int min_int(int a, int b) { return a < b ? a : b; }
static int max_int(int a, int b) { return a > b ? a : b; }

static window pool_window(const pool_geom *p, int oy, int ox)
{
    window w;
    int ys = oy * p->sh - p->ph, xs = ox * p->sw - p->pw;
    int ye = min_int(ys + p->kh, p->H + p->ph), xe = min_int(xs + p->kw, p->W + p->pw);
    w.padded = (ye - ys) * (xe - xs);
    w.y0 = max_int(ys, 0), w.x0 = max_int(xs, 0);
    w.y1 = min_int(ye, p->H), w.x1 = min_int(xe, p->W);
    return w;
}

/* The first maximum of the window in row-major order; a NaN wins and stays, so that a NaN
 * input shows in the output. */
static int window_argmax(const float *map, int W, const window *w)
{
    int best = w->y0 * W + w->x0;
    for (int y = w->y0; y < w->y1; y++)
        for (int x = w->x0; x < w->x1; x++) {
            float v = map[y * W + x], b = map[best];
            if (v > b || (v != v && b == b))
                best = y * W + x;
        }
    return best;
}

/* Sum of the window's elements, or of their squares. */
static double window_sum(const float *map, int W, const window *w, int squares)
{
    double s = 0;
    for (int y = w->y0; y < w->y1; y++)
        for (int x = w->x0; x < w->x1; x++) {
            double v = map[y * W + x];
            s += squares ? v * v : v;
        }
    return s;
}

/* dmap[i] += scale * (map[i] if map else 1) over the window. */
static void window_spread(float *dmap, const float *map, int W, const window *w, float scale)
{
    for (int y = w->y0; y < w->y1; y++)
        for (int x = w->x0; x < w->x1; x++)
            dmap[y * W + x] += scale * (map ? map[y * W + x] : 1.0f);
}

static int average_divisor(const node *n, const window *w)
{
    if (n->attr.pool.type == NERVE_POOL_AVG && n->attr.pool.count_include_pad)
        return w->padded;
    return (w->y1 - w->y0) * (w->x1 - w->x0);
}

/* ---- pool ------------------------------------------------------------------------------ */

static int pool_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0);
    if (x->ndim != 3 && x->ndim != 4)
        return op_shape_error(n, "input must be [N, C, H, W] or [N, C, L], got rank %d", x->ndim);
    pool_geom p = pool_geometry(x, &n->attr);
    int64_t padded_h = p.H + 2 * (int64_t)p.ph, padded_w = p.W + 2 * (int64_t)p.pw;
    if (padded_h < p.kh || padded_w < p.kw)
        return op_shape_error(n, "a %dx%d window does not fit a %dx%d map padded by (%d, %d)",
                              p.kh, p.kw, p.H, p.W, p.ph, p.pw);
    /* the window arithmetic (pool_window) runs in ints within the padded map */
    int st = node_check_size(n, "the padded map height", padded_h);
    if (st || (st = node_check_size(n, "the padded map width", padded_w)))
        return st;
    if (takes_argmax(n->attr.pool.type) && (size_t)p.H * (size_t)p.W > MAX_MAP_ELEMENTS)
        return op_shape_error(n, "max pooling handles maps of at most %d elements, got %dx%d",
                              MAX_MAP_ELEMENTS, p.H, p.W);
    complete_output(&p);
    node_copy_shape(n, x);
    n->dims[n->ndim - 1] = p.OW;
    if (n->ndim == 4)
        n->dims[2] = p.OH;
    return NERVE_OK;
}

static size_t pool_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return takes_argmax(n->attr.pool.type) ? node_numel(n) : 0;
}

/* The node's geometry as of its last infer. */
static pool_geom node_geometry(nerve_graph *g, const node *n)
{
    pool_geom p = pool_geometry(node_input(g, n, 0), &n->attr);
    complete_output(&p);
    return p;
}

static float pool_window_value(const node *n, const float *map, const pool_geom *p,
                               const window *w, float *argmax)
{
    switch (n->attr.pool.type) {
    case NERVE_POOL_MAX:
    case NERVE_POOL_GLOBAL_MAX: {
        int a = window_argmax(map, p->W, w);
        *argmax = (float)a;
        return map[a];
    }
    case NERVE_POOL_L2:
        return (float)sqrt(window_sum(map, p->W, w, 1));
    default:
        return (float)(window_sum(map, p->W, w, 0) / average_divisor(n, w));
    }
}

static void pool_window_backward(const node *n, float *dmap, const float *map, const pool_geom *p,
                                 const window *w, size_t o)
{
    float dy = n->grad[o];
    switch (n->attr.pool.type) {
    case NERVE_POOL_MAX:
    case NERVE_POOL_GLOBAL_MAX:
        dmap[(size_t)n->scratch[o]] += dy; /* overlapping windows add up here */
        break;
    case NERVE_POOL_L2: {
        float y = n->value[o];
        if (y > 0.0f)
            window_spread(dmap, map, p->W, w, dy / y);
        break;
    }
    default:
        window_spread(dmap, NULL, p->W, w, dy / (float)average_divisor(n, w));
    }
}

/* ---- interior windows ------------------------------------------------------------------
 * A window that lies entirely inside the map needs no clipping, and its divisor is kh * kw
 * whatever count_include_pad says. These loops compute exactly what the general path does
 * for such windows (the same first maximum, the same double sums in the same order); the
 * common shapes (2x2 and 3x3 windows, stride 2) get instances with constant extents. */

/* Outputs [lo, hi) along one axis whose windows lie inside [0, in). */
static void interior_span(int in, int out, int k, int s, int p, int *lo, int *hi)
{
    *lo = min_int((p + s - 1) / s, out);
    *hi = in >= k - p ? min_int((in - k + p) / s + 1, out) : 0;
    if (*hi < *lo)
        *hi = *lo;
}

/* An integer that orders floats as `>` does, with -0 == +0 and every NaN above all numbers
 * and equal to the other NaNs: "the first maximum; a NaN wins and stays" (window_argmax)
 * becomes one integer comparison, which the row loops below can vectorise. */
static inline int32_t max_key(float v)
{
    int32_t b = ops_float_bits(v), mag = b & 0x7fffffff;
    int32_t key = b < 0 ? -mag : mag;
    return mag > 0x7f800000 ? INT32_MAX : key;
}

/* Max over the windows of outputs ox in [x0, x1) of one row whose windows start at `top`:
 * the value and its index in the map. */
OPS_INLINE void max_row_interior(const float *map, int W, int top, int x0, int x1, int kh,
                                 int kw, int sw, int pw, float *y, float *argmax)
{
    for (int ox = x0; ox < x1; ox++) {
        int start = top * W + ox * sw - pw, best = start;
        float b = map[start];
        int32_t best_key = max_key(b);
        for (int r = 0; r < kh; r++)
            for (int c = 0; c < kw; c++) {
                int at = start + r * W + c;
                float v = map[at];
                int32_t key = max_key(v);
                int wins = key > best_key;
                best = wins ? at : best;
                b = wins ? v : b;
                best_key = wins ? key : best_key;
            }
        y[ox] = b;
        argmax[ox] = (float)best;
    }
}

/* The average over the same windows. */
OPS_INLINE void avg_row_interior(const float *map, int W, int top, int x0, int x1, int kh,
                                 int kw, int sw, int pw, float *y)
{
    for (int ox = x0; ox < x1; ox++) {
        const float *win = map + top * W + ox * sw - pw;
        double sum = 0;
        for (int r = 0; r < kh; r++)
            for (int c = 0; c < kw; c++)
                sum += win[r * W + c];
        y[ox] = (float)(sum / (kh * kw));
    }
}

/* dmap += dy[ox] / (kh kw) over the same windows, in the general path's order. */
OPS_INLINE void avg_row_interior_backward(float *dmap, int W, int top, int x0, int x1, int kh,
                                          int kw, int sw, int pw, const float *dy)
{
    for (int ox = x0; ox < x1; ox++) {
        float *win = dmap + top * W + ox * sw - pw, scale = dy[ox] / (float)(kh * kw);
        for (int r = 0; r < kh; r++)
            for (int c = 0; c < kw; c++)
                win[r * W + c] += scale;
    }
}

enum { ROW_MAX, ROW_AVG, ROW_AVG_BACKWARD };

/* Output rows [oy0, oy1), columns [x0, x1) of one map, all interior, with constant extents
 * for the common shapes. `in`, `dmap`: the input map or its gradient; `out`, `argmax`,
 * `dy`: the output map's values, argmax indices or gradient (what `kind` uses). */
#define INTERIOR_ROWS(kh, kw, sw, pw)                                                        \
    for (int oy = oy0; oy < oy1; oy++) {                                                     \
        int top = oy * p->sh - p->ph;                                                        \
        size_t row = (size_t)oy * p->OW;                                                     \
        if (kind == ROW_MAX)                                                                 \
            max_row_interior(in, W, top, x0, x1, kh, kw, sw, pw, out + row, argmax + row);   \
        else if (kind == ROW_AVG)                                                            \
            avg_row_interior(in, W, top, x0, x1, kh, kw, sw, pw, out + row);                 \
        else                                                                                 \
            avg_row_interior_backward(dmap, W, top, x0, x1, kh, kw, sw, pw, dy + row);       \
    }

KERN_ISA_CLONES(interior_rows,
                (int kind, const pool_geom *p, int oy0, int oy1, int x0, int x1, const float *in,
                 float *out, float *argmax, float *dmap, const float *dy),
                (kind, p, oy0, oy1, x0, x1, in, out, argmax, dmap, dy))
{
    int W = p->W;
    if (p->kh == 2 && p->kw == 2 && p->sw == 2 && p->pw == 0)
        INTERIOR_ROWS(2, 2, 2, 0)
    else if (p->kh == 3 && p->kw == 3 && p->sw == 2 && p->pw == 0)
        INTERIOR_ROWS(3, 3, 2, 0)
    else if (p->kh == 3 && p->kw == 3 && p->sw == 2 && p->pw == 1)
        INTERIOR_ROWS(3, 3, 2, 1)
    else
        INTERIOR_ROWS(p->kh, p->kw, p->sw, p->pw)
}
#undef INTERIOR_ROWS

/* ---- 2x2 windows, stride 2, on AVX-512 ---------------------------------------------------
 * LeNet-sized maps give output rows of 14 or 5: shorter than a vector, so the loops above
 * stay scalar. Here one output row takes two input rows at once: up to 32 floats of each
 * (masked), split into even and odd columns by a permute, so that lane i holds window i.
 * The same first maximum as max_row_interior, as a tournament (the first maximum of the
 * first maximums of each row's pair, in row-major order: "first" is associative), and the
 * same double sums in the same order as avg_row_interior. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define POOL_AVX512 1
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))

AVX512_INLINE __mmask16 lanes_below(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* max_key on 16 lanes. */
AVX512_INLINE __m512i max_keys(__m512 v)
{
    __m512i b = _mm512_castps_si512(v), zero = _mm512_setzero_si512();
    __m512i mag = _mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff));
    __m512i key = _mm512_mask_sub_epi32(mag, _mm512_cmplt_epi32_mask(b, zero), zero, mag);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_mov_epi32(key, nan, _mm512_set1_epi32(INT32_MAX));
}

/* 16 candidates: values, their keys and map indices. */
typedef struct max_lanes {
    __m512 v;
    __m512i key, at;
} max_lanes;

AVX512_INLINE max_lanes max_candidates(__m512 v, __m512i at)
{
    max_lanes c = {v, max_keys(v), at};
    return c;
}

/* The first maximum of a (earlier in row-major order) and b: b only if strictly above. */
AVX512_INLINE max_lanes first_max(max_lanes a, max_lanes b)
{
    __mmask16 wins = _mm512_cmpgt_epi32_mask(b.key, a.key);
    a.v = _mm512_mask_mov_ps(a.v, wins, b.v);
    a.key = _mm512_mask_mov_epi32(a.key, wins, b.key);
    a.at = _mm512_mask_mov_epi32(a.at, wins, b.at);
    return a;
}

/* Columns 2i and 2i + 1 of the 2n floats at row (n <= 16), in lanes i of *even, *odd. */
AVX512_INLINE void load_pairs(const float *row, int n, __m512 *even, __m512 *odd)
{
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    __m512 lo = _mm512_maskz_loadu_ps(lanes_below(2 * n), row);
    __m512 hi = _mm512_maskz_loadu_ps(lanes_below(2 * n - 16), row + 16);
    *even = _mm512_permutex2var_ps(lo, evens, hi);
    *odd = _mm512_permutex2var_ps(lo, odds, hi);
}

/* Outputs [ox, ox + n) of one row whose windows start at map index `start` (n <= 16). */
AVX512_INLINE void max_2x2_chunk(const float *map, int W, int start, int n, float *y,
                                 float *argmax)
{
    const __m512i twice = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    __m512i at = _mm512_add_epi32(_mm512_set1_epi32(start), twice), one = _mm512_set1_epi32(1);
    __m512i below = _mm512_add_epi32(at, _mm512_set1_epi32(W));
    __m512 e0, o0, e1, o1;
    load_pairs(map + start, n, &e0, &o0);
    load_pairs(map + start + W, n, &e1, &o1);
    max_lanes top = first_max(max_candidates(e0, at), max_candidates(o0, _mm512_add_epi32(at, one)));
    max_lanes bottom = first_max(max_candidates(e1, below),
                                 max_candidates(o1, _mm512_add_epi32(below, one)));
    max_lanes best = first_max(top, bottom);
    __mmask16 out = lanes_below(n);
    _mm512_mask_storeu_ps(y, out, best.v);
    _mm512_mask_storeu_ps(argmax, out, _mm512_cvtepi32_ps(best.at)); /* exact below 2^24 */
}

/* Lanes 0..7 and 8..15 of v as doubles. */
AVX512_INLINE __m512d low_doubles(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
AVX512_INLINE __m512d high_doubles(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* ((((0 + a) + b) + c) + d) / 4 in doubles, rounded to float: avg_row_interior's sum. */
AVX512_INLINE __m256 mean4(__m512d a, __m512d b, __m512d c, __m512d d)
{
    __m512d sum = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(_mm512_add_pd(
                                    _mm512_setzero_pd(), a), b), c), d);
    return _mm512_cvtpd_ps(_mm512_div_pd(sum, _mm512_set1_pd(4.0)));
}

AVX512_INLINE void avg_2x2_chunk(const float *map, int W, int start, int n, float *y)
{
    __m512 e0, o0, e1, o1;
    load_pairs(map + start, n, &e0, &o0);
    load_pairs(map + start + W, n, &e1, &o1);
    __m256 lo = mean4(low_doubles(e0), low_doubles(o0), low_doubles(e1), low_doubles(o1));
    __m256 hi = mean4(high_doubles(e0), high_doubles(o0), high_doubles(e1), high_doubles(o1));
    __m512 mean = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                                      _mm256_castps_pd(hi), 1));
    _mm512_mask_storeu_ps(y, lanes_below(n), mean);
}

/* Outputs [ox, ox + n) (n <= 16) of one row of 3x3 max windows with column stride 2 whose
 * first window starts at map index `start` (ResNet's stem pooling). Per window row, the
 * 2n + 1 floats from its start give, in lane i, the columns 2i, 2i + 1 and 2i + 2 as three
 * permutes of two (masked) loads and one more float; the nine candidates are folded in
 * row-major order, as max_row_interior does. */
AVX512_INLINE void max_3x3s2_chunk(const float *map, int W, int start, int n, float *y,
                                   float *argmax)
{
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    const __m512i next = _mm512_add_epi32(evens, _mm512_set1_epi32(2)); /* lane 15: below */
    max_lanes best = {0};
    for (int r = 0; r < 3; r++) {
        const float *row = map + start + (size_t)r * W;
        __m512 lo = _mm512_maskz_loadu_ps(lanes_below(2 * n + 1), row);
        __m512 hi = _mm512_maskz_loadu_ps(lanes_below(2 * n + 1 - 16), row + 16);
        __m512 last = _mm512_maskz_loadu_ps(lanes_below(2 * n + 1 - 32), row + 32);
        __m512 e = _mm512_permutex2var_ps(lo, evens, hi), o = _mm512_permutex2var_ps(lo, odds, hi);
        __m512 e2 = _mm512_mask_mov_ps(_mm512_permutex2var_ps(lo, next, hi), (__mmask16)0x8000,
                                       _mm512_broadcastss_ps(_mm512_castps512_ps128(last)));
        __m512i at = _mm512_add_epi32(_mm512_set1_epi32(start + r * W), evens);
        max_lanes c0 = max_candidates(e, at);
        best = r == 0 ? c0 : first_max(best, c0);
        best = first_max(best, max_candidates(o, _mm512_add_epi32(at, _mm512_set1_epi32(1))));
        best = first_max(best, max_candidates(e2, _mm512_add_epi32(at, _mm512_set1_epi32(2))));
    }
    __mmask16 out = lanes_below(n);
    _mm512_mask_storeu_ps(y, out, best.v);
    _mm512_mask_storeu_ps(argmax, out, _mm512_cvtepi32_ps(best.at)); /* exact below 2^24 */
}

/* Interior max windows of 3x3 with column stride 2, forward. */
__attribute__((target("avx512f"))) static void interior_rows_3x3s2_avx512(
    const pool_geom *p, int oy0, int oy1, int x0, int x1, const float *in, float *out,
    float *argmax)
{
    for (int oy = oy0; oy < oy1; oy++) {
        int top = oy * p->sh - p->ph;
        size_t row = (size_t)oy * p->OW;
        for (int ox = x0; ox < x1; ox += 16)
            max_3x3s2_chunk(in, p->W, top * p->W + 2 * ox - p->pw, min_int(16, x1 - ox),
                            out + row + ox, argmax + row + ox);
    }
}

/* interior_rows for 2x2 windows with column stride 2 and no column padding, forward. */
/* ---- 2x2 max windows on narrow maps ------------------------------------------------------
 * Maps of at most 8 outputs a row (LeNet's 10x10 -> 5x5) would leave most lanes of a vector
 * idle, one output row at a time. When the input rows of consecutive output rows follow
 * each other (row stride 2, W = 2 OW), k = 16 / OW output rows take one vector: their
 * input, at most 64 floats, is loaded once, and each lane's window element is picked by a
 * two-level permute from index tables made once per call. */
typedef struct narrow_tables {
    int k;          /* output rows per vector */
    __m512i pick[4]; /* forward: per window element, the float of the input block a lane reads */
    __m512i lane[4]; /* backward: per 16 input floats of the block, the output lane of each */
} narrow_tables;

AVX512_INLINE int narrow_ok(const pool_geom *p)
{
    return p->OW <= 8 && p->W == 2 * p->OW && p->sh == 2;
}

/* The tables for OW outputs a row, built once per thread and row length (a pool calls
 * this once per map: building them each time cost more than the pooling). */
static _Thread_local narrow_tables narrow_cache;
static _Thread_local int narrow_cache_ow;

AVX512_INLINE const narrow_tables *narrow_tables_for(int OW)
{
    if (narrow_cache_ow == OW)
        return &narrow_cache;
    narrow_tables t;
    int W = 2 * OW, pick[4][16], lane[4][16];
    t.k = 16 / OW;
    for (int i = 0; i < 16; i++) {
        int at = (i / OW) * 2 * W + 2 * (i % OW); /* top left of lane i's window */
        pick[0][i] = at, pick[1][i] = at + 1, pick[2][i] = at + W, pick[3][i] = at + W + 1;
    }
    for (int e = 0; e < 64; e++)
        lane[e / 16][e % 16] = (e / W / 2) * OW + (e % W) / 2;
    for (int c = 0; c < 4; c++) {
        t.pick[c] = _mm512_loadu_si512(pick[c]);
        t.lane[c] = _mm512_loadu_si512(lane[c]);
    }
    narrow_cache = t;
    narrow_cache_ow = OW;
    return &narrow_cache;
}

/* The floats at indices idx (< 64) of the block held in b[0..3]. */
AVX512_INLINE __m512 pick64(const __m512 *b, __m512i idx)
{
    __m512 lo = _mm512_permutex2var_ps(b[0], idx, b[1]), hi = _mm512_permutex2var_ps(b[2], idx, b[3]);
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), lo, hi);
}

/* Output rows [oy, oy + rows) of a narrow map, rows <= t->k: the same candidates in the
 * same order as max_2x2_chunk. */
AVX512_INLINE void max_2x2_narrow(const pool_geom *p, const narrow_tables *t, const float *in,
                                  int oy, int rows, float *out, float *argmax)
{
    int start = (2 * oy - p->ph) * p->W, len = 2 * rows * p->W, n = rows * p->OW;
    __m512 b[4];
    for (int q = 0; q < 4; q++)
        b[q] = _mm512_maskz_loadu_ps(lanes_below(len - 16 * q), in + start + 16 * q);
    __m512i base = _mm512_set1_epi32(start);
    max_lanes c[4];
    for (int q = 0; q < 4; q++)
        c[q] = max_candidates(pick64(b, t->pick[q]), _mm512_add_epi32(base, t->pick[q]));
    max_lanes best = first_max(first_max(c[0], c[1]), first_max(c[2], c[3]));
    __mmask16 m = lanes_below(n);
    size_t o = (size_t)oy * p->OW;
    _mm512_mask_storeu_ps(out + o, m, best.v);
    _mm512_mask_storeu_ps(argmax + o, m, _mm512_cvtepi32_ps(best.at)); /* exact below 2^24 */
}

__attribute__((target("avx512f"))) static void interior_rows_2x2_avx512(
    int kind, const pool_geom *p, int oy0, int oy1, int x0, int x1, const float *in,
    float *out, float *argmax)
{
    if (kind == ROW_MAX && x0 == 0 && x1 == p->OW && narrow_ok(p)) {
        const narrow_tables *t = narrow_tables_for(p->OW);
        for (int oy = oy0; oy < oy1; oy += t->k)
            max_2x2_narrow(p, t, in, oy, min_int(t->k, oy1 - oy), out, argmax);
        return;
    }
    for (int oy = oy0; oy < oy1; oy++) {
        int top = oy * p->sh - p->ph;
        size_t row = (size_t)oy * p->OW;
        for (int ox = x0; ox < x1; ox += 16) {
            int n = min_int(16, x1 - ox), start = top * p->W + 2 * ox;
            if (kind == ROW_MAX)
                max_2x2_chunk(in, p->W, start, n, out + row + ox, argmax + row + ox);
            else
                avg_2x2_chunk(in, p->W, start, n, out + row + ox);
        }
    }
}

/* The input gradient of 2x2 max windows that tile the map (stride 2, no padding, even
 * sides), written whole: each element gets dy of its window where it was the argmax and 0
 * elsewhere, so a fresh gradient buffer needs no zeroing and no scatter. Per 16 outputs,
 * each of the two input rows is 32 elements: the outputs' dy and argmax with every lane
 * doubled, compared with the elements' own indices. */
__attribute__((target("avx512f"))) static void max_2x2_tiles_backward_avx512(
    const pool_geom *p, const float *dy, const float *argmax, float *dmap)
{
    const __m512i dup_lo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i dup_hi = _mm512_add_epi32(dup_lo, _mm512_set1_epi32(8));
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    if (narrow_ok(p)) { /* k output rows at a time: their input block is 4 vectors */
        const narrow_tables *t = narrow_tables_for(p->OW);
        for (int oy = 0; oy < p->OH; oy += t->k) {
            int rows = min_int(t->k, p->OH - oy), len = 4 * rows * p->OW, start = 2 * oy * p->W;
            size_t o = (size_t)oy * p->OW;
            __mmask16 in = lanes_below(rows * p->OW);
            __m512 d = _mm512_maskz_loadu_ps(in, dy + o);
            __m512i a = _mm512_cvtps_epi32(_mm512_maskz_loadu_ps(in, argmax + o));
            for (int q = 0; q < 4 && 16 * q < len; q++) {
                __m512i at = _mm512_add_epi32(_mm512_set1_epi32(start + 16 * q), iota);
                __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(t->lane[q], a), at);
                _mm512_mask_storeu_ps(dmap + start + 16 * q, lanes_below(len - 16 * q),
                                      _mm512_maskz_mov_ps(hit, _mm512_permutexvar_ps(t->lane[q], d)));
            }
        }
        return;
    }
    for (int oy = 0; oy < p->OH; oy++)
        for (int ox = 0; ox < p->OW; ox += 16) {
            int n = min_int(16, p->OW - ox);
            size_t o = (size_t)oy * p->OW + (size_t)ox;
            __mmask16 in = lanes_below(n);
            __m512 d = _mm512_maskz_loadu_ps(in, dy + o);
            __m512i a = _mm512_cvtps_epi32(_mm512_maskz_loadu_ps(in, argmax + o));
            __m512 d_lo = _mm512_permutexvar_ps(dup_lo, d), d_hi = _mm512_permutexvar_ps(dup_hi, d);
            __m512i a_lo = _mm512_permutexvar_epi32(dup_lo, a);
            __m512i a_hi = _mm512_permutexvar_epi32(dup_hi, a);
            for (int r = 0; r < 2; r++) {
                int base = (2 * oy + r) * p->W + 2 * ox;
                __m512i at = _mm512_add_epi32(_mm512_set1_epi32(base), iota);
                __m512i at_hi = _mm512_add_epi32(at, _mm512_set1_epi32(16));
                __mmask16 hit_lo = _mm512_cmpeq_epi32_mask(a_lo, at);
                __mmask16 hit_hi = _mm512_cmpeq_epi32_mask(a_hi, at_hi);
                _mm512_mask_storeu_ps(dmap + base, lanes_below(2 * n),
                                      _mm512_maskz_mov_ps(hit_lo, d_lo));
                _mm512_mask_storeu_ps(dmap + base + 16, lanes_below(2 * n - 16),
                                      _mm512_maskz_mov_ps(hit_hi, d_hi));
            }
        }
}
#endif

/* Whether a fresh input gradient of max pooling p is written whole by
 * max_2x2_tiles_backward_avx512. */
static int takes_vector_2x2_tiles_backward(const pool_geom *p)
{
#ifdef POOL_AVX512
    return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 &&
           p->H == 2 * p->OH && p->W == 2 * p->OW && kern_isa_active() == KERN_ISA_AVX512;
#else
    (void)p;
    return 0;
#endif
}

/* Which AVX-512 route the forward interior block of p takes: VECTOR_2X2 (max and average),
 * VECTOR_3X3S2 (max only), or none. */
enum { VECTOR_NONE, VECTOR_2X2, VECTOR_3X3S2 };

static int takes_vector_route(const pool_geom *p)
{
#ifdef POOL_AVX512
    if (kern_isa_active() != KERN_ISA_AVX512)
        return VECTOR_NONE;
    if (p->kh == 2 && p->kw == 2 && p->sw == 2 && p->pw == 0)
        return VECTOR_2X2;
    if (p->kh == 3 && p->kw == 3 && p->sw == 2)
        return VECTOR_3X3S2;
#else
    (void)p;
#endif
    return VECTOR_NONE;
}

/* The forward interior block: the AVX-512 route where takes_vector_route said so,
 * interior_rows otherwise. */
static void interior_rows_forward(int vector_route, int kind, const pool_geom *p, int oy0,
                                  int oy1, int x0, int x1, const float *in, float *out,
                                  float *argmax)
{
#ifdef POOL_AVX512
    if (vector_route == VECTOR_2X2) {
        interior_rows_2x2_avx512(kind, p, oy0, oy1, x0, x1, in, out, argmax);
        return;
    }
    if (vector_route == VECTOR_3X3S2 && kind == ROW_MAX) {
        interior_rows_3x3s2_avx512(p, oy0, oy1, x0, x1, in, out, argmax);
        return;
    }
#else
    (void)vector_route;
#endif
    interior_rows(kind, p, oy0, oy1, x0, x1, in, out, argmax, NULL, NULL);
}

/* ---- planes ------------------------------------------------------------------------------ */

/* A pass over a range of maps, as a thread-pool task. */
typedef struct pool_job {
    const node *n;
    pool_geom p;
    int iy0, iy1, ix0, ix1; /* outputs whose windows are interior */
    int vector_route;       /* forward: takes_vector_route, asked once per pass; backward:
                             * the fresh gradient is written by the tiles route */
    const float *x;         /* the input */
    float *dx;              /* backward: the input's gradient */
} pool_job;

static int has_interior_path(int type) { return type != NERVE_POOL_L2; }

static pool_job pool_job_make(nerve_graph *g, const node *n)
{
    pool_job j = {n, node_geometry(g, n), 0, 0, 0, 0, 0, node_input(g, n, 0)->value,
                  node_input_grad(g, n, 0)};
    j.vector_route = takes_vector_route(&j.p);
    if (has_interior_path(n->attr.pool.type)) {
        interior_span(j.p.H, j.p.OH, j.p.kh, j.p.sh, j.p.ph, &j.iy0, &j.iy1);
        interior_span(j.p.W, j.p.OW, j.p.kw, j.p.sw, j.p.pw, &j.ix0, &j.ix1);
    }
    return j;
}

/* Outputs [x0, x1) of row oy of map m through the general path. */
static void general_row_forward(const pool_job *j, size_t m, int oy, int x0, int x1)
{
    const pool_geom *p = &j->p;
    size_t in_map = (size_t)p->H * p->W, out_map = (size_t)p->OH * p->OW;
    for (int ox = x0; ox < x1; ox++) {
        size_t o = m * out_map + (size_t)oy * p->OW + ox;
        window w = pool_window(p, oy, ox);
        float *argmax = j->n->scratch ? j->n->scratch + o : NULL; /* max types only */
        j->n->value[o] = pool_window_value(j->n, j->x + m * in_map, p, &w, argmax);
    }
}

static void general_row_backward(const pool_job *j, size_t m, int oy, int x0, int x1)
{
    const pool_geom *p = &j->p;
    size_t in_map = (size_t)p->H * p->W, out_map = (size_t)p->OH * p->OW;
    for (int ox = x0; ox < x1; ox++) {
        window w = pool_window(p, oy, ox);
        pool_window_backward(j->n, j->dx + m * in_map, j->x + m * in_map, p, &w,
                             m * out_map + (size_t)oy * p->OW + ox);
    }
}

/* Forward over maps [begin, end): the interior block in one call, then the border windows
 * (rows above and below it, columns left and right of it) through the general path. */
static void pool_forward_maps(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    const pool_geom *p = &j->p;
    size_t in_map = (size_t)p->H * p->W, out_map = (size_t)p->OH * p->OW;
    int max = takes_argmax(j->n->attr.pool.type);
    int rows = j->ix0 < j->ix1 ? j->iy1 : j->iy0; /* interior rows end (none without columns) */
    for (size_t m = begin; m < end; m++) {
        if (rows > j->iy0)
            interior_rows_forward(j->vector_route, max ? ROW_MAX : ROW_AVG, p, j->iy0, rows,
                                  j->ix0, j->ix1, j->x + m * in_map, j->n->value + m * out_map,
                                  max ? j->n->scratch + m * out_map : NULL);
        for (int oy = 0; oy < p->OH; oy++) {
            if (oy >= j->iy0 && oy < rows) {
                general_row_forward(j, m, oy, 0, j->ix0);
                general_row_forward(j, m, oy, j->ix1, p->OW);
            } else {
                general_row_forward(j, m, oy, 0, p->OW);
            }
        }
    }
}

static void pool_forward(nerve_graph *g, node *n)
{
    pool_job j = pool_job_make(g, n);
    size_t in_map = (size_t)j.p.H * j.p.W, out_map = (size_t)j.p.OH * j.p.OW;
    kern_parallel_for(j.p.planes, ops_grain(in_map + out_map), pool_forward_maps, &j);
}

/* Max pooling sends each output's gradient to its saved argmax, whatever the window. */
static void max_backward_map(float *restrict dmap, const float *restrict dy,
                               const float *restrict argmax, size_t count)
{
    for (size_t o = 0; o < count; o++)
        dmap[(size_t)argmax[o]] += dy[o]; /* overlapping windows add up here */
}

static void pool_backward_maps(void *ctx, size_t begin, size_t end)
{
    const pool_job *j = ctx;
    const pool_geom *p = &j->p;
    size_t in_map = (size_t)p->H * p->W, out_map = (size_t)p->OH * p->OW;
    for (size_t m = begin; m < end; m++) {
        float *dmap = j->dx + m * in_map;
#ifdef POOL_AVX512
        if (j->vector_route) {
            max_2x2_tiles_backward_avx512(p, j->n->grad + m * out_map,
                                          j->n->scratch + m * out_map, dmap);
            continue;
        }
#endif
        if (takes_argmax(j->n->attr.pool.type)) {
            max_backward_map(dmap, j->n->grad + m * out_map, j->n->scratch + m * out_map,
                             out_map);
            continue;
        }
        /* Overlapping windows add into shared elements: keep the general path's row-major
         * order of windows, so the sums come out the same. */
        for (int oy = 0; oy < p->OH; oy++) {
            if (oy < j->iy0 || oy >= j->iy1 || j->ix0 == j->ix1) {
                general_row_backward(j, m, oy, 0, p->OW);
                continue;
            }
            general_row_backward(j, m, oy, 0, j->ix0);
            interior_rows(ROW_AVG_BACKWARD, p, oy, oy + 1, j->ix0, j->ix1, NULL, NULL, NULL,
                          dmap, j->n->grad + m * out_map);
            general_row_backward(j, m, oy, j->ix1, p->OW);
        }
    }
}

static void pool_backward(nerve_graph *g, node *n)
{
    pool_job j = pool_job_make(g, n);
    if (!j.dx)
        return;
    int fresh = node_input_grad_fresh(g, n, 0);
    j.vector_route = fresh && n->attr.pool.type == NERVE_POOL_MAX && takes_vector_2x2_tiles_backward(&j.p);
    if (fresh && !j.vector_route) /* the other routes add into the gradient */
        node_zero_input_grad(g, n, 0);
    size_t in_map = (size_t)j.p.H * j.p.W, out_map = (size_t)j.p.OH * j.p.OW;
    kern_parallel_for(j.p.planes, ops_grain(in_map + out_map), pool_backward_maps, &j);
}

static const op_def op_pool = {"pool", pool_infer, pool_scratch, pool_forward, pool_backward,
                               OP_GRAD_OVERWRITE};

int op_pool_plain_max(const nerve_graph *g, const node *n, int g6[6])
{
    if (n->op != &op_pool || n->attr.pool.type != NERVE_POOL_MAX || n->ndim != 4)
        return 0;
    const node *x = &g->nodes[n->in[0]];
    if (x->ndim != 4)
        return 0;
    pool_geom p = pool_geometry(x, &n->attr);
    complete_output(&p);
    if (p.ph || p.pw || (p.OH - 1) * p.sh + p.kh > p.H || (p.OW - 1) * p.sw + p.kw > p.W)
        return 0;
    int v[6] = {p.kh, p.kw, p.sh, p.sw, p.OH, p.OW};
    memcpy(g6, v, sizeof v);
    return 1;
}

nerve_pool_config nerve_pool_config_make(nerve_pool_type type, int k, int s, int p)
{
    nerve_pool_config c = {0};
    c.type = type;
    c.kernel[0] = c.kernel[1] = k;
    c.stride[0] = c.stride[1] = s;
    c.pad[0] = c.pad[1] = p;
    return c;
}

static int check_pool_config(const nerve_pool_config *c)
{
    if ((int)c->type < NERVE_POOL_MAX || (int)c->type > NERVE_POOL_GLOBAL_MAX)
        return nerve_set_error(NERVE_ERR_ARG, "pool: unknown type %d", (int)c->type);
    if (is_global(c->type))
        return NERVE_OK;
    for (int a = 0; a < 2; a++) {
        if (c->kernel[a] < 1 || c->stride[a] < 0 || c->pad[a] < 0)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "pool: kernel %d, stride %d, padding %d on axis %d (need "
                                   "kernel >= 1, stride >= 0, padding >= 0)",
                                   c->kernel[a], c->stride[a], c->pad[a], a);
        if (c->pad[a] > c->kernel[a] / 2) /* keeps every window on some real element */
            return nerve_set_error(NERVE_ERR_ARG, "pool: padding %d exceeds half the kernel %d",
                                   c->pad[a], c->kernel[a]);
    }
    return NERVE_OK;
}

int nerve_pool(nerve_graph *g, int x, const nerve_pool_config *c)
{
    if (!c)
        return nerve_set_error(NERVE_ERR_ARG, "pool: null configuration");
    int st = check_pool_config(c);
    if (st)
        return st;
    node_attr at;
    memset(&at, 0, sizeof at);
    at.pool.type = c->type;
    at.pool.ceil_mode = c->ceil_mode != 0;
    at.pool.count_include_pad = c->count_include_pad != 0;
    for (int a = 0; a < 2; a++) {
        at.pool.kernel[a] = c->kernel[a];
        at.pool.stride[a] = c->stride[a] ? c->stride[a] : c->kernel[a];
        at.pool.pad[a] = c->pad[a];
    }
    static const char *const hints[] = {"maxpool", "avgpool", "l2pool", "global_avgpool",
                                        "global_maxpool"};
    return graph_add_op(g, &op_pool, 1, (int[]){x}, &at, hints[c->type]);
}

/* ---- max unpooling: inputs x (the pool's output shape), pool ------------------------------
 * Input 1 is the max-pool node itself: its value is not used, but being an input makes it
 * run before this node and fixes its shapes. */

static int same_shape(const node *a, const node *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

static int max_unpool_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0), *pool = node_input(g, n, 1);
    if (pool->op != &op_pool || !takes_argmax(pool->attr.pool.type))
        return op_shape_error(n, "input 1 ('%s') must be a max-pool node", pool->name);
    if (!same_shape(x, pool)) {
        char xs[64], ps[64];
        return op_shape_error(n, "input %s must have the pool's output shape %s",
                              nerve_shape_str(x->ndim, x->dims, xs, sizeof xs),
                              nerve_shape_str(pool->ndim, pool->dims, ps, sizeof ps));
    }
    node_copy_shape(n, node_input(g, pool, 0));
    return NERVE_OK;
}

/* Index into y (the pool's input shape) where element o of x goes: its map's argmax. */
static size_t unpool_target(nerve_graph *g, const node *n, size_t o)
{
    const node *x = node_input(g, n, 0), *pool = node_input(g, n, 1);
    size_t maps = (size_t)n->dims[0] * (size_t)n->dims[1];
    size_t in_map = node_numel(x) / maps, out_map = node_numel(n) / maps;
    return (o / in_map) * out_map + (size_t)pool->scratch[o];
}

static void max_unpool_forward(nerve_graph *g, node *n)
{
    const float *x = node_input(g, n, 0)->value;
    size_t count = node_numel(node_input(g, n, 0));
    memset(n->value, 0, node_numel(n) * sizeof(float));
    for (size_t o = 0; o < count; o++)
        n->value[unpool_target(g, n, o)] += x[o];
}

static void max_unpool_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    size_t count = node_numel(node_input(g, n, 0));
    for (size_t o = 0; dx && o < count; o++)
        dx[o] += n->grad[unpool_target(g, n, o)];
}

static const op_def op_max_unpool = {"max_unpool", max_unpool_infer, NULL, max_unpool_forward,
                                     max_unpool_backward, 0};

int nerve_max_unpool(nerve_graph *g, int x, int pool)
{
    return graph_add_op(g, &op_max_unpool, 2, (int[]){x, pool}, NULL, "max_unpool");
}

const op_def *const ops_pool[] = {&op_pool, &op_max_unpool, NULL};
