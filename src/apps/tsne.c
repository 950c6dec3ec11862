/* t-SNE: affinities by perplexity, the KL divergence and its gradient (exact, or with the
 * repulsion summed by Barnes-Hut over a quadtree), and the optimiser (momentum, gains,
 * early exaggeration). docs/unsupervised.md. */
#include "tsne.h"

#include "../core/core.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXACT 10000   /* dense P: n^2 doubles */
#define KNN_BLOCK 256     /* query rows per SGEMM block of the neighbour search */
#define MAX_DEPTH 48      /* quadtree levels; deeper points share a leaf */

void nerve_tsne_defaults(nerve_tsne_options *o)
{
    memset(o, 0, sizeof *o);
    o->dims = 2;
    o->perplexity = 30.0;
    o->iterations = 1000;
    o->learning_rate = 0.0;
    o->exaggeration = 12.0;
    o->exaggeration_iters = 250;
    o->momentum = 0.5;
    o->final_momentum = 0.8;
    o->theta = 0.5;
    o->init = NERVE_TSNE_INIT_PCA;
    o->report_every = 50;
}

/* ---- affinities -------------------------------------------------------------------------- */

double tsne_conditional(const double *d2, int m, double perplexity, double *p)
{
    double target = log(perplexity), beta = 1.0, lo = -INFINITY, hi = INFINITY, dmin = INFINITY;
    for (int j = 0; j < m; j++)
        dmin = fmin(dmin, d2[j]);
    /* distances are shifted by their minimum: the same distribution, no underflow */
    for (int step = 0; step < 100; step++) {
        double sum = 0.0, wsum = 0.0;
        for (int j = 0; j < m; j++) {
            p[j] = exp(-(d2[j] - dmin) * beta);
            sum += p[j];
            wsum += (d2[j] - dmin) * p[j];
        }
        double h = log(sum) + beta * wsum / sum;
        for (int j = 0; j < m; j++)
            p[j] /= sum;
        if (fabs(h - target) <= 1e-5)
            break;
        if (h > target) {
            lo = beta;
            beta = isinf(hi) ? beta * 2.0 : (beta + hi) / 2.0;
        } else {
            hi = beta;
            beta = isinf(lo) ? beta / 2.0 : (beta + lo) / 2.0;
        }
    }
    return beta;
}

static double dist2(const float *a, const float *b, int d)
{
    double s = 0.0;
    for (int k = 0; k < d; k++) {
        double t = (double)a[k] - b[k];
        s += t * t;
    }
    return s;
}

typedef struct {
    const float *x;
    int n, d;
    double perplexity;
    double *P;
} dense_ctx;

static void dense_rows(void *vctx, size_t r0, size_t r1)
{
    dense_ctx *c = vctx;
    int n = c->n;
    double *d2 = nerve_xmalloc((size_t)n * sizeof *d2), *p = nerve_xmalloc((size_t)n * sizeof *p);
    if (!d2 || !p) {
        nerve_xfree(d2), nerve_xfree(p);
        for (size_t i = r0; i < r1; i++) /* marks the failure for the caller */
            c->P[i * n + i] = NAN;
        return;
    }
    for (size_t i = r0; i < r1; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            if ((size_t)j != i)
                d2[m++] = dist2(c->x + i * c->d, c->x + (size_t)j * c->d, c->d);
        tsne_conditional(d2, m, c->perplexity, p);
        m = 0;
        for (int j = 0; j < n; j++)
            c->P[i * n + j] = (size_t)j == i ? 0.0 : p[m++];
    }
    nerve_xfree(d2), nerve_xfree(p);
}

int tsne_dense_p(const float *x, int n, int d, double perplexity, double *P)
{
    dense_ctx c = {x, n, d, perplexity, P};
    kern_parallel_for((size_t)n, 16, dense_rows, &c);
    for (int i = 0; i < n; i++)
        if (isnan(P[(size_t)i * n + i]))
            return nerve_set_error(NERVE_ERR_NOMEM, "t-SNE: out of memory computing affinities");
    for (int i = 0; i < n; i++) /* symmetrise: (p_j|i + p_i|j) / 2n */
        for (int j = 0; j < i; j++) {
            double v = (P[(size_t)i * n + j] + P[(size_t)j * n + i]) / (2.0 * n);
            P[(size_t)i * n + j] = P[(size_t)j * n + i] = v;
        }
    return NERVE_OK;
}

