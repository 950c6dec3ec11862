/* Attacks inside the training loop (adversarial.c): buffers allocated once per run, the
 * attack on the batch already in the graph, and the robust training steps. */
#ifndef NERVE_TRAIN_ADVERSARIAL_H
#define NERVE_TRAIN_ADVERSARIAL_H

#include "../core/core.h"

typedef struct adv_scratch {
    int max_n;
    float *x0, *best;      /* [max_n, d]: the clean batch; a fooling restart's examples */
    float *seed, *clean_p; /* [max_n, classes]: logit seeds; clean probabilities */
    int *fooled, *ok;      /* [max_n] */
    float *saved_grads;    /* TRADES: the parameters' gradients of the first backward */
    size_t n_saved;
} adv_scratch;

int adv_scratch_init(adv_scratch *s, int max_n, size_t d, int classes);
void adv_scratch_free(adv_scratch *s);
/* The attack on the n samples in the input node (labels fed), leaving the examples there;
 * clean_p [n, classes] selects TRADES's objective KL(clean_p || softmax f(x')) instead of
 * the model's loss. The caller has set eval mode and the input's requires_grad. */
int adv_attack_in_graph(nerve_model *m, int n, const nerve_attack *a, nerve_rng *rng, adv_scratch *s,
                        const float *clean_p, int *fooled);
/* One robust training step's forward and backward on the batch of n in the graph (labels
 * fed, training mode): PGD replaces the input by its PGD examples and runs the model's
 * loss; TRADES computes its loss outside the graph and back-propagates it through two
 * seeded passes. *loss receives the step's loss. epoch (1-based) sets the eps warm-up. The
 * parameters' gradients are then ready for the optimiser. */
int adv_train_forward(nerve_model *m, int n, int epoch, nerve_rng *rng, adv_scratch *s, float *loss);
int adv_train_backward(nerve_model *m, int n, adv_scratch *s);
/* TRADES: room for every trainable parameter's gradient (call after compile). */
int adv_scratch_grads(adv_scratch *s, nerve_graph *g);

#endif
