/* Runs an exported model (model.h) on the images of images.h under semihosting and prints
 * one line per image: "image I: class C (nerve: E)", then "agree K/N". */
#include "images.h"
#include "model.h"

#include <stdio.h>

int main(void)
{
    static float out[MODEL_OUT_SIZE];
    int agree = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        model_run(images[i], out);
        int best = 0;
        for (int c = 1; c < MODEL_OUT_SIZE; c++)
            best = out[c] > out[best] ? c : best;
        printf("image %d: class %d, p %d/1000 (nerve: %d)\n", i, best, (int)(out[best] * 1000.0f + 0.5f),
               expected[i]);
        agree += best == expected[i];
    }
    printf("agree %d/%d\n", agree, N_IMAGES);
    return agree == N_IMAGES ? 0 : 1;
}
