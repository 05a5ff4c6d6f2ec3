"""Summarises scripts/bench/quant.sh's results.jsonl as one JSON document: per engine the speed, peak RSS, file size,
mIoU per seed and its change from float32, and the issue's goals as ratios from this one run.
Usage: quant_report.py RESULTS CPU_NAME CPU_FAMILY BUDGET CALIBRATION_COUNT METHOD THREADS"""
import json
import os
import sys

def records(text):
    decoder, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)

rows = records(open(sys.argv[1]).read())
speed = {r["engine"]: r for r in rows if r["kind"] == "speed"}
sizes = {r["seed"]: r for r in rows if r["kind"] == "size"}
miou = {}
for r in rows:
    if r["kind"] == "miou":
        miou.setdefault(r["engine"], {})[r["seed"]] = round(100 * r["metrics"]["miou"], 2)
seeds = sorted(sizes)

engines = {}
for name, s in speed.items():
    b = s["bench"]
    engines[name] = {
        "b1_latency_ms": b["b1_latency_ms_median"],
        "b1_frames_per_s": round(1000 / b["b1_latency_ms_median"], 2),
        "batch8_ms": b["batch_ms_median"],
        "batch8_images_per_s": b["batch_images_per_s"],
        "peak_rss_mb": round(s["peak_rss_kb"] / 1024),
    }
for name, per_seed in miou.items():
    e = engines.setdefault(name, {})
    e["miou_per_seed"] = per_seed
    base = miou.get("torch_float32", {})
    e["miou_change_points"] = {k: round(v - base[k], 2) for k, v in per_seed.items() if k in base}
file_key = {"torch_float32": "checkpoint", "torch_bf16": "checkpoint", "ort_float32": "float32_onnx", "ort_int8": "int8_onnx", "ort_int8_s8": "int8_onnx"}
for name, e in engines.items():
    if seeds:
        e["file_mb"] = round(sizes[seeds[0]][file_key.get(name, "float32_onnx")] / 1e6, 2)

def ratio(a, b, key):
    return round(engines[a][key] / engines[b][key], 3) if a in engines and b in engines and key in engines[a] and key in engines[b] else None

int8_change = engines.get("ort_int8", {}).get("miou_change_points", {})
ort_change = {k: round(v - miou.get("ort_float32", {}).get(k, v), 2) for k, v in miou.get("ort_int8", {}).items()}
goals = {
    "int8_b1_latency_over_ort_float32 (goal <= 0.5)": ratio("ort_int8", "ort_float32", "b1_latency_ms"),
    "int8_b1_latency_over_torch_bf16 (goal < 1)": ratio("ort_int8", "torch_bf16", "b1_latency_ms"),
    "int8_batch8_ms_over_torch_bf16 (goal < 1)": ratio("ort_int8", "torch_bf16", "batch8_ms"),
    "int8_s8_b1_latency_over_u8": ratio("ort_int8_s8", "ort_int8", "b1_latency_ms"),
    "int8_miou_change_vs_torch_float32_points (goal within 1.0 each seed)": int8_change,
    "int8_miou_change_vs_ort_float32_points": ort_change,
    "file_float32_onnx_over_int8 (goal about 4)": round(sizes[seeds[0]]["float32_onnx"] / sizes[seeds[0]]["int8_onnx"], 2) if seeds else None,
    "file_float32_onnx_over_fp16": round(sizes[seeds[0]]["float32_onnx"] / sizes[seeds[0]]["fp16_onnx"], 2) if seeds else None,
}
print(json.dumps({
    "benchmark": "quant",
    "machine": {"cpu": sys.argv[2], "cpu_family": sys.argv[3], "cpus": os.cpu_count(), "threads": int(sys.argv[7]),
                "load_average_at_end": os.getloadavg()},
    "setup": {"model": "DeepLabV3+ MobileNetV2 OS16, 21 classes, learn benchmark recipe", "train_budget_seconds": int(sys.argv[4]),
              "trained": {r["seed"]: r["info"] for r in rows if r["kind"] == "trained"},
              "calibration": {"images": int(sys.argv[5]), "method": sys.argv[6], "from": "train split"},
              "miou": "60 val images, full size, eval", "speed": "seed 1, bench infer at 513x513, batch 1 and 8, median"},
    "engines": engines,
    "goals": goals,
    "note": "shared 2-core machine: timings are noisy; compare within this run only",
}, indent=2))
