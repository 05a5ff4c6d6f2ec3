#!/usr/bin/python3
"""Golden PNG files for the managed PNG codec's tests, independent of the C# code.

usage:
  png_fixtures.py make OUT     every colour type and bit depth, plain and Adam7-interlaced, every row filter,
                               written by a small encoder here (numpy + zlib) and by PIL; each checked against
                               PIL's decoder; writes OUT/manifest.json and, per file, the expected samples as raw
                               bytes (one byte per sample up to 8 bits, two big-endian bytes at 16 bits)
  png_fixtures.py read PNG OUT.bin
                               what PIL reads: prints mode, size, bits and the palette; writes the pixels as bytes
  png_fixtures.py augment IN.bin H W SH SW CY CX OH OW FLIP SIGMA OUT_IMG.bin OUT_MASK.bin
                               the training augmentation in torch/scipy: bilinear (align_corners=False) resize to
                               SH x SW and nearest-exact for the mask, mirror, pad (0 / 255), crop, optional
                               Gaussian blur (radius ceil(3 sigma), edges replicated), rounded to bytes, then
                               ImageNet normalisation; IN.bin is the HWC image then the HW mask
"""
import json
import os
import struct
import sys
import zlib

import numpy as np

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """One scanline's bytes from a flat array of samples."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    bits = np.zeros(len(samples) * depth, np.uint8)
    for b in range(depth):
        bits[b::depth] = (samples >> (depth - 1 - b)) & 1
    return np.packbits(bits).tobytes()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(kind, row, prev, bpp):
    out = bytearray(len(row))
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev is not None else 0
        c = prev[i - bpp] if prev is not None and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out[i] = (row[i] - pred) & 0xFF
    return bytes([kind]) + bytes(out)


def encode(pixels, color, depth, interlace, palette=None):
    """pixels: H x W x channels array of samples. Row r of each pass uses filter (r + pass) % 5."""
    h, w, ch = pixels.shape
    bpp = max(1, ch * depth // 8)
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for n, (x0, y0, dx, dy) in enumerate(passes):
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = None
        for r in range(sub.shape[0]):
            row = pack_row(sub[r].reshape(-1), depth)
            raw += filter_row((r + n) % 5, row, prev, bpp)
            prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette is not None:
        data += chunk(b"PLTE", bytes(palette))
    z = zlib.compress(bytes(raw), 9)
    # Two IDAT chunks: readers must join them.
    data += chunk(b"IDAT", z[: len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:])
    return data + chunk(b"IEND", b"")


def check_with_pil(path, pixels, color, depth):
    """PIL must decode our file to the same values (in its own scale) where it can represent them."""
    from PIL import Image
    im = Image.open(path)
    im.load()
    a = np.asarray(im)
    v = pixels.astype(np.int64)
    if color == 3:
        expect = v[..., 0]
    elif color == 0 and depth < 8:
        expect = v[..., 0] * 255 // ((1 << depth) - 1)
        if im.mode == "1":
            a = a.astype(np.int64) * 255
    elif color == 0:
        expect = v[..., 0]
    else:
        expect = (v >> 8) if depth == 16 else v
    if color == 4 and im.mode == "RGBA":
        a = a[..., [0, 3]]  # PIL widens 16-bit gray+alpha to RGBA
    if a.shape != expect.shape or not np.array_equal(a.astype(np.int64), expect):
        raise SystemExit("PIL disagrees with the fixture encoder on %s (mode %s)" % (path, im.mode))


def make(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(5)
    manifest = []
    for color, depths in DEPTHS.items():
        for depth in depths:
            for interlace in (0, 1):
                # Odd sizes so the Adam7 passes are partial; a few tiny ones leave passes empty.
                for (h, w) in [(11, 13), (37, 29), (1, 1), (2, 3)]:
                    ch = CHANNELS[color]
                    top = (1 << depth) - 1 if color != 3 else min(255, (1 << depth) - 1)
                    px = rng.randint(0, top + 1, size=(h, w, ch)).astype(np.int64)
                    # Smooth areas too, so every filter meets runs and not only noise.
                    px[: h // 2] = (np.arange(w)[None, :, None] * 7 % (top + 1))
                    palette = None
                    if color == 3:
                        palette = rng.randint(0, 256, size=3 * (top + 1)).astype(np.uint8).tolist()
                    name = "own_c%d_d%d_i%d_%dx%d.png" % (color, depth, interlace, w, h)
                    path = os.path.join(out, name)
                    with open(path, "wb") as f:
                        f.write(encode(px, color, depth, interlace, palette))
                    check_with_pil(path, px, color, depth)
                    write_expected(path, px, depth)
                    manifest.append({"file": name, "w": w, "h": h, "color": color, "depth": depth, "interlace": interlace,
                                     "palette": palette})
    manifest += pil_written(out, rng)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def write_expected(path, px, depth):
    (px.astype(">u2") if depth == 16 else px.astype(np.uint8)).tofile(path + ".bin")


def pil_written(out, rng):
    """PIL's own encoder in each mode it writes; the expected samples are what PIL reads back."""
    from PIL import Image
    h, w = 23, 31
    entries = []
    base = rng.randint(0, 256, size=(h, w, 4)).astype(np.uint8)
    cases = [("L", 8, 0, base[..., 0], {}), ("RGB", 8, 2, base[..., :3], {}), ("RGBA", 8, 6, base, {}),
             ("LA", 8, 4, base[..., :2], {}), ("1", 1, 0, base[..., 0] > 127, {}),
             ("I;16", 16, 0, (base[..., 0].astype(np.uint16) * 257 + base[..., 1]), {})]
    for bits in (1, 2, 4, 8):
        cases.append(("P", bits, 3, base[..., 0] % (1 << bits), {"bits": bits}))
    for mode, depth, color, arr, opts in cases:
        name = "pil_%s_%d.png" % (mode.replace(";", ""), depth)
        path = os.path.join(out, name)
        if mode == "P":
            im = Image.fromarray(arr.astype(np.uint8), mode="P")
            pal = rng.randint(0, 256, size=3 * (1 << depth)).astype(np.uint8).tolist()
            im.putpalette(pal)
        elif mode == "1":
            im = Image.fromarray(arr).convert("1")
            pal = None
        elif mode == "I;16":
            im = Image.fromarray(arr.astype(np.uint16), mode="I;16")
            pal = None
        else:
            im = Image.fromarray(arr, mode=mode)
            pal = None
        im.save(path, **opts)
        back = Image.open(path)
        info = read_header(path)
        if (info["depth"], info["color"]) != (depth, color):
            raise SystemExit("PIL wrote %s as depth %d colour %d" % (name, info["depth"], info["color"]))
        a = np.asarray(back).astype(np.int64)
        if mode == "1":
            a = (a != 0).astype(np.int64)
        px = a.reshape(h, w, -1)
        write_expected(path, px, depth)
        palette = None
        if mode == "P":
            palette = list(back.getpalette()[: 3 * (1 << depth)])
        entries.append({"file": name, "w": w, "h": h, "color": color, "depth": depth, "interlace": 0, "palette": palette})
    return entries


