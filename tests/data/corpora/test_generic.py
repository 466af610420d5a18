"""Generic: any folder of media files with optional <name>.csv labels and split.csv."""

from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora import find_corpus, generic
from tests.data.corpora.conftest import error_message, write


@pytest.fixture
def corpus(tmp_path) -> Path:
    write(tmp_path / "a.mp4")
    write(tmp_path / "a.csv", "time,valence,arousal\n0.0,0.5,-0.5\n0.5,,0.25\n1.0,nan,0\n")
    write(tmp_path / "session1" / "clip.MKV")
    write(tmp_path / "session1" / "clip.wav")  # beside the video: its audio
    write(tmp_path / "session1" / "clip.csv", "arousal;time\n0.1;0.0\n0.2;0.25\n")
    write(tmp_path / "session2" / "speech.flac")
    write(tmp_path / "orphan.csv", "time,valence\n0,0\n")  # no media: ignored
    write(tmp_path / "readme.txt", "not media")
    return tmp_path


def test_names_media_and_audio(corpus):
    recordings = generic.find_recordings(corpus)
    assert [r.name for r in recordings] == ["a", "session1__clip", "session2__speech"]
    assert all(r.partition == "train" for r in recordings)
    by_name = {r.name: r for r in recordings}
    assert by_name["session1__clip"].media == corpus / "session1" / "clip.MKV"
    assert by_name["session1__clip"].extra["audio"] == corpus / "session1" / "clip.wav"
    assert by_name["session2__speech"].media == corpus / "session2" / "speech.flac"
    assert by_name["session2__speech"].labels() is None


def test_labels_with_missing_cells_and_columns(corpus):
    by_name = {r.name: r for r in generic.find_recordings(corpus)}
    track = by_name["a"].labels()
    np.testing.assert_allclose(track.times, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(track.values, [[0.5, -0.5], [np.nan, 0.25], [np.nan, 0.0]],
                               equal_nan=True)
    arousal_only = by_name["session1__clip"].labels()
    np.testing.assert_allclose(arousal_only.times, [0.0, 0.25])
    np.testing.assert_allclose(arousal_only.values, [[np.nan, 0.1], [np.nan, 0.2]],
                               equal_nan=True)


def test_split_file_with_aliases_and_paths(corpus):
    write(corpus / "split.csv",
          "recording,partition\na,dev\nsession1/clip,Validation\nsession2__speech,test\n")
    partitions = {r.name: r.partition for r in generic.find_recordings(corpus)}
    assert partitions == {"a": "devel", "session1__clip": "devel", "session2__speech": "test"}


@pytest.mark.parametrize("split, expected", [
    ("a,train\nsession1__clip,train\n", "no line for recording 'session2__speech'"),
    ("a,holdout\n", "line 1: unknown partition 'holdout'"),
    ("a,train\na,test\n", "line 2: recording 'a' is listed twice"),
    ("a\n", "line 1: expected 'recording,partition'"),
])
def test_bad_split_file(corpus, split, expected):
    write(corpus / "split.csv", split)
    message = error_message(generic.find_recordings, corpus)
    assert str(corpus / "split.csv") in message and expected in message


def test_auto_falls_back_to_generic(corpus):
    assert find_corpus(corpus) == ("generic", generic.find_recordings(corpus))


@pytest.mark.parametrize("text, expected", [
    ("0.0,0.1,0.2\n", "must be a header"),
    ("time,liking\n0,1\n", "must be a header"),
    ("time,valence,arousal\n0.0,0.1\n", "line 2: 2 values, expected 3"),
    ("time,valence,arousal\n0.0,0.1,x\n", "line 2: 'x' is not a number"),
    ("time,valence,arousal\n,0.1,0.2\n", "line 2: '' is not a number"),
    ("time,valence,arousal\n0.0,0.1,1.2\n", "outside [-1, 1]"),
    ("time,valence,arousal\n0.0,,\n", "no valence or arousal value"),
    ("", "empty label file"),
])
def test_bad_label_file(tmp_path, text, expected):
    write(tmp_path / "a.mp4")
    path = write(tmp_path / "a.csv", text)
    [recording] = generic.find_recordings(tmp_path)
    message = error_message(recording.labels)
    assert str(path) in message and expected in message


def test_duplicate_names(tmp_path):
    write(tmp_path / "a.mp4")
    write(tmp_path / "a.avi")
    message = error_message(generic.find_recordings, tmp_path)
    assert "a.avi" in message and "a.mp4" in message


def test_a_split_line_for_a_recording_that_is_not_there_is_warned_about(corpus):
    """Issue 18 item 11: such a line used to be ignored silently."""
    write(corpus / "split.csv", "a,train\nsession1__clip,test\nsession2__speech,devel\n"
                                "session3__gone,test\n")
    with pytest.warns(UserWarning, match=r"split\.csv: names recordings the corpus does not "
                                         r"have \(session3__gone\); those lines are ignored"):
        recordings = generic.find_recordings(corpus)
    assert {r.name: r.partition for r in recordings}["session1__clip"] == "test"


def test_label_files_without_media_are_warned_about(corpus, recwarn):
    """orphan.csv has no media file; a speech corpus's arousal.csv (one ``file,value`` row
    per utterance) is named as a format that is not read (issue 18 item 11)."""
    write(corpus / "arousal.csv", "a.mp4,0.7\nsession2/speech.flac,0.6\n")
    generic.find_recordings(corpus)
    messages = [str(w.message) for w in recwarn.list]
    assert any(m.startswith(f"{corpus / 'arousal.csv'}: one value per media file is not a "
                            "label format avstan reads") for m in messages), messages
    assert f"{corpus / 'orphan.csv'}: no video or audio file of the same name, so these " \
           "labels are ignored" in messages
    assert not any(str(corpus / "a.csv") in m for m in messages)  # a's labels are used


def test_each_real_folder_is_visited_once_however_many_links_lead_to_it(tmp_path):
    """Issue 32 §4: a link loop was followed ~40 levels deep, listing its files again at
    every level (44 duplicates, 79 failures)."""
    write(tmp_path / "session1" / "clip.mp4")
    write(tmp_path / "session2" / "talk.mp4")
    (tmp_path / "session1" / "loop").symlink_to(tmp_path)  # session1/loop -> the root
    (tmp_path / "again").symlink_to(tmp_path / "session2")  # a second way into session2
    assert [r.name for r in generic.find_recordings(tmp_path)] == ["session1__clip",
                                                                    "session2__talk"]


def test_mpeg_transport_streams_are_videos(tmp_path):
    """Issue 32 §4: a folder of .ts recordings was "no video or audio file found"."""
    for name in ("cam.ts", "tv.m2ts", "handycam.MTS"):
        write(tmp_path / name)
    assert [r.media.name for r in generic.find_recordings(tmp_path)] == [
        "cam.ts", "handycam.MTS", "tv.m2ts"]
