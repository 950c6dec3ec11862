/* Initialisers: constant, uniform and normal fills, and the variance-scaling families whose
 * scale comes from the weight's fans (Glorot: 2/(fan_in + fan_out); He: 2/fan_in; LeCun:
 * 1/fan_in). A uniform U(−s, s) has variance s²/3, so the uniform variants use
 * s = √(3 · variance): √(6/(in+out)), √(6/in), √(3/in). */
#include "../graph/graph.h"

#include <math.h>
#include <strings.h>

void nerve_fans(int ndim, const int *dims, int *fan_in, int *fan_out)
{
    int in = 1, out = 1;
    if (ndim == 1) {
        in = out = dims[0];
    } else if (ndim >= 2) {
        int receptive = 1; /* kernel size: prod(dims[2..]) */
        for (int i = 2; i < ndim; i++)
            receptive *= dims[i];
        in = dims[1] * receptive;
        out = dims[0] * receptive;
    }
    if (fan_in)
        *fan_in = in;
    if (fan_out)
        *fan_out = out;
}

typedef struct init_name {
    const char *name;
    nerve_init_type type;
} init_name;

static const init_name init_names[] = {
    {"zeros", NERVE_INIT_ZEROS},
    {"zero", NERVE_INIT_ZEROS},
    {"constant", NERVE_INIT_CONSTANT},
    {"uniform", NERVE_INIT_UNIFORM},
    {"normal", NERVE_INIT_NORMAL},
    {"glorot", NERVE_INIT_GLOROT_UNIFORM},
    {"xavier", NERVE_INIT_GLOROT_UNIFORM},
    {"glorot_uniform", NERVE_INIT_GLOROT_UNIFORM},
    {"xavier_uniform", NERVE_INIT_GLOROT_UNIFORM},
    {"glorot_normal", NERVE_INIT_GLOROT_NORMAL},
    {"xavier_normal", NERVE_INIT_GLOROT_NORMAL},
    {"he", NERVE_INIT_HE_NORMAL},
    {"kaiming", NERVE_INIT_HE_NORMAL},
    {"he_normal", NERVE_INIT_HE_NORMAL},
    {"kaiming_normal", NERVE_INIT_HE_NORMAL},
    {"he_uniform", NERVE_INIT_HE_UNIFORM},
    {"kaiming_uniform", NERVE_INIT_HE_UNIFORM},
    {"lecun", NERVE_INIT_LECUN_NORMAL},
    {"lecun_normal", NERVE_INIT_LECUN_NORMAL},
    {"lecun_uniform", NERVE_INIT_LECUN_UNIFORM},
};

int nerve_init_parse(const char *name, nerve_init *out)
{
    for (size_t i = 0; name && i < NERVE_ARRAY_LEN(init_names); i++) {
        if (strcasecmp(name, init_names[i].name) != 0)
            continue;
        nerve_init it = {init_names[i].type, 0.0f, 0.0f};
        if (it.type == NERVE_INIT_UNIFORM) { /* U(-0.05, 0.05) unless the caller says */
            it.a = -0.05f;
            it.b = 0.05f;
        } else if (it.type == NERVE_INIT_NORMAL) { /* N(0, 0.05²) */
            it.b = 0.05f;
        }
        if (out)
            *out = it;
        return NERVE_OK;
    }
    return nerve_set_error(NERVE_ERR_ARG,
                           "unknown initialiser '%s' (zeros, constant, uniform, normal, glorot, "
                           "glorot_normal, he, he_uniform, lecun, lecun_uniform)",
                           name ? name : "(null)");
}

static void fill_uniform(float *x, size_t n, float lo, float hi, nerve_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * nerve_rng_uniform(rng);
}

static void fill_normal(float *x, size_t n, float mean, float std, nerve_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean + std * nerve_rng_normal(rng);
}

/* Variance 2/(in+out), 2/in or 1/in of a variance-scaling initialiser. */
static double scaled_variance(nerve_init_type t, int fan_in, int fan_out)
{
    switch (t) {
    case NERVE_INIT_GLOROT_UNIFORM:
    case NERVE_INIT_GLOROT_NORMAL: return 2.0 / (fan_in + fan_out);
    case NERVE_INIT_HE_UNIFORM:
    case NERVE_INIT_HE_NORMAL: return 2.0 / fan_in;
    default: return 1.0 / fan_in; /* LeCun */
    }
}

void nerve_init_fill(float *x, size_t n, int ndim, const int *dims, nerve_init init,
                     nerve_rng *rng)
{
    nerve_rng local;
    if (!rng) { /* a fixed stream keeps a missing generator deterministic */
        nerve_rng_seed(&local, 0);
        rng = &local;
    }
    int fan_in, fan_out;
    nerve_fans(ndim, dims, &fan_in, &fan_out);
    switch (init.type) {
    case NERVE_INIT_ZEROS:
    case NERVE_INIT_CONSTANT:
        for (size_t i = 0; i < n; i++)
            x[i] = init.type == NERVE_INIT_ZEROS ? 0.0f : init.a;
        return;
    case NERVE_INIT_UNIFORM: fill_uniform(x, n, init.a, init.b, rng); return;
    case NERVE_INIT_NORMAL: fill_normal(x, n, init.a, init.b, rng); return;
    case NERVE_INIT_GLOROT_UNIFORM:
    case NERVE_INIT_HE_UNIFORM:
    case NERVE_INIT_LECUN_UNIFORM: {
        float s = (float)sqrt(3.0 * scaled_variance(init.type, fan_in, fan_out));
        fill_uniform(x, n, -s, s, rng);
        return;
    }
    case NERVE_INIT_GLOROT_NORMAL:
    case NERVE_INIT_HE_NORMAL:
    case NERVE_INIT_LECUN_NORMAL:
        fill_normal(x, n, 0.0f, (float)sqrt(scaled_variance(init.type, fan_in, fan_out)), rng);
        return;
    }
}

int nerve_init_param(nerve_graph *g, int id, nerve_init init, nerve_rng *rng)
{
    if (!g || id < 0 || id >= g->n_nodes)
        return nerve_set_error(NERVE_ERR_ARG, "init_param: no node %d", id);
    node *nd = graph_node(g, id);
    if (nd->kind != NERVE_NODE_PARAM && nd->kind != NERVE_NODE_STATE)
        return nerve_set_error(NERVE_ERR_ARG, "init_param: '%s' is not a parameter or state",
                               nd->name);
    if ((unsigned)init.type > NERVE_INIT_LECUN_NORMAL)
        return nerve_set_error(NERVE_ERR_ARG, "init_param: initialiser type %d is unknown",
                               (int)init.type);
    nerve_init_fill(nd->value, node_numel(nd), nd->ndim, nd->dims, init, rng ? rng : &g->rng);
    return NERVE_OK;
}
