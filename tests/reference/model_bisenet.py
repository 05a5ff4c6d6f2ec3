#!/usr/bin/python3
"""Independent PyTorch BiSeNet (face parsing) for golden files (issue 28).

Written for this project from the module facts of the face-parsing BiSeNet (zllrunning/face-parsing.PyTorch's
released network): module names, channel counts, kernels, strides, paddings, no conv biases, nearest upsampling
between the context stages and bilinear upsampling with aligned corners of the three outputs. Nothing here is
taken from that code.

Usage:
  model_bisenet.py --mode keys [--classes 19]
prints "key<TAB>[shape]<TAB>dtype" for every state_dict entry in order, then "# parameters: N".
  model_bisenet.py --mode eval --classes 19 --height 65 --width 97 --out DIR
randomises the weights and BatchNorm statistics, saves DIR/model.pth (torch.save of the state_dict, the zip
format, as the reference's release), and writes DIR/index.json and DIR/data.bin (the format of
model_deeplab.py): "input", the eval-mode "logits", "aux16" and "aux32" (conv_out16 and conv_out32, upsampled
to the input size), and the same three from the network in float64 ("logits64", "aux16_64", "aux32_64").
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_deeplab import Writer, randomize  # noqa: E402  (the golden format and its randomisation, shared)


def plain_conv(cin, cout, k, stride=1, padding=0):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False)


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, padding=1):
        super().__init__()
        self.conv = plain_conv(cin, cout, k, stride, padding)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


# ---------------------------------------------------------------------------------------- ResNet-18
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = plain_conv(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = plain_conv(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(plain_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
        else:
            self.downsample = None

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + skip)


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = plain_conv(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, cout, s) in enumerate(widths, 1):
            setattr(self, "layer%d" % i, nn.Sequential(BasicBlock(cin, cout, s), BasicBlock(cout, cout, 1)))

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        s8 = self.layer2(x)
        s16 = self.layer3(s8)
        s32 = self.layer4(s16)
        return s8, s16, s32


# ---------------------------------------------------------------------------------------- BiSeNet
def global_mean(x):
    return x.mean(dim=(2, 3), keepdim=True)


class AttentionRefinementModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 1, 1)
        self.conv_atten = plain_conv(cout, cout, 1)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        f = self.conv(x)
        return f * torch.sigmoid(self.bn_atten(self.conv_atten(global_mean(f))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x):
        s8, s16, s32 = self.resnet(x)
        g = self.conv_avg(global_mean(s32))
        g = F.interpolate(g, size=s32.shape[2:], mode="nearest")
        c16 = self.conv_head32(F.interpolate(self.arm32(s32) + g, size=s16.shape[2:], mode="nearest"))
        c8 = self.conv_head16(F.interpolate(self.arm16(s16) + c16, size=s8.shape[2:], mode="nearest"))
        return s8, c8, c16


class FeatureFusionModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = plain_conv(cout, cout // 4, 1)
        self.conv2 = plain_conv(cout // 4, cout, 1)

    def forward(self, sp, ctx):
        f = self.convblk(torch.cat([sp, ctx], dim=1))
        a = torch.sigmoid(self.conv2(torch.relu(self.conv1(global_mean(f)))))
        return f * a + f


class BiSeNetOutput(nn.Module):
    def __init__(self, cin, mid, classes):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        self.conv_out = plain_conv(mid, classes, 1)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, classes)
        self.conv_out16 = BiSeNetOutput(128, 64, classes)
        self.conv_out32 = BiSeNetOutput(128, 64, classes)

    def forward(self, x):
        size = x.shape[2:]
        s8, c8, c16 = self.cp(x)
        up = lambda y: F.interpolate(y, size=size, mode="bilinear", align_corners=True)
        return up(self.conv_out(self.ffm(s8, c8))), up(self.conv_out16(c8)), up(self.conv_out32(c16))


# ------------------------------------------------------------------------------------ golden files
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--height", type=int, default=65)
    ap.add_argument("--width", type=int, default=97)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--mode", default="eval", choices=["eval", "keys"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = BiSeNet(a.classes)
    parameters = sum(p.numel() for p in model.parameters())
    if a.mode == "keys":
        for k, v in model.state_dict().items():
            print("%s\t%s\t%s" % (k, list(v.shape), str(v.dtype).replace("torch.", "")))
        print("# parameters: %d" % parameters)
        return
    if not a.out:
        ap.error("--out is required")
    randomize(model, torch.randn(2, 3, a.height, a.width))
    model.eval()
    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "model.pth"))
    w = Writer(a.out)
    x = torch.randn(a.batch, 3, a.height, a.width)
    w.add("input", x)
    with torch.no_grad():
        main_, aux16, aux32 = model(x)
    for name, t in (("logits", main_), ("aux16", aux16), ("aux32", aux32)):
        w.add(name, t)
    # float64: kernel rounding no longer hides a structural difference (agreement to ~1e-12).
    model.double()
    with torch.no_grad():
        for name, t in zip(("logits64", "aux16_64", "aux32_64"), model(x.double())):
            w.add(name, t)
    meta = {"classes": a.classes, "height": a.height, "width": a.width, "torch": torch.__version__, "parameters": parameters,
            "logits_absmax": float(main_.abs().max())}
    w.close(meta)
    print(json.dumps(meta))


if __name__ == "__main__":
    sys.exit(main())
