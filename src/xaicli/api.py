"""The whole plugin contract, in one module: what a plugin author imports and implements.

* a **model plugin** (entry-point group ``xaicli.models``) is a :class:`ModelSpec`: it builds an
  untrained Keras network for an input shape, a task and a number of outputs;
* an **explainer plugin** (``xaicli.explainers``) is an :class:`Explainer`: from a batch of
  preprocessed images and a :class:`Target` it returns an :class:`Explanation` (one map per image,
  plus per-image extras), calling the model only through the :class:`Runner` it is given;
* a **metric plugin** (``xaicli.metrics``) is a :class:`Metric`: it scores one map (or, for a
  dataset metric, a set of maps through an accumulator);
* a **region plugin** (``xaicli.rois``) is a :class:`RegionSource`: it makes the boolean region of
  interest of an image.

Everything the engine reads from a plugin is declared here as a class attribute or a method, and
checked when the plugin is loaded (:func:`xaicli.plugins.make`); ``xaicli.testing`` has the checks
a plugin's own tests call (``check_explainer``, ``check_metric``, ``check_region_source``).

This module imports neither TensorFlow nor Keras, so listing plugins and ``--help`` stay fast.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from xaicli.errors import InputError, UsageError

TASKS = ("classification", "regression", "segmentation")
#: how a map is shown and which of its mass the metrics count (see ``xaicli.normalization``)
DISPLAYS = ("positive", "abs", "minmax", "signed")
#: the context keys a per-image metric may require (the engine supplies them)
CONTEXT_KEYS = ("region", "image", "model_fn", "random_saliency", "cell")


# ------------------------------------------------------------------------------------ models


@dataclass
class ModelInfo:
    """What a model file must tell ``predict`` and ``explain`` beyond its weights.

    xaicli stores this inside the ``.keras`` file it writes (see ``xaicli.models.io``), so that a
    model trained here needs no other argument; for a foreign model the loader's arguments fill it in.
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
    """A Keras model with what xaicli knows about it (``xaicli.load_model`` makes one)."""

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
    def build(self, input_shape: tuple[int, int, int], task: str, num_outputs: int, **params: Any) -> Any:
        """An untrained ``keras.Model``."""

    def default_cam_layer(self, model: Any) -> str | None:
        """The layer CAM methods explain by default, stored in the model file (None: the runner's
        rule, the last spatial conv carried over its activation)."""
        return None


# ----------------------------------------------------------------------------------- targets


class Target:
    """What is explained, as weights on the model output: ``score(row) = sum(output * weights[row])``.

    Every target xaicli resolves (a class, a regression unit, the sum of a segmentation output
    over a mask; ``xaicli.targets.resolve_target``) is linear in the output, so the runner takes the
    weights as a tensor and one compiled function serves every image and target (the contract of
    Xplique's ``reduce_sum(model(inputs) * targets)``). The target is fixed from the unperturbed
    prediction, so every perturbed copy of an image scores the same thing.

    ``labels[row]`` describes row ``row`` for people (``class 2 (nodule)``); ``classes[row]`` is the
    class (or output unit) index it weighs, or None for a mask.
    """

    def __init__(self, weights: np.ndarray, labels: Sequence[str], classes: Sequence[int | None] | None = None) -> None:
        self.weights = np.asarray(weights, dtype=np.float32)
        self.labels = list(labels)
        self.classes = list(classes) if classes is not None else [None] * len(self.labels)
        if len(self.labels) != len(self.weights) or len(self.classes) != len(self.weights):
            raise ValueError("one label and one class per target row")

    def weights_for(self, rows: Any) -> np.ndarray:
        return self.weights[np.asarray(rows, dtype=np.int64)]

    def score(self, outputs: Any, rows: Any) -> Any:
        """The target scores of ``outputs`` (backend-neutral ops: works inside ``tf.function``)."""
        import keras

        w = self.weights_for(np.asarray(rows))
        axes = tuple(range(1, len(w.shape)))
        return keras.ops.sum(keras.ops.cast(outputs, "float32") * w, axis=axes)

    def describe(self, index: int) -> str:
        return self.labels[index]

    def subset(self, indices: Sequence[int]) -> Target:
        idx = np.asarray(indices, dtype=np.int64)
        return Target(self.weights[idx], [self.labels[i] for i in idx], [self.classes[i] for i in idx])

    def __len__(self) -> int:
        return len(self.weights)


class ScoreTarget(Protocol):
    """A target without output weights (not linear in the output): forward-only methods can still
    score it, through the runner's eager path; gradient methods need a :class:`Target`."""

    def score(self, outputs: Any, rows: Any) -> Any: ...


# ------------------------------------------------------------------------- perturbation stacks


