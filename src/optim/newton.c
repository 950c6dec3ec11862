/* Newton's method for tiny models: θ ← θ − η H⁻¹ g.
 *
 * H is built column by column from central differences of the analytic gradient,
 * H[:, j] = (g(θ + h e_j) − g(θ − h e_j)) / 2h, then symmetrised. The step solves
 * (H + λI) d = g by Cholesky (never inverting H): λ = 0 first, then, while H + λI is not
 * positive definite, λ starts at 1e−6 · max|H_ii| and doubles (Levenberg damping), so an
 * indefinite Hessian still yields a descent step. Every forward pass replays the same
 * random stream (dropout sees one mask) and persistent states (running statistics) are
 * restored at the end, so the P extra passes leave no trace but the update itself. */
#include "../graph/graph.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define NEWTON_MAX_PARAMS 2048 /* H and its factor take 2 P² doubles */
#define NEWTON_MAX_DAMPING_TRIES 200

typedef struct newton_ws {
    nerve_graph *g;
    int loss;
    int n_ids;
    int *ids;      /* trainable parameters */
    size_t P;      /* their total size */
    nerve_rng rng; /* generator state at entry, replayed before every forward */
} newton_ws;

/* The element j of the flattened parameter vector. */
static float *param_elem(newton_ws *w, size_t j)
{
    for (int i = 0; i < w->n_ids; i++) {
        node *nd = graph_node(w->g, w->ids[i]);
        size_t n = node_numel(nd);
        if (j < n)
            return &nd->value[j];
        j -= n;
    }
    return NULL;
}

/* Gradient of the loss at the current parameters, flattened into out[P]. */
static int gradient_at(newton_ws *w, double *out)
{
    w->g->rng = w->rng;
    int st = nerve_forward(w->g, w->loss);
    if (!st)
        st = nerve_backward(w->g, w->loss);
    if (st)
        return st;
    size_t j = 0;
    for (int i = 0; i < w->n_ids; i++) {
        node *nd = graph_node(w->g, w->ids[i]);
        for (size_t k = 0; k < node_numel(nd); k++, j++) {
            out[j] = nd->grad[k];
            if (!isfinite(out[j]))
                return nerve_set_error(NERVE_ERR_NUMERIC, "newton: non-finite gradient of '%s'",
                                       nd->name);
        }
    }
    return NERVE_OK;
}

/* H[P×P] by central differences; gp, gm are P-double work arrays. */
static int hessian(newton_ws *w, double *H, double *gp, double *gm)
{
    size_t P = w->P;
    const float h0 = cbrtf(FLT_EPSILON); /* balances truncation against rounding */
    for (size_t j = 0; j < P; j++) {
        float *x = param_elem(w, j), x0 = *x;
        float h = h0 * fmaxf(1.0f, fabsf(x0));
        *x = x0 + h;
        double hp = (double)*x - x0; /* the step actually taken in float */
        int st = gradient_at(w, gp);
        *x = x0 - h;
        double hm = (double)x0 - *x;
        if (!st)
            st = gradient_at(w, gm);
        *x = x0;
        if (st)
            return st;
        for (size_t i = 0; i < P; i++)
            H[i * P + j] = (gp[i] - gm[i]) / (hp + hm);
    }
    for (size_t i = 0; i < P; i++)
        for (size_t j = i + 1; j < P; j++)
            H[i * P + j] = H[j * P + i] = 0.5 * (H[i * P + j] + H[j * P + i]);
    return NERVE_OK;
}

/* In-place Cholesky A = L Lᵀ (lower triangle); 0 if A is not positive definite. */
static int cholesky(double *A, size_t P)
{
    for (size_t j = 0; j < P; j++) {
        double d = A[j * P + j];
        for (size_t k = 0; k < j; k++)
            d -= A[j * P + k] * A[j * P + k];
        if (!(d > 0.0))
            return 0;
        d = sqrt(d);
        A[j * P + j] = d;
        for (size_t i = j + 1; i < P; i++) {
            double s = A[i * P + j];
            for (size_t k = 0; k < j; k++)
                s -= A[i * P + k] * A[j * P + k];
            A[i * P + j] = s / d;
        }
    }
    return 1;
}

/* Solves L Lᵀ x = b in place (b becomes x). */
static void cholesky_solve(const double *L, size_t P, double *b)
{
    for (size_t i = 0; i < P; i++) {
        for (size_t k = 0; k < i; k++)
            b[i] -= L[i * P + k] * b[k];
        b[i] /= L[i * P + i];
    }
    for (size_t i = P; i-- > 0;) {
        for (size_t k = i + 1; k < P; k++)
            b[i] -= L[k * P + i] * b[k];
        b[i] /= L[i * P + i];
    }
}

