"""Explainer benchmark: seconds per image of each method against its cost floor, and the peers.

For each model (MobileNetV2 224x224x3 with weights=None; the chest X-ray study CNN 260x260x1) and
each method, on one image, in interleaved rounds (method, floor, method, floor, ...; see
BENCHMARKS.md "How to measure"), it reports the median seconds per image of

* xaicli's explainer (its compiled runner, warmed up: tracing is a one-time cost per process);
* the *cost floor*: a plain compiled loop doing the same number of model evaluations (forward, or
  forward + input gradient) in batches of ``--batch-size``: the least any implementation can spend;
* Xplique 2.0.2, tf-keras-vis 0.8.7 and the ``lime`` package on the same model and image with the
  same settings, when they are importable (``nox -s bench-explainers`` installs them).

Usage: ``python benchmarks/explainers.py [--full] [--models mobilenetv2,chest] [--methods ...]``.
The default (``--quick``: fewer masks, steps and samples) keeps a run to minutes on 2 CPU cores;
``--full`` uses the papers' defaults (RISE 4000 masks, IG 50 steps, LIME 1000 samples). The table
goes to ``bench-results/explainers.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

FULL = {
    "gradcam": {}, "gradcam++": {}, "saliency": {},
    # fixed counts (reliability 0): the same work as the peers do, not adaptive sampling
    "smoothgrad": {"n_samples": 50, "reliability": 0},
    "ig": {"steps": 50},
    "occlusion": {"patch_size": 32, "stride": 16},
    # the peers' settings: RISE as in the paper (not centred), LIME with the package's quickshift
    "rise": {"n_masks": 4000, "grid_size": 7, "p": 0.5, "center": False, "reliability": 0},
    "lime": {"num_samples": 1000, "segmentation": "quickshift", "reliability": 0},
    "scorecam": {"max_channels": 256},
}
QUICK = {
    **FULL,
    "smoothgrad": {"n_samples": 16, "reliability": 0},
    "ig": {"steps": 16},
    "rise": {"n_masks": 400, "grid_size": 7, "p": 0.5, "center": False, "reliability": 0},
    "lime": {"num_samples": 200, "segmentation": "quickshift", "reliability": 0},
    "scorecam": {"max_channels": 64},
}


def evaluations(name: str, params: dict, runner, image) -> tuple[int, int]:
    """(forward+gradient rows, forward rows) the method needs for one image."""
    if name in ("gradcam", "gradcam++", "saliency", "gradient-x-input"):
        return 1, 0
    if name in ("smoothgrad", "smoothgrad-squared", "vargrad"):
        return params["n_samples"], 0
    if name == "ig":
        return params["steps"], 2
    if name == "rise":
        return 0, params["n_masks"]
    if name == "lime":
        return 0, params["num_samples"]
    if name == "occlusion":
        from xaicli.explainers.occlusion import _positions

        h, w, _ = runner.input_shape
        return 0, len(_positions(h, params["patch_size"], params["stride"])) * len(_positions(w, params["patch_size"], params["stride"])) + 1
    if name == "scorecam":
        return 0, 2 + params.get("max_channels", 0)  # activations + channels + baseline
    raise KeyError(name)


class Floor:
    """A plain compiled loop: ``grad_rows`` forward+gradient and ``fwd_rows`` forward rows."""

    def __init__(self, model, batch_size: int):
        import tensorflow as tf

        self.bs = batch_size
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)

        @tf.function(input_signature=[spec])
        def fwd(x):
            return tf.reduce_sum(model(x, training=False))

        @tf.function(input_signature=[spec])
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                s = tf.reduce_sum(model(x, training=False)[:, 0])
            return tape.gradient(s, x)

        self.fwd, self.grad = fwd, grad
        self.x = tf.constant(np.random.default_rng(0).uniform(0, 1, (batch_size, *model.inputs[0].shape[1:])).astype(np.float32))

    def run(self, grad_rows: int, fwd_rows: int) -> None:
        for fn, rows in ((self.grad, grad_rows), (self.fwd, fwd_rows)):
            while rows > 0:
                n = min(rows, self.bs)
                _ = fn(self.x[:n]).numpy()
                rows -= n

    def warm(self) -> None:
        for n in range(1, self.bs + 1):
            self.fwd(self.x[:n])
            self.grad(self.x[:n])


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ peers


def xplique_fn(name: str, params: dict, model, x, onehot, batch_size: int):
    try:
        import xplique.attributions as xa
    except Exception as exc:  # not installed, or incompatible with this TensorFlow
        return None, f"xplique not importable ({type(exc).__name__})"
    try:
        if name == "gradcam":
            ex = xa.GradCAM(model, batch_size=batch_size)
        elif name == "gradcam++":
            ex = xa.GradCAMPP(model, batch_size=batch_size)
        elif name == "saliency":
            ex = xa.Saliency(model, batch_size=batch_size)
        elif name == "smoothgrad":
            ex = xa.SmoothGrad(model, nb_samples=params["n_samples"], batch_size=batch_size, noise=0.2)
        elif name == "ig":
            ex = xa.IntegratedGradients(model, steps=params["steps"], batch_size=batch_size)
        elif name == "occlusion":
            ex = xa.Occlusion(model, patch_size=params["patch_size"], patch_stride=params["stride"], batch_size=batch_size)
        elif name == "rise":
            ex = xa.Rise(model, nb_samples=params["n_masks"], grid_size=params["grid_size"], preservation_probability=params["p"], batch_size=batch_size)
        elif name == "lime":
            ex = xa.Lime(model, nb_samples=params["num_samples"], batch_size=batch_size)
        else:
            return None, "no such method"
        return (lambda: ex.explain(x, onehot)), None
    except Exception as exc:
        return None, f"failed: {type(exc).__name__}"


def tfkerasvis_fn(name: str, params: dict, model, x, cls: int):
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.scores import CategoricalScore
    except Exception as exc:
        return None, f"tf-keras-vis not importable ({type(exc).__name__})"
    score = CategoricalScore([cls])
    try:
        if name == "gradcam":
            ex = Gradcam(model)
            return (lambda: ex(score, x)), None
        if name == "gradcam++":
            ex = GradcamPlusPlus(model)
            return (lambda: ex(score, x)), None
        if name == "saliency":
            ex = Saliency(model)
            return (lambda: ex(score, x)), None
        if name == "smoothgrad":
            ex = Saliency(model)
            return (lambda: ex(score, x, smooth_samples=params["n_samples"], smooth_noise=0.2)), None
    except Exception as exc:
        return None, f"failed: {type(exc).__name__}"
    return None, None


def lime_package_fn(name: str, params: dict, model, x, cls: int, batch_size: int):
    if name != "lime":
        return None, None
    try:
        from lime import lime_image
    except Exception as exc:
        return None, f"lime not importable ({type(exc).__name__})"
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    compiled = tf.function(lambda b: model(b, training=False), input_signature=[spec])
    channels = x.shape[-1]

    def classifier(images):  # the package hands RGB float64 copies; a compiled call per batch
        images = np.asarray(images, np.float32)
        if channels == 1:
            images = images[..., :1]
        return compiled(images).numpy()

    image = np.repeat(x[0], 3, axis=-1) if channels == 1 else x[0]
    explainer = lime_image.LimeImageExplainer(random_state=0)
    return (lambda: explainer.explain_instance(image.astype(np.float64), classifier, labels=(cls,), top_labels=None,
                                               num_samples=params["num_samples"], batch_size=batch_size,
                                               random_seed=0)), None


# ------------------------------------------------------------------ main


def build_models(names: list[str]):
    import keras

    models = {}
    if "mobilenetv2" in names:
        keras.utils.set_random_seed(0)
        models["mobilenetv2"] = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    if "chest" in names:
        from xaicli.models.xray_cnn import XrayCNN

        keras.utils.set_random_seed(0)
        models["chest"] = XrayCNN().build((260, 260, 1), "classification", 9)
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", default=True, help="fewer masks, steps and samples (the default)")
    parser.add_argument("--full", dest="quick", action="store_false", help="the papers' settings (RISE 4000 masks, IG 50 steps, LIME 1000 samples): slow on a CPU")
    parser.add_argument("--models", default="mobilenetv2,chest")
    parser.add_argument("--methods", default=",".join(FULL))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fast-rounds", type=int, default=15, help="rounds for methods of one or two model evaluations")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-prefetch", action="store_true", help="build perturbation chunks in line, not ahead in a thread")
    parser.add_argument("--output", default="bench-results/explainers.md")
    args = parser.parse_args(argv)

    from xaicli.api import ModelInfo
    from xaicli.plugins import make
    from xaicli.runner import ModelRunner
    from xaicli.targets import resolve_target

    if args.no_prefetch:
        import xaicli.runner.calls

        xaicli.runner.calls.PREFETCH = False
    settings = QUICK if args.quick else FULL
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    lines = [
        f"# Explainers: seconds per image ({'quick' if args.quick else 'full'} settings, batch size {args.batch_size}, "
        f"median of {args.rounds} interleaved rounds)",
        "",
        f"Machine: {os.cpu_count()} CPU cores. Command: `python benchmarks/explainers.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "| model | method | settings | evaluations (grad+fwd) | rounds | xaicli s | floor s | xaicli / floor (median of per-round ratios) | Xplique s (x floor) | tf-keras-vis s (x floor) | lime pkg s (x floor) | xaicli / fastest peer (per round) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model_name, model in build_models([m.strip() for m in args.models.split(",")]).items():
        shape = tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(1).uniform(0, 1, (1, *shape)).astype(np.float32)
        runner = ModelRunner(model, batch_size=args.batch_size)
        info = ModelInfo(task="classification", input_shape=shape)
        outputs = runner.predict(x)
        target = resolve_target(outputs, info)
        cls = int(np.argmax(outputs[0]))
        onehot = np.zeros_like(outputs)
        onehot[0, cls] = 1.0
        floor = Floor(model, args.batch_size)
        floor.warm()
        for name in methods:
            params = dict(settings[name])
            explainer = make("explainers", name, params)
            grads, fwds = evaluations(name, params, runner, x)
            ours = lambda explainer=explainer: explainer.explain(runner, x, target)  # noqa: E731, B023
            ours()  # trace once (a per-process cost, reported in docs/explainers.md)
            peers = {}
            if not args.no_peers:
                peers["xplique"] = xplique_fn(name, params, model, x, onehot, args.batch_size)
                peers["tf-keras-vis"] = tfkerasvis_fn(name, params, model, x, cls)
                peers["lime"] = lime_package_fn(name, params, model, x, cls, args.batch_size)
                for key, (fn, _why) in list(peers.items()):
                    if fn is not None:
                        try:
                            fn()  # warm up
                        except Exception as exc:
                            peers[key] = (None, f"failed: {type(exc).__name__}: {str(exc)[:60]}")
            times = {"ours": [], "floor": [], **{k: [] for k, (fn, _) in peers.items() if fn is not None}}
            # Methods of one or two model evaluations take milliseconds: more rounds cost nothing
            # and steady their medians on a shared machine.
            rounds = max(args.rounds, args.fast_rounds) if grads + fwds <= 2 else args.rounds
            for _ in range(rounds):
                times["ours"].append(timed(ours))
                times["floor"].append(timed(lambda: floor.run(grads, fwds)))  # noqa: B023
                for key, (fn, _) in peers.items():
                    if fn is not None:
                        times[key].append(timed(fn))
                        times["floor"].append(timed(lambda: floor.run(grads, fwds)))  # noqa: B023
            med = {k: statistics.median(v) for k, v in times.items()}
            f = med["floor"]
            # Ratios per round, against the floor timed right after: the machine's speed drifts
            # between minutes, the ratio of neighbours does not.
            floors = times["floor"]
            n_peer = len(times) - 2
            ours_floor = [times["ours"][i] / floors[i * (n_peer + 1)] for i in range(rounds)]
            ratio = {"ours": statistics.median(ours_floor)}
            peer_keys = [k for k in times if k not in ("ours", "floor")]
            for p_i, key in enumerate(peer_keys):
                ratio[key] = statistics.median(times[key][i] / floors[i * (n_peer + 1) + p_i + 1] for i in range(rounds))
            # The criterion, measured within each round: xaicli's time over the fastest
            # peer's time in that same round (below 1: xaicli is faster).
            vs_peer = (statistics.median(times["ours"][i] / min(times[k][i] for k in peer_keys) for i in range(rounds))
                       if peer_keys else None)

            def cell(key, med=med, ratio=ratio, peers=peers):
                if key in med:
                    return f"{med[key]:.3f} ({ratio[key]:.2f}x)"
                fn, why = peers.get(key, (None, None))
                return why or "—"

            setting = ", ".join(f"{k}={v}" for k, v in params.items()) or "default layer"
            row = (f"| {model_name} | {name} | {setting} | {grads}+{fwds} | {rounds} | {med['ours']:.3f} | {f:.3f} | "
                   f"{ratio['ours']:.2f}x | {cell('xplique')} | {cell('tf-keras-vis')} | {cell('lime')} | "
                   f"{'—' if vs_peer is None else f'{vs_peer:.2f}x'} |")
            print(row, flush=True)
            lines.append(row)
    lines += ["", "Floor: the same number of model evaluations as a plain compiled batched loop, timed in the same rounds.", ""]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
