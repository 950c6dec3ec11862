/* Internal view of graphs for operators (src/ops) and the layers above.
 *
 * The operator contract: an operator is one `op_def` (name, infer, scratch, forward,
 * backward). infer() checks the inputs' shapes and sets the node's; it runs at compile
 * and at every batch-size change, so it must not allocate. scratch() says how many floats
 * of private storage the node needs between its forward and backward (dropout masks,
 * saved statistics, workspace), computed at the compiled maximum batch. forward() writes
 * n->value; backward() reads n->grad and ADDS into the gradients of the inputs that have
 * one (node_grad() returns NULL for those that do not), or, flagged OP_GRAD_OVERWRITE,
 * writes those that node_input_grad_fresh() reports fresh. Neither allocates nor prints.
 *
 * The memory plan (see nerve_graph_compile and docs/ARCHITECTURE.md) lets nodes share
 * buffers: the gradient of an operator node is valid only from the backward of its first
 * consumer to the end of its own backward, and an operator flagged OP_INPLACE may receive
 * input 0's value buffer as its own. The flags at the end of op_def say what is safe. */
#ifndef NERVE_GRAPH_H
#define NERVE_GRAPH_H

#include "../core/core.h"
#include "attrs.h"

typedef struct node node;

/* op_def.flags (existing initializers that end in 0 or 1 keep their meaning). OP_INPLACE
 * and OP_OUTPUT_UNREAD tell the memory plan (graph.c) what it may do with the buffers.
 * graph_add_op copies them into node.flags, which the graph reads; an operator whose answer
 * depends on the node's attributes refines node.flags after adding it (an activation whose
 * derivative needs its input clears OP_INPLACE; a plain ReLU sets OP_PLAIN_RELU), so the
 * graph never asks an operator family about a node. */
enum {
    OP_ALIAS_INPUT = 1,   /* a view: value and grad are input 0's buffers; never run */
    OP_INPLACE = 2,       /* forward may write n->value over input 0's value (same size):
                           * backward never reads input 0's value */
    OP_OUTPUT_UNREAD = 4, /* backward never reads n->value: an in-place consumer may
                           * overwrite it */
    /* 8: free (was OP_INPLACE_PER_NODE: a builder now clears OP_INPLACE in node.flags) */
    OP_GRAD_OVERWRITE = 16,  /* backward asks node_input_grad_fresh() per input and, where
                              * it says 1, writes every element of that gradient (= instead
                              * of +=): the pass then skips zeroing it */
    OP_FUSE_RELU = 32,       /* with n->fused_relu set, forward writes relu(output) and
                              * backward takes n->grad as the gradient of that relu's
                              * output (masks it itself): the memory plan then folds a ReLU
                              * that runs in place over this node into it */
    OP_SCRATCH_TRANSIENT = 64, /* the scratch is workspace of one forward or backward call,
                                * holding nothing between calls: all such nodes of a graph
                                * share one buffer */
    OP_PLAIN_RELU = 128,       /* the node computes max(0, input 0) and its backward masks by
                                * its output: the memory plan may fold it into an OP_FUSE_RELU
                                * input */
};

typedef struct op_def {
    const char *name;
    int (*infer)(nerve_graph *g, node *n);
    size_t (*scratch)(const nerve_graph *g, const node *n); /* may be NULL: none */
    void (*forward)(nerve_graph *g, node *n);
    void (*backward)(nerve_graph *g, node *n); /* NULL: not differentiable (zero gradient) */
    unsigned flags;                            /* OP_* above; 0 for none */
} op_def;

/* A node's attributes: its operator's typed struct (attrs.h), read and written by name. */
typedef union node_attr {
    attr_conv conv;
    attr_pool pool;
    attr_matmul matmul;
    attr_affine affine;
    attr_dropout dropout;
    attr_batchnorm batchnorm;
    attr_axis_reduce axis_reduce;
    attr_activation activation;
    attr_softmax softmax;
    attr_upsample upsample;
    attr_block block;
    attr_lrn lrn;
    attr_pixel_ce pixel_ce;
    attr_roi roi;
    attr_pointwise_loss pointwise_loss;
    attr_softmax_ce softmax_ce;
    attr_penalty penalty;
    attr_yolo1 yolo1;
    attr_yolo yolo;
    attr_ssd ssd;
    attr_rcnn rcnn;
    attr_dims dims;
    attr_axis axis;
    attr_slice slice;
    attr_unary unary;
    attr_clip clip;
    attr_reduce reduce;
    attr_pad pad;
    attr_cumsum cumsum;
    attr_rnn rnn;
    attr_rnn_params rnn_params;
    attr_rnn_state rnn_state;
} node_attr;

struct node {
    const op_def *op; /* NULL for leaves */
    unsigned flags;   /* OP_*: op->flags as refined for this node by its builder; 0 for leaves */
    int kind;         /* NERVE_NODE_* */
    int id;
    char name[64];
    int n_in;
    int in[NERVE_MAX_INPUTS];
    int ndim;
    int dims[NERVE_MAX_DIMS];
    node_attr attr;

    float *value;    /* numel() floats valid; capacity floats allocated */
    float *grad;     /* NULL if the node never carries a gradient */
    float *scratch;  /* scratch_n floats, owned */
    size_t capacity;
    size_t scratch_n;
    int owns_value;  /* value allocated for this node (not aliased, not in place) */
    int owns_grad;   /* grad allocated for this node alone (not from the shared pool) */
    int grad_root;   /* node whose gradient buffer this one uses (itself unless aliased) */
    int in_place;    /* value is input 0's buffer, overwritten by forward */
    int fused;       /* an activation computed by its input's operator (OP_FUSE_RELU):
                      * never run; value and gradient are its input's buffers */
    int fused_relu;  /* OP_FUSE_RELU operator that applies the ReLU of its fused consumer */

