/* Fooling images, the adversarial patch, Gram matrices, texture synthesis and style transfer,
 * feature inversion, class models, DeepDream, nearest neighbours and top-activating inputs
 * (COURSE.md §11): the slides' formulas on hand-computed examples, finite-difference checks of
 * every input gradient used, the ascents on tiny models, and the commands. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char *NET = "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=16\nepochs=%d\nseed=3\noptimizer=adam\n"
                         "learning_rate=0.01\ntrain_images=%s/vtrain-images.idx\ntrain_labels=%s/vtrain-labels.idx\n"
                         "test_images=%s/vtest-images.idx\ntest_labels=%s/vtest-labels.idx\n\n"
                         "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n\n"
                         "[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=3\n\n[softmax]\n";

/* The tiny classifier trained for `epochs`, saved to tinyv.safetensors and loaded back. */
static nerve_model *tiny_model(int epochs, nerve_dataset *train, nerve_dataset *test)
{
    const char *t = test_tmpdir();
    test_write_corner_squares(t, "vtrain", 96, 11);
    test_write_corner_squares(t, "vtest", 30, 12);
    char text[4096], path[600];
    snprintf(text, sizeof text, NET, epochs, t, t, t, t);
    snprintf(path, sizeof path, "%s/tinyv.cfg", t);
    nerve_model *m = nerve_model_from_cfg(text, path);
    if (!m)
        return NULL;
    nerve_dataset tr = {0};
    int st = nerve_config_load_data(nerve_model_config(m), &tr, test);
    if (st == NERVE_OK) {
        nerve_fit_options o = {0};
        st = nerve_fit(m, &tr, NULL, &o, NULL);
    }
    if (train)
        *train = tr;
    else
        nerve_dataset_free(&tr);
    snprintf(path, sizeof path, "%s/tinyv.safetensors", t);
    if (st == NERVE_OK)
        st = nerve_model_save(m, path);
    nerve_model_free(m);
    return st ? NULL : nerve_model_load(path);
}

/* Central differences of f at *xi against grad: step 1e-3, and 2.5e-4 where a kink of ReLU
 * or max pooling lies within the first step. */
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
        *fd_out = (up - down) / (2 * h);
        if (fabs(*fd_out - grad) <= atol + 2e-2 * fabs(*fd_out))
            return 1;
    }
    return 0;
}

/* Checks grad[0..d) against central differences of f, and that they are not all ~0. */
static void check_fd(scalar_fn f, void *ctx, float *x, const float *grad, int d, double atol, const char *what)
{
    double worst = 0;
    for (int i = 0; i < d; i++) {
        double fd;
        CHECK_MSG(fd_agrees(f, ctx, &x[i], grad[i], atol, &fd), "%s, value %d: gradient %g, central difference %g",
                  what, i, (double)grad[i], fd);
        worst = fabs(fd) > worst ? fabs(fd) : worst;
    }
    CHECK_MSG(worst > 10 * atol, "%s: every difference is ~0 (largest %g)", what, worst); /* not vacuous */
}

/* ---- fooling images and the patch ------------------------------------------------------ */

typedef struct {
    nerve_model *m;
    float *x;
    int t, layer;
    float lambda;
    nerve_style *s;
    const float *w; /* style: alpha, beta, tv */
} fd_ctx;

static double logp_fn(void *p)
{
    fd_ctx *c = p;
    float lp = 0;
    nerve_logprob_gradient(c->m, c->x, 1, &c->t, NULL, &lp);
    return lp;
}

