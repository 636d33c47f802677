"""Tests for ``gen.flows.image._mixing``: squeeze and the invertible 1x1 convolution (conv1x1),
against independent references: squeeze's documented permutation written out element by
element, and the explicit channel matrix W = P L (U + diag(exp(log_s))) built in NumPy from the
raw params (its slogdet, and solve for the inverse); also their layout errors. Registry cases
(tests/test_bijectors.py) cover round trips, log-dets against slogdet(jacfwd) in float64,
gradients and jit/vmap for every image bijector."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen import flows
from gen.flows import registry


def test_squeeze_is_the_documented_permutation():
    x = np.asarray(registry.signed(0, (4, 6, 3)))
    sq = flows.squeeze()
    y, ldj = jax.jit(sq.forward)((), x)
    expected = np.zeros((2, 3, 12), np.float32)
    for i in range(2):
        for j in range(3):
            for c in range(3):
                for a in range(2):
                    for b in range(2):
                        expected[i, j, 4 * c + 2 * a + b] = x[2 * i + a, 2 * j + b, c]
    np.testing.assert_array_equal(y, expected)
    assert ldj == 0.0 and ldj.shape == ()
    x_back, ldj_inv = jax.jit(sq.inverse)((), y)
    np.testing.assert_array_equal(x_back, x)
    assert ldj_inv == 0.0
    unsq = flows.invert(sq)
    np.testing.assert_array_equal(unsq.forward((), y)[0], x)
    with pytest.raises(ValueError, match=r"even.*\(3, 4, 2\)"):
        sq.forward((), jnp.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match=r"divisible by 4.*\(2, 2, 6\)"):
        unsq.forward((), jnp.zeros((2, 2, 6)))
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, C\)"):
        sq.forward((), jnp.zeros((2, 4, 4, 1)))


def _channel_matrix(params, perm):
    """W = P L (U + diag(exp(log_s))) in NumPy from the raw params."""
    lower = np.tril(np.asarray(params["lower"], np.float64), -1) + np.eye(len(perm))
    upper = np.triu(np.asarray(params["upper"], np.float64), 1) + np.diag(
        np.exp(np.asarray(params["log_s"], np.float64))
    )
    return (lower @ upper)[np.asarray(perm)]


@pytest.mark.parametrize("perm", [None, [2, 0, 3, 1]])
def test_conv1x1_matches_the_explicit_channel_matrix(perm):
    x = registry.signed(1, (3, 5, 4))
    conv = flows.conv1x1(perm)
    params = registry.perturb(conv.init(jax.random.key(0), x), seed=2, scale=0.5)

    @jax.jit
    def run(params, x):
        y, ldj = conv.forward(params, x)
        return y, ldj, *conv.inverse(params, y)

    y, ldj, x_back, ldj_inv = jax.tree.map(np.asarray, run(params, x))
    w = _channel_matrix(params, [3, 2, 1, 0] if perm is None else perm)
    np.testing.assert_allclose(y, np.einsum("hwc,dc->hwd", np.asarray(x, np.float64), w),
                               rtol=1e-5, atol=1e-5)
    sign, logdet = np.linalg.slogdet(w)
    assert sign == np.linalg.det(np.eye(4)[np.asarray([3, 2, 1, 0] if perm is None else perm)])
    np.testing.assert_allclose(ldj, 3 * 5 * logdet, rtol=1e-5)
    np.testing.assert_allclose(ldj_inv, -ldj, rtol=1e-6)
    np.testing.assert_allclose(x_back, np.linalg.solve(w, y.reshape(-1, 4).T).T.reshape(x.shape),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"expected one event of shape \(H, W, 4\)"):
        conv.forward(params, jnp.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match="perm has size 4"):
        flows.conv1x1([2, 0, 3, 1]).init(jax.random.key(0), jnp.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="permutation"):
        flows.conv1x1([0, 0, 1])
