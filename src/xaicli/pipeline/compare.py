"""``compare``: explain a folder with several methods and score every map, in one streaming pass.

The pipeline's stages (read, predict/target, explain) and two more -- the randomisation sanity
check and scoring -- feed the sinks: the comparison grid, ``predictions.csv`` (the age study's
``# | predicted | true | abs error``), ``scores.csv`` (image x method, the ``random`` reference
map included), ``summary.csv`` (the means per method) and ``consistency.csv`` (the Grad-CAM
consistency metric per class, classification with known truth), ``curves.csv`` (the mean deletion
and insertion curves per method), with ``save_maps`` the maps as ``explain`` writes them under
``OUT/maps/``, and with ``report`` the per-image pictures of ``xaicli report`` (``OUT/report/``).
One model runner serves the explanations and the faithfulness curves; a second one, only with ``sanity``, runs the weight-randomised copy.

The randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018)
explains each image a second time with a copy of the model whose weights are re-initialised, for
the *same* target (fixed from the trained model's prediction), and scores the similarity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from xaicli.api import Explanation, LoadedModel, RegionSource
from xaicli.errors import InputError, UsageError
from xaicli.pipeline.curves import CurveSink
from xaicli.pipeline.groups import QUALITY, Grouping
from xaicli.pipeline.run import Batch, Method, Pipeline, make_methods
from xaicli.pipeline.scoring import (
    RANDOM_METHOD,
    SECONDS,
    Region,
    Scorer,
    default_metrics,
    describe_regions,
    model_function,
    parse_list,
    random_map,
    strip_path,
)
from xaicli.pipeline.sinks import (
    GridSink,
    MapSink,
    PredictionSink,
    ScoreSink,
    close_all,
    discard_all,
)
from xaicli.pipeline.verdicts import Gate, run_gates


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
    normalization: dict[str, str] = field(default_factory=dict)  # method -> the mode its maps were scored with
    region: str | None = None
    truth_source: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # per image x method, with keep_rows
    warnings: list[dict[str, Any]] = field(default_factory=list)
    gate_failures: list[str] = field(default_factory=list)
    directions: dict[str, bool | None] = field(default_factory=dict)  # column -> higher is better
    predictions: list[dict[str, Any]] = field(default_factory=list)  # the first rows of predictions.csv
    quality_name: str | None = None  # Accuracy, MAE or Dice
    quality: float = float("nan")  # on every explained image with a known truth


def model_title(loaded: LoadedModel) -> str:
    """The model as a grid page names it: its file (with its folder) and what it is."""
    info = loaded.info
    name = f"{loaded.path.parent.name}/{loaded.path.name}" if loaded.path is not None else "model in memory"
    return f"model {name}: {info.architecture or 'foreign model'}, {info.task}"


def randomized_copy(model: Any, seed: int = 0) -> Any:
    """The same architecture with every weight drawn afresh from its initializer (Adebayo et al.)."""
    import keras

    keras.utils.set_random_seed(int(seed))
    return keras.models.clone_model(model)


def sanity_stage(pipeline: Pipeline, methods: list[Method], seed: int) -> Callable[[Batch, Pipeline], None]:
    """Explain each batch again with a weight-randomised copy of the model, for the same targets."""
    from xaicli.runner import ModelRunner

    runner = pipeline.runner
    randomized = ModelRunner(randomized_copy(pipeline.loaded.model, seed), batch_size=runner.batch_size,
                             preprocess=runner.preprocess, score=runner.score_kind, cam_layer=runner.cam_layer,
                             input_shape=runner.input_shape)

    def stage(batch: Batch, _: Pipeline) -> None:
        if batch.x is None:
            return
        for method in methods:
            maps = Explanation.of(method.explainer.explain(randomized, batch.x, batch.target)).maps
            for j, record in enumerate(batch.good):
                record.randomized[method.name] = maps[j]

    return stage


def score_stage(scorer: Scorer, *, random_baseline: bool, seed: int) -> Callable[[Batch, Pipeline], None]:
    """Each good record's regions, then every map (and the random reference map) scored."""

    def stage(batch: Batch, pipeline: Pipeline) -> None:
        for record in batch.good:
            regions, record.region_status, record.region_failure = scorer.region(record)
            record.regions = regions  # the grid and the report outline them
            model_fn = None
            if "model_fn" in scorer.needs:
                model_fn = model_function(pipeline.runner, pipeline.info, record.target)
            shape = record.maps[0].map.shape if record.maps else record.image.shape[:2]
            noise = random_map(seed, record.index, shape) if random_baseline else None
            scorer.score_record(record, model_fn=model_fn, random_map=noise, regions=regions)

    return stage