TEST(logprob_gradient_matches_finite_differences)
{
    nerve_dataset test = {0};
    nerve_model *m = tiny_model(2, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 8));
    float x[64], g[64], lp[2];
    for (int i = 0; i < 64; i++) /* off the 8-bit grid: no ties in max pooling */
        x[i] = test.x[64 + i] + 1e-3f * (float)((i * 7919) % 13);
    for (int t = 0; t < 3; t++) {
        CHECK_OK(nerve_logprob_gradient(m, x, 1, &t, g, lp));
        CHECK(lp[0] < 0);
        fd_ctx c = {m, x, t, 0, 0, NULL, NULL};
        check_fd(logp_fn, &c, x, g, 64, 2e-3, "log p_t");
    }
    /* the log-probabilities of one input sum to 1 in probability */
    float two[128];
    memcpy(two, x, sizeof x);
    memcpy(two + 64, x, sizeof x);
    double total = 0;
    for (int t = 0; t < 3; t++) {
        int tt[2] = {t, t};
        CHECK_OK(nerve_logprob_gradient(m, two, 2, tt, NULL, lp));
        CHECK_NEAR(lp[0], lp[1], 1e-6);
        total += exp(lp[0]);
    }
    CHECK_NEAR(total, 1.0, 1e-5);
    int bad = 3;
    CHECK(nerve_logprob_gradient(m, x, 1, &bad, g, lp) == NERVE_ERR_ARG);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

TEST(fooling_images_reach_the_confidence)
{
    nerve_model *m = tiny_model(3, NULL, NULL);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 8));
    nerve_fool_options o;
    nerve_fool_defaults(&o);
    o.confidence = 0.9f; /* the tiny model's scores are bounded on [0, 1] inputs: 0.96 at most for class 0 */
    o.steps = 300;
    int t[3] = {0, 1, 2}, steps[3];
    float img[3 * 64], conf[3];
    CHECK_OK(nerve_fool(m, t, 3, &o, img, conf, steps));
    for (int i = 0; i < 3; i++) {
        CHECK_MSG(conf[i] >= 0.9f && steps[i] <= 300, "class %d: confidence %g after %d steps", i, (double)conf[i],
                  steps[i]);
        float lp;
        CHECK_OK(nerve_logprob_gradient(m, img + 64 * i, 1, &t[i], NULL, &lp));
        CHECK_NEAR(expf(lp), conf[i], 1e-5);
    }
    for (int i = 0; i < 3 * 64; i++)
        CHECK(img[i] >= 0 && img[i] <= 1);
    /* no steps: the noise as it is, and its confidence */
    o.steps = 0;
    CHECK_OK(nerve_fool(m, t, 1, &o, img, conf, steps));
    CHECK(steps[0] == 0 && conf[0] > 0 && conf[0] < 1);
    o.step = 0;
    CHECK(nerve_fool(m, t, 1, &o, img, conf, steps) == NERVE_ERR_ARG);
    nerve_model_free(m);
}

TEST(patch_paste_and_attack)
{
    float img[2 * 4 * 5] = {0}, patch[2 * 2 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    nerve_patch_paste(img, 2, 4, 5, patch, 2, 1, 3);
    /* channel 0 rows 1..2, columns 3..4; channel 1 the same */
    CHECK(img[1 * 5 + 3] == 1 && img[1 * 5 + 4] == 2 && img[2 * 5 + 3] == 3 && img[2 * 5 + 4] == 4);
    CHECK(img[20 + 1 * 5 + 3] == 5 && img[20 + 2 * 5 + 4] == 8);
    float sum = 0;
    for (int i = 0; i < 40; i++)
        sum += img[i];
    CHECK(sum == 36);

    nerve_dataset train = {0}, test = {0};
    nerve_model *m = tiny_model(3, &train, &test);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 16));
    nerve_patch_options o;
    nerve_patch_defaults(&o);
    o.target = 2;
    o.size = 3;
    o.steps = 60;
    o.step = 0.05f;
    o.search = 32;
    float p[9], blank[9];
    int py = -1, px = -1, n = 0;
    CHECK_OK(nerve_patch_train(m, &train, &o, p, &py, &px));
    CHECK(py >= 0 && py <= 5 && px >= 0 && px <= 5 && py % 2 == 0 && px % 2 == 0);
    for (int i = 0; i < 9; i++)
        CHECK(p[i] >= 0 && p[i] <= 1);
    double placed, random, base;
    CHECK_OK(nerve_patch_evaluate(m, &test, &o, p, py, px, 0, &placed, &random, &n));
    CHECK(n == 20); /* 30 test images, 10 of the target class */
    /* a flat gray square there: the baseline the patch must beat */
    for (int i = 0; i < 9; i++)
        blank[i] = 0.25f;
    CHECK_OK(nerve_patch_evaluate(m, &test, &o, blank, py, px, 0, &base, NULL, NULL));
    CHECK_MSG(placed > base && placed >= 0.5, "patch success %g at (%d, %d), gray square %g", placed, py, px, base);
    CHECK(random >= 0 && random <= 1);
    CHECK(nerve_patch_evaluate(m, &test, &o, p, 6, 0, 0, &placed, NULL, NULL) == NERVE_ERR_ARG);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

