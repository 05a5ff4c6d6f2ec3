#!/usr/bin/python3
"""ResNet-50 backbone for model_deeplab.py's golden files (model_deeplab.py --backbone resnet50).

torchvision's own resnet50 (Bottleneck blocks [3, 4, 6, 3], stride on the 3x3 conv), so its state_dict
keys are torchvision's under "backbone." as in the reference DeepLabV3+ ResNet-101 layout, with the
classifier (avgpool, fc) dropped. Output stride as the reference ResNet-101 does it: strides
(1, 2, 2, 1) / dilations (1, 1, 1, 2) at OS16 and (1, 2, 1, 1) / (1, 1, 2, 4) at OS8, every block of a
stage at the stage's dilation, and layer4 as a multi-grid unit (1, 2, 4) x its dilation. Those strides
and dilations are set on torchvision's modules in place (torchvision's replace_stride_with_dilation
gives a stage's first block the previous dilation and has no multi-grid).
"""
import torch.nn as nn
import torchvision

LOW, HIGH = 256, 2048
SCHEDULE = {16: ([1, 2, 2, 1], [1, 1, 1, 2]), 8: ([1, 2, 1, 1], [1, 1, 2, 4])}
MULTI_GRID = [1, 2, 4]


class ResNet50(nn.Module):
    def __init__(self, output_stride):
        super().__init__()
        net = torchvision.models.resnet50(weights=None)
        strides, dilations = SCHEDULE[output_stride]
        for i, name in enumerate(["layer1", "layer2", "layer3", "layer4"]):
            stage = getattr(net, name)
            for b, block in enumerate(stage):
                d = dilations[i] * (MULTI_GRID[b] if name == "layer4" else 1)
                block.conv2.dilation, block.conv2.padding = (d, d), (d, d)
                if b == 0:
                    block.conv2.stride = (strides[i], strides[i])
                    if block.downsample is not None:
                        block.downsample[0].stride = (strides[i], strides[i])
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        return self.layer4(self.layer3(self.layer2(low))), low


def build(output_stride):
    return ResNet50(output_stride)
