"""Every public bijector and combinator with non-trivial settings, for parametrized tests.

``CASES[name]()`` returns ``(bijector, example_event)`` or ``(bijector, example_event,
example_context)``. Example events are random but reach every branch: both signs for sign-
dependent maps, values inside the open domain for ``logit`` and inverse ``tanh``. Tests should
``perturb`` the initialized params, so that zero-initialized layers are not the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen.flows import models
from gen.flows.autoregressive import inverse_autoregressive, masked_autoregressive
from gen.flows.bijector import Array, Bijector, Params, block, chain, invert, scan
from gen.flows.coupling import masked_coupling, split_coupling
from gen.flows.dequantization import logit_preprocess
from gen.flows.elementwise import affine, leaky_relu, logit, scale, shift, sigmoid, tanh
from gen.flows.flow import realnvp
from gen.flows.image import (
    actnorm,
    channel_coupling,
    checkerboard_coupling,
    conv1x1,
    multi_scale,
    split_prior,
    squeeze,
)
from gen.flows.image_models import glow, realnvp_image
from gen.flows.linear import lu_linear, permute, reverse
from gen.flows.rational_quadratic import spline, spline_transformer
from gen.flows.transformers import affine_transformer

Case = tuple[Bijector, Array] | tuple[Bijector, Array, Array]

_MASK = np.array([1, 0, 1, 0, 0])
_HIDDEN = (8,)  # one hidden layer: as good a test as two, and cheaper to compile
# Added to signed(...) events of size 5 for splines with bound 2: entries 1 and 3 (signs - and +,
# magnitude >= 2.65) land in the identity tails; seeds 40, 42, 43 keep the rest inside (-2, 2).
_TAILS = np.array([0.0, -2.5, 0.0, 2.5, 0.0])
_SPLINE_BOUND = 2.0
# Image cases: one-block conv ResNet conditioners, 8 wide, 2 GroupNorm groups; events of at most
# 32 scalars, so jacfwd stays cheap.
_IMAGE = dict(hidden_channels=8, num_blocks=1, num_groups=2)


def signed(seed: int, shape: tuple[int, ...], scale: float = 1.5) -> Array:
    """Random values of both signs, magnitude ~ ``scale``: every third entry (from the second)
    is negative. The counts differ, so a log-det that swaps its branches cannot cancel out."""
    magnitude = scale * (0.1 + jnp.abs(jax.random.normal(jax.random.key(seed), shape)))
    signs = jnp.where(jnp.arange(int(np.prod(shape))).reshape(shape) % 3 == 1, -1.0, 1.0)
    return magnitude * signs


def uniform(seed: int, shape: tuple[int, ...], low: float, high: float) -> Array:
    """Random values in ``[low, high]``."""
    return jax.random.uniform(jax.random.key(seed), shape, minval=low, maxval=high)


def perturb(params: Params, seed: int = 0, scale: float = 0.2) -> Params:
    """Adds ``scale`` times standard normal noise to every floating-point leaf of ``params``.

    The noise comes from NumPy on the host: no compile per leaf shape, which keeps tests fast.
    """
    rng = np.random.default_rng(seed)

    def add_noise(leaf: Array) -> Array:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        return leaf + jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree.map(add_noise, params)


CASES: dict[str, Callable[[], Case]] = {
    # Elementwise.
    "shift": lambda: (shift(), signed(0, (5,))),
    "scale": lambda: (scale(), signed(1, (2, 3))),
    "affine": lambda: (affine(), signed(2, (5,))),
    "sigmoid": lambda: (sigmoid(), signed(3, (5,), 2.0)),
    "spline": lambda: (spline(5, _SPLINE_BOUND), signed(42, (5,)) + _TAILS),
    "logit": lambda: (logit(event_shape=(5,)), uniform(4, (5,), 0.02, 0.98)),
    "tanh": lambda: (tanh(event_shape=5), signed(5, (5,))),
    "tanh_inverse": lambda: (invert(tanh()), uniform(6, (5,), -0.95, 0.95)),
    "leaky_relu": lambda: (leaky_relu(0.2, event_shape=(6,)), signed(7, (6,))),
    "leaky_relu_steep": lambda: (leaky_relu(3.0), signed(8, (6,))),
    # Linear.
    "permute": lambda: (permute([2, 0, 4, 1, 3]), signed(9, (5,))),
    "reverse": lambda: (reverse(event_dim=5), signed(10, (5,))),
    "lu_linear": lambda: (lu_linear(5, perm=[3, 0, 4, 1, 2]), signed(11, (5,))),
    # Couplings.
    "masked_coupling_affine": lambda: (
        masked_coupling(_MASK, "affine", hidden=_HIDDEN),
        signed(12, (5,)),
    ),
    "masked_coupling_additive": lambda: (
        masked_coupling(_MASK, "additive", hidden=(6, 6), activation=jax.nn.relu),
        signed(13, (5,)),
    ),
    "masked_coupling_bounded_scale": lambda: (
        masked_coupling(1 - _MASK, affine_transformer(scale_bound=0.5), hidden=(8,)),
        signed(14, (5,)),
    ),
    "masked_coupling_context": lambda: (
        masked_coupling(_MASK, "affine", hidden=_HIDDEN, context_dim=3),
        signed(15, (5,)),
        signed(16, (3,)),
    ),
    "masked_coupling_context_from_init": lambda: (
        masked_coupling(_MASK, "additive", hidden=_HIDDEN),
        signed(17, (5,)),
        signed(18, (2,)),
    ),
    "split_coupling_affine": lambda: (
        split_coupling(2, "affine", hidden=_HIDDEN),
        signed(19, (5,)),
    ),
    "split_coupling_additive": lambda: (
        split_coupling(3, "additive", hidden=(), event_dim=4),
        signed(20, (4,)),
    ),
    "split_coupling_context": lambda: (
        split_coupling(1, "affine", hidden=_HIDDEN, context_dim=2),
        signed(21, (3,)),
        signed(22, (2,)),
    ),
    # Combinators.
    "chain": lambda: (
        chain(
            affine(),
            masked_coupling(_MASK, "affine", hidden=_HIDDEN),
            lu_linear(5),
            reverse(),
            leaky_relu(0.5),
            split_coupling(2, "additive", hidden=(8,)),
            tanh(),
        ),
        signed(23, (5,)),
    ),
    "chain_conditional": lambda: (
        chain(
            masked_coupling(_MASK, "affine", hidden=_HIDDEN, context_dim=2),
            permute([4, 3, 0, 1, 2]),
            split_coupling(2, "affine", hidden=_HIDDEN, context_dim=2),
            shift(),
        ),
        signed(24, (5,)),
        signed(25, (2,)),
    ),
    "invert_coupling": lambda: (
        invert(masked_coupling(_MASK, "affine", hidden=_HIDDEN)),
        signed(26, (5,)),
    ),
    "invert_chain": lambda: (
        invert(chain(lu_linear(4), affine(), sigmoid())),
        uniform(27, (4,), 0.05, 0.95),
    ),
    # A spline on dims 1..3 (two of them in its tails), the rest untouched.
    "block_spline_slice": lambda: (
        block(spline(4, _SPLINE_BOUND), slice(1, 4), (5,)),
        signed(40, (5,)) + _TAILS,
    ),
    # A conditioned coupling on dims (4, 0, 2), in that order: the gather/scatter path.
    "block_coupling_indices_context": lambda: (
        block(
            masked_coupling([1, 0, 1], "affine", hidden=_HIDDEN, context_dim=2), [4, 0, 2], (5,)
        ),
        signed(41, (5,)),
        signed(42, (2,)),
    ),
    # ActNorm on the first two channels of an image event.
    "block_image_channels": lambda: (
        block(actnorm(), slice(0, 2), (2, 2, 3), axis=-1),
        signed(43, (2, 2, 3)),
    ),
    "scan": lambda: (
        scan(chain(affine(), lu_linear(5), leaky_relu(0.5)), 3),
        signed(28, (5,)),
    ),
    "scan_conditional": lambda: (
        scan(chain(masked_coupling(_MASK, "affine", hidden=_HIDDEN, context_dim=2), reverse()), 3),
        signed(29, (5,)),
        signed(30, (2,)),
    ),
    # scan over 3 (coupling, complementary coupling) pairs.
    "realnvp": lambda: (realnvp(4, num_layers=6, hidden=_HIDDEN).bijector, signed(31, (4,))),
    "realnvp_odd_conditional": lambda: (
        realnvp(3, num_layers=3, hidden=_HIDDEN, context_dim=2).bijector,
        signed(32, (3,)),
        signed(33, (2,)),
    ),
    # Masked autoregressive (gen.flows.autoregressive): forward is the sequential D-pass scan.
    "maf_affine": lambda: (masked_autoregressive("affine", hidden=_HIDDEN), signed(34, (5,))),
    # Two hidden layers narrower than D, a permuted order, spline tails in both directions.
    "maf_spline_order_narrow": lambda: (
        masked_autoregressive(
            spline_transformer(4, _SPLINE_BOUND), hidden=(3, 3), order=[2, 0, 4, 1, 3]
        ),
        signed(40, (5,)) + _TAILS,
    ),
    "maf_context": lambda: (
        masked_autoregressive("affine", hidden=_HIDDEN, context_dim=3),
        signed(35, (5,)),
        signed(36, (3,)),
    ),
    "iaf_affine_order": lambda: (
        inverse_autoregressive("affine", hidden=_HIDDEN, order=[4, 1, 3, 0, 2]),
        signed(37, (5,)),
    ),
    "iaf_spline_context": lambda: (
        inverse_autoregressive(spline_transformer(4, _SPLINE_BOUND), hidden=_HIDDEN, context_dim=2),
        signed(42, (5,)) + _TAILS,
        signed(38, (2,)),
    ),
    # Flow models (gen.flows.models): m, (f, m) x L under scan.
    "maf_model": lambda: (models.maf(4, num_layers=3, hidden=_HIDDEN).bijector, signed(39, (4,))),
    # Seeds picked so that the perturbed splines keep the float32 round trip well conditioned
    # (others give bins of the minimum height 2B/1000 and Jacobian singular values ~1e-4).
    "nsf_coupling": lambda: (
        models.nsf_coupling(
            5, num_layers=2, num_bins=4, bound=_SPLINE_BOUND, hidden=_HIDDEN
        ).bijector,
        signed(50, (5,)) + _TAILS,
    ),
    "nsf_autoregressive_conditional": lambda: (
        models.nsf_autoregressive(
            5, num_layers=2, num_bins=4, bound=_SPLINE_BOUND, hidden=_HIDDEN, context_dim=2
        ).bijector,
        signed(43, (5,)) + _TAILS,
        signed(44, (2,)),
    ),
    # Image bijectors (gen.flows.image, image_models, dequantization) on (H, W, C) events.
    "actnorm": lambda: (actnorm(), signed(60, (4, 4, 2))),
    "conv1x1": lambda: (conv1x1(), signed(61, (2, 4, 3))),
    "conv1x1_perm": lambda: (conv1x1([2, 0, 3, 1]), signed(62, (2, 2, 4))),
    # squeeze changes the shape: exercised in both directions between shape-preserving ends.
    "squeeze_conv1x1_unsqueeze": lambda: (
        chain(squeeze(), conv1x1(), invert(squeeze())),
        signed(63, (4, 4, 2)),
    ),
    "unsqueeze_actnorm_squeeze": lambda: (
        chain(invert(squeeze()), actnorm(), squeeze()),
        signed(64, (2, 2, 8)),
    ),
    "checkerboard_coupling_affine": lambda: (
        checkerboard_coupling(0, "affine", **_IMAGE),
        signed(65, (4, 4, 2)),
    ),
    "checkerboard_coupling_glow_context": lambda: (
        checkerboard_coupling(1, "glow", context_dim=3, **_IMAGE),
        signed(66, (4, 4, 2)),
        signed(67, (3,)),
    ),
    "channel_coupling_additive": lambda: (
        channel_coupling(0, "additive", **_IMAGE),
        signed(68, (4, 4, 2)),
    ),
    "channel_coupling_glow": lambda: (channel_coupling(1, "glow", **_IMAGE), signed(69, (2, 2, 4))),
    "channel_coupling_affine_context_from_init": lambda: (
        channel_coupling(0, "affine", **_IMAGE),
        signed(70, (2, 4, 4)),
        signed(71, (2,)),
    ),
    "split_prior_context": lambda: (
        split_prior(context_dim=2),
        signed(72, (2, 2, 4)),
        signed(73, (2,)),
    ),
    # One factor-out: squeeze, step, split; the kept half: squeeze, step, unsqueeze.
    "multi_scale_factor_out": lambda: (
        multi_scale((4, 4, 2), 2, lambda s: chain(channel_coupling(0, **_IMAGE), conv1x1())),
        signed(74, (4, 4, 2)),
    ),
    "logit_preprocess": lambda: (
        logit_preprocess(0.05, event_shape=(2, 2, 2)),
        uniform(75, (2, 2, 2), 0.02, 0.98),
    ),
    # Whole models: Glow with learned priors and logit preprocessing (data in (0, 1)), and a
    # class-conditional-style multi-scale RealNVP with learned priors.
    "glow": lambda: (
        glow((4, 4, 2), num_scales=2, num_steps=2, **_IMAGE).bijector,
        uniform(76, (4, 4, 2), 0.05, 0.95),
    ),
    "realnvp_image_context": lambda: (
        realnvp_image(
            (4, 4, 2), num_scales=2, num_steps=1, context_dim=2, learned_prior=True, logit=None,
            **_IMAGE,
        ).bijector,
        signed(77, (4, 4, 2)),
        signed(78, (2,)),
    ),
}
"""Name -> builder of ``(bijector, example_event[, example_context])``."""

# Cases whose bijector accepts events of any shape (elementwise, no event_shape given).
SHAPE_AGNOSTIC: frozenset[str] = frozenset({"sigmoid", "tanh_inverse", "leaky_relu_steep"})
