//! Link settings for the image's binary.
//!
//! The static musl build (what the Dockerfile ships) is a static PIE: at start-up it applies its
//! own relative relocations, 71,000 of them, which as RELA entries are a 1.7 MB table that
//! start-up reads whole. `-z pack-relative-relocs` stores them as RELR (a few KB), so the image
//! is that much smaller and the process that much less resident, with address-space
//! randomisation kept (bench/README.md). musl applies RELR since 1.2.4 (Rust ships 1.2.5); GNU ld
//! has the flag since 2.38. The glibc build is left as it is: it would need glibc 2.36 to run.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && env == "musl" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
