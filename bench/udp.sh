#!/usr/bin/env bash
# UDP benchmark, side by side in one run on loopback:
#   direct | burrow edge app to a direct origin | burrow UDP app through a
#   tunnel over QUIC (QUIC datagrams) | the same over HTTP/2 (framed on a
#   stream) | rathole 0.5.0 UDP service over its plain TCP transport
# Figures per path, for small (64 B) and large (1,200 B) datagrams:
# request/response rate, p50/p99 latency and datagrams lost, with CLIENTS
# clients (one session each) keeping one datagram in flight; then a blast:
# one session offered MBPS Mbit/s of 1,200 B datagrams (default 300, the
# rate of issue 18's iperf3 row) and the share of echoes that never come
# back (round trip, so both directions count).
#
# Usage: bash bench/udp.sh            (appends a dated section to bench/RESULTS.md)
#        SECS=5 bash bench/udp.sh     (shorter)   NO_REPORT=1: print only
# Traffic stays on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-32}
MBPS=${MBPS:-300}

source "$ROOT/bench/lib.sh"
# wait_udp PORT: until one datagram is echoed through 127.0.0.1:PORT
wait_udp() {
  for _ in $(seq 1 100); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
s.sendto(b"ping", ("127.0.0.1", int(sys.argv[1])))
assert s.recv(64) == b"ping"
PY
    sleep 0.1
  done
  echo "no UDP echo through port $1" >&2; return 1
}

ECHO_PORT=$(free_port udp)
"$LOADGEN" udp-echo-server --listen 127.0.0.1:"$ECHO_PORT" >/dev/null & PIDS+=($!)
wait_udp "$ECHO_PORT"

RESULTS=$WORK/results.jsonl
measure() { # NAME PORT
  echo "== $1"
  local small large
  small=$("$LOADGEN" udp-rr --target 127.0.0.1:"$2" --clients "$CLIENTS" --secs "$SECS" --size 64)
  large=$("$LOADGEN" udp-rr --target 127.0.0.1:"$2" --clients "$CLIENTS" --secs "$SECS" --size 1200)
  blast=$("$LOADGEN" udp-blast --target 127.0.0.1:"$2" --mbps "$MBPS" --size 1200 --secs "$SECS")
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "small": json.loads(sys.argv[2]), "large": json.loads(sys.argv[3]), "blast": json.loads(sys.argv[4])}))' \
    "$1" "$small" "$large" "$blast" >> "$RESULTS"
  tail -n 1 "$RESULTS"
}

measure direct "$ECHO_PORT"


# Edge app straight to the origin.
d=$WORK/app; start_edge "$d" --app-address 127.0.0.1; p=$(free_port udp)
"$BURROW" app create --protocol "udp/$p" --origin "udp://127.0.0.1:$ECHO_PORT" >/dev/null
wait_udp "$p"
measure "burrow app (direct)" "$p"
stop "$EDGE_PID"

# Through a tunnel.
for proto in quic http2; do
  d=$WORK/tunnel-$proto; start_edge "$d" --app-address 127.0.0.1; p=$(free_port udp)
  "$BURROW" tunnel create bench --credentials-file "$d/bench.json" >/dev/null
  "$BURROW" app create --protocol "udp/$p" --tunnel bench >/dev/null
  "$BURROW" tunnel run --credentials-file "$d/bench.json" --url "udp://127.0.0.1:$ECHO_PORT" \
    --protocol "$proto" --loglevel warn 2> "$d/connector.log" &
  c=$!; PIDS+=($c)
  wait_udp "$p"
  measure "burrow tunnel $proto" "$p"
  stop "$c" "$EDGE_PID"
done

# rathole, UDP service over its TCP transport.
d=$WORK/rathole; mkdir -p "$d"; port=$(free_port udp); p=$(free_port udp)
printf '[server]\nbind_addr = "127.0.0.1:%s"\n[server.services.u]\ntype = "udp"\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$port" "$p" > "$d/server.toml"
printf '[client]\nremote_addr = "127.0.0.1:%s"\n[client.services.u]\ntype = "udp"\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$port" "$ECHO_PORT" > "$d/client.toml"
RUST_LOG=warn "$RATHOLE" --server "$d/server.toml" 2> "$d/server.log" > /dev/null & s=$!; PIDS+=($s)
sleep 0.5
RUST_LOG=warn "$RATHOLE" --client "$d/client.toml" 2> "$d/client.log" > /dev/null & c=$!; PIDS+=($c)
wait_udp "$p"
measure "rathole udp (tcp transport)" "$p"
stop "$c" "$s"

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$SECS" "$CLIENTS" "$MBPS" "$BURROW" >> "$ROOT/bench/RESULTS.md" <<'PY'
import json, sys, platform, subprocess, datetime
path, secs, clients, mbps, burrow = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"\n## {now} — UDP\n")
print(f"Machine: {ncpu} cores, {cpu}, Linux {platform.release()}. Command: `bash bench/udp.sh` "
      f"(SECS={secs}, {clients} clients, one datagram in flight each; lost = no echo within 200 ms). "
      f"Everything on 127.0.0.1; a Rust UDP echo server as origin. "
      f"Blast: one session offered {mbps} Mbit/s of 1200 B datagrams for {secs} s, loss over the round trip. "
      f"burrow: `{burrow}`.\n")
print("| path | 64 B req/s | p50 µs | p99 µs | lost | 1200 B req/s | p50 µs | p99 µs | lost | blast loss |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    a, b, c = r["small"], r["large"], r["blast"]
    print(f'| {r["name"]} | {a["rps"]:.0f} | {a["p50_us"]} | {a["p99_us"]} | {a["lost"]} '
          f'| {b["rps"]:.0f} | {b["p50_us"]} | {b["p99_us"]} | {b["lost"]} | {c["loss_pct"]:.1f} % |')
PY
echo "== appended to bench/RESULTS.md"
tail -n 9 "$ROOT/bench/RESULTS.md"
