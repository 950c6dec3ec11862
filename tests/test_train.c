/* The training loop and the CLI end to end, on a small synthetic CSV problem. */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Three Gaussian blobs in 4-D, labels in the last column. */
static void write_blobs_csv(const char *path, int n, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "f0,f1,f2,f3,label\n");
    for (int i = 0; i < n; i++) {
        int c = i % 3;
        for (int k = 0; k < 4; k++)
            fprintf(fp, "%.5f,", (k == c ? 2.0 : 0.0) + 0.8 * nerve_rng_normal(&r));
        fprintf(fp, "%d\n", c);
    }
    fclose(fp);
}

static const char *CFG_TEMPLATE = "[net]\n"
                                  "inputs=4\n"
                                  "batch=16\n"
                                  "optimizer=%s\n"
                                  "learning_rate=%s\n"
                                  "epochs=%d\n"
                                  "seed=7\n"
                                  "validation=0.2\n"
                                  "train_csv=train.csv\n"
                                  "test_csv=test.csv\n"
                                  "\n"
                                  "[connected]\n"
                                  "output=16\n"
                                  "activation=relu\n"
                                  "\n"
                                  "[dropout]\n"
                                  "probability=0.2\n"
                                  "\n"
                                  "[connected]\n"
                                  "output=3\n"
                                  "\n"
                                  "[softmax]\n";

/* Writes train.csv, test.csv and model.cfg into the test's temporary directory. */
static void make_problem(char *cfg_path, size_t n, const char *optimizer, const char *lr, int epochs)
{
    char path[512];
    snprintf(path, sizeof path, "%s/train.csv", test_tmpdir());
    write_blobs_csv(path, 300, 1);
    snprintf(path, sizeof path, "%s/test.csv", test_tmpdir());
    write_blobs_csv(path, 150, 2);
    snprintf(cfg_path, n, "%s/model.cfg", test_tmpdir());
    FILE *fp = fopen(cfg_path, "w");
    fprintf(fp, CFG_TEMPLATE, optimizer, lr, epochs);
    fclose(fp);
}

static int load_problem(const char *cfg, nerve_model **m, nerve_dataset *train, nerve_dataset *val,
                        nerve_dataset *test)
{
    *m = nerve_model_load_cfg(cfg);
    if (!*m)
        return -1;
    const nerve_net_config *c = nerve_model_config(*m);
    if (nerve_config_load_data(c, train, test) != NERVE_OK)
        return -1;
    return nerve_dataset_split(train, val, c->validation, c->seed);
}

static void free_problem(nerve_model *m, nerve_dataset *a, nerve_dataset *b, nerve_dataset *c)
{
    nerve_model_free(m);
    nerve_dataset_free(a);
    nerve_dataset_free(b);
    nerve_dataset_free(c);
}

TEST(fit_learns_the_blobs_and_writes_log_plot_checkpoint)
{
    char cfg[512], ckpt[600], log[600], svg[600];
    make_problem(cfg, sizeof cfg, "adam", "0.01", 8);
    nerve_model *m;
    nerve_dataset train = {0}, val = {0}, test = {0};
    CHECK_OK(load_problem(cfg, &m, &train, &val, &test));
    snprintf(ckpt, sizeof ckpt, "%s/m.safetensors", test_tmpdir());
    snprintf(log, sizeof log, "%s/log.csv", test_tmpdir());
    snprintf(svg, sizeof svg, "%s/curves.svg", test_tmpdir());
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    o.log_csv = log;
    o.plot_svg = svg;
    nerve_fit_result res;
    CHECK_OK(nerve_fit(m, &train, &val, &o, &res));
    CHECK(res.epochs_run == 8);
    double loss, acc;
    CHECK_OK(nerve_evaluate(m, &test, &loss, &acc, NULL, 0));
    CHECK_MSG(acc > 0.85, "test accuracy %.3f", acc);
    FILE *fp = fopen(log, "r");
    CHECK(fp != NULL);
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, fp))
        lines++;
    fclose(fp);
    CHECK(lines == 9); /* header + 8 epochs */
    fp = fopen(svg, "r");
    CHECK(fp != NULL);
    fclose(fp);
    /* the checkpoint reloads to the same predictions */
    nerve_model *m2 = nerve_model_load(ckpt);
    CHECK(m2 != NULL);
    double loss2, acc2;
    CHECK_OK(nerve_evaluate(m2, &test, &loss2, &acc2, NULL, 0));
    CHECK_NEAR(acc2, acc, 1e-12);
    CHECK_NEAR(loss2, loss, 1e-6);
    nerve_model_free(m2);
    free_problem(m, &train, &val, &test);
}

