"""Diffusion benchmark: gen's compiled samplers and UNet against diffusers (PyTorch), side by side.

One process, float32, the same number of CPU threads for both libraries (``--threads``, default
every core this process may use: JAX through the process's CPU affinity, torch through
``torch.set_num_threads``). Three items:

- ``sampler``: the overhead of a sampler per step. A trivial denoiser, ``eps = 0.1 x`` (the same
  function in JAX and torch), the DDPM linear schedule (T = 1000), 20 "leading" timesteps, at
  each ``--shapes`` (NHWC for gen, NCHW for torch). gen: ``samplers.ddim`` (eta 0) and
  ``samplers.dpmpp_2m``, the whole loop under one ``jax.jit`` (steady state: the best of
  ``--rounds`` interleaved medians of ``--repeats`` calls; compile time apart). diffusers:
  ``DDIMScheduler`` and
  ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)``, the usual loop
  ``for t in scheduler.timesteps: x = scheduler.step(model(x, t), t, x).prev_sample`` under
  ``torch.no_grad()`` (``set_timesteps(20)`` outside the timed region). Both start from the same
  x and must agree before anything is timed. The **floor** is the memory traffic one step must
  make: ``x = a x + b eps`` (read two arrays, write one) on the same shape, 20 times in a
  ``lax.scan``, per step.
- ``e2e``: the same small UNet in both (ch 32, ch_mult (1, 2), one ResBlock per level, one-head
  attention at 16x16 and in the middle, 8 GroupNorm groups, sinusoidal time embedding; gen
  ``gen.nn.UNet``, diffusers ``UNet2DModel``) on 32x32x3 at ``--batch`` (8): one denoiser
  forward pass, a 20-step DDIM sampling run, and one training step (eps-MSE forward, backward,
  Adam update). A single 3x3 convolution is timed alone to show what limits the ratio.
- ``gpu``: only when JAX's backend is a GPU: the bf16 training step of the CIFAR-10 UNet
  (``cifar10_config()``, ``dtype=bfloat16``) at batch 128, its throughput, and its MFU: the
  step's analytic conv + matmul FLOPs (``gen.nn.flops.count_flops`` on the step's jaxpr) / step
  time / the bf16 peak measured here by an 8192^3 bf16 matmul. XLA's own count is shown beside
  it, but not used: on GPU its cost analysis leaves out the convolutions run by cuDNN.

    pip install -e ".[bench]"
    python -m experiments.benchmarks.diffusion [--items sampler e2e gpu] [--repeats 20] [--readme]

``--readme`` writes the tables into README.md between the diffusion-benchmark markers, ``--json``
the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.hardware import cpu_description, device_description, pin_threads
from experiments.benchmarks.readme import publish
from experiments.benchmarks.timing import median_seconds

STEPS, T = 20, 1000
SAMPLERS = ("ddim", "dpmpp_2m")
SHAPES = ((4, 8, 8, 3), (64, 32, 32, 3))
TARGETS = {(4, 8, 8, 3): 20.0, (64, 32, 32, 3): 5.0}  # issue 4: diffusers / gen per step
UNET = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), num_groups=8)
IMAGE = (32, 32, 3)
GPU_BATCH, PEAK_N = 128, 8192
MARKERS = ("<!-- diffusion-benchmark:start -->", "<!-- diffusion-benchmark:end -->")
INSTALL = 'pip install -e ".[bench]"'

Result = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


def _compile(fn: Callable, *args: Any, **jit_kw: Any) -> tuple[Any, float]:
    """``jax.jit(fn)`` lowered and compiled for ``args``, and the seconds that took."""
    start = time.perf_counter()
    compiled = jax.jit(fn, **jit_kw).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _flops(compiled: Any) -> float:
    """FLOPs of a compiled function, from XLA's cost analysis (NaN if it gives none)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def _peers() -> tuple[Any, Any]:
    """``(torch, diffusers)``, or exit with the command that installs them."""
    try:
        import diffusers
        import torch
    except ImportError as err:
        raise SystemExit(
            f"diffusion benchmark: torch and diffusers are needed ({err.msg}); run {INSTALL}."
        ) from err
    return torch, diffusers


