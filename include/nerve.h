/*
 * nerve.h: the one public header of libnerve.
 *
 * libnerve is a C11 deep-learning library: float32 tensors, a graph of operators with
 * reverse-mode automatic differentiation, layers, losses, optimisers, data loading,
 * darknet-style cfg model descriptions, safetensors checkpoints and a training loop.
 *
 * Conventions (read once, true everywhere):
 *  - Every exported name starts with nerve_ / NERVE_.
 *  - Functions that can fail return an int status (NERVE_OK == 0, negative on error) or a
 *    pointer/node id (NULL or a negative id on error). The message of the last error of the
 *    calling thread is in nerve_last_error(). The library never prints and never exits.
 *  - Tensors are dense, row-major float32. Shapes of activations carry the batch as their
 *    first dimension; parameters have no batch dimension.
 *  - A graph is built once, compiled once (shapes checked, every buffer allocated), then run
 *    many times; a compiled graph's forward and backward passes allocate nothing.
 *
 * Sections:
 *   1. Errors and status          8. Initialisers and layers
 *   2. Memory accounting          9. Optimisers, schedules, clipping
 *   3. Random numbers            10. Data sets and batches
 *   4. Tensors                   11. Models described by cfg files
 *   5. Graphs: building          12. Checkpoints (safetensors)
 *   6. Graphs: operators         13. Training loop
 *   7. Graphs: running           14. Plots and logs
 *  10b. Augmentation             15. Text generation
 *                                16. Visualisation
 */
#ifndef NERVE_H
#define NERVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NERVE_VERSION "0.1.0"
#define NERVE_MAX_DIMS 6   /* tensors have 0..NERVE_MAX_DIMS dimensions */
#define NERVE_MAX_INPUTS 8 /* inputs of one operator node */
/* Size limits (docs/cfg.md, "Limits"), checked in 64 bits when a node is added and again
 * when the graph is compiled: one sample of any node (its shape without the batch
 * dimension) holds at most NERVE_MAX_SAMPLE_VALUES floats (1 GiB); one node at the compiled
 * batch, and any parameter or state tensor, at most NERVE_MAX_LAYER_VALUES (8 GiB). Every
 * size must be at least 1. */
#define NERVE_MAX_SAMPLE_VALUES 268435456LL   /* 2^28 */
#define NERVE_MAX_LAYER_VALUES 2147483647LL   /* 2^31 - 1 */

/* ===================================================================================== */
/* 1. Errors and status                                                                   */
/* ===================================================================================== */

enum {
    NERVE_OK = 0,
    NERVE_ERR_ARG = -1,    /* a bad argument (null, out of range, unknown name) */
    NERVE_ERR_SHAPE = -2,  /* shapes that do not fit together */
    NERVE_ERR_NOMEM = -3,  /* allocation failed */
    NERVE_ERR_IO = -4,     /* a file could not be read or written */
    NERVE_ERR_FORMAT = -5, /* a file's contents are malformed */
    NERVE_ERR_STATE = -6,  /* call made in the wrong state (e.g. running an uncompiled graph) */
    NERVE_ERR_NUMERIC = -7 /* NaN or infinity where a finite number is required */
};

