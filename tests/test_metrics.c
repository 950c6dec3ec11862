/* The task metrics (src/train/metrics.c) against values computed by hand. */
#include "test.h"

#include <string.h>

/* Six labelled samples of three classes and one unlabelled (skipped):
 *   sample  scores       label  prediction  rank of the label
 *   0       2 1 0        0      0           0
 *   1       0 3 1        1      1           0
 *   2       1 0 2        0      2           1  (class 2 above)
 *   3       0 2 1        2      1           1  (class 1 above)
 *   4       0 1 5        0      2           2  (classes 1 and 2 above)
 *   5       1 1 0        1      0           1  (class 0 ties and comes first)
 *   6       9 0 0       -1      -           -
 * confusion [truth][pred]: [1 0 2; 1 1 0; 0 1 0] */
static const float SCORES[] = {2, 1, 0, 0, 3, 1, 1, 0, 2, 0, 2, 1, 0, 1, 5, 1, 1, 0, 9, 0, 0};
static const float LABELS[] = {0, 1, 0, 2, 0, 1, -1};

TEST(metrics_classification_accuracy_top_k_confusion_and_f1_by_hand)
{
    nerve_metrics mt;
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_CLASSIFY, 3, 0));
    CHECK(mt.k == 3); /* at most the class count */
    mt.k = 2;
    nerve_metrics_add_classes(&mt, SCORES, 3, LABELS, 4); /* in two batches */
    nerve_metrics_add_classes(&mt, SCORES + 12, 3, LABELS + 4, 3);
    CHECK(mt.samples == 7 && mt.counted == 6);
    const int64_t want[9] = {1, 0, 2, 1, 1, 0, 0, 1, 0};
    for (int i = 0; i < 9; i++)
        CHECK_MSG(mt.confusion[i] == want[i], "confusion[%d] = %lld, expected %lld", i,
                  (long long)mt.confusion[i], (long long)want[i]);
    CHECK_NEAR(nerve_metrics_accuracy(&mt), 2.0 / 6, 1e-12);
    CHECK_NEAR(nerve_metrics_top_k(&mt), 5.0 / 6, 1e-12); /* only sample 4 has rank >= 2 */
    double p, r, f1;
    CHECK_OK(nerve_metrics_class(&mt, 0, &p, &r, &f1)); /* TP 1, predicted 2, true 3 */
    CHECK_NEAR(p, 0.5, 1e-12);
    CHECK_NEAR(r, 1.0 / 3, 1e-12);
    CHECK_NEAR(f1, 0.4, 1e-12);
    CHECK_OK(nerve_metrics_class(&mt, 1, &p, &r, &f1)); /* TP 1, predicted 2, true 2 */
    CHECK_NEAR(p, 0.5, 1e-12);
    CHECK_NEAR(r, 0.5, 1e-12);
    CHECK_NEAR(f1, 0.5, 1e-12);
    CHECK_OK(nerve_metrics_class(&mt, 2, &p, &r, &f1)); /* TP 0, predicted 2, true 1 */
    CHECK_NEAR(p, 0.0, 1e-12);
    CHECK_NEAR(r, 0.0, 1e-12);
    CHECK_NEAR(f1, 0.0, 1e-12);
    CHECK_NEAR(nerve_metrics_macro_f1(&mt), 0.3, 1e-12);
    /* IoU: 1/(3+2-1), 1/(2+2-1), 0/(1+2) */
    CHECK_NEAR(nerve_metrics_mean_iou(&mt), (0.25 + 1.0 / 3) / 3, 1e-12);
    CHECK(nerve_metrics_class(&mt, 3, &p, &r, &f1) == NERVE_ERR_ARG);
    double v;
    int up;
    CHECK(strcmp(nerve_metrics_main(&mt, &v, &up), "acc") == 0 && up == 1);
    CHECK_NEAR(v, 2.0 / 6, 1e-12);
    nerve_metrics_reset(&mt);
    CHECK(mt.counted == 0 && mt.confusion[0] == 0);
    CHECK(isnan(nerve_metrics_accuracy(&mt)));
    nerve_metrics_free(&mt);
}

TEST(metrics_precision_is_nan_for_a_class_never_predicted)
{
    nerve_metrics mt;
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_CLASSIFY, 2, 0));
    const float s[] = {1, 0, 1, 0}, y[] = {0, 1};
    nerve_metrics_add_classes(&mt, s, 2, y, 2);
    double p, r, f1;
    CHECK_OK(nerve_metrics_class(&mt, 1, &p, &r, &f1));
    CHECK(isnan(p));
    CHECK_NEAR(r, 0.0, 0);
    CHECK_NEAR(f1, 0.0, 0);
    nerve_metrics_free(&mt);
    /* one logit: class 1 when positive */
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_CLASSIFY, 1, 0));
    CHECK(mt.n_classes == 2);
    const float z[] = {0.5f, -1, 2}, t[] = {1, 1, 0};
    nerve_metrics_add_classes(&mt, z, 1, t, 3);
    CHECK_NEAR(nerve_metrics_accuracy(&mt), 1.0 / 3, 1e-12);
    nerve_metrics_free(&mt);
}

/* Two samples of four pixels, two classes, 255 ignored:
 *   sample 0 scores c0 [1 0 1 0], c1 [0 1 0 1]: predictions 0 1 0 1; labels 0 1 1 255
 *   sample 1 scores c0 [0 0 0 0], c1 [1 1 1 1]: predictions 1 1 1 1; labels 1 1 1 1
 * confusion [1 0; 1 5]: pixel accuracy 6/7, IoU 1/2 and 5/6. */
