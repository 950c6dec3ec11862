/* The model object (internal view shared by src/nn/model.c and src/io/checkpoint.c). */
#ifndef NERVE_NN_MODEL_H
#define NERVE_NN_MODEL_H

#include "nerve.h"

struct nerve_model {
    nerve_graph *g;
    nerve_net_config cfg;
    char *text;          /* the cfg text the model was built from (checkpoints keep it) */
    char base_dir[512];  /* directory relative data paths were resolved against */
    int input, labels, output, loss;
    int mean, std;       /* z-score states ("input.mean", "input.std") or -1 */
    nerve_layer_info *layers;
    int n_layers, cap_layers;
};

/* Builds a model from cfg text; relative data paths are resolved against base_dir
 * (NULL: the directory of `filename`). */
nerve_model *model_from_cfg(const char *text, const char *filename, const char *base_dir);

#endif
