/* Kernels: raw loops on float pointers. They never allocate and never print.
 * Matrices are row-major; ld* are row strides in elements. */
#ifndef NERVE_KERNELS_H
#define NERVE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"

/* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, op = transpose when trans_* != 0.
 * A is [M,K] (lda >= K) or, transposed, [K,M] (lda >= M); likewise B. beta == 0 ignores
 * C's previous contents (NaN included). Runs the micro-kernel of the instruction set that
 * isa.c chose (AVX-512, AVX2+FMA, NEON, portable C) and uses the thread pool for large
 * products.
 * Packing buffers are grown once per calling thread and reused: a call no larger than an
 * earlier one on the same thread allocates nothing. Results depend only on the shapes and
 * the kernel path, never on the thread count or scheduling. */
void kern_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The same product on the calling thread only (callers that already run one product per
 * thread); bit-identical to kern_sgemm, whose results never depend on the thread count. */
void kern_sgemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc);
/* Threads kern_sgemm would use for an M x N x K product (1 below the size that pays for a
 * fork/join): callers with many small products parallelise over them instead. */
int kern_sgemm_threads(int M, int N, int K);

/* The kernel path: kern_isa_active(), kern_set_isa(), kern_isa_name() (isa.h). */

/* Number of worker threads used by kernels (default: NERVE_THREADS or the cores).
 * n <= 0 restores the default. */
void kern_set_threads(int n);
int kern_threads(void);

/* ---- the thread pool (src/kernels/threads.c) ----------------------------------------- */

/* Every parallel loop of the library goes through these. A run has T parts, T fixed by the
 * caller and the thread setting (never by the machine's load), so results are bit-identical
 * run to run at a given thread count: a part's work depends only on its index, T and the
 * operands. Which thread runs a part is not fixed: the caller runs part 0 and the threads
 * awake take the others one at a time, so a part must not wait for another part of the same
 * run (there is no barrier; a task in phases uses kern_run_phases). The pool wakes at most
 * as many threads as the process has cores, fewer when other processes keep cores busy
 * (none: the caller runs every part). A call from inside a running task runs serially on the
 * caller (T = 1). */

/* Runs fn(ctx, t, T) for t = 0..T-1 (T clamped to 1..kern_threads()), part 0 on the caller,
 * and returns when all have finished. */
typedef void (*kern_task_fn)(void *ctx, int t, int T);
void kern_run(int T, kern_task_fn fn, void *ctx);
/* Runs fn(ctx, phase, t, T) for every t of phase 0, then of phase 1, ... up to phases - 1:
 * each phase's parts all finish before the next phase starts. */
typedef void (*kern_phase_fn)(void *ctx, int phase, int t, int T);
void kern_run_phases(int T, int phases, kern_phase_fn fn, void *ctx);
/* Splits [0, n) into at most kern_threads() contiguous ranges of at least `grain` items
 * (one range, on the caller, when n < 2 * grain or when one thread would run them all) and
 * calls fn(ctx, begin, end) on each. The ranges' results must not depend on the split. */
typedef void (*kern_range_fn)(void *ctx, size_t begin, size_t end);
void kern_parallel_for(size_t n, size_t grain, kern_range_fn fn, void *ctx);
/* The range [begin, end) of part t of T in a static split of [0, n). */
void kern_split(size_t n, int t, int T, size_t *begin, size_t *end);
/* Whether the calling thread is running a part of a run (a nested run is serial). */
int kern_in_task(void);
/* How many threads a run of kern_threads() parts would get now (for a task whose results do
 * not depend on its split, which may then split for the threads it will really have). */
int kern_threads_now(void);
/* A pool worker's set-up when it starts: its GEMM workspace (gemm.c), taken then rather
 * than at the first product it happens to run, so that steady-state steps allocate nothing
 * whichever parts each worker takes. */
void kern_gemm_thread_init(void);
/* The load adaptation: on by default (NERVE_POOL_ADAPT=0 turns it off); off, every run
 * wakes as many threads as it has parts. For tests: 1 on, 0 off, -1 the default again. */
