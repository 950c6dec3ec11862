/* Heads, losses and targets of every kind through nerve_fit / nerve_evaluate / predict:
 * regression, reconstruction and denoising, per-pixel classes with an ignore index, binary
 * masks; the checks that name both sides of a data/model mismatch. */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- the pixel-wise cross-entropy with an ignore index ------------------------------------ */

TEST(pixel_ce_ignore_index_leaves_pixels_out_and_passes_the_gradient_check)
{
    const int N = 2, C = 3, H = 2, W = 3, P = H * W;
    nerve_graph *g = nerve_graph_create();
    int z = nerve_input(g, "z", 4, (int[]){1, C, H, W});
    int y = nerve_input(g, "y", 3, (int[]){1, H, W});
    int loss = nerve_pixel_softmax_ce_loss_ignore(g, z, y, -1, 1, 255);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, z, 1));
    CHECK_OK(nerve_graph_compile(g, N));
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    float *zv = nerve_value(g, z).data, *yv = nerve_value(g, y).data;
    for (int i = 0; i < N * C * P; i++)
        zv[i] = 4 * nerve_rng_uniform(&r) - 2;
    const float labels[] = {0, 255, 2, 1, 255, 0, 2, 2, 255, 1, 0, 1};
    memcpy(yv, labels, sizeof labels);
    CHECK_OK(nerve_forward(g, loss));
    /* the mean of -log p_y over the 9 labelled pixels */
    double total = 0;
    int used = 0;
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++) {
            float lab = labels[n * P + p];
            if (lab == 255)
                continue;
            double sum = 0;
            for (int c = 0; c < C; c++)
                sum += exp(zv[(n * C + c) * P + p]);
            total += log(sum) - zv[(n * C + (int)lab) * P + p];
            used++;
        }
    CHECK(used == 9);
    CHECK_NEAR(nerve_value(g, loss).data[0], total / used, 1e-5);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-4f, 1e-2f));
    /* an ignored pixel gets no gradient */
    CHECK_OK(nerve_backward(g, loss));
    const float *dz = nerve_grad(g, z).data;
    for (int c = 0; c < C; c++)
        CHECK_NEAR(dz[(0 * C + c) * P + 1], 0.0, 0);
    /* every pixel ignored: loss 0, no gradient (not 0/0) */
    for (int i = 0; i < N * P; i++)
        yv[i] = 255;
    CHECK_OK(nerve_forward(g, loss));
    CHECK_NEAR(nerve_value(g, loss).data[0], 0.0, 0);
    CHECK_OK(nerve_backward(g, loss));
    for (int i = 0; i < N * C * P; i++)
        CHECK_NEAR(dz[i], 0.0, 0);
    nerve_graph_free(g);
}

/* ---- heads in the cfg ------------------------------------------------------------------- */

static nerve_model *model_of(const char *net, const char *layers)
{
    char text[2048];
    snprintf(text, sizeof text, "[net]\n%s\n%s", net, layers);
    return nerve_model_from_cfg(text, "heads.cfg");
}

static int error_has(const char *needle)
{
    if (strstr(nerve_last_error(), needle))
        return 1;
    fprintf(stderr, "    error was: %s\n    expected it to contain: %s\n", nerve_last_error(), needle);
    return 0;
}

