/* nerve attack: a classifier's accuracy on adversarial examples (FGSM, PGD under L-infinity
 * or L2), at one eps or over a sweep with an accuracy curve; fooling images and the patch
 * attack (cli/fool.c). The work is src/train/adversarial.c's and src/apps/fool.c's. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int parse_num(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "nerve attack: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* "a,b,c" into out[] (at most cap values); the count, or -1 after a message. */
static int parse_list(const char *opt, const char *v, double lo, double hi, double *out, int cap)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", v);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == cap) {
            fprintf(stderr, "nerve attack: %s takes at most %d values\n", opt, cap);
            return -1;
        }
        if (parse_num(opt, t, lo, hi, &out[n]))
            return -1;
        n++;
    }
    if (!n)
        fprintf(stderr, "nerve attack: %s needs at least one value\n", opt);
    return n ? n : -1;
}


static int parse_methods(const char *v, attack_args *a)
{
    a->fgsm = a->pgd = 0;
    a->mode = !strcmp(v, "fool") ? ATTACK_FOOL : !strcmp(v, "patch") ? ATTACK_PATCH : ATTACK_ACCURACY;
    if (a->mode)
        return 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "fgsm"))
            a->fgsm = 1;
        else if (!strcmp(t, "pgd"))
            a->pgd = 1;
        else {
            fprintf(stderr, "nerve attack: --method is fgsm, pgd, fgsm,pgd, fool or patch; got '%s'\n", t);
            return -1;
        }
    }
    return a->fgsm || a->pgd ? 0 : -1;
}

