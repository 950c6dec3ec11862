/* Data augmentation: each transform on small images with hand-checkable results, the random
 * pipeline's determinism, the cfg keys, and bit-exact resumed training with augmentation. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void fill_ramp(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(i + 1);
}

/* out(y, x) = in(y - dy, x - dx), zero outside: the definition of a shift, per plane. */
static float shifted(const float *in, int h, int w, int y, int x, int dy, int dx)
{
    int sy = y - dy, sx = x - dx;
    return sy >= 0 && sy < h && sx >= 0 && sx < w ? in[sy * w + sx] : 0.0f;
}

TEST(flip_is_an_exact_mirror)
{
    float x[2 * 3 * 4], orig[2 * 3 * 4];
    fill_ramp(x, 24);
    memcpy(orig, x, sizeof x);
    nerve_aug_flip(x, 2, 3, 4);
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int i = 0; i < 4; i++)
                CHECK(x[(c * 3 + y) * 4 + i] == orig[(c * 3 + y) * 4 + 3 - i]);
    nerve_aug_flip(x, 2, 3, 4);
    CHECK(memcmp(x, orig, sizeof x) == 0);
}

TEST(crop_with_padding_is_a_zero_filled_shift)
{
    /* pad 2, crop at offset (oy, ox) = (0, 4): the content moves by (2, -2) */
    float x[5 * 6], orig[5 * 6];
    fill_ramp(x, 30);
    memcpy(orig, x, sizeof x);
    nerve_aug_shift(x, 1, 5, 6, 2 - 0, 2 - 4);
    CHECK(x[0] == 0.0f && x[6 + 5] == 0.0f); /* rows 0..1 came from the padding */
    CHECK(x[2 * 6 + 0] == orig[0 * 6 + 2]);  /* out(2, 0) = in(0, 2) */
    CHECK(x[4 * 6 + 3] == orig[2 * 6 + 5]);  /* out(4, 3) = in(2, 5) */
    CHECK(x[3 * 6 + 4] == 0.0f && x[3 * 6 + 5] == 0.0f); /* right columns: padding */
    for (int y = 0; y < 5; y++)
        for (int i = 0; i < 6; i++)
            CHECK(x[y * 6 + i] == shifted(orig, 5, 6, y, i, 2, -2));
}

/* The (dy, dx) in [-p, p]^2 for which img is the shift of orig, or 0 if none. */
static int find_shift(const float *img, const float *orig, int h, int w, int p, int *dy, int *dx)
{
    for (*dy = -p; *dy <= p; (*dy)++)
        for (*dx = -p; *dx <= p; (*dx)++) {
            int same = 1;
            for (int y = 0; y < h && same; y++)
                for (int x = 0; x < w && same; x++)
                    same = img[y * w + x] == shifted(orig, h, w, y, x, *dy, *dx);
            if (same)
                return 1;
        }
    return 0;
}

TEST(random_crop_and_translation_draw_shifts_within_their_range)
{
    enum { N = 40, H = 6, W = 7 };
    static float x[N * H * W], orig[H * W];
    fill_ramp(orig, H * W);
    const unsigned kinds[2] = {NERVE_AUG_CROP, NERVE_AUG_TRANSLATE};
    for (int kind = 0; kind < 2; kind++) {
        for (int i = 0; i < N; i++)
            memcpy(x + i * H * W, orig, sizeof orig);
        nerve_augment a = nerve_augment_default();
        a.on = kinds[kind];
        a.crop_pad = 2;
        a.translate = 2;
        nerve_rng r;
        nerve_rng_seed(&r, 5);
        CHECK_OK(nerve_augment_apply(&a, x, NULL, N, 1, H, W, 0, &r, NULL));
        int seen[5][5] = {{0}};
        for (int i = 0; i < N; i++) {
            int dy, dx;
            CHECK_MSG(find_shift(x + i * H * W, orig, H, W, 2, &dy, &dx), "image %d is no shift", i);
            seen[dy + 2][dx + 2] = 1;
        }
        int distinct = 0;
        for (int k = 0; k < 25; k++)
            distinct += seen[k / 5][k % 5];
        CHECK_MSG(distinct >= 10, "only %d distinct shifts in %d draws", distinct, N);
    }
}

