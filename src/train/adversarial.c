/* Adversarial examples and robust training (COURSE.md §11): FGSM, PGD under the L-infinity
 * and L2 norms with random starts and restarts, clean and robust accuracy, and the training
 * steps of PGD adversarial training (Madry et al. 2018) and TRADES (Zhang et al. 2019).
 *
 * Every attack reads the gradient of a loss with respect to the input through
 * nerve_backward_seeded(..., NERVE_BACKWARD_INPUTS_ONLY): the parameters' gradients are not
 * computed (nor disturbed) and the data-parallel grad hook does not run, so an attack may
 * sit inside a training step. */
#include "adversarial.h"

#include <math.h>
#include <string.h>

nerve_attack nerve_attack_fgsm(float eps)
{
    nerve_attack a = {NERVE_NORM_LINF, eps, 0, 0.0f, 1, 0, 0.0f, 1.0f, 1};
    return a;
}

nerve_attack nerve_attack_pgd(float eps, int steps, int restarts)
{
    nerve_attack a = {NERVE_NORM_LINF, eps, steps, 0.0f, restarts, 1, 0.0f, 1.0f, 1};
    return a;
}

static int check_attack(const nerve_attack *a)
{
    if (!a)
        return nerve_set_error(NERVE_ERR_ARG, "attack: null options");
    if (a->norm != NERVE_NORM_LINF && a->norm != NERVE_NORM_L2)
        return nerve_set_error(NERVE_ERR_ARG, "attack: unknown norm %d", a->norm);
    if (!(a->eps >= 0) || !isfinite(a->eps))
        return nerve_set_error(NERVE_ERR_ARG, "attack: eps must be finite and >= 0, got %g", (double)a->eps);
    if (a->steps < 0 || a->steps > 100000 || a->restarts < 1 || a->restarts > 1000)
        return nerve_set_error(NERVE_ERR_ARG, "attack: steps (%d) must be 0..100000 and restarts (%d) 1..1000",
                               a->steps, a->restarts);
    if (!isfinite(a->step) || !(a->lo < a->hi) || !isfinite(a->lo) || !isfinite(a->hi))
        return nerve_set_error(NERVE_ERR_ARG, "attack: the step must be finite and the range lo < hi, got "
                               "step %g, range [%g, %g]", (double)a->step, (double)a->lo, (double)a->hi);
    return NERVE_OK;
}

