/* Shared by the fit loop (fit.c) and the feeding of batches (feed.c). */
#ifndef NERVE_TRAIN_TRAIN_H
#define NERVE_TRAIN_TRAIN_H

#include "nerve.h"

/* How the label node is fed from per-sample class indices. */
enum { LABELS_INDEX, LABELS_ONEHOT, LABELS_VALUE };

/* Everything needed to put a batch into the model's graph and to measure its outputs. */
typedef struct feeder {
    nerve_model *m;
    nerve_graph *g;
    int input, labels, output, loss;
    nerve_head_info head;
    int label_mode;       /* class targets: LABELS_* */
    int n_classes;        /* columns of the output (classify) or its channels (per pixel) */
    size_t sample_numel;  /* input values per sample */
    size_t label_numel;   /* label-node values per sample */
    size_t out_numel;     /* output values per sample */
    nerve_noise noise;    /* the input corruption of a denoising model */
    uint64_t seed;
    float *ybuf;          /* max_batch class labels */
    float *pbuf;          /* max_batch outputs as probabilities (logit heads with value
                             metrics), else NULL */
    int *idx;             /* max_batch sample indices (evaluation) */
} feeder;

/* The batch a graph is compiled for: the cfg's, but no more than the data set holds (its
 * buffers are sized by it; every batch of such a set is the whole set either way). */
static inline int batch_for(int cfg_batch, int n)
{
    return n > 0 && n < cfg_batch ? n : cfg_batch;
}

/* Checks d against the model (input shape; with `targets`, the target kind and shape the
 * head needs: a mismatch names both) and allocates the buffers. */
int feeder_init(feeder *f, nerve_model *m, const nerve_dataset *d, int targets);
void feeder_free(feeder *f);
/* Puts the targets of samples idx[0..n) of d into the label node (before augmentation:
 * a mask target is then moved with its image). */
int feed_targets(feeder *f, const nerve_dataset *d, const int *idx, int n);
/* After augmentation: a reconstruction's target becomes the (augmented) clean input, then a
 * denoising model's input is corrupted with the generator of (seed, epoch, sample). */
void feed_finish_inputs(feeder *f, const int *idx, int n, int epoch);
/* Adds the batch's outputs (after a forward pass) to mt. */
void feed_measure(feeder *f, nerve_metrics *mt, int n);
/* An accumulator for the model's task. */
int feed_metrics_init(feeder *f, nerve_metrics *mt);
/* nerve_evaluate_metrics over samples lo..hi-1 of d (data-parallel evaluation: each rank
 * its share; an empty share gives an empty accumulator). */
int evaluate_range(nerve_model *m, const nerve_dataset *d, int lo, int hi, nerve_metrics *mt);
/* Runs the model over every sample of d in eval mode, batch by batch in order, and calls
 * each(ctx, m, start, n) after the forward pass of samples start..start+n-1 (their values are
 * then in the graph as batch rows 0..n-1); a non-zero return stops the run and is returned. */
int run_batches(nerve_model *m, const nerve_dataset *d,
                int (*each)(void *ctx, nerve_model *m, int start, int n), void *ctx);
/* The label node's mask buffer (per-pixel targets) for augmentation, else NULL. */
float *feed_mask(feeder *f);

#endif
