/* darknet's [rnn] and [gru] layers (its rnn_layer.c and gru_layer.c), built from graph
 * operators so that the backward pass is the graph's:
 *
 *   [rnn]: three connected layers, each with the layer's activation (default logistic) and
 *          optional batch norm: input (F -> H), self (H -> H) and output (H -> H). At each
 *          step s_t = input(x_t) + self(s_{t-1}) (+ s_{t-1} with shortcut=1), and the
 *          layer outputs output(s_t).
 *   [gru]: six linear connected layers (optional batch norm): uz, ur, uh on the input and
 *          wz, wr, wh on the state. z = logistic(uz(x) + wz(s)), r = logistic(ur(x) + wr(s)),
 *          h = logistic(uh(x) + wh(r * s)) (tanh with tanh=1), s' = z * s + (1 - z) * h,
 *          and the layer outputs s'.
 *
 * The state starts at zero. A sample is a sequence [T, F] (time_steps=T in [net]) or one
 * step [F] (time_steps=1 or none); each step's sub-layers are the same parameters applied
 * to that step's rows, so batch norm in training normalises each step over the batch, as
 * darknet's per-step connected layers do. Parameters are "<layer>.<sub>.weight", ".bias"
 * or ".bn.*", the names src/model/darknet_weights.c reads in darknet's file order. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_UNITS (1 << 20) /* outputs of one layer, as model.c */

const char *const darknet_rnn_roles[] = {"input", "self", "output", NULL};
/* darknet's .weights order of the six (load_weights_upto / save_weights) */
const char *const darknet_gru_roles[] = {"wz", "wr", "wh", "uz", "ur", "uh", NULL};

int darknet_time_steps(const build_ctx *b)
{
    const cfg_entry *e = b->d->n_sections > 0 ? cfg_find(&b->d->sections[0], "time_steps") : NULL;
    int t = e ? atoi(e->value) : 1;
    return t > 1 ? t : 1;
}

int darknet_recurrent_applies(const build_ctx *b)
{
    if (b->d->n_sections > 0 && cfg_find(&b->d->sections[0], "time_steps"))
        return 1;
    int nd, dims[NERVE_MAX_DIMS];
    return nerve_node_shape(b->g, b->x, &nd, dims) == 0 && nd == 2;
}

typedef struct {
    build_ctx *b;
    int bn;
    nerve_act act;
    nerve_init init;
    const char *role[6]; /* the sub-layers made so far and their parameters */
    int p[6][6];         /* weight, bias, bn weight, bn bias, running mean, running var */
    int n;
} sub_ctx;

/* One step of the connected sub-layer `role` on x [N, in]: the first call creates its
 * parameters, later ones apply the same. */
static int sub_layer(sub_ctx *c, const char *role, int x, int out, int *y)
{
    build_ctx *b = c->b;
    int k = 0, v;
    while (k < c->n && strcmp(c->role[k], role))
        k++;
    if (k == c->n) {
        char base[64], bn[72], name[96];
        snprintf(base, sizeof base, "%.40s.%s", b->name, role);
        snprintf(bn, sizeof bn, "%s.bn", base);
        v = nerve_layer_dense(b->g, x, out, !c->bn, c->init, &b->rng, base);
        if (v >= 0 && c->bn)
            v = nerve_layer_batchnorm(b->g, v, BN_MOMENTUM, BN_EPS, bn);
        static const char *const r[] = {"weight", "bias", "bn.weight", "bn.bias",
                                        "bn.running_mean", "bn.running_var"};
        for (int j = 0; j < 6 && v >= 0; j++) {
            snprintf(name, sizeof name, "%s.%s", base, r[j]);
            c->p[k][j] = nerve_node_find(b->g, name);
        }
        c->role[c->n++] = role;
    } else {
        v = nerve_dense(b->g, x, c->p[k][0], c->p[k][1]);
        if (v >= 0 && c->bn)
            v = nerve_batchnorm(b->g, v, c->p[k][2], c->p[k][3], c->p[k][4], c->p[k][5],
                                BN_MOMENTUM, BN_EPS);
    }
    if (v >= 0 && c->act.type != NERVE_ACT_IDENTITY)
        v = by_name_act(b->g, v, c->act);
    if (v < 0)
        return graph_fail(b, v);
    *y = v;
    return NERVE_OK;
}

/* the steps' outputs [N, 1, H] joined along axis 1, at most 8 at a time (concat's limit) */
static int join_steps(build_ctx *b, int *xs, int n, int *y)
{
    while (n > 1) {
        int m = 0;
        for (int i = 0; i < n; i += 8) {
            int k = n - i < 8 ? n - i : 8;
            int v = k == 1 ? xs[i] : by_name_concat(b->g, k, xs + i, 1);
            if (v < 0)
                return graph_fail(b, v);
            xs[m++] = v;
        }
        n = m;
    }
    *y = xs[0];
    return NERVE_OK;
}

static int act_node(build_ctx *b, int x, nerve_act_type t, int *y)
{
    *y = by_name_act(b->g, x, nerve_act_default(t));
    return *y < 0 ? graph_fail(b, *y) : NERVE_OK;
}

static int bin(build_ctx *b, const char *op, int x, int z, int *y)
{
    *y = by_name_binary(b->g, op, x, z);
    return *y < 0 ? graph_fail(b, *y) : NERVE_OK;
}

