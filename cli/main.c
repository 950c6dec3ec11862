/* nerve: train, evaluate, summarise and use neural networks described in cfg files. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *USAGE =
    "usage: nerve <command> [options]\n"
    "\n"
    "commands:\n"
    "  train CFG [--out DIR] [--overwrite] [--resume CKPT [--force]] [--epochs N]\n"
    "            [--threads N] [--quiet] [--init CKPT [--freeze N]] [--bag K]\n"
    "        train the network described by CFG on the data its [net] section names;\n"
    "        writes DIR/model.safetensors (checkpoint, every epoch), DIR/log.csv and\n"
    "        DIR/curves.svg and ends with the line 'test accuracy: 0.XXXX' when the cfg\n"
    "        names test data. DIR: --out DIR, else the resumed checkpoint's directory,\n"
    "        else the first free one of runs/<cfg name>, runs/<cfg name>-2, ...; a DIR\n"
    "        holding files is written over only with --overwrite. --force resumes with a\n"
    "        cfg that differs from the checkpoint's. Ctrl-C saves the epoch in progress\n"
    "        and prints the command that resumes it (exit 130); a second Ctrl-C quits\n"
    "  eval CKPT [--images F --labels F | --csv F] [--threads N]\n"
    "        accuracy and confusion matrix of a checkpoint (default: the cfg's test data)\n"
    "  predict CKPT FILE... [--top K] [--label-col K] [--threads N]\n"
    "        one line per sample: the K most likely classes (default 1), each as\n"
    "        'CLASS NAME PROBABILITY' (names from the checkpoint); FILE is IDX images, a\n"
    "        CSV of features (--label-col K: a label column to ignore), or PNG/JPEG\n"
    "        files and folders of them (each line then starts with the file's path)\n"
    "  summary CFG\n"
    "        table of layers with output shapes, parameters and FLOPs\n"
    "  sample CKPT [--length N] [--temperature X] [--prime STRING] [--seed S]\n"
    "        generate text one character at a time from a language-model checkpoint\n"
    "        (nerve train models/charlm.cfg; temperature 0: the most likely byte);\n"
    "        'textgen sample' is the same command\n"
    "  ensemble CKPT [CKPT...] [--images F --labels F | --csv F] [--tta CROP]\n"
    "        each model's accuracy and that of their averaged softmax outputs\n"
    "  viz filters CKPT [--layer NAME] [--out FILE.png]\n"
    "  viz activations CKPT IMAGE-INDEX [--layer NAME] [--out FILE.png]\n"
    "        PNG grid of a layer's weights, or of its output for one test image\n"
    "  data export IMAGES LABELS OUTDIR [--format png|jpg] [--quality Q] [--names FILE]\n"
    "              [--limit N]\n"
    "        write an IDX image/label pair as OUTDIR/<class>/<index>.png|jpg (class\n"
    "        folders named from FILE, one name a line, else the class index)\n"
    "  embed [CKPT [--layer NAME]] [--images F [--labels F] | --csv F [--label-col K|none]]\n"
    "        [--method tsne|pca] [--limit N] [--pca-dims K] [--perplexity P] [--iterations N]\n"
    "        [--theta T] [--init pca|random] [--seed S] [--names FILE] [--out FILE.svg]\n"
    "        [--coords FILE.csv] [--quiet]\n"
    "        vectors (raw samples, or a checkpoint's features at a layer, default its output;\n"
    "        default data: its cfg's test data) onto a plane by t-SNE (after PCA to K = 50\n"
    "        dimensions; --pca-dims 0: none; exact up to 1000 points, else Barnes-Hut theta\n"
    "        0.5) or PCA: an SVG scatter coloured by label and the coordinates as CSV\n"
    "  pca --images F | --csv F [--label-col K|none] [--limit N] [--k K] [--standardise]\n"
    "      [--scree FILE.svg]"
    " [--reconstruct K [--test-images F | --test-csv F]]\n"
    "        variance, proportion and cumulative proportion of the top K components (default\n"
    "        10), a scree plot, the mean squared error of reconstructions from K components\n"
    "  curse [--n N] [--queries Q]\n"
    "        the curse of dimensionality in numbers: ball/cube volume, the edge of a cube\n"
    "        holding 1%, the median nearest neighbour, the nearest/farthest distance ratio\n"
    "  help     this text\n"
    "  version  the version\n"
    "\n"
    "Exit status: 0 done, 1 failed, 2 usage error, 130 interrupted (Ctrl-C).\n"
    "Threads default to $NERVE_THREADS, else every core. See docs/cli.md, docs/cfg.md and\n"
    "docs/textgen.md.\n";

const char *cli_program;

int cli_fail(const char *context)
{
    const char *msg = nerve_last_error();
    if (context)
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
    if (errno || *end || v < 1 || v > 1000000000) {
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

int main(int argc, char **argv)
{
    cli_program = argv[0];
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("nerve %s\n", NERVE_VERSION);
        return 0;
    }
    /* Options every command takes: --help, and --threads N (removed from argv here). */
    int kept = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        const char *v = cli_option_value(argc, argv, &i, "--threads");
        if (v) {
            int t = cli_parse_int("--threads", v);
            if (t < 0)
                return 2;
            nerve_set_threads(t);
        } else
            argv[kept++] = argv[i];
    }
    argc = kept;
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "summary"))
        return cmd_summary(argc - 2, argv + 2);
    if (!strcmp(cmd, "sample"))
        return cmd_sample(argc - 2, argv + 2);
    if (!strcmp(cmd, "textgen"))
        return cmd_textgen(argc - 2, argv + 2);
    if (!strcmp(cmd, "ensemble"))
        return cmd_ensemble(argc - 2, argv + 2);
    if (!strcmp(cmd, "viz"))
        return cmd_viz(argc - 2, argv + 2);
    if (!strcmp(cmd, "data"))
        return cmd_data(argc - 2, argv + 2);
    if (!strcmp(cmd, "embed"))
        return cmd_embed(argc - 2, argv + 2);
    if (!strcmp(cmd, "pca"))
        return cmd_pca(argc - 2, argv + 2);
    if (!strcmp(cmd, "curse"))
        return cmd_curse(argc - 2, argv + 2);
    fprintf(stderr, "nerve: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}
