/* Runs every registered test in a child process and prints "N passed, M failed".
 * Usage: nerve_tests [substring...]   (only tests whose name or file contains one) */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
    qsort(tests, (size_t)n_tests, sizeof *tests, by_file_then_name);
    int passed = 0, failed = 0;
    const char *inproc = getenv("NERVE_TEST_INPROCESS");
    int in_process = inproc && strcmp(inproc, "1") == 0;
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
