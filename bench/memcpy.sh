#!/usr/bin/env bash
# Nanoseconds per memcpy call by size: musl's (static, as the image links it; needs Debian's
# musl-tools) and glibc's, each beside native/memcpy_x86_64.c. x86_64 only.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/allim-memcpy-bench"
mkdir -p "$out"
flags=(-O2 -ffreestanding -fno-tree-loop-distribute-patterns -Dmemcpy=allim_memcpy -Dmemmove=allim_memmove)
for cc in musl-gcc gcc; do
  command -v "$cc" >/dev/null || { echo "$cc is not installed" >&2; exit 1; }
  "$cc" "${flags[@]}" -c native/memcpy_x86_64.c -o "$out/native-$cc.o"
  "$cc" -O2 -fno-builtin -static bench/memcpy.c "$out/native-$cc.o" -o "$out/memcpy-$cc"
done
"$out/memcpy-musl-gcc" musl
echo
"$out/memcpy-gcc" glibc
