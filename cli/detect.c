/* nerve detect: a detector's boxes on images, printed and drawn. The model reads each image
 * at its input size (the cfg's resize policy); the boxes come back in the pixels of the
 * image as it is on disk, and the picture is that image with the boxes and their labels. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BOXES 100

static float parse_unit(const char *opt, const char *v)
{
    char *end;
    float f = strtof(v, &end);
    if (*end || end == v || !(f >= 0 && f <= 1)) {
        fprintf(stderr, "nerve detect: %s needs a number in [0, 1], got '%s'\n", opt, v);
        return -1;
    }
    return f;
}

/* The image at path with its detections drawn: 2-pixel outlines, the label above each box. */
static int draw(const nerve_image *img, const char *out, const nerve_detection *d, int n,
                const char *const *names, int n_names)
{
    const nerve_image im = *img;
    /* small images (28 to 128 pixels) are scaled up so that the labels can be read */
    int s = im.w < 256 && im.h < 256 ? (512 / (im.w > im.h ? im.w : im.h)) : 1;
    if (s < 1)
        s = 1;
    nerve_canvas c;
    int st = nerve_canvas_init(&c, im.w * s, im.h * s, 0);
    for (int ch = 0; st == NERVE_OK && ch < 3; ch++)
        for (int y = 0; y < c.h; y++)
            for (int x = 0; x < c.w; x++)
                c.rgb[((size_t)ch * c.h + y) * c.w + x] = im.data[((size_t)ch * im.h + y / s) * im.w + x / s];
    for (int k = 0; st == NERVE_OK && k < n; k++) {
        float rgb[3];
        cli_class_colour(d[k].cls, rgb);
        int x1 = (int)(d[k].box[0] * s), y1 = (int)(d[k].box[1] * s);
        int x2 = (int)(d[k].box[2] * s), y2 = (int)(d[k].box[3] * s);
        int w = x2 - x1 > 1 ? x2 - x1 : 1, h = y2 - y1 > 1 ? y2 - y1 : 1;
        nerve_canvas_rect(&c, x1, y1, w, 2, rgb);
        nerve_canvas_rect(&c, x1, y1 + h - 2, w, 2, rgb);
        nerve_canvas_rect(&c, x1, y1, 2, h, rgb);
        nerve_canvas_rect(&c, x1 + w - 2, y1, 2, h, rgb);
        char label[96];
        if (names && d[k].cls < n_names)
            snprintf(label, sizeof label, "%.60s %.2f", names[d[k].cls], (double)d[k].score);
        else
            snprintf(label, sizeof label, "%d %.2f", d[k].cls, (double)d[k].score);
        int ty = y1 >= 10 ? y1 - 9 : y1 + 3;
        nerve_canvas_rect(&c, x1, ty - 1, nerve_text_width(label, 1) + 2, 9, rgb);
        const float black[3] = {0, 0, 0};
        nerve_canvas_text(&c, x1 + 1, ty, label, 1, black);
    }
    if (st == NERVE_OK)
        st = nerve_canvas_write_png(&c, out);
    nerve_canvas_free(&c);
    return st;
}

