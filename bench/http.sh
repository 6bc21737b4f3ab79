#!/usr/bin/env bash
# HTTP benchmark, side by side in one run on loopback:
#   direct to the origin | burrow edge --http through a tunnel over QUIC |
#   the same over HTTP/2 | rathole 0.5.0 forwarding the origin's port as TCP
#   (frp/rathole-style: the HTTP bytes ride a TCP tunnel, no HTTP routing)
# Figures: requests per second and p50/p99 latency for GET / (64-byte
# answers) over CONNS keep-alive HTTP/1.1 connections.
#
# Usage: bash bench/http.sh            (appends a dated section to bench/RESULTS.md)
#        SECS=5 bash bench/http.sh     (shorter)   NO_REPORT=1: print only
#        PIN=1 bash bench/http.sh      (load generator + origin on CPU 0, proxies on CPU 1)
#        BURROW=PATH: another build's binary; SKIP_RATHOLE=1: leave rathole out
# Traffic stays on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-10}
CONNS=${CONNS:-32}

source "$ROOT/bench/lib.sh"
wait_http() { # PORT: until GET / answers 200 with Host bench.example.com
  for _ in $(seq 1 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example.com' "http://127.0.0.1:$1/" 2>/dev/null)" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "no HTTP answer through port $1" >&2; return 1
}

ORIGIN_PORT=$(free_port)
"${LOAD_CPU[@]}" "$LOADGEN" http-server --listen 127.0.0.1:"$ORIGIN_PORT" >/dev/null & PIDS+=($!)
wait_http "$ORIGIN_PORT"

RESULTS=$WORK/results.jsonl
measure() { # NAME PORT
  echo "== $1"
  local r
  r=$("${LOAD_CPU[@]}" "$LOADGEN" http --target 127.0.0.1:"$2" --conns "$CONNS" --secs "$SECS")
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["name"]=sys.argv[1]; print(json.dumps(d))' "$1" "$r" >> "$RESULTS"
  tail -n 1 "$RESULTS"
}

measure direct "$ORIGIN_PORT"

for proto in quic http2; do
  d=$WORK/burrow-$proto; hp=$(free_port)
  start_edge "$d" --http 127.0.0.1:"$hp"
  e=$EDGE_PID
  "$BURROW" tunnel create bench --credentials-file "$d/bench.json" >/dev/null
  "$BURROW" route dns bench bench.example.com >/dev/null
  "${PROXY_CPU[@]}" "$BURROW" tunnel run --credentials-file "$d/bench.json" --url "http://127.0.0.1:$ORIGIN_PORT" \
    --protocol "$proto" --loglevel warn 2> "$d/connector.log" &
  c=$!; PIDS+=($c)
  wait_http "$hp"
  measure "burrow $proto" "$hp"
  stop "$c" "$e"
done

if [ -z "${SKIP_RATHOLE:-}" ]; then
  d=$WORK/rathole; mkdir -p "$d"; port=$(free_port); p=$(free_port)
  printf '[server]\nbind_addr = "127.0.0.1:%s"\n[server.services.h]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$port" "$p" > "$d/server.toml"
  printf '[client]\nremote_addr = "127.0.0.1:%s"\n[client.services.h]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$port" "$ORIGIN_PORT" > "$d/client.toml"
  RUST_LOG=warn "${PROXY_CPU[@]}" "$RATHOLE" --server "$d/server.toml" 2> "$d/server.log" > /dev/null & s=$!; PIDS+=($s)
  sleep 0.5
  RUST_LOG=warn "${PROXY_CPU[@]}" "$RATHOLE" --client "$d/client.toml" 2> "$d/client.log" > /dev/null & c=$!; PIDS+=($c)
  wait_http "$p"
  measure "rathole tcp (HTTP as TCP)" "$p"
  stop "$c" "$s"
fi

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$SECS" "$CONNS" "${PIN:-}" >> "$ROOT/bench/RESULTS.md" <<'PY'
import json, sys, platform, subprocess, datetime
path, secs, conns, pinned = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"\n## {now} — HTTP\n")
print(f"Machine: {ncpu} cores, {cpu}, Linux {platform.release()}. Command: `bash bench/http.sh` "
      f"(SECS={secs}, GET / with 64-byte answers over {conns} keep-alive HTTP/1.1 connections"
      f"{'; PIN=1: load on CPU 0, proxies on CPU 1' if pinned else ''}). "
      f"Everything on 127.0.0.1; a Rust (hyper) origin.\n")
direct = rows[0]
print("| path | req/s | p50 µs | p99 µs | errors | p50 added µs | req/s vs direct |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f'| {r["name"]} | {r["rps"]:.0f} | {r["p50_us"]} | {r["p99_us"]} | {r["errors"]} '
          f'| {r["p50_us"] - direct["p50_us"]} | {r["rps"] / direct["rps"]:.2f}× |')
PY
echo "== appended to bench/RESULTS.md"
tail -n 8 "$ROOT/bench/RESULTS.md"
