/* RECOS (COURSE.md §11, slides/000): a network trained on images and tested on their negatives
 * 1 - x, and the reverse. The slides' LeNet-5 on MNIST: 98.94% on the test set, 37.36% on its
 * negatives. Here: a LeNet-5 on Fashion-MNIST and an MLP on the 8 x 8 digits, each trained on
 * the positives, on the negatives, and on both, and tested on the positives and the
 * negatives of the test images. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char lenet5_cfg[] = "[net]\nheight=28\nwidth=28\nchannels=1\nbatch=64\nseed=%llu\noptimizer=adam\n"
                                 "learning_rate=0.001\nclasses=10\n\n"
                                 "[convolutional]\nfilters=6\nsize=5\npad=1\nactivation=relu\n\n"
                                 "[maxpool]\nsize=2\nstride=2\n\n"
                                 "[convolutional]\nfilters=16\nsize=5\nactivation=relu\n\n"
                                 "[maxpool]\nsize=2\nstride=2\n\n"
                                 "[connected]\noutput=120\nactivation=relu\n\n"
                                 "[connected]\noutput=84\nactivation=relu\n\n"
                                 "[connected]\noutput=10\n\n[softmax]\n";
static const char digits_cfg[] = "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=32\nseed=%llu\noptimizer=adam\n"
                                 "learning_rate=0.003\nclasses=10\n\n"
                                 "[connected]\noutput=128\nactivation=relu\n\n"
                                 "[connected]\noutput=10\n\n[softmax]\n";

/* dst = 1 - src, sample for sample (labels kept). */
static int negative(const nerve_dataset *src, nerve_dataset *dst)
{
    int *idx = nerve_xmalloc((size_t)src->n * sizeof(int));
    if (!idx)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < src->n; i++)
        idx[i] = i;
    memset(dst, 0, sizeof *dst);
    int st = nerve_dataset_gather(dst, src, idx, src->n);
    nerve_xfree(idx);
    if (st != NERVE_OK)
        return st;
    dst->n_classes = src->n_classes;
    size_t total = (size_t)src->n * src->sample_numel;
    for (size_t i = 0; i < total; i++)
        dst->x[i] = 1.0f - src->x[i];
    return NERVE_OK;
}

/* dst = a followed by b. */
static int concat(const nerve_dataset *a, const nerve_dataset *b, nerve_dataset *dst)
{
    memset(dst, 0, sizeof *dst);
    int st = nerve_dataset_alloc(dst, a->n + b->n, a->ndim, a->dims);
    if (st != NERVE_OK)
        return st;
    memcpy(dst->x, a->x, (size_t)a->n * a->sample_numel * sizeof(float));
    memcpy(dst->x + (size_t)a->n * a->sample_numel, b->x, (size_t)b->n * b->sample_numel * sizeof(float));
    memcpy(dst->y, a->y, (size_t)a->n * sizeof(float));
    memcpy(dst->y + a->n, b->y, (size_t)b->n * sizeof(float));
    dst->n_classes = a->n_classes;
    return NERVE_OK;
}

/* Trains a fresh network of cfg on train for `epochs`, then its accuracy on pos and neg. */
static int train_and_test(const char *cfg, const nerve_dataset *train, int epochs, uint64_t seed,
                          const nerve_dataset *pos, const nerve_dataset *neg, double *acc_pos, double *acc_neg)
{
    exp_net net;
    int st = exp_net_build(&net, cfg, "recos");
    if (st != NERVE_OK)
        return st;
    const nerve_net_config *c = nerve_model_config(net.m);
    nerve_optim *opt = nerve_optim_create(net.g, &c->optim);
    nerve_batcher b;
    memset(&b, 0, sizeof b);
    st = opt ? nerve_batcher_init(&b, train, net.batch, 1, seed) : nerve_last_status();
    for (int e = 0; e < epochs && st == NERVE_OK; e++)
        st = exp_train_epoch(&net, opt, &b, c->schedule.lr, NULL, NULL, NULL, NULL);
    if (st == NERVE_OK)
        st = exp_accuracy(&net, pos, acc_pos);
    if (st == NERVE_OK)
        st = exp_accuracy(&net, neg, acc_neg);
    nerve_batcher_free(&b);
    nerve_optim_free(opt);
    exp_net_free(&net);
    return st;
}

