/*
 * SQLite's sqlite3_mem_methods and the sqlite3_config op that installs them, as in sqlite3.h
 * (part of SQLite's stable C interface). Declared here because sqlx's libsqlite3-sys does not
 * export its header's path to this crate's build script; shared by native/sqlite_alloc.c and its
 * test, native/sqlite_alloc_test.c.
 */
#ifndef ALLIM_SQLITE_MEM_METHODS_H
#define ALLIM_SQLITE_MEM_METHODS_H

typedef struct sqlite3_mem_methods {
    void *(*xMalloc)(int);
    void (*xFree)(void *);
    void *(*xRealloc)(void *, int);
    int (*xSize)(void *);
    int (*xRoundup)(int);
    int (*xInit)(void *);
    void (*xShutdown)(void *);
    void *pAppData;
} sqlite3_mem_methods;

int sqlite3_config(int op, ...);
#define SQLITE_CONFIG_MALLOC 4

#endif
