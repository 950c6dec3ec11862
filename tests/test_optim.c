/* Optimisers, weight decay, clipping, schedules and Newton's method against values worked
 * out by hand from the course's formulas (COURSE.md §4). */
#include "test.h"

#include <string.h>

/* ---- a parameter vector driven by a fixed gradient sequence ---------------------------- */

#define MAX_STEPS 4

/* Runs `steps` updates of a 2-element parameter w (initially w0) whose gradient at step k is
 * grads[k], written by hand into the graph; out[k] gets the weights after step k. */
static int run_fixed_grads(nerve_optim_config cfg, float lr, const float w0[2],
                           const float grads[][2], int steps, float out[][2])
{
    nerve_graph *g = nerve_graph_create();
    int w = nerve_param(g, "w", 1, (int[]){2});
    if (w < 0)
        return w;
    memcpy(nerve_value(g, w).data, w0, 2 * sizeof(float));
    nerve_optim *o = nerve_optim_create(g, &cfg);
    if (!o)
        return nerve_last_status();
    for (int k = 0; k < steps; k++) {
        nerve_optim_prepare(o);
        memcpy(nerve_grad(g, w).data, grads[k], 2 * sizeof(float));
        nerve_optim_step(o, lr);
        memcpy(out[k], nerve_value(g, w).data, 2 * sizeof(float));
    }
    nerve_optim_free(o);
    nerve_graph_free(g);
    return NERVE_OK;
}

static const float W0[2] = {1.0f, -2.0f};
static const float GRADS[3][2] = {{0.5f, -1.0f}, {2.0f, 0.25f}, {-1.0f, 1.0f}};

TEST(sgd_steps_against_the_gradient)
{
    float out[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_SGD), 0.1f, W0, GRADS, 3, out));
    /* θ ← θ − 0.1 g */
    const float want[3][2] = {{1 - 0.05, -2 + 0.1}, {0.95 - 0.2, -1.9 - 0.025},
                              {0.75 + 0.1, -1.925 - 0.1}};
    for (int k = 0; k < 3; k++)
        CHECK_ARRAY_NEAR(out[k], want[k], 2, 1e-6);
}

/* Momentum v ← 0.9 v − 0.1 g; θ ← θ + v, for the gradient sequence GRADS. */
static const float MOMENTUM_WANT[3][2] = {
    /* v1 = (−0.05, 0.1) */ {0.95, -1.9},
    /* v2 = 0.9 v1 − 0.1 (2, 0.25) = (−0.245, 0.065) */ {0.705, -1.835},
    /* v3 = 0.9 v2 − 0.1 (−1, 1) = (−0.1205, −0.0415) */ {0.5845, -1.8765}};

TEST(momentum_accumulates_a_velocity)
{
    float out[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_MOMENTUM), 0.1f, W0, GRADS, 3, out));
    for (int k = 0; k < 3; k++)
        CHECK_ARRAY_NEAR(out[k], MOMENTUM_WANT[k], 2, 1e-6);
}

TEST(nesterov_with_given_gradients_follows_the_velocity_rule)
{
    /* The gradients are supplied, so wherever they were "evaluated" the rule
     * v ← μ v − ε g; θ ← θ + v gives momentum's numbers. */
    float out[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_NESTEROV), 0.1f, W0, GRADS, 3, out));
    for (int k = 0; k < 3; k++)
        CHECK_ARRAY_NEAR(out[k], MOMENTUM_WANT[k], 2, 1e-6);
}

TEST(adagrad_divides_by_delta_plus_root_of_the_sum_of_squares)
{
    /* element 0: gradients 0.5, 2, −1; element 1: 1e−7 each step, where δ = 1e−7 outside the
     * root matters: g/(δ + √r) = 1e−7/(1e−7 + √k·1e−7) = 1/(1 + √k). */
    const float grads[3][2] = {{0.5f, 1e-7f}, {2.0f, 1e-7f}, {-1.0f, 1e-7f}};
    float out[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_ADAGRAD), 0.1f, W0, grads, 3, out));
    double a = 1.0, b = -2.0;
    a -= 0.1 * 0.5 / (1e-7 + sqrt(0.25));
    b -= 0.1 / (1.0 + 1.0);
    CHECK_NEAR(out[0][0], a, 1e-6);
    CHECK_NEAR(out[0][1], b, 1e-6);
    a -= 0.1 * 2.0 / (1e-7 + sqrt(0.25 + 4.0));
    b -= 0.1 / (1.0 + sqrt(2.0));
    CHECK_NEAR(out[1][0], a, 1e-6);
    CHECK_NEAR(out[1][1], b, 1e-6);
    a -= 0.1 * -1.0 / (1e-7 + sqrt(0.25 + 4.0 + 1.0));
    b -= 0.1 / (1.0 + sqrt(3.0));
    CHECK_NEAR(out[2][0], a, 1e-6);
    CHECK_NEAR(out[2][1], b, 1e-6);
}

