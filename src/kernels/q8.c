/* int8 inference kernels: the path choice, weight packing, the portable product, the
 * requantisation and the quantisation of activations (docs/quantize.md).
 *
 * The packed weights hold every path's layout side by side (a header, then):
 *   rows  [N, Kp] s8, zero past K                     the portable path (and exports)
 *   vnni  [ceil(N/32)][Kp/4][32][4] s8                vpdpbusd: 4 depths of 32 channels
 *   avx2  [ceil(N/16)][Kp/2][16][2] s16               vpmaddwd: 2 depths of 16 channels
 * with channels past N zero, so the SIMD loops never mask a load. Integer sums do not
 * depend on their order, so the three paths agree exactly; the requantisation and the
 * quantisation of activations are one function each (the AVX-512 quantiser does the same
 * float multiply, the same rounding and the same clamps). */
#include "kernels.h"

#include "../core/core.h"

#include <math.h>
#include <string.h>

typedef struct q8_header {
    int N, K, Kp, pad;
    size_t off_vnni, off_avx2;
} q8_header;

enum { Q8_HEADER = 64 };

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

int kern_q8_kp(int K) { return (K + 3) & ~3; }

/* ---- path ------------------------------------------------------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#define Q8_X86 1 /* the vector paths of q8_avx512.c and q8_avx2.c */
#endif

enum { PATH_PORTABLE, PATH_AVX2, PATH_VNNI };

/* The path as a number (no string compares in the kernels' dispatch). */
static int path_id(void)
{
#ifdef Q8_X86
    switch (kern_isa_active()) {
    case KERN_ISA_AVX512:
        return kern_isa_avx512_vnni() ? PATH_VNNI : PATH_AVX2; /* AVX-512F implies AVX2 */
    case KERN_ISA_AVX2:
        return PATH_AVX2;
    default:
        break;
    }
#endif
    return PATH_PORTABLE;
}

const char *kern_q8_path(void)
{
    static const char *const names[] = {"portable", "avx2", "vnni"};
    return names[path_id()];
}

/* ---- packing ---------------------------------------------------------------------------- */

static size_t panels(int N, int P) { return (size_t)((N + P - 1) / P); }

size_t kern_q8_pack_size(int N, int K)
{
    size_t Kp = (size_t)kern_q8_kp(K);
    return Q8_HEADER + round64((size_t)N * Kp) +
           round64(panels(N, KERN_Q8_VNNI_NR) * KERN_Q8_VNNI_NR * Kp) +
           round64(panels(N, KERN_Q8_AVX2_NR) * KERN_Q8_AVX2_NR * Kp * 2);
}

void kern_q8_pack(int N, int K, const int8_t *w, ptrdiff_t ldw, void *dst)
{
    int Kp = kern_q8_kp(K);
    unsigned char *base = dst;
    memset(base, 0, kern_q8_pack_size(N, K));
    q8_header h = {N, K, Kp, 0, 0, 0};
    h.off_vnni = Q8_HEADER + round64((size_t)N * Kp);
    h.off_avx2 = h.off_vnni + round64(panels(N, KERN_Q8_VNNI_NR) * KERN_Q8_VNNI_NR * (size_t)Kp);
    memcpy(base, &h, sizeof h);
    int8_t *rows = (int8_t *)(base + Q8_HEADER);
    int8_t *vnni = (int8_t *)(base + h.off_vnni);
    int16_t *avx2 = (int16_t *)(base + h.off_avx2);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int8_t v = w[(size_t)n * ldw + k];
            rows[(size_t)n * Kp + k] = v;
            size_t p = (size_t)(n / KERN_Q8_VNNI_NR), c = (size_t)(n % KERN_Q8_VNNI_NR);
            vnni[p * KERN_Q8_VNNI_NR * Kp + ((size_t)k / 4) * KERN_Q8_VNNI_NR * 4 + c * 4 + k % 4] = v;
            p = (size_t)(n / KERN_Q8_AVX2_NR), c = (size_t)(n % KERN_Q8_AVX2_NR);
            avx2[p * KERN_Q8_AVX2_NR * Kp + ((size_t)k / 2) * KERN_Q8_AVX2_NR * 2 + c * 2 + k % 2] = v;
        }
}

const int8_t *kern_q8_rows(const void *packed)
{
    return (const int8_t *)((const unsigned char *)packed + Q8_HEADER);
}

