"""What flows through the pipeline: one :class:`Record` per input image, in input order.

A record starts as a :class:`~xaicli.io.Source` and is filled by the stages (read, predict and
target, explain, score); sinks write what they need from it and the run drops it, so memory holds
one batch of records whatever the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xaicli.api import Target
from xaicli.io import Source
from xaicli.predictions import Prediction


def method_key(method: str, layer: str | None, maps_of_method: int) -> str:
    """``gradcam`` for a method's only (or combined) map; ``gradcam@conv2`` for one of several layers."""
    if maps_of_method <= 1 or not layer or layer == "combined":
        return method
    return f"{method}@{layer}"


@dataclass
class MethodMap:
    """One map of one image, at the image's own resolution (float32).

    ``key`` names it in tables: the method, or ``method@layer`` for one of several CAM layers.
    ``display``: how it is shown (the explainer's declaration). ``extras``: the explainer's
    per-image numbers (IG's completeness gap, a sampled map's reliability). ``cell``: its native
    resolution in the image's pixels (0 for pixel-level maps).
    """

    method: str
    map: np.ndarray
    seconds: float
    layer: str | None = None
    extras: dict[str, float] = field(default_factory=dict)
    display: str = "positive"
    key: str = ""
    cell: float = 0.0

    def __post_init__(self) -> None:
        self.key = self.key or self.method


@dataclass
class Record:
    """Everything known about one input image; ``error`` is set (and the rest empty) when it failed.

    ``image``: as read, float32 (H, W, C) in [0, 1]; ``view``: as the model sees it before scaling
    (model resolution and colour mode); ``target``: the one-row :class:`~xaicli.api.Target` it is
    explained for, fixed from its unperturbed prediction; ``scores``: map key -> metric column ->
    value (the ``random`` reference map included).
    """

    index: int
    source: Source
    truth: Any = None
    image: np.ndarray | None = None
    #: segmentation: the given mask whose summed output is explained (target_mask)
    target_mask: np.ndarray | None = None
    view: np.ndarray | None = None
    prediction: Prediction | None = None
    target: Target | None = None
    maps: list[MethodMap] = field(default_factory=list)
    region: np.ndarray | None = None
    #: each region of interest by its label (None where the image has none), once scored
    regions: dict[str, np.ndarray | None] = field(default_factory=dict)
    region_status: str = ""
    #: why the region could not be made although it should exist (an unreadable mask file)
    region_failure: str | None = None
    #: the model's quality on the image (correct, absolute error, Dice), once scored
    quality: float | None = None
    #: the maps of a weight-randomised copy of the model, per map key (the sanity check)
    randomized: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    #: map key -> metric column -> the curve a score is the area of (deletion, insertion)
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def file(self) -> Path | None:
        return self.source.path

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def label(self) -> str:
        return self.source.label

    @property
    def target_label(self) -> str:
        return self.target.describe(0) if self.target is not None else ""

    @property
    def target_index(self) -> int | None:
        return self.target.classes[0] if self.target is not None else None

    def map_of(self, key: str) -> MethodMap | None:
        return next((m for m in self.maps if m.key == key), None)
