"""Tests for the dataset loaders: digits, idx, npy, tfds and the ``load`` dispatcher.

toy2d has its own file, tests/test_toy2d.py.
"""

import gzip
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from gen.data import digits, idx, loaders, npy
from gen.data import tfds as tfds_loader
from gen.data.source import DataSpec
from gen.errors import ConfigError, DataError

MNIST_DIR = Path(__file__).parents[2] / "shared" / "data" / "mnist"


def _cfg(**kwargs) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(kwargs)


def _all(source) -> dict[str, np.ndarray]:
    return source[np.arange(len(source))]


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


# ----------------------------------------------------------------------------- loaders.load


def test_unknown_source_lists_known_ones():
    with pytest.raises(ConfigError) as e:
        loaders.load(_cfg(source="mnist"))
    message = _one_line(e)
    for name in ("toy2d", "digits", "idx", "npy", "tfds"):
        assert name in message
    with pytest.raises(ConfigError):
        loaders.load(_cfg())


def test_load_dispatches():
    ds = loaders.load(_cfg(source="toy2d", name="circles", num_train=10, num_test=5))
    assert ds.spec == DataSpec((2,), "vector") and len(ds.train) == 10
    assert loaders.load(_cfg(source="digits")).spec.shape == (8, 8, 1)


def test_import_is_cheap():
    code = (
        "import sys, gen.data.loaders; "
        "bad = [m for m in ('tensorflow_datasets', 'tensorflow', 'sklearn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ----------------------------------------------------------------------------- digits


def test_digits_images_and_mapping():
    from sklearn.datasets import load_digits

    raw = load_digits()
    ds = digits.load(_cfg())
    assert ds.spec == DataSpec((8, 8, 1), "image", num_classes=10)
    train, test = _all(ds.train), _all(ds.test)
    assert train["x"].dtype == np.uint8 and train["x"].shape[1:] == (8, 8, 1)
    assert train["y"].dtype == np.int32 and set(np.unique(train["y"])) == set(range(10))
    # Independent recomputation: Python's round(v * 255 / 16) on every 0..16 value.
    table = np.array([round(v * 255 / 16) for v in range(17)], np.uint8)
    expected = table[raw.images.astype(int)][..., None]
    train_idx, test_idx = digits.split_indices()
    np.testing.assert_array_equal(train["x"], expected[train_idx])
    np.testing.assert_array_equal(test["x"], expected[test_idx])
    np.testing.assert_array_equal(test["y"], raw.target[test_idx])
    assert train["x"].max() == 255 and train["x"].min() == 0


def test_digits_split_is_fixed_stratified_disjoint_and_complete():
    from sklearn.datasets import load_digits

    y = load_digits().target
    train_idx, test_idx = digits.split_indices()
    assert len(train_idx) + len(test_idx) == 1797
    assert not np.intersect1d(train_idx, test_idx).size
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(1797))
    per_class = np.bincount(y, minlength=10)
    assert np.all(np.abs(np.bincount(y[test_idx], minlength=10) - 0.2 * per_class) <= 1)
    a, b = digits.load(_cfg()), digits.load(_cfg())
    np.testing.assert_array_equal(_all(a.train)["x"], _all(b.train)["x"])
    np.testing.assert_array_equal(_all(a.test)["y"], _all(b.test)["y"])
    small = digits.load(_cfg(test_fraction=0.3))
    assert abs(len(small.test) - 0.3 * 1797) <= 1 and len(small.train) + len(small.test) == 1797


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, "0.2", 0.001])
def test_digits_bad_fraction(fraction):
    with pytest.raises(ConfigError) as e:
        digits.load(_cfg(test_fraction=fraction))
    _one_line(e)


# ----------------------------------------------------------------------------- idx

