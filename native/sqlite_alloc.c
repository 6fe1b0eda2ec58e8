/*
 * SQLite's heap on mimalloc, for the image's static musl build (build.rs links this object into
 * the `allim` binary on every musl target; the glibc build keeps SQLite's default, glibc's
 * malloc).
 *
 * Why: Rust allocates through mimalloc there, but the bundled SQLite allocates through musl's
 * malloc, which maps and unmaps a 4 KB page for its small size classes as they fill and empty
 * (as it did for aws-lc: native/aws_lc_alloc.c). With the writer's statement journals in memory
 * (temp_store=MEMORY, src/store/mod.rs) every group commit allocates and frees its journal's
 * chunks: perf stat over the SNS scenario on SQLite counted ~30,000 mmap/munmap pairs against
 * ~2,900 without the setting, and the setting's gain seen with glibc (+13 % req/s) was gone
 * (bench/README.md, 2026-12-06 night).
 *
 * How: SQLITE_CONFIG_MALLOC, set by a constructor before main, so before sqlx opens the first
 * connection (sqlite3_config must precede sqlite3_initialize; it returns SQLITE_MISUSE after,
 * and SQLite then keeps its default: slower, never wrong), with SQLite's sqlite3_mem_methods
 * (native/sqlite_mem_methods.h). mimalloc's blocks are 16-byte aligned (SQLite needs 8) and mi_usable_size is their size.
 * native/sqlite_alloc_test.c checks the methods (test `native::sqlite_heap_methods`).
 */
#include <stddef.h>

#include "sqlite_mem_methods.h"

void *mi_malloc(size_t size);
void *mi_realloc(void *ptr, size_t size);
void mi_free(void *ptr);
size_t mi_usable_size(const void *ptr);

/* SQLite never asks for a negative size; 0 gets a valid block, as from malloc. */
static void *heap_malloc(int n) { return mi_malloc(n > 0 ? (size_t)n : 0); }
static void heap_free(void *p) { mi_free(p); }
static void *heap_realloc(void *p, int n) { return mi_realloc(p, n > 0 ? (size_t)n : 0); }
static int heap_size(void *p) { return p == NULL ? 0 : (int)mi_usable_size(p); }
/* What xMalloc(n) will really give: SQLite sizes some buffers (page cache, lookaside) by it.
 * Multiples of 8 are what its own default allocator rounds to. */
static int heap_roundup(int n) { return (n + 7) & ~7; }
static int heap_init(void *app) { (void)app; return 0; }
static void heap_shutdown(void *app) { (void)app; }

static const sqlite3_mem_methods methods = {
    heap_malloc, heap_free, heap_realloc, heap_size, heap_roundup, heap_init, heap_shutdown, NULL,
};

__attribute__((constructor)) static void sqlite_heap_on_mimalloc(void) {
    sqlite3_config(SQLITE_CONFIG_MALLOC, &methods);
}
