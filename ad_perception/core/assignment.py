"""One-to-one assignment with a gate, shared by camera-lidar association and tracking."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# a finite stand-in for "forbidden" that keeps linear_sum_assignment's sums exact
_FORBIDDEN_COST = 1e6


def associate(cost: np.ndarray, allowed: np.ndarray, gate: float) -> np.ndarray:
    """Minimum-cost one-to-one pairs (K, 2) of (row, column) among ``allowed`` ones.

    Every row and column may also stay unmatched at cost ``gate / 2``, so a pair is only
    taken when it is cheaper than leaving both alone, and one good match is never traded
    for two poor ones (as forcing a maximum number of matches would).
    """
    rows, columns = cost.shape
    if rows == 0 or columns == 0:
        return np.zeros((0, 2), dtype=np.intp)
    unmatched = gate / 2.0
    augmented = np.full((rows + columns, columns + rows), _FORBIDDEN_COST)
    augmented[:rows, :columns] = np.where(allowed, cost, _FORBIDDEN_COST)
    augmented[:rows, columns:][np.diag_indices(rows)] = unmatched
    augmented[rows:, :columns][np.diag_indices(columns)] = unmatched
    augmented[rows:, columns:] = 0.0
    row_index, column_index = linear_sum_assignment(augmented)
    keep = (row_index < rows) & (column_index < columns)
    pairs = np.stack([row_index[keep], column_index[keep]], axis=1)
    return pairs[allowed[pairs[:, 0], pairs[:, 1]]]
