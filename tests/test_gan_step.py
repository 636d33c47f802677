"""The GAN train step: n_dis discriminator updates and one generator update in one jit, TTUR,
the generator's EMA, model state, and bad input refused before the workdir is touched."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gen.data.source import DataSpec
from gen.errors import ConfigError
from gen.gan.training import build_task
from gen.train import loop

VECTORS = DataSpec(shape=(2,), kind="vector")


def tiny_config(**model) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 4
    config.batch_size = 24
    config.log_every = 2
    config.checkpoint_every = 2
    config.eval_every = 4
    config.num_samples = 16
    config.ema_decay = 0.5
    config.ema_start = 0
    config.data = ml_collections.ConfigDict(
        {"source": "toy2d", "name": "25gaussians", "num_train": 240, "num_test": 48})
    config.model = ml_collections.ConfigDict({
        "name": "mlp_gan", "loss": "non_saturating", "penalty": "none", "penalty_weight": 0.0,
        "n_dis": 1, "packing": 1, "latent_dim": 3, "g_hidden": (8, 8), "d_hidden": (8,),
        "spectral_norm": False, **model})
    config.optim = ml_collections.ConfigDict({"name": "adam", "learning_rate": 1e-3})
    return config


def batch(n=24, seed=0):
    return {"x": jax.random.normal(jax.random.key(seed), (n, 2))}


def run_step(config, state=None, key=1):
    task = build_task(config, VECTORS)
    if state is None:
        state = task.init(jax.random.key(0), batch())
    new, metrics = jax.jit(task.step)(state, batch(config.batch_size), jax.random.key(key))
    return task, state, new, metrics


def count(opt_state) -> int:
    return int(opt_state[0].count)  # optax.adam: (ScaleByAdamState, ScaleByScheduleState)


def changed(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                       strict=True))


def test_one_step_does_n_dis_discriminator_updates_and_one_generator_update():
    config = tiny_config(n_dis=3)
    _, _, new, metrics = run_step(config)
    assert count(new.opt_state["discriminator"]) == 3
    assert count(new.opt_state["generator"]) == 1
    assert set(metrics) >= {"loss", "loss_discriminator", "loss_generator", "penalty",
                            "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in jax.tree.leaves(metrics))
    assert all(np.isfinite(v).all() for v in jax.tree.leaves(new.params))
    np.testing.assert_allclose(metrics["loss"],
                               metrics["loss_discriminator"] + metrics["loss_generator"])


def test_each_discriminator_update_sees_its_own_slice_of_the_batch():
    """Permuting rows inside a slice changes nothing; moving a row to another slice does
    (with plain SGD the updates would otherwise commute only to first order)."""
    config = tiny_config(n_dis=2)
    config.optim.name, config.optim.momentum = "sgd", 0.0
    task = build_task(config, VECTORS)
    state = task.init(jax.random.key(0), batch())
    step = jax.jit(task.step)
    x = batch()["x"]
    base, _ = step(state, {"x": x}, jax.random.key(1))
    within = jnp.concatenate([x[:12][::-1], x[12:]])
    permuted, _ = step(state, {"x": within}, jax.random.key(1))
    np.testing.assert_allclose(permuted.params["discriminator"]["Dense_1"]["layer"]["kernel"],
                               base.params["discriminator"]["Dense_1"]["layer"]["kernel"],
                               rtol=1e-5, atol=1e-6)
    swapped = x.at[0].set(x[20]).at[20].set(x[0])
    moved, _ = step(state, {"x": swapped}, jax.random.key(1))
    assert changed(moved.params["discriminator"], base.params["discriminator"])


def test_discriminator_updates_leave_the_generator_alone():
    config = tiny_config(n_dis=2)
    config.optim.generator = ml_collections.ConfigDict({"learning_rate": 0.0})
    _, old, new, _ = run_step(config)
    assert not changed(new.params["generator"], old.params["generator"])
    assert changed(new.params["discriminator"], old.params["discriminator"])
    config.optim.generator.learning_rate = 1e-3
    config.optim.discriminator = ml_collections.ConfigDict({"learning_rate": 0.0})
    _, old, new, _ = run_step(config)
    assert not changed(new.params["discriminator"], old.params["discriminator"])
    assert changed(new.params["generator"], old.params["generator"])


def test_ttur_learning_rates_are_each_players_own():
    """Plain SGD: doubling one player's learning rate doubles that player's update only."""
    deltas = {}
    for lr_g, lr_d in ((0.01, 0.1), (0.02, 0.1), (0.01, 0.2)):
        config = tiny_config()
        config.optim = ml_collections.ConfigDict({"name": "sgd", "momentum": 0.0,
                                                  "learning_rate": 123.0})
        config.optim.generator = ml_collections.ConfigDict({"learning_rate": lr_g})
        config.optim.discriminator = ml_collections.ConfigDict({"learning_rate": lr_d})
        _, old, new, _ = run_step(config)
        deltas[lr_g, lr_d] = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b),
                                          new.params, old.params)
    base = deltas[0.01, 0.1]
    for a, b in zip(jax.tree.leaves(deltas[0.01, 0.2]["discriminator"]),
                    jax.tree.leaves(base["discriminator"]), strict=True):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-3, atol=1e-6)
    # the generator's update is taken after the discriminator's, so only its lr is compared
    for a, b in zip(jax.tree.leaves(deltas[0.02, 0.1]["generator"]),
                    jax.tree.leaves(base["generator"]), strict=True):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-3, atol=1e-6)


def test_ema_averages_the_generator_only_after_its_warm_up():
    config = tiny_config()
    task, old, new, _ = run_step(config)
    assert jax.tree.structure(new.ema_params) == jax.tree.structure(new.params["generator"])
    for e, e0, p in zip(jax.tree.leaves(new.ema_params), jax.tree.leaves(old.ema_params),
                        jax.tree.leaves(new.params["generator"]), strict=True):
        np.testing.assert_allclose(e, 0.5 * e0 + 0.5 * p, rtol=1e-6, atol=1e-7)
    config.ema_start = 3
    _, _, warm, _ = run_step(config)
    for e, p in zip(jax.tree.leaves(warm.ema_params), jax.tree.leaves(warm.params["generator"]),
                    strict=True):
        np.testing.assert_array_equal(e, p)
    # sampling uses the average, with the generator's BatchNorm statistics
    params = task.eval_params(new)
    assert params["generator"] is new.ema_params
    assert params["model_state"]["generator"]["batch_stats"] is not None


def test_batchnorm_statistics_and_spectral_vectors_move_in_their_own_updates():
    config = tiny_config(spectral_norm=True, n_dis=2)
    config.optim.generator = ml_collections.ConfigDict({"learning_rate": 0.0})
    _, old, new, _ = run_step(config)
    assert changed(new.model_state["generator"], old.model_state["generator"])
    assert changed(new.model_state["discriminator"]["spectral"],
                   old.model_state["discriminator"]["spectral"])


@pytest.mark.parametrize("loss,penalty,weight,clip", [
    ("wasserstein", "wgan_gp", 10.0, 0.0), ("hinge", "r1", 1.0, 0.0),
    ("least_squares", "r2", 1.0, 0.0), ("minimax", "none", 0.0, 0.0),
    ("wasserstein", "none", 0.0, 0.01)])
def test_every_loss_and_penalty_trains_with_finite_gradients(loss, penalty, weight, clip):
    config = tiny_config(loss=loss, penalty=penalty, penalty_weight=weight, weight_clip=clip,
                         packing=2)
    _, _, new, metrics = run_step(config)
    assert all(np.isfinite(v) for v in jax.tree.leaves(metrics))
    assert (float(metrics["penalty"]) > 0) == (penalty != "none")
    if clip:
        assert max(float(jnp.abs(p).max())
                   for p in jax.tree.leaves(new.params["discriminator"])) <= clip


@pytest.mark.parametrize("override,message", [
    ({"loss": "wgan"}, r"model\.loss='wgan' is not a GAN loss"),
    ({"penalty": "gp"}, r"model\.penalty='gp' is not a penalty"),
    ({"penalty": "r1", "penalty_weight": -1.0}, r"penalty_weight must be a number >= 0"),
    ({"n_dis": 0}, r"model\.n_dis must be an integer >= 1"),
    ({"n_dis": 5}, r"batch_size=24 must split into model\.n_dis=5 slices"),
    ({"class_conditional": True}, r"class_conditional .* needs labelled data"),
    ({"diffaugment": "color"}, r"diffaugment is for images"),
    ({"weight_clip": -0.1}, r"weight_clip must be a number >= 0"),
    ({"name": "dcgan"}, r"'dcgan' is for images; use mlp_gan"),
])
def test_bad_input_is_a_one_line_error_before_the_workdir_is_touched(tmp_path, override,
                                                                      message):
    config = tiny_config(**override)
    with pytest.raises(ConfigError, match=message) as error:
        loop.train_and_evaluate(config, tmp_path / "w", build_task)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "w").exists()


def test_a_diverging_player_stops_the_run_naming_it_and_the_step(tmp_path):
    """A discriminator whose learning rate blows its weights up makes the generator's loss
    non-finite in the same step; the run stops there and names that player's loss."""
    from gen.errors import NonFiniteLossError

    config = tiny_config(loss="wasserstein")
    config.optim.discriminator = ml_collections.ConfigDict({"learning_rate": 1e38})
    with pytest.raises(NonFiniteLossError, match=r"loss_generator is (nan|-?inf) at step \d"):
        loop.train_and_evaluate(config, tmp_path / "w", build_task)