size_t kern_q8_gemm_ws(int K)
{
    /* AVX2: KERN_Q8_AVX2_MR rows of Kp/2 s16 pairs */
    return round64((size_t)KERN_Q8_AVX2_MR * (size_t)(kern_q8_kp(K) / 2) * sizeof(uint32_t));
}

/* ---- the portable product ---------------------------------------------------------------- */

static void gemm_portable(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const int8_t *w,
                          int Kp, int32_t *C, ptrdiff_t ldc)
{
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * lda;
        for (int n = 0; n < N; n++) {
            const int8_t *b = w + (size_t)n * Kp;
            int32_t s = 0;
            for (int k = 0; k < K; k++)
                s += (int32_t)a[k] * b[k];
            C[(size_t)m * ldc + n] = s;
        }
    }
}

void kern_q8_gemm(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const void *packed,
                  int32_t *C, ptrdiff_t ldc, void *ws)
{
    if (M <= 0 || N <= 0)
        return;
    q8_header h;
    memcpy(&h, packed, sizeof h);
#ifdef Q8_X86
    const unsigned char *base = packed;
    int path = path_id();
    if (path == PATH_VNNI) {
        kern_q8_gemm_avx512vnni(M, N, K, A, lda, (const int8_t *)(base + h.off_vnni), C, ldc);
        return;
    }
    if (path == PATH_AVX2) {
        kern_q8_gemm_avx2(M, N, K, A, lda, (const int16_t *)(base + h.off_avx2), C, ldc, ws);
        return;
    }
#else
    (void)ws;
#endif
    gemm_portable(M, N, K, A, lda, kern_q8_rows(packed), h.Kp, C, ldc);
}

/* ---- requantisation ---------------------------------------------------------------------- */

void kern_q8_multiplier(double real, int32_t *mult, int32_t *shift)
{
    if (!(real > 0.0) || !isfinite(real)) {
        *mult = 0;
        *shift = 0;
        return;
    }
    int e;
    double f = frexp(real, &e); /* real = f * 2^e, f in [0.5, 1) */
    long long m = llround(f * 2147483648.0);
    if (m == 2147483648LL) {
        m /= 2;
        e++;
    }
    int s = 31 - e;
    if (s < 0) { /* a multiplier of 2^31 or more: saturate */
        *mult = INT32_MAX;
        *shift = 0;
    } else if (s > 62) { /* below 2^-31: every output is the zero point */
        *mult = 0;
        *shift = 0;
    } else {
        *mult = (int32_t)m;
        *shift = s;
    }
}

void kern_q8_requantize(const kern_q8_requant *r, int M, int N, const int32_t *C, ptrdiff_t ldc,
                        uint8_t *qout, float *out, ptrdiff_t som, ptrdiff_t son)
{
#ifdef Q8_X86
    int path = path_id();
    if (!qout && out && son == 1 && path != PATH_PORTABLE) {
        int vnni = path == PATH_VNNI;
        for (int m = 0; m < M; m++)
            (vnni ? kern_q8_requant_row_avx512 : kern_q8_requant_row_avx2)(
                C + (size_t)m * ldc, N, r->bias, r->mult, r->shift, r->zp, r->lo, r->scale,
                out + m * som, NULL);
        return;
    }
#endif
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int q = kern_q8_requant_one(C[(size_t)m * ldc + n], r->bias[n], r->mult[n],
                                        r->shift[n], r->zp, r->lo);
            if (qout)
                qout[(size_t)m * ldc + n] = (uint8_t)q;
            if (out)
                out[m * som + n * son] = r->scale * (float)(q - r->zp);
        }
}

/* ---- quantisation of activations ---------------------------------------------------------- */

