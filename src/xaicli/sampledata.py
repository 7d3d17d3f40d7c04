"""Deterministic synthetic sample data whose ground truth is known.

Real datasets (chest X-rays, UTKFace, DRIVE) cannot be shipped or downloaded, and explainers can
only be judged on data where we *know* which pixels carry the signal. Each set mimics the layout
and look of its real counterpart and plants the signal in a known region:

* ``chest/``  grayscale torso with two lung fields, folder-per-class; the three pathology classes
  differ only by a lesion (nodule, consolidation, cavity) placed inside a lung: lesion and lung
  masks are written for every image.
* ``faces/``  UTKFace-named RGB images (``{age}_{gender}_{race}_{id}.jpg``); the age signal
  (wrinkle lines, their contrast and count) lies inside the face ellipse only, the background is
  random clutter; face masks are written.
* ``retina/`` fundus-like images with branching vessel trees in the DRIVE layout
  (``images/*.tif``, ``1st_manual/*.gif``, ``mask/*.gif``).
* ``defects/`` grayscale photos of brushed, textured surfaces, folder-per-class (``ok``,
  ``scratch``, ``dent``, ``spot``); a defect of random size, place and contrast (some faint, so a
  model errs on a few) is the only difference from ``ok``; defect masks are written.
* ``dicom/``  one CR series built from chest test images, carrying fictitious patient data in the
  places real files do (names, IDs, dates, institution, descriptions, a nested reference sequence,
  a private tag holding the patient's name), for the de-identification demo
  (:mod:`xaicli.sample_dicom`).

``python -m xaicli.sampledata OUT`` regenerates everything; the output is bit-identical for a
given seed and library versions (checked by the tests against ``sample_data/``).
"""

from __future__ import annotations

import io as _io
import math
from pathlib import Path

import numpy as np

from xaicli.io import encode_png, write_bytes
from xaicli.sample_dicom import make_dicom

CHEST_CLASSES = ("normal", "nodule", "consolidation", "cavity")
CHEST_SIZE = 64
FACE_SIZE = 64
RETINA_SIZE = 128
DEFECT_CLASSES = ("ok", "scratch", "dent", "spot")
DEFECT_SIZE = 64
DEFAULT_SEED = 20261122


def _rng(seed: int, name: str) -> np.random.Generator:
    # One independent stream per set, so changing one set never changes another.
    return np.random.default_rng([seed, sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**32])


def _cv2():
    import cv2

    return cv2


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------- chest


