"""Tests for gen.diffusion.schedules.

Reference values are recomputed here, independently of the library, from the published formulas
(diffusers' scheduling_ddpm.py, iDDPM, Chen 2023, Karras et al. 2022, Lin et al. 2023 Algorithm 1).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.diffusion import schedules as S

# One worker runs this module, so its module-scoped fixture is built once under xdist.
pytestmark = pytest.mark.xdist_group("schedules")

# ----------------------------------------------------------------------------------------------
# Independent references, written from diffusers' source
# ----------------------------------------------------------------------------------------------


def ref_linear_betas(beta_start, beta_end, num):
    # torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    return np.linspace(beta_start, beta_end, num, dtype=np.float64)


def ref_scaled_linear_betas(beta_start, beta_end, num):
    # torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2
    return np.linspace(beta_start**0.5, beta_end**0.5, num, dtype=np.float64) ** 2


def ref_squaredcos_cap_v2_betas(num, max_beta=0.999):
    # betas_for_alpha_bar(T): min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta),
    # with t1 = i / T and t2 = (i + 1) / T
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / num) / alpha_bar(i / num), max_beta) for i in range(num)]
    )


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


_LEARNED = S.learned(num_features=128)
_DIFFUSERS_ZERO_SNR_BETAS = None  # filled lazily by zero_snr_betas()


def zero_snr_betas():
    """Betas of Algorithm 1 applied to diffusers' linear schedule (last beta = 1)."""
    abar = ref_zero_terminal_snr(ref_alphas_cumprod(ref_linear_betas(1e-4, 0.02, 1000)))
    alphas = np.concatenate([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas


def rf_logsnr(t):
    """Rectified flow: alpha = 1 - t, sigma = t (not a VP schedule, only its log-SNR matters)."""
    return 2.0 * (jnp.log1p(-t) - jnp.log(t))


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
    "learned_init": lambda: functools.partial(_LEARNED.apply, _LEARNED.init(jax.random.key(0))),
    "learned_random": lambda: functools.partial(
        _LEARNED.apply, random_learned_params(jax.random.key(1), 128)
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
        functools.partial(_LEARNED.apply, random_learned_params(jax.random.key(2), 128))
    ),
}
ZERO_TERMINAL = {"from_betas_zero_snr", "zero_snr_T1000", "zero_snr_continuous", "zero_snr_learned"}


@pytest.fixture(scope="module")
def built():
    return {name: make() for name, make in SCHEDULES.items()}


# ----------------------------------------------------------------------------------------------
# diffusers' alphas_cumprod
# ----------------------------------------------------------------------------------------------

DISCRETE_CASES = [
    ("linear", S.ddpm_linear, ref_linear_betas, (1e-4, 0.02)),
    ("scaled_linear", S.scaled_linear, ref_scaled_linear_betas, (0.00085, 0.012)),
    ("squaredcos_cap_v2", None, None, None),
]


def _ours_and_ref_betas(name, num):
    if name == "squaredcos_cap_v2":
        return S.cosine(num_steps=num), ref_squaredcos_cap_v2_betas(num)
    _, make, ref_betas, (b0, b1) = next(c for c in DISCRETE_CASES if c[0] == name)
    return make(b0, b1, num), ref_betas(b0, b1, num)


@pytest.mark.parametrize("num", [1000, 7])
@pytest.mark.parametrize("name", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_alphas_cumprod_matches_diffusers_formulas(name, num):
    schedule, betas = _ours_and_ref_betas(name, num)
    ours = S.discrete_alphas_cumprod(schedule, num)
    assert ours.shape == (num,) and ours.dtype == np.float32
    # diffusers' dtypes (float32 betas and 1 - betas): equal to float32 rounding.
    np.testing.assert_allclose(ours, ref_alphas_cumprod(betas), rtol=1e-6, atol=0)
    # All in float64: diffusers' float32 betas move alpha_bar by up to ~1.3e-5 (cosine).
    np.testing.assert_allclose(ours, ref_alphas_cumprod(betas, False), rtol=3e-5, atol=0)


@pytest.mark.parametrize("num", [1000, 7, 1])
@pytest.mark.parametrize("name", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_discrete_alphas_cumprod_matches_real_diffusers(name, num):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    schedule, _ = _ours_and_ref_betas(name, num)
    kwargs = {"beta_start": 0.00085, "beta_end": 0.012} if name == "scaled_linear" else {}
    ref = diffusers.DDPMScheduler(num_train_timesteps=num, beta_schedule=name, **kwargs)
    np.testing.assert_allclose(
        S.discrete_alphas_cumprod(schedule, num), ref.alphas_cumprod.numpy(), rtol=1e-6, atol=0
    )


def test_zero_terminal_snr_matches_real_diffusers():
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(rescale_betas_zero_snr=True)
    ours = S.discrete_alphas_cumprod(
        S.rescale_zero_terminal_snr(S.ddpm_linear(), num_steps=1000), 1000
    )
    expected = ref.alphas_cumprod.numpy()
    assert ours[-1] == 0.0 and expected[-1] == 0.0
    # diffusers runs Algorithm 1 in float32 (sqrt, shift, scale); we run it in float64.
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=0)
    # Its rescaled betas through from_betas give its alphas_cumprod exactly.
    from_betas = S.discrete_alphas_cumprod(S.from_betas(ref.betas.numpy()), 1000)
    np.testing.assert_allclose(from_betas, expected, rtol=1e-6, atol=0)


def test_from_betas_roundtrip_and_grid_values():
    betas = np.linspace(0.001, 0.2, 50)
    schedule = S.from_betas(betas)
    abar = ref_alphas_cumprod(betas)
    np.testing.assert_allclose(S.discrete_alphas_cumprod(schedule, 50), abar, rtol=1e-6)
    # float32 evaluation at t_i = (i + 1) / T is the same log-SNR grid.
    t = (np.arange(50) + 1.0) / 50
    np.testing.assert_allclose(ev(schedule, t), logit(abar), rtol=1e-5, atol=1e-5)
    # Piecewise linear in between; the first segment continues linearly to t = 0.
    mid = (t[:-1] + t[1:]) / 2
    np.testing.assert_allclose(
        ev(schedule, mid), (logit(abar[:-1]) + logit(abar[1:])) / 2, rtol=1e-5, atol=1e-5
    )
    lam = logit(abar)
    np.testing.assert_allclose(ev(schedule, 0.0), 2 * lam[0] - lam[1], rtol=1e-5)


def test_single_step_schedule():
    schedule = S.ddpm_linear(num_steps=1)
    lam0 = logit(np.float32(1.0) - np.float32(1e-4))  # diffusers' float32 1 - beta
    expected = [lam0 + math.log(2), lam0 + math.log(2) / 2, lam0]
    np.testing.assert_allclose(ev(schedule, [0.0, 0.5, 1.0]), expected, rtol=1e-6)


def test_discrete_cosine_follows_the_continuous_one_on_the_grid():
    """Checks the t_i = (i + 1) / T convention: diffusers' squaredcos_cap_v2 discretizes
    alpha_bar(t) = f(t) / f(0) at exactly these times (away from the 0.999 cap)."""
    num = 1000
    t = (np.arange(num) + 1.0) / num
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    ours = S.discrete_alphas_cumprod(S.cosine(num_steps=num), num)
    np.testing.assert_allclose(ours[:-1], f[:-1], rtol=3e-5)
    np.testing.assert_allclose(ours[-1], f[-2] * (1 - 0.999), rtol=3e-5)  # the cap
    # The continuous schedule (truncated only below 1e-12 in t) agrees at the same t.
    continuous = S.discrete_alphas_cumprod(S.cosine(logsnr_min=-60.0, logsnr_max=60.0), num)
    np.testing.assert_allclose(ours[:-1], continuous[:-1], rtol=3e-5)


# ----------------------------------------------------------------------------------------------
# Continuous constructors against their published formulas (float64)
# ----------------------------------------------------------------------------------------------


def test_cosine_continuous_matches_iddpm():
    t = np.linspace(0.01, 0.99, 99)
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    schedule = S.cosine(logsnr_min=-60.0, logsnr_max=60.0)  # truncation below 1e-12 in t
    with jax.enable_x64(True):
        lam = np.asarray(schedule(jnp.asarray(t)))
    np.testing.assert_allclose(lam, logit(f), rtol=1e-8, atol=1e-8)


def test_cosine_s0_is_simple_diffusion():
    lmin, lmax = -15.0, 15.0
    t = np.linspace(0.0, 1.0, 101)
    t_min, t_max = np.arctan(np.exp(-0.5 * lmax)), np.arctan(np.exp(-0.5 * lmin))
    expected = -2 * np.log(np.tan(t_min + t * (t_max - t_min)))
    ours = ev(S.cosine(s=0.0, logsnr_min=lmin, logsnr_max=lmax), t)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=2e-5)


def test_sigmoid_matches_chen_2023():
    start, end, tau = -3.0, 3.0, 1.1
    t = np.linspace(0.01, 0.99, 99)
    sig = lambda x: 1 / (1 + np.exp(-x))
    v_start, v_end = sig(start / tau), sig(end / tau)
    abar = (v_end - sig((t * (end - start) + start) / tau)) / (v_end - v_start)
    schedule = S.sigmoid(start, end, tau, logsnr_min=-60.0, logsnr_max=60.0)
    with jax.enable_x64(True):
        lam = np.asarray(schedule(jnp.asarray(t)))
    np.testing.assert_allclose(lam, logit(abar), rtol=1e-8, atol=1e-8)


def test_edm_matches_karras():
    sigma_min, sigma_max, rho = 0.002, 80.0, 7.0
    t = np.linspace(0.0, 1.0, 101)
    sigma = (sigma_min ** (1 / rho) + t * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho
    schedule = S.edm(sigma_min, sigma_max, rho)
    np.testing.assert_allclose(ev(schedule, t), -2 * np.log(sigma), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(S.edm_sigma(schedule, jnp.asarray(t, jnp.float32))), sigma, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("name", "lam0", "lam1"),
    [
        ("edm", -2 * math.log(0.002), -2 * math.log(80.0)),
        ("cosine", 20.0, -20.0),
        ("cosine_simple_diffusion", 15.0, -15.0),
        ("sigmoid", 20.0, -20.0),
        ("learned_init", 13.3, -5.0),
        ("learned_random", 13.3, -5.0),
    ],
)
def test_endpoints(built, name, lam0, lam1):
    np.testing.assert_allclose(ev(built[name], [0.0, 1.0]), [lam0, lam1], rtol=1e-5, atol=1e-5)


def test_discrete_endpoints(built):
    lam = logit(ref_alphas_cumprod(ref_linear_betas(1e-4, 0.02, 1000)))
    np.testing.assert_allclose(
        ev(built["ddpm_linear"], [0.0, 1.0]), [2 * lam[0] - lam[1], lam[-1]], rtol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# Properties of every schedule
# ----------------------------------------------------------------------------------------------


def test_discretize_is_non_increasing_and_vdm_like():
    base = S.cosine()
    schedule = S.discretize(base, 10)
    t = np.linspace(0.0, 1.0, 1001)
    lam = ev(schedule, t)
    assert np.all(np.diff(lam) <= 0)
    assert len(np.unique(lam)) == 11  # t = 0 and the ten timesteps
    rng = np.random.default_rng(0)
    u = rng.uniform(0.0, 1.0, 64).astype(np.float32)
    expected = ev(base, np.ceil(u.astype(np.float64) * 10) / 10)
    np.testing.assert_allclose(ev(schedule, u), expected, rtol=1e-6)
    grid = (np.arange(10) + 1.0) / 10  # float32 0.3 * 10 rounds above 3: still timestep 3/10
    np.testing.assert_allclose(ev(schedule, grid), ev(base, grid), rtol=1e-6)
    assert ev(schedule, 0.0) == ev(base, 0.0)
    assert float(jax.grad(schedule)(0.55)) == 0.0


T_GRID = np.linspace(0.0, 1.0, 4001)
T_ENDS = np.array([0.0, 1.0, -0.5, 1.5, -3.0, 7.0])


def _properties(schedule):
    """Everything the property test needs, in one jitted call per schedule."""

    @jax.jit
    def run(t):
        alpha, sigma, dalpha, dsigma = S.alpha_sigma_and_derivatives(schedule, t)
        return schedule(t), alpha, sigma, dalpha, dsigma, jax.vmap(jax.grad(schedule))(t)

    out = run(jnp.asarray(np.concatenate([T_GRID, T_ENDS]), jnp.float32))
    out = [np.asarray(x, np.float64) for x in out]
    n = len(T_GRID)
    return [x[:n] for x in out], [x[n:] for x in out]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_properties(built, name):
    (lam, alpha, sigma, dalpha, dsigma, _), ends = _properties(built[name])
    lam_ends, grads = ends[0], ends[-1]
    # Strictly decreasing, no NaN.
    assert not np.any(np.isnan(lam))
    assert np.all(np.diff(lam) < 0)
    # VP: alpha^2 + sigma^2 = 1, alpha^2 = sigmoid(lambda).
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=0, atol=2e-6)
    np.testing.assert_allclose(alpha**2, 1 / (1 + np.exp(-lam)), rtol=1e-5, atol=1e-7)
    # Finite values and gradients at the ends and outside [0, 1]; no NaN anywhere.
    assert not np.any(np.isnan(lam_ends)) and np.all(np.isfinite(grads)), (lam_ends, grads)
    assert all(np.all(np.isfinite(x)) for x in ends[1:])
    assert np.all(np.isfinite(dalpha)) and np.all(np.isfinite(dsigma))
    if name in ZERO_TERMINAL:
        assert np.all(np.isneginf(lam_ends[[1, 3, 5]])) and np.all(np.isfinite(lam_ends[[0, 2, 4]]))
        assert alpha[-1] == 0.0 and sigma[-1] == 1.0
    else:
        assert np.all(np.isfinite(lam_ends))
    # Documented: t is clipped into [0, 1], so lambda is constant outside, with zero gradient.
    assert lam_ends[2] == lam_ends[0] and lam_ends[4] == lam_ends[0]
    assert lam_ends[3] == lam_ends[1] and lam_ends[5] == lam_ends[1]
    np.testing.assert_array_equal(grads[2:], 0.0)


@pytest.mark.parametrize("name", ["ddpm_linear", "cosine", "edm", "zero_snr_continuous"])
def test_derived_quantities(built, name):
    schedule = built[name]
    t = jnp.linspace(0.0, 1.0, 9)
    lam, abar, snr, edm_sigma = (
        np.asarray(x, np.float64)
        for x in jax.jit(
            lambda x: (
                schedule(x),
                S.alpha_bar(schedule, x),
                S.snr(schedule, x),
                S.edm_sigma(schedule, x),
            )
        )(t)
    )
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(abar, 1 / (1 + np.exp(-lam)), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(snr, np.exp(lam), rtol=2e-5)
        np.testing.assert_allclose(edm_sigma, np.exp(-lam / 2), rtol=2e-5)


def test_logsnr_conversions():
    lam = jnp.linspace(-15.0, 8.0, 47)
    alpha, sigma = S.alpha_sigma_from_logsnr(lam)
    np.testing.assert_allclose(np.asarray(S.logsnr_from_edm_sigma(sigma / alpha)), lam, atol=1e-4)
    np.testing.assert_allclose(np.asarray(S.logsnr_from_alpha_bar(alpha**2)), lam, atol=2e-3)
    np.testing.assert_allclose(
        np.asarray(S.edm_sigma_from_logsnr(lam)), np.exp(-np.asarray(lam) / 2), rtol=1e-6
    )


# Away from the grid points of the discrete schedules (T = 1000, 50, 10, 3).
T_INTERIOR = np.array([0.0123, 0.2871, 0.5037, 0.7719, 0.9634])


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_jvp_matches_finite_differences_float64(built, name):
    schedule = built[name]
    h = 1e-7

    @jax.jit
    def run(t):
        lam, dlam = S.logsnr_and_derivative(schedule, t)
        fd = (schedule(t + h) - schedule(t - h)) / (2 * h)
        return lam, dlam, S.dlogsnr_dt(schedule, t), fd, jax.vmap(jax.grad(schedule))(t)

    with jax.enable_x64(True):
        lam, dlam, dlam2, fd, grad = run(jnp.asarray(T_INTERIOR))
        assert lam.dtype == jnp.float64 and dlam.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(dlam), np.asarray(fd), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dlam2), np.asarray(dlam), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(dlam), rtol=1e-10)


def test_edm_derivative_is_exact_at_the_ends():
    sigma_min, sigma_max, rho = 0.002, 80.0, 7.0
    lo, span = sigma_min ** (1 / rho), sigma_max ** (1 / rho) - sigma_min ** (1 / rho)
    t = np.array([0.0, 0.5, 1.0])
    expected = -2 * rho * span / (lo + t * span)  # one-sided at 0 and 1, not halved by clipping
    ours = S.dlogsnr_dt(S.edm(sigma_min, sigma_max, rho), jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-5)


def test_alpha_sigma_derivatives():
    schedule = S.cosine()
    t = jnp.asarray(T_INTERIOR, jnp.float32)
    alpha, sigma, dalpha, dsigma = S.alpha_sigma_and_derivatives(schedule, t)
    dlam = S.dlogsnr_dt(schedule, t)
    expected_dalpha = np.asarray(alpha * sigma**2 * dlam / 2)
    expected_dsigma = np.asarray(-sigma * alpha**2 * dlam / 2)
    np.testing.assert_allclose(np.asarray(dalpha), expected_dalpha, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dsigma), expected_dsigma, rtol=1e-5)