void tsne_sparse_free(tsne_sparse *P)
{
    nerve_xfree(P->row);
    nerve_xfree(P->col);
    nerve_xfree(P->val);
    memset(P, 0, sizeof *P);
}

typedef struct {
    const float *x, *g; /* g: the block's products x_i . x_j, [rows, n] */
    const double *norm;
    int n, d, k, r0;
    double perplexity;
    int *nbr;       /* [n, k] */
    double *pcond;  /* [n, k] */
    int failed;
} knn_ctx;

/* Sift-down in a max-heap of (distance, index) of size k. */
static void heap_down(double *hd, int *hi, int k, int at)
{
    for (;;) {
        int l = 2 * at + 1, r = l + 1, big = at;
        if (l < k && hd[l] > hd[big])
            big = l;
        if (r < k && hd[r] > hd[big])
            big = r;
        if (big == at)
            return;
        double td = hd[at];
        hd[at] = hd[big], hd[big] = td;
        int ti = hi[at];
        hi[at] = hi[big], hi[big] = ti;
        at = big;
    }
}

static void knn_rows(void *vctx, size_t b0, size_t b1)
{
    knn_ctx *c = vctx;
    int n = c->n, k = c->k;
    double *hd = nerve_xmalloc((size_t)k * sizeof *hd);
    int *hi = nerve_xmalloc((size_t)k * sizeof *hi);
    if (!hd || !hi) {
        c->failed = 1;
        nerve_xfree(hd), nerve_xfree(hi);
        return;
    }
    for (size_t b = b0; b < b1; b++) {
        int i = c->r0 + (int)b, m = 0;
        const float *g = c->g + b * n;
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            double v = c->norm[i] + c->norm[j] - 2.0 * g[j];
            if (m < k) {
                hd[m] = v, hi[m] = j;
                if (++m == k)
                    for (int a = k / 2 - 1; a >= 0; a--)
                        heap_down(hd, hi, k, a);
            } else if (v < hd[0]) {
                hd[0] = v, hi[0] = j;
                heap_down(hd, hi, k, 0);
            }
        }
        /* exact distances of the chosen neighbours (the expansion above cancels) */
        for (int a = 0; a < k; a++)
            hd[a] = dist2(c->x + (size_t)i * c->d, c->x + (size_t)hi[a] * c->d, c->d);
        memcpy(c->nbr + (size_t)i * k, hi, (size_t)k * sizeof *hi);
        tsne_conditional(hd, k, c->perplexity, c->pcond + (size_t)i * k);
    }
    nerve_xfree(hd), nerve_xfree(hi);
}

typedef struct {
    int col;
    double val;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    int x = ((const entry *)a)->col, y = ((const entry *)b)->col;
    return (x > y) - (x < y);
}

/* (p_j|i + p_i|j) / 2n over the union of both neighbour lists. */
static int symmetrise(int n, int k, const int *nbr, const double *pcond, tsne_sparse *P)
{
    size_t total = (size_t)2 * n * k;
    size_t *count = nerve_xcalloc((size_t)n + 1, sizeof *count);
    entry *e = nerve_xmalloc(total * sizeof *e);
    if (!count || !e) {
        nerve_xfree(count), nerve_xfree(e);
        return NERVE_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++)
        for (int a = 0; a < k; a++) {
            count[i + 1]++;
            count[nbr[(size_t)i * k + a] + 1]++;
        }
    for (int i = 0; i < n; i++)
        count[i + 1] += count[i];
    size_t *fill = nerve_xmalloc((size_t)n * sizeof *fill);
    if (!fill) {
        nerve_xfree(count), nerve_xfree(e);
        return NERVE_ERR_NOMEM;
    }
    memcpy(fill, count, (size_t)n * sizeof *fill);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < k; a++) {
            int j = nbr[(size_t)i * k + a];
            double v = pcond[(size_t)i * k + a];
            e[fill[i]++] = (entry){j, v};
            e[fill[j]++] = (entry){i, v};
        }
    nerve_xfree(fill);
    P->n = n;
    P->row = nerve_xmalloc(((size_t)n + 1) * sizeof *P->row);
    P->col = nerve_xmalloc(total * sizeof *P->col);
    P->val = nerve_xmalloc(total * sizeof *P->val);
    if (!P->row || !P->col || !P->val) {
        nerve_xfree(count), nerve_xfree(e);
        tsne_sparse_free(P);
        return NERVE_ERR_NOMEM;
    }
    size_t out = 0;
    for (int i = 0; i < n; i++) {
        P->row[i] = out;
        entry *r = e + count[i];
        size_t len = count[i + 1] - count[i];
        qsort(r, len, sizeof *r, entry_cmp);
        for (size_t a = 0; a < len; a++) {
            if (out > P->row[i] && P->col[out - 1] == r[a].col)
                P->val[out - 1] += r[a].val / (2.0 * n);
            else {
                P->col[out] = r[a].col;
                P->val[out++] = r[a].val / (2.0 * n);
            }
        }
    }
    P->row[n] = out;
    nerve_xfree(count), nerve_xfree(e);
    return NERVE_OK;
}