void kern_set_pool_adapt(int on);
/* The threads a run of T parts gets with `cpus` cores and `others` runnable tasks of other
 * processes (a moving average): cpus - others, rounded up unless less than a quarter above
 * an integer, within 1..min(T, cpus). */
int kern_pool_width(int T, int cpus, double others);
/* The runnable-task count in the text of /proc/loadavg, or -1. */
int kern_loadavg_running(const char *text);
/* Whether the text of a /proc/<pid>/task/<tid>/stat says the thread is runnable (state R). */
int kern_stat_running(const char *text);

/* ---- GEMM internals, shared by src/kernels/gemm*.c only ----------------------------- */

/* Micro-kernel: C[mr,nr] = alpha * sum_k a[k*MR + r] * b[k*ldb + j] + beta * C (beta == 0
 * ignores C), for mr <= MR, nr <= NR of its implementation. `a` is a packed A panel
 * (MR floats per k); `b` is a packed B panel (ldb == NR) or rows of B itself. Columns
 * j >= nr of b are never read. */
typedef void (*kern_gemm_micro)(int kc, const float *a, const float *b, ptrdiff_t ldb,
                                float *c, ptrdiff_t ldc, int mr, int nr, float alpha,
                                float beta);

/* Packs a panel of w <= P vectors, each kc long: dst[k*P + r] = src[r*ld + k] (transpose)
 * for r < w, k < kc. Entries r >= w are left untouched. */
typedef void (*kern_gemm_pack_t)(int kc, int w, const float *src, ptrdiff_t ld, int P,
                                 float *dst);

/* Small-M product without packing, for M <= KERN_GEMM_SMALL_M and op(A) = A: for columns
 * j in [n0, n1), C[m,j] = alpha * sum_k A[m*lda + k] op(B)[k,j] + beta * C[m,j] (beta == 0
 * ignores C). op(B) = B^T (tb != 0) takes dot products along B's rows; B itself streams
 * its rows. One pass over B; a column's result does not depend on n0 and n1. */
#define KERN_GEMM_SMALL_M 4
typedef void (*kern_gemm_small_fn)(int tb, int M, int n0, int n1, int K, float alpha,
                                   const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                                   float beta, float *C, ptrdiff_t ldc);

typedef struct {
    const char *name;
    int mr, nr;              /* register tile of the micro-kernel */
    kern_gemm_micro micro;
    kern_gemm_pack_t pack_t; /* transposing pack */
    kern_gemm_small_fn small_m; /* NULL: small M goes through the blocked path */
} kern_gemm_impl;

extern const kern_gemm_impl kern_gemm_portable_impl;
extern const kern_gemm_impl kern_gemm_avx2_impl;
extern const kern_gemm_impl kern_gemm_avx512_impl;
extern const kern_gemm_impl kern_gemm_neon_impl;
void kern_gemm_pack_t_portable(int kc, int w, const float *src, ptrdiff_t ld, int P,
                               float *dst);
void kern_gemm_pack_t_avx2(int kc, int w, const float *src, ptrdiff_t ld, int P, float *dst);

/* ---- im2col / col2im: patch matrices for convolutions (src/kernels/im2col.c) ---------- */

/* Geometry of one convolution pass over one image, always 3-D (depth, height, width):
 * 1-D and 2-D convolutions set the leading extents to 1 (kernel 1, stride 1, pad 0,
 * dilation 1). Output position o reads image index o * stride + t * dilation - pad along
 * each dimension, for kernel tap t = k (correlation) or K - 1 - k (flip: true
 * convolution); indices outside the image read zero. */
typedef struct kern_conv_shape {
    int channels;    /* image channels handled by the call */
    int image[3];    /* image extent per dimension */
    int kernel[3];
    int out[3];      /* output positions per dimension (padding after only bounds these) */
    int stride[3];
    int pad[3];      /* zero padding before each dimension */
    int dilation[3];
    int flip;
} kern_conv_shape;

/* Rows of the column matrix: channels * prod(kernel), ordered (c, kd, kh, kw). */
size_t kern_conv_rows(const kern_conv_shape *s);
/* Columns: prod(out), output positions in row-major (od, oh, ow) order. */
size_t kern_conv_cols(const kern_conv_shape *s);

