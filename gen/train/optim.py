"""Optimizers from config: ``config.optim`` names the optimizer, its schedule and clipping.

A model of several parts gives each its own optimizer: ``optim.generator.learning_rate`` and
``optim.discriminator.b1`` override, for that part, the keys set directly under ``optim``
(``optim_for_part``); a single network reads ``optim`` alone.
"""

from __future__ import annotations

import ml_collections
import optax

from gen.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear")


def learning_rate_schedule(optim_config, num_steps: int) -> optax.Schedule:
    """Linear warmup over ``warmup_steps``, then ``constant``, ``cosine`` or ``linear`` decay.

    ``linear`` decays to 0 (the schedule of mimicry's and SNGAN's CIFAR-10 runs). The decay
    runs over ``optim.decay_steps`` (default: ``num_steps``). Note that a run
    stopped early by lowering ``num_steps`` is then not the prefix of a longer run; stop one
    with SIGTERM instead, or set ``decay_steps``.
    """
    lr = float(optim_config.get("learning_rate", 1e-3))
    warmup = int(optim_config.get("warmup_steps", 0))
    kind = optim_config.get("schedule", "constant")
    if kind not in SCHEDULES:
        raise ConfigError(f"optim.schedule={kind!r} is not one of {', '.join(SCHEDULES)}.")
    if kind == "constant":
        main = optax.constant_schedule(lr)
    else:
        decay_steps = max(1, int(optim_config.get("decay_steps", 0) or num_steps) - warmup)
        main = (optax.cosine_decay_schedule(lr, decay_steps) if kind == "cosine"
                else optax.linear_schedule(lr, 0.0, decay_steps))
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def optim_for_part(optim_config, part: str) -> ml_collections.ConfigDict:
    """The settings of ``part``: the shared keys of ``optim_config``, then ``optim_config[part]``.

    ``optim_config[part]`` may be absent (the part uses the shared settings).
    """
    shared = {k: v for k, v in optim_config.items()
              if not isinstance(v, (dict, ml_collections.ConfigDict))}
    own = optim_config.get(part)
    if own is not None and not isinstance(own, (dict, ml_collections.ConfigDict)):
        raise ConfigError(f"optim.{part} must be a group of settings, got {own!r}.")
    return ml_collections.ConfigDict({**shared, **dict(own or {})})


def make_optimizer(optim_config, num_steps: int) -> optax.GradientTransformation:
    """The optimizer that ``optim_config`` describes, with optional global-norm clipping.

    Keys: ``name`` (adam, adamw, sgd), ``learning_rate``, ``schedule``, ``warmup_steps``,
    ``decay_steps``, ``b1``, ``b2``, ``weight_decay`` (adamw), ``momentum`` (sgd),
    ``grad_clip`` (0 disables).
    """
    name = optim_config.get("name", "adam")
    lr = learning_rate_schedule(optim_config, num_steps)
    b1, b2 = float(optim_config.get("b1", 0.9)), float(optim_config.get("b2", 0.999))
    if name == "adam":
        tx = optax.adam(lr, b1=b1, b2=b2)
    elif name == "adamw":
        decay = float(optim_config.get("weight_decay", 1e-4))
        tx = optax.adamw(lr, b1=b1, b2=b2, weight_decay=decay)
    elif name == "sgd":
        tx = optax.sgd(lr, momentum=optim_config.get("momentum", 0.9))
    else:
        raise ConfigError(f"optim.name={name!r} is not one of {', '.join(OPTIMIZERS)}.")
    clip = float(optim_config.get("grad_clip", 0.0))
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx
