"""VAE benchmark: gen's VAE against pythae (PyTorch), side by side in one process.

The model is Burda et al.'s one-layer MNIST VAE in both libraries: 784 -> 200 -> 200 -> 50
Gaussian latents with tanh units, and back to 784 Bernoulli logits; pythae's ``VAE`` with
encoder and decoder modules written to that architecture (``reconstruction_loss="bce"``), gen's
``vae`` task (``model.name="vae"``, the config of ``vae_mnist``). Both start from the same
weights (copied from the torch modules), in float32, on the same number of CPU threads.

- ``train``: one training step at batch 100 (ELBO with one sample, backward, Adam): gen's
  ``Task.step`` under ``jax.jit``; pythae's ``model(batch).loss.backward()`` and
  ``optimizer.step()``. Time per step, the best of ``--rounds`` interleaved medians of
  ``--repeats`` steps.
- ``nll``: the importance-sampled NLL with K = 1000 over 1,000 images: gen's ``evaluate`` (one
  compiled program over all images, the samples drawn in chunks of ``--chunk`` by a
  ``lax.scan``); pythae's ``model.get_nll(x, n_samples=1000, batch_size=100)`` (a Python loop
  over images and batches of samples). Wall time of the whole estimate, and both estimates,
  which must agree.
- ``gpu``: the conv VAE (``vae_digits``'s networks: two stride-2 convolutions, one residual
  block, a discretized logistic mixture) on 32x32x3 images in bfloat16: training images per
  second at ``--gpu-batch``. Runs on whatever device JAX has; on a CPU it is only a smoke test.

    pip install -e ".[bench]" pythae
    python -m experiments.benchmarks.vae [--items train nll gpu] [--readme] [--json out.json]

The data are random binary images of MNIST's size (speed does not depend on the pixels).
``--readme`` writes the tables into README.md between the vae-benchmark markers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.benchmarks.hardware import cpu_description, device_description, pin_threads
from experiments.benchmarks.readme import publish
from experiments.benchmarks.timing import median_seconds

BATCH, DIM, HIDDEN, LATENT = 100, 784, 200, 50
NLL_SAMPLES, NLL_IMAGES = 1000, 1000
TARGETS = {"train": 1.5, "nll": 20.0}  # issue 14: pythae time / gen time
MARKERS = ("<!-- vae-benchmark:start -->", "<!-- vae-benchmark:end -->")
INSTALL = 'pip install -e ".[bench]" pythae'

Result = dict[str, Any]


def vae_config(**model: Any) -> ml_collections.ConfigDict:
    """The ``vae_mnist`` config at batch 100 (``model`` overrides its model keys)."""
    from gen.config import load_config_file

    config = load_config_file(Path(__file__).parents[1] / "configs" / "vae_mnist.py")
    config.batch_size = BATCH
    config.optim.schedule = "constant"
    for key, value in model.items():
        config.model[key] = value
    return config


# ----------------------------------------------------------------------------------------------
# pythae
# ----------------------------------------------------------------------------------------------


def _pythae_model():
    """pythae's VAE with Burda et al.'s encoder and decoder."""
    try:
        import torch
        from pythae.models import VAE, VAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
    except ImportError as err:
        raise SystemExit(f"vae benchmark: torch and pythae are needed ({err.msg}); run "
                         f"{INSTALL}.") from err
    nn = torch.nn

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.body = nn.Sequential(nn.Linear(DIM, HIDDEN), nn.Tanh(),
                                      nn.Linear(HIDDEN, HIDDEN), nn.Tanh())
            self.mean, self.log_var = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

        def forward(self, x):
            h = self.body(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.body = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Tanh(),
                                      nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                                      nn.Linear(HIDDEN, DIM), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.body(z))

    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
    return torch, VAE(config, encoder=Encoder(), decoder=Decoder())


def _copy_weights(torch_model, params: dict) -> dict:
    """gen params holding the torch model's weights (log sigma = log variance / 2)."""
    t = lambda p: jnp.asarray(p.detach().numpy())
    enc, dec = torch_model.encoder, torch_model.decoder
    out_kernel = jnp.concatenate([t(enc.mean.weight).T, 0.5 * t(enc.log_var.weight).T], 1)
    out_bias = jnp.concatenate([t(enc.mean.bias), 0.5 * t(enc.log_var.bias)])
    dense = lambda layer: {"kernel": t(layer.weight).T, "bias": t(layer.bias)}
    return {
        "encoder": {"Dense_0": dense(enc.body[0]), "Dense_1": dense(enc.body[2]),
                    "out": {"kernel": out_kernel, "bias": out_bias}},
        "decoder": {"Dense_0": dense(dec.body[0]), "Dense_1": dense(dec.body[2]),
                    "out": dense(dec.body[4])},
    }


