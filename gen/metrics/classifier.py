"""A small convnet classifier of a labelled image dataset, whose features give ``fid_classifier``.

Inception features mean little for 8x8 digits or 28x28 MNIST, so these datasets also get a
Fréchet distance in the feature space of a classifier trained on their own training split (as
in the GAN literature's MNIST scores). The network (``ClassifierNet``): ``conv 3x3/2 (w) -> conv
3x3/2 (2w) -> dense (features) -> dense (classes)``, ReLUs, SAME padding, on pixels / 255; the
features are the ReLU outputs of the penultimate dense layer. It is kept small because XLA's CPU
convolutions are slow to train: 1,000 steps take seconds on digits (98.3% test accuracy) and
about half a minute on MNIST-sized images on a 2-core CPU (98.2% trained on 8,000 MNIST test
images, tested on the other 2,000).

Training is deterministic: params from ``jax.random.key(seed)``, minibatches from
``np.random.default_rng(seed)`` epoch permutations, Adam with a cosine-decayed learning rate for
a fixed number of steps, always on the CPU backend (so a GPU's nondeterministic convolutions
never enter). The trained params and the test accuracy are cached in
``gen.metrics.cache.cache_dir()`` as ``classifier-<name>-<key>.npz``, the key a SHA-1 of the
training and test arrays, the settings and ``VERSION``; later calls load them. Another machine
or JAX version may train weights that differ in the last bits; copy the cache file to compare
numbers across machines.

Example::

    >>> clf = load_classifier(ml_collections.ConfigDict({"source": "digits"}))  # doctest: +SKIP
    >>> clf.test_accuracy, clf.features(images).shape  # doctest: +SKIP
    (0.98..., (N, 128))
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from gen.data.source import Dataset, Source
from gen.errors import DataError
from gen.metrics.cache import cache_dir, load_npz, save_npz

Array = jax.Array
VERSION = 1  # bump when the network or the training recipe changes: it keys the cache


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How the classifier is built and trained; every field keys the cache."""

    steps: int = 1000
    batch_size: int = 128
    learning_rate: float = 2e-3
    seed: int = 0
    width: int = 32
    features: int = 128


DEFAULT_SETTINGS = TrainSettings()


class ClassifierNet(nn.Module):
    """Two strided convs and two dense layers; returns ``(features, logits)``."""

    num_classes: int
    width: int = 32
    features: int = 128

    @nn.compact
    def __call__(self, x: Array) -> tuple[Array, Array]:
        x = nn.relu(nn.Conv(self.width, (3, 3), strides=2)(x))
        x = nn.relu(nn.Conv(2 * self.width, (3, 3), strides=2)(x))
        h = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
        return h, nn.Dense(self.num_classes)(h)


def _scale(images: Array) -> Array:
    return jnp.asarray(images).astype(jnp.float32) / 255.0


