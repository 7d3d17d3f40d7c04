"""Pictures checked by what they show: an overlay is its map's [0, 1] form in the colormap blended
on the image; a grid cell is the right method's overlay; the confusion matrix shades each cell by
its row share; training curves go the way the history goes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pictures import (
    TRAIN,
    VALIDATION,
    curve_slope,
    decode,
    heat_shown,
    row_shares_shaded,
    shaded_cells,
)

from xaicli import evaluation
from xaicli.io import encode_png, read_image
from xaicli.io.grid import GridWriter
from xaicli.io.render import normalize_map, overlay


def _peaked_map(shape, peak, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((yy - peak[0]) ** 2 + (xx - peak[1]) ** 2) / 20.0) + 0.05 * rng.random(shape)


@pytest.mark.parametrize("mode", ["positive", "abs", "minmax", "signed"])
def test_an_overlay_shows_the_maps_unit_form_and_its_peak(mode):
    rng = np.random.default_rng(1)
    image = rng.uniform(0.2, 0.8, (30, 40, 1)).astype(np.float32)
    saliency = _peaked_map((30, 40), (7, 29)) - 0.3
    if mode == "abs":
        saliency = -saliency  # a negative peak is as hot as a positive one
    picture = overlay(image, saliency, alpha=0.45, mode=mode)
    shown = heat_shown(picture, image, 0.45)
    np.testing.assert_allclose(shown, normalize_map(saliency, mode=mode), atol=2.5 / 255)
    assert np.unravel_index(shown.argmax(), shown.shape) == np.unravel_index(
        np.abs(saliency).argmax() if mode == "abs" else saliency.argmax(), saliency.shape)


def test_an_overlay_resizes_a_smaller_map_onto_the_image():
    image = np.full((40, 60, 3), 0.5, np.float32)
    small = np.zeros((4, 6))
    small[1, 4] = 1.0  # covers rows 10-19, columns 40-49 of the image
    shown = heat_shown(overlay(image, small, alpha=0.6), image, 0.6)
    y, x = np.unravel_index(shown.argmax(), shown.shape)
    assert 10 <= y < 20 and 40 <= x < 50
    assert shown[:, :25].max() < 0.05  # nothing hot far from it


def _find(page: np.ndarray, tile: np.ndarray) -> tuple[int, int, int]:
    """Where ``tile`` best matches ``page`` (top-left y, x), and the largest pixel difference there."""
    scores = cv2.matchTemplate(page.astype(np.float32), tile.astype(np.float32), cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(scores)
    there = page[y : y + tile.shape[0], x : x + tile.shape[1]].astype(int)
    return y, x, int(np.abs(there - tile).max())


def test_each_grid_cell_is_the_overlay_of_its_own_methods_map(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.uniform(0.1, 0.9, (32, 32, 1)).astype(np.float32) for _ in range(2)]
    maps = [{"first": _peaked_map((32, 32), (4, 4), i), "second": _peaked_map((32, 32), (26, 20), i)} for i in range(2)]
    grid = GridWriter(tmp_path, ["first", "second"], tile=32, rows_per_page=2, mode="positive")
    for image, row in zip(images, maps, strict=True):
        grid.add(image, row, ["caption"])
    (page_path,) = grid.close()
    page = read_image(page_path)
    page = np.round(page * 255).astype(np.uint8)
    found = {}
    for r, (image, row) in enumerate(zip(images, maps, strict=True)):
        plain = np.repeat(np.round(image * 255).astype(np.uint8), 3, axis=2)
        found[r, "image"] = _find(page, plain)
        for method, saliency in row.items():
            found[r, method] = _find(page, overlay(image, saliency, alpha=0.45, mode="positive"))
    assert all(difference == 0 for _, _, difference in found.values())  # every cell, pixel for pixel
    for r in range(2):
        ys = {found[r, c][0] for c in ("image", "first", "second")}
        assert len(ys) == 1  # one row per image
        assert found[r, "image"][1] < found[r, "first"][1] < found[r, "second"][1]  # in the methods' order
    assert found[0, "image"][0] < found[1, "image"][0]  # rows in input order


def test_the_confusion_matrix_shades_each_cell_by_its_row_share():
    matrix = np.array([[3, 1, 0], [0, 4, 0], [1, 1, 2]])
    cells = shaded_cells(evaluation.confusion_matrix_png(matrix, ["normal", "nodule", "cavity"]), 3)
    np.testing.assert_allclose(cells, row_shares_shaded(matrix), atol=3)
    empty_row = np.array([[2, 0], [0, 0]])  # a class never seen: white, not a division by zero
    np.testing.assert_allclose(shaded_cells(evaluation.confusion_matrix_png(empty_row, ["a", "b"]), 2),
                               row_shares_shaded(empty_row), atol=3)


def test_training_curves_show_train_and_validation_the_way_they_went():
    epochs = 12
    falling, rising = np.linspace(1.0, 0.1, epochs), np.linspace(0.2, 0.9, epochs)
    history = {"loss": list(falling), "accuracy": list(rising), "val_loss": list(rising), "val_accuracy": list(falling)}
    picture = decode(evaluation.training_curve_png(history))
    half = picture.shape[1] // 2  # one panel per metric, side by side: loss, then accuracy
    assert curve_slope(picture[:, :half], TRAIN) < -0.8 and curve_slope(picture[:, :half], VALIDATION) > 0.8
    assert curve_slope(picture[:, half:], TRAIN) > 0.8 and curve_slope(picture[:, half:], VALIDATION) < -0.8


def test_encode_png_round_trips_pixels():
    rgb = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode(encode_png(rgb)), rgb)
