/* Graphs: nodes, compilation (shape inference and memory plan), forward and backward.
 *
 * Nodes are appended in creation order and may only refer to earlier nodes, so creation
 * order is a topological order: forward walks it up, backward walks it down. */
#include "graph.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

nerve_graph *nerve_graph_create(void)
{
    nerve_graph *g = nerve_xcalloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->training = 1;
    g->failed_node = -1;
    nerve_rng_seed(&g->rng, 0x6e65727665ull);
    return g;
}

/* Transient scratch is shared in graphs compiled for batches of more than one sample. At
 * batch 1 (latency) each node keeps its own: its per-thread slices then stay in the cache
 * of the thread that writes them, where a shared buffer moves them between the cores at
 * every operator (ResNet-18 at 224x224, batch 1, 2 threads: 13.2-13.4 ms private, 14.1-14.4
 * ms shared); the memory saved matters at training batches. */
static int scratch_is_shared(const nerve_graph *g, const node *n)
{
    return g->max_batch > 1 && n->kind == NERVE_NODE_OP && (n->flags & OP_SCRATCH_TRANSIENT);
}

static void node_release(const nerve_graph *g, node *n)
{
    if (n->owns_value)
        nerve_xfree_aligned(n->value);
    if (n->owns_grad)
        nerve_xfree_aligned(n->grad);
    if (!scratch_is_shared(g, n))
        nerve_xfree_aligned(n->scratch);
    n->value = n->grad = n->scratch = NULL;
}

void nerve_graph_free(nerve_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        node_release(g, &g->nodes[i]);
        if (g->nodes[i].op_data_free)
            g->nodes[i].op_data_free(g->nodes[i].op_data);
    }
    for (int i = 0; i < g->n_grad_pool; i++)
        nerve_xfree_aligned(g->grad_pool[i]);
    nerve_xfree(g->grad_pool);
    nerve_xfree_aligned(g->workspace);
    nerve_xfree(g->nodes);
    nerve_xfree(g->mark);
    nerve_xfree(g->zeroed);
    nerve_xfree(g->last_reader);
    nerve_xfree(g->prof);
    nerve_xfree(g);
}

static int check_node(const nerve_graph *g, int id)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if (id < 0 || id >= g->n_nodes)
        return nerve_set_error(NERVE_ERR_ARG, "no node %d in this graph (it has %d)", id, g->n_nodes);
    return NERVE_OK;
}

static int name_taken(const nerve_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return 1;
    return 0;
}

/* Gives the node `base` as its name, or base.1, base.2, ... if taken. */
static void assign_name(nerve_graph *g, node *n, const char *base)
{
    if (!name_taken(g, base)) {
        snprintf(n->name, sizeof n->name, "%s", base);
        return;
    }
    int slot = 0; /* the base's remembered start; a full table reuses the last slot */
    while (slot < g->n_name_next && strcmp(g->name_next[slot].base, base))
        slot++;
    if (slot == g->n_name_next) {
        if (g->n_name_next < (int)(sizeof g->name_next / sizeof *g->name_next))
            g->n_name_next++;
        slot = g->n_name_next - 1;
        snprintf(g->name_next[slot].base, sizeof g->name_next[slot].base, "%s", base);
        g->name_next[slot].next = 1;
    }
    /* names that do not fit the table start at 1, as before */
    int fits = strlen(base) < sizeof g->name_next[slot].base;
    for (int k = fits ? g->name_next[slot].next : 1;; k++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.50s.%d", base, k);
        if (!name_taken(g, buf)) {
            snprintf(n->name, sizeof n->name, "%s", buf);
            if (fits)
                g->name_next[slot].next = k + 1;
            return;
        }
    }
}

static node *new_node(nerve_graph *g, int kind, const char *name)
{
    if (g->compiled) {
        nerve_set_error(NERVE_ERR_STATE, "graph is compiled: no nodes can be added");
        return NULL;
    }
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
        node *p = nerve_xrealloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p)
            return NULL;
        g->nodes = p;
        g->cap_nodes = cap;
    }
    node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->id = g->n_nodes;
    n->grad_root = n->id;
    n->kind = kind;
    g->n_nodes++;
    assign_name(g, n, name && *name ? name : "node");
    return n;
}

/* A leaf's shape: sizes of at least 1 (an input's batch dimension may be 0: compile sets
 * it); an input's sample (dims 1..) within NERVE_MAX_SAMPLE_VALUES, a parameter or state
 * within NERVE_MAX_LAYER_VALUES (docs/cfg.md, "Limits"). */
static int check_dims(const char *name, int ndim, const int *dims, int is_input)
{
    if (ndim < 0 || ndim > NERVE_MAX_DIMS)
        return nerve_set_error(NERVE_ERR_SHAPE, "'%s': rank %d outside 0..%d", name, ndim,
                               NERVE_MAX_DIMS);
    if (!dims && ndim > 0)
        return nerve_set_error(NERVE_ERR_ARG, "'%s': no dimensions", name);
    for (int i = 0; i < ndim; i++)
        if (dims[i] <= 0 && !(i == 0 && is_input && dims[i] == 0))
            return nerve_set_error(NERVE_ERR_SHAPE, "'%s': dimension %d is %d; must be positive",
                                   name, i, dims[i]);
    char shape[128];
    if (is_input && shape_values64(ndim - 1, dims + 1) > NERVE_MAX_SAMPLE_VALUES)
        return nerve_set_error(NERVE_ERR_SHAPE, "'%s': one sample %s holds more than %lld values, "
                               "the limit per sample (docs/cfg.md, Limits)", name,
                               nerve_shape_str(ndim - 1, dims + 1, shape, sizeof shape),
                               NERVE_MAX_SAMPLE_VALUES);
    if (!is_input && shape_values64(ndim, dims) > NERVE_MAX_LAYER_VALUES)
        return nerve_set_error(NERVE_ERR_SHAPE, "'%s': the tensor %s holds more than %lld values, "
                               "the limit per layer (docs/cfg.md, Limits)", name,
                               nerve_shape_str(ndim, dims, shape, sizeof shape),
                               NERVE_MAX_LAYER_VALUES);
    return NERVE_OK;
}