/* Large calls split channels across kern_threads() threads, except when called from inside
 * a parallel region, where they run on the calling thread.
 * col [rows, cols] = patches of im [channels, image...] (zero where they read padding). */
void kern_im2col(const kern_conv_shape *s, const float *im, float *col);
/* im [channels, image...] += col [rows, cols] scattered back (the adjoint of im2col). */
void kern_col2im(const kern_conv_shape *s, const float *col, float *im);
/* The same for the output rows q = od * OH + oh in [q0, q1) only (columns [q0 * OW,
 * q1 * OW)), with col [rows, (q1 - q0) * OW]: column blocks small enough to stay in cache
 * between the gather and the product that reads them. These run on the calling thread.
 * kern_col2im_rows treats col as scratch: it may zero the entries that read padding. */
void kern_im2col_rows(const kern_conv_shape *s, int q0, int q1, const float *im, float *col);
void kern_col2im_rows(const kern_conv_shape *s, int q0, int q1, float *col, float *im);
/* The same with the patch-major layout row [cols, rows]: one contiguous patch per output
 * position (locally connected layers). */
void kern_im2row(const kern_conv_shape *s, const float *im, float *row);
void kern_row2im(const kern_conv_shape *s, const float *row, float *im);
/* dst [cols, rows] (row stride ldd) = src [rows, cols] (row stride lds) transposed, on the
 * calling thread: layout changes between channel-major and pixel-major images. */
void kern_transpose(int rows, int cols, const float *src, ptrdiff_t lds, float *dst,
                    ptrdiff_t ldd);

/* ---- winograd: 3x3 stride-1 convolutions by F(4x4, 3x3) (src/kernels/winograd.c) ------- */

/* Floats of workspace kern_winograd_conv3x3 needs for this shape on up to `threads`
 * threads (it runs on kern_threads() threads: size with threads >= that). */
size_t kern_winograd_workspace(int N, int C, int H, int W, int K, int pad_h, int pad_w,
                               int threads);
/* out[n,k,y,x] = bias[k] + sum_c sum_{i,j<3} w[k,c,i,j] * in[n,c,y+i-pad_h,x+j-pad_w] (zero
 * outside), in [N,C,H,W], w [K,C,3,3], out [N,K,H+2*pad_h-2,W+2*pad_w-2] overwritten; bias
 * may be NULL. Stride 1, dilation 1, one group (cross-correlation). Weights are transformed
 * on every call. Never allocates; results depend on the kernel path (kern_isa_name()), not
 * on the thread count. Does nothing when an extent is < 1. */
void kern_winograd_conv3x3(int N, int C, int H, int W, int K, int pad_h, int pad_w,
                           const float *in, const float *w, const float *bias, float *out,
                           float *ws);


/* ---- direct convolution for few input channels (src/kernels/conv_direct.c) ------------- */

#define KERN_CONV_DIRECT_MAX_CHANNELS 16        /* input channels of the vector route */
#define KERN_CONV_DIRECT_FORWARD_CHANNELS 8     /* where it beats im2col + GEMM forward */
#define KERN_CONV_DIRECT_ADJOINT_OUT_CHANNELS 32 /* input gradients it serves, channels */
#define KERN_CONV_DIRECT_MAX_KERNEL 7

/* Whether the vector route (AVX-512, or NEON on aarch64) runs on this machine. */
int kern_conv_direct_vector(void);
/* Whether kern_conv_direct is the fast route for C input channels and a KH x KW kernel
 * (stride 1, dilation 1, one group): few channels, small kernels, and the vector route. */
int kern_conv_direct_fits(int C, int KH, int KW);
/* out[n,k,y,x] = bias[k] + sum_c sum_{i<KH,j<KW} w[k,c,i,j] * in[n,c,y+i-pad_h,x+j-pad_w]
 * (zero outside), in [N,C,H,W], w [K,C,KH,KW], out [N,K,OH,OW] overwritten (padding after
 * only bounds OH = H + pad_h + pad_h_end - KH + 1, and OW likewise); bias may be NULL.
 * Any C and kernel size work (the portable path serves what the vector route does not).
 * Images are split across kern_threads() threads; results do not depend on the thread
 * count. Never allocates. */
