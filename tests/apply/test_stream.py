"""`avstan predict --stream`: a pipe or a growing file, one line per step, as offline."""

import csv
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avstan.apply.stream import CausalPostProcessing, stream_predict, stream_rows
from avstan.cli import EXIT_USER_ERROR, main
from avstan.data.faces import FaceAligner
from avstan.data.video import sample_video
from avstan.evaluation.postprocess import PostProcessing
from avstan.models import create_model
from avstan.models.model_file import TrainedModel
from tests.conftest import growing_file

MEDIA = Path(__file__).parents[1] / "data" / "media"
CROP, CLIP = 16, 4
CHAIN = PostProcessing(median_window=1, centre_offset=0.05, scale_factor=8.0,
                       scale_reference=0.01)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained sta3d (the code path, not the accuracy, is under test) with a chain that
    centres and scales, so post-processing is part of the comparison."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    TrainedModel(create_model("sta3d", crop_size=CROP, clip_length=CLIP), ("valence", "arousal"),
                 4.0, postprocessing={t: CHAIN.to_dict() for t in ("valence", "arousal")}
                 ).save(path)
    return path


def remux(source: Path, target: Path, container_format: str = "matroska") -> Path:
    """The same packets in a container that can be read from a pipe (no re-encoding)."""
    with av.open(str(source)) as reader, av.open(str(target), "w",
                                                 format=container_format) as writer:
        streams = {s.index: writer.add_stream_from_template(s) for s in reader.streams
                   if s.type in ("video", "audio")}
        for packet in reader.demux(*[s for s in reader.streams if s.index in streams]):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                writer.mux(packet)
    return target


@pytest.fixture(scope="module")
def streamable(tmp_path_factory):
    return remux(MEDIA / "single_face.mp4", tmp_path_factory.mktemp("media") / "single.mkv")


@pytest.fixture(scope="module")
def offline(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("offline")
    assert main(["predict", str(model_file), str(MEDIA / "single_face.mp4"), "--output",
                 str(out)]) == 0
    return parse((out / "single_face.csv").read_text())


def parse(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        assert list(row) == ["time", "valence", "arousal", "face_found"]
    return rows


def as_array(rows, key):
    return np.array([float(r[key]) for r in rows])


def test_a_pipe_gives_the_offline_values_line_by_line(model_file, streamable, offline):
    done = subprocess.run([sys.executable, "-m", "avstan", "predict", str(model_file),
                           "--stream", "-"], input=streamable.read_bytes(),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert "the stream ended after 10 steps" in done.stderr.decode()
    rows = parse(done.stdout.decode())
    times = as_array(rows, "time")
    assert len(rows) == len(offline) == 10
    np.testing.assert_allclose(np.diff(times), 0.25)  # one line per step, in order
    np.testing.assert_array_equal(times, as_array(offline, "time"))
    assert [r["face_found"] for r in rows] == [r["face_found"] for r in offline] == ["1"] * 10
    for target in ("valence", "arousal"):
        expected = as_array(offline, target)
        assert np.ptp(expected) > 2e-3  # steps differ, so a step mix-up would show
        np.testing.assert_allclose(as_array(rows, target), expected, atol=1e-4)


def test_a_growing_file_is_followed_until_it_stops_growing(model_file, streamable, offline,
                                                           tmp_path):
    with growing_file(streamable.read_bytes(), tmp_path / "recording.mkv") as growing:
        out, log = io.StringIO(), io.StringIO()
        steps = stream_predict(model_file, str(growing), out=out, log=log, idle_timeout=1.0)
    rows = parse(out.getvalue())
    assert steps == len(rows) == 10
    np.testing.assert_allclose(as_array(rows, "valence"), as_array(offline, "valence"),
                               atol=1e-4)


class CountingFrames:
    """The sampled frames of a clip, counting how many have been handed out."""

    def __init__(self):
        self.frames = list(sample_video(MEDIA / "single_face.mp4"))
        self.taken = 0

    def __iter__(self):
        for frame in self.frames:
            self.taken += 1
            yield frame


class HidingAligner:
    """The real aligner, but no face on the ``hidden`` steps."""

    def __init__(self, frames: CountingFrames, hidden):
        self.aligner, self.frames, self.hidden = FaceAligner(CROP), frames, set(hidden)

    def __call__(self, image):
        face = self.aligner(image)
        return None if self.frames.taken - 1 in self.hidden else face


def test_each_line_comes_before_the_next_frame_is_read_and_no_face_holds(model_file):
    model = TrainedModel.load(model_file).network
    frames = CountingFrames()
    hidden = {0, 1, 5, 6}
    chains = [CausalPostProcessing(PostProcessing(shift_steps=2)) for _ in range(2)]
    rows = []
    for row in stream_rows(frames, model, HidingAligner(frames, hidden), chains):
        assert frames.taken == len(rows) + 1  # computed from the frames so far, nothing more
        rows.append(row)
    assert [r.face_found for r in rows] == [i not in hidden for i in range(10)]
    assert rows[0].values is None and rows[1].values is None  # no face seen yet
    # Raw values r2, r3, r4, (held) r4, r4, r7, r8, r9 through a delay of 2 steps (the first
    # repeated): r2, r2, r2, r3, r4, r4, r4, r7.
    shown = [tuple(r.values) for r in rows[2:]]
    assert shown[0] == shown[1] == shown[2] != shown[3] != shown[4]
    assert shown[4] == shown[5] == shown[6] != shown[7]


def feed_pipe(data: bytes, monkeypatch):
    read, write = os.pipe()

    def feed():
        with os.fdopen(write, "wb") as handle:
            try:
                handle.write(data)
            except BrokenPipeError:
                pass

    threading.Thread(target=feed, daemon=True).start()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read, "rb")))


