/* The model object: layer table, forward passes of built models, heads, z-score inputs,
 * and checkpoints (save/load round trip, strict and non-strict weight loading). */
#include "test.h"

#include <math.h>
#include <string.h>

static const char *mlp_text = "[net]\nheight=28\nwidth=28\nchannels=1\nbatch=8\nclasses=10\n"
                              "[connected]\noutput=512\nactivation=relu\ndropout=0.2\n"
                              "[connected]\noutput=256\nactivation=relu\n"
                              "[connected]\noutput=10\n"
                              "[softmax]\n";

static void fill_value(nerve_graph *g, int node, const float *v)
{
    nerve_tensor t = nerve_value(g, node);
    memcpy(t.data, v, nerve_tensor_numel(&t) * sizeof(float));
}

static int node_named(nerve_graph *g, const char *name) { return nerve_node_find(g, name); }

TEST(model_layer_table_of_the_fashion_mlp)
{
    nerve_model *m = nerve_model_from_cfg(mlp_text, "mlp.cfg");
    CHECK(m != NULL);
    CHECK(nerve_model_layer_count(m) == 4);
    const struct { const char *type, *name; int dim; size_t params; double flops; int line; } want[] = {
        {"connected", "connected1", 512, 784 * 512 + 512, 2.0 * 784 * 512 + 512 + 512, 7},
        {"connected", "connected2", 256, 512 * 256 + 256, 2.0 * 512 * 256 + 256 + 256, 11},
        {"connected", "connected3", 10, 256 * 10 + 10, 2.0 * 256 * 10 + 10, 14},
        {"softmax", "softmax4", 10, 0, 30, 16},
    };
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        nerve_layer_info li;
        CHECK_OK(nerve_model_layer_info(m, i, &li));
        CHECK_MSG(strcmp(li.type, want[i].type) == 0 && strcmp(li.name, want[i].name) == 0,
                  "layer %d is %s %s", i, li.type, li.name);
        CHECK(li.ndim == 1 && li.dims[0] == want[i].dim);
        CHECK(li.params == want[i].params);
        CHECK_NEAR(li.flops, want[i].flops, 0);
        CHECK(li.line == want[i].line);
        total += li.params;
    }
    CHECK(total == 535818);
    nerve_layer_info li;
    CHECK(nerve_model_layer_info(m, 4, &li) == NERVE_ERR_ARG);
    nerve_graph *g = nerve_model_graph(m);
    CHECK(nerve_graph_param_count(g) == 535818);
    CHECK(node_named(g, "connected1.weight") >= 0 && node_named(g, "connected3.bias") >= 0);
    CHECK(nerve_model_output(m) == node_named(g, "connected3"));
    CHECK(nerve_model_labels(m) == node_named(g, "labels"));
    CHECK(nerve_model_loss(m) == node_named(g, "loss"));
    CHECK(nerve_model_input(m) == node_named(g, "input"));
    int nd, dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_node_shape(g, nerve_model_input(m), &nd, dims));
    CHECK(nd == 4 && dims[1] == 1 && dims[2] == 28 && dims[3] == 28);
    nerve_model_free(m);
}

TEST(model_connected_with_batch_norm_has_no_bias)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=4\n[connected]\noutput=3\nbatch_normalize=1\n"
                                          "activation=relu\n[connected]\noutput=2\nname=head\n"
                                          "init=zeros\n[cost]\ntype=mse\n",
                                          "bn.cfg");
    CHECK(m != NULL);
    nerve_graph *g = nerve_model_graph(m);
    nerve_layer_info li;
    CHECK_OK(nerve_model_layer_info(m, 0, &li));
    CHECK(li.params == 4 * 3 + 3 + 3); /* weight, bn scale and shift */
    CHECK_NEAR(li.flops, 2 * 4 * 3 + 2 * 3 + 3, 0);
    CHECK(node_named(g, "connected1.bias") < 0);
    CHECK(node_named(g, "connected1.bn.running_mean") >= 0);
    CHECK(nerve_node_kind(g, node_named(g, "connected1.bn.running_var")) == NERVE_NODE_STATE);
    /* The layer's name is its output, after the activation; the product is renamed. */
    CHECK(node_named(g, "connected1.dense") >= 0);
    CHECK(nerve_node_input(g, node_named(g, "head"), 0) == node_named(g, "connected1"));
    CHECK_OK(nerve_model_layer_info(m, 1, &li));
    CHECK(strcmp(li.name, "head") == 0 && li.params == 8);
    CHECK_OK(nerve_model_layer_info(m, 2, &li));
    CHECK(strcmp(li.name, "cost3") == 0 && li.ndim == 1 && li.dims[0] == 2);
    /* init=zeros really used */
    nerve_tensor w = nerve_value(g, node_named(g, "head.weight"));
    for (int i = 0; i < 8; i++)
        CHECK(w.data[i] == 0.0f);
    nerve_model_free(m);
}

