"""The DDPM UNet: shapes, gradients, conditioning, dropout, bf16, and the CIFAR-10 size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.nn.unet import UNet, cifar10_config, count_params

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("unet")

TINY = dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), num_groups=4)
B, S, C = 2, 8, 3


def perturb(params, key, scale=0.1):
    """Moves every param, so zero-initialized layers stop hiding the inputs' effect."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten(
        [
            p + scale * jax.random.normal(k, p.shape, p.dtype)
            for p, k in zip(leaves, keys, strict=True)
        ]
    )


@pytest.fixture(scope="module")
def data():
    x = jax.random.normal(jax.random.key(0), (B, S, S, C))
    t = jnp.array([3.0, 700.0])
    return x, t


@pytest.fixture(scope="module")
def tiny(data):
    x, t = data
    net = UNet(**TINY, dropout=0.5)
    params = net.init(jax.random.key(1), x, t)
    return net, params, perturb(params, jax.random.key(2))


def test_shape_and_zero_output_at_init(data, tiny):
    x, t = data
    net, params, _ = tiny
    y = net.apply(params, x, t)
    assert y.shape == x.shape and y.dtype == jnp.float32
    # conv_out is zero-initialized as in DDPM (init_scale=0): exactly zero at init.
    np.testing.assert_array_equal(np.asarray(y), 0.0)


def test_out_channels_and_scalar_time(data):
    x, _ = data
    net = UNet(**TINY, out_channels=6)
    params = net.init(jax.random.key(0), x, jnp.float32(5.0))
    assert net.apply(params, x, jnp.float32(5.0)).shape == (B, S, S, 6)


def test_structure_follows_ddpm(tiny):
    _, params, _ = tiny
    p = params["params"]
    # Attention at 4x4 only (level 1 of ch_mult=(1, 2) on 8x8), plus the middle.
    assert {k for k in p if "attn" in k} == {
        "down_1_attn_0",
        "up_1_attn_0",
        "up_1_attn_1",
        "mid_attn_1",
    }
    assert p["temb_dense0"]["kernel"].shape == (8, 32)  # sinusoidal(ch) -> 4 ch
    assert p["up_0_block_0"]["nin_shortcut"]["kernel"].shape == (16 + 8, 8)
    assert p["down_0_downsample"]["kernel"].shape == (3, 3, 8, 8)
    assert sum(k.startswith("up_1_block") for k in p) == TINY["num_res_blocks"] + 1


