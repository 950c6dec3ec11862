/* The thread pool: kern_run gives each index exactly once, kern_run_phases orders phases,
 * nested calls run serially, kern_parallel_for and kern_split cover ranges exactly once,
 * GEMM on the pool is bit-identical to the serial product, many tiny runs (including ones
 * that let the workers fall asleep) neither deadlock nor lose a wake-up, and the pool never
 * wakes more threads than the process has cores. Most tests turn the load adaptation off
 * (kern_set_pool_adapt) so that every part of a run has a thread of its own, whatever the
 * machine is doing. */
#define _GNU_SOURCE /* sched_setaffinity */
#include "../src/kernels/kernels.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_T 8

static void sleep_us(long us)
{
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

/* ---- kern_run: each index once, with the right T, the caller as thread 0 ---------------- */

typedef struct {
    atomic_int count[MAX_T];
    atomic_int bad_T;
    int want_T;
    pthread_t caller;
    atomic_int caller_not_zero;
} census;

static void count_task(void *p, int t, int T)
{
    census *c = p;
    if (T != c->want_T || t < 0 || t >= MAX_T)
        atomic_fetch_add(&c->bad_T, 1);
    else
        atomic_fetch_add(&c->count[t], 1);
    if (t == 0 && !pthread_equal(pthread_self(), c->caller))
        atomic_fetch_add(&c->caller_not_zero, 1);
}

/* Runs kern_run(T) with `threads` set; checks each of the `want` indices ran once. */
static int run_census(int threads, int T, int want)
{
    census c;
    memset(&c, 0, sizeof c);
    c.want_T = want;
    c.caller = pthread_self();
    kern_set_pool_adapt(0);
    kern_set_threads(threads);
    kern_run(T, count_task, &c);
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    if (atomic_load(&c.bad_T) || atomic_load(&c.caller_not_zero))
        return 0;
    for (int t = 0; t < MAX_T; t++)
        if (atomic_load(&c.count[t]) != (t < want ? 1 : 0))
            return 0;
    return 1;
}

TEST(threads_run_gives_each_index_once)
{
    CHECK(run_census(4, 4, 4));
    CHECK(run_census(4, 3, 3));
    CHECK(run_census(2, 5, 2)); /* clamped to the setting */
    CHECK(run_census(3, 1, 1));
    CHECK(run_census(3, 0, 1)); /* T < 1 runs once on the caller */
    CHECK(run_census(6, 6, 6)); /* the pool grows with the setting */
    CHECK(run_census(2, 2, 2)); /* and shrinks back */
}

/* ---- phases ------------------------------------------------------------------------------ */

#define ROUNDS 200

typedef struct {
    int slot[MAX_T];
    atomic_int errors, calls;
} phases;

/* Phase 2r: every part writes its slot; phase 2r + 1: every part checks every slot. Without
 * ordered phases some part reads a slot of the previous round. */
static void phase_task(void *p, int phase, int t, int T)
{
    phases *ph = p;
    int r = phase / 2;
    atomic_fetch_add(&ph->calls, 1);
    if (phase % 2 == 0) {
        if (r % 50 == 7 && t == T - 1)
            sleep_us(300); /* a late part: the others block in the kernel */
        ph->slot[t] = r * MAX_T + t;
        return;
    }
    for (int i = 0; i < T; i++)
        if (ph->slot[i] != r * MAX_T + i)
            atomic_fetch_add(&ph->errors, 1);
}

TEST(threads_phases_run_in_order)
{
    for (int adapt = 0; adapt <= 1; adapt++)
        for (int T = 1; T <= 4; T++) {
            phases ph;
            memset(&ph, 0, sizeof ph);
            kern_set_pool_adapt(adapt);
            kern_set_threads(T);
            kern_run_phases(T, 2 * ROUNDS, phase_task, &ph);
            kern_set_threads(0);
            kern_set_pool_adapt(-1);
            CHECK_MSG(atomic_load(&ph.errors) == 0, "T=%d: %d stale reads", T,
                      atomic_load(&ph.errors));
            CHECK(atomic_load(&ph.calls) == 2 * ROUNDS * T);
        }
}

/* ---- nested calls run serially on the caller ----------------------------------------------- */

typedef struct {
    atomic_int bad;
    atomic_int inner_calls;
} nest;

typedef struct {
    nest *n;
    pthread_t outer;
} inner_ctx;

static void inner_task(void *p, int t, int T)
{
    inner_ctx *c = p;
    atomic_fetch_add(&c->n->inner_calls, 1);
    if (t != 0 || T != 1 || !pthread_equal(pthread_self(), c->outer))
        atomic_fetch_add(&c->n->bad, 1);
}

static void inner_phase(void *p, int phase, int t, int T)
{
    inner_ctx *c = p;
    atomic_fetch_add(&c->n->inner_calls, 1);
    if (phase < 0 || phase > 1 || t != 0 || T != 1 || !pthread_equal(pthread_self(), c->outer))
        atomic_fetch_add(&c->n->bad, 1);
}

static void inner_range(void *p, size_t b, size_t e)
{
    inner_ctx *c = p;
    if (b != 0 || e != 1000 || !pthread_equal(pthread_self(), c->outer))
        atomic_fetch_add(&c->n->bad, 1);
}

static void outer_task(void *p, int t, int T)
{
    (void)t;
    (void)T;
    inner_ctx c = {p, pthread_self()};
    kern_run(4, inner_task, &c);
    kern_run_phases(4, 2, inner_phase, &c);
    kern_parallel_for(1000, 1, inner_range, &c);
}

TEST(threads_nested_calls_run_serially)
{
    nest n;
    memset(&n, 0, sizeof n);
    kern_set_pool_adapt(0);
    kern_set_threads(3);
    kern_run(3, outer_task, &n);
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    CHECK(atomic_load(&n.bad) == 0);
    CHECK(atomic_load(&n.inner_calls) == 3 * 3);
}

/* ---- kern_parallel_for and kern_split ---------------------------------------------------- */

typedef struct {
    unsigned char *hits;
    atomic_int calls, short_ranges, off_caller;
    size_t grain;
    pthread_t caller;
} coverage;

static void cover_range(void *p, size_t b, size_t e)
{
    coverage *c = p;
    atomic_fetch_add(&c->calls, 1);
    if (e - b < c->grain)
        atomic_fetch_add(&c->short_ranges, 1);
    if (!pthread_equal(pthread_self(), c->caller))
        atomic_fetch_add(&c->off_caller, 1);
    for (size_t i = b; i < e; i++)
        c->hits[i]++;
}

static int check_cover(size_t n, size_t grain, int threads)
{
    coverage c;
    memset(&c, 0, sizeof c);
    c.hits = calloc(n + 1, 1);
    c.grain = grain ? grain : 1;
    c.caller = pthread_self();
    kern_set_pool_adapt(0);
    kern_set_threads(threads);
    kern_parallel_for(n, grain, cover_range, &c);
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= c.hits[i] == 1;
    int calls = atomic_load(&c.calls);
    ok &= n == 0 ? calls == 0 : calls >= 1 && calls <= threads;
    ok &= calls < 2 || atomic_load(&c.short_ranges) == 0; /* several ranges: each >= grain */
    if (n < 2 * c.grain) /* one range, on the caller */
        ok &= calls <= 1 && atomic_load(&c.off_caller) == 0;
    free(c.hits);
    if (!ok)
        test_fail(__FILE__, __LINE__, "n=%zu grain=%zu threads=%d: %d calls", n, grain, threads,
                  calls);
    return ok;
}

TEST(threads_parallel_for_covers_each_index_once)
{
    static const size_t ns[] = {0, 1, 2, 5, 7, 100, 1001, 65537};
    static const size_t grains[] = {0, 1, 3, 64, 1000};
    for (int threads = 1; threads <= 4; threads++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                if (!check_cover(ns[i], grains[g], threads))
                    return;
}

TEST(threads_split_partitions_contiguously)
{
    static const size_t ns[] = {0, 1, 5, 16, 17, 1000003};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int T = 1; T <= 7; T++) {
            size_t expect = 0, n = ns[i];
            for (int t = 0; t < T; t++) {
                size_t b, e;
                kern_split(n, t, T, &b, &e);
                CHECK_MSG(b == expect && e >= b, "n=%zu T=%d t=%d: [%zu,%zu)", n, T, t, b, e);
                /* balanced: every share is floor(n/T) or one more, larger ones first */
                CHECK(e - b == n / T + ((size_t)t < n % T ? 1 : 0));
                expect = e;
            }
            CHECK(expect == n);
        }
}

/* ---- GEMM on the pool ---------------------------------------------------------------------- */

TEST(threads_gemm_bit_identical_to_serial)
{
    enum { M = 150, N = 200, K = 170 };
    nerve_rng r;
    nerve_rng_seed(&r, 21);
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *S = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++)
        A[i] = nerve_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < K * N; i++)
        B[i] = nerve_rng_uniform(&r) - 0.5f;
    kern_set_pool_adapt(0);
    kern_set_threads(2);
    int split = kern_sgemm_threads(M, N, K) == 2;
    kern_sgemm_serial(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, S, N);
    int same = 1;
    for (int rep = 0; rep < 5; rep++) {
        memset(C, 0, sizeof(float) * M * N);
        kern_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        same &= memcmp(C, S, sizeof(float) * M * N) == 0;
    }
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    free(A), free(B), free(C), free(S);
    CHECK(split); /* the shape really is shared between two threads */
    CHECK(same);
}

