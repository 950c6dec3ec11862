/* nerve data export: an IDX image/label pair written as a folder tree of PNG or JPEG files,
 * one subfolder per class (the image folder that train_folder= reads).
 * nerve data scenes: generated detection and segmentation scenes (docs/detection.md). */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *EXPORT_USAGE =
    "usage: nerve data export IMAGES LABELS OUTDIR [--format png|jpg] [--quality Q]\n"
    "                         [--names FILE] [--limit N]\n";

static int cmd_data_export(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *format = "png", *names_path = NULL, *v;
    int quality = 95, limit = 0, npos = 0;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--format")))
            format = v;
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            names_path = v;
        else if ((v = cli_option_value(argc, argv, &i, "--quality"))) {
            if ((quality = cli_parse_int("--quality", v)) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--limit"))) {
            if ((limit = cli_parse_int("--limit", v)) < 0)
                return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve data export: unknown option '%s'\n%s", argv[i], EXPORT_USAGE);
            return 2;
        } else if (npos < 3)
            pos[npos++] = argv[i];
        else {
            fprintf(stderr, "nerve data export: unexpected argument '%s'\n%s", argv[i], EXPORT_USAGE);
            return 2;
        }
    }
    if (npos != 3) {
        fputs(EXPORT_USAGE, stderr);
        return 2;
    }
    if (strcmp(format, "png") && strcmp(format, "jpg") && strcmp(format, "jpeg")) {
        fprintf(stderr, "nerve data export: --format is png or jpg, not '%s'\n", format);
        return 2;
    }
    char **names = NULL;
    int n_names = 0;
    if (names_path && nerve_names_load(names_path, &names, &n_names) != NERVE_OK)
        return cli_fail(NULL);
    nerve_dataset d;
    if (nerve_dataset_load_idx(&d, pos[0], pos[1], 1.0f / 255) != NERVE_OK) {
        nerve_names_free(names, n_names);
        return cli_fail(NULL);
    }
    if (limit > 0 && limit < d.n)
        d.n = limit; /* the first N samples (the arrays are freed by size-independent calls) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = nerve_dataset_export_images(&d, pos[2], format, quality, (const char *const *)names,
                                         n_names);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = 0;
    if (st != NERVE_OK)
        rc = cli_fail("export");
    else
        printf("wrote %d %s images in %d class folders to %s (%.1f s)\n", d.n,
               format[0] == 'p' ? "PNG" : "JPEG", d.n_classes, pos[2],
               (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    nerve_dataset_free(&d);
    nerve_names_free(names, n_names);
    return rc;
}

static const char *SCENES_USAGE =
    "usage: nerve data scenes OUTDIR [--canvas 96] [--train 2000] [--test 500]\n"
    "                         [--objects 1-4] [--sizes 24-48] [--overlap 0.2] [--clutter 0]\n"
    "                         [--seed 1] [--source DIR] [--names FILE]\n"
    "  (--names: classes.names's lines; default: Fashion-MNIST's names for the default\n"
    "  source, class0, class1, .. for another)\n"
    "  scenes of Fashion-MNIST items (from DIR, default /usr/share/datasets/fashion-mnist:\n"
    "  train-/t10k-images-idx3-ubyte.gz and their labels) as a darknet-style list data set:\n"
    "  OUTDIR/train.txt, test.txt, classes.names, images/, labels/ (YOLO boxes), masks/\n";

/* "A-B" or "A" into lo, hi; -1 on a bad value (message printed) */
static int parse_range(const char *opt, const char *v, int *lo, int *hi)
{
    char a[32];
    const char *dash = strchr(v, '-');
    size_t n = dash ? (size_t)(dash - v) : strlen(v);
    if (n == 0 || n >= sizeof a) {
        fprintf(stderr, "nerve data scenes: %s takes N or MIN-MAX, not '%s'\n", opt, v);
        return -1;
    }
    memcpy(a, v, n);
    a[n] = '\0';
    if ((*lo = cli_parse_int(opt, a)) < 0 || (*hi = dash ? cli_parse_int(opt, dash + 1) : *lo) < 0)
        return -1;
    if (*hi < *lo) {
        fprintf(stderr, "nerve data scenes: %s %s: the minimum is above the maximum\n", opt, v);
        return -1;
    }
    return 0;
}

static int cmd_data_scenes(int argc, char **argv)
{
    nerve_scenes_options o = nerve_scenes_default();
    const char *out = NULL, *src = "/usr/share/datasets/fashion-mnist", *names_path = NULL, *v;
    for (int i = 0; i < argc; i++) {
        int bad = 0;
        if ((v = cli_option_value(argc, argv, &i, "--canvas")))
            bad = (o.canvas = cli_parse_int("--canvas", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--train")))
            bad = (o.n_train = cli_parse_int("--train", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--test")))
            bad = (o.n_test = cli_parse_int("--test", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--objects")))
            bad = parse_range("--objects", v, &o.min_objects, &o.max_objects) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--sizes")))
            bad = parse_range("--sizes", v, &o.min_size, &o.max_size) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--clutter")))
            bad = (o.clutter = cli_parse_int("--clutter", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--seed")))
            bad = (o.seed = (uint64_t)cli_parse_int("--seed", v)) > (uint64_t)INT32_MAX;
        else if ((v = cli_option_value(argc, argv, &i, "--overlap"))) {
            char *end;
            o.max_overlap = strtof(v, &end);
            if (end == v || *end) {
                fprintf(stderr, "nerve data scenes: --overlap takes a number, not '%s'\n", v);
                bad = 1;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--source")))
            src = v;
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            names_path = v;
        else if (argv[i][0] == '-' || out) {
            fprintf(stderr, "nerve data scenes: %s '%s'\n%s",
                    argv[i][0] == '-' ? "unknown option" : "unexpected argument", argv[i], SCENES_USAGE);
            return 2;
        } else
            out = argv[i];
        if (bad)
            return 2;
    }
    if (!out) {
        fputs(SCENES_USAGE, stderr);
        return 2;
    }
    char paths[4][4200];
    const char *files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int k = 0; k < 4; k++)
        if (snprintf(paths[k], sizeof paths[k], "%s/%s", src, files[k]) >= (int)sizeof paths[k]) {
            fprintf(stderr, "nerve data scenes: --source path too long\n");
            return 2;
        }
    o.train_images = paths[0], o.train_labels = paths[1];
    o.test_images = paths[2], o.test_labels = paths[3];
    static const char *const fashion[10] = {"T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    char **names = NULL;
    int n_names = 0;
    if (names_path && nerve_names_load(names_path, &names, &n_names) != NERVE_OK)
        return cli_fail(NULL);
    o.names = (const char *const *)names;
    o.n_names = n_names;
    if (!names_path && !strcmp(src, "/usr/share/datasets/fashion-mnist")) {
        o.names = fashion; /* the default source's classes */
        o.n_names = 10;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nerve_scenes_stats s;
    int st = nerve_scenes_generate(out, &o, &s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    nerve_names_free(names, n_names);
    if (st != NERVE_OK)
        return cli_fail("scenes");
    printf("wrote %d training scenes (%d objects) and %d test scenes (%d objects), %dx%d, to %s "
           "(%.1f s)\n", s.train_scenes, s.train_objects, s.test_scenes, s.test_objects, o.canvas,
           o.canvas, out,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}

int cmd_data(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "export"))
        return cmd_data_export(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "scenes"))
        return cmd_data_scenes(argc - 1, argv + 1);
    fprintf(stderr, "nerve data: unknown or missing subcommand (export, scenes)\n%s%s", EXPORT_USAGE,
            SCENES_USAGE);
    return 2;
}
