"""``mobilenetv2`` and ``resnet50`` from ``keras.applications``, with a classification or a
one-unit regression head (the age study: MobileNetV2 regressing age).

Weights are never downloaded: ``weights=None`` (random) by default, or ``weights=PATH`` for a local
weights file of the backbone without its top (e.g. an ImageNet ``..._notop.h5`` copied by hand).
The backbone's layers are built into the model itself (not nested), so every conv layer can be
named for Grad-CAM.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from xaicli.api import ModelSpec
from xaicli.errors import InputError, ModelError
from xaicli.models import check_task, head, no_unknown, param


class _Application(ModelSpec):
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    default_input_shape: ClassVar[tuple[int, int, int]] = (224, 224, 3)
    cam_layer_name: ClassVar[str] = ""

    @abstractmethod
    def _backbone(self, inputs, params: dict[str, Any], weights: str | None):
        """The Keras application on ``inputs``, with ``weights`` (a local file) or none."""

    def build(self, input_shape, task, num_outputs, **params: Any):
        import keras

        check_task(self, task, self.tasks)
        params = dict(params)
        weights = param(params, "weights", None, str)
        dropout = param(params, "dropout", 0.2, float)
        if weights is not None and not Path(weights).is_file():
            raise InputError(f"{weights}: weights file not found (xaicli never downloads weights)")
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        try:
            backbone = self._backbone(inputs, params, weights)
        except ValueError as exc:
            raise ModelError(f"{self.name}: {exc}") from None
        no_unknown(self, params)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(backbone.output)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        return keras.Model(inputs, head(x, task, num_outputs), name=self.name.replace("-", "_"))

    def default_cam_layer(self, model) -> str:
        return self.cam_layer_name


class MobileNetV2Spec(_Application):
    """MobileNetV2 (Sandler et al. 2018). Parameters: ``alpha`` (width, default 1.0),
    ``weights`` (local no-top weights file), ``dropout`` before the head (default 0.2)."""

    name: ClassVar[str] = "mobilenetv2"
    preprocessing: ClassVar[str] = "symmetric"
    cam_layer_name: ClassVar[str] = "out_relu"

    def _backbone(self, inputs, params, weights):
        import keras

        alpha = param(params, "alpha", 1.0, float)
        return keras.applications.MobileNetV2(
            include_top=False, weights=weights, input_tensor=inputs, alpha=alpha
        )


class ResNet50Spec(_Application):
    """ResNet50 (He et al. 2016). Parameters: ``weights`` (local no-top weights file),
    ``dropout`` before the head (default 0.2)."""

    name: ClassVar[str] = "resnet50"
    preprocessing: ClassVar[str] = "caffe"
    cam_layer_name: ClassVar[str] = "conv5_block3_out"

    def _backbone(self, inputs, params, weights):
        import keras

        return keras.applications.ResNet50(include_top=False, weights=weights, input_tensor=inputs)
