/* Optimisers on two surfaces and a learning-rate sweep (COURSE.md §4), with nerve's own
 * optimisers (src/optim/optim.c) on a graph whose one parameter is the point (x, y):
 *   canyon  f = (x^2 + 50 y^2) / 2 from (-9, 1.5): an elongated quadratic, curvature 1
 *           along x and 50 across; plain SGD at a rate near 2/50 zig-zags across the
 *           canyon and crawls along it;
 *   saddle  f = (x^2 - y^2) / 2 from (1, 0.001): a saddle at the origin; the gradient's y
 *           part is tiny near the ridge, so SGD lingers there before it escapes, while the
 *           adaptive methods scale the step up.
 * Each optimiser gets its own "good" rate (listed in the table); the figures are the steps
 * to f < 1e-3 (canyon) and to |y| > 1 (saddle). The sweep trains an MLP 64-64-10 on the
 * 8 x 8 digits with SGD at four rates a factor apart. */
#include "experiment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    nerve_opt_type type;
    const char *label;
    float canyon_lr, saddle_lr;
} opt_row;

static const opt_row rows[] = {
    {NERVE_OPT_SGD, "SGD", 0.035f, 0.1f},
    {NERVE_OPT_MOMENTUM, "momentum 0.9", 0.006f, 0.1f},
    {NERVE_OPT_NESTEROV, "Nesterov 0.9", 0.006f, 0.1f},
    {NERVE_OPT_ADAGRAD, "AdaGrad", 1.0f, 0.1f},
    {NERVE_OPT_RMSPROP, "RMSProp", 0.03f, 0.01f},
    {NERVE_OPT_ADAM, "Adam", 0.5f, 0.05f},
};
#define N_ROWS ((int)NERVE_ARRAY_LEN(rows))

/* f = (a x^2 + b y^2) / 2 as a graph: a parameter p [2], a state c = (a, b). */
typedef struct {
    nerve_graph *g;
    int p, loss;
} surface;

static int surface_build(surface *s, float a, float b)
{
    s->g = nerve_graph_create();
    if (!s->g)
        return NERVE_ERR_NOMEM;
    int two[1] = {2};
    s->p = nerve_param(s->g, "p", 1, two);
    int c = nerve_state(s->g, "c", 1, two);
    int sq = nerve_mul(s->g, s->p, s->p);
    int w = nerve_mul(s->g, sq, c);
    int half = nerve_affine(s->g, w, 0.5f, 0.0f);
    s->loss = nerve_sum(s->g, half, NERVE_AXIS_ALL, 0);
    int st = s->loss < 0 ? s->loss : nerve_graph_compile(s->g, 1);
    if (st != NERVE_OK) {
        nerve_graph_free(s->g);
        s->g = NULL;
        return st;
    }
    nerve_value(s->g, c).data[0] = a;
    nerve_value(s->g, c).data[1] = b;
    return NERVE_OK;
}

/* Runs `steps` updates from (x0, y0), recording the points xy [steps + 1, 2]. */
static int run_path(surface *s, nerve_opt_type type, float lr, double x0, double y0, int steps, double *xy)
{
    nerve_optim_config cfg = nerve_optim_default(type);
    float *p = nerve_value(s->g, s->p).data;
    p[0] = (float)x0, p[1] = (float)y0;
    nerve_optim *o = nerve_optim_create(s->g, &cfg);
    if (!o)
        return nerve_last_status();
    xy[0] = x0, xy[1] = y0;
    int st = NERVE_OK;
    for (int k = 1; k <= steps; k++) {
        nerve_optim_prepare(o);
        if ((st = nerve_forward(s->g, s->loss)) != NERVE_OK || (st = nerve_backward(s->g, s->loss)) != NERVE_OK)
            break;
        nerve_optim_step(o, lr);
        xy[2 * k] = isfinite(p[0]) ? p[0] : NAN;
        xy[2 * k + 1] = isfinite(p[1]) ? p[1] : NAN;
    }
    nerve_optim_free(o);
    return st;
}

