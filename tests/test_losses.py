"""Likelihood losses: the discrete DDPM VLB and the VDM ELBO, checked in float64 numpy and
against the exact NLL of a 1-D Gaussian data distribution N(M, S^2) with its Bayes-optimal
denoiser.

Expectations are computed exactly instead of by Monte Carlo: every term is quadratic in the
noise (the optimal denoiser is linear in x_t), so the two-point rule eps = +-1 gives its exact
expectation; the data expectation is a 3-point Gauss-Hermite rule (also exact for quadratics),
and the VDM integral over t a Gauss-Legendre rule.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from gen.diffusion import losses, process, schedules
from gen.diffusion.parameterization import PARAMETERIZATIONS

M, S = 0.3, 0.7
ENTROPY = 0.5 * math.log(2 * math.pi * math.e * S**2)  # E[-log N(x; M, S^2)]


def np_ddpm(num_steps=1000):
    """Ho et al. 2020's quantities (eqs. 6-7) in float64, from diffusers' float32
    ``alphas_cumprod`` of the linear betas (the schedule reproduces those: near t = 0,
    ``1 - alpha_bar`` in float32 carries a relative error ~6e-4 that float64 betas lack)."""
    betas32 = np.linspace(1e-4, 0.02, num_steps).astype(np.float32)
    abar = np.cumprod((np.float32(1) - betas32).astype(np.float64)).astype(np.float32)
    abar = abar.astype(np.float64)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    betas = 1.0 - abar / abar_prev
    post_var = betas * (1 - abar_prev) / (1 - abar)
    coef1 = betas * np.sqrt(abar_prev) / (1 - abar)
    coef2 = (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar)
    return betas, abar, post_var, coef1, coef2


def np_gaussian_kl(m1, v1, m2, v2):
    return 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def np_discretized_logp(x, mean, scale):
    """float64 reference in log space: log(Phi(u) - Phi(l)) with the outer bins open."""
    u = (x - mean + 1 / 255) / scale
    lo = (x - mean - 1 / 255) / scale
    left = special.log_ndtr(u)
    right = special.log_ndtr(-lo)
    with np.errstate(divide="ignore"):  # np.where evaluates the unused side too
        mid = np.where(
            lo > 0,
            right + np.log1p(-np.exp(special.log_ndtr(-u) - right)),
            left + np.log1p(-np.exp(special.log_ndtr(lo) - left)),
        )
    return np.where(x < -0.999, left, np.where(x > 0.999, right, mid))


def toy_params(dim, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(dim, dim)) / math.sqrt(dim), jnp.float32),
        "u": jnp.asarray(rng.normal(size=(dim,)), jnp.float32),
    }


def toy_apply(params, x_t, t_input):
    return jnp.tanh(x_t @ params["w"] + jnp.tanh(t_input / 1000.0)[:, None] * params["u"])


def optimal_x0(params, x_t, logsnr):
    """E[x0 | x_t] for x0 ~ N(M, S^2), conditioned on the log-SNR (t_input = lambda)."""
    lam = logsnr[:, None]
    a2, s2 = jax.nn.sigmoid(lam), jax.nn.sigmoid(-lam)
    a = jnp.sqrt(a2)
    return M + a * S**2 / (a2 * S**2 + s2) * (x_t - a * M)


def gauss_hermite_batch(n=3):
    """Data points and weights: x_k = M + S z_k, each twice (for eps = +1 and -1)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    x = np.repeat(M + S * z, 2)[:, None].astype(np.float32)
    sign = np.tile([1.0, -1.0], n)[:, None].astype(np.float32)
    return x, sign, np.repeat(w / math.sqrt(2 * math.pi), 2) / 2


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def test_gaussian_kl_and_log_likelihood():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(2, 50))
    lv1, lv2 = rng.normal(size=(2, 50)) * 3
    got = losses.gaussian_kl(m1, lv1, m2, lv2)
    np.testing.assert_allclose(got, np_gaussian_kl(m1, np.exp(lv1), m2, np.exp(lv2)),
                               rtol=1e-4, atol=1e-6)
    x = rng.normal(size=50)
    want = -0.5 * np.log(2 * np.pi * np.exp(lv1)) - (x - m1) ** 2 / (2 * np.exp(lv1))
    np.testing.assert_allclose(losses.gaussian_log_likelihood(x, m1, lv1), want, rtol=1e-5)
    assert float(losses.gaussian_kl(0.3, -2.0, 0.3, -2.0)) == 0.0


