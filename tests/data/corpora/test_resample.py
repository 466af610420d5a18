"""resample_labels against an explicit loop over steps and dimensions."""

import math

import numpy as np
import pytest

from avstan.data.corpora.base import LabelTrack, resample_labels


def resample_by_loop(times: np.ndarray, values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """For each step and dimension: the sample at that time if there is one, else the line
    between the two samples around it; NaN outside the samples or next to an unknown one."""
    out = np.full((len(steps), 2), np.nan)
    for k, step in enumerate(steps):
        for column in range(2):
            hits = [i for i, time in enumerate(times) if abs(time - step) < 1e-9]
            if hits:
                out[k, column] = values[hits[0], column]
                continue
            after = [i for i, time in enumerate(times) if time > step]
            if not after or after[0] == 0:
                continue  # before the first or after the last sample
            right = after[0]
            left = right - 1
            a, b = values[left, column], values[right, column]
            if math.isnan(a) or math.isnan(b):
                continue
            fraction = (step - times[left]) / (times[right] - times[left])
            out[k, column] = a + fraction * (b - a)
    return out


def test_hand_computed_example():
    track = LabelTrack(times=np.array([0.0, 1.0, 2.0, 3.0]),
                       values=np.array([[0.0, np.nan], [1.0, -1.0], [np.nan, -0.5], [0.5, 0.0]]),
                       source="example")
    steps = np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 4.0])
    expected = np.array([[np.nan, np.nan], [0.0, np.nan], [0.5, np.nan], [1.0, -1.0],
                         [np.nan, -0.75], [np.nan, -0.25], [0.5, 0.0], [np.nan, np.nan]])
    result = resample_labels(track, steps)
    assert result.shape == (8, 2) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, equal_nan=True)


def test_matches_loop_with_gaps_and_steps_outside():
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.02, 0.1, size=80))
    values = rng.uniform(-1, 1, size=(80, 2))
    values[:3, 0] = np.nan                      # valence starts late
    values[-5:, 1] = np.nan                     # arousal ends early
    values[rng.random(80) < 0.2, 0] = np.nan    # scattered gaps
    values[30:38, 1] = np.nan                   # one long gap
    track = LabelTrack(times=times, values=values, source="random")
    steps = np.concatenate([np.arange(-0.5, times[-1] + 0.5, 0.05), times[10:13]])
    np.testing.assert_allclose(resample_labels(track, steps),
                               resample_by_loop(times, values, steps),
                               atol=1e-6, equal_nan=True)


def test_dimension_without_any_value_is_all_nan():
    track = LabelTrack(times=np.array([0.0, 0.5]), values=np.array([[0.2, np.nan], [0.4, np.nan]]),
                       source="valence only")
    result = resample_labels(track, np.array([0.0, 0.25, 0.5]))
    np.testing.assert_allclose(result[:, 0], [0.2, 0.3, 0.4], rtol=1e-6)
    assert np.isnan(result[:, 1]).all()


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_an_infinite_label_is_refused_naming_the_file_and_the_time(bad):
    from avstan.errors import AvstanError

    track = LabelTrack(times=np.array([0.0, 0.5, 1.0]),
                       values=np.array([[0.2, 0.1], [bad, 0.3], [0.1, np.nan]]),
                       source="labels/a.csv")
    with pytest.raises(AvstanError, match=r"^labels/a.csv: label value -?inf at time 0.5 s; a "
                                          r"label is a number in \[-1, 1\], or empty"):
        track.validate()
