#!/usr/bin/python3
"""Independent PyTorch STDC1-Seg / STDC2-Seg for golden files (issue 28, face parsing).

Written for this project from the facts of the published STDC-Seg layout (module names, channel
counts, strides, interpolation modes and the state_dict it produces), not from its code:
  * backbone "STDCNet813" (STDC1: 2, 2, 2 blocks) or "STDCNet1446" (STDC2: 4, 5, 3 blocks), base width
    64, four convolutions per block whose outputs are concatenated (halving widths: out/2, out/4,
    out/8, out/8); a stride-2 block strides with a depthwise 3x3 conv + BatchNorm after its first conv
    ("avd_layer") and average-pools (3x3, stride 2, pad 1) that first output for the concatenation;
  * the ImageNet classifier of the backbone (conv_last, fc, bn, linear) is built and saved but never run;
  * the backbone registers its stages twice: "features" and the slices x2, x4, x8, x16, x32 of the same
    modules (each a Sequential holding the slice, which keeps the original indices);
  * the BatchNorms of the segmentation heads are activated BatchNorms without a step counter (no
    num_batches_tracked in the state_dict); the backbone's are plain BatchNorms;
  * context path: global average of the 1/32 features through a 1x1 ConvBNReLU, broadcast onto the
    attention-refined 1/32 features, nearest upsampling to 1/16 then a 3x3 ConvBNReLU, the same from
    1/16 to 1/8; feature fusion of the 1/8 backbone features with the 1/8 context;
  * heads: 3x3 ConvBNReLU then a 1x1 conv without bias; main, 1/8-context ("out16") and 1/16-context
    ("out32") logits upsampled bilinearly with align_corners=True to the input size; all four detail
    heads (sp16, sp8, sp4, sp2) exist, the training configuration (use_boundary_8) returns sp8 alone,
    at 1/8 resolution;
  * detail aggregation target: a 3x3 Laplacian on the label map at strides 1, 2 and 4, each > 0.1,
    the coarse ones nearest-upsampled, fused by a 1x1 conv with weights (0.6, 0.3, 0.1), > 0.1; loss:
    detail logits bilinearly upsampled (align_corners=True) to the label size, BCE with logits (mean)
    and dice on the sigmoid (smooth 1, per image, averaged).

Usage: model_stdc.py --variant stdc1|stdc2 --mode keys      prints the state_dict (key, shape, dtype)
       model_stdc.py --variant stdc1|stdc2 --out DIR [--classes 19] [--threads 2] [--seed 1]
the second writes DIR/model.pth (torch.save of the state_dict), DIR/index.json and DIR/data.bin (the golden
format of model_deeplab.py). meta: "keys" ([key, shape, dtype] in state_dict order), "parameters",
"sizes". Tensors, for each size HxW: "HxW/input", eval-mode "HxW/main", "HxW/aux16", "HxW/aux32",
"HxW/detail8", and "HxW/main64" (the float64 network); the detail loss example: "loss/labels",
"loss/logits", "loss/target", "loss/bce", "loss/dice".
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_deeplab import Writer  # noqa: E402  (the golden format, shared)

SIZES = [(64, 64), (65, 97)]


def conv(cin, cout, k, stride=1, padding=0, groups=1):
    return nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False)


def head_bn(c):
    """The heads' activated BatchNorm: the same numerics, no step counter in the state_dict."""
    m = nn.BatchNorm2d(c)
    m.register_buffer("num_batches_tracked", None)
    return m


