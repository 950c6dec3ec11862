/* Loading the data sets a [net] section names. */
#include "../core/core.h"

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
