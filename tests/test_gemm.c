/* SGEMM: every kernel path against a double-precision reference over many shapes, strides,
 * transposes and alpha/beta; agreement between paths; no allocation in steady state;
 * bit-identical results run to run and across thread counts. */
#include "../src/kernels/kernels.h"
#include "test.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SANITIZE_ADDRESS__
#define SLOW_BUILD 1 /* sanitizers: keep the shapes small */
#else
#define SLOW_BUILD 0
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const paths[] = {"portable", "avx2", "avx512", "neon"};

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
} problem;

/* Strides are the minimum plus `pad`. */
static problem make_problem(int ta, int tb, int M, int N, int K, int pad, float alpha, float beta)
{
    problem p = {ta, tb, M, N, K, (ta ? M : K) + pad, (tb ? K : N) + pad, N + pad, alpha, beta};
    return p;
}

static size_t a_size(const problem *p) { return (size_t)(p->ta ? p->K : p->M) * p->lda; }
static size_t b_size(const problem *p) { return (size_t)(p->tb ? p->N : p->K) * p->ldb; }
static size_t c_size(const problem *p) { return (size_t)p->M * p->ldc; }

static float *random_floats(nerve_rng *r, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = nerve_rng_uniform(r) * 2 - 1;
    return x;
}

static float op_elem(const float *X, int ld, int trans, int r, int c)
{
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* Reference in double: want = alpha op(A) op(B) + beta C0 (beta == 0 ignores C0), and
 * bound = an error bound for float accumulation over K terms. */
static void reference(const problem *p, const float *A, const float *B, const float *C0,
                      double *want, double *bound)
{
    for (int i = 0; i < p->M; i++)
        for (int j = 0; j < p->N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < p->K; k++) {
                double t = (double)op_elem(A, p->lda, p->ta, i, k) * op_elem(B, p->ldb, p->tb, k, j);
                s += t;
                mag += fabs(t);
            }
            double c = p->beta == 0.0f ? 0 : (double)p->beta * C0[(size_t)i * p->ldc + j];
            want[(size_t)i * p->N + j] = p->alpha * s + c;
            bound[(size_t)i * p->N + j] =
                (p->K + 4) * FLT_EPSILON * (fabs(p->alpha) * mag + fabs(c)) + 1e-30;
        }
}

/* Runs the active path on p and checks it against the reference; C padding must be kept. */
static int check_problem(const problem *p, const float *A, const float *B, const float *C0,
                         const double *want, const double *bound, float *C)
{
    memcpy(C, C0, c_size(p) * sizeof *C);
    kern_sgemm(p->ta, p->tb, p->M, p->N, p->K, p->alpha, A, p->lda, B, p->ldb, p->beta, C, p->ldc);
    for (int i = 0; i < p->M; i++)
        for (int j = 0; j < p->ldc; j++) {
            size_t at = (size_t)i * p->ldc + j;
            int bad = j < p->N ? !(fabs(C[at] - want[(size_t)i * p->N + j]) <= bound[(size_t)i * p->N + j])
                               : memcmp(&C[at], &C0[at], sizeof *C) != 0;
            if (bad) {
                test_fail(__FILE__, __LINE__,
                          "%s ta=%d tb=%d M=%d N=%d K=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g: "
                          "C[%d][%d] = %.9g, want %.9g",
                          kern_isa_name(), p->ta, p->tb, p->M, p->N, p->K, p->lda, p->ldb, p->ldc,
                          p->alpha, p->beta, i, j, C[at], j < p->N ? want[(size_t)i * p->N + j] : C0[at]);
                return 0;
            }
        }
    return 1;
}

/* Every available path, every transpose combination and several alpha/beta on one shape.
 * With beta == 0, C starts as NaN to prove its contents are ignored. */
static int check_shape(int M, int N, int K, int pad, nerve_rng *r)
{
    static const float ab[][2] = {{1, 0}, {1, 1}, {-0.5f, 0.25f}, {2, 0}};
    for (int t = 0; t < 4; t++)
        for (size_t v = 0; v < ARRAY_LEN(ab); v++) {
            problem p = make_problem(t & 1, t >> 1, M, N, K, pad, ab[v][0], ab[v][1]);
            float *A = random_floats(r, a_size(&p)), *B = random_floats(r, b_size(&p));
            float *C0 = random_floats(r, c_size(&p)), *C = malloc(c_size(&p) * sizeof *C);
            double *want = malloc((size_t)M * N * sizeof *want), *bound = malloc((size_t)M * N * sizeof *bound);
            if (p.beta == 0.0f)
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++)
                        C0[(size_t)i * p.ldc + j] = NAN;
            reference(&p, A, B, C0, want, bound);
            int ok = 1;
            for (size_t k = 0; ok && k < ARRAY_LEN(paths); k++)
                if (kern_set_isa(paths[k]))
                    ok = check_problem(&p, A, B, C0, want, bound, C);
            free(A), free(B), free(C0), free(C), free(want), free(bound);
            if (!ok) {
                kern_set_isa("auto");
                return 0;
            }
        }
    kern_set_isa("auto");
    return 1;
}

