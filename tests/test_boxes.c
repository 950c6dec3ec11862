/* Box geometry, suppression, coding and anchors (src/core/boxes.c) and the detection
 * metrics (src/train/map.c): hand-worked cases, and torchvision's box_iou,
 * generalized_box_iou, nms and batched_nms on 10,000 random pairs and 400 random
 * suppression problems (tests/data/boxes_reference.h, from tests/gen_boxes_reference.py). */
#include "test.h"

#include "data/boxes_reference.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the generator of tests/gen_boxes_reference.py: xorshift32, 24-bit uniforms */
static uint32_t ref_state;
static float ref_next(void)
{
    uint32_t x = ref_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ref_state = x;
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}
static void ref_box(float span, float *b)
{
    float x1 = ref_next() * span;
    float y1 = ref_next() * span;
    float x2 = x1 + (1.0f + ref_next() * span);
    float y2 = y1 + (1.0f + ref_next() * span);
    b[0] = x1, b[1] = y1, b[2] = x2, b[3] = y2;
}

TEST(boxes_iou_and_giou_by_hand)
{
    const float a[4] = {0, 0, 10, 10}, b[4] = {5, 0, 15, 10}, c[4] = {20, 20, 30, 30};
    CHECK_NEAR(nerve_box_iou(a, a), 1.0, 0);
    CHECK_NEAR(nerve_box_iou(a, b), 50.0 / 150.0, 1e-7); /* overlap 5 x 10 */
    CHECK_NEAR(nerve_box_iou(a, c), 0.0, 0);
    /* GIoU: hull of a and c is 30 x 30 = 900, union 200: 0 - 700/900 */
    CHECK_NEAR(nerve_box_giou(a, c), -700.0 / 900.0, 1e-7);
    CHECK_NEAR(nerve_box_giou(a, b), 50.0 / 150.0, 1e-7); /* the hull is the union */
    const float point[4] = {3, 3, 3, 3};
    CHECK(nerve_box_iou(point, point) == 0.0f); /* empty union: 0, not NaN */
    nerve_box y = {0, 0.5f, 0.25f, 0.5f, 0.5f};
    float corners[4];
    nerve_box_corners(&y, 100, 40, corners);
    const float want[4] = {25, 0, 75, 20};
    CHECK_ARRAY_NEAR(corners, want, 4, 1e-5);
}

TEST(boxes_iou_and_giou_agree_with_torchvision_on_10000_random_pairs)
{
    static float a[BOXREF_PAIRS][4], b[BOXREF_PAIRS][4];
    ref_state = BOXREF_SEED;
    for (int i = 0; i < BOXREF_PAIRS; i++)
        ref_box(30, a[i]);
    for (int i = 0; i < BOXREF_PAIRS; i++)
        ref_box(30, b[i]);
    int overlapping = 0;
    for (int i = 0; i < BOXREF_PAIRS; i++) {
        float iou = nerve_box_iou(a[i], b[i]), giou = nerve_box_giou(a[i], b[i]);
        CHECK_MSG(fabs(iou - boxref_iou[i]) <= 1e-6, "pair %d: IoU %.9g, torchvision %.9g", i,
                  iou, boxref_iou[i]);
        CHECK_MSG(fabs(giou - boxref_giou[i]) <= 1e-6, "pair %d: GIoU %.9g, torchvision %.9g", i,
                  giou, boxref_giou[i]);
        overlapping += iou > 0;
    }
    CHECK(overlapping > BOXREF_PAIRS / 4); /* the cases exercise overlaps, not only misses */
}

