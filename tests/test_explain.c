/* Explanations and attacks (COURSE.md §11): the ReLU backward modes on the slides' 3x3
 * vectors, seeded backward passes, finite-difference checks of every input gradient the
 * explanations and attacks use, the maps' definitions on models where they are known in
 * closed form, Spearman's correlation, FGSM/PGD geometry, robust training steps that reduce
 * to plain training, and the nerve explain / attack / eval --robust commands. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* ---- ReLU backward modes and seeded passes -------------------------------------------- */

static const float RELU_X[9] = {1, -1, 5, 2, -5, -7, -3, 2, 4};
static const float RELU_DY[9] = {-2, 3, -1, 6, -3, 1, 2, -1, 3};

static void relu_mode_case(nerve_relu_backward mode, const float *want)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){0, 9});
    int y = nerve_activation(g, x, nerve_act_default(NERVE_ACT_RELU));
    CHECK_OK(y);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    memcpy(nerve_value(g, x).data, RELU_X, sizeof RELU_X);
    CHECK_OK(nerve_forward(g, y));
    CHECK_OK(nerve_graph_set_relu_backward(g, mode));
    CHECK_OK(nerve_backward_seeded(g, y, RELU_DY, 0));
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, want, 9, 0);
    nerve_graph_free(g);
}

TEST(relu_backward_modes_give_the_slides_vectors)
{
    /* COURSE.md §11: forward [[1,-1,5],[2,-5,-7],[-3,2,4]], upstream [[-2,3,-1],[6,-3,1],[2,-1,3]] */
    static const float backprop[9] = {-2, 0, -1, 6, 0, 0, 0, -1, 3};
    static const float deconvnet[9] = {0, 3, 0, 6, 0, 1, 2, 0, 3};
    static const float guided[9] = {0, 0, 0, 6, 0, 0, 0, 0, 3};
    relu_mode_case(NERVE_RELU_BACKPROP, backprop);
    relu_mode_case(NERVE_RELU_DECONVNET, deconvnet);
    relu_mode_case(NERVE_RELU_GUIDED, guided);
}

TEST(relu_modes_refuse_relus_folded_into_batch_norm)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    int x = nerve_input(g, "x", 2, (int[]){0, 4});
    int h = nerve_layer_dense(g, x, 4, 0, (nerve_init){NERVE_INIT_HE_NORMAL, 0, 0}, &r, "fc");
    h = nerve_layer_batchnorm(g, h, 0.1f, 1e-5f, "bn");
    int y = nerve_activation(g, h, nerve_act_default(NERVE_ACT_RELU));
    int s = nerve_sum(g, y, NERVE_AXIS_ALL, 0);
    CHECK_OK(s);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    for (int i = 0; i < 8; i++)
        nerve_value(g, x).data[i] = (float)(i % 3) - 1.0f;
    CHECK_OK(nerve_forward(g, s));
    CHECK_OK(nerve_graph_set_relu_backward(g, NERVE_RELU_GUIDED));
    int st = nerve_backward_seeded(g, s, NULL, 0);
    CHECK(st == NERVE_ERR_STATE && strstr(nerve_last_error(), "keep_buffers"));
    CHECK_OK(nerve_graph_set_relu_backward(g, NERVE_RELU_BACKPROP));
    CHECK_OK(nerve_backward_seeded(g, s, NULL, 0));
    nerve_graph_free(g);
}

static int hook_calls;
static void count_hook(void *user, int param)
{
    (void)user;
    (void)param;
    hook_calls++;
}