/* The class-index label node of a classifier, or an error naming what is wrong. */
static int classifier_nodes(nerve_model *m, int *input, int *labels, int *logits, int *loss)
{
    nerve_head_info h = nerve_model_head(m);
    nerve_graph *g = nerve_model_graph(m);
    *input = nerve_model_input(m);
    *labels = nerve_model_labels(m);
    *logits = nerve_model_output(m);
    *loss = nerve_model_loss(m);
    int nd, dims[NERVE_MAX_DIMS];
    if (h.task != NERVE_TASK_CLASSIFY || !h.logits || *labels < 0 || *loss < 0 ||
        nerve_node_shape(g, *labels, &nd, dims) < 0 || nd != 1 ||
        nerve_node_shape(g, *logits, &nd, dims) < 0 || nd != 2)
        return nerve_set_error(NERVE_ERR_ARG, "attacks need a classifier with class scores ([softmax] with "
                               "class labels); this model's head solves '%s'", nerve_task_name(h.task));
    if (!nerve_graph_is_compiled(g))
        return nerve_set_error(NERVE_ERR_STATE, "attack: compile the model first");
    return NERVE_OK;
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The gradient g[0..D) turned into the step direction: its sign (L-infinity) or g / ||g||
 * (L2; zero stays zero). */
static void direction(int norm, float *g, size_t d)
{
    if (norm == NERVE_NORM_LINF) {
        for (size_t i = 0; i < d; i++)
            g[i] = g[i] > 0 ? 1.0f : g[i] < 0 ? -1.0f : 0.0f;
        return;
    }
    double ss = 0;
    for (size_t i = 0; i < d; i++)
        ss += (double)g[i] * g[i];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (size_t i = 0; i < d; i++)
        g[i] *= inv;
}

/* x := the point of the ball around x0 nearest to x (L2: scaled towards x0), then clamped
 * to the range (the range comes last: x0 lies in it, so the result lies in both). */
static void project(const nerve_attack *a, float *x, const float *x0, size_t d)
{
    if (a->norm == NERVE_NORM_LINF) {
        for (size_t i = 0; i < d; i++)
            x[i] = clampf(clampf(x[i], x0[i] - a->eps, x0[i] + a->eps), a->lo, a->hi);
        return;
    }
    double ss = 0;
    for (size_t i = 0; i < d; i++)
        ss += (double)(x[i] - x0[i]) * (x[i] - x0[i]);
    float s = ss > (double)a->eps * a->eps ? (float)(a->eps / sqrt(ss)) : 1.0f;
    for (size_t i = 0; i < d; i++)
        x[i] = clampf(x0[i] + (x[i] - x0[i]) * s, a->lo, a->hi);
}

/* A uniform point of the ball around x0 (L2: a uniform direction at radius eps u^(1/d)). */
static void random_start(const nerve_attack *a, nerve_rng *rng, float *x, const float *x0, size_t d)
{
    if (a->norm == NERVE_NORM_LINF) {
        for (size_t i = 0; i < d; i++)
            x[i] = x0[i] + a->eps * (2.0f * nerve_rng_uniform(rng) - 1.0f);
    } else {
        double ss = 0;
        for (size_t i = 0; i < d; i++) {
            x[i] = nerve_rng_normal(rng);
            ss += (double)x[i] * x[i];
        }
        double r = a->eps * pow(nerve_rng_uniform(rng), 1.0 / (double)d) / (ss > 0 ? sqrt(ss) : 1.0);
        for (size_t i = 0; i < d; i++)
            x[i] = x0[i] + (float)(x[i] * r);
    }
    project(a, x, x0, d);
}

int adv_scratch_init(adv_scratch *s, int max_n, size_t d, int classes)
{
    memset(s, 0, sizeof *s);
    size_t values = d * (size_t)max_n, scores = (size_t)classes * (size_t)max_n;
    s->x0 = nerve_xalloc_floats(values);
    s->best = nerve_xalloc_floats(values);
    s->seed = nerve_xalloc_floats(scores);
    s->clean_p = nerve_xalloc_floats(scores);
    s->fooled = nerve_xcalloc((size_t)max_n, sizeof *s->fooled);
    s->ok = nerve_xcalloc((size_t)max_n, sizeof *s->ok);
    s->max_n = max_n;
    return s->x0 && s->best && s->seed && s->clean_p && s->fooled && s->ok ? NERVE_OK : NERVE_ERR_NOMEM;
}

void adv_scratch_free(adv_scratch *s)
{
    nerve_xfree_aligned(s->x0);
    nerve_xfree_aligned(s->best);
    nerve_xfree_aligned(s->seed);
    nerve_xfree_aligned(s->clean_p);
    nerve_xfree(s->fooled);
    nerve_xfree(s->ok);
    nerve_xfree_aligned(s->saved_grads);
    memset(s, 0, sizeof *s);
}

static int argmax(const float *v, int k)
{
    int b = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[b])
            b = j;
    return b;
}

/* softmax of z[0..k) into p (max-shifted). */
static void softmax(const float *z, int k, float *p)
{
    float mx = z[argmax(z, k)];
    double sum = 0;
    for (int j = 0; j < k; j++)
        sum += p[j] = expf(z[j] - mx);
    for (int j = 0; j < k; j++)
        p[j] = (float)(p[j] / sum);
}

/* One gradient of the attacked objective with respect to the input, left in the input's
 * gradient buffer: the model's loss (PGD, FGSM), or the KL divergence from the clean
 * probabilities clean_p [n, k] (TRADES: its seed p_adv - p_clean at the logits). */
