/* The instruction-set choice: one place that knows which vector path the kernels take.
 *
 * Every vectorised route of the library (GEMM, the direct, kvec and Winograd convolutions,
 * pooling, the element-wise, normalisation and recurrent loops, im2col) asks
 * kern_isa_active() and takes the path it names; none tests the CPU itself. The choice is
 * made once: NERVE_ISA (portable, avx2, avx512, neon) if set, else the best the CPU has.
 * NERVE_ISA is a ceiling for the whole process: with NERVE_ISA=portable no vector path
 * runs, and kern_set_isa() cannot choose one above it either (so a test that walks every
 * path, run under NERVE_ISA=portable, runs only the portable one). */
#ifndef NERVE_KERNELS_ISA_H
#define NERVE_KERNELS_ISA_H

typedef enum kern_isa {
    KERN_ISA_PORTABLE, /* plain C (the compiler may still use the baseline vector unit) */
    KERN_ISA_AVX2,     /* x86-64 with AVX2 and FMA */
    KERN_ISA_AVX512,   /* x86-64 with AVX-512F */
    KERN_ISA_NEON,     /* aarch64 Advanced SIMD intrinsics */
    KERN_ISA_COUNT
} kern_isa;

/* The active path (detected and cached on first use; lock-free afterwards). */
kern_isa kern_isa_active(void);
/* Whether `isa` may be chosen: the CPU has it and NERVE_ISA does not rule it out. */
int kern_isa_available(kern_isa isa);
/* Whether the CPU has AVX-512 VNNI with BW, VL and DQ: the int8 kernels (q8*.c) run their
 * VNNI code when the active path is KERN_ISA_AVX512 and this holds, else the AVX2 code. */
int kern_isa_avx512_vnni(void);
/* 1 when the CPU has AVX-512 VBMI as well as kern_isa_avx512_vnni's set (vpermi2b: the
 * int8 link tables' lookups, 64 bytes at a time). */
int kern_isa_avx512_vbmi(void);
/* "portable", "avx2", "avx512", "neon". */
const char *kern_isa_label(kern_isa isa);
/* Forces a path by name, or "auto" for the default (NERVE_ISA, else the best); returns 0
 * (and changes nothing) when the name is unknown or the path is not available. */
int kern_set_isa(const char *name);
/* The active path's name. */
const char *kern_isa_name(void);

/* KERN_ISA_CLONES(name, (params), (args)) { body }: defines `static void name(params)`
 * compiled once per x86 vector width, the copy run chosen by kern_isa_active() at each call
 * (so a forced portable path runs the baseline copy). The body's loops are plain C that the
 * compiler vectorises to each copy's width; helpers it calls must be always_inline to be
 * compiled for that width. The build uses -std=c11 without FMA contraction, so every copy
 * computes the same values bit for bit. Elsewhere (aarch64, other compilers) it is one
 * plain function: Advanced SIMD is the aarch64 baseline. */
#if defined(__x86_64__) && defined(__GNUC__)
#define KERN_ISA_CLONES_ATTR(attr, name, params, args)                                           \
    static inline __attribute__((always_inline)) attr void name##_isa_body params;              \
    __attribute__((target("avx512f"))) attr static void name##_isa_avx512 params                \
    {                                                                                             \
        name##_isa_body args;                                                                    \
    }                                                                                             \
    __attribute__((target("avx2"))) attr static void name##_isa_avx2 params                     \
    {                                                                                             \
        name##_isa_body args;                                                                    \
    }                                                                                             \
    attr static void name##_isa_base params { name##_isa_body args; }                           \
    static void name params                                                                      \
    {                                                                                             \
        switch (kern_isa_active()) {                                                             \
        case KERN_ISA_AVX512: name##_isa_avx512 args; break;                                     \
        case KERN_ISA_AVX2: name##_isa_avx2 args; break;                                         \
        default: name##_isa_base args; break;                                                   \
        }                                                                                         \
    }                                                                                             \
    static inline __attribute__((always_inline)) attr void name##_isa_body params
#else
#define KERN_ISA_CLONES_ATTR(attr, name, params, args) attr static void name params
#endif
/* The same with an attribute (e.g. an optimize() one) on every copy. */
#define KERN_ISA_CLONES(name, params, args) KERN_ISA_CLONES_ATTR(, name, params, args)

#endif