static inline uint8_t quantize_one(float x, float inv_scale, int zp)
{
    float v = x * inv_scale;
    v = fmaxf(v, -512.0f); /* NaN gives -512, as the vector max does */
    v = fminf(v, 512.0f);
    int q = (int)lrintf(v) + zp;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

void kern_q8_quantize(const float *x, size_t n, float inv_scale, int zp, uint8_t *q)
{
#ifdef Q8_X86
    if (path_id() == PATH_VNNI) {
        kern_q8_quantize_avx512(x, n, inv_scale, zp, q);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        q[i] = quantize_one(x[i], inv_scale, zp);
}

/* ---- patches ------------------------------------------------------------------------------ */

void kern_q8_im2row(const kern_conv_shape *s, const uint8_t *im, uint8_t pad, uint8_t *row,
                    ptrdiff_t ldr)
{
    const int *I = s->image, *Kk = s->kernel, *O = s->out, *S = s->stride, *P = s->pad,
              *D = s->dilation;
    size_t plane = (size_t)I[0] * I[1] * I[2];
    size_t col = 0;
    if (I[0] == 1 && Kk[0] == 1 && O[0] == 1 && P[0] == 0 && !s->flip) { /* 2-D */
        int KH = Kk[1], KW = Kk[2];
        for (int oh = 0; oh < O[1]; oh++)
            for (int ow = 0; ow < O[2]; ow++, col++) {
                uint8_t *r = row + col * ldr;
                int iw0 = ow * S[2] - P[2];
                int whole = iw0 >= 0 && iw0 + (KW - 1) * D[2] < I[2];
                for (int c = 0; c < s->channels; c++) {
                    const uint8_t *img = im + (size_t)c * plane;
                    for (int kh = 0; kh < KH; kh++, r += KW) {
                        int ih = oh * S[1] + kh * D[1] - P[1];
                        if (ih < 0 || ih >= I[1]) {
                            memset(r, pad, (size_t)KW);
                            continue;
                        }
                        const uint8_t *line = img + (size_t)ih * I[2];
                        if (whole && D[2] == 1) {
                            memcpy(r, line + iw0, (size_t)KW);
                            continue;
                        }
                        for (int kw = 0; kw < KW; kw++) {
                            int iw = iw0 + kw * D[2];
                            r[kw] = iw >= 0 && iw < I[2] ? line[iw] : pad;
                        }
                    }
                }
            }
        return;
    }
    for (int od = 0; od < O[0]; od++)
        for (int oh = 0; oh < O[1]; oh++)
            for (int ow = 0; ow < O[2]; ow++, col++) {
                uint8_t *r = row + col * ldr;
                for (int c = 0; c < s->channels; c++) {
                    const uint8_t *img = im + (size_t)c * plane;
                    for (int kd = 0; kd < Kk[0]; kd++) {
                        int td = s->flip ? Kk[0] - 1 - kd : kd;
                        int id = od * S[0] + td * D[0] - P[0];
                        for (int kh = 0; kh < Kk[1]; kh++) {
                            int th = s->flip ? Kk[1] - 1 - kh : kh;
                            int ih = oh * S[1] + th * D[1] - P[1];
                            int inside = id >= 0 && id < I[0] && ih >= 0 && ih < I[1];
                            const uint8_t *line = img + ((size_t)(inside ? id : 0) * I[1] +
                                                         (size_t)(inside ? ih : 0)) * I[2];
                            for (int kw = 0; kw < Kk[2]; kw++) {
                                int tw = s->flip ? Kk[2] - 1 - kw : kw;
                                int iw = ow * S[2] + tw * D[2] - P[2];
                                *r++ = inside && iw >= 0 && iw < I[2] ? line[iw] : pad;
                            }
                        }
                    }
                }
            }
}

/* ---- direct convolution (pixels in the lanes) ----------------------------------------------- */

int kern_q8_conv_direct_plan(const kern_conv_shape *s, int N, kern_q8_conv_plan *p)
{
    memset(p, 0, sizeof *p);
    if (s->flip || s->image[0] != 1 || s->kernel[0] != 1 || s->out[0] != 1 ||
        s->stride[1] < 1 || s->stride[1] > 4 || s->stride[2] < 1 || s->stride[2] > 4)
        return 0;
    p->C = s->channels;
    p->H = s->image[1];
    p->W = s->image[2];
    p->N = N;
    p->KH = s->kernel[1];
    p->KW = s->kernel[2];
    p->OH = s->out[1];
    p->OW = s->out[2];
    p->pad_h = s->pad[1];
    p->pad_w = s->pad[2];
    p->dil_h = s->dilation[1];
    p->dil_w = s->dilation[2];
    p->sh = s->stride[1];
    p->sw = s->stride[2];
    p->K = p->C * p->KH * p->KW;
    p->Kp = kern_q8_kp(p->K);
    p->Hp = p->OH + (p->KH - 1) * p->dil_h / p->sh;
    p->Wp = p->OW + (p->KW - 1) * p->dil_w / p->sw;
    memset(p->ph, -1, sizeof p->ph);
    for (int kh = 0; kh < p->KH; kh++) /* the phases some tap reads, in order */
        for (int kw = 0; kw < p->KW; kw++) {
            int f = kh * p->dil_h % p->sh * p->sw + kw * p->dil_w % p->sw;
            if (p->ph[f] < 0)
                p->ph[f] = (signed char)p->nph++;
        }
    p->span = (size_t)p->OH * p->Wp;
    p->spanp = (p->span + 63) & ~(size_t)63;
    /* the last tap's reads reach spanp + its offset; then 16 bytes of a load */
    size_t top = 0, plane = (size_t)p->nph * p->C * p->Hp * p->Wp;
    for (int kh = 0; kh < p->KH; kh++)
        for (int kw = 0; kw < p->KW; kw++) {
            int f = kh * p->dil_h % p->sh * p->sw + kw * p->dil_w % p->sw;
            size_t o = (((size_t)p->ph[f] * p->C + p->C - 1) * p->Hp + kh * p->dil_h / p->sh) *
                           p->Wp + (size_t)(kw * p->dil_w / p->sw);
            top = o > top ? o : top;
        }
    size_t reach = p->spanp + top + 64;
    p->img_bytes = round64(reach > plane ? reach : plane);
    if (p->sh > 1 || p->sw > 1) { /* then the quantised input itself */
        p->qoff = p->img_bytes;
        p->img_bytes += round64((size_t)p->C * p->H * p->W);
    }
    p->panel_bytes = round64((size_t)64 * p->Kp);
    p->sums_bytes = round64((size_t)N * p->spanp * sizeof(int32_t));
    return 1;
}

void kern_q8_conv_offsets(const kern_q8_conv_plan *p, int32_t *off)
{
    int k = 0;
    for (int c = 0; c < p->C; c++)
        for (int kh = 0; kh < p->KH; kh++)
            for (int kw = 0; kw < p->KW; kw++) {
                int f = kh * p->dil_h % p->sh * p->sw + kw * p->dil_w % p->sw;
                off[k++] = (int32_t)((((size_t)p->ph[f] * p->C + c) * p->Hp +
                                      (size_t)(kh * p->dil_h / p->sh)) * p->Wp +
                                     (size_t)(kw * p->dil_w / p->sw));
            }
    for (; k < p->Kp; k++)
        off[k] = 0;
}

/* The phase images of a strided convolution's input src [C, H, W] (bytes), positions
 * outside the image reading the zero point. */
static void phase_images(const kern_q8_conv_plan *p, const uint8_t *src, int zp, uint8_t *img)
{
    memset(img, zp, p->qoff);
    for (int a = 0; a < p->sh; a++)
        for (int b = 0; b < p->sw; b++) {
            int f = p->ph[a * p->sw + b];
            if (f < 0)
                continue;
            /* columns x with 0 <= x sw + b - pad_w < W */
            int x0 = p->pad_w > b ? (p->pad_w - b + p->sw - 1) / p->sw : 0;
            int last = p->W - 1 + p->pad_w - b;
            int x1 = last < 0 ? 0 : last / p->sw + 1;
            x1 = x1 < p->Wp ? x1 : p->Wp;
            for (int c = 0; c < p->C; c++)
                for (int y = 0; y < p->Hp; y++) {
                    int iy = y * p->sh + a - p->pad_h;
                    if (iy < 0 || iy >= p->H)
                        continue;
                    const uint8_t *row = src + ((size_t)c * p->H + iy) * p->W;
                    uint8_t *dst = img + (((size_t)f * p->C + c) * p->Hp + y) * p->Wp;
                    for (int x = x0; x < x1; x++)
                        dst[x] = row[x * p->sw + b - p->pad_w];
                }
        }
}

int kern_q8_conv_direct_runs(void) { return path_id() != PATH_PORTABLE; }

/* out[i] = scale * (requant(c[i]) - zp) for i < n, constants of one channel. */
static void requant_run(int vnni, const int32_t *c, int n, int32_t bias, int32_t mult,
                        int32_t shift, int zp, int lo, float scale, float *out)
{
#ifdef Q8_X86
    (vnni ? kern_q8_requant_run_avx512 : kern_q8_requant_run_avx2)(c, n, bias, mult, shift, zp,
                                                                    lo, scale, out, NULL);
#else
    (void)vnni;
    for (int i = 0; i < n; i++)
        out[i] = scale * (float)(kern_q8_requant_one(c[i], bias, mult, shift, zp, lo) - zp);
#endif
}

int32_t *kern_q8_conv_direct_sums(const kern_q8_conv_plan *p, const int32_t *off, const float *x,
                                  const uint8_t *xq, float inv_scale, int zp,
                                  const void *packed, void *ws)
{
    uint8_t *img = ws, *panel = img + p->img_bytes;
    int32_t *sums = (int32_t *)(panel + p->panel_bytes);
    if (p->sh > 1 || p->sw > 1) {
        if (!xq) {
            kern_q8_quantize(x, (size_t)p->C * p->H * p->W, inv_scale, zp, img + p->qoff);
            xq = img + p->qoff;
        }
        phase_images(p, xq, zp, img);
    } else {
        /* the padded image: the zero point around the quantised rows */
        memset(img, zp, p->img_bytes);
        int rows = p->H < p->Hp - p->pad_h ? p->H : p->Hp - p->pad_h;
        int cols = p->W < p->Wp - p->pad_w ? p->W : p->Wp - p->pad_w;
        for (int c = 0; c < p->C; c++)
            for (int y = 0; y < rows; y++) {
                size_t src = ((size_t)c * p->H + y) * p->W;
                uint8_t *dst = img + ((size_t)c * p->Hp + y + p->pad_h) * p->Wp + p->pad_w;
                if (xq)
                    memcpy(dst, xq + src, (size_t)cols);
                else
                    kern_q8_quantize(x + src, (size_t)cols, inv_scale, zp, dst);
            }
    }
#ifdef Q8_X86
    if (path_id() == PATH_VNNI)
        kern_q8_conv_sums_avx512vnni(p, off, img, kern_q8_rows(packed), panel, sums);
    else {
        q8_header h;
        memcpy(&h, packed, sizeof h);
        kern_q8_conv_sums_avx2(p, off, img,
                               (const int16_t *)((const unsigned char *)packed + h.off_avx2),
                               (int16_t *)panel, sums);
    }
#else
    (void)off;
    (void)packed;
#endif
    return sums;
}

void kern_q8_conv_direct(const kern_q8_conv_plan *p, const int32_t *off, const float *x,
                         float inv_scale, int zp, const void *packed, const kern_q8_requant *r,
                         float *out, void *ws)
{
    kern_q8_conv_direct_requant(p, kern_q8_conv_direct_sums(p, off, x, NULL, inv_scale, zp,
                                                            packed, ws),
                                r, out);
}

void kern_q8_conv_direct_requant(const kern_q8_conv_plan *p, const int32_t *sums,
                                 const kern_q8_requant *r, float *out)
{
    int vnni = path_id() == PATH_VNNI;
    size_t plane = (size_t)p->OH * p->OW;
    for (int n = 0; n < p->N; n++)
        for (int y = 0; y < p->OH; y++)
            requant_run(vnni, sums + (size_t)n * p->spanp + (size_t)y * p->Wp, p->OW, r->bias[n],
                        r->mult[n], r->shift[n], r->zp, r->lo, r->scale,
                        out + (size_t)n * plane + (size_t)y * p->OW);
}

/* ---- bytes from one int8 layer to the next -------------------------------------------------- */

/* q8[i] = requant(c[i]) for i < n, constants of one channel, on the active path. */
static void requant_run_bytes(int path, const int32_t *c, int n, const kern_q8_requant *r, int ch,
                              uint8_t *q8)
{
#ifdef Q8_X86
    if (path) {
        (path == 2 ? kern_q8_requant_run_avx512 : kern_q8_requant_run_avx2)(
            c, n, r->bias[ch], r->mult[ch], r->shift[ch], r->zp, r->lo, 0.0f, NULL, q8);
        return;
    }
#else
    (void)path;
#endif
    for (int i = 0; i < n; i++)
        q8[i] = (uint8_t)kern_q8_requant_one(c[i], r->bias[ch], r->mult[ch], r->shift[ch], r->zp,
                                             r->lo);
}

/* m[px] = the largest sum of pooled output (py fixed, px = x0 .. x0 + cnt) over its window. */
static void pool_row(const int32_t *row, ptrdiff_t sy, ptrdiff_t sx, const kern_q8_pool *pl,
                     int x0, int cnt, int32_t *m)
{
    enum { SPAN = 4 * 256 + 8 };
    int span = (cnt - 1) * pl->sw + pl->kw;
    if (sx == 1 && span <= SPAN) { /* the rows' max, then the columns' (both contiguous) */
        int32_t t[SPAN];
        const int32_t *r = row + (ptrdiff_t)x0 * pl->sw;
        memcpy(t, r, (size_t)span * sizeof *t);
        for (int ky = 1; ky < pl->kh; ky++)
            for (int x = 0; x < span; x++)
                t[x] = r[ky * sy + x] > t[x] ? r[ky * sy + x] : t[x];
        for (int px = 0; px < cnt; px++) {
            const int32_t *w = t + px * pl->sw;
            int32_t v = w[0];
            for (int kx = 1; kx < pl->kw; kx++)
                v = w[kx] > v ? w[kx] : v;
            m[px] = v;
        }
        return;
    }
    for (int px = 0; px < cnt; px++) {
        const int32_t *w = row + (ptrdiff_t)(x0 + px) * pl->sw * sx;
        int32_t v = w[0];
        for (int ky = 0; ky < pl->kh; ky++)
            for (int kx = 0; kx < pl->kw; kx++) {
                int32_t e = w[ky * sy + kx * sx];
                v = e > v ? e : v;
            }
        m[px] = v;
    }
}

/* o[i] = lut[o[i]]: 64 bytes a step with AVX-512 VBMI on the VNNI path, else eight bytes a
 * step, one 64-bit load and store around eight table reads (a byte loop stores each byte
 * before the next table read it cannot prove independent). */
static void lut_bytes(const uint8_t *restrict lut, uint8_t *restrict o, size_t n)
{
#ifdef Q8_X86
    if (path_id() == PATH_VNNI && kern_isa_avx512_vbmi()) {
        kern_q8_lut_avx512vbmi(lut, o, n);
        return;
    }
#endif
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v, w = 0;
        memcpy(&v, o + i, 8);
        for (int b = 0; b < 8; b++)
            w |= (uint64_t)lut[(v >> (8 * b)) & 255] << (8 * b);
        memcpy(o + i, &w, 8);
    }
    for (; i < n; i++)
        o[i] = lut[o[i]];
}

void kern_q8_lut(const uint8_t *lut, uint8_t *o, size_t n) { lut_bytes(lut, o, n); }

void kern_q8_requant_pool(const kern_q8_requant *r, int N, const int32_t *S, ptrdiff_t sn,
                          ptrdiff_t sy, ptrdiff_t sx, const kern_q8_pool *pl, const uint8_t *lut,
                          uint8_t *out)
{
    int path = path_id(); /* 2 vnni, 1 avx2, 0 portable */
    size_t total = (size_t)N * pl->OH * pl->OW;
    int plain = pl->kh == 1 && pl->kw == 1 && pl->sh == 1 && pl->sw == 1;
    if (plain && pl->OH == 1 && pl->OW == 1 && sn == 1) { /* a row of channels */
#ifdef Q8_X86
        if (path)
            (path == 2 ? kern_q8_requant_row_avx512 : kern_q8_requant_row_avx2)(
                S, N, r->bias, r->mult, r->shift, r->zp, r->lo, 0.0f, NULL, out);
        else
#endif
            for (int n = 0; n < N; n++)
                out[n] = (uint8_t)kern_q8_requant_one(S[n], r->bias[n], r->mult[n], r->shift[n],
                                                      r->zp, r->lo);
#ifdef Q8_X86
    } else if (path == 2 && sx == 1 && pl->kh == 2 && pl->kw == 2 && pl->sh == 2 &&
               pl->sw == 2) {
        for (int n = 0; n < N; n++)
            kern_q8_pool2_requant_avx512(S + n * sn, sy, pl->OH, pl->OW, r->bias[n], r->mult[n],
                                         r->shift[n], r->zp, r->lo,
                                         out + (size_t)n * pl->OH * pl->OW);
#endif
    } else if (plain && sx == 1 && sy >= pl->OW && sy <= 1024) {
        /* no pool: a channel's rows requantised several at a time (with the columns between
         * them when sy > OW, then the rows moved together), or all at once when dense */
        enum { RUN = 4096 };
        uint8_t t[RUN];
        int per = (int)(RUN / sy);
        uint8_t *o = out;
        for (int n = 0; n < N; n++) {
            const int32_t *ch = S + n * sn;
            if (sy == pl->OW) {
                requant_run_bytes(path, ch, pl->OH * pl->OW, r, n, o);
                o += (size_t)pl->OH * pl->OW;
                continue;
            }
            for (int y0 = 0; y0 < pl->OH; y0 += per) {
                int rows = pl->OH - y0 < per ? pl->OH - y0 : per;
                requant_run_bytes(path, ch + (ptrdiff_t)y0 * sy, (int)((rows - 1) * sy + pl->OW),
                                  r, n, t);
                for (int y = 0; y < rows; y++, o += pl->OW)
                    memcpy(o, t + (size_t)y * sy, (size_t)pl->OW);
            }
        }
    } else if (sx == 1 && path && (pl->OW - 1) * pl->sw + pl->kw <= 1024) {
        /* vectors: each window row requantised to bytes, then the bytes pooled (the
         * requantisation is nondecreasing, so either order gives the same bytes) */
        enum { ROW = 1024 };
        uint8_t b[ROW], t[ROW];
        int wu = (pl->OW - 1) * pl->sw + pl->kw;
        uint8_t *o = out;
        for (int n = 0; n < N; n++)
            for (int py = 0; py < pl->OH; py++, o += pl->OW) {
                const int32_t *row = S + n * sn + (ptrdiff_t)py * pl->sh * sy;
                requant_run_bytes(path, row, wu, r, n, t);
                for (int ky = 1; ky < pl->kh; ky++) {
                    requant_run_bytes(path, row + ky * sy, wu, r, n, b);
                    for (int x = 0; x < wu; x++)
                        t[x] = b[x] > t[x] ? b[x] : t[x];
                }
                for (int px = 0; px < pl->OW; px++) {
                    const uint8_t *w = t + px * pl->sw;
                    uint8_t v = w[0];
                    for (int kx = 1; kx < pl->kw; kx++)
                        v = w[kx] > v ? w[kx] : v;
                    o[px] = v;
                }
            }
    } else {
        /* per channel, pooled rows gathered into m and requantised together */
        enum { CHUNK = 256 };
        int32_t m[CHUNK];
        uint8_t *o = out;
        for (int n = 0; n < N; n++) {
            int used = 0;
            for (int py = 0; py < pl->OH; py++) {
                const int32_t *row = S + n * sn + (ptrdiff_t)py * pl->sh * sy;
                for (int x0 = 0; x0 < pl->OW; x0 += CHUNK) {
                    int cnt = pl->OW - x0 < CHUNK ? pl->OW - x0 : CHUNK;
                    if (plain && sx == 1) {
                        requant_run_bytes(path, row + x0, cnt, r, n, o);
                        o += cnt;
                        continue;
                    }
                    if (used + cnt > CHUNK) {
                        requant_run_bytes(path, m, used, r, n, o);
                        o += used;
                        used = 0;
                    }
                    pool_row(row, sy, sx, pl, x0, cnt, m + used);
                    used += cnt;
                }
            }
            if (used) {
                requant_run_bytes(path, m, used, r, n, o);
                o += used;
            }
        }
    }
    if (lut)
        lut_bytes(lut, out, total);
}

/* ---- the residual add -------------------------------------------------------------------- */

int kern_q8_add_multipliers(double ra, double rb, int32_t *ma, int32_t *mb, int *shift)
{
    double m = ra > rb ? ra : rb;
    if (!(ra > 0.0) || !(rb > 0.0) || !isfinite(m))
        return -1;
    int e;
    frexp(m, &e); /* m = f * 2^e, f in [0.5, 1): m * 2^(21 - e) in [2^20, 2^21) */
    int s = 21 - e;
    s = s > 31 ? 31 : s;
    for (; s >= 0; s--) { /* once more, one lower, if the larger rounds up to 2^21 */
        long long a = llround(ldexp(ra, s)), b = llround(ldexp(rb, s));
        if (a < KERN_Q8_ADD_MULT && b < KERN_Q8_ADD_MULT) {
            *ma = (int32_t)a;
            *mb = (int32_t)b;
            *shift = s;
            return 0;
        }
    }
    return -1;
}

void kern_q8_add(const kern_q8_addp *p, const uint8_t *a, const uint8_t *b, size_t n,
                 uint8_t *out)
{
#ifdef Q8_X86
    int path = path_id();
    if (path != PATH_PORTABLE) {
        (path == PATH_VNNI ? kern_q8_add_avx512 : kern_q8_add_avx2)(p, a, b, n, out);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)kern_q8_add_one(a[i], b[i], p);
}
