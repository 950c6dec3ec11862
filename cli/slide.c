/* nerve slide: sliding-window detection with a classifier (docs/detection.md). `slide crops`
 * writes the classifier's training windows from scenes; `slide CKPT LIST` runs the
 * classifier over every window of the list's scenes and prints the detector's mAP, and
 * draws the detections and the heat map of the first scenes. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        fprintf(stderr, "nerve slide: %s needs an integer in %d..%d, got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_unit(const char *opt, const char *v, float *out)
{
    char *end;
    float f = strtof(v, &end);
    if (*end || end == v || !(f >= 0 && f <= 1)) {
        fprintf(stderr, "nerve slide: %s needs a number in [0, 1], got '%s'\n", opt, v);
        return -1;
    }
    *out = f;
    return 0;
}

/* The scenes of a darknet-style list and its class names (--names, else classes.names beside
 * the list). */
static int load_scenes(const char *list, const char *names_path, nerve_dataset *d)
{
    char path[1536];
    if (!names_path) {
        const char *slash = strrchr(list, '/');
        snprintf(path, sizeof path, "%.*sclasses.names", slash ? (int)(slash - list + 1) : 0, list);
        names_path = path;
    }
    char **names = NULL;
    int n_names = 0;
    int st = nerve_names_load(names_path, &names, &n_names);
    if (st == NERVE_OK) {
        nerve_image_options o = {0, 0, 0, NERVE_RESIZE_NONE, 1.0f};
        st = nerve_dataset_load_list(d, list, (const char *const *)names, n_names, &o);
    }
    nerve_names_free(names, n_names);
    return st;
}

/* The scene (left) with its detections, and the heat map (right): each pixel in the colour
 * of its most probable class, as bright as that probability. */
static int draw(const nerve_dataset *d, int i, const float *heat, int classes, const nerve_detection *det,
                int n, const char *const *names, int n_names, const char *path)
{
    int C = d->dims[0], H = d->dims[1], W = d->dims[2];
    int s = 256 / (W > H ? W : H);
    if (s < 1)
        s = 1;
    nerve_canvas c;
    int st = nerve_canvas_init(&c, 2 * W * s + 8, H * s, 1.0f);
    const float *x = d->x + (size_t)i * d->sample_numel;
    for (int y = 0; st == NERVE_OK && y < H * s; y++)
        for (int xx = 0; xx < W * s; xx++) {
            float rgb[3], best = 0;
            int k = 0;
            for (int ch = 0; ch < 3; ch++)
                rgb[ch] = x[((size_t)(C == 3 ? ch : 0) * H + y / s) * W + xx / s];
            nerve_canvas_pixel(&c, xx, y, rgb);
            for (int q = 0; q < classes; q++) {
                float h = heat[((size_t)q * H + y / s) * W + xx / s];
                if (h > best)
                    best = h, k = q;
            }
            cli_class_colour(k, rgb);
            for (int ch = 0; ch < 3; ch++)
                rgb[ch] *= best;
            nerve_canvas_pixel(&c, W * s + 8 + xx, y, rgb);
        }
    for (int k = 0; st == NERVE_OK && k < n; k++) {
        float rgb[3];
        cli_class_colour(det[k].cls, rgb);
        int x1 = (int)(det[k].box[0] * s), y1 = (int)(det[k].box[1] * s);
        int w = (int)(det[k].box[2] * s) - x1, h = (int)(det[k].box[3] * s) - y1;
        w = w > 2 ? w : 2, h = h > 2 ? h : 2;
        nerve_canvas_rect(&c, x1, y1, w, 2, rgb);
        nerve_canvas_rect(&c, x1, y1 + h - 2, w, 2, rgb);
        nerve_canvas_rect(&c, x1, y1, 2, h, rgb);
        nerve_canvas_rect(&c, x1 + w - 2, y1, 2, h, rgb);
        char label[96];
        if (names && det[k].cls < n_names)
            snprintf(label, sizeof label, "%.60s %.2f", names[det[k].cls], (double)det[k].score);
        else
            snprintf(label, sizeof label, "%d %.2f", det[k].cls, (double)det[k].score);
        int ty = y1 >= 10 ? y1 - 9 : y1 + 3;
        nerve_canvas_rect(&c, x1, ty - 1, nerve_text_width(label, 1) + 2, 9, rgb);
        const float black[3] = {0, 0, 0};
        nerve_canvas_text(&c, x1 + 1, ty, label, 1, black);
    }
    if (st == NERVE_OK)
        st = nerve_canvas_write_png(&c, path);
    nerve_canvas_free(&c);
    return st;
}