TEST(seeded_backward_matches_backward_and_inputs_only_leaves_parameters)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 2);
    nerve_init he = {NERVE_INIT_HE_NORMAL, 0, 0};
    int x = nerve_input(g, "x", 2, (int[]){0, 5});
    int h = nerve_activation(g, nerve_layer_dense(g, x, 6, 1, he, &r, "a"), nerve_act_default(NERVE_ACT_TANH));
    int z = nerve_layer_dense(g, h, 3, 1, he, &r, "b");
    int s = nerve_sum(g, z, NERVE_AXIS_ALL, 0);
    CHECK_OK(s);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    for (int i = 0; i < 10; i++)
        nerve_value(g, x).data[i] = 0.3f * (float)(i % 4) - 0.4f;
    CHECK_OK(nerve_graph_set_grad_hook(g, count_hook, NULL));
    int w = nerve_node_find(g, "a.weight");
    CHECK_OK(nerve_forward(g, s));
    hook_calls = 0;
    CHECK_OK(nerve_backward(g, s));
    CHECK(hook_calls == 4);
    float gx[10], gw[30];
    memcpy(gx, nerve_grad(g, x).data, sizeof gx);
    memcpy(gw, nerve_grad(g, w).data, sizeof gw);
    /* seeding z with ones is the same as seeding the sum with 1 */
    hook_calls = 0;
    CHECK_OK(nerve_backward_seeded(g, z, NULL, 0));
    CHECK(hook_calls == 4);
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, gx, 10, 1e-6);
    CHECK_ARRAY_NEAR(nerve_grad(g, w).data, gw, 30, 1e-6);
    /* inputs only: the input's gradient, parameters untouched, no hook */
    for (int i = 0; i < 30; i++)
        nerve_grad(g, w).data[i] = 42.0f;
    hook_calls = 0;
    CHECK_OK(nerve_backward_seeded(g, z, NULL, NERVE_BACKWARD_INPUTS_ONLY));
    CHECK(hook_calls == 0);
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, gx, 10, 1e-6);
    for (int i = 0; i < 30; i++)
        CHECK(nerve_grad(g, w).data[i] == 42.0f);
    /* and the parameters take part again afterwards */
    CHECK_OK(nerve_backward(g, s));
    CHECK_ARRAY_NEAR(nerve_grad(g, w).data, gw, 30, 1e-6);
    CHECK(nerve_backward_seeded(g, z, NULL, 4) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

/* Central differences of f at *xi against grad: step 1e-3, and where a kink of ReLU or max
 * pooling lies within that step (the difference straddles it), step 2.5e-4 as well. */
typedef double (*scalar_fn)(void *ctx);
static int fd_agrees(scalar_fn f, void *ctx, float *xi, double grad, double atol, double *fd_out)
{
    float keep = *xi;
    for (float h = 1e-3f; h > 2e-4f; h /= 4) {
        *xi = keep + h;
        double up = f(ctx);
        *xi = keep - h;
        double down = f(ctx);
        *xi = keep;
        double fd = (up - down) / (2 * h);
        *fd_out = fd;
        if (fabs(fd - grad) <= atol + 2e-2 * fabs(fd))
            return 1;
    }
    f(ctx);
    return 0;
}

/* ---- tiny image data and models -------------------------------------------------------- */

static const char *NET = "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=16\nepochs=%d\nseed=3\noptimizer=adam\n"
                         "learning_rate=0.01\n%s\ntrain_images=%s/train-images.idx\ntrain_labels=%s/train-labels.idx\n"
                         "test_images=%s/test-images.idx\ntest_labels=%s/test-labels.idx\n\n"
                         "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n\n"
                         "[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=3\n\n[softmax]\n";

static void tiny_data(void)
{
    test_write_corner_squares(test_tmpdir(), "train", 96, 11);
    test_write_corner_squares(test_tmpdir(), "test", 30, 12);
}

/* The tiny convolutional model, trained for `epochs` (0: as initialised), with extra [net] keys. */
static nerve_model *tiny_model(int epochs, const char *keys, nerve_dataset *test)
{
    const char *t = test_tmpdir();
    char text[4096], path[600];
    snprintf(text, sizeof text, NET, epochs > 0 ? epochs : 1, keys ? keys : "", t, t, t, t);
    snprintf(path, sizeof path, "%s/tiny.cfg", t);
    nerve_model *m = nerve_model_from_cfg(text, path);
    if (!m)
        return NULL;
    nerve_dataset train = {0};
    if (nerve_config_load_data(nerve_model_config(m), &train, test) != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    int st = NERVE_OK;
    if (epochs > 0) {
        nerve_fit_options o = {0};
        st = nerve_fit(m, &train, NULL, &o, NULL);
    }
    nerve_dataset_free(&train);
    if (st) {
        nerve_model_free(m);
        return NULL;
    }
    /* back from a checkpoint: as nerve explain / attack load it (not compiled yet) */
    snprintf(path, sizeof path, "%s/tiny.safetensors", t);
    st = nerve_model_save(m, path);
    nerve_model_free(m);
    return st ? NULL : nerve_model_load(path);
}

typedef struct {
    nerve_model *m;
    const float *x;
    int cls;
} logit_ctx;
static float logit(nerve_model *m, const float *x, int cls);
static double logit_fn(void *ctx)
{
    logit_ctx *c = ctx;
    return logit(c->m, c->x, c->cls);
}

static float logit(nerve_model *m, const float *x, int cls)
{
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_batch(g, 1);
    memcpy(nerve_value(g, nerve_model_input(m)).data, x, 64 * sizeof(float));
    nerve_forward(g, nerve_model_output(m));
    return nerve_value(g, nerve_model_output(m)).data[cls];
}

TEST(class_score_gradient_matches_finite_differences)
{
    tiny_data();
    nerve_dataset test = {0};
    nerve_model *m = tiny_model(2, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 8));
    float x[64], gr[64];
    for (int i = 0; i < 64; i++) /* off the 8-bit grid: no ties in max pooling */
        x[i] = test.x[64 + i] + 1e-3f * (float)((i * 7919) % 13);
    int cls = 1;
    CHECK_OK(nerve_explain_gradient(m, x, 1, &cls, NERVE_RELU_BACKPROP, gr));
    double worst = 0;
    logit_ctx lc = {m, x, cls};
    for (int i = 0; i < 64; i++) {
        double fd;
        CHECK_MSG(fd_agrees(logit_fn, &lc, &x[i], gr[i], 5e-3, &fd), "pixel %d: gradient %g, central difference %g",
                  i, (double)gr[i], fd);
        worst = fabs(fd) > worst ? fabs(fd) : worst;
    }
    CHECK(worst > 1e-2); /* not a vacuous comparison of zeros */
    /* saliency is |backprop| for one channel */
    float sal[64], bp[64];
    nerve_explain_options o;
    nerve_explain_defaults(&o);
    o.target = 1;
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_SALIENCY, &o, sal, NULL, NULL));
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_BACKPROP, &o, bp, NULL, NULL));
    for (int i = 0; i < 64; i++) {
        CHECK_NEAR(bp[i], gr[i], 1e-6);
        CHECK_NEAR(sal[i], fabsf(gr[i]), 1e-6);
    }
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

