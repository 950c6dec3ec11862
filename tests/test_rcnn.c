/* Faster R-CNN (src/ops/rcnn.c, src/model/model_rcnn.c, the shared matching in
 * src/core/boxes.c): smooth L1, matching and sampling by hand, both losses on hand-worked
 * cases and by finite differences, the proposals of a hand-made map, and a cfg trained end to
 * end on the generated bar scenes of tests/test_yolo.c. */
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

TEST(smooth_l1_matching_and_sampling_by_hand)
{
    float gr;
    CHECK_NEAR(nerve_smooth_l1(0.05f, 1.0f / 9, &gr), 0.5 * 0.0025 * 9, 1e-7);
    CHECK_NEAR(gr, 0.45, 1e-6);
    CHECK_NEAR(nerve_smooth_l1(-2, 1, &gr), 1.5, 1e-7);
    CHECK(gr == -1);
    /* boxes 0..4 against truths A = [0, 0, 10, 10], B = [20, 0, 30, 10] */
    const float truths[8] = {0, 0, 10, 10, 20, 0, 30, 10};
    const float boxes[20] = {0, 0, 10, 10,    /* A, IoU 1: positive */
                             1, 0, 11, 10,    /* A, IoU 90/110 = 0.818: positive */
                             5, 0, 25, 10,    /* A and B, IoU 50/250 = 0.2 each: negative */
                             2, 0, 12, 10,    /* A, IoU 80/120 = 0.667: between */
                             40, 40, 50, 50}; /* none: negative */
    int match[5];
    float iou[5];
    CHECK_OK(nerve_match_boxes(boxes, 5, truths, 2, 0.7f, 0.3f, 0, match, iou));
    CHECK(match[0] == 0 && match[1] == 0 && match[2] == -1 && match[3] == -2 && match[4] == -1);
    CHECK_NEAR(iou[1], 90.0 / 110, 1e-6);
    CHECK_NEAR(iou[2], 0.2, 1e-6);
    /* B's best box is box 2: with best_per_truth it is B's */
    CHECK_OK(nerve_match_boxes(boxes, 5, truths, 2, 0.7f, 0.3f, 1, match, NULL));
    CHECK(match[0] == 0 && match[1] == 0 && match[2] == 1 && match[3] == -2 && match[4] == -1);
    /* sampling: 6 positives, 10 negatives, batch 8 at half positive: 4 and 4 */
    int m[20], np, nn;
    for (int i = 0; i < 20; i++)
        m[i] = i < 6 ? i : i < 16 ? -1 : -2;
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    CHECK_OK(nerve_sample_matches(m, 20, 8, 0.5f, &r, &np, &nn));
    CHECK(np == 4 && nn == 4);
    int kp = 0, kn = 0;
    for (int i = 0; i < 20; i++)
        kp += m[i] >= 0, kn += m[i] == -1;
    CHECK(kp == 4 && kn == 4);
    /* too few positives: the negatives fill the batch */
    for (int i = 0; i < 20; i++)
        m[i] = i < 2 ? i : -1;
    CHECK_OK(nerve_sample_matches(m, 20, 8, 0.5f, &r, &np, &nn));
    CHECK(np == 2 && nn == 6);
}

static nerve_frcnn_config hand_config(void)
{
    nerve_frcnn_config c = nerve_frcnn_default();
    c.classes = 1, c.net_w = 32, c.net_h = 32, c.max_boxes = 2, c.rois = 3;
    return c;
}

/* One truth [1, 0, 11, 10] of class 0; anchors [0, 0, 10, 10] (IoU 0.818: positive) and
 * [20, 20, 30, 30] (negative). Objectness logits 0: ln 2 each. The positive's offsets: the
 * target is (0.1, 0, 0, 0); x predicted 0.15 (smooth L1 of 0.05 at beta 1/9: 0.01125), w 1
 * (1 - 1/18). Divided by the 2 sampled anchors. */
