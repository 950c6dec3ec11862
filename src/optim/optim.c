/* Optimisers: the course's update rules (COURSE.md §4) applied to every trainable parameter
 * of a graph, with global-norm clipping and weight decay folded into one pass.
 *
 * Per element, g is the loss gradient scaled by the clipping factor, plus wd θ for coupled
 * decay; decoupled decay first shrinks θ ← θ − ε wd θ. Then, with ε the learning rate:
 *   sgd       θ ← θ − ε g
 *   momentum  v ← α v − ε g;                      θ ← θ + v
 *   nesterov  prepare(): θ ← θ + μ v (θ saved);  step(): θ ← saved; v ← μ v − ε g; θ ← θ + v
 *   adagrad   r ← r + g²;                         θ ← θ − ε g / (δ + √r)
 *   rmsprop   r ← ρ r + (1−ρ) g²;                 θ ← θ − ε g / √(δ + r)
 *   adam      s ← ρ1 s + (1−ρ1) g; r ← ρ2 r + (1−ρ2) g²;
 *             θ ← θ − ε ŝ / (√r̂ + δ) with ŝ = s / (1 − ρ1^t), r̂ = r / (1 − ρ2^t)
 *   adadelta  r ← ρ r + (1−ρ) g²; Δ = √(u + δ) / √(r + δ) g; u ← ρ u + (1−ρ) Δ²; θ ← θ − ε Δ
 * For Nesterov the gradient is the one computed at the look-ahead point, and so is the
 * coupled decay term wd (θ + μ v): it is the gradient of the penalised loss there.
 *
 * State arrays are allocated once at create; prepare() and step() never allocate. */
#include "../graph/graph.h"
#include "../kernels/kernels.h"

#include <math.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>

#define MAX_SLOTS 2
#define STATE_NAME_LEN 96

typedef struct opt_param {
    int node;
    float *slot[MAX_SLOTS]; /* v; r; s, r; r, u (see slot_names) */
    float *saved;           /* Nesterov: θ while the weights sit at the look-ahead point */
    int ahead;              /* Nesterov: weights are at the look-ahead point */
} opt_param;

struct nerve_optim {
    nerve_graph *g;
    nerve_optim_config cfg;
    float delta;
    int decoupled;
    int n_params, n_slots;
    opt_param *params;
    char (*state_names)[STATE_NAME_LEN]; /* n_params * n_slots, filled by state_get */
    int64_t steps;
    double *norm_parts;  /* the gradient norm's partial sums, one per chunk of a parameter */
    size_t n_norm_parts;
};

/* Elements per partial sum of the gradient norm: the chunks are summed on all threads,
 * then added in order (the same bits whatever the thread count). */
#define NORM_CHUNK ((size_t)1 << 13)

static size_t norm_chunks(size_t n) { return (n + NORM_CHUNK - 1) / NORM_CHUNK; }

/* ---- names and defaults ---------------------------------------------------------------- */

static const char *const opt_names[NERVE_OPT_COUNT] = {
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "adadelta"};

/* State slots of each optimiser, in the order they are exposed to checkpoints. */
static const char *const slot_names[NERVE_OPT_COUNT][MAX_SLOTS] = {
    [NERVE_OPT_SGD] = {NULL, NULL},     [NERVE_OPT_MOMENTUM] = {"v", NULL},
    [NERVE_OPT_NESTEROV] = {"v", NULL}, [NERVE_OPT_ADAGRAD] = {"r", NULL},
    [NERVE_OPT_RMSPROP] = {"r", NULL},  [NERVE_OPT_ADAM] = {"s", "r"},
    [NERVE_OPT_ADAMW] = {"s", "r"},     [NERVE_OPT_ADADELTA] = {"r", "u"}};

static int slot_count(nerve_opt_type t)
{
    int n = 0;
    while (n < MAX_SLOTS && slot_names[t][n])
        n++;
    return n;
}

static float default_delta(nerve_opt_type t)
{
    switch (t) {
    case NERVE_OPT_ADAGRAD: return 1e-7f;
    case NERVE_OPT_RMSPROP: return 1e-6f;
    case NERVE_OPT_ADAM:
    case NERVE_OPT_ADAMW: return 1e-8f;
    case NERVE_OPT_ADADELTA: return 1e-6f;
    default: return 0.0f;
    }
}

