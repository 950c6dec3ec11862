/* The README's C example compiles as written and runs: extract it, build it against this
 * build's libnerve.a, run it. */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(fp);
    return buf;
}

TEST(readme_c_example_compiles_and_trains_xor)
{
    char *readme = read_file("README.md");
    CHECK(readme != NULL);
    char *start = strstr(readme, "```c\n#include <nerve.h>");
    CHECK(start != NULL);
    start += 5;
    char *end = strstr(start, "```");
    CHECK(end != NULL);
    char src[600], exe[600], cmd[2400];
    snprintf(src, sizeof src, "%s/xor.c", test_tmpdir());
    snprintf(exe, sizeof exe, "%s/xor", test_tmpdir());
    FILE *fp = fopen(src, "w");
    CHECK(fp != NULL);
    fwrite(start, 1, (size_t)(end - start), fp);
    fclose(fp);
    free(readme);
    const char *build = test_build_dir();
    const char *san = strstr(build, "san") ? "-fsanitize=address,undefined" : "";
    /* NERVE_TEST_CC and NERVE_TEST_EXEC: the compiler and the launcher of a cross build's
     * tests (make test-aarch64: the cross compiler, static, and qemu-aarch64) */
    const char *cc = getenv("NERVE_TEST_CC"), *exec = getenv("NERVE_TEST_EXEC");
    snprintf(cmd, sizeof cmd, "%s -std=c11 -Wall -Wextra -Werror -Iinclude %s %s -o %s %s/libnerve.a -lz -lpng -lm -pthread",
             cc ? cc : "cc", san, src, exe, build);
    CHECK_MSG(system(cmd) == 0, "compiling the README example failed: %s", cmd);
    snprintf(cmd, sizeof cmd, "%s %s", exec ? exec : "", exe);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    char line[256] = "";
    CHECK(fgets(line, sizeof line, p) != NULL);
    int st = pclose(p);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    float loss = -1;
    CHECK(sscanf(line, "final loss %f", &loss) == 1);
    CHECK_MSG(loss >= 0 && loss < 0.05f, "XOR final loss %g", loss);
}

/* The README says exactly which files are Python: every tracked .py file is named in it,
 * and none is part of the product (src/, cli/, include/). */
TEST(readme_names_every_python_file_and_the_product_has_none)
{
    static char out[1 << 16];
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd \"$OLDPWD\" && git ls-files '*.py'");
    int st = test_run(cmd, out, sizeof out);
    if (st != 0) /* not a git checkout (a tarball): every .py file below the tree */
        st = test_run("cd \"$OLDPWD\" && find . -name '*.py' -not -path './build*' | sed 's|^\\./||' | sort",
                      out, sizeof out);
    CHECK_MSG(st == 0, "listing the .py files failed:\n%s", out);
    char *readme = read_file("README.md");
    CHECK(readme != NULL);
    const char *para = strstr(readme, "**What is Python and what is not.**");
    CHECK_MSG(para != NULL, "README.md has no paragraph saying what is Python");
    const char *end = strstr(para, "\n\n");
    size_t plen = end ? (size_t)(end - para) : strlen(para);
    int files = 0;
    for (const char *line = out; *line;) {
        size_t len = strcspn(line, "\n");
        if (len) {
            char path[512];
            snprintf(path, sizeof path, "%.*s", (int)(len < 500 ? len : 500), line);
            files++;
            CHECK_MSG(strncmp(path, "src/", 4) && strncmp(path, "cli/", 4) && strncmp(path, "include/", 8),
                      "%s: Python in the product", path);
            /* named as a path, or as a pattern like bench/torch_*.py */
            const char *slash = strrchr(path, '/');
            char pattern[512];
            snprintf(pattern, sizeof pattern, "%.*s/torch_*.py", slash ? (int)(slash - path) : 0, path);
            int named = 0;
            for (const char *p = para; p < para + plen && !named; p++)
                named = !strncmp(p, path, strlen(path)) ||
                        (!strncmp(slash ? slash + 1 : path, "torch_", 6) && !strncmp(p, pattern, strlen(pattern)));
            CHECK_MSG(named, "%s is Python, and README.md's paragraph on Python does not name it", path);
        }
        line += len + (line[len] == '\n');
    }
    CHECK_MSG(files >= 1, "found no .py file at all:\n%s", out);
    free(readme);
}
