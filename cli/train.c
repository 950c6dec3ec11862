/* nerve train CFG: fit a cfg-described model and report its test accuracy. */
#include "cli.h"
#include "../src/dist/dist_mpi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LN2 0.69314718055994530942 /* ln 2: nats to bits */

typedef struct progress_state {
    int tty;     /* stderr is a terminal: one line redrawn in place */
    int columns; /* its width */
    int quiet;
    int last_decile; /* plain-line mode prints at each tenth of an epoch */
    int last_epoch;
    int text_seq; /* characters per sample of a text model (0: not text) */
} progress_state;

/* The width of the terminal on fd: the kernel's (TIOCGWINSZ), else $COLUMNS, else 80;
 * never under 20. */
static int terminal_columns(int fd)
{
    struct winsize ws;
    int cols = 0;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        cols = ws.ws_col;
    else {
        const char *env = getenv("COLUMNS");
        char *end;
        long v = env ? strtol(env, &end, 10) : 0;
        cols = env && *env && !*end && v > 0 && v < 10000 ? (int)v : 80;
    }
    return cols < 20 ? 20 : cols;
}

static void format_eta(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 359999)
        s = 0;
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

/* The one-line bar of a terminal, at most width - 1 columns (the last column is left free,
 * so that no terminal wraps): "epoch E/N [####....] done/total loss L S/s ETA m:ss". The
 * parts that do not fit are dropped, the bar first shrinks (never under 5 cells). */