void kern_conv_direct(int N, int C, int H, int W, int K, int KH, int KW, int pad_h, int pad_w,
                      int OH, int OW, const float *in, const float *w, const float *bias,
                      float *out);
/* wt [C, K, KH, KW] = w [K, C, KH, KW] flipped in both spatial axes. */
void kern_conv_flip_transpose(int K, int C, int KH, int KW, const float *w, float *wt);
/* Whether kern_conv_direct_adjoint is the fast route for the input gradient of a stride-1
 * convolution of C input and K output channels (0 <= pad < kernel; vector route only). */
int kern_conv_direct_adjoint_fits(int C, int K, int KH, int KW, int pad_h, int pad_w);
/* din [N,C,H,W] (+)= the input gradient of out = conv(in, w) (kern_conv_direct's shapes and
 * padding) for dout [N,K,OH,OW], given wt = kern_conv_flip_transpose(w); overwrites din
 * unless accumulate. Split by images like kern_conv_direct. */
void kern_conv_direct_adjoint(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                              int pad_w, int OH, int OW, const float *dout, const float *wt,
                              float *din, int accumulate);


/* ---- direct weight gradient for few input channels (src/kernels/conv_direct_grad.c) ---- */

/* Floats of scratch kern_conv_direct_wgrad needs on up to `threads` threads (it runs on
 * min(kern_threads(), N) threads: size with threads >= kern_threads()). 0 for empty shapes. */
size_t kern_conv_direct_wgrad_scratch(int C, int H, int W, int K, int KH, int KW, int pad_h,
                                      int pad_w, int OH, int OW, int threads);
/* dw[k,c,i,j] += sum_n sum_{y<OH,x<OW} dy[n,k,y,x] * in[n,c,y+i-pad_h,x+j-pad_w] (zero
 * outside) and db[k] += sum_n sum_{y,x} dy[n,k,y,x] (db may be NULL), for in [N,C,H,W],
 * dy [N,K,OH,OW], dw [K,C,KH,KW]: the weight and bias gradients of kern_conv_direct (stride 1,
 * dilation 1, one group, pads >= 0; padding after is implied by OH and OW). Any C and kernel
 * size work; it is fast for few channels and kernels up to 7x7. Vector lanes run over
 * groups of 16 images. Images are split across kern_threads() threads, each summing into
 * its own partial in `scratch` (kern_conv_direct_wgrad_scratch floats; no alignment needed),
 * then the partials are added in thread order: bit-identical run to run at a given thread
 * count, and across thread counts and paths equal up to rounding. The AVX-512 path runs when
 * kern_isa_name() is "avx512" (kern_set_isa("portable") forces plain C). Never allocates. */
void kern_conv_direct_wgrad(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                            int pad_w, int OH, int OW, const float *x, const float *dy,
                            float *dw, float *db, float *scratch);

/* Floats of scratch kern_conv_direct_dgrad needs on up to `threads` threads (it runs on
 * min(kern_threads(), N) threads: size with threads >= kern_threads()). 0 for empty shapes. */
size_t kern_conv_direct_dgrad_scratch(int C, int H, int W, int K, int KH, int KW, int pad_h,
                                      int pad_w, int OH, int OW, int threads);
/* dx[n,c,y,x] = (or += when accumulate) sum_k sum_{i<KH,j<KW} w[k,c,i,j] *
 * dy[n,k,y-i+pad_h,x-j+pad_w] over the dy positions that exist: the input gradient of
 * kern_conv_direct (stride 1, dilation 1, one group, 0 <= pad < kernel; padding after is
 * implied by OH and OW) for dy [N,K,OH,OW], w [K,C,KH,KW] as the forward uses it (not
 * flipped), dx [N,C,H,W]. Any C and kernel size work; it is fast for C <= 8 and kernels up
 * to 7x7. Vector lanes run over groups of 16 images; images are split across
 * kern_threads() threads and every output is computed by one thread in a fixed order:
 * bit-identical across thread counts (paths differ by rounding). `scratch`:
 * kern_conv_direct_dgrad_scratch floats, no alignment needed. The AVX-512 path runs when
 * kern_isa_name() is "avx512". Never allocates. */
