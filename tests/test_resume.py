"""Resumable runs on the local engine: a run killed (SIGKILL) or interrupted (Ctrl-C) mid-way is
continued with ``--resume`` and ends with the files an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from run_outputs import (
    CHEST,
    REPO,
    assert_same_outputs,
    chest_images,
    compare_args,
    files,
    journaled,
    rows,
)
from typer.testing import CliRunner

from xaicli.cli import app
from xaicli.pipeline.journal import JOURNAL, STATE


def killed_after(args: list[str], images: int) -> subprocess.CompletedProcess:
    """Run the CLI in a child process that SIGKILLs itself once ``images`` images reached the sinks
    (journaled, not yet in any final file): a crash at a known point, no timing involved."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        from xaicli.pipeline import sinks
        seen = 0
        original = sinks.PredictionSink.add
        def add(self, record):
            global seen
            original(self, record)
            seen += 1
            if seen == {images}:
                os.kill(os.getpid(), signal.SIGKILL)
        sinks.PredictionSink.add = add
        from xaicli.cli import main
        sys.argv = ["xaicli", *{args!r}]
        main()
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "out"
    result = CliRunner().invoke(app, compare_args(out))
    assert result.exit_code == 0, result.output
    assert not (out / STATE).exists()  # a finished run leaves no state behind
    return out


