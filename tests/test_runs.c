/* The run lifecycle: resuming (validated training state, changed cfgs, other models,
 * resuming inside an epoch), interrupts, and the CLI's run directories and messages. */
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Three Gaussian blobs in 4-D, labels in the last column. */
static void write_blobs(const char *path, int n, uint64_t seed, int classes)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "f0,f1,f2,f3,label\n");
    for (int i = 0; i < n; i++) {
        int c = i % classes;
        for (int k = 0; k < 4; k++)
            fprintf(fp, "%.5f,", (k == c % 4 ? 2.0 : 0.0) + 0.8 * nerve_rng_normal(&r));
        fprintf(fp, "%d\n", c);
    }
    fclose(fp);
}

/* A cfg in the test's directory: name.cfg with the given optimiser, rate and hidden width. */
static void write_cfg(char *path, size_t n, const char *name, const char *optim, const char *lr, int hidden,
                      int epochs)
{
    snprintf(path, n, "%s/%s.cfg", test_tmpdir(), name);
    FILE *fp = fopen(path, "w");
    fprintf(fp,
            "[net]\ninputs=4\nbatch=16\noptimizer=%s\nlearning_rate=%s\nepochs=%d\nseed=7\n"
            "validation=0.2\ntrain_csv=train.csv\ntest_csv=test.csv\n\n"
            "[connected]\noutput=%d\nactivation=relu\n\n[dropout]\nprobability=0.2\n\n"
            "[connected]\noutput=3\n\n[softmax]\n",
            optim, lr, epochs, hidden);
    fclose(fp);
}

static void write_data(int classes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/train.csv", test_tmpdir());
    write_blobs(path, 300, 1, classes);
    snprintf(path, sizeof path, "%s/test.csv", test_tmpdir());
    write_blobs(path, 90, 2, 3);
}

typedef struct problem {
    nerve_model *m;
    nerve_dataset train, val, test;
} problem;

static int load(problem *p, const char *cfg)
{
    memset(p, 0, sizeof *p);
    p->m = nerve_model_load_cfg(cfg);
    if (!p->m)
        return -1;
    const nerve_net_config *c = nerve_model_config(p->m);
    if (nerve_config_load_data(c, &p->train, &p->test) != NERVE_OK)
        return -1;
    return nerve_dataset_split(&p->train, &p->val, c->validation, c->seed);
}

static void unload(problem *p)
{
    nerve_model_free(p->m);
    nerve_dataset_free(&p->train);
    nerve_dataset_free(&p->val);
    nerve_dataset_free(&p->test);
}

/* Every persistent tensor of the model, concatenated (caller frees). */
static float *weights_of(nerve_model *m, size_t *count)
{
    nerve_graph *g = nerve_model_graph(m);
    int ids[64];
    int n = nerve_graph_persistent(g, ids, 64);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        total += nerve_tensor_numel(&t);
    }
    float *all = malloc(total * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        memcpy(all + off, t.data, nerve_tensor_numel(&t) * sizeof(float));
        off += nerve_tensor_numel(&t);
    }
    *count = total;
    return all;
}

/* Sets the interrupt flag once epoch `at_epoch` has done `at_batch` batches (progress is
 * reported after every batch). */
typedef struct interrupter {
    volatile sig_atomic_t flag;
    int at_epoch, at_batch;
} interrupter;

static void interrupt_at(const nerve_progress *p, void *user)
{
    interrupter *it = user;
    if (p->epoch == it->at_epoch && p->done >= (int64_t)it->at_batch * 16)
        it->flag = 1;
}

/* Trains cfg for its epochs; with at_epoch > 0, interrupts it there and resumes from the
 * checkpoint in a fresh model (as a new process would). Returns the final weights. */
static float *train_maybe_interrupted(const char *cfg, int at_epoch, int at_batch, size_t *count,
                                      nerve_fit_result *interrupted)
{
    problem p;
    if (load(&p, cfg) != 0)
        return NULL;
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/int-%d-%d.safetensors", test_tmpdir(), at_epoch, at_batch);
    interrupter it = {0, at_epoch, at_batch};
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    if (at_epoch > 0) {
        o.interrupt = &it.flag;
        o.on_progress = interrupt_at;
        o.user = &it;
        o.progress_every = 1;
        if (nerve_fit(p.m, &p.train, &p.val, &o, interrupted) != NERVE_OK)
            return NULL;
        nerve_model_free(p.m);
        p.m = nerve_model_load_cfg(cfg);
        memset(&o, 0, sizeof o);
        o.checkpoint = ckpt;
        o.resume = ckpt;
    }
    nerve_fit_result res;
    if (nerve_fit(p.m, &p.train, &p.val, &o, &res) != NERVE_OK || res.interrupted)
        return NULL;
    float *w = weights_of(p.m, count);
    unload(&p);
    return w;
}