void kern_conv_direct_dgrad(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                            int pad_w, int OH, int OW, const float *dy, const float *w,
                            float *dx, int accumulate, float *scratch);

/* ---- direct convolution, output channels in the lanes (src/kernels/conv_direct_kvec.c) -- */

/* Whether kern_conv_direct_kvec is the fast route (AVX-512 active, 2-D, stride 1, dilation 1,
 * one group): C <= 16 input channels, kernels up to 7x7, and K >= 16 output channels, or
 * K >= 8 with C * KH * KW >= 64 taps (below, kern_conv_direct wins). */
int kern_conv_direct_kvec_fits(int C, int K, int KH, int KW);
/* Floats of scratch kern_conv_direct_kvec needs on up to `threads` threads (it runs on
 * min(kern_threads(), N) threads: size with threads >= kern_threads()); no alignment needed.
 * 0 for empty shapes. */
size_t kern_conv_direct_kvec_scratch(int C, int K, int KH, int KW, int OH, int OW, int threads);
/* kern_conv_direct's contract (out [N,K,OH,OW] overwritten, bias may be NULL, pads >= 0,
 * padding after implied by OH and OW), computed with the output channels in the vector
 * lanes; weights rearranged into `scratch` on every call. Images are split across threads;
 * results do not depend on the thread count (they equal kern_conv_direct's AVX-512 path up to
 * rounding). Without AVX-512 it calls kern_conv_direct. Never allocates. */
void kern_conv_direct_kvec(int N, int C, int H, int W, int K, int KH, int KW, int pad_h,
                           int pad_w, int OH, int OW, const float *in, const float *w,
                           const float *bias, float *out, float *scratch);

/* ---- int8 inference (src/kernels/q8*.c, docs/quantize.md) ------------------------------
 * Activations are u8 with a zero point (real = scale * (q - zp)), weights s8 symmetric per
 * output channel, products summed in int32. Three paths give the same integers: AVX-512
 * VNNI (vpdpbusd, u8 x s8), AVX2 (u8 and s8 widened to s16, vpmaddwd: no saturation) and
 * portable C. The path follows kern_set_isa: "avx512" runs VNNI where the CPU has it (else
 * AVX2), "avx2" AVX2, "portable" plain C. */

/* Depth bound: |sum| <= 255 * 127 * K < 2^30, so a sum plus a folded bias (|bias| <= 2^30)
 * stays inside int32. */
#define KERN_Q8_MAX_K 32768
#define KERN_Q8_MAX_BIAS (1 << 30)

/* The path int8 products take now: "vnni", "avx2" or "portable". */
const char *kern_q8_path(void);
/* Bytes of A's row stride the products need at least: K rounded up to 4. */
int kern_q8_kp(int K);
/* Bytes of packed weights for N output channels of depth K (every path's layout). */
size_t kern_q8_pack_size(int N, int K);
/* Packs w [N, K] (row stride ldw) into dst (kern_q8_pack_size bytes, 64-byte aligned):
 * the row-major copy the portable path reads and the panels of the SIMD paths. */
void kern_q8_pack(int N, int K, const int8_t *w, ptrdiff_t ldw, void *dst);
/* The row-major [N, kern_q8_kp(K)] weights inside a packed buffer. */
const int8_t *kern_q8_rows(const void *packed);
/* Bytes of workspace one kern_q8_gemm call needs (AVX2 packs A's rows as s16 pairs). */
size_t kern_q8_gemm_ws(int K);
/* C[m*ldc + n] = sum_{k<K} A[m*lda + k] * W[n, k] (int32) for m < M, n < N, with W packed by
 * kern_q8_pack. A's rows hold lda >= kern_q8_kp(K) bytes (those past K are read and
 * multiplied by zero weights). ws: kern_q8_gemm_ws(K) bytes, 64-byte aligned. Calling
 * thread only; the integers are the same on every path. */
