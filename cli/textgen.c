/* nerve sample CKPT (also nerve textgen sample CKPT): text from a language-model checkpoint
 * (models/charlm.cfg trained by nerve train). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_float(const char *opt, const char *value, float lo, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(value, &end);
    if (errno || *end || !(v >= lo) || !isfinite(v)) {
        fprintf(stderr, "nerve sample: %s needs a number >= %g, got '%s'\n", opt, (double)lo,
                value);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *opt, const char *value, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || *end || value[0] == '-' || !value[0]) {
        fprintf(stderr, "nerve sample: %s needs a non-negative integer, got '%s'\n", opt, value);
        return -1;
    }
    *out = v;
    return 0;
}

/* --name VALUE as a positive int; returns 1 if matched, -1 on a bad value, 0 otherwise. */
static int int_option(int argc, char **argv, int *i, const char *name, int *out)
{
    const char *v = cli_option_value(argc, argv, i, name);
    if (!v)
        return 0;
    return (*out = cli_parse_int(name, v)) < 0 ? -1 : 1;
}

static int textgen_sample(int argc, char **argv)
{
    const char *ckpt = NULL, *prime = "", *v;
    int length = 200;
    float temperature = 0.8f;
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        int r;
        if ((r = int_option(argc, argv, &i, "--length", &length))) {
            if (r < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--prime")))
            prime = v;
        else if ((v = cli_option_value(argc, argv, &i, "--temperature"))) {
            if (parse_float("--temperature", v, 0, &temperature) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (parse_u64("--seed", v, &seed) < 0)
                return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve sample: unknown option '%s' (nerve sample --help)\n", argv[i]);
            return 2;
        } else if (!ckpt) {
            ckpt = argv[i];
        } else {
            fprintf(stderr, "nerve sample: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "nerve sample: missing CKPT\n");
        return 2;
    }
    nerve_textgen *t = nerve_textgen_load(ckpt);
    if (!t)
        return cli_fail(NULL);
    char *buf = malloc((size_t)length);
    int n = buf ? nerve_textgen_sample(t, prime, strlen(prime), length, temperature, seed, buf)
                : NERVE_ERR_NOMEM;
    int rc = 0;
    if (n < 0) {
        rc = cli_fail(NULL);
    } else {
        fputs(prime, stdout);
        fwrite(buf, 1, (size_t)n, stdout);
        fputc('\n', stdout);
    }
    free(buf);
    nerve_textgen_free(t);
    return rc;
}

int cmd_sample(int argc, char **argv) { return textgen_sample(argc, argv); }

int cmd_textgen(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "sample"))
        return textgen_sample(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "train")) {
        fprintf(stderr, "nerve textgen train: a language model trains like any model now: "
                        "nerve train models/charlm.cfg (its train_text= names the text; see "
                        "docs/textgen.md)\n");
        return 2;
    }
    fprintf(stderr, "nerve textgen: expected 'sample CKPT' (nerve textgen --help)\n");
    return 2;
}