TEST(gemm_paths_select_and_report)
{
    CHECK(kern_set_isa("portable"));
    CHECK(strcmp(kern_isa_name(), "portable") == 0);
    CHECK(!kern_set_isa("no-such-path"));
    CHECK(strcmp(kern_isa_name(), "portable") == 0);
    for (size_t k = 1; k < ARRAY_LEN(paths); k++)
        if (kern_set_isa(paths[k]))
            CHECK(strcmp(kern_isa_name(), paths[k]) == 0);
    CHECK(kern_set_isa("auto"));
    /* the default is the best path available (NERVE_ISA may rule some out) */
    static const kern_isa best_first[] = {KERN_ISA_AVX512, KERN_ISA_AVX2, KERN_ISA_NEON};
    const char *best = "portable";
    for (size_t k = ARRAY_LEN(best_first); k-- > 0;)
        if (kern_isa_available(best_first[k]))
            best = kern_isa_label(best_first[k]);
    CHECK_MSG(strcmp(kern_isa_name(), best) == 0, "default %s, best available %s", kern_isa_name(),
              best);
}

TEST(gemm_tiny_and_prime_shapes_match_reference)
{
    static const int shapes[][3] = {{1, 1, 1},  {17, 31, 13}, {1, 37, 29}, {23, 1, 19},
                                    {19, 23, 1}, {2, 3, 4},    {5, 7, 3},   {12, 32, 8},
                                    {13, 33, 9}, {11, 15, 31}, {6, 16, 5},  {7, 17, 6}};
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    for (size_t i = 0; i < ARRAY_LEN(shapes); i++)
        for (int pad = 0; pad <= 3; pad += 3)
            CHECK(check_shape(shapes[i][0], shapes[i][1], shapes[i][2], pad, &r));
}

TEST(gemm_blocked_shapes_match_reference)
{
    /* Crossing the K block (512), the N block (256) and many register tiles. */
    static const int big[][3] = {{37, 70, 600}, {29, 300, 41}, {64, 96, 130}, {1, 290, 530}};
    static const int small[][3] = {{25, 40, 520}, {13, 270, 17}, {30, 50, 60}, {1, 260, 515}};
    nerve_rng r;
    nerve_rng_seed(&r, 12);
    for (size_t i = 0; i < ARRAY_LEN(big); i++) {
        const int *s = SLOW_BUILD ? small[i] : big[i];
        CHECK(check_shape(s[0], s[1], s[2], 5, &r));
    }
}

TEST(gemm_in_place_b_and_thread_grids_match_reference)
{
    /* 7 to 24 row panels: B read in place when its K block is small enough to stay cached
     * ({170, 96, 130}: 15 panels on one thread, 8 per thread on a grid that splits M;
     * {80, 300, 90}: split N), packed when it is not ({75, 700, 100}). {M, N, K, threads};
     * sanitized builds check the first only. */
    static const int shapes[][4] = {{170, 96, 130, 2}, {170, 96, 130, 1}, {80, 300, 90, 2},
                                    {75, 700, 100, 2}};
    nerve_rng r;
    nerve_rng_seed(&r, 16);
    for (size_t i = 0; i < (SLOW_BUILD ? 1 : ARRAY_LEN(shapes)); i++) {
        kern_set_threads(shapes[i][3]);
        CHECK(check_shape(shapes[i][0], shapes[i][1], shapes[i][2], 5, &r));
    }
    kern_set_threads(0);
}

TEST(gemm_few_rows_match_reference)
{
    /* M <= KERN_GEMM_SMALL_M takes the unpacked path (M = 5 the blocked one): column tails of
     * every width, K below, at and above one vector. */
    static const int Ns[] = {1, 10, 33, 129, 300};
    static const int Ks[] = {1, 15, 17, 100};
    nerve_rng r;
    nerve_rng_seed(&r, 16);
    for (int M = 1; M <= KERN_GEMM_SMALL_M + 1; M++)
        for (size_t n = 0; n < ARRAY_LEN(Ns); n++)
            for (size_t k = 0; k < ARRAY_LEN(Ks); k++)
                CHECK(check_shape(M, Ns[n], Ks[k], (int)(n + k) % 3 * 3, &r));
}

TEST(gemm_few_rows_split_across_threads_bit_identically)
{
    int M = 2, N = 2100, K = 600; /* 2.5M multiply-adds: two threads */
    nerve_rng r;
    nerve_rng_seed(&r, 17);
    float *A = random_floats(&r, (size_t)M * K), *B = random_floats(&r, (size_t)K * N);
    size_t bytes = (size_t)M * N * sizeof(float);
    float *C[4];
    kern_set_threads(2);
    int split = kern_sgemm_threads(M, N, K) == 2;
    for (int tb = 0; tb < 2; tb++) {
        C[2 * tb] = malloc(bytes);
        C[2 * tb + 1] = malloc(bytes);
        kern_sgemm(0, tb, M, N, K, 1.0f, A, K, B, tb ? K : N, 0.0f, C[2 * tb], N);
        kern_sgemm_serial(0, tb, M, N, K, 1.0f, A, K, B, tb ? K : N, 0.0f, C[2 * tb + 1], N);
    }
    kern_set_threads(0);
    int same = memcmp(C[0], C[1], bytes) == 0 && memcmp(C[2], C[3], bytes) == 0;
    for (int i = 0; i < 4; i++)
        free(C[i]);
    free(A), free(B);
    CHECK(split);
    CHECK(same);
}

