#!/usr/bin/python3
"""Independent PyTorch DeepLabV3+ for golden files (issue 3).

Written for this project from the specification in the issue and the state_dict listings in
tests/reference/state-dict/*.tsv (module names, shapes and order of the pytorch-deeplab-xception
layout). It follows that layout's behaviour where it matters for parity:
  * "fixed padding": the input of every 3x3 depthwise/separable conv is zero-padded by the effective
    kernel size first; in MobileNetV2's expanding blocks that pad happens before the 1x1 expansion;
  * MobileNetV2 turns strides into dilation after the output stride is reached, a stage using the
    rate accumulated by the stages before it; features[0:4] / features[4:] are also registered as
    low_level_features / high_level_features (the alias keys);
  * aligned Xception blocks that start with ReLU apply it in place, so the shortcut sees relu(x);
  * ResNet-101 uses multi-grid (1, 2, 4) in layer4.

Usage (golden files for the C# tests):
  model_deeplab.py --backbone mobilenet --os 16 --classes 5 --height 65 --width 97 --mode eval --out DIR
writes DIR/index.json and DIR/data.bin: raw little-endian tensors listed in order with name, dtype,
shape and byte offset. Names: "state/<key>" (every state_dict entry, aliases included), "input",
"logits"; train mode adds "target", "loss" and "after/<key>" (state after one SGD step).
--mode grads (mixed-precision golden, issue 15) writes "state/<key>", "input", "target", the gradients of
one cross-entropy step with BatchNorm on its running statistics and dropout off in float64, float32 and
under PyTorch's CPU autocast to bfloat16 ("grad64/", "grad32/", "gradbf16/<parameter>"), and the
BatchNorm running statistics after one train-mode (batch statistics) forward in float64 ("bn64/<key>").
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------- parts
def pad_fixed(x, kernel, dilation):
    span = kernel + (kernel - 1) * (dilation - 1)
    lo = (span - 1) // 2
    hi = span - 1 - lo
    return F.pad(x, (lo, hi, lo, hi))


def bn(c):
    return nn.BatchNorm2d(c)


def conv(cin, cout, k, stride=1, padding=0, dilation=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride, padding, dilation, groups=groups, bias=False)


# --------------------------------------------------------------------------------------- MobileNetV2
class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, dilation, expansion):
        super().__init__()
        hidden = cin * expansion
        self.shortcut = stride == 1 and cin == cout
        self.dilation = dilation
        body = []
        if expansion != 1:
            body += [conv(cin, hidden, 1), bn(hidden), nn.ReLU6(inplace=True)]
        body += [conv(hidden, hidden, 3, stride, 0, dilation, groups=hidden), bn(hidden), nn.ReLU6(inplace=True),
                 conv(hidden, cout, 1), bn(cout)]
        self.conv = nn.Sequential(*body)

    def forward(self, x):
        y = self.conv(pad_fixed(x, 3, self.dilation))
        return x + y if self.shortcut else y


class MobileNetV2(nn.Module):
    STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, output_stride):
        super().__init__()
        layers = [nn.Sequential(conv(3, 32, 3, 2, 1), bn(32), nn.ReLU6(inplace=True))]
        reached, rate, cin = 2, 1, 32
        for t, c, n, s in self.STAGES:
            if reached == output_stride:
                stride, dilation = 1, rate
                rate *= s
            else:
                stride, dilation = s, 1
                reached *= s
            for i in range(n):
                layers.append(InvertedResidual(cin, c, stride if i == 0 else 1, dilation, t))
                cin = c
        self.features = nn.Sequential(*layers)
        # Two more names for slices of the same modules, as the reference layout has.
        self.low_level_features = self.features[0:4]
        self.high_level_features = self.features[4:]

    def forward(self, x):
        low = self.low_level_features(x)
        return self.high_level_features(low), low


# ---------------------------------------------------------------------------------- aligned Xception
class SeparableConv2d(nn.Module):
    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.conv1 = conv(cin, cin, 3, stride, 0, dilation, groups=cin)
        self.bn = bn(cin)
        self.pointwise = conv(cin, cout, 1)

    def forward(self, x):
        return self.pointwise(self.bn(self.conv1(pad_fixed(x, 3, self.conv1.dilation[0]))))


class XceptionBlock(nn.Module):
    def __init__(self, cin, cout, reps, stride=1, dilation=1, start_with_relu=True, grow_first=True, is_last=False):
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = conv(cin, cout, 1, stride)
            self.skipbn = bn(cout)
        else:
            self.skip = None
        units = []
        width = cin
        if grow_first:
            units.append((cin, cout, 1, dilation))
            width = cout
        units += [(width, width, 1, dilation)] * (reps - 1)
        if not grow_first:
            units.append((cin, cout, 1, dilation))
        if stride != 1:
            units.append((cout, cout, stride, 1))
        elif is_last:
            units.append((cout, cout, 1, 1))
        layers = []
        for a, b, s, d in units:
            layers += [nn.ReLU(inplace=True), SeparableConv2d(a, b, s, d), bn(b)]
        if not start_with_relu:
            layers = layers[1:]
        self.rep = nn.Sequential(*layers)

    def forward(self, x):
        y = self.rep(x)  # a leading in-place ReLU also rectifies x for the shortcut
        shortcut = self.skipbn(self.skip(x)) if self.skip is not None else x
        return y + shortcut


class AlignedXception(nn.Module):
    def __init__(self, output_stride):
        super().__init__()
        entry3_stride, middle, exit1, exit2 = {16: (2, 1, 1, 2), 8: (1, 2, 2, 4)}[output_stride]
        self.conv1 = conv(3, 32, 3, 2, 1)
        self.bn1 = bn(32)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(32, 64, 3, 1, 1)
        self.bn2 = bn(64)
        self.block1 = XceptionBlock(64, 128, 2, 2, start_with_relu=False)
        self.block2 = XceptionBlock(128, 256, 2, 2, start_with_relu=False)
        self.block3 = XceptionBlock(256, 728, 2, entry3_stride, is_last=True)
        for i in range(4, 20):
            setattr(self, "block%d" % i, XceptionBlock(728, 728, 3, 1, middle))
        self.block20 = XceptionBlock(728, 1024, 2, 1, exit1, grow_first=False, is_last=True)
        self.conv3 = SeparableConv2d(1024, 1536, 1, exit2)
        self.bn3 = bn(1536)
        self.conv4 = SeparableConv2d(1536, 1536, 1, exit2)
        self.bn4 = bn(1536)
        self.conv5 = SeparableConv2d(1536, 2048, 1, exit2)
        self.bn5 = bn(2048)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        low = self.relu(self.block1(x))
        x = self.block2(low)
        for i in range(3, 21):
            x = getattr(self, "block%d" % i)(x)
        x = self.relu(x)
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.relu(self.bn4(self.conv4(x)))
        x = self.relu(self.bn5(self.conv5(x)))
        return x, low


# ------------------------------------------------------------------------------------------ ResNet
class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride=1, dilation=1, project=False):
        super().__init__()
        self.conv1 = conv(cin, planes, 1)
        self.bn1 = bn(planes)
        self.conv2 = conv(planes, planes, 3, stride, dilation, dilation)
        self.bn2 = bn(planes)
        self.conv3 = conv(planes, planes * 4, 1)
        self.bn3 = bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(conv(cin, planes * 4, 1, stride), bn(planes * 4)) if project else None

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet101(nn.Module):
    def __init__(self, output_stride):
        super().__init__()
        strides, dilations = {16: ([1, 2, 2, 1], [1, 1, 1, 2]), 8: ([1, 2, 1, 1], [1, 1, 2, 4])}[output_stride]
        self.conv1 = conv(3, 64, 7, 2, 3)
        self.bn1 = bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.width = 64
        self.layer1 = self.stage(64, [1] * 3, strides[0], dilations[0])
        self.layer2 = self.stage(128, [1] * 4, strides[1], dilations[1])
        self.layer3 = self.stage(256, [1] * 23, strides[2], dilations[2])
        self.layer4 = self.stage(512, [1, 2, 4], strides[3], dilations[3])

    def stage(self, planes, grid, stride, dilation):
        blocks = [Bottleneck(self.width, planes, stride, grid[0] * dilation,
                             project=stride != 1 or self.width != planes * 4)]
        self.width = planes * 4
        blocks += [Bottleneck(self.width, planes, 1, g * dilation) for g in grid[1:]]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        return self.layer4(self.layer3(self.layer2(low))), low


# ------------------------------------------------------------------------------------- ASPP, decoder
class AsppBranch(nn.Module):
    def __init__(self, cin, k, rate):
        super().__init__()
        self.atrous_conv = conv(cin, 256, k, 1, 0 if k == 1 else rate, rate)
        self.bn = bn(256)

    def forward(self, x):
        return F.relu(self.bn(self.atrous_conv(x)))


class Aspp(nn.Module):
    def __init__(self, cin, output_stride, align_corners):
        super().__init__()
        r = {16: (6, 12, 18), 8: (12, 24, 36)}[output_stride]
        self.align_corners = align_corners
        self.aspp1 = AsppBranch(cin, 1, 1)
        self.aspp2 = AsppBranch(cin, 3, r[0])
        self.aspp3 = AsppBranch(cin, 3, r[1])
        self.aspp4 = AsppBranch(cin, 3, r[2])
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(cin, 256, 1), bn(256), nn.ReLU())
        self.conv1 = conv(1280, 256, 1)
        self.bn1 = bn(256)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x)]
        pooled = self.global_avg_pool(x)
        branches.append(F.interpolate(pooled, size=x.shape[2:], mode="bilinear", align_corners=self.align_corners))
        return self.dropout(F.relu(self.bn1(self.conv1(torch.cat(branches, 1)))))


class Decoder(nn.Module):
    def __init__(self, low_channels, classes, align_corners):
        super().__init__()
        self.align_corners = align_corners
        self.conv1 = conv(low_channels, 48, 1)
        self.bn1 = bn(48)
        self.last_conv = nn.Sequential(conv(304, 256, 3, 1, 1), bn(256), nn.ReLU(), nn.Dropout(0.5),
                                       conv(256, 256, 3, 1, 1), bn(256), nn.ReLU(), nn.Dropout(0.1),
                                       nn.Conv2d(256, classes, 1))

    def forward(self, x, low):
        low = F.relu(self.bn1(self.conv1(low)))
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=self.align_corners)
        return self.last_conv(torch.cat([x, low], 1))


# name -> (constructor for an output stride, low-level channels, high-level channels)
BACKBONES = {"mobilenet": (MobileNetV2, 24, 320), "xception": (AlignedXception, 128, 2048), "resnet": (ResNet101, 256, 2048)}


def backbone_spec(name):
    """A backbone written here, or one from tests/reference/backbone_<name>.py, which defines
    build(output_stride) (a module whose forward returns (high, low)), LOW and HIGH: so a backbone
    added to the C# catalogue brings its own independent PyTorch golden in one file."""
    if name in BACKBONES:
        return BACKBONES[name]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backbone_%s.py" % name)
    if not os.path.exists(path):
        raise SystemExit("model_deeplab.py: no reference for backbone '%s' (built in: %s; nor %s)"
                         % (name, ", ".join(BACKBONES), path))
    import importlib.util
    spec = importlib.util.spec_from_file_location("backbone_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build, module.LOW, module.HIGH


class DeepLab(nn.Module):
    def __init__(self, backbone="mobilenet", output_stride=16, classes=21, align_corners=True):
        super().__init__()
        build, low, high = backbone_spec(backbone)
        self.align_corners = align_corners
        self.backbone = build(output_stride)
        self.aspp = Aspp(high, output_stride, align_corners)
        self.decoder = Decoder(low, classes, align_corners)

    def forward(self, x):
        feats, low = self.backbone(x)
        y = self.decoder(self.aspp(feats), low)
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=self.align_corners)

    def parameter_groups(self, lr):
        return [{"params": list(self.backbone.parameters()), "lr": lr},
                {"params": list(self.aspp.parameters()) + list(self.decoder.parameters()), "lr": lr * 10}]