TEST(rmsprop_puts_delta_inside_the_root)
{
    /* ρ = 0.9, δ = 1e−6, ε = 0.01; element 1 has g = 1e−3 so g² is of the order of δ. */
    const float grads[3][2] = {{0.5f, 1e-3f}, {2.0f, 1e-3f}, {-1.0f, 1e-3f}};
    float out[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_RMSPROP), 0.01f, W0, grads, 3, out));
    double ra = 0, rb = 0, a = 1.0, b = -2.0;
    ra = 0.9 * ra + 0.1 * 0.25;
    rb = 0.9 * rb + 0.1 * 1e-6;
    a -= 0.01 * 0.5 / sqrt(1e-6 + ra);
    b -= 0.01 * 1e-3 / sqrt(1e-6 + rb); /* = 0.00953; δ outside the root would give 0.0306 */
    CHECK_NEAR(out[0][0], a, 1e-6);
    CHECK_NEAR(out[0][1], b, 1e-6);
    ra = 0.9 * ra + 0.1 * 4.0;
    rb = 0.9 * rb + 0.1 * 1e-6;
    a -= 0.01 * 2.0 / sqrt(1e-6 + ra);
    b -= 0.01 * 1e-3 / sqrt(1e-6 + rb);
    CHECK_NEAR(out[1][0], a, 1e-6);
    CHECK_NEAR(out[1][1], b, 1e-6);
    ra = 0.9 * ra + 0.1 * 1.0;
    rb = 0.9 * rb + 0.1 * 1e-6;
    a -= 0.01 * -1.0 / sqrt(1e-6 + ra);
    b -= 0.01 * 1e-3 / sqrt(1e-6 + rb);
    CHECK_NEAR(out[2][0], a, 1e-6);
    CHECK_NEAR(out[2][1], b, 1e-6);
}

TEST(adam_corrects_the_bias_of_both_moments)
{
    /* ρ1 = 0.9, ρ2 = 0.999, δ = 1e−8 outside the root, ε = 0.1. Element 1 has the constant
     * gradient 1e−8: ŝ = g and √r̂ = |g|, so each step is 0.1 g/(|g| + δ) = 0.05. */
    const float grads[3][2] = {{0.5f, 1e-8f}, {2.0f, 1e-8f}, {-1.0f, 1e-8f}};
    float out[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_ADAM), 0.1f, W0, grads, 3, out));
    double s = 0, r = 0, a = 1.0;
    s = 0.9 * s + 0.1 * 0.5;
    r = 0.999 * r + 0.001 * 0.25;
    a -= 0.1 * (s / (1 - 0.9)) / (sqrt(r / (1 - 0.999)) + 1e-8);
    CHECK_NEAR(out[0][0], a, 1e-6);
    CHECK_NEAR(out[0][1], -2.0 - 0.05, 1e-6);
    s = 0.9 * s + 0.1 * 2.0;
    r = 0.999 * r + 0.001 * 4.0;
    a -= 0.1 * (s / (1 - 0.9 * 0.9)) / (sqrt(r / (1 - 0.999 * 0.999)) + 1e-8);
    CHECK_NEAR(out[1][0], a, 1e-6);
    CHECK_NEAR(out[1][1], -2.0 - 0.10, 1e-6);
    s = 0.9 * s + 0.1 * -1.0;
    r = 0.999 * r + 0.001 * 1.0;
    a -= 0.1 * (s / (1 - 0.9 * 0.9 * 0.9)) / (sqrt(r / (1 - 0.999 * 0.999 * 0.999)) + 1e-8);
    CHECK_NEAR(out[2][0], a, 1e-6);
    CHECK_NEAR(out[2][1], -2.0 - 0.15, 1e-6);
}

TEST(adamw_without_decay_is_adam)
{
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_ADAMW);
    CHECK(c.decoupled && c.weight_decay > 0.0f);
    c.weight_decay = 0.0f;
    float out[MAX_STEPS][2], ref[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(c, 0.1f, W0, GRADS, 3, out));
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_ADAM), 0.1f, W0, GRADS, 3, ref));
    CHECK(memcmp(out, ref, 3 * sizeof out[0]) == 0);
}

TEST(adadelta_follows_zeiler_with_lr_scaling_the_update)
{
    /* ρ = 0.95, δ = 1e−6: r ← ρ r + (1−ρ) g²; Δ = √(u + δ)/√(r + δ) g; u ← ρ u + (1−ρ) Δ²;
     * θ ← θ − ε Δ; element 0 with ε = 1 (the paper), element 1 run again with ε = 0.5. */
    float out[MAX_STEPS][2], half[MAX_STEPS][2];
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_ADADELTA), 1.0f, W0, GRADS, 3, out));
    CHECK_OK(run_fixed_grads(nerve_optim_default(NERVE_OPT_ADADELTA), 0.5f, W0, GRADS, 3, half));
    const double g[3] = {0.5, 2.0, -1.0};
    double r = 0, u = 0, a = 1.0, a_half = 1.0;
    for (int k = 0; k < 3; k++) {
        r = 0.95 * r + 0.05 * g[k] * g[k];
        double d = sqrt(u + 1e-6) / sqrt(r + 1e-6) * g[k];
        u = 0.95 * u + 0.05 * d * d;
        a -= d;
        a_half -= 0.5 * d;
        CHECK_NEAR(out[k][0], a, 1e-6);
        CHECK_NEAR(half[k][0], a_half, 1e-6);
    }
    /* first step: Δ = 1e−3/√(0.0125 + 1e−6) · 0.5 */
    CHECK_NEAR(1.0 - out[0][0], 1e-3 / sqrt(0.0125 + 1e-6) * 0.5, 1e-7);
}

/* ---- Nesterov's look-ahead with a real forward pass ------------------------------------ */

/* loss = (x·w)² with x = (1, 2): its gradient 2 (x·w) x depends on where it is taken. */
typedef struct quad_rig {
    nerve_graph *g;
    int x, w, y, loss;
} quad_rig;