TEST(model_softmax_forward_matches_hand_computation)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=3\nbatch=2\n[connected]\noutput=2\nname=fc\n"
                                          "[softmax]\n",
                                          "sm.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0)); /* 0: the cfg's batch */
    nerve_graph *g = nerve_model_graph(m);
    CHECK(nerve_graph_batch(g) == 2);
    const float w[] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[] = {0.1f, -0.2f};
    const float x[] = {1, 2, 3, -1, 0, 2}, y[] = {0, 1};
    fill_value(g, node_named(g, "fc.weight"), w);
    fill_value(g, node_named(g, "fc.bias"), b);
    fill_value(g, nerve_model_input(m), x);
    fill_value(g, nerve_model_labels(m), y);
    CHECK_OK(nerve_forward(g, nerve_model_loss(m)));
    /* logits: sample 1 (-1.9, 2.8), sample 2 (-2.9, 0.3) */
    const float logits[] = {-1.9f, 2.8f, -2.9f, 0.3f};
    CHECK_ARRAY_NEAR(nerve_value(g, nerve_model_output(m)).data, logits, 4, 1e-5);
    double l1 = log(exp(-1.9) + exp(2.8)) + 1.9; /* label 0 */
    double l2 = log(exp(-2.9) + exp(0.3)) - 0.3; /* label 1 */
    CHECK_NEAR(nerve_value(g, nerve_model_loss(m)).data[0], (l1 + l2) / 2, 1e-5);
    nerve_model_free(m);
}

TEST(model_cost_head_with_l2_penalty)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=2\n[connected]\noutput=2\nname=fc\n"
                                          "[cost]\ntype=sse\nl2=0.1\n",
                                          "c.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, nerve_model_labels(m), &nd, dims);
    CHECK(nd == 2 && dims[1] == 2); /* targets shaped like the output */
    const float w[] = {1, 2, 3, 4}, b[] = {1, 1}, x[] = {1, -1}, t[] = {0, 2};
    fill_value(g, node_named(g, "fc.weight"), w);
    fill_value(g, node_named(g, "fc.bias"), b);
    fill_value(g, nerve_model_input(m), x);
    fill_value(g, nerve_model_labels(m), t);
    CHECK_OK(nerve_forward(g, nerve_model_loss(m)));
    /* y = (0, 0): mse = (0 + 4) / 2; l2 = 0.1/2 * (1 + 4 + 9 + 16), biases excluded */
    CHECK_NEAR(nerve_value(g, nerve_model_loss(m)).data[0], 2.0 + 1.5, 1e-5);
    nerve_model_free(m);
}

TEST(model_zscore_inputs_use_the_stored_statistics)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=2\nnormalize=1\n[connected]\noutput=1\n"
                                          "name=fc\n",
                                          "z.cfg");
    CHECK(m != NULL);
    CHECK(nerve_model_normalizes(m));
    nerve_graph *g = nerve_model_graph(m);
    CHECK(nerve_node_kind(g, node_named(g, "input.mean")) == NERVE_NODE_STATE);
    CHECK_OK(nerve_model_compile(m, 1));
    const float mean[] = {1, 2}, sd[] = {2, 4}, w[] = {1, 1}, b[] = {0}, x[] = {3, 6};
    CHECK_OK(nerve_model_set_input_stats(m, mean, sd));
    fill_value(g, node_named(g, "fc.weight"), w);
    fill_value(g, node_named(g, "fc.bias"), b);
    fill_value(g, nerve_model_input(m), x);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    CHECK_NEAR(nerve_value(g, nerve_model_output(m)).data[0], 1.0 + 1.0, 1e-6);
    nerve_model_free(m);

    m = nerve_model_from_cfg("[net]\ninputs=2\n[connected]\noutput=1\n", "z.cfg");
    CHECK(m != NULL);
    CHECK(nerve_model_set_input_stats(m, mean, sd) == NERVE_ERR_STATE);
    nerve_model_free(m);
}