TEST(cfg_heads_state_their_task_and_target)
{
    static const struct {
        const char *net, *layers;
        nerve_task task;
        nerve_target_kind target;
        const char *loss;
        int logits;
    } cases[] = {
        {"inputs=3", "[connected]\noutput=4\n[softmax]\n", NERVE_TASK_CLASSIFY, NERVE_TARGET_CLASS,
         "softmax_ce", 1},
        {"inputs=3", "[connected]\noutput=1\n[cost]\n", NERVE_TASK_CLASSIFY, NERVE_TARGET_CLASS, "mse", 0},
        {"inputs=3", "[connected]\noutput=2\n[cost]\ntype=l1\ntarget=values\n", NERVE_TASK_REGRESS,
         NERVE_TARGET_VALUES, "l1", 0},
        {"height=4\nwidth=4", "[connected]\noutput=16\n[cost]\ntype=bce\ntarget=input\n",
         NERVE_TASK_RECONSTRUCT, NERVE_TARGET_INPUT, "bce", 1},
        {"height=4\nwidth=4", "[convolutional]\nfilters=3\nsize=1\n[softmax]\ntarget=mask\nignore_index=255\n",
         NERVE_TASK_SEGMENT, NERVE_TARGET_MASK, "pixel_softmax_ce", 1},
        {"height=4\nwidth=4", "[convolutional]\nfilters=1\nsize=1\n[cost]\ntype=bce\ntarget=mask\n",
         NERVE_TASK_BINARY_MASK, NERVE_TARGET_MASK, "bce", 1},
        {"inputs=3", "[connected]\noutput=2\n", NERVE_TASK_NONE, NERVE_TARGET_CLASS, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nerve_model *m = model_of(cases[i].net, cases[i].layers);
        CHECK_MSG(m != NULL, "case %zu: %s", i, nerve_last_error());
        nerve_head_info h = nerve_model_head(m);
        CHECK_MSG(h.task == cases[i].task && h.target == cases[i].target && h.logits == cases[i].logits,
                  "case %zu: task %s target %s logits %d", i, nerve_task_name(h.task),
                  nerve_target_kind_name(h.target), h.logits);
        CHECK(cases[i].loss ? h.loss && strcmp(h.loss, cases[i].loss) == 0 : h.loss == NULL);
        if (h.task == NERVE_TASK_SEGMENT)
            CHECK(h.ignore_index == 255);
        nerve_model_free(m);
    }
}

TEST(cfg_head_errors_name_the_clash)
{
    CHECK(!model_of("inputs=3", "[connected]\noutput=2\n[cost]\ntarget=pixels\n"));
    CHECK(error_has("expected one of: class, values, input, mask"));
    CHECK(!model_of("height=4\nwidth=4", "[convolutional]\nfilters=1\nsize=1\n[cost]\ntype=mse\ntarget=mask\n"));
    CHECK(error_has("type=bce"));
    CHECK(!model_of("height=4\nwidth=4", "[connected]\noutput=10\n[cost]\ntarget=input\n"));
    CHECK(error_has("a reconstruction must give back as many values"));
    CHECK(!model_of("inputs=3", "[connected]\noutput=2\n[softmax]\nignore_index=3\n"));
    CHECK(error_has("add target=mask"));
    CHECK(!model_of("height=4\nwidth=4", "[convolutional]\nfilters=3\nsize=1\n[softmax]\ntarget=mask\nignore_index=1\n"));
    CHECK(error_has("is one of the 3 classes"));
    CHECK(!model_of("height=4\nwidth=4", "[convolutional]\nfilters=3\nsize=1\n[softmax]\n"));
    CHECK(error_has("target=mask for a class per pixel"));
    CHECK(!model_of("inputs=3", "[connected]\noutput=2\n[cost]\ntype=hinge\ntarget=values\n"));
    CHECK(error_has("hinge takes class labels only"));
    CHECK(!model_of("inputs=3\ncorrupt=gaussian", "[connected]\noutput=2\n[softmax]\n"));
    CHECK(error_has("heads.cfg:3:"));
    CHECK(error_has("needs a head with target=input"));
    CHECK(!model_of("inputs=3\ncorrupt_sigma=0.3", "[connected]\noutput=3\n[cost]\ntarget=input\n"));
    CHECK(error_has("without corrupt="));
    CHECK(!model_of("inputs=3\ncorrupt=speckle", "[connected]\noutput=3\n[cost]\ntarget=input\n"));
    CHECK(error_has("expected one of: none, gaussian, salt_pepper, mask"));
}

/* ---- regression --------------------------------------------------------------------------- */

/* y = A x + b (+ small noise) with x in [-1, 1]^3, two outputs. */
static void make_regression(nerve_dataset *d, int n, uint64_t seed, int outputs)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    nerve_dataset_alloc(d, n, 1, (int[]){3});
    nerve_dataset_alloc_target(d, NERVE_TARGET_VALUES, 1, (int[]){outputs});
    static const float A[3][3] = {{1.5f, -2, 0.5f}, {0.3f, 0.7f, -1.2f}, {1, 1, 1}};
    for (int i = 0; i < n; i++) {
        float *x = d->x + i * 3, *t = d->t + i * outputs;
        for (int k = 0; k < 3; k++)
            x[k] = 2 * nerve_rng_uniform(&r) - 1;
        for (int j = 0; j < outputs; j++)
            t[j] = A[j][0] * x[0] + A[j][1] * x[1] + A[j][2] * x[2] + (float)j - 0.5f +
                   0.01f * nerve_rng_normal(&r);
    }
}

