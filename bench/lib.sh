# Shared by bench/run.sh, bench/udp.sh and bench/http.sh (sourced after
# `cd` to the repository root and ROOT=$PWD): the release build, rathole,
# a work directory cleaned on exit with every started process, free ports,
# and an edge on loopback.

# BURROW=PATH benchmarks another build (an older commit's, side by side
# in one session); otherwise this tree's release build.
if [ -n "${BURROW:-}" ]; then
  echo "== building the load generator (release); burrow under test: $BURROW"
  cargo build --release -q -p burrow-loadgen
else
  echo "== building (release)"
  cargo build --release -q -p burrow -p burrow-loadgen
  BURROW=$ROOT/target/release/burrow
fi
LOADGEN=$ROOT/target/release/burrow-loadgen
TOOLS=$ROOT/target/bench-tools
if [ -z "${SKIP_RATHOLE:-}" ] && [ ! -x "$TOOLS/bin/rathole" ]; then
  echo "== installing rathole 0.5.0 from crates.io into $TOOLS"
  cargo install rathole --version 0.5.0 --root "$TOOLS" --locked -q \
    || cargo install rathole --version 0.5.0 --root "$TOOLS" -q
fi
RATHOLE=$TOOLS/bin/rathole

# PIN=1: the load generator and origins on CPU 0, the proxies under test
# (edge, connector, rathole) on CPU 1, so each side has a core of its own.
if [ -n "${PIN:-}" ]; then LOAD_CPU=(taskset -c 0); PROXY_CPU=(taskset -c 1); else LOAD_CPU=(); PROXY_CPU=(); fi
WORK=$(mktemp -d /tmp/burrow-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# free_port [udp]: a port free a moment ago on 127.0.0.1.
free_port() {
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1:]==["udp"] else socket.SOCK_STREAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$@"
}
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# start_edge DIR [EDGE FLAGS...]: a burrow edge (tunnel endpoint on
# EDGE_LISTEN, default 127.0.0.1:0) with its state in DIR; sets EDGE_PID and points the admin CLI (BURROW_ADMIN_URL and
# BURROW_ADMIN_TOKEN_FILE) at it.
start_edge() {
  local d=$1; shift
  mkdir -p "$d"
  "${PROXY_CPU[@]}" "$BURROW" edge --colo BENCH --listen "${EDGE_LISTEN:-127.0.0.1:0}" --admin 127.0.0.1:0 --state "$d/edge.db" \
    --loglevel warn "$@" > "$d/edge.out" 2> "$d/edge.log" &
  EDGE_PID=$!; PIDS+=($EDGE_PID)
  for _ in $(seq 1 100); do grep -q '^admin API:' "$d/edge.out" 2>/dev/null && break; sleep 0.1; done
  export BURROW_ADMIN_TOKEN_FILE=$d/edge.d/admin.token
  BURROW_ADMIN_URL=$(sed -n 's/^admin API: //p' "$d/edge.out")
  export BURROW_ADMIN_URL
}
