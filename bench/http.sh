#!/usr/bin/env bash
# HTTP benchmark, side by side in one run on loopback:
#   direct to the origin | burrow edge --http through a tunnel over QUIC |
#   the same over HTTP/2 | rathole 0.5.0 forwarding the origin's port as TCP
#   (frp/rathole-style: the HTTP bytes ride a TCP tunnel, no HTTP routing)
# Figures: requests per second and p50/p99 latency for GET / (64-byte
# answers) over CONNS keep-alive HTTP/1.1 connections.
# Then HTTP/2 clients (h2load -n H2_REQS -c 16 -m 10) against an nginx
# origin answering HTTP/1.1: through burrow's HTTPS listener and a tunnel
# over QUIC and over HTTP/2, against nginx as an HTTP/2 reverse proxy in
# front of the same origin, and nginx answering HTTP/2 itself (the
# ceiling). SKIP_H2=1 leaves this part out.
#
# Usage: bash bench/http.sh            (appends a dated section to bench/RESULTS.md)
#        SECS=5 bash bench/http.sh     (shorter)   NO_REPORT=1: print only
#        PIN=1 bash bench/http.sh      (load generator + origin on CPU 0, proxies on CPU 1)
#        BURROW=PATH: another build's binary; SKIP_RATHOLE=1: leave rathole out
#        PROFILE=1: per path, what the proxies spend per request over a second
#          run (perf stat on their PIDs: CPU µs, system calls, context
#          switches) and the symbols with most self time (perf record)
# Needs: curl, openssl; for the HTTP/2 part h2load and nginx (installed
# with apt-get when missing, as root).
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