@pytest.mark.parametrize("name", ["ddpm_linear", "sigmoid", "learned_random", "zero_snr_T1000"])
def test_jit_vmap_and_shapes(built, name):
    schedule = built[name]
    t = jnp.linspace(0.0, 1.0, 24, dtype=jnp.float32).reshape(4, 6)
    eager = np.asarray(schedule(t))
    assert eager.shape == (4, 6) and eager.dtype == np.float32
    np.testing.assert_allclose(np.asarray(jax.jit(schedule)(t)), eager, rtol=1e-5, atol=1e-5)
    vmapped = jax.jit(jax.vmap(schedule))(t)
    np.testing.assert_allclose(np.asarray(vmapped), eager, rtol=1e-5, atol=1e-5)
    vmapped2 = jax.jit(jax.vmap(jax.vmap(schedule)))(t)
    np.testing.assert_allclose(np.asarray(vmapped2), eager, rtol=1e-5, atol=1e-5)
    # Shapes and dtypes, by tracing only.
    shape_of = lambda shape, dtype: jax.eval_shape(schedule, jax.ShapeDtypeStruct(shape, dtype))
    assert shape_of((), jnp.float32).shape == ()
    assert shape_of((3,), jnp.int32).dtype == jnp.float32
    assert shape_of((3,), jnp.bfloat16).dtype == jnp.float32
    with jax.enable_x64(True):
        assert shape_of((3,), jnp.float64).dtype == jnp.float64