nerve_optim_config nerve_optim_default(nerve_opt_type type)
{
    nerve_optim_config c = {0};
    c.type = type;
    c.momentum = 0.9f;
    c.rho1 = type == NERVE_OPT_ADADELTA ? 0.95f : 0.9f;
    c.rho2 = 0.999f;
    c.delta = 0.0f; /* the optimiser's own default */
    if (type == NERVE_OPT_ADAMW) {
        c.weight_decay = 0.01f;
        c.decoupled = 1;
    }
    return c;
}

int nerve_optim_parse(const char *name, nerve_opt_type *out)
{
    for (int t = 0; name && t < NERVE_OPT_COUNT; t++)
        if (strcasecmp(name, opt_names[t]) == 0) {
            if (out)
                *out = (nerve_opt_type)t;
            return NERVE_OK;
        }
    return nerve_set_error(NERVE_ERR_ARG,
                           "unknown optimiser '%s' (sgd, momentum, nesterov, adagrad, rmsprop, "
                           "adam, adamw, adadelta)",
                           name ? name : "(null)");
}

const char *nerve_optim_name(nerve_opt_type type)
{
    return (unsigned)type < NERVE_OPT_COUNT ? opt_names[type] : "unknown";
}

/* ---- create / free --------------------------------------------------------------------- */

static int check_config(const nerve_optim_config *c)
{
    if ((unsigned)c->type >= NERVE_OPT_COUNT)
        return nerve_set_error(NERVE_ERR_ARG, "optimiser type %d is unknown", (int)c->type);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "momentum %g outside [0, 1)", (double)c->momentum);
    if (!(c->rho1 >= 0.0f && c->rho1 < 1.0f) || !(c->rho2 >= 0.0f && c->rho2 < 1.0f))
        return nerve_set_error(NERVE_ERR_ARG, "decay rates rho1 %g, rho2 %g must lie in [0, 1)",
                               (double)c->rho1, (double)c->rho2);
    if (!(c->delta >= 0.0f) || !(c->weight_decay >= 0.0f) || !(c->clip_norm >= 0.0f))
        return nerve_set_error(NERVE_ERR_ARG,
                               "delta, weight_decay and clip_norm must be non-negative numbers");
    return NERVE_OK;
}

static int alloc_param_state(nerve_optim *o, opt_param *p)
{
    size_t n = node_numel(graph_node(o->g, p->node));
    for (int s = 0; s < o->n_slots; s++)
        if (!(p->slot[s] = nerve_xalloc_floats(n)))
            return NERVE_ERR_NOMEM;
    if (o->cfg.type == NERVE_OPT_NESTEROV && !(p->saved = nerve_xalloc_floats(n)))
        return NERVE_ERR_NOMEM;
    return NERVE_OK;
}

nerve_optim *nerve_optim_create(nerve_graph *g, const nerve_optim_config *cfg)
{
    if (!g || !cfg) {
        nerve_set_error(NERVE_ERR_ARG, "optim_create needs a graph and a config");
        return NULL;
    }
    if (check_config(cfg))
        return NULL;
    nerve_optim *o = nerve_xcalloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->g = g;
    o->cfg = *cfg;
    o->delta = cfg->delta > 0.0f ? cfg->delta : default_delta(cfg->type);
    o->decoupled = cfg->decoupled || cfg->type == NERVE_OPT_ADAMW;
    o->n_slots = slot_count(cfg->type);
    o->n_params = nerve_graph_params(g, NULL, 0);
    int *ids = nerve_xcalloc((size_t)o->n_params + 1, sizeof *ids);
    o->params = nerve_xcalloc((size_t)o->n_params + 1, sizeof *o->params);
    o->state_names = nerve_xcalloc((size_t)o->n_params * (size_t)o->n_slots + 1,
                                   sizeof *o->state_names);
    int st = ids && o->params && o->state_names ? NERVE_OK : NERVE_ERR_NOMEM;
    if (!st)
        nerve_graph_params(g, ids, o->n_params);
    for (int i = 0; !st && i < o->n_params; i++) {
        o->params[i].node = ids[i];
        st = alloc_param_state(o, &o->params[i]);
        o->n_norm_parts += norm_chunks(node_numel(graph_node(g, ids[i])));
    }
    nerve_xfree(ids);
    if (!st) {
        o->norm_parts = nerve_xcalloc(o->n_norm_parts + 1, sizeof *o->norm_parts);
        st = o->norm_parts ? NERVE_OK : NERVE_ERR_NOMEM;
    }
    if (st) {
        nerve_optim_free(o);
        return NULL;
    }
    return o;
}

