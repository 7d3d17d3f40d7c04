"""``score``: metrics for maps written by ``xaicli explain``; the scoring core ``compare`` reuses.

:class:`Scorer` holds the chosen metric plugins, the region source and the map normalisation; it
scores one map with a context (region, image, model function, randomised map) and feeds a
:class:`Summary` that keeps, per method and column, only running sums: memory does not grow with
the number of images. Rows go to the CSV as they are made (:class:`CsvStream`).

:func:`score_run` reads a run's ``maps.csv`` (columns ``image, method, target, prediction, map,
...``; ``map`` relative to the CSV's folder; NPY, or NPZ holding ``map``), scores every row and
writes ``scores.csv`` (one row per image x method) and ``summary.csv`` (one row per method: the
means in the age study's shape, then ``<column>_std`` and ``<column>_n``).
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli import plugins
from xaicli.errors import InputError, UsageError, XaicliError
from xaicli.metrics import NORMALIZATIONS, MapMetric
from xaicli.rois import NoRegion, RegionSource

#: metric order in tables: the age study's four first
METRIC_ORDER = ("roi-ratio", "background-ratio", "entropy", "pointing-hit", "deletion", "insertion",
                "randomization-spearman", "randomization-ssim")
SECONDS = "SecondsPerImage"
#: values of the ``region`` column besides a NoRegion reason
REGION_OK = "ok"
EMPTY_REGION = "empty region"
REGION_UNREADABLE = "unreadable region"


def strip_path(text: str, path: Path) -> str:
    """An error message without its leading ``path: `` (the listing names the file already)."""
    for prefix in (f"{path}: ", f"{path.as_posix()}: "):
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


def method_key(method: str, layer: str | None, maps_of_method: int) -> str:
    """``gradcam`` for a method's only (or combined) map; ``gradcam@conv2`` for one of several layers."""
    if maps_of_method <= 1 or not layer or layer == "combined":
        return method
    return f"{method}@{layer}"


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
        if normalization not in NORMALIZATIONS:
            raise UsageError(f"unknown --normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
        self.roi = roi
        self.normalization = normalization
        self.region_label = roi.label if roi is not None else "Roi"
        have = set(available) | ({"region"} if roi is not None else set())
        self.metrics: list[MapMetric] = []
        self.set_metrics: list[MapMetric] = []
        params = params or {}
        for name in params:
            if name not in names:
                plugins.load("metrics", name)  # a misspelt metric name: unknown, with the closest match
        for name in names:
            cls = plugins.load("metrics", name)
            metric = cls(normalization=normalization, **params.get(name, {}))
            if not getattr(metric, "per_image", True):
                self.set_metrics.append(metric)
                continue
            missing = [key for key in getattr(metric, "requires", ()) if key not in have]
            if missing:
                what = {"region": "a region of interest (--roi)", "model_fn": "the model (--model)",
                        "image": "the images", "random_saliency": "the randomisation check (--sanity)"}
                raise UsageError(f"metric {name!r} needs {' and '.join(what.get(k, k) for k in missing)}")
            self.metrics.append(metric)
        self.columns = [self.column(m) for m in self.metrics]
        if len(set(self.columns)) != len(self.columns):
            raise UsageError(f"two metrics share a column name: {', '.join(self.columns)}")

    def column(self, metric: MapMetric) -> str:
        if hasattr(metric, "column"):
            return metric.column(self.region_label)
        return getattr(metric, "label", "") or metric.name

    @property
    def needs(self) -> set[str]:
        return {key for m in self.metrics for key in getattr(m, "requires", ())}

    def region(self, path: Path, image: np.ndarray, root: Path | None) -> tuple[np.ndarray | None, str, str | None]:
        """The region for an image: ``(mask or None, status, failure)``.

        ``status`` goes into the ``region`` column: ``ok``; ``empty region`` (a mask with no pixel
        set, e.g. the lesion mask of a normal image: reported, its region metrics NaN, not a
        failure); or why there is none (no mask file, no face found: reported, NaN). ``failure``
        is set when the region's input is broken (an unreadable mask file): the image is still
        scored (region metrics NaN) and the caller lists it as failed. A ``--roi`` value that
        cannot fit the image at all is a usage error and stops the run.
        """
        if self.roi is None:
            return None, "", None
        path = Path(path)
        try:
            mask = self.roi.region(path, image, root)
        except NoRegion as exc:
            return None, strip_path(str(exc), path), None
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
            if any(context.get(key) is None for key in getattr(metric, "requires", ())):
                values[column] = math.nan  # e.g. no region for this image: reported, not scored
                continue
            values[column] = float(metric.score(saliency, **context))
        return values


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
        for method in self.order:
            row: dict[str, Any] = {"Method": method}
            for column in columns:
                mean, std, n = self.mean_std_n(method, column)
                row[column] = mean
                row[f"{column}_std"] = std
                row[f"{column}_n"] = n
            row["Images"] = self.images[method]
            row["Normalization"] = normalization
            rows.append(row)
        return rows, header


def format_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{float(value):.6g}"
    if isinstance(value, np.integer):
        return int(value)
    return value


class CsvStream:
    """A CSV written row by row into an atomic temporary file (renamed into place on success)."""

    def __init__(self, stack: contextlib.ExitStack, path: Path, columns: Sequence[str], *, overwrite: bool) -> None:
        from xaicli.io import atomic_output

        self.path = Path(path)
        self.columns = list(columns)
        handle = stack.enter_context(atomic_output(path, overwrite=overwrite, mode="w"))
        self.writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
        self.writer.writeheader()
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: format_value(v) for k, v in row.items()})
        self.count += 1


