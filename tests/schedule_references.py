"""Independent references and the schedules shared by the schedule tests (test_schedules_*.py).

The references are recomputed here, independently of the library (they share no code with
``gen.diffusion.schedules``), from the published formulas: diffusers' scheduling_ddpm.py and Lin
et al. 2023, Algorithm 1. ``SCHEDULES`` lists every constructor and combinator;
``built_schedules()`` builds them once per process, for the test files that check them all (one
``xdist_group``, so one worker under xdist).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen.diffusion import schedules as S

# ----------------------------------------------------------------------------------------------
# Independent references, written from diffusers' source
# ----------------------------------------------------------------------------------------------


def ref_linear_betas(beta_start, beta_end, num):
    # torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    return np.linspace(beta_start, beta_end, num, dtype=np.float64)


def ref_alphas_cumprod(betas, like_diffusers=True):
    """``cumprod(1 - betas)``; ``like_diffusers``: betas and ``1 - betas`` in float32 (diffusers
    builds them as float32 tensors), the product in float64."""
    betas = np.asarray(betas, np.float64)
    if like_diffusers:
        alphas = (np.float32(1.0) - betas.astype(np.float32)).astype(np.float64)
    else:
        alphas = 1.0 - betas
    return np.cumprod(alphas)


def ref_zero_terminal_snr(alphas_cumprod):
    """Lin et al. 2023, Algorithm 1, on alpha_bar (float64)."""
    root = np.sqrt(np.asarray(alphas_cumprod, np.float64))
    root_0, root_last = root[0], root[-1]
    root = (root - root_last) * root_0 / (root_0 - root_last)
    return root**2


def logit(p):
    p = np.asarray(p, np.float64)
    return np.log(p) - np.log1p(-p)


def ev(schedule, t):
    """The schedule at float32 t, as float64 numpy (jit: one compile beats op-by-op dispatch)."""
    return np.asarray(jax.jit(schedule)(jnp.asarray(t, jnp.float32)), np.float64)


def random_learned_params(key, num_features):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {
        "w1": 5.0 * jax.random.normal(k1, ()),
        "w2": 3.0 * jax.random.normal(k2, (num_features,)),
        "b2": jax.random.normal(k3, (num_features,)),
        "w3": 3.0 * jax.random.normal(k4, (num_features,)),
    }


# ----------------------------------------------------------------------------------------------
# Every schedule
# ----------------------------------------------------------------------------------------------


LEARNED = S.learned(num_features=128)


def zero_snr_betas():
    """Betas of Algorithm 1 applied to diffusers' linear schedule (last beta = 1)."""
    abar = ref_zero_terminal_snr(ref_alphas_cumprod(ref_linear_betas(1e-4, 0.02, 1000)))
    alphas = np.concatenate([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas


# Every constructor and combinator; all strictly decreasing.
SCHEDULES = {
    "ddpm_linear": lambda: S.ddpm_linear(),
    "ddpm_linear_T10": lambda: S.ddpm_linear(num_steps=10),
    "ddpm_linear_T1": lambda: S.ddpm_linear(num_steps=1),
    "scaled_linear": lambda: S.scaled_linear(),
    "cosine": lambda: S.cosine(),
    "cosine_simple_diffusion": lambda: S.cosine(s=0.0, logsnr_min=-15.0, logsnr_max=15.0),
    "cosine_T1000": lambda: S.cosine(num_steps=1000),
    "cosine_T3": lambda: S.cosine(num_steps=3),
    "sigmoid": lambda: S.sigmoid(),
    "sigmoid_chen": lambda: S.sigmoid(start=0.0, end=3.0, tau=0.7),
    "edm": lambda: S.edm(),
    "learned_init": lambda: functools.partial(LEARNED.apply, LEARNED.init(jax.random.key(0))),
    "learned_random": lambda: functools.partial(
        LEARNED.apply, random_learned_params(jax.random.key(1), 128)
    ),
    "from_betas": lambda: S.from_betas(np.linspace(0.001, 0.2, 50)),
    "from_betas_zero_snr": lambda: S.from_betas(zero_snr_betas()),
    "shift": lambda: S.shift(S.cosine(), 4.0),
    "interpolate": lambda: S.interpolate(S.ddpm_linear(), S.edm(), 0.3),
    "interpolate_simple_diffusion": lambda: S.interpolate(
        S.cosine(s=0.0), S.shift(S.cosine(s=0.0), 8.0), lambda t: t
    ),
    "zero_snr_T1000": lambda: S.rescale_zero_terminal_snr(S.ddpm_linear(), num_steps=1000),
    "zero_snr_continuous": lambda: S.rescale_zero_terminal_snr(S.cosine()),
    "zero_snr_learned": lambda: S.rescale_zero_terminal_snr(
        functools.partial(LEARNED.apply, random_learned_params(jax.random.key(2), 128))
    ),
}
ZERO_TERMINAL = {"from_betas_zero_snr", "zero_snr_T1000", "zero_snr_continuous", "zero_snr_learned"}


@functools.cache
def built_schedules():
    """Every schedule of SCHEDULES, built once per process (about 0.7 s on CPU), not once per test
    file. The schedules are pure functions; no test modifies the dict."""
    return {name: make() for name, make in SCHEDULES.items()}