static int quad_rig_make(quad_rig *q)
{
    q->g = nerve_graph_create();
    q->x = nerve_input(q->g, "x", 2, (int[]){1, 2});
    q->w = nerve_param(q->g, "w", 2, (int[]){1, 2});
    q->y = nerve_dense(q->g, q->x, q->w, -1);       /* [1,1] = x·w */
    q->loss = nerve_matmul(q->g, q->y, q->y, 0, 1); /* [1,1] = (x·w)² */
    if (q->loss < 0)
        return q->loss;
    int st = nerve_graph_compile(q->g, 1);
    if (st)
        return st;
    memcpy(nerve_value(q->g, q->x).data, (float[]){1, 2}, 2 * sizeof(float));
    memcpy(nerve_value(q->g, q->w).data, (float[]){0.5f, 0.25f}, 2 * sizeof(float));
    return NERVE_OK;
}

TEST(nesterov_takes_the_gradient_at_the_look_ahead_point)
{
    quad_rig q;
    CHECK_OK(quad_rig_make(&q));
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_NESTEROV); /* μ = 0.9 */
    nerve_optim *o = nerve_optim_create(q.g, &c);
    CHECK(o);
    float *w = nerve_value(q.g, q.w).data;
    /* step 1: v = 0, so the look-ahead is θ0 = (0.5, 0.25); x·θ0 = 1, g1 = (2, 4),
     * v1 = −0.05 g1 = (−0.1, −0.2), θ1 = (0.4, 0.05) */
    nerve_optim_prepare(o);
    CHECK_NEAR(w[0], 0.5, 1e-7);
    CHECK_OK(nerve_forward(q.g, q.loss));
    CHECK_OK(nerve_backward(q.g, q.loss));
    nerve_optim_step(o, 0.05f);
    CHECK_ARRAY_NEAR(w, ((float[]){0.4f, 0.05f}), 2, 1e-7);
    float theta1[2];
    memcpy(theta1, w, sizeof theta1);
    /* step 2: the forward sees θ1 + 0.9 v1 = (0.31, −0.13), where x·w = 0.05 */
    nerve_optim_prepare(o);
    CHECK_ARRAY_NEAR(w, ((float[]){0.31f, -0.13f}), 2, 1e-7);
    CHECK_OK(nerve_forward(q.g, q.loss));
    CHECK_NEAR(nerve_value(q.g, q.y).data[0], 0.05, 1e-6);
    CHECK_OK(nerve_backward(q.g, q.loss));
    CHECK_ARRAY_NEAR(nerve_grad(q.g, q.w).data, ((float[]){0.1f, 0.2f}), 2, 1e-6);
    /* g2 = (0.1, 0.2), v2 = 0.9 v1 − 0.05 g2 = (−0.095, −0.19), θ2 = θ1 + v2 = (0.305, −0.14) */
    nerve_optim_step(o, 0.05f);
    CHECK_ARRAY_NEAR(w, ((float[]){0.305f, -0.14f}), 2, 1e-6);
    /* and exactly θ1 + v2: the look-ahead was undone, not approximately subtracted */
    nerve_tensor v;
    CHECK_OK(nerve_optim_state_get(o, 0, NULL, &v));
    CHECK(w[0] == theta1[0] + v.data[0] && w[1] == theta1[1] + v.data[1]);
    nerve_optim_free(o);
    nerve_graph_free(q.g);
}

TEST(momentum_on_the_same_problem_uses_the_gradient_at_theta)
{
    /* The contrast that makes the Nesterov test meaningful: at θ1 = (0.4, 0.05), x·θ1 = 0.5,
     * g2 = (1, 2), v2 = 0.9 (−0.1, −0.2) − 0.05 (1, 2) = (−0.14, −0.28), θ2 = (0.26, −0.23). */
    quad_rig q;
    CHECK_OK(quad_rig_make(&q));
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_MOMENTUM);
    nerve_optim *o = nerve_optim_create(q.g, &c);
    CHECK(o);
    for (int k = 0; k < 2; k++) {
        nerve_optim_prepare(o);
        CHECK_OK(nerve_forward(q.g, q.loss));
        CHECK_OK(nerve_backward(q.g, q.loss));
        nerve_optim_step(o, 0.05f);
    }
    CHECK_ARRAY_NEAR(nerve_value(q.g, q.w).data, ((float[]){0.26f, -0.23f}), 2, 1e-6);
    nerve_optim_free(o);
    nerve_graph_free(q.g);
}

/* ---- weight decay ---------------------------------------------------------------------- */

/* W [1,2] (decayed by default) and b [2] (not), both starting at (1, −2) and both given
 * the gradients GRADS; two steps with ε = 0.1, wd = 0.1. */
static int run_decay(nerve_optim_config c, int b_decays, float w_out[2][2], float b_out[2][2])
{
    nerve_graph *g = nerve_graph_create();
    int w = nerve_param(g, "W", 2, (int[]){1, 2});
    int b = nerve_param(g, "b", 1, (int[]){2});
    if (b < 0)
        return b;
    if (b_decays)
        nerve_param_set_decay(g, b, 1);
    memcpy(nerve_value(g, w).data, W0, sizeof W0);
    memcpy(nerve_value(g, b).data, W0, sizeof W0);
    c.weight_decay = 0.1f;
    nerve_optim *o = nerve_optim_create(g, &c);
    if (!o)
        return nerve_last_status();
    for (int k = 0; k < 2; k++) {
        nerve_optim_prepare(o);
        memcpy(nerve_grad(g, w).data, GRADS[k], sizeof GRADS[k]);
        memcpy(nerve_grad(g, b).data, GRADS[k], sizeof GRADS[k]);
        nerve_optim_step(o, 0.1f);
        memcpy(w_out[k], nerve_value(g, w).data, 2 * sizeof(float));
        memcpy(b_out[k], nerve_value(g, b).data, 2 * sizeof(float));
    }
    nerve_optim_free(o);
    nerve_graph_free(g);
    return NERVE_OK;
}

