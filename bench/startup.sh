#!/usr/bin/env bash
# Connector start → first byte through an app, side by side: burrow over
# QUIC and over HTTP/2, rathole's client over plain TCP and TLS for
# comparison. The edge (or rathole server) and a TCP echo origin run
# throughout; `burrow-loadgen first-byte` starts the connector and tries a
# 1-byte echo through the app every half millisecond, so each figure includes
# process start, the handshake and registration. RUNS runs each (default
# 5); the report gives the median and the range.
#
# Usage: bash bench/startup.sh           (appends to bench/RESULTS.md)
#        RUNS=9 bash bench/startup.sh    NO_REPORT=1: print only
# Traffic stays on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
source "$ROOT/bench/lib.sh"

ECHO_PORT=$(free_port)
"$LOADGEN" echo-server --listen 127.0.0.1:"$ECHO_PORT" >/dev/null & PIDS+=($!)
RESULTS=$WORK/results.jsonl
runs() { # NAME PORT CMD...
  local name=$1 port=$2; shift 2
  echo "== $name"
  for _ in $(seq 1 "$RUNS"); do
    "$LOADGEN" first-byte --target 127.0.0.1:"$port" -- "$@" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); r["name"]=sys.argv[1]; print(json.dumps(r))' "$name" >> "$RESULTS"
    tail -n 1 "$RESULTS"
    sleep 0.5
  done
}

for proto in quic http2; do
  d=$WORK/burrow-$proto
  start_edge "$d" --app-address 127.0.0.1
  "$BURROW" tunnel create bench --credentials-file "$d/bench.json" >/dev/null
  p=$(free_port)
  "$BURROW" app create --protocol "tcp/$p" --tunnel bench >/dev/null
  runs "burrow $proto" "$p" "${PROXY_CPU[@]}" "$BURROW" tunnel run --credentials-file "$d/bench.json" \
    --url "tcp://127.0.0.1:$ECHO_PORT" --protocol "$proto" --grace-period 1s --loglevel error
  stop "$EDGE_PID"
done

if [ -z "${SKIP_RATHOLE:-}" ]; then
  for tr in tcp tls; do
    d=$WORK/rathole-$tr; mkdir -p "$d"; port=$(free_port); p=$(free_port)
    : > "$d/s.extra"; : > "$d/c.extra"
    if [ "$tr" = tls ]; then rathole_tls_extra "$d"; fi
    { printf '[server]\nbind_addr = "127.0.0.1:%s"\n[server.transport]\ntype = "%s"\n' "$port" "$tr"; cat "$d/s.extra"
      printf '[server.services.echo]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$p"; } > "$d/server.toml"
    { printf '[client]\nremote_addr = "127.0.0.1:%s"\n[client.transport]\ntype = "%s"\n' "$port" "$tr"; cat "$d/c.extra"
      printf '[client.services.echo]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$ECHO_PORT"; } > "$d/client.toml"
    RUST_LOG=warn "$RATHOLE" --server "$d/server.toml" 2> "$d/server.log" > /dev/null & s=$!; PIDS+=($s)
    sleep 0.5
    runs "rathole $tr" "$p" "${PROXY_CPU[@]}" "$RATHOLE" --client "$d/client.toml"
    stop "$s"
  done
fi

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$RUNS" "$BURROW" >> "$ROOT/bench/RESULTS.md" <<'PY'
import json, sys, statistics, platform, subprocess, datetime
path, runs, burrow = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"\n## {now} — connector start to first byte\n")
print(f"Machine: {ncpu} cores, {cpu}, Linux {platform.release()}. Command: `bash bench/startup.sh` "
      f"({runs} runs each; from starting the connector process to the first byte echoed through the app, "
      f"one try per half millisecond). burrow: `{burrow}`.\n")
print("| path | median ms | min ms | max ms |")
print("|---|---:|---:|---:|")
for n in dict.fromkeys(r["name"] for r in rows):
    v = [r["first_byte_ms"] for r in rows if r["name"] == n]
    print(f"| {n} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
PY
echo "== appended to bench/RESULTS.md"
tail -n 7 "$ROOT/bench/RESULTS.md"
