/* SGEMM driver: GotoBLAS-style cache blocking around register-tiled micro-kernels.
 *
 * Each thread owns a rectangle of C and runs, with its own packing buffers:
 *   for ic over M step MC            A block  [mc x kc], MR-row panels   (L3)
 *     for pc over K step KC          (first K block applies beta, later ones add)
 *       pack A block
 *       for jc over N step NC        B block  [kc x nc], NR-column panels (L2)
 *         pack B block (skipped for few A panels and untransposed B: read in place)
 *         for each row panel (<= MR rows)  A micro-panel [MR x kc] stays in L1
 *           for jr over nc step NR   micro-kernel on a [MR x NR] tile of C
 * Every element of C sees the same K blocking and the same FMA order whatever rectangle
 * it falls in, so results do not depend on the thread count. */
#include "kernels.h"

#include "../core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifndef GEMM_KC
#define GEMM_KC 512  /* A micro-panel MR x KC floats fits L1 */
#endif
#ifndef GEMM_NC
#define GEMM_NC 256  /* B block KC x NC floats fits half of L2 */
#endif
#ifndef GEMM_MC
#define GEMM_MC 1536 /* A block MC x KC floats lives in L3 */
#endif
/* Up to this many A panels per block, an untransposed B is read in place, not packed; up to
 * GEMM_CACHED_PANELS when the K block of B's rows spans at most GEMM_CACHED_B_BYTES (B then
 * stays in L2 across the panels and packing it would be pure overhead). */
#define GEMM_IN_PLACE_PANELS 6
#define GEMM_CACHED_PANELS 24
#define GEMM_CACHED_B_BYTES (256 << 10)
/* A pack that transposes costs about this many plain copies of the same size. */
#define GEMM_TRANSPOSE_COST 3
/* Products below this many multiply-adds per thread are not worth a fork/join. */
#define GEMM_MIN_FMAS_PER_THREAD (1 << 20)

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} gemm_args;

static int imin(int a, int b) { return a < b ? a : b; }
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ---- fallbacks for degenerate cases and allocation failure ------------------------- */

/* C = beta * C over [M,N] (beta == 0 writes zeros). */
static void scale_c(float *C, int ldc, int M, int N, float beta)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++)
                c[j] *= beta;
    }
}

/* Unblocked loop; used only when the packing buffers cannot be allocated. */
static void gemm_unpacked(const gemm_args *g)
{
    scale_c(g->C, g->ldc, g->M, g->N, g->beta);
    for (int i = 0; i < g->M; i++) {
        float *c = g->C + (size_t)i * g->ldc;
        for (int k = 0; k < g->K; k++) {
            float a = g->alpha * (g->ta ? g->A[(size_t)k * g->lda + i] : g->A[(size_t)i * g->lda + k]);
            for (int j = 0; j < g->N; j++)
                c[j] += a * (g->tb ? g->B[(size_t)j * g->ldb + k] : g->B[(size_t)k * g->ldb + j]);
        }
    }
}

/* ---- packing ------------------------------------------------------------------------ */

/* dst[k*P + r] = src[k*ld + r] for r < w, then zero rows w..P-1 so that full-width
 * kernels never meet stale values. */
static void pack_copy(int kc, int w, const float *src, ptrdiff_t ld, int P, float *dst)
{
    for (int k = 0; k < kc; k++)
        memcpy(dst + (size_t)k * P, src + k * ld, (size_t)w * sizeof(float));
}

static void zero_pad(int kc, int w, int P, float *dst)
{
    if (w < P)
        for (int k = 0; k < kc; k++)
            memset(dst + (size_t)k * P + w, 0, (size_t)(P - w) * sizeof(float));
}

/* Row panels of an mc-row block: as many as MR-row tiles need, with heights differing by at
 * most one, so that no panel is a thin straggler (M = 64 with MR = 12 runs 6 panels of 10-11
 * rows instead of 5 x 12 + 4). Panel p covers rows [panel_start(p), panel_start(p + 1)). */
static int panel_count(int mc, int MR) { return (mc + MR - 1) / MR; }
static int panel_start(int p, int np, int mc) { return (int)((long long)p * mc / np); }

