"""Readers on every format, good and bad, and the atomic writers."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_dicom
from PIL import Image

from xaicli import io
from xaicli.errors import InputError, OutputError

RAMP = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))  # (8, 16)


def _write(path: Path, array: np.ndarray, **params) -> Path:
    ok, data = cv2.imencode(path.suffix, array, *([list(params.values())] if params else []))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_png_grayscale_rgb_and_rgba(tmp_path):
    gray = io.read_image(_write(tmp_path / "g.png", RAMP))
    assert gray.shape == (8, 16, 1) and gray.dtype == np.float32
    np.testing.assert_allclose(gray[0, :, 0], RAMP[0] / 255.0, atol=1e-6)

    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    rgb = io.read_image(_write(tmp_path / "c.png", bgr))
    assert rgb.shape == (4, 4, 3)
    assert rgb[0, 0].tolist() == [1.0, 0.0, 0.0]  # comes back as RGB

    bgra = np.dstack([bgr, np.full((4, 4), 0, np.uint8)])
    bgra[0, 0, 3] = 255
    rgba = io.read_image(_write(tmp_path / "a.png", bgra))
    assert rgba.shape == (4, 4, 3)
    assert rgba[0, 0].tolist() == [1.0, 0.0, 0.0] and rgba[1, 1].tolist() == [0.0, 0.0, 0.0]


def test_sixteen_bit_png_and_tiff_keep_their_precision(tmp_path):
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    for suffix in (".png", ".tif"):
        image = io.read_image(_write(tmp_path / f"d{suffix}", deep))
        assert image.shape == (8, 8, 1)
        np.testing.assert_allclose(image[..., 0], deep / 65535.0, atol=1e-7)
    rgb16 = np.dstack([deep, deep // 2, deep // 4])
    image = io.read_image(_write(tmp_path / "rgb16.tiff", rgb16))
    np.testing.assert_allclose(image[..., 2], deep / 65535.0, atol=1e-7)  # BGR -> RGB


def test_jpeg_bmp_tiff(tmp_path):
    for suffix in (".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        image = io.read_image(_write(tmp_path / f"x{suffix}", np.dstack([RAMP] * 3)))
        assert image.shape == (8, 16, 3)
        assert abs(float(image[0, -1, 0]) - 240 / 255) < 0.05


def test_gif_masks_like_drive(tmp_path):
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 255
    Image.fromarray(mask, mode="L").save(tmp_path / "m.gif")
    image = io.read_image(tmp_path / "m.gif")
    assert image.shape == (10, 12, 1)
    np.testing.assert_array_equal(io.read_mask(tmp_path / "m.gif"), mask > 0)
    resized = io.read_mask(tmp_path / "m.gif", shape=(20, 24))
    assert resized.shape == (20, 24) and resized.dtype == bool and resized.sum() == 4 * mask.astype(bool).sum()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.png", b"", "file is empty"),
        ("text.png", b"hello, not an image", "not a valid PNG"),
        ("notes.txt", b"hello", "not an image file"),
        ("garbage.dcm", b"\x00" * 300, "not a valid DICOM"),
    ],
)
def test_bad_files_name_the_file_and_the_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        io.read_image(path)
    assert str(path) in str(caught.value) and reason in str(caught.value)


def test_truncated_png_and_jpeg_are_refused(tmp_path):
    for suffix, marker in ((".png", "truncated PNG"), (".jpg", "truncated JPEG")):
        good = _write(tmp_path / f"good{suffix}", np.dstack([RAMP] * 3))
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
        with pytest.raises(InputError, match=marker):
            io.read_image(cut)


def test_mislabelled_file_is_refused(tmp_path):
    jpeg = _write(tmp_path / "real.jpg", RAMP)
    fake = tmp_path / "fake.png"
    fake.write_bytes(jpeg.read_bytes())
    with pytest.raises(InputError, match="mislabelled file: content is JPEG, name says PNG"):
        io.read_image(fake)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        io.read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        io.read_image(tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        io.iter_image_files([tmp_path / "missing"])


def test_folder_walk_is_recursive_sorted_and_skips_hidden_and_non_images(tmp_path):
    for rel in ["b/2.png", "b/10.png", "a.jpg", "c/d/e.tif", ".hidden/x.png", "notes.txt", "b/.x.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in io.iter_image_files([tmp_path])]
    assert found == ["a.jpg", "b/10.png", "b/2.png", "c/d/e.tif"]


# ------------------------------------------------------------------------------------ DICOM


def test_dicom_rescale_and_window(tmp_path):
    stored = np.array([[0, 1000], [2000, 4000]], np.uint16)
    path = write_dicom(tmp_path / "w.dcm", stored, RescaleSlope="1", RescaleIntercept="-1000",
                  WindowCenter="0", WindowWidth="2000")
    image = io.read_image(path)[..., 0]
    # modality values -1000, 0, 1000, 3000; window [-1000, 1000) -> 0 .. 1, clipped above.
    assert image[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert image[0, 1] == pytest.approx(0.5, abs=1e-3)
    assert image[1, 0] == pytest.approx(1.0, abs=1e-3) and image[1, 1] == pytest.approx(1.0, abs=1e-3)


def test_dicom_without_window_uses_full_range_and_monochrome1_is_inverted(tmp_path):
    stored = np.array([[0, 100], [200, 400]], np.uint16)
    plain = io.read_image(write_dicom(tmp_path / "p.dcm", stored))[..., 0]
    np.testing.assert_allclose(plain, stored / 400.0, atol=1e-6)
    inverted = io.read_image(write_dicom(tmp_path / "m1.dcm", stored, PhotometricInterpretation="MONOCHROME1"))[..., 0]
    np.testing.assert_allclose(inverted, 1.0 - stored / 400.0, atol=1e-6)


def test_dicom_multiframe_needs_an_explicit_frame(tmp_path):
    stack = np.stack([np.full((4, 4), v, np.uint16) for v in (0, 100, 200)])
    stack[:, 0, 0], stack[:, 0, 1] = 0, 400  # every frame spans 0..400
    path = write_dicom(tmp_path / "mf.dcm", stack)
    with pytest.raises(InputError, match="multi-frame DICOM with 3 frames"):
        io.read_image(path)
    assert io.read_image(path, frame=1)[1, 1, 0] == pytest.approx(0.25)
    with pytest.raises(InputError, match="frame 5 does not exist"):
        io.read_image(path, frame=5)


def test_dicom_truncated_and_compressed_without_decoder(tmp_path):
    good = write_dicom(tmp_path / "good.dcm", np.zeros((32, 32), np.uint16))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:-700])
    with pytest.raises(InputError, match="cut.dcm: .*(corrupt|truncated)"):
        io.read_image(cut)
    lossy = _local_pydicom_file("JPEG-lossy.dcm")  # 12-bit JPEG: no bundled decoder reads it
    try:
        import pylibjpeg  # noqa: F401

        pytest.skip("a JPEG decoder is installed")
    except ImportError:
        pass
    with pytest.raises(InputError, match=r"no decoder .*pip install 'xaicli\[dicom-codecs\]'"):
        io.read_image(lossy)


def test_dicom_errors_never_carry_patient_data(tmp_path):
    good = write_dicom(tmp_path / "good.dcm", np.zeros((8, 8), np.uint16))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(InputError) as caught:
        io.read_image(cut)
    assert "Secret" not in str(caught.value)


def _local_pydicom_file(name: str) -> Path:
    # Only files bundled in the wheel: get_testdata_file would try to download the others.
    import pydicom.data

    path = Path(pydicom.data.__file__).parent / "test_files" / name
    if not path.exists():
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


def test_pydicom_test_files_read():
    for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "JPEG2000.dcm"):
        image = io.read_image(_local_pydicom_file(name))
        assert image.ndim == 3 and image.shape[2] in (1, 3)
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.0


# ---------------------------------------------------------------------------------- writers


def test_writers_are_atomic_and_refuse_to_overwrite(tmp_path):
    target = tmp_path / "out" / "t.csv"
    io.write_csv(target, [{"a": 1, "b": 0.5}])
    assert target.read_text().splitlines() == ["a,b", "1,0.5"]
    with pytest.raises(OutputError, match="exists already"):
        io.write_csv(target, [{"a": 2, "b": 1.0}])
    assert target.read_text().splitlines()[1] == "1,0.5"
    io.write_csv(target, [{"a": 2, "b": 1.0}], overwrite=True)
    assert target.read_text().splitlines()[1] == "2,1"

    def failing_rows():
        yield {"a": 1, "b": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.write_csv(tmp_path / "never.csv", failing_rows())
    assert not (tmp_path / "never.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_npy_npz_png_roundtrip(tmp_path):
    saliency = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    np.testing.assert_array_equal(np.load(io.write_npy(tmp_path / "m.npy", saliency)), saliency)
    with np.load(io.write_npz(tmp_path / "m.npz", saliency=saliency)) as data:
        np.testing.assert_array_equal(data["saliency"], saliency)
    picture = (np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    io.write_png(tmp_path / "p.png", picture)
    np.testing.assert_allclose(io.read_image(tmp_path / "p.png") * 255, picture, atol=1e-4)


def test_overlay_is_jet_blended_on_the_image():
    image = np.zeros((8, 8, 1), np.float32)
    saliency = np.zeros((4, 4), np.float32)
    saliency[0, 0] = 1.0
    blended = io.overlay(image, saliency, alpha=1.0)
    assert blended.shape == (8, 8, 3) and blended.dtype == np.uint8
    red, green, blue = (int(v) for v in blended[0, 0])
    assert red > 100 and blue < 50  # jet: high = red
    red, green, blue = (int(v) for v in blended[7, 7])
    assert blue > 100 and red < 50  # low = blue
    assert (io.overlay(image, saliency, alpha=0.0) == 0).all()
    with pytest.raises(InputError):
        io.overlay(image, saliency, colormap="rainbowish")


def test_readers_never_modify_inputs(tmp_path):
    path = _write(tmp_path / "x.png", RAMP)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    io.read_image(path)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def test_dicom_empty_window_or_voi_lut_sequence_means_no_window(tmp_path):
    from pydicom.sequence import Sequence

    stored = np.array([[0, 100], [200, 400]], np.uint16)
    for name, attributes in (("w.dcm", {"WindowCenter": None, "WindowWidth": None}),
                             ("c.dcm", {"WindowCenter": None, "WindowWidth": "100"}),
                             ("s.dcm", {"VOILUTSequence": Sequence([])})):
        image = io.read_image(write_dicom(tmp_path / name, stored, **attributes))[..., 0]
        np.testing.assert_allclose(image, stored / 400.0, atol=1e-6)  # the full range, as without a window


def test_an_unexpected_decoder_error_names_the_file(tmp_path, monkeypatch):
    from xaicli import dicom

    path = write_dicom(tmp_path / "odd.dcm", np.zeros((4, 4), np.uint16))

    def broken(*args):
        raise IndexError("Secret^Person")  # a decoder message may quote patient data

    monkeypatch.setattr(dicom, "_read_dicom_image", broken)
    with pytest.raises(InputError, match=r"odd\.dcm: cannot read the image \(IndexError") as caught:
        io.read_image(path)
    assert "Secret" not in str(caught.value)


def test_corrupt_tiff_and_png_print_nothing_on_stderr(tmp_path, capfd):
    """OpenCV's and libpng's own error lines never reach the terminal: the one red line does."""
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    _, tiff = cv2.imencode(".tif", image)
    tiff = tiff.tobytes()
    (tmp_path / "bad.tif").write_bytes(tiff[: len(tiff) // 2] + bytes(len(tiff) - len(tiff) // 2))
    _, png = cv2.imencode(".png", image)
    png = png.tobytes()
    (tmp_path / "bad.png").write_bytes(png[:200] + bytes(200) + png[400:])  # IDAT damaged, IEND intact
    capfd.readouterr()
    with pytest.raises(InputError, match="bad.tif: cannot decode"):
        io.read_image(tmp_path / "bad.tif")
    with pytest.raises(InputError, match=r"bad.png: corrupt PNG \(CRC error"):
        io.read_image(tmp_path / "bad.png")
    err = capfd.readouterr().err
    assert "TIFF" not in err and "libpng" not in err and "ERROR" not in err, err


def test_multi_page_tiff_and_animated_gif_need_an_explicit_frame(tmp_path):
    pages = [Image.fromarray(np.full((4, 6), v, np.uint8)) for v in (0, 128, 255)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    pages[0].convert("P").save(tmp_path / "anim.gif", save_all=True, append_images=[p.convert("P") for p in pages[1:]])
    with pytest.raises(InputError, match=r"stack.tif: multi-page TIFF with 3 frames"):
        io.read_image(tmp_path / "stack.tif")
    with pytest.raises(InputError, match=r"anim.gif: animated GIF with 3 frames"):
        io.read_image(tmp_path / "anim.gif")
    assert io.read_image(tmp_path / "stack.tif", frame=1)[0, 0, 0] == pytest.approx(128 / 255)
    assert io.read_image(tmp_path / "anim.gif", frame=2).max() == pytest.approx(1.0)
    with pytest.raises(InputError, match="frame 3 does not exist"):
        io.read_image(tmp_path / "stack.tif", frame=3)
    pages[0].save(tmp_path / "one.tif")
    assert io.read_image(tmp_path / "one.tif").shape == (4, 6, 1)