def test_forward_backward_finite(data, tiny):
    x, t = data
    net, _, moved = tiny

    def loss(params):
        return jnp.mean(net.apply(params, x, t) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(moved)
    assert np.isfinite(float(value)) and value > 0
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    # Every param gets a gradient once the zero-initialized layers have moved.
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


def test_time_changes_output(data, tiny):
    x, t = data
    net, _, moved = tiny
    y1 = net.apply(moved, x, t)
    y2 = net.apply(moved, x, t + 100.0)
    assert float(jnp.max(jnp.abs(y1 - y2))) > 1e-3
    # and per example: only the example whose time changed moves.
    y3 = net.apply(moved, x, t.at[1].add(100.0))
    np.testing.assert_allclose(y3[0], y1[0], atol=1e-5)
    assert float(jnp.max(jnp.abs(y3[1] - y1[1]))) > 1e-3


def test_labels_change_output_and_null_class(data):
    x, t = data
    net = UNet(**TINY, num_classes=3, null_class=True)
    labels = jnp.array([0, 2])
    params = perturb(net.init(jax.random.key(0), x, t, labels), jax.random.key(1))
    assert params["params"]["label_emb"]["embedding"].shape == (4, 32)  # 3 classes + null
    assert net.null_label == 3
    y0 = net.apply(params, x, t, labels)
    y1 = net.apply(params, x, t, jnp.array([1, 2]))
    assert float(jnp.max(jnp.abs(y0[0] - y1[0]))) > 1e-3
    np.testing.assert_allclose(y0[1], y1[1], atol=1e-5)
    # labels=None is the null label.
    np.testing.assert_allclose(
        net.apply(params, x, t, None), net.apply(params, x, t, jnp.array([3, 3])), atol=1e-6
    )


def test_label_errors(data):
    x, t = data
    with pytest.raises(ValueError, match="num_classes=None"):
        UNet(**TINY).init(jax.random.key(0), x, t, jnp.array([0, 1]))
    with pytest.raises(ValueError, match="needs labels"):
        UNet(**TINY, num_classes=3).init(jax.random.key(0), x, t)
    with pytest.raises(ValueError, match="null_class=True"):
        _ = UNet(**TINY, num_classes=3).null_label
    with pytest.raises(ValueError, match="integers"):
        UNet(**TINY, num_classes=3).init(jax.random.key(0), x, t, jnp.array([0.0, 1.0]))


def test_dropout_only_in_training(data, tiny):
    x, t = data
    net, _, moved = tiny
    eval1 = net.apply(moved, x, t, train=False, rngs={"dropout": jax.random.key(0)})
    eval2 = net.apply(moved, x, t, train=False)  # no rng needed
    np.testing.assert_array_equal(np.asarray(eval1), np.asarray(eval2))
    tr1 = net.apply(moved, x, t, train=True, rngs={"dropout": jax.random.key(0)})
    tr2 = net.apply(moved, x, t, train=True, rngs={"dropout": jax.random.key(1)})
    tr1b = net.apply(moved, x, t, train=True, rngs={"dropout": jax.random.key(0)})
    assert float(jnp.max(jnp.abs(tr1 - tr2))) > 1e-3
    assert float(jnp.max(jnp.abs(tr1 - eval1))) > 1e-3
    np.testing.assert_array_equal(np.asarray(tr1), np.asarray(tr1b))


def test_bf16_compute(data, tiny):
    x, t = data
    net, _, moved = tiny
    net16 = UNet(**TINY, dropout=0.5, dtype=jnp.bfloat16)
    params16 = net16.init(jax.random.key(1), x, t)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params16))
    y16 = net16.apply(moved, x, t)  # same param tree as the float32 net
    y32 = net.apply(moved, x, t)
    assert y16.dtype == jnp.float32 and y16.shape == x.shape
    assert bool(jnp.all(jnp.isfinite(y16)))
    rel = float(jnp.linalg.norm(y16 - y32) / jnp.linalg.norm(y32))
    assert rel < 0.1, rel


def test_resample_without_conv(data):
    x, t = data
    net = UNet(**{**TINY, "attn_resolutions": ()}, resamp_with_conv=False)
    params = net.init(jax.random.key(0), x, t)
    assert "down_0_downsample" not in params["params"]
    assert net.apply(params, x, t).shape == x.shape


def test_bad_input(data):
    x, t = data
    net = UNet(**TINY)
    with pytest.raises(ValueError, match="divisible"):
        net.init(jax.random.key(0), jnp.zeros((1, 7, 8, 3)), jnp.zeros(1))
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        net.init(jax.random.key(0), jnp.zeros((8, 8, 3)), jnp.zeros(()))
    with pytest.raises(ValueError, match="t_input"):
        net.init(jax.random.key(0), x, jnp.zeros(3))
    with pytest.raises(ValueError, match="num_groups"):
        UNet(**{**TINY, "num_groups": 3}).init(jax.random.key(0), x, t)
    with pytest.raises(ValueError, match="time_embedding"):
        UNet(**TINY, time_embedding="learned").init(jax.random.key(0), x, t)


def test_fourier_time_embedding(data):
    x, _ = data
    net = UNet(**TINY, time_embedding="fourier")
    sigma = jnp.log(jnp.array([0.1, 10.0]))
    params = perturb(net.init(jax.random.key(0), x, sigma), jax.random.key(1))
    y1, y2 = net.apply(params, x, sigma), net.apply(params, x, sigma + 0.5)
    assert float(jnp.max(jnp.abs(y1 - y2))) > 1e-3


def test_cifar10_param_count():
    """Ho et al. 2020, Appendix B: the CIFAR-10 model has 35.7M parameters."""
    net = UNet(**cifar10_config())
    shapes = jax.eval_shape(
        lambda: net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,)))
    )
    n = count_params(shapes["params"])
    print(f"CIFAR-10 UNet parameters: {n:,}")
    assert round(n / 1e6, 1) == 35.7
    assert n == 35_746_307  # our exact count; pins the architecture
