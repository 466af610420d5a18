"""The AVEC 2017 audio baseline: complexity chosen on devel only, outputs like evaluate."""

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.svm import LinearSVR

from avstan.cli import main
from avstan.data.audio import fit_standardisation, standardise
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.baseline import fit_baseline, run_baseline
from avstan.metrics import concordance_cc
from tests.evaluation.test_evaluate import assert_scores_equal, independent_scores


def audio_recordings(store, partition):
    return [r for r in RecordingStore.open(store).load_partition(partition, load_frames=False)
            if r.audio_features is not None]


def test_complexity_is_the_best_on_devel_and_the_fit_is_sklearns(tiny_av_store):
    train, devel = audio_recordings(tiny_av_store, "train"), audio_recordings(tiny_av_store,
                                                                              "devel")
    grid = (1e-4, 1e-2, 1.0)
    baseline = fit_baseline(train, devel, ["arousal"], grid)
    scores = baseline.devel_ccc["arousal"]
    assert set(scores) == set(grid)
    assert baseline.complexity["arousal"] == max(scores, key=scores.get)
    # Independently: standardise with the train statistics, fit liblinear's L2-loss SVR.
    center, scale = fit_standardisation(np.concatenate([r.audio_features for r in train]))
    x = np.concatenate([standardise(r.audio_features, center, scale) for r in train])
    y = np.concatenate([r.labels[:, 1] for r in train])
    known = np.isfinite(y)
    svr = LinearSVR(C=baseline.complexity["arousal"], loss="squared_epsilon_insensitive",
                    epsilon=0.0, dual=True, max_iter=20000, random_state=0).fit(x[known], y[known])
    dx = standardise(devel[0].audio_features, center, scale)
    np.testing.assert_allclose(baseline.predict(devel[0])[:, 0], svr.predict(dx), rtol=1e-5,
                               atol=1e-6)
    gold = devel[0].labels[:, 1]
    assert concordance_cc(svr.predict(dx)[np.isfinite(gold)],
                          gold[np.isfinite(gold)]) == pytest.approx(scores[
                              baseline.complexity["arousal"]], abs=1e-6)


def test_a_lookahead_fits_each_label_on_the_features_steps_later(tiny_av_store, tmp_path):
    """lookahead d: the SVR of the same C, fitted on the features shifted d rows up (the
    last row repeated), predicts step e from step e + d's features."""
    train, devel = audio_recordings(tiny_av_store, "train"), audio_recordings(tiny_av_store,
                                                                              "devel")
    d = 3
    baseline = fit_baseline(train, devel, ["arousal"], (1e-2,), lookahead=d)

    def ahead(features):
        n = len(features)
        return np.concatenate([features[d:], np.repeat(features[-1:], min(d, n), axis=0)])[:n]

    center, scale = fit_standardisation(np.concatenate([r.audio_features for r in train]))
    x = np.concatenate([standardise(ahead(r.audio_features), center, scale) for r in train])
    y = np.concatenate([r.labels[:, 1] for r in train])
    known = np.isfinite(y)
    svr = LinearSVR(C=1e-2, loss="squared_epsilon_insensitive", epsilon=0.0, dual=True,
                    max_iter=20000, random_state=0).fit(x[known], y[known])
    expected = svr.predict(standardise(ahead(devel[0].audio_features), center, scale))
    np.testing.assert_allclose(baseline.predict(devel[0])[:, 0], expected, rtol=1e-5,
                               atol=1e-6)
    plain = fit_baseline(train, devel, ["arousal"], (1e-2,))
    assert not np.allclose(plain.predict(devel[0]), baseline.predict(devel[0]))
    assert main(["baseline", str(tiny_av_store), str(tmp_path / "out"), "--lookahead",
                 str(d)]) == 0
    assert json.loads((tmp_path / "out" / "baseline.json").read_text())["lookahead"] == d
    assert main(["baseline", str(tiny_av_store), str(tmp_path / "bad"), "--lookahead",
                 "-1"]) == 2
    assert not (tmp_path / "bad").exists()