/* The three trainings on one data set; figures recos.<set>.<trained>_on_<tested>. */
static int recos_set(const nerve_experiment_options *o, const char *set, const char *cfg_text,
                     const nerve_dataset *train, const nerve_dataset *test, int epochs, double acc[3][2])
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg, cfg_text, (unsigned long long)o->seed);
    nerve_dataset train_neg, test_neg, both;
    int st = negative(train, &train_neg);
    if (st != NERVE_OK)
        return st;
    if ((st = negative(test, &test_neg)) != NERVE_OK) {
        nerve_dataset_free(&train_neg);
        return st;
    }
    if ((st = concat(train, &train_neg, &both)) != NERVE_OK) {
        nerve_dataset_free(&train_neg);
        nerve_dataset_free(&test_neg);
        return st;
    }
    const nerve_dataset *sets[3] = {train, &train_neg, &both};
    static const char *const names[3] = {"positives", "negatives", "both"};
    static const char *const keys[3] = {"pos", "neg", "both"};
    uint64_t order = o->seed * 13 + 1;
    for (int k = 0; k < 3 && st == NERVE_OK; k++) {
        if ((st = train_and_test(cfg, sets[k], epochs, order, test, &test_neg, &acc[k][0], &acc[k][1])) != NERVE_OK)
            break;
        acc[k][0] *= 100, acc[k][1] *= 100;
        exp_say(o, "%-16s trained on %-9s (%5d images): %6.2f%% on positives, %6.2f%% on negatives", set, names[k],
                sets[k]->n, acc[k][0], acc[k][1]);
        char key[96];
        snprintf(key, sizeof key, "recos.%s.%s_on_pos", set, keys[k]);
        exp_figure(o, key, acc[k][0]);
        snprintf(key, sizeof key, "recos.%s.%s_on_neg", set, keys[k]);
        exp_figure(o, key, acc[k][1]);
    }
    nerve_dataset_free(&train_neg);
    nerve_dataset_free(&test_neg);
    nerve_dataset_free(&both);
    return st;
}

int exp_recos(const nerve_experiment_options *o)
{
    int quick = o->quick;
    int n_train = o->train ? o->train : quick ? 400 : 20000, n_test = quick ? 200 : 0;
    int epochs = o->epochs ? o->epochs : quick ? 1 : 3;
    double fa[3][2], da[3][2];
    nerve_dataset train, test;
    int st = exp_fashion(o, &train, n_train, 0, &test, n_test);
    if (st != NERVE_OK)
        return st;
    exp_say(o, "recos: LeNet-5 (ReLU, max pooling, no input normalisation) on Fashion-MNIST, Adam 0.001, batch 64, "
               "%d epochs; tested on the %d test images and on their negatives 1 - x",
            epochs, test.n);
    st = recos_set(o, "fashion", lenet5_cfg, &train, &test, epochs, fa);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    if (st != NERVE_OK)
        return st;
    /* the digits: the first 1200 train, the other 597 test */
    nerve_dataset all, dtrain, dtest;
    if ((st = exp_digits(o, &all)) != NERVE_OK)
        return st;
    int cut = quick ? 300 : 1200, rest = quick ? 200 : all.n - 1200;
    int *idx = nerve_xmalloc((size_t)all.n * sizeof(int));
    if (!idx) {
        nerve_dataset_free(&all);
        return NERVE_ERR_NOMEM;
    }
    for (int i = 0; i < all.n; i++)
        idx[i] = i;
    memset(&dtrain, 0, sizeof dtrain);
    memset(&dtest, 0, sizeof dtest);
    st = nerve_dataset_gather(&dtrain, &all, idx, cut);
    if (st == NERVE_OK)
        st = nerve_dataset_gather(&dtest, &all, idx + cut, rest);
    nerve_xfree(idx);
    dtrain.n_classes = dtest.n_classes = all.n_classes;
    nerve_dataset_free(&all);
    int depochs = o->epochs ? o->epochs : quick ? 3 : 40;
    if (st == NERVE_OK) {
        exp_say(o, "recos: an MLP 64-128-10 (ReLU) on the 8x8 digits (pixels / 16), %d training and %d test "
                   "digits, Adam 0.003, batch 32, %d epochs",
                dtrain.n, dtest.n, depochs);
        st = recos_set(o, "digits", digits_cfg, &dtrain, &dtest, depochs, da);
    }
    nerve_dataset_free(&dtrain);
    nerve_dataset_free(&dtest);
    if (st != NERVE_OK)
        return st;
    /* accuracy on positives (x = 0) and negatives (x = 1), one line per training */
    double x[2] = {0, 1}, y[6][2];
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 2; j++)
            y[k][j] = fa[k][j], y[3 + k][j] = da[k][j];
    nerve_series s[6] = {{"Fashion-MNIST, trained on positives", y[0]}, {"Fashion-MNIST, trained on negatives", y[1]},
                         {"Fashion-MNIST, trained on both", y[2]},      {"digits, trained on positives", y[3]},
                         {"digits, trained on negatives", y[4]},        {"digits, trained on both", y[5]}};
    return exp_plot(o, "recos.svg", "RECOS: test accuracy (%) on positives (0) and negatives (1)",
                    "tested on: 0 = positives, 1 = negatives 1 - x", x, 2, s, 6);
}
