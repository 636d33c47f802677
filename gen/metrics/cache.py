"""Where converted weights and trained feature classifiers are cached on disk.

``$GEN_CACHE_DIR`` if set, else ``~/.cache/gen``. Files are written to a temporary name in the
same folder and renamed, so a reader never sees half a file and concurrent writers do not clash.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ENV_VAR = "GEN_CACHE_DIR"


def cache_dir() -> Path:
    """The cache folder: ``$GEN_CACHE_DIR`` or ``~/.cache/gen`` (created on first write)."""
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "gen").expanduser()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` to ``path`` (an ``.npz``) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cached ``.npz``, or ``None`` when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