TEST(coupled_decay_adds_wd_theta_to_the_gradient_of_decayed_params_only)
{
    /* AlexNet's rule: v ← 0.9 v − ε (g + wd θ); θ ← θ + v.
     * step 1: g' = (0.5 + 0.1, −1 − 0.2) = (0.6, −1.2); v = (−0.06, 0.12); θ = (0.94, −1.88)
     * step 2: g' = (2 + 0.094, 0.25 − 0.188) = (2.094, 0.062);
     *         v = (−0.054 − 0.2094, 0.108 − 0.0062) = (−0.2634, 0.1018); θ = (0.6766, −1.7782) */
    float w[2][2], b[2][2];
    CHECK_OK(run_decay(nerve_optim_default(NERVE_OPT_MOMENTUM), 0, w, b));
    CHECK_ARRAY_NEAR(w[0], ((float[]){0.94f, -1.88f}), 2, 1e-6);
    CHECK_ARRAY_NEAR(w[1], ((float[]){0.6766f, -1.7782f}), 2, 1e-6);
    /* the bias is not decayed: plain momentum */
    CHECK_ARRAY_NEAR(b[0], MOMENTUM_WANT[0], 2, 1e-6);
    CHECK_ARRAY_NEAR(b[1], MOMENTUM_WANT[1], 2, 1e-6);
    /* ...unless asked to be */
    CHECK_OK(run_decay(nerve_optim_default(NERVE_OPT_MOMENTUM), 1, w, b));
    CHECK_ARRAY_NEAR(b[1], ((float[]){0.6766f, -1.7782f}), 2, 1e-6);
}

TEST(decoupled_decay_shrinks_theta_outside_the_optimiser)
{
    /* θ ← θ − ε wd θ, then momentum with the plain gradient:
     * step 1: v = (−0.05, 0.1); θ = 0.99 (1, −2) + v = (0.94, −1.88)
     * step 2: v = (−0.245, 0.065); θ = 0.99 (0.94, −1.88) + v = (0.6856, −1.7962) */
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_MOMENTUM);
    c.decoupled = 1;
    float w[2][2], b[2][2];
    CHECK_OK(run_decay(c, 0, w, b));
    CHECK_ARRAY_NEAR(w[0], ((float[]){0.94f, -1.88f}), 2, 1e-6);
    CHECK_ARRAY_NEAR(w[1], ((float[]){0.6856f, -1.7962f}), 2, 1e-6);
    CHECK_ARRAY_NEAR(b[1], MOMENTUM_WANT[1], 2, 1e-6);
}

TEST(adam_with_coupled_decay_differs_from_adamw)
{
    /* One step with a zero loss gradient on W = (1, −2), ε = 0.1, wd = 0.1.
     * Adam + coupled: g' = wd θ = (0.1, −0.2); t = 1 so ŝ/√r̂ = g'/|g'|: θ moves by ≈ ε.
     * AdamW: θ ← θ − ε wd θ = (0.99, −1.98); the Adam part sees g = 0 and does nothing. */
    for (int decoupled = 0; decoupled <= 1; decoupled++) {
        nerve_graph *g = nerve_graph_create();
        int w = nerve_param(g, "W", 2, (int[]){1, 2});
        memcpy(nerve_value(g, w).data, W0, sizeof W0);
        nerve_optim_config c = nerve_optim_default(decoupled ? NERVE_OPT_ADAMW : NERVE_OPT_ADAM);
        c.weight_decay = 0.1f;
        nerve_optim *o = nerve_optim_create(g, &c);
        CHECK(o);
        nerve_optim_step(o, 0.1f);
        const float *v = nerve_value(g, w).data;
        if (decoupled)
            CHECK_ARRAY_NEAR(v, ((float[]){0.99f, -1.98f}), 2, 1e-7);
        else
            CHECK_ARRAY_NEAR(v, ((float[]){1 - 0.1 * 0.1 / (0.1 + 1e-8), -2 + 0.1 * 0.2 / (0.2 + 1e-8)}),
                             2, 1e-6);
        nerve_optim_free(o);
        nerve_graph_free(g);
    }
}

/* ---- clipping -------------------------------------------------------------------------- */

TEST(global_norm_clipping_scales_all_arrays_together)
{
    float a[2] = {3, 0}, b[1] = {4};
    float *arrays[2] = {a, b};
    size_t sizes[2] = {2, 1};
    CHECK_NEAR(nerve_clip_global_norm(arrays, sizes, 2, 10.0f), 5.0, 1e-6); /* below: untouched */
    CHECK(a[0] == 3 && a[1] == 0 && b[0] == 4);
    CHECK_NEAR(nerve_clip_global_norm(arrays, sizes, 2, 0.0f), 5.0, 1e-6); /* 0 = off */
    CHECK(a[0] == 3 && b[0] == 4);
    CHECK_NEAR(nerve_clip_global_norm(arrays, sizes, 2, 1.0f), 5.0, 1e-6); /* ×1/5 */
    CHECK_NEAR(a[0], 0.6, 1e-7);
    CHECK_NEAR(b[0], 0.8, 1e-7);
    CHECK_NEAR(nerve_clip_global_norm(arrays, sizes, 2, 1.0f), 1.0, 1e-6);
}

