/* The operator table: every family's operators, found by name. */
#include "ops.h"

#include <string.h>

static const op_def *const *const families[] = {
    ops_linear, ops_elementwise, ops_reduce, ops_shape, ops_activation, ops_loss, ops_norm,
    ops_recurrent, ops_conv, ops_pool, ops_resample, ops_lrn,
};

const op_def *op_find(const char *name)
{
    for (size_t f = 0; f < NERVE_ARRAY_LEN(families); f++)
        for (const op_def *const *op = families[f]; *op; op++)
            if (strcmp((*op)->name, name) == 0)
                return *op;
    return NULL;
}