int cmd_detect(int argc, char **argv)
{
    const char *ckpt = NULL, *out_dir = NULL, *v;
    float thresh = 0.25f, nms = 0.45f;
    const char **files = calloc((size_t)(argc > 0 ? argc : 1), sizeof *files);
    int n_files = 0;
    if (!files)
        return 1;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--thresh"))) {
            if ((thresh = parse_unit("--thresh", v)) < 0)
                goto usage;
        } else if ((v = cli_option_value(argc, argv, &i, "--nms"))) {
            if ((nms = parse_unit("--nms", v)) < 0)
                goto usage;
        } else if ((v = cli_option_value(argc, argv, &i, "--out"))) {
            out_dir = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve detect: unknown option '%s' (nerve detect --help)\n", argv[i]);
            goto usage;
        } else if (!ckpt) {
            ckpt = argv[i];
        } else {
            if (!cli_is_image_arg(argv[i])) {
                fprintf(stderr, "nerve detect: %s: give PNG/JPEG files or folders of them\n", argv[i]);
                goto usage;
            }
            files[n_files++] = argv[i];
        }
    }
    if (!ckpt || !n_files) {
        fprintf(stderr, "nerve detect: usage: nerve detect CKPT IMAGE... [--thresh T] [--nms T] [--out DIR]\n");
        goto usage;
    }
    nerve_model *m = nerve_model_load(ckpt);
    if (!m) {
        free(files);
        return cli_fail(NULL);
    }
    nerve_yolo1_config yc;
    int ssd = nerve_model_ssd(m, NULL, NULL, 0) > 0;
    int frcnn = nerve_model_frcnn(m, NULL); /* a [fast_rcnn] head */
    int yolo = ssd || frcnn || nerve_model_yolo_heads(m, NULL, NULL, 0) > 0; /* [yolo] / [region] / [ssd] */
    if (!yolo && nerve_model_yolo1(m, &yc) != 1) {
        fprintf(stderr, "nerve detect: %s is not a detector (its cfg has no [detection], "
                "[region], [yolo], [ssd] or [fast_rcnn] layer); for a classifier use nerve predict\n", ckpt);
        nerve_model_free(m);
        free(files);
        return 1;
    }
    const nerve_net_config *c = nerve_model_config(m);
    nerve_image_options o = {c->dims[0], c->dims[1], c->dims[2], c->data.resize, c->input_scale * 255.0f};
    char **paths = NULL, **file_names = NULL;
    int n_paths = 0, n_file_names = 0, rc = 0, total = 0;
    nerve_dataset d = {0};
    float *pred = NULL;
    int st = nerve_image_paths(files, n_files, &paths, &n_paths);
    if (st == NERVE_OK)
        st = nerve_dataset_load_images(&d, (const char *const *)paths, n_paths, &o);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    size_t k = nerve_shape_numel(nd - 1, dims + 1);
    if (st == NERVE_OK && !yolo && !(pred = malloc((size_t)d.n * k * sizeof *pred)))
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK && !yolo)
        st = nerve_predict_outputs(m, &d, pred, NULL);
    if (st == NERVE_OK && out_dir && cli_mkdirs(out_dir) != 0) {
        fprintf(stderr, "nerve detect: cannot create %s\n", out_dir);
        rc = 1;
    }
    if (st != NERVE_OK)
        rc = cli_fail("detect");
    int n_names = 0;
    const char *const *names = nerve_model_names(m, &n_names);
    if (!names && c->data.names[0] && nerve_names_load(c->data.names, &file_names, &n_file_names) == NERVE_OK) {
        names = (const char *const *)file_names;
        n_names = n_file_names;
    }
    for (int i = 0; rc == 0 && i < d.n; i++) {
        nerve_image im;
        if (nerve_image_load(paths[i], 3, &im) != NERVE_OK) {
            rc = cli_fail("detect");
            break;
        }
        /* boxes in the pixels of the file: the model saw the whole picture, stretched to its
         * input (or as it is), and YOLO's boxes are relative to it; a crop or a pad would
         * move them, so those are refused */
        if ((im.h != c->dims[1] || im.w != c->dims[2]) && c->data.resize != NERVE_RESIZE_STRETCH &&
            c->data.resize != NERVE_RESIZE_NONE) {
            fprintf(stderr, "nerve detect: %s: the cfg's resize policy crops or pads this %dx%d image "
                    "to the model's %dx%d, and the boxes would not map back onto it; train with "
                    "resize=stretch or give images of the model's size\n", paths[i], im.w, im.h,
                    c->dims[2], c->dims[1]);
            nerve_image_free(&im);
            rc = 1;
            break;
        }
        nerve_detection det[MAX_BOXES];
        int n = frcnn  ? nerve_frcnn_detect(m, d.x + (size_t)i * d.sample_numel, (float)im.w, (float)im.h,
                                            thresh, nms, det, MAX_BOXES)
                : yolo ? (ssd ? nerve_ssd_detect : nerve_yolo_detect)(m, d.x + (size_t)i * d.sample_numel, (float)im.w, (float)im.h,
                                         thresh, nms, det, MAX_BOXES)
                     : nerve_yolo1_decode(pred + (size_t)i * k, &yc, (float)im.w, (float)im.h, i, thresh,
                                          nms, det, MAX_BOXES);
        if (n < 0) {
            nerve_image_free(&im);
            rc = cli_fail("detect");
            break;
        }
        total += n;
        printf("%s: %d object%s\n", paths[i], n, n == 1 ? "" : "s");
        for (int j = 0; j < n; j++)
            printf("  %-16s %.3f  box %.1f %.1f %.1f %.1f\n",
                   names && det[j].cls < n_names ? names[det[j].cls] : "", (double)det[j].score,
                   (double)det[j].box[0], (double)det[j].box[1], (double)det[j].box[2], (double)det[j].box[3]);
        if (out_dir) {
            const char *base = strrchr(paths[i], '/');
            base = base ? base + 1 : paths[i];
            char pic[1536];
            const char *dot = strrchr(base, '.');
            snprintf(pic, sizeof pic, "%s/%.*s.png", out_dir, (int)(dot ? dot - base : (long)strlen(base)), base);
            if (draw(&im, pic, det, n, names, n_names) != NERVE_OK)
                rc = cli_fail("detect");
        }
        nerve_image_free(&im);
    }
    if (rc == 0)
        printf("%d images, %d objects (score >= %.2f, NMS at IoU %.2f)%s%s\n", d.n, total, (double)thresh,
               (double)nms, out_dir ? "; pictures in " : "", out_dir ? out_dir : "");
    free(pred);
    nerve_dataset_free(&d);
    nerve_names_free(paths, n_paths);
    nerve_names_free(file_names, n_file_names);
    nerve_model_free(m);
    free(files);
    return rc;
usage:
    free(files);
    return 2;
}