int tsne_sparse_p(const float *x, int n, int d, double perplexity, int k, tsne_sparse *P)
{
    memset(P, 0, sizeof *P);
    int rows = n < KNN_BLOCK ? n : KNN_BLOCK, st = NERVE_OK;
    double *norm = nerve_xmalloc((size_t)n * sizeof *norm);
    float *g = nerve_xalloc_floats((size_t)rows * n);
    int *nbr = nerve_xmalloc((size_t)n * k * sizeof *nbr);
    double *pcond = nerve_xmalloc((size_t)n * k * sizeof *pcond);
    if (!norm || !g || !nbr || !pcond) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int q = 0; q < d; q++)
            s += (double)x[(size_t)i * d + q] * x[(size_t)i * d + q];
        norm[i] = s;
    }
    knn_ctx c = {x, g, norm, n, d, k, 0, perplexity, nbr, pcond, 0};
    for (int r0 = 0; r0 < n; r0 += KNN_BLOCK) {
        int r1 = r0 + KNN_BLOCK < n ? r0 + KNN_BLOCK : n;
        kern_sgemm(0, 1, r1 - r0, n, d, 1.0f, x + (size_t)r0 * d, d, x, d, 0.0f, g, n);
        c.r0 = r0;
        kern_parallel_for((size_t)(r1 - r0), 8, knn_rows, &c);
        if (c.failed) {
            st = nerve_set_error(NERVE_ERR_NOMEM, "t-SNE: out of memory in the neighbour search");
            goto done;
        }
    }
    st = symmetrise(n, k, nbr, pcond, P);
done:
    nerve_xfree(norm);
    nerve_xfree_aligned(g);
    nerve_xfree(nbr);
    nerve_xfree(pcond);
    return st;
}

/* ---- exact KL and gradient ----------------------------------------------------------------- */

typedef struct {
    const double *P, *y;
    int n, dims;
    double z;         /* sum of q^u over all pairs (second pass) */
    double *zrow, *klrow, *grad;
} dense_grad_ctx;

static double pair_q(const double *y, int i, int j, int dims)
{
    double s = 0.0;
    for (int a = 0; a < dims; a++) {
        double t = y[i * dims + a] - y[j * dims + a];
        s += t * t;
    }
    return 1.0 / (1.0 + s);
}

static void dense_z_rows(void *vctx, size_t r0, size_t r1)
{
    dense_grad_ctx *c = vctx;
    for (size_t i = r0; i < r1; i++) {
        double s = 0.0;
        for (int j = 0; j < c->n; j++)
            if ((size_t)j != i)
                s += pair_q(c->y, (int)i, j, c->dims);
        c->zrow[i] = s;
    }
}

static void dense_grad_rows(void *vctx, size_t r0, size_t r1)
{
    dense_grad_ctx *c = vctx;
    int n = c->n, dims = c->dims;
    for (size_t i = r0; i < r1; i++) {
        double kl = 0.0, g[3] = {0, 0, 0};
        for (int j = 0; j < n; j++) {
            if ((size_t)j == i)
                continue;
            double qu = pair_q(c->y, (int)i, j, dims), p = c->P[i * n + j];
            if (p > 0.0)
                kl += p * log(p / (qu / c->z));
            double m = (p - qu / c->z) * qu;
            for (int a = 0; a < dims; a++)
                g[a] += m * (c->y[i * dims + a] - c->y[(size_t)j * dims + a]);
        }
        c->klrow[i] = kl;
        if (c->grad)
            for (int a = 0; a < dims; a++)
                c->grad[i * dims + a] = 4.0 * g[a];
    }
}

