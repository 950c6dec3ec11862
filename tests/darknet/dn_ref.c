/* Reference side of the darknet checks (tests only; never linked into libnerve): drives
 * Debian's libdarknet.
 *
 *   dn_ref shapes CFG              one line per layer: index type outputs c h w params
 *   dn_ref forward CFG WEIGHTS IN OUT
 *                                  reads IN (raw float32, one sample), runs darknet's
 *                                  forward in test mode, writes the output layer's values
 *   dn_ref random CFG OUT.weights SEED
 *                                  fills every layer's biases, weights and batch-norm
 *                                  scales and running statistics with darknet's
 *                                  rand_uniform (srand(SEED); variances in [0.5, 1.5]) and
 *                                  writes them with darknet's save_weights
 *   dn_ref reference CFG WEIGHTS SEED [NAME]
 *                                  prints a C header: an input of U(0, 1) values
 *                                  (srand(SEED)) and darknet's forward output for it, as
 *                                  darknet_NAME_input / _output (NAME: small); a sequence
 *                                  cfg (time_steps=) keeps its batch, time-major
 *   dn_ref forward CFG WEIGHTS IN OUT LAYER
 *                                  as forward, writing layer LAYER's output
 *   dn_ref load CFG WEIGHTS        loads the weights; prints the header and the sum of every
 *                                  layer's parameters
 *   dn_ref random CFG OUT.weights SEED fan
 *                                  as random, but convolutional and connected weights in
 *                                  +-sqrt(3 / fan-in) (activations keep their scale in a deep
 *                                  network)
 *   dn_ref image PICTURE W H OUT   darknet's load_image_color of a PNG/JPEG file, resized to
 *                                  W x H (its bilinear resize), as raw float32 (C, H, W)
 *   dn_ref detect CFG WEIGHTS IN THRESH NMS
 *                                  darknet's detector path on IN (raw float32, one input):
 *                                  network_predict, get_network_boxes (relative boxes of the
 *                                  network's input) and do_nms_sort; prints one line per kept
 *                                  (box, class): class score x1 y1 x2 y2 in the input's pixels,
 *                                  clamped to it
 *
 * Built by `make darknet-check` (tests/darknet_check.sh) when darknet is installed. */
#include <darknet.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(LAYER_TYPE t)
{
    switch (t) {
    case CONVOLUTIONAL: return "convolutional";
    case DECONVOLUTIONAL: return "deconvolutional";
    case CONNECTED: return "connected";
    case MAXPOOL: return "maxpool";
    case SOFTMAX: return "softmax";
    case DETECTION: return "detection";
    case DROPOUT: return "dropout";
    case CROP: return "crop";
    case ROUTE: return "route";
    case COST: return "cost";
    case NORMALIZATION: return "normalization";
    case AVGPOOL: return "avgpool";
    case LOCAL: return "local";
    case SHORTCUT: return "shortcut";
    case ACTIVE: return "activation";
    case RNN: return "rnn";
    case GRU: return "gru";
    case LSTM: return "lstm";
    case CRNN: return "crnn";
    case BATCHNORM: return "batchnorm";
    case REGION: return "region";
    case YOLO: return "yolo";
    case REORG: return "reorg";
    case UPSAMPLE: return "upsample";
    default: return "other";
    }
}

/* Trainable values: weights, biases and batch-norm scales (not the running statistics). */
static long params_of(const layer *l)
{
    switch (l->type) {
    case CONVOLUTIONAL:
    case DECONVOLUTIONAL:
        return (long)l->nweights + l->n + (l->batch_normalize ? l->n : 0);
    case CONNECTED:
        return (long)l->inputs * l->outputs + l->outputs + (l->batch_normalize ? l->outputs : 0);
    case LOCAL: {
        long locations = (long)l->out_h * l->out_w;
        return locations * l->size * l->size * l->c * l->n + locations * l->n;
    }
    case BATCHNORM:
        return 2L * l->c;
    case RNN:
        return params_of(l->input_layer) + params_of(l->self_layer) + params_of(l->output_layer);
    case CRNN:
        return params_of(l->input_layer) + params_of(l->self_layer) + params_of(l->output_layer);
    case GRU:
        return params_of(l->uz) + params_of(l->wz) + params_of(l->ur) + params_of(l->wr) +
               params_of(l->uh) + params_of(l->wh);
    default:
        return 0;
    }
}

