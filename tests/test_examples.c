/* The examples in examples/: each test runs the built program (<build>/examples/NAME, the
 * build that `make test` names in NERVE_BUILD_DIR) and checks what it prints against values
 * computed here independently (the course's worked numbers, or a re-derivation in double
 * precision). */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define OUT_CAP 65536

/* Runs an example, capturing its standard output into out (NUL-terminated).
 * Returns its exit status, or -1 if it could not be run or was killed. */
static int run_example(const char *name, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/examples/%s", test_build_dir(), name);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The next line at or after *pos that starts with prefix (NULL if none); *pos moves past
 * it, so repeated calls walk through the matching lines in order. */
static const char *next_line(const char **pos, const char *prefix)
{
    const char *s = *pos;
    while (s && *s) {
        const char *end = strchr(s, '\n');
        if (strncmp(s, prefix, strlen(prefix)) == 0) {
            *pos = end ? end + 1 : s + strlen(s);
            return s;
        }
        s = end ? end + 1 : NULL;
    }
    return NULL;
}

/* The first line starting with prefix. */
static const char *find_line(const char *out, const char *prefix)
{
    const char *pos = out;
    return next_line(&pos, prefix);
}

/* ---------------------------------------------------------------------------------- */

TEST(example_perceptron_follows_the_worked_example)
{
    static char out[OUT_CAP];
    CHECK_MSG(run_example("perceptron", out, sizeof out) == 0, "perceptron failed:\n%s", out);

    /* The course's trace (COURSE.md section 1): three updates in pass 1, none in pass 2. */
    struct {
        int pass, k;
        float x1, x2;
        int d;
        float u;
        int y, err;
        float w1, w2;
    } want[] = {
        {1, 1, 1, 2, 1, -0.6f, 0, +1, 2, 1.2f},  {1, 2, -1, 2, 0, 0.4f, 1, -1, 3, -0.8f},
        {1, 3, 0, -1, 0, 0.8f, 1, -1, 3, 0.2f},  {2, 1, 1, 2, 1, 3.4f, 1, 0, 3, 0.2f},
        {2, 2, -1, 2, 0, -2.6f, 0, 0, 3, 0.2f},  {2, 3, 0, -1, 0, -0.2f, 0, 0, 3, 0.2f},
    };
    const char *pos = out, *line;
    float w1, w2;
    CHECK(sscanf(out, "start w=(%f,%f)", &w1, &w2) == 2);
    CHECK_NEAR(w1, 1.0, 1e-4);
    CHECK_NEAR(w2, -0.8, 1e-4);
    int rows = 0;
    while ((line = next_line(&pos, "pass="))) {
        CHECK_MSG(rows < 6, "more than two passes:\n%s", out);
        int pass, k, d, y, err;
        float x1, x2, u;
        CHECK_MSG(sscanf(line, "pass=%d sample=x%d x=(%f,%f) d=%d u=%f y=%d err=%d w=(%f,%f)",
                         &pass, &k, &x1, &x2, &d, &u, &y, &err, &w1, &w2) == 10,
                  "unparsed line: %.80s", line);
        CHECK(pass == want[rows].pass && k == want[rows].k && d == want[rows].d);
        CHECK_NEAR(x1, want[rows].x1, 1e-6);
        CHECK_NEAR(x2, want[rows].x2, 1e-6);
        CHECK_NEAR(u, want[rows].u, 1e-4);
        CHECK(y == want[rows].y && err == want[rows].err);
        CHECK_NEAR(w1, want[rows].w1, 1e-4);
        CHECK_NEAR(w2, want[rows].w2, 1e-4);
        rows++;
    }
    CHECK(rows == 6);
    line = find_line(out, "converged after");
    CHECK(line != NULL);
    int updates, passes;
    CHECK(sscanf(line, "converged after %d updates in %d passes w=(%f,%f)", &updates, &passes,
                 &w1, &w2) == 4);
    CHECK(updates == 3 && passes == 2);
    CHECK_NEAR(w1, 3.0, 1e-4);
    CHECK_NEAR(w2, 0.2, 1e-4);
}

/* Checks every "<gate> x=b1,b2[,b3] y=Y want=W" row against the gate computed here, and the
 * "<gate>: C/R" summary. */
static int check_truth_table(const char *out, const char *gate, int n_inputs, int is_and)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s x=", gate);
    const char *pos = out, *line;
    int rows = 0;
    while ((line = next_line(&pos, prefix))) {
        int b[3] = {0, 0, 0}, y, want;
        int got = n_inputs == 2 ? sscanf(line + strlen(prefix), "%d,%d y=%d want=%d", &b[0],
                                         &b[1], &y, &want)
                                : sscanf(line + strlen(prefix), "%d,%d,%d y=%d want=%d", &b[0],
                                         &b[1], &b[2], &y, &want);
        if (got != n_inputs + 2)
            return 0;
        int all = 1, any = 0;
        for (int i = 0; i < n_inputs; i++) {
            all &= b[i];
            any |= b[i];
        }
        int truth = is_and ? all : any;
        /* Rows come in binary order: row r has the bits of r. */
        int r = n_inputs == 2 ? 2 * b[0] + b[1] : 4 * b[0] + 2 * b[1] + b[2];
        if (r != rows || want != truth || y != truth)
            return 0;
        rows++;
    }
    snprintf(prefix, sizeof prefix, "%s: ", gate);
    line = find_line(out, prefix);
    int correct, total;
    if (!line || sscanf(line + strlen(prefix), "%d/%d", &correct, &total) != 2)
        return 0;
    return rows == (1 << n_inputs) && correct == rows && total == rows;
}

