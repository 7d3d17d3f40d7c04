"""What the part-by-part benchmarks (speed.py, verdicts.py) share: run the chosen parts in order,
each appending its Markdown lines, and write the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_parts(parts: dict[str, Callable[[Any, list[str]], None]], args: Any, lines: list[str]) -> int:
    """Run ``args.parts`` (comma-separated names of ``parts``) and write ``lines`` to ``args.output``."""
    for part in args.parts.split(","):
        parts[part.strip()](args, lines)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0
