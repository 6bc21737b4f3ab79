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

# wait_echo PORT [TRIES]: until a 1-byte echo comes back through
# 127.0.0.1:PORT, trying every 0.1 s, TRIES times (default 200).
wait_echo() {
  for _ in $(seq 1 "${2:-200}"); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"x"); assert s.recv(1) == b"x"
PY
    sleep 0.1
  done
  echo "no echo through port $1" >&2; return 1
}

# rathole_tls_extra DIR: a throwaway CA and a localhost server identity in
# DIR, and the TLS transport sections of rathole's server and client
# configs in DIR/s.extra and DIR/c.extra.
rathole_tls_extra() {
  local d=$1
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' > "$d/ext"
  openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext" -out "$d/srv.pem" 2>/dev/null
  openssl pkcs12 -export -out "$d/id.pfx" -inkey "$d/srv.key" -in "$d/srv.pem" -certfile "$d/ca.pem" \
    -passout pass:1234 -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 2>/dev/null
  printf '[server.transport.tls]\npkcs12 = "%s"\npkcs12_password = "1234"\n' "$d/id.pfx" > "$d/s.extra"
  printf '[client.transport.tls]\ntrusted_root = "%s"\nhostname = "localhost"\n' "$d/ca.pem" > "$d/c.extra"
}

# perf_counts OUT PIDS -- CMD...: CPU ms, system calls and context switches
# of PIDS (comma-separated; all their threads) while CMD runs, into OUT
# (read it with bench/perfcounts.py); prints CMD's stdout.
perf_counts() {
  local out=$1 pids=$2; shift 3
  perf stat -x, -e task-clock,raw_syscalls:sys_enter,context-switches -p "$pids" -o "$out" -- "$@"
}
# perf_top OUT PIDS -- CMD...: a call-graph profile of PIDS while CMD runs;
# the symbols with most self time (dso and symbol) into OUT.
perf_top() {
  local out=$1 pids=$2; shift 3
  perf record -q -g -F 499 -p "$pids" -o "$out.perf" -- "$@" > /dev/null 2>&1 || true
  perf report -q -i "$out.perf" --no-children --sort dso,symbol --percent-limit 2 --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -12 > "$out" || true
}