static int field_plot(const nerve_experiment_options *o, const char *file, const char *title, const double box[4],
                      float a, float b, int log_scale, double *const *paths, int steps)
{
    enum { G = 80 };
    double field[G * G];
    for (int r = 0; r < G; r++)
        for (int c = 0; c < G; c++) {
            double x = box[0] + (c + 0.5) * (box[1] - box[0]) / G, y = box[2] + (r + 0.5) * (box[3] - box[2]) / G;
            double f = 0.5 * (a * x * x + b * y * y);
            field[r * G + c] = log_scale ? log10(f + 1e-3) : f;
        }
    nerve_path2d p[N_ROWS];
    for (int k = 0; k < N_ROWS; k++)
        p[k] = (nerve_path2d){rows[k].label, paths[k], steps + 1};
    char path[1024];
    int st = exp_path(o, file, path, sizeof path);
    if (st == NERVE_OK && (st = nerve_svg_trajectories(path, title, box, field, G, G, p, N_ROWS)) == NERVE_OK)
        exp_say(o, "plot: %s", path);
    return st;
}

/* The learning-rate sweep on the digits (an MLP, SGD; the loss on every digit after each epoch). */
static int lr_sweep(const nerve_experiment_options *o, int epochs)
{
    nerve_dataset d;
    int st = exp_digits(o, &d);
    if (st != NERVE_OK)
        return st;
    static const char cfg_text[] = "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=32\nseed=%llu\noptimizer=sgd\n"
                                   "learning_rate=0.1\nclasses=10\n\n[connected]\noutput=64\nactivation=relu\n\n"
                                   "[connected]\noutput=10\n\n[softmax]\n";
    char cfg[sizeof cfg_text + 32];
    snprintf(cfg, sizeof cfg, cfg_text, (unsigned long long)o->seed);
    static const float rates[4] = {0.001f, 0.1f, 1.0f, 3.0f};
    static const char *const names[4] = {"too low 0.001", "good 0.1", "high 1", "too high 3"};
    static const char *const kinds[4] = {"too low", "good", "high", "too high"};
    double *curve[4] = {NULL}, *ep = nerve_xmalloc((size_t)(epochs + 1) * sizeof(double));
    for (int k = 0; k < 4; k++)
        curve[k] = nerve_xmalloc((size_t)(epochs + 1) * sizeof(double));
    if (!ep || !curve[3]) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    exp_say(o, "learning-rate sweep: an MLP 64-64-10 (ReLU) on the %d 8x8 digits (pixels / 16), SGD, batch 32; training "
               "loss after each epoch", d.n);
    for (int k = 0; k < 4 && st == NERVE_OK; k++) {
        exp_net net;
        if ((st = exp_net_build(&net, cfg, "digits-softmax")) != NERVE_OK)
            break;
        nerve_optim_config oc = nerve_optim_default(NERVE_OPT_SGD);
        nerve_optim *opt = nerve_optim_create(net.g, &oc);
        nerve_batcher b;
        st = opt ? nerve_batcher_init(&b, &d, net.batch, 1, o->seed + 11) : nerve_last_status();
        if (st == NERVE_OK) {
            double loss0 = NAN;
            nerve_evaluate(net.m, &d, &loss0, NULL, NULL, 0);
            curve[k][0] = loss0;
            ep[0] = 0;
            int diverged = 0;
            for (int e = 1; e <= epochs; e++) {
                ep[e] = e;
                double loss = NAN;
                if (!diverged && exp_train_epoch(&net, opt, &b, rates[k], NULL, NULL, NULL, NULL) == NERVE_OK)
                    nerve_evaluate(net.m, &d, &loss, NULL, NULL, 0);
                else
                    nerve_clear_error();
                if (!isfinite(loss) || loss > 1e3)
                    diverged = 1, loss = NAN;
                curve[k][e] = loss;
            }
            double last = curve[k][epochs];
            char tail[64];
            snprintf(tail, sizeof tail, isfinite(last) ? "%.4g" : "diverged", last);
            exp_say(o, "  lr %-6g (%-8s) training loss %.4g at the start, %.4g after 1 epoch, %s after %d", (double)rates[k],
                    kinds[k], curve[k][0], curve[k][1], tail, epochs);
            char key[64];
            snprintf(key, sizeof key, "optimisers.sweep_loss_lr%g", (double)rates[k]);
            exp_figure(o, key, isfinite(last) ? last : INFINITY);
            nerve_batcher_free(&b);
        }
        nerve_optim_free(opt);
        exp_net_free(&net);
    }
    if (st == NERVE_OK) {
        nerve_series s[4] = {{names[0], curve[0]}, {names[1], curve[1]}, {names[2], curve[2]}, {names[3], curve[3]}};
        st = exp_plot(o, "optimisers_lr.svg", "Learning rates: MLP 64-64-10 on the 8x8 digits (SGD)",
                      "epoch", ep, epochs + 1, s, 4);
    }
done:
    nerve_xfree(ep);
    for (int k = 0; k < 4; k++)
        nerve_xfree(curve[k]);
    nerve_dataset_free(&d);
    return st;
}

