"""RECOLA (AVEC 2015/2016 layout): videos, gold-standard ARFF files, partitions."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora import find_corpus, recola
from tests.data.corpora.conftest import error_message, write


def arff(name: str, values, step: float = 0.04) -> str:
    rows = "\n".join(f"'{name}',{k * step:.2f},{value}" for k, value in enumerate(values))
    return ("@relation GoldStandard\n\n@attribute Instance_name string\n"
            "@attribute frameTime numeric\n@attribute GoldStandard numeric\n\n@data\n\n"
            f"{rows}\n")


def gold(root: Path, dimension: str, name: str, values) -> Path:
    return write(root / "ratings_gold_standard" / dimension / f"{name}.arff", arff(name, values))


@pytest.fixture
def corpus(tmp_path) -> Path:
    for name in ("train_1.mp4", "train_2.avi", "dev_1.mp4", "test_1.mp4"):
        write(tmp_path / "recordings_video" / name)
    write(tmp_path / "recordings_audio" / "train_1.wav")
    gold(tmp_path, "arousal", "train_1", [0.1, 0.2, 0.3])
    gold(tmp_path, "valence", "train_1", [-0.1, -0.2, -0.3])
    gold(tmp_path, "arousal", "train_2", [0.5, 0.6])
    gold(tmp_path, "arousal", "dev_1", [0.0, 0.0])
    gold(tmp_path, "valence", "dev_1", [0.7, 0.8])
    gold(tmp_path, "arousal", "train_9", [0.0])  # no video: ignored
    write(tmp_path / "features_video_appearance" / "train_1.arff", "@relation features\n")
    return tmp_path


def test_finds_recordings_partitions_and_audio(corpus):
    recordings = recola.find_recordings(corpus)
    assert [r.name for r in recordings] == ["dev_1", "test_1", "train_1", "train_2"]
    assert [r.partition for r in recordings] == ["devel", "test", "train", "train"]
    by_name = {r.name: r for r in recordings}
    assert by_name["train_2"].media == corpus / "recordings_video" / "train_2.avi"
    assert by_name["train_1"].extra["audio"] == corpus / "recordings_audio" / "train_1.wav"
    assert "audio" not in by_name["dev_1"].extra


def test_labels_are_valence_arousal_at_40_ms(corpus):
    by_name = {r.name: r for r in recola.find_recordings(corpus)}
    track = by_name["train_1"].labels()
    np.testing.assert_allclose(track.times, [0.0, 0.04, 0.08])
    np.testing.assert_allclose(track.values, [[-0.1, 0.1], [-0.2, 0.2], [-0.3, 0.3]])
    assert "valence/train_1.arff" in track.source and "arousal/train_1.arff" in track.source
    only_arousal = by_name["train_2"].labels()
    assert np.isnan(only_arousal.values[:, 0]).all()
    np.testing.assert_allclose(only_arousal.values[:, 1], [0.5, 0.6])


def test_test_partition_without_gold_standard_has_no_labels(corpus):
    test = {r.name: r for r in recola.find_recordings(corpus)}["test_1"]
    assert test.read_labels is None and test.labels() is None


def test_recordings_survive_pickling(corpus):
    recordings = pickle.loads(pickle.dumps(recola.find_recordings(corpus)))
    np.testing.assert_allclose(recordings[0].labels().values, [[0.7, 0.0], [0.8, 0.0]])


def test_auto_detects_recola(corpus):
    layout, recordings = find_corpus(corpus)
    assert layout == "recola" and len(recordings) == 4


@pytest.mark.parametrize("row, expected", [
    ("'train_1',0.04,high", "line 10: 'high' is not a number"),
    ("'train_1',0.04", "line 10: 2 values, expected 3"),
    ("'train_1',0.04,NaN", "line 10: 'NaN' is not a finite number"),
    ("'train_1',0.04,", "line 10: '' is not a number"),
])
def test_malformed_rows_name_file_and_line(tmp_path, row, expected):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    path = gold(tmp_path, "arousal", "train_1", [0.1])
    path.write_text(path.read_text() + row + "\n")
    [recording] = recola.find_recordings(tmp_path)
    message = error_message(recording.labels)
    assert str(path) in message and expected in message


def test_out_of_range_value_is_refused(tmp_path):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    gold(tmp_path, "valence", "train_1", [0.1, 1.5])
    [recording] = recola.find_recordings(tmp_path)
    assert "outside [-1, 1]" in error_message(recording.labels)


def test_not_an_arff_file(tmp_path):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    path = write(tmp_path / "ratings_gold_standard" / "arousal" / "train_1.arff", "0.0,0.1\n")
    [recording] = recola.find_recordings(tmp_path)
    assert str(path) in error_message(recording.labels)


def test_dimensions_on_different_timelines(tmp_path):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    gold(tmp_path, "arousal", "train_1", [0.1, 0.2, 0.3])
    gold(tmp_path, "valence", "train_1", [0.1, 0.2])
    [recording] = recola.find_recordings(tmp_path)
    assert "share one timeline" in error_message(recording.labels)


def test_duplicate_recording_name(tmp_path):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    write(tmp_path / "recordings_video" / "train_1.avi")
    message = error_message(recola.find_recordings, tmp_path)
    assert "train_1.avi" in message and "train_1.mp4" in message


def test_video_that_is_not_a_recola_name(tmp_path):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    write(tmp_path / "recordings_video" / "interview.mp4")
    assert "interview.mp4" in error_message(recola.find_recordings, tmp_path)


def test_empty_folder(tmp_path):
    message = error_message(find_corpus, tmp_path, "recola")
    assert str(tmp_path) in message and "no recola recordings" in message


def test_prepared_recording_keeps_the_40_ms_gold_standard(tmp_path):
    """End to end: a real clip in the RECOLA layout, prepared into a store, keeps the ARFF
    gold standard on its own 40 ms timeline next to the step labels resampled from it."""
    from avstan.data.prepare import PrepareConfig, prepare_corpus
    from avstan.data.store import RecordingStore

    media = Path(__file__).parents[1] / "media" / "single_face.mp4"  # 2.4 s
    (tmp_path / "recordings_video").mkdir()
    shutil.copy(media, tmp_path / "recordings_video" / "train_1.mp4")
    times = np.arange(60) * 0.04
    valence = np.round(0.5 * np.sin(2 * np.pi * 1.3 * times), 4)  # faster than 4 steps/s shows
    arousal = np.round(0.3 + 0.2 * np.cos(2 * np.pi * 0.4 * times), 4)
    gold(tmp_path, "valence", "train_1", valence)
    gold(tmp_path, "arousal", "train_1", arousal)
    summary = prepare_corpus(recola.find_recordings(tmp_path), tmp_path / "store",
                             PrepareConfig(crop_size=32, audio_window=None), corpus="recola",
                             workers=1, progress=False)
    assert summary.prepared == ["train_1"], summary.lines()
    recording = RecordingStore.open(tmp_path / "store").load("train_1", load_frames=False)
    assert recording.has_gold_track
    np.testing.assert_allclose(recording.gold_times, times, atol=1e-9)
    np.testing.assert_array_equal(recording.gold_labels,
                                  np.stack([valence, arousal], 1).astype(np.float32))
    # The step labels are the same track resampled at 4 steps/s, so they are fewer.
    assert recording.num_steps < 60 / 5
    inside = recording.times <= times[-1]
    np.testing.assert_allclose(recording.labels[inside, 0],
                               np.interp(recording.times[inside], times, valence), atol=1e-6)
    assert np.isnan(recording.labels[~inside]).all()
