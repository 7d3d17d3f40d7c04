"""Helpers shared by the test modules (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(path: Path, pixels: np.ndarray, **attributes) -> Path:
    """A small uncompressed DICOM with a (fictitious) patient name, for reader and batch tests."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Secret^Person"
    frames = pixels.shape[0] if pixels.ndim == 3 and attributes.get("SamplesPerPixel", 1) == 1 else 1
    ds.Rows, ds.Columns = pixels.shape[-2], pixels.shape[-1]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


SIZE = 24
CLASSES = ["normal", "spot"]


def tiny_classifier(root: Path, per_class: int = 3, size: int = SIZE) -> Path:
    """Folder-per-class grey images under ``root/test`` (a bright 4x4 spot for 'spot'), their
    lesion masks under ``root/masks`` and an untrained two-conv CNN ``root/model.keras``."""
    import keras

    from xaicli.api import ModelInfo
    from xaicli.io import write_png
    from xaicli.models.io import save_model

    rng = np.random.default_rng(0)
    for cls in CLASSES:
        for i in range(per_class):
            image = (0.3 + 0.1 * rng.random((size, size))).astype(np.float32)
            mask = np.zeros((size, size), bool)
            if cls == "spot":
                y, x = rng.integers(4, size - 8, 2)
                image[y : y + 4, x : x + 4] = 1.0
                mask[y : y + 4, x : x + 4] = True
            write_png(root / "test" / cls / f"{cls}_{i}.png", image[:, :, None])
            write_png(root / "masks" / cls / f"{cls}_{i}.png", mask)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    info = ModelInfo(task="classification", input_shape=(size, size, 1), class_names=CLASSES, cam_layer="conv2")
    return save_model(model, info, root / "model.keras")


def read_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_cli(*args, code: int = 0):
    """``xaicli ARGS`` in-process; asserts its exit code (0 unless told)."""
    from typer.testing import CliRunner

    from xaicli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result
