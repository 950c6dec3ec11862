/* SSD (src/ops/ssd.c, src/model/model_ssd.c, src/train/ssd_detect.c): default boxes and the
 * MultiBox loss worked by hand, the loss by finite differences, a cfg's detections worked by
 * hand, errors naming the line, and a two-head SSD trained on generated scenes. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int leaf(nerve_graph *g, int kind, const char *name, int ndim, const int *dims,
                const float *data)
{
    int id = kind == NERVE_NODE_PARAM ? nerve_param(g, name, ndim, dims)
                                      : nerve_state(g, name, ndim, dims);
    if (id >= 0)
        memcpy(nerve_value(g, id).data, data, nerve_shape_numel(ndim, dims) * sizeof(float));
    return id;
}

static nerve_ssd_config config(int classes, float neg_pos)
{
    nerve_ssd_config c;
    memset(&c, 0, sizeof c);
    c.classes = classes, c.max_boxes = 3, c.match_thresh = 0.5f, c.neg_pos = neg_pos;
    c.variance[0] = 0.1f, c.variance[1] = 0.2f;
    return c;
}

TEST(ssd_default_boxes_by_hand)
{
    /* a 2 x 1 map (2 rows), s = 0.2, s' = 0.45, ratio 4: per cell a 0.2 square, a 0.3 square
     * (sqrt(0.2 * 0.45)), 0.4 x 0.1 and 0.1 x 0.4; centres (0.5, 0.25) and (0.5, 0.75) */
    nerve_ssd_head h;
    memset(&h, 0, sizeof h);
    h.fh = 2, h.fw = 1, h.scale = 0.2f, h.next_scale = 0.45f, h.ratios[0] = 4, h.n_ratios = 1;
    CHECK(nerve_ssd_priors(&h, NULL) == 8);
    float b[8 * 4];
    CHECK(nerve_ssd_priors(&h, b) == 8);
    const float want[8][4] = {{0.4f, 0.15f, 0.6f, 0.35f},  {0.35f, 0.1f, 0.65f, 0.4f},
                              {0.3f, 0.2f, 0.7f, 0.3f},    {0.45f, 0.05f, 0.55f, 0.45f},
                              {0.4f, 0.65f, 0.6f, 0.85f},  {0.35f, 0.6f, 0.65f, 0.9f},
                              {0.3f, 0.7f, 0.7f, 0.8f},    {0.45f, 0.55f, 0.55f, 0.95f}};
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++)
            CHECK_NEAR(b[i * 4 + k], want[i][k], 1e-6);
    h.scale = 0;
    CHECK(nerve_ssd_priors(&h, NULL) == NERVE_ERR_ARG);
}

/* four default boxes, one class (6 values a box), one truth, the box (0.25, 0.25, 0.5, 0.5):
 *   box 0 [0, 0, .5, .5]   the truth's own (IoU 1): positive, offsets 0.5, -2, 0, 0 against
 *                          targets 0 -> smooth L1 0.125 + 1.5; scores 0, 0 -> ln 2
 *   box 1 [.5, .5, 1, 1]   IoU 0: negative, scores 0, 0 -> background loss ln 2
 *   box 2 [.5, 0, 1, .5]   IoU 0: negative, scores 2, 0 -> background loss ln(1 + e^-2) = 0.127
 *   box 3 [0, 0, .5, .6]   IoU 0.25 / 0.3 = 0.83 >= 0.5: positive; targets 0,
 *                          (0.25 - 0.3) / 0.6 / 0.1 = -0.8333, 0, ln(0.5 / 0.6) / 0.2 = -0.9116,
 *                          offsets 0 -> smooth L1 (0.8333^2 + 0.9116^2) / 2 = 0.7627; ln 2
 * 2 positives, neg_pos 0.5: one negative counts, box 1 (the higher background loss).
 * Loss (1.625 + 0.7627 + 3 ln 2) / 2 = 2.23359. */
