"""AVEC 2017 / SEWA: video, audio and label CSV per recording."""

from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora import avec2017, find_corpus
from tests.data.corpora.conftest import error_message, write

HEADER = "Instance_name;frameTime;Arousal;Valence;Liking\n"


@pytest.fixture
def corpus(tmp_path) -> Path:
    for name in ("Train_01.avi", "Train_02.mp4", "Devel_01.avi", "Test_01.avi"):
        write(tmp_path / "video" / name)
    write(tmp_path / "audio" / "Train_01.wav")
    write(tmp_path / "labels" / "Train_01.csv",
          HEADER + "Train_01;0.0;0.1;-0.1;0.0\nTrain_01;0.1;0.2;-0.2;0.0\n")
    # No header and commas: name,time,arousal,valence,liking.
    write(tmp_path / "labels" / "Train_02.csv", "Train_02,0.0,0.5,0.25,1\nTrain_02,0.1,0.6,0.3,1\n")
    # Columns found by name in any order.
    write(tmp_path / "labels" / "Devel_01.csv", "Valence,frameTime,Arousal\n0.9,0.0,-0.9\n")
    write(tmp_path / "labels" / "Train_07.csv", HEADER)  # no video: ignored
    write(tmp_path / "features" / "Train_01.csv", "not;labels\n")  # not in labels/: ignored
    return tmp_path


def test_finds_recordings_partitions_and_audio(corpus):
    recordings = avec2017.find_recordings(corpus)
    assert [r.name for r in recordings] == ["Devel_01", "Test_01", "Train_01", "Train_02"]
    assert [r.partition for r in recordings] == ["devel", "test", "train", "train"]
    by_name = {r.name: r for r in recordings}
    assert by_name["Train_01"].extra["audio"] == corpus / "audio" / "Train_01.wav"
    assert by_name["Train_02"].media == corpus / "video" / "Train_02.mp4"
    assert by_name["Test_01"].labels() is None


def test_labels_with_and_without_header(corpus):
    by_name = {r.name: r for r in avec2017.find_recordings(corpus)}
    track = by_name["Train_01"].labels()
    np.testing.assert_allclose(track.times, [0.0, 0.1])
    np.testing.assert_allclose(track.values, [[-0.1, 0.1], [-0.2, 0.2]])  # valence, arousal
    assert track.source == str(corpus / "labels" / "Train_01.csv")
    np.testing.assert_allclose(by_name["Train_02"].labels().values, [[0.25, 0.5], [0.3, 0.6]])
    np.testing.assert_allclose(by_name["Devel_01"].labels().values, [[0.9, -0.9]])


def test_auto_detects_avec2017(corpus):
    assert find_corpus(corpus)[0] == "avec2017"


@pytest.mark.parametrize("row, expected", [
    ("Train_01;0.1;x;0.2;0.0", "line 3: 'x' is not a number"),
    ("Train_01;0.1;0.2;0.0", "line 3: 4 values, expected 5"),
    ("Train_01;0.1;nan;0.2;0.0", "line 3: 'nan' is not a finite number"),
    ("Train_01;0.1;;0.2;0.0", "line 3: '' is not a number"),
])
def test_malformed_rows(tmp_path, row, expected):
    write(tmp_path / "video" / "Train_01.avi")
    path = write(tmp_path / "labels" / "Train_01.csv", HEADER + "Train_01;0.0;0.1;0.1;0\n" + row)
    [recording] = avec2017.find_recordings(tmp_path)
    message = error_message(recording.labels)
    assert str(path) in message and expected in message


def test_header_without_valence(tmp_path):
    write(tmp_path / "video" / "Train_01.avi")
    write(tmp_path / "labels" / "Train_01.csv", "frameTime;Arousal\n0.0;0.1\n")
    [recording] = avec2017.find_recordings(tmp_path)
    assert "header needs" in error_message(recording.labels)


def test_out_of_range_and_decreasing_times(tmp_path):
    write(tmp_path / "video" / "Train_01.avi")
    write(tmp_path / "video" / "Train_02.avi")
    write(tmp_path / "labels" / "Train_01.csv", HEADER + "Train_01;0.0;2.0;0.1;0\n")
    write(tmp_path / "labels" / "Train_02.csv", HEADER + "a;0.1;0;0;0\na;0.0;0;0;0\n")
    first, second = avec2017.find_recordings(tmp_path)
    assert "outside [-1, 1]" in error_message(first.labels)
    assert "increasing" in error_message(second.labels)


def test_duplicate_and_misnamed_videos(tmp_path):
    write(tmp_path / "video" / "Train_01.avi")
    write(tmp_path / "video" / "Train_01.mp4")
    assert "also used by" in error_message(avec2017.find_recordings, tmp_path)
    (tmp_path / "video" / "Train_01.mp4").rename(tmp_path / "video" / "subject3.mp4")
    assert "subject3.mp4" in error_message(avec2017.find_recordings, tmp_path)
