"""The Ray engine on a local Ray cluster (2 CPUs, a small object store, listening on 127.0.0.1 only:
tests/conftest.py): the same files as the local engine, a killed worker replaced with nothing lost or
duplicated, an interrupted run resumed.

One cluster serves the module; each run is a few images of the shipped chest set, so the module
stays within CI's time on 2 cores.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import numpy as np
import pytest
import ray
from run_outputs import (
    CHEST,
    assert_same_outputs,
    chest_images,
    compare_args,
    files,
    journaled,
    rows,
)
from typer.testing import CliRunner

from xaicli.cli import app
from xaicli.pipeline.journal import STATE

#: Ray's workers compute with one thread each, the local engine with two: sums in another order
TOLERANCE = 1e-5


def listening(pids: set[int]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses the processes ``pids`` listen on (TCP, from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, size in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                words = [raw[i : i + 4][::-1] for i in range(0, size // 2, 4)]
                address = ipaddress.ip_address(b"".join(words))
                found.append(getattr(address, "ipv4_mapped", None) or address)
    return found


def descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, grown = {root}, True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return tree


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", object_store_memory=200 * 1024**2,
             log_to_driver=False)
    addresses = listening(descendants(os.getpid()))
    assert addresses and all(a.is_loopback for a in addresses), addresses  # nothing beyond this machine
    yield
    ray.shutdown()


#: a gradient method and a perturbation method: what differs in how they run (and the lighter the
#: methods, the less each worker's start costs in CI)
METHODS = "gradcam,rise"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    result = CliRunner().invoke(app, [*compare_args(out, METHODS), "--engine", "local"])
    assert result.exit_code == 0, result.output
    return out


def test_compare_on_ray_survives_a_killed_worker_and_an_interrupted_driver(local_run, tmp_path, monkeypatch):
    """Two workers; the first to finish a batch dies (after storing its arrays, before replying) and
    its replacement redoes the batch; the driver is interrupted after four images; ``--resume`` on
    Ray computes the rest. The files are the local engine's: every image once, in input order."""
    from xaicli.pipeline import sinks

    marker = tmp_path / "worker-killed"
    monkeypatch.setenv("XAICLI_RAY_FAULT_DRILL", str(marker))
    original = sinks.PredictionSink.add

    def ctrl_c_after_four(self, record):
        original(self, record)
        if record.index == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(sinks.PredictionSink, "add", ctrl_c_after_four)
    out = tmp_path / "out"
    stopped = CliRunner().invoke(app, [*compare_args(out, METHODS), "--engine", "ray"])
    assert stopped.exit_code == 130 and "--resume" in stopped.output, stopped.output
    assert marker.exists()  # a worker did die
    assert [line["name"] for line in journaled(out)] == [Path(p).stem for p in chest_images()[:4]]

    monkeypatch.setattr(sinks.PredictionSink, "add", original)
    resumed = CliRunner().invoke(app, [*compare_args(out, METHODS), "--engine", "ray", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert_same_outputs(local_run, out, rel=TOLERANCE, exact_files=False)  # same files, same rows, same order
    assert [r["file"] for r in rows(out / "predictions.csv")] == chest_images()
    scores = rows(out / "scores.csv")
    assert len({(r["image"], r["method"]) for r in scores}) == len(scores) == 8 * 3  # none lost, none twice
    assert len(list(out.glob("grid-[0-9]*.png"))) == 3 and not (out / STATE).exists()
    assert not [name for name in files(out) if Path(name).name.startswith(".")]  # nothing half-written


def test_the_python_api_explains_arrays_on_ray():
    """Without an output folder the maps come back in the workers' replies."""
    import xaicli
    from xaicli.io import read_image
    from xaicli.pipeline.ray_engine import RayEngine

    model = xaicli.load_model(CHEST)
    images = [read_image(p) for p in chest_images(1)[:2]]
    local = xaicli.explain(model, images, "gradcam", batch_size=1)
    remote = xaicli.explain(model, images, "gradcam", batch_size=1, engine=RayEngine(workers=1))
    assert [r.name for r in remote] == [r.name for r in local]
    for a, b in zip(remote, local, strict=True):
        assert a.prediction.label == b.prediction.label and a.target == b.target
        assert np.allclose(a["gradcam"], b["gradcam"], rtol=TOLERANCE, atol=TOLERANCE)

