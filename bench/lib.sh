# shellcheck shell=bash
# Shared by bench/run.sh and bench/profiles.sh (sourced from the repository's root).

# Starts ministack (the SQS stand-in that stays fast at depth) for this run, unless
# ALLIM_BENCH_SQS already names an SQS endpoint, and stops it when the script exits.
start_ministack() {
  local peers=target/bench-peers port
  [[ -n "${ALLIM_BENCH_SQS:-}" ]] && return
  mkdir -p "$peers"
  if [[ ! -x "$peers/ministack/bin/ministack" ]]; then
    python3 -m venv "$peers/ministack"
    "$peers/ministack/bin/pip" install --quiet ministack
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BIND_HOST=127.0.0.1 GATEWAY_PORT=$port "$peers/ministack/bin/ministack" > "$peers/ministack.log" 2>&1 &
  ministack=$!
  trap 'kill $ministack 2>/dev/null || true' EXIT
  export ALLIM_BENCH_SQS="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then break; fi
    sleep 0.1
  done
}
