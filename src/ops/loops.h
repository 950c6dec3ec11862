/* Shared by the operators' element-wise loops (activation, elementwise, norm, pool): how
 * they are compiled for wide vectors and how they are split across the thread pool.
 *
 * The library is built for the baseline ISA; KERN_ISA_CLONES (src/kernels/isa.h) compiles a
 * function once more for AVX2 and AVX-512 and runs the copy of the path kern_isa_active()
 * names, so plain loops over restrict pointers vectorise to that width. The build uses
 * -std=c11, which turns off FMA contraction: every copy computes the same values bit for bit.
 *
 * Under the default -ftrapping-math a float comparison may raise FE_INVALID, so GCC
 * refuses to if-convert it and a loop with `y > 0 ? a : b` stays scalar below AVX-512
 * (whose masked stores sidestep that). The bit-pattern tests below are integer compares,
 * which vectorise everywhere. */
#ifndef NERVE_OPS_LOOPS_H
#define NERVE_OPS_LOOPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>


/* For the loop bodies that a cloned function calls: inlined, they are compiled for the
 * clone's ISA; a separate copy would be compiled for the baseline only. */
#if defined(__GNUC__)
#define OPS_INLINE static inline __attribute__((always_inline))
#else
#define OPS_INLINE static inline
#endif

/* Elements below which a loop stays on the calling thread: a fork/join costs a few
 * microseconds, about what 16k simple element updates cost. */
#define OPS_GRAIN ((size_t)1 << 14)

/* The grain, in items, for a loop whose items each cost `per_item` element updates. */
static inline size_t ops_grain(size_t per_item)
{
    return per_item >= OPS_GRAIN ? 1 : OPS_GRAIN / (per_item ? per_item : 1);
}

static inline int32_t ops_float_bits(float v)
{
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* v > 0, for v that is not NaN (a NaN with a clear sign bit counts as positive). */
static inline int ops_positive(float v) { return ops_float_bits(v) > 0; }

/* v < 0, for v that is not NaN (-0 is not negative). */
static inline int ops_negative(float v)
{
    int32_t b = ops_float_bits(v);
    return (b < 0) & (b != INT32_MIN);
}

/* 0 < v < hi, for v not NaN and hi > 0: non-negative floats order like their bit patterns. */
static inline int ops_between_zero_and(float v, float hi)
{
    int32_t b = ops_float_bits(v);
    return (b > 0) & (b < ops_float_bits(hi));
}

#endif
