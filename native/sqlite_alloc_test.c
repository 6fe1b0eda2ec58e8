/*
 * Checks native/sqlite_alloc.c on glibc, with mimalloc's four functions stood in for by glibc's
 * malloc, realloc, free and malloc_usable_size, and sqlite3_config stood in for by a function
 * that keeps what it is given. Built and run by the test `native::sqlite_heap_methods`
 * (tests/it/native.rs). Prints "ok <checks>" and exits 0, or the first failure and exits 1.
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_mem_methods.h"


static int configured, last_op, in_main;
static const sqlite3_mem_methods *given;
static unsigned long frees;

void *mi_malloc(size_t size) { return malloc(size); }
void *mi_realloc(void *ptr, size_t size) { return realloc(ptr, size); }
void mi_free(void *ptr) { frees++; free(ptr); }
size_t mi_usable_size(const void *ptr) { return malloc_usable_size((void *)ptr); }

int sqlite3_config(int op, ...) {
    va_list ap;
    va_start(ap, op);
    /* SQLite copies the struct when it is called (sqlite3GlobalConfig.m = *methods). */
    given = va_arg(ap, const sqlite3_mem_methods *);
    va_end(ap);
    last_op = op;
    configured += in_main ? 100 : 1;
    return 0;
}

#define FAIL(...) do { printf(__VA_ARGS__); return 1; } while (0)

int main(void) {
    in_main = 1;
    unsigned long checks = 0;
    if (configured != 1) FAIL("sqlite3_config was called %d times before main (want once)\n", configured);
    if (last_op != 4) FAIL("sqlite3_config op %d, want SQLITE_CONFIG_MALLOC (4)\n", last_op);
    const sqlite3_mem_methods m = *given;
    if (!m.xMalloc || !m.xFree || !m.xRealloc || !m.xSize || !m.xRoundup || !m.xInit || !m.xShutdown)
        FAIL("a method is missing\n");
    if (m.xInit(m.pAppData) != 0) FAIL("xInit did not return SQLITE_OK\n");
    if (m.xSize(NULL) != 0) FAIL("xSize(NULL) is not 0\n");
    void *zero = m.xMalloc(0);
    if (zero == NULL) FAIL("xMalloc(0) gave NULL\n");
    m.xFree(zero);
    for (int n = 1; n <= 70000; n += (n < 600 ? 1 : 997)) {
        int r = m.xRoundup(n);
        if (r < n || r % 8 != 0 || r - n >= 8) FAIL("xRoundup(%d) = %d\n", n, r);
        unsigned char *a = m.xMalloc(n);
        if (a == NULL) FAIL("xMalloc(%d) gave NULL\n", n);
        if (((size_t)a) % 8 != 0) FAIL("xMalloc(%d) is not 8-byte aligned\n", n);
        if (m.xSize(a) < n) FAIL("xSize %d < %d\n", m.xSize(a), n);
        memset(a, 0xA5, n);
        unsigned char *b = m.xRealloc(a, n * 2 + 1);
        if (b == NULL) FAIL("xRealloc to %d gave NULL\n", n * 2 + 1);
        for (int i = 0; i < n; i++)
            if (b[i] != 0xA5) FAIL("xRealloc %d -> %d lost byte %d\n", n, n * 2 + 1, i);
        if (m.xSize(b) < n * 2 + 1) FAIL("xSize after xRealloc %d < %d\n", m.xSize(b), n * 2 + 1);
        unsigned long before = frees;
        m.xFree(b);
        if (frees != before + 1) FAIL("xFree did not free\n");
        checks++;
    }
    m.xShutdown(m.pAppData);
    printf("ok %lu\n", checks);
    return 0;
}
