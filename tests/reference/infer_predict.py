#!/usr/bin/env python3
"""Golden logits for the Predictor tests, computed with PyTorch from the same tiny network.

Usage: infer_predict.py DIR
DIR holds x.npy [N,3,H,W], w1.npy b1.npy (3x3 conv, padding 1), w2.npy b2.npy (1x1 conv) and cases.json,
a list of {"name", "scales", "flip", "resize_short", "window", "overlap"}. Writes DIR/<name>.npy for each.
The procedure mirrors the documented one: resize the short side (bilinear, align_corners=True), run each
scale (and its mirror), bring logits back to the working size, average, then resize to the input size.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def net(x, p):
    y = F.relu(F.conv2d(x, p["w1"], p["b1"], padding=1))
    return F.conv2d(y, p["w2"], p["b2"])


def resize(x, h, w):
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)


def py_round(v):
    # C#'s Math.Round is banker's rounding, as is Python's round().
    return int(round(v))


def starts(length, win, stride):
    out = list(range(0, max(length - win, 0), stride))
    out.append(length - win)
    return out


def slide(x, p, win, overlap):
    n, _, h, w = x.shape
    ph, pw = max(h, win), max(w, win)
    xp = F.pad(x, (0, pw - w, 0, ph - h))
    stride = max(1, math.ceil(win * (1 - overlap)))
    total = None
    count = torch.zeros(1, 1, ph, pw)
    for y0 in starts(ph, win, stride):
        for x0 in starts(pw, win, stride):
            out = net(xp[:, :, y0:y0 + win, x0:x0 + win], p)
            if total is None:
                total = torch.zeros(n, out.shape[1], ph, pw)
            total[:, :, y0:y0 + win, x0:x0 + win] += out
            count[:, :, y0:y0 + win, x0:x0 + win] += 1
    return (total / count)[:, :, :h, :w]


def predict(x, p, case):
    h, w = x.shape[2], x.shape[3]
    bh, bw = h, w
    if case.get("resize_short"):
        f = case["resize_short"] / min(h, w)
        bh, bw = max(1, py_round(h * f)), max(1, py_round(w * f))
    base = x if (bh, bw) == (h, w) else resize(x, bh, bw)
    acc, passes = None, 0
    for s in case["scales"]:
        sh, sw = max(1, py_round(bh * s)), max(1, py_round(bw * s))
        scaled = base if (sh, sw) == (bh, bw) else resize(base, sh, sw)
        for flip in ([False, True] if case["flip"] else [False]):
            inp = scaled.flip(3) if flip else scaled
            out = slide(inp, p, case["window"], case.get("overlap", 1 / 3)) if case.get("window") else net(inp, p)
            if flip:
                out = out.flip(3)
            if out.shape[2:] != (bh, bw):
                out = resize(out, bh, bw)
            acc = out if acc is None else acc + out
            passes += 1
    mean = acc / passes
    if mean.shape[2:] != (h, w):
        mean = resize(mean, h, w)
    return mean


def main():
    d = sys.argv[1]
    load = lambda name: torch.from_numpy(np.load(f"{d}/{name}.npy"))
    x = load("x")
    p = {k: load(k) for k in ("w1", "b1", "w2", "b2")}
    with open(f"{d}/cases.json") as f:
        cases = json.load(f)
    with torch.no_grad():
        for case in cases:
            np.save(f"{d}/{case['name']}.npy", predict(x, p, case).numpy().astype(np.float32))


if __name__ == "__main__":
    main()
