"""The generator is deterministic and the committed sample data is exactly its output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaicli import sample_dicom, sampledata
from xaicli.io import read_image, read_mask

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
GENERATED_SETS = ("chest", "faces", "retina", "defects", "dicom")


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for name in GENERATED_SETS
        for p in sorted((root / name).rglob("*"))
        if p.is_file()
    }


def test_generator_reproduces_the_committed_sample_data_bit_for_bit(tmp_path):
    counts = sampledata.generate(tmp_path)
    assert counts == {"chest": 300, "faces": 240, "retina": 18, "defects": 480, "dicom": 5}
    fresh, committed = _files(tmp_path), _files(SAMPLE)
    assert sorted(fresh) == sorted(committed)
    different = [name for name in fresh if fresh[name] != committed[name]]
    assert different == []


def test_another_seed_gives_other_data(tmp_path):
    sampledata.make_faces(tmp_path, sampledata._rng(1, "faces"), counts=(2, 0))
    first = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert first != sorted(p.name for p in (SAMPLE / "faces" / "train").iterdir())[:2]


def test_chest_ground_truth_lesions_lie_inside_the_lungs_and_only_in_pathology_classes():
    for label in sampledata.CHEST_CLASSES:
        for image_path in sorted((SAMPLE / "chest" / "test" / label).glob("*.png"))[:5]:
            lesion = read_mask(SAMPLE / "chest" / "masks" / "lesion" / "test" / label / image_path.name)
            lungs = read_mask(SAMPLE / "chest" / "masks" / "lungs" / "test" / label / image_path.name)
            assert lungs.sum() > 200
            if label == "normal":
                assert lesion.sum() == 0
            else:
                assert lesion.sum() >= 9 and not (lesion & ~lungs).any()
                image = read_image(image_path)[..., 0]
                assert image[lesion].mean() > image[lungs & ~lesion].mean() + 0.15  # visible


def test_face_age_signal_lies_inside_the_face_mask():
    images = sorted((SAMPLE / "faces" / "train").glob("*.jpg"))
    assert len(images) == 200
    ages = [int(p.name.split("_")[0]) for p in images]
    assert 1 <= min(ages) and max(ages) <= 80
    for path in images[:5]:
        mask = read_mask(SAMPLE / "faces" / "masks" / "train" / (path.stem + ".png"))
        assert 300 < mask.sum() < 64 * 64 / 2
    # the generator's own signal map is confined to the face: old and young differ inside only
    rng_a, rng_b = sampledata._rng(7, "x"), sampledata._rng(7, "x")
    young, face = sampledata.face_image(rng_a, 5, 0)
    old, face_b = sampledata.face_image(rng_b, 75, 0)
    assert (face == face_b).all()
    diff = np.abs(old - young).max(axis=2)
    assert diff[~face].max() < 1e-6 and diff[face].max() > 0.3


def test_retina_follows_the_drive_layout():
    root = SAMPLE / "retina"
    images = sorted((root / "training" / "images").glob("*_training.tif"))
    assert [p.name[:2] for p in images] == [str(n) for n in range(21, 33)]
    for path in images[:2]:
        number = path.name[:2]
        vessels = read_mask(root / "training" / "1st_manual" / f"{number}_manual1.gif")
        fov = read_mask(root / "training" / "mask" / f"{number}_training_mask.gif")
        image = read_image(path)
        assert image.shape == (128, 128, 3) and vessels.shape == (128, 128)
        assert 0.03 < vessels.mean() < 0.3 and not (vessels & ~fov).any()
        assert image[vessels, 1].mean() < image[fov & ~vessels, 1].mean()  # vessels are darker


def test_dicom_series_carries_fictitious_patient_data_and_chest_pixels():
    from xaicli.dicom import read_dataset

    files = sorted((SAMPLE / "dicom").glob("*.dcm"))
    assert len(files) == 5
    datasets = [read_dataset(p) for p in files]
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 5
    ds = datasets[0]
    assert str(ds.PatientName) == sample_dicom.FICTITIOUS_PATIENT["PatientName"]
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID
    private = [e for e in ds if e.tag.is_private and e.VR == "PN"]
    assert private and str(private[0].value) == str(ds.PatientName)
    image = read_image(files[1])
    assert image.shape == (64, 64, 1) and image.max() > 0.3


def test_defects_differ_from_ok_only_by_the_masked_defect():
    """The defect pixels carry the signal: inside the mask the image departs from its surroundings."""
    for label in sampledata.DEFECT_CLASSES:
        for image_path in sorted((SAMPLE / "defects" / "test" / label).glob("*.png"))[:5]:
            mask = read_mask(SAMPLE / "defects" / "masks" / "test" / label / image_path.name)
            if label == "ok":
                assert mask.sum() == 0
                continue
            assert mask.sum() >= 5
            image = read_image(image_path)[..., 0]
            ring = np.zeros_like(mask)
            ys, xs = np.nonzero(mask)
            ring[max(ys.min() - 4, 0): ys.max() + 5, max(xs.min() - 4, 0): xs.max() + 5] = True
            ring &= ~mask
            assert abs(image[mask].mean() - image[ring].mean()) > 0.005 or image[mask].std() > image[ring].std()