_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    header = bytes([0, 0, _CODES[array.dtype.type], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def _write_split(folder: Path, prefix: str, n: int, seed: int, gz: bool):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    _write_idx(folder / f"{prefix}-images-idx3-ubyte", x, gz)
    _write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, gz)
    return x, y


@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    path = _write_idx(tmp_path / "a-idx3", array, gz)
    out = idx.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_errors(tmp_path):
    good = _write_idx(tmp_path / "good", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    data = good.read_bytes()
    cases = [
        ("bad magic", b"\x01\x00" + data[2:]),
        ("bad magic", b"\x00\x00\x07" + data[3:]),  # unknown type code
        ("bad magic", b""),
        ("truncated", data[:-1]),
        ("longer", data + b"\x00"),
        ("header", data[:9]),
    ]
    for expected, blob in cases:
        path = tmp_path / "case"
        path.write_bytes(blob)
        with pytest.raises(DataError, match=expected) as e:
            idx.read_idx(path)
        assert str(path) in _one_line(e)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(data)[:-6])
    with pytest.raises(DataError, match="gzip"):
        idx.read_idx(tmp_path / "bad.gz")


def test_idx_load_gz_and_plain(tmp_path):
    x_train, y_train = _write_split(tmp_path, "train", 30, seed=1, gz=True)
    x_test, y_test = _write_split(tmp_path, "t10k", 20, seed=2, gz=False)
    ds = idx.load(_cfg(path=str(tmp_path)))
    assert ds.spec == DataSpec((28, 28, 1), "image", num_classes=10)
    train, test = _all(ds.train), _all(ds.test)
    assert train["x"].dtype == np.uint8 and train["y"].dtype == np.int32
    np.testing.assert_array_equal(train["x"], x_train[..., None])
    np.testing.assert_array_equal(train["y"], y_train)
    np.testing.assert_array_equal(test["x"], x_test[..., None])
    np.testing.assert_array_equal(test["y"], y_test)


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ("test", slice(None)),
        ("test[:8]", slice(0, 8)),
        ("test[8:]", slice(8, None)),
        ("test[10%:]", slice(2, None)),
        ("test[:-5]", slice(0, -5)),
        ("test[25%:75%]", slice(5, 15)),
        ("test[-3:]", slice(-3, None)),
    ],
)
def test_idx_split_slices(tmp_path, split, expected):
    x, y = _write_split(tmp_path, "t10k", 20, seed=3, gz=False)
    ds = idx.load(_cfg(path=str(tmp_path), train_split=split, test_split="test[:1]"))
    got = _all(ds.train)
    np.testing.assert_array_equal(got["x"], x[expected][..., None])
    np.testing.assert_array_equal(got["y"], y[expected])


def test_idx_only_test_files(tmp_path):
    _write_split(tmp_path, "t10k", 20, seed=4, gz=True)
    ds = idx.load(_cfg(path=str(tmp_path), train_split="test[:15]", test_split="test[15:]"))
    assert (len(ds.train), len(ds.test)) == (15, 5)
    with pytest.raises(DataError) as e:
        idx.load(_cfg(path=str(tmp_path)))
    message = _one_line(e)
    assert str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message


def test_idx_errors(tmp_path):
    with pytest.raises(DataError) as e:
        idx.load(_cfg(path=str(tmp_path / "nowhere")))
    assert str(tmp_path / "nowhere") in _one_line(e)
    with pytest.raises(ConfigError):
        idx.load(_cfg())
    _write_split(tmp_path, "t10k", 20, seed=5, gz=False)
    for split in ("validation", "test[:a]", "test[1:2:3]", "test[:200%]"):
        with pytest.raises(ConfigError) as e:
            idx.load(_cfg(path=str(tmp_path), train_split=split, test_split="test"))
        _one_line(e)
    with pytest.raises(DataError, match="no examples") as e:
        idx.load(_cfg(path=str(tmp_path), train_split="test[30:]", test_split="test"))
    # 20 images but 19 labels.
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="20 images but") as e:
        idx.load(_cfg(path=str(tmp_path), train_split="test", test_split="test"))
    _one_line(e)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no MNIST test split at {MNIST_DIR}")