TEST(boxes_nms_agrees_with_torchvision_on_400_random_problems)
{
    ref_state = BOXREF_SEED;
    float skip[4];
    for (int i = 0; i < 2 * BOXREF_PAIRS; i++)
        ref_box(30, skip);
    float boxes[50 * 4], scores[50];
    int classes[50], keep[50];
    int suppressed = 0;
    for (int c = 0; c < BOXREF_NMS; c++) {
        int n = 2 + (int)(ref_next() * 48);
        float thr = (float[]){0.3f, 0.5f, 0.7f}[c % 3];
        int per_class = c % 2;
        for (int i = 0; i < n; i++)
            ref_box(60, boxes + 4 * i);
        for (int i = 0; i < n; i++)
            scores[i] = ref_next();
        for (int i = 0; i < n; i++)
            classes[i] = (int)(ref_next() * 3);
        int nk = -1;
        CHECK_OK(nerve_nms(boxes, scores, per_class ? classes : NULL, n, thr, keep, &nk));
        CHECK_MSG(nk == boxref_keep_count[c], "problem %d: kept %d, torchvision %d", c, nk,
                  boxref_keep_count[c]);
        for (int i = 0; i < nk; i++)
            CHECK_MSG(keep[i] == boxref_keep[boxref_keep_start[c] + i],
                      "problem %d: keep[%d] = %d, torchvision %d", c, i, keep[i],
                      boxref_keep[boxref_keep_start[c] + i]);
        suppressed += n - nk;
    }
    CHECK(suppressed > 100);
}

TEST(boxes_nms_by_hand_ties_classes_and_errors)
{
    /* box 1 overlaps box 0 with IoU 90/110 = 0.818; box 3 is box 0 again, at the same score */
    const float boxes[] = {0, 0, 10, 10,  /* 0 */
                           1, 0, 11, 10,  /* 1: IoU 90/110 with 0 */
                           20, 0, 30, 10, /* 2: apart */
                           0, 0, 10, 10}; /* 3: same as 0, equal score */
    const float scores[] = {0.9f, 0.95f, 0.1f, 0.9f};
    int keep[4], nk;
    CHECK_OK(nerve_nms(boxes, scores, NULL, 4, 0.5f, keep, &nk));
    CHECK(nk == 2 && keep[0] == 1 && keep[1] == 2);
    CHECK_OK(nerve_nms(boxes, scores, NULL, 4, 0.85f, keep, &nk)); /* 90/110 = 0.818 stays */
    CHECK(nk == 3 && keep[0] == 1 && keep[1] == 0 && keep[2] == 2); /* 3 ties 0, comes later */
    const int classes[] = {0, 1, 0, 0};
    CHECK_OK(nerve_nms(boxes, scores, classes, 4, 0.5f, keep, &nk));
    CHECK(nk == 3 && keep[0] == 1 && keep[1] == 0 && keep[2] == 2);
    const float bad[] = {0.9f, NAN, 0.1f, 0.2f};
    CHECK(nerve_nms(boxes, bad, NULL, 4, 0.5f, keep, &nk) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "box 1") != NULL);
    CHECK_OK(nerve_nms(NULL, NULL, NULL, 0, 0.5f, NULL, &nk));
    CHECK(nk == 0);
}

TEST(boxes_coding_round_trips_and_matches_the_course_formulas)
{
    const float p[4] = {10, 20, 30, 60}; /* centre 20, 40; size 20 x 40 */
    const float g[4] = {15, 10, 55, 50}; /* centre 35, 30; size 40 x 40 */
    float t[4], back[4];
    CHECK_OK(nerve_box_encode(p, g, NULL, t));
    const float want[4] = {15.0f / 20, -10.0f / 40, logf(2.0f), 0.0f};
    CHECK_ARRAY_NEAR(t, want, 4, 1e-6);
    nerve_box_decode(p, t, NULL, back);
    CHECK_ARRAY_NEAR(back, g, 4, 1e-4);
    const float w[4] = {10, 10, 5, 5};
    CHECK_OK(nerve_box_encode(p, g, w, t));
    CHECK_NEAR(t[0], 7.5, 1e-5);
    CHECK_NEAR(t[2], 5 * log(2.0), 1e-5);
    nerve_box_decode(p, t, w, back);
    CHECK_ARRAY_NEAR(back, g, 4, 1e-4);
    const float flat[4] = {0, 0, 10, 0};
    CHECK(nerve_box_encode(flat, g, NULL, t) == NERVE_ERR_ARG);
    const float wild[4] = {0, 0, 100, 100}; /* a size step of 100: clamped at log(1000/16) */
    nerve_box_decode(p, wild, NULL, back);
    CHECK(isfinite(back[2]) && back[2] - back[0] <= 20 * 1000.0 / 16 + 1);
}