TEST(an_interrupt_inside_an_epoch_resumes_to_the_uninterrupted_weights_bit_for_bit)
{
    const char *optimizers[] = {"adam", "nesterov"};
    for (int k = 0; k < 2; k++) {
        char cfg[512];
        write_data(3);
        write_cfg(cfg, sizeof cfg, optimizers[k], optimizers[k], "0.01", 16, 3);
        size_t n1 = 0, n2 = 0;
        float *straight = train_maybe_interrupted(cfg, 0, 0, &n1, NULL);
        CHECK(straight != NULL);
        /* 240 training samples, batch 16: 15 batches per epoch; stop after batch 6 of epoch 2 */
        nerve_fit_result ir;
        float *resumed = train_maybe_interrupted(cfg, 2, 6, &n2, &ir);
        CHECK(resumed != NULL);
        CHECK(ir.interrupted == 1 && ir.interrupted_epoch == 2 && ir.interrupted_batch == 6);
        CHECK(ir.epochs_run == 1);
        CHECK(n1 == n2 && n1 > 0);
        CHECK_MSG(memcmp(straight, resumed, n1 * sizeof(float)) == 0, "%s: resumed weights differ",
                  optimizers[k]);
        free(straight);
        free(resumed);
    }
}

TEST(an_interrupt_in_the_last_batch_of_an_epoch_stops_at_the_epoch_boundary)
{
    char cfg[512];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "edge", "adam", "0.01", 16, 3);
    size_t n1 = 0, n2 = 0;
    float *straight = train_maybe_interrupted(cfg, 0, 0, &n1, NULL);
    CHECK(straight != NULL);
    nerve_fit_result ir;
    float *resumed = train_maybe_interrupted(cfg, 1, 15, &n2, &ir);
    CHECK(resumed != NULL);
    CHECK(ir.interrupted == 1 && ir.interrupted_epoch == 2 && ir.interrupted_batch == 0);
    CHECK(n1 == n2 && memcmp(straight, resumed, n1 * sizeof(float)) == 0);
    free(straight);
    free(resumed);
}

/* ---- damaged training state --------------------------------------------------------- */

static const char *META_KEYS[] = {"nerve.format", "nerve.cfg", "nerve.cfg_dir", "train.epoch", "train.iter",
                                  "train.optim_steps", "train.best_epoch", "train.best_val", "train.bad_epochs",
                                  "train.have_best", "train.sched_best", "train.sched_bad", "train.sched_scale",
                                  "train.batch", "train.part_loss", "train.part_seen", "train.part_correct",
                                  "train.rng", "train.history", NULL};

/* Copies checkpoint src to dst with metadata key set to value (NULL: removed). */
static int rewrite_meta(const char *src, const char *dst, const char *key, const char *value)
{
    nerve_st_file *f = nerve_st_open(src);
    if (!f)
        return -1;
    nerve_st_writer *w = nerve_st_writer_create();
    int st = 0;
    for (int i = 0; i < nerve_st_count(f) && st == 0; i++) {
        int nd, dims[NERVE_MAX_DIMS];
        nerve_st_shape(f, i, &nd, dims);
        size_t numel = nerve_shape_numel(nd, dims);
        float *buf = malloc((numel ? numel : 1) * sizeof(float));
        st = nerve_st_read(f, i, buf, numel);
        if (st == 0)
            st = nerve_st_writer_add(w, nerve_st_name(f, i), nd, dims, buf);
        free(buf);
    }
    for (int i = 0; META_KEYS[i] && st == 0; i++) {
        const char *v = strcmp(META_KEYS[i], key) ? nerve_st_metadata(f, META_KEYS[i]) : value;
        if (v)
            st = nerve_st_writer_meta(w, META_KEYS[i], v);
    }
    if (st == 0)
        st = nerve_st_writer_save(w, dst);
    nerve_st_writer_free(w);
    nerve_st_close(f);
    return st;
}

/* Trains cfg for 2 epochs into ckpt (the checkpoint the tests below damage). */
static int make_checkpoint(const char *cfg, const char *ckpt)
{
    problem p;
    if (load(&p, cfg) != 0)
        return -1;
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    o.stop_after_epochs = 2;
    int st = nerve_fit(p.m, &p.train, &p.val, &o, NULL);
    unload(&p);
    return st;
}

