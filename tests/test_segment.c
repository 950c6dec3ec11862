/* Segmentation from files (docs/data.md, list_target=masks): darknet-style lists whose
 * targets are class mask PNGs, the refusals that keep a mask from meaning other classes,
 * and a small encoder-decoder with a skip connection that trains on generated scenes from a
 * cfg and is measured with mean IoU. */
#include "test.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 4-bit palette PNG of w x h indices (as PASCAL VOC writes its class masks, with colours
 * in the palette that say nothing about the class). */
static int write_palette_png(const char *path, int w, int h, const unsigned char *idx)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 4, PNG_COLOR_TYPE_PALETTE,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color pal[16];
    for (int i = 0; i < 16; i++)
        pal[i].red = (png_byte)(200 - 10 * i), pal[i].green = (png_byte)(13 * i), pal[i].blue = 77;
    png_set_PLTE(png, info, pal, 16);
    png_write_info(png, info);
    png_set_packing(png);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_bytep)(idx + (size_t)y * w));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f);
}

/* Scenes of 32 x 32 with one or two bars (wide: class 0, tall: class 1) in dir/scenes. */
static void make_scenes(const char *dir, int n_train, int n_test, char *out, size_t size)
{
    char p[4][512];
    const char *stems[4] = {"tr-img", "tr-lab", "te-img", "te-lab"};
    for (int k = 0; k < 4; k++)
        snprintf(p[k], sizeof p[k], "%s/%s", dir, stems[k]);
    test_write_bar_items(p[0], p[1], 8);
    test_write_bar_items(p[2], p[3], 8);
    nerve_scenes_options o = nerve_scenes_default();
    o.canvas = 32, o.n_train = n_train, o.n_test = n_test, o.min_objects = 1, o.max_objects = 2;
    o.min_size = 10, o.max_size = 14, o.max_overlap = 0;
    o.train_images = p[0], o.train_labels = p[1], o.test_images = p[2], o.test_labels = p[3];
    const char *names[2] = {"wide", "tall"};
    o.names = names, o.n_names = 2;
    snprintf(out, size, "%s/scenes", dir);
    if (nerve_scenes_generate(out, &o, NULL) != NERVE_OK)
        out[0] = '\0';
}

static int load_masks(const char *list, nerve_dataset *d)
{
    const char *names[2] = {"wide", "tall"};
    nerve_image_options io = {1, 32, 32, NERVE_RESIZE_NONE, 1.0f};
    return nerve_dataset_load_list_masks(d, list, names, 2, &io);
}

TEST(list_masks_give_a_class_per_pixel_that_agrees_with_the_boxes)
{
    char dir[600], list[700], img[800];
    make_scenes(test_tmpdir(), 6, 2, dir, sizeof dir);
    CHECK(dir[0]);
    snprintf(list, sizeof list, "%s/train.txt", dir);
    nerve_dataset d, b;
    CHECK_OK(load_masks(list, &d));
    CHECK(d.n == 6 && d.target == NERVE_TARGET_MASK && d.tndim == 2 && d.tdims[0] == 32 &&
          d.tdims[1] == 32 && d.n_classes == 3 && d.ignore_index == -1);
    CHECK(d.n_names == 3 && !strcmp(d.names[0], "background") && !strcmp(d.names[1], "wide") &&
          !strcmp(d.names[2], "tall"));
    /* the same list read for boxes: every labelled pixel lies in a box of its class, and
     * every box holds pixels of its class */
    const char *names[2] = {"wide", "tall"};
    nerve_image_options io = {1, 32, 32, NERVE_RESIZE_NONE, 1.0f};
    CHECK_OK(nerve_dataset_load_list(&b, list, names, 2, &io));
    int64_t labelled = 0;
    for (int i = 0; i < d.n; i++) {
        const float *t = d.t + (size_t)i * 32 * 32;
        for (int64_t k = b.box_start[i]; k < b.box_start[i + 1]; k++) {
            float c[4];
            nerve_box_corners(&b.boxes[k], 32, 32, c);
            int inside = 0;
            for (int y = (int)c[1]; y < (int)c[3]; y++)
                for (int x = (int)c[0]; x < (int)c[2]; x++)
                    inside += t[y * 32 + x] == b.boxes[k].cls + 1;
            CHECK_MSG(inside > 10, "scene %d box %lld: %d pixels of its class", i, (long long)k, inside);
        }
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                float v = t[y * 32 + x];
                CHECK(v == 0 || v == 1 || v == 2);
                if (v == 0)
                    continue;
                labelled++;
                int in = 0;
                for (int64_t k = b.box_start[i]; k < b.box_start[i + 1]; k++) {
                    float c[4];
                    nerve_box_corners(&b.boxes[k], 32, 32, c);
                    in |= b.boxes[k].cls + 1 == v && x >= c[0] - 0.5f && x < c[2] + 0.5f &&
                          y >= c[1] - 0.5f && y < c[3] + 0.5f;
                }
                CHECK_MSG(in, "scene %d pixel (%d, %d) of class %g outside its boxes", i, x, y, v - 1);
            }
    }
    CHECK(labelled > 6 * 40);
    /* a mask with 255 marks unlabelled pixels: ignore_index */
    snprintf(img, sizeof img, "%s/masks/train/000000.png", dir);
    float m[32 * 32];
    for (int k = 0; k < 32 * 32; k++)
        m[k] = k < 32 ? 1.0f : 0.0f; /* the first row 255 */
    CHECK_OK(nerve_png_write_gray(img, 32, 32, m));
    nerve_dataset_free(&d);
    CHECK_OK(load_masks(list, &d));
    CHECK(d.t[0] == -1 && d.t[31] == -1 && d.t[32] == 0);
    nerve_dataset_free(&d);
    /* a palette mask: the index is the class, whatever its colour (VOC's files) */
    unsigned char idx[32 * 32];
    for (int k = 0; k < 32 * 32; k++)
        idx[k] = (unsigned char)(k % 3);
    CHECK(write_palette_png(img, 32, 32, idx) == 0);
    CHECK_OK(load_masks(list, &d));
    for (int k = 0; k < 32 * 32; k++)
        CHECK(d.t[k] == (float)(k % 3));
    nerve_dataset_free(&d);
    nerve_dataset_free(&b);
}

