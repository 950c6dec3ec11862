/* Transfer learning: a trained body moved under a new head, frozen, and fine-tuned. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Gaussian blobs in 4-D; classes 0..n_classes-1 (label = i % n_classes). */
static void write_blobs(const char *path, int n, int n_classes, uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        int c = i % n_classes;
        for (int k = 0; k < 4; k++)
            fprintf(fp, "%.5f,", (k == c ? 2.0 : 0.0) + 0.6 * nerve_rng_normal(&r));
        fprintf(fp, "%d\n", c);
    }
    fclose(fp);
}

static const char *CFG = "[net]\ninputs=4\nbatch=16\nepochs=%d\noptimizer=adam\nlearning_rate=0.02\n"
                         "seed=%d\ntrain_csv=%s\n\n[connected]\nname=body\noutput=16\nactivation=relu\n\n"
                         "[connected]\nname=head\noutput=%d\n\n[softmax]\n";

static nerve_model *model_for(const char *dir, const char *csv, int classes, int epochs, int seed,
                              nerve_dataset *train)
{
    char text[1024], name[600];
    snprintf(text, sizeof text, CFG, epochs, seed, csv, classes);
    snprintf(name, sizeof name, "%s/m%d.cfg", dir, classes);
    nerve_model *m = nerve_model_from_cfg(text, name);
    if (m && nerve_config_load_data(nerve_model_config(m), train, NULL) != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    return m;
}

static const float *param(nerve_model *m, const char *name, size_t *n)
{
    nerve_graph *g = nerve_model_graph(m);
    nerve_tensor t = nerve_value(g, nerve_node_find(g, name));
    *n = nerve_tensor_numel(&t);
    return t.data;
}

/* Copies parameter `name` into dst; returns its element count. */
static size_t copy_param(nerve_model *m, const char *name, float *dst)
{
    size_t n;
    const float *p = param(m, name, &n);
    memcpy(dst, p, n * sizeof(float));
    return n;
}

/* True if parameter `name` equals the n floats at want, bit for bit. */
static int same_param(nerve_model *m, const char *name, const float *want)
{
    size_t n;
    const float *p = param(m, name, &n);
    return memcmp(p, want, n * sizeof(float)) == 0;
}

TEST(a_transferred_frozen_body_stays_bit_identical_while_a_new_head_learns)
{
    const char *dir = test_tmpdir();
    char path[600], ckpt[600];
    snprintf(path, sizeof path, "%s/three.csv", dir);
    write_blobs(path, 300, 3, 1);
    snprintf(path, sizeof path, "%s/two.csv", dir);
    write_blobs(path, 200, 2, 2);
    nerve_dataset three = {0}, two = {0};
    nerve_model *a = model_for(dir, "three.csv", 3, 6, 1, &three);
    CHECK(a != NULL);
    CHECK_OK(nerve_fit(a, &three, NULL, NULL, NULL));
    snprintf(ckpt, sizeof ckpt, "%s/a.safetensors", dir);
    CHECK_OK(nerve_model_save(a, ckpt));

    nerve_model *b = model_for(dir, "two.csv", 2, 8, 9, &two);
    CHECK(b != NULL);
    float before[64], head_before[32], bias_before[16], a_body[64];
    CHECK(copy_param(b, "body.weight", before) == 64);
    /* the plain loader and the strict form of this one refuse the other head's shape ... */
    CHECK(nerve_model_load_weights(b, ckpt, 0) == NERVE_ERR_SHAPE);
    CHECK(nerve_model_load_matching(b, ckpt, 0, NULL, NULL) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "head.weight") != NULL);
    CHECK(same_param(b, "body.weight", before)); /* nothing copied */
    /* ... skipping mismatches takes the body and leaves the head */
    int loaded = -1, skipped = -1;
    CHECK_OK(nerve_model_load_matching(b, ckpt, 1, &loaded, &skipped));
    CHECK(loaded == 2 && skipped == 2);
    copy_param(a, "body.weight", a_body);
    CHECK(same_param(b, "body.weight", a_body));
    CHECK(nerve_model_freeze(b, 4) == NERVE_ERR_ARG); /* 3 layers: body, head, softmax */
    CHECK(nerve_model_freeze(b, 1) == 2);

    CHECK(copy_param(b, "head.weight", head_before) == 32);
    CHECK(copy_param(b, "body.bias", bias_before) == 16);
    CHECK_OK(nerve_fit(b, &two, NULL, NULL, NULL));
    CHECK(same_param(b, "body.weight", a_body));
    CHECK(same_param(b, "body.bias", bias_before));
    CHECK(!same_param(b, "head.weight", head_before));
    double acc;
    CHECK_OK(nerve_evaluate(b, &two, NULL, &acc, NULL, 0));
    CHECK_MSG(acc > 0.85, "fine-tuned accuracy %.3f (chance 0.5)", acc);
    nerve_model_free(a);
    nerve_model_free(b);
    nerve_dataset_free(&three);
    nerve_dataset_free(&two);
}
