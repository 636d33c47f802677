"""gen.nn.flops: exact hand counts of single layers, and agreement with XLA's CPU cost analysis.

XLA's ``flops`` include elementwise ops (1 per element), which the counter's exact ``matmul``
field leaves out; its ``total`` adds an approximate elementwise count. Against XLA's analysis of
the lowered (unoptimized) program the total agrees within 0.5%. The compiled program counts
somewhat more (fusion duplicates cheap elementwise producers into each consumer), so there the
check is ``matmul <= XLA`` and ``total`` within 10% (slow tests: compiling a UNet's gradient
takes about 3 s on CPU). Convolutions and matmuls alone agree with the compiled count exactly.
"""

import jax
import jax.numpy as jnp
import pytest

from gen.nn import UNet
from gen.nn.flops import Flops, count_flops, unet_flops

DN = ("NHWC", "HWIO", "NHWC")
B, H, W, CI, CO = 2, 8, 6, 4, 5
TINY = dict(ch=16, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(2,), num_groups=4)
IMAGE = (4, 4, 3)


def _conv(stride: int, padding: str):
    return lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                                     dimension_numbers=DN)


def _xla(fn, *args, compiled: bool = True) -> float:
    lowered = jax.jit(fn).lower(*args)
    return (lowered.compile() if compiled else lowered).cost_analysis()["flops"]


x = jnp.ones((B, H, W, CI))
w = jnp.ones((3, 3, CI, CO))


def test_dense_and_attention_matmuls_match_hand_counts():
    assert count_flops(jnp.matmul, jnp.ones((B, CI)), jnp.ones((CI, CO))) == Flops(2 * B * CI * CO)
    n, heads, d = 16, 2, 4  # Q K^T and A V: 2 N^2 C each, C = heads * d
    q = jnp.ones((B, n, heads, d))
    qk = count_flops(lambda q, k: jnp.einsum("bqhd,bkhd->bhqk", q, k), q, q)
    av = count_flops(lambda a, v: jnp.einsum("bhqk,bkhd->bqhd", a, v),
                     jnp.ones((B, heads, n, n)), q)
    assert qk.matmul == av.matmul == B * 2 * n * n * heads * d


@pytest.mark.parametrize("stride", [1, 2])
def test_valid_conv_matches_the_textbook_count(stride):
    ho, wo = (H - 3) // stride + 1, (W - 3) // stride + 1
    assert count_flops(_conv(stride, "VALID"), x, w).matmul == 2 * B * ho * wo * 9 * CI * CO


def test_same_conv_leaves_out_the_taps_on_padding():
    # Per spatial dimension of size n, a 3-tap "SAME" window has 3n - 2 real taps.
    assert count_flops(_conv(1, "SAME"), x, w).matmul == 2 * B * (3 * H - 2) * (3 * W - 2) * CI * CO
    # Stride 2, n even: TF "SAME" pads (0, 1); n/2 outputs, the last one's third tap is padding.
    taps = (3 * (H // 2) - 1) * (3 * (W // 2) - 1)
    assert count_flops(_conv(2, "SAME"), x, w).matmul == 2 * B * taps * CI * CO


def test_transposed_conv_and_upsampling_count_real_inputs_only():
    k = jnp.ones((2, 2, CI, CO))
    up = count_flops(
        lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "VALID", dimension_numbers=DN), x, k)
    assert up.matmul == 2 * B * H * W * 4 * CI * CO  # every input meets every tap once
    # The UNet's upsampling: nearest neighbour (free), then a 3x3 "SAME" conv at 2H x 2W.
    nearest = count_flops(
        lambda x, w: _conv(1, "SAME")(jnp.repeat(jnp.repeat(x, 2, 1), 2, 2), w), x, w)
    assert nearest.matmul == 2 * B * (6 * H - 2) * (6 * W - 2) * CI * CO


def test_scan_multiplies_by_its_length_and_dead_code_is_not_counted():
    def f(h, m):
        unused = m @ m  # never used: not counted
        del unused
        return jax.lax.scan(lambda c, _: (c @ m, None), h, length=7)[0]

    assert count_flops(f, jnp.ones((3, 4)), jnp.ones((4, 4))).matmul == 7 * 2 * 3 * 4 * 4


def test_cond_counts_its_costlier_branch_and_while_with_matmuls_is_an_error():
    m = jnp.ones((4, 4))
    cond = count_flops(lambda p, m: jax.lax.cond(p, lambda m: m @ m @ m, lambda m: m @ m, m),
                       True, m)
    assert cond.matmul == 2 * 2 * 4**3
    with pytest.raises(ValueError, match="trip count"):
        count_flops(lambda m: jax.lax.while_loop(lambda c: c[0, 0] < 9, lambda c: c @ c, m), m)


@pytest.mark.parametrize("stride,padding", [(1, "SAME"), (2, "SAME"), (2, "VALID")])
def test_convs_and_their_gradients_equal_xla_exactly(stride, padding):
    conv = _conv(stride, padding)
    grad = jax.grad(lambda x, w: conv(x, w).sum(), (0, 1))
    ct = lambda x, w: jax.lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=DN)
    ct_grad = jax.grad(lambda x, w: ct(x, w).sum(), (0, 1))
    for fn, args in ((conv, (x, w)), (grad, (x, w)), (ct, (x, w[..., :CI])),
                     (ct_grad, (x, w[..., :CI]))):
        assert count_flops(fn, *args).matmul == _xla(fn, *args)


