"""The audio path on real speech, end to end through the command line: 47 labelled
utterances (tests/data/speech) as a generic folder of audio files → `avstan prepare`
(audio-only recordings, eGeMAPS per step) → `avstan train` lstm_ta → `avstan evaluate`
and `avstan baseline`. Values must be finite and well formed; the CCCs are reported, not
asserted (47 short utterances with one label each say little about a model)."""

import csv
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from avstan.cli import main
from avstan.data.store import RecordingStore

SPEECH = Path(__file__).parents[1] / "data" / "speech"


def utterance_labels() -> dict[str, dict[str, float]]:
    labels: dict[str, dict[str, float]] = {}
    for target in ("valence", "arousal"):
        with (SPEECH / f"{target}.csv").open() as handle:
            for name, value in csv.reader(handle):
                labels.setdefault(Path(name).stem, {})[target] = float(value)
    return labels


@pytest.fixture(scope="module")
def speech_corpus(tmp_path_factory) -> Path:
    """The utterances in the generic layout: <name>.wav, <name>.csv (the utterance's one
    label at its start and end), split.csv (every 5th devel, every 5th+1 test)."""
    root = tmp_path_factory.mktemp("speech_corpus")
    split = ["recording,partition"]
    for number, (name, label) in enumerate(sorted(utterance_labels().items())):
        shutil.copy(SPEECH / f"{name}.wav", root / f"{name}.wav")
        with wave.open(str(root / f"{name}.wav")) as handle:
            seconds = handle.getnframes() / handle.getframerate()
        rows = [f"{t:.3f},{label['valence']},{label['arousal']}" for t in (0.0, seconds)]
        (root / f"{name}.csv").write_text("time,valence,arousal\n" + "\n".join(rows) + "\n")
        split.append(f"{name},{['train', 'train', 'train', 'devel', 'test'][number % 5]}")
    (root / "split.csv").write_text("\n".join(split) + "\n")
    return root


@pytest.mark.slow
def test_real_speech_prepares_trains_and_predicts_finite_values(speech_corpus, tmp_path,
                                                                capsys):
    store = tmp_path / "store"
    # 1 s windows: most utterances are shorter than the default 4 s.
    status = main(["prepare", str(speech_corpus), str(store), "--audio-window", "1",
                   "--workers", "1"])
    summary = capsys.readouterr().out
    assert status in (0, 1), summary  # 1: a few utterances shorter than one window
    recordings = list(RecordingStore.open(store))
    assert len(recordings) >= 40, summary
    for recording in recordings:
        assert recording.frames is None and recording.audio_features.shape[1] == 88
        assert np.isfinite(recording.audio_features).mean() > 0.95
    config = {
        "name": "speech-lstm-ta", "output": str(tmp_path / "run"),
        "model": {"name": "lstm_ta", "options": {"hidden": 32, "layers": 2}},
        "data": {"store": str(store), "clip_length": 4, "train_stride": 1, "val_stride": 1,
                 "augment": None},
        "training": {"max_epochs": 8, "batch_size": 16, "lr": 1e-3, "threads": 1,
                     "accelerator": "cpu", "patience": 8},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "config.yaml")]) == 0
    model = tmp_path / "run" / "model.pt"
    assert main(["evaluate", str(model), str(store), "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    with (tmp_path / "eval" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    values = np.array([[float(r["pred_valence"]), float(r["pred_arousal"])] for r in rows])
    assert len(rows) > 20 and np.isfinite(values).all()
    assert main(["baseline", str(store), str(tmp_path / "baseline")]) == 0
    baseline = json.loads((tmp_path / "baseline" / "metrics.json").read_text())
    capsys.readouterr()
    with capsys.disabled():
        print("\nreal speech, test utterances, CCC valence / arousal (concatenated steps): "
              f"lstm_ta {metrics['scores']['valence']['concatenated']['ccc']:.3f} / "
              f"{metrics['scores']['arousal']['concatenated']['ccc']:.3f}; "
              f"AVEC SVR baseline {baseline['scores']['valence']['concatenated']['ccc']:.3f} / "
              f"{baseline['scores']['arousal']['concatenated']['ccc']:.3f}")