def test_discretized_gaussian_is_a_distribution_on_the_8bit_grid():
    grid = (np.arange(256) * 2 / 255 - 1)[:, None, None]
    mean = np.array([-1.3, -0.5, 0.0137, 0.9, 2.0])[None, :, None]
    scale = np.array([1e-4, 3e-3, 0.05, 0.7, 5.0, 300.0])[None, None, :]
    logp = np.asarray(jax.jit(losses.discretized_gaussian_log_likelihood)(
        grid.astype(np.float32), mean.astype(np.float32), np.log(scale).astype(np.float32)),
        np.float64)
    assert logp.shape == (256, 5, 6) and np.all(np.isfinite(logp)) and np.all(logp <= 1e-6)
    np.testing.assert_allclose(np.sum(np.exp(logp), 0), 1.0, rtol=1e-4)
    want = np_discretized_logp(grid, mean, scale)
    ok = want > -60  # where float64 resolves the probability
    np.testing.assert_allclose(logp[ok], want[ok], rtol=1e-4, atol=2e-5)


def test_discretized_gaussian_gradients_are_finite():
    grid = jnp.asarray(np.arange(256) * 2 / 255 - 1, jnp.float32)[:, None]
    log_scale = jnp.asarray([-12.0, -5.0, 0.0, 6.0])
    grads = jax.jit(jax.grad(
        lambda m, s: losses.discretized_gaussian_log_likelihood(grid, m, s).sum(),
        argnums=(0, 1)))(jnp.full((4,), 0.2), log_scale)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_vdm_decoder_is_a_softmax_over_the_grid():
    grid = np.arange(256) * 2 / 255 - 1
    z = np.array([-1.2, -0.3, 0.001, 0.8])
    for lam0 in (2.0, 9.0, 13.3):
        logits = -0.5 * (z[:, None] - grid[None]) ** 2 * np.exp(lam0)
        want = logits - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1,
                                      keepdims=True)) - logits.max(1, keepdims=True)
        for k in (0, 17, 128, 255):
            got = losses.vdm_discretized_log_likelihood(
                np.full(4, grid[k], np.float32), z.astype(np.float32), np.float32(lam0))
            np.testing.assert_allclose(got, want[:, k], rtol=1e-4, atol=1e-4)