def _tiny_unet():
    net = UNet(**TINY)
    x, t = jax.ShapeDtypeStruct((1, *IMAGE), jnp.float32), jax.ShapeDtypeStruct((1,), jnp.float32)
    params = jax.eval_shape(net.init, jax.random.key(0), x, t)

    def loss(params, x, t):
        return jnp.mean((net.apply(params, x, t) - x) ** 2)

    return {"forward": (net.apply, (params, x, t)),
            "train_step": (jax.value_and_grad(loss), (params, x, t))}


@pytest.mark.parametrize("which", ["forward", "train_step"])
def test_tiny_unet_agrees_with_xla_before_optimization(which):
    fn, args = _tiny_unet()[which]
    ours, xla = count_flops(fn, *args), _xla(fn, *args, compiled=False)
    assert ours.matmul < xla and abs(ours.total / xla - 1) < 0.005, (ours, xla)


@pytest.mark.slow  # compiling the UNet's gradient takes ~3 s on CPU
@pytest.mark.parametrize("which", ["forward", "train_step"])
def test_tiny_unet_agrees_with_compiled_xla(which):
    fn, args = _tiny_unet()[which]
    ours, xla = count_flops(fn, *args), _xla(fn, *args)
    assert ours.matmul < xla and abs(ours.total / xla - 1) < 0.1, (ours, xla)


def test_unet_flops_train_step_is_three_forwards_less_the_undifferentiated_inputs():
    f = unet_flops(TINY, IMAGE, batch=2)
    assert f.batch == 2 and f.forward.matmul > 0
    # No gradient flows into the image (conv_in) or into the time embedding (temb_dense0).
    h, w_, c = IMAGE
    conv_in = 2 * 2 * (3 * h - 2) * (3 * w_ - 2) * c * TINY["ch"]
    temb_dense0 = 2 * 2 * TINY["ch"] * 4 * TINY["ch"]
    assert f.train_step.matmul == 3 * f.forward.matmul - conv_in - temb_dense0


def test_unet_flops_rejects_bad_arguments():
    with pytest.raises(ValueError, match="image_shape"):
        unet_flops(TINY, (4, 4))
    with pytest.raises(ValueError, match="batch"):
        unet_flops(TINY, IMAGE, batch=0)
    with pytest.raises(TypeError, match="UNet"):
        unet_flops("cifar10", IMAGE)


def test_unet_flops_takes_a_module_and_is_linear_in_the_batch():
    net = UNet(**TINY)
    one = count_flops(net.apply, *_tiny_unet()["forward"][1])
    x, t = jnp.zeros((3, *IMAGE)), jnp.zeros((3,))
    params = jax.eval_shape(net.init, jax.random.key(0), x, t)
    assert count_flops(net.apply, params, x, t).matmul == 3 * one.matmul