TEST(rpn_loss_of_two_anchors_by_hand)
{
    nerve_frcnn_config c = hand_config();
    float x[10] = {0}, anchors[8] = {0, 0, 10, 10, 20, 20, 30, 30}, target[10] = {1, 0, 11, 10, 0};
    x[1 * 2 + 0] = 0.15f, x[3 * 2 + 0] = 1.0f;
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "x", 4, (int[]){1, 5, 1, 2}, x);
    int a = leaf(g, NERVE_NODE_STATE, "anchors", 2, (int[]){2, 4}, anchors);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 10}, target);
    int l = nerve_rpn_loss(g, p, a, t, &c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    double want = (2 * log(2.0) + 0.01125 + (1 - 1.0 / 18)) / 2;
    CHECK_NEAR(nerve_value(g, l).data[0], want, 1e-6);
    CHECK_OK(nerve_backward(g, l));
    const float *dx = nerve_grad(g, p).data;
    CHECK_NEAR(dx[0], (0.5 - 1) / 2, 1e-6);   /* positive: (sigmoid(0) - 1) / 2 */
    CHECK_NEAR(dx[1], 0.5 / 2, 1e-6);         /* negative */
    CHECK_NEAR(dx[2], 0.45 / 2, 1e-5);        /* x: 0.05 * 9 / 2 */
    CHECK_NEAR(dx[6], 0.5, 1e-6);             /* w: 1 / 2 */
    CHECK(dx[3] == 0);                        /* the negative's offsets: no term */
    nerve_graph_free(g);
}

/* One class (scores background, class 0, then 4 offsets); RoI 0 is the truth (foreground,
 * CE ln 2 at scores 0, x offset 0.2 against 0: 0.2 - 1/18), RoI 1 misses it (background, CE
 * log(1 + e^-2) at scores 1, -1), RoI 2 is empty (no term). Divided by the 2 RoIs. */
TEST(fast_rcnn_loss_of_three_rois_by_hand)
{
    nerve_frcnn_config c = hand_config();
    float s[18] = {0, 0, 0.2f, 0, 0, 0, 1, -1, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5};
    float rois[12] = {1, 0, 11, 10, 20, 20, 30, 30, 0, 0, 0, 0}, target[10] = {1, 0, 11, 10, 0};
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "s", 3, (int[]){1, 3, 6}, s);
    int r = leaf(g, NERVE_NODE_STATE, "rois", 3, (int[]){1, 3, 4}, rois);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 10}, target);
    int l = nerve_fast_rcnn_loss(g, p, r, t, &c);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, l));
    double want = (log(2.0) + log(1 + exp(-2.0)) + 0.2 - 1.0 / 18) / 2;
    CHECK_NEAR(nerve_value(g, l).data[0], want, 1e-6);
    CHECK_OK(nerve_backward(g, l));
    const float *d = nerve_grad(g, p).data;
    CHECK_NEAR(d[0], 0.25, 1e-6);  /* (0.5 - 0) / 2 */
    CHECK_NEAR(d[1], -0.25, 1e-6); /* (0.5 - 1) / 2 */
    CHECK_NEAR(d[2], 0.5, 1e-6);   /* smooth L1 beyond beta: 1 / 2 */
    CHECK(d[12] == 0 && d[17] == 0);
    nerve_graph_free(g);
}

/* random maps and boxes: two images, a 3 x 4 map of 2 anchors, truths of 2 classes */
TEST(rpn_and_fast_rcnn_losses_pass_gradcheck)
{
    nerve_frcnn_config c = nerve_frcnn_default();
    c.classes = 2, c.net_w = 16, c.net_h = 12, c.max_boxes = 3, c.rois = 5;
    c.rpn_batch = 1000, c.rpn_pos_iou = 0.5f; /* every anchor sampled: the sample is fixed */
    enum { A = 2, H = 3, W = 4, PER = 5 * A * H * W, D = 2 + 1 + 8 };
    float x[2 * PER], anchors[H * W * A * 4], s[2 * 5 * D];
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (int i = 0; i < 2 * PER; i++)
        x[i] = 1.6f * nerve_rng_uniform(&r) - 0.8f;
    for (int i = 0; i < 2 * 5 * D; i++)
        s[i] = 2 * nerve_rng_uniform(&r) - 1;
    CHECK(nerve_anchors(H, W, 4, (const float[]){6}, 1, (const float[]){0.5f, 2}, 2, anchors) == H * W * A);
    const float target[2 * 15] = {1, 1, 7, 5, 0, 8, 4, 15, 11, 1, 0, 0, 0, 0, 0,
                                  2, 6, 9, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const float rois[2 * 20] = {1, 1, 7, 6, 8, 5, 15, 11, 0, 0, 5, 5, 9, 0, 16, 4, 0, 0, 0, 0,
                                2, 5, 9, 12, 3, 6, 10, 12, 10, 0, 16, 6, 0, 0, 0, 0, 0, 0, 0, 0};
    nerve_graph *g = nerve_graph_create();
    int p = leaf(g, NERVE_NODE_PARAM, "x", 4, (int[]){2, 5 * A, H, W}, x);
    int an = leaf(g, NERVE_NODE_STATE, "anchors", 2, (int[]){H * W * A, 4}, anchors);
    int sp = leaf(g, NERVE_NODE_PARAM, "s", 3, (int[]){2, 5, D}, s);
    int ro = leaf(g, NERVE_NODE_STATE, "rois", 3, (int[]){2, 5, 4}, rois);
    int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){2, 15}, target);
    int l1 = nerve_rpn_loss(g, p, an, t, &c), l2 = nerve_fast_rcnn_loss(g, sp, ro, t, &c);
    int l = nerve_add(g, l1, l2);
    CHECK_OK(l);
    CHECK_OK(nerve_graph_compile(g, 2));
    CHECK_OK(nerve_gradcheck(g, l, 1e-3f, 1e-3f, 1e-2f));
    CHECK_OK(nerve_forward(g, l));
    CHECK(nerve_value(g, l1).data[0] > 0 && nerve_value(g, l2).data[0] > 0);
    nerve_graph_free(g);
}

