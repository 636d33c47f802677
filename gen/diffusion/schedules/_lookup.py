"""Schedules by name: ``SCHEDULES`` and ``get_schedule``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gen.diffusion.schedules._common import (
    Schedule,
)
from gen.diffusion.schedules._continuous import cosine, edm, sigmoid
from gen.diffusion.schedules._discrete import ddpm_linear, scaled_linear


def _squaredcos_cap_v2(num_steps: int = 1000, **kwargs: Any) -> Schedule:
    return cosine(num_steps=num_steps, **kwargs)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "ddpm_linear": ddpm_linear,
    "linear": ddpm_linear,  # diffusers' name
    "scaled_linear": scaled_linear,
    "cosine": cosine,
    "squaredcos_cap_v2": _squaredcos_cap_v2,  # diffusers' name: cosine(num_steps=1000)
    "sigmoid": sigmoid,
    "edm": edm,
}


def get_schedule(name: str, **kwargs: Any) -> Schedule:
    """The schedule called ``name`` in ``SCHEDULES``, built with ``kwargs``; diffusers' names are
    accepted too
    (``"linear"``, ``"squaredcos_cap_v2"``, which defaults to ``num_steps=1000``)."""
    try:
        constructor = SCHEDULES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown noise schedule {name!r}; known schedules: {', '.join(sorted(SCHEDULES))}. "
            "(The learned VDM schedule is an (init, apply) pair: use schedules.learned().)"
        ) from None
    return constructor(**kwargs)
