"""The running summary of a run: per group and method, the mean, spread and count of every column,
with the model's quality on the group -- running sums only, so memory does not grow with the
number of images. ``summary.csv`` and ``--json`` are its rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xaicli.pipeline.groups import ALL


def _group_order(group: str) -> tuple[int, str]:
    """``all`` first, then the groups of each kind together, in the order of the kinds."""
    kind = group.split("=", 1)[0].split("<", 1)[0].split(">", 1)[0]
    order = {"all": 0, "true": 1, "predicted": 2, "outcome": 3, "error": 4}
    return order.get(kind, 5), group


@dataclass
class Summary:
    """Per (group, method) and column: count, sum and sum of squares of the finite values (NaN left
    out); per group: the model's quality (``quality_name``: Accuracy, MAE or Dice) and its size."""

    order: list[str] = field(default_factory=list)
    stats: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)
    images: dict[tuple[str, str], int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=lambda: [ALL])
    quality_name: str | None = None
    quality: dict[str, list[float]] = field(default_factory=dict)

    def add(self, method: str, values: dict[str, float], groups: Sequence[str] = (ALL,)) -> None:
        if method not in self.order:
            self.order.append(method)
        for group in groups:
            if group not in self.groups:
                self.groups.append(group)
            key = (group, method)
            self.images[key] = self.images.get(key, 0) + 1
            stats = self.stats.setdefault(key, {})
            for column, value in values.items():
                acc = stats.setdefault(column, [0, 0.0, 0.0])
                if value is not None and math.isfinite(value):
                    acc[0] += 1
                    acc[1] += value
                    acc[2] += value * value

    def add_quality(self, value: float, groups: Sequence[str]) -> None:
        """One image's model quality, counted once per group (not once per method)."""
        for group in groups:
            acc = self.quality.setdefault(group, [0, 0.0])
            if math.isfinite(value):
                acc[0] += 1
                acc[1] += value

    def mean_std_n(self, method: str, column: str, group: str = ALL) -> tuple[float, float, int]:
        n, total, squares = self.stats.get((group, method), {}).get(column, [0, 0.0, 0.0])
        if n == 0:
            return math.nan, math.nan, 0
        mean = total / n
        var = max(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
        return mean, math.sqrt(var), int(n)

    def group_quality(self, group: str = ALL) -> tuple[float, int]:
        n, total = self.quality.get(group, [0, 0.0])
        return (total / n if n else math.nan), int(n)

    def rows(self, columns: Sequence[str], normalization: str | dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
        """One row per group and method, the group ``all`` first, in the age study's shape:
        ``Method, <means...>, Images, Group, [Accuracy|MAE|Dice], Normalization, <col>_std, <col>_n``.
        ``normalization``: the mode of every method, or a dict method -> mode."""
        header = ["Method", *columns, "Images", "Group"] + ([self.quality_name] if self.quality_name else [])
        header += ["Normalization"] + [f"{c}_{s}" for c in columns for s in ("std", "n")]
        methods = [m for m in self.order if any(self.images.get((g, m)) for g in self.groups)] or self.order
        rows = []
        for group in sorted(self.groups, key=_group_order):
            for method in methods:
                if group != ALL and not self.images.get((group, method)):
                    continue
                row: dict[str, Any] = {"Method": method}
                for column in columns:
                    mean, std, n = self.mean_std_n(method, column, group)
                    row[column] = mean
                    row[f"{column}_std"] = std
                    row[f"{column}_n"] = n
                row["Images"] = self.images.get((group, method), 0)
                row["Group"] = group
                if self.quality_name:
                    row[self.quality_name] = self.group_quality(group)[0]
                row["Normalization"] = normalization.get(method, "") if isinstance(normalization, dict) else normalization
                rows.append(row)
        return rows, header
