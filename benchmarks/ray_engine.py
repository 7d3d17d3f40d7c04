"""Images per second of ``compare`` on the local engine and on a local Ray cluster with 1 and 2
workers, in one run, on the same images and settings; and where each image's time goes.

Copies the shipped chest test set up to ``--images`` images, then runs the real composition
(:func:`xaicli.pipeline.compare.compare`, what ``xaicli compare`` runs) three times: the local
engine, then ``RayEngine(workers=1)`` and ``RayEngine(workers=2)`` on one Ray cluster started for the
benchmark (loopback only, ``--cpus`` CPUs). For each: the wall time, the time to the first finished
image (the workers' start: Python, TensorFlow, the model, tracing), and the steady rate after it.
The local run is also taken apart per stage (reading, the model's prediction, each method, scoring,
and the driver's sinks and journal), which is what docs/scale-out.md extrapolates from.

    python benchmarks/ray_engine.py --images 32 --batch-size 8 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from memory import copies  # the same copies of the shipped set as the memory benchmark

ROOT = Path(__file__).resolve().parents[1]
TIMES: dict[str, float] = defaultdict(float)
#: --quick: lighter settings than the papers' (the defaults), so that a shared 2-core machine
#: finishes the three runs in minutes
METHOD_PARAMS = {"ig": {"steps": 16}, "lime": {"num_samples": 200}, "rise": {"n_masks": 500}}


def timed(owner: object, name: str, label: str) -> None:
    """Wrap ``owner.name`` so that the seconds spent in it add up under ``label``."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def instrument() -> None:
    """The stages and sinks of this process, timed (the local engine runs them all here)."""
    from xaicli.pipeline import compare, journal, run, sinks

    timed(run, "read", "read")
    timed(run, "predict", "model prediction")
    timed(run, "explain", "methods")
    make_score = compare.score_stage

    def score_stage(*args, **kwargs):
        stage = make_score(*args, **kwargs)

        def scored(batch, pipeline):
            started = time.perf_counter()
            stage(batch, pipeline)
            TIMES["scoring"] += time.perf_counter() - started

        return scored

    compare.score_stage = score_stage
    for cls, label in ((sinks.GridSink, "driver: grid"), (sinks.MapSink, "driver: map files"),
                       (sinks.ScoreSink, "driver: scores and summaries"),
                       (sinks.PredictionSink, "driver: predictions")):
        timed(cls, "add", label)
        timed(cls, "close", label)
    timed(journal.RunJournal, "add", "driver: journal")


def run(label: str, model, images: list[str], out: Path, args, engine) -> dict:
    from xaicli.pipeline.compare import compare
    from xaicli.rois import parse_roi

    arrivals: list[float] = []
    methods = [(m, dict(METHOD_PARAMS.get(m, {})) if args.quick else {}) for m in args.methods.split(",")]
    metric_params = {"deletion": {"steps": 10}, "insertion": {"steps": 10}} if args.quick else None
    started = time.perf_counter()
    result = compare(model, images, methods, out, roi=parse_roi(args.roi), batch_size=args.batch_size,
                     metric_params=metric_params, save_maps=True, engine=engine,
                     progress=lambda done, total: arrivals.append(time.perf_counter()))
    wall = time.perf_counter() - started
    per_image = arrivals  # one progress call per finished image
    first = per_image[0] - started
    steady = (len(per_image) - args.batch_size) / (per_image[-1] - per_image[args.batch_size - 1]) \
        if len(per_image) > args.batch_size and per_image[-1] > per_image[args.batch_size - 1] else float("nan")
    row = {"engine": label, "images": result.images, "wall_s": wall, "images_per_s": result.images / wall,
           "first_image_s": first, "steady_images_per_s": steady}
    print(f"{label:14s} {result.images:4d} images  {wall:7.1f} s  {row['images_per_s']:6.3f} images/s  "
          f"first image after {first:6.1f} s  steady {steady:6.3f} images/s", flush=True)
    return row


def method_seconds(out: Path) -> dict[str, float]:
    import csv

    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["seconds"] not in ("", "nan"):
            seconds[row["method"]].append(float(row["seconds"]))
    return {method: statistics.mean(values) for method, values in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--methods", default="gradcam,ig,lime,rise")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="IG 16 steps, LIME 200 samples, RISE 500 masks, "
                        "deletion/insertion 10 steps (default: the methods' and metrics' defaults)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--model", default=str(ROOT / "sample_data/models/chest/model.keras"))
    parser.add_argument("--data", default=str(ROOT / "sample_data/chest/test"))
    parser.add_argument("--roi", default=str(ROOT / "sample_data/chest/masks/lesion/test"))
    parser.add_argument("--results", default=str(ROOT / "bench-results" / "ray-engine.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the cluster listens on 127.0.0.1 only

    import xaicli
    from xaicli.pipeline.ray_engine import RayEngine, import_ray

    model = xaicli.load_model(args.model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="xaicli-bench-ray-") as scratch:
        copies(Path(args.data), Path(scratch) / "in", args.images)
        images = sorted(str(p) for p in (Path(scratch) / "in").rglob("*.png"))
        print(f"compare --methods {args.methods}{' (quick settings)' if args.quick else ''} on {len(images)} chest "
              f"images (64x64), batch size {args.batch_size}, {os.cpu_count()} CPUs", flush=True)
        instrument()
        rows.append(run("local", model, images, Path(scratch) / "local", args, "local"))
        stages = {label: seconds / len(images) for label, seconds in sorted(TIMES.items())}
        methods = method_seconds(Path(scratch) / "local")
        ray = import_ray(local=True)
        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 object_store_memory=500 * 1024**2)
        cluster = time.perf_counter() - started
        print(f"Ray cluster started in {cluster:.1f} s", flush=True)
        try:
            for workers in (1, 2):
                rows.append(run(f"ray, {workers} worker{'s' * (workers > 1)}", model, images,
                                Path(scratch) / f"ray-{workers}", args, RayEngine(workers=workers)))
        finally:
            ray.shutdown()
    print("\nper image, local engine (seconds):")
    for label, seconds in stages.items():
        print(f"  {label:30s} {seconds:8.4f}")
    for method, seconds in methods.items():
        print(f"  method {method:23s} {seconds:8.4f}")
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps({"settings": vars(args), "cpus": os.cpu_count(), "ray_start_s": cluster,
                                              "runs": rows, "stages_per_image_s": stages,
                                              "methods_per_image_s": methods}, indent=2) + "\n")
    print(f"\nwritten: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
