"""Embeddings, attention, the MLP denoiser and the conv ResNet conditioner."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.nn.attention import AttentionBlock
from gen.nn.denoiser import MLPDenoiser
from gen.nn.embeddings import fourier_features, timestep_embedding
from gen.nn.resnet import ConvResNet


def perturb(params, key, scale=0.1):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    moved = [
        p + scale * jax.random.normal(k, p.shape, p.dtype)
        for p, k in zip(leaves, keys, strict=True)
    ]
    return tree.unflatten(moved)


def max_abs(a, b) -> float:
    return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))


# ----- embeddings -----


def ddpm_embedding_np(t: np.ndarray, dim: int) -> np.ndarray:
    """Ho et al.'s ``get_timestep_embedding``, recomputed in float64 numpy."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = np.exp(np.arange(half, dtype=np.float64) * -step)
    args = t.astype(np.float64)[:, None] * freqs[None, :]
    emb = np.concatenate([np.sin(args), np.cos(args)], axis=1)
    if dim % 2 == 1:
        emb = np.pad(emb, [[0, 0], [0, 1]])
    return emb


@pytest.mark.parametrize("dim", [4, 33, 128])
def test_timestep_embedding_matches_ddpm(dim):
    t = np.array([0.0, 1.0, 17.5, 500.0, 999.0])
    got = np.asarray(timestep_embedding(jnp.asarray(t), dim))
    assert got.shape == (5, dim) and got.dtype == np.float32
    # float32 arguments up to 999 rad carry ~1e-4 absolute error into sin/cos.
    np.testing.assert_allclose(got, ddpm_embedding_np(t, dim), atol=2e-4, rtol=0)


def test_timestep_embedding_layout():
    t = jnp.array([2.0, 300.0])
    emb = timestep_embedding(t, 10)
    np.testing.assert_allclose(emb[:, 0], jnp.sin(t), rtol=1e-6)  # first: sin, frequency 1
    np.testing.assert_allclose(emb[:, 5], jnp.cos(t), rtol=1e-6)  # then: cos, frequency 1
    np.testing.assert_allclose(emb[:, 4], jnp.sin(t / 10000), rtol=1e-5)  # lowest frequency
    # Rank-polymorphic: a scalar gives one vector, equal to the batched row.
    np.testing.assert_allclose(timestep_embedding(t[1], 10), emb[1], rtol=1e-6)
    with pytest.raises(ValueError, match="dim"):
        timestep_embedding(t, 3)


def test_fourier_features():
    t = jnp.array([-1.0, 0.0, 0.3])
    emb = fourier_features(t, 16, scale=4.0, seed=3)
    assert emb.shape == (3, 16)
    np.testing.assert_allclose(emb[:, :8] ** 2 + emb[:, 8:] ** 2, 1.0, rtol=1e-5)
    np.testing.assert_allclose(emb[1], [0.0] * 8 + [1.0] * 8, atol=1e-7)  # t=0
    # Fixed frequencies: w = N(0, scale^2) from key(seed), nothing trainable.
    w = 4.0 * jax.random.normal(jax.random.key(3), (8,))
    np.testing.assert_allclose(emb[2, :8], jnp.sin(2 * jnp.pi * 0.3 * w), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(emb, fourier_features(t, 16, scale=4.0, seed=3))
    assert max_abs(emb, fourier_features(t, 16, scale=4.0, seed=4)) > 0.1
    with pytest.raises(ValueError, match="even"):
        fourier_features(t, 15)


# ----- attention -----


def attention_np(x: np.ndarray, p: dict, heads: int, groups: int) -> np.ndarray:
    """GroupNorm, multi-head softmax attention over pixels, projection, residual; float64."""
    B, H, W, C = x.shape
    x = x.astype(np.float64)
    g = x.reshape(B, H * W, groups, C // groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    h = ((g - mean) / np.sqrt(var + 1e-6)).reshape(B, H * W, C)
    h = h * np.asarray(p["norm"]["scale"]) + np.asarray(p["norm"]["bias"])

    def dense(name, v):
        return v @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"])

    d = C // heads
    q, k, v = (dense(n, h).reshape(B, H * W, heads, d) for n in ("q", "k", "v"))
    out = np.zeros((B, H * W, heads, d))
    for b in range(B):
        for i in range(heads):
            logits = q[b, :, i] @ k[b, :, i].T / math.sqrt(d)
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            out[b, :, i] = w @ v[b, :, i]
    out = dense("proj_out", out.reshape(B, H * W, C))
    return x + out.reshape(B, H, W, C)


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_matches_reference(heads):
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 8))
    block = AttentionBlock(num_heads=heads, num_groups=4)
    params = block.init(jax.random.key(1), x)
    np.testing.assert_array_equal(block.apply(params, x), x)  # proj_out zero-init: identity
    moved = perturb(params, jax.random.key(2), 0.3)
    got = block.apply(moved, x)
    want = attention_np(np.asarray(x), moved["params"], heads, 4)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    assert max_abs(got, x) > 1e-2


