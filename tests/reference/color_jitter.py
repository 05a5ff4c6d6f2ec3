#!/usr/bin/python3
"""PIL's ImageEnhance, as the face-parsing reference's ColorJitter applies it, for the C# jitter's test.

usage: color_jitter.py IN.bin H W BRIGHTNESS CONTRAST SATURATION OUT.bin
IN.bin is an H x W RGB image (bytes, row-major HWC); OUT.bin gets the image after Brightness, then Contrast,
then Color (saturation) enhancement by the three factors.
"""
import sys

import numpy as np
from PIL import Image, ImageEnhance


def main():
    src, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    b, c, s = (float(v) for v in sys.argv[4:7])
    im = Image.fromarray(np.fromfile(src, dtype=np.uint8).reshape(h, w, 3), "RGB")
    im = ImageEnhance.Brightness(im).enhance(b)
    im = ImageEnhance.Contrast(im).enhance(c)
    im = ImageEnhance.Color(im).enhance(s)
    np.asarray(im, dtype=np.uint8).tofile(sys.argv[7])


if __name__ == "__main__":
    main()
