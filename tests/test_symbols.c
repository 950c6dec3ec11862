/* libnerve links cleanly into a user's program: the shared library exports nerve_* names and
 * nothing else (src/libnerve.map hides the internal ones), so no internal name can collide
 * with one of the user's. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Counts the symbols in `nm -D --defined-only` output (lines "<addr> <type> <name>") and
 * copies the first few that do not start with nerve_ into bad. Returns the count of those. */
static int foreign_symbols(const char *nm, int *total, char *bad, size_t n)
{
    int foreign = 0;
    size_t used = 0;
    *total = 0;
    bad[0] = '\0';
    for (const char *line = nm; *line;) {
        size_t len = strcspn(line, "\n");
        const char *name = line + len;
        while (name > line && name[-1] != ' ')
            name--;
        size_t nl = (size_t)(line + len - name);
        if (name > line && nl > 0) {
            (*total)++;
            if (strncmp(name, "nerve_", 6) != 0) {
                foreign++;
                if (used + nl + 2 < n)
                    used += (size_t)snprintf(bad + used, n - used, " %.*s", (int)nl, name);
            }
        }
        line += len + (line[len] == '\n');
    }
    return foreign;
}

TEST(libnerve_so_exports_only_nerve_names)
{
    static char out[1 << 20];
    char cmd[2200], bad[4096];
    const char *bin = test_nerve(); /* <absolute build dir>/nerve */
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%.*s/libnerve.so'", (int)(strrchr(bin, '/') - bin), bin);
    int st = test_run(cmd, out, sizeof out);
    CHECK_MSG(st == 0, "%s: exit %d\n%s", cmd, st, out);
    int total, foreign = foreign_symbols(out, &total, bad, sizeof bad);
    CHECK_MSG(total > 100, "nm listed only %d symbols:\n%s", total, out);
    CHECK_MSG(foreign == 0, "libnerve.so exports %d names outside nerve_ (of %d):%s", foreign, total, bad);
}

TEST(symbol_check_sees_a_foreign_name)
{
    char bad[256];
    int total;
    CHECK(foreign_symbols("0000000000001000 T nerve_tensor_new\n0000000000002000 T cfg_parse\n"
                          "0000000000003000 B nerve_x\n", &total, bad, sizeof bad) == 1);
    CHECK(total == 3 && !strcmp(bad, " cfg_parse"));
}