static int objective_gradient(nerve_graph *g, int loss, int logits, int n, int k, const float *clean_p,
                              float *seed)
{
    if (!clean_p) {
        int st = nerve_forward(g, loss);
        return st ? st : nerve_backward_seeded(g, loss, NULL, NERVE_BACKWARD_INPUTS_ONLY);
    }
    int st = nerve_forward(g, logits);
    if (st)
        return st;
    const float *z = nerve_value(g, logits).data;
    for (int i = 0; i < n; i++) {
        softmax(z + (size_t)i * k, k, seed + (size_t)i * k);
        for (int j = 0; j < k; j++)
            seed[(size_t)i * k + j] = (seed[(size_t)i * k + j] - clean_p[(size_t)i * k + j]) / (float)n;
    }
    return nerve_backward_seeded(g, logits, seed, NERVE_BACKWARD_INPUTS_ONLY);
}

/* The attack on the batch in the graph's input node (labels fed), by s's buffers, without
 * changing the graph's mode or requires_grad. clean_p: TRADES's objective (else the loss).
 * fooled may be NULL. */
int adv_attack_in_graph(nerve_model *m, int n, const nerve_attack *a, nerve_rng *rng, adv_scratch *s,
                        const float *clean_p, int *fooled)
{
    int input, labels, logits, loss;
    int st = classifier_nodes(m, &input, &labels, &logits, &loss);
    if (st)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t d = nerve_shape_numel(nd - 1, dims + 1), total = d * (size_t)n;
    nerve_node_shape(g, logits, &nd, dims);
    int k = dims[1];
    if (n > s->max_n)
        return nerve_set_error(NERVE_ERR_ARG, "attack: batch of %d larger than its buffers", n);
    float *x = nerve_value(g, input).data;
    const float *y = nerve_value(g, labels).data;
    for (size_t i = 0; i < total; i++)
        if (!(x[i] >= a->lo && x[i] <= a->hi))
            return nerve_set_error(NERVE_ERR_ARG, "attack: input value %g (sample %zu) lies outside the valid "
                                   "range [%g, %g]; give the data's range", (double)x[i], i / d,
                                   (double)a->lo, (double)a->hi);
    memcpy(s->x0, x, total * sizeof(float));
    int tries = a->steps > 0 ? a->restarts : 1;
    float step = a->step > 0 ? a->step : a->steps > 0 ? 2.5f * a->eps / (float)a->steps : a->eps;
    int *fool = s->fooled;
    memset(fool, 0, (size_t)n * sizeof *fool);
    for (int r = 0; r < tries && st == NERVE_OK; r++) {
        for (int i = 0; i < n; i++) {
            float *xi = x + (size_t)i * d;
            const float *x0 = s->x0 + (size_t)i * d;
            if (clean_p) { /* TRADES: x + 0.001 N(0, 1) */
                for (size_t j = 0; j < d; j++)
                    xi[j] = x0[j] + 0.001f * nerve_rng_normal(rng);
                project(a, xi, x0, d);
            } else if (a->steps > 0 && a->random_start)
                random_start(a, rng, xi, x0, d);
            else
                memcpy(xi, x0, d * sizeof(float));
        }
        int steps = a->steps > 0 ? a->steps : 1;
        for (int t = 0; t < steps && st == NERVE_OK; t++) {
            if ((st = objective_gradient(g, loss, logits, n, k, clean_p, s->seed)) != NERVE_OK)
                break;
            float *gx = nerve_grad(g, input).data;
            for (int i = 0; i < n; i++) {
                float *gi = gx + (size_t)i * d, *xi = x + (size_t)i * d;
                direction(a->norm, gi, d);
                for (size_t j = 0; j < d; j++)
                    xi[j] += step * gi[j];
                project(a, xi, s->x0 + (size_t)i * d, d);
            }
        }
        if (st || (!fooled && tries == 1))
            break;
        if ((st = nerve_forward(g, logits)) != NERVE_OK)
            break;
        const float *z = nerve_value(g, logits).data;
        for (int i = 0; i < n; i++)
            if (!fool[i] && argmax(z + (size_t)i * k, k) != (int)y[i]) {
                fool[i] = 1;
                memcpy(s->best + (size_t)i * d, x + (size_t)i * d, d * sizeof(float));
            }
    }
    if (st == NERVE_OK && tries > 1) /* a fooling restart's example where there is one */
        for (int i = 0; i < n; i++)
            if (fool[i])
                memcpy(x + (size_t)i * d, s->best + (size_t)i * d, d * sizeof(float));
    if (st == NERVE_OK && fooled)
        memcpy(fooled, fool, (size_t)n * sizeof *fooled);
    return st;
}

