"""RAVDESS: Actor_NN/MM-VV-EE-II-SS-RR-AA.* names, categories, intensity, speaker split."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora import detect_layout, find_corpus, ravdess
from avstan.data.corpora.acted import CIRCUMPLEX, constant_track, emotion_point
from tests.data.corpora.conftest import error_message, write


def ravdess_corpus(root: Path, actors=range(1, 25)) -> Path:
    """Two utterances per actor (angry strong audio-only, neutral audio-visual)."""
    for actor in actors:
        write(root / f"Actor_{actor:02d}" / f"03-01-05-02-01-01-{actor:02d}.wav")
        write(root / f"Actor_{actor:02d}" / f"01-01-01-01-02-01-{actor:02d}.mp4")
    return root


def test_names_categories_intensity_and_default_split(tmp_path):
    ravdess_corpus(tmp_path)
    layout, recordings = find_corpus(tmp_path)
    assert layout == "ravdess" and len(recordings) == 48
    by_name = {r.name: r for r in recordings}
    angry = by_name["03-01-05-02-01-01-07"]
    assert angry.extra["speaker"] == "Actor_07" and angry.extra["category"] == "anger"
    assert angry.extra["point"] == pytest.approx((-0.75, 1.0))  # strong: ×1.25, clipped
    neutral = by_name["01-01-01-01-02-01-07"]
    assert neutral.media.suffix == ".mp4" and neutral.extra["point"] == (0.0, 0.0)
    partition = {r.extra["speaker"]: r.partition for r in recordings}
    assert [partition[f"Actor_{n:02d}"] for n in (1, 18, 19, 20, 21, 24)] == \
        ["train", "train", "devel", "devel", "test", "test"]


def test_every_emotion_code_maps_to_the_table():
    for code, category in ravdess.EMOTIONS.items():
        fields = ravdess.parse_name(Path(f"03-01-{code}-01-01-01-01.wav"))
        assert fields["category"] == category and category in CIRCUMPLEX
    assert emotion_point("calm") == (0.4, -0.5)
    assert emotion_point("sadness", 0.75) == pytest.approx((-0.525, -0.375))


def test_constant_track_covers_the_utterance():
    track = constant_track(0.35, (0.2, -0.1), "x")
    np.testing.assert_allclose(track.times, [0.0, 0.1, 0.2, 0.3, 0.35])
    np.testing.assert_allclose(track.values, [[0.2, -0.1]] * 5)


def test_names_off_the_scheme_are_skipped_with_one_warning(tmp_path):
    ravdess_corpus(tmp_path)
    write(tmp_path / "Actor_01" / "notes.wav")
    write(tmp_path / "Actor_02" / "03-01-05.wav")
    with pytest.warns(UserWarning) as caught:
        recordings = ravdess.find_recordings(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 2 file(s)" in message and "notes.wav" in message \
        and "03-01-05.wav" in message
    assert len(recordings) == 48


def test_unknown_emotion_code_is_an_error_naming_the_file(tmp_path):
    ravdess_corpus(tmp_path)
    write(tmp_path / "Actor_03" / "03-01-09-01-01-01-03.wav")
    message = error_message(ravdess.find_recordings, tmp_path)
    assert "03-01-09-01-01-01-03.wav" in message and "unknown emotion code 09" in message
    assert "08 surprised" not in message and "08 surprise" in message


def test_empty_speaker_folder_is_skipped_with_a_warning(tmp_path):
    ravdess_corpus(tmp_path)
    (tmp_path / "Actor_25").mkdir()
    with pytest.warns(UserWarning, match="empty speaker folder.*Actor_25"):
        assert len(ravdess.find_recordings(tmp_path)) == 48


def test_split_file_by_speaker_overrides_the_default(tmp_path):
    ravdess_corpus(tmp_path, actors=(1, 2, 3))
    write(tmp_path / "split.csv", "speaker,partition\nActor_01,train\nActor_02,dev\n"
                                  "Actor_03,test\n")
    partition = {r.extra["speaker"]: r.partition for r in ravdess.find_recordings(tmp_path)}
    assert partition == {"Actor_01": "train", "Actor_02": "devel", "Actor_03": "test"}


def test_default_split_leaving_a_partition_empty_is_refused_a_chosen_one_warned(tmp_path):
    ravdess_corpus(tmp_path, actors=range(1, 20))  # no actor 21+: no test speaker
    message = error_message(ravdess.find_recordings, tmp_path)
    assert "default speaker split leaves the test partition without a speaker" in message
    assert "split.csv" in message
    write(tmp_path / "split.csv", "\n".join(f"Actor_{n:02d},train" for n in range(1, 20)))
    with pytest.warns(UserWarning, match="split.csv leaves the devel and test partitions "
                                         "without a speaker; train it with --set "
                                         "training.keep=last_epoch$"):
        recordings = ravdess.find_recordings(tmp_path)
    assert {r.partition for r in recordings} == {"train"}


def test_split_file_must_keep_a_speaker_in_one_partition(tmp_path):
    ravdess_corpus(tmp_path, actors=(1, 2, 3))
    write(tmp_path / "split.csv", "Actor_01,train\nActor_02,devel\nActor_03,test\n"
                                  "03-01-05-02-01-01-01,test\n")
    assert "both train and test" in error_message(ravdess.find_recordings, tmp_path)
    write(tmp_path / "split.csv", "Actor_01,train\nActor_02,devel\n")
    assert "no line for speaker(s) Actor_03" in error_message(ravdess.find_recordings, tmp_path)


def test_not_taken_for_another_layout(tmp_path):
    ravdess_corpus(tmp_path, actors=(1,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect_layout(tmp_path) == "ravdess"
