/* nerve attack --method fool | patch: fooling images (one per class, ascended from noise until
 * the model is confident) and the adversarial patch (trained on the training set, its success
 * rate measured on the test set), with pictures. The work is src/apps/fool.c's. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *name_of(int c, const char *const *names, int n_names, char *buf, size_t n)
{
    if (names && c >= 0 && c < n_names)
        return names[c];
    snprintf(buf, n, "class %d", c);
    return buf;
}

static int class_count(nerve_model *m)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    return nd == 2 ? dims[1] : 0;
}

static int run_fool(nerve_model *m, const attack_args *a, const char *const *names, int n_names)
{
    int k = class_count(m), ch, h, w;
    if (nerve_explain_geometry(m, &ch, &h, &w) != NERVE_OK)
        return cli_fail("fool");
    int n = a->n_classes ? a->n_classes : k, t[256];
    if (n > 256) {
        printf("note: the first 256 of %d classes (choose others with --class)\n", n);
        n = 256;
    }
    for (int i = 0; i < n; i++)
        t[i] = a->n_classes ? a->classes[i] : i;
    nerve_fool_options o;
    nerve_fool_defaults(&o);
    if (a->steps_given)
        o.steps = a->a.steps;
    if (a->step_given)
        o.step = a->a.step;
    if (a->confidence > 0)
        o.confidence = a->confidence;
    o.lo = a->a.lo;
    o.hi = a->a.hi;
    o.seed = a->a.seed;
    size_t d = (size_t)ch * h * w;
    float *img = malloc((size_t)n * d * sizeof *img), conf[256];
    int steps[256], rc = 0, reached = 0;
    char *caps[256] = {0};
    if (!img)
        return 1;
    if (nerve_fool(m, t, n, &o, img, conf, steps) != NERVE_OK) {
        free(img);
        return cli_fail("fool");
    }
    for (int i = 0; i < n; i++) {
        char b[32], line[160];
        const char *nm = name_of(t[i], names, n_names, b, sizeof b);
        printf("%s: confidence %.4f after %d steps\n", nm, (double)conf[i], steps[i]);
        reached += conf[i] >= o.confidence;
        snprintf(line, sizeof line, "%s\n%.2f%%", nm, 100.0 * conf[i]);
        caps[i] = strdup(line);
    }
    printf("%d of %d classes reached confidence %g\n", reached, n, (double)o.confidence);
    char title[200];
    snprintf(title, sizeof title, "fooling images from noise: softmax confidence of the class (at most %d steps of %g)",
             o.steps, (double)o.step);
    nerve_tiles_options to = {n > 5 ? (n + 1) / 2 : n, 84, o.lo, o.hi, title};
    if (nerve_tiles_write(a->out ? a->out : "fool.png", img, n, ch, h, w, (const char *const *)caps, &to) != NERVE_OK)
        rc = cli_fail("fool picture");
    else
        printf("wrote %s\n", a->out ? a->out : "fool.png");
    for (int i = 0; i < n; i++)
        free(caps[i]);
    free(img);
    return rc;
}

static int run_patch(nerve_model *m, const attack_args *a, const char *const *names, int n_names)
{
    const nerve_net_config *c = nerve_model_config(m);
    nerve_dataset train = {0}, test = {0};
    if (nerve_config_load_data(c, &train, &test) != NERVE_OK)
        return cli_fail(NULL);
    int rc = 0, ch, h, w;
    if (!train.n || !test.n || !test.y) {
        fprintf(stderr, "nerve attack: the patch attack needs the cfg's training and labelled test data\n");
        rc = 1;
    }
    if (!rc && nerve_explain_geometry(m, &ch, &h, &w) != NERVE_OK)
        rc = cli_fail("patch");
    if (rc) {
        nerve_dataset_free(&train);
        nerve_dataset_free(&test);
        return rc;
    }
    if (a->train_limit > 0 && a->train_limit < train.n)
        train.n = a->train_limit;
    nerve_patch_options o;
    nerve_patch_defaults(&o);
    o.target = a->n_classes ? a->classes[0] : 0;
    o.size = a->size;
    if (a->steps_given)
        o.steps = a->a.steps;
    if (a->step_given)
        o.step = a->a.step;
    o.lo = a->a.lo;
    o.hi = a->a.hi;
    o.seed = a->a.seed;
    int shorter = h < w ? h : w, size = o.size > 0 ? o.size : (shorter / 4 > 1 ? shorter / 4 : 1);
    float *patch = malloc((size_t)ch * size * size * sizeof *patch);
    int py = 0, px = 0, counted = 0;
    double placed = 0, random = 0;
    char b[32];
    const char *tn = name_of(o.target, names, n_names, b, sizeof b);
    if (!patch)
        rc = 1;
    else if (nerve_patch_train(m, &train, &o, patch, &py, &px) != NERVE_OK ||
             nerve_patch_evaluate(m, &test, &o, patch, py, px, a->limit, &placed, &random, &counted) != NERVE_OK)
        rc = cli_fail("patch");
    if (!rc) {
        printf("patch %dx%d (%.1f%% of the image) for '%s', placed at row %d, column %d\n", size, size,
               100.0 * size * size / ((double)h * w), tn, py, px);
        printf("success rate on %d test images of other classes: %.4f at the chosen place, %.4f at random places\n",
               counted, placed, random);
        /* the patch, then the first test images with it, captioned with the prediction */
        int n = 8;
        size_t d = (size_t)ch * h * w;
        float *img = calloc((size_t)(n + 1) * d, sizeof *img);
        char *caps[9] = {0};
        int logits = nerve_model_output(m), k = class_count(m);
        nerve_graph *g = nerve_model_graph(m);
        if (img) { /* the patch alone, on gray */
            for (size_t i = 0; i < d; i++)
                img[i] = 0.5f * (o.lo + o.hi);
            nerve_patch_paste(img, ch, h, w, patch, size, (h - size) / 2, (w - size) / 2);
            caps[0] = strdup("the patch\n");
        }
        for (int i = 0, j = 0; img && i < n && j < test.n; j++) {
            if ((int)test.y[j] == o.target)
                continue;
            float *xi = img + (size_t)(i + 1) * d;
            memcpy(xi, test.x + (size_t)j * d, d * sizeof(float));
            nerve_patch_paste(xi, ch, h, w, patch, size, py, px);
            nerve_graph_set_batch(g, 1);
            memcpy(nerve_value(g, nerve_model_input(m)).data, xi, d * sizeof(float));
            if (nerve_forward(g, logits) != NERVE_OK) {
                rc = cli_fail("patch");
                break;
            }
            const float *z = nerve_value(g, logits).data;
            int best = 0;
            for (int q = 1; q < k; q++)
                best = z[q] > z[best] ? q : best;
            char b1[32], b2[32], line[120];
            snprintf(line, sizeof line, "%s\n-> %s", name_of((int)test.y[j], names, n_names, b1, sizeof b1),
                     name_of(best, names, n_names, b2, sizeof b2));
            caps[++i] = strdup(line);
        }
        char title[200];
        snprintf(title, sizeof title, "a %dx%d patch for '%s': true class -> prediction with the patch", size, size, tn);
        nerve_tiles_options to = {n + 1, 84, o.lo, o.hi, title};
        if (!rc && img && nerve_tiles_write(a->out ? a->out : "patch.png", img, n + 1, ch, h, w,
                                            (const char *const *)caps, &to) != NERVE_OK)
            rc = cli_fail("patch picture");
        else if (!rc)
            printf("wrote %s\n", a->out ? a->out : "patch.png");
        for (int i = 0; i < n + 1; i++)
            free(caps[i]);
        free(img);
    }
    free(patch);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    return rc;
}

int attack_fool_or_patch(const attack_args *a)
{
    nerve_model *m = nerve_model_load(a->ckpt);
    if (!m)
        return cli_fail(NULL);
    int rc = nerve_explain_prepare(m, 64) != NERVE_OK ? cli_fail("attack") : 0;
    char **file_names = NULL;
    int n_names = 0, n_file = 0;
    const char *const *names = rc ? NULL : nerve_model_names(m, &n_names);
    const char *nf = a->names ? a->names : nerve_model_config(m)->data.names[0] ? nerve_model_config(m)->data.names : NULL;
    if (!rc && (a->names || !names) && nf) {
        if (nerve_names_load(nf, &file_names, &n_file) != NERVE_OK)
            rc = cli_fail(NULL);
        names = (const char *const *)file_names;
        n_names = n_file;
    }
    if (!rc)
        rc = a->mode == ATTACK_FOOL ? run_fool(m, a, names, n_names) : run_patch(m, a, names, n_names);
    nerve_names_free(file_names, n_file);
    nerve_model_free(m);
    return rc;
}
