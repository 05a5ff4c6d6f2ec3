#!/usr/bin/python3
"""The Python side of the learn benchmark: DeepLabV3+ (MobileNetV2, output stride 16) trained with
the reference recipe on a VOC-format folder for a fixed wall-time budget, then evaluated on the val
split at full image size. Written for this project from the recipe (architecture, augmentation,
loss, SGD with a 10x head, poly schedule, Evaluator metrics); it shares no code with the C# side.

The poly schedule runs on the fraction of the time budget spent: lr = base * (1 - t/budget)^0.9,
the same rule the C# trainer uses with --time-budget.

Usage: train_learn.py --data-root DIR --budget SECONDS [--crop-size 257 --base-size 257 --batch-size 8
       --lr 0.007 --workers 2 --threads 2 --seed 1 --max-val-images N] ; prints one JSON object.
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_deeplab import DeepLab  # noqa: E402

# ----------------------------------------------------------------------------- model
# The network is the project's independent PyTorch DeepLabV3+ (model_deeplab.py, the golden-file model),
# initialised as the reference does for training: He-normal convs, BatchNorm weight 1 and bias 0.


def build_model(num_classes, output_stride=16):
    model = DeepLab("mobilenet", output_stride, num_classes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
    return model


# ----------------------------------------------------------------------------- data

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


def to_tensors(img, mask):
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())


class TrainSet(torch.utils.data.Dataset):
    """Reference augmentation: random horizontal flip, random rescale of the short side to
    [0.5, 2] x base size, pad (image 0, mask 255) to the crop, random crop, normalise."""

    def __init__(self, voc, ids, base, crop):
        self.voc, self.ids, self.base, self.crop = voc, ids, base, crop

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        img = Image.open(os.path.join(self.voc, "JPEGImages", self.ids[i] + ".jpg")).convert("RGB")
        # Palette indices as a plain 8-bit image, so padding and resizing never touch colours.
        mask = Image.fromarray(np.asarray(Image.open(os.path.join(self.voc, "SegmentationClass", self.ids[i] + ".png")), dtype=np.uint8))
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
            canvas = Image.new("RGB", (ow + pw, oh + ph), (0, 0, 0))
            canvas.paste(img, (0, 0))
            mcanvas = Image.new("L", (ow + pw, oh + ph), 255)
            mcanvas.paste(mask, (0, 0))
            img, mask = canvas, mcanvas
        w, h = img.size
        x1, y1 = random.randint(0, w - self.crop), random.randint(0, h - self.crop)
        box = (x1, y1, x1 + self.crop, y1 + self.crop)
        return to_tensors(img.crop(box), mask.crop(box))


class ValSet(torch.utils.data.Dataset):
    def __init__(self, voc, ids):
        self.voc, self.ids = voc, ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        img = Image.open(os.path.join(self.voc, "JPEGImages", self.ids[i] + ".jpg")).convert("RGB")
        mask = Image.open(os.path.join(self.voc, "SegmentationClass", self.ids[i] + ".png"))
        return to_tensors(img, mask)


def seed_worker(worker_id):
    s = torch.initial_seed() % 2 ** 32
    random.seed(s)
    np.random.seed(s)


# ----------------------------------------------------------------------------- metrics


def miou(cm):
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(cm) / (cm.sum(1) + cm.sum(0) - np.diag(cm))
        acc = np.diag(cm).sum() / cm.sum()
    return float(np.nanmean(iou)), float(acc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--budget", type=float, default=600)
    ap.add_argument("--crop-size", type=int, default=257)
    ap.add_argument("--base-size", type=int, default=257)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.007)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--num-classes", type=int, default=21)
    ap.add_argument("--max-val-images", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    voc = voc_dir(args.data_root)
    train = TrainSet(voc, read_split(voc, "train"), args.base_size, args.crop_size)
    val_ids = read_split(voc, "val")
    if args.max_val_images:
        val_ids = val_ids[:args.max_val_images]
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, worker_init_fn=seed_worker, persistent_workers=args.workers > 0)
    model = build_model(args.num_classes)
    opt = torch.optim.SGD(model.parameter_groups(args.lr), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss(ignore_index=255)

    model.train()
    start = time.time()
    iters, images, losses = 0, 0, []
    done = False
    epoch = 0
    while not done:
        for x, y in loader:
            t = time.time() - start
            if t >= args.budget:
                done = True
                break
            lr = args.lr * (1 - t / args.budget) ** 0.9
            opt.param_groups[0]["lr"] = lr
            opt.param_groups[1]["lr"] = lr * 10
            opt.zero_grad()
            loss = criterion(model(x), y) / x.shape[0]   # the reference's batch_average
            loss.backward()
            opt.step()
            iters += 1
            images += x.shape[0]
            losses.append(loss.item())
        epoch += 1
    train_seconds = time.time() - start

    model.eval()
    cm = np.zeros((args.num_classes, args.num_classes), dtype=np.int64)
    vstart = time.time()
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(ValSet(voc, val_ids), batch_size=1, num_workers=0):
            pred = model(x).argmax(1).numpy().ravel()
            gt = y.numpy().ravel()
            keep = gt < args.num_classes
            cm += np.bincount(args.num_classes * gt[keep] + pred[keep], minlength=args.num_classes ** 2).reshape(args.num_classes, -1)
    m, acc = miou(cm)
    first = float(np.mean(losses[:10])) if losses else float("nan")
    last = float(np.mean(losses[-10:])) if losses else float("nan")
    print(json.dumps({
        "miou": m, "pixel_acc": acc, "iterations": iters, "epochs": epoch, "train_seconds": train_seconds,
        "images_per_sec": images / max(train_seconds, 1e-9), "eval_seconds": time.time() - vstart,
        "first_loss": first, "last_loss": last, "val_images": len(val_ids),
    }))


if __name__ == "__main__":
    main()