/* Packs op(A)[i0:i0+mc, k0:k0+kc] as row panels, panel p at dst + p*MR*kc. */
static void pack_a(const kern_gemm_impl *im, const gemm_args *g, int i0, int mc, int k0, int kc,
                   float *dst)
{
    int P = im->mr, np = panel_count(mc, P);
    for (int p = 0; p < np; p++, dst += (size_t)P * kc) {
        int r0 = panel_start(p, np, mc), w = panel_start(p + 1, np, mc) - r0, i = i0 + r0;
        if (g->ta)
            pack_copy(kc, w, g->A + (size_t)k0 * g->lda + i, g->lda, P, dst);
        else
            im->pack_t(kc, w, g->A + (size_t)i * g->lda + k0, g->lda, P, dst);
        zero_pad(kc, w, P, dst);
    }
}

/* Packs op(B)[k0:k0+kc, j0:j0+nc] as NR-column panels, panel p at dst + p*NR*kc. */
static void pack_b(const kern_gemm_impl *im, const gemm_args *g, int k0, int kc, int j0, int nc,
                   float *dst)
{
    int P = im->nr;
    for (int p = 0; p < nc; p += P, dst += (size_t)P * kc) {
        int w = imin(P, nc - p), j = j0 + p;
        if (g->tb)
            im->pack_t(kc, w, g->B + (size_t)j * g->ldb + k0, g->ldb, P, dst);
        else
            pack_copy(kc, w, g->B + (size_t)k0 * g->ldb + j, g->ldb, P, dst);
        zero_pad(kc, w, P, dst);
    }
}

/* ---- the blocked product on one rectangle of C ----------------------------------------- */

typedef struct {
    int mc, kc, nc;    /* block sizes, clipped to the problem */
    size_t a_floats;   /* per-thread packed A block */
    size_t b_floats;   /* per-thread packed B block */
} gemm_blocking;

static gemm_blocking blocking_for(const kern_gemm_impl *im, int M, int N, int K)
{
    gemm_blocking b;
    int mc_max = GEMM_MC / im->mr * im->mr, nc_max = GEMM_NC / im->nr * im->nr;
    b.kc = (K + (K + GEMM_KC - 1) / GEMM_KC - 1) / ((K + GEMM_KC - 1) / GEMM_KC); /* balanced */
    b.mc = imin(M, mc_max);
    b.nc = imin(N, nc_max);
    b.a_floats = round16((size_t)((b.mc + im->mr - 1) / im->mr * im->mr) * b.kc);
    b.b_floats = round16((size_t)((b.nc + im->nr - 1) / im->nr * im->nr) * b.kc);
    return b;
}

/* Multiplies the kc-deep slice of one packed A block by C's columns [n0,n1). */
static void block_times_b(const kern_gemm_impl *im, const gemm_args *g, const float *pa, int i0,
                          int mc, int k0, int kc, int n0, int n1, int nc_max, float beta,
                          float *pb)
{
    /* With few A panels, B is streamed only a few times: reading it in place (prefetched
     * by the kernel) overlaps the traffic with the FMAs, while packing it would not. */
    int cached = (size_t)kc * g->ldb * sizeof(float) <= GEMM_CACHED_B_BYTES;
    int in_place = !g->tb && (mc <= GEMM_IN_PLACE_PANELS * im->mr ||
                              (cached && mc <= GEMM_CACHED_PANELS * im->mr));
    for (int jc = n0; jc < n1; jc += nc_max) {
        int nc = imin(nc_max, n1 - jc);
        const float *b = g->B + (size_t)k0 * g->ldb + jc;
        ptrdiff_t ldb = g->ldb, b_step = 1;
        if (!in_place) {
            pack_b(im, g, k0, kc, jc, nc, pb);
            b = pb;
            ldb = im->nr;
            b_step = kc;
        }
        int np = panel_count(mc, im->mr);
        for (int p = 0; p < np; p++) {
            int r0 = panel_start(p, np, mc), mr = panel_start(p + 1, np, mc) - r0;
            const float *a = pa + (size_t)p * im->mr * kc;
            float *c = g->C + (size_t)(i0 + r0) * g->ldc + jc;
            for (int jr = 0; jr < nc; jr += im->nr)
                im->micro(kc, a, b + jr * b_step, ldb, c + jr, g->ldc, mr, imin(im->nr, nc - jr),
                          g->alpha, beta);
        }
    }
}

