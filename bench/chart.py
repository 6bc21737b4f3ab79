#!/usr/bin/env python3
"""Draws bench results side by side as one SVG (no plotting library needed).

    python3 bench/chart.py OUT.svg [run.jsonl] [impair.jsonl]

run.jsonl is what bench/run.sh measured (one JSON object per path: gbps1,
gbps4, rps, p99_us, cps, rss_idle_kb_per_conn); impair.jsonl is what
bench/impair.sh measured (name, loss, mbps). A missing file leaves its
panels out. Each panel is one figure for every path of the same run, so the
bars compare; burrow's bars are drawn in the accent colour.
"""
import json
import sys
from html import escape

W, BAR, GAP, LABEL_W, PANEL_GAP = 760, 16, 4, 190, 34
BURROW, OTHER, DIRECT = "#e8590c", "#868e96", "#adb5bd"


def load(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def colour(name):
    if name.startswith("burrow"):
        return BURROW
    return DIRECT if name == "direct" else OTHER


def panel(y, title, rows, unit, fmt, lower_is_better=False):
    """rows: [(name, value)]; returns (svg parts, height)."""
    rows = [(n, v) for n, v in rows if v is not None]
    if not rows:
        return [], 0
    out = [f'<text x="0" y="{y + 14}" class="t">{escape(title)}'
           f'{" (lower is better)" if lower_is_better else ""}</text>']
    top = max(v for _, v in rows) or 1
    span = W - LABEL_W - 120
    y += 24
    for name, v in rows:
        w = max(1, span * v / top)
        out.append(f'<text x="{LABEL_W - 6}" y="{y + BAR - 4}" class="l">{escape(name)}</text>')
        out.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR}" fill="{colour(name)}"/>')
        out.append(f'<text x="{LABEL_W + w + 5:.1f}" y="{y + BAR - 4}" class="v">{fmt(v)} {unit}</text>')
        y += BAR + GAP
    return out, 24 + len(rows) * (BAR + GAP)


def main():
    out_path = sys.argv[1]
    run = load(sys.argv[2]) if len(sys.argv) > 2 else []
    impair = load(sys.argv[3]) if len(sys.argv) > 3 else []
    panels = []
    if run:
        tunnels = [r for r in run if r["name"] != "direct"]
        panels += [
            ("Bulk throughput, 1 stream", [(r["name"], r["gbps1"]) for r in run], "Gbit/s", lambda v: f"{v:.2f}", False),
            ("Bulk throughput, 4 streams", [(r["name"], r["gbps4"]) for r in run], "Gbit/s", lambda v: f"{v:.2f}", False),
            ("Echo requests per second, 32 connections", [(r["name"], r["rps"]) for r in run], "req/s", lambda v: f"{v/1000:.1f}k", False),
            ("Echo p99 latency", [(r["name"], r["p99_us"] / 1000) for r in run], "ms", lambda v: f"{v:.2f}", True),
            ("New connections per second", [(r["name"], r["cps"]) for r in run], "conn/s", lambda v: f"{v/1000:.2f}k", False),
            ("Memory per idle connection, both ends", [(r["name"], r["rss_idle_kb_per_conn"]) for r in tunnels], "KB", lambda v: f"{v:.1f}", True),
        ]
    for loss in sorted({r["loss"] for r in impair}):
        rows = [r for r in impair if r["loss"] == loss]
        rtt = rows[0].get("rtt_ms", 50)
        panels.append((f"Across a {rtt:g} ms RTT link with {loss:g} % loss each way, 1 stream",
                       [(r["name"], r["mbps"]) for r in rows], "Mbit/s", lambda v: f"{v:.0f}", False))
    if not panels:
        sys.exit("chart.py: no results to draw")
    parts, y = [], 0
    for title, rows, unit, fmt, lower in panels:
        p, h = panel(y, title, rows, unit, fmt, lower)
        parts += p
        y += h + PANEL_GAP
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" viewBox="0 0 {W} {y}">',
           "<style>text{font-family:sans-serif;font-size:12px;fill:#212529}"
           ".t{font-weight:bold;font-size:13px}.l{text-anchor:end}.v{fill:#495057}</style>",
           f'<rect width="{W}" height="{y}" fill="#fff"/>', *parts, "</svg>"]
    with open(out_path, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
