"""Scoring maps: the chosen metric plugins, the regions of interest, each method's map normalisation.

:class:`Scorer` scores one record's maps with a context (region, the image as the model sees it, a
model function for the faithfulness curves, the randomised model's map) and a ``random`` reference
map per image, scored by the same rules: the chance level every method should beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xaicli import plugins
from xaicli.api import NoRegion, RegionSource
from xaicli.errors import UsageError, XaicliError
from xaicli.normalization import NORMALIZATIONS, check_mode
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
    if region:  # after the age study's columns and the others, so their order stays
        names.append("lift")
    return names


@dataclass
class Region:
    """A named region of interest of a run: ``--roi lesion=DIR`` -> ``Region("lesion", source)``."""

    name: str
    source: RegionSource

    @property
    def label(self) -> str:
        return self.name or self.source.label


def describe_regions(regions: Sequence[Region]) -> str | None:
    if not regions:
        return None
    return ", ".join((f"{r.name}=" if r.name else "") + r.source.describe() for r in regions)


def scoring_mode(display: str) -> str:
    """The mass a metric counts for a map shown as ``display`` (signed maps: the positive part)."""
    return display if display in NORMALIZATIONS else "positive"


class Scorer:
    """The metrics of one run. ``params``: metric name -> constructor keyword arguments.

    ``regions``: the run's regions of interest; region metrics get one column per region (the bare
    age-study names, ``RoiRatio``, ``BackgroundRatio``, ``PointingHit``, for a single unnamed
    region; ``lesionRatio``, ``tagLift``, ... for named ones). ``normalization``: the mass every
    map's metrics count; None (default) takes each method's own mode (its declared display:
    ``abs`` for IG, ``positive`` for Grad-CAM, ...), a text applies to all, a dict method -> mode
    overrides some. ``available``: the context keys this run can supply (``image``, ``model_fn``,
    ``random_saliency``); a metric that needs anything else is a usage error up front. Dataset
    metrics (``consistency``) are listed in ``set_metrics``.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        roi: RegionSource | Sequence[Region] | None = None,
        normalization: str | dict[str, str] | None = None,
        params: dict[str, dict[str, Any]] | None = None,
        available: Sequence[str] = (),
    ) -> None:
        if isinstance(roi, RegionSource):
            roi = [Region("", roi)]
        self.regions: list[Region] = list(roi or [])
        self.roi = self.regions[0].source if self.regions else None
        if isinstance(normalization, str):
            check_mode(normalization)
        for mode in (normalization or {}).values() if isinstance(normalization, dict) else ():
            check_mode(mode)
        self.normalization = normalization
        self.names, self.params = list(names), dict(params or {})
        for name in self.params:
            if name not in self.names:
                plugins.load("metrics", name)  # a misspelt metric name: unknown, with the closest match
        self._made: dict[str, tuple[list[Any], list[Any]]] = {}
        metrics, self.set_metrics = self._metrics("positive")
        have = set(available) | ({"region"} if self.regions else set())
        for metric in metrics:
            missing = [key for key in metric.requires if key not in have and key != "cell"]
            if missing:
                raise UsageError(f"metric {metric.name!r} needs {' and '.join(NEEDS.get(k, k) for k in missing)}",
                                 parameter="metrics")
        self.metrics = metrics
        self.layout = [(m, r) for m in metrics for r in (self.regions if "region" in m.requires else [None])]
        self.columns = [self._column(m, r) for m, r in self.layout]
        self.directions = {c: m.higher_is_better for (m, _), c in zip(self.layout, self.columns, strict=True)}
        if len(set(self.columns)) != len(self.columns):
            raise UsageError(f"two metrics share a column name: {', '.join(self.columns)}", parameter="metrics")

    def _metrics(self, mode: str) -> tuple[list[Any], list[Any]]:
        """The metrics counting mass by ``mode`` (made once per mode a run uses)."""
        if mode not in self._made:
            made = [plugins.make("metrics", n, self.params.get(n, {}), normalization=mode) for n in self.names]
            self._made[mode] = ([m for m in made if m.per_image], [m for m in made if not m.per_image])
        return self._made[mode]

    def _column(self, metric: Any, region: Region | None) -> str:
        if region is None:
            return metric.column("Roi")
        if len(self.regions) == 1 and not region.name:
            return metric.column(region.label)
        return metric.column(region.label) if metric.name in ("roi-ratio", "lift") else f"{region.label}{metric.label}"

    def mode(self, method: str, display: str = "positive") -> str:
        """The normalisation the maps of ``method`` are scored with."""
        if isinstance(self.normalization, str):
            return self.normalization
        chosen = (self.normalization or {}).get(method)
        return chosen or scoring_mode(display)

    def set_metrics_for(self, mode: str) -> list[Any]:
        return self._metrics(mode)[1]

    @property
    def needs(self) -> set[str]:
        return {key for m in self.metrics for key in m.requires}

    def region(self, record: Record) -> tuple[dict[str, np.ndarray | None], str, str | None]:
        """The regions for a record's image: ``({name: mask or None}, status, failure)``.

        ``status`` goes into the ``region`` column: ``ok``; ``empty region`` (a mask with no pixel
        set, e.g. the lesion mask of a normal image: reported, its region metrics NaN, not a
        failure); or why there is none (no mask file, no face found: reported, NaN); with several
        regions, ``name: status`` for each. ``failure`` is set when a region's input is broken (an
        unreadable mask file): the image is still scored (those metrics NaN) and the caller lists
        it as failed. A region that cannot fit the image at all is a usage error and stops the run.
        """
        masks: dict[str, np.ndarray | None] = {}
        statuses, failures = [], []
        for region in self.regions:
            mask, status, failure = self._one(region.source, record)
            masks[region.label] = mask
            statuses.append(status if len(self.regions) == 1 else f"{region.label}: {status}")
            if failure is not None:
                failures.append(failure if len(self.regions) == 1 else f"{region.label}: {failure}")
        return masks, "; ".join(statuses), "; ".join(failures) or None

    @staticmethod
    def _one(source: RegionSource, record: Record) -> tuple[np.ndarray | None, str, str | None]:
        where = record.source
        try:
            mask = source.region(where.path, record.image, where.root)
        except NoRegion as exc:
            return None, strip_path(str(exc), where.label), None
        except UsageError:
            raise
        except XaicliError as exc:
            return None, REGION_UNREADABLE, f"its region: {exc}"
        if not np.any(mask):
            return None, EMPTY_REGION, None
        return mask, REGION_OK, None

    @property
    def has_curves(self) -> bool:
        """Whether a metric of this run scores the area of a curve (``score_curve``: deletion, insertion)."""
        return any(hasattr(m, "score_curve") for m in self.metrics)

    def score(self, saliency: np.ndarray, context: dict[str, Any], mode: str = "positive",
              known: dict[str, float] | None = None, curves: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """Every column for one map; ``context["regions"]`` holds each region's mask (or None);
        ``known``: columns already computed (batched, see :meth:`score_record`). ``curves``, if
        given, receives the curve of each column a metric scores as its area."""
        metrics = {m.name: m for m in self._metrics(mode)[0]}
        regions = context.get("regions") or {}
        values: dict[str, float] = {}
        for (metric, region), column in zip(self.layout, self.columns, strict=True):
            if known and column in known:
                values[column] = known[column]
                continue
            ctx = context if region is None else {**context, "region": regions.get(region.label)}
            if any(ctx.get(key) is None for key in metric.requires if key != "cell"):
                values[column] = math.nan  # e.g. no region for this image: reported, not scored
                continue
            made = metrics[metric.name]
            if curves is not None and hasattr(made, "score_curve"):
                value, curves[column] = made.score_curve(saliency, **ctx)
                values[column] = float(value)
            else:
                values[column] = float(made.score(saliency, **ctx))
        return values

    def _batched(self, maps: list[tuple[str, np.ndarray, str]], context: dict[str, Any],
                 curves: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
        """The columns of metrics that score several maps in one model call (deletion, insertion):
        per map key, for every map of the image at once (grouped by normalisation mode); the curves
        of those that score a curve's area go into ``curves`` (map key -> column -> curve)."""
        known: dict[str, dict[str, float]] = {key: {} for key, _, _ in maps}
        for (metric, region), column in zip(self.layout, self.columns, strict=True):
            if region is not None or not hasattr(metric, "score_many"):
                continue
            if any(context.get(key) is None for key in metric.requires):
                continue
            for mode in sorted({m for _, _, m in maps}):
                chosen = [(key, saliency) for key, saliency, m in maps if m == mode]
                instance = next(m for m in self._metrics(mode)[0] if m.name == metric.name)
                if hasattr(instance, "curves_many"):
                    made = instance.curves_many([s for _, s in chosen], **context)
                    values = [value for value, _ in made]
                    for (key, _), (_, curve) in zip(chosen, made, strict=True):
                        curves.setdefault(key, {})[column] = curve
                else:
                    values = instance.score_many([s for _, s in chosen], **context)
                for (key, _), value in zip(chosen, values, strict=True):
                    known[key][column] = float(value)
        return known

    def score_record(self, record: Record, *, model_fn: Callable | None = None, random_map: np.ndarray | None = None,
                     regions: dict[str, np.ndarray | None] | None = None) -> None:
        """Score each map of ``record`` (and the ``random`` reference map, if given) into
        ``record.scores``; each map with its own normalisation and native resolution (``cell``)."""
        context: dict[str, Any] = {"regions": regions or {}, "image": record.view, "model_fn": model_fn}
        maps = [(m.key, m.map, self.mode(m.method, m.display)) for m in record.maps]
        if random_map is not None:
            maps.append((RANDOM_METHOD, random_map, "positive"))
        known = self._batched(maps, context, record.curves)
        for m in record.maps:
            ctx = {**context, "cell": m.cell}
            if m.key in record.randomized:
                ctx["random_saliency"] = at_shape(record.randomized[m.key], m.map.shape)
            record.scores[m.key] = self.score(m.map, ctx, self.mode(m.method, m.display), known[m.key],
                                              curves=record.curves.setdefault(m.key, {}))
        if random_map is not None:  # the chance reference, scored by the same rules: the coarsest
            # tolerance any method got for this image, and no randomised-model map (those columns NaN)
            cell = max((m.cell for m in record.maps), default=0.0)
            record.scores[RANDOM_METHOD] = self.score(random_map, {**context, "cell": cell}, known=known[RANDOM_METHOD],
                                                      curves=record.curves.setdefault(RANDOM_METHOD, {}))


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
