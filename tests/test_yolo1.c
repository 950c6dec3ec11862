/* YOLO v1 (src/ops/detection.c, src/model/model_detect.c, src/train/detect_eval.c): the
 * loss on a hand-worked cell, its gradient by finite differences, targets from boxes,
 * decoding, and a [detection] cfg that trains on a generated list data set and is measured
 * with mAP. */
#include "test.h"

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

TEST(yolo1_loss_of_one_cell_by_hand)
{
    /* side 1, one box, two classes; class scores 0.8, 0.1, confidence 0.6, box centred with
     * sqrt(w) = sqrt(h) = 0.7; the truth: class 0, centred, 0.49 x 0.49. The box is exact, so
     * IoU 1 (rescore target 1): L = (0.8-1)² + 0.1² + (0.6-1)² = 0.21 */
    nerve_yolo1_config c = nerve_yolo1_default();
    c.side = 1, c.num = 1, c.classes = 2;
    const float pred[7] = {0.8f, 0.1f, 0.6f, 0.5f, 0.5f, 0.7f, 0.7f};
    const float target[6] = {1, 0.5f, 0.5f, 0.49f, 0.49f, 0};
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "p", 2, (int[]){1, 7}, pred);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 6}, target);
    int l = nerve_yolo1_loss(g, p, t, &c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    CHECK_NEAR(nerve_value(g, l).data[0], 0.21, 1e-6);
    CHECK_OK(nerve_backward(g, l));
    const float want[7] = {2 * -0.2f, 2 * 0.1f, 2 * -0.4f, 0, 0, 0, 0};
    CHECK_ARRAY_NEAR(nerve_grad(g, p).data, want, 7, 1e-6);
    nerve_graph_free(g);
    /* an empty cell: only the no-object term, 0.5 x 0.6² */
    g = nerve_graph_create();
    const float empty[6] = {0, 0, 0, 0, 0, 0};
    p = leaf(g, NERVE_NODE_PARAM, "p", 2, (int[]){1, 7}, pred);
    t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 6}, empty);
    l = nerve_yolo1_loss(g, p, t, &c);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    CHECK_NEAR(nerve_value(g, l).data[0], 0.5 * 0.36, 1e-6);
    nerve_graph_free(g);
}

