/* The thread pool behind every parallel loop, and the thread-count setting.
 *
 * Persistent workers (created on first use, grown when the setting grows) each wait on
 * their own "go" word; the caller of kern_run is thread 0. Every wait spins briefly (a run
 * that follows another one closely is picked up at once) and then blocks in the kernel
 * (a futex on Linux, a condition variable elsewhere), so idle workers never hold a core
 * that another process needs. One run uses the pool at a time: concurrent top-level calls
 * from different application threads queue on a mutex. See kernels.h for the contract. */
#define _GNU_SOURCE /* sched_getaffinity, syscall */
#include "nerve.h"
#include "kernels.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define POOL_MAX 256       /* threads, caller included */
#ifndef SPIN_NS
/* Spin this long before blocking: longer than a futex round trip, and longer than the serial
 * stretches between the parallel loops of a training step (small layers, the loss, the
 * bookkeeping), so that workers are still awake for the next loop. LeNet-5 training on two
 * threads: 26k samples/s with 20 us, 29k with 200 us. */
#define SPIN_NS 200000
#endif
#define SPIN_CLOCK_EVERY 8 /* pauses between clock reads */

/* ---- waiting on a word: spin, then block ------------------------------------------------ */

#ifdef __linux__
static void word_sleep(atomic_uint *w, unsigned old)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
}
static void word_wake_all(atomic_uint *w)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}
#else
static pthread_mutex_t word_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t word_cond = PTHREAD_COND_INITIALIZER;
static void word_sleep(atomic_uint *w, unsigned old)
{
    pthread_mutex_lock(&word_lock);
    if (atomic_load(w) == old)
        pthread_cond_wait(&word_cond, &word_lock);
    pthread_mutex_unlock(&word_lock);
}
static void word_wake_all(atomic_uint *w)
{
    (void)w;
    pthread_mutex_lock(&word_lock);
    pthread_cond_broadcast(&word_cond);
    pthread_mutex_unlock(&word_lock);
}
#endif

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A word that changes value to signal an event, with a count of blocked waiters so that the
 * signaller makes a system call only when someone sleeps. Both sides use sequentially
 * consistent operations: either the waiter sees the new value or the signaller sees the
 * sleeper, never neither (no lost wake-up). */
typedef struct {
    atomic_uint word;
    atomic_int sleepers;
} event;

/* Returns once e->word != old. */
static void event_wait(event *e, unsigned old)
{
    long long start = 0;
    for (int i = 1;; i++) {
        if (atomic_load_explicit(&e->word, memory_order_acquire) != old)
            return;
        cpu_relax();
        if (i % SPIN_CLOCK_EVERY == 0) {
            long long t = now_ns();
            if (start == 0)
                start = t;
            else if (t - start > SPIN_NS)
                break;
        }
    }
    atomic_fetch_add(&e->sleepers, 1);
    while (atomic_load(&e->word) == old)
        word_sleep(&e->word, old);
    atomic_fetch_sub(&e->sleepers, 1);
}

static void event_signal(event *e)
{
    atomic_fetch_add(&e->word, 1);
    if (atomic_load(&e->sleepers) > 0)
        word_wake_all(&e->word);
}

/* ---- the pool --------------------------------------------------------------------------- */

typedef struct {
    _Alignas(64) event go; /* bumped once per run this worker takes part in */
    pthread_t thread;
    int index;             /* 1..POOL_MAX-1 */
    unsigned seen;         /* go's value when the worker last looked (set before start) */
} worker;

/* The run in progress: written by the caller before it signals the workers' go events. */
typedef struct {
    kern_task_fn fn;
    void *ctx;
    int T;
    _Alignas(64) atomic_int pending; /* workers still running their task */
    event done;                      /* bumped by the last worker to finish */
    _Alignas(64) atomic_int arrived; /* barrier: threads waiting in this phase */
    event phase;                     /* barrier: bumped when all T have arrived */
} team;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static worker workers[POOL_MAX];
static int n_workers; /* started: workers[1..n_workers] */
static atomic_int stopping;
static team the_team;

static _Thread_local team *tls_team; /* the run this thread takes part in, if parallel */
static _Thread_local int tls_in_task;

static void run_task(team *tm, int t)
{
    tls_team = tm;
    tls_in_task = 1;
    tm->fn(tm->ctx, t, tm->T);
    tls_in_task = 0;
    tls_team = NULL;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (;;) {
        event_wait(&w->go, w->seen);
        w->seen = atomic_load(&w->go.word);
        if (atomic_load(&stopping))
            return NULL;
        run_task(&the_team, w->index);
        if (atomic_fetch_sub(&the_team.pending, 1) == 1)
            event_signal(&the_team.done);
    }
}

static void pool_shutdown(void);
static void pool_after_fork_child(void);

/* A fork waits for the run in progress, except from inside a task (that run cannot end). */
static int locked_for_fork;
static void pool_before_fork(void)
{
    locked_for_fork = !tls_in_task;
    if (locked_for_fork)
        pthread_mutex_lock(&pool_lock);
}
static void pool_after_fork_parent(void)
{
    if (locked_for_fork)
        pthread_mutex_unlock(&pool_lock);
}

/* Starts workers up to index `want` (under pool_lock); returns how many exist. Workers block
 * every signal so that signals keep going to the application's threads. */
