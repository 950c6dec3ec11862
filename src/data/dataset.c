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
    d->ignore_index = -1;
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
    nerve_xfree_aligned(d->t);
    nerve_xfree(d->box_start);
    nerve_xfree(d->boxes);
    for (int i = 0; i < d->n_names; i++)
        nerve_xfree(d->names[i]);
    nerve_xfree(d->names);
    memset(d, 0, sizeof *d);
}

int nerve_dataset_alloc_target(nerve_dataset *d, nerve_target_kind kind, int tndim,
                               const int *tdims)
{
    if (!d || d->n < 0 || tndim < 0 || tndim > NERVE_MAX_DIMS || (tndim > 0 && !tdims))
        return nerve_set_error(NERVE_ERR_ARG, "dataset target: bad arguments");
    int stored = kind == NERVE_TARGET_VALUES || kind == NERVE_TARGET_MASK ||
                 kind == NERVE_TARGET_TOKENS;
    if (!stored && kind != NERVE_TARGET_CLASS && kind != NERVE_TARGET_INPUT)
        return nerve_set_error(NERVE_ERR_ARG,
                               "dataset target: boxes are set with nerve_dataset_set_boxes");
    size_t numel = 1;
    for (int i = 0; i < tndim; i++) {
        if (tdims[i] <= 0)
            return nerve_set_error(NERVE_ERR_ARG, "dataset target: dimension %d is %d", i,
                                   tdims[i]);
        if (numel > SIZE_MAX / sizeof(float) / (size_t)tdims[i])
            return nerve_set_error(NERVE_ERR_ARG, "dataset target: size overflows");
        numel *= (size_t)tdims[i];
    }
    if (stored && d->n > 0 && numel > SIZE_MAX / sizeof(float) / (size_t)d->n)
        return nerve_set_error(NERVE_ERR_NOMEM, "dataset target: %d samples of %zu floats "
                               "overflow", d->n, numel);
    float *t = NULL;
    if (stored) {
        t = nerve_xalloc_floats((size_t)d->n * numel);
        if (!t)
            return NERVE_ERR_NOMEM;
        memset(t, 0, (size_t)d->n * numel * sizeof(float));
    }
    nerve_xfree_aligned(d->t);
    d->t = t;
    d->target = kind;
    d->tndim = stored ? tndim : 0;
    memset(d->tdims, 0, sizeof d->tdims);
    for (int i = 0; i < d->tndim; i++)
        d->tdims[i] = tdims[i];
    d->target_numel = stored ? numel : 0;
    return NERVE_OK;
}

int nerve_dataset_set_boxes(nerve_dataset *d, const int *counts, const nerve_box *boxes)
{
    if (!d || d->n < 0 || (d->n > 0 && !counts))
        return nerve_set_error(NERVE_ERR_ARG, "dataset boxes: bad arguments");
    int64_t *start = nerve_xmalloc(((size_t)d->n + 1) * sizeof *start);
    if (!start)
        return NERVE_ERR_NOMEM;
    start[0] = 0;
    for (int i = 0; i < d->n; i++) {
        if (counts[i] < 0) {
            nerve_xfree(start);
            return nerve_set_error(NERVE_ERR_ARG, "dataset boxes: sample %d has %d boxes", i,
                                   counts[i]);
        }
        start[i + 1] = start[i] + counts[i];
    }
    int64_t total = start[d->n];
    if (total > 0 && !boxes) {
        nerve_xfree(start);
        return nerve_set_error(NERVE_ERR_ARG, "dataset boxes: no boxes given");
    }
    nerve_box *copy = NULL;
    if (total > 0) {
        copy = nerve_xmalloc((size_t)total * sizeof *copy);
        if (!copy) {
            nerve_xfree(start);
            return NERVE_ERR_NOMEM;
        }
        memcpy(copy, boxes, (size_t)total * sizeof *copy);
    }
    nerve_xfree_aligned(d->t);
    nerve_xfree(d->box_start);
    nerve_xfree(d->boxes);
    d->t = NULL;
    d->target_numel = 0;
    d->tndim = 0;
    d->box_start = start;
    d->boxes = copy;
    d->target = NERVE_TARGET_BOXES;
    return NERVE_OK;
}

int nerve_dataset_set_names(nerve_dataset *d, int n, const char *const *names)
{
    if (!d || n < 0 || (n > 0 && !names))
        return nerve_set_error(NERVE_ERR_ARG, "dataset names: bad arguments");
    char **copy = n ? nerve_xcalloc((size_t)n, sizeof *copy) : NULL;
    if (n && !copy)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        copy[i] = nerve_xmalloc(len + 1);
        if (!copy[i]) {
            for (int j = 0; j < i; j++)
                nerve_xfree(copy[j]);
            nerve_xfree(copy);
            return NERVE_ERR_NOMEM;
        }
        memcpy(copy[i], names[i], len + 1);
    }
    for (int i = 0; i < d->n_names; i++)
        nerve_xfree(d->names[i]);
    nerve_xfree(d->names);
    d->names = copy;
    d->n_names = n;
    return NERVE_OK;
}

