"""The shared core of every sampler: input checks, the x0/eps predictor, noise keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gen.diffusion import schedules as schedules_lib
from gen.diffusion.parameterization import Coefficients, check_parameterization, to_x0_eps
from gen.diffusion.samplers._conditioning import ClassConditional, Denoiser, _bind
from gen.diffusion.samplers._grids import _check_grid, _grid_logsnr
from gen.diffusion.samplers._thresholding import X0Transform
from gen.diffusion.schedules import Schedule

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


class Sampler(Protocol):
    """The common signature of the samplers in this module."""

    def __call__(
        self,
        denoiser: Denoiser | ClassConditional,
        parameterization: str,
        schedule: Schedule,
        x_T: ArrayLike,
        ts: ArrayLike,
        *,
        key: Array | None = None,
        labels: ArrayLike | None = None,
        clip_x0: float | None = None,
        x0_transform: X0Transform | None = None,
    ) -> Array: ...


def _log_alpha_sigma(lam: Array) -> tuple[Array, Array]:
    """``(log alpha, log sigma)`` of the VP path, exact at lambda = +-inf."""
    return 0.5 * jax.nn.log_sigmoid(lam), 0.5 * jax.nn.log_sigmoid(-lam)


def _state(x_T: ArrayLike) -> Array:
    x = jnp.asarray(x_T)
    if x.ndim < 1:
        raise ValueError(f"x_T must have a leading batch axis, got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x_T must be a float array, got dtype {x.dtype}.")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _is_zero(value: Any) -> bool:
    """True only for a concrete zero (a traced value might be anything)."""
    try:
        return float(value) == 0.0
    except (TypeError, jax.errors.ConcretizationTypeError):
        return False


def _step_keys(key: Array | None, num_steps: int, needed: bool, name: str) -> Array | None:
    if not needed:
        return None
    if key is None:
        raise ValueError(f"{name} draws noise: pass key=jax.random.key(...) (or a PRNGKey).")
    return jax.random.split(key, num_steps)


def _noise(key: Array | None, x: Array) -> Array:
    return jax.random.normal(key, x.shape, x.dtype)


def _transform_x0(x0: Array, x0_transform: X0Transform | None, clip_x0: float | None) -> Array:
    """``x0_transform`` (e.g. dynamic thresholding) first, then clipping to ``+-clip_x0``."""
    if x0_transform is not None:
        out = jnp.asarray(x0_transform(x0))
        if out.shape != x0.shape:
            raise ValueError(
                f"x0_transform must keep the shape of x0 {x0.shape}, it returned {out.shape}."
            )
        x0 = out.astype(x0.dtype)
    return x0 if clip_x0 is None else jnp.clip(x0, -clip_x0, clip_x0)


def _check_output(pred: Array, x: Array, learned_variance: bool) -> None:
    doubled = (*x.shape[:-1], 2 * x.shape[-1])
    if learned_variance and pred.shape != doubled:
        raise ValueError(
            f"variance='learned_range' needs a denoiser that returns 2C channels (prediction and "
            f"v), shape {doubled} for an input of shape {x.shape}; got {pred.shape}."
        )
    if not learned_variance and pred.shape == doubled:
        raise ValueError(
            f"the denoiser returned 2C channels {pred.shape} (a learned variance) for an input of "
            f"shape {x.shape}: only ddpm(..., variance='learned_range') uses them; wrap it with "
            "samplers.mean_only(denoiser) for this sampler."
        )
    if not learned_variance and pred.shape != x.shape:
        raise ValueError(
            f"the denoiser returned shape {pred.shape} for an input of shape {x.shape}."
        )


def _predictor(
    fn: Denoiser,
    parameterization: str,
    schedule: Schedule,
    clip_x0: float | None,
    x0_transform: X0Transform | None = None,
    learned_variance: bool = False,
) -> Callable[[Array, Array, Array], tuple[Array, ...]]:
    """``predict(x, t, lam) -> (x0, eps)`` at one grid time (a scalar t with log-SNR lam);
    ``(x0, eps, v)`` with ``learned_variance`` (the denoiser returns 2C channels on the last
    axis, the prediction and v; any other sampler refuses such a denoiser).

    x0 is transformed and clipped when asked; eps is the model's, untouched (diffusers'
    default, ``use_clipped_model_output=False``)."""
    check_parameterization(parameterization)

    def predict(x: Array, t: Array, lam: Array) -> tuple[Array, ...]:
        t_batch = jnp.broadcast_to(t, (x.shape[0],))
        pred = jnp.asarray(fn(x, t_batch))
        _check_output(pred, x, learned_variance)
        pred = pred.astype(x.dtype)
        if learned_variance:
            pred, v = pred[..., : x.shape[-1]], pred[..., x.shape[-1]:]
        alpha, sigma = schedules_lib.alpha_sigma_from_logsnr(lam)
        if parameterization == "velocity":
            _, _, d_alpha, d_sigma = schedules_lib.alpha_sigma_and_derivatives(schedule, t)
        else:
            d_alpha = d_sigma = jnp.zeros_like(alpha)
        c = Coefficients(*(jnp.asarray(v, x.dtype) for v in (alpha, sigma, d_alpha, d_sigma)))
        x0, eps = to_x0_eps(pred, x, c, parameterization)
        x0 = _transform_x0(x0, x0_transform, clip_x0)
        return (x0, eps, v) if learned_variance else (x0, eps)

    return predict


class _Setup(NamedTuple):
    predict: Callable[[Array, Array, Array], tuple[Array, ...]]
    x: Array
    ts: Array
    lam: Array
    num_steps: int


def _setup(
    denoiser: Denoiser | ClassConditional,
    parameterization: str,
    schedule: Schedule,
    x_T: ArrayLike,
    ts: ArrayLike,
    labels: ArrayLike | None,
    clip_x0: float | None,
    x0_transform: X0Transform | None = None,
    learned_variance: bool = False,
) -> _Setup:
    check_parameterization(parameterization)
    if clip_x0 is not None and not clip_x0 > 0:
        raise ValueError(f"clip_x0 must be None or > 0, got {clip_x0}.")
    if x0_transform is not None and not callable(x0_transform):
        raise ValueError(
            f"x0_transform must be a function x0 -> x0 (e.g. samplers.dynamic_threshold()), got "
            f"{x0_transform!r}."
        )
    fn = _bind(denoiser, labels)
    x = _state(x_T)
    ts, num_steps = _check_grid(ts)
    lam = _grid_logsnr(schedule, ts)
    predict = _predictor(fn, parameterization, schedule, clip_x0, x0_transform, learned_variance)
    return _Setup(predict, x, ts, lam, num_steps)

