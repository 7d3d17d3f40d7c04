"""Below the fp32 floor, measured in one run (``nox -s bench-speed``; part of ``nox -s bench``):

1. **precision** -- seconds per image of each method at fp32 and bf16 (interleaved rounds), and the
   Pearson correlation of the bf16 maps with the fp32 ones;
2. **shared passes** -- the four gradient methods (Grad-CAM, Grad-CAM++, Saliency, Gradient x
   Input) together in one pipeline, against Grad-CAM alone and against the sum of each alone;
3. **adaptive sampling** -- RISE and LIME on the shipped sets: the evaluations the adaptive
   default (reliability 0.95) took per image against the fixed counts, with the reliability each
   reached;
4. **cold start** -- a one-image ``xaicli explain`` in a fresh process against its floor (Python
   start + TensorFlow import + model load + one compiled call, in a fresh process too);
5. **the README's main job** -- the whole command at the defaults against the same command at the
   fixed sample counts it used before (RISE 4000 masks, LIME 1000 samples), with the reliability
   of the maps each gives.

Figures are ratios taken in the same run: the machine's speed drifts, the ratios do not.

    python benchmarks/speed.py [--parts precision,shared,adaptive,cold,main] [--images 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from parts import run_parts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def sources(folder: Path, n: int):
    from xaicli.io import discover

    found = discover([folder])
    step = max(1, len(found) // n)
    return found[::step][:n]


def run_methods(loaded, methods, srcs, precision="fp32", batch_size=16):
    """(seconds per image of the whole explain stage, maps by (image, key)) of one pipeline."""
    from xaicli.pipeline.run import Pipeline, make_methods

    pipeline = Pipeline(loaded, make_methods(methods), batch_size=batch_size, precision=precision)
    pipeline.trace()
    started = time.perf_counter()
    maps = {(r.index, m.key): m for r in pipeline.records(srcs) for m in r.maps}
    return (time.perf_counter() - started) / len(srcs), maps, pipeline


def precision_part(args, lines):
    import keras

    from xaicli.api import LoadedModel, ModelInfo
    from xaicli.io import Source
    from xaicli.models.io import load_model
    from xaicli.models.xray_cnn import XrayCNN

    keras.utils.set_random_seed(0)
    study = XrayCNN().build((260, 260, 1), "classification", 9)
    rng = np.random.default_rng(0)
    study_sources = [Source(None, None, f"x{i}", rng.uniform(0, 1, (260, 260, 1)).astype(np.float32)) for i in range(4)]
    models = {
        "chest study CNN 260x260 (xray-cnn, untrained)": (LoadedModel(study, ModelInfo("classification", (260, 260, 1),
                                                                                      class_names=[f"c{i}" for i in range(9)])), study_sources),
        "shipped chest model 64x64": (load_model(SAMPLE / "models/chest/model.keras"), sources(SAMPLE / "chest/test", args.images)),
    }
    methods = ["gradcam", "saliency", ("ig", {"steps": 16}), ("rise", {"n_masks": 400, "reliability": 0}),
               ("lime", {"num_samples": 200, "reliability": 0})]
    lines += ["## 1. Precision: seconds per image at fp32 and bf16, and the bf16 maps' correlation with fp32", "",
              "| model | method | fp32 s | bf16 s | speed-up | map correlation (mean) |", "|---|---|---|---|---|---|"]
    for model_name, (loaded, srcs) in models.items():
        for method in methods:
            name = method if isinstance(method, str) else method[0]
            times = {"fp32": [], "bf16": []}
            maps = {}
            for _ in range(args.rounds):
                for precision in ("fp32", "bf16"):
                    seconds, maps[precision], _ = run_methods(loaded, [method], srcs, precision)
                    times[precision].append(seconds)
            correlation = statistics.mean(np.corrcoef(maps["fp32"][k].map.ravel(), maps["bf16"][k].map.ravel())[0, 1]
                                          for k in maps["fp32"])
            fp, bf = statistics.median(times["fp32"]), statistics.median(times["bf16"])
            lines.append(f"| {model_name} | {name} | {fp:.4f} | {bf:.4f} | {fp / bf:.2f}x | {correlation:.4f} |")
            print(lines[-1], flush=True)
    from xaicli.runner.precision import probe

    loaded, srcs = models["shipped chest model 64x64"]
    from xaicli.pipeline.run import Pipeline

    batch = next(Pipeline(loaded, batch_size=8).batches(srcs[:8]))
    decision = probe(loaded.model, batch.x, batch.target.weights)
    lines += ["", f"`--precision auto` on this machine (shipped chest model): {decision}", ""]


def shared_part(args, lines):
    from xaicli.models.io import load_model

    loaded = load_model(SAMPLE / "models/chest/model.keras")
    srcs = sources(SAMPLE / "chest/test", args.images)
    four = ["gradcam", "gradcam++", "saliency", "gradient-x-input"]
    together, alone, each = [], [], []
    for _ in range(args.rounds):
        together.append(run_methods(loaded, four, srcs)[0])
        alone.append(run_methods(loaded, ["gradcam"], srcs)[0])
        each.append(sum(run_methods(loaded, [m], srcs)[0] for m in four))
    t, a, e = (statistics.median(v) for v in (together, alone, each))
    lines += ["## 2. Shared passes: the four gradient methods together", "",
              "| shipped chest model, seconds per image | together | Grad-CAM alone | sum of each alone | together / Grad-CAM | together / sum |",
              "|---|---|---|---|---|---|",
              f"| {len(srcs)} images | {t:.4f} | {a:.4f} | {e:.4f} | {t / a:.2f}x | {t / e:.2f}x |", ""]
    print(lines[-2], flush=True)


def adaptive_part(args, lines):
    from xaicli.models.io import load_model

    sets = [("chest", SAMPLE / "models/chest/model.keras", SAMPLE / "chest/test"),
            ("faces", SAMPLE / "models/faces/model.keras", SAMPLE / "faces/test")]
    cases = [("rise", {"n_masks": 4000}, "n_masks"), ("lime", {"num_samples": 1000}, "num_samples")]
    lines += ["## 3. Adaptive sampling against the fixed defaults", "",
              "| set | method | fixed: evaluations / image | fixed: reliability (mean, min) | adaptive 0.95: evaluations / image (mean, max) | adaptive: reliability (mean, min) | fewer evaluations |",
              "|---|---|---|---|---|---|---|"]
    for set_name, model, folder in sets:
        loaded = load_model(model)
        srcs = sources(folder, args.images)
        for name, params, cap in cases:
            _, fixed, _ = run_methods(loaded, [(name, {**params, "reliability": 0})], srcs)
            _, adaptive, _ = run_methods(loaded, [(name, params)], srcs)
            rel_f = [m.extras["reliability"] for m in fixed.values()]
            rel_a = [m.extras["reliability"] for m in adaptive.values()]
            used = [m.extras["samples"] for m in adaptive.values()]
            lines.append(f"| {set_name} | {name} | {params[cap]} | {np.mean(rel_f):.3f}, {np.min(rel_f):.3f} | "
                         f"{np.mean(used):.0f}, {np.max(used):.0f} | {np.mean(rel_a):.3f}, {np.min(rel_a):.3f} | "
                         f"{params[cap] / np.mean(used):.2f}x |")
            print(lines[-1], flush=True)
    lines.append("")


FLOOR = """
import sys, time
t0 = time.perf_counter()
import numpy as np, tensorflow as tf, keras
model = keras.models.load_model(sys.argv[1], compile=False)
x = np.zeros((1, *model.inputs[0].shape[1:]), np.float32)
spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
@tf.function(input_signature=[spec])
def grad(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = tf.reduce_sum(model(x, training=False)[:, 0])
    return tape.gradient(s, x)
grad(x).numpy()
"""


def cold_part(args, lines):
    model = SAMPLE / "models/chest/model.keras"
    image = SAMPLE / "chest/test/nodule/test_0015.png"
    ours, floor = [], []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(args.rounds):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "xaicli", "explain", "--model", str(model), str(image), "-m", "gradcam",
                            "--quiet", "-o", f"{scratch}/o{k}"], check=True, capture_output=True, env=env)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", FLOOR, str(model)], check=True, capture_output=True, env=env)
            floor.append(time.perf_counter() - started)
    o, f = statistics.median(ours), statistics.median(floor)
    lines += ["## 4. Cold start: one image, `xaicli explain -m gradcam`, fresh processes", "",
              "| xaicli explain s | floor s (Python + TensorFlow import + model load + one compiled call) | ratio |",
              "|---|---|---|", f"| {o:.2f} | {f:.2f} | {o / f:.2f}x |", ""]
    print(lines[-2], flush=True)


MAIN_JOB = ["compare", "--methods", "gradcam,ig,lime,rise", str(SAMPLE / "chest/test"), "--model",
            str(SAMPLE / "models/chest/model.keras"), "--roi", str(SAMPLE / "chest/masks/lesion/test"), "--quiet"]
#: the fixed sample counts the main job used before adaptive sampling (RISE 4000 masks, LIME 1000 samples)
FIXED_COUNTS = ["-p", "rise.reliability=0", "-p", "lime.reliability=0"]


def main_job_part(args, lines):
    """The README's main job at the defaults against the same job at the fixed counts, wall clock of
    the whole command in fresh processes, with the mean reliability of the RISE and LIME maps."""
    import csv

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    seconds: dict[str, list[float]] = {"adaptive (defaults)": [], "fixed counts": []}
    reliability: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(max(1, args.main_rounds)):
            for label, extra in (("adaptive (defaults)", []), ("fixed counts", FIXED_COUNTS)):
                out = f"{scratch}/{k}-{len(extra)}"
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "xaicli", *MAIN_JOB, *extra, "-o", out], check=True,
                               capture_output=True, env=env)
                seconds[label].append(time.perf_counter() - started)
                with open(f"{out}/summary.csv", newline="") as handle:
                    rows = [r for r in csv.DictReader(handle) if r.get("Group", "all") == "all"]
                reliability[label] = {r["Method"]: float(r["Reliability"]) for r in rows
                                      if r["Method"] in ("rise", "lime") and r.get("Reliability")}
    a, f = (statistics.median(seconds[k]) for k in ("adaptive (defaults)", "fixed counts"))
    lines += ["## 5. The README's main job (60 chest images, Grad-CAM, IG, LIME, RISE), whole command", "",
              "| settings | seconds | RISE reliability (mean) | LIME reliability (mean) |", "|---|---|---|---|"]
    for label, value in (("adaptive (defaults)", a), ("fixed counts: " + " ".join(FIXED_COUNTS), f)):
        key = "fixed counts" if label.startswith("fixed") else label
        lines.append(f"| {label} | {value:.1f} | {reliability[key].get('rise', float('nan')):.3f} | "
                     f"{reliability[key].get('lime', float('nan')):.3f} |")
    lines += ["", f"Fixed counts / adaptive: {f / a:.2f}x", ""]
    print("\n".join(lines[-6:]), flush=True)


PARTS = {"precision": precision_part, "shared": shared_part, "adaptive": adaptive_part, "cold": cold_part,
         "main": main_job_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--main-rounds", type=int, default=1, help="rounds of part 5 (each runs the main job twice)")
    parser.add_argument("--output", default="bench-results/speed.md")
    args = parser.parse_args(argv)
    lines = [f"# Below the fp32 floor ({os.cpu_count()} CPU cores; median of {args.rounds} interleaved rounds)", "",
             f"Command: `python benchmarks/speed.py {' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    return run_parts(PARTS, args, lines)


if __name__ == "__main__":
    raise SystemExit(main())