int nerve_input(nerve_graph *g, const char *name, int ndim, const int *dims)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if (ndim < 1)
        return nerve_set_error(NERVE_ERR_SHAPE, "an input needs at least the batch dimension");
    int st = check_dims(name ? name : "input", ndim, dims, 1);
    if (st)
        return st;
    node *n = new_node(g, NERVE_NODE_INPUT, name ? name : "input");
    if (!n)
        return nerve_last_status();
    n->ndim = ndim;
    memcpy(n->dims, dims, (size_t)ndim * sizeof(int));
    n->dims[0] = 1;
    return n->id;
}

static int new_leaf_with_data(nerve_graph *g, int kind, const char *name, int ndim, const int *dims)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    int st = check_dims(name, ndim, dims, 0);
    if (st)
        return st;
    node *n = new_node(g, kind, name);
    if (!n)
        return nerve_last_status();
    n->ndim = ndim;
    memcpy(n->dims, dims, (size_t)ndim * sizeof(int));
    n->capacity = node_numel(n);
    n->value = nerve_xalloc_floats(n->capacity);
    n->owns_value = 1;
    if (!n->value) {
        g->n_nodes--;
        return NERVE_ERR_NOMEM;
    }
    if (kind == NERVE_NODE_PARAM) {
        n->grad = nerve_xalloc_floats(n->capacity);
        if (!n->grad) {
            nerve_xfree_aligned(n->value);
            g->n_nodes--;
            return NERVE_ERR_NOMEM;
        }
        n->owns_grad = 1;
        n->decay = ndim > 1;
        n->needs_grad = 1;
    }
    return n->id;
}

int nerve_param(nerve_graph *g, const char *name, int ndim, const int *dims)
{
    return new_leaf_with_data(g, NERVE_NODE_PARAM, name ? name : "param", ndim, dims);
}

int nerve_state(nerve_graph *g, const char *name, int ndim, const int *dims)
{
    return new_leaf_with_data(g, NERVE_NODE_STATE, name ? name : "state", ndim, dims);
}

int nerve_param_set_decay(nerve_graph *g, int id, int decay)
{
    int st = check_node(g, id);
    if (st)
        return st;
    if (g->nodes[id].kind != NERVE_NODE_PARAM)
        return nerve_set_error(NERVE_ERR_ARG, "node '%s' is not a parameter", g->nodes[id].name);
    g->nodes[id].decay = decay != 0;
    return NERVE_OK;
}

/* needs_grad flows forward from trainable params and grad-requesting inputs. */
static void propagate_needs_grad(nerve_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind == NERVE_NODE_PARAM)
            n->needs_grad = !n->frozen;
        else if (n->kind == NERVE_NODE_INPUT)
            n->needs_grad = n->requires_grad;
        else if (n->kind == NERVE_NODE_STATE)
            n->needs_grad = 0;
        else {
            n->needs_grad = 0;
            if (n->op->backward)
                for (int k = 0; k < n->n_in; k++)
                    n->needs_grad |= g->nodes[n->in[k]].needs_grad;
        }
    }
}

int nerve_param_set_frozen(nerve_graph *g, int id, int frozen)
{
    int st = check_node(g, id);
    if (st)
        return st;
    if (g->nodes[id].kind != NERVE_NODE_PARAM)
        return nerve_set_error(NERVE_ERR_ARG, "node '%s' is not a parameter", g->nodes[id].name);
    g->nodes[id].frozen = frozen != 0;
    propagate_needs_grad(g);
    return NERVE_OK;
}

int nerve_input_set_requires_grad(nerve_graph *g, int id, int on)
{
    int st = check_node(g, id);
    if (st)
        return st;
    if (g->nodes[id].kind != NERVE_NODE_INPUT)
        return nerve_set_error(NERVE_ERR_ARG, "node '%s' is not an input", g->nodes[id].name);
    g->nodes[id].requires_grad = on != 0;
    propagate_needs_grad(g);
    return NERVE_OK;
}

int nerve_input_requires_grad(const nerve_graph *g, int id)
{
    return g && id >= 0 && id < g->n_nodes && g->nodes[id].kind == NERVE_NODE_INPUT && g->nodes[id].requires_grad;
}

int nerve_node_count(const nerve_graph *g) { return g ? g->n_nodes : 0; }

int nerve_node_kind(const nerve_graph *g, int id)
{
    int st = check_node(g, id);
    return st ? st : g->nodes[id].kind;
}

const char *nerve_node_name(const nerve_graph *g, int id)
{
    return check_node(g, id) ? NULL : g->nodes[id].name;
}

const char *nerve_node_op(const nerve_graph *g, int id)
{
    if (check_node(g, id))
        return NULL;
    return g->nodes[id].op ? g->nodes[id].op->name : "";
}

int nerve_node_find(const nerve_graph *g, const char *name)
{
    if (!g || !name)
        return -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

int nerve_node_set_name(nerve_graph *g, int id, const char *name)
{
    int st = check_node(g, id);
    if (st)
        return st;
    if (!name || !*name || strlen(name) >= sizeof g->nodes[id].name)
        return nerve_set_error(NERVE_ERR_ARG, "node names must have 1..%zu characters",
                               sizeof g->nodes[id].name - 1);
    int other = nerve_node_find(g, name);
    if (other >= 0 && other != id)
        return nerve_set_error(NERVE_ERR_ARG, "a node named '%s' already exists", name);
    snprintf(g->nodes[id].name, sizeof g->nodes[id].name, "%s", name);
    return NERVE_OK;
}

int nerve_node_shape(const nerve_graph *g, int id, int *ndim, int *dims)
{
    int st = check_node(g, id);
    if (st)
        return st;
    const node *n = &g->nodes[id];
    if (ndim)
        *ndim = n->ndim;
    if (dims)
        memcpy(dims, n->dims, (size_t)n->ndim * sizeof(int));
    return NERVE_OK;
}

int nerve_node_num_inputs(const nerve_graph *g, int id)
{
    int st = check_node(g, id);
    return st ? st : g->nodes[id].n_in;
}

int nerve_node_input(const nerve_graph *g, int id, int i)
{
    int st = check_node(g, id);
    if (st)
        return st;
    if (i < 0 || i >= g->nodes[id].n_in)
        return nerve_set_error(NERVE_ERR_ARG, "node '%s' has no input %d", g->nodes[id].name, i);
    return g->nodes[id].in[i];
}

static int infer_node(nerve_graph *g, node *n);

int graph_add_op(nerve_graph *g, const op_def *op, int n_in, const int *in, const node_attr *attr,
                 const char *name_hint)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if (n_in < 0 || n_in > NERVE_MAX_INPUTS)
        return nerve_set_error(NERVE_ERR_ARG, "%s: %d inputs (at most %d)", op->name, n_in,
                               NERVE_MAX_INPUTS);
    for (int k = 0; k < n_in; k++)
        if (in[k] < 0 || in[k] >= g->n_nodes)
            return nerve_set_error(NERVE_ERR_ARG, "%s: input %d is node %d, which does not exist",
                                   op->name, k, in[k]);
    node *n = new_node(g, NERVE_NODE_OP, name_hint ? name_hint : op->name);
    if (!n)
        return nerve_last_status();
    n->op = op;
    n->flags = op->flags;
    n->n_in = n_in;
    memcpy(n->in, in, (size_t)n_in * sizeof(int));
    if (attr)
        n->attr = *attr;
    /* Infer now with batch 1 so that builders can report shape errors immediately. */
    int st = infer_node(g, n);
    if (st) {
        g->n_nodes--;
        return st;
    }
    for (int k = 0; k < n_in; k++)
        n->needs_grad |= op->backward && g->nodes[in[k]].needs_grad;
    return n->id;
}