static void gemm_rect(const kern_gemm_impl *im, const gemm_args *g, const gemm_blocking *bl,
                      int m0, int m1, int n0, int n1, float *pa, float *pb)
{
    for (int ic = m0; ic < m1; ic += bl->mc) {
        int mc = imin(bl->mc, m1 - ic);
        for (int pc = 0; pc < g->K; pc += bl->kc) {
            int kc = imin(bl->kc, g->K - pc);
            pack_a(im, g, ic, mc, pc, kc, pa);
            block_times_b(im, g, pa, ic, mc, pc, kc, n0, n1, bl->nc, pc == 0 ? g->beta : 1.0f,
                          pb);
        }
    }
}

/* ---- threads: a static grid of rectangles ------------------------------------------- */

/* Splits T threads into a tm x tn grid over (M, N) minimising the packing each thread
 * repeats (~ M/tm + N/tn, a transposing pack weighted as several copies), with at least
 * one register tile per rectangle. Ties split M: a thread then packs fewer A rows, and B
 * may be read in place. */
static void thread_grid(const kern_gemm_impl *im, const gemm_args *g, int T, int *tm, int *tn)
{
    int M = g->M, N = g->N, mt = (M + im->mr - 1) / im->mr, nt = (N + im->nr - 1) / im->nr;
    double wa = g->ta ? 1 : GEMM_TRANSPOSE_COST, wb = g->tb ? GEMM_TRANSPOSE_COST : 1;
    double best = -1;
    *tm = *tn = 1;
    for (int a = 1; a <= T; a++) {
        if (T % a || a > mt || T / a > nt)
            continue;
        double cost = wa * M / a + wb * N / (T / a);
        if (best < 0 || cost <= best) {
            best = cost;
            *tm = a;
            *tn = T / a;
        }
    }
}

/* Bounds of part `i` of `parts` over `tiles` tiles of size `t`, clipped to `len`. */
static int part_start(int i, int parts, int len, int t)
{
    int tiles = (len + t - 1) / t;
    return imin(len, (int)((long long)tiles * i / parts) * t);
}

static void gemm_thread(const kern_gemm_impl *im, const gemm_args *g, const gemm_blocking *bl,
                        int id, int nthreads, float *ws)
{
    int tm, tn;
    thread_grid(im, g, nthreads, &tm, &tn);
    if (id >= tm * tn)
        return;
    int pm = id / tn, pn = id % tn;
    float *pa = ws + (size_t)id * (bl->a_floats + bl->b_floats), *pb = pa + bl->a_floats;
    gemm_rect(im, g, bl, part_start(pm, tm, g->M, im->mr), part_start(pm + 1, tm, g->M, im->mr),
              part_start(pn, tn, g->N, im->nr), part_start(pn + 1, tn, g->N, im->nr), pa, pb);
}

typedef struct {
    const kern_gemm_impl *im;
    const gemm_args *g;
    const gemm_blocking *bl;
    float *ws; /* room for the packing buffers of every thread */
} gemm_job;

static void gemm_task(void *p, int t, int T)
{
    gemm_job *j = p;
    gemm_thread(j->im, j->g, j->bl, t, T, j->ws);
}

static int threads_for(int M, int N, int K)
{
    double fmas = (double)M * N * K;
    int T = kern_threads();
    if (fmas < (double)T * GEMM_MIN_FMAS_PER_THREAD)
        T = (int)(fmas / GEMM_MIN_FMAS_PER_THREAD);
    return T < 1 ? 1 : T;
}

/* ---- small M: no packing, threads split the columns ------------------------------------ */

typedef struct {
    const kern_gemm_impl *im;
    const gemm_args *g;
} small_job;

static void small_task(void *p, int t, int T)
{
    small_job *j = p;
    const gemm_args *g = j->g;
    int n0 = part_start(t, T, g->N, 16), n1 = part_start(t + 1, T, g->N, 16);
    if (n0 < n1)
        j->im->small_m(g->tb, g->M, n0, n1, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta,
                       g->C, g->ldc);
}