# ----------------------------------------------------------------------------------------------
# 1. Sampler overhead per step
# ----------------------------------------------------------------------------------------------


def _schedulers(diffusers: Any) -> dict[str, Any]:
    """diffusers' schedulers on the DDPM linear schedule, otherwise at their defaults (DDIM:
    "leading" spacing, ``set_alpha_to_one``; DPM-Solver: "linspace" spacing, a last step to
    sigma 0), except DDIM's ``clip_sample``, off as in our samplers' default."""
    linear = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    return {
        "ddim": diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True, **linear),
        "dpmpp_2m": diffusers.DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver++", solver_order=2, **linear
        ),
    }


def measure_floor(shape: tuple[int, ...], repeats: int, rounds: int = 3) -> float:
    """Seconds per step of ``x = a x + b eps`` (a, b per step), 20 steps in one ``lax.scan``;
    the best of ``rounds`` medians."""

    def passes(x: jax.Array, eps: jax.Array, coef: jax.Array) -> jax.Array:
        def step(x: jax.Array, c: jax.Array) -> tuple[jax.Array, None]:
            return x * c[0] + eps * c[1], None

        return jax.lax.scan(step, x, coef)[0]

    x, eps = jax.random.normal(jax.random.key(0), (2, *shape))
    coef = jnp.stack([jnp.linspace(0.9, 1.0, STEPS), jnp.linspace(0.1, 0.0, STEPS)], axis=1)
    compiled, _ = _compile(passes, x, eps, coef)
    best = min(median_seconds(lambda: compiled(x, eps, coef), repeats) for _ in range(rounds))
    return best / STEPS


def measure_sampler(name: str, shape: tuple[int, ...], repeats: int, rounds: int = 3) -> Result:
    """Per-step seconds of gen's jitted sampler and diffusers' loop, with gen's compile time.

    Each is timed in ``rounds`` interleaved rounds of ``repeats`` calls; the best round's median
    is reported.
    """
    import torch

    from gen.diffusion import samplers, schedules, timesteps

    _, diffusers = _peers()
    scheduler = _schedulers(diffusers)[name]
    scheduler.set_timesteps(STEPS)
    x_T = np.asarray(jax.random.normal(jax.random.key(0), shape))

    # gen: the whole 20-step loop is one compiled call.
    sampler = {"ddim": samplers.ddim, "dpmpp_2m": samplers.dpmpp_2m}[name]
    run = partial(sampler, lambda x, t: 0.1 * x, "eps", schedules.ddpm_linear())
    # The same integer timesteps as diffusers (for DDIM, timesteps.leading(T, STEPS)).
    grid = scheduler.timesteps.numpy()
    assert name != "ddim" or np.array_equal(grid, timesteps.leading(T, STEPS)), grid
    ts = jnp.asarray(samplers.times_from_timesteps(grid, T))
    x = jnp.asarray(x_T)
    compiled, compile_s = _compile(run, x, ts)
    ours = np.asarray(compiled(x, ts))

    # diffusers: the usual Python loop; set_timesteps (which resets its state) is not timed.
    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.1 * x

    sample = torch.from_numpy(np.ascontiguousarray(x_T.transpose(0, 3, 1, 2)))

    def loop() -> torch.Tensor:
        xt = sample
        with torch.no_grad():
            for t in scheduler.timesteps:
                xt = scheduler.step(model(xt, t), t, xt).prev_sample
        return xt

    theirs = loop().numpy().transpose(0, 2, 3, 1)
    diff = float(np.max(np.abs(ours - theirs)))
    if diff > 1e-4 * max(1.0, float(np.max(np.abs(theirs)))):
        raise RuntimeError(f"{name} {shape}: gen and diffusers disagree (max |diff| {diff:.3g}).")
    def diffusers_median() -> float:
        times = []
        for _ in range(repeats + 3):
            scheduler.set_timesteps(STEPS)
            start = time.perf_counter()
            loop()
            times.append(time.perf_counter() - start)
        return statistics.median(times[3:])  # the same 3 warm-up calls as gen

    # Interleaved rounds, best median of each: a shared machine's noise only ever adds time.
    gen_s, diffusers_s = [], []
    for _ in range(rounds):
        gen_s.append(median_seconds(lambda: compiled(x, ts), repeats) / STEPS)
        diffusers_s.append(diffusers_median() / STEPS)
    return {
        "gen_s": min(gen_s),
        "gen_compile_s": compile_s,
        "diffusers_s": min(diffusers_s),
        "max_abs_diff": diff,
    }


