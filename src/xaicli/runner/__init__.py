"""The model runner: the one place a Keras model is called for explanations and metrics.

* :mod:`xaicli.runner.calls` -- :class:`ModelRunner`, its compiled calls and chunking;
* :mod:`xaicli.runner.graph` -- graph surgery: the logit model, taps on inner layers;
* :mod:`xaicli.runner.layers` -- layer discovery and the default CAM layer rule.
"""

from xaicli.api import Blend, LayerRef, Stack
from xaicli.runner.calls import DEFAULT_BATCH_SIZE, SCORES, ModelRunner
from xaicli.runner.graph import logit_model, tap_model
from xaicli.runner.layers import default_cam_layer

__all__ = ["DEFAULT_BATCH_SIZE", "SCORES", "Blend", "LayerRef", "ModelRunner", "Stack", "default_cam_layer",
           "logit_model", "tap_model"]
