"""``compare``: explain a folder with several methods and score every map, in one streaming pass.

For each image (read, predicted and explained in batches by
:func:`xaicli.engine.explain.explain_files`), every method's map is scored with the chosen metrics
(:class:`xaicli.engine.score.Scorer`) against the region of interest, the image goes into the
comparison grid (:class:`xaicli.grid.GridWriter`) and its rows into the CSVs, and then it is
dropped: memory holds one batch of images, one grid page and running sums, however big the
folder. Outputs in ``OUT``:

* ``grid-001.png`` ... -- rows = images (original with prediction and truth), one overlay per method;
* ``scores.csv`` -- one row per image x method (and the ``random`` reference map);
* ``summary.csv`` -- one row per method in the age study's shape: ``Method, FaceRatio|RoiRatio,
  BackgroundRatio, Entropy, PointingHit, Deletion, Insertion, SecondsPerImage, Images,
  Normalization``, then ``<column>_std`` and ``<column>_n`` (NaN values, e.g. images without a
  region, are left out of the means and counted out of ``n``);
* ``predictions.csv`` -- ``file, predicted, true, abs_error`` (regression) or ``file, predicted,
  confidence, true, correct`` (classification);
* ``consistency.csv`` -- the Grad-CAM consistency metric per class and overall, per method
  (classification with known truth);
* ``maps/`` with ``maps.csv`` (as ``xaicli explain`` writes them) when ``save_maps`` is set.

A ``random`` row (a uniform-noise map per image, seeded) is scored like the methods: the chance
level every method should beat (e.g. a deletion AUC below the random map's).

The randomisation sanity check (``sanity=True``, Adebayo et al. 2018) explains each image a second
time with a copy of the model whose weights are re-initialised, for the *same* target (fixed from
the trained model's prediction), and scores the similarity of the two maps.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.contracts import LoadedModel
from xaicli.engine.score import (
    SECONDS,
    CsvStream,
    Scorer,
    Summary,
    check_outputs,
    default_metrics,
    method_key,
    model_function,
    parse_list,
    strip_path,
)
from xaicli.errors import InputError, UsageError
from xaicli.rois import RegionSource

RANDOM_METHOD = "random"


@dataclass
class CompareResult:
    images: int
    methods: list[str]
    summary: list[dict[str, Any]]
    summary_columns: list[str]
    outputs: dict[str, Any]
    failures: list[tuple[str, str]] = field(default_factory=list)
    no_region: list[tuple[str, str]] = field(default_factory=list)
    consistency: list[dict[str, Any]] = field(default_factory=list)
    normalization: str = "positive"
    region: str | None = None
    truth_source: str | None = None


def randomized_copy(model: Any, seed: int = 0) -> Any:
    """The same architecture with every weight drawn afresh from its initializer (Adebayo et al.)."""
    import keras

    keras.utils.set_random_seed(int(seed))
    clone = keras.models.clone_model(model)
    return clone


def _predicted(output: np.ndarray, info: Any) -> tuple[Any, str, float]:
    """(predicted value: class index / float / None, its label, confidence)."""
    from xaicli.engine.predict import class_probabilities

    out = np.asarray(output, dtype=np.float64)
    if info.task == "classification":
        probs = class_probabilities(out.reshape(1, -1))[0]
        index = int(np.argmax(probs))
        names = list(info.class_names)
        return index, names[index] if index < len(names) else f"class {index}", float(probs[index])
    if info.task == "regression":
        value = float(out.ravel()[0])
        return value, f"{value:.4g}", math.nan
    return None, "", math.nan


def _truth_label(truth: Any, info: Any) -> str:
    if truth is None:
        return ""
    if info.task == "classification":
        names = list(info.class_names)
        return names[truth] if truth < len(names) else f"class {truth}"
    if info.task == "regression":
        return f"{float(truth):g}"
    return str(truth)


def compare(
    loaded: LoadedModel,
    inputs: Sequence[str | os.PathLike[str]],
    methods: Sequence[tuple[str, dict[str, Any]]],
    output_dir: str | os.PathLike[str],
    *,
    roi: RegionSource | None = None,
    metrics: Sequence[str] | None = None,
    normalization: str = "positive",
    metric_params: dict[str, dict[str, Any]] | None = None,
    target: str | None = None,
    score: str = "probability",
    batch_size: int = 16,
    sanity: bool = False,
    random_baseline: bool = True,
    labels: str | os.PathLike[str] | None = None,
    label_column: str | None = None,
    pattern: str | None = None,
    rows_per_page: int = 8,
    tile: int = 160,
    colormap: str = "jet",
    alpha: float = 0.45,
    save_maps: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> CompareResult:
    """Explain, score and draw every image under ``inputs`` (see the module docstring)."""
    from xaicli.engine import data
    from xaicli.engine.explain import (
        explain_files,
        make_explainer,
        output_names,
        write_index,
        write_result,
    )
    from xaicli.grid import GridWriter
    from xaicli.io import write_csv

    info = loaded.info
    if not methods:
        raise UsageError("name at least one method (--methods gradcam,ig,lime,rise)")
    method_names = [name for name, _ in methods]
    if len(set(method_names)) != len(method_names):
        raise UsageError(f"a method is named twice in {', '.join(method_names)}")
    out = Path(output_dir)
    pairs = data.expand_inputs(list(inputs))
    if not pairs:
        raise InputError(f"no images found in {', '.join(str(i) for i in inputs)}")
    files = [f for f, _ in pairs]
    roots = [r for _, r in pairs]
    truths, truth_source = data.truths(files, info, roots=roots, labels=labels, label_column=label_column, pattern=pattern)

    names = parse_list(metrics)
    if not names:
        names = default_metrics(region=roi is not None, model=True, randomized=sanity)
        if info.task == "classification" and truth_source is not None:
            names.append("consistency")
    available = ["image", "model_fn"] + (["random_saliency"] if sanity else [])
    scorer = Scorer(names, roi=roi, normalization=normalization, params=metric_params, available=available)

    if scorer.set_metrics and info.task != "classification":
        raise UsageError(f"metric {scorer.set_metrics[0].name!r} needs a classification model")
    grid = GridWriter(out, method_names, tile=tile, rows_per_page=rows_per_page, colormap=colormap,
                      alpha=alpha, mode=normalization, overwrite=overwrite)
    paths = {"scores": out / "scores.csv", "summary": out / "summary.csv", "predictions": out / "predictions.csv"}
    if scorer.set_metrics:
        paths["consistency"] = out / "consistency.csv"
    pages_needed = -(-len(files) // rows_per_page)
    planned = [*paths.values(), *(grid.page_path(n) for n in range(1, pages_needed + 1))]
    planned += [out / "maps" / "maps.csv"] if save_maps else []
    check_outputs(planned, overwrite)

    runner = random_runner = None
    random_explainers: list[Any] = []
    if "model_fn" in scorer.needs or sanity:
        from xaicli.runner import ModelRunner

        runner = ModelRunner(loaded.model, batch_size=batch_size)
    if sanity:
        from xaicli.runner import ModelRunner

        random_runner = ModelRunner(randomized_copy(loaded.model, seed), batch_size=batch_size, score=score)
        for name, params in methods:
            explainer = make_explainer(name, params)
            if hasattr(explainer, "layer") and getattr(explainer, "layer", None) is None and info.cam_layer:
                explainer.layer = info.cam_layer
            random_explainers.append(explainer)

    if info.task == "regression":
        prediction_columns = ["file", "predicted", "true", "abs_error"]
    elif info.task == "classification":
        prediction_columns = ["file", "predicted", "confidence", "true", "correct"]
    else:
        prediction_columns = ["file", "predicted", "true"]
    score_columns = ["image", "method", "target", "prediction", "truth", "region", "normalization",
                     *scorer.columns, "seconds"]
    summary = Summary()
    accumulators: dict[str, Any] = {}
    failures: list[tuple[str, str]] = []
    no_region: list[tuple[str, str]] = []
    region_failures: list[tuple[str, str]] = []
    map_rows: list[dict[str, Any]] = []
    total = len(files) * len(methods)
    done = 0
    order = list(method_names) + ([RANDOM_METHOD] if random_baseline else [])
    for key in order:  # summary rows in the order asked, the random reference last
        summary.order.append(key)
        summary.stats[key] = {}
        summary.images[key] = 0
    display_names = output_names(files, inputs)

    with contextlib.ExitStack() as stack:
        stack.callback(grid.discard)  # a failed run leaves no page behind (no-op after close)
        scores = CsvStream(stack, paths["scores"], score_columns, overwrite=overwrite)
        predictions = CsvStream(stack, paths["predictions"], prediction_columns, overwrite=overwrite)
        results = explain_files(loaded, files, methods, target=target, batch_size=batch_size, names=display_names,
                                score=score)
        for index, result in enumerate(results):
            done += len(methods)
            if not result.ok:
                failures.append((str(result.file), strip_path(result.error or "failed", Path(result.file))))
                if progress is not None:
                    progress(done, total)
                continue
            truth = truths[index]
            predicted, predicted_label, confidence = _predicted(result.prediction, info)
            truth_label = _truth_label(truth, info)
            row = {"file": str(result.file), "predicted": predicted_label, "true": truth_label}
            if info.task == "classification":
                row.update(confidence=confidence, correct="" if truth is None else int(predicted == truth))
            elif info.task == "regression":
                row.update(predicted=predicted, true="" if truth is None else float(truth),
                           abs_error="" if truth is None else abs(predicted - float(truth)))
            else:
                row.update(predicted=result.prediction_label)
            predictions.write(row)

            region, status, problem = scorer.region(result.file, result.image, roots[index])
            if problem is not None:  # e.g. an unreadable mask: scored without it, listed as failed
                region_failures.append((str(result.file), problem))
            elif scorer.roi is not None and region is None:
                no_region.append((str(result.file), status))
            context: dict[str, Any] = {"region": region, "image": result.display}
            target_obj = None
            if runner is not None:
                from xaicli.targets import resolve_target

                target_obj = resolve_target(np.asarray(result.prediction)[None], info, target)
                context["model_fn"] = model_function(runner, info, target_obj, 0)
            random_maps: dict[str, np.ndarray] = {}
            if sanity:
                from xaicli.preprocessing import preprocess

                x = preprocess([result.image], info)
                for (name, _), explainer in zip(methods, random_explainers, strict=True):
                    random_maps[name] = np.asarray(explainer.explain(random_runner, x, target_obj), np.float32)[0]

            counts: dict[str, int] = {}
            for m in result.maps:
                counts[m.method] = counts.get(m.method, 0) + 1
            grid_maps: dict[str, np.ndarray] = {}
            base = {"image": str(result.file), "target": result.target, "prediction": result.prediction_label,
                    "truth": truth_label, "region": status, "normalization": normalization}
            for m in result.maps:
                key = method_key(m.method, m.layer, counts[m.method])
                if key == m.method:
                    grid_maps[m.method] = m.map
                ctx = dict(context)
                if sanity and key == m.method and m.method in random_maps:  # per-layer rows: no pair
                    ctx["random_saliency"] = _at(random_maps[m.method], m.map.shape)
                values = scorer.score(m.map, ctx)
                summary.add(key, {**values, SECONDS: m.seconds})
                scores.write({**base, "method": key, **values, "seconds": m.seconds})
                for metric in scorer.set_metrics:
                    acc = accumulators.setdefault(key, metric.accumulator())
                    acc.add(m.map, truth_label or None, predicted_label if info.task == "classification" else None)
            if random_baseline:
                noise = np.random.default_rng([seed, index]).random(result.image.shape[:2]).astype(np.float32)
                values = scorer.score(noise, context)  # no randomised-model map: those columns NaN
                summary.add(RANDOM_METHOD, {**values, SECONDS: math.nan})
                scores.write({**base, "method": RANDOM_METHOD, **values, "seconds": math.nan})

            caption = [_short_name(result.name), f"pred: {predicted_label or result.prediction_label}"]
            if truth_label:
                caption.append(f"true: {truth_label}")
            grid.add(result.image, grid_maps, caption)
            if save_maps:
                map_rows.extend(write_result(result, out / "maps", colormap=colormap, alpha=alpha, overwrite=overwrite))
            if progress is not None:
                progress(done, total)
        pages = grid.close()

    summary.order = [k for k in summary.order if summary.images.get(k)] or summary.order
    summary_rows, summary_columns = summary.rows([*scorer.columns, SECONDS], normalization)
    outputs: dict[str, Any] = {"grid": [str(p) for p in pages], "scores": str(paths["scores"]),
                               "predictions": str(paths["predictions"])}
    outputs["summary"] = str(write_csv(paths["summary"], summary_rows, columns=summary_columns, overwrite=overwrite))
    consistency_rows = [r for key, acc in accumulators.items() for r in acc.result().rows(key, normalization)]
    if scorer.set_metrics:
        outputs["consistency"] = str(write_csv(paths["consistency"], consistency_rows,
                                               columns=["method", "class", "consistency", "n", "normalization"],
                                               overwrite=overwrite))
    if save_maps and map_rows:
        outputs["maps"] = str(write_index(map_rows, out / "maps", overwrite=overwrite))
    images = len(files) - len(failures)
    return CompareResult(images, method_names, summary_rows, summary_columns, outputs, failures + region_failures, no_region,
                         consistency_rows, normalization, roi.describe() if roi is not None else None, truth_source)


def _at(saliency: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from xaicli.io import resize

    if saliency.shape == tuple(shape):
        return saliency
    return resize(saliency.astype(np.float32), tuple(shape[:2]), interpolation="linear")


def _short_name(name: str) -> str:
    return Path(name).name
