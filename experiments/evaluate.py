"""Sample-quality metrics of a trained run, merged into its eval.json.

    python -m experiments.evaluate --workdir DIR [--num 10000] \\
        [--metrics fid,kid,precision_recall,density_coverage[,is,mmd,mode_coverage]] \\
        [--ref test|train] [--ref-num N] [--seed 0] [--step S]
    python -m experiments.evaluate --workdir DIR --floor [--metrics ...] [--ref test|train]

Opens the run (``gen.train.load_run``: the latest checkpoint, the EMA params where there are
some), draws ``--num`` samples with a progress bar, computes the features of the samples and of
the reference split (the FID Inception's are cached by the reference's pixels), and merges the
metrics into ``DIR/eval.json`` (``fid``, ``kid``, ``kid_std``, ``precision``, ``recall``,
``density``, ``coverage``, ...; ``fid_classifier``, ... on digits and MNIST), keeping what is
there (``test_nll``, ``test_bpd``), with the protocol under ``sample_metrics``. The metric names
and their features are those of ``gen.metrics.sample_metrics``. Bad input is a one-line error
and leaves the workdir as it was.

``--floor`` draws no samples: it scores the second half of the reference split against its first
half, the value a perfect model reaches with that many samples (FID and KID are biased upwards
at small N), and merges it as ``floor_fid``, ``floor_kid``, ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gen.errors import DataError, UserError

DEFAULT_METRICS = "fid,kid,precision_recall,density_coverage"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def evaluate(workdir: str | Path, num: int = 10_000, metrics: str = DEFAULT_METRICS,
             ref: str = "test", ref_num: int | None = None, seed: int = 0,
             step: int | None = None, progress: bool = True, floor: bool = False) -> dict:
    """Computes the metrics and merges them into ``workdir/eval.json``; returns the new keys."""
    from gen.data.loaders import load as load_data
    from gen.metrics.sample_metrics import SampleMetrics, minimum_samples, parse_metrics
    from gen.train.run import load_run
    from gen.train.writers import write_json

    workdir = Path(workdir)
    names = parse_metrics(metrics)
    if num < minimum_samples(names):
        raise UserError(f"--num {num} is too few: {', '.join(names)} need at least "
                        f"{minimum_samples(names)} samples.")
    if ref_num is not None and ref_num < 2:
        raise UserError(f"--ref-num must be at least 2, got {ref_num}.")
    eval_path = workdir / "eval.json"
    try:
        existing = json.loads(eval_path.read_text()) if eval_path.exists() else {}
    except json.JSONDecodeError as e:
        raise UserError(f"{eval_path} is not valid JSON ({e}); move it away and rerun.") from e
    run = load_run(workdir, step=step)
    try:
        dataset = load_data(run.config.data)
    except DataError as e:
        raise DataError(f"the reference data of {workdir} cannot be read: {e}") from e
    start = time.perf_counter()
    if floor:
        return _floor(workdir, run.config.data, dataset, names, ref, ref_num, existing, start)
    scorer = SampleMetrics.build(run.config.data, dataset, names, ref=ref, ref_limit=ref_num)
    bar = _progress_bar(num, f"sampling step {run.step}") if progress else None
    try:
        samples = run.sample(num, key=seed, progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
    results = scorer(samples)
    results["sample_metrics"] = {
        "step": run.step, "num_samples": num, "seed": seed, "ref": ref,
        "ref_size": scorer.ref_size, "features": scorer.feature_names, "metrics": list(names),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(eval_path, {**existing, **results})
    return results


def _floor(workdir: Path, data_config, dataset, names, ref: str, ref_num: int | None,
           existing: dict, start: float) -> dict:
    """The metrics of the reference split's second half against its first half."""
    from gen.data.source import ArraySource, Dataset
    from gen.metrics.sample_metrics import SampleMetrics, minimum_samples
    from gen.train.writers import write_json

    source = dataset.test if ref == "test" else dataset.train
    n = len(source) if ref_num is None else min(ref_num, len(source))
    half = n // 2
    if half < minimum_samples(names):
        raise UserError(f"the {ref} split's halves ({half} examples) are too few for "
                        f"{', '.join(names)}.")
    x = source[np.arange(2 * half)]
    first = ArraySource(x["x"][:half], None if "y" not in x else x["y"][:half])
    halves = Dataset(dataset.spec, dataset.train if ref == "test" else first, first)
    scorer = SampleMetrics.build(data_config, halves, names, ref="test")
    results = {f"floor_{k}": v for k, v in scorer(x["x"][half:]).items()}
    results["sample_metrics_floor"] = {
        "ref": ref, "halves": half, "features": scorer.feature_names, "metrics": list(names),
        "seconds": round(time.perf_counter() - start, 1)}
    write_json(workdir / "eval.json", {**existing, **results})
    return results


def _progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="sample", dynamic_ncols=True,
                disable=not sys.stderr.isatty())


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m experiments.evaluate", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a trained run's workdir")
    parser.add_argument("--num", type=int, default=10_000, help="samples to draw")
    parser.add_argument("--metrics", default=DEFAULT_METRICS,
                        help=f"comma-separated metric names (default {DEFAULT_METRICS})")
    parser.add_argument("--ref", default="test", choices=["test", "train"],
                        help="the reference split")
    parser.add_argument("--ref-num", type=int, help="use the first N reference examples")
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed")
    parser.add_argument("--step", type=int, help="a checkpoint's step (default: the latest)")
    parser.add_argument("--floor", action="store_true",
                        help="score the reference split's halves against each other instead")
    args = parser.parse_args(argv)
    try:
        results = evaluate(args.workdir, args.num, args.metrics, args.ref, args.ref_num,
                           args.seed, args.step, floor=args.floor)
    except (UserError, ValueError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    shown = "  ".join(f"{k} {v:.4g}" for k, v in results.items() if isinstance(v, float))
    what = "floor" if args.floor else f"step {results['sample_metrics']['step']}"
    print(f"{what}: {shown} (merged into {Path(args.workdir) / 'eval.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
