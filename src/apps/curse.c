/* The curse of dimensionality, as numbers: the inscribed ball's share of a cube's volume, the
 * edge of the sub-cube that holds a given share, the median nearest-neighbour distance in a
 * ball, and a Monte Carlo ratio of nearest to farthest distances. */
#include "../core/core.h"

#include <math.h>

double nerve_ball_cube_ratio(int d)
{
    if (d < 1)
        return NAN;
    /* pi^(d/2) / (Gamma(d/2 + 1) 2^d), in logarithms so that large d does not overflow */
    return exp(0.5 * d * log(3.14159265358979323846) - lgamma(0.5 * d + 1.0) - d * log(2.0));
}

double nerve_subcube_edge(double fraction, int d)
{
    if (d < 1 || !(fraction > 0.0 && fraction <= 1.0))
        return NAN;
    return pow(fraction, 1.0 / d);
}

double nerve_median_nearest(int n, int d)
{
    if (n < 1 || d < 1)
        return NAN;
    return pow(1.0 - pow(0.5, 1.0 / n), 1.0 / d);
}

int nerve_nearest_farthest_ratio(int n, int d, int queries, uint64_t seed, double *ratio)
{
    if (n < 2 || d < 1 || queries < 1 || !ratio || (size_t)n * d > ((size_t)1 << 28))
        return nerve_set_error(NERVE_ERR_ARG, "nearest/farthest ratio: bad arguments (%d points "
                                              "of %d dimensions, %d queries)", n, d, queries);
    float *x = nerve_xmalloc((size_t)n * d * sizeof *x), *q = nerve_xmalloc((size_t)d * sizeof *q);
    if (!x || !q) {
        nerve_xfree(x), nerve_xfree(q);
        return NERVE_ERR_NOMEM;
    }
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    for (size_t k = 0; k < (size_t)n * d; k++)
        x[k] = nerve_rng_uniform(&r);
    double sum = 0.0;
    for (int t = 0; t < queries; t++) {
        for (int k = 0; k < d; k++)
            q[k] = nerve_rng_uniform(&r);
        double lo = INFINITY, hi = 0.0;
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) {
                double v = (double)x[(size_t)i * d + k] - q[k];
                s += v * v;
            }
            lo = fmin(lo, s), hi = fmax(hi, s);
        }
        sum += hi > 0.0 ? sqrt(lo / hi) : 1.0;
    }
    *ratio = sum / queries;
    nerve_xfree(x), nerve_xfree(q);
    return NERVE_OK;
}
