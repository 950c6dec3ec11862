/* Every cfg in models/ trains as shipped: it builds, the data it names loads and fits its
 * input, and one training step on that data (batch 2, max_batches=1: the only change to the
 * shipped text) gives a finite loss. Two cfgs need their data prepared, as their comments
 * say: diabetes.cfg (scripts/diabetes_csv.sh, run here into the test's directory) and
 * lenet5_folder.cfg (nerve data export; 20 images exported here). Models whose step costs
 * more than a few seconds (forward FLOPs per sample above the limit below,
 * lower under the sanitizers) are stepped, and the largest built, only with
 * NERVE_SLOW_TESTS=1, like the architecture checks of test_model_conv.c; the test prints
 * which. */
#define _DEFAULT_SOURCE
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double test_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifdef __SANITIZE_ADDRESS__
#define FLOPS_LIMIT 0.1e9
#else
#define FLOPS_LIMIT 1.0e9
#endif
#define PARAMS_LIMIT 5000000

/* The cfgs of more than 5 M parameters: building one allocates, zeroes and initialises
 * every parameter (seconds to tens of seconds here), so without NERVE_SLOW_TESTS=1 they are
 * not even built (test_model_conv.c's policy for its GIANT and MEDIUM architectures). A cfg
 * not listed is built; the check below fails if it has more parameters, so the list stays
 * complete. */
static const char *const big_cfgs[] = {"alexnet.cfg", "vgg11.cfg", "vgg16.cfg", "googlenet.cfg",
                                       "resnet18.cfg", "resnet34.cfg"};

static int is_big(const char *name)
{
    for (size_t i = 0; i < sizeof big_cfgs / sizeof big_cfgs[0]; i++)
        if (!strcmp(big_cfgs[i], name))
            return 1;
    return 0;
}

/* text with its [net] batch= set to 2 and max_batches= to 1 (added when absent; caller frees) */
static char *one_step_text(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 64);
    if (!out)
        return NULL;
    const char *net = strstr(text, "[net]\n");
    if (!net) {
        free(out);
        return NULL;
    }
    size_t head = (size_t)(net - text) + 6, o = 0;
    memcpy(out, text, head);
    o = head;
    if (!strstr(text, "\nmax_batches="))
        o += (size_t)sprintf(out + o, "max_batches=1\n");
    for (const char *line = text + head; *line;) {
        size_t len = strcspn(line, "\n");
        if (!strncmp(line, "batch=", 6))
            o += (size_t)sprintf(out + o, "batch=2");
        else if (!strncmp(line, "max_batches=", 12))
            o += (size_t)sprintf(out + o, "max_batches=1");
        else {
            memcpy(out + o, line, len);
            o += len;
        }
        if (line[len] == '\n')
            out[o++] = '\n';
        line += len + (line[len] == '\n');
    }
    out[o] = '\0';
    return out;
}

/* Replaces the value of every line "key=..." of text by value (caller frees). */
static char *set_key(char *text, const char *key, const char *value)
{
    size_t kl = strlen(key);
    char *out = malloc(strlen(text) + 8 * (strlen(value) + 1) + 1);
    size_t o = 0;
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        if (!strncmp(line, key, kl) && line[kl] == '=')
            o += (size_t)sprintf(out + o, "%s=%s", key, value);
        else {
            memcpy(out + o, line, len);
            o += len;
        }
        if (line[len] == '\n')
            out[o++] = '\n';
        line += len + (line[len] == '\n');
    }
    out[o] = '\0';
    free(text);
    return out;
}

typedef struct step_result {
    double loss;
    int epochs;
} step_result;

static void on_epoch(const nerve_epoch_stats *s, void *user)
{
    step_result *r = user;
    r->loss = s->train_loss;
    r->epochs++;
}

/* Prepares the data of the cfgs that need it; returns the adjusted text. */
static char *prepare(const char *name, char *text)
{
    char path[1200], cmd[2600], out[2048];
    if (!strcmp(name, "diabetes.cfg")) {
        snprintf(cmd, sizeof cmd, "\"$OLDPWD\"/scripts/diabetes_csv.sh diabetes > /dev/null");
        if (test_run(cmd, out, sizeof out) != 0)
            return text;
        snprintf(path, sizeof path, "%s/diabetes/train.csv", test_tmpdir());
        text = set_key(text, "train_csv", path);
        snprintf(path, sizeof path, "%s/diabetes/test.csv", test_tmpdir());
        text = set_key(text, "test_csv", path);
    } else if (!strcmp(name, "lenet5_folder.cfg")) {
        nerve_dataset d;
        if (nerve_dataset_load_idx(&d, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                                   "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
                                   1.0f / 255) != NERVE_OK)
            return text;
        int n = d.n;
        d.n = 20;
        char **names = NULL;
        int n_names = 0;
        snprintf(path, sizeof path, "%s/fmnist", test_tmpdir());
        if (nerve_names_load("models/fashion-mnist.names", &names, &n_names) == NERVE_OK)
            nerve_dataset_export_images(&d, path, "png", 95, (const char *const *)names, n_names);
        nerve_names_free(names, n_names);
        d.n = n;
        nerve_dataset_free(&d);
        text = set_key(text, "train_folder", path);
        text = set_key(text, "test_folder", path);
    }
    return text;
}

