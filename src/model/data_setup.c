/* Loading the data sets a [net] section names, under one rule for pixel scale and layout
 * (docs/data.md): 8-bit pixels (IDX bytes, PNG/JPEG, CIFAR) are multiplied by input_scale
 * (default 1/255, so they lie in [0, 1]), CSV values by input_scale only when it is given,
 * and every image is CHW. The two ways the same pixels could silently differ are refused:
 * a CSV of 0..255 integers feeding an image input without input_scale, and an IDX file whose
 * dimensions are not the model's [C, H, W] (layout=hwc transposes [N, H, W, C]). */
#include "../core/core.h"
#include "../data/text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct source {
    const char *images, *labels, *csv, *folder, *list, *cifar;
} source;

/* A CSV feeding an image input whose values are all integers in 0..255, some above 1, read
 * without an explicit input_scale: the same pixels as IDX would give other values. */
static int check_csv_pixels(const nerve_net_config *c, const nerve_dataset *d, const char *path)
{
    if (c->ndim != 3 || c->data.input_scale_set)
        return NERVE_OK;
    size_t total = (size_t)d->n * d->sample_numel;
    float max = 0;
    for (size_t i = 0; i < total; i++) {
        float v = d->x[i];
        if (!(v >= 0 && v <= 255 && v == floorf(v)))
            return NERVE_OK;
        max = v > max ? v : max;
    }
    if (max <= 1)
        return NERVE_OK;
    return nerve_set_error(NERVE_ERR_FORMAT,
                           "%s: every value is an integer in 0..255 (8-bit pixels?) and it feeds "
                           "the image input [%d, %d, %d]; IDX and image files scale such pixels "
                           "by 1/255 and CSV values are taken as they are, so say which you mean: "
                           "input_scale=0.00392157 (1/255, as IDX) or input_scale=1 (as they are)",
                           path, c->dims[0], c->dims[1], c->dims[2]);
}

static int load_csv(const nerve_net_config *c, nerve_dataset *d, const char *path, char **names,
                    int n_names)
{
    const nerve_data_config *dc = &c->data;
    nerve_csv_options o = nerve_csv_default();
    o.sep = dc->csv_sep ? dc->csv_sep : ',';
    o.header = dc->csv_header;
    o.skip = dc->csv_skip;
    o.label = dc->csv_label_set ? dc->csv_label : NULL;
    o.targets = dc->csv_targets[0] ? dc->csv_targets : NULL;
    o.class_names = (const char *const *)names;
    o.n_class_names = n_names;
    o.scale = dc->input_scale_set ? c->input_scale : 1.0f;
    int st = nerve_dataset_load_csv_ex(d, path, &o);
    if (st == NERVE_OK && (st = check_csv_pixels(c, d, path)) < 0)
        nerve_dataset_free(d);
    return st;
}

static int need_image_input(const nerve_net_config *c, const char *key)
{
    if (c->ndim == 3)
        return NERVE_OK;
    return nerve_set_error(NERVE_ERR_ARG, "%s needs an image input: set height=, width= and "
                           "channels= (1 or 3) in [net]", key);
}

static int load_folder(const nerve_net_config *c, nerve_dataset *d, const char *root,
                       const char *key)
{
    int st = need_image_input(c, key);
    if (st)
        return st;
    if (c->dims[0] != 1 && c->dims[0] != 3)
        return nerve_set_error(NERVE_ERR_ARG, "%s: image files give 1 or 3 channels, not "
                               "channels=%d", key, c->dims[0]);
    nerve_image_options o = {c->dims[0], c->dims[1], c->dims[2], c->data.resize,
                             c->input_scale * 255.0f};
    return nerve_dataset_load_image_folder(d, root, &o);
}

static int load_idx(const nerve_net_config *c, nerve_dataset *d, const char *images,
                    const char *labels)
{
    int st = nerve_dataset_load_idx(d, images, labels, c->input_scale > 0 ? c->input_scale : 1.0f);
    if (st == NERVE_OK && c->ndim == 3 &&
        (st = nerve_dataset_fit_layout(d, images, c->dims[0], c->dims[1], c->dims[2],
                                       c->data.layout)) < 0)
        nerve_dataset_free(d);
    return st;
}

/* darknet lists: images with YOLO boxes, or with class masks (list_target=masks); the class
 * names come from names= */
static int load_list(const nerve_net_config *c, nerve_dataset *d, const char *list, char **names,
                     int n_names, const char *key)
{
    int st = need_image_input(c, key);
    if (st)
        return st;
    if (!names)
        return nerve_set_error(NERVE_ERR_ARG, "%s needs names= (a .names file: the class of "
                               "each %s is a line number of it)", key,
                               c->data.list_masks ? "mask value" : "box");
    if (c->dims[0] != 1 && c->dims[0] != 3)
        return nerve_set_error(NERVE_ERR_ARG, "%s: image files give 1 or 3 channels, not "
                               "channels=%d", key, c->dims[0]);
    nerve_image_options o = {c->dims[0], c->dims[1], c->dims[2], c->data.resize,
                             c->input_scale * 255.0f};
    if (c->data.list_masks)
        return nerve_dataset_load_list_masks(d, list, (const char *const *)names, n_names, &o);
    return nerve_dataset_load_list(d, list, (const char *const *)names, n_names, &o);
}

