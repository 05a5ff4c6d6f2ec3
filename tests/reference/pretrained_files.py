#!/usr/bin/python3
"""ImageNet-backbone files in the layouts the reference loads, with random weights, for the C# loader's tests.

usage: pretrained_files.py OUT

Writes, each with torch.save (a zip .pth, as the model zoos serve them):
  resnet50.pth   torchvision's own resnet50 state_dict (fc included), as resnet50-19c8e357.pth is laid out
  resnet18.pth   torchvision's own resnet18 (BiSeNet's context path starts from resnet18-5c106cde.pth)
  mobilenet_torchvision.pth  torchvision's own mobilenet_v2 state_dict (features.N.conv.M.K names)
  mobilenet.pth  the reference's mobilenet_v2-6a65762b.pth layout: features.* as the DeepLab backbone names them,
                 plus the ImageNet model's last 1x1 conv (features.18) and classifier, which DeepLab leaves out
  xception.pth   Cadene's xception layout, derived from the aligned Xception's names by the inverse of the
                 reference's rules: blocks 1-11 and block12 (the reference's block20), conv3, bn3, conv4 (its conv5),
                 bn4 (its bn5), fc, and 2-D pointwise weights
and OUT/expected.json: per file, the number of tensors the reference's loader would copy into the backbone.
"""
import json
import os
import re
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_deeplab import DeepLab  # noqa: E402


def without_counters(sd):
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def randomised(sd):
    g = torch.Generator().manual_seed(3)
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone() for k, v in sd.items()}


def cadene(aligned):
    out = {}
    for k, v in aligned.items():
        m = re.match(r"block(\d+)\.", k)
        if m and 12 <= int(m.group(1)) <= 19:
            continue  # the reference fills these from block11
        if k.startswith("block20."):
            k = "block12." + k[len("block20."):]
        elif k.startswith("bn4.") or k.startswith("conv4."):
            continue  # bn4 comes from bn3; the reference leaves conv4 at initialisation
        elif k.startswith("conv5."):
            k = "conv4." + k[len("conv5."):]
        elif k.startswith("bn5."):
            k = "bn4." + k[len("bn5."):]
        if "pointwise" in k and v.dim() == 4:
            v = v[:, :, 0, 0].clone()
        out[k] = v
    out["fc.weight"] = torch.randn(1000, 2048)
    out["fc.bias"] = torch.randn(1000)
    return out


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1)
    expected = {}

    resnet = randomised(torchvision.models.resnet50(weights=None).state_dict())
    torch.save(resnet, os.path.join(out, "resnet50.pth"))
    expected["resnet50.pth"] = sum(1 for k in without_counters(resnet) if not k.startswith("fc."))

    # The DeepLab backbone also lists its slices' alias keys; the zoo file has features.* alone.
    mobile = randomised({k: v for k, v in without_counters(DeepLab("mobilenet", 16, 21).backbone.state_dict()).items() if k.startswith("features.")})
    expected["mobilenet.pth"] = len(mobile)
    mobile["features.18.0.weight"] = torch.randn(1280, 320, 1, 1)
    mobile["classifier.1.weight"] = torch.randn(1000, 1280)
    torch.save(mobile, os.path.join(out, "mobilenet.pth"))

    # torchvision's resnet18, which BiSeNet's context path starts from.
    r18 = randomised(torchvision.models.resnet18(weights=None).state_dict())
    torch.save(r18, os.path.join(out, "resnet18.pth"))
    expected["resnet18.pth"] = sum(1 for k in without_counters(r18) if not k.startswith("fc."))

    # torchvision's mobilenet_v2 (features.N.conv.M.K names): every features tensor but the last 1x1 conv's maps.
    tv = randomised(torchvision.models.mobilenet_v2(weights=None).state_dict())
    torch.save(tv, os.path.join(out, "mobilenet_torchvision.pth"))
    expected["mobilenet_torchvision.pth"] = sum(1 for k in without_counters(tv) if k.startswith("features.") and not k.startswith("features.18."))

    aligned = without_counters(DeepLab("xception", 16, 21).backbone.state_dict())
    xception = randomised(cadene(aligned))
    torch.save(xception, os.path.join(out, "xception.pth"))
    # Loaded: every aligned tensor except conv4's (blocks 12-19 and bn4 come from copies).
    expected["xception.pth"] = sum(1 for k in aligned if not k.startswith("conv4."))

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