/* Resumes cfg from ckpt; returns the status (message in nerve_last_error()). */
static int resume_from(const char *cfg, const char *ckpt, int allow_change)
{
    problem p;
    if (load(&p, cfg) != 0)
        return -100;
    char out[600];
    snprintf(out, sizeof out, "%s/resumed.safetensors", test_tmpdir());
    nerve_fit_options o = {0};
    o.checkpoint = out;
    o.resume = ckpt;
    o.allow_cfg_change = allow_change;
    int st = nerve_fit(p.m, &p.train, &p.val, &o, NULL);
    unload(&p);
    return st;
}

TEST(resume_rejects_every_damaged_training_field_naming_checkpoint_and_key)
{
    char cfg[512], good[600], bad[600];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "state", "adam", "0.01", 16, 4);
    snprintf(good, sizeof good, "%s/good.safetensors", test_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.safetensors", test_tmpdir());
    CHECK_OK(make_checkpoint(cfg, good));
    struct {
        const char *key, *value;
    } cases[] = {
        {"train.epoch", "-1"},           /* the two billion epochs */
        {"train.epoch", "2147483647"},   /* INT_MAX: epoch + 1 overflowed */
        {"train.epoch", "abc"},          /* garbage read as 0 */
        {"train.epoch", "2x"},
        {"train.epoch", " 2"},
        {"train.epoch", ""},
        {"train.epoch", "3"},            /* the log carries 2 epochs */
        {"train.iter", "-5"},
        {"train.iter", "99999999999999999999"},
        {"train.optim_steps", "1.5"},
        {"train.have_best", "2"},
        {"train.best_epoch", "9"},
        {"train.best_val", "nan"},
        {"train.bad_epochs", "-1"},
        {"train.sched_scale", "0"},
        {"train.sched_scale", "inf"},
        {"train.sched_bad", "7"},
        {"train.batch", "15"},           /* 15 batches per epoch: 0..14 */
        {"train.batch", "-2"},
        {"train.part_seen", "16"},       /* batch 0 has seen nothing */
        {"train.part_loss", "inf"},
        {"train.rng", "0 0 0 0"},
        {"train.rng", "1 2 3"},
        {"train.rng", "1 2 3 4294967296"},
        {"train.rng", "1 2 3 4 5"},
        {"train.history", "epoch,train_loss\n1,0.5\n"},
        {"train.history", "epoch,train_loss\n1,0.5\n3,0.4\n"},
        {"train.history", "epoch,train_loss\n1,0.5\n2,0.4"},
        {"train.history", "garbage"},
        {"train.epoch", NULL},
        {"train.rng", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(rewrite_meta(good, bad, cases[i].key, cases[i].value));
        int st = resume_from(cfg, bad, 0);
        CHECK_MSG(st == NERVE_ERR_FORMAT, "%s = '%s' was accepted (status %d: %s)", cases[i].key,
                  cases[i].value ? cases[i].value : "(absent)", st, nerve_last_error());
        CHECK_MSG(strstr(nerve_last_error(), bad) && strstr(nerve_last_error(), cases[i].key),
                  "%s = '%s': the message does not name the file and key: %s", cases[i].key,
                  cases[i].value ? cases[i].value : "(absent)", nerve_last_error());
    }
    /* the untouched copy resumes */
    CHECK_OK(rewrite_meta(good, bad, "train.epoch", "2"));
    CHECK_OK(resume_from(cfg, bad, 0));
}

TEST(resume_with_a_changed_cfg_states_the_changes_and_needs_allow_cfg_change)
{
    char cfg[512], changed[512], ckpt[600];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "orig", "adam", "0.01", 16, 3);
    write_cfg(changed, sizeof changed, "changed", "sgd", "0.02", 16, 3);
    snprintf(ckpt, sizeof ckpt, "%s/orig.safetensors", test_tmpdir());
    CHECK_OK(make_checkpoint(cfg, ckpt));
    int st = resume_from(changed, ckpt, 0);
    CHECK(st == NERVE_ERR_STATE);
    const char *msg = nerve_last_error();
    CHECK_MSG(strstr(msg, ckpt) && strstr(msg, "2 changes") && strstr(msg, "optimizer: adam -> sgd") &&
                  strstr(msg, "learning_rate: 0.01 -> 0.02") && strstr(msg, "--force"),
              "message: %s", msg);
    /* allowed: the adam moments do not fit sgd, which starts afresh */
    CHECK_OK(resume_from(changed, ckpt, 1));
    /* the same cfg written differently is no change */
    char same[512];
    snprintf(same, sizeof same, "%s/same.cfg", test_tmpdir());
    FILE *fp = fopen(same, "w");
    fprintf(fp, "# the same network\n[net]\nbatch=16\ninputs=4\noptimizer=adam\nlearning_rate=1e-2\n"
                "epochs=3\nseed=7\nvalidation=0.2\ntrain_csv=train.csv\ntest_csv=test.csv\n"
                "[connected]\nactivation=relu\noutput=16\n[dropout]\nprobability=0.2\n"
                "[connected]\noutput=3\n[softmax]\n");
    fclose(fp);
    CHECK_OK(resume_from(same, ckpt, 0));
}

