"""Shared fixtures. Tests run on 2 CPU cores without a GPU: keep TensorFlow quiet and small."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# A Ray started by a test takes 127.0.0.1 as its node address and listens there only (read by Ray
# when it is imported; see xaicli.pipeline.ray_engine.LOOPBACK_ONLY).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """``helpers.tiny_classifier``'s folder: six 24 x 24 images of two classes, masks, a tiny CNN."""
    from helpers import tiny_classifier

    root = tmp_path_factory.mktemp("tiny-data")
    tiny_classifier(root)
    return root