if [ -z "${SKIP_H2:-}" ] && { ! command -v h2load >/dev/null || ! command -v nginx >/dev/null; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client nginx >/dev/null
fi

ORIGIN_PORT=$(free_port)
"${LOAD_CPU[@]}" "$LOADGEN" http-server --listen 127.0.0.1:"$ORIGIN_PORT" >/dev/null & PIDS+=($!)
wait_http "$ORIGIN_PORT"

RESULTS=$WORK/results.jsonl
# per_request TAG REQUESTS: the perf_counts/perf_top files of TAG as JSON
# figures per request.
per_request() {
  python3 - "$WORK/$1" "$2" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from perfcounts import counts, top
base, n = sys.argv[1], float(sys.argv[2])
c = counts(base + ".counts")
print(json.dumps({"cpu_us_per_req": c["task-clock"] * 1000 / n,
                  "syscalls_per_req": c["raw_syscalls:sys_enter"] / n,
                  "ctxsw_per_req": c["context-switches"] / n, "top": top(base + ".top")}))
PY
}
measure() { # NAME PORT [PID...]: PIDs are the proxies PROFILE=1 counts
  echo "== $1"
  local name=$1 port=$2 r prof='{}'; shift 2
  r=$("${LOAD_CPU[@]}" "$LOADGEN" http --target 127.0.0.1:"$port" --conns "$CONNS" --secs "$SECS")
  if [ -n "${PROFILE:-}" ] && [ $# -gt 0 ]; then
    local pids tag n; pids=$(IFS=,; echo "$*"); tag=http-${name//[^a-z0-9]/-}
    n=$(perf_counts "$WORK/$tag.counts" "$pids" -- "${LOAD_CPU[@]}" "$LOADGEN" http --target 127.0.0.1:"$port" \
      --conns "$CONNS" --secs 5 | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
    perf_top "$WORK/$tag.top" "$pids" -- "${LOAD_CPU[@]}" "$LOADGEN" http --target 127.0.0.1:"$port" --conns "$CONNS" --secs 3
    prof=$(per_request "$tag" "$n")
  fi
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["name"]=sys.argv[1]; d["profile"]=json.loads(sys.argv[3]); print(json.dumps(d))' \
    "$name" "$r" "$prof" >> "$RESULTS"
  tail -n 1 "$RESULTS"
}

measure direct "$ORIGIN_PORT"

# tunnel_to ORIGIN-URL PROTO DIR EDGE-FLAGS...: an edge with DIR's state and
# the flags given, a tunnel routed for bench.example.com, and a connector
# over PROTO to ORIGIN-URL; sets E (edge PID) and C (connector PID).
tunnel_to() {
  local url=$1 proto=$2 d=$3; shift 3
  start_edge "$d" "$@"
  E=$EDGE_PID
  "$BURROW" tunnel create bench --credentials-file "$d/bench.json" >/dev/null
  "$BURROW" route dns bench bench.example.com >/dev/null
  "${PROXY_CPU[@]}" "$BURROW" tunnel run --credentials-file "$d/bench.json" --url "$url" \
    --protocol "$proto" --loglevel warn 2> "$d/connector.log" &
  C=$!; PIDS+=($C)
}

for proto in quic http2; do
  hp=$(free_port)
  tunnel_to "http://127.0.0.1:$ORIGIN_PORT" "$proto" "$WORK/burrow-$proto" --http 127.0.0.1:"$hp"
  wait_http "$hp"
  measure "burrow $proto" "$hp" "$E" "$C"
  stop "$C" "$E"
done

if [ -z "${SKIP_RATHOLE:-}" ]; then
  d=$WORK/rathole; mkdir -p "$d"; port=$(free_port); p=$(free_port)
  printf '[server]\nbind_addr = "127.0.0.1:%s"\n[server.services.h]\ntoken = "bench"\nbind_addr = "127.0.0.1:%s"\n' "$port" "$p" > "$d/server.toml"
  printf '[client]\nremote_addr = "127.0.0.1:%s"\n[client.services.h]\ntoken = "bench"\nlocal_addr = "127.0.0.1:%s"\n' "$port" "$ORIGIN_PORT" > "$d/client.toml"
  RUST_LOG=warn "${PROXY_CPU[@]}" "$RATHOLE" --server "$d/server.toml" 2> "$d/server.log" > /dev/null & s=$!; PIDS+=($s)
  sleep 0.5
  RUST_LOG=warn "${PROXY_CPU[@]}" "$RATHOLE" --client "$d/client.toml" 2> "$d/client.log" > /dev/null & c=$!; PIDS+=($c)
  wait_http "$p"
  measure "rathole tcp (HTTP as TCP)" "$p" "$s" "$c"
  stop "$c" "$s"
fi


# --- HTTP/2 clients: h2load against burrow's HTTPS listener and nginx ---
H2_RESULTS=$WORK/h2.jsonl
if [ -z "${SKIP_H2:-}" ]; then
  H2_REQS=${H2_REQS:-60000}
  certs=$WORK/certs; mkdir -p "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.example.com \
    -addext subjectAltName=DNS:bench.example.com \
    -keyout "$certs/bench.example.com.key" -out "$certs/bench.example.com.pem" 2>/dev/null
  # nginx_run NAME CPU-PREFIX... -- SERVER-BLOCK: an nginx of its own in
  # $WORK/nginx-NAME; sets NGINX_PID.
  nginx_run() {
    local name=$1; shift; local cpu=()
    while [ "$1" != -- ]; do cpu+=("$1"); shift; done; shift
    local d=$WORK/nginx-$name; mkdir -p "$d/logs"
    local user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
    cat > "$d/nginx.conf" <<NGX
$user
worker_processes ${NGINX_WORKERS:-auto};
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fcgi;
  uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  keepalive_requests 1000000;
  $1
}
NGX
    "${cpu[@]}" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' & NGINX_PID=$!; PIDS+=($NGINX_PID)
  }
  body=$(printf 'x%.0s' $(seq 1 63))
  NGX_ORIGIN=$(free_port)
  NGINX_WORKERS=1 nginx_run origin "${LOAD_CPU[@]}" -- "server { listen 127.0.0.1:$NGX_ORIGIN; location / { return 200 '$body\n'; } }"
  origin_pid=$NGINX_PID
  wait_http "$NGX_ORIGIN"
  tls="ssl_certificate $certs/bench.example.com.pem; ssl_certificate_key $certs/bench.example.com.key;"
  # h2measure NAME PORT [PID...]: h2load over TLS with ALPN h2, SNI
  # bench.example.com; PIDs are the proxies PROFILE=1 counts.
  h2measure() {
    echo "== h2load: $1"
    local name=$1 port=$2 out prof='{}'; shift 2
    local load=("${LOAD_CPU[@]}" h2load -n "$H2_REQS" -c 16 -m 10 --connect-to=127.0.0.1:"$port" "https://bench.example.com:$port/")
    out=$("${load[@]}" 2>&1) || true
    if [ -n "${PROFILE:-}" ] && [ $# -gt 0 ]; then
      local pids tag; pids=$(IFS=,; echo "$*"); tag=h2-${name//[^a-z0-9]/-}
      perf_counts "$WORK/$tag.counts" "$pids" -- "${load[@]}" > /dev/null 2>&1 || true
      perf_top "$WORK/$tag.top" "$pids" -- "${load[@]}"
      prof=$(per_request "$tag" "$H2_REQS")
    fi
    python3 - "$name" "$out" "$prof" >> "$H2_RESULTS" <<'PY'
import json, re, sys
name, out, prof = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rps = re.search(r"finished in [^,]+, ([0-9.]+) req/s", out)
done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
proto = re.search(r"Application protocol: (\S+)", out)
def ms(v):
    v = v.strip()
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float("nan")
r = {"name": name, "rps": float(rps.group(1)) if rps else 0.0,
     "succeeded": int(done.group(4)) if done else 0,
     "failed": int(done.group(5)) + int(done.group(6)) if done else -1,
     "mean_ms": ms(lat.group(3)) if lat else float("nan"),
     "max_ms": ms(lat.group(2)) if lat else float("nan"),
     "alpn": proto.group(1) if proto else "?", "profile": prof}
print(json.dumps(r))
PY
    tail -n 1 "$H2_RESULTS"
  }
  for proto in quic http2; do
    hp=$(free_port)
    tunnel_to "http://127.0.0.1:$NGX_ORIGIN" "$proto" "$WORK/burrow-h2-$proto" --https 127.0.0.1:"$hp" --cert-dir "$certs"
    for _ in $(seq 1 200); do
      [ "$(curl -sk -o /dev/null -w '%{http_code}' --resolve "bench.example.com:$hp:127.0.0.1" "https://bench.example.com:$hp/")" = 200 ] && break
      sleep 0.1
    done
    h2measure "burrow $proto → nginx origin" "$hp" "$E" "$C"
    stop "$C" "$E"
  done
  np=$(free_port)
  nginx_run proxy "${PROXY_CPU[@]}" -- "upstream origin { server 127.0.0.1:$NGX_ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$np ssl http2; $tls
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  proxy_pid=$NGINX_PID
  sleep 0.5
  h2measure "nginx h2 reverse proxy → nginx origin" "$np" $(pgrep -d ' ' -P "$proxy_pid") "$proxy_pid"
  stop "$proxy_pid"
  nd=$(free_port)
  nginx_run direct "${PROXY_CPU[@]}" -- "server { listen 127.0.0.1:$nd ssl http2; $tls location / { return 200 '$body\n'; } }"
  direct_pid=$NGINX_PID
  sleep 0.5
  h2measure "nginx answering h2 itself (ceiling)" "$nd" $(pgrep -d ' ' -P "$direct_pid") "$direct_pid"
  stop "$direct_pid" "$origin_pid"
fi

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$RESULTS" "$SECS" "$CONNS" "${PIN:-}" "$H2_RESULTS" "${H2_REQS:-}" >> "$ROOT/bench/RESULTS.md" <<'PY'
import json, os, sys, platform, subprocess, datetime
path, secs, conns, pinned, h2path, h2reqs = sys.argv[1:]
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
def spend(rows, what):
    rows = [r for r in rows if r.get("profile")]
    if not rows:
        return
    print(f"\nWhat the proxies spend per request, {what} (PROFILE=1: perf stat on their PIDs over a second run, all processes of a path summed):\n")
    print("| path | CPU µs / req | syscalls / req | ctx switches / req |")
    print("|---|---:|---:|---:|")
    for r in rows:
        p = r["profile"]
        print(f'| {r["name"]} | {p["cpu_us_per_req"]:.1f} | {p["syscalls_per_req"]:.2f} | {p["ctxsw_per_req"]:.3f} |')
    for r in rows:
        if r["profile"].get("top"):
            print(f'\nTop of the profile, {r["name"]} (perf record -g, self time, dso and symbol):\n\n```')
            print("\n".join(r["profile"]["top"][:10]))
            print("```")
spend(rows, "HTTP/1.1 GET")
if os.path.exists(h2path):
    h2 = [json.loads(l) for l in open(h2path)]
    ref = next((r for r in h2 if r["name"].startswith("nginx h2 reverse proxy")), None)
    print(f"\nHTTP/2 clients: `h2load -n {h2reqs} -c 16 -m 10` over TLS (ALPN as shown) to an nginx origin "
          "answering HTTP/1.1 with 64 bytes (one worker); nginx as a reverse proxy keeps 64 idle upstream "
          "connections; the last row is nginx answering itself.\n")
    print("| path | req/s | mean ms | max ms | succeeded | failed | ALPN | vs nginx reverse proxy |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for r in h2:
        rel = f'{r["rps"] / ref["rps"]:.2f}×' if ref and ref["rps"] else "-"
        print(f'| {r["name"]} | {r["rps"]:.0f} | {r["mean_ms"]:.2f} | {r["max_ms"]:.1f} | {r["succeeded"]} '
              f'| {r["failed"]} | {r["alpn"]} | {rel} |')
    spend(h2, "HTTP/2 clients")
PY
echo "== appended to bench/RESULTS.md"
tail -n 18 "$ROOT/bench/RESULTS.md"
