/* The instruction-set choice (src/kernels/isa.c): one detection, NERVE_ISA as a ceiling for
 * the process, kern_set_isa for tests. `make check-isa` runs the kernel and operator tests
 * once per available path; these check the choice itself. */
#include "test.h"

#include "../src/kernels/kernels.h"
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(isa_forced_choice_is_what_every_route_reads)
{
    const char *before = kern_isa_name();
    CHECK(kern_set_isa("portable"));
    CHECK(kern_isa_active() == KERN_ISA_PORTABLE);
    CHECK(strcmp(nerve_isa_name(), "portable") == 0);
    /* with the portable path forced, no vector route is offered */
    CHECK(!kern_conv_direct_vector());
    CHECK(!kern_conv_direct_fits(3, 5, 5));
    CHECK(!kern_conv_direct_kvec_fits(6, 16, 5, 5));
    CHECK(!kern_conv_direct_adjoint_fits(6, 16, 5, 5, 2, 2));
    CHECK(!kern_set_isa("no-such-path"));
    CHECK(!kern_set_isa(NULL));
    CHECK(kern_isa_active() == KERN_ISA_PORTABLE);
    for (int i = 0; i < KERN_ISA_COUNT; i++) {
        int ok = nerve_set_isa(kern_isa_label((kern_isa)i));
        CHECK_MSG(ok == kern_isa_available((kern_isa)i), "%s: set %d, available %d",
                  kern_isa_label((kern_isa)i), ok, kern_isa_available((kern_isa)i));
        if (ok)
            CHECK((int)kern_isa_active() == i);
    }
    CHECK(kern_isa_available(KERN_ISA_PORTABLE));
#if !defined(__x86_64__)
    CHECK(!kern_isa_available(KERN_ISA_AVX2) && !kern_isa_available(KERN_ISA_AVX512));
#endif
#if !defined(__aarch64__)
    CHECK(!kern_isa_available(KERN_ISA_NEON));
#endif
    CHECK(nerve_set_isa("auto"));
    CHECK_MSG(strcmp(kern_isa_name(), before) == 0, "auto gave %s, the default was %s",
              kern_isa_name(), before);
}

/* NERVE_ISA, read by a fresh process: the CLI reports the path it runs. */
TEST(isa_env_var_sets_the_path_and_reports_bad_values)
{
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "NERVE_ISA=portable %s version", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(strstr(out, "kernel instruction set: portable"), "%s", out);
    CHECK_MSG(!strstr(out, "NERVE_ISA=portable "), "no warning expected: %s", out);

    snprintf(cmd, sizeof cmd, "NERVE_ISA=sse9 %s version", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(strstr(out, "NERVE_ISA=sse9 names no instruction set"), "%s", out);
    /* a bad value falls back to the CPU's best */
    static const kern_isa best_first[] = {KERN_ISA_AVX512, KERN_ISA_AVX2, KERN_ISA_NEON};
    const char *best = "portable";
    for (size_t k = sizeof best_first / sizeof *best_first; k-- > 0;)
        if (kern_isa_available(best_first[k]))
            best = kern_isa_label(best_first[k]);
    char want[64];
    snprintf(want, sizeof want, "kernel instruction set: %s ", best);
    if (!getenv("NERVE_ISA")) /* (here NERVE_ISA does not narrow what is available) */
        CHECK_MSG(strstr(out, want), "want '%s' in %s", want, out);

    /* a path this CPU lacks: named as such, never run */
    const char *absent = kern_isa_available(KERN_ISA_NEON) || getenv("NERVE_ISA") ? NULL : "neon";
    if (absent) {
        snprintf(cmd, sizeof cmd, "NERVE_ISA=%s %s version", absent, test_nerve());
        CHECK(test_run(cmd, out, sizeof out) == 0);
        CHECK_MSG(strstr(out, "is not available on this CPU"), "%s", out);
    }
}

/* ---- every vector path against the portable one ---------------------------------------- */

static float *pseudo_floats(size_t n, unsigned salt)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = test_pseudo(i, salt);
    return v;
}

/* Largest |a - b| over the largest |b|. */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e != e)
            return e;
        d = e > d ? e : d;
        m = fabs((double)b[i]) > m ? fabs((double)b[i]) : m;
    }
    return d / (m > 0 ? m : 1);
}

/* GEMM (every transpose, with beta), a Winograd and a direct convolution on `isa` and on the
 * portable path: equal within float rounding. Prints the differences (the figures docs/arm.md
 * quotes come from here, run under qemu-aarch64). */