static const char *REGRESSION_NET = "inputs=3\nbatch=16\nepochs=40\nseed=3\noptimizer=adam\nlearning_rate=0.03";
static const char *REGRESSION_HEAD = "[connected]\noutput=2\n[cost]\ntype=mse\ntarget=values\n";

TEST(regression_head_learns_a_linear_map_and_reports_r2)
{
    nerve_dataset train, test;
    make_regression(&train, 256, 1, 2);
    make_regression(&test, 128, 2, 2);
    nerve_model *m = model_of(REGRESSION_NET, REGRESSION_HEAD);
    CHECK(m);
    char log[600];
    snprintf(log, sizeof log, "%s/log.csv", test_tmpdir());
    nerve_fit_options o = {0};
    o.log_csv = log;
    CHECK_OK(nerve_fit(m, &train, NULL, &o, NULL));
    nerve_metrics mt;
    CHECK_OK(nerve_evaluate_metrics(m, &test, &mt));
    CHECK(mt.task == NERVE_TASK_REGRESS && mt.n_outputs == 2);
    CHECK_MSG(nerve_metrics_r2(&mt) > 0.99, "R2 %g", nerve_metrics_r2(&mt));
    CHECK_NEAR(nerve_metrics_loss(&mt), nerve_metrics_mse(&mt), 1e-6); /* the loss is the MSE */
    nerve_metrics_free(&mt);
    double loss, acc;
    CHECK_OK(nerve_evaluate(m, &test, &loss, &acc, NULL, 0));
    CHECK(isnan(acc)); /* no accuracy for a regression */
    int pred[128];
    CHECK(nerve_predict(m, &test, pred) == NERVE_ERR_ARG);
    CHECK(nerve_ensemble_evaluate(&m, 1, &test, &loss, &acc, NULL) == NERVE_ERR_ARG);
    CHECK(error_has("task 'regress'"));
    FILE *fp = fopen(log, "r");
    CHECK(fp);
    char header[200] = "";
    CHECK(fgets(header, sizeof header, fp));
    fclose(fp);
    CHECK_MSG(strcmp(header, "epoch,train_loss,train_r2,val_loss,val_r2,lr,seconds\n") == 0, "header %s", header);
    nerve_model_free(m);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
}

TEST(data_and_head_mismatches_are_errors_naming_both)
{
    nerve_model *m = model_of(REGRESSION_NET, REGRESSION_HEAD);
    CHECK(m);
    /* class labels for a regression head */
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 8, 1, (int[]){3}));
    for (int i = 0; i < 8; i++)
        d.y[i] = (float)(i % 2);
    d.n_classes = 2;
    CHECK(nerve_fit(m, &d, NULL, NULL, NULL) == NERVE_ERR_SHAPE);
    CHECK(error_has("[cost] on line"));
    CHECK(error_has("a float vector per sample (target=values)"));
    CHECK(error_has("the data set has a class label per sample"));
    double loss;
    CHECK(nerve_evaluate(m, &d, &loss, NULL, NULL, 0) == NERVE_ERR_SHAPE);
    nerve_dataset_free(&d);
    /* float targets of the wrong size */
    make_regression(&d, 8, 1, 3);
    CHECK(nerve_fit(m, &d, NULL, NULL, NULL) == NERVE_ERR_SHAPE);
    CHECK(error_has("targets have shape [3]"));
    CHECK(error_has("targets of shape [2]"));
    nerve_dataset_free(&d);
    nerve_model_free(m);
    /* a float-target data set for a classifier */
    m = model_of("inputs=3", "[connected]\noutput=2\n[softmax]\n");
    make_regression(&d, 8, 1, 2);
    CHECK(nerve_evaluate(m, &d, &loss, NULL, NULL, 0) == NERVE_ERR_SHAPE);
    CHECK(error_has("needs a class label per sample"));
    CHECK(error_has("the data set has a float vector per sample"));
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