/* dst (allocated with count samples) gets the targets and names of src[idx[0..count)]. */
static int gather_targets(nerve_dataset *dst, const nerve_dataset *src, const int *idx,
                          int count)
{
    int st = NERVE_OK;
    dst->ignore_index = src->ignore_index;
    if (src->target == NERVE_TARGET_BOXES) {
        int *counts = nerve_xmalloc(((size_t)count + 1) * sizeof *counts);
        if (!counts)
            return NERVE_ERR_NOMEM;
        int64_t total = 0;
        for (int i = 0; i < count; i++) {
            counts[i] = (int)(src->box_start[idx[i] + 1] - src->box_start[idx[i]]);
            total += counts[i];
        }
        nerve_box *b = nerve_xmalloc(((size_t)total + 1) * sizeof *b);
        if (!b) {
            nerve_xfree(counts);
            return NERVE_ERR_NOMEM;
        }
        int64_t k = 0;
        for (int i = 0; i < count; i++)
            for (int j = 0; j < counts[i]; j++)
                b[k++] = src->boxes[src->box_start[idx[i]] + j];
        st = nerve_dataset_set_boxes(dst, counts, b);
        nerve_xfree(b);
        nerve_xfree(counts);
    } else {
        st = nerve_dataset_alloc_target(dst, src->target, src->tndim, src->tdims);
        size_t m = src->target_numel;
        for (int i = 0; st == NERVE_OK && dst->t && i < count; i++)
            memcpy(dst->t + (size_t)i * m, src->t + (size_t)idx[i] * m, m * sizeof(float));
    }
    if (st == NERVE_OK && src->n_names)
        st = nerve_dataset_set_names(dst, src->n_names, (const char *const *)src->names);
    return st;
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
    st = gather_targets(dst, src, idx, count);
    if (st < 0)
        nerve_dataset_free(dst);
    return st;
}

int nerve_dataset_gather(nerve_dataset *dst, const nerve_dataset *src, const int *idx, int count)
{
    if (!dst || !src || dst == src || count < 0 || (count > 0 && !idx))
        return nerve_set_error(NERVE_ERR_ARG, "dataset gather: bad arguments");
    for (int i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= src->n)
            return nerve_set_error(NERVE_ERR_ARG, "dataset gather: index %d outside 0..%d",
                                   idx[i], src->n - 1);
    return gather(dst, src, idx, count);
}

int nerve_dataset_split(nerve_dataset *d, nerve_dataset *val, float fraction, uint64_t seed)
{
    if (!d || !val || d == val || !d->x)
        return nerve_set_error(NERVE_ERR_ARG, "dataset split: bad arguments");
    if (d->streams)
        return nerve_set_error(NERVE_ERR_ARG,
                               "dataset split: a text stream is not split by samples; its "
                               "held-out part is the end of the text (validation= with "
                               "train_text=)");
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
    return nerve_batcher_next_target(b, x, y, NULL);
}

const int *nerve_batcher_last_indices(const nerve_batcher *b, int *n)
{
    if (n)
        *n = b && b->order ? b->last_count : 0;
    return b && b->order ? b->order + b->last_pos : NULL;
}

int nerve_batcher_next_target(nerve_batcher *b, float *x, float *y, float *t)
{
    if (b)
        b->last_count = 0;
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
        if (t && d->t)
            memcpy(t + (size_t)i * d->target_numel, d->t + (size_t)s * d->target_numel,
                   d->target_numel * sizeof(float));
    }
    b->last_pos = b->pos;
    b->last_count = count;
    b->pos += count;
    return count;
}

/* ---- finiteness ---------------------------------------------------------------------- */

/* The first non-finite value of rows [0, n) of `per` floats: 1 with *row, *col set. */
static int find_non_finite(const float *v, int n, size_t per, int *row, size_t *col)
{
    for (int i = 0; v && i < n; i++)
        for (size_t j = 0; j < per; j++)
            if (!isfinite(v[(size_t)i * per + j])) {
                *row = i;
                *col = j;
                return 1;
            }
    return 0;
}

int nerve_dataset_check_finite(const nerve_dataset *d, const char *source)
{
    if (!d)
        return nerve_set_error(NERVE_ERR_ARG, "check_finite: null data set");
    const char *src = source ? source : "data set";
    struct {
        const float *v;
        size_t per;
        const char *what;
    } parts[] = {{d->x, d->sample_numel, "input value"},
                 {d->y, 1, "label"},
                 {d->t, d->target_numel, "target value"}};
    for (size_t k = 0; k < NERVE_ARRAY_LEN(parts); k++) {
        int row;
        size_t col;
        if (!parts[k].per || !find_non_finite(parts[k].v, d->n, parts[k].per, &row, &col))
            continue;
        float bad = parts[k].v[(size_t)row * parts[k].per + col];
        return nerve_set_error(NERVE_ERR_NUMERIC,
                               "%s: sample %d (counting from 0, in file order), %s %zu (from 0) "
                               "is %s; input data must be finite (a CSV value beyond +-3.4e38 "
                               "overflows a float)",
                               src, row, parts[k].what, col,
                               isnan(bad) ? "NaN" : bad > 0 ? "+infinity" : "-infinity");
    }
    return NERVE_OK;
}
