/* Model checkpoints: a safetensors file holding every persistent tensor of the model's
 * graph (parameters and states) under its node name, with the cfg text in the metadata so
 * that one file rebuilds the model. Loading checks every shape before it changes anything,
 * so a failed load leaves the model as it was. */
#include "../core/core.h"
#include "model.h"
#include "../io/json.h"
#include "../ops/ops.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECKPOINT_FORMAT "nerve-checkpoint-1"
/* metadata "nerve.quantized" of an int8 checkpoint (nerve quantize, docs/quantize.md) */
#define QUANT_SCHEME "int8-1"
/* int8-2: some int8 node carries its own float bias, quant.<node>.bias (a batch norm folded
 * in); a reader of int8-1 only would lose it, so such files say so */
#define QUANT_SCHEME_BIAS "int8-2"
/* int8-3: some add runs in int8, quant.<node>.add (a residual add between int8 layers); a
 * reader of int8-2 would compute it in float between layers whose scales assume it does not */
#define QUANT_SCHEME_ADD "int8-3"

/* The persistent nodes of the model's graph (caller frees). */
static int persistent_nodes(nerve_model *m, int **ids)
{
    int n = nerve_graph_persistent(m->g, NULL, 0);
    *ids = nerve_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!*ids)
        return NERVE_ERR_NOMEM;
    nerve_graph_persistent(m->g, *ids, n);
    return n;
}

/* The int8 parameters of the node whose weight leaf is id, NULL if none. */
static const op_quant_params *quant_weight(nerve_model *m, int id)
{
    for (int i = id + 1; i < m->g->n_nodes; i++) {
        const node *n = &m->g->nodes[i];
        const op_quant_params *q = op_quant_of(n);
        if (q && n->in[1] == id)
            return q;
    }
    return NULL;
}

int nerve_model_quantized(const nerve_model *m)
{
    int count = 0;
    for (int i = 0; m && i < m->g->n_nodes; i++)
        count += op_quant_of(&m->g->nodes[i]) != NULL ||
                 op_quant_add_of(&m->g->nodes[i], NULL) != NULL;
    return count;
}

/* Per int8 node: "quant.<node>.w_scale" [N] and "quant.<node>.act" [5] = in_scale, in_zero,
 * out_scale, out_zero, relu; and metadata nerve.quantized. */
static int write_quant(nerve_model *m, nerve_st_writer *w)
{
    int st = NERVE_OK, any = 0, biased = 0, adds = 0;
    for (int i = 0; i < m->g->n_nodes && st == NERVE_OK; i++) {
        const node *n = &m->g->nodes[i];
        const op_quant_params *q = op_quant_of(n);
        const op_quant_add_params *a = op_quant_add_of(n, NULL);
        if (a) {
            char key[96];
            int seven = 7;
            float v[7] = {a->a_scale, (float)a->a_zero, a->b_scale, (float)a->b_zero,
                          a->out_scale, (float)a->out_zero, (float)a->relu};
            snprintf(key, sizeof key, "quant.%s.add", n->name);
            st = nerve_st_writer_add(w, key, 1, &seven, v);
            any = adds = 1;
            continue;
        }
        if (!q)
            continue;
        any = 1;
        char key[96];
        int N = m->g->nodes[n->in[1]].dims[0], five = 5;
        snprintf(key, sizeof key, "quant.%s.w_scale", n->name);
        st = nerve_st_writer_add(w, key, 1, &N, q->w_scale);
        float act[5] = {q->in_scale, (float)q->in_zero, q->out_scale, (float)q->out_zero,
                        (float)q->relu};
        snprintf(key, sizeof key, "quant.%s.act", n->name);
        if (st == NERVE_OK)
            st = nerve_st_writer_add(w, key, 1, &five, act);
        snprintf(key, sizeof key, "quant.%s.bias", n->name);
        if (st == NERVE_OK && q->bias) {
            st = nerve_st_writer_add(w, key, 1, &N, q->bias);
            biased = 1;
        }
    }
    if (st == NERVE_OK && any)
        st = nerve_st_writer_meta(w, "nerve.quantized", adds     ? QUANT_SCHEME_ADD
                                                        : biased ? QUANT_SCHEME_BIAS
                                                                 : QUANT_SCHEME);
    return st;
}