int op_shape_error(const node *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nerve_set_error(NERVE_ERR_SHAPE, "%s (node '%s'): %s", n->op ? n->op->name : "leaf",
                           n->name, msg);
}

int64_t size_mul64(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0)
        return 0;
    return a > INT64_MAX / b ? INT64_MAX : a * b;
}

int64_t size_add64(int64_t a, int64_t b)
{
    if (a < 0)
        a = 0;
    if (b < 0)
        b = 0;
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int64_t shape_values64(int ndim, const int *dims)
{
    int64_t v = 1;
    for (int i = 0; i < ndim; i++)
        v = size_mul64(v, dims[i]);
    return v;
}

/* "268435456 (2^28)" for the messages: the limits are powers of two, or one less. */
static const char *limit_str(long long v, char *buf, size_t size)
{
    int e = 0;
    while (e < 62 && (1LL << e) < v)
        e++;
    if ((1LL << e) == v)
        snprintf(buf, size, "%lld (2^%d)", v, e);
    else if ((1LL << e) - 1 == v)
        snprintf(buf, size, "%lld (2^%d - 1)", v, e);
    else
        snprintf(buf, size, "%lld", v);
    return buf;
}

int node_check_size(const node *n, const char *what, int64_t v)
{
    char lim[48];
    if (v < 1)
        return op_shape_error(n, "%s is %lld; every size must be at least 1", what, (long long)v);
    if (v > NERVE_MAX_SAMPLE_VALUES)
        return op_shape_error(n, "%s is %s%lld; the limit is %s values per sample (docs/cfg.md, "
                              "Limits)", what, v == INT64_MAX ? "over " : "",
                              (long long)v, limit_str(NERVE_MAX_SAMPLE_VALUES, lim, sizeof lim));
    return NERVE_OK;
}

/* The limits every node's shape obeys (docs/cfg.md, "Limits"), checked after every infer():
 * sizes of at least 1 (an input's batch dimension may be 0 before compile), one sample
 * (dims 1..) within NERVE_MAX_SAMPLE_VALUES, the whole node within NERVE_MAX_LAYER_VALUES. */
static int check_node_limits(const node *n)
{
    char shape[128], lim[48];
    if (n->ndim < 0 || n->ndim > NERVE_MAX_DIMS)
        return op_shape_error(n, "rank %d outside 0..%d", n->ndim, NERVE_MAX_DIMS);
    for (int i = 0; i < n->ndim; i++)
        if (n->dims[i] < 1)
            return op_shape_error(n, "output dimension %d is %d; every size must be at least 1",
                                  i, n->dims[i]);
    int64_t sample = n->ndim > 0 ? shape_values64(n->ndim - 1, n->dims + 1) : 1;
    int64_t total = shape_values64(n->ndim, n->dims);
    if (sample > NERVE_MAX_SAMPLE_VALUES)
        return op_shape_error(n, "one sample of the output %s holds %s%lld values; the limit is "
                              "%s per sample (docs/cfg.md, Limits)",
                              nerve_shape_str(n->ndim - 1, n->dims + 1, shape, sizeof shape),
                              sample == INT64_MAX ? "over " : "", (long long)sample,
                              limit_str(NERVE_MAX_SAMPLE_VALUES, lim, sizeof lim));
    if (total > NERVE_MAX_LAYER_VALUES)
        return op_shape_error(n, "the output %s holds %s%lld values; the limit is %s per layer "
                              "(docs/cfg.md, Limits): use a smaller batch",
                              nerve_shape_str(n->ndim, n->dims, shape, sizeof shape),
                              total == INT64_MAX ? "over " : "", (long long)total,
                              limit_str(NERVE_MAX_LAYER_VALUES, lim, sizeof lim));
    return NERVE_OK;
}

/* infer() and then the limits. */
static int infer_node(nerve_graph *g, node *n)
{
    int st = n->op->infer(g, n);
    return st ? st : check_node_limits(n);
}

void node_copy_shape(node *n, const node *src)
{
    n->ndim = src->ndim;
    memcpy(n->dims, src->dims, sizeof n->dims);
}

int normalize_axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis >= 0 && axis < ndim) ? axis : -1;
}

/* ---- compile and batch size ---------------------------------------------------------- */

static int infer_all(nerve_graph *g, int batch)
{
    g->failed_node = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        g->failed_node = i;
        if (n->kind == NERVE_NODE_INPUT) {
            n->dims[0] = batch;
            char shape[128];
            if (shape_values64(n->ndim, n->dims) > NERVE_MAX_LAYER_VALUES)
                return nerve_set_error(NERVE_ERR_SHAPE, "input '%s': %s at batch %d holds more "
                                       "than %lld values, the limit per layer (docs/cfg.md, "
                                       "Limits): use a smaller batch", n->name,
                                       nerve_shape_str(n->ndim, n->dims, shape, sizeof shape),
                                       batch, NERVE_MAX_LAYER_VALUES);
        }
        else if (n->kind == NERVE_NODE_OP) {
            int st = infer_node(g, n);
            if (st)
                return st;
        }
    }
    g->failed_node = -1;
    return NERVE_OK;
}

