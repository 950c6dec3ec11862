/* nerve's side of bench/onnx/export_check.sh (make onnx-export-check, docs/onnx.md): builds
 * CFG, trains it briefly on its own data (the first STEPS steps of one epoch at batch 2;
 * with STEPS 0 or no data at hand, the freshly initialised weights with random batch-norm
 * and z-score statistics, said on the output), exports it to
 * OUT/NAME.onnx and writes the same random batch of 2 as OUT/NAME.input.bin (raw float32)
 * with its shape in OUT/NAME.shape, and nerve's outputs (the model output and, for a
 * classifier, its softmax) as OUT/NAME.out0.bin and OUT/NAME.out1.bin, for ONNX Runtime to
 * be compared with.
 * usage: onnx_export_check CFG OUT NAME [STEPS] */
#include "nerve.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 2

static volatile sig_atomic_t stop;
static int steps_wanted, steps_seen;

static void on_progress(const nerve_progress *p, void *user)
{
    (void)p;
    (void)user;
    if (++steps_seen >= steps_wanted)
        stop = 1;
}

static int write_raw(const char *path, const float *v, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    size_t put = fwrite(v, sizeof(float), n, f);
    return (fclose(f) != 0) | (put != n);
}

/* Trains m for the first steps of one epoch of its cfg's data at batch BATCH. Returns the
 * number of steps run (0 with the reason in why when there is no data). */
static int train_briefly(nerve_model *m, int steps, char *why, size_t size)
{
    nerve_net_config *c = nerve_model_config_mut(m);
    c->batch = BATCH;
    nerve_dataset train = {0}, test = {0};
    int st = nerve_model_vocab(m, NULL) > 0 ? nerve_model_text_data(m, &train, &test)
                                            : nerve_config_load_data(c, &train, &test);
    if (st != NERVE_OK) {
        snprintf(why, size, "no training data (%s)", nerve_last_error());
        return 0;
    }
    nerve_fit_options o = {0};
    o.max_epochs = 1;
    o.on_progress = on_progress;
    o.progress_every = 1;
    o.interrupt = &stop;
    steps_wanted = steps;
    nerve_fit_result r;
    memset(&r, 0, sizeof r);
    st = nerve_fit(m, &train, NULL, &o, &r);
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    if (st != NERVE_OK) {
        snprintf(why, size, "training failed (%s)", nerve_last_error());
        return -1;
    }
    return steps_seen;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: onnx_export_check CFG OUT NAME [STEPS]\n");
        return 2;
    }
    const char *cfg = argv[1], *out = argv[2], *name = argv[3];
    int steps = argc > 4 ? atoi(argv[4]) : 2;
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (!m) {
        fprintf(stderr, "%s: %s\n", cfg, nerve_last_error());
        return 1;
    }
    char why[600] = "";
    int ran = steps > 0 ? train_briefly(m, steps, why, sizeof why) : 0;
    if (ran < 0) {
        fprintf(stderr, "%s: %s\n", cfg, why);
        return 1;
    }
    nerve_graph *g = nerve_model_graph(m);
    if (nerve_model_compile(m, BATCH) != NERVE_OK && nerve_graph_set_batch(g, BATCH) != NERVE_OK) {
        fprintf(stderr, "%s: %s\n", cfg, nerve_last_error());
        return 1;
    }
    nerve_graph_set_batch(g, BATCH);
    nerve_graph_set_training(g, 0);
    if (ran == 0) /* untrained: batch-norm and z-score statistics as if trained, so they count */
        for (int id = 0; id < nerve_node_count(g); id++) {
            const char *nm = nerve_node_name(g, id);
            if (!strstr(nm, "running_") && !strstr(nm, "input.mean") && !strstr(nm, "input.std"))
                continue;
            int var = strstr(nm, "running_var") || strstr(nm, "input.std");
            nerve_tensor t = nerve_value(g, id);
            unsigned s = 7;
            for (size_t i = 0; i < nerve_tensor_numel(&t); i++) {
                s = s * 1103515245u + 12345u;
                float u = (float)((s >> 8) & 0xffff) / 65536.0f;
                t.data[i] = var ? 0.5f + u : u - 0.5f;
            }
        }
    nerve_graph_reset_carry(g);
    int in = nerve_model_input(m), o = nerve_model_output(m), vocab = nerve_model_vocab(m, NULL);
    nerve_tensor x = nerve_value(g, in);
    size_t xn = nerve_tensor_numel(&x);
    unsigned seed = 12345;
    for (size_t i = 0; i < xn; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned u = (seed >> 8) & 0xffff;
        x.data[i] = vocab > 0 ? (float)((int)(u % (unsigned)(vocab + 4)) - 2) /* a few out of range */
                              : (float)u / 65536.0f * 2.0f - 1.0f;
    }
    nerve_forward(g, o);
    nerve_tensor y = nerve_value(g, o);
    size_t yn = nerve_tensor_numel(&y);
    char path[4096];
    int bad = 0;
    snprintf(path, sizeof path, "%s/%s.input.bin", out, name);
    bad |= write_raw(path, x.data, xn);
    snprintf(path, sizeof path, "%s/%s.shape", out, name);
    FILE *f = fopen(path, "w");
    for (int k = 0; f && k < x.ndim; k++)
        fprintf(f, "%d%c", x.dims[k], k + 1 < x.ndim ? ' ' : '\n');
    bad |= !f || fclose(f) != 0;
    snprintf(path, sizeof path, "%s/%s.out0.bin", out, name);
    bad |= write_raw(path, y.data, yn);
    float *p = malloc(yn * sizeof(float));
    nerve_head_info h = nerve_model_head(m);
    int axis = h.task == NERVE_TASK_LANGUAGE ? y.ndim - 1 : 1;
    if (p && h.logits && y.ndim >= 2 && y.dims[axis] > 1 &&
        (h.task == NERVE_TASK_CLASSIFY || h.task == NERVE_TASK_SEGMENT || h.task == NERVE_TASK_LANGUAGE)) {
        size_t outer = 1, inner = 1;
        for (int k = 0; k < axis; k++)
            outer *= (size_t)y.dims[k];
        for (int k = axis + 1; k < y.ndim; k++)
            inner *= (size_t)y.dims[k];
        size_t C = (size_t)y.dims[axis];
        for (size_t a = 0; a < outer; a++)
            for (size_t i = 0; i < inner; i++) {
                const float *v = y.data + a * C * inner + i;
                double mx = v[0], s = 0;
                for (size_t c = 1; c < C; c++)
                    mx = v[c * inner] > mx ? v[c * inner] : mx;
                for (size_t c = 0; c < C; c++)
                    s += exp(v[c * inner] - mx);
                for (size_t c = 0; c < C; c++)
                    p[a * C * inner + i + c * inner] = (float)(exp(v[c * inner] - mx) / s);
            }
        snprintf(path, sizeof path, "%s/%s.out1.bin", out, name);
        bad |= write_raw(path, p, yn);
    }
    free(p);
    snprintf(path, sizeof path, "%s/%s.onnx", out, name);
    if (nerve_export_onnx(m, path) != NERVE_OK) {
        fprintf(stderr, "%s: %s\n", cfg, nerve_last_error());
        return 1;
    }
    if (bad) {
        fprintf(stderr, "%s: cannot write the files under %s\n", cfg, out);
        return 1;
    }
    if (ran > 0)
        printf("%s: trained %d steps at batch %d, exported\n", name, ran, BATCH);
    else
        printf("%s: %s, exported with its initial weights\n", name, why[0] ? why : "random weights");
    nerve_model_free(m);
    return 0;
}