static int shapes(char *cfg)
{
    network *net = parse_network_cfg(cfg);
    if (!net)
        return 1;
    long total = 0;
    printf("layers %d\n", net->n);
    for (int i = 0; i < net->n; i++) {
        const layer *l = &net->layers[i];
        long p = params_of(l);
        total += p;
        printf("%d %s %d %d %d %d %ld\n", i, type_name(l->type), l->outputs, l->out_c, l->out_h,
               l->out_w, p);
    }
    printf("params %ld\n", total);
    free_network(net);
    return 0;
}

static float *read_floats(const char *path, long want)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *x = calloc((size_t)want, sizeof *x);
    long got = x ? (long)fread(x, sizeof *x, (size_t)want, f) : 0;
    fclose(f);
    if (got != want) {
        fprintf(stderr, "%s: %ld floats, expected %ld\n", path, got, want);
        free(x);
        return NULL;
    }
    return x;
}

static int forward(char *cfg, char *weights, const char *in, const char *out, int at)
{
    network *net = load_network(cfg, weights, 0);
    set_batch_network(net, 1);
    float *x = read_floats(in, net->inputs);
    if (!x)
        return 1;
    float *y = network_predict(net, x);
    int n = net->outputs;
    for (int i = net->n - 1; i >= 0 && at < 0; i--)
        if (net->layers[i].type != COST) {
            n = net->layers[i].outputs;
            break;
        }
    if (at >= 0 && at < net->n) {
        y = net->layers[at].output;
        n = net->layers[at].outputs;
    }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(y, sizeof *y, (size_t)n, f) != (size_t)n)
        return 1;
    fclose(f);
    free(x);
    return 0;
}

static void print_array(const char *name, const float *x, int n)
{
    printf("static const float %s[%d] = {", name, n);
    for (int i = 0; i < n; i++)
        printf("%s%s%.9g", i ? "," : "", i % 6 ? " " : "\n    ", x[i]);
    printf("};\n");
}

static int reference(char *cfg, char *weights, int seed, const char *name)
{
    network *net = load_network(cfg, weights, 0);
    if (net->time_steps <= 1)
        set_batch_network(net, 1);
    /* a sequence network (time_steps= T) reads T x batch rows, time-major */
    int n_in = net->inputs * net->batch;
    srand((unsigned)seed);
    float *x = calloc((size_t)n_in, sizeof *x);
    for (int i = 0; i < n_in; i++)
        x[i] = rand_uniform(0, 1);
    float *y = network_predict(net, x);
    int n = net->layers[net->n - 1].outputs * net->batch;
    char label[96];
    printf("/* Generated by tests/darknet/gen_reference.sh with Debian's libdarknet: the input\n"
           " * and darknet's forward output (test mode) of %s with its weights%s. */\n", cfg,
           net->time_steps > 1 ? " (time-major: step, then sample)" : "");
    snprintf(label, sizeof label, "darknet_%s_input", name);
    print_array(label, x, n_in);
    snprintf(label, sizeof label, "darknet_%s_output", name);
    print_array(label, y, n);
    free(x);
    return 0;
}

static double sum(const float *x, long n)
{
    double s = 0;
    for (long i = 0; x && i < n; i++)
        s += x[i];
    return s;
}

static double layer_sum(const layer *l)
{
    switch (l->type) {
    case CONVOLUTIONAL:
    case CONNECTED: {
        long n = l->type == CONNECTED ? l->outputs : l->n;
        long w = l->type == CONNECTED ? (long)l->inputs * l->outputs : l->nweights;
        double s = sum(l->biases, n) + sum(l->weights, w);
        if (l->batch_normalize)
            s += sum(l->scales, n) + sum(l->rolling_mean, n) + sum(l->rolling_variance, n);
        return s;
    }
    case RNN:
        return layer_sum(l->input_layer) + layer_sum(l->self_layer) + layer_sum(l->output_layer);
    case GRU:
        return layer_sum(l->uz) + layer_sum(l->wz) + layer_sum(l->ur) + layer_sum(l->wr) +
               layer_sum(l->uh) + layer_sum(l->wh);
    default:
        return 0;
    }
}

static void fill(float *x, long n, float lo, float hi)
{
    for (long i = 0; x && i < n; i++)
        x[i] = rand_uniform(lo, hi);
}

static int fan_scaled; /* weights in +-sqrt(3 / fan-in) */

