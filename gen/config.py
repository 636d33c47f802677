"""Experiment configs: load an ml_collections config file and apply command-line overrides.

Overrides use absl ``config_flags`` syntax, ``--config.model.hidden=(64,64)`` or
``--config.num_steps 100``, and parse the value as the type of the field they replace. Unlike
``config_flags``, a missing file or an unknown key is a one-line :class:`ConfigError` that
names the closest existing keys.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections

from gen.errors import ConfigError


def load_config_file(path: str | Path) -> ml_collections.ConfigDict:
    """Imports ``path`` and returns its ``get_config()``."""
    path = Path(path)
    if not path.is_file():
        configs = Path(__file__).parents[1] / "experiments" / "configs"
        known = sorted(p.stem for p in configs.glob("*.py") if not p.stem.startswith("_"))
        hint = f" Known configs in experiments/configs: {', '.join(known)}." if known else ""
        raise ConfigError(f"config file {path} does not exist.{hint}")
    spec = importlib.util.spec_from_file_location(f"_gen_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (e.g. Flax modules) defined there need it
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[spec.name]
        raise ConfigError(f"config file {path} failed to import: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config() function.")
    config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() in {path} must return an ml_collections.ConfigDict.")
    return config


def _parse(text: str, current: Any, key: str) -> Any:
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"--config.{key}={text}: expected true or false.")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ConfigError(
            f"--config.{key}={text}: expected a {type(current).__name__} like {current!r}."
        ) from None
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list, int, float)):
        value = type(current)(value if isinstance(value, (tuple, list)) else (value,))
    if current is not None and not isinstance(value, type(current)):
        raise ConfigError(
            f"--config.{key}={text}: expected a {type(current).__name__} like {current!r}."
        )
    return value


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets ``config.<key>`` (a dotted path) from its command-line text."""
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            siblings = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            prefix = ".".join(parts[:i])
            close = difflib.get_close_matches(part, siblings, n=3)
            names = ", ".join((prefix + "." if prefix else "") + c for c in close)
            hint = f" Did you mean {names}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}.{hint}")
        if i < len(parts) - 1:
            node = node[part]
    leaf = parts[-1]
    with node.unlocked():
        node[leaf] = _parse(text, node[leaf], key)


def parse_overrides(argv: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Splits ``--config.KEY=VALUE`` / ``--config.KEY VALUE`` items from the other arguments."""
    overrides, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            body = arg[len("--config."):]
            if "=" in body:
                key, text = body.split("=", 1)
            elif i + 1 < len(argv):
                key, text = body, argv[i + 1]
                i += 1
            else:
                raise ConfigError(f"{arg} needs a value: {arg}=VALUE.")
            overrides.append((key, text))
        else:
            rest.append(arg)
        i += 1
    return overrides, rest


def get_config(
    path: str | Path, overrides: Sequence[tuple[str, str]] = ()
) -> ml_collections.ConfigDict:
    """Loads a config file and applies ``(dotted_key, text)`` overrides in order.

    ``data.KEY`` overrides may name any key of any data source (``gen.data.loaders``), also
    where the config file lacks it; such a key must then belong to the final ``data.source``.
    """
    config = load_config_file(path)
    added = []
    for key, text in overrides:
        if _add_data_key(config, key):
            added.append(key)
        override(config, key, text)
    if added:
        from gen.data.loaders import source_keys

        source = config.data.get("source")
        known = source_keys(source)
        foreign = [k for k in added if k.split(".", 1)[1] not in known]
        if foreign:
            raise ConfigError(
                f"--config.{foreign[0]} is not a key of data.source={source!r}; its keys are "
                f"{', '.join('data.' + k for k in sorted(known))}.")
    return config


def _add_data_key(config: ml_collections.ConfigDict, key: str) -> bool:
    """Adds ``data.NAME`` with its source default when the config lacks it; True if added."""
    section, _, name = key.partition(".")
    if section != "data" or "." in name or not isinstance(config.get("data"),
                                                          ml_collections.ConfigDict):
        return False
    if name in config.data:
        return False
    from gen.data.loaders import all_source_keys

    defaults = all_source_keys()
    if name not in defaults:
        return False
    with config.data.unlocked():
        config.data[name] = defaults[name]
    return True