TEST(step_clips_the_gradient_and_returns_its_norm)
{
    /* gradient (3, 4) split over two parameters: ‖g‖ = 5 */
    for (int clip = 0; clip <= 1; clip++) {
        nerve_graph *g = nerve_graph_create();
        int p = nerve_param(g, "p", 1, (int[]){1});
        int q = nerve_param(g, "q", 1, (int[]){1});
        nerve_optim_config c = nerve_optim_default(NERVE_OPT_SGD);
        c.clip_norm = clip ? 1.0f : 10.0f;
        nerve_optim *o = nerve_optim_create(g, &c);
        CHECK(o);
        nerve_grad(g, p).data[0] = 3;
        nerve_grad(g, q).data[0] = 4;
        CHECK_NEAR(nerve_optim_step(o, 0.1f), 5.0, 1e-6);
        /* clipped: ε g/‖g‖ = 0.1 (0.6, 0.8); unclipped: 0.1 (3, 4) */
        CHECK_NEAR(nerve_value(g, p).data[0], clip ? -0.06 : -0.3, 1e-7);
        CHECK_NEAR(nerve_value(g, q).data[0], clip ? -0.08 : -0.4, 1e-7);
        nerve_optim_free(o);
        nerve_graph_free(g);
    }
}

/* ---- state, frozen parameters, allocation ---------------------------------------------- */

TEST(state_is_exposed_as_named_views)
{
    nerve_graph *g = nerve_graph_create();
    int w = nerve_param(g, "fc1.weight", 2, (int[]){3, 2});
    nerve_param(g, "fc1.bias", 1, (int[]){3});
    const struct { nerve_opt_type t; int count; const char *first, *last; } cases[] = {
        {NERVE_OPT_SGD, 0, NULL, NULL},
        {NERVE_OPT_MOMENTUM, 2, "fc1.weight.v", "fc1.bias.v"},
        {NERVE_OPT_ADAGRAD, 2, "fc1.weight.r", "fc1.bias.r"},
        {NERVE_OPT_ADAM, 4, "fc1.weight.s", "fc1.bias.r"},
        {NERVE_OPT_ADADELTA, 4, "fc1.weight.r", "fc1.bias.u"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nerve_optim_config c = nerve_optim_default(cases[i].t);
        nerve_optim *o = nerve_optim_create(g, &c);
        CHECK(o);
        CHECK(nerve_optim_state_count(o) == cases[i].count);
        const char *name;
        nerve_tensor t;
        if (cases[i].count) {
            CHECK_OK(nerve_optim_state_get(o, 0, &name, &t));
            CHECK_MSG(strcmp(name, cases[i].first) == 0, "%s", name);
            CHECK(t.ndim == 2 && t.dims[0] == 3 && t.dims[1] == 2 && t.data);
            CHECK_OK(nerve_optim_state_get(o, cases[i].count - 1, &name, &t));
            CHECK_MSG(strcmp(name, cases[i].last) == 0, "%s", name);
            CHECK(t.ndim == 1 && t.dims[0] == 3);
        }
        CHECK(nerve_optim_state_get(o, cases[i].count, &name, &t) == NERVE_ERR_ARG);
        nerve_optim_free(o);
    }
    /* the view is the live velocity: after one momentum step v = −ε g */
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_MOMENTUM);
    nerve_optim *o = nerve_optim_create(g, &c);
    nerve_grad(g, w).data[4] = 2.0f;
    nerve_optim_step(o, 0.5f);
    nerve_tensor v;
    CHECK_OK(nerve_optim_state_get(o, 0, NULL, &v));
    CHECK_NEAR(v.data[4], -1.0, 1e-7);
    CHECK(nerve_optim_steps(o) == 1);
    nerve_optim_free(o);
    nerve_graph_free(g);
}

/* A gradient that depends on the weights and the step: g_i = 0.5 w_i + 0.1 (i + 1) + 0.01 k */
static void synthetic_grad(nerve_graph *g, int w, int k)
{
    float *v = nerve_value(g, w).data, *d = nerve_grad(g, w).data;
    for (int i = 0; i < 6; i++)
        d[i] = 0.5f * v[i] + 0.1f * (float)(i + 1) + 0.01f * (float)k;
}

static nerve_graph *six_param_graph(int *w)
{
    nerve_graph *g = nerve_graph_create();
    *w = nerve_param(g, "w", 2, (int[]){2, 3});
    float *v = nerve_value(g, *w).data;
    for (int i = 0; i < 6; i++)
        v[i] = (float)i * 0.3f - 0.7f;
    return g;
}

