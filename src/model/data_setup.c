/* Loading the data sets a [net] section names. */
#include "../core/core.h"
#include "../data/text.h"

#include <stdio.h>
#include <string.h>

static int load_one(const nerve_net_config *c, nerve_dataset *d, const char *images, const char *labels,
                    const char *csv, const char *what)
{
    memset(d, 0, sizeof *d);
    int st = 1;
    if (csv[0])
        st = nerve_dataset_load_csv(d, csv, -1);
    else if (images[0])
        st = nerve_dataset_load_idx(d, images, labels[0] ? labels : NULL,
                                    c->input_scale > 0 ? c->input_scale : 1.0f);
    if (st <= 0) {
        /* every set loaded here passes this one check: NaN or infinity is an error naming
         * the file and the sample, not a model trained on garbage */
        if (st == NERVE_OK && (st = nerve_dataset_check_finite(d, csv[0] ? csv : images)) < 0)
            nerve_dataset_free(d);
        return st;
    }
    return nerve_set_error(NERVE_ERR_ARG,
                           "the cfg's [net] section names no %s data (set %s_images and %s_labels, or "
                           "%s_csv)",
                           what, what, what, what);
}

int nerve_config_load_data(const nerve_net_config *c, nerve_dataset *train, nerve_dataset *test)
{
    if (!c)
        return nerve_set_error(NERVE_ERR_ARG, "null config");
    int st = NERVE_OK;
    if (train)
        st = load_one(c, train, c->train_images, c->train_labels, c->train_csv, "train");
    if (st == NERVE_OK && test) {
        st = load_one(c, test, c->test_images, c->test_labels, c->test_csv, "test");
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