def test_prior_kl():
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(4, 5)).astype(np.float32)
    for sched in (schedules.ddpm_linear(), schedules.cosine(), schedules.edm()):
        abar = float(jax.nn.sigmoid(sched(jnp.float32(1.0))))
        want = np_gaussian_kl(np.sqrt(abar) * x0.astype(np.float64), 1 - abar, 0.0, 1.0).sum(1)
        np.testing.assert_allclose(losses.prior_kl(sched, x0), want, rtol=1e-4, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# Discrete VLB
# ----------------------------------------------------------------------------------------------


def test_vlb_terms_match_ho_et_al_in_float64():
    """KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) from Ho's posterior formulas (eqs. 6-7),
    and the decoder at timestep 0, for both fixed variances and both decoders."""
    num = 1000
    betas, abar, post_var, coef1, coef2 = np_ddpm(num)
    rng = np.random.default_rng(2)
    steps = np.array([0, 0, 1, 2, 10, 250, 500, 998, 999])
    b = steps.size
    x0 = (np.round((rng.uniform(-1, 1, size=(b, 2, 3)) + 1) * 127.5) / 127.5 - 1)
    x0_hat = np.clip(x0 + rng.normal(size=x0.shape) * 0.05, -1.5, 1.5)
    variants = [(v, d) for v in ("small", "large") for d in ("discretized", "gaussian")]

    @jax.jit
    def all_terms(x0, x0_hat, steps):
        return [losses.discrete_vlb_terms(schedules.ddpm_linear(), num, x0, x0_hat, steps,
                                          variance=v, decoder=d) for v, d in variants]

    got = all_terms(x0.astype(np.float32), x0_hat.astype(np.float32), steps)
    x_t = rng.normal(size=x0.shape)  # cancels from the KL, as it must
    for (variance, decoder), g in zip(variants, got, strict=True):
        want = np.zeros(b)
        for n, i in enumerate(steps):
            if i == 0:
                if decoder == "discretized":  # Ho/iDDPM: log-scale from beta_tilde_1
                    lp = np_discretized_logp(x0[n], x0_hat[n], np.sqrt(post_var[1]))
                else:  # sigma_0^2 / alpha_0^2
                    var = (1 - abar[0]) / abar[0]
                    lp = -0.5 * np.log(2 * np.pi * var) - (x0[n] - x0_hat[n]) ** 2 / (2 * var)
                want[n] = -lp.sum()
            else:
                mq = coef1[i] * x0[n] + coef2[i] * x_t[n]
                mp = coef1[i] * x0_hat[n] + coef2[i] * x_t[n]
                vp = post_var[i] if variance == "small" else betas[i]
                want[n] = np_gaussian_kl(mq, post_var[i], mp, vp).sum()
        np.testing.assert_allclose(g, want, rtol=2e-4, atol=1e-6, err_msg=f"{variance} {decoder}")


def np_expected_vlb(num, variance):
    """E_x E_eps of the full VLB with the optimal denoiser, in closed form (float64)."""
    betas, abar, post_var, coef1, _ = np_ddpm(num)
    total = 0.5 * (abar[-1] * (M**2 + S**2) + (1 - abar[-1]) - np.log(1 - abar[-1]) - 1)
    for i in range(num):
        a, s2 = np.sqrt(abar[i]), 1 - abar[i]
        k = a * S**2 / (abar[i] * S**2 + s2)
        err = (1 - k * a) ** 2 * S**2 + k**2 * s2  # E (x0 - x0_hat)^2
        if i == 0:
            var = s2 / abar[0]
            total += 0.5 * np.log(2 * np.pi * var) + err / (2 * var)
        else:
            vp = post_var[i] if variance == "small" else betas[i]
            total += np_gaussian_kl(0.0, post_var[i], 0.0, vp) + coef1[i] ** 2 * err / (2 * vp)
    return total


def expected_vlb(sched, num, variance):
    x, sign, w = gauss_hermite_batch()
    nll = jax.jit(losses.discrete_vlb(optimal_x0, sched, num, parameterization="x0",
                                      variance=variance, decoder="gaussian",
                                      noise_input=process.logsnr_input()))
    eps = np.broadcast_to(sign, (num, *sign.shape))
    return float(np.sum(w * np.asarray(nll(None, x, None, eps=eps), np.float64)))


def test_full_vlb_bounds_the_gaussian_nll_and_is_tight_at_T_1000():
    num = 1000
    large = expected_vlb(schedules.ddpm_linear(), num, "large")
    small = expected_vlb(schedules.ddpm_linear(), num, "small")
    np.testing.assert_allclose(large, np_expected_vlb(num, "large"), atol=2e-4)
    np.testing.assert_allclose(small, np_expected_vlb(num, "small"), atol=2e-3)
    # a bound on the true NLL, and a tight one with the large (beta) variance
    assert 0.0 <= large - ENTROPY < 2e-3
    # the small variance is a looser bound here: its reverse variance is too small at the start
    assert small - ENTROPY > large - ENTROPY


def test_full_vlb_gap_shrinks_as_T_grows():
    gaps = [expected_vlb(schedules.cosine(), num, "large") - ENTROPY for num in (10, 100, 1000)]
    assert all(g >= 0 for g in gaps)
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2]
    assert gaps[2] < 1e-3


def test_single_timestep_estimator_averages_to_the_full_sum():
    """By enumeration: the mean over all i of T L_i + L_prior, with the full sum's own noise."""
    num, b = 16, 4
    rng = np.random.default_rng(3)
    x0 = (np.round((rng.uniform(-1, 1, size=(b, 3)) + 1) * 127.5) / 127.5 - 1).astype(np.float32)
    params = toy_params(3, seed=4)
    sched = schedules.ddpm_linear(num_steps=num)  # alpha_bar(1) ~ 0.85: a sizeable prior term
    options = dict(parameterization="v", variance="large", decoder="discretized")
    full = jax.jit(losses.discrete_vlb(toy_apply, sched, num, return_terms=True, **options))
    single = losses.discrete_vlb_loss(toy_apply, sched, num, **options)
    key = jax.random.key(7)
    terms = full(params, x0, key)
    # the full sum's noise: timestep i draws from fold_in(key, i)
    eps = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), x0.shape))(
        jnp.arange(num))
    per_step = jax.jit(jax.vmap(
        lambda i, e: single(params, x0, None, timestep=jnp.full((b,), i), eps=e)))(
        jnp.arange(num), eps)
    assert np.all(terms["prior"] > 0.1)
    np.testing.assert_allclose(per_step.mean(0), terms["total"], rtol=1e-5)
    np.testing.assert_allclose(terms["total"],
                               terms["prior"] + terms["reconstruction"] + terms["diffusion"],
                               rtol=1e-6)
    np.testing.assert_allclose((per_step[0] - losses.prior_kl(sched, x0)) / num,
                               terms["reconstruction"], rtol=1e-5, atol=1e-6)