static void progress_line(const nerve_progress *p, int width, char *out, size_t n)
{
    char eta[32], head[64], count[64], loss[32], rate[32], left[48];
    format_eta(p->eta_seconds, eta, sizeof eta);
    snprintf(head, sizeof head, "epoch %d/%d ", p->epoch, p->epochs);
    snprintf(count, sizeof count, " %lld/%lld", (long long)p->done, (long long)p->total);
    snprintf(loss, sizeof loss, " loss %.4f", p->loss);
    snprintf(rate, sizeof rate, " %.0f/s", p->samples_per_sec);
    snprintf(left, sizeof left, p->done < p->total ? " ETA %s" : " done", eta);
    const char *parts[4] = {left, rate, loss, count}; /* dropped from the end of this list first */
    int keep = 4, max = width - 1;
    int fixed = (int)strlen(head) + 2;
    for (int i = 0; i < keep; i++)
        fixed += (int)strlen(parts[i]);
    while (keep > 0 && fixed + 5 > max)
        fixed -= (int)strlen(parts[--keep]);
    int cells = max - fixed;
    if (cells > 30)
        cells = 30;
    if (cells < 5)
        cells = 5;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    int fill = (int)(frac * cells);
    char bar[32];
    for (int i = 0; i < cells; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[cells] = '\0';
    snprintf(out, n, "%s[%s]%s%s%s%s", head, bar, keep > 3 ? count : "", keep > 2 ? loss : "",
             keep > 1 ? rate : "", keep > 0 ? left : "");
    if ((int)strlen(out) > max && max >= 0 && (size_t)max < n)
        out[max] = '\0'; /* a width under the head's own length: cut */
}

static void on_progress(const nerve_progress *p, void *user)
{
    progress_state *ps = user;
    if (ps->quiet)
        return;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (ps->tty) {
        /* redrawn in place, padded to its previous length; the last update of an epoch ends
         * the line, so that each epoch leaves one line in the scrollback */
        char line[512];
        progress_line(p, ps->columns, line, sizeof line);
        fprintf(stderr, "\r%-*s", ps->columns - 1, line);
        if (p->done >= p->total)
            fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    char eta[32];
    format_eta(p->eta_seconds, eta, sizeof eta);
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
        printf("epoch %3d  train %.4f bits/char", s->epoch, s->train_loss / LN2);
        if (!isnan(s->val_loss))
            printf("  held-out %.4f bits/char", s->val_loss / LN2);
        printf("  lr %.3g  %.1fs (%.0f chars/s)\n", (double)s->lr, s->seconds, s->samples_per_sec * ps->text_seq);
        fflush(stdout);
        return;
    }
    const char *metric = s->metric ? s->metric : "acc";
    printf("epoch %3d  train loss %.4f %s %.4f", s->epoch, s->train_loss, metric, s->train_metric);
    if (!isnan(s->val_loss))
        printf("  val loss %.4f %s %.4f", s->val_loss, metric, s->val_metric);
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

/* ---- run directories ------------------------------------------------------------------ */

/* 1: path is a directory with entries; 0: empty or absent; -1: not a directory. */
static int holds_files(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode))
        return -1;
    DIR *d = opendir(path);
    if (!d)
        return 1; /* unreadable: treat as taken */
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

static void dir_of(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* The directory of a new run: base when it is absent or empty, else the first of base-2,
 * base-3, ... that is (created here, so an earlier run is never written over). */
static int new_run_dir(const char *base, char *out, size_t n)
{
    char parent[1024];
    dir_of(base, parent, sizeof parent);
    if (cli_mkdirs(parent) != 0) {
        fprintf(stderr, "nerve: cannot create the directory %s: %s\n", parent, strerror(errno));
        return -1;
    }
    for (int k = 1; k < 10000; k++) {
        int len = k == 1 ? snprintf(out, n, "%s", base) : snprintf(out, n, "%s-%d", base, k);
        if (len < 0 || (size_t)len >= n) {
            fprintf(stderr, "nerve: the run directory name %s is too long\n", base);
            return -1;
        }
        if (mkdir(out, 0777) == 0)
            return 0; /* made here: no other run can have it */
        if (errno != EEXIST) {
            fprintf(stderr, "nerve: cannot create the run directory %s: %s\n", out, strerror(errno));
            return -1;
        }
        if (holds_files(out) == 0)
            return 0;
    }
    fprintf(stderr, "nerve: %s-2 ... %s-9999 all hold runs; pass --out DIR\n", base, base);
    return -1;
}

/* Creates and removes a file in dir, so that an unwritable directory or a full disk is
 * known before any training. */
static int probe_writable(const char *dir)
{
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/.nerve-write-probe-%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    int ok = fd >= 0 && write(fd, "\n", 1) == 1;
    int err = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (fd >= 0)
        unlink(probe);
    if (!ok) {
        fprintf(stderr, "nerve: cannot write in the run directory %s: %s\n", dir, strerror(err));
        return -1;
    }
    return 0;
}

/* 1 when a and b name the same directory. */
static int same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Chooses, creates and checks the run directory: --out DIR, else the resumed checkpoint's
 * directory, else a new runs/<cfg name>[-k]. */
static int choose_run_dir(const char *cfg, const char *out, const char *resume, int overwrite, char *dir,
                          size_t n)
{
    char resume_dir[1024] = "";
    if (resume)
        dir_of(resume, resume_dir, sizeof resume_dir);
    if (out || resume) {
        snprintf(dir, n, "%s", out ? out : resume_dir);
        int taken = holds_files(dir);
        if (taken < 0) {
            fprintf(stderr, "nerve: %s exists and is not a directory\n", dir);
            return -1;
        }
        if (taken && !overwrite && !(resume && same_dir(dir, resume_dir))) {
            fprintf(stderr, "nerve: %s already holds files (an earlier run?); pass --overwrite to write over "
                    "them, or another --out DIR\n", dir);
            return -1;
        }
        /* going on in the checkpoint's directory replaces DIR/model.safetensors: fine when
         * that is the checkpoint, not when it is another run's (resuming member-2 of a bag) */
        char own[1100];
        struct stat sa, sb;
        snprintf(own, sizeof own, "%s/model.safetensors", dir);
        if (resume && !overwrite && stat(own, &sa) == 0 && stat(resume, &sb) == 0 &&
            (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)) {
            fprintf(stderr, "nerve: resuming %s would write over %s, another checkpoint; pass --overwrite, or "
                    "--out DIR\n", resume, own);
            return -1;
        }
        if (cli_mkdirs(dir) != 0) {
            fprintf(stderr, "nerve: cannot create the run directory %s: %s\n", dir, strerror(errno));
            return -1;
        }
    } else {
        char base[1024];
        default_out_dir(cfg, base, sizeof base);
        if (overwrite) {
            snprintf(dir, n, "%s", base);
            if (cli_mkdirs(dir) != 0) {
                fprintf(stderr, "nerve: cannot create the run directory %s: %s\n", dir, strerror(errno));
                return -1;
            }
        } else if (new_run_dir(base, dir, n) != 0)
            return -1;
    }
    return probe_writable(dir);
}

/* ---- Ctrl-C --------------------------------------------------------------------------- */

static volatile sig_atomic_t interrupt_flag;

/* First SIGINT: ask nerve_fit to stop after the step in progress and save. Second: leave
 * at once; every file is written through a temporary renamed over it, so the last
 * complete checkpoint stays whole. Only async-signal-safe calls here. */
static void on_sigint(int sig)
{
    (void)sig;
    if (interrupt_flag) {
        static const char msg[] = "\nnerve: interrupted again: stopping now (the last checkpoint is whole)\n";
        ssize_t k = write(2, msg, sizeof msg - 1);
        (void)k;
        _exit(130);
    }
    interrupt_flag = 1;
    static const char msg[] = "\nnerve: interrupt: stopping after the step in progress, with a checkpoint "
                              "(Ctrl-C again to stop at once)\n";
    ssize_t k = write(2, msg, sizeof msg - 1);
    (void)k;
}

static void catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
}

/* Prints s, single-quoted for a POSIX shell when it holds anything but safe characters. */
static void print_shell_word(const char *s)
{
    if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./,:@%") == strlen(s)) {
        fputs(s, stdout);
        return;
    }
    putchar('\'');
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*s);
    putchar('\'');
}

