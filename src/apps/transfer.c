/* Transfer learning: initialise a model from another model's checkpoint by tensor name,
 * skipping what does not fit (a new head), and freeze the first layers. */
#include "../core/core.h"
#include "../model/model.h"

#include <stdio.h>
#include <string.h>

/* Where each persistent node's tensor is in f (-1: skipped), counting the skipped ones;
 * a shape mismatch is an error unless skip_mismatched. */
static int match_tensors(nerve_graph *g, const nerve_st_file *f, const int *ids, int n,
                         int skip_mismatched, int *where, int *skipped)
{
    for (int i = 0; i < n; i++) {
        const char *name = nerve_node_name(g, ids[i]);
        int nd, dims[NERVE_MAX_DIMS], fnd, fdims[NERVE_MAX_DIMS];
        nerve_node_shape(g, ids[i], &nd, dims);
        int k = nerve_st_find(f, name);
        if (k >= 0) {
            int st = nerve_st_shape(f, k, &fnd, fdims);
            if (st)
                return st;
            if (!nerve_same_shape(nd, dims, fnd, fdims)) {
                char a[96], b[96];
                if (!skip_mismatched)
                    return nerve_set_error(NERVE_ERR_SHAPE,
                                           "tensor '%s': the checkpoint has shape %s, the model %s",
                                           name, nerve_shape_str(fnd, fdims, a, sizeof a),
                                           nerve_shape_str(nd, dims, b, sizeof b));
                k = -1;
            }
        }
        where[i] = k;
        *skipped += k < 0;
    }
    return NERVE_OK;
}

int nerve_model_load_matching(nerve_model *m, const char *path, int skip_mismatched, int *loaded,
                              int *skipped)
{
    if (!m || !path)
        return nerve_set_error(NERVE_ERR_ARG, "load_matching: null model or path");
    nerve_graph *g = nerve_model_graph(m);
    int n = nerve_graph_persistent(g, NULL, 0);
    int *ids = nerve_xmalloc((size_t)(n + 1) * sizeof(int));
    int *where = nerve_xmalloc((size_t)(n + 1) * sizeof(int));
    nerve_st_file *f = ids && where ? nerve_st_open(path) : NULL;
    int st = f ? NERVE_OK : nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    int n_skipped = 0, n_loaded = 0;
    if (st == NERVE_OK) {
        nerve_graph_persistent(g, ids, n);
        st = model_refuse_quantized(f);
    }
    if (st == NERVE_OK) {
        st = match_tensors(g, f, ids, n, skip_mismatched, where, &n_skipped);
    }
    /* every check above, every copy below: a failed load changes nothing */
    for (int i = 0; st == NERVE_OK && i < n; i++) {
        if (where[i] < 0)
            continue;
        nerve_tensor t = nerve_value(g, ids[i]);
        st = nerve_st_read(f, where[i], t.data, nerve_tensor_numel(&t));
        n_loaded++;
    }
    nerve_st_close(f);
    nerve_xfree(ids);
    nerve_xfree(where);
    if (st && f) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        return nerve_set_error(st, "%s: %s", path, msg);
    }
    if (loaded)
        *loaded = n_loaded;
    if (skipped)
        *skipped = n_skipped;
    return st;
}

/* True if node `name` is "<layer>.<something>" (layer names contain no '.'). */
static int belongs_to(const char *name, const char *layer)
{
    size_t n = strlen(layer);
    return strncmp(name, layer, n) == 0 && name[n] == '.';
}

int nerve_model_freeze(nerve_model *m, int n_layers)
{
    if (!m)
        return nerve_set_error(NERVE_ERR_ARG, "freeze: null model");
    int layers = nerve_model_layer_count(m);
    if (n_layers < 0 || n_layers > layers)
        return nerve_set_error(NERVE_ERR_ARG, "freeze: %d layers asked for; the model has %d",
                               n_layers, layers);
    nerve_graph *g = nerve_model_graph(m);
    int frozen = 0;
    for (int l = 0; l < n_layers; l++) {
        nerve_layer_info li;
        nerve_model_layer_info(m, l, &li);
        for (int id = 0; id < nerve_node_count(g); id++)
            if (nerve_node_kind(g, id) == NERVE_NODE_PARAM &&
                belongs_to(nerve_node_name(g, id), li.name)) {
                int st = nerve_param_set_frozen(g, id, 1);
                if (st)
                    return st;
                frozen++;
            }
    }
    return frozen;
}