def test_test_labels_cannot_change_the_fit(tiny_av_store, tmp_path):
    first, _ = run_baseline(tiny_av_store, partition="test")
    # Same store with scrambled test labels: the predictions must not move.
    store = RecordingStore.open(tiny_av_store)
    copy = RecordingStore.create(tmp_path / "copy", corpus="copy")
    rng = np.random.default_rng(1)
    for recording in store:
        if recording.partition == "test":
            recording.labels = rng.uniform(-1, 1, recording.labels.shape).astype(np.float32)
        copy.add(recording)
    second, _ = run_baseline(tmp_path / "copy", partition="test")
    for a, b in zip(first.recordings, second.recordings, strict=True):
        np.testing.assert_array_equal(a.prediction, b.prediction)


def test_baseline_command_writes_the_evaluation_files(tiny_av_store, tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"1 recording without audio features left out of "
                                         r"the baseline \(train_000\)"):
        assert main(["baseline", str(tiny_av_store), str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert "complexity chosen on devel" in out.out and "Valence CCC" in out.out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["timeline"] == "steps (250 ms)"  # the synthetic corpus has no gold track
    assert "timeline: steps (250 ms)" in out.out
    # The features follow the labels in this store, so the baseline must find them.
    assert metrics["scores"]["arousal"]["concatenated"]["ccc"] > 0.8
    chosen = json.loads((tmp_path / "out" / "baseline.json").read_text())["complexity"]
    assert set(chosen) == {"valence", "arousal"}
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_store_without_audio_is_one_clear_error(tiny_silent_store, tmp_path, capsys):
    assert main(["baseline", str(tiny_silent_store), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    # One line: no warning per recording before it (issue 18 item 11).
    assert err == (f"avstan: error: {tiny_silent_store}: none of the 2 recordings of the train "
                   "partition has audio features; prepare the corpus with audio (avstan "
                   "prepare, without --no-audio)\n")
    with pytest.raises(AvstanError):
        run_baseline(tiny_silent_store)


def test_a_store_with_gold_tracks_is_scored_on_them(tiny_av_store, tmp_path):
    """The baseline takes the same scoring path as evaluate: predictions interpolated onto
    each recording's 40 ms gold track (which here has a 4 Hz ripple the steps never see)."""
    copy = RecordingStore.create(tmp_path / "gold", corpus="gold")
    for recording in RecordingStore.open(tiny_av_store):
        times = np.arange(0, recording.times[-1] + 0.1, 0.04)
        ripple = 0.2 * np.sin(2 * np.pi * 4 * (times - recording.times[0]) + 0.5)
        gold = np.stack([np.interp(times, recording.times, recording.labels[:, k]) + ripple
                         for k in range(2)], axis=1)
        copy.add(replace(recording, gold_times=times, gold_labels=np.clip(gold, -1, 1)))
    evaluation, _ = run_baseline(tmp_path / "gold", tmp_path / "out", partition="test")
    assert evaluation.timeline == "gold (40 ms)"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["timeline"] == \
        "gold (40 ms)"
    stored = {r.name: r for r in RecordingStore.open(tmp_path / "gold").load_partition("test")}
    for column, target in enumerate(("valence", "arousal")):
        golds = [stored[p.name].gold_labels[:, column] for p in evaluation.recordings]
        for scores, steps in (
                (evaluation.scores, [p.prediction for p in evaluation.recordings]),
                (evaluation.postprocessed_scores, evaluation.postprocessed)):
            on_gold = [np.interp(stored[p.name].gold_times, p.times, s[:, column])
                       for p, s in zip(evaluation.recordings, steps, strict=True)]
            assert_scores_equal(scores[target], independent_scores(on_gold, golds))


def test_a_lookahead_past_every_recording_is_refused(tiny_av_store, tmp_path, capsys):
    """Issue 32: `--lookahead 100000` used to score CCC 0.000 without a word."""
    from avstan.cli import EXIT_USER_ERROR, main

    assert main(["baseline", str(tiny_av_store), str(tmp_path / "out"), "--lookahead",
                 "100000"]) == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--lookahead 100000: every recording is shorter" \
        in error