def test_idx_real_mnist_test_split():
    ds = loaders.load(
        _cfg(source="idx", path=str(MNIST_DIR), train_split="test[:8000]", test_split="test[8000:]")
    )
    assert (len(ds.train), len(ds.test)) == (8000, 2000)
    assert ds.spec == DataSpec((28, 28, 1), "image", num_classes=10)
    train, test = _all(ds.train), _all(ds.test)
    counts = np.bincount(np.concatenate([train["y"], test["y"]]), minlength=10)
    np.testing.assert_array_equal(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert train["x"].dtype == np.uint8 and train["x"].max() == 255


# ----------------------------------------------------------------------------- npy


def test_npy_images_with_test_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 6, 5, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(4, 6, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "train.npy", x)
    np.save(tmp_path / "test.npy", x_test)
    ds = npy.load(_cfg(path=str(tmp_path / "train.npy"), test_path=str(tmp_path / "test.npy")))
    assert ds.spec == DataSpec((6, 5, 3), "image")
    np.testing.assert_array_equal(_all(ds.train)["x"], x)
    np.testing.assert_array_equal(_all(ds.test)["x"], x_test)
    assert "y" not in ds.train[np.array([0])]


def test_npy_grayscale_gains_channel(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, size=(10, 7, 7), dtype=np.uint8)
    np.save(tmp_path / "a.npy", x)
    ds = npy.load(_cfg(path=str(tmp_path / "a.npy")))
    assert ds.spec == DataSpec((7, 7, 1), "image")
    assert _all(ds.train)["x"].shape == (9, 7, 7, 1)


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_npy_vectors_held_out_split(tmp_path, fraction):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    x[:, 0] = np.arange(40)  # row ids
    np.save(tmp_path / "v.npy", x)
    cfg = _cfg(path=str(tmp_path / "v.npy"), test_fraction=fraction)
    ds = npy.load(cfg)
    assert ds.spec == DataSpec((3,), "vector")
    train, test = _all(ds.train)["x"], _all(ds.test)["x"]
    assert train.dtype == np.float32 and len(test) == round(fraction * 40)
    ids = np.concatenate([train[:, 0], test[:, 0]]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(40))  # disjoint and complete
    np.testing.assert_allclose(train, x[train[:, 0].astype(int)].astype(np.float32))
    np.testing.assert_array_equal(_all(npy.load(cfg).test)["x"], test)  # fixed split


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    rng = np.random.default_rng(3)
    cases = {}

    def save(name, array):
        np.save(tmp_path / name, array)
        return tmp_path / name

    cases["missing"] = (tmp_path / "nope.npy", "does not exist")
    (tmp_path / "junk.npy").write_bytes(rng.integers(0, 256, 100, dtype=np.uint8).tobytes())
    cases["garbage"] = (tmp_path / "junk.npy", "not a .npy file")
    whole = save("whole.npy", rng.normal(size=(10, 4))).read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-8])
    cases["truncated"] = (tmp_path / "cut.npy", "cannot be read")
    cases["pickled"] = (save("obj.npy", np.array([{"a": 1}, None], dtype=object)), "Python objects")
    np.savez(tmp_path / "arch.npz", a=np.zeros((3, 2)))
    cases["npz"] = (tmp_path / "arch.npz", "npz")
    nan = rng.normal(size=(10, 2))
    nan[3, 1] = np.nan
    cases["nan"] = (save("nan.npy", nan), "NaN")
    inf = rng.normal(size=(10, 2)).astype(np.float32)
    inf[0, 0] = -np.inf
    cases["inf"] = (save("inf.npy", inf), "infinite")
    cases["float 3-D"] = (save("f3.npy", rng.normal(size=(4, 3, 2))), "expected")
    cases["uint8 2-D"] = (save("u2.npy", np.zeros((4, 3), np.uint8)), "expected")
    cases["int64"] = (save("i.npy", np.zeros((4, 3), np.int64)), "expected")
    cases["one example"] = (save("one.npy", rng.normal(size=(1, 3))), "at least 2")
    return cases


def test_npy_rejects_bad_files(tmp_path):
    for case, (path, match) in _bad_files(tmp_path).items():
        with pytest.raises(DataError, match=match) as e:
            npy.load(_cfg(path=str(path)))
        assert str(path) in _one_line(e), case