TEST(a_resumed_optimiser_continues_bit_identically)
{
    const nerve_opt_type types[] = {NERVE_OPT_NESTEROV, NERVE_OPT_ADAM, NERVE_OPT_ADADELTA,
                                    NERVE_OPT_RMSPROP};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        nerve_optim_config c = nerve_optim_default(types[t]);
        c.weight_decay = 0.01f;
        int wa, wb;
        nerve_graph *ga = six_param_graph(&wa), *gb = six_param_graph(&wb);
        nerve_optim *a = nerve_optim_create(ga, &c);
        CHECK(a);
        for (int k = 0; k < 3; k++) {
            nerve_optim_prepare(a);
            synthetic_grad(ga, wa, k);
            nerve_optim_step(a, 0.05f);
        }
        /* "checkpoint" a into a fresh optimiser on a copy of the model */
        memcpy(nerve_value(gb, wb).data, nerve_value(ga, wa).data, 6 * sizeof(float));
        nerve_optim *b = nerve_optim_create(gb, &c);
        CHECK(b);
        for (int i = 0; i < nerve_optim_state_count(a); i++) {
            nerve_tensor sa, sb;
            CHECK_OK(nerve_optim_state_get(a, i, NULL, &sa));
            CHECK_OK(nerve_optim_state_get(b, i, NULL, &sb));
            memcpy(sb.data, sa.data, nerve_tensor_numel(&sa) * sizeof(float));
        }
        CHECK_OK(nerve_optim_set_steps(b, nerve_optim_steps(a)));
        for (int k = 3; k < 6; k++) {
            nerve_optim_prepare(a);
            nerve_optim_prepare(b);
            synthetic_grad(ga, wa, k);
            synthetic_grad(gb, wb, k);
            nerve_optim_step(a, 0.05f);
            nerve_optim_step(b, 0.05f);
        }
        CHECK_MSG(memcmp(nerve_value(ga, wa).data, nerve_value(gb, wb).data, 6 * sizeof(float)) == 0,
                  "%s: resumed weights differ", nerve_optim_name(types[t]));
        nerve_optim_free(a);
        nerve_optim_free(b);
        nerve_graph_free(ga);
        nerve_graph_free(gb);
    }
}

TEST(frozen_parameters_are_skipped)
{
    nerve_graph *g = nerve_graph_create();
    int f = nerve_param(g, "frozen", 1, (int[]){2});
    int u = nerve_param(g, "free", 1, (int[]){2});
    int later = nerve_param(g, "later", 1, (int[]){2});
    CHECK_OK(nerve_param_set_frozen(g, f, 1));
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_NESTEROV);
    nerve_optim *o = nerve_optim_create(g, &c);
    CHECK(o);
    CHECK(nerve_optim_state_count(o) == 2); /* free and later */
    nerve_grad(g, u).data[0] = 1.0f;
    nerve_grad(g, later).data[0] = 1.0f;
    nerve_optim_step(o, 0.1f); /* v = −0.1 for both */
    CHECK_NEAR(nerve_value(g, later).data[0], -0.1, 1e-7);
    /* frozen between prepare (which moved it to the look-ahead) and step: put back, kept */
    nerve_optim_prepare(o);
    CHECK_NEAR(nerve_value(g, later).data[0], -0.1 - 0.09, 1e-7);
    CHECK_OK(nerve_param_set_frozen(g, later, 1));
    nerve_optim_step(o, 0.1f);
    CHECK_NEAR(nerve_value(g, later).data[0], -0.1, 1e-7);
    CHECK_NEAR(nerve_value(g, u).data[0], -0.1 - 0.09 - 0.1, 1e-6);
    CHECK(nerve_value(g, f).data[0] == 0.0f);
    nerve_optim_free(o);
    nerve_graph_free(g);
}

TEST(prepare_and_step_never_allocate)
{
    for (int t = 0; t < NERVE_OPT_COUNT; t++) {
        int w;
        nerve_graph *g = six_param_graph(&w);
        nerve_optim_config c = nerve_optim_default((nerve_opt_type)t);
        c.clip_norm = 0.5f;
        c.weight_decay = 0.01f;
        nerve_optim *o = nerve_optim_create(g, &c);
        CHECK(o);
        uint64_t before = nerve_alloc_count();
        for (int k = 0; k < 10; k++) {
            nerve_optim_prepare(o);
            synthetic_grad(g, w, k);
            nerve_optim_step(o, 0.01f);
        }
        CHECK_MSG(nerve_alloc_count() == before, "%s allocates", nerve_optim_name((nerve_opt_type)t));
        nerve_optim_free(o);
        nerve_graph_free(g);
    }
}

TEST(optimiser_names_parse_and_configs_are_checked)
{
    for (int t = 0; t < NERVE_OPT_COUNT; t++) {
        nerve_opt_type got;
        CHECK_OK(nerve_optim_parse(nerve_optim_name((nerve_opt_type)t), &got));
        CHECK((int)got == t);
    }
    nerve_opt_type got;
    CHECK_OK(nerve_optim_parse("Adam", &got));
    CHECK(got == NERVE_OPT_ADAM);
    CHECK(nerve_optim_parse("adamax", &got) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "adamax") != NULL);
    nerve_optim_config c = nerve_optim_default(NERVE_OPT_ADAM);
    CHECK(c.rho1 == 0.9f && c.rho2 == 0.999f && c.delta == 0.0f && c.weight_decay == 0.0f);
    CHECK(nerve_optim_default(NERVE_OPT_ADADELTA).rho1 == 0.95f);
    CHECK(nerve_optim_default(NERVE_OPT_MOMENTUM).momentum == 0.9f);
    nerve_graph *g = nerve_graph_create();
    c.rho2 = 1.0f;
    CHECK(nerve_optim_create(g, &c) == NULL && nerve_last_status() == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* ---- schedules ------------------------------------------------------------------------- */

TEST(linear_decay_is_the_courses_schedule)
{
    nerve_schedule s = nerve_schedule_default(NERVE_SCHED_LINEAR, 0.1f);
    s.lr_end = 0.001f;
    s.tau = 100;
    /* ε_k = (1 − k/τ) ε0 + (k/τ) ετ for k < τ, ετ after */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 0), 0.1, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 25, 0), 0.75 * 0.1 + 0.25 * 0.001, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 50, 3), 0.5 * 0.1 + 0.5 * 0.001, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 100, 5), 0.001, 1e-9);
    CHECK_NEAR(nerve_schedule_lr(&s, 200, 9), 0.001, 1e-9);
    /* the default ends at 1% of the initial rate */
    CHECK_NEAR(nerve_schedule_default(NERVE_SCHED_LINEAR, 0.1f).lr_end, 0.001, 1e-9);
}

