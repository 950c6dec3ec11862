/* The thread pool behind every parallel loop, and the thread-count setting.
 *
 * A run has T parts (T from the thread setting, so that what a part computes never depends
 * on the machine's load); threads claim parts one at a time, the caller first taking part 0.
 * Persistent workers (created on first use, grown when the setting grows) each wait on
 * their own "go" word. A worker that is late (descheduled, or still waking) finds its share
 * taken by the threads that are running, instead of holding everyone up as a static split
 * would. How many threads a run wakes follows the machine: never more than the cores this
 * process may use, and fewer when other processes keep cores busy (the number of runnable
 * tasks, sampled from /proc/loadavg every few milliseconds, less this process's own): on a
 * machine with no core to spare, the caller runs the parts itself, one after another. Every
 * wait spins briefly (a run that follows another one closely is picked up at once) and then
 * blocks in the kernel (a futex on Linux, a condition variable elsewhere); workers do not
 * spin while the pool is narrowed to the caller. One run uses the pool at a time: concurrent
 * top-level calls from different application threads queue on a mutex. See kernels.h for
 * the contract. */
#define _GNU_SOURCE /* sched_getaffinity, syscall */
#include "nerve.h"
#include "kernels.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define POOL_MAX 256       /* threads, caller included; also the most parts of a run */
#ifndef SPIN_NS
/* Spin this long before blocking: longer than a futex round trip, and longer than the serial
 * stretches between the parallel loops of a training step (small layers, the loss, the
 * bookkeeping), so that workers are still awake for the next loop. LeNet-5 training on two
 * threads: 26k samples/s with 20 us, 29k with 200 us. */
#define SPIN_NS 200000
#endif
#define SPIN_CLOCK_EVERY 8 /* pauses between clock reads */
#define SAMPLE_NS 10000000 /* how often the machine's load is sampled */

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

static atomic_int started_workers;  /* workers created */
static atomic_int sleeping_workers; /* workers blocked in the kernel */

static int n_workers_awake(void)
{
    int n = atomic_load(&started_workers) - atomic_load(&sleeping_workers);
    return n > 0 ? n : 0;
}
static atomic_int spin_ok = 1;       /* 0 while the pool is narrowed to the caller */

