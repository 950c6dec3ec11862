/* Export of a trained model to one standalone C99 source and its header (docs/export-c.md).
 *
 * The model is compiled at batch 1 in evaluation mode and its graph walked from the output
 * node back: every node the output depends on becomes a few lines of plain C (a call of a
 * small kernel emitted once per kind, or a loop), every parameter and statistic a const
 * array, and every intermediate value a slice of one static arena. The arena is planned
 * from the nodes' live intervals (a value lives from the node that writes it to its last
 * reader), element-wise operators write over an input that dies with them, and views
 * (reshape, flatten, dropout at inference) are their input's buffer: the arena's size, and
 * so the RAM the model needs, is known exactly when the files are written. The generated
 * code calls no allocator and no part of libnerve; it needs <math.h> only when an operator
 * does (exp, tanh, ...). */
#include "../model/model.h"
#include "../ops/ops.h"
#include "../kernels/kernels.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- a growing string --------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *s = nerve_xrealloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* A float as a C literal that reads back as the same float (9 significant digits). */
static const char *flit(float v, char *buf, size_t size)
{
    if (v == 0.0f) {
        snprintf(buf, size, signbit(v) ? "-0.0f" : "0.0f");
        return buf;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.9g", (double)v);
    int plain = !strchr(tmp, '.') && !strchr(tmp, 'e');
    snprintf(buf, size, "%s%sf", tmp, plain ? ".0" : "");
    return buf;
}

/* ---- the plan ------------------------------------------------------------------------ */

enum { X_NONE, X_INPUT, X_CONST, X_ARENA, X_VIEW, X_META };

/* kernels the generated file needs (each emitted once) */
enum {
    K_DENSE, K_CONV, K_POOL_MAX, K_POOL_AVG, K_POOL_L2, K_SOFTMAX, K_SCALE_SHIFT, K_COPY_ROWS,
    K_TRANSPOSE, K_BCAST, K_SIGMOID, K_LSTM, K_GRU, K_RNN, K_MATH, K_Q8, K_Q8_DENSE, K_Q8_CONV, K_Q8_ADD,
    K_COUNT
};

typedef struct xnode {
    int needed;
    int kind;       /* X_* */
    int block;      /* arena block owner (the node whose value this one's buffer is) */
    int last_read;  /* the last node reading this value (INT_MAX: read at the end) */
    size_t scratch; /* floats after the value in the node's block */
    char ptr[96];   /* C expression of the buffer */
} xnode;

typedef struct block {
    int owner;
    size_t size; /* floats */
    int start, end;
    size_t off;
} block;

typedef struct exporter {
    nerve_model *m;
    nerve_graph *g;
    const char *name;
    xnode *x;
    block *blocks;
    int n_blocks;
    size_t arena;        /* floats */
    size_t const_bytes;  /* bytes of every const array */
    int used[K_COUNT];
    sbuf consts, code;
    int carried;         /* the model carries recurrent state between calls */
} exporter;

static node *gn(exporter *e, int id) { return &e->g->nodes[id]; }

static int unsupported(exporter *e, const node *n, const char *why)
{
    (void)e;
    return nerve_set_error(NERVE_ERR_ARG,
                           "export-c: node '%s' (operator '%s') %s; exportable operators: dense, "
                           "conv (1-D and 2-D), pool, batchnorm, activation, prelu, softmax, "
                           "log_softmax, dropout, add/sub/mul/div, affine, zscore, concat, slice, "
                           "transpose, reshape, flatten, embedding, rnn (RNN, LSTM, GRU), rnn_state",
                           n->name, n->op ? n->op->name : "leaf", why);
}

/* Marks the nodes the output depends on. */
static void mark_needed(exporter *e, int id)
{
    if (e->x[id].needed)
        return;
    e->x[id].needed = 1;
    node *n = gn(e, id);
    /* an int8 node reads its input only: weights and bias are its own integers */
    for (int i = 0; i < (op_quant_of(n) ? 1 : n->n_in); i++)
        mark_needed(e, n->in[i]);
}

static int is_view_op(const node *n)
{
    const char *op = n->op->name;
    return (n->op->flags & OP_ALIAS_INPUT) || !strcmp(op, "dropout");
}

/* Operators whose output may overwrite input 0 (each output element depends only on the
 * input element at the same index, or reads the whole row before writing it). */
static int may_run_in_place(exporter *e, const node *n)
{
    static const char *const ops[] = {"activation", "batchnorm", "affine", "prelu", "softmax",
                                      "log_softmax", "zscore", "add", "sub", "mul", "div",
                                      "qadd"};
    for (size_t i = 0; i < NERVE_ARRAY_LEN(ops); i++)
        if (!strcmp(n->op->name, ops[i])) {
            const node *x = gn(e, n->in[0]);
            return nerve_same_shape(n->ndim, n->dims, x->ndim, x->dims);
        }
    return 0;
}

/* Floats of private workspace an operator keeps after its value (its block's tail). */
static size_t op_scratch(exporter *e, const node *n)
{
    if (op_quant_of(n)) /* the quantised input, bytes in floats */
        return (node_numel(gn(e, n->in[0])) / (size_t)gn(e, n->in[0])->dims[0] + 3) / 4;
    if (strcmp(n->op->name, "rnn"))
        return 0;
    int cell = n->attr.rnn.cell, H = n->attr.rnn.hidden, D = n->attr.rnn.dirs;
    int G = cell == NERVE_CELL_LSTM ? 4 : cell == NERVE_CELL_GRU ? 3 : 1;
    (void)e;
    /* h and C of every direction (the final states rnn_state reads), the gates, and two
     * rows for the GRU's recurrent part */
    return (size_t)2 * D * H + (size_t)G * H + 2 * (size_t)H;
}

static int find_block(exporter *e, int owner)
{
    for (int b = 0; b < e->n_blocks; b++)
        if (e->blocks[b].owner == owner)
            return b;
    return -1;
}

/* Places the blocks: largest first, each at the lowest offset that overlaps no placed block
 * alive at the same time. */
static void place_blocks(exporter *e)
{
    int nb = e->n_blocks;
    int *order = nerve_xmalloc((size_t)(nb ? nb : 1) * sizeof(int));
    int *placed = nerve_xmalloc((size_t)(nb ? nb : 1) * sizeof(int));
    if (!order || !placed) {
        nerve_xfree(order);
        nerve_xfree(placed);
        e->arena = (size_t)-1;
        return;
    }
    for (int i = 0; i < nb; i++)
        order[i] = i;
    for (int i = 1; i < nb; i++) /* insertion sort: larger first, then earlier */
        for (int j = i; j > 0; j--) {
            block *a = &e->blocks[order[j - 1]], *b = &e->blocks[order[j]];
            if (a->size > b->size || (a->size == b->size && a->start <= b->start))
                break;
            int t = order[j - 1];
            order[j - 1] = order[j];
            order[j] = t;
        }
    int n_placed = 0;
    e->arena = 0;
    for (int i = 0; i < nb; i++) {
        block *b = &e->blocks[order[i]];
        size_t off = 0;
        for (int moved = 1; moved;) { /* bump past every conflicting block until none is left */
            moved = 0;
            for (int k = 0; k < n_placed; k++) {
                block *p = &e->blocks[placed[k]];
                int overlap_time = b->start <= p->end && p->start <= b->end;
                int overlap_space = off < p->off + p->size && p->off < off + b->size;
                if (overlap_time && overlap_space) {
                    off = p->off + p->size;
                    moved = 1;
                }
            }
        }
        b->off = off;
        placed[n_placed++] = order[i];
        if (off + b->size > e->arena)
            e->arena = off + b->size;
    }
    nerve_xfree(order);
    nerve_xfree(placed);
}

static int plan(exporter *e, int out)
{
    nerve_graph *g = e->g;
    int N = g->n_nodes, input = nerve_model_input(e->m);
    mark_needed(e, out);
    for (int id = 0; id < N; id++) {
        xnode *x = &e->x[id];
        x->block = -1;
        x->last_read = -1;
    }
    for (int id = 0; id < N; id++) {
        node *n = gn(e, id);
        if (!e->x[id].needed)
            continue;
        for (int i = 0; i < n->n_in; i++)
            if (e->x[n->in[i]].last_read < id)
                e->x[n->in[i]].last_read = id;
    }
    e->x[out].last_read = INT_MAX;
    for (int id = 0; id < N; id++) {
        xnode *x = &e->x[id];
        node *n = gn(e, id);
        if (!x->needed)
            continue;
        if (!n->op) {
            if (id == input) {
                x->kind = X_INPUT;
                snprintf(x->ptr, sizeof x->ptr, "in");
            } else if (n->kind == NERVE_NODE_INPUT) {
                return nerve_set_error(NERVE_ERR_ARG, "export-c: the output depends on input node "
                                       "'%s' besides the model's input; only one input is exported",
                                       n->name);
            } else if (n->transient) { /* a carried recurrent state: arena, kept between calls */
                x->kind = X_ARENA;
                x->block = id;
                e->carried = 1;
            } else {
                size_t k = node_numel(n);
                for (size_t i = 0; i < k; i++)
                    if (!isfinite(n->value[i]))
                        return nerve_set_error(NERVE_ERR_ARG, "export-c: %s '%s' holds a non-finite "
                                               "value at index %zu", n->kind == NERVE_NODE_PARAM ?
                                               "parameter" : "state", n->name, i);
                x->kind = X_CONST;
                snprintf(x->ptr, sizeof x->ptr, "%s_w%d", e->name, id);
            }
            continue;
        }
        if (!strcmp(n->op->name, "rnn_params")) {
            x->kind = X_META;
            continue;
        }
        if (is_view_op(n)) {
            xnode *src = &e->x[n->in[0]];
            x->kind = src->kind == X_ARENA || src->kind == X_VIEW ? X_VIEW : src->kind;
            x->block = src->block;
            memcpy(x->ptr, src->ptr, sizeof x->ptr);
            if (src->kind == X_CONST)
                return unsupported(e, n, "views a constant (nothing to compute)");
            continue;
        }
        x->scratch = op_scratch(e, n);
        x->kind = X_ARENA;
        x->block = id;
        if (may_run_in_place(e, n)) {
            xnode *src = &e->x[n->in[0]];
            int ok = src->block >= 0 && gn(e, src->block)->transient == 0;
            for (int k = 0; ok && k < id; k++) /* every node in the source block dies here */
                if (e->x[k].needed && e->x[k].block == src->block && e->x[k].last_read > id)
                    ok = 0;
            if (ok)
                x->block = src->block;
        }
    }
    /* blocks and their live intervals */
    e->blocks = nerve_xcalloc((size_t)N, sizeof(block));
    if (!e->blocks)
        return NERVE_ERR_NOMEM;
    for (int id = 0; id < N; id++) {
        xnode *x = &e->x[id];
        if (!x->needed || x->block < 0)
            continue;
        int b = find_block(e, x->block);
        if (b < 0) {
            b = e->n_blocks++;
            e->blocks[b].owner = x->block;
            e->blocks[b].start = x->block;
            e->blocks[b].end = x->block;
            e->blocks[b].size = node_numel(gn(e, x->block)) + e->x[x->block].scratch;
            if (gn(e, x->block)->transient) { /* carried: alive across calls */
                e->blocks[b].start = -1;
                e->blocks[b].end = INT_MAX;
            }
        }
        if (x->last_read > e->blocks[b].end)
            e->blocks[b].end = x->last_read;
    }
    place_blocks(e);
    if (e->arena == (size_t)-1)
        return NERVE_ERR_NOMEM;
    for (int id = 0; id < N; id++) {
        xnode *x = &e->x[id];
        if (x->needed && x->block >= 0 && (x->kind == X_ARENA || x->kind == X_VIEW))
            snprintf(x->ptr, sizeof x->ptr, "(%s_arena + %zu)", e->name, e->blocks[find_block(e, x->block)].off);
    }
    return NERVE_OK;
}

/* ---- constants ------------------------------------------------------------------------ */

static void emit_floats(exporter *e, const char *cname, const float *v, size_t n, const char *what)
{
    char lit[48];
    sb_printf(&e->consts, "/* %s */\nconst float %s[%zu] = {", what, cname, n);
    for (size_t i = 0; i < n; i++)
        sb_printf(&e->consts, "%s%s%s", i ? "," : "", i % 8 ? " " : "\n    ", flit(v[i], lit, sizeof lit));
    sb_printf(&e->consts, "\n};\n");
    e->const_bytes += n * sizeof(float);
}

static void emit_ints(exporter *e, const char *cname, const int *v, int n)
{
    sb_printf(&e->consts, "const int %s[%d] = {", cname, n);
    for (int i = 0; i < n; i++)
        sb_printf(&e->consts, "%s%d", i ? ", " : "", v[i]);
    sb_printf(&e->consts, "};\n");
    e->const_bytes += (size_t)n * sizeof(int);
}

/* The const arrays of every needed leaf (a flipped convolution's weights are emitted by its
 * node instead). */
static void emit_leaf_consts(exporter *e)
{
    for (int id = 0; id < e->g->n_nodes; id++) {
        node *n = gn(e, id);
        if (!e->x[id].needed || e->x[id].kind != X_CONST)
            continue;
        /* a leaf read only by batch norm (folded into scale/shift) or zscore is not emitted */
        int plain_reader = 0;
        for (int k = id + 1; k < e->g->n_nodes && !plain_reader; k++) {
            node *r = gn(e, k);
            if (!e->x[k].needed || !r->op)
                continue;
            for (int i = 0; i < r->n_in; i++)
                if (r->in[i] == id && strcmp(r->op->name, "batchnorm") && strcmp(r->op->name, "zscore") &&
                    !(!strcmp(r->op->name, "conv") && r->attr.conv.cfg.flip && i == 1))
                    plain_reader = 1;
        }
        if (plain_reader)
            emit_floats(e, e->x[id].ptr, n->value, node_numel(n), n->name);
    }
}

/* ---- kernels (emitted once each, when used) ------------------------------------------- */

static const char *const kernel_text[K_COUNT] = {
    [K_Q8] =
        "/* int8 layers (nerve quantize, docs/quantize.md): the integers of nerve's int8 kernels */\n"
        "static unsigned char q8_quantize(float x, float inv, int zp)\n"
        "{\n"
        "    float v = x * inv;\n"
        "    long q;\n"
        "    v = fmaxf(v, -512.0f); /* NaN gives -512 */\n"
        "    v = fminf(v, 512.0f);\n"
        "    q = lrintf(v) + zp; /* round half to even */\n"
        "    return (unsigned char)(q < 0 ? 0 : q > 255 ? 255 : q);\n"
        "}\n"
        "/* zp + (acc + bias) * mult / 2^shift, rounded half up, clamped to lo..255 */\n"
        "static int q8_requant(int32_t acc, int32_t bias, int32_t mult, int32_t shift, int zp, int lo)\n"
        "{\n"
        "    long long t = (long long)acc + bias, p, q;\n"
        "    t = t > 2147483647LL ? 2147483647LL : t < -2147483647LL - 1 ? -2147483647LL - 1 : t;\n"
        "    p = t * mult;\n"
        "    if (shift > 0)\n"
        "        p = (p + (1LL << (shift - 1))) >> shift;\n"
        "    q = zp + (p > 1024 ? 1024 : p < -1024 ? -1024 : p);\n"
        "    return q < lo ? lo : q > 255 ? 255 : (int)q;\n"
        "}\n",
    [K_Q8_DENSE] =
        "/* int8 dense: p = {rows, K, N, zin, zout, lo}; xq: K bytes of workspace */\n"
        "static void q8_dense(const float *x, float *y, const signed char *w, const int32_t *bias,\n"
        "                     const int32_t *mult, const int32_t *shift, const int *p, float inv,\n"
        "                     float scale, unsigned char *xq)\n"
        "{\n"
        "    int rows = p[0], K = p[1], N = p[2], zin = p[3], zout = p[4], lo = p[5];\n"
        "    for (int r = 0; r < rows; r++, x += K, y += N) {\n"
        "        for (int k = 0; k < K; k++)\n"
        "            xq[k] = q8_quantize(x[k], inv, zin);\n"
        "        for (int n = 0; n < N; n++) {\n"
        "            const signed char *wn = w + (long)n * K;\n"
        "            int32_t acc = 0;\n"
        "            for (int k = 0; k < K; k++)\n"
        "                acc += (int32_t)xq[k] * wn[k];\n"
        "            y[n] = scale * (float)(q8_requant(acc, bias[n], mult[n], shift[n], zout, lo) - zout);\n"
        "        }\n"
        "    }\n"
        "}\n",
    [K_Q8_CONV] =
        "/* int8 2-D correlation of x [C, H, W] with w [O, C, KH, KW] into y [O, OH, OW];\n"
        " * p = {C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, zin, zout, lo}; padding reads\n"
        " * the input's zero point; xq: C * H * W bytes of workspace */\n"
        "static void q8_conv(const float *x, float *y, const signed char *w, const int32_t *bias,\n"
        "                    const int32_t *mult, const int32_t *shift, const int *p, float inv,\n"
        "                    float scale, unsigned char *xq)\n"
        "{\n"
        "    int C = p[0], H = p[1], W = p[2], O = p[3], KH = p[4], KW = p[5], OH = p[6], OW = p[7];\n"
        "    int sh = p[8], sw = p[9], ph = p[10], pw = p[11], dh = p[12], dw = p[13];\n"
        "    int zin = p[14], zout = p[15], lo = p[16];\n"
        "    for (long i = 0; i < (long)C * H * W; i++)\n"
        "        xq[i] = q8_quantize(x[i], inv, zin);\n"
        "    for (int o = 0; o < O; o++)\n"
        "        for (int oy = 0; oy < OH; oy++)\n"
        "            for (int ox = 0; ox < OW; ox++) {\n"
        "                const signed char *wo = w + (long)o * C * KH * KW;\n"
        "                int32_t acc = 0;\n"
        "                for (int c = 0; c < C; c++)\n"
        "                    for (int ky = 0; ky < KH; ky++) {\n"
        "                        int iy = oy * sh + ky * dh - ph;\n"
        "                        for (int kx = 0; kx < KW; kx++, wo++) {\n"
        "                            int ix = ox * sw + kx * dw - pw;\n"
        "                            int v = iy >= 0 && iy < H && ix >= 0 && ix < W\n"
        "                                        ? xq[((long)c * H + iy) * W + ix] : zin;\n"
        "                            acc += (int32_t)v * *wo;\n"
        "                        }\n"
        "                    }\n"
        "                y[((long)o * OH + oy) * OW + ox] =\n"
        "                    scale * (float)(q8_requant(acc, bias[o], mult[o], shift[o], zout, lo) - zout);\n"
        "            }\n"
        "}\n",
    [K_Q8_ADD] =
        "/* int8 add of a and b into y (n values): each quantised with its own scale, the bytes\n"
        " * added into the output's with fixed-point multipliers ma, mb and one shift;\n"
        " * p = {n, za, zb, zy, lo, ma, mb, shift} */\n"
        "static void q8_add(const float *a, const float *b, float *y, const int *p, float inva,\n"
        "                   float invb, float scale)\n"
        "{\n"
        "    int za = p[1], zb = p[2], zy = p[3], lo = p[4], sh = p[7];\n"
        "    int32_t ma = p[5], mb = p[6];\n"
        "    for (long i = 0; i < (long)p[0]; i++) {\n"
        "        int32_t t = (int32_t)(q8_quantize(a[i], inva, za) - za) * ma +\n"
        "                    (int32_t)(q8_quantize(b[i], invb, zb) - zb) * mb, q;\n"
        "        if (sh > 0)\n"
        "            t = (t + ((int32_t)1 << (sh - 1))) >> sh;\n"
        "        q = zy + t;\n"
        "        q = q < lo ? lo : q > 255 ? 255 : q;\n"
        "        y[i] = scale * (float)(q - zy);\n"
        "    }\n"
        "}\n",
    [K_DENSE] =
        "/* y[r, j] = b[j] + sum_i x[r, i] w[j, i] */\n"
        "static void k_dense(const float *x, const float *w, const float *b, float *y, int rows, int in,\n"
        "                    int out)\n"
        "{\n"
        "    for (int r = 0; r < rows; r++, x += in, y += out)\n"
        "        for (int j = 0; j < out; j++) {\n"
        "            const float *wj = w + (long)j * in;\n"
        "            float s = b ? b[j] : 0.0f;\n"
        "            for (int i = 0; i < in; i++)\n"
        "                s += x[i] * wj[i];\n"
        "            y[j] = s;\n"
        "        }\n"
        "}\n",
    [K_CONV] =
        "/* 2-D correlation of x [C, H, W] with w [O, C/G, KH, KW] into y [O, OH, OW] */\n"
        "static void k_conv(const float *x, const float *w, const float *b, float *y, const int *p)\n"
        "{\n"
        "    int C = p[0], H = p[1], W = p[2], O = p[3], KH = p[4], KW = p[5], OH = p[6], OW = p[7];\n"
        "    int sh = p[8], sw = p[9], ph = p[10], pw = p[11], dh = p[12], dw = p[13], G = p[14];\n"
        "    int cg = C / G, og = O / G;\n"
        "    for (int o = 0; o < O; o++) {\n"
        "        const float *wo = w + (long)o * cg * KH * KW;\n"
        "        const float *xg = x + (long)(o / og) * cg * H * W;\n"
        "        for (int oy = 0; oy < OH; oy++)\n"
        "            for (int ox = 0; ox < OW; ox++) {\n"
        "                float s = b ? b[o] : 0.0f;\n"
        "                for (int c = 0; c < cg; c++)\n"
        "                    for (int ky = 0; ky < KH; ky++) {\n"
        "                        int iy = oy * sh - ph + ky * dh;\n"
        "                        if (iy < 0 || iy >= H)\n"
        "                            continue;\n"
        "                        for (int kx = 0; kx < KW; kx++) {\n"
        "                            int ix = ox * sw - pw + kx * dw;\n"
        "                            if (ix >= 0 && ix < W)\n"
        "                                s += xg[((long)c * H + iy) * W + ix] * wo[(c * KH + ky) * KW + kx];\n"
        "                        }\n"
        "                    }\n"
        "                *y++ = s;\n"
        "            }\n"
        "    }\n"
        "}\n",
    [K_POOL_MAX] =
        "/* max pooling of planes maps [H, W]; p: H W OH OW kh kw sh sw ph pw */\n"
        "static void k_pool_max(const float *x, float *y, int planes, const int *p)\n"
        "{\n"
        "    int H = p[0], W = p[1], OH = p[2], OW = p[3], kh = p[4], kw = p[5], sh = p[6], sw = p[7];\n"
        "    for (int c = 0; c < planes; c++, x += H * W)\n"
        "        for (int oy = 0; oy < OH; oy++)\n"
        "            for (int ox = 0; ox < OW; ox++) {\n"
        "                int ys = oy * sh - p[8], xs = ox * sw - p[9];\n"
        "                int y0 = ys < 0 ? 0 : ys, x0 = xs < 0 ? 0 : xs;\n"
        "                int y1 = ys + kh < H ? ys + kh : H, x1 = xs + kw < W ? xs + kw : W;\n"
        "                float m = x[y0 * W + x0];\n"
        "                for (int yy = y0; yy < y1; yy++)\n"
        "                    for (int xx = x0; xx < x1; xx++)\n"
        "                        if (x[yy * W + xx] > m)\n"
        "                            m = x[yy * W + xx];\n"
        "                *y++ = m;\n"
        "            }\n"
        "}\n",
    [K_POOL_AVG] =
        "/* average pooling; p: H W OH OW kh kw sh sw ph pw count_include_pad */\n"
        "static void k_pool_avg(const float *x, float *y, int planes, const int *p)\n"
        "{\n"
        "    int H = p[0], W = p[1], OH = p[2], OW = p[3], kh = p[4], kw = p[5], sh = p[6], sw = p[7];\n"
        "    for (int c = 0; c < planes; c++, x += H * W)\n"
        "        for (int oy = 0; oy < OH; oy++)\n"
        "            for (int ox = 0; ox < OW; ox++) {\n"
        "                int ys = oy * sh - p[8], xs = ox * sw - p[9];\n"
        "                int ye = ys + kh < H + p[8] ? ys + kh : H + p[8];\n"
        "                int xe = xs + kw < W + p[9] ? xs + kw : W + p[9];\n"
        "                int padded = (ye - ys) * (xe - xs);\n"
        "                int y0 = ys < 0 ? 0 : ys, x0 = xs < 0 ? 0 : xs;\n"
        "                int y1 = ye < H ? ye : H, x1 = xe < W ? xe : W;\n"
        "                float s = 0.0f;\n"
        "                for (int yy = y0; yy < y1; yy++)\n"
        "                    for (int xx = x0; xx < x1; xx++)\n"
        "                        s += x[yy * W + xx];\n"
        "                *y++ = s / (float)(p[10] ? padded : (y1 - y0) * (x1 - x0));\n"
        "            }\n"
        "}\n",
    [K_POOL_L2] =
        "/* L2 pooling; p: H W OH OW kh kw sh sw ph pw */\n"
        "static void k_pool_l2(const float *x, float *y, int planes, const int *p)\n"
        "{\n"
        "    int H = p[0], W = p[1], OH = p[2], OW = p[3], kh = p[4], kw = p[5], sh = p[6], sw = p[7];\n"
        "    for (int c = 0; c < planes; c++, x += H * W)\n"
        "        for (int oy = 0; oy < OH; oy++)\n"
        "            for (int ox = 0; ox < OW; ox++) {\n"
        "                int ys = oy * sh - p[8], xs = ox * sw - p[9];\n"
        "                int y0 = ys < 0 ? 0 : ys, x0 = xs < 0 ? 0 : xs;\n"
        "                int y1 = ys + kh < H ? ys + kh : H, x1 = xs + kw < W ? xs + kw : W;\n"
        "                float s = 0.0f;\n"
        "                for (int yy = y0; yy < y1; yy++)\n"
        "                    for (int xx = x0; xx < x1; xx++)\n"
        "                        s += x[yy * W + xx] * x[yy * W + xx];\n"
        "                *y++ = sqrtf(s);\n"
        "            }\n"
        "}\n",
    [K_SOFTMAX] =
        "/* softmax (or log-softmax) of outer x inner rows of len values spaced by inner */\n"
        "static void k_softmax(const float *x, float *y, int outer, int len, int inner, int log_space)\n"
        "{\n"
        "    for (int o = 0; o < outer; o++)\n"
        "        for (int k = 0; k < inner; k++) {\n"
        "            const float *u = x + (long)o * len * inner + k;\n"
        "            float *v = y + (long)o * len * inner + k, m = u[0], sum = 0.0f;\n"
        "            for (int j = 1; j < len; j++)\n"
        "                m = u[j * inner] > m ? u[j * inner] : m;\n"
        "            for (int j = 0; j < len; j++)\n"
        "                sum += expf(u[j * inner] - m);\n"
        "            for (int j = 0; j < len; j++)\n"
        "                v[j * inner] = log_space ? u[j * inner] - m - logf(sum) : expf(u[j * inner] - m) / sum;\n"
        "        }\n"
        "}\n",
    [K_SCALE_SHIFT] =
        "/* y = x * scale[c] + shift[c] over [outer, C, inner] (batch norm in evaluation form) */\n"
        "static void k_scale_shift(const float *x, float *y, int outer, int C, int inner,\n"
        "                          const float *scale, const float *shift)\n"
        "{\n"
        "    for (int o = 0; o < outer; o++)\n"
        "        for (int c = 0; c < C; c++)\n"
        "            for (int i = 0; i < inner; i++, x++, y++)\n"
        "                *y = *x * scale[c] + shift[c];\n"
        "}\n",
    [K_COPY_ROWS] =
        "/* rows x width floats from src (row stride ls) to dst (row stride ld) */\n"
        "static void k_copy_rows(float *dst, int ld, const float *src, int ls, int rows, int width)\n"
        "{\n"
        "    for (int r = 0; r < rows; r++)\n"
        "        for (int i = 0; i < width; i++)\n"
        "            dst[(long)r * ld + i] = src[(long)r * ls + i];\n"
        "}\n",
    [K_TRANSPOSE] =
        "/* y [dims] gathers x: a step along y's axis k is xs[k] floats in x */\n"
        "static void k_transpose(const float *x, float *y, int nd, const int *dims, const int *xs, long n)\n"
        "{\n"
        "    int idx[8] = {0};\n"
        "    long xo = 0;\n"
        "    for (long i = 0; i < n; i++) {\n"
        "        y[i] = x[xo];\n"
        "        for (int k = nd - 1; k >= 0; k--) {\n"
        "            xo += xs[k];\n"
        "            if (++idx[k] < dims[k])\n"
        "                break;\n"
        "            xo -= (long)xs[k] * dims[k];\n"
        "            idx[k] = 0;\n"
        "        }\n"
        "    }\n"
        "}\n",
    [K_BCAST] =
        "/* y = a op b with broadcasting: a step along y's axis k is sa[k] in a and sb[k] in b */\n"
        "static void k_bcast(const float *a, const float *b, float *y, int op, int nd, const int *dims,\n"
        "                    const int *sa, const int *sb, long n)\n"
        "{\n"
        "    int idx[8] = {0};\n"
        "    long ia = 0, ib = 0;\n"
        "    for (long i = 0; i < n; i++) {\n"
        "        float u = a[ia], v = b[ib];\n"
        "        y[i] = op == 0 ? u + v : op == 1 ? u - v : op == 2 ? u * v : u / v;\n"
        "        for (int k = nd - 1; k >= 0; k--) {\n"
        "            ia += sa[k];\n"
        "            ib += sb[k];\n"
        "            if (++idx[k] < dims[k])\n"
        "                break;\n"
        "            ia -= (long)sa[k] * dims[k];\n"
        "            ib -= (long)sb[k] * dims[k];\n"
        "            idx[k] = 0;\n"
        "        }\n"
        "    }\n"
        "}\n",
    [K_SIGMOID] =
        "static float k_sigmoid(float z)\n"
        "{\n"
        "    if (z >= 0.0f)\n"
        "        return 1.0f / (1.0f + expf(-z));\n"
        "    float e = expf(z);\n"
        "    return e / (1.0f + e);\n"
        "}\n",
    [K_LSTM] =
        "/* LSTM over T steps of x [T, F] (direction d walks backwards when d = 1); s: h and C of\n"
        " * every direction [2, D, H], then the gates [4H]. retseq: y [T, D*H], else y [D*H] */\n"
        "static void k_lstm(const float *x, float *y, float *s, const k_rnn_weights *w, int T, int F,\n"
        "                   int H, int D, int retseq, int coupled)\n"
        "{\n"
        "    for (int d = 0; d < D; d++) {\n"
        "        float *h = s + d * H, *c = s + (D + d) * H, *a = s + 2 * D * H;\n"
        "        const k_rnn_weights *q = w + d;\n"
        "        for (int step = 0; step < T; step++) {\n"
        "            int t = d ? T - 1 - step : step;\n"
        "            for (int j = 0; j < 4 * H; j++) {\n"
        "                float v = (q->b_ih ? q->b_ih[j] : 0.0f) + (q->b_hh ? q->b_hh[j] : 0.0f);\n"
        "                for (int i = 0; i < F; i++)\n"
        "                    v += x[(long)t * F + i] * q->w_ih[(long)j * F + i];\n"
        "                for (int i = 0; i < H; i++)\n"
        "                    v += h[i] * q->w_hh[(long)j * H + i];\n"
        "                a[j] = v;\n"
        "            }\n"
        "            for (int j = 0; j < H; j++) {\n"
        "                float ai = a[j], af = a[H + j], ag = a[2 * H + j], ao = a[3 * H + j];\n"
        "                if (q->peep) {\n"
        "                    ai += q->peep[j] * c[j];\n"
        "                    af += q->peep[H + j] * c[j];\n"
        "                }\n"
        "                float f = k_sigmoid(af), i = coupled ? 1.0f - f : k_sigmoid(ai);\n"
        "                c[j] = f * c[j] + i * tanhf(ag);\n"
        "                if (q->peep)\n"
        "                    ao += q->peep[2 * H + j] * c[j];\n"
        "                h[j] = k_sigmoid(ao) * tanhf(c[j]);\n"
        "                if (retseq)\n"
        "                    y[((long)t * D + d) * H + j] = h[j];\n"
        "            }\n"
        "        }\n"
        "        if (!retseq)\n"
        "            for (int j = 0; j < H; j++)\n"
        "                y[d * H + j] = h[j];\n"
        "    }\n"
        "}\n",
    [K_GRU] =
        "/* GRU over T steps (course: n = tanh(W_in x + b_in + W_hn (r h) + b_hn), else\n"
        " * n = tanh(W_in x + b_in + r (W_hn h + b_hn))); s: h [D, H], unused [D, H], gates [3H],\n"
        " * then two rows [H] */\n"
        "static void k_gru(const float *x, float *y, float *s, const k_rnn_weights *w, int T, int F,\n"
        "                  int H, int D, int retseq, int course)\n"
        "{\n"
        "    for (int d = 0; d < D; d++) {\n"
        "        float *h = s + d * H, *a = s + 2 * D * H, *hn = a + 3 * H, *rh = hn + H;\n"
        "        const k_rnn_weights *q = w + d;\n"
        "        for (int step = 0; step < T; step++) {\n"
        "            int t = d ? T - 1 - step : step;\n"
        "            for (int j = 0; j < 3 * H; j++) {\n"
        "                float v = q->b_ih ? q->b_ih[j] : 0.0f;\n"
        "                for (int i = 0; i < F; i++)\n"
        "                    v += x[(long)t * F + i] * q->w_ih[(long)j * F + i];\n"
        "                if (j < 2 * H) {\n"
        "                    float u = q->b_hh ? q->b_hh[j] : 0.0f;\n"
        "                    for (int i = 0; i < H; i++)\n"
        "                        u += h[i] * q->w_hh[(long)j * H + i];\n"
        "                    v = k_sigmoid(v + u);\n"
        "                }\n"
        "                a[j] = v;\n"
        "            }\n"
        "            for (int j = 0; j < H; j++)\n"
        "                rh[j] = course ? a[j] * h[j] : h[j];\n"
        "            for (int j = 0; j < H; j++) {\n"
        "                float u = q->b_hh ? q->b_hh[2 * H + j] : 0.0f;\n"
        "                for (int i = 0; i < H; i++)\n"
        "                    u += rh[i] * q->w_hh[(long)(2 * H + j) * H + i];\n"
        "                hn[j] = u;\n"
        "            }\n"
        "            for (int j = 0; j < H; j++) {\n"
        "                float z = a[H + j];\n"
        "                float n = tanhf(a[2 * H + j] + (course ? hn[j] : a[j] * hn[j]));\n"
        "                h[j] = (1.0f - z) * n + z * h[j];\n"
        "                if (retseq)\n"
        "                    y[((long)t * D + d) * H + j] = h[j];\n"
        "            }\n"
        "        }\n"
        "        if (!retseq)\n"
        "            for (int j = 0; j < H; j++)\n"
        "                y[d * H + j] = h[j];\n"
        "    }\n"
        "}\n",
    [K_RNN] =
        "/* vanilla RNN h = tanh(W_ih x + b_ih + W_hh h + b_hh); s: h [D, H], unused [D, H], [H] */\n"
        "static void k_rnn(const float *x, float *y, float *s, const k_rnn_weights *w, int T, int F,\n"
        "                  int H, int D, int retseq)\n"
        "{\n"
        "    for (int d = 0; d < D; d++) {\n"
        "        float *h = s + d * H, *a = s + 2 * D * H;\n"
        "        const k_rnn_weights *q = w + d;\n"
        "        for (int step = 0; step < T; step++) {\n"
        "            int t = d ? T - 1 - step : step;\n"
        "            for (int j = 0; j < H; j++) {\n"
        "                float v = (q->b_ih ? q->b_ih[j] : 0.0f) + (q->b_hh ? q->b_hh[j] : 0.0f);\n"
        "                for (int i = 0; i < F; i++)\n"
        "                    v += x[(long)t * F + i] * q->w_ih[(long)j * F + i];\n"
        "                for (int i = 0; i < H; i++)\n"
        "                    v += h[i] * q->w_hh[(long)j * H + i];\n"
        "                a[j] = tanhf(v);\n"
        "            }\n"
        "            for (int j = 0; j < H; j++) {\n"
        "                h[j] = a[j];\n"
        "                if (retseq)\n"
        "                    y[((long)t * D + d) * H + j] = h[j];\n"
        "            }\n"
        "        }\n"
        "        if (!retseq)\n"
        "            for (int j = 0; j < H; j++)\n"
        "                y[d * H + j] = h[j];\n"
        "    }\n"
        "}\n",
};

/* ---- code per node -------------------------------------------------------------------- */

/* A p[] table of ints for a kernel call, named after the node. */
static void params_table(exporter *e, int id, const int *v, int n, char *name, size_t size)
{
    snprintf(name, size, "%s_p%d", e->name, id);
    emit_ints(e, name, v, n);
}

static void shape_comment(exporter *e, const node *n)
{
    char s[96];
    nerve_shape_str(n->ndim, n->dims, s, sizeof s);
    sb_printf(&e->code, "    /* %s: %s -> %s */\n", n->name, n->op->name, s);
}

static const char *ptr(exporter *e, int id) { return e->x[id].ptr; }

static int emit_activation_expr(exporter *e, const node *n, char *out, size_t size)
{
    char a[48], b[48];
    flit(n->attr.activation.alpha, a, sizeof a);
    flit(n->attr.activation.beta, b, sizeof b);
    switch (n->attr.activation.type) {
    case NERVE_ACT_IDENTITY: snprintf(out, size, "u"); break;
    case NERVE_ACT_STEP: snprintf(out, size, "u >= 0.0f ? 1.0f : 0.0f"); break;
    case NERVE_ACT_SIGMOID: snprintf(out, size, "k_sigmoid(%s * u)", a); e->used[K_SIGMOID] = 1; break;
    case NERVE_ACT_HARD_SIGMOID:
        snprintf(out, size, "%s * u + %s < 0.0f ? 0.0f : %s * u + %s > 1.0f ? 1.0f : %s * u + %s", a, b, a, b, a, b);
        break;
    case NERVE_ACT_TANH: snprintf(out, size, "tanhf(u)"); e->used[K_MATH] = 1; break;
    case NERVE_ACT_RELU: snprintf(out, size, "u > 0.0f ? u : 0.0f"); break;
    case NERVE_ACT_LEAKY_RELU: snprintf(out, size, "u > 0.0f ? u : %s * u", a); break;
    case NERVE_ACT_ELU: snprintf(out, size, "u >= 0.0f ? u : %s * expm1f(u)", a); e->used[K_MATH] = 1; break;
    case NERVE_ACT_SELU:
        snprintf(out, size, "%s * (u > 0.0f ? u : %s * expm1f(u))", b, a);
        e->used[K_MATH] = 1;
        break;
    case NERVE_ACT_SOFTPLUS:
        snprintf(out, size, "(u > 0.0f ? u : 0.0f) + log1pf(expf(-fabsf(u)))");
        e->used[K_MATH] = 1;
        break;
    case NERVE_ACT_SOFTSIGN: snprintf(out, size, "u / (1.0f + (u < 0.0f ? -u : u))"); break;
    case NERVE_ACT_RELU6: snprintf(out, size, "u < 0.0f ? 0.0f : u > %s ? %s : u", a, a); break;
    case NERVE_ACT_RAMP: snprintf(out, size, "(u > 0.0f ? u : 0.0f) + %s * u", a); break;
    default: return unsupported(e, n, "has an unknown activation type");
    }
    return NERVE_OK;
}

static void emit_i32(exporter *e, const char *cname, const int32_t *v, int n, const char *what)
{
    sb_printf(&e->consts, "/* %s */\nconst int32_t %s[%d] = {", what, cname, n);
    for (int i = 0; i < n; i++)
        sb_printf(&e->consts, "%s%s%ld", i ? "," : "", i % 8 ? " " : "\n    ", (long)v[i]);
    sb_printf(&e->consts, "\n};\n");
    e->const_bytes += (size_t)n * sizeof(int32_t);
}

/* An int8 dense or conv node: its int8 weights, folded bias, multipliers and shifts as
 * const arrays, and a call of q8_dense / q8_conv, which give nerve's integers. */
static int emit_q8(exporter *e, int id, node *n)
{
    const op_quant_params *q = op_quant_of(n);
    const int32_t *bias, *mult, *shift;
    float inv;
    int st = op_quant_ints(n, &bias, &mult, &shift, &inv);
    if (st)
        return st;
    node *x = gn(e, n->in[0]), *w = gn(e, n->in[1]);
    int N = w->dims[0];
    size_t K = node_numel(w) / (size_t)N;
    int conv = !strcmp(n->op->name, "qconv");
    kern_conv_shape ks;
    int groups = 1;
    if (conv && (st = op_conv_shape(e->g, n, &ks, &groups)) != NERVE_OK)
        return st;
    if (conv && (ks.image[0] != 1 || ks.kernel[0] != 1))
        return unsupported(e, n, "is a 3-D convolution");
    char cname[96], lit1[48], lit2[48], pname[96];
    /* the weights, taps reversed for a flipped (true) convolution as the kernels read them */
    /* padded with zeros to a multiple of 4 bytes: the int32 arrays after it then need no
     * alignment gap, and the stated flash stays exact */
    size_t nw = (size_t)N * K, padded = (nw + 3) & ~(size_t)3;
    snprintf(cname, sizeof cname, "%s_qw%d", e->name, id);
    sb_printf(&e->consts, "/* %s: int8 weights [%d, %zu]%s */\nconst signed char %s[%zu] = {", n->name,
              N, K, padded > nw ? " and zeros to a multiple of 4 bytes" : "", cname, padded);
    size_t taps = conv ? (size_t)ks.kernel[1] * ks.kernel[2] : 1;
    for (size_t i = 0; i < padded; i++) {
        size_t src = conv && ks.flip ? i - i % taps + (taps - 1 - i % taps) : i;
        sb_printf(&e->consts, "%s%s%d", i ? "," : "", i % 16 ? " " : "\n    ", i < nw ? q->w[src] : 0);
    }
    sb_printf(&e->consts, "\n};\n");
    e->const_bytes += padded;
    char bn[96], mn[96], sn[96];
    snprintf(bn, sizeof bn, "%s_qb%d", e->name, id);
    snprintf(mn, sizeof mn, "%s_qm%d", e->name, id);
    snprintf(sn, sizeof sn, "%s_qs%d", e->name, id);
    emit_i32(e, bn, bias, N, "folded int32 bias");
    emit_i32(e, mn, mult, N, "fixed-point multipliers (Q31)");
    emit_i32(e, sn, shift, N, "right shifts");
    int lo = q->relu ? q->out_zero : 0;
    if (conv) {
        int p[17] = {ks.channels, ks.image[1], ks.image[2], N, ks.kernel[1], ks.kernel[2],
                     ks.out[1], ks.out[2], ks.stride[1], ks.stride[2], ks.pad[1], ks.pad[2],
                     ks.dilation[1], ks.dilation[2], q->in_zero, q->out_zero, lo};
        params_table(e, id, p, 17, pname, sizeof pname);
    } else {
        int p[6] = {x->dims[0], (int)K, N, q->in_zero, q->out_zero, lo};
        params_table(e, id, p, 6, pname, sizeof pname);
    }
    e->used[K_Q8] = e->used[K_MATH] = 1;
    e->used[conv ? K_Q8_CONV : K_Q8_DENSE] = 1;
    sb_printf(&e->code, "    %s(%s, %s, %s, %s, %s, %s, %s, %s, %s, (unsigned char *)(%s + %zu));\n",
              conv ? "q8_conv" : "q8_dense", ptr(e, n->in[0]), ptr(e, id), cname, bn, mn, sn, pname,
              flit(inv, lit1, sizeof lit1), flit(q->out_scale, lit2, sizeof lit2), ptr(e, id),
              node_numel(n));
    return NERVE_OK;
}

/* An int8 add: its zero points and fixed-point multipliers as a table, and a call of
 * q8_add, which gives nerve's integers (kern_q8_add_one). */
static int emit_qadd(exporter *e, int id, node *n)
{
    int32_t k[3];
    const op_quant_add_params *q = op_quant_add_of(n, k);
    char pname[96], l1[48], l2[48], l3[48];
    int p[8] = {(int)node_numel(n), q->a_zero, q->b_zero, q->out_zero, q->relu ? q->out_zero : 0,
                k[0], k[1], k[2]};
    params_table(e, id, p, 8, pname, sizeof pname);
    e->used[K_Q8] = e->used[K_MATH] = e->used[K_Q8_ADD] = 1;
    sb_printf(&e->code, "    q8_add(%s, %s, %s, %s, %s, %s, %s);\n", ptr(e, n->in[0]), ptr(e, n->in[1]),
              ptr(e, id), pname, flit(1.0f / q->a_scale, l1, sizeof l1),
              flit(1.0f / q->b_scale, l2, sizeof l2), flit(q->out_scale, l3, sizeof l3));
    return NERVE_OK;
}

static int emit_conv(exporter *e, int id, node *n)
{
    node *x = gn(e, n->in[0]), *w = gn(e, n->in[1]);
    int S = w->ndim - 2;
    if (S < 1 || S > 2)
        return unsupported(e, n, "is a 3-D convolution");
    int one_d = S == 1;
    int H = one_d ? 1 : x->dims[2], W = one_d ? x->dims[2] : x->dims[3];
    int KH = one_d ? 1 : w->dims[2], KW = one_d ? w->dims[2] : w->dims[3];
    int OH = one_d ? 1 : n->dims[2], OW = one_d ? n->dims[2] : n->dims[3];
    const nerve_conv_config *c = &n->attr.conv.cfg; /* spatial dim d of S at d */
    int sv[2], pv[2], dv[2];
    for (int d = 0; d < S; d++) {
        int in = x->dims[2 + d], k = w->dims[2 + d], s = c->stride[d], dil = c->dilation[d];
        int pb = c->pad_begin[d];
        if (c->same) { /* same: nerve's split of the total padding */
            int out = (in + s - 1) / s, e_ = dil * (k - 1) + 1, total = (out - 1) * s + e_ - in;
            pb = total > 0 ? total / 2 : 0;
        }
        sv[d] = s, pv[d] = pb, dv[d] = dil;
    }
    int sh = one_d ? 1 : sv[0], sw = one_d ? sv[0] : sv[1];
    int ph = one_d ? 0 : pv[0], pw = one_d ? pv[0] : pv[1];
    int dh = one_d ? 1 : dv[0], dw = one_d ? dv[0] : dv[1];
    int p[15] = {x->dims[1], H, W, n->dims[1], KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, c->groups};
    char pname[96], wname[96];
    params_table(e, id, p, 15, pname, sizeof pname);
    snprintf(wname, sizeof wname, "%s", ptr(e, n->in[1]));
    if (c->flip) { /* flip: a true convolution is a correlation with reversed taps */
        size_t taps = (size_t)KH * KW, rows = node_numel(w) / taps;
        float *f = nerve_xalloc_floats(node_numel(w));
        if (!f)
            return NERVE_ERR_NOMEM;
        for (size_t r = 0; r < rows; r++)
            for (size_t t = 0; t < taps; t++)
                f[r * taps + t] = w->value[r * taps + taps - 1 - t];
        snprintf(wname, sizeof wname, "%s_w%d_flipped", e->name, id);
        emit_floats(e, wname, f, node_numel(w), "flipped taps");
        nerve_xfree_aligned(f);
    }
    e->used[K_CONV] = 1;
    sb_printf(&e->code, "    k_conv(%s, %s, %s, %s, %s);\n", ptr(e, n->in[0]), wname,
              n->n_in == 3 ? ptr(e, n->in[2]) : "0", ptr(e, id), pname);
    return NERVE_OK;
}

static int emit_pool(exporter *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    const attr_pool *a = &n->attr.pool;
    int type = (int)a->type, one_d = x->ndim == 3;
    if (x->ndim != 3 && x->ndim != 4)
        return unsupported(e, n, "pools a tensor that is neither [N, C, L] nor [N, C, H, W]");
    int H = one_d ? 1 : x->dims[2], W = one_d ? x->dims[2] : x->dims[3];
    int OH = one_d ? 1 : n->dims[2], OW = one_d ? n->dims[2] : n->dims[3];
    int kh, kw, sh, sw, ph = 0, pw = 0;
    if (type == NERVE_POOL_GLOBAL_AVG || type == NERVE_POOL_GLOBAL_MAX) {
        kh = H, kw = W, sh = sw = 1;
    } else if (one_d) {
        kh = sh = 1, kw = a->kernel[0], sw = a->stride[0], pw = a->pad[0];
    } else {
        kh = a->kernel[0], kw = a->kernel[1], sh = a->stride[0], sw = a->stride[1];
        ph = a->pad[0], pw = a->pad[1];
    }
    int p[11] = {H, W, OH, OW, kh, kw, sh, sw, ph, pw, type == NERVE_POOL_AVG && a->count_include_pad};
    char pname[96];
    params_table(e, id, p, type == NERVE_POOL_AVG ? 11 : 10, pname, sizeof pname);
    const char *fn = "k_pool_avg";
    int k = K_POOL_AVG;
    if (type == NERVE_POOL_MAX || type == NERVE_POOL_GLOBAL_MAX)
        fn = "k_pool_max", k = K_POOL_MAX;
    else if (type == NERVE_POOL_L2)
        fn = "k_pool_l2", k = K_POOL_L2, e->used[K_MATH] = 1;
    e->used[k] = 1;
    sb_printf(&e->code, "    %s(%s, %s, %d, %s);\n", fn, ptr(e, n->in[0]), ptr(e, id),
              x->dims[0] * x->dims[1], pname);
    return NERVE_OK;
}

static int emit_batchnorm(exporter *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    int C = x->dims[1];
    const float *gamma = gn(e, n->in[1])->value, *beta = gn(e, n->in[2])->value;
    const float *mean = gn(e, n->in[3])->value, *var = gn(e, n->in[4])->value;
    float *ss = nerve_xalloc_floats(2 * (size_t)C);
    if (!ss)
        return NERVE_ERR_NOMEM;
    for (int c = 0; c < C; c++) { /* exactly the evaluation forward's scale and shift */
        float istd = 1.0f / sqrtf(var[c] + n->attr.batchnorm.eps);
        ss[c] = gamma[c] * istd;
        ss[C + c] = beta[c] - mean[c] * ss[c];
    }
    char sname[96], hname[96];
    snprintf(sname, sizeof sname, "%s_w%d_scale", e->name, id);
    snprintf(hname, sizeof hname, "%s_w%d_shift", e->name, id);
    emit_floats(e, sname, ss, (size_t)C, "batch norm: gamma / sqrt(running_var + eps)");
    emit_floats(e, hname, ss + C, (size_t)C, "batch norm: beta - running_mean * scale");
    nerve_xfree_aligned(ss);
    size_t inner = node_numel(x) / ((size_t)x->dims[0] * C);
    e->used[K_SCALE_SHIFT] = 1;
    sb_printf(&e->code, "    k_scale_shift(%s, %s, %d, %d, %zu, %s, %s);\n", ptr(e, n->in[0]),
              ptr(e, id), x->dims[0], C, inner, sname, hname);
    return NERVE_OK;
}

static int emit_zscore(exporter *e, int id, node *n)
{
    /* the forward's per-element mean and 1/std (a zero std centres only) */
    node *x = gn(e, n->in[0]), *mean = gn(e, n->in[1]), *sd = gn(e, n->in[2]);
    size_t S = node_numel(n) / (size_t)n->dims[0];
    if (node_numel(mean) != 1 || node_numel(sd) != 1) {
        if (nerve_shape_numel(mean->ndim, mean->dims) != S || nerve_shape_numel(sd->ndim, sd->dims) != S)
            return unsupported(e, n, "broadcasts statistics of a shape other than one value or "
                               "one sample");
    }
    char lit[2][48];
    if (node_numel(mean) == 1 && node_numel(sd) == 1) {
        float s = sd->value[0], inv = 1.0f / (s == 0.0f ? 1.0f : s);
        sb_printf(&e->code, "    for (int i = 0; i < %zu; i++)\n        %s[i] = (%s[i] - %s) * %s;\n",
                  node_numel(n), ptr(e, id), ptr(e, n->in[0]), flit(mean->value[0], lit[0], 48),
                  flit(inv, lit[1], 48));
        return NERVE_OK;
    }
    float *mi = nerve_xalloc_floats(2 * S);
    if (!mi)
        return NERVE_ERR_NOMEM;
    for (size_t i = 0; i < S; i++) {
        float s = sd->value[i];
        mi[i] = mean->value[i];
        mi[S + i] = 1.0f / (s == 0.0f ? 1.0f : s);
    }
    char mname[96], iname[96];
    snprintf(mname, sizeof mname, "%s_w%d_mean", e->name, id);
    snprintf(iname, sizeof iname, "%s_w%d_inv_std", e->name, id);
    emit_floats(e, mname, mi, S, "z-score: mean");
    emit_floats(e, iname, mi + S, S, "z-score: 1 / std");
    nerve_xfree_aligned(mi);
    sb_printf(&e->code, "    for (int i = 0; i < %zu; i++)\n        %s[i] = (%s[i] - %s[i %% %zu]) * %s[i %% %zu];\n",
              node_numel(n), ptr(e, id), ptr(e, n->in[0]), mname, S, iname, S);
    (void)x;
    return NERVE_OK;
}

/* Strides of dimension k of x seen from a rank-nd result (0 where x broadcasts). */
static void broadcast_strides(const node *x, int nd, const int *dims, int *st)
{
    int stride = 1;
    for (int k = nd - 1; k >= 0; k--) {
        int xd = k - (nd - x->ndim);
        int size = xd >= 0 ? x->dims[xd] : 1;
        st[k] = size == 1 && dims[k] != 1 ? 0 : stride;
        stride *= size;
    }
}

static int emit_binary(exporter *e, int id, node *n)
{
    static const char *const names[] = {"add", "sub", "mul", "div"}, *const sym[] = {"+", "-", "*", "/"};
    int op = 0;
    while (strcmp(names[op], n->op->name))
        op++;
    node *a = gn(e, n->in[0]), *b = gn(e, n->in[1]);
    size_t count = node_numel(n);
    if (node_numel(a) == count && node_numel(b) == count) {
        sb_printf(&e->code, "    for (int i = 0; i < %zu; i++)\n        %s[i] = %s[i] %s %s[i];\n", count,
                  ptr(e, id), ptr(e, n->in[0]), sym[op], ptr(e, n->in[1]));
        return NERVE_OK;
    }
    if (n->ndim > 8)
        return unsupported(e, n, "broadcasts over more than 8 dimensions");
    int sa[8], sb[8];
    broadcast_strides(a, n->ndim, n->dims, sa);
    broadcast_strides(b, n->ndim, n->dims, sb);
    int tab[24];
    for (int k = 0; k < n->ndim; k++)
        tab[k] = n->dims[k], tab[8 + k] = sa[k], tab[16 + k] = sb[k];
    char pname[96];
    snprintf(pname, sizeof pname, "%s_p%d", e->name, id);
    sb_printf(&e->consts, "/* dims, strides of a, strides of b */\n");
    emit_ints(e, pname, tab, 24);
    e->used[K_BCAST] = 1;
    sb_printf(&e->code, "    k_bcast(%s, %s, %s, %d, %d, %s, %s + 8, %s + 16, %zu);\n", ptr(e, n->in[0]),
              ptr(e, n->in[1]), ptr(e, id), op, n->ndim, pname, pname, pname, count);
    return NERVE_OK;
}

static size_t outer_of(const node *n, int ax)
{
    size_t v = 1;
    for (int k = 0; k < ax; k++)
        v *= (size_t)n->dims[k];
    return v;
}

static size_t inner_of(const node *n, int ax)
{
    size_t v = 1;
    for (int k = ax + 1; k < n->ndim; k++)
        v *= (size_t)n->dims[k];
    return v;
}

static int emit_concat(exporter *e, int id, node *n)
{
    int ax = normalize_axis(n->attr.axis.axis, n->ndim);
    size_t outer = outer_of(n, ax), row = inner_of(n, ax) * (size_t)n->dims[ax], off = 0;
    e->used[K_COPY_ROWS] = 1;
    for (int k = 0; k < n->n_in; k++) {
        node *x = gn(e, n->in[k]);
        size_t width = inner_of(x, ax) * (size_t)x->dims[ax];
        sb_printf(&e->code, "    k_copy_rows(%s + %zu, %zu, %s, %zu, %zu, %zu);\n", ptr(e, id), off, row,
                  ptr(e, n->in[k]), width, outer, width);
        off += width;
    }
    return NERVE_OK;
}

static int emit_slice(exporter *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    int ax = normalize_axis(n->attr.slice.axis, x->ndim);
    int start = n->attr.slice.start, size = x->dims[ax];
    if (start < 0)
        start += size;
    start = start < 0 ? 0 : start > size ? size : start;
    size_t inner = inner_of(x, ax), outer = outer_of(x, ax);
    e->used[K_COPY_ROWS] = 1;
    sb_printf(&e->code, "    k_copy_rows(%s, %zu, %s + %zu, %zu, %zu, %zu);\n", ptr(e, id),
              inner * (size_t)n->dims[ax], ptr(e, n->in[0]), inner * (size_t)start,
              inner * (size_t)x->dims[ax], outer, inner * (size_t)n->dims[ax]);
    return NERVE_OK;
}

static int emit_transpose(exporter *e, int id, node *n)
{
    node *x = gn(e, n->in[0]);
    int nd = n->ndim, xs[8], tab[16];
    if (nd > 8)
        return unsupported(e, n, "has more than 8 dimensions");
    int stride = 1;
    for (int k = nd - 1; k >= 0; k--) {
        xs[k] = stride;
        stride *= x->dims[k];
    }
    for (int k = 0; k < nd; k++)
        tab[k] = n->dims[k], tab[8 + k] = xs[n->attr.dims.dims[k]];
    char pname[96];
    snprintf(pname, sizeof pname, "%s_p%d", e->name, id);
    sb_printf(&e->consts, "/* dims, strides in the input */\n");
    emit_ints(e, pname, tab, 16);
    e->used[K_TRANSPOSE] = 1;
    sb_printf(&e->code, "    k_transpose(%s, %s, %d, %s, %s + 8, %zu);\n", ptr(e, n->in[0]), ptr(e, id), nd,
              pname, pname, node_numel(n));
    return NERVE_OK;
}

static int emit_rnn(exporter *e, int id, node *n)
{
    const attr_rnn *a = &n->attr.rnn;
    int cell = a->cell, H = a->hidden, flags = a->lstm_flags, form = a->gru_form;
    int D = a->dirs, retseq = a->return_sequences, carry = a->carry;
    node *x = gn(e, n->in[0]);
    if (a->slot[RNN_LENGTHS] >= 0)
        return unsupported(e, n, "reads per-sequence lengths (export runs whole sequences)");
    if (x->dims[1] != 1)
        return unsupported(e, n, "has more than one sequence per sample");
    int T = x->dims[0], F = x->dims[2];
    int h0 = a->slot[RNN_H0] >= 0 ? n->in[a->slot[RNN_H0]] : -1;
    int c0 = a->slot[RNN_C0] >= 0 ? n->in[a->slot[RNN_C0]] : -1;
    sb_printf(&e->code, "    {\n        static const k_rnn_weights w[%d] = {", D);
    for (int d = 0; d < D; d++) {
        node *p = gn(e, n->in[a->slot[RNN_PARAMS0 + d]]);
        const int *ps = p->attr.rnn_params.slot;
        const char *f[RNN_PARAM_SLOTS];
        for (int k = 0; k < RNN_PARAM_SLOTS; k++)
            f[k] = ps[k] >= 0 ? ptr(e, p->in[ps[k]]) : "0";
        sb_printf(&e->code, "%s{%s, %s, %s, %s, %s}", d ? ", " : "", f[0], f[1], f[2], f[3], f[4]);
    }
    sb_printf(&e->code, "};\n");
    /* s: h, C per direction: the initial state (zero, or the carried one) */
    const char *s = ptr(e, id);
    size_t soff = node_numel(n);
    for (int k = 0; k < 2; k++) {
        int st = k ? c0 : h0;
        if (st >= 0) {
            e->used[K_COPY_ROWS] = 1;
            sb_printf(&e->code, "        k_copy_rows(%s + %zu, 0, %s, 0, 1, %d);\n", s,
                      soff + (size_t)k * D * H, ptr(e, st), D * H);
        }
        else
            sb_printf(&e->code, "        for (int i = 0; i < %d; i++)\n            (%s + %zu)[i] = 0.0f;\n",
                      D * H, s, soff + (size_t)k * D * H);
        if (st >= 0 && gn(e, st)->kind == NERVE_NODE_STATE && gn(e, st)->dims[1] != 1)
            return unsupported(e, n, "carries a state of more than one row");
    }
    e->used[K_MATH] = 1;
    e->used[K_SIGMOID] |= cell != NERVE_CELL_RNN;
    if (cell == NERVE_CELL_LSTM) {
        e->used[K_LSTM] = 1;
        sb_printf(&e->code, "        k_lstm(%s, %s, %s + %zu, w, %d, %d, %d, %d, %d, %d);\n", ptr(e, n->in[0]), s,
                  s, soff, T, F, H, D, retseq, (flags & NERVE_LSTM_COUPLED) != 0);
    } else if (cell == NERVE_CELL_GRU) {
        e->used[K_GRU] = 1;
        sb_printf(&e->code, "        k_gru(%s, %s, %s + %zu, w, %d, %d, %d, %d, %d, %d);\n", ptr(e, n->in[0]), s,
                  s, soff, T, F, H, D, retseq, form == NERVE_GRU_COURSE);
    } else {
        e->used[K_RNN] = 1;
        sb_printf(&e->code, "        k_rnn(%s, %s, %s + %zu, w, %d, %d, %d, %d, %d);\n", ptr(e, n->in[0]), s, s,
                  soff, T, F, H, D, retseq);
    }
    if (carry) /* the final state is the next call's initial state */
        for (int k = 0; k < 2; k++) {
            int st = k ? c0 : h0;
            if (st >= 0 && e->x[st].kind == X_ARENA)
                sb_printf(&e->code, "        k_copy_rows(%s, 0, %s + %zu, 0, 1, %d);\n", ptr(e, st), s,
                          soff + (size_t)k * D * H, D * H);
        }
    sb_printf(&e->code, "    }\n");
    return NERVE_OK;
}

static int emit_node(exporter *e, int id)
{
    node *n = gn(e, id);
    const char *op = n->op->name;
    char expr[640];
    shape_comment(e, n);
    if (!strcmp(op, "dense")) {
        node *x = gn(e, n->in[0]);
        e->used[K_DENSE] = 1;
        sb_printf(&e->code, "    k_dense(%s, %s, %s, %s, %d, %zu, %d);\n", ptr(e, n->in[0]), ptr(e, n->in[1]),
                  n->n_in == 3 ? ptr(e, n->in[2]) : "0", ptr(e, id), x->dims[0],
                  node_numel(x) / (size_t)x->dims[0], n->dims[1]);
        return NERVE_OK;
    }
    if (!strcmp(op, "conv"))
        return emit_conv(e, id, n);
    if (op_quant_of(n))
        return emit_q8(e, id, n);
    if (op_quant_add_of(n, NULL))
        return emit_qadd(e, id, n);
    if (!strcmp(op, "pool"))
        return emit_pool(e, id, n);
    if (!strcmp(op, "batchnorm"))
        return emit_batchnorm(e, id, n);
    if (!strcmp(op, "zscore"))
        return emit_zscore(e, id, n);
    if (!strcmp(op, "activation")) {
        int st = emit_activation_expr(e, n, expr, sizeof expr);
        if (st)
            return st;
        sb_printf(&e->code, "    for (int i = 0; i < %zu; i++) {\n        float u = %s[i];\n        %s[i] = %s;\n    }\n",
                  node_numel(n), ptr(e, n->in[0]), ptr(e, id), expr);
        return NERVE_OK;
    }
    if (!strcmp(op, "prelu")) {
        node *a = gn(e, n->in[1]);
        size_t inner = a->dims[0] == 1 || n->ndim < 2 ? node_numel(n) : inner_of(n, 1);
        size_t C = a->dims[0] == 1 || n->ndim < 2 ? 1 : (size_t)n->dims[1];
        sb_printf(&e->code, "    for (int i = 0; i < %zu; i++) {\n        float u = %s[i];\n"
                  "        %s[i] = u > 0.0f ? u : %s[(i / %zu) %% %zu] * u;\n    }\n",
                  node_numel(n), ptr(e, n->in[0]), ptr(e, id), ptr(e, n->in[1]), inner, C);
        return NERVE_OK;
    }
    if (!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) {
        int ax = normalize_axis(n->attr.softmax.axis, n->ndim);
        e->used[K_SOFTMAX] = e->used[K_MATH] = 1;
        sb_printf(&e->code, "    k_softmax(%s, %s, %zu, %d, %zu, %d);\n", ptr(e, n->in[0]), ptr(e, id),
                  outer_of(n, ax), n->dims[ax], inner_of(n, ax), n->attr.softmax.log_space);
        return NERVE_OK;
    }
    if (!strcmp(op, "affine")) {
        char a[48], b[48];
        sb_printf(&e->code, "    for (int i = 0; i < %zu; i++)\n        %s[i] = %s * %s[i] + %s;\n",
                  node_numel(n), ptr(e, id), flit(n->attr.affine.scale, a, sizeof a), ptr(e, n->in[0]),
                  flit(n->attr.affine.shift, b, sizeof b));
        return NERVE_OK;
    }
    if (!strcmp(op, "add") || !strcmp(op, "sub") || !strcmp(op, "mul") || !strcmp(op, "div"))
        return emit_binary(e, id, n);
    if (!strcmp(op, "concat"))
        return emit_concat(e, id, n);
    if (!strcmp(op, "slice"))
        return emit_slice(e, id, n);
    if (!strcmp(op, "transpose"))
        return emit_transpose(e, id, n);
    if (!strcmp(op, "rnn"))
        return emit_rnn(e, id, n);
    if (!strcmp(op, "rnn_state")) {
        node *r = gn(e, n->in[0]);
        int D = r->attr.rnn.dirs, H = r->attr.rnn.hidden;
        e->used[K_COPY_ROWS] = 1;
        sb_printf(&e->code, "    k_copy_rows(%s, 0, %s + %zu, 0, 1, %d);\n", ptr(e, id), ptr(e, n->in[0]),
                  node_numel(r) + (size_t)n->attr.rnn_state.which * D * H, D * H);
        return NERVE_OK;
    }
    if (!strcmp(op, "embedding")) {
        node *t = gn(e, n->in[1]);
        int V = t->dims[0], E = t->dims[1];
        sb_printf(&e->code,
                  "    for (int k = 0; k < %zu; k++) {\n        float v = %s[k];\n"
                  "        int row = v >= 0.0f && v < %d.0f ? (int)v : -1;\n"
                  "        for (int j = 0; j < %d; j++)\n"
                  "            %s[k * %d + j] = row >= 0 ? %s[row * %d + j] : 0.0f;\n    }\n",
                  node_numel(gn(e, n->in[0])), ptr(e, n->in[0]), V, E, ptr(e, id), E, ptr(e, n->in[1]), E);
        return NERVE_OK;
    }
    return unsupported(e, n, "has no C export yet");
}

/* ---- the files ------------------------------------------------------------------------ */

static int valid_name(const char *s)
{
    if (!s || !s[0] || strlen(s) > 40 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

static int write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return nerve_set_error(NERVE_ERR_IO, "export-c: cannot write %s", path);
    size_t put = fwrite(text, 1, len, f);
    int bad = fclose(f) != 0 || put != len;
    return bad ? nerve_set_error(NERVE_ERR_IO, "export-c: writing %s failed", path) : NERVE_OK;
}

/* The output conversion nerve_predict_outputs applies: softmax over the channels of a
 * classifier's logits, sigmoid of a binary one's. */
static void emit_output(exporter *e, int out)
{
    node *o = gn(e, out);
    nerve_head_info h = nerve_model_head(e->m);
    size_t numel = node_numel(o);
    /* the classes are axis 1, but a language model's [N, T, V] scores are over its last
     * axis, the vocabulary (as sampling reads them) */
    int axis = h.task == NERVE_TASK_LANGUAGE ? o->ndim - 1 : 1;
    int C = o->ndim >= 2 ? o->dims[axis] : 1;
    int softmax = h.logits && (h.task == NERVE_TASK_CLASSIFY || h.task == NERVE_TASK_SEGMENT ||
                               h.task == NERVE_TASK_LANGUAGE) && C > 1;
    if (h.logits && softmax) {
        e->used[K_SOFTMAX] = e->used[K_MATH] = 1;
        sb_printf(&e->code, "    /* probabilities: softmax of the logits over the classes */\n"
                  "    k_softmax(%s, out, %zu, %d, %zu, 0);\n", ptr(e, out), outer_of(o, axis), C, inner_of(o, axis));
    } else if (h.logits) {
        e->used[K_SIGMOID] = e->used[K_MATH] = 1;
        sb_printf(&e->code, "    /* probabilities: sigmoid of the logits */\n"
                  "    for (int i = 0; i < %zu; i++)\n        out[i] = k_sigmoid(%s[i]);\n", numel, ptr(e, out));
    } else {
        sb_printf(&e->code, "    for (int i = 0; i < %zu; i++)\n        out[i] = %s[i];\n", numel, ptr(e, out));
    }
}

static int write_files(exporter *e, const char *dir, int out, nerve_export_c_info *info)
{
    node *in = gn(e, nerve_model_input(e->m)), *o = gn(e, out);
    size_t in_numel = node_numel(in), out_numel = node_numel(o);
    char upper[48], path[1024], shape_in[96], shape_out[96];
    size_t k = 0;
    for (; e->name[k] && k + 1 < sizeof upper; k++)
        upper[k] = (char)(e->name[k] >= 'a' && e->name[k] <= 'z' ? e->name[k] - 32 : e->name[k]);
    upper[k] = 0;
    nerve_shape_str(in->ndim, in->dims, shape_in, sizeof shape_in);
    nerve_shape_str(o->ndim, o->dims, shape_out, sizeof shape_out);
    const nerve_net_config *cfg = nerve_model_config(e->m);
    sbuf h = {0}, c = {0};
    sb_printf(&h,
              "/* %s.h: generated by nerve export-c from a trained model; standalone C99. */\n"
              "#ifndef %s_H\n#define %s_H\n\n"
              "/* one input: %zu floats, the model input %s at batch 1, scaled as in training\n"
              " * (pixels times %g) */\n"
              "#define %s_IN_SIZE %zu\n"
              "/* one output: %zu floats (%s)%s */\n"
              "#define %s_OUT_SIZE %zu\n"
              "/* flash: bytes of the const arrays (weights, statistics, shape tables) */\n"
              "#define %s_WEIGHT_BYTES %zu\n"
              "/* RAM: bytes of the static arena (activations, workspace, carried state) */\n"
              "#define %s_ARENA_BYTES %zu\n\n"
              "/* Runs the model on in[%s_IN_SIZE], writing out[%s_OUT_SIZE]. Not reentrant: one\n"
              " * static arena serves every call. */\n"
              "void %s_run(const float *in, float *out);\n"
              "/* Zeroes the recurrent state carried from one call to the next%s. */\n"
              "void %s_reset(void);\n\n#endif\n",
              e->name, upper, upper, in_numel, shape_in, cfg->input_scale > 0 ? (double)cfg->input_scale : 1.0,
              upper, in_numel, out_numel, shape_out,
              nerve_model_head(e->m).logits ? ", probabilities as nerve predict gives them" : "", upper,
              out_numel, upper, e->const_bytes, upper, e->arena * sizeof(float), upper, upper, e->name,
              e->carried ? " (a step model: each call reads the next token)" : " (this model carries none)",
              e->name);
    sb_printf(&c, "/* %s.c: generated by nerve export-c; standalone C99, no allocation.\n"
              " * flash: %zu bytes of constants (+ code); RAM: %zu bytes of arena (+ stack). */\n"
              "#include \"%s.h\"\n", e->name, e->const_bytes, e->arena * sizeof(float), e->name);
    if (e->used[K_MATH] || e->used[K_SIGMOID] || e->used[K_SOFTMAX] || e->used[K_POOL_L2])
        sb_printf(&c, "#include <math.h>\n");
    if (e->used[K_Q8])
        sb_printf(&c, "#include <stdint.h>\n");
    sb_printf(&c, "\n");
    if (e->used[K_LSTM] || e->used[K_GRU] || e->used[K_RNN])
        sb_printf(&c, "typedef struct k_rnn_weights {\n    const float *w_ih, *w_hh, *b_ih, *b_hh, *peep;\n} k_rnn_weights;\n\n");
    if (e->consts.len)
        sb_printf(&c, "%s\n", e->consts.s);
    sb_printf(&c, "float %s_arena[%zu]; /* the arena */\n\n", e->name, e->arena ? e->arena : 1);
    for (int kk = 0; kk < K_COUNT; kk++)
        if (e->used[kk] && kernel_text[kk])
            sb_printf(&c, "%s\n", kernel_text[kk]);
    sb_printf(&c, "void %s_reset(void)\n{\n", e->name);
    int any = 0;
    for (int id = 0; id < e->g->n_nodes; id++)
        if (e->x[id].needed && e->x[id].kind == X_ARENA && gn(e, id)->transient && !gn(e, id)->op) {
            sb_printf(&c, "    for (int i = 0; i < %zu; i++)\n        (%s)[i] = 0.0f;\n", node_numel(gn(e, id)),
                      e->x[id].ptr);
            any = 1;
        }
    if (!any)
        sb_printf(&c, "    /* no carried state */\n");
    sb_printf(&c, "}\n\nvoid %s_run(const float *in, float *out)\n{\n", e->name);
    if (!e->x[nerve_model_input(e->m)].needed)
        sb_printf(&c, "    (void)in;\n");
    sb_printf(&c, "%s}\n", e->code.s ? e->code.s : "");
    int st = h.failed || c.failed ? NERVE_ERR_NOMEM : NERVE_OK;
    if (!st) {
        snprintf(path, sizeof path, "%s/%s.h", dir, e->name);
        st = write_text(path, h.s, h.len);
    }
    if (!st) {
        snprintf(path, sizeof path, "%s/%s.c", dir, e->name);
        st = write_text(path, c.s, c.len);
    }
    if (!st && info) {
        info->weight_bytes = e->const_bytes;
        info->arena_bytes = e->arena * sizeof(float);
        info->in_numel = in_numel;
        info->out_numel = out_numel;
        info->carried = e->carried;
    }
    nerve_xfree(h.s);
    nerve_xfree(c.s);
    return st;
}

int nerve_export_c(nerve_model *m, const char *dir, const char *name, nerve_export_c_info *info)
{

    if (!m || !dir)
        return nerve_set_error(NERVE_ERR_ARG, "export-c: null argument");
    if (!name)
        name = "model";
    if (!valid_name(name))
        return nerve_set_error(NERVE_ERR_ARG, "export-c: name '%s' is not a C identifier of at most 40 "
                               "characters", name);
    if (info)
        memset(info, 0, sizeof *info);
    nerve_graph *g = nerve_model_graph(m);
    int was_compiled = g->compiled, old_batch = g->batch, was_training = g->training;
    int st = was_compiled ? nerve_graph_set_batch(g, 1) : nerve_model_compile(m, 1);
    if (st)
        return st;
    exporter e = {0};
    e.m = m;
    e.g = g;
    e.name = name;
    nerve_graph_set_training(e.g, 0);
    int out = nerve_model_output(m);
    e.x = out < 0 ? NULL : nerve_xcalloc((size_t)e.g->n_nodes, sizeof(xnode));
    if (out < 0)
        st = nerve_set_error(NERVE_ERR_ARG, "export-c: the model has no output node");
    else if (!e.x)
        st = NERVE_ERR_NOMEM;
    else
        st = plan(&e, out);
    if (!st)
        emit_leaf_consts(&e);
    for (int id = 0; !st && id < e.g->n_nodes; id++)
        if (e.x[id].needed && gn(&e, id)->op && e.x[id].kind == X_ARENA)
            st = emit_node(&e, id);
    if (!st) {
        emit_output(&e, out);
        st = e.consts.failed || e.code.failed ? NERVE_ERR_NOMEM : write_files(&e, dir, out, info);
    }
    nerve_xfree(e.consts.s);
    nerve_xfree(e.code.s);
    nerve_xfree(e.blocks);
    nerve_xfree(e.x);
    nerve_graph_set_training(g, was_training);
    if (was_compiled && old_batch != 1) {
        int st2 = nerve_graph_set_batch(g, old_batch);
        if (!st)
            st = st2;
    }
    return st;
}
