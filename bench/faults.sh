#!/usr/bin/env bash
# Fault scenarios, QUIC and HTTP/2 side by side, each a real edge,
# connectors and origin on loopback (the end-to-end tests that assert the
# targets, run here for their figures):
#   replica killed   two connector replicas, one SIGKILLed while a new echo
#                    connection starts every 50 ms (3 s each): failed
#                    connections, worst round trip after the kill
#   edge restarted   the edge SIGKILLed and started again on the same
#                    address and state: time until an app connection works
#   rolling restart  two replicas restarted one after the other under a
#                    GET/POST loop (bodies up to 16 KiB): failed requests
#   silent peer      a QUIC path that stops carrying anything: time until
#                    the connector gives the connection up (QUIC only; a
#                    TCP reset tells HTTP/2 at once)
#
# Usage: bash bench/faults.sh            (appends a dated section to bench/RESULTS.md)
#        NO_REPORT=1 bash bench/faults.sh (print only)
# Traffic stays on 127.0.0.1; the tests stop every process they start.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

run() { # TEST-FILE FILTER
  cargo test -q --release -p burrow --test "$1" "$2" -- --nocapture --test-threads 1 2>&1 | tee -a "$OUT" \
    | grep -E "failed;|service back|requests answered|given up|test result" || true
}
echo "== building (release)"
cargo build -q --release -p burrow --tests
echo "== replica killed under a new-connection loop"
run tunnel a_replica_killed_under_load
echo "== edge killed and restarted"
run tunnel an_edge_killed_and_restarted
echo "== rolling restart of two replicas under GET/POST"
run http rolling_restart_of_two_replicas
echo "== a silent QUIC peer"
run tunnel a_lossy_quic_link

if [ -n "${NO_REPORT:-}" ]; then exit 0; fi
python3 - "$OUT" >> bench/RESULTS.md <<'PY'
import re, sys, datetime, subprocess
text = open(sys.argv[1]).read()
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rows = []
for p in ("quic", "http2"):
    m = re.search(rf"{p}: (\d+) of (\d+) failed; worst round trip after the kill ([\d.]+)(ms|s|µs)", text)
    if m:
        worst = float(m.group(3)) * {"ms": 1, "s": 1000, "µs": 0.001}[m.group(4)]
        rows.append(("replica killed", p, f"{m.group(1)} of {m.group(2)} new connections failed", f"worst {worst:.0f} ms"))
    m = re.search(rf"{p}: service back ([\d.]+)(ms|s) after the restart", text)
    if m:
        ms = float(m.group(1)) * {"ms": 1, "s": 1000}[m.group(2)]
        rows.append(("edge restarted", p, "service back", f"{ms:.0f} ms after the restart"))
    m = re.search(rf"rolling restart over {p}: (\d+) requests answered, (\d+) failed", text)
    if m:
        rows.append(("rolling restart", p, f"{m.group(2)} of {int(m.group(1)) + int(m.group(2))} requests failed", "-"))
m = re.search(r"a silent QUIC peer was given up after ([\d.]+)(ms|s)", text)
if m:
    ms = float(m.group(1)) * {"ms": 1, "s": 1000}[m.group(2)]
    rows.append(("silent peer", "quic", "connection given up", f"{ms:.0f} ms after the path went silent"))
print(f"\n## Faults — {datetime.date.today()} ({rev}), `bash bench/faults.sh`\n")
print("| scenario | transport | outcome | figure |\n|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
echo "== appended to bench/RESULTS.md"
tail -n 12 bench/RESULTS.md