# ----------------------------------------------------------------------------------------------
# 2. End to end: the same small UNet
# ----------------------------------------------------------------------------------------------


def _torch_unet(diffusers: Any) -> Any:
    """diffusers' ``UNet2DModel`` built like ``gen.nn.UNet(**UNET)``."""
    return diffusers.UNet2DModel(
        sample_size=IMAGE[0],
        in_channels=IMAGE[2],
        out_channels=IMAGE[2],
        block_out_channels=tuple(UNET["ch"] * m for m in UNET["ch_mult"]),
        layers_per_block=UNET["num_res_blocks"],
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=UNET["num_groups"],
        attention_head_dim=None,  # one head, as gen's
        dropout=0.0,
    )


def _time_training(net: Any, x: jax.Array, t_in: jax.Array, repeats: int) -> Result:
    """gen's training step on fresh params: eps-MSE at the given ``(x_t, t_input)``, backward,
    Adam update (params and optimizer state donated). Seconds, compile seconds, and the step's
    FLOPs: ``train_flops`` analytic (conv + matmul, from its jaxpr), ``xla_train_flops`` from
    XLA's cost analysis of the compiled step."""
    import optax

    from gen.nn import count_params
    from gen.nn.flops import count_flops

    opt = optax.adam(1e-4)
    keys = jax.random.split(jax.random.key(1), 3)
    eps = jax.random.normal(keys[0], x.shape)
    params = net.init(keys[1], x, t_in)

    def train_step(
        params: Any, opt_state: Any, x_t: jax.Array, t: jax.Array, eps: jax.Array, key: jax.Array
    ) -> tuple[Any, Any, jax.Array]:
        def loss_fn(params: Any) -> jax.Array:
            pred = net.apply(params, x_t, t, train=True, rngs={"dropout": key})
            return jnp.mean((pred - eps) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = [params, opt.init(params)]
    args = (x, t_in, eps, keys[2])
    analytic = count_flops(train_step, *state, *args)  # traced only: nothing runs or is donated
    step, compile_s = _compile(train_step, *state, *args, donate_argnums=(0, 1))

    def train() -> jax.Array:
        state[0], state[1], loss = step(*state, *args)
        return loss

    return {
        "params": count_params(params),
        "train_s": median_seconds(train, repeats),
        "train_compile_s": compile_s,
        "train_flops": analytic.matmul,
        "xla_train_flops": _flops(step),
    }


def _measure_gen_unet(batch: int, repeats: int) -> Result:
    from gen.diffusion import process, samplers, schedules, timesteps
    from gen.nn import UNet

    net = UNet(**UNET)
    x = jax.random.normal(jax.random.key(0), (batch, *IMAGE))
    t_in = jax.random.randint(jax.random.key(2), (batch,), 0, T).astype(jnp.float32)
    params = net.init(jax.random.key(3), x, t_in)
    sched = schedules.ddpm_linear()
    ts = jnp.asarray(samplers.times_from_timesteps(timesteps.leading(T, STEPS), T))

    forward, _ = _compile(net.apply, params, x, t_in)

    def sample(params: Any, x_T: jax.Array, ts: jax.Array) -> jax.Array:
        denoiser = process.sampling_denoiser(net.apply, params, sched, process.timestep_input(T))
        return samplers.ddim(denoiser, "eps", sched, x_T, ts)

    sampler, sample_compile_s = _compile(sample, params, x, ts)
    return {
        "forward_s": median_seconds(lambda: forward(params, x, t_in), repeats),
        "sample_s": median_seconds(lambda: sampler(params, x, ts), repeats),
        "sample_compile_s": sample_compile_s,
    } | _time_training(net, x, t_in, repeats)


def _measure_torch_unet(batch: int, repeats: int) -> Result:
    import torch

    _, diffusers = _peers()
    torch.manual_seed(0)
    model = _torch_unet(diffusers)
    x = torch.randn(batch, IMAGE[2], *IMAGE[:2])
    eps = torch.randn_like(x)
    t_in = torch.randint(0, T, (batch,))
    scheduler = _schedulers(diffusers)["ddim"]
    scheduler.set_timesteps(STEPS)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(x, t_in).sample

    def sample() -> torch.Tensor:
        xt = x
        with torch.no_grad():
            for t in scheduler.timesteps:
                xt = scheduler.step(model(xt, t).sample, t, xt).prev_sample
        return xt

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x, t_in).sample, eps)
        loss.backward()
        opt.step()
        return loss

    return {
        "params": sum(p.numel() for p in model.parameters()),
        "forward_s": median_seconds(forward, repeats),
        "sample_s": median_seconds(sample, repeats),
        "train_s": median_seconds(train, repeats),
    }


