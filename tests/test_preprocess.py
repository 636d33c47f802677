"""Preprocessing: scaling, dequantization, binarization, and the bits/dim convention."""

import math

import jax
import ml_collections
import numpy as np
import pytest

from gen.data.preprocess import make_preprocess
from gen.data.source import DataSpec
from gen.errors import ConfigError

IMAGE = DataSpec((4, 4, 1), "image")


def _cfg(**kw) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(kw)


def _pixels(seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 256, (64, 4, 4, 1)).astype(np.uint8)
    x[0, 0, 0, 0], x[0, 0, 1, 0] = 0, 255  # both extremes
    return x


@pytest.mark.parametrize("scale,lo,hi", [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
def test_uniform_dequantization_stays_in_range_and_inverts(scale, lo, hi):
    pre = make_preprocess(IMAGE, _cfg(scale=scale, dequantize="uniform"))
    x = _pixels()
    y = np.asarray(pre.apply({"x": x}, jax.random.PRNGKey(0))["x"])
    assert y.dtype == np.float32 and y.min() >= lo and y.max() < hi
    # each pixel x lands in its own cell [x, x + 1) / 256 (mapped to the target range)
    cell = (y - lo) / (hi - lo) * 256
    assert np.all(np.floor(cell) == x)
    np.testing.assert_array_equal(pre.postprocess(y), x)


def test_dequantization_noise_depends_on_the_key():
    pre = make_preprocess(IMAGE, _cfg())
    x = _pixels()
    a = pre.apply({"x": x}, jax.random.PRNGKey(0))["x"]
    b = pre.apply({"x": x}, jax.random.PRNGKey(1))["x"]
    assert not np.array_equal(a, b)


def test_no_dequantization_maps_extremes_to_range_ends():
    pre = make_preprocess(IMAGE, _cfg(scale="symmetric", dequantize="none"))
    y = np.asarray(pre.apply({"x": _pixels()}, jax.random.PRNGKey(0))["x"])
    assert y[0, 0, 0, 0] == -1.0 and y[0, 0, 1, 0] == 1.0
    np.testing.assert_array_equal(pre.postprocess(y), _pixels())
    assert pre.log_scale is None


def test_bits_per_dim_of_the_uniform_model_is_eight():
    # a model uniform on [0, 1)^D has log-density 0 there, so the 8-bit data cost 8 bits/dim
    pre = make_preprocess(IMAGE, _cfg(scale="unit", dequantize="uniform"))
    assert pre.bits_per_dim(np.zeros(3), IMAGE.dim) == pytest.approx(8.0)
    # uniform on [-1, 1)^D has density 2^-D: nll = D log 2, still 8 bits/dim in pixel space
    sym = make_preprocess(IMAGE, _cfg(scale="symmetric", dequantize="uniform"))
    assert sym.bits_per_dim(IMAGE.dim * math.log(2), IMAGE.dim) == pytest.approx(8.0)


def test_static_binarization_thresholds_and_dynamic_is_bernoulli():
    x = _pixels()
    static = make_preprocess(IMAGE, _cfg(binarize="static"))
    y = np.asarray(static.apply({"x": x}, jax.random.PRNGKey(0))["x"])
    np.testing.assert_array_equal(y, (x >= 128).astype(np.float32))
    dynamic = make_preprocess(IMAGE, _cfg(binarize="dynamic"))
    big = np.full((20000, 1), 64, np.uint8)
    draws = np.asarray(dynamic.apply({"x": big}, jax.random.PRNGKey(1))["x"])
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert abs(draws.mean() - 64 / 255) < 0.02
    assert static.log_scale is None and dynamic.log_scale is None


def test_vectors_pass_through_as_float32():
    pre = make_preprocess(DataSpec((2,), "vector"), _cfg())
    x = np.random.default_rng(0).normal(size=(5, 2))
    y = pre.apply({"x": x}, jax.random.PRNGKey(0))["x"]
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.asarray(y), x, rtol=1e-6)


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data\.scale"):
        make_preprocess(IMAGE, _cfg(scale="bogus"))
