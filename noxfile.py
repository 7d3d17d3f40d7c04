"""Developer tasks. ``nox -l`` lists them; extra arguments pass through after ``--``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

# The peers run in the benchmark's own environment, never in xaicli's dependencies.
# xplique 2.0.2 declares tensorflow[and-cuda]; install it without dependencies next to the CPU
# TensorFlow xaicli already uses, then add the few packages it needs (see docs/explainers.md, "Benchmark").
EXPLAINER_PEERS_NODEPS = ["xplique==2.0.2", "tf-keras-vis==0.8.7"]
# xplique imports tensorflow_probability (0.25 matches TensorFlow 2.18-2.21; it does not pull TensorFlow).
EXPLAINER_PEERS_NEEDS = ["einops", "deprecated", "matplotlib", "imageio", "tf-keras>=2.16,<2.22", "tensorflow-probability==0.25.0"]
DICOM_PEERS = ["dicognito==0.19.0", "deid==0.4.13", "dicom-anonymizer==2.1.0"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after --)."""
    # the same setup as the README's test command and CI (in the session's environment: its python first on PATH)
    session.run("bash", "scripts/setup-tests.sh", external=True)
    session.run("pytest", "--junitxml=junit.xml", *session.posargs)
    session.run("python", "scripts/check_skips.py", "junit.xml")


# Mutation testing (docs/testing.md): mutmut over the pure-Python core with the tests that check it.
# The modules and tests are in pyproject.toml's [tool.mutmut]; these globs pick, within cam.py, the
# weight and map functions (not parameter plumbing). Pass other mutant globs after --.
MUTMUT = "mutmut==3.8.1"
MUTANTS = [
    "xaicli.metrics.*",
    "xaicli.targets.*",
    "xaicli.normalization.*",
    "xaicli.explainers._common.*",
    "xaicli.explainers.cam.x__normalise__mutmut_*",
    "xaicli.explainers.cam.xǁGradCAMǁweights__mutmut_*",
    "xaicli.explainers.cam.xǁGradCAMǁlayer_maps__mutmut_*",
    "xaicli.explainers.cam.xǁGradCAMPlusPlusǁweights__mutmut_*",
    "xaicli.explainers.cam.xǁScoreCAMǁlayer_maps__mutmut_*",
]


@nox.session(venv_params=["--system-site-packages"])  # reuse an installed TensorFlow where there is one
def mutation(session: nox.Session) -> None:
    """Mutation testing of metrics, targets, normalisation and explainer weights (not a default session)."""
    session.install("-e", ".[test]", MUTMUT)
    # mutmut imports the mutated copy under mutants/src: nothing else may come first on the path
    session.run("python", "-m", "mutmut", "run", "--max-children", "2", *(session.posargs or MUTANTS), env={"PYTHONPATH": ""})
    session.run("python", "-m", "mutmut", "results")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint the package, tests, plugins and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "plugins", "benchmarks", "scripts", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The README's main job: compare four explainers on the shipped sample data."""
    session.install("-e", ".")
    session.run("bash", "scripts/demo.sh", *session.posargs, external=True)


@nox.session(name="bench-explainers")
def bench_explainers(session: nox.Session) -> None:
    """Explainers: seconds per image, cost floor and the peers (Xplique, tf-keras-vis, lime)."""
    session.install("-e", ".")
    session.install("--no-deps", *EXPLAINER_PEERS_NODEPS)
    session.install(*EXPLAINER_PEERS_NEEDS)
    session.run("python", "benchmarks/explainers.py", *session.posargs)


@nox.session(name="bench-dicom")
def bench_dicom(session: nox.Session) -> None:
    """DICOM de-identification: files/s of xaicli and the peers on the same 1,000+ files."""
    session.install("-e", ".")
    session.install(*DICOM_PEERS)
    session.run("python", "benchmarks/dicom.py", *session.posargs)


@nox.session(name="bench-memory")
def bench_memory(session: nox.Session) -> None:
    """Peak memory of `xaicli compare` on 60 vs 600 images (the pipeline streams: it must not grow)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/memory.py", *session.posargs)


@nox.session(name="bench-speed")
def bench_speed(session: nox.Session) -> None:
    """Below the fp32 floor: bf16 vs fp32 (with map correlation), shared passes, adaptive sampling, cold start."""
    session.install("-e", ".")
    session.run("python", "benchmarks/speed.py", *session.posargs)


@nox.session(name="bench-verdicts")
def bench_verdicts(session: nox.Session) -> None:
    """Region hits at the defaults and seed-to-seed agreement of the sampled maps on the shipped sets."""
    session.install("-e", ".")
    session.run("python", "benchmarks/verdicts.py", *session.posargs)


@nox.session(name="bench-serve")
def bench_serve(session: nox.Session) -> None:
    """`xaicli serve`: requests/s and p50/p95 latency at 1, 4 and 16 clients vs the batched floor."""
    session.install("-e", ".[serve]", "httpx")
    session.run("python", "benchmarks/serve.py", *session.posargs)


@nox.session(name="bench-ray")
def bench_ray(session: nox.Session) -> None:
    """Images/s of `compare` on the local engine and on a local Ray cluster with 1 and 2 workers, in one run."""
    session.install("-e", ".[ray]")
    session.run("python", "benchmarks/ray_engine.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """All benchmarks (explainers, speed, verdicts, memory, serve, Ray, then DICOM); results land in bench-results/."""
    session.notify("bench-explainers", session.posargs)
    session.notify("bench-speed", session.posargs)
    session.notify("bench-verdicts", session.posargs)
    session.notify("bench-memory", session.posargs)
    session.notify("bench-serve", session.posargs)
    session.notify("bench-ray", session.posargs)
    session.notify("bench-dicom", session.posargs)
