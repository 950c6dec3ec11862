/* The attributes of the operators: one typed struct per operator (or family of operators
 * that share settings), held in the node's `attr`, a union of them all (graph.h). An
 * operator's builder (src/ops) fills its own member; the operator and the exporters
 * (src/model/onnx_export.c, src/apps/export_c.c) read that member by name, e.g.
 * `n->attr.conv.groups`, so a misspelt or missing field is a compile error. Attributes are
 * never written to files (checkpoints hold parameters; the ONNX exporter writes ONNX's own
 * attributes from these). A new operator with settings adds its struct here and a member to
 * node_attr. */
#ifndef NERVE_GRAPH_ATTRS_H
#define NERVE_GRAPH_ATTRS_H

#include "nerve.h"

/* conv, conv_transpose, local (src/ops/conv*.c): the builder's settings, per spatial
 * dimension in the caller's order (entries 0..S-1); output_padding for conv_transpose. */
typedef struct attr_conv {
    nerve_conv_config cfg;
    int output_padding[3];
} attr_conv;

/* pool (src/ops/pool.c); stride is the kernel where the builder was given 0. */
typedef nerve_pool_config attr_pool;

/* matmul (src/ops/linear.c) */
typedef struct attr_matmul {
    int trans_a, trans_b;
} attr_matmul;

/* affine (src/ops/elementwise.c): y = scale * x + shift */
typedef struct attr_affine {
    float scale, shift;
} attr_affine;

/* dropout (src/ops/norm.c): p, and whole channels dropped when spatial */
typedef struct attr_dropout {
    float p;
    int spatial;
} attr_dropout;

/* batchnorm (src/ops/norm.c) */
typedef struct attr_batchnorm {
    float momentum, eps;
} attr_batchnorm;

/* sum / mean over one axis (src/ops/reduce.c): the axis as given (negative or
 * NERVE_AXIS_ALL; normalised at each infer, since the reduced length may be the batch) */
typedef struct attr_axis_reduce {
    int axis, keepdim;
} attr_axis_reduce;

/* activation (src/ops/activation.c) */
typedef nerve_act attr_activation;

/* softmax, log_softmax (src/ops/activation.c): the axis as given */
typedef struct attr_softmax {
    int axis, log_space;
} attr_softmax;

/* upsample (src/ops/resample.c) */
typedef struct attr_upsample {
    int scale, mode;
} attr_upsample;

/* depth_to_space, space_to_depth (src/ops/resample.c) */
typedef struct attr_block {
    int block, to_space;
} attr_block;

/* lrn (src/ops/lrn.c): size n, within one map (else across channels), alpha, beta, k */
typedef struct attr_lrn {
    int size, within_map;
    float alpha, beta, k;
} attr_lrn;

/* pixel_softmax_ce_loss (src/ops/lrn.c): pixels labelled ignore_index carry no label when
 * use_ignore */
typedef struct attr_pixel_ce {
    int use_ignore, ignore_index;
} attr_pixel_ce;

/* roi_pool, roi_align (src/ops/roi.c) */
typedef struct attr_roi {
    int out_h, out_w, sampling_ratio, aligned, kind;
    float spatial_scale;
} attr_roi;

/* mse, l1, bce losses (src/ops/loss.c): which (POINTWISE_*), scale */
typedef struct attr_pointwise_loss {
    int which;
    float scale;
} attr_pointwise_loss;

/* softmax_ce_loss (src/ops/loss.c): label smoothing */
typedef struct attr_softmax_ce {
    float smoothing;
} attr_softmax_ce;

/* penalty (src/ops/loss.c): kind, input 0 is the running sum (carry), coefficient */
typedef struct attr_penalty {
    int kind, carry;
    float coef;
} attr_penalty;

/* yolo1 loss (src/ops/detection.c) */
typedef nerve_yolo1_config attr_yolo1;

/* yolo, yolo_loss (src/ops/yolo.c): flags (yolo.c's F_*), anchors per cell n of total, the
 * mask of [yolo]'s anchors; thresh is [yolo]'s ignore_thresh or [region]'s thresh */
typedef struct attr_yolo {
    int flags, classes, n, total, max_boxes, net_w, net_h, coords;
    int mask[NERVE_YOLO_MAX_ANCHORS];
    float thresh, truth_thresh, object_scale, noobject_scale, class_scale, coord_scale;
} attr_yolo;

/* ssd_loss (src/ops/ssd.c) */
typedef nerve_ssd_config attr_ssd;
/* rpn_proposals, rpn_loss, fast_rcnn_loss (src/ops/rcnn.c) */
typedef struct attr_rcnn {
    nerve_frcnn_config c;
} attr_rcnn;

/* reshape (the requested dims: 0 copies, -1 infers) and transpose (the permutation)
 * (src/ops/shape.c) */
typedef struct attr_dims {
    int ndim;
    int dims[NERVE_MAX_DIMS];
} attr_dims;

/* concat (src/ops/shape.c), gather and gather_elements (src/ops/math.c): the axis as given;
 * elements: gather_elements */
typedef struct attr_axis {
    int axis, elements;
} attr_axis;

/* slice (src/ops/shape.c): [start, end) of axis, as given */
typedef struct attr_slice {
    int axis, start, end;
} attr_slice;

/* unary (src/ops/math.c) */
typedef struct attr_unary {
    int function;
} attr_unary;

/* clip (src/ops/math.c) */
typedef struct attr_clip {
    float lo, hi;
} attr_clip;

/* reduce over a mask of axes (src/ops/math.c): kind, axes (bit per axis), keepdim,
 * select_last (arg reductions: the last of equal values) */
typedef struct attr_reduce {
    int kind;
    unsigned axes;
    int keepdim, select_last;
} attr_reduce;

/* pad (src/ops/math.c): begin and end per axis (negative crops), mode, constant value */
typedef struct attr_pad {
    int begin[NERVE_MAX_DIMS], end[NERVE_MAX_DIMS];
    int mode;
    float value;
} attr_pad;

/* cumsum (src/ops/math.c) */
typedef struct attr_cumsum {
    int axis, exclusive, reverse;
} attr_cumsum;

/* rnn (src/ops/recurrent.c): the cell's settings, directions D, and the input slot of each
 * optional input (or -1), indexed by RNN_LENGTHS ... RNN_PARAMS0 + d (the parameter bundle of
 * direction d) */
enum { RNN_LENGTHS, RNN_H0, RNN_C0, RNN_PARAMS0, RNN_SLOTS = RNN_PARAMS0 + 2 };
typedef struct attr_rnn {
    int cell, hidden, lstm_flags, gru_form, dirs, return_sequences, carry;
    int slot[RNN_SLOTS];
} attr_rnn;

/* rnn_params (src/ops/recurrent.c), one direction's parameters bundled: the input slot of
 * each parameter (or -1), indexed by RNN_W_IH ... RNN_PEEPHOLE; gates G and hidden H */
enum { RNN_W_IH, RNN_W_HH, RNN_B_IH, RNN_B_HH, RNN_PEEPHOLE, RNN_PARAM_SLOTS };
typedef struct attr_rnn_params {
    int slot[RNN_PARAM_SLOTS];
    int gates, hidden;
} attr_rnn_params;

/* rnn_state (src/ops/recurrent.c): 0 the final h, 1 the final C */
typedef struct attr_rnn_state {
    int which;
} attr_rnn_state;

#endif
