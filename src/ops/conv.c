/* PLACEHOLDER: replaced by the real family. */
#include "ops.h"
const op_def *const ops_conv[] = {NULL};
