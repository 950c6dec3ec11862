/* Runs every registered test in a child process and prints "N passed, M failed".
 * Usage: nerve_tests [substring...]   (only tests whose name or file contains one)
 * NERVE_TEST_JOBS=N runs up to N tests at once (make test-aarch64: two emulated processes on
 * two cores); each test's own output is then held in a file and printed with its verdict,
 * and the verdict line adds the processor time the test used; NERVE_TEST_FIRST names tests
 * to start first (the longest, so that none is left running alone at the end). */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name;
    void (*fn)(void);
    const char *file;
} test_case;

static test_case *tests;
static int n_tests, cap_tests;
static int failures;
static char tmpdir[256];

void test_register(const char *name, void (*fn)(void), const char *file)
{
    if (n_tests == cap_tests) {
        cap_tests = cap_tests ? 2 * cap_tests : 256;
        tests = realloc(tests, (size_t)cap_tests * sizeof *tests);
        if (!tests)
            abort();
    }
    tests[n_tests++] = (test_case){name, fn, file};
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

int test_failed(void) { return failures; }

const char *test_build_dir(void)
{
    const char *d = getenv("NERVE_BUILD_DIR");
    return d ? d : "build";
}

const char *test_tmpdir(void) { return tmpdir; }

/* Seconds a test may run: NERVE_TEST_TIMEOUT, default 300 (sanitised builds are slow). */
static unsigned test_timeout(void)
{
    const char *env = getenv("NERVE_TEST_TIMEOUT");
    int v = env ? atoi(env) : 0;
    return v > 0 ? (unsigned)v : 300u;
}

static int selected(const test_case *t, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(t->name, argv[i]) || strstr(t->file, argv[i]))
            return 1;
    return 0;
}

static int by_file_then_name(const void *a, const void *b)
{
    const test_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static double cpu_seconds(const struct rusage *ru)
{
    return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
           1e-6 * (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);
}

static const char *why_failed(int ok, int status)
{
    return ok                                                         ? ""
           : WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM       ? " (timed out)"
           : WIFSIGNALED(status)                                      ? " (crashed)"
                                                                      : "";
}

/* Creates test i's fresh temporary directory in tmpdir; 0 on success. */
static int make_tmpdir(int i)
{
    char cmd[700];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nerve-test-%d-%d", (int)getpid(), i);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", tmpdir, tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", tmpdir);
        return 1;
    }
    return 0;
}

static void remove_dir(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* NERVE_TEST_JOBS > 1: up to `jobs` children at once. A child's stdout and stderr go to a
 * log of its own, copied to stdout (in one piece, before the verdict) when it ends. */
typedef struct {
    pid_t pid;
    int test;
    struct timespec t0;
    char dir[256], log[256];
} running_test;

static int run_parallel(int jobs, int argc, char **argv, int *passed, int *failed)
{
    running_test *run = calloc((size_t)jobs, sizeof *run);
    int *order = malloc(sizeof(int) * (size_t)(n_tests ? n_tests : 1)), n_order = 0;
    if (!run || !order)
        abort();
    /* NERVE_TEST_FIRST: names (separated by spaces) of the longest tests, started first so
     * that none of them is left running alone at the end; then the rest in order. */
    const char *first = getenv("NERVE_TEST_FIRST");
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n_tests; i++) {
            if (!selected(&tests[i], argc, argv))
                continue;
            size_t len = strlen(tests[i].name);
            int listed = 0;
            for (const char *at = first; at && (at = strstr(at, tests[i].name)); at += len)
                if ((at == first || at[-1] == ' ') && (at[len] == ' ' || at[len] == '\0'))
                    listed = 1;
            if (listed == (pass == 0))
                order[n_order++] = i;
        }
    int pos = 0, active = 0;
    for (;;) {
        while (active < jobs) {
            if (pos == n_order)
                break;
            int next = order[pos++];
            int slot = 0;
            while (run[slot].pid)
                slot++;
            running_test *r = &run[slot];
            if (make_tmpdir(next))
                return 2;
            snprintf(r->dir, sizeof r->dir, "%s", tmpdir);
            snprintf(r->log, sizeof r->log, "/tmp/nerve-test-%d-%d.log", (int)getpid(), next);
            r->test = next;
            clock_gettime(CLOCK_MONOTONIC, &r->t0);
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                int fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                    _exit(3);
                close(fd);
                alarm(test_timeout());
                nerve_clear_error();
                tests[next].fn();
                fflush(NULL);
                _exit(failures ? 1 : 0);
            }
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            r->pid = pid;
            active++;
        }
        if (!active)
            break;
        int status = 0;
        struct rusage before, after; /* the children's times, reaped ones only: the
                                         difference is the one reaped here */
        getrusage(RUSAGE_CHILDREN, &before);
        pid_t pid = waitpid(-1, &status, 0);
        getrusage(RUSAGE_CHILDREN, &after);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            perror("waitpid");
            return 2;
        }
        int slot = 0;
        while (slot < jobs && run[slot].pid != pid)
            slot++;
        if (slot == jobs)
            continue;
        running_test *r = &run[slot];
        double secs = seconds_since(&r->t0);
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        *passed += ok;
        *failed += !ok;
        FILE *f = fopen(r->log, "rb");
        if (f) {
            char buf[4096];
            size_t k;
            while ((k = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, k, stdout);
            fclose(f);
        }
        remove(r->log);
        const test_case *t = &tests[r->test];
        /* the processor time of the test and the programs it ran: what sizes a run on an idle
         * machine when this one is shared */
        double cpu = cpu_seconds(&after) - cpu_seconds(&before);
        printf("%s %-48s %6.2fs  %s%s  (cpu %.2fs)\n", ok ? "PASS" : "FAIL", t->name, secs, t->file,
               why_failed(ok, status), cpu);
        fflush(stdout);
        remove_dir(r->dir);
        r->pid = 0;
        active--;
    }
    free(run);
    free(order);
    return 0;
}

