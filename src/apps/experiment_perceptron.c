/* The perceptron convergence theorem (COURSE.md §1, slides L1112-1241) measured. Rosenblatt's
 * rule with a step unit (y = 1 if w.x >= 0, else 0), eta = 1, the bias folded in as x_0 = 1,
 * w(0) = 0, samples presented in order until a pass makes no mistake. With a separating w_o
 * (w_o.x > 0 for class 1, < 0 for class 0), write x~ = x for class 1 and -x for class 0;
 * then alpha = min w_o.x~ > 0, beta = max ||x||^2 and the number of updates is at most
 * n_max = beta ||w_o||^2 / alpha^2 (the bound does not change when w_o is scaled).
 *
 * The slides' proof, read carefully: every update adds an x~ with w(k).x~ <= 0 (not < 0: with
 * step(0) = 1 a class-0 sample on the boundary is a mistake, and the first update starts from
 * w = 0), which still gives ||w(k+1)||^2 <= ||w(k)||^2 + ||x~||^2; after n updates w is the sum
 * of n vectors x~, so n^2 alpha^2 / ||w_o||^2 <= ||w||^2 <= n beta and n <= beta ||w_o||^2 /
 * alpha^2 (the slides index the sum x(0) + ... + x(n), n + 1 terms, and then count n). They
 * also write the targets as 0 / -1 and the wrong output as y = -1 where the step gives 0.
 *
 * The data: points uniform in [-1, 1]^dim, labelled by a random unit w* (bias included) and
 * kept only if |w*.x| >= margin, so that w* separates them with alpha >= margin. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Rosenblatt's rule on x [n, dim] (x_0 = 1 included) and targets t in {0, 1}: the number of
 * updates until a pass without mistakes (-1 past max_passes). */
static long perceptron_updates(const double *x, const int *t, int n, int dim, double *w, int max_passes)
{
    memset(w, 0, (size_t)dim * sizeof(double));
    long updates = 0;
    for (int pass = 0; pass < max_passes; pass++) {
        int mistakes = 0;
        for (int i = 0; i < n; i++) {
            const double *xi = x + (size_t)i * dim;
            double u = 0;
            for (int j = 0; j < dim; j++)
                u += w[j] * xi[j];
            int y = u >= 0, e = t[i] - y;
            if (e) {
                for (int j = 0; j < dim; j++)
                    w[j] += e * xi[j];
                updates++;
                mistakes++;
            }
        }
        if (!mistakes)
            return updates;
    }
    return -1;
}

/* The bound beta ||w_o||^2 / alpha^2 for w_o; 0 when w_o does not separate the data. */
static double perceptron_bound(const double *x, const int *t, int n, int dim, const double *wo)
{
    double alpha = INFINITY, beta = 0, wn = 0;
    for (int j = 0; j < dim; j++)
        wn += wo[j] * wo[j];
    for (int i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * dim;
        double u = 0, q = 0;
        for (int j = 0; j < dim; j++)
            u += wo[j] * xi[j], q += xi[j] * xi[j];
        u = t[i] ? u : -u;
        alpha = fmin(alpha, u);
        beta = fmax(beta, q);
    }
    return alpha > 0 ? beta * wn / (alpha * alpha) : 0;
}

