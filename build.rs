//! Link settings for the image's binary, the static musl build the Dockerfile ships.
//!
//! - **RELR relocations.** The static PIE applies its own relative relocations at start-up, 71,000
//!   of them, which as RELA entries are a 1.7 MB table that start-up reads whole.
//!   `-z pack-relative-relocs` stores them as RELR (a few KB), so the image is that much smaller
//!   and the process that much less resident, with address-space randomisation kept
//!   (bench/README.md). musl applies RELR since 1.2.4 (Rust ships 1.2.5); GNU ld has the flag
//!   since 2.38. The glibc build is left as it is: it would need glibc 2.36 to run.
//! - **memcpy and memmove on x86_64.** musl's x86_64 memcpy (`rep movsq`) cost ~40–50 ns a call
//!   at any size in the server under load (~12 ns in a tight loop, `bench/memcpy.sh`), and
//!   took 39 % of the binary's CPU on the HTTP batch path; `native/memcpy_x86_64.c` replaces
//!   both for the `allim` binary through the linker's `--wrap`, so every call, musl's own
//!   included, goes to it. aarch64 musl already has Arm's optimized copy and keeps it.
//! - **aws-lc's heap on mimalloc.** Rust allocates through mimalloc in this build, but aws-lc
//!   (RSA for every SNS message, TLS) went to musl's malloc, which mapped and unmapped a page at
//!   a time: 10 % of the SNS webhook's CPU. `native/aws_lc_alloc.c` defines the four functions
//!   aws-lc calls for its heap when they exist (weak symbols), on every musl target.
//! - **SQLite's heap on mimalloc.** The same for the bundled SQLite, whose in-memory statement
//!   journals (temp_store=MEMORY) made musl's malloc map and unmap ~30,000 pages over the SNS
//!   scenario: `native/sqlite_alloc.c` sets SQLITE_CONFIG_MALLOC before main, on every musl target.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=native/memcpy_x86_64.c");
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os != "linux" || env != "musl" {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=native/aws_lc_alloc.c");
    println!("cargo:rerun-if-changed=native/sqlite_alloc.c");
    println!("cargo:rerun-if-changed=native/sqlite_mem_methods.h");
    for object in cc::Build::new()
        .file("native/aws_lc_alloc.c")
        .file("native/sqlite_alloc.c")
        .opt_level(2)
        .compile_intermediates()
    {
        println!("cargo:rustc-link-arg-bin=allim={}", object.display());
    }
    if arch == "x86_64" {
        let objects = cc::Build::new()
            .file("native/memcpy_x86_64.c")
            .opt_level(2)
            .flag("-ffreestanding")
            // GCC would otherwise be free to turn a copy loop back into a call to memcpy.
            .flag_if_supported("-fno-tree-loop-distribute-patterns")
            .define("memcpy", "__wrap_memcpy")
            .define("memmove", "__wrap_memmove")
            .compile_intermediates();
        for object in objects {
            println!("cargo:rustc-link-arg-bin=allim={}", object.display());
        }
        println!("cargo:rustc-link-arg-bin=allim=-Wl,--wrap=memcpy,--wrap=memmove");
    }
}
