#!/usr/bin/env bash
# Prints allim's benchmark figures (release build). Usage:
#   bench/run.sh [all|ingest|single|sns|door|latency|sqs|footprint]
#   DATABASE_URL=mysql://root@127.0.0.1:3306/allim_bench bench/run.sh ingest   # one scenario on MariaDB
# `all` (the default) runs every scenario on SQLite and on MariaDB (127.0.0.1:3306, root; the
# database allim_bench is recreated), with the peers in the same run, and ends with one table of
# every figure beside its target. It sets up what it needs under target/bench-peers: the Python
# SNS verifier's venv, the Node SQS consumer (npm ci), ministack (started for the run and
# stopped after), and the static musl build when that Rust target is installed: the image's
# size is computed from it, and the server processes run it (in one scenario too; `sqs` alone
# drains into MariaDB, as `all` does). Figures on a shared 2-core machine are noisy: compare
# within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-all}"
peers_src=../shared/peers
peers=target/bench-peers
mariadb_url="${ALLIM_BENCH_MARIADB:-mysql://root@127.0.0.1:3306/allim_bench}"

recreate() { # recreate the database a mysql:// URL names
  local db="${1##*/}" server="${1%/*}"
  local host="${server##*@}"
  mariadb --protocol=tcp -h"${host%%:*}" -P"${host##*:}" -uroot \
    -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`"
}

wants() { [[ "$scenario" == all || "$scenario" == "$1" ]]; }

# shellcheck source=bench/lib.sh
source bench/lib.sh

mkdir -p "$peers"
if wants sns; then
  if [[ ! -x "$peers/python-sns/bin/python" ]]; then
    python3 -m venv "$peers/python-sns"
    "$peers/python-sns/bin/pip" install --quiet -r "$peers_src/python-sns/requirements.txt"
  fi
  export ALLIM_BENCH_PYTHON_SNS="$PWD/$peers/python-sns/bin/python"
fi
if wants sqs; then
  if [[ ! -d "$peers/node-consumer/node_modules" ]]; then
    rm -rf "$peers/node-consumer"
    cp -r "$peers_src/node-consumer" "$peers/node-consumer"
    (cd "$peers/node-consumer" && npm ci --no-audit --no-fund --silent)
  fi
  export ALLIM_BENCH_NODE_PEER="$PWD/$peers/node-consumer"
  start_ministack
fi
if rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
  # The image's binary: static musl (the Dockerfile's alpine builder makes the same). Built for
  # one scenario too, so its figures are those `all` would print.
  cargo build --release --quiet --bin allim --target x86_64-unknown-linux-musl
  export ALLIM_BENCH_MUSL_BIN="$PWD/target/x86_64-unknown-linux-musl/release/allim"
  # The server processes (SNS, SQS drain, start-up, memory) then run the binary the image ships.
  export ALLIM_BENCH_BIN="$ALLIM_BENCH_MUSL_BIN"
fi

cargo build --release --quiet --bin allim --example bench
if [[ "$scenario" == sqs && -z "${DATABASE_URL:-}" ]]; then
  # `all` drains into MariaDB (beside the Node peer's); `sqs` alone does the same unless told.
  export DATABASE_URL="$mariadb_url"
fi
if [[ "$scenario" == all ]]; then
  recreate "$mariadb_url"
  export ALLIM_BENCH_MARIADB="$mariadb_url"
elif [[ "${DATABASE_URL:-}" == mysql://* ]]; then
  recreate "$DATABASE_URL"
fi
target/release/examples/bench "$scenario"