def check_outputs(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse before any work when an output exists (a long run must not fail at its end)."""
    from xaicli.errors import OutputError

    for path in paths:
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: exists already (pass --overwrite to replace it)")


def model_function(runner: Any, info: Any, target: Any, row: int) -> Callable[[np.ndarray], np.ndarray]:
    """``f(batch of images in [0, 1] at the model's size) -> target scores`` for image ``row``."""
    from xaicli.preprocessing import PREPROCESSORS

    transform = PREPROCESSORS[info.preprocessing]
    single = target.subset([row]) if hasattr(target, "subset") else target

    def f(batch: np.ndarray) -> np.ndarray:
        x = transform(np.asarray(batch, dtype=np.float32)).astype(np.float32)
        rows = np.zeros(len(x), dtype=np.int64) if single is not target else np.full(len(x), row)
        return runner.scores(x, single, rows)

    return f


# ------------------------------------------------------------------------------ score a run


@dataclass
class ScoreResult:
    rows: int
    columns: list[str]
    summary: list[dict[str, Any]]
    summary_columns: list[str]
    outputs: dict[str, str]
    failures: list[tuple[str, str]]
    no_region: list[tuple[str, str]]
    consistency: list[dict[str, Any]] = field(default_factory=list)
    normalization: str = "positive"
    region: str | None = None
    warnings: list[str] = field(default_factory=list)


def find_maps_csv(run: str | Path) -> Path:
    path = Path(run)
    if path.is_dir():
        path = path / "maps.csv"
    if not path.is_file():
        raise InputError(f"{path}: no such maps index (run `xaicli explain` first, or name its maps.csv)")
    return path


def read_maps_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the maps index ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the maps index has no rows")
    missing = [c for c in ("image", "method", "map") if c not in rows[0]]
    if missing:
        raise InputError(f"{path}: the maps index lacks the column(s) {', '.join(missing)}")
    return rows


def load_map(path: Path) -> np.ndarray:
    """A saliency map from NPY, or NPZ (key ``map``, else its only array)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such map file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the map ({exc.strerror or exc})") from None
    if not head.startswith((b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")):
        what = "is empty" if not head else "is not a NumPy .npy or .npz file (wrong leading bytes)"
        raise InputError(f"{path}: the map {what}")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():  # object arrays: not a map xaicli wrote, never unpickled
            raise InputError(f"{path}: the map holds Python objects, not numbers") from None
        raise InputError(f"{path}: corrupt or truncated map ({' '.join(str(exc).split())[:160]})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: corrupt or truncated map ({' '.join(str(exc).split())[:160]})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            if "map" in keys:
                array = data["map"]
            elif len(keys) == 1:
                array = data[keys[0]]
            else:
                raise InputError(f"{path}: NPZ holds {', '.join(keys)}; expected one array or 'map'")
    else:
        array = data
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise InputError(f"{path}: a map must be 2-D (height, width), not {array.shape}")
    return array


def _resolve(value: str, base: Path) -> Path:
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return base / path


_CLASS_RE = re.compile(r"^class (\d+)")
_OUTPUT_RE = re.compile(r"^output (\d+)")


def target_spec(label: str | None, task: str) -> str | None:
    """The ``--target`` value that re-creates a target from its ``maps.csv`` label."""
    text = (label or "").strip()
    if task == "classification":
        match = _CLASS_RE.match(text)
        return match.group(1) if match else None
    if task == "regression":
        match = _OUTPUT_RE.match(text)
        return f"output:{match.group(1)}" if match else None
    return None


def score_run(
    run: str | Path,
    output_dir: str | Path | None = None,
    *,
    metrics: Sequence[str] | None = None,
    roi: RegionSource | None = None,
    normalization: str = "positive",
    loaded: Any = None,
    params: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreResult:
    """Score every map of an ``explain`` run; see the module docstring for what is written."""
    from xaicli.io import write_csv

    index = find_maps_csv(run)
    base = index.parent
    out = Path(output_dir) if output_dir is not None else base
    rows = read_maps_csv(index)
    names = parse_list(metrics) or default_metrics(region=roi is not None, model=loaded is not None)
    available = ["image"] + (["model_fn"] if loaded is not None else [])
    scorer = Scorer(names, roi=roi, normalization=normalization, params=params, available=available)
    scores_path, summary_path = out / "scores.csv", out / "summary.csv"
    consistency_path = out / "consistency.csv"
    planned = [scores_path, summary_path] + ([consistency_path] if scorer.set_metrics else [])
    check_outputs(planned, overwrite)

    runner = info = None
    if "model_fn" in scorer.needs:
        from xaicli.runner import ModelRunner

        info = loaded.info
        runner = ModelRunner(loaded.model, batch_size=batch_size)
    accumulators = {}
    columns = ["image", "method", "target", "prediction", "truth", "region", "normalization",
               *scorer.columns, "seconds"]
    summary = Summary()
    failures: list[tuple[str, str]] = []
    no_region: list[tuple[str, str]] = []
    cache: dict[str, Any] = {}
    per_method: dict[tuple[str, str], int] = {}
    for row in rows:
        per_method[(row["image"], row["method"])] = per_method.get((row["image"], row["method"]), 0) + 1
    truth_of = _truths(rows, base, loaded)
    with contextlib.ExitStack() as stack:
        stream = CsvStream(stack, scores_path, columns, overwrite=overwrite)
        for number, row in enumerate(rows, start=1):
            image_path = _resolve(row["image"], base)
            method = method_key(row["method"], row.get("layer"), per_method[(row["image"], row["method"])])
            try:
                saliency = load_map(_resolve(row["map"], base))
                if cache.get("path") != image_path:  # maps.csv lists an image's methods together
                    cache = _image_context(scorer, image_path, info, runner, row, no_region, failures)
                context = dict(cache["context"])
                if runner is not None:
                    context["model_fn"] = _row_model_fn(runner, info, cache, row)
                values = scorer.score(saliency, context)
            except XaicliError as exc:
                failures.append((f"{row['image']} [{method}]", str(exc)))
                continue
            seconds = _float(row.get("seconds"))
            summary.add(method, {**values, SECONDS: seconds})
            stream.write({"image": row["image"], "method": method, "target": row.get("target", ""),
                          "prediction": row.get("prediction", ""), "truth": truth_of(row),
                          "region": cache["status"], "normalization": normalization, **values,
                          "seconds": seconds})
            for metric in scorer.set_metrics:
                acc = accumulators.setdefault(method, metric.accumulator())
                acc.add(saliency, truth_of(row) or None, predicted_class(row.get("prediction")))
            if progress is not None:
                progress(number, len(rows))
    summary_rows, summary_columns = summary.rows([*scorer.columns, SECONDS], normalization)
    outputs = {"scores": str(scores_path)}
    outputs["summary"] = str(write_csv(summary_path, summary_rows, columns=summary_columns, overwrite=overwrite))
    consistency_rows = [r for method, acc in accumulators.items() for r in acc.result().rows(method, normalization)]
    if scorer.set_metrics:
        outputs["consistency"] = str(write_csv(consistency_path, consistency_rows,
                                               columns=["method", "class", "consistency", "n", "normalization"],
                                               overwrite=overwrite))
    warnings = []
    if scorer.set_metrics and not any(truth_of(row) for row in rows):
        warnings.append("consistency needs each image's true class, and this run has none (no truth column in "
                        "maps.csv, and the images are not in folders named after the predicted classes): "
                        "its values are NaN")
    return ScoreResult(stream.count, columns, summary_rows, summary_columns, outputs, failures, no_region,
                       consistency_rows, normalization, roi.describe() if roi is not None else None, warnings)


_CONFIDENCE_RE = re.compile(r"^(.*?) \([0-9.eE+-]+\)$")


def predicted_class(label: str | None) -> str | None:
    """The class name in an ``explain`` prediction label: ``nodule (0.912)`` -> ``nodule``."""
    if not label:
        return None
    match = _CONFIDENCE_RE.match(label.strip())
    return match.group(1) if match else label.strip()


def _truths(rows: list[dict[str, str]], base: Path, loaded: Any) -> Callable[[dict[str, str]], str]:
    """A row's true class: its ``truth`` column, else the image's folder when the folder is named
    after a class (folder-per-class layout: the model's classes, or the classes predicted in the run)."""
    classes = set(getattr(getattr(loaded, "info", None), "class_names", None) or [])
    if not classes:
        classes = {c for c in (predicted_class(r.get("prediction")) for r in rows) if c}

    def truth(row: dict[str, str]) -> str:
        given = (row.get("truth") or "").strip()
        if given:
            return given
        folder = _resolve(row["image"], base).parent.name
        return folder if folder in classes else ""

    return truth


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _image_context(scorer: Scorer, path: Path, info: Any, runner: Any, row: dict[str, str],
                   no_region: list[tuple[str, str]], failures: list[tuple[str, str]]) -> dict[str, Any]:
    from xaicli.io import read_image

    needs = scorer.needs
    cache: dict[str, Any] = {"path": path, "context": {}, "status": ""}
    if not ({"region", "image", "model_fn"} & needs) and scorer.roi is None:
        return cache
    image = read_image(path)
    if scorer.roi is not None:
        region, status, failure = scorer.region(path, image, None)
        cache["status"] = status
        if failure is not None:
            failures.append((str(path), failure))
        elif region is None:
            no_region.append((str(path), status))
        cache["context"]["region"] = region
    if runner is not None:
        from xaicli.preprocessing import display_image

        shown = display_image(image, info)
        cache["context"]["image"] = shown
        cache["outputs"] = runner.predict(PREPROCESS(info)(shown[None]))
    return cache


def PREPROCESS(info: Any) -> Callable[[np.ndarray], np.ndarray]:
    from xaicli.preprocessing import PREPROCESSORS

    return PREPROCESSORS[info.preprocessing]


def _row_model_fn(runner: Any, info: Any, cache: dict[str, Any], row: dict[str, str]) -> Callable:
    from xaicli.targets import resolve_target

    spec = target_spec(row.get("target"), info.task)
    target = resolve_target(cache["outputs"], info, spec)
    return model_function(runner, info, target, 0)
