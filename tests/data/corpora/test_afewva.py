"""AFEW-VA: a folder of frames per clip with per-frame labels in <clip>.json."""

import json
from pathlib import Path

import numpy as np
import pytest

from avstan.data.corpora import afewva, find_corpus
from tests.data.corpora.conftest import error_message, write


def clip(root: Path, name: str, labels: dict, frames: int = 3) -> Path:
    folder = root / name
    for index in range(frames):
        write(folder / f"{index:05d}.png")
    landmarks = [[1.0, 2.0]] * 68
    data = {"actor": "someone", "video_id": name,
            "frames": {key: {**value, "landmarks": landmarks} for key, value in labels.items()}}
    write(folder / f"{name}.json", json.dumps(data))
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    clip(tmp_path / "01", "001", {"00000": {"valence": 5, "arousal": -10},
                                  "00002": {"valence": 0.5, "arousal": 10},
                                  "00001": {"valence": -3}})
    clip(tmp_path / "02", "002", {"00000": {"valence": 0, "arousal": 0}})
    write(tmp_path / "notes" / "notes.json", "{}")  # no frames beside it: not a clip
    return tmp_path


def test_finds_clips_as_frame_folders(corpus):
    recordings = afewva.find_recordings(corpus)
    assert [r.name for r in recordings] == ["001", "002"]
    assert all(r.partition == "train" for r in recordings)
    assert recordings[0].frames_dir == corpus / "01" / "001"
    assert recordings[0].media is None and recordings[0].frame_rate == 25.0


def test_labels_are_scaled_and_sorted_by_frame(corpus):
    track = afewva.find_recordings(corpus)[0].labels()
    np.testing.assert_allclose(track.times, [0.0, 0.04, 0.08])
    np.testing.assert_allclose(track.values, [[0.5, -1.0], [-0.3, np.nan], [0.05, 1.0]],
                               equal_nan=True)


def test_split_file(corpus):
    write(corpus / "split.csv", "recording,partition\n001,validation\n002,test\n")
    assert [r.partition for r in afewva.find_recordings(corpus)] == ["devel", "test"]
    write(corpus / "split.csv", "001,train\n")
    message = error_message(afewva.find_recordings, corpus)
    assert "split.csv" in message and "'002'" in message


def test_auto_detects_afewva(corpus):
    assert find_corpus(corpus)[0] == "afewva"


@pytest.mark.parametrize("frames, expected", [
    ({"00000": {"valence": "high", "arousal": 0}}, "valence 'high' is not a number"),
    ({"first": {"valence": 1, "arousal": 0}}, "frame key 'first' is not a frame number"),
    ({"00000": {"valence": 11, "arousal": 0}}, "outside [-1, 1]"),
    ({}, "no \"frames\" object"),
])
def test_bad_labels(tmp_path, frames, expected):
    folder = clip(tmp_path, "007", {})
    (folder / "007.json").write_text(json.dumps({"frames": frames}))
    [recording] = afewva.find_recordings(tmp_path)
    message = error_message(recording.labels)
    assert str(folder / "007.json") in message and expected in message


def test_invalid_json(tmp_path):
    folder = clip(tmp_path, "007", {})
    (folder / "007.json").write_text('{"frames": {"00000": ')
    [recording] = afewva.find_recordings(tmp_path)
    assert "not valid JSON" in error_message(recording.labels)


def test_duplicate_clip_names(tmp_path):
    clip(tmp_path / "01", "001", {"00000": {"valence": 0, "arousal": 0}})
    clip(tmp_path / "copy", "001", {"00000": {"valence": 0, "arousal": 0}})
    assert "also used by" in error_message(afewva.find_recordings, tmp_path)
