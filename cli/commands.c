/* The table of nerve's commands: one row per command, with its usage, options (with their
 * defaults) and an example. It is the single source of `nerve CMD --help`, `nerve help`,
 * the man page (`nerve help --man`, installed as nerve.1) and the reference section of
 * docs/cli.md (`nerve help --markdown`, spliced in by `make docs`; a test compares them).
 * main.c dispatches through this table, and args.c accepts exactly the options listed here
 * (as `--opt value` or `--opt=value`), so a command or option missing from it cannot be run.
 *
 * Adding a command: write `int cmd_NAME(int argc, char **argv)` in its own cli/ file,
 * declare it in cli.h, add its row below (alphabetical order), then `make docs`. The handler
 * receives the arguments after the command name with every `--opt=value` split into
 * `--opt value`, `--threads` and `--help` already handled, and only options of its row. */
#include "cli.h"

#include <stddef.h>

#define END_OPTIONS {NULL, NULL, NULL, NULL}

const cli_option cli_global_options[] = {
    {"--threads", "N", "$NERVE_THREADS, else every core", "threads for the work (every command takes it)"},
    {"--help", NULL, NULL, "print the command's usage, options and an example, then exit 0 (also -h)"},
    END_OPTIONS,
};

const cli_command cli_commands[] = {
    {
        .name = "attack",
        .run = cmd_attack,
        .usage = "attack CKPT [--method fgsm|pgd|fgsm,pgd] [--eps E[,E...]] [--plot FILE.svg]\n"
                 "attack CKPT --method pgd [--steps N] [--step S] [--restarts R] [--norm linf|l2]\n"
                 "attack CKPT [--range LO,HI] [--seed S] [--limit N]\n"
                 "attack CKPT [--images F --labels F | --csv F]\n"
                 "attack CKPT --method fool [--class C[,C...]] [--confidence P] [--steps N] [--step S] [--names FILE]\n"
                 "attack CKPT --method fool|patch [--out FILE.png]\n"
                 "attack CKPT --method patch [--class C] [--size S] [--steps N] [--train-limit N] [--names FILE]",
        .summary = "accuracy of a classifier on adversarial examples (FGSM, PGD), at one eps or over a sweep",
        .details = "Attacks every test sample of the cfg (or of the files given) and prints the clean accuracy "
                   "and the accuracy on the adversarial examples: FGSM (x + eps sign of the loss gradient) or "
                   "PGD (from a random point of the eps-ball, N steps of the sign (Linf) or direction (L2) of "
                   "the gradient, each projected back onto the ball; with R restarts a sample counts as robust "
                   "only if every restart fails), every value kept in the valid range. A sample is robust when "
                   "it is classified rightly both clean and attacked. Several eps values make a sweep; --plot "
                   "draws accuracy against eps (docs/explain.md). --method fool ascends the log-softmax of "
                   "each class (or those of --class) from uniform noise until its confidence reaches "
                   "--confidence, and draws the images with their confidences. --method patch trains a square "
                   "patch for class --class on the cfg's training images (at random places, then at the place "
                   "where it works best) and prints its success rate on the test images of other classes.",
        .options = (const cli_option[]){
            {"--method", "fgsm|pgd|fgsm,pgd|fool|patch", "fgsm", "the attack (fgsm,pgd: two curves)"},
            {"--eps", "E[,E...]", "0.1", "the radius (in input units: pixels in [0, 1]); several: a sweep"},
            {"--steps", "N", "20 (PGD), 1000 (fool), 400 (patch)", "PGD steps; the most ascent steps (fool, patch)"},
            {"--step", "S", "2.5 eps / steps (PGD), 0.01 (fool), 0.02 (patch)", "step size"},
            {"--class", "C[,C...]", "every class (fool), 0 (patch)", "the target class(es) (fool, patch)"},
            {"--confidence", "P", "0.99", "fooling stops at this softmax probability (fool)"},
            {"--size", "S", "a quarter of the shorter side", "the patch's side in pixels (patch)"},
            {"--train-limit", "N", "every training sample", "training samples the patch learns from (patch)"},
            {"--names", "FILE", "the cfg's names=", "class names for captions (fool, patch)"},
            {"--out", "FILE.png", "fool.png, patch.png", "the picture (fool, patch)"},
            {"--restarts", "R", "1", "PGD tries from random starts"},
            {"--norm", "linf|l2", "linf", "the ball's norm"},
            {"--range", "LO,HI", "0,1", "the valid range of input values (inputs outside it are refused)"},
            {"--seed", "S", "1", "seed of the random starts"},
            {"--limit", "N", "every sample", "the first N (test) samples only"},
            {"--plot", "FILE.svg", "none", "accuracy against eps, one curve per method"},
            {"--images", "F", "the cfg's test_images=", "IDX image file (with --labels)"},
            {"--labels", "F", "the cfg's test_labels=", "IDX label file (with --images)"},
            {"--csv", "F", "the cfg's test_csv=", "CSV file"},
            END_OPTIONS,
        },
        .example = "nerve attack runs/lenet5/model.safetensors --method pgd --restarts 2",
    },
    {
        .name = "convert",
        .run = cmd_convert,
        .usage = "convert IN OUT [--cfg CFG]",
        .summary = "convert a model between a safetensors checkpoint, ONNX and darknet .weights",
        .details = "Formats are told by the extensions: IN.safetensors (or IN.cfg, fresh weights) to "
                   "OUT.onnx exports as export-onnx does; IN.onnx to OUT.safetensors reads an ONNX file "
                   "that nerve exported (it keeps the cfg as metadata) back into a checkpoint of the "
                   "weights, without training state. Other ONNX files have no cfg: run them with nerve "
                   "run. IN.weights (darknet's, read with the network of --cfg CFG) goes to a checkpoint "
                   "or ONNX, and any model to OUT.weights in darknet's layout (version 0.2.0; a layer "
                   "darknet has no place for is refused, naming it). See docs/onnx.md and docs/darknet.md.",
        .options = (const cli_option[]){
            {"--cfg", "CFG", NULL, "the network a darknet .weights input belongs to"},
            END_OPTIONS,
        },
        .example = "nerve convert runs/mlp/model.safetensors mlp.onnx",
    },
    {
        .name = "curse",
        .run = cmd_curse,
        .usage = "curse [--n N] [--queries Q]",
        .summary = "the curse of dimensionality in numbers, for d = 1 ... 1000",
        .details = "Per dimension d: the volume of the inscribed ball as a fraction of the cube's, the edge "
                   "of a sub-cube holding 1% of the volume, the median distance from the centre of a unit "
                   "ball to the nearest of 500 uniform points, and the mean over Q uniform queries of the "
                   "nearest over the farthest distance to N uniform points in the unit cube (seed 1).",
        .options = (const cli_option[]){
            {"--n", "N", "1000", "points of the Monte Carlo nearest/farthest ratio (at least 2)"},
            {"--queries", "Q", "20", "query points of that ratio"},
            END_OPTIONS,
        },
        .example = "nerve curse --n 2000",
    },
    {
        .name = "data",
        .run = cmd_data,
        .usage = "data export IMAGES LABELS OUTDIR [--format png|jpg] [--quality Q] [--names FILE] [--limit N]\n"
                 "data scenes OUTDIR [--canvas 96] [--train 2000] [--test 500] [--objects 1-4] [--sizes 24-48] "
                 "[--overlap 0.2] [--clutter 0] [--seed 1] [--source DIR] [--names FILE]",
        .summary = "write an IDX pair as PNG/JPEG folders, or generate detection and segmentation scenes",
        .details = "export writes OUTDIR/<class>/<index>.png (or .jpg), one folder per class named by the names "
                   "file (line k+1 for class k), else by the class index: the image folder that "
                   "train_folder= reads back. Fashion-MNIST's IDX files are in /usr/share/datasets/fashion-mnist. "
                   "scenes composes Fashion-MNIST items (training items for training scenes, test items for test "
                   "scenes) on square canvases and writes a darknet-style list data set: OUTDIR/train.txt, "
                   "test.txt, classes.names, images/, labels/ (YOLO boxes, the tight box of each object) and "
                   "masks/ (0 background, class k as k+1); docs/detection.md.",
        .options = (const cli_option[]){
            {"--format", "png|jpg", "png", "export: image format of the files written"},
            {"--quality", "Q", "95", "export: JPEG quality, 1..100 (jpg only)"},
            {"--names", "FILE", "export: the class index; scenes: Fashion-MNIST's names",
             "class names, one a line (export: folder names; scenes: classes.names)"},
            {"--limit", "N", "every image", "export: write the first N images only"},
            {"--canvas", "N", "96", "scenes: side of the square scenes, pixels"},
            {"--train", "N", "2000", "scenes: training scenes"},
            {"--test", "N", "500", "scenes: test scenes"},
            {"--objects", "MIN-MAX", "1-4", "scenes: objects per scene (at most 64)"},
            {"--sizes", "MIN-MAX", "24-48", "scenes: side an item is scaled to, pixels"},
            {"--overlap", "IOU", "0.2", "scenes: the largest IoU between two objects' boxes"},
            {"--clutter", "N", "0", "scenes: unlabelled item fragments per scene"},
            {"--seed", "N", "1", "scenes: random seed (the same seed gives the same files)"},
            {"--source", "DIR", "/usr/share/datasets/fashion-mnist", "scenes: folder of the four Fashion-MNIST IDX files"},
            END_OPTIONS,
        },
        .example = "nerve data scenes data/scenes --train 2000 --test 500 --clutter 2",
    },
    {
        .name = "detect",
        .run = cmd_detect,
        .usage = "detect CKPT IMAGE... [--thresh T] [--nms T] [--out DIR]",
        .summary = "a detector's boxes on PNG/JPEG images, printed and drawn",
        .details = "Runs a detector (a cfg ending in [detection], YOLO v1, or [fast_rcnn], Faster R-CNN, or with darknet's [region] or [yolo] heads, or with [ssd] heads; docs/detection.md) on each image "
                   "(files or folders of them), read at the model's input size by the cfg's resize policy, "
                   "and prints one line per object: class name, score (confidence x class score; SSD: the class's probability) and box "
                   "corners x1 y1 x2 y2 in the pixels of the image on disk. Boxes below --thresh are dropped "
                   "and the rest go through greedy NMS per class. With --out, DIR/NAME.png is each image "
                   "(small ones scaled up) with its boxes and labels drawn, one colour per class.",
        .options = (const cli_option[]){
            {"--thresh", "T", "0.25", "the lowest score kept, in [0, 1]"},
            {"--nms", "T", "0.45", "NMS: a box overlapping a kept one of its class by IoU > T is dropped (0: no NMS)"},
            {"--out", "DIR", "none", "write the pictures there"},
            END_OPTIONS,
        },
        .example = "nerve detect runs/yolo/model.safetensors scenes/images/test --out boxes",
    },
    {
        .name = "embed",
        .run = cmd_embed,
        .usage = "embed [CKPT [--layer NAME]] [--images F [--labels F] | --csv F [--label-col K|none]] "
                 "[--method tsne|pca|none] [--limit N] [--pca-dims K] [--perplexity P] [--iterations N] "
                 "[--theta T] [--init pca|random] [--seed S] [--names FILE] [--out FILE.svg] "
                 "[--coords FILE.csv] [--title TEXT] [--quiet]",
        .summary = "vectors onto a plane by t-SNE or PCA: an SVG scatter coloured by label and a CSV",
        .details = "The vectors are the raw samples of the data, or with a checkpoint its features at node "
                   "NAME (a layer's name, e.g. an autoencoder's code layer; default the model's output) in "
                   "evaluation mode (data: the files given, else the checkpoint cfg's test data). t-SNE runs "
                   "after PCA to K dimensions when the vectors have more; exact up to 1000 points, else "
                   "Barnes-Hut. The legend names come from --names, else the data's or the checkpoint's. "
                   "Progress goes to stderr every 250 iterations. docs/unsupervised.md.",
        .options = (const cli_option[]){
            {"--layer", "NAME", "the model's output", "the node whose output is embedded (with CKPT)"},
            {"--images", "F", NULL, "IDX image file (pixels scaled to [0, 1])"},
            {"--labels", "F", "unlabelled", "IDX label file (with --images)"},
            {"--csv", "F", NULL, "CSV file of features"},
            {"--label-col", "K|none", "-1 (the last column)", "the CSV's label column (negative: from the end); none: no labels"},
            {"--limit", "N", "every sample", "the first N (test) samples only"},
            {"--method", "tsne|pca|none", "tsne", "t-SNE, the first two principal components, or none (2-D vectors as they are, e.g. a 2-unit code)"},
            {"--pca-dims", "K", "50", "PCA to K dimensions before t-SNE (0: none)"},
            {"--perplexity", "P", "30", "t-SNE perplexity, below the neighbours of each point"},
            {"--iterations", "N", "1000", "t-SNE iterations (the first 250 exaggerated, x12)"},
            {"--theta", "T", "0 up to 1000 points, else 0.5", "Barnes-Hut angle, 0..0.7 (0: exact t-SNE, at most 10000 points)"},
            {"--init", "pca|random", "pca", "t-SNE initialisation (scaled to standard deviation 1e-4)"},
            {"--seed", "S", "0", "seed of the random initialisation"},
            {"--names", "FILE", "the data's or the checkpoint's names", "class names, one a line, for the legend"},
            {"--out", "FILE.svg", "embed.svg", "the scatter plot"},
            {"--coords", "FILE.csv", "the SVG's path with .csv", "the coordinates: index,x,y,label,name"},
            {"--title", "TEXT", "the method and the number of points", "the plot's title"},
            {"--quiet", NULL, NULL, "no t-SNE progress lines"},
            END_OPTIONS,
        },
        .example = "nerve embed runs/ae_mlp/model.safetensors --layer code --out codes.svg",
    },
    {
        .name = "ensemble",
        .run = cmd_ensemble,
        .usage = "ensemble CKPT [CKPT...] [--images F --labels F | --csv F] [--tta CROP]",
        .summary = "accuracy of each model and of their averaged softmax outputs",
        .details = "Evaluates each checkpoint and the ensemble that averages their softmax outputs on the "
                   "first checkpoint's cfg test data, or on the files given.",
        .options = (const cli_option[]){
            {"--images", "F", "the cfg's test_images=", "IDX image file to evaluate on (with --labels)"},
            {"--labels", "F", "the cfg's test_labels=", "IDX label file (with --images)"},
            {"--csv", "F", "the cfg's test_csv=", "CSV file to evaluate on"},
            {"--tta", "CROP", "off", "also each model's accuracy with 10-view test-time augmentation (crops "
                                    "of side CROP and their mirrors)"},
            END_OPTIONS,
        },
        .example = "nerve ensemble runs/lenet5/member-*.safetensors --tta 24",
    },
    {
        .name = "eval",
        .run = cmd_eval,
        .usage = "eval CKPT [--images F --labels F | --csv F] [--robust EPS] [--pr FILE]",
        .summary = "metrics and confusion matrix of a checkpoint on test data",
        .details = "Loads a checkpoint (it carries its cfg) and prints the metrics of its task on the cfg's "
                   "test data or on the files given; a language model is measured on the held-out end of "
                   "its text (bits per character), a detector ([detection]) by mAP@0.5, COCO's mAP@[.5:.95] "
                   "and each class's AP on its test_list=.",
        .options = (const cli_option[]){
            {"--images", "F", "the cfg's test_images=", "IDX image file (with --labels)"},
            {"--labels", "F", "the cfg's test_labels=", "IDX label file (with --images)"},
            {"--csv", "F", "the cfg's test_csv=", "CSV file"},
            {"--robust", "EPS", "off", "also the robust accuracy of a classifier under PGD-20 (Linf, 2 random "
                                       "restarts, pixels kept in [0, 1]) at radius EPS"},
            {"--pr", "FILE", "off", "a detector: also write its precision-recall curves at IoU 0.5 (one per "
                                    "class, the AP in the legend) to FILE as an SVG plot"},
            END_OPTIONS,
        },
        .example = "nerve eval runs/mlp/model.safetensors",
    },
    {
        .name = "experiment",
        .run = cmd_experiment,
        .usage = "experiment lottery|collapse|recos|optimisers|gradients|bcd|perceptron [--out DIR] [--quick]\n"
                 "experiment NAME [--epochs N] [--train N] [--seed S] [--data DIR] [--digits FILE]",
        .summary = "one of the course's experiments: its figures printed, its plots written as SVG",
        .details = "lottery: iterative magnitude pruning of LeNet-300-100 on Fashion-MNIST, the pruned network "
                   "rewound to its initialisation (the ticket) against the same mask re-initialised. collapse: "
                   "neural collapse NC1-NC4 per epoch of an MLP trained past zero error on a Fashion-MNIST subset. "
                   "recos: accuracy on negative images (1 - x) of networks trained on positives and the reverse "
                   "(Fashion-MNIST, the 8x8 digits). optimisers: SGD, momentum, Nesterov, AdaGrad, RMSProp and "
                   "Adam (nerve's own) on the canyon and the saddle, and a learning-rate sweep. gradients: gradient "
                   "norms through deep tanh and sigmoid MLPs and through the steps of an RNN against the largest "
                   "singular value of its recurrent matrix. bcd: block coordinate descent (Zeng et al. 2019) "
                   "against SGD on a deep MLP. perceptron: updates of Rosenblatt's rule against the bound "
                   "beta ||w_o||^2 / alpha^2. Figures are lines 'key = value'; docs/experiments.md has the "
                   "measured ones.",
        .options = (const cli_option[]){
            {"--out", "DIR", ".", "folder of the SVG plots (created)"},
            {"--quick", NULL, NULL, "tiny sizes that run in seconds (a smoke test: the figures prove nothing)"},
            {"--epochs", "N", "the experiment's own", "training epochs where the experiment trains"},
            {"--train", "N", "the experiment's own", "training samples where the experiment trains"},
            {"--seed", "S", "1", "seed of initialisations, data order and generated data"},
            {"--data", "DIR", "/usr/share/datasets/fashion-mnist", "folder of Fashion-MNIST's four IDX files"},
            {"--digits", "FILE", "python3-sklearn's digits.csv.gz", "the 8x8 digits CSV (recos, optimisers)"},
            END_OPTIONS,
        },
        .example = "nerve experiment lottery --out plots",
    },
    {
        .name = "explain",
        .run = cmd_explain,
        .usage = "explain CKPT [INPUT...] [--method M,...] [--first K] [--n N] [--out FILE.png]\n"
                 "explain CKPT [INPUT...] [--class C] [--layer NAME] [--names FILE]\n"
                 "explain CKPT [INPUT...] [--samples N] [--noise S]\n"
                 "explain CKPT [INPUT...] [--patch P] [--stride S] [--fill V]\n"
                 "explain CKPT [INPUT...] --sanity N [--method M,...]",
        .summary = "pictures of why a classifier decides as it does: saliency, guided backprop, Grad-CAM, ...",
        .details = "For inputs K..K+N-1 (INPUT: PNG/JPEG files or folders, or one IDX or CSV file; none: the cfg's "
                   "test data) draws one row per input: the input, then for each method its map in a colour "
                   "map (red positive, blue negative) and laid over the input, and prints the class explained "
                   "and its score. Methods: saliency (|dS_c/dI|, maxed over channels, on the class score S_c), "
                   "backprop, deconvnet and guided (the signed input gradient with ReLUs passing gradients back "
                   "plainly, positive gradients only, or both), smoothgrad, occlusion, gradcam. --sanity N runs "
                   "the model-randomisation check instead: the Spearman rank correlation between each method's "
                   "maps for the trained network and for the same network re-initialised, averaged over the "
                   "first N inputs (docs/explain.md).",
        .options = (const cli_option[]){
            {"--method", "M,...", "all seven", "saliency, backprop, deconvnet, guided, smoothgrad, occlusion, gradcam"},
            {"--first", "K", "0", "the first input drawn (counting from 0)"},
            {"--n", "N", "6", "inputs drawn, 1..64"},
            {"--class", "C", "the predicted class", "the class explained"},
            {"--layer", "NAME", "the last layer with maps", "Grad-CAM's layer"},
            {"--samples", "N", "50", "SmoothGrad's noisy copies"},
            {"--noise", "S", "0.15", "SmoothGrad's noise: standard deviation over the input's range"},
            {"--patch", "P", "a quarter of the shorter side", "occlusion: the square's side"},
            {"--stride", "S", "a third of the patch", "occlusion: the square's step"},
            {"--fill", "V", "0", "occlusion: the square's value"},
            {"--names", "FILE", "the checkpoint's or the cfg's names", "class names, one a line, for the captions"},
            {"--out", "FILE.png", "explain.png", "the picture"},
            {"--sanity", "N", "off", "the randomisation sanity check over the first N inputs (no picture)"},
            END_OPTIONS,
        },
        .example = "nerve explain runs/lenet5/model.safetensors --n 4 --method guided",
    },
    {
        .name = "export-c",
        .run = cmd_export_c,
        .usage = "export-c CKPT OUTDIR [--name NAME]",
        .summary = "write a trained model as one standalone C99 source and header",
        .details = "Writes OUTDIR/NAME.c and OUTDIR/NAME.h (OUTDIR is created): C99 with no allocation and "
                   "no libnerve, the weights as const arrays, one static arena planned from the values' "
                   "lifetimes, and void NAME_run(const float *in, float *out) giving the probabilities nerve "
                   "predict gives. Prints the input and output sizes and the flash (constants) and RAM "
                   "(arena) the model needs, both exact. A model with an operator that has no C form is "
                   "refused, naming the node. See docs/export-c.md.",
        .options = (const cli_option[]){
            {"--name", "NAME", "model", "the files' name and the prefix of every exported symbol (a C identifier)"},
            END_OPTIONS,
        },
        .example = "nerve export-c runs/lenet5/model.safetensors out",
    },
    {
        .name = "export-onnx",
        .run = cmd_export_onnx,
        .usage = "export-onnx CKPT OUT.onnx",
        .summary = "write a model as an ONNX file (opset 13) that ONNX Runtime and nerve run read",
        .details = "CKPT is a checkpoint, or a cfg file (then with freshly initialised weights). The file "
                   "holds the model input with a symbolic batch N, the output nerve predict starts from "
                   "(a classifier's logits, plus their softmax as a second output, probabilities), every "
                   "weight and statistic as an initializer, batch norm in its inference form and recurrent "
                   "layers as ONNX LSTM, GRU and RNN, and the cfg as metadata (so nerve convert turns it "
                   "back into a checkpoint). A model with an operator that has no ONNX form is refused, "
                   "naming the node and its cfg layer. See docs/onnx.md.",
        .options = (const cli_option[]){
            END_OPTIONS,
        },
        .example = "nerve export-onnx runs/lenet5/model.safetensors lenet5.onnx",
    },
    {
        .name = "help",
        .run = NULL, /* main.c */
        .usage = "help [CMD]\nhelp --man | --markdown",
        .summary = "the list of commands, or one command's usage, options and example",
        .details = "With CMD: the same text as `nerve CMD --help`. --man prints the man page nerve.1 and "
                   "--markdown the reference section of docs/cli.md, both made from the same table.",
        .options = (const cli_option[]){
            {"--man", NULL, NULL, "print the manual page (roff) instead"},
            {"--markdown", NULL, NULL, "print the command reference as Markdown instead"},
            END_OPTIONS,
        },
        .example = "nerve help train",
    },
    {
        .name = "pca",
        .run = cmd_pca,
        .usage = "pca --images F | --csv F [--label-col K|none] [--limit N] [--k K] [--standardise] "
                 "[--scree FILE.svg] [--reconstruct K [--test-images F | --test-csv F]]",
        .summary = "principal components: variances, proportions, scree plot, reconstruction error",
        .details = "Fits PCA (covariance with 1/n; the Gram/SVD route when there are more features than "
                   "samples) and prints the variance, proportion and cumulative proportion of the first K "
                   "components; --reconstruct K prints the mean squared error per value of reconstructions "
                   "from K components. docs/unsupervised.md.",
        .options = (const cli_option[]){
            {"--images", "F", NULL, "IDX image file (pixels scaled to [0, 1])"},
            {"--csv", "F", NULL, "CSV file of features"},
            {"--label-col", "K|none", "-1 (the last column)", "the CSV's label column (negative: from the end); none: no labels"},
            {"--limit", "N", "every sample", "the first N (test) samples only"},
            {"--k", "K", "10", "components to print"},
            {"--standardise", NULL, NULL, "divide every feature by its standard deviation first"},
            {"--scree", "FILE.svg", "none", "write the scree plot (proportion and cumulative proportion)"},
            {"--reconstruct", "K", "off", "mean squared error of reconstructions from K components"},
            {"--test-images", "F", "the fitted data", "IDX images to reconstruct (with --reconstruct)"},
            {"--test-csv", "F", "the fitted data", "CSV file to reconstruct (with --reconstruct)"},
            END_OPTIONS,
        },
        .example = "nerve pca --images train-images-idx3-ubyte.gz --k 50 --scree scree.svg",
    },
    {
        .name = "predict",
        .run = cmd_predict,
        .usage = "predict CKPT FILE... [--top K] [--label-col K]",
        .summary = "one line per sample: the most likely classes (or the outputs) of a checkpoint",
        .details = "FILE is IDX images, a CSV of features, or PNG/JPEG files and folders of them (each line "
                   "then starts with the file's path). A classifier prints 'CLASS NAME PROBABILITY' for "
                   "the K most likely classes; other heads print their output values.",
        .options = (const cli_option[]){
            {"--top", "K", "1", "how many classes per line, 1..64"},
            {"--label-col", "K", "none", "a label column of the CSV to ignore (negative: from the end)"},
            END_OPTIONS,
        },
        .example = "nerve predict runs/iris/model.safetensors flowers.csv --top 2",
    },
    {
        .name = "profile",
        .run = cmd_profile,
        .usage = "profile CFG|CKPT [--batch N] [--steps N] [--train] [--top K]",
        .summary = "where a model's time goes, operator by operator",
        .details = "Runs the model on synthetic data (inputs N(0, 1), labels uniform over the classes) "
                   "for 2 warm-up steps and then --steps timed ones: inference (forward passes) or, with "
                   "--train, training steps (forward, backward, SGD with momentum). Prints the time a step "
                   "split into forward, backward, optimiser and the rest; then per operator and for the "
                   "slowest nodes the forward and backward milliseconds a step, their share of the "
                   "operators' time, and the forward GFLOP/s of convolutions and dense layers. Times are "
                   "wall-clock: on a busy machine they include time spent waiting for a core.",
        .options = (const cli_option[]){
            {"--batch", "N", "1", "samples a step"},
            {"--steps", "N", "10", "timed steps"},
            {"--train", NULL, NULL, "time training steps (forward and backward) instead of inference"},
            {"--top", "K", "15", "nodes listed"},
            END_OPTIONS,
        },
        .example = "nerve profile models/resnet20.cfg --train --batch 128 --threads 2",
    },
    {
        .name = "quantize",
        .run = cmd_quantize,
        .usage = "quantize CKPT [--calib N] [--out Q]",
        .summary = "post-training int8 quantisation of a float checkpoint",
        .details = "Calibrates on the first N batches of the cfg's training data (the minimum and maximum of "
                   "every dense and convolution layer's input and output), then writes an int8 checkpoint: "
                   "symmetric per-channel int8 weights, u8 activations with a zero point, int32 sums and "
                   "fixed-point requantisation. Prints the test accuracy of the float and the int8 model. "
                   "The int8 checkpoint runs in nerve eval and nerve predict; training refuses it. See "
                   "docs/quantize.md.",
        .options = (const cli_option[]){
            {"--calib", "N", "16", "calibration batches (of the cfg's batch size) from the training data"},
            {"--out", "Q", "CKPT with -int8 before .safetensors", "the int8 checkpoint to write"},
            END_OPTIONS,
        },
        .example = "nerve quantize runs/lenet5/model.safetensors --calib 16",
    },
    {
        .name = "run",
        .run = cmd_run,
        .usage = "run MODEL.onnx INPUT... [--out FILE.pb] [--batch N]",
        .summary = "one forward pass of an ONNX model",
        .details = "Imports MODEL.onnx into nerve's operators (docs/onnx.md) and feeds each INPUT to one "
                   "model input, in order: a TensorProto file (.pb) or a text file of numbers separated "
                   "by blanks, commas or newlines that fills the input exactly. Prints every output as "
                   "'NAME [SHAPE]: values'. A model with an operator or attribute nerve does not cover is "
                   "refused, naming the node.",
        .options = (const cli_option[]){
            {"--out", "FILE.pb", "print", "write output 0 as a float TensorProto instead of printing it"},
            {"--batch", "N", "1", "size of the model's symbolic dimensions"},
            END_OPTIONS,
        },
        .example = "nerve run model.onnx input_0.pb",
    },
    {
        .name = "sample",
        .run = cmd_sample,
        .usage = "sample CKPT [--length N] [--temperature X] [--prime STRING] [--seed S]",
        .summary = "generate text from a language-model checkpoint",
        .details = "Prints the prime followed by N generated bytes, each drawn from softmax(scores / X). "
                   "`nerve textgen sample` is the same command.",
        .options = (const cli_option[]){
            {"--length", "N", "200", "bytes to generate"},
            {"--temperature", "X", "0.8", "sampling temperature, >= 0 (0: the most likely byte)"},
            {"--prime", "STRING", "empty", "text the model reads first (printed as is)"},
            {"--seed", "S", "1", "seed of the sampling generator"},
            END_OPTIONS,
        },
        .example = "nerve sample runs/charlm/model.safetensors --length 400 --prime 'The '",
    },
    {
        .name = "segment",
        .run = cmd_segment,
        .usage = "segment CKPT IMAGE... [--alpha A] [--out DIR]",
        .summary = "a segmentation model's class per pixel on PNG/JPEG images, printed and drawn",
        .details = "Runs a segmentation model (a cfg ending in [softmax] target=mask; docs/detection.md) on each image "
                   "(files or folders of them) at the model's input size (images of another size are refused unless "
                   "the cfg's resize= is stretch), gives each pixel the class of highest probability and prints "
                   "each class's share of the pixels. With --out, DIR/NAME.png is each image (small ones scaled up) "
                   "with the pixels of every object class tinted in the class's colour (the colours nerve detect "
                   "gives the classes) and a legend of the classes present below it.",
        .options = (const cli_option[]){
            {"--alpha", "A", "0.55", "the weight of the class colour over the pixel, in [0, 1]"},
            {"--out", "DIR", "none", "write the pictures there"},
            END_OPTIONS,
        },
        .example = "nerve segment runs/unet/model.safetensors data/fseg/images/test --out pics",
    },
    {
        .name = "slide",
        .run = cmd_slide,
        .usage = "slide crops LIST OUTDIR [--windows WxH,...] [--stride S] [--context F] [--names F] "
                 "[--crop N] [--positives N] [--negatives N] [--seed N]\n"
                 "slide CKPT LIST [--windows WxH,...] [--stride S] [--context F] [--names F] [--nms T] [--pr FILE] [--out DIR] [--show N] "
                 "[--thresh T]",
        .summary = "sliding-window detection with a classifier: its training windows, its mAP, heat maps",
        .details = "Sliding windows (docs/detection.md): every window of the given shapes, on a grid of the given "
                   "stride, with some context around it, warped to the classifier's input. crops writes a classifier's training set from the "
                   "scenes of a darknet-style list (its class names: --names, else classes.names beside it): "
                   "windows overlapping an object by IoU >= 0.6 are its class, windows overlapping every object "
                   "by less than 0.3 are background, as an image folder OUTDIR/NN_NAME/ (class NN, background "
                   "last) that train_folder= reads. CKPT LIST runs such a classifier over the windows of every "
                   "scene of LIST, keeps each class's windows of probability >= 0.005, applies greedy NMS per "
                   "class and prints mAP@0.5, COCO's mAP@[.5:.95] and each class's AP as nerve eval does; with "
                   "--out, DIR/NNNNNN.png is each of the first --show scenes with its detections of score >= "
                   "--thresh beside its heat map (each pixel in the colour of its most probable class, as "
                   "bright as that probability). Give both commands the same --windows, --stride and --context.",
        .options = (const cli_option[]){
            {"--windows", "WxH,...", "28x28", "window shapes in the scenes' pixels (at most 16)"},
            {"--stride", "S", "4", "pixels between neighbouring windows"},
            {"--context", "F", "0.125", "the classifier sees each window with F of its width and height added on "
                                        "each side (so that it can tell whether an object fits the window)"},
            {"--names", "F", "classes.names beside LIST", "the scenes' class names"},
            {"--crop", "N", "28", "crops: the side the windows are warped to (the classifier's input)"},
            {"--positives", "N", "4", "crops: windows per object, at most"},
            {"--negatives", "N", "8", "crops: background windows per scene, at most"},
            {"--seed", "N", "1", "crops: random seed of the choice of windows"},
            {"--nms", "T", "0.3", "NMS: a window overlapping a kept one of its class by IoU > T is dropped (0: no "
                                  "NMS)"},
            {"--pr", "FILE", "off", "write the precision-recall curves at IoU 0.5 to FILE (SVG)"},
            {"--out", "DIR", "none", "write pictures of the first scenes there"},
            {"--show", "N", "4", "scenes drawn with --out"},
            {"--thresh", "T", "0.5", "the lowest score drawn, in [0, 1]"},
            END_OPTIONS,
        },
        .example = "nerve slide runs/window_classifier/model.safetensors scenes/test.txt",
    },
    {
        .name = "style",
        .run = cmd_style,
        .usage = "style MODEL --style IMAGE [--content IMAGE] [--out FILE.png]\n"
                 "style MODEL --style IMAGE [--layers L,...] [--content-layer L] [--alpha A] [--beta B]\n"
                 "style MODEL --style IMAGE [--steps N] [--lr R] [--init noise|content] [--seed S] [--report N]",
        .summary = "texture synthesis and neural style transfer (Gram matrices of convolutional layers)",
        .details = "MODEL is a checkpoint, or a cfg (its network freshly initialised: random convolutional "
                   "networks synthesise textures too). Images are read at the model's input size (cropped "
                   "to its shape). Without --content: texture synthesis, from uniform noise, minimising the "
                   "style loss sum_l E_l / L, E_l = 1/(4 N^2 M^2) sum (G - A)^2 over the Gram matrices G of "
                   "the --layers; with --content: style transfer, minimising alpha 1/2 sum (F - P)^2 at the "
                   "content layer plus beta times the style loss, from the content image. Adam on the "
                   "pixels; prints both losses as it goes and how far the style loss fell, and writes the "
                   "images side by side (docs/explain.md).",
        .options = (const cli_option[]){
            {"--style", "IMAGE", NULL, "the style (or texture) image, PNG or JPEG"},
            {"--content", "IMAGE", "none: texture synthesis", "the content image"},
            {"--layers", "L,...", "every convolutional layer", "the style layers (layer names, as nerve summary prints)"},
            {"--content-layer", "L", "the second style layer (the first if only one)", "the content layer"},
            {"--alpha", "A", "1", "the content loss's weight"},
            {"--beta", "B", "1000", "the style loss's weight"},
            {"--steps", "N", "500", "Adam steps"},
            {"--lr", "R", "0.02", "Adam's learning rate on the pixels"},
            {"--init", "noise|content", "content with --content, else noise", "the starting image"},
            {"--seed", "S", "1", "seed of the starting noise"},
            {"--report", "N", "50", "print the losses every N steps (0: start and end only)"},
            {"--out", "FILE.png", "style.png", "the picture: style, content and result"},
            END_OPTIONS,
        },
        .example = "nerve style examples/texture_random.cfg --style flower.jpg --out texture.png",
    },
    {
        .name = "summary",
        .run = cmd_summary,
        .usage = "summary CFG",
        .summary = "table of layers with output shapes, parameters and FLOPs",
        .details = "One row per cfg layer: name, type, output shape (without the batch), parameters, "
                   "multiply-accumulates and FLOPs per sample; then the totals.",
        .options = (const cli_option[]){END_OPTIONS},
        .example = "nerve summary models/resnet20.cfg",
    },
    {
        .name = "textgen",
        .run = cmd_textgen,
        .usage = "textgen sample CKPT [--length N] [--temperature X] [--prime STRING] [--seed S]",
        .summary = "the same as `nerve sample` (an older name)",
        .details = "Language models train with `nerve train` (models/charlm.cfg).",
        .options = (const cli_option[]){
            {"--length", "N", "200", "bytes to generate"},
            {"--temperature", "X", "0.8", "sampling temperature, >= 0 (0: the most likely byte)"},
            {"--prime", "STRING", "empty", "text the model reads first"},
            {"--seed", "S", "1", "seed of the sampling generator"},
            END_OPTIONS,
        },
        .example = "nerve textgen sample runs/charlm/model.safetensors --temperature 0",
    },
    {
        .name = "train",
        .run = cmd_train,
        .usage = "train CFG [--out DIR] [--overwrite] [--epochs N] [--quiet]\n"
                 "train CFG --resume CKPT [--force] [--epochs N]\n"
                 "train CFG --init CKPT [--freeze N]\n"
                 "train CFG --bag K",
        .summary = "train the network a cfg describes on the data its [net] section names",
        .details = "Writes DIR/model.safetensors (the checkpoint, every epoch), DIR/log.csv and "
                   "DIR/curves.svg, and ends with the test figures ('test accuracy: 0.XXXX' for a "
                   "classifier) when the cfg names test data. Progress goes to stderr: a one-line bar on "
                   "a terminal, plain lines otherwise. Ctrl-C saves the epoch in progress and prints the "
                   "command that resumes it (exit 130). Under mpirun -np N (a nerve built with Open MPI: "
                   "nerve version says) it trains one model data-parallel on N processes, each on its "
                   "share of every batch, rank 0 writing the files; there kill -USR1 <pid of mpirun> is "
                   "the interrupt that saves (docs/distributed.md).",
        .options = (const cli_option[]){
            {"--out", "DIR", "runs/<cfg name>, else the first free runs/<cfg name>-K",
             "run directory (with --resume: the checkpoint's directory)"},
            {"--overwrite", NULL, NULL, "write over a run directory that holds files"},
            {"--epochs", "N", "the cfg's epochs=", "epochs to train (in all, counting resumed ones)"},
            {"--quiet", NULL, NULL, "no progress bar or progress lines (the epoch lines stay)"},
            {"--resume", "CKPT", NULL, "continue a run from its checkpoint"},
            {"--force", NULL, NULL, "with --resume: accept a cfg that differs from the checkpoint's"},
            {"--init", "CKPT", NULL, "start from the tensors of CKPT that match by name and shape"},
            {"--freeze", "N", "0", "freeze the parameters of the first N layers"},
            {"--bag", "K", "off", "train K members on bootstrap resamples and report their ensemble"},
            END_OPTIONS,
        },
        .example = "nerve train models/mlp.cfg --epochs=2 --out runs/mlp-short",
    },
    {
        .name = "version",
        .run = NULL, /* main.c */
        .usage = "version",
        .summary = "print the version (also --version)",
        .details = NULL,
        .options = (const cli_option[]){END_OPTIONS},
        .example = "nerve version",
    },
    {
        .name = "viz",
        .run = cmd_viz,
        .usage = "viz filters CKPT [--layer NAME] [--out FILE.png]\n"
                 "viz activations CKPT IMAGE-INDEX [--layer NAME] [--out FILE.png]\n"
                 "viz reconstruct CKPT [--n N] [--scale S] [--out FILE.png]\n"
                 "viz classmodel CKPT [--class C,...] [--steps N] [--lr R] [--lambda L] [--blur S] [--out FILE.png]\n"
                 "viz dream CKPT IMAGE-INDEX [--layer NAME,...] [--steps N] [--lr R] [--out FILE.png]\n"
                 "viz invert CKPT IMAGE-INDEX [--layer NAME,...] [--tv W] [--steps N] [--lr R] [--out FILE.png]\n"
                 "viz neighbours CKPT [--layer NAME] [--n N] [--k K] [--limit N] [--names FILE] [--out FILE.png]\n"
                 "viz top CKPT [--layer NAME] [--unit U] [--k K] [--limit N] [--names FILE] [--out FILE.png]",
        .summary = "PNG pictures of a layer's weights, of its output for one test image, or of reconstructions; "
                   "class models, DeepDream, feature inversion, nearest neighbours, top-activating images",
        .details = "filters: one tile per unit or filter of the layer's weight; activations: the layer's "
                   "output maps for test image IMAGE-INDEX (counting from 0) of the cfg's test data; "
                   "reconstruct (models with target=input): rows of inputs, outputs and clean images. For "
                   "classifiers (docs/explain.md): classmodel ascends S_c(x) - lambda |x|^2 from a black image "
                   "with periodic Gaussian blur and clipping of the smallest pixels and gradients; dream "
                   "ascends 1/2 sum f^2 at a layer (DeepDream) from a test image; invert reconstructs a test "
                   "image from a layer's features (relative squared error plus a total-variation prior); "
                   "neighbours shows the nearest training images of the first test images in pixel space and "
                   "in a layer's features, and prints how often they share the query's class; top shows the "
                   "test images whose maximum over positions of a unit is largest, and the input patch that "
                   "unit reads there (where its input gradient is non-zero).",
        .options = (const cli_option[]){
            {"--layer", "NAME", "the first layer with a weight (filters), the first layer (activations), the last "
             "layer with maps (dream, top), every layer (invert), the last vector layer before the output "
             "(neighbours)", "the layer (several, comma-separated: dream, invert)"},
            {"--out", "FILE.png", "filters.png, activations.png, reconstruct.png, MODE.png", "the picture to write"},
            {"--n", "N", "8", "test images to draw, at most 64 (reconstruct); test queries (neighbours)"},
            {"--scale", "S", "4", "each pixel drawn as an S x S block (reconstruct)"},
            {"--class", "C,...", "every class", "the classes (classmodel)"},
            {"--steps", "N", "300 (classmodel, invert), 40 (dream)", "ascent or descent steps"},
            {"--lr", "R", "0.02 (classmodel, invert), 0.005 (dream)", "Adam's learning rate on the pixels"},
            {"--lambda", "L", "0.001", "the L2 penalty's weight (classmodel)"},
            {"--blur", "S", "0.5", "the Gaussian blur's standard deviation in pixels, every 4 steps (classmodel)"},
            {"--tv", "W", "0.005", "the total-variation prior's weight (invert)"},
            {"--k", "K", "5 (neighbours), 8 (top)", "neighbours per space, or images (at most 64)"},
            {"--unit", "U", "0", "the unit (channel) of the layer (top)"},
            {"--limit", "N", "every sample", "training images searched (neighbours), test images searched (top)"},
            {"--names", "FILE", "the cfg's names=", "class names for captions"},
            END_OPTIONS,
        },
        .example = "nerve viz filters runs/lenet5/model.safetensors --layer conv1 --out conv1.png",
    },
};

const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);

const cli_exit_status cli_exit_statuses[] = {
    {0, "done", "the work was done"},
    {1, "the work failed", "the work failed (a bad cfg, unreadable data, a diverging loss, a file that cannot be written): "
        "the message on stderr names the file and line, the sample, or the epoch and batch"},
    {2, "usage error", "a usage error: an unknown command or option (the message names the closest valid one), a "
        "missing or malformed argument"},
    {130, "interrupted", "nerve train was interrupted by Ctrl-C (SIGINT) after saving a checkpoint"},
    {-1, NULL, NULL},
};
