/* The nerve command line: argument parsing and printing only; the work is libnerve's. */
#ifndef NERVE_CLI_H
#define NERVE_CLI_H

#include "nerve.h"

int cmd_train(int argc, char **argv);
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
/* nerve train CFG --bag K (cli/ensemble.c): trains K members of the cfg on bootstrap
 * resamples of train, saving DIR/member-<k>.safetensors; reports the ensemble on test. */
int cli_train_bag(const char *cfg, const char *dir, int bag, const nerve_dataset *train, const nerve_dataset *val,
                  const nerve_dataset *test, int epochs);

/* argv[0] of the nerve process (how to print a command that runs it again). */
extern const char *cli_program;
/* Prints "nerve: <message>" for the library's last error and returns 1. */
int cli_fail(const char *context);
/* Parses a positive integer option value; prints an error and returns -1 if invalid. */
int cli_parse_int(const char *opt, const char *value);
/* True if a is the option name (e.g. "--epochs") and a value follows; advances *i. */
const char *cli_option_value(int argc, char **argv, int *i, const char *name);
/* Creates a directory and its parents (like mkdir -p); 0 on success. */
int cli_mkdirs(const char *path);
/* Prints the figures of mt that apply to its task as "<set> <figure>: value" lines; detail
 * adds the confusion matrix and per-class precision/recall/F1 (IoU for masks). names: class
 * names (may be NULL). (cli/metrics.c) */
void cli_print_metrics(const nerve_metrics *mt, const char *set, int detail, const char *const *names,
                       int n_names);
/* Loads IDX images/labels or a CSV file for predict/eval. */
int cli_load_data(nerve_dataset *d, const char *images, const char *labels, const char *csv, float scale,
                  int label_col);

#endif
