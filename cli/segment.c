/* nerve segment: a segmentation model's class per pixel on images, summed up and drawn.
 * The model ([softmax] target=mask) reads each image at its input size; the masks are only
 * meaningful on the pixels the model saw, so an image of another size than the model's input
 * is refused unless the cfg stretches it (then the picture is the stretched image). Each
 * pixel takes the class of highest probability; the picture is the image with every pixel of
 * an object class tinted in its class's colour, and a legend of the classes present. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float parse_alpha(const char *v)
{
    char *end;
    float f = strtof(v, &end);
    if (*end || end == v || !(f >= 0 && f <= 1)) {
        fprintf(stderr, "nerve segment: --alpha needs a number in [0, 1], got '%s'\n", v);
        return -1;
    }
    return f;
}

/* The picture of one image x [c, h, w] (values in [0, 1]) with its class map cls [h, w]:
 * scaled up (small images) so that the legend can be read, each object pixel blended with
 * its class colour, and a legend strip below: a swatch and the name of each class present
 * with its share of the pixels. */
static int draw(const float *x, int ch, int h, int w, const int *cls, const long *count,
                int n_classes, const char *const *names, float alpha, const char *out)
{
    int s = w < 256 && h < 256 ? 512 / (w > h ? w : h) : 1;
    if (s < 1)
        s = 1;
    int present = 0, label_w = 0;
    char label[96];
    for (int k = 1; k < n_classes; k++)
        if (count[k]) {
            present++;
            snprintf(label, sizeof label, "%.60s %.1f%%", names[k], 100.0 * (double)count[k] / ((double)h * w));
            int tw = nerve_text_width(label, 1) + 14;
            label_w = tw > label_w ? tw : label_w;
        }
    int cw = w * s, per_row = label_w ? (cw - 4) / (label_w + 6) : 1;
    if (per_row < 1)
        per_row = 1;
    int rows = present ? (present + per_row - 1) / per_row : 1;
    nerve_canvas c;
    int st = nerve_canvas_init(&c, cw > label_w + 8 ? cw : label_w + 8, h * s + 6 + 12 * rows, 1.0f);
    if (st != NERVE_OK)
        return st;
    for (int y = 0; y < h * s; y++)
        for (int xx = 0; xx < cw; xx++) {
            int p = (y / s) * w + xx / s, k = cls[p];
            float rgb[3];
            for (int q = 0; q < 3; q++)
                rgb[q] = x[(size_t)(ch == 3 ? q : 0) * h * w + p];
            if (k > 0) {
                float col[3];
                cli_class_colour(k - 1, col);
                for (int q = 0; q < 3; q++)
                    rgb[q] = (1 - alpha) * rgb[q] + alpha * col[q];
            }
            nerve_canvas_pixel(&c, xx, y, rgb);
        }
    const float black[3] = {0, 0, 0};
    int i = 0;
    for (int k = 1; k < n_classes; k++) {
        if (!count[k])
            continue;
        int lx = 4 + (i % per_row) * (label_w + 6), ly = h * s + 4 + 12 * (i / per_row);
        float col[3];
        cli_class_colour(k - 1, col);
        nerve_canvas_rect(&c, lx, ly, 9, 9, col);
        snprintf(label, sizeof label, "%.60s %.1f%%", names[k], 100.0 * (double)count[k] / ((double)h * w));
        nerve_canvas_text(&c, lx + 12, ly + 1, label, 1, black);
        i++;
    }
    if (!present)
        nerve_canvas_text(&c, 4, h * s + 5, "background only", 1, black);
    st = nerve_canvas_write_png(&c, out);
    nerve_canvas_free(&c);
    return st;
}

