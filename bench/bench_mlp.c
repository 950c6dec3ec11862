/* MLP training throughput: 784-512-256-10, ReLU, softmax cross-entropy, Adam, batch 64, on
 * Fashion-MNIST training images (the same recipe as bench/torch_mlp.py).
 * usage: bench_mlp [threads] [steps]   prints "samples_per_sec <value>" */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define DATA "/usr/share/datasets/fashion-mnist/"

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int steps = argc > 2 ? atoi(argv[2]) : 400;
    const int batch = 64, warmup = 20;
    nerve_set_threads(threads);
    nerve_dataset d;
    if (nerve_dataset_load_idx(&d, DATA "train-images-idx3-ubyte.gz", DATA "train-labels-idx1-ubyte.gz",
                               1.0f / 255) != NERVE_OK) {
        fprintf(stderr, "bench_mlp: %s\n", nerve_last_error());
        return 1;
    }
    nerve_graph *g = nerve_graph_create();
    nerve_rng rng;
    nerve_rng_seed(&rng, 1);
    nerve_init he = {NERVE_INIT_HE_UNIFORM, 0, 0};
    int x = nerve_input(g, "x", 2, (int[]){batch, 784});
    int y = nerve_input(g, "labels", 1, (int[]){batch});
    int h = nerve_layer_dense(g, x, 512, 1, he, &rng, "fc1");
    h = nerve_activation(g, h, nerve_act_default(NERVE_ACT_RELU));
    h = nerve_layer_dense(g, h, 256, 1, he, &rng, "fc2");
    h = nerve_activation(g, h, nerve_act_default(NERVE_ACT_RELU));
    h = nerve_layer_dense(g, h, 10, 1, he, &rng, "fc3");
    int loss = nerve_softmax_ce_loss(g, h, y, -1, 0.0f);
    if (loss < 0 || nerve_graph_compile(g, batch) != NERVE_OK) {
        fprintf(stderr, "bench_mlp: %s\n", nerve_last_error());
        return 1;
    }
    nerve_optim_config oc = nerve_optim_default(NERVE_OPT_ADAM);
    nerve_optim *opt = nerve_optim_create(g, &oc);
    float *xv = nerve_value(g, x).data, *yv = nerve_value(g, y).data;
    double t0 = 0;
    int pos = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup)
            t0 = now();
        if (pos + batch > d.n)
            pos = 0;
        memcpy(xv, d.x + (size_t)pos * 784, (size_t)batch * 784 * sizeof(float));
        memcpy(yv, d.y + pos, (size_t)batch * sizeof(float));
        pos += batch;
        nerve_optim_prepare(opt);
        nerve_forward(g, loss);
        nerve_backward(g, loss);
        nerve_optim_step(opt, 1e-3f);
    }
    double secs = now() - t0;
    printf("samples_per_sec %.1f\n", steps * batch / secs);
    printf("final_loss %.4f\n", (double)nerve_value(g, loss).data[0]);
    nerve_optim_free(opt);
    nerve_graph_free(g);
    nerve_dataset_free(&d);
    return 0;
}