def test_npy_rejects_mismatched_test_file(tmp_path):
    np.save(tmp_path / "train.npy", np.zeros((5, 4, 4, 1), np.uint8))
    np.save(tmp_path / "shape.npy", np.zeros((5, 4, 4, 3), np.uint8))
    np.save(tmp_path / "kind.npy", np.zeros((5, 16), np.float32))
    for other in ("shape.npy", "kind.npy"):
        with pytest.raises(DataError, match="must match") as e:
            npy.load(_cfg(path=str(tmp_path / "train.npy"), test_path=str(tmp_path / other)))
        _one_line(e)
    with pytest.raises(ConfigError):
        npy.load(_cfg())
    with pytest.raises(ConfigError):
        npy.load(_cfg(path=str(tmp_path / "train.npy"), test_fraction=1.5))


# ----------------------------------------------------------------------------- tfds


@pytest.fixture
def mock_tfds(monkeypatch):
    """``tfds.testing.mock_data`` for ``tfds.data_source``: random records, nothing downloaded."""
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.testing import mocking

    # tfds 4.9.10's mock installs __getitems__ as a plain attribute, which then misses the
    # `self` argument; give it the signature it is called with.
    monkeypatch.setattr(
        mocking, "_getitems", lambda keys, generator, serialized=False: [generator[k] for k in keys]
    )
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        yield tfds


def test_tfds_mnist_through_data_source(mock_tfds):
    ds = loaders.load(_cfg(source="tfds", name="mnist"))
    assert ds.spec == DataSpec((28, 28, 1), "image", num_classes=10)
    assert len(ds.train) == len(ds.test) == 12
    indices = np.array([3, 0, 11, -1])
    batch = ds.train[indices]
    assert batch["x"].shape == (4, 28, 28, 1) and batch["x"].dtype == np.uint8
    assert batch["y"].shape == (4,) and batch["y"].dtype == np.int32
    assert batch["y"].min() >= 0 and batch["y"].max() < 10
    raw = mock_tfds.data_source("mnist", split="train")
    for row, i in enumerate([3, 0, 11, 11]):
        np.testing.assert_array_equal(batch["x"][row], raw[i]["image"])
        assert batch["y"][row] == raw[i]["label"]
    empty = ds.train[np.array([], np.int64)]
    assert empty["x"].shape == (0, 28, 28, 1) and empty["y"].shape == (0,)
    with pytest.raises(IndexError):
        ds.train[np.array([12])]
    unlabelled = loaders.load(_cfg(source="tfds", name="mnist", label_key="no_such_feature"))
    assert unlabelled.spec.num_classes is None and "y" not in unlabelled.test[np.array([0])]
    with pytest.raises(DataError, match="image_key") as e:
        loaders.load(_cfg(source="tfds", name="mnist", image_key="pixels"))
    _one_line(e)


def test_tfds_source_without_getitems():
    rng = np.random.default_rng(0)
    records = [{"v": rng.normal(size=3), "label": i % 4} for i in range(6)]
    spec = DataSpec((3,), "vector", num_classes=4)
    source = tfds_loader.TfdsSource(records, spec, "v", "label")
    batch = source[np.array([5, 1])]
    assert batch["x"].dtype == np.float32
    np.testing.assert_allclose(batch["x"], np.stack([records[5]["v"], records[1]["v"]]), rtol=1e-6)
    np.testing.assert_array_equal(batch["y"], [1, 1])
    assert "y" not in tfds_loader.TfdsSource(records, spec, "v", None)[np.array([0])]


def test_tfds_not_prepared_offline(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError) as e:
        loaders.load(_cfg(source="tfds", name="mnist", data_dir=str(tmp_path), download=False))
    message = _one_line(e)
    assert "'mnist'" in message and str(tmp_path) in message
    assert "tfds build mnist --file_format=array_record" in message
    with pytest.raises(DataError, match="no dataset named") as e:
        loaders.load(
            _cfg(source="tfds", name="no_such_dataset_xyz", data_dir=str(tmp_path), download=False)
        )
    _one_line(e)
    with pytest.raises(ConfigError):
        loaders.load(_cfg(source="tfds"))


def test_tfds_use_tf_load_without_tensorflow(tmp_path):
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorFlow is installed")
    with pytest.raises(DataError, match=r"pip install -e \"\.\[tf\]\"") as e:
        loaders.load(
            _cfg(
                source="tfds",
                name="mnist",
                data_dir=str(tmp_path),
                download=False,
                use_tf_load=True,
            )
        )
    _one_line(e)