int model_refuse_quantized(const nerve_st_file *f)
{
    if (!nerve_st_metadata(f, "nerve.quantized"))
        return NERVE_OK;
    return nerve_set_error(NERVE_ERR_FORMAT,
                           "an int8 checkpoint (made by nerve quantize) runs in nerve eval and "
                           "nerve predict only; train, resume or initialise from the float "
                           "checkpoint it was quantised from");
}

/* Reads one small float tensor of exactly n values; 0 if absent, 1 if read. */
static int read_small(const nerve_st_file *f, const char *key, float *out, int n, int *status)
{
    int k = nerve_st_find(f, key), nd, dims[NERVE_MAX_DIMS];
    if (k < 0)
        return 0;
    if ((*status = nerve_st_shape(f, k, &nd, dims)) != NERVE_OK)
        return 0;
    if (nd != 1 || dims[0] != n) {
        *status = nerve_set_error(NERVE_ERR_FORMAT, "tensor '%s' must have shape [%d]", key, n);
        return 0;
    }
    *status = nerve_st_read(f, k, out, (size_t)n);
    return *status == NERVE_OK;
}

static int whole_in(float v, int lo, int hi) { return v == floorf(v) && v >= lo && v <= hi; }

/* Turns the nodes an int8 checkpoint quantised into their int8 form: the weight leaves hold
 * the int8 values (read from I8 tensors) and become their dequantised floats. */
static int attach_quant(nerve_model *m, const nerve_st_file *f)
{
    const char *scheme = nerve_st_metadata(f, "nerve.quantized");
    int version = !strcmp(scheme, QUANT_SCHEME) ? 1 : !strcmp(scheme, QUANT_SCHEME_BIAS) ? 2
                  : !strcmp(scheme, QUANT_SCHEME_ADD) ? 3 : 0;
    if (!version) {
        char q[64];
        snprintf(q, sizeof q, "%s", scheme);
        return nerve_set_error(NERVE_ERR_FORMAT, "metadata nerve.quantized is '%s'; this build "
                               "reads '%s', '%s' and '%s' (quantise the float checkpoint again "
                               "with this build's nerve quantize)", q, QUANT_SCHEME,
                               QUANT_SCHEME_BIAS, QUANT_SCHEME_ADD);
    }
    nerve_graph *g = m->g;
    /* int8 nodes size their workspace for the compiled batch: the cfg's */
    int st = g->compiled ? NERVE_OK : nerve_model_compile(m, 0), count = 0;
    for (int id = 0; id < g->n_nodes && st == NERVE_OK; id++) {
        node *n = &g->nodes[id];
        char key[96];
        float act[7];
        snprintf(key, sizeof key, "quant.%s.add", n->name);
        if (op_quant_addable(g, n) && read_small(f, key, act, 7, &st)) {
            if (version < 3)
                st = nerve_set_error(NERVE_ERR_FORMAT, "tensor '%s' in a file whose "
                                     "nerve.quantized is '%s' (an int8 add needs '%s')", key,
                                     scheme, QUANT_SCHEME_ADD);
            else if (!whole_in(act[1], 0, 255) || !whole_in(act[3], 0, 255) ||
                     !whole_in(act[5], 0, 255) || !whole_in(act[6], 0, 1))
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s: zero points must be whole numbers "
                                     "in 0..255 and the ReLU flag 0 or 1", key);
            if (st == NERVE_OK) {
                op_quant_add_params p = {act[0], (int)act[1], act[2], (int)act[3], act[4],
                                         (int)act[5], (int)act[6]};
                st = op_quantize_add(g, id, &p);
            }
            count++;
            continue;
        }
        if (st != NERVE_OK)
            break;
        snprintf(key, sizeof key, "quant.%s.act", n->name);
        if (!op_quantizable(g, n) || !read_small(f, key, act, 5, &st))
            continue;
        node *wn = &g->nodes[n->in[1]];
        int N = wn->dims[0];
        size_t numel = node_numel(wn), K = numel / (size_t)N;
        float *scale = nerve_xmalloc((size_t)N * sizeof(float));
        float *bias = nerve_xmalloc((size_t)N * sizeof(float));
        int8_t *w = nerve_xmalloc(numel);
        if (!scale || !w || !bias)
            st = NERVE_ERR_NOMEM;
        snprintf(key, sizeof key, "quant.%s.w_scale", n->name);
        if (st == NERVE_OK && !read_small(f, key, scale, N, &st) && st == NERVE_OK)
            st = nerve_set_error(NERVE_ERR_FORMAT, "tensor '%s' is missing", key);
        snprintf(key, sizeof key, "quant.%s.bias", n->name);
        int has_bias = st == NERVE_OK && read_small(f, key, bias, N, &st);
        if (has_bias && version < 2)
            st = nerve_set_error(NERVE_ERR_FORMAT, "tensor '%s' in a file whose nerve.quantized "
                                 "is '%s' (an int8 bias needs '%s')", key, QUANT_SCHEME,
                                 QUANT_SCHEME_BIAS);
        for (int c = 0; has_bias && st == NERVE_OK && c < N; c++)
            if (!isfinite(bias[c]))
                st = nerve_set_error(NERVE_ERR_FORMAT, "tensor '%s': value %d is not finite",
                                     key, c);
        if (st == NERVE_OK && (!whole_in(act[1], 0, 255) || !whole_in(act[3], 0, 255) ||
                               !whole_in(act[4], 0, 1)))
            st = nerve_set_error(NERVE_ERR_FORMAT, "quant.%s.act: zero points must be whole "
                                 "numbers in 0..255 and the ReLU flag 0 or 1", n->name);
        for (size_t i = 0; st == NERVE_OK && i < numel; i++) {
            if (!whole_in(wn->value[i], -127, 127))
                st = nerve_set_error(NERVE_ERR_FORMAT, "tensor '%s': value %zu is %g, not an "
                                     "int8 weight in -127..127", wn->name, i,
                                     (double)wn->value[i]);
            else
                w[i] = (int8_t)wn->value[i];
        }
        if (st == NERVE_OK) {
            op_quant_params p = {w, scale, act[0], (int)act[1], act[2], (int)act[3], (int)act[4],
                                 has_bias ? bias : NULL};
            st = op_quantize_node(g, id, &p);
        }
        for (size_t i = 0; st == NERVE_OK && i < numel; i++)
            wn->value[i] = scale[i / K] * (float)w[i];
        count++;
        nerve_xfree(scale);
        nerve_xfree(bias);
        nerve_xfree(w);
    }
    if (st == NERVE_OK && count == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "metadata says int8 but no node has its "
                             "quant.<node>.act tensor");
    return st;
}