/* The count C on the first "<prefix>C/4" line, or -1. */
static int xor_count(const char *out, const char *prefix)
{
    const char *line = find_line(out, prefix);
    int c;
    return line && sscanf(line + strlen(prefix), "%d/4", &c) == 1 ? c : -1;
}

TEST(example_logic_gates_and_or_and3_then_xor_needs_a_hidden_layer)
{
    static char out[OUT_CAP];
    CHECK_MSG(run_example("logic_gates", out, sizeof out) == 0, "logic_gates failed:\n%s", out);
    CHECK(find_line(out, "and w=(-1.5,1,1)") != NULL);
    CHECK(find_line(out, "or w=(-0.5,1,1)") != NULL);
    CHECK(find_line(out, "and3 w=(-2.5,1,1,1)") != NULL);
    CHECK_MSG(check_truth_table(out, "and", 2, 1), "AND table wrong:\n%s", out);
    CHECK_MSG(check_truth_table(out, "or", 2, 0), "OR table wrong:\n%s", out);
    CHECK_MSG(check_truth_table(out, "and3", 3, 1), "3-input AND table wrong:\n%s", out);

    /* A line cannot separate XOR: the best step unit gets exactly 3 of 4, a trained
     * sigmoid unit at most 3; the 2-4-1 network gets all 4. */
    CHECK(xor_count(out, "xor best step unit on grid: ") == 3);
    int single = xor_count(out, "xor single unit: ");
    CHECK_MSG(single >= 0 && single <= 3, "xor single unit: correct %d, expected <= 3/4", single);
    CHECK_MSG(xor_count(out, "xor mlp: ") == 4, "xor mlp not 4/4:\n%s", out);

    /* The single unit's cross-entropy cannot go below ln 2 (its optimum is w = 0, b = 0). */
    const char *line = find_line(out, "xor single unit loss=");
    float loss;
    CHECK(line && sscanf(line, "xor single unit loss=%f", &loss) == 1);
    CHECK(loss >= 0.6931f - 1e-3f);
    line = find_line(out, "xor mlp loss=");
    CHECK(line && sscanf(line, "xor mlp loss=%f", &loss) == 1);
    CHECK(loss < 0.1f);
}

/* One sigmoid neuron, x = 1, d = 0, plain gradient descent (eta = 0.15), in double:
 * the output a after `epochs` epochs. ce != 0: cross-entropy, else half MSE. */
static double neuron_output_after(double w, double b, int ce, int epochs)
{
    for (int e = 0; e < epochs; e++) {
        double a = 1 / (1 + exp(-(w + b)));
        double g = ce ? a : a * a * (1 - a); /* dC/dz with d = 0 */
        w -= 0.15 * g;                       /* dC/dw = dC/dz * x, x = 1 */
        b -= 0.15 * g;
    }
    return 1 / (1 + exp(-(w + b)));
}

