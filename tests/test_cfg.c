/* cfg files: [net] settings, every class of error with its file:line, and robustness
 * against truncated and garbage input. */
#include "test.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

/* Builds a model from text and expects failure with a message starting with `prefix`
 * and containing `part`. Returns 1 when it did. */
static int fails_with(const char *text, const char *prefix, const char *part)
{
    nerve_model *m = nerve_model_from_cfg(text, "t.cfg");
    if (m) {
        nerve_model_free(m);
        fprintf(stderr, "  expected an error '%s ... %s' but the cfg was accepted\n", prefix, part);
        return 0;
    }
    const char *msg = nerve_last_error();
    if (strncmp(msg, prefix, strlen(prefix)) != 0 || !strstr(msg, part)) {
        fprintf(stderr, "  expected '%s ... %s', got '%s'\n", prefix, part, msg);
        return 0;
    }
    return 1;
}

TEST(cfg_net_section_fills_the_config)
{
    const char *text = "# comment\n"
                       "[net]\n"
                       "height=28 ; inline comment\n"
                       "  width = 28\n"
                       "channels=1\r\n"
                       "batch=64\n"
                       "epochs=12\n"
                       "seed=1234567890123\n"
                       "optimizer=momentum\n"
                       "momentum=0.8\n"
                       "learning_rate=0.05\n"
                       "decay=0.0005\n"
                       "clip_norm=5\n"
                       "epsilon=1e-6\n"
                       "policy=step\n"
                       "step=3\n"
                       "gamma=0.5\n"
                       "validation=0.1\n"
                       "patience=4\n"
                       "normalize=1\n"
                       "classes=10\n"
                       "train_images=/abs/train.gz\n"
                       "train_labels=labels.gz\n"
                       "\n"
                       "[connected]\n"
                       "output=10\n"
                       "[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(text, "models/x.cfg");
    CHECK(m != NULL);
    const nerve_net_config *c = nerve_model_config(m);
    CHECK(c->ndim == 3 && c->dims[0] == 1 && c->dims[1] == 28 && c->dims[2] == 28);
    CHECK(c->batch == 64 && c->epochs == 12 && c->seed == 1234567890123ull);
    CHECK(c->optim.type == NERVE_OPT_MOMENTUM);
    CHECK_NEAR(c->optim.momentum, 0.8, 1e-7);
    CHECK_NEAR(c->optim.weight_decay, 0.0005, 1e-9);
    CHECK_NEAR(c->optim.clip_norm, 5, 0);
    CHECK_NEAR(c->optim.delta, 1e-6, 1e-12);
    CHECK(c->schedule.type == NERVE_SCHED_STEP && c->schedule.step == 3);
    CHECK_NEAR(c->schedule.lr, 0.05, 1e-8);
    CHECK_NEAR(c->schedule.gamma, 0.5, 0);
    CHECK_NEAR(c->validation, 0.1, 1e-7);
    CHECK(c->patience == 4 && c->normalize == 1 && c->n_classes == 10);
    CHECK_NEAR(c->input_scale, 1.0 / 255, 1e-9); /* IDX default */
    CHECK(strcmp(c->train_images, "/abs/train.gz") == 0);
    CHECK(strcmp(c->train_labels, "models/labels.gz") == 0); /* relative to the cfg */
    CHECK(c->test_images[0] == '\0');
    CHECK(nerve_model_normalizes(m));
    CHECK(strcmp(nerve_model_cfg_text(m), text) == 0);
    nerve_model_free(m);
}

TEST(cfg_defaults_and_vector_inputs)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=3\ntrain_csv=d.csv\n[connected]\noutput=2\n",
                                          "x.cfg");
    CHECK(m != NULL);
    const nerve_net_config *c = nerve_model_config(m);
    CHECK(c->ndim == 1 && c->dims[0] == 3);
    CHECK(c->optim.type == NERVE_OPT_SGD && c->schedule.type == NERVE_SCHED_CONSTANT);
    CHECK_NEAR(c->schedule.lr, 0.01, 1e-9);
    CHECK(c->batch == 32 && c->epochs == 10 && c->normalize == 0 && c->n_classes == 0);
    CHECK_NEAR(c->input_scale, 1.0, 0); /* CSV values are taken as they are */
    CHECK(strcmp(c->train_csv, "d.csv") == 0); /* no directory in the file name */
    CHECK(nerve_model_labels(m) == -1 && nerve_model_loss(m) == -1); /* no head */
    CHECK(!nerve_model_normalizes(m));
    nerve_model_free(m);
}

