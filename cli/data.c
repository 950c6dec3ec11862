/* nerve data export: an IDX image/label pair written as a folder tree of PNG or JPEG files,
 * one subfolder per class (the image folder that train_folder= reads). */
#include "cli.h"

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

int cmd_data(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "export"))
        return cmd_data_export(argc - 1, argv + 1);
    fprintf(stderr, "nerve data: unknown or missing subcommand (export)\n%s", EXPORT_USAGE);
    return 2;
}