def compare_stages(loaded: LoadedModel, methods: Sequence[tuple[str, dict[str, Any]] | str], scorer: Scorer, *,
                   target: str | None, score: str, batch_size: int, frame: int | str | None, sanity: bool,
                   random_baseline: bool, seed: int, max_size: int = 1024,
                   precision: str = "fp32") -> tuple[Pipeline, list[Callable[[Batch, Pipeline], None]]]:
    """The per-image stages of ``compare`` (built in this process, and once on each worker of a cluster)."""
    pipeline = Pipeline(loaded, make_methods(methods), target=target, score=score, batch_size=batch_size, frame=frame,
                        max_size=max_size, precision=precision)
    pipeline.trace(probability="model_fn" in scorer.needs)
    stages = [sanity_stage(pipeline, make_methods(methods), seed)] if sanity else []
    stages.append(score_stage(scorer, random_baseline=random_baseline, seed=seed))
    return pipeline, stages


def compare(
    loaded: LoadedModel,
    inputs: Sequence[str | os.PathLike[str]],
    methods: Sequence[tuple[str, dict[str, Any]] | str],
    output_dir: str | os.PathLike[str],
    *,
    roi: RegionSource | Sequence[Region] | None = None,
    metrics: Sequence[str] | str | None = None,
    normalization: str | dict[str, str] | None = None,
    group_by: Sequence[str] | None = None,
    fail_if: Sequence[str] | None = None,
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
    frame: int | str | None = None,
    max_size: int = 1024,
    precision: str = "fp32",
    keep_rows: bool = False,
    keep_predictions: int = 20,
    report: bool = False,
    progress: Callable[[int, int], None] | None = None,
    engine: Any = "local",
    address: str | None = None,
    resume: bool = False,
) -> CompareResult:
    """Explain, score and draw every image under ``inputs`` (see the module docstring); ``engine``
    (``local``, ``ray``, :mod:`xaicli.pipeline.engines`) runs the per-image stages, ``resume``
    continues an interrupted run in ``output_dir`` (:mod:`xaicli.pipeline.journal`); with
    ``report``, also keep the per-image pictures ``xaicli report`` shows (``OUT/report/``)."""
    from xaicli import datasets
    from xaicli.io import check_outputs, discover
    from xaicli.io.grid import GridWriter
    from xaicli.pipeline.engines import Work, engine_for, records
    from xaicli.pipeline.journal import RunJournal, model_key

    info = loaded.info
    chosen = make_methods(methods)
    if not chosen:
        raise UsageError("name at least one method (methods gradcam,ig,lime,rise)", parameter="methods")
    out = Path(output_dir)
    sources = discover(inputs, frames=frame)
    if not sources:
        raise InputError(f"no images found in {', '.join(str(i) for i in inputs)}")
    truths, truth_source = datasets.truths(sources, info, labels=labels, label_column=label_column, pattern=pattern)

    names = parse_list(metrics)
    if not names:
        names = default_metrics(region=bool(roi), model=True, randomized=sanity)
        if info.task == "classification" and truth_source is not None:
            names.append("consistency")
    available = ["image", "model_fn"] + (["random_saliency"] if sanity else [])
    scorer = Scorer(names, roi=roi, normalization=normalization, params=metric_params, available=available)
    if scorer.set_metrics and info.task != "classification":
        raise UsageError(f"metric {scorer.set_metrics[0].name!r} needs a classification model", parameter="metrics")
    method_names = [m.name for m in chosen]
    grouping = Grouping.make(group_by, info, truths)
    gates = [Gate.parse(text) for text in fail_if or ()]
    gate_columns = [*scorer.columns, SECONDS, "Reliability", "Samples", "Images"] + ([QUALITY[info.task]] if grouping.kinds
                                                                          or truth_source else [])
    for gate in gates:
        gate.check(method_names + [RANDOM_METHOD], gate_columns)
    modes = {m.name: scorer.mode(m.name, m.explainer.display) for m in chosen}
    runner = engine_for(engine, address)
    pairs = [(m.name, m.params) for m in chosen]
    # what the records depend on (the batch size and the grouping do not: a resumed run may change them)
    journal = RunJournal(out, "compare", sources, [model_key(loaded), pairs, names, normalization, metric_params,
                                                   target, score, sanity, random_baseline, seed, frame, max_size,
                                                   precision, truths, describe_regions(scorer.regions)],
                         resume=resume, overwrite=overwrite)
    overwrite = overwrite or journal.resuming  # this run's own outputs, made again from the same records
    grid = GridWriter(out, method_names, tile=tile, rows_per_page=rows_per_page, colormap=colormap,
                      alpha=alpha, mode=modes, overwrite=overwrite, title=model_title(loaded))
    planned = [out / "scores.csv", out / "summary.csv", out / "predictions.csv"]
    planned += [out / "consistency.csv"] if scorer.set_metrics else []
    planned += [grid.page_path(n) for n in range(1, -(-len(sources) // rows_per_page) + 1)]
    planned += [out / "maps" / "maps.csv"] if save_maps else []
    planned += sorted(out.glob("grid-correct-*.png")) + sorted(out.glob("grid-incorrect-*.png"))
    planned += [out / "curves.csv"] if scorer.has_curves else []
    check_outputs(planned, overwrite)

    work = Work(loaded, partial(compare_stages, methods=pairs, scorer=scorer, target=target, score=score,
                                batch_size=batch_size, frame=frame, max_size=max_size, precision=precision,
                                sanity=sanity, random_baseline=random_baseline, seed=seed))
    work.built()  # method parameters and layer names checked before anything is written
    order = method_names + ([RANDOM_METHOD] if random_baseline else [])
    scores = ScoreSink(out, scorer, info, order=order, overwrite=overwrite, keep_rows=keep_rows, grouping=grouping)
    predictions = PredictionSink(out / "predictions.csv", info, layout="study", has_truth=True, overwrite=overwrite,
                                 keep_rows=keep_predictions)
    sinks: list[Any] = [predictions, scores, GridSink(grid, info), CurveSink(out / "curves.csv", overwrite=overwrite)]
    if info.task == "classification" and truth_source is not None:
        # the fifth study's view: the maps of the correct and of the incorrect predictions apart
        for outcome, wanted in (("correct", True), ("incorrect", False)):
            pages = GridWriter(out, method_names, tile=tile, rows_per_page=rows_per_page, colormap=colormap,
                               alpha=alpha, mode=modes, overwrite=overwrite, stem=f"grid-{outcome}",
                               title=model_title(loaded))
            sinks.append(GridSink(pages, info, keep=lambda r, wanted=wanted: (r.truth is not None
                                                                             and (r.prediction.index == r.truth) == wanted)))
    if save_maps:
        sinks.append(MapSink(out / "maps", colormap=colormap, alpha=alpha, overwrite=overwrite))
    if report:  # the per-image pictures of `xaicli report` (OUT/report/), kept as the records pass
        from xaicli.report.keep import ViewSink

        sinks.append(ViewSink(out / "report", info, colormap=colormap, alpha=alpha, modes=modes, class_means=scores,
                              overwrite=overwrite))
    failures: list[tuple[str, str]] = []
    region_failures: list[tuple[str, str]] = []
    no_region: list[tuple[str, str]] = []
    done = 0
    try:
        for record in records(runner, work, sources, truths, journal):
            done += 1
            if not record.ok:
                failures.append((record.label, strip_path(record.error or "failed", record.label)))
            else:
                if record.region_failure is not None:  # scored without its region, listed as failed
                    region_failures.append((record.label, record.region_failure))
                elif scorer.roi is not None and record.region_status != "ok":
                    no_region.append((record.label, record.region_status))
                for sink in sinks:
                    sink.add(record)
            if progress is not None:
                progress(done, len(sources))
        outputs = close_all(sinks)
    except BaseException as error:
        discard_all(sinks)
        journal.interrupted(error)
        raise
    journal.finish()
    summary_rows, summary_columns = scores.rows()
    return CompareResult(len(sources) - len(failures), method_names, summary_rows, summary_columns, outputs,
                         failures + region_failures, no_region, scores.consistency_rows(), modes,
                         describe_regions(scorer.regions), truth_source, scores.kept, scores.warnings(),
                         run_gates(gates, summary_rows), scorer.directions, predictions.rows, scores.summary.quality_name,
                         scores.summary.group_quality()[0])

