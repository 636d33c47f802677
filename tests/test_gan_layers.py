"""Spectral normalization, DiffAugment, PacGAN packing and class conditioning."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.errors import ConfigError
from gen.gan import conditional, diffaugment, spectral_norm
from gen.gan.packing import pack

# --- spectral normalization -------------------------------------------------------------------


def test_power_iteration_reaches_the_largest_singular_value():
    kernel = jax.random.normal(jax.random.key(0), (3, 3, 4, 6))  # a conv kernel, (kh kw in, out)
    u = jax.random.normal(jax.random.key(1), (6,))
    u = u / jnp.linalg.norm(u)
    for _ in range(50):  # one iteration per training step, as in training
        normalized, u = spectral_norm.spectral_normalize(kernel, u)
    top = np.linalg.svd(np.asarray(kernel, np.float64).reshape(-1, 6), compute_uv=False)[0]
    sigma, _, _ = spectral_norm.power_iteration(kernel.reshape(-1, 6), u, 0)
    np.testing.assert_allclose(float(sigma), top, rtol=1e-4)
    got = np.linalg.svd(np.asarray(normalized, np.float64).reshape(-1, 6), compute_uv=False)[0]
    np.testing.assert_allclose(got, 1.0, rtol=1e-4)


def _dense_matrix(variables, module, n_in):
    """The normalized kernel as the layer applies it: its output on the identity (bias 0)."""
    return np.asarray(module.apply(variables, jnp.eye(n_in)), np.float64)


def test_sn_dense_trains_its_vector_toward_unit_spectral_norm():
    layer = spectral_norm.SNDense(7, use_bias=False)
    variables = layer.init(jax.random.key(0), jnp.ones((1, 5)))
    assert variables["spectral"]["sn"]["u"].shape == (7,)
    x = jnp.ones((2, 5))
    for _ in range(40):
        _, updates = layer.apply(variables, x, update_stats=True, mutable=["spectral"])
        variables = {**variables, **updates}
    matrix = _dense_matrix(variables, layer, 5)
    np.testing.assert_allclose(np.linalg.svd(matrix, compute_uv=False)[0], 1.0, rtol=1e-4)


def test_the_vector_moves_only_in_training():
    layer = spectral_norm.SNConv(4, (3, 3))
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    variables = layer.init(jax.random.key(0), x)
    u0 = variables["spectral"]["sn"]["u"]
    y_eval, same = layer.apply(variables, x, update_stats=False, mutable=["spectral"])
    np.testing.assert_array_equal(same["spectral"]["sn"]["u"], u0)
    y_train, moved = layer.apply(variables, x, update_stats=True, mutable=["spectral"])
    assert not np.allclose(moved["spectral"]["sn"]["u"], u0)
    # the output is the same function of (W, u) whether or not u is stored afterwards
    np.testing.assert_allclose(y_train, y_eval, rtol=1e-6)
    np.testing.assert_allclose(layer.apply(variables, x), y_eval, rtol=1e-6)


def test_no_gradient_flows_into_the_power_iteration():
    kernel = jax.random.normal(jax.random.key(2), (4, 3))
    u = jnp.ones(3) / jnp.sqrt(3.0)

    def sigma(k):
        return spectral_norm.power_iteration(k, u, 1)[0]

    _, u1, v1 = spectral_norm.power_iteration(kernel, u, 1)
    # with u and v constant, d(v^T K u)/dK = v u^T
    np.testing.assert_allclose(jax.grad(sigma)(kernel), np.outer(v1, u1), rtol=1e-5, atol=1e-6)


def test_sn_embed_normalizes_its_table():
    embed = spectral_norm.SNEmbed(10, 6)
    variables = embed.init(jax.random.key(0), jnp.arange(10))
    for _ in range(40):
        _, updates = embed.apply(variables, jnp.arange(10), update_stats=True,
                                 mutable=["spectral"])
        variables = {**variables, **updates}
    table = np.asarray(embed.apply(variables, jnp.arange(10)), np.float64)
    np.testing.assert_allclose(np.linalg.svd(table, compute_uv=False)[0], 1.0, rtol=1e-4)


# --- DiffAugment ------------------------------------------------------------------------------


@pytest.fixture
def images():
    return jax.random.uniform(jax.random.key(0), (6, 16, 16, 3), minval=-1.0, maxval=1.0)


@pytest.mark.parametrize("policy", ["", "color", "translation", "cutout",
                                    "color,translation,cutout"])
def test_policies_keep_shape_dtype_and_are_deterministic_in_the_key(images, policy):
    key = jax.random.key(5)
    out = diffaugment.diff_augment(images, key, policy)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, diffaugment.diff_augment(images, key, policy))
    if policy:
        other = diffaugment.diff_augment(images, jax.random.key(6), policy)
        assert not np.allclose(out, other)
    else:
        np.testing.assert_array_equal(out, images)


def test_translation_is_an_integer_shift_with_zero_fill(images):
    out = np.asarray(diffaugment.translation(images, jax.random.key(1)))
    x = np.asarray(images)
    s = 2  # round(16 / 8)
    shifts = set()
    for i in range(len(x)):
        matches = []
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                want = np.zeros_like(x[i])
                src = x[i][max(0, -dy):16 - max(0, dy), max(0, -dx):16 - max(0, dx)]
                top, left = max(0, dy), max(0, dx)
                want[top:top + src.shape[0], left:left + src.shape[1]] = src
                if np.array_equal(out[i], want):
                    matches.append((dy, dx))
        assert len(matches) == 1, i
        shifts.add(matches[0])
    assert len(shifts) > 1  # each example has its own shift


def test_cutout_zeroes_one_clipped_square_per_example(images):
    out = np.asarray(diffaugment.cutout(images, jax.random.key(2)))
    x = np.asarray(images)
    for i in range(len(x)):
        cut = np.all(out[i] == 0, axis=-1) & np.any(x[i] != 0, axis=-1)
        np.testing.assert_array_equal(out[i][~cut], x[i][~cut])
        rows, cols = np.nonzero(cut)
        assert 0 < len(rows) <= 8 * 8  # side round(16 / 2), clipped at the border
        assert cut[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8


def test_color_is_an_affine_map_of_each_gray_image():
    gray = jax.random.uniform(jax.random.key(3), (5, 8, 8, 1), minval=-1.0, maxval=1.0)
    out = np.asarray(diffaugment.color(gray, jax.random.key(4)), np.float64)
    for i in range(5):
        a, b = np.polyfit(np.asarray(gray[i], np.float64).ravel(), out[i].ravel(), 1)
        np.testing.assert_allclose(out[i].ravel(), a * np.asarray(gray[i]).ravel() + b,
                                   atol=1e-5)
        assert 0.5 <= a <= 1.5  # the contrast factor (saturation does nothing to one channel)


def test_gradients_flow_through_every_operation_to_the_generator(images):
    weights = jax.random.normal(jax.random.key(9), images.shape)
    grad = jax.grad(lambda x: jnp.sum(weights * diffaugment.diff_augment(
        x, jax.random.key(0), "color,translation,cutout")))(images)
    assert np.isfinite(grad).all() and float(jnp.abs(grad).sum()) > 0
    # translation alone: each kept pixel passes its weight through unchanged
    grad = jax.grad(lambda x: jnp.sum(diffaugment.translation(x, jax.random.key(1))))(images)
    assert set(np.unique(np.asarray(grad))) <= {0.0, 1.0}


def test_unknown_operations_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"unknown operation 'flip'; use a comma-separated"):
        diffaugment.parse_policy("color,flip")
    assert diffaugment.parse_policy(" color , cutout ") == ("color", "cutout")


# --- packing and conditioning -----------------------------------------------------------------


def test_packing_concatenates_consecutive_examples_along_the_last_axis():
    x = jnp.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(pack(x, 3), [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    images = jnp.arange(4 * 2 * 2 * 3.0).reshape(4, 2, 2, 3)
    packed = pack(images, 2)
    assert packed.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(packed[1, :, :, 3:], images[3])
    assert pack(x, 1) is x
    with pytest.raises(ValueError, match="divisible by 4"):
        pack(x, 4)


class _CBNNet(nn.Module):
    @nn.compact
    def __call__(self, h, labels, train):
        return conditional.ConditionalBatchNorm(3)(h, labels, train)


def test_conditional_batchnorm_starts_as_batchnorm_and_scales_per_class():
    h = jax.random.normal(jax.random.key(0), (8, 4, 4, 5)) * 3 + 1
    labels = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
    net = _CBNNet()
    variables = net.init(jax.random.key(1), h, labels, False)
    out, _ = net.apply(variables, h, labels, True, mutable=["batch_stats"])
    plain, _ = nn.BatchNorm(use_running_average=False, momentum=0.9).init_with_output(
        jax.random.key(0), h)
    np.testing.assert_allclose(out, plain, atol=1e-5)
    params = jax.tree.map(lambda x: x, variables["params"])
    cbn = params["ConditionalBatchNorm_0"]
    cbn["gamma"]["embedding"] = cbn["gamma"]["embedding"].at[2].set(2.0)
    cbn["beta"]["embedding"] = cbn["beta"]["embedding"].at[2].set(0.5)
    out2, _ = net.apply({**variables, "params": params}, h, labels, True, mutable=["batch_stats"])
    is2 = np.asarray(labels == 2)
    np.testing.assert_allclose(out2[is2], 2.0 * out[is2] + 0.5, atol=1e-5)
    np.testing.assert_allclose(out2[~is2], out[~is2], atol=1e-6)


def test_projection_is_the_inner_product_with_the_class_embedding():
    proj = conditional.Projection(4)
    feats = jax.random.normal(jax.random.key(0), (3, 6))
    labels = jnp.array([3, 0, 3])
    variables = proj.init(jax.random.key(1), feats, labels)
    table = variables["params"]["embed"]["embedding"]
    np.testing.assert_allclose(proj.apply(variables, feats, labels),
                               np.sum(np.asarray(table)[[3, 0, 3]] * np.asarray(feats), 1),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="needs labels"):
        proj.apply(variables, feats, None)