TEST(example_saturation_mse_starts_slow_cross_entropy_does_not)
{
    static char out[OUT_CAP];
    CHECK_MSG(run_example("saturation", out, sizeof out) == 0, "saturation failed:\n%s", out);

    float z, a, dsig;
    const char *line = find_line(out, "case=A ");
    CHECK(line && sscanf(line, "case=A w=0.6 b=0.9 z=%f a=%f sigma'=%f", &z, &a, &dsig) == 3);
    CHECK_NEAR(z, 1.5, 1e-4);
    CHECK_NEAR(dsig, 0.1491, 1e-4);
    line = find_line(out, "case=B ");
    CHECK(line && sscanf(line, "case=B w=2.0 b=2.0 z=%f a=%f sigma'=%f", &z, &a, &dsig) == 3);
    CHECK_NEAR(z, 4.0, 1e-4);
    CHECK_NEAR(dsig, 0.0177, 1e-4);

    /* Every printed output against the double-precision re-derivation. */
    const double w0[2] = {0.6, 2.0}, b0[2] = {0.9, 2.0};
    const char *pos = out;
    int rows = 0;
    float at50[4] = {0};
    while ((line = next_line(&pos, "epoch "))) {
        int epoch;
        float v[4];
        CHECK(sscanf(line, "epoch %d %f %f %f %f", &epoch, &v[0], &v[1], &v[2], &v[3]) == 5);
        for (int run = 0; run < 4; run++) {
            double want = neuron_output_after(w0[run % 2], b0[run % 2], run >= 2, epoch);
            CHECK_MSG(fabs(v[run] - want) < 2e-3, "epoch %d run %d: a = %.4f, expected %.4f",
                      epoch, run, v[run], want);
            if (epoch == 50)
                at50[run] = v[run];
        }
        rows++;
    }
    CHECK(rows >= 5 && at50[1] > 0);
    /* MSE: the saturated case B is still near 1 after 50 epochs while A has dropped. */
    CHECK(at50[1] > 0.9f);
    CHECK(at50[0] < 0.5f);
    /* Cross-entropy: both fall fast and B is not much slower than A. */
    CHECK(at50[2] < 0.2f && at50[3] < 0.2f);
    CHECK(at50[3] - at50[2] < 0.05f);
}

TEST(example_linear_collapse_two_linear_layers_are_one_matrix)
{
    static char out[OUT_CAP];
    CHECK_MSG(run_example("linear_collapse", out, sizeof out) == 0, "linear_collapse failed:\n%s",
              out);
    double max_y, diff;
    const char *line = find_line(out, "max |y| = ");
    CHECK(line && sscanf(line, "max |y| = %lf", &max_y) == 1);
    CHECK(max_y > 0.5); /* the outputs compared are not trivially zero */
    line = find_line(out, "max |deep - single| = ");
    CHECK(line && sscanf(line, "max |deep - single| = %lf", &diff) == 1);
    CHECK(diff <= 1e-5);
    CHECK(find_line(out, "W row 0:") && find_line(out, "W row 1:"));
}

TEST(example_api_tour_learns_two_blobs)
{
    static char out[OUT_CAP];
    CHECK_MSG(run_example("api_tour", out, sizeof out) == 0, "api_tour failed:\n%s", out);
    double first, last, acc;
    int step;
    const char *line = find_line(out, "step   1 loss ");
    CHECK(line && sscanf(line, "step %d loss %lf", &step, &first) == 2);
    line = find_line(out, "step 300 loss ");
    CHECK(line && sscanf(line, "step %d loss %lf", &step, &last) == 2);
    CHECK(last < 0.5 * first);
    line = find_line(out, "train accuracy: ");
    CHECK(line && sscanf(line, "train accuracy: %lf", &acc) == 1);
    CHECK(acc >= 0.95);
    line = find_line(out, "test accuracy: ");
    CHECK(line && sscanf(line, "test accuracy: %lf", &acc) == 1);
    CHECK_MSG(acc >= 0.95, "test accuracy %.4f < 0.95", acc);
}
