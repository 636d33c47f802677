"""k-NN manifold metrics: precision and recall (Kynkäänniemi et al. 2019), density and coverage
(Naeem et al. 2020), as the ``prdc`` package (clovaai/generative-evaluation-prdc) defines them.

Real samples ``X_1..X_N``, fake ``Y_1..Y_M``. ``r_k(X_i)`` is the distance from ``X_i`` to its
k-th nearest neighbour among the other real samples (prdc: the (k+1)-th smallest entry of the row
of the full distance matrix, whose diagonal is 0), likewise ``r_k(Y_j)`` among the fakes. With
``B(x, r)`` the *open* ball (prdc tests ``distance < radius``)::

    precision = (1/M) sum_j 1[ exists i: Y_j in B(X_i, r_k(X_i)) ]
    recall    = (1/N) sum_i 1[ exists j: X_i in B(Y_j, r_k(Y_j)) ]
    density   = (1/(kM)) sum_j sum_i 1[ Y_j in B(X_i, r_k(X_i)) ]
    coverage  = (1/N) sum_i 1[ exists j: Y_j in B(X_i, r_k(X_i)) ]

(torch-fidelity's precision/recall test ``<=``; the two differ only on exact ties, e.g.
duplicated samples.) The paper defaults are k = 3 for precision/recall and k = 5 for
density/coverage.

Distances are computed in float64 on the host, in blocks of rows, from
``|x|^2 + |y|^2 - 2 x.y``: beyond a float64 copy of the inputs, memory stays ``O(block (N +
M))`` (about 64 MB per block by default), so 50,000 x 50,000 runs in bounded memory; time grows
as ``(N^2 + M^2 + N M) D`` (5,000 x 5,000 at D = 2048: seconds; the README's benchmark).
Squared distances are compared, which orders them as distances. The real-fake distances are
computed by the same code on the same blocks as the real-real ones, so for identical sets they
are the same numbers and the ties at each radius resolve as in prdc: identical sets of distinct
points score exactly 1 on all four.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gen.metrics.checks import as_features, check_positive_int, check_same_dim

# Rows per block are chosen so that one block of distances holds about this many float64 values.
BLOCK_ELEMENTS = 1 << 23


def _block_rows(cols: int, block_size: int | None) -> int:
    if block_size is not None:
        return check_positive_int(block_size, "block_size")
    return max(1, BLOCK_ELEMENTS // max(cols, 1))


def _sq_dists(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def knn_radii_sq(x: np.ndarray, k: int, block_size: int | None = None) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest other row (prdc's radius)."""
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k = {k} needs at least k + 1 = {k + 1} samples per set, got {n}.")
    sq = np.einsum("ij,ij->i", x, x)
    rows = _block_rows(n, block_size)
    out = np.empty(n)
    for s in range(0, n, rows):
        d = _sq_dists(x[s:s + rows], sq[s:s + rows], x, sq)
        out[s:s + rows] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(real: Any, fake: Any, k: int = 5, block_size: int | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage with one ``k``, as ``prdc.compute_prdc``.

    ``real`` ``(N, D)`` and ``fake`` ``(M, D)`` features (NumPy or JAX); ``k`` must be below both
    N and M. ``block_size`` sets the rows per block of distances (default: about 8M distances).
    """
    r, f = as_features(real, "real"), as_features(fake, "fake")
    check_same_dim(r, f)
    k = check_positive_int(k, "k")
    if k >= min(len(r), len(f)):
        raise ValueError(
            f"k = {k} needs more than k samples in each set, got {len(r)} real and {len(f)} fake."
        )
    radius_real = knn_radii_sq(r, k, block_size)
    radius_fake = knn_radii_sq(f, k, block_size)
    r_sq, f_sq = np.einsum("ij,ij->i", r, r), np.einsum("ij,ij->i", f, f)
    # Blocks of real rows against all fakes: for identical sets, the blocks of knn_radii_sq(r).
    rows = _block_rows(len(f), block_size)
    balls_per_fake = np.zeros(len(f), np.int64)
    recalled = np.empty(len(r), bool)
    covered = np.empty(len(r), bool)
    for s in range(0, len(r), rows):
        d = _sq_dists(r[s:s + rows], r_sq[s:s + rows], f, f_sq)
        inside = d < radius_real[s:s + rows, None]
        balls_per_fake += inside.sum(axis=0)
        covered[s:s + rows] = inside.any(axis=1)
        recalled[s:s + rows] = (d < radius_fake[None, :]).any(axis=1)
    return {
        "precision": float((balls_per_fake > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(balls_per_fake.sum() / (k * len(f))),
        "coverage": float(covered.mean()),
    }


def precision_recall(
    real: Any, fake: Any, k: int = 3, block_size: int | None = None
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), k = 3 by default."""
    out = prdc(real, fake, k, block_size)
    return out["precision"], out["recall"]


def density_coverage(
    real: Any, fake: Any, k: int = 5, block_size: int | None = None
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), k = 5 by default."""
    out = prdc(real, fake, k, block_size)
    return out["density"], out["coverage"]
