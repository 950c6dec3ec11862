/* nerve style: texture synthesis and neural style transfer on the convolutional layers of a
 * checkpoint or of a cfg's freshly initialised network (src/apps/style.c). */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 16

typedef struct {
    const char *model, *style, *content, *layers, *content_layer, *out, *init;
    nerve_style_options o;
} style_args;

static int parse_float(const char *opt, const char *v, double lo, double hi, float *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "nerve style: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

/* One image of the model's size, as the model reads it; 0 or 1 after a message. */
static int load_image(nerve_model *m, const char *path, float *x, size_t d)
{
    const nerve_net_config *c = nerve_model_config(m);
    if (c->ndim != 3) {
        fprintf(stderr, "nerve style: the model does not take images (channels x height x width)\n");
        return 1;
    }
    nerve_image_options io = {c->dims[0], c->dims[1], c->dims[2], NERVE_RESIZE_CROP,
                              c->input_scale > 0 ? c->input_scale * 255.0f : 1.0f};
    nerve_dataset d1 = {0};
    const char *paths[1] = {path};
    if (nerve_dataset_load_images(&d1, paths, 1, &io) != NERVE_OK)
        return cli_fail(NULL);
    int rc = 0;
    if (d1.sample_numel != d) {
        fprintf(stderr, "nerve style: %s gives %zu values, the model takes %zu\n", path, d1.sample_numel, d);
        rc = 1;
    } else
        memcpy(x, d1.x, d * sizeof(float));
    nerve_dataset_free(&d1);
    return rc;
}

/* Layer names "a,b" (NULL: every convolutional layer) into node ids; the count or -1. */
static int find_layers(nerve_model *m, const char *list, int *ids, int cap)
{
    nerve_graph *g = nerve_model_graph(m);
    int n = 0;
    if (!list) {
        for (int i = 0; i < nerve_model_layer_count(m) && n < cap; i++) {
            nerve_layer_info li;
            if (nerve_model_layer_info(m, i, &li) == NERVE_OK && li.ndim == 3 &&
                !strcmp(li.type, "convolutional") && nerve_node_find(g, li.name) >= 0)
                ids[n++] = nerve_node_find(g, li.name);
        }
        if (!n)
            fprintf(stderr, "nerve style: the model has no convolutional layer; name layers with --layers\n");
        return n ? n : -1;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int id = nerve_node_find(g, t);
        if (id < 0 || n == cap) {
            fprintf(stderr, "nerve style: %s '%s'\n", n == cap ? "too many layers at" : "no layer named", t);
            return -1;
        }
        ids[n++] = id;
    }
    return n;
}

static int progress(int step, const double *losses, void *user)
{
    (void)user;
    printf("step %d: content loss %.6g, style loss %.6g\n", step, losses[0], losses[1]);
    fflush(stdout);
    return 0;
}

int cmd_style(int argc, char **argv)
{
    style_args a = {0};
    nerve_style_defaults(&a.o);
    a.out = "style.png";
    const char *v;
    int rc = 0;
    double seed = -1;
    for (int i = 0; i < argc && !rc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--style")))
            a.style = v;
        else if ((v = cli_option_value(argc, argv, &i, "--content")))
            a.content = v;
        else if ((v = cli_option_value(argc, argv, &i, "--layers")))
            a.layers = v;
        else if ((v = cli_option_value(argc, argv, &i, "--content-layer")))
            a.content_layer = v;
        else if ((v = cli_option_value(argc, argv, &i, "--out")))
            a.out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--init"))) {
            a.init = v;
            if (strcmp(v, "noise") && strcmp(v, "content")) {
                fprintf(stderr, "nerve style: --init is noise or content, got '%s'\n", v);
                rc = 2;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--alpha")))
            rc = parse_float("--alpha", v, 0, 1e30, &a.o.alpha) ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--beta")))
            rc = parse_float("--beta", v, 0, 1e30, &a.o.beta) ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--lr")))
            rc = parse_float("--lr", v, 1e-9, 1e6, &a.o.lr) ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--steps")))
            rc = (a.o.steps = cli_parse_int("--steps", v)) < 0 ? 2 : 0;
        else if ((v = cli_option_value(argc, argv, &i, "--report"))) {
            float r;
            rc = parse_float("--report", v, 0, 1e9, &r) || r != (int)r ? 2 : 0;
            a.o.report_every = (int)r;
        }
        else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            float s;
            rc = parse_float("--seed", v, 0, 1e15, &s) ? 2 : 0;
            seed = s;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve style: unknown option '%s' (nerve style --help)\n", argv[i]);
            rc = 2;
        } else if (!a.model)
            a.model = argv[i];
        else {
            fprintf(stderr, "nerve style: unexpected argument '%s'\n", argv[i]);
            rc = 2;
        }
    }
    if (!rc && (!a.model || !a.style)) {
        fprintf(stderr, "nerve style: needs MODEL and --style IMAGE (nerve style --help)\n");
        rc = 2;
    }
    if (rc)
        return rc;
    if (seed >= 0)
        a.o.seed = (uint64_t)seed;
    size_t len = strlen(a.model);
    int from_cfg = len > 4 && !strcmp(a.model + len - 4, ".cfg");
    nerve_model *m = from_cfg ? nerve_model_load_cfg(a.model) : nerve_model_load(a.model);
    if (!m)
        return cli_fail(NULL);
    int ids[MAX_LAYERS], n = 0, content_id = -1;
    if (nerve_style_prepare(m) != NERVE_OK)
        rc = cli_fail("style");
    if (!rc && (n = find_layers(m, a.layers, ids, MAX_LAYERS)) < 0)
        rc = 2;
    if (!rc && a.content) {
        nerve_graph *g = nerve_model_graph(m);
        content_id = a.content_layer ? nerve_node_find(g, a.content_layer) : ids[n > 1 ? 1 : 0];
        if (content_id < 0) {
            fprintf(stderr, "nerve style: no layer named '%s'\n", a.content_layer);
            rc = 2;
        }
    }
    const nerve_net_config *c = nerve_model_config(m);
    size_t d = c->ndim == 3 ? (size_t)c->dims[0] * c->dims[1] * c->dims[2] : 0;
    float *img = malloc(3 * (d ? d : 1) * sizeof *img);
    float *style = img, *content = img + d, *out = img + 2 * d;
    if (!rc && !img)
        rc = 1;
    if (!rc)
        rc = load_image(m, a.style, style, d);
    if (!rc && a.content)
        rc = load_image(m, a.content, content, d);
    a.o.style_layers = ids;
    a.o.n_style = n;
    a.o.content_layer = content_id;
    a.o.hi = c->input_scale > 0 ? c->input_scale * 255.0f : 1.0f;
    a.o.progress = progress;
    nerve_style *s = NULL;
    if (!rc && !(s = nerve_style_create(nerve_model_graph(m), nerve_model_input(m), &a.o, style,
                                        a.content ? content : NULL)))
        rc = cli_fail("style");
    if (!rc) {
        nerve_graph *g = nerve_model_graph(m);
        printf("%s, %s network; style layers:", a.content ? "style transfer" : "texture synthesis",
               from_cfg ? "randomly initialised" : "trained");
        for (int i = 0; i < n; i++)
            printf(" %s", nerve_node_name(g, ids[i]));
        if (a.content)
            printf("; content layer: %s; alpha %g, beta %g", nerve_node_name(g, content_id), (double)a.o.alpha,
                   (double)a.o.beta);
        printf("\n");
        int from_content = a.content && !(a.init && !strcmp(a.init, "noise"));
        if (!a.content && a.init && !strcmp(a.init, "content")) {
            fprintf(stderr, "nerve style: --init content needs --content\n");
            rc = 2;
        }
        nerve_rng r;
        nerve_rng_seed(&r, a.o.seed);
        for (size_t p = 0; p < d; p++)
            out[p] = from_content ? content[p] : a.o.lo + (a.o.hi - a.o.lo) * nerve_rng_uniform(&r);
        double first[3], last[3];
        if (!rc && nerve_style_run(s, out, first, last) != NERVE_OK)
            rc = cli_fail("style");
        if (!rc) {
            printf("style loss: %.6g -> %.6g (fell %.4gx)", first[1], last[1], last[1] > 0 ? first[1] / last[1] : INFINITY);
            if (a.content)
                printf("; content loss: %.6g -> %.6g", first[0], last[0]);
            printf("\n");
            const float *tiles[3] = {style, content, out};
            int k = a.content ? 3 : 2;
            float *sheet = malloc((size_t)k * d * sizeof *sheet);
            char caps[3][160];
            snprintf(caps[0], sizeof caps[0], "style");
            snprintf(caps[1], sizeof caps[1], "content");
            snprintf(caps[k - 1], sizeof caps[k - 1], "%s\nstyle loss %.3g", a.content ? "result" : "texture",
                     last[1]);
            const char *cp[3] = {caps[0], caps[1], caps[2]};
            if (!sheet)
                rc = 1;
            for (int i = 0; sheet && i < k; i++)
                memcpy(sheet + (size_t)i * d, tiles[i == k - 1 ? 2 : i], d * sizeof(float));
            char title[200];
            snprintf(title, sizeof title, "%s, %d steps", a.content ? "neural style transfer" : "texture synthesis",
                     a.o.steps);
            nerve_tiles_options to = {k, 192, a.o.lo, a.o.hi, title};
            if (sheet && nerve_tiles_write(a.out, sheet, k, c->dims[0], c->dims[1], c->dims[2], cp, &to) != NERVE_OK)
                rc = cli_fail("style picture");
            else if (sheet)
                printf("wrote %s\n", a.out);
            free(sheet);
        }
    }
    nerve_style_free(s);
    free(img);
    nerve_model_free(m);
    return rc;
}