TEST(ssd_loss_by_hand)
{
    nerve_ssd_config c = config(1, 0.5f);
    const float priors[16] = {0, 0, .5f, .5f, .5f, .5f, 1, 1, .5f, 0, 1, .5f, 0, 0, .5f, .6f};
    const float x[24] = {0.5f, -2, 0, 0, 0, 0, /**/ 1, 1, 1, 1, 0, 0, /**/ 1, 1, 1, 1, 2, 0,
                         /**/ 0, 0, 0, 0, 0, 0};
    const float target[15] = {0.25f, 0.25f, 0.5f, 0.5f, 0};
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "x", 3, (int[]){1, 4, 6}, x);
    int pr = leaf(g, NERVE_NODE_STATE, "priors", 2, (int[]){4, 4}, priors);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 15}, target);
    int l = nerve_ssd_loss(g, p, pr, t, &c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    CHECK_NEAR(nerve_value(g, l).data[0], 2.2335890699, 1e-5);
    CHECK_OK(nerve_backward(g, l));
    const float *d = nerve_grad(g, p).data;
    const float want[24] = {0.25f, -0.5f, 0, 0, 0.25f, -0.25f,  /**/ 0, 0, 0, 0, -0.25f, 0.25f,
                            0, 0, 0, 0, 0, 0, /**/ 0, 0.416667f, 0, 0.455804f, 0.25f, -0.25f};
    for (int k = 0; k < 24; k++)
        CHECK_NEAR(d[k], want[k], 1e-5);
    /* three negatives per positive: both negatives count, (... + ln 2 + 0.127) / 2 */
    nerve_graph_free(g);
    c.neg_pos = 3;
    g = nerve_graph_create();
    p = leaf(g, NERVE_NODE_PARAM, "x", 3, (int[]){1, 4, 6}, x);
    pr = leaf(g, NERVE_NODE_STATE, "priors", 2, (int[]){4, 4}, priors);
    t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 15}, target);
    l = nerve_ssd_loss(g, p, pr, t, &c);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    CHECK_NEAR(nerve_value(g, l).data[0], 2.2335890699 + 0.1269280110 / 2, 1e-5);
    /* no truth: no positive, loss 0 */
    nerve_value(g, t).data[2] = 0;
    CHECK_OK(nerve_forward(g, l));
    CHECK(nerve_value(g, l).data[0] == 0);
    nerve_graph_free(g);
}

TEST(ssd_loss_passes_gradcheck)
{
    /* two samples over the default boxes of a 3 x 3 and a 2 x 2 map, 3 classes; two truths in
     * the first (one away from any default box of IoU 0.5: only its best box), one in the second */
    nerve_ssd_head h[2];
    memset(h, 0, sizeof h);
    h[0].fh = h[0].fw = 3, h[0].scale = 0.25f, h[0].next_scale = 0.5f, h[0].ratios[0] = 2, h[0].n_ratios = 1;
    h[1].fh = h[1].fw = 2, h[1].scale = 0.5f, h[1].next_scale = 1, h[1].n_ratios = 0;
    int P0 = nerve_ssd_priors(&h[0], NULL), P = P0 + nerve_ssd_priors(&h[1], NULL);
    CHECK(P == 36 + 8);
    float priors[44 * 4], x[2 * 44 * 8];
    nerve_ssd_priors(&h[0], priors);
    nerve_ssd_priors(&h[1], priors + P0 * 4);
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (int i = 0; i < 2 * P * 8; i++)
        x[i] = 2.4f * nerve_rng_uniform(&r) - 1.2f;
    const float target[30] = {0.3f, 0.35f, 0.3f, 0.2f, 2, 0.8f, 0.7f, 0.05f, 0.6f, 0, 0, 0, 0, 0, 0,
                              0.6f, 0.5f, 0.5f, 0.6f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    nerve_ssd_config c = config(3, 3);
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "x", 3, (int[]){2, P, 8}, x);
    int pr = leaf(g, NERVE_NODE_STATE, "priors", 2, (int[]){P, 4}, priors);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){2, 15}, target);
    int l = nerve_ssd_loss(g, p, pr, t, &c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_gradcheck(g, l, 1e-3f, 1e-3f, 1e-2f));
    CHECK_OK(nerve_forward(g, l));
    CHECK(nerve_value(g, l).data[0] > 0);
    nerve_graph_free(g);
}

