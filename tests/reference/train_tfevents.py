#!/usr/bin/python3
"""Reads a TensorBoard event file with a parser written here from the TFRecord and protobuf specs
(the tensorboard package is not installed): checks every length and payload CRC-32C and decodes the
Event / Summary / Value / Image fields. An image's PNG is decoded with PIL and reported as the SHA-256
of its RGB pixels (row-major, 3 bytes a pixel), so a writer that re-encodes still shows what it kept.
Prints one JSON list of events.

Usage: train_tfevents.py FILE
"""
import hashlib
import io
import json
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = 0
    value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 1:
            v = buf[i:i + 8]
            i += 8
        elif wire == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif wire == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield number, wire, v
    if i != len(buf):
        raise ValueError("message overruns its length")


def image(buf):
    out = {}
    for n, w, v in fields(buf):
        if n == 1 and w == 0:
            out["height"] = v
        elif n == 2 and w == 0:
            out["width"] = v
        elif n == 3 and w == 0:
            out["colorspace"] = v
        elif n == 4 and w == 2:
            out["png_signature_ok"] = v[:8] == b"\x89PNG\r\n\x1a\n"
            out["bytes"] = len(v)
            out["sha256"] = hashlib.sha256(v).hexdigest()
            if out["png_signature_ok"]:
                from PIL import Image
                img = Image.open(io.BytesIO(v))
                out["mode"] = img.mode
                out["size"] = list(img.size)
                out["rgb_sha256"] = hashlib.sha256(img.convert("RGB").tobytes()).hexdigest()
    return out


def value(buf):
    out = {}
    for n, w, v in fields(buf):
        if n == 1 and w == 2:
            out["tag"] = v.decode("utf-8")
        elif n == 2 and w == 5:
            out["simple_value"] = struct.unpack("<f", v)[0]
        elif n == 4 and w == 2:
            out["image"] = image(v)
    return out


def event(buf):
    out = {"step": 0, "values": []}
    for n, w, v in fields(buf):
        if n == 1 and w == 1:
            out["wall_time"] = struct.unpack("<d", v)[0]
        elif n == 2 and w == 0:
            out["step"] = v
        elif n == 3 and w == 2:
            out["file_version"] = v.decode("utf-8")
        elif n == 5 and w == 2:
            for sn, sw, sv in fields(v):
                if sn == 1 and sw == 2:
                    out["values"].append(value(sv))
    return out


def main():
    data = open(sys.argv[1], "rb").read()
    i = 0
    events = []
    while i < len(data):
        if i + 12 > len(data):
            raise ValueError("truncated record header at byte %d" % i)
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[i + 8:i + 12])
        if hcrc != masked(header):
            raise ValueError("bad length CRC at byte %d" % i)
        payload = data[i + 12:i + 12 + length]
        (pcrc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        if len(payload) != length or pcrc != masked(payload):
            raise ValueError("bad payload CRC at byte %d" % i)
        events.append(event(payload))
        i += 16 + length
    json.dump(events, sys.stdout)


if __name__ == "__main__":
    main()