void nerve_optim_free(nerve_optim *o)
{
    if (!o)
        return;
    for (int i = 0; o->params && i < o->n_params; i++) {
        for (int s = 0; s < MAX_SLOTS; s++)
            nerve_xfree_aligned(o->params[i].slot[s]);
        nerve_xfree_aligned(o->params[i].saved);
    }
    nerve_xfree(o->params);
    nerve_xfree(o->state_names);
    nerve_xfree(o->norm_parts);
    nerve_xfree(o);
}

/* ---- the update rules ------------------------------------------------------------------ */

/* Everything one parameter's update needs besides its arrays. */
typedef struct step_ctx {
    float lr;
    float gscale;  /* clipping factor (1 when not clipping) */
    float wd;      /* coupled decay for this parameter (0 if none) */
    float lr_wd;   /* decoupled decay ε·wd for this parameter (0 if none) */
    float mu, rho1, rho2, delta;
    float c1, c2;  /* Adam bias corrections 1 − ρ1^t, 1 − ρ2^t */
} step_ctx;

/* The gradient the rule sees: clipped loss gradient plus the coupled decay term. */
static inline float eff_grad(const step_ctx *c, float g, float w) { return c->gscale * g + c->wd * w; }
/* θ after decoupled decay (unchanged when there is none). */
static inline float decayed(const step_ctx *c, float w) { return w - c->lr_wd * w; }

/* A rule updates elements [lo, hi) of one parameter; elements are independent, so the
 * range can be split across threads without changing a bit. */
typedef void (*rule_fn)(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo, size_t hi);

static void rule_sgd(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    (void)p;
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        w[i] = decayed(c, w[i]) - c->lr * g;
    }
}

static void rule_momentum(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    float *v = p->slot[0];
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        v[i] = c->mu * v[i] - c->lr * g;
        w[i] = decayed(c, w[i]) + v[i];
    }
}

/* w holds θ + μv if prepare() ran (p->ahead), else θ; the update starts from θ. The step
 * clears p->ahead once every range is done (a thread must not clear it under another). */
static void rule_nesterov(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    float *v = p->slot[0];
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        float theta = p->ahead ? p->saved[i] : w[i];
        v[i] = c->mu * v[i] - c->lr * g;
        w[i] = decayed(c, theta) + v[i];
    }
}

static void rule_adagrad(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    float *r = p->slot[0];
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        r[i] += g * g;
        w[i] = decayed(c, w[i]) - c->lr * g / (c->delta + sqrtf(r[i]));
    }
}

static void rule_rmsprop(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    float *r = p->slot[0];
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        r[i] = c->rho1 * r[i] + (1.0f - c->rho1) * g * g;
        w[i] = decayed(c, w[i]) - c->lr * g / sqrtf(c->delta + r[i]);
    }
}

static void rule_adam(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    float *s = p->slot[0], *r = p->slot[1];
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        s[i] = c->rho1 * s[i] + (1.0f - c->rho1) * g;
        r[i] = c->rho2 * r[i] + (1.0f - c->rho2) * g * g;
        float s_hat = s[i] / c->c1, r_hat = r[i] / c->c2;
        w[i] = decayed(c, w[i]) - c->lr * s_hat / (sqrtf(r_hat) + c->delta);
    }
}

static void rule_adadelta(const step_ctx *c, opt_param *p, float *w, const float *gr, size_t lo,
                     size_t hi)
{
    float *r = p->slot[0], *u = p->slot[1];
    for (size_t i = lo; i < hi; i++) {
        float g = eff_grad(c, gr[i], w[i]);
        r[i] = c->rho1 * r[i] + (1.0f - c->rho1) * g * g;
        float d = sqrtf(u[i] + c->delta) / sqrtf(r[i] + c->delta) * g;
        u[i] = c->rho1 * u[i] + (1.0f - c->rho1) * d * d;
        w[i] = decayed(c, w[i]) - c->lr * d;
    }
}

