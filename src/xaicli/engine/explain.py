"""Explaining images with one or several methods: a streaming engine for ``explain`` and ``compare``.

:func:`explain_files` reads images in batches of ``batch_size``, predicts once per batch, fixes
the target from that unperturbed prediction, runs each method on the batch through one shared
:class:`~xaicli.runner.ModelRunner` (compiled once, reused for every batch and method), and yields
one :class:`ExplainResult` per image, in input order. Unreadable files come back as failed results
(``result.error``) and do not stop the run. :func:`write_result` writes one result (raw map,
overlay PNG) and returns its rows for ``maps.csv`` (:func:`write_index`).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.contracts import LoadedModel
from xaicli.errors import InputError, ModelError, PluginError, UsageError

MAPS_COLUMNS = ["image", "method", "layer", "target", "prediction", "map", "overlay", "seconds", "completeness_gap"]
CAM_METHODS = ("gradcam", "gradcam++", "scorecam")


@dataclass
class MethodMap:
    """One map of one image: ``map`` at the image's original resolution, float32."""

    method: str
    map: np.ndarray
    seconds: float
    layer: str | None = None
    extras: dict[str, float] = field(default_factory=dict)


@dataclass
class ExplainResult:
    """Everything about one image; ``error`` is set (and the rest empty) when it failed."""

    file: Path
    name: str
    image: np.ndarray | None = None  # as read: float32 (H, W, C) in [0, 1]
    display: np.ndarray | None = None  # the image as the model sees it (model resolution)
    prediction: np.ndarray | None = None  # raw model output
    prediction_label: str = ""
    target: str = ""
    maps: list[MethodMap] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_explainer(name: str, params: dict[str, Any] | None = None) -> Any:
    """Instantiate explainer plugin ``name``; an unknown parameter is a usage error."""
    from xaicli import plugins

    cls = plugins.load("explainers", name)
    params = dict(params or {})
    accepted = _accepted(cls)
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise UsageError(
                f"method {name!r} has no parameter {unknown[0]!r}; its parameters: {', '.join(sorted(accepted)) or '(none)'}"
            )
    try:
        return cls(**params)
    except TypeError as exc:
        raise UsageError(f"method {name!r}: {exc}") from None


