"""The Python API a notebook or a script calls: ``xaicli.load_model``, ``xaicli.explain``,
``xaicli.compare``, ``xaicli.overlay`` (documented with runnable examples in docs/python-api.md).

Inputs are paths, folders, or NumPy arrays: an image H x W or H x W x C (C = 1, 3 or 4; uint8,
uint16, bool, or float in [0, 1]), or a batch N x H x W x C. The functions run the same pipeline as
the commands, so a map from ``xaicli.explain`` is the map ``xaicli explain`` writes, and
``xaicli.overlay`` draws exactly the overlay PNG it writes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import LoadedModel
from xaicli.errors import InputError, UsageError
from xaicli.io import Source

Inputs = Any  # a path, a folder, an array, or a list of those


def load_model(path: str | os.PathLike[str], **options: Any) -> LoadedModel:
    """A model file (``.keras`` from ``xaicli train``, any ``.keras``/``.h5``, a SavedModel folder)
    with what xaicli knows about it; ``options`` (``task``, ``class_names``, ``preprocessing``,
    ``input_shape``, ``cam_layer``, ``allow_unsafe``) describe a foreign model."""
    from xaicli.models.io import load_model as load

    return load(path, **options)


def _model(model: LoadedModel | str | os.PathLike[str]) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)


def sources(inputs: Inputs) -> list[Source]:
    """The inputs as pipeline sources: files and folders as the commands find them, arrays in memory."""
    from xaicli.io import discover

    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    found: list[Source] = []
    for item in items:
        if isinstance(item, np.ndarray):
            arrays = [item] if item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (1, 3, 4)) else list(item)
            for array in arrays:
                found.append(Source(None, None, f"array-{len(found)}", array))
        elif isinstance(item, (str, os.PathLike)):
            found.extend(discover([item]))
        else:
            raise InputError(f"an input must be a path or a NumPy array, not {type(item).__name__}")
    if not found:
        raise InputError("no images among the inputs")
    return found


def _methods(methods: str | Iterable[Any] | dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(methods, str):
        return [(name.strip(), {}) for name in methods.split(",") if name.strip()]
    if isinstance(methods, dict):
        return [(name, dict(params or {})) for name, params in methods.items()]
    return [(m, {}) if isinstance(m, str) else (m[0], dict(m[1])) for m in methods]


@dataclass
class ImageExplanation:
    """One input's explanation: ``maps[key]`` is a :class:`~xaicli.pipeline.record.MethodMap`
    (``.map`` float32 at the image's resolution, ``.display``, ``.seconds``, ``.extras``); ``key`` is
    the method, or ``method@layer`` for one of several CAM layers. ``error`` is set when the input
    could not be read (and the rest is empty)."""

    name: str
    source: Path | None
    image: np.ndarray | None
    prediction: Any
    target: str
    target_index: int | None
    maps: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.maps[key].map

    @property
    def ok(self) -> bool:
        return self.error is None


def explain(
    model: LoadedModel | str | os.PathLike[str],
    inputs: Inputs,
    methods: str | Sequence[Any] | dict[str, dict[str, Any]] = "gradcam",
    *,
    target: str | int | None = None,
    score: str = "probability",
    batch_size: int = 16,
    frame: int | None = None,
    target_mask: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
    engine: Any = "local",
    address: str | None = None,
) -> list[ImageExplanation]:
    """Explain every input with every method; one :class:`ImageExplanation` per input, in order.

    ``methods``: ``"gradcam,ig"``, ``["gradcam", ("rise", {"n_masks": 500})]`` or a dict of name ->
    parameters. ``target``: ``"predicted"`` (default), a class index or name, ``"output:k"``.
    An input that cannot be read comes back with ``error`` set; if none can be read, InputError.
    ``engine``: ``"local"`` (this process) or ``"ray"`` (a Ray cluster at ``address``, default a
    local Ray; or an engine object such as ``RayEngine(workers=2)``).
    """
    from functools import partial

    from xaicli.pipeline.engines import Work, engine_for, records
    from xaicli.pipeline.explain import explain_stages
    from xaicli.pipeline.run import make_methods

    loaded = _model(model)
    chosen = make_methods(_methods(methods))
    if not chosen:
        raise UsageError("name at least one method", parameter="methods")
    runner = engine_for(engine, address)
    work = Work(loaded, partial(explain_stages, methods=[(m.name, m.params) for m in chosen],
                                target=None if target is None else str(target), score=score, batch_size=batch_size,
                                target_mask=target_mask, frame=frame, precision=precision))
    work.built()
    results = []
    for record in records(runner, work, sources(inputs)):
        results.append(ImageExplanation(
            record.name, record.file, record.image, record.prediction, record.target_label, record.target_index,
            {m.key: m for m in record.maps}, record.error))
    if not any(r.ok for r in results):
        raise InputError("; ".join(r.error or "" for r in results[:3]) + (" ..." if len(results) > 3 else ""))
    return results


@dataclass
class Comparison:
    """``summary``: one row per method (and the ``random`` reference), means of every metric;
    ``rows``: one row per image x method with every metric, as numbers; ``outputs``: the files
    written (grid pages, CSVs); ``failures``: (input, reason)."""

    summary: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    outputs: dict[str, Any]
    failures: list[tuple[str, str]]
    result: Any = None


def compare(
    model: LoadedModel | str | os.PathLike[str],
    inputs: Inputs,
    methods: str | Sequence[Any] | dict[str, dict[str, Any]] = "gradcam,ig,lime,rise",
    *,
    roi: Any = None,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    engine: Any = "local",
    resume: bool = False,
    **options: Any,
) -> Comparison:
    """Explain, score and draw every input, as ``xaicli compare`` does; ``roi`` is a ``--roi`` value
    (a mask folder, ``face``, ``box:...``) or a :class:`~xaicli.api.RegionSource`. The grid and CSVs
    go to ``output`` (a temporary folder, removed afterwards, when not given); ``engine`` as in
    :func:`explain`, ``resume=True`` continues an interrupted run into ``output``; other ``options``
    are those of :func:`xaicli.pipeline.compare.compare` (``metrics``, ``normalization``, ...)."""
    from xaicli.pipeline.compare import compare as run_compare
    from xaicli.rois import parse_roi

    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not all(isinstance(i, (str, os.PathLike)) for i in items):
        raise InputError("compare takes files and folders (regions and truths are matched by file name)")
    loaded = _model(model)
    region = parse_roi(str(roi)) if isinstance(roi, (str, os.PathLike)) else roi
    with tempfile.TemporaryDirectory(prefix="xaicli-compare-") as scratch:
        out = Path(output) if output is not None else Path(scratch)
        result = run_compare(loaded, [str(i) for i in items], _methods(methods), out, roi=region, overwrite=overwrite,
                             keep_rows=True, engine=engine, resume=resume, **options)
        outputs = result.outputs if output is not None else {}
    return Comparison(result.summary, result.rows, outputs, result.failures, result)


def overlay(image: np.ndarray, saliency: Any, *, display: str | None = None, colormap: str = "jet",
            alpha: float = 0.45) -> np.ndarray:
    """The overlay ``xaicli explain`` writes: the map (an array, or a MethodMap from
    :func:`explain`, whose own display is then used) normalised by ``display``, colourised and
    blended on ``image`` (float in [0, 1], or any array :func:`explain` takes). RGB uint8."""
    from xaicli.io import overlay as draw
    from xaicli.pipeline.run import as_image

    if hasattr(saliency, "map") and hasattr(saliency, "display"):
        display = display or saliency.display
        saliency = saliency.map
    picture = as_image(image, "image") if not (isinstance(image, np.ndarray) and image.dtype == np.float32
                                               and image.ndim == 3) else image
    return draw(picture, np.asarray(saliency, np.float32), colormap=colormap, alpha=alpha, mode=display or "positive")