    int needs_grad;  /* derived: depends on a trainable param or a grad-requesting input */
    int frozen;      /* PARAM only */
    int decay;       /* PARAM only: weight decay / penalties apply */
    int requires_grad; /* INPUT only */
    int transient;   /* STATE only: run state, not model state (a carried recurrent state):
                        not listed by nerve_graph_persistent, so checkpoints skip it */
    int skip_with;   /* 1 + the id of an int8 node that reads the bytes this node's value
                        would hold (src/ops/quant.c): forward skips this node when that one
                        runs too; 0 for none */
    void *op_data;   /* operator state beyond floats (an int8 node's packed weights),
                        freed with the graph by op_data_free */
    void (*op_data_free)(void *);
};

struct nerve_graph {
    node *nodes;
    int n_nodes, cap_nodes;
    int compiled;
    int max_batch, batch;
    int training;
    int carry_in_eval;   /* eval-mode forwards advance carried recurrent states too */
    nerve_rng rng;
    unsigned char *mark; /* n_nodes bytes, preallocated at compile for forward/backward */
    /* memory plan */
    int keep_buffers;      /* private buffers for every node (no sharing, no in-place) */
    int shared_grads;      /* operator gradients come from grad_pool, zeroed just in time */
    float **grad_pool;     /* n_grad_pool shared gradient buffers, owned by the graph */
    int n_grad_pool;
    unsigned char *zeroed; /* n_nodes bytes: gradient zeroed in this backward pass */
    float *workspace;      /* the scratch of every OP_SCRATCH_TRANSIENT node */
    void (*grad_hook)(void *user, int param); /* nerve_graph_set_grad_hook */
    void *grad_user;
    int *last_reader;      /* last_reader_cap ints (n_nodes when the hook was set) */
    int last_reader_cap;
    int (*stat_reduce)(void *user, double *buf, int n, int backward); /* set_stat_reduce */
    void *stat_user;
    int stat_status;
    int relu_backward;     /* nerve_relu_backward: how plain ReLUs pass gradients back */
    int n_fused;           /* ReLUs folded into their input's operator by the memory plan */
    int failed_node;       /* the node whose shape inference failed in the last compile or
                            * set_batch (its limits included), -1 if none */
    double *prof;          /* nerve_graph_profile: 2 * prof_cap seconds (forward, backward) */
    int prof_cap;          /* nodes covered (n_nodes when it was switched on) */
    /* where the search for a free "base.k" starts, per base name (assign_name): a graph of
     * many nodes of one operator names each in one pass over the nodes, not k passes */
    struct { char base[48]; int next; } name_next[32];
    int n_name_next;
};

/* The one node that reads node id, as its input 0 and only once, or -1 (none, several, or
 * another input slot). */
int graph_sole_reader(const nerve_graph *g, int id);

static inline size_t node_numel(const node *n) { return nerve_shape_numel(n->ndim, n->dims); }
static inline node *graph_node(nerve_graph *g, int id) { return &g->nodes[id]; }
static inline node *node_input(nerve_graph *g, const node *n, int i) { return &g->nodes[n->in[i]]; }
/* Gradient buffer of input i of n, or NULL when that input needs no gradient. */
static inline float *node_input_grad(nerve_graph *g, const node *n, int i)
{
    node *x = &g->nodes[n->in[i]];
    return x->needs_grad ? x->grad : NULL;
}

/* 1 when the gradient of input i of n (an OP_GRAD_OVERWRITE operator, during its backward)
 * holds nothing yet in this pass and was not zeroed: the backward must then write all of
 * it rather than add. 0 means add as usual. */
int node_input_grad_fresh(const nerve_graph *g, const node *n, int i);
/* Zeroes the gradient of input i of n on all threads: for an OP_GRAD_OVERWRITE operator
 * whose route for a fresh input adds rather than writes (or adds nothing). */
void node_zero_input_grad(nerve_graph *g, const node *n, int i);

/* Sums buf[0..n) over the ranks of data-parallel training through the graph's stat reduce
 * (nerve_graph_set_stat_reduce); returns 0 when none is set (buf untouched), else 1 (a
 * failure is kept for nerve_graph_stat_status). */
int graph_stat_reduce(nerve_graph *g, double *buf, int n, int backward);
/* Adds an operator node; checks that inputs exist. Returns the id or a negative status. */
int graph_add_op(nerve_graph *g, const op_def *op, int n_in, const int *in, const node_attr *attr,
                 const char *name_hint);
/* Sets an error "<op> (node 'name'): message" and returns NERVE_ERR_SHAPE. */
int op_shape_error(const node *n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Product of ndim sizes in 64 bits, saturating at INT64_MAX (a size below 1 gives 0): the
 * shape arithmetic of infer() functions and of the size limits never wraps. */
int64_t shape_values64(int ndim, const int *dims);
/* a * b and a + b for sizes (both >= 0), saturating at INT64_MAX. */
int64_t size_mul64(int64_t a, int64_t b);
int64_t size_add64(int64_t a, int64_t b);
/* Checks an output size that infer() computed in 64 bits before it is stored in an int:
 * 1 <= v <= NERVE_MAX_SAMPLE_VALUES (one axis of a sample cannot hold more than the whole
 * sample may). Otherwise sets "<op> (node 'name'): <what> is <v>; ..." and returns
 * NERVE_ERR_SHAPE. */
int node_check_size(const node *n, const char *what, int64_t v);
/* Copies shape of src into n. */
void node_copy_shape(node *n, const node *src);
/* Normalises a possibly negative axis for rank ndim; -1 (invalid) if out of range. */
int normalize_axis(int axis, int ndim);

#endif
