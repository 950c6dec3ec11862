/* In-memory data sets: allocation, train/validation split, feature statistics, and the
 * mini-batch iterator. The loaders (idx.c, csv.c) build on nerve_dataset_alloc(). */
#include "../core/core.h"

#include <limits.h>
#include <math.h>
#include <string.h>

int nerve_dataset_alloc(nerve_dataset *d, int n, int ndim, const int *dims)
{
    if (!d || n < 0 || ndim < 0 || ndim > NERVE_MAX_DIMS || (ndim > 0 && !dims))
        return nerve_set_error(NERVE_ERR_ARG, "dataset: bad arguments (n %d, ndim %d)", n, ndim);
    memset(d, 0, sizeof *d);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0)
            return nerve_set_error(NERVE_ERR_ARG, "dataset: sample dimension %d is %d", i,
                                   dims[i]);
        if (numel > SIZE_MAX / sizeof(float) / (size_t)dims[i])
            return nerve_set_error(NERVE_ERR_ARG, "dataset: sample size overflows");
        numel *= (size_t)dims[i];
        d->dims[i] = dims[i];
    }
    if (n > 0 && numel > SIZE_MAX / sizeof(float) / (size_t)n)
        return nerve_set_error(NERVE_ERR_NOMEM, "dataset: %d samples of %zu floats overflow",
                               n, numel);
    d->x = nerve_xalloc_floats((size_t)n * numel);
    d->y = nerve_xalloc_floats((size_t)n);
    if (!d->x || !d->y) {
        nerve_dataset_free(d);
        return NERVE_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++)
        d->y[i] = -1.0f;
    d->n = n;
    d->ndim = ndim;
    d->sample_numel = numel;
    return NERVE_OK;
}

void nerve_dataset_free(nerve_dataset *d)
{
    if (!d)
        return;
    nerve_xfree_aligned(d->x);
    nerve_xfree_aligned(d->y);
    memset(d, 0, sizeof *d);
}

/* dst gets the samples src[idx[0..count)] (same sample shape and class count). */
static int gather(nerve_dataset *dst, const nerve_dataset *src, const int *idx, int count)
{
    int st = nerve_dataset_alloc(dst, count, src->ndim, src->dims);
    if (st < 0)
        return st;
    size_t m = src->sample_numel;
    for (int i = 0; i < count; i++) {
        memcpy(dst->x + (size_t)i * m, src->x + (size_t)idx[i] * m, m * sizeof(float));
        dst->y[i] = src->y[idx[i]];
    }
    dst->n_classes = src->n_classes;
    return NERVE_OK;
}

int nerve_dataset_split(nerve_dataset *d, nerve_dataset *val, float fraction, uint64_t seed)
{
    if (!d || !val || d == val || !d->x)
        return nerve_set_error(NERVE_ERR_ARG, "dataset split: bad arguments");
    if (!(fraction > 0.0f && fraction < 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "dataset split: fraction %g outside (0, 1)",
                               (double)fraction);
    int n_val = (int)floor((double)fraction * d->n + 0.5);
    int n_train = d->n - n_val;
    if (n_val < 1 || n_train < 1)
        return nerve_set_error(NERVE_ERR_ARG,
                               "dataset split: %d samples cannot give a fraction %g to "
                               "validation with both parts non-empty",
                               d->n, (double)fraction);
    int *order = nerve_xmalloc((size_t)d->n * sizeof *order);
    if (!order)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < d->n; i++)
        order[i] = i;
    if (seed != 0) {
        nerve_rng r;
        nerve_rng_seed(&r, seed);
        nerve_rng_shuffle(&r, order, d->n);
    }
    nerve_dataset train;
    int st = gather(&train, d, order, n_train);
    if (st == NERVE_OK) {
        st = gather(val, d, order + n_train, n_val);
        if (st < 0)
            nerve_dataset_free(&train);
    }
    nerve_xfree(order);
    if (st < 0)
        return st;
    nerve_dataset_free(d);
    *d = train;
    return NERVE_OK;
}

