/* nerve profile: where a model's time goes, operator by operator (docs/benchmarks.md,
 * "Profiles"). The model runs on synthetic data (inputs N(0, 1), labels uniform over the
 * classes, as the benchmarks do) at a chosen batch and thread count; each operator node's
 * kernel is timed by the graph (nerve_graph_profile) and the totals are printed by operator
 * and by node, with the arithmetic rate of convolutions and dense layers. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Forward multiply-adds (times 2) of a conv or dense node per pass, from its shapes: the
 * output's elements times the weight's elements per output channel. 0 for other operators. */
static double node_flops(const nerve_graph *g, int id)
{
    const char *op = nerve_node_op(g, id);
    int is_conv = !strcmp(op, "conv"), is_dense = !strcmp(op, "dense");
    if ((!is_conv && !is_dense) || nerve_node_num_inputs(g, id) < 2)
        return 0;
    int nd, dims[NERVE_MAX_DIMS], wn, wd[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, id, &nd, dims) != NERVE_OK ||
        nerve_node_shape(g, nerve_node_input(g, id, 1), &wn, wd) != NERVE_OK || wn < 2 || wd[0] < 1)
        return 0;
    double out = (double)nerve_shape_numel(nd, dims);
    double per = (double)nerve_shape_numel(wn, wd) / wd[0];
    return 2.0 * out * per;
}

typedef struct row {
    char op[32];
    int nodes;
    double fwd, bwd, flops;
} row;

static int by_time(const void *a, const void *b)
{
    const row *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return tx < ty ? 1 : tx > ty ? -1 : strcmp(x->op, y->op);
}

typedef struct node_row {
    int id;
    double fwd, bwd;
} node_row;

static int node_by_time(const void *a, const void *b)
{
    const node_row *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return tx < ty ? 1 : tx > ty ? -1 : x->id - y->id;
}

static void fill_inputs(nerve_graph *g, int x, int y, int k, nerve_rng *rng)
{
    nerve_tensor xv = nerve_value(g, x);
    for (size_t i = 0; i < nerve_tensor_numel(&xv); i++)
        xv.data[i] = nerve_rng_normal(rng);
    if (y >= 0) {
        nerve_tensor yv = nerve_value(g, y);
        for (size_t i = 0; i < nerve_tensor_numel(&yv); i++)
            yv.data[i] = (float)nerve_rng_below(rng, (uint32_t)k);
    }
}