# ------------------------------------------------------------------------------------------ backbone
class ConvX(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        self.conv = conv(cin, cout, k, stride, k // 2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class CatBottleneck(nn.Module):
    def __init__(self, cin, cout, stride, convs=4):
        super().__init__()
        widths = [cout // 2] + [cout // (2 ** (i + 1)) for i in range(1, convs - 1)]
        widths.append(widths[-1])
        self.conv_list = nn.ModuleList()
        self.stride = stride
        if stride == 2:
            half = cout // 2
            self.avd_layer = nn.Sequential(conv(half, half, 3, 2, 1, groups=half), nn.BatchNorm2d(half))
            self.skip = nn.AvgPool2d(3, 2, 1)
        prev = cin
        for i, w in enumerate(widths):
            self.conv_list.append(ConvX(prev, w, 1 if i == 0 else 3))
            prev = w

    def forward(self, x):
        first = self.conv_list[0](x)
        y = self.avd_layer(first) if self.stride == 2 else first
        parts = [self.skip(first) if self.stride == 2 else first]
        for c in self.conv_list[1:]:
            y = c(y)
            parts.append(y)
        return torch.cat(parts, 1)


class StdcNet(nn.Module):
    def __init__(self, blocks, base=64):
        super().__init__()
        layers = [ConvX(3, base // 2, 3, 2), ConvX(base // 2, base, 3, 2)]
        width = base
        bounds = [1, 2]
        for stage, n in enumerate(blocks):
            out = base * 4 * (2 ** stage)
            for j in range(n):
                layers.append(CatBottleneck(width, out, 2 if j == 0 else 1))
                width = out
            bounds.append(len(layers))
        self.features = nn.Sequential(*layers)
        self.conv_last = ConvX(base * 16, max(1024, base * 16), 1, 1)
        self.fc = nn.Linear(1024, 1024, bias=False)
        self.bn = nn.BatchNorm1d(1024)
        self.linear = nn.Linear(1024, 1000, bias=False)
        starts = [0] + bounds[:-1]
        for name, a, b in zip(["x2", "x4", "x8", "x16", "x32"], starts, bounds):
            setattr(self, name, nn.Sequential(self.features[a:b]))

    def forward(self, x):
        f2 = self.x2(x)
        f4 = self.x4(f2)
        f8 = self.x8(f4)
        f16 = self.x16(f8)
        return f2, f4, f8, f16, self.x32(f16)


# --------------------------------------------------------------------------------------------- heads
class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.conv = conv(cin, cout, k, 1, k // 2)
        self.bn = head_bn(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Arm(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = conv(cout, cout, 1)
        self.bn_atten = head_bn(cout)

    def forward(self, x):
        f = self.conv(x)
        a = F.avg_pool2d(f, f.shape[2:])
        return f * torch.sigmoid(self.bn_atten(self.conv_atten(a)))


class ContextPath(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.backbone = StdcNet(blocks)
        self.arm16 = Arm(512, 128)
        self.arm32 = Arm(1024, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(1024, 128, 1)

    def forward(self, x):
        f2, f4, f8, f16, f32 = self.backbone(x)
        g = self.conv_avg(F.avg_pool2d(f32, f32.shape[2:]))
        s32 = self.arm32(f32) + F.interpolate(g, f32.shape[2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(s32, f16.shape[2:], mode="nearest"))
        s16 = self.arm16(f16) + up32
        up16 = self.conv_head16(F.interpolate(s16, f8.shape[2:], mode="nearest"))
        return f2, f4, f8, f16, up16, up32


class Ffm(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1)
        self.conv1 = conv(cout, cout // 4, 1)
        self.conv2 = conv(cout // 4, cout, 1)

    def forward(self, a, b):
        f = self.convblk(torch.cat([a, b], 1))
        w = torch.sigmoid(self.conv2(F.relu(self.conv1(F.avg_pool2d(f, f.shape[2:])))))
        return f * w + f


class Head(nn.Module):
    def __init__(self, cin, mid, classes):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = conv(mid, classes, 1)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class StdcSeg(nn.Module):
    def __init__(self, blocks, classes):
        super().__init__()
        self.cp = ContextPath(blocks)
        self.ffm = Ffm(256 + 128, 256)
        self.conv_out = Head(256, 256, classes)
        self.conv_out16 = Head(128, 64, classes)
        self.conv_out32 = Head(128, 64, classes)
        self.conv_out_sp16 = Head(512, 64, 1)
        self.conv_out_sp8 = Head(256, 64, 1)
        self.conv_out_sp4 = Head(64, 64, 1)
        self.conv_out_sp2 = Head(32, 64, 1)

    def forward(self, x, all_heads=False):
        size = x.shape[2:]
        f2, f4, f8, f16, cp8, cp16 = self.cp(x)
        up = lambda t: F.interpolate(t, size, mode="bilinear", align_corners=True)
        main = up(self.conv_out(self.ffm(f8, cp8)))
        aux16 = up(self.conv_out16(cp8))
        aux32 = up(self.conv_out32(cp16))
        sp8 = self.conv_out_sp8(f8)
        if all_heads:  # every head runs, so that calibration gives each BatchNorm statistics
            self.conv_out_sp2(f2), self.conv_out_sp4(f4), self.conv_out_sp16(f16)
        return main, aux16, aux32, sp8


# ------------------------------------------------------------------------------------- detail target
LAPLACIAN = [-1.0, -1.0, -1.0, -1.0, 8.0, -1.0, -1.0, -1.0, -1.0]
FUSE = [0.6, 0.3, 0.1]


def boundary_target(labels):
    g = labels.unsqueeze(1).float()
    k = torch.tensor(LAPLACIAN).reshape(1, 1, 3, 3)
    levels = []
    for stride in (1, 2, 4):
        b = F.conv2d(g, k, stride=stride, padding=1).clamp(min=0)
        if stride != 1:
            b = F.interpolate(b, g.shape[2:], mode="nearest")
        levels.append((b > 0.1).float())
    fused = F.conv2d(torch.cat(levels, 1), torch.tensor(FUSE).reshape(1, 3, 1, 1))
    return (fused > 0.1).float()


def detail_loss(logits, labels):
    t = boundary_target(labels)
    if logits.shape[2:] != t.shape[2:]:
        logits = F.interpolate(logits, t.shape[2:], mode="bilinear", align_corners=True)
    bce = F.binary_cross_entropy_with_logits(logits, t)
    p = torch.sigmoid(logits).flatten(1)
    tf = t.flatten(1)
    dice = 1 - (2 * (p * tf).sum(1) + 1) / (p.sum(1) + tf.sum(1) + 1)
    return t, bce, dice.mean()


def label_map(n, h, w, classes, gen):
    """Rectangles of random classes over class 0, one of them the ignore value 255."""
    lab = torch.zeros(n, h, w, dtype=torch.int64)
    for i in range(n):
        for r in range(14):
            y0, x0 = int(torch.randint(0, h - 4, (), generator=gen)), int(torch.randint(0, w - 4, (), generator=gen))
            y1 = y0 + int(torch.randint(3, h // 2, (), generator=gen))
            x1 = x0 + int(torch.randint(3, w // 2, (), generator=gen))
            lab[i, y0:y1, x0:x1] = 255 if r == 13 else int(torch.randint(0, classes, (), generator=gen))
    return lab


# ------------------------------------------------------------------------------------ golden files
def randomize(model, calibrations):
    """Random weights; BatchNorm statistics averaged over calibration batches (one per input size, so
    that the 1x1 global branches see several shapes), then perturbed."""
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, math.sqrt(2.0 / fan_in))
        for m in norms:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
            m.momentum = 1.0
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
        model.train()
        sums = {}
        for batch in calibrations:
            model(batch, all_heads=True)
            for m in norms:
                mean, var = sums.get(m, (0, 0))
                sums[m] = (mean + m.running_mean.clone(), var + m.running_var.clone())
        for m in norms:
            m.momentum = 0.1
            mean, var = sums[m]
            m.running_mean.copy_(mean / len(calibrations))
            m.running_var.copy_(var / len(calibrations))
            m.running_mean.add_(torch.randn_like(m.running_mean) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25))
            if m.num_batches_tracked is not None:
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, ())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="stdc1", choices=["stdc1", "stdc2"])
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="golden", choices=["golden", "keys"])
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    blocks = {"stdc1": [2, 2, 2], "stdc2": [4, 5, 3]}[a.variant]
    model = StdcSeg(blocks, a.classes)
    sd = model.state_dict()
    keys = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()]
    parameters = sum(p.numel() for p in model.parameters())
    if a.mode == "keys":
        for k, s, d in keys:
            print("%s\t%s\t%s" % (k, s, d))
        print("# keys: %d, parameters: %d" % (len(keys), parameters))
        return
    if not a.out:
        ap.error("--out is required")
    randomize(model, [torch.randn(8, 3, h, wd) for h, wd in SIZES])
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "model.pth"))
    w = Writer(a.out)
    model.eval()
    scales, inputs = {}, {}
    for h, wd in SIZES:
        tag = "%dx%d" % (h, wd)
        x = inputs[tag] = torch.randn(1, 3, h, wd)
        with torch.no_grad():
            main_, aux16, aux32, sp8 = model(x)
        w.add(tag + "/input", x)
        w.add(tag + "/main", main_)
        w.add(tag + "/aux16", aux16)
        w.add(tag + "/aux32", aux32)
        w.add(tag + "/detail8", sp8)
        scales[tag] = float(main_.abs().max())
    # The same network in float64: structure is checked to ~1e-12, free of float32 kernel rounding.
    model.double()
    for tag, x in inputs.items():
        with torch.no_grad():
            w.add(tag + "/main64", model(x.double())[0])
    gen = torch.Generator().manual_seed(a.seed + 7)
    labels = label_map(2, 65, 97, a.classes, gen)
    logits = torch.randn(2, 1, 9, 13, generator=gen) * 2
    target, bce, dice = detail_loss(logits, labels)
    w.add("loss/labels", labels)
    w.add("loss/logits", logits)
    w.add("loss/target", target)
    w.add("loss/bce", bce.reshape(()))
    w.add("loss/dice", dice.reshape(()))
    meta = {"variant": a.variant, "classes": a.classes, "torch": torch.__version__, "parameters": parameters,
            "keys": keys, "sizes": ["%dx%d" % s for s in SIZES], "logits_absmax": scales,
            "boundary_fraction": float(target.mean())}
    w.close(meta)
    print(json.dumps({k: v for k, v in meta.items() if k != "keys"}))


if __name__ == "__main__":
    sys.exit(main())