TEST(model_initialisation_follows_the_seed)
{
    const char *a = "[net]\ninputs=5\nseed=3\n[connected]\noutput=4\n";
    const char *b = "[net]\ninputs=5\nseed=4\n[connected]\noutput=4\n";
    nerve_model *m1 = nerve_model_from_cfg(a, "a.cfg"), *m2 = nerve_model_from_cfg(a, "a.cfg");
    nerve_model *m3 = nerve_model_from_cfg(b, "b.cfg");
    CHECK(m1 && m2 && m3);
    int id = node_named(nerve_model_graph(m1), "connected1.weight");
    nerve_tensor t1 = nerve_value(nerve_model_graph(m1), id);
    nerve_tensor t2 = nerve_value(nerve_model_graph(m2), id);
    nerve_tensor t3 = nerve_value(nerve_model_graph(m3), id);
    CHECK(memcmp(t1.data, t2.data, 20 * sizeof(float)) == 0);
    CHECK(memcmp(t1.data, t3.data, 20 * sizeof(float)) != 0);
    float sum = 0;
    for (int i = 0; i < 20; i++)
        sum += fabsf(t1.data[i]);
    CHECK(sum > 0); /* not left at zero */
    nerve_model_free(m1);
    nerve_model_free(m2);
    nerve_model_free(m3);
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static const char *ckpt_text = "[net]\ninputs=4\nbatch=3\nnormalize=1\n"
                               "[connected]\noutput=5\nactivation=tanh\nbatch_normalize=1\n"
                               "[prelu]\nper_channel=1\n[dropout]\nprobability=0.3\n"
                               "[connected]\noutput=3\n[softmax]\n";

static void randomize_persistent(nerve_graph *g, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    int ids[64];
    int n = nerve_graph_persistent(g, ids, 64);
    for (int i = 0; i < n; i++) {
        nerve_tensor t = nerve_value(g, ids[i]);
        for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
            t.data[k] = 0.5f + nerve_rng_uniform(&r); /* positive: valid std and variances */
    }
}

/* Eval-mode logits of m for a fixed batch of 3 (copied into out[9]). */
static int eval_logits(nerve_model *m, float *out)
{
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) && nerve_model_compile(m, 3) < 0)
        return -1;
    nerve_graph_set_training(g, 0);
    const float x[] = {0.1f, -2, 3, 0.5f, 1, 1, -1, 0, 2, -0.3f, 0.7f, 0};
    fill_value(g, nerve_model_input(m), x);
    if (nerve_forward(g, nerve_model_output(m)) < 0)
        return -1;
    memcpy(out, nerve_value(g, nerve_model_output(m)).data, 9 * sizeof(float));
    return 0;
}

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

