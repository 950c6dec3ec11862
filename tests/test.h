/* The test harness: TEST(name) { ... } registers a test; CHECK* record failures.
 * tests/runner.c runs each test in its own child process so a crash fails one test,
 * not the run, and prints "N passed, M failed" at the end. */
#ifndef NERVE_TEST_H
#define NERVE_TEST_H

#include "nerve.h"

#include <math.h>
#include <stdio.h>

void test_register(const char *name, void (*fn)(void), const char *file);
void test_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int test_failed(void);
/* Directory of the build (for running the CLI and examples from tests). */
const char *test_build_dir(void);
/* A fresh temporary directory for this test (removed by the runner afterwards). */
const char *test_tmpdir(void);

#define TEST(name)                                                                   \
    static void name(void);                                                          \
    __attribute__((constructor)) static void register_##name(void)                   \
    {                                                                                \
        test_register(#name, name, __FILE__);                                        \
    }                                                                                \
    static void name(void)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            test_fail(__FILE__, __LINE__, "CHECK(%s) failed [%s]", #cond,            \
                      nerve_last_error());                                           \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                              \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define CHECK_OK(expr)                                                               \
    do {                                                                             \
        int check_ok_status_ = (expr);                                               \
        if (check_ok_status_ < 0) {                                                  \
            test_fail(__FILE__, __LINE__, "%s returned %d: %s", #expr,               \
                      check_ok_status_, nerve_last_error());                         \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
    do {                                                                             \
        double check_a_ = (double)(a), check_b_ = (double)(b);                       \
        if (!(fabs(check_a_ - check_b_) <= (double)(tol))) {                         \
            test_fail(__FILE__, __LINE__, "%s = %.9g, expected %s = %.9g (tol %g)",  \
                      #a, check_a_, #b, check_b_, (double)(tol));                    \
            return;                                                                  \
        }                                                                            \
    } while (0)

/* Element-wise comparison of n floats. */
#define CHECK_ARRAY_NEAR(got, want, n, tol)                                          \
    do {                                                                             \
        for (size_t check_i_ = 0; check_i_ < (size_t)(n); check_i_++) {              \
            double check_g_ = (got)[check_i_], check_w_ = (want)[check_i_];          \
            if (!(fabs(check_g_ - check_w_) <= (double)(tol))) {                     \
                test_fail(__FILE__, __LINE__, "%s[%zu] = %.9g, expected %.9g",       \
                          #got, check_i_, check_g_, check_w_);                       \
                return;                                                              \
            }                                                                        \
        }                                                                            \
    } while (0)

/* Deterministic values in [-1, 1) from an index and a salt (a hash, not a generator:
 * any element can be recomputed on its own). */
static inline float test_pseudo(size_t i, unsigned salt)
{
    uint32_t h = (uint32_t)i * 2654435761u ^ (salt * 40503u + 0x9e3779b9u);
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return (float)(h & 0xffff) / 32768.0f - 1.0f;
}

/* Shared helpers (tests/helpers.c). */
/* The whole file as a NUL-terminated string (caller frees); *len its size when len is not
 * NULL. NULL when it cannot be read. */
char *test_read_file(const char *path, size_t *len);
/* Runs a shell command in test_tmpdir() with stderr joined to stdout, keeping the first
 * n - 1 bytes of that output in out; returns the exit status (128 + signal if killed). */
int test_run(const char *cmd, char *out, size_t n);
/* The build directory as an absolute path (commands run in the test's directory). */
const char *test_bin_dir(void);
/* The absolute path of the build's nerve binary. */
const char *test_nerve(void);
/* A gray IDX pair (images, labels) of n 12 x 12 items for generated scenes: item k is a wide
 * bar (class 0) when k is even, a tall bar (class 1) when odd. */
void test_write_bar_items(const char *path_images, const char *path_labels, int n);
/* n 8 x 8 gray images of 3 classes as DIR/STEM-images.idx and DIR/STEM-labels.idx: class
 * i % 3 has a bright 3 x 3 square at a corner of its own, on seeded noise. */
void test_write_corner_squares(const char *dir, const char *stem, int n, uint64_t seed);

/* Graph helpers of the operator tests. */
/* Copies n floats into the value of node id. */
void test_set_values(nerve_graph *g, int id, const float *v, size_t n);
/* Fills the value of node id with uniform values in [lo, hi). */
void test_fill_uniform(nerve_graph *g, int id, float lo, float hi, nerve_rng *r);
/* loss = sum(y * w) with w ("loss_w") a parameter of y's per-sample shape, filled by the
 * caller after compiling: linear in y, so the finite differences of piecewise-linear
 * operators are exact, and dloss/dy = w. Returns the loss node; *w the weight (-1 on error). */
int test_linear_loss(nerve_graph *g, int y, int *w);
/* A parameter `name` [1, features of y] for reducing y to one number per sample. */
int test_row_weight(nerve_graph *g, int y, const char *name);
/* A scalar that depends on every element of y: loss = sum_n (w . y_n)^2 with a weight
 * w ("loss_w") [1, features of y], filled by the caller after compiling. */
int test_scalar_loss(nerve_graph *g, int y, int *w);

#endif
