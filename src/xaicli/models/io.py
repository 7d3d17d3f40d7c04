"""The self-describing model file: a ``.keras`` archive that also carries :class:`ModelInfo`.

xaicli writes Keras' own ``.keras`` zip and adds one entry, ``xaicli.json`` (task, class names,
input size and colour mode, preprocessing, default CAM layer, ...). Keras ignores the extra entry,
so the file stays a plain Keras model for any other tool, and ``predict`` / ``explain`` need no
flag for it. A foreign model (a ``.keras`` or ``.h5`` file without that entry, or a TensorFlow
SavedModel folder) works too: what it cannot tell comes from the keyword arguments (CLI flags),
and the rest is inferred from its input and output shapes.

Loading uses Keras safe mode: a file that carries Python code (a ``Lambda`` layer's bytecode) is
refused unless ``allow_unsafe=True`` (``--allow-unsafe``); loading such a file runs its code.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from xaicli.api import TASKS, LoadedModel, ModelInfo
from xaicli.errors import InputError, ModelError, OutputError, UsageError
from xaicli.io.write import exists_error

INFO_ENTRY = "xaicli.json"


def save_model(model: Any, info: ModelInfo, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``model`` with ``info`` inside as a ``.keras`` file, atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UsageError(f"{path}: a model file must end in .keras")
    if path.exists() and not overwrite:
        raise exists_error(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    tmp = Path(tmp_name)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(INFO_ENTRY, info.to_json())
        if path.exists() and not overwrite:
            raise exists_error(path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is as readable as any
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_info(path: str | os.PathLike[str]) -> ModelInfo | None:
    """The ModelInfo stored in a ``.keras`` file by xaicli, or None for a foreign file."""
    path = Path(path)
    if path.is_dir() or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_ENTRY not in archive.namelist():
                return None
            data = json.loads(archive.read(INFO_ENTRY).decode("utf-8"))
        return ModelInfo(**data)
    except (zipfile.BadZipFile, OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path}: the xaicli model description inside is corrupt ({exc})") from None


def _keras_load(path: Path, allow_unsafe: bool) -> Any:
    import keras

    try:
        return keras.models.load_model(path, compile=False, safe_mode=not allow_unsafe)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "arbitrary code" in text:
            raise ModelError(
                f"{path}: the model carries Python code (e.g. a Lambda layer) and is refused in "
                "safe mode; pass --allow-unsafe only if you trust its source"
            ) from None
        raise ModelError(f"{path}: cannot load the model ({_short(text)})") from None
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, AttributeError, EOFError) as exc:
        raise ModelError(f"{path}: not a readable Keras model (corrupt or truncated: {_short(str(exc))})") from None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_savedmodel(path: Path, input_shape: tuple[int, int, int] | None) -> Any:
    """A TensorFlow SavedModel folder wrapped as a Keras model (its serving signature)."""
    import keras

    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    except Exception as exc:  # TensorFlow raises many types for a broken folder
        raise ModelError(f"{path}: not a loadable SavedModel ({type(exc).__name__}: {_short(str(exc))})") from None
    shape = input_shape
    if shape is None:
        try:
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            spec = list(loaded.signatures["serving_default"].structured_input_signature[1].values())[0]
            dims = spec.shape.as_list()[1:]
            if len(dims) == 3 and all(d is not None for d in dims):
                shape = tuple(int(d) for d in dims)
        except Exception:
            shape = None
    if shape is None:
        raise ModelError(f"{path}: the SavedModel does not state its input size; pass input_shape H,W,C", parameter="input_shape")
    inputs = keras.Input(shape=shape, name="image")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ModelError(f"{path}: the SavedModel has several outputs ({', '.join(outputs)}); xaicli needs one")
        outputs = next(iter(outputs.values()))
    return keras.Model(inputs, outputs, name=path.name)


def find_cam_layer(model: Any) -> str | None:
    """The model's default CAM layer by the one rule (:func:`xaicli.runner.layers.default_cam_layer`),
    or None when it has no spatial convolution."""
    from xaicli.runner.layers import default_cam_layer

    try:
        return default_cam_layer(model).name
    except ModelError:
        return None


def _infer_task(model: Any, path: Path) -> str:
    shape = _single_output(model, path)
    if len(shape) == 4:
        return "segmentation"
    if len(shape) == 2 and (shape[1] or 1) > 1:
        return "classification"
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "linear")
    return "classification" if activation == "sigmoid" else "regression"


def _one_output(model: Any, path: Path, output: int | str | None) -> Any:
    """The model itself, or its output ``output`` (index or name) as a single-output model."""
    outputs = list(getattr(model, "outputs", None) or [])
    if output is None or len(outputs) <= 1:
        if output not in (None, 0, "0") and len(outputs) <= 1:
            raise UsageError(f"{path}: the model has one output; output {output!r} does not exist", parameter="output_index")
        return model
    import keras

    names = [getattr(t, "name", "").split("/")[0].split(":")[0] for t in outputs]
    layers = [getattr(getattr(t, "_keras_history", None), "operation", None) for t in outputs]
    layer_names = [getattr(op, "name", "") for op in layers]
    text = str(output)
    if text.lstrip("-").isdigit() and -len(outputs) <= int(text) < len(outputs):
        index = int(text) % len(outputs)
    elif text in layer_names or text in names:
        index = layer_names.index(text) if text in layer_names else names.index(text)
    else:
        known = ", ".join(f"{i}: {n}" for i, n in enumerate(layer_names))
        raise UsageError(f"{path}: no output {output!r}; the model's outputs are {known}", parameter="output_index")
    return keras.Model(model.inputs, outputs[index], name=f"{model.name}_{layer_names[index] or index}")


def _single_output(model: Any, path: Path) -> tuple:
    """The model's one output shape; several outputs are refused, naming the model file."""
    shape = model.output_shape
    if isinstance(shape, dict) or (isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple))):
        count = len(shape)
        raise ModelError(f"{path}: the model has {count} outputs; choose one with --output-index K (or its name)")
    return tuple(shape)