void kern_q8_gemm(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const void *packed,
                  int32_t *C, ptrdiff_t ldc, void *ws);

/* Per-channel requantisation of int32 sums to u8: q = clamp(zp + round((acc + bias[n]) *
 * mult[n] / 2^shift[n]), lo, 255), with mult in [2^30, 2^31) (or 0) and shift in 0..62:
 * an integer multiply and a rounding (half up) shift, no float. */
typedef struct kern_q8_requant {
    const int32_t *bias, *mult, *shift; /* [N] */
    int zp, lo;      /* output zero point; lowest output (zp with a fused ReLU, else 0) */
    float scale;     /* output scale: dequantised value = scale * (q - zp) */
} kern_q8_requant;
/* Splits a positive real multiplier into mult (Q31, [2^30, 2^31)) and a right shift. */
void kern_q8_multiplier(double real, int32_t *mult, int32_t *shift);
/* The requantised u8 of one sum (the reference the paths and exports follow). */
static inline int kern_q8_requant_one(int32_t acc, int32_t bias, int32_t mult, int32_t shift,
                                      int zp, int lo)
{
    int64_t t = (int64_t)acc + bias;
    t = t > INT32_MAX ? INT32_MAX : t < INT32_MIN ? INT32_MIN : t;
    int64_t p = t * mult;
    if (shift > 0) /* >> of a negative int64 is an arithmetic shift on every compiler used */
        p = (p + ((int64_t)1 << (shift - 1))) >> shift;
    int64_t q = zp + (p > 1024 ? 1024 : p < -1024 ? -1024 : p);
    return q < lo ? lo : q > 255 ? 255 : (int)q;
}
/* For m < M, n < N: q = requant(C[m*ldc + n]); writes qout[m*ldc + n] = q when qout is not
 * NULL and out[m*som + n*son] = scale * (q - zp) when out is not NULL. */
void kern_q8_requantize(const kern_q8_requant *r, int M, int N, const int32_t *C, ptrdiff_t ldc,
                        uint8_t *qout, float *out, ptrdiff_t som, ptrdiff_t son);
/* q[i] = clamp(rint(x[i] * inv_scale) + zp, 0, 255) (rounding half to even; NaN gives 0):
 * the same bytes on every path. */
void kern_q8_quantize(const float *x, size_t n, float inv_scale, int zp, uint8_t *q);
/* row [cols, ldr] (u8) = patches of im [channels, image...] (u8), positions outside the
 * image reading pad (the zero point): kern_im2row's layout, one patch per row. */
void kern_q8_im2row(const kern_conv_shape *s, const uint8_t *im, uint8_t pad, uint8_t *row,
                    ptrdiff_t ldr);

/* ---- int8 direct convolution, pixels in the vector lanes (VNNI path) ----
 * A stride-1 2-D convolution of one image reads its u8 image padded with the zero point to
 * Hp x Wp = (OH + (KH-1)D) x (OW + (KW-1)D), so that output pixel (y, x) of the "wide" row
 * p = y * Wp + x reads tap k at img[p + off[k]] with off[k] = (c * Hp + kh D) * Wp + kw D:
 * each tap's pixels are contiguous. Sums are computed for every wide position (the
 * (KW-1)D extra columns of each row are computed and dropped). With stride s > 1 the padded
 * image is split into its s x s phases, phase (a, b) holding the pixels (s y + a, s x + b):
 * tap (kh, kw) of output (y, x) is then pixel (y + kh D / s, x + kw D / s) of phase
 * (kh D % s, kw D % s), again a contiguous run per tap (Hp x Wp is then a phase's size). */
