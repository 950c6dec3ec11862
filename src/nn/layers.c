/* Layer builders: each creates its parameters (and states) under "<name>.<role>", fills
 * them, and returns the operator node built on them.
 *
 *   dense      <name>.weight [out, in] (given initialiser), <name>.bias [out] (zeros, no decay)
 *   batchnorm  <name>.weight [C] γ = 1, <name>.bias [C] β = 0 (no decay);
 *              states <name>.running_mean [C] = 0, <name>.running_var [C] = 1
 *   prelu      <name>.slope [C] or [1] = init_slope (no decay)
 * C is dimension 1 of the input (features or channels). */
#include "../graph/graph.h"

#include <stdio.h>
#include <string.h>

/* The longest role suffix, ".running_mean", must still fit in a node name. */
#define ROLE_MAX 14

/* Whether every "<base>.<role>" is still a free node name. */
static int roles_free(const nerve_graph *g, const char *base, const char *const *roles)
{
    char full[96];
    for (; *roles; roles++) {
        snprintf(full, sizeof full, "%s.%s", base, *roles);
        if (nerve_node_find(g, full) >= 0)
            return 0;
    }
    return 1;
}

/* Chooses the layer's base name: `name` if given (its role names must be free), else
 * "<kind><k>" for the first k whose role names are free. */
static int layer_base(const nerve_graph *g, const char *name, const char *kind,
                      const char *const *roles, char *base, size_t size)
{
    if (name && *name) {
        if (strlen(name) + ROLE_MAX >= sizeof(((node *)0)->name))
            return nerve_set_error(NERVE_ERR_ARG, "layer name '%s' is too long", name);
        if (!roles_free(g, name, roles))
            return nerve_set_error(NERVE_ERR_ARG, "a layer named '%s' already exists", name);
        snprintf(base, size, "%s", name);
        return NERVE_OK;
    }
    for (int k = 1;; k++) {
        snprintf(base, size, "%s%d", kind, k);
        if (roles_free(g, base, roles))
            return NERVE_OK;
    }
}

/* The layer's output node takes the layer's name when that is free. */
static int name_output(nerve_graph *g, int y, const char *base)
{
    if (y >= 0 && nerve_node_find(g, base) < 0)
        nerve_node_set_name(g, y, base);
    return y;
}

typedef enum { LEAF_PARAM, LEAF_PARAM_NO_DECAY, LEAF_STATE } leaf_role;

/* Creates "<base>.<role>" filled with `init`; returns its id or a negative status. */
static int layer_leaf(nerve_graph *g, const char *base, const char *role, leaf_role kind,
                      int ndim, const int *dims, nerve_init init, nerve_rng *rng)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", base, role);
    int id = kind == LEAF_STATE ? nerve_state(g, full, ndim, dims) : nerve_param(g, full, ndim, dims);
    if (id < 0)
        return id;
    int st = kind == LEAF_PARAM_NO_DECAY ? nerve_param_set_decay(g, id, 0) : NERVE_OK;
    if (!st)
        st = nerve_init_param(g, id, init, rng);
    return st ? st : id;
}

static nerve_init constant(float a) { return (nerve_init){NERVE_INIT_CONSTANT, a, 0.0f}; }

/* Shape of x as built (batch 1 before compile); checks it has at least `min_rank` axes. */
static int input_shape(const nerve_graph *g, int x, int min_rank, const char *layer, int *ndim,
                       int *dims)
{
    int st = nerve_node_shape(g, x, ndim, dims);
    if (st)
        return st;
    if (*ndim < min_rank)
        return nerve_set_error(NERVE_ERR_SHAPE, "%s: input '%s' has rank %d, needs at least %d",
                               layer, nerve_node_name(g, x), *ndim, min_rank);
    return NERVE_OK;
}

int nerve_layer_dense(nerve_graph *g, int x, int n_out, int bias, nerve_init init,
                      nerve_rng *rng, const char *name)
{
    int ndim, dims[NERVE_MAX_DIMS];
    int st = input_shape(g, x, 2, "dense", &ndim, dims);
    if (st)
        return st;
    if (n_out < 1)
        return nerve_set_error(NERVE_ERR_ARG, "dense: %d outputs; needs at least 1", n_out);
    char base[64];
    static const char *const roles[] = {"weight", "bias", NULL};
    if ((st = layer_base(g, name, "dense", roles, base, sizeof base)))
        return st;
    int in = (int)(nerve_shape_numel(ndim, dims) / (size_t)dims[0]);
    int w = layer_leaf(g, base, "weight", LEAF_PARAM, 2, (int[]){n_out, in}, init, rng);
    if (w < 0)
        return w;
    int b = -1;
    if (bias && (b = layer_leaf(g, base, "bias", LEAF_PARAM_NO_DECAY, 1, (int[]){n_out},
                                constant(0.0f), rng)) < 0)
        return b;
    return name_output(g, nerve_dense(g, x, w, b), base);
}

int nerve_layer_batchnorm(nerve_graph *g, int x, float momentum, float eps, const char *name)
{
    int ndim, dims[NERVE_MAX_DIMS];
    int st = input_shape(g, x, 2, "batchnorm", &ndim, dims);
    if (st)
        return st;
    char base[64];
    static const char *const roles[] = {"weight", "bias", "running_mean", "running_var", NULL};
    if ((st = layer_base(g, name, "bn", roles, base, sizeof base)))
        return st;
    const int C[1] = {dims[1]};
    int gamma = layer_leaf(g, base, "weight", LEAF_PARAM_NO_DECAY, 1, C, constant(1.0f), NULL);
    if (gamma < 0)
        return gamma;
    int beta = layer_leaf(g, base, "bias", LEAF_PARAM_NO_DECAY, 1, C, constant(0.0f), NULL);
    if (beta < 0)
        return beta;
    int mean = layer_leaf(g, base, "running_mean", LEAF_STATE, 1, C, constant(0.0f), NULL);
    if (mean < 0)
        return mean;
    int var = layer_leaf(g, base, "running_var", LEAF_STATE, 1, C, constant(1.0f), NULL);
    if (var < 0)
        return var;
    return name_output(g, nerve_batchnorm(g, x, gamma, beta, mean, var, momentum, eps), base);
}

int nerve_layer_prelu(nerve_graph *g, int x, int per_channel, float init_slope, const char *name)
{
    int ndim, dims[NERVE_MAX_DIMS];
    int st = input_shape(g, x, per_channel ? 2 : 1, "prelu", &ndim, dims);
    if (st)
        return st;
    char base[64];
    static const char *const roles[] = {"slope", NULL};
    if ((st = layer_base(g, name, "prelu", roles, base, sizeof base)))
        return st;
    const int C[1] = {per_channel ? dims[1] : 1};
    int slope = layer_leaf(g, base, "slope", LEAF_PARAM_NO_DECAY, 1, C, constant(init_slope), NULL);
    if (slope < 0)
        return slope;
    return name_output(g, nerve_prelu(g, x, slope), base);
}