TEST(step_multistep_exponential_and_constant_schedules)
{
    nerve_schedule c = nerve_schedule_default(NERVE_SCHED_CONSTANT, 0.1f);
    CHECK_NEAR(nerve_schedule_lr(&c, 12345, 77), 0.1, 1e-7);
    nerve_schedule s = nerve_schedule_default(NERVE_SCHED_STEP, 0.1f);
    CHECK(s.step == 30 && s.gamma == 0.1f);
    s.step = 3;
    s.gamma = 0.5f;
    const int ep[] = {0, 2, 3, 5, 6, 7};
    const double want[] = {0.1, 0.1, 0.05, 0.05, 0.025, 0.025};
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(nerve_schedule_lr(&s, 0, ep[i]), want[i], 1e-7);
    nerve_schedule m = nerve_schedule_default(NERVE_SCHED_MULTISTEP, 0.1f);
    m.milestones[0] = 2;
    m.milestones[1] = 5;
    m.n_milestones = 2;
    const double mwant[] = {0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001};
    for (int e = 0; e < 7; e++)
        CHECK_NEAR(nerve_schedule_lr(&m, 0, e), mwant[e], 1e-7);
    nerve_schedule x = nerve_schedule_default(NERVE_SCHED_EXPONENTIAL, 0.1f);
    x.gamma = 0.9f;
    CHECK_NEAR(nerve_schedule_lr(&x, 0, 0), 0.1, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&x, 0, 3), 0.1 * 0.9 * 0.9 * 0.9, 1e-7);
}

TEST(cosine_warms_up_linearly_then_follows_half_a_cosine)
{
    nerve_schedule s = nerve_schedule_default(NERVE_SCHED_COSINE, 0.1f);
    s.warmup = 10;
    s.tau = 110;
    s.lr_end = 0.0f;
    /* warm-up: lr (k+1)/10 */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 0), 0.01, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 4, 0), 0.05, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 9, 0), 0.1, 1e-7);
    /* cosine over the remaining 100 iterations: lr_end + (lr − lr_end)(1 + cos πp)/2 */
    CHECK_NEAR(nerve_schedule_lr(&s, 10, 0), 0.1, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 35, 0), 0.05 * (1 + cos(3.141592653589793 / 4)), 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 60, 0), 0.05, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 110, 0), 0.0, 1e-9);
    CHECK_NEAR(nerve_schedule_lr(&s, 500, 0), 0.0, 1e-9);
    s.warmup = 0;
    s.lr_end = 0.02f;
    s.tau = 100;
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 0), 0.1, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 50, 0), 0.06, 1e-7);
    CHECK_NEAR(nerve_schedule_lr(&s, 100, 0), 0.02, 1e-7);
}

TEST(plateau_decays_after_patience_epochs_without_improvement)
{
    nerve_schedule s = nerve_schedule_default(NERVE_SCHED_PLATEAU, 0.1f);
    CHECK(s.patience == 10 && s.gamma == 0.1f && s.threshold == 1e-4f);
    s.patience = 2;
    s.threshold = 0.01f; /* improvements must beat the best by more than 1% */
    nerve_schedule_observe(&s, 1.0f);   /* first: the best */
    nerve_schedule_observe(&s, 0.995f); /* only 0.5% better: bad 1 */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 1), 0.1, 1e-7);
    nerve_schedule_observe(&s, 0.999f); /* bad 2 = patience: ×0.1 */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 2), 0.01, 1e-7);
    nerve_schedule_observe(&s, 0.5f); /* improvement: counter reset */
    nerve_schedule_observe(&s, 0.6f); /* bad 1 */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 4), 0.01, 1e-7);
    nerve_schedule_observe(&s, 0.49f); /* 2% better: reset */
    nerve_schedule_observe(&s, NAN);   /* bad 1 */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 6), 0.01, 1e-7);
    nerve_schedule_observe(&s, 0.7f); /* bad 2: ×0.1 again */
    CHECK_NEAR(nerve_schedule_lr(&s, 0, 7), 0.001, 1e-9);
    CHECK_NEAR(s.best, 0.49, 1e-7);
}

TEST(schedule_names_parse)
{
    const char *names[] = {"constant", "step",    "multistep", "exponential", "linear",
                           "cosine",   "plateau", "poly",      "sigmoid"};
    for (int t = 0; t < 9; t++) {
        nerve_sched_type got;
        CHECK_OK(nerve_schedule_parse(names[t], &got));
        CHECK((int)got == t);
        CHECK(strcmp(nerve_schedule_name(got), names[t]) == 0);
    }
    nerve_sched_type got;
    CHECK_OK(nerve_schedule_parse("exp", &got));
    CHECK(got == NERVE_SCHED_EXPONENTIAL);
    CHECK(nerve_schedule_parse("random", &got) == NERVE_ERR_ARG);
}