/* ---- reconstruction and denoising --------------------------------------------------------- */

static void make_images(nerve_dataset *d, int n, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    nerve_dataset_alloc(d, n, 3, (int[]){1, 4, 4});
    for (size_t i = 0; i < (size_t)n * 16; i++)
        d->x[i] = nerve_rng_uniform(&r);
    for (int i = 0; i < n; i++)
        d->y[i] = (float)(i % 3); /* labels are there, and ignored by target=input */
    d->n_classes = 3;
}

TEST(reconstruction_feeds_the_input_as_target)
{
    nerve_dataset d;
    make_images(&d, 40, 9);
    nerve_model *m = model_of("height=4\nwidth=4\nbatch=8\nepochs=60\noptimizer=adam\nlearning_rate=0.02\nseed=2",
                              "[connected]\noutput=16\n[cost]\ntype=mse\ntarget=input\n");
    CHECK(m);
    float *out = malloc(40 * 16 * sizeof(float)), *seen = malloc(40 * 16 * sizeof(float));
    CHECK_OK(nerve_predict_outputs(m, &d, out, seen));
    double sse = 0;
    for (int i = 0; i < 40 * 16; i++) {
        CHECK(seen[i] == d.x[i]); /* no corruption without corrupt= */
        sse += (out[i] - d.x[i]) * (double)(out[i] - d.x[i]);
    }
    nerve_metrics mt;
    CHECK_OK(nerve_evaluate_metrics(m, &d, &mt));
    CHECK_NEAR(nerve_metrics_mse(&mt), sse / (40 * 16), 1e-6); /* the target was the input */
    CHECK_NEAR(nerve_metrics_loss(&mt), sse / (40 * 16), 1e-5);
    double before = nerve_metrics_mse(&mt);
    nerve_metrics_free(&mt);
    CHECK_OK(nerve_fit(m, &d, NULL, NULL, NULL));
    CHECK_OK(nerve_evaluate_metrics(m, &d, &mt));
    CHECK_MSG(nerve_metrics_mse(&mt) < 0.05 * before, "MSE %g before %g", nerve_metrics_mse(&mt), before);
    CHECK(isnan(nerve_metrics_noisy_mse(&mt)));
    nerve_metrics_free(&mt);
    free(out);
    free(seen);
    nerve_model_free(m);
    nerve_dataset_free(&d);
}

TEST(corruption_is_reproducible_per_sample_and_epoch)
{
    nerve_noise nz = {NERVE_NOISE_GAUSSIAN, 0.3f, 0.1f, 1, 0.0f, 1.0f};
    float a[2][64], b[64], c[64];
    for (int i = 0; i < 64; i++)
        a[0][i] = a[1][i] = b[i] = c[i] = 0.5f;
    nerve_noise_batch(&nz, &a[0][0], 64, 2, 7, 3, (int[]){11, 5});
    nerve_noise_batch(&nz, b, 64, 1, 7, 3, (int[]){5});   /* sample 5 alone: same draws */
    nerve_noise_batch(&nz, c, 64, 1, 7, 4, (int[]){5});   /* another epoch: others */
    CHECK(memcmp(a[1], b, sizeof b) == 0);
    CHECK(memcmp(a[0], b, sizeof b) != 0);
    CHECK(memcmp(c, b, sizeof b) != 0);
    double sq = 0;
    for (int i = 0; i < 64; i++) {
        CHECK(b[i] >= 0.0f && b[i] <= 1.0f); /* clipped */
        sq += (b[i] - 0.5) * (b[i] - 0.5);
    }
    CHECK(sq > 0);
    /* salt and pepper: a value stays or becomes 0 or 1; masking: stays or becomes 0 */
    float s[4000];
    for (int i = 0; i < 4000; i++)
        s[i] = 0.5f;
    nerve_noise sp = {NERVE_NOISE_SALT_PEPPER, 0, 0.2f, 0, 0.0f, 1.0f};
    nerve_noise_batch(&sp, s, 4000, 1, 1, 1, (int[]){0});
    int lo = 0, hi = 0;
    for (int i = 0; i < 4000; i++) {
        CHECK(s[i] == 0.5f || s[i] == 0.0f || s[i] == 1.0f);
        lo += s[i] == 0.0f;
        hi += s[i] == 1.0f;
    }
    CHECK_MSG(lo > 300 && lo < 500 && hi > 300 && hi < 500, "salt %d pepper %d of 4000 at p 0.2", hi, lo);
    for (int i = 0; i < 4000; i++)
        s[i] = 0.5f;
    nerve_noise mk = {NERVE_NOISE_MASK, 0, 0.5f, 0, 0.0f, 1.0f};
    nerve_noise_batch(&mk, s, 4000, 1, 1, 1, (int[]){0});
    int zeros = 0;
    for (int i = 0; i < 4000; i++) {
        CHECK(s[i] == 0.5f || s[i] == 0.0f);
        zeros += s[i] == 0.0f;
    }
    CHECK_MSG(zeros > 1800 && zeros < 2200, "%d of 4000 masked at p 0.5", zeros);
    CHECK(strcmp(nerve_noise_name(NERVE_NOISE_SALT_PEPPER), "salt_pepper") == 0);
}

