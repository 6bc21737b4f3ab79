#!/usr/bin/env bash
# Cluster figures, on loopback with a throwaway PostgreSQL (Debian's
# package, initdb as the postgres user into the work directory):
#   forwarded vs local  a connector connected only to node B; iperf3 (one
#                       stream) and request/response rate through an app at
#                       B's address (local) and at A's (A → B → connector),
#                       side by side in one run
#   propagation         an app created through A's admin API (timed from
#                       the request) until B's listener answers; 100 times
#   failover            nodes A, B, C; the connector on B and C; a new echo
#                       connection at A every 20 ms; B SIGKILLed: failed
#                       connections and the longest gap without a success
#
# Usage: bash bench/cluster.sh            (appends a dated section to bench/RESULTS.md)
#        SECS=5 NO_REPORT=1 bash bench/cluster.sh
# Traffic stays on 127.0.0.0/8; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${SECS:-10}
RR_CONNS=${RR_CONNS:-32}
export SKIP_RATHOLE=1
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); }
source "$ROOT/bench/lib.sh"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }

echo "== PostgreSQL ($PGBIN)"
chmod 711 "$WORK"   # the postgres user goes through it to its own dir
mkdir -p "$WORK/pg" && { chown postgres "$WORK/pg" 2>/dev/null || sudo -n chown postgres "$WORK/pg"; }
PG_PORT=$(free_port)
as_postgres "$PGBIN/initdb" -D "$WORK/pg/data" -U burrow -A trust --no-sync >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w start \
  -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
pg_stop() { as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop >/dev/null 2>&1 || true; }
trap 'pg_stop; cleanup' EXIT
export BURROW_STORE=postgres://burrow@127.0.0.1:$PG_PORT/postgres
openssl rand -hex 32 > "$WORK/cluster.secret"

# node NAME IP: an edge node of the cluster; sets ${NAME}_PID, ${NAME}_TUNNEL, ${NAME}_ADMIN.
node() {
  local n=$1 ip=$2 d=$WORK/$1
  mkdir -p "$d"
  "${PROXY_CPU[@]}" "$BURROW" edge --colo "$n" --listen "$ip:0" --admin 127.0.0.1:0 --app-address "$ip" \
    --data-dir "$d/data" --cluster-secret-file "$WORK/cluster.secret" --loglevel warn > "$d/out" 2> "$d/log" &
  local pid=$!; PIDS+=($pid)
  for _ in $(seq 1 100); do grep -q '^admin API:' "$d/out" 2>/dev/null && break; sleep 0.1; done
  printf -v "${n}_PID" '%s' "$pid"
  printf -v "${n}_TUNNEL" '%s' "$(sed -n 's/^tunnel endpoint: \([^ ]*\).*/\1/p' "$d/out")"
  printf -v "${n}_ADMIN" '%s' "$(sed -n 's/^admin API: //p' "$d/out")"
}
node A 127.0.0.2; node B 127.0.0.3; node C 127.0.0.4
export BURROW_ADMIN_TOKEN_FILE=$WORK/A/data/admin.token BURROW_ADMIN_URL=$A_ADMIN

IPERF_PORT=$(free_port); ECHO_PORT=$(free_port)
"${LOAD_CPU[@]}" iperf3 -s -p "$IPERF_PORT" >/dev/null 2>&1 & PIDS+=($!)
"${LOAD_CPU[@]}" "$LOADGEN" echo-server --listen 127.0.0.1:"$ECHO_PORT" >/dev/null & PIDS+=($!)
"$BURROW" tunnel create bench --credentials-file "$WORK/bench.json" >/dev/null
cat > "$WORK/config.yml" <<EOF
ingress:
  - hostname: iperf.bench
    service: tcp://127.0.0.1:$IPERF_PORT
  - hostname: echo.bench
    service: tcp://127.0.0.1:$ECHO_PORT
  - service: http_status:404
EOF
APP_IPERF=$(free_port); APP_ECHO=$(free_port)
"$BURROW" app create --protocol "tcp/$APP_IPERF" --tunnel bench --hostname iperf.bench >/dev/null
"$BURROW" app create --protocol "tcp/$APP_ECHO" --tunnel bench --hostname echo.bench >/dev/null
"${PROXY_CPU[@]}" "$BURROW" tunnel run --credentials-file "$WORK/bench.json" --config "$WORK/config.yml" \
  --edge "$B_TUNNEL" --loglevel warn > /dev/null 2> "$WORK/connector.log" & CONN_PID=$!; PIDS+=($CONN_PID)
sleep 3

