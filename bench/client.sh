#!/usr/bin/env bash
# Zero-trust client benchmark, side by side in one run on loopback:
#   direct | burrow client (SOCKS5) → edge over QUIC | the same over HTTP/2
# Figures: single-stream bulk throughput (iperf3) and request/response rate
# and p50/p99 latency over RR_CONNS connections (burrow-loadgen rr), both
# run unmodified through the SOCKS5 proxy with proxychains4 (LD_PRELOAD),
# as a user would with a SOCKS-unaware program. Every flow also writes a
# session log record (the edge runs with --session-log).
#
# Usage: bash bench/client.sh          (appends a dated section to bench/RESULTS.md)
#        SECS=5 NO_REPORT=1 bash bench/client.sh
# Needs: iperf3, proxychains4 (installed with apt-get when missing, as root).
# Traffic stays on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-10}
RR_CONNS=${RR_CONNS:-32}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need iperf3 || ! need proxychains4; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 proxychains4 >/dev/null
fi
source "$ROOT/bench/lib.sh"

IPERF_PORT=$(free_port); ECHO_PORT=$(free_port)
iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 & PIDS+=($!)
"$LOADGEN" echo-server --listen 127.0.0.1:"$ECHO_PORT" >/dev/null & PIDS+=($!)
sleep 0.5

RESULTS=$WORK/results.jsonl
# measure NAME [WRAPPER...]: iperf3 and rr, run under WRAPPER
measure() {
  local name=$1; shift
  echo "== $name"
  local t1 rr
  t1=$("$@" iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
  rr=$("$@" "$LOADGEN" rr --target 127.0.0.1:"$ECHO_PORT" --conns "$RR_CONNS" --secs "$SECS")
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["name"]=sys.argv[1]; d["gbps"]=float(sys.argv[2])/1e9; print(json.dumps(d))' "$name" "$t1" "$rr" >> "$RESULTS"
  tail -n 1 "$RESULTS"
}

measure direct env

for proto in quic http2; do
  d=$WORK/client-$proto
  start_edge "$d" --session-log "$d/sessions.jsonl"
  e=$EDGE_PID
  "$BURROW" user add bench@example.com >/dev/null
  "$BURROW" device enroll --user bench@example.com --name bench --credentials-file "$d/device.json" >/dev/null
  socks=$(free_port)
  "$BURROW" client --credentials "$d/device.json" --socks 127.0.0.1:"$socks" --protocol "$proto" \
    --loglevel warn > "$d/client.out" 2> "$d/client.log" &
  c=$!; PIDS+=($c)
  for _ in $(seq 1 100); do grep -q '^SOCKS5 proxy:' "$d/client.out" 2>/dev/null && break; sleep 0.1; done
  printf 'strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 %s\n' "$socks" > "$d/proxychains.conf"
  measure "burrow client $proto" proxychains4 -q -f "$d/proxychains.conf"
  echo "   session log records: $(wc -l < "$d/sessions.jsonl" 2>/dev/null || echo 0)"
  stop "$c" "$e"
done

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$SECS" "$RR_CONNS" >> "$ROOT/bench/RESULTS.md" <<'PY'
import json, sys, platform, subprocess, datetime
path, secs, conns = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"\n## {now} — zero-trust client\n")
print(f"Machine: {ncpu} cores, {cpu}, Linux {platform.release()}. Command: `bash bench/client.sh` "
      f"(SECS={secs}; iperf3 single stream; burrow-loadgen rr over {conns} connections, 64-byte messages; "
      f"through the client's SOCKS5 proxy with proxychains4). Everything on 127.0.0.1.\n")
d = rows[0]
print("| path | 1-stream Gbit/s | req/s | p50 µs | p99 µs | errors | req/s vs direct |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f'| {r["name"]} | {r["gbps"]:.2f} | {r["rps"]:.0f} | {r["p50_us"]} | {r["p99_us"]} | {r["errors"]} | {r["rps"] / d["rps"]:.2f}× |')
PY
echo "== appended to bench/RESULTS.md"
tail -n 7 "$ROOT/bench/RESULTS.md"