# ----------------------------------------------------------------------------------------------
# Zero terminal SNR
# ----------------------------------------------------------------------------------------------


def test_zero_terminal_snr_discrete_is_algorithm_1():
    base = S.discrete_alphas_cumprod(S.ddpm_linear(), 1000)
    ours = S.discrete_alphas_cumprod(
        S.rescale_zero_terminal_snr(S.ddpm_linear(), num_steps=1000), 1000
    )
    assert not np.any(np.isnan(ours))
    assert ours[-1] == 0.0
    assert ours[0] == base[0]  # the first step is unchanged
    np.testing.assert_allclose(ours, ref_zero_terminal_snr(base), rtol=1e-6, atol=0)
    # Against Algorithm 1 on the independently recomputed linear betas.
    independent = ref_zero_terminal_snr(ref_alphas_cumprod(ref_linear_betas(1e-4, 0.02, 1000)))
    np.testing.assert_allclose(ours, independent, rtol=1e-4, atol=0)
    # Betas that end in 1 give the same schedule.
    np.testing.assert_allclose(
        S.discrete_alphas_cumprod(S.from_betas(zero_snr_betas()), 1000), ours, rtol=1e-4, atol=0
    )


def test_zero_terminal_snr_continuous():
    base = S.cosine()
    schedule = S.rescale_zero_terminal_snr(base)
    t = np.linspace(0.0, 1.0, 11)
    lam = ev(schedule, t)
    assert lam[-1] == -np.inf and np.all(np.isfinite(lam[:-1]))
    np.testing.assert_allclose(lam[0], ev(base, 0.0), rtol=1e-6)  # anchored at t = 0
    # By hand: s = a0 (a - a1) / (a0 - a1) on sqrt(alpha_bar), in float64.
    root = np.sqrt(1 / (1 + np.exp(-ev(base, t))))
    s = root[0] * (root - root[-1]) / (root[0] - root[-1])
    np.testing.assert_allclose(lam[1:-1], logit(s[1:-1] ** 2), rtol=1e-4, atol=1e-4)
    at_one = jax.jit(
        lambda x: (
            *S.alpha_sigma(schedule, x),
            S.alpha_bar(schedule, x),
            S.edm_sigma(schedule, x),
            S.dlogsnr_dt(schedule, x),
        )
    )(jnp.float32(1.0))
    alpha, sigma, abar, edm_sigma, dlam = (float(x) for x in at_one)
    assert alpha == 0.0 and sigma == 1.0 and abar == 0.0 and edm_sigma == np.inf
    assert dlam == 0.0  # documented: reported as 0, not -inf or NaN


