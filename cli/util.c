/* Helpers every command uses: error printing, option values, directories, data loading.
 * They call only libnerve and the C library (no other cli/ file), so the command files,
 * the argument parser (args.c) and main.c can all use them without a circle. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const char *cli_program;

int cli_fail(const char *context)
{
    const char *msg = nerve_last_error();
    size_t n = context ? strlen(context) : 0;
    /* a message that already names the file (PATH: ... or PATH:LINE: ...) is not prefixed again */
    if (context && !(n && strncmp(msg, context, n) == 0 && msg[n] == ':'))
        fprintf(stderr, "nerve: %s: %s\n", context, msg[0] ? msg : "failed");
    else
        fprintf(stderr, "nerve: %s\n", msg[0] ? msg : "failed");
    return 1;
}

int cli_parse_int(const char *opt, const char *value)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || *end || end == value || v < 1 || v > 1000000000) {
        fprintf(stderr, "nerve: %s needs a positive integer, got '%s'\n", opt, value);
        return -1;
    }
    return (int)v;
}

const char *cli_option_value(int argc, char **argv, int *i, const char *name)
{
    if (strcmp(argv[*i], name) != 0)
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "nerve: %s needs a value\n", name);
        exit(2);
    }
    *i += 1;
    return argv[*i];
}

int cli_is_image_arg(const char *s)
{
    const char *dot = strrchr(s, '.');
    struct stat sb;
    if (dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        return 1;
    return stat(s, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void cli_class_colour(int cls, float rgb[3])
{
    float h = (float)((cls * 7) % 12) / 12.0f * 6.0f;
    int i = (int)h;
    float f = h - (float)i;
    float v[6][3] = {{1, f, 0}, {1 - f, 1, 0}, {0, 1, f}, {0, 1 - f, 1}, {f, 0, 1}, {1, 0, 1 - f}};
    memcpy(rgb, v[i % 6], sizeof v[0]);
}

int cli_mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int cli_load_data(nerve_dataset *d, const char *images, const char *labels, const char *csv, float scale,
                  int label_col)
{
    int st = csv ? nerve_dataset_load_csv(d, csv, label_col)
                 : nerve_dataset_load_idx(d, images, labels, scale);
    if (st == NERVE_OK && (st = nerve_dataset_check_finite(d, csv ? csv : images)) < 0)
        nerve_dataset_free(d);
    return st;
}