double tsne_kl_dense(const double *P, const double *y, int n, int dims, double *grad)
{
    double *zrow = nerve_xmalloc((size_t)n * 2 * sizeof *zrow);
    if (!zrow)
        return NAN;
    dense_grad_ctx c = {P, y, n, dims, 0.0, zrow, zrow + n, grad};
    kern_parallel_for((size_t)n, 32, dense_z_rows, &c);
    for (int i = 0; i < n; i++)
        c.z += zrow[i];
    kern_parallel_for((size_t)n, 32, dense_grad_rows, &c);
    double kl = 0.0;
    for (int i = 0; i < n; i++)
        kl += c.klrow[i];
    nerve_xfree(zrow);
    return kl;
}

/* ---- Barnes-Hut ---------------------------------------------------------------------------- */

typedef struct {
    double cx, cy, hw; /* cell centre and half width */
    double mx, my;     /* centre of mass */
    int count;
    int child;         /* first of 4 children, -1 for a leaf */
    int point;         /* a leaf's first point (-1: empty); the others follow in next[] */
} qnode;

typedef struct {
    qnode *node;
    int used, cap;
    int *next;
    const double *y;
} qtree;

static int qt_new_children(qtree *t, int parent)
{
    if (t->used + 4 > t->cap) {
        int cap = t->cap * 2 + 64;
        qnode *p = nerve_xrealloc(t->node, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        t->node = p, t->cap = cap;
    }
    qnode *q = &t->node[parent];
    int c = t->used;
    t->used += 4;
    for (int k = 0; k < 4; k++) {
        double h = q->hw / 2;
        t->node[c + k] = (qnode){q->cx + (k & 1 ? h : -h), q->cy + (k & 2 ? h : -h), h, 0, 0, 0,
                                 -1, -1};
    }
    q->child = c;
    return c;
}

static int quadrant(const qnode *q, double x, double y)
{
    return (x >= q->cx) | (y >= q->cy) << 1;
}

static int qt_insert(qtree *t, int i)
{
    double px = t->y[2 * i], py = t->y[2 * i + 1];
    int at = 0;
    for (int depth = 0;; depth++) {
        qnode *q = &t->node[at];
        q->count++;
        q->mx += (px - q->mx) / q->count;
        q->my += (py - q->my) / q->count;
        if (q->child < 0) {
            int j = q->point;
            if (j < 0 || (t->y[2 * j] == px && t->y[2 * j + 1] == py) || depth >= MAX_DEPTH) {
                t->next[i] = j; /* an empty leaf, the same position, or deep enough */
                q->point = i;
                return 0;
            }
            /* split: the leaf's points (all at j's position) move to one child */
            int c = qt_new_children(t, at);
            if (c < 0)
                return -1;
            q = &t->node[at];
            qnode *ch = &t->node[c + quadrant(q, t->y[2 * j], t->y[2 * j + 1])];
            ch->point = j;
            ch->count = q->count - 1;
            ch->mx = t->y[2 * j], ch->my = t->y[2 * j + 1];
            q->point = -1;
        }
        at = q->child + quadrant(q, px, py);
    }
}

static int qt_build(qtree *t, const double *y, int n)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, y[2 * i]), x1 = fmax(x1, y[2 * i]);
        y0 = fmin(y0, y[2 * i + 1]), y1 = fmax(y1, y[2 * i + 1]);
    }
    double hw = fmax(x1 - x0, y1 - y0) / 2;
    hw = hw * (1 + 1e-6) + 1e-12;
    t->used = 1;
    t->y = y;
    t->node[0] = (qnode){(x0 + x1) / 2, (y0 + y1) / 2, hw, 0, 0, 0, -1, -1};
    for (int i = 0; i < n; i++)
        if (qt_insert(t, i) < 0)
            return -1;
    return 0;
}