def _measure_conv(batch: int, repeats: int) -> Result:
    """One 3x3 convolution, 32 -> 32 channels at 32x32 (the UNet's widest level): the forward
    pass, and the forward and backward pass (gradients of input and kernel), in XLA and torch."""
    import torch

    ch = UNET["ch"]
    x, g = jax.random.normal(jax.random.key(0), (2, batch, *IMAGE[:2], ch))
    w = jax.random.normal(jax.random.key(1), (3, 3, ch, ch)) * 0.1
    conv = partial(
        jax.lax.conv_general_dilated,
        window_strides=(1, 1),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )

    def conv_grad(x: jax.Array, w: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        return jax.vjp(conv, x, w)[1](g)

    forward, _ = _compile(conv, x, w)
    backward, _ = _compile(conv_grad, x, w, g)
    xt, gt = (torch.from_numpy(np.asarray(v).transpose(0, 3, 1, 2).copy()) for v in (x, g))
    wt = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy())

    def torch_forward() -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, padding=1)

    xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()

    def torch_backward() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(torch.nn.functional.conv2d(xg, wg, padding=1), (xg, wg), gt)

    return {
        "gen_forward_s": median_seconds(lambda: forward(x, w), repeats),
        "diffusers_forward_s": median_seconds(torch_forward, repeats),
        "gen_backward_s": median_seconds(lambda: backward(x, w, g), repeats),
        "diffusers_backward_s": median_seconds(torch_backward, repeats),
    }


def measure_e2e(batch: int, repeats: int) -> Result:
    """The UNet forward pass, 20-step DDIM sampling and training step of both, and one conv."""
    return {
        "gen": _measure_gen_unet(batch, repeats),
        "diffusers": _measure_torch_unet(batch, repeats),
        "conv3x3": _measure_conv(batch, repeats),
    }


# ----------------------------------------------------------------------------------------------
# 3. GPU: bf16 training throughput and MFU
# ----------------------------------------------------------------------------------------------