TEST(ssd_cfg_detections_by_hand)
{
    /* a 1x1 convolution with zero weights over a 2 x 2 map of a 16 x 16 input: every default
     * box gets the biases, offsets (1, 0, 0, 0), scores background 0, class 0 -5, class 1 1:
     * class 1's probability e / (1 + e^-5 + e) = 0.730. One head: scale min_scale 0.5 (8 pixels), then sqrt(0.5 * 0.9),
     * ratio 2. The 8-pixel square of a cell, shifted right by 0.1 * 1 * 8 = 0.8 pixels, is the
     * first of equal scores and suppresses the cell's other three (IoU > 0.45), so four boxes
     * remain, one per cell. */
    const char *cfg = "[net]\nwidth=16\nheight=16\nchannels=3\n"
                      "[maxpool]\nsize=8\nstride=8\n"
                      "[convolutional]\nfilters=28\nsize=1\nactivation=linear\n"
                      "[ssd]\nclasses=2\nratios=2\nmin_scale=0.5\nmax_scale=0.9\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "<test>");
    CHECK_MSG(m != NULL, "%s", nerve_last_error());
    if (!m)
        return;
    nerve_ssd_config c;
    nerve_ssd_head h;
    CHECK(nerve_model_ssd(m, &c, &h, 1) == 1);
    CHECK(c.classes == 2 && h.fh == 2 && h.fw == 2 && h.n_ratios == 1);
    CHECK_NEAR(h.scale, 0.5, 1e-6);
    CHECK_NEAR(h.next_scale, 0.9, 1e-6);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    nerve_tensor w = nerve_value(g, nerve_node_find(g, "convolutional2.weight"));
    memset(w.data, 0, nerve_tensor_numel(&w) * sizeof(float));
    nerve_tensor b = nerve_value(g, nerve_node_find(g, "convolutional2.bias"));
    for (int a = 0; a < 4; a++) {
        const float bias[7] = {1, 0, 0, 0, 0, -5, 1};
        memcpy(b.data + a * 7, bias, sizeof bias);
    }
    float x[3 * 16 * 16];
    for (int i = 0; i < 3 * 16 * 16; i++)
        x[i] = (float)(i % 5) / 5;
    nerve_detection d[8];
    int n = nerve_ssd_detect(m, x, 16, 16, 0.25f, 0.45f, d, 8);
    CHECK(n == 4);
    float s = expf(1) / (1 + expf(-5) + expf(1));
    for (int i = 0; i < n && n == 4; i++) {
        CHECK(d[i].cls == 1);
        CHECK_NEAR(d[i].score, s, 1e-6);
        float cy = (d[i].box[1] + d[i].box[3]) / 2;
        /* the right column's box reaches 16.8 and is clamped to the image */
        CHECK(fabsf(d[i].box[0] - 0.8f) < 1e-4f || fabsf(d[i].box[0] - 8.8f) < 1e-4f);
        CHECK_NEAR(d[i].box[2], d[i].box[0] > 8 ? 16 : 8.8f, 1e-4);
        CHECK(fabsf(cy - 4) < 1e-4f || fabsf(cy - 12) < 1e-4f);
        CHECK_NEAR(d[i].box[3] - d[i].box[1], 8, 1e-4);
    }
    CHECK(nerve_ssd_detect(m, x, 16, 16, 0.75f, 0.45f, d, 8) == 0);
    nerve_model_free(m);
}

TEST(ssd_cfg_errors_name_the_line)
{
    const char *bad[] = {
        /* channels: 6 boxes * (5 + 2) = 42 needed */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=40\nsize=1\n"
        "[ssd]\nclasses=2\n",
        /* a ratio of 1 (the square boxes are always there) */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=28\nsize=1\n"
        "[ssd]\nclasses=2\nratios=1\n",
        /* the second head's classes differ */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=28\nsize=1\n"
        "[ssd]\nclasses=2\nratios=2\n[route]\nlayers=-2\n[convolutional]\nfilters=32\nsize=1\n"
        "[ssd]\nclasses=3\nratios=2\n",
        /* a [softmax] after the heads */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=28\nsize=1\n"
        "[ssd]\nclasses=2\nratios=2\n[softmax]\n",
        /* max_scale below min_scale */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=28\nsize=1\n"
        "[ssd]\nclasses=2\nratios=2\nmin_scale=0.5\nmax_scale=0.3\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nerve_model *m = nerve_model_from_cfg(bad[i], "<t>");
        CHECK_MSG(m == NULL, "cfg %zu built", i);
        CHECK_MSG(strstr(nerve_last_error(), "<t>:") != NULL, "cfg %zu: %s", i, nerve_last_error());
        nerve_model_free(m);
    }
}

/* A two-head SSD cfg (8 x 8 and 4 x 4 maps) trained end to end on the generated bar scenes of
 * tests/test_yolo.c: the loss through the data set's boxes, then mAP by
 * nerve_evaluate_detection and by nerve eval. */
