/* nerve ensemble CKPT...: evaluate models and their average; nerve train CFG --bag K:
 * train K members on bootstrap resamples (bagging). */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_models(nerve_model **models, int k)
{
    for (int i = 0; i < k; i++)
        nerve_model_free(models[i]);
    free(models);
}

/* Prints each member's accuracy, then the ensemble's loss and accuracy. */
static int report_ensemble(nerve_model **models, int k, const nerve_dataset *d, int tta_crop)
{
    double *member = calloc((size_t)k, sizeof(double));
    double loss, acc;
    if (!member || nerve_ensemble_evaluate(models, k, d, &loss, &acc, member) != NERVE_OK) {
        free(member);
        return cli_fail("ensemble");
    }
    for (int i = 0; i < k; i++) {
        printf("member %d accuracy: %.4f", i + 1, member[i]);
        double tl, ta;
        if (tta_crop > 0) {
            if (nerve_evaluate_tta(models[i], d, tta_crop, &tl, &ta) != NERVE_OK) {
                free(member);
                return cli_fail("test-time augmentation");
            }
            printf("  with 10-view test-time augmentation (crop %d): %.4f", tta_crop, ta);
        }
        printf("\n");
    }
    free(member);
    printf("ensemble of %d (averaged softmax outputs), %d samples\n", k, d->n);
    printf("test loss: %.4f\n", loss);
    printf("test accuracy: %.4f\n", acc);
    return 0;
}

int cmd_ensemble(int argc, char **argv)
{
    const char *images = NULL, *labels = NULL, *csv = NULL, *v;
    int tta = 0, k = 0;
    nerve_model **models = calloc((size_t)(argc > 0 ? argc : 1), sizeof *models);
    if (!models)
        return 1;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--images")))
            images = v;
        else if ((v = cli_option_value(argc, argv, &i, "--labels")))
            labels = v;
        else if ((v = cli_option_value(argc, argv, &i, "--csv")))
            csv = v;
        else if ((v = cli_option_value(argc, argv, &i, "--tta"))) {
            if ((tta = cli_parse_int("--tta", v)) < 0) {
                free_models(models, k);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve ensemble: unknown option '%s' (nerve ensemble --help)\n", argv[i]);
            free_models(models, k);
            return 2;
        } else if (!(models[k++] = nerve_model_load(argv[i]))) {
            free_models(models, k);
            return cli_fail(NULL);
        }
    }
    if (k < 1 || (images != NULL) != (labels != NULL)) {
        fprintf(stderr, "nerve ensemble: usage: nerve ensemble CKPT [CKPT...] [--images F --labels F | "
                        "--csv F] [--tta CROP]\n");
        free_models(models, k);
        return 2;
    }
    const nerve_net_config *c = nerve_model_config(models[0]);
    nerve_dataset d = {0};
    int st = images || csv ? cli_load_data(&d, images, labels, csv, c->input_scale > 0 ? c->input_scale : 1.0f, -1)
                           : nerve_config_load_data(c, NULL, &d);
    int rc = st != NERVE_OK ? cli_fail(NULL) : report_ensemble(models, k, &d, tta);
    nerve_dataset_free(&d);
    free_models(models, k);
    return rc;
}

/* ---- bagging -------------------------------------------------------------------------- */

static void on_member_epoch(const nerve_epoch_stats *s, void *user)
{
    const int *member = user;
    printf("member %d epoch %3d  train loss %.4f acc %.4f", *member, s->epoch, s->train_loss, s->train_acc);
    if (!isnan(s->val_loss))
        printf("  val loss %.4f acc %.4f", s->val_loss, s->val_acc);
    printf("\n");
    fflush(stdout);
}

/* Member k (1-based): a fresh model from the cfg trained on the bootstrap resample seeded
 * seed + k of train; its checkpoint is dir/member-k.safetensors. */
static nerve_model *train_member(const char *cfg, const char *dir, int k, const nerve_dataset *train,
                                 const nerve_dataset *val, int epochs)
{
    nerve_model *m = nerve_model_load_cfg(cfg);
    nerve_dataset boot = {0};
    if (!m || nerve_dataset_bootstrap(train, &boot, nerve_model_config(m)->seed + (uint64_t)k) != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/member-%d.safetensors", dir, k);
    nerve_fit_options fo = {0};
    fo.checkpoint = ckpt;
    fo.max_epochs = epochs;
    fo.on_epoch = on_member_epoch;
    fo.user = &k;
    int st = nerve_fit(m, &boot, val && val->n ? val : NULL, &fo, NULL);
    nerve_dataset_free(&boot);
    if (st != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    printf("member %d: checkpoint %s\n", k, ckpt);
    fflush(stdout);
    return m;
}

int cli_train_bag(const char *cfg, const char *dir, int bag, const nerve_dataset *train, const nerve_dataset *val,
                  const nerve_dataset *test, int epochs)
{
    nerve_model **models = calloc((size_t)bag, sizeof *models);
    if (!models)
        return 1;
    printf("bagging %d members of %s on bootstrap resamples of %d training samples\n", bag, cfg, train->n);
    int rc = 0;
    for (int k = 1; k <= bag && rc == 0; k++)
        if (!(models[k - 1] = train_member(cfg, dir, k, train, val, epochs)))
            rc = cli_fail("training stopped");
    if (rc == 0 && test && test->n > 0)
        rc = report_ensemble(models, bag, test, 0);
    free_models(models, bag);
    return rc;
}