/* A linear classifier: S_c = w_c . x + b_c, so the gradient is w_c, and occluding pixel p
 * alone (fill 0) drops the score by w_c[p] x[p]. Grad-CAM's dS/dA at the layer before the
 * last dense one is that layer's weight row. */
TEST(maps_agree_with_closed_forms)
{
    tiny_data();
    const char *t = test_tmpdir();
    char text[4096], path[600];
    snprintf(text, sizeof text,
             "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=16\nseed=4\ntest_images=%s/test-images.idx\n"
             "test_labels=%s/test-labels.idx\n\n[connected]\noutput=3\n\n[softmax]\n", t, t);
    snprintf(path, sizeof path, "%s/lin.cfg", t);
    nerve_model *m = nerve_model_from_cfg(text, path);
    CHECK(m);
    nerve_dataset test = {0};
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), NULL, &test));
    CHECK_OK(nerve_explain_prepare(m, 16));
    nerve_graph *g = nerve_model_graph(m);
    const float *wt = nerve_value(g, nerve_node_find(g, "connected1.weight")).data;
    nerve_explain_options o;
    nerve_explain_defaults(&o);
    o.target = 2;
    o.patch = 1;
    o.stride = 1;
    float map[64];
    const float *x = test.x + 5 * 64;
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_BACKPROP, &o, map, NULL, NULL));
    CHECK_ARRAY_NEAR(map, wt + 2 * 64, 64, 1e-6);
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_GUIDED, &o, map, NULL, NULL)); /* no ReLU: the same */
    CHECK_ARRAY_NEAR(map, wt + 2 * 64, 64, 1e-6);
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_OCCLUSION, &o, map, NULL, NULL));
    for (int p = 0; p < 64; p++)
        CHECK_NEAR(map[p], wt[2 * 64 + p] * x[p], 1e-4);
    /* SmoothGrad of a linear model: |w| whatever the noise */
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_SMOOTHGRAD, &o, map, NULL, NULL));
    for (int p = 0; p < 64; p++)
        CHECK_NEAR(map[p], fabsf(wt[2 * 64 + p]), 1e-5);
    CHECK(nerve_explain(m, x, NERVE_EXPLAIN_GRADCAM, &o, map, NULL, NULL) == NERVE_ERR_ARG); /* no maps */
    nerve_model_free(m);
    nerve_dataset_free(&test);

    /* Grad-CAM: dS_c/dA at the convolution's (ReLU) output, read by the dense layer after
     * flattening, is the dense weight's row c */
    snprintf(text, sizeof text,
             "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=16\nseed=5\ntest_images=%s/test-images.idx\n"
             "test_labels=%s/test-labels.idx\n\n[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=relu\n\n"
             "[connected]\noutput=3\n\n[softmax]\n", t, t);
    m = nerve_model_from_cfg(text, path);
    CHECK(m);
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), NULL, &test));
    CHECK_OK(nerve_explain_prepare(m, 16));
    g = nerve_model_graph(m);
    x = test.x;
    CHECK_OK(nerve_explain(m, x, NERVE_EXPLAIN_GRADCAM, &o, map, NULL, NULL));
    int a = nerve_node_find(g, "convolutional1");
    CHECK(a >= 0);
    const float *w2 = nerve_value(g, nerve_node_find(g, "connected2.weight")).data;
    CHECK_ARRAY_NEAR(nerve_grad(g, a).data, w2 + 2 * 128, 128, 1e-6);
    /* and the map is ReLU(sum_k mean(w_k) A_k), sized 8x8 (here A is 8x8 already) */
    const float *av = nerve_value(g, a).data;
    for (int p = 0; p < 64; p++) {
        double s = 0;
        for (int k = 0; k < 2; k++) {
            double mean = 0;
            for (int q = 0; q < 64; q++)
                mean += w2[2 * 128 + k * 64 + q] / 64.0;
            s += mean * av[k * 64 + p];
        }
        CHECK_NEAR(map[p], s > 0 ? s : 0, 1e-5);
    }
    nerve_model_free(m);
    nerve_dataset_free(&test);
}

