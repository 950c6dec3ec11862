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
    snprintf(cmd, sizeof cmd, "cc -std=c11 -Wall -Wextra -Werror -Iinclude %s %s -o %s %s/libnerve.a -lz -lpng -lm -pthread",
             san, src, exe, build);
    CHECK_MSG(system(cmd) == 0, "compiling the README example failed: %s", cmd);
    snprintf(cmd, sizeof cmd, "%s", exe);
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