TEST(isa_vector_paths_agree_with_the_portable_path)
{
    const char *before = kern_isa_name();
    enum { M = 37, N = 53, K = 71 };
    float *A = pseudo_floats((size_t)M * K, 1), *B = pseudo_floats((size_t)K * N, 2);
    float *C0 = pseudo_floats((size_t)M * N, 3);
    float *want = malloc(sizeof(float) * M * N), *got = malloc(sizeof(float) * M * N);
    /* Winograd: 2 images of 16 x 12 x 12, 24 output channels, padding 1 */
    enum { WN = 2, WC = 16, WH = 12, WW = 12, WK = 24 };
    size_t nin = (size_t)WN * WC * WH * WW, nout = (size_t)WN * WK * WH * WW;
    float *in = pseudo_floats(nin, 4), *w = pseudo_floats((size_t)WK * WC * 9, 5);
    float *bias = pseudo_floats(WK, 6);
    float *wwant = malloc(sizeof(float) * nout), *wgot = malloc(sizeof(float) * nout);
    size_t wsn = kern_winograd_workspace(WN, WC, WH, WW, WK, 1, 1, kern_threads());
    float *ws = malloc(sizeof(float) * (wsn ? wsn : 1));
    CHECK(A && B && C0 && want && got && in && w && bias && wwant && wgot && ws);
    for (int i = 1; i < KERN_ISA_COUNT && !test_failed(); i++) {
        if (!kern_isa_available((kern_isa)i))
            continue;
        double gemm_worst = 0;
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            const char *order[2] = {"portable", kern_isa_label((kern_isa)i)};
            for (int p = 0; p < 2; p++) {
                float *C = p ? got : want;
                memcpy(C, C0, sizeof(float) * M * N);
                CHECK(kern_set_isa(order[p]));
                kern_sgemm(ta, tb, M, N, K, 0.75f, A, ta ? M : K, B, tb ? K : N, 0.5f, C, N);
            }
            double e = max_rel_diff(got, want, (size_t)M * N);
            gemm_worst = e > gemm_worst || e != e ? e : gemm_worst;
        }
        CHECK(kern_set_isa("portable"));
        kern_winograd_conv3x3(WN, WC, WH, WW, WK, 1, 1, in, w, bias, wwant, ws);
        CHECK(kern_set_isa(kern_isa_label((kern_isa)i)));
        kern_winograd_conv3x3(WN, WC, WH, WW, WK, 1, 1, in, w, bias, wgot, ws);
        double wino = max_rel_diff(wgot, wwant, nout);
        /* the direct route (AVX-512, NEON): 6 -> 20 channels, 5x5, padding 2, 2 images of
         * 13 x 14 (blocks of channels and columns off the vector widths); portable elsewhere */
        enum { DC = 6, DK = 20, DH = 13, DW = 14 };
        size_t dn = (size_t)WN * DK * DH * DW;
        float *dwant = malloc(sizeof(float) * dn), *dgot = malloc(sizeof(float) * dn);
        CHECK(dwant && dgot);
        CHECK(kern_set_isa("portable"));
        kern_conv_direct(WN, DC, DH, DW, DK, 5, 5, 2, 2, DH, DW, in, w, bias, dwant);
        CHECK(kern_set_isa(kern_isa_label((kern_isa)i)));
        kern_conv_direct(WN, DC, DH, DW, DK, 5, 5, 2, 2, DH, DW, in, w, bias, dgot);
        double direct = max_rel_diff(dgot, dwant, dn);
        free(dwant), free(dgot);
        printf("    %s vs portable: GEMM max difference %.2g, Winograd %.2g, direct %.2g (of the "
               "largest output)\n",
               kern_isa_label((kern_isa)i), gemm_worst, wino, direct);
        /* 1 + 150 products in float, fused or not */
        CHECK_MSG(direct <= 2e-6, "%s: the direct convolution differs from portable by %g",
                  kern_isa_label((kern_isa)i), direct);
        /* sums of 71 products (GEMM), 144 transformed products (Winograd) in float */
        CHECK_MSG(gemm_worst <= 2e-6, "%s: GEMM differs from portable by %g", kern_isa_label((kern_isa)i),
                  gemm_worst);
        CHECK_MSG(wino <= 2e-5, "%s: Winograd differs from portable by %g", kern_isa_label((kern_isa)i),
                  wino);
    }
    CHECK(kern_set_isa(before) || kern_set_isa("auto"));
    free(A), free(B), free(C0), free(want), free(got);
    free(in), free(w), free(bias), free(wwant), free(wgot), free(ws);
}
