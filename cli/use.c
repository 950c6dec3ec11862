/* nerve eval / predict / summary: using a trained checkpoint or inspecting a cfg. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A language model: bits per character of the held-out end of its text. */
static int eval_text(nerve_model *m)
{
    nerve_dataset d = {0};
    double loss, acc;
    int rc = 0;
    if (nerve_model_text_data(m, NULL, &d) != NERVE_OK)
        rc = cli_fail(NULL);
    else if (d.n == 0) {
        fprintf(stderr, "nerve eval: the cfg holds out no text (validation=0); nothing to measure\n");
        rc = 1;
    } else if (nerve_evaluate(m, &d, &loss, &acc, NULL, 0) != NERVE_OK)
        rc = cli_fail("evaluation");
    else {
        size_t predicted = 0; /* positions with a label (the last chunk is padded) */
        for (size_t i = 0; i < (size_t)d.n * d.target_numel; i++)
            predicted += d.t[i] >= 0;
        printf("held-out text of %s: %zu characters predicted\n", nerve_model_config(m)->train_text,
               predicted);
        printf("test loss: %.4f (nats per character)\n", loss);
        printf("next-character accuracy: %.4f\n", acc);
        printf("bits per character: %.4f\n", loss / 0.69314718055994530942);
    }
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return rc;
}


/* A detection model: mAP at IoU 0.5 (VOC 2007 and all-point), COCO's mAP@[.5:.95], and the
 * AP of every class, on detections of score >= 0.005 after NMS at IoU 0.45. */