@pytest.mark.parametrize("data, message", [
    (b"", "standard input: not a readable media file"),
    (b"not a video at all" * 50, "standard input: not a readable media file"),
    ((MEDIA / "single_face.mp4").read_bytes(), "a pipe needs a streamable container"),
])
def test_a_pipe_that_ends_or_holds_no_readable_video_is_one_line(model_file, data, message,
                                                                 monkeypatch, capsys):
    feed_pipe(data, monkeypatch)
    assert main(["predict", str(model_file), "--stream", "-"]) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""  # not even the header
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_finished_mp4_indexed_at_its_end_names_the_way_out(model_file, tmp_path, capsys):
    from tests.conftest import one_track_copy

    video = one_track_copy(MEDIA / "single_face.mp4", tmp_path / "indexed_at_end.mp4")
    with open(video, "rb") as handle:
        head = handle.read(64)
    assert head.find(b"mdat") < head.find(b"moov") or b"moov" not in head
    assert main(["predict", str(model_file), "--stream", str(video)]) == EXIT_USER_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(video) in lines[0], lines
    assert "not an MP4 indexed at its end; predict a finished file offline" in lines[0]


def test_missing_source_and_misused_options(model_file, tmp_path, capsys):
    assert main(["predict", str(model_file), "--stream", str(tmp_path / "nope.mkv")]) \
        == EXIT_USER_ERROR
    assert "nope.mkv: no such file, pipe or device" in capsys.readouterr().err
    assert main(["predict", str(model_file), "--stream", "-", "--overlay"]) == EXIT_USER_ERROR
    assert "--stream takes no INPUT, --overlay" in capsys.readouterr().err
    assert main(["predict", str(model_file)]) == EXIT_USER_ERROR
    assert "needs a video file or folder (or --stream SOURCE)" in capsys.readouterr().err


def test_a_stream_that_breaks_off_keeps_whole_lines(model_file, streamable, monkeypatch,
                                                    capsys):
    data = streamable.read_bytes()
    feed_pipe(data[:len(data) // 2], monkeypatch)
    assert main(["predict", str(model_file), "--stream", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("\n")
    rows = parse(captured.out)
    assert 2 <= len(rows) < 10
    assert all(r["valence"] and r["arousal"] and r["face_found"] in "01" for r in rows)
    assert f"the stream ended after {len(rows)} steps" in captured.err