/* Factors H + λI into L with the smallest λ of 0, λ0, 2λ0, 4λ0, ... that works. */
static int damped_factor(const double *H, double *L, size_t P)
{
    double max_diag = 0.0;
    for (size_t i = 0; i < P; i++)
        max_diag = fmax(max_diag, fabs(H[i * P + i]));
    double lambda0 = 1e-6 * (max_diag > 0.0 ? max_diag : 1.0), lambda = 0.0;
    for (int t = 0; t < NEWTON_MAX_DAMPING_TRIES; t++) {
        memcpy(L, H, P * P * sizeof(double));
        for (size_t i = 0; i < P; i++)
            L[i * P + i] += lambda;
        if (cholesky(L, P))
            return NERVE_OK;
        lambda = t == 0 ? lambda0 : 2.0 * lambda;
    }
    return nerve_set_error(NERVE_ERR_NUMERIC, "newton: no damping makes the Hessian positive definite");
}

/* Copies every STATE node's values into buf (or back when restore != 0). */
static void copy_states(nerve_graph *g, float *buf, int restore)
{
    for (int i = 0; i < g->n_nodes; i++) {
        node *nd = &g->nodes[i];
        if (nd->kind != NERVE_NODE_STATE)
            continue;
        size_t n = node_numel(nd);
        if (restore)
            memcpy(nd->value, buf, n * sizeof(float));
        else
            memcpy(buf, nd->value, n * sizeof(float));
        buf += n;
    }
}

static size_t state_floats(const nerve_graph *g)
{
    size_t n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == NERVE_NODE_STATE)
            n += node_numel(&g->nodes[i]);
    return n;
}

static int newton_solve_and_update(newton_ws *w, float lr, double *H, double *L, double *g0,
                                   double *work)
{
    int st = gradient_at(w, g0);
    if (!st)
        st = hessian(w, H, work, work + w->P);
    if (!st)
        st = gradient_at(w, g0); /* leaves the graph's gradients at θ, not at a probe */
    if (!st)
        st = damped_factor(H, L, w->P);
    if (st)
        return st;
    cholesky_solve(L, w->P, g0); /* g0 becomes d = (H + λI)⁻¹ g */
    for (size_t j = 0; j < w->P; j++) {
        float *x = param_elem(w, j);
        *x = (float)(*x - (double)lr * g0[j]);
    }
    return NERVE_OK;
}

int nerve_newton_step(nerve_graph *g, int loss, float lr)
{
    if (!g || !g->compiled)
        return nerve_set_error(NERVE_ERR_STATE, "newton_step needs a compiled graph");
    if (loss < 0 || loss >= g->n_nodes)
        return nerve_set_error(NERVE_ERR_ARG, "newton_step: no loss node %d", loss);
    newton_ws w = {.g = g, .loss = loss, .rng = g->rng};
    w.n_ids = nerve_graph_params(g, NULL, 0);
    if (w.n_ids == 0)
        return NERVE_OK;
    w.ids = nerve_xcalloc((size_t)w.n_ids, sizeof *w.ids);
    if (!w.ids)
        return NERVE_ERR_NOMEM;
    nerve_graph_params(g, w.ids, w.n_ids);
    for (int i = 0; i < w.n_ids; i++)
        w.P += node_numel(graph_node(g, w.ids[i]));
    if (w.P > NEWTON_MAX_PARAMS) {
        nerve_xfree(w.ids);
        return nerve_set_error(NERVE_ERR_ARG, "newton_step: %zu parameters (at most %d)", w.P,
                               NEWTON_MAX_PARAMS);
    }
    size_t P = w.P, ns = state_floats(g);
    double *H = nerve_xmalloc(P * P * sizeof(double)), *L = nerve_xmalloc(P * P * sizeof(double));
    double *vecs = nerve_xmalloc(3 * P * sizeof(double));
    float *states = nerve_xmalloc((ns + 1) * sizeof(float));
    int st = H && L && vecs && states ? NERVE_OK : NERVE_ERR_NOMEM;
    if (!st) {
        copy_states(g, states, 0);
        st = newton_solve_and_update(&w, lr, H, L, vecs, vecs + P);
        copy_states(g, states, 1);
    }
    nerve_xfree(states);
    nerve_xfree(vecs);
    nerve_xfree(L);
    nerve_xfree(H);
    nerve_xfree(w.ids);
    return st;
}
