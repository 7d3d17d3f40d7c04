"""xaicli: train, run and explain convolutional image models, and de-identify DICOM files.

The engine is plain Python that a notebook can import (``xaicli.engine``, ``xaicli.io``,
``xaicli.plugins``); the command-line interface in ``xaicli.cli`` is a thin layer over it.
"""

__version__ = "0.1.0"
