"""What ``train`` fits with: optimizers, losses, augmentation, keeping the best epoch, and the check
that the model it ends with is usable."""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.api import ModelInfo
from xaicli.errors import UsageError

OPTIMIZERS = ("nadam", "adam", "sgd", "rmsprop")


def optimizer(name: str, learning_rate: float):
    import keras

    name = name.lower()
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if learning_rate <= 0:
        raise UsageError(f"learning rate must be positive, not {learning_rate}")
    return {"nadam": keras.optimizers.Nadam, "adam": keras.optimizers.Adam,
            "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}[name](learning_rate=learning_rate)


def _dice_loss(y_true, y_pred):
    import keras.ops as K

    inter = K.sum(y_true * y_pred, axis=(1, 2, 3))
    total = K.sum(y_true, axis=(1, 2, 3)) + K.sum(y_pred, axis=(1, 2, 3))
    return 1.0 - (2.0 * inter + 1.0) / (total + 1.0)


def segmentation_loss(y_true, y_pred):
    """Binary cross-entropy + soft Dice: thin structures (vessels) are a small share of pixels."""
    import keras

    bce = keras.ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    return bce + _dice_loss(y_true, y_pred)


def augmenter(names: list[str], seed: int):
    import keras

    layers = []
    if "flip" in names and "vflip" in names:
        layers.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=seed))
    elif "flip" in names:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    elif "vflip" in names:
        layers.append(keras.layers.RandomFlip("vertical", seed=seed))
    if "rotate" in names:
        layers.append(keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1))
    if "shift" in names:
        layers.append(keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2))
    if "zoom" in names:
        layers.append(keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3))
    return keras.Sequential(layers, name="augment") if layers else None


def best_epoch_callback():
    """A Keras callback keeping the weights of the epoch with the lowest validation loss."""
    import keras

    class BestEpoch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best, self.epoch, self.weights = float("inf"), None, None

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss")
            if loss is not None and np.isfinite(loss) and loss < self.best:
                self.best, self.epoch, self.weights = float(loss), epoch + 1, self.model.get_weights()

        def restore(self) -> int | None:
            if self.weights is not None:
                self.model.set_weights(self.weights)
            return self.epoch

    return BestEpoch()



def usability(task: str, report: dict[str, Any] | None, info: ModelInfo) -> list[str]:
    """Why a trained model is not usable, from its validation report: one class predicted for
    everything, accuracy no better than chance (binomial test at 5 %), or no better than the mean."""
    from xaicli.pipeline.verdicts import binomial_tail

    if not report:
        return []
    out = []
    if task == "classification":
        matrix = np.asarray(report["confusion_matrix"])
        predicted = (matrix.sum(axis=0) > 0).sum()
        n, correct = int(matrix.sum()), int(np.trace(matrix))
        if n >= 2 and predicted == 1:
            name = info.class_names[int(np.argmax(matrix.sum(axis=0)))]
            out.append(f"the model predicts {name!r} for every validation image")
        k = max(2, len(info.class_names))
        if n and binomial_tail(correct, n, 1.0 / k) > 0.05:
            out.append(f"validation accuracy {correct / n:.3f} on {n} images is no better than chance (1/{k})")
    elif task == "regression" and report.get("mae", 0) >= report.get("mae_constant_mean", float("inf")):
        out.append(f"validation MAE {report['mae']:.4g} is no better than predicting the mean "
                   f"({report['mae_constant_mean']:.4g})")
    return out
