/* Ensembles, bagging, test-time augmentation and visualisation: the library functions on
 * hand-built models with known outputs, and the CLI commands end to end. */
#include "test.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

TEST(bootstrap_draws_with_replacement_about_63_percent_unique)
{
    enum { N = 10000 };
    nerve_dataset src, a, b;
    CHECK_OK(nerve_dataset_alloc(&src, N, 1, (int[]){2}));
    for (int i = 0; i < N; i++) {
        src.x[2 * i] = (float)i;
        src.x[2 * i + 1] = (float)-i;
        src.y[i] = (float)(i % 5);
    }
    src.n_classes = 5;
    CHECK_OK(nerve_dataset_bootstrap(&src, &a, 42));
    CHECK(a.n == N && a.n_classes == 5 && a.sample_numel == 2);
    char *seen = calloc(N, 1);
    int unique = 0;
    for (int i = 0; i < N; i++) {
        int j = (int)a.x[2 * i];
        CHECK(j >= 0 && j < N && a.x[2 * i + 1] == -(float)j && a.y[i] == (float)(j % 5));
        unique += !seen[j];
        seen[j] = 1;
    }
    free(seen);
    /* 1 - (1 - 1/n)^n = 0.632...; its standard deviation here is about 0.003 */
    CHECK_NEAR((double)unique / N, 1.0 - exp(-1.0), 0.015);
    CHECK_OK(nerve_dataset_bootstrap(&src, &b, 42));
    CHECK(memcmp(a.x, b.x, sizeof(float) * 2 * N) == 0);
    nerve_dataset_free(&b);
    CHECK_OK(nerve_dataset_bootstrap(&src, &b, 43));
    CHECK(memcmp(a.x, b.x, sizeof(float) * 2 * N) != 0);
    nerve_dataset_free(&a);
    nerve_dataset_free(&b);
    nerve_dataset_free(&src);
}

/* A model "inputs -> [connected] 2 -> [softmax]" with weights w (2 x in) and bias b. */
static nerve_model *linear_model(const char *net, int in, const float *w, const float *b)
{
    char text[512];
    snprintf(text, sizeof text, "[net]\n%s\nbatch=2\n\n[connected]\noutput=2\n\n[softmax]\n", net);
    nerve_model *m = nerve_model_from_cfg(text, "hand.cfg");
    if (!m)
        return NULL;
    nerve_graph *g = nerve_model_graph(m);
    memcpy(nerve_value(g, nerve_node_find(g, "connected1.weight")).data, w, 2 * (size_t)in * sizeof(float));
    memcpy(nerve_value(g, nerve_node_find(g, "connected1.bias")).data, b, 2 * sizeof(float));
    return m;
}

/* Probability of class 1 for logits (l0, l1). */
static double p1(double l0, double l1) { return 1.0 / (1.0 + exp(l0 - l1)); }

TEST(ensemble_averages_the_members_softmax_outputs)
{
    /* member A: logits (x0, x1); member B: logits (x1 / 2, 0) */
    const float wa[4] = {1, 0, 0, 1}, wb[4] = {0, 0.5f, 0, 0}, zero[2] = {0, 0};
    nerve_model *models[2] = {linear_model("inputs=2", 2, wa, zero), linear_model("inputs=2", 2, wb, zero)};
    CHECK(models[0] && models[1]);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 3, 1, (int[]){2}));
    const float x[6] = {0.0f, 1.0f, 1.0f, 0.2f, 0.45f, 0.5f}, y[3] = {1, 0, 1};
    memcpy(d.x, x, sizeof x);
    memcpy(d.y, y, sizeof y);
    d.n_classes = 2;
    double want_loss = 0, member[2];
    int want_correct = 0, correct_a = 0, correct_b = 0;
    for (int i = 0; i < 3; i++) {
        double x0 = x[2 * i], x1 = x[2 * i + 1];
        double pa = p1(x0, x1), pb = p1(0.5 * x1, 0), avg = 0.5 * (pa + pb);
        int truth = (int)y[i];
        want_correct += (avg > 0.5) == truth;
        correct_a += (pa > 0.5) == truth;
        correct_b += (pb > 0.5) == truth;
        want_loss -= log(truth ? avg : 1 - avg);
    }
    CHECK(correct_a == 3 && correct_b == 1 && want_correct == 2); /* the average is neither */
    double loss, acc;
    CHECK_OK(nerve_ensemble_evaluate(models, 2, &d, &loss, &acc, member));
    CHECK_NEAR(acc, want_correct / 3.0, 1e-12);
    CHECK_NEAR(loss, want_loss / 3, 1e-5);
    CHECK_NEAR(member[0], 1.0, 1e-12);
    CHECK_NEAR(member[1], 1 / 3.0, 1e-12);
    /* one member alone: its own accuracy */
    CHECK_OK(nerve_ensemble_evaluate(models, 1, &d, &loss, &acc, NULL));
    CHECK_NEAR(acc, 1.0, 1e-12);
    nerve_model_free(models[0]);
    nerve_model_free(models[1]);
    nerve_dataset_free(&d);
}