/* Anchors [0, 0, 10, 10] (logit 1) and [2, 0, 12, 10] (logit 2) with zero offsets overlap by
 * IoU 80/120 = 0.667: NMS at 0.5 keeps the second only, at 0.7 both in score order; the rest
 * of the 3 rows is empty. Training, with the truth [0, 0, 10, 10]: all three candidates
 * (two proposals and the truth) are foreground and a quarter of 4 RoIs is 1 of them. */
TEST(rpn_proposals_of_a_hand_made_map)
{
    nerve_frcnn_config c = hand_config();
    c.rpn_nms = 0.5f;
    float x[10] = {1, 2}, anchors[8] = {0, 0, 10, 10, 2, 0, 12, 10}, target[10] = {0, 0, 10, 10, 0};
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            c.rpn_nms = 0.7f;
        if (pass == 2)
            c.rois = 4, c.fg_fraction = 0.25f;
        nerve_graph *g = nerve_graph_create();
        int p = leaf(g, NERVE_NODE_STATE, "x", 4, (int[]){1, 5, 1, 2}, x);
        int a = leaf(g, NERVE_NODE_STATE, "anchors", 2, (int[]){2, 4}, anchors);
        int t = leaf(g, NERVE_NODE_STATE, "t", 2, (int[]){1, 10}, target);
        int pr = nerve_rpn_proposals(g, p, a, t, &c);
        CHECK_OK(pr);
        CHECK_OK(nerve_graph_compile(g, 1));
        nerve_graph_set_training(g, pass == 2);
        CHECK_OK(nerve_forward(g, pr));
        const float *o = nerve_value(g, pr).data;
        if (pass == 0) {
            const float want[12] = {2, 0, 12, 10, 0, 0, 0, 0, 0, 0, 0, 0};
            CHECK(memcmp(o, want, sizeof want) == 0);
        } else if (pass == 1) {
            const float want[12] = {2, 0, 12, 10, 0, 0, 10, 10, 0, 0, 0, 0};
            CHECK(memcmp(o, want, sizeof want) == 0);
        } else {
            /* one foreground row, then no background (there is none): empty rows */
            CHECK(o[2] > o[0] && nerve_box_iou(o, target) >= 0.5f);
            for (int k = 4; k < 16; k++)
                CHECK(o[k] == 0);
        }
        nerve_graph_free(g);
    }
}

TEST(frcnn_cfg_errors_name_the_line)
{
    const char *head = "[net]\nwidth=32\nheight=32\nchannels=1\n"
                       "[convolutional]\nfilters=8\nsize=3\nstride=8\npad=1\n";
    const char *bad[] = {
        /* 5*9 channels needed */
        "[convolutional]\nfilters=40\nsize=1\n[rpn]\nsizes=8,12,16\n",
        /* an [rpn] with no head */
        "[convolutional]\nfilters=5\nsize=1\n[rpn]\nsizes=8\nratios=1\n",
        /* [roi_pool] without [rpn] */
        "[roi_pool]\nfrom=-1\n",
        /* [fast_rcnn] of the wrong width */
        "[convolutional]\nfilters=5\nsize=1\n[rpn]\nsizes=8\nratios=1\nrois=4\n"
        "[roi_pool]\nfrom=-3\nsize=2\n[connected]\noutput=10\n[fast_rcnn]\nclasses=2\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cfg[1024];
        snprintf(cfg, sizeof cfg, "%s%s", head, bad[i]);
        nerve_model *m = nerve_model_from_cfg(cfg, "<t>");
        CHECK_MSG(m == NULL, "cfg %zu built", i);
        CHECK_MSG(strstr(nerve_last_error(), "<t>:") != NULL, "%s", nerve_last_error());
        nerve_model_free(m);
    }
    /* the good one: [connected] runs per RoI (4 RoIs of 8 x 2 x 2 values) */
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s%s", head,
             "[convolutional]\nfilters=5\nsize=1\n[rpn]\nsizes=8\nratios=1\nrois=4\n"
             "[roi_pool]\nfrom=-3\nsize=2\n[connected]\noutput=11\n[fast_rcnn]\nclasses=2\n");
    nerve_model *m = nerve_model_from_cfg(cfg, "<t>");
    CHECK_MSG(m != NULL, "%s", nerve_last_error());
    nerve_frcnn_config fc;
    CHECK(nerve_model_frcnn(m, &fc) == 1 && fc.classes == 2 && fc.rois == 4);
    nerve_graph *g = nerve_model_graph(m);
    CHECK(nerve_value(g, nerve_node_find(g, "connected5.weight")).ndim == 2 &&
          nerve_value(g, nerve_node_find(g, "connected5.weight")).dims[1] == 32);
    nerve_model_free(m);
}

