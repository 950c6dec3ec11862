/* The instruction-set choice (isa.h): detection, NERVE_ISA and the forced choice. */
#include "isa.h"

#include "nerve.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const labels[KERN_ISA_COUNT] = {"portable", "avx2", "avx512", "neon"};

/* Order within one architecture: a path of higher rank may use everything below it. */
static const int rank[KERN_ISA_COUNT] = {0, 1, 2, 1};

const char *kern_isa_label(kern_isa isa)
{
    return (unsigned)isa < KERN_ISA_COUNT ? labels[isa] : "?";
}

/* What the CPU has, regardless of NERVE_ISA. */
static int cpu_has(kern_isa isa)
{
    switch (isa) {
    case KERN_ISA_PORTABLE:
        return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case KERN_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KERN_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
    case KERN_ISA_NEON:
        return 1; /* Advanced SIMD is part of every aarch64 CPU */
#endif
    default:
        return 0;
    }
}

int kern_isa_avx512_vbmi(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static _Atomic int known = -1;
    int k = atomic_load(&known);
    if (k < 0) {
        __builtin_cpu_init();
        k = kern_isa_avx512_vnni() && __builtin_cpu_supports("avx512vbmi");
        atomic_store(&known, k);
    }
    return k;
#else
    return 0;
#endif
}

int kern_isa_avx512_vnni(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static _Atomic int known = -1;
    int k = atomic_load(&known);
    if (k < 0) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512dq");
        atomic_store(&known, k);
    }
    return k;
#else
    return 0;
#endif
}

static int lookup(const char *name)
{
    for (int i = 0; i < KERN_ISA_COUNT; i++)
        if (strcmp(name, labels[i]) == 0)
            return i;
    return -1;
}

/* NERVE_ISA as a path, -1 when unset; read once. An unknown or unavailable value is
 * reported on stderr once and ignored (the CPU's best is used). */
static _Atomic int ceiling = -2; /* -2: not read yet */

static int env_ceiling(void)
{
    int c = atomic_load(&ceiling);
    if (c != -2)
        return c;
    const char *env = getenv("NERVE_ISA");
    c = -1;
    if (env && *env && strcmp(env, "auto") != 0) {
        int i = lookup(env);
        if (i >= 0 && cpu_has((kern_isa)i))
            c = i;
        else {
            static atomic_flag warned = ATOMIC_FLAG_INIT;
            if (!atomic_flag_test_and_set(&warned))
                fprintf(stderr,
                        "nerve: NERVE_ISA=%s %s; using the best path this CPU has (set "
                        "NERVE_ISA to one of:%s%s%s%s)\n",
                        env, i < 0 ? "names no instruction set" : "is not available on this CPU",
                        cpu_has(KERN_ISA_PORTABLE) ? " portable" : "",
                        cpu_has(KERN_ISA_AVX2) ? " avx2" : "", cpu_has(KERN_ISA_AVX512) ? " avx512" : "",
                        cpu_has(KERN_ISA_NEON) ? " neon" : "");
        }
    }
    int expected = -2;
    atomic_compare_exchange_strong(&ceiling, &expected, c);
    return atomic_load(&ceiling);
}

int kern_isa_available(kern_isa isa)
{
    if ((unsigned)isa >= KERN_ISA_COUNT || !cpu_has(isa))
        return 0;
    int c = env_ceiling();
    return c < 0 || isa == KERN_ISA_PORTABLE || isa == (kern_isa)c ||
           (rank[isa] < rank[c] && rank[isa] > 0 && cpu_has((kern_isa)c) &&
            /* the same architecture: below AVX-512 is AVX2, never NEON */
            ((isa == KERN_ISA_NEON) == (c == KERN_ISA_NEON)));
}

static kern_isa default_isa(void)
{
    int c = env_ceiling();
    if (c >= 0)
        return (kern_isa)c;
    static const kern_isa best_first[] = {KERN_ISA_AVX512, KERN_ISA_AVX2, KERN_ISA_NEON};
    for (size_t i = 0; i < sizeof best_first / sizeof *best_first; i++)
        if (cpu_has(best_first[i]))
            return best_first[i];
    return KERN_ISA_PORTABLE;
}

static _Atomic int active = -1; /* -1: not chosen yet */

kern_isa kern_isa_active(void)
{
    int a = atomic_load_explicit(&active, memory_order_relaxed);
    if (a < 0) {
        a = (int)default_isa();
        atomic_store(&active, a);
    }
    return (kern_isa)a;
}

int kern_set_isa(const char *name)
{
    if (!name)
        return 0;
    if (strcmp(name, "auto") == 0) {
        atomic_store(&active, (int)default_isa());
        return 1;
    }
    int i = lookup(name);
    if (i < 0 || !kern_isa_available((kern_isa)i))
        return 0;
    atomic_store(&active, i);
    return 1;
}

const char *kern_isa_name(void) { return labels[kern_isa_active()]; }

int nerve_set_isa(const char *name) { return kern_set_isa(name); }
const char *nerve_isa_name(void) { return kern_isa_name(); }