/* View v of a 4x4 image as the TTA documents it: shifted by (sy, sx) * 1 (crop 2), zero
 * fill, mirrored for v >= 5; computed here from the definition. */
static float view_pixel(const float *img, int v, int y, int x)
{
    static const int sy[5] = {1, 1, -1, -1, 0}, sx[5] = {1, -1, 1, -1, 0};
    if (v >= 5)
        x = 3 - x;
    int yy = y - sy[v % 5], xx = x - sx[v % 5];
    return yy >= 0 && yy < 4 && xx >= 0 && xx < 4 ? img[yy * 4 + xx] : 0.0f;
}

TEST(test_time_augmentation_averages_ten_shifted_and_mirrored_views)
{
    float w[32], b[2] = {0.1f, -0.1f};
    nerve_rng r;
    nerve_rng_seed(&r, 4);
    for (int i = 0; i < 32; i++)
        w[i] = nerve_rng_normal(&r);
    nerve_model *m = linear_model("height=4\nwidth=4", 16, w, b);
    CHECK(m != NULL);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 3, 3, (int[]){1, 4, 4}));
    for (int i = 0; i < 48; i++)
        d.x[i] = nerve_rng_uniform(&r);
    d.y[0] = 0;
    d.y[1] = 1;
    d.y[2] = 1;
    d.n_classes = 2;
    double want_loss = 0;
    int want_correct = 0;
    for (int i = 0; i < 3; i++) {
        double avg = 0;
        for (int v = 0; v < 10; v++) {
            double l[2] = {b[0], b[1]};
            for (int c = 0; c < 2; c++)
                for (int k = 0; k < 16; k++)
                    l[c] += w[c * 16 + k] * view_pixel(d.x + 16 * i, v, k / 4, k % 4);
            avg += p1(l[0], l[1]) / 10;
        }
        int truth = (int)d.y[i];
        want_correct += (avg > 0.5) == truth;
        want_loss -= log(truth ? avg : 1 - avg);
    }
    double loss, acc;
    CHECK_OK(nerve_evaluate_tta(m, &d, 2, &loss, &acc));
    CHECK_NEAR(loss, want_loss / 3, 1e-5);
    CHECK_NEAR(acc, want_correct / 3.0, 1e-12);
    CHECK(nerve_evaluate_tta(m, &d, 5, &loss, &acc) == NERVE_ERR_ARG);
    nerve_model_free(m);
    nerve_dataset_free(&d);
}

/* ---- visualisation ---------------------------------------------------------------------- */

static int png_size(const char *path, int *w, int *h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return -1;
    *w = (int)img.width;
    *h = (int)img.height;
    png_image_free(&img);
    return 0;
}

TEST(viz_writes_filters_and_activations_as_grids)
{
    float w[32] = {0}, b[2] = {0, 0};
    nerve_model *m = linear_model("height=4\nwidth=4", 16, w, b);
    CHECK(m != NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/f.png", test_tmpdir());
    int tiles = 0, pw, ph;
    CHECK_OK(nerve_viz_filters(m, NULL, path, &tiles));
    /* two 4x4 tiles side by side, each scaled 12 times (to 48 pixels), 4-pixel gaps, a
     * caption above and the colour bar to the right (nerve_sheet_write) */
    CHECK(tiles == 2);
    CHECK(png_size(path, &pw, &ph) == 0 && pw > 2 * 48 + 3 * 4 && ph > 48 + 2 * 4);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 2, 3, (int[]){1, 4, 4}));
    snprintf(path, sizeof path, "%s/a.png", test_tmpdir());
    CHECK_OK(nerve_viz_activations(m, &d, 1, "connected1", path, &tiles));
    /* 2 units: one 1 x 2 tile, scaled 24 times */
    CHECK(tiles == 1 && png_size(path, &pw, &ph) == 0 && pw > 48 && ph > 24);
    CHECK(nerve_viz_activations(m, &d, 2, NULL, path, &tiles) == NERVE_ERR_ARG);
    CHECK(nerve_viz_filters(m, "nothere", path, &tiles) == NERVE_ERR_ARG);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

/* ---- the CLI ------------------------------------------------------------------------------ */

