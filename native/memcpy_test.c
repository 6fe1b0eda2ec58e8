/*
 * Checks native/memcpy_x86_64.c against a byte loop: every length to 1,100 bytes and a few large
 * ones, at every source and destination offset within 16 bytes (memcpy), and every overlap in
 * both directions (memmove); bytes around the destination must stay untouched. Built and run by
 * the test `native::memcpy_matches_a_byte_loop` (tests/it/native.rs) with the functions renamed:
 *   cc -O2 -ffreestanding -fno-tree-loop-distribute-patterns -Dmemcpy=allim_memcpy \
 *      -Dmemmove=allim_memmove -c native/memcpy_x86_64.c && cc -O2 native/memcpy_test.c ...
 * Prints "ok <checks>" and exits 0, or prints the first mismatch and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>

void *allim_memcpy(void *restrict dst, const void *restrict src, size_t n);
void *allim_memmove(void *dst, const void *src, size_t n);

#define CAP (70000 + 256)
static unsigned char buf[CAP], expect[CAP];
static unsigned long checks;

/* Only the bytes from 64 before to 64 after the two ranges are filled and compared. */
static size_t lo, hi;

static void fill(size_t d, size_t s, size_t n) {
    lo = (d < s ? d : s) - 64;
    hi = (d > s ? d : s) + n + 64;
    for (size_t i = lo; i < hi; i++) buf[i] = (unsigned char)(i * 131 + 7);
}

static int compare(const char *what, size_t n, size_t d, size_t s) {
    checks++;
    for (size_t i = lo; i < hi; i++) {
        if (buf[i] != expect[i]) {
            printf("%s n=%zu dst=+%zu src=+%zu: byte %zu is %u, expected %u\n", what, n, d, s, i,
                   buf[i], expect[i]);
            return 1;
        }
    }
    return 0;
}

/* The reference: copy through a temporary, which is memmove's meaning. */
static void reference(size_t d, size_t s, size_t n) {
    for (size_t i = lo; i < hi; i++) expect[i] = buf[i];
    unsigned char *tmp = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) tmp[i] = buf[s + i];
    for (size_t i = 0; i < n; i++) expect[d + i] = tmp[i];
    free(tmp);
}

int main(void) {
    size_t lengths[1200], count = 0;
    for (size_t n = 0; n <= 1100; n++) lengths[count++] = n;
    size_t large[] = {2047, 2048, 2049, 4096, 8832, 65536 + 7};
    for (size_t i = 0; i < sizeof large / sizeof *large; i++) lengths[count++] = large[i];

    for (size_t k = 0; k < count; k++) {
        size_t n = lengths[k];
        /* memcpy: disjoint source and destination, every offset pair within 16 bytes (fewer
         * for the large lengths, which take longer to check). */
        size_t step = n > 1100 ? 5 : 1;
        for (size_t d = 0; d < 16; d += step) {
            for (size_t s = 0; s < 16; s += step) {
                size_t dst = 64 + d, src = 64 + n + 64 + s;
                if (src + n + 64 >= CAP) continue;
                fill(dst, src, n);
                reference(dst, src, n);
                if (allim_memcpy(buf + dst, buf + src, n) != buf + dst) {
                    printf("memcpy n=%zu returned the wrong pointer\n", n);
                    return 1;
                }
                if (compare("memcpy", n, d, s)) return 1;
            }
        }
        /* memmove: the destination shifted by every distance up to n + 1 (and 64 past it), in
         * both directions; a sample of distances for the longest lengths. */
        if (n > 300 && n <= 1100 && n % 37 != 0) continue;
        size_t limit = n + 65;
        size_t shift_step = n > 1100 ? 61 : 1;
        for (size_t shift = 0; shift <= limit; shift += shift_step) {
            for (int dir = 0; dir < 2; dir++) {
                size_t base = 128;
                size_t src = dir ? base + shift : base, dst = dir ? base : base + shift;
                if (src + n + 64 >= CAP || dst + n + 64 >= CAP) continue;
                fill(dst, src, n);
                reference(dst, src, n);
                if (allim_memmove(buf + dst, buf + src, n) != buf + dst) {
                    printf("memmove n=%zu returned the wrong pointer\n", n);
                    return 1;
                }
                if (compare(dir ? "memmove (down)" : "memmove (up)", n, dst, src)) return 1;
            }
        }
    }
    printf("ok %lu\n", checks);
    return 0;
}