TEST(resume_from_a_checkpoint_of_another_model_names_both_and_the_change)
{
    char cfg[512], wider[512], ckpt[600];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "narrow", "adam", "0.01", 16, 3);
    write_cfg(wider, sizeof wider, "wide", "adam", "0.01", 32, 3);
    snprintf(ckpt, sizeof ckpt, "%s/narrow.safetensors", test_tmpdir());
    CHECK_OK(make_checkpoint(cfg, ckpt));
    for (int allow = 0; allow < 2; allow++) {
        int st = resume_from(wider, ckpt, allow);
        CHECK(st == NERVE_ERR_SHAPE);
        const char *msg = nerve_last_error();
        CHECK_MSG(strstr(msg, ckpt) && strstr(msg, "another model") && strstr(msg, "connected1.weight") &&
                      strstr(msg, "output: 16 -> 32") && strstr(msg, "[16, 4] there and [32, 4] in the model"),
                  "message: %s", msg);
    }
}

TEST(cfg_diff_reports_key_by_key)
{
    const char *a = "[net]\nbatch=16\nlearning_rate=0.01\n[connected]\noutput=16\nactivation=relu\n[softmax]\n";
    char out[512];
    CHECK(nerve_cfg_diff(a, a, out, sizeof out) == 0 && out[0] == '\0');
    const char *b = "[net]\n# comment\nlearning_rate=1e-2\nbatch=16\n[connected]\nactivation=relu\noutput=16\n"
                    "[softmax]\n";
    CHECK(nerve_cfg_diff(a, b, out, sizeof out) == 0);
    const char *c = "[net]\nbatch=32\nlearning_rate=0.01\nmomentum=0.9\n[connected]\noutput=16\n"
                    "[convolutional]\nfilters=3\n[softmax]\n";
    int k = nerve_cfg_diff(a, c, out, sizeof out);
    CHECK_MSG(k == 6, "%d differences: %s", k, out);
    CHECK_MSG(strstr(out, "[net] batch: 16 -> 32") && strstr(out, "[net] momentum: (absent) -> 0.9") &&
                  strstr(out, "[connected] (layer 1) activation: relu -> (removed)") &&
                  strstr(out, "layer 2: [softmax] -> [convolutional]") && strstr(out, "2 layers -> 3 layers") &&
                  strstr(out, "layer 3 [softmax] added"),
              "%s", out);
    /* a small buffer still counts every difference */
    char tiny[8];
    CHECK(nerve_cfg_diff(a, c, tiny, sizeof tiny) == 6 && strlen(tiny) < 8);
    CHECK(nerve_cfg_diff(a, "[net\n", out, sizeof out) < 0);
}

/* ---- the CLI ------------------------------------------------------------------------- */

TEST(cli_runs_never_overwrite_an_earlier_run_unless_asked)
{
    char cfg[512], cmd[3000];
    static char out[65536];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "mlp", "adam", "0.01", 16, 1);
    const char *bin = test_bin_dir();
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet", bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "run directory: runs/mlp\n"), "%s", out);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "run directory: runs/mlp-2\n"), "%s", out);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "run directory: runs/mlp-3\n"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --overwrite", bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "run directory: runs/mlp\n"), "%s", out);
    /* an explicit --out that holds a run is refused, and named */
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --out runs/mlp-2", bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "runs/mlp-2 already holds files") && strstr(out, "--overwrite"), "%s", out);
    /* resuming goes on in the checkpoint's own directory */
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --epochs 2 --resume runs/mlp-3/model.safetensors",
             bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "run directory: runs/mlp-3\n") && strstr(out, "trained 1 epochs"), "%s", out);
    /* resuming another file of a directory must not replace its model.safetensors */
    snprintf(cmd, sizeof cmd, "cp runs/mlp-3/model.safetensors runs/mlp-3/other.safetensors && "
             "%s/nerve train mlp.cfg --threads 1 --quiet --epochs 3 --resume runs/mlp-3/other.safetensors", bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "would write over runs/mlp-3/model.safetensors, another checkpoint"), "%s", out);
    /* a directory that cannot be made is reported before any data is read, with the reason */
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --out mlp.cfg/sub", bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "mlp.cfg/sub") && strstr(out, "Not a directory"), "%s", out);
    /* --force without --resume is a usage error */
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --force", bin);
    CHECK(test_run(cmd, out, sizeof out) == 2);
}

