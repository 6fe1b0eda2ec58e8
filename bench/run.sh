#!/usr/bin/env bash
# Prints allim's benchmark figures (release build). Usage:
#   bench/run.sh [ingest|single|sns|door|latency|all]   or   bench/run.sh sqs   (needs ministack; see bench/README.md)
#   DATABASE_URL=mysql://root@127.0.0.1:3306/allim_bench bench/run.sh ingest   # against MariaDB
# Figures on a shared 2-core machine are noisy: compare within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${DATABASE_URL:-}" == mysql://* ]]; then
  db="${DATABASE_URL##*/}"
  server="${DATABASE_URL%/*}"
  host="${server##*@}"
  mariadb --protocol=tcp -h"${host%%:*}" -P"${host##*:}" -uroot -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`"
fi
cargo run --release --quiet --example bench -- "${1:-all}"
