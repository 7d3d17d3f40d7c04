"""The comparison grid: one row per image, the original then one labelled overlay per method.

As the age study shows its results: the first column is the image with its prediction and truth
written under it, each further column the map of one method blended on the image (jet colormap,
``xaicli.io.overlay``), with the method's name in a header row. Big folders are split into pages
of ``rows_per_page`` rows (``grid-001.png``, ``grid-002.png``, ...); a page is written as soon as it
is full, so memory holds one page at most. Pages are written to hidden temporary files and renamed
into place only by :meth:`GridWriter.close`: a run that fails half way (:meth:`GridWriter.discard`)
leaves no page behind to block its rerun. Labels are drawn with OpenCV's ``putText``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xaicli.errors import UsageError
from xaicli.io.write import exists_error

FONT_SCALE_PER_PX = 0.45 / 160  # readable text on a 160 px tile
HEADER_COLOR = (32, 32, 32)
BACKGROUND = 255
#: region outlines, one colour per region (white, magenta, cyan, yellow), each on a black halo
OUTLINE_COLORS = ((255, 255, 255), (255, 79, 216), (85, 255, 255), (255, 255, 85))


def _font():
    import cv2

    return cv2.FONT_HERSHEY_SIMPLEX


def _fit_text(text: str, width: int, scale: float) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    import cv2

    if cv2.getTextSize(text, _font(), scale, 1)[0][0] <= width:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "...", _font(), scale, 1)[0][0] > width:
        text = text[:-1]
    return text + "..."


def text_strip(lines: Sequence[str], width: int, tile: int) -> np.ndarray:
    """A white strip with ``lines`` of dark text, centred, for captions and headers."""
    import cv2

    scale = max(0.3, tile * FONT_SCALE_PER_PX)
    line_height = int(round(22 * scale / 0.45))
    strip = np.full((line_height * len(lines) + 6, width, 3), BACKGROUND, np.uint8)
    for i, line in enumerate(lines):
        line = _fit_text(line, width - 6, scale)
        (w, h), _ = cv2.getTextSize(line, _font(), scale, 1)
        x = max(3, (width - w) // 2)
        y = 3 + i * line_height + (line_height + h) // 2
        cv2.putText(strip, line, (x, y), _font(), scale, HEADER_COLOR, 1, cv2.LINE_AA)
    return strip


def _tile(picture: np.ndarray, tile: int, outlines: Sequence[np.ndarray] = ()) -> np.ndarray:
    """An RGB uint8 picture scaled (aspect kept) and centred on a ``tile`` x ``tile`` square, with
    the outline of each region in ``outlines`` (boolean masks of the picture's size) drawn on it."""
    import cv2

    from xaicli.io.render import region_contours

    height, width = picture.shape[:2]
    scale = tile / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    flag = cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(picture, size, interpolation=flag)
    if scaled.ndim == 2:
        scaled = scaled[:, :, None]
    if scaled.shape[2] == 1:
        scaled = np.repeat(scaled, 3, axis=2)
    for k, mask in enumerate(outlines):
        contours = [c.reshape(-1, 1, 2).astype(np.int32) for c in region_contours(mask, scaled.shape[:2])]
        thick = max(1, tile // 100)
        cv2.drawContours(scaled, contours, -1, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.drawContours(scaled, contours, -1, OUTLINE_COLORS[k % len(OUTLINE_COLORS)], thick, cv2.LINE_AA)
    square = np.full((tile, tile, 3), BACKGROUND, np.uint8)
    y, x = (tile - scaled.shape[0]) // 2, (tile - scaled.shape[1]) // 2
    square[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    return square


def colour_bar(width: int, tile: int, colormap: str, labels: Sequence[str]) -> np.ndarray:
    """A strip with the colormap from 0 (left) to 1 (right) and ``labels`` under its two ends and
    middle: the scale every overlay of the page is drawn on."""
    import cv2

    from xaicli.io import colorize

    scale = max(0.3, tile * FONT_SCALE_PER_PX)
    bar_width, bar_height = min(width - 12, 3 * tile), max(8, tile // 14)
    line = int(round(22 * scale / 0.45))
    strip = np.full((bar_height + line + 10, width, 3), BACKGROUND, np.uint8)
    x0 = (width - bar_width) // 2
    ramp = colorize(np.linspace(0.0, 1.0, bar_width, dtype=np.float32)[None, :], colormap)
    strip[4 : 4 + bar_height, x0 : x0 + bar_width] = np.repeat(ramp, bar_height, axis=0)
    for k, text in enumerate(labels):
        (w, h), _ = cv2.getTextSize(text, _font(), scale, 1)
        anchor = x0 + k * bar_width // max(1, len(labels) - 1)
        x = min(max(2, anchor - w // 2), width - w - 2)
        cv2.putText(strip, text, (x, 6 + bar_height + h + 2), _font(), scale, HEADER_COLOR, 1, cv2.LINE_AA)
    return strip


class GridWriter:
    """Collects rows and writes pages ``OUT/<stem>-NNN.png``; call :meth:`close` at the end."""

    def __init__(
        self,
        out_dir: str | Path,
        methods: Sequence[str],
        *,
        tile: int = 160,
        rows_per_page: int = 8,
        stem: str = "grid",
        colormap: str = "jet",
        alpha: float = 0.45,
        mode: str | dict[str, str] = "positive",
        overwrite: bool = False,
        title: str = "",
    ) -> None:
        if tile < 32:
            raise UsageError(f"grid tile size must be at least 32 px, not {tile}")
        if rows_per_page < 1:
            raise UsageError(f"rows per grid page must be at least 1, not {rows_per_page}")
        self.out_dir = Path(out_dir)
        self.methods = list(methods)
        self.tile = tile
        self.rows_per_page = rows_per_page
        self.stem = stem
        self.colormap = colormap
        self.alpha = alpha
        self.mode = mode
        self.overwrite = overwrite
        self.title = title
        self.regions: list[str] = []  # the labels of the regions outlined, for the legend
        self.gap = max(2, tile // 40)
        self._rows: list[np.ndarray] = []
        self.pages: list[Path] = []
        self._pending: list[tuple[Path, Path]] = []  # (temporary file, page) until close()

    def page_path(self, number: int) -> Path:
        return self.out_dir / f"{self.stem}-{number:03d}.png"

    def _mode(self, method: str) -> str:
        return self.mode.get(method, "positive") if isinstance(self.mode, dict) else self.mode

    def add(self, image: np.ndarray, maps: dict[str, np.ndarray | None], caption: Sequence[str],
            regions: dict[str, np.ndarray | None] | None = None) -> None:
        """One row: ``image`` float (H, W, C) in [0, 1], a map per method (None: blank cell), the
        regions of interest to outline on every cell (boolean masks of the image's size)."""
        from xaicli.io import overlay, to_channels

        outlines = [mask for mask in (regions or {}).values() if mask is not None]
        for label in regions or {}:
            if label not in self.regions:
                self.regions.append(label)
        base = np.clip(np.round(to_channels(np.clip(image, 0, 1), 3) * 255), 0, 255).astype(np.uint8)
        cells = [np.vstack([_tile(base, self.tile, outlines), text_strip(list(caption), self.tile, self.tile)])]
        height = cells[0].shape[0]
        for method in self.methods:
            saliency = maps.get(method)
            if saliency is None:
                cell = np.full((self.tile, self.tile, 3), 220, np.uint8)
            else:
                picture = overlay(image, saliency, colormap=self.colormap, alpha=self.alpha, mode=self._mode(method))
                cell = _tile(picture, self.tile, outlines)
            padded = np.full((height, self.tile, 3), BACKGROUND, np.uint8)
            padded[: self.tile] = cell
            cells.append(padded)
        self._rows.append(self._join(cells, axis=1))
        if len(self._rows) == self.rows_per_page:
            self._flush()

    def _join(self, parts: Sequence[np.ndarray], axis: int) -> np.ndarray:
        out = []
        for i, part in enumerate(parts):
            if i:
                shape = list(part.shape)
                shape[axis] = self.gap
                out.append(np.full(shape, BACKGROUND, np.uint8))
            out.append(part)
        return np.concatenate(out, axis=axis)

    def _header(self, width: int) -> np.ndarray:
        """The model's name over the page, then each column's method and display mode."""
        cells = [text_strip(["image", ""], self.tile, self.tile)]
        cells += [text_strip([method, f"({self._mode(method)})"], self.tile, self.tile) for method in self.methods]
        row = self._join(cells, axis=1)[:, :width]
        if not self.title:
            return row
        return np.vstack([text_strip([self.title], width, self.tile), row])

    def _legend(self, width: int) -> np.ndarray:
        """The colour scale (each map from 0, or its minimum, to its largest value) and the outlines."""
        lines = ["each map from 0 to its own maximum"]
        modes = {self._mode(method) for method in self.methods}
        if "minmax" in modes:
            lines.append("minmax: from the map's minimum")
        if "signed" in modes:
            lines.append("signed: from -max, 0 in the middle")
        if self.regions:
            lines.append("outline: " + ", ".join(self.regions))
        return np.vstack([colour_bar(width, self.tile, self.colormap, ["0", "max"]),
                          text_strip(lines, width, self.tile)])

    def _flush(self) -> None:
        from xaicli.io import encode_png, write_bytes

        if not self._rows:
            return
        width = self._rows[0].shape[1]
        page = self._join([self._header(width), *self._rows, self._legend(width)], axis=0)
        margin = self.gap * 2
        page = np.pad(page, ((margin, margin), (margin, margin), (0, 0)), constant_values=BACKGROUND)
        path = self.page_path(len(self._pending) + len(self.pages) + 1)
        if path.exists() and not self.overwrite:  # refuse before the work, not at the end
            raise exists_error(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}-{id(self):x}.part")
        write_bytes(temporary, encode_png(page), overwrite=True)
        self._pending.append((temporary, path))
        self._rows = []

    def close(self) -> list[Path]:
        """Write the last page and move every page into place; returns the pages."""
        try:
            self._flush()
            for temporary, path in self._pending:
                if path.exists() and not self.overwrite:
                    raise exists_error(path)
                os.replace(temporary, path)
                self.pages.append(path)
            self._pending = []
        except BaseException:
            self.discard()
            raise
        if self.overwrite:  # pages left by an earlier, longer run would be mistaken for this one's
            number = len(self.pages) + 1
            while self.page_path(number).exists():
                self.page_path(number).unlink()
                number += 1
        return self.pages

    def discard(self) -> None:
        """Drop the pages not yet moved into place (a failed run); a no-op after :meth:`close`."""
        for temporary, _ in self._pending:
            temporary.unlink(missing_ok=True)
        self._pending = []
        self._rows = []