def measure_gpu(
    repeats: int, batch: int = GPU_BATCH, peak_n: int = PEAK_N, unet: dict | None = None
) -> Result:
    """bf16 peak (a ``peak_n``^3 matmul) and the bf16 UNet training step (the CIFAR-10 UNet
    unless ``unet`` gives other ``gen.nn.UNet`` settings) at ``batch``; MFU = the step's analytic
    conv + matmul FLOPs (``gen.nn.flops``) per second over that peak. Runs on whatever device JAX
    has."""
    from gen.nn import UNet, cifar10_config

    a, b = jax.random.normal(jax.random.key(0), (2, peak_n, peak_n), jnp.bfloat16)
    matmul, _ = _compile(jnp.matmul, a, b)
    peak = 2 * peak_n**3 / median_seconds(lambda: matmul(a, b), repeats)

    net = UNet(**(cifar10_config() if unet is None else unet), dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(1), (batch, *IMAGE))
    t_in = jax.random.randint(jax.random.key(2), (batch,), 0, T).astype(jnp.float32)
    r = _time_training(net, x, t_in, repeats)
    return r | {
        "device": jax.devices()[0].device_kind,
        "batch": batch,
        "peak_n": peak_n,
        "peak_flops": peak,
        "images_per_s": batch / r["train_s"],
        "flops_per_s": r["train_flops"] / r["train_s"],
        "mfu": r["train_flops"] / r["train_s"] / peak,
    }


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def sampler_table(results: list[Result]) -> str:
    lines = [
        f"Sampler overhead, trivial denoiser `eps = 0.1 x`, {STEPS} steps, linear schedule "
        f"T={T}; time per step in µs. Speedup = diffusers / gen (target: issue 4). Floor = "
        "`x = a x + b eps` on the same shape in a `lax.scan`; gen / floor = how far the sampler "
        "is from it.",
        "",
        "| shape (NHWC) | sampler | gen µs/step | diffusers µs/step | speedup | target | "
        "floor µs/step | gen / floor | gen compile (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        target = TARGETS.get(tuple(r["shape"]))
        speedup = r["diffusers_s"] / r["gen_s"]
        met = target is not None and speedup >= target
        verdict = "" if target is None else f"{target:g}x {'met' if met else 'MISSED'}"
        lines.append(
            f"| {_shape(r['shape'])} | {r['sampler']} | {r['gen_s'] * 1e6:.1f} | "
            f"{r['diffusers_s'] * 1e6:.1f} | "
            f"{speedup:.1f}x | {verdict} | {r['floor_s'] * 1e6:.2f} | "
            f"{r['gen_s'] / r['floor_s']:.1f}x | {r['gen_compile_s']:.2f} |"
        )
    return "\n".join(lines)


def e2e_table(r: Result, batch: int) -> str:
    ours, theirs, conv = r["gen"], r["diffusers"], r["conv3x3"]
    gap = ours["params"] / theirs["params"] - 1
    attn = UNET["attn_resolutions"][0]
    rows = [
        ("denoiser forward", "forward_s"),
        (f"DDIM sampling, {STEPS} steps", "sample_s"),
        ("training step (fwd + bwd + Adam)", "train_s"),
    ]
    lines = [
        f"Small UNet (ch {UNET['ch']}, ch_mult {UNET['ch_mult']}, {UNET['num_res_blocks']} "
        f"ResBlock per level, attention at {attn}x{attn} and in the middle, "
        f"{UNET['num_groups']} groups), 32x32x3, batch {batch}: gen `UNet` {ours['params']:,} "
        f"params, diffusers `UNet2DModel` {theirs['params']:,} ({gap:+.1%}). Times in ms; "
        "speedup = diffusers / gen.",
        "",
        "| item | gen ms | diffusers ms | speedup |",
        "|---|---|---|---|",
    ]
    for label, k in rows:
        lines.append(
            f"| {label} | {ours[k] * 1e3:.2f} | {theirs[k] * 1e3:.2f} | "
            f"{theirs[k] / ours[k]:.2f}x |"
        )
    for label, k in (("forward", "forward_s"), ("forward + backward", "backward_s")):
        lines.append(
            f"| one 3x3 conv, 32 -> 32 ch at 32x32, {label} | {conv[f'gen_{k}'] * 1e3:.3f} | "
            f"{conv[f'diffusers_{k}'] * 1e3:.3f} | "
            f"{conv[f'diffusers_{k}'] / conv[f'gen_{k}']:.2f}x |"
        )
    lines += [
        "",
        f"gen compile: sampling {ours['sample_compile_s']:.1f} s, training step "
        f"{ours['train_compile_s']:.1f} s. Here the time is in the network, not the sampler "
        "loop; the last two rows time one of the UNet's 3x3 convolutions alone, XLA against "
        "PyTorch, to show how much of the end-to-end ratio is the CPU convolution "
        "kernels.",
    ]
    return "\n".join(lines)


def gpu_table(r: Result | None) -> str:
    if r is None:
        return f"GPU section skipped: JAX's backend is {jax.default_backend()}, not gpu."
    per_image = r["train_flops"] / r["batch"] / 1e9
    return "\n".join(
        [
            f"GPU ({r['device']}): CIFAR-10 UNet ({r['params'] / 1e6:.1f}M params), bf16 compute, "
            f"batch {r['batch']}, training step with Adam. FLOPs = the step's convolutions and "
            "matmuls, counted analytically from its jaxpr (`gen.nn.flops`, 2 per multiply-add, "
            "elementwise ops not included); peak = measured "
            f"{r['peak_n']}^3 bf16 matmul; MFU = FLOPs / step time / peak. XLA's count is shown "
            "for reference only: on GPU its cost analysis omits the convolutions run by cuDNN.",
            "",
            "| step ms | images/s | GFLOP/image (analytic) | TFLOP/s | measured bf16 peak "
            "TFLOP/s | MFU | XLA's GFLOP/image | compile (s) |",
            "|---|---|---|---|---|---|---|---|",
            f"| {r['train_s'] * 1e3:.2f} | {r['images_per_s']:.0f} | {per_image:.2f} | "
            f"{r['flops_per_s'] / 1e12:.1f} | {r['peak_flops'] / 1e12:.0f} | {r['mfu']:.1%} | "
            f"{r['xla_train_flops'] / r['batch'] / 1e9:.2f} | {r['train_compile_s']:.1f} |",
        ]
    )


def header(items: list[str], repeats: int, threads: int, rounds: int) -> str:
    """What ran: the CPU items on the CPU (JAX is held there), the GPU item on its device."""
    versions = [f"jax {jax.__version__}"]
    try:
        import diffusers
        import torch

        versions += [f"torch {torch.__version__}", f"diffusers {diffusers.__version__}"]
    except ImportError:
        pass
    lines = []
    if {"sampler", "e2e"} & set(items):
        lines.append(
            f"CPU items: {cpu_description(threads)} for both libraries (JAX: CPU affinity; "
            f"torch: `torch.set_num_threads({threads})`), float32, median of {repeats} calls "
            f"(sampler item: the best of {rounds} interleaved rounds of that).")
    if "gpu" in items:
        lines.append(f"GPU item: JAX's default device is {device_description()}.")
    return " ".join([*lines, f"{', '.join(versions)}."])


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected B,H,W,C (e.g. 4,8,8,3), got {text!r}")
    return shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items", nargs="+", default=["sampler", "e2e", "gpu"], choices=["sampler", "e2e", "gpu"]
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=_parse_shape,
        default=list(SHAPES),
        help="sampler shapes, NHWC, e.g. 4,8,8,3 64,32,32,3",
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the sampler item; the best median is kept")
    parser.add_argument("--threads", type=int, help="CPU threads for both (default: all)")
    parser.add_argument("--batch", type=int, default=8, help="batch of the e2e item")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be >= 1")
    threads = pin_threads(args.threads)
    if {"sampler", "e2e"} & set(args.items):
        torch, _ = _peers()
        torch.set_num_threads(threads)

    results: Result = {"threads": threads, "repeats": args.repeats}
    sections = [header(args.items, args.repeats, threads, args.rounds)]
    with jax.default_device(jax.devices("cpu")[0]):  # the CPU items stay on CPU beside a GPU
        if "sampler" in args.items:
            results["sampler"] = []
            for shape in args.shapes:
                floor = measure_floor(shape, args.repeats, args.rounds)
                for name in SAMPLERS:
                    r = measure_sampler(name, shape, args.repeats, args.rounds)
                    r |= {"floor_s": floor}
                    print(_shape(shape), name, {k: float(f"{v:.4g}") for k, v in r.items()})
                    results["sampler"].append({"shape": list(shape), "sampler": name, **r})
            sections.append(sampler_table(results["sampler"]))
        if "e2e" in args.items:
            results["e2e"] = measure_e2e(args.batch, args.repeats)
            print("e2e", json.dumps(results["e2e"]))
            sections.append(e2e_table(results["e2e"], args.batch))
    if "gpu" in args.items:
        results["gpu"] = measure_gpu(args.repeats) if jax.default_backend() == "gpu" else None
        sections.append(gpu_table(results["gpu"]))

    text = "\n\n".join(sections)
    publish(MARKERS, text, results, json_path=args.json, readme=args.readme)


if __name__ == "__main__":
    main()