TEST(boxes_anchors_three_sizes_by_three_ratios)
{
    const float sizes[] = {128, 256, 512}, ratios[] = {0.5f, 1, 2};
    int n = nerve_anchors(2, 3, 16, sizes, 3, ratios, 3, NULL);
    CHECK(n == 2 * 3 * 9);
    float *a = malloc((size_t)n * 4 * sizeof *a);
    CHECK(a);
    CHECK(nerve_anchors(2, 3, 16, sizes, 3, ratios, 3, a) == n);
    /* the first cell's centre is (8, 8); size 128, ratio 0.5: w = 128 / sqrt(.5), h = 128 sqrt(.5) */
    double w = 128 / sqrt(0.5), h = 128 * sqrt(0.5);
    CHECK_NEAR(a[0], 8 - w / 2, 1e-3);
    CHECK_NEAR(a[1], 8 - h / 2, 1e-3);
    CHECK_NEAR(a[2], 8 + w / 2, 1e-3);
    CHECK_NEAR(a[3], 8 + h / 2, 1e-3);
    for (int i = 0; i < n; i++) { /* every anchor has area size² and ratio h / w */
        int k = i % 9;
        double aw = a[4 * i + 2] - a[4 * i], ah = a[4 * i + 3] - a[4 * i + 1];
        CHECK_NEAR(aw * ah / (sizes[k / 3] * sizes[k / 3]), 1.0, 1e-4);
        CHECK_NEAR(ah / aw, ratios[k % 3], 1e-4);
    }
    /* the last cell (row 1, column 2) is centred on (40, 24) */
    CHECK_NEAR((a[4 * (n - 1)] + a[4 * (n - 1) + 2]) / 2, 40, 1e-3);
    CHECK_NEAR((a[4 * (n - 1) + 1] + a[4 * (n - 1) + 3]) / 2, 24, 1e-3);
    free(a);
    const float zero[] = {0};
    CHECK(nerve_anchors(1, 1, 16, zero, 1, ratios, 1, NULL) == NERVE_ERR_ARG);
}

/* One class, two images, three truths; five detections (d2 is a duplicate of d1, d4 a
 * miss). In score order: TP, FP, TP (IoU exactly 0.5), FP, TP:
 *   recall    1/3  1/3  2/3  2/3  1
 *   precision 1    1/2  2/3  1/2  3/5
 * VOC 2007, 11 points: recall >= 0..0.3 -> 1 (4 points), 0.4..0.6 -> 2/3 (3), 0.7..1 -> 0.6
 * (4): (4 + 2 + 2.4) / 11. All-point: 1/3 * 1 + 1/3 * 2/3 + 1/3 * 0.6 = 34/45. COCO, 101
 * points: 34 x 1 + 33 x 2/3 + 34 x 0.6 = 76.4, / 101. */
static const nerve_detection TRUTHS[] = {
    {0, 0, 0, {0, 0, 10, 10}, 0},
    {0, 0, 0, {20, 20, 30, 30}, 0},
    {1, 0, 0, {0, 0, 10, 10}, 0},
    {1, 0, 0, {40, 40, 50, 50}, 1}, /* difficult: the detection on it counts neither way */
    {1, 1, 0, {0, 0, 10, 10}, 0},   /* class 1: never detected, AP 0 */
};
static const nerve_detection DETS[] = {
    {0, 0, 0.9f, {0, 0, 10, 10}, 0},     {0, 0, 0.8f, {1, 0, 11, 10}, 0},
    {1, 0, 0.7f, {0, 0, 10, 5}, 0},      {0, 0, 0.6f, {50, 50, 60, 60}, 0},
    {0, 0, 0.5f, {20, 20, 30, 30}, 0},   {1, 0, 0.95f, {40, 40, 50, 50}, 0},
};

