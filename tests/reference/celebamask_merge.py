#!/usr/bin/python3
"""The face-parsing reference's preparation of CelebAMask-HQ labels, for the C# merge's tests.

usage: celebamask_merge.py ROOT OUT ID [ID ...]

For each face id, as the reference's data preparation does it: a zero map of the first part file's size;
for each of the 18 parts in order (label = position + 1), if ROOT/CelebAMask-HQ-mask-anno/<id // 2000>/
<id:05d>_<part>.png exists, the pixels whose value after PIL's conversion to mode "P" is 225 (white, in
PIL's web palette) take that label, later parts overwriting earlier ones. Writes OUT/<id>.bin (the map,
one byte per pixel, row-major) and prints "<id> <height> <width>" per face.
"""
import os
import sys

import numpy as np
from PIL import Image

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
         "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"]


def merge(root, face):
    labels = None
    for label, part in enumerate(PARTS, 1):
        path = os.path.join(root, "CelebAMask-HQ-mask-anno", str(face // 2000), "%05d_%s.png" % (face, part))
        if not os.path.exists(path):
            continue
        indices = np.array(Image.open(path).convert("P"))
        if labels is None:
            labels = np.zeros(indices.shape, dtype=np.uint8)
        labels[indices == 225] = label
    return labels


def main():
    root, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for word in sys.argv[3:]:
        face = int(word)
        labels = merge(root, face)
        labels.tofile(os.path.join(out, "%d.bin" % face))
        print(face, labels.shape[0], labels.shape[1])


if __name__ == "__main__":
    main()
