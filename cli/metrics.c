/* Printing the metrics that apply to a model's task (nerve train's test figures, nerve eval). */
#include "cli.h"

#include <math.h>
#include <stdio.h>

static void print_confusion(const nerve_metrics *mt, const char *const *names, int n_names)
{
    int k = mt->n_classes;
    printf("confusion matrix (rows: true class, columns: predicted)\n      ");
    for (int j = 0; j < k; j++)
        printf("%8d", j);
    printf("\n");
    for (int i = 0; i < k; i++) {
        printf("%6d", i);
        for (int j = 0; j < k; j++)
            printf("%8lld", (long long)mt->confusion[(size_t)i * k + j]);
        if (names && i < n_names)
            printf("  %s", names[i]);
        printf("\n");
    }
}

static void print_per_class(const nerve_metrics *mt, const char *const *names, int n_names, int iou)
{
    printf("%-6s %-16s %10s %10s %10s%s\n", "class", "name", "precision", "recall", "F1", iou ? "        IoU" : "");
    for (int c = 0; c < mt->n_classes; c++) {
        double p, r, f1;
        nerve_metrics_class(mt, c, &p, &r, &f1);
        printf("%-6d %-16.16s %10.4f %10.4f %10.4f", c, names && c < n_names ? names[c] : "-", p, r, f1);
        if (iou) {
            /* IoU = TP / (TP + FP + FN) = F1 / (2 - F1) */
            printf(" %10.4f", isnan(f1) ? NAN : f1 / (2 - f1));
        }
        printf("\n");
    }
}

void cli_print_metrics(const nerve_metrics *mt, const char *set, int detail, const char *const *names,
                       int n_names)
{
    printf("%s loss: %.4f\n", set, nerve_metrics_loss(mt));
    switch (mt->task) {
    case NERVE_TASK_CLASSIFY:
        if (detail) {
            print_confusion(mt, names, n_names);
            print_per_class(mt, names, n_names, 0);
            printf("%s macro F1: %.4f\n", set, nerve_metrics_macro_f1(mt));
        }
        if (mt->k < mt->n_classes)
            printf("%s top-%d accuracy: %.4f\n", set, mt->k, nerve_metrics_top_k(mt));
        printf("%s accuracy: %.4f\n", set, nerve_metrics_accuracy(mt));
        break;
    case NERVE_TASK_SEGMENT:
    case NERVE_TASK_BINARY_MASK:
        if (detail)
            print_per_class(mt, names, n_names, 1);
        printf("%s pixel accuracy: %.4f\n", set, nerve_metrics_accuracy(mt));
        printf("%s mean IoU: %.4f\n", set, nerve_metrics_mean_iou(mt));
        break;
    case NERVE_TASK_REGRESS:
        printf("%s MSE: %.6g\n", set, nerve_metrics_mse(mt));
        printf("%s MAE: %.6g\n", set, nerve_metrics_mae(mt));
        printf("%s R2: %.4f\n", set, nerve_metrics_r2(mt));
        break;
    case NERVE_TASK_RECONSTRUCT: {
        printf("%s MSE: %.6f\n", set, nerve_metrics_mse(mt));
        printf("%s PSNR: %.2f dB (peak 1)\n", set, nerve_metrics_psnr(mt, 1.0));
        double noisy = nerve_metrics_noisy_mse(mt);
        if (!isnan(noisy))
            printf("%s noisy-input MSE: %.6f (PSNR %.2f dB); output / input MSE: %.3f\n", set, noisy,
                   10.0 * log10(1.0 / noisy), nerve_metrics_mse(mt) / noisy);
        break;
    }
    case NERVE_TASK_LANGUAGE: printf("%s bits per character: %.4f\n", set, nerve_metrics_bpc(mt)); break;
    default: break;
    }
}