/* Runs fit to the end, or in two halves with a resume between, and returns the final
 * persistent tensors concatenated (caller frees). */
static float *train_and_collect(const char *cfg, int split, size_t *count)
{
    nerve_model *m;
    nerve_dataset train = {0}, val = {0}, test = {0};
    if (load_problem(cfg, &m, &train, &val, &test) != 0)
        return NULL;
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/resume-%d.safetensors", test_tmpdir(), split);
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    if (split) {
        o.stop_after_epochs = 2;
        if (nerve_fit(m, &train, &val, &o, NULL) != NERVE_OK)
            return NULL;
        nerve_model_free(m);
        m = nerve_model_load_cfg(cfg); /* a fresh process would start like this */
        o.stop_after_epochs = 0;
        o.resume = ckpt;
    }
    if (nerve_fit(m, &train, &val, &o, NULL) != NERVE_OK)
        return NULL;
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
    free_problem(m, &train, &val, &test);
    return all;
}

TEST(resumed_training_reproduces_the_uninterrupted_run_bit_for_bit)
{
    const char *optimizers[] = {"adam", "nesterov"};
    for (int k = 0; k < 2; k++) {
        char cfg[512];
        make_problem(cfg, sizeof cfg, optimizers[k], "0.01", 4);
        size_t n1 = 0, n2 = 0;
        float *straight = train_and_collect(cfg, 0, &n1);
        CHECK(straight != NULL);
        float *resumed = train_and_collect(cfg, 1, &n2);
        CHECK(resumed != NULL);
        CHECK(n1 == n2 && n1 > 0);
        CHECK_MSG(memcmp(straight, resumed, n1 * sizeof(float)) == 0, "%s: resumed weights differ",
                  optimizers[k]);
        free(straight);
        free(resumed);
    }
}

TEST(training_step_allocates_nothing_after_the_first)
{
    char cfg[512];
    make_problem(cfg, sizeof cfg, "adam", "0.01", 1);
    nerve_model *m = nerve_model_load_cfg(cfg);
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 16));
    nerve_graph *g = nerve_model_graph(m);
    nerve_optim *opt = nerve_optim_create(g, &nerve_model_config(m)->optim);
    CHECK(opt != NULL);
    int x = nerve_model_input(m), y = nerve_model_labels(m), loss = nerve_model_loss(m);
    nerve_tensor xt = nerve_value(g, x), yt = nerve_value(g, y);
    for (size_t i = 0; i < nerve_tensor_numel(&xt); i++)
        xt.data[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < nerve_tensor_numel(&yt); i++)
        yt.data[i] = (float)(i % 3);
    uint64_t before = 0;
    for (int step = 0; step < 6; step++) {
        if (step == 1)
            before = nerve_alloc_count();
        nerve_optim_prepare(opt);
        CHECK_OK(nerve_forward(g, loss));
        CHECK_OK(nerve_backward(g, loss));
        nerve_optim_step(opt, 0.01f);
    }
    CHECK_MSG(nerve_alloc_count() == before, "%llu allocations in 5 steady-state steps",
              (unsigned long long)(nerve_alloc_count() - before));
    nerve_optim_free(opt);
    nerve_model_free(m);
}

static long file_size_and_hash(const char *path, unsigned long *hash)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    long n = 0;
    int c;
    *hash = 5381;
    while ((c = fgetc(fp)) != EOF) {
        *hash = *hash * 33 + (unsigned long)c;
        n++;
    }
    fclose(fp);
    return n;
}

