"""Writes the .pth files the checkpoint import tests read. Usage: ckpt_make_pth.py OUT_DIR"""
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ckpt_tiny import make  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)

net = make(seed=3, classes=5)
x = torch.randn(1, 3, 6, 7, generator=torch.Generator().manual_seed(11))
with torch.no_grad():
    y = net(x)
x.numpy().astype("<f4").tofile(os.path.join(out, "input.bin"))
y.numpy().astype("<f4").tofile(os.path.join(out, "logits.bin"))

opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
net.train()
loss = net(x).square().mean()
loss.backward()
opt.step()
net.eval()
# The optimizer step changed net's weights: save fresh copies of the same seeded net so the
# expected logits above stay valid (the optimizer state is only there to be skipped).
torch.save(OrderedDict((k, v) for k, v in make(seed=3, classes=5).state_dict().items()), os.path.join(out, "bare.pth"))

ref_sd = OrderedDict(("module." + k, v) for k, v in make(seed=3, classes=5).state_dict().items())
torch.save({"epoch": 7, "state_dict": ref_sd, "optimizer": opt.state_dict(), "best_pred": np.float64(0.731)},
           os.path.join(out, "reference.pth.tar"))

sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
torch.save({"cur_itrs": 1234, "model_state": make(seed=3, classes=5).state_dict(), "optimizer_state": opt.state_dict(),
            "scheduler_state": sched.state_dict(), "best_score": 0.65}, os.path.join(out, "port.pth"))

# Views of storages: transposed, offset slices, two tensors sharing one storage, stride-0 expansion,
# and every dtype the reader maps.
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
views = OrderedDict()
views["transposed"] = base.t()
views["offset_rows"] = base[1:3]
views["strided_cols"] = base[:, 1::2]
views["shared_whole"] = base
views["expanded"] = torch.tensor([1.5, -2.5]).reshape(2, 1).expand(2, 3)
views["half"] = torch.tensor([0.5, -1.25, 3.0], dtype=torch.float16)
views["bf16"] = torch.tensor([0.5, -1.25, 3.0], dtype=torch.bfloat16)
views["double"] = torch.tensor([1e-300, 2.5], dtype=torch.float64)
views["long"] = torch.tensor([-(2 ** 40), 7], dtype=torch.int64)
views["int"] = torch.tensor([-5, 9], dtype=torch.int32)
views["byte"] = torch.tensor([0, 255], dtype=torch.uint8)
views["bool"] = torch.tensor([True, False, True])
views["scalar"] = torch.tensor(3.25)
views["empty"] = torch.zeros(0, 3)
views["param"] = torch.nn.Parameter(torch.tensor([[1.0, 2.0]]))
torch.save(views, os.path.join(out, "views.pth"))
expected = {k: {"shape": list(v.shape), "values": v.detach().double().reshape(-1).tolist()} for k, v in views.items()}
with open(os.path.join(out, "views.json"), "w") as f:
    json.dump(expected, f)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(out, "pwned"),))


torch.save({"weight": torch.zeros(2), "payload": Evil()}, os.path.join(out, "evil.pth"))
torch.save(make(seed=3).state_dict(), os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
print("ok")