/* ---- the memory plan ---------------------------------------------------------------------
 *
 * Values: every node owns its value buffer, except aliases (input 0's buffers) and nodes
 * that run in place (input 0's value buffer, overwritten by their forward).
 * Gradients: leaves own theirs (optimisers and saliency read them after backward); the
 * gradients of operator nodes come from a pool. Backward walks ids downward, and the
 * gradient of node v is live from the backward of its last consumer (highest id) down to
 * v's own backward: nodes whose live intervals do not overlap share one buffer, which the
 * backward pass zeroes just before its first writer runs. nerve_graph_keep_buffers(g, 1)
 * turns all of this off (a private value and gradient per node). */

void nerve_graph_keep_buffers(nerve_graph *g, int keep)
{
    if (g && !g->compiled)
        g->keep_buffers = keep != 0;
}

/* What needs_grad would be with every parameter trainable and every input asking for a
 * gradient: frozen and requires_grad may change after compile, when nothing may allocate. */
static void potential_grads(const nerve_graph *g, unsigned char *pot)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const node *n = &g->nodes[i];
        pot[i] = n->kind == NERVE_NODE_PARAM || n->kind == NERVE_NODE_INPUT;
        if (n->kind == NERVE_NODE_OP && n->op->backward)
            for (int k = 0; k < n->n_in; k++)
                pot[i] |= pot[n->in[k]];
    }
}

static int is_alias(const node *n)
{
    return n->kind == NERVE_NODE_OP && (n->flags & OP_ALIAS_INPUT);
}

/* uses[i]: how many input slots of operator nodes (aliases included) read node i. */
static void count_uses(const nerve_graph *g, int *uses)
{
    memset(uses, 0, (size_t)g->n_nodes * sizeof *uses);
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            uses[g->nodes[i].in[k]]++;
}

/* An operator may overwrite input 0's value when its backward never reads that value, the
 * input is an operator (not a leaf, not a view of another buffer) whose own backward never
 * reads its output, and nothing else reads the input. */
static int can_run_in_place(const nerve_graph *g, const node *n, const int *uses)
{
    if (g->keep_buffers || n->kind != NERVE_NODE_OP || n->n_in < 1)
        return 0;
    if (!(n->flags & OP_INPLACE))
        return 0;
    const node *x = &g->nodes[n->in[0]];
    return x->kind == NERVE_NODE_OP && !(x->flags & OP_ALIAS_INPUT) &&
           (x->flags & OP_OUTPUT_UNREAD) && uses[x->id] == 1 && node_numel(x) == node_numel(n);
}

/* A ReLU that runs in place over an OP_FUSE_RELU operator is folded into it: the operator
 * writes the ReLU's output and masks the gradient itself, which saves a read and a write
 * of the tensor in each direction (batch norm + ReLU in ResNets). */
static void fuse_relu(nerve_graph *g, node *n)
{
    node *x = &g->nodes[n->in[0]];
    if (!(n->flags & OP_PLAIN_RELU) || !(x->flags & OP_FUSE_RELU) || x->fused_relu)
        return;
    n->fused = 1;
    x->fused_relu = 1;
}

static int plan_values(nerve_graph *g, const int *uses)
{
    g->n_fused = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind == NERVE_NODE_PARAM || n->kind == NERVE_NODE_STATE)
            continue;
        n->capacity = node_numel(n);
        n->fused = n->fused_relu = 0;
        if (is_alias(n) || can_run_in_place(g, n, uses)) {
            n->value = g->nodes[n->in[0]].value;
            n->in_place = !is_alias(n);
            if (n->in_place)
                fuse_relu(g, n);
            g->n_fused += n->fused;
            continue;
        }
        n->value = nerve_xalloc_floats(n->capacity);
        if (!n->value)
            return NERVE_ERR_NOMEM;
        n->owns_value = 1;
    }
    return NERVE_OK;
}

/* Index of the pool buffer for `need` floats among the n_free free ones (sizes in size[]):
 * the smallest that is big enough, else the largest one grown, else a new one. */
static int take_buffer(size_t *size, int *free_ids, int *n_free, int *n_buffers, size_t need)
{
    int best = -1, largest = -1;
    for (int j = 0; j < *n_free; j++) {
        size_t sz = size[free_ids[j]];
        if (sz >= need && (best < 0 || sz < size[free_ids[best]]))
            best = j;
        if (largest < 0 || sz > size[free_ids[largest]])
            largest = j;
    }
    int j = best >= 0 ? best : largest;
    if (j < 0) {
        size[*n_buffers] = need;
        return (*n_buffers)++;
    }
    int id = free_ids[j];
    free_ids[j] = free_ids[--*n_free];
    if (size[id] < need)
        size[id] = need;
    return id;
}

/* The greedy interval assignment over per-node work arrays w (4 * n ints) and sizes. */
static int assign_grad_buffers(nerve_graph *g, const unsigned char *pooled, int *w, size_t *size)
{
    int n = g->n_nodes, *last_use = w, *head = w + n, *next = w + 2 * n, *free_ids = w + 3 * n;
    int *buffer = last_use; /* reused once a node's interval has started */
    for (int i = 0; i < n; i++) {
        last_use[i] = i;
        head[i] = -1;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int r = g->nodes[g->nodes[i].in[k]].grad_root;
            if (last_use[r] < i)
                last_use[r] = i;
        }
    for (int i = 0; i < n; i++)
        if (pooled[i]) {
            next[i] = head[last_use[i]];
            head[last_use[i]] = i;
        }
    int n_free = 0, n_buffers = 0;
    for (int t = n - 1; t >= 0; t--) {
        for (int v = head[t]; v >= 0; v = next[v])
            buffer[v] = take_buffer(size, free_ids, &n_free, &n_buffers, g->nodes[v].capacity);
        if (pooled[t])
            free_ids[n_free++] = buffer[t];
    }
    g->grad_pool = nerve_xcalloc((size_t)(n_buffers ? n_buffers : 1), sizeof *g->grad_pool);
    if (!g->grad_pool)
        return NERVE_ERR_NOMEM;
    for (int b = 0; b < n_buffers; b++) {
        g->grad_pool[b] = nerve_xalloc_floats(size[b]);
        if (!g->grad_pool[b])
            return NERVE_ERR_NOMEM;
        g->n_grad_pool++;
    }
    for (int i = 0; i < n; i++)
        if (pooled[i])
            g->nodes[i].grad = g->grad_pool[buffer[i]];
    return NERVE_OK;
}