def test_compare_killed_mid_run_resumes_to_the_files_of_an_uninterrupted_run(uninterrupted, tmp_path):
    out = tmp_path / "out"
    crashed = killed_after(compare_args(out), 4)
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert [line["name"] for line in journaled(out)] == [Path(p).stem for p in chest_images()[:4]]
    assert not (out / "scores.csv").exists() and not (out / "grid-001.png").exists()
    kept = {name: (out / name).read_bytes() for name in files(out)
            if name.startswith("maps/") and not Path(name).name.startswith(".")}
    assert kept  # the finished images' map files stay (and the killed run's temporaries are swept on resume)

    refused = CliRunner().invoke(app, compare_args(out))  # a rerun never takes over silently
    assert refused.exit_code == 6 and "--resume continues it" in refused.output and "4 of 8" in refused.output

    resumed = CliRunner().invoke(app, [*compare_args(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert_same_outputs(uninterrupted, out)  # CSVs row for row, grid pages and map files byte for byte
    assert all((out / name).read_bytes() == data for name, data in kept.items())
    scores = rows(out / "scores.csv")
    assert len(scores) == 8 * 4 and len({(r["image"], r["method"]) for r in scores}) == 8 * 4


def test_a_journaled_image_is_not_computed_again(uninterrupted, tmp_path, monkeypatch):
    """Resuming computes only the images the journal does not hold (and redoes one whose arrays file is gone)."""
    from xaicli.pipeline import run
    from xaicli.pipeline.journal import RECORDS

    out = tmp_path / "out"
    assert killed_after(compare_args(out), 4).returncode == -9
    (out / STATE / RECORDS / f"{Path(chest_images()[1]).stem}.npz").unlink()
    computed: list[str] = []
    original = run.Pipeline.process

    def process(self, records, stages=()):
        computed.extend(r.name for r in records)
        return original(self, records, stages)

    monkeypatch.setattr(run.Pipeline, "process", process)
    assert CliRunner().invoke(app, [*compare_args(out), "--resume"]).exit_code == 0
    names = [Path(p).stem for p in chest_images()]
    assert computed == [names[1], *names[4:]]
    assert_same_outputs(uninterrupted, out, rel=1e-4, exact_files=False)


def test_ctrl_c_keeps_the_finished_images_and_says_how_to_continue(tmp_path):
    from xaicli import load_model
    from xaicli.pipeline.explain import explain

    model = load_model(CHEST)
    images = chest_images(1)
    methods = [("gradcam", {}), ("ig", {"steps": 8})]
    full = explain(model, images, methods, tmp_path / "full", batch_size=2)

    def ctrl_c(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        explain(model, images, methods, tmp_path / "out", batch_size=2, progress=ctrl_c)
    assert any("2 of 4 images are done" in note and "--resume" in note for note in stopped.value.__notes__)
    assert not (tmp_path / "out" / "maps.csv").exists()
    resumed = explain(model, images, methods, tmp_path / "out", batch_size=2, resume=True)
    assert (resumed.images, resumed.maps) == (full.images, full.maps)
    assert_same_outputs(tmp_path / "full", tmp_path / "out")


def test_the_cli_says_that_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    from xaicli.pipeline import sinks

    original = sinks.MapSink.add

    def interrupted(self, record):
        original(self, record)
        if record.index == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(sinks.MapSink, "add", interrupted)
    args = ["explain", str(CHEST), *chest_images(1), "--method", "gradcam", "--batch-size", "2",
            "--output", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130
    assert "interrupted" in result.output and "2 of 4 images are done" in result.output and "--resume" in result.output
    monkeypatch.setattr(sinks.MapSink, "add", original)
    assert CliRunner().invoke(app, [*args, "--resume"]).exit_code == 0
    assert len(rows(tmp_path / "out" / "maps.csv")) == 4 and not (tmp_path / "out" / STATE).exists()


def test_predict_resumes_segmentation_with_its_masks(tmp_path):
    """Large per-image arrays (a segmentation output) rest in the run folder and come back exactly."""
    from xaicli import load_model
    from xaicli.pipeline.predict import predict

    model = load_model(REPO / "sample_data" / "models" / "retina" / "model.keras")
    images = [str(p) for p in sorted((REPO / "sample_data" / "retina" / "test" / "images").glob("*.tif"))[:3]]
    predict(model, images, tmp_path / "full", batch_size=1)

    def crash(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        predict(model, images, tmp_path / "out", batch_size=1, progress=crash)
    assert len(journaled(tmp_path / "out")) == 2
    predict(model, images, tmp_path / "out", batch_size=1, resume=True)
    assert_same_outputs(tmp_path / "full", tmp_path / "out")


def crashed_explain(out: Path) -> tuple[object, list[str]]:
    """``explain`` with Grad-CAM on four images, crashed after the first two (one batch)."""
    from xaicli import load_model
    from xaicli.pipeline.explain import explain

    model = load_model(CHEST)
    images = chest_images(1)

    def crash(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        explain(model, images, ["gradcam"], out, batch_size=2, progress=crash)
    return model, images


def test_resume_refuses_other_settings_and_overwrite_starts_again(tmp_path):
    from xaicli.errors import OutputError, UsageError
    from xaicli.pipeline.explain import explain

    model, images = crashed_explain(tmp_path / "out")
    with pytest.raises(UsageError, match="other settings"):
        explain(model, images, [("ig", {"steps": 4})], tmp_path / "out", resume=True)
    with pytest.raises(UsageError, match="other inputs"):
        explain(model, images[:3], ["gradcam"], tmp_path / "out", resume=True)
    with pytest.raises(UsageError, match="pass one of them"):
        explain(model, images, ["gradcam"], tmp_path / "out", resume=True, overwrite=True)
    with pytest.raises(OutputError, match="unfinished explain run"):
        explain(model, images, ["gradcam"], tmp_path / "out")
    again = explain(model, images, ["gradcam"], tmp_path / "out", overwrite=True)
    assert again.maps == 4 and not (tmp_path / "out" / STATE).exists()


def test_a_torn_last_journal_line_is_dropped(tmp_path):
    from xaicli.pipeline.explain import explain

    model, images = crashed_explain(tmp_path / "out")
    journal = tmp_path / "out" / STATE / JOURNAL
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"index":2,"name":"cons')  # a line cut by a power loss
    result = explain(model, images, ["gradcam"], tmp_path / "out", batch_size=2, resume=True)
    assert result.maps == 4 and len(rows(tmp_path / "out" / "maps.csv")) == 4


def test_a_record_travels_through_its_fields_and_arrays_unchanged():
    """pack -> one JSON line + .npz bytes -> unpack gives the record the sinks saw (float32 bit for bit)."""
    from xaicli import load_model
    from xaicli.io import discover
    from xaicli.pipeline.journal import dumps
    from xaicli.pipeline.run import Pipeline, make_methods
    from xaicli.pipeline.transfer import decode_arrays, encode_arrays, pack, unpack

    pipeline = Pipeline(load_model(CHEST), make_methods(["gradcam", ("ig", {"steps": 4})]), batch_size=2)
    sources = discover(chest_images(1)[:2])
    for record in pipeline.records(sources):
        record.scores = {"gradcam": {"Entropy": 0.25, "Deletion": float("nan")}}
        fields, arrays = pack(record)
        back = unpack(json.loads(dumps(fields)), decode_arrays(encode_arrays(arrays)), record.source)
        assert back.prediction.text == record.prediction.text
        assert np.array_equal(back.prediction.probabilities, record.prediction.probabilities)
        assert back.prediction.probabilities.dtype == record.prediction.probabilities.dtype
        assert (back.target_label, back.target_index) == (record.target_label, record.target_index)
        assert np.array_equal(back.target.weights, record.target.weights)
        assert np.array_equal(back.image, record.image)
        for a, b in zip(back.maps, record.maps, strict=True):
            assert (a.key, a.method, a.layer, a.display, a.seconds, a.extras) == (b.key, b.method, b.layer, b.display,
                                                                                  b.seconds, b.extras)
            assert a.map.dtype == np.float32 and np.array_equal(a.map, b.map)
        assert back.scores["gradcam"]["Entropy"] == 0.25 and np.isnan(back.scores["gradcam"]["Deletion"])


@pytest.mark.parametrize("command", ["predict", "explain", "compare"])
def test_engine_and_address_are_checked(command, tmp_path):
    inputs = [str(CHEST), chest_images(1)[0]] if command != "compare" else [chest_images(1)[0], "--model", str(CHEST)]
    method = {"explain": ["--method", "gradcam"], "compare": ["--methods", "gradcam"]}.get(command, [])
    base = [command, *inputs, *method, "--output", str(tmp_path / "out")]
    unknown = CliRunner().invoke(app, [*base, "--engine", "spark"])
    assert unknown.exit_code == 2 and "--engine must be one of local, ray, not 'spark'" in unknown.output
    stray = CliRunner().invoke(app, [*base, "--address", "head:6379"])
    assert stray.exit_code == 2 and "--address applies to the ray engine only" in stray.output
