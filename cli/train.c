/* nerve train CFG: fit a cfg-described model and report its test accuracy. */
#include "cli.h"

#include <math.h>

#define LN2 0.69314718055994530942 /* ln 2: nats to bits */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct progress_state {
    int tty;
    int quiet;
    int last_decile; /* plain-line mode prints at each tenth of an epoch */
    int last_epoch;
    int text_seq; /* characters per sample of a text model (0: not text) */
} progress_state;

static void format_eta(double s, char *buf, size_t n)
{
    int t = (int)(s + 0.5);
    snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

static void on_progress(const nerve_progress *p, void *user)
{
    progress_state *ps = user;
    if (ps->quiet)
        return;
    char eta[32];
    format_eta(p->eta_seconds, eta, sizeof eta);
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (ps->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %s ", p->epoch, p->epochs,
                bar, (long long)p->done, (long long)p->total, p->loss, p->samples_per_sec, eta);
        if (p->done == p->total)
            fprintf(stderr, "\r%*s\r", 110, "");
        fflush(stderr);
        return;
    }
    int decile = (int)(frac * 10);
    if (p->epoch != ps->last_epoch) {
        ps->last_epoch = p->epoch;
        ps->last_decile = 0;
    }
    if (decile > ps->last_decile && p->done < p->total) {
        ps->last_decile = decile;
        fprintf(stderr, "epoch %d/%d  %3d%%  %lld/%lld  loss %.4f  %.0f samples/s  ETA %s\n", p->epoch,
                p->epochs, decile * 10, (long long)p->done, (long long)p->total, p->loss, p->samples_per_sec,
                eta);
    }
}

static void on_epoch(const nerve_epoch_stats *s, void *user)
{
    const progress_state *ps = user;
    if (ps->text_seq) { /* a language model: losses in bits per character */
        printf("epoch %3d  train %.4f bits/char acc %.4f", s->epoch, s->train_loss / LN2, s->train_acc);
        if (!isnan(s->val_loss))
            printf("  held-out %.4f bits/char acc %.4f", s->val_loss / LN2, s->val_acc);
        printf("  lr %.3g  %.1fs (%.0f chars/s)\n", (double)s->lr, s->seconds, s->samples_per_sec * ps->text_seq);
        fflush(stdout);
        return;
    }
    printf("epoch %3d  train loss %.4f acc %.4f", s->epoch, s->train_loss, s->train_acc);
    if (!isnan(s->val_loss))
        printf("  val loss %.4f acc %.4f", s->val_loss, s->val_acc);
    printf("  lr %.3g  %.1fs (%.0f samples/s)\n", (double)s->lr, s->seconds, s->samples_per_sec);
    fflush(stdout);
}

/* runs/<cfg file name without directory and extension> */
static void default_out_dir(const char *cfg, char *buf, size_t n)
{
    const char *base = strrchr(cfg, '/');
    base = base ? base + 1 : cfg;
    size_t len = strlen(base);
    if (len > 4 && !strcmp(base + len - 4, ".cfg"))
        len -= 4;
    snprintf(buf, n, "runs/%.*s", (int)len, base);
}