TEST(spearman_correlation)
{
    const float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 6, 7, 8, 7}, c[5] = {9, 7, 5, 3, 1};
    double rho;
    CHECK_OK(nerve_spearman(a, b, 5, &rho));
    CHECK_NEAR(rho, 8.0 / sqrt(95.0), 1e-12); /* ties share rank 3.5 */
    CHECK_OK(nerve_spearman(a, c, 5, &rho));
    CHECK_NEAR(rho, -1.0, 1e-12);
    CHECK(nerve_spearman(a, c, 1, &rho) == NERVE_ERR_ARG);
}

TEST(explanations_pictures_and_the_randomisation_check)
{
    tiny_data();
    nerve_dataset test = {0};
    nerve_model *m = tiny_model(3, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 16));
    float maps[NERVE_EXPLAIN_COUNT * 64];
    const char *titles[NERVE_EXPLAIN_COUNT];
    nerve_explain_options o;
    nerve_explain_defaults(&o);
    o.samples = 8;
    for (int k = 0; k < NERVE_EXPLAIN_COUNT; k++) {
        int cls = -1;
        CHECK_OK(nerve_explain(m, test.x, k, &o, maps + k * 64, &cls, NULL));
        CHECK(cls >= 0 && cls < 3);
        titles[k] = nerve_explain_method_name(k);
        CHECK(nerve_explain_method_parse(titles[k]) == k);
        for (int p = 0; p < 64; p++)
            CHECK(isfinite(maps[k * 64 + p]));
    }
    CHECK(nerve_explain_method_parse("lime") == NERVE_ERR_ARG);
    char png[600];
    snprintf(png, sizeof png, "%s/e.png", test_tmpdir());
    const char *caps[1] = {"#0 test"};
    CHECK_OK(nerve_explain_picture(png, test.x, 1, 1, 8, 8, maps, NERVE_EXPLAIN_COUNT, titles, caps));
    size_t len = 0;
    char *bytes = test_read_file(png, &len);
    CHECK(bytes && len > 100 && !memcmp(bytes + 1, "PNG", 3));
    free(bytes);
    double rho = 2, rhos[10];
    CHECK_OK(nerve_explain_randomization(m, &test, 10, NERVE_EXPLAIN_SALIENCY, &o, &rho, rhos));
    CHECK(rho >= -1 && rho <= 1);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

/* ---- attacks ---------------------------------------------------------------------------- */

static void feed(nerve_model *m, const nerve_dataset *d, int n)
{
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_batch(g, n);
    memcpy(nerve_value(g, nerve_model_input(m)).data, d->x, (size_t)n * 64 * sizeof(float));
    memcpy(nerve_value(g, nerve_model_labels(m)).data, d->y, (size_t)n * sizeof(float));
}

