#!/usr/bin/env bash
# Every benchmark short enough to run together, one after the other, combined into one JSON document
# whose "targets" table holds each figure of the performance issue's target table and its ratio to
# PyTorch: overhead, model (MobileNetV2, float32 and bf16 mixed precision), infer (MobileNetV2 float32,
# bf16 and ONNX Runtime; Xception-65 and ResNet-101 batch 1 in float32 and bf16), predict (marginal time
# per image over a folder), loader, threads and scaling. learn trains both sides for 10 minutes each
# (~20 minutes per seed): it is left out unless LEARN=FILE names the JSON of an earlier
# `scripts/bench.sh learn` run (or a JSON list of several), whose figures then fill its row.
# Usage: scripts/bench.sh all [THREADS=2]. About 6 minutes on a quiet 2-core machine (Zen 4).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-2}"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run() {  # NAME FILE ARGS...: one benchmark's JSON into FILE, its progress on stderr
  local name="$1" file="$2"; shift 2
  echo "bench all: $name $*" >&2
  bash "$root/scripts/bench/$name.sh" "$@" > "$dir/$file"
}
run overhead overhead.json 100000 10000 "$threads"
run model model.json backbones=mobilenet "threads=$threads"
run model model_bf16.json backbones=mobilenet "threads=$threads" precision=bf16 channels_last=true
run infer infer_float32.json 513 8 10 3 "$threads" float32
run infer infer_bf16.json 513 8 10 3 "$threads" bf16
run infer infer_onnx.json 513 8 10 3 "$threads" float32 "" mobilenet onnx
for b in xception resnet; do
  run infer "infer_${b}_float32.json" 513 1 5 1 "$threads" float32 "" "$b"
  run infer "infer_${b}_bf16.json" 513 1 5 1 "$threads" bf16 "" "$b"
done
run predict predict.json 513 6 3 "$threads"
run loader loader.json
run threads threads.json 8 1
# The plot of this run goes next to the JSON, not over docs/images/scaling.svg.
run scaling scaling.json "$dir/scaling.svg" "threads=1,$threads"
/usr/bin/python3 - "$dir" "$started" "$threads" "${LEARN:-}" <<'PY'
import json, os, platform, sys
d, started, threads, learn_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
load = lambda f: json.load(open(os.path.join(d, f)))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
model, model_bf16 = load("model.json")["backbones"]["mobilenet"], load("model_bf16.json")["backbones"]["mobilenet"]
inf = {p: load(f"infer_{p}.json") for p in ("float32", "bf16", "onnx")}
big = {(b, p): load(f"infer_{b}_{p}.json") for b in ("xception", "resnet") for p in ("float32", "bf16")}
predict = load("predict.json")
r3 = lambda v: None if v is None else round(v, 3)


def row(figure, shape, goal, ratio, better, ours, pytorch, **extra):
    met = None if ratio is None else (ratio <= goal if better == "lower" else ratio >= goal)
    out = {"figure": figure, "shape": shape, "goal": ("<= " if better == "lower" else ">= ") + str(goal),
           "ratio": r3(ratio), "met": met, "ours": ours, "pytorch": pytorch}
    out.update(extra)
    return out


def latency_row(figure, goal, f32, bf16):
    py = f32["python"]["b1_latency_ms_median"]
    return row(figure, "1x513²", goal, bf16["csharp"]["b1_latency_ms_median"] / py, "lower",
               {"bf16_ms": bf16["csharp"]["b1_latency_ms_median"], "float32_ms": f32["csharp"]["b1_latency_ms_median"]},
               {"float32_eager_ms": py, "float32_eager_heap_ms": f32.get("python_levers", {}).get("b1_latency_ms_median"),
                "levers_ms": bf16.get("python_levers", {}).get("b1_latency_ms_median")},
               ratio_float32=r3(f32["csharp"]["b1_latency_ms_median"] / py),
               ratio_bf16_to_pytorch_levers=bf16.get("ratio_csharp_over_python_levers", {}).get("b1_latency_ms_median"),
               note="ratio: our bf16 (predict --precision bf16) over PyTorch's float32 eager; heap: PyTorch with glibc's heap kept as ours is "
                    "(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_); levers: PyTorch with channels_last + bf16 autocast + that heap setting")