/* ---- Gram matrices and the style losses ------------------------------------------------ */

TEST(gram_and_style_losses_on_a_worked_example)
{
    /* F = [[1, 2], [3, 4]] (N = 2 maps of M = 2 positions): G = F F^T = [[5, 11], [11, 25]] */
    float f[4] = {1, 2, 3, 4}, g[4];
    CHECK_OK(nerve_gram(f, 2, 2, g));
    CHECK(g[0] == 5 && g[1] == 11 && g[2] == 11 && g[3] == 25);
    /* an identity layer (ReLU of positive values) over an input [2, 1, 2] */
    nerve_graph *gr = nerve_graph_create();
    int x = nerve_input(gr, "x", 4, (int[]){0, 2, 1, 2});
    int y = nerve_activation(gr, x, nerve_act_default(NERVE_ACT_RELU));
    CHECK_OK(y);
    nerve_graph_keep_buffers(gr, 1);
    CHECK_OK(nerve_graph_compile(gr, 1));
    CHECK_OK(nerve_input_set_requires_grad(gr, x, 1));
    /* style image [[1, 0], [0, 1]]: A = I; content image [[0.5, 0.5], [0.5, 0.5]] */
    float style[4] = {1, 1e-3f, 1e-3f, 1}, content[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    nerve_style_options o;
    nerve_style_defaults(&o);
    o.style_layers = &y;
    o.n_style = 1;
    o.content_layer = y;
    o.alpha = 2;
    o.beta = 3;
    o.lo = -10;
    o.hi = 10;
    nerve_style *s = nerve_style_create(gr, x, &o, style, content);
    CHECK(s);
    double L[3], grad_want[4];
    float grad[4];
    CHECK_OK(nerve_style_loss(s, f, L, grad));
    /* A = [[1 + 1e-6, 2e-3], [2e-3, 1 + 1e-6]]; E = 1/(4 N^2 M^2) sum (G - A)^2 */
    double a0 = 1 + 1e-6, a1 = 2e-3, d00 = 5 - a0, d01 = 11 - a1, d11 = 25 - a0;
    double e = (d00 * d00 + 2 * d01 * d01 + d11 * d11) / 64.0;
    CHECK_NEAR(L[1], e, 1e-6 * e);
    CHECK_NEAR(L[0], 0.5 * (0.25 + 2.25 + 6.25 + 12.25), 1e-6); /* 1/2 sum (F - P)^2 = 10.5 */
    CHECK(L[2] == 0);
    /* dE/dF = (G - A) F / (N^2 M^2); the content gradient F - P */
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 2; p++) {
            double gs = ((i ? d01 : d00) * f[p] + (i ? d11 : d01) * f[2 + p]) / 16.0;
            grad_want[i * 2 + p] = 3 * gs + 2 * (f[i * 2 + p] - 0.5);
        }
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(grad[i], grad_want[i], 1e-4 * fabs(grad_want[i]));
    /* the loss at the style image itself is ~0 */
    CHECK_OK(nerve_style_loss(s, style, L, NULL));
    CHECK(L[1] < 1e-12);
    nerve_style_free(s);
    /* a graph without private buffers is refused */
    nerve_graph *g2 = nerve_graph_create();
    int x2 = nerve_input(g2, "x", 4, (int[]){0, 2, 1, 2});
    int y2 = nerve_activation(g2, x2, nerve_act_default(NERVE_ACT_RELU));
    CHECK_OK(nerve_graph_compile(g2, 1));
    CHECK_OK(nerve_input_set_requires_grad(g2, x2, 1));
    o.style_layers = &y2;
    o.content_layer = y2;
    CHECK(!nerve_style_create(g2, x2, &o, style, content) && nerve_last_status() == NERVE_ERR_STATE);
    nerve_graph_free(g2);
    nerve_graph_free(gr);
}