/* keys that belong to nerve's own cells, refused here */
static int refuse_cell_keys(build_ctx *b)
{
    static const char *const own[] = {"bidirectional", "return_sequences", "carry", "gru_form",
                                      NULL};
    for (int i = 0; own[i]; i++) {
        const cfg_entry *e = cfg_find(b->s, own[i]);
        if (e)
            return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                             "%s= belongs to nerve's recurrent cell; this [%s] is darknet's "
                             "(its input is one step per sample, or [net] gives time_steps=), "
                             "which has no such key", own[i], b->s->name);
    }
    return NERVE_OK;
}

int build_darknet_recurrent(build_ctx *b, int gru)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    TRY(refuse_cell_keys(b));
    int out = 0, bn = 0, shortcut = 0, tanh_h = 0, hidden = 0;
    GET(has_out, cfg_get_int(d, s, "output", 1, MAX_UNITS, &out));
    if (!has_out)
        out = 1; /* darknet's default */
    TRY(cfg_get_bool(d, s, "batch_normalize", &bn));
    sub_ctx c = {.b = b, .bn = bn, .act = nerve_act_default(NERVE_ACT_IDENTITY)};
    if (!gru) {
        TRY(cfg_get_bool(d, s, "shortcut", &shortcut));
        GET(has_hidden, cfg_get_int(d, s, "hidden", 1, MAX_UNITS, &hidden));
        if (has_hidden && hidden != out)
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "hidden")->line,
                             "hidden=%d differs from output=%d: darknet's [rnn] ignores hidden= "
                             "(its state has output= units); remove it or make it equal", hidden,
                             out);
        c.act = nerve_act_default(NERVE_ACT_SIGMOID); /* darknet's default: logistic */
        if (cfg_find(s, "activation"))
            TRY(get_activation(b, &c.act));
    } else {
        TRY(cfg_get_bool(d, s, "tanh", &tanh_h));
    }
    TRY(get_init(b, c.act, &c.init));
    int steps = darknet_time_steps(b);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    int seq = nd == 3 && dims[1] == steps && steps > 1;
    if (!seq && !(nd == 2 && steps == 1)) {
        char shape[64];
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "darknet's [%s] reads %d step%s of a vector per sample (time_steps=%d); "
                         "the layer before outputs %s per sample", s->name, steps,
                         steps > 1 ? "s" : "", steps,
                         nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
    }
    int in = seq ? dims[2] : dims[1];
    if ((double)in * out > MAX_WEIGHTS || (double)out * out > MAX_WEIGHTS)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[%s] from %d inputs to output=%d needs too many weights; at most %d "
                         "per matrix", s->name, in, out, MAX_WEIGHTS);
    int outs[4096];
    if (steps > (int)(sizeof outs / sizeof *outs))
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "darknet's [%s] over time_steps=%d: at most %d steps", s->name, steps,
                         (int)(sizeof outs / sizeof *outs));
    int state = -1;
    for (int t = 0; t < steps; t++) {
        int x = b->x;
        if (seq && (x = by_name_slice(b->g, b->x, 1, t, t + 1)) < 0)
            return graph_fail(b, x);
        int first; /* the input's first sub-layer; the zero state is it times 0 (its shape) */
        TRY(sub_layer(&c, gru ? "uz" : "input", x, out, &first));
        if (state < 0 && (state = nerve_affine(b->g, first, 0.0f, 0.0f)) < 0)
            return graph_fail(b, state);
        if (!gru) {
            int self, next;
            TRY(sub_layer(&c, "self", state, out, &self));
            TRY(bin(b, "add", first, self, &next));
            if (shortcut)
                TRY(bin(b, "add", next, state, &next));
            state = next;
            TRY(sub_layer(&c, "output", state, out, &outs[t]));
            continue;
        }
        int uz = first;
        int wz, wr, ur, uh, z, r, rs, wh, h, zsum, rsum, hsum, diff, zd, next;
        TRY(sub_layer(&c, "wz", state, out, &wz));
        TRY(sub_layer(&c, "wr", state, out, &wr));
        TRY(sub_layer(&c, "ur", x, out, &ur));
        TRY(sub_layer(&c, "uh", x, out, &uh));
        TRY(bin(b, "add", uz, wz, &zsum));
        TRY(bin(b, "add", ur, wr, &rsum));
        TRY(act_node(b, zsum, NERVE_ACT_SIGMOID, &z));
        TRY(act_node(b, rsum, NERVE_ACT_SIGMOID, &r));
        TRY(bin(b, "mul", r, state, &rs));
        TRY(sub_layer(&c, "wh", rs, out, &wh));
        TRY(bin(b, "add", uh, wh, &hsum));
        TRY(act_node(b, hsum, tanh_h ? NERVE_ACT_TANH : NERVE_ACT_SIGMOID, &h));
        /* z s + (1 - z) h = h + z (s - h) */
        TRY(bin(b, "sub", state, h, &diff));
        TRY(bin(b, "mul", z, diff, &zd));
        TRY(bin(b, "add", h, zd, &next));
        state = outs[t] = next;
    }
    int y = outs[0];
    if (seq) {
        for (int t = 0; t < steps; t++)
            outs[t] = by_name_reshape(b->g, outs[t], 3, (const int[]){-1, 1, out});
        for (int t = 0; t < steps; t++)
            if (outs[t] < 0)
                return graph_fail(b, outs[t]);
        TRY(join_steps(b, outs, steps, &y));
    }
    double per_step = gru ? 3.0 * in * out + 3.0 * out * out : (double)in * out + 2.0 * out * out;
    b->flops = 2.0 * per_step * steps;
    b->x = y;
    return NERVE_OK;
}
