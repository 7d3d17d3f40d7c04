"""``xaicli serve`` through a real server on a loopback port: each endpoint, each bad upload, the
data rules (DICOM de-identified before anything reads it, nothing of the patient in responses or
logs, the temporary folder empty after every response), and batching of concurrent requests."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from serve_helpers import (
    CHEST_MODEL,
    CHEST_TEST,
    PHI,
    ROOT,
    capture_logs,
    running_service,
    wait_for,
)

import xaicli
from xaicli.io import read_image

DICOM = ROOT / "sample_data" / "dicom"
LESIONS = ROOT / "sample_data" / "chest" / "masks" / "lesion" / "test"
NODULE = CHEST_TEST / "nodule" / "test_0015.png"
LIMITS = {"max_bytes": 200 * 1024, "max_pixels": 300 * 300}


@pytest.fixture(scope="module")
def chest():
    return xaicli.load_model(CHEST_MODEL)


@pytest.fixture(scope="module")
def served(chest):
    with capture_logs() as logs, running_service({"chest": chest}, limits=LIMITS) as service:
        service.logs = logs
        yield service


def decode_png(text: str) -> np.ndarray:
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)
    assert picture is not None, "not a PNG"
    return picture[:, :, ::-1] if picture.ndim == 3 else picture


def png_bytes(shape, value=128) -> bytes:
    ok, data = cv2.imencode(".png", np.full(shape, value, np.uint8))
    return data.tobytes()


def error_of(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    doc = response.json()
    assert set(doc) == {"error"} and doc["error"], doc
    return doc["error"]


# ---------------------------------------------------------------------------------- endpoints


def test_health_readiness_models_and_the_openapi_document(served):
    assert served.client.get("/health").json() == {"status": "ok"}
    ready = served.client.get("/ready").json()
    assert ready["status"] == "ready" and ready["models"] == ["chest"] and set(ready["batched"]) == {"batches", "images"}
    models = served.client.get("/models").json()
    assert models["models"][0]["classes"] == ["cavity", "consolidation", "nodule", "normal"]
    assert models["methods"][0] == "gradcam" and "ig" in models["methods"]
    spec = served.client.get("/openapi.json").json()
    explain = spec["paths"]["/explain"]["post"]
    assert {"method", "layer", "target", "maps", "metrics"} <= {p["name"] for p in explain["parameters"]}
    body = explain["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["image"] and body["properties"]["image"]["format"] == "binary"
    assert "/predict" in spec["paths"] and "/health" in spec["paths"] and "/ready" in spec["paths"]
    assert served.client.get("/docs").status_code == 200
    assert error_of(served.client.get("/nowhere"), 404)


@pytest.mark.parametrize("folder", ["cavity", "consolidation", "nodule", "normal"])
def test_predict_answers_what_the_pipeline_predicts(served, chest, folder):
    path = sorted((CHEST_TEST / folder).glob("*.png"))[1]
    doc = served.post("/predict", path.read_bytes()).json()
    expected = xaicli.explain(chest, path, "gradcam")[0].prediction
    assert doc["prediction"]["predicted"] == expected.label == folder
    assert np.allclose(list(doc["prediction"]["probabilities"].values()), expected.probabilities, atol=1e-5)
    assert doc["image"] == {"format": "PNG", "width": 64, "height": 64, "channels": 1}
    assert "explanations" not in doc
    assert served.uploads() == []


def test_explain_sends_the_pipelines_map_and_the_overlay_explain_draws(served, chest):
    doc = served.post("/explain", NODULE.read_bytes(), params={"method": "gradcam", "maps": "true"}).json()
    (entry,) = doc["explanations"]
    mine = xaicli.explain(chest, NODULE, "gradcam")[0].maps["gradcam"]
    served_map = np.asarray(entry["map"], np.float32)
    assert entry["map_shape"] == [64, 64] and entry["layer"] == "relu4" and entry["target"].endswith("(nodule)")
    assert np.allclose(served_map, mine.map, atol=1e-5 * float(mine.map.max()))
    assert entry["range"] == pytest.approx([float(mine.map.min()), float(mine.map.max())], abs=1e-6)
    picture = decode_png(entry["overlay_png"])
    drawn = xaicli.overlay(read_image(NODULE), mine)
    assert picture.shape == drawn.shape == (64, 64, 3)
    assert np.abs(picture.astype(int) - drawn.astype(int)).max() <= 1
    assert served.uploads() == []


def test_explain_takes_method_layer_target_and_score(served):
    def explain(**params):
        response = served.post("/explain", NODULE.read_bytes(), params=params)
        assert response.status_code == 200, response.text
        return response.json()["explanations"]

    (ig,) = explain(method="ig")
    assert ig["method"] == "ig" and "completeness_gap" in ig and ig["display"] != ""
    assert [e["key"] for e in explain(layer="relu3,relu4")] == ["gradcam", "gradcam@relu3", "gradcam@relu4"]
    (normal,) = explain(target="normal")
    assert normal["target_index"] == 3
    (logit,) = explain(score="logit")
    assert logit["target"].endswith("(logit)")


def test_a_region_sent_with_the_image_is_scored_as_compare_scores_it(served, chest):
    mask = LESIONS / "nodule" / NODULE.name
    doc = served.post("/explain", NODULE.read_bytes(), region=mask.read_bytes()).json()
    (entry,) = doc["explanations"]
    assert doc["region"] == "ok"
    assert {"RoiRatio", "BackgroundRatio", "Entropy", "PointingHit"} <= set(entry["scores"])
    comparison = xaicli.compare(chest, [NODULE], "gradcam", roi=str(LESIONS / "nodule"))
    row = next(r for r in comparison.rows if r["method"] == "gradcam")
    for column, value in entry["scores"].items():
        assert value == pytest.approx(row[column], abs=1e-6), column
    assert entry["scores"]["PointingHit"] == 1.0  # the shipped model's Grad-CAM points into this lesion
    deletion = served.post("/explain", NODULE.read_bytes(), params={"metrics": "deletion"}).json()
    assert list(deletion["explanations"][0]["scores"]) == ["Deletion"]
    assert served.uploads() == []


def test_jpeg_tiff_and_dicom_uploads(served, tmp_path):
    image = (read_image(NODULE)[:, :, 0] * 255).astype(np.uint8)
    for suffix in (".jpg", ".tif"):
        ok, data = cv2.imencode(suffix, image)
        doc = served.post("/predict", data.tobytes(), name=f"x{suffix}").json()
        assert doc["image"]["format"] == {".jpg": "JPEG", ".tif": "TIFF"}[suffix]
        assert doc["prediction"]["predicted"] == "nodule"
    names = ["normal", "nodule", "consolidation", "cavity", "normal"]  # sample_data/README.md
    for k, expected in enumerate(names, start=1):
        doc = served.post("/predict", (DICOM / f"IM000{k}.dcm").read_bytes(), name="x.dcm").json()
        assert doc["image"]["format"] == "DICOM" and doc["prediction"]["predicted"] == expected


def test_dicom_is_deidentified_before_anything_reads_it(served):
    """The worker's hook looks into the upload's folder while the request is in the pipeline:
    the file there is already de-identified, and no file in the folder holds a patient value."""
    seen: dict[str, bytes] = {}

    def look(jobs):
        for job in jobs:
            for path in job.payload.source.path.parent.iterdir():
                seen[path.name] = path.read_bytes()

    served.core.batcher.before_batch = look
    try:
        response = served.post("/explain", (DICOM / "IM0002.dcm").read_bytes(), name="Kowalczyk^Annabel.dcm")
    finally:
        served.core.batcher.before_batch = None
    assert response.status_code == 200 and response.json()["prediction"]["predicted"] == "nodule"
    assert list(seen) == ["image.dcm"]
    ds = pydicom.dcmread(io.BytesIO(seen["image.dcm"]))  # a DICOM file still, its pixels intact
    assert ds.pixel_array.shape == (64, 64)
    for value in PHI:
        assert value.encode() not in seen["image.dcm"], value
        assert value not in response.text, value
    assert served.uploads() == []


# -------------------------------------------------------------------------------- bad uploads


def _truncated_dicom() -> bytes:
    data = (DICOM / "IM0002.dcm").read_bytes()
    return data[: len(data) - 3000]  # the header with all its patient data, the pixels cut short


def _burned_in_dicom(tmp: Path) -> bytes:
    import pydicom

    ds = pydicom.dcmread(DICOM / "IM0002.dcm")
    ds.BurnedInAnnotation = "YES"
    ds.save_as(tmp / "burned.dcm")
    return (tmp / "burned.dcm").read_bytes()


def _no_pixels_dicom(tmp: Path) -> bytes:
    import pydicom

    ds = pydicom.dcmread(DICOM / "IM0002.dcm")
    del ds.PixelData
    ds.save_as(tmp / "nopixels.dcm")
    return (tmp / "nopixels.dcm").read_bytes()


BAD_UPLOADS = {
    "empty": (lambda tmp: b"", 400, "image: the file is empty"),
    "truncated PNG": (lambda tmp: NODULE.read_bytes()[:-40], 422, "image: truncated PNG"),
    "not an image": (lambda tmp: b"%PDF-1.4 Kowalczyk Annabel\n" * 20, 415, "image: not an image"),
    "GIF": (lambda tmp: b"GIF89a" + bytes(64), 415, "image: GIF is not accepted"),
    "too large (bytes)": (lambda tmp: b"\x89PNG\r\n\x1a\n" + bytes(LIMITS["max_bytes"] + 1), 413, "'image' is larger"),
    "too many pixels": (lambda tmp: png_bytes((301, 301)), 413, "301 x 301 pixels is more than the limit"),
    "truncated DICOM with patient data": (lambda tmp: _truncated_dicom(), 422, "image: DICOM file is corrupt or truncated"),
    "DICOM with burned-in patient data": (_burned_in_dicom, 422, "image: the pixels may show patient data"),
    "DICOM without pixels": (_no_pixels_dicom, 422, "image: DICOM file has no pixel data"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_each_bad_upload_gets_one_clear_4xx_and_leaves_nothing(served, tmp_path, case):
    make, status, message = BAD_UPLOADS[case]
    response = served.post("/explain", make(tmp_path), name="Kowalczyk^Annabel_PID-448812-X.dcm")
    assert message in error_of(response, status)
    for value in PHI:
        assert value not in response.text
    assert served.uploads() == []


def test_requests_that_are_not_uploads(served):
    assert "field named 'image'" in error_of(served.post("/predict"), 400)
    assert "multipart/form-data" in error_of(served.client.post("/predict", content=b"\x89PNG"), 415)
    bad_region = served.post("/explain", NODULE.read_bytes(), region=b"not a mask")
    assert "region: not an image" in error_of(bad_region, 415)
    assert "send it to explain" in error_of(served.post("/predict", NODULE.read_bytes(), region=NODULE.read_bytes()), 400)


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"method": "nosuch"}, 400, "method 'nosuch' is not served"),
    ({"method": "rise"}, 400, "method 'rise' is not served"),
    ({"method": "saliency", "layer": "relu4"}, 400, "layer applies to the CAM methods"),
    ({"layer": "nosuch"}, 400, "nosuch"),
    ({"target": "pneumonia"}, 400, "pneumonia"),
    ({"model": "retina"}, 404, "no model named 'retina'"),
    ({"alpha": "2"}, 400, "alpha"),
    ({"colormap": "rainbow"}, 400, "unknown colormap 'rainbow'"),
    ({"score": "odds"}, 400, "score must be probability or logit"),
    ({"metrics": "nosuch"}, 400, "unknown metric 'nosuch'"),
])
def test_bad_parameters_are_refused_with_one_line(served, params, status, message):
    assert message in error_of(served.post("/explain", NODULE.read_bytes(), params=params), status)
    assert served.uploads() == []


# ---------------------------------------------------------------------------------- batching


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served, chest):
    """Hold the worker on a first request, queue twelve more (three per class), release: the
    twelve run as one batch, and each answer is its own image's."""
    images = [p for folder in ("cavity", "consolidation", "nodule", "normal")
              for p in sorted((CHEST_TEST / folder).glob("*.png"))[2:5]]
    expected = {p: r.prediction.label for p, r in zip(images, xaicli.explain(chest, images, "gradcam"), strict=True)}
    entered, release, sizes = threading.Event(), threading.Event(), []

    def hold(jobs):
        sizes.append(len(jobs))
        if len(sizes) == 1:
            entered.set()
            release.wait(120)

    served.core.batcher.before_batch = hold
    try:
        with ThreadPoolExecutor(13) as pool:
            first = pool.submit(served.post, "/explain", NODULE.read_bytes())
            assert entered.wait(120)
            answers = {p: pool.submit(served.post, "/explain", p.read_bytes()) for p in images}
            wait_for(lambda: served.core.batcher.queue.qsize() == len(images), "twelve requests in the queue")
            release.set()
            assert first.result().status_code == 200
            for path, future in answers.items():
                assert future.result().json()["prediction"]["predicted"] == expected[path], path
    finally:
        served.core.batcher.before_batch = None
        release.set()
    assert sizes == [1, 12]
    assert served.uploads() == []


# ------------------------------------------------------------------------------- patient data


def test_nothing_of_the_patient_in_any_response_or_log_line(served, tmp_path):
    """Every request of this module went through the logs captured since the server started;
    these add the DICOM cases once more, under a file name made of patient data."""
    name = "Kowalczyk^Annabel_PID-448812-X_19580314.dcm"
    texts = []
    for data in ((DICOM / "IM0002.dcm").read_bytes(), _truncated_dicom(), _burned_in_dicom(tmp_path)):
        for route in ("/predict", "/explain"):
            texts.append(served.post(route, data, name=name, params={"maps": "true"} if route == "/explain" else None).text)
    logs = served.logs.text
    assert "POST /explain 200" in logs and "POST /explain 422" in logs  # the access log is there
    for value in (*PHI, "Kowalczyk^Annabel", "upload.png"):
        assert value not in logs, value
        for text in texts:
            assert value not in text, value
    assert served.uploads() == []
