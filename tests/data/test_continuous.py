"""Continuous recordings from categorical utterances: block plan, timeline and labels
against hand-computed values, the files written, and prepare --continuous end to end."""

import csv
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from avstan.cli import main
from avstan.data.audio import SAMPLE_RATE, load_audio
from avstan.data.continuous import (
    ContinuousConfig,
    build_continuous,
    continuous_labels,
    plan_blocks,
    utterance_starts,
)
from avstan.data.corpora import ravdess
from avstan.data.store import RecordingStore
from avstan.errors import AvstanError

REAL = Path(__file__).parent / "ravdess"


def write_tone(path: Path, seconds: float, rate: int = SAMPLE_RATE, channels: int = 1,
               frequency: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * rate))) / rate
    tone = (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.repeat(tone, channels).tobytes())
    return path


def test_blocks_hold_one_category_each_and_at_most_block_size():
    categories = ["anger"] * 5 + ["sadness"] * 2 + ["neutral"]
    blocks = plan_blocks(categories, 2, np.random.default_rng(0))
    assert sorted(i for block in blocks for i in block) == list(range(8))
    assert all(len({categories[i] for i in block}) == 1 and 1 <= len(block) <= 2
               for block in blocks)
    assert sorted(len(b) for b in blocks if categories[b[0]] == "anger") == [1, 2, 2]
    assert blocks == plan_blocks(categories, 2, np.random.default_rng(0))
    orders = {tuple(map(tuple, plan_blocks(categories, 2, np.random.default_rng(s))))
              for s in range(5)}
    assert len(orders) > 1


def test_labels_follow_the_utterance_playing_on_a_hand_computed_timeline():
    # Durations 1.0, 0.5, 2.0 s with 0.5 s gaps: starts 0, 1.5, 2.5; end 4.5 s.
    starts, total = utterance_starts([1.0, 0.5, 2.0], 0.5)
    np.testing.assert_allclose(starts, [0.0, 1.5, 2.5])
    assert total == pytest.approx(4.5)
    points = np.array([[-0.6, 0.8], [0.0, 0.0], [0.8, 0.5]])
    times, values = continuous_labels(starts, total, points, rate=10.0)
    np.testing.assert_allclose(times, np.arange(46) / 10)
    # 0.0-1.4 (the first utterance and its gap): 15 samples; 1.5-2.4: 10; 2.5-4.5: 21.
    expected = np.array([[-0.6, 0.8]] * 15 + [[0.0, 0.0]] * 10 + [[0.8, 0.5]] * 21)
    np.testing.assert_allclose(values, expected)


@pytest.fixture
def speaker(tmp_path) -> Path:
    root = tmp_path / "corpus"
    actor = root / "Actor_01"
    write_tone(actor / "03-01-05-01-01-01-01.wav", 0.6)
    write_tone(actor / "03-01-05-02-01-02-01.wav", 0.4, rate=48000, channels=2)  # stereo 48k
    write_tone(actor / "03-01-04-01-01-01-01.wav", 0.5)
    write_tone(actor / "03-01-01-01-01-01-01.wav", 0.3)
    write_tone(actor / "02-01-01-01-01-01-01.wav", 0.3)  # video only: not used
    for other in (2, 3):
        write_tone(root / f"Actor_0{other}" / f"03-01-01-01-01-01-0{other}.wav", 0.3)
    (root / "split.csv").write_text("Actor_01,train\nActor_02,devel\nActor_03,test\n")
    return root


def read_rows(path: Path) -> list[list[str]]:
    return [row for row in csv.reader(path.read_text().splitlines()) if row
            and not row[0].startswith("#")][1:]