TEST(metrics_segmentation_pixel_accuracy_and_mean_iou_skip_the_ignore_index)
{
    nerve_metrics mt;
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_SEGMENT, 2, 0));
    mt.ignore_index = 255;
    const float s[] = {1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1};
    const float y[] = {0, 1, 1, 255, 1, 1, 1, 1};
    nerve_metrics_add_pixels(&mt, s, 2, 4, y, 2);
    CHECK(mt.counted == 7);
    CHECK_NEAR(nerve_metrics_accuracy(&mt), 6.0 / 7, 1e-12);
    CHECK_NEAR(nerve_metrics_mean_iou(&mt), (0.5 + 5.0 / 6) / 2, 1e-12);
    double v;
    CHECK(strcmp(nerve_metrics_main(&mt, &v, NULL), "miou") == 0);
    nerve_metrics_free(&mt);
    /* a binary mask: one logit per pixel; class 1 when positive */
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_BINARY_MASK, 0, 0));
    const float z[] = {2, -1, -3, 0.5f}, m[] = {1, 1, 0, 0};
    nerve_metrics_add_pixels(&mt, z, 1, 4, m, 1); /* predictions 1 0 0 1 */
    CHECK_NEAR(nerve_metrics_accuracy(&mt), 0.5, 1e-12);
    /* confusion [1 1; 1 1]: IoU 1/3 each */
    CHECK_NEAR(nerve_metrics_mean_iou(&mt), 1.0 / 3, 1e-12);
    nerve_metrics_free(&mt);
}

/* pred [[1 2] [2 2] [3 5]], target [[1 1] [2 3] [4 5]]: errors (0 1) (0 -1) (-1 0):
 * SSE 3 over 6 values, MSE 0.5, MAE 0.5, PSNR 10 log10(2);
 * output 0: targets 1 2 4 (mean 7/3, SS_tot 42/9), SSE 1: R^2 = 1 - 9/42
 * output 1: targets 1 3 5 (mean 3, SS_tot 8), SSE 2: R^2 = 0.75. */
TEST(metrics_regression_mse_mae_psnr_and_r2_by_hand)
{
    nerve_metrics mt;
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_REGRESS, 0, 2));
    const float pred[] = {1, 2, 2, 2, 3, 5}, target[] = {1, 1, 2, 3, 4, 5};
    nerve_metrics_add_values(&mt, pred, target, NULL, 1);
    nerve_metrics_add_values(&mt, pred + 2, target + 2, NULL, 2);
    CHECK_NEAR(nerve_metrics_mse(&mt), 0.5, 1e-12);
    CHECK_NEAR(nerve_metrics_mae(&mt), 0.5, 1e-12);
    CHECK_NEAR(nerve_metrics_psnr(&mt, 1.0), 10 * log10(2.0), 1e-12);
    CHECK_NEAR(nerve_metrics_r2(&mt), ((1 - 9.0 / 42) + 0.75) / 2, 1e-12);
    CHECK(isnan(nerve_metrics_noisy_mse(&mt)));
    double v;
    CHECK(strcmp(nerve_metrics_main(&mt, &v, NULL), "r2") == 0);
    nerve_metrics_add_loss(&mt, 2.0, 3);
    CHECK_NEAR(nerve_metrics_loss(&mt), 2.0, 1e-12); /* samples were counted by add_values */
    nerve_metrics_free(&mt);
    /* constant targets: R^2 1 for an exact fit, else 0; the noisy input's MSE */
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_RECONSTRUCT, 0, 1));
    const float c[] = {2, 2}, noisy[] = {2.5f, 1.0f};
    nerve_metrics_add_values(&mt, c, c, noisy, 2);
    CHECK_NEAR(nerve_metrics_r2(&mt), 1.0, 0);
    CHECK_NEAR(nerve_metrics_noisy_mse(&mt), (0.25 + 1.0) / 2, 1e-12);
    CHECK(strcmp(nerve_metrics_main(&mt, &v, NULL), "psnr") == 0);
    const float off[] = {3, 3};
    nerve_metrics_reset(&mt);
    nerve_metrics_add_values(&mt, off, c, NULL, 2);
    CHECK_NEAR(nerve_metrics_r2(&mt), 0.0, 0);
    CHECK_NEAR(nerve_metrics_psnr(&mt, 2.0), 10 * log10(4.0), 1e-12);
    nerve_metrics_free(&mt);
}

TEST(metrics_bits_per_character_and_bad_arguments)
{
    nerve_metrics mt;
    CHECK_OK(nerve_metrics_init(&mt, NERVE_TASK_LANGUAGE, 0, 0));
    nerve_metrics_add_tokens(&mt, 10 * log(2.0), 4);
    nerve_metrics_add_tokens(&mt, 0, 1);
    CHECK_NEAR(nerve_metrics_bpc(&mt), 2.0, 1e-12);
    int up;
    double v;
    CHECK(strcmp(nerve_metrics_main(&mt, &v, &up), "bpc") == 0 && up == 0);
    nerve_metrics_free(&mt);
    CHECK(nerve_metrics_init(&mt, NERVE_TASK_CLASSIFY, 0, 0) == NERVE_ERR_ARG);
    CHECK(nerve_metrics_init(&mt, NERVE_TASK_REGRESS, 0, 0) == NERVE_ERR_ARG);
    CHECK(nerve_metrics_init(NULL, NERVE_TASK_REGRESS, 0, 1) == NERVE_ERR_ARG);
}
