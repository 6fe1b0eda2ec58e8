/*
 * Nanoseconds per memcpy call, by size: the libc's memcpy (musl's when built with musl-gcc,
 * glibc's with gcc) beside native/memcpy_x86_64.c (renamed allim_memcpy). bench/memcpy.sh builds
 * and runs it both ways. Calls go through volatile function pointers so the compiler cannot
 * inline or drop them; sources and destinations rotate through a 64 KB window, as Rust's moves
 * of futures and rows touch memory that is mostly in cache.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

void *allim_memcpy(void *restrict dst, const void *restrict src, size_t n);
typedef void *(*copy_fn)(void *restrict, const void *restrict, size_t);

static unsigned char src[1 << 16], dst[1 << 16];

static double ns_per_call(copy_fn volatile f, size_t n) {
    size_t span = sizeof(src) - n, calls = n >= 4096 ? 200000 : 2000000, off = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < calls; i++) {
        f(dst + off, src + (span - off), n);
        off = (off + 200) % (span + 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / calls;
}

int main(int argc, char **argv) {
    const char *libc = argc > 1 ? argv[1] : "libc";
    copy_fn volatile theirs = memcpy, ours = allim_memcpy;
    size_t sizes[] = {8, 16, 32, 64, 128, 200, 256, 512, 1024, 4096, 16384};
    memset(src, 7, sizeof(src));
    printf("| bytes | %s memcpy, ns | native/memcpy_x86_64.c, ns |\n| --- | --- | --- |\n", libc);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        /* best of 5, the least disturbed by the rest of the machine */
        double t = 1e18, o = 1e18;
        for (int r = 0; r < 5; r++) {
            double x = ns_per_call(theirs, sizes[i]), y = ns_per_call(ours, sizes[i]);
            t = x < t ? x : t;
            o = y < o ? y : o;
        }
        printf("| %zu | %.1f | %.1f |\n", sizes[i], t, o);
    }
    return 0;
}