static const char *RGB_NET = "[net]\nheight=6\nwidth=6\nchannels=3\nseed=5\ninput_scale=0.00392157\n\n"
                             "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n\n"
                             "[avgpool]\nsize=2\n\n"
                             "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n";

static double style_fn(void *p)
{
    fd_ctx *c = p;
    double L[3];
    nerve_style_loss(c->s, c->x, L, NULL);
    return c->w[0] * L[0] + c->w[1] * L[1] + c->w[2] * L[2];
}

static void rgb_image(float *x, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    for (int i = 0; i < 108; i++)
        x[i] = 0.1f + 0.8f * nerve_rng_uniform(&r);
}

TEST(style_gradient_matches_finite_differences_and_texture_synthesis_converges)
{
    nerve_model *m = nerve_model_from_cfg(RGB_NET, "rgb.cfg");
    CHECK(m);
    CHECK_OK(nerve_style_prepare(m));
    nerve_graph *g = nerve_model_graph(m);
    int layers[2] = {nerve_node_find(g, "convolutional1"), nerve_node_find(g, "convolutional3")};
    CHECK(layers[0] >= 0 && layers[1] >= 0);
    float style[108], content[108], x[108], grad[108];
    rgb_image(style, 1);
    rgb_image(content, 2);
    rgb_image(x, 3);
    nerve_style_options o;
    nerve_style_defaults(&o);
    o.style_layers = layers;
    o.n_style = 2;
    o.content_layer = layers[1];
    o.alpha = 0.5f;
    o.beta = 2000;
    o.tv = 0.01f;
    nerve_style *s = nerve_style_create(g, nerve_model_input(m), &o, style, content);
    CHECK(s);
    CHECK_OK(nerve_style_loss(s, x, NULL, grad));
    float w[3] = {0.5f, 2000, 0.01f};
    fd_ctx c = {m, x, 0, 0, 0, s, w};
    check_fd(style_fn, &c, x, grad, 108, 1e-4, "alpha content + beta style + tv TV");
    nerve_style_free(s);

    /* texture synthesis: from noise, the style loss falls by far */
    o.content_layer = -1;
    o.tv = 0;
    o.steps = 150;
    o.lr = 0.03f;
    o.report_every = 0;
    s = nerve_style_create(g, nerve_model_input(m), &o, style, NULL);
    CHECK(s);
    double first[3], last[3];
    CHECK_OK(nerve_style_run(s, x, first, last));
    CHECK_MSG(last[1] * 100 < first[1], "style loss %g -> %g", first[1], last[1]);
    for (int i = 0; i < 108; i++)
        CHECK(x[i] >= 0 && x[i] <= 1);
    nerve_style_free(s);

    /* feature inversion: the content loss alone, with the prior */
    o.n_style = 0;
    o.content_layer = layers[0];
    o.tv = 1e-3f;
    o.steps = 150;
    rgb_image(x, 4);
    s = nerve_style_create(g, nerve_model_input(m), &o, NULL, content);
    CHECK(s);
    CHECK_OK(nerve_style_run(s, x, first, last));
    CHECK_MSG(last[0] * 20 < first[0], "content loss %g -> %g", first[0], last[0]);
    nerve_style_free(s);
    nerve_model_free(m);
}

/* ---- class models, DeepDream, neighbours, top activations ------------------------------ */

static double class_fn(void *p)
{
    fd_ctx *c = p;
    double obj;
    float gtmp[64];
    nerve_class_model_gradient(c->m, c->x, c->t, c->lambda, gtmp, &obj);
    return obj;
}

static double dream_fn(void *p)
{
    fd_ctx *c = p;
    double obj;
    float gtmp[64];
    nerve_dream_gradient(c->m, c->layer, c->x, gtmp, &obj);
    return obj;
}

