/* Principal component analysis: centring, optional standardising, the covariance with 1/n
 * (or the Gram matrix when there are more features than samples: the SVD route), and the
 * eigen-decomposition of a symmetric matrix (Householder tridiagonalisation + implicit QL,
 * after the public-domain EISPACK tred2/tql2 routines). */
#include "../core/core.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <string.h>

#define BLOCK 512        /* rows per SGEMM block of a projection */
#define SUM_BLOCK 64     /* rows (or columns) per SGEMM block of a covariance or Gram matrix,
                            each summed into doubles: float sums of at most 64 products */
#define MAX_ORDER 16384  /* largest eigenproblem: 16384^2 doubles = 2 GiB */
#define QL_MAX_ITER 60

/* ---- symmetric eigen-decomposition --------------------------------------------------- */

/* Householder reduction of the symmetric matrix V (n x n, row-major, lower triangle used) to
 * tridiagonal form: diagonal d, sub-diagonal e (e[0] = 0); V receives the orthogonal
 * transformation. */
static void tred2(int n, double *V, double *d, double *e)
{
#define v(i, j) V[(size_t)(i) * n + (j)]
    for (int j = 0; j < n; j++)
        d[j] = v(n - 1, j);
    for (int i = n - 1; i > 0; i--) {
        double scale = 0.0, h = 0.0;
        for (int k = 0; k < i; k++)
            scale += fabs(d[k]);
        if (scale == 0.0) {
            e[i] = d[i - 1];
            for (int j = 0; j < i; j++) {
                d[j] = v(i - 1, j);
                v(i, j) = 0.0;
                v(j, i) = 0.0;
            }
        } else {
            for (int k = 0; k < i; k++) {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            double f = d[i - 1], g = sqrt(h);
            if (f > 0)
                g = -g;
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for (int j = 0; j < i; j++)
                e[j] = 0.0;
            for (int j = 0; j < i; j++) {
                f = d[j];
                v(j, i) = f;
                g = e[j] + v(j, j) * f;
                for (int k = j + 1; k <= i - 1; k++) {
                    g += v(k, j) * d[k];
                    e[k] += v(k, j) * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for (int j = 0; j < i; j++) {
                e[j] /= h;
                f += e[j] * d[j];
            }
            double hh = f / (h + h);
            for (int j = 0; j < i; j++)
                e[j] -= hh * d[j];
            for (int j = 0; j < i; j++) {
                f = d[j];
                g = e[j];
                for (int k = j; k <= i - 1; k++)
                    v(k, j) -= f * e[k] + g * d[k];
                d[j] = v(i - 1, j);
                v(i, j) = 0.0;
            }
        }
        d[i] = h;
    }
    for (int i = 0; i < n - 1; i++) {
        v(n - 1, i) = v(i, i);
        v(i, i) = 1.0;
        double h = d[i + 1];
        if (h != 0.0) {
            for (int k = 0; k <= i; k++)
                d[k] = v(k, i + 1) / h;
            for (int j = 0; j <= i; j++) {
                double g = 0.0;
                for (int k = 0; k <= i; k++)
                    g += v(k, i + 1) * v(k, j);
                for (int k = 0; k <= i; k++)
                    v(k, j) -= g * d[k];
            }
        }
        for (int k = 0; k <= i; k++)
            v(k, i + 1) = 0.0;
    }
    for (int j = 0; j < n; j++) {
        d[j] = v(n - 1, j);
        v(n - 1, j) = 0.0;
    }
    v(n - 1, n - 1) = 1.0;
    e[0] = 0.0;
#undef v
}

/* Rows i and i+1 of the transposed eigenvector matrix turned by the plane rotation (c, s). */
static void rotate_rows(int n, double *restrict a, double *restrict b, double c, double s)
{
    for (int k = 0; k < n; k++) {
        double h = b[k];
        b[k] = s * a[k] + c * h;
        a[k] = c * a[k] - s * h;
    }
}

/* Implicit QL on the tridiagonal (d, e) from tred2; Vt holds the transformation transposed
 * (row i = column i of V) and becomes the eigenvectors as rows. 0, or -1 without convergence. */
static int tql2(int n, double *d, double *e, double *Vt)
{
    for (int i = 1; i < n; i++)
        e[i - 1] = e[i];
    e[n - 1] = 0.0;
    double f = 0.0, tst1 = 0.0, eps = ldexp(1.0, -52);
    for (int l = 0; l < n; l++) {
        tst1 = fmax(tst1, fabs(d[l]) + fabs(e[l]));
        int m = l;
        while (m < n - 1 && !(fabs(e[m]) <= eps * tst1))
            m++;
        if (m > l) {
            int iter = 0;
            do {
                if (++iter > QL_MAX_ITER)
                    return -1;
                double g = d[l], p = (d[l + 1] - g) / (2.0 * e[l]), r = hypot(p, 1.0);
                if (p < 0)
                    r = -r;
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                double dl1 = d[l + 1], h = g - d[l];
                for (int i = l + 2; i < n; i++)
                    d[i] -= h;
                f += h;
                p = d[m];
                double c = 1.0, c2 = c, c3 = c, el1 = e[l + 1], s = 0.0, s2 = 0.0;
                for (int i = m - 1; i >= l; i--) {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = hypot(p, e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    rotate_rows(n, Vt + (size_t)i * n, Vt + (size_t)(i + 1) * n, c, s);
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
            } while (fabs(e[l]) > eps * tst1);
        }
        d[l] += f;
        e[l] = 0.0;
    }
    return 0;
}

/* Makes the largest-magnitude entry (the first of equals) of a vector positive. */
static void fix_sign(double *v, int n)
{
    int best = 0;
    for (int k = 1; k < n; k++)
        if (fabs(v[k]) > fabs(v[best]))
            best = k;
    if (v[best] < 0)
        for (int k = 0; k < n; k++)
            v[k] = -v[k];
}

int nerve_symeig(int n, const double *a, double *eigval, double *eigvec)
{
    if (n < 1 || n > MAX_ORDER || !a || !eigval)
        return nerve_set_error(NERVE_ERR_ARG, "symeig: bad arguments (order %d, at most %d)", n,
                               MAX_ORDER);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            if (!isfinite(a[(size_t)i * n + j]))
                return nerve_set_error(NERVE_ERR_NUMERIC,
                                       "symeig: entry (%d, %d) is not finite", i, j);
    size_t nn = (size_t)n * n;
    double *V = nerve_xmalloc(nn * sizeof *V), *Vt = nerve_xmalloc(nn * sizeof *Vt);
    double *d = nerve_xmalloc((size_t)n * sizeof *d), *e = nerve_xmalloc((size_t)n * sizeof *e);
    int *order = nerve_xmalloc((size_t)n * sizeof *order);
    int st = NERVE_OK;
    if (!V || !Vt || !d || !e || !order) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) /* symmetric copy of the lower triangle */
        for (int j = 0; j <= i; j++)
            V[(size_t)i * n + j] = V[(size_t)j * n + i] = a[(size_t)i * n + j];
    tred2(n, V, d, e);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            Vt[(size_t)j * n + i] = V[(size_t)i * n + j];
    if (tql2(n, d, e, Vt) != 0) {
        st = nerve_set_error(NERVE_ERR_NUMERIC, "symeig: the QL iteration did not converge "
                                                "(order %d)", n);
        goto done;
    }
    /* descending order; insertion sort on indices is stable (equal eigenvalues keep QL's order) */
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && d[order[j - 1]] < d[i]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    for (int i = 0; i < n; i++) {
        eigval[i] = d[order[i]];
        if (eigvec) {
            memcpy(eigvec + (size_t)i * n, Vt + (size_t)order[i] * n, (size_t)n * sizeof *Vt);
            fix_sign(eigvec + (size_t)i * n, n);
        }
    }
done:
    nerve_xfree(V);
    nerve_xfree(Vt);
    nerve_xfree(d);
    nerve_xfree(e);
    nerve_xfree(order);
    return st;
}

/* ---- PCA -------------------------------------------------------------------------------- */

void nerve_pca_free(nerve_pca *p)
{
    if (!p)
        return;
    nerve_xfree(p->mean);
    nerve_xfree(p->scale);
    nerve_xfree(p->eigval);
    nerve_xfree(p->components);
    memset(p, 0, sizeof *p);
}

/* Rows r0..r1 of x centred (and scaled) into out [(r1 - r0), d]. */
static void centre_rows(const nerve_pca *p, const float *x, int r0, int r1, float *out)
{
    int d = p->d;
    for (int r = r0; r < r1; r++) {
        const float *xi = x + (size_t)r * d;
        float *o = out + (size_t)(r - r0) * d;
        for (int j = 0; j < d; j++) {
            double v = (double)xi[j] - p->mean[j];
            o[j] = (float)(p->scale ? v / p->scale[j] : v);
        }
    }
}

/* Means and (with STANDARDISE) standard deviations in doubles; the total variance. */
static int feature_stats(nerve_pca *p, const float *x)
{
    int n = p->n, d = p->d;
    double *var = nerve_xcalloc((size_t)d, sizeof *var);
    if (!var)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            p->mean[j] += x[(size_t)i * d + j];
    for (int j = 0; j < d; j++)
        p->mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = x[(size_t)i * d + j] - p->mean[j];
            var[j] += v * v;
        }
    p->total_variance = 0.0;
    for (int j = 0; j < d; j++) {
        var[j] /= n;
        if (p->scale) {
            p->scale[j] = var[j] > 0.0 ? sqrt(var[j]) : 1.0;
            p->total_variance += var[j] > 0.0 ? 1.0 : 0.0;
        } else
            p->total_variance += var[j];
    }
    nerve_xfree(var);
    return NERVE_OK;
}

/* The covariance (1/n) X^T X of the centred data, d x d doubles: SGEMM per block of rows. */
static int covariance(const nerve_pca *p, const float *x, double *cov)
{
    int n = p->n, d = p->d, rows = n < SUM_BLOCK ? n : SUM_BLOCK;
    float *buf = nerve_xalloc_floats((size_t)rows * d);
    float *part = nerve_xalloc_floats((size_t)d * d);
    if (!buf || !part) {
        nerve_xfree_aligned(buf);
        nerve_xfree_aligned(part);
        return NERVE_ERR_NOMEM;
    }
    memset(cov, 0, (size_t)d * d * sizeof *cov);
    for (int r0 = 0; r0 < n; r0 += SUM_BLOCK) {
        int r1 = r0 + SUM_BLOCK < n ? r0 + SUM_BLOCK : n;
        centre_rows(p, x, r0, r1, buf);
        kern_sgemm(1, 0, d, d, r1 - r0, 1.0f, buf, d, buf, d, 0.0f, part, d);
        for (size_t k = 0; k < (size_t)d * d; k++)
            cov[k] += part[k];
    }
    for (size_t k = 0; k < (size_t)d * d; k++)
        cov[k] /= n;
    nerve_xfree_aligned(buf);
    nerve_xfree_aligned(part);
    return NERVE_OK;
}

/* Orthogonalises v (length d) against rows 0..m-1 of q (twice, for accuracy) and normalises
 * it; returns its norm after orthogonalisation relative to before. */
static double orthonormalise(double *v, const double *q, int m, int d)
{
    double before = 0.0;
    for (int j = 0; j < d; j++)
        before += v[j] * v[j];
    before = sqrt(before);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < m; i++) {
            double dot = 0.0;
            for (int j = 0; j < d; j++)
                dot += v[j] * q[(size_t)i * d + j];
            for (int j = 0; j < d; j++)
                v[j] -= dot * q[(size_t)i * d + j];
        }
    double after = 0.0;
    for (int j = 0; j < d; j++)
        after += v[j] * v[j];
    after = sqrt(after);
    if (after > 0.0)
        for (int j = 0; j < d; j++)
            v[j] /= after;
    return before > 0.0 ? after / before : 0.0;
}

/* The SVD route: eigen-decomposition of the Gram matrix G = X X^T / n (n x n); the component
 * of eigenvalue l with eigenvector u is X^T u / sqrt(n l). Zero-variance components (beyond
 * the rank) are completed with unit vectors orthogonalised against those before. */
static int gram_components(nerve_pca *p, const float *x, double *comp)
{
    int n = p->n, d = p->d, k = p->k, st = NERVE_OK;
    float *xc = nerve_xalloc_floats((size_t)n * d), *part = nerve_xalloc_floats((size_t)n * n);
    float *blk = nerve_xalloc_floats((size_t)n * SUM_BLOCK);
    double *g = nerve_xcalloc((size_t)n * n, sizeof *g), *w = nerve_xmalloc((size_t)n * sizeof *w);
    double *u = nerve_xmalloc((size_t)n * n * sizeof *u);
    if (!xc || !part || !blk || !g || !w || !u) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    centre_rows(p, x, 0, n, xc);
    for (int c0 = 0; c0 < d; c0 += SUM_BLOCK) { /* G += X[:, c0:c1] X[:, c0:c1]^T per block */
        int c1 = c0 + SUM_BLOCK < d ? c0 + SUM_BLOCK : d, w_ = c1 - c0;
        for (int i = 0; i < n; i++)
            memcpy(blk + (size_t)i * w_, xc + (size_t)i * d + c0, (size_t)w_ * sizeof *blk);
        kern_sgemm(0, 1, n, n, w_, 1.0f, blk, w_, blk, w_, 0.0f, part, n);
        for (size_t q = 0; q < (size_t)n * n; q++)
            g[q] += part[q];
    }
    for (size_t q = 0; q < (size_t)n * n; q++)
        g[q] /= n;
    if ((st = nerve_symeig(n, g, w, u)) < 0)
        goto done;
    /* G comes from float products: a variance below 1e-6 of the largest is rounding */
    double tol = (w[0] > 0.0 ? w[0] : 0.0) * 1e-6;
    for (int i = 0; i < k; i++) {
        double *v = comp + (size_t)i * d;
        p->eigval[i] = w[i] > tol ? w[i] : 0.0;
        memset(v, 0, (size_t)d * sizeof *v);
        if (w[i] > tol) {
            for (int s = 0; s < n; s++) {
                double us = u[(size_t)i * n + s];
                const float *xs = xc + (size_t)s * d;
                for (int j = 0; j < d; j++)
                    v[j] += us * xs[j];
            }
            if (orthonormalise(v, comp, i, d) > 0.5)
                continue;
        }
        /* a null direction: the unit vector least represented by the components so far */
        for (int j = 0; j < d; j++) {
            memset(v, 0, (size_t)d * sizeof *v);
            v[j] = 1.0;
            if (orthonormalise(v, comp, i, d) > 0.5)
                break;
        }
    }
done:
    nerve_xfree_aligned(xc);
    nerve_xfree_aligned(part);
    nerve_xfree_aligned(blk);
    nerve_xfree(g);
    nerve_xfree(w);
    nerve_xfree(u);
    return st;
}

static int covariance_components(nerve_pca *p, const float *x, double *comp)
{
    int d = p->d;
    double *cov = nerve_xmalloc((size_t)d * d * sizeof *cov), *w = nerve_xmalloc((size_t)d * sizeof *w);
    double *v = nerve_xmalloc((size_t)d * d * sizeof *v);
    int st = !cov || !w || !v ? NERVE_ERR_NOMEM : covariance(p, x, cov);
    if (st == NERVE_OK)
        st = nerve_symeig(d, cov, w, v);
    if (st == NERVE_OK) {
        for (int i = 0; i < p->k; i++)
            p->eigval[i] = w[i] > 0.0 ? w[i] : 0.0; /* rounding can leave -1e-17 for a zero */
        memcpy(comp, v, (size_t)p->k * d * sizeof *comp);
    }
    nerve_xfree(cov);
    nerve_xfree(w);
    nerve_xfree(v);
    return st;
}

int nerve_pca_fit(nerve_pca *p, const float *x, int n, int d, int k, int flags)
{
    if (!p)
        return nerve_set_error(NERVE_ERR_ARG, "pca: no result struct");
    memset(p, 0, sizeof *p);
    int small = n < d ? n : d;
    if (!x || n < 2 || d < 1)
        return nerve_set_error(NERVE_ERR_ARG, "pca: needs at least 2 samples of at least 1 "
                                              "feature (got %d x %d)", n, d);
    if ((flags & NERVE_PCA_GRAM) && (flags & NERVE_PCA_COVARIANCE))
        return nerve_set_error(NERVE_ERR_ARG, "pca: both the Gram and the covariance route "
                                              "were asked for; give one");
    if (flags & ~(NERVE_PCA_STANDARDISE | NERVE_PCA_GRAM | NERVE_PCA_COVARIANCE))
        return nerve_set_error(NERVE_ERR_ARG, "pca: unknown flags 0x%x", (unsigned)flags);
    int gram = (flags & NERVE_PCA_GRAM) || (!(flags & NERVE_PCA_COVARIANCE) && d > n);
    int order = gram ? n : d;
    if (order > MAX_ORDER)
        return nerve_set_error(NERVE_ERR_ARG, "pca: the %s route needs a %d x %d eigenproblem "
                                              "(at most %d); use the %s route or fewer %s",
                               gram ? "Gram" : "covariance", order, order, MAX_ORDER,
                               gram ? "covariance" : "Gram", gram ? "samples" : "features");
    if (k <= 0)
        k = small;
    if (k > small)
        return nerve_set_error(NERVE_ERR_ARG, "pca: %d components asked of %d samples of %d "
                                              "features (at most %d)", k, n, d, small);
    for (size_t q = 0; q < (size_t)n * d; q++)
        if (!isfinite(x[q]))
            return nerve_set_error(NERVE_ERR_NUMERIC, "pca: sample %zu, feature %zu is not "
                                                      "finite", q / (size_t)d, q % (size_t)d);
    p->n = n, p->d = d, p->k = k;
    p->flags = (flags & NERVE_PCA_STANDARDISE) | (gram ? NERVE_PCA_GRAM : NERVE_PCA_COVARIANCE);
    p->mean = nerve_xcalloc((size_t)d, sizeof *p->mean);
    p->scale = flags & NERVE_PCA_STANDARDISE ? nerve_xcalloc((size_t)d, sizeof *p->scale) : NULL;
    p->eigval = nerve_xcalloc((size_t)k, sizeof *p->eigval);
    p->components = nerve_xmalloc((size_t)k * d * sizeof *p->components);
    double *comp = nerve_xmalloc((size_t)k * d * sizeof *comp);
    int st = NERVE_OK;
    if (!p->mean || (flags & NERVE_PCA_STANDARDISE && !p->scale) || !p->eigval ||
        !p->components || !comp)
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = feature_stats(p, x);
    if (st == NERVE_OK)
        st = gram ? gram_components(p, x, comp) : covariance_components(p, x, comp);
    if (st == NERVE_OK)
        for (int i = 0; i < k; i++) {
            fix_sign(comp + (size_t)i * d, d);
            for (int j = 0; j < d; j++)
                p->components[(size_t)i * d + j] = (float)comp[(size_t)i * d + j];
        }
    nerve_xfree(comp);
    if (st < 0)
        nerve_pca_free(p);
    return st;
}

int nerve_pca_transform(const nerve_pca *p, const float *x, int n, int k, int whiten, float *out)
{
    if (!p || !p->components || !x || !out || n < 1 || k < 1 || k > p->k)
        return nerve_set_error(NERVE_ERR_ARG, "pca transform: bad arguments (%d components "
                                              "asked, the fit has %d)", k, p ? p->k : 0);
    if (whiten)
        for (int i = 0; i < k; i++)
            if (!(p->eigval[i] > 0.0))
                return nerve_set_error(NERVE_ERR_NUMERIC, "pca transform: component %d has no "
                                                          "variance and cannot be whitened; "
                                                          "ask for at most %d", i + 1, i);
    int d = p->d, rows = n < BLOCK ? n : BLOCK;
    float *buf = nerve_xalloc_floats((size_t)rows * d);
    if (!buf)
        return NERVE_ERR_NOMEM;
    for (int r0 = 0; r0 < n; r0 += BLOCK) {
        int r1 = r0 + BLOCK < n ? r0 + BLOCK : n;
        centre_rows(p, x, r0, r1, buf);
        /* codes [rows, k] = X_c [rows, d] components^T [d, k] */
        kern_sgemm(0, 1, r1 - r0, k, d, 1.0f, buf, d, p->components, d, 0.0f,
                   out + (size_t)r0 * k, k);
    }
    nerve_xfree_aligned(buf);
    if (whiten)
        for (size_t q = 0; q < (size_t)n * k; q++)
            out[q] = (float)(out[q] / sqrt(p->eigval[q % (size_t)k]));
    return NERVE_OK;
}

int nerve_pca_reconstruct(const nerve_pca *p, const float *codes, int n, int k, int whitened,
                          float *out)
{
    if (!p || !p->components || !codes || !out || n < 1 || k < 1 || k > p->k)
        return nerve_set_error(NERVE_ERR_ARG, "pca reconstruct: bad arguments (%d components "
                                              "given, the fit has %d)", k, p ? p->k : 0);
    int d = p->d;
    const float *c = codes;
    float *tmp = NULL;
    if (whitened) {
        tmp = nerve_xmalloc((size_t)n * k * sizeof *tmp);
        if (!tmp)
            return NERVE_ERR_NOMEM;
        for (size_t q = 0; q < (size_t)n * k; q++)
            tmp[q] = (float)(codes[q] * sqrt(p->eigval[q % (size_t)k]));
        c = tmp;
    }
    kern_sgemm(0, 0, n, d, k, 1.0f, c, k, p->components, d, 0.0f, out, d);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            float *o = out + (size_t)i * d + j;
            *o = (float)((p->scale ? *o * p->scale[j] : *o) + p->mean[j]);
        }
    nerve_xfree(tmp);
    return NERVE_OK;
}

double nerve_pca_proportion(const nerve_pca *p, int i)
{
    if (!p || i < 0 || i >= p->k || !(p->total_variance > 0.0))
        return NAN;
    return p->eigval[i] / p->total_variance;
}

double nerve_pca_cumulative(const nerve_pca *p, int i)
{
    if (!p || i < 0 || i >= p->k || !(p->total_variance > 0.0))
        return NAN;
    double s = 0.0;
    for (int j = 0; j <= i; j++)
        s += p->eigval[j];
    return s / p->total_variance;
}

int nerve_pca_scree_svg(const nerve_pca *p, const char *path, int kmax)
{
    if (!p || !p->eigval || !path)
        return nerve_set_error(NERVE_ERR_ARG, "pca scree: no fit or no path");
    if (kmax <= 0 || kmax > p->k)
        kmax = p->k;
    double *x = nerve_xmalloc((size_t)kmax * 3 * sizeof *x);
    if (!x)
        return NERVE_ERR_NOMEM;
    double *prop = x + kmax, *cum = prop + kmax;
    for (int i = 0; i < kmax; i++) {
        x[i] = i + 1;
        prop[i] = nerve_pca_proportion(p, i);
        cum[i] = nerve_pca_cumulative(p, i);
    }
    nerve_series s[2] = {{"proportion of variance", prop}, {"cumulative", cum}};
    int st = nerve_svg_lineplot(path, "PCA: scree plot", "principal component", x, kmax, s, 2);
    nerve_xfree(x);
    return st;
}
