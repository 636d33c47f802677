"""Benchmarks write their tables into README.md between a pair of markers of their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

README = Path(__file__).parents[2] / "README.md"


def write_section(markers: tuple[str, str], text: str, readme: Path = README) -> None:
    """Replaces what stands between ``markers`` in ``readme`` with ``text``."""
    content = readme.read_text()
    start, end = markers
    if start not in content or end not in content:
        raise SystemExit(f"{readme.name} lacks the markers {start} ... {end}.")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def publish(markers: tuple[str, str], text: str, results: Any, *, json_path: Path | None,
            readme: bool) -> None:
    """Prints a benchmark's ``text``; writes its ``results`` to ``json_path`` (when given) and
    ``text`` into README.md between ``markers`` (when ``readme``)."""
    print(text)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    if readme:
        write_section(markers, text)
