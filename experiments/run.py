"""Train an experiment.

    python -m experiments.run --config experiments/configs/NAME.py --workdir DIR \\
        [--config.KEY=VALUE ...]

A workdir that already holds checkpoints is resumed. The logic lives in ``gen.train.loop``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gen.errors import NonFiniteLossError, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _Parser(prog="python -m experiments.run", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="an experiments/configs/*.py file")
    parser.add_argument("--workdir", required=True, help="where outputs and checkpoints go")
    try:
        from gen.config import get_config, parse_overrides

        overrides, rest = parse_overrides(argv)
        args = parser.parse_args(rest)
        from gen.train.mesh import maybe_initialize_distributed

        maybe_initialize_distributed()
        config = get_config(args.config, overrides)

        from gen.models import build_task
        from gen.train.loop import train_and_evaluate

        result = train_and_evaluate(config, args.workdir, build_task)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result.status == "stopped":
        print(f"stopped at step {result.step}; checkpoint saved. Rerun the same command to resume.")
    else:
        summary = "  ".join(f"{k} {v:.4f}" for k, v in result.eval.items() if k != "step")
        print(f"done at step {result.step}. {summary}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