TEST(a_diverging_loss_stops_training_and_keeps_the_last_good_checkpoint)
{
    char cfg[512], ckpt[600];
    make_problem(cfg, sizeof cfg, "sgd", "0.01", 2);
    nerve_model *m;
    nerve_dataset train = {0}, val = {0}, test = {0};
    CHECK_OK(load_problem(cfg, &m, &train, &val, &test));
    snprintf(ckpt, sizeof ckpt, "%s/good.safetensors", test_tmpdir());
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    o.stop_after_epochs = 1;
    CHECK_OK(nerve_fit(m, &train, &val, &o, NULL));
    unsigned long h1, h2;
    long s1 = file_size_and_hash(ckpt, &h1);
    CHECK(s1 > 0);
    nerve_model_free(m);
    m = nerve_model_load_cfg(cfg);
    nerve_model_config_mut(m)->schedule.lr = 1e30f; /* guaranteed to blow up */
    o.stop_after_epochs = 0;
    o.resume = ckpt;
    int st = nerve_fit(m, &train, &val, &o, NULL);
    CHECK(st == NERVE_ERR_NUMERIC);
    CHECK(strstr(nerve_last_error(), "epoch 2") != NULL);
    long s2 = file_size_and_hash(ckpt, &h2);
    CHECK(s1 == s2 && h1 == h2);
    free_problem(m, &train, &val, &test);
}

/* Runs a shell command, captures stdout+stderr into out, returns the exit status. */
static int run_cmd(const char *cmd, char *out, size_t n)
{
    char full[2100];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t used = 0;
    size_t got;
    while (used + 1 < n && (got = fread(out + used, 1, n - 1 - used, p)) > 0)
        used += got;
    out[used] = '\0';
    int st = pclose(p);
    return WEXITSTATUS(st);
}

TEST(cli_train_eval_predict_summary)
{
    char cfg[512], cmd[2048];
    static char out[65536];
    make_problem(cfg, sizeof cfg, "adam", "0.01", 3);
    const char *bin = test_build_dir();
    snprintf(cmd, sizeof cmd, "%s/nerve train %s --out %s/run --threads 1", bin, cfg, test_tmpdir());
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "train failed:\n%s", out);
    CHECK(strstr(out, "epoch   3") != NULL);
    const char *acc = strstr(out, "test accuracy: 0.");
    CHECK_MSG(acc != NULL, "no accuracy line in:\n%s", out);
    CHECK(atof(acc + 15) > 0.8);

    snprintf(cmd, sizeof cmd, "%s/nerve eval %s/run/model.safetensors", bin, test_tmpdir());
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "eval failed:\n%s", out);
    CHECK(strstr(out, "confusion matrix") != NULL);
    CHECK(strstr(out, "test accuracy: 0.") != NULL);

    snprintf(cmd, sizeof cmd, "%s/nerve predict %s/run/model.safetensors %s/test.csv --label-col -1", bin,
             test_tmpdir(), test_tmpdir());
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "predict failed:\n%s", out);
    int lines = 0, right = 0;
    for (char *p = out; *p;) {
        int cls = atoi(p);
        right += cls == lines % 3; /* write_blobs_csv labels row i with i % 3 */
        lines++;
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    CHECK_MSG(lines == 150, "%d prediction lines", lines);
    CHECK(right > 120);

    snprintf(cmd, sizeof cmd, "%s/nerve summary %s", bin, cfg);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "summary failed:\n%s", out);
    /* 4*16+16 + 16*3+3 = 131 parameters; the table ends with the total */
    CHECK_MSG(strstr(out, "total parameters: 131\n") != NULL, "summary:\n%s", out);

    /* a bad cfg is an error naming file and line, with a non-zero exit and no crash */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.cfg", test_tmpdir());
    FILE *fp = fopen(bad, "w");
    fprintf(fp, "[net]\ninputs=4\n\n[connected]\nouput=3\n");
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/nerve summary %s", bin, bad);
    int st = run_cmd(cmd, out, sizeof out);
    CHECK(st != 0 && st < 128);
    CHECK_MSG(strstr(out, "bad.cfg:5:") != NULL, "message was: %s", out);

    snprintf(cmd, sizeof cmd, "%s/nerve train", bin);
    CHECK(run_cmd(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "%s/nerve --help", bin);
    CHECK(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "usage: nerve") != NULL);
}