TEST(list_masks_refuse_masks_that_are_not_class_indices)
{
    char dir[600], list[700], mask[800], other[820];
    make_scenes(test_tmpdir(), 2, 1, dir, sizeof dir);
    CHECK(dir[0]);
    snprintf(list, sizeof list, "%s/train.txt", dir);
    snprintf(mask, sizeof mask, "%s/masks/train/000001.png", dir);
    nerve_dataset d;
    float px[32 * 32 * 3];
    memset(px, 0, sizeof px);
    /* a value that is no class of the names (3: a third class) */
    px[5 * 32 + 7] = 3.0f / 255.0f;
    CHECK_OK(nerve_png_write_gray(mask, 32, 32, px));
    CHECK(load_masks(list, &d) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "000001.png") && strstr(nerve_last_error(), "(x 7, y 5) holds 3"));
    /* a colour mask */
    CHECK_OK(nerve_png_write_rgb(mask, 32, 32, px));
    CHECK(load_masks(list, &d) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "grey or palette") && strstr(nerve_last_error(), "RGB"));
    /* another size than its image */
    CHECK_OK(nerve_png_write_gray(mask, 16, 32, px));
    CHECK(load_masks(list, &d) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "the mask is 32x16"));
    /* not there: both places named */
    snprintf(other, sizeof other, "%s.gone", mask);
    CHECK(rename(mask, other) == 0);
    CHECK(load_masks(list, &d) == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "no class mask") && strstr(nerve_last_error(), "_mask.png"));
    /* not a PNG */
    FILE *f = fopen(mask, "wb");
    CHECK(f);
    fputs("P5 32 32 255\n", f);
    fclose(f);
    CHECK(load_masks(list, &d) == NERVE_ERR_FORMAT);
    /* resizing would leave the masks behind */
    const char *names[2] = {"wide", "tall"};
    nerve_image_options io = {1, 32, 32, NERVE_RESIZE_STRETCH, 1.0f};
    CHECK(nerve_dataset_load_list_masks(&d, list, names, 2, &io) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "resize=none"));
    /* the cfg key */
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "[net]\nbatch=2\nchannels=1\nheight=32\nwidth=32\ntrain_list=%s\n"
             "names=%s/classes.names\nlist_target=mask\n[convolutional]\nfilters=3\nsize=1\n"
             "[softmax]\ntarget=mask\n", list, dir);
    CHECK(nerve_model_from_cfg(cfg, "seg.cfg") == NULL);
    CHECK(strstr(nerve_last_error(), "seg.cfg:8") && strstr(nerve_last_error(), "expected boxes"));
}