static const rule_fn rules[NERVE_OPT_COUNT] = {
    rule_sgd,     rule_momentum, rule_nesterov, rule_adagrad,
    rule_rmsprop, rule_adam,     rule_adam,     rule_adadelta};

/* ---- prepare / step -------------------------------------------------------------------- */

void nerve_optim_prepare(nerve_optim *o)
{
    if (!o || o->cfg.type != NERVE_OPT_NESTEROV)
        return;
    for (int i = 0; i < o->n_params; i++) {
        opt_param *p = &o->params[i];
        node *nd = graph_node(o->g, p->node);
        if (p->ahead || nd->frozen)
            continue;
        size_t n = node_numel(nd);
        memcpy(p->saved, nd->value, n * sizeof(float));
        for (size_t k = 0; k < n; k++)
            nd->value[k] += o->cfg.momentum * p->slot[0][k];
        p->ahead = 1;
    }
}

static void undo_look_ahead(opt_param *p, node *nd)
{
    if (p->ahead)
        memcpy(nd->value, p->saved, node_numel(nd) * sizeof(float));
    p->ahead = 0;
}

/* One step over every unfrozen parameter, seen as one run of elements (parameter after
 * parameter) so that the threads split the whole model, not each parameter alone: most
 * parameters are too small to split, and updating them one after another left all but
 * one thread idle. Every element is updated on its own, so the split changes no bit. */
typedef struct {
    rule_fn rule;
    const step_ctx *c; /* lr, decay and rule constants; per parameter decay set below */
    nerve_optim *o;
    float wd;          /* the configured weight decay */
} step_job;

/* The context of parameter node nd: decay applies only to decaying parameters. */
static step_ctx param_ctx(const step_job *j, const node *nd)
{
    step_ctx c = *j->c;
    float wd = nd->decay ? j->wd : 0.0f;
    c.wd = j->o->decoupled ? 0.0f : wd;
    c.lr_wd = j->o->decoupled ? c.lr * wd : 0.0f;
    return c;
}

/* Elements [lo, hi) of the run: the parts of the parameters that overlap it. */
static void step_range(void *job, size_t lo, size_t hi)
{
    const step_job *j = job;
    size_t start = 0;
    for (int i = 0; i < j->o->n_params && start < hi; i++) {
        opt_param *p = &j->o->params[i];
        node *nd = graph_node(j->o->g, p->node);
        if (nd->frozen)
            continue;
        size_t n = node_numel(nd), a = lo > start ? lo - start : 0;
        size_t b = hi - start < n ? hi - start : n;
        if (a < b) {
            step_ctx c = param_ctx(j, nd);
            j->rule(&c, p, nd->value, nd->grad, a, b);
        }
        start += n;
    }
}

/* Elements of the unfrozen parameters; frozen ones leave the look-ahead of prepare(). */
static size_t step_elements(nerve_optim *o)
{
    size_t total = 0;
    for (int i = 0; i < o->n_params; i++) {
        opt_param *p = &o->params[i];
        node *nd = graph_node(o->g, p->node);
        if (nd->frozen)
            undo_look_ahead(p, nd); /* frozen between prepare() and step() */
        else
            total += node_numel(nd);
    }
    return total;
}

/* Eight independent partial sums (they vectorise; one chain would wait on every add),
 * combined in a fixed order. */
static double sum_squares(const float *x, size_t n)
{
    enum { LANES = 8 };
    double lane[LANES] = {0}, s = 0.0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] += (double)x[i + l] * x[i + l];
    for (; i < n; i++)
        s += (double)x[i] * x[i];
    for (int l = 0; l < LANES; l++)
        s += lane[l];
    return s;
}