def test_vlb_finite_values_and_gradients_at_every_kind_of_step():
    num, b = 1000, 5
    sched = schedules.ddpm_linear()
    x0 = jnp.asarray(np.linspace(-1, 1, b * 3).reshape(b, 3), jnp.float32)
    eps = jax.random.normal(jax.random.key(0), x0.shape)
    steps = jnp.asarray([0, 1, 2, 998, 999])
    # the parameterizations with the (cheaper) Gaussian decoder; the 8-bit one with clipping
    cases = [(p, "gaussian", False) for p in PARAMETERIZATIONS] + [("eps", "discretized", True)]
    fns = [losses.discrete_vlb_loss(toy_apply, sched, num, parameterization=p, decoder=d,
                                    clip_x0=clip) for p, d, clip in cases]

    @jax.jit
    def values_and_grads(params, key):
        out = [jax.value_and_grad(lambda p, f=f: f(p, x0, None, timestep=steps, eps=eps).mean())(
            params) for f in fns]
        return out, fns[0](params, x0, key)  # and one draw of (timestep, eps)

    out, drawn = values_and_grads(toy_params(3), jax.random.key(1))
    for case, (value, grads) in zip(cases, out, strict=True):
        assert np.isfinite(value), case
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), case
    assert drawn.shape == (b,) and np.all(np.isfinite(drawn))


def test_vlb_bad_options():
    with pytest.raises(ValueError, match="num_steps >= 2"):
        losses.discrete_vlb(toy_apply, schedules.cosine(), 1)
    with pytest.raises(ValueError, match="reverse variance"):
        losses.discrete_vlb_loss(toy_apply, schedules.cosine(), 10, variance="learned")
    with pytest.raises(ValueError, match="decoder"):
        losses.discrete_vlb_loss(toy_apply, schedules.cosine(), 10, decoder="bernoulli")
    with pytest.raises(ValueError, match=r"\(T, \*x0.shape\)"):
        losses.discrete_vlb(toy_apply, schedules.cosine(), 10)(
            toy_params(3), jnp.zeros((2, 3)), None, eps=jnp.zeros((9, 2, 3)))


# ----------------------------------------------------------------------------------------------
# VDM ELBO
# ----------------------------------------------------------------------------------------------

LAM0, LAM1 = 13.3, -5.0  # VDM's CIFAR-10 ends: gamma_min = -13.3, gamma_max = 5


def linear_gamma(t):
    return LAM0 + (LAM1 - LAM0) * jnp.clip(jnp.asarray(t, jnp.float32), 0.0, 1.0)


def optimal_eps(params, z_t, t_input):
    """E[eps | z_t] for x ~ N(M, S^2), from VDM's default t_input,
    ``1000 (lam0 - lam) / (lam0 - lam1)``."""
    lam = (LAM0 - t_input * (LAM0 - LAM1) / 1000.0)[:, None]
    a2, s2 = jax.nn.sigmoid(lam), jax.nn.sigmoid(-lam)
    return jnp.sqrt(s2) * (z_t - jnp.sqrt(a2) * M) / (a2 * S**2 + s2)


