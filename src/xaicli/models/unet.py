"""``unet``: U-Net for segmentation (Ronneberger et al. 2015), as in the retina vessel study.

``depth`` down-sampling steps with [Conv 3x3 - BN - ReLU] x 2 per level, filters doubling from
``filters``; transposed-conv up-sampling with skip connections; a 1x1 conv output with a sigmoid
(one foreground class) or a softmax (several classes). Height and width must be multiples of
2**depth.
"""

from __future__ import annotations

from typing import Any, ClassVar

from xaicli.api import ModelSpec
from xaicli.errors import UsageError
from xaicli.models import check_task, no_unknown, param


class UNet(ModelSpec):
    """U-Net. Parameters: ``depth`` (down-sampling steps, default 3), ``filters`` (first level,
    default 16), ``batchnorm`` (default true)."""

    name: ClassVar[str] = "unet"
    preprocessing: ClassVar[str] = "unit"
    default_input_shape: ClassVar[tuple[int, int, int]] = (128, 128, 3)
    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)

    @staticmethod
    def size_multiple(params: dict[str, Any]) -> int:
        return 2 ** int(params.get("depth", 3))

    def build(self, input_shape, task, num_outputs, **params: Any):
        import keras

        check_task(self, task, self.tasks)
        params = dict(params)
        depth = param(params, "depth", 3, int)
        filters = param(params, "filters", 16, int)
        batchnorm = param(params, "batchnorm", True, bool)
        no_unknown(self, params)
        height, width = int(input_shape[0]), int(input_shape[1])
        if height % 2**depth or width % 2**depth:
            raise UsageError(
                f"unet with depth {depth} needs height and width divisible by {2**depth}, "
                f"not {height}x{width} (choose another --input-size)"
            )

        def conv_block(x, n, prefix):
            for i in (1, 2):
                x = keras.layers.Conv2D(n, 3, padding="same", use_bias=not batchnorm, name=f"{prefix}_conv{i}")(x)
                if batchnorm:  # momentum 0.9 (not 0.99): few steps on small data; 0.99 leaves
                    # the moving variance near its initial 1.0 after hundreds of steps
                    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn{i}")(x)
                x = keras.layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
            return x

        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x, skips = inputs, []
        for level in range(depth):
            x = conv_block(x, filters * 2**level, f"enc{level + 1}")
            skips.append(x)
            x = keras.layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
        x = conv_block(x, filters * 2**depth, "bottleneck")
        for level in reversed(range(depth)):
            n = filters * 2**level
            x = keras.layers.Conv2DTranspose(n, 2, strides=2, padding="same", name=f"dec{level + 1}_up")(x)
            x = keras.layers.Concatenate(name=f"dec{level + 1}_concat")([x, skips[level]])
            x = conv_block(x, n, f"dec{level + 1}")
        classes = max(1, num_outputs)
        activation = "sigmoid" if classes == 1 else "softmax"
        outputs = keras.layers.Conv2D(classes, 1, activation=activation, name="mask")(x)
        return keras.Model(inputs, outputs, name="unet")

    def default_cam_layer(self, model) -> str:
        # the last decoder activation: full-resolution spatial maps right before the output
        return "dec1_relu2"