@functools.cache
def _apply_fn(num_classes: int, width: int, features: int):
    net = ClassifierNet(num_classes, width, features)
    return jax.jit(lambda params, images: net.apply({"params": params}, _scale(images)))


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
    """A trained classifier: ``features(images)``, ``logits(images)`` and its test accuracy."""

    params: Any
    num_classes: int
    image_shape: tuple[int, ...]
    settings: TrainSettings
    test_accuracy: float
    key: str

    def _run(self, images: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(images)
        if x.dtype != np.uint8 or x.shape[1:] != self.image_shape:
            shape = ", ".join(map(str, self.image_shape))
            raise ValueError(
                f"The classifier takes uint8 images of shape (N, {shape}), got {x.dtype} {x.shape}."
            )
        apply = _apply_fn(self.num_classes, self.settings.width, self.settings.features)
        feats = np.empty((len(x), self.settings.features), np.float32)
        logits = np.empty((len(x), self.num_classes), np.float32)
        size = max(1, min(batch_size, len(x)))
        with jax.default_device(jax.devices("cpu")[0]):
            for s in range(0, len(x), size):
                batch = x[s:s + size]
                n = len(batch)
                if n < size:
                    pad = np.zeros((size - n, *self.image_shape), np.uint8)
                    batch = np.concatenate([batch, pad])
                f, lg = apply(self.params, batch)
                feats[s:s + n], logits[s:s + n] = np.asarray(f)[:n], np.asarray(lg)[:n]
        return feats, logits

    def features(self, images: Any, batch_size: int = 1000) -> np.ndarray:
        """``(N, features)`` penultimate-layer features of uint8 images of the dataset's shape."""
        return self._run(images, batch_size)[0]

    def logits(self, images: Any, batch_size: int = 1000) -> np.ndarray:
        """``(N, num_classes)`` class logits (for ``inception_score``)."""
        return self._run(images, batch_size)[1]


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _make_step(net: ClassifierNet, tx: optax.GradientTransformation):
    def loss_fn(params, x, y):
        _, logits = net.apply({"params": params}, _scale(x))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def train(
    x_train: np.ndarray, y_train: np.ndarray, num_classes: int, settings: TrainSettings
) -> Any:
    """Params of a ``ClassifierNet`` trained deterministically on uint8 images, on the CPU."""
    s = settings
    net = ClassifierNet(num_classes, s.width, s.features)
    tx = optax.adam(optax.cosine_decay_schedule(s.learning_rate, s.steps))
    rng = np.random.default_rng(s.seed)
    batch = min(s.batch_size, len(x_train))
    with jax.default_device(jax.devices("cpu")[0]), _optimized():
        params = net.init(jax.random.key(s.seed), _scale(x_train[:1]))["params"]
        opt_state = tx.init(params)
        step = _make_step(net, tx)
        order, pos = rng.permutation(len(x_train)), 0
        for _ in range(s.steps):
            if pos + batch > len(order):
                order, pos = rng.permutation(len(x_train)), 0
            idx = order[pos:pos + batch]
            pos += batch
            params, opt_state, _ = step(params, opt_state, x_train[idx], y_train[idx])
        return jax.device_get(params)


@contextlib.contextmanager
def _optimized():
    """Compiles with XLA's optimizations even where the caller turned most off (as the tests
    do, where unoptimized convolutions made this training 12x slower), so the trained weights
    do not depend on the caller's flags either."""
    flag = "jax_disable_most_optimizations"
    before = jax.config.read(flag)
    jax.config.update(flag, False)
    try:
        yield
    finally:
        jax.config.update(flag, before)


def _arrays(source: Source) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(source, "x") and getattr(source, "y", None) is not None:
        return np.asarray(source.x), np.asarray(source.y)
    batch = source[np.arange(len(source))]
    if "y" not in batch:
        raise DataError("The classifier metric needs a labelled dataset; this one has no labels.")
    return np.asarray(batch["x"]), np.asarray(batch["y"])


def cache_key(name: str, train: tuple, test: tuple, settings: TrainSettings) -> str:
    """SHA-1 of the arrays (shape, dtype and bytes), the settings and ``VERSION``."""
    h = hashlib.sha1()
    h.update(json.dumps({"name": name, "version": VERSION, **dataclasses.asdict(settings)},
                        sort_keys=True).encode())
    for a in (*train, *test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def fit_classifier(
    name: str,
    train_split: tuple[np.ndarray, np.ndarray],
    test_split: tuple[np.ndarray, np.ndarray],
    settings: TrainSettings = DEFAULT_SETTINGS,
    num_classes: int | None = None,
    cache: bool = True,
) -> Classifier:
    """The classifier of ``(x, y)`` uint8 images and int labels: from the cache, or trained.

    ``name`` labels the cache file (e.g. ``"digits"``); the key covers the data itself.
    """
    (x_tr, y_tr), (x_te, y_te) = train_split, test_split
    if x_tr.dtype != np.uint8 or x_tr.ndim != 4 or x_te.shape[1:] != x_tr.shape[1:]:
        raise DataError(
            f"The classifier needs uint8 (N, H, W, C) train and test images of one shape, got "
            f"{x_tr.dtype} {x_tr.shape} and {x_te.dtype} {x_te.shape}."
        )
    if len(x_tr) < 2 or len(x_te) < 1:
        raise DataError(f"The classifier needs training and test examples, got {len(x_tr)} and "
                        f"{len(x_te)}.")
    classes = int(num_classes or max(int(y_tr.max()), int(y_te.max())) + 1)
    shape = tuple(x_tr.shape[1:])
    key = cache_key(name, train_split, test_split, settings)
    path = cache_dir() / f"classifier-{name}-{key[:16]}.npz"
    stored = load_npz(path) if cache else None
    if stored is not None and "key" in stored and str(stored["key"]) == key:
        flat = {leaf: v for leaf, v in stored.items() if leaf.startswith("params/")}
        params = traverse_util.unflatten_dict(flat, sep="/")["params"]
        return Classifier(params, classes, shape, settings, float(stored["test_accuracy"]), key)
    params = train(x_tr, y_tr.astype(np.int32), classes, settings)
    untested = Classifier(params, classes, shape, settings, float("nan"), key)
    acc = float((untested.logits(x_te).argmax(axis=1) == y_te).mean())
    if cache:
        flat = traverse_util.flatten_dict({"params": params}, sep="/")
        save_npz(path, {**{leaf: np.asarray(v) for leaf, v in flat.items()},
                        "test_accuracy": np.array(acc), "key": np.array(key)})
    return dataclasses.replace(untested, test_accuracy=acc)


def load_classifier(data_config: Any, settings: TrainSettings = DEFAULT_SETTINGS,
                    dataset: Dataset | None = None) -> Classifier:
    """The classifier of the image dataset that ``data_config`` describes (``gen.data.load``).

    Trains it on the dataset's training split on first use and caches it; its accuracy is
    measured on the test split. ``dataset`` skips loading when the caller has it already.
    """
    if dataset is None:
        from gen.data import load

        dataset = load(data_config)
    if dataset.spec.kind != "image":
        raise DataError(f"The classifier metric is for image datasets, got {dataset.spec.kind!r}.")
    name = str(data_config.get("source", "data"))
    return fit_classifier(name, _arrays(dataset.train), _arrays(dataset.test), settings,
                          dataset.spec.num_classes)