int cmd_segment(int argc, char **argv)
{
    const char *ckpt = NULL, *out_dir = NULL, *v;
    float alpha = 0.55f;
    const char **files = calloc((size_t)(argc > 0 ? argc : 1), sizeof *files);
    int n_files = 0;
    if (!files)
        return 1;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--alpha"))) {
            if ((alpha = parse_alpha(v)) < 0)
                goto usage;
        } else if ((v = cli_option_value(argc, argv, &i, "--out"))) {
            out_dir = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve segment: unknown option '%s' (nerve segment --help)\n", argv[i]);
            goto usage;
        } else if (!ckpt) {
            ckpt = argv[i];
        } else {
            if (!cli_is_image_arg(argv[i])) {
                fprintf(stderr, "nerve segment: %s: give PNG/JPEG files or folders of them\n", argv[i]);
                goto usage;
            }
            files[n_files++] = argv[i];
        }
    }
    if (!ckpt || !n_files) {
        fprintf(stderr, "nerve segment: usage: nerve segment CKPT IMAGE... [--alpha A] [--out DIR]\n");
        goto usage;
    }
    nerve_model *m = nerve_model_load(ckpt);
    if (!m) {
        free(files);
        return cli_fail(NULL);
    }
    if (nerve_model_head(m).task != NERVE_TASK_SEGMENT) {
        fprintf(stderr, "nerve segment: %s is not a segmentation model (its cfg does not end in "
                "[softmax] target=mask); for boxes use nerve detect, for a classifier nerve predict\n", ckpt);
        nerve_model_free(m);
        free(files);
        return 1;
    }
    const nerve_net_config *c = nerve_model_config(m);
    int ch = c->dims[0], h = c->dims[1], w = c->dims[2];
    nerve_image_options o = {ch, h, w, c->data.resize, c->input_scale * 255.0f};
    /* the class maps are the model's pixels: an image cropped or padded to its input would
     * give a map that lies on another part of the picture than the one drawn */
    if (o.resize != NERVE_RESIZE_STRETCH)
        o.resize = NERVE_RESIZE_NONE;
    char **paths = NULL;
    int n_paths = 0, rc = 0, n_classes = 0;
    nerve_dataset d = {0};
    float *pred = NULL, *seen = NULL;
    int *cls = NULL;
    long *count = NULL;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    if (nd != 4 || dims[2] != h || dims[3] != w) {
        fprintf(stderr, "nerve segment: %s: the model's output is not one score per class and "
                "input pixel\n", ckpt);
        nerve_model_free(m);
        free(files);
        return 1;
    }
    n_classes = dims[1];
    size_t hw = (size_t)h * w;
    int st = nerve_image_paths(files, n_files, &paths, &n_paths);
    if (st == NERVE_OK)
        st = nerve_dataset_load_images(&d, (const char *const *)paths, n_paths, &o);
    if (st == NERVE_OK &&
        (!(pred = malloc((size_t)d.n * n_classes * hw * sizeof *pred)) ||
         !(seen = malloc(d.sample_numel * sizeof *seen)) || !(cls = malloc(hw * sizeof *cls)) ||
         !(count = calloc((size_t)n_classes, sizeof *count))))
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = nerve_predict_outputs(m, &d, pred, NULL);
    if (st == NERVE_OK && out_dir && cli_mkdirs(out_dir) != 0) {
        fprintf(stderr, "nerve segment: cannot create %s\n", out_dir);
        rc = 1;
    }
    if (st != NERVE_OK)
        rc = cli_fail("segment");
    /* class names: the checkpoint's (background first, as the mask data sets give them),
     * else "background" and the class indices */
    int n_names = 0;
    const char *const *mnames = nerve_model_names(m, &n_names);
    char **names = calloc((size_t)(n_classes > 0 ? n_classes : 1), sizeof *names);
    for (int k = 0; rc == 0 && k < n_classes; k++) {
        char buf[80];
        const char *nm = NULL;
        if (mnames && n_names == n_classes)
            nm = mnames[k];
        else if (mnames && n_names == n_classes - 1 && k > 0)
            nm = mnames[k - 1];
        else if (k == 0)
            nm = "background";
        else
            snprintf(buf, sizeof buf, "class %d", k - 1), nm = buf;
        if (!names || !(names[k] = strdup(nm)))
            rc = cli_fail("segment");
    }
    /* the pixels as the picture shows them: the loaded input without the cfg's input_scale */
    float inv = o.scale > 0 ? 1.0f / o.scale : 1.0f;
    for (int i = 0; rc == 0 && i < d.n; i++) {
        const float *p = pred + (size_t)i * n_classes * hw;
        memset(count, 0, (size_t)n_classes * sizeof *count);
        for (size_t q = 0; q < hw; q++) {
            int best = 0;
            for (int k = 1; k < n_classes; k++)
                if (p[(size_t)k * hw + q] > p[(size_t)best * hw + q])
                    best = k;
            cls[q] = best;
            count[best]++;
        }
        printf("%s:", paths[i]);
        for (int k = 0; k < n_classes; k++)
            if (count[k])
                printf(" %s %.1f%%", names[k], 100.0 * (double)count[k] / (double)hw);
        printf("\n");
        if (out_dir) {
            const float *x = d.x + (size_t)i * d.sample_numel;
            for (size_t q = 0; q < d.sample_numel; q++) {
                float y = x[q] * inv;
                seen[q] = y < 0 ? 0 : y > 1 ? 1 : y;
            }
            const char *base = strrchr(paths[i], '/');
            base = base ? base + 1 : paths[i];
            char pic[1536];
            const char *dot = strrchr(base, '.');
            snprintf(pic, sizeof pic, "%s/%.*s.png", out_dir, (int)(dot ? dot - base : (long)strlen(base)), base);
            if (draw(seen, ch, h, w, cls, count, n_classes, (const char *const *)names, alpha, pic) != NERVE_OK)
                rc = cli_fail("segment");
        }
    }
    if (rc == 0)
        printf("%d images, %d classes%s%s\n", d.n, n_classes, out_dir ? "; pictures in " : "",
               out_dir ? out_dir : "");
    for (int k = 0; names && k < n_classes; k++)
        free(names[k]);
    free(names);
    free(pred);
    free(seen);
    free(cls);
    free(count);
    nerve_dataset_free(&d);
    nerve_names_free(paths, n_paths);
    nerve_model_free(m);
    free(files);
    return rc;
usage:
    free(files);
    return 2;
}