def read_header(path):
    with open(path, "rb") as f:
        d = f.read(33)
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", d[16:29])
    return {"w": w, "h": h, "depth": depth, "color": color, "interlace": interlace}


def read(path, out):
    from PIL import Image
    im = Image.open(path)
    info = {"mode": im.mode, "size": list(im.size), **read_header(path)}
    if im.mode == "P":
        info["palette"] = list(im.getpalette())
    print(json.dumps(info))
    np.asarray(im).astype(np.uint8).tofile(out)


def augment(src, h, w, sh, sw, cy, cx, oh, ow, flip, sigma, out_img, out_mask):
    import torch
    import torch.nn.functional as F
    from scipy.ndimage import correlate1d
    raw = np.fromfile(src, np.uint8)
    img = raw[: h * w * 3].reshape(h, w, 3)
    mask = raw[h * w * 3:].reshape(h, w)
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    r = F.interpolate(t, size=(sh, sw), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    r = r.round().clamp(0, 255).numpy().astype(np.uint8)
    m = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=(sh, sw), mode="nearest-exact")[0, 0]
    m = m.numpy().astype(np.uint8)
    if flip:
        r, m = r[:, ::-1], m[:, ::-1]
    ph, pw = max(sh, cy + oh), max(sw, cx + ow)
    pi = np.zeros((ph, pw, 3), np.uint8)
    pm = np.full((ph, pw), 255, np.uint8)
    pi[:sh, :sw] = r
    pm[:sh, :sw] = m
    crop = pi[cy:cy + oh, cx:cx + ow].astype(np.float64)
    if sigma > 0:
        radius = min(32, int(np.ceil(3 * sigma)))
        k = np.exp(-0.5 * np.arange(-radius, radius + 1) ** 2 / sigma ** 2)
        k /= k.sum()
        crop = correlate1d(correlate1d(crop, k, axis=0, mode="nearest"), k, axis=1, mode="nearest")
        crop = np.floor(crop + 0.5).clip(0, 255)
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    x = ((crop / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)
    x.tofile(out_img)
    pm[cy:cy + oh, cx:cx + ow].astype(np.int64).tofile(out_mask)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "read":
        read(sys.argv[2], sys.argv[3])
    elif cmd == "augment":
        augment(sys.argv[2], *map(int, sys.argv[3:11]), int(sys.argv[11]), float(sys.argv[12]), sys.argv[13], sys.argv[14])
    else:
        sys.exit("unknown command " + cmd)
