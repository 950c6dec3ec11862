/* libFuzzer target: cfg text through everything `nerve train` does with it before the
 * data: parse, build the graph, compile for a batch of 2, one forward and one backward
 * pass on a batch of 2 (then of 1, the last-batch path). Also the cfg comparison that a
 * resume runs (nerve_cfg_diff): a text against itself has no difference, and against a
 * fixed cfg into a small buffer (the truncation path).
 *
 * Sizes: the allocator cap of fuzz_common.h bounds memory (a too-large model fails with
 * NERVE_ERR_NOMEM); a model whose forward pass needs more than FUZZ_MAX_FLOPS per sample
 * (by the library's own layer table) is built but not run, to keep every execution
 * short. */
#include "fuzz_common.h"

#include <math.h>

#define FUZZ_MAX_FLOPS 2e7
#define FUZZ_BATCH 2

static void fill(nerve_tensor t, float scale)
{
    size_t n = nerve_tensor_numel(&t);
    for (size_t i = 0; t.data && i < n; i++)
        t.data[i] = scale * (float)((int)(i * 2654435761u % 17) - 8);
}

static void run(nerve_model *m)
{
    int n = nerve_model_layer_count(m);
    double flops = 0;
    for (int i = 0; i < n; i++) {
        nerve_layer_info li;
        if (nerve_model_layer_info(m, i, &li) != NERVE_OK)
            abort(); /* every index below the count has a row */
        flops += li.flops;
    }
    if (!(flops <= FUZZ_MAX_FLOPS))
        return;
    int st = nerve_model_compile(m, FUZZ_BATCH);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return;
    nerve_graph *g = nerve_model_graph(m);
    int in = nerve_model_input(m), labels = nerve_model_labels(m), loss = nerve_model_loss(m);
    int out = nerve_model_output(m);
    nerve_graph_set_training(g, 1);
    for (int b = FUZZ_BATCH; b >= 1; b--) {
        st = nerve_graph_set_batch(g, b);
        fuzz_check_error(st);
        if (st != NERVE_OK)
            return;
        fill(nerve_value(g, in), 0.125f);
        if (labels >= 0)
            fill(nerve_value(g, labels), 0.0f); /* class 0 / target 0 everywhere */
        int target = loss >= 0 ? loss : out;
        st = nerve_forward(g, target);
        fuzz_check_error(st);
        if (st == NERVE_OK && loss >= 0) {
            st = nerve_backward(g, loss);
            fuzz_check_error(st);
        }
        nerve_graph_set_training(g, 0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    nerve_set_threads(1);
    return 0;
}

static void diff(const char *text)
{
    static const char base[] = "[net]\ninputs=4\nlearning_rate=0.01\n[connected]\noutput=3\n"
                               "[softmax]\n";
    char out[48];
    nerve_clear_error();
    int n = nerve_cfg_diff(text, text, out, sizeof out);
    fuzz_check_error(n);
    if (n > 0) {
        fprintf(stderr, "a cfg differs from itself: %s\n", out);
        abort();
    }
    if (n == 0) {
        n = nerve_cfg_diff(base, text, out, sizeof out);
        if (n < 0 || strlen(out) >= sizeof out)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0; /* cfg files are small; long inputs only slow the search */
    char *text = fuzz_text(data, size);
    diff(text);
    nerve_clear_error();
    nerve_model *m = nerve_model_from_cfg(text, "fuzz.cfg");
    if (!m) {
        fuzz_check_error(-1);
    } else {
        run(m);
        nerve_model_free(m);
    }
    free(text);
    return 0;
}