@dataclass
class Stack:
    """A lazily built stack of ``length`` model inputs; ``rows[i]`` is the image row i belongs to.

    ``build(start, stop)`` returns inputs ``start:stop`` as float32 (n, H, W, C). The runner builds
    it ``batch_size`` rows at a time, so memory is bounded whatever the number of masks or steps.
    """

    length: int
    rows: np.ndarray
    build: Callable[[int, int], np.ndarray]

    def __len__(self) -> int:
        return self.length

    @classmethod
    def of(cls, array: np.ndarray, rows: Sequence[int] | np.ndarray | None = None) -> Stack:
        array = np.asarray(array, dtype=np.float32)
        rows = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)
        return cls(len(array), rows, lambda a, b: array[a:b])


@dataclass
class Blend:
    """Perturbed copies ``fill + (image - fill) * mask`` of a few images (RISE, LIME, occlusion).

    Only the masks cross from NumPy (``build(start, stop)`` -> (n, H, W) float32, a third of the
    data of an RGB stack); the gather and blend run inside the compiled call. ``images`` and
    ``fills`` are (b, H, W, C) model inputs (fills may be (b, 1, 1, C)); ``rows[i]`` is the image
    copy i is made from (and whose target it scores).
    """

    images: np.ndarray
    fills: np.ndarray
    rows: np.ndarray
    build: Callable[[int, int], np.ndarray]

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, start: int, stop: int, masks: np.ndarray) -> np.ndarray:
        """The same copies built in NumPy (for targets without output weights)."""
        rows = self.rows[start:stop]
        fills = self.fills[rows]
        return fills + (self.images[rows] - fills) * masks[..., None]


@dataclass(frozen=True)
class LayerRef:
    """A layer of the model, possibly inside nested models; ``path`` = names from the top."""

    path: tuple[str, ...]
    layer: Any
    output_shape: tuple[Any, ...]

    @property
    def name(self) -> str:
        return "/".join(self.path)


class Runner(Protocol):
    """The batched, compiled model calls an explainer may make (``xaicli.runner.ModelRunner``).

    ``x`` is a batch of model inputs or a :class:`Stack`; ``rows[i]`` is the image (target row) that
    input ``i`` belongs to. Every call is chunked to ``batch_size`` rows.
    """

    input_shape: tuple[int, int, int]
    output_shape: tuple[int, ...]
    batch_size: int

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Images in [0, 1] at the model's size -> model inputs (for baselines in image space)."""

    def predict(self, x: np.ndarray | Stack) -> np.ndarray: ...
    def scores(self, x: np.ndarray | Stack, target: Target | ScoreTarget, rows: Any = None) -> np.ndarray: ...
    def iter_scores(self, x: np.ndarray | Stack, target: Target | ScoreTarget,
                    rows: Any = None) -> Iterator[tuple[int, int, np.ndarray]]: ...
    def gradients(self, x: np.ndarray | Stack, target: Target, rows: Any = None) -> tuple[np.ndarray, np.ndarray]: ...
    def iter_gradients(self, x: np.ndarray | Stack, target: Target,
                       rows: Any = None) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]: ...
    def blend_scores(self, blend: Blend, target: Target | ScoreTarget) -> np.ndarray: ...
    def iter_blend_scores(self, blend: Blend, target: Target | ScoreTarget
                          ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]: ...
    def resolve_layers(self, names: Sequence[str] | str | None) -> list[LayerRef]: ...
    def activations(self, x: np.ndarray, refs: Sequence[LayerRef]) -> list[np.ndarray]: ...
    def activation_gradients(self, x: np.ndarray, target: Target, refs: Sequence[LayerRef],
                             rows: Any = None) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]: ...


# -------------------------------------------------------------------------------- explainers


@dataclass
class Explanation:
    """What an explainer returns for a batch of ``B`` images.

    ``maps``: (B, H, W) float32 at the model input's resolution. ``extras``: per-image numbers,
    each an array of length B (IG's ``completeness_gap``, LIME's ``lime_r2``); they become columns of
    the outputs. Two extras the engine reads: ``cell``, the map's native resolution in model-input
    pixels (a CAM layer's stride, RISE's grid cell, LIME's segment size; absent for pixel-level
    maps), and ``reliability``, how reproducible a sampled map is (split-half, Spearman-Brown; see
    ``xaicli.explainers._common.split_half_reliability``; absent for deterministic methods).
    ``layers``: per-layer maps (B, H, W) when a CAM method explained several layers (``maps`` is
    then their combination) with each layer's ``layer_cells``; ``layer``: the one layer explained
    otherwise.
    """

    maps: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    layer: str | None = None
    layer_cells: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.maps = np.asarray(self.maps, dtype=np.float32)
        self.extras = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.extras.items()}

    @classmethod
    def of(cls, result: Explanation | np.ndarray) -> Explanation:
        """An explainer's result as an Explanation (a bare (B, H, W) array is accepted)."""
        return result if isinstance(result, Explanation) else cls(np.asarray(result, dtype=np.float32))


