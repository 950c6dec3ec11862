/* Loading ahead of the training step: a background thread assembles (and augments) the
 * next batch while the caller's step runs on the current one. Two slots alternate; the
 * producer never runs more than two batches ahead. Every batch is what the serial path
 * gives bit for bit: the order comes from the same batcher seeded the same way, and batch k
 * of epoch e is augmented with a generator seeded by (seed, e, k) alone
 * (nerve_augment_seed), whichever thread does it. Everything is allocated at creation, so a
 * training step still allocates nothing. */
#include "data.h"

#include <pthread.h>
#include <string.h>

typedef struct slot {
    float *x, *y, *t;
    int *idx;
    int n;
} slot;

struct nerve_prefetch {
    const nerve_dataset *d;
    nerve_batcher b;
    nerve_augment aug;
    int use_aug, c, h, w;
    uint64_t seed;
    float *scratch;
    slot s[2];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;       /* the thread exists */
    int quit;
    int active;        /* an epoch is being produced */
    int busy;          /* the producer is assembling a batch (without the lock) */
    int *last_idx;     /* the indices of the batch last returned */
    int last_n;
    int epoch, first;  /* the epoch, and the index of its first batch (a resumed epoch) */
    long produced, consumed;
    int part, parts;   /* the shard of every batch that next() copies out (0 of 1: all) */
    int status;        /* the producer's first error, and its message */
    char message[1024];
};

/* Assembles batch number k of the epoch into slot k % 2 (called without the lock held; the
 * slot is the producer's until `produced` passes it). */
