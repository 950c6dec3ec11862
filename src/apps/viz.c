/* Visualisation: a layer's weights (filters) and a layer's response to one image, written as
 * readable sheets (nerve_sheet_write, src/io/picture.c): tiles scaled up with gaps, one
 * shared colour scale drawn beside them (blue-white-red for signed values), the layer's name
 * and what is shown in the caption. */
#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Tiles to write: k maps of [channels, h, w], and the caption of the picture. */
typedef struct tiles {
    int k, channels, h, w;
    float *data;
    char caption[160];
} tiles;

static int tiles_alloc(tiles *t, int k, int channels, int h, int w)
{
    t->k = k;
    t->channels = channels;
    t->h = h;
    t->w = w;
    t->data = nerve_xmalloc((size_t)k * channels * h * w * sizeof(float));
    return t->data ? NERVE_OK : NERVE_ERR_NOMEM;
}

/* Rows and columns of the square-ish tile that holds n values. */
static void squarish(size_t n, int *rows, int *cols)
{
    *cols = (int)ceil(sqrt((double)n));
    *rows = (int)((n + (size_t)*cols - 1) / (size_t)*cols);
}

/* n values into a rows x cols tile; unused cells get a value that does not change the
 * sheet's scale: 0 when the values straddle 0 (white in the diverging map), else the
 * smallest (black). */
static void pack_square(const float *v, size_t n, float *out, int rows, int cols)
{
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, v[i]);
        hi = fmaxf(hi, v[i]);
    }
    float fill = lo < 0 && hi >= 0 ? 0.0f : lo;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        out[i] = i < n ? v[i] : fill;
}

static int write_tiles(const tiles *t, const char *path, int *count)
{
    nerve_sheet_options o = {0, 0, 0, t->caption};
    int st = nerve_sheet_write(path, t->data, t->k, t->channels, t->h, t->w, &o);
    if (st == NERVE_OK && count)
        *count = t->k;
    return st;
}

/* ---- filters -------------------------------------------------------------------------- */

/* The "<layer>.weight" parameter of at least 2 dimensions, or -1. */
static int layer_weight(nerve_graph *g, const char *layer)
{
    char name[96];
    snprintf(name, sizeof name, "%s.weight", layer);
    int id = nerve_node_find(g, name);
    int nd, dims[NERVE_MAX_DIMS];
    if (id < 0 || nerve_node_kind(g, id) != NERVE_NODE_PARAM || nerve_node_shape(g, id, &nd, dims) < 0 ||
        nd < 2)
        return -1;
    return id;
}

static int find_weight(nerve_model *m, const char *layer, int *id)
{
    nerve_graph *g = nerve_model_graph(m);
    if (layer) {
        *id = layer_weight(g, layer);
        return *id >= 0 ? NERVE_OK
                        : nerve_set_error(NERVE_ERR_ARG, "layer '%s' has no weight to show (no "
                                          "parameter '%s.weight' of 2 or more dimensions)", layer,
                                          layer);
    }
    for (int i = 0; i < nerve_model_layer_count(m); i++) {
        nerve_layer_info li;
        nerve_model_layer_info(m, i, &li);
        if ((*id = layer_weight(g, li.name)) >= 0)
            return NERVE_OK;
    }
    return nerve_set_error(NERVE_ERR_ARG, "the model has no layer with a weight to show");
}

/* A dense weight [O, in]: each unit's weights shaped like the model's image input when
 * they match it, else a square-ish tile. */
static int dense_tiles(nerve_model *m, const float *wt, int out, int in, tiles *t)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_graph *g = nerve_model_graph(m);
    nerve_node_shape(g, nerve_model_input(m), &nd, dims);
    if (nd == 4 && (size_t)dims[1] * dims[2] * dims[3] == (size_t)in) {
        int c = dims[1], rgb = c == 3;
        int st = tiles_alloc(t, rgb ? out : out * c, rgb ? 3 : 1, dims[2], dims[3]);
        if (st == NERVE_OK) /* [O, C, H, W] is already the tile order */
            memcpy(t->data, wt, (size_t)out * in * sizeof(float));
        return st;
    }
    int rows, cols;
    squarish((size_t)in, &rows, &cols);
    int st = tiles_alloc(t, out, 1, rows, cols);
    for (int o = 0; st == NERVE_OK && o < out; o++)
        pack_square(wt + (size_t)o * in, (size_t)in, t->data + (size_t)o * rows * cols, rows, cols);
    return st;
}

