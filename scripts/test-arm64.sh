#!/usr/bin/env bash
# Runs allim's whole test suite (unit, integration and the chaos test) built for arm64
# (aarch64-unknown-linux-gnu) on an x86_64 Debian machine, under qemu-user emulation. The image
# defaults to arm64 (Graviton Fargate) and CI runs on x86_64: this is how the arm64 code is
# tested here. It is not the image's own build (static musl: Debian has no aarch64 musl cross
# compiler), so mimalloc and the musl-only native code are not in it.
#
# Sets up, as root (sudo otherwise): Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
# qemu-user; the rustup target; binfmt_misc, so the tests that start the allim binary as a child
# process run it through qemu (registered for this boot only); and links to the arm64 C library
# where the arm64 loader looks (/lib/ld-linux-aarch64.so.1, /lib/aarch64-linux-gnu/), since
# those tests clear the environment and QEMU_LD_PREFIX with it. Then scripts/test.sh (MariaDB,
# moto, the clients, the browser) with the cross target, and the chaos test with --ignored.
# Extra arguments go to `cargo test` (e.g. scripts/test-arm64.sh api::). About 7 minutes warm
# on 2 cores; the emulated tests are slower than native, and their deadlines allow for it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-arm64.sh] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

triple=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null || [ ! -e "$sysroot/lib/libc.so.6" ]; then
  log "installing the arm64 cross compiler and qemu-user"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  log "registering qemu-aarch64 with binfmt_misc"
  # The aarch64 ELF header (machine 0xb7), as Debian's qemu-user-binfmt registers it.
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' |
    as_root tee /proc/sys/fs/binfmt_misc/register >/dev/null
fi
as_root ln -sfn "$sysroot/lib/ld-linux-aarch64.so.1" /lib/ld-linux-aarch64.so.1
as_root mkdir -p /lib/aarch64-linux-gnu
for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do
  as_root ln -sfn "$sysroot/lib/$lib" "/lib/aarch64-linux-gnu/$lib"
done

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
log "the test suite for $triple, under qemu-aarch64"
scripts/test.sh --target "$triple" "$@" -- --include-ignored
