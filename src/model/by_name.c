/* The cfg builder's activations, element-wise and shape nodes, added through the operator
 * table (nerve_op_build) with the names and attributes a model importer uses: the same nodes
 * the direct functions add (tests/test_op_build.c checks it). */
#include "model.h"

int by_name_act(nerve_graph *g, int x, nerve_act act)
{
    const nerve_attr at[] = {nerve_attr_string("type", nerve_act_name(act.type)),
                             nerve_attr_float("alpha", act.alpha),
                             nerve_attr_float("beta", act.beta)};
    return nerve_op_build(g, "activation", &x, 1, at, 3);
}

int by_name_dropout(nerve_graph *g, int x, float p, int spatial)
{
    const nerve_attr at[] = {nerve_attr_float("p", p), nerve_attr_int("spatial", spatial)};
    return nerve_op_build(g, "dropout", &x, 1, at, 2);
}

int by_name_binary(nerve_graph *g, const char *op, int a, int b)
{
    return nerve_op_build(g, op, (const int[]){a, b}, 2, NULL, 0);
}

static int with_ints(nerve_graph *g, const char *op, int x, const char *name, int n, const int *v)
{
    int64_t w[NERVE_MAX_DIMS];
    if (n < 0 || n > NERVE_MAX_DIMS)
        return nerve_set_error(NERVE_ERR_ARG, "%s: %d values in '%s'", op, n, name);
    for (int k = 0; k < n; k++)
        w[k] = v[k];
    const nerve_attr at = nerve_attr_ints(name, w, n);
    return nerve_op_build(g, op, &x, 1, &at, 1);
}

int by_name_reshape(nerve_graph *g, int x, int ndim, const int *dims)
{
    return with_ints(g, "reshape", x, "shape", ndim, dims);
}

int by_name_transpose(nerve_graph *g, int x, int ndim, const int *perm)
{
    return with_ints(g, "transpose", x, "perm", ndim, perm);
}

int by_name_slice(nerve_graph *g, int x, int axis, int start, int end)
{
    const nerve_attr at[] = {nerve_attr_int("axis", axis), nerve_attr_int("start", start),
                             nerve_attr_int("end", end)};
    return nerve_op_build(g, "slice", &x, 1, at, 3);
}

int by_name_flatten(nerve_graph *g, int x) { return nerve_op_build(g, "flatten", &x, 1, NULL, 0); }

int by_name_concat(nerve_graph *g, int n, const int *xs, int axis)
{
    const nerve_attr at = nerve_attr_int("axis", axis);
    return nerve_op_build(g, "concat", xs, n, &at, 1);
}

int by_name_upsample(nerve_graph *g, int x, int scale, const char *mode)
{
    const nerve_attr at[] = {nerve_attr_int("scale", scale), nerve_attr_string("mode", mode)};
    return nerve_op_build(g, "upsample", &x, 1, at, 2);
}

int by_name_block(nerve_graph *g, const char *op, int x, int block)
{
    const nerve_attr at = nerve_attr_int("block", block);
    return nerve_op_build(g, op, &x, 1, &at, 1);
}

int by_name_zscore(nerve_graph *g, int x, int mean, int std)
{
    return nerve_op_build(g, "zscore", (const int[]){x, mean, std}, 3, NULL, 0);
}