/* darknet's [net] as darknet means it: iterations, its policies, burn-in, momentum with
 * SGD, subdivisions, duplicate keys of equal value (get_current_rate in darknet's
 * network.c gives the formulas). */
TEST(cfg_darknet_net_keys_mean_what_darknet_means)
{
    nerve_model *m = nerve_model_from_cfg(
        "[net]\nbatch=8\nbatch=8\nsubdivisions=2\ninputs=2\nmomentum=0.9\ndecay=0.0005\n"
        "learning_rate=0.1\nburn_in=10\npower=2\npolicy=steps\nsteps=-1,100,200\n"
        "scales=.5,10,.1\nmax_batches=0\n[connected]\noutput=2\n[softmax]\n", "d.cfg");
    CHECK(m != NULL);
    if (!m)
        return;
    const nerve_net_config *c = nerve_model_config(m);
    CHECK(c->optim.type == NERVE_OPT_MOMENTUM);
    CHECK_NEAR(c->optim.momentum, 0.9, 1e-7);
    CHECK(c->batch == 8 && c->subdivisions == 2 && c->max_batches_set && c->max_batches == 0);
    const nerve_schedule *sc = &c->schedule;
    CHECK(sc->in_iterations);
    CHECK_NEAR(nerve_schedule_lr(sc, 5, 99), 0.1 * 0.25, 1e-7);    /* burn-in: (5/10)^2 */
    CHECK_NEAR(nerve_schedule_lr(sc, 10, 0), 0.1 * 0.5, 1e-7);     /* step -1 passed */
    CHECK_NEAR(nerve_schedule_lr(sc, 100, 0), 0.1 * 0.5 * 10, 1e-6);
    CHECK_NEAR(nerve_schedule_lr(sc, 250, 0), 0.1 * 0.5 * 10 * 0.1, 1e-6);
    nerve_model_free(m);
    m = nerve_model_from_cfg("[net]\ninputs=2\nlearning_rate=0.1\npolicy=poly\npower=4\n"
                             "max_batches=1000\n[connected]\noutput=2\n", "d.cfg");
    CHECK(m != NULL);
    if (m) {
        sc = &nerve_model_config(m)->schedule;
        CHECK_NEAR(nerve_schedule_lr(sc, 500, 3), 0.1 * pow(0.5, 4), 1e-7);
        nerve_model_free(m);
    }
    m = nerve_model_from_cfg("[net]\ninputs=2\nlearning_rate=0.1\npolicy=step\nstep=100\n"
                             "scale=.5\n[connected]\noutput=2\n", "d.cfg");
    CHECK(m != NULL);
    if (m) {
        sc = &nerve_model_config(m)->schedule;
        CHECK_NEAR(nerve_schedule_lr(sc, 250, 0), 0.1 * 0.25, 1e-7); /* 0.5^(250/100) */
        nerve_model_free(m);
    }
    m = nerve_model_from_cfg("[net]\ninputs=2\nlearning_rate=0.1\npolicy=exp\ngamma=.99\n"
                             "[connected]\noutput=2\n", "d.cfg");
    CHECK(m != NULL);
    if (m) {
        sc = &nerve_model_config(m)->schedule;
        CHECK_NEAR(nerve_schedule_lr(sc, 10, 0), 0.1 * pow(0.99, 10), 1e-7); /* per iteration */
        nerve_model_free(m);
    }
    m = nerve_model_from_cfg("[net]\ninputs=2\nlearning_rate=0.1\npolicy=sigmoid\ngamma=.1\n"
                             "step=50\n[connected]\noutput=2\n", "d.cfg");
    CHECK(m != NULL);
    if (m) {
        sc = &nerve_model_config(m)->schedule;
        CHECK_NEAR(nerve_schedule_lr(sc, 60, 0), 0.1 / (1 + exp(0.1 * 10)), 1e-7);
        nerve_model_free(m);
    }
    m = nerve_model_from_cfg("[net]\ninputs=2\nadam=1\nmomentum=0.9\npolicy=steps\n"
                             "epoch_steps=3,5\ngamma=.5\n[connected]\noutput=2\n", "d.cfg");
    CHECK(m != NULL);
    if (m) {
        c = nerve_model_config(m);
        CHECK(c->optim.type == NERVE_OPT_ADAM);
        CHECK_NEAR(nerve_schedule_lr(&c->schedule, 100000, 4), 0.01 * 0.5, 1e-8); /* epochs */
        nerve_model_free(m);
    }
}