TEST(rotation_by_90_degrees_of_a_square_is_exact)
{
    enum { S = 5 };
    float x[2 * S * S], orig[2 * S * S], scratch[S * S];
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    for (int i = 0; i < 2 * S * S; i++)
        orig[i] = nerve_rng_uniform(&r);
    memcpy(x, orig, sizeof x);
    nerve_aug_rotate_scale(x, 2, S, S, 90.0f, 1.0f, 0, scratch);
    /* counter-clockwise as displayed: the top-right corner moves to the top-left */
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < S; y++)
            for (int i = 0; i < S; i++)
                CHECK_NEAR(x[c * S * S + y * S + i], orig[c * S * S + i * S + (S - 1 - y)], 1e-5);
    memcpy(x, orig, sizeof x);
    nerve_aug_rotate_scale(x, 2, S, S, 180.0f, 1.0f, 1, scratch); /* nearest: exact */
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < S * S; k++)
            CHECK(x[c * S * S + k] == orig[c * S * S + S * S - 1 - k]);
    memcpy(x, orig, sizeof x);
    nerve_aug_rotate_scale(x, 2, S, S, 0.0f, 1.0f, 0, scratch);
    CHECK_ARRAY_NEAR(x, orig, 2 * S * S, 0);
}

TEST(rescale_zooms_about_the_centre)
{
    enum { S = 7 };
    float x[S * S], orig[S * S], scratch[S * S];
    fill_ramp(orig, S * S);
    memcpy(x, orig, sizeof x);
    nerve_aug_rotate_scale(x, 1, S, S, 0.0f, 2.0f, 0, scratch);
    /* scale 2: output (3 + 2a, 3 + 2b) samples input (3 + a, 3 + b) */
    CHECK_NEAR(x[3 * S + 3], orig[3 * S + 3], 1e-5);
    CHECK_NEAR(x[5 * S + 1], orig[4 * S + 2], 1e-5);
    CHECK_NEAR(x[3 * S + 4], 0.5f * (orig[3 * S + 3] + orig[3 * S + 4]), 1e-4); /* bilinear */
    memcpy(x, orig, sizeof x);
    nerve_aug_rotate_scale(x, 1, S, S, 0.0f, 0.5f, 0, scratch);
    CHECK_NEAR(x[2 * S + 2], orig[1 * S + 1], 1e-5); /* (3 - 1) -> 3 - 2 */
    CHECK(x[0] == 0.0f);                            /* samples (-3, -3): outside */
}

TEST(gaussian_noise_has_the_requested_statistics)
{
    enum { N = 100000 };
    float *x = calloc(N, sizeof(float));
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    nerve_aug_noise(x, N, 0.5f, &r);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    free(x);
    CHECK_NEAR(mean, 0.0, 0.01);
    CHECK_NEAR(sd, 0.5, 0.01);
}

TEST(cutout_zeroes_one_square_inside_the_image)
{
    enum { C = 2, H = 10, W = 9, N = 20 };
    static float x[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++)
        x[i] = 1.0f;
    nerve_augment a = nerve_augment_default();
    a.on = NERVE_AUG_CUTOUT;
    a.cutout = 4;
    nerve_rng r;
    nerve_rng_seed(&r, 2);
    CHECK_OK(nerve_augment_apply(&a, x, NULL, N, C, H, W, 0, &r, NULL));
    for (int i = 0; i < N; i++) {
        const float *img = x + i * C * H * W;
        int zeros = 0, y0 = H, x0 = W, y1 = -1, x1 = -1;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int k = 0; k < W; k++)
                    if (img[(c * H + y) * W + k] == 0.0f) {
                        zeros++;
                        y0 = y < y0 ? y : y0;
                        x0 = k < x0 ? k : x0;
                        y1 = y > y1 ? y : y1;
                        x1 = k > x1 ? k : x1;
                    }
        CHECK_MSG(zeros == C * 16, "image %d: %d zeros", i, zeros);
        CHECK(y1 - y0 == 3 && x1 - x0 == 3); /* one 4 x 4 square, the same in every channel */
    }
}

TEST(brightness_and_contrast_follow_their_formula)
{
    float x[4] = {1, 2, 3, 4};
    nerve_aug_brightness_contrast(x, 1, 2, 2, 0.5f, 2.0f);
    /* mean 2.5: (x - 2.5) * 2 + 2.5 + 0.5 */
    const float want[4] = {0, 2, 4, 6};
    CHECK_ARRAY_NEAR(x, want, 4, 1e-6);
}

