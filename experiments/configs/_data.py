"""The ``config.data`` sections that several configs share, written once.

Each function returns a fresh ``ml_collections.ConfigDict`` for one dataset; its parameters are
only what differs between the configs that use it. The keys and their meanings are
``gen.data``'s (``gen.data.loaders.source_keys``; pixel scaling and dequantization:
``gen.data.preprocess``). Any other key of any source can still be added from the command line,
e.g. ``--config.data.source=npy --config.data.path=train.npy``.

Not a config itself (no ``get_config``): the leading underscore keeps it out of the config lists
of ``gen.config`` and ``tests/test_configs.py``.
"""

import ml_collections


def _mnist_files() -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict()
    data.source = "idx"
    data.path = ""
    data.name = "mnist"  # for data.source=tfds
    data.train_split = "train"
    data.test_split = "test"
    return data


def mnist(scale: str, dequantize: str) -> ml_collections.ConfigDict:
    """MNIST from a folder of MNIST-format files (``data.path``; or ``data.source=tfds``), the
    standard 60k/10k splits, pixels scaled to ``scale`` ("unit" or "symmetric") and dequantized
    by ``dequantize`` ("uniform" or "none")."""
    data = _mnist_files()
    data.scale = scale
    data.dequantize = dequantize
    return data


def binarized_mnist() -> ml_collections.ConfigDict:
    """MNIST as :func:`mnist` finds it, dynamically binarized: a fresh Bernoulli(x / 255) draw of
    every pixel at every step (Burda et al. 2016)."""
    data = _mnist_files()
    data.binarize = "dynamic"
    return data


def cifar10() -> ml_collections.ConfigDict:
    """CIFAR-10 from TFDS (prepared on first use), the standard 50k/10k splits, scaled to [-1, 1]
    and not dequantized, as every CIFAR-10 config here uses it."""
    data = ml_collections.ConfigDict()
    data.source = "tfds"
    data.name = "cifar10"
    data.train_split = "train"
    data.test_split = "test"
    data.scale = "symmetric"
    data.dequantize = "none"
    return data


def digits(scale: str, dequantize: str) -> ml_collections.ConfigDict:
    """scikit-learn's 8x8 digits (1,437 training and 360 test digits, a stratified split), pixels
    scaled to ``scale`` ("unit" or "symmetric") and dequantized by ``dequantize`` ("uniform" or
    "none")."""
    data = ml_collections.ConfigDict()
    data.source = "digits"
    data.scale = scale
    data.dequantize = dequantize
    return data


def toy2d(name: str, num_train: int = 100_000, num_test: int = 20_000,
          npy_paths: bool = True) -> ml_collections.ConfigDict:
    """``num_train`` and ``num_test`` points of the 2-D density ``name`` (gen.data.toy2d).

    With ``npy_paths``, also the (empty) ``path`` and ``test_path`` of ``data.source=npy``, so
    that the config lists the keys that train it on a user's own (N, 2) array.
    """
    data = ml_collections.ConfigDict()
    data.source = "toy2d"
    data.name = name
    data.num_train = num_train
    data.num_test = num_test
    if npy_paths:
        data.path = ""
        data.test_path = ""
    return data
