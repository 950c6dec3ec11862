/* The course's experiments (docs/experiments.md): shared helpers of src/apps/experiment*.c.
 * Each experiment is one function exp_NAME(o) that reports through exp_say / exp_figure and
 * writes its plots with exp_path. */
#ifndef NERVE_APPS_EXPERIMENT_H
#define NERVE_APPS_EXPERIMENT_H

#include "nerve.h"

#include <stddef.h>

/* One line of text to o->print (printf-style; nothing when print is NULL). */
void exp_say(const nerve_experiment_options *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A figure a reader or a test looks up: the line "key = value" (%.6g). */
void exp_figure(const nerve_experiment_options *o, const char *key, double value);
/* out_dir/file into buf; NERVE_ERR_ARG when it does not fit. */
int exp_path(const nerve_experiment_options *o, const char *file, char *buf, size_t size);
/* The plot at out_dir/file as a line plot (nerve_svg_lineplot), and its path said. */
int exp_plot(const nerve_experiment_options *o, const char *file, const char *title, const char *xlabel,
             const double *x, int n, const nerve_series *series, int n_series);

/* Fashion-MNIST: the first n_train training images (0: all; balanced: the first n_train / 10
 * of every class when balanced != 0) and the first n_test test images (0: all), pixels in
 * [0, 1]. Either set may be NULL. */
int exp_fashion(const nerve_experiment_options *o, nerve_dataset *train, int n_train, int balanced,
                nerve_dataset *test, int n_test);

/* The 8 x 8 digits (o->digits, else python3-sklearn's copy) as [1, 8, 8] images in [0, 1]. */
int exp_digits(const nerve_experiment_options *o, nerve_dataset *d);

/* A classifier built from cfg text and compiled at `batch`, and a plain training loop (the
 * experiments change weights between steps, which nerve_fit does not allow). */
typedef struct exp_net {
    nerve_model *m;
    nerve_graph *g;
    int in, labels, loss, out, batch;
    int n_params;
    int *params; /* the trainable parameters, in creation order */
} exp_net;
int exp_net_build(exp_net *n, const char *cfg_text, const char *name);
void exp_net_free(exp_net *n);
/* Copies every trainable parameter's values into / out of one flat array of
 * nerve_graph_param_count floats. */
size_t exp_net_size(const exp_net *n);
void exp_net_save(exp_net *n, float *flat);
void exp_net_load(exp_net *n, const float *flat);
/* One epoch over b with optimiser opt at rate lr; after_step (may be NULL) runs after every
 * update. *loss (may be NULL) gets the mean training loss, *acc the training accuracy. */
int exp_train_epoch(exp_net *n, nerve_optim *opt, nerve_batcher *b, float lr, void (*after_step)(void *user),
                    void *user, double *loss, double *acc);
/* Accuracy on d (evaluation mode). */
int exp_accuracy(exp_net *n, const nerve_dataset *d, double *acc);

/* Neural collapse measures (experiment_collapse.c) of features h [n, d] with labels y (C
 * classes, each present) and a linear classifier w [C, d], b [C]: NC1 = Tr(Sigma_W
 * Sigma_B^+) / C; NC2 std / mean of the centred means' norms, std of their cosines, mean
 * |cos + 1/(C-1)|; NC3 ||W/||W|| - M/||M|| ||^2; NC4 the fraction where the classifier and
 * the nearest class mean disagree; and the classifier's training error. */
typedef struct {
    double nc1, equinorm, equiangle, maxangle, nc3, nc4, train_err;
} exp_nc_stats;
int exp_collapse_stats(const float *h, const float *y, int n, int d, int C, const float *w, const float *b,
                       exp_nc_stats *s);

int exp_lottery(const nerve_experiment_options *o);
int exp_collapse(const nerve_experiment_options *o);
int exp_recos(const nerve_experiment_options *o);
int exp_optimisers(const nerve_experiment_options *o);
int exp_gradients(const nerve_experiment_options *o);
int exp_bcd(const nerve_experiment_options *o);
int exp_perceptron(const nerve_experiment_options *o);

#endif
