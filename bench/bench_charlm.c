/* Character-level LSTM language model on the GPL-3 text: held-out bits per character and
 * training throughput, with the same architecture, hyper-parameters, data order and number
 * of steps as bench/torch_charlm.py (one-hot bytes -> LSTM 128 -> dense, Adam 2e-3, clip 5,
 * 32 streams of 64 characters per step, last 10% held out).
 * usage: bench_charlm [threads] [steps] [text]
 * prints "bpc <held-out bits/char>" and "chars_per_sec <training characters per second>" */
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int steps = argc > 2 ? atoi(argv[2]) : 300;
    const char *path = argc > 3 ? argv[3] : "/usr/share/common-licenses/GPL-3";
    nerve_set_threads(threads);
    nerve_textgen_config c = nerve_textgen_default();
    c.hidden = 128;
    c.seq = 64;
    c.batch = 32;
    c.steps = steps;
    c.lr = 2e-3f;
    c.clip = 5.0f;
    c.holdout = 0.1f;
    c.eval_every = 0; /* evaluate once, at the end */
    c.seed = 1;
    nerve_textgen_report r;
    nerve_textgen *t = nerve_textgen_train_file(path, &c, NULL, NULL, &r);
    if (!t) {
        fprintf(stderr, "bench_charlm: %s\n", nerve_last_error());
        return 1;
    }
    printf("bpc %.4f\n", r.val_bpc);
    printf("chars_per_sec %.1f\n", r.chars_per_sec);
    nerve_textgen_free(t);
    return 0;
}