typedef struct kern_q8_conv_plan {
    int C, H, W, N, KH, KW, OH, OW, pad_h, pad_w, dil_h, dil_w, K, Kp;
    int Hp, Wp;        /* of each phase image */
    int sh, sw;        /* strides */
    int nph;           /* phase images (1 at stride 1) */
    signed char ph[16]; /* phase (a, b) -> its image, a * sw + b, or -1 if no tap reads it */
    size_t qoff;       /* strided: offset in the image bytes of the quantised input */
    size_t span;       /* OH * Wp wide positions */
    size_t spanp;      /* span rounded up to 64: the sums' row stride */
    size_t img_bytes;  /* padded image with read slack */
    size_t panel_bytes, sums_bytes;
} kern_q8_conv_plan;
/* Whether the direct route fits the shape (2-D, strides 1 to 4, no flip), and its plan. It runs
 * on the VNNI and AVX2 paths (kern_q8_conv_direct_runs()). */
int kern_q8_conv_direct_runs(void);
int kern_q8_conv_direct_plan(const kern_conv_shape *s, int N, kern_q8_conv_plan *p);
/* Fills off[0..Kp) (taps past K repeat tap 0: their weights are zero). */
void kern_q8_conv_offsets(const kern_q8_conv_plan *p, int32_t *off);
/* One image: x [C, H, W] floats -> out [N, OH, OW] floats, through u8 quantisation (inv_scale,
 * zp), int32 sums with the packed weights and requantisation r. ws: img_bytes + panel_bytes
 * + sums_bytes, 64-byte aligned. The same integers as im2row + kern_q8_gemm. */
void kern_q8_conv_direct(const kern_q8_conv_plan *p, const int32_t *off, const float *x,
                         float inv_scale, int zp, const void *packed, const kern_q8_requant *r,
                         float *out, void *ws);

/* The padded image and the int32 sums of kern_q8_conv_direct, returned inside ws (row n of
 * the sums at n * spanp, output pixel (y, x) at y * Wp + x). The image comes as floats x
 * (quantised with inv_scale, zp) or, when xq is not NULL, as bytes xq [C, H, W] already. */
int32_t *kern_q8_conv_direct_sums(const kern_q8_conv_plan *p, const int32_t *off, const float *x,
                                  const uint8_t *xq, float inv_scale, int zp,
                                  const void *packed, void *ws);
/* The float outputs out [N, OH, OW] of those sums (kern_q8_conv_direct's last step). */
void kern_q8_conv_direct_requant(const kern_q8_conv_plan *p, const int32_t *sums,
                                 const kern_q8_requant *r, float *out);

/* One int8 layer's output as the next int8 layer's input bytes, with a max pool between
 * (kh = kw = sh = sw = 1, OH x OW the output: none). The requantisation and the bytes'
 * float values are nondecreasing in the sum, so the max of requantised windows is the
 * requantisation of the window's largest sum: pooling the sums gives the same bytes. */
typedef struct kern_q8_pool {
    int kh, kw, sh, sw, OH, OW;
} kern_q8_pool;
/* out[n, py, px] = lut[requant(max of S[n*sn + y*sy + x*sx] over the window of (py, px))]
 * for n < N: lut maps this layer's output bytes to the next layer's input bytes (the
 * dequantisation, any ReLU and the next quantisation, computed once; NULL: the identity).
 * Every path. */
/* o[i] = lut[o[i]] for i < n, on the active path (the table step of kern_q8_requant_pool). */
void kern_q8_lut(const uint8_t *lut, uint8_t *o, size_t n);
void kern_q8_requant_pool(const kern_q8_requant *r, int N, const int32_t *S, ptrdiff_t sn,
                          ptrdiff_t sy, ptrdiff_t sx, const kern_q8_pool *pl, const uint8_t *lut,
                          uint8_t *out);

/* ---- int8 residual add -------------------------------------------------------------------
 * Two u8 tensors, each with its own scale and zero point, added into a third scale:
 * y = s_a (a - z_a) + s_b (b - z_b), q_y = z_y + y / s_y, with the real multipliers
 * s_a / s_y and s_b / s_y written as ma * 2^-shift and mb * 2^-shift (one shift, the larger
 * multiplier in [2^20, 2^21)). Integers only, 32-bit: |(a - z_a) ma + (b - z_b) mb| < 2^30
 * and the rounding term is at most 2^30, so nothing overflows on any path. */
