"""Region sources: mask matching by name, fixed shapes, the face detector, --roi parsing."""

from __future__ import annotations

import numpy as np
import pytest

from xaicli.errors import InputError, PluginError, UsageError
from xaicli.io import write_png
from xaicli.rois import (
    FaceDetector,
    FixedBox,
    FixedEllipse,
    MaskFolder,
    NoRegion,
    parse_roi,
    shape_mask,
)


def _mask(path, y0, y1, size=8):
    m = np.zeros((size, size), np.uint8)
    m[y0:y1] = 255
    write_png(path, m)


def test_mask_folder_matches_by_stem_and_by_nearest_folders(tmp_path):
    images = tmp_path / "chest" / "test"
    masks = tmp_path / "chest" / "masks" / "lesion"
    for split in ("test", "train"):
        for cls, rows in (("nodule", (0, 2)), ("cavity", (4, 8))):
            _mask(masks / split / cls / "img_0001.png", *rows)
    _mask(masks / "test" / "cavity" / "only_0002.png", 0, 1)
    source = MaskFolder(masks)
    image = np.zeros((16, 16, 1), np.float32)
    region = source.region(images / "cavity" / "img_0001.png", image, images)
    assert region.shape == (16, 16) and region[8:].all() and not region[:8].any()
    assert source.find(images / "nodule" / "img_0001.png") == masks / "test" / "nodule" / "img_0001.png"
    assert source.find(images / "x" / "only_0002.jpg") == masks / "test" / "cavity" / "only_0002.png"
    with pytest.raises(NoRegion, match="no mask"):
        source.find(images / "nodule" / "missing.png")
    assert source.label == "Roi"


def test_mask_folder_drive_names_and_ambiguity(tmp_path):
    masks = tmp_path / "1st_manual"
    _mask(masks / "21_manual1.png", 0, 3)
    _mask(masks / "a" / "dup.png", 0, 3)
    _mask(masks / "b" / "dup.png", 0, 3)
    source = MaskFolder(masks)
    assert source.find(tmp_path / "images" / "21_training.tif") == masks / "21_manual1.png"
    with pytest.raises(NoRegion, match="several masks"):
        source.find(tmp_path / "c" / "dup.png")


def test_mask_folder_errors_and_face_label(tmp_path):
    with pytest.raises(InputError):
        MaskFolder(tmp_path / "nope")
    empty = tmp_path / "face_masks"
    empty.mkdir()
    assert MaskFolder(empty).label == "Face"
    with pytest.raises(InputError, match="no image files"):
        MaskFolder(empty).find(tmp_path / "x.png")


def test_fixed_shapes_in_fractions_and_pixels():
    image = np.zeros((10, 20, 3), np.float32)
    box = FixedBox.from_spec("0.5,0,1,0.5").region(None, image)
    assert box.sum() == 10 * 5 and box[:5, 10:].all()
    pixels = FixedBox.from_spec("2,2,4,6").region(None, image)
    assert pixels.sum() == 2 * 4 and pixels[2:6, 2:4].all()
    ellipse = FixedEllipse.from_spec("0.5,0.5,0.25,0.5").region(None, image)
    assert ellipse[5, 10] and not ellipse[0, 0]
    assert abs(ellipse.sum() - np.pi * 5 * 5) < 8
    with pytest.raises(UsageError):
        FixedBox.from_spec("1,2,3")
    with pytest.raises(UsageError):
        FixedBox.from_spec("0.5,0.5,0.2,0.9")


def test_shape_mask_inscribed_ellipse_inside_box():
    box = shape_mask((32, 32), "box", (4, 8, 28, 24))
    ellipse = shape_mask((32, 32), "ellipse", (4, 8, 28, 24))
    assert not (ellipse & ~box).any()
    assert ellipse.sum() < box.sum()


def test_face_detector_reports_no_face_and_draws_the_largest(monkeypatch):
    detector = FaceDetector(shape="ellipse")
    flat = np.full((64, 64, 3), 0.5, np.float32)
    with pytest.raises(NoRegion, match="no face found"):
        detector.region("flat.png", flat)
    monkeypatch.setattr(detector, "boxes", lambda image: [(10, 10, 40, 40), (0, 0, 5, 5)])
    region = detector.region("x.png", flat)
    assert region[30, 30] and not region[2, 2] and not region[11, 11]
    assert FaceDetector.from_spec(None).shape == "box"
    with pytest.raises(UsageError):
        FaceDetector(shape="circle")


@pytest.mark.parametrize("size", [512, 128])
def test_face_detector_finds_the_face_of_a_real_portrait(size):
    """scikit-image's astronaut (Eileen Collins, NASA; 512 x 512). Marked by hand on the picture:
    eyes at (205, 102) and (247, 102), mouth at (222, 145), the face from (185, 78) to (262, 168).
    At 128 px the detector works on the picture upscaled to 256 px."""
    import cv2
    from skimage import data

    image = data.astronaut().astype(np.float32) / 255.0
    if size != 512:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    scale = size / 512
    boxes = FaceDetector().boxes(image)
    assert boxes, "no face found"
    x, y, w, h = (v / scale for v in boxes[0])
    for px, py in ((205, 102), (247, 102), (222, 145)):  # eyes and mouth inside the box
        assert x <= px <= x + w and y <= py <= y + h, (boxes[0], (px, py))
    face = (185, 78, 262, 168)
    inter = max(0, min(x + w, face[2]) - max(x, face[0])) * max(0, min(y + h, face[3]) - max(y, face[1]))
    union = w * h + (face[2] - face[0]) * (face[3] - face[1]) - inter
    assert inter / union > 0.5  # the box lies on the face, not on the suit or the flag
    region = FaceDetector(shape="ellipse").region("astronaut.png", image)
    eye = (round(102 * scale), round(205 * scale))
    assert region[eye] and not region[round(400 * scale), round(100 * scale)]  # the face, not the suit


def test_parse_roi(tmp_path):
    _mask(tmp_path / "m" / "a.png", 0, 1)
    assert isinstance(parse_roi(str(tmp_path / "m")), MaskFolder)
    assert isinstance(parse_roi(f"masks:{tmp_path / 'm'}"), MaskFolder)
    face_masks = parse_roi(f"face-masks:{tmp_path / 'm'}")
    assert face_masks.label == "Face"
    assert parse_roi("face:ellipse").shape == "ellipse"
    assert parse_roi("box:0,0,1,1", label="Lung").label == "Lung"
    with pytest.raises(InputError):
        parse_roi(str(tmp_path / "missing" / "dir"))
    with pytest.raises(PluginError, match="did you mean"):
        parse_roi("fcae")
