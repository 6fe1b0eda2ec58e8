//! The C that build.rs links into the static musl binary (the image's), checked here in the
//! ordinary (glibc) test build: `native/memcpy_x86_64.c`, the memcpy and memmove of the x86_64
//! build, against a byte loop (`native/memcpy_test.c`, compiled with build.rs's flags and the
//! functions renamed); `native/aws_lc_alloc.c`, aws-lc's heap on mimalloc, against aws-lc's
//! contract (`native/aws_lc_alloc_test.c`, mimalloc stood in for by glibc's malloc); and
//! `native/sqlite_alloc.c`, SQLite's heap on mimalloc (`native/sqlite_alloc_test.c`, the same
//! stand-ins and one for `sqlite3_config`).

use std::path::Path;
use std::process::Command;

fn cc(args: &[&str]) {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&compiler)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} (a C compiler is needed to build allim): {e}"));
    assert!(
        out.status.success(),
        "{compiler} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `native/<code>.c` to an object with `flags` (build.rs's), links it with its harness
/// `native/<harness>.c`, runs that, and returns the number of checks it printed as `ok <n>`.
fn run_harness(code: &str, flags: &[&str], harness: &str) -> u64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let object = path(&dir.path().join(format!("{code}.o")));
    let program = path(&dir.path().join(harness));
    let source = path(&root.join(format!("native/{code}.c")));
    let mut args = vec!["-O2"];
    args.extend_from_slice(flags);
    args.extend(["-c", &source, "-o", &object]);
    cc(&args);
    cc(&[
        "-O2",
        &path(&root.join(format!("native/{harness}.c"))),
        &object,
        "-o",
        &program,
    ]);
    let out = Command::new(&program).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{harness}: {stdout}");
    stdout
        .strip_prefix("ok ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{harness} printed {stdout:?}"))
}

#[cfg(target_arch = "x86_64")]
#[test]
fn memcpy_matches_a_byte_loop() {
    // The flags build.rs passes (cc's -O2, -ffreestanding, -fno-tree-loop-distribute-patterns).
    let checks = run_harness(
        "memcpy_x86_64",
        &[
            "-ffreestanding",
            "-fno-tree-loop-distribute-patterns",
            "-Dmemcpy=allim_memcpy",
            "-Dmemmove=allim_memmove",
        ],
        "memcpy_test",
    );
    // Every length, offset and overlap the program walks: 445,056 comparisons.
    assert!(checks > 400_000, "memcpy_test ran only {checks} checks");
}

/// Every block aws-lc frees is zeroed first (key material must not linger, as aws-lc's own free
/// ensures), and a reallocation keeps the contents up to the smaller size.
#[test]
fn aws_lc_frees_zeroed_memory() {
    let checks = run_harness("aws_lc_alloc", &[], "aws_lc_alloc_test");
    assert!(checks > 300, "aws_lc_alloc_test ran only {checks} sizes");
}

/// SQLite's heap is set once, before main, to methods that give aligned blocks of at least the
/// size asked (what `xSize` and `xRoundup` report), keep the contents on reallocation and free.
#[test]
fn sqlite_heap_methods() {
    let checks = run_harness("sqlite_alloc", &[], "sqlite_alloc_test");
    assert!(checks > 600, "sqlite_alloc_test ran only {checks} sizes");
}