TEST(model_checkpoint_round_trip_gives_identical_outputs)
{
    char path[512];
    path_in_tmp(path, sizeof path, "m.safetensors");
    nerve_model *m = nerve_model_from_cfg(ckpt_text, "ck.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 3));
    randomize_persistent(nerve_model_graph(m), 11);
    float before[9], after[9];
    CHECK_OK(eval_logits(m, before));
    CHECK_OK(nerve_model_save(m, path));

    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    CHECK(nerve_st_metadata(f, "nerve.format") &&
          strcmp(nerve_st_metadata(f, "nerve.format"), "nerve-checkpoint-1") == 0);
    CHECK(nerve_st_metadata(f, "nerve.cfg") && strcmp(nerve_st_metadata(f, "nerve.cfg"), ckpt_text) == 0);
    CHECK(nerve_st_count(f) == nerve_graph_persistent(nerve_model_graph(m), NULL, 0));
    CHECK(nerve_st_find(f, "connected1.bn.running_var") >= 0 && nerve_st_find(f, "input.std") >= 0);
    nerve_st_close(f);

    nerve_model *back = nerve_model_load(path);
    CHECK(back != NULL);
    CHECK(strcmp(nerve_model_cfg_text(back), ckpt_text) == 0);
    CHECK_OK(eval_logits(back, after));
    CHECK(memcmp(before, after, sizeof before) == 0);
    nerve_model_free(back);

    /* load_weights into a fresh model of the same cfg gives the same outputs too */
    nerve_model *fresh = nerve_model_from_cfg(ckpt_text, "ck.cfg");
    CHECK(fresh != NULL);
    CHECK_OK(eval_logits(fresh, after));
    CHECK(memcmp(before, after, sizeof before) != 0); /* differs until loaded */
    CHECK_OK(nerve_model_load_weights(fresh, path, 1));
    CHECK_OK(eval_logits(fresh, after));
    CHECK(memcmp(before, after, sizeof before) == 0);
    nerve_model_free(fresh);
    nerve_model_free(m);
}

TEST(model_load_weights_strict_and_non_strict)
{
    char path[512];
    path_in_tmp(path, sizeof path, "a.safetensors");
    nerve_model *a = nerve_model_from_cfg("[net]\ninputs=3\nseed=1\n[connected]\noutput=4\nname=fc1\n"
                                          "[connected]\noutput=2\nname=fc2\n[softmax]\n",
                                          "a.cfg");
    CHECK(a != NULL);
    CHECK_OK(nerve_model_save(a, path));
    /* b has one more layer: strict loading must name the missing tensor */
    nerve_model *b = nerve_model_from_cfg("[net]\ninputs=3\nseed=2\n[connected]\noutput=4\nname=fc1\n"
                                          "[connected]\noutput=2\nname=fc2\n[connected]\noutput=2\n"
                                          "name=fc3\n[softmax]\n",
                                          "b.cfg");
    CHECK(b != NULL);
    nerve_graph *ga = nerve_model_graph(a), *gb = nerve_model_graph(b);
    float keep[12];
    memcpy(keep, nerve_value(gb, node_named(gb, "fc1.weight")).data, sizeof keep);
    CHECK(nerve_model_load_weights(b, path, 1) == NERVE_ERR_FORMAT);
    CHECK_MSG(strstr(nerve_last_error(), path) && strstr(nerve_last_error(), "'fc3.weight'") &&
                  strstr(nerve_last_error(), "missing"),
              "got '%s'", nerve_last_error());
    /* a failed load changes nothing */
    CHECK(memcmp(keep, nerve_value(gb, node_named(gb, "fc1.weight")).data, sizeof keep) == 0);
    CHECK_OK(nerve_model_load_weights(b, path, 0));
    CHECK(memcmp(nerve_value(ga, node_named(ga, "fc1.weight")).data,
                 nerve_value(gb, node_named(gb, "fc1.weight")).data, sizeof keep) == 0);
    CHECK(memcmp(nerve_value(ga, node_named(ga, "fc2.bias")).data,
                 nerve_value(gb, node_named(gb, "fc2.bias")).data, 2 * sizeof(float)) == 0);
    /* c has a wider fc1: a shape mismatch is an error even when not strict */
    nerve_model *c = nerve_model_from_cfg("[net]\ninputs=3\n[connected]\noutput=5\nname=fc1\n", "c.cfg");
    CHECK(c != NULL);
    CHECK(nerve_model_load_weights(c, path, 0) == NERVE_ERR_SHAPE);
    CHECK_MSG(strstr(nerve_last_error(), "'fc1.weight': the checkpoint has shape [4, 3], the model "
                                         "has [5, 3]") != NULL,
              "got '%s'", nerve_last_error());
    nerve_model_free(a);
    nerve_model_free(b);
    nerve_model_free(c);
}

TEST(model_load_rejects_foreign_and_garbage_files)
{
    char path[512];
    path_in_tmp(path, sizeof path, "plain.safetensors");
    nerve_st_writer *w = nerve_st_writer_create();
    CHECK(w != NULL);
    CHECK_OK(nerve_st_writer_add(w, "x", 1, (int[]){2}, (float[]){1, 2}));
    CHECK_OK(nerve_st_writer_save(w, path));
    nerve_st_writer_free(w);
    CHECK(nerve_model_load(path) == NULL);
    CHECK(strstr(nerve_last_error(), "not a nerve checkpoint") != NULL);

    /* a checkpoint whose stored cfg is broken names "<path>:cfg:<line>" */
    path_in_tmp(path, sizeof path, "badcfg.safetensors");
    w = nerve_st_writer_create();
    CHECK_OK(nerve_st_writer_meta(w, "nerve.cfg", "[net]\ninputs=2\n[connected]\nouput=3\n"));
    CHECK_OK(nerve_st_writer_save(w, path));
    nerve_st_writer_free(w);
    CHECK(nerve_model_load(path) == NULL);
    char want[600];
    snprintf(want, sizeof want, "%s:cfg:4: unknown key 'ouput'", path);
    CHECK_MSG(strncmp(nerve_last_error(), want, strlen(want)) == 0, "got '%s'", nerve_last_error());

    path_in_tmp(path, sizeof path, "junk.safetensors");
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    static const char junk[] = "\x10\0\0\0\0\0\0\0{\"a\":garbage}xx";
    fwrite(junk, 1, sizeof junk - 1, fp);
    fclose(fp);
    CHECK(nerve_model_load(path) == NULL);
    CHECK(nerve_last_error()[0] != '\0');
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=2\n[connected]\noutput=1\n", "m.cfg");
    CHECK(m != NULL);
    CHECK(nerve_model_load_weights(m, path, 0) < 0);
    CHECK(nerve_model_load("/nonexistent/ck.safetensors") == NULL);
    nerve_model_free(m);
}
