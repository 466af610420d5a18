"""`avstan predict --stream` with models that hear: lstm, lstm_ta and the fusion av_sta
read the stream's sound as it comes and give offline predict's values."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avstan.apply.stream import stream_predict, stream_rows
from avstan.cli import EXIT_USER_ERROR, main
from avstan.data.audio import STREAM_LOOKAHEAD, load_audio
from avstan.data.streaming import AudioSamples
from avstan.data.video import sample_video
from avstan.evaluation.postprocess import PostProcessing
from avstan.models.model_file import TrainedModel
from tests.apply.test_predict import audio_model_file
from tests.apply.test_stream import as_array, parse, remux
from tests.conftest import growing_file

MEDIA = Path(__file__).parents[1] / "data" / "media"
SPEECH = Path(__file__).parents[1] / "data" / "speech"
WINDOW = 1.0  # the eGeMAPS window audio_model_file records
CHAIN = PostProcessing(median_window=1, centre_offset=0.05, scale_factor=4.0,
                       scale_reference=0.01).to_dict()


def with_chain(path: Path) -> Path:
    trained = TrainedModel.load(path)
    trained.with_postprocessing({t: CHAIN for t in trained.targets}).save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    (folder / "lookahead").mkdir()
    return {
        "lstm_ta": with_chain(audio_model_file(folder, hidden=8, layers=2)),
        "lstm": with_chain(audio_model_file(folder, "lstm", hidden=8, layers=2)),
        "lstm_lookahead": with_chain(audio_model_file(
            folder / "lookahead", "lstm", hidden=8, layers=2, lookahead=3)),
        "av_sta": with_chain(audio_model_file(
            folder, "av_sta", crop_size=16, audio={"hidden": 8},
            video={"trunk_channels": [4, 8, 8, 8], "fc_hidden": 8}, video_model="cnn3d")),
    }


@pytest.fixture(scope="module")
def streamable(tmp_path_factory):
    """single_face.mp4's h264 and mp3 packets in Matroska, which a pipe can carry."""
    return remux(MEDIA / "single_face.mp4", tmp_path_factory.mktemp("media") / "single.mkv")


def offline(model: Path, media: Path, folder: Path) -> list[dict]:
    assert main(["predict", str(model), str(media), "--output", str(folder)]) == 0
    return parse((folder / f"{media.stem}.csv").read_text())


def assert_same(rows, expected):
    assert len(rows) == len(expected)
    np.testing.assert_array_equal(as_array(rows, "time"), as_array(expected, "time"))
    assert [r["face_found"] for r in rows] == [r["face_found"] for r in expected]
    for target in ("valence", "arousal"):
        values = as_array(expected, target)
        assert np.ptp(values) > 2e-3  # steps differ, so a step mix-up would show
        np.testing.assert_allclose(as_array(rows, target), values, atol=1e-4)


@pytest.mark.parametrize("name", ["lstm_ta", "av_sta"])
def test_a_pipe_gives_offline_values_for_models_that_hear(name, models, streamable, tmp_path):
    done = subprocess.run([sys.executable, "-m", "avstan", "predict", str(models[name]),
                           "--stream", "-"], input=streamable.read_bytes(),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    rows = parse(done.stdout.decode())
    expected = offline(models[name], streamable, tmp_path)
    assert_same(rows, expected)
    # The fusion's steps are the video's (faces found); the audio model's the sound's.
    faces = "1" if name == "av_sta" else "0"
    assert {r["face_found"] for r in rows} == {faces}
    assert f"the stream ended after {len(rows)} steps" in done.stderr.decode()


@pytest.mark.parametrize("name", ["lstm", "lstm_lookahead"])
def test_an_audio_file_streams_through_an_audio_model(name, models, tmp_path):
    """A lookahead of 3 steps: each line waits for the clip 3 steps on, and the last three
    come at the end from the clip ending at the last step, as offline."""
    speech = SPEECH / "20.wav"
    out, log = io.StringIO(), io.StringIO()
    with speech.open("rb") as handle, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.TextIOWrapper(handle))
        steps = stream_predict(models[name], "-", out=out, log=log)
    rows = parse(out.getvalue())
    assert steps == len(rows) > 5
    assert_same(rows, offline(models[name], speech, tmp_path))


def test_a_growing_file_streams_the_fusion(models, streamable, tmp_path):
    with growing_file(streamable.read_bytes(), tmp_path / "recording.mkv") as growing:
        out = io.StringIO()
        steps = stream_predict(models["av_sta"], str(growing), out=out, log=io.StringIO(),
                               idle_timeout=1.0)
    assert steps == 10
    assert_same(parse(out.getvalue()), offline(models["av_sta"], streamable, tmp_path / "o"))


class Events:
    """single_face.mp4's sampled frames and its sound in 50 ms pieces, in time order,
    counting how many have been handed out."""

    def __init__(self):
        frames = [(f.time, f) for f in sample_video(MEDIA / "single_face.mp4")]
        sound = load_audio(MEDIA / "single_face.mp4")
        pieces = [((end) / 16000, AudioSamples(sound[end - 800:end]))
                  for end in range(800, sound.size + 1, 800)]
        self.sound_seconds = pieces[-1][0]
        self.items = [item for _, item in sorted(frames + pieces, key=lambda pair: pair[0])]
        self.taken = 0

    def __iter__(self):
        for item in self.items:
            self.taken += 1
            yield item


class EveryFace:
    """A face on every frame, its crop the frame's corner (the timing is under test)."""

    def __call__(self, image):
        return type("Face", (), {"crop": np.ascontiguousarray(image[:16, :16])})()