/* Gradient buffers: private for leaves (and for every node with keep_buffers), pooled for
 * operators that can carry a gradient, shared with the source for aliases. */
static int plan_grads(nerve_graph *g, const unsigned char *pot, unsigned char *pooled)
{
    g->shared_grads = !g->keep_buffers;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        pooled[i] = 0;
        if (is_alias(n) || n->fused) {
            n->grad_root = g->nodes[n->in[0]].grad_root;
            continue;
        }
        int private_grad = n->kind == NERVE_NODE_INPUT || (n->kind == NERVE_NODE_OP && !g->shared_grads);
        pooled[i] = n->kind == NERVE_NODE_OP && g->shared_grads && pot[i];
        if (private_grad) {
            n->grad = nerve_xalloc_floats(n->capacity);
            if (!n->grad)
                return NERVE_ERR_NOMEM;
            n->owns_grad = 1;
        }
    }
    int st = NERVE_OK;
    if (g->shared_grads) {
        int *w = nerve_xmalloc((size_t)g->n_nodes * 4 * sizeof *w);
        size_t *size = nerve_xmalloc((size_t)g->n_nodes * sizeof *size);
        st = w && size ? assign_grad_buffers(g, pooled, w, size) : NERVE_ERR_NOMEM;
        nerve_xfree(w);
        nerve_xfree(size);
    }
    for (int i = 0; i < g->n_nodes; i++) /* aliases follow their root, which comes first */
        if (is_alias(&g->nodes[i]) || g->nodes[i].fused)
            g->nodes[i].grad = g->nodes[g->nodes[i].grad_root].grad;
    return st;
}

/* Private scratch for the nodes that keep state in it from forward to backward (masks,
 * statistics, argmax indices); one shared workspace, as large as the largest need, for
 * the nodes whose scratch lives only during a call (the convolutions' columns, Winograd
 * transforms and per-thread partial sums): ops run one at a time. ResNet-20 at batch 128:
 * 55 MB of convolution workspaces become one of 3.8 MB. */
static int alloc_scratch(nerve_graph *g)
{
    size_t shared = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind != NERVE_NODE_OP || !n->op->scratch)
            continue;
        n->scratch_n = n->op->scratch(g, n);
        if (!n->scratch_n)
            continue;
        if (scratch_is_shared(g, n)) {
            shared = n->scratch_n > shared ? n->scratch_n : shared;
            continue;
        }
        n->scratch = nerve_xalloc_floats(n->scratch_n);
        if (!n->scratch)
            return NERVE_ERR_NOMEM;
    }
    if (shared && !(g->workspace = nerve_xalloc_floats(shared)))
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < g->n_nodes; i++)
        if (scratch_is_shared(g, &g->nodes[i]) && g->nodes[i].scratch_n)
            g->nodes[i].scratch = g->workspace;
    return NERVE_OK;
}

static int plan_memory(nerve_graph *g)
{
    size_t n = (size_t)g->n_nodes + 1;
    int *uses = nerve_xmalloc(n * sizeof *uses);
    unsigned char *pot = nerve_xmalloc(n), *pooled = nerve_xmalloc(n);
    int st = uses && pot && pooled ? NERVE_OK : NERVE_ERR_NOMEM;
    if (!st) {
        count_uses(g, uses);
        potential_grads(g, pot);
        st = plan_values(g, uses);
    }
    if (!st)
        st = plan_grads(g, pot, pooled);
    if (!st)
        st = alloc_scratch(g);
    nerve_xfree(uses);
    nerve_xfree(pot);
    nerve_xfree(pooled);
    return st;
}

int nerve_graph_compile(nerve_graph *g, int max_batch)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if (g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "graph is already compiled");
    if (max_batch < 1)
        return nerve_set_error(NERVE_ERR_ARG, "batch size %d; must be at least 1", max_batch);
    int st = infer_all(g, max_batch);
    if (st)
        return st;
    g->mark = nerve_xcalloc((size_t)g->n_nodes + 1, 1);
    g->zeroed = nerve_xcalloc((size_t)g->n_nodes + 1, 1);
    if (!g->mark || !g->zeroed)
        return NERVE_ERR_NOMEM;
    propagate_needs_grad(g);
    g->max_batch = max_batch; /* the plan depends on it */
    st = plan_memory(g);
    if (st)
        return st;
    g->max_batch = g->batch = max_batch;
    g->compiled = 1;
    return NERVE_OK;
}

int nerve_graph_is_compiled(const nerve_graph *g) { return g && g->compiled; }

int nerve_graph_set_batch(nerve_graph *g, int n)
{
    if (!g || !g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "set_batch needs a compiled graph");
    if (n < 1 || n > g->max_batch)
        return nerve_set_error(NERVE_ERR_ARG, "batch %d outside 1..%d (the compiled maximum)", n,
                               g->max_batch);
    if (n == g->batch)
        return NERVE_OK;
    int st = infer_all(g, n);
    if (st)
        return st;
    g->batch = n;
    return NERVE_OK;
}

int nerve_graph_batch(const nerve_graph *g) { return g ? g->batch : 0; }
void nerve_graph_set_training(nerve_graph *g, int training) { if (g) g->training = training != 0; }
int nerve_graph_training(const nerve_graph *g) { return g && g->training; }
nerve_rng *nerve_graph_rng(nerve_graph *g) { return g ? &g->rng : NULL; }

nerve_tensor nerve_value(nerve_graph *g, int id)
{
    nerve_tensor t = {0};
    if (check_node(g, id))
        return t;
    node *n = &g->nodes[id];
    t.ndim = n->ndim;
    memcpy(t.dims, n->dims, sizeof t.dims);
    t.data = n->value;
    if (!t.data)
        nerve_set_error(NERVE_ERR_STATE, "node '%s' has no buffer before the graph is compiled", n->name);
    return t;
}

