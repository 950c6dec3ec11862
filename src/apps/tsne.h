/* t-SNE internals shared with the tests (src/apps/tsne.c). */
#ifndef NERVE_APPS_TSNE_H
#define NERVE_APPS_TSNE_H

#include <stddef.h>

/* Joint probabilities as a symmetric sparse matrix in compressed rows: the entries of row i
 * are col[row[i] .. row[i+1]) with values val (all rows together sum to 1). */
typedef struct {
    int n;
    size_t *row;
    int *col;
    double *val;
} tsne_sparse;

/* One point's conditional distribution over m neighbours at squared distances d2: the
 * precision beta of exp(-beta d2) whose distribution has entropy log(perplexity) (binary
 * search, |H - log perplexity| <= 1e-5 or 100 steps). Writes p (sums to 1); returns beta. */
double tsne_conditional(const double *d2, int m, double perplexity, double *p);
/* Dense joint P [n, n] of x [n, d] over all pairs ((p_j|i + p_i|j) / 2n). */
int tsne_dense_p(const float *x, int n, int d, double perplexity, double *P);
/* Sparse joint P over the k nearest neighbours of every point. */
int tsne_sparse_p(const float *x, int n, int d, double perplexity, int k, tsne_sparse *P);
void tsne_sparse_free(tsne_sparse *P);
/* KL(P || Q) of the embedding y [n, dims] and its gradient grad [n, dims] (may be NULL),
 * exactly, for a dense P. */
double tsne_kl_dense(const double *P, const double *y, int n, int dims, double *grad);
/* The same for a sparse P with the repulsion by Barnes-Hut (dims 2) at angle theta (0: every
 * leaf visited, exact). */
double tsne_kl_bh(const tsne_sparse *P, const double *y, int n, double theta, double *grad);

#endif
