"""Forward process, noise inputs, time sampling, the simple losses with min-SNR-gamma, and EDM.

Reference values are recomputed here in float64 numpy from the defining equations (Ho et al.
2020; Salimans & Ho 2022; Hang et al. 2023; Karras et al. 2022), not from the module's code.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.diffusion import process, schedules
from gen.diffusion.parameterization import PARAMETERIZATIONS

LAM_HI, LAM_LO = 9.0, -9.0


def linear_logsnr(t):
    """A schedule with a closed form, so that numpy can recompute alpha and sigma."""
    return LAM_HI + (LAM_LO - LAM_HI) * jnp.clip(jnp.asarray(t, jnp.float32), 0.0, 1.0)


def np_alpha_sigma(t):
    lam = LAM_HI + (LAM_LO - LAM_HI) * np.asarray(t, np.float64)
    return np.sqrt(1.0 / (1.0 + np.exp(-lam))), np.sqrt(1.0 / (1.0 + np.exp(lam))), lam


def toy_params(dim, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(dim, dim)) / math.sqrt(dim), jnp.float32),
        "u": jnp.asarray(rng.normal(size=(dim,)), jnp.float32),
    }


def toy_apply(params, x_t, t_input, labels=None):
    """A linear network on flat vectors: ``x_t W + u tanh(t_input / 1000)``."""
    out = x_t @ params["w"] + jnp.tanh(t_input / 1000.0)[:, None] * params["u"]
    if labels is not None:
        out = out + labels[:, None].astype(jnp.float32)
    return out


def np_toy_apply(params, x_t, t_input):
    w, u = (np.asarray(params[k], np.float64) for k in ("w", "u"))
    return x_t @ w + np.tanh(np.asarray(t_input, np.float64) / 1000.0)[:, None] * u


def np_x0_eps(pred, x_t, a, s, da, ds, name):
    """(x0, eps) from a prediction, each case solved from its definition."""
    if name == "eps":
        return (x_t - s * pred) / a, pred
    if name == "x0":
        return pred, (x_t - a * pred) / s
    if name == "v":  # v = a eps - s x0 and x_t = a x0 + s eps, with a^2 + s^2 = 1
        return a * x_t - s * pred, s * x_t + a * pred
    if name == "score":  # score = -(x_t - a x0) / s^2 = -eps / s
        eps = -s * pred
        return (x_t - s * eps) / a, eps
    m = np.array([[a, s], [da, ds]])  # velocity: [x_t, u] = M [x0, eps]
    sol = np.linalg.solve(np.moveaxis(m, (0, 1), (-2, -1)), np.stack([x_t, pred], -1)[..., None])
    return sol[..., 0, 0], sol[..., 1, 0]


def np_target(x0, eps, a, s, name):
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0}[name]


def fixed_inputs(batch=6, dim=3, seed=1):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(batch, dim)).astype(np.float32)
    eps = rng.normal(size=(batch, dim)).astype(np.float32)
    t = np.linspace(0.05, 0.95, batch).astype(np.float32)
    return x0, eps, t


# ----------------------------------------------------------------------------------------------
# Forward process
# ----------------------------------------------------------------------------------------------


def test_q_sample_statistics_match_ddpm_alphas_cumprod():
    """Mean alpha x0 and std sigma, with alpha^2 from Ho et al.'s betas recomputed in numpy."""
    num = 1000
    abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, num))
    steps = np.array([0, 99, 499, 999])
    t = (steps + 1.0) / num  # timestep i is t = (i + 1) / T
    n = 20000
    x0 = np.tile(np.array([[1.5, -0.5]], np.float32), (n, 1))
    eps = jax.random.normal(jax.random.key(0), (n, 2))
    sched = schedules.ddpm_linear()
    for ti, ab in zip(t, abar[steps], strict=True):
        x_t = np.asarray(process.q_sample(sched, x0, jnp.full((n,), ti), eps))
        np.testing.assert_allclose(x_t.mean(0), np.sqrt(ab) * x0[0], atol=4 * 1 / math.sqrt(n))
        np.testing.assert_allclose(x_t.std(0), np.sqrt(1 - ab), rtol=0.03, atol=3e-4)
        # and exactly, draw by draw
        np.testing.assert_allclose(
            x_t, np.sqrt(ab) * x0 + np.sqrt(1 - ab) * np.asarray(eps), rtol=1e-4, atol=1e-5
        )


