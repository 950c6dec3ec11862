/* libFuzzer target: checkpoints as `nerve eval` / `nerve use` and `nerve train --resume`
 * read them. The input is a safetensors file, used twice:
 *   1. nerve_model_load: the model is rebuilt from the cfg in its metadata and its tensors
 *      loaded (the allocator cap of fuzz_common.h bounds a crafted cfg);
 *   2. --resume: a small fixed model (below) resumes training from it: tensors, optimiser
 *      state, best weights and the training state in the metadata (epoch, iteration,
 *      schedule, generator, history); the run writes a checkpoint, a CSV log and a plot,
 *      and stops after at most one epoch (stop_after_epochs), so that a crafted epoch
 *      count cannot make the execution long. Inputs of odd length resume with
 *      allow_cfg_change (--force), so a changed cfg in the metadata goes through the cfg
 *      comparison and on into training instead of being refused. */
#include "fuzz_common.h"

static const char *const CFG = "[net]\n"
                               "inputs=4\n"
                               "batch=2\n"
                               "epochs=3\n"
                               "learning_rate=0.1\n"
                               "optimizer=adam\n"
                               "policy=plateau\n"
                               "seed=7\n"
                               "[connected]\n"
                               "output=3\n"
                               "activation=relu\n"
                               "[dropout]\n"
                               "probability=0.25\n"
                               "[connected]\n"
                               "output=3\n"
                               "[softmax]\n";

static fuzz_file in;
static char dir[256], ckpt[300], log_csv[300], plot[300];
static nerve_dataset train, val;

static void make_set(nerve_dataset *d, int n)
{
    int dims[1] = {4};
    if (nerve_dataset_alloc(d, n, 1, dims) != NERVE_OK)
        abort();
    for (int i = 0; i < n * 4; i++)
        d->x[i] = (float)((i * 7) % 5) * 0.25f;
    for (int i = 0; i < n; i++)
        d->y[i] = (float)(i % 3);
    d->n_classes = 3;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    nerve_set_threads(1);
    fuzz_file_open(&in, "checkpoint");
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/nerve-fuzz-ckpt-XXXXXX", base);
    if (!mkdtemp(dir))
        fuzz_die("mkdtemp");
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.safetensors", dir);
    snprintf(log_csv, sizeof log_csv, "%s/log.csv", dir);
    snprintf(plot, sizeof plot, "%s/plot.svg", dir);
    make_set(&train, 6);
    make_set(&val, 3);
    return 0;
}

static void load_model(void)
{
    nerve_clear_error();
    nerve_model *m = nerve_model_load(in.path);
    if (!m) {
        fuzz_check_error(-1);
        return;
    }
    if (nerve_model_layer_count(m) < 0)
        abort();
    nerve_model_free(m);
}

static void resume(int force)
{
    nerve_model *m = nerve_model_from_cfg(CFG, "fuzz.cfg");
    if (!m)
        abort();
    nerve_fit_options opt = {0};
    opt.resume = in.path;
    opt.checkpoint = ckpt;
    opt.log_csv = log_csv;
    opt.plot_svg = plot;
    opt.stop_after_epochs = 1;
    opt.allow_cfg_change = force;
    nerve_fit_result res;
    nerve_clear_error();
    int st = nerve_fit(m, &train, &val, &opt, &res);
    fuzz_check_error(st);
    if (st == NERVE_OK && res.epochs_run > 1)
        abort(); /* stop_after_epochs is a promise */
    nerve_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_set(&in, data, size);
    load_model();
    resume((int)(size & 1));
    return 0;
}
