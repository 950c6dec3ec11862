/* Generated detection scenes (src/data/scenes.c): the files of a darknet-style list data
 * set, boxes that fit their objects' pixels, masks that agree with the boxes, training and
 * test items kept apart, the same files for the same seed, and the list loader reading it. */
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* A gray IDX pair of n 12 x 12 items of one class: a bright filled rectangle whose size
 * depends on the index (so items differ), on black. */
static void write_idx(const char *dir, const char *stem, int n, int label)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images", dir, stem);
    FILE *f = fopen(path, "wb");
    unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, 12, 0, 0, 0, 12};
    fwrite(head, 1, 16, f);
    for (int k = 0; k < n; k++)
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 12; x++)
                fputc(y >= 2 && y < 10 && x >= 1 + k % 3 && x < 11 ? 200 : 0, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s-labels", dir, stem);
    f = fopen(path, "wb");
    unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
    fwrite(lh, 1, 8, f);
    for (int k = 0; k < n; k++)
        fputc(label, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}

static nerve_scenes_options small_options(const char *dir, char paths[4][512])
{
    snprintf(paths[0], 512, "%s/train-images", dir);
    snprintf(paths[1], 512, "%s/train-labels", dir);
    snprintf(paths[2], 512, "%s/test-images", dir);
    snprintf(paths[3], 512, "%s/test-labels", dir);
    nerve_scenes_options o = nerve_scenes_default();
    o.canvas = 48;
    o.n_train = 12;
    o.n_test = 6;
    o.min_objects = 2;
    o.max_objects = 3;
    o.min_size = 10;
    o.max_size = 16;
    o.max_overlap = 0.0f; /* boxes never overlap: each object's pixels are all its own */
    o.clutter = 1;
    o.train_images = paths[0], o.train_labels = paths[1];
    o.test_images = paths[2], o.test_labels = paths[3];
    return o;
}

TEST(scenes_boxes_fit_objects_masks_agree_and_splits_keep_their_items)
{
    const char *dir = test_tmpdir();
    write_idx(dir, "train", 5, 0); /* training items are class 0 ... */
    write_idx(dir, "test", 4, 1);  /* ... test items class 1 */
    char paths[4][512], out[600];
    nerve_scenes_options o = small_options(dir, paths);
    const char *names[2] = {"bar", "block"};
    o.names = names;
    o.n_names = 2;
    snprintf(out, sizeof out, "%s/scenes", dir);
    nerve_scenes_stats s;
    CHECK_OK(nerve_scenes_generate(out, &o, &s));
    CHECK(s.train_scenes == 12 && s.test_scenes == 6);
    CHECK(s.train_objects >= 12 && s.train_objects <= 36 && s.test_objects >= 6);
    int objects[2] = {0, 0};
    for (int split = 0; split < 2; split++)
        for (int i = 0; i < (split ? 6 : 12); i++) {
            char p[700];
            snprintf(p, sizeof p, "%s/labels/%s/%06d.txt", out, split ? "test" : "train", i);
            size_t len = 0;
            char *text = slurp(p, &len);
            CHECK(text);
            nerve_box *b;
            int n;
            CHECK_OK(nerve_boxes_parse(text, len, p, 2, &b, &n));
            free(text);
            CHECK(n >= 1 && n <= 3);
            objects[split] += n;
            nerve_image im, mask;
            snprintf(p, sizeof p, "%s/images/%s/%06d.png", out, split ? "test" : "train", i);
            CHECK_OK(nerve_image_load(p, 1, &im));
            snprintf(p, sizeof p, "%s/masks/%s/%06d.png", out, split ? "test" : "train", i);
            CHECK_OK(nerve_image_load(p, 1, &mask));
            CHECK(im.h == 48 && im.w == 48 && mask.h == 48 && mask.w == 48);
            long labelled = 0, in_boxes = 0;
            for (int y = 0; y < 48; y++)
                for (int x = 0; x < 48; x++) {
                    int m = (int)lroundf(mask.data[y * 48 + x] * 255);
                    CHECK(m == 0 || m == split + 1); /* only this split's class */
                    labelled += m > 0;
                    if (m > 0)
                        CHECK(im.data[y * 48 + x] > 0.1f);
                }
            for (int k = 0; k < n; k++) {
                CHECK(b[k].cls == split);
                float c[4];
                nerve_box_corners(&b[k], 48, 48, c);
                int x0 = (int)lroundf(c[0]), y0 = (int)lroundf(c[1]);
                int x1 = (int)lroundf(c[2]), y1 = (int)lroundf(c[3]);
                /* tight: every edge row and column of the box has a labelled pixel */
                int top = 0, bottom = 0, left = 0, right = 0;
                for (int x = x0; x < x1; x++) {
                    top |= mask.data[y0 * 48 + x] > 0;
                    bottom |= mask.data[(y1 - 1) * 48 + x] > 0;
                }
                for (int y = y0; y < y1; y++) {
                    left |= mask.data[y * 48 + x0] > 0;
                    right |= mask.data[y * 48 + x1 - 1] > 0;
                }
                CHECK_MSG(top && bottom && left && right, "scene %d box %d is not tight", i, k);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        in_boxes += mask.data[y * 48 + x] > 0;
            }
            CHECK(labelled == in_boxes); /* no overlap: every labelled pixel in one box */
            nerve_image_free(&im);
            nerve_image_free(&mask);
            nerve_boxes_free(b);
        }
    CHECK(objects[0] == s.train_objects && objects[1] == s.test_objects);
    /* the list loader reads it as darknet's layout */
    char list[700];
    snprintf(list, sizeof list, "%s/test.txt", out);
    nerve_dataset d;
    nerve_image_options io = {1, 0, 0, NERVE_RESIZE_NONE, 0};
    CHECK_OK(nerve_dataset_load_list(&d, list, names, 2, &io));
    CHECK(d.n == 6 && d.target == NERVE_TARGET_BOXES && d.box_start[6] == s.test_objects);
    nerve_dataset_free(&d);
}

TEST(scenes_same_seed_same_files_other_seed_other_files)
{
    const char *dir = test_tmpdir();
    write_idx(dir, "train", 5, 0);
    write_idx(dir, "test", 4, 1);
    char paths[4][512], a[600], b[600], c[600];
    nerve_scenes_options o = small_options(dir, paths);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    CHECK_OK(nerve_scenes_generate(a, &o, NULL));
    CHECK_OK(nerve_scenes_generate(b, &o, NULL));
    o.seed = 2;
    CHECK_OK(nerve_scenes_generate(c, &o, NULL));
    int differ = 0;
    for (int i = 0; i < 12; i++) {
        char pa[700], pb[700], pc[700];
        snprintf(pa, sizeof pa, "%s/images/train/%06d.png", a, i);
        snprintf(pb, sizeof pb, "%s/images/train/%06d.png", b, i);
        snprintf(pc, sizeof pc, "%s/images/train/%06d.png", c, i);
        size_t la = 0, lb = 0, lc = 0;
        char *ta = slurp(pa, &la), *tb = slurp(pb, &lb), *tc = slurp(pc, &lc);
        CHECK(ta && tb && tc);
        CHECK(la == lb && memcmp(ta, tb, la) == 0);
        differ += la != lc || memcmp(ta, tc, la) != 0;
        free(ta), free(tb), free(tc);
    }
    CHECK(differ > 6);
    char names[700];
    snprintf(names, sizeof names, "%s/classes.names", a);
    size_t len = 0;
    char *t = slurp(names, &len);
    CHECK(t && strcmp(t, "class0\nclass1\n") == 0);
    free(t);
}

TEST(scenes_refuse_bad_options_with_a_reason)
{
    char paths[4][512];
    nerve_scenes_options o = small_options(test_tmpdir(), paths);
    o.max_size = 60; /* larger than the 48-pixel canvas */
    CHECK(nerve_scenes_generate(test_tmpdir(), &o, NULL) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "object sizes 10..60 must lie in 4..48") != NULL);
    o = small_options(test_tmpdir(), paths);
    o.min_objects = 3, o.max_objects = 2;
    CHECK(nerve_scenes_generate(test_tmpdir(), &o, NULL) == NERVE_ERR_ARG);
    o = small_options(test_tmpdir(), paths); /* the IDX files do not exist here */
    char out[600];
    snprintf(out, sizeof out, "%s/none", test_tmpdir());
    CHECK(nerve_scenes_generate(out, &o, NULL) < 0);
    CHECK(strstr(nerve_last_error(), "train-images") != NULL);
}

