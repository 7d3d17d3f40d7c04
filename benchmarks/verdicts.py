"""Can the maps be trusted? The figures behind the verdicts, measured on the shipped sets at the
defaults (``nox -s bench-verdicts``; part of ``nox -s bench``):

1. **region hits** -- PointingHit (and Lift) of Grad-CAM, IG, LIME and RISE on the shipped chest
   set against its lesion masks, at the default settings (what the README's main job reports);
2. **seed to seed** -- for every sampled method and shipped model, the Pearson correlation of the
   maps of two seeds (per image, then the mean and the minimum), next to the split-half
   reliability each map reported and the samples it took: a reliability estimate earns its place
   only when it predicts the seed-to-seed agreement.

    python benchmarks/verdicts.py [--images 20] [--output bench-results/verdicts.md]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from parts import run_parts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SETS = {
    "chest": (SAMPLE / "models/chest/model.keras", SAMPLE / "chest/test"),
    "faces": (SAMPLE / "models/faces/model.keras", SAMPLE / "faces/test"),
    "defects": (SAMPLE / "models/defects/model.keras", SAMPLE / "defects/test"),
}
SAMPLED = ["rise", "lime", "smoothgrad"]


def every_nth(folder: Path, n: int) -> list[Path]:
    from xaicli.io import discover

    found = [s.path for s in discover([folder])]
    step = max(1, len(found) // n) if n else 1
    return found[::step][:n] if n else found


def region_part(args, lines: list[str]) -> None:
    import xaicli

    comparison = xaicli.compare(str(SETS["chest"][0]), str(SETS["chest"][1]), methods="gradcam,ig,lime,rise",
                                roi=str(SAMPLE / "chest/masks/lesion/test"))
    rows = [row for row in comparison.summary if row.get("Group", "all") == "all"]
    columns = [c for c in ("PointingHit", "RoiLift", "RoiRatio", "Reliability", "Samples", "SecondsPerImage")
               if any(c in row for row in rows)]
    lines += ["## 1. The shipped chest set against its lesion masks, default settings (all 60 test images)", "",
              "Command: `xaicli compare --methods gradcam,ig,lime,rise sample_data/chest/test --model "
              "sample_data/models/chest/model.keras --roi sample_data/chest/masks/lesion/test` (the README's main job)", "",
              "| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        cells = [row.get(c) for c in columns]
        lines.append(f"| {row['Method']} | " + " | ".join("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                                                     for v in cells) + " |")
    lines.append("")
    print("\n".join(lines[-len(rows) - 3:]), flush=True)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def seed_part(args, lines: list[str]) -> None:
    import xaicli
    from xaicli.pipeline.verdicts import RELIABILITY_WARNING

    lines += [f"## 2. Seed to seed at the defaults ({args.images} images per set)", "",
              "| set | method | seed-to-seed r (mean, min) | reported reliability (mean, min) | samples (mean, max) | "
              "images flagged unreliable |", "|---|---|---|---|---|---|"]
    for set_name, (model_path, folder) in SETS.items():
        model = xaicli.load_model(model_path)
        images = [str(p) for p in every_nth(folder, args.images)]
        for method in SAMPLED:
            one = xaicli.explain(model, images, methods=[(method, {"seed": 0})])
            two = xaicli.explain(model, images, methods=[(method, {"seed": 1})])
            r = np.array([pearson(a[method], b[method]) for a, b in zip(one, two, strict=True)])
            reliability = np.array([a.maps[method].extras["reliability"] for a in one], float)
            samples = np.array([a.maps[method].extras["samples"] for a in one], float)
            flagged = int(np.sum(reliability < RELIABILITY_WARNING))
            lines.append(f"| {set_name} | {method} | {np.nanmean(r):.3f}, {np.nanmin(r):.3f} | "
                         f"{np.nanmean(reliability):.3f}, {np.nanmin(reliability):.3f} | "
                         f"{samples.mean():.0f}, {samples.max():.0f} | {flagged} of {len(images)} |")
            print(lines[-1], flush=True)
    lines.append("")


PARTS = {"regions": region_part, "seeds": seed_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--output", default="bench-results/verdicts.md")
    args = parser.parse_args(argv)
    lines = ["# Can the maps be trusted? (the shipped sets, default settings)", "",
             f"Command: `python benchmarks/verdicts.py {' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    return run_parts(PARTS, args, lines)


if __name__ == "__main__":
    raise SystemExit(main())
