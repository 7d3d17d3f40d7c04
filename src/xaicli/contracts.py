"""The few types a plugin author imports.

* a **model plugin** (group ``xaicli.models``) is a :class:`ModelSpec` subclass: it builds an
  untrained Keras model for an input shape, a task and a number of outputs, and names its
  preprocessing;
* an **explainer plugin** (group ``xaicli.explainers``) is an :class:`Explainer` subclass: it turns a
  batch of preprocessed images and a :class:`Target` into one saliency map per image;
* a **metric plugin** (group ``xaicli.metrics``) is a :class:`Metric` subclass: it scores one map.

This module imports neither TensorFlow nor Keras, so that listing and ``--help`` stay fast.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

TASKS = ("classification", "regression", "segmentation")


@dataclass
class ModelInfo:
    """What a model file must tell ``predict`` and ``explain`` beyond its weights.

    xaicli stores this inside the ``.keras`` file it writes (see ``xaicli.models.io``), so that a
    model trained here needs no other flag; for a foreign model the CLI flags fill it in.
    """

    task: str
    input_shape: tuple[int, int, int]  # (height, width, channels); channels 1 = grayscale, 3 = RGB
    class_names: list[str] = field(default_factory=list)
    preprocessing: str = "unit"  # a name from xaicli.preprocessing.PREPROCESSORS
    cam_layer: str | None = None  # default layer for the CAM methods
    normal_class: str | None = None  # the "no finding" class, for the missed-pathology count
    architecture: str | None = None  # the model plugin that built it, if any
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")
        self.input_shape = tuple(int(v) for v in self.input_shape)  # type: ignore[assignment]

    @property
    def color_mode(self) -> str:
        return "grayscale" if self.input_shape[2] == 1 else "rgb"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        return cls(**json.loads(text))


@dataclass
class LoadedModel:
    """A Keras model with what xaicli knows about it (``xaicli.models.io.load_model`` makes one)."""

    model: Any  # keras.Model
    info: ModelInfo
    path: Path | None = None


class ModelSpec(ABC):
    """A model plugin: builds an untrained network with its own preprocessing.

    Subclasses set ``name``, ``preprocessing`` and ``default_input_shape`` and implement
    :meth:`build`. ``params`` are plugin-specific (``depth`` for ``simple-cnn``, ...).
    """

    name: ClassVar[str] = ""
    preprocessing: ClassVar[str] = "unit"
    default_input_shape: ClassVar[tuple[int, int, int]] = (64, 64, 1)

    @abstractmethod
    def build(
        self, input_shape: tuple[int, int, int], task: str, num_outputs: int, **params: Any
    ) -> keras.Model:
        ...


class Target(ABC):
    """What is explained: a function from model outputs to one scalar per row.

    ``score(outputs, rows)`` gets a batch of model outputs (any perturbed or interpolated copies)
    and, for each row, the index of the original image it belongs to; it returns one scalar per
    row. The target is fixed from the unperturbed prediction (class chosen, mask taken) before any
    perturbation, so every copy of an image scores the same thing. Implemented in
    ``xaicli.targets``; written with backend-neutral ops so it works inside ``tf.function``.
    """

    @abstractmethod
    def score(self, outputs: Any, rows: Any) -> Any:
        ...

    @abstractmethod
    def describe(self, index: int) -> str:
        """A short label for image ``index`` (e.g. ``class 2 (nodule)``), for tables and CSVs."""
        ...


class Explainer(ABC):
    """An explainer plugin: one saliency map per image, at the input's resolution.

    Subclasses set ``name`` (what users type), document every constructor parameter and its
    default in the class docstring with the paper it comes from, and implement :meth:`explain`.
    All model calls go through the ``runner`` (``xaicli.runner.ModelRunner``), which batches
    and compiles; an explainer never calls the Keras model itself.
    """

    name: ClassVar[str] = ""
    #: True when the method needs gradients (it cannot explain a black-box model)
    needs_gradients: ClassVar[bool] = False
    #: True when it scores (perturbed) inputs with forward passes; the engine traces the compiled
    #: calls a method uses before timing it, so seconds per image never include tracing
    needs_scores: ClassVar[bool] = True
    #: True when it scores masked copies through ``runner.iter_blend_scores`` (RISE, LIME, ...)
    needs_blends: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def explain(self, runner: Any, images: np.ndarray, target: Target) -> np.ndarray:
        """Maps of shape (batch, height, width), float32, for preprocessed ``images``."""
        ...


class Metric(ABC):
    """A metric plugin: scores one saliency map (see ``xaicli.metrics``)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def score(self, saliency: np.ndarray, **context: Any) -> float:
        ...
