/* Public face of the kernels' thread count. */
#include "nerve.h"
#include "kernels.h"

void nerve_set_threads(int n) { kern_set_threads(n); }
int nerve_threads(void) { return kern_threads(); }