/* norm_parts[c] for chunks [c0, c1) of the parameters (0 for frozen ones). */
static void norm_parts_range(void *ctx, size_t c0, size_t c1)
{
    nerve_optim *o = ctx;
    size_t first = 0; /* the first chunk of parameter i */
    for (int i = 0; i < o->n_params && first < c1; i++) {
        const node *nd = &o->g->nodes[o->params[i].node];
        size_t n = node_numel(nd), chunks = norm_chunks(n);
        for (size_t c = c0 > first ? c0 : first; c < first + chunks && c < c1; c++) {
            size_t at = (c - first) * NORM_CHUNK, len = n - at < NORM_CHUNK ? n - at : NORM_CHUNK;
            o->norm_parts[c] = nd->frozen ? 0.0 : sum_squares(nd->grad + at, len);
        }
        first += chunks;
    }
}

/* Global L2 norm of the gradients of the optimiser's unfrozen parameters. */
static double grad_norm(nerve_optim *o)
{
    kern_parallel_for(o->n_norm_parts, 1, norm_parts_range, o);
    double s = 0.0;
    for (size_t c = 0; c < o->n_norm_parts; c++)
        s += o->norm_parts[c];
    return sqrt(s);
}

/* The clipping factor max_norm/‖g‖ when ‖g‖ exceeds max_norm, else 1. */
static float clip_factor(double norm, float max_norm)
{
    return max_norm > 0.0f && norm > max_norm ? (float)(max_norm / norm) : 1.0f;
}

float nerve_optim_step(nerve_optim *o, float lr)
{
    if (!o)
        return NAN;
    double norm = grad_norm(o);
    o->steps++;
    step_ctx c = {0};
    c.lr = lr;
    c.gscale = clip_factor(norm, o->cfg.clip_norm);
    c.mu = o->cfg.momentum;
    c.rho1 = o->cfg.rho1;
    c.rho2 = o->cfg.rho2;
    c.delta = o->delta;
    c.c1 = (float)(1.0 - pow(o->cfg.rho1, (double)o->steps));
    c.c2 = (float)(1.0 - pow(o->cfg.rho2, (double)o->steps));
    step_job j = {rules[o->cfg.type], &c, o, o->cfg.weight_decay};
    kern_parallel_for(step_elements(o), 1 << 15, step_range, &j);
    for (int i = 0; i < o->n_params; i++)
        o->params[i].ahead = 0; /* the weights are at θ again */
    return (float)norm;
}

int64_t nerve_optim_steps(const nerve_optim *o) { return o ? o->steps : 0; }

int nerve_optim_set_steps(nerve_optim *o, int64_t steps)
{
    if (!o || steps < 0)
        return nerve_set_error(NERVE_ERR_ARG, "set_steps needs an optimiser and steps >= 0");
    o->steps = steps;
    return NERVE_OK;
}

/* ---- state for checkpoints ------------------------------------------------------------- */

int nerve_optim_state_count(const nerve_optim *o) { return o ? o->n_params * o->n_slots : 0; }

int nerve_optim_state_get(nerve_optim *o, int i, const char **name, nerve_tensor *view)
{
    if (!o || i < 0 || i >= nerve_optim_state_count(o))
        return nerve_set_error(NERVE_ERR_ARG, "optimiser state %d does not exist", i);
    opt_param *p = &o->params[i / o->n_slots];
    int slot = i % o->n_slots;
    const node *nd = &o->g->nodes[p->node];
    /* Built at each call so that a node renamed after create is named correctly. */
    snprintf(o->state_names[i], STATE_NAME_LEN, "%s.%s", nd->name, slot_names[o->cfg.type][slot]);
    if (name)
        *name = o->state_names[i];
    if (view) {
        memset(view, 0, sizeof *view);
        view->ndim = nd->ndim;
        memcpy(view->dims, nd->dims, (size_t)nd->ndim * sizeof(int));
        view->data = p->slot[slot];
    }
    return NERVE_OK;
}

/* ---- clipping of plain arrays ---------------------------------------------------------- */

float nerve_clip_global_norm(float **grads, const size_t *sizes, int n, float max_norm)
{
    double s = 0.0;
    for (int k = 0; k < n; k++)
        s += sum_squares(grads[k], sizes[k]);
    double norm = sqrt(s);
    float f = clip_factor(norm, max_norm);
    if (f != 1.0f)
        for (int k = 0; k < n; k++)
            for (size_t i = 0; i < sizes[k]; i++)
                grads[k][i] *= f;
    return (float)norm;
}