static const char *DENOISE_NET = "height=4\nwidth=4\nbatch=8\nepochs=3\nseed=4\noptimizer=adam\n"
                                  "learning_rate=0.01\ncorrupt=gaussian\ncorrupt_sigma=0.3\ncorrupt_clip=1";
static const char *DENOISE_HEAD = "[connected]\noutput=16\nactivation=logistic\n[cost]\ntype=mse\ntarget=input\n";

TEST(denoising_evaluation_corrupts_the_input_reproducibly_and_scores_the_clean_target)
{
    nerve_dataset d;
    make_images(&d, 20, 3);
    nerve_model *m = model_of(DENOISE_NET, DENOISE_HEAD);
    CHECK(m);
    CHECK(nerve_model_config(m)->noise.kind == NERVE_NOISE_GAUSSIAN);
    float *out = malloc(20 * 16 * sizeof(float)), *seen = malloc(20 * 16 * sizeof(float));
    float *seen2 = malloc(20 * 16 * sizeof(float));
    CHECK_OK(nerve_predict_outputs(m, &d, out, seen));
    CHECK_OK(nerve_predict_outputs(m, &d, out, seen2));
    CHECK(memcmp(seen, seen2, 20 * 16 * sizeof(float)) == 0);
    double noisy = 0, sse = 0;
    int changed = 0;
    for (int i = 0; i < 20 * 16; i++) {
        CHECK(seen[i] >= 0 && seen[i] <= 1);
        changed += seen[i] != d.x[i];
        noisy += (seen[i] - d.x[i]) * (double)(seen[i] - d.x[i]);
        sse += (out[i] - d.x[i]) * (double)(out[i] - d.x[i]);
    }
    CHECK(changed > 300);
    nerve_metrics a, b;
    CHECK_OK(nerve_evaluate_metrics(m, &d, &a));
    CHECK_OK(nerve_evaluate_metrics(m, &d, &b));
    CHECK(nerve_metrics_mse(&a) == nerve_metrics_mse(&b));
    CHECK_NEAR(nerve_metrics_noisy_mse(&a), noisy / (20 * 16), 1e-7);
    CHECK_NEAR(nerve_metrics_mse(&a), sse / (20 * 16), 1e-7); /* against the clean images */
    nerve_metrics_free(&a);
    nerve_metrics_free(&b);
    free(out);
    free(seen);
    free(seen2);
    nerve_model_free(m);
    nerve_dataset_free(&d);
}

/* Two epochs straight, or one, a checkpoint, and one resumed: the same weights bit for bit
 * (the corruption of epoch 2 is replayed). */
