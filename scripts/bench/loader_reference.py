#!/usr/bin/python3
"""The Python baseline for scripts/bench/loader.sh: a torch DataLoader over PIL with the reference
DeepLabV3+ training transforms (flip, random scale of the short side in [0.5, 2] x base, pad 0/255,
random crop, optional Gaussian blur, ImageNet normalisation) of tests/reference/voc_transforms.py.

usage: loader_reference.py VOC_ROOT --workers 1,2,4 --crop 513 --base 513 --batch 4 --batches 10 [--blur]
Prints {"1": images_per_second, ...}. Timing starts when the first batch arrives (as ours does).
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from voc_transforms import open_pair, read_split, to_tensors, train_pair, voc_dir  # noqa: E402


class VocTrain(torch.utils.data.Dataset):
    def __init__(self, root, base, crop, blur):
        self.voc = voc_dir(root)
        self.ids = read_split(self.voc, "train")
        self.base, self.crop, self.blur = base, crop, blur

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        img, mask = open_pair(self.voc, self.ids[i])
        return to_tensors(*train_pair(img, mask, self.base, self.crop, self.blur))


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
