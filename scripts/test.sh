#!/usr/bin/env bash
# Runs allim's whole test suite on this machine, starting what it needs first:
#   - MariaDB on 127.0.0.1:3306 (root, empty password): started if it is not answering,
#     installed from Debian's packages if it is missing;
#   - a Python venv (.venv/) with moto[server], the local SQS/SNS stand-in the tests start,
#     and standardwebhooks, which verifies the webhook signatures independently;
#   - the openssl command, which signs the SNS test messages;
#   - two venvs of unmodified SQS clients for the SQS door's tests: .venv-sqs-json (a current
#     boto3 and AWS CLI: JSON protocol) and .venv-sqs-query (botocore 1.34.89 and AWS CLI
#     1.32.89, the last before SQS's JSON protocol: query protocol);
#   - for the console's browser test: Debian's chromium, chromium-driver and fonts-noto-cjk (Hangul),
#     and a venv (.venv-console) with Selenium, which drives that chromedriver (no browser download).
# Extra arguments go to `cargo test` (e.g. scripts/test.sh api::).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

mariadb_up() {
  mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1
}

ensure_mariadb() {
  if [ -n "${ALLIM_TEST_MYSQL_URL:-}" ]; then
    log "using ALLIM_TEST_MYSQL_URL as given"
    return
  fi
  if mariadb_up; then
    log "MariaDB is running"
    return
  fi
  if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1; then
    log "installing mariadb-server"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  log "starting MariaDB"
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then
    as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  as_root start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd || command -v mysqld)" -- \
    --user=mysql --bind-address=127.0.0.1 --port=3306
  for _ in $(seq 1 60); do
    mariadb_up && break
    sleep 0.5
  done
  mariadb_up || { log "MariaDB did not start"; exit 1; }
  # Tests connect as root over TCP without a password.
  as_root mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" 2>/dev/null || true
}

ensure_moto() {
  local venv=.venv
  # moto: the SQS/SNS stand-in; standardwebhooks: the webhook signatures' independent verifier.
  if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    log "setting up $venv with moto[server] and standardwebhooks"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.*' 'standardwebhooks==1.1.*'
  fi
  ALLIM_TEST_MOTO="$(pwd)/$venv/bin/moto_server"
  export ALLIM_TEST_MOTO
}

ensure_sqs_clients() {
  local kind spec
  for kind in json query; do
    case $kind in
      json) spec="boto3==1.40.* awscli==1.42.*" ;;
      query) spec="botocore==1.34.89 boto3==1.34.89 awscli==1.32.89" ;;
    esac
    if [ ! -x ".venv-sqs-$kind/bin/aws" ]; then
      log "setting up .venv-sqs-$kind ($spec)"
      [ -x ".venv-sqs-$kind/bin/python" ] || python3 -m venv ".venv-sqs-$kind"
      # shellcheck disable=SC2086 # the spec is several requirements
      ".venv-sqs-$kind/bin/pip" install -q --disable-pip-version-check $spec
    fi
  done
}

ensure_browser() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! fc-list 2>/dev/null | grep -q 'Noto Sans CJK'; then
    log "installing chromium, chromium-driver and fonts-noto-cjk"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
  fi
  if ! .venv-console/bin/python -c 'import selenium' 2>/dev/null; then
    log "setting up .venv-console (selenium)"
    [ -x .venv-console/bin/python ] || python3 -m venv .venv-console
    .venv-console/bin/pip install -q --disable-pip-version-check 'selenium==4.*'
  fi
}

ensure_tools() {
  # openssl signs the SNS test messages, independently of allim's verifier.
  if ! command -v openssl >/dev/null 2>&1; then
    log "installing openssl"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
}

ensure_tools
ensure_mariadb
ensure_moto
ensure_sqs_clients
ensure_browser
# Leftovers of interrupted runs.
mariadb --protocol=tcp -h127.0.0.1 -uroot -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'allim\_t\_%'" 2>/dev/null |
  while read -r db; do mariadb --protocol=tcp -h127.0.0.1 -uroot -e "DROP DATABASE \`$db\`"; done || true

log "cargo test"
cargo test --all-targets "$@"
