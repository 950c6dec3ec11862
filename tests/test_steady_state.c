/* The training step of a convolutional model: no allocation once running, and bit-identical
 * results run to run at a given thread count (static partitions everywhere). */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* conv+BN+ReLU, max pool, a residual block, global average pool, dense, softmax. */
static const char *CONV_CFG = "[net]\nheight=12\nwidth=12\nchannels=3\nbatch=8\n"
                              "optimizer=momentum\nlearning_rate=0.05\nclasses=4\n"
                              "[convolutional]\nfilters=8\nsize=3\npadding=1\nbatch_normalize=1\n"
                              "activation=relu\n"
                              "[maxpool]\nsize=2\nstride=2\n"
                              "[convolutional]\nfilters=8\nsize=3\npadding=1\nbatch_normalize=1\n"
                              "activation=relu\n"
                              "[convolutional]\nfilters=8\nsize=3\npadding=1\nbatch_normalize=1\n"
                              "activation=linear\n"
                              "[shortcut]\nfrom=-3\nactivation=relu\n"
                              "[avgpool]\n[connected]\noutput=4\n[softmax]\n";

static nerve_model *build(void)
{
    nerve_model *m = nerve_model_from_cfg(CONV_CFG, "steady.cfg");
    if (!m || nerve_model_compile(m, 8) != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    nerve_graph *g = nerve_model_graph(m);
    nerve_tensor xt = nerve_value(g, nerve_model_input(m));
    nerve_tensor yt = nerve_value(g, nerve_model_labels(m));
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (size_t i = 0; i < nerve_tensor_numel(&xt); i++)
        xt.data[i] = nerve_rng_normal(&r);
    for (size_t i = 0; i < nerve_tensor_numel(&yt); i++)
        yt.data[i] = (float)(i % 4);
    nerve_graph_set_training(g, 1);
    return m;
}

/* Runs `steps` SGD steps; counts the library's allocations from the second step on. */
static uint64_t train(nerve_model *m, nerve_optim *opt, int steps)
{
    nerve_graph *g = nerve_model_graph(m);
    int loss = nerve_model_loss(m);
    uint64_t before = nerve_alloc_count();
    for (int s = 0; s < steps; s++) {
        if (s == 1)
            before = nerve_alloc_count();
        nerve_optim_prepare(opt);
        nerve_forward(g, loss);
        nerve_backward(g, loss);
        nerve_optim_step(opt, 0.05f);
    }
    return nerve_alloc_count() - before;
}

TEST(conv_training_step_allocates_nothing_on_two_threads)
{
    nerve_set_threads(2);
    nerve_model *m = build();
    CHECK(m != NULL);
    nerve_optim *opt = nerve_optim_create(nerve_model_graph(m), &nerve_model_config(m)->optim);
    CHECK(opt != NULL);
    uint64_t n = train(m, opt, 6);
    CHECK_MSG(n == 0, "%llu allocations in 5 steady-state steps", (unsigned long long)n);
    nerve_optim_free(opt);
    nerve_model_free(m);
    nerve_set_threads(0);
}

/* Copies all trainable parameters of m into a new malloc'd array; *count gets the size. */
static float *params_of(nerve_model *m, size_t *count)
{
    nerve_graph *g = nerve_model_graph(m);
    int ids[256];
    int k = nerve_graph_params(g, ids, 256);
    size_t total = 0;
    for (int i = 0; i < k; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        total += nerve_tensor_numel(&t);
    }
    float *all = malloc(total * sizeof(float)), *p = all;
    for (int i = 0; all && i < k; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        memcpy(p, t.data, nerve_tensor_numel(&t) * sizeof(float));
        p += nerve_tensor_numel(&t);
    }
    *count = total;
    return all;
}

static float *trained_params(int threads, size_t *count)
{
    nerve_set_threads(threads);
    nerve_model *m = build();
    if (!m)
        return NULL;
    nerve_optim *opt = nerve_optim_create(nerve_model_graph(m), &nerve_model_config(m)->optim);
    train(m, opt, 4);
    float *p = params_of(m, count);
    nerve_optim_free(opt);
    nerve_model_free(m);
    nerve_set_threads(0);
    return p;
}

TEST(conv_training_is_bit_identical_run_to_run_at_each_thread_count)
{
    for (int threads = 1; threads <= 2; threads++) {
        size_t n1 = 0, n2 = 0;
        float *a = trained_params(threads, &n1), *b = trained_params(threads, &n2);
        CHECK(a != NULL && b != NULL && n1 == n2 && n1 > 0);
        CHECK_MSG(memcmp(a, b, n1 * sizeof(float)) == 0, "%d threads: runs differ", threads);
        free(a);
        free(b);
    }
}

TEST(conv_training_on_two_threads_matches_one_thread_closely)
{
    size_t n1 = 0, n2 = 0;
    float *a = trained_params(1, &n1), *b = trained_params(2, &n2);
    CHECK(a != NULL && b != NULL && n1 == n2);
    CHECK_ARRAY_NEAR(a, b, n1, 1e-4);
    free(a);
    free(b);
}

/* Two 16-channel 3x3 convolutions on 8x8 maps take the Winograd routes; the second one's
 * input gradient is a pooled buffer that it overwrites instead of adding into. Pooled and
 * private buffers must give the same parameter gradients bit for bit. */
static const char *WINO_CFG = "[net]\nheight=8\nwidth=8\nchannels=16\nbatch=6\nclasses=3\n"
                              "[convolutional]\nfilters=16\nsize=3\npadding=1\nactivation=linear\n"
                              "[convolutional]\nfilters=16\nsize=3\npadding=1\nactivation=relu\n"
                              "[avgpool]\n[connected]\noutput=3\n[softmax]\n";

static float *wino_grads(int keep, int threads, size_t *count)
{
    nerve_set_threads(threads);
    nerve_model *m = nerve_model_from_cfg(WINO_CFG, "wino.cfg");
    if (!m)
        return NULL;
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_keep_buffers(g, keep);
    float *all = NULL;
    if (nerve_model_compile(m, 6) == NERVE_OK) {
        nerve_tensor xt = nerve_value(g, nerve_model_input(m));
        nerve_tensor yt = nerve_value(g, nerve_model_labels(m));
        nerve_rng r;
        nerve_rng_seed(&r, 9);
        for (size_t i = 0; i < nerve_tensor_numel(&xt); i++)
            xt.data[i] = nerve_rng_normal(&r);
        for (size_t i = 0; i < nerve_tensor_numel(&yt); i++)
            yt.data[i] = (float)(i % 3);
        nerve_graph_set_training(g, 1);
        int loss = nerve_model_loss(m), ids[16];
        int k = nerve_graph_params(g, ids, 16);
        size_t total = 0;
        for (int pass = 0; pass < 2; pass++) { /* the second pass sees used buffers */
            nerve_forward(g, loss);
            nerve_backward(g, loss);
        }
        for (int i = 0; i < k; i++) {
            nerve_tensor t = nerve_grad(g, ids[i]);
            total += nerve_tensor_numel(&t);
        }
        all = malloc(total * sizeof(float));
        float *p = all;
        for (int i = 0; all && i < k; i++) {
            nerve_tensor t = nerve_grad(g, ids[i]);
            memcpy(p, t.data, nerve_tensor_numel(&t) * sizeof(float));
            p += nerve_tensor_numel(&t);
        }
        *count = total;
    }
    nerve_model_free(m);
    nerve_set_threads(0);
    return all;
}

TEST(winograd_conv_overwriting_a_fresh_gradient_matches_private_buffers)
{
    for (int threads = 1; threads <= 2; threads++) {
        size_t n1 = 0, n2 = 0;
        float *pooled = wino_grads(0, threads, &n1), *priv = wino_grads(1, threads, &n2);
        CHECK(pooled != NULL && priv != NULL && n1 == n2 && n1 > 16 * 16 * 9);
        CHECK_MSG(memcmp(pooled, priv, n1 * sizeof(float)) == 0, "%d threads: gradients differ",
                  threads);
        free(pooled);
        free(priv);
    }
}
