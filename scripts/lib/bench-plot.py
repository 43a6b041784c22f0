#!/usr/bin/env python3
"""scripts/bench's plot: µs per key against keys (log x) for the commands that read
keys (`kubeboot inspect`, `recover --etcd-backup-file`, `recover --etcd-servers`), from
OUT_DIR/per-key.tsv (bench-table.py). An SVG written by hand, the standard library only;
on stdout.

    bench-plot.py OUT_DIR COMMIT DATE PROFILE
"""
import math
import os
import sys
from xml.sax.saxutils import escape

W, H = 820, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 300, 50, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def nice_step(span):
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def main():
    out, commit, date, profile = sys.argv[1:5]
    rows = []
    path = os.path.join(out, "per-key.tsv")
    if os.path.exists(path):
        for line in open(path):
            cmd, keys, name, us = line.rstrip("\n").split("\t")
            rows.append((cmd, int(keys), name.split("-")[0], float(us)))
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14">Cost per key: scripts/bench of {escape(commit)}, '
           f'{escape(date)}, {escape(profile)} build</text>']
    if not rows:
        svg.append(f'<text x="{LEFT}" y="{H / 2}">No snapshot set was measured in this run.</text>')
        print("\n".join(svg + ["</svg>"]))
        return
    # A fifth of a decade either side of the data, and at least one decade in all.
    lo = math.log10(min(r[1] for r in rows)) - 0.2
    hi = max(math.log10(max(r[1] for r in rows)) + 0.2, lo + 1.4)
    step = nice_step(max(r[3] for r in rows) * 1.1)
    ymax = step * math.ceil(max(r[3] for r in rows) * 1.1 / step)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    x = lambda keys: LEFT + (math.log10(keys) - lo) / (hi - lo) * pw
    y = lambda us: TOP + ph - us / ymax * ph
    # Axes, grid, ticks.
    for d in range(math.floor(lo), math.ceil(hi) + 1):
        for m in range(1, 10):
            if lo <= math.log10(m * 10**d) <= hi:
                svg.append(f'<line x1="{x(m * 10**d):.1f}" y1="{TOP}" x2="{x(m * 10**d):.1f}" y2="{TOP + ph}" '
                           f'stroke="{"#ccc" if m == 1 else "#eee"}"/>')
        if lo <= d <= hi:
            svg.append(f'<text x="{x(10**d):.1f}" y="{TOP + ph + 18}" text-anchor="middle">10<tspan dy="-6" '
                       f'font-size="9">{d}</tspan></text>')
    v = 0.0
    while v <= ymax + 1e-9:
        svg.append(f'<line x1="{LEFT}" y1="{y(v):.1f}" x2="{LEFT + pw}" y2="{y(v):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    svg.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    svg.append(f'<text x="{LEFT + pw / 2}" y="{H - 18}" text-anchor="middle">keys in the set '
               '(log scale)</text>')
    svg.append(f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
               'µs per key (mean time / keys)</text>')
    # One series per command: a line through its sets of one mix, a circle per
    # "objects" set and a square per "random" set.
    cmds = list(dict.fromkeys(r[0] for r in rows))
    for i, cmd in enumerate(cmds):
        c = COLORS[i % len(COLORS)]
        for mix in dict.fromkeys(r[2] for r in rows if r[0] == cmd):
            pts = sorted((r[1], r[3]) for r in rows if r[0] == cmd and r[2] == mix)
            if len(pts) > 1:
                line = " ".join(f"{x(k):.1f},{y(u):.1f}" for k, u in pts)
                dash = ' stroke-dasharray="4 3"' if mix == "random" else ""
                svg.append(f'<polyline points="{line}" fill="none" stroke="{c}" stroke-width="1.5"{dash}/>')
            for k, u in pts:
                tip = f"<title>{escape(cmd)}, {mix} {k}: {u:.2f} µs per key</title>"
                if mix == "random":
                    svg.append(f'<rect x="{x(k) - 4:.1f}" y="{y(u) - 4:.1f}" width="8" height="8" '
                               f'fill="{c}">{tip}</rect>')
                else:
                    svg.append(f'<circle cx="{x(k):.1f}" cy="{y(u):.1f}" r="4" fill="{c}">{tip}</circle>')
        ly = TOP + 10 + i * 20
        svg.append(f'<line x1="{LEFT + pw + 15}" y1="{ly}" x2="{LEFT + pw + 35}" y2="{ly}" stroke="{c}" '
                   'stroke-width="2"/>')
        svg.append(f'<text x="{LEFT + pw + 40}" y="{ly + 4}">{escape(cmd)}</text>')
    ly = TOP + 10 + len(cmds) * 20 + 10
    svg.append(f'<circle cx="{LEFT + pw + 25}" cy="{ly}" r="4" fill="#555"/>'
               f'<text x="{LEFT + pw + 40}" y="{ly + 4}">objects (api-server shapes)</text>')
    svg.append(f'<rect x="{LEFT + pw + 21}" y="{ly + 16}" width="8" height="8" fill="#555"/>'
               f'<text x="{LEFT + pw + 40}" y="{ly + 24}">random values</text>')
    print("\n".join(svg + ["</svg>"]))


if __name__ == "__main__":
    main()