def test_zero_terminal_snr_keeps_the_steps_before_the_anchor():
    base = S.ddpm_linear()
    schedule = S.rescale_zero_terminal_snr(base, num_steps=1000)
    t = np.array([0.0, 0.0004, 0.001])
    np.testing.assert_allclose(ev(schedule, t), ev(base, t), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Combinators
# ----------------------------------------------------------------------------------------------


def _edm_np(t, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    t = np.asarray(t, np.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return -2 * rho * np.log(lo + t * (hi - lo))


def test_shift_formula():
    t = np.linspace(0.0, 1.0, 21)
    np.testing.assert_allclose(
        ev(S.shift(S.edm(), 8.0), t), _edm_np(t) - 2 * np.log(8.0), rtol=1e-5, atol=1e-5
    )
    # SD3's timestep shift for rectified flow, t' = f t / (1 + (f - 1) t), is the same shift.
    u = np.linspace(0.02, 0.98, 25)
    f = 3.0
    np.testing.assert_allclose(
        ev(S.shift(rf_logsnr, f), u), ev(rf_logsnr, f * u / (1 + (f - 1) * u)), rtol=1e-4, atol=1e-5
    )


def test_interpolate_formula():
    line = lambda t: 5.0 - 10.0 * t
    t = np.linspace(0.0, 1.0, 21)
    np.testing.assert_allclose(
        ev(S.interpolate(S.edm(), line, 0.25), t),
        0.75 * _edm_np(t) + 0.25 * (5 - 10 * t),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        ev(S.interpolate(S.edm(), line, lambda s: s), t),
        (1 - t) * _edm_np(t) + t * (5 - 10 * t),
        rtol=1e-5,
        atol=1e-5,
    )


def test_interpolate_with_minus_inf():
    zero_snr = S.rescale_zero_terminal_snr(S.edm())
    t = jnp.asarray([0.5, 1.0], jnp.float32)
    only_edm = S.interpolate(zero_snr, S.edm(), 1.0)  # 0 * (-inf) counts as 0
    np.testing.assert_allclose(ev(only_edm, t), _edm_np([0.5, 1.0]), rtol=1e-5)
    half = S.interpolate(zero_snr, S.edm(), 0.5)
    lam = ev(half, t)
    assert np.isfinite(lam[0]) and lam[1] == -np.inf
    assert np.all(np.isfinite(np.asarray(jax.jit(jax.vmap(jax.grad(half)))(t))))


# ----------------------------------------------------------------------------------------------
# Learned schedule
# ----------------------------------------------------------------------------------------------


def test_learned_schedule():
    pair = S.learned()
    params = pair.init(jax.random.key(0))
    assert params["w2"].shape == (1024,)
    schedule = functools.partial(pair.apply, params)
    t = jnp.linspace(0.0, 1.0, 101)
    lam = ev(schedule, t)
    np.testing.assert_allclose(lam[[0, -1]], [13.3, -5.0], rtol=1e-5)
    # VDM's init is nearly linear in gamma.
    np.testing.assert_allclose(lam, 13.3 - 18.3 * np.asarray(t), atol=0.05)

    def loss(p):
        return jnp.mean(pair.apply(p, t) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["w2"]).sum()) > 0


@pytest.mark.parametrize("seed", range(4))
def test_learned_schedule_is_monotone_at_random_params(seed):
    params = random_learned_params(jax.random.key(10 + seed), 128)
    lam = ev(functools.partial(_LEARNED.apply, params), np.linspace(0.0, 1.0, 2001))
    assert np.all(np.diff(lam) < 0)
    np.testing.assert_allclose(lam[[0, -1]], [13.3, -5.0], rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Timestep convention, lookup, bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num", [1000, 7, 1])
def test_timestep_convention(num):
    i = np.arange(num)
    t = S.timestep_to_t(i, num)
    np.testing.assert_allclose(np.asarray(t), (i + 1) / num, rtol=2e-7)
    np.testing.assert_array_equal(np.asarray(S.t_to_timestep(t, num)), i)
    assert int(S.t_to_timestep(0.0, num)) == 0 and int(S.t_to_timestep(1.0, num)) == num - 1


def test_get_schedule():
    t = jnp.linspace(0.0, 1.0, 11)
    np.testing.assert_array_equal(
        np.asarray(S.get_schedule("linear", num_steps=10)(t)),
        np.asarray(S.ddpm_linear(num_steps=10)(t)),
    )
    np.testing.assert_array_equal(
        S.discrete_alphas_cumprod(S.get_schedule("squaredcos_cap_v2"), 1000),
        S.discrete_alphas_cumprod(S.cosine(num_steps=1000), 1000),
    )
    for name in ["ddpm_linear", "scaled_linear", "cosine", "sigmoid", "edm"]:
        assert np.all(np.isfinite(np.asarray(S.get_schedule(name)(t))))
    with pytest.raises(ValueError, match=r"Unknown noise schedule 'cosin'.*cosine.*edm"):
        S.get_schedule("cosin")


@pytest.mark.parametrize(
    "build",
    [
        lambda: S.ddpm_linear(beta_start=0.02, beta_end=0.01),
        lambda: S.ddpm_linear(beta_start=0.01, beta_end=0.01),
        lambda: S.ddpm_linear(beta_start=0.0),
        lambda: S.ddpm_linear(num_steps=0),
        lambda: S.ddpm_linear(num_steps=2.5),
        lambda: S.ddpm_linear(num_steps=True),
        lambda: S.scaled_linear(num_steps=-1),
        lambda: S.scaled_linear(beta_start=0.5, beta_end=0.1),
        lambda: S.cosine(num_steps=0),
        lambda: S.cosine(s=-0.1),
        lambda: S.cosine(logsnr_min=5.0, logsnr_max=-5.0),
        lambda: S.sigmoid(start=3.0, end=-3.0),
        lambda: S.sigmoid(tau=0.0),
        lambda: S.edm(sigma_min=80.0, sigma_max=0.002),
        lambda: S.edm(sigma_min=1.0, sigma_max=1.0),
        lambda: S.edm(rho=0.0),
        lambda: S.learned(gamma_min=5.0, gamma_max=-13.3),
        lambda: S.from_betas([]),
        lambda: S.from_betas([[0.1, 0.2]]),
        lambda: S.from_betas([0.1, -0.1]),
        lambda: S.from_betas([0.1, 1.0, 0.2]),
        lambda: S.from_betas([0.1, np.nan]),
        lambda: S.from_betas([1.0]),
        lambda: S.from_betas([1e-9, 0.1]),
        lambda: S.shift(S.edm(), 0.0),
        lambda: S.shift(S.edm(), -2.0),
        lambda: S.interpolate(S.edm(), S.edm(), 1.5),
        lambda: S.discretize(S.edm(), 0),
        lambda: S.rescale_zero_terminal_snr(S.edm(), num_steps=0),
        lambda: S.discrete_alphas_cumprod(S.edm(), 0),
        lambda: S.timestep_to_t(0, 0),
    ],
)
def test_bad_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()
