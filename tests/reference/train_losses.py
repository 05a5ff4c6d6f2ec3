#!/usr/bin/python3
"""Golden values for the trainer's losses, computed with PyTorch from the reference's formulas.

Usage: train_losses.py OUT_DIR. Writes raw little-endian arrays (logits.f32, target.i64, weight.f32,
binlogits.f32, bintarget.i64) and expected.json with the loss values and the CE gradient checksum.
"""
import json
import os
import sys

import torch
import torch.nn as nn


def reference_ce(logits, target, weight, batch_average=True):
    # The reference: CrossEntropyLoss(weight, ignore_index=255, mean), then divided by the batch size.
    loss = nn.CrossEntropyLoss(weight=weight, ignore_index=255)(logits, target)
    return loss / logits.shape[0] if batch_average else loss


def reference_focal(logits, target, weight, gamma=2.0, alpha=0.5):
    # The reference modulates the batch-mean CE (a scalar), not each pixel.
    logpt = -nn.CrossEntropyLoss(weight=weight, ignore_index=255)(logits, target)
    pt = torch.exp(logpt)
    logpt = logpt * alpha
    return -((1 - pt) ** gamma) * logpt / logits.shape[0]


def per_pixel_focal(logits, target, gamma=2.0, alpha=0.5):
    ce = nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = target != 255
    pt = torch.exp(-ce)
    per = alpha * (1 - pt) ** gamma * ce
    return per[valid].sum() / valid.sum().clamp(min=1) / logits.shape[0]


def dice(logits, target, smooth=1.0):
    p = torch.softmax(logits, 1)[:, 1]
    valid = (target != 255).float()
    t = ((target > 0) & (target != 255)).float()
    p = p * valid
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def ohem(logits, target, thresh=0.7, n_min=None):
    # The face-parsing reference's OHEM: per-pixel CE (void = 0), sorted descending; the hard ones (above
    # -ln(thresh)) when the n_min-th (0-based) is hard, else the n_min largest.
    loss = nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none").view(-1)
    if n_min is None:
        n_min = loss.numel() // 16
    loss, _ = torch.sort(loss, descending=True)
    limit = -torch.log(torch.tensor(thresh))
    if loss[n_min] > limit:
        loss = loss[loss > limit]
    else:
        loss = loss[:n_min]
    return loss.mean()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[torch.rand(2, 4, 5, generator=g) < 0.2] = 255
    weight = torch.tensor([0.5, 1.0, 2.0])
    binlogits = torch.randn(2, 2, 4, 5, generator=g)
    bintarget = torch.randint(0, 2, (2, 4, 5), generator=g)
    bintarget[0, 0, :] = 255

    x = logits.clone().requires_grad_(True)
    ce = reference_ce(x, target, weight)
    ce.backward()
    grad = x.grad

    expected = {
        "ce": reference_ce(logits, target, None).item(),
        "ce_no_batch_average": reference_ce(logits, target, None, batch_average=False).item(),
        "ce_weighted": ce.item(),
        "ce_weighted_grad": grad.flatten().tolist(),
        "focal": reference_focal(logits, target, None).item(),
        "focal_weighted": reference_focal(logits, target, weight).item(),
        "focal_per_pixel": per_pixel_focal(logits, target).item(),
        "dice": dice(binlogits, bintarget).item(),
        # Both branches of OHEM: with n_min 2 the 3rd largest is hard (mean of the hard ones); with n_min 36
        # the 37th is not (mean of the 36 largest). The hard count says which branch each took.
        "ohem": ohem(logits, target).item(),
        "ohem_min_kept_36": ohem(logits, target, 0.7, 36).item(),
        "ohem_hard_count": int((nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none") > -torch.log(torch.tensor(0.7))).sum()),
    }
    logits.numpy().astype("<f4").tofile(os.path.join(out, "logits.f32"))
    target.numpy().astype("<i8").tofile(os.path.join(out, "target.i64"))
    weight.numpy().astype("<f4").tofile(os.path.join(out, "weight.f32"))
    binlogits.numpy().astype("<f4").tofile(os.path.join(out, "binlogits.f32"))
    bintarget.numpy().astype("<i8").tofile(os.path.join(out, "bintarget.i64"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
