/* nerve's side of the darknet shape check: the layers of a cfg as nerve builds them, in the
 * format of `dn_ref shapes` (index type outputs c h w params). An output of one axis [n] is
 * n x 1 x 1, as darknet stores a vector; other ranks print their element count and zeros. */
#include "nerve.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: nerve_shapes CFG\n");
        return 2;
    }
    nerve_model *m = nerve_model_load_cfg(argv[1]);
    if (!m) {
        printf("error %s\n", nerve_last_error());
        return 1;
    }
    int n = nerve_model_layer_count(m);
    long total = 0;
    printf("layers %d\n", n);
    for (int i = 0; i < n; i++) {
        nerve_layer_info li;
        if (nerve_model_layer_info(m, i, &li) < 0)
            return 1;
        long numel = 1;
        for (int k = 0; k < li.ndim; k++)
            numel *= li.dims[k];
        int c = 0, h = 0, w = 0;
        if (li.ndim == 3)
            c = li.dims[0], h = li.dims[1], w = li.dims[2];
        else if (li.ndim == 1)
            c = li.dims[0], h = 1, w = 1;
        total += (long)li.params;
        printf("%d %s %ld %d %d %d %zu\n", i, li.type, numel, c, h, w, li.params);
    }
    printf("params %ld\n", total);
    nerve_model_free(m);
    return 0;
}
