"""Reading pictures back for tests: what an overlay shows, a heat map's cell colours, a line's slope."""

from __future__ import annotations

import cv2
import numpy as np

from xaicli.io.render import colorize

#: matplotlib's first two line colours: training and validation curves, the first two series
TRAIN, VALIDATION = (31, 119, 180), (255, 127, 14)


def decode(png: bytes) -> np.ndarray:
    """RGB uint8 pixels of PNG bytes."""
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def heat_shown(picture: np.ndarray, image: np.ndarray, alpha: float, colormap: str = "jet") -> np.ndarray:
    """The [0, 1] heat an overlay shows, recovered pixel by pixel: undo the blend with the known
    image, then take the nearest colour of the colormap's 256 entries."""
    base = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    colour = (picture.astype(np.float64) / 255.0 - (1 - alpha) * base) / alpha * 255.0
    table = colorize(np.arange(256) / 255.0, colormap).reshape(256, 3).astype(np.float64)
    distances = ((colour[:, :, None, :] - table[None, None]) ** 2).sum(axis=-1)
    return distances.argmin(axis=-1) / 255.0


def _axes_box(picture: np.ndarray) -> tuple[int, int, int, int]:
    """The plot frame (top, bottom, left, right): the rows and columns that are mostly dark."""
    dark = picture.max(axis=2) < 80
    rows, cols = dark.sum(axis=1), dark.sum(axis=0)
    ys, xs = np.flatnonzero(rows > 0.5 * rows.max()), np.flatnonzero(cols > 0.5 * cols.max())
    return ys.min(), ys.max(), xs.min(), xs.max()


def shaded_cells(png: bytes, n: int) -> np.ndarray:
    """The colour of each of the n x n cells of a heat map figure, sampled clear of its label."""
    picture = decode(png)
    top, bottom, left, right = _axes_box(picture)
    h, w = (bottom - top) / n, (right - left) / n
    cells = np.zeros((n, n, 3))
    for i in range(n):
        for j in range(n):
            y, x = int(top + (i + 0.2) * h), int(left + (j + 0.2) * w)
            cells[i, j] = np.median(picture[y : y + 4, x : x + 4].reshape(-1, 3), axis=0)
    return cells


def curve_slope(picture: np.ndarray, colour: tuple[int, int, int]) -> float:
    """Correlation of x with -y over the pixels of one line colour: +1 rising, -1 falling."""
    ys, xs = np.nonzero(np.abs(picture.astype(int) - colour).max(axis=2) < 30)
    assert len(xs) > 50, "line not drawn"
    return float(np.corrcoef(xs, -ys)[0, 1])


def row_shares_shaded(matrix) -> np.ndarray:
    """The colours a confusion matrix figure should show: Blues of each cell's share of its row."""
    from matplotlib import colormaps

    m = np.asarray(matrix, np.float64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    return colormaps["Blues"](share)[..., :3] * 255


def markers(picture: np.ndarray, colour: tuple[int, int, int]) -> list[tuple[float, float]]:
    """Centres (y, x) of the round markers of one line colour: the colour's pixels opened with a
    5 x 5 disk, which removes the thin line between them (the legend's sample marker counts too)."""
    mask = (np.abs(picture.astype(int) - colour).max(axis=2) < 30).astype(np.uint8)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    count, _, stats, centres = cv2.connectedComponentsWithStats(opened)
    return [(float(c[1]), float(c[0])) for c, s in zip(centres[1:], stats[1:], strict=True) if s[cv2.CC_STAT_AREA] >= 12]