TEST(resumed_denoising_training_replays_the_corruption)
{
    nerve_dataset d;
    make_images(&d, 24, 5);
    char ck[600], ck2[600];
    snprintf(ck, sizeof ck, "%s/a.safetensors", test_tmpdir());
    snprintf(ck2, sizeof ck2, "%s/b.safetensors", test_tmpdir());
    nerve_model *straight = model_of(DENOISE_NET, DENOISE_HEAD);
    nerve_fit_options o = {0};
    o.max_epochs = 2;
    o.checkpoint = ck;
    CHECK_OK(nerve_fit(straight, &d, NULL, &o, NULL));
    nerve_model *first = model_of(DENOISE_NET, DENOISE_HEAD);
    o.checkpoint = ck2;
    o.stop_after_epochs = 1;
    CHECK_OK(nerve_fit(first, &d, NULL, &o, NULL));
    nerve_model *resumed = model_of(DENOISE_NET, DENOISE_HEAD);
    o.stop_after_epochs = 0;
    o.resume = ck2;
    CHECK_OK(nerve_fit(resumed, &d, NULL, &o, NULL));
    nerve_graph *g1 = nerve_model_graph(straight), *g2 = nerve_model_graph(resumed);
    int w1 = nerve_node_find(g1, "connected1.weight"), w2 = nerve_node_find(g2, "connected1.weight");
    CHECK(w1 >= 0 && w2 >= 0);
    nerve_tensor t1 = nerve_value(g1, w1), t2 = nerve_value(g2, w2);
    CHECK(memcmp(t1.data, t2.data, nerve_tensor_numel(&t1) * sizeof(float)) == 0);
    /* and differently from a run without corruption */
    nerve_model *clean = model_of("height=4\nwidth=4\nbatch=8\nepochs=2\nseed=4\noptimizer=adam\nlearning_rate=0.01",
                                  DENOISE_HEAD);
    CHECK_OK(nerve_fit(clean, &d, NULL, NULL, NULL));
    nerve_graph *g3 = nerve_model_graph(clean);
    nerve_tensor t3 = nerve_value(g3, nerve_node_find(g3, "connected1.weight"));
    CHECK(memcmp(t1.data, t3.data, nerve_tensor_numel(&t1) * sizeof(float)) != 0);
    nerve_model_free(straight);
    nerve_model_free(first);
    nerve_model_free(resumed);
    nerve_model_free(clean);
    nerve_dataset_free(&d);
}

/* ---- masks -------------------------------------------------------------------------------- */

/* 4 x 4 images of values in [0, 1]; the mask says which pixels are bright (> 0.5). With
 * `ignore`, every seventh pixel is labelled `ignore` instead. */
static void make_masks(nerve_dataset *d, int n, uint64_t seed, int ignore, int use_ignore)
{
    make_images(d, n, seed);
    nerve_dataset_alloc_target(d, NERVE_TARGET_MASK, 2, (int[]){4, 4});
    d->ignore_index = ignore;
    for (int i = 0; i < n * 16; i++)
        d->t[i] = use_ignore && i % 7 == 3 ? (float)ignore : d->x[i] > 0.5f;
}

static const char *MASK_NET = "height=4\nwidth=4\nbatch=16\nepochs=40\nseed=1\noptimizer=adam\nlearning_rate=0.05";

TEST(segmentation_head_trains_on_masks_with_an_ignore_index)
{
    nerve_dataset d;
    make_masks(&d, 64, 2, 255, 1);
    nerve_model *m = model_of(MASK_NET, "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
                                        "[softmax]\ntarget=mask\nignore_index=255\n");
    CHECK(m);
    CHECK_OK(nerve_fit(m, &d, NULL, NULL, NULL));
    nerve_metrics mt;
    CHECK_OK(nerve_evaluate_metrics(m, &d, &mt));
    CHECK(mt.task == NERVE_TASK_SEGMENT);
    CHECK(mt.counted == 64 * 16 - (64 * 16 + 3) / 7); /* the ignored pixels are not counted */
    CHECK_MSG(nerve_metrics_accuracy(&mt) > 0.97, "pixel accuracy %g", nerve_metrics_accuracy(&mt));
    CHECK(nerve_metrics_mean_iou(&mt) > 0.9);
    nerve_metrics_free(&mt);
    /* probabilities per pixel sum to 1 */
    float *p = malloc(64 * 2 * 16 * sizeof(float));
    CHECK_OK(nerve_predict_outputs(m, &d, p, NULL));
    CHECK_NEAR(p[0] + p[16], 1.0, 1e-6);
    free(p);
    /* data that marks unlabelled pixels otherwise, or holds a label that is not a class */
    d.ignore_index = -1;
    CHECK(nerve_fit(m, &d, NULL, NULL, NULL) == NERVE_ERR_SHAPE);
    CHECK(error_has("set ignore_index=-1"));
    d.ignore_index = 255;
    d.t[5 * 16 + 2] = 7;
    CHECK(nerve_fit(m, &d, NULL, NULL, NULL) == NERVE_ERR_FORMAT);
    CHECK(error_has("sample 5: mask value 7 at pixel 2"));
    nerve_model_free(m);
    nerve_dataset_free(&d);
}

