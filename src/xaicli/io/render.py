"""Pictures for people: a map normalised for display, colourised and blended over its image.

As the source studies show maps: jet colormap (red = high contribution, blue = low), resized to
the input and blended. How a map is normalised for display (``positive``, ``abs``, ``minmax``,
``signed``) is declared by the explainer that made it (``xaicli.api.Explainer.display``) and
defined once in :mod:`xaicli.normalization`, so a picture shows the mass a metric counts.
"""

from __future__ import annotations

import numpy as np

from xaicli.errors import InputError
from xaicli.io.read import cv2_module, resize, to_channels
from xaicli.normalization import check_mode, unit_range

COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma", "hot", "gray")


def normalize_map(saliency: np.ndarray, *, mode: str = "positive") -> np.ndarray:
    """A map scaled to [0, 1] for display (float32; see :mod:`xaicli.normalization`)."""
    return unit_range(saliency, check_mode(mode, display=True)).astype(np.float32)


def check_colormap(colormap: str) -> str:
    if colormap not in COLORMAPS:
        raise InputError(f"unknown colormap {colormap!r}; choose from {', '.join(COLORMAPS)}", parameter="colormap")
    return colormap


def colorize(saliency01: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A [0, 1] map as an RGB uint8 picture (jet: red = high contribution, blue = low)."""
    cv2 = cv2_module()
    check_colormap(colormap)
    gray = np.clip(np.round(saliency01 * 255.0), 0, 255).astype(np.uint8)
    if colormap == "gray":
        return np.repeat(gray[:, :, None], 3, axis=2)
    code = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    return cv2.applyColorMap(gray, code)[:, :, ::-1]


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in [0, 1], not {alpha}", parameter="alpha")
    return alpha


def overlay(
    image: np.ndarray,
    saliency: np.ndarray,
    *,
    colormap: str = "jet",
    alpha: float = 0.45,
    mode: str = "positive",
) -> np.ndarray:
    """Blend a saliency map (resized to the image) over the image, as the source studies show it.

    ``image`` is float (H, W, C) in [0, 1]; the result is RGB uint8. ``alpha`` is the weight of the
    heatmap (0 = image only, 1 = heatmap only); ``mode`` the display normalisation.
    """
    check_alpha(alpha)
    height, width = image.shape[:2]
    heat = normalize_map(saliency, mode=mode)
    if heat.shape != (height, width):
        heat = resize(heat, (height, width), interpolation="linear")
    heat_rgb = colorize(heat, colormap).astype(np.float32) / 255.0
    base = to_channels(np.clip(image, 0.0, 1.0).astype(np.float32), 3)
    blended = (1.0 - alpha) * base + alpha * heat_rgb
    return np.clip(np.round(blended * 255.0), 0, 255).astype(np.uint8)


def region_contours(mask: np.ndarray, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The outline of a boolean region (holes included) as OpenCV contours of (x, y) points,
    at ``size`` (height, width) if given: what a grid cell and a report draw over a map."""
    cv2 = cv2_module()
    region = np.asarray(mask, bool)
    if size is not None and region.shape != tuple(size):
        region = cv2.resize(region.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2) for c in contours]
