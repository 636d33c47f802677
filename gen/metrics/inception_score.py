"""Inception Score (Salimans et al. 2016) from class logits.

For class probabilities ``p(y|x) = softmax(logits)`` of samples split into ``splits`` consecutive
chunks (chunk ``i`` holds rows ``i N // splits`` to ``(i + 1) N // splits``), each chunk scores::

    IS = exp( mean_x KL(p(y|x) || p(y)) ),   p(y) = mean_x p(y|x) over the chunk

and the result is the mean and (population, ddof 0) standard deviation over chunks, in float64.
This is the original code's convention; torch-fidelity first shuffles the rows with
``np.random.RandomState(2020)``, so pass ``logits[RandomState(2020).permutation(N)]`` to match
it. IS ranges from 1 (every sample predicts the same distribution) to the number of classes.

The FID Inception of ``gen.metrics.inception`` stops at the 2048 pool features (fid-helper-
pytorch's file carries no classifier head), so the logits come from another network, e.g. the
digits/MNIST classifier of ``gen.metrics.classifier``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gen.metrics.checks import as_features, check_positive_int


def inception_score(logits: Any, splits: int = 10) -> tuple[float, float]:
    """``(mean, std)`` of the Inception Score of ``(N, C)`` class logits over ``splits`` chunks."""
    x = as_features(logits, "logits")
    splits = check_positive_int(splits, "splits")
    if splits > len(x):
        raise ValueError(f"splits = {splits} needs at least that many samples, got {len(x)}.")
    if x.shape[1] < 2:
        raise ValueError(f"logits need at least 2 classes, got shape {x.shape}.")
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    n = len(x)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_py = np.log(p[lo:hi].mean(axis=0))
        kl = (p[lo:hi] * (log_p[lo:hi] - log_py)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
