/* The instruction-set choice (src/kernels/isa.c): one detection, NERVE_ISA as a ceiling for
 * the process, kern_set_isa for tests. `make check-isa` runs the kernel and operator tests
 * once per available path; these check the choice itself. */
#include "test.h"

#include "../src/kernels/kernels.h"
#include "nerve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(isa_forced_choice_is_what_every_route_reads)
{
    const char *before = kern_isa_name();
    CHECK(kern_set_isa("portable"));
    CHECK(kern_isa_active() == KERN_ISA_PORTABLE);
    CHECK(strcmp(nerve_isa_name(), "portable") == 0);
    /* with the portable path forced, no vector route is offered */
    CHECK(!kern_conv_direct_vector());
    CHECK(!kern_conv_direct_fits(3, 5, 5));
    CHECK(!kern_conv_direct_kvec_fits(6, 16, 5, 5));
    CHECK(!kern_conv_direct_adjoint_fits(6, 16, 5, 5, 2, 2));
    CHECK(!kern_set_isa("no-such-path"));
    CHECK(!kern_set_isa(NULL));
    CHECK(kern_isa_active() == KERN_ISA_PORTABLE);
    for (int i = 0; i < KERN_ISA_COUNT; i++) {
        int ok = nerve_set_isa(kern_isa_label((kern_isa)i));
        CHECK_MSG(ok == kern_isa_available((kern_isa)i), "%s: set %d, available %d",
                  kern_isa_label((kern_isa)i), ok, kern_isa_available((kern_isa)i));
        if (ok)
            CHECK((int)kern_isa_active() == i);
    }
    CHECK(kern_isa_available(KERN_ISA_PORTABLE));
#if !defined(__x86_64__)
    CHECK(!kern_isa_available(KERN_ISA_AVX2) && !kern_isa_available(KERN_ISA_AVX512));
#endif
#if !defined(__aarch64__)
    CHECK(!kern_isa_available(KERN_ISA_NEON));
#endif
    CHECK(nerve_set_isa("auto"));
    CHECK_MSG(strcmp(kern_isa_name(), before) == 0, "auto gave %s, the default was %s",
              kern_isa_name(), before);
}

/* NERVE_ISA, read by a fresh process: the CLI reports the path it runs. */
TEST(isa_env_var_sets_the_path_and_reports_bad_values)
{
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "NERVE_ISA=portable %s version", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(strstr(out, "kernel instruction set: portable"), "%s", out);
    CHECK_MSG(!strstr(out, "NERVE_ISA=portable "), "no warning expected: %s", out);

    snprintf(cmd, sizeof cmd, "NERVE_ISA=sse9 %s version", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(strstr(out, "NERVE_ISA=sse9 names no instruction set"), "%s", out);
    /* a bad value falls back to the CPU's best */
    static const kern_isa best_first[] = {KERN_ISA_AVX512, KERN_ISA_AVX2, KERN_ISA_NEON};
    const char *best = "portable";
    for (size_t k = sizeof best_first / sizeof *best_first; k-- > 0;)
        if (kern_isa_available(best_first[k]))
            best = kern_isa_label(best_first[k]);
    char want[64];
    snprintf(want, sizeof want, "kernel instruction set: %s ", best);
    if (!getenv("NERVE_ISA")) /* (here NERVE_ISA does not narrow what is available) */
        CHECK_MSG(strstr(out, want), "want '%s' in %s", want, out);

    /* a path this CPU lacks: named as such, never run */
    const char *absent = kern_isa_available(KERN_ISA_NEON) || getenv("NERVE_ISA") ? NULL : "neon";
    if (absent) {
        snprintf(cmd, sizeof cmd, "NERVE_ISA=%s %s version", absent, test_nerve());
        CHECK(test_run(cmd, out, sizeof out) == 0);
        CHECK_MSG(strstr(out, "is not available on this CPU"), "%s", out);
    }
}
