"""ODE solvers and likelihoods, checked in float64 against closed-form solutions and densities.

References are written from their definitions here (matrix exponentials from scipy, Gaussian
marginals of ``x_t = alpha x0 + sigma eps`` for Gaussian data), not from the module's code.
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from jaxprs import loop_counts

from gen.diffusion import ode, schedules
from gen.diffusion.parameterization import convert, vp_coefficients

# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _stable_matrix(dim, seed):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(dim, dim))
    skew = rng.normal(size=(dim, dim))
    return -(b @ b.T) / dim - 0.3 * np.eye(dim) + 0.8 * (skew - skew.T)


class Gaussian:
    """Data ``x0 ~ N(m, S)`` (full covariance) pushed along ``x_t = a x0 + s eps``.

    ``x_t ~ N(a m, a^2 S + s^2 I)``; with ``S = Q diag(lam) Q^T``:

    - posterior mean ``E[x0 | x_t] = m + a S (a^2 S + s^2)^-1 (x_t - a m)``;
    - marginal velocity ``E[a' x0 + s' eps | x_t] = a' m + (a a' S + s s')(a^2 S + s^2)^-1
      (x_t - a m)``, whose divergence integrates to ``log det`` of the covariance ratio.
    """

    def __init__(self, dim=3, seed=0):
        rng = np.random.default_rng(seed)
        self.mean = rng.normal(size=dim) * 1.5
        r = rng.normal(size=(dim, dim))
        self.cov = r @ r.T / dim + 0.2 * np.eye(dim)
        self.lam, self.q = np.linalg.eigh(self.cov)

    def _mat(self, diag):
        q = jnp.asarray(self.q)
        return (q * diag) @ q.T

    def posterior_mean(self, x, c):
        lam = jnp.asarray(self.lam)
        gain = self._mat(c.alpha * lam / (c.alpha**2 * lam + c.sigma**2))
        return self.mean + (x - c.alpha * self.mean) @ gain.T

    def velocity(self, x, c):
        lam = jnp.asarray(self.lam)
        rate = (c.alpha * c.d_alpha * lam + c.sigma * c.d_sigma) / (c.alpha**2 * lam + c.sigma**2)
        return c.d_alpha * self.mean + (x - c.alpha * self.mean) @ self._mat(rate).T

    def log_prob(self, x, alpha, sigma):
        cov = alpha**2 * self.cov + sigma**2 * np.eye(len(self.mean))
        return scipy.stats.multivariate_normal(alpha * self.mean, cov).logpdf(np.asarray(x))

    def jax_log_prob(self, alpha, sigma):
        """``log N(z; a m, a^2 S + s^2 I)`` of one event, for a base distribution."""
        cov = jnp.asarray(alpha**2 * self.cov + sigma**2 * np.eye(len(self.mean)))
        mean = jnp.asarray(alpha * self.mean)
        return lambda z: jax.scipy.stats.multivariate_normal.logpdf(z, mean, cov)


def _rf(t):
    """Rectified flow coefficients, written out: alpha = 1 - t, sigma = t."""
    from gen.diffusion.parameterization import Coefficients

    t = jnp.asarray(t, jnp.float64)
    return Coefficients(1.0 - t, t, -jnp.ones_like(t), jnp.ones_like(t))


# ----------------------------------------------------------------------------------------------
# dopri5
# ----------------------------------------------------------------------------------------------


def test_dopri5_linear_system_matches_expm():
    with jax.enable_x64(True):
        a = _stable_matrix(4, 0)
        x0 = np.random.default_rng(1).normal(size=4)
        f = lambda t, x: jnp.asarray(a) @ x
        sol = jax.jit(lambda x: ode.dopri5(f, x, 0.0, 1.5, rtol=1e-10, atol=1e-10))(x0)
        assert bool(sol.success) and float(sol.t) == 1.5
        np.testing.assert_allclose(sol.y, scipy.linalg.expm(1.5 * a) @ x0, rtol=0, atol=1e-8)


def test_dopri5_pytree_state_equals_flat_state():
    with jax.enable_x64(True):
        a = jnp.asarray(_stable_matrix(4, 2))
        x0 = jnp.asarray(np.random.default_rng(3).normal(size=4))

        def tree_field(t, s):
            d = a @ jnp.concatenate([s["u"], s["w"][0].reshape(-1)])
            return {"u": d[:1], "w": (d[1:].reshape(1, 3),)}

        tree0 = {"u": x0[:1], "w": (x0[1:].reshape(1, 3),)}
        tree = ode.dopri5(tree_field, tree0, 0.0, 1.0, rtol=1e-7, atol=1e-7)
        flat = ode.dopri5(lambda t, x: a @ x, x0, 0.0, 1.0, rtol=1e-7, atol=1e-7)
        joined = jnp.concatenate([tree.y["u"], tree.y["w"][0].reshape(-1)])
        np.testing.assert_allclose(joined, flat.y, rtol=1e-12, atol=1e-12)
        assert int(tree.num_steps) == int(flat.num_steps)


@pytest.mark.parametrize("t0,t1", [(2.0, -1.0), (-1.0, 2.0)])
def test_dopri5_time_dependent_both_directions(t0, t1):
    # dx/dt = cos(t) x  =>  x(t1) = x(t0) exp(sin t1 - sin t0); catches a wrongly signed t or h.
    with jax.enable_x64(True):
        x0 = jnp.asarray([1.0, -2.0])
        sol = ode.dopri5(lambda t, x: jnp.cos(t) * x, x0, t0, t1, rtol=1e-10, atol=1e-10)
        expected = np.asarray(x0) * math.exp(math.sin(t1) - math.sin(t0))
        assert bool(sol.success) and float(sol.t) == t1
        np.testing.assert_allclose(sol.y, expected, rtol=1e-8)


def test_dopri5_backwards_undoes_forwards():
    with jax.enable_x64(True):
        a = _stable_matrix(3, 4)
        x0 = np.random.default_rng(5).normal(size=3)
        xt = scipy.linalg.expm(1.0 * a) @ x0
        sol = ode.dopri5(lambda t, x: jnp.asarray(a) @ x, xt, 1.0, 0.0, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(sol.y, x0, atol=1e-8)


def test_dopri5_error_shrinks_with_tolerance_and_steps_grow_like_tol_to_the_minus_one_fifth():
    with jax.enable_x64(True):
        a = _stable_matrix(4, 6)
        x0 = np.random.default_rng(7).normal(size=4)
        exact = scipy.linalg.expm(2.0 * a) @ x0
        f = lambda t, x: jnp.asarray(a) @ x
        run = jax.jit(lambda tol: ode.dopri5(f, x0, 0.0, 2.0, rtol=tol, atol=tol))
        tols = [1e-3, 1e-5, 1e-7, 1e-9]
        sols = [run(tol) for tol in tols]
        errors = [float(np.max(np.abs(np.asarray(s.y) - exact))) for s in sols]
        steps = [int(s.num_steps) for s in sols]
        assert all(bool(s.success) for s in sols)
        assert all(e1 > e2 for e1, e2 in itertools.pairwise(errors)), errors
        assert all(e <= 50 * tol for e, tol in zip(errors, tols, strict=True)), errors
        assert all(s1 < s2 for s1, s2 in itertools.pairwise(steps)), steps
        assert 3 <= steps[0] <= 40, steps
        # A 5th-order method needs ~ tol^(-1/5) steps: 1e6 in tolerance is ~16x in steps.
        assert 6 <= steps[-1] / steps[0] <= 40, steps
        for s in sols:
            assert int(s.num_evals) == 2 + 6 * (int(s.num_steps) + int(s.num_rejected))


def test_dopri5_max_steps_cap_reports_failure():
    a = jnp.asarray(_stable_matrix(3, 8), jnp.float32)
    sol = ode.dopri5(lambda t, x: a @ x, jnp.ones(3), 0.0, 5.0, rtol=1e-6, atol=1e-6, max_steps=3)
    assert not bool(sol.success) and int(sol.status) == ode.MAX_STEPS_REACHED
    assert int(sol.num_steps) + int(sol.num_rejected) == 3 and float(sol.t) < 5.0


def test_dopri5_nan_field_stops_with_a_status():
    sol = ode.dopri5(lambda t, x: x * jnp.nan, jnp.ones(2), 0.0, 1.0, max_steps=10_000)
    assert not bool(sol.success)
    assert int(sol.num_steps) == 0 and int(sol.num_rejected) < 10_000


def test_dopri5_empty_interval_and_first_step():
    sol = ode.dopri5(lambda t, x: -x, jnp.ones(2), 0.5, 0.5)
    assert bool(sol.success) and int(sol.num_steps) == 0
    np.testing.assert_array_equal(sol.y, jnp.ones(2))
    given = ode.dopri5(lambda t, x: -x, jnp.ones(2), 0.0, 1.0, first_step=0.01)
    np.testing.assert_allclose(given.y, np.exp(-1.0) * np.ones(2), rtol=1e-4)
    assert int(given.num_evals) == 1 + 6 * (int(given.num_steps) + int(given.num_rejected))


def test_dopri5_under_vmap_keeps_each_solution():
    with jax.enable_x64(True):
        rates = jnp.asarray([0.1, 1.0, 10.0])
        solve = lambda k: ode.dopri5(lambda t, x: -k * x, jnp.ones(()), 0.0, 1.0, rtol=1e-9,
                                     atol=1e-9)
        sols = jax.jit(jax.vmap(solve))(rates)
        np.testing.assert_allclose(sols.y, np.exp(-np.asarray(rates)), rtol=1e-7, atol=1e-9)
        steps = np.asarray(sols.num_steps)
        assert steps[0] < steps[2]  # each member chooses its own step sizes


# ----------------------------------------------------------------------------------------------
# Fixed-step solvers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2)])
@pytest.mark.parametrize("backwards", [False, True])
def test_fixed_step_order_of_convergence(method, order, backwards):
    with jax.enable_x64(True):
        t0, t1 = (1.5, 0.0) if backwards else (0.0, 1.5)
        x0 = jnp.asarray([1.0, 0.5])
        exact = np.asarray(x0) * math.exp(math.sin(t1) - math.sin(t0))
        solver = getattr(ode, method)
        errors = []
        for n in (20, 40, 80):
            x1 = solver(lambda t, x: jnp.cos(t) * x, x0, jnp.linspace(t0, t1, n + 1))
            errors.append(float(np.max(np.abs(np.asarray(x1) - exact))))
        ratios = [errors[0] / errors[1], errors[1] / errors[2]]
        np.testing.assert_allclose(ratios, [2.0**order] * 2, rtol=0.15)


def test_trajectory_and_solve_dispatch():
    ts = jnp.linspace(1.0, 0.0, 6)
    path = ode.heun(lambda t, x: -x, jnp.ones(2), ts, trajectory=True)
    assert path.shape == (6, 2)
    np.testing.assert_array_equal(path[0], jnp.ones(2))
    np.testing.assert_allclose(path[-1], ode.heun(lambda t, x: -x, jnp.ones(2), ts))
    for method in ode.METHODS:
        out = ode.solve(lambda t, x: -x, jnp.ones(2), 0.0, 1.0, method=method, num_steps=200)
        np.testing.assert_allclose(out, np.exp(-1.0) * np.ones(2), rtol=1e-2)


def test_each_solver_is_one_loop_in_one_program():
    # The adaptive solves are diffrax's step loop: two while primitives (the loop and the
    # checkpointed inner loop of RecursiveCheckpointAdjoint), however many steps it takes.
    f = lambda t, x: jnp.sin(t) * x - x**3
    x0, ts = jnp.ones((5, 2)), jnp.linspace(0.0, 1.0, 11)
    cases = {
        "euler": (lambda x: ode.euler(f, x, ts), {"scan": 1}),
        "heun": (lambda x: ode.heun(f, x, ts), {"scan": 1}),
        "dopri5": (lambda x: ode.dopri5(f, x, 0.0, 1.0).y, {"while": 2}),
        "log_likelihood": (lambda x: ode.log_likelihood(f, x).log_prob, {"while": 2}),
    }
    for name, (fn, expected) in cases.items():
        assert loop_counts(jax.make_jaxpr(fn)(x0).jaxpr) == expected, name
        jax.jit(fn).lower(x0).compile()


def test_bad_input():
    f = lambda t, x: -x
    with pytest.raises(ValueError, match="time grid"):
        ode.euler(f, jnp.ones(2), jnp.asarray([0.0]))
    with pytest.raises(ValueError, match="unknown ODE method"):
        ode.solve(f, jnp.ones(2), 0.0, 1.0, method="rk4")
    with pytest.raises(ValueError, match="num_steps"):
        ode.solve(f, jnp.ones(2), 0.0, 1.0, method="euler", num_steps=0)
    with pytest.raises(ValueError, match="max_steps"):
        ode.dopri5(f, jnp.ones(2), 0.0, 1.0, max_steps=0)
    with pytest.raises(ValueError, match="floating"):
        ode.dopri5(f, jnp.ones(2, jnp.int32), 0.0, 1.0)
    with pytest.raises(ValueError, match="PRNG key"):
        ode.log_likelihood(f, jnp.ones((2, 2)), method="hutchinson")
    with pytest.raises(ValueError, match="unknown divergence method"):
        ode.log_likelihood(f, jnp.ones((2, 2)), method="trace")
    with pytest.raises(ValueError, match="unknown probe"):
        ode.log_likelihood(f, jnp.ones((2, 2)), method="hutchinson", key=jax.random.key(0),
                           probe="sphere")


# ----------------------------------------------------------------------------------------------
# Likelihood
# ----------------------------------------------------------------------------------------------


def test_exact_divergence_of_a_nonlinear_field():
    # One Euler step from t0 to t1 gives divergence_integral = (t1 - t0) div u(x, t0) exactly.
    with jax.enable_x64(True):
        w = jnp.asarray(np.random.default_rng(9).normal(size=(6, 6)))
        u = lambda t, x: jnp.tanh(x.reshape(x.shape[0], 6) @ w.T * (1 + t)).reshape(x.shape) + x**2
        x = jnp.asarray(np.random.default_rng(10).normal(size=(3, 2, 3)))
        out = ode.log_likelihood(u, x, t0=0.25, t1=0.75, solver="euler", num_steps=1)
        for i in range(3):
            jac = jax.jacfwd(lambda y: u(0.25, y.reshape(1, 2, 3)).reshape(-1))(x[i].reshape(-1))
            np.testing.assert_allclose(out.divergence_integral[i], 0.5 * np.trace(jac),
                                       rtol=1e-12)
        np.testing.assert_allclose(out.log_prob, out.prior_log_prob + out.divergence_integral)


@pytest.mark.parametrize("solver,tol", [("dopri5", 1e-4), ("heun", 2e-3)])
def test_rectified_flow_log_likelihood_is_the_gaussian_log_density(solver, tol):
    with jax.enable_x64(True):
        g = Gaussian(dim=3, seed=0)
        velocity = lambda t, x: g.velocity(x, _rf(t))
        x = g.mean + np.random.default_rng(1).normal(size=(6, 3)) * 1.5
        out = ode.log_likelihood(velocity, jnp.asarray(x), solver=solver, num_steps=200,
                                 rtol=1e-9, atol=1e-9)
        assert bool(jnp.all(out.success))
        np.testing.assert_allclose(out.log_prob, g.log_prob(x, 1.0, 0.0), rtol=0, atol=tol)
        # The latent is the whitened data point: x1 = S^(-1/2) (x - m) (the symmetric root).
        root = g.q @ np.diag(g.lam**-0.5) @ g.q.T
        np.testing.assert_allclose(out.latent, (x - g.mean) @ root.T, atol=10 * tol)
        # Each example is solved on its own: its result does not depend on the rest of the batch.
        alone = ode.log_likelihood(velocity, jnp.asarray(x[2:3]), solver=solver, num_steps=200,
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(alone.log_prob[0], out.log_prob[2], rtol=1e-12)


def test_vp_cosine_pf_ode_log_likelihood_from_an_x0_predictor():
    with jax.enable_x64(True):
        g = Gaussian(dim=3, seed=1)
        sched = schedules.cosine()
        coefficients = functools.partial(vp_coefficients, sched)
        denoiser = lambda x, t: g.posterior_mean(x, coefficients(t[0]))  # one time per call
        velocity = ode.probability_flow(denoiser, coefficients, "x0")
        (a0, a1), (s0, s1) = (np.asarray(v) for v in schedules.alpha_sigma(
            sched, jnp.asarray([0.0, 1.0], jnp.float64)))
        x = a0 * g.mean + np.random.default_rng(2).normal(size=(5, 3))
        out = ode.log_likelihood(velocity, jnp.asarray(x), base_log_prob=g.jax_log_prob(a1, s1),
                                 rtol=1e-9, atol=1e-9)
        assert bool(jnp.all(out.success))
        np.testing.assert_allclose(out.log_prob, g.log_prob(x, a0, s0), rtol=0, atol=1e-4)


@pytest.mark.parametrize("source", ["eps", "v", "score", "velocity"])
def test_probability_flow_is_the_marginal_velocity_in_every_parameterization(source):
    with jax.enable_x64(True):
        g = Gaussian(dim=3, seed=3)
        coefficients = functools.partial(vp_coefficients, schedules.cosine())
        x = jnp.asarray(np.random.default_rng(4).normal(size=(4, 3)))

        def denoiser(y, t):
            assert t.shape == (4,)
            c = coefficients(t[0])
            return convert(g.posterior_mean(y, c), y, c, "x0", source)

        u = ode.probability_flow(denoiser, coefficients, source)
        for t in (0.1, 0.5, 0.9):
            np.testing.assert_allclose(u(jnp.asarray(t), x), g.velocity(x, coefficients(t)),
                                       rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("probe,solver", [("rademacher", "dopri5"), ("gaussian", "heun")])
def test_hutchinson_is_unbiased(probe, solver):
    with jax.enable_x64(True):
        g = Gaussian(dim=3, seed=0)  # full covariance: a non-diagonal Jacobian, so probes vary
        velocity = lambda t, x: g.velocity(x, _rf(t))
        settings = dict(solver=solver, num_steps=16, rtol=1e-7, atol=1e-7)
        x = jnp.asarray(g.mean + 0.7)
        n = 1000
        estimates = ode.log_likelihood(
            velocity, jnp.broadcast_to(x, (n, 3)), method="hutchinson", key=jax.random.key(0),
            probe=probe, **settings,
        ).log_prob
        exact = ode.log_likelihood(velocity, x[None], **settings).log_prob[0]
        std = float(jnp.std(estimates))
        assert std > 1e-2  # the estimate is random, and unbiased:
        assert abs(float(jnp.mean(estimates)) - float(exact)) < 4 * std / math.sqrt(n)
        if probe == "rademacher":  # averaging probes reduces the variance
            averaged = ode.log_likelihood(
                velocity, jnp.broadcast_to(x, (200, 3)), method="hutchinson",
                key=jax.random.key(1), probe=probe, num_probes=16, **settings,
            ).log_prob
            assert float(jnp.std(averaged)) < 0.5 * std


# ----------------------------------------------------------------------------------------------
# Reverse mode and tolerances of the adaptive (diffrax) solves
# ----------------------------------------------------------------------------------------------


# Compiling reverse mode through diffrax's loop takes 5-15 s on a loaded 2-core CPU: slow run
# only (the default run checks gradients through the fixed-step scan, and one small float64
# dopri5 gradient, in tests/test_continuous.py).
@pytest.mark.slow
@pytest.mark.parametrize("adjoint", ode.ADJOINTS)
def test_gradient_of_the_log_likelihood_of_a_linear_field_is_the_closed_form(adjoint):
    # u(x) = A x from t = 0 to 1: z = expm(A) x and div u = tr(A), so
    # log p(x) = log N(expm(A) x; 0, I) + tr(A); its gradient in A is differentiated here
    # through jax.scipy's expm, independently of any ODE solve.
    with jax.enable_x64(True):
        a = jnp.asarray(_stable_matrix(2, 11))
        x = jnp.asarray(np.random.default_rng(12).normal(size=(1, 2)))

        def closed_form(a):
            z = x @ jax.scipy.linalg.expm(a).T
            return jnp.sum(-0.5 * jnp.sum(z**2, -1) - math.log(2 * math.pi) + jnp.trace(a))

        def solved(a):
            out = ode.log_likelihood(lambda t, y: y @ a.T, x, rtol=1e-10, atol=1e-10,
                                     adjoint=adjoint)
            return jnp.sum(out.log_prob)

        value, grad = jax.value_and_grad(solved)(a)
        np.testing.assert_allclose(value, closed_form(a), rtol=1e-8)
        np.testing.assert_allclose(grad, jax.grad(closed_form)(a), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_gradient_through_the_solve_matches_finite_differences_and_is_vmappable():
    # dx/dt = -k x (1 + sin t): x(1) = x0 exp(-k (2 - cos 1)); d/dk by central differences too.
    f = lambda k: lambda t, x: -k * x * (1.0 + jnp.sin(t))
    solve = lambda k: ode.solve(f(k), jnp.ones(()), 0.0, 1.0, method="tsit5", rtol=1e-6,
                                atol=1e-6)
    ks = jnp.asarray([0.5, 1.0, 2.0])
    grads = jax.jit(jax.vmap(jax.grad(solve)))(ks)
    c = 2.0 - math.cos(1.0)
    np.testing.assert_allclose(grads, -c * np.exp(-c * np.asarray(ks)), rtol=1e-4)
    h = 1e-2
    fd = (jax.vmap(solve)(ks + h) - jax.vmap(solve)(ks - h)) / (2 * h)
    np.testing.assert_allclose(grads, fd, rtol=1e-3)


@pytest.mark.parametrize("method", ode.ADAPTIVE_METHODS)
def test_adaptive_solver_reaches_its_tolerance_on_a_linear_system(method):
    with jax.enable_x64(True):
        a = _stable_matrix(3, 13)
        x0 = np.random.default_rng(14).normal(size=3)
        exact = scipy.linalg.expm(2.0 * a) @ x0
        errors = []
        for tol in (1e-4, 1e-8):
            sol = ode.adaptive(lambda t, x: jnp.asarray(a) @ x, x0, 0.0, 2.0, method=method,
                               rtol=tol, atol=tol)
            assert bool(sol.success) and float(sol.t) == 2.0
            errors.append(float(np.max(np.abs(np.asarray(sol.y) - exact))))
            assert errors[-1] < 20 * tol, (tol, errors)
        assert errors[1] < 1e-2 * errors[0]  # a tighter tolerance buys accuracy


def test_bad_adjoint_and_adaptive_method():
    with pytest.raises(ValueError, match="unknown adjoint"):
        ode.solve(lambda t, x: -x, jnp.ones(2), 0.0, 1.0, adjoint="forward")
    with pytest.raises(ValueError, match="unknown adaptive ODE method"):
        ode.adaptive(lambda t, x: -x, jnp.ones(2), 0.0, 1.0, method="heun")