/* The data set of one cfg, loaded once per file and kept (most cfgs read Fashion-MNIST). */
static struct {
    char key[1100];
    nerve_dataset d;
} cache[8];
static int n_cache;

static const nerve_dataset *train_data(nerve_model *m)
{
    const nerve_net_config *c = nerve_model_config(m);
    char key[1100];
    snprintf(key, sizeof key, "%.200s|%.200s|%.200s|%.200s|%g|%d,%d,%d", c->train_images, c->train_csv,
             c->data.train_folder, c->train_text, (double)c->input_scale, c->dims[0], c->dims[1], c->dims[2]);
    for (int i = 0; i < n_cache; i++)
        if (!strcmp(cache[i].key, key) && !c->train_text[0] && !c->data.train_folder[0] && !c->train_csv[0])
            return &cache[i].d;
    if (n_cache == 8)
        return NULL;
    nerve_dataset *d = &cache[n_cache].d;
    int st = c->train_text[0] ? nerve_model_text_data(m, d, NULL) : nerve_config_load_data(c, d, NULL);
    if (st != NERVE_OK)
        return NULL;
    snprintf(cache[n_cache].key, sizeof cache[n_cache].key, "%s", key);
    return &cache[n_cache++].d;
}

TEST(every_shipped_model_builds_and_trains_one_step_on_its_data)
{
    DIR *dir = opendir("models");
    CHECK(dir != NULL);
    char names[64][128];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".cfg"))
            snprintf(names[n++], sizeof names[0], "%.100s", e->d_name);
    }
    closedir(dir);
    CHECK_MSG(n >= 15, "models/ holds %d cfgs", n);
    const char *slow = getenv("NERVE_SLOW_TESTS");
    int all = slow && !strcmp(slow, "1"), stepped = 0;
    char skipped[2048] = "";
    for (int i = 0; i < n; i++) {
        char path[256];
        snprintf(path, sizeof path, "models/%.120s", names[i]);
        char *shipped = test_read_file(path, NULL);
        CHECK(shipped != NULL);
        if (!all && is_big(names[i])) {
            size_t used = strlen(skipped);
            snprintf(skipped + used, sizeof skipped - used, " %.60s (not built)", names[i]);
            free(shipped);
            continue;
        }
        char *text = one_step_text(shipped);
        free(shipped);
        CHECK_MSG(text != NULL, "%s has no [net] section", path);
        text = prepare(names[i], text);
        double t0 = test_seconds();
        nerve_model *m = nerve_model_from_cfg(text, path);
        free(text);
        CHECK_MSG(m != NULL, "%s does not build: %s", path, nerve_last_error());
        double flops = 0;
        for (int l = 0; l < nerve_model_layer_count(m); l++) {
            nerve_layer_info li;
            nerve_model_layer_info(m, l, &li);
            flops += li.flops;
        }
        size_t params = nerve_graph_param_count(nerve_model_graph(m));
        const nerve_net_config *c = nerve_model_config(m);
        int has_data = c->train_images[0] || c->train_csv[0] || c->data.train_folder[0] || c->train_text[0] ||
                       c->data.train_list[0] || c->data.train_cifar[0];
        if (!has_data) {
            nerve_model_free(m);
            CHECK_MSG(0, "%s names no training data", path);
        }
        if (!is_big(names[i]) && params > PARAMS_LIMIT) {
            nerve_model_free(m);
            CHECK_MSG(0, "%s has %zu parameters: add it to big_cfgs[] of tests/test_models.c", path, params);
        }
        if (!all && flops > FLOPS_LIMIT) {
            size_t used = strlen(skipped);
            snprintf(skipped + used, sizeof skipped - used, " %.60s", names[i]);
            nerve_model_free(m);
            continue;
        }
        const nerve_dataset *full = train_data(m);
        if (!full) {
            nerve_model_free(m);
            CHECK_MSG(0, "%s: its training data does not load: %s", path, nerve_last_error());
        }
        nerve_dataset part = *full; /* the first samples, not a copy: never freed */
        if (!part.streams && part.n > 8)
            part.n = 8;
        step_result r = {NAN, 0};
        nerve_fit_options fo = {0};
        fo.on_epoch = on_epoch;
        fo.user = &r;
        nerve_fit_result res;
        int st = nerve_fit(m, &part, NULL, &fo, &res);
        nerve_model_free(m);
        CHECK_MSG(st == NERVE_OK, "%s: the training step failed: %s", path, nerve_last_error());
        CHECK_MSG(r.epochs == 1 && isfinite(r.loss), "%s: %d epochs, loss %g", path, r.epochs, r.loss);
        stepped++;
        printf("    %-20s %.2fs\n", names[i], test_seconds() - t0);
    }
    for (int i = 0; i < n_cache; i++)
        nerve_dataset_free(&cache[i].d);
    n_cache = 0;
    if (skipped[0])
        printf("    stepped %d cfgs; built only (NERVE_SLOW_TESTS=1 steps them too):%s\n", stepped, skipped);
    CHECK(stepped >= 8);
}
