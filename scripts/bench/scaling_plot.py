#!/usr/bin/env python3
"""SVG plot of scripts/bench.sh scaling's JSON: the fastest timed call (the least disturbed by other load) against pixels x batch, log-log, one line per
threads setting, inference latency and train step side by side. Standard library only (no matplotlib
on the machines this runs on), so the SVG is written by hand.
Usage: scaling_plot.py RESULT.json OUT.svg   (RESULT.json: the C# document, or one with it under "csharp")
"""
import json
import math
import sys

W, H = 460, 340                 # one panel
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 55
COLOURS = {1: "#d95f02", 2: "#1b9e77", 4: "#7570b3", 8: "#e7298a"}
MAC_513 = 27.1e9                # forward MACs at 1x513x513 (DESIGN facts)
PEAK_FLOPS_2T = 380e9           # float32 peak of the two cores (performance issue)


def ticks(lo, hi):
    """Powers of ten and their 2x and 5x between lo and hi (log axes)."""
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


def label(v):
    return f"{v:g}" if v < 1e4 else f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k"


def panel(points, key, title, x0, floor=False):
    pts = [p for p in points if p.get(key) is not None]
    xs = [p["pixels_x_batch"] / 1e6 for p in pts]
    ys = [p[key] for p in pts]
    xlo, xhi = min(xs) / 1.3, max(xs) * 1.3
    floor_ms = [2 * MAC_513 * x * 1e6 / (513 * 513) / PEAK_FLOPS_2T * 1e3 for x in (xlo, xhi)]
    ylo, yhi = min(ys + (floor_ms if floor else [])) / 1.5, max(ys) * 1.5
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    fx = lambda x: x0 + LEFT + pw * (math.log(x) - math.log(xlo)) / (math.log(xhi) - math.log(xlo))
    fy = lambda y: TOP + ph * (1 - (math.log(y) - math.log(ylo)) / (math.log(yhi) - math.log(ylo)))
    s = [f'<text x="{x0 + W / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
         f'<rect x="{x0 + LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    for v in ticks(xlo, xhi):
        s.append(f'<line x1="{fx(v):.1f}" y1="{TOP}" x2="{fx(v):.1f}" y2="{TOP + ph}" stroke="#ddd"/>')
        s.append(f'<text x="{fx(v):.1f}" y="{TOP + ph + 16}" text-anchor="middle" font-size="11">{label(v)}</text>')
    for v in ticks(ylo, yhi):
        s.append(f'<line x1="{x0 + LEFT}" y1="{fy(v):.1f}" x2="{x0 + LEFT + pw}" y2="{fy(v):.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{x0 + LEFT - 6}" y="{fy(v) + 4:.1f}" text-anchor="end" font-size="11">{label(v)}</text>')
    s.append(f'<text x="{x0 + LEFT + pw / 2}" y="{H - 12}" text-anchor="middle" font-size="12">megapixels x batch (log)</text>')
    s.append(f'<text x="{x0 + 16}" y="{TOP + ph / 2}" text-anchor="middle" font-size="12" '
             f'transform="rotate(-90 {x0 + 16} {TOP + ph / 2})">fastest of the timed calls, ms (log)</text>')
    if floor:
        s.append(f'<line x1="{fx(xlo):.1f}" y1="{fy(floor_ms[0]):.1f}" x2="{fx(xhi):.1f}" y2="{fy(floor_ms[1]):.1f}" '
                 'stroke="#888" stroke-dasharray="5,4"/>')
        s.append(f'<text x="{fx(xhi) - 4:.1f}" y="{fy(floor_ms[1]) + 14:.1f}" text-anchor="end" font-size="10" fill="#666">'
                 'float32 peak of 2 cores</text>')
    for i, t in enumerate(sorted({p["threads"] for p in pts})):
        line = sorted((p["pixels_x_batch"] / 1e6, p[key]) for p in pts if p["threads"] == t)
        c = COLOURS.get(t, "#333")
        path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in line)
        s.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        s += [f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{c}"/>' for x, y in line]
        s.append(f'<text x="{x0 + LEFT + 10}" y="{TOP + 18 + 16 * i}" font-size="12" fill="{c}">{t} thread{"s" if t > 1 else ""}</text>')
    return s


def main():
    doc = json.load(open(sys.argv[1]))
    doc = doc.get("csharp", doc)
    pts = doc["points"]
    body = panel(pts, "infer_ms_min", "inference latency (eval)", 0, floor=True)
    body += panel(pts, "train_step_ms_min", "train step (fwd+bwd+SGD)", W)
    note = (f'DeepLabV3+ {doc["backbone"]} OS{doc["output_stride"]}, {doc["precision"]}, crops 257/321/513 x batch 1/2/4/8, '
            f'libtorch {doc["libtorch"]}; shared 2-core machine, noisy')
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 20}" font-family="sans-serif">',
           f'<rect width="{2 * W}" height="{H + 20}" fill="white"/>', *body,
           f'<text x="{W}" y="{H + 12}" text-anchor="middle" font-size="11" fill="#555">{note}</text>', "</svg>"]
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