def quadrature_batch(num_t=48):
    """(x, eps, t, weights) over Gauss-Hermite x, eps = +-1 and Gauss-Legendre t in [0, 1]."""
    z, wz = np.polynomial.hermite_e.hermegauss(3)
    tq, wt = np.polynomial.legendre.leggauss(num_t)
    xx, ee, tt = np.meshgrid(M + S * z, [1.0, -1.0], (tq + 1) / 2, indexing="ij")
    w = wz[:, None, None] / math.sqrt(2 * math.pi) * np.full((1, 2, 1), 0.5) * wt / 2
    w = w.ravel()
    return (xx.reshape(-1, 1).astype(np.float32), ee.reshape(-1, 1).astype(np.float32),
            tt.ravel().astype(np.float32), w)


def perturbed_learned():
    sched = schedules.learned(-LAM0, -LAM1)
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    params = {"w1": jnp.float32(1.0), "w2": 3.0 * jax.random.normal(k1, (1024,)),
              "b2": jax.random.normal(k2, (1024,)), "w3": 5.0 * jax.random.normal(k3, (1024,))}
    return sched, params


def test_vdm_elbo_bounds_the_gaussian_nll_within_1e_2():
    x, eps, t, w = quadrature_batch()
    # closed form: prior + recon + 1/2 int_{lam1}^{lam0} S^2 e^lam / (1 + S^2 e^lam) dlam
    a1 = 1 / (1 + math.exp(-LAM1))
    analytic = (0.5 * (a1 * (M**2 + S**2 - 1) + math.log1p(math.exp(LAM1)))
                + 0.5 * (1 + math.log(2 * math.pi) - LAM0)
                + 0.5 * (math.log1p(S**2 * math.exp(LAM0)) - math.log1p(S**2 * math.exp(LAM1))))
    learned, learned_params = perturbed_learned()
    for sched, sp in ((linear_gamma, None), (learned, learned_params)):
        kw = {} if sp is None else {"schedule_params": sp}
        elbo = jax.jit(losses.vdm_loss(optimal_eps, sched))(None, x, None, t=t, eps=eps, **kw)
        value = float(np.sum(w * np.asarray(elbo, np.float64)))
        np.testing.assert_allclose(value, analytic, atol=2e-5)
        assert 0.0 <= value - ENTROPY < 1e-2


def test_vdm_diffusion_loss_does_not_depend_on_the_schedule_between_its_ends():
    """L_inf = 1/2 int ||eps - eps_hat(z_lam, lam)||^2 dlam for every eps (VDM's invariance):
    the same for any monotone schedule with these ends, when the network sees lambda, and not
    when it sees t."""
    rng = np.random.default_rng(6)
    num_t = 96
    tq, wt = np.polynomial.legendre.leggauss(num_t)
    t = np.tile(((tq + 1) / 2).astype(np.float32), 4)
    w = np.tile(wt / 2, 4)
    x = np.repeat(rng.normal(size=(4, 3)), num_t, 0).astype(np.float32)  # fixed x and eps
    eps = np.repeat(rng.normal(size=(4, 3)), num_t, 0).astype(np.float32)
    params = toy_params(3, seed=8)
    learned, learned_params = perturbed_learned()

    def integral(sched, sp, noise_input=None):
        loss = losses.vdm_loss(toy_apply, sched, noise_input=noise_input, return_terms=True)
        kw = {} if sp is None else {"schedule_params": sp}
        d = np.asarray(jax.jit(loss)(params, x, None, t=t, eps=eps, **kw)["diffusion"])
        return (w * d).reshape(4, num_t).sum(1)

    a = integral(linear_gamma, None)
    b = integral(learned, learned_params)
    np.testing.assert_allclose(a, b, rtol=1e-4)
    c = integral(linear_gamma, None, process.time_input())
    d = integral(learned, learned_params, process.time_input())
    assert np.max(np.abs(c - d) / np.abs(c)) > 1e-2


def test_vdm_learned_schedule_gradients():
    sched = schedules.learned(num_features=64)
    sp = sched.init(jax.random.key(0))
    params = toy_params(3)
    x0 = jax.random.normal(jax.random.key(1), (16, 3)) * 0.5
    loss = losses.vdm_loss(toy_apply, sched)

    def objective(params, sp, t):
        return loss(params, x0, jax.random.key(2), schedule_params=sp, t=t).mean()

    g_net, g_sched = jax.jit(jax.grad(objective, argnums=(0, 1)))(
        params, sp, jnp.linspace(0.0, 1.0, 16))
    leaves = jax.tree.leaves(g_sched) + jax.tree.leaves(g_net)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in jax.tree.leaves(g_sched))
    with pytest.raises(ValueError, match="schedule_params"):
        loss(params, x0, jax.random.key(2))
    with pytest.raises(ValueError, match="not learned"):
        losses.vdm_loss(toy_apply, linear_gamma)(params, x0, jax.random.key(2), schedule_params=sp)