TEST(class_model_and_dream_gradients_and_ascents)
{
    nerve_dataset test = {0};
    nerve_model *m = tiny_model(3, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 8));
    nerve_graph *g = nerve_model_graph(m);
    int conv = nerve_node_find(g, "convolutional1");
    CHECK(conv >= 0);
    float x[64], grad[64];
    for (int i = 0; i < 64; i++)
        x[i] = test.x[i] + 1e-3f * (float)((i * 7919) % 13);
    double obj;
    CHECK_OK(nerve_class_model_gradient(m, x, 1, 0.05f, grad, &obj));
    fd_ctx c = {m, x, 1, conv, 0.05f, NULL, NULL};
    check_fd(class_fn, &c, x, grad, 64, 2e-3, "S_c - lambda |x|^2");
    CHECK_OK(nerve_dream_gradient(m, conv, x, grad, &obj));
    CHECK(obj > 0);
    check_fd(dream_fn, &c, x, grad, 64, 2e-3, "1/2 sum f^2");

    /* the class model is classified as its class; the dream raises its objective */
    nerve_dream_options o;
    nerve_dream_defaults(&o);
    o.steps = 60;
    for (int cls = 0; cls < 3; cls++) {
        float img[64], score, prob;
        CHECK_OK(nerve_class_model(m, cls, &o, img, &score, &prob));
        CHECK_MSG(prob > 0.5f, "class %d: softmax %g", cls, (double)prob);
        for (int i = 0; i < 64; i++)
            CHECK(img[i] >= 0 && img[i] <= 1);
    }
    double before, after;
    memcpy(x, test.x, sizeof x);
    o.steps = 10;
    CHECK_OK(nerve_deepdream(m, conv, &o, x, &before, &after));
    CHECK_MSG(after > 1.2 * before, "DeepDream objective %g -> %g", before, after);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