/* The command that continues an interrupted run exactly (the same thread count keeps the
 * sums in the same order). */
static void print_resume_command(const char *cfg, const char *ckpt, int epochs, int freeze, int quiet)
{
    printf("resume with: ");
    print_shell_word(cli_program ? cli_program : "nerve");
    printf(" train ");
    print_shell_word(cfg);
    printf(" --resume ");
    print_shell_word(ckpt);
    if (epochs)
        printf(" --epochs %d", epochs);
    if (freeze)
        printf(" --freeze %d", freeze);
    if (quiet)
        printf(" --quiet");
    printf(" --threads %d\n", nerve_threads());
}

/* ---- checks that name the file ------------------------------------------------------ */

/* A class label the model's output cannot express is an error naming the file and the
 * sample (counting from 0, in file order: checked before the validation split). */
static int check_labels(nerve_model *m, const nerve_dataset *d, const char *file)
{
    if (!d->y || d->target != NERVE_TARGET_CLASS || nerve_model_labels(m) < 0)
        return 0;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    int classes = nd >= 2 ? dims[1] : 1, limit = classes > 1 ? classes : 2;
    for (int i = 0; i < d->n; i++)
        if (d->y[i] >= (float)limit) {
            fprintf(stderr, "nerve: %s: sample %d (counting from 0) has label %g, but the model's output has %d "
                    "class%s (labels 0..%d)\n", file, i, (double)d->y[i], limit, limit == 1 ? "" : "es",
                    limit - 1);
            return -1;
        }
    return 0;
}

/* Prints what differs between a checkpoint's cfg and the model's (resuming with --force). */
static void print_cfg_changes(const char *ckpt, nerve_model *m)
{
    nerve_st_file *f = nerve_st_open(ckpt);
    const char *saved = f ? nerve_st_metadata(f, "nerve.cfg") : NULL;
    char diff[2048];
    int k = saved && nerve_model_cfg_text(m) ? nerve_cfg_diff(saved, nerve_model_cfg_text(m), diff, sizeof diff)
                                             : 0;
    if (k > 0)
        printf("resuming with a changed cfg (--force): %s\n", diff);
    nerve_st_close(f);
}

