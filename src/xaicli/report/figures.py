"""The report's plots, drawn with matplotlib (as :mod:`xaicli.evaluation` draws its figures) and
embedded as SVG data URIs: vector text that stays sharp when zoomed, and no file beside the page.
Pictures a run already wrote (PNG) are embedded as they are.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

#: the reference map's line: grey and dashed, under the methods' lines
RANDOM_STYLE = {"color": "0.55", "linestyle": "--", "zorder": 1}


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str | None:
    """A picture file of the run as a data URI (None when it is absent)."""
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
    if not path.is_file() or path.suffix.lower() not in mime:
        return None
    return data_uri(path.read_bytes(), mime[path.suffix.lower()])


def svg_uri(figure: Any) -> str:
    from xaicli.evaluation import pyplot

    plt = pyplot()
    buffer = io.BytesIO()
    # text as text (small, selectable), no random ids (the same run gives the same page)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "xaicli"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    return data_uri(buffer.getvalue(), "image/svg+xml")


def curves_figure(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]],
                  labels: dict[str, str]) -> str:
    """One panel per metric (deletion, insertion): the mean curve of each method over the images,
    with a band of one standard error; ``curves``: metric -> method -> (fraction, mean, sem);
    ``labels``: metric -> axis label (what the score is)."""
    from xaicli.evaluation import pyplot

    plt = pyplot()
    metrics = list(curves)
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        for method, (fraction, mean, sem) in curves[metric].items():
            style = RANDOM_STYLE if method == "random" else {}
            line, = axis.plot(fraction, mean, label=method, linewidth=1.6, **style)
            axis.fill_between(fraction, mean - sem, mean + sem, color=line.get_color(), alpha=0.15, linewidth=0)
        axis.set_title(metric)
        axis.set_xlabel("share of pixels " + ("deleted" if metric.lower().startswith("del") else "inserted"))
        axis.set_ylabel(labels.get(metric, "target score"))
        axis.set_xlim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return svg_uri(figure)

