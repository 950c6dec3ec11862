/* darknet .weights files (docs/darknet.md): read into a model built from a darknet cfg, and
 * written from one, in darknet's layout (its parser.c, load_weights_upto / save_weights):
 *
 *   int32 major, minor, revision; then `seen` (images trained on): uint64 when
 *   major * 10 + minor >= 2 and both are below 1000, else int32. Then, layer by layer in
 *   cfg order, float32 little-endian:
 *     [convolutional], [deconvolutional]: biases[n]; if batch_normalize: scales[n],
 *         rolling_mean[n], rolling_variance[n]; weights (n x c/groups x size x size;
 *         deconvolutional: c x n x size x size)
 *     [connected]: biases[out]; weights[out x in] (stored [in x out] when major or minor
 *         is above 1000); if batch_normalize: scales, rolling_mean, rolling_variance [out]
 *     [local]: biases[n x out_h x out_w]; weights[out_h*out_w x n x c x size x size]
 *   and nothing for layers without weights.
 *
 * No size is taken from the file: every size comes from the model, the file must hold
 * exactly those values (a shorter or longer file belongs to another cfg), every value must
 * be finite, and nothing in the model changes unless the whole file is accepted. */
#include "model.h"

#include "../core/core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tensors of one layer, in the file's order. */
enum { DW_MAX = 32 };
typedef struct dw_layer {
    int node[DW_MAX];     /* graph node, or -1: zeros (a nerve layer without bias) */
    size_t numel[DW_MAX];
    const char *what[DW_MAX];
    int transpose[DW_MAX]; /* connected weights [out x in] stored [in x out] */
    int rows[DW_MAX], cols[DW_MAX];
    int n;
} dw_layer;

static int find_node(nerve_graph *g, const char *layer, const char *role)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", layer, role);
    return nerve_node_find(g, name);
}

static size_t node_numel(nerve_graph *g, int node)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (node < 0 || nerve_node_shape(g, node, &nd, dims) < 0)
        return 0;
    return nerve_shape_numel(nd, dims);
}

static void add(dw_layer *l, nerve_graph *g, int node, size_t numel, const char *what)
{
    l->node[l->n] = node;
    l->numel[l->n] = node >= 0 ? node_numel(g, node) : numel;
    l->what[l->n] = what;
    l->transpose[l->n] = 0;
    l->n++;
}

/* darknet's connected layer `base`: biases (the batch norm's shift), weights, then with
 * batch norm its scales, rolling means and rolling variances */
static int connected_tensors(nerve_graph *g, const char *base, dw_layer *l)
{
    char bn[96];
    snprintf(bn, sizeof bn, "%s.bn", base);
    int w = find_node(g, base, "weight"), b = find_node(g, base, "bias");
    int scale = find_node(g, bn, "weight"), shift = find_node(g, bn, "bias");
    int mean = find_node(g, bn, "running_mean"), var = find_node(g, bn, "running_var");
    int has_bn = scale >= 0 && shift >= 0 && mean >= 0 && var >= 0;
    int nd, dims[NERVE_MAX_DIMS];
    if (w < 0 || nerve_node_shape(g, w, &nd, dims) < 0 || nd != 2)
        return nerve_set_error(NERVE_ERR_STATE, "darknet weights: '%s' has no 2-D weight", base);
    add(l, g, has_bn ? shift : b, (size_t)dims[0], "biases");
    add(l, g, w, 0, "weights");
    l->transpose[l->n - 1] = 1;
    l->rows[l->n - 1] = dims[0];
    l->cols[l->n - 1] = dims[1];
    if (has_bn) {
        add(l, g, scale, 0, "scales");
        add(l, g, mean, 0, "rolling means");
        add(l, g, var, 0, "rolling variances");
    }
    return NERVE_OK;
}

