/* darknet's [yolo] and [region] heads (src/ops/yolo.c, src/model/model_detect.c,
 * src/train/yolo_detect.c): the activations and the loss by finite differences, the loss of a
 * hand-worked cell, a cfg's detections worked by hand. darknet's own outputs on yolov3-tiny
 * are compared by `make darknet-check` (tests/darknet_check.sh). */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

static nerve_yolo_config small_config(int region, int softmax)
{
    nerve_yolo_config c;
    memset(&c, 0, sizeof c);
    c.region = region, c.softmax = softmax, c.classes = 3, c.coords = 4;
    c.total = region ? 2 : 3, c.n = 2, c.mask[0] = 1, c.mask[1] = 2;
    const float an[6] = {2, 3, 4, 2, 6, 6}, anr[4] = {0.8f, 1.2f, 1.6f, 1.0f};
    memcpy(c.anchors, region ? anr : an, (region ? 4 : 6) * sizeof(float));
    c.max_boxes = 4, c.net_w = 12, c.net_h = 9;
    c.ignore_thresh = 0.7f, c.truth_thresh = 1, c.thresh = 0.6f;
    c.object_scale = 5, c.noobject_scale = 1, c.class_scale = 1, c.coord_scale = 1;
    return c;
}

/* two samples of a 3 x 4 grid, 2 anchors of 3 classes; three boxes in the first, one in the
 * second (the list ends at a zero box) */
static void check_loss(const nerve_yolo_config *c)
{
    enum { C = 2 * 8, H = 3, W = 4, PER = C * H * W };
    float x[2 * PER], target[2 * 20];
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    for (int i = 0; i < 2 * PER; i++)
        x[i] = 1.6f * nerve_rng_uniform(&r) - 0.8f;
    memset(target, 0, sizeof target);
    const float boxes[4][5] = {{0.3f, 0.4f, 0.3f, 0.5f, 2}, {0.7f, 0.2f, 0.5f, 0.3f, 0},
                               {0.32f, 0.45f, 0.2f, 0.2f, 1}, {0.6f, 0.8f, 0.4f, 0.3f, 1}};
    memcpy(target, boxes, 3 * 5 * sizeof(float));
    memcpy(target + 20, boxes[3], 5 * sizeof(float));
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "x", 4, (int[]){2, C, H, W}, x);
    int a = leaf(g, NERVE_NODE_STATE, "anchors", 2, (int[]){c->total, 2}, c->anchors);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){2, 20}, target);
    int l = nerve_yolo_loss(g, p, a, t, c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_gradcheck(g, l, 1e-3f, 1e-3f, 1e-2f));
    CHECK_OK(nerve_forward(g, l));
    CHECK(nerve_value(g, l).data[0] > 0);
    nerve_graph_free(g);
}

TEST(yolo_loss_passes_gradcheck)
{
    nerve_yolo_config c = small_config(0, 0);
    check_loss(&c); /* [yolo] */
    c = small_config(1, 1);
    check_loss(&c); /* [region] softmax */
    c = small_config(1, 0);
    c.bias_match = 1;
    check_loss(&c); /* [region] logistic classes, anchors matched by shape */
}

TEST(yolo_activations_pass_gradcheck)
{
    for (int mode = 0; mode < 2; mode++) {
        nerve_yolo_config c = small_config(mode, mode);
        enum { PER = 16 * 2 * 3 };
        float x[2 * PER], y[2 * PER];
        nerve_rng r;
        nerve_rng_seed(&r, 3);
        for (int i = 0; i < 2 * PER; i++)
            x[i] = 2 * nerve_rng_uniform(&r) - 1, y[i] = nerve_rng_uniform(&r);
        nerve_graph *g = nerve_graph_create();
        int p = leaf(g, NERVE_NODE_PARAM, "x", 4, (int[]){2, 16, 2, 3}, x);
        int t = leaf(g, NERVE_NODE_STATE, "t", 4, (int[]){2, 16, 2, 3}, y);
        int a = nerve_yolo(g, p, &c);
        CHECK_OK(a);
        int l = nerve_mse_loss(g, a, t, 0);
        CHECK_OK(nerve_graph_compile(g, 2));
        CHECK_OK(nerve_gradcheck(g, l, 1e-3f, 1e-3f, 1e-2f));
        CHECK_OK(nerve_forward(g, a));
        const float *v = nerve_value(g, a).data;
        /* anchor 0 of sample 0: x logistic, w raw, classes logistic or softmax (sum 1) */
        CHECK_NEAR(v[0], 1 / (1 + expf(-x[0])), 1e-6);
        CHECK_NEAR(v[2 * 6], x[2 * 6], 0);
        float s = v[5 * 6] + v[6 * 6] + v[7 * 6];
        if (mode)
            CHECK_NEAR(s, 1, 1e-6);
        else
            CHECK_NEAR(v[5 * 6], 1 / (1 + expf(-x[5 * 6])), 1e-6);
        nerve_graph_free(g);
    }
}

