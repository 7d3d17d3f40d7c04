"""Keeping TensorFlow's start-up chatter out of the terminal, for the CLI and for library users.

Importing ``xaicli`` calls :func:`quiet_tensorflow` (before TensorFlow is imported, if it is not
yet): a notebook user sees what the CLI user sees, which is nothing but xaicli's own output.
"""

from __future__ import annotations

import logging
import os
import sys


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter (oneDNN notes, "no CUDA driver", retracing warnings) out
    of the terminal; a value the user set in ``TF_CPP_MIN_LOG_LEVEL`` wins."""
    # TensorFlow's Python warnings ("triggered tf.function retracing" when a process builds several
    # runners, each with its own compiled calls) speak of TensorFlow's internals, not the user's work
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # TensorFlow >= 2.17 logs through absl before absl's logging is initialised, which ignores
    # TF_CPP_MIN_LOG_LEVEL and writes straight to file descriptor 2: silence it for the import.
    if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport:
    """Import hook: the first ``import tensorflow`` runs with fd 2 sent to a buffer, replayed only
    if the import fails (so a broken installation still shows why)."""

    def find_spec(self, name, path=None, target=None):
        import importlib.util

        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    def __init__(self, inner) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        import tempfile

        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as buffer:
            os.dup2(buffer.fileno(), 2)
            try:
                self.inner.exec_module(module)
            except BaseException:
                os.dup2(saved, 2)
                buffer.seek(0)
                os.write(2, buffer.read())
                raise
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