static int run_cmd(const char *cmd, char *out, size_t n)
{
    char full[2200];
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

/* 4x4 images: class 0 bright on the left half, class 1 on the right; labels last. */
static void write_halves_csv(const char *path, int n, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        int c = i % 2;
        for (int k = 0; k < 16; k++)
            fprintf(fp, "%.4f,", ((k % 4 < 2) == (c == 0) ? 0.8 : 0.1) + 0.15 * nerve_rng_normal(&r));
        fprintf(fp, "%d\n", c);
    }
    fclose(fp);
}

static const char *HALVES_CFG = "[net]\nheight=4\nwidth=4\nbatch=16\nepochs=3\noptimizer=adam\n"
                                "learning_rate=0.02\nseed=5\ntrain_csv=train.csv\ntest_csv=test.csv\n"
                                "augment=translate\ntranslate=1\n\n[connected]\noutput=8\nactivation=relu\n\n"
                                "[connected]\noutput=2\n\n[softmax]\n";

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
}

static double accuracy_line(const char *out)
{
    const char *a = strstr(out, "test accuracy: ");
    return a ? atof(a + 15) : -1;
}

TEST(cli_bagging_ensemble_viz_and_transfer_end_to_end)
{
    const char *dir = test_tmpdir(), *bin = test_build_dir();
    char path[600], cmd[2100];
    static char out[65536];
    snprintf(path, sizeof path, "%s/train.csv", dir);
    write_halves_csv(path, 160, 1);
    snprintf(path, sizeof path, "%s/test.csv", dir);
    write_halves_csv(path, 80, 2);
    snprintf(path, sizeof path, "%s/halves.cfg", dir);
    write_file(path, HALVES_CFG);

    snprintf(cmd, sizeof cmd, "%s/nerve train %s/halves.cfg --bag 3 --out %s/bag --threads 1", bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "bagging failed:\n%s", out);
    CHECK_MSG(strstr(out, "member 3 epoch   3") && strstr(out, "member 2 accuracy: "), "%s", out);
    CHECK_MSG(accuracy_line(out) > 0.9, "%s", out);
    struct stat sb;
    for (int k = 1; k <= 3; k++) {
        snprintf(path, sizeof path, "%s/bag/member-%d.safetensors", dir, k);
        CHECK_MSG(stat(path, &sb) == 0, "no %s", path);
    }

    snprintf(cmd, sizeof cmd, "%s/nerve ensemble %s/bag/member-1.safetensors %s/bag/member-2.safetensors --tta 2",
             bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "ensemble failed:\n%s", out);
    CHECK_MSG(strstr(out, "member 1 accuracy: ") && strstr(out, "test-time augmentation (crop 2)"), "%s", out);
    CHECK_MSG(accuracy_line(out) > 0.9, "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve ensemble %s/bag/member-1.safetensors --csv %s/test.csv", bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0 && accuracy_line(out) > 0.9, "%s", out);

    snprintf(cmd, sizeof cmd, "%s/nerve viz filters %s/bag/member-1.safetensors --out %s/f.png", bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "viz filters failed:\n%s", out);
    int w, h;
    snprintf(path, sizeof path, "%s/f.png", dir);
    /* 8 tiles of 4x4, 3 per row, each scaled to 48 pixels with 4-pixel gaps: a 160 x 160 grid */
    CHECK(png_size(path, &w, &h) == 0 && w > 160 && h > 160);
    snprintf(cmd, sizeof cmd, "%s/nerve viz activations %s/bag/member-1.safetensors 3 --out %s/a.png", bin, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "label 1"), "viz activations:\n%s", out);
    snprintf(path, sizeof path, "%s/a.png", dir);
    CHECK(png_size(path, &w, &h) == 0 && w > 48 && h > 48); /* 8 units: a 3 x 3 tile, scaled 16 times */
    snprintf(cmd, sizeof cmd, "%s/nerve viz activations %s/bag/member-1.safetensors 999", bin, dir);
    CHECK(run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "outside"));
    snprintf(cmd, sizeof cmd, "%s/nerve viz", bin);
    CHECK(run_cmd(cmd, out, sizeof out) == 2);

    snprintf(cmd, sizeof cmd, "%s/nerve train %s/halves.cfg --init %s/bag/member-1.safetensors --freeze 1 "
             "--out %s/tl --quiet --threads 1", bin, dir, dir, dir);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "transfer failed:\n%s", out);
    CHECK_MSG(strstr(out, "4 tensors loaded, 0 kept") && strstr(out, "froze the first 1 layers (2 parameter"),
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve train %s/halves.cfg --bag 2 --resume x", bin, dir);
    CHECK(run_cmd(cmd, out, sizeof out) == 2);
}