/* The tensors of layer i in darknet's order; n = 0 for a layer without weights. */
static int layer_tensors(nerve_model *m, int i, dw_layer *l)
{
    nerve_graph *g = m->g;
    const nerve_layer_info *li = &m->layers[i];
    memset(l, 0, sizeof *l);
    const char *t = li->type;
    int conv = !strcmp(t, "convolutional") || !strcmp(t, "deconvolutional");
    int dense = !strcmp(t, "connected"), local = !strcmp(t, "local");
    const char *const *roles = !strcmp(t, "rnn") ? darknet_rnn_roles
                               : !strcmp(t, "gru") ? darknet_gru_roles
                                                   : NULL;
    if (roles) { /* darknet's [rnn] / [gru]: its connected layers; not nerve's cells */
        char base[96];
        snprintf(base, sizeof base, "%s.%s", li->name, roles[0]);
        if (find_node(g, base, "weight") >= 0) {
            for (int k = 0; roles[k]; k++) {
                snprintf(base, sizeof base, "%s.%s", li->name, roles[k]);
                TRY(connected_tensors(g, base, l));
            }
            return NERVE_OK;
        }
    }
    if (dense)
        return connected_tensors(g, li->name, l);
    if (!conv && !local) {
        if (li->params > 0)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "darknet weights: layer %d '%s' ([%s], line %d) has "
                                   "parameters that a darknet .weights file has no place for",
                                   i, li->name, t, li->line);
        return NERVE_OK;
    }
    char bn[80];
    snprintf(bn, sizeof bn, "%s.bn", li->name);
    int w = find_node(g, li->name, "weight"), b = find_node(g, li->name, "bias");
    int scale = find_node(g, bn, "weight"), shift = find_node(g, bn, "bias");
    int mean = find_node(g, bn, "running_mean"), var = find_node(g, bn, "running_var");
    int has_bn = scale >= 0 && shift >= 0 && mean >= 0 && var >= 0;
    if (w < 0)
        return nerve_set_error(NERVE_ERR_STATE, "darknet weights: layer '%s' has no weight",
                               li->name);
    /* the number of biases: the batch norm's, the bias's, else the output's channels */
    size_t n = has_bn ? node_numel(g, shift) : b >= 0 ? node_numel(g, b)
                                                      : (size_t)(li->ndim ? li->dims[0] : 0);
    if (local)
        n = (size_t)li->dims[0] * (li->ndim == 3 ? (size_t)li->dims[1] * li->dims[2] : 1);
    add(l, g, has_bn ? shift : b, n, "biases");
    if (has_bn) {
        add(l, g, scale, 0, "scales");
        add(l, g, mean, 0, "rolling means");
        add(l, g, var, 0, "rolling variances");
    }
    add(l, g, w, 0, "weights");
    return NERVE_OK;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float lef(const unsigned char *p)
{
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One pass over the file: check (apply = 0) or copy (apply = 1). */
static int walk(nerve_model *m, const unsigned char *p, size_t len, size_t off, int transposed,
                int apply)
{
    for (int i = 0; i < m->n_layers; i++) {
        dw_layer l;
        TRY(layer_tensors(m, i, &l));
        for (int k = 0; k < l.n; k++) {
            size_t bytes = l.numel[k] * 4;
            if (len - off < bytes)
                return nerve_set_error(NERVE_ERR_FORMAT,
                                       "darknet weights: the file ends in layer %d '%s' (%s: "
                                       "%zu bytes needed, %zu left); the weights belong to "
                                       "another cfg", i, m->layers[i].name, l.what[k], bytes,
                                       len - off);
            const unsigned char *q = p + off;
            off += bytes;
            float *dst = l.node[k] >= 0 ? nerve_value(m->g, l.node[k]).data : NULL;
            for (size_t j = 0; j < l.numel[k]; j++) {
                float v = lef(q + 4 * j);
                if (!isfinite(v) || (!dst && v != 0.0f))
                    return nerve_set_error(NERVE_ERR_FORMAT,
                                           "darknet weights: layer %d '%s': %s value %zu is %g%s",
                                           i, m->layers[i].name, l.what[k], j, (double)v,
                                           dst ? "" : " (the layer has no bias: bias=0)");
                if (!apply || !dst)
                    continue;
                size_t at = j;
                if (l.transpose[k] && transposed) /* stored [in][out] */
                    at = (j % (size_t)l.rows[k]) * (size_t)l.cols[k] + j / (size_t)l.rows[k];
                dst[at] = v;
            }
        }
    }
    if (off != len)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "darknet weights: %zu bytes after the last layer's weights; the "
                               "weights belong to another cfg", len - off);
    return NERVE_OK;
}

