/* Sliding-window detection (src/apps/sliding.c): window shapes parsed, training crops
 * labelled by their overlap with the objects, and a small classifier trained on the crops of
 * generated bar scenes, then run over the windows of test scenes: mAP by the shared code. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(sliding_window_shapes_parse_and_refuse)
{
    nerve_sliding_options o = nerve_sliding_default();
    CHECK_OK(nerve_sliding_parse_shapes("10x4,4x10", &o));
    CHECK(o.n_shapes == 2 && o.shapes[0][0] == 10 && o.shapes[0][1] == 4 && o.shapes[1][0] == 4);
    const char *bad[] = {"", "10", "10x", "x4", "10x4,", "0x4", "10x4;4x10", "10x-4", "5000x4", "10x4,0x4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = nerve_sliding_default();
        CHECK_MSG(nerve_sliding_parse_shapes(bad[i], &o) == NERVE_ERR_ARG, "'%s' accepted", bad[i]);
        CHECK(o.n_shapes == 1 && o.shapes[0][0] == 28 && o.shapes[0][1] == 28);
    }
}

/* Bar scenes: 12-pixel items holding a 10 x 4 bar ("wide", class 0) or 4 x 10 ("tall"). */
static int bar_scenes(const char *tag, nerve_dataset *train, nerve_dataset *test)
{
    const char *dir = test_tmpdir();
    char p[4][512], out[600], list[700];
    const char *stems[4] = {"str-img", "str-lab", "ste-img", "ste-lab"};
    for (int k = 0; k < 4; k++)
        snprintf(p[k], sizeof p[k], "%s/%s-%s", dir, tag, stems[k]);
    test_write_bar_items(p[0], p[1], 8);
    test_write_bar_items(p[2], p[3], 8);
    nerve_scenes_options o = nerve_scenes_default();
    o.canvas = 32, o.n_train = 160, o.n_test = 24, o.min_objects = 1, o.max_objects = 2;
    o.min_size = 12, o.max_size = 12, o.max_overlap = 0;
    o.train_images = p[0], o.train_labels = p[1], o.test_images = p[2], o.test_labels = p[3];
    const char *names[2] = {"wide", "tall"};
    o.names = names, o.n_names = 2;
    snprintf(out, sizeof out, "%s/%s-scenes", dir, tag);
    int st = nerve_scenes_generate(out, &o, NULL);
    nerve_image_options io = {1, 0, 0, NERVE_RESIZE_NONE, 1.0f};
    snprintf(list, sizeof list, "%s/train.txt", out);
    if (!st)
        st = nerve_dataset_load_list(train, list, names, 2, &io);
    snprintf(list, sizeof list, "%s/test.txt", out);
    if (!st)
        st = nerve_dataset_load_list(test, list, names, 2, &io);
    return st;
}

