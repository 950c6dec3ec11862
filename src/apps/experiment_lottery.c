/* Lottery tickets (Frankle & Carbin 2019; COURSE.md §11): iterative magnitude pruning of
 * LeNet-300-100 on Fashion-MNIST. Train the dense network from its initialisation theta_0;
 * each round removes, layer by layer, the fraction `rate` of the remaining weights with the
 * smallest magnitude after training (rate / 2 in the output layer, as the paper does), then
 * trains the sparse network twice: rewound to theta_0 (the ticket) and re-initialised from
 * another draw of the same initialiser (the control). Pruned weights are held at zero after
 * every update; biases are never pruned. The next round prunes the trained ticket. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char lenet300[] = "[net]\nheight=28\nwidth=28\nchannels=1\nbatch=60\nseed=%llu\n"
                               "optimizer=adam\nlearning_rate=0.0012\nclasses=10\n\n"
                               "[connected]\noutput=300\nactivation=relu\n\n"
                               "[connected]\noutput=100\nactivation=relu\n\n"
                               "[connected]\noutput=10\n\n[softmax]\n";

typedef struct {
    exp_net *net;
    int n_layers;
    int node[8];    /* the weight parameters pruned */
    float *mask[8]; /* 1 kept, 0 pruned */
    size_t size[8];
} pruning;