/* ---- many tiny runs: no lost wake-up, no deadlock ---------------------------------------- */

static void touch_task(void *p, int t, int T)
{
    (void)T;
    atomic_fetch_add((atomic_int *)p, t + 1);
}

/* A watchdog against hangs, not a timer: a lost wake-up leaves a run waiting forever, so
 * if the runs have not finished after WATCHDOG_S seconds (generous: 10000 runs take well
 * under a second on an idle machine and a few on a loaded one), the test fails saying how
 * far they got. No duration is asserted. */
#define WATCHDOG_S 120

typedef struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    int done;
    atomic_int progress;
} watchdog;

static void *watch(void *p)
{
    watchdog *w = p;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_S;
    pthread_mutex_lock(&w->lock);
    int r = 0;
    while (!w->done && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&w->done_cv, &w->lock, &until);
    int done = w->done;
    pthread_mutex_unlock(&w->lock);
    if (!done) {
        fprintf(stderr, "    hung: %d of 10000 runs finished after %d s\n",
                atomic_load(&w->progress), WATCHDOG_S);
        fflush(NULL);
        _exit(1);
    }
    return NULL;
}

TEST(threads_many_tiny_runs_never_hang)
{
    atomic_int sum = 0;
    watchdog w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t dog;
    CHECK(pthread_create(&dog, NULL, watch, &w) == 0);
    kern_set_pool_adapt(0);
    kern_set_threads(2);
    for (int i = 0; i < 10000; i++) {
        kern_run(2, touch_task, &sum);
        atomic_store(&w.progress, i + 1);
        if (i % 1000 == 999)
            sleep_us(500); /* the workers stop spinning and block */
    }
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    pthread_mutex_lock(&w.lock);
    w.done = 1;
    pthread_cond_signal(&w.done_cv);
    pthread_mutex_unlock(&w.lock);
    pthread_join(dog, NULL);
    CHECK(atomic_load(&sum) == 10000 * 3);
}

