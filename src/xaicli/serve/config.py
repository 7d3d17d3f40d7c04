"""The service's settings: where it listens, what it accepts, how it batches, how long it keeps an upload.

Defaults suit one clinician's workstation or a small department service: 127.0.0.1 only; uploads
up to 32 MiB (an uncompressed 4096 x 4096 16-bit DICOM) and 4096 x 4096 pixels; batches of up to 16
images gathered for at most 5 ms; 64 requests waiting at most (beyond that: 503 with Retry-After);
an answer within 60 s or 504; an upload's folder removed after the response, and after 5 minutes
whatever happens to the request.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xaicli.errors import UsageError

#: the methods served unless --methods says otherwise: those that answer in milliseconds to a
#: fraction of a second per image on a CPU (RISE, LIME, occlusion take seconds: opt in)
DEFAULT_METHODS = ("gradcam", "gradcam++", "saliency", "gradient-x-input", "ig")
#: formats an upload may have (by content); the readers know BMP and GIF too, but no scanner or
#: PACS export produces them and the study's bot took these
ACCEPTED_FORMATS = ("PNG", "JPEG", "TIFF", "DICOM")


@dataclass
class Limits:
    """What one upload may be: bytes (per file), pixels (rows x columns, checked from the header
    before anything is decoded), and the longest side of the overlays and maps sent back."""

    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_side: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}", parameter=name)


@dataclass
class ServeConfig:
    """Everything ``xaicli serve`` (and the chat bot) runs with; see the module docstring."""

    host: str = "127.0.0.1"
    port: int = 8000
    limits: Limits = field(default_factory=Limits)
    methods: tuple[str, ...] = DEFAULT_METHODS
    max_batch: int = 16
    max_wait: float = 0.005
    queue_size: int = 64
    request_timeout: float = 60.0
    #: an upload's folder is removed after this many seconds whatever happens to its request
    ttl: float = 300.0
    #: the parent of the service's private temporary folder (None: the system's)
    temp_dir: Path | None = None
    token_file: Path | None = None
    #: open connections at most (uvicorn answers 503 beyond); bounds the uploads held in memory
    max_connections: int = 64
    #: seconds a client told 503 is asked to wait (Retry-After)
    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.queue_size < 1 or self.max_connections < 1:
            raise UsageError("max_batch, queue_size and max_connections must be at least 1")
        if self.max_wait < 0 or self.request_timeout <= 0 or self.ttl <= 0:
            raise UsageError("max_wait must be >= 0, request_timeout and ttl > 0")
        if not 0 < self.port < 65536:
            raise UsageError(f"port must be in 1..65535, not {self.port}", parameter="port")
        self.methods = tuple(dict.fromkeys(self.methods))
        if not self.methods:
            raise UsageError("serve at least one method", parameter="methods")


def parse_methods(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``gradcam,ig`` -> the served methods; ``all`` every installed explainer; each one checked."""
    from xaicli import plugins
    from xaicli.pipeline.scoring import parse_list

    names = parse_list(text) or list(DEFAULT_METHODS)
    if names == ["all"]:
        names = plugins.names("explainers")
    for name in names:
        plugins.entry("explainers", name)  # an unknown name: PluginError with the closest match
    return tuple(names)


def model_name(path: Path) -> str:
    """A model's name in URLs: its file's stem, or its folder's name for ``.../NAME/model.keras``."""
    path = Path(path)
    stem = path.stem if path.suffix else path.name
    return path.resolve().parent.name if stem == "model" and path.parent.name else stem


def model_specs(items: Sequence[str]) -> dict[str, Path]:
    """``[NAME=]PATH`` arguments -> {name: path}, in order; names are unique and URL-safe."""
    specs: dict[str, Path] = {}
    for item in items:
        name, sep, path = str(item).partition("=")
        if not sep or os.path.exists(item):
            name, path = "", str(item)
        name = name.strip() or model_name(Path(path))
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UsageError(f"model name {name!r} must be letters, digits, '-', '_' or '.' (NAME=PATH)")
        if name in specs:
            raise UsageError(f"two models are named {name!r}; name them with NAME=PATH")
        specs[name] = Path(path)
    if not specs:
        raise UsageError("name at least one model to serve")
    return specs