/* Returns once e->word != old. A worker (`is_worker`) spins only while spinning may help. */
static void event_wait(event *e, unsigned old, int is_worker)
{
    long long start = 0;
    for (int i = 1;; i++) {
        if (atomic_load_explicit(&e->word, memory_order_acquire) != old)
            return;
        if (is_worker && !atomic_load_explicit(&spin_ok, memory_order_relaxed))
            break;
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
    if (is_worker)
        atomic_fetch_add_explicit(&sleeping_workers, 1, memory_order_relaxed);
    while (atomic_load(&e->word) == old)
        word_sleep(&e->word, old);
    if (is_worker)
        atomic_fetch_sub_explicit(&sleeping_workers, 1, memory_order_relaxed);
    atomic_fetch_sub(&e->sleepers, 1);
}

/* Returns once e->word == want. */
static void event_wait_for(event *e, unsigned want)
{
    long long start = 0;
    for (int i = 1;; i++) {
        if (atomic_load_explicit(&e->word, memory_order_acquire) == want)
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
    unsigned v;
    while ((v = atomic_load(&e->word)) != want)
        word_sleep(&e->word, v);
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
    _Alignas(64) event go; /* bumped to wake this worker for a run */
    pthread_t thread;
    int index;             /* 1..POOL_MAX-1 */
    unsigned seen;         /* go's value when the worker last looked (set before start) */
    atomic_int ready;      /* set once its start-up (kern_gemm_thread_init) is done */
} worker;

/* The run in progress. Its T parts are claimed one at a time from `claim`, which packs the
 * run's number (high 32 bits), T (16 bits) and the next unclaimed part (16 bits): a thread
 * claims part i by moving the word from (run, T, i) to (run, T, i + 1), so a claim can only
 * succeed in the run it was read from, and a worker that wakes after its run has ended finds
 * nothing to do. The caller takes part 0 without claiming it. fn and ctx are written before
 * the word is published and read only after a successful claim; the caller waits for
 * `finished` to reach T (the last part to finish stores the run's number in done.word). */
typedef struct {
    kern_task_fn fn;
    void *ctx;
    _Alignas(64) _Atomic unsigned long long claim;
    _Alignas(64) atomic_int finished;
    event done;
} team;

#define CLAIM(run, T, next)                                                                    \
    (((unsigned long long)(run) << 32) | ((unsigned long long)(T) << 16) | (unsigned)(next))

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static worker workers[POOL_MAX];
static int n_workers; /* started: workers[1..n_workers] */
static atomic_int stopping;
static team the_team;
static unsigned run_number; /* under pool_lock */

static _Thread_local int tls_in_task;

static void finish_part(team *tm, unsigned run, int T)
{
    if (atomic_fetch_add_explicit(&tm->finished, 1, memory_order_acq_rel) == T - 1) {
        atomic_store(&tm->done.word, run);
        if (atomic_load(&tm->done.sleepers) > 0)
            word_wake_all(&tm->done.word);
    }
}

/* Claims and runs parts of the run in progress until none is left. */
static void help(team *tm)
{
    unsigned long long v = atomic_load_explicit(&tm->claim, memory_order_acquire);
    for (;;) {
        int T = (int)((v >> 16) & 0xffff), i = (int)(v & 0xffff);
        if (i >= T)
            return;
        if (!atomic_compare_exchange_weak_explicit(&tm->claim, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        tls_in_task = 1;
        tm->fn(tm->ctx, i, T);
        tls_in_task = 0;
        finish_part(tm, (unsigned)(v >> 32), T);
        v = atomic_load_explicit(&tm->claim, memory_order_acquire);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    kern_gemm_thread_init();
    atomic_store(&w->ready, 1);
    for (;;) {
        event_wait(&w->go, w->seen, 1);
        w->seen = atomic_load(&w->go.word);
        if (atomic_load(&stopping))
            return NULL;
        help(&the_team);
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
        atomic_store(&w->ready, 0);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
        /* its start-up allocates: done before the run that started it goes on, so that
         * what a run allocates does not depend on when the new thread is scheduled */
        while (!atomic_load(&w->ready))
            sched_yield();
        n_workers++;
        atomic_fetch_add(&started_workers, 1);
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
    atomic_store(&started_workers, 0);
    atomic_store(&stopping, 0);
    pthread_mutex_unlock(&pool_lock);
}

/* The child of a fork has only the forking thread: forget the parent's workers. */
static void pool_after_fork_child(void)
{
    for (int i = 1; i <= n_workers; i++)
        atomic_store(&workers[i].go.sleepers, 0);
    atomic_store(&the_team.done.sleepers, 0);
    atomic_store(&sleeping_workers, 0);
    atomic_store(&started_workers, 0);
    n_workers = 0;
    pthread_mutex_init(&pool_lock, NULL); /* whoever held it does not exist here */
}

/* ---- how many threads a run may use now --------------------------------------------------- */

static int affinity_cpus(void)
{
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

int kern_pool_width(int T, int cpus, double others)
{
    /* a core counts as taken once the average says it is busy three quarters of the time:
     * a task that is runnable now and then (a kernel thread, a shell) leaves the pool whole,
     * a process that keeps a core busy takes it within a few samples */
    double spare = (double)cpus - (others > 0 ? others : 0);
    int w = (int)(spare + 0.75);
    if (w > cpus)
        w = cpus;
    if (w > T)
        w = T;
    return w < 1 ? 1 : w;
}

int kern_loadavg_running(const char *text)
{
    /* "0.52 0.58 0.59 3/467 12345": the fourth field is runnable/total */
    const char *p = text;
    for (int field = 0; field < 3; field++) {
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
    }
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    long n = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((n = n * 10 + (*p - '0')) > 1000000)
            return -1;
    return *p == '/' ? (int)n : -1;
}

/* The load seen by this process: other runnable tasks, a moving average of samples taken at
 * most every SAMPLE_NS by whichever caller gets there first. */
static atomic_int adapt = -1;        /* -1: not yet read from NERVE_POOL_ADAPT */
static atomic_int width_now;         /* threads a run may use (0: not yet sampled) */
static atomic_flag sampling = ATOMIC_FLAG_INIT;
static long long next_sample;        /* under `sampling` */
static double others_avg;            /* under `sampling` */
static int loadavg_fd = -2;          /* under `sampling`; -1: unavailable */

void kern_set_pool_adapt(int on)
{
    atomic_store(&adapt, on < 0 ? -1 : on > 0);
    atomic_store(&width_now, 0);
    atomic_store(&spin_ok, 1);
}

static int adapting(void)
{
    int a = atomic_load_explicit(&adapt, memory_order_relaxed);
    if (a < 0) {
        const char *env = getenv("NERVE_POOL_ADAPT");
        a = !(env && env[0] == '0' && env[1] == 0);
        atomic_store(&adapt, a);
    }
    return a;
}

int kern_stat_running(const char *text)
{
    /* "tid (comm) S ...": the state follows the last ')' (comm may hold one) */
    const char *p = strrchr(text, ')');
    return p && p[1] == ' ' && p[2] == 'R';
}

#ifdef __linux__
/* The threads of this process in state R (running or runnable), from /proc/self/task
 * without allocating (raw directory entries into a stack buffer); -1 when unreadable. */
static int own_running_threads(void)
{
    int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    int n = 0, seen = 0;
    char ents[2048];
    long got;
    while ((got = syscall(SYS_getdents64, dir, ents, sizeof ents)) > 0) {
        for (long off = 0; off + 19 < got;) {
            unsigned short reclen;
            memcpy(&reclen, ents + off + 16, sizeof reclen);
            if (reclen == 0 || off + reclen > got)
                break;
            const char *name = ents + off + 19;
            off += reclen;
            if (name[0] < '0' || name[0] > '9' || strlen(name) > 20)
                continue;
            char path[64], buf[256];
            snprintf(path, sizeof path, "/proc/self/task/%s/stat", name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t k = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (k <= 0)
                continue;
            buf[k] = 0;
            seen++;
            n += kern_stat_running(buf);
        }
    }
    close(dir);
    return seen ? n : -1;
}
#endif

static void sample_load(long long now)
{
    int cpus = affinity_cpus(); /* each time: the affinity may change */
    int others = -1;
#ifdef __linux__
    if (loadavg_fd == -2)
        loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (loadavg_fd >= 0) {
        char buf[128];
        ssize_t n = pread(loadavg_fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            int running = kern_loadavg_running(buf);
            /* less this process's own runnable threads (the caller, the workers that are
             * not blocked, and any other thread of the application, such as a data
             * loader): only other processes' tasks take cores from the pool */
            int mine = own_running_threads();
            if (mine < 1)
                mine = 1 + n_workers_awake();
            if (running >= 0)
                others = running > mine ? running - mine : 0;
        }
    }
#endif
    if (others < 0) /* no load figure: the cores are the only limit */
        others_avg = 0;
    else if (next_sample == 0)
        others_avg = others;
    else
        others_avg += 0.25 * (others - others_avg);
    next_sample = now + SAMPLE_NS;
    int w = kern_pool_width(POOL_MAX, cpus, others_avg);
    atomic_store(&width_now, w);
    atomic_store(&spin_ok, w > 1);
}

/* The threads a run of T parts may use now (1..T). */
static int run_width(int T)
{
    if (!adapting())
        return T;
    int w = atomic_load_explicit(&width_now, memory_order_relaxed);
    long long now = w ? now_ns() : 0;
    if (!atomic_flag_test_and_set(&sampling)) {
        if (w == 0 || now >= next_sample) {
            sample_load(now ? now : now_ns());
            w = atomic_load(&width_now);
        }
        atomic_flag_clear(&sampling);
    }
    if (w == 0)
        w = 1;
    return w < T ? w : T;
}

int kern_threads_now(void) { return run_width(kern_threads()); }
int kern_in_task(void) { return tls_in_task; }

/* ---- running tasks ------------------------------------------------------------------------ */

/* Parts 0..T-1 on the calling thread, in order. */
static void run_parts_here(int T, kern_task_fn fn, void *ctx)
{
    int saved = tls_in_task;
    tls_in_task = 1;
    for (int t = 0; t < T; t++)
        fn(ctx, t, T);
    tls_in_task = saved;
}

void kern_run(int T, kern_task_fn fn, void *ctx)
{
    int max = kern_threads();
    if (T > max)
        T = max;
    if (T > POOL_MAX)
        T = POOL_MAX;
    if (T < 2 || tls_in_task) {
        run_parts_here(1, fn, ctx);
        return;
    }
    int P = run_width(T);
    if (P < 2) {
        run_parts_here(T, fn, ctx);
        return;
    }
    pthread_mutex_lock(&pool_lock);
    int have = n_workers >= P - 1 ? n_workers : pool_grow(P - 1);
    if (P > have + 1)
        P = have + 1;
    if (P < 2) {
        pthread_mutex_unlock(&pool_lock);
        run_parts_here(T, fn, ctx);
        return;
    }
    team *tm = &the_team;
    unsigned run = ++run_number;
    tm->fn = fn;
    tm->ctx = ctx;
    atomic_store_explicit(&tm->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&tm->claim, CLAIM(run, T, 1), memory_order_release);
    for (int i = 1; i < P; i++)
        event_signal(&workers[i].go);
    tls_in_task = 1;
    fn(ctx, 0, T);
    tls_in_task = 0;
    finish_part(tm, run, T);
    help(tm);
    event_wait_for(&tm->done, run);
    pthread_mutex_unlock(&pool_lock);
}

/* ---- phases ------------------------------------------------------------------------------- */

typedef struct {
    kern_phase_fn fn;
    void *ctx;
    int phase;
} phase_job;

static void phase_task(void *p, int t, int T)
{
    const phase_job *j = p;
    j->fn(j->ctx, j->phase, t, T);
}

void kern_run_phases(int T, int phases, kern_phase_fn fn, void *ctx)
{
    int max = kern_threads();
    if (T > max)
        T = max;
    if (T > POOL_MAX)
        T = POOL_MAX;
    if (T < 1 || tls_in_task)
        T = 1;
    for (int p = 0; p < phases; p++) {
        phase_job j = {fn, ctx, p};
        if (T == 1) {
            int saved = tls_in_task;
            tls_in_task = 1;
            fn(ctx, p, 0, 1);
            tls_in_task = saved;
        } else {
            kern_run(T, phase_task, &j);
        }
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
    if (T > POOL_MAX)
        T = POOL_MAX;
    /* the ranges compute the same whatever the split: one range when one thread would run
     * them all */
    if (T < 2 || tls_in_task || run_width((int)T) < 2) {
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