TEST(pca_colour_fit_recovers_a_constructed_covariance)
{
    /* pixels a1 p1 + a2 p2 + a3 p3 with a_i = +-sqrt(var_i) in all 8 sign patterns: the
     * population covariance is exactly sum var_i p_i p_i^T */
    const double s3 = sqrt(3.0), s2 = sqrt(2.0), s6 = sqrt(6.0);
    const double p[3][3] = {{1 / s3, 1 / s3, 1 / s3}, {1 / s2, -1 / s2, 0}, {1 / s6, 1 / s6, -2 / s6}};
    const double var[3] = {4.0, 1.0, 0.25};
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 2, 3, (int[]){3, 2, 2}));
    for (int k = 0; k < 8; k++) { /* pixel k: image k / 4, position k % 4 */
        float *img = d.x + (k / 4) * 12;
        for (int ch = 0; ch < 3; ch++) {
            double v = 0.3; /* an offset that the covariance ignores */
            for (int i = 0; i < 3; i++)
                v += ((k >> i) & 1 ? 1 : -1) * sqrt(var[i]) * p[i][ch];
            img[ch * 4 + k % 4] = (float)v;
        }
    }
    float val[3], vec[3][3];
    CHECK_OK(nerve_pca_colour_fit(&d, val, vec));
    nerve_dataset_free(&d);
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(val[i], var[i], 1e-5);
        double dot = 0;
        for (int ch = 0; ch < 3; ch++)
            dot += vec[i][ch] * p[i][ch];
        CHECK_NEAR(fabs(dot), 1.0, 1e-5); /* the same direction, up to sign */
    }
    /* the colour shift: + sum alpha_i lambda_i p_i on every pixel */
    float img[3 * 2] = {0}, alpha[3] = {0.1f, -0.2f, 0.0f};
    nerve_aug_pca_colour(img, 1, 2, val, vec, alpha);
    for (int ch = 0; ch < 3; ch++) {
        double want = 0.1 * val[0] * vec[0][ch] - 0.2 * val[1] * vec[1][ch];
        CHECK_NEAR(img[ch * 2], want, 1e-6);
        CHECK_NEAR(img[ch * 2 + 1], want, 1e-6);
    }
}

/* A binary image of blocks (1 inside a few rectangles). */
static void blocky(float *x, int h, int w)
{
    for (int y = 0; y < h; y++)
        for (int k = 0; k < w; k++)
            x[y * w + k] = ((y / 5 + k / 7) % 2 == 0) || (y > 10 && y < 16 && k > 4) ? 1.0f : 0.0f;
}

TEST(elastic_with_zero_alpha_is_the_identity_and_masks_stay_aligned)
{
    enum { H = 28, W = 28 };
    static float x[H * W], mask[H * W], orig[H * W];
    float *scratch = malloc(nerve_augment_scratch(1, H, W, 1) * sizeof(float));
    blocky(orig, H, W);
    memcpy(x, orig, sizeof x);
    memcpy(mask, orig, sizeof x);
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    nerve_aug_elastic(x, 1, mask, 1, H, W, 0.0f, 4.0f, &r, scratch);
    CHECK(memcmp(x, orig, sizeof x) == 0 && memcmp(mask, orig, sizeof x) == 0);

    memcpy(x, orig, sizeof x);
    memcpy(mask, orig, sizeof x);
    nerve_aug_elastic(x, 1, mask, 1, H, W, 34.0f, 4.0f, &r, scratch);
    free(scratch);
    int moved = 0, disagree = 0;
    for (int i = 0; i < H * W; i++) {
        CHECK(mask[i] == 0.0f || mask[i] == 1.0f); /* labels stay labels */
        /* the mask's nearest pixel is one of the image's bilinear neighbours, weight >= 1/4 */
        CHECK_MSG(mask[i] == 1.0f ? x[i] >= 0.25f - 1e-5f : x[i] <= 0.75f + 1e-5f,
                  "pixel %d: mask %g image %g", i, mask[i], x[i]);
        moved += mask[i] != orig[i];
        disagree += (x[i] > 0.5f) != (mask[i] > 0.5f);
    }
    CHECK_MSG(moved > 10, "the deformation moved only %d pixels", moved);
    CHECK_MSG(disagree < H * W / 20, "%d pixels where the thresholded image and the mask differ", disagree);
}