TEST(ssd_cfg_trains_on_generated_scenes_and_reports_map)
{
    const char *dir = test_tmpdir();
    char p[4][512], out[600], cfg[4096], ckpt[600], cfgpath[600];
    const char *stems[4] = {"str-img", "str-lab", "ste-img", "ste-lab"};
    for (int k = 0; k < 4; k++)
        snprintf(p[k], sizeof p[k], "%s/%s", dir, stems[k]);
    test_write_bar_items(p[0], p[1], 8);
    test_write_bar_items(p[2], p[3], 8);
    nerve_scenes_options o = nerve_scenes_default();
    o.canvas = 32, o.n_train = 512, o.n_test = 32, o.min_objects = 1, o.max_objects = 2;
    o.min_size = 10, o.max_size = 14, o.max_overlap = 0;
    o.train_images = p[0], o.train_labels = p[1], o.test_images = p[2], o.test_labels = p[3];
    const char *names[2] = {"wide", "tall"};
    o.names = names, o.n_names = 2;
    snprintf(out, sizeof out, "%s/sscenes", dir);
    CHECK_OK(nerve_scenes_generate(out, &o, NULL));
    /* heads on the 8 x 8 map (scale 0.2) and the 4 x 4 map (0.5), ratios 2 and 3: 6 boxes a
     * cell, 7 values each (offsets, background, two classes) */
    snprintf(cfg, sizeof cfg,
             "[net]\nbatch=16\nchannels=1\nheight=32\nwidth=32\nlearning_rate=0.003\n"
             "optimizer=adam\nepochs=%d\nseed=3\ntrain_list=%s/train.txt\ntest_list=%s/test.txt\n"
             "names=%s/classes.names\n"
             "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=42\nsize=3\npad=1\nactivation=linear\n"
             "[ssd]\nclasses=2\nmin_scale=0.2\nmax_scale=0.5\n"
             "[route]\nlayers=-3\n"
             "[convolutional]\nfilters=32\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=42\nsize=3\npad=1\nactivation=linear\n"
             "[ssd]\nclasses=2\nmin_scale=0.2\nmax_scale=0.5\n",
             5, out, out, out);
    nerve_set_threads(1);
    nerve_model *m = nerve_model_from_cfg(cfg, "ssd.cfg");
    CHECK_MSG(m, "%s", nerve_last_error());
    if (!m)
        return;
    nerve_ssd_head h[2];
    CHECK(nerve_model_ssd(m, NULL, h, 2) == 2);
    CHECK(h[0].fh == 8 && h[1].fh == 4);
    CHECK_NEAR(h[0].next_scale, 0.5, 1e-6);
    CHECK_NEAR(h[1].next_scale, 1, 1e-6);
    nerve_dataset train, test;
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &train, &test));
    CHECK(train.target == NERVE_TARGET_BOXES && test.n == 32);
    nerve_detection_metrics before, after;
    double ap[2];
    before.ap = NULL;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &before));
    nerve_fit_options fo;
    memset(&fo, 0, sizeof fo);
    snprintf(ckpt, sizeof ckpt, "%s/ssd.safetensors", dir);
    fo.checkpoint = ckpt;
    CHECK_OK(nerve_fit(m, &train, &test, &fo, NULL));
    after.ap = ap;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &after));
    CHECK(after.truths == test.box_start[test.n]);
    /* 0.002 before, 0.99 after 5 epochs here (1.000 after 8) */
    CHECK_MSG(after.map50 > 0.85 && after.map50 > before.map50 + 0.5,
              "mAP@0.5 %.3f before training, %.3f after", before.map50, after.map50);
    CHECK(after.map_coco <= after.map50 && after.map_coco > 0);
    CHECK(!isnan(ap[0]) && !isnan(ap[1]));
    snprintf(cfgpath, sizeof cfgpath, "%s/ssd.cfg", dir);
    FILE *f = fopen(cfgpath, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(cfg, f);
        fclose(f);
    }
    char cmd[2000], text[8192], want[100];
    snprintf(cmd, sizeof cmd, "%s eval %s", test_nerve(), ckpt);
    CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s", text);
    snprintf(want, sizeof want, "test mAP@0.5: %.4f (all-point)", after.map50);
    CHECK_MSG(strstr(text, "task: detect ([ssd] heads;") && strstr(text, want), "%s\nwanted: %s",
              text, want);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}
