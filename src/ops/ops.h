/* Operator families. Each family file under src/ops defines its op_defs and a
 * NULL-terminated table `ops_<family>`; registry.c lists the tables. */
#ifndef NERVE_OPS_H
#define NERVE_OPS_H

#include "../graph/graph.h"

#include <stdint.h>

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
extern const op_def *const ops_rcnn[];        /* rpn_proposals, rpn_loss, fast_rcnn_loss */
extern const op_def *const ops_roi[];         /* roi_pool, roi_align */
extern const op_def *const ops_detection[];   /* yolo1_loss */
extern const op_def *const ops_yolo[];        /* yolo, yolo_loss */
extern const op_def *const ops_ssd[];         /* ssd_loss */
extern const op_def *const ops_math[];        /* unary, clip, where, reduce, matmul_nd, gather,
                                                 gather_elements, pad, cumsum */


/* The geometry of one group of one image of a conv node (or its int8 form): the kernels'
 * shape and the number of groups. */
struct kern_conv_shape;
int op_conv_shape(const nerve_graph *g, const node *n, struct kern_conv_shape *ks, int *groups);

/* 1 when node n is a 2-D max pool whose every window lies inside the map (no padding), with
 * its kernel, stride and output size in g6 = {kh, kw, sh, sw, OH, OW}; 0 otherwise. */
int op_pool_plain_max(const nerve_graph *g, const node *n, int g6[6]);

/* ---- int8 inference (src/ops/quant.c, docs/quantize.md) -------------------------------- */

/* What turns a dense or conv node into its int8 form. */
typedef struct op_quant_params {
    const int8_t *w;       /* [N, K]: the weight's N output channels of K values each */
    const float *w_scale;  /* [N]: per-channel scale, weight = w_scale[n] * w[n, k] */
    float in_scale;        /* input activations: x = in_scale * (q - in_zero), q in 0..255 */
    int in_zero;
    float out_scale;       /* outputs, requantised likewise */
    int out_zero;
    int relu;              /* the output feeds a ReLU: outputs stop at out_zero (real 0) */
    const float *bias;     /* [N] the float bias (a batch norm folded in at quantisation),
                              or NULL: the node's own bias input, if any */
} op_quant_params;

/* 1 when node n (a compiled graph's) can run in int8: dense, or conv with one group. */
int op_quantizable(const nerve_graph *g, const node *n);
/* Makes node id run in int8 from now on (forward only: it has no backward): packs the
 * weights, folds the float bias into int32, and sizes its workspace for the compiled
 * batch and kern_threads(). The float weight leaf is left as it is. */
int op_quantize_node(nerve_graph *g, int id, const op_quant_params *p);
/* A quantised node's parameters (pointers into its own copies), NULL for other nodes. */
const op_quant_params *op_quant_of(const node *n);
/* A quantised node's folded int32 bias, fixed-point multipliers and shifts ([N] each) and
 * the 1 / in_scale its forward multiplies by: what an export needs to give the same
 * integers. NERVE_ERR_ARG for other nodes. */
int op_quant_ints(const node *n, const int32_t **bias, const int32_t **mult,
                  const int32_t **shift, float *inv_in);

/* What turns an add node (two inputs of its own shape) into its int8 form: each input
 * quantised with its own scale and zero point (bytes from the int8 node before it where
 * linked), the bytes added and requantised into the output's (kern_q8_add). */
typedef struct op_quant_add_params {
    float a_scale;   /* input 0: x = a_scale * (q - a_zero) */
    int a_zero;
    float b_scale;   /* input 1 */
    int b_zero;
    float out_scale; /* the sum */
    int out_zero;
    int relu;        /* the sum feeds a ReLU: outputs stop at out_zero */
} op_quant_add_params;
/* 1 when node n is an add of two inputs with its own shape (no broadcast). */
int op_quant_addable(const nerve_graph *g, const node *n);
/* Makes add node id run in int8 from now on (forward only). */
int op_quantize_add(nerve_graph *g, int id, const op_quant_add_params *p);
/* An int8 add's parameters, NULL for other nodes; with ints not NULL also its integer
 * constants {ma, mb, shift} (kern_q8_addp's). */
const op_quant_add_params *op_quant_add_of(const node *n, int32_t ints[3]);

/* 1 when node n is a batch norm that computes its input unchanged (evaluation mode, gamma 1,
 * beta 0, running mean 0 and 1 / sqrt(running var + eps) exactly 1): what nerve quantize
 * leaves of a batch norm it folded into the int8 layer before it. Links pass through it. */
int op_bn_identity(const nerve_graph *g, const node *n);
/* The running variance v with 1 / sqrtf(v + eps) exactly 1 in float (for op_bn_identity). */
float op_bn_identity_var(float eps);

/* Links the graph's int8 nodes again (on = 1: bytes between consecutive int8 nodes where
 * only ReLUs, a max pool and views lie between; on = 0, for every graph from now on: floats
 * between all of them, the reference the linked route must equal) and returns the links. */
int op_quant_links(nerve_graph *g, int on);

/* Looks an operator up by name across every family (NULL if unknown). */
const op_def *op_find(const char *name);
/* The i-th name nerve_op_build knows (registry.c), NULL past the last. */
const char *op_buildable_name(int i);

#endif
