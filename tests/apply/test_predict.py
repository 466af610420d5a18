"""`avstan predict` on real clips with a model trained on the synthetic corpus."""

import csv
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from avstan.cli import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR, main
from avstan.evaluation.evaluate import attach_postprocessing
from avstan.io import default_file_mode
from avstan.training.config import config_from_dict
from avstan.training.fit import train_experiment
from tests.conftest import tiny_config_dict

MEDIA = Path(__file__).parents[1] / "data" / "media"


@pytest.fixture(scope="module")
def model(tiny_store, tmp_path_factory):
    raw = tiny_config_dict(tiny_store, tmp_path_factory.mktemp("model"), "sta3d", max_epochs=1)
    raw["data"]["clip_length"] = 16
    result = train_experiment(config_from_dict(raw), progress=False)
    attach_postprocessing(result.model_path, tiny_store)
    return result.model_path


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("single_face.mp4", "face_noface.mov", "no_face.mp4"):
        shutil.copy(MEDIA / name, folder / name)
    return folder


def read_rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_predict_a_folder(model, videos, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="single_face.mp4: shorter than one clip "
                      r"\(10 steps, the model reads 16 = 4 s\): its clips are padded"):
        assert main(["predict", str(model), str(videos), "--output", str(out)]) \
            == EXIT_PARTIAL_FAILURE
    printed = capsys.readouterr().out
    assert "predicted 2, failed 1" in printed
    assert "no_face.mp4: no face found" in printed
    short = read_rows(out / "single_face.csv")
    assert len(short) == 10 and all(r["face_found"] == "1" for r in short)
    assert all(abs(float(r["valence"])) <= 1.0 for r in short)
    rows = read_rows(out / "face_noface.csv")
    assert list(rows[0]) == ["time", "valence", "arousal", "face_found"]
    assert len(rows) == 26
    values = np.array([[float(r["valence"]), float(r["arousal"])] for r in rows])
    assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
    found = np.array([r["face_found"] == "1" for r in rows])
    assert found[:8].all() and not found[-10:].any()
    assert (out / "face_noface.png").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".avstan-predict.json", "face_noface.csv", "face_noface.png", "single_face.csv",
        "single_face.png"]

    # The same command again resumes: complete videos are skipped and said so.
    stamp = (out / "face_noface.csv").stat().st_mtime_ns
    assert main(["predict", str(model), str(videos / "face_noface.mov"), "--output",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "face_noface.mov: outputs complete, skipped (--overwrite redoes them)" in printed
    assert "predicted 0, failed 0" in printed
    assert (out / "face_noface.csv").stat().st_mtime_ns == stamp
    # Outputs of another command (here another --hop) are refused unless --overwrite.
    assert main(["predict", str(model), str(videos / "face_noface.mov"), "--output",
                 str(out), "--hop", "2"]) == EXIT_USER_ERROR
    assert ("face_noface.csv: exists, written by a predict command with another model or "
            "settings; pass --overwrite") in capsys.readouterr().err


def test_hop_predicts_every_kth_step_and_interpolates(model, videos, tmp_path):
    video = str(videos / "face_noface.mov")
    assert main(["predict", str(model), video, "--output", str(tmp_path / "a"),
                 "--no-postprocess"]) == 0
    assert main(["predict", str(model), video, "--output", str(tmp_path / "b"),
                 "--no-postprocess", "--hop", "3"]) == 0
    every = np.array([float(r["valence"]) for r in read_rows(tmp_path / "a" / "face_noface.csv")])
    hopped = np.array([float(r["valence"]) for r in read_rows(tmp_path / "b" / "face_noface.csv")])
    np.testing.assert_allclose(hopped[::3], every[::3], atol=1e-5)
    steps = np.arange(len(every))
    np.testing.assert_allclose(hopped, np.interp(steps, steps[::3], every[::3]), atol=1e-5)


def test_a_hop_as_long_as_the_video_is_refused(model, videos, tmp_path, capsys):
    assert main(["predict", str(model), str(videos / "face_noface.mov"), "--output",
                 str(tmp_path / "o"), "--hop", "1000"]) == EXIT_PARTIAL_FAILURE
    assert "--hop 1000 is not shorter than the video (26 steps)" in capsys.readouterr().out
    assert not (tmp_path / "o" / "face_noface.csv").exists()


def test_bad_model_file_and_missing_input(videos, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"nope")
    assert main(["predict", str(fake), str(videos)]) == EXIT_USER_ERROR
    assert "model.pt: not a readable avstan model file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """Untrained 4-step models (the outputs' form is under test, not their accuracy)."""
    import torch

    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    folder = tmp_path_factory.mktemp("untrained")
    for name in ("sta3d", "cnn3d"):
        torch.manual_seed(0)
        TrainedModel(create_model(name, crop_size=16, clip_length=4), ("valence", "arousal"),
                     4.0).save(folder / f"{name}.pt")
    return folder


def test_overlay_and_html_outputs(untrained, tmp_path):
    import base64
    import re

    import av

    video = MEDIA / "single_face.mp4"
    for name in ("sta3d", "cnn3d"):  # with attention, and values only
        out = tmp_path / name
        assert main(["predict", str(untrained / f"{name}.pt"), str(video), "--output", str(out),
                     "--overlay", "--html"]) == 0
        assert sorted(p.name for p in out.iterdir()) == [
            ".avstan-predict.json", "single_face.csv", "single_face.html",
            "single_face.overlay.mp4", "single_face.png"]
        with av.open(str(out / "single_face.overlay.mp4")) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert sum(1 for _ in container.decode(video=0)) == 72
        page = (out / "single_face.html").read_text()
        embedded = re.search(r"src='data:video/mp4;base64,([^']+)'", page).group(1)
        assert base64.b64decode(embedded) == (out / "single_face.overlay.mp4").read_bytes()
        assert len(read_rows(out / "single_face.csv")) == 10
        # Every output gets the mode a plain open() gives (not mkstemp's -rw-------).
        assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {default_file_mode()}
    # Without --overlay, the page embeds the original (already H.264 in MP4).
    out = tmp_path / "page_only"
    assert main(["predict", str(untrained / "cnn3d.pt"), str(video), "--output", str(out),
                 "--html"]) == 0
    page = (out / "single_face.html").read_text()
    embedded = re.search(r"src='data:video/mp4;base64,([^']+)'", page).group(1)
    assert base64.b64decode(embedded) == video.read_bytes()


@pytest.mark.parametrize("existing", ["single_face.overlay.mp4", "single_face.html"])
def test_existing_overlay_or_page_is_refused(untrained, tmp_path, capsys, existing):
    out = tmp_path / "out"
    out.mkdir()
    (out / existing).write_bytes(b"keep me")
    assert main(["predict", str(untrained / "sta3d.pt"), str(MEDIA / "single_face.mp4"),
                 "--output", str(out), "--overlay", "--html"]) == EXIT_USER_ERROR
    assert f"{existing}: exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [existing]
    assert (out / existing).read_bytes() == b"keep me"
    assert main(["predict", str(untrained / "sta3d.pt"), str(MEDIA / "single_face.mp4"),
                 "--output", str(out), "--overlay", "--html", "--overwrite"]) == 0
    assert (out / existing).read_bytes() != b"keep me"


def test_unwritable_output_and_a_failure_midway_leave_nothing(untrained, tmp_path, capsys,
                                                              monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["predict", str(untrained / "sta3d.pt"), str(MEDIA / "single_face.mp4"),
                 "--output", str(blocker / "out"), "--overlay"]) == EXIT_USER_ERROR
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot write the predictions here" in lines[0]

    import avstan.apply.predict
    from avstan.errors import AvstanError

    def broken_page(*args, **kwargs):
        raise AvstanError("the page could not be written")

    monkeypatch.setattr(avstan.apply.predict, "write_prediction_page", broken_page)
    out = tmp_path / "out"
    assert main(["predict", str(untrained / "sta3d.pt"), str(MEDIA / "single_face.mp4"),
                 "--output", str(out), "--overlay", "--html"]) == EXIT_PARTIAL_FAILURE
    assert "the page could not be written" in capsys.readouterr().out
    # the overlay written before it was removed, and the folder the run made (issue 32)
    assert not out.exists()


def audio_model_file(folder, name="lstm_ta", **options):
    """An untrained audio (or fusion) model with realistic standardisation, recording the
    1 s eGeMAPS window its (imaginary) training store used."""
    import torch

    from avstan.data.audio import egemaps_functionals, fit_standardisation, load_audio
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    torch.manual_seed(0)
    model = create_model(name, clip_length=4, **options)
    signal = load_audio(SPEECH / "20.wav")
    features = egemaps_functionals(signal, 16000, np.arange(0.0, 4.0, 0.25), 1.0)
    model.audio_standardiser.set_statistics(*fit_standardisation(features))
    path = folder / f"{name}.pt"
    TrainedModel(model, ("valence", "arousal"), 4.0, {"audio_window_seconds": 1.0}).save(path)
    return path


SPEECH = Path(__file__).parents[1] / "data" / "speech"


@pytest.mark.parametrize("lookahead", [0, 3])
def test_audio_model_predicts_audio_files_and_a_videos_sound(tmp_path, capsys, lookahead):
    import torch

    from avstan.data.audio import egemaps_functionals, load_audio
    from avstan.models.model_file import TrainedModel

    path = audio_model_file(tmp_path, hidden=8, layers=2, lookahead=lookahead)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(SPEECH / "20.wav", inputs / "speech.wav")
    shutil.copy(MEDIA / "single_face.mp4", inputs / "single_face.mp4")  # its mp3 track
    assert main(["predict", str(path), str(inputs), "--output", str(tmp_path / "out"),
                 "--no-postprocess"]) == 0
    model = TrainedModel.load(path).network
    for name, media in (("speech", inputs / "speech.wav"),
                        ("single_face", inputs / "single_face.mp4")):
        rows = read_rows(tmp_path / "out" / f"{name}.csv")
        times = np.array([float(r["time"]) for r in rows])
        values = np.array([[float(r["valence"]), float(r["arousal"])] for r in rows])
        signal = load_audio(media)
        assert abs(times[-1] - signal.size / 16000) < 0.5 and np.isfinite(values).all()
        # Independently: features on the same steps, one clip per step, the model.
        features = torch.from_numpy(egemaps_functionals(signal, 16000, times, 1.0))
        # step e reads the 4 steps up to e + lookahead, the first and last steps repeated
        last = len(times) - 1
        clips = torch.stack([features[np.clip(np.arange(e + lookahead - 3, e + lookahead + 1),
                                              0, last)] for e in range(len(times))])
        with torch.no_grad():
            expected = model(audio=clips)["prediction"].clamp(-1, 1).numpy()
        np.testing.assert_allclose(values, expected, atol=2e-5)
        assert (tmp_path / "out" / f"{name}.png").is_file()


def test_fusion_on_a_video_without_sound_and_overlays_of_audio_models_say_so(tmp_path,
                                                                            capsys):
    fusion = audio_model_file(tmp_path, "av_sta", crop_size=16, audio={"hidden": 8},
                              video={"trunk_channels": [4, 8, 8, 8], "fc_hidden": 8},
                              video_model="cnn3d")
    assert main(["predict", str(fusion), str(MEDIA / "moving_face.mp4"), "--output",
                 str(tmp_path / "out")]) == EXIT_PARTIAL_FAILURE
    out = capsys.readouterr().out
    assert "moving_face.mp4: has no audio track" in out and "av_sta reads audio" in out
    assert not (tmp_path / "out").exists()  # nothing written: no folder left (issue 32)
    audio = audio_model_file(tmp_path, hidden=8, layers=2)
    assert main(["predict", str(audio), str(SPEECH / "20.wav"), "--output",
                 str(tmp_path / "out"), "--overlay"]) == EXIT_PARTIAL_FAILURE
    assert "an audio model reads only the sound" in capsys.readouterr().out


def test_predict_follows_the_face_as_the_training_store_was_prepared(tiny_store, videos,
                                                                      tmp_path, monkeypatch):
    """The store's --redetect-every travels in the model file; predict uses it unless told
    otherwise, and following finds the face in the same steps as searching every step."""
    import avstan.apply.predict as predict_module
    from avstan.data.store import RecordingStore
    from avstan.models.model_file import TrainedModel

    store_copy = tmp_path / "store"
    shutil.copytree(tiny_store, store_copy)
    store = RecordingStore.open(store_copy)
    store.attrs["redetect_every"] = 3
    store.attrs["detector"] = "hog"
    store.save_manifest()
    result = train_experiment(config_from_dict(tiny_config_dict(store_copy, tmp_path / "run",
                                                                max_epochs=1)), progress=False)
    assert TrainedModel.load(result.model_path).redetect_every == 3
    assert TrainedModel.load(result.model_path).detector == "hog"

    used = []
    real = predict_module.make_aligner
    monkeypatch.setattr(predict_module, "make_aligner", lambda config: (
        used.append((config.redetect_every, config.detector)), real(config))[1])
    video = str(videos / "face_noface.mov")
    assert main(["predict", str(result.model_path), video, "--output",
                 str(tmp_path / "a")]) == 0
    assert main(["predict", str(result.model_path), video, "--output", str(tmp_path / "b"),
                 "--redetect-every", "1", "--detector", "yunet"]) == 0
    assert used == [(3, "hog"), (1, "yunet")]
    found = [[r["face_found"] for r in read_rows(tmp_path / out / "face_noface.csv")]
             for out in ("a", "b")]
    assert found[0] == found[1] and "0" in found[0]


def test_bf16_precision_predicts_close_to_float32_and_fp16_needs_cuda(untrained, tmp_path,
                                                                      capsys):
    video = str(MEDIA / "single_face.mp4")
    model = str(untrained / "sta3d.pt")
    for precision in ("32-true", "bf16-mixed"):
        assert main(["predict", model, video, "--output", str(tmp_path / precision),
                     "--precision", precision]) == 0
    full, half = ([[float(r["valence"]), float(r["arousal"])] for r in
                   read_rows(tmp_path / p / "single_face.csv")] for p in ("32-true",
                                                                        "bf16-mixed"))
    difference = np.abs(np.array(full) - np.array(half))
    # bfloat16 keeps 8 bits of mantissa: close, and not the same numbers
    assert 0 < difference.max() < 0.05
    assert main(["predict", model, video, "--output", str(tmp_path / "fp16"),
                 "--precision", "16-mixed"]) == EXIT_USER_ERROR
    assert "--precision 16-mixed runs on CUDA only" in capsys.readouterr().err
    assert not (tmp_path / "fp16").exists()


def test_a_video_whose_output_names_are_too_long_fails_alone(untrained, tmp_path, capsys):
    """Issue 32: a 240-character name predicts (its temporary overlay name stays within the
    file system's limit); at 250 the overlay's own name passes it, so that video fails on
    one line and the folder goes on."""
    from avstan.cli import EXIT_PARTIAL_FAILURE, main

    folder = tmp_path / "videos"
    folder.mkdir()
    names = ["a" * 236, "b" * 246, "short"]  # + ".mp4": 240, 250 and 9 characters
    for name in names:
        shutil.copy(MEDIA / "single_face.mp4", folder / f"{name}.mp4")
    out = tmp_path / "out"
    code = main(["predict", str(untrained / "cnn3d.pt"), str(folder), "--output", str(out),
                 "--overlay"])
    captured = capsys.readouterr()
    assert code == EXIT_PARTIAL_FAILURE and "Traceback" not in captured.err
    failed = [line for line in captured.out.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and names[1] in failed[0] and "too long" in failed[0]
    for name in (names[0], "short"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.overlay.mp4").is_file()
    # no temporary file left: the only hidden file is the run's record (for a resume)
    assert not list(out.glob(f"{names[1]}*"))
    assert [p.name for p in out.glob(".*")] == [".avstan-predict.json"]


def test_a_stopped_run_resumes_redoing_the_incomplete_video_and_removing_stray_temporaries(
        model, videos, tmp_path, capsys):
    """Issue 32 §2: after a kill -9 the same command is not refused: complete videos are
    skipped, an incomplete one is redone, and the hidden temporary files the killed run
    left are removed."""
    out = tmp_path / "out"
    (videos / "no_face.mp4").unlink()
    command = ["predict", str(model), str(videos), "--output", str(out)]
    with pytest.warns(UserWarning, match="shorter than one clip"):
        assert main(command) == 0
    capsys.readouterr()
    reference = (out / "single_face.csv").read_text()
    (out / "single_face.png").unlink()  # killed between its two files
    stray = out / ".single_face.png.k3j_x9q2.tmp"  # what io.atomic_path leaves on kill -9
    stray.write_bytes(b"half a file")
    stray.chmod(0o600)
    untouched = out / ".notes.txt"  # a hidden file of the user's: not avstan's to remove
    untouched.write_text("mine")
    stamp = (out / "face_noface.csv").stat().st_mtime_ns
    with pytest.warns(UserWarning, match="shorter than one clip"):
        assert main(command) == 0
    printed = capsys.readouterr().out
    assert "removed .single_face.png.k3j_x9q2.tmp, a temporary file of an earlier run" in printed
    assert "face_noface.mov: outputs complete, skipped" in printed
    assert "predicted 1, failed 0" in printed
    assert not stray.exists() and untouched.read_text() == "mine"
    assert (out / "single_face.png").stat().st_size > 0
    assert (out / "single_face.csv").read_text() == reference
    assert (out / "face_noface.csv").stat().st_mtime_ns == stamp


def test_a_run_where_every_video_fails_leaves_no_run_record(model, videos, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(model), str(videos / "no_face.mp4"), "--output",
                 str(out)]) == EXIT_PARTIAL_FAILURE
    assert not out.exists()


def test_find_videos_visits_each_folder_once_and_reads_inside_a_hidden_folder(tmp_path):
    from avstan.apply.predict import find_videos

    root = tmp_path / ".cache" / "clips"  # the folder given may sit inside a hidden one
    (root / "day1").mkdir(parents=True)
    (root / "day1" / "a.mp4").write_bytes(b"")
    (root / "day1" / "b.ts").write_bytes(b"")
    (root / ".trash").mkdir()
    (root / ".trash" / "old.mp4").write_bytes(b"")
    (root / "day1" / "loop").symlink_to(root)
    assert find_videos(root) == [root / "day1" / "a.mp4", root / "day1" / "b.ts"]
