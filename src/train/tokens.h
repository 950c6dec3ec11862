/* Training and evaluating on token targets (internal: src/train/fit.c): language models
 * read text as streams of chunks (nerve_dataset_text_streams) with their recurrent state
 * carried from one chunk to the next. */
#ifndef NERVE_TRAIN_TOKENS_H
#define NERVE_TRAIN_TOKENS_H

#include "nerve.h"

/* Checks that a TOKENS data set d fits model m: the label node is [N, T] with T the data's
 * target length, the output gives V >= d->n_classes scores per step; a model with carried
 * recurrent states needs streams, and to train on them (training != 0) its batch must be
 * the number of streams and every position must have a label. */
int tokens_check(nerve_model *m, const nerve_dataset *d, int training);
/* Next-token predictions of a batch: logits [n, T, V] against targets t [n, T]; returns the
 * number of correct ones and adds the labelled positions (target >= 0) to *labelled. */
int64_t tokens_correct(const float *logits, const float *t, int n, int T, int V,
                       int64_t *labelled);
/* The metrics of a language model on d (initialised here, task LANGUAGE): the negative
 * log-likelihood (nats) of every labelled position (tokens, nats; the loss per token) and
 * the accuracy of the most likely token there (counted, correct). Streams are read chunk
 * after chunk from a zero state, the carried states advancing (and restored afterwards,
 * so that an evaluation leaves a training run's state alone); independent samples start
 * every batch from a zero state. */
int tokens_evaluate(nerve_model *m, const nerve_dataset *d, nerve_metrics *mt);

#endif