def test_built_recording_audio_labels_and_segments(speaker, tmp_path):
    sources = [s for s in ravdess.find_recordings(speaker) if s.extra["speaker"] == "Actor_01"]
    assert len(sources) == 5  # the video-only file is found, but not joined
    folder = tmp_path / "store" / "continuous"
    [built] = build_continuous(sources, folder, ContinuousConfig(block_size=3, gap=0.5),
                               log=lambda line: None)
    assert built.name == "Actor_01" and built.partition == "train"
    segments = read_rows(folder / "Actor_01.segments.csv")
    assert len(segments) == 4
    names = [Path(row[0]).stem for row in segments]
    angry = [i for i, n in enumerate(names) if n.startswith("03-01-05")]
    assert angry[1] - angry[0] == 1  # one block: the two angry utterances in a row
    durations = {"03-01-05-01-01-01-01": 0.6, "03-01-05-02-01-02-01": 0.4,
                 "03-01-04-01-01-01-01": 0.5, "03-01-01-01-01-01-01": 0.3}
    starts, total = utterance_starts([durations[n] for n in names], 0.5)
    np.testing.assert_allclose([float(row[1]) for row in segments], starts, atol=1e-3)
    signal = load_audio(folder / "Actor_01.wav")
    assert signal.size == pytest.approx(total * SAMPLE_RATE, abs=2)
    gap = signal[int((starts[1] - 0.4) * SAMPLE_RATE):int((starts[1] - 0.1) * SAMPLE_RATE)]
    assert np.abs(gap).max() == 0.0  # silence between utterances
    track = built.labels()
    np.testing.assert_allclose(track.times, np.arange(len(track.times)) / 10)
    for row, start in zip(segments, starts, strict=True):
        inside = (track.times >= start) & (track.times < start + durations[Path(row[0]).stem])
        np.testing.assert_allclose(track.values[inside],
                                   [[float(row[5]), float(row[6])]] * inside.sum(), atol=1e-4)
    strong = names.index("03-01-05-02-01-02-01")
    assert (float(segments[strong][5]), float(segments[strong][6])) == (-0.75, 1.0)
    # A rerun with the same settings reuses the files; other settings rebuild them.
    stamp = (folder / "Actor_01.wav").stat().st_mtime_ns
    build_continuous(sources, folder, ContinuousConfig(), log=lambda line: None)
    assert (folder / "Actor_01.wav").stat().st_mtime_ns == stamp
    build_continuous(sources, folder, ContinuousConfig(gap=0.25), log=lambda line: None)
    assert load_audio(folder / "Actor_01.wav").size == \
        pytest.approx((1.8 + 3 * 0.25) * SAMPLE_RATE, abs=2)


def test_settings_out_of_range_are_one_line_errors():
    with pytest.raises(AvstanError, match="--block-size 0"):
        ContinuousConfig(block_size=0)
    with pytest.raises(AvstanError, match="--gap -1"):
        ContinuousConfig(gap=-1.0)


def test_prepare_continuous_real_speech_end_to_end(tmp_path, capsys):
    root = tmp_path / "corpus"
    for actor in (1, 19, 21):  # the default split: train, devel, test
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for path in REAL.glob("*.flac"):
            shutil.copy(path, folder / (path.stem[:-2] + f"{actor:02d}.flac"))
    store = tmp_path / "store"
    assert main(["prepare", str(root), str(store), "--layout", "ravdess", "--continuous",
                 "--workers", "1"]) == 0
    opened = RecordingStore.open(store)
    assert opened.names() == ["Actor_01", "Actor_19", "Actor_21"]
    assert [opened.entries[n].partition for n in opened.names()] == ["train", "devel", "test"]
    recording = opened.load("Actor_01")
    assert recording.audio_features.shape == (recording.num_steps, 88)
    assert np.isfinite(recording.audio_features).all()
    # The gold track is the 10 Hz label file; the steps (4 Hz) are resampled from it.
    np.testing.assert_allclose(np.diff(recording.gold_times), 0.1, atol=1e-6)
    assert {(round(float(v), 3), round(float(a), 3)) for v, a in recording.gold_labels} == \
        {(0.0, 0.0), (-0.7, -0.5), (-0.75, 1.0)}
    assert main(["prepare", str(root), str(store), "--layout", "ravdess"]) == 2
    assert "continuous recordings" in capsys.readouterr().err


def test_continuous_needs_a_categorical_corpus(tmp_path, capsys):
    write_tone(tmp_path / "corpus" / "a.wav", 0.5)
    assert main(["prepare", str(tmp_path / "corpus"), str(tmp_path / "store"),
                 "--continuous"]) == 2
    assert "--layout ravdess or --layout cremad" in capsys.readouterr().err
