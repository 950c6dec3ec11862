/* The nerve command line: argument parsing and printing only; the work is libnerve's.
 *
 * Files and who calls whom (no circle): main.c dispatches through the command table
 * (commands.c) after args.c has checked and normalised the arguments; each command lives in
 * its own file (train.c, use.c, ...) and uses the shared helpers of util.c and metrics.c,
 * which call nothing else in cli/. */
#ifndef NERVE_CLI_H
#define NERVE_CLI_H

#include "nerve.h"

#include <stdio.h>

/* ---- the command table (commands.c) --------------------------------------------------- */

/* One option of a command: name ("--epochs"), the value's placeholder ("N"; NULL for a
 * flag), the default in words (NULL: none) and a one-line description. */
typedef struct cli_option {
    const char *name;
    const char *arg;
    const char *def;
    const char *help;
} cli_option;

/* One command: its name, handler (NULL: handled by main.c), usage lines without the leading
 * "nerve " ('\n' between alternatives), a one-line summary, a paragraph of details (may be
 * NULL), its options (ended by a row whose name is NULL) and one example command line. */
typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
    const char *summary;
    const char *details;
    const cli_option *options;
    const char *example;
} cli_command;

typedef struct cli_exit_status {
    int code; /* a NULL meaning ends the list */
    const char *brief; /* a few words, for --help */
    const char *meaning;
} cli_exit_status;

extern const cli_command cli_commands[];
extern const int cli_n_commands;
/* Options every command takes (--threads, --help); ended by a NULL name. */
extern const cli_option cli_global_options[];
extern const cli_exit_status cli_exit_statuses[];

/* ---- arguments and help (args.c) ------------------------------------------------------ */

/* The row of a command, or NULL. */
const cli_command *cli_find_command(const char *name);
/* The candidate closest to word (edit distance; ties: the first), or NULL when n is 0. */
const char *cli_closest(const char *word, const char *const *candidates, int n);
/* Checks the arguments after the command name against the command's row and the global
 * options: `--opt=value` becomes `--opt value`, `--threads N` is applied and removed,
 * `--help`/`-h` sets *help. An unknown option (naming the closest valid one), a flag given a
 * value or a missing value prints a message and returns -1 (a usage error). Otherwise returns
 * 0 and sets *out_argv (a NULL-terminated array to free with free(); its strings are argv's
 * or point into them) and *out_argc. */
int cli_parse_args(const cli_command *c, int argc, char **argv, int *out_argc, char ***out_argv, int *help);
/* `nerve CMD --help`: usage, details, options with defaults, global options, example. */
void cli_print_help(FILE *f, const cli_command *c);
/* `nerve help`: the usage lines and summaries of every command. */
void cli_print_overview(FILE *f);
/* `nerve help --man`: the manual page nerve.1 (roff). */
void cli_print_man(FILE *f);
/* `nerve help --markdown`: the reference section of docs/cli.md. */
void cli_print_markdown(FILE *f);

/* ---- the commands --------------------------------------------------------------------- */

int cmd_train(int argc, char **argv);
int cmd_style(int argc, char **argv);
/* nerve viz classmodel|dream|invert|neighbours|top (cli/viz_ascent.c); argv[0] is the mode. */
int viz_ascent(int argc, char **argv);
/* nerve attack's arguments (cli/attack.c), and its fooling-image and patch modes (cli/fool.c). */
#define MAX_SWEEP 32
enum { ATTACK_ACCURACY = 0, ATTACK_FOOL, ATTACK_PATCH };
typedef struct attack_args {
    const char *ckpt, *images, *labels, *csv, *plot, *out, *names;
    int fgsm, pgd, limit, mode, steps_given, step_given, size, train_limit;
    int classes[MAX_SWEEP], n_classes;
    float confidence;
    double eps[MAX_SWEEP];
    int n_eps, sweep;
    nerve_attack a; /* steps, step, restarts, norm, range, seed */
} attack_args;
int attack_fool_or_patch(const attack_args *a);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_textgen(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_ensemble(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_data(int argc, char **argv); /* cli/data.c */
int cmd_embed(int argc, char **argv); /* cli/embed.c */
int cmd_pca(int argc, char **argv);
int cmd_curse(int argc, char **argv);
int cmd_export_c(int argc, char **argv); /* cli/export.c */
int cmd_export_onnx(int argc, char **argv); /* cli/export.c */
int cmd_convert(int argc, char **argv);     /* cli/export.c */
int cmd_quantize(int argc, char **argv); /* cli/quantize.c */
int cmd_run(int argc, char **argv);  /* cli/run.c: an ONNX model's forward pass */
int cmd_explain(int argc, char **argv); /* cli/explain.c */
int cmd_attack(int argc, char **argv);  /* cli/attack.c */
int cmd_experiment(int argc, char **argv); /* cli/experiment.c */
int cmd_detect(int argc, char **argv);  /* cli/detect.c */
int cmd_segment(int argc, char **argv); /* cli/segment.c */
int cmd_slide(int argc, char **argv);   /* cli/slide.c */
int cmd_profile(int argc, char **argv); /* cli/profile.c */
/* nerve train CFG --bag K (cli/ensemble.c): trains K members of the cfg on bootstrap
 * resamples of train, saving DIR/member-<k>.safetensors; reports the ensemble on test. */
int cli_train_bag(const char *cfg, const char *dir, int bag, const nerve_dataset *train, const nerve_dataset *val,
                  const nerve_dataset *test, int epochs);

/* ---- shared helpers (util.c, metrics.c) ----------------------------------------------- */

/* argv[0] of the nerve process (how to print a command that runs it again). */
extern const char *cli_program;
/* Prints "nerve: <message>" for the library's last error and returns 1. */
int cli_fail(const char *context);
/* Parses a positive integer option value; prints an error and returns -1 if invalid. */
int cli_parse_int(const char *opt, const char *value);
/* True if a is the option name (e.g. "--epochs") and a value follows; advances *i. */
const char *cli_option_value(int argc, char **argv, int *i, const char *name);
/* Whether a command-line input is an image: a .png/.jpg/.jpeg name or a folder. */
int cli_is_image_arg(const char *s);
/* Creates a directory and its parents (like mkdir -p); 0 on success. */
int cli_mkdirs(const char *path);
/* A distinct colour per class index (hues around the circle, full saturation), as
 * nerve detect draws boxes and nerve segment tints pixels. */
void cli_class_colour(int cls, float rgb[3]);
/* Prints the figures of mt that apply to its task as "<set> <figure>: value" lines; detail
 * adds the confusion matrix and per-class precision/recall/F1 (IoU for masks). names: class
 * names (may be NULL). (cli/metrics.c) */
void cli_print_metrics(const nerve_metrics *mt, const char *set, int detail, const char *const *names,
                       int n_names);
/* Loads IDX images/labels or a CSV file for predict/eval. */
int cli_load_data(nerve_dataset *d, const char *images, const char *labels, const char *csv, float scale,
                  int label_col);

#endif
