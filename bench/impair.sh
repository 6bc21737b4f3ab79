#!/usr/bin/env bash
# Lossy, slow links: burrow over QUIC and over HTTP/2 against rathole (TLS
# and plain TCP), side by side in one run, across a userspace link
# emulator (`burrow-loadgen impair`; this kernel has no netem).
#
# The link: the edge (or rathole server) stays in this namespace on
# 10.99.0.1; the connector (or rathole client) and the origins run in a
# network namespace made here, 10.99.0.2, joined to this one through two TUN
# devices that the emulator relays between. Each direction gets DELAY_MS of
# delay (the round trip is twice that) and LOSS percent loss; the eyeball
# (iperf3 client, echo load) stays on 127.0.0.1 by the edge, so only the
# tunnel crosses the bad link — the case a tunnel is deployed for.
#
# Per link setting (LOSSES, default "0 1 5" percent) and path: one-stream
# throughput (iperf3, SECS seconds) and 64-byte request/response latency
# over RR_CONNS connections (loadgen rr) — under loss, p99 shows whether a
# lost packet stalls only its own flow (QUIC streams) or every flow on the
# same TCP connection (HTTP/2, rathole).
#
# Usage: bash bench/impair.sh              (appends to bench/RESULTS.md, keeps
#                                          the figures in bench/last-impair.jsonl
#                                          and redraws bench/chart.svg)
#        LOSSES="1" SECS=5 bash bench/impair.sh   NO_REPORT=1: print only
#        DELAY_MS=25 RATE_MBIT=0 (unlimited) JITTER_MS=0 REORDER=0
# Needs root (TUN devices, a network namespace) and iproute2; every process,
# device and namespace made here is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-10}
LOSSES=${LOSSES:-0 1 5}
DELAY_MS=${DELAY_MS:-25}
JITTER_MS=${JITTER_MS:-0}
REORDER=${REORDER:-0}
RATE_MBIT=${RATE_MBIT:-0}
RR_CONNS=${RR_CONNS:-8}
[ "$(id -u)" = 0 ] || { echo "bench/impair.sh needs root (TUN devices, a network namespace)" >&2; exit 1; }
command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }

source "$ROOT/bench/lib.sh"
NS=burrow-far-$$
TA=bimpa$$; TB=bimpb$$
NEAR=10.99.0.1; FAR=10.99.0.2
# far CMD...: CMD in the far namespace, in the foreground. Commands run in
# the background call `ip netns exec` directly instead, so that $! is the
# process that becomes CMD (a backgrounded function would be a subshell
# that stopping leaves CMD running).
far() { ip netns exec "$NS" "$@"; }
link_down() {
  [ -n "${RELAY:-}" ] && stop "$RELAY"
  RELAY=
  ip netns del "$NS" 2>/dev/null || true
}
trap 'link_down; cleanup' EXIT

# link_up LOSS: the emulator, the namespace and the origins in it.
link_up() {
  "$LOADGEN" impair --a "$TA" --b "$TB" --delay-ms "$DELAY_MS" --jitter-ms "$JITTER_MS" \
    --loss "$1" --reorder "$REORDER" --rate-mbit "$RATE_MBIT" > "$WORK/relay.out" &
  RELAY=$!; PIDS+=($RELAY)
  for _ in $(seq 1 50); do grep -q ready "$WORK/relay.out" 2>/dev/null && break; sleep 0.1; done
  ip netns add "$NS"
  ip link set "$TB" netns "$NS"
  ip addr add "$NEAR/30" dev "$TA"; ip link set "$TA" up
  far ip addr add "$FAR/30" dev "$TB"; far ip link set "$TB" up; far ip link set lo up
  ip netns exec "$NS" iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 & PIDS+=($!)
  ip netns exec "$NS" "$LOADGEN" echo-server --listen 127.0.0.1:"$ECHO_PORT" >/dev/null & PIDS+=($!)
  sleep 0.3
}

RESULTS=$WORK/results.jsonl
measure() { # NAME LOSS IPERF_PORT ECHO_PORT
  echo "== $1, loss $2 %"
  local t rr
  t=$(iperf3 -c 127.0.0.1 -p "$3" -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])' || echo 0)
  rr=$("$LOADGEN" rr --target 127.0.0.1:"$4" --conns "$RR_CONNS" --secs 5)
  python3 -c 'import json,sys; r=json.loads(sys.argv[4]); print(json.dumps({"name": sys.argv[1], "loss": float(sys.argv[2]), "rtt_ms": 2 * float(sys.argv[5]), "mbps": float(sys.argv[3])/1e6, "rps": r["rps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"]}))' \
    "$1" "$2" "$t" "$rr" "$DELAY_MS" >> "$RESULTS"
  tail -n 1 "$RESULTS"
}