TEST(sliding_windows_train_on_bar_scenes_and_report_map)
{
    nerve_dataset train = {0}, test = {0}, crops = {0};
    CHECK_OK(bar_scenes("slide", &train, &test));
    if (train.n != 160 || test.n != 24)
        return;
    nerve_sliding_options o = nerve_sliding_default();
    CHECK_OK(nerve_sliding_parse_shapes("10x4,4x10", &o));
    o.stride = 2, o.crop = 12, o.context = 0.25f, o.positives = 3, o.negatives = 6;
    CHECK_OK(nerve_sliding_crops(&train, 2, &o, &crops));
    /* every object gives positives (a window on the 2-pixel grid fits a bar within a pixel),
     * and every scene its background windows */
    int count[3] = {0, 0, 0};
    for (int i = 0; i < crops.n; i++)
        count[(int)crops.y[i]]++;
    CHECK_MSG(count[0] > 100 && count[1] > 100 && count[2] == 6 * train.n, "crops: %d wide, %d tall, %d "
              "background", count[0], count[1], count[2]);
    CHECK(crops.n_classes == 3 && crops.n_names == 3 && !strcmp(crops.names[2], "background"));
    CHECK(crops.dims[0] == 1 && crops.dims[1] == 12 && crops.dims[2] == 12);
    /* a tall window on a wide bar is not a positive: the window of IoU >= 0.6 has its shape */
    const char *cfg = "[net]\nbatch=32\nchannels=1\nheight=12\nwidth=12\nlearning_rate=0.005\n"
                      "optimizer=adam\nepochs=6\nseed=2\n"
                      "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
                      "[maxpool]\nsize=2\nstride=2\n"
                      "[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=relu\n"
                      "[maxpool]\nsize=2\nstride=2\n"
                      "[connected]\noutput=3\nactivation=linear\n[softmax]\n";
    nerve_set_threads(1);
    nerve_model *m = nerve_model_from_cfg(cfg, "window.cfg");
    CHECK(m != NULL);
    if (!m)
        goto done;
    /* a classifier that does not give background last is refused */
    nerve_detection_metrics before, after;
    double ap[2];
    before.ap = NULL, after.ap = ap;
    CHECK(nerve_evaluate_sliding(m, &test, 3, &o, &before, NULL) == NERVE_ERR_SHAPE);
    o.nms_iou = 0.3f, o.thresh = 0.005f;
    CHECK_OK(nerve_evaluate_sliding(m, &test, 2, &o, &before, NULL));
    nerve_fit_options fo;
    memset(&fo, 0, sizeof fo);
    CHECK_OK(nerve_fit(m, &crops, NULL, &fo, NULL));
    char svg[600];
    snprintf(svg, sizeof svg, "%s/slide-pr.svg", test_tmpdir());
    CHECK_OK(nerve_evaluate_sliding(m, &test, 2, &o, &after, svg));
    CHECK(after.truths == test.box_start[test.n]);
    /* 0.02 before, 0.99 after here */
    CHECK_MSG(after.map50 > 0.8 && after.map50 > before.map50 + 0.4, "mAP@0.5 %.3f before training, %.3f after",
              before.map50, after.map50);
    CHECK(after.map_coco <= after.map50 && !isnan(ap[0]) && !isnan(ap[1]));
    /* the heat map: the probability of each class where its windows are centred */
    float heat[2 * 32 * 32];
    nerve_detection det[100];
    o.thresh = 0.5f;
    int n = nerve_sliding_detect(m, test.x, 1, 32, 32, 2, &o, heat, det, 100);
    CHECK(n >= 1);
    for (int k = 0; k < n && k < 100; k++) {
        int cx = (int)((det[k].box[0] + det[k].box[2]) / 2), cy = (int)((det[k].box[1] + det[k].box[3]) / 2);
        CHECK_MSG(heat[(det[k].cls * 32 + cy) * 32 + cx] >= det[k].score - 1e-6f,
                  "heat %.3f below detection %.3f at %d,%d", heat[(det[k].cls * 32 + cy) * 32 + cx],
                  det[k].score, cx, cy);
    }
    char *plot = test_read_file(svg, NULL);
    CHECK(plot && strstr(plot, "wide (AP ") && strstr(plot, "tall (AP "));
    free(plot);
done:
    nerve_model_free(m);
    nerve_dataset_free(&crops);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
}

TEST(detection_example_cfgs_build)
{
    /* examples/detection/ (docs/detection.md), built without their data: the YOLO detector's
     * head on the 8 x 8 grid with 4 anchors of 10 classes, and the sliding-window classifier
     * of 10 classes and background on 32 x 32 windows */
    char *text = test_read_file("examples/detection/yolo_fashion.cfg", NULL);
    nerve_model *m = text ? nerve_model_from_cfg(text, "examples/detection/yolo_fashion.cfg") : NULL;
    free(text);
    CHECK_MSG(m != NULL, "yolo_fashion.cfg: %s", nerve_last_error());
    nerve_yolo_config heads[2];
    if (m) {
        CHECK(nerve_model_yolo_heads(m, heads, NULL, 2) == 1 && heads[0].classes == 10);
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
        CHECK_MSG(nd == 4 && dims[1] == 60 && dims[2] == 8 && dims[3] == 8, "yolo_fashion.cfg: output "
                  "[%d, %d, %d]", dims[1], dims[2], dims[3]);
    }
    nerve_model_free(m);
    text = test_read_file("examples/detection/window_classifier.cfg", NULL);
    m = text ? nerve_model_from_cfg(text, "examples/detection/window_classifier.cfg") : NULL;
    free(text);
    CHECK_MSG(m != NULL, "window_classifier.cfg: %s", nerve_last_error());
    if (m) {
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
        CHECK(nd == 2 && dims[1] == 11 && nerve_model_config(m)->dims[1] == 32);
    }
    nerve_model_free(m);
}
