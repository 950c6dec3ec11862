/* NEON micro-kernel for aarch64: an 8 x 12 tile of C held in 24 q-register accumulators
 * (three vectors of 4 per row). Per k: one 8-float column of the packed A panel (two loads)
 * and one 12-float row of B (three loads) feed 24 fused multiply-adds by lane. Column edges
 * (nr < 12) read B through a zero-padded copy of its row, so that no load passes column nr
 * (B may be the caller's matrix, read in place). Only on aarch64; isa.c chooses it. */
#include "kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON)

#include <arm_neon.h>
#include <string.h>

#define MR 8
#define NR 12

/* acc[r][v] (+)= a[k*MR + r] * b[k][4v .. 4v+3] over k < kc; b rows ldb apart. */
static inline __attribute__((always_inline)) void tile_full(int kc, const float *a,
                                                            const float *b, ptrdiff_t ldb,
                                                            float32x4_t acc[MR][3])
{
    for (int k = 0; k < kc; k++, a += MR, b += ldb) {
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
#define ROW(r, av, lane)                                                                   \
    acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, av, lane);                                  \
    acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, av, lane);                                  \
    acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, av, lane);
        ROW(0, a0, 0) ROW(1, a0, 1) ROW(2, a0, 2) ROW(3, a0, 3)
        ROW(4, a1, 0) ROW(5, a1, 1) ROW(6, a1, 2) ROW(7, a1, 3)
#undef ROW
    }
}

static void micro_neon(int kc, const float *a, const float *b, ptrdiff_t ldb, float *c,
                       ptrdiff_t ldc, int mr, int nr, float alpha, float beta)
{
    float32x4_t acc[MR][3];
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = vdupq_n_f32(0.0f);
    if (nr == NR)
        tile_full(kc, a, b, ldb, acc);
    else {
        /* The same sums, B's rows copied into a zero-padded strip a few rows at a time. */
        enum { STRIP = 64 };
        float strip[STRIP * NR];
        for (int k0 = 0; k0 < kc; k0 += STRIP) {
            int kn = kc - k0 < STRIP ? kc - k0 : STRIP;
            memset(strip, 0, sizeof strip);
            for (int k = 0; k < kn; k++)
                memcpy(strip + k * NR, b + (k0 + k) * ldb, (size_t)nr * sizeof(float));
            tile_full(kn, a + (size_t)k0 * MR, strip, NR, acc);
        }
    }
    float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (nr == NR) {
            for (int v = 0; v < 3; v++) {
                float32x4_t y = vmulq_f32(acc[r][v], va);
                if (beta != 0.0f)
                    y = vaddq_f32(y, vmulq_f32(vb, vld1q_f32(cr + 4 * v)));
                vst1q_f32(cr + 4 * v, y);
            }
        } else {
            float t[NR];
            for (int v = 0; v < 3; v++)
                vst1q_f32(t + 4 * v, acc[r][v]);
            for (int j = 0; j < nr; j++)
                cr[j] = beta == 0.0f ? alpha * t[j] : alpha * t[j] + beta * cr[j];
        }
    }
}

const kern_gemm_impl kern_gemm_neon_impl = {"neon", MR, NR, micro_neon,
                                            kern_gemm_pack_t_portable, NULL};

#endif