/* The loss node's value, or (p set) the mean over 4 samples of KL(p || softmax(logits)). */
typedef struct {
    nerve_graph *g;
    int loss, logits;
    const float *p;
} node_ctx;
static double node_fn(void *ctx)
{
    node_ctx *c = ctx;
    if (!c->p) {
        nerve_forward(c->g, c->loss);
        return nerve_value(c->g, c->loss).data[0];
    }
    nerve_forward(c->g, c->logits);
    const float *z = nerve_value(c->g, c->logits).data, *p = c->p;
    double kl = 0;
    for (int s = 0; s < 4; s++) {
        double mx = z[s * 3], sum = 0;
        for (int j = 1; j < 3; j++)
            mx = z[s * 3 + j] > mx ? z[s * 3 + j] : mx;
        for (int j = 0; j < 3; j++)
            sum += exp(z[s * 3 + j] - mx);
        for (int j = 0; j < 3; j++)
            kl += p[s * 3 + j] * (log(p[s * 3 + j]) - (z[s * 3 + j] - mx - log(sum)));
    }
    return kl / 4;
}

TEST(loss_input_gradient_matches_finite_differences)
{
    tiny_data();
    nerve_dataset test = {0};
    nerve_model *m = tiny_model(2, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_model_compile(m, 16));
    nerve_graph *g = nerve_model_graph(m);
    int input = nerve_model_input(m), loss = nerve_model_loss(m);
    nerve_graph_set_training(g, 0);
    CHECK_OK(nerve_input_set_requires_grad(g, input, 1));
    feed(m, &test, 4);
    for (int i = 0; i < 256; i++) /* off the 8-bit grid: no ties in max pooling */
        nerve_value(g, input).data[i] += 1e-3f * (float)((i * 7919) % 13);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward_seeded(g, loss, NULL, NERVE_BACKWARD_INPUTS_ONLY));
    float gr[256];
    memcpy(gr, nerve_grad(g, input).data, sizeof gr);
    float *x = nerve_value(g, input).data;
    double worst = 0;
    node_ctx lc = {g, loss, -1, NULL};
    for (int i = 0; i < 256; i += 3) {
        double fd;
        CHECK_MSG(fd_agrees(node_fn, &lc, &x[i], gr[i], 1e-3, &fd), "value %d: gradient %g, central difference %g",
                  i, (double)gr[i], fd);
        worst = fabs(fd) > worst ? fabs(fd) : worst;
    }
    CHECK(worst > 1e-3);

    /* TRADES's inner objective: KL(p || softmax z(x')) seeded at the logits as (q - p) / n */
    int logits = nerve_model_output(m);
    CHECK_OK(nerve_forward(g, logits));
    float p[12], seed[12];
    for (int i = 0; i < 12; i++)
        p[i] = (float)(1 + i % 3) / 6.0f;
    const float *z = nerve_value(g, logits).data;
    for (int s = 0; s < 4; s++) {
        double mx = z[s * 3], sum = 0;
        for (int j = 1; j < 3; j++)
            mx = z[s * 3 + j] > mx ? z[s * 3 + j] : mx;
        for (int j = 0; j < 3; j++)
            sum += exp(z[s * 3 + j] - mx);
        for (int j = 0; j < 3; j++)
            seed[s * 3 + j] = (float)((exp(z[s * 3 + j] - mx) / sum - p[s * 3 + j]) / 4);
    }
    CHECK_OK(nerve_backward_seeded(g, logits, seed, NERVE_BACKWARD_INPUTS_ONLY));
    memcpy(gr, nerve_grad(g, input).data, sizeof gr);
    worst = 0;
    node_ctx kc = {g, -1, logits, p};
    for (int i = 1; i < 256; i += 5) {
        double fd;
        CHECK_MSG(fd_agrees(node_fn, &kc, &x[i], gr[i], 1e-3, &fd), "KL, value %d: gradient %g, central difference %g",
                  i, (double)gr[i], fd);
        worst = fabs(fd) > worst ? fabs(fd) : worst;
    }
    CHECK(worst > 1e-4);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

