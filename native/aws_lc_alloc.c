/*
 * aws-lc's heap (OPENSSL_malloc and friends) on mimalloc, for the image's static musl build
 * (build.rs links this object into the `allim` binary on every musl target; the glibc build
 * keeps aws-lc's default, glibc's malloc).
 *
 * Why: Rust allocates through mimalloc there, but aws-lc (RSA verification of every SNS
 * message, TLS) allocates through musl's malloc, which maps and unmaps a 4 KB page for its small
 * size classes as they fill and empty. Under the SNS webhook's load strace counted ~900
 * mmap/munmap pairs of 4,096 bytes a second, and perf put 10 % of the server's samples in
 * musl's malloc, mmap and munmap (bench/README.md, 2026-12-05).
 *
 * How: aws-lc declares these four functions weak (crypto/mem.c) and calls them, when defined,
 * for every allocation from the first, so nothing allocated one way is freed the other. Its
 * contract: OPENSSL_memory_free zeroes the memory before returning it (as aws-lc's own free
 * does with OPENSSL_cleanse: key material must not linger), is never passed NULL, and none of
 * the four may call back into aws-lc. native/aws_lc_alloc_test.c checks the zeroing and the
 * copy on reallocation (test `native::aws_lc_frees_zeroed_memory`).
 */
#include <stddef.h>

void *mi_malloc(size_t size);
void mi_free(void *ptr);
size_t mi_usable_size(const void *ptr);
void *memset(void *ptr, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);

/* explicit_bzero's effect with what the binary links anyway: this object comes after libc on the
 * link line, so it may only call what other code already pulled in (memset, memcpy). The empty
 * asm that reads the memory keeps the compiler from dropping the memset as a dead store. */
static void zero(void *ptr, size_t len) {
    memset(ptr, 0, len);
    __asm__ __volatile__("" : : "r"(ptr) : "memory");
}

void *OPENSSL_memory_alloc(size_t size) { return mi_malloc(size); }

void OPENSSL_memory_free(void *ptr) {
    if (ptr == NULL) {
        return;
    }
    zero(ptr, mi_usable_size(ptr));
    mi_free(ptr);
}

size_t OPENSSL_memory_get_size(void *ptr) { return ptr == NULL ? 0 : mi_usable_size(ptr); }

/* A new block, the contents copied, the old one zeroed and freed (never moved in place
 * unzeroed, as a plain realloc would leave it). On failure the old block stays as it was. */
void *OPENSSL_memory_realloc(void *ptr, size_t size) {
    void *fresh = mi_malloc(size);
    if (fresh == NULL) {
        return NULL;
    }
    if (ptr != NULL) {
        size_t old = mi_usable_size(ptr);
        memcpy(fresh, ptr, old < size ? old : size);
        OPENSSL_memory_free(ptr);
    }
    return fresh;
}
