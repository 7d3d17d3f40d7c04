"""xaicli: train, run and explain convolutional image models, and de-identify DICOM files.

The Python API (docs/python-api.md)::

    import xaicli
    model = xaicli.load_model("sample_data/models/chest/model.keras")
    results = xaicli.explain(model, "sample_data/chest/test/nodule", methods="gradcam,ig")
    picture = xaicli.overlay(results[0].image, results[0].maps["ig"])

The plugin contract is :mod:`xaicli.api`; :mod:`xaicli.testing` checks a plugin against it. The
command-line interface (:mod:`xaicli.cli`) is a thin layer over the same pipeline
(:mod:`xaicli.pipeline`). Importing xaicli imports neither TensorFlow nor Keras (they load when a
model does) and keeps TensorFlow's start-up chatter out of the terminal, as the CLI does.
"""

from xaicli._quiet import quiet_tensorflow as _quiet_tensorflow

__version__ = "0.1.0"
__all__ = ["__version__", "compare", "explain", "load_model", "overlay"]

_quiet_tensorflow()


def __getattr__(name: str):
    if name in ("compare", "explain", "load_model", "overlay"):
        from xaicli import library

        return getattr(library, name)
    raise AttributeError(f"module 'xaicli' has no attribute {name!r}")