def _accepted(cls: Any) -> set[str] | None:
    """Named constructor parameters over the class hierarchy (None when it takes anything)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        from xaicli.contracts import Explainer

        if klass is Explainer:
            break
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
    return names


def accepts(name: str, parameter: str) -> bool:
    from xaicli import plugins

    accepted = _accepted(plugins.load("explainers", name))
    return accepted is None or parameter in accepted


def output_names(files: Sequence[Path], inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """A unique name per file for output paths: its path below the input folder, without suffix."""
    roots = [Path(p) for p in inputs if Path(p).is_dir()]
    names = []
    for f in files:
        name = f.stem
        for root in roots:
            try:
                rel = f.relative_to(root)
            except ValueError:
                continue
            name = rel.with_suffix("").as_posix()
            break
        names.append(name)
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}-{count + 1}")
    return unique


def prediction_label(output: np.ndarray, info: Any) -> str:
    out = np.asarray(output, dtype=np.float64)
    if info.task == "classification":
        flat = out.ravel()
        names = list(info.class_names)
        if flat.size == 1:
            cls = int(flat[0] >= 0.5)
            p = flat[0] if cls == 1 else 1.0 - flat[0]
        else:
            cls = int(np.argmax(flat))
            p = flat[cls]
        label = names[cls] if cls < len(names) else f"class {cls}"
        return f"{label} ({p:.3f})"
    if info.task == "regression":
        flat = out.ravel()
        return ", ".join(f"{v:.4g}" for v in flat)
    if out.shape[-1] == 1:
        return f"mask of {int((out[..., 0] > 0.5).sum())} px"
    arg = np.argmax(out, axis=-1)
    return f"mask of {int((arg > 0).sum())} px (non-background)"


def _read(file: Path) -> np.ndarray:
    from xaicli.io import read_image

    return read_image(file)


def explain_files(
    loaded: LoadedModel,
    files: Sequence[str | os.PathLike[str]],
    methods: Sequence[tuple[str, dict[str, Any]]],
    *,
    target: str | None = None,
    target_mask: Callable[[Path], Path | None] | str | os.PathLike[str] | None = None,
    batch_size: int = 16,
    names: Sequence[str] | None = None,
    explainers: Sequence[Any] | None = None,
    score: str = "probability",
) -> Iterator[ExplainResult]:
    """Explain every file with every method; one result per file, in order (see module doc).

    ``methods``: (plugin name, parameters) pairs. ``target``: ``predicted`` (default), a class
    index or name, ``output:k``. ``target_mask`` (segmentation): a mask file for every image, or a
    function from an image file to its mask file. ``names``: output names (default: file stems).
    ``score``: ``probability`` (the model's outputs) or ``logit`` (pre-softmax/sigmoid class scores).
    """
    from xaicli.io import read_mask
    from xaicli.preprocessing import PREPROCESSORS, display_image, preprocess
    from xaicli.runner import ModelRunner
    from xaicli.targets import resolve_target

    info = loaded.info
    if not methods:
        raise UsageError("name at least one method")
    if explainers is None:
        explainers = [make_explainer(name, params) for name, params in methods]
    runner = ModelRunner(
        loaded.model,
        batch_size=batch_size,
        preprocess=lambda images: PREPROCESSORS[info.preprocessing](np.asarray(images, np.float32)),
        score=score,
    )
    if runner.input_shape != tuple(info.input_shape):
        raise ModelError(f"model input {runner.input_shape} differs from its description {tuple(info.input_shape)}")
    _check_methods(methods, explainers, runner, info)
    _trace(runner, explainers)
    files = [Path(f) for f in files]
    names = list(names) if names is not None else [f.stem for f in files]
    if target_mask is not None and info.task != "segmentation":
        raise UsageError("--target-mask applies to segmentation models only")

    for start in range(0, len(files), batch_size):
        batch_files = files[start : start + batch_size]
        good: list[tuple[int, np.ndarray, np.ndarray | None]] = []
        results: list[ExplainResult] = []
        for k, f in enumerate(batch_files):
            result = ExplainResult(file=f, name=names[start + k])
            results.append(result)
            try:
                image = _read(f)
                mask = None
                if target_mask is not None:
                    mask_path = target_mask(f) if callable(target_mask) else Path(target_mask)
                    if mask_path is None:
                        raise InputError(f"{f}: no target mask found for it")
                    mask = read_mask(mask_path)
            except InputError as exc:
                result.error = exc.message
                continue
            result.image = image
            good.append((k, image, mask))
        if good:
            x = preprocess([g[1] for g in good], info)
            outputs = runner.predict(x)
            masks = [g[2] for g in good] if target_mask is not None else None
            tgt = resolve_target(outputs, info, target, masks)
            for j, (k, image, _) in enumerate(good):
                r = results[k]
                r.display = display_image(image, info)
                r.prediction = outputs[j]
                r.prediction_label = prediction_label(outputs[j], info)
                r.target = tgt.describe(j) + (" (logit)" if score == "logit" else "")
            for (name, _), explainer in zip(methods, explainers, strict=True):
                t0 = time.perf_counter()
                maps = np.asarray(explainer.explain(runner, x, tgt), dtype=np.float32)
                seconds = (time.perf_counter() - t0) / len(good)
                if maps.shape != (len(good), *runner.input_shape[:2]):
                    raise PluginError(f"explainer {name!r} returned maps of shape {maps.shape}, expected {(len(good), *runner.input_shape[:2])}")
                extras = dict(getattr(explainer, "extras", None) or {})
                for j, (k, image, _) in enumerate(good):
                    results[k].maps.extend(_method_maps(name, maps[j], j, extras, seconds, image.shape[:2]))
        yield from results


def _check_methods(methods, explainers, runner, info) -> None:
    for (name, _), explainer in zip(methods, explainers, strict=True):
        if getattr(explainer, "needs_gradients", False) and not _differentiable(runner):
            raise ModelError(f"method {name!r} needs gradients, which this model does not provide")
        # A CAM method without a layer uses the model's stored default CAM layer, if it has one.
        if hasattr(explainer, "layer") and getattr(explainer, "layer", None) is None and info.cam_layer:
            try:
                runner.resolve_layers([info.cam_layer])
                explainer.layer = info.cam_layer
            except Exception:
                pass


def _trace(runner, explainers) -> None:
    """Trace what the methods will call before timing them (CAM layers: their own taps)."""
    cams = [e for e in explainers if hasattr(e, "layer_names")]
    runner.trace(
        scores=any(getattr(e, "needs_scores", True) for e in explainers),
        blends=any(getattr(e, "needs_blends", False) for e in explainers),
        gradients=any(getattr(e, "needs_gradients", False) for e in explainers if e not in cams),
        layers=[runner.resolve_layers(e.layer_names()) for e in cams],
    )


def _differentiable(runner) -> bool:
    return not any(type(layer).__name__ == "TFSMLayer" for layer in runner.model.layers)


def _method_maps(name, saliency, j, extras, seconds, size) -> list[MethodMap]:
    from xaicli.io import resize

    def at_size(m: np.ndarray) -> np.ndarray:
        return resize(np.asarray(m, np.float32), tuple(size), interpolation="linear").astype(np.float32)

    scalars = {}
    for key, value in extras.items():
        arr = np.asarray(value) if not isinstance(value, (dict, str)) else None
        if arr is not None and arr.ndim == 1:
            scalars[key] = float(arr[j])
    if "layers" in extras:  # several CAM layers: the combination, then each layer
        out = [MethodMap(name, at_size(saliency), seconds, "combined", scalars)]
        for layer, maps in extras["layers"].items():
            out.append(MethodMap(name, at_size(maps[j]), 0.0, layer, scalars))
        return out
    return [MethodMap(name, at_size(saliency), seconds, extras.get("layer"), scalars)]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_+." else "_" for ch in text)


def write_result(
    result: ExplainResult,
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "npy",
    colormap: str = "jet",
    alpha: float = 0.45,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Write each map of ``result`` (raw map, overlay PNG); returns its rows for ``maps.csv``.

    Files: ``OUT/<name>/<method>[_<layer>].npy|npz`` and ``.png``; paths in the rows are relative
    to ``out_dir``.
    """
    from xaicli.io import overlay, write_npy, write_npz, write_png

    if fmt not in ("npy", "npz"):
        raise UsageError(f"map format must be npy or npz, not {fmt!r}")
    out_dir = Path(out_dir)
    rows = []
    for m in result.maps:
        stem = _safe(m.method) + (f"_{_safe(m.layer)}" if m.layer else "")
        base = Path(result.name) / stem
        map_path = base.with_name(base.name + "." + fmt)
        png_path = base.with_name(base.name + ".png")
        if fmt == "npy":
            write_npy(out_dir / map_path, m.map.astype(np.float32), overwrite=overwrite)
        else:
            write_npz(out_dir / map_path, overwrite=overwrite, map=m.map.astype(np.float32))
        mode = "abs" if m.method in ("gradient-x-input", "ig") else "positive"
        shown = m.map
        if m.method == "rise":  # RISE carries the mean score everywhere: show it above its minimum
            shown = m.map - float(m.map.min())
        write_png(out_dir / png_path, overlay(result.image, shown, colormap=colormap, alpha=alpha, mode=mode), overwrite=overwrite)
        rows.append({
            "image": str(result.file),
            "method": m.method,
            "layer": m.layer or "",
            "target": result.target,
            "prediction": result.prediction_label,
            "map": map_path.as_posix(),
            "overlay": png_path.as_posix(),
            "seconds": m.seconds,
            "completeness_gap": m.extras.get("completeness_gap", ""),
        })
    return rows


def write_index(rows: Iterable[dict[str, Any]], out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """``OUT/maps.csv``: one row per written map (columns :data:`MAPS_COLUMNS`)."""
    from xaicli.io import write_csv

    return write_csv(Path(out_dir) / "maps.csv", list(rows), columns=MAPS_COLUMNS, overwrite=overwrite)