int cmd_slide(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *names_path = NULL, *out_dir = NULL, *pr = NULL, *v;
    int n_pos = 0, show = 4;
    nerve_sliding_options o = nerve_sliding_default();
    float draw_thresh = 0.5f;
    o.nms_iou = 0.3f;
    o.thresh = 0.005f;
    for (int i = 0; i < argc; i++) {
        int bad = 0, seed;
        if ((v = cli_option_value(argc, argv, &i, "--windows")))
            bad = nerve_sliding_parse_shapes(v, &o) != NERVE_OK && (cli_fail(NULL), 1);
        else if ((v = cli_option_value(argc, argv, &i, "--stride")))
            bad = parse_int("--stride", v, 1, 4096, &o.stride);
        else if ((v = cli_option_value(argc, argv, &i, "--context"))) {
            char *end;
            o.context = strtof(v, &end);
            if (*end || end == v || !(o.context >= 0 && o.context <= 4)) {
                fprintf(stderr, "nerve slide: --context needs a number in [0, 4], got '%s'\n", v);
                bad = 1;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--crop")))
            bad = parse_int("--crop", v, 1, 1024, &o.crop);
        else if ((v = cli_option_value(argc, argv, &i, "--positives")))
            bad = parse_int("--positives", v, 0, 100000, &o.positives);
        else if ((v = cli_option_value(argc, argv, &i, "--negatives")))
            bad = parse_int("--negatives", v, 0, 100000, &o.negatives);
        else if ((v = cli_option_value(argc, argv, &i, "--seed")))
            bad = parse_int("--seed", v, 0, 2147483647, &seed) || (o.seed = (uint64_t)seed, 0);
        else if ((v = cli_option_value(argc, argv, &i, "--nms")))
            bad = parse_unit("--nms", v, &o.nms_iou);
        else if ((v = cli_option_value(argc, argv, &i, "--thresh")))
            bad = parse_unit("--thresh", v, &draw_thresh);
        else if ((v = cli_option_value(argc, argv, &i, "--show")))
            bad = parse_int("--show", v, 0, 100000, &show);
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            names_path = v;
        else if ((v = cli_option_value(argc, argv, &i, "--out")))
            out_dir = v;
        else if ((v = cli_option_value(argc, argv, &i, "--pr")))
            pr = v;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve slide: unknown option '%s' (nerve slide --help)\n", argv[i]);
            return 2;
        } else if (n_pos < 3)
            pos[n_pos++] = argv[i];
        else {
            fprintf(stderr, "nerve slide: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
        if (bad)
            return 2;
    }
    int crops = n_pos >= 1 && !strcmp(pos[0], "crops");
    if ((crops && n_pos != 3) || (!crops && n_pos != 2)) {
        fprintf(stderr, "nerve slide: usage: nerve slide crops LIST OUTDIR [options] | nerve slide CKPT LIST "
                        "[options]\n");
        return 2;
    }
    nerve_dataset scenes = {0};
    int rc = 0;
    if (crops) {
        nerve_dataset d = {0};
        if (load_scenes(pos[1], names_path, &scenes) != NERVE_OK ||
            nerve_sliding_crops(&scenes, scenes.n_names, &o, &d) != NERVE_OK)
            rc = cli_fail("slide crops");
        /* folders 00_NAME, 01_NAME, ...: the image folder reader takes classes in sorted
         * folder order, so the numbers keep class k at index k and background last */
        char **folders = rc ? NULL : calloc((size_t)d.n_classes, sizeof *folders);
        if (!rc && !folders)
            rc = cli_fail("slide crops");
        for (int k = 0; !rc && k < d.n_classes; k++) {
            const char *nm = d.names && k < d.n_names ? d.names[k] : "class";
            size_t len = strlen(nm) + 8;
            if (!(folders[k] = malloc(len)))
                rc = cli_fail("slide crops");
            else
                snprintf(folders[k], len, "%02d_%s", k, nm);
        }
        if (!rc && nerve_dataset_export_images(&d, pos[2], "png", 95, (const char *const *)folders,
                                               d.n_classes) != NERVE_OK)
            rc = cli_fail("slide crops");
        if (!rc) {
            int bg = 0;
            for (int j = 0; j < d.n; j++)
                bg += (int)d.y[j] == d.n_classes - 1;
            printf("wrote %d windows of %d scenes to %s (%d object windows, %d background), %d x %d, %d "
                   "classes with background last\n", d.n, scenes.n, pos[2], d.n - bg, bg, o.crop, o.crop,
                   d.n_classes);
        }
        for (int k = 0; folders && k < d.n_classes; k++)
            free(folders[k]);
        free(folders);
        nerve_dataset_free(&d);
        nerve_dataset_free(&scenes);
        return rc;
    }
    nerve_model *m = nerve_model_load(pos[0]);
    if (!m)
        return cli_fail(NULL);
    if (load_scenes(pos[1], names_path, &scenes) != NERVE_OK) {
        nerve_model_free(m);
        return cli_fail(NULL);
    }
    int classes = scenes.n_names;
    double *ap = calloc((size_t)classes, sizeof *ap);
    nerve_detection_metrics r;
    r.ap = ap;
    if (!ap || nerve_evaluate_sliding(m, &scenes, classes, &o, &r, pr) != NERVE_OK)
        rc = cli_fail("slide");
    if (!rc) {
        printf("samples: %d\n", scenes.n);
        printf("task: detect (sliding windows: %d shape%s, stride %d; %d objects, %d detections kept)\n",
               o.n_shapes, o.n_shapes == 1 ? "" : "s", o.stride, r.truths, r.detections);
        printf("test mAP@0.5: %.4f (all-point), %.4f (VOC 2007 11-point); COCO mAP@[.5:.95]: %.4f\n", r.map50,
               r.map50_voc07, r.map_coco);
        for (int c = 0; c < classes; c++)
            if (ap[c] == ap[c])
                printf("  AP@0.5 %-16s %.4f\n", scenes.names[c], ap[c]);
        if (pr)
            printf("precision-recall curves: %s%s\n", pr,
                   classes > 12 ? " (the first 12 classes that have objects: the plot's limit)" : "");
    }
    if (!rc && out_dir && show > 0) {
        if (cli_mkdirs(out_dir) != 0) {
            fprintf(stderr, "nerve slide: cannot create %s\n", out_dir);
            rc = 1;
        }
        int H = scenes.dims[1], W = scenes.dims[2];
        float *heat = rc ? NULL : malloc((size_t)classes * H * W * sizeof *heat);
        if (!rc && !heat)
            rc = cli_fail("slide");
        for (int i = 0; !rc && i < show && i < scenes.n; i++) {
            nerve_detection det[100];
            nerve_sliding_options od = o;
            od.thresh = draw_thresh;
            int n = nerve_sliding_detect(m, scenes.x + (size_t)i * scenes.sample_numel, scenes.dims[0], H, W,
                                         classes, &od, heat, det, 100);
            char path[1536];
            snprintf(path, sizeof path, "%s/%06d.png", out_dir, i);
            if (n < 0 || draw(&scenes, i, heat, classes, det, n, (const char *const *)scenes.names,
                              scenes.n_names, path) != NERVE_OK)
                rc = cli_fail("slide");
        }
        if (!rc)
            printf("pictures of the first %d scenes (score >= %.2f) in %s\n", show < scenes.n ? show : scenes.n,
                   (double)draw_thresh, out_dir);
        free(heat);
    }
    free(ap);
    nerve_dataset_free(&scenes);
    nerve_model_free(m);
    return rc;
}