TEST(the_random_pipeline_is_deterministic_for_a_seed)
{
    enum { N = 4, C = 3, H = 12, W = 12 };
    static float a1[N * C * H * W], a2[N * C * H * W], m1[N * H * W], m2[N * H * W];
    nerve_rng r;
    nerve_rng_seed(&r, 1);
    for (int i = 0; i < N * C * H * W; i++)
        a1[i] = nerve_rng_uniform(&r);
    for (int i = 0; i < N * H * W; i++)
        m1[i] = a1[i] > 0.5f;
    memcpy(a2, a1, sizeof a1);
    memcpy(m2, m1, sizeof m1);
    nerve_augment a = nerve_augment_default();
    CHECK_OK(nerve_augment_parse("crop, flip,translate,rotate,rescale,noise,cutout,brightness,"
                                 "contrast,pca,elastic", &a));
    CHECK(a.on == (1u << 11) - 1);
    a.pca_fitted = 1;
    a.pca_eigval[0] = 0.2f;
    a.pca_eigvec[0][0] = 1.0f;
    nerve_rng g1, g2;
    nerve_augment_seed(&g1, 7, 3, 5);
    nerve_augment_seed(&g2, 7, 3, 5);
    CHECK_OK(nerve_augment_apply(&a, a1, m1, N, C, H, W, 1, &g1, NULL));
    CHECK_OK(nerve_augment_apply(&a, a2, m2, N, C, H, W, 1, &g2, NULL));
    CHECK(memcmp(a1, a2, sizeof a1) == 0 && memcmp(m1, m2, sizeof m1) == 0);
    nerve_augment_seed(&g2, 7, 3, 6); /* another batch: other draws */
    CHECK_OK(nerve_augment_apply(&a, a2, m2, N, C, H, W, 1, &g2, NULL));
    CHECK(memcmp(a1, a2, sizeof a1) != 0);
    CHECK(nerve_augment_parse("crop,flop", &a) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "'flop'") != NULL);
    a.pca_fitted = 0; /* pca without statistics is a state error, not garbage */
    CHECK(nerve_augment_apply(&a, a1, NULL, N, C, H, W, 0, &g1, NULL) == NERVE_ERR_STATE);
}

/* ---- the cfg keys ------------------------------------------------------------------------ */

static nerve_model *cfg_with(const char *net_lines)
{
    char text[1024];
    snprintf(text, sizeof text, "[net]\n%s\n[connected]\noutput=2\n\n[softmax]\n", net_lines);
    return nerve_model_from_cfg(text, "aug.cfg");
}

TEST(cfg_augment_keys_are_parsed_and_checked)
{
    nerve_model *m = cfg_with("height=8\nwidth=8\naugment=crop,flip,rescale,elastic\ncrop_pad=3\n"
                              "rescale=0.8,1.2\nelastic=20,3");
    CHECK(m != NULL);
    const nerve_augment *a = &nerve_model_config(m)->augment;
    CHECK(a->on == (NERVE_AUG_CROP | NERVE_AUG_FLIP | NERVE_AUG_RESCALE | NERVE_AUG_ELASTIC));
    CHECK(a->crop_pad == 3 && a->flip == 0.5f);
    CHECK_NEAR(a->scale_min, 0.8, 1e-7);
    CHECK_NEAR(a->scale_max, 1.2, 1e-7);
    CHECK(a->elastic_alpha == 20.0f && a->elastic_sigma == 3.0f);
    nerve_model_free(m);

    struct { const char *lines; const char *where; const char *what; } bad[] = {
        {"height=8\nwidth=8\naugment=crop,spin", "aug.cfg:4:", "'spin'"},
        {"inputs=64\naugment=flip", "aug.cfg:3:", "image"},
        {"height=8\nwidth=8\nrotate=5", "aug.cfg:4:", "augment= lists rotate"},
        {"height=8\nwidth=8\naugment=flip\nnoise=0.1", "aug.cfg:5:", "noise"},
        {"height=8\nwidth=8\naugment=cutout\ncutout=9", "aug.cfg:5:", "larger"},
        {"height=8\nwidth=8\naugment=pca", "aug.cfg:4:", "channels=3"},
        {"height=8\nwidth=8\naugment=rescale\nrescale=1.2,0.8", "aug.cfg:5:", "min <= max"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = cfg_with(bad[i].lines);
        CHECK_MSG(m == NULL, "case %zu accepted", i);
        CHECK_MSG(strstr(nerve_last_error(), bad[i].where) && strstr(nerve_last_error(), bad[i].what),
                  "case %zu: %s", i, nerve_last_error());
    }
}

/* ---- training with augmentation ------------------------------------------------------------- */

/* 4x4 images: class 0 bright on the left half, class 1 on the right, plus noise. */
static void write_halves_csv(const char *path, int n, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        int c = i % 2;
        for (int k = 0; k < 16; k++)
            fprintf(fp, "%.4f,", ((k % 4 < 2) == (c == 0) ? 0.8 : 0.1) + 0.1 * nerve_rng_normal(&r));
        fprintf(fp, "%d\n", c);
    }
    fclose(fp);
}