nerve_tensor nerve_grad(nerve_graph *g, int id)
{
    nerve_tensor t = {0};
    if (check_node(g, id))
        return t;
    node *n = &g->nodes[id];
    t.ndim = n->ndim;
    memcpy(t.dims, n->dims, sizeof t.dims);
    t.data = n->needs_grad ? n->grad : NULL;
    if (t.data && g->shared_grads && g->nodes[n->grad_root].kind == NERVE_NODE_OP) {
        t.data = NULL; /* a pooled buffer: another node's gradient by the end of backward */
        nerve_set_error(NERVE_ERR_STATE, "the gradient of operator node '%s' is not kept after "
                        "backward; call nerve_graph_keep_buffers(g, 1) before compiling", n->name);
    }
    return t;
}

/* ---- running --------------------------------------------------------------------------- */

/* Marks target and its ancestors in g->mark (all nodes if target < 0). */
static void mark_ancestors(nerve_graph *g, int target)
{
    if (target < 0) {
        memset(g->mark, 1, (size_t)g->n_nodes);
        return;
    }
    memset(g->mark, 0, (size_t)g->n_nodes);
    g->mark[target] = 1;
    for (int i = target; i >= 0; i--) {
        if (!g->mark[i])
            continue;
        node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            g->mark[n->in[k]] = 1;
    }
}

/* Wall-clock seconds for the per-node profile. */
static double prof_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int nerve_forward(nerve_graph *g, int target)
{
    if (!g || !g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "forward needs a compiled graph");
    if (target >= g->n_nodes)
        return nerve_set_error(NERVE_ERR_ARG, "no node %d", target);
    mark_ancestors(g, target);
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (g->mark[i] && n->kind == NERVE_NODE_OP && !(n->flags & OP_ALIAS_INPUT) &&
            !n->fused && !(n->skip_with && g->mark[n->skip_with - 1])) {
            if (!g->prof || i >= g->prof_cap) {
                n->op->forward(g, n);
                continue;
            }
            double t0 = prof_now();
            n->op->forward(g, n);
            g->prof[2 * i] += prof_now() - t0;
        }
    }
    return NERVE_OK;
}

int graph_sole_reader(const nerve_graph *g, int id)
{
    int reader = -1;
    for (int i = id + 1; i < g->n_nodes; i++) {
        const node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == id) {
                if (reader >= 0 || k != 0)
                    return -1;
                reader = i;
            }
    }
    return reader;
}

int nerve_graph_profile(nerve_graph *g, int on)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "profile: null graph");
    nerve_xfree(g->prof);
    g->prof = NULL;
    g->prof_cap = 0;
    if (!on)
        return NERVE_OK;
    g->prof = nerve_xcalloc((size_t)g->n_nodes * 2 + 2, sizeof *g->prof);
    if (!g->prof)
        return nerve_set_error(NERVE_ERR_NOMEM, "profile: out of memory");
    g->prof_cap = g->n_nodes;
    return NERVE_OK;
}

int nerve_graph_profile_node(const nerve_graph *g, int id, double *forward_s, double *backward_s)
{
    int st = check_node(g, id);
    if (st)
        return st;
    if (!g->prof || id >= g->prof_cap)
        return nerve_set_error(NERVE_ERR_STATE, "profile: timing is off (nerve_graph_profile) or "
                               "node %d came after it was switched on", id);
    if (forward_s)
        *forward_s = g->prof[2 * id];
    if (backward_s)
        *backward_s = g->prof[2 * id + 1];
    return NERVE_OK;
}

/* The first element of v[0..n) that is NaN or infinite, or n. Unrolled in eight lanes
 * that combine with | (a vectorised OR of "not finite") so the scan runs at memory speed. */
static size_t first_non_finite(const float *v, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        int bad = 0;
        for (size_t k = 0; k < 64; k++)
            bad |= !(v[i + k] - v[i + k] == 0.0f); /* x - x is NaN for NaN and inf */
        if (bad)
            break;
    }
    for (; i < n; i++)
        if (!isfinite(v[i]))
            return i;
    return n;
}

int nerve_graph_check_finite(nerve_graph *g, int target)
{
    if (!g || !g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "check_finite needs a compiled graph");
    if (target >= g->n_nodes)
        return nerve_set_error(NERVE_ERR_ARG, "no node %d", target);
    mark_ancestors(g, target);
    /* zeroed[] is free between backward passes (each starts by resetting it): here it marks
     * the nodes whose value buffer a later node overwrote in place (or fused into), whose
     * contents are that node's output, checked under its name */
    memset(g->zeroed, 0, (size_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const node *n = &g->nodes[i];
        if (g->mark[i] && n->kind == NERVE_NODE_OP && (n->in_place || n->fused))
            g->zeroed[n->in[0]] = 1;
    }
    int st = NERVE_OK;
    for (int i = 0; i < g->n_nodes && st == NERVE_OK; i++) {
        const node *n = &g->nodes[i];
        int leaf = n->kind != NERVE_NODE_OP;
        if ((!leaf && !g->mark[i]) || g->zeroed[i] || !n->value ||
            (!leaf && (n->op->flags & OP_ALIAS_INPUT)))
            continue;
        size_t count = node_numel(n), at = first_non_finite(n->value, count);
        if (at == count)
            continue;
        char shape[96];
        static const char *const kinds[] = {"input", "parameter", "state"};
        const char *what = leaf && n->kind >= NERVE_NODE_INPUT && n->kind <= NERVE_NODE_STATE
                               ? kinds[n->kind - NERVE_NODE_INPUT]
                               : n->op ? n->op->name : "node";
        st = nerve_set_error(NERVE_ERR_NUMERIC, "%s '%s' %s holds %s at element %zu (the first "
                             "non-finite value in creation order)", what, n->name,
                             nerve_shape_str(n->ndim, n->dims, shape, sizeof shape),
                             isnan(n->value[at]) ? "NaN" : "infinity", at);
    }
    memset(g->zeroed, 0, (size_t)g->n_nodes);
    return st;
}

static void zero_range(void *ctx, size_t begin, size_t end)
{
    memset((float *)ctx + begin, 0, (end - begin) * sizeof(float));
}

/* Large buffers are zeroed by every thread (a serial memset leaves the others idle). */
enum { ZERO_GRAIN = 1 << 16 };

/* Zeroes a pooled gradient before its first writer of this pass (once: a node may read the
 * same input twice). Leaves were zeroed at the start of the pass. */
static void zero_grad_once(nerve_graph *g, node *n)
{
    node *r = &g->nodes[n->grad_root];
    if (r->kind != NERVE_NODE_OP || g->zeroed[r->id] || !r->grad)
        return;
    kern_parallel_for(node_numel(r), ZERO_GRAIN, zero_range, r->grad);
    g->zeroed[r->id] = 1;
}

/* Zeroes every gradient a backward pass accumulates into from scratch: leaves always, the
 * operators' private buffers too when the plan keeps them (so they read as zero, not stale,
 * where nothing flows). Pooled buffers wait for zero_grad_once. */
static void zero_grads_at_start(nerve_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->needs_grad && n->owns_grad)
            kern_parallel_for(node_numel(n), ZERO_GRAIN, zero_range, n->grad);
    }
    memset(g->zeroed, g->shared_grads ? 0 : 1, (size_t)g->n_nodes);
}

