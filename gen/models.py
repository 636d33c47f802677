"""The model registry: ``config.model.name`` -> the family module that builds its task.

Each family module exposes ``build_task(config, spec) -> gen.train.Task``. Modules are imported
only when asked for, so one family's dependencies never slow down another's runs.
"""

from __future__ import annotations

import importlib

import ml_collections

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.train.task import Task

FAMILIES: dict[str, str] = {
    "realnvp": "gen.flows.training",
    "maf": "gen.flows.training",
    "nsf": "gen.flows.training",
    "nsf_ar": "gen.flows.training",
    "realnvp_image": "gen.flows.training",
    "glow": "gen.flows.training",
    "ddpm": "gen.diffusion.training",
    "fm": "gen.diffusion.training",
}


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The :class:`Task` for ``config.model.name`` on data described by ``spec``."""
    name = config.model.get("name")
    if name not in FAMILIES:
        raise ConfigError(
            f"model.name={name!r} is not a known model; use one of {', '.join(sorted(FAMILIES))}."
        )
    module = importlib.import_module(FAMILIES[name])
    builder = getattr(module, f"build_{name}_task", None) or module.build_task
    return builder(config, spec)