class Explainer(ABC):
    """An explainer plugin: one saliency map per image, at the model input's resolution.

    Subclasses set ``name`` (what users type), document every constructor parameter and its default
    in the class docstring with the paper it comes from, and implement :meth:`explain`. All model
    calls go through the ``runner`` (batched and compiled); an explainer never calls the model.
    A constructor that rejects a parameter raises ``ValueError`` (or ``xaicli.errors.UsageError``):
    users then get one line naming it and the usage exit code.

    Declared capabilities, read by the engine (checked when the plugin loads):
    """

    name: ClassVar[str] = ""
    #: the method needs gradients (it cannot explain a black-box model)
    needs_gradients: ClassVar[bool] = False
    #: it scores (perturbed) inputs with forward passes (``runner.scores``); the engine traces the
    #: compiled calls a method uses before timing it, so seconds per image never include tracing
    needs_scores: ClassVar[bool] = True
    #: it scores masked copies through ``runner.iter_blend_scores`` (RISE, LIME, occlusion)
    needs_blends: ClassVar[bool] = False
    #: it explains conv layers (CAM methods): it has a ``layer`` parameter and :meth:`layer_names`
    uses_layers: ClassVar[bool] = False
    #: its model evaluations are exactly one forward + backward of the batch itself (the input
    #: gradient, or the activations and gradients at its layers): with several such methods the
    #: engine makes that pass once for all of them (``xaicli.runner.shared``)
    gradient_pass: ClassVar[bool] = False
    #: how its maps are shown and, by default, which of their mass metrics count: ``positive``
    #: (evidence for the target), ``abs`` (magnitudes, for signed attributions), ``minmax`` (minus
    #: the minimum, for maps with a large offset) or ``signed``
    display: ClassVar[str] = "positive"

    def __init__(self, **params: Any) -> None:
        self.params = params

    def layer_names(self) -> list[str] | None:
        """The layers to explain (``uses_layers`` methods); None = the model's default CAM layer."""
        return None

    @abstractmethod
    def explain(self, runner: Runner, images: np.ndarray, target: Target) -> Explanation | np.ndarray:
        """An :class:`Explanation` (or bare (B, H, W) maps) for preprocessed ``images``."""


# ----------------------------------------------------------------------------------- metrics


class Accumulator(Protocol):
    """A dataset metric's running state: ``add`` one map at a time, then ``result``."""

    def add(self, saliency: np.ndarray, truth: Any, predicted: Any) -> bool: ...

    def result(self) -> Any: ...


class Metric(ABC):
    """A metric plugin: scores one saliency map, or (``per_image = False``) a set of maps.

    Declared, and read by the engine: ``name``; ``label`` (its column in tables and CSVs, see
    :meth:`column`); ``requires`` (context keys among :data:`CONTEXT_KEYS` that :meth:`score` needs,
    the engine refuses up front a metric whose needs the run cannot meet); ``higher_is_better``
    (True, False, or None where neither direction is better); ``per_image``. A metric whose
    constructor takes ``normalization`` gets the run's map normalisation (one of :data:`DISPLAYS`
    but ``signed``). Dataset metrics implement :meth:`accumulator`. Optional, for curve-area metrics
    (deletion, insertion): ``score_many(saliencies, **context)``, several maps of one image in one
    batched call; ``curves_many`` (its ``(score, curve)`` pairs); ``score_curve`` (one such pair).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[bool | None] = None
    per_image: ClassVar[bool] = True

    def column(self, region_label: str = "Roi") -> str:
        """The column name; region metrics use the region's label (``FaceRatio``)."""
        return self.label or self.name

    @abstractmethod
    def score(self, saliency: np.ndarray, **context: Any) -> float:
        """One number for one map; context keys as in :data:`CONTEXT_KEYS`."""

    def accumulator(self) -> Accumulator:
        """A dataset metric's :class:`Accumulator` (``per_image = False`` only)."""
        raise TypeError(f"metric {self.name!r} scores one map at a time: it has no accumulator")


# ---------------------------------------------------------------------------- region sources


class NoRegion(InputError):
    """No region could be made for this image (no mask file, no face found): reported, not fatal."""


class RegionSource(ABC):
    """A region plugin: ``from_spec`` parses what follows ``NAME:`` in ``--roi``; ``region`` makes a mask.

    ``label`` names the region in column names (``Face`` -> ``FaceRatio``).
    """

    name: ClassVar[str] = ""
    label: str = "Roi"

    @classmethod
    def from_spec(cls, spec: str | None) -> RegionSource:
        if spec:
            raise UsageError(f"region source {cls.name!r} takes no argument (got {spec!r})")
        return cls()

    @abstractmethod
    def region(self, path: Path | None, image: np.ndarray, root: Path | None = None) -> np.ndarray:
        """Boolean (H, W) mask for ``image`` (read from ``path``; ``root`` is the input folder it
        came from, for matching by relative path). Raises :class:`NoRegion` when there is none."""

    def describe(self) -> str:
        return self.name
