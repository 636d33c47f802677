"""``python -m experiments.run`` that kills itself (SIGKILL) at a chosen moment, for the tests.

    python tests/killed_run.py MOMENT STEP -- --config ... --workdir ... [--config.KEY=VALUE]

MOMENT is where the process dies at step STEP:
- ``after_row``: right after the metrics row of STEP is written, before its checkpoint;
- ``after_checkpoint``: right after the checkpoint of STEP is complete on disk, before anything
  else (the row of STEP, its eval.json at the end of a run).
"""

from __future__ import annotations

import os
import signal
import sys

from gen.train import checkpoint, writers


def main() -> None:
    moment, step, dashes, *argv = sys.argv[1:]
    assert dashes == "--" and moment in ("after_row", "after_checkpoint")
    step = int(step)

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if moment == "after_row":
        write = writers.MetricsWriter.write

        def killing_write(self, s, scalars):
            write(self, s, scalars)
            if s == step:
                self.flush()
                die()

        writers.MetricsWriter.write = killing_write
    else:
        save = checkpoint.Checkpointer.save

        def killing_save(self, state):
            save(self, state)
            if int(state.step) == step:
                self.wait()
                die()

        checkpoint.Checkpointer.save = killing_save

    from experiments import run

    sys.exit(run.main(argv))


if __name__ == "__main__":
    main()