def test_coefficients_broadcast_and_derivatives():
    t = jnp.asarray([0.1, 0.4, 0.8])
    c = process.coefficients(linear_logsnr, t, 4)
    assert all(v.shape == (3, 1, 1, 1) for v in c)
    a, s, _ = np_alpha_sigma(np.asarray(t))
    np.testing.assert_allclose(c.alpha.ravel(), a, rtol=1e-6)
    np.testing.assert_allclose(c.sigma.ravel(), s, rtol=1e-6)
    h = 1e-5  # central differences in float64
    ap, sp, _ = np_alpha_sigma(np.asarray(t, np.float64) + h)
    am, sm, _ = np_alpha_sigma(np.asarray(t, np.float64) - h)
    np.testing.assert_allclose(c.d_alpha.ravel(), (ap - am) / (2 * h), rtol=1e-4)
    np.testing.assert_allclose(c.d_sigma.ravel(), (sp - sm) / (2 * h), rtol=1e-4)


def test_shape_errors():
    x0 = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        process.q_sample(linear_logsnr, x0, jnp.zeros((3,)), x0)
    with pytest.raises(ValueError, match="shape of x0"):
        process.q_sample(linear_logsnr, x0, jnp.zeros((4,)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="per example"):
        process.coefficients(linear_logsnr, jnp.zeros((4, 1)), 2)


# ----------------------------------------------------------------------------------------------
# Noise inputs and time sampling
# ----------------------------------------------------------------------------------------------


def test_noise_inputs():
    t = jnp.asarray([0.001, 0.25, 1.0])
    lam = jnp.asarray([5.0, 0.0, -3.0])
    np.testing.assert_allclose(process.time_input()(t, lam), [1.0, 250.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(
        process.timestep_input(1000)(t, lam), [0.0, 249.0, 999.0], atol=1e-4
    )
    np.testing.assert_allclose(process.logsnr_input()(t, lam), lam)
    np.testing.assert_allclose(
        process.rescaled_logsnr_input(5.0, -3.0)(t, lam), [0.0, 625.0, 1000.0], rtol=1e-6
    )
    sigma = np.exp(-np.asarray(lam) / 2)  # EDM: c_noise = ln(sigma) / 4
    np.testing.assert_allclose(process.edm_noise_input()(t, lam), np.log(sigma) / 4, rtol=1e-6)


def test_vdm_noise_input_uses_the_schedule_ends():
    t = jnp.asarray([0.0, 0.3, 1.0])
    lam = linear_logsnr(t)
    np.testing.assert_allclose(process.vdm_noise_input(linear_logsnr)(t, lam),
                               process.rescaled_logsnr_input(LAM_HI, LAM_LO)(t, lam), rtol=1e-6)
    np.testing.assert_allclose(process.vdm_noise_input(linear_logsnr)(t, lam), [0, 300, 1000],
                               rtol=1e-5, atol=1e-4)


def test_sampling_denoiser_feeds_the_training_t_input():
    """The samplers' ``denoiser(x_t, t)`` sees what the loss fed the network at the same t."""
    echo = lambda params, x_t, t_input: jnp.zeros_like(x_t) + t_input[:, None]
    t = jnp.asarray([0.0, 0.1, 0.5, 0.97])
    x = jnp.zeros((4, 2))
    for noise_input in (None, process.timestep_input(1000), process.logsnr_input(),
                        process.vdm_noise_input(linear_logsnr)):
        fn = process.denoising_loss(echo, linear_logsnr, parameterization="x0", target="x0",
                                    noise_input=noise_input)
        trained = np.sqrt(np.asarray(fn(None, x, None, t=t, eps=x), np.float64))
        seen = process.sampling_denoiser(echo, None, linear_logsnr, noise_input)(x, t)[:, 0]
        np.testing.assert_allclose(np.abs(seen), trained, rtol=1e-5, atol=1e-5)
    x_t = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    params = toy_params(3)
    got = process.sampling_denoiser(toy_apply, params, linear_logsnr)(x_t, t)
    np.testing.assert_allclose(got, np_toy_apply(params, np.asarray(x_t, np.float64),
                                                 1000 * np.asarray(t)), rtol=1e-5, atol=1e-6)
    labels = jnp.arange(4)
    cond = process.sampling_denoiser(toy_apply, params, linear_logsnr, conditional=True)
    np.testing.assert_allclose(cond(x_t, t, labels), got + np.arange(4)[:, None], rtol=1e-5,
                               atol=1e-6)


def test_sample_time_continuous_and_discrete():
    t = np.asarray(process.sample_time(jax.random.key(0), 50000))
    assert t.dtype == np.float32 and t.min() >= 0 and t.max() < 1
    assert abs(t.mean() - 0.5) < 0.01 and abs(t.var() - 1 / 12) < 0.003
    num = 10
    td = np.asarray(process.sample_time(jax.random.key(1), 20000, num_steps=num))
    i = np.round(td * num - 1).astype(int)
    np.testing.assert_allclose(td, (i + 1) / num, atol=1e-7)  # on the grid t_i = (i + 1) / T
    counts = np.bincount(i, minlength=num)
    assert counts.size == num and counts.min() > 1800  # every timestep, roughly uniform


def test_low_discrepancy_time_covers_the_batch_evenly():
    batch = 64
    t = np.sort(np.asarray(process.sample_time(jax.random.key(3), batch, low_discrepancy=True)))
    gaps = np.diff(np.concatenate([t, [t[0] + 1.0]]))
    np.testing.assert_allclose(gaps, 1.0 / batch, atol=1e-5)
    # discrete: with B = k T every timestep appears exactly k times
    for seed in range(5):
        i = process.sample_timestep(jax.random.key(seed), 40, 8, low_discrepancy=True)
        np.testing.assert_array_equal(np.bincount(np.asarray(i), minlength=8), 5)
    # and the marginal of each entry is uniform: over many keys, entry 0 hits every timestep
    keys = jax.random.split(jax.random.key(9), 4000)
    first = jax.vmap(lambda k: process.sample_timestep(k, 40, 8, low_discrepancy=True)[0])(keys)
    counts = np.bincount(np.asarray(first), minlength=8)
    assert counts.min() > 400


# ----------------------------------------------------------------------------------------------
# Simple losses
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("target", ["eps", "x0", "v"])
def test_simple_loss_matches_float64_recomputation(parameterization, target):
    x0, eps, t = fixed_inputs()
    params = toy_params(x0.shape[1])
    loss_fn = process.denoising_loss(
        toy_apply, linear_logsnr, parameterization=parameterization, target=target
    )
    got = np.asarray(loss_fn(params, x0, None, t=t, eps=eps))

    a, s, _ = (v[:, None] for v in np_alpha_sigma(t))
    da = a * s**2 * (LAM_LO - LAM_HI) / 2  # d alpha/dt = alpha sigma^2 lambda' / 2
    ds = -s * a**2 * (LAM_LO - LAM_HI) / 2
    x0d, epsd = x0.astype(np.float64), eps.astype(np.float64)
    x_t = a * x0d + s * epsd
    pred = np_toy_apply(params, x_t, 1000.0 * t)  # default t_input = 1000 t
    x0_hat, eps_hat = np_x0_eps(pred, x_t, a, s, da, ds, parameterization)
    want = np.mean(
        (np_target(x0d, epsd, a, s, target) - np_target(x0_hat, eps_hat, a, s, target)) ** 2, 1
    )
    np.testing.assert_allclose(got, want, rtol=2e-4)


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_losses_relate_through_the_snr(parameterization):
    """||eps err||^2 = SNR ||x0 err||^2 and ||v err||^2 = (SNR + 1) ||x0 err||^2, whatever the
    network predicts; with min-SNR-gamma all three become min(SNR, gamma) ||x0 err||^2."""
    x0, eps, t = fixed_inputs(batch=8, seed=2)
    params = toy_params(x0.shape[1], seed=3)
    snr = np.exp(np_alpha_sigma(t)[2])

    def run(target, weighting=None):
        fn = process.denoising_loss(toy_apply, linear_logsnr, parameterization=parameterization,
                                    target=target, weighting=weighting, min_snr_gamma=5.0)
        return np.asarray(fn(params, x0, None, t=t, eps=eps), np.float64)

    l_x0, l_eps, l_v = run("x0"), run("eps"), run("v")
    np.testing.assert_allclose(l_eps, snr * l_x0, rtol=3e-4)
    np.testing.assert_allclose(l_v, (snr + 1) * l_x0, rtol=3e-4)
    m_x0, m_eps, m_v = run("x0", "min_snr"), run("eps", "min_snr"), run("v", "min_snr")
    np.testing.assert_allclose(m_x0, np.minimum(snr, 5.0) * l_x0, rtol=3e-4)
    np.testing.assert_allclose(m_eps, m_x0, rtol=3e-4)
    np.testing.assert_allclose(m_v, m_x0, rtol=3e-4)


def test_min_snr_weights_hand_formulas():
    lam = np.linspace(-12, 12, 49)
    snr = np.exp(lam)
    for gamma in (1.0, 5.0):
        g = np.minimum(snr, gamma)
        for target, want in (("eps", g / snr), ("x0", g), ("v", g / (snr + 1))):
            got = process.min_snr_weight(jnp.asarray(lam, jnp.float32), gamma, target)
            np.testing.assert_allclose(got, want, rtol=1e-5)
    # extremes stay finite, with the limits of the formulas
    ext = jnp.asarray([-jnp.inf, -200.0, 200.0, jnp.inf])
    np.testing.assert_allclose(process.min_snr_weight(ext, 5.0, "eps"), [1, 1, 0, 0], atol=1e-30)
    np.testing.assert_allclose(process.min_snr_weight(ext, 5.0, "x0"), [0, 0, 5, 5], rtol=1e-6)
    np.testing.assert_allclose(process.min_snr_weight(ext, 5.0, "v"), [0, 0, 0, 0], atol=1e-30)


def test_custom_weighting_and_sum_reduction():
    x0, eps, t = fixed_inputs()
    params = toy_params(x0.shape[1])
    base = process.denoising_loss(toy_apply, linear_logsnr)(params, x0, None, t=t, eps=eps)
    weighted = process.denoising_loss(toy_apply, linear_logsnr, weighting=jnp.exp)(
        params, x0, None, t=t, eps=eps)
    summed = process.denoising_loss(toy_apply, linear_logsnr, reduce="sum")(
        params, x0, None, t=t, eps=eps)
    np.testing.assert_allclose(weighted, np.exp(np_alpha_sigma(t)[2]) * base, rtol=1e-5)
    np.testing.assert_allclose(summed, x0.shape[1] * np.asarray(base), rtol=1e-6)


def test_discrete_time_feeds_the_network_the_grid():
    """An x0-network that returns t_input, on x0 = 0 under the x0 loss, reports t_input^2."""
    num = 50
    echo = lambda params, x_t, t_input: jnp.zeros_like(x_t) + t_input[:, None]
    sched = schedules.ddpm_linear(num_steps=num)
    for noise_input in (process.timestep_input(num), None):
        fn = jax.jit(process.denoising_loss(echo, sched, parameterization="x0", target="x0",
                                            num_steps=num, noise_input=noise_input))
        ti = np.sqrt(np.asarray(fn(None, jnp.zeros((256, 2)), jax.random.key(0)), np.float64))
        if noise_input is None:  # default: 1000 t = 1000 (i + 1) / T
            ti = ti * num / 1000.0 - 1.0
        np.testing.assert_allclose(ti, np.round(ti), atol=1e-3)
        assert ti.min() >= 0 and ti.max() <= num - 1 + 1e-3 and len(np.unique(np.round(ti))) > 30


def test_labels_and_apply_kwargs_are_passed_on():
    x0, eps, t = fixed_inputs()
    params = toy_params(x0.shape[1])
    fn = process.denoising_loss(toy_apply, linear_logsnr)
    labels = jnp.arange(x0.shape[0])
    with_labels = fn(params, x0, None, labels, t=t, eps=eps)
    assert not np.allclose(with_labels, fn(params, x0, None, t=t, eps=eps))

    def kw_apply(params, x_t, t_input, *, scale):
        return scale * x_t

    fn2 = process.denoising_loss(kw_apply, linear_logsnr)
    assert not np.allclose(fn2(None, x0, None, t=t, eps=eps, scale=0.0),
                           fn2(None, x0, None, t=t, eps=eps, scale=1.0))


@pytest.mark.parametrize("target", ["eps", "x0", "v"])
def test_finite_values_and_gradients_at_the_ends(target):
    sched = schedules.cosine()  # log-SNR from +20 to -20
    x0 = jax.random.normal(jax.random.key(0), (6, 3))
    eps = jax.random.normal(jax.random.key(1), (6, 3))
    t = jnp.asarray([0.0, 1e-6, 1e-3, 0.999, 1 - 1e-6, 1.0])
    cases = [(p, w) for p in PARAMETERIZATIONS for w in (None, "min_snr")]
    fns = [process.denoising_loss(toy_apply, sched, parameterization=p, target=target,
                                  weighting=w) for p, w in cases]

    @jax.jit
    def values_and_grads(params):
        return [jax.value_and_grad(lambda p, f=f: f(p, x0, None, t=t, eps=eps).mean())(params)
                for f in fns]

    for case, (value, grads) in zip(cases, values_and_grads(toy_params(3)), strict=True):
        assert np.isfinite(value), case
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), case


def test_jit_and_random_draws():
    fn = jax.jit(process.denoising_loss(toy_apply, schedules.cosine(), low_discrepancy=True))
    x0 = jnp.ones((16, 3))
    a = fn(toy_params(3), x0, jax.random.key(0))
    b = fn(toy_params(3), x0, jax.random.key(1))
    assert a.shape == (16,) and np.all(np.isfinite(a)) and not np.allclose(a, b)


def test_bad_options():
    with pytest.raises(ValueError, match="parameterization"):
        process.denoising_loss(toy_apply, linear_logsnr, parameterization="noise")
    with pytest.raises(ValueError, match="loss target"):
        process.denoising_loss(toy_apply, linear_logsnr, target="score")
    with pytest.raises(ValueError, match="weighting"):
        process.denoising_loss(toy_apply, linear_logsnr, weighting="snr")
    with pytest.raises(ValueError, match="reduce"):
        process.denoising_loss(toy_apply, linear_logsnr, reduce="max")
    with pytest.raises(ValueError, match="num_steps"):
        process.denoising_loss(toy_apply, linear_logsnr, num_steps=0)
    with pytest.raises(ValueError, match="PRNG key"):
        process.denoising_loss(toy_apply, linear_logsnr)(toy_params(3), jnp.ones((2, 3)), None)
    with pytest.raises(ValueError, match="input's shape"):
        bad = process.denoising_loss(lambda p, x, t: x[:, :1], linear_logsnr)
        bad(None, jnp.ones((2, 3)), jax.random.key(0))


# ----------------------------------------------------------------------------------------------
# EDM
# ----------------------------------------------------------------------------------------------

SIGMA_DATA = 0.5


def np_edm_pre(sigma, sd=SIGMA_DATA):
    """Karras et al. 2022, Table 1."""
    return (sd**2 / (sigma**2 + sd**2), sigma * sd / np.sqrt(sigma**2 + sd**2),
            1 / np.sqrt(sigma**2 + sd**2), np.log(sigma) / 4)


def test_edm_preconditioning_and_weight():
    sigma = np.array([0.002, 0.1, 0.5, 3.0, 80.0])
    got = process.edm_preconditioning(jnp.asarray(sigma, jnp.float32), SIGMA_DATA)
    for g, w in zip(got, np_edm_pre(sigma), strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-6)
    lam = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
    np.testing.assert_allclose(process.edm_weight(jnp.asarray(sigma, jnp.float32)), lam, rtol=2e-6)


def test_edm_denoiser_with_zero_network_is_c_skip_x():
    x = jax.random.normal(jax.random.key(0), (4, 2, 3))
    sigma = jnp.asarray([0.01, 0.5, 2.0, 50.0])
    d = process.edm_denoiser(lambda p, x, c: jnp.zeros_like(x))(None, x, sigma)
    c_skip = np_edm_pre(np.asarray(sigma, np.float64))[0]
    np.testing.assert_allclose(d, c_skip[:, None, None] * np.asarray(x), rtol=1e-6)


def test_edm_loss_is_the_effective_training_target_loss():
    """Eq. 8: lambda(sigma) ||D - y||^2 = ||F(c_in x; c_noise) - (y - c_skip x) / c_out||^2,
    x = y + n, since lambda(sigma) c_out^2 = 1; and F sees c_in x and c_noise."""
    rng = np.random.default_rng(4)
    y = rng.normal(size=(5, 3)).astype(np.float32) * SIGMA_DATA
    eps = rng.normal(size=(5, 3)).astype(np.float32)
    sigma = np.array([0.003, 0.2, 0.6, 4.0, 60.0], np.float32)
    params = toy_params(3, seed=5)
    got = process.edm_loss(toy_apply, SIGMA_DATA)(params, y, None, sigma=sigma, eps=eps)

    s = sigma.astype(np.float64)[:, None]
    c_skip, c_out, c_in, c_noise = np_edm_pre(s)
    x = y + s * eps
    f = np_toy_apply(params, c_in * x, c_noise[:, 0])
    f_target = (y - c_skip * x) / c_out
    np.testing.assert_allclose(got, np.mean((f - f_target) ** 2, 1), rtol=5e-4)
    d = c_skip * x + c_out * f
    lam = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
    np.testing.assert_allclose(got, np.mean(lam * (d - y) ** 2, 1), rtol=5e-4)


def test_edm_sigma_sampling_is_log_normal():
    sigma = np.asarray(process.sample_edm_sigma(jax.random.key(0), 40000))
    log_s = np.log(sigma)
    assert abs(log_s.mean() - -1.2) < 0.03 and abs(log_s.std() - 1.2) < 0.03
    loss = process.edm_loss(toy_apply)(toy_params(3), jnp.ones((8, 3)), jax.random.key(1))
    assert loss.shape == (8,) and np.all(np.isfinite(loss))


def test_edm_vp_denoiser_maps_vp_to_ve():
    """On the VP ``x_t = alpha y + sigma eps`` the wrapper is ``D(x_t / alpha; sigma / alpha)``."""
    rng = np.random.default_rng(6)
    y = rng.normal(size=(4, 3)).astype(np.float32)
    eps = rng.normal(size=(4, 3)).astype(np.float32)
    lam = np.array([6.0, 1.0, -1.0, -4.0])
    a, s = np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))
    x_t = a[:, None] * y + s[:, None] * eps
    params = toy_params(3, seed=7)
    got = process.edm_vp_denoiser(toy_apply)(params, x_t.astype(np.float32),
                                             jnp.asarray(lam, jnp.float32))
    sigma_edm = s / a
    np.testing.assert_allclose(sigma_edm, np.exp(-lam / 2), rtol=1e-12)
    c_skip, c_out, c_in, c_noise = (v[:, None] for v in np_edm_pre(sigma_edm))
    x = y + sigma_edm[:, None] * eps  # = x_t / alpha
    want = c_skip * x + c_out * np_toy_apply(params, c_in * x, c_noise[:, 0])
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Issue 16: learned-range variance helpers
# ----------------------------------------------------------------------------------------------