static void randomise(layer *l)
{
    long n = l->type == CONNECTED ? l->outputs : l->type == LOCAL ? l->outputs : l->n;
    long w = l->type == CONNECTED ? (long)l->inputs * l->outputs : l->nweights;
    if (l->type == LOCAL)
        w = (long)l->out_h * l->out_w * l->size * l->size * l->c * l->n;
    switch (l->type) {
    case CONVOLUTIONAL:
    case DECONVOLUTIONAL:
    case CONNECTED:
    case LOCAL:
        fill(l->biases, n, -0.5f, 0.5f);
        if (fan_scaled && w / n > 0) {
            float a = sqrtf(3.0f / (float)(w / n));
            fill(l->weights, w, -a, a);
        } else {
            fill(l->weights, w, -0.5f, 0.5f);
        }
        if (l->batch_normalize) {
            fill(l->scales, n, 0.5f, 1.5f);
            fill(l->rolling_mean, n, -0.5f, 0.5f);
            fill(l->rolling_variance, n, 0.5f, 1.5f);
        }
        break;
    case RNN:
        randomise(l->input_layer), randomise(l->self_layer), randomise(l->output_layer);
        break;
    case GRU:
        randomise(l->uz), randomise(l->wz), randomise(l->ur), randomise(l->wr);
        randomise(l->uh), randomise(l->wh);
        break;
    default:
        break;
    }
}

static int load(char *cfg, char *weights)
{
    network *net = load_network(cfg, weights, 0);
    printf("seen %zu\n", *net->seen);
    for (int i = 0; i < net->n; i++)
        printf("%d %s %.9g\n", i, type_name(net->layers[i].type), layer_sum(&net->layers[i]));
    return 0;
}

static int detect(char *cfg, char *weights, const char *in, float thresh, float nms)
{
    network *net = load_network(cfg, weights, 0);
    set_batch_network(net, 1);
    float *x = read_floats(in, net->inputs);
    if (!x)
        return 1;
    network_predict(net, x);
    int nboxes = 0, classes = 0;
    detection *dets = get_network_boxes(net, net->w, net->h, thresh, 0.5f, 0, 1, &nboxes);
    for (int i = 0; i < net->n; i++)
        if (net->layers[i].type == YOLO || net->layers[i].type == REGION)
            classes = net->layers[i].classes;
    if (nms > 0)
        do_nms_sort(dets, nboxes, classes, nms);
    for (int i = 0; i < nboxes; i++)
        for (int k = 0; k < classes; k++) {
            if (!(dets[i].prob[k] > 0))
                continue;
            box b = dets[i].bbox;
            float c[4] = {(b.x - b.w / 2) * net->w, (b.y - b.h / 2) * net->h,
                          (b.x + b.w / 2) * net->w, (b.y + b.h / 2) * net->h};
            for (int j = 0; j < 4; j++) {
                float lim = j % 2 ? net->h : net->w;
                c[j] = c[j] < 0 ? 0 : c[j] > lim ? lim : c[j];
            }
            printf("%d %.7g %.7g %.7g %.7g %.7g\n", k, dets[i].prob[k], c[0], c[1], c[2], c[3]);
        }
    free_detections(dets, nboxes);
    free(x);
    return 0;
}

static int picture(char *path, int w, int h, const char *out)
{
    image im = load_image_color(path, w, h);
    FILE *f = fopen(out, "wb");
    size_t n = (size_t)im.w * im.h * im.c;
    int ok = f && fwrite(im.data, sizeof(float), n, f) == n;
    if (f)
        fclose(f);
    free_image(im);
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "image"))
        return picture(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
    if (argc == 3 && !strcmp(argv[1], "shapes"))
        return shapes(argv[2]);
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "forward"))
        return forward(argv[2], argv[3], argv[4], argv[5], argc == 7 ? atoi(argv[6]) : -1);
    if (argc == 7 && !strcmp(argv[1], "detect"))
        return detect(argv[2], argv[3], argv[4], (float)atof(argv[5]), (float)atof(argv[6]));
    if ((argc == 5 || (argc == 6 && !strcmp(argv[5], "fan"))) && !strcmp(argv[1], "random")) {
        fan_scaled = argc == 6;
        srand((unsigned)atoi(argv[4]));
        network *net = parse_network_cfg(argv[2]);
        for (int i = 0; i < net->n; i++)
            randomise(&net->layers[i]);
        save_weights(net, argv[3]);
        return 0;
    }
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "reference"))
        return reference(argv[2], argv[3], atoi(argv[4]), argc == 6 ? argv[5] : "small");
    if (argc == 4 && !strcmp(argv[1], "load"))
        return load(argv[2], argv[3]);
    fprintf(stderr, "usage: dn_ref shapes CFG | forward CFG WEIGHTS IN OUT | random CFG OUT SEED | "
                    "reference CFG WEIGHTS SEED | load CFG WEIGHTS\n");
    return 2;
}