TEST(binary_mask_head_trains_with_per_pixel_sigmoid_bce)
{
    nerve_dataset d;
    make_masks(&d, 64, 4, -1, 0);
    nerve_model *m = model_of(MASK_NET, "[convolutional]\nfilters=1\nsize=1\nactivation=linear\n"
                                        "[cost]\ntype=bce\ntarget=mask\n");
    CHECK(m);
    CHECK_OK(nerve_fit(m, &d, NULL, NULL, NULL));
    nerve_metrics mt;
    CHECK_OK(nerve_evaluate_metrics(m, &d, &mt));
    CHECK(mt.task == NERVE_TASK_BINARY_MASK && mt.counted == 64 * 16);
    CHECK_MSG(nerve_metrics_accuracy(&mt) > 0.97, "pixel accuracy %g", nerve_metrics_accuracy(&mt));
    nerve_metrics_free(&mt);
    float *p = malloc(64 * 16 * sizeof(float));
    CHECK_OK(nerve_predict_outputs(m, &d, p, NULL));
    for (int i = 0; i < 64 * 16; i++)
        CHECK(p[i] > 0 && p[i] < 1); /* sigmoid of the logits */
    free(p);
    d.t[3] = 2;
    CHECK(nerve_fit(m, &d, NULL, NULL, NULL) == NERVE_ERR_FORMAT);
    CHECK(error_has("a binary mask holds 0 and 1 only"));
    nerve_model_free(m);
    nerve_dataset_free(&d);
}

/* A head added outside the cfg builder states its target and feeds itself: it receives the
 * data set and the sample indices of each batch. */
typedef struct feed_log {
    int calls, samples;
    int seen[64];
} feed_log;

static int feed_boxes(nerve_model *m, const nerve_dataset *d, const int *idx, int n, void *user)
{
    feed_log *log = user;
    log->calls++;
    float *labels = nerve_value(nerve_model_graph(m), nerve_model_labels(m)).data;
    for (int i = 0; i < n; i++) {
        log->seen[idx[i]]++;
        log->samples++;
        /* the target: the number of boxes of the sample */
        labels[i] = (float)(d->box_start[idx[i] + 1] - d->box_start[idx[i]]);
    }
    return NERVE_OK;
}

TEST(a_head_with_its_own_feed_gets_the_batch_indices_and_the_data_set)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 40, 1, (int[]){2}));
    int counts[40];
    nerve_box boxes[200];
    int nb = 0;
    for (int i = 0; i < 40; i++) {
        counts[i] = i % 4;
        d.x[2 * i] = (float)counts[i];
        d.x[2 * i + 1] = 1;
        for (int k = 0; k < counts[i]; k++)
            boxes[nb++] = (nerve_box){0, 0.5f, 0.5f, 0.1f, 0.1f};
    }
    CHECK_OK(nerve_dataset_set_boxes(&d, counts, boxes));
    CHECK(d.target == NERVE_TARGET_BOXES);
    nerve_model *m = model_of("inputs=2\nbatch=8\nepochs=1\noptimizer=sgd\nlearning_rate=0.01",
                              "[connected]\noutput=1\n[cost]\ntype=mse\ntarget=values\n");
    CHECK(m);
    /* as a regression head it refuses boxes */
    CHECK(nerve_fit(m, &d, NULL, NULL, NULL) == NERVE_ERR_SHAPE);
    CHECK(error_has("a list of boxes per sample"));
    feed_log log = {0};
    nerve_head_info h = nerve_model_head(m);
    h.target = NERVE_TARGET_BOXES;
    h.task = NERVE_TASK_DETECT;
    CHECK(nerve_model_set_head(m, &h) == NERVE_ERR_ARG); /* boxes need a feed function */
    h.feed = feed_boxes;
    h.user = &log;
    CHECK_OK(nerve_model_set_head(m, &h));
    CHECK_OK(nerve_fit(m, &d, NULL, NULL, NULL));
    CHECK(log.calls == 5 && log.samples == 40);
    for (int i = 0; i < 40; i++)
        CHECK_MSG(log.seen[i] == 1, "sample %d fed %d times", i, log.seen[i]);
    nerve_model_free(m);
    nerve_dataset_free(&d);
}

