/* Features of a model at a named node, for embeddings (nerve embed): every sample of a data
 * set run forward in evaluation mode, batch by batch, up to that node. */
#include "../core/core.h"

#include <string.h>

static int feature_node(nerve_model *m, const char *layer, int *node, int *dim)
{
    nerve_graph *g = nerve_model_graph(m);
    *node = layer ? nerve_node_find(g, layer) : nerve_model_output(m);
    if (*node < 0)
        return nerve_set_error(NERVE_ERR_ARG, "the model has no node '%s' (layer names: nerve "
                                              "summary CFG)", layer ? layer : "(output)");
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, *node, &nd, dims) < 0)
        return nerve_set_error(NERVE_ERR_STATE, "node '%s' has no shape", layer ? layer : "");
    size_t numel = nerve_shape_numel(nd - 1, dims + 1);
    if (numel < 1 || numel > (size_t)1 << 24)
        return nerve_set_error(NERVE_ERR_SHAPE, "node '%s' has %zu values per sample (1 to 2^24 "
                                                "for features)", layer ? layer : "", numel);
    *dim = (int)numel;
    return NERVE_OK;
}

int nerve_model_feature_dim(nerve_model *m, const char *layer, int *dim)
{
    if (!m || !dim)
        return nerve_set_error(NERVE_ERR_ARG, "model features: null argument");
    int node;
    return feature_node(m, layer, &node, dim);
}

int nerve_model_features(nerve_model *m, const nerve_dataset *d, const char *layer, float *out)
{
    if (!m || !d || !d->x || !out || d->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "model features: null argument or no samples");
    int node = -1, dim = 0, st = feature_node(m, layer, &node, &dim);
    if (st < 0)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) && (st = nerve_model_compile(m, 0)) < 0)
        return st;
    int in = nerve_model_input(m), nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, in, &nd, dims);
    size_t in_numel = nerve_shape_numel(nd - 1, dims + 1);
    if (in_numel != d->sample_numel)
        return nerve_set_error(NERVE_ERR_SHAPE, "the data has samples of %zu values but the model "
                                                "reads %zu", d->sample_numel, in_numel);
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    for (int i0 = 0; i0 < d->n && st == NERVE_OK; i0 += batch) {
        int b = d->n - i0 < batch ? d->n - i0 : batch;
        if ((st = nerve_graph_set_batch(g, b)) < 0)
            break;
        memcpy(nerve_value(g, in).data, d->x + (size_t)i0 * in_numel,
               (size_t)b * in_numel * sizeof(float));
        if ((st = nerve_forward(g, node)) < 0)
            break;
        memcpy(out + (size_t)i0 * dim, nerve_value(g, node).data, (size_t)b * dim * sizeof(float));
    }
    nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    return st;
}