int cmd_profile(int argc, char **argv)
{
    const char *path = NULL, *v;
    int batch = 1, steps = 10, train = 0, top = 15;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--batch"))) {
            if ((batch = cli_parse_int("--batch", v)) < 1)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--steps"))) {
            if ((steps = cli_parse_int("--steps", v)) < 1)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--top"))) {
            if ((top = cli_parse_int("--top", v)) < 1)
                return 2;
        } else if (!strcmp(argv[i], "--train")) {
            train = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve profile: unknown option '%s' (see nerve help profile)\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "nerve profile: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "nerve profile: usage: nerve profile CFG|CKPT [--batch N] [--steps N] "
                "[--train] [--top K]\n");
        return 2;
    }
    nerve_model *m = has_suffix(path, ".cfg") ? nerve_model_load_cfg(path) : nerve_model_load(path);
    if (!m)
        return cli_fail(NULL);
    int rc = 0, x = nerve_model_input(m), y = nerve_model_labels(m), loss = nerve_model_loss(m);
    nerve_optim *opt = NULL;
    row *rows = NULL;
    node_row *nodes = NULL;
    if (nerve_model_compile(m, batch) != NERVE_OK) {
        rc = cli_fail(path);
        goto done;
    }
    nerve_graph *g = nerve_model_graph(m);
    if (train && loss < 0) {
        fprintf(stderr, "nerve profile: %s has no loss to train (--train needs a model with a head)\n", path);
        rc = 1;
        goto done;
    }
    int k = nerve_model_config(m)->n_classes > 0 ? nerve_model_config(m)->n_classes : 10;
    nerve_rng rng;
    nerve_rng_seed(&rng, 1);
    fill_inputs(g, x, y, k, &rng);
    if (train) {
        nerve_optim_config oc = nerve_optim_default(NERVE_OPT_MOMENTUM);
        if (!(opt = nerve_optim_create(g, &oc))) {
            rc = cli_fail("optimiser");
            goto done;
        }
    }
    nerve_graph_set_training(g, train);
    int target = train ? loss : nerve_model_output(m);
    const int warmup = 2;
    double t0 = 0, t_opt = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            if (nerve_graph_profile(g, 1) != NERVE_OK) {
                rc = cli_fail("profile");
                goto done;
            }
            t0 = now_s();
        }
        if (opt)
            nerve_optim_prepare(opt);
        if (nerve_forward(g, target) != NERVE_OK || (train && nerve_backward(g, loss) != NERVE_OK)) {
            rc = cli_fail("step");
            goto done;
        }
        if (opt) {
            double to = now_s();
            nerve_optim_step(opt, 0.01f);
            if (s >= warmup)
                t_opt += now_s() - to;
        }
    }
    double wall = now_s() - t0;
    int n = nerve_node_count(g), n_rows = 0, n_nodes = 0;
    rows = calloc((size_t)n + 1, sizeof *rows);
    nodes = calloc((size_t)n + 1, sizeof *nodes);
    if (!rows || !nodes) {
        fprintf(stderr, "nerve profile: out of memory\n");
        rc = 1;
        goto done;
    }
    double sum_f = 0, sum_b = 0, flops = 0, flops_t = 0;
    for (int i = 0; i < n; i++) {
        double f, b;
        if (nerve_node_kind(g, i) != NERVE_NODE_OP || nerve_graph_profile_node(g, i, &f, &b) != NERVE_OK)
            continue;
        const char *op = nerve_node_op(g, i);
        int r = 0;
        while (r < n_rows && strcmp(rows[r].op, op))
            r++;
        if (r == n_rows)
            snprintf(rows[n_rows++].op, sizeof rows[r].op, "%s", op);
        double fl = node_flops(g, i);
        rows[r].nodes++, rows[r].fwd += f, rows[r].bwd += b, rows[r].flops += fl;
        nodes[n_nodes++] = (node_row){i, f, b};
        sum_f += f, sum_b += b;
        if (fl > 0)
            flops += fl, flops_t += f;
    }
    qsort(rows, (size_t)n_rows, sizeof *rows, by_time);
    qsort(nodes, (size_t)n_nodes, sizeof *nodes, node_by_time);
    double ms = 1e3 / steps, total = sum_f + sum_b;
    printf("profile of %s: %s, batch %d, %d thread%s, %d steps after %d warm-up\n", path,
           train ? "training (forward, backward, SGD with momentum)" : "inference (forward)", batch,
           nerve_threads(), nerve_threads() == 1 ? "" : "s", steps, warmup);
    printf("step: %.3f ms = forward %.3f + backward %.3f%s", wall * ms, sum_f * ms, sum_b * ms,
           train ? " + optimiser " : "");
    if (train)
        printf("%.3f", t_opt * ms);
    printf(" + outside the operators %.3f\n", (wall - total - t_opt) * ms);
    if (flops_t > 0)
        printf("convolutions and dense layers, forward: %.2f GFLOP/s (%.3g GFLOP a step)\n",
               flops * steps / flops_t * 1e-9, flops * 1e-9);
    printf("\nby operator (ms a step; share of the operators' time):\n");
    printf("  %-18s %6s %11s %11s %7s %10s\n", "operator", "nodes", "forward", "backward", "share",
           "GFLOP/s");
    for (int r = 0; r < n_rows; r++) {
        double t = rows[r].fwd + rows[r].bwd;
        char rate[32] = "";
        if (rows[r].flops > 0 && rows[r].fwd > 0)
            snprintf(rate, sizeof rate, "%.2f", rows[r].flops * steps / rows[r].fwd * 1e-9);
        printf("  %-18s %6d %11.3f %11.3f %6.1f%% %10s\n", rows[r].op, rows[r].nodes, rows[r].fwd * ms,
               rows[r].bwd * ms, total > 0 ? 100 * t / total : 0, rate);
    }
    printf("\nthe %d slowest nodes:\n", top < n_nodes ? top : n_nodes);
    printf("  %-5s %-24s %-16s %-20s %11s %11s %7s %10s\n", "node", "name", "operator", "output",
           "forward", "backward", "share", "GFLOP/s");
    for (int i = 0; i < n_nodes && i < top; i++) {
        int id = nodes[i].id, nd, dims[NERVE_MAX_DIMS];
        char shape[96] = "", rate[32] = "";
        if (nerve_node_shape(g, id, &nd, dims) == NERVE_OK)
            nerve_shape_str(nd, dims, shape, sizeof shape);
        double fl = node_flops(g, id);
        if (fl > 0 && nodes[i].fwd > 0)
            snprintf(rate, sizeof rate, "%.2f", fl * steps / nodes[i].fwd * 1e-9);
        printf("  %-5d %-24.24s %-16.16s %-20.20s %11.3f %11.3f %6.1f%% %10s\n", id, nerve_node_name(g, id),
               nerve_node_op(g, id), shape, nodes[i].fwd * ms, nodes[i].bwd * ms,
               total > 0 ? 100 * (nodes[i].fwd + nodes[i].bwd) / total : 0, rate);
    }
    printf("(operators folded into the one before them, such as a ReLU after a convolution, run "
           "inside it and show no time)\n");
done:
    free(rows);
    free(nodes);
    nerve_optim_free(opt);
    nerve_model_free(m);
    return rc;
}
