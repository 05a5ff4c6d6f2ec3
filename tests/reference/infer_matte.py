#!/usr/bin/env python3
"""Expected background-replacement composite, computed with plain numpy loops (no torch).

Usage: infer_matte.py DIR PERSON_CLASS RADIUS EPS
DIR holds image.npy (uint8 [H,W,3]), logits.npy (float32 [C,H,W]) and background.npy (uint8 [H,W,3]).
Writes DIR/alpha.npy (float64 [H,W]) and DIR/expected.npy (uint8 [H,W,3]):
  prob  = softmax(logits)[PERSON_CLASS]
  guide = mean of R, G, B of image/255
  alpha = clip(guided_filter(guide, prob, RADIUS, EPS), 0, 1)   (windows clipped at the borders)
  out   = round(255 * (image/255 * alpha + background/255 * (1 - alpha)))
"""
import sys

import numpy as np


def box_mean(a, r):
    h, w = a.shape
    out = np.zeros_like(a, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            win = a[max(0, i - r):min(h, i + r + 1), max(0, j - r):min(w, j + r + 1)]
            out[i, j] = win.mean()
    return out


def guided_filter(I, p, r, eps):
    mI, mp = box_mean(I, r), box_mean(p, r)
    cov = box_mean(I * p, r) - mI * mp
    var = box_mean(I * I, r) - mI * mI
    a = cov / (var + eps)
    b = mp - a * mI
    return box_mean(a, r) * I + box_mean(b, r)


def main():
    d, cls, r, eps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    img = np.load(f"{d}/image.npy").astype(np.float64) / 255.0
    bg = np.load(f"{d}/background.npy").astype(np.float64) / 255.0
    logits = np.load(f"{d}/logits.npy").astype(np.float64)
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    prob = (e / e.sum(axis=0, keepdims=True))[cls]
    guide = img.mean(axis=2)
    alpha = prob if r == 0 else np.clip(guided_filter(guide, prob, r, eps), 0.0, 1.0)
    out = img * alpha[:, :, None] + bg * (1.0 - alpha[:, :, None])
    np.save(f"{d}/alpha.npy", alpha)
    np.save(f"{d}/expected.npy", np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8))


if __name__ == "__main__":
    main()