/* Input i's gradient is a pooled buffer not yet touched in this pass, that input i covers
 * whole and that no other input of n shares (an overwrite would drop the other's share). */
static int input_grad_fresh(const nerve_graph *g, const node *n, int i)
{
    const node *x = &g->nodes[n->in[i]], *r = &g->nodes[x->grad_root];
    if (!x->needs_grad || r->kind != NERVE_NODE_OP || !r->grad || g->zeroed[r->id] ||
        node_numel(x) != node_numel(r))
        return 0;
    for (int k = 0; k < n->n_in; k++)
        if (k != i && g->nodes[n->in[k]].grad_root == r->id)
            return 0;
    return 1;
}

int node_input_grad_fresh(const nerve_graph *g, const node *n, int i)
{
    return (n->flags & OP_GRAD_OVERWRITE) && input_grad_fresh(g, n, i);
}

void node_zero_input_grad(nerve_graph *g, const node *n, int i)
{
    node *x = &g->nodes[n->in[i]];
    if (x->grad)
        kern_parallel_for(node_numel(x), ZERO_GRAIN, zero_range, x->grad);
}

/* An OP_GRAD_OVERWRITE operator writes its fresh input gradients whole: those are not
 * zeroed first, and count as written once its backward has run. */
static void run_backward(nerve_graph *g, node *n)
{
    int fresh[NERVE_MAX_INPUTS] = {0};
    int overwrite = (n->flags & OP_GRAD_OVERWRITE) != 0;
    zero_grad_once(g, n); /* reached by no consumer: its gradient is zero */
    for (int k = 0; k < n->n_in; k++) {
        if (!g->nodes[n->in[k]].needs_grad)
            continue;
        fresh[k] = overwrite && input_grad_fresh(g, n, k);
        if (!fresh[k])
            zero_grad_once(g, &g->nodes[n->in[k]]);
    }
    if (g->prof && n->id < g->prof_cap) {
        double t0 = prof_now();
        n->op->backward(g, n);
        g->prof[2 * n->id + 1] += prof_now() - t0;
    } else {
        n->op->backward(g, n);
    }
    for (int k = 0; k < n->n_in; k++)
        if (fresh[k])
            g->zeroed[g->nodes[n->in[k]].grad_root] = 1;
}

static int runs_backward(const nerve_graph *g, const node *n)
{
    return g->mark[n->id] && n->kind == NERVE_NODE_OP && n->needs_grad && n->op->backward &&
           !(n->flags & OP_ALIAS_INPUT) && !n->fused;
}

/* last[p], for every trainable parameter p: the lowest id among the nodes whose backward
 * adds into p's gradient in this pass (after mark_ancestors), else -1; other nodes -1. */
static void find_last_readers(const nerve_graph *g, int loss, int *last)
{
    for (int i = 0; i < g->n_nodes; i++)
        last[i] = -1;
    for (int i = loss; i >= 0; i--) {
        const node *n = &g->nodes[i];
        if (!runs_backward(g, n))
            continue;
        for (int k = 0; k < n->n_in; k++) {
            const node *r = &g->nodes[g->nodes[n->in[k]].grad_root];
            if (r->kind == NERVE_NODE_PARAM && r->needs_grad)
                last[r->id] = i;
        }
    }
}

/* The hook for the parameters whose last reader is n (each once: last[] is cleared). */
static void report_ready(nerve_graph *g, const node *n)
{
    for (int k = 0; k < n->n_in; k++) {
        int r = g->nodes[n->in[k]].grad_root;
        if (g->last_reader[r] == n->id) {
            g->last_reader[r] = -1;
            g->grad_hook(g->grad_user, r);
        }
    }
}

/* Parameters nobody on the path reads (zero gradients), last, in descending id order. */
static int unread_param(const nerve_graph *g, int i, const int *last)
{
    const node *n = &g->nodes[i];
    return n->kind == NERVE_NODE_PARAM && n->needs_grad && last[i] < 0;
}

int nerve_graph_set_grad_hook(nerve_graph *g, void (*fn)(void *user, int param), void *user)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if (fn && g->last_reader_cap < g->n_nodes) {
        int *p = nerve_xrealloc(g->last_reader, (size_t)g->n_nodes * sizeof(int));
        if (!p)
            return NERVE_ERR_NOMEM;
        g->last_reader = p;
        g->last_reader_cap = g->n_nodes;
    }
    g->grad_hook = fn;
    g->grad_user = user;
    return NERVE_OK;
}

void nerve_graph_set_stat_reduce(nerve_graph *g, int (*fn)(void *user, double *buf, int n, int backward),
                                 void *user)
{
    if (!g)
        return;
    g->stat_reduce = fn;
    g->stat_user = user;
    g->stat_status = 0;
}

int nerve_graph_stat_status(nerve_graph *g)
{
    int st = g ? g->stat_status : 0;
    if (g)
        g->stat_status = 0;
    return st;
}

int graph_stat_reduce(nerve_graph *g, double *buf, int n, int backward)
{
    if (!g->stat_reduce)
        return 0;
    int st = g->stat_reduce(g->stat_user, buf, n, backward);
    if (st && !g->stat_status)
        g->stat_status = st;
    return 1;
}