/* Two passes in double: the mean first, then the mean squared deviation from it, which
 * avoids the cancellation of E[x^2] - E[x]^2 on large, offset features. */
int nerve_dataset_stats(const nerve_dataset *d, float *mean, float *std)
{
    if (!d || !d->x || !mean || !std)
        return nerve_set_error(NERVE_ERR_ARG, "dataset stats: bad arguments");
    if (d->n <= 0)
        return nerve_set_error(NERVE_ERR_ARG, "dataset stats: empty data set");
    size_t m = d->sample_numel;
    double *acc = nerve_xcalloc(m, sizeof *acc);
    if (!acc)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < d->n; i++) {
        const float *row = d->x + (size_t)i * m;
        for (size_t j = 0; j < m; j++)
            acc[j] += row[j];
    }
    for (size_t j = 0; j < m; j++) {
        acc[j] /= d->n;
        mean[j] = (float)acc[j];
    }
    double *sq = nerve_xcalloc(m, sizeof *sq);
    if (!sq) {
        nerve_xfree(acc);
        return NERVE_ERR_NOMEM;
    }
    for (int i = 0; i < d->n; i++) {
        const float *row = d->x + (size_t)i * m;
        for (size_t j = 0; j < m; j++) {
            double dev = row[j] - acc[j];
            sq[j] += dev * dev;
        }
    }
    for (size_t j = 0; j < m; j++)
        std[j] = (float)sqrt(sq[j] / d->n);
    nerve_xfree(sq);
    nerve_xfree(acc);
    return NERVE_OK;
}

/* ---- mini-batches ---------------------------------------------------------------- */

int nerve_batcher_init(nerve_batcher *b, const nerve_dataset *d, int batch_size, int shuffle,
                       uint64_t seed)
{
    if (!b)
        return nerve_set_error(NERVE_ERR_ARG, "batcher: null batcher");
    memset(b, 0, sizeof *b);
    if (!d || !d->x || d->n <= 0)
        return nerve_set_error(NERVE_ERR_ARG, "batcher: empty or missing data set");
    if (batch_size <= 0)
        return nerve_set_error(NERVE_ERR_ARG, "batcher: batch size %d must be positive",
                               batch_size);
    b->order = nerve_xmalloc((size_t)d->n * sizeof *b->order);
    if (!b->order)
        return NERVE_ERR_NOMEM;
    b->d = d;
    b->batch_size = batch_size;
    b->shuffle = shuffle != 0;
    nerve_rng_seed(&b->rng, seed);
    nerve_batcher_reset(b);
    return NERVE_OK;
}

void nerve_batcher_free(nerve_batcher *b)
{
    if (!b)
        return;
    nerve_xfree(b->order);
    memset(b, 0, sizeof *b);
}

/* The order restarts from the identity each epoch, so an epoch's order depends only on
 * the generator's state (which a checkpoint can save). */
void nerve_batcher_reset(nerve_batcher *b)
{
    if (!b || !b->order)
        return;
    for (int i = 0; i < b->d->n; i++)
        b->order[i] = i;
    if (b->shuffle)
        nerve_rng_shuffle(&b->rng, b->order, b->d->n);
    b->pos = 0;
}

int nerve_batcher_next(nerve_batcher *b, float *x, float *y)
{
    if (!b || !b->order || b->pos >= b->d->n)
        return 0;
    const nerve_dataset *d = b->d;
    int count = d->n - b->pos;
    if (count > b->batch_size)
        count = b->batch_size;
    size_t m = d->sample_numel;
    for (int i = 0; i < count; i++) {
        int s = b->order[b->pos + i];
        if (x)
            memcpy(x + (size_t)i * m, d->x + (size_t)s * m, m * sizeof(float));
        if (y)
            y[i] = d->y[s];
    }
    b->pos += count;
    return count;
}
