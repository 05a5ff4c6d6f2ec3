#!/usr/bin/python3
"""The Python baseline for scripts/bench/loader.sh: a torch DataLoader over PIL with the reference
DeepLabV3+ training transforms (flip, random scale of the short side in [0.5, 2] x base, pad 0/255,
random crop, optional Gaussian blur, ImageNet normalisation), written here from the recipe.

usage: loader_reference.py VOC_ROOT --workers 1,2,4 --crop 513 --base 513 --batch 4 --batches 10 [--blur]
Prints {"1": images_per_second, ...}. Timing starts when the first batch arrives (as ours does).
"""
import argparse
import json
import os
import random
import time

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class VocTrain(torch.utils.data.Dataset):
    def __init__(self, root, base, crop, blur):
        voc = os.path.join(root, "VOCdevkit", "VOC2012")
        with open(os.path.join(voc, "ImageSets", "Segmentation", "train.txt")) as f:
            self.ids = [l.strip() for l in f if l.strip()]
        self.voc, self.base, self.crop, self.blur = voc, base, crop, blur

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        img = Image.open(os.path.join(self.voc, "JPEGImages", self.ids[i] + ".jpg")).convert("RGB")
        mask = Image.open(os.path.join(self.voc, "SegmentationClass", self.ids[i] + ".png"))
        if random.random() < 0.5:
            img, mask = img.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
        short = random.randint(int(self.base * 0.5), int(self.base * 2.0))
        w, h = img.size
        if h > w:
            ow, oh = short, int(1.0 * h * short / w)
        else:
            oh, ow = short, int(1.0 * w * short / h)
        img, mask = img.resize((ow, oh), Image.BILINEAR), mask.resize((ow, oh), Image.NEAREST)
        if short < self.crop:
            ph, pw = max(self.crop - oh, 0), max(self.crop - ow, 0)
            img = ImageOps.expand(img, border=(0, 0, pw, ph), fill=0)
            mask = ImageOps.expand(mask, border=(0, 0, pw, ph), fill=255)
        w, h = img.size
        x, y = random.randint(0, w - self.crop), random.randint(0, h - self.crop)
        img, mask = img.crop((x, y, x + self.crop, y + self.crop)), mask.crop((x, y, x + self.crop, y + self.crop))
        if self.blur and random.random() < 0.5:
            img = img.filter(ImageFilter.GaussianBlur(radius=random.random()))
        a = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
        return torch.from_numpy(a.transpose(2, 0, 1).copy()), torch.from_numpy(np.asarray(mask, np.int64).copy())


def measure(ds, workers, batch, batches):
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=False)
    done, images, start = 0, 0, None
    while done < batches + 1:
        for imgs, _ in loader:
            if done == 0:
                start = time.perf_counter()
            else:
                images += imgs.shape[0]
            done += 1
            if done >= batches + 1:
                break
    return images / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--crop", type=int, default=513)
    ap.add_argument("--base", type=int, default=513)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--blur", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    random.seed(1)
    torch.manual_seed(1)
    ds = VocTrain(a.root, a.base, a.crop, a.blur)
    out = {w: round(measure(ds, int(w), a.batch, a.batches), 2) for w in a.workers.split(",")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