def test_vdm_discrete_time_loss():
    """VDM's discrete-time loss ``T/2 (SNR(s) - SNR(t)) ||x - x_hat||^2``, s = t - 1/T."""
    num = 20
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    eps = rng.normal(size=(5, 3)).astype(np.float32)
    i = np.array([0, 3, 7, 12, 19])
    t = ((i + 1) / num).astype(np.float32)
    params = toy_params(3, seed=10)
    loss = losses.vdm_loss(toy_apply, linear_gamma, parameterization="x0", num_steps=num,
                           return_terms=True)
    got = jax.jit(loss)(params, x, None, t=t, eps=eps)["diffusion"]
    lam_t = LAM0 + (LAM1 - LAM0) * t.astype(np.float64)
    lam_s = LAM0 + (LAM1 - LAM0) * i / num
    a, s = np.sqrt(1 / (1 + np.exp(-lam_t)))[:, None], np.sqrt(1 / (1 + np.exp(lam_t)))[:, None]
    z = a * x + s * eps
    t_input = 1000 * (LAM0 - lam_t) / (LAM0 - LAM1)
    x_hat = np.tanh(z @ np.asarray(params["w"], np.float64)
                    + np.tanh(t_input / 1000)[:, None] * np.asarray(params["u"], np.float64))
    want = 0.5 * num * (np.exp(lam_s) - np.exp(lam_t)) * np.sum((x - x_hat) ** 2, 1)
    np.testing.assert_allclose(got, want, rtol=2e-3)
    stratified = jax.jit(losses.vdm_loss(toy_apply, linear_gamma, num_steps=num))(
        params, jnp.zeros((40, 3)), jax.random.key(0))
    assert np.all(np.isfinite(stratified))


def test_vdm_discretized_decoder_reconstruction():
    """With lambda_0 = 13.3, z_0 / alpha_0 has std ~0.0013 around x, well inside the 1/255
    half-bin: the 8-bit decoder is nearly certain, so L_recon ~ 0; 6 nats less, it is not."""
    grid = np.arange(256) * 2 / 255 - 1
    rng = np.random.default_rng(11)
    x0 = rng.choice(grid, size=(8, 4)).astype(np.float32)
    terms = jax.jit(losses.vdm_loss(toy_apply, linear_gamma, decoder="discretized",
                                    return_terms=True))(toy_params(4), x0, jax.random.key(0))
    assert np.all(np.isfinite(terms["total"]))
    assert np.all(terms["reconstruction"] >= 0) and np.mean(terms["reconstruction"]) < 1e-2
    coarse = jax.jit(losses.vdm_loss(toy_apply, lambda t: linear_gamma(t) - 6.0,
                                     decoder="discretized", return_terms=True))(
        toy_params(4), x0, jax.random.key(0))
    assert np.all(coarse["reconstruction"] > 0.1)


def test_vdm_finite_values_and_gradients_at_the_ends():
    x0 = jax.random.normal(jax.random.key(0), (6, 3))
    eps = jax.random.normal(jax.random.key(1), (6, 3))
    t = jnp.asarray([0.0, 1e-6, 1e-3, 0.999, 1 - 1e-6, 1.0])
    # (the learned schedule's gradients at the ends: test_vdm_learned_schedule_gradients)
    fns = [losses.vdm_loss(toy_apply, schedules.cosine(), parameterization=p)
           for p in PARAMETERIZATIONS]

    @jax.jit
    def values_and_grads(params):
        return [jax.value_and_grad(lambda p, f=f: f(p, x0, None, t=t, eps=eps).mean())(params)
                for f in fns]

    for name, (value, grads) in zip(PARAMETERIZATIONS, values_and_grads(toy_params(3)),
                                    strict=True):
        assert np.isfinite(value), name
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), name


