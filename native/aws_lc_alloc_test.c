/*
 * Checks native/aws_lc_alloc.c's contract with aws-lc on glibc, with mimalloc's three functions
 * stood in for by glibc's malloc, malloc_usable_size and a free that first checks the block it
 * is given is all zero. Built and run by the test `native::aws_lc_frees_zeroed_memory`
 * (tests/it/native.rs). Prints "ok <checks>" and exits 0, or the first failure and exits 1.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *OPENSSL_memory_alloc(size_t size);
void OPENSSL_memory_free(void *ptr);
size_t OPENSSL_memory_get_size(void *ptr);
void *OPENSSL_memory_realloc(void *ptr, size_t size);

static unsigned long checks, frees, unzeroed;

void *mi_malloc(size_t size) { return malloc(size); }
size_t mi_usable_size(const void *ptr) { return malloc_usable_size((void *)ptr); }
void mi_free(void *ptr) {
    const unsigned char *p = ptr;
    size_t n = malloc_usable_size(ptr);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            unzeroed++;
            break;
        }
    }
    frees++;
    free(ptr);
}

#define FAIL(...) do { printf(__VA_ARGS__); return 1; } while (0)

int main(void) {
    for (size_t n = 1; n <= 5000; n += (n < 300 ? 1 : 97)) {
        unsigned char *a = OPENSSL_memory_alloc(n);
        if (a == NULL) FAIL("alloc %zu gave NULL\n", n);
        if (OPENSSL_memory_get_size(a) < n) FAIL("get_size %zu < %zu\n", OPENSSL_memory_get_size(a), n);
        memset(a, 0xA5, n);
        unsigned long before = frees;
        /* grow, then shrink: the contents kept up to the smaller size, the old block zeroed */
        unsigned char *b = OPENSSL_memory_realloc(a, n * 2 + 1);
        if (b == NULL) FAIL("realloc to %zu gave NULL\n", n * 2 + 1);
        for (size_t i = 0; i < n; i++)
            if (b[i] != 0xA5) FAIL("realloc %zu -> %zu lost byte %zu\n", n, n * 2 + 1, i);
        if (frees != before + 1) FAIL("realloc did not free the old block\n");
        memset(b, 0x5A, n * 2 + 1);
        unsigned char *c = OPENSSL_memory_realloc(b, n / 2 + 1);
        for (size_t i = 0; i < n / 2 + 1; i++)
            if (c[i] != 0x5A) FAIL("realloc down to %zu lost byte %zu\n", n / 2 + 1, i);
        memset(c, 0xFF, OPENSSL_memory_get_size(c));
        OPENSSL_memory_free(c);
        if (frees != before + 3) FAIL("free did not free\n");
        checks++;
    }
    OPENSSL_memory_free(NULL);
    if (unzeroed) FAIL("%lu of %lu blocks were freed with bytes left in them\n", unzeroed, frees);
    printf("ok %lu\n", checks);
    return 0;
}