/* Sets the graph to eval mode and the input to require a gradient; restore() undoes it. */
typedef struct {
    int training, requires, input;
} graph_mode;

static graph_mode enter_attack(nerve_graph *g, int input)
{
    graph_mode md = {nerve_graph_training(g), 0, input};
    md.requires = nerve_input_requires_grad(g, input);
    nerve_graph_set_training(g, 0);
    nerve_input_set_requires_grad(g, input, 1);
    return md;
}

static void leave_attack(nerve_graph *g, const graph_mode *md)
{
    nerve_graph_set_training(g, md->training);
    nerve_input_set_requires_grad(g, md->input, md->requires);
}

int nerve_attack_batch(nerve_model *m, int n, const nerve_attack *a, nerve_rng *rng, int *fooled)
{
    int input, labels, logits, loss, st;
    if (!m || n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "attack: null model or empty batch");
    if ((st = check_attack(a)) != NERVE_OK || (st = classifier_nodes(m, &input, &labels, &logits, &loss)) != NERVE_OK)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    if (n != nerve_graph_batch(g))
        return nerve_set_error(NERVE_ERR_ARG, "attack: %d samples but the graph's batch is %d", n,
                               nerve_graph_batch(g));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t d = nerve_shape_numel(nd - 1, dims + 1);
    nerve_node_shape(g, logits, &nd, dims);
    nerve_rng own;
    if (!rng) {
        nerve_rng_seed(&own, a->seed);
        rng = &own;
    }
    adv_scratch s;
    if ((st = adv_scratch_init(&s, n, d, dims[1])) == NERVE_OK) {
        graph_mode md = enter_attack(g, input);
        st = adv_attack_in_graph(m, n, a, rng, &s, NULL, fooled);
        leave_attack(g, &md);
    }
    adv_scratch_free(&s);
    return st;
}

int nerve_attack_evaluate(nerve_model *m, const nerve_dataset *d, const nerve_attack *a, int limit,
                          double *clean, double *robust)
{
    int input, labels, logits, loss, st;
    if (!m || !d || !d->x || !d->y)
        return nerve_set_error(NERVE_ERR_ARG, "attack_evaluate: null model or data set without labels");
    if ((st = check_attack(a)) != NERVE_OK)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) && (st = nerve_model_compile(m, 0)) != NERVE_OK)
        return st;
    if ((st = classifier_nodes(m, &input, &labels, &logits, &loss)) != NERVE_OK)
        return st;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t dim = nerve_shape_numel(nd - 1, dims + 1);
    if (dim != d->sample_numel)
        return nerve_set_error(NERVE_ERR_SHAPE, "the data has samples of %zu values but the model takes %zu",
                               d->sample_numel, dim);
    nerve_node_shape(g, logits, &nd, dims);
    int k = dims[1], total = limit > 0 && limit < d->n ? limit : d->n;
    int batch = nerve_graph_batch(g), max_batch = batch;
    adv_scratch s;
    st = adv_scratch_init(&s, max_batch, dim, k);
    nerve_rng rng;
    nerve_rng_seed(&rng, a->seed);
    graph_mode md = enter_attack(g, input);
    long correct = 0, robust_correct = 0;
    for (int lo = 0; st == NERVE_OK && lo < total; lo += max_batch) {
        int n = total - lo < max_batch ? total - lo : max_batch;
        if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
            break;
        memcpy(nerve_value(g, input).data, d->x + (size_t)lo * dim, (size_t)n * dim * sizeof(float));
        float *y = nerve_value(g, labels).data;
        for (int i = 0; i < n && st == NERVE_OK; i++) {
            y[i] = d->y[lo + i];
            if (!(y[i] >= 0 && y[i] < k && y[i] == floorf(y[i])))
                st = nerve_set_error(NERVE_ERR_ARG, "sample %d has label %g, not a class 0..%d", lo + i,
                                     (double)y[i], k - 1);
        }
        if (st || (st = nerve_forward(g, logits)) != NERVE_OK)
            break;
        const float *z = nerve_value(g, logits).data;
        for (int i = 0; i < n; i++)
            correct += s.ok[i] = argmax(z + (size_t)i * k, k) == (int)y[i];
        if ((st = adv_attack_in_graph(m, n, a, &rng, &s, NULL, NULL)) != NERVE_OK ||
            (st = nerve_forward(g, logits)) != NERVE_OK)
            break;
        z = nerve_value(g, logits).data;
        /* robust: right on the clean sample and on its adversarial example */
        for (int i = 0; i < n; i++)
            robust_correct += s.ok[i] && argmax(z + (size_t)i * k, k) == (int)y[i];
    }
    leave_attack(g, &md);
    nerve_graph_set_batch(g, batch);
    adv_scratch_free(&s);
    if (st == NERVE_OK) {
        if (clean)
            *clean = total ? (double)correct / total : NAN;
        if (robust)
            *robust = total ? (double)robust_correct / total : NAN;
    }
    return st;
}