/* Trains `layers` (cfg sections after [net]) on 192 generated scenes for 8 epochs and gives
 * the test set's mean IoU before and after and the pixel accuracy after; m_out keeps the
 * model when not NULL. */
static int train_segmenter(const char *layers, const char *file, double *before, double *after,
                           double *pixel_acc, nerve_model **m_out)
{
    char dir[600], cfg[4096];
    make_scenes(test_tmpdir(), 192, 32, dir, sizeof dir);
    if (!dir[0])
        return -1;
    snprintf(cfg, sizeof cfg,
             "[net]\nbatch=8\nchannels=1\nheight=32\nwidth=32\nlearning_rate=0.01\n"
             "optimizer=adam\nepochs=8\nseed=5\ntrain_list=%s/train.txt\ntest_list=%s/test.txt\n"
             "names=%s/classes.names\nlist_target=masks\n%s[softmax]\ntarget=mask\n",
             dir, dir, dir, layers);
    nerve_set_threads(1);
    nerve_model *m = nerve_model_from_cfg(cfg, file);
    if (!m)
        return -1;
    nerve_dataset train, test;
    nerve_metrics mb, ma;
    nerve_fit_options fo;
    memset(&fo, 0, sizeof fo);
    int st = nerve_config_load_data(nerve_model_config(m), &train, &test), loaded = st == NERVE_OK;
    if (st == NERVE_OK && (train.n != 192 || test.n != 32 || test.n_classes != 3 ||
                           nerve_model_head(m).task != NERVE_TASK_SEGMENT))
        st = -1;
    if (st == NERVE_OK && (st = nerve_evaluate_metrics(m, &test, &mb)) == NERVE_OK) {
        *before = nerve_metrics_mean_iou(&mb);
        nerve_metrics_free(&mb);
        if ((st = nerve_fit(m, &train, &test, &fo, NULL)) == NERVE_OK &&
            (st = nerve_evaluate_metrics(m, &test, &ma)) == NERVE_OK) {
            *after = nerve_metrics_mean_iou(&ma);
            *pixel_acc = nerve_metrics_accuracy(&ma);
            nerve_metrics_free(&ma);
            printf("    mean IoU %.3f before training, %.3f after (pixel accuracy %.3f)\n", *before,
                   *after, *pixel_acc);
        }
    }
    if (loaded) {
        nerve_dataset_free(&train);
        nerve_dataset_free(&test);
    }
    if (m_out && st == NERVE_OK)
        *m_out = m;
    else
        nerve_model_free(m);
    return st;
}

/* nerve segment on a test scene with the trained model m: each class's share of the pixels
 * as the library's per-pixel argmax gives it, and the picture (the 32x32 scene scaled 16x,
 * a legend below) with the pixels of each class tinted in its colour and the background's
 * left grey. */