/* A Faster R-CNN cfg trained end to end on generated scenes of two bar shapes (those of
 * tests/test_yolo.c): mAP by nerve_evaluate_detection and by nerve eval. */
TEST(frcnn_cfg_trains_on_generated_scenes_and_reports_map)
{
    const char *dir = test_tmpdir();
    char p[4][512], out[600], cfg[4096], ckpt[600], cfgpath[600];
    const char *stems[4] = {"ftr-img", "ftr-lab", "fte-img", "fte-lab"};
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
    snprintf(out, sizeof out, "%s/fscenes", dir);
    CHECK_OK(nerve_scenes_generate(out, &o, NULL));
    /* an 8 x 8 map of 4-pixel cells, 3 sizes x 3 ratios of anchors at each; RoIAlign of 4 x 4 */
    snprintf(cfg, sizeof cfg,
             "[net]\nbatch=16\nchannels=1\nheight=32\nwidth=32\nlearning_rate=0.005\n"
             "optimizer=adam\npolicy=cosine\nepochs=12\nseed=3\ntrain_list=%s/train.txt\ntest_list=%s/test.txt\n"
             "names=%s/classes.names\n"
             "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=32\nsize=3\npad=1\nactivation=leaky\n"
             "[convolutional]\nfilters=32\nsize=3\npad=1\nactivation=relu\n"
             "[convolutional]\nfilters=45\nsize=1\nactivation=linear\n"
             "[rpn]\nsizes=8,12,16\nratios=0.5,1,2\npre_nms=576\npost_nms=32\nrois=16\nbatch=64\n"
             "[roi_align]\nfrom=-4\nsize=4\n"
             "[connected]\noutput=128\nactivation=relu\n"
             "[connected]\noutput=11\nactivation=linear\n"
             "[fast_rcnn]\nclasses=2\n",
             out, out, out);
    nerve_set_threads(1);
    nerve_model *m = nerve_model_from_cfg(cfg, "frcnn.cfg");
    CHECK_MSG(m != NULL, "%s", nerve_last_error());
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
    snprintf(ckpt, sizeof ckpt, "%s/frcnn.safetensors", dir);
    fo.checkpoint = ckpt;
    CHECK_OK(nerve_fit(m, &train, &test, &fo, NULL));
    after.ap = ap;
    CHECK_OK(nerve_evaluate_detection(m, &test, 0.005f, 0.45f, &after));
    CHECK(after.truths == test.box_start[test.n]);
    /* 0.00 before, 0.94 after 12 epochs here */
    CHECK_MSG(after.map50 > 0.7 && after.map50 > before.map50 + 0.5,
              "mAP@0.5 %.3f before training, %.3f after", before.map50, after.map50);
    CHECK(after.map_coco <= after.map50 && after.map_coco > 0);
    CHECK(!isnan(ap[0]) && !isnan(ap[1]));
    snprintf(cfgpath, sizeof cfgpath, "%s/frcnn.cfg", dir);
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
    CHECK_MSG(strstr(text, "task: detect ([fast_rcnn] head;") && strstr(text, want), "%s\nwanted: %s",
              text, want);
    /* nerve detect on a test scene */
    snprintf(cmd, sizeof cmd, "%s detect %s %s/images/test/000000.png --out %s/fpics", test_nerve(),
             ckpt, out, dir);
    CHECK_MSG(test_run(cmd, text, sizeof text) == 0 && strstr(text, "box "), "%s", text);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_model_free(m);
}
