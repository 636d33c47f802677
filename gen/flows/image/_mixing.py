"""Channel mixing between couplings: Glow's invertible 1x1 convolution, and squeeze
(space-to-depth, RealNVP's and Glow's ``squeeze2d``)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from gen.flows.bijector import Array, Bijector, Params, _no_params
from gen.flows.image._common import _check_image, _zero


def conv1x1(perm: Sequence[int] | np.ndarray | None = None, init_scale: float = 0.01) -> Bijector:
    """The invertible 1x1 convolution of Glow, LU-parameterized: ``y[h, w] = W x[h, w]`` with

        W = P L (U + diag(exp(log_s))),

    ``P`` a fixed channel permutation (``(P v)[i] = v[perm[i]]``; default: reverse the channels),
    ``L`` unit lower triangular, ``U`` strictly upper triangular. log-det
    ``H W sum(log_s)`` exactly. The inverse ``W^-1 = (U + diag(s))^-1 L^-1 P^T`` comes from two
    triangular solves on the ``C x C`` channel matrix (computed once per call, not per pixel),
    then one matmul over the pixels. At init ``log_s = 0`` and the strict triangles are
    ``init_scale`` times standard normal noise, so ``W`` starts near ``P`` (Glow starts at a
    random rotation; a near-permutation keeps ``P`` static and ``det W > 0`` fixed).
    Params ``{"lower", "upper", "log_s"}`` (only the strict triangles are used); ``context`` is
    ignored. Any spatial size is accepted; the channel count is checked.
    """
    given = None if perm is None else np.asarray(perm)
    if given is not None and not np.array_equal(np.sort(given), np.arange(given.size)):
        raise ValueError(f"conv1x1: perm must be a permutation of range(C), got {perm!r}.")

    def permutation(c: int) -> np.ndarray:
        if given is None:
            return np.arange(c - 1, -1, -1, dtype=np.int32)
        if given.size != c:
            raise ValueError(f"conv1x1: perm has size {given.size}, but the image has C={c}.")
        return given.astype(np.int32)

    def init(key: Array, x: Array, context: Array | None = None) -> dict[str, Array]:
        del context
        _check_image(x, "conv1x1")
        c = jnp.shape(x)[-1]
        permutation(c)
        dtype = jnp.result_type(jnp.asarray(x).dtype, jnp.float32)
        k1, k2 = jax.random.split(key)
        strict = np.tril(np.ones((c, c), bool), -1)
        noise = lambda k: init_scale * jax.random.normal(k, (c, c), dtype)
        return {
            "lower": jnp.where(strict, noise(k1), 0.0),
            "upper": jnp.where(strict.T, noise(k2), 0.0),
            "log_s": jnp.zeros((c,), dtype),
        }

    def factors(params: Params, x: Array) -> tuple[Array, Array, np.ndarray]:
        c = params["log_s"].shape[-1]
        _check_image(x, "conv1x1", c)
        strict = np.tril(np.ones((c, c), bool), -1)
        lower = jnp.where(strict, params["lower"], 0.0) + jnp.eye(c, dtype=params["lower"].dtype)
        upper = jnp.where(strict.T, params["upper"], 0.0) + jnp.diag(jnp.exp(params["log_s"]))
        return lower, upper, permutation(c)

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        lower, upper, p = factors(params, x)
        w = (lower @ upper)[p]
        hw = x.shape[0] * x.shape[1]
        return jnp.einsum("hwc,dc->hwd", x, w), hw * jnp.sum(params["log_s"])

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del context
        lower, upper, p = factors(params, y)
        p_inv_matrix = jnp.eye(p.size, dtype=lower.dtype)[np.argsort(p)]  # P^T
        z = solve_triangular(lower, p_inv_matrix, lower=True, unit_diagonal=True)
        w_inv = solve_triangular(upper, z, lower=False)
        hw = y.shape[0] * y.shape[1]
        return jnp.einsum("hwc,dc->hwd", y, w_inv), -hw * jnp.sum(params["log_s"])

    return Bijector(init, forward, inverse)


def squeeze() -> Bijector:
    """Space-to-depth 2x2 (RealNVP, Glow): ``forward`` maps ``(H, W, C) -> (H/2, W/2, 4C)`` with

        y[i, j, 4 c + 2 a + b] = x[2 i + a, 2 j + b, c],     a, b in {0, 1}

    (Glow's ``squeeze2d`` channel order). ``inverse`` is depth-to-space; ``invert(squeeze())``
    is unsqueeze. A permutation: no params, log-det 0. ``forward`` raises a ``ValueError`` on
    odd ``H`` or ``W``, ``inverse`` on ``C`` not divisible by 4. ``init`` only checks that its
    example is one image, so ``invert(squeeze())`` initializes from either side's event.
    """

    def forward(params: Params, x: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        _check_image(x, "squeeze")
        h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(
                f"squeeze: height and width must be even to squeeze 2x2, got an image of shape "
                f"{x.shape}. Pad or crop the images, or use fewer scales."
            )
        y = x.reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 4, 1, 3)
        return y.reshape(h // 2, w // 2, 4 * c), _zero(x)

    def inverse(params: Params, y: Array, context: Array | None = None) -> tuple[Array, Array]:
        del params, context
        _check_image(y, "unsqueeze")
        h, w, c4 = y.shape
        if c4 % 4:
            raise ValueError(
                f"unsqueeze: the channel count must be divisible by 4, got shape {y.shape}."
            )
        x = y.reshape(h, w, c4 // 4, 2, 2).transpose(0, 3, 1, 4, 2)
        return x.reshape(2 * h, 2 * w, c4 // 4), _zero(y)

    def init(key: Array, x: Array, context: Array | None = None) -> tuple[()]:
        _check_image(x, "squeeze")
        return _no_params(key, x, context)

    return Bijector(init, forward, inverse)
