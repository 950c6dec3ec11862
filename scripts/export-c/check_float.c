/* The exported model (model.c, compiled in) against nerve on a checkpoint's test set:
 * every sample's output within 1e-5 of nerve_predict_outputs and the same class. Writes the
 * first N_IMAGES test images and nerve's classes as images.h for the Cortex-M run.
 *   check_float CKPT N_IMAGES IMAGES_H */
#include "model.h"
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int argmax(const float *p, int n)
{
    int best = 0;
    for (int c = 1; c < n; c++)
        best = p[c] > p[best] ? c : best;
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: check_float CKPT N_IMAGES IMAGES_H\n");
        return 2;
    }
    int n_images = atoi(argv[2]);
    nerve_model *m = nerve_model_load(argv[1]);
    nerve_dataset d = {0};
    if (!m || nerve_config_load_data(nerve_model_config(m), NULL, &d) != NERVE_OK || d.n < n_images) {
        fprintf(stderr, "check_float: %s\n", nerve_last_error());
        return 1;
    }
    if (d.sample_numel != MODEL_IN_SIZE) {
        fprintf(stderr, "check_float: test samples of %zu values, the model reads %d\n", d.sample_numel,
                MODEL_IN_SIZE);
        return 1;
    }
    size_t K = MODEL_OUT_SIZE;
    float *want = malloc((size_t)d.n * K * sizeof(float)), out[MODEL_OUT_SIZE];
    if (!want || nerve_predict_outputs(m, &d, want, NULL) != NERVE_OK) {
        fprintf(stderr, "check_float: %s\n", nerve_last_error());
        return 1;
    }
    int same = 0, correct_nerve = 0, correct_c = 0;
    double maxdiff = 0;
    for (int i = 0; i < d.n; i++) {
        model_run(d.x + (size_t)i * d.sample_numel, out);
        const float *w = want + (size_t)i * K;
        for (size_t c = 0; c < K; c++)
            maxdiff = fmax(maxdiff, fabs((double)out[c] - w[c]));
        int a = argmax(out, (int)K), b = argmax(w, (int)K);
        same += a == b;
        correct_c += d.y && a == (int)d.y[i];
        correct_nerve += d.y && b == (int)d.y[i];
    }
    printf("test samples: %d\nsame class as nerve: %d/%d\nmax |output - nerve's|: %.3g\n", d.n, same, d.n,
           maxdiff);
    printf("accuracy: exported %.4f, nerve %.4f\n", (double)correct_c / d.n, (double)correct_nerve / d.n);
    FILE *f = fopen(argv[3], "w");
    if (!f)
        return 1;
    fprintf(f, "/* the first %d test images and nerve's classes (written by check_float) */\n"
               "#define N_IMAGES %d\nstatic const float images[N_IMAGES][%d] = {\n", n_images, n_images,
            MODEL_IN_SIZE);
    for (int i = 0; i < n_images; i++) {
        fprintf(f, "{");
        for (int k = 0; k < MODEL_IN_SIZE; k++)
            fprintf(f, "(float)%.9g,%s", d.x[(size_t)i * d.sample_numel + k], k % 8 == 7 ? "\n" : " ");
        fprintf(f, "},\n");
    }
    fprintf(f, "};\nstatic const int expected[N_IMAGES] = {");
    for (int i = 0; i < n_images; i++)
        fprintf(f, "%d%s", argmax(want + (size_t)i * K, (int)K), i + 1 < n_images ? ", " : "};\n");
    fclose(f);
    int ok = same == d.n && maxdiff <= 1e-5;
    free(want);
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return ok ? 0 : 1;
}
