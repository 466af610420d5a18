"""Expressions and the circumplex: scoring models against categorical labels.

An expression corpus (FER2013, the acted clips) labels a face with a category; avstan maps
each category to a valence/arousal point through the one circumplex table
(``data.corpora.acted.CIRCUMPLEX``). These pure functions score in both spaces:

* :func:`expected_point` — a classifier's class probabilities (N, K) to the expected
  (valence, arousal) under the table (what the FER2013 reference is scored by);
* :func:`nearest_category` — predicted (valence, arousal) points to the nearest category
  point (Euclidean): a category from a regression model without an expression head;
* :func:`sign_agreement` — for clips whose category has a clearly signed valence, the share
  whose predicted valence has that sign.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avstan.data.corpora.acted import CIRCUMPLEX

# categories whose valence is clearly signed (|v| >= 0.5 in the table): the others
# (neutral, surprise, calm) are near zero or ambiguous
SIGN_THRESHOLD = 0.5


def category_points(categories: Sequence[str]) -> np.ndarray:
    """(K, 2) valence/arousal of each category, from the circumplex table."""
    return np.array([CIRCUMPLEX[c] for c in categories], dtype=np.float64)


def expected_point(probabilities: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """(N, 2): Σ_k p_k · point_k for class probabilities (N, K) over ``categories``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return probabilities @ category_points(categories)


def nearest_category(points: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """(N,) index into ``categories`` of the category point nearest to each (valence,
    arousal) point (N, 2)."""
    points = np.asarray(points, dtype=np.float64)
    table = category_points(categories)
    distances = ((points[:, None, :] - table[None, :, :]) ** 2).sum(-1)
    return distances.argmin(axis=1)


def signed_categories(categories: Sequence[str]) -> list[str]:
    """The categories whose table valence is at least SIGN_THRESHOLD from zero."""
    return [c for c in categories if abs(CIRCUMPLEX[c][0]) >= SIGN_THRESHOLD]


def sign_agreement(predicted_valence: np.ndarray, categories: Sequence[str]
                   ) -> tuple[int, int]:
    """(right, total) over the items whose category's valence is clearly signed: how many
    predicted valences have the category's sign."""
    right = total = 0
    for value, category in zip(predicted_valence, categories, strict=True):
        expected = CIRCUMPLEX[category][0]
        if abs(expected) < SIGN_THRESHOLD:
            continue
        total += 1
        right += int(np.sign(value) == np.sign(expected))
    return right, total