int nerve_graph_grad_order(nerve_graph *g, int loss, int *out, int cap)
{
    int st = check_node(g, loss);
    if (st)
        return st;
    if (!g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "grad_order needs a compiled graph");
    int *last = nerve_xmalloc((size_t)g->n_nodes * sizeof(int));
    if (!last)
        return NERVE_ERR_NOMEM;
    propagate_needs_grad(g);
    mark_ancestors(g, loss);
    find_last_readers(g, loss, last);
    int count = 0;
    for (int i = loss; i >= 0; i--) {
        const node *n = &g->nodes[i];
        if (!runs_backward(g, n))
            continue;
        for (int k = 0; k < n->n_in; k++) {
            int r = g->nodes[n->in[k]].grad_root;
            if (last[r] == i) {
                last[r] = -1;
                if (out && count < cap)
                    out[count] = r;
                count++;
            }
        }
    }
    find_last_readers(g, loss, last);
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (unread_param(g, i, last)) {
            if (out && count < cap)
                out[count] = i;
            count++;
        }
    nerve_xfree(last);
    return count;
}

int nerve_graph_set_relu_backward(nerve_graph *g, nerve_relu_backward mode)
{
    if (!g)
        return nerve_set_error(NERVE_ERR_ARG, "null graph");
    if ((int)mode < NERVE_RELU_BACKPROP || (int)mode > NERVE_RELU_GUIDED)
        return nerve_set_error(NERVE_ERR_ARG, "relu_backward: unknown mode %d", (int)mode);
    g->relu_backward = (int)mode;
    return NERVE_OK;
}

/* Parameters leave the pass (INPUTS_ONLY): needs_grad as if every one were frozen. */
static void exclude_params(nerve_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        if (n->kind == NERVE_NODE_PARAM)
            n->needs_grad = 0;
        else if (n->kind == NERVE_NODE_OP) {
            n->needs_grad = 0;
            if (n->op->backward)
                for (int k = 0; k < n->n_in; k++)
                    n->needs_grad |= g->nodes[n->in[k]].needs_grad;
        }
    }
}

/* The pass shared by nerve_backward and nerve_backward_seeded: seeds node `from` with
 * seed[0..numel) (NULL: ones) and walks down. The grad hook runs when parameters take part. */
static int backward_pass(nerve_graph *g, int from, const float *seed, int flags)
{
    int st = check_node(g, from);
    if (st)
        return st;
    if (!g->compiled || g->n_nodes < 1)
        return nerve_set_error(NERVE_ERR_STATE, "backward needs a compiled graph");
    if (g->relu_backward != NERVE_RELU_BACKPROP && g->n_fused)
        return nerve_set_error(NERVE_ERR_STATE, "backward: a deconvnet or guided ReLU backward needs every "
                               "ReLU as its own node, but the memory plan folded %d into batch norms; call "
                               "nerve_graph_keep_buffers(g, 1) before compiling", g->n_fused);
    int params = !(flags & NERVE_BACKWARD_INPUTS_ONLY);
    if (params && g->grad_hook && g->last_reader_cap < g->n_nodes)
        return nerve_set_error(NERVE_ERR_STATE, "backward: nodes were added after the grad hook was set; set "
                               "it again");
    int hook = params && g->grad_hook;
    if (!params)
        exclude_params(g);
    node *l = &g->nodes[from];
    zero_grads_at_start(g);
    if (!l->needs_grad) { /* nothing trainable upstream: every gradient is zero */
        for (int i = g->n_nodes - 1; hook && i >= 0; i--)
            if (g->nodes[i].kind == NERVE_NODE_PARAM && g->nodes[i].needs_grad)
                g->grad_hook(g->grad_user, i);
        if (!params)
            propagate_needs_grad(g);
        return NERVE_OK;
    }
    mark_ancestors(g, from);
    if (hook)
        find_last_readers(g, from, g->last_reader);
    zero_grad_once(g, l);
    size_t count = node_numel(l);
    for (size_t k = 0; k < count; k++)
        l->grad[k] = seed ? seed[k] : 1.0f;
    for (int i = from; i >= 0; i--) {
        node *n = &g->nodes[i];
        if (runs_backward(g, n)) {
            run_backward(g, n);
            if (hook)
                report_ready(g, n);
        }
    }
    if (hook) {
        find_last_readers(g, from, g->last_reader);
        for (int i = g->n_nodes - 1; i >= 0; i--)
            if (unread_param(g, i, g->last_reader))
                g->grad_hook(g->grad_user, i);
    }
    if (!params)
        propagate_needs_grad(g);
    return NERVE_OK;
}

int nerve_backward(nerve_graph *g, int loss)
{
    int st = check_node(g, loss);
    if (st)
        return st;
    node *l = &g->nodes[loss];
    if (node_numel(l) != 1)
        return nerve_set_error(NERVE_ERR_SHAPE, "backward from '%s': it has %zu elements, not 1",
                               l->name, node_numel(l));
    return backward_pass(g, loss, NULL, 0);
}

int nerve_backward_seeded(nerve_graph *g, int from, const float *seed, int flags)
{
    if (flags & ~NERVE_BACKWARD_INPUTS_ONLY)
        return nerve_set_error(NERVE_ERR_ARG, "backward_seeded: unknown flags 0x%x", (unsigned)flags);
    return backward_pass(g, from, seed, flags);
}

static int list_nodes(const nerve_graph *g, int *out, int cap, int want_state, int want_frozen)
{
    int count = 0;
    for (int i = 0; g && i < g->n_nodes; i++) {
        const node *n = &g->nodes[i];
        int take = (n->kind == NERVE_NODE_PARAM && (want_frozen || !n->frozen)) ||
                   (want_state && n->kind == NERVE_NODE_STATE && !n->transient);
        if (!take)
            continue;
        if (out && count < cap)
            out[count] = i;
        count++;
    }
    return count;
}

int nerve_graph_params(const nerve_graph *g, int *out, int cap) { return list_nodes(g, out, cap, 0, 0); }
int nerve_graph_persistent(const nerve_graph *g, int *out, int cap) { return list_nodes(g, out, cap, 1, 1); }

size_t nerve_graph_param_count(const nerve_graph *g)
{
    size_t total = 0;
    for (int i = 0; g && i < g->n_nodes; i++)
        if (g->nodes[i].kind == NERVE_NODE_PARAM)
            total += node_numel(&g->nodes[i]);
    return total;
}