def test_attention_permutation_equivariant():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 8))
    block = AttentionBlock(num_heads=2, num_groups=4)
    params = perturb(block.init(jax.random.key(1), x), jax.random.key(2), 0.3)
    perm = np.random.default_rng(0).permutation(16)

    def permute(a):
        return a.reshape(2, 16, 8)[:, perm].reshape(2, 4, 4, 8)

    y = block.apply(params, x)
    np.testing.assert_allclose(block.apply(params, permute(x)), permute(y), atol=1e-5)
    # The property has teeth: the output depends on other pixels, not only on each pixel.
    x2 = x.at[:, 0, 0].add(1.0)
    assert max_abs(block.apply(params, x2)[:, 3, 3], y[:, 3, 3]) > 1e-3


def test_attention_bf16_and_errors():
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 8))
    block = AttentionBlock(num_heads=2, num_groups=4, dtype=jnp.bfloat16)
    params = block.init(jax.random.key(1), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert block.apply(params, x).dtype == jnp.float32  # the input's dtype
    with pytest.raises(ValueError, match="num_heads"):
        AttentionBlock(num_heads=3, num_groups=4).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        AttentionBlock(num_groups=4).init(jax.random.key(0), x[0])


# ----- MLP denoiser -----


def test_denoiser_shapes_zero_init_and_unbatched():
    x = jax.random.normal(jax.random.key(0), (5, 3))
    t = jnp.linspace(0.0, 999.0, 5)
    net = MLPDenoiser(width=32, num_blocks=2, emb_dim=16)
    params = net.init(jax.random.key(1), x, t)
    y = net.apply(params, x, t)
    assert y.shape == (5, 3) and y.dtype == jnp.float32
    np.testing.assert_array_equal(y, 0.0)  # zero-initialized output layer
    moved = perturb(params, jax.random.key(2))
    yb = net.apply(moved, x, t)
    assert max_abs(yb, 0.0) > 1e-3
    # One example, scalar time: the same as its row of the batch (LayerNorm is per example).
    np.testing.assert_allclose(net.apply(moved, x[2], t[2]), yb[2], atol=1e-5)
    # Time matters, per example.
    y_t = net.apply(moved, x, t.at[0].add(50.0))
    assert max_abs(y_t[0], yb[0]) > 1e-3
    np.testing.assert_allclose(y_t[1:], yb[1:], atol=1e-6)
    # Not zero-initialized: nonzero from the start.
    net_nz = MLPDenoiser(width=32, num_blocks=2, emb_dim=16, zero_init_out=False)
    assert max_abs(net_nz.apply(net_nz.init(jax.random.key(1), x, t), x, t), 0.0) > 1e-3
    assert MLPDenoiser(width=8, num_blocks=1, emb_dim=8, out_features=6).init_with_output(
        jax.random.key(0), x, t
    )[0].shape == (5, 6)


def test_denoiser_grads_labels_dropout():
    x = jax.random.normal(jax.random.key(0), (4, 2))
    t = jnp.array([1.0, 10.0, 100.0, 900.0])
    labels = jnp.array([0, 1, 2, 0])
    net = MLPDenoiser(
        width=16, num_blocks=2, emb_dim=8, num_classes=3, null_class=True, dropout=0.5
    )
    params = perturb(net.init(jax.random.key(1), x, t, labels), jax.random.key(2))
    assert params["params"]["label_emb"]["embedding"].shape == (4, 16)

    def loss(p):
        return jnp.sum(
            net.apply(p, x, t, labels, train=True, rngs={"dropout": jax.random.key(3)}) ** 2
        )

    grads = jax.grad(loss)(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["params"]["in"]["kernel"]).max()) > 0

    y = net.apply(params, x, t, labels)
    y_l = net.apply(params, x, t, labels.at[0].set(1))
    assert max_abs(y_l[0], y[0]) > 1e-3
    np.testing.assert_allclose(
        net.apply(params, x, t), net.apply(params, x, t, jnp.full(4, 3)), atol=1e-6
    )
    # Dropout: random only in training.
    np.testing.assert_array_equal(net.apply(params, x, t, labels), y)
    d1 = net.apply(params, x, t, labels, train=True, rngs={"dropout": jax.random.key(0)})
    d2 = net.apply(params, x, t, labels, train=True, rngs={"dropout": jax.random.key(1)})
    assert max_abs(d1, d2) > 1e-3


