"""``xray-cnn``: the chest X-ray study's own CNN.

Three blocks of [Conv2D 3x3 - ReLU - MaxPool 2] x 2 + Dropout 0.1 with 128, 256 and 512 filters,
then Flatten, Dense 128 ReLU, Dropout 0.1, Dense 256 ReLU and the output layer; grayscale input
(260x260 in the study, any size here), Nadam. ``width`` scales the filter counts (``width=0.125``
gives 16/32/64 filters: a demo-sized variant with the same shape).
"""

from __future__ import annotations

from typing import Any, ClassVar

from xaicli.api import ModelSpec
from xaicli.models import check_task, head, no_unknown, param


class XrayCNN(ModelSpec):
    """The chest X-ray study's CNN. Parameters: ``width`` (filter multiplier, default 1.0),
    ``dropout`` (default 0.1), ``dense`` (units of the first dense layer, default 128; the second
    has twice as many)."""

    name: ClassVar[str] = "xray-cnn"
    preprocessing: ClassVar[str] = "unit"
    default_input_shape: ClassVar[tuple[int, int, int]] = (260, 260, 1)
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")

    def build(self, input_shape, task, num_outputs, **params: Any):
        import keras

        check_task(self, task, self.tasks)
        params = dict(params)
        width = param(params, "width", 1.0, float)
        dropout = param(params, "dropout", 0.1, float)
        dense = param(params, "dense", 128, int)
        no_unknown(self, params)
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = inputs
        for block, filters in enumerate((128, 256, 512), start=1):
            n = max(1, round(filters * width))
            for i in (1, 2):
                x = keras.layers.Conv2D(n, 3, padding="same", activation="relu", name=f"block{block}_conv{i}")(x)
                # pool only while the map is at least 2 pixels wide: small inputs stay valid
                if x.shape[1] >= 2 and x.shape[2] >= 2:
                    x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool{i}")(x)
            x = keras.layers.Dropout(dropout, name=f"block{block}_dropout")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(dense, activation="relu", name="dense1")(x)
        x = keras.layers.Dropout(dropout, name="dense_dropout")(x)
        x = keras.layers.Dense(2 * dense, activation="relu", name="dense2")(x)
        return keras.Model(inputs, head(x, task, num_outputs), name="xray_cnn")

    def default_cam_layer(self, model) -> str:
        return "block3_conv2"