/* ---- robust training ------------------------------------------------------------------- */

/* The training attack of epoch e: eps ramps up linearly over the warm-up epochs. */
static nerve_attack epoch_attack(const nerve_adversarial *adv, int epoch)
{
    nerve_attack a = adv->attack;
    if (adv->warmup > 0 && epoch <= adv->warmup)
        a.eps = a.eps * (float)epoch / (float)(adv->warmup + 1);
    a.restarts = 1;
    return a;
}

static size_t node_values(nerve_graph *g, int id)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, id, &nd, dims);
    return nerve_shape_numel(nd, dims);
}

/* mode 0: saved = every trainable parameter's gradient; 1: saved += it; 2: gradient +=
 * saved (in creation order, as adv_scratch_grads sized it). */
static int move_grads(nerve_graph *g, adv_scratch *s, int mode)
{
    size_t at = 0;
    for (int id = 0; id < nerve_node_count(g); id++) {
        if (nerve_node_kind(g, id) != NERVE_NODE_PARAM)
            continue;
        float *gr = nerve_grad(g, id).data;
        if (!gr)
            continue;
        size_t k = node_values(g, id);
        if (at + k > s->n_saved)
            return nerve_set_error(NERVE_ERR_STATE, "TRADES: the trainable parameters changed during training");
        float *sv = s->saved_grads + at;
        for (size_t j = 0; j < k; j++) {
            if (mode == 0)
                sv[j] = gr[j];
            else if (mode == 1)
                sv[j] += gr[j];
            else
                gr[j] += sv[j];
        }
        at += k;
    }
    return NERVE_OK;
}