/* Repulsion on point i: sum over the others of q^u and of (q^u)^2 (y_i - y_j). */
static void qt_repulse(const qtree *t, int at, int i, double theta2, double *f, double *z)
{
    const qnode *q = &t->node[at];
    if (q->count == 0)
        return;
    double px = t->y[2 * i], py = t->y[2 * i + 1];
    if (q->child < 0) {
        for (int j = q->point; j >= 0; j = t->next[j]) {
            if (j == i)
                continue;
            double dx = px - t->y[2 * j], dy = py - t->y[2 * j + 1];
            double qu = 1.0 / (1.0 + dx * dx + dy * dy);
            *z += qu;
            f[0] += qu * qu * dx, f[1] += qu * qu * dy;
        }
        return;
    }
    double dx = px - q->mx, dy = py - q->my, d2 = dx * dx + dy * dy, w = 2 * q->hw;
    if (w * w < theta2 * d2) {
        double qu = 1.0 / (1.0 + d2);
        *z += q->count * qu;
        f[0] += q->count * qu * qu * dx, f[1] += q->count * qu * qu * dy;
        return;
    }
    for (int k = 0; k < 4; k++)
        qt_repulse(t, q->child + k, i, theta2, f, z);
}

typedef struct {
    const tsne_sparse *P;
    const qtree *t;
    const double *y;
    double theta2;
    double *neg, *zrow, *pos, *klrow;
    int want_kl;
} bh_ctx;

static void bh_rows(void *vctx, size_t r0, size_t r1)
{
    bh_ctx *c = vctx;
    const double *y = c->y;
    for (size_t i = r0; i < r1; i++) {
        double f[2] = {0, 0}, z = 0.0;
        qt_repulse(c->t, 0, (int)i, c->theta2, f, &z);
        c->neg[2 * i] = f[0], c->neg[2 * i + 1] = f[1];
        c->zrow[i] = z;
        double px = 0.0, py = 0.0, kl = 0.0; /* kl: sum p log p - p log q^u (Z added later) */
        for (size_t e = c->P->row[i]; e < c->P->row[i + 1]; e++) {
            int j = c->P->col[e];
            double p = c->P->val[e], dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            double qu = 1.0 / (1.0 + dx * dx + dy * dy);
            px += p * qu * dx, py += p * qu * dy;
            if (c->want_kl && p > 0.0)
                kl += p * log(p / qu);
        }
        c->pos[2 * i] = px, c->pos[2 * i + 1] = py;
        c->klrow[i] = kl;
    }
}

/* One gradient of the sparse-P objective (KL only if want_kl; NAN on allocation failure). */
static double bh_gradient(const tsne_sparse *P, const double *y, int n, double theta, qtree *t,
                          double *work, double *grad, int want_kl)
{
    if (qt_build(t, y, n) < 0)
        return NAN;
    bh_ctx c = {P, t, y, theta * theta, work, work + 2 * n, work + 3 * n, work + 5 * n, want_kl};
    kern_parallel_for((size_t)n, 64, bh_rows, &c);
    double z = 0.0, psum = 0.0, kl = 0.0;
    for (int i = 0; i < n; i++)
        z += c.zrow[i];
    for (int i = 0; i < n; i++)
        for (int a = 0; a < 2; a++)
            grad[2 * i + a] = 4.0 * (c.pos[2 * i + a] - c.neg[2 * i + a] / z);
    if (!want_kl)
        return 0.0;
    for (size_t e = 0; e < P->row[n]; e++)
        psum += P->val[e];
    for (int i = 0; i < n; i++)
        kl += c.klrow[i];
    return kl + psum * log(z);
}

static int qt_init(qtree *t, int n)
{
    memset(t, 0, sizeof *t);
    t->cap = 4 * n + 64;
    t->node = nerve_xmalloc((size_t)t->cap * sizeof *t->node);
    t->next = nerve_xmalloc((size_t)n * sizeof *t->next);
    return t->node && t->next ? 0 : -1;
}

static void qt_free(qtree *t)
{
    nerve_xfree(t->node);
    nerve_xfree(t->next);
}