/* ---- the command line --------------------------------------------------------------------- */

static int run_cmd(const char *cmd, char *out, size_t n)
{
    char full[2100];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t used = 0, got;
    while (used + 1 < n && (got = fread(out + used, 1, n - 1 - used, p)) > 0)
        used += got;
    out[used] = '\0';
    return WEXITSTATUS(pclose(p));
}

/* 16 pixel values in [0, 1] and a label per row (the label is not the target). */
static void write_image_csv(const char *path, int n, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 16; k++)
            fprintf(fp, "%.4f,", (double)nerve_rng_uniform(&r));
        fprintf(fp, "%d\n", i % 2);
    }
    fclose(fp);
}

TEST(cli_trains_evaluates_and_draws_a_denoising_model)
{
    char path[600], cmd[2048];
    static char out[65536];
    const char *dir = test_tmpdir(), *bin = test_build_dir();
    snprintf(path, sizeof path, "%s/train.csv", dir);
    write_image_csv(path, 64, 1);
    snprintf(path, sizeof path, "%s/test.csv", dir);
    write_image_csv(path, 16, 2);
    snprintf(path, sizeof path, "%s/dae.cfg", dir);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "[net]\n%s\ntrain_csv=train.csv\ntest_csv=test.csv\n%s", DENOISE_NET, DENOISE_HEAD);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/nerve train %s --out %s/run --threads 1", bin, path, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "train failed:\n%s", out);
    CHECK_MSG(strstr(out, "train loss") && strstr(out, " psnr "), "no psnr in the epoch lines:\n%s", out);
    CHECK_MSG(strstr(out, "test noisy-input MSE: 0.") != NULL, "no noisy-input line:\n%s", out);
    CHECK(strstr(out, "test accuracy") == NULL);
    snprintf(cmd, sizeof cmd, "%s/nerve eval %s/run/model.safetensors", bin, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "eval failed:\n%s", out);
    CHECK_MSG(strstr(out, "task: reconstruct (loss mse)") && strstr(out, "test PSNR: "), "eval:\n%s", out);
    static char again[65536];
    memcpy(again, out, sizeof again);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    CHECK_MSG(strcmp(again, out) == 0, "two evaluations differ:\n%s\n%s", again, out);
    snprintf(cmd, sizeof cmd, "head -1 %s/run/log.csv", dir);
    CHECK(run_cmd(cmd, out, sizeof out) == 0);
    CHECK_MSG(strcmp(out, "epoch,train_loss,train_psnr,val_loss,val_psnr,lr,seconds\n") == 0, "%s", out);
    /* predict prints the output values of a model that does not classify */
    snprintf(cmd, sizeof cmd, "%s/nerve predict %s/run/model.safetensors %s/test.csv --label-col -1", bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "predict failed:\n%s", out);
    int lines = 0, commas = 0;
    for (const char *p = out; *p; p++) {
        lines += *p == '\n';
        commas += *p == ',';
    }
    CHECK_MSG(lines == 16 && commas == 16 * 15, "%d lines, %d commas:\n%s", lines, commas, out);
    CHECK(atof(out) > 0 && atof(out) < 1); /* a sigmoid output */
    snprintf(cmd, sizeof cmd, "%s/nerve viz reconstruct %s/run/model.safetensors --n 3 --scale 2 --out %s/r.png",
             bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "viz failed:\n%s", out);
    snprintf(path, sizeof path, "%s/r.png", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 60);
    /* a classifier is refused by name */
    snprintf(path, sizeof path, "%s/cls.cfg", dir);
    fp = fopen(path, "w");
    fprintf(fp, "[net]\nheight=4\nwidth=4\nepochs=1\ntrain_csv=train.csv\ntest_csv=test.csv\n"
                "[connected]\noutput=2\n[softmax]\n");
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/nerve train %s --out %s/cls --threads 1", bin, path, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "train failed:\n%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve viz reconstruct %s/cls/model.safetensors --out %s/c.png", bin, dir, dir);
    CHECK(run_cmd(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "target=input") != NULL, "%s", out);
}
