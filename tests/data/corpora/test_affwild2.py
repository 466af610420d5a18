"""Aff-Wild2 VA: per-frame annotation files; times from the video's frame rate."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from avstan.data.corpora import affwild2, find_corpus
from tests.data.corpora.conftest import error_message, write

VA = "annotations/VA_Estimation_Challenge"


def make_video(path: Path, fps: int, frames: int = 10) -> Path:
    """A real, tiny video: the reader takes the frame rate from its container header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(frames):
            image = np.full((32, 32, 3), index * 20, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("affwild2_videos")
    return {25: make_video(folder / "25.mp4", 25), 30: make_video(folder / "30.avi", 30)}


def video(root: Path, relative: str, source: Path) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(source)
    return path


@pytest.fixture
def corpus(tmp_path, videos) -> Path:
    video(tmp_path, "videos/batch1/118-30-640x480.mp4", videos[25])
    video(tmp_path, "videos/batch2/video10.avi", videos[30])
    video(tmp_path, "videos/batch1/not_annotated_for_va.mp4", videos[25])
    write(tmp_path / VA / "Train_Set" / "118-30-640x480.txt",
          "valence,arousal\n0.5,0.25\n-5,-5\n-0.5,0.75\n")
    write(tmp_path / VA / "Validation_Set" / "video10_left.txt", "valence,arousal\n0.1,0.2\n")
    write(tmp_path / VA / "Validation_Set" / "video10_right.txt", "valence,arousal\n0.3,0.4\n")
    write(tmp_path / VA / "Test_Set" / "video10.txt", "Valence,Arousal\n0.0,0.0\n\n")
    write(tmp_path / VA / "Train_Set" / "missing_video.txt", "valence,arousal\n0.0,0.0\n")
    # The expression annotations of the same video must not be taken for VA.
    write(tmp_path / "annotations/EXPR_Classification_Challenge/Train_Set/video10.txt",
          "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n")
    return tmp_path


def test_finds_annotated_videos_with_partitions(corpus):
    recordings = affwild2.find_recordings(corpus)
    assert [(r.name, r.partition) for r in recordings] == [
        ("118-30-640x480", "train"), ("video10", "test"), ("video10_left", "devel"),
        ("video10_right", "devel")]
    by_name = {r.name: r for r in recordings}
    assert by_name["video10_left"].media == corpus / "videos/batch2/video10.avi"
    assert by_name["video10_left"].extra["subject"] == "left"
    assert "subject" not in by_name["video10"].extra


def test_labels_at_the_video_frame_rate_with_unannotated_frames(corpus):
    by_name = {r.name: r for r in affwild2.find_recordings(corpus)}
    track = by_name["118-30-640x480"].labels()
    np.testing.assert_allclose(track.times, [0.0, 1 / 25, 2 / 25])
    np.testing.assert_allclose(track.values, [[0.5, 0.25], [np.nan, np.nan], [-0.5, 0.75]],
                               equal_nan=True)
    np.testing.assert_allclose(by_name["video10_right"].labels().values, [[0.3, 0.4]])
    np.testing.assert_allclose(affwild2.video_frame_rate(by_name["video10"].media), 30.0)


def test_auto_detects_affwild2(corpus):
    assert find_corpus(corpus)[0] == "affwild2"


@pytest.mark.parametrize("text, expected", [
    ("valence,arousal\n0.1,0.2\n0.1;0.2\n", "line 3: 1 values, expected 2"),
    ("valence,arousal\n0.1,0.2\n\n0.1,0.2\n", "line 3: 1 values, expected 2"),
    ("valence,arousal\n0.1,high\n", "line 2: 'high' is not a number"),
    ("valence,arousal\n0.1,nan\n", "line 2: 'nan' is not a finite number"),
])
def test_malformed_annotation(tmp_path, videos, text, expected):
    video(tmp_path, "videos/a.mp4", videos[25])
    path = write(tmp_path / VA / "Train_Set" / "a.txt", text)
    [recording] = affwild2.find_recordings(tmp_path)
    message = error_message(recording.labels)
    assert str(path) in message and expected in message


def test_out_of_range_value(tmp_path, videos):
    video(tmp_path, "videos/a.mp4", videos[25])
    write(tmp_path / VA / "Train_Set" / "a.txt", "valence,arousal\n0.1,-4\n")
    [recording] = affwild2.find_recordings(tmp_path)
    assert "outside [-1, 1]" in error_message(recording.labels)


def test_unreadable_video_is_named(tmp_path):
    path = write(tmp_path / "videos" / "a.mp4", b"this is not a video")
    write(tmp_path / VA / "Train_Set" / "a.txt", "valence,arousal\n0.1,0.2\n")
    [recording] = affwild2.find_recordings(tmp_path)
    message = error_message(recording.labels)
    assert str(path) in message and "frame rate" in message


def test_duplicate_annotation_and_no_annotated_video(tmp_path, videos):
    write(tmp_path / VA / "Train_Set" / "a.txt", "valence,arousal\n0.1,0.2\n")
    assert "no affwild2 recordings" in error_message(affwild2.find_recordings, tmp_path)
    write(tmp_path / VA / "Validation_Set" / "a.txt", "valence,arousal\n0.1,0.2\n")
    message = error_message(affwild2.find_recordings, tmp_path)
    assert "Train_Set/a.txt" in message and "Validation_Set/a.txt" in message