# ------------------------------------------------------------------------------------ golden files
def randomize(model, calibration):
    """Random weights, and BatchNorm statistics that are non-trivial but keep activations in range:
    measured on a calibration batch, then perturbed."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.momentum = 1.0
        model.train()
        model(calibration)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
                m.running_mean.add_(torch.randn_like(m.running_mean) * 0.1 * m.running_var.sqrt())
                m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, ())))


class Writer:
    def __init__(self, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        self.dir = out_dir
        self.data = open(os.path.join(out_dir, "data.bin"), "wb")
        self.entries = []
        self.offset = 0

    def add(self, name, t):
        t = t.detach().contiguous().cpu()
        dtype, code = {torch.float32: ("float32", "<f4"), torch.float64: ("float64", "<f8"), torch.int64: ("int64", "<i8")}[t.dtype]
        raw = t.numpy().astype(code, copy=False).tobytes()
        self.entries.append({"name": name, "dtype": dtype, "shape": list(t.shape), "offset": self.offset, "nbytes": len(raw)})
        self.data.write(raw)
        self.offset += len(raw)

    def close(self, meta):
        self.data.close()
        with open(os.path.join(self.dir, "index.json"), "w") as f:
            json.dump({"meta": meta, "entries": self.entries}, f)


class ExactReLU6(nn.Module):
    """ReLU6 computed in float32 and cast back: the same values as a bfloat16 ReLU6 (min/max round nothing).
    PyTorch 1.13 has no bfloat16 backward for hardtanh on the CPU, so autocast training needs it."""

    def forward(self, x):
        return F.relu6(x.float()).to(x.dtype)


def grads_golden(model, x, a, w, meta):
    import copy
    torch.manual_seed(a.seed + 1)
    target = torch.randint(0, a.classes, (a.batch, a.height, a.width))
    target[torch.rand(target.shape) < 0.1] = 255
    w.add("target", target)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0

    def frozen(net):
        net.train()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return net

    def step(net, dtype, autocast):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = net(x.to(dtype))
        loss = F.cross_entropy(y.to(dtype), target, ignore_index=255)
        loss.backward()
        return float(loss), {n: p.grad.detach().clone() for n, p in net.named_parameters()}

    def relu6_to_exact(net):
        for name, child in net.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(net, name, ExactReLU6())
            else:
                relu6_to_exact(child)
        return net

    net64 = frozen(copy.deepcopy(model).double())
    loss64, g64 = step(net64, torch.float64, False)
    loss32, g32 = step(frozen(copy.deepcopy(model)), torch.float32, False)
    lossbf, gbf = step(frozen(relu6_to_exact(copy.deepcopy(model))), torch.float32, True)
    flat = lambda g: torch.cat([v.double().flatten() for v in g.values()])
    ref = flat(g64)
    err = lambda g: float((flat(g) - ref).norm() / ref.norm())
    for prefix, g in (("grad64/", g64), ("grad32/", g32), ("gradbf16/", gbf)):
        for k, v in g.items():
            w.add(prefix + k, v)
    # One train-mode forward (batch statistics): the running statistics it leaves, in float64 (written) and
    # under autocast (compared here). From fresh statistics and momentum 0.1 they hold 0.1·mean and
    # 0.9 + 0.1·variance of each channel's batch; the errors are the worst over the backbone's layers, the mean
    # in units of the layer's RMS standard deviation, the variance relative to the layer's mean variance.
    def running(net, dtype, autocast):
        net.train()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            net(x.to(dtype))
        return {k: v.double() for k, v in net.state_dict().items() if "running_" in k}

    bn64 = running(copy.deepcopy(model).double(), torch.float64, False)
    bnbf = running(relu6_to_exact(copy.deepcopy(model)), torch.float32, True)
    for k, v in bn64.items():
        w.add("bn64/" + k, v)
    mean_err = var_err = 0.0
    for k in bn64:
        if k.startswith("backbone.features.") and k.endswith(".running_mean"):
            vk = k[:-len("mean")] + "var"
            batch_var = ((bn64[vk] - 0.9) / 0.1).mean()
            mean_err = max(mean_err, float((bnbf[k] - bn64[k]).abs().max() / 0.1 / batch_var.sqrt()))
            var_err = max(var_err, float((bnbf[vk] - bn64[vk]).abs().max() / 0.1 / batch_var))
    meta.update(loss64=loss64, loss32=loss32, loss_autocast_bf16=lossbf, grad_rel_err_float32=err(g32), grad_rel_err_autocast_bf16=err(gbf),
                bn_mean_err_autocast_bf16=mean_err, bn_var_err_autocast_bf16=var_err,
                batchnorm="running statistics (eval) for the gradients", ignore_index=255)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="mobilenet", help="%s, or NAME with a backbone_NAME.py here" % ", ".join(BACKBONES))
    ap.add_argument("--os", type=int, default=16, choices=[8, 16])
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--height", type=int, default=65)
    ap.add_argument("--width", type=int, default=97)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--mode", default="eval", choices=["eval", "train", "keys", "grads"])
    ap.add_argument("--no-align-corners", action="store_true")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = DeepLab(a.backbone, a.os, a.classes, not a.no_align_corners)
    if a.mode == "keys":
        for k, v in model.state_dict().items():
            print("%s\t%s\t%s" % (k, list(v.shape), str(v.dtype).replace("torch.", "")))
        print("# parameters: %d" % sum(p.numel() for p in model.parameters()))
        return
    if not a.out:
        ap.error("--out is required")
    # The gradient golden keeps the constructor's initialisation and fresh BatchNorm statistics: randomised
    # statistics make the deep network so sensitive that even float32 gradients stray ~1% from float64,
    # and bfloat16 ones by more than their own size.
    if a.mode != "grads":
        randomize(model, torch.randn(2, 3, a.height, a.width))
    w = Writer(a.out)
    for k, v in model.state_dict().items():
        w.add("state/" + k, v)
    x = torch.randn(a.batch, 3, a.height, a.width)
    w.add("input", x)
    meta = {"backbone": a.backbone, "output_stride": a.os, "classes": a.classes, "align_corners": not a.no_align_corners,
            "mode": a.mode, "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters())}
    if a.mode == "grads":
        grads_golden(model, x, a, w, meta)
    elif a.mode == "eval":
        model.eval()
        with torch.no_grad():
            y = model(x)
        w.add("logits", y)
        meta["logits_absmax"] = float(y.abs().max())
        # The same network in float64: float32 results differ between libtorch versions by kernel
        # rounding (~1e-5 of the logit scale), float64 ones agree to ~1e-12, so structure is checked exactly.
        model.double()
        with torch.no_grad():
            w.add("logits64", model(x.double()))
    else:
        # One SGD step in train mode. Dropout is disabled (p = 0) so both sides see the same network.
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        model.train()
        target = torch.randint(0, a.classes, (a.batch, a.height, a.width))
        target[torch.rand(target.shape) < 0.1] = 255
        opt = torch.optim.SGD(model.parameter_groups(a.lr), lr=a.lr, momentum=0.9, weight_decay=5e-4)
        y = model(x)
        loss = F.cross_entropy(y, target, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        w.add("target", target)
        w.add("logits", y)
        w.add("loss", loss.reshape(()))
        for k, v in model.state_dict().items():
            w.add("after/" + k, v)
        meta.update(lr=a.lr, momentum=0.9, weight_decay=5e-4, ignore_index=255, loss=float(loss))
    w.close(meta)
    print(json.dumps(meta))


if __name__ == "__main__":
    sys.exit(main())