static void produce(nerve_prefetch *p, long k)
{
    slot *s = &p->s[k % 2];
    s->n = nerve_batcher_next_target(&p->b, s->x, s->y, s->t);
    int cnt;
    const int *idx = nerve_batcher_last_indices(&p->b, &cnt);
    if (s->n > 0 && idx)
        memcpy(s->idx, idx, (size_t)s->n * sizeof(int));
    if (s->n > 0 && p->use_aug) {
        nerve_rng r;
        nerve_augment_seed(&r, p->seed, p->epoch, p->first + (int)k);
        int st = nerve_augment_apply(&p->aug, s->x, NULL, s->n, p->c, p->h, p->w, 0, &r,
                                     p->scratch);
        if (st < 0) {
            pthread_mutex_lock(&p->mu);
            if (!p->status) {
                p->status = st;
                snprintf(p->message, sizeof p->message, "%s", nerve_last_error());
            }
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *producer(void *arg)
{
    nerve_prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && !(p->active && p->produced - p->consumed < 2))
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        long k = p->produced;
        p->busy = 1;
        pthread_mutex_unlock(&p->mu);
        produce(p, k);
        pthread_mutex_lock(&p->mu);
        p->busy = 0;
        if (p->s[k % 2].n == 0)
            p->active = 0; /* the epoch's end is a batch of 0 */
        p->produced = k + 1;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void nerve_prefetch_free(nerve_prefetch *p)
{
    if (!p)
        return;
    if (p->running) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    for (int i = 0; i < 2; i++) {
        nerve_xfree_aligned(p->s[i].x);
        nerve_xfree_aligned(p->s[i].y);
        nerve_xfree_aligned(p->s[i].t);
        nerve_xfree(p->s[i].idx);
    }
    nerve_xfree_aligned(p->scratch);
    nerve_xfree(p->last_idx);
    nerve_batcher_free(&p->b);
    nerve_xfree(p);
}

nerve_prefetch *nerve_prefetch_create(const nerve_dataset *d, int batch_size,
                                      const nerve_augment *aug, int c, int h, int w,
                                      uint64_t seed)
{
    if (!d || batch_size < 1 || (aug && aug->on && (c < 1 || h < 1 || w < 1 ||
                                                   (size_t)c * h * w != d->sample_numel))) {
        nerve_set_error(NERVE_ERR_ARG, "prefetch: bad arguments");
        return NULL;
    }
    nerve_prefetch *p = nerve_xcalloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->d = d;
    p->seed = seed;
    p->parts = 1;
    p->use_aug = aug && aug->on;
    if (p->use_aug) {
        p->aug = *aug;
        p->c = c, p->h = h, p->w = w;
    }
    int st = nerve_batcher_init(&p->b, d, batch_size, !d->streams, seed);
    if (st == NERVE_OK && !(p->last_idx = nerve_xmalloc((size_t)batch_size * sizeof(int))))
        st = NERVE_ERR_NOMEM;
    for (int i = 0; st == NERVE_OK && i < 2; i++) {
        p->s[i].x = nerve_xalloc_floats((size_t)batch_size * d->sample_numel);
        p->s[i].y = nerve_xalloc_floats((size_t)batch_size);
        p->s[i].t = d->t ? nerve_xalloc_floats((size_t)batch_size * d->target_numel) : NULL;
        p->s[i].idx = nerve_xmalloc((size_t)batch_size * sizeof(int));
        if (!p->s[i].x || !p->s[i].y || !p->s[i].idx || (d->t && !p->s[i].t))
            st = NERVE_ERR_NOMEM;
    }
    if (st == NERVE_OK && p->use_aug &&
        !(p->scratch = nerve_xalloc_floats(nerve_augment_scratch(c, h, w, 0))))
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        if (pthread_create(&p->thread, NULL, producer, p) != 0)
            st = nerve_set_error(NERVE_ERR_STATE, "prefetch: cannot start a thread");
        else
            p->running = 1;
    }
    if (st != NERVE_OK) {
        nerve_prefetch_free(p);
        return NULL;
    }
    return p;
}

int nerve_prefetch_start(nerve_prefetch *p, uint64_t order_seed, int epoch, int first_batch)
{
    if (!p || first_batch < 0)
        return nerve_set_error(NERVE_ERR_ARG, "prefetch: bad arguments");
    pthread_mutex_lock(&p->mu);
    p->active = 0; /* stop the epoch in flight, and wait out the batch being assembled */
    while (p->busy)
        pthread_cond_wait(&p->cv, &p->mu);
    /* the producer waits: the batcher is ours. The order restarts from the identity and is
     * shuffled by a generator seeded with order_seed, as the serial fit loop does. */
    nerve_rng_seed(&p->b.rng, order_seed);
    nerve_batcher_reset(&p->b);
    long pos = (long)first_batch * p->b.batch_size;
    p->b.pos = pos < p->d->n ? (int)pos : p->d->n;
    p->epoch = epoch;
    p->first = first_batch;
    p->produced = p->consumed = 0;
    p->status = 0;
    p->last_n = 0;
    p->active = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NERVE_OK;
}

int nerve_prefetch_next(nerve_prefetch *p, float *x, float *y, float *t)
{
    if (!p)
        return nerve_set_error(NERVE_ERR_ARG, "prefetch: null");
    pthread_mutex_lock(&p->mu);
    while (p->produced <= p->consumed && p->active)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->produced <= p->consumed) { /* no epoch started, or its end already returned */
        pthread_mutex_unlock(&p->mu);
        p->last_n = 0;
        return 0;
    }
    int st = p->status;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", p->message);
    const slot *s = &p->s[p->consumed % 2];
    pthread_mutex_unlock(&p->mu);
    if (st)
        return nerve_set_error(st, "%s", msg);
    /* the slot is ours until consumed passes it; the shard is rows [lo, hi) */
    int n = s->n;
    const nerve_dataset *d = p->d;
    int lo = (int)((int64_t)n * p->part / p->parts), hi = (int)((int64_t)n * (p->part + 1) / p->parts);
    if (hi > lo) {
        size_t k = (size_t)(hi - lo);
        if (x)
            memcpy(x, s->x + (size_t)lo * d->sample_numel, k * d->sample_numel * sizeof(float));
        if (y)
            memcpy(y, s->y + lo, k * sizeof(float));
        if (t && s->t)
            memcpy(t, s->t + (size_t)lo * d->target_numel, k * d->target_numel * sizeof(float));
        memcpy(p->last_idx, s->idx + lo, k * sizeof(int));
    }
    p->last_n = hi - lo;
    pthread_mutex_lock(&p->mu);
    p->consumed++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return n;
}

int nerve_prefetch_set_shard(nerve_prefetch *p, int part, int parts)
{
    if (!p || parts < 1 || part < 0 || part >= parts)
        return nerve_set_error(NERVE_ERR_ARG, "prefetch: shard %d of %d does not exist", part, parts);
    p->part = part;
    p->parts = parts;
    return NERVE_OK;
}

const int *nerve_prefetch_last_indices(const nerve_prefetch *p, int *n)
{
    if (n)
        *n = p ? p->last_n : 0;
    return p ? p->last_idx : NULL;
}