/* Absolute form of the directory relative data paths were resolved against, so that a
 * checkpoint moved elsewhere still finds the data its cfg names. */
void model_absolute_base_dir(const nerve_model *m, char *out, size_t size)
{
    char cwd[PATH_MAX];
    if (m->base_dir[0] == '/' || !getcwd(cwd, sizeof cwd))
        snprintf(out, size, "%s", m->base_dir);
    else if (m->base_dir[0])
        snprintf(out, size, "%s/%s", cwd, m->base_dir);
    else
        snprintf(out, size, "%s", cwd);
}

int nerve_model_write_into(nerve_model *m, nerve_st_writer *w)
{
    if (!m || !w)
        return nerve_set_error(NERVE_ERR_ARG, "write_into: null model or writer");
    int *ids;
    int n = persistent_nodes(m, &ids);
    if (n < 0)
        return n;
    int st = NERVE_OK;
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        nerve_tensor t = nerve_value(m->g, ids[i]);
        const op_quant_params *q = quant_weight(m, ids[i]);
        if (q) /* the int8 weights; the float leaf holds them dequantised */
            st = nerve_st_writer_add_i8(w, nerve_node_name(m->g, ids[i]), t.ndim, t.dims, q->w);
        else
            st = t.data ? nerve_st_writer_add(w, nerve_node_name(m->g, ids[i]), t.ndim, t.dims,
                                              t.data)
                        : nerve_last_status();
    }
    nerve_xfree(ids);
    if (st == NERVE_OK)
        st = write_quant(m, w);
    char dir[PATH_MAX + 520];
    model_absolute_base_dir(m, dir, sizeof dir);
    if (st == NERVE_OK)
        st = nerve_st_writer_meta(w, "nerve.format", CHECKPOINT_FORMAT);
    if (st == NERVE_OK)
        st = nerve_st_writer_meta(w, "nerve.cfg", m->text ? m->text : "");
    if (st == NERVE_OK)
        st = nerve_st_writer_meta(w, "nerve.cfg_dir", dir);
    if (st == NERVE_OK && m->n_names) { /* the class names, a JSON array of strings */
        nerve_strbuf b = {0};
        nerve_strbuf_puts(&b, "[");
        for (int i = 0; i < m->n_names; i++) {
            if (i)
                nerve_strbuf_puts(&b, ",");
            nerve_json_append_string(&b, m->names[i]);
        }
        nerve_strbuf_puts(&b, "]");
        st = b.failed ? NERVE_ERR_NOMEM : nerve_st_writer_meta(w, "nerve.names", b.data);
        nerve_strbuf_free(&b);
    }
    if (st == NERVE_OK && m->vocab.n > 0) { /* sampling needs no text */
        char hex[513];
        nerve_vocab_format(&m->vocab, hex);
        st = nerve_st_writer_meta(w, "nerve.vocab", hex);
    }
    return st;
}