def test_fourier_discriminator_with_packing_and_instance_noise_trains():
    """Each packed member gets its own Fourier features from one shared W; instance noise
    decays to 0 over its steps (the step reads ``state.step``)."""
    config = tiny_config(packing=4, d_fourier_features=6, d_fourier_scale=0.5,
                         instance_noise=0.5, instance_noise_steps=2, penalty="r1",
                         penalty_weight=1.0)
    task, old, _, metrics = run_step(config)
    assert old.params["discriminator"]["fourier"].shape == (2, 6)
    assert all(np.isfinite(v) for v in jax.tree.leaves(metrics))
    # past the noise's last step the discriminator sees the data itself: the step equals that of
    # the same model without noise (to float32 rounding: two programs, fused differently)
    late = old.replace(step=jnp.asarray(5, jnp.int32))
    noisy, _ = jax.jit(task.step)(late, batch(), jax.random.key(1))
    config.model.instance_noise = 0.0
    clean, _ = jax.jit(build_task(config, VECTORS).step)(late, batch(), jax.random.key(1))
    for a, b in zip(jax.tree.leaves(noisy.params), jax.tree.leaves(clean.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    early, _ = jax.jit(task.step)(old, batch(), jax.random.key(1))
    assert changed(early.params["discriminator"], clean.params["discriminator"])
    with pytest.raises(ConfigError, match=r"instance_noise must be a number >= 0"):
        build_task(tiny_config(instance_noise=-1.0), VECTORS)


def test_linear_decay_reaches_zero_at_the_end_of_each_players_updates():
    from gen.train.optim import learning_rate_schedule

    sched = learning_rate_schedule(ml_collections.ConfigDict(
        {"learning_rate": 2e-4, "schedule": "linear"}), 10)
    np.testing.assert_allclose([sched(0), sched(5), sched(10)], [2e-4, 1e-4, 0.0], atol=1e-12)
    # the discriminator's optimizer counts n_dis updates per step: after the last step both
    # players' learning rates are 0, so a further step moves nothing
    config = tiny_config(n_dis=2)
    config.num_steps = 1
    config.optim.schedule = "linear"
    task, old, new, _ = run_step(config)
    assert changed(new.params, old.params)
    again, _ = jax.jit(task.step)(new, batch(), jax.random.key(3))
    assert not changed(again.params, new.params)
