"""Unit rows: the one normalisation every measure uses (docs/design.md §7, x̂ = x/‖x‖).

Norms are taken in float64 whatever the input dtype, and a zero row stays zero instead of
becoming NaN, so a padded or skipped row never poisons a mean.
"""

from __future__ import annotations

import numpy as np

#: rows per block of the in-place variant: bounds its float64 temporary
BLOCK = 65_536


def row_norms(X: np.ndarray) -> np.ndarray:
    """The L2 norm of each row, accumulated in float64."""
    return np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))


def unit_rows(X: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """A new array of unit rows in `dtype`."""
    out = np.array(X, dtype=dtype)
    norms = row_norms(out)
    out /= np.where(norms > 0, norms, 1.0).astype(dtype)[:, None]
    return out


def unit_rows_(X: np.ndarray) -> np.ndarray:
    """Unit rows in place, block by block: normalising a float32 side read from a store never
    copies it."""
    for lo in range(0, X.shape[0], BLOCK):
        part = X[lo : lo + BLOCK]
        part /= np.where((norms := row_norms(part)) > 0, norms, 1.0).astype(X.dtype)[:, None]
    return X
