/* Regression tests for the inputs that the fuzz harnesses (tests/fuzz, docs/fuzzing.md)
 * found crashing or misbehaving: each input, as it was found (or minimised), with what the
 * library must do with it now. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* What tests/fuzz/fuzz_cfg.c does with a cfg: build, compile for 2, one forward and one
 * backward pass at batch 2 and at batch 1, on one thread as the harness runs. Returns the
 * first failing status (each test runs in its own process, so the thread setting stays
 * there). */
static int run_cfg(const char *text)
{
    nerve_set_threads(1);
    nerve_model *m = nerve_model_from_cfg(text, "finding.cfg");
    if (!m)
        return nerve_last_status();
    int st = nerve_model_compile(m, 2);
    nerve_graph *g = nerve_model_graph(m);
    for (int b = 2; st == NERVE_OK && b >= 1; b--) {
        st = nerve_graph_set_batch(g, b);
        if (st != NERVE_OK)
            break;
        nerve_tensor x = nerve_value(g, nerve_model_input(m));
        for (size_t i = 0; i < nerve_tensor_numel(&x); i++)
            x.data[i] = 0.125f * (float)((int)(i % 17) - 8);
        if (nerve_model_labels(m) >= 0) {
            nerve_tensor y = nerve_value(g, nerve_model_labels(m));
            memset(y.data, 0, nerve_tensor_numel(&y) * sizeof(float));
        }
        nerve_graph_set_training(g, 1);
        st = nerve_forward(g, nerve_model_loss(m));
        if (st == NERVE_OK)
            st = nerve_backward(g, nerve_model_loss(m));
    }
    nerve_model_free(m);
    return st;
}

/* fuzz_cfg, clang UBSan: the backward pass of a convolution on a direct route (no scratch)
 * computed its per-thread scratch pointers as NULL + offset (undefined behaviour). */
TEST(fuzz_cfg_conv_backward_without_scratch_is_defined)
{
    static const char cfg[] = "[net]\nheight=8\nwidth=8\nchannels=2\nbatch=4\nclasses=3\n"
                              "[convolutional]\nfilters=5\nsize=3\npadding=1\n"
                              "batch_normalize=1\nactivation=relu\n"
                              "[convolutional]\nfilters=4\nsize=3\npadding=1\n"
                              "batch_normalize=1\nactivation=relu\n"
                              "[convolutional]\nfilters=4\nsize=3\npadding=1\n"
                              "batch_normalize=1\nactivation=linear\n"
                              "[shortcut]\nfrom=-3\nactivation=relu\n"
                              "[convolutional]\nfilters=8\nsize=3\nstride=2\npadding=1\n"
                              "batch_normalize=1\nactivation=relu\n"
                              "[avgpool]\n[connected]\noutput=3\nactivation=linear\n[softmax]\n";
    CHECK_OK(run_cfg(cfg));
}