def test_each_line_comes_once_its_frame_and_its_sound_have_arrived(models):
    from avstan.data.audio import StreamingFunctionals

    model = TrainedModel.load(models["av_sta"]).network
    events = Events()
    taken = []
    for row in stream_rows(events, model, EveryFace(), audio=StreamingFunctionals(WINDOW),
                           step_rate=4.0):
        taken.append(events.taken)
        assert row.face_found and row.values is not None
    assert len(taken) == 10
    for step, count in enumerate(taken):
        seen = events.items[:count]
        frame_index = next(i for i, item in enumerate(seen)
                           if not isinstance(item, AudioSamples) and item.step == step)
        needed = max(step / 4.0, WINDOW) + STREAM_LOOKAHEAD
        heard = sum(item.samples.size for item in seen if isinstance(item, AudioSamples))
        if needed * 16000 <= sum(i.samples.size for i in events.items
                                 if isinstance(i, AudioSamples)):
            # Not before both have arrived, and right after the later of the two.
            assert heard >= needed * 16000 - 1
            before = sum(item.samples.size for item in seen[:-1]
                         if isinstance(item, AudioSamples))
            assert frame_index == count - 1 or before < needed * 16000 - 1
        else:
            assert count == len(events.items)  # the last steps wait for the end


def test_streams_a_model_that_hears_cannot_take_are_one_line(models, tmp_path, monkeypatch,
                                                              capsys):
    silent_video = remux(MEDIA / "moving_face.mp4", tmp_path / "moving.mkv")  # no sound
    assert main(["predict", str(models["av_sta"]), "--stream", str(silent_video)]) \
        == EXIT_USER_ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, lines
    assert "moving.mkv: has no audio track; av_sta reads the sound" in lines[0]
    # a sound file to the fusion: it needs the face too (issue 32 §5: the advice was to
    # "predict a finished file offline", which fails the same way)
    assert main(["predict", str(models["av_sta"]), "--stream", str(SPEECH / "20.wav")]) \
        == EXIT_USER_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "20.wav: has no video stream; a face model needs video" \
        in lines[0] and "offline" not in lines[0], lines
    trained = TrainedModel.load(models["lstm"])
    per_recording = tmp_path / "per_recording.pt"
    options = {**trained.model_options, "recording_standardisation": True}
    from avstan.models import create_model
    TrainedModel(create_model("lstm", targets=trained.targets, **options), trained.targets,
                 4.0, trained.metadata).save(per_recording)
    assert main(["predict", str(per_recording), "--stream", str(SPEECH / "20.wav")]) \
        == EXIT_USER_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "statistics of the whole recording" in lines[0], lines
    # A model over features that media do not give (LLD frames, 4 of 25 descriptors a step)
    frames = tmp_path / "frames.pt"
    options = {**trained.model_options, "audio_features": 100, "frame_descriptors": 25}
    TrainedModel(create_model("lstm", targets=trained.targets, **options), trained.targets,
                 4.0, trained.metadata).save(frames)
    for command in (["predict", str(frames), "--stream", str(SPEECH / "20.wav")],
                    ["predict", str(frames), str(SPEECH / "20.wav"), "--output",
                     str(tmp_path / "out")]):
        assert main(command) == EXIT_USER_ERROR
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "reads 100 audio features per step" in lines[0], lines
        assert "frames.pt" in lines[0] and not (tmp_path / "out").exists()
    torch.manual_seed(0)  # nothing above drew; keep later tests' draws as they were


def test_a_silent_sound_streams_with_a_warning(models, tmp_path):
    import wave

    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(bytes(2 * 16000 * 2))  # 2 s of zeros
    out, log = io.StringIO(), io.StringIO()
    steps = stream_predict(models["lstm"], str(silent), out=out, log=log, idle_timeout=0.2)
    assert steps == 9 and len(parse(out.getvalue())) == 9
    assert "the sound was silent throughout (peak 0.0e+00)" in log.getvalue()
    assert main(["predict", str(models["lstm"]), str(silent), "--output",
                 str(tmp_path / "out")]) != 0  # offline refuses it


def test_a_lookahead_line_waits_for_the_sound_of_the_step_it_reads_ahead_to(models):
    """lookahead 3: step e's line comes once the sound of step e + 3 has arrived (its
    window's end plus the stream's reach), never before; the last 3 lines at the end."""
    from avstan.data.audio import StreamingFunctionals

    model = TrainedModel.load(models["lstm_lookahead"]).network
    assert model.lookahead == 3
    events = Events()
    events.items = [item for item in events.items if isinstance(item, AudioSamples)]
    heard_at_row, times = [], []
    for row in stream_rows(events, model, None, audio=StreamingFunctionals(WINDOW),
                           step_rate=4.0):
        heard_at_row.append(sum(item.samples.size for item in events.items[:events.taken]))
        times.append(row.time)
        assert row.values is not None and not row.face_found
    np.testing.assert_allclose(times, np.arange(len(times)) / 4.0)
    total = sum(item.samples.size for item in events.items)
    early = [(step, heard) for step, heard in enumerate(heard_at_row) if heard < total]
    assert len(early) >= 5
    for step, heard in early:
        needed = max((step + 3) / 4.0, WINDOW) + STREAM_LOOKAHEAD
        # not before, and with the first 50 ms piece of sound that completes it
        assert needed * 16000 - 1 <= heard < needed * 16000 + 800, step
    # the last 3 steps read past the end of the sound: written once it has all arrived
    assert all(heard == total for heard in heard_at_row[-3:])
