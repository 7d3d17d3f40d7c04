"""Layer discovery: the spatial layers of a model (nested backbones expanded) and the one rule for
the default CAM layer, used by the runner, by ``train`` (which stores it in the model file) and by
every CAM method."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from xaicli.api import LayerRef
from xaicli.errors import ModelError, UsageError
from xaicli.runner.graph import is_model

CONV_CLASSES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose", "Convolution2D")
# Layers that keep a conv block's map (same shape, elementwise): Grad-CAM's default layer is the
# last of these after the last conv, e.g. MobileNetV2's "out_relu" rather than the pre-BN "Conv_1".
PASS_THROUGH = ("BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Dropout",
                "SpatialDropout2D", "GaussianNoise", "LayerNormalization", "Add", "Multiply")


def spatial(shape: tuple[Any, ...]) -> bool:
    return len(shape) == 4 and (shape[1] or 0) > 1 and (shape[2] or 0) > 1


def _output_shape(layer: Any) -> tuple[Any, ...]:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return ()
    if isinstance(out, (list, tuple)):
        return ()
    return tuple(out.shape)


def walk(model: Any, prefix: tuple[str, ...] = ()) -> Iterator[LayerRef]:
    """Layers with 4-D outputs in graph order, recursing into nested models."""
    for layer in model.layers:
        path = (*prefix, layer.name)
        if is_model(layer):
            yield from walk(layer, path)
            continue
        shape = _output_shape(layer)
        if len(shape) == 4 and type(layer).__name__ != "InputLayer":
            yield LayerRef(path, layer, shape)


def is_conv(ref: LayerRef) -> bool:
    return type(ref.layer).__name__ in CONV_CLASSES


def default_cam_layer(model: Any, refs: Sequence[LayerRef] | None = None) -> LayerRef:
    """The last spatial conv layer, carried forward over same-shape BN / activation layers.

    A segmentation network ends in a spatial conv (the 1x1 head): its "map" would only repeat the
    prediction, so the default is the last conv *before* the layer that produces the output.
    """
    refs = list(walk(model)) if refs is None else list(refs)
    produces_output = {id(t) for t in model.outputs}
    convs = [i for i, ref in enumerate(refs) if is_conv(ref) and spatial(ref.output_shape)
             and id(getattr(ref.layer, "output", None)) not in produces_output]
    if not convs:
        raise ModelError("the model has no spatial convolution layer for a CAM method")
    return refs[carried(refs, convs[-1])]


def carried(refs: Sequence[LayerRef], index: int) -> int:
    """The conv at ``index`` carried forward over the same-shape BatchNorm / activation layers
    that follow it: the map the block hands on (e.g. ``block1_relu`` rather than ``block1_conv``)."""
    best = index
    for i in range(index + 1, len(refs)):
        kind = type(refs[i].layer).__name__
        if refs[i].output_shape == refs[best].output_shape and kind in PASS_THROUGH:
            best = i
        elif kind not in PASS_THROUGH:
            break
    return best


def resolve(refs: Sequence[LayerRef], names: Sequence[str], default: LayerRef | None) -> list[LayerRef]:
    """Layer references from names: ``auto`` (the default), ``all-conv``, names or paths."""
    found: list[LayerRef] = []
    for name in names:
        if name == "all-conv":  # every conv block's activations, as the default layer takes them
            found.extend(refs[carried(refs, i)] for i, r in enumerate(refs) if is_conv(r) and spatial(r.output_shape))
            continue
        if name == "auto" and default is not None:
            found.append(default)
            continue
        matches = [r for r in refs if r.name == name] or [r for r in refs if r.path[-1] == name]
        if not matches:
            known = ", ".join(r.name for r in refs if is_conv(r)) or "(none)"
            raise UsageError(f"layer {name!r} not found or not spatial; conv layers: {known}", parameter="layer")
        found.append(matches[0])
    unique = {r.path: r for r in found}
    return list(unique.values())
