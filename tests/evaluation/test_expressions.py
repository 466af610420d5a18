"""Scoring against expression categories: each function against an explicit loop."""

import math

import numpy as np

from avstan.data.corpora.acted import CIRCUMPLEX
from avstan.data.corpora.images import EXPRESSIONS
from avstan.evaluation.expressions import (
    category_points,
    expected_point,
    nearest_category,
    sign_agreement,
    signed_categories,
)


def random_probabilities(rng, rows, columns):
    raw = rng.random((rows, columns))
    return raw / raw.sum(axis=1, keepdims=True)


def test_category_points_are_the_table_rows_in_order():
    points = category_points(["sadness", "happiness"])
    assert points.shape == (2, 2)
    assert points.tolist() == [list(CIRCUMPLEX["sadness"]), list(CIRCUMPLEX["happiness"])]


def test_expected_point_matches_a_loop():
    rng = np.random.default_rng(0)
    categories = list(EXPRESSIONS)
    probabilities = random_probabilities(rng, 20, len(categories))
    got = expected_point(probabilities, categories)
    assert got.shape == (20, 2)
    for row, p in enumerate(probabilities):
        valence = sum(p[k] * CIRCUMPLEX[c][0] for k, c in enumerate(categories))
        arousal = sum(p[k] * CIRCUMPLEX[c][1] for k, c in enumerate(categories))
        assert math.isclose(got[row, 0], valence, abs_tol=1e-12)
        assert math.isclose(got[row, 1], arousal, abs_tol=1e-12)


def test_a_certain_classifier_gives_the_category_point():
    categories = ["anger", "neutral", "surprise"]
    one_hot = np.eye(3)
    np.testing.assert_allclose(expected_point(one_hot, categories),
                               [CIRCUMPLEX[c] for c in categories])


def test_nearest_category_matches_a_loop_over_categories():
    rng = np.random.default_rng(1)
    categories = list(EXPRESSIONS)
    points = rng.uniform(-1, 1, (200, 2))
    got = nearest_category(points, categories)
    for point, index in zip(points, got, strict=True):
        best, best_distance = None, math.inf
        for k, category in enumerate(categories):
            distance = math.dist(point, CIRCUMPLEX[category])
            if distance < best_distance:
                best, best_distance = k, distance
        assert index == best
    # each category's own point is nearest to itself
    table = np.array([CIRCUMPLEX[c] for c in categories])
    assert nearest_category(table, categories).tolist() == list(range(len(categories)))


def test_signed_categories_leave_out_the_near_zero_valences():
    assert signed_categories(list(CIRCUMPLEX)) == [
        "anger", "fear", "disgust", "happiness", "sadness", "contempt"]


def test_sign_agreement_counts_by_hand():
    predicted = [0.3, -0.2, -0.9, 0.4, 0.5, -0.1, 0.05, 0.0]
    categories = ["happiness", "happiness", "neutral", "sadness", "surprise", "anger",
                  "contempt", "fear"]
    # counted: happiness +0.3 right, happiness -0.2 wrong, neutral ignored, sadness +0.4
    # wrong, surprise ignored, anger -0.1 right, contempt +0.05 wrong, fear 0.0 (no sign)
    # wrong: 2 right of 6
    assert sign_agreement(np.array(predicted), categories) == (2, 6)
    assert sign_agreement(np.array([0.7, -0.7]), ["neutral", "surprise"]) == (0, 0)


def test_sign_agreement_matches_a_loop():
    rng = np.random.default_rng(2)
    names = list(CIRCUMPLEX)
    categories = [names[i] for i in rng.integers(0, len(names), 300)]
    predicted = rng.uniform(-1, 1, 300)
    right = total = 0
    for value, category in zip(predicted, categories, strict=True):
        if category in ("neutral", "surprise", "calm"):
            continue
        total += 1
        right += (value > 0) == (CIRCUMPLEX[category][0] > 0)
    assert sign_agreement(predicted, categories) == (right, total)
    assert 0 < total < 300
