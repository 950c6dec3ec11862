/* libFuzzer target: darknet .weights files. Reads the input into a fixed small model of
 * every layer kind that carries darknet weights (convolutional with and without batch
 * norm, grouped, local, connected with and without batch norm, darknet's rnn with batch norm
 * and gru: their three and six connected layers). An accepted file is written
 * back with the writer and read into a second model: every parameter and running
 * statistic must come back bit for bit. A refused file must leave the model unchanged. */
#include "fuzz_common.h"

#include <math.h>

static nerve_model *m, *m2;
static float *before;
static size_t n_before;
static char out_dir[256], out_path[300];

static const char *const cfg =
    "[net]\nheight=6\nwidth=6\nchannels=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\ngroups=2\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[local]\nfilters=2\nsize=3\npad=1\n"
    "[connected]\noutput=3\nbatch_normalize=1\n"
    "[connected]\noutput=2\n"
    "[rnn]\noutput=2\nbatch_normalize=1\n"
    "[gru]\noutput=2\n";

/* Every parameter and state of the graph, in node order, into out (or counts them). */
static size_t snapshot(nerve_model *mm, float *out)
{
    nerve_graph *g = nerve_model_graph(mm);
    size_t used = 0;
    for (int i = 0; i < nerve_node_count(g); i++) {
        int k = nerve_node_kind(g, i);
        if (k != NERVE_NODE_PARAM && k != NERVE_NODE_STATE)
            continue;
        nerve_tensor t = nerve_value(g, i);
        size_t n = nerve_tensor_numel(&t);
        if (out)
            memcpy(out + used, t.data, n * sizeof *out);
        used += n;
    }
    return used;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    m = nerve_model_from_cfg(cfg, "fuzz.cfg");
    m2 = nerve_model_from_cfg(cfg, "fuzz.cfg");
    if (!m || !m2)
        fuzz_die("model");
    n_before = snapshot(m, NULL);
    before = malloc(n_before * sizeof *before);
    if (!before)
        fuzz_die("malloc");
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out_dir, sizeof out_dir, "%s/nerve-fuzz-dw-XXXXXX", base);
    if (!mkdtemp(out_dir))
        fuzz_die("mkdtemp");
    snprintf(out_path, sizeof out_path, "%s/copy.weights", out_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    snapshot(m, before);
    nerve_clear_error();
    int64_t seen = -1;
    int st = nerve_model_read_darknet(m, data, size, &seen);
    fuzz_check_error(st);
    float *now = malloc(n_before * sizeof *now);
    if (!now)
        fuzz_die("malloc");
    snapshot(m, now);
    if (st != NERVE_OK) {
        if (memcmp(now, before, n_before * sizeof *now) != 0)
            abort(); /* a refused file changed the model */
        free(now);
        return 0;
    }
    if (seen < 0)
        abort();
    for (size_t i = 0; i < n_before; i++)
        if (!isfinite(now[i]))
            abort(); /* non-finite values must be refused */
    if (nerve_model_save_darknet(m, out_path, seen) != NERVE_OK ||
        nerve_model_load_darknet(m2, out_path) != NERVE_OK)
        abort();
    float *copy = malloc(n_before * sizeof *copy);
    if (!copy)
        fuzz_die("malloc");
    snapshot(m2, copy);
    if (memcmp(copy, now, n_before * sizeof *now) != 0)
        abort(); /* the writer and reader disagree */
    free(copy);
    free(now);
    return 0;
}