def _parse_shape(value: Any) -> tuple[int, int, int]:
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    try:
        dims = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"input shape must be H,W,C (e.g. 224,224,3), not {value!r}") from None
    if len(dims) == 2:
        dims = (*dims, 3)
    if len(dims) != 3 or min(dims) < 1 or dims[2] not in (1, 3):
        raise UsageError(f"input shape must be H,W,C with C = 1 or 3, not {value!r}")
    return dims  # type: ignore[return-value]


def load_model(
    path: str | os.PathLike[str],
    *,
    task: str | None = None,
    class_names: list[str] | None = None,
    preprocessing: str | None = None,
    cam_layer: str | None = None,
    input_shape: Any = None,
    allow_unsafe: bool = False,
    output: int | str | None = None,
) -> LoadedModel:
    """Load a model and what xaicli knows about it; keyword arguments override the stored info.

    For a foreign model the task is inferred from the output (rank 4: segmentation; several
    units: classification; one sigmoid unit: binary classification; else regression), class names
    default to ``class_0`` ..., preprocessing to ``unit`` ([0, 1]) and the CAM layer to the last
    layer with spatial maps.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model file")
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    shape = _parse_shape(input_shape) if input_shape is not None else None
    if preprocessing is not None:
        from xaicli.preprocessing import PREPROCESSORS

        if preprocessing not in PREPROCESSORS:
            raise UsageError(f"unknown preprocessing {preprocessing!r}; choose from {', '.join(PREPROCESSORS)}")

    if path.is_dir():
        if not (path / "saved_model.pb").exists() and not (path / "saved_model.pbtxt").exists():
            raise ModelError(f"{path}: a folder that is not a TensorFlow SavedModel (no saved_model.pb)")
        model = _load_savedmodel(path, shape)
        stored = None
    else:
        if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
            raise ModelError(f"{path}: not a model file xaicli can load (.keras, .h5 or a SavedModel folder)")
        if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
            raise ModelError(f"{path}: not a readable Keras model (corrupt or truncated: not a zip archive)")
        stored = read_info(path)
        model = _keras_load(path, allow_unsafe)

    model = _one_output(model, path, output)
    input_shape_all = model.input_shape
    if isinstance(input_shape_all, dict) or (isinstance(input_shape_all, (list, tuple)) and input_shape_all
                                             and isinstance(input_shape_all[0], (list, tuple))):
        raise ModelError(f"{path}: the model has {len(input_shape_all)} inputs; xaicli needs one image input")
    model_shape = tuple(input_shape_all[1:])
    if len(model_shape) != 3:  # before anything else: a vector or sequence model takes no image
        raise ModelError(f"{path}: the model's input {model_shape} is not an image (height, width, channels)")
    if model_shape[2] is not None and model_shape[2] not in (1, 3):
        raise ModelError(f"{path}: the model takes images with {model_shape[2]} channels; xaicli feeds it "
                         "grayscale (1 channel) or RGB (3 channels) images")
    if shape is None:
        if stored is not None:
            shape = tuple(stored.input_shape)
        elif len(model_shape) == 3 and all(d is not None for d in model_shape):
            shape = tuple(int(d) for d in model_shape)
        else:
            raise ModelError(
                f"{path}: the model accepts any input size {model_shape}; pass input_shape H,W,C",
                parameter="input_shape",
            )
    for have, want in zip(model_shape, shape, strict=True):
        if have is not None and have != want:
            raise ModelError(f"{path}: the model takes inputs of shape {model_shape}, not {shape}")

    if stored is not None:
        info = stored
        info.input_shape = shape  # type: ignore[assignment]
    else:
        inferred = task or _infer_task(model, path)
        info = ModelInfo(task=inferred, input_shape=shape, extra={"foreign": True})
    if task is not None:
        info.task = task
    if preprocessing is not None:
        info.preprocessing = preprocessing
    if cam_layer is not None:
        try:
            model.get_layer(cam_layer)
        except ValueError:
            raise UsageError(f"{path}: the model has no layer named {cam_layer!r}") from None
        info.cam_layer = cam_layer
    # Otherwise a foreign model's CAM layer is left to ModelRunner.default_cam_layer, which also
    # looks inside nested backbones.

    outputs = _single_output(model, path)
    units = int(outputs[-1] or 1)
    if class_names is not None:
        info.class_names = list(class_names)
    if info.task == "classification":
        expected = 2 if units == 1 else units
        if not info.class_names:
            info.class_names = [f"class_{i}" for i in range(expected)]
        if len(info.class_names) != expected:
            raise ModelError(
                f"{path}: the model has {expected} classes but {len(info.class_names)} class names were given"
            )
    if info.task == "segmentation" and len(outputs) != 4:
        raise ModelError(f"{path}: a segmentation model must output maps (N, H, W, C), not {tuple(outputs)}")
    if info.task != "segmentation" and len(outputs) != 2:
        raise ModelError(f"{path}: a {info.task} model must output (N, units), not {tuple(outputs)}")
    return LoadedModel(model=model, info=info, path=path)