app_create() { # PORT HOSTNAME
  printf '{"protocol":"tcp/%s","origin_tunnel":{"tunnel":"bench","hostname":"%s"}}\n' "$1" "$2" > "$WORK/app-$1.json"
  "$BURROW" app create --json "$WORK/app-$1.json" >/dev/null
}
burrow_run() { # PROTOCOL LOSS
  local d=$WORK/burrow-$1-$2 lp ip ep
  lp=$(free_port)
  EDGE_LISTEN=$NEAR:$lp start_edge "$d" --app-address 127.0.0.1
  local edge=$EDGE_PID
  "$BURROW" tunnel create bench --credentials-file "$d/bench.json" >/dev/null
  ip=$(free_port); ep=$(free_port)
  app_create "$ip" iperf.bench; app_create "$ep" echo.bench
  printf 'ingress:\n  - hostname: iperf.bench\n    service: tcp://127.0.0.1:%s\n  - hostname: echo.bench\n    service: tcp://127.0.0.1:%s\n  - service: http_status:404\n' \
    "$IPERF_PORT" "$ECHO_PORT" > "$d/config.yml"
  ip netns exec "$NS" "$BURROW" tunnel run --config "$d/config.yml" --credentials-file "$d/bench.json" \
    --edge "$NEAR:$lp" --protocol "$1" --loglevel warn 2> "$d/connector.log" &
  local conn=$!; PIDS+=($conn)
  wait_echo "$ep" 300
  measure "burrow $1" "$2" "$ip" "$ep"
  stop "$conn" "$edge"
}
rathole_run() { # TRANSPORT LOSS
  local tr=$1 d=$WORK/rathole-$1-$2 port ip ep
  mkdir -p "$d"
  port=$(free_port); ip=$(free_port); ep=$(free_port)
  : > "$d/s.extra"; : > "$d/c.extra"
  if [ "$tr" = tls ]; then rathole_tls_extra "$d"; fi
  { printf '[server]\nbind_addr = "%s:%s"\n[server.transport]\ntype = "%s"\n' "$NEAR" "$port" "$tr"
    cat "$d/s.extra"
    printf '[server.services.iperf]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$ip"
    printf '[server.services.echo]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$ep"; } > "$d/server.toml"
  { printf '[client]\nremote_addr = "%s:%s"\n[client.transport]\ntype = "%s"\n' "$NEAR" "$port" "$tr"
    cat "$d/c.extra"
    printf '[client.services.iperf]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$IPERF_PORT"
    printf '[client.services.echo]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$ECHO_PORT"; } > "$d/client.toml"
  RUST_LOG=warn "$RATHOLE" --server "$d/server.toml" 2> "$d/server.log" > /dev/null & local s=$!; PIDS+=($s)
  sleep 0.5
   RUST_LOG=warn ip netns exec "$NS" "$RATHOLE" --client "$d/client.toml" 2> "$d/client.log" > /dev/null & local c=$!; PIDS+=($c)
  wait_echo "$ep" 300
  measure "rathole $tr" "$2" "$ip" "$ep"
  stop "$c" "$s"
}

IPERF_PORT=$(free_port); ECHO_PORT=$(free_port)
for loss in $LOSSES; do
  link_up "$loss"
  burrow_run quic "$loss"
  burrow_run http2 "$loss"
  [ -n "${SKIP_RATHOLE:-}" ] || rathole_run tls "$loss"
  [ -n "${SKIP_RATHOLE:-}" ] || rathole_run tcp "$loss"
  link_down
done

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$SECS" "$DELAY_MS" "$JITTER_MS" "$REORDER" "$RATE_MBIT" "$RR_CONNS" "$BURROW" >> "$ROOT/bench/RESULTS.md" <<'PY'
import json, sys, platform, subprocess, datetime
path, secs, delay, jitter, reorder, rate, rrc, burrow = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
losses = sorted({r["loss"] for r in rows})
names = list(dict.fromkeys(r["name"] for r in rows))
at = {(r["name"], r["loss"]): r for r in rows}
print(f"\n## {now} — impaired link\n")
print(f"Machine: {ncpu} cores, {cpu}, Linux {platform.release()}. Command: `bash bench/impair.sh` "
      f"(SECS={secs}; each direction {delay} ms delay, so {2*float(delay):g} ms RTT, jitter {jitter} ms, reorder {reorder} %, "
      f"rate {'unlimited' if rate == '0' else rate + ' Mbit/s'}; loss per direction as in the header). "
      f"Tunnel across the emulated link, eyeball on 127.0.0.1 by the edge. Throughput: iperf3, one stream; "
      f"rr: 64-byte request/response over {rrc} connections, p50 / p99 ms. "
      f"Kernel TCP congestion control (HTTP/2 and rathole): {open('/proc/sys/net/ipv4/tcp_congestion_control').read().strip()}. "
      f"burrow: `{burrow}`.\n")
print("| path | " + " | ".join(f"{l:g} % loss: Mbit/s | rr p50 / p99 ms" for l in losses) + " |")
print("|---|" + "---:|---:|" * len(losses))
for n in names:
    cells = []
    for l in losses:
        r = at.get((n, l))
        cells += ["-", "-"] if r is None else [f'{r["mbps"]:.0f}', f'{r["p50_us"]/1000:.0f} / {r["p99_us"]/1000:.0f}']
    print(f"| {n} | " + " | ".join(cells) + " |")
PY
echo "== appended to bench/RESULTS.md"
tail -n 8 "$ROOT/bench/RESULTS.md"
cp "$RESULTS" "$ROOT/bench/last-impair.jsonl"
python3 "$ROOT/bench/chart.py" "$ROOT/bench/chart.svg" "$ROOT/bench/last-run.jsonl" "$ROOT/bench/last-impair.jsonl"
echo "== drew bench/chart.svg"