/* The class names of metadata "nerve.names" (a JSON array of strings), if present. */
static int read_names(nerve_model *m, const nerve_st_file *f)
{
    const char *text = nerve_st_metadata(f, "nerve.names");
    return text ? model_names_from_json(m, text) : NERVE_OK;
}

int model_names_from_json(nerve_model *m, const char *text)
{
    char err[128];
    nerve_json *v = nerve_json_parse(text, strlen(text), err, sizeof err);
    int st = NERVE_OK;
    if (!v || v->type != NERVE_JSON_ARRAY)
        st = nerve_set_error(NERVE_ERR_FORMAT, "metadata nerve.names is not a JSON array of "
                             "strings (%s)", v ? "not an array" : err);
    const char **names = NULL;
    if (st == NERVE_OK && v->count > 0) {
        names = nerve_xmalloc((size_t)v->count * sizeof *names);
        if (!names)
            st = NERVE_ERR_NOMEM;
    }
    for (int i = 0; st == NERVE_OK && i < v->count; i++) {
        if (v->items[i].type != NERVE_JSON_STRING)
            st = nerve_set_error(NERVE_ERR_FORMAT, "metadata nerve.names: item %d is not a string", i);
        else
            names[i] = v->items[i].string;
    }
    if (st == NERVE_OK)
        st = nerve_model_set_names(m, v->count, names);
    nerve_xfree(names);
    nerve_json_free(v);
    return st;
}

int nerve_model_save(nerve_model *m, const char *path)
{
    if (!m || !path)
        return nerve_set_error(NERVE_ERR_ARG, "save: null model or path");
    nerve_st_writer *w = nerve_st_writer_create();
    if (!w)
        return nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    int st = nerve_model_write_into(m, w);
    if (st == NERVE_OK)
        st = nerve_st_writer_save(w, path);
    nerve_st_writer_free(w);
    return st;
}

/* Where node id's tensor is in f (-1: absent and allowed), after checking its shape. */
static int locate(nerve_model *m, const nerve_st_file *f, int id, int strict, int *where)
{
    const char *name = nerve_node_name(m->g, id);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(m->g, id, &nd, dims);
    char want[96], got[96];
    nerve_shape_str(nd, dims, want, sizeof want);
    int k = nerve_st_find(f, name);
    *where = k;
    if (k < 0)
        return strict ? nerve_set_error(NERVE_ERR_FORMAT,
                                        "tensor '%s' (shape %s in the model) is missing from "
                                        "the checkpoint", name, want)
                      : NERVE_OK;
    int fnd, fdims[NERVE_MAX_DIMS];
    int st = nerve_st_shape(f, k, &fnd, fdims);
    if (st)
        return st;
    if (!nerve_same_shape(nd, dims, fnd, fdims))
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "tensor '%s': the checkpoint has shape %s, the model has %s",
                               name, nerve_shape_str(fnd, fdims, got, sizeof got), want);
    return NERVE_OK;
}