int nerve_model_read_darknet(nerve_model *m, const void *data, size_t len, int64_t *seen)
{
    if (!m || (!data && len))
        return nerve_set_error(NERVE_ERR_ARG, "darknet weights: null argument");
    const unsigned char *p = data;
    if (len < 16)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "darknet weights: %zu bytes; the header alone takes 16 (or 12)",
                               len);
    uint32_t major = le32(p), minor = le32(p + 4);
    int wide = (uint64_t)major * 10 + minor >= 2 && major < 1000 && minor < 1000;
    if (wide && len < 20)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "darknet weights: %zu bytes; a version %u.%u header takes 20",
                               len, (unsigned)major, (unsigned)minor);
    size_t off = 12;
    uint64_t s = le32(p + off);
    if (wide) {
        s |= (uint64_t)le32(p + off + 4) << 32;
        off += 8;
    } else {
        off += 4;
    }
    int transposed = major > 1000 || minor > 1000;
    TRY(walk(m, p, len, off, transposed, 0));
    TRY(walk(m, p, len, off, transposed, 1));
    if (seen)
        *seen = s > INT64_MAX ? INT64_MAX : (int64_t)s;
    return NERVE_OK;
}

int nerve_model_load_darknet(nerve_model *m, const char *path)
{
    if (!m || !path)
        return nerve_set_error(NERVE_ERR_ARG, "darknet weights: null argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return nerve_set_error(NERVE_ERR_IO, "%s: %s", path, strerror(errno));
    /* the model says how large the file must be; read one byte more to see a longer one */
    size_t want = 20;
    for (int i = 0; i < m->n_layers; i++) {
        dw_layer l;
        int st = layer_tensors(m, i, &l);
        if (st) {
            fclose(f);
            return st;
        }
        for (int k = 0; k < l.n; k++)
            want += 4 * l.numel[k];
    }
    unsigned char *buf = nerve_xmalloc(want + 1);
    if (!buf) {
        fclose(f);
        return NERVE_ERR_NOMEM;
    }
    size_t got = fread(buf, 1, want + 1, f);
    int err = ferror(f);
    fclose(f);
    int st = err ? nerve_set_error(NERVE_ERR_IO, "%s: read error", path)
                 : nerve_model_read_darknet(m, buf, got, NULL);
    nerve_xfree(buf);
    if (st < 0) {
        char msg[800];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        return nerve_set_error(st, "%s: %s", path, msg);
    }
    return NERVE_OK;
}

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

/* n floats of x (NULL: zeros) little-endian */
static int put_floats(FILE *f, const float *x, size_t n)
{
    unsigned char b[4096];
    size_t used = 0;
    for (size_t j = 0; j < n; j++) {
        float v = x ? x[j] : 0.0f;
        uint32_t u;
        memcpy(&u, &v, 4);
        b[used++] = (unsigned char)u;
        b[used++] = (unsigned char)(u >> 8);
        b[used++] = (unsigned char)(u >> 16);
        b[used++] = (unsigned char)(u >> 24);
        if (used == sizeof b) {
            if (put(f, b, used))
                return -1;
            used = 0;
        }
    }
    return used ? put(f, b, used) : 0;
}

int nerve_model_save_darknet(nerve_model *m, const char *path, int64_t seen)
{
    if (!m || !path)
        return nerve_set_error(NERVE_ERR_ARG, "darknet weights: null argument");
    for (int i = 0; i < m->n_layers; i++) { /* every layer must fit before a byte is written */
        dw_layer l;
        TRY(layer_tensors(m, i, &l));
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return nerve_set_error(NERVE_ERR_IO, "%s: %s", path, strerror(errno));
    /* darknet's save_weights: version 0.2.0, then seen as 64 bits */
    uint64_t s = seen > 0 ? (uint64_t)seen : 0;
    unsigned char h[20] = {0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < 8; k++)
        h[12 + k] = (unsigned char)(s >> (8 * k));
    int bad = put(f, h, sizeof h);
    for (int i = 0; i < m->n_layers && !bad; i++) {
        dw_layer l;
        layer_tensors(m, i, &l);
        for (int k = 0; k < l.n && !bad; k++) {
            const float *x = l.node[k] >= 0 ? nerve_value(m->g, l.node[k]).data : NULL;
            bad = put_floats(f, x, l.numel[k]);
        }
    }
    if (fclose(f) != 0)
        bad = 1;
    if (bad)
        return nerve_set_error(NERVE_ERR_IO, "%s: write error", path);
    return NERVE_OK;
}
