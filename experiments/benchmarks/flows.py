"""Flow benchmark: gen against flowjax and distrax on the same NSF coupling architecture.

The architecture (Durkan et al. 2019, NSF-C without the linear layers): D = 8 dimensions, L
rational-quadratic spline couplings with K = 8 bins on [-B, B] (B = 3) and linear identity tails,
each conditioned by an MLP with two hidden layers of 128 ReLU units, alternating halves, over a
standard normal base. Batch 1024, float32, one process, side by side:

- ``gen``: ``flows.realnvp(D, L, transformer=spline_transformer(K, B))`` (scan over layer pairs);
- ``flowjax``: ``coupling_flow(..., RationalQuadraticSpline(knots=K, interval=B))``;
- ``distrax``: a ``Chain`` of ``MaskedCoupling`` with ``RationalQuadraticSpline`` (identity tails).

For each library and depth it reports the compile time (trace, lower and compile of the jitted
function) and the steady-state time of ``log_prob``, ``sample`` and ``value_and_grad`` of the
mean NLL (the best of ``--rounds`` interleaved rounds of a median of ``--repeats`` calls), then
the ratios against gen.

    pip install -e ".[bench]"
    python -m experiments.benchmarks.flows [--layers 8 32] [--repeats 20] [--rounds 5] [--readme]

``--readme`` writes the table into README.md between the flows-benchmark markers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.hardware import device_description
from experiments.benchmarks.readme import publish

DIM, BINS, BOUND, WIDTH, DEPTH = 8, 8, 3.0, 128, 2
FUNCTIONS = ("log_prob", "sample", "value_and_grad")
MARKERS = ("<!-- flows-benchmark:start -->", "<!-- flows-benchmark:end -->")


def build_gen(key: jax.Array, layers: int):
    from flax import linen as nn

    from gen import flows
    from gen.flows.rational_quadratic import spline_transformer

    flow = flows.realnvp(DIM, num_layers=layers, hidden=(WIDTH,) * DEPTH, activation=nn.relu,
                         transformer=spline_transformer(num_bins=BINS, bound=BOUND))
    params = flow.init(key, jnp.zeros(DIM))

    def log_prob(params, x):
        return jax.vmap(flow.log_prob, in_axes=(None, 0))(params, x)

    def sample(params, key, n):
        return jax.vmap(flow.sample, in_axes=(None, 0))(params, jax.random.split(key, n))

    return params, log_prob, sample


def build_flowjax(key: jax.Array, layers: int):
    import equinox as eqx
    import paramax
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow

    flow = coupling_flow(key, base_dist=Normal(jnp.zeros(DIM)),
                         transformer=RationalQuadraticSpline(knots=BINS, interval=BOUND),
                         flow_layers=layers, nn_width=WIDTH, nn_depth=DEPTH,
                         nn_activation=jax.nn.relu)
    params, static = eqx.partition(flow, eqx.is_inexact_array)

    def log_prob(params, x):
        return paramax.unwrap(eqx.combine(params, static)).log_prob(x)

    def sample(params, key, n):
        return paramax.unwrap(eqx.combine(params, static)).sample(key, (n,))

    return params, log_prob, sample


def build_distrax(key: jax.Array, layers: int):
    import distrax

    num_params = 3 * BINS + 1
    sizes = (DIM, *(WIDTH,) * DEPTH, DIM * num_params)

    def init_layer(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [(jax.random.normal(k, (i, o)) * np.sqrt(2.0 / i), jnp.zeros(o))
                for k, i, o in zip(keys, sizes[:-1], sizes[1:], strict=True)]

    params = [init_layer(k) for k in jax.random.split(key, layers)]
    masks = [jnp.arange(DIM) % 2 == (layer % 2) for layer in range(layers)]

    def conditioner(layer_params, x):
        for w, b in layer_params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = layer_params[-1]
        return (x @ w + b).reshape(*x.shape[:-1], DIM, num_params)

    def spline(p):
        return distrax.RationalQuadraticSpline(p, range_min=-BOUND, range_max=BOUND,
                                               boundary_slopes="identity")

    def make(params):
        parts = [distrax.MaskedCoupling(mask=m, bijector=spline,
                                        conditioner=lambda x, p=p: conditioner(p, x))
                 for m, p in zip(masks, params, strict=True)]
        base = distrax.MultivariateNormalDiag(jnp.zeros(DIM), jnp.ones(DIM))
        return distrax.Transformed(base, distrax.Chain(parts))

    def log_prob(params, x):
        return make(params).log_prob(x)

    def sample(params, key, n):
        return make(params).sample(seed=key, sample_shape=(n,))

    return params, log_prob, sample


BUILDERS: dict[str, Callable] = {"gen": build_gen, "flowjax": build_flowjax,
                                 "distrax": build_distrax}


def _time(fn: Callable, args: tuple, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_all(lib: str, layers: int, batch: int) -> tuple[dict, dict[str, float]]:
    """The compiled functions of one library and depth, their arguments, and compile seconds."""
    key = jax.random.key(0)
    params, log_prob, sample = BUILDERS[lib](key, layers)
    x = jax.random.normal(jax.random.key(1), (batch, DIM)) * 1.5  # some points in the tails

    def nll(params, x):
        return -jnp.mean(log_prob(params, x))

    fns = {
        "log_prob": (lambda p, x: log_prob(p, x), (params, x)),
        "sample": (lambda p, k: sample(p, k, batch), (params, jax.random.key(2))),
        "value_and_grad": (jax.value_and_grad(nll), (params, x)),
    }
    compiled, seconds = {}, {}
    for name, (fn, args) in fns.items():
        start = time.perf_counter()
        compiled[name] = (jax.jit(fn).lower(*args).compile(), args)
        seconds[f"{name}_compile_s"] = time.perf_counter() - start
        out = compiled[name][0](*args)
        assert np.all(np.isfinite(np.asarray(jax.tree.leaves(out)[0]))), (lib, name)
    return compiled, seconds


def measure(libs: list[str], layers: int, batch: int, repeats: int,
            rounds: int) -> dict[str, dict[str, float]]:
    """Compile and steady-state seconds of each function, for every library at one depth.

    The libraries are timed in ``rounds`` interleaved rounds (gen, peer, ..., gen, peer, ...) of
    ``repeats`` calls each; the best round's median is kept, since a shared machine's noise only
    ever adds time.
    """
    built = {lib: compile_all(lib, layers, batch) for lib in libs}
    out = {lib: dict(built[lib][1]) for lib in libs}
    for _ in range(rounds):
        for lib in libs:
            for name, (fn, args) in built[lib][0].items():
                t = _time(fn, args, repeats)
                out[lib][f"{name}_s"] = min(out[lib].get(f"{name}_s", np.inf), t)
    return out


def table(results: dict[str, dict[int, dict[str, float]]], batch: int, repeats: int,
          rounds: int) -> str:
    libs = list(results)
    lines = [
        f"NSF coupling flow, D={DIM}, K={BINS}, MLP 2x{WIDTH}, batch {batch}, float32, "
        f"{device_description()}, "
        f"best of {rounds} interleaved rounds of a median of {repeats}; times in ms, compile in "
        "s. Speedup = peer time / gen time.",
        "",
        "| L | library | log_prob | sample | value_and_grad | compile (value_and_grad) |"
        + "".join(f" speedup vs {p} (lp / sample / grad / compile) |" for p in libs[1:]),
        "|---|---|---|---|---|---|" + "---|" * (len(libs) - 1),
    ]
    for layers in next(iter(results.values())):
        for lib in libs:
            r = results[lib][layers]
            ms = " | ".join(f"{r[f'{f}_s'] * 1e3:.2f}" for f in FUNCTIONS)
            row = f"| {layers} | {lib} | {ms} | {r['value_and_grad_compile_s']:.2f} |"
            for peer in libs[1:]:
                if lib != "gen":
                    row += " |"
                    continue
                p = results[peer][layers]
                ratios = [p[f"{f}_s"] / r[f"{f}_s"] for f in FUNCTIONS]
                ratios.append(p["value_and_grad_compile_s"] / r["value_and_grad_compile_s"])
                row += " " + " / ".join(f"{v:.2f}x" for v in ratios) + " |"
            lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; best kept")
    parser.add_argument("--libs", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    libs = ["gen", *[lib for lib in args.libs if lib != "gen"]]
    results: dict[str, dict[int, dict[str, float]]] = {lib: {} for lib in libs}
    for layers in args.layers:
        by_lib = measure(libs, layers, args.batch, args.repeats, args.rounds)
        for lib in libs:
            results[lib][layers] = by_lib[lib]
            print(lib, layers, {k: round(v, 5) for k, v in by_lib[lib].items()}, flush=True)
    text = table(results, args.batch, args.repeats, args.rounds)
    publish(MARKERS, text, results, json_path=args.json, readme=args.readme)


if __name__ == "__main__":
    main()
