/* nerve textgen train TEXTFILE | sample CKPT: a character-level language model. */
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
        fprintf(stderr, "nerve textgen: %s needs a number >= %g, got '%s'\n", opt, (double)lo,
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
        fprintf(stderr, "nerve textgen: %s needs a non-negative integer, got '%s'\n", opt, value);
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

static void on_report(const nerve_textgen_report *r, void *user)
{
    (void)user;
    printf("step %6" PRId64 "/%" PRId64 "  train %.4f bits/char", r->step, r->steps, r->train_bpc);
    if (!isnan(r->val_bpc))
        printf("  held-out %.4f bits/char", r->val_bpc);
    printf("  %.0f chars/s\n", r->chars_per_sec);
    fflush(stdout);
}

static void print_sample(nerve_textgen *t, float temperature, uint64_t seed)
{
    char buf[400];
    int n = nerve_textgen_sample(t, NULL, 0, (int)sizeof buf, temperature, seed, buf);
    if (n < 0)
        return;
    printf("sample (temperature %g):\n", (double)temperature);
    fwrite(buf, 1, (size_t)n, stdout);
    printf("\n");
}

static int textgen_train(int argc, char **argv)
{
    nerve_textgen_config c = nerve_textgen_default();
    const char *file = NULL, *out = "runs/textgen", *v;
    float temperature = 0.8f;
    int steps = 0;
    for (int i = 0; i < argc; i++) {
        int r = 0;
        if ((v = cli_option_value(argc, argv, &i, "--out")))
            out = v;
        else if ((r = int_option(argc, argv, &i, "--hidden", &c.hidden)) ||
                 (r = int_option(argc, argv, &i, "--seq", &c.seq)) ||
                 (r = int_option(argc, argv, &i, "--batch", &c.batch)) ||
                 (r = int_option(argc, argv, &i, "--steps", &steps)) ||
                 (r = int_option(argc, argv, &i, "--embed", &c.embed)) ||
                 (r = int_option(argc, argv, &i, "--eval-every", &c.eval_every))) {
            if (r < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--lr"))) {
            if (parse_float("--lr", v, 1e-12f, &c.lr) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--clip"))) {
            if (parse_float("--clip", v, 0, &c.clip) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--holdout"))) {
            if (parse_float("--holdout", v, 0, &c.holdout) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--temperature"))) {
            if (parse_float("--temperature", v, 0, &temperature) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (parse_u64("--seed", v, &c.seed) < 0)
                return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve textgen train: unknown option '%s' (see nerve help)\n", argv[i]);
            return 2;
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "nerve textgen train: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "nerve textgen train: missing TEXTFILE\n");
        return 2;
    }
    if (steps > 0)
        c.steps = steps;
    printf("training a character LSTM on %s: hidden %d, %s input, seq %d, batch %d, %" PRId64
           " steps, lr %g, %d threads\n",
           file, c.hidden, c.embed ? "embedded" : "one-hot", c.seq, c.batch, c.steps,
           (double)c.lr, nerve_threads());
    fflush(stdout);
    nerve_textgen_report last;
    nerve_textgen *t = nerve_textgen_train_file(file, &c, on_report, NULL, &last);
    if (!t)
        return cli_fail(NULL);
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", out);
    int rc = 0;
    if (cli_mkdirs(out) != 0) { /* made only now, so that a failed run leaves nothing */
        fprintf(stderr, "nerve: cannot create the output directory %s\n", out);
        rc = 1;
    } else if (nerve_textgen_save(t, ckpt) != NERVE_OK) {
        rc = cli_fail(NULL);
    } else {
        printf("vocabulary %d bytes; trained in %.1fs; checkpoint %s\n",
               nerve_textgen_vocab(t, NULL, 0), last.seconds, ckpt);
        if (!isnan(last.val_bpc))
            printf("held-out bits per character: %.4f\n", last.val_bpc);
        print_sample(t, temperature, c.seed);
    }
    nerve_textgen_free(t);
    return rc;
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
            fprintf(stderr, "nerve textgen sample: unknown option '%s' (see nerve help)\n", argv[i]);
            return 2;
        } else if (!ckpt) {
            ckpt = argv[i];
        } else {
            fprintf(stderr, "nerve textgen sample: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "nerve textgen sample: missing CKPT\n");
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

int cmd_textgen(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "nerve textgen: expected 'train TEXTFILE' or 'sample CKPT' (see nerve help)\n");
        return 2;
    }
    if (!strcmp(argv[0], "train"))
        return textgen_train(argc - 1, argv + 1);
    if (!strcmp(argv[0], "sample"))
        return textgen_sample(argc - 1, argv + 1);
    fprintf(stderr, "nerve textgen: unknown subcommand '%s'; expected train or sample\n", argv[0]);
    return 2;
}
