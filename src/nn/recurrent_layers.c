/* Recurrent layer builder: creates a recurrent layer's parameters (and, for truncated BPTT,
 * its carried state) and returns the fused rnn node built on them.
 *
 *   <name>.w_ih [G*H, F]  <name>.w_hh [G*H, H]  <name>.b_ih [G*H]  <name>.b_hh [G*H]
 *   <name>.peephole [3, H]           (LSTM with NERVE_LSTM_PEEPHOLE)
 *   <name>.reverse.*                 (the backward direction of a bidirectional layer)
 *   <name>.h_carry, <name>.c_carry   STATE [D, N, H] (carry != 0; c_carry for LSTM only)
 * Every parameter is drawn from U(-1/sqrt(H), 1/sqrt(H)), biases included. */
#include "../graph/graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Defined in src/ops/recurrent.c: nerve_rnn whose h0/c0 are carried STATE nodes. */
int rnn_add_node(nerve_graph *g, int x, int lengths, int h0, int c0, const nerve_rnn_params *p,
                 const nerve_rnn_config *cfg, int carry);

/* The longest suffix, ".reverse.peephole", must fit in a node name with the base. */
#define SUFFIX_MAX 18

static const char *cell_kind(nerve_cell_type cell)
{
    return cell == NERVE_CELL_LSTM ? "lstm" : cell == NERVE_CELL_GRU ? "gru" : "rnn";
}

/* The layer's base name: `name` (its weight names must be free) or "<kind><k>". */
static int rnn_base_name(const nerve_graph *g, const char *name, nerve_cell_type cell,
                         char *base, size_t size)
{
    char probe[96];
    if (name && *name) {
        if (strlen(name) + SUFFIX_MAX >= sizeof(((node *)0)->name))
            return nerve_set_error(NERVE_ERR_ARG, "layer name '%s' is too long", name);
        snprintf(probe, sizeof probe, "%s.w_ih", name);
        if (nerve_node_find(g, probe) >= 0)
            return nerve_set_error(NERVE_ERR_ARG, "a layer named '%s' already exists", name);
        snprintf(base, size, "%s", name);
        return NERVE_OK;
    }
    for (int k = 1;; k++) {
        snprintf(base, size, "%s%d", cell_kind(cell), k);
        snprintf(probe, sizeof probe, "%s.w_ih", base);
        if (nerve_node_find(g, probe) < 0)
            return NERVE_OK;
    }
}

/* "<base><dir><role>" as a parameter drawn from U(-k, k). */
static int rnn_weight(nerve_graph *g, const char *base, const char *dir, const char *role,
                      int ndim, const int *dims, float k, nerve_rng *rng)
{
    char full[96];
    snprintf(full, sizeof full, "%s%s%s", base, dir, role);
    int id = nerve_param(g, full, ndim, dims);
    if (id < 0)
        return id;
    int st = nerve_init_param(g, id, (nerve_init){NERVE_INIT_UNIFORM, -k, k}, rng);
    return st ? st : id;
}

/* Creates direction d's parameters into p. */
static int rnn_direction_params(nerve_graph *g, const char *base, int d, int F,
                                const nerve_rnn_config *cfg, nerve_rng *rng, nerve_rnn_params *p)
{
    int H = cfg->hidden;
    int GH = (cfg->cell == NERVE_CELL_LSTM ? 4 : cfg->cell == NERVE_CELL_GRU ? 3 : 1) * H;
    float k = 1.0f / sqrtf((float)H);
    const char *dir = d ? ".reverse." : ".";
    if ((p->w_ih[d] = rnn_weight(g, base, dir, "w_ih", 2, (int[]){GH, F}, k, rng)) < 0)
        return p->w_ih[d];
    if ((p->w_hh[d] = rnn_weight(g, base, dir, "w_hh", 2, (int[]){GH, H}, k, rng)) < 0)
        return p->w_hh[d];
    if ((p->b_ih[d] = rnn_weight(g, base, dir, "b_ih", 1, (int[]){GH}, k, rng)) < 0)
        return p->b_ih[d];
    if ((p->b_hh[d] = rnn_weight(g, base, dir, "b_hh", 1, (int[]){GH}, k, rng)) < 0)
        return p->b_hh[d];
    p->peephole[d] = -1;
    if (cfg->cell == NERVE_CELL_LSTM && (cfg->lstm_flags & NERVE_LSTM_PEEPHOLE)) {
        p->peephole[d] = rnn_weight(g, base, dir, "peephole", 2, (int[]){3, H}, k, rng);
        if (p->peephole[d] < 0)
            return p->peephole[d];
        nerve_param_set_decay(g, p->peephole[d], 0); /* a per-unit gain, like a bias */
    }
    return NERVE_OK;
}

/* "<base>.<role>" as a zero STATE [D, N, H]; the rnn node grows N to the compiled batch. */
static int carry_state(nerve_graph *g, const char *base, const char *role, int D, int N, int H)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", base, role);
    int id = nerve_state(g, full, 3, (int[]){D, N, H});
    if (id >= 0) /* where a stream is, not what the model knows: checkpoints skip it */
        graph_node(g, id)->transient = 1;
    return id;
}

int nerve_layer_rnn(nerve_graph *g, int x, int lengths, const nerve_rnn_config *cfg, int carry,
                    nerve_rng *rng, const char *name)
{
    if (!g || !cfg)
        return nerve_set_error(NERVE_ERR_ARG, "layer_rnn: null graph or config");
    int nd, dims[NERVE_MAX_DIMS];
    int st = nerve_node_shape(g, x, &nd, dims);
    if (st)
        return st;
    if (nd != 3)
        return nerve_set_error(NERVE_ERR_SHAPE, "layer_rnn: x must be time-major [T, N, F], got rank %d",
                               nd);
    if (cfg->hidden < 1)
        return nerve_set_error(NERVE_ERR_ARG, "layer_rnn: hidden size %d; must be at least 1",
                               cfg->hidden);
    char base[64];
    if ((st = rnn_base_name(g, name, cfg->cell, base, sizeof base)) != NERVE_OK)
        return st;
    int D = cfg->bidirectional ? 2 : 1, first = nerve_node_count(g);
    nerve_rnn_params p = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    for (int d = 0; d < D && st == NERVE_OK; d++)
        st = rnn_direction_params(g, base, d, dims[2], cfg, rng, &p);
    int h0 = -1, c0 = -1;
    if (st == NERVE_OK && carry) {
        h0 = st = carry_state(g, base, "h_carry", D, dims[1], cfg->hidden);
        if (st >= 0 && cfg->cell == NERVE_CELL_LSTM)
            c0 = st = carry_state(g, base, "c_carry", D, dims[1], cfg->hidden);
    }
    int y = st < 0 ? st : rnn_add_node(g, x, lengths, h0, c0, &p, cfg, carry);
    if (y < 0) {
        for (int i = first; i < g->n_nodes; i++) { /* leave the graph as it was */
            nerve_xfree_aligned(g->nodes[i].value);
            nerve_xfree_aligned(g->nodes[i].grad);
        }
        g->n_nodes = first;
        return y;
    }
    if (nerve_node_find(g, base) < 0) /* the output takes the layer's name when free */
        nerve_node_set_name(g, y, base);
    return y;
}
