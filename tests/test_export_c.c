/* nerve_export_c (src/apps/export_c.c): small models of every exportable kind are written
 * as C, compiled with the host compiler (-std=c99 -Wall -Wextra -Werror), run on random
 * inputs, and their outputs compared with nerve's own (nerve_predict_outputs, or the graph
 * stepped with its carried state for a character model) to 1e-5. The sizes the header
 * states are checked against the compiled program's symbols (nm). */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define TOL 1e-5

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_floats(const char *path, const float *v, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(v, sizeof(float), n, f);
    return fclose(f) || put != n ? -1 : 0;
}

static int read_floats(const char *path, float *v, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t got = fread(v, sizeof(float), n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

/* A driver for the generated NAME.c: reads samples from argv[1], runs them in order (the
 * state of a step model carried along), writes the outputs to argv[2]. */
static int write_driver(const char *dir, const char *name)
{
    char path[1024], up[64];
    size_t k = 0;
    for (; name[k]; k++)
        up[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
    up[k] = 0;
    snprintf(path, sizeof path, "%s/driver_%s.c", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "#include \"%s.h\"\n#include <stdio.h>\n"
            "int main(int argc, char **argv)\n{\n"
            "    static float in[%s_IN_SIZE], out[%s_OUT_SIZE];\n"
            "    if (argc != 3) return 2;\n"
            "    FILE *a = fopen(argv[1], \"rb\"), *b = fopen(argv[2], \"wb\");\n"
            "    if (!a || !b) return 1;\n"
            "    %s_reset();\n"
            "    while (fread(in, sizeof(float), %s_IN_SIZE, a) == %s_IN_SIZE) {\n"
            "        %s_run(in, out);\n"
            "        if (fwrite(out, sizeof(float), %s_OUT_SIZE, b) != %s_OUT_SIZE) return 1;\n"
            "    }\n"
            "    fclose(a);\n    return fclose(b) ? 1 : 0;\n}\n",
            name, up, up, name, up, up, name, up, up);
    return fclose(f) ? -1 : 0;
}

/* Exports m as NAME into the test's directory, compiles it with the driver, runs it on
 * n samples `in` and reads the outputs into got. Also checks the header's byte counts
 * against the program's symbols. Returns 0 or a message in err. */
static int export_and_run(nerve_model *m, const char *name, const float *in, int n, float *got, char *err,
                          size_t errsize)
{
    const char *dir = test_tmpdir();
    nerve_export_c_info info;
    if (nerve_export_c(m, dir, name, &info) != NERVE_OK) {
        snprintf(err, errsize, "export: %s", nerve_last_error());
        return -1;
    }
    char cmd[4096], a[1024], b[1024];
    if (write_driver(dir, name)) {
        snprintf(err, errsize, "cannot write the driver");
        return -1;
    }
    snprintf(cmd, sizeof cmd, "cd %s && cc -std=c99 -Wall -Wextra -Werror -O1 -o run_%s driver_%s.c %s.c -lm",
             dir, name, name, name);
    if (run_cmd(cmd) != 0) {
        snprintf(err, errsize, "compiling the generated %s.c failed (kept in %s)", name, dir);
        return -1;
    }
    /* the figures in the header are the program's: the const symbols and the arena */
    snprintf(cmd, sizeof cmd, "nm -S --defined-only %s/run_%s", dir, name);
    unsigned long consts = 0, arena = 0;
    FILE *f = popen(cmd, "r");
    char line[512], sym[256], type;
    unsigned long addr, size;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%lx %lx %c %255s", &addr, &size, &type, sym) == 4) {
            char want[128];
            snprintf(want, sizeof want, "%s_arena", name);
            if ((type == 'r' || type == 'R') && !strncmp(sym, name, strlen(name)) && sym[strlen(name)] == '_')
                consts += size;
            else if (!strcmp(sym, want))
                arena = size;
        }
    int ok = f && pclose(f) == 0;
    if (!ok || consts != info.weight_bytes || arena != (info.arena_bytes ? info.arena_bytes : 4)) {
        snprintf(err, errsize, "object sizes: constants %lu (stated %zu), arena %lu (stated %zu)", consts,
                 info.weight_bytes, arena, info.arena_bytes);
        return -1;
    }
    snprintf(a, sizeof a, "%s/in_%s.bin", dir, name);
    snprintf(b, sizeof b, "%s/out_%s.bin", dir, name);
    if (write_floats(a, in, (size_t)n * info.in_numel)) {
        snprintf(err, errsize, "cannot write inputs");
        return -1;
    }
    snprintf(cmd, sizeof cmd, "%s/run_%s %s %s", dir, name, a, b);
    if (run_cmd(cmd) != 0 || read_floats(b, got, (size_t)n * info.out_numel)) {
        snprintf(err, errsize, "running the exported model failed");
        return -1;
    }
    return 0;
}

static float *random_inputs(int n, size_t numel, unsigned seed)
{
    float *x = malloc((size_t)n * numel * sizeof(float));
    for (size_t i = 0; x && i < (size_t)n * numel; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f * 2.0f - 0.5f;
    }
    return x;
}

/* Builds cfg, gives its batch norms and z-score non-trivial statistics, exports it and
 * compares n random samples with nerve_predict_outputs. The figures in the header are
 * checked against the symbols of the linked program. */
static void check_model(const char *cfg, const char *name, int n)
{
    nerve_model *m = nerve_model_from_cfg(cfg, "export.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 4));
    nerve_graph *g = nerve_model_graph(m);
    unsigned seed = 7;
    for (int id = 0; id < nerve_node_count(g); id++) { /* statistics as if trained */
        const char *nm = nerve_node_name(g, id);
        nerve_tensor t = nerve_value(g, id);
        int var = strstr(nm, "running_var") || strstr(nm, "input.std");
        if (!strstr(nm, "running_") && !strstr(nm, "input.mean") && !strstr(nm, "input.std"))
            continue;
        for (size_t i = 0; i < nerve_tensor_numel(&t); i++) {
            seed = seed * 1103515245u + 12345u;
            float u = (float)((seed >> 8) & 0xffff) / 65536.0f;
            t.data[i] = var ? 0.5f + u : u - 0.5f;
        }
    }
    int in_dims[NERVE_MAX_DIMS], nd = 0, od = 0, out_dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_node_shape(g, nerve_model_input(m), &nd, in_dims));
    CHECK_OK(nerve_node_shape(g, nerve_model_output(m), &od, out_dims));
    nerve_dataset d = {0};
    CHECK_OK(nerve_dataset_alloc(&d, n, nd - 1, in_dims + 1));
    float *x = random_inputs(n, d.sample_numel, 11);
    CHECK(x != NULL);
    memcpy(d.x, x, (size_t)n * d.sample_numel * sizeof(float));
    size_t out_numel = nerve_shape_numel(od - 1, out_dims + 1);
    float *want = malloc((size_t)n * out_numel * sizeof(float)), *got = malloc((size_t)n * out_numel * sizeof(float));
    CHECK(want && got);
    CHECK_OK(nerve_predict_outputs(m, &d, want, NULL));
    char err[512];
    int st = export_and_run(m, name, x, n, got, err, sizeof err);
    CHECK_MSG(st == 0, "%s: %s", name, err);
    CHECK_ARRAY_NEAR(got, want, (size_t)n * out_numel, TOL);
    /* the model's batch is back: it still predicts */
    CHECK_OK(nerve_predict_outputs(m, &d, want, NULL));
    free(x);
    free(want);
    free(got);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

TEST(export_c_mlp_matches_nerve)
{
    check_model("[net]\ninputs=7\nnormalize=1\nclasses=4\n"
                "[connected]\noutput=9\nactivation=tanh\ndropout=0.3\n"
                "[connected]\noutput=6\nbatch_normalize=1\nbias=0\nactivation=elu\n"
                "[prelu]\nper_channel=1\n"
                "[connected]\noutput=5\nactivation=softplus\n"
                "[activation]\nactivation=selu\n"
                "[activation]\nactivation=ramp\n"
                "[connected]\noutput=4\n[softmax]\n",
                "mlp", 6);
}

TEST(export_c_cnn_matches_nerve)
{
    check_model("[net]\nheight=8\nwidth=8\nchannels=2\nnormalize=1\nclasses=3\n"
                "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
                "[maxpool]\nsize=2\nstride=2\n"
                "[convolutional]\nfilters=4\nsize=3\npad=1\ngroups=2\nactivation=relu\n"
                "[shortcut]\nfrom=-2\n"
                "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=logistic\n"
                "[route]\nlayers=-1,-3\n"
                "[avgpool]\n"
                "[connected]\noutput=3\n[softmax]\n",
                "cnn", 5);
}

TEST(export_c_lenet_shape_matches_nerve)
{
    /* LeNet-5's layers at a smaller width, with its z-scored input */
    check_model("[net]\nheight=28\nwidth=28\nchannels=1\nnormalize=1\nclasses=10\n"
                "[convolutional]\nfilters=6\nsize=5\npad=1\nactivation=relu\n"
                "[maxpool]\nsize=2\nstride=2\n"
                "[convolutional]\nfilters=16\nsize=5\nactivation=relu\n"
                "[maxpool]\nsize=2\nstride=2\n"
                "[connected]\noutput=12\nactivation=relu\n"
                "[connected]\noutput=10\n[softmax]\n",
                "lenet", 4);
}

TEST(export_c_recurrent_classifiers_match_nerve)
{
    check_model("[net]\nheight=5\nwidth=3\nchannels=2\nclasses=3\n"
                "[lstm]\noutput=5\npeephole=1\nbidirectional=1\n"
                "[gru]\noutput=4\n"
                "[connected]\noutput=3\n[softmax]\n",
                "stack", 3);
    check_model("[net]\nheight=4\nwidth=3\nchannels=1\nclasses=2\n"
                "[gru]\noutput=5\ngru_form=linear_before_reset\nbidirectional=1\n"
                "[lstm]\noutput=3\ncoupled=1\n"
                "[rnn]\noutput=4\n"
                "[connected]\noutput=2\n[softmax]\n",
                "mixed", 3);
}

TEST(export_c_character_model_steps_with_its_state)
{
    /* a character model at seq=1: each call reads one token, the LSTM state carried */
    nerve_model *m = nerve_model_from_cfg("[net]\nseq=1\nbatch=1\n"
                                          "[embedding]\nvocab=6\nonehot=1\n"
                                          "[lstm]\noutput=5\nreturn_sequences=1\ncarry=1\n"
                                          "[connected]\noutput=6\nper_step=1\n"
                                          "[softmax]\ntarget=tokens\n",
                                          "charlm.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_training(g, 0);
    nerve_graph_set_carry_in_eval(g, 1);
    const float tokens[] = {1, 4, 0, 5, 5, 2, 3, 1};
    enum { T = 8, V = 6 };
    float want[T * V], got[T * V];
    nerve_graph_reset_carry(g);
    int in = nerve_model_input(m), out = nerve_model_output(m);
    for (int t = 0; t < T; t++) {
        nerve_value(g, in).data[0] = tokens[t];
        CHECK_OK(nerve_forward(g, out));
        const float *z = nerve_value(g, out).data;
        double mx = z[0], sum = 0;
        for (int c = 1; c < V; c++)
            mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < V; c++)
            sum += exp(z[c] - mx);
        for (int c = 0; c < V; c++)
            want[t * V + c] = (float)(exp(z[c] - mx) / sum);
    }
    char err[512];
    int st = export_and_run(m, "charlm", tokens, T, got, err, sizeof err);
    CHECK_MSG(st == 0, "%s", err);
    CHECK_ARRAY_NEAR(got, want, T * V, TOL);
    /* the state did carry: the same token gives other probabilities at steps 3 and 4 */
    CHECK(fabsf(got[3 * V] - got[4 * V]) > 1e-6f);
    nerve_model_free(m);
}

TEST(export_c_refuses_what_it_cannot_export)
{
    nerve_model *m = nerve_model_from_cfg("[net]\nheight=4\nwidth=4\nchannels=3\nclasses=2\n"
                                          "[normalization]\n[connected]\noutput=2\n[softmax]\n",
                                          "lrn.cfg");
    CHECK(m != NULL);
    CHECK(nerve_export_c(m, test_tmpdir(), "lrn", NULL) == NERVE_ERR_ARG);
    CHECK_MSG(strstr(nerve_last_error(), "normalization") && strstr(nerve_last_error(), "lrn"),
              "message: %s", nerve_last_error());
    CHECK(nerve_export_c(m, test_tmpdir(), "no-name", NULL) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "C identifier"));
    nerve_model_free(m);
}

TEST(export_c_command_writes_the_files_and_states_the_sizes)
{
    const char *dir = test_tmpdir();
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=3\nclasses=2\n[connected]\noutput=4\nactivation=relu\n"
                                          "[connected]\noutput=2\n[softmax]\n",
                                          "cli.cfg");
    CHECK(m != NULL);
    char path[1024], cmd[4096], out[4096] = {0};
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    CHECK_OK(nerve_model_save(m, path));
    nerve_model_free(m);
    snprintf(cmd, sizeof cmd, "%s/nerve export-c %s %s/c --name net > %s/out.txt 2>&1", test_build_dir(), path,
             dir, dir);
    CHECK(run_cmd(cmd) == 0);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    out[n] = 0;
    /* weights 4*3+4+2*4+2 = 26 floats; arena: two values of 4 and 2 floats alive together */
    CHECK_MSG(strstr(out, "flash, constants: 104 bytes") && strstr(out, "RAM, arena: 24 bytes") &&
                  strstr(out, "input: 3 floats, output: 2 floats"),
              "output:\n%s", out);
    snprintf(path, sizeof path, "%s/c/net.h", dir);
    f = fopen(path, "r");
    CHECK(f != NULL);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/nerve export-c %s > /dev/null 2>&1", test_build_dir(), path);
    CHECK(run_cmd(cmd) == 2); /* OUTDIR missing: usage */
}