/* dist: data-parallel training under mpirun (NULL: this process alone); rank 0 alone
 * creates the run directory, writes the files and prints to stdout. */
static int train_main(int argc, char **argv, const nerve_dist *dist)
{
    int rank = dist ? dist->rank : 0;
    const char *cfg = NULL, *out = NULL, *resume = NULL, *init = NULL, *v;
    int epochs = 0, quiet = 0, freeze = 0, bag = 0, overwrite = 0, force = 0;
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
        else if (!strcmp(argv[i], "--overwrite"))
            overwrite = 1;
        else if (!strcmp(argv[i], "--force"))
            force = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve train: unknown option '%s' (nerve train --help)\n", argv[i]);
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
    if (force && !resume) {
        fprintf(stderr, "nerve train: --force accepts a changed cfg when resuming; it needs --resume CKPT\n");
        return 2;
    }
    if (bag && dist) {
        fprintf(stderr, "nerve train: --bag trains independent models; under mpirun, run one nerve per member\n");
        return 2;
    }
    if (!bag)
        catch_sigint(); /* early: a Ctrl-C while the data loads stops before training */
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (!m)
        return cli_fail(NULL);
    char dir[1024] = "", ckpt[1100], log[1100], plot[1100];
    if (rank == 0 && choose_run_dir(cfg, out, resume, overwrite, dir, sizeof dir) != 0) {
        nerve_model_free(m);
        return 1;
    }
    printf("run directory: %s\n", dir);
    fflush(stdout);
    const nerve_net_config *c = nerve_model_config(m);
    nerve_dataset train = {0}, test = {0}, val = {0};
    int has_test = c->test_images[0] || c->test_csv[0] || c->data.test_folder[0] ||
                   c->data.test_list[0] || c->data.test_cifar[0];
    int text = c->train_text[0] != 0;
    if (text && bag) {
        fprintf(stderr, "nerve train: --bag resamples independent samples; a text stream has none\n");
        nerve_model_free(m);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* a text's held-out part is its end, cut before it is split into streams */
    if ((text ? nerve_model_text_data(m, &train, &val)
              : nerve_config_load_data(c, &train, has_test ? &test : NULL)) != NERVE_OK) {
        nerve_model_free(m);
        return cli_fail(cfg);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("loaded %d training and %d test samples in %.2fs\n", train.n, test.n,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    int rc = 0;
    if (check_labels(m, &train, c->train_csv[0] ? c->train_csv : c->train_labels) != 0 ||
        (has_test && check_labels(m, &test, c->test_csv[0] ? c->test_csv : c->test_labels) != 0)) {
        rc = 1;
        goto done;
    }
    if (train.n_names && nerve_model_set_names(m, train.n_names, (const char *const *)train.names)) {
        rc = cli_fail(cfg);
        goto done;
    }
    if (!text && c->validation > 0 && nerve_dataset_split(&train, &val, c->validation, c->seed) != NERVE_OK) {
        rc = cli_fail(cfg);
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
        if (init && loaded == 0) {
            fprintf(stderr, "nerve: --init %s: none of its tensors matches one of %s by name and shape (all %d "
                    "kept their fresh values): a checkpoint of another model?\n", init, cfg, skipped);
            rc = 1;
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
    if (resume && force)
        print_cfg_changes(resume, m);
    progress_state ps = {isatty(2), terminal_columns(2), quiet, 0, 0, text ? c->seq : 0};
    nerve_fit_options fo = {0};
    fo.checkpoint = rank == 0 ? ckpt : NULL;
    fo.resume = resume;
    fo.log_csv = rank == 0 ? log : NULL;
    fo.plot_svg = rank == 0 ? plot : NULL;
    fo.dist = dist;
    fo.max_epochs = epochs;
    fo.on_progress = on_progress;
    fo.on_epoch = on_epoch;
    fo.user = &ps;
    fo.progress_every = 20;
    fo.allow_cfg_change = force;
    fo.interrupt = &interrupt_flag;
    if (interrupt_flag) {
        fprintf(stderr, "nerve: interrupted before training began; nothing was written\n");
        rc = 130;
        goto done;
    }
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
        printf("training %s: %zu parameters, %d training samples, %d validation, batch %d, %s, %d threads%s\n",
               cfg, nerve_graph_param_count(nerve_model_graph(m)), train.n, val.n, c->batch,
               nerve_optim_name(c->optim.type), nerve_threads(), dist ? " per rank" : "");
    if (dist)
        printf("data-parallel: %d ranks, %d of the global batch of %d samples each (MPI)\n", dist->size,
               (c->batch + dist->size - 1) / dist->size, c->batch);
    fflush(stdout);
    nerve_fit_result res;
    if (nerve_fit(m, &train, val.n ? &val : NULL, &fo, &res) != NERVE_OK) {
        char context[2300];
        if (resume)
            snprintf(context, sizeof context, "training %s (resumed from %s) stopped", cfg, resume);
        else
            snprintf(context, sizeof context, "training %s stopped", cfg);
        rc = cli_fail(context);
        goto done;
    }
    if (res.interrupted) {
        if (res.interrupted_batch > 0)
            printf("interrupted in epoch %d after %d batches; checkpoint %s\n", res.interrupted_epoch,
                   res.interrupted_batch, ckpt);
        else
            printf("interrupted before epoch %d; checkpoint %s\n", res.interrupted_epoch, ckpt);
        if (dist)
            printf("(under mpirun, with any number of ranks)\n");
        print_resume_command(cfg, ckpt, epochs, freeze, quiet);
        rc = 130;
        goto done;
    }
    if (rank > 0) /* the test set is rank 0's to report */
        goto done;
    printf("trained %d epochs in %.1fs%s; checkpoint %s\n", res.epochs_run, res.seconds,
           res.stopped_early ? " (stopped early)" : "", ckpt);
    if (dist)
        printf("rank 0: backward %.2fs; waiting for the ranks' sums %.2fs (not hidden behind backward); "
               "gradients in %d bucket%s\n", res.backward_seconds, res.dist_wait_seconds, res.dist_buckets,
               res.dist_buckets == 1 ? "" : "s");
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
        nerve_metrics mt;
        if (nerve_evaluate_metrics(m, &test, &mt) != NERVE_OK) {
            rc = cli_fail("evaluation");
            goto done;
        }
        cli_print_metrics(&mt, "test", 0, (const char *const *)test.names, test.n_names);
        nerve_metrics_free(&mt);
    }
done:
    nerve_dataset_free(&train);
    nerve_dataset_free(&val);
    nerve_dataset_free(&test);
    nerve_model_free(m);
    return rc;
}

/* Under mpirun SIGINT stops the whole job at once; SIGUSR1, which mpirun forwards to every
 * rank, is the interrupt that finishes the step and saves (docs/distributed.md). */
static void catch_sigusr1(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
}

int cmd_train(int argc, char **argv)
{
    nerve_dist dist;
    int mpi = nerve_mpi_start(&dist);
    if (mpi < 0) {
        cli_fail(NULL);
        nerve_mpi_finish(1);
        return 1;
    }
    if (mpi) {
        catch_sigusr1();
        if (dist.rank > 0 && !freopen("/dev/null", "w", stdout)) {
            fprintf(stderr, "nerve: rank %d: cannot silence stdout\n", dist.rank);
            nerve_mpi_finish(1);
            return 1;
        }
    }
    int rc = train_main(argc, argv, mpi ? &dist : NULL);
    fflush(stdout);
    /* an interrupt stops every rank at the same step (the ranks agree on it): a clean end */
    nerve_mpi_finish(rc == 130 ? 0 : rc);
    return rc;
}