static void apply_mask(void *user)
{
    pruning *p = user;
    for (int l = 0; l < p->n_layers; l++) {
        float *w = nerve_value(p->net->g, p->node[l]).data;
        const float *m = p->mask[l];
        for (size_t i = 0; i < p->size[l]; i++)
            w[i] *= m[i];
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Removes the fraction `rate` of layer l's remaining weights with the smallest |w| (ties at
 * the threshold removed in index order until the count is reached). */
static int prune_layer(pruning *p, int l, float rate)
{
    const float *w = nerve_value(p->net->g, p->node[l]).data;
    float *m = p->mask[l];
    size_t n = p->size[l], left = 0;
    float *mag = nerve_xmalloc(n * sizeof(float));
    if (!mag)
        return NERVE_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (m[i] != 0)
            mag[left++] = fabsf(w[i]);
    size_t cut = (size_t)llround((double)rate * (double)left);
    if (cut > 0 && cut <= left) {
        qsort(mag, left, sizeof(float), cmp_float);
        float thr = mag[cut - 1];
        size_t below = 0;
        for (size_t i = 0; i < n; i++) /* strictly below the threshold first */
            if (m[i] != 0 && fabsf(w[i]) < thr) {
                m[i] = 0;
                below++;
            }
        for (size_t i = 0; i < n && below < cut; i++)
            if (m[i] != 0 && fabsf(w[i]) == thr) {
                m[i] = 0;
                below++;
            }
    }
    nerve_xfree(mag);
    return NERVE_OK;
}

static double kept_fraction(const pruning *p)
{
    double kept = 0, total = 0;
    for (int l = 0; l < p->n_layers; l++) {
        for (size_t i = 0; i < p->size[l]; i++)
            kept += p->mask[l][i] != 0;
        total += (double)p->size[l];
    }
    return kept / total;
}

/* Trains the network from the flat parameters `start` under the current mask; *acc gets the
 * test accuracy after the last epoch. */
static int train_masked(exp_net *net, pruning *p, const float *start, const nerve_dataset *train,
                        const nerve_dataset *test, int epochs, uint64_t seed, double *acc)
{
    exp_net_load(net, start);
    apply_mask(p);
    const nerve_net_config *c = nerve_model_config(net->m);
    nerve_optim *opt = nerve_optim_create(net->g, &c->optim);
    if (!opt)
        return nerve_last_status();
    nerve_batcher b;
    int st = nerve_batcher_init(&b, train, net->batch, 1, seed);
    for (int e = 0; e < epochs && st == NERVE_OK; e++)
        st = exp_train_epoch(net, opt, &b, c->schedule.lr, apply_mask, p, NULL, NULL);
    nerve_batcher_free(&b);
    nerve_optim_free(opt);
    if (st == NERVE_OK)
        st = exp_accuracy(net, test, acc);
    return st;
}

/* The flat parameters of a fresh network of the same cfg drawn with another seed. */
static int fresh_draw(uint64_t seed, float *flat)
{
    char cfg[sizeof lenet300 + 32];
    snprintf(cfg, sizeof cfg, lenet300, (unsigned long long)seed);
    exp_net other;
    int st = exp_net_build(&other, cfg, "lenet-300-100");
    if (st != NERVE_OK)
        return st;
    exp_net_save(&other, flat);
    exp_net_free(&other);
    return NERVE_OK;
}

int exp_lottery(const nerve_experiment_options *o)
{
    int quick = o->quick;
    int n_train = o->train ? o->train : quick ? 600 : 0, n_test = quick ? 300 : 0;
    int epochs = o->epochs ? o->epochs : quick ? 1 : 5, rounds = quick ? 2 : 7;
    float rate = 0.4f;
    nerve_dataset train, test;
    int st = exp_fashion(o, &train, n_train, 0, &test, n_test);
    if (st != NERVE_OK)
        return st;
    char cfg[sizeof lenet300 + 32];
    snprintf(cfg, sizeof cfg, lenet300, (unsigned long long)o->seed);
    exp_net net;
    pruning p;
    memset(&p, 0, sizeof p);
    float *theta0 = NULL, *theta_r = NULL;
    double *frac = NULL, *acc_t = NULL, *acc_r = NULL, *acc_d = NULL;
    if ((st = exp_net_build(&net, cfg, "lenet-300-100")) != NERVE_OK)
        goto done_data;
    p.net = &net;
    for (int i = 0; i < net.n_params && p.n_layers < 8; i++) {
        const char *name = nerve_node_name(net.g, net.params[i]);
        size_t len = strlen(name);
        if (len > 7 && !strcmp(name + len - 7, ".weight")) {
            nerve_tensor t = nerve_value(net.g, net.params[i]);
            p.node[p.n_layers] = net.params[i];
            p.size[p.n_layers] = nerve_tensor_numel(&t);
            p.mask[p.n_layers] = nerve_xmalloc(p.size[p.n_layers] * sizeof(float));
            if (!p.mask[p.n_layers]) {
                st = NERVE_ERR_NOMEM;
                goto done;
            }
            for (size_t k = 0; k < p.size[p.n_layers]; k++)
                p.mask[p.n_layers][k] = 1;
            p.n_layers++;
        }
    }
    size_t size = exp_net_size(&net);
    theta0 = nerve_xmalloc(size * sizeof(float));
    theta_r = nerve_xmalloc(size * sizeof(float));
    frac = nerve_xcalloc((size_t)rounds + 1, sizeof(double));
    acc_t = nerve_xcalloc((size_t)rounds + 1, sizeof(double));
    acc_r = nerve_xcalloc((size_t)rounds + 1, sizeof(double));
    acc_d = nerve_xcalloc((size_t)rounds + 1, sizeof(double));
    if (!theta0 || !theta_r || !frac || !acc_t || !acc_r || !acc_d) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    exp_net_save(&net, theta0);
    if ((st = fresh_draw(o->seed + 7919, theta_r)) != NERVE_OK)
        goto done;
    exp_say(o, "lottery: LeNet-300-100 (784-300-100-10, %zu weights in %d layers), Fashion-MNIST %d training / "
               "%d test images, Adam lr 0.0012 batch 60, %d epochs per training; each round prunes %.0f%% of the "
               "remaining weights of each hidden layer (%.0f%% of the output layer's) by magnitude",
            (size_t)(p.size[0] + p.size[1] + p.size[2]), p.n_layers, train.n, test.n, epochs,
            100.0 * rate, 50.0 * rate);
    exp_say(o, "%6s %12s %14s %16s", "round", "weights left", "ticket (rewind)", "random re-init");
    uint64_t order = o->seed * 31 + 5;
    if ((st = train_masked(&net, &p, theta0, &train, &test, epochs, order, &acc_t[0])) != NERVE_OK)
        goto done;
    acc_r[0] = acc_t[0];
    frac[0] = 100.0;
    exp_say(o, "%6d %11.1f%% %14.2f%% %15.2f%%", 0, 100.0, 100 * acc_t[0], 100 * acc_r[0]);
    exp_figure(o, "lottery.dense_acc", 100 * acc_t[0]);
    int at10 = -1;
    for (int r = 1; r <= rounds; r++) {
        /* the weights of the last ticket's training decide what goes */
        for (int l = 0; l < p.n_layers && st == NERVE_OK; l++)
            st = prune_layer(&p, l, l == p.n_layers - 1 ? rate / 2 : rate);
        if (st != NERVE_OK)
            goto done;
        frac[r] = 100.0 * kept_fraction(&p);
        if ((st = train_masked(&net, &p, theta_r, &train, &test, epochs, order, &acc_r[r])) != NERVE_OK ||
            (st = train_masked(&net, &p, theta0, &train, &test, epochs, order, &acc_t[r])) != NERVE_OK)
            goto done;
        exp_say(o, "%6d %11.1f%% %14.2f%% %15.2f%%", r, frac[r], 100 * acc_t[r], 100 * acc_r[r]);
        if (at10 < 0 && frac[r] <= 10.0)
            at10 = r;
    }
    for (int r = 0; r <= rounds; r++) {
        acc_t[r] *= 100, acc_r[r] *= 100;
        acc_d[r] = acc_t[0];
    }
    if (at10 >= 0) {
        exp_figure(o, "lottery.weights_left_pct", frac[at10]);
        exp_figure(o, "lottery.ticket_acc", acc_t[at10]);
        exp_figure(o, "lottery.random_acc", acc_r[at10]);
        exp_figure(o, "lottery.ticket_minus_dense", acc_t[at10] - acc_t[0]);
        exp_figure(o, "lottery.ticket_minus_random", acc_t[at10] - acc_r[at10]);
    } else {
        exp_say(o, "(no round reached 10%% of the weights: %d rounds leave %.1f%%)", rounds, frac[rounds]);
    }
    nerve_series s[3] = {{"rewound ticket", acc_t}, {"random re-init", acc_r}, {"dense", acc_d}};
    st = exp_plot(o, "lottery.svg", "Lottery tickets: LeNet-300-100 on Fashion-MNIST",
                  "weights remaining (%)", frac, rounds + 1, s, 3);
done:
    for (int l = 0; l < p.n_layers; l++)
        nerve_xfree(p.mask[l]);
    nerve_xfree(theta0), nerve_xfree(theta_r);
    nerve_xfree(frac), nerve_xfree(acc_t), nerve_xfree(acc_r), nerve_xfree(acc_d);
    exp_net_free(&net);
done_data:
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    return st;
}
