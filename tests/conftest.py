"""Shared fixtures. Tests run on 2 CPU cores without a GPU: keep TensorFlow quiet and small."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