int cmd_train(int argc, char **argv)
{
    const char *cfg = NULL, *out = NULL, *resume = NULL, *init = NULL, *v;
    int epochs = 0, quiet = 0, freeze = 0, bag = 0;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--out")))
            out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--resume")))
            resume = v;
        else if ((v = cli_option_value(argc, argv, &i, "--epochs"))) {
            if ((epochs = cli_parse_int("--epochs", v)) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--init")))
            init = v;
        else if ((v = cli_option_value(argc, argv, &i, "--freeze"))) {
            if ((freeze = cli_parse_int("--freeze", v)) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--bag"))) {
            if ((bag = cli_parse_int("--bag", v)) < 0)
                return 2;
        } else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve train: unknown option '%s' (see nerve help)\n", argv[i]);
            return 2;
        } else if (!cfg)
            cfg = argv[i];
        else {
            fprintf(stderr, "nerve train: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!cfg) {
        fprintf(stderr, "nerve train: missing CFG (usage: nerve train CFG [options])\n");
        return 2;
    }
    if (bag && (resume || init)) {
        fprintf(stderr, "nerve train: --bag trains fresh members; it does not combine with --resume or --init\n");
        return 2;
    }
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (!m)
        return cli_fail(NULL);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_dataset train = {0}, test = {0}, val = {0};
    int has_test = c->test_images[0] || c->test_csv[0], text = c->train_text[0] != 0;
    if (text && bag) {
        fprintf(stderr, "nerve train: --bag resamples independent samples; a text stream has none\n");
        nerve_model_free(m);
        return 2;
    }
    /* a text's held-out part is its end, cut before it is split into streams */
    if ((text ? nerve_model_text_data(m, &train, &val)
              : nerve_config_load_data(c, &train, has_test ? &test : NULL)) != NERVE_OK) {
        nerve_model_free(m);
        return cli_fail(cfg);
    }
    int rc = 0;
    if (!text && c->validation > 0 && nerve_dataset_split(&train, &val, c->validation, c->seed) != NERVE_OK) {
        rc = cli_fail(cfg);
        goto done;
    }
    char dir[1024], ckpt[1100], log[1100], plot[1100];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        default_out_dir(cfg, dir, sizeof dir);
    if (cli_mkdirs(dir) != 0) {
        fprintf(stderr, "nerve: cannot create the output directory %s\n", dir);
        rc = 1;
        goto done;
    }
    if (bag) {
        rc = cli_train_bag(cfg, dir, bag, &train, &val, has_test ? &test : NULL, epochs);
        goto done;
    }
    if (init || freeze) {
        int loaded = 0, skipped = 0, frozen = 0;
        if ((init && nerve_model_load_matching(m, init, 1, &loaded, &skipped) != NERVE_OK) ||
            (frozen = nerve_model_freeze(m, freeze)) < 0) {
            rc = cli_fail(init ? init : cfg);
            goto done;
        }
        if (init)
            printf("initialised from %s: %d tensors loaded, %d kept (absent or of another shape)\n", init,
                   loaded, skipped);
        if (freeze)
            printf("froze the first %d layers (%d parameter tensors)\n", freeze, frozen);
    }
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", dir);
    snprintf(log, sizeof log, "%s/log.csv", dir);
    snprintf(plot, sizeof plot, "%s/curves.svg", dir);
    progress_state ps = {isatty(2), quiet, 0, 0, text ? c->seq : 0};
    nerve_fit_options fo = {0};
    fo.checkpoint = ckpt;
    fo.resume = resume;
    fo.log_csv = log;
    fo.plot_svg = plot;
    fo.max_epochs = epochs;
    fo.on_progress = on_progress;
    fo.on_epoch = on_epoch;
    fo.user = &ps;
    fo.progress_every = 20;
    size_t held_out = 0; /* bytes: the predicted positions (labelled targets) and the first */
    for (size_t i = 0; text && i < (size_t)val.n * val.target_numel; i++)
        held_out += val.t[i] >= 0;
    if (text)
        printf("training %s on %s: %zu parameters, vocabulary %d bytes, %d streams of %d-character chunks "
               "(%d steps per epoch), %zu characters held out, %s, %d threads\n",
               cfg, c->train_text, nerve_graph_param_count(nerve_model_graph(m)), nerve_model_vocab(m, NULL),
               c->batch, c->seq, train.n / c->batch, held_out ? held_out + 1 : 0, nerve_optim_name(c->optim.type),
               nerve_threads());
    else
        printf("training %s: %zu parameters, %d training samples, %d validation, batch %d, %s, %d threads\n", cfg,
               nerve_graph_param_count(nerve_model_graph(m)), train.n, val.n, c->batch,
               nerve_optim_name(c->optim.type), nerve_threads());
    fflush(stdout);
    nerve_fit_result res;
    if (nerve_fit(m, &train, val.n ? &val : NULL, &fo, &res) != NERVE_OK) {
        rc = cli_fail("training stopped");
        goto done;
    }
    printf("trained %d epochs in %.1fs%s; checkpoint %s\n", res.epochs_run, res.seconds,
           res.stopped_early ? " (stopped early)" : "", ckpt);
    if (val.n)
        printf("best validation loss %.4f at epoch %d (weights restored)\n", res.best_val_loss, res.best_epoch);
    if (text && val.n) {
        double loss, acc;
        if (nerve_evaluate(m, &val, &loss, &acc, NULL, 0) != NERVE_OK) {
            rc = cli_fail("evaluation");
            goto done;
        }
        printf("held-out bits per character: %.4f (next-character accuracy %.4f)\n", loss / LN2, acc);
    }
    if (has_test) {
        double loss, acc;
        if (nerve_evaluate(m, &test, &loss, &acc, NULL, 0) != NERVE_OK) {
            rc = cli_fail("evaluation");
            goto done;
        }
        printf("test loss: %.4f\n", loss);
        printf("test accuracy: %.4f\n", acc);
    }
done:
    nerve_dataset_free(&train);
    nerve_dataset_free(&val);
    nerve_dataset_free(&test);
    nerve_model_free(m);
    return rc;
}
