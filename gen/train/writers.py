"""Run outputs: ``metrics.jsonl``, TensorBoard event files, and ``eval.json``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    value = float(value) if hasattr(value, "__float__") else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or inf
    return value


def write_json(path: str | Path, obj: dict) -> None:
    """Writes ``obj`` as JSON atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_metrics(workdir: str | Path) -> list[dict]:
    """Every record of ``workdir/metrics.jsonl``, in order."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsWriter:
    """Appends one JSON object per logged step to ``metrics.jsonl`` and mirrors it to TensorBoard.

    On resume from step ``s``, records after ``s`` (written by the interrupted run) are dropped
    from ``metrics.jsonl`` and TensorBoard is told to purge them, so the files read as if the run
    had never stopped. Only process 0 writes; on other processes every call is a no-op.
    """

    def __init__(self, workdir: str | Path, resume_step: int = 0, active: bool = True):
        self.active = active
        if not active:
            return
        from tensorboardX import SummaryWriter

        self._path = Path(workdir) / "metrics.jsonl"
        kept = [r for r in read_metrics(workdir) if r.get("step", 0) <= resume_step]
        tmp = self._path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self._path)
        self._file = self._path.open("a")
        self._tb = SummaryWriter(str(workdir), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, scalars: dict[str, Any]) -> None:
        if not self.active:
            return
        record = {"step": int(step), **{k: _jsonable(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for k, v in record.items():
            if k != "step" and isinstance(v, float):
                self._tb.add_scalar(k, v, step)

    def flush(self) -> None:
        """Pushes every written record to the operating system (TensorBoard's too)."""
        if self.active:
            self._file.flush()
            self._tb.flush()

    def close(self) -> None:
        if self.active:
            self._file.close()
            self._tb.close()