/* A convolution weight [O, C, (kh,) kw]: one tile per filter (RGB) or per filter channel. */
static int conv_tiles(const float *wt, int nd, const int *dims, tiles *t)
{
    int out = dims[0], c = dims[1];
    int kh = nd >= 4 ? dims[2] : 1, kw = dims[nd - 1];
    if (nd > 4)
        kh = (int)(nerve_shape_numel(nd - 2, dims + 2) / (size_t)kw);
    int rgb = c == 3;
    int st = tiles_alloc(t, rgb ? out : out * c, rgb ? 3 : 1, kh, kw);
    if (st == NERVE_OK)
        memcpy(t->data, wt, nerve_shape_numel(nd, dims) * sizeof(float));
    return st;
}

int nerve_viz_filters(nerve_model *m, const char *layer, const char *png_path, int *count)
{
    if (!m || !png_path)
        return nerve_set_error(NERVE_ERR_ARG, "viz_filters: null model or path");
    int id = -1;
    int st = find_weight(m, layer, &id);
    if (st)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, id, &nd, dims);
    const float *wt = nerve_value(g, id).data;
    tiles t = {0};
    st = nd == 2 ? dense_tiles(m, wt, dims[0], dims[1], &t) : conv_tiles(wt, nd, dims, &t);
    if (st == NERVE_OK) {
        char layer_name[96];
        snprintf(layer_name, sizeof layer_name, "%s", nerve_node_name(g, id));
        char *dot = strrchr(layer_name, '.');
        if (dot)
            *dot = '\0'; /* "<layer>.weight" */
        snprintf(t.caption, sizeof t.caption, "%s weights: %d %s of %dx%d%s", layer_name, dims[0],
                 nd == 2 ? "units" : "filters", t.h, t.w,
                 t.channels == 3 ? ", RGB, each to its own range" : t.k > dims[0] ? ", one tile per input channel" : "");
        st = write_tiles(&t, png_path, count);
    }
    nerve_xfree(t.data);
    return st;
}

/* ---- activations ---------------------------------------------------------------------- */

/* Forward pass of sample `index` alone (eval mode) up to `node`; the graph's batch size and
 * mode are restored afterwards by the caller through the returned values. */
static int forward_one(nerve_model *m, const nerve_dataset *d, int index, int node)
{
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, nerve_model_input(m), &nd, dims);
    size_t numel = nerve_shape_numel(nd - 1, dims + 1);
    if (numel != d->sample_numel)
        return nerve_set_error(NERVE_ERR_SHAPE, "the data has samples of %zu values but the model "
                               "takes %zu", d->sample_numel, numel);
    int st = nerve_graph_set_batch(g, 1);
    if (st)
        return st;
    memcpy(nerve_value(g, nerve_model_input(m)).data, d->x + (size_t)index * numel,
           numel * sizeof(float));
    return nerve_forward(g, node);
}

/* The output of a forward pass at node (batch 1) as tiles. */
static int activation_tiles(nerve_graph *g, int node, tiles *t)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, node, &nd, dims);
    const float *v = nerve_value(g, node).data;
    size_t n = nerve_shape_numel(nd - 1, dims + 1);
    if (nd == 4) {
        int st = tiles_alloc(t, dims[1], 1, dims[2], dims[3]);
        if (st == NERVE_OK)
            memcpy(t->data, v, n * sizeof(float));
        return st;
    }
    int rows, cols;
    squarish(n, &rows, &cols);
    int st = tiles_alloc(t, 1, 1, rows, cols);
    if (st == NERVE_OK)
        pack_square(v, n, t->data, rows, cols);
    return st;
}

int nerve_viz_activations(nerve_model *m, const nerve_dataset *d, int index, const char *layer,
                          const char *png_path, int *count)
{
    if (!m || !d || !d->x || !png_path)
        return nerve_set_error(NERVE_ERR_ARG, "viz_activations: null argument");
    if (index < 0 || index >= d->n)
        return nerve_set_error(NERVE_ERR_ARG, "image index %d outside 0..%d", index, d->n - 1);
    nerve_layer_info first;
    if (!layer && nerve_model_layer_info(m, 0, &first) == NERVE_OK)
        layer = first.name;
    nerve_graph *g = nerve_model_graph(m);
    int node = layer ? nerve_node_find(g, layer) : -1;
    if (node < 0)
        return nerve_set_error(NERVE_ERR_ARG, "the model has no layer '%s'", layer ? layer : "");
    int st = nerve_graph_is_compiled(g) ? NERVE_OK : nerve_model_compile(m, 0);
    if (st)
        return st;
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    tiles t = {0};
    st = forward_one(m, d, index, node);
    if (st == NERVE_OK)
        st = activation_tiles(g, node, &t);
    nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    if (st == NERVE_OK) {
        snprintf(t.caption, sizeof t.caption, "%s output for sample %d: %d map%s of %dx%d", layer, index, t.k,
                 t.k == 1 ? "" : "s", t.h, t.w);
        st = write_tiles(&t, png_path, count);
    }
    nerve_xfree(t.data);
    return st;
}