/* Message describing the last error raised in the calling thread ("" if none). */
const char *nerve_last_error(void);
/* Status code of the last error raised in the calling thread (NERVE_OK if none). */
int nerve_last_status(void);
/* Clears the calling thread's error. */
void nerve_clear_error(void);
/* Sets the calling thread's error (printf-style) and returns `status`; for extensions. */
int nerve_set_error(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ===================================================================================== */
/* 2. Memory accounting                                                                   */
/* ===================================================================================== */

/* Number of heap allocations libnerve has made since the process started (all of the
 * library's allocations go through one counted allocator). Tests use it to prove that a
 * compiled graph's training step allocates nothing. */
uint64_t nerve_alloc_count(void);
/* Bytes currently held by libnerve's allocator. */
size_t nerve_alloc_bytes(void);

/* Worker threads used by the kernels (default: $NERVE_THREADS, else every core). Results
 * for a given seed and thread count are identical run to run. */
void nerve_set_threads(int n);
int nerve_threads(void);

/* The kernels' instruction-set path: "portable" (plain C), "avx2", "avx512" (x86-64) or
 * "neon" (aarch64). The default is $NERVE_ISA when set (a ceiling for the whole process:
 * nothing above it runs), else the best the CPU has. nerve_set_isa() forces a path by name
 * or "auto" (the default again) and returns 0, changing nothing, when the name is unknown
 * or the path is not available here. Paths agree within float rounding, not bit for bit. */
int nerve_set_isa(const char *name);
const char *nerve_isa_name(void);

/* ===================================================================================== */
/* 3. Random numbers                                                                      */
/* ===================================================================================== */

/* A small, fast, seedable generator (xoshiro128**): the same seed gives the same bits on
 * every machine. The state is plain data, so it can be copied and checkpointed. */
typedef struct nerve_rng {
    uint32_t s[4];
} nerve_rng;

void nerve_rng_seed(nerve_rng *r, uint64_t seed);
uint32_t nerve_rng_u32(nerve_rng *r);
/* Uniform in [0, 1). */
float nerve_rng_uniform(nerve_rng *r);
/* Standard normal (Box-Muller, no cached second value so the state alone determines it). */
float nerve_rng_normal(nerve_rng *r);
/* Uniform integer in [0, n). */
uint32_t nerve_rng_below(nerve_rng *r, uint32_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void nerve_rng_shuffle(nerve_rng *r, int *idx, int n);

/* ===================================================================================== */
/* 4. Tensors                                                                             */
/* ===================================================================================== */

/* A dense row-major float32 tensor. `data` is owned by whoever created the tensor:
 * nerve_tensor_create() owns it (free with nerve_tensor_free()); views returned by the
 * graph (nerve_value(), nerve_grad()) point into the graph and must not be freed. */
typedef struct nerve_tensor {
    int ndim;
    int dims[NERVE_MAX_DIMS];
    float *data;
} nerve_tensor;

/* Number of elements of a shape (1 for ndim == 0). */
size_t nerve_shape_numel(int ndim, const int *dims);
size_t nerve_tensor_numel(const nerve_tensor *t);
/* Allocates a zero-filled tensor. Returns a tensor with data == NULL on error. */
nerve_tensor nerve_tensor_create(int ndim, const int *dims);
void nerve_tensor_free(nerve_tensor *t);
/* Writes "[2, 3, 4]" into buf (always terminated); returns buf. */
char *nerve_shape_str(int ndim, const int *dims, char *buf, size_t size);

/* ===================================================================================== */
/* 5. Graphs: building                                                                    */
/* ===================================================================================== */

typedef struct nerve_graph nerve_graph;

/* Kinds of nodes. */
enum {
    NERVE_NODE_INPUT = 0, /* fed by the caller each step (data, labels) */
    NERVE_NODE_PARAM = 1, /* trainable parameter, updated by optimisers */
    NERVE_NODE_STATE = 2, /* non-trainable persistent tensor (running statistics, z-score) */
    NERVE_NODE_OP = 3     /* result of an operator */
};

nerve_graph *nerve_graph_create(void);
void nerve_graph_free(nerve_graph *g);

/* An input. dims[0] is the batch dimension: its value here is ignored and replaced by the
 * batch size given to nerve_graph_compile() / nerve_graph_set_batch(). */
int nerve_input(nerve_graph *g, const char *name, int ndim, const int *dims);
/* A trainable parameter (zero-filled; see nerve_init_param()). */
int nerve_param(nerve_graph *g, const char *name, int ndim, const int *dims);
/* A persistent non-trainable tensor (zero-filled). */
int nerve_state(nerve_graph *g, const char *name, int ndim, const int *dims);

/* Parameters marked "no decay" (biases, batch-norm scale/shift, PReLU slopes) are skipped
 * by weight decay and by the L1/L2 penalties. nerve_param() marks a 1-D parameter no-decay
 * by default; this overrides. */
int nerve_param_set_decay(nerve_graph *g, int node, int decay);
/* Frozen parameters keep their values: no gradient is computed for them and optimisers
 * skip them (transfer learning). */
int nerve_param_set_frozen(nerve_graph *g, int node, int frozen);

/* Node introspection. */
int nerve_node_count(const nerve_graph *g);
int nerve_node_kind(const nerve_graph *g, int node);
const char *nerve_node_name(const nerve_graph *g, int node);
const char *nerve_node_op(const nerve_graph *g, int node); /* operator name; "" for leaves */
int nerve_node_find(const nerve_graph *g, const char *name); /* -1 if absent */
/* Renames a node (names are unique within a graph; checkpoints use them). */
int nerve_node_set_name(nerve_graph *g, int node, const char *name);
/* Shape as inferred by the last compile / set_batch. */
int nerve_node_shape(const nerve_graph *g, int node, int *ndim, int *dims);
int nerve_node_num_inputs(const nerve_graph *g, int node);
int nerve_node_input(const nerve_graph *g, int node, int i);

/* Per-operator timing (`nerve profile`): with on = 1, every later forward and backward pass
 * adds the wall time of each operator node's kernel to that node's totals (switching it on
 * starts them at zero); on = 0 stops and drops them. An operator fused into its input's
 * (a ReLU folded by the memory plan) runs inside that one and has no time of its own. */
int nerve_graph_profile(nerve_graph *g, int on);
/* Node id's totals in seconds since profiling was switched on (either pointer may be NULL). */
int nerve_graph_profile_node(const nerve_graph *g, int id, double *forward_s, double *backward_s);

/* ===================================================================================== */
/* 6. Graphs: operators                                                                   */
/*    Each returns the new node id, or a negative status on error.                        */
/* ===================================================================================== */

/* Matrix product of 2-D a [M,K] (or [K,M] if trans_a) and b [K,N] (or [N,K] if trans_b). */
int nerve_matmul(nerve_graph *g, int a, int b, int trans_a, int trans_b);
/* Fully connected: x [N, ...] is flattened to [N, in]; w is [out, in]; bias [out] or -1.
 * y[N, out] = x w^T + b. */
int nerve_dense(nerve_graph *g, int x, int w, int bias);

/* Broadcasting (numpy rules) element-wise arithmetic. */
int nerve_add(nerve_graph *g, int a, int b);
int nerve_sub(nerve_graph *g, int a, int b);
int nerve_mul(nerve_graph *g, int a, int b);
int nerve_div(nerve_graph *g, int a, int b);
/* y = scale * x + shift (scalars). */
int nerve_affine(nerve_graph *g, int x, float scale, float shift);

/* Reductions. axis == NERVE_AXIS_ALL reduces to a scalar (ndim 0). Negative axes count
 * from the end. */
#define NERVE_AXIS_ALL (-100)
int nerve_sum(nerve_graph *g, int x, int axis, int keepdim);
int nerve_mean(nerve_graph *g, int x, int axis, int keepdim);

/* Shape operators. nerve_reshape follows ONNX: 0 copies the input's dimension, -1 is
 * inferred (at most one). */
int nerve_reshape(nerve_graph *g, int x, int ndim, const int *dims);
int nerve_flatten(nerve_graph *g, int x); /* [N, ...] -> [N, prod(...)] */
int nerve_concat(nerve_graph *g, int n, const int *xs, int axis);
int nerve_slice(nerve_graph *g, int x, int axis, int start, int end); /* [start, end) */
int nerve_transpose(nerve_graph *g, int x, const int *perm);           /* perm has ndim entries */

/* Element-wise and tensor mathematics of any rank (src/ops/math.c; the ONNX importer's
 * vocabulary, docs/ops.md). */
/* Broadcasting binary operator by name: add, sub, mul, div, pow, maximum, minimum, mod
 * (remainder with the divisor's sign), fmod (with the dividend's sign), and, without a
 * gradient, equal, less, greater, less_equal, greater_equal, logical_and, logical_or,
 * logical_xor (1 or 0; logic reads non-zero as true). */
int nerve_binary(nerve_graph *g, const char *op, int a, int b);
/* y = f(x) by name: exp, log, sqrt, neg, abs, reciprocal, sin, cos, tan, asin, acos, atan,
 * sinh, cosh, asinh, acosh, atanh, erf, and, without a gradient, floor, ceil, round (halves
 * to even), trunc, sign, not, isnan, isinf. nerve_unary_name(i) lists them (NULL past the
 * last). */
int nerve_unary(nerve_graph *g, int x, const char *fn);
const char *nerve_unary_name(int i);
/* y = min(max(x, lo), hi); the gradient passes where lo <= x <= hi. */
int nerve_clip(nerve_graph *g, int x, float lo, float hi);
/* y = cond != 0 ? a : b, the three broadcast together; cond gets no gradient. */
int nerve_where(nerve_graph *g, int cond, int a, int b);
/* Reduction over the axes whose bits are set in `axes` (bit i = axis i): sum, mean, max,
 * min, prod, l1, l2, sum_square, log_sum, log_sum_exp, and, over exactly one axis and
 * without a gradient, argmax, argmin (the first extreme, or the last with select_last).
 * max/min pass the gradient to every element that ties for the extreme. */
int nerve_reduce(nerve_graph *g, int x, const char *kind, unsigned axes, int keepdim,
                 int select_last);
/* Batched matrix product a [..., M, K] b [..., K, N] -> [..., M, N]; batch dimensions
 * broadcast (numpy matmul for ranks >= 2). */
int nerve_matmul_nd(nerve_graph *g, int a, int b);
/* y = x indexed on `axis` by the integer-valued floats of `indices` (any shape; negative
 * counts from the end): shape x[:axis] + indices + x[axis+1:]. Elements whose index is out
 * of range are NaN. indices get no gradient. */
int nerve_gather(nerve_graph *g, int x, int indices, int axis);
/* y[p] = x[p with its axis coordinate replaced by indices[p]]; indices has x's rank. */
int nerve_gather_elements(nerve_graph *g, int x, int indices, int axis);
typedef enum { NERVE_PAD_CONSTANT = 0, NERVE_PAD_REFLECT = 1, NERVE_PAD_EDGE = 2 } nerve_pad_mode;
/* Pads (negative values crop) every axis by begin[i] and end[i]; ndim = rank of x. */
int nerve_pad(nerve_graph *g, int x, const int *begin, const int *end, int ndim,
              nerve_pad_mode mode, float value);
/* Running sum along axis (exclusive: the elements before; reverse: from the end). */
int nerve_cumsum(nerve_graph *g, int x, int axis, int exclusive, int reverse);

/* Activations. */
typedef enum {
    NERVE_ACT_IDENTITY = 0,
    NERVE_ACT_STEP,         /* 1 if u >= 0 else 0; forward only: its gradient is zero */
    NERVE_ACT_SIGMOID,      /* 1/(1+exp(-alpha u)); alpha = slope lambda, default 1 */
    NERVE_ACT_HARD_SIGMOID, /* clamp(alpha u + beta, 0, 1); defaults 0.2, 0.5 */
    NERVE_ACT_TANH,
    NERVE_ACT_RELU,
    NERVE_ACT_LEAKY_RELU, /* max(u, alpha u); default alpha 0.01 */
    NERVE_ACT_ELU,        /* u if u >= 0 else alpha (exp(u) - 1); default alpha 1 */
    NERVE_ACT_SELU,       /* beta (u if u > 0 else alpha exp(u) - alpha); 1.67326, 1.0507 */
    NERVE_ACT_SOFTPLUS,   /* log(1 + exp(u)) */
    NERVE_ACT_SOFTSIGN,   /* u / (1 + |u|) */
    NERVE_ACT_RELU6,      /* min(max(0, u), alpha); alpha = cap, default 6 */
    NERVE_ACT_RAMP,       /* darknet's ramp: max(u, 0) + alpha u; default alpha 0.1 */
    NERVE_ACT_COUNT
} nerve_act_type;

typedef struct nerve_act {
    nerve_act_type type;
    float alpha, beta;
} nerve_act;

/* An activation with its default parameters. */
nerve_act nerve_act_default(nerve_act_type type);
/* Parses a name ("relu", "logistic"/"sigmoid", "leaky", "linear"/"identity", ...) as the
 * cfg files use it; returns NERVE_ERR_ARG for unknown names. */
int nerve_act_parse(const char *name, nerve_act *out);
const char *nerve_act_name(nerve_act_type type);
int nerve_activation(nerve_graph *g, int x, nerve_act act);
/* PReLU: max(u, a u) with learned slope(s) a: slope is a parameter of shape [1] (shared)
 * or [C] (one per channel, axis 1 of x). */
int nerve_prelu(nerve_graph *g, int x, int slope);

/* Softmax / log-softmax along `axis` (max-subtracted, stable). */
int nerve_softmax(nerve_graph *g, int x, int axis);
int nerve_log_softmax(nerve_graph *g, int x, int axis);

/* Losses: each returns a scalar node (ndim 0), averaged over the batch. */
/* Mean squared error over all elements; half != 0 gives 0.5 * mean (gradient halved). */
int nerve_mse_loss(nerve_graph *g, int pred, int target, int half);
/* Mean absolute error over all elements. */
int nerve_l1_loss(nerve_graph *g, int pred, int target);
/* Binary cross-entropy computed from logits (stable), mean over elements; target in [0,1]. */
int nerve_bce_logits_loss(nerve_graph *g, int logits, int target);
/* Softmax cross-entropy from logits [N, C] and integer labels [N] (stored as floats).
 * class_weights: a state node [C] or -1; smoothing: label smoothing in [0,1).
 * With weights, the mean is the weighted mean (sum w_y l / sum w_y), as PyTorch does. */
int nerve_softmax_ce_loss(nerve_graph *g, int logits, int labels, int class_weights,
                          float smoothing);
/* Negative log-likelihood of log-probabilities [N, C] at integer labels [N]. */
int nerve_nll_loss(nerve_graph *g, int logprobs, int labels, int class_weights);
/* Hinge loss. scores [N, 1] with labels in {0,1} (mapped to -1/+1): mean max(0, 1 - t s).
 * scores [N, C>1]: multi-class margin, mean over N of sum_{j != y} max(0, 1 - s_y + s_j). */
int nerve_hinge_loss(nerve_graph *g, int scores, int labels);

/* Weight penalties over every trainable, decayed parameter of the graph at the time of the
 * call: L1 gives coef * sum |w|; L2 gives coef/2 * sum w^2. (The course's lambda/n and
 * lambda/2n forms are coef = lambda/n.) */
enum { NERVE_PENALTY_L1 = 1, NERVE_PENALTY_L2 = 2 };
int nerve_penalty(nerve_graph *g, int kind, float coef);

/* Inverted dropout: in training, zeroes each unit with probability p and scales the kept
 * ones by 1/(1-p); identity in eval mode. spatial != 0 drops whole channels (axis 1). */
int nerve_dropout(nerve_graph *g, int x, float p, int spatial);
/* Batch normalisation over every axis but axis 1 (features / channels).
 * gamma, beta: params [C]; running_mean, running_var: states [C].
 * Training uses the batch statistics (biased variance) and updates the running ones as
 * r = (1 - momentum) r + momentum * batch (unbiased variance for running_var);
 * eval mode uses the running ones. */
int nerve_batchnorm(nerve_graph *g, int x, int gamma, int beta, int running_mean,
                    int running_var, float momentum, float eps);
/* Z-score normalisation with stored statistics: (x - mean) / std per feature, where mean
 * and std are states broadcastable to x without its batch dimension; std == 0 is treated
 * as 1. */
int nerve_zscore(nerve_graph *g, int x, int mean, int std);

/* ---- 6b. Recurrent operators --------------------------------------------------------- */
/* Sequences are time-major: x [T, N, F]. `lengths` is an input [N] of valid lengths (floats
 * holding integers in 1..T), or -1 when every sequence has all T steps; past its length a
 * sequence's state stays unchanged and its outputs are zero. (Lengths are truncated to
 * integers and clamped to 0..T, NaN counting as 0; padding values of x must be finite.) */
typedef enum { NERVE_CELL_RNN = 0, NERVE_CELL_LSTM, NERVE_CELL_GRU } nerve_cell_type;
enum { NERVE_LSTM_PEEPHOLE = 1, NERVE_LSTM_COUPLED = 2 }; /* LSTM variant flags */
/* GRU forms: the course's (reset applied to h before the product: W_c [r * h, x]) and the
 * linear-before-reset form of ONNX/PyTorch (r * (W_hn h + b_hn)); both use
 * h_t = (1 - z) * n + z * h_{t-1} as PyTorch does (the course swaps z's role). */
enum { NERVE_GRU_COURSE = 0, NERVE_GRU_LINEAR_BEFORE_RESET = 1 };

typedef struct nerve_rnn_config {
    nerve_cell_type cell;
    int hidden;           /* H */
    int lstm_flags;       /* NERVE_LSTM_* bits */
    int gru_form;         /* NERVE_GRU_* */
    int bidirectional;    /* D = 2: outputs concatenate forward and backward (2H features) */
    int return_sequences; /* 1: y [T, N, D*H]; 0: y [N, D*H], each sequence's last valid step
                             (for the backward direction, its output at t = 0) */
} nerve_rnn_config;

/* Parameters of one recurrent layer per direction d (0 forward, 1 backward), with G gates
 * (RNN 1; LSTM 4 in PyTorch's order i, f, g, o; GRU 3 in PyTorch's order r, z, n):
 * w_ih [G*H, F], w_hh [G*H, H], b_ih [G*H], b_hh [G*H], peephole [3, H] (LSTM with
 * NERVE_LSTM_PEEPHOLE: rows for i, f, o), -1 where absent. w_ih and w_hh are required;
 * peephole is given exactly when the flag is set. A coupled LSTM keeps G = 4: the i rows
 * (and the peephole's i row) are ignored, i = 1 - f, and their gradient is zero. */
typedef struct nerve_rnn_params {
    int w_ih[2], w_hh[2], b_ih[2], b_hh[2], peephole[2];
} nerve_rnn_params;

/* The fused sequence operator (the whole time loop inside one forward/backward pair).
 * h0, c0: nodes [D, N, H] or -1 for zeros (c0: LSTM only); they may carry gradients.
 * Each direction's parameters are grouped under a helper node (op "rnn_params") that
 * nerve_rnn adds just before the rnn node. */
int nerve_rnn(nerve_graph *g, int x, int lengths, int h0, int c0, const nerve_rnn_params *p,
              const nerve_rnn_config *cfg);
/* Final state of a nerve_rnn node, [D, N, H]: which = 0 hidden, 1 cell (LSTM only); for
 * each sequence, the state after its last valid step (backward direction: after t = 0).
 * Differentiable: its gradient flows back into the sequence. */
int nerve_rnn_state(nerve_graph *g, int rnn, int which);
/* Layer builder: creates "<name>.w_ih", "<name>.w_hh", "<name>.b_ih", "<name>.b_hh"
 * ("<name>.reverse.*" for the backward direction, "<name>.peephole" if used), initialised
 * U(-1/sqrt(H), 1/sqrt(H)) as PyTorch does, and returns the nerve_rnn node. carry != 0
 * makes it a truncated-BPTT layer: its initial state is kept in STATE nodes
 * "<name>.h_carry" (and "<name>.c_carry") that each training forward overwrites with the
 * final state, so the next chunk continues the sequence while gradients stop at the chunk
 * boundary. The carried states are created [D, N, H] with the N of x as built (1 for a
 * batch-derived x) and grow to the compiled maximum batch when the graph is compiled; a
 * batch of n uses their first n rows. Eval-mode forwards start from them but leave them
 * unchanged. The peephole is marked no-decay. Returns the rnn node, named <name> when
 * that name is free. */
int nerve_layer_rnn(nerve_graph *g, int x, int lengths, const nerve_rnn_config *cfg, int carry,
                    nerve_rng *rng, const char *name);
/* Zeroes a carried layer's state (start of a new sequence or epoch). */
int nerve_rnn_reset_carry(nerve_graph *g, int rnn);
/* Zeroes the state of every carried recurrent layer of g; returns how many there are. */
int nerve_graph_reset_carry(nerve_graph *g);
/* The STATE nodes that hold carried states (every carried layer's h_carry and c_carry):
 * fills up to cap ids into out (may be NULL) and returns the count. */
int nerve_graph_carried_states(const nerve_graph *g, int *out, int cap);
/* on != 0: eval-mode forwards advance the carried states too, as training forwards do
 * (reading a held-out text stream, sampling one character at a time); default 0. */
void nerve_graph_set_carry_in_eval(nerve_graph *g, int on);
/* Embedding lookup: indices of any shape (floats holding integers in 0..V-1) -> [..., E];
 * table is a parameter [V, E]. An index outside 0..V-1 (or NaN) gives a zero row and
 * contributes no gradient; the indices themselves get none. */
int nerve_embedding(nerve_graph *g, int indices, int table);

/* ---- 6c. Convolution operators (src/ops/conv.c) ---------------------------------------- */
/* Convolutions over S = 1, 2 or 3 spatial dimensions: x [N, C, *spatial] (S dims, e.g.
 * [N, C, H, W]); the kernel's rank fixes S. Per-dimension settings are read from entries
 * 0..S-1 of each array, in the order of x's spatial dimensions (depth, height, width).
 * Along a dimension of input size n, kernel size k, stride s, dilation d and padding pb
 * before / pe after, the output has floor((n + pb + pe - d(k-1) - 1) / s) + 1 positions;
 * output position o reads input o*s - pb + t*d for kernel tap t (zero in the padding).
 *
 * "same" (same != 0) ignores pad_begin/pad_end and gives ceil(n / s) outputs with total
 * padding P = max((ceil(n/s) - 1) s + d(k-1) + 1 - n, 0) split as pb = floor(P/2),
 * pe = P - pb: when P is odd (e.g. even kernels at stride 1) the extra zero goes at the
 * END. For odd k and stride 1 this is the usual symmetric (k-1)/2.
 *
 * Correlation is the default (flip == 0): y[o] = sum_t x[o*s - pb + t*d] w[t], as deep
 * learning uses it. flip != 0 is the mathematical convolution: the kernel is reversed along
 * every spatial dimension (tap t uses w[k-1-t]); with padding k-1 on both sides it gives
 * the full convolution, with none its valid part.
 *
 * groups G splits the C input and O output channels into G groups; output channel o sees
 * only the C/G input channels of its group (G == C: depthwise). C and O must be multiples
 * of G. A parameter count is O * (C/G) * prod(k) + O with a bias. */
typedef struct nerve_conv_config {
    int stride[3];    /* >= 1 */
    int pad_begin[3]; /* zero padding before each spatial dimension, >= 0 */
    int pad_end[3];   /* zero padding after each spatial dimension, >= 0 */
    int dilation[3];  /* >= 1 (atrous: effective kernel extent d(k-1) + 1) */
    int groups;       /* >= 1 */
    int same;         /* != 0: "same" padding as described above */
    int flip;         /* != 0: true convolution (kernel reversed) instead of correlation */
} nerve_conv_config;

/* Stride 1, no padding, dilation 1, one group, correlation. */
nerve_conv_config nerve_conv_default(void);

/* Convolution: x [N, C, *n], w [O, C/G, *k] (S = rank(w) - 2), bias [O] or -1;
 * y [N, O, *out]. cfg may be NULL for the defaults. A 1x1 kernel with stride 1 and no
 * padding is computed as a direct channel-mixing GEMM. */
int nerve_conv(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg);

/* Transposed convolution (the adjoint of nerve_conv with the same weight and settings):
 * x [N, C, *n], w [C, O/G, *k], bias [O] or -1; y [N, O, *out] with
 *   out = (n - 1) s - pb - pe + d(k-1) + output_padding + 1,
 * each input value scattering its kernel-weighted copy to positions i*s - pb + t*d.
 * output_padding (S entries, or NULL for zeros; each 0 <= op < max(s, d)) adds rows at the
 * end, where a strided conv's size is ambiguous. "same" gives out = n*s: total padding
 * P = d(k-1) + 1 - s split as for nerve_conv (extra at the end), or, when P < 0, no
 * padding and output_padding -P; explicit output_padding is then ignored. */
int nerve_conv_transpose(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg,
                         const int *output_padding);

/* Locally connected layer (unshared weights: every output position has its own kernel).
 * x [N, C, *n] (S = 1..3), w [L, O, C, *k] where L = prod(out) is the number of output
 * positions in row-major order: for 2-D, w is [OH*OW, O, C, KH, KW], i.e. the position
 * l = oh*OW + ow owns the matrix w[l] [O, C*KH*KW] (memory identical to
 * [OH*OW, O, C*KH*KW]). y[n, o, l] = sum_{c,t} w[l, o, c, t] x[n, c, patch l at tap t]
 * + bias. bias is [O] (shared by all positions), [O, *out] (one per output element) or -1.
 * Stride, padding ("same" included), dilation and flip as for nerve_conv; groups must be
 * 1. */
int nerve_local(nerve_graph *g, int x, int w, int bias, const nerve_conv_config *cfg);

/* ---- 6d. Pooling and resampling operators (src/ops/pool.c) ----------------------------- */
/* Spatial operators take x [N, C, H, W], or [N, C, L] for 1-D signals (seen as H = 1: the
 * first entry of a configuration's pairs then applies to L). */
typedef enum {
    NERVE_POOL_MAX = 0,    /* window maximum; the gradient goes to the argmax (the first in
                              row-major order on ties); overlapping windows accumulate */
    NERVE_POOL_AVG,        /* window mean (see count_include_pad) */
    NERVE_POOL_L2,         /* sqrt of the window's sum of squares; gradient x / y (0 if y = 0) */
    NERVE_POOL_GLOBAL_AVG, /* mean of each map: y [N, C, 1, 1]; kernel/stride/pad ignored */
    NERVE_POOL_GLOBAL_MAX  /* maximum of each map: y [N, C, 1, 1] */
} nerve_pool_type;

typedef struct nerve_pool_config {
    nerve_pool_type type;
    int kernel[2];         /* window (height, width) */
    int stride[2];         /* 0: the kernel size */
    int pad[2];            /* implicit padding on both sides, at most half the kernel; it
                              never wins a max and adds nothing to a sum */
    int ceil_mode;         /* output size floor((in + 2 pad - k) / s) + 1 rounds up instead;
                              a window that would start in the right/bottom padding is dropped */
    int count_include_pad; /* AVG: divide by the window's size clipped to the padded input
                              (padding counts as zeros) instead of by its real elements */
} nerve_pool_config;

/* A square window: kernel k, stride s (0: k), padding p; floor mode, padding not counted. */
nerve_pool_config nerve_pool_config_make(nerve_pool_type type, int k, int s, int p);
/* Pooling. Max pooling keeps each output's argmax (an index into its input map, exact for
 * maps up to 2^24 elements) in its scratch for backward and for nerve_max_unpool. */
int nerve_pool(nerve_graph *g, int x, const nerve_pool_config *c);
/* Max unpooling (SegNet): y has the shape of the pool's input and is zero except at the
 * argmax positions recorded by `pool` (a NERVE_POOL_MAX or NERVE_POOL_GLOBAL_MAX node of the
 * same graph), which receive x (x has the pool's output shape); where overlapping windows
 * share an argmax their values add. The indices are read from the pool's scratch, so the
 * pool must run first in the same forward pass: this node takes `pool` as its second input,
 * which guarantees it (no gradient flows into the pool through this node). */
int nerve_max_unpool(nerve_graph *g, int x, int pool);

/* YOLO v1's loss (src/ops/detection.c, docs/detection.md; darknet's [detection] layer): pred
 * [N, side*side*(classes + 5*num)] in darknet's order (every cell's class scores, then every
 * cell's num confidences, then every cell's num boxes x, y, w, h: x, y offsets in the cell, w,
 * h relative to the image, or their square roots with sqrt), target [N, side*side*6] (per
 * cell: obj, x, y, w, h, class; nerve_yolo1_target makes it from boxes). The paper's sum of
 * squared errors, averaged over the batch; the responsible predictor (highest IoU) and the
 * rescore target are constants of the step, as in darknet. */
typedef struct nerve_yolo1_config {
    int side, num, classes;
    int sqrt;    /* 1: w and h are predicted as square roots */
    int rescore; /* 1: the responsible box's confidence target is its IoU, else 1 */
    float coord_scale, object_scale, noobject_scale, class_scale;
} nerve_yolo1_config;
/* side 7, num 2, classes 20, sqrt 1, rescore 1, scales 5, 1, 0.5, 1 (darknet's yolov1.cfg) */
nerve_yolo1_config nerve_yolo1_default(void);
int nerve_yolo1_check(const nerve_yolo1_config *c);
int nerve_yolo1_loss(nerve_graph *g, int pred, int target, const nerve_yolo1_config *c);

/* darknet's YOLO v3 ([yolo]) and YOLO v2 ([region]) heads (src/ops/yolo.c,
 * docs/detection.md). nerve_yolo applies darknet's activations to x [N, n*(coords + 1 +
 * classes), H, W] (per anchor: x, y, w, h, objectness, class scores, each a H x W plane):
 * the logistic to x, y, the objectness and the classes, or a softmax over the classes
 * ([region] softmax=1). nerve_yolo_loss gives darknet's gradients on the raw x (see
 * src/ops/yolo.c) for a target [N, max_boxes*5] of boxes (x, y, w, h relative to the image,
 * class; the list ends at a box of zero size) and anchors [total, 2] (a state: pixels of the
 * network's input for [yolo], grid cells for [region]), averaged over the batch. */
#define NERVE_YOLO_MAX_ANCHORS 32
typedef struct nerve_yolo_config {
    int region;          /* 0: [yolo] (v3), 1: [region] (v2) */
    int classes, coords; /* coords: 4 */
    int n;               /* anchors of this layer ([yolo]: the entries of mask) */
    int total;           /* anchors given ([region]: n) */
    int mask[NERVE_YOLO_MAX_ANCHORS]; /* [yolo]: which anchors this layer predicts */
    float anchors[2 * NERVE_YOLO_MAX_ANCHORS];
    int softmax, rescore, bias_match; /* [region] */
    int max_boxes;       /* truth boxes per image in the target (darknet: 90 yolo, 30 region) */
    int net_w, net_h;    /* [yolo]: the network's input size (anchors are in its pixels) */
    float ignore_thresh, truth_thresh; /* [yolo] */
    float thresh;        /* [region]: no objectness term above this IoU with a truth */
    float object_scale, noobject_scale, class_scale, coord_scale; /* [region] */
} nerve_yolo_config;
int nerve_yolo_check(const nerve_yolo_config *c);
int nerve_yolo(nerve_graph *g, int x, const nerve_yolo_config *c);
int nerve_yolo_loss(nerve_graph *g, int x, int anchors, int target, const nerve_yolo_config *c);

/* SSD (src/ops/ssd.c, src/model/model_ssd.c, docs/detection.md). Default boxes of a head over
 * an fh x fw map: at every cell centre ((x + 0.5)/fw, (y + 0.5)/fh), a box of scale s (width
 * and height s of the image), one of scale sqrt(s * next_scale), then for each ratio r a box
 * of width s*sqrt(r), height s/sqrt(r) and one of ratio 1/r: 2 + 2*n_ratios boxes a cell. */
#define NERVE_SSD_MAX_RATIOS 8
typedef struct nerve_ssd_head {
    int fh, fw;              /* the map's size */
    float scale, next_scale; /* s_k and s_(k+1) */
    float ratios[NERVE_SSD_MAX_RATIOS]; /* aspect ratios (width / height) above 1 */
    int n_ratios;
} nerve_ssd_head;
/* The head's default boxes as corners relative to the image (0..1) into out [count, 4],
 * cell by cell (row major), then box; returns the count (out NULL: only that) or a negative
 * status. */
int nerve_ssd_priors(const nerve_ssd_head *h, float *out);
/* The MultiBox loss of pred [N, P, 4 + 1 + classes] (per default box: the offsets t_cx,
 * t_cy, t_w, t_h, then the scores of background and of each class) against the default
 * boxes priors [P, 4] (corners) and a target [N, max_boxes*5] of boxes (x, y, w, h relative
 * to the image, class; the list ends at a box of width or height 0). Each truth takes its
 * default box of highest IoU, then every default box whose best IoU with a truth is >=
 * match_thresh is that truth's; the others are negatives, of which the neg_pos x positives
 * of highest background loss count. Loss = (softmax cross-entropy over the positives and
 * those negatives + smooth L1 of the positives' offsets against the truths' offsets coded
 * with the variances) / the batch's positives (0 when there are none). */
typedef struct nerve_ssd_config {
    int classes;       /* object classes (the scores have one more: background, index 0) */
    int max_boxes;     /* truth boxes per image in the target */
    float match_thresh; /* 0.5 */
    float neg_pos;     /* hard negatives per positive: 3 */
    float variance[2]; /* centre and size variances: 0.1, 0.2 */
} nerve_ssd_config;
int nerve_ssd_check(const nerve_ssd_config *c);
int nerve_ssd_loss(nerve_graph *g, int pred, int priors, int target, const nerve_ssd_config *c);

/* Region-of-interest pooling for R-CNN heads (src/ops/roi.c, docs/detection.md): x
 * [N, C, H, W] and rois [N, R, 4] (R boxes per image, corners x1, y1, x2, y2 in the image's
 * pixels; spatial_scale = 1 / the map's stride) give [N, R, C, out_h, out_w], as
 * torchvision.ops.roi_pool / roi_align compute them. roi_pool (Fast R-CNN) rounds the box to
 * cells and takes the max per bin; roi_align (Mask R-CNN) averages bilinear samples,
 * sampling_ratio per bin and axis (<= 0: ceil(box size / output size)), aligned = 1 shifting
 * by half a cell. The boxes get no gradient. */
int nerve_roi_pool(nerve_graph *g, int x, int rois, int out_h, int out_w, float spatial_scale);
int nerve_roi_align(nerve_graph *g, int x, int rois, int out_h, int out_w, float spatial_scale,
                    int sampling_ratio, int aligned);

/* Faster R-CNN (src/ops/rcnn.c, docs/detection.md). One configuration holds the region
 * proposal network's and the head's settings. Boxes are corners in the input's pixels
 * (net_w x net_h); a target [N, max_boxes*5] holds per image up to max_boxes truths
 * (x1, y1, x2, y2, class), rows of zero size being no box. The RPN reads x [N, 5A, H, W]:
 * planes 0..A-1 the objectness logits of the A anchors of a cell, planes A + 4a .. A + 4a + 3
 * anchor a's box offsets (R-CNN coding, nerve_box_encode, weights 1); anchors
 * [H*W*A, 4] in nerve_anchors' order.
 *   nerve_rpn_proposals  -> rois [N, rois, 4]: every anchor decoded and clipped, sides below
 *       min_size dropped, the pre_nms best by objectness, NMS at rpn_nms, the post_nms best;
 *       evaluating, the first `rois` of them; training, the truths added and a sample of
 *       `rois` with at most fg_fraction of them at IoU >= fg_iou with a truth (the rest with
 *       IoU in [bg_iou, fg_iou)). Missing rows are empty boxes (0, 0, 0, 0). No gradient.
 *   nerve_rpn_loss       -> scalar: anchors at IoU >= rpn_pos_iou with a truth (and each
 *       truth's best anchors) positive, below rpn_neg_iou negative; rpn_batch sampled per
 *       image, at most rpn_pos_fraction positive; binary cross-entropy of the objectness
 *       over the sampled plus smooth L1 (rpn_beta) of the positives' offsets, both divided
 *       by the number sampled in the batch.
 *   nerve_fast_rcnn_loss -> scalar: scores [N, rois, classes + 1 + 4*classes] (class 0
 *       background, k + 1 class k, then 4 offsets per class, coded with `weights`); each
 *       non-empty RoI is class k + 1 when its best truth (class k) overlaps it by IoU >=
 *       fg_iou, else background: softmax cross-entropy plus smooth L1 (beta) of the
 *       foreground RoIs' offsets of their class, both divided by the non-empty RoIs.
 * The sampling draws from the graph's generator when training and from a fixed seed
 * otherwise; which anchor or RoI answers which truth is a constant of the step. */
typedef struct nerve_frcnn_config {
    int classes, net_w, net_h, max_boxes;
    int pre_nms, post_nms, rois, rpn_batch;
    float rpn_pos_iou, rpn_neg_iou, rpn_pos_fraction, rpn_nms, min_size, rpn_beta;
    float fg_iou, bg_iou, fg_fraction, beta;
    float weights[4];
} nerve_frcnn_config;
/* classes 1, max_boxes 32, pre_nms 6000, post_nms 300, rois 128, rpn_batch 256,
 * IoU 0.7 / 0.3, fraction 0.5, NMS 0.7, min_size 0, rpn_beta 1/9, fg_iou 0.5, bg_iou 0,
 * fg_fraction 0.25, beta 1/9, weights 10, 10, 5, 5; net_w, net_h 0 (to be set) */
nerve_frcnn_config nerve_frcnn_default(void);
int nerve_frcnn_check(const nerve_frcnn_config *c);
int nerve_rpn_proposals(nerve_graph *g, int x, int anchors, int target, const nerve_frcnn_config *c);
int nerve_rpn_loss(nerve_graph *g, int x, int anchors, int target, const nerve_frcnn_config *c);
int nerve_fast_rcnn_loss(nerve_graph *g, int scores, int rois, int target,
                         const nerve_frcnn_config *c);

/* Upsampling by an integer factor along every spatial axis (L only for [N, C, L]). */
typedef enum {
    NERVE_UPSAMPLE_NEAREST = 0,  /* each value fills its scale x scale block (nearest unpooling) */
    NERVE_UPSAMPLE_BED_OF_NAILS, /* the value at the block's top-left corner, zeros elsewhere */
    NERVE_UPSAMPLE_BILINEAR      /* align_corners = 0, PyTorch's default: output pixel o samples
                                    the input at (o + 0.5) / scale - 0.5, clamped to the edges */
} nerve_upsample_mode;
int nerve_upsample(nerve_graph *g, int x, int scale, nerve_upsample_mode mode);

/* Depth-to-space [N, C b^2, H, W] -> [N, C, H b, W b] and its inverse space-to-depth, in
 * ONNX's default DCR order: y[n, c, h b + i, w b + j] = x[n, (i b + j) C + c, h, w].
 * For [N, C, L] the block is 1-D: [N, C b, L] <-> [N, C, L b]. */
int nerve_depth_to_space(nerve_graph *g, int x, int block);
int nerve_space_to_depth(nerve_graph *g, int x, int block);

/* Local response normalisation (AlexNet; course formula):
 *   y_c = x_c / (k + alpha sum_{j = max(0, c - n/2)}^{min(C - 1, c + n/2)} x_j^2)^beta
 * across channels (axis 1, any rank >= 2), or with within_map != 0 over the n x n spatial
 * neighbourhood of the same map (n/2 rounds down in both). alpha is NOT divided by n (nor
 * by n^2) as PyTorch and Caffe do: pass alpha / n to match them. AlexNet's values follow. */
#define NERVE_LRN_SIZE 5
#define NERVE_LRN_ALPHA 1e-4f
#define NERVE_LRN_BETA 0.75f
#define NERVE_LRN_K 2.0f
int nerve_lrn(nerve_graph *g, int x, int size, float alpha, float beta, float k, int within_map);

/* Pixel-wise softmax cross-entropy for segmentation: logits [N, C, H, W] (or [N, C, L]),
 * labels [N, H, W] (or [N, 1, H, W]) holding class indices as floats, class_weights a
 * state [C] or -1. Softmax over the channels at each pixel; the loss is the mean over all
 * pixels of the batch, or with weights sum w_y (-log p_y) / sum w_y. A label that is not a
 * class makes the loss NaN. */
int nerve_pixel_softmax_ce_loss(nerve_graph *g, int logits, int labels, int class_weights);
/* The same; with use_ignore != 0, pixels labelled ignore_index carry no label: they add
 * nothing to the loss, its denominator or the gradient (a batch with no labelled pixel has
 * loss 0). Any other label that is not a class still makes the loss NaN. */
int nerve_pixel_softmax_ce_loss_ignore(nerve_graph *g, int logits, int labels, int class_weights,
                                       int use_ignore, int ignore_index);

/* Operators by name (the operator table, src/ops/registry.c; docs/ops.md lists every name
 * with its inputs and attributes). nerve_op_build adds the node that the direct function
 * adds (nerve_op_build(g, "add", ...) == nerve_add(...)), from inputs and named, typed
 * attributes as a model importer or the cfg builder has them: op names and attribute names
 * are nerve's, and an importer maps its own onto them. An unknown operator, a wrong number
 * of inputs, an unknown, repeated, missing (required) or mistyped attribute is
 * NERVE_ERR_ARG with a message naming it. An optional input may be passed as -1. */
typedef enum {
    NERVE_ATTR_INT = 1, /* i */
    NERVE_ATTR_FLOAT,   /* f */
    NERVE_ATTR_INTS,    /* ints[0..n) */
    NERVE_ATTR_STRING   /* s */
} nerve_attr_type;

typedef struct nerve_attr {
    const char *name;
    nerve_attr_type type;
    int64_t i;
    float f;
    const int64_t *ints;
    int n;
    const char *s;
} nerve_attr;

nerve_attr nerve_attr_int(const char *name, int64_t v);
nerve_attr nerve_attr_float(const char *name, float v);
nerve_attr nerve_attr_ints(const char *name, const int64_t *v, int n);
nerve_attr nerve_attr_string(const char *name, const char *v);
int nerve_op_build(nerve_graph *g, const char *op, const int *inputs, int n_inputs,
                   const nerve_attr *attrs, int n_attrs);

/* ===================================================================================== */
/* 7. Graphs: running                                                                     */
/* ===================================================================================== */

/* Orders the nodes, infers and checks every shape for batch size `max_batch`, and
 * allocates every buffer the graph will need (values, gradients, operator scratch).
 * After this, forward and backward allocate nothing. Nodes may not be added afterwards. */
int nerve_graph_compile(nerve_graph *g, int max_batch);
int nerve_graph_is_compiled(const nerve_graph *g);
/* The compiled memory plan shares buffers between operator nodes: their gradients live in
 * a pool (so nerve_grad() of an operator node gives NULL after compile; parameters and
 * inputs keep theirs), and some activations overwrite their input's value (which then
 * reads as the activation's output after forward). keep = 1, called before compile, gives
 * every node a private value and gradient instead (inspecting intermediate gradients or
 * values); no effect once compiled. */
void nerve_graph_keep_buffers(nerve_graph *g, int keep);
/* Re-infers shapes for a batch of n <= max_batch (e.g. the last, smaller batch). */
int nerve_graph_set_batch(nerve_graph *g, int n);
int nerve_graph_batch(const nerve_graph *g);
/* Training mode (dropout active, batch norm uses and updates batch statistics) or eval. */
void nerve_graph_set_training(nerve_graph *g, int training);
int nerve_graph_training(const nerve_graph *g);
/* The generator used by stochastic operators (dropout). */
nerve_rng *nerve_graph_rng(nerve_graph *g);

/* Requests gradients with respect to an input node (saliency, adversarial examples). */
int nerve_input_set_requires_grad(nerve_graph *g, int node, int on);
int nerve_input_requires_grad(const nerve_graph *g, int node); /* 1 when asked for */

/* Views into the graph's buffers (valid until the graph is freed). For inputs, write the
 * batch into nerve_value(g, input).data before calling forward. */
nerve_tensor nerve_value(nerve_graph *g, int node);
nerve_tensor nerve_grad(nerve_graph *g, int node); /* data == NULL if it has no gradient */

/* Computes every node needed for `target` (or all nodes if target < 0). */
int nerve_forward(nerve_graph *g, int target);
/* Back-propagates from scalar node `loss` (seeded with 1): zeroes then fills the gradients
 * of every parameter and of inputs that asked for one. Call after nerve_forward(). */
int nerve_backward(nerve_graph *g, int loss);
/* Back-propagates from any node `from` with upstream gradient seed[0..numel) (its size at
 * the current batch; NULL: ones): gradients of a chosen class score, of a feature map
 * (DeepDream), of a loss computed outside the graph. flags 0: as nerve_backward (every
 * parameter's gradient too, the grad hook called); NERVE_BACKWARD_INPUTS_ONLY: only the
 * inputs that asked for one (requires_grad) get gradients; parameters' gradients are left
 * as they were and the grad hook is not called (attacks and explanations inside a
 * training step). Call after nerve_forward(g, from). */
enum { NERVE_BACKWARD_INPUTS_ONLY = 1 };
int nerve_backward_seeded(nerve_graph *g, int from, const float *seed, int flags);
/* How plain ReLU nodes pass a gradient dy back (Springenberg et al. 2015; COURSE.md §11):
 * BACKPROP (the default) dy where the output is positive; DECONVNET max(dy, 0) whatever the
 * input; GUIDED dy where both the output and dy are positive. Other activations keep their
 * derivative. A graph whose memory plan folded ReLUs into batch norms refuses the other
 * modes at backward (compile it with nerve_graph_keep_buffers(g, 1)). */
typedef enum nerve_relu_backward {
    NERVE_RELU_BACKPROP = 0,
    NERVE_RELU_DECONVNET,
    NERVE_RELU_GUIDED
} nerve_relu_backward;
int nerve_graph_set_relu_backward(nerve_graph *g, nerve_relu_backward mode);
/* Gradient-ready notification (data-parallel training starts summing a gradient across
 * processes while backward still runs): during nerve_backward, fn(user, p) is called once
 * for every trainable parameter p as soon as its gradient is final, i.e. right after the
 * backward of the last node that adds into it (views resolved); parameters that nothing
 * on the loss's path reads (their gradient stays zero) are reported at the end. fn NULL
 * removes the hook. The order is nerve_graph_grad_order's. */
int nerve_graph_set_grad_hook(nerve_graph *g, void (*fn)(void *user, int param), void *user);
/* The trainable parameters of a compiled graph in the order nerve_backward(g, loss)
 * finishes their gradients (the grad hook's order); fills up to cap ids into out (may be
 * NULL) and returns the count, or a negative status. */
int nerve_graph_grad_order(nerve_graph *g, int loss, int *out, int cap);
/* Synchronised batch statistics (data-parallel training): with fn set, a training forward
 * of batch norm sums its per-channel sums over the ranks with fn(user, buf, n, 0) (a plain
 * sum: sums of x - running mean, of its square, and the sample count), and its backward
 * the sums of the output gradient and of its product with x-hat with fn(user, buf, n, 1),
 * which returns the sum of every rank's values weighted by its share of the batch,
 * divided by this rank's share (the gradients of each rank's mean loss are then those of
 * the global mean loss). A failing fn is remembered and returned by
 * nerve_graph_stat_status. fn NULL removes it. */
void nerve_graph_set_stat_reduce(nerve_graph *g, int (*fn)(void *user, double *buf, int n, int backward),
                                 void *user);
/* The first status a stat reduce returned since the last call (which clears it). */
int nerve_graph_stat_status(nerve_graph *g);
/* Checks for NaN or infinity, in creation order, every input, parameter and state, and the
 * output (at the current batch) of every operator node that the last nerve_forward(g,
 * target) computed (target < 0: all). The first non-finite value is an error
 * NERVE_ERR_NUMERIC naming its node, shape and element. One read of every buffer, no
 * allocation: the training loop calls it once per epoch (see nerve_fit). */
int nerve_graph_check_finite(nerve_graph *g, int target);

/* Trainable (not frozen) parameters, in creation order. Returns the count; fills up to
 * `cap` ids into out (out may be NULL to count). */
int nerve_graph_params(const nerve_graph *g, int *out, int cap);
/* Every PARAM and STATE node (what a checkpoint stores), except the carried states of
 * recurrent layers (where a stream is, not what the model knows: a training checkpoint
 * keeps them apart, see nerve_fit). */
int nerve_graph_persistent(const nerve_graph *g, int *out, int cap);
/* Total elements of all PARAM nodes (frozen included). */
size_t nerve_graph_param_count(const nerve_graph *g);

/* Finite-difference check of the gradients of scalar `loss` with respect to every
 * parameter and every input with requires_grad: central differences with step eps,
 * compared with |a - n| <= atol + rtol * max(|a|, |n|). Returns NERVE_OK if all agree,
 * else NERVE_ERR_NUMERIC with the worst offender in the error message. Leaves values as
 * they were. */
int nerve_gradcheck(nerve_graph *g, int loss, float eps, float atol, float rtol);

/* ===================================================================================== */
/* 8. Initialisers and layers                                                             */
/* ===================================================================================== */

typedef enum {
    NERVE_INIT_ZEROS = 0,
    NERVE_INIT_CONSTANT,      /* a */
    NERVE_INIT_UNIFORM,       /* U(a, b) */
    NERVE_INIT_NORMAL,        /* N(a, b^2): a = mean, b = std */
    NERVE_INIT_GLOROT_UNIFORM,/* U(-s, s), s = sqrt(6/(fan_in+fan_out)) */
    NERVE_INIT_GLOROT_NORMAL, /* N(0, 2/(fan_in+fan_out)) */
    NERVE_INIT_HE_UNIFORM,    /* U(-s, s), s = sqrt(6/fan_in) */
    NERVE_INIT_HE_NORMAL,     /* N(0, 2/fan_in) */
    NERVE_INIT_LECUN_UNIFORM, /* U(-s, s), s = sqrt(3/fan_in) */
    NERVE_INIT_LECUN_NORMAL   /* N(0, 1/fan_in) */
} nerve_init_type;

typedef struct nerve_init {
    nerve_init_type type;
    float a, b;
} nerve_init;

/* fan_in/fan_out of a weight of shape [out, in, k...]: in*prod(k) and out*prod(k);
 * for 1-D shapes both are dims[0]. */
void nerve_fans(int ndim, const int *dims, int *fan_in, int *fan_out);
int nerve_init_parse(const char *name, nerve_init *out); /* "he", "glorot", "zeros", ... */
int nerve_init_param(nerve_graph *g, int node, nerve_init init, nerve_rng *rng);
void nerve_init_fill(float *x, size_t n, int ndim, const int *dims, nerve_init init,
                     nerve_rng *rng);

/* Layers create their parameters (named "<name>.weight", "<name>.bias", ...) and return
 * the output node. */
int nerve_layer_dense(nerve_graph *g, int x, int n_out, int bias, nerve_init init,
                      nerve_rng *rng, const char *name);
int nerve_layer_batchnorm(nerve_graph *g, int x, float momentum, float eps,
                          const char *name);
int nerve_layer_prelu(nerve_graph *g, int x, int per_channel, float init_slope,
                      const char *name);

/* ===================================================================================== */
/* 9. Optimisers, schedules, clipping                                                     */
/* ===================================================================================== */

typedef enum {
    NERVE_OPT_SGD = 0,
    NERVE_OPT_MOMENTUM, /* v <- m v - lr g; w <- w + v */
    NERVE_OPT_NESTEROV, /* v <- m v - lr grad(w + m v); w <- w + v */
    NERVE_OPT_ADAGRAD,  /* r <- r + g^2; w <- w - lr g / (delta + sqrt(r)), delta 1e-7 */
    NERVE_OPT_RMSPROP,  /* r <- rho r + (1-rho) g^2; w <- w - lr g / sqrt(delta + r), 1e-6 */
    NERVE_OPT_ADAM,     /* bias-corrected; w <- w - lr s^ / (sqrt(r^) + delta), 1e-8 */
    NERVE_OPT_ADAMW,    /* Adam with decoupled weight decay */
    NERVE_OPT_ADADELTA, /* Zeiler 2012; lr scales the update (1.0 = the paper) */
    NERVE_OPT_COUNT
} nerve_opt_type;

typedef struct nerve_optim_config {
    nerve_opt_type type;
    float momentum;     /* momentum / Nesterov mu (default 0.9) */
    float rho1, rho2;   /* Adam betas (0.9, 0.999); rho1 is RMSProp/AdaDelta rho (0.9/0.95) */
    float delta;        /* stabiliser; 0 selects the optimiser's default */
    float weight_decay; /* coupled (g += wd w) except AdamW/decoupled (w -= lr wd w) */
    int decoupled;      /* decoupled decay for any optimiser (AdamW sets it implicitly) */
    float clip_norm;    /* global-norm gradient clipping threshold; 0 = off */
} nerve_optim_config;

typedef struct nerve_optim nerve_optim;

/* Defaults for a type (as the course states them). */
nerve_optim_config nerve_optim_default(nerve_opt_type type);
int nerve_optim_parse(const char *name, nerve_opt_type *out); /* "sgd", "adam", ... */
const char *nerve_optim_name(nerve_opt_type type);
/* Binds to the graph's trainable parameters at the time of the call (compiled graph). */
nerve_optim *nerve_optim_create(nerve_graph *g, const nerve_optim_config *cfg);
void nerve_optim_free(nerve_optim *o);
/* Call before the forward pass of each step: Nesterov moves the weights to the look-ahead
 * point w + m v (a no-op for the others). */
void nerve_optim_prepare(nerve_optim *o);
/* Applies one update with learning rate lr using the gradients in the graph (clipping and
 * weight decay included). Returns the gradient's global norm before clipping. */
float nerve_optim_step(nerve_optim *o, float lr);
int64_t nerve_optim_steps(const nerve_optim *o);
/* Optimiser state as named tensors for checkpoints: count, then i-th name/tensor view. */
int nerve_optim_state_count(const nerve_optim *o);
int nerve_optim_state_get(nerve_optim *o, int i, const char **name, nerve_tensor *view);
int nerve_optim_set_steps(nerve_optim *o, int64_t steps);

/* Global-norm clipping of arrays: if ||g|| > max_norm, scale all by max_norm/||g||.
 * Returns the norm before clipping. */
float nerve_clip_global_norm(float **grads, const size_t *sizes, int n, float max_norm);

/* Newton's method for tiny models: Hessian of `loss` w.r.t. all trainable parameters by
 * central differences of the analytic gradient, then w <- w - lr H^-1 g solved by Cholesky
 * (with Levenberg damping added until H + damping I is positive definite). Needs forward
 * inputs set; O(P) backward passes and O(P^2) memory. */
int nerve_newton_step(nerve_graph *g, int loss, float lr);

typedef enum {
    NERVE_SCHED_CONSTANT = 0,
    NERVE_SCHED_STEP,        /* lr * gamma^(floor(t / step)) */
    NERVE_SCHED_MULTISTEP,   /* lr * product of the scales of the milestones <= t */
    NERVE_SCHED_EXPONENTIAL, /* lr * gamma^t */
    NERVE_SCHED_LINEAR,      /* course: (1 - k/tau) lr + (k/tau) lr_end for k < tau, iterations */
    NERVE_SCHED_COSINE,      /* linear warm-up for `warmup` iterations, then cosine to lr_end */
    NERVE_SCHED_PLATEAU,     /* lr * gamma each time the metric fails to improve `patience` times */
    NERVE_SCHED_POLY,        /* darknet: lr * (1 - k / max_iter)^power, iterations k */
    NERVE_SCHED_SIGMOID      /* darknet: lr / (1 + exp(gamma (k - step))), iterations k */
} nerve_sched_type;
/* t above is the epoch, or the iteration when in_iterations is set (darknet's policies
 * step, steps and exp count iterations, docs/darknet.md). burn_in > 0 replaces the rate of
 * every iteration k < burn_in by lr (k / burn_in)^power (darknet's burn-in). */

#define NERVE_MAX_MILESTONES 16
typedef struct nerve_schedule {
    nerve_sched_type type;
    float lr;       /* base learning rate */
    float lr_end;   /* linear: eps_tau; cosine: final value */
    float gamma;    /* decay factor (step, multistep, exponential, plateau) */
    int step;       /* epochs (iterations if in_iterations) between decays (step); sigmoid:
                       the iteration of the midpoint */
    int milestones[NERVE_MAX_MILESTONES];
    int n_milestones;
    float scales[NERVE_MAX_MILESTONES]; /* multistep: factor at each milestone (0: gamma) */
    int in_iterations; /* step, multistep, exponential count iterations, not epochs */
    float power;       /* poly and burn-in exponent (darknet's power=, default 4) */
    int64_t max_iter;  /* poly: the iteration where the rate reaches 0 (max_batches=) */
    int64_t burn_in;   /* iterations of burn-in (0: none) */
    int64_t tau;    /* linear: iterations until lr_end; cosine: total iterations (<= 0: unset;
                       nerve_fit then uses the whole run, epochs x batches per epoch) */
    int64_t warmup; /* cosine: warm-up iterations (lr (k+1)/warmup at iteration k) */
    int patience;   /* plateau */
    float threshold;/* plateau: relative improvement that counts (default 1e-4) */
    /* plateau state */
    float best;
    int bad_epochs;
    float plateau_scale;
} nerve_schedule;

nerve_schedule nerve_schedule_default(nerve_sched_type type, float lr);
int nerve_schedule_parse(const char *name, nerve_sched_type *out);
const char *nerve_schedule_name(nerve_sched_type type);
/* Learning rate for iteration `iter` (0-based, counted over the whole run) in `epoch`
 * (0-based: the number of completed epochs). */
float nerve_schedule_lr(const nerve_schedule *s, int64_t iter, int epoch);
/* Plateau schedule: feed the validation metric (lower is better) once per epoch. */
void nerve_schedule_observe(nerve_schedule *s, float metric);

/* ===================================================================================== */
/* 10. Data sets and batches                                                              */
/* ===================================================================================== */

/* What a sample's target is (docs/data.md). The input is always x; the target is one of: */
typedef enum nerve_target_kind {
    NERVE_TARGET_CLASS = 0, /* y[i]: a class index (stored as float; -1 if unlabelled) */
    NERVE_TARGET_VALUES,    /* t: target_numel floats per sample of shape tdims: a regression
                               vector, an image or any tensor (image to image) */
    NERVE_TARGET_INPUT,     /* the input itself (reconstruction; a denoising model's noise is
                               applied to the input only); nothing is stored in t */
    NERVE_TARGET_MASK,      /* t: one class index per pixel, shape tdims = [H, W] (as floats);
                               ignore_index marks pixels that carry no label */
    NERVE_TARGET_BOXES,     /* boxes[box_start[i] .. box_start[i+1]): labelled boxes */
    NERVE_TARGET_TOKENS     /* t: target_numel token indices per sample (as floats) */
} nerve_target_kind;

/* A labelled box, YOLO style: centre and size relative to the image (0..1). */
typedef struct nerve_box {
    float cls;
    float x, y, w, h;
} nerve_box;

/* An in-memory data set: n samples of `sample_numel` floats each with shape dims[0..ndim)
 * (no batch dimension) and a target of kind `target`. For class targets y holds one label
 * per sample (stored as float, -1 if unlabelled); y is always allocated and other kinds may
 * use it too (e.g. the class of a regression sample, for stratified plots). */
typedef struct nerve_dataset {
    int n;
    int ndim;
    int dims[NERVE_MAX_DIMS];
    size_t sample_numel;
    float *x;      /* n * sample_numel */
    float *y;      /* n */
    int n_classes; /* 1 + max label, 0 if unlabelled */
    /* targets other than a class index (nerve_dataset_alloc_target) */
    nerve_target_kind target;
    int tndim;
    int tdims[NERVE_MAX_DIMS];
    size_t target_numel;  /* values per sample in t */
    float *t;             /* n * target_numel (VALUES, MASK, TOKENS), else NULL */
    int64_t *box_start;   /* n + 1 offsets into boxes (BOXES), else NULL */
    nerve_box *boxes;     /* box_start[n] boxes */
    int ignore_index;     /* MASK: the value of unlabelled pixels (default -1) */
    char **names;         /* n_names class names (NULL: none), e.g. from a names= file */
    int n_names;
    int streams;          /* > 0: a token stream cut into `streams` parallel streams
                             (nerve_dataset_text_streams): sample k*streams + s is chunk k of
                             stream s, read in this order with the recurrent state carried
                             from one chunk to the next; 0: independent samples */
} nerve_dataset;

/* Allocates a data set of n samples of shape dims[0..ndim): x zero-filled, every label -1
 * (unlabelled), n_classes 0; the caller fills it in. x and y are the library's to free. */
int nerve_dataset_alloc(nerve_dataset *d, int n, int ndim, const int *dims);
/* Frees everything a data set made by the library owns and zeroes the struct. */
void nerve_dataset_free(nerve_dataset *d);
/* Gives d (already allocated with n samples) a target of `kind` (VALUES, MASK or TOKENS)
 * of shape tdims[0..tndim), zero-filled, or marks it INPUT / CLASS (tndim 0, nothing
 * allocated). Any earlier target storage is freed. */
int nerve_dataset_alloc_target(nerve_dataset *d, nerve_target_kind kind, int tndim,
                               const int *tdims);
/* Gives d box targets: counts[i] boxes for sample i, copied from boxes (sum of counts). */
int nerve_dataset_set_boxes(nerve_dataset *d, const int *counts, const nerve_box *boxes);
/* Copies n class names (names[i] for class i). */
int nerve_dataset_set_names(nerve_dataset *d, int n, const char *const *names);
/* IDX files (MNIST format, plain or gzip-compressed, detected by content). Images are
 * scaled by `scale` (e.g. 1/255). labels_path may be NULL. Every header field and size is
 * validated; errors name the file. */
int nerve_dataset_load_idx(nerve_dataset *d, const char *images_path, const char *labels_path,
                           float scale);
/* CSV: one sample per line, numeric features and one label column (label_col, negative
 * counts from the end; NERVE_CSV_NO_LABEL for none). A first line that is not numeric is
 * taken as a header. Errors name file and line. */
#define NERVE_CSV_NO_LABEL (-1000)
int nerve_dataset_load_csv(nerve_dataset *d, const char *path, int label_col);
/* Text as a token stream (src/data/text.c; docs/textgen.md). A vocabulary is a set of
 * bytes in increasing order; a byte's token is its index in it. UTF-8 text is modelled byte
 * by byte, so any file works and round-trips exactly. */
typedef struct nerve_vocab {
    int n;                    /* tokens, 0..256 */
    unsigned char bytes[256]; /* bytes[k]: the byte of token k, increasing */
} nerve_vocab;
/* The distinct bytes of text[0..len), sorted. */
void nerve_vocab_of_text(nerve_vocab *v, const unsigned char *text, size_t len);
/* The distinct bytes of a file (at most 2 GiB); errors name the file, and an empty file is
 * NERVE_ERR_FORMAT. */
int nerve_vocab_of_file(nerve_vocab *v, const char *path);
/* The token of byte b, -1 if b is not in the vocabulary. */
int nerve_vocab_token(const nerve_vocab *v, int b);
/* Tokens of text[0..len) into ids (len floats); a byte outside the vocabulary is an error
 * that gives it and its offset. */
int nerve_vocab_encode(const nerve_vocab *v, const unsigned char *text, size_t len, float *ids);
/* Text form (checkpoint metadata): two lower-case hex digits per byte, increasing, into
 * out (at least 513 bytes); and back, checking the form. */
void nerve_vocab_format(const nerve_vocab *v, char *out);
int nerve_vocab_parse(nerve_vocab *v, const char *hex);
/* Stream batching for truncated back-propagation through time: the n tokens ids[0..n) are
 * cut into `streams` equal consecutive streams (stream s starts at token s*floor(n/streams)),
 * each read as chunks of `seq` inputs whose targets are the tokens that follow them. The
 * data set holds chunk k of stream s as sample k*streams + s: x [seq] the inputs, t [seq]
 * (target TOKENS) the next tokens; d->streams = streams, n_classes = vocab (the class
 * count of the targets). keep_tail = 0 keeps full chunks only (floor((stride-1)/seq) per
 * stream: training); keep_tail = 1 also keeps each stream's last, partial chunk, its
 * missing positions padded with input 0 and target -1 (no label), so that every next
 * token of a stream is predicted exactly once (evaluation). A stream too short for one
 * chunk is an error that says what to lower. */
int nerve_dataset_text_streams(nerve_dataset *d, const float *ids, size_t n, int streams, int seq,
                               int vocab, int keep_tail);
/* CSV per RFC 4180 (docs/data.md): fields split by `sep`, optionally in double quotes
 * (which may hold separators, line breaks and doubled quotes ""), records ended by LF or
 * CRLF, unquoted fields trimmed of blanks, blank lines skipped, every record with the same
 * number of fields. Errors name file:line:column. */
enum { NERVE_CSV_HEADER_AUTO = 0, NERVE_CSV_HEADER_YES, NERVE_CSV_HEADER_NO };
typedef struct nerve_csv_options {
    char sep;          /* field separator (default ','; '\t' for TSV) */
    int header;        /* NERVE_CSV_HEADER_*: AUTO takes the first record as a header when it
                          has a field that is not a number where the second record has one */
    int skip;          /* physical lines skipped before anything else (e.g. 1 for sklearn's
                          "n_samples,n_features,names..." first line) */
    const char *label; /* label column: a header name, else an integer index (negative from
                          the end); NULL: the last column, or none when targets are given;
                          "": none. Labels are non-negative integers, or class names (every
                          value not a number) mapped to indices in strcmp-sorted order, or in
                          the order of class_names; the names go to d->names */
    const char *targets;             /* comma-separated target columns (names or indices):
                                        float regression targets, NERVE_TARGET_VALUES of
                                        shape [count]; NULL or "": none */
    const char *const *class_names;  /* optional: the classes, in index order */
    int n_class_names;
    float scale;       /* multiplies every feature value (default 1) */
} nerve_csv_options;
nerve_csv_options nerve_csv_default(void);
int nerve_dataset_load_csv_ex(nerve_dataset *d, const char *path, const nerve_csv_options *o);
/* The same parser over a memory buffer of len bytes (need not be NUL-terminated); name is
 * used in messages. */
int nerve_dataset_parse_csv(nerve_dataset *d, const char *text, size_t len, const char *name,
                            const nerve_csv_options *o);
/* dst gets copies of the samples src[idx[0..count)] with their targets and names. */
int nerve_dataset_gather(nerve_dataset *dst, const nerve_dataset *src, const int *idx, int count);
/* Moves the last `fraction` of a (shuffled by seed if seed != 0) data set into val. */
int nerve_dataset_split(nerve_dataset *d, nerve_dataset *val, float fraction, uint64_t seed);
/* NaN or infinity anywhere in d (inputs, labels, targets) is an error NERVE_ERR_NUMERIC
 * "<source>: sample <i> (counting from 0, in file order), input value <j> ... is NaN"
 * (source names the file it came from). nerve_config_load_data and the CLI's loaders call
 * it on every set they load (a CSV value of 1e39 overflows float to infinity; float IDX
 * files may hold NaN). */
int nerve_dataset_check_finite(const nerve_dataset *d, const char *source);
/* Per-feature mean and standard deviation (population), each sample_numel floats. */
int nerve_dataset_stats(const nerve_dataset *d, float *mean, float *std);
/* Bootstrap resample for bagging: dst gets src->n samples drawn uniformly with replacement
 * by a generator seeded with seed (about 63.2% of the samples appear at least once). */
int nerve_dataset_bootstrap(const nerve_dataset *src, nerve_dataset *dst, uint64_t seed);

/* Mini-batch iteration. batch_size = n gives full batch, 1 gives online learning. */
typedef struct nerve_batcher {
    const nerve_dataset *d;
    int batch_size;
    int shuffle;
    int *order;   /* permutation of 0..n-1 */
    int pos;      /* next sample in order */
    int last_pos, last_count; /* the last batch: order[last_pos .. last_pos + last_count) */
    nerve_rng rng;
} nerve_batcher;

int nerve_batcher_init(nerve_batcher *b, const nerve_dataset *d, int batch_size, int shuffle,
                       uint64_t seed);
void nerve_batcher_free(nerve_batcher *b);
/* Starts an epoch (reshuffles if shuffling). */
void nerve_batcher_reset(nerve_batcher *b);
/* Copies the next batch into x (batch_size * sample_numel) and y (batch_size); returns
 * the number of samples copied (0 at the end of the epoch). */
int nerve_batcher_next(nerve_batcher *b, float *x, float *y);
/* The same, also copying the fixed-size targets (VALUES, MASK, TOKENS) into t
 * (batch_size * target_numel; may be NULL). */
int nerve_batcher_next_target(nerve_batcher *b, float *x, float *y, float *t);
/* The data-set indices of the samples of the last batch returned (count of them in *n):
 * how variable-length targets (boxes) are gathered. */
const int *nerve_batcher_last_indices(const nerve_batcher *b, int *n);


/* ===================================================================================== */
/* 10a. Images, image folders and other sources (docs/data.md)                            */
/* ===================================================================================== */

/* A decoded image: c planes of h x w floats (CHW), 8-bit samples / 255 and 16-bit / 65535,
 * so values lie in [0, 1]. */
typedef struct nerve_image {
    int c, h, w;
    float *data;
} nerve_image;

/* Decodes a PNG or JPEG image (found by its signature, not its name) from len bytes of buf;
 * name is used in messages. channels: 1 (gray = 0.299 R + 0.587 G + 0.114 B), 3 (gray copied
 * to R, G, B), or 0 (as stored: 1 for gray, 3 for colour). Alpha is dropped, palettes
 * expanded. Truncated or corrupt data is an error (NERVE_ERR_FORMAT), never gray pixels. */
int nerve_image_decode(const void *buf, size_t len, const char *name, int channels,
                       nerve_image *out);
int nerve_image_load(const char *path, int channels, nerve_image *out);
void nerve_image_free(nerve_image *im);

/* How an image of another size becomes h x w: NONE refuses it; STRETCH scales each axis
 * on its own (aspect ratio lost); CROP scales (keeping the aspect ratio) until the image
 * covers h x w and cuts the centre; PAD scales until it fits inside and fills the rest with
 * zeros. Shrinking by 2x or more averages boxes of pixels, else bilinear. */
typedef enum nerve_resize {
    NERVE_RESIZE_NONE = 0,
    NERVE_RESIZE_STRETCH,
    NERVE_RESIZE_CROP,
    NERVE_RESIZE_PAD
} nerve_resize;
/* dst: src->c * h * w floats. */
int nerve_image_resize(const nerve_image *src, int h, int w, nerve_resize policy, float *dst);
int nerve_resize_parse(const char *name, nerve_resize *out); /* "none", "stretch", ... */

/* JPEG writer (libjpeg-turbo): planes [channels, h, w] (channels 1 or 3) of values clamped
 * to [0, 1]; quality 1..100. */
int nerve_jpeg_write(const char *path, int w, int h, int channels, const float *data,
                     int quality);

/* CIFAR-10/100 binary files (data_batch_N.bin, test_batch.bin, train.bin, test.bin): records
 * of 1 label byte + 3072 pixel bytes (CIFAR-10) or coarse + fine label bytes + 3072 pixel
 * bytes (CIFAR-100), pixels as 32x32 planes of R, G, B, each times scale. kind: 10, 100, or 0
 * to tell from the file size (a whole number of 3073- or 3074-byte records; a size that is
 * neither is an error saying which format the file looks like and where it is cut). coarse:
 * CIFAR-100's 20 coarse classes instead of the 100 fine ones. Samples are [3, 32, 32];
 * n_classes 10, 20 or 100. Several files are concatenated in order. */
int nerve_dataset_load_cifar(nerve_dataset *d, const char *const *paths, int n, int kind,
                             int coarse, float scale);
int nerve_dataset_parse_cifar(nerve_dataset *d, const void *buf, size_t len, const char *name,
                              int kind, int coarse, float scale);


/* Writes the images of d as root/<class>/<index>.png (format "png") or .jpg ("jpg",
 * quality 1..100), index = the sample's 0-based position (%05d): the image folder that
 * nerve_dataset_load_image_folder reads back. Samples are [H, W] or [C, H, W] (C 1 or 3) with
 * values in [0, 1] (clamped, rounded to 8 bits). Class folders are named names[k] (NULL:
 * d->names, else the class index); a name that cannot be a folder name ('/', ".", "..",
 * empty) or a repeated one is an error. Files are written in parallel. */
int nerve_dataset_export_images(const nerve_dataset *d, const char *root, const char *format,
                                int quality, const char *const *names, int n_names);

/* How images become samples: every image is decoded once, at load time, on the library's
 * threads, into memory. */
typedef struct nerve_image_options {
    int channels;        /* 1 or 3 (0: as the first image is stored) */
    int height, width;   /* sample size; 0: the images' own (which must then all agree) */
    nerve_resize resize; /* policy for images of another size (NONE: an error naming both
                            sizes) */
    float scale;         /* multiplies the [0, 1] values (0 or 1: none) */
} nerve_image_options;

/* An image folder: root/<class>/<image>, one subfolder per class. Classes are the
 * subfolders' names in strcmp-sorted order (index i = i-th name; they go to d->names);
 * images are the files ending in .png, .jpg or .jpeg (any case) in sorted order; other files
 * and names starting with '.' are ignored. An image file directly in root, an empty class
 * folder or a folder without subfolders is an error. */
int nerve_dataset_load_image_folder(nerve_dataset *d, const char *root,
                                    const nerve_image_options *o);
/* The images of paths[0..n) as unlabelled samples (y = -1), in that order; a path that is
 * a folder adds its image files (sorted, not recursive). */
int nerve_dataset_load_images(nerve_dataset *d, const char *const *paths, int n,
                              const nerve_image_options *o);
/* The image files that nerve_dataset_load_images reads for paths[0..n), in its order (a
 * folder replaced by its sorted image files); free with nerve_names_free(*out, *n_out). */
int nerve_image_paths(const char *const *paths, int n, char ***out, int *n_out);

/* darknet-style detection lists (docs/data.md): one image path a line (relative to the
 * list's folder), each image's YOLO label file ("class cx cy w h" a line, relative
 * coordinates) found by replacing the last /images/ or /JPEGImages/ with /labels/ and the
 * extension with .txt, else beside the image. The target is NERVE_TARGET_BOXES; classes
 * must be below n_names, cx, cy in [0, 1], w, h in (0, 1]; errors name file:line. resize
 * may be NONE or STRETCH only. */
int nerve_dataset_load_list(nerve_dataset *d, const char *list, const char *const *names,
                            int n_names, const nerve_image_options *o);
/* The same lists with class masks instead of boxes (segmentation, docs/data.md): each
 * image's mask is found as its label file is, under masks/ (or, beside JPEGImages/, under
 * PASCAL VOC's SegmentationClass/) with the extension .png, else beside the image as
 * NAME_mask.png; a grey or palette PNG of the image's size holding 0 for the background,
 * 1..n_names for the classes of names and 255 for unlabelled pixels. The target is
 * NERVE_TARGET_MASK [H, W] with n_names + 1 classes (class 0 "background", then names) and
 * ignore_index -1 for the unlabelled pixels. Images are not resized (o->resize NONE). */
int nerve_dataset_load_list_masks(nerve_dataset *d, const char *list, const char *const *names,
                                  int n_names, const nerve_image_options *o);
/* One YOLO label file's text (len bytes) into *out (free with nerve_boxes_free). */
int nerve_boxes_parse(const char *text, size_t len, const char *name, int n_classes,
                      nerve_box **out, int *count);
void nerve_boxes_free(nerve_box *b);

/* ---- Generated detection and segmentation scenes (src/data/scenes.c, docs/detection.md)
 * Scenes composed from the items of two gray image/label IDX pairs (training items for the
 * training scenes, test items for the test scenes), written as a darknet-style list data
 * set under outdir: classes.names, train.txt and test.txt (image paths relative to outdir),
 * images/<split>/NNNNNN.png, labels/<split>/NNNNNN.txt (YOLO boxes: the tight box of each
 * object's pixels above 0.1) and masks/<split>/NNNNNN.png (0 background, class k as k + 1). */
typedef struct nerve_scenes_options {
    int canvas;                   /* side of the square scenes, pixels (96) */
    int n_train, n_test;          /* scenes per split (2000, 500) */
    int min_objects, max_objects; /* objects per scene (1, 4; at most 64) */
    int min_size, max_size;       /* side an item is scaled to, pixels (24, 48) */
    float max_overlap;            /* the largest IoU between two objects' boxes (0.2) */
    int clutter;                  /* unlabelled item fragments per scene (0) */
    uint64_t seed;                /* (1) */
    const char *train_images, *train_labels, *test_images, *test_labels; /* IDX (required) */
    const char *const *names;     /* class names for classes.names (NULL: class0, class1, ..) */
    int n_names;
} nerve_scenes_options;
typedef struct nerve_scenes_stats {
    int train_scenes, train_objects, test_scenes, test_objects;
} nerve_scenes_stats;
nerve_scenes_options nerve_scenes_default(void);
/* stats may be NULL. The same options and seed give the same files. */
int nerve_scenes_generate(const char *outdir, const nerve_scenes_options *o,
                          nerve_scenes_stats *stats);

/* ---- Box geometry for detection (src/core/boxes.c, docs/detection.md) ----------------
 * Boxes are corners (x1, y1, x2, y2), x2 >= x1, y2 >= y1, in any unit (pixels here). */
/* Intersection over union; 0 when the union is empty (both boxes degenerate). */
float nerve_box_iou(const float *a, const float *b);
/* Generalised IoU: IoU - (|hull| - |union|) / |hull|, in (-1, 1]; 0 for an empty hull. */
float nerve_box_giou(const float *a, const float *b);
/* A YOLO box (centre and size relative to the image) as corners in a width x height image. */
void nerve_box_corners(const nerve_box *b, float width, float height, float out[4]);
/* Greedy non-maximum suppression: boxes [n, 4], scores [n]; in decreasing score (equal
 * scores in input order) a box is kept unless a kept box of the same class (classes NULL:
 * any box) overlaps it with IoU > iou_threshold. keep[0..*n_keep) gets the kept indices in
 * decreasing score; keep has room for n. A NaN score or non-finite coordinate is an error. */
int nerve_nms(const float *boxes, const float *scores, const int *classes, int n,
              float iou_threshold, int *keep, int *n_keep);
/* R-CNN box coding of a truth box against a proposal (or anchor) P, both corners:
 * t_x = (G_x - P_x) / P_w, t_y = (G_y - P_y) / P_h, t_w = log(G_w / P_w), t_h = log(G_h / P_h)
 * (centres and sizes), each multiplied by weights[i] (NULL: all 1). A box of zero size is
 * an error. decode inverts it; a size step is clamped at log(1000/16). */
int nerve_box_encode(const float *proposal, const float *truth, const float *weights, float t[4]);
void nerve_box_decode(const float *proposal, const float *t, const float *weights, float out[4]);
/* Anchors over an fh x fw feature map of the given stride (pixels per cell): at every cell
 * centre ((x + 0.5) stride, (y + 0.5) stride), one box per (size, ratio) with area size^2 and
 * height / width = ratio, ordered cell by cell (row major), then size, then ratio, as
 * corners into out [count, 4]. Returns the count (out may be NULL to get it) or a negative
 * status. The course's Faster R-CNN set is sizes {128, 256, 512} x ratios {0.5, 1, 2}. */
int nerve_anchors(int fh, int fw, float stride, const float *sizes, int n_sizes,
                  const float *ratios, int n_ratios, float *out);
/* Smooth L1 of d with transition beta (> 0): 0.5 d^2 / beta for |d| < beta, else
 * |d| - 0.5 beta; *grad (may be NULL) gets its derivative. */
float nerve_smooth_l1(float d, float beta, float *grad);
/* Matching of boxes [n, 4] (anchors, proposals) to truths [nt, 4] by IoU: match[i] is the
 * truth of highest IoU (the first on a tie) when that IoU >= hi, -1 (negative) when it is
 * below lo, -2 (neither) between. best_per_truth: also every box whose IoU with a truth is
 * that truth's highest (> 0, ties included) is matched to that truth (Faster R-CNN's rule,
 * so that every truth has a box). iou (may be NULL) gets each box's highest IoU. Neither
 * allocates. */
int nerve_match_boxes(const float *boxes, int n, const float *truths, int nt, float hi, float lo,
                      int best_per_truth, int *match, float *iou);
/* Keeps at most `batch` labelled entries of match[n] (>= 0 positive, -1 negative): up to
 * floor(batch * pos_fraction) positives, then negatives for the rest, each set drawn
 * uniformly at random (all of it when it fits, drawing nothing); the others become -2.
 * *n_pos and *n_neg (may be NULL) get the counts kept. Does not allocate. */
int nerve_sample_matches(int *match, int n, int batch, float pos_fraction, nerve_rng *rng,
                         int *n_pos, int *n_neg);

/* ---- Detection metrics (src/train/map.c, docs/detection.md) ----------------------------
 * A detection (or a ground-truth box: score unused) in one image. */
typedef struct nerve_detection {
    int image;     /* any image id; detections are matched with truths of the same id */
    int cls;       /* 0 .. n_classes-1 */
    float score;   /* detections: confidence (higher first) */
    float box[4];  /* corners */
    int difficult; /* truths: PASCAL VOC's "difficult" (a match counts neither way) */
} nerve_detection;
typedef enum {
    NERVE_AP_VOC07 = 0,     /* PASCAL VOC 2007: mean of the best precision at recall >= 0, .1, .., 1 */
    NERVE_AP_ALL_POINT = 1, /* VOC 2010+: area under the precision envelope */
    NERVE_AP_COCO = 2       /* COCO: envelope at 101 recall points; COCO's matching (the best
                             * unmatched truth above the threshold) */
} nerve_ap_mode;
/* Average precision per class at one IoU threshold (a match needs IoU >= threshold):
 * ap[c] (may be NULL) is NaN for a class without (non-difficult) ground truth, which *map,
 * the mean over the others, leaves out. Matching is described in src/train/map.c. */
int nerve_detection_ap(const nerve_detection *dets, int n_dets, const nerve_detection *truths,
                       int n_truths, int n_classes, float iou_threshold, nerve_ap_mode mode,
                       double *ap, double *map);
/* COCO's mAP@[.5:.95]: NERVE_AP_COCO averaged over IoU thresholds 0.50, 0.55, .., 0.95. */
int nerve_detection_map_coco(const nerve_detection *dets, int n_dets,
                             const nerve_detection *truths, int n_truths, int n_classes,
                             double *map);
/* The raw precision-recall points of class cls (VOC matching), one per counted detection
 * in decreasing score; *recall and *precision are allocated (free with
 * nerve_detection_pr_free). */
int nerve_detection_pr(const nerve_detection *dets, int n_dets, const nerve_detection *truths,
                       int n_truths, int n_classes, int cls, float iou_threshold,
                       double **recall, double **precision, int *n);
void nerve_detection_pr_free(double *recall, double *precision);
/* Precision-recall curves (the envelope at 101 recall points) of the first 12 classes that
 * have ground truth, with their all-point AP in the legend, as an SVG plot. names may be NULL. */
int nerve_detection_pr_svg(const char *path, const nerve_detection *dets, int n_dets,
                           const nerve_detection *truths, int n_truths, int n_classes,
                           const char *const *names, float iou_threshold);

/* Class names, one a line (darknet's .names): class i is named on line i + 1; surrounding
 * blanks and CR are removed, trailing blank lines ignored; an empty line before the last
 * name or a duplicate is an error naming file:line. Free with nerve_names_free. */
int nerve_names_load(const char *path, char ***names, int *n);
int nerve_names_parse(const char *text, size_t len, const char *name, char ***names, int *n);
void nerve_names_free(char **names, int n);
/* Gives d the classes names[0..n): a data set with names of its own (folders, CSV class
 * names) has its labels remapped to the list's indices (each of its names must be in the
 * list); one without has its labels checked against n. n_classes becomes n. `what` names
 * the list in messages. */
int nerve_dataset_use_names(nerve_dataset *d, const char *const *names, int n, const char *what);

/* Transposes every sample of d from [H, W, C] to [C, H, W] (dims too). */
int nerve_dataset_hwc_to_chw(nerve_dataset *d);
/* Checks that d's samples (as a file announced them) are images of the model's input
 * [c, h, w] under `layout` (NERVE_LAYOUT_*): flat rows of c*h*w values and [h, w] when c is
 * 1 are taken as CHW; [c, h, w] as it is; [h, w, c] is transposed with NERVE_LAYOUT_HWC and
 * refused otherwise; a shape that fits both (c = h = w) needs an explicit layout. Errors
 * (NERVE_ERR_SHAPE) name `file`, its dimensions and the key to set. */
int nerve_dataset_fit_layout(nerve_dataset *d, const char *file, int c, int h, int w,
                             int layout);

/* ===================================================================================== */
/* 10b. Augmentation                                                                      */
/* ===================================================================================== */

/* Random transforms of images [C, H, W], applied in place to a batch [B, C, H, W] (see
 * docs/augment.md). Every random number comes from the nerve_rng passed in, drawn in a
 * fixed order, so one generator state gives one result bit for bit. The training loop
 * augments each training batch (never validation or test data) when [net] augment= is
 * set. */
enum {
    NERVE_AUG_CROP = 1 << 0,       /* pad crop_pad zeros per side, crop H x W back at a random
                                      offset (a shift by U{-p..p} per axis, zero fill) */
    NERVE_AUG_FLIP = 1 << 1,       /* horizontal mirror with probability flip */
    NERVE_AUG_TRANSLATE = 1 << 2,  /* shift by U{-t..t} pixels per axis, zero fill */
    NERVE_AUG_ROTATE = 1 << 3,     /* U(-rotate, rotate) degrees about the centre, bilinear */
    NERVE_AUG_RESCALE = 1 << 4,    /* zoom by U(scale_min, scale_max) about the centre */
    NERVE_AUG_NOISE = 1 << 5,      /* + N(0, noise^2) per value */
    NERVE_AUG_CUTOUT = 1 << 6,     /* a random cutout x cutout square (inside) set to 0 */
    NERVE_AUG_BRIGHTNESS = 1 << 7, /* + U(-brightness, brightness) */
    NERVE_AUG_CONTRAST = 1 << 8,   /* (x - mean) * U(1 - contrast, 1 + contrast) + mean */
    NERVE_AUG_PCA = 1 << 9,        /* AlexNet colour: + sum_i a_i lambda_i p_i, a_i ~ N(0, pca^2) */
    NERVE_AUG_ELASTIC = 1 << 10,   /* smoothed random displacement fields (Simard et al. 2003) */
    NERVE_AUG_HSV = 1 << 11,       /* darknet's colour jitter (RGB): hue + U(-hue, hue), saturation
                                      and value times darknet's rand_scale, clipped to [0, 1] */
    NERVE_AUG_DARKNET_CROP = 1 << 12 /* darknet's classifier crop: zoom to a short side of
                                        U{min_crop..max_crop}, rotate U(-angle, angle) degrees,
                                        aspect rand_scale(aspect), random offset */
};

typedef struct nerve_augment {
    unsigned on;                 /* NERVE_AUG_* bits of the transforms to apply */
    int crop_pad;                /* default 4 */
    float flip;                  /* probability, default 0.5 */
    int translate;               /* maximum shift in pixels, default 2 */
    float rotate;                /* maximum angle in degrees, default 10 */
    float scale_min, scale_max;  /* default 0.9, 1.1 */
    float noise;                 /* sigma, default 0.05 */
    int cutout;                  /* side of the square, default 8 */
    float brightness, contrast;  /* default 0.2, 0.2 */
    float pca;                   /* sigma of the alphas, default 0.1 */
    int pca_fitted;              /* pca_eigval/eigvec are set (nerve_pca_colour_fit) */
    float pca_eigval[3];         /* lambda_i, descending */
    float pca_eigvec[3][3];      /* p_i = pca_eigvec[i], unit RGB vectors */
    float elastic_alpha, elastic_sigma; /* scale and Gaussian sigma, default 34, 4 */
    float hue, saturation, exposure;    /* darknet's [net] keys (0, 1, 1: no change) */
    float angle, aspect;                /* darknet: degrees (0), aspect jitter (1) */
    int min_crop, max_crop;             /* darknet: short side range (width, 2 x width) */
} nerve_augment;

/* Every parameter at its default, no transform on. */
nerve_augment nerve_augment_default(void);
/* Turns on the transforms of a comma-separated list ("crop,flip"); names: crop, flip,
 * translate, rotate, rescale, noise, cutout, brightness, contrast, pca, elastic. An unknown
 * name is NERVE_ERR_ARG, naming it. */
int nerve_augment_parse(const char *list, nerve_augment *a);
const char *nerve_augment_name(unsigned bit); /* "crop" for NERVE_AUG_CROP; NULL if none */
/* Floats of scratch that nerve_augment_apply / nerve_aug_elastic need for images [c, h, w]
 * with masks of mask_c channels. */
size_t nerve_augment_scratch(int c, int h, int w, int mask_c);
/* Applies the transforms that are on to each of the n images x [n, c, h, w], in this order:
 * crop, flip, translate, rotate+rescale (one resampling), elastic, brightness+contrast,
 * pca, noise, cutout. mask [n, mask_c, h, w] (NULL: none) gets the same geometric
 * transforms with nearest-neighbour sampling (labels stay labels) and no photometric ones.
 * scratch: nerve_augment_scratch() floats, or NULL to allocate for the call. */
int nerve_augment_apply(const nerve_augment *a, float *x, float *mask, int n, int c, int h,
                        int w, int mask_c, nerve_rng *rng, float *scratch);
/* Seeds r for batch `batch` (0-based) of epoch `epoch` (1-based) of a run seeded `seed`:
 * what the training loop uses, so a resumed run replays the same augmentations. */
void nerve_augment_seed(nerve_rng *r, uint64_t seed, int epoch, int batch);

/* The transforms with explicit parameters, on one image x [c, h, w]. */
void nerve_aug_flip(float *x, int c, int h, int w);
/* Moves the content by (dy, dx) pixels (down, right), zero fill. Padding by p and cropping
 * at offset (oy, ox) is the shift (p - oy, p - ox). */
void nerve_aug_shift(float *x, int c, int h, int w, int dy, int dx);
/* Rotation by `degrees` counter-clockwise as displayed (rows down) and zoom by `scale`, both
 * about the centre ((h-1)/2, (w-1)/2); bilinear (nearest if nearest != 0), zero outside.
 * scratch: h * w floats. */
void nerve_aug_rotate_scale(float *x, int c, int h, int w, float degrees, float scale,
                            int nearest, float *scratch);
void nerve_aug_noise(float *x, size_t n, float sigma, nerve_rng *rng);
/* darknet's distort_image on x [3, h, w] in [0, 1]: to HSV, hue + dhue (wrapped), saturation
 * times dsat, value times dexp, back to RGB, clipped to [0, 1]. */
void nerve_aug_hsv(float *x, int h, int w, float dhue, float dsat, float dexp);
/* darknet's rotate_crop_image of x [c, h, w] into itself (same size): output pixel (X, Y)
 * samples the input bilinearly (nearest if nearest != 0; zero outside) at
 * R(rad) ((X - w/2 + dx) aspect / scale, (Y - h/2 + dy) / scale) + (w/2, h/2).
 * scratch: c * h * w floats. */
void nerve_aug_darknet_crop(float *x, int c, int h, int w, float rad, float scale, float dx,
                            float dy, float aspect, int nearest, float *scratch);
/* Zeroes rows y0..y0+size-1, columns x0..x0+size-1 (clipped to the image). */
void nerve_aug_cutout(float *x, int c, int h, int w, int y0, int x0, int size);
/* x <- (x - m) * contrast + m + brightness, m the mean of all the image's values; no
 * clipping (inputs need not lie in [0, 1]). */
void nerve_aug_brightness_contrast(float *x, int c, int h, int w, float brightness,
                                   float contrast);
/* Adds sum_i alpha[i] eigval[i] eigvec[i] (an RGB offset) to every pixel of x [3, h, w]. */
void nerve_aug_pca_colour(float *x, int h, int w, const float eigval[3],
                          const float eigvec[3][3], const float alpha[3]);
/* Eigen-decomposition of the 3x3 (population) covariance of the RGB values of every pixel
 * of a data set of [3, H, W] images: eigval descending, eigvec[i] the unit eigenvector of
 * eigval[i]. */
int nerve_pca_colour_fit(const nerve_dataset *d, float eigval[3], float eigvec[3][3]);
/* Eigen-decomposition of a symmetric 3x3 matrix by Jacobi rotations (sorted as above). */
void nerve_eigen_sym3(const double a[3][3], float eigval[3], float eigvec[3][3]);
/* Elastic deformation: displacement fields of U(-1, 1) per pixel and axis, smoothed by a
 * Gaussian of `sigma` pixels and scaled by `alpha`; pixel p takes the value at p + d, with
 * coordinates clamped to the image: bilinear for x, nearest for mask [mask_c, h, w] (may be
 * NULL). alpha = 0 is the identity. scratch: nerve_augment_scratch(c, h, w, mask_c). */
void nerve_aug_elastic(float *x, int c, float *mask, int mask_c, int h, int w, float alpha,
                       float sigma, nerve_rng *rng, float *scratch);

/* Input corruption of a denoising model (src/data/noise.c): the model sees the corrupted
 * input and its target is the clean one. Applied to the input only, in training (a generator
 * seeded per (seed, epoch, sample), so --resume replays it) and in evaluation (epoch 0: the
 * same corruption every time, so test figures are reproducible). */
typedef enum nerve_noise_kind {
    NERVE_NOISE_NONE = 0,
    NERVE_NOISE_GAUSSIAN,    /* x + N(0, sigma^2) */
    NERVE_NOISE_SALT_PEPPER, /* with probability prob a value becomes lo or hi (half each) */
    NERVE_NOISE_MASK         /* with probability prob a value becomes 0 (masking noise) */
} nerve_noise_kind;

typedef struct nerve_noise {
    nerve_noise_kind kind;
    float sigma;   /* gaussian: standard deviation (default 0.1) */
    float prob;    /* salt_pepper, mask: probability per value (default 0.1) */
    int clip;      /* clip the corrupted values to [lo, hi] (gaussian; default off) */
    float lo, hi;  /* clip range and the salt and pepper values (default 0, 1) */
} nerve_noise;

/* "none", "gaussian", "salt_pepper", "mask"; NULL for an unknown kind. */
const char *nerve_noise_name(nerve_noise_kind kind);
/* Corrupts n values of x in place with r. */
void nerve_noise_apply(const nerve_noise *nz, float *x, size_t n, nerve_rng *r);
/* Corrupts a batch x of n samples of `numel` values whose data-set indices are idx[0..n), in
 * `epoch` (1-based in training, 0 in evaluation) of a run seeded `seed`: sample k draws from
 * a generator seeded by (seed, epoch, idx[k]) only, so the result depends neither on the
 * batch size nor on the batch order. */
void nerve_noise_batch(const nerve_noise *nz, float *x, size_t numel, int n, uint64_t seed,
                       int epoch, const int *idx);

/* Boxes follow a geometric transform of their image [h, w]: a horizontal flip (if flip),
 * then a zoom by `scale` about the centre, then a shift by (dy, dx) pixels, exactly as
 * nerve_aug_flip, nerve_aug_rotate_scale (0 degrees) and nerve_aug_shift move the pixels.
 * Boxes are clipped to the image; those with nothing left inside are dropped. The kept boxes
 * are compacted to the front; returns their count (or a negative status). */
int nerve_boxes_transform(nerve_box *b, int n, int h, int w, int flip, float scale, int dy,
                          int dx);
/* The same transform applied to the image x [c, h, w] and its n boxes together; returns the
 * number of boxes kept. scratch: h * w floats, or NULL to allocate for the call. */
int nerve_aug_geometric_boxes(float *x, int c, int h, int w, nerve_box *boxes, int n, int flip,
                              float scale, int dy, int dx, float *scratch);

/* Loading ahead: a background thread assembles (and augments) the next batch while the
 * caller works on the current one. The batches are those of a shuffling nerve_batcher of
 * batch_size whose generator is seeded with order_seed at each nerve_prefetch_start (order
 * restarted from the identity), starting at batch first_batch; with aug (NULL: none) the
 * k-th batch of the epoch is augmented as images [c, h, w] by a generator seeded with
 * nerve_augment_seed(seed, epoch, k): bit for bit the serial result. Everything is allocated
 * by create. */
typedef struct nerve_prefetch nerve_prefetch;
nerve_prefetch *nerve_prefetch_create(const nerve_dataset *d, int batch_size,
                                      const nerve_augment *aug, int c, int h, int w,
                                      uint64_t seed);
void nerve_prefetch_free(nerve_prefetch *p);
int nerve_prefetch_start(nerve_prefetch *p, uint64_t order_seed, int epoch, int first_batch);
/* Copies the next batch into x, y, t (as nerve_batcher_next_target; any may be NULL);
 * returns its size, 0 at the end of the epoch, or a negative status. */
int nerve_prefetch_next(nerve_prefetch *p, float *x, float *y, float *t);
const int *nerve_prefetch_last_indices(const nerve_prefetch *p, int *n);
/* Data-parallel training: from now on nerve_prefetch_next still returns the size n of the
 * whole batch, but copies out only shard `part` of `parts` (rows n*part/parts up to
 * n*(part+1)/parts, possibly none), and nerve_prefetch_last_indices gives the shard's
 * indices and size. The batches, their order and their augmentation stay those of the
 * whole batch, so the shards of all parts make up the one-process batch exactly. */
int nerve_prefetch_set_shard(nerve_prefetch *p, int part, int parts);

/* ===================================================================================== */
/* 11. Models described by cfg files                                                      */
/* ===================================================================================== */

/* How the [net] section's data are read (docs/data.md; keys in docs/cfg.md). */
enum { NERVE_LAYOUT_AUTO = 0, NERVE_LAYOUT_CHW, NERVE_LAYOUT_HWC };
typedef struct nerve_data_config {
    char train_folder[512], test_folder[512]; /* image folders (root/<class>/<image>) */
    char train_list[512], test_list[512];     /* darknet-style list files of image paths */
    char train_cifar[1024], test_cifar[1024]; /* CIFAR binary files, comma-separated */
    char names[512];           /* a .names file: class i's name on line i + 1 */
    int input_scale_set;       /* input_scale= was given */
    nerve_resize resize;       /* images of another size than height x width */
    int layout;                /* NERVE_LAYOUT_*: how an IDX file of images is laid out */
    char csv_sep;              /* ',' */
    int csv_header;            /* NERVE_CSV_HEADER_* */
    int csv_skip;
    char csv_label[128];       /* "" unset: the last column (none with csv_targets) */
    int csv_label_set;
    char csv_targets[512];
    int cifar_coarse;          /* CIFAR-100: the coarse (20-class) label instead of fine */
    int list_masks;            /* list_target=masks: the lists' targets are class masks */
} nerve_data_config;

/* Adversarial examples (src/train/adversarial.c; docs/explain.md). An attack perturbs
 * inputs x within a ball ||x' - x|| <= eps (L-infinity or L2) to raise the model's loss,
 * keeping every value of x' in the valid range [lo, hi] (images: [0, 1]). steps = 0 is FGSM
 * (Goodfellow et al. 2015): x' = x + eps sign(grad) (L2: eps grad / ||grad||), clamped.
 * steps > 0 is PGD (Madry et al. 2018): from a random point of the ball (random_start),
 * `steps` steps of size `step` (<= 0: 2.5 eps / steps) along the sign of the gradient (L2:
 * its direction), each projected back onto the ball and the range; with restarts > 1 a
 * sample counts as fooled when any restart fools it. */
enum { NERVE_NORM_LINF = 0, NERVE_NORM_L2 = 1 };
typedef struct nerve_attack {
    int norm;          /* NERVE_NORM_LINF or NERVE_NORM_L2 */
    float eps;         /* the radius of the ball */
    int steps;         /* 0: FGSM; > 0: PGD steps */
    float step;        /* PGD step size; <= 0: 2.5 eps / steps */
    int restarts;      /* PGD: tries from random starts (>= 1) */
    int random_start;  /* PGD: start from a uniform point of the ball (else from x) */
    float lo, hi;      /* the valid range of input values */
    uint64_t seed;
} nerve_attack;
/* FGSM at eps (lo 0, hi 1, norm L-infinity); PGD: the same with steps, random start, one
 * restart. */
nerve_attack nerve_attack_fgsm(float eps);
nerve_attack nerve_attack_pgd(float eps, int steps, int restarts);

/* Robust training ([net] adversarial= and its keys, docs/cfg.md). PGD (Madry et al. 2018)
 * trains on PGD examples of every batch instead of the batch; TRADES (Zhang et al. 2019)
 * minimises CE(f(x), y) + beta KL(softmax f(x) || softmax f(x')) with x' the PGD maximiser
 * of the KL term (from x + 0.001 N(0, 1)). eps grows linearly over the first `warmup`
 * epochs (eps * e / (warmup + 1) in epoch e <= warmup). The attacks run in evaluation mode
 * (no dropout, batch norm on its running statistics). */
enum { NERVE_ADV_NONE = 0, NERVE_ADV_PGD, NERVE_ADV_TRADES };
typedef struct nerve_adversarial {
    int kind;            /* NERVE_ADV_* */
    nerve_attack attack; /* eps, steps, step, norm, lo, hi of the training attack */
    int warmup;          /* epochs of linear eps warm-up */
    float beta;          /* TRADES: the weight of the KL term */
} nerve_adversarial;

/* Settings from the [net] section (see docs/cfg.md for every key). */
typedef struct nerve_net_config {
    int ndim;                  /* input sample shape (channels, height, width) or features */
    int dims[NERVE_MAX_DIMS];
    int batch;
    int epochs;
    uint64_t seed;
    nerve_optim_config optim;
    nerve_schedule schedule;
    float validation;          /* fraction of training data held out (0 = none) */
    int patience;              /* early stopping: epochs without improvement (0 = off) */
    int normalize;             /* z-score inputs with training statistics */
    float input_scale;         /* multiply raw input values (IDX: 1/255 by default) */
    char train_images[512], train_labels[512], test_images[512], test_labels[512];
    char train_csv[512], test_csv[512];
    char train_text[512];      /* a text file read as a token stream (train_text=) */
    int seq;                   /* token inputs per sample: chunk length of truncated BPTT */
    int64_t max_batches;       /* stop after this many training steps in all (0: no limit,
                                  unless max_batches_set) */
    int max_batches_set;       /* the cfg gave max_batches= (0 then means no step, darknet's) */
    int subdivisions;          /* darknet's: mini-batches per update (nerve runs the batch at
                                  once; docs/darknet.md) */
    int sync_batchnorm;        /* data-parallel: batch norm on the statistics of the global
                                  batch (summed over the ranks) rather than each rank's */
    nerve_data_config data;    /* the other sources and how to read them (docs/data.md) */
    int n_classes;
    nerve_augment augment;     /* training-batch augmentation (augment= and its keys) */
    nerve_noise noise;         /* denoising: corruption of the input (corrupt= and its keys) */
    nerve_adversarial adversarial; /* robust training (adversarial= and its keys) */
} nerve_net_config;

typedef struct nerve_model nerve_model;

/* Parses cfg text (filename is used in error messages: "file:line: message") and builds
 * the graph (not compiled). */
nerve_model *nerve_model_from_cfg(const char *text, const char *filename);
nerve_model *nerve_model_load_cfg(const char *path);
void nerve_model_free(nerve_model *m);

nerve_graph *nerve_model_graph(nerve_model *m);
const nerve_net_config *nerve_model_config(const nerve_model *m);
nerve_net_config *nerve_model_config_mut(nerve_model *m);
const char *nerve_model_cfg_text(const nerve_model *m);
int nerve_model_input(const nerve_model *m);  /* input node */
int nerve_model_labels(const nerve_model *m); /* label input node, -1 if none */
int nerve_model_output(const nerve_model *m); /* scores/logits node (what predict uses) */
int nerve_model_loss(const nerve_model *m);   /* total loss node */
/* The vocabulary of a model that reads text (the distinct bytes of its train_text, or the
 * one its checkpoint stored as metadata "nerve.vocab"): copies it into *out (may be NULL)
 * and returns its size, 0 when the model has none. */
int nerve_model_vocab(const nerve_model *m, nerve_vocab *out);
/* The task a model's head (its last cfg section) solves; it decides the target the data
 * must carry, how the training loop feeds the label node and which metrics apply. */
typedef enum nerve_task {
    NERVE_TASK_NONE = 0,     /* no head: the model only predicts */
    NERVE_TASK_CLASSIFY,     /* [softmax]; [cost] with target=class (the default) */
    NERVE_TASK_REGRESS,      /* [cost] type=mse|half_mse|l1 target=values: a float vector */
    NERVE_TASK_RECONSTRUCT,  /* [cost] target=input: the clean input (denoising: corrupt=) */
    NERVE_TASK_SEGMENT,      /* [softmax] target=mask: a class per pixel, ignore_index */
    NERVE_TASK_BINARY_MASK,  /* [cost] type=bce target=mask: a 0/1 mask, sigmoid per pixel */
    NERVE_TASK_LANGUAGE,     /* next-token prediction (target TOKENS, bits per character) */
    NERVE_TASK_DETECT        /* boxes (target BOXES; the detection head feeds itself) */
} nerve_task;

typedef struct nerve_head_info {
    nerve_task task;
    nerve_target_kind target; /* the target kind the data set must have */
    const char *section;      /* "softmax", "cost", ... (static strings; may be NULL) */
    const char *loss;         /* "softmax_ce", "pixel_softmax_ce", "mse", "half_mse", "l1",
                                 "bce", "hinge", ... */
    int line;                 /* the head's line in the cfg (0 if none) */
    int logits;               /* 1: the output is a logit, predictions are sigmoid(output)
                                 (bce) or softmax(output) (softmax heads) */
    int ignore_index;         /* segmentation: the label of unlabelled pixels */
    /* A head whose targets the training loop cannot copy by itself (boxes: a variable
     * number per sample) fills its target nodes for each batch: called by nerve_fit and
     * nerve_evaluate* after the batch's inputs are in the input node, with the data set and
     * the data-set indices idx[0..n) of the batch's samples (nerve_batcher_last_indices).
     * NULL: the loop feeds the target kind itself (docs/ARCHITECTURE.md, "Targets"). */
    int (*feed)(nerve_model *m, const nerve_dataset *d, const int *idx, int n, void *user);
    void *user;
} nerve_head_info;

/* The model's head (task NONE and target CLASS when the cfg has none). */
nerve_head_info nerve_model_head(const nerve_model *m);
const char *nerve_task_name(nerve_task task);          /* "classify", "regress", ... */
const char *nerve_target_kind_name(nerve_target_kind k); /* "class", "values", ... */
/* Lets a head added outside the cfg builder (a language-model or detection head) state its
 * task and target kind, so that the training loop feeds and measures it. */
int nerve_model_set_head(nerve_model *m, const nerve_head_info *h);

/* A [detection] (YOLO v1) head: 1 and its settings in *out (may be NULL), else 0. */
int nerve_model_yolo1(const nerve_model *m, nerve_yolo1_config *out);
/* The model's [yolo] / [region] heads in cfg order: their settings and output nodes (either
 * may be NULL; at most max of them); returns how many the model has (0: none). */
int nerve_model_yolo_heads(const nerve_model *m, nerve_yolo_config *out, int *nodes, int max);
/* A Faster R-CNN head ([rpn] ... [fast_rcnn]): 1 and its settings in *out (may be NULL),
 * else 0. */
int nerve_model_frcnn(const nerve_model *m, nerve_frcnn_config *out);
/* The target [max_boxes*5] of one sample's boxes for nerve_yolo_loss (src/model/
 * model_detect.c): the first max_boxes boxes of non-zero size (x, y, w, h, class), then zeros
 * (darknet likewise reads at most max boxes an image); a class outside 0..classes-1 is an
 * error. */
int nerve_yolo_target(const nerve_box *boxes, int n, const nerve_yolo_config *c, float *target);
/* The per-cell target [side*side*6] of one sample's boxes (src/model/model_detect.c): the
 * box whose centre falls in a cell is that cell's (a later one replaces an earlier one). */
int nerve_yolo1_target(const nerve_box *boxes, int n, const nerve_yolo1_config *c, float *target);
/* The model's [ssd] heads (src/model/model_ssd.c): the loss's settings in *c and the heads'
 * default-box settings in cfg order (either may be NULL; at most max heads); returns how many
 * the model has (0: none). */
int nerve_model_ssd(const nerve_model *m, nerve_ssd_config *c, nerve_ssd_head *heads, int max);

/* Compiles the model's graph for `max_batch` (<= 0: the cfg's batch). */
int nerve_model_compile(nerve_model *m, int max_batch);
/* Sets the stored input statistics used by z-score normalisation ([net] normalize=1);
 * each array has one value per input feature. NERVE_ERR_STATE if the model does not
 * normalise. */
int nerve_model_set_input_stats(nerve_model *m, const float *mean, const float *std);
int nerve_model_normalizes(const nerve_model *m);
/* Class names of the model's outputs (copied; n = 0 clears them). Checkpoints keep them in
 * metadata "nerve.names" (a JSON array of strings), so `nerve predict` can print them;
 * `nerve train` takes them from the training data (folders, CSV class names, names=). */
int nerve_model_set_names(nerve_model *m, int n, const char *const *names);
const char *const *nerve_model_names(const nerve_model *m, int *n); /* NULL when none */

/* One row per layer of the cfg. */
typedef struct nerve_layer_info {
    char type[32];
    char name[64];
    int ndim;
    int dims[NERVE_MAX_DIMS]; /* output shape without batch */
    size_t params;
    double flops;             /* forward FLOPs per sample (multiply-add = 2) */
    double macs;              /* forward multiply-accumulates per sample: the products of
                                 dense, conv, local and recurrent layers, one per element of
                                 batch norm (see docs/cfg.md) */
    int line;                 /* line of its section header in the cfg */
} nerve_layer_info;
int nerve_model_layer_count(const nerve_model *m);
int nerve_model_layer_info(const nerve_model *m, int i, nerve_layer_info *out);

/* ===================================================================================== */
/* 11c. ONNX models (docs/onnx.md)                                                        */
/* ===================================================================================== */

/* An ONNX model imported into a graph of nerve's operators: float32, every tensor's shape
 * fixed at import (a symbolic dimension takes `batch`), shape-computing subgraphs (Shape,
 * Gather, Concat, Cast, Constant, ...) folded into constants, initializers as parameters
 * (float) or states (integer). The graph is compiled for one run in evaluation mode.
 * Each input node holds its ONNX tensor under a leading axis of 1 ([1, *dims]; its value is
 * the ONNX tensor's elements in row-major order); integer and bool inputs and outputs are
 * floats holding their values. Operators, attributes and opsets: docs/onnx.md; anything
 * else is refused with a message naming the node and what is missing. */
typedef struct nerve_onnx nerve_onnx;

nerve_onnx *nerve_import_onnx(const char *path, int batch);
/* The same from a serialised ModelProto in memory; `name` is used in messages. */
nerve_onnx *nerve_import_onnx_buffer(const void *buf, size_t len, const char *name, int batch);
/* The same with the inputs named in bind_names fixed to the values of bind_values (float
 * tensors holding the input's values, any type): they become constants, so that inputs
 * that determine shapes (a Reshape's shape, axes, pads, repeats, sizes) can fold. The
 * model then has the remaining inputs only. */
nerve_onnx *nerve_import_onnx_bound(const void *buf, size_t len, const char *name, int batch,
                                    int n_bind, const char *const *bind_names,
                                    const nerve_tensor *bind_values);
void nerve_onnx_free(nerve_onnx *m);
nerve_graph *nerve_onnx_graph(nerve_onnx *m);
int nerve_onnx_opset(const nerve_onnx *m);
int nerve_onnx_num_inputs(const nerve_onnx *m);
int nerve_onnx_input(const nerve_onnx *m, int i);             /* node id, or -1 */
const char *nerve_onnx_input_name(const nerve_onnx *m, int i); /* the ONNX name */
int nerve_onnx_num_outputs(const nerve_onnx *m);
int nerve_onnx_output(const nerve_onnx *m, int i);            /* node id, or -1 */
const char *nerve_onnx_output_name(const nerve_onnx *m, int i);
/* ONNX element type of input or output i (1 float, 7 int64, 9 bool, ...). */
int nerve_onnx_input_type(const nerve_onnx *m, int i);
int nerve_onnx_output_type(const nerve_onnx *m, int i);
/* Shape of output i as ONNX states it (without the leading axis of the inputs). */
int nerve_onnx_output_shape(const nerve_onnx *m, int i, int *ndim, int *dims);
/* Runs the forward pass of output i; its values are then nerve_value(graph, output). */
int nerve_onnx_run(nerve_onnx *m, int i);
/* A serialised TensorProto (the .pb files of ONNX test data) as a float tensor (integer and
 * bool values converted): free with nerve_tensor_free(). Rank at most NERVE_MAX_DIMS. */
int nerve_onnx_tensor_load(const char *path, nerve_tensor *out);
/* Writes t as a float TensorProto named `name` (may be NULL). */
int nerve_onnx_tensor_save(const char *path, const nerve_tensor *t, const char *name);

/* Export (src/model/onnx_export.c, docs/onnx.md "Export"): writes the model as an ONNX file
 * (opset 13): its input with a symbolic batch "N", the output nerve_model_output gives (and,
 * for a classifier's logits, a second output "probabilities", their softmax), every
 * parameter and statistic as an initializer named after its node, batch norm in its
 * inference form, dropout as nothing, recurrent layers as ONNX LSTM / GRU / RNN, and the
 * cfg text, class names and vocabulary as metadata. A model is compiled at batch 2 if it was
 * not compiled (a compiled one needs a maximum batch of 2 or more); it is left in the mode
 * and batch it had. An operator without an ONNX form is refused (NERVE_ERR_ARG) with a
 * message naming the node and its cfg layer. */
int nerve_export_onnx(nerve_model *m, const char *path);
/* The model of an ONNX file nerve_export_onnx wrote: rebuilt from the cfg in its metadata,
 * its parameters and statistics read back from the initializers (NULL with an error for
 * other ONNX files, or when an initializer is missing or has another shape). */
nerve_model *nerve_onnx_to_model(const char *path);

/* ===================================================================================== */
/* 12. Checkpoints (safetensors)                                                          */
/* ===================================================================================== */

/* A safetensors file: a little-endian u64 header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [a, b]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the raw data. Only F32 tensors are written;
 * F32/F16/BF16/F64/I64/I32/I16/I8/U8/BOOL are read (converted to float). The reader
 * checks that the tensors tile the data section exactly; malformed files give
 * NERVE_ERR_FORMAT with the file's name in the message. */
typedef struct nerve_st_file nerve_st_file;

nerve_st_file *nerve_st_open(const char *path);
void nerve_st_close(nerve_st_file *f);
int nerve_st_count(const nerve_st_file *f);
const char *nerve_st_name(const nerve_st_file *f, int i);
int nerve_st_find(const nerve_st_file *f, const char *name); /* -1 if absent */
int nerve_st_shape(const nerve_st_file *f, int i, int *ndim, int *dims);
/* Copies (converting to float32) tensor i into out (numel floats). */
int nerve_st_read(const nerve_st_file *f, int i, float *out, size_t numel);
const char *nerve_st_metadata(const nerve_st_file *f, const char *key); /* NULL if absent */

typedef struct nerve_st_writer nerve_st_writer;
nerve_st_writer *nerve_st_writer_create(void);
/* The data is copied at add time. Names must be unique and valid UTF-8; tensors are
 * written in the order they were added. */
int nerve_st_writer_add(nerve_st_writer *w, const char *name, int ndim, const int *dims,
                        const float *data);
/* The same for an int8 tensor (dtype I8): quantised weights (nerve_quantize). */
int nerve_st_writer_add_i8(nerve_st_writer *w, const char *name, int ndim, const int *dims,
                           const int8_t *data);
/* Metadata string (valid UTF-8); setting a key again replaces its value. */
int nerve_st_writer_meta(nerve_st_writer *w, const char *key, const char *value);
/* Writes atomically: to "path.tmp", flushed and synced, then renamed over path. */
int nerve_st_writer_save(nerve_st_writer *w, const char *path);
void nerve_st_writer_free(nerve_st_writer *w);

/* Model checkpoints: every persistent tensor of the graph under its node name, the cfg
 * text in metadata "nerve.cfg", plus optional optimiser/training state (see nerve_fit). */
int nerve_model_save(nerve_model *m, const char *path);
/* The model's persistent tensors and cfg metadata added to a writer / read from an open
 * file (what nerve_model_save / nerve_model_load_weights do, for callers that add more,
 * such as the training loop's optimiser state). */
int nerve_model_write_into(nerve_model *m, nerve_st_writer *w);
int nerve_model_read_from(nerve_model *m, const nerve_st_file *f, int strict);
/* Builds the model from the checkpoint's cfg text and loads its tensors. */
nerve_model *nerve_model_load(const char *path);
/* Loads tensors from a checkpoint into an existing model by node name; with
 * strict != 0 every persistent tensor must be present with the same shape. */
int nerve_model_load_weights(nerve_model *m, const char *path, int strict);

/* Transfer learning (src/apps/transfer.c). Loads every tensor of the checkpoint whose name
 * the model has; tensors the model has but the file lacks are left as they are, and with
 * skip_mismatched != 0 so are tensors whose shapes differ (a new head with another class
 * count) instead of being an error. *loaded and *skipped (either may be NULL) receive the
 * number of the model's tensors copied and left alone. Checks everything before copying. */
int nerve_model_load_matching(nerve_model *m, const char *path, int skip_mismatched,
                              int *loaded, int *skipped);
/* darknet .weights files (docs/darknet.md): the model built from a darknet cfg reads and
 * writes them in darknet's layout: a header (major, minor, revision, images seen), then per
 * layer the biases, batch-norm scales, rolling means and variances, and weights of
 * [convolutional], [deconvolutional], [connected] and [local] layers. The model gives every
 * size; a file that is shorter or longer, holds a non-finite value, or meets a layer with
 * parameters darknet has no place for is refused with a message naming the layer, and the
 * model is left unchanged. *seen (may be NULL) receives the header's count of images. */
int nerve_model_read_darknet(nerve_model *m, const void *data, size_t len, int64_t *seen);
int nerve_model_load_darknet(nerve_model *m, const char *path);
/* Writes version 0.2.0 with `seen`, as darknet's save_weights does. */
int nerve_model_save_darknet(nerve_model *m, const char *path, int64_t seen);
/* Freezes the parameters (named "<layer>.*") of the first n_layers cfg layers: optimisers
 * created afterwards skip them and their values stay bit-identical. Returns the number of
 * parameter tensors frozen. */
int nerve_model_freeze(nerve_model *m, int n_layers);

/* What changed from cfg text old_text to new_text, key by key ("[net] learning_rate: 0.01
 * -> 0.1; 4 layers -> 5 layers"; sections are paired by position, values that read as
 * numbers compare as numbers), "; "-separated into out (size bytes, may be NULL).
 * Returns the number of differences (0: the same cfg) or a negative status when either
 * text does not parse. */
int nerve_cfg_diff(const char *old_text, const char *new_text, char *out, size_t size);

/* ===================================================================================== */
/* 13. Training loop                                                                      */
/* ===================================================================================== */

/* Metrics that follow the task (src/train/metrics.c; docs/metrics.md). An accumulator:
 * nerve_metrics_init for a task, then add batches, then read the figures. Every figure is
 * NaN where it is undefined (nothing counted, a class never predicted, ...). */
typedef struct nerve_metrics {
    nerve_task task;
    int n_classes;          /* classify, segment: C (a binary mask or a one-output classifier:
                               2); the confusion matrix is n_classes^2 */
    int k;                  /* top-k (default 5, at most n_classes) */
    int ignore_index;       /* segment: labels equal to it are not counted */
    int n_outputs;          /* regress, reconstruct: values per sample */
    int64_t samples;        /* samples added */
    double loss_sum;        /* sum of the per-sample loss (nerve_metrics_add_loss) */
    /* classify (per sample), segment and binary_mask (per labelled pixel) */
    int64_t counted, correct, correct_k;
    int64_t *confusion;     /* [truth][prediction] */
    /* regress, reconstruct */
    int64_t values;         /* values compared */
    double sse, sae;        /* sums of squared and absolute errors */
    double *tsum, *tsq, *osse; /* per output: sum of targets, of squared targets, of squared
                                  errors (R^2) */
    double noisy_sse;       /* reconstruct with corrupt=: squared error of the corrupted input */
    /* language models: natural-log loss summed over tokens */
    double nats;
    int64_t tokens;
} nerve_metrics;

/* Sets up an accumulator for `task` with n_classes classes (classify, segment; ignored
 * otherwise) and n_outputs values per sample (regress, reconstruct). Free with
 * nerve_metrics_free. */
int nerve_metrics_init(nerve_metrics *mt, nerve_task task, int n_classes, int n_outputs);
void nerve_metrics_free(nerve_metrics *mt);
void nerve_metrics_reset(nerve_metrics *mt);
/* n samples' scores [n, C] (C = n_classes; one logit when n_classes is 2 and C is 1: class 1
 * when it is > 0) against labels[n]; a negative label (unlabelled) is skipped. The
 * prediction is the first highest score; top-k counts the label's score among the k
 * highest (ties resolved as the prediction is). */
void nerve_metrics_add_classes(nerve_metrics *mt, const float *scores, int C, const float *labels,
                               int n);
/* n samples' per-pixel scores [n, C, P] against labels [n, P] (segment; C = 1: binary mask
 * logits, pixel class 1 when > 0); pixels labelled ignore_index are skipped. */
void nerve_metrics_add_pixels(nerve_metrics *mt, const float *scores, int C, size_t P,
                              const float *labels, int n);
/* n samples of n_outputs predicted and target values (regress, reconstruct). noisy (may be
 * NULL): the corrupted inputs, for nerve_metrics_noisy_mse. */
void nerve_metrics_add_values(nerve_metrics *mt, const float *pred, const float *target,
                              const float *noisy, int n);
/* Language models: `nats` summed over `tokens` predictions. */
void nerve_metrics_add_tokens(nerve_metrics *mt, double nats, int64_t tokens);
/* The mean loss of a batch of n samples. */
void nerve_metrics_add_loss(nerve_metrics *mt, double mean_loss, int n);

double nerve_metrics_loss(const nerve_metrics *mt);      /* mean loss per sample */
double nerve_metrics_accuracy(const nerve_metrics *mt);  /* pixel accuracy for masks */
double nerve_metrics_top_k(const nerve_metrics *mt);
/* Class c's precision TP/(TP+FP), recall TP/(TP+FN) and F1 (their harmonic mean); each NaN
 * when its denominator is 0. NERVE_ERR_ARG for a class out of range. */
int nerve_metrics_class(const nerve_metrics *mt, int c, double *precision, double *recall,
                        double *f1);
/* Mean over classes of F1 (classes with no sample and no prediction left out). */
double nerve_metrics_macro_f1(const nerve_metrics *mt);
/* Mean over classes of IoU = TP / (TP + FP + FN), classes with TP + FP + FN = 0 (absent
 * from both truth and prediction) left out. */
double nerve_metrics_mean_iou(const nerve_metrics *mt);
double nerve_metrics_mse(const nerve_metrics *mt);       /* mean over every value */
double nerve_metrics_mae(const nerve_metrics *mt);
/* 10 log10(peak^2 / MSE) in dB, MSE over every value of the set (peak 1 for images in
 * [0, 1]). */
double nerve_metrics_psnr(const nerve_metrics *mt, double peak);
/* Coefficient of determination 1 - SS_res / SS_tot per output, averaged over the outputs;
 * an output whose targets are constant counts 1 if predicted exactly, else 0. */
double nerve_metrics_r2(const nerve_metrics *mt);
double nerve_metrics_noisy_mse(const nerve_metrics *mt); /* NaN without noisy inputs */
double nerve_metrics_bpc(const nerve_metrics *mt);       /* nats / tokens / ln 2 */
/* The task's main figure: "acc" (classify), "r2" (regress), "psnr" (reconstruct), "miou"
 * (segment, binary_mask), "bpc" (language); NULL with *value NaN for the others.
 * *higher_better (may be NULL) says which way is better. */
const char *nerve_metrics_main(const nerve_metrics *mt, double *value, int *higher_better);

typedef struct nerve_epoch_stats {
    int epoch;        /* 1-based */
    double train_loss, train_acc;
    double val_loss, val_acc; /* NaN when there is no validation set */
    const char *metric;       /* the task's main metric ("acc", "r2", "psnr", "miou", "bpc";
                                 NULL: none) and its value on the training batches (measured
                                 while training) and on the validation set; train_acc and
                                 val_acc are accuracy for classifiers, else NaN */
    double train_metric, val_metric;
    float lr;
    double seconds;   /* wall time of the epoch */
    double samples_per_sec;
} nerve_epoch_stats;

typedef struct nerve_progress {
    int epoch, epochs;
    int64_t done, total; /* samples done in this epoch / per epoch */
    double loss;         /* running mean training loss of the epoch */
    double samples_per_sec;
    double eta_seconds;  /* for the epoch */
} nerve_progress;

/* Data-parallel training (docs/distributed.md): the collective operations a transport
 * provides (the nerve CLI's is MPI, src/dist/; tests may supply others). Every rank calls
 * nerve_fit with the same model, cfg and data and the same options but for the output
 * files (which rank 0 alone should name); each reads shard `rank` of every global batch,
 * and the gradients are averaged, bucket by bucket, while backward still runs. */
typedef enum nerve_dist_op { NERVE_DIST_SUM, NERVE_DIST_MAX } nerve_dist_op;
typedef struct nerve_dist {
    int rank, size;       /* this process, and how many train together (size 1: alone) */
    void *user;
    /* Starts summing buf[0..n) over the ranks, in place, without waiting. Every rank starts
     * the same sums in the same order, and every rank must get the same result bit for bit
     * (a fixed reduction order). Returns 0 or a negative status (with nerve_set_error). */
    int (*start_sum)(void *user, float *buf, size_t n);
    /* Lets the started sums progress; called between the nodes of backward. May be NULL. */
    int (*progress)(void *user);
    /* Waits until every started sum is complete. */
    int (*wait_all)(void *user);
    /* Blocking: combines buf[0..n) over the ranks in place with op (every rank gets the
     * same result). */
    int (*reduce)(void *user, double *buf, int n, nerve_dist_op op);
    size_t bucket_floats; /* gradient bucket size in floats (0: 65536, 256 KiB) */
} nerve_dist;

typedef struct nerve_fit_options {
    const char *checkpoint;     /* path for the best/last checkpoint (NULL = none) */
    const char *resume;         /* checkpoint to resume from (NULL = fresh start) */
    const char *log_csv;        /* per-epoch CSV log (NULL = none) */
    const char *plot_svg;       /* SVG plot of the curves (NULL = none) */
    int max_epochs;             /* override of the cfg's epochs when > 0 */
    int stop_after_epochs;      /* stop (as if interrupted) after this many epochs; 0 = off */
    /* Called about every `progress_every` batches and at the end of each epoch. */
    void (*on_progress)(const nerve_progress *p, void *user);
    void (*on_epoch)(const nerve_epoch_stats *s, void *user);
    void *user;
    int progress_every;
    /* Resuming from a checkpoint whose cfg differs from the model's (nerve_cfg_diff says
     * how) is an error unless this is set; a checkpoint of another model (tensor names or
     * shapes) always is. With it, a checkpoint without this optimiser's state (another
     * optimiser) starts the optimiser afresh. */
    int allow_cfg_change;
    /* Read between training steps (a SIGINT handler sets it): when non-zero, the step in
     * progress finishes, the checkpoint is written with the position inside the epoch (a
     * resume from it gives the weights of an uninterrupted run, bit for bit) and nerve_fit
     * returns NERVE_OK with result->interrupted set. */
    const volatile sig_atomic_t *interrupt;
    /* Data-parallel training across processes (NULL or size 1: this process alone). The
     * ranks agree on an interrupt: a flag set on any rank stops all of them at the same
     * step. */
    const nerve_dist *dist;
} nerve_fit_options;

typedef struct nerve_fit_result {
    int epochs_run;
    int best_epoch;
    double best_val_loss;
    int stopped_early;
    double seconds;
    /* Stopped by *interrupt before the last epoch: the checkpoint holds interrupted_batch
     * batches of epoch interrupted_epoch (0: that epoch had not begun). */
    int interrupted, interrupted_epoch, interrupted_batch;
    /* Data-parallel runs (nerve_fit_options.dist): seconds in backward (gradient buckets
     * going out meanwhile), and seconds waiting for the ranks' sums after it and for the
     * per-step agreement on loss and interrupt (what backward did not hide). 0 otherwise. */
    double backward_seconds, dist_wait_seconds;
    int dist_buckets; /* data-parallel: the gradient buckets per step */
} nerve_fit_result;

/* Loads the training and test sets named by a [net] section (IDX image/label pairs or CSV
 * files; IDX pixels scaled by input_scale). Either output may be NULL to skip it. */
int nerve_config_load_data(const nerve_net_config *c, nerve_dataset *train, nerve_dataset *test);
/* The data of a model whose [net] names train_text= (docs/textgen.md): the file tokenised
 * with the model's vocabulary and its last `validation` fraction (floor(len * validation)
 * bytes) held out. train (may be NULL) gets the rest as [net] batch= streams of seq= token
 * chunks (nerve_dataset_text_streams, full chunks); held_out (may be NULL) the held-out part
 * as one stream read from its first byte, each following byte predicted once (n = 0 when
 * fewer than 2 bytes are held out). Errors name the file. */
int nerve_model_text_data(nerve_model *m, nerve_dataset *train, nerve_dataset *held_out);

/* Trains m on train (validating on val if non-NULL: early stopping restores the best
 * weights). A NaN or infinite loss stops with NERVE_ERR_NUMERIC, leaving the last good
 * checkpoint on disk untouched. [net] max_batches= ends the run after that many steps in
 * all (part-way through an epoch, which then ends as usual). A text stream (train->streams
 * > 0: token targets, e.g. nerve_model_text_data) is read in its order, one pass per
 * epoch, the carried recurrent states zeroed at the start of every epoch; its batch must be
 * the number of streams, and a model with carried states trains on streams only. Training
 * checkpoints keep the carried states as "carry.<node>" tensors.
 * After each epoch the checkpoint is written first, then the log and the plot, each through
 * "<file>.tmp" renamed over it (a failed write removes its .tmp and names the file and the
 * system's reason; .tmp files a killed run left behind are removed at the start), so the
 * log never runs ahead of the checkpoint. */
int nerve_fit(nerve_model *m, const nerve_dataset *train, const nerve_dataset *val,
              const nerve_fit_options *opt, nerve_fit_result *result);

/* Evaluates mean loss and accuracy; confusion (n_classes^2 ints, row = truth) may be NULL.
 * For heads other than classifiers accuracy is NaN, except a language model's: the
 * accuracy of the most likely next token (nerve_evaluate_metrics has every task's figures).
 * The data set must carry the target the model's head needs: a mismatch is
 * NERVE_ERR_SHAPE naming both. Token targets: the loss is the mean NLL (nats) over every
 * labelled position (target >= 0); a stream is read from a zero state, chunk after chunk
 * with the state carried (a training run's state is restored afterwards). */
int nerve_evaluate(nerve_model *m, const nerve_dataset *d, double *loss, double *accuracy,
                   int *confusion, int n_classes);
/* Adversarial examples for the n samples in the input and label nodes of a compiled
 * classifier (batch n set; src/train/adversarial.c): the input node then holds them (the
 * last restart's where no restart fooled the model), fooled[n] (may be NULL) says which are
 * classified wrongly. rng draws the random starts (NULL: one seeded with a->seed). Runs in
 * evaluation mode; the graph's mode and the input's requires_grad are restored. The
 * gradients come from nerve_backward_seeded(..., NERVE_BACKWARD_INPUTS_ONLY): parameters'
 * gradients are left alone and no grad hook runs. */
int nerve_attack_batch(nerve_model *m, int n, const nerve_attack *a, nerve_rng *rng, int *fooled);
/* Clean and robust accuracy of a classifier on the first `limit` samples of d (<= 0: all),
 * batch by batch; either output may be NULL. */
int nerve_attack_evaluate(nerve_model *m, const nerve_dataset *d, const nerve_attack *a, int limit,
                          double *clean, double *robust);
/* Every metric of the model's task on d into mt (initialised here; free with
 * nerve_metrics_free). A denoising model's inputs are corrupted as in training, with the
 * evaluation generator (epoch 0), so the figures are reproducible. */
int nerve_evaluate_metrics(nerve_model *m, const nerve_dataset *d, nerve_metrics *mt);
/* Predicted class per sample into out[d->n]. */
int nerve_predict(nerve_model *m, const nerve_dataset *d, int *out);
/* The model's output for every sample of d into out [d->n, output values per sample],
 * as probabilities where the head takes logits (softmax over the classes, per pixel for
 * segmentation; sigmoid for bce heads), else as they are. inputs (may be NULL; d->n *
 * sample_numel floats) receives the inputs the model read: a denoising model's corrupted
 * ones (evaluation generator, as nerve_evaluate_metrics). */
int nerve_predict_outputs(nerve_model *m, const nerve_dataset *d, float *out, float *inputs);

/* Detections of one sample's YOLO v1 output pred (src/train/detect_eval.c): each (cell,
 * box, class) whose score, confidence x class score, is at least thresh, as a box in the
 * pixels of a width x height image (clipped to it), greedy NMS per class at nms_iou (<= 0:
 * none), the highest max_out in decreasing score into out, each with the given image id.
 * Returns the count or a negative status. */
int nerve_yolo1_decode(const float *pred, const nerve_yolo1_config *c, float width, float height,
                       int image, float thresh, float nms_iou, nerve_detection *out, int max_out);
/* Detections of sample `sample` of the last forward pass of a model with [yolo] / [region]
 * heads (src/train/yolo_detect.c): darknet's decoding (every cell and anchor whose objectness
 * is above thresh, every class whose objectness * probability is above thresh) and its
 * per-class NMS (a box goes when a higher-scored box of its class overlaps it by IoU >
 * nms_iou; 0: no NMS), boxes as corners in width x height, clamped to it after the NMS, in
 * decreasing score; at most max_out. Returns the count or a negative status. */
int nerve_yolo_decode(nerve_model *m, int sample, float width, float height, float thresh,
                      float nms_iou, nerve_detection *out, int max_out);
/* nerve_yolo_decode of one input x (one sample of the model's input shape), run in
 * evaluation mode (compiles the model at batch 1 when it is not compiled). */
int nerve_yolo_detect(nerve_model *m, const float *x, float width, float height, float thresh,
                      float nms_iou, nerve_detection *out, int max_out);
/* Detections of sample `sample` of the last forward pass of a model with [ssd] heads
 * (src/train/ssd_detect.c): every default box and class whose softmax probability is above
 * thresh, the box decoded from the default box and the offsets, the 200 best of each class,
 * NMS per class at nms_iou (0: none), boxes as corners in width x height clamped to it, in
 * decreasing score; at most max_out. Returns the count or a negative status. */
int nerve_ssd_decode(nerve_model *m, int sample, float width, float height, float thresh,
                     float nms_iou, nerve_detection *out, int max_out);
/* nerve_ssd_decode of one input x, run as nerve_yolo_detect runs. */
int nerve_ssd_detect(nerve_model *m, const float *x, float width, float height, float thresh,
                     float nms_iou, nerve_detection *out, int max_out);
/* Detections of sample `sample` of the last forward pass of a Faster R-CNN model
 * (src/train/yolo_detect.c): for each non-empty RoI and class k, the softmax probability of
 * k + 1 as the score and the RoI moved by class k's offsets (clipped to the input) as the
 * box; scores >= thresh, NMS per class at nms_iou (0: none), the best max_out; boxes in
 * width x height. */
int nerve_frcnn_decode(nerve_model *m, int sample, float width, float height, float thresh,
                       float nms_iou, nerve_detection *out, int max_out);
/* nerve_frcnn_decode of one input x, run in evaluation mode at batch 1. */
int nerve_frcnn_detect(nerve_model *m, const float *x, float width, float height, float thresh,
                       float nms_iou, nerve_detection *out, int max_out);
/* A detection model's figures on a data set of boxes (a [detection] head, or [yolo] / [region]
 * heads whose detections are pooled before one NMS per image): mAP at IoU 0.5 (VOC 2007 11-point and
 * all-point) and COCO's mAP@[.5:.95], over the classes that have ground truth; ap (NULL, or
 * room for the model's classes) gets each class's all-point AP at 0.5. */
typedef struct nerve_detection_metrics {
    double map50_voc07, map50, map_coco;
    double *ap;     /* set by the caller (may be NULL) */
    int detections; /* kept after the threshold and NMS, at most 100 per image */
    int truths;
} nerve_detection_metrics;
int nerve_evaluate_detection(nerve_model *m, const nerve_dataset *d, float thresh, float nms_iou,
                             nerve_detection_metrics *out);
/* The same, and with pr_svg (may be NULL) the precision-recall curves at IoU 0.5 of the
 * detections (nerve_detection_pr_svg, the data set's class names in the legend) written there. */
int nerve_evaluate_detection_pr(nerve_model *m, const nerve_dataset *d, float thresh, float nms_iou,
                                nerve_detection_metrics *out, const char *pr_svg);

/* Sliding-window detection (src/apps/sliding.c): a classifier of n_classes object classes
 * and background (class n_classes, last) scores every window of the given shapes on a grid
 * of the scene (left and top edges 0, stride, ..., and the last flush with the far edge),
 * each window with its context (R-CNN's padding: it shows whether the object fits the
 * window) warped bilinearly to the classifier's square input; per class, the windows
 * whose probability is >= thresh are its detections, then greedy NMS per class at nms_iou
 * (0: none). */
#define NERVE_SLIDING_MAX_SHAPES 16
typedef struct nerve_sliding_options {
    int n_shapes;
    int shapes[NERVE_SLIDING_MAX_SHAPES][2]; /* window width, height in the scene's pixels */
    int stride;                              /* pixels between neighbouring windows */
    float context;                           /* the classifier sees the window with this share
                                                of its width and height added on each side */
    float thresh, nms_iou;                   /* detection */
    /* training crops (nerve_sliding_crops) */
    int crop;                /* side the windows are warped to */
    float pos_iou, neg_iou;  /* a window of IoU >= pos_iou with an object is its class; below
                                neg_iou with every object, background */
    int positives, negatives; /* at most this many windows per object, background per scene */
    uint64_t seed;
} nerve_sliding_options;
/* One 28 x 28 shape, stride 4, context 0.125, thresh 0, NMS 0, crop 32, pos_iou 0.6, neg_iou 0.3, 4
 * positives, 8 negatives, seed 1. */
nerve_sliding_options nerve_sliding_default(void);
/* Window shapes "WxH,WxH,..." (1 to 4096 pixels each, at most NERVE_SLIDING_MAX_SHAPES). */
int nerve_sliding_parse_shapes(const char *s, nerve_sliding_options *o);
/* A classifier's training crops from scenes with boxes: windows of the options' shapes and
 * grid, chosen at random (o->seed) among those of each object (IoU >= pos_iou) and among the
 * background ones (IoU < neg_iou with every object), warped to crop x crop; labels 0 ..
 * n_classes (background), names the scenes' and "background". out is allocated. */
int nerve_sliding_crops(const nerve_dataset *scenes, int n_classes, const nerve_sliding_options *o,
                        nerve_dataset *out);
/* The detections of one image [C, H, W] (at most max_out, decreasing score, image 0);
 * heat (may be NULL) gets [n_classes, H, W]: at each pixel, the highest probability of each
 * class among the windows whose centre's stride x stride square covers it. Returns the
 * count or a negative status. */
int nerve_sliding_detect(nerve_model *m, const float *image, int C, int H, int W, int n_classes,
                         const nerve_sliding_options *o, float *heat, nerve_detection *out, int max_out);
/* The figures of nerve_evaluate_detection for sliding windows on scenes with boxes (at most
 * 100 detections per image), and with pr_svg the precision-recall curves. */
int nerve_evaluate_sliding(nerve_model *m, const nerve_dataset *scenes, int n_classes,
                           const nerve_sliding_options *o, nerve_detection_metrics *out, const char *pr_svg);

/* Test-time augmentation for image models (src/apps/ensemble.c): each image is seen as
 * 10 views, the 10-crop of AlexNet kept at the input size: for each of the five crop x crop
 * windows (four corners and centre), the image shifted so that the window's centre lands on
 * the image centre (zero fill), and the mirror of each. The softmax outputs of the views
 * are averaged (sigmoid for a single output); loss is the mean of -log(averaged probability
 * of the true class), accuracy that of the averaged prediction. crop = the image side gives
 * the image and its mirror. */
int nerve_evaluate_tta(nerve_model *m, const nerve_dataset *d, int crop, double *loss,
                       double *accuracy);
/* Ensembles: the average of k models' softmax outputs (sigmoid for a single output) on d.
 * loss and accuracy as for nerve_evaluate_tta; member_acc (k doubles, may be NULL) receives
 * each member's own accuracy. Every model must take d's samples and give as many classes. */
int nerve_ensemble_evaluate(nerve_model **models, int k, const nerve_dataset *d, double *loss,
                            double *accuracy, double *member_acc);

/* ===================================================================================== */
/* 14. Plots and logs                                                                     */
/* ===================================================================================== */

/* Line plot of up to 12 series sharing the x values (x may be NULL: 0..n-1), as a
 * standalone SVG file. */
typedef struct nerve_series {
    const char *label;
    const double *y; /* NaN points are skipped */
} nerve_series;
int nerve_svg_lineplot(const char *path, const char *title, const char *xlabel,
                       const double *x, int n, const nerve_series *series, int n_series);

/* Paths in the plane over a field (src/io/svg.c; optimiser trajectories): box = {x0, x1,
 * y0, y1} is the square drawn; field (may be NULL) holds gh rows of gw values sampled on it,
 * row 0 at y0, drawn from dark blue (its smallest finite value) to pale yellow (its largest);
 * up to 12 paths of n points xy [n, 2], each from a dot at its start, clipped to the box and
 * ended at the first non-finite point (a diverged run). */
typedef struct nerve_path2d {
    const char *label;
    const double *xy;
    int n;
} nerve_path2d;
int nerve_svg_trajectories(const char *path, const char *title, const double box[4], const double *field,
                           int gw, int gh, const nerve_path2d *paths, int n_paths);

/* PNG images, 8 bits per channel (src/io/png.c): values are clamped to [0, 1] and rounded
 * to 0..255. gray: data [h, w]; rgb: planes [3, h, w] (the framework's image layout). */
int nerve_png_write_gray(const char *path, int w, int h, const float *data);
int nerve_png_write_rgb(const char *path, int w, int h, const float *data);
/* Tiles k maps [channels, h, w] (channels 1: gray, 3: RGB) into one image of `cols` tiles
 * per row (<= 0: ceil(sqrt(k))), each map normalised by its own min/max to [0, 1] (a
 * constant map becomes 0.5), with a 1-pixel white border around and between the tiles.
 * nerve_image_grid computes it into out [channels, *out_h, *out_w] (out may be NULL to get
 * the size); nerve_png_write_grid writes it. */
int nerve_image_grid(const float *maps, int k, int channels, int h, int w, int cols,
                     float *out, int *out_h, int *out_w);
int nerve_png_write_grid(const char *path, const float *maps, int k, int channels, int h,
                         int w, int cols);

/* ===================================================================================== */
/* 15. Text generation                                                                    */
/* ===================================================================================== */

/* Sampling from a language model (src/apps/textgen.c; docs/textgen.md). A language model
 * is an ordinary cfg model that reads text (train_text=: its vocabulary is the text's
 * distinct bytes, kept in the checkpoint's metadata "nerve.vocab") and scores the next byte
 * at every step ([softmax] target=tokens); models/charlm.cfg is the course's character
 * LSTM, trained by nerve_fit like any model. A sampler rebuilds it one step at a time
 * (seq=1, batch 1) with the same weights; its recurrent layers carry their state from one
 * byte to the next (carry=1), so a prime and the generated bytes are read as one text. */
typedef struct nerve_textgen nerve_textgen;

/* A sampler for a checkpoint written by nerve_fit / nerve_model_save. NULL on error: the
 * file cannot be read, or its model is not a language model (the message says which). */
nerve_textgen *nerve_textgen_load(const char *path);
/* The same for a model in memory (e.g. just trained); its weights are copied. */
nerve_textgen *nerve_textgen_from_model(nerve_model *m);
void nerve_textgen_free(nerve_textgen *t);
/* The vocabulary size V; copies min(V, cap) bytes of the sorted vocabulary into out (out may
 * be NULL). */
int nerve_textgen_vocab(const nerve_textgen *t, unsigned char *out, int cap);
/* The one-step model (for introspection). */
nerve_model *nerve_textgen_model(nerve_textgen *t);

/* One byte at a time: reset zeroes the recurrent state; next feeds one byte (which must be
 * in the vocabulary) and writes the predicted distribution of the following byte, V
 * probabilities in vocabulary order, into probs (may be NULL). */
int nerve_textgen_reset(nerve_textgen *t);
int nerve_textgen_next(nerve_textgen *t, int byte, float *probs);
/* Mean bits per character of predicting text[1..len) from what precedes it, starting from
 * a zero state (len >= 2; every byte in the vocabulary). */
int nerve_textgen_bpc(nerve_textgen *t, const char *text, size_t len, double *bpc);
/* Resets the state, feeds prime[0..prime_len) (prime_len 0: a newline if the vocabulary has
 * one, else its first byte, which is not part of the output), then draws `length` bytes,
 * each fed back, into out (not terminated). temperature > 0 divides the scores before the
 * softmax; 0 takes the most likely byte. The same checkpoint, prime, temperature and seed
 * give the same text. Returns the number of bytes written. */
int nerve_textgen_sample(nerve_textgen *t, const char *prime, size_t prime_len, int length,
                         float temperature, uint64_t seed, char *out);

/* ===================================================================================== */
/* 16. Visualisation                                                                      */
/* ===================================================================================== */

/* Pictures a person can read (src/io/picture.c), the helpers of the pictures below and of
 * any later one: an RGB canvas (planes [3, h, w], values in [0, 1]) with rectangles and text
 * in a built-in 5x7 pixel font (each character 6*scale pixels wide, 7*scale tall; lower case
 * drawn as capitals, characters without a glyph as '?'), the diverging colour map of signed
 * values, and sheets of tiles. Drawing outside the canvas is clipped. */
typedef struct nerve_canvas {
    int w, h;
    float *rgb;
} nerve_canvas;
/* A w x h canvas filled with gray level grey (1: white); at most 2^26 pixels. */
int nerve_canvas_init(nerve_canvas *c, int w, int h, float grey);
void nerve_canvas_free(nerve_canvas *c);
void nerve_canvas_pixel(nerve_canvas *c, int x, int y, const float rgb[3]);
void nerve_canvas_rect(nerve_canvas *c, int x, int y, int w, int h, const float rgb[3]);
/* Draws text with its top-left corner at (x, y); returns its width in pixels. */
int nerve_canvas_text(nerve_canvas *c, int x, int y, const char *text, int scale, const float rgb[3]);
int nerve_text_width(const char *text, int scale);
int nerve_canvas_write_png(const nerve_canvas *c, const char *path);
/* v in [-1, 1] (clamped) to blue (negative) - white (0) - red (positive), linearly. */
void nerve_colormap_diverging(float v, float rgb[3]);
/* A sheet: k maps [channels, h, w] (channels 1 or 3) as tiles scaled up by an integer
 * factor (scale; 0: the smallest that makes a tile's longer side at least 48 pixels, less if
 * the picture would exceed 4096 pixels), `gap` gray pixels between tiles (0: 4), `cols`
 * tiles per row (<= 0: ceil(sqrt(k))), the caption (may be NULL) above them. Gray maps share
 * one scale, drawn as a colour bar with its end values to the right: the diverging map over
 * [-m, m] (m = the largest |value|) when any value is negative, else gray from the smallest
 * (black) to the largest (white). RGB maps are each scaled to their own range. A value that
 * is not finite is an error naming the tile. */
typedef struct nerve_sheet_options {
    int scale, gap, cols;
    const char *caption;
} nerve_sheet_options;
/* The picture's size, without drawing it. */
int nerve_sheet_size(const float *maps, int k, int channels, int h, int w, const nerve_sheet_options *o,
                     int *out_w, int *out_h);
/* Draws the sheet on a new canvas c (free it with nerve_canvas_free). */
int nerve_sheet_draw(nerve_canvas *c, const float *maps, int k, int channels, int h, int w,
                     const nerve_sheet_options *o);
int nerve_sheet_write(const char *path, const float *maps, int k, int channels, int h, int w,
                      const nerve_sheet_options *o);
/* Captioned tiles: n images [n, channels, h, w] (channels 1 or 3), `cols` per row (<= 0:
 * all in one row), each scaled up by the integer factor that makes its longer side at least
 * min_side pixels (0: 84), its caption (lines split at '\n'; captions and any caption may be
 * NULL) above it, the title (may be NULL) above them all. Values map from [lo, hi] to black..
 * white (lo >= hi: each tile to its own range), clamped. A value that is not finite is an error. */
typedef struct nerve_tiles_options {
    int cols, min_side;
    float lo, hi;
    const char *title;
} nerve_tiles_options;
int nerve_tiles_write(const char *path, const float *images, int n, int channels, int h, int w,
                      const char *const *captions, const nerve_tiles_options *o);

/* Explanations of a classifier's decision (src/apps/explain.c; docs/explain.md). Every
 * method gives one map [h, w] of the input's height and width (nerve_explain_geometry: an
 * image input [C, H, W]; a vector of s*s values as one s x s plane; any other vector as one
 * row) for class c: the target, or the predicted class. S_c is the unnormalised class
 * score (the logit), never the softmax or the loss.
 *   saliency    |dS_c/dI|, maxed over the channels (Simonyan et al. 2014)
 *   backprop    dS_c/dI, signed (the channel value of largest magnitude)
 *   deconvnet   the same through deconvnet ReLUs (NERVE_RELU_DECONVNET)
 *   guided      the same through guided ReLUs (NERVE_RELU_GUIDED)
 *   smoothgrad  the mean saliency of `samples` copies of I plus N(0, sigma^2) noise, sigma =
 *               noise * (max I - min I) (Smilkov et al. 2017)
 *   occlusion   S_c(I) - S_c(I with a patch x patch square set to fill), averaged at each
 *               pixel over the squares (stride apart) that cover it (Zeiler & Fergus 2014)
 *   gradcam     ReLU(sum_k alpha_k A_k), alpha_k the mean of dS_c/dA_k over the map, at a
 *               layer with maps A [K, h', w'] (default: the last such layer), resized
 *               bilinearly to [h, w] (Selvaraju et al. 2017) */
enum {
    NERVE_EXPLAIN_SALIENCY = 0,
    NERVE_EXPLAIN_BACKPROP,
    NERVE_EXPLAIN_DECONVNET,
    NERVE_EXPLAIN_GUIDED,
    NERVE_EXPLAIN_SMOOTHGRAD,
    NERVE_EXPLAIN_OCCLUSION,
    NERVE_EXPLAIN_GRADCAM,
    NERVE_EXPLAIN_COUNT
};
const char *nerve_explain_method_name(int method);
int nerve_explain_method_parse(const char *name); /* the method, or a negative status */
typedef struct nerve_explain_options {
    int target;          /* the class explained; < 0: the predicted one (default -1) */
    const char *layer;   /* Grad-CAM's layer (NULL: the last with maps) */
    int samples;         /* SmoothGrad's noisy copies (default 50) */
    float noise;         /* SmoothGrad's sigma over the input's range (default 0.15) */
    int patch, stride;   /* occlusion (0: a quarter of the shorter side; a third of the patch) */
    float fill;          /* occlusion: the patch's value (default 0) */
    uint64_t seed;       /* SmoothGrad's noise (default 1) */
} nerve_explain_options;
void nerve_explain_defaults(nerve_explain_options *o);
int nerve_explain_geometry(nerve_model *m, int *channels, int *h, int *w);
/* Compiles a classifier for explanations at batch max_batch (<= 0: 64) with private
 * buffers for every node (Grad-CAM reads a layer's value and gradient; the deconvnet and
 * guided modes need every ReLU as its own node), in evaluation mode, the input asking for
 * its gradient. A model compiled before keeps its plan (Grad-CAM and the ReLU modes then
 * refuse with a message if it shares buffers). */
int nerve_explain_prepare(nerve_model *m, int max_batch);
/* The map of `method` for one input image [d] into map [h * w]; *cls and *score (either
 * may be NULL) receive the class explained and its score S_c. */
int nerve_explain(nerve_model *m, const float *image, int method, const nerve_explain_options *o, float *map,
                  int *cls, float *score);
/* dS_c/dx for n inputs x [n, d] and classes cls[n] (< 0: predicted) into grad [n, d], ReLUs
 * passing gradients back by mode (nerve_relu_backward). */
int nerve_explain_gradient(nerve_model *m, const float *x, int n, const int *cls, int mode, float *grad);
/* A picture of n inputs [n, channels, h, w], one row each: the input, then for each of the
 * k maps [n, k, h, w] the map in the diverging colour map (red positive, blue negative,
 * scaled by the 99th percentile of |value|, beyond which it saturates) and the map laid over the input in gray; titles[k] name
 * the maps, captions[n] (may be NULL) head the rows. Scaled up to at least 96 pixels. */
int nerve_explain_picture(const char *path, const float *images, int n, int channels, int h, int w,
                          const float *maps, int k, const char *const *titles, const char *const *captions);
/* Spearman's rank correlation of a[n] and b[n] (ties get their mean rank). */
int nerve_spearman(const float *a, const float *b, size_t n, double *rho);
/* The model-randomisation sanity check (Adebayo et al. 2018): for the first n images of d,
 * the Spearman correlation between the map of `method` for the trained model's predicted
 * class and the map of the same network freshly initialised from its cfg (the input's
 * z-score statistics copied) for that class; their mean into *mean_rho, each into rhos[n]
 * (may be NULL). A method that reads the weights gives a low correlation. The trained model
 * must be prepared (nerve_explain_prepare). */
int nerve_explain_randomization(nerve_model *trained, const nerve_dataset *d, int n, int method,
                                const nerve_explain_options *o, double *mean_rho, double *rhos);

/* Fooling images and the adversarial patch (src/apps/fool.c; docs/explain.md). Both ascend
 * log p_t, the log-softmax of the target class t (its input gradient back-propagates the
 * seed onehot(t) - softmax at the class scores), in evaluation mode, every value kept in the
 * valid range [lo, hi]. The model must be prepared (nerve_explain_prepare). */
/* log p_t of n inputs x [n, d] (n <= the compiled batch) for targets t[n] into logp[n] (may
 * be NULL), and its gradient with respect to x into grad [n, d] (may be NULL: no backward). */
int nerve_logprob_gradient(nerve_model *m, const float *x, int n, const int *targets, float *grad, float *logp);
typedef struct nerve_fool_options {
    int steps;        /* at most this many ascent steps (default 1000) */
    float step;       /* each moves every value by step times the gradient's sign (default 0.01) */
    float confidence; /* stop once softmax p_t >= confidence (default 0.99) */
    float lo, hi;     /* the valid range (default 0, 1); the start is uniform noise in it */
    uint64_t seed;    /* the noise (default 1) */
} nerve_fool_options;
void nerve_fool_defaults(nerve_fool_options *o);
/* Fooling images (Nguyen et al. 2015; COURSE.md §11): for each target t[i], from uniform
 * noise, steps of sign ascent on log p_t until p_t >= o->confidence or o->steps; the images
 * into images [n, d], p_t into conf[n], the steps taken into steps[n] (either may be NULL). */
int nerve_fool(nerve_model *m, const int *targets, int n, const nerve_fool_options *o, float *images, float *conf,
               int *steps);
typedef struct nerve_patch_options {
    int target;     /* the class the patch makes */
    int size;       /* its side in pixels (default: a quarter of the image's shorter side) */
    int steps;      /* ascent steps (default 400), each on `batch` random training images */
    int batch;      /* default: the compiled batch */
    float step;     /* sign-ascent step (default 0.02, falling linearly to a tenth) */
    int stride;     /* the placement grid's spacing (default 2) */
    int search;     /* training images that score each placement (default 256) */
    float lo, hi;   /* the valid range (default 0, 1) */
    uint64_t seed;  /* default 1 */
} nerve_patch_options;
void nerve_patch_defaults(nerve_patch_options *o);
/* The patch attack (Brown et al. 2017; COURSE.md §11): a universal patch [channels, size,
 * size] pasted over images. The first half of the steps paste it at random places; then the
 * placement (on the stride grid) with the highest mean log p_t over `search` training images
 * is chosen, and the second half trains the patch there. The patch into patch, the chosen
 * top-left corner into *py, *px. */
int nerve_patch_train(nerve_model *m, const nerve_dataset *train, const nerve_patch_options *o, float *patch,
                      int *py, int *px);
/* Pastes patch [channels, size, size] at (py, px) into image [channels, h, w]. */
void nerve_patch_paste(float *image, int channels, int h, int w, const float *patch, int size, int py, int px);
/* Success rates over the first `limit` (<= 0: all) samples of d whose label is not the
 * target: the fraction classified as the target with the patch at (py, px) into *at_place,
 * at one uniformly random place per image into *at_random (may be NULL); *counted gets the
 * number of samples (may be NULL). */
int nerve_patch_evaluate(nerve_model *m, const nerve_dataset *d, const nerve_patch_options *o, const float *patch,
                         int py, int px, int limit, double *at_place, double *at_random, int *counted);

/* Texture synthesis and neural style transfer (Gatys et al. 2015, 2016; src/apps/style.c;
 * docs/explain.md). A layer's maps for one image are F [N, M] (N maps of M = H*W positions).
 *   Gram matrix   G = F F^T [N, N]                                   (nerve_gram)
 *   style loss    sum_l w_l E_l,  E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_l - A_l)_ij^2, A_l the
 *                 style image's Gram at layer l
 *   content loss  1/2 sum (F - P)^2 at the content layer, P the content image's maps
 *   prior         tv sum_c,i,j (x[i][j+1] - x[i][j])^2 + (x[i+1][j] - x[i][j])^2, the total
 *                 variation with exponent 2 (Mahendran & Vedaldi 2015)
 *   total         alpha content + beta style + prior, minimised over the image's pixels by
 *                 Adam (0.9, 0.999) with learning rate lr, every value clamped to [lo, hi].
 * Texture synthesis is the same without a content image; feature inversion without a style
 * image (n_style 0), with the prior. The graph: any compiled one with
 * private buffers (nerve_graph_keep_buffers), the input asking for a gradient
 * (nerve_style_prepare does both for a model); it runs at batch 1 (set by the calls); layers
 * are node ids with maps [C, H, W] (a vector [C] counts as C maps of one position). */
int nerve_gram(const float *f, int n, int m, float *gram); /* f [n, m] -> gram [n, n] */
typedef struct nerve_style_options {
    const int *style_layers;    /* n_style node ids (read by nerve_style_create only) */
    int n_style;
    const float *style_weights; /* w_l (NULL: 1 / n_style each) */
    int content_layer;          /* node id (-1: none; needed with a content image) */
    float alpha, beta;          /* default 1, 1000 */
    float tv;                   /* the total-variation prior's weight (default 0) */
    int steps;                  /* default 500 */
    float lr;                   /* Adam's learning rate on the pixels (default 0.02) */
    float lo, hi;               /* the valid range (default 0, 1) */
    uint64_t seed;              /* default 1 (for callers that start from noise) */
    /* called at step 0, every report_every steps (default 50; 0: never) and at the end with
       the losses {content, style, tv} of the image at that step; non-zero stops the run */
    int (*progress)(int step, const double *losses, void *user);
    void *user;
    int report_every;
} nerve_style_options;
void nerve_style_defaults(nerve_style_options *o);
typedef struct nerve_style nerve_style;
/* Reads the style image's Grams and the content image's maps (content may be NULL: texture
 * synthesis; style may be NULL with n_style 0: inversion); images are the graph's input for
 * one sample [d]. NULL after an error. */
nerve_style *nerve_style_create(nerve_graph *g, int input, const nerve_style_options *o, const float *style_image,
                                const float *content_image);
/* The losses {content, style, total variation} of image [d] into losses[3] (unweighted by
 * alpha, beta, tv; may be NULL), and the gradient of the total with respect to the image
 * into grad [d] (may be NULL). */
int nerve_style_loss(nerve_style *s, const float *image, double *losses, float *grad);
/* o->steps Adam steps from image [d] (in: the start; out: the result); first[3] and last[3]
 * (either may be NULL) receive the losses at the start and at the end. */
int nerve_style_run(nerve_style *s, float *image, double *first, double *last);
void nerve_style_free(nerve_style *s);
/* Compiles a model for style (private buffers, batch 1, eval mode, input gradient). */
int nerve_style_prepare(nerve_model *m);

/* What a trained network has learnt, seen through its inputs (src/apps/visualize.c;
 * docs/explain.md). Every function needs a model prepared for explanations
 * (nerve_explain_prepare: private buffers, the input's gradient, evaluation mode); a layer is
 * a node id (nerve_node_find with a layer's name). Ascents step by lr times the gradient
 * divided by its mean absolute value, and keep every value in [lo, hi]. */
typedef struct nerve_dream_options {
    int steps;         /* default 300 (class model), 40 (DeepDream) */
    float lr;          /* default 0.02 */
    float lambda;      /* class model: the L2 penalty's weight lambda (default 0.001) */
    int blur_every;    /* class model: Gaussian blur every N steps (default 4; 0: never) */
    float blur;        /* its standard deviation in pixels (default 0.5) */
    float clip_pixels; /* class model: after each step, the fraction of pixels whose value
                          (the largest over the channels) is smallest are set to lo
                          (default 0.1) */
    float clip_grad;   /* class model: the fraction of gradient values of smallest magnitude
                          set to 0 before each step (default 0.1) */
    float lo, hi;      /* the valid range (default 0, 1) */
} nerve_dream_options;
void nerve_dream_defaults(nerve_dream_options *o);
/* S_c(x) - lambda ||x||^2 of one input x [d] into *objective and its gradient into grad [d]. */
int nerve_class_model_gradient(nerve_model *m, const float *x, int cls, float lambda, float *grad,
                               double *objective);
/* Class model visualisation (Simonyan et al. 2014; Yosinski et al. 2015): from x = lo, ascent
 * on S_c(x) - lambda ||x||^2 with the blur and the clipping of small pixels and gradients of
 * o; the image into image [d], its score S_c into *score and softmax probability into *prob
 * (either may be NULL). */
int nerve_class_model(nerve_model *m, int cls, const nerve_dream_options *o, float *image, float *score,
                      float *prob);
/* 1/2 sum f^2 of layer `layer`'s maps f for one input x [d] into *objective, its gradient
 * (back-propagated from the seed f: DeepDream) into grad [d]. */
int nerve_dream_gradient(nerve_model *m, int layer, const float *x, float *grad, double *objective);
/* DeepDream (Mordvintsev et al. 2015): o->steps ascents of 1/2 sum f^2 at `layer` from
 * image [d] (in: the start; out: the dream); before / after (may be NULL) the objective. */
int nerve_deepdream(nerve_model *m, int layer, const nerve_dream_options *o, float *image, double *before,
                    double *after);
/* The maps of `layer` for n inputs x [n, d] into out [n, f] (f: the layer's values per
 * sample), in batches of the compiled size. */
int nerve_layer_features(nerve_model *m, int layer, const float *x, int n, float *out);
/* The k nearest rows of pool [n, dim] to query [dim] by Euclidean distance, nearest first,
 * into idx[k] and their distances into dist[k] (may be NULL); k <= n. */
int nerve_nearest(const float *pool, int n, int dim, const float *query, int k, int *idx, float *dist);
/* The k samples among the first `limit` (<= 0: all) of d that activate unit `unit` of
 * `layer` most (a map's channel: its largest value over the positions; a vector's element),
 * strongest first: sample indices into idx[k], activations into act[k], the position of the
 * maximum (y * W + x; 0 for a vector) into pos[k] (act and pos may be NULL). */
int nerve_top_activations(nerve_model *m, int layer, int unit, const nerve_dataset *d, int limit, int k, int *idx,
                          float *act, int *pos);
/* The input pixels that unit `unit` at position pos of `layer` reads for image [d]: the
 * bounding box {y0, x0, y1, x1} (inclusive) of the non-zero entries of its input gradient
 * (all -1 when the gradient is zero). */
int nerve_unit_box(nerve_model *m, int layer, int unit, int pos, const float *image, int box[4]);

/* The weights of a layer as a PNG grid (src/apps/viz.c): layer NULL takes the first layer
 * with a "<layer>.weight" parameter. A dense weight [O, in] on image inputs [C, H, W] gives
 * one tile per unit (RGB if C = 3, else one gray H x W tile per channel); on a vector input
 * one square-ish tile per unit. A convolution weight [O, C, k, k] gives one k x k tile per
 * filter (RGB if C = 3, else one per channel). *tiles (may be NULL) gets the tile count. */
int nerve_viz_filters(nerve_model *m, const char *layer, const char *png_path, int *tiles);
/* Runs sample `index` of d through the model in eval mode and writes the output of layer
 * `layer` (NULL: the first layer) as a grid: [C, H, W] outputs give C tiles of H x W, any
 * other shape one square-ish tile of its values (unused cells at the minimum). */
int nerve_viz_activations(nerve_model *m, const nerve_dataset *d, int index, const char *layer,
                          const char *png_path, int *tiles);
/* For a reconstruction model (head target=input) and image samples [1 or 3, H, W]: a PNG of
 * the first n (1..64) samples of d in three rows, the inputs the model read (a denoising
 * model's corrupted ones, as nerve_evaluate_metrics corrupts them), its outputs and the clean
 * images, each pixel drawn as a scale x scale block (1..16), 2-pixel white gaps
 * (src/apps/reconstruct.c). */
int nerve_viz_reconstruct(nerve_model *m, const nerve_dataset *d, int n, int scale, const char *png_path);

/* ===================================================================================== */
/* 17. Unsupervised learning: PCA, t-SNE, embeddings, the curse of dimensionality          */
/* ===================================================================================== */

/* Eigen-decomposition of a symmetric n x n matrix a (row-major, doubles; only its lower
 * triangle is read, and a is left unchanged): Householder reduction to a tridiagonal matrix,
 * then the implicit QL algorithm (src/apps/pca.c). eigval (n) receives the eigenvalues in
 * descending order, eigvec (n x n, may be NULL) the unit eigenvectors as ROWS in the same
 * order, each with its largest-magnitude entry (the first of equals) positive. Refuses
 * non-finite entries (NERVE_ERR_NUMERIC); NERVE_ERR_NUMERIC also if QL does not converge. */
int nerve_symeig(int n, const double *a, double *eigval, double *eigvec);

/* Principal component analysis (src/apps/pca.c; docs/unsupervised.md). */
enum {
    NERVE_PCA_STANDARDISE = 1, /* divide every centred feature by its standard deviation (1/n);
                                  a feature with zero variance stays 0 (its scale is 1) */
    NERVE_PCA_COVARIANCE = 2,  /* force the covariance route (d x d eigen-decomposition) */
    NERVE_PCA_GRAM = 4         /* force the Gram route (n x n, the SVD of the data): the
                                  default when d > n */
};
typedef struct nerve_pca {
    int n, d;              /* samples fitted, features */
    int k;                 /* components kept */
    int flags;             /* the NERVE_PCA_* flags of the fit, with the route taken */
    double total_variance; /* trace of the covariance (of the standardised data) */
    double *mean;          /* d feature means */
    double *scale;         /* d standard deviations (STANDARDISE), else NULL */
    double *eigval;        /* k variances along the components, descending */
    float *components;     /* k x d: unit eigenvectors of the covariance as rows, each with its
                              largest-magnitude entry positive */
} nerve_pca;
/* Fits x [n, d] (n >= 2): mean (and scale), the covariance with 1/n, the top k components
 * (k <= 0: min(n, d); at most min(n, d)). The covariance (X^T X) or Gram matrix (X X^T) is
 * computed with the library's SGEMM over blocks of 64 rows or columns, each block summed
 * into doubles; eigenvalues are variances (not standard deviations). Components whose
 * variance is zero (k above the rank; on the Gram route, below 1e-6 of the largest, which
 * float products cannot resolve) are completed to an orthonormal set with variance 0. */
int nerve_pca_fit(nerve_pca *p, const float *x, int n, int d, int k, int flags);
void nerve_pca_free(nerve_pca *p);
/* Codes out [n, k] of x [n, d]: the centred (and scaled) samples projected on the first k
 * components (k <= p->k); whiten divides each code by the square root of its variance
 * (a zero-variance component is refused). */
int nerve_pca_transform(const nerve_pca *p, const float *x, int n, int k, int whiten, float *out);
/* Reconstructions out [n, d] from codes [n, k] (whitened as given): mean + codes * components,
 * scaled back when standardised. */
int nerve_pca_reconstruct(const nerve_pca *p, const float *codes, int n, int k, int whitened,
                          float *out);
/* Proportion of the total variance of component i (0-based) and the cumulative proportion of
 * components 0..i; NaN outside 0..k-1 or when the data has no variance. */
double nerve_pca_proportion(const nerve_pca *p, int i);
double nerve_pca_cumulative(const nerve_pca *p, int i);
/* Scree plot as SVG: the proportion of variance of components 1..kmax (kmax <= 0 or > k: k)
 * and its cumulative sum. */
int nerve_pca_scree_svg(const nerve_pca *p, const char *path, int kmax);

/* t-SNE (src/apps/tsne.c; docs/unsupervised.md). Affinities: for every point a Gaussian
 * whose precision is found by binary search so that the conditional distribution p_j|i over
 * its neighbours has the given perplexity (2^entropy, entropy in nats as log), then
 * p_ij = (p_j|i + p_i|j) / 2n. Exact (theta <= 0): all n - 1 neighbours, O(n^2) per
 * iteration (n at most 10000). Barnes-Hut (theta > 0, 2 output dimensions): the
 * min(n - 1, 3 * perplexity + 1) nearest neighbours, and the repulsion summed over a quadtree
 * whose cells of width w at distance r count as one point when w / r < theta: O(n log n).
 * Optimisation: gradient descent with momentum and per-coordinate gains (+0.2 when the
 * gradient changes sign, x0.8 otherwise, at least 0.01); the first exaggeration_iters
 * iterations multiply P by `exaggeration` with `momentum`, the rest use final_momentum, and
 * the momentum and gains restart between the two phases. */
enum { NERVE_TSNE_INIT_PCA = 0, NERVE_TSNE_INIT_RANDOM = 1 };
typedef struct nerve_tsne_options {
    int dims;                /* output dimensions (default 2; 1..3 exact, 2 with Barnes-Hut) */
    double perplexity;       /* default 30; below the number of neighbours */
    int iterations;          /* default 1000, exaggerated ones included */
    double learning_rate;    /* <= 0 (default): max(n / exaggeration / 4, 50) */
    double exaggeration;     /* default 12 */
    int exaggeration_iters;  /* default 250 */
    double momentum;         /* default 0.5 (exaggerated phase) */
    double final_momentum;   /* default 0.8 */
    double theta;            /* default 0.5; <= 0: exact */
    int init;                /* NERVE_TSNE_INIT_PCA (default: the top principal components
                                scaled so that the first has standard deviation 1e-4) or
                                RANDOM (normal, standard deviation 1e-4) */
    uint64_t seed;           /* random initialisation */
    /* called every report_every iterations (default 50; 0: never) with the iteration
       (1-based) and the KL divergence before that iteration's step (with the exaggerated P
       in the first phase); a non-zero return stops the optimisation (the result so far is
       kept) */
    int (*progress)(int iteration, double kl, void *user);
    void *user;
    int report_every;
} nerve_tsne_options;
void nerve_tsne_defaults(nerve_tsne_options *o);
/* Embeds x [n, d] into y [n, o->dims] (o NULL: defaults); *kl (may be NULL) receives the
 * final KL(P || Q) (with Barnes-Hut, its normaliser Z summed over the tree). */
int nerve_tsne(const float *x, int n, int d, const nerve_tsne_options *o, float *y, double *kl);

/* Scatter plot as SVG (src/io/svg.c): n points xy [n, 2], coloured by label (labels may be
 * NULL; label -1 or >= n_classes is drawn gray as "unlabelled"), with a legend of class names
 * (names may be NULL: the class number). At most 20 classes have their own colour. */
int nerve_svg_scatter(const char *path, const char *title, const float *xy, int n,
                      const int *labels, int n_classes, const char *const *names);

/* Features at a named node (src/apps/embed.c): nerve_model_feature_dim gives the values per
 * sample of node `layer` (NULL: the model's output), and nerve_model_features fills
 * out [d->n, dim] with that node's output for every sample of d, in evaluation mode. */
int nerve_model_feature_dim(nerve_model *m, const char *layer, int *dim);
int nerve_model_features(nerve_model *m, const nerve_dataset *d, const char *layer, float *out);

/* The curse of dimensionality (src/apps/curse.c). The volume of the ball inscribed in a cube,
 * as a fraction of the cube's: pi^(d/2) / (Gamma(d/2 + 1) 2^d). */
double nerve_ball_cube_ratio(int d);
/* The edge of the sub-cube that holds `fraction` of a unit cube's volume: fraction^(1/d),
 * also the ratio of its diagonal to the cube's (0.955 for 1% in 100-D). */
double nerve_subcube_edge(double fraction, int d);
/* Median distance from the centre of a unit ball to the nearest of n uniform points:
 * (1 - 2^(-1/n))^(1/d). */
double nerve_median_nearest(int n, int d);
/* Monte Carlo: n points and `queries` query points uniform in the unit cube [0, 1]^d; the mean
 * over the queries of (nearest distance) / (farthest distance) to the n points. */
int nerve_nearest_farthest_ratio(int n, int d, int queries, uint64_t seed, double *ratio);
/* ---- int8 inference (src/apps/quantize.c, docs/quantize.md) -------------------------------- */
typedef struct nerve_quantize_info {
    int nodes;    /* dense and conv nodes now running in int8 */
    int skipped;  /* conv nodes left in float (grouped convolutions) */
    int samples;  /* calibration samples run */
    int folded;   /* batch norms folded into the int8 node before them */
    int adds;     /* residual adds between int8 nodes now running in int8 (kern_q8_add) */
} nerve_quantize_info;
/* Post-training quantisation of a float model: every dense node and every one-group conv
 * node gets symmetric per-output-channel int8 weights (scale = max |w| / 127) and per-tensor
 * u8 activations with a zero point for its input and its output, their ranges the minimum
 * and maximum (including 0) seen over the first `batches` batches of `calib` (the cfg's
 * batch size; an output read only by a ReLU starts at 0). A batch norm that alone reads
 * such a node's output is folded into its weights and bias and left as the identity (gamma 1,
 * beta 0, mean 0, var + eps = 1). An add of two inputs of its shape, each the output of
 * such a node through ReLUs, batch norms and views only (a residual shortcut), runs in int8
 * as well: both inputs and the sum get their own calibrated u8 scale (info->adds counts
 * them). From then on those nodes run
 * int32 products of u8 x s8 and requantise with fixed-point multipliers (docs/quantize.md);
 * the weight leaves hold the dequantised weights. nerve_model_save then writes an int8
 * checkpoint (I8 weights, metadata nerve.quantized), which nerve_model_load turns back into
 * this model and which training refuses. A quantised model has no backward pass. */
int nerve_model_quantize(nerve_model *m, const nerve_dataset *calib, int batches,
                         nerve_quantize_info *info);
/* Number of int8 nodes of the model, int8 adds included (0: a float model). */
int nerve_model_quantized(const nerve_model *m);

/* ---- Export to standalone C (src/apps/export_c.c, docs/export-c.md) ------------------------ */
typedef struct nerve_export_c_info {
    size_t weight_bytes; /* flash: the const arrays (weights, statistics, shape tables) */
    size_t arena_bytes;  /* RAM: the one static arena (activations, workspace, carried state) */
    size_t in_numel, out_numel; /* floats of one input and one output */
    int carried;         /* 1: a step model (recurrent state kept between calls) */
} nerve_export_c_info;
/* Writes DIR/NAME.c and DIR/NAME.h (NAME NULL: "model"), a C99 translation of the model at
 * batch 1 in evaluation mode that needs no allocator and no libnerve: every parameter a
 * const array, every intermediate value a slice of one static arena planned from the values'
 * live intervals, and `void NAME_run(const float *in, float *out)` computing what
 * nerve_predict_outputs gives for one sample (probabilities for a softmax or logistic head),
 * plus `void NAME_reset(void)` zeroing a carried recurrent state (a character model then runs
 * one token per call). The header states NAME_WEIGHT_BYTES and NAME_ARENA_BYTES, the exact
 * sizes of the constants and of the arena (also in *info, which may be NULL). An operator
 * without a C form is refused with its node's name. The model's batch is restored. */
int nerve_export_c(nerve_model *m, const char *dir, const char *name, nerve_export_c_info *info);

/* ===================================================================================== */
/* 18. The course's experiments (src/apps/experiment*.c; docs/experiments.md)              */
/* ===================================================================================== */

/* Each experiment trains or probes small networks, reports its figures one line at a time
 * through print (the library never prints) and writes its plots as SVG files into out_dir:
 *   lottery     iterative magnitude pruning of LeNet-300-100 on Fashion-MNIST, the sparse
 *               network rewound to its initialisation against the same mask re-initialised
 *   collapse    neural collapse (NC1 to NC4) per epoch of an MLP trained past zero error
 *   recos       accuracy on the negative images (1 - x) of networks trained on positives,
 *               and the reverse (Fashion-MNIST, the 8 x 8 digits)
 *   optimisers  SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam on the canyon and the
 *               saddle, and a learning-rate sweep
 *   gradients   gradient norms through a deep tanh / sigmoid MLP and through the steps of an
 *               RNN against the largest singular value of its recurrent matrix
 *   bcd         block coordinate descent (Zeng et al. 2019) against SGD on a deep MLP
 *   perceptron  updates of Rosenblatt's rule against the bound beta ||w_o||^2 / alpha^2
 * Figures that a test or a reader looks up are lines "key = value". */
typedef struct nerve_experiment_options {
    const char *out_dir;   /* folder of the plots (NULL: the current folder; must exist) */
    const char *data_dir;  /* Fashion-MNIST's four IDX files (NULL: /usr/share/datasets/fashion-mnist) */
    const char *digits;    /* the 8 x 8 digits CSV, gzip-compressed or not (NULL: python3-sklearn's
                              digits.csv.gz) */
    int quick;             /* tiny sizes that run in seconds (tests); the figures then prove
                              nothing */
    int epochs;            /* training epochs where an experiment trains (0: its own) */
    int train;             /* training samples (0: its own) */
    uint64_t seed;         /* (default 1) */
    void (*print)(void *user, const char *line); /* one line of figures (no newline) */
    void *user;
} nerve_experiment_options;
void nerve_experiment_defaults(nerve_experiment_options *o);
/* The i-th experiment's name and one-line summary (NULL past the last). */
const char *nerve_experiment_name(int i);
const char *nerve_experiment_summary(int i);
/* Runs the experiment `name` (an unknown name is NERVE_ERR_ARG naming the known ones). */
int nerve_experiment_run(const char *name, const nerve_experiment_options *o);

#ifdef __cplusplus
}
#endif
#endif /* NERVE_H */