def test_learned_range_helpers_match_numpy():
    """``step_log_variances``: beta = 1 - abar_t / abar_s and beta_tilde = beta (1 - abar_s) /
    (1 - abar_t); ``learned_range_logvar``: eq. 15 of Improved DDPM; ``split_variance``."""
    lam_t, lam_s = np.array([-3.0, 0.5, 4.0]), np.array([-2.0, 2.5, 9.0])
    abar_t, abar_s = 1 / (1 + np.exp(-lam_t)), 1 / (1 + np.exp(-lam_s))
    beta = 1 - abar_t / abar_s
    beta_tilde = beta * (1 - abar_s) / (1 - abar_t)
    log_beta, log_beta_tilde = process.step_log_variances(lam_t, lam_s)
    np.testing.assert_allclose(log_beta, np.log(beta), rtol=1e-5)
    np.testing.assert_allclose(log_beta_tilde, np.log(beta_tilde), rtol=1e-5)
    v = np.array([-1.0, 0.2, 1.0])
    want = (v + 1) / 2 * np.log(beta) + (1 - v) / 2 * np.log(beta_tilde)
    np.testing.assert_allclose(process.learned_range_logvar(v, log_beta, log_beta_tilde), want,
                               rtol=1e-5)
    x = np.zeros((2, 4, 3))
    out = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    pred, v = process.split_variance(out, x)
    np.testing.assert_array_equal(pred, out[..., :3])
    np.testing.assert_array_equal(v, out[..., 3:])
    with pytest.raises(ValueError, match="2C channels"):
        process.split_variance(out[..., :5], x)