static int pool_grow(int want)
{
    static int hooks_installed;
    if (!hooks_installed) {
        hooks_installed = 1;
        atexit(pool_shutdown);
        pthread_atfork(pool_before_fork, pool_after_fork_parent, pool_after_fork_child);
    }
    if (want > POOL_MAX - 1)
        want = POOL_MAX - 1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (n_workers < want) {
        worker *w = &workers[n_workers + 1];
        w->index = n_workers + 1;
        w->seen = atomic_load(&w->go.word);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
        n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return n_workers;
}

/* At exit, joins the workers (so that leak checkers see their buffers freed), unless a run
 * is in progress (exit from inside a task, or from another thread during a run). */
static void pool_shutdown(void)
{
    if (tls_in_task || pthread_mutex_trylock(&pool_lock) != 0)
        return;
    atomic_store(&stopping, 1);
    for (int i = 1; i <= n_workers; i++)
        event_signal(&workers[i].go);
    for (int i = 1; i <= n_workers; i++)
        pthread_join(workers[i].thread, NULL);
    n_workers = 0;
    atomic_store(&stopping, 0);
    pthread_mutex_unlock(&pool_lock);
}

/* The child of a fork has only the forking thread: forget the parent's workers. */
static void pool_after_fork_child(void)
{
    for (int i = 1; i <= n_workers; i++)
        atomic_store(&workers[i].go.sleepers, 0);
    atomic_store(&the_team.done.sleepers, 0);
    atomic_store(&the_team.phase.sleepers, 0);
    n_workers = 0;
    pthread_mutex_init(&pool_lock, NULL); /* whoever held it does not exist here */
}

static void run_serial(kern_task_fn fn, void *ctx)
{
    team *saved_team = tls_team;
    int saved_in_task = tls_in_task;
    tls_team = NULL;
    tls_in_task = 1;
    fn(ctx, 0, 1);
    tls_team = saved_team;
    tls_in_task = saved_in_task;
}

void kern_run(int T, kern_task_fn fn, void *ctx)
{
    int max = kern_threads();
    if (T > max)
        T = max;
    if (T > POOL_MAX)
        T = POOL_MAX;
    if (T < 2 || tls_in_task) {
        run_serial(fn, ctx);
        return;
    }
    pthread_mutex_lock(&pool_lock);
    int have = n_workers >= T - 1 ? n_workers : pool_grow(max - 1);
    if (T > have + 1)
        T = have + 1;
    if (T < 2) {
        pthread_mutex_unlock(&pool_lock);
        run_serial(fn, ctx);
        return;
    }
    team *tm = &the_team;
    tm->fn = fn;
    tm->ctx = ctx;
    tm->T = T;
    atomic_store(&tm->arrived, 0);
    atomic_store(&tm->pending, T - 1);
    unsigned done = atomic_load(&tm->done.word);
    for (int i = 1; i < T; i++)
        event_signal(&workers[i].go);
    run_task(tm, 0);
    event_wait(&tm->done, done);
    pthread_mutex_unlock(&pool_lock);
}

void kern_barrier(void)
{
    team *tm = tls_team;
    if (!tm)
        return;
    unsigned phase = atomic_load(&tm->phase.word);
    if (atomic_fetch_add(&tm->arrived, 1) == tm->T - 1) {
        atomic_store(&tm->arrived, 0);
        event_signal(&tm->phase);
    } else {
        event_wait(&tm->phase, phase);
    }
}

/* ---- static splits ------------------------------------------------------------------ */

void kern_split(size_t n, int t, int T, size_t *begin, size_t *end)
{
    size_t q = n / (size_t)T, r = n % (size_t)T, ut = (size_t)t;
    *begin = ut * q + (ut < r ? ut : r);
    *end = *begin + q + (ut < r ? 1 : 0);
}

typedef struct {
    size_t n;
    kern_range_fn fn;
    void *ctx;
} range_job;

static void range_task(void *p, int t, int T)
{
    range_job *j = p;
    size_t b, e;
    kern_split(j->n, t, T, &b, &e);
    if (b < e)
        j->fn(j->ctx, b, e);
}

void kern_parallel_for(size_t n, size_t grain, kern_range_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (grain < 1)
        grain = 1;
    size_t T = n / grain;
    if (T > (size_t)kern_threads())
        T = (size_t)kern_threads();
    if (T < 2 || tls_in_task) {
        fn(ctx, 0, n);
        return;
    }
    range_job j = {n, fn, ctx};
    kern_run((int)T, range_task, &j);
}

/* ---- the thread-count setting ------------------------------------------------------- */

static _Atomic int thread_setting; /* 0: not yet read */

/* NERVE_THREADS, else the CPUs this process may run on. */
static int default_threads(void)
{
    const char *env = getenv("NERVE_THREADS");
    if (env) {
        int n = atoi(env);
        if (n > 0)
            return n;
    }
    int n = 0;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
#endif
    if (n < 1)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

void kern_set_threads(int n) { atomic_store(&thread_setting, n > 0 ? n : default_threads()); }

int kern_threads(void)
{
    int n = atomic_load(&thread_setting);
    if (n == 0) {
        n = default_threads();
        atomic_store(&thread_setting, n);
    }
    return n;
}

void nerve_set_threads(int n) { kern_set_threads(n); }
int nerve_threads(void) { return kern_threads(); }
