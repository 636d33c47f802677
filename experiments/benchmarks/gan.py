"""GAN benchmark: gen's compiled GAN train step against the same step in PyTorch, side by side.

One process, float32, the same CPU threads for both libraries (``--threads``, default every core
this process may use: JAX through the process's CPU affinity, torch through
``torch.set_num_threads``). Each step is the whole of one training step as gen's
``gen.gan.training`` does it: ``n_dis`` discriminator updates (each drawing its own latents,
generating without gradient, one discriminator pass over the real and generated inputs, the loss
and penalty, backward, Adam), one generator update (Adam), and the generator's EMA. PyTorch runs
the same networks (same layers and widths, parameter counts printed beside each other), the same
loss, penalty, packing and ``n_dis``, eagerly, as a PyTorch user writes it (``torch.optim.Adam``
with ``foreach``; ``torch.autograd.grad(create_graph=True)`` for the penalty). Items:

- ``mlp``: the ``gan_toy2d`` config's step (MLP generator and discriminator on 2-D data).
- ``dcgan``: the ``dcgan_mnist`` config's step on 28x28x1 images.
- ``gpu``: only when JAX's backend is a GPU: the ``sngan_cifar10`` step (ResNets, spectral
  norm, hinge loss, n_dis = 5, 64 images per update) with bf16 compute, its time and images per
  second (real images through the discriminator: ``n_dis x 64`` per step).

Times are the best of ``--rounds`` interleaved rounds of the median of ``--repeats`` steps.

    pip install -e ".[bench]"
    python -m experiments.benchmarks.gan [--items mlp dcgan gpu] [--repeats 30] [--readme]

``--readme`` writes the tables into README.md between the gan-benchmark markers, ``--json`` the
raw numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.hardware import cpu_description, device_description, pin_threads
from experiments.benchmarks.readme import publish
from experiments.benchmarks.timing import median_seconds

ROOT = Path(__file__).parents[2]
MARKERS = ("<!-- gan-benchmark:start -->", "<!-- gan-benchmark:end -->")
CONFIGS = ROOT / "experiments" / "configs"
INSTALL = 'pip install -e ".[bench]"'
MLP_TARGET = 2.0  # issue 15: the MLP GAN step at least 2x faster than PyTorch's
GPU_BATCH = 64

Result = dict[str, Any]


def _torch():
    try:
        import torch
    except ImportError as err:
        raise SystemExit(f"gan benchmark: torch is needed ({err.msg}); run {INSTALL}.") from err
    return torch


def load(name: str, **model: Any):
    """The config ``experiments/configs/{name}.py`` with ``model.*`` overrides."""
    from gen.config import load_config_file

    config = load_config_file(CONFIGS / f"{name}.py")
    for key, value in model.items():
        if key == "batch_size":
            config.batch_size = value
        else:
            config.model[key] = value
    return config


# ----------------------------------------------------------------------------------------------
# gen
# ----------------------------------------------------------------------------------------------


class GenStep:
    """gen's compiled step for ``config`` on data of ``shape`` (model space, float32)."""

    def __init__(self, config, shape: tuple[int, ...]):
        from gen.data.source import DataSpec
        from gen.gan.training import build_task

        spec = DataSpec(shape=shape, kind="vector" if len(shape) == 1 else "image")
        self.task = build_task(config, spec)
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (config.batch_size, *shape)).astype(np.float32)
        self.batch = {"x": jnp.asarray(x)}
        self.state = jax.jit(self.task.init)(jax.random.key(0), self.batch)
        start = time.perf_counter()
        self.step = jax.jit(self.task.step, donate_argnums=0).lower(
            self.state, self.batch, jax.random.key(1)).compile()
        self.compile_s = time.perf_counter() - start
        self.key = jax.random.key(2)
        self.count = 0

    def __call__(self) -> Any:
        self.count += 1
        self.state, metrics = self.step(self.state, self.batch,
                                        jax.random.fold_in(self.key, self.count))
        return metrics["loss"]

    def params(self, part: str) -> int:
        return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(self.state.params[part]))


# ----------------------------------------------------------------------------------------------
# PyTorch: the same step, eagerly
# ----------------------------------------------------------------------------------------------


