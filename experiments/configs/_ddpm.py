"""What the DDPM configs share, written once: the diffusion keys of ``config.model``.

Each ``ddpm_*`` config keeps its own run, network, sampler and optimizer sections and its
docstring; only the diffusion process, whose keys and comments were the same in every one of
them, comes from here.

Not a config itself (no ``get_config``): the leading underscore keeps it out of the config lists
of ``gen.config`` and ``tests/test_configs.py``.
"""

import ml_collections


def add_diffusion(model: ml_collections.ConfigDict, schedule: str, num_steps: int,
                  prediction: str) -> None:
    """Adds the diffusion keys of gen.diffusion.training to ``model``, after its network keys.

    The noise ``schedule`` ("linear", Ho et al. 2020; "cosine", Nichol & Dhariwal 2021) in
    discrete time with T = ``num_steps``; the network predicts, and the loss regresses,
    ``prediction`` ("eps", or "v" of Salimans & Ho 2022); a fixed reverse variance.
    """
    model.schedule = schedule
    model.schedule_kwargs = ml_collections.ConfigDict({"num_steps": num_steps})
    model.num_train_steps = num_steps
    model.parameterization = prediction
    model.target = prediction
    model.variance = "fixed"  # or "learned_range" (Improved DDPM, hybrid loss)
    model.vlb_weight = 0.001  # lambda of L_hybrid, with learned_range only
