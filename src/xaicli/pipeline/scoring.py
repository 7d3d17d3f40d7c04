"""Scoring maps: the chosen metric plugins, the region of interest, the map normalisation, and the
running summary per method (:class:`Summary`) -- memory does not grow with the number of images.

:class:`Scorer` scores one record's maps with a context (region, the image as the model sees it, a
model function for the faithfulness curves, the randomised model's map) and a ``random`` reference
map per image, scored by the same rules: the chance level every method should beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli import plugins
from xaicli.api import NoRegion, RegionSource
from xaicli.errors import UsageError, XaicliError
from xaicli.normalization import check_mode
from xaicli.pipeline.record import Record

#: metric order in tables: the age study's four first
METRIC_ORDER = ("roi-ratio", "background-ratio", "entropy", "pointing-hit", "deletion", "insertion",
                "randomization-spearman", "randomization-ssim")
SECONDS = "SecondsPerImage"
RANDOM_METHOD = "random"
#: values of the ``region`` column besides a NoRegion reason
REGION_OK = "ok"
EMPTY_REGION = "empty region"
REGION_UNREADABLE = "unreadable region"
#: what each context key is, for the message that refuses a metric whose needs a run cannot meet
NEEDS = {"region": "a region of interest (roi)", "model_fn": "the model (model)", "image": "the images",
         "random_saliency": "the randomisation check (sanity)"}


def strip_path(text: str, path: Any) -> str:
    """An error message without its leading ``path: `` (the listing names the file already)."""
    for prefix in (f"{path}: ", f"{Path(str(path)).as_posix()}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def parse_list(value: str | Sequence[str] | None) -> list[str]:
    """``a,b`` / ``["a", "b,c"]`` -> ``["a", "b", "c"]`` (order kept, duplicates dropped)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def default_metrics(*, region: bool, model: bool, randomized: bool = False) -> list[str]:
    names = ["entropy"]
    if region:
        names = ["roi-ratio", "background-ratio", "entropy", "pointing-hit"]
    if model:
        names += ["deletion", "insertion"]
    if randomized:
        names += ["randomization-spearman", "randomization-ssim"]
    return names


class Scorer:
    """The metrics of one run. ``params``: metric name -> constructor keyword arguments.

    ``available``: the context keys this run can supply (``region``, ``image``, ``model_fn``,
    ``random_saliency``); a metric asked for that needs anything else is a usage error up front.
    Dataset metrics (``consistency``) are accepted and listed in ``set_metrics``.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        roi: RegionSource | None = None,
        normalization: str = "positive",
        params: dict[str, dict[str, Any]] | None = None,
        available: Sequence[str] = (),
    ) -> None:
        check_mode(normalization)
        self.roi = roi
        self.normalization = normalization
        self.region_label = roi.label if roi is not None else "Roi"
        have = set(available) | ({"region"} if roi is not None else set())
        self.metrics: list[Any] = []
        self.set_metrics: list[Any] = []
        params = params or {}
        for name in params:
            if name not in names:
                plugins.load("metrics", name)  # a misspelt metric name: unknown, with the closest match
        for name in names:
            metric = plugins.make("metrics", name, params.get(name, {}), normalization=normalization)
            if not metric.per_image:
                self.set_metrics.append(metric)
                continue
            missing = [key for key in metric.requires if key not in have]
            if missing:
                raise UsageError(f"metric {name!r} needs {' and '.join(NEEDS.get(k, k) for k in missing)}",
                                 parameter="metrics")
            self.metrics.append(metric)
        self.columns = [m.column(self.region_label) for m in self.metrics]
        if len(set(self.columns)) != len(self.columns):
            raise UsageError(f"two metrics share a column name: {', '.join(self.columns)}", parameter="metrics")

    @property
    def needs(self) -> set[str]:
        return {key for m in self.metrics for key in m.requires}

    def region(self, record: Record) -> tuple[np.ndarray | None, str, str | None]:
        """The region for a record's image: ``(mask or None, status, failure)``.

        ``status`` goes into the ``region`` column: ``ok``; ``empty region`` (a mask with no pixel
        set, e.g. the lesion mask of a normal image: reported, its region metrics NaN, not a
        failure); or why there is none (no mask file, no face found: reported, NaN). ``failure``
        is set when the region's input is broken (an unreadable mask file): the image is still
        scored (region metrics NaN) and the caller lists it as failed. A ``roi`` that cannot fit
        the image at all is a usage error and stops the run.
        """
        if self.roi is None:
            return None, "", None
        source = record.source
        try:
            mask = self.roi.region(source.path, record.image, source.root)
        except NoRegion as exc:
            return None, strip_path(str(exc), source.label), None
        except UsageError:
            raise
        except XaicliError as exc:
            return None, REGION_UNREADABLE, f"its region: {exc}"
        if not np.any(mask):
            return None, EMPTY_REGION, None
        return mask, REGION_OK, None

    def score(self, saliency: np.ndarray, context: dict[str, Any]) -> dict[str, float]:
        values: dict[str, float] = {}
        for metric, column in zip(self.metrics, self.columns, strict=True):
            if any(context.get(key) is None for key in metric.requires):
                values[column] = math.nan  # e.g. no region for this image: reported, not scored
                continue
            values[column] = float(metric.score(saliency, **context))
        return values

    def score_record(self, record: Record, *, model_fn: Callable | None = None, random_map: np.ndarray | None = None,
                     region: np.ndarray | None = None) -> None:
        """Score each map of ``record`` (and the ``random`` reference map, if given) into ``record.scores``."""
        context: dict[str, Any] = {"region": region, "image": record.view, "model_fn": model_fn}
        for m in record.maps:
            ctx = context
            if m.key in record.randomized:
                ctx = {**context, "random_saliency": at_shape(record.randomized[m.key], m.map.shape)}
            record.scores[m.key] = self.score(m.map, ctx)
        if random_map is not None:  # no randomised-model map: those columns NaN
            record.scores[RANDOM_METHOD] = self.score(random_map, context)


def at_shape(saliency: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from xaicli.io import resize

    if saliency.shape == tuple(shape):
        return saliency
    return resize(saliency.astype(np.float32), tuple(shape[:2]), interpolation="linear")


def random_map(seed: int, index: int, shape: tuple[int, int]) -> np.ndarray:
    """The chance reference: uniform noise, seeded per image (the same whatever the batching)."""
    return np.random.default_rng([seed, index]).random(shape).astype(np.float32)


def model_function(runner: Any, info: Any, target: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``f(batch of images in [0, 1] at the model's size) -> target scores`` of a one-row target,
    on the model's own outputs (the faithfulness curves score what the model outputs)."""
    from xaicli.preprocessing import PREPROCESSORS

    transform = PREPROCESSORS[info.preprocessing]

    def f(batch: np.ndarray) -> np.ndarray:
        x = transform(np.asarray(batch, dtype=np.float32)).astype(np.float32)
        return runner.scores(x, target, np.zeros(len(x), dtype=np.int64), probability=True)

    return f


@dataclass
class Summary:
    """Per method and column: count, sum and sum of squares of the finite values (NaN left out)."""

    order: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)

    def add(self, method: str, values: dict[str, float]) -> None:
        if method not in self.stats:
            self.order.append(method)
            self.stats[method] = {}
            self.images[method] = 0
        self.images[method] += 1
        for column, value in values.items():
            acc = self.stats[method].setdefault(column, [0, 0.0, 0.0])
            if value is not None and math.isfinite(value):
                acc[0] += 1
                acc[1] += value
                acc[2] += value * value

    def mean_std_n(self, method: str, column: str) -> tuple[float, float, int]:
        n, total, squares = self.stats.get(method, {}).get(column, [0, 0.0, 0.0])
        if n == 0:
            return math.nan, math.nan, 0
        mean = total / n
        var = max(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
        return mean, math.sqrt(var), int(n)

    def rows(self, columns: Sequence[str], normalization: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Age-study shape: ``Method, <means...>, Images, Normalization, <col>_std, <col>_n ...``."""
        header = ["Method", *columns, "Images", "Normalization"]
        header += [f"{c}_{s}" for c in columns for s in ("std", "n")]
        rows = []
        for method in [m for m in self.order if self.images.get(m)] or self.order:
            row: dict[str, Any] = {"Method": method}
            for column in columns:
                mean, std, n = self.mean_std_n(method, column)
                row[column] = mean
                row[f"{column}_std"] = std
                row[f"{column}_n"] = n
            row["Images"] = self.images.get(method, 0)
            row["Normalization"] = normalization
            rows.append(row)
        return rows, header
