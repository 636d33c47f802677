"""Benchmarks write their tables into README.md between a pair of markers of their own."""

from __future__ import annotations

from pathlib import Path

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