TEST(yolo_loss_of_one_cell_by_hand)
{
    /* a 1 x 1 grid, one anchor 2 x 2 of a 4 x 4 input, one class, raw outputs 0: the box is
     * (0.5, 0.5, 0.5, 0.5), the truth the same. Its IoU 1 is above ignore_thresh, so the
     * first pass sets no objectness term; the truth then takes the anchor: x, y targets 0.5
     * (cross-entropy at its minimum: 0), w, h targets log(0.5 * 4 / 2) = 0 (0), objectness
     * and class targets 1: ln 2 each. d/dx: logistic(0) - 1 = -0.5 for both. */
    nerve_yolo_config c;
    memset(&c, 0, sizeof c);
    c.classes = 1, c.coords = 4, c.n = c.total = 1, c.anchors[0] = c.anchors[1] = 2;
    c.max_boxes = 2, c.net_w = c.net_h = 4, c.ignore_thresh = 0.5f, c.truth_thresh = 1;
    float x[6] = {0}, target[10] = {0.5f, 0.5f, 0.5f, 0.5f, 0};
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "x", 4, (int[]){1, 6, 1, 1}, x);
    int a = leaf(g, NERVE_NODE_STATE, "anchors", 2, (int[]){1, 2}, c.anchors);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 10}, target);
    int l = nerve_yolo_loss(g, p, a, t, &c);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    CHECK_NEAR(nerve_value(g, l).data[0], 2 * logf(2), 1e-6);
    CHECK_OK(nerve_backward(g, l));
    const float *d = nerve_grad(g, p).data;
    const float want[6] = {0, 0, 0, 0, -0.5f, -0.5f};
    for (int k = 0; k < 6; k++)
        CHECK_NEAR(d[k], want[k], 1e-6);
    nerve_graph_free(g);
}

TEST(yolo_cfg_detections_by_hand)
{
    /* a 1x1 convolution with zero weights: every cell gives the biases. Anchor 0 (mask=0) of
     * 8 x 8 pixels on a 16 x 16 input, 2 x 2 grid: objectness logistic(2) = 0.881, class 1
     * logistic(1) = 0.731, score 0.644; each cell's box is centred in the cell with w = h =
     * e^0 * 8 / 16 of the image. No two boxes overlap, so all four survive NMS. */
    const char *cfg = "[net]\nwidth=16\nheight=16\nchannels=3\n"
                      "[maxpool]\nsize=8\nstride=8\n"
                      "[convolutional]\nfilters=7\nsize=1\nactivation=linear\n"
                      "[yolo]\nmask=0\nanchors=8,8, 30,30\nclasses=2\nnum=2\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "<test>");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    nerve_tensor w = nerve_value(g, nerve_node_find(g, "convolutional2.weight"));
    memset(w.data, 0, nerve_tensor_numel(&w) * sizeof(float));
    nerve_tensor b = nerve_value(g, nerve_node_find(g, "convolutional2.bias"));
    const float bias[7] = {0, 0, 0, 0, 2, -3, 1};
    memcpy(b.data, bias, sizeof bias);
    float x[3 * 16 * 16];
    for (int i = 0; i < 3 * 16 * 16; i++)
        x[i] = (float)(i % 7) / 7;
    nerve_detection d[8];
    int n = nerve_yolo_detect(m, x, 16, 16, 0.25f, 0.45f, d, 8);
    CHECK(n == 4);
    float s = 1 / (1 + expf(-2.0f)) * (1 / (1 + expf(-1.0f)));
    for (int i = 0; i < n && n == 4; i++) {
        CHECK(d[i].cls == 1);
        CHECK_NEAR(d[i].score, s, 1e-6);
        float cx = (d[i].box[0] + d[i].box[2]) / 2, cy = (d[i].box[1] + d[i].box[3]) / 2;
        CHECK(fabsf(cx - 4) < 1e-5f || fabsf(cx - 12) < 1e-5f);
        CHECK(fabsf(cy - 4) < 1e-5f || fabsf(cy - 12) < 1e-5f);
        CHECK_NEAR(d[i].box[2] - d[i].box[0], 8, 1e-5);
    }
    /* above the score: none */
    CHECK(nerve_yolo_detect(m, x, 16, 16, 0.7f, 0.45f, d, 8) == 0);
    nerve_yolo_config c;
    CHECK(nerve_model_yolo_heads(m, &c, NULL, 1) == 1);
    CHECK(c.total == 2 && c.n == 1 && c.mask[0] == 0 && c.anchors[2] == 30);
    nerve_model_free(m);
}

