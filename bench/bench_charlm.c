/* Character-level LSTM language model on the GPL-3 text: held-out bits per character and
 * training throughput of models/charlm.cfg trained through the ordinary path (nerve_fit),
 * with the same architecture, hyper-parameters, data order and number of steps as
 * bench/torch_charlm.py (one-hot bytes -> LSTM 128 -> dense, Adam 2e-3, clip 5, 32 streams
 * of 64 characters per step, last 10% held out).
 * usage: bench_charlm [threads] [steps] [text]   (run from the repository root)
 * prints "bpc <held-out bits/char>" and "chars_per_sec <training characters per second>" */
#include "nerve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct timing {
    double seconds, samples; /* training only: an epoch's time excludes its validation */
} timing;

static void on_epoch(const nerve_epoch_stats *s, void *user)
{
    timing *t = user;
    t->seconds += s->seconds;
    t->samples += s->samples_per_sec * s->seconds;
}

/* models/charlm.cfg with its train_text= line replaced by `path`. */
static char *cfg_text(const char *path)
{
    FILE *f = fopen("models/charlm.cfg", "rb");
    if (!f)
        return NULL;
    static char in[16384];
    size_t n = fread(in, 1, sizeof in - 1, f);
    fclose(f);
    in[n] = '\0';
    char *out = malloc(n + strlen(path) + 32);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (char *line = strtok(in, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "train_text=", 11))
            strcat(strcat(strcat(out, "train_text="), path), "\n");
        else
            strcat(strcat(out, line), "\n");
    }
    return out;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int steps = argc > 2 ? atoi(argv[2]) : 300;
    const char *path = argc > 3 ? argv[3] : "/usr/share/common-licenses/GPL-3";
    nerve_set_threads(threads);
    char *text = cfg_text(path);
    nerve_model *m = text ? nerve_model_from_cfg(text, "models/charlm.cfg") : NULL;
    free(text);
    nerve_dataset train, held;
    if (!m || nerve_model_text_data(m, &train, &held) != NERVE_OK) {
        fprintf(stderr, "bench_charlm: %s\n", m ? nerve_last_error() : "cannot read models/charlm.cfg");
        return 1;
    }
    nerve_model_config_mut(m)->max_batches = steps;
    timing t = {0, 0};
    nerve_fit_options o = {0};
    o.on_epoch = on_epoch;
    o.user = &t;
    double loss = NAN, acc;
    /* no validation during training (as torch_charlm.py): the held-out text once, at the end */
    if (nerve_fit(m, &train, NULL, &o, NULL) != NERVE_OK ||
        nerve_evaluate(m, &held, &loss, &acc, NULL, 0) != NERVE_OK) {
        fprintf(stderr, "bench_charlm: %s\n", nerve_last_error());
        return 1;
    }
    printf("bpc %.4f\n", loss / log(2.0));
    printf("chars_per_sec %.1f\n", t.seconds > 0 ? t.samples * nerve_model_config(m)->seq / t.seconds : 0);
    nerve_dataset_free(&train);
    nerve_dataset_free(&held);
    nerve_model_free(m);
    return 0;
}