def test_vdm_variance_gradient_for_the_schedule():
    sched = schedules.learned(num_features=16)
    sp = sched.init(jax.random.key(0))
    params = toy_params(3)
    x0 = jax.random.normal(jax.random.key(1), (8, 3)) * 0.5
    loss = losses.vdm_loss(toy_apply, sched)
    key = jax.random.key(2)

    @jax.jit
    def both(params, sp):
        mean, (g_net, g_sched) = losses.vdm_value_and_grads(loss, params, sp, x0, key)
        direct = jax.grad(lambda p: loss(p, x0, key, schedule_params=sp).mean())(params)
        squared = jax.grad(lambda s: jnp.mean(loss(params, x0, key, schedule_params=s) ** 2))(sp)
        return mean, g_net, g_sched, direct, squared, loss(params, x0, key, schedule_params=sp)

    mean, g_net, g_sched, direct, squared, values = both(params, sp)
    np.testing.assert_allclose(mean, np.mean(values), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_net) + jax.tree.leaves(g_sched),
                    jax.tree.leaves(direct) + jax.tree.leaves(squared), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Issue 16: learned-range variance and the hybrid loss (Improved DDPM)
# ----------------------------------------------------------------------------------------------


def toy2_params(dim, seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(dim, 2 * dim)) / math.sqrt(dim), "u": rng.normal(size=2 * dim)}


def toy2_apply(params, x_t, t_input, xp=jnp):
    """A 2C toy network on (B, H, W) data with W channels: prediction, then v, on the last axis."""
    return xp.tanh(x_t @ params["w"] + xp.tanh(t_input / 1000.0)[:, None, None] * params["u"])


@pytest.mark.parametrize("param", ["eps", "v"])
def test_hybrid_loss_matches_numpy_in_float64(param):
    """L_simple + lambda T L_i / (D log 2) from Ho's posterior formulas and iDDPM's eq. 15, for
    the decoder (i = 0) and KL steps."""
    num, lam_w = 1000, 0.001
    betas, abar, post_var, coef1, coef2 = np_ddpm(num)
    rng = np.random.default_rng(5)
    steps = np.array([0, 1, 7, 500, 999])
    b, shape = steps.size, (steps.size, 2, 3)
    x0 = np.round((rng.uniform(-1, 1, size=shape) + 1) * 127.5) / 127.5 - 1
    eps = rng.normal(size=shape)
    p64 = toy2_params(3, seed=6)
    p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
    loss = losses.hybrid_loss(toy2_apply, schedules.ddpm_linear(), num, parameterization=param,
                              target=param, vlb_weight=lam_w, return_terms=True)
    got = jax.jit(loss)(p32, x0.astype(np.float32), None, timestep=steps,
                        eps=eps.astype(np.float32))
    want_total, want_simple, want_vlb = np.zeros(b), np.zeros(b), np.zeros(b)
    for n, i in enumerate(steps):
        a, s = math.sqrt(abar[i]), math.sqrt(1 - abar[i])
        x_t = a * x0[n] + s * eps[n]
        out = toy2_apply(p64, x_t[None], np.array([i + 1.0]), np)[0]
        pred, frac = out[..., :3], (out[..., 3:] + 1) / 2
        x0_hat = (x_t - s * pred) / a if param == "eps" else a * x_t - s * pred
        true = eps[n] if param == "eps" else a * eps[n] - s * x0[n]
        want_simple[n] = np.mean((true - pred) ** 2)
        if i == 0:
            logvar = frac * np.log(betas[0]) + (1 - frac) * np.log(post_var[1])
            term = -np_discretized_logp(x0[n], x0_hat, np.exp(0.5 * logvar)).sum()
        else:
            logvar = frac * np.log(betas[i]) + (1 - frac) * np.log(post_var[i])
            mq = coef1[i] * x0[n] + coef2[i] * x_t
            mp = coef1[i] * x0_hat + coef2[i] * x_t
            term = np_gaussian_kl(mq, post_var[i], mp, np.exp(logvar)).sum()
        want_vlb[n] = num * term / (6 * math.log(2))
        want_total[n] = want_simple[n] + lam_w * want_vlb[n]
    np.testing.assert_allclose(got["simple"], want_simple, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["vlb"], want_vlb, rtol=5e-4, err_msg=param)
    np.testing.assert_allclose(got["total"], want_total, rtol=5e-4, err_msg=param)