TEST(yolo_cfg_errors_name_the_line)
{
    const char *bad[] = {
        /* channels: 2 * (5 + 2) = 14 needed */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=10\nsize=1\n"
        "[yolo]\nmask=0,1\nanchors=1,1,2,2\nclasses=2\nnum=2\n",
        /* anchors: 3 values for 2 anchors */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=14\nsize=1\n"
        "[yolo]\nmask=0,1\nanchors=1,1,2\nclasses=2\nnum=2\n",
        /* mask beyond num */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=14\nsize=1\n"
        "[yolo]\nmask=0,2\nanchors=1,1,2,2\nclasses=2\nnum=2\n",
        /* region tree= */
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=8\nsize=1\n"
        "[region]\nanchors=1,1\nclasses=3\nnum=1\ntree=x.tree\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nerve_model *m = nerve_model_from_cfg(bad[i], "<t>");
        CHECK(m == NULL);
        CHECK(strstr(nerve_last_error(), "<t>:") != NULL);
        nerve_model_free(m);
    }
}

TEST(darknet_cfg_forms_of_jnet_resnet101_and_strided)
{
    /* jnet-conv's 2x2/2 pool of a 1x1 map gives the map (darknet: (1 + 1 - 2)/2 + 1 = 1);
     * strided's ramp; resnet101's [cost] after [softmax] doubles the cross-entropy */
    const char *cfg = "[net]\nwidth=2\nheight=2\nchannels=1\n"
                      "[maxpool]\nsize=2\nstride=2\n"
                      "[maxpool]\nsize=2\nstride=2\n"
                      "[connected]\noutput=3\nactivation=ramp\n"
                      "[softmax]\n[cost]\ntype=sse\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "<t>");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK(nerve_model_layer_count(m) == 5);
    nerve_layer_info li;
    CHECK_OK(nerve_model_layer_info(m, 1, &li));
    CHECK(li.ndim == 3 && li.dims[0] == 1 && li.dims[1] == 1 && li.dims[2] == 1);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    const float x[4] = {0.5f, -2.0f, 1.5f, 0.25f}; /* the maximum, 1.5, passes both pools */
    memcpy(nerve_value(g, nerve_model_input(m)).data, x, sizeof x);
    nerve_tensor w = nerve_value(g, nerve_node_find(g, "connected3.weight"));
    const float wv[3] = {1, -1, 0.5f};
    memcpy(w.data, wv, sizeof wv);
    nerve_value(g, nerve_model_labels(m)).data[0] = 0;
    CHECK_OK(nerve_forward(g, nerve_model_loss(m)));
    /* scores ramp(1.5), ramp(-1.5), ramp(0.75): 1.65, -0.15, 0.825 */
    const float *s = nerve_value(g, nerve_model_output(m)).data;
    CHECK_NEAR(s[0], 1.65f, 1e-6);
    CHECK_NEAR(s[1], -0.15f, 1e-6);
    CHECK_NEAR(s[2], 0.825f, 1e-6);
    double lse = log(exp(1.65) + exp(-0.15) + exp(0.825));
    CHECK_NEAR(nerve_value(g, nerve_model_loss(m)).data[0], 2 * (lse - 1.65), 1e-5);
    nerve_model_free(m);
}