def chest_image(rng: np.random.Generator, label: str, size: int = CHEST_SIZE):
    """One chest radiograph-like image (float (H, W) in [0, 1]), its lesion mask and lung mask."""
    cv2 = _cv2()
    s = size / 64.0
    image = np.full((size, size), 0.06, np.float32)
    cx = size / 2 + rng.uniform(-2, 2) * s
    cy = size / 2 + rng.uniform(-1, 2) * s
    body = np.zeros_like(image)
    cv2.ellipse(body, (round(cx), round(cy + 4 * s)), (round(28 * s), round(30 * s)), 0, 0, 360, 1.0, -1)
    image += 0.42 * body
    lungs = np.zeros((size, size), np.uint8)
    gap = rng.uniform(5.5, 7.5) * s
    lung_axes = (round(rng.uniform(8.5, 10.5) * s), round(rng.uniform(16, 19) * s))
    centres = []
    for side in (-1, 1):
        lx = round(cx + side * (gap + lung_axes[0]))
        ly = round(cy + rng.uniform(-1, 1) * s)
        angle = side * rng.uniform(4, 10)
        cv2.ellipse(lungs, (lx, ly), lung_axes, angle, 0, 360, 1, -1)
        centres.append((lx, ly, angle))
    lung_mask = lungs.astype(bool)
    image[lung_mask] -= 0.26
    # Ribs: faint bright arcs across each lung, and the spine between them.
    ribs = np.zeros_like(image)
    for lx, ly, _ in centres:
        for k in range(-3, 4):
            y = round(ly + k * 5 * s)
            cv2.ellipse(ribs, (lx, y - round(6 * s)), (round(12 * s), round(6 * s)), 0, 20, 160, 1.0, max(1, round(s)))
    image += 0.06 * ribs * lung_mask
    cv2.rectangle(image, (round(cx - 2 * s), round(cy - 22 * s)), (round(cx + 2 * s), round(cy + 30 * s)), 0.62, -1)

    lesion = np.zeros((size, size), np.float32)
    extent = np.zeros((size, size), np.float32)
    if label != "normal":
        lx, ly, _ = centres[int(rng.integers(2))]
        for _ in range(100):  # a lesion centre well inside the chosen lung
            px = round(lx + rng.uniform(-0.55, 0.55) * lung_axes[0])
            py = round(ly + rng.uniform(-0.6, 0.6) * lung_axes[1])
            if lungs[py, px]:
                break
        if label == "nodule":
            radius = rng.uniform(2.2, 3.2) * s
            cv2.circle(lesion, (px, py), round(radius), 1.0, -1)
        elif label == "consolidation":
            for _ in range(4):  # an irregular patch of overlapping blobs
                ox, oy = rng.uniform(-3, 3, 2) * s
                axes = (round(rng.uniform(3, 5) * s), round(rng.uniform(3, 5) * s))
                cv2.ellipse(lesion, (round(px + ox), round(py + oy)), axes, rng.uniform(0, 180), 0, 360, 0.8, -1)
        else:  # cavity: a thick bright wall around a dark centre
            radius = round(rng.uniform(4, 5.5) * s)
            wall = max(2, round(1.6 * s))
            cv2.circle(lesion, (px, py), radius, 1.0, wall)
            # the lesion is the whole cavity, its dark lumen included (as a radiologist outlines it)
            cv2.circle(extent, (px, py), radius + wall // 2, 1.0, -1)
        lesion *= lungs  # evidence stays inside the lung field
    lesion_mask = (lesion > 0) | (extent * lungs > 0)
    image += 0.38 * lesion
    image = cv2.GaussianBlur(image, (0, 0), 0.7 * s)
    image += rng.normal(0, 0.025, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), lesion_mask, lung_mask


def make_chest(out: Path, rng: np.random.Generator, *, per_class=(60, 15), overwrite=False) -> int:
    count = 0
    for split, n in zip(("train", "test"), per_class, strict=True):
        index = 0
        for label in CHEST_CLASSES:
            for _ in range(n):
                image, lesion, lungs = chest_image(rng, label)
                name = f"{split}_{index:04d}.png"
                index += 1
                write_bytes(out / split / label / name, encode_png(_to_u8(image)), overwrite=overwrite)
                write_bytes(out / "masks" / "lesion" / split / label / name, encode_png(lesion), overwrite=overwrite)
                write_bytes(out / "masks" / "lungs" / split / label / name, encode_png(lungs), overwrite=overwrite)
                count += 1
    return count


# ----------------------------------------------------------------------------------- defects


def surface(rng: np.random.Generator, size: int = DEFECT_SIZE) -> np.ndarray:
    """A brushed surface: noise smeared along a random direction, a light gradient, soft stains."""
    cv2 = _cv2()
    noise = rng.normal(0, 1, (size, size)).astype(np.float32)
    angle = rng.uniform(0, 180)
    length = int(rng.integers(7, 13))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    brushed = cv2.filter2D(noise, -1, kernel, borderType=cv2.BORDER_REFLECT)
    brushed = (brushed - brushed.mean()) / (brushed.std() + 1e-6)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gx, gy = rng.uniform(-0.12, 0.12, 2)
    image = rng.uniform(0.42, 0.58) + gx * (xx - 0.5) + gy * (yy - 0.5) + 0.035 * brushed
    stains = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 8)
    image += stains * 0.025 / (stains.std() + 1e-6)  # large, faint: texture, not a defect
    return image.astype(np.float32)