int main(int argc, char **argv)
{
    qsort(tests, (size_t)n_tests, sizeof *tests, by_file_then_name);
    /* Every part of a parallel run on a thread of its own, however busy the machine: without
     * this a loaded machine would run the multi-threaded paths on one thread. The adaptation
     * itself is tested in test_threads.c. */
    setenv("NERVE_POOL_ADAPT", "0", 0);
    int passed = 0, failed = 0;
    const char *inproc = getenv("NERVE_TEST_INPROCESS");
    int in_process = inproc && strcmp(inproc, "1") == 0;
    const char *jobs_env = getenv("NERVE_TEST_JOBS");
    int jobs = jobs_env ? atoi(jobs_env) : 1;
    if (jobs > 1 && !in_process) {
        int rc = run_parallel(jobs > 64 ? 64 : jobs, argc, argv, &passed, &failed);
        if (rc)
            return rc;
        printf("%d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
    }
    for (int i = 0; i < n_tests; i++) {
        test_case *t = &tests[i];
        if (!selected(t, argc, argv))
            continue;
        snprintf(tmpdir, sizeof tmpdir, "/tmp/nerve-test-%d-%d", (int)getpid(), i);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", tmpdir, tmpdir);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot create %s\n", tmpdir);
            return 2;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        fflush(NULL);
        /* NERVE_TEST_INPROCESS=1: no child per test, so that a debugger sees every test
         * (scripts/check_isa_portable.sh); a crash then ends the whole run. */
        if (in_process) {
            int before = failures;
            nerve_clear_error();
            t->fn();
            fflush(NULL);
            int ok = failures == before;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            passed += ok;
            failed += !ok;
            printf("%s %-48s %6.2fs  %s\n", ok ? "PASS" : "FAIL", t->name, secs, t->file);
            fflush(stdout);
            snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
            if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", tmpdir);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            /* A hung test (a deadlock, say) fails after TEST_TIMEOUT seconds instead of
             * stalling the whole run. */
            alarm(test_timeout());
            nerve_clear_error();
            t->fn();
            fflush(NULL);
            _exit(failures ? 1 : 0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (ok)
            passed++;
        else
            failed++;
        const char *why = ok                                                ? ""
                          : WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (timed out)"
                          : WIFSIGNALED(status)                              ? " (crashed)"
                                                                             : "";
        printf("%s %-48s %6.2fs  %s%s\n", ok ? "PASS" : "FAIL", t->name, secs, t->file, why);
        fflush(stdout);
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
