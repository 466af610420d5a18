"""Scoring on the gold standard's own timeline (AVEC), or on the steps when a corpus has no
gold track; checked against np.interp + audmetric."""

import csv
import json
from dataclasses import replace

import audmetric
import numpy as np
import pytest
from torch import nn

from avstan.data.store import Recording
from avstan.evaluation.postprocess import PostProcessing
from avstan.evaluation.reports import metrics_markdown, write_evaluation
from avstan.evaluation.scoring import evaluate_model
from avstan.evaluation.timeline import onto_times

STEP_RATE = 4.0
TARGETS = ["valence", "arousal"]


class FrameValue(nn.Module):
    """Predicts from the clip's last frame: valence and arousal = its red and green level,
    mapped to [-1, 1]."""

    clip_length = 4
    input_names = ("clip",)

    def forward(self, clip):  # (B, 3, T, S, S) in [0, 1]
        return {"prediction": clip[:, :2, -1].mean(dim=(2, 3)) * 2 - 1}


def expected_prediction(frames: np.ndarray) -> np.ndarray:
    """What FrameValue predicts at every step, computed without the model: (N, 2)."""
    return frames[:, 0, 0, :2].astype(np.float64) / 255 * 2 - 1


def gold_signal(times: np.ndarray, seed: int) -> np.ndarray:
    """(M, 2) gold values with a 4 Hz component that the steps (at 0.1 + k/4 s) sample at
    the same phase every time: zero for valence, its peak for arousal. So the 40 ms track
    and the step labels resampled from it score differently."""
    phase, fast = seed * 0.7, 2 * np.pi * 4 * (times - 0.1)
    valence = 0.5 * np.sin(2 * np.pi * 0.3 * times + phase) + 0.25 * np.sin(fast)
    arousal = 0.4 * np.cos(2 * np.pi * 0.2 * times + phase) + 0.25 * (np.cos(fast) - 1)
    return np.stack([valence, arousal], 1)


def recording(name: str, seed: int, n: int = 40, gold_track: bool = True,
              partition: str = "test") -> Recording:
    """Steps at 0.1 + k/4 s (so the gold track starts before the first step and ends after
    the last); frames whose red and green follow noisy versions of valence and arousal."""
    rng = np.random.default_rng(seed)
    times = 0.1 + np.arange(n) / STEP_RATE
    gold_times = np.arange(int(round((times[-1] + 0.2) / 0.04))) * 0.04
    gold = gold_signal(gold_times, seed)
    gold[:20, 1] = np.nan  # arousal not annotated at the start
    labels = np.stack([np.interp(times, gold_times, gold[:, 0]),
                       np.interp(times, gold_times, np.nan_to_num(gold[:, 1], nan=0.0))], 1)
    labels[times < gold_times[20], 1] = np.nan
    signal = np.clip(0.8 * gold_signal(times, seed) + rng.normal(0, 0.2, (n, 2)), -1, 1)
    value = np.round((signal + 1) / 2 * 255).astype(np.uint8)
    frames = np.zeros((n, 8, 8, 3), np.uint8)
    frames[..., :2] = value[:, None, None, :]
    return Recording(name, frames, times, np.ones(n, bool), labels, step_rate=STEP_RATE,
                     partition=partition,
                     gold_times=gold_times if gold_track else None,
                     gold_labels=gold if gold_track else None)


def independent_scores(series, golds) -> dict:
    """Concatenated and per-recording-mean RMSE/CC/CCC of (M_i,) series with audmetric, NaN
    gold pairs dropped."""
    keep = [np.isfinite(g) for g in golds]
    pred = [np.float64(s[k]) for s, k in zip(series, keep, strict=True)]
    gold = [np.float64(g[k]) for g, k in zip(golds, keep, strict=True)]

    def three(p, g):
        return {"rmse": np.sqrt(audmetric.mean_squared_error(g, p)),
                "cc": audmetric.pearson_cc(g, p), "ccc": audmetric.concordance_cc(g, p)}

    per = [three(p, g) for p, g in zip(pred, gold, strict=True)]
    return {"concatenated": three(np.concatenate(pred), np.concatenate(gold)),
            "per_recording_mean": {m: np.mean([s[m] for s in per]) for m in per[0]}}


def assert_scores_equal(scores: dict, expected: dict) -> None:
    for convention in ("concatenated", "per_recording_mean"):
        for metric in ("rmse", "cc", "ccc"):
            assert scores[convention][metric] == pytest.approx(expected[convention][metric],
                                                               abs=1e-9), (convention, metric)


def test_onto_times_interpolates_and_holds_the_nearest_step_at_the_ends():
    values = np.array([[0.0, 1.0], [10.0, 3.0], [20.0, 5.0]])
    out = onto_times(np.array([1.0, 2.0, 3.0]), values, np.array([0.0, 1.5, 2.75, 9.0]))
    np.testing.assert_allclose(out, [[0, 1], [5, 2], [17.5, 4.5], [20, 5]])


