"""``simple-cnn``: a plain CNN of configurable depth.

The Grad-CAM consistency study compares CNNs of growing depth; ``depth`` sets the number of
[Conv2D 3x3 - BatchNorm - ReLU - MaxPool 2] blocks (filters double each block from ``filters``),
followed by global average pooling and the output layer. ``pools`` limits the down-sampling to the
first blocks, so the last conv map stays fine enough for Grad-CAM to localise small findings
(a 64x64 input pooled three times leaves an 8x8 map whose cells are wider than a nodule).
"""

from __future__ import annotations

from typing import Any, ClassVar

from xaicli.api import ModelSpec
from xaicli.models import check_task, head, no_unknown, param


class SimpleCNN(ModelSpec):
    """A small CNN. Parameters: ``depth`` (blocks, default 3), ``filters`` (first block's filters,
    default 16), ``pools`` (2x max-pooling steps after the first blocks, default ``depth - 1``),
    ``dropout`` before the output (default 0.2), ``batchnorm`` (default true)."""

    name: ClassVar[str] = "simple-cnn"
    preprocessing: ClassVar[str] = "unit"
    default_input_shape: ClassVar[tuple[int, int, int]] = (64, 64, 1)
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")

    def build(self, input_shape, task, num_outputs, **params: Any):
        import keras

        check_task(self, task, self.tasks)
        params = dict(params)
        depth = param(params, "depth", 3, int)
        filters = param(params, "filters", 16, int)
        pools = param(params, "pools", depth - 1, int)
        dropout = param(params, "dropout", 0.2, float)
        batchnorm = param(params, "batchnorm", True, bool)
        no_unknown(self, params)
        if depth < 1 or filters < 1 or not 0 <= pools < depth:
            from xaicli.errors import UsageError

            raise UsageError("simple-cnn needs depth >= 1, filters >= 1 and 0 <= pools < depth")
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = inputs
        for block in range(1, depth + 1):
            n = filters * 2 ** (block - 1)
            x = keras.layers.Conv2D(n, 3, padding="same", use_bias=not batchnorm, name=f"conv{block}")(x)
            if batchnorm:  # momentum 0.9 (not 0.99): few steps on small data; 0.99 leaves
                # the moving variance near its initial 1.0 after hundreds of steps
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{block}")(x)
            x = keras.layers.Activation("relu", name=f"relu{block}")(x)
            if block <= pools and x.shape[1] >= 2 and x.shape[2] >= 2:
                x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        return keras.Model(inputs, head(x, task, num_outputs), name=f"simple_cnn_{depth}")

    def default_cam_layer(self, model) -> str:
        # the last block's activation: the deepest map that still has spatial extent
        return [layer.name for layer in model.layers if layer.name.startswith("relu")][-1]
