/*
 * memcpy and memmove for the image's static x86_64 musl build (build.rs links this object ahead
 * of musl's libc.a, so musl's own two are never pulled in; nothing else changes).
 *
 * Why: musl's x86_64 memcpy is `rep movsq` after a byte loop, whose start-up costs the same at
 * any size: ~12 ns a call in a tight loop (bench/memcpy.sh; this file's is ~6 up to 64 bytes),
 * ~45 ns a call inside the server under load, where perf put 39 % of the shipped binary's CPU on
 * the HTTP batch path in it, against 11 % for glibc's memmove (bench/README.md). Rust
 * moves every struct over ~128 bytes (futures, rows, request parts) with a call to memcpy, so
 * short copies are what matters. musl's aarch64 build (the default Graviton image) already
 * uses Arm's optimized-routines copy and is left alone.
 *
 * There is no crate that replaces a static musl's memcpy (compiler_builtins' "mem" routines are
 * only linked on targets without a libc), so this is hand-written, after the shape of Arm's
 * optimized-routines memcpy: up to 64 bytes, every byte is read before any is written (so the
 * same code is memmove's for short lengths), from both ends with overlapping unaligned loads;
 * longer copies move 64 bytes a step, after loading the last (or first) 64 bytes up front, and
 * large forward copies use `rep movsb` (ERMS), which the CPU runs at full speed from ~2 KB.
 * SSE2 is the x86_64 baseline, so no CPU check is needed. native/memcpy_test.c checks every
 * length to 1,100 bytes at every alignment, and every overlap, against a byte loop.
 *
 * Compiled freestanding (no libc headers); GCC must not turn the loops back into memcpy calls,
 * hence -fno-tree-loop-distribute-patterns in build.rs.
 */
#include <stddef.h>
#include <stdint.h>
#include <emmintrin.h>

typedef uint64_t __attribute__((may_alias, aligned(1))) u64u;
typedef uint32_t __attribute__((may_alias, aligned(1))) u32u;

static inline __m128i ld(const unsigned char *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline void st(unsigned char *p, __m128i v) { _mm_storeu_si128((__m128i *)p, v); }

/* n <= 64: reads every byte before writing one, so overlap in either direction is fine. */
static inline void copy_upto64(unsigned char *d, const unsigned char *s, size_t n) {
    if (n >= 32) {
        __m128i a = ld(s), b = ld(s + 16), c = ld(s + n - 32), e = ld(s + n - 16);
        st(d, a);
        st(d + 16, b);
        st(d + n - 32, c);
        st(d + n - 16, e);
    } else if (n >= 16) {
        __m128i a = ld(s), b = ld(s + n - 16);
        st(d, a);
        st(d + n - 16, b);
    } else if (n >= 8) {
        uint64_t a = *(const u64u *)s, b = *(const u64u *)(s + n - 8);
        *(u64u *)d = a;
        *(u64u *)(d + n - 8) = b;
    } else if (n >= 4) {
        uint32_t a = *(const u32u *)s, b = *(const u32u *)(s + n - 4);
        *(u32u *)d = a;
        *(u32u *)(d + n - 4) = b;
    } else if (n > 0) {
        unsigned char a = s[0], b = s[n / 2], c = s[n - 1];
        d[0] = a;
        d[n / 2] = b;
        d[n - 1] = c;
    }
}

/* n > 64, d below s or not overlapping: 64 bytes a step from the front; the last 64 bytes are
 * loaded first, since the steps may overwrite them when d is less than 64 below s. */
static inline void copy_forward(unsigned char *d, const unsigned char *s, size_t n) {
    __m128i t0 = ld(s + n - 64), t1 = ld(s + n - 48), t2 = ld(s + n - 32), t3 = ld(s + n - 16);
    unsigned char *end = d + n - 64;
    while (d < end) {
        __m128i a = ld(s), b = ld(s + 16), c = ld(s + 32), e = ld(s + 48);
        st(d, a);
        st(d + 16, b);
        st(d + 32, c);
        st(d + 48, e);
        d += 64;
        s += 64;
    }
    st(end, t0);
    st(end + 16, t1);
    st(end + 32, t2);
    st(end + 48, t3);
}

/* n > 64, d above s and overlapping: 64 bytes a step from the back, the first 64 loaded first. */
static inline void copy_backward(unsigned char *d, const unsigned char *s, size_t n) {
    __m128i h0 = ld(s), h1 = ld(s + 16), h2 = ld(s + 32), h3 = ld(s + 48);
    unsigned char *dp = d + n;
    const unsigned char *sp = s + n;
    while (dp > d + 64) {
        dp -= 64;
        sp -= 64;
        __m128i a = ld(sp), b = ld(sp + 16), c = ld(sp + 32), e = ld(sp + 48);
        st(dp, a);
        st(dp + 16, b);
        st(dp + 32, c);
        st(dp + 48, e);
    }
    st(d, h0);
    st(d + 16, h1);
    st(d + 32, h2);
    st(d + 48, h3);
}

/* From here on `rep movsb` beats the 64-byte loop (bench/README.md, 2026-12-05). */
#define REP_MOVSB_FROM 2048

void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n <= 64) {
        copy_upto64(d, s, n);
    } else if (n < REP_MOVSB_FROM) {
        copy_forward(d, s, n);
    } else {
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n <= 64) {
        copy_upto64(d, s, n);
    } else if ((uintptr_t)d - (uintptr_t)s >= n) {
        /* d below s, or past the end of the source: front to back is safe. */
        copy_forward(d, s, n);
    } else {
        copy_backward(d, s, n);
    }
    return dst;
}
