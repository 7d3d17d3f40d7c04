"""``curves.csv``: the mean deletion and insertion curve of each method over a run's images.

A faithfulness score is the area under a curve (Petsiuk et al., BMVC 2018, section 4.1): the
target score after each step of deleting (inserting) the pixels a map ranks first. The AUC in
``scores.csv`` says how fast the score falls; the curve says where -- a method that drops the score
in its first few steps and one that lowers it evenly can share an AUC. The sink keeps a running
sum and sum of squares per method, metric and step (memory does not grow with the images) and
writes one row per step: ``method, metric, step, fraction, mean, std, n``; ``fraction`` is the
share of the pixels changed after that step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.pipeline.record import Record

CURVE_COLUMNS = ["method", "metric", "step", "fraction", "mean", "std", "n"]


class CurveSink:
    """Averages each record's curves (``record.curves``: map key -> metric column -> curve)."""

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path, self.overwrite = Path(path), overwrite
        # (method, metric) -> [count, sum, sum of squares] over the images, per step
        self.sums: dict[tuple[str, str], list[Any]] = {}

    def add(self, record: Record) -> None:
        if not record.ok:
            return
        for key, curves in record.curves.items():
            for column, values in curves.items():
                values = np.asarray(values, np.float64)
                acc = self.sums.get((key, column))
                if acc is None or len(acc[1]) != len(values):  # a first curve (steps never change in a run)
                    acc = self.sums[(key, column)] = [0, np.zeros_like(values), np.zeros_like(values)]
                acc[0] += 1
                acc[1] += values
                acc[2] += values * values

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for (method, metric), (n, total, squares) in self.sums.items():
            steps = len(total) - 1
            mean = total / n
            var = np.maximum(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else np.zeros_like(mean)
            for step in range(steps + 1):
                rows.append({"method": method, "metric": metric, "step": step,
                             "fraction": step / steps if steps else 0.0, "mean": float(mean[step]),
                             "std": float(math.sqrt(var[step])), "n": n})
        return rows

    def close(self) -> dict[str, Any]:
        from xaicli.io import write_csv

        if not self.sums:
            return {}
        return {"curves": str(write_csv(self.path, self.rows(), columns=CURVE_COLUMNS, overwrite=self.overwrite))}

    def discard(self) -> None:
        self.sums = {}
