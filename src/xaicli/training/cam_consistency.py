"""Training with the Grad-CAM consistency regulariser (the Grad-CAM gaze-consistency study).

Total loss ``L = L_task + lambda * L_CAM``. Per mini-batch, for each correctly classified sample x
of class c, Grad-CAM (Selvaraju et al., ICCV 2017) is computed *differentiably* at the chosen layer:
``alpha_k = mean_ij dS_c/dA_kij``, ``CAM = ReLU(sum_k alpha_k A_k)``, normalised to [0, 1] by its
maximum. The class mean maps M_c are tracked across batches by an exponential moving average
(``M_c <- decay * M_c + (1 - decay) * batch mean of class c``; the first batch that has class c
sets M_c). With ``l(x) = ||CAM(x) - M_c||^2 / (H'W')``, ``L_c`` is the mean of l over the class's
correct samples of the batch and ``L_CAM`` the mean of the L_c over the classes present: the same
definition as the ``consistency`` metric (``xaicli.metrics.consistency``), computed on a batch.
M_c is a target, not a path for gradients (stop-gradient), so the regulariser pulls maps towards
their class mean rather than the mean towards outliers.

lambda follows a curriculum (:class:`LambdaSchedule`): 0 during ``warmup`` epochs, then raised
epoch by epoch from 0 (``linear``: the first epoch always has lambda = 0, the last the final value)
or at once (``step``) to its final value.

The regularised model (:class:`CamConsistencyModel`) wraps the plain model and overrides
``train_step``/``test_step`` only; the wrapped model is what gets saved, so it loads like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xaicli.errors import UsageError

SCHEDULES = ("linear", "step")


@dataclass(frozen=True)
class LambdaSchedule:
    """lambda for each epoch: 0 for ``warmup`` epochs, then ``linear`` (from 0 in equal steps,
    reaching ``value`` ``ramp`` epochs after the last zero one, default: at the last epoch) or
    ``step`` (``value`` at once)."""

    value: float
    epochs: int
    kind: str = "linear"
    warmup: int = 0
    ramp: int | None = None

    def __post_init__(self) -> None:
        if self.value < 0:
            raise UsageError(f"cam_consistency must be >= 0, not {self.value}", parameter="cam_consistency")
        if self.kind not in SCHEDULES:
            raise UsageError(f"unknown lambda schedule {self.kind!r}; choose from {', '.join(SCHEDULES)}")
        if self.warmup < 0:
            raise UsageError(f"cam_warmup must be >= 0, not {self.warmup}", parameter="cam_warmup")

    def at(self, epoch: int) -> float:
        """lambda at ``epoch`` (0-based). ``linear`` rises in equal steps from 0 at its start (the
        last warm-up epoch, or epoch 0 without warm-up: training always begins at lambda = 0) to
        ``value`` at the last epoch (or ``ramp`` epochs after its start)."""
        if epoch < self.warmup or self.value == 0:
            return 0.0
        if self.kind == "step":
            return float(self.value)
        start = max(self.warmup - 1, 0)
        ramp = self.ramp if self.ramp is not None else self.epochs - 1 - start
        return float(self.value) * min(1.0, (epoch - start) / max(1, ramp))


def make_consistency_model(base: Any, layer: str | None, num_classes: int, *, decay: float = 0.9) -> Any:
    """Wrap a classification model so that ``fit`` adds lambda * L_CAM (lambda set by callback)."""
    import keras
    import tensorflow as tf

    from xaicli.runner import ModelRunner, tap_model

    if not 0.0 <= decay < 1.0:
        raise UsageError(f"cam_decay must lie in [0, 1), not {decay}", parameter="cam_decay")
    ref = ModelRunner(base).resolve_layers(layer)[0]
    tapped = tap_model(base, [ref.path])
    height, width = int(ref.output_shape[1]), int(ref.output_shape[2])

    class CamConsistencyModel(keras.Model):
        def __init__(self) -> None:
            super().__init__(name=f"{base.name}_cam_consistency")
            self.base = base
            self.tapped = tapped
            self.layer_name = ref.name
            self.decay = float(decay)
            self.cam_lambda = keras.Variable(0.0, trainable=False, name="cam_lambda")
            self.class_means = keras.Variable(tf.zeros((num_classes, height, width)), trainable=False, name="class_means")
            self.class_seen = keras.Variable(tf.zeros((num_classes,)), trainable=False, name="class_seen")
            self.task_tracker = keras.metrics.Mean(name="task_loss")
            self.cam_tracker = keras.metrics.Mean(name="cam_loss")

        def call(self, x, training=False):
            return self.base(x, training=training)

        @property
        def metrics(self):
            return [*super().metrics, self.task_tracker, self.cam_tracker]

        def _labels(self, y, y_pred):
            y = tf.convert_to_tensor(y)
            if y.shape.rank == y_pred.shape.rank and y.shape[-1] == num_classes:
                return tf.argmax(y, axis=-1, output_type=tf.int32)
            return tf.reshape(tf.cast(y, tf.int32), [-1])

        def _step_losses(self, x, y, sample_weight, training):
            with tf.GradientTape() as inner:
                acts, y_pred = self.tapped(x, training=training)
                labels = self._labels(y, y_pred)
                onehot = tf.one_hot(labels, num_classes, dtype=y_pred.dtype)
                # Rows are independent (no batch statistics in the tapped path at inference and,
                # for models without batch norm, in training), so one gradient gives every row's.
                class_score = tf.reduce_sum(y_pred * onehot)
            grads = inner.gradient(class_score, acts)  # recorded by the outer tape: differentiable
            alpha = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1))
            cam = cam / (tf.reduce_max(cam, axis=[1, 2], keepdims=True) + 1e-7)
            correct = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1, output_type=tf.int32), labels), cam.dtype)
            members = onehot * correct[:, None]  # (batch, classes)
            counts = tf.reduce_sum(members, axis=0)
            present = tf.cast(counts > 0, cam.dtype)
            batch_means = tf.einsum("bc,bhw->chw", members, tf.stop_gradient(cam)) / tf.maximum(counts, 1.0)[:, None, None]
            seen = self.class_seen[:, None, None]
            blended = seen * (self.decay * self.class_means + (1.0 - self.decay) * batch_means) + (1.0 - seen) * batch_means
            new_means = present[:, None, None] * blended + (1.0 - present[:, None, None]) * self.class_means
            target = tf.gather(tf.stop_gradient(new_means), labels)
            per_sample = tf.reduce_mean(tf.square(cam - target), axis=[1, 2])
            per_class = tf.reduce_sum(members * per_sample[:, None], axis=0) / tf.maximum(counts, 1.0)
            cam_loss = tf.reduce_sum(per_class * present) / tf.maximum(tf.reduce_sum(present), 1.0)
            task_loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
            return y_pred, task_loss, cam_loss, new_means, present

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred, task_loss, cam_loss, new_means, present = self._step_losses(x, y, sample_weight, True)
                loss = task_loss + tf.cast(self.cam_lambda, task_loss.dtype) * cam_loss
                scaled = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, self.trainable_weights)
            self.optimizer.apply(gradients, self.trainable_weights)
            self.class_means.assign(new_means)
            self.class_seen.assign(tf.maximum(self.class_seen, present))
            return self._report(x, y, y_pred, sample_weight, loss, task_loss, cam_loss)

        def test_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            y_pred, task_loss, cam_loss, _, _ = self._step_losses(x, y, sample_weight, False)
            loss = task_loss + tf.cast(self.cam_lambda, task_loss.dtype) * cam_loss
            return self._report(x, y, y_pred, sample_weight, loss, task_loss, cam_loss)

        def _report(self, x, y, y_pred, sample_weight, loss, task_loss, cam_loss):
            batch = tf.shape(x)[0]
            self._loss_tracker.update_state(loss, sample_weight=batch)
            self.task_tracker.update_state(task_loss, sample_weight=batch)
            self.cam_tracker.update_state(cam_loss, sample_weight=batch)
            return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    return CamConsistencyModel()


def lambda_callback(model: Any, schedule: LambdaSchedule) -> Any:
    """A Keras callback that sets lambda at the start of each epoch and logs it."""
    import keras

    class SetCamLambda(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            model.cam_lambda.assign(schedule.at(epoch))

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["cam_lambda"] = schedule.at(epoch)

    return SetCamLambda()
