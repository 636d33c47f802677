"""DiffAugment (Zhao et al. 2020): differentiable augmentations of the discriminator's inputs.

The same policy, with fresh random parameters per example, is applied to the real and the
generated images of every discriminator and generator update, so D never sees an un-augmented
image and G's gradient flows back through the augmentation. This keeps D from memorizing a
small training set. Images are NHWC in the model's range ([-1, 1]); the operations are those of
the authors' ``DiffAugment_pytorch.py``, per example:

- ``color``: brightness ``x + (a - 0.5)``, then saturation ``(x - mean_c x) 2b + mean_c x``,
  then contrast ``(x - mean x) (c + 0.5) + mean x``, with ``a, b, c ~ U[0, 1)``;
- ``translation``: a shift by integers in ``[-s, s]`` on each axis, ``s = round(H / 8)``
  (``W / 8``), the uncovered border filled with zeros;
- ``cutout``: a square of side ``round(H / 2)`` (``W / 2``) set to zero, centred anywhere
  (clipped at the border).

Values are not clipped afterwards. ``policy`` is a comma-separated list applied in order
(the paper's ``"color,translation,cutout"``); ``""`` is the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen.errors import ConfigError

Array = jax.Array


def color(x: Array, key: Array) -> Array:
    """Random brightness, saturation and contrast per example (see the module docstring)."""
    kb, ks, kc = jax.random.split(key, 3)
    shape = (x.shape[0], 1, 1, 1)
    x = x + (jax.random.uniform(kb, shape, x.dtype) - 0.5)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    x = (x - mean) * (jax.random.uniform(ks, shape, x.dtype) * 2.0) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (jax.random.uniform(kc, shape, x.dtype) + 0.5) + mean


def translation(x: Array, key: Array, ratio: float = 0.125) -> Array:
    """Each example shifted by random integers in ``[-s, s]`` per axis, zeros filled in."""
    _, h, w, _ = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    kh, kw = jax.random.split(key)
    dy = jax.random.randint(kh, (x.shape[0],), -sh, sh + 1)
    dx = jax.random.randint(kw, (x.shape[0],), -sw, sw + 1)
    padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)))

    def shift(image: Array, dy: Array, dx: Array) -> Array:
        # output[i, j] = input[i - dy, j - dx]: a window of the padded image
        return jax.lax.dynamic_slice(image, (sh - dy, sw - dx, 0), (h, w, x.shape[-1]))

    return jax.vmap(shift)(padded, dy, dx)


def cutout(x: Array, key: Array, ratio: float = 0.5) -> Array:
    """A zeroed square of side ``round(ratio H)`` per example, centred uniformly at random."""
    b, h, w, _ = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    kh, kw = jax.random.split(key)
    # The authors' offsets: the square covers rows [oy - ch // 2, oy - ch // 2 + ch).
    oy = jax.random.randint(kh, (b, 1, 1), 0, h + (1 - ch % 2))
    ox = jax.random.randint(kw, (b, 1, 1), 0, w + (1 - cw % 2))
    rows = jnp.arange(h)[None, :, None] - (oy - ch // 2)
    cols = jnp.arange(w)[None, None, :] - (ox - cw // 2)
    inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
    return x * (~inside)[..., None].astype(x.dtype)


OPS: dict[str, Callable[[Array, Array], Array]] = {
    "color": color, "translation": translation, "cutout": cutout,
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """The operations of ``"color,translation,cutout"``; a one-line error for unknown ones."""
    names = tuple(p.strip() for p in str(policy or "").split(",") if p.strip())
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ConfigError(f"model.diffaugment: unknown operation {unknown[0]!r}; use a "
                          f"comma-separated subset of {', '.join(OPS)}, or '' for none.")
    return names


def diff_augment(x: Array, key: Array, policy: str | tuple[str, ...]) -> Array:
    """``x`` (NHWC) through the operations of ``policy`` in order, each with its own key."""
    names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
    if names and x.ndim != 4:
        raise ValueError(f"DiffAugment needs NHWC images, got an array of shape {x.shape}.")
    for name, k in zip(names, jax.random.split(key, max(len(names), 1)), strict=False):
        x = OPS[name](x, k)
    return x