double tsne_kl_bh(const tsne_sparse *P, const double *y, int n, double theta, double *grad)
{
    qtree t;
    double *work = nerve_xmalloc((size_t)n * 6 * sizeof *work);
    double kl = NAN;
    if (qt_init(&t, n) == 0 && work)
        kl = bh_gradient(P, y, n, theta, &t, work, grad, 1);
    qt_free(&t);
    nerve_xfree(work);
    return kl;
}

/* ---- the optimiser ----------------------------------------------------------------------- */

static int check_options(const nerve_tsne_options *o, int n, int d, int *k)
{
    if (o->dims < 1 || o->dims > 3)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: %d output dimensions (1 to 3)", o->dims);
    if (o->theta > 0 && o->dims != 2)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: Barnes-Hut (theta %g) embeds in 2 "
                                              "dimensions only; use theta=0 (exact) for %d",
                               o->theta, o->dims);
    if (o->theta > 0.7)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: theta %g is above 0.7 (a cell holding "
                                              "the point itself could be summarised)", o->theta);
    if (n < 3 || d < 1)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: needs at least 3 points (got %d of %d "
                                              "features)", n, d);
    if (o->theta <= 0 && n > MAX_EXACT)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: exact t-SNE of %d points (at most %d); "
                                              "use Barnes-Hut (theta 0.5)", n, MAX_EXACT);
    *k = o->theta <= 0 ? n - 1 : (int)fmin(n - 1.0, floor(3.0 * o->perplexity + 1.0));
    if (!(o->perplexity >= 1.0) || !(o->perplexity < *k))
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: perplexity %g must be at least 1 and "
                                              "below the %d neighbours of each point (%d points)",
                               o->perplexity, *k, n);
    if (o->iterations < 1 || o->exaggeration_iters < 0 || !(o->exaggeration > 0) ||
        !(o->momentum >= 0 && o->momentum < 1) ||
        !(o->final_momentum >= 0 && o->final_momentum < 1) || !isfinite(o->learning_rate))
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: bad optimiser settings (iterations %d, "
                                              "exaggeration %g for %d, momentum %g/%g)",
                               o->iterations, o->exaggeration, o->exaggeration_iters,
                               o->momentum, o->final_momentum);
    if (o->init != NERVE_TSNE_INIT_PCA && o->init != NERVE_TSNE_INIT_RANDOM)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: unknown initialisation %d", o->init);
    return NERVE_OK;
}

static int initialise(const float *x, int n, int d, const nerve_tsne_options *o, double *y)
{
    int dims = o->dims;
    if (o->init == NERVE_TSNE_INIT_RANDOM) {
        nerve_rng r;
        nerve_rng_seed(&r, o->seed);
        for (size_t q = 0; q < (size_t)n * dims; q++)
            y[q] = 1e-4 * nerve_rng_normal(&r);
        return NERVE_OK;
    }
    if (dims > (n < d ? n : d))
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: PCA initialisation needs %d components "
                                              "of %d points with %d features", dims, n, d);
    nerve_pca p;
    float *codes = nerve_xmalloc((size_t)n * dims * sizeof *codes);
    int st = codes ? nerve_pca_fit(&p, x, n, d, dims, 0) : NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        st = nerve_pca_transform(&p, x, n, dims, 0, codes);
        nerve_pca_free(&p);
    }
    if (st == NERVE_OK) {
        double m = 0.0, v = 0.0;
        for (int i = 0; i < n; i++)
            m += codes[(size_t)i * dims];
        m /= n;
        for (int i = 0; i < n; i++)
            v += (codes[(size_t)i * dims] - m) * (codes[(size_t)i * dims] - m);
        double sd = sqrt(v / n);
        if (!(sd > 0.0))
            st = nerve_set_error(NERVE_ERR_NUMERIC, "t-SNE: the points have no variance; "
                                                    "nothing to embed");
        for (size_t q = 0; st == NERVE_OK && q < (size_t)n * dims; q++)
            y[q] = codes[q] / sd * 1e-4;
    }
    nerve_xfree(codes);
    return st;
}

