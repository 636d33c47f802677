"""Flow matching (Lipman et al. 2023) and rectified flow (Liu et al. 2023).

**Convention: t = 0 is data and t = 1 is noise**, as everywhere in ``gen.diffusion``:
``x_t = alpha_t x0 + sigma_t eps`` with ``eps ~ N(0, I)``. (Lipman et al. and the
facebookresearch ``flow_matching`` library run time the other way; their ``t`` is our ``1 - t``.)

- **Path.** The conditional-OT path with ``sigma_min`` (:func:`condot_coefficients`):
  ``alpha = 1 - t``, ``sigma = sigma_min + (1 - sigma_min) t``. It is Lipman et al.'s
  ``psi_s(x) = (1 - (1 - sigma_min) s) x_noise + s x_data`` with ``s = 1 - t``: pure noise at
  t = 1 and data smoothed by ``N(0, sigma_min^2 I)`` at t = 0. ``sigma_min = 0`` is rectified
  flow, ``parameterization.rectified_flow_coefficients``. Times outside [0, 1] are not clipped:
  the formulas are applied as they stand (linear extrapolation).
- **Loss.** The network ``apply(params, x_t, t, labels=None)`` predicts the velocity ``dx_t/dt``
  and regresses the conditional velocity ``alpha' x0 + sigma' eps = (1 - sigma_min) eps - x0``
  (:func:`make_loss`). Its minimizer is the marginal velocity ``E[alpha' x0 + sigma' eps | x_t]``,
  whose flow carries ``p_t`` along: backwards from N(0, I) at t = 1 to the data at t = 0.
  Times are uniform or logit-normal (SD3); the coupling of data and noise is independent or a
  minibatch entropic OT plan (Sinkhorn; an exact assignment would need the Hungarian algorithm).
- **Sampling** (:func:`sample`): Euler, Heun or adaptive dopri5 from noise at t = 1 to t = 0,
  through a velocity wrapper (:func:`velocity_field`) that handles class labels and
  classifier-free guidance.
- **Likelihood** (:func:`log_likelihood`): exact (or Hutchinson) ``log p_0(x)`` through the ODE,
  with the standard normal base at t = 1.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from gen.diffusion import flow_matching as fm
    >>> apply = lambda params, x, t, labels=None: params * x     # a toy "network"
    >>> loss_fn = fm.make_loss(apply)
    >>> loss_fn(1.0, jnp.ones((8, 2)), jax.random.key(0)).shape
    (8,)
    >>> v = fm.velocity_field(apply, -1.0)
    >>> fm.sample(v, jax.random.normal(jax.random.key(1), (4, 2)), method="heun").shape
    (4, 2)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gen.diffusion import ode
from gen.diffusion.parameterization import Coefficients, check_parameterization
from gen.diffusion.schedules import _check_steps

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Params = Any
Apply = Callable[..., Array]  # apply(params, x_t, t, labels=None) -> prediction
VelocityFn = Callable[[Array, Array], Array]  # u(t, x): scalar t, batch x

TIME_DISTRIBUTIONS = ("uniform", "logit_normal")
COUPLINGS = ("independent", "ot")

__all__ = [
    "conditional_path",
    "condot_coefficients",
    "log_likelihood",
    "make_loss",
    "ot_coupling",
    "sample",
    "sample_time",
    "velocity_field",
]


def _float(t: ArrayLike) -> Array:
    """Floating ``t``: float64 stays float64, everything else becomes float32."""
    t = jnp.asarray(t)
    if jnp.issubdtype(t.dtype, jnp.floating) and jnp.finfo(t.dtype).bits >= 32:
        return t
    return t.astype(jnp.float32)


def _check_sigma_min(sigma_min: float) -> float:
    if not 0.0 <= sigma_min < 1.0:
        raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min}.")
    return sigma_min


# ----------------------------------------------------------------------------------------------
# The path
# ----------------------------------------------------------------------------------------------


def condot_coefficients(t: ArrayLike, sigma_min: float = 0.0) -> Coefficients:
    """The conditional-OT path at ``t``: ``alpha = 1 - t``, ``sigma = sigma_min + (1 - sigma_min)
    t``, ``alpha' = -1``, ``sigma' = 1 - sigma_min``. Keeps float64 t in float64."""
    _check_sigma_min(sigma_min)
    t = _float(t)
    one = jnp.ones_like(t)
    return Coefficients(1.0 - t, sigma_min + (1.0 - sigma_min) * t, -one, (1.0 - sigma_min) * one)


def _batch_coefficients(t: Array, ndim: int, sigma_min: float) -> Coefficients:
    """Coefficients of a (B,) time, shaped (B, 1, ..., 1) to broadcast against (B, ...) data."""
    c = condot_coefficients(t, sigma_min)
    return Coefficients(*(v.reshape(v.shape + (1,) * (ndim - 1)) for v in c))


def conditional_path(
    x0: Array, eps: Array, t: Array, sigma_min: float = 0.0
) -> tuple[Array, Array]:
    """``(x_t, u_t)`` for a batch: ``x_t = alpha x0 + sigma eps`` and the conditional velocity
    ``u_t = alpha' x0 + sigma' eps``, with ``t`` of shape (B,)."""
    c = _batch_coefficients(t, x0.ndim, sigma_min)
    return c.alpha * x0 + c.sigma * eps, c.d_alpha * x0 + c.d_sigma * eps


def sample_time(
    key: Array,
    shape: tuple[int, ...],
    distribution: str = "uniform",
    *,
    loc: float = 0.0,
    scale: float = 1.0,
    dtype: Any = jnp.float32,
) -> Array:
    """Training times: ``"uniform"`` on [0, 1), or ``"logit_normal"``: ``sigmoid(loc + scale n)``,
    ``n ~ N(0, 1)`` (SD3, Esser et al. 2024, whose t also runs from data to noise; ``loc > 0``
    favours the noisier half)."""
    if distribution == "uniform":
        return jax.random.uniform(key, shape, dtype)
    if distribution == "logit_normal":
        return jax.nn.sigmoid(loc + scale * jax.random.normal(key, shape, dtype))
    raise ValueError(
        f"unknown time distribution {distribution!r}; choose one of "
        f"{', '.join(TIME_DISTRIBUTIONS)}."
    )


# ----------------------------------------------------------------------------------------------
# Minibatch OT coupling
# ----------------------------------------------------------------------------------------------


def ot_coupling(
    key: Array, x0: Array, eps: Array, *, reg: float = 0.05, num_iters: int = 100
) -> Array:
    """``eps`` re-paired with ``x0`` by a minibatch entropic OT plan (Tong et al. 2023; Pooladian
    et al. 2023).

    The plan ``P`` between the two empirical measures (uniform weights, squared Euclidean cost
    divided by its mean, entropic regularization ``reg``) comes from ``num_iters`` log-domain
    Sinkhorn iterations; data point i is then paired with noise ``j ~ P[i, :] / sum_j P[i, j]``
    (with replacement). As ``reg -> 0`` this approaches the exact assignment. Returns the noise
    for each data point, shape ``eps.shape``.
    """
    _check_steps(num_iters, "num_iters")
    if not reg > 0:
        raise ValueError(f"ot_coupling: reg must be > 0, got {reg}.")
    n = x0.shape[0]
    a, b = x0.reshape(n, -1), eps.reshape(n, -1).astype(x0.dtype)
    cost = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    cost = jnp.maximum(cost, 0.0)
    cost = jax.lax.stop_gradient(cost / jnp.maximum(jnp.mean(cost), jnp.finfo(cost.dtype).tiny))
    log_k = -cost / reg
    log_w = -math.log(n)

    def iteration(_: int, fg: tuple[Array, Array]) -> tuple[Array, Array]:
        f, g = fg
        f = log_w - jax.nn.logsumexp(log_k + g[None, :], axis=1)
        g = log_w - jax.nn.logsumexp(log_k + f[:, None], axis=0)
        return f, g

    zeros = jnp.zeros((n,), log_k.dtype)
    f, g = jax.lax.fori_loop(0, num_iters, iteration, (zeros, zeros))
    log_plan = f[:, None] + log_k + g[None, :]
    j = jax.random.categorical(key, log_plan, axis=1)
    return eps[j]


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------


def _call(apply: Apply, params: Params, x: Array, t: Array, labels: Array | None) -> Array:
    return apply(params, x, t) if labels is None else apply(params, x, t, labels)


def make_loss(
    apply: Apply,
    *,
    sigma_min: float = 0.0,
    time_distribution: str = "uniform",
    logit_loc: float = 0.0,
    logit_scale: float = 1.0,
    coupling: str = "independent",
    ot_reg: float = 0.05,
    ot_iters: int = 100,
    label_dropout: float = 0.0,
    null_label: int | None = None,
) -> Callable[..., Array]:
    """The conditional flow-matching loss, ``loss(params, x0, key, labels=None) -> (B,)``.

    Per example, with ``eps ~ N(0, I)`` and ``t`` from ``time_distribution`` (in float32, or
    float64 for float64 data; low-precision data is promoted)::

        x_t = alpha_t x0 + sigma_t eps,   u = alpha' x0 + sigma' eps = (1 - sigma_min) eps - x0,
        loss = mean over the event of (apply(params, x_t, t, labels) - u)^2.

    Its expectation is minimized by the marginal velocity ``E[u | x_t]``, and exceeds the
    minimum by exactly ``E|v(x_t, t) - E[u | x_t]|^2`` (mean over the event) for any other field
    ``v``. Reduce with a mean over the batch.

    Args:
      apply: the network, ``apply(params, x_t, t, labels=None)`` with ``t`` of shape (B,) in
        [0, 1] (wrap it to rescale t if its time embedding expects another range); ``labels``
        is passed only when given.
      sigma_min: the CondOT path's noise floor (0: rectified flow).
      time_distribution: ``"uniform"`` or ``"logit_normal"`` with ``logit_loc``, ``logit_scale``.
      coupling: ``"independent"``, or ``"ot"`` for :func:`ot_coupling` with ``ot_reg``,
        ``ot_iters`` (labels, if any, stay with their data points).
      label_dropout: the probability of replacing a label by ``null_label``, to train a model
        for classifier-free guidance.
      null_label: the label index of "no class" (e.g. the UNet's ``num_classes``).
    """
    _check_sigma_min(sigma_min)
    if time_distribution not in TIME_DISTRIBUTIONS:
        sample_time(jax.random.key(0), (), time_distribution)  # raises the ValueError
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; choose one of {', '.join(COUPLINGS)}.")
    if not 0.0 <= label_dropout <= 1.0:
        raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}.")
    if label_dropout > 0 and null_label is None:
        raise ValueError("label_dropout needs null_label, the index of the unconditional label.")

    def loss(params: Params, x0: Array, key: Array, labels: Array | None = None) -> Array:
        x0 = jnp.asarray(x0)
        if x0.ndim < 1 or not jnp.issubdtype(x0.dtype, jnp.floating):
            raise ValueError(
                f"flow matching: x0 must be a floating batch, got {x0.dtype}{x0.shape}."
            )
        x0 = x0.astype(jnp.promote_types(x0.dtype, jnp.float32))  # the loss stays >= float32
        k_eps, k_t, k_ot, k_drop = jax.random.split(key, 4)
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        if coupling == "ot":
            eps = ot_coupling(k_ot, x0, eps, reg=ot_reg, num_iters=ot_iters)
        t = sample_time(
            k_t, x0.shape[:1], time_distribution, loc=logit_loc, scale=logit_scale, dtype=x0.dtype
        )
        x_t, target = conditional_path(x0, eps, t, sigma_min)
        if labels is not None and label_dropout > 0:
            drop = jax.random.bernoulli(k_drop, label_dropout, labels.shape)
            labels = jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)
        pred = _call(apply, params, x_t, t, labels)
        err = jnp.square(pred.astype(target.dtype) - target)
        return jnp.mean(err.reshape(err.shape[0], -1), axis=1)

    return loss


# ----------------------------------------------------------------------------------------------
# The velocity field, sampling and likelihood
# ----------------------------------------------------------------------------------------------


def _guided_prediction(
    apply: Apply,
    params: Params,
    x: Array,
    t: Array,
    labels: Array | None,
    guidance_scale: float | None,
    null_label: int | None,
) -> Array:
    """``apply`` at a batch, with classifier-free guidance ``p_u + w (p_c - p_u)`` when asked."""
    if labels is not None:
        labels = jnp.broadcast_to(jnp.asarray(labels), x.shape[:1])
    if guidance_scale is None:
        return _call(apply, params, x, t, labels)
    both = _call(
        apply, params, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
        jnp.concatenate([labels, jnp.full_like(labels, null_label)]),
    )
    cond, uncond = jnp.split(both, 2)
    return uncond + guidance_scale * (cond - uncond)


def velocity_field(
    apply: Apply,
    params: Params,
    *,
    labels: Array | None = None,
    guidance_scale: float | None = None,
    null_label: int | None = None,
    parameterization: str = "velocity",
    sigma_min: float = 0.0,
) -> VelocityFn:
    """The ODE drift ``u(t, x)`` (scalar t, batch x) of a trained flow-matching network.

    - ``labels`` (B,) or a scalar: class-conditional sampling.
    - ``guidance_scale=w``: classifier-free guidance, ``u = u(x | null) + w (u(x | y) -
      u(x | null))``; ``w = 1`` is plain conditional, ``w = 0`` unconditional, ``w > 1``
      sharpens. Needs ``labels`` and ``null_label``. The conditional and unconditional passes
      share one network call on a doubled batch. (Guidance is affine in the prediction, so it
      is the same in every parameterization.)
    - ``parameterization``: what the network predicts; anything but ``"velocity"`` is converted
      through the CondOT path with ``sigma_min`` (x0, eps and score fail where sigma or alpha
      is 0, e.g. at t = 0 with ``sigma_min = 0``).
    """
    check_parameterization(parameterization)
    _check_sigma_min(sigma_min)
    if guidance_scale is not None:
        if labels is None:
            raise ValueError(
                "classifier-free guidance needs class labels: pass labels= (and a "
                "class-conditional model trained with label dropout)."
            )
        if null_label is None:
            raise ValueError(
                "classifier-free guidance needs null_label, the label index of the unconditional "
                "model (e.g. UNet.null_label)."
            )
    denoiser = lambda x, t: _guided_prediction(
        apply, params, x, t, labels, guidance_scale, null_label
    )
    return ode.probability_flow(
        denoiser, functools.partial(condot_coefficients, sigma_min=sigma_min), parameterization
    )


def sample(
    velocity_fn: VelocityFn,
    noise: Array,
    *,
    method: str = "heun",
    num_steps: int = 50,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
    t_start: float = 1.0,
    t_end: float = 0.0,
) -> Array:
    """Data from ``noise`` by integrating ``dx/dt = u(t, x)`` from ``t_start`` (noise) back to
    ``t_end`` (data).

    ``"euler"`` and ``"heun"`` take ``num_steps`` uniform steps (``num_steps`` and ``2 num_steps``
    evaluations) in one ``lax.scan``; ``"dopri5"`` adapts its steps to ``rtol``/``atol`` in one
    ``lax.while_loop``, with one step size for the whole batch. Build ``velocity_fn`` with
    :func:`velocity_field`.
    """
    return ode.solve(
        velocity_fn, jnp.asarray(noise), t_start, t_end, method=method, num_steps=num_steps,
        rtol=rtol, atol=atol, max_steps=max_steps,
    )


def log_likelihood(
    apply: Apply,
    params: Params,
    x: Array,
    *,
    labels: Array | None = None,
    parameterization: str = "velocity",
    sigma_min: float = 0.0,
    **kwargs: Any,
) -> ode.LogLikelihood:
    """``log p_0(x)`` of a batch under the model's ODE with the standard normal base at t = 1.

    ``log p_0(x) = log N(x_1; 0, I) + int_0^1 div u(x_t, t) dt`` (see :func:`ode.log_likelihood`,
    which takes the remaining keyword arguments: ``method="exact" | "hutchinson"``, ``key``,
    ``probe``, ``num_probes``, ``solver``, ``rtol``, ``atol``, ...). ``labels`` (B,) gives
    class-conditional likelihoods ``log p_0(x | y)``. With ``sigma_min > 0`` the density is that
    of the data smoothed by ``N(0, sigma_min^2 I)``. The result's ``log_prob`` is in nats per
    example; for bits/dim divide its negative by ``log(2) * dim``.
    """
    x = jnp.asarray(x)
    if labels is None:
        velocity = velocity_field(
            apply, params, parameterization=parameterization, sigma_min=sigma_min
        )
        return ode.log_likelihood(velocity, x, **kwargs)

    # One solve per example, each with its own label: vmap over (x, labels) together.
    labels = jnp.asarray(labels)
    key = kwargs.pop("key", None)
    keys = None if key is None else jax.random.split(key, x.shape[0])

    def one(xi: Array, yi: Array, key: Array | None) -> ode.LogLikelihood:
        velocity = velocity_field(
            apply, params, labels=yi[None], parameterization=parameterization, sigma_min=sigma_min
        )
        return ode.log_likelihood(velocity, xi[None], **{**kwargs, "key": key})

    out = jax.vmap(one, in_axes=(0, 0, None if keys is None else 0))(x, labels, keys)
    return jax.tree.map(lambda v: v[:, 0], out)