TEST(cli_data_scenes_writes_the_list_data_set_and_reports_counts)
{
    const char *dir = test_tmpdir();
    /* the four files under the names --source expects (the loader reads plain IDX too) */
    write_idx(dir, "tr", 5, 0);
    write_idx(dir, "te", 4, 1);
    const char *from[4] = {"tr-images", "tr-labels", "te-images", "te-labels"};
    const char *to[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int k = 0; k < 4; k++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/%s", dir, from[k]);
        snprintf(b, sizeof b, "%s/%s", dir, to[k]);
        CHECK(rename(a, b) == 0);
    }
    char cmd[2048], out[700];
    snprintf(cmd, sizeof cmd, "%s/nerve data scenes %s/sc --canvas=40 --train 3 --test 2 "
             "--objects 1-2 --sizes 8-12 --source %s > %s/out.txt 2>&1", test_build_dir(), dir,
             dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    size_t len = 0;
    char *text = slurp(out, &len);
    CHECK(text && strstr(text, "wrote 3 training scenes") && strstr(text, "and 2 test scenes"));
    free(text);
    snprintf(out, sizeof out, "%s/sc/classes.names", dir);
    text = slurp(out, &len);
    CHECK(text && strcmp(text, "class0\nclass1\n") == 0); /* another source: no Fashion names */
    free(text);
    snprintf(out, sizeof out, "%s/sc/labels/test/000001.txt", dir);
    text = slurp(out, &len);
    CHECK(text && text[0] == '1'); /* test items are class 1 */
    free(text);
    snprintf(cmd, sizeof cmd, "%s/nerve data scenes %s/sc2 --objects 3-2 --source %s > %s/out.txt "
             "2>&1", test_build_dir(), dir, dir, dir);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2); /* a usage error */
    snprintf(out, sizeof out, "%s/out.txt", dir);
    text = slurp(out, &len);
    CHECK(text && strstr(text, "--objects 3-2: the minimum is above the maximum"));
    free(text);
}