typedef struct kern_q8_addp {
    int za, zb, zy, lo; /* zero points; lowest output (zy with a fused ReLU, else 0) */
    int32_t ma, mb;     /* 0 .. 2^21 - 1 */
    int shift;          /* 0 .. 31 */
} kern_q8_addp;
#define KERN_Q8_ADD_MULT (1 << 21)
/* ma, mb and shift of the real multipliers ra, rb (positive, finite); -1 when the larger is
 * 2^21 or more (no shift fits), else 0. */
int kern_q8_add_multipliers(double ra, double rb, int32_t *ma, int32_t *mb, int *shift);
/* The sum's byte (the reference every path and the exported C follow). */
static inline int kern_q8_add_one(int a, int b, const kern_q8_addp *p)
{
    int32_t t = (int32_t)(a - p->za) * p->ma + (int32_t)(b - p->zb) * p->mb;
    if (p->shift > 0) /* >> of a negative int32 is an arithmetic shift on every compiler used */
        t = (t + ((int32_t)1 << (p->shift - 1))) >> p->shift;
    int32_t q = p->zy + t;
    return q < p->lo ? p->lo : q > 255 ? 255 : (int)q;
}
/* out[i] = kern_q8_add_one(a[i], b[i]) for i < n, on the active path (out may be a or b). */
void kern_q8_add(const kern_q8_addp *p, const uint8_t *a, const uint8_t *b, size_t n,
                 uint8_t *out);

/* Path internals (src/kernels/q8*.c only). */
void kern_q8_conv_sums_avx512vnni(const kern_q8_conv_plan *p, const int32_t *off, const uint8_t *img,
                            const int8_t *w, uint8_t *panel, int32_t *sums);
void kern_q8_requant_row_avx512(const int32_t *c, int n, const int32_t *bias,
                                const int32_t *mult, const int32_t *shift, int zp, int lo,
                                float scale, float *out, uint8_t *q8);
void kern_q8_conv_sums_avx2(const kern_q8_conv_plan *p, const int32_t *off, const uint8_t *img,
                            const int16_t *w16, int16_t *panel, int32_t *sums);
/* The requantisers write floats out[i] = scale * (q - zp), or with q8 not NULL the bytes q8[i]. */
void kern_q8_requant_run_avx2(const int32_t *c, int n, int32_t bias, int32_t mult, int32_t shift,
                              int zp, int lo, float scale, float *out, uint8_t *q8);
void kern_q8_requant_row_avx2(const int32_t *c, int n, const int32_t *bias, const int32_t *mult,
                              const int32_t *shift, int zp, int lo, float scale, float *out,
                              uint8_t *q8);
void kern_q8_requant_run_avx512(const int32_t *c, int n, int32_t bias, int32_t mult,
                                int32_t shift, int zp, int lo, float scale, float *out,
                                uint8_t *q8);
void kern_q8_pool2_requant_avx512(const int32_t *s, ptrdiff_t sy, int OH, int OW,
                                  int32_t bias, int32_t mult, int32_t shift, int zp, int lo,
                                  uint8_t *q8);
void kern_q8_gemm_avx512vnni(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const int8_t *w,
                       int32_t *C, ptrdiff_t ldc);
void kern_q8_gemm_avx2(int M, int N, int K, const uint8_t *A, ptrdiff_t lda, const int16_t *w,
                       int32_t *C, ptrdiff_t ldc, uint32_t *ws);
void kern_q8_quantize_avx512(const float *x, size_t n, float inv_scale, int zp, uint8_t *q);
void kern_q8_lut_avx512vbmi(const uint8_t *lut, uint8_t *o, size_t n);
void kern_q8_add_avx512(const kern_q8_addp *p, const uint8_t *a, const uint8_t *b, size_t n,
                        uint8_t *out);
void kern_q8_add_avx2(const kern_q8_addp *p, const uint8_t *a, const uint8_t *b, size_t n,
                      uint8_t *out);
#define KERN_Q8_VNNI_NR 32 /* channels of a VNNI panel */
#define KERN_Q8_AVX2_NR 16 /* channels of an AVX2 panel */
#define KERN_Q8_AVX2_MR 6  /* rows of an AVX2 tile */

#endif