static float *train_weights(const char *cfg, int split, size_t *count, double *acc)
{
    nerve_model *m = nerve_model_load_cfg(cfg);
    nerve_dataset train = {0}, test = {0};
    if (!m || nerve_config_load_data(nerve_model_config(m), &train, &test) != NERVE_OK)
        return NULL;
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/aug-%d.safetensors", test_tmpdir(), split);
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    if (split) {
        o.stop_after_epochs = 2;
        if (nerve_fit(m, &train, NULL, &o, NULL) != NERVE_OK)
            return NULL;
        nerve_model_free(m);
        m = nerve_model_load_cfg(cfg);
        o.stop_after_epochs = 0;
        o.resume = ckpt;
    }
    if (nerve_fit(m, &train, NULL, &o, NULL) != NERVE_OK)
        return NULL;
    nerve_evaluate(m, &test, NULL, acc, NULL, 0);
    nerve_graph *g = nerve_model_graph(m);
    int ids[32];
    int n = nerve_graph_persistent(g, ids, 32);
    float *all = malloc(4096 * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        memcpy(all + off, t.data, nerve_tensor_numel(&t) * sizeof(float));
        off += nerve_tensor_numel(&t);
    }
    *count = off;
    nerve_model_free(m);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    return all;
}

TEST(resumed_training_with_augmentation_is_bit_exact)
{
    char path[512], cfg[512];
    snprintf(path, sizeof path, "%s/train.csv", test_tmpdir());
    write_halves_csv(path, 200, 1);
    snprintf(path, sizeof path, "%s/test.csv", test_tmpdir());
    write_halves_csv(path, 100, 2);
    snprintf(cfg, sizeof cfg, "%s/aug.cfg", test_tmpdir());
    FILE *fp = fopen(cfg, "w");
    fprintf(fp, "[net]\nheight=4\nwidth=4\nbatch=16\nepochs=4\noptimizer=adam\nlearning_rate=0.02\n"
                "seed=3\ntrain_csv=train.csv\ntest_csv=test.csv\naugment=translate,noise,contrast\n"
                "translate=1\nnoise=0.05\n\n[connected]\noutput=8\nactivation=relu\n\n"
                "[connected]\noutput=2\n\n[softmax]\n");
    fclose(fp);
    size_t n1 = 0, n2 = 0;
    double acc1 = 0, acc2 = 0;
    float *straight = train_weights(cfg, 0, &n1, &acc1);
    CHECK(straight != NULL);
    float *resumed = train_weights(cfg, 1, &n2, &acc2);
    CHECK(resumed != NULL);
    CHECK(n1 == n2 && n1 == 16 * 8 + 8 + 8 * 2 + 2);
    CHECK_MSG(memcmp(straight, resumed, n1 * sizeof(float)) == 0, "resumed weights differ");
    CHECK_MSG(acc1 > 0.9, "test accuracy %.3f", acc1);
    /* the augmentation did something: the same run without it ends elsewhere */
    fp = fopen(cfg, "w");
    fprintf(fp, "[net]\nheight=4\nwidth=4\nbatch=16\nepochs=4\noptimizer=adam\nlearning_rate=0.02\n"
                "seed=3\ntrain_csv=train.csv\ntest_csv=test.csv\n\n[connected]\noutput=8\n"
                "activation=relu\n\n[connected]\noutput=2\n\n[softmax]\n");
    fclose(fp);
    float *plain = train_weights(cfg, 0, &n2, &acc2);
    CHECK(plain != NULL && n2 == n1);
    CHECK(memcmp(straight, plain, n1 * sizeof(float)) != 0);
    free(plain);
    free(straight);
    free(resumed);
}

