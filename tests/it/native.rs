//! The C that build.rs links into the static musl binary (the image's), checked here in the
//! ordinary (glibc) test build: `native/memcpy_x86_64.c`, the memcpy and memmove of the x86_64
//! build, against a byte loop (`native/memcpy_test.c`, compiled with build.rs's flags and the
//! functions renamed); and `native/aws_lc_alloc.c`, aws-lc's heap on mimalloc, against aws-lc's
//! contract (`native/aws_lc_alloc_test.c`, mimalloc stood in for by glibc's malloc).

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

#[cfg(target_arch = "x86_64")]
#[test]
fn memcpy_matches_a_byte_loop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("memcpy.o");
    let program = dir.path().join("memcpy_test");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    // The flags build.rs passes (cc's -O2, -ffreestanding, -fno-tree-loop-distribute-patterns).
    cc(&[
        "-O2",
        "-ffreestanding",
        "-fno-tree-loop-distribute-patterns",
        "-Dmemcpy=allim_memcpy",
        "-Dmemmove=allim_memmove",
        "-c",
        &path(&root.join("native/memcpy_x86_64.c")),
        "-o",
        &path(&object),
    ]);
    cc(&[
        "-O2",
        &path(&root.join("native/memcpy_test.c")),
        &path(&object),
        "-o",
        &path(&program),
    ]);
    let out = Command::new(&program).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "memcpy_test: {stdout}");
    // Every length, offset and overlap the program walks: 445,056 comparisons.
    let checks: u64 = stdout
        .strip_prefix("ok ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("memcpy_test printed {stdout:?}"));
    assert!(checks > 400_000, "memcpy_test ran only {checks} checks");
}

/// Every block aws-lc frees is zeroed first (key material must not linger, as aws-lc's own free
/// ensures), and a reallocation keeps the contents up to the smaller size.
#[test]
fn aws_lc_frees_zeroed_memory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("aws_lc_alloc.o");
    let program = dir.path().join("aws_lc_alloc_test");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    cc(&[
        "-O2",
        "-c",
        &path(&root.join("native/aws_lc_alloc.c")),
        "-o",
        &path(&object),
    ]);
    cc(&[
        "-O2",
        &path(&root.join("native/aws_lc_alloc_test.c")),
        &path(&object),
        "-o",
        &path(&program),
    ]);
    let out = Command::new(&program).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "aws_lc_alloc_test: {stdout}");
    let checks: u64 = stdout
        .strip_prefix("ok ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("aws_lc_alloc_test printed {stdout:?}"));
    assert!(checks > 300, "aws_lc_alloc_test ran only {checks} sizes");
}
