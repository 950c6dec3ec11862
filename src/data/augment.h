/* Augmentation settings from a cfg [net] section (internal: used by src/model/model.c). */
#ifndef NERVE_DATA_AUGMENT_H
#define NERVE_DATA_AUGMENT_H

#include "nerve.h"

#include "../io/cfg.h"

/* The [net] keys read by augment_from_cfg (they must also be in the [net] key list). */
#define AUGMENT_CFG_KEYS                                                                   \
    "augment", "crop_pad", "flip", "translate", "rotate", "rescale", "noise", "cutout",    \
        "brightness", "contrast", "pca", "elastic", "hue", "saturation", "exposure", "angle", \
        "aspect", "min_crop", "max_crop"

/* Reads augment= and the parameter keys of the transforms it lists into *out (defaults
 * for the rest). The input shape must already be in c (augmentation needs an image). A
 * parameter key whose transform is not listed, an unknown name, a value out of range or a
 * non-image input is an error naming file and line. */
int augment_from_cfg(const cfg_doc *d, const cfg_section *s, const nerve_net_config *c,
                     nerve_augment *out);

#endif