TEST(cfg_darknet_steps_policy_and_adam_keys)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=2\noptimizer=adam\nbeta1=0.8\nbeta2=0.99\n"
                                          "policy=steps\nsteps=5,9,20\nscales=.1,.1,.1\n"
                                          "[connected]\noutput=2\n[softmax]\n",
                                          "s.cfg");
    CHECK(m != NULL);
    const nerve_net_config *c = nerve_model_config(m);
    CHECK(c->optim.type == NERVE_OPT_ADAM);
    CHECK_NEAR(c->optim.rho1, 0.8, 1e-7);
    CHECK_NEAR(c->optim.rho2, 0.99, 1e-7);
    CHECK(c->schedule.type == NERVE_SCHED_MULTISTEP && c->schedule.n_milestones == 3);
    CHECK(c->schedule.milestones[0] == 5 && c->schedule.milestones[2] == 20);
    CHECK_NEAR(c->schedule.gamma, 0.1, 1e-8);
    CHECK(c->n_classes == 2); /* from the softmax head */
    nerve_model_free(m);
}

TEST(cfg_every_error_names_file_and_line)
{
    /* Syntax. */
    CHECK(fails_with("[net]\ninputs=2\n[connected\n", "t.cfg:3:", "no closing ']'"));
    CHECK(fails_with("[net]\ninputs 2\n", "t.cfg:2:", "expected 'key=value'"));
    CHECK(fails_with("batch=1\n[net]\n", "t.cfg:1:", "outside any section"));
    CHECK(fails_with("[net]\ninputs=\n", "t.cfg:2:", "has no value"));
    CHECK(fails_with("[net]\n=3\n", "t.cfg:2:", "malformed key"));
    CHECK(fails_with("[net]\ninputs=2\n[connected] x\n", "t.cfg:3:", "unexpected text"));
    /* Structure. */
    CHECK(fails_with("# nothing\n\n", "t.cfg:3:", "no sections"));
    CHECK(fails_with("\n[connected]\noutput=2\n", "t.cfg:2:", "the first section must be [net]"));
    CHECK(fails_with("[net]\ninputs=2\n", "t.cfg:3:", "no layers after [net]"));
    CHECK(fails_with("[net]\ninputs=2\n[net]\n", "t.cfg:3:", "only once"));
    CHECK(fails_with("[net]\ninputs=2\n[conected]\n", "t.cfg:3:",
                     "unknown section [conected]; expected one of: connected"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\n[softmax]\n[dropout]\n", "t.cfg:6:",
                     "head must be the last section"));
    /* Keys. */
    CHECK(fails_with("[net]\ninputs=2\n\n[connected]\noutput=3\nouput=4\n", "t.cfg:6:",
                     "unknown key 'ouput' in [connected]; expected one of: output, activation, "
                     "batch_normalize, bias, init, dropout"));
    CHECK(fails_with("[net]\ninputs=2\nmomentum=0.9\nmomentum=0.8\n", "t.cfg:4:",
                     "duplicate key 'momentum' in [net] with another value (first set on line 3"));
    {   /* darknet's "# Testing" and "# Training" blocks: the first batch= and subdivisions=,
         * as darknet takes them */
        nerve_model *m = nerve_model_from_cfg("[net]\nbatch=1\nsubdivisions=1\nbatch=64\n"
                                              "subdivisions=16\ninputs=2\n[connected]\noutput=1\n",
                                              "t.cfg");
        CHECK(m && nerve_model_config(m)->batch == 1);
        nerve_model_free(m);
    }
    CHECK(fails_with("[net]\ninputs=2\n[connected]\nactivation=relu\n", "t.cfg:3:", "needs output="));
    CHECK(fails_with("[net]\nbatch=2\n[connected]\noutput=1\n", "t.cfg:1:", "no input shape"));
    CHECK(fails_with("[net]\nheight=4\n[connected]\noutput=1\n", "t.cfg:2:", "height= alone"));
    CHECK(fails_with("[net]\ninputs=4\nwidth=2\n", "t.cfg:2:", "not both"));
    /* Values. */
    CHECK(fails_with("[net]\ninputs=2\n\nlearning_rate=abc\n", "t.cfg:4:",
                     "learning_rate = 'abc' is not a number"));
    CHECK(fails_with("[net]\ninputs=2\nlearning_rate=-1\n", "t.cfg:3:",
                     "learning_rate = '-1' is out of range; expected a number > 0"));
    CHECK(fails_with("[net]\ninputs=2\nlearning_rate=nan\n", "t.cfg:3:", "not a finite number"));
    CHECK(fails_with("[net]\ninputs=2.5\n", "t.cfg:2:", "inputs = '2.5' is not an integer"));
    CHECK(fails_with("[net]\ninputs=0\n", "t.cfg:2:", "expected an integer in [1,"));
    CHECK(fails_with("[net]\ninputs=2\nvalidation=1\n", "t.cfg:3:", "in [0, 1)"));
    CHECK(fails_with("[net]\ninputs=2\nnormalize=yes\n", "t.cfg:3:", "expected 0 or 1"));
    CHECK(fails_with("[net]\ninputs=2\nseed=-4\n", "t.cfg:3:", "not a non-negative integer"));
    CHECK(fails_with("[net]\ninputs=2\noptimizer=adamax\n", "t.cfg:3:",
                     "optimizer = 'adamax' is unknown; expected one of: sgd, momentum"));
    CHECK(fails_with("[net]\ninputs=2\noptimizer=adam\nmomentum=0.9\n", "t.cfg:4:",
                     "momentum has no effect with optimizer=adam"));
    CHECK(fails_with("[net]\ninputs=2\noptimizer=sgd\nbeta1=0.9\n", "t.cfg:4:", "adam or adamw"));
    CHECK(fails_with("[net]\ninputs=2\npolicy=poly\n", "t.cfg:3:", "needs max_batches="));
    CHECK(fails_with("[net]\ninputs=2\npolicy=random\n", "t.cfg:3:", "not supported"));
    CHECK(fails_with("[net]\ninputs=2\nbatch=4\nsubdivisions=3\n", "t.cfg:4:", "does not divide"));
    CHECK(fails_with("[net]\ninputs=2\npolicy=steps\nsteps=2\nepoch_steps=2\n", "t.cfg:5:",
                     "give one"));
    CHECK(fails_with("[net]\ninputs=2\nsteps=3,4\n", "t.cfg:3:",
                     "steps has no effect with policy=constant"));
    CHECK(fails_with("[net]\ninputs=2\npolicy=steps\n", "t.cfg:3:", "needs steps="));
    CHECK(fails_with("[net]\ninputs=2\npolicy=steps\nsteps=4,2\n", "t.cfg:4:", "strictly increasing"));
    CHECK(fails_with("[net]\ninputs=2\npolicy=steps\nsteps=2,4\nscales=.1,.5\ngamma=.1\n",
                     "t.cfg:5:", "give one"));
    CHECK(fails_with("[net]\ninputs=2\npolicy=steps\nsteps=2,4\nscales=.1\n", "t.cfg:5:",
                     "scales has 1 values but steps has 2"));
    CHECK(fails_with("[net]\ninputs=2\npolicy=steps\nsteps=2,x\n", "t.cfg:4:", "item 2 ('x')"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\nactivation=rleu\n", "t.cfg:5:",
                     "activation = 'rleu' is unknown; expected one of:"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\ninit=sideways\n", "t.cfg:5:",
                     "init = 'sideways'"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\nbatch_normalize=1\nbias=1\n",
                     "t.cfg:6:", "bias=1 with batch_normalize=1"));
    CHECK(fails_with("[net]\ninputs=2\n[dropout]\nprobability=1.5\n", "t.cfg:4:", "in [0, 1)"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\nname=a b\n", "t.cfg:5:",
                     "not a valid layer name"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\nname=fc\n[connected]\noutput=2\n"
                     "name=fc\n",
                     "t.cfg:8:", "already used by the layer on line 3"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=2\nname=labels\n", "t.cfg:5:", "reserved"));
    CHECK(fails_with("[net]\ninputs=2\n[cost]\ntype=huber\n", "t.cfg:4:", "type = 'huber' is unknown"));
    /* Shapes. */
    CHECK(fails_with("[net]\ninputs=2\nclasses=3\n[connected]\noutput=2\n\n[softmax]\n", "t.cfg:7:",
                     "2 class scores but [net] says classes=3"));
    CHECK(fails_with("[net]\nheight=2\nwidth=2\nchannels=3\n[softmax]\n", "t.cfg:5:",
                     "outputs [3, 2, 2] per sample"));
    CHECK(fails_with("[net]\ninputs=2\n[connected]\noutput=3\n[softmax]\nclass_weights=1,2\n",
                     "t.cfg:6:", "class_weights has 2 values; expected 3"));
    /* A graph builder's own shape error, prefixed with the layer's section. */
    CHECK(fails_with("[net]\nheight=2\nwidth=2\nchannels=3\n[activation]\n\n[cost]\ntype=hinge\n",
                     "t.cfg:7: [cost] cost2: ", "2-D"));
    CHECK(nerve_last_status() == NERVE_ERR_SHAPE);
}

TEST(cfg_file_loading_reports_io_and_nul_bytes)
{
    CHECK(nerve_model_load_cfg("/nonexistent/x.cfg") == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "/nonexistent/x.cfg") != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/nul.cfg", test_tmpdir());
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    fwrite("[net]\ninputs=2\n\0[connected]\n", 1, 28, fp);
    fclose(fp);
    CHECK(nerve_model_load_cfg(path) == NULL);
    char want[600];
    snprintf(want, sizeof want, "%s:3: a NUL byte; a cfg is a text file", path);
    CHECK_MSG(strcmp(nerve_last_error(), want) == 0, "got '%s'", nerve_last_error());
}

TEST(cfg_shipped_models_parse)
{
    nerve_model *m = nerve_model_load_cfg("models/mlp.cfg");
    CHECK(m != NULL);
    const nerve_net_config *c = nerve_model_config(m);
    CHECK(c->batch == 64 && c->n_classes == 10);
    CHECK(strcmp(c->train_images, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") == 0);
    CHECK(nerve_graph_param_count(nerve_model_graph(m)) == 535818);
    nerve_model_free(m);
    m = nerve_model_load_cfg("models/xor.cfg");
    CHECK(m != NULL);
    CHECK(strcmp(nerve_model_config(m)->train_csv, "models/xor.csv") == 0);
    nerve_model_free(m);
}

/* Any outcome is fine except a crash (the runner catches those) or an error message
 * without "<file>:" in front. */
static int survives(const char *text)
{
    nerve_model *m = nerve_model_from_cfg(text, "fuzz.cfg");
    if (m) {
        nerve_model_free(m);
        return 1;
    }
    return strncmp(nerve_last_error(), "fuzz.cfg:", 9) == 0;
}

TEST(cfg_garbage_and_truncated_files_never_crash)
{
    const char *good = "[net]\ninputs=3\nbatch=4\noptimizer=adam\npolicy=steps\nsteps=2,4\n"
                       "scales=.5,.5\nnormalize=1\n[connected]\noutput=4\nactivation=relu\n"
                       "batch_normalize=1\ndropout=0.1\n[prelu]\nper_channel=1\n[connected]\n"
                       "output=3\n[softmax]\nclass_weights=1,2,3\nl2=0.001\n";
    size_t len = strlen(good);
    char *buf = malloc(len + 1);
    CHECK(buf != NULL);
    for (size_t cut = 0; cut <= len; cut++) { /* every truncation */
        memcpy(buf, good, cut);
        buf[cut] = '\0';
        CHECK_MSG(survives(buf), "truncated at %zu: '%s'", cut, nerve_last_error());
    }
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    static const char alphabet[] = "[]=#;,.\n\r\t -0123456789abcnetx\x01\xff";
    for (int trial = 0; trial < 400; trial++) { /* random byte substitutions */
        memcpy(buf, good, len + 1);
        int flips = 1 + (int)nerve_rng_below(&r, 4);
        for (int f = 0; f < flips; f++)
            buf[nerve_rng_below(&r, (uint32_t)len)] =
                alphabet[nerve_rng_below(&r, sizeof alphabet - 1)];
        CHECK_MSG(survives(buf), "trial %d: '%s'", trial, nerve_last_error());
    }
    free(buf);
    char junk[300];
    for (int trial = 0; trial < 200; trial++) { /* pure garbage */
        int n = (int)nerve_rng_below(&r, sizeof junk);
        for (int i = 0; i < n; i++)
            junk[i] = (char)(1 + nerve_rng_below(&r, 255));
        junk[n] = '\0';
        CHECK(survives(junk));
    }
    CHECK(nerve_model_from_cfg("", "fuzz.cfg") == NULL);
    CHECK(strcmp(nerve_last_error(), "fuzz.cfg:1: no sections; a cfg starts with [net] followed "
                                     "by its layers") == 0);
}