int exp_perceptron(const nerve_experiment_options *o)
{
    /* the course's worked example (w(0) = (1, -0.8), no bias): 3 updates */
    double ex[6] = {1, 2, -1, 2, 0, -1}, w[64];
    int et[3] = {1, 0, 0};
    {
        double wv[2] = {1, -0.8};
        long updates = 0;
        for (int pass = 0; pass < 10; pass++) {
            int mistakes = 0;
            for (int i = 0; i < 3; i++) {
                double u = wv[0] * ex[2 * i] + wv[1] * ex[2 * i + 1];
                int e = et[i] - (u >= 0);
                if (e) {
                    wv[0] += e * ex[2 * i], wv[1] += e * ex[2 * i + 1];
                    updates++, mistakes++;
                }
            }
            if (!mistakes)
                break;
        }
        exp_say(o, "perceptron: the course's example (x1 = (1, 2) d = 1, x2 = (-1, 2) d = 0, x3 = (0, -1) d = 0, "
                   "w(0) = (1, -0.8)): %ld updates, w = (%g, %g)", updates, wv[0], wv[1]);
        exp_figure(o, "perceptron.example_updates", (double)updates);
    }
    int quick = o->quick, dim = 3; /* 2 inputs and the bias */
    int n = o->train ? o->train : quick ? 50 : 200, trials = quick ? 3 : 20;
    static const double margins[] = {0.2, 0.1, 0.05, 0.02, 0.01, 0.005};
    int n_margins = quick ? 3 : (int)NERVE_ARRAY_LEN(margins);
    double *x = nerve_xmalloc((size_t)n * dim * sizeof(double));
    int *t = nerve_xmalloc((size_t)n * sizeof(int));
    double lx[16], lup[16], lbound[16];
    if (!x || !t) {
        nerve_xfree(x), nerve_xfree(t);
        return NERVE_ERR_NOMEM;
    }
    exp_say(o, "%d points uniform in [-1, 1]^2 (bias x_0 = 1), labelled by a random unit w* and kept where "
               "|w*.x| >= margin; w(0) = 0, eta = 1; %d data sets per margin", n, trials);
    exp_say(o, "%8s %12s %14s %14s %12s", "margin", "updates", "bound (w*)", "max ratio", "violations");
    nerve_rng rng;
    nerve_rng_seed(&rng, o->seed * 101 + 7);
    long violations = 0;
    double worst_ratio = 0;
    int st = NERVE_OK;
    for (int m = 0; m < n_margins; m++) {
        double sum_up = 0, sum_bound = 0, max_ratio = 0;
        long viol = 0;
        for (int trial = 0; trial < trials; trial++) {
            double ws[3], norm = 0;
            for (int j = 0; j < dim; j++)
                ws[j] = nerve_rng_normal(&rng), norm += ws[j] * ws[j];
            norm = sqrt(norm);
            /* a boundary that crosses the square: |bias| below the norm of the input part */
            for (int j = 0; j < dim; j++)
                ws[j] /= norm;
            ws[0] *= 0.5;
            for (int i = 0; i < n;) {
                double *xi = x + (size_t)i * dim;
                xi[0] = 1;
                for (int j = 1; j < dim; j++)
                    xi[j] = 2.0 * nerve_rng_uniform(&rng) - 1.0;
                double u = ws[0] * xi[0] + ws[1] * xi[1] + ws[2] * xi[2];
                if (fabs(u) < margins[m])
                    continue;
                t[i++] = u > 0;
            }
            long up = perceptron_updates(x, t, n, dim, w, 1000000);
            double bound = perceptron_bound(x, t, n, dim, ws);
            if (up < 0 || !(bound > 0)) {
                st = nerve_set_error(NERVE_ERR_NUMERIC, "perceptron: no convergence on separable data (margin %g)",
                                     margins[m]);
                goto done;
            }
            sum_up += (double)up, sum_bound += bound;
            max_ratio = fmax(max_ratio, (double)up / bound);
            viol += (double)up > bound;
        }
        exp_say(o, "%8g %12.1f %14.1f %14.4f %12ld", margins[m], sum_up / trials, sum_bound / trials, max_ratio,
                viol);
        lx[m] = log10(1.0 / margins[m]);
        lup[m] = log10(sum_up / trials);
        lbound[m] = log10(sum_bound / trials);
        violations += viol;
        worst_ratio = fmax(worst_ratio, max_ratio);
    }
    exp_figure(o, "perceptron.bound_violations", (double)violations);
    exp_figure(o, "perceptron.max_updates_over_bound", worst_ratio);
    {
        nerve_series s[2] = {{"log10 updates (mean)", lup}, {"log10 bound beta |w*|^2 / alpha^2", lbound}};
        st = exp_plot(o, "perceptron.svg", "Perceptron: updates against the convergence bound",
                      "log10 (1 / margin)", lx, n_margins, s, 2);
    }
done:
    nerve_xfree(x), nerve_xfree(t);
    return st;
}
