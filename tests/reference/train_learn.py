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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_deeplab import DeepLab  # noqa: E402
from voc_transforms import open_pair, read_split, to_tensors, train_pair, voc_dir  # noqa: E402

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


class TrainSet(torch.utils.data.Dataset):
    def __init__(self, voc, ids, base, crop):
        self.voc, self.ids, self.base, self.crop = voc, ids, base, crop

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        img, mask = open_pair(self.voc, self.ids[i])
        return to_tensors(*train_pair(img, mask, self.base, self.crop))


class ValSet(torch.utils.data.Dataset):
    def __init__(self, voc, ids):
        self.voc, self.ids = voc, ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return to_tensors(*open_pair(self.voc, self.ids[i]))


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