/* ---- Newton's method ------------------------------------------------------------------- */

/* Builds loss = (w Aᵀ + t)(w Aᵀ + t)ᵀ = ‖A w + t‖² from dense and matmul, with A and t
 * stored as states: an analytic gradient 2 Aᵀ(A w + t) and Hessian 2 AᵀA. */
static nerve_graph *least_squares(const float A[4], const float t[2], const float w0[2], int *w,
                                  int *loss)
{
    nerve_graph *g = nerve_graph_create();
    *w = nerve_param(g, "w", 2, (int[]){1, 2});
    int a = nerve_state(g, "A", 2, (int[]){2, 2});
    int b = nerve_state(g, "t", 1, (int[]){2});
    int r = nerve_dense(g, *w, a, b);           /* [1,2] */
    *loss = nerve_matmul(g, r, r, 0, 1);        /* [1,1] */
    if (*loss < 0 || nerve_graph_compile(g, 1) < 0)
        return NULL;
    memcpy(nerve_value(g, a).data, A, 4 * sizeof(float));
    memcpy(nerve_value(g, b).data, t, 2 * sizeof(float));
    memcpy(nerve_value(g, *w).data, w0, 2 * sizeof(float));
    return g;
}

TEST(newton_reaches_the_minimum_of_a_quadratic_in_one_step)
{
    /* A = [[2, 1], [1, 3]], t = (−1, −2): the minimum solves A w = (1, 2),
     * w* = A⁻¹ (1, 2) = (1/5) [[3, −1], [−1, 2]] (1, 2) = (0.2, 0.6). */
    const float A[4] = {2, 1, 1, 3}, t[2] = {-1, -2}, w0[2] = {1, -1};
    int w, loss;
    nerve_graph *g = least_squares(A, t, w0, &w, &loss);
    CHECK(g);
    CHECK_OK(nerve_newton_step(g, loss, 1.0f));
    CHECK_ARRAY_NEAR(nerve_value(g, w).data, ((float[]){0.2f, 0.6f}), 2, 1e-4);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_NEAR(nerve_value(g, loss).data[0], 0.0, 1e-6);
    /* lr = 0.5 from w0 goes half way: w0 − 0.5 (w0 − w*) = (0.6, −0.2) */
    memcpy(nerve_value(g, w).data, w0, sizeof w0);
    CHECK_OK(nerve_newton_step(g, loss, 0.5f));
    CHECK_ARRAY_NEAR(nerve_value(g, w).data, ((float[]){0.6f, -0.2f}), 2, 1e-4);
    nerve_graph_free(g);
}

TEST(newton_damps_an_indefinite_hessian)
{
    /* f(w) = w1² − w2² = (w Iᵀ)(w Bᵀ)ᵀ with B = diag(1, −1): g = (2 w1, −2 w2), H = diag(2, −2).
     * λ starts at 1e−6 · max|H_ii| = 2e−6 and doubles until −2 + λ > 0: λ = 2e−6 · 2^20.
     * At w = (1, 1): d = (2/(2 + λ), −2/(−2 + λ)), w ← w − d. */
    nerve_graph *g = nerve_graph_create();
    int w = nerve_param(g, "w", 2, (int[]){1, 2});
    int I = nerve_state(g, "I", 2, (int[]){2, 2});
    int B = nerve_state(g, "B", 2, (int[]){2, 2});
    int r = nerve_dense(g, w, I, -1), s = nerve_dense(g, w, B, -1);
    int loss = nerve_matmul(g, r, s, 0, 1);
    CHECK_OK(loss);
    CHECK_OK(nerve_graph_compile(g, 1));
    memcpy(nerve_value(g, I).data, (float[]){1, 0, 0, 1}, 4 * sizeof(float));
    memcpy(nerve_value(g, B).data, (float[]){1, 0, 0, -1}, 4 * sizeof(float));
    memcpy(nerve_value(g, w).data, (float[]){1, 1}, 2 * sizeof(float));
    CHECK_OK(nerve_newton_step(g, loss, 1.0f));
    double lambda = 2e-6 * 1048576.0;
    const float *v = nerve_value(g, w).data;
    CHECK_NEAR(v[0], 1.0 - 2.0 / (2.0 + lambda), 1e-4);
    CHECK_NEAR(v[1], 1.0 + 2.0 / (-2.0 + lambda), 0.05); /* ≈ 21.6, ill-conditioned */
    nerve_graph_free(g);
}

TEST(optimisers_and_newton_return_every_byte)
{
    size_t before = nerve_alloc_bytes();
    for (int t = 0; t < NERVE_OPT_COUNT; t++) {
        int w;
        nerve_graph *g = six_param_graph(&w);
        nerve_optim_config c = nerve_optim_default((nerve_opt_type)t);
        nerve_optim *o = nerve_optim_create(g, &c);
        CHECK(o);
        nerve_optim_free(o);
        nerve_graph_free(g);
    }
    CHECK(nerve_alloc_bytes() == before);
    const float A[4] = {2, 1, 1, 3}, t[2] = {-1, -2}, w0[2] = {1, -1};
    int w, loss;
    nerve_graph *g = least_squares(A, t, w0, &w, &loss);
    CHECK(g);
    CHECK_OK(nerve_forward(g, loss)); /* first run: kernels may set up their thread pool */
    before = nerve_alloc_bytes();
    CHECK_OK(nerve_newton_step(g, loss, 1.0f));
    CHECK(nerve_alloc_bytes() == before);
    nerve_graph_free(g);
}
