/* Operator families. Each family file under src/ops defines its op_defs and a
 * NULL-terminated table `ops_<family>`; registry.c lists the tables. */
#ifndef NERVE_OPS_H
#define NERVE_OPS_H

#include "../graph/graph.h"

extern const op_def *const ops_linear[];      /* matmul, dense */
extern const op_def *const ops_elementwise[]; /* add, sub, mul, div, affine */
extern const op_def *const ops_reduce[];      /* sum, mean */
extern const op_def *const ops_shape[];       /* reshape, flatten, concat, slice, transpose */
extern const op_def *const ops_activation[];  /* activation, prelu, softmax, log_softmax */
extern const op_def *const ops_loss[];        /* mse, l1, bce, softmax_ce, nll, hinge, penalty */
extern const op_def *const ops_norm[];        /* dropout, batchnorm, zscore */
extern const op_def *const ops_recurrent[];   /* rnn, rnn_state, embedding */
extern const op_def *const ops_conv[];        /* conv, conv_transpose, local */
extern const op_def *const ops_pool[];        /* pool, max_unpool */
extern const op_def *const ops_resample[];    /* upsample, depth_to_space, space_to_depth */
extern const op_def *const ops_lrn[];         /* lrn, pixel_softmax_ce_loss */
extern const op_def *const ops_roi[];         /* roi_pool, roi_align */
extern const op_def *const ops_detection[];   /* yolo1_loss */


/* Looks an operator up by name across every family (NULL if unknown). */
const op_def *op_find(const char *name);
/* The i-th name nerve_op_build knows (registry.c), NULL past the last. */
const char *op_buildable_name(int i);

#endif