def defect_image(rng: np.random.Generator, label: str, size: int = DEFECT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One surface (float (H, W) in [0, 1]) with a defect of ``label`` and its mask."""
    cv2 = _cv2()
    image = surface(rng, size)
    mask = np.zeros((size, size), np.uint8)
    strength = rng.uniform(0.08, 0.30)  # some defects are faint: the model misses a few
    cx, cy = (int(v) for v in rng.integers(10, size - 10, 2))
    if label == "scratch":
        angle = rng.uniform(0, math.pi)
        half = rng.uniform(7, 14)
        p0 = (round(cx - half * math.cos(angle)), round(cy - half * math.sin(angle)))
        p1 = (round(cx + half * math.cos(angle)), round(cy + half * math.sin(angle)))
        line = np.zeros_like(image)
        cv2.line(line, p0, p1, 1.0, 1, cv2.LINE_AA)
        image += strength * (1 if rng.random() < 0.5 else -1) * line
        cv2.line(mask, p0, p1, 1, 3)
    elif label == "dent":
        radius = rng.uniform(4.0, 7.5)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        d = np.hypot(xx - cx, yy - cy) / radius
        theta = rng.uniform(0, 2 * math.pi)  # the light falls from one side: bright rim, dark rim
        shade = np.where(d < 1, ((xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)) / radius, 0)
        image += strength * 2.6 * shade * np.clip(1 - d, 0, 1) ** 0.5
        mask[d < 1.1] = 1
    elif label == "spot":
        radius = rng.uniform(1.8, 3.6)
        blob = np.zeros_like(image)
        cv2.ellipse(blob, (cx, cy), (round(radius * rng.uniform(0.8, 1.3)), round(radius)),
                    rng.uniform(0, 180), 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), 0.8)
        image -= strength * 1.2 * blob
        mask[blob > 0.25] = 1
    image += rng.normal(0, 0.012, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), mask.astype(bool)


def make_defects(out: Path, rng: np.random.Generator, *, per_class=(100, 20), overwrite=False) -> int:
    count = 0
    for split, n in zip(("train", "test"), per_class, strict=True):
        index = 0
        for label in DEFECT_CLASSES:
            for _ in range(n):
                image, mask = defect_image(rng, label)
                name = f"{split}_{index:04d}.png"
                index += 1
                write_bytes(out / split / label / name, encode_png(_to_u8(image)), overwrite=overwrite)
                write_bytes(out / "masks" / split / label / name, encode_png(mask), overwrite=overwrite)
                count += 1
    return count


# ------------------------------------------------------------------------------------- faces

_SKIN = ((0.93, 0.80, 0.70), (0.45, 0.30, 0.22), (0.85, 0.72, 0.55), (0.72, 0.55, 0.40), (0.80, 0.62, 0.50))


def face_image(rng: np.random.Generator, age: int, race: int, size: int = FACE_SIZE):
    """One face-like RGB image (float (H, W, 3)) whose age signal lies inside the face mask."""
    cv2 = _cv2()
    image = np.empty((size, size, 3), np.float32)
    top, bottom = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    image[:] = top * (1 - ramp) + bottom * ramp
    for _ in range(int(rng.integers(6, 12))):  # clutter, unrelated to age
        colour = tuple(float(v) for v in rng.uniform(0, 1, 3))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        kind = int(rng.integers(3))
        if kind == 0:
            cv2.rectangle(image, p1, p2, colour, -1)
        elif kind == 1:
            cv2.line(image, p1, p2, colour, int(rng.integers(1, 3)))
        else:
            cv2.circle(image, p1, int(rng.integers(2, 7)), colour, -1)
    cx, cy = (int(v) for v in rng.integers(size // 2 - 6, size // 2 + 7, 2))
    axes = (int(rng.integers(13, 16)), int(rng.integers(17, 21)))
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (cx, cy), axes, 0, 0, 360, 1, -1)
    face = mask.astype(bool)
    skin = np.array(_SKIN[race], np.float32) * rng.uniform(0.92, 1.05)
    image[face] = skin
    # Age: wrinkle lines on the forehead and cheeks; their number and contrast grow with age.
    signal = np.zeros((size, size), np.float32)
    strength = age / 80.0
    lines = 1 + int(round(strength * 4))
    for k in range(lines):
        y = cy - axes[1] + 5 + 2 * k
        cv2.line(signal, (cx - axes[0] + 5, y), (cx + axes[0] - 5, y), 1.0, 1)
    for side in (-1, 1):
        for k in range(lines - 1):
            x = cx + side * (axes[0] - 4)
            cv2.line(signal, (x, cy + 2 * k), (x - side * 3, cy + 2 * k + 2), 1.0, 1)
    image -= (0.15 + 0.55 * strength) * signal[:, :, None] * face[:, :, None]
    spots = (rng.uniform(0, 1, (size, size)) < 0.06 * strength) & face
    image[spots] *= 0.7
    for side in (-1, 1):  # eyes and mouth: present at every age
        cv2.circle(image, (cx + side * 5, cy - 1), 2, (0.1, 0.1, 0.12), -1)
    cv2.line(image, (cx - 4, cy + 9), (cx + 4, cy + 9), (0.45, 0.12, 0.12), 1)
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), face


def make_faces(out: Path, rng: np.random.Generator, *, counts=(200, 40), overwrite=False) -> int:
    count = 0
    for split, n in zip(("train", "test"), counts, strict=True):
        for index in range(n):
            age = int(rng.integers(1, 81))
            gender, race = int(rng.integers(2)), int(rng.integers(5))
            image, face = face_image(rng, age, race)
            stem = f"{age}_{gender}_{race}_{split}{index:04d}"
            cv2 = _cv2()
            ok, jpeg = cv2.imencode(".jpg", _to_u8(image)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            write_bytes(out / split / f"{stem}.jpg", jpeg.tobytes(), overwrite=overwrite)
            write_bytes(out / "masks" / split / f"{stem}.png", encode_png(face), overwrite=overwrite)
            count += 1
    return count


# ------------------------------------------------------------------------------------ retina


def _vessel(draw, rng, x, y, angle, width, length, depth):
    cv2 = _cv2()
    steps = int(length)
    for _ in range(steps):
        angle += rng.normal(0, 0.12)
        nx, ny = x + math.cos(angle) * 1.5, y + math.sin(angle) * 1.5
        cv2.line(draw, (round(x), round(y)), (round(nx), round(ny)), 1, max(1, round(width)))
        x, y = nx, ny
        if not (0 <= x < draw.shape[1] and 0 <= y < draw.shape[0]):
            return
    if depth > 0 and width > 1.0:
        for turn in (-1, 1):
            _vessel(draw, rng, x, y, angle + turn * rng.uniform(0.35, 0.8), width * 0.72, length * 0.75, depth - 1)


def retina_image(rng: np.random.Generator, size: int = RETINA_SIZE):
    """A fundus-like RGB image, its vessel mask and its field-of-view mask."""
    cv2 = _cv2()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    fov = ((xx - c) ** 2 + (yy - c) ** 2) <= (0.47 * size) ** 2
    disc_side = 1 if rng.uniform() < 0.5 else -1
    dx, dy = c + disc_side * 0.28 * size, c + rng.uniform(-0.06, 0.06) * size
    falloff = 1.0 - 0.45 * np.sqrt((xx - c) ** 2 + (yy - c) ** 2) / size
    base = np.stack([0.82 * falloff, 0.36 * falloff, 0.16 * falloff], axis=2)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 2.0)
    base += 0.05 * texture[:, :, None]
    vessels = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(4, 6))):
        angle = rng.uniform(0, 2 * math.pi)
        _vessel(vessels, rng, dx, dy, angle, rng.uniform(2.4, 3.4), rng.uniform(18, 26), 3)
    vessel_mask = vessels.astype(bool) & fov
    image = base.copy()
    image[vessel_mask] *= np.array([0.62, 0.42, 0.55], np.float32)
    disc = ((xx - dx) ** 2 + (yy - dy) ** 2) <= (0.07 * size) ** 2
    image[disc] = image[disc] * 0.4 + np.array([0.98, 0.85, 0.55], np.float32) * 0.6
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    image += rng.normal(0, 0.015, image.shape).astype(np.float32)
    image[~fov] = 0.0
    return np.clip(image, 0, 1), vessel_mask, fov


def _gif_bytes(mask: np.ndarray) -> bytes:
    from PIL import Image

    buffer = _io.BytesIO()
    Image.fromarray((mask.astype(np.uint8) * 255), mode="L").save(buffer, format="GIF")
    return buffer.getvalue()


def make_retina(out: Path, rng: np.random.Generator, *, counts=(12, 6), overwrite=False) -> int:
    cv2 = _cv2()
    count = 0
    # DRIVE numbers its training images 21-40 and its test images 01-20.
    for split, n, first in (("training", counts[0], 21), ("test", counts[1], 1)):
        for index in range(first, first + n):
            image, vessels, fov = retina_image(rng)
            ok, tif = cv2.imencode(".tif", _to_u8(image)[:, :, ::-1], [cv2.IMWRITE_TIFF_COMPRESSION, 1])
            write_bytes(out / split / "images" / f"{index:02d}_{split}.tif", tif.tobytes(), overwrite=overwrite)
            write_bytes(out / split / "1st_manual" / f"{index:02d}_manual1.gif", _gif_bytes(vessels), overwrite=overwrite)
            write_bytes(out / split / "mask" / f"{index:02d}_{split}_mask.gif", _gif_bytes(fov), overwrite=overwrite)
            count += 1
    return count


# ---------------------------------------------------------------------------------- all sets


def generate(out: str | Path, *, seed: int = DEFAULT_SEED, overwrite: bool = False) -> dict[str, int]:
    """Write every set under ``out``; returns the number of images per set."""
    out = Path(out)
    counts = {
        "chest": make_chest(out / "chest", _rng(seed, "chest"), overwrite=overwrite),
        "faces": make_faces(out / "faces", _rng(seed, "faces"), overwrite=overwrite),
        "retina": make_retina(out / "retina", _rng(seed, "retina"), overwrite=overwrite),
        "defects": make_defects(out / "defects", _rng(seed, "defects"), overwrite=overwrite),
    }
    dicom_rng = _rng(seed, "dicom")
    chest_test = [chest_image(dicom_rng, label)[0] for label in ("normal", "nodule", "consolidation", "cavity", "normal")]
    counts["dicom"] = make_dicom(out / "dicom", chest_test, overwrite=overwrite)
    return counts


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xaicli.sampledata", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    counts = generate(args.out, seed=args.seed, overwrite=args.overwrite)
    print(", ".join(f"{name}: {n}" for name, n in counts.items()))


if __name__ == "__main__":
    main()
