"""Linear separability of the two modalities: can a hyperplane tell images from texts?

Cross-validated logistic-regression accuracy on a balanced, seeded sample of normalised
rows (0.5 = inseparable, 1.0 = a clean cut, the usual finding for CLIP). sklearn is
imported here only, so `mgap gap --no-separability` never loads it.
"""

from __future__ import annotations

import numpy as np

#: rows drawn from each side at most: enough for a stable accuracy, fast on 2 cores
MAX_PER_SIDE = 2000


def modality_separability(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    max_per_side: int = MAX_PER_SIDE,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """{"accuracy", "std", "n_per_side", "folds"}; accuracy None when a side is too small.

    Only the sampled rows are normalised (in float64), so a whole side is never copied."""
    n = int(min(X.shape[0], Y.shape[0], max_per_side))
    if n < folds:
        return {"accuracy": None, "std": None, "n_per_side": n, "folds": folds}
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    rows_x = rng.choice(X.shape[0], n, replace=False)
    rows_y = rng.choice(Y.shape[0], n, replace=False)
    features = np.vstack([X[rows_x], Y[rows_y]]).astype(np.float64)
    features /= np.maximum(
        np.linalg.norm(features, axis=1, keepdims=True), np.finfo(np.float64).tiny
    )
    target = np.repeat([0, 1], n)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(
        LogisticRegression(max_iter=1000), features, target, cv=splitter, scoring="accuracy"
    )
    return {
        "accuracy": float(scores.mean()),
        "std": float(scores.std()),
        "n_per_side": n,
        "folds": folds,
    }