/* CIFAR binary files: a comma-separated list, concatenated; the model must take [3, 32, 32]. */
static int load_cifar(const nerve_net_config *c, nerve_dataset *d, const char *list, const char *key)
{
    if (c->ndim != 3 || c->dims[0] != 3 || c->dims[1] != 32 || c->dims[2] != 32)
        return nerve_set_error(NERVE_ERR_ARG, "%s: CIFAR images are [3, 32, 32]; set channels=3, "
                               "height=32, width=32", key);
    char copy[1024];
    const char *paths[64];
    int n = 0;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *p = copy, *comma; p && n < 64; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        paths[n++] = p;
    }
    return nerve_dataset_load_cifar(d, paths, n, 0, c->data.cifar_coarse, c->input_scale);
}

static int load_one(const nerve_net_config *c, nerve_dataset *d, const source *s, const char *what)
{
    memset(d, 0, sizeof *d);
    int given = !!s->csv[0] + !!s->images[0] + !!s->folder[0] + !!s->list[0] + !!s->cifar[0];
    if (given == 0)
        return nerve_set_error(NERVE_ERR_ARG,
                               "the cfg's [net] section names no %s data (set %s_images and "
                               "%s_labels, %s_csv, %s_folder, %s_list or %s_cifar)",
                               what, what, what, what, what, what, what);
    if (given > 1)
        return nerve_set_error(NERVE_ERR_ARG, "the cfg's [net] section names %d sources of %s "
                               "data; give one", given, what);
    char **names = NULL;
    int n_names = 0, st = NERVE_OK;
    if (c->data.names[0] && (st = nerve_names_load(c->data.names, &names, &n_names)) < 0)
        return st;
    char key[32];
    if (s->csv[0])
        st = load_csv(c, d, s->csv, names, n_names);
    else if (s->folder[0]) {
        snprintf(key, sizeof key, "%s_folder", what);
        st = load_folder(c, d, s->folder, key);
    } else if (s->images[0])
        st = load_idx(c, d, s->images, s->labels[0] ? s->labels : NULL);
    else if (s->cifar[0]) {
        snprintf(key, sizeof key, "%s_cifar", what);
        st = load_cifar(c, d, s->cifar, key);
    } else {
        snprintf(key, sizeof key, "%s_list", what);
        st = load_list(c, d, s->list, names, n_names, key);
    }
    /* a names file gives the classes their names (CSV used them while parsing) */
    if (st == NERVE_OK && names && !s->csv[0] && !s->list[0]) {
        char what_names[600];
        snprintf(what_names, sizeof what_names, "names=%s", c->data.names);
        if ((st = nerve_dataset_use_names(d, (const char *const *)names, n_names, what_names)) < 0)
            nerve_dataset_free(d);
    }
    nerve_names_free(names, n_names);
    /* every set loaded here passes this one check: NaN or infinity is an error naming the
     * file and the sample, not a model trained on garbage */
    const char *file = s->csv[0] ? s->csv : s->images[0] ? s->images : s->folder[0] ? s->folder
                     : s->list[0] ? s->list : s->cifar;
    if (st == NERVE_OK && (st = nerve_dataset_check_finite(d, file)) < 0)
        nerve_dataset_free(d);
    return st;
}

int nerve_config_load_data(const nerve_net_config *c, nerve_dataset *train, nerve_dataset *test)
{
    if (!c)
        return nerve_set_error(NERVE_ERR_ARG, "null config");
    const nerve_data_config *dc = &c->data;
    source tr = {c->train_images, c->train_labels, c->train_csv, dc->train_folder, dc->train_list,
                 dc->train_cifar};
    source te = {c->test_images, c->test_labels, c->test_csv, dc->test_folder, dc->test_list,
                 dc->test_cifar};
    int st = NERVE_OK;
    if (train)
        st = load_one(c, train, &tr, "train");
    if (st == NERVE_OK && test) {
        st = load_one(c, test, &te, "test");
        if (st && train)
            nerve_dataset_free(train);
    }
    return st;
}

/* ---- text ------------------------------------------------------------------------------- */

int nerve_model_text_data(nerve_model *m, nerve_dataset *train, nerve_dataset *held_out)
{
    if (train)
        memset(train, 0, sizeof *train);
    if (held_out)
        memset(held_out, 0, sizeof *held_out);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_vocab v;
    if (!c || !c->train_text[0] || nerve_model_vocab(m, &v) < 1)
        return nerve_set_error(NERVE_ERR_ARG, "the model reads no text (no train_text= in [net])");
    unsigned char *text;
    size_t len;
    int st = text_read_file(c->train_text, &text, &len);
    if (st != NERVE_OK)
        return st;
    float *ids = nerve_xmalloc(len * sizeof(float));
    st = ids ? nerve_vocab_encode(&v, text, len, ids) : NERVE_ERR_NOMEM;
    size_t n_val = (size_t)((double)len * (double)c->validation);
    if (st == NERVE_OK && train)
        st = nerve_dataset_text_streams(train, ids, len - n_val, c->batch, c->seq, v.n, 0);
    if (st == NERVE_OK && held_out && n_val >= 2)
        st = nerve_dataset_text_streams(held_out, ids + (len - n_val), n_val, 1, c->seq, v.n, 1);
    nerve_xfree(ids);
    nerve_xfree(text);
    if (st != NERVE_OK) {
        if (train)
            nerve_dataset_free(train);
        if (held_out)
            nerve_dataset_free(held_out);
        char msg[800];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        if (strncmp(msg, c->train_text, strlen(c->train_text)) != 0)
            nerve_set_error(st, "%s: %s", c->train_text, msg);
    }
    return st;
}