TEST(fgsm_and_pgd_stay_in_the_ball_and_the_range)
{
    tiny_data();
    nerve_dataset test = {0};
    nerve_model *m = tiny_model(2, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_model_compile(m, 16));
    nerve_graph *g = nerve_model_graph(m);
    int input = nerve_model_input(m), loss = nerve_model_loss(m);
    /* FGSM: clamp(x + eps sign(grad of the loss)) exactly */
    feed(m, &test, 8);
    nerve_graph_set_training(g, 0);
    CHECK_OK(nerve_input_set_requires_grad(g, input, 1));
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    float want[512];
    for (int i = 0; i < 512; i++) {
        float gi = nerve_grad(g, input).data[i], v = test.x[i] + 0.2f * (gi > 0 ? 1.0f : gi < 0 ? -1.0f : 0.0f);
        want[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    CHECK_OK(nerve_input_set_requires_grad(g, input, 0));
    nerve_graph_set_training(g, 1);
    nerve_attack a = nerve_attack_fgsm(0.2f);
    int fooled[8];
    CHECK_OK(nerve_attack_batch(m, 8, &a, NULL, fooled));
    CHECK_ARRAY_NEAR(nerve_value(g, input).data, want, 512, 1e-6);
    CHECK(nerve_graph_training(g) == 1 && !nerve_input_requires_grad(g, input)); /* restored */
    /* PGD, both norms */
    for (int norm = 0; norm < 2; norm++) {
        feed(m, &test, 8);
        a = nerve_attack_pgd(norm ? 1.0f : 0.1f, 10, 2);
        a.norm = norm;
        CHECK_OK(nerve_attack_batch(m, 8, &a, NULL, fooled));
        const float *x = nerve_value(g, input).data;
        for (int s = 0; s < 8; s++) {
            double l2 = 0, linf = 0;
            for (int j = 0; j < 64; j++) {
                double dlt = x[s * 64 + j] - test.x[s * 64 + j];
                CHECK(x[s * 64 + j] >= 0 && x[s * 64 + j] <= 1);
                l2 += dlt * dlt;
                linf = fabs(dlt) > linf ? fabs(dlt) : linf;
            }
            CHECK(norm ? sqrt(l2) <= 1.0 + 1e-5 : linf <= 0.1 + 1e-6);
        }
    }
    /* accuracy: robust <= clean; eps 0 changes nothing; a stronger attack does no better */
    double clean, rob0, rob_f, rob_p;
    a = nerve_attack_pgd(0.0f, 5, 1);
    CHECK_OK(nerve_attack_evaluate(m, &test, &a, 0, &clean, &rob0));
    CHECK_NEAR(rob0, clean, 0);
    CHECK(clean > 0.8);
    a = nerve_attack_fgsm(0.3f);
    CHECK_OK(nerve_attack_evaluate(m, &test, &a, 0, NULL, &rob_f));
    a = nerve_attack_pgd(0.3f, 20, 2);
    CHECK_OK(nerve_attack_evaluate(m, &test, &a, 0, NULL, &rob_p));
    CHECK_MSG(rob_p <= rob_f + 1e-9 && rob_f < clean, "clean %g FGSM %g PGD %g", clean, rob_f, rob_p);
    /* inputs outside the range are refused */
    a = nerve_attack_fgsm(0.1f);
    a.hi = 0.5f;
    CHECK(nerve_attack_evaluate(m, &test, &a, 0, NULL, &rob_p) == NERVE_ERR_ARG);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

/* ---- robust training -------------------------------------------------------------------- */

static int same_weights(nerve_model *a, nerve_model *b)
{
    nerve_graph *ga = nerve_model_graph(a), *gb = nerve_model_graph(b);
    int ids[64], n = nerve_graph_params(ga, ids, 64);
    for (int i = 0; i < n; i++) {
        nerve_tensor x = nerve_value(ga, ids[i]), y = nerve_value(gb, nerve_node_find(gb, nerve_node_name(ga, ids[i])));
        if (!y.data || memcmp(x.data, y.data, nerve_tensor_numel(&x) * sizeof(float)))
            return 0;
    }
    return n > 0;
}

TEST(robust_training_reduces_to_plain_training_at_zero)
{
    tiny_data();
    nerve_model *plain = tiny_model(2, NULL, NULL);
    nerve_model *pgd0 = tiny_model(2, "adversarial=pgd\nadv_eps=0\nadv_steps=3", NULL);
    nerve_model *trades0 = tiny_model(2, "adversarial=trades\ntrades_beta=0\nadv_eps=0.1", NULL);
    nerve_model *pgd = tiny_model(2, "adversarial=pgd\nadv_eps=0.1\nadv_steps=3\nadv_warmup=1", NULL);
    nerve_model *trades = tiny_model(2, "adversarial=trades\ntrades_beta=3\nadv_eps=0.1\nadv_steps=3", NULL);
    CHECK(plain && pgd0 && trades0 && pgd && trades);
    CHECK(same_weights(plain, pgd0));   /* the attack leaves a radius-0 ball where it found it */
    CHECK(same_weights(plain, trades0)); /* the KL term's gradients are zero */
    CHECK(!same_weights(plain, pgd) && !same_weights(plain, trades));
    nerve_dataset test = {0};
    nerve_model *probe = tiny_model(0, NULL, &test);
    nerve_model *models[2] = {pgd, trades};
    for (int i = 0; i < 2; i++) { /* both learn */
        double acc;
        CHECK_OK(nerve_evaluate(models[i], &test, NULL, &acc, NULL, 0));
        CHECK_MSG(acc > 0.6, "model %d: accuracy %g", i, acc);
    }
    nerve_model_free(probe);
    nerve_dataset_free(&test);
    nerve_model_free(plain);
    nerve_model_free(pgd0);
    nerve_model_free(trades0);
    nerve_model_free(pgd);
    nerve_model_free(trades);
}

TEST(adversarial_keys_are_checked)
{
    const char *bad[] = {"[net]\ninputs=4\nadv_eps=0.1\n[connected]\noutput=2\n[softmax]\n",
                         "[net]\ninputs=4\nadversarial=fgsm\n[connected]\noutput=2\n[softmax]\n",
                         "[net]\ninputs=4\nadversarial=pgd\ntrades_beta=2\n[connected]\noutput=2\n[softmax]\n",
                         "[net]\ninputs=4\nadversarial=pgd\nadv_norm=l1\n[connected]\noutput=2\n[softmax]\n",
                         "[net]\ninputs=4\nadversarial=pgd\n[connected]\noutput=2\n[cost]\ntype=mse\n"};
    const char *want[] = {"no effect without adversarial", "expected one of", "adversarial=trades",
                          "linf or l2", "needs a [softmax]"};
    for (int i = 0; i < 5; i++) {
        nerve_model *m = nerve_model_from_cfg(bad[i], "adv.cfg");
        CHECK_MSG(!m && strstr(nerve_last_error(), want[i]), "case %d: %s", i, nerve_last_error());
    }
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=4\nadversarial=trades\nadv_norm=l2\nadv_eps=0.5\n"
                                          "adv_steps=4\nadv_step=0.2\nadv_warmup=2\nadv_lo=-1\nadv_hi=1\n"
                                          "trades_beta=2\n[connected]\noutput=2\n[softmax]\n", "adv.cfg");
    CHECK(m);
    const nerve_adversarial *a = &nerve_model_config(m)->adversarial;
    CHECK(a->kind == NERVE_ADV_TRADES && a->attack.norm == NERVE_NORM_L2 && a->attack.eps == 0.5f &&
          a->attack.steps == 4 && a->attack.step == 0.2f && a->warmup == 2 && a->attack.lo == -1.0f &&
          a->attack.hi == 1.0f && a->beta == 2.0f);
    nerve_model_free(m);
}

/* ---- the commands ------------------------------------------------------------------------ */

TEST(explain_attack_and_robust_eval_commands)
{
    tiny_data();
    nerve_model *m = tiny_model(2, NULL, NULL);
    CHECK(m);
    char ckpt[600], cmd[2400], out[8192];
    snprintf(ckpt, sizeof ckpt, "%s/tiny.safetensors", test_tmpdir());
    CHECK_OK(nerve_model_save(m, ckpt));
    nerve_model_free(m);
    snprintf(cmd, sizeof cmd, "%s explain %s --n 2 --samples 4 --out ex.png", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "wrote ex.png: 2 inputs x 7 methods") &&
                  strstr(out, "#1 true class 1"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s explain %s --method saliency,gradcam --sanity 5", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "saliency: Spearman") && strstr(out, "gradcam: "),
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s explain %s --method lime", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s attack %s --method fgsm,pgd --eps 0,0.1,0.3 --steps 5 --restarts 2 --plot a.svg",
             test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "clean accuracy:") &&
                  strstr(out, "PGD-5 Linf, 2 restarts eps 0.3: accuracy") && strstr(out, "wrote a.svg"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s attack %s --norm l3", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s eval %s --robust 0.1", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "test robust accuracy (PGD-20 Linf, 2 restarts, eps 0.1): "),
              "%s", out);
}
