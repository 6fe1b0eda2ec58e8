#!/usr/bin/env bash
# Measures each release-profile setting on its own (issue 15: "LTO, one codegen unit, strip;
# measure each, keep what pays"). Builds allim's binary from the current tree in a target dir of
# its own (target/profiles) under:
#   default   cargo's release defaults (no LTO, 16 codegen units)
#   lto       fat LTO alone
#   cgu1      one codegen unit alone
#   shipped   Cargo.toml's own release profile (fat LTO + one codegen unit + strip)
# all from the same tree. Then prints each binary's size as linked and stripped, and, ROUNDS times
# (default 3) with the binaries taking turns, two server figures of the binary as a process of
# its own: the SNS webhook's CPU per request and rate (SQLite, 20,000 signed messages, 32
# connections) and the SQS drain's CPU per 10,000 messages and peak RSS (SQLite, ministack,
# 5,000 messages).
# The four builds take ~45 minutes on 2 cores; SKIP_BUILD=1 measures the binaries that
# target/profiles/bin holds.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
rounds="${ROUNDS:-3}"
out=target/profiles
mkdir -p "$out/bin"

build() { # name lto codegen-units strip
  local started=$SECONDS
  CARGO_TARGET_DIR="$out" CARGO_PROFILE_RELEASE_LTO="$2" CARGO_PROFILE_RELEASE_CODEGEN_UNITS="$3" \
    CARGO_PROFILE_RELEASE_STRIP="$4" cargo build --release --quiet --bin allim
  cp "$out/release/allim" "$out/bin/$1"
  echo "built $1 (lto=$2, codegen-units=$3, strip=$4) in $((SECONDS - started)) s"
}
cargo build --release --quiet --bin allim --example bench
if [[ -z "${SKIP_BUILD:-}" ]]; then
  build default false 16 false
  build lto fat 16 false
  build cgu1 false 1 false
  build shipped fat 1 true
fi
start_ministack

names=(default lto cgu1 shipped)
echo
echo "binary    as linked   stripped"
for n in "${names[@]}"; do
  strip -o "$out/bin/$n.stripped" "$out/bin/$n"
  printf '%-8s %8.1f MB %8.1f MB\n' "$n" \
    "$(stat -c %s "$out/bin/$n" | awk '{print $1 / 1e6}')" \
    "$(stat -c %s "$out/bin/$n.stripped" | awk '{print $1 / 1e6}')"
done
echo
echo "round binary    SNS µs CPU/req   SNS req/s   drain CPU-s/10k   drain peak RSS"
for round in $(seq 1 "$rounds"); do
  for n in "${names[@]}"; do
    sns=$(ALLIM_BENCH_BIN="$out/bin/$n" target/release/examples/bench sns | grep '^sns: allim')
    sqs=$(ALLIM_BENCH_BIN="$out/bin/$n" ALLIM_BENCH_MESSAGES=5000 target/release/examples/bench sqs | grep '^sqs: allim')
    printf '%-5s %-8s %12s %13s %15s %13s MB\n' "$round" "$n" \
      "$(sed -E 's/.*server ([0-9]+) µs.*/\1/' <<<"$sns")" \
      "$(sed -E 's/.*: ([0-9]+) req\/s.*/\1/' <<<"$sns")" \
      "$(sed -E 's/.* ([0-9.]+) CPU-s per 10,000.*/\1/' <<<"$sqs")" \
      "$(sed -E 's/.*peak RSS ([0-9.]+) MB.*/\1/' <<<"$sqs")"
  done
done
