#!/usr/bin/env python3
"""PyTorch baseline for `scripts/bench.sh infer`: DeepLabV3+ MobileNetV2 (reference layout, OS16, 21 classes)
in eval mode under torch.inference_mode(), random weights, random normalized input.

Usage: infer_reference.py SIZE BATCH ITERS_B1 ITERS_BATCH THREADS  ->  one JSON object on stdout.
The network below is a minimal re-statement of the reference (pytorch-deeplab-xception) layout, written
for this benchmark: its parameter count (5,816,053) is printed so the two sides can be checked to match.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu6(cin, cout, k, stride, dilation=1, groups=1):
    pad = dilation * (k - 1) // 2
    return [nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, dilation, expand):
        super().__init__()
        hidden = round(cin * expand)
        self.use_res = stride == 1 and cin == cout
        layers = [] if expand == 1 else conv_bn_relu6(cin, hidden, 1, 1)
        layers += conv_bn_relu6(hidden, hidden, 3, stride, dilation, hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, output_stride=16):
        super().__init__()
        settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        features = [nn.Sequential(*conv_bn_relu6(3, 32, 3, 2))]
        cin, stride_now, rate = 32, 2, 1
        for t, c, n, s in settings:
            # Past the output stride, strides turn into dilation: the whole group uses the rate reached so far.
            if stride_now == output_stride:
                stride, dilation = 1, rate
                rate *= s
            else:
                stride, dilation = s, 1
                stride_now *= s
            for i in range(n):
                features.append(InvertedResidual(cin, c, stride if i == 0 else 1, dilation, t))
                cin = c
        self.features = nn.Sequential(*features)
        self.low_level_features = self.features[0:4]
        self.high_level_features = self.features[4:]

    def forward(self, x):
        low = self.low_level_features(x)
        return self.high_level_features(low), low


class AsppBranch(nn.Module):
    def __init__(self, cin, k, dilation):
        super().__init__()
        self.atrous_conv = nn.Conv2d(cin, 256, k, 1, 0 if k == 1 else dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(256)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.atrous_conv(x)))


class Aspp(nn.Module):
    def __init__(self, cin=320, rates=(1, 6, 12, 18)):
        super().__init__()
        self.aspp1 = AsppBranch(cin, 1, rates[0])
        self.aspp2 = AsppBranch(cin, 3, rates[1])
        self.aspp3 = AsppBranch(cin, 3, rates[2])
        self.aspp4 = AsppBranch(cin, 3, rates[3])
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU())
        self.conv1 = nn.Conv2d(1280, 256, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(256)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        pooled = F.interpolate(self.global_avg_pool(x), size=x.shape[2:], mode="bilinear", align_corners=True)
        y = torch.cat([self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled], dim=1)
        return self.dropout(self.relu(self.bn1(self.conv1(y))))


class Decoder(nn.Module):
    def __init__(self, classes, low_in=24):
        super().__init__()
        self.conv1 = nn.Conv2d(low_in, 48, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(48)
        self.relu = nn.ReLU()
        self.last_conv = nn.Sequential(
            nn.Conv2d(304, 256, 3, 1, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Conv2d(256, 256, 3, 1, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(), nn.Dropout(0.1),
            nn.Conv2d(256, classes, 1))

    def forward(self, x, low):
        low = self.relu(self.bn1(self.conv1(low)))
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=True)
        return self.last_conv(torch.cat([x, low], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, classes=21, output_stride=16):
        super().__init__()
        self.backbone = MobileNetV2(output_stride)
        self.aspp = Aspp(rates=(1, 6, 12, 18) if output_stride == 16 else (1, 12, 24, 36))
        self.decoder = Decoder(classes)

    def forward(self, x):
        high, low = self.backbone(x)
        y = self.decoder(self.aspp(high), low)
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=True)


def timed(model, x, iters):
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return times


def main():
    size, batch, iters1, itersb, threads = (int(a) for a in sys.argv[1:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = DeepLabV3Plus().eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        x1 = torch.randn(1, 3, size, size)
        xb = torch.randn(batch, 3, size, size)
        timed(model, x1, 1)  # warm-up: oneDNN primitive creation, allocator
        t1 = timed(model, x1, iters1)
        timed(model, xb, 1)
        tb = timed(model, xb, itersb)
    print(json.dumps({
        "size": size, "batch": batch, "threads": torch.get_num_threads(), "parameters": params,
        "b1_latency_ms_median": round(statistics.median(t1) * 1000, 2),
        "b1_latency_ms_min": round(min(t1) * 1000, 2),
        "batch_ms_median": round(statistics.median(tb) * 1000, 2),
        "batch_images_per_s": round(batch / statistics.median(tb), 3),
        "iters_b1": iters1, "iters_batch": itersb, "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