static int parse_args(int argc, char **argv, attack_args *a)
{
    const char *v;
    double x;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--method"))) {
            if (parse_methods(v, a))
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--eps"))) {
            if ((a->n_eps = parse_list("--eps", v, 0, 1e6, a->eps, MAX_SWEEP)) < 0)
                return 2;
            a->sweep = a->n_eps > 1;
        } else if ((v = cli_option_value(argc, argv, &i, "--steps"))) {
            if (parse_num("--steps", v, 1, 100000, &x))
                return 2;
            a->a.steps = (int)x;
            a->steps_given = 1;
        } else if ((v = cli_option_value(argc, argv, &i, "--step"))) {
            if (parse_num("--step", v, 0, 1e6, &x))
                return 2;
            a->a.step = (float)x;
            a->step_given = 1;
        } else if ((v = cli_option_value(argc, argv, &i, "--class"))) {
            double c[MAX_SWEEP];
            if ((a->n_classes = parse_list("--class", v, 0, 1e6, c, MAX_SWEEP)) < 0)
                return 2;
            for (int j = 0; j < a->n_classes; j++)
                a->classes[j] = (int)c[j];
        } else if ((v = cli_option_value(argc, argv, &i, "--confidence"))) {
            if (parse_num("--confidence", v, 1e-6, 1, &x))
                return 2;
            a->confidence = (float)x;
        } else if ((v = cli_option_value(argc, argv, &i, "--size"))) {
            if (parse_num("--size", v, 1, 100000, &x))
                return 2;
            a->size = (int)x;
        } else if ((v = cli_option_value(argc, argv, &i, "--out")))
            a->out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--names")))
            a->names = v;
        else if ((v = cli_option_value(argc, argv, &i, "--train-limit"))) {
            if ((a->train_limit = cli_parse_int("--train-limit", v)) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--restarts"))) {
            if (parse_num("--restarts", v, 1, 1000, &x))
                return 2;
            a->a.restarts = (int)x;
        } else if ((v = cli_option_value(argc, argv, &i, "--norm"))) {
            if (strcmp(v, "linf") && strcmp(v, "l2")) {
                fprintf(stderr, "nerve attack: --norm is linf or l2, got '%s'\n", v);
                return 2;
            }
            a->a.norm = strcmp(v, "l2") ? NERVE_NORM_LINF : NERVE_NORM_L2;
        } else if ((v = cli_option_value(argc, argv, &i, "--range"))) {
            double r[2];
            if (parse_list("--range", v, -1e30, 1e30, r, 2) != 2 || !(r[0] < r[1])) {
                fprintf(stderr, "nerve attack: --range is LO,HI with LO < HI\n");
                return 2;
            }
            a->a.lo = (float)r[0];
            a->a.hi = (float)r[1];
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (parse_num("--seed", v, 0, 1e15, &x))
                return 2;
            a->a.seed = (uint64_t)x;
        } else if ((v = cli_option_value(argc, argv, &i, "--limit"))) {
            if ((a->limit = cli_parse_int("--limit", v)) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--plot")))
            a->plot = v;
        else if ((v = cli_option_value(argc, argv, &i, "--images")))
            a->images = v;
        else if ((v = cli_option_value(argc, argv, &i, "--labels")))
            a->labels = v;
        else if ((v = cli_option_value(argc, argv, &i, "--csv")))
            a->csv = v;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve attack: unknown option '%s' (nerve attack --help)\n", argv[i]);
            return 2;
        } else if (!a->ckpt)
            a->ckpt = argv[i];
        else {
            fprintf(stderr, "nerve attack: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!a->ckpt) {
        fprintf(stderr, "nerve attack: missing CKPT (nerve attack --help)\n");
        return 2;
    }
    if ((a->images != NULL) != (a->labels != NULL)) {
        fprintf(stderr, "nerve attack: --images and --labels go together\n");
        return 2;
    }
    return 0;
}

static const char *describe(const attack_args *a, int pgd, char *buf, size_t n)
{
    const char *norm = a->a.norm == NERVE_NORM_L2 ? "L2" : "Linf";
    if (!pgd)
        snprintf(buf, n, "FGSM %s", norm);
    else
        snprintf(buf, n, "PGD-%d %s, %d restart%s", a->a.steps, norm, a->a.restarts, a->a.restarts == 1 ? "" : "s");
    return buf;
}

int cmd_attack(int argc, char **argv)
{
    attack_args a = {0};
    a.a = nerve_attack_pgd(0.1f, 20, 1);
    a.fgsm = 1;
    a.eps[0] = 0.1;
    a.n_eps = 1;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    if (a.mode)
        return attack_fool_or_patch(&a);
    nerve_model *m = nerve_model_load(a.ckpt);
    if (!m)
        return cli_fail(NULL);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_dataset d = {0};
    int st = a.images || a.csv ? cli_load_data(&d, a.images, a.labels, a.csv, c->input_scale > 0 ? c->input_scale : 1.0f, -1)
                               : nerve_config_load_data(c, NULL, &d);
    if (st != NERVE_OK) {
        nerve_model_free(m);
        return cli_fail(NULL);
    }
    int total = a.limit > 0 && a.limit < d.n ? a.limit : d.n;
    double acc[2][MAX_SWEEP], clean = NAN;
    for (int k = 0; k < 2 && !rc; k++) {
        if (!(k ? a.pgd : a.fgsm))
            continue;
        for (int e = 0; e < a.n_eps && !rc; e++) {
            nerve_attack at = a.a;
            at.eps = (float)a.eps[e];
            if (!k)
                at.steps = 0;
            double cl, rob;
            if (nerve_attack_evaluate(m, &d, &at, total, &cl, &rob) != NERVE_OK) {
                rc = cli_fail("attack");
                break;
            }
            if (isnan(clean))
                printf("clean accuracy: %.4f (%d samples)\n", cl, total);
            clean = cl;
            acc[k][e] = rob;
            char buf[64];
            printf("%s eps %g: accuracy %.4f\n", describe(&a, k, buf, sizeof buf), a.eps[e], rob);
            fflush(stdout);
        }
    }
    if (!rc && a.plot) {
        nerve_series s[2];
        char names[2][64];
        int ns = 0;
        for (int k = 0; k < 2; k++)
            if (k ? a.pgd : a.fgsm) {
                s[ns].label = describe(&a, k, names[k], sizeof names[k]);
                s[ns++].y = acc[k];
            }
        char title[160];
        snprintf(title, sizeof title, "accuracy under attack, %d test samples (clean %.4f)", total, clean);
        if (nerve_svg_lineplot(a.plot, title, "eps", a.eps, a.n_eps, s, ns) != NERVE_OK)
            rc = cli_fail("plot");
        else
            printf("wrote %s\n", a.plot);
    }
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return rc;
}