static int eval_detection(nerve_model *m, const nerve_dataset *d, const char *pr_svg)
{
    nerve_yolo1_config yc;
    nerve_yolo_config heads[8];
    nerve_ssd_config sc;
    nerve_frcnn_config fc;
    int v1 = nerve_model_yolo1(m, &yc), nh = v1 ? 0 : nerve_model_yolo_heads(m, heads, NULL, 8);
    int ssd = v1 || nh ? 0 : nerve_model_ssd(m, &sc, NULL, 0);
    int frcnn = nerve_model_frcnn(m, &fc);
    int classes = v1 ? yc.classes : ssd ? sc.classes : frcnn ? fc.classes : heads[0].classes;
    double *ap = calloc((size_t)classes, sizeof *ap);
    if (!ap)
        return cli_fail("evaluation");
    nerve_detection_metrics r;
    r.ap = ap;
    if (nerve_evaluate_detection_pr(m, d, 0.005f, 0.45f, &r, pr_svg) != NERVE_OK) {
        free(ap);
        return cli_fail("evaluation");
    }
    printf("samples: %d\n", d->n);
    printf("task: detect (%s; %d objects, %d detections kept)\n",
           v1 ? "loss yolo1" : ssd ? (ssd > 1 ? "[ssd] heads" : "[ssd] head") : frcnn ? "[fast_rcnn] head" : heads[0].region ? "[region] head" : nh > 1 ? "[yolo] heads" : "[yolo] head",
           r.truths, r.detections);
    printf("test mAP@0.5: %.4f (all-point), %.4f (VOC 2007 11-point); COCO mAP@[.5:.95]: %.4f\n",
           r.map50, r.map50_voc07, r.map_coco);
    const char *const *names = (const char *const *)d->names;
    for (int c = 0; c < classes; c++)
        if (!isnan(ap[c]))
            printf("  AP@0.5 %-16s %.4f\n", names && c < d->n_names ? names[c] : "", ap[c]);
    if (pr_svg)
        printf("precision-recall curves: %s%s\n", pr_svg,
               classes > 12 ? " (the first 12 classes that have objects: the plot's limit)" : "");
    free(ap);
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *images = NULL, *labels = NULL, *csv = NULL, *pr_svg = NULL, *v;
    double robust = -1;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--robust"))) {
            char *end;
            robust = strtod(v, &end);
            if (*end || end == v || !(robust >= 0 && robust < 1e6)) {
                fprintf(stderr, "nerve eval: --robust needs a radius >= 0, got '%s'\n", v);
                return 2;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--images")))
            images = v;
        else if ((v = cli_option_value(argc, argv, &i, "--labels")))
            labels = v;
        else if ((v = cli_option_value(argc, argv, &i, "--csv")))
            csv = v;
        else if ((v = cli_option_value(argc, argv, &i, "--pr")))
            pr_svg = v;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve eval: unknown option '%s' (nerve eval --help)\n", argv[i]);
            return 2;
        } else if (!ckpt)
            ckpt = argv[i];
        else {
            fprintf(stderr, "nerve eval: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "nerve eval: missing CKPT (usage: nerve eval CKPT [--images F --labels F | --csv F])\n");
        return 2;
    }
    if ((images != NULL) != (labels != NULL)) {
        fprintf(stderr, "nerve eval: --images and --labels go together\n");
        return 2;
    }
    nerve_model *m = nerve_model_load(ckpt);
    if (!m)
        return cli_fail(NULL);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_dataset d = {0};
    int st;
    if (nerve_model_vocab(m, NULL) > 0 && !images && !csv)
        return eval_text(m);
    if (images || csv)
        st = cli_load_data(&d, images, labels, csv, c->input_scale > 0 ? c->input_scale : 1.0f, -1);
    else
        st = nerve_config_load_data(c, NULL, &d);
    if (st != NERVE_OK) {
        nerve_model_free(m);
        return cli_fail(NULL);
    }
    nerve_metrics mt;
    int rc = 0;
    if (nerve_model_yolo1(m, NULL) || nerve_model_yolo_heads(m, NULL, NULL, 0) > 0 ||
        nerve_model_ssd(m, NULL, NULL, 0) > 0 || nerve_model_frcnn(m, NULL)) { /* a detector: mAP */
        rc = eval_detection(m, &d, pr_svg);
        nerve_dataset_free(&d);
        nerve_model_free(m);
        return rc;
    }
    if (pr_svg) {
        fprintf(stderr, "nerve eval: --pr plots a detector's precision-recall curves; %s is not a "
                        "detector\n", ckpt);
        nerve_dataset_free(&d);
        nerve_model_free(m);
        return 2;
    }
    if (nerve_evaluate_metrics(m, &d, &mt) != NERVE_OK) {
        rc = cli_fail("evaluation");
    } else {
        nerve_head_info h = nerve_model_head(m);
        printf("samples: %d\n", d.n);
        if (nerve_model_quantized(m))
            printf("int8 model: %d layers (dense, conv, residual adds) run in int8\n",
                   nerve_model_quantized(m));
        printf("task: %s (loss %s)\n", nerve_task_name(mt.task), h.loss ? h.loss : "none");
        cli_print_metrics(&mt, "test", 1, (const char *const *)d.names, d.n_names);
        nerve_metrics_free(&mt);
        if (robust >= 0) {
            nerve_attack a = nerve_attack_pgd((float)robust, 20, 2);
            double acc;
            if (nerve_attack_evaluate(m, &d, &a, 0, NULL, &acc) != NERVE_OK)
                rc = cli_fail("robust accuracy");
            else
                printf("test robust accuracy (PGD-20 Linf, 2 restarts, eps %g): %.4f\n", robust, acc);
        }
    }
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return rc;
}

/* Prints the top `top` classes of one sample: "CLASS [NAME] PROB, ...". */
static void print_top(const float *p, int k, int top, const char *const *names, int n_names)
{
    int used[64] = {0};
    if (top > k)
        top = k;
    for (int t = 0; t < top && t < 64; t++) {
        int best = -1;
        for (int c = 0; c < k; c++) {
            int taken = 0;
            for (int u = 0; u < t; u++)
                taken |= used[u] == c;
            if (!taken && (best < 0 || p[c] > p[best]))
                best = c;
        }
        used[t] = best;
        printf("%s%d", t ? ", " : "", best);
        if (names && best < n_names)
            printf(" %s", names[best]);
        printf(" %.4f", (double)p[best]);
    }
    printf("\n");
}

int cmd_predict(int argc, char **argv)
{
    const char *ckpt = NULL, *v;
    const char **files = calloc((size_t)(argc > 0 ? argc : 1), sizeof *files);
    int label_col = NERVE_CSV_NO_LABEL, top = 1, n_files = 0;
    if (!files)
        return 1;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--label-col"))) {
            char *end;
            label_col = (int)strtol(v, &end, 10);
            if (*end) {
                fprintf(stderr, "nerve predict: --label-col needs an integer, got '%s'\n", v);
                free(files);
                return 2;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--top"))) {
            if ((top = cli_parse_int("--top", v)) < 0 || top > 64) {
                fprintf(stderr, "nerve predict: --top is 1..64\n");
                free(files);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve predict: unknown option '%s' (nerve predict --help)\n", argv[i]);
            free(files);
            return 2;
        } else if (!ckpt)
            ckpt = argv[i];
        else
            files[n_files++] = argv[i];
    }
    if (!ckpt || !n_files) {
        fprintf(stderr, "nerve predict: usage: nerve predict CKPT FILE... [--top K] [--label-col K]\n");
        free(files);
        return 2;
    }
    int images = 1;
    for (int i = 0; i < n_files; i++)
        images &= cli_is_image_arg(files[i]);
    if (!images && n_files > 1) {
        fprintf(stderr, "nerve predict: several inputs must all be PNG/JPEG files or folders of them; "
                "give one IDX or CSV file\n");
        free(files);
        return 2;
    }
    nerve_model *m = nerve_model_load(ckpt);
    if (!m) {
        free(files);
        return cli_fail(NULL);
    }
    const nerve_net_config *c = nerve_model_config(m);
    nerve_dataset d = {0};
    char **paths = NULL, **file_names = NULL;
    int n_paths = 0, n_file_names = 0, st;
    if (images) {
        if (c->ndim != 3) {
            fprintf(stderr, "nerve predict: the model does not take images (its input is not "
                    "channels x height x width)\n");
            nerve_model_free(m);
            free(files);
            return 1;
        }
        nerve_image_options o = {c->dims[0], c->dims[1], c->dims[2], c->data.resize,
                                 c->input_scale * 255.0f};
        st = nerve_image_paths(files, n_files, &paths, &n_paths);
        if (st == NERVE_OK)
            st = nerve_dataset_load_images(&d, (const char *const *)paths, n_paths, &o);
    } else {
        int csv = ends_with(files[0], ".csv") || ends_with(files[0], ".CSV");
        st = cli_load_data(&d, csv ? NULL : files[0], NULL, csv ? files[0] : NULL,
                           c->input_scale > 0 ? c->input_scale : 1.0f, label_col);
    }
    free(files);
    if (st != NERVE_OK) {
        nerve_names_free(paths, n_paths);
        nerve_model_free(m);
        return cli_fail(NULL);
    }
    /* class names: the checkpoint's, else the cfg's names= file */
    int n_names = 0;
    const char *const *names = nerve_model_names(m, &n_names);
    if (!names && c->data.names[0] && nerve_names_load(c->data.names, &file_names, &n_file_names) == NERVE_OK) {
        names = (const char *const *)file_names;
        n_names = n_file_names;
    }
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    size_t k = nerve_shape_numel(nd - 1, dims + 1);
    int classify = nerve_model_head(m).task == NERVE_TASK_CLASSIFY && nd == 2 && k >= 2, rc = 0;
    if (classify || nerve_model_head(m).task != NERVE_TASK_CLASSIFY) {
        /* class probabilities (softmax of the scores), or another head's outputs as they are */
        float *p = malloc((d.n ? (size_t)d.n : 1) * k * sizeof(float));
        if (!p || nerve_predict_outputs(m, &d, p, NULL) != NERVE_OK)
            rc = cli_fail("predict");
        else
            for (int i = 0; i < d.n; i++) {
                if (paths)
                    printf("%s: ", paths[i]);
                if (classify)
                    print_top(p + (size_t)i * k, (int)k, top, names, n_names);
                else
                    for (size_t j = 0; j < k; j++)
                        printf("%.6g%c", (double)p[(size_t)i * k + j], j + 1 < k ? ',' : '\n');
            }
        free(p);
    } else {
        int *pred = malloc((size_t)(d.n ? d.n : 1) * sizeof(int));
        if (!pred || nerve_predict(m, &d, pred) != NERVE_OK)
            rc = cli_fail("predict");
        else
            for (int i = 0; i < d.n; i++)
                printf("%s%s%d\n", paths ? paths[i] : "", paths ? ": " : "", pred[i]);
        free(pred);
    }
    nerve_names_free(paths, n_paths);
    nerve_names_free(file_names, n_file_names);
    nerve_dataset_free(&d);
    nerve_model_free(m);
    return rc;
}

static void human(double v, char *buf, size_t n)
{
    if (v >= 1e9)
        snprintf(buf, n, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.2fK", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
}

int cmd_summary(int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "nerve summary: usage: nerve summary CFG\n");
        return 2;
    }
    nerve_model *m = nerve_model_load_cfg(argv[0]);
    if (!m)
        return cli_fail(NULL);
    int n = nerve_model_layer_count(m);
    printf("%-4s %-20s %-14s %-20s %14s %12s %12s\n", "#", "name", "type", "output", "parameters",
           "MACs", "FLOPs");
    double total_flops = 0, total_macs = 0;
    char shape[96], fl[32], mac[32];
    for (int i = 0; i < n; i++) {
        nerve_layer_info li;
        if (nerve_model_layer_info(m, i, &li) != NERVE_OK)
            continue;
        nerve_shape_str(li.ndim, li.dims, shape, sizeof shape);
        human(li.flops, fl, sizeof fl);
        human(li.macs, mac, sizeof mac);
        printf("%-4d %-20s %-14s %-20s %14zu %12s %12s\n", i, li.name, li.type, shape, li.params,
               mac, fl);
        total_flops += li.flops;
        total_macs += li.macs;
    }
    human(total_flops, fl, sizeof fl);
    printf("total FLOPs per sample (forward): %s (%.0f)\n", fl, total_flops);
    human(total_macs, mac, sizeof mac);
    printf("total multiply-accumulates per sample: %.0f (%s)\n", total_macs, mac);
    printf("total parameters: %zu\n", nerve_graph_param_count(nerve_model_graph(m)));
    nerve_model_free(m);
    return 0;
}