int exp_optimisers(const nerve_experiment_options *o)
{
    int steps = o->quick ? 60 : 150;
    surface canyon, saddle;
    int st = surface_build(&canyon, 1.0f, 50.0f);
    if (st != NERVE_OK)
        return st;
    if ((st = surface_build(&saddle, 1.0f, -1.0f)) != NERVE_OK) {
        nerve_graph_free(canyon.g);
        return st;
    }
    double *paths[2][N_ROWS] = {{NULL}};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < N_ROWS; k++)
            if (!(paths[s][k] = nerve_xmalloc((size_t)(steps + 1) * 2 * sizeof(double))))
                st = NERVE_ERR_NOMEM;
    exp_say(o, "optimisers (nerve's own, their default settings): %d steps on the canyon f = (x^2 + 50 y^2)/2 from "
               "(-9, 1.5) and the saddle f = (x^2 - y^2)/2 from (1, 0.001)", steps);
    exp_say(o, "%-14s %9s %22s %9s %20s", "optimiser", "canyon lr", "steps to f < 1e-3", "saddle lr",
            "steps to |y| > 1");
    for (int k = 0; k < N_ROWS && st == NERVE_OK; k++) {
        if ((st = run_path(&canyon, rows[k].type, rows[k].canyon_lr, -9, 1.5, steps, paths[0][k])) != NERVE_OK ||
            (st = run_path(&saddle, rows[k].type, rows[k].saddle_lr, 1, 0.001, steps, paths[1][k])) != NERVE_OK)
            break;
        int reach = -1, escape = -1;
        for (int i = 0; i <= steps; i++) {
            double x = paths[0][k][2 * i], y = paths[0][k][2 * i + 1];
            if (reach < 0 && 0.5 * (x * x + 50 * y * y) < 1e-3)
                reach = i;
            if (escape < 0 && fabs(paths[1][k][2 * i + 1]) > 1)
                escape = i;
        }
        char r1[32], r2[32];
        snprintf(r1, sizeof r1, reach < 0 ? "not in %d" : "%d", reach < 0 ? steps : reach);
        snprintf(r2, sizeof r2, escape < 0 ? "not in %d" : "%d", escape < 0 ? steps : escape);
        exp_say(o, "%-14s %9g %22s %9g %20s", rows[k].label, (double)rows[k].canyon_lr, r1,
                (double)rows[k].saddle_lr, r2);
        char key[64];
        snprintf(key, sizeof key, "optimisers.canyon_steps.%s", nerve_optim_name(rows[k].type));
        exp_figure(o, key, reach < 0 ? INFINITY : reach);
        snprintf(key, sizeof key, "optimisers.saddle_steps.%s", nerve_optim_name(rows[k].type));
        exp_figure(o, key, escape < 0 ? INFINITY : escape);
    }
    static const double canyon_box[4] = {-10, 2, -3, 3}, saddle_box[4] = {-0.5, 1.5, -1.5, 1.5};
    if (st == NERVE_OK)
        st = field_plot(o, "optimisers_canyon.svg", "Canyon f = (x^2 + 50 y^2)/2 (colour: log10 f)", canyon_box, 1.0f,
                        50.0f, 1, paths[0], steps);
    if (st == NERVE_OK)
        st = field_plot(o, "optimisers_saddle.svg", "Saddle f = (x^2 - y^2)/2", saddle_box, 1.0f, -1.0f, 0,
                        paths[1], steps);
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < N_ROWS; k++)
            nerve_xfree(paths[s][k]);
    nerve_graph_free(canyon.g);
    nerve_graph_free(saddle.g);
    if (st == NERVE_OK)
        st = lr_sweep(o, o->epochs ? o->epochs : o->quick ? 3 : 30);
    return st;
}
