"""Flow matching: the path, the loss, sampling and likelihood, against Gaussian closed forms.

For data ``x0 ~ N(m, S)`` and ``x_t = a x0 + s eps`` everything is known in closed form (written
out here from the definitions, not from the module): ``x_t ~ N(a m, a^2 S + s^2 I)``, the
marginal velocity ``E[a' x0 + s' eps | x_t]`` is affine in ``x_t``, and the flow-matching loss
at that velocity is the conditional variance, per eigenvalue ``l`` of S:
``Var(a' x0 + s' eps | x_t) = (a' s - a s')^2 l / (a^2 l + s^2)``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
from jaxprs import loop_counts

from gen.diffusion import flow_matching as fm
from gen.diffusion.parameterization import rectified_flow_coefficients

# ----------------------------------------------------------------------------------------------
# Closed forms
# ----------------------------------------------------------------------------------------------


def _path(t, sigma_min):
    """CondOT written out: (alpha, sigma, alpha', sigma'), each shaped like t."""
    return 1.0 - t, sigma_min + (1.0 - sigma_min) * t, -1.0 + 0 * t, 1.0 - sigma_min + 0 * t


class Gaussian:
    def __init__(self, dim=2, seed=0):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.mean = rng.normal(size=dim) * 2.0
        r = rng.normal(size=(dim, dim))
        self.cov = r @ r.T / dim + 0.3 * np.eye(dim)
        self.lam, self.q = np.linalg.eigh(self.cov)

    def velocity(self, x, t, sigma_min=0.0, mean=None):
        """The marginal velocity at a batch x (B, D) and times t (B,) or a scalar."""
        mean = self.mean if mean is None else mean
        t = jnp.asarray(t, x.dtype)
        a, s, da, ds = _path(t[..., None, None], sigma_min)
        lam, q = jnp.asarray(self.lam, x.dtype), jnp.asarray(self.q, x.dtype)
        rate = (a * da * lam + s * ds) / (a**2 * lam + s**2)  # (..., 1, D) eigen-rates
        centered = (x - a[..., 0] * mean) @ q
        return da[..., 0] * mean + (centered * rate[..., 0, :]) @ q.T

    def apply(self, sigma_min=0.0):
        """A "network" apply(params, x_t, t, labels=None) returning the exact velocity."""

        def apply(params, x, t, labels=None):
            assert t.shape == x.shape[:1]
            return self.velocity(x, t, sigma_min) + params

        return apply

    def irreducible_loss(self, sigma_min, time_density=None):
        """E_t[(1/D) sum_l (a' s - a s')^2 l / (a^2 l + s^2)] by quadrature."""

        def integrand(t):
            a, s, da, ds = _path(t, sigma_min)
            value = np.mean((da * s - a * ds) ** 2 * self.lam / (a**2 * self.lam + s**2))
            return value * (1.0 if time_density is None else time_density(t))

        return scipy.integrate.quad(integrand, 0.0, 1.0, epsabs=1e-12, limit=200)[0]


def _logit_normal_pdf(loc, scale):
    def pdf(t):
        if t <= 0.0 or t >= 1.0:
            return 0.0
        z = (scipy.special.logit(t) - loc) / scale
        return scipy.stats.norm.pdf(z) / (scale * t * (1.0 - t))

    return pdf


# ----------------------------------------------------------------------------------------------
# Path and times
# ----------------------------------------------------------------------------------------------


def test_condot_coefficients():
    t = jnp.linspace(0.0, 1.0, 7)
    for got, want in zip(fm.condot_coefficients(t), rectified_flow_coefficients(t), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    c = fm.condot_coefficients(jnp.asarray([0.0, 1.0]), sigma_min=0.1)
    np.testing.assert_allclose(c.alpha, [1.0, 0.0])
    np.testing.assert_allclose(c.sigma, [0.1, 1.0])
    with jax.enable_x64(True):
        t64 = jnp.asarray([0.3, 0.8], jnp.float64)
        c = fm.condot_coefficients(t64, sigma_min=0.2)
        assert c.alpha.dtype == jnp.float64
        _, (d_alpha, d_sigma) = jax.jvp(
            lambda u: fm.condot_coefficients(u, 0.2)[:2], (t64,), (jnp.ones_like(t64),)
        )
        np.testing.assert_allclose(c.d_alpha, d_alpha)
        np.testing.assert_allclose(c.d_sigma, d_sigma)


def test_conditional_velocity_is_the_time_derivative_of_the_path():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x0, eps = (jnp.asarray(rng.normal(size=(3, 2, 2))) for _ in range(2))
        t, h = jnp.asarray([0.2, 0.5, 0.9]), 1e-6
        _, u = fm.conditional_path(x0, eps, t, sigma_min=0.05)
        fd = (fm.conditional_path(x0, eps, t + h, 0.05)[0]
              - fm.conditional_path(x0, eps, t - h, 0.05)[0]) / (2 * h)
        np.testing.assert_allclose(u, fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(fm.conditional_path(x0, eps, jnp.ones(3), 0.05)[0], eps)


@pytest.mark.parametrize("distribution,loc,scale", [("uniform", 0, 1), ("logit_normal", 0.5, 0.8)])
def test_time_distributions(distribution, loc, scale):
    t = fm.sample_time(jax.random.key(0), (4000,), distribution, loc=loc, scale=scale)
    assert t.shape == (4000,) and bool(jnp.all((t >= 0) & (t <= 1)))
    if distribution == "uniform":
        cdf = scipy.stats.uniform.cdf
    else:
        cdf = lambda u: scipy.stats.norm.cdf((scipy.special.logit(u) - loc) / scale)
    assert scipy.stats.kstest(np.asarray(t, np.float64), cdf).pvalue > 1e-3


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sigma_min,distribution", [(0.0, "uniform"), (0.1, "uniform"), (0.0, "logit_normal")]
)
def test_loss_at_the_exact_velocity_is_the_irreducible_variance(sigma_min, distribution):
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=1)
        n = 100_000
        x0 = g.mean + np.random.default_rng(2).normal(size=(n, 2)) @ np.linalg.cholesky(g.cov).T
        loss = fm.make_loss(g.apply(sigma_min), sigma_min=sigma_min,
                            time_distribution=distribution, logit_loc=0.3, logit_scale=0.7)
        key = jax.random.key(3)
        per_example = jax.jit(loss)(jnp.zeros(2), jnp.asarray(x0), key)
        assert per_example.shape == (n,)
        density = _logit_normal_pdf(0.3, 0.7) if distribution == "logit_normal" else None
        expected = g.irreducible_loss(sigma_min, density)
        stderr = float(jnp.std(per_example)) / math.sqrt(n)
        assert abs(float(jnp.mean(per_example)) - expected) < 4 * stderr, (expected, stderr)

        # Any other field costs exactly its mean squared distance more (same noise and times).
        for delta in ([0.3, -0.2], [0.05, 0.0]):
            worse = jax.jit(loss)(jnp.asarray(delta), jnp.asarray(x0), key)
            excess = worse - per_example
            assert float(jnp.mean(excess)) > 0
            gap = float(jnp.mean(excess)) - np.mean(np.square(delta))
            assert abs(gap) < 4 * float(jnp.std(excess)) / math.sqrt(n)


def test_loss_prefers_the_exact_velocity_to_a_scaled_one():
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=4)
        noise = np.random.default_rng(5).normal(size=(20_000, 2))
        x0 = jnp.asarray(g.mean + noise @ np.linalg.cholesky(g.cov).T)
        exact = g.apply()
        for scale in (0.9, 1.1):
            scaled = lambda p, x, t, labels=None, scale=scale: scale * exact(p, x, t)
            key = jax.random.key(6)
            base = fm.make_loss(exact)(0.0, x0, key)
            assert float(jnp.mean(fm.make_loss(scaled)(0.0, x0, key))) > float(jnp.mean(base))


def test_loss_shapes_labels_and_label_dropout():
    seen = {}

    def apply(params, x, t, labels=None):
        seen["labels"] = labels
        return jnp.zeros_like(x) + 100.0 * (labels == 10)[:, None, None, None]

    x0 = jnp.zeros((4000, 4, 4, 3))
    labels = jnp.arange(4000) % 10
    out = fm.make_loss(apply, label_dropout=0.3, null_label=10)(None, x0, jax.random.key(0), labels)
    assert out.shape == (4000,)
    dropped = float(jnp.mean(out > 1000.0))
    assert abs(dropped - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)
    fm.make_loss(lambda p, x, t: x)(None, x0[:2], jax.random.key(1))  # no labels: not passed


def test_ot_coupling_pairs_nearby_points():
    rng = np.random.default_rng(7)
    x0 = jnp.stack(jnp.meshgrid(jnp.arange(8.0), jnp.arange(8.0)), -1).reshape(64, 2)
    perm = rng.permutation(64)
    eps = x0[perm] + 0.01 * jnp.asarray(rng.normal(size=(64, 2)))
    paired = fm.ot_coupling(jax.random.key(0), x0, eps, reg=0.002, num_iters=300)
    assert float(jnp.mean(jnp.sum((paired - x0) ** 2, -1) < 1e-2)) > 0.95
    independent = float(jnp.mean(jnp.sum((eps - x0) ** 2, -1)))
    assert float(jnp.mean(jnp.sum((paired - x0) ** 2, -1))) < 0.01 * independent
    out = fm.make_loss(lambda p, x, t: x, coupling="ot")(None, x0, jax.random.key(1))
    assert out.shape == (64,) and bool(jnp.all(jnp.isfinite(out)))


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def test_sampling_the_exact_field_reproduces_the_data_distribution():
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=8)
        n = 20_000
        noise = jax.random.normal(jax.random.key(9), (n, 2), jnp.float64)
        velocity = fm.velocity_field(g.apply(), jnp.zeros(2))
        x = np.asarray(fm.sample(velocity, noise, method="dopri5", rtol=1e-7, atol=1e-7))
        std = np.sqrt(np.diag(g.cov))
        np.testing.assert_array_less(np.abs(x.mean(0) - g.mean), 5 * std / math.sqrt(n))
        cov_se = np.sqrt((np.outer(np.diag(g.cov), np.diag(g.cov)) + g.cov**2) / n)
        np.testing.assert_array_less(np.abs(np.cov(x.T) - g.cov), 5 * cov_se)


def test_euler_heun_and_dopri5_agree_as_steps_grow():
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=10)
        noise = jax.random.normal(jax.random.key(11), (64, 2), jnp.float64)
        velocity = fm.velocity_field(g.apply(0.01), jnp.zeros(2), sigma_min=0.01)
        ref = fm.sample(velocity, noise, method="dopri5", rtol=1e-10, atol=1e-10)
        error = lambda method, n: float(
            jnp.max(jnp.abs(fm.sample(velocity, noise, method=method, num_steps=n) - ref))
        )
        errors = {m: [error(m, n) for n in (8, 16, 32)] for m in ("euler", "heun")}
        for method, order in (("euler", 1), ("heun", 2)):
            e = errors[method]
            np.testing.assert_allclose([e[0] / e[1], e[1] / e[2]], [2.0**order] * 2, rtol=0.25)
        assert errors["heun"][-1] < 1e-3
        loose = fm.sample(velocity, noise, method="dopri5", rtol=1e-4, atol=1e-4)
        assert 0 < float(jnp.max(jnp.abs(loose - ref))) < 1e-2


def test_classifier_free_guidance():
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=12)
        means = jnp.asarray([[-3.0, 0.0], [3.0, 1.0], [0.0, 0.0]])  # class 2 is the null label

        def apply(params, x, t, labels):
            return g.velocity(x, t, mean=means[labels]) * params

        noise = jax.random.normal(jax.random.key(13), (6, 2), jnp.float64)
        labels = jnp.asarray([0, 1, 0, 1, 0, 1])
        t = jnp.asarray(0.4)
        tb = jnp.full((6,), 0.4)
        cond, uncond = apply(1.0, noise, tb, labels), apply(1.0, noise, tb, jnp.full((6,), 2))
        for w in (0.0, 1.0, 3.0):
            guided = fm.velocity_field(apply, 1.0, labels=labels, guidance_scale=w, null_label=2)
            np.testing.assert_allclose(guided(t, noise), uncond + w * (cond - uncond), atol=1e-12)
        plain = fm.velocity_field(apply, 1.0, labels=labels)
        np.testing.assert_allclose(plain(t, noise), cond, atol=1e-12)
        # Class-conditional sampling lands on the class means.
        many = jax.random.normal(jax.random.key(14), (2000, 2), jnp.float64)
        ys = jnp.arange(2000) % 2
        x = fm.sample(fm.velocity_field(apply, 1.0, labels=ys), many, method="heun", num_steps=64)
        for k in (0, 1):
            np.testing.assert_allclose(x[ys == k].mean(0), means[k], atol=0.2)
    with pytest.raises(ValueError, match="needs class labels"):
        fm.velocity_field(apply, 1.0, guidance_scale=2.0, null_label=2)
    with pytest.raises(ValueError, match="null_label"):
        fm.velocity_field(apply, 1.0, labels=labels, guidance_scale=2.0)


def test_samplers_are_one_loop_each():
    g = Gaussian(dim=2, seed=15)
    velocity = fm.velocity_field(g.apply(), jnp.zeros(2, jnp.float32))
    noise = jnp.ones((4, 2))
    for method, expected in (("euler", {"scan": 1}), ("heun", {"scan": 1}),
                             ("dopri5", {"while": 2})):  # diffrax's step loop
        fn = lambda x, method=method: fm.sample(velocity, x, method=method, num_steps=10)
        assert loop_counts(jax.make_jaxpr(fn)(noise).jaxpr) == expected, method
        jax.jit(fn).lower(noise).compile()


# ----------------------------------------------------------------------------------------------
# Likelihood
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_exact_log_likelihood_of_the_exact_field(sigma_min):
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=16)
        x = g.mean + np.random.default_rng(17).normal(size=(5, 2)) * 2.0
        out = fm.log_likelihood(g.apply(sigma_min), jnp.zeros(2), jnp.asarray(x),
                                sigma_min=sigma_min, rtol=1e-9, atol=1e-9)
        smoothed = g.cov + sigma_min**2 * np.eye(2)  # p_0 = data * N(0, sigma_min^2 I)
        expected = scipy.stats.multivariate_normal(g.mean, smoothed).logpdf(x)
        np.testing.assert_allclose(out.log_prob, expected, rtol=0, atol=1e-4)


def test_class_conditional_log_likelihood():
    with jax.enable_x64(True):
        g = Gaussian(dim=2, seed=18)
        means = jnp.asarray([[-2.0, 0.5], [1.0, 2.0]])
        apply = lambda p, x, t, labels: g.velocity(x, t, mean=means[labels])
        x = jnp.asarray(np.random.default_rng(19).normal(size=(4, 2)))
        labels = jnp.asarray([0, 1, 1, 0])
        out = fm.log_likelihood(apply, None, x, labels=labels, rtol=1e-9, atol=1e-9)
        expected = [scipy.stats.multivariate_normal(np.asarray(means[y]), g.cov).logpdf(x[i])
                    for i, y in enumerate(np.asarray(labels))]
        np.testing.assert_allclose(out.log_prob, expected, rtol=0, atol=1e-4)
        hutch = fm.log_likelihood(apply, None, x, labels=labels, method="hutchinson",
                                  key=jax.random.key(0), num_probes=64, rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(hutch.log_prob, expected, rtol=0, atol=0.5)


def test_bad_input():
    apply = lambda p, x, t: x
    with pytest.raises(ValueError, match="time distribution"):
        fm.make_loss(apply, time_distribution="beta")
    with pytest.raises(ValueError, match="coupling"):
        fm.make_loss(apply, coupling="hungarian")
    with pytest.raises(ValueError, match="sigma_min"):
        fm.make_loss(apply, sigma_min=1.0)
    with pytest.raises(ValueError, match="null_label"):
        fm.make_loss(apply, label_dropout=0.1)
    with pytest.raises(ValueError, match="unknown ODE method"):
        fm.sample(fm.velocity_field(apply, None), jnp.ones((2, 2)), method="rk45")
    with pytest.raises(ValueError, match="parameterization"):
        fm.velocity_field(apply, None, parameterization="noise")
