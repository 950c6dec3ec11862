/* The optimiser step split across threads over all parameters at once: a parameter large
 * enough to be split between threads, and small ones that share a thread's range, all
 * updated exactly as the one-thread step does, and as the update rule says. */
#include "test.h"

#include <string.h>

enum { BIG = 300 * 300, SMALL = 10 };

typedef struct quad {
    nerve_graph *g;
    nerve_optim *opt;
    int w, u, loss;
} quad;

/* loss = mean(w * w) + mean(u * u): dL/dw = 2w / BIG, dL/du = 2u / SMALL. */
static int build_quad(quad *q)
{
    nerve_graph *g = q->g = nerve_graph_create();
    q->w = nerve_param(g, "w", 2, (int[]){300, 300});
    q->u = nerve_param(g, "u", 1, (int[]){SMALL});
    int lw = nerve_mean(g, nerve_mul(g, q->w, q->w), NERVE_AXIS_ALL, 0);
    int lu = nerve_mean(g, nerve_mul(g, q->u, q->u), NERVE_AXIS_ALL, 0);
    q->loss = nerve_add(g, lw, lu);
    int st = nerve_graph_compile(g, 1);
    if (st)
        return st;
    float *w = nerve_value(g, q->w).data, *u = nerve_value(g, q->u).data;
    for (int i = 0; i < BIG; i++)
        w[i] = (float)(i % 97) / 48.0f - 1.0f;
    for (int i = 0; i < SMALL; i++)
        u[i] = 0.1f * (float)i;
    nerve_optim_config oc = nerve_optim_default(NERVE_OPT_NESTEROV);
    q->opt = nerve_optim_create(g, &oc);
    return q->opt ? NERVE_OK : NERVE_ERR_NOMEM;
}

static int train(quad *q, int steps, float lr)
{
    for (int s = 0; s < steps; s++) {
        nerve_optim_prepare(q->opt);
        int st = nerve_forward(q->g, q->loss);
        st = st ? st : nerve_backward(q->g, q->loss);
        if (st)
            return st;
        nerve_optim_step(q->opt, lr);
    }
    return NERVE_OK;
}

/* Nesterov by the book on one weight: g at the look-ahead θ + μv, v = μv - lr g, θ += v. */
static float nesterov_reference(float theta, float scale, int steps, float mu, float lr)
{
    float v = 0.0f;
    for (int s = 0; s < steps; s++) {
        float g = scale * (theta + mu * v);
        v = mu * v - lr * g;
        theta += v;
    }
    return theta;
}

TEST(optim_threads_split_all_parameters_like_one_thread)
{
    quad one, two;
    nerve_set_threads(1);
    CHECK_OK(build_quad(&one));
    CHECK_OK(train(&one, 3, 0.5f));
    nerve_set_threads(2);
    CHECK_OK(build_quad(&two));
    CHECK_OK(train(&two, 3, 0.5f));
    nerve_set_threads(0);
    const float *w1 = nerve_value(one.g, one.w).data, *w2 = nerve_value(two.g, two.w).data;
    CHECK(memcmp(w1, w2, BIG * sizeof(float)) == 0);
    CHECK(memcmp(nerve_value(one.g, one.u).data, nerve_value(two.g, two.u).data,
                 SMALL * sizeof(float)) == 0);
    float mu = nerve_optim_default(NERVE_OPT_NESTEROV).momentum;
    for (int i = 0; i < BIG; i += 997) {
        float start = (float)(i % 97) / 48.0f - 1.0f;
        CHECK_NEAR(w2[i], nesterov_reference(start, 2.0f / BIG, 3, mu, 0.5f), 1e-6);
    }
    for (int i = 0; i < SMALL; i++)
        CHECK_NEAR(nerve_value(two.g, two.u).data[i],
                   nesterov_reference(0.1f * (float)i, 2.0f / SMALL, 3, mu, 0.5f), 1e-5);
    nerve_optim_free(one.opt);
    nerve_optim_free(two.opt);
    nerve_graph_free(one.g);
    nerve_graph_free(two.g);
}