/* Two application threads share the pool: their runs queue, none is lost. */
static void *app_thread(void *p)
{
    for (int i = 0; i < 2000; i++)
        kern_run(2, touch_task, p);
    return NULL;
}

TEST(threads_concurrent_callers_share_the_pool)
{
    atomic_int sum = 0;
    kern_set_pool_adapt(0);
    kern_set_threads(2);
    pthread_t other;
    CHECK(pthread_create(&other, NULL, app_thread, &sum) == 0);
    app_thread(&sum);
    pthread_join(other, NULL);
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    CHECK(atomic_load(&sum) == 2 * 2000 * 3);
}

/* A child forked after the pool started gets a working pool of its own. */
TEST(threads_pool_works_after_fork)
{
    if (getenv("NERVE_UNDER_QEMU")) { /* make test-aarch64 */
        printf("    skipped under qemu-user: its emulation of fork() in a process with running "
               "threads aborts the child (assertion cpu == current_cpu in QEMU 7.2's TCG)\n");
        return;
    }
    atomic_int sum = 0;
    kern_set_pool_adapt(0);
    kern_set_threads(2);
    kern_run(2, touch_task, &sum);
    pid_t pid = fork();
    if (pid == 0) {
        atomic_int child = 0;
        for (int i = 0; i < 100; i++)
            kern_run(2, touch_task, &child);
        _exit(atomic_load(&child) == 300 ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    kern_set_threads(0);
    kern_set_pool_adapt(-1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the load adaptation ------------------------------------------------------------------ */

TEST(threads_width_follows_cores_and_load)
{
    CHECK(kern_pool_width(2, 2, 0.0) == 2);
    CHECK(kern_pool_width(8, 2, 0.0) == 2);  /* never more threads than cores */
    CHECK(kern_pool_width(2, 2, 1.0) == 1);  /* one core busy elsewhere */
    CHECK(kern_pool_width(2, 2, 0.4) == 2);  /* now and then */
    CHECK(kern_pool_width(2, 2, 0.7) == 2);  /* still mostly free */
    CHECK(kern_pool_width(2, 2, 0.8) == 1);  /* busy most of the time */
    CHECK(kern_pool_width(2, 2, 16.0) == 1); /* a crowded machine: the caller alone */
    CHECK(kern_pool_width(4, 8, 2.0) == 4);
    CHECK(kern_pool_width(8, 8, 2.6) == 6);
    CHECK(kern_pool_width(8, 8, 2.8) == 5);
    CHECK(kern_pool_width(1, 8, 0.0) == 1);
    CHECK(kern_pool_width(3, 0, -1.0) == 1);
    CHECK(kern_loadavg_running("0.52 0.58 0.59 3/467 12345\n") == 3);
    CHECK(kern_loadavg_running("17.87 17.47 14.72 16/159 9864") == 16);
    CHECK(kern_loadavg_running("0.52 0.58 0.59") == -1);
    CHECK(kern_loadavg_running("0.52 0.58 0.59 x/467 1") == -1);
    CHECK(kern_loadavg_running("0.52 0.58 0.59 3467 1") == -1);
    CHECK(kern_loadavg_running("") == -1);
    CHECK(kern_loadavg_running("1 2 3 99999999999999999999/4 5") == -1);
    /* a thread's state follows the last ')' of its stat line (a name may hold one) */
    CHECK(kern_stat_running("4242 (nerve) R 1 4242 4242 0 -1") == 1);
    CHECK(kern_stat_running("4242 (nerve) S 1 4242 4242 0 -1") == 0);
    CHECK(kern_stat_running("4242 (a) R b) S 1 2") == 0);
    CHECK(kern_stat_running("4242 (a) S b) R 1 2") == 1);
    CHECK(kern_stat_running("4242 nerve R") == 0);
    CHECK(kern_stat_running("") == 0);
}

typedef struct {
    pthread_t caller;
    atomic_int parts, off_caller;
} where;

static void where_task(void *p, int t, int T)
{
    where *w = p;
    (void)t;
    (void)T;
    atomic_fetch_add(&w->parts, 1);
    if (!pthread_equal(pthread_self(), w->caller))
        atomic_fetch_add(&w->off_caller, 1);
}

/* In a child allowed one core, a run of 4 parts (the setting) takes them all on the caller:
 * no worker is woken to fight it for the core. */
TEST(threads_one_core_runs_on_the_caller)
{
    if (getenv("NERVE_UNDER_QEMU")) { /* make test-aarch64: see threads_pool_works_after_fork */
        printf("    skipped under qemu-user (fork with running threads)\n");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0)
            _exit(3);
        kern_set_pool_adapt(1); /* samples afresh */
        kern_set_threads(4);
        int bad = kern_threads_now() != 1;
        for (int i = 0; i < 50; i++) {
            where w = {pthread_self(), 0, 0};
            kern_run(4, where_task, &w);
            bad |= atomic_load(&w.parts) != 4 || atomic_load(&w.off_caller) != 0;
        }
        _exit(bad ? 1 : 0);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