/* A [yolo] cfg trained end to end on generated scenes of two bar shapes (as the YOLO v1 test
 * of tests/test_yolo1.c): the loss through the data set's boxes, then mAP by
 * nerve_evaluate_detection and by nerve eval. */
TEST(yolo_cfg_trains_on_generated_scenes_and_reports_map)
{
    const char *dir = test_tmpdir();
    char p[4][512], out[600], cfg[4096], ckpt[600], cfgpath[600];
    const char *stems[4] = {"ytr-img", "ytr-lab", "yte-img", "yte-lab"};
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
    snprintf(out, sizeof out, "%s/yscenes", dir);
    CHECK_OK(nerve_scenes_generate(out, &o, NULL));
    /* a 4 x 4 grid of 8-pixel cells; the anchors are the bars' shapes in the input's pixels */
    snprintf(cfg, sizeof cfg,
             "[net]\nbatch=16\nchannels=1\nheight=32\nwidth=32\nlearning_rate=0.003\n"
             "optimizer=adam\nepochs=30\nseed=3\ntrain_list=%s/train.txt\ntest_list=%s/test.txt\n"
             "names=%s/classes.names\n"
             "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=32\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"
             "[yolo]\nmask=0,1\nanchors=12,5, 5,12\nclasses=2\nnum=2\n",
             out, out, out);
    nerve_set_threads(1);
    nerve_model *m = nerve_model_from_cfg(cfg, "yolo3.cfg");
    CHECK(m);
    if (!m)
        return;
    nerve_dataset train, test;
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &train, &test));
    CHECK(train.target == NERVE_TARGET_BOXES && test.n == 32);
    nerve_detection_metrics before, after;
    double ap[2];
    before.ap = NULL;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &before));
    nerve_fit_options fo;
    memset(&fo, 0, sizeof fo);
    snprintf(ckpt, sizeof ckpt, "%s/yolo3.safetensors", dir);
    fo.checkpoint = ckpt;
    CHECK_OK(nerve_fit(m, &train, &test, &fo, NULL));
    after.ap = ap;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &after));
    CHECK(after.truths == test.box_start[test.n]);
    /* 0.01 before, 0.89 after 30 epochs here */
    CHECK_MSG(after.map50 > 0.7 && after.map50 > before.map50 + 0.5,
              "mAP@0.5 %.3f before training, %.3f after", before.map50, after.map50);
    CHECK(after.map_coco <= after.map50 && after.map_coco > 0);
    CHECK(!isnan(ap[0]) && !isnan(ap[1]));
    /* nerve eval on the checkpoint gives the same figure */
    snprintf(cfgpath, sizeof cfgpath, "%s/yolo3.cfg", dir);
    FILE *f = fopen(cfgpath, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(cfg, f);
        fclose(f);
    }
    char cmd[2000], text[8192], want[100], svg[600];
    snprintf(svg, sizeof svg, "%s/yolo3-pr.svg", dir);
    remove(svg);
    snprintf(cmd, sizeof cmd, "%s eval %s --pr %s", test_nerve(), ckpt, svg);
    CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s", text);
    snprintf(want, sizeof want, "test mAP@0.5: %.4f (all-point)", after.map50);
    CHECK_MSG(strstr(text, "task: detect ([yolo] head;") && strstr(text, want), "%s\nwanted: %s", text, want);
    /* --pr: the curves of both classes, each with the AP that eval printed */
    char *plot = test_read_file(svg, NULL);
    CHECK_MSG(plot != NULL, "nerve eval --pr wrote no %s", svg);
    for (int k = 0; plot && k < 2; k++) {
        snprintf(want, sizeof want, "%s (AP %.3f)", names[k], ap[k]);
        CHECK_MSG(strstr(plot, want) != NULL, "%s: no legend '%s'", svg, want);
    }
    free(plot);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}
