"""Tests for gen.diffusion.timesteps, against recomputations of diffusers' and k-diffusion's
formulas written here from their sources."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen.diffusion import schedules as S
from gen.diffusion import timesteps as T

# ----------------------------------------------------------------------------------------------
# References, from DDIMScheduler.set_timesteps
# ----------------------------------------------------------------------------------------------


def ref_ddim_timesteps(spacing, num_train, num_inference, steps_offset=0):
    if spacing == "linspace":
        return np.linspace(0, num_train - 1, num_inference).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        step_ratio = num_train // num_inference
        timesteps = (np.arange(0, num_inference) * step_ratio).round()[::-1].copy()
        return timesteps.astype(np.int64) + steps_offset
    step_ratio = num_train / num_inference
    return np.round(np.arange(num_train, 0, -step_ratio)).astype(np.int64) - 1


CASES = [(1000, n) for n in (1, 3, 10, 20, 50, 61, 250, 999, 1000)] + [
    (10, n) for n in (1, 3, 7, 10)
]


def ours(spacing, num_train, num_inference, steps_offset=0):
    if spacing == "leading":
        return T.leading(num_train, num_inference, steps_offset=steps_offset)
    return getattr(T, spacing)(num_train, num_inference)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_integer_grids_match_diffusers_formulas(spacing):
    for num_train, num in CASES:
        for offset in (0, 1) if spacing == "leading" and num_train // num > 1 else (0,):
            got = ours(spacing, num_train, num, offset)
            ref = ref_ddim_timesteps(spacing, num_train, num, offset)
            assert got.dtype == np.int64 and got.shape == (num,)
            np.testing.assert_array_equal(got, ref[:num])
            assert np.all(np.diff(got) < 0)  # descending, no repeats
            assert got.min() >= 0 and got.max() <= num_train - 1


def test_trailing_drops_diffusers_extra_timestep():
    # diffusers' float arange is one element too long for (1000, 61); its extra timestep is -1.
    ref = ref_ddim_timesteps("trailing", 1000, 61)
    assert len(ref) == 62 and ref[-1] == -1
    got = T.trailing(1000, 61)
    assert len(got) == 61 and got[0] == 999 and got[-1] >= 0


def test_examples():
    np.testing.assert_array_equal(T.trailing(1000, 4), [999, 749, 499, 249])
    np.testing.assert_array_equal(T.leading(1000, 4, steps_offset=1), [751, 501, 251, 1])
    np.testing.assert_array_equal(T.linspace(1000, 4), [999, 666, 333, 0])


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_integer_grids_match_real_diffusers(spacing):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    for num_train, num in CASES:
        for offset in (0, 1) if spacing == "leading" and num_train // num > 1 else (0,):
            scheduler = diffusers.DDIMScheduler(
                num_train_timesteps=num_train, timestep_spacing=spacing, steps_offset=offset
            )
            scheduler.set_timesteps(num)
            ref = scheduler.timesteps.numpy()
            got = ours(spacing, num_train, num, offset)
            np.testing.assert_array_equal(got, ref[:num])
            assert len(ref) == num or (spacing == "trailing" and ref[-1] == -1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: T.leading(1000, 0),
        lambda: T.leading(1000, 1001),
        lambda: T.leading(1000, 2.5),
        lambda: T.leading(1000, 1000, steps_offset=1),
        lambda: T.leading(1000, 10, steps_offset=-1),
        lambda: T.trailing(0, 1),
        lambda: T.trailing(10, 11),
        lambda: T.linspace(10, 0),
        lambda: T.linspace(10, 11),
        lambda: T.karras(0),
        lambda: T.karras(10, sigma_min=80.0, sigma_max=0.002),
        lambda: T.karras(10, rho=0.0),
        lambda: T.uniform_logsnr(S.cosine(), 0),
        lambda: T.uniform_logsnr(S.cosine(), 10, t_min=0.5, t_max=0.5),
        lambda: T.uniform_logsnr(S.cosine(), 10, t_max=1.5),
    ],
)
def test_bad_arguments_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


def test_too_many_inference_steps_message():
    with pytest.raises(ValueError, match=r"num_inference_steps \(1001\) cannot exceed"):
        T.trailing(1000, 1001)


# ----------------------------------------------------------------------------------------------
# Karras
# ----------------------------------------------------------------------------------------------


def ref_karras(n, sigma_min, sigma_max, rho):
    # k-diffusion get_sigmas_karras (before append_zero)
    ramp = np.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


@pytest.mark.parametrize("num", [1, 2, 18, 40])
def test_karras(num):
    sigmas = T.karras(num, 0.002, 80.0, 7.0)
    assert sigmas.shape == (num + 1,) and sigmas[-1] == 0.0
    np.testing.assert_allclose(sigmas[:-1], ref_karras(num, 0.002, 80.0, 7.0), rtol=1e-12)
    np.testing.assert_allclose(sigmas[0], 80.0, rtol=1e-12)
    if num > 1:
        np.testing.assert_allclose(sigmas[-2], 0.002, rtol=1e-12)
        # The EDM schedule's sigmas at t = 1 - i / (N - 1).
        t = 1.0 - np.arange(num) / (num - 1)
        edm = np.asarray(S.edm_sigma(S.edm(0.002, 80.0, 7.0), jnp.asarray(t, jnp.float32)))
        np.testing.assert_allclose(edm, sigmas[:-1], rtol=2e-5)
    assert np.all(np.diff(sigmas) < 0)
    no_zero = T.karras(num, 0.1, 10.0, 3.0, append_zero=False)
    np.testing.assert_allclose(no_zero, ref_karras(num, 0.1, 10.0, 3.0), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Uniform in log-SNR
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"), [("cosine", S.cosine), ("ddpm_linear", S.ddpm_linear), ("edm", S.edm)]
)
def test_uniform_logsnr(name, make):
    schedule = make()
    t = T.uniform_logsnr(schedule, 10)
    assert t.shape == (11,) and t.dtype == jnp.float32
    assert float(t[0]) == 1.0 and float(t[-1]) == 0.0
    assert np.all(np.diff(np.asarray(t)) < 0)
    lam = np.asarray(jax.jit(schedule)(t), np.float64)
    np.testing.assert_allclose(np.diff(lam), (lam[-1] - lam[0]) / 10, rtol=1e-3, atol=1e-4)


def test_uniform_logsnr_sub_interval_and_zero_snr():
    schedule = S.rescale_zero_terminal_snr(S.ddpm_linear(), num_steps=1000)
    with pytest.raises(ValueError, match="finite"):
        T.uniform_logsnr(schedule, 5)
    t = T.uniform_logsnr(schedule, 5, t_min=0.1, t_max=0.999)
    assert float(t[0]) == pytest.approx(0.999) and float(t[-1]) == pytest.approx(0.1)
    lam = np.asarray(jax.jit(schedule)(t), np.float64)
    np.testing.assert_allclose(np.diff(lam), (lam[-1] - lam[0]) / 5, rtol=1e-3, atol=1e-4)


def test_uniform_logsnr_under_jit_with_a_learned_schedule():
    pair = S.learned(num_features=16)
    params = pair.init(jax.random.key(0))

    @jax.jit
    def grid(p):
        return T.uniform_logsnr(functools.partial(pair.apply, p), 4)

    t = grid(params)
    lam = np.asarray(pair.apply(params, t), np.float64)
    np.testing.assert_allclose(lam, np.linspace(-5.0, 13.3, 5), atol=1e-3)