TEST(cli_init_from_an_unrelated_checkpoint_is_an_error)
{
    char cfg[512], cmd[3000];
    static char out[65536];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "mlp", "adam", "0.01", 16, 1);
    const char *bin = test_bin_dir();
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --out a", bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    /* the same layers under other names: nothing matches */
    char other[600];
    snprintf(other, sizeof other, "%s/other.cfg", test_tmpdir());
    FILE *fp = fopen(other, "w");
    fprintf(fp, "[net]\ninputs=4\nbatch=16\nepochs=1\ntrain_csv=train.csv\n[connected]\nname=first\noutput=16\n"
                "[connected]\nname=second\noutput=3\n[softmax]\n");
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/nerve train other.cfg --threads 1 --quiet --init a/model.safetensors", bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "--init a/model.safetensors: none of its tensors matches") && strstr(out, "other.cfg"),
              "%s", out);
    /* a partial match says how many tensors it loaded */
    char wide[512];
    write_cfg(wide, sizeof wide, "wide", "adam", "0.01", 32, 1);
    snprintf(cmd, sizeof cmd, "%s/nerve train wide.cfg --threads 1 --quiet --init a/model.safetensors", bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "1 tensors loaded, 3 kept"), "%s", out);
}

TEST(cli_label_out_of_range_names_the_file_and_sample)
{
    char cfg[512], cmd[3000];
    static char out[65536];
    write_data(4); /* labels 0..3 for a 3-class model: sample 3 is the first 3 */
    write_cfg(cfg, sizeof cfg, "mlp", "adam", "0.01", 16, 1);
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet", test_bin_dir());
    CHECK(test_run(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "train.csv: sample 3 (counting from 0) has label 3") && strstr(out, "3 classes"), "%s",
              out);
}

TEST(cli_resume_with_a_changed_cfg_needs_force_and_then_prints_the_changes)
{
    char cfg[512], cmd[3000];
    static char out[65536];
    write_data(3);
    write_cfg(cfg, sizeof cfg, "mlp", "adam", "0.01", 16, 1);
    const char *bin = test_bin_dir();
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --out r", bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    write_cfg(cfg, sizeof cfg, "mlp", "adam", "0.03", 16, 2);
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --resume r/model.safetensors", bin);
    CHECK(test_run(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "learning_rate: 0.01 -> 0.03") && strstr(out, "epochs: 1 -> 2") && strstr(out, "--force"),
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve train mlp.cfg --threads 1 --quiet --resume r/model.safetensors --force",
             bin);
    CHECK_MSG(test_run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "resuming with a changed cfg (--force): ") && strstr(out, "trained 1 epochs"), "%s", out);
}

/* The brief variant of tests/crash/crash_test.sh (the full one is run by hand: see the
 * script): a few SIGKILLs, SIGINTs and a double SIGINT at random moments, each resumed to
 * the end with the uninterrupted run's tensors. */
TEST(crash_script_brief_variant_passes)
{
    if (getenv("NERVE_UNDER_QEMU")) { /* make test-aarch64 */
        printf("    skipped under qemu-user: the resume command that nerve prints names its own "
               "(aarch64) binary, which the script runs directly and this host can run only "
               "through qemu (no binfmt_misc here)\n");
        return;
    }
    char cmd[1200];
    static char out[65536];
    snprintf(cmd, sizeof cmd, "NERVE=%s/nerve bash tests/crash/crash_test.sh --brief", test_bin_dir());
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t used = 0, got;
    while (used + 1 < sizeof out && (got = fread(out + used, 1, sizeof out - 1 - used, p)) > 0)
        used += got;
    out[used] = '\0';
    int st = pclose(p);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "crash test: PASS"), "%s", out);
}