static int read_from(nerve_model *m, const nerve_st_file *f, int strict, int allow_int8)
{
    if (!m || !f)
        return nerve_set_error(NERVE_ERR_ARG, "read_from: null model or file");
    if (!allow_int8 && model_refuse_quantized(f))
        return nerve_last_status();
    const char *format = nerve_st_metadata(f, "nerve.format");
    if (format && strcmp(format, CHECKPOINT_FORMAT) != 0) {
        char q[64];
        snprintf(q, sizeof q, "%s", format);
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "checkpoint format '%s' is not supported; expected '%s'", q,
                               CHECKPOINT_FORMAT);
    }
    int *ids;
    int n = persistent_nodes(m, &ids);
    if (n < 0)
        return n;
    int *where = nerve_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    int st = where ? NERVE_OK : NERVE_ERR_NOMEM;
    /* First every check, then every copy: a failed load changes nothing. */
    for (int i = 0; i < n && st == NERVE_OK; i++)
        st = locate(m, f, ids[i], strict, &where[i]);
    if (st == NERVE_OK)
        st = read_names(m, f);
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        if (where[i] < 0)
            continue;
        nerve_tensor t = nerve_value(m->g, ids[i]);
        st = nerve_st_read(f, where[i], t.data, nerve_tensor_numel(&t));
    }
    nerve_xfree(where);
    nerve_xfree(ids);
    return st;
}

int nerve_model_read_from(nerve_model *m, const nerve_st_file *f, int strict)
{
    return read_from(m, f, strict, 0);
}

/* Prefixes the current error message with the checkpoint's path. */
static int with_path(const char *path, int st)
{
    const char *msg = nerve_last_error();
    size_t len = strlen(path);
    if (strncmp(msg, path, len) == 0 && msg[len] == ':')
        return st; /* already names the file */
    char copy[900];
    snprintf(copy, sizeof copy, "%s", msg);
    return nerve_set_error(st, "%s: %s", path, copy);
}

int nerve_model_load_weights(nerve_model *m, const char *path, int strict)
{
    if (!m || !path)
        return nerve_set_error(NERVE_ERR_ARG, "load_weights: null model or path");
    nerve_st_file *f = nerve_st_open(path);
    if (!f)
        return nerve_last_status() ? nerve_last_status() : NERVE_ERR_IO;
    int st = nerve_model_read_from(m, f, strict);
    nerve_st_close(f);
    return st ? with_path(path, st) : NERVE_OK;
}

static void dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= size)
        n = size - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

nerve_model *nerve_model_load(const char *path) { return model_load_seq(path, 0); }

nerve_model *model_load_seq(const char *path, int seq)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "load: null path");
        return NULL;
    }
    nerve_st_file *f = nerve_st_open(path);
    if (!f)
        return NULL;
    const char *text = nerve_st_metadata(f, "nerve.cfg");
    if (!text) {
        nerve_set_error(NERVE_ERR_FORMAT,
                        "%s: not a nerve checkpoint (no 'nerve.cfg' in its metadata)", path);
        nerve_st_close(f);
        return NULL;
    }
    /* Data paths in the cfg are relative to where the cfg was, not to the checkpoint. */
    char base[PATH_MAX], cfg_name[PATH_MAX + 8];
    const char *dir = nerve_st_metadata(f, "nerve.cfg_dir");
    if (dir)
        snprintf(base, sizeof base, "%s", dir);
    else
        dir_of(path, base, sizeof base);
    snprintf(cfg_name, sizeof cfg_name, "%s:cfg", path);
    nerve_vocab vocab;
    const char *hex = nerve_st_metadata(f, "nerve.vocab");
    if (hex && nerve_vocab_parse(&vocab, hex) != NERVE_OK) {
        with_path(path, NERVE_ERR_FORMAT);
        nerve_st_close(f);
        return NULL;
    }
    model_build_opts o = {1, hex ? &vocab : NULL, seq};
    nerve_model *m = model_from_cfg_opts(text, cfg_name, base, &o);
    int st = m ? read_from(m, f, 1, 1) : NERVE_OK;
    if (st == NERVE_OK && m && nerve_st_metadata(f, "nerve.quantized"))
        st = attach_quant(m, f);
    nerve_st_close(f);
    if (st != NERVE_OK) {
        with_path(path, st);
        nerve_model_free(m);
        return NULL;
    }
    return m;
}
