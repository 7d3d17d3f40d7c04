"""Peak memory of ``xaicli compare`` against the number of images: the pipeline streams, so 10x the
images must not mean 10x the memory. Copies the shipped chest test set N times into a scratch
folder, runs the real CLI in a child process per size, and reports each child's peak RSS.

    python benchmarks/memory.py --sizes 60,600 --methods gradcam
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copies(source: Path, target: Path, n: int) -> None:
    files = sorted(p for p in source.rglob("*.png"))
    for i in range(n):
        f = files[i % len(files)]
        rel = f.relative_to(source)
        dest = target / rel.parent / f"{rel.stem}-{i:05d}{rel.suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)


def peak_rss(command: list[str]) -> tuple[float, float]:
    """(peak resident memory in MiB, seconds) of a child process running ``command``."""
    script = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="60,600")
    parser.add_argument("--methods", default="gradcam")
    parser.add_argument("--model", default=str(ROOT / "sample_data/models/chest/model.keras"))
    parser.add_argument("--data", default=str(ROOT / "sample_data/chest/test"))
    args = parser.parse_args(argv)
    xaicli = shutil.which("xaicli") or "xaicli"
    results = []
    with tempfile.TemporaryDirectory(prefix="xaicli-memory-") as scratch:
        for n in (int(v) for v in args.sizes.split(",")):
            data = Path(scratch) / f"in-{n}"
            copies(Path(args.data), data, n)
            mib, seconds = peak_rss([xaicli, "compare", str(data), "--model", args.model, "--methods", args.methods,
                                     "-o", str(Path(scratch) / f"out-{n}")])
            results.append((n, mib, seconds))
            print(f"{n:6d} images: peak RSS {mib:8.1f} MiB, {seconds:6.1f} s", flush=True)
    (n0, m0, _), (n1, m1, _) = results[0], results[-1]
    print(f"peak memory {n1} vs {n0} images: {m1 / m0:.3f}x ({(m1 - m0) / m0:+.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