def test_a_gold_track_is_scored_on_its_own_40_ms_timeline():
    recordings = [recording("a", 1), recording("b", 2, n=31)]
    chains = {"valence": PostProcessing(median_window=5, centre_offset=0.05),
              "arousal": PostProcessing(scale_factor=1.5, scale_reference=0.1)}
    for chain in chains.values():
        chain.devel_ccc_raw, chain.devel_ccc = 0.5, 0.6
    evaluation = evaluate_model(FrameValue(), recordings, TARGETS, 4, "frame", "test",
                                batch_size=7, chains=chains)
    assert evaluation.timeline == "gold (40 ms)"
    for rec, result in zip(recordings, evaluation.recordings, strict=True):
        np.testing.assert_allclose(result.prediction, expected_prediction(rec.frames),
                                   atol=1e-6)
    for column, target in enumerate(TARGETS):
        golds = [r.gold_labels[:, column].astype(np.float64) for r in recordings]
        for scores, steps in (
                (evaluation.scores, [p.prediction for p in evaluation.recordings]),
                (evaluation.postprocessed_scores, evaluation.postprocessed)):
            on_gold = [np.interp(r.gold_times, r.times, s[:, column])
                       for r, s in zip(recordings, steps, strict=True)]
            assert_scores_equal(scores[target], independent_scores(on_gold, golds))
            # The same predictions scored against the step labels give another number.
            on_steps = independent_scores([s[:, column] for s in steps],
                                          [r.labels[:, column] for r in recordings])
            assert abs(scores[target]["concatenated"]["ccc"]
                       - on_steps["concatenated"]["ccc"]) > 0.01
        # The chain works on the steps: smoothing over 5 steps, not 5 gold rows.
        np.testing.assert_allclose(
            evaluation.postprocessed[0][:, column],
            chains[target].apply([evaluation.recordings[0].prediction[:, column]])[0])


def test_without_gold_tracks_scores_stay_on_the_steps_and_say_so():
    with_track, without = recording("a", 1), recording("b", 2, gold_track=False)
    for recordings, timeline in (
            ([with_track, without],
             "steps (250 ms); 1 of 2 recordings have no gold track, so none is scored on it"),
            ([replace(with_track, gold_times=None, gold_labels=None), without],
             "steps (250 ms)")):
        evaluation = evaluate_model(FrameValue(), recordings, TARGETS, 4, "frame", "test")
        assert evaluation.timeline == timeline
        for column, target in enumerate(TARGETS):
            expected = independent_scores([p.prediction[:, column]
                                           for p in evaluation.recordings],
                                          [r.labels[:, column] for r in recordings])
            assert_scores_equal(evaluation.scores[target], expected)


def test_the_chain_is_fitted_on_the_devel_steps_not_on_its_gold_track():
    test = [recording("t", 3)]
    devel = [recording("d", 4, partition="devel")]
    fitted = evaluate_model(FrameValue(), test, TARGETS, 4, "frame", "test", devel=devel)
    moved = replace(devel[0], gold_labels=-devel[0].gold_labels)
    refitted = evaluate_model(FrameValue(), test, TARGETS, 4, "frame", "test", devel=[moved])
    assert fitted.postprocessing == refitted.postprocessing
    assert fitted.postprocessing["valence"].devel_ccc_raw != 0


def test_reports_name_the_timeline_and_keep_the_scored_pairs(tmp_path):
    recordings = [recording("a", 1), recording("b", 2, n=31)]
    chains = {t: PostProcessing(centre_offset=0.1, devel_ccc_raw=0.5, devel_ccc=0.6)
              for t in TARGETS}
    evaluation = evaluate_model(FrameValue(), recordings, TARGETS, 4, "frame", "test",
                                chains=chains)
    write_evaluation(evaluation, tmp_path / "gold")
    metrics = json.loads((tmp_path / "gold" / "metrics.json").read_text())
    assert metrics["timeline"] == "gold (40 ms)"
    markdown = metrics_markdown(evaluation)
    assert markdown.count("(test, timeline: gold (40 ms))") == 4
    assert (tmp_path / "gold" / "metrics.md").read_text().strip() == markdown.strip()
    assert "timeline: gold (40 ms)" in (tmp_path / "gold" / "report.html").read_text()
    with open(tmp_path / "gold" / "predictions_gold_timeline.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(r.gold_times) for r in recordings)
    first_b = next(i for i, row in enumerate(rows) if row["recording"] == "b")
    b, result = recordings[1], evaluation.recordings[1]
    times = np.array([float(row["time"]) for row in rows[first_b:]])
    np.testing.assert_allclose(times, b.gold_times, atol=5e-4)
    pred = np.array([float(row["pred_valence"]) for row in rows[first_b:]])
    np.testing.assert_allclose(pred, np.interp(b.gold_times, b.times, result.prediction[:, 0]),
                               atol=1e-5)
    assert pred[0] == pytest.approx(result.prediction[0, 0], abs=1e-5)  # before the 1st step
    after = np.array([float(row["postprocessed_arousal"]) for row in rows[first_b:]])
    np.testing.assert_allclose(after - 0.1, np.interp(b.gold_times, b.times,
                                                      result.prediction[:, 1]), atol=2e-5)
    assert [row["gold_arousal"] for row in rows[first_b:first_b + 20]] == [""] * 20

    steps = evaluate_model(FrameValue(), [replace(r, gold_times=None, gold_labels=None)
                                          for r in recordings], TARGETS, 4, "frame", "test")
    write_evaluation(steps, tmp_path / "steps")
    assert json.loads((tmp_path / "steps" / "metrics.json").read_text())["timeline"] == \
        "steps (250 ms)"
    assert "(test, timeline: steps (250 ms))" in metrics_markdown(steps)
    assert not (tmp_path / "steps" / "predictions_gold_timeline.csv").exists()