TEST(yolo1_loss_passes_gradcheck)
{
    /* two samples, a 2 x 2 grid of 2 boxes and 3 classes; rescore off (with it the target
     * moves with the prediction, which the gradient treats as a constant, as darknet does) */
    nerve_yolo1_config c = nerve_yolo1_default();
    c.side = 2, c.num = 2, c.classes = 3, c.rescore = 0;
    enum { PER = 4 * (3 + 10) };
    float pred[2 * PER], target[2 * 24];
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    for (int i = 0; i < 2 * PER; i++)
        pred[i] = 0.2f + 0.6f * nerve_rng_uniform(&r);
    memset(target, 0, sizeof target);
    const float cells[3][7] = {{0, 0, 0.3f, 0.6f, 0.4f, 0.3f, 2}, {0, 3, 0.5f, 0.5f, 0.2f, 0.5f, 0},
                               {1, 1, 0.9f, 0.1f, 0.6f, 0.6f, 1}};
    for (int k = 0; k < 3; k++) {
        float *t = target + (int)cells[k][0] * 24 + (int)cells[k][1] * 6;
        t[0] = 1;
        memcpy(t + 1, &cells[k][2], 5 * sizeof(float));
    }
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "p", 2, (int[]){2, PER}, pred);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){2, 24}, target);
    int l = nerve_yolo1_loss(g, p, t, &c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_gradcheck(g, l, 1e-3f, 1e-3f, 1e-2f));
    c.sqrt = 0;
    nerve_graph_free(g);
    g = nerve_graph_create();
    p = leaf(g, NERVE_NODE_PARAM, "p", 2, (int[]){2, PER}, pred);
    t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){2, 24}, target);
    l = nerve_yolo1_loss(g, p, t, &c);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_gradcheck(g, l, 1e-3f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

TEST(yolo1_targets_from_boxes_and_decoding_by_hand)
{
    nerve_yolo1_config c = nerve_yolo1_default();
    c.side = 2, c.num = 1, c.classes = 2;
    /* a box centred at (0.75, 0.25) falls in cell (row 0, col 1) */
    nerve_box b[2] = {{1, 0.75f, 0.25f, 0.5f, 0.4f}, {0, 0.1f, 0.9f, 0.2f, 0.2f}};
    float t[24];
    CHECK_OK(nerve_yolo1_target(b, 2, &c, t));
    const float cell1[6] = {1, 0.5f, 0.5f, 0.5f, 0.4f, 1}, cell2[6] = {1, 0.2f, 0.8f, 0.2f, 0.2f, 0};
    CHECK_ARRAY_NEAR(t + 6, cell1, 6, 1e-6);
    CHECK_ARRAY_NEAR(t + 12, cell2, 6, 1e-6);
    CHECK(t[0] == 0 && t[18] == 0);
    nerve_box bad = {2, 0.5f, 0.5f, 0.1f, 0.1f};
    CHECK(nerve_yolo1_target(&bad, 1, &c, t) == NERVE_ERR_ARG);
    /* decoding: cell 1 predicts class 1 with score 0.9 x 0.8, a box (0.5, 0.5) in the cell,
     * sqrt size 0.5: 0.25 x 0.25 of a 100 x 100 image centred at (75, 25) */
    float pred[4 * 2 + 4 + 16];
    memset(pred, 0, sizeof pred);
    pred[1 * 2 + 1] = 0.8f;           /* class scores [4][2] */
    pred[8 + 1] = 0.9f;               /* confidences [4][1] */
    float *bx = pred + 12 + 1 * 4;    /* boxes [4][1][4] */
    bx[0] = 0.5f, bx[1] = 0.5f, bx[2] = 0.5f, bx[3] = 0.5f;
    nerve_detection d[8];
    int n = nerve_yolo1_decode(pred, &c, 100, 100, 7, 0.1f, 0.5f, d, 8);
    CHECK(n == 1);
    CHECK(d[0].image == 7 && d[0].cls == 1);
    CHECK_NEAR(d[0].score, 0.72, 1e-6);
    const float want[4] = {62.5f, 12.5f, 87.5f, 37.5f};
    CHECK_ARRAY_NEAR(d[0].box, want, 4, 1e-4);
    CHECK(nerve_yolo1_decode(pred, &c, 100, 100, 7, 0.8f, 0.5f, d, 8) == 0);
}

TEST(yolo1_cfg_trains_on_generated_scenes_and_reports_map)
{
    const char *dir = test_tmpdir();
    char p[4][512], out[600], cfg[4096], ckpt[600];
    const char *stems[4] = {"tr-img", "tr-lab", "te-img", "te-lab"};
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
    snprintf(out, sizeof out, "%s/scenes", dir);
    CHECK_OK(nerve_scenes_generate(out, &o, NULL));
    snprintf(cfg, sizeof cfg,
             "[net]\nbatch=16\nchannels=1\nheight=32\nwidth=32\nlearning_rate=0.003\n"
             "optimizer=adam\nepochs=40\nseed=3\ntrain_list=%s/train.txt\ntest_list=%s/test.txt\n"
             "names=%s/classes.names\n"
             "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[connected]\noutput=192\nactivation=linear\n"
             "[detection]\nclasses=2\ncoords=4\nrescore=1\nside=4\nnum=2\nsoftmax=0\nsqrt=1\n"
             "jitter=0\nobject_scale=1\nnoobject_scale=.5\nclass_scale=1\ncoord_scale=5\n",
             out, out, out);
    nerve_set_threads(1); /* a small model: one thread is the fastest, and the figures fixed */
    nerve_model *m = nerve_model_from_cfg(cfg, "yolo.cfg");
    CHECK(m);
    nerve_yolo1_config yc;
    CHECK(nerve_model_yolo1(m, &yc) == 1 && yc.side == 4 && yc.num == 2 && yc.classes == 2);
    nerve_head_info h = nerve_model_head(m);
    CHECK(h.task == NERVE_TASK_DETECT && h.target == NERVE_TARGET_BOXES && h.feed);
    nerve_dataset train, test;
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &train, &test));
    CHECK(train.target == NERVE_TARGET_BOXES && test.n == 32);
    nerve_detection_metrics before, after;
    double ap[2];
    before.ap = NULL;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &before));
    nerve_fit_options fo;
    memset(&fo, 0, sizeof fo);
    snprintf(ckpt, sizeof ckpt, "%s/yolo.safetensors", dir);
    fo.checkpoint = ckpt;
    CHECK_OK(nerve_fit(m, &train, &test, &fo, NULL));
    after.ap = ap;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &after));
    CHECK(after.truths == test.box_start[test.n]);
    /* two easy classes, 40 short epochs (0.50 here): from nothing to a detector that finds
     * most objects; the detection issue's figures on Fashion-MNIST scenes are in make bench */
    CHECK_MSG(after.map50 > 0.35 && after.map50 > before.map50 + 0.25,
              "mAP@0.5 %.3f before training, %.3f after", before.map50, after.map50);
    CHECK(after.map_coco <= after.map50 && after.map_coco > 0);
    CHECK(!isnan(ap[0]) && !isnan(ap[1]));
    /* the checkpoint rebuilds the head */
    nerve_model *back = nerve_model_load(ckpt);
    CHECK(back);
    nerve_detection_metrics again;
    again.ap = NULL;
    CHECK_OK(nerve_evaluate_detection(back, &test, 0.005f, 0.45f, &again));
    CHECK_NEAR(again.map50, after.map50, 1e-9);
    nerve_model_free(back);
    /* nerve detect on the first test scene: the boxes of the library's decoding, in the
     * image's pixels, printed and drawn (the 32x32 scene scaled 16x to 512x512) */
    char cmd[3000], text[8192], img[700], pic[700];
    snprintf(img, sizeof img, "%s/images/test/000000.png", out);
    snprintf(cmd, sizeof cmd, "%s detect %s %s --thresh 0.2 --out %s/pics", test_nerve(), ckpt, img, dir);
    CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s", text);
    float *pred = malloc(192 * sizeof *pred);
    nerve_dataset one;
    CHECK(pred && nerve_dataset_gather(&one, &test, (const int[]){0}, 1) == NERVE_OK);
    CHECK_OK(nerve_predict_outputs(m, &one, pred, NULL));
    nerve_detection det[16];
    int n = nerve_yolo1_decode(pred, &yc, 32, 32, 0, 0.2f, 0.45f, det, 16);
    CHECK(n >= 1);
    char want[200];
    snprintf(want, sizeof want, "000000.png: %d object%s", n, n == 1 ? "" : "s");
    CHECK_MSG(strstr(text, want) != NULL, "%s (wanted '%s')", text, want);
    snprintf(want, sizeof want, "%.3f  box %.1f %.1f %.1f %.1f", (double)det[0].score, (double)det[0].box[0],
             (double)det[0].box[1], (double)det[0].box[2], (double)det[0].box[3]);
    CHECK_MSG(strstr(text, want) != NULL, "%s (wanted '%s')", text, want);
    nerve_image pim;
    snprintf(pic, sizeof pic, "%s/pics/000000.png", dir);
    CHECK_OK(nerve_image_load(pic, 3, &pim));
    CHECK(pim.w == 512 && pim.h == 512);
    nerve_image_free(&pim);
    nerve_dataset_free(&one);
    free(pred);
    /* a bad option value is a usage error */
    snprintf(cmd, sizeof cmd, "%s detect %s %s --nms=2", test_nerve(), ckpt, img);
    CHECK(test_run(cmd, text, sizeof text) == 2 && strstr(text, "--nms needs a number in [0, 1]"));
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}

TEST(yolo1_cfg_errors_name_the_line)
{
    const char *cfg = "[net]\nbatch=2\nchannels=1\nheight=8\nwidth=8\n"
                      "[connected]\noutput=10\n"
                      "[detection]\nclasses=2\nside=2\nnum=1\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "d.cfg");
    CHECK(m == NULL);
    CHECK(strstr(nerve_last_error(), "d.cfg:8") != NULL);
    CHECK(strstr(nerve_last_error(), "= 28 values per sample, but the layer before gives 10") != NULL);
    const char *soft = "[net]\nbatch=2\nchannels=1\nheight=8\nwidth=8\n"
                       "[connected]\noutput=28\n"
                       "[detection]\nclasses=2\nside=2\nnum=1\nsoftmax=1\n";
    CHECK(nerve_model_from_cfg(soft, "d.cfg") == NULL);
    CHECK(strstr(nerve_last_error(), "softmax=1") != NULL);
}
