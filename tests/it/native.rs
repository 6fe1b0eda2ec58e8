//! `native/memcpy_x86_64.c`, the memcpy and memmove that build.rs links into the static x86_64
//! musl binary (the image's), checked by `native/memcpy_test.c` against a byte loop. Both are
//! compiled here with the flags build.rs uses and the functions renamed, so the check runs in
//! the ordinary (glibc) test build too.
#![cfg(target_arch = "x86_64")]

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
