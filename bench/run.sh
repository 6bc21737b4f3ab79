#!/usr/bin/env bash
# Whole-system benchmark, side by side in one run on loopback:
#   direct connection | burrow over QUIC | burrow over HTTP/2 |
#   burrow edge app to a direct origin | haproxy in TCP mode |
#   rathole 0.5.0 plain TCP | rathole Noise | rathole TLS
# Figures: single-stream and 4-stream bulk throughput (iperf3), request/
# response rate and p50/p99 latency at fixed concurrency, new connections
# per second, RSS per idle proxied connection (edge + connector, or rathole
# server + client) holding $IDLE connections.
#
# Usage: bash bench/run.sh            (appends a dated section to bench/RESULTS.md,
#                                      keeps the figures in bench/last-run.jsonl and
#                                      redraws bench/chart.svg)
#        SECS=5 IDLE=2000 bash bench/run.sh   (shorter)
#        SKIP_DIRECT=1 SKIP_BURROW=1 SKIP_APP=1 SKIP_RATHOLE=1 NO_REPORT=1: leave parts out
#        PROFILE=1: also count what the proxies spend (perf stat on their PIDs:
#          CPU time, system calls, context switches) over a fixed 2 GiB transfer,
#          the rr run and the cps run, per MB and per request — figures that do
#          not depend on the VM's speed of the day the way rates do — and keep
#          a call-graph profile of the bulk transfer (perf record -g) whose top
#          symbols go into the report.
# Needs: iperf3, openssl, python3 (installed with apt-get when missing, as root).
# Traffic stays on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-10}
IDLE=${IDLE:-10000}
RR_CONNS=${RR_CONNS:-32}
CPS_CONC=${CPS_CONC:-32}
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need iperf3 || ! need openssl || ! need pkg-config; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 openssl pkg-config libssl-dev >/dev/null
fi

source "$ROOT/bench/lib.sh"

rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' /proc/"$p"/status))); done; echo $t; }
IPERF_PORT=$(free_port); ECHO_PORT=$(free_port)
iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 & PIDS+=($!)
"$LOADGEN" echo-server --listen 127.0.0.1:"$ECHO_PORT" >/dev/null & PIDS+=($!)
wait_echo "$ECHO_PORT"