def test_hybrid_vlb_term_trains_only_the_variance():
    """The stop-gradient on the mean: d L_vlb / d(mean output) = 0 and d L_simple / dv = 0,
    while the plain learned-range VLB (no stop-gradient) does move the mean."""
    num, shape = 50, (4, 3)
    sched = schedules.ddpm_linear(num_steps=num)
    rng = np.random.default_rng(1)
    x0 = jnp.asarray(np.round((rng.uniform(-1, 1, size=shape) + 1) * 127.5) / 127.5 - 1,
                     jnp.float32)
    eps, steps = jnp.asarray(rng.normal(size=shape), jnp.float32), jnp.array([0, 1, 20, 49])
    params = {"mean": jnp.asarray(rng.normal(size=shape), jnp.float32),
              "v": jnp.asarray(rng.uniform(-1, 1, size=shape), jnp.float32)}

    def apply(p, x_t, t_input):  # the outputs are the params themselves
        return jnp.concatenate([p["mean"], p["v"]], axis=-1) + 0.0 * x_t.sum()

    hybrid = losses.hybrid_loss(apply, sched, num, decoder="gaussian", return_terms=True)
    vlb_only = losses.discrete_vlb_loss(apply, sched, num, variance="learned_range",
                                        decoder="gaussian")

    def sums(q):
        terms = hybrid(q, x0, None, timestep=steps, eps=eps)
        plain = vlb_only(q, x0, None, timestep=steps, eps=eps)
        return jnp.stack([terms["vlb"].sum(), terms["simple"].sum(), plain.sum()])

    g = jax.jit(jax.jacrev(sums))(params)
    g_vlb, g_simple, g_plain = ({k: g[k][n] for k in g} for n in range(3))
    np.testing.assert_array_equal(g_vlb["mean"], 0.0)
    np.testing.assert_array_equal(g_simple["v"], 0.0)
    assert np.all(np.abs(g_vlb["v"]) > 0) and np.all(np.abs(g_simple["mean"]) > 0)
    assert np.all(np.abs(g_plain["mean"]) > 0)


def test_learned_range_ends_are_the_fixed_variances():
    """v = -1 is the small variance (beta_tilde), v = +1 the large one (beta), for every KL
    step; at timestep 0, v = -1 is the discretized decoder with beta_tilde_1."""
    num, sched = 1000, schedules.ddpm_linear()
    rng = np.random.default_rng(8)
    x0 = jnp.asarray(np.round((rng.uniform(-1, 1, size=(4, 3)) + 1) * 127.5) / 127.5 - 1,
                     jnp.float32)
    x0_hat = x0 + 0.03 * jnp.asarray(rng.normal(size=x0.shape), jnp.float32)
    steps = jnp.array([0, 3, 400, 999])

    @jax.jit
    def terms(v):
        return [losses.discrete_vlb_terms(sched, num, x0, x0_hat, steps, variance=k, v=v)
                for k in ("learned_range",)] + [
            losses.discrete_vlb_terms(sched, num, x0, x0_hat, steps, variance=k)
            for k in ("small", "large")]

    low, small, large = terms(-jnp.ones_like(x0))
    high = terms(jnp.ones_like(x0))[0]
    np.testing.assert_allclose(low, small, rtol=1e-5)
    np.testing.assert_allclose(high[1:], large[1:], rtol=1e-5, atol=1e-9)  # tiny KLs


def test_learned_range_bad_input():
    sched, x0 = schedules.ddpm_linear(num_steps=10), jnp.zeros((2, 3))
    steps = jnp.array([0, 1])
    with pytest.raises(ValueError, match="needs the model's v"):
        losses.discrete_vlb_terms(sched, 10, x0, x0, steps, variance="learned_range")
    with pytest.raises(ValueError, match="variance='learned_range'"):
        losses.discrete_vlb_terms(sched, 10, x0, x0, steps, v=x0)
    with pytest.raises(ValueError, match="decoder_variance does not apply"):
        losses.discrete_vlb(toy_apply, sched, 10, variance="learned_range",
                            decoder_variance="marginal")
    with pytest.raises(ValueError, match="vlb_weight"):
        losses.hybrid_loss(toy_apply, sched, 10, vlb_weight=-1.0)
    with pytest.raises(ValueError, match="2C channels"):
        jax.eval_shape(lambda p: losses.hybrid_loss(toy_apply, sched, 10)(
            p, x0, None, timestep=steps, eps=x0), toy_params(3))