py_train = model["python"]["train_step_ms_median"]
targets = [
    latency_row("inference latency, MobileNetV2", 0.5, inf["float32"], inf["bf16"]),
    row("predict on a folder, marginal time per 513² image (decode + forward + write)", "MobileNetV2, trained weights", 0.5,
        min(v["ratio_to_python_forward"] for v in predict["ours"].values()), "lower",
        {p: v["marginal_ms_per_image_median"] for p, v in predict["ours"].items()},
        {"bare_forward_ms": predict["python"]["forward_ms_median"]},
        ratio_by_precision={p: v["ratio_to_python_forward"] for p, v in predict["ours"].items()},
        note="ratio: the faster precision's marginal time over PyTorch's bare eager forward"),
    latency_row("inference latency, Xception-65", 0.6, big[("xception", "float32")], big[("xception", "bf16")]),
    latency_row("inference latency, ResNet-101", 0.6, big[("resnet", "float32")], big[("resnet", "bf16")]),
    row("inference throughput", "batch 8 x 513², MobileNetV2", 2.2,
        inf["bf16"]["csharp"]["batch_images_per_s"] / inf["bf16"]["python"]["batch_images_per_s"], "higher",
        {"bf16_images_per_s": inf["bf16"]["csharp"]["batch_images_per_s"], "float32_images_per_s": inf["float32"]["csharp"]["batch_images_per_s"],
         "onnxruntime_images_per_s": inf["onnx"]["csharp"]["batch_images_per_s"]},
        {"float32_eager_images_per_s": inf["bf16"]["python"]["batch_images_per_s"],
         "float32_eager_heap_images_per_s": inf["float32"].get("python_levers", {}).get("batch_images_per_s"),
         "levers_images_per_s": inf["bf16"].get("python_levers", {}).get("batch_images_per_s")},
        ratio_float32=r3(inf["float32"]["ratio_csharp_over_python"]["batch_images_per_s"]),
        note="ratio: our bf16 throughput over PyTorch's float32 eager"),
    row("train step (forward, backward, SGD)", "4 x 321², MobileNetV2", 0.75,
        model_bf16["csharp"]["train_step_ms_median"] / py_train, "lower",
        {"bf16_mixed_ms": model_bf16["csharp"]["train_step_ms_median"], "float32_ms": model["csharp"]["train_step_ms_median"]},
        {"float32_eager_ms": py_train, "float32_eager_heap_ms": model.get("python_heap", {}).get("train_step_ms_median"),
         "bf16_autocast_channels_last_heap_ms": model_bf16["python"]["train_step_ms_median"]},
        ratio_float32=model["ratio_csharp_over_python"]["train_step_median"],
        ratio_bf16_to_pytorch_autocast=model_bf16["ratio_csharp_over_python"]["train_step_median"],
        note="ratio: our bf16 mixed precision (train --precision bf16) over PyTorch's float32 eager"),
    row("peak memory, train step", "4 x 321², MobileNetV2 (process peak RSS, forward included)", 1.0,
        model["ratio_csharp_over_python"]["peak_rss"], "lower",
        {"float32_mb": model["csharp"]["peak_rss_mb"], "bf16_mixed_mb": model_bf16["csharp"]["peak_rss_mb"]},
        {"float32_mb": model["python"]["peak_rss_mb"], "float32_heap_mb": model.get("python_heap", {}).get("peak_rss_mb")},
        ratio_bf16_to_pytorch_float32=r3(model_bf16["csharp"]["peak_rss_mb"] / model["python"]["peak_rss_mb"])),
]
learn = None
if learn_file:
    learn = json.load(open(learn_file))
    runs = learn if isinstance(learn, list) else [learn]
    wins = sum(1 for r in runs if r["ours"]["miou"] > r["python"]["miou"])
    targets.append({"figure": "end-to-end: learn benchmark mIoU after a fixed time budget", "shape": "synthetic set, crop 257",
                    "goal": "higher than PyTorch's on 3 seeds", "met": wins == len(runs) and len(runs) >= 3,
                    "ours": [r["ours"]["miou"] for r in runs], "pytorch": [r["python"]["miou"] for r in runs],
                    "ratio": [r["ratio"]["miou"] for r in runs], "source": learn_file})
else:
    targets.append({"figure": "end-to-end: learn benchmark mIoU after a fixed time budget", "shape": "synthetic set, crop 257",
                    "goal": "higher than PyTorch's on 3 seeds", "met": None,
                    "note": "not run here (about 20 minutes per seed): scripts/bench.sh learn, then LEARN=that.json scripts/bench.sh all"})
print(json.dumps({
    "benchmark": "all",
    "started_utc": started,
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "load_average_at_end": os.getloadavg()},
    "note": "targets: each figure of the performance issue's table, ratio = ours / PyTorch 1.13 (Debian) in the same run; "
            "the entries after it are each benchmark's own document; figures on a shared machine are noisy",
    "targets": targets,
    "overhead": load("overhead.json"),
    "model": {"float32": load("model.json"), "bf16": load("model_bf16.json")},
    "infer": {"float32": inf["float32"], "bf16": inf["bf16"], "onnxruntime": inf["onnx"],
              **{f"{b}_{p}": v for (b, p), v in big.items()}},
    "predict": predict,
    "loader": load("loader.json"),
    "threads": load("threads.json"),
    "scaling": load("scaling.json"),
    **({"learn": learn} if learn else {}),
}, indent=2))
PY