int adv_train_forward(nerve_model *m, int n, int epoch, nerve_rng *rng, adv_scratch *s, float *loss)
{
    const nerve_adversarial *adv = &nerve_model_config(m)->adversarial;
    nerve_graph *g = nerve_model_graph(m);
    int input, labels, logits, loss_node;
    int st = classifier_nodes(m, &input, &labels, &logits, &loss_node);
    if (st)
        return st;
    nerve_attack a = epoch_attack(adv, epoch);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t d = nerve_shape_numel(nd - 1, dims + 1);
    nerve_node_shape(g, logits, &nd, dims);
    int k = dims[1];
    float *x = nerve_value(g, input).data;
    graph_mode md = enter_attack(g, input);
    const float *clean_p = NULL;
    if (adv->kind == NERVE_ADV_TRADES) { /* the clean probabilities the attack moves away from */
        if ((st = nerve_forward(g, logits)) == NERVE_OK) {
            const float *z = nerve_value(g, logits).data;
            for (int i = 0; i < n; i++)
                softmax(z + (size_t)i * k, k, s->clean_p + (size_t)i * k);
            clean_p = s->clean_p;
        }
    }
    if (st == NERVE_OK)
        st = adv_attack_in_graph(m, n, &a, rng, s, clean_p, NULL);
    leave_attack(g, &md);
    if (st)
        return st;
    if (adv->kind == NERVE_ADV_PGD) {
        if ((st = nerve_forward(g, loss_node)) == NERVE_OK)
            *loss = nerve_value(g, loss_node).data[0];
        return st;
    }
    /* TRADES: q = softmax f(x') and p = softmax f(x) in training mode; the clean pass last */
    memcpy(s->best, x, (size_t)n * d * sizeof(float));
    if ((st = nerve_forward(g, logits)) != NERVE_OK)
        return st;
    const float *z = nerve_value(g, logits).data;
    for (int i = 0; i < n; i++)
        softmax(z + (size_t)i * k, k, s->seed + (size_t)i * k);
    memcpy(x, s->x0, (size_t)n * d * sizeof(float));
    if ((st = nerve_forward(g, loss_node)) != NERVE_OK)
        return st;
    z = nerve_value(g, logits).data;
    double kl_sum = 0;
    float w = adv->beta / (float)n;
    for (int i = 0; i < n; i++) {
        float *p = s->clean_p + (size_t)i * k, *q = s->seed + (size_t)i * k;
        softmax(z + (size_t)i * k, k, p);
        double kl = 0;
        for (int j = 0; j < k; j++)
            if (p[j] > 0)
                kl += (double)p[j] * (log((double)p[j]) - log(fmax((double)q[j], 1e-30)));
        kl_sum += kl;
        /* d KL / d z_clean_j = p_j (log p_j - log q_j - KL); d KL / d z_adv_j = q_j - p_j */
        for (int j = 0; j < k; j++) {
            double lp = p[j] > 0 ? log((double)p[j]) : 0, lq = log(fmax((double)q[j], 1e-30));
            float dc = w * (float)((double)p[j] * (lp - lq - kl)), da = w * (q[j] - p[j]);
            p[j] = dc;
            q[j] = da;
        }
    }
    *loss = nerve_value(g, loss_node).data[0] + (float)(adv->beta * kl_sum / n);
    return NERVE_OK;
}

int adv_train_backward(nerve_model *m, int n, adv_scratch *s)
{
    const nerve_adversarial *adv = &nerve_model_config(m)->adversarial;
    nerve_graph *g = nerve_model_graph(m);
    int loss_node = nerve_model_loss(m), logits = nerve_model_output(m), input = nerve_model_input(m);
    if (adv->kind == NERVE_ADV_PGD)
        return nerve_backward(g, loss_node);
    /* TRADES: the cross-entropy (with the head's penalties), the KL term through the clean
     * logits, then through the adversarial ones; the graph holds the clean forward */
    int st = nerve_backward(g, loss_node);
    if (st == NERVE_OK && (st = move_grads(g, s, 0)) == NERVE_OK &&
        (st = nerve_backward_seeded(g, logits, s->clean_p, 0)) == NERVE_OK && (st = move_grads(g, s, 1)) == NERVE_OK) {
        int nd, dims[NERVE_MAX_DIMS];
        nerve_node_shape(g, input, &nd, dims);
        memcpy(nerve_value(g, input).data, s->best, (size_t)n * nerve_shape_numel(nd - 1, dims + 1) * sizeof(float));
        if ((st = nerve_forward(g, logits)) == NERVE_OK && (st = nerve_backward_seeded(g, logits, s->seed, 0)) == NERVE_OK)
            st = move_grads(g, s, 2);
    }
    return st;
}

int adv_scratch_grads(adv_scratch *s, nerve_graph *g)
{
    nerve_xfree_aligned(s->saved_grads);
    size_t total = 0;
    for (int j = 0; j < nerve_node_count(g); j++)
        if (nerve_node_kind(g, j) == NERVE_NODE_PARAM && nerve_grad(g, j).data)
            total += node_values(g, j);
    s->saved_grads = nerve_xalloc_floats(total ? total : 1);
    s->n_saved = total;
    return s->saved_grads ? NERVE_OK : NERVE_ERR_NOMEM;
}
