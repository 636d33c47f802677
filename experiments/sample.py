"""Sample from a trained run.

    python -m experiments.sample --workdir DIR --num N --out FILE.npy [--seed S] [--labels 0,1,2]

Opens the run's latest checkpoint with ``gen.train.load_run`` (the training data is not needed)
and writes N samples in data units to FILE.npy (uint8 pixels for images, float32 vectors
otherwise); for images it also writes a PNG grid to FILE.png. For a class-conditional run,
--labels splits the samples into equal consecutive groups, one per label (--num 100 --labels
0,1,...,9: one row per class).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gen.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m experiments.sample", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a run's workdir")
    parser.add_argument("--num", type=int, required=True, help="how many samples")
    parser.add_argument("--out", required=True, help="the .npy file to write")
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed")
    parser.add_argument("--labels", help="comma-separated class labels (conditional runs)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        if out.suffix != ".npy":
            raise UserError(f"--out {out} must end in .npy.")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it.")
        labels = None
        if args.labels is not None:
            try:
                labels = [int(c) for c in args.labels.split(",")]
            except ValueError:
                raise UserError(
                    f"--labels {args.labels!r} must be comma-separated integers, e.g. 0,1,2."
                ) from None
        if args.num < 1:
            raise UserError(f"--num must be a positive integer, got {args.num}.")
        from gen.train.run import load_run

        run = load_run(args.workdir)
        samples = run.sample(args.num, key=args.seed, labels=labels)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    np.save(out, samples)
    message = f"wrote {len(samples)} samples of shape {samples.shape[1:]} to {out}"
    if run.spec.kind == "image":
        from gen.train.visualize import save_image_grid

        save_image_grid(out.with_suffix(".png"), samples[:256])
        message += f" and a grid to {out.with_suffix('.png')}"
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