def test_denoiser_errors():
    x, t = jnp.zeros((4, 2)), jnp.zeros(4)
    with pytest.raises(ValueError, match="t_input"):
        MLPDenoiser(width=8, emb_dim=8).init(jax.random.key(0), x, jnp.zeros(3))
    with pytest.raises(ValueError, match="num_classes is None"):
        MLPDenoiser(width=8, emb_dim=8).init(jax.random.key(0), x, t, jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match="without labels"):
        MLPDenoiser(width=8, emb_dim=8, num_classes=2).init(jax.random.key(0), x, t)
    with pytest.raises(ValueError, match="time_embedding"):
        MLPDenoiser(width=8, emb_dim=8, time_embedding="x").init(jax.random.key(0), x, t)


# ----- conv ResNet -----


def test_resnet_unbatched_batched_and_zero_init():
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
    net = ConvResNet(out_channels=5, features=8, num_blocks=1, num_groups=4)
    params = net.init(jax.random.key(1), x[0])  # init on one event
    y0 = net.apply(params, x[0])
    assert y0.shape == (4, 4, 5) and y0.dtype == jnp.float32
    np.testing.assert_array_equal(y0, 0.0)  # zero-initialized conv_out
    moved = perturb(params, jax.random.key(2))
    batched = net.apply(moved, x)
    assert batched.shape == (3, 4, 4, 5)
    vmapped = jax.vmap(lambda e: net.apply(moved, e))(x)
    np.testing.assert_allclose(batched, vmapped, atol=1e-5)
    np.testing.assert_allclose(net.apply(moved, x[1]), batched[1], atol=1e-5)
    assert max_abs(batched, 0.0) > 1e-3
    # Any leading batch shape.
    assert net.apply(moved, x.reshape(3, 1, 4, 4, 2)).shape == (3, 1, 4, 4, 5)


def test_resnet_context_and_grads():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 2))
    ctx_vec = jax.random.normal(jax.random.key(1), (2, 3))
    net = ConvResNet(out_channels=4, features=8, num_blocks=2, num_groups=None)
    params = perturb(net.init(jax.random.key(2), x, ctx_vec), jax.random.key(3))
    y = net.apply(params, x, ctx_vec)
    # A vector context equals its map broadcast over the pixels.
    ctx_map = jnp.broadcast_to(ctx_vec[:, None, None, :], (2, 4, 4, 3))
    np.testing.assert_allclose(net.apply(params, x, ctx_map), y, atol=1e-6)
    assert max_abs(net.apply(params, x, ctx_vec + 1.0), y) > 1e-3
    # Unbatched event with its own context.
    np.testing.assert_allclose(net.apply(params, x[0], ctx_vec[0]), y[0], atol=1e-5)

    def loss(p):
        return jnp.sum(net.apply(p, x, ctx_vec) ** 2)

    grads = jax.grad(loss)(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match="context"):
        net.apply(params, x, ctx_vec[0])
    with pytest.raises(ValueError, match="image"):
        net.init(jax.random.key(0), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="num_groups"):
        ConvResNet(out_channels=1, features=6, num_groups=4).init(jax.random.key(0), x)