TEST(detection_ap_voc07_all_point_and_coco_by_hand)
{
    double ap[3], map;
    CHECK_OK(nerve_detection_ap(DETS, 6, TRUTHS, 5, 3, 0.5f, NERVE_AP_VOC07, ap, &map));
    CHECK_NEAR(ap[0], 8.4 / 11, 1e-12);
    CHECK_NEAR(ap[1], 0.0, 0);
    CHECK(isnan(ap[2]));                    /* no truth: left out of the mean */
    CHECK_NEAR(map, (8.4 / 11) / 2, 1e-12);
    CHECK_OK(nerve_detection_ap(DETS, 6, TRUTHS, 5, 3, 0.5f, NERVE_AP_ALL_POINT, ap, &map));
    CHECK_NEAR(ap[0], 34.0 / 45, 1e-12);
    CHECK_OK(nerve_detection_ap(DETS, 6, TRUTHS, 5, 3, 0.5f, NERVE_AP_COCO, ap, &map));
    CHECK_NEAR(ap[0], 76.4 / 101, 1e-12);
    /* at IoU 0.55 the detection of IoU 0.5 is a false positive: TP FP FP FP TP, recall
     * 1/3 .. 1/3, 2/3, precision 1, 1/2, 1/3, 1/4, 2/5: 1/3 x 1 + 1/3 x 0.4 */
    CHECK_OK(nerve_detection_ap(DETS, 6, TRUTHS, 5, 3, 0.55f, NERVE_AP_ALL_POINT, ap, &map));
    CHECK_NEAR(ap[0], 1.0 / 3 + (1.0 / 3) * 0.4, 1e-12);
    double *r, *p;
    int n;
    CHECK_OK(nerve_detection_pr(DETS, 6, TRUTHS, 5, 3, 0, 0.5f, &r, &p, &n));
    CHECK(n == 5); /* the detection on the difficult truth is not a point */
    const double wr[5] = {1.0 / 3, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1}, wp[5] = {1, 0.5, 2.0 / 3, 0.5, 0.6};
    CHECK_ARRAY_NEAR(r, wr, 5, 1e-12);
    CHECK_ARRAY_NEAR(p, wp, 5, 1e-12);
    nerve_detection_pr_free(r, p);
}

TEST(detection_coco_map_over_ten_thresholds_and_errors)
{
    const nerve_detection t[] = {{0, 0, 0, {0, 0, 10, 10}, 0}};
    const nerve_detection d[] = {{0, 0, 1, {0, 0, 10, 7.5f}, 0}}; /* IoU exactly 0.75 */
    double map;
    CHECK_OK(nerve_detection_map_coco(d, 1, t, 1, 1, &map));
    CHECK_NEAR(map, 0.6, 1e-12); /* a hit at 0.50 .. 0.75 (6 thresholds), a miss above */
    const nerve_detection badc[] = {{0, 3, 1, {0, 0, 1, 1}, 0}};
    CHECK(nerve_detection_ap(badc, 1, t, 1, 1, 0.5f, NERVE_AP_VOC07, NULL, &map) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "detection 0 has class 3") != NULL);
    const nerve_detection nanbox[] = {{0, 0, 1, {0, NAN, 1, 1}, 0}};
    CHECK(nerve_detection_ap(nanbox, 1, t, 1, 1, 0.5f, NERVE_AP_VOC07, NULL, &map) == NERVE_ERR_ARG);
    CHECK(nerve_detection_ap(d, 1, t, 1, 1, 0.0f, NERVE_AP_VOC07, NULL, &map) == NERVE_ERR_ARG);
}

TEST(detection_precision_recall_svg_names_the_classes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/pr.svg", test_tmpdir());
    const char *names[] = {"shirt", "boot", "bag"};
    CHECK_OK(nerve_detection_pr_svg(path, DETS, 6, TRUTHS, 5, 3, names, 0.5f));
    FILE *f = fopen(path, "r");
    CHECK(f);
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    CHECK(strstr(buf, "shirt (AP 0.756)") != NULL);
    CHECK(strstr(buf, "boot (AP 0.000)") != NULL);
    CHECK(strstr(buf, "bag") == NULL); /* no ground truth: no curve */
}
