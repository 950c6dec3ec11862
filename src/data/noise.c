/* The input corruption of a denoising model ([net] corrupt=; docs/cfg.md). The model reads
 * the corrupted input and is trained to give back the clean one, so the corruption is
 * applied to the input only, after the clean batch has been copied into the target.
 *
 * Each sample's draws come from a generator seeded by (seed, epoch, sample index): a
 * resumed run replays the corruption of the uninterrupted one whatever the batch order, and
 * evaluation (epoch 0) corrupts a sample the same way every time and at any batch size,
 * which makes a test MSE a reproducible figure and lets a picture show the very input the
 * model was scored on. */
#include "../core/core.h"

#include <math.h>

const char *nerve_noise_name(nerve_noise_kind kind)
{
    switch (kind) {
    case NERVE_NOISE_NONE: return "none";
    case NERVE_NOISE_GAUSSIAN: return "gaussian";
    case NERVE_NOISE_SALT_PEPPER: return "salt_pepper";
    case NERVE_NOISE_MASK: return "mask";
    }
    return NULL;
}

void nerve_noise_apply(const nerve_noise *nz, float *x, size_t n, nerve_rng *r)
{
    switch (nz->kind) {
    case NERVE_NOISE_GAUSSIAN:
        for (size_t i = 0; i < n; i++) {
            float v = x[i] + nz->sigma * nerve_rng_normal(r);
            if (nz->clip)
                v = fminf(fmaxf(v, nz->lo), nz->hi);
            x[i] = v;
        }
        break;
    case NERVE_NOISE_SALT_PEPPER:
        for (size_t i = 0; i < n; i++) {
            float u = nerve_rng_uniform(r);
            if (u < nz->prob)
                x[i] = u < 0.5f * nz->prob ? nz->lo : nz->hi;
        }
        break;
    case NERVE_NOISE_MASK:
        for (size_t i = 0; i < n; i++)
            if (nerve_rng_uniform(r) < nz->prob)
                x[i] = 0.0f;
        break;
    case NERVE_NOISE_NONE: break;
    }
}

void nerve_noise_batch(const nerve_noise *nz, float *x, size_t numel, int n, uint64_t seed,
                       int epoch, const int *idx)
{
    if (nz->kind == NERVE_NOISE_NONE)
        return;
    for (int k = 0; k < n; k++) {
        nerve_rng r;
        /* a stream of its own: augmentation seeds from (seed, epoch, batch) with the same
         * function, and the two must not draw the same numbers */
        nerve_augment_seed(&r, seed ^ 0x6E6F697365ull /* "noise" */, epoch, idx[k]);
        nerve_noise_apply(nz, x + (size_t)k * numel, numel, &r);
    }
}