TEST(gemm_degenerate_sizes)
{
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 1, 1, 1}, C[4] = {1, 2, NAN, 4};
    kern_sgemm(0, 0, 0, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2); /* M = 0: nothing */
    kern_sgemm(0, 0, 2, 0, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2); /* N = 0: nothing */
    CHECK(C[0] == 1 && C[1] == 2 && isnan(C[2]) && C[3] == 4);
    kern_sgemm(0, 0, 2, 2, 0, 1.0f, A, 2, B, 2, 0.0f, C, 2); /* K = 0, beta = 0: zeros */
    CHECK(C[0] == 0 && C[1] == 0 && C[2] == 0 && C[3] == 0);
    float D[4] = {1, 2, 3, 4};
    kern_sgemm(0, 0, 2, 2, 2, 0.0f, A, 2, B, 2, 2.0f, D, 2); /* alpha = 0: C = beta C */
    CHECK(D[0] == 2 && D[1] == 4 && D[2] == 6 && D[3] == 8);
}

TEST(gemm_paths_agree_with_each_other)
{
    int M = SLOW_BUILD ? 33 : 70, N = SLOW_BUILD ? 45 : 123, K = SLOW_BUILD ? 70 : 300;
    nerve_rng r;
    nerve_rng_seed(&r, 13);
    float *A = random_floats(&r, (size_t)M * K), *B = random_floats(&r, (size_t)K * N);
    float *C[ARRAY_LEN(paths)];
    int have[ARRAY_LEN(paths)];
    for (size_t k = 0; k < ARRAY_LEN(paths); k++) {
        C[k] = malloc((size_t)M * N * sizeof(float));
        have[k] = kern_set_isa(paths[k]);
        if (have[k])
            kern_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C[k], N);
    }
    kern_set_isa("auto");
    int ok = have[0];
    for (size_t k = 1; k < ARRAY_LEN(paths); k++)
        for (size_t i = 0; have[k] && ok && i < (size_t)M * N; i++)
            ok = fabsf(C[k][i] - C[0][i]) <= 1e-4f * (1 + fabsf(C[0][i]));
    for (size_t k = 0; k < ARRAY_LEN(paths); k++)
        free(C[k]);
    free(A), free(B);
    CHECK(ok);
}

TEST(gemm_steady_state_allocates_nothing)
{
    int M = 150, N = 200, K = 300;
    nerve_rng r;
    nerve_rng_seed(&r, 14);
    float *A = random_floats(&r, (size_t)M * K), *B = random_floats(&r, (size_t)K * N);
    float *C = malloc((size_t)M * N * sizeof(float));
    for (int threads = 1; threads <= 2; threads++) {
        kern_set_threads(threads);
        kern_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N); /* grows the buffers */
        uint64_t before = nerve_alloc_count();
        for (int t = 0; t < 4; t++)
            kern_sgemm(t & 1, t >> 1, M, N, K, 1.0f, A, t & 1 ? M : K, B, t >> 1 ? K : N, 1.0f, C, N);
        kern_sgemm(0, 0, M / 2, N - 7, K / 3, 1.0f, A, K, B, N, 0.0f, C, N); /* smaller */
        kern_sgemm(0, 0, 1, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        CHECK(nerve_alloc_count() == before);
    }
    kern_set_threads(0);
    free(A), free(B), free(C);
}

TEST(gemm_is_deterministic_across_runs_and_thread_counts)
{
    /* Large enough to be split across two threads. */
    int M = SLOW_BUILD ? 100 : 190, N = SLOW_BUILD ? 150 : 260, K = SLOW_BUILD ? 150 : 530;
    nerve_rng r;
    nerve_rng_seed(&r, 15);
    float *A = random_floats(&r, (size_t)M * K), *B = random_floats(&r, (size_t)K * N);
    size_t bytes = (size_t)M * N * sizeof(float);
    float *C1 = malloc(bytes), *C2 = malloc(bytes), *C3 = malloc(bytes);
    kern_set_threads(2);
    kern_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    kern_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    kern_set_threads(1);
    kern_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C3, N);
    kern_set_threads(0);
    int same_runs = memcmp(C1, C2, bytes) == 0, same_threads = memcmp(C1, C3, bytes) == 0;
    free(A), free(B), free(C1), free(C2), free(C3);
    CHECK(same_runs);
    CHECK(same_threads);
}

TEST(gemm_threads_setting)
{
    kern_set_threads(3);
    CHECK(kern_threads() == 3);
    kern_set_threads(0);
    CHECK(kern_threads() >= 1);
}
