/* Learning-rate schedules: the multiplier applied to the base rate at each iteration.
 *
 *   constant     lr
 *   step         lr γ^⌊epoch / step⌋
 *   multistep    lr γ^#{milestones ≤ epoch}
 *   exponential  lr γ^epoch
 *   linear       (1 − k/τ) lr + (k/τ) lr_end for k < τ, lr_end after (the course's SGD decay)
 *   cosine       lr (k+1)/W for k < W (warm-up), then lr_end + (lr − lr_end)(1 + cos πp)/2
 *                with p = (k − W)/(τ − W), lr_end once k ≥ τ
 *   plateau      lr × scale, where observe() multiplies scale by γ after `patience`
 *                consecutive epochs without a relative improvement above `threshold`
 *   poly         lr (1 − k/max_iter)^power                       (darknet)
 *   sigmoid      lr / (1 + exp(γ (k − step)))                    (darknet)
 * Iterations k count from 0 over the whole run; epochs count from 0. With in_iterations,
 * step, multistep and exponential count iterations (darknet's step, steps and exp), and a
 * multistep milestone multiplies by its own scale. burn_in > 0: lr (k/burn_in)^power for
 * k < burn_in, whatever the policy (darknet's burn-in). */
#include "nerve.h"

#include <math.h>
#include <strings.h>

static const char *const sched_names[] = {"constant", "step",    "multistep", "exponential",
                                          "linear",   "cosine",  "plateau",   "poly",
                                          "sigmoid"};
#define N_SCHED ((int)(sizeof sched_names / sizeof sched_names[0]))

nerve_schedule nerve_schedule_default(nerve_sched_type type, float lr)
{
    nerve_schedule s = {0};
    s.type = type;
    s.lr = lr;
    /* The course ends the linear decay at about 1% of the initial rate; cosine goes to 0. */
    s.lr_end = type == NERVE_SCHED_LINEAR ? 0.01f * lr : 0.0f;
    /* γ = 0.1 is a per-decay factor; per epoch (exponential) that would be brutal. */
    s.gamma = type == NERVE_SCHED_EXPONENTIAL ? 0.95f : 0.1f;
    s.step = 30;
    s.tau = 0; /* unset: the training loop sets it to the run's total iterations */
    s.warmup = 0;
    s.patience = 10;
    s.threshold = 1e-4f;
    s.best = INFINITY;
    s.bad_epochs = 0;
    s.plateau_scale = 1.0f;
    s.power = 4.0f;
    return s;
}

int nerve_schedule_parse(const char *name, nerve_sched_type *out)
{
    if (name && strcasecmp(name, "exp") == 0) {
        if (out)
            *out = NERVE_SCHED_EXPONENTIAL;
        return NERVE_OK;
    }
    for (int t = 0; name && t < N_SCHED; t++)
        if (strcasecmp(name, sched_names[t]) == 0) {
            if (out)
                *out = (nerve_sched_type)t;
            return NERVE_OK;
        }
    return nerve_set_error(NERVE_ERR_ARG,
                           "unknown schedule '%s' (constant, step, multistep, exponential, "
                           "linear, cosine, plateau, poly, sigmoid)",
                           name ? name : "(null)");
}

const char *nerve_schedule_name(nerve_sched_type type)
{
    return (int)type >= 0 && (int)type < N_SCHED ? sched_names[type] : "unknown";
}

static float linear_lr(const nerve_schedule *s, int64_t k)
{
    if (s->tau <= 0)
        return s->lr;
    if (k >= s->tau)
        return s->lr_end;
    double a = (double)k / (double)s->tau;
    return (float)((1.0 - a) * s->lr + a * s->lr_end);
}

static float cosine_lr(const nerve_schedule *s, int64_t k)
{
    if (k < s->warmup)
        return (float)((double)s->lr * (double)(k + 1) / (double)s->warmup);
    if (s->tau <= s->warmup)
        return s->tau <= 0 ? s->lr : s->lr_end;
    if (k >= s->tau)
        return s->lr_end;
    double p = (double)(k - s->warmup) / (double)(s->tau - s->warmup);
    return (float)(s->lr_end + (s->lr - s->lr_end) * 0.5 * (1.0 + cos(3.14159265358979323846 * p)));
}

static float milestones_factor(const nerve_schedule *s, int64_t t)
{
    float f = 1.0f;
    for (int i = 0; i < s->n_milestones && i < NERVE_MAX_MILESTONES; i++)
        if (s->milestones[i] <= t)
            f *= s->scales[i] > 0.0f ? s->scales[i] : s->gamma;
    return f;
}

static float poly_lr(const nerve_schedule *s, int64_t k)
{
    if (s->max_iter <= 0)
        return s->lr;
    double a = 1.0 - (double)k / (double)s->max_iter;
    return a <= 0.0 ? 0.0f : (float)(s->lr * pow(a, s->power));
}

float nerve_schedule_lr(const nerve_schedule *s, int64_t iter, int epoch)
{
    if (!s)
        return 0.0f;
    if (iter < 0)
        iter = 0;
    if (epoch < 0)
        epoch = 0;
    if (iter < s->burn_in)
        return (float)(s->lr * pow((double)iter / (double)s->burn_in, s->power));
    int64_t t = s->in_iterations ? iter : epoch;
    switch (s->type) {
    case NERVE_SCHED_STEP:
        return s->step > 0 ? (float)(s->lr * pow(s->gamma, (double)(t / s->step))) : s->lr;
    case NERVE_SCHED_MULTISTEP: return s->lr * milestones_factor(s, t);
    case NERVE_SCHED_EXPONENTIAL: return (float)(s->lr * pow(s->gamma, (double)t));
    case NERVE_SCHED_POLY: return poly_lr(s, iter);
    case NERVE_SCHED_SIGMOID:
        return (float)(s->lr / (1.0 + exp(s->gamma * (double)(iter - s->step))));
    case NERVE_SCHED_LINEAR: return linear_lr(s, iter);
    case NERVE_SCHED_COSINE: return cosine_lr(s, iter);
    case NERVE_SCHED_PLATEAU: return s->lr * (s->plateau_scale > 0.0f ? s->plateau_scale : 1.0f);
    default: return s->lr;
    }
}

/* Lower is better; an improvement must beat the best by more than threshold·|best|. */
static int improves(const nerve_schedule *s, float metric)
{
    if (isnan(metric))
        return 0;
    if (isinf(s->best))
        return metric < s->best;
    return metric < s->best - s->threshold * fabsf(s->best);
}

void nerve_schedule_observe(nerve_schedule *s, float metric)
{
    if (!s || s->type != NERVE_SCHED_PLATEAU)
        return;
    if (s->plateau_scale <= 0.0f)
        s->plateau_scale = 1.0f;
    if (improves(s, metric)) {
        s->best = metric;
        s->bad_epochs = 0;
        return;
    }
    if (++s->bad_epochs >= s->patience) {
        s->plateau_scale *= s->gamma;
        s->bad_epochs = 0;
    }
}