RESULTS=$WORK/results.txt
: > "$RESULTS"
for where in "B 127.0.0.3 local" "A 127.0.0.2 forwarded"; do
  set -- $where
  echo "== $3: at node $1 ($2)"
  t1=$(iperf3 -c "$2" -p "$APP_IPERF" -t "$SECS" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
  sleep 1
  rr=$("$LOADGEN" rr --target "$2:$APP_ECHO" --conns "$RR_CONNS" --secs "$SECS")
  echo "$3 $t1 $rr" >> "$RESULTS"
done

echo "== propagation: 100 apps created at A until B's listener answers"
PROP=$(python3 - "$A_ADMIN" "$BURROW_ADMIN_TOKEN_FILE" "$ECHO_PORT" <<'EOF'
import json, socket, sys, time, urllib.request
admin, token_file, echo = sys.argv[1], sys.argv[2], int(sys.argv[3])
token = open(token_file).read().strip()
def call(method, path, body=None):
    req = urllib.request.Request(admin + path, method=method, data=body and json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10)) if method == "POST" else urllib.request.urlopen(req, timeout=10).read()
took = []
for i in range(100):
    port = 23000 + i
    t0 = time.monotonic()
    app = call("POST", "/api/v1/apps", {"protocol": f"tcp/{port}", "origin_direct": [f"tcp://127.0.0.1:{echo}"]})
    while True:
        try:
            socket.create_connection(("127.0.0.3", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() - t0 > 10:
                sys.exit(f"app {i} never listened at B")
            time.sleep(0.0005)
    took.append((time.monotonic() - t0) * 1000)
    call("DELETE", "/api/v1/apps/" + app["id"])
took.sort()
print(json.dumps({"p50_ms": took[49], "p99_ms": took[98], "max_ms": took[-1]}))
EOF
)
echo "$PROP"

echo "== failover: the connector on B and C, B killed, new connections at A every 20 ms"
stop "$CONN_PID"
"${PROXY_CPU[@]}" "$BURROW" tunnel run --credentials-file "$WORK/bench.json" --config "$WORK/config.yml" \
  --edge "$B_TUNNEL" --edge "$C_TUNNEL" --loglevel warn > /dev/null 2> "$WORK/connector2.log" & PIDS+=($!)
sleep 3
FAIL=$(python3 - "$APP_ECHO" "$B_PID" <<'EOF'
import json, os, signal, socket, sys, time
port, victim = int(sys.argv[1]), int(sys.argv[2])
def one():
    try:
        s = socket.create_connection(("127.0.0.2", port), timeout=2)
        s.settimeout(2); s.sendall(b"x" * 16)
        got = b""
        while len(got) < 16:
            d = s.recv(16)
            if not d: return False
            got += d
        s.close(); return True
    except OSError:
        return False
t_end = time.monotonic() + 9
killed_at, failed, n, last_ok, worst = None, 0, 0, time.monotonic(), 0.0
while time.monotonic() < t_end:
    if killed_at is None and time.monotonic() > t_end - 6:
        os.kill(victim, signal.SIGKILL); killed_at = time.monotonic(); last_ok = killed_at
    ok = one(); n += 1
    now = time.monotonic()
    if ok:
        if killed_at: worst = max(worst, now - last_ok)
        last_ok = now
    else:
        failed += 1
    time.sleep(0.02)
print(json.dumps({"connections": n, "failed": failed, "worst_gap_ms": round(worst * 1000)}))
EOF
)
echo "$FAIL"

python3 - "$RESULTS" "$PROP" "$FAIL" "$SECS" "$RR_CONNS" <<'EOF' > "$WORK/report.md"
import json, sys, datetime, subprocess
results, prop, fail, secs, conns = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = {}
for line in open(results):
    name, t1, rr = line.split(" ", 2)
    rr = json.loads(rr)
    rows[name] = (float(t1) / 1e9, rr["rps"], rr["p99_us"])
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"\n## Cluster: forwarded vs local, propagation, failover — {datetime.date.today()} ({rev})\n")
print(f"Command: `bash bench/cluster.sh` (SECS={secs}, {conns} request/response connections); nodes A, B, C on 127.0.0.2-4, one throwaway PostgreSQL, one session.\n")
print("| path | gbps (1 stream) | requests/s | p99 µs |")
print("|---|---|---|---|")
for name in ("local", "forwarded"):
    g, r, p = rows[name]
    print(f"| {name} | {g:.2f} | {r:.0f} | {p} |")
l, f = rows["local"], rows["forwarded"]
print(f"| forwarded/local | {f[0]/l[0]:.2f} | {f[1]/l[1]:.2f} | {f[2]/l[2]:.2f} |\n")
print(f"Propagation (app created at A until B's listener answers, timed from the request, 100 changes): p50 {prop['p50_ms']:.1f} ms, p99 {prop['p99_ms']:.1f} ms, max {prop['max_ms']:.1f} ms.\n")
print(f"Failover (B SIGKILLed, connector on B and C, a new connection at A every 20 ms for 6 s after): {fail['failed']} of {fail['connections']} connections failed, longest gap without a success {fail['worst_gap_ms']} ms.")
EOF
cat "$WORK/report.md"
if [ -z "${NO_REPORT:-}" ]; then cat "$WORK/report.md" >> "$ROOT/bench/RESULTS.md"; echo "== appended to bench/RESULTS.md"; fi
