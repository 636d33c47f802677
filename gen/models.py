"""The model registry: ``config.model.name`` -> the family module that builds its task.

Each family module exposes ``build_task(config, spec) -> gen.train.Task``. Modules are imported
only when asked for, so one family's dependencies never slow down another's runs.

A family of your own needs no entry here: ``--config.model.name=my_package.my_module:build_task``
names its builder directly (the module must be importable, e.g. on ``PYTHONPATH``).
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
    "ffjord": "gen.flows.training",
    "ddpm": "gen.diffusion.training",
    "fm": "gen.diffusion.training",
    "vae": "gen.vae.training",
    "iwae": "gen.vae.training",
    "vqvae": "gen.vae.training",
    "mlp_gan": "gen.gan.training",
    "dcgan": "gen.gan.training",
    "resnet_gan": "gen.gan.training",
}


def build_task(config: ml_collections.ConfigDict, spec: DataSpec) -> Task:
    """The :class:`Task` for ``config.model.name`` on data described by ``spec``."""
    name = config.model.get("name")
    if isinstance(name, str) and ":" in name:
        return _import_builder(name)(config, spec)
    if name not in FAMILIES:
        raise ConfigError(
            f"model.name={name!r} is not a known model; use one of {', '.join(sorted(FAMILIES))}, "
            "or module.path:build_task for a family of your own."
        )
    module = importlib.import_module(FAMILIES[name])
    builder = getattr(module, f"build_{name}_task", None) or module.build_task
    return builder(config, spec)


def _import_builder(name: str):
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"model.name={name!r}: cannot import {module_name!r} ({e}); put it on "
                          "PYTHONPATH.") from e
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ConfigError(f"model.name={name!r}: {module_name} has no function {attr!r}.")
    return builder