RESULTS=$WORK/results.jsonl
# measure NAME IPERF_PORT ECHO_PORT PID...   (PIDs whose RSS counts)
measure() {
  local name=$1 ip=$2 ep=$3; shift 3
  echo "== $name"
  local t1 t4 rr cps before after idle ready
  # Idle memory first, while the proxies are fresh: measured after the
  # bulk runs, the heap their buffers left behind (kept by the allocator)
  # was reused by the idle connections and hid part of their cost.
  before=$(rss_kb "$@")
  "$LOADGEN" idle --target 127.0.0.1:"$ep" --conns "${IDLE_N:-$IDLE}" --hold 6 > "$WORK/idle.out" &
  idle=$!
  # Opening IDLE connections can take minutes on slow paths (rathole TLS).
  for _ in $(seq 1 3000); do grep -q ready "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
  sleep 2
  after=$(rss_kb "$@")
  wait "$idle" || true
  ready=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ready"])' "$WORK/idle.out" 2>/dev/null || echo 0)
  sleep 1
  t1=$(iperf3 -c 127.0.0.1 -p "$ip" -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
  sleep 1
  t4=$(iperf3 -c 127.0.0.1 -p "$ip" -t "$SECS" -P 4 -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
  rr=$("$LOADGEN" rr --target 127.0.0.1:"$ep" --conns "$RR_CONNS" --secs "$SECS")
  cps=$("$LOADGEN" cps --target 127.0.0.1:"$ep" --concurrency "$CPS_CONC" --secs 5)
  local prof='{}'
  if [ -n "${PROFILE:-}" ] && [ $# -gt 0 ]; then prof=$(profile "$name" "$ip" "$ep" "$@"); fi
  python3 - "$name" "$t1" "$t4" "$rr" "$cps" "$before" "$after" "$ready" "$prof" >> "$RESULTS" <<'EOF'
import json, sys
name, t1, t4, rr, cps, before, after, ready, prof = sys.argv[1:]
rr, cps = json.loads(rr), json.loads(cps)
ready = int(ready)
print(json.dumps({"name": name, "gbps1": float(t1) / 1e9, "gbps4": float(t4) / 1e9,
  "rps": rr["rps"], "p50_us": rr["p50_us"], "p99_us": rr["p99_us"], "rr_errors": rr["errors"],
  "cps": cps["cps"], "cps_failed": cps["failed"], "idle_conns": ready,
  "rss_idle_kb_per_conn": (int(after) - int(before)) / ready if ready else None,
  "rss_before_kb": int(before), "rss_after_kb": int(after), "profile": json.loads(prof)}))
EOF
  tail -n 1 "$RESULTS"
}

# profile NAME IPERF_PORT ECHO_PORT PID...: a JSON object of per-MB and
# per-request counts (see PROFILE above).
profile() {
  local name=$1 ip=$2 ep=$3; shift 3
  local pids; pids=$(IFS=,; echo "$*")
  local tag=${name// /-}; tag=${tag//[()]/}
  perf_counts "$WORK/$tag.bulk" "$pids" -- iperf3 -c 127.0.0.1 -p "$ip" -n 2G -J > "$WORK/$tag.bulk.json"
  perf_top "$WORK/$tag.top" "$pids" -- iperf3 -c 127.0.0.1 -p "$ip" -n 1G
  local rr cps
  rr=$(perf_counts "$WORK/$tag.rr" "$pids" -- "$LOADGEN" rr --target 127.0.0.1:"$ep" --conns "$RR_CONNS" --secs 5)
  cps=$(perf_counts "$WORK/$tag.cps" "$pids" -- "$LOADGEN" cps --target 127.0.0.1:"$ep" --concurrency "$CPS_CONC" --secs 5)
  python3 - "$WORK/$tag" "$rr" "$cps" <<'EOF'
import json, sys
base, rr, cps = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.path.insert(0, "bench")
from perfcounts import counts, top
bulk = counts(base + ".bulk")
mb = json.load(open(base + ".bulk.json"))["end"]["sum_received"]["bytes"] / 1e6
r, n_rr = counts(base + ".rr"), rr["rps"] * 5
p, n_cps = counts(base + ".cps"), cps["cps"] * 5
top_lines = top(base + ".top")
print(json.dumps({
  "cpu_ms_per_gb": bulk["task-clock"] / mb * 1000, "syscalls_per_mb": bulk["raw_syscalls:sys_enter"] / mb,
  "ctxsw_per_mb": bulk["context-switches"] / mb,
  "cpu_us_per_req": r["task-clock"] * 1000 / n_rr, "syscalls_per_req": r["raw_syscalls:sys_enter"] / n_rr,
  "ctxsw_per_req": r["context-switches"] / n_rr,
  "cpu_us_per_conn": p["task-clock"] * 1000 / n_cps, "syscalls_per_conn": p["raw_syscalls:sys_enter"] / n_cps,
  "top": top_lines}))
EOF
}

# --- direct -----------------------------------------------------------------
[ -n "${SKIP_DIRECT:-}" ] || measure direct "$IPERF_PORT" "$ECHO_PORT"

# --- burrow -----------------------------------------------------------------
# app_create PORT ORIGIN-JSON: an app whose connection limits are above what
# the benchmark holds (all its connections come from one source address,
# and the default per-source limit is 256).
app_create() {
  local f=$WORK/app-$1.json
  printf '{"protocol":"tcp/%s",%s,"max_connections":100000,"max_connections_per_ip":100000}\n' \
    "$1" "$2" > "$f"
  "$BURROW" app create --json "$f" >/dev/null
}
burrow_run() { # PROTOCOL
  local proto=$1 d=$WORK/burrow-$1
  start_edge "$d" --app-address 127.0.0.1
  local edge=$EDGE_PID
  "$BURROW" tunnel create bench --credentials-file "$d/bench.json" >/dev/null
  local ip ep
  ip=$(free_port); ep=$(free_port)
  app_create "$ip" '"origin_tunnel":{"tunnel":"bench","hostname":"iperf.bench"}'
  app_create "$ep" '"origin_tunnel":{"tunnel":"bench","hostname":"echo.bench"}'
  cat > "$d/config.yml" <<EOF
ingress:
  - hostname: iperf.bench
    service: tcp://127.0.0.1:$IPERF_PORT
  - hostname: echo.bench
    service: tcp://127.0.0.1:$ECHO_PORT
  - service: http_status:404
EOF
  "$BURROW" tunnel run --config "$d/config.yml" --credentials-file "$d/bench.json" \
    --protocol "$proto" --loglevel warn 2> "$d/connector.log" &
  local conn=$!; PIDS+=($conn)
  wait_echo "$ep"
  measure "burrow $proto" "$ip" "$ep" "$edge" "$conn"
  stop "$conn" "$edge"
}
[ -n "${SKIP_BURROW:-}" ] || burrow_run quic
[ -n "${SKIP_BURROW:-}" ] || burrow_run http2

# --- edge app pass-through (no tunnel) vs haproxy ----------------------------
# A proxy that dials the origin holds two sockets per connection, so the idle
# test uses IDLE_APP (default 9000) to stay under the 20,000 open-file cap.
IDLE_APP=${IDLE_APP:-9000}
burrow_app_run() {
  local d=$WORK/burrow-app
  start_edge "$d" --app-address 127.0.0.1
  local edge=$EDGE_PID
  local ip ep
  ip=$(free_port); ep=$(free_port)
  app_create "$ip" "\"origin_direct\":[\"tcp://127.0.0.1:$IPERF_PORT\"]"
  app_create "$ep" "\"origin_direct\":[\"tcp://127.0.0.1:$ECHO_PORT\"]"
  wait_echo "$ep"
  IDLE_N=$IDLE_APP measure "burrow app (direct)" "$ip" "$ep" "$edge"
  stop "$edge"
}
haproxy_run() {
  local d=$WORK/haproxy ip ep
  mkdir -p "$d"
  ip=$(free_port); ep=$(free_port)
  printf 'global\n  maxconn 9500\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n' > "$d/h.cfg"
  printf 'frontend iperf\n  bind 127.0.0.1:%s\n  default_backend iperf\nbackend iperf\n  server s1 127.0.0.1:%s\n' "$ip" "$IPERF_PORT" >> "$d/h.cfg"
  printf 'frontend echo\n  bind 127.0.0.1:%s\n  default_backend echo\nbackend echo\n  server s1 127.0.0.1:%s\n' "$ep" "$ECHO_PORT" >> "$d/h.cfg"
  haproxy -db -f "$d/h.cfg" > "$d/h.log" 2>&1 &
  local h=$!; PIDS+=($h)
  wait_echo "$ep"
  IDLE_N=$IDLE_APP measure "haproxy (tcp mode)" "$ip" "$ep" "$h"
  stop "$h"
}
if [ -z "${SKIP_APP:-}" ]; then
  need haproxy || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  burrow_app_run
  haproxy_run
fi

# --- rathole ----------------------------------------------------------------
rathole_run() { # TRANSPORT
  local tr=$1 d=$WORK/rathole-$1 port ip ep skey="" ckey=""
  mkdir -p "$d"
  port=$(free_port); ip=$(free_port); ep=$(free_port)
  case $tr in
    noise)
      "$RATHOLE" --genkey > "$d/keys"
      skey=$(awk '/Private Key:/ {getline; print}' "$d/keys"); ckey=$(awk '/Public Key:/ {getline; print}' "$d/keys")
      printf '[server.transport.noise]\nlocal_private_key = "%s"\n' "$skey" > "$d/s.extra"
      printf '[client.transport.noise]\nremote_public_key = "%s"\n' "$ckey" > "$d/c.extra" ;;
    tls) rathole_tls_extra "$d" ;;
    *) : > "$d/s.extra"; : > "$d/c.extra" ;;
  esac
  { printf '[server]\nbind_addr = "127.0.0.1:%s"\n[server.transport]\ntype = "%s"\n' "$port" "$tr"
    cat "$d/s.extra"
    printf '[server.services.iperf]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$ip"
    printf '[server.services.echo]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$ep"; } > "$d/server.toml"
  { printf '[client]\nremote_addr = "127.0.0.1:%s"\n[client.transport]\ntype = "%s"\n' "$port" "$tr"
    cat "$d/c.extra"
    printf '[client.services.iperf]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$IPERF_PORT"
    printf '[client.services.echo]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$ECHO_PORT"; } > "$d/client.toml"
  RUST_LOG=warn "$RATHOLE" --server "$d/server.toml" 2> "$d/server.log" > /dev/null & local s=$!; PIDS+=($s)
  sleep 0.5
  RUST_LOG=warn "$RATHOLE" --client "$d/client.toml" 2> "$d/client.log" > /dev/null & local c=$!; PIDS+=($c)
  wait_echo "$ep"
  measure "rathole $tr" "$ip" "$ep" "$s" "$c"
  stop "$c" "$s"
}
if [ -z "${SKIP_RATHOLE:-}" ]; then
  rathole_run tcp
  rathole_run noise
  rathole_run tls
fi

# --- report -----------------------------------------------------------------
if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$SECS" "$IDLE" "$RR_CONNS" "$CPS_CONC" >> "$ROOT/bench/RESULTS.md" <<'EOF'
import json, sys, platform, subprocess, datetime
path, secs, idle, rrc, cpsc = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"\n## {now}\n")
print(f"Machine: {ncpu} cores, {cpu}, Linux {platform.release()}. Command: `bash bench/run.sh` "
      f"(SECS={secs}, IDLE={idle}, rr over {rrc} connections with 64-byte messages, cps with {cpsc} "
      f"concurrent dialers). Everything on 127.0.0.1; iperf3 and a Rust echo server as origins.\n")
print("| path | 1-stream Gbit/s | 4-stream Gbit/s | req/s | p50 µs | p99 µs | new conn/s | idle conns | RSS KB / idle conn |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    per = "-" if r["name"] == "direct" or r["rss_idle_kb_per_conn"] is None else f'{r["rss_idle_kb_per_conn"]:.1f}'
    print(f'| {r["name"]} | {r["gbps1"]:.2f} | {r["gbps4"]:.2f} | {r["rps"]:.0f} | {r["p50_us"]} | {r["p99_us"]} '
          f'| {r["cps"]:.0f} | {r["idle_conns"]} | {per} |')
prof = [r for r in rows if r.get("profile")]
if prof:
    print("\nWhat the proxies spend (PROFILE=1; perf stat on their PIDs, both ends summed): bulk = a 2 GiB iperf3 "
          "transfer; req = one 64-byte echo of the rr run; conn = one connection of the cps run.\n")
    print("| path | CPU ms / GB | syscalls / MB | ctx switches / MB | CPU µs / req | syscalls / req | ctx sw / req | CPU µs / conn | syscalls / conn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in prof:
        p = r["profile"]
        print(f'| {r["name"]} | {p["cpu_ms_per_gb"]:.0f} | {p["syscalls_per_mb"]:.1f} | {p["ctxsw_per_mb"]:.2f} '
              f'| {p["cpu_us_per_req"]:.1f} | {p["syscalls_per_req"]:.2f} | {p["ctxsw_per_req"]:.2f} '
              f'| {p["cpu_us_per_conn"]:.0f} | {p["syscalls_per_conn"]:.1f} |')
    for r in prof:
        if r["profile"]["top"]:
            print(f'\nTop of the bulk profile, {r["name"]} (perf record -g, self time, dso and symbol):\n')
            print("```")
            print("\n".join(r["profile"]["top"]))
            print("```")
EOF
echo "== appended to bench/RESULTS.md"
tail -n 12 "$ROOT/bench/RESULTS.md"
# The chart in the README: this run's figures beside the last impaired-link run's.
cp "$RESULTS" "$ROOT/bench/last-run.jsonl"
python3 "$ROOT/bench/chart.py" "$ROOT/bench/chart.svg" "$ROOT/bench/last-run.jsonl" "$ROOT/bench/last-impair.jsonl"
echo "== drew bench/chart.svg"