int nerve_tsne(const float *x, int n, int d, const nerve_tsne_options *opt, float *y_out,
               double *kl_out)
{
    nerve_tsne_options o;
    if (opt)
        o = *opt;
    else
        nerve_tsne_defaults(&o);
    int k = 0, st;
    if (!x || !y_out)
        return nerve_set_error(NERVE_ERR_ARG, "t-SNE: no input or output");
    if ((st = check_options(&o, n, d, &k)) < 0)
        return st;
    for (size_t q = 0; q < (size_t)n * d; q++)
        if (!isfinite(x[q]))
            return nerve_set_error(NERVE_ERR_NUMERIC, "t-SNE: point %zu, feature %zu is not "
                                                      "finite", q / (size_t)d, q % (size_t)d);
    int exact = o.theta <= 0, dims = o.dims;
    size_t m = (size_t)n * dims;
    double lr = o.learning_rate > 0 ? o.learning_rate : fmax(n / o.exaggeration / 4.0, 50.0);
    double *y = nerve_xmalloc(m * 4 * sizeof *y), *dense = NULL, *work = NULL;
    double *grad = y + m, *update = grad + m, *gains = update + m;
    tsne_sparse P = {0};
    qtree t = {0};
    if (!y)
        return NERVE_ERR_NOMEM;
    if (exact) {
        dense = nerve_xmalloc((size_t)n * n * sizeof *dense);
        st = dense ? tsne_dense_p(x, n, d, o.perplexity, dense) : NERVE_ERR_NOMEM;
    } else {
        st = tsne_sparse_p(x, n, d, o.perplexity, k, &P);
        work = nerve_xmalloc((size_t)n * 6 * sizeof *work);
        if (st == NERVE_OK && (!work || qt_init(&t, n) < 0))
            st = NERVE_ERR_NOMEM;
    }
    if (st == NERVE_OK)
        st = initialise(x, n, d, &o, y);
    double *pv = exact ? dense : P.val;
    size_t pn = exact ? (size_t)n * n : (st == NERVE_OK ? P.row[n] : 0);
    double factor = o.exaggeration_iters > 0 ? o.exaggeration : 1.0, kl = NAN;
    for (size_t q = 0; st == NERVE_OK && q < pn; q++)
        pv[q] *= factor;
    for (int it = 0; st == NERVE_OK && it < o.iterations; it++) {
        if (it == 0 || it == o.exaggeration_iters) { /* a phase starts */
            if (it > 0 && factor != 1.0) {
                for (size_t q = 0; q < pn; q++)
                    pv[q] /= factor;
                factor = 1.0;
            }
            for (size_t q = 0; q < m; q++)
                update[q] = 0.0, gains[q] = 1.0;
        }
        int report = o.report_every > 0 && (it + 1) % o.report_every == 0;
        int want = report || it + 1 == o.iterations;
        kl = exact ? tsne_kl_dense(dense, y, n, dims, grad)
                   : bh_gradient(&P, y, n, o.theta, &t, work, grad, want);
        if (isnan(kl)) {
            st = nerve_set_error(NERVE_ERR_NOMEM, "t-SNE: out of memory in iteration %d", it + 1);
            break;
        }
        double mom = it < o.exaggeration_iters ? o.momentum : o.final_momentum;
        for (size_t q = 0; q < m; q++) {
            gains[q] = update[q] * grad[q] < 0.0 ? gains[q] + 0.2 : gains[q] * 0.8;
            if (gains[q] < 0.01)
                gains[q] = 0.01;
            update[q] = mom * update[q] - lr * gains[q] * grad[q];
            y[q] += update[q];
        }
        if (!isfinite(y[0]))
            st = nerve_set_error(NERVE_ERR_NUMERIC, "t-SNE: the embedding diverged in "
                                                    "iteration %d; lower the learning rate "
                                                    "(%g)", it + 1, lr);
        if (st == NERVE_OK && report && o.progress && o.progress(it + 1, kl, o.user))
            break;
    }
    if (st == NERVE_OK) {
        /* the KL of the final embedding, with P as given */
        for (size_t q = 0; q < pn && factor != 1.0; q++)
            pv[q] /= factor;
        kl = exact ? tsne_kl_dense(dense, y, n, dims, grad)
                   : bh_gradient(&P, y, n, o.theta, &t, work, grad, 1);
        for (size_t q = 0; q < m; q++)
            y_out[q] = (float)y[q];
        if (kl_out)
            *kl_out = kl;
    }
    nerve_xfree(y);
    nerve_xfree(dense);
    nerve_xfree(work);
    tsne_sparse_free(&P);
    qt_free(&t);
    return st;
}
