"""The reference DeepLabV3+ training transforms in PIL, shared by the Python baselines (the loader and
learn benchmarks): written for this project from the recipe (flip, random scale of the short side in
[0.5, 2] x base, pad image 0 / mask 255 up to the crop, random crop, optional Gaussian blur, ImageNet
normalisation). Masks are palette ("P") or 8-bit images whose values are class indices."""
import os
import random

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def voc_dir(root):
    for c in (root, os.path.join(root, "VOCdevkit", "VOC2012"), os.path.join(root, "VOC2012")):
        if os.path.isdir(os.path.join(c, "JPEGImages")):
            return c
    raise SystemExit("no VOC tree under %s" % root)


def read_split(voc, split):
    with open(os.path.join(voc, "ImageSets", "Segmentation", split + ".txt")) as f:
        return [l.strip() for l in f if l.strip()]


def open_pair(voc, image_id):
    img = Image.open(os.path.join(voc, "JPEGImages", image_id + ".jpg")).convert("RGB")
    mask = Image.open(os.path.join(voc, "SegmentationClass", image_id + ".png"))
    return img, mask


def train_pair(img, mask, base, crop, blur=False):
    """One random training augmentation of an (image, mask) pair; returns PIL images of crop x crop."""
    if random.random() < 0.5:
        img, mask = img.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
    short = random.randint(int(base * 0.5), int(base * 2.0))
    w, h = img.size
    if h > w:
        ow, oh = short, int(1.0 * h * short / w)
    else:
        oh, ow = short, int(1.0 * w * short / h)
    img, mask = img.resize((ow, oh), Image.BILINEAR), mask.resize((ow, oh), Image.NEAREST)
    if short < crop:
        ph, pw = max(crop - oh, 0), max(crop - ow, 0)
        img = ImageOps.expand(img, border=(0, 0, pw, ph), fill=0)
        mask = ImageOps.expand(mask, border=(0, 0, pw, ph), fill=255)
    w, h = img.size
    x, y = random.randint(0, w - crop), random.randint(0, h - crop)
    box = (x, y, x + crop, y + crop)
    img, mask = img.crop(box), mask.crop(box)
    if blur and random.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(radius=random.random()))
    return img, mask


def to_tensors(img, mask):
    """Normalised float32 [3,H,W] and int64 [H,W] class indices."""
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())