TEST(nearest_neighbours_and_top_activating_inputs)
{
    float pool[5 * 2] = {0, 0, 3, 0, 1, 1, -2, 0, 0.5f, 0}, q[2] = {0.4f, 0}, dist[3];
    int idx[3];
    CHECK_OK(nerve_nearest(pool, 5, 2, q, 3, idx, dist));
    CHECK(idx[0] == 4 && idx[1] == 0 && idx[2] == 2);
    CHECK_NEAR(dist[0], 0.1, 1e-6);
    CHECK_NEAR(dist[1], 0.4, 1e-6);
    CHECK_NEAR(dist[2], sqrt(0.36 + 1), 1e-6);
    CHECK(nerve_nearest(pool, 5, 2, q, 6, idx, dist) == NERVE_ERR_ARG);

    nerve_dataset test = {0};
    nerve_model *m = tiny_model(2, NULL, &test);
    CHECK(m);
    CHECK_OK(nerve_explain_prepare(m, 8));
    int conv = nerve_node_find(nerve_model_graph(m), "convolutional1");
    /* features of 30 images in batches of 8 against one at a time */
    float *feat = malloc(30 * 256 * sizeof *feat), one[256];
    CHECK_OK(nerve_layer_features(m, conv, test.x, 30, feat));
    for (int i = 0; i < 30; i += 7) {
        CHECK_OK(nerve_layer_features(m, conv, test.x + 64 * i, 1, one));
        CHECK_ARRAY_NEAR(one, feat + 256 * i, 256, 1e-5);
    }
    /* the top activations of unit 2 against a search of the features */
    int top[4], pos[4];
    float act[4];
    CHECK_OK(nerve_top_activations(m, conv, 2, &test, 0, 4, top, act, pos));
    float best = -1e30f;
    int best_i = -1, best_p = -1;
    for (int i = 0; i < 30; i++)
        for (int p = 0; p < 64; p++)
            if (feat[256 * i + 128 + p] > best) {
                best = feat[256 * i + 128 + p];
                best_i = i;
                best_p = p;
            }
    CHECK(top[0] == best_i && pos[0] == best_p);
    CHECK_NEAR(act[0], best, 1e-5);
    CHECK(act[0] >= act[1] && act[1] >= act[2] && act[2] >= act[3]);
    /* a 3x3 convolution with padding 1 reads the 3x3 pixels around its position */
    int box[4], y = pos[0] / 8, xx = pos[0] % 8;
    CHECK_OK(nerve_unit_box(m, conv, 2, pos[0], test.x + 64 * top[0], box));
    CHECK_MSG(box[0] == (y > 0 ? y - 1 : 0) && box[2] == (y < 7 ? y + 1 : 7) && box[1] == (xx > 0 ? xx - 1 : 0) &&
                  box[3] == (xx < 7 ? xx + 1 : 7), "box %d..%d x %d..%d at (%d, %d)", box[0], box[2], box[1], box[3],
              y, xx);
    free(feat);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

/* ---- the commands ------------------------------------------------------------------------ */

TEST(fool_patch_style_and_viz_commands)
{
    nerve_model *m = tiny_model(3, NULL, NULL);
    CHECK(m);
    nerve_model_free(m);
    const char *t = test_tmpdir();
    char ckpt[600], cmd[2400], out[8192], path[700];
    snprintf(ckpt, sizeof ckpt, "%s/tinyv.safetensors", t);
    snprintf(cmd, sizeof cmd, "%s attack %s --method fool --steps 300 --confidence 0.9 --out fool.png", test_nerve(),
             ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "class 2: confidence") &&
                  strstr(out, "3 of 3 classes reached confidence 0.9\n") && strstr(out, "wrote fool.png"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s attack %s --method patch --class 1 --size 3 --steps 20 --out patch.png",
             test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "patch 3x3 (14.1% of the image) for 'class 1'") &&
                  strstr(out, "success rate on 20 test images of other classes: ") && strstr(out, "wrote patch.png"),
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s attack %s --method fool,pgd", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 2, "%s", out);
    /* style: a 6x6 RGB network from its cfg, two PNG images */
    snprintf(path, sizeof path, "%s/rgb.cfg", t);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(RGB_NET, f);
    fclose(f);
    float img[108];
    rgb_image(img, 1);
    snprintf(path, sizeof path, "%s/style.png", t);
    CHECK_OK(nerve_png_write_rgb(path, 6, 6, img));
    rgb_image(img, 2);
    snprintf(path, sizeof path, "%s/content.png", t);
    CHECK_OK(nerve_png_write_rgb(path, 6, 6, img));
    snprintf(cmd, sizeof cmd, "%s style rgb.cfg --style style.png --steps 100 --lr 0.03 --report 0 --out tex.png",
             test_nerve());
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "texture synthesis, randomly initialised network; "
                                                             "style layers: convolutional1 convolutional3") &&
                  strstr(out, "style loss: ") && strstr(out, "wrote tex.png"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s style rgb.cfg --style style.png --content content.png --steps 5 --out st.png",
             test_nerve());
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && strstr(out, "content layer: convolutional3") &&
                  strstr(out, "; content loss: ") && strstr(out, "wrote st.png"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s style rgb.cfg --style style.png --layers nothing", test_nerve());
    CHECK_MSG(test_run(cmd, out, sizeof out) == 2 && strstr(out, "no layer named 'nothing'"), "%s", out);
    /* viz modes */
    static const char *const modes[][2] = {
        {"classmodel --steps 20", "class 2: score"},
        {"dream 3 --steps 5", "maxpool2: 1/2 sum f^2"},
        {"invert 3 --steps 20", "maxpool2: relative feature error"},
        {"neighbours --n 5 --k 3", "5 test queries, 3 nearest of 96 training images: same class as the query"},
        {"top --unit 1 --k 4", "activation"},
    };
    for (int i = 0; i < 5; i++) {
        snprintf(cmd, sizeof cmd, "%s viz %s --out v%d.png", test_nerve(), modes[i][0], i);
        char *sp = strchr(cmd + strlen(test_nerve()) + 5, ' ');
        /* the checkpoint goes after the mode */
        char full[2600];
        snprintf(full, sizeof full, "%.*s %s%s", (int)(sp - cmd), cmd, ckpt, sp);
        CHECK_MSG(test_run(full, out, sizeof out) == 0 && strstr(out, modes[i][1]) && strstr(out, "wrote v"),
                  "%s\n%s", full, out);
    }
    snprintf(cmd, sizeof cmd, "%s viz top %s 3", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 2, "%s", out);
}
