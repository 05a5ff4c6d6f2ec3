#!/usr/bin/python3
"""Independent golden files for the data pipeline tests, made with PIL, scipy and torch.

usage:
  data_fixtures.py images OUT      small JPEG/PNG fixtures + what PIL decodes them to (*.bin, raw bytes)
  data_fixtures.py mat OUT         SBD-style cls .mat files (scipy.io.savemat) + the expected mask
  data_fixtures.py resize IN.bin H W C OH OW OUT.bin
                                   torch bilinear (align_corners=False) resize of raw HWC uint8, rounded
  data_fixtures.py inspect PNG OUT.bin
                                   prints the PIL mode and palette head; writes the raw pixel bytes
"""
import json
import os
import sys

import numpy as np


def images(out):
    from PIL import Image
    os.makedirs(out, exist_ok=True)
    # A flat colour over whole 16x16 MCUs decodes back to (almost) that colour.
    Image.new("RGB", (16, 16), (200, 100, 50)).save(os.path.join(out, "solid.jpg"), quality=95)
    # A smooth pattern: PIL's own decode of it is the reference (same libjpeg family).
    h, w = 24, 40
    y, x = np.mgrid[0:h, 0:w]
    pat = np.stack([x * 6, y * 10, (x + y) * 3], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(pat).save(os.path.join(out, "pattern.jpg"), quality=90)
    np.asarray(Image.open(os.path.join(out, "pattern.jpg")).convert("RGB")).tofile(os.path.join(out, "pattern.jpg.bin"))
    # Palette PNG: indices i = (3x + 5y) % 22 with 255 in a corner block; PIL keeps indices in mode P.
    idx = ((3 * x + 5 * y) % 22).astype(np.uint8)
    idx[:4, :4] = 255
    p = Image.fromarray(idx, mode="P")
    pal = []
    for i in range(256):
        pal += [(i * 7) % 256, (i * 13) % 256, (i * 29) % 256]
    p.putpalette(pal)
    p.save(os.path.join(out, "palette.png"))
    idx.tofile(os.path.join(out, "palette.png.bin"))
    # 4-bit palette (PIL writes bits=4 when asked): values 0-15 must come back unscaled.
    idx4 = ((x + y) % 16).astype(np.uint8)
    p4 = Image.fromarray(idx4, mode="P")
    p4.putpalette(pal[:48])
    p4.save(os.path.join(out, "palette4.png"), bits=4)
    idx4.tofile(os.path.join(out, "palette4.png.bin"))
    # Gray mask with class values, and a 16-bit one holding the same values.
    gray = ((x // 4 + y // 4) % 21).astype(np.uint8)
    Image.fromarray(gray, mode="L").save(os.path.join(out, "gray.png"))
    gray.tofile(os.path.join(out, "gray.png.bin"))
    Image.fromarray(gray.astype(np.uint16)).save(os.path.join(out, "gray16.png"))
    Image.fromarray((gray.astype(np.uint16) + 300)).save(os.path.join(out, "gray16_big.png"))
    # RGB, RGBA, L and 16-bit images: the expected RGB is PIL's convert (alpha dropped, 16 bit scaled).
    Image.fromarray(pat).save(os.path.join(out, "rgb.png"))
    pat.tofile(os.path.join(out, "rgb.png.bin"))
    rgba = np.concatenate([pat, (x * 5 % 256).astype(np.uint8)[..., None]], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(os.path.join(out, "rgba.png"))
    pat.tofile(os.path.join(out, "rgba.png.bin"))
    np.repeat(gray[..., None] * 10, 3, axis=-1).astype(np.uint8).tofile(os.path.join(out, "gray_img.png.bin"))
    Image.fromarray((gray * 10).astype(np.uint8), mode="L").save(os.path.join(out, "gray_img.png"))
    # A VOC-coloured RGB mask: colours of the VOC map for classes 0, 15 and 255.
    voc = voc_map()
    lab = np.zeros((h, w), np.uint8)
    lab[5:15, 10:30] = 15
    lab[5:15, 9] = 255
    Image.fromarray(voc[lab]).save(os.path.join(out, "voc_rgb_mask.png"))
    lab.tofile(os.path.join(out, "voc_rgb_mask.png.bin"))
    photos(out, pat)
    json.dump({"h": h, "w": w}, open(os.path.join(out, "sizes.json"), "w"))


def photos(out, pat):
    """The other photo formats: lossless ones decode exactly; CMYK and progressive JPEGs as PIL decodes them;
    an EXIF orientation tag is not applied (the expected pixels are the stored ones)."""
    from PIL import Image
    im = Image.fromarray(pat)
    im.save(os.path.join(out, "photo.bmp"))
    im.save(os.path.join(out, "photo.webp"), lossless=True)
    pat.tofile(os.path.join(out, "photo.bin"))
    im.convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=95)
    im.save(os.path.join(out, "progressive.jpg"), quality=90, progressive=True)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(os.path.join(out, "exif6.jpg"), quality=90, exif=exif)
    for name in ("cmyk.jpg", "progressive.jpg", "exif6.jpg"):
        np.asarray(Image.open(os.path.join(out, name)).convert("RGB")).tofile(os.path.join(out, name + ".bin"))
    # JPEG masks are read as luminance: a gray JPEG as stored, a colour one as PIL's convert("L") (Rec. 601).
    Image.fromarray(pat[..., 0]).save(os.path.join(out, "gray_mask.jpg"), quality=90)
    for name in ("gray_mask.jpg", "pattern.jpg"):
        np.asarray(Image.open(os.path.join(out, name)).convert("L")).tofile(os.path.join(out, name + ".L.bin"))


def voc_map():
    cmap = np.zeros((256, 3), np.uint8)
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def mat(out):
    import scipy.io
    import scipy.sparse
    os.makedirs(out, exist_ok=True)
    h, w = 7, 11  # not square, so a row/column mix-up shows
    y, x = np.mgrid[0:h, 0:w]
    seg = ((x * 2 + y * 3) % 21).astype(np.uint8)
    seg[0, 0] = 0
    seg[h - 1, w - 1] = 20
    seg.tofile(os.path.join(out, "expected.bin"))
    bounds = np.empty((3, 1), dtype=object)
    for k in range(3):
        bounds[k, 0] = scipy.sparse.csc_matrix((seg == k + 1).astype(np.uint8))
    for name, data, compress in [("u8_plain", seg, False), ("u8_zlib", seg, True), ("f64_zlib", seg.astype(np.float64), True),
                                 ("f64_plain", seg.astype(np.float64), False)]:
        gt = {"Boundaries": bounds, "Segmentation": data, "CategoriesPresent": np.unique(seg)[1:].astype(np.uint8)}
        scipy.io.savemat(os.path.join(out, name + ".mat"), {"GTcls": gt}, do_compression=compress)
    # A .mat without GTcls, and a 7.3-style header.
    scipy.io.savemat(os.path.join(out, "other.mat"), {"foo": seg}, do_compression=False)
    json.dump({"h": h, "w": w}, open(os.path.join(out, "sizes.json"), "w"))


def resize(src, h, w, c, oh, ow, out):
    import torch
    import torch.nn.functional as F
    a = np.fromfile(src, np.uint8).reshape(h, w, c)
    t = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]
    r = F.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    r.round().clamp(0, 255).to(torch.uint8).numpy().tofile(out)


def inspect(png, out):
    from PIL import Image
    im = Image.open(png)
    info = {"mode": im.mode, "size": list(im.size)}
    if im.mode == "P":
        info["palette"] = list(im.getpalette()[:12])
    print(json.dumps(info))
    np.asarray(im).tofile(out)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "images":
        images(sys.argv[2])
    elif cmd == "mat":
        mat(sys.argv[2])
    elif cmd == "resize":
        resize(sys.argv[2], *map(int, sys.argv[3:8]), sys.argv[8])
    elif cmd == "inspect":
        inspect(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