/* Batch-1 and other few-row products stream B once; packing it would cost more than the
 * product itself. */
static void gemm_small_m(const kern_gemm_impl *im, const gemm_args *g, int T)
{
    small_job job = {im, g};
    if (T == 1)
        small_task(&job, 0, 1);
    else
        kern_run(T, small_task, &job);
}

/* ---- per-thread packing workspace ------------------------------------------------------ */

/* Grown once per calling thread, then reused; freed when that thread exits. */
static _Thread_local float *ws_buf;
static _Thread_local size_t ws_cap;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_release(void *p)
{
    nerve_xfree_aligned(p);
    ws_buf = NULL;
    ws_cap = 0;
}
static void ws_make_key(void) { (void)pthread_key_create(&ws_key, ws_release); }

/* The most one thread's product can need: the largest A and B blocks. */
#define WS_ONE_THREAD (round16((size_t)GEMM_MC * GEMM_KC) + round16((size_t)GEMM_NC * GEMM_KC))

/* At least WS_ONE_THREAD, so that a thread's workspace does not depend on which parts of
 * a run it happened to take (the pool hands parts to whichever thread is awake): after its
 * first product, a thread grows it again only for a product it splits itself. Pool workers
 * take theirs when they start (kern_gemm_thread_init). */
static float *workspace(size_t floats)
{
    if (floats <= ws_cap)
        return ws_buf;
    if (floats < WS_ONE_THREAD)
        floats = WS_ONE_THREAD;
    pthread_once(&ws_once, ws_make_key);
    nerve_xfree_aligned(ws_buf);
    ws_buf = nerve_xalloc_floats(floats);
    ws_cap = ws_buf ? floats : 0;
    (void)pthread_setspecific(ws_key, ws_buf);
    return ws_buf;
}

void kern_gemm_thread_init(void) { (void)workspace(WS_ONE_THREAD); }

/* ---- ISA dispatch: the micro-kernel of the path isa.c chose ----------------------------- */

static const kern_gemm_impl *current_impl(void)
{
    switch (kern_isa_active()) {
#if defined(__x86_64__) && defined(__GNUC__)
    case KERN_ISA_AVX512:
        return &kern_gemm_avx512_impl;
    case KERN_ISA_AVX2:
        return &kern_gemm_avx2_impl;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
    case KERN_ISA_NEON:
        return &kern_gemm_neon_impl;
#endif
    default:
        return &kern_gemm_portable_impl;
    }
}

/* ---- entry points ------------------------------------------------------------------- */

int kern_sgemm_threads(int M, int N, int K) { return threads_for(M, N, K); }

/* The product on at most `max_threads` threads (the size rule may choose fewer). */
static void sgemm_on(int max_threads, int trans_a, int trans_b, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C,
                     int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    gemm_args g = {trans_a != 0, trans_b != 0, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    const kern_gemm_impl *im = current_impl();
    gemm_blocking bl = blocking_for(im, M, N, K);
    int T = imin(threads_for(M, N, K), max_threads);
    /* Grown even when the small-M path will not use it: whether a call allocates then
     * depends on the shapes seen so far, not on the kernel path taken. */
    float *ws = workspace((size_t)T * (bl.a_floats + bl.b_floats));
    if (M <= KERN_GEMM_SMALL_M && !g.ta && im->small_m) {
        gemm_small_m(im, &g, T);
        return;
    }
    if (!ws) {
        gemm_unpacked(&g);
        return;
    }
    gemm_job job = {im, &g, &bl, ws};
    if (T == 1)
        gemm_task(&job, 0, 1);
    else
        kern_run(T, gemm_task, &job);
}

void kern_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    /* inside a task the product runs on the calling thread: its workspace is then one
     * thread's, whichever thread took the task */
    sgemm_on(kern_in_task() ? 1 : kern_threads(), trans_a, trans_b, M, N, K, alpha, A, lda, B,
             ldb, beta, C, ldc);
}

void kern_sgemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc)
{
    sgemm_on(1, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