TEST(training_with_pca_colour_reads_flat_csv_rows_as_rgb_images)
{
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/rgb.csv", test_tmpdir());
    nerve_rng r;
    nerve_rng_seed(&r, 4);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < 12; k++) /* [3, 2, 2]: class 1 is redder */
            fprintf(fp, "%.4f,", (k < 4 && i % 2 ? 0.7 : 0.3) + 0.1 * nerve_rng_normal(&r));
        fprintf(fp, "%d\n", i % 2);
    }
    fclose(fp);
    snprintf(text, sizeof text, "[net]\nheight=2\nwidth=2\nchannels=3\nbatch=8\nepochs=2\nseed=1\n"
                                "train_csv=%s\naugment=pca,flip\npca=0.2\n\n[connected]\noutput=2\n\n"
                                "[softmax]\n", path);
    nerve_model *m = nerve_model_from_cfg(text, "rgb.cfg");
    CHECK(m != NULL);
    nerve_dataset train = {0};
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &train, NULL));
    CHECK(train.ndim == 1); /* CSV rows are flat; the model's shape says [3, 2, 2] */
    nerve_fit_result res;
    CHECK_OK(nerve_fit(m, &train, NULL, NULL, &res));
    CHECK(res.epochs_run == 2);
    nerve_dataset_free(&train);
    nerve_model_free(m);
}

/* darknet's colour jitter (distort_image): no change at (0, 1, 1); a hue turn of 1/3 takes
 * pure red to pure green; saturation 0 gives grey at the value; exposure clips at 1. */
TEST(darknet_hsv_jitter_follows_darknets_formulas)
{
    float x[3 * 4] = {1, 0.2f, 0.5f, 0.9f, /* R */ 0, 0.4f, 0.5f, 0.1f, /* G */
                      0, 0.6f, 0.5f, 0.3f /* B */};
    float y[12];
    memcpy(y, x, sizeof x);
    nerve_aug_hsv(y, 2, 2, 0, 1, 1);
    CHECK_ARRAY_NEAR(y, x, 12, 1e-6);
    nerve_aug_hsv(y, 2, 2, 1.0f / 3, 1, 1);
    CHECK_NEAR(y[0], 0, 1e-5);
    CHECK_NEAR(y[4], 1, 1e-5);
    CHECK_NEAR(y[8], 0, 1e-5);
    memcpy(y, x, sizeof x);
    nerve_aug_hsv(y, 2, 2, 0, 0, 1); /* no saturation: every channel at the value (max) */
    CHECK_NEAR(y[1], 0.6f, 1e-6);
    CHECK_NEAR(y[5], 0.6f, 1e-6);
    CHECK_NEAR(y[9], 0.6f, 1e-6);
    memcpy(y, x, sizeof x);
    nerve_aug_hsv(y, 2, 2, 0, 1, 2); /* value doubled, clipped */
    CHECK_NEAR(y[0], 1, 1e-6);
    CHECK_NEAR(y[1], 0.4f, 1e-5);
    CHECK_NEAR(y[9], 1, 1e-6);
}

/* darknet's rotate_crop_image: the identity at zoom 1 without rotation or offset; a zoom
 * of 2 about the centre (W/2, H/2) samples (X - W/2)/2 + W/2; an offset moves the window. */
TEST(darknet_crop_follows_rotate_crop_image)
{
    float x[16], y[16], scratch[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    memcpy(y, x, sizeof x);
    nerve_aug_darknet_crop(y, 1, 4, 4, 0, 1, 0, 0, 1, 0, scratch);
    CHECK_ARRAY_NEAR(y, x, 16, 1e-6);
    memcpy(y, x, sizeof x);
    nerve_aug_darknet_crop(y, 1, 4, 4, 0, 2, 0, 0, 1, 0, scratch);
    for (int Y = 0; Y < 4; Y++)
        for (int X = 0; X < 4; X++) {
            float rx = (X - 2) / 2.0f + 2, ry = (Y - 2) / 2.0f + 2;
            int ix = (int)rx, iy = (int)ry;
            float fx = rx - ix, fy = ry - iy;
            float want = (1 - fy) * ((1 - fx) * x[iy * 4 + ix] + fx * x[iy * 4 + ix + 1]) +
                         fy * ((1 - fx) * x[(iy + 1) * 4 + ix] + fx * x[(iy + 1) * 4 + ix + 1]);
            CHECK_NEAR(y[Y * 4 + X], want, 1e-5);
        }
    memcpy(y, x, sizeof x);
    nerve_aug_darknet_crop(y, 1, 4, 4, 0, 1, 1, 0, 1, 0, scratch); /* one pixel to the right */
    for (int Y = 0; Y < 4; Y++)
        for (int X = 0; X < 4; X++)
            CHECK_NEAR(y[Y * 4 + X], X < 3 ? x[Y * 4 + X + 1] : 0.0f, 1e-6);
}