def _setup(nll_chunk: int = 100):
    """Both models with the same weights, gen's task, and the data."""
    from gen.data.source import DataSpec
    from gen.vae.training import build_vae_task

    torch, peer = _pythae_model()
    spec = DataSpec((28, 28, 1), "image")
    config = vae_config(eval_samples=NLL_SAMPLES, eval_chunk=nll_chunk)
    task = build_vae_task(config, spec)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (max(BATCH, NLL_IMAGES), 28, 28, 1)).astype(np.float32)
    state = task.init(jax.random.PRNGKey(0), {"x": jnp.asarray(x[:BATCH])})
    params = _copy_weights(peer, state.params)
    assert jax.tree.structure(params) == jax.tree.structure(state.params)
    from gen.train import TrainState, make_optimizer

    state = TrainState.create(params, make_optimizer(config.optim, config.num_steps),
                              state.rng)
    return torch, peer, task, state, x


def measure_train(repeats: int, rounds: int) -> Result:
    """Seconds per training step at batch 100, gen and pythae, the best of ``rounds``."""
    torch, peer, task, state, x = _setup()
    batch_np = x[:BATCH]
    batch = {"x": jnp.asarray(batch_np)}
    step = jax.jit(task.step, donate_argnums=0)
    start = time.perf_counter()
    step = step.lower(state, batch, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def gen_step():
        holder["state"], metrics = step(holder["state"], batch, jax.random.key(1))
        return metrics["loss"]

    optimizer = torch.optim.Adam(peer.parameters(), lr=1e-3)
    data = {"data": torch.from_numpy(batch_np.transpose(0, 3, 1, 2).copy())}
    peer.train()

    def peer_step():
        optimizer.zero_grad()
        loss = peer(data).loss
        loss.backward()
        optimizer.step()
        return loss

    # at the same weights the two losses are one-sample ELBOs of the same model
    gen_loss, peer_loss = float(gen_step()), float(peer_step())
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(median_seconds(gen_step, repeats))
        theirs.append(median_seconds(peer_step, repeats))
    return {"gen_s": min(ours), "pythae_s": min(theirs), "gen_compile_s": compile_s,
            "gen_first_loss": gen_loss, "pythae_first_loss": peer_loss}


def measure_nll(repeats: int, chunk: int) -> Result:
    """Wall time of the K = 1000 IS estimate over 1,000 images, and both estimates."""
    torch, peer, task, state, x = _setup(chunk)
    params = state.params
    images = {"x": jnp.asarray(x[:NLL_IMAGES])}
    evaluate = jax.jit(task.evaluate)
    start = time.perf_counter()
    evaluate = evaluate.lower(params, images, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    nll = lambda: evaluate(params, images, jax.random.key(0))["nll"]
    gen_s = median_seconds(nll, repeats, warmup=1)
    gen_nll = float(jnp.mean(nll()))
    data = torch.from_numpy(x[:NLL_IMAGES].transpose(0, 3, 1, 2).copy())
    peer.eval()
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            peer_log_px = peer.get_nll(data, n_samples=NLL_SAMPLES, batch_size=100)
            times.append(time.perf_counter() - start)
    return {"gen_s": gen_s, "pythae_s": statistics.median(times), "gen_compile_s": compile_s,
            "gen_nll": gen_nll, "pythae_nll": -float(peer_log_px), "chunk": chunk}


# ----------------------------------------------------------------------------------------------
# GPU: the conv VAE's training throughput in bfloat16
# ----------------------------------------------------------------------------------------------


def measure_gpu(repeats: int, batch: int = 256, image: tuple[int, int, int] = (32, 32, 3),
                channels: tuple[int, ...] = (64, 128), latent: int = 128,
                dtype: str = "bfloat16") -> Result:
    """Training images per second of the conv VAE (DMoL decoder) at ``batch``, in ``dtype``."""
    from gen.data.source import DataSpec
    from gen.vae.training import build_vae_task

    config = vae_config(network="conv", channels=tuple(channels), num_res_blocks=1,
                        likelihood="dmol", num_mixtures=5, latent_dim=latent, dtype=dtype)
    config.data.binarize, config.data.scale, config.data.dequantize = (
        "none", "symmetric", "none")
    config.batch_size = batch
    task = build_vae_task(config, DataSpec(tuple(image), "image"))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (batch, *image)).astype(np.float32)
    batch_x = {"x": jnp.asarray(2 * pixels / 255 - 1)}
    state = jax.jit(task.init)(jax.random.PRNGKey(0), batch_x)
    step = jax.jit(task.step, donate_argnums=0)
    start = time.perf_counter()
    step = step.lower(state, batch_x, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def call():
        holder["state"], metrics = step(holder["state"], batch_x, jax.random.key(1))
        return metrics["loss"]

    step_s = median_seconds(call, repeats)
    params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(holder["state"].params))
    return {"device": device_description(), "batch": batch, "image": list(image),
            "channels": list(channels), "latent": latent, "dtype": dtype, "params": params,
            "step_s": step_s, "images_per_s": batch / step_s, "compile_s": compile_s,
            "loss": float(call())}


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def _verdict(item: str, speedup: float) -> str:
    target = TARGETS[item]
    return f"{target:g}x {'met' if speedup >= target else 'MISSED'}"


def cpu_table(train: Result | None, nll: Result | None) -> str:
    lines = ["| item | gen | pythae | speedup (pythae / gen) | target |", "|---|---|---|---|---|"]
    if train is not None:
        s = train["pythae_s"] / train["gen_s"]
        lines.append(f"| training step, batch {BATCH} (ms) | {train['gen_s'] * 1e3:.2f} | "
                     f"{train['pythae_s'] * 1e3:.2f} | {s:.2f}x | {_verdict('train', s)} |")
    if nll is not None:
        s = nll["pythae_s"] / nll["gen_s"]
        lines.append(f"| IS NLL, K = {NLL_SAMPLES}, {NLL_IMAGES:,} images (s) | "
                     f"{nll['gen_s']:.2f} | {nll['pythae_s']:.2f} | {s:.1f}x | "
                     f"{_verdict('nll', s)} |")
    notes = []
    if train is not None:
        notes.append(f"First-step losses from the same weights (one-sample negative ELBOs): gen "
                     f"{train['gen_first_loss']:.2f}, pythae {train['pythae_first_loss']:.2f} "
                     f"nats; gen compiles its step in {train['gen_compile_s']:.1f} s.")
    if nll is not None:
        notes.append(f"IS NLL estimates from the same weights: gen {nll['gen_nll']:.3f}, pythae "
                     f"{nll['pythae_nll']:.3f} nats; gen draws {nll['chunk']} samples at a time "
                     f"and compiles in {nll['gen_compile_s']:.1f} s.")
    return "\n".join(lines + (["", *notes] if notes else []))


def gpu_table(r: Result | None) -> str:
    if r is None:
        return f"GPU item skipped: JAX's backend is {jax.default_backend()}, not gpu."
    return "\n".join([
        f"Conv VAE on {tuple(r['image'])} images ({r['params'] / 1e6:.2f}M params; channels "
        f"{tuple(r['channels'])}, latent {r['latent']}, DMoL decoder), {r['dtype']} compute, "
        f"batch {r['batch']}, training step with Adam, on {r['device']}.",
        "",
        "| step ms | images/s | compile (s) |",
        "|---|---|---|",
        f"| {r['step_s'] * 1e3:.2f} | {r['images_per_s']:.0f} | {r['compile_s']:.1f} |",
    ])


def header(items: list[str], repeats: int, rounds: int, threads: int) -> str:
    versions = [f"jax {jax.__version__}"]
    try:
        import torch

        versions.append(f"torch {torch.__version__}")
        from importlib.metadata import version

        versions.append(f"pythae {version('pythae')}")
    except Exception:  # peers absent: the GPU item alone
        pass
    lines = []
    if {"train", "nll"} & set(items):
        lines.append(
            f"CPU items: {cpu_description(threads)} for both libraries (JAX: CPU affinity; "
            f"torch: `torch.set_num_threads({threads})`), float32; training step: the best of "
            f"{rounds} interleaved rounds of a median of {repeats} steps; IS NLL: the median of "
            "the runs.")
    if "gpu" in items:
        lines.append(f"GPU item: JAX's default device is {device_description()}.")
    return " ".join([*lines, f"{', '.join(versions)}."])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", nargs="+", default=["train", "nll", "gpu"],
                        choices=["train", "nll", "gpu"])
    parser.add_argument("--repeats", type=int, default=50, help="training steps per median")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nll-repeats", type=int, default=2, help="runs of each IS estimate")
    parser.add_argument("--chunk", type=int, default=100, help="gen's IS samples at a time")
    parser.add_argument("--threads", type=int, help="CPU threads for both (default: all)")
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    results: Result = {"threads": threads}
    if {"train", "nll"} & set(args.items):
        torch, _ = _pythae_model()
        torch.set_num_threads(threads)
    with jax.default_device(jax.devices("cpu")[0]):  # the CPU items stay on CPU beside a GPU
        if "train" in args.items:
            results["train"] = measure_train(args.repeats, args.rounds)
            print("train", results["train"], flush=True)
        if "nll" in args.items:
            results["nll"] = measure_nll(args.nll_repeats, args.chunk)
            print("nll", results["nll"], flush=True)
    sections = [header(args.items, args.repeats, args.rounds, threads)]
    if {"train", "nll"} & set(args.items):
        sections.append(cpu_table(results.get("train"), results.get("nll")))
    if "gpu" in args.items:
        results["gpu"] = (measure_gpu(20, args.gpu_batch) if jax.default_backend() == "gpu"
                          else None)
        sections.append(gpu_table(results["gpu"]))
    text = "\n\n".join(sections)
    publish(MARKERS, text, results, json_path=args.json, readme=args.readme)


if __name__ == "__main__":
    main()
