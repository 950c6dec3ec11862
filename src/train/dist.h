/* The fit loop's side of data-parallel training (dist.c): gradient buckets summed while
 * backward runs, the reductions of metrics and running statistics, and the checks that
 * the ranks agree. The transport is a nerve_dist (nerve.h). */
#ifndef NERVE_TRAIN_DIST_H
#define NERVE_TRAIN_DIST_H

#include "nerve.h"

typedef struct dist_state {
    const nerve_dist *d;
    nerve_graph *g;
    int n_params;
    int *order;        /* trainable parameters in the order backward finishes them */
    int *pos_of;       /* node id -> position in order, -1 for other nodes */
    float **grad;      /* per position: the parameter's gradient */
    size_t *numel, *offset; /* per position: size, and offset in buf */
    int n_buckets;
    int *first;        /* bucket b holds positions first[b] .. first[b + 1] - 1 */
    int *bucket;       /* per position: its bucket */
    int *pending;      /* per bucket: parameters not yet ready in this step */
    unsigned char *packed; /* per position: its gradient is in buf for this step */
    int next;          /* the next bucket to start (they start in order) */
    float *buf;        /* every bucket, contiguous */
    size_t total;
    float scale;       /* this rank's share of the global batch (n_r / n) */
    double share;      /* the same in double */
    int status;        /* the first error of a hook call */
    /* persistent tensors that are not trainable (running statistics), averaged */
    int n_state, *state;
    size_t state_total;
    double *dbuf;      /* reductions in double: max(metrics, states, checks) */
    size_t dbuf_len;
} dist_state;

/* Builds the buckets for g's loss and sets g's grad hook. */
int dist_init(dist_state *s, const nerve_dist *d, nerve_graph *g, int loss, size_t metric_len);
void dist_free(dist_state *s);
/* A step on n_local of the global batch's n samples: call before backward (if any). */
void dist_begin_step(dist_state *s, int n_local, int n);
/* After backward (or without one, for a rank with no samples): starts the buckets not yet
 * started, waits for all and puts the averaged gradients into the parameters. */
int dist_end_step(dist_state *s);
/* How many numbers dist_reduce_metrics sends for an accumulator like mt. */
size_t dist_metrics_len(const nerve_metrics *mt);
/* Batch norm on the global batch's statistics from now on (nerve_graph_set_stat_reduce). */
void dist_sync_batchnorm(dist_state *s);
/* Sums a metrics accumulator over the ranks (every rank gets the totals). */
int dist_reduce_metrics(dist_state *s, nerve_metrics *mt);
/* Averages the non-trainable persistent tensors (running statistics) over the ranks, and
 * gives ranks other than 0 their own dropout generator derived from rank 0's. */
int dist_sync_state(dist_state *s);
/* Fails unless every rank holds the same trainable parameters bit for bit and the same
 * values in data[0..n) (named by names[]); `what` names the moment ("at the start"). */
int dist_check_same(dist_state *s, const double *data, const char *const *names, int n, const char *what);

#endif
