"""Pictures of samples: image grids, and scatter and density plots for 2-D data."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles uint8 images ``(N, H, W, C)`` into one image with ``pad`` white pixels between."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top:top + h, left:left + w] = img
    return grid


def save_image_grid(path: str | Path, images: np.ndarray, scale: int | None = None) -> None:
    """Saves uint8 images ``(N, H, W, C)`` as a PNG grid, upscaled for small images."""
    from PIL import Image

    grid = image_grid(images)
    scale = scale or max(1, 256 // max(images.shape[1:3]))
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)


def save_scatter(
    path: str | Path,
    samples: np.ndarray,
    data: np.ndarray,
    log_prob: Callable[[np.ndarray], np.ndarray] | None = None,
    title: str = "",
    grid: int = 200,
) -> None:
    """Saves the data beside the model's samples and, given ``log_prob``, its density on a
    ``grid`` x ``grid`` lattice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = np.percentile(data, 0.5, axis=0), np.percentile(data, 99.5, axis=0)
    lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    panels = 3 if log_prob is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 4), squeeze=False)
    axes = axes[0]
    axes[0].scatter(data[:, 0], data[:, 1], s=1, alpha=0.4, color="k")
    axes[0].set_title("data")
    axes[1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, color="C0")
    axes[1].set_title("samples")
    if log_prob is not None:
        xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
        density = np.exp(np.asarray(log_prob(grid), np.float64)).reshape(xx.shape)
        axes[2].imshow(density, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                       cmap="magma", aspect="auto")
        axes[2].set_title("density")
    for ax in axes:
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