static void check_segment_command(nerve_model *m)
{
    char dir[600], ckpt[700], img[700], pic[800], cmd[3000], text[8192];
    snprintf(dir, sizeof dir, "%s/scenes", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s/unet.safetensors", test_tmpdir());
    const char *names[3] = {"background", "wide", "tall"};
    CHECK_OK(nerve_model_set_names(m, 3, names));
    CHECK_OK(nerve_model_save(m, ckpt));
    snprintf(img, sizeof img, "%s/images/test/000003.png", dir);
    snprintf(cmd, sizeof cmd, "%s segment %s %s --alpha 0.5 --out %s/overlays", test_nerve(), ckpt, img,
             test_tmpdir());
    CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s", text);
    /* the library's classes of the same scene */
    nerve_image im;
    CHECK_OK(nerve_image_load(img, 1, &im));
    CHECK(im.w == 32 && im.h == 32);
    nerve_dataset one;
    nerve_image_options io = {1, 32, 32, NERVE_RESIZE_NONE, 1.0f};
    const char *paths[1] = {img};
    CHECK_OK(nerve_dataset_load_images(&one, paths, 1, &io));
    float p[3 * 32 * 32];
    CHECK_OK(nerve_predict_outputs(m, &one, p, NULL));
    int cls[32 * 32], count[3] = {0, 0, 0};
    for (int q = 0; q < 32 * 32; q++) {
        int k = 0;
        for (int j = 1; j < 3; j++)
            k = p[j * 1024 + q] > p[k * 1024 + q] ? j : k;
        cls[q] = k;
        count[k]++;
    }
    CHECK(count[0] > 0 && count[1] + count[2] > 20);
    char want[300];
    snprintf(want, sizeof want, "000003.png: background %.1f%%", 100.0 * count[0] / 1024);
    for (int k = 1; k < 3; k++)
        if (count[k]) {
            size_t len = strlen(want);
            snprintf(want + len, sizeof want - len, " %s %.1f%%", names[k], 100.0 * count[k] / 1024);
        }
    CHECK_MSG(strstr(text, want) != NULL, "%s (wanted '%s')", text, want);
    CHECK(strstr(text, "1 images, 3 classes; pictures in "));
    /* the picture: 512 pixels wide, the legend rows below the scene */
    nerve_image pim;
    snprintf(pic, sizeof pic, "%s/overlays/000003.png", test_tmpdir());
    CHECK_OK(nerve_image_load(pic, 3, &pim));
    CHECK(pim.w == 512 && pim.h > 512 && pim.h < 560);
    int checked = 0;
    for (int q = 0; q < 32 * 32; q++) {
        int y = (q / 32) * 16 + 8, x = (q % 32) * 16 + 8;
        float v = im.data[q], rgb[3];
        for (int c = 0; c < 3; c++)
            rgb[c] = pim.data[((size_t)c * pim.h + y) * pim.w + x];
        if (cls[q] == 0) {
            CHECK_MSG(fabsf(rgb[0] - v) < 0.01f && fabsf(rgb[1] - v) < 0.01f && fabsf(rgb[2] - v) < 0.01f,
                      "background pixel (%d, %d): %g %g %g for grey %g", q % 32, q / 32, rgb[0], rgb[1], rgb[2], v);
        } else {
            /* half the pixel, half the class colour: wide (class 0) is red, tall (class 1)
             * azure (the colours nerve detect gives classes 0 and 1) */
            const float col[2][3] = {{1, 0, 0}, {0, 0.5f, 1}};
            for (int c = 0; c < 3; c++)
                CHECK_MSG(fabsf(rgb[c] - (0.5f * v + 0.5f * col[cls[q] - 1][c])) < 0.01f,
                          "pixel (%d, %d) of class %d, channel %d: %g", q % 32, q / 32, cls[q], c, rgb[c]);
        }
        checked++;
    }
    CHECK(checked == 1024);
    nerve_image_free(&pim);
    nerve_image_free(&im);
    nerve_dataset_free(&one);
    /* usage errors and a model that is no segmenter */
    snprintf(cmd, sizeof cmd, "%s segment %s %s --alpha 2", test_nerve(), ckpt, img);
    CHECK(test_run(cmd, text, sizeof text) == 2 && strstr(text, "--alpha needs a number in [0, 1]"));
    snprintf(cmd, sizeof cmd, "%s segment %s", test_nerve(), ckpt);
    CHECK(test_run(cmd, text, sizeof text) == 2 && strstr(text, "usage: nerve segment CKPT IMAGE..."));
    nerve_model *clf = nerve_model_from_cfg("[net]\nbatch=2\nchannels=1\nheight=32\nwidth=32\n"
                                            "[connected]\noutput=3\n[softmax]\n", "clf.cfg");
    CHECK(clf);
    snprintf(ckpt, sizeof ckpt, "%s/clf.safetensors", test_tmpdir());
    CHECK_OK(nerve_model_save(clf, ckpt));
    nerve_model_free(clf);
    snprintf(cmd, sizeof cmd, "%s segment %s %s", test_nerve(), ckpt, img);
    CHECK(test_run(cmd, text, sizeof text) == 1 && strstr(text, "is not a segmentation model"));
}

TEST(segmentation_cfg_trains_on_generated_scenes_and_reports_mean_iou)
{
    /* a U-Net in miniature: 32x32 features, a 16x16 level, upsampled and joined with the
     * 32x32 features (the skip connection), one score per class and pixel */
    const char *unet = "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
                       "[maxpool]\nsize=2\nstride=2\n"
                       "[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=relu\n"
                       "[upsample]\nstride=2\n"
                       "[route]\nlayers=-1,-4\n"
                       "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
                       "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n";
    double b = 0, a = 0, acc = 0;
    nerve_model *m = NULL;
    CHECK_OK(train_segmenter(unet, "unet.cfg", &b, &a, &acc, &m));
    /* the two bar shapes differ only in orientation, so the classes need context beyond a
     * pixel: mean IoU over background, wide and tall goes from chance to most pixels right */
    CHECK_MSG(a > 0.8 && a > b + 0.3 && acc > 0.9, "mean IoU %.3f before training, %.3f after", b, a);
    if (m)
        check_segment_command(m);
    nerve_model_free(m);
}

TEST(segnet_cfg_unpools_at_the_maxima_and_trains)
{
    /* SegNet in miniature: the decoder puts the 16x16 maps back where the encoder's 2x2 maxima
     * were ([unpool] from= the [maxpool]), no skip of features */
    const char *segnet = "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
                         "[maxpool]\nsize=2\nstride=2\n"
                         "[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=relu\n"
                         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
                         "[unpool]\nfrom=-3\n"
                         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
                         "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n";
    double b = 0, a = 0, acc = 0;
    nerve_model *m = NULL;
    CHECK_OK(train_segmenter(segnet, "segnet.cfg", &b, &a, &acc, &m));
    nerve_layer_info li;
    CHECK_OK(nerve_model_layer_info(m, 4, &li));
    CHECK(!strcmp(li.type, "unpool") && li.ndim == 3 && li.dims[0] == 8 && li.dims[1] == 32 &&
          li.dims[2] == 32 && li.params == 0);
    nerve_model_free(m);
    CHECK_MSG(a > 0.7 && a > b + 0.3, "mean IoU %.3f before training, %.3f after", b, a);
}

TEST(unpool_cfg_errors_name_the_line)
{
    const char *head = "[net]\nbatch=2\nchannels=1\nheight=8\nwidth=8\n"
                       "[convolutional]\nfilters=2\nsize=3\npad=1\n"
                       "[maxpool]\nsize=2\nstride=2\n";
    char cfg[1024];
    /* from names a convolution */
    snprintf(cfg, sizeof cfg, "%s[unpool]\nfrom=-2\n", head);
    CHECK(nerve_model_from_cfg(cfg, "u.cfg") == NULL);
    CHECK(strstr(nerve_last_error(), "u.cfg:14") && strstr(nerve_last_error(), "a [convolutional]"));
    /* no from */
    snprintf(cfg, sizeof cfg, "%s[unpool]\n", head);
    CHECK(nerve_model_from_cfg(cfg, "u.cfg") == NULL);
    CHECK(strstr(nerve_last_error(), "u.cfg:13") && strstr(nerve_last_error(), "needs from="));
    /* the previous layer is not the pool's output shape */
    snprintf(cfg, sizeof cfg, "%s[convolutional]\nfilters=5\nsize=1\n[unpool]\nfrom=-2\n", head);
    CHECK(nerve_model_from_cfg(cfg, "u.cfg") == NULL);
    CHECK(strstr(nerve_last_error(), "u.cfg:16") && strstr(nerve_last_error(), "pool's output shape"));
    /* the right one: the pool's input shape back */
    snprintf(cfg, sizeof cfg, "%s[unpool]\nfrom=-1\n", head);
    nerve_model *m = nerve_model_from_cfg(cfg, "u.cfg");
    CHECK(m);
    nerve_layer_info li;
    CHECK_OK(nerve_model_layer_info(m, 2, &li));
    CHECK(li.dims[0] == 2 && li.dims[1] == 8 && li.dims[2] == 8);
    nerve_model_free(m);
}

TEST(segmentation_example_cfgs_build_with_one_score_per_class_and_pixel)
{
    /* examples/segmentation/: U-Net, FCN-8s, SegNet, DeconvNet and the atrous (DeepLab-style)
     * network of docs/detection.md, built without their data (nerve data scenes makes it) */
    const char *names[] = {"unet", "unet_12k", "fcn8s", "segnet", "deconvnet", "atrous"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "examples/segmentation/%s.cfg", names[i]);
        char *text = test_read_file(path, NULL);
        CHECK_MSG(text != NULL, "cannot read %s", path);
        if (!text)
            continue;
        nerve_model *m = nerve_model_from_cfg(text, path);
        free(text);
        CHECK_MSG(m != NULL, "%s: %s", path, nerve_last_error());
        if (!m)
            continue;
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
        CHECK_MSG(nerve_model_head(m).task == NERVE_TASK_SEGMENT && nd == 4 && dims[1] == 11 && dims[2] == 64 &&
                      dims[3] == 64, "%s: output of %d dims, [%d, %d, %d]", path, nd, dims[1], dims[2], dims[3]);
        nerve_model_free(m);
    }
}
