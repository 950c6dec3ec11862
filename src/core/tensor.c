/* Dense float32 tensors. */
#include "core.h"

#include <stdio.h>
#include <string.h>

size_t nerve_shape_numel(int ndim, const int *dims)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    return n;
}

size_t nerve_tensor_numel(const nerve_tensor *t) { return nerve_shape_numel(t->ndim, t->dims); }

nerve_tensor nerve_tensor_create(int ndim, const int *dims)
{
    nerve_tensor t = {0};
    if (ndim < 0 || ndim > NERVE_MAX_DIMS) {
        nerve_set_error(NERVE_ERR_ARG, "tensor rank %d outside 0..%d", ndim, NERVE_MAX_DIMS);
        return t;
    }
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) {
            nerve_set_error(NERVE_ERR_ARG, "negative tensor dimension %d", dims[i]);
            return t;
        }
        if (dims[i] > 0 && numel > (size_t)NERVE_MAX_LAYER_VALUES / (size_t)dims[i]) {
            nerve_set_error(NERVE_ERR_ARG, "tensor of more than %lld values (the per-layer "
                            "limit, docs/cfg.md)", NERVE_MAX_LAYER_VALUES);
            return t;
        }
        numel *= (size_t)dims[i];
        t.dims[i] = dims[i];
    }
    t.ndim = ndim;
    t.data = nerve_xalloc_floats(nerve_shape_numel(ndim, dims));
    return t;
}

void nerve_tensor_free(nerve_tensor *t)
{
    if (!t)
        return;
    nerve_xfree_aligned(t->data);
    t->data = NULL;
}

char *nerve_shape_str(int ndim, const int *dims, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %d" : "%d", dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}