def _torch_networks(config, shape: tuple[int, ...]):
    torch = _torch()
    nn = torch.nn
    model = config.model
    m = int(model.get("packing", 1))
    latent = int(model.latent_dim)
    if model.name == "mlp_gan":
        layers, width_in = [], latent
        batchnorm = bool(model.get("g_batchnorm", True))
        for width in model.g_hidden:
            layers += [nn.Linear(width_in, width, bias=not batchnorm)]
            layers += [nn.BatchNorm1d(width, momentum=0.1)] if batchnorm else []
            layers += [nn.ReLU()]
            width_in = width
        gen = nn.Sequential(*layers, nn.Linear(width_in, shape[0]))

        class Maxout(nn.Module):
            def __init__(self, n_in: int, width: int, pieces: int):
                super().__init__()
                self.linear = nn.Linear(n_in, width * pieces)
                self.width, self.pieces = width, pieces

            def forward(self, x):
                return self.linear(x).view(-1, self.width, self.pieces).amax(-1)

        class Fourier(nn.Module):  # [sin 2 pi x W, cos 2 pi x W] of each packed member
            def __init__(self, n_in: int, features: int, scale: float):
                super().__init__()
                self.w = nn.Parameter(torch.randn(n_in, features) * scale)

            def forward(self, x):
                angles = 2 * torch.pi * (x.view(x.shape[0], m, -1) @ self.w)
                return torch.cat([angles.sin(), angles.cos()], -1).flatten(1)

        layers, width_in = [], shape[0] * m
        fourier = int(model.get("d_fourier_features", 0))
        if fourier:
            layers += [Fourier(shape[0], fourier, float(model.get("d_fourier_scale", 1.0)))]
            width_in = 2 * fourier * m
        for width in model.d_hidden:
            if model.get("d_activation", "leaky_relu") == "maxout":
                layers += [Maxout(width_in, width, int(model.get("maxout_pieces", 5)))]
            else:
                layers += [nn.Linear(width_in, width), nn.LeakyReLU(0.2)]
            width_in = width
        dis = nn.Sequential(*layers, nn.Linear(width_in, 1))
        return gen, dis
    assert model.name == "dcgan", model.name
    h, w, c = shape
    ch = int(model.ch)

    class Reshape(nn.Module):
        def forward(self, x):
            return x.view(-1, 2 * ch, h // 4, w // 4)

    gen = nn.Sequential(
        nn.Linear(latent, h // 4 * w // 4 * 2 * ch, bias=False), Reshape(),
        nn.BatchNorm2d(2 * ch, momentum=0.1), nn.ReLU(),
        nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch, momentum=0.1),
        nn.ReLU(), nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh())
    dis = nn.Sequential(
        nn.Conv2d(c * m, ch, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, 2 * ch, 4, 2, 1),
        nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(h // 4 * w // 4 * 2 * ch, 1))
    return gen, dis


class TorchStep:
    """The same train step in PyTorch (eager, float32, NCHW for images)."""

    def __init__(self, config, shape: tuple[int, ...]):
        torch = _torch()
        self.torch, self.config = torch, config
        torch.manual_seed(0)
        self.gen, self.dis = _torch_networks(config, shape)
        self.gen.train()
        model, optim = config.model, config.optim
        if model.get("penalty", "none") not in ("none", "r1") or (
                model.get("loss", "non_saturating") != "non_saturating"):
            raise SystemExit("the PyTorch reference step has the non-saturating loss with R1 or "
                             "no penalty; the benchmarked configs use those.")
        self.weight = float(model.get("penalty_weight", 0.0)) if model.get("penalty") == "r1" \
            else 0.0
        self.m, self.n_dis, self.latent = (int(model.get("packing", 1)), int(model.n_dis),
                                           int(model.latent_dim))

        def adam(params, part):
            own = dict(optim.get(part, {}))
            return torch.optim.Adam(params, lr=own.get("learning_rate", optim.learning_rate),
                                    betas=(own.get("b1", optim.get("b1", 0.9)),
                                           own.get("b2", optim.get("b2", 0.999))), foreach=True)

        self.opt_g = adam(self.gen.parameters(), "generator")
        self.opt_d = adam(self.dis.parameters(), "discriminator")
        self.decay = float(config.get("ema_decay", 0.0))
        self.ema = [p.detach().clone() for p in self.gen.parameters()]
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (config.batch_size, *shape)).astype(np.float32)
        if len(shape) == 3:
            x = x.transpose(0, 3, 1, 2)
        self.real = torch.from_numpy(x).reshape(self.n_dis, -1, *x.shape[1:])
        self.image = len(shape) == 3

    def pack(self, x):
        if self.m == 1:
            return x
        if self.image:  # (B, C, H, W) -> (B/m, m C, H, W), channels of consecutive examples
            return x.reshape(x.shape[0] // self.m, self.m * x.shape[1], *x.shape[2:])
        return x.reshape(x.shape[0] // self.m, -1)

    def __call__(self) -> Any:
        torch, f = self.torch, self.torch.nn.functional
        per = self.real.shape[1]
        for i in range(self.n_dis):
            with torch.no_grad():
                fake = self.gen(torch.randn(per, self.latent))
            real = self.pack(self.real[i]).requires_grad_(self.weight > 0)
            out = self.dis(torch.cat([real, self.pack(fake)]))[:, 0]
            r, fk = out[:len(real)], out[len(real):]
            loss = f.softplus(-r).mean() + f.softplus(fk).mean()
            if self.weight > 0:
                (grad,) = torch.autograd.grad(r.sum(), real, create_graph=True)
                loss = loss + self.weight * 0.5 * grad.pow(2).flatten(1).sum(1).mean()
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
        fake = self.gen(torch.randn(per, self.latent))
        g_loss = f.softplus(-self.dis(self.pack(fake))[:, 0]).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        if self.decay > 0:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, list(self.gen.parameters()), 1.0 - self.decay)
        return g_loss.item()

    def params(self, part: str) -> int:
        net = self.gen if part == "generator" else self.dis
        return sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------------------------
# Items
# ----------------------------------------------------------------------------------------------


def measure_pair(config, shape: tuple[int, ...], repeats: int, rounds: int) -> Result:
    """gen's and PyTorch's step for ``config``, interleaved rounds; the best median of each."""
    ours, theirs = GenStep(config, shape), TorchStep(config, shape)
    gen_t, torch_t = [], []
    for _ in range(rounds):
        gen_t.append(median_seconds(ours, repeats))
        torch_t.append(median_seconds(theirs, repeats))
    return {
        "gen_s": min(gen_t), "torch_s": min(torch_t), "gen_compile_s": ours.compile_s,
        "params": {p: [ours.params(p), theirs.params(p)] for p in ("generator", "discriminator")},
        "batch": int(config.batch_size), "n_dis": int(config.model.n_dis),
        "packing": int(config.model.get("packing", 1)),
        "penalty": f"{config.model.get('penalty', 'none')} "
                   f"({config.model.get('penalty_weight', 0.0):g})",
        "loss": config.model.get("loss", "non_saturating"),
    }


def measure_mlp(repeats: int, rounds: int) -> Result:
    return measure_pair(load("gan_toy2d"), (2,), repeats, rounds)


def measure_dcgan(repeats: int, rounds: int) -> Result:
    return measure_pair(load("dcgan_mnist"), (28, 28, 1), repeats, rounds)


def measure_gpu(repeats: int, batch: int = GPU_BATCH, ngf: int = 256, ndf: int = 128,
                n_dis: int = 5, warmup: int = 3) -> Result:
    """The ``sngan_cifar10`` step in bf16 on JAX's default device, ``batch`` images per update
    (smaller ``ngf``, ``ndf``, ``n_dis`` give the tiny CPU check of the tests)."""
    config = load("sngan_cifar10", dtype="bfloat16", ngf=ngf, ndf=ndf, n_dis=n_dis,
                  batch_size=n_dis * batch)
    step = GenStep(config, (32, 32, 3))
    seconds = median_seconds(step, repeats, warmup)
    return {
        "device": jax.devices()[0].device_kind, "batch": batch, "n_dis": n_dis, "ngf": ngf,
        "ndf": ndf, "step_s": seconds, "compile_s": step.compile_s,
        "params": {p: step.params(p) for p in ("generator", "discriminator")},
        "real_images_per_s": n_dis * batch / seconds,
        "generated_images_per_s": (n_dis + 1) * batch / seconds,
    }


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def pair_table(rows: dict[str, Result]) -> str:
    lines = [
        "Times in ms per train step (all its discriminator and generator updates and the EMA); "
        "speedup = PyTorch / gen.",
        "",
        "| step | batch | n_dis | loss, penalty | params G / D (gen; torch) | gen ms | PyTorch ms "
        "| speedup | target | gen compile (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {"mlp": "`gan_toy2d`: MLP G and D, 2-D", "dcgan": "`dcgan_mnist`: DCGAN, 28x28x1"}
    for item, r in rows.items():
        p = r["params"]
        speedup = r["torch_s"] / r["gen_s"]
        target = (f"{MLP_TARGET:g}x {'met' if speedup >= MLP_TARGET else 'MISSED'}"
                  if item == "mlp" else "report")
        pack = f", packing {r['packing']}" if r["packing"] > 1 else ""
        lines.append(
            f"| {labels[item]} | {r['batch']}{pack} | {r['n_dis']} | {r['loss']}, "
            f"{r['penalty']} | {p['generator'][0]:,} / {p['discriminator'][0]:,}; "
            f"{p['generator'][1]:,} / {p['discriminator'][1]:,} | {r['gen_s'] * 1e3:.2f} | "
            f"{r['torch_s'] * 1e3:.2f} | {speedup:.2f}x | {target} | {r['gen_compile_s']:.1f} |")
    return "\n".join(lines)


def gpu_table(r: Result | None) -> str:
    if r is None:
        return f"GPU item skipped: JAX's backend is {jax.default_backend()}, not gpu."
    p = r["params"]
    return "\n".join([
        f"GPU ({r['device']}): the `sngan_cifar10` step in bf16 compute (ResNet G "
        f"{p['generator']:,} params, SN-ResNet D {p['discriminator']:,}; hinge loss; "
        f"n_dis = {r['n_dis']}, {r['batch']} images per update).",
        "",
        "| step ms | steps/s | real images/s (D) | generated images/s | compile (s) |",
        "|---|---|---|---|---|",
        f"| {r['step_s'] * 1e3:.2f} | {1 / r['step_s']:.1f} | {r['real_images_per_s']:,.0f} | "
        f"{r['generated_images_per_s']:,.0f} | {r['compile_s']:.1f} |",
    ])


def header(items: list[str], repeats: int, threads: int, rounds: int) -> str:
    versions = [f"jax {jax.__version__}"]
    try:
        import torch

        versions.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    lines = []
    if {"mlp", "dcgan"} & set(items):
        lines.append(
            f"CPU items: {cpu_description(threads)} for both libraries (JAX: CPU affinity; "
            f"torch: `torch.set_num_threads({threads})`), float32, best of {rounds} interleaved "
            f"rounds of the median of {repeats} steps.")
    if "gpu" in items:
        lines.append(f"GPU item: JAX's default device is {device_description()}.")
    return " ".join([*lines, f"{', '.join(versions)}."])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", nargs="+", default=["mlp", "dcgan", "gpu"],
                        choices=["mlp", "dcgan", "gpu"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads for both (default: all)")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be >= 1")
    threads = pin_threads(args.threads)
    if {"mlp", "dcgan"} & set(args.items):
        _torch().set_num_threads(threads)

    results: Result = {"threads": threads, "repeats": args.repeats, "rounds": args.rounds}
    sections = [header(args.items, args.repeats, threads, args.rounds)]
    pairs = {}
    with jax.default_device(jax.devices("cpu")[0]):  # the CPU items stay on CPU beside a GPU
        for item, fn in (("mlp", measure_mlp), ("dcgan", measure_dcgan)):
            if item in args.items:
                pairs[item] = results[item] = fn(args.repeats, args.rounds)
                print(item, json.dumps(results[item]), flush=True)
    if pairs:
        sections.append(pair_table(pairs))
    if "gpu" in args.items:
        results["gpu"] = measure_gpu(args.repeats) if jax.default_backend() == "gpu" else None
        sections.append(gpu_table(results["gpu"]))
    text = "\n\n".join(sections)
    publish(MARKERS, text, results, json_path=args.json, readme=args.readme)


if __name__ == "__main__":
    main()
