"""The model file: round trip, and refusal of anything that is not ours (nothing executed)."""

import pickle

import pytest
import torch

from avstan.errors import AvstanError
from avstan.models import create_model
from avstan.models.model_file import TrainedModel


def saved_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("sta3d", crop_size=16, clip_length=4)
    path = tmp_path / "model.pt"
    TrainedModel(model, ("valence", "arousal"), 4.0, {"note": ("a", 1)}).save(path)
    return model, path


def test_round_trip_gives_the_same_predictions(tmp_path):
    model, path = saved_model(tmp_path)
    trained = TrainedModel.load(path)
    loaded = trained.network
    clip = torch.rand(2, 3, 4, 16, 16)
    torch.testing.assert_close(loaded(clip)["prediction"], model.eval()(clip)["prediction"])
    assert trained.model_options["crop_size"] == 16 and trained.metadata["note"] == ["a", 1]
    assert trained.targets == ("valence", "arousal") and trained.step_rate == 4.0
    assert not loaded.training


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_with_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "avstan-model", "payload": Exploit()}, path)
    with pytest.raises(AvstanError, match="evil.pt: not a readable avstan model file"):
        TrainedModel.load(path)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_foreign_and_future_files_are_refused(tmp_path):
    _, path = saved_model(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvstanError, match="truncated.pt: not a readable avstan model file "
                                          r"\(its zip archive is truncated or damaged"):
        TrainedModel.load(truncated)
    truncated.write_bytes(data[:30_000])  # issue 32: at 30 kB it was "not the tensors"
    with pytest.raises(AvstanError, match="zip archive is truncated or damaged"):
        TrainedModel.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(AvstanError, match="foreign.pt: not an avstan model file"):
        TrainedModel.load(foreign)
    future = tmp_path / "future.pt"
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, future)
    with pytest.raises(AvstanError, match="format version 99"):
        TrainedModel.load(future)
    text = tmp_path / "text.pt"
    text.write_bytes(pickle.dumps("just a string"))
    with pytest.raises(AvstanError, match="text.pt"):
        TrainedModel.load(text)


def test_weights_of_another_architecture_are_refused(tmp_path):
    _, path = saved_model(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["model_name"] = "cnn3d"
    torch.save(payload, tmp_path / "mixed.pt")
    with pytest.raises(AvstanError, match="does not match its architecture"):
        TrainedModel.load(tmp_path / "mixed.pt")


def test_unwritable_destination_is_a_clear_error(tmp_path):
    model = create_model("cnn2d", crop_size=16, clip_length=4, targets=["valence"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvstanError, match="cannot write the model file"):
        TrainedModel(model, ("valence",), 4.0).save(blocker / "model.pt")


def test_face_search_interval_prefers_the_request_then_the_model_then_the_default():
    from avstan.data.prepare import PrepareConfig

    network = create_model("cnn3d", crop_size=16, clip_length=4, targets=["valence"])
    trained = TrainedModel(network, ("valence",), 4.0, {"redetect_every": 2})
    assert trained.face_search_interval(5) == 5
    assert trained.face_search_interval() == trained.redetect_every == 2
    older = [TrainedModel(network, ("valence",), 4.0, metadata) for metadata in
             ({}, {"redetect_every": None})]
    assert {m.face_search_interval() for m in older} == {PrepareConfig.redetect_every}
    with pytest.raises(AvstanError, match="--redetect-every 0"):
        trained.face_search_interval(0)


def test_face_detector_is_the_requested_then_the_stores_then_hog_for_older_files(tmp_path):
    network = create_model("cnn3d", crop_size=16, clip_length=4, targets=["valence"])
    recorded = TrainedModel(network, ("valence",), 4.0, {"detector": "hog"})
    assert recorded.face_detector() == "hog" and recorded.face_detector("yunet") == "yunet"
    synthetic = TrainedModel(network, ("valence",), 4.0, {"detector": None})  # no detection
    assert synthetic.face_detector() == "yunet"
    older = TrainedModel(network, ("valence",), 4.0, {"redetect_every": 4})  # before yunet
    assert older.face_detector() == "hog"
    reloaded = TrainedModel.load(recorded.save(tmp_path / "model.pt"))
    assert reloaded.face_detector() == "hog"
    with pytest.raises(AvstanError, match="--detector cnn: unknown face detector"):
        recorded.face_detector("cnn")


def test_what_new_media_is_read_with_comes_from_the_file_or_prepares_defaults(tmp_path):
    from avstan.data.faces import DEFAULT_TEMPLATE
    from avstan.data.prepare import PrepareConfig

    template = [[0.3, 0.4], [0.7, 0.4], [0.5, 0.6]]
    video = TrainedModel(create_model("cnn3d", crop_size=16, clip_length=4),
                         ("valence", "arousal"), 4.0, {"alignment_template": template})
    video = TrainedModel.load(video.save(tmp_path / "video.pt"))
    assert video.crop_size == 16 and video.input_names == ("clip",)
    assert video.alignment_template == tuple(map(tuple, template))
    assert video.audio_window is None  # reads no audio
    audio = TrainedModel(create_model("lstm", clip_length=4, targets=["arousal"]), ("arousal",),
                         4.0)
    assert audio.crop_size is None and audio.alignment_template is None
    assert audio.audio_window == PrepareConfig.audio_window and audio.reads_audio
    fusion = TrainedModel(create_model("av_sta", crop_size=16, clip_length=4,
                                       video_model="cnn3d", targets=["valence"]), ("valence",),
                          4.0,
                          {"audio_window_seconds": 6.0})
    assert fusion.input_names == ("clip", "audio") and fusion.audio_window == 6.0
    assert fusion.alignment_template == DEFAULT_TEMPLATE and fusion.crop_size == 16


def test_stored_postprocessing_travels_with_the_file(tmp_path):
    network = create_model("cnn2d", crop_size=16, clip_length=4, targets=["valence"])
    chains = {"valence": {"median_window": 3, "centre_offset": 0.25}}
    path = TrainedModel(network, ("valence",), 4.0).with_postprocessing(chains).save(
        tmp_path / "model.pt")
    assert TrainedModel.load(path).postprocessing == chains
    assert TrainedModel.load(TrainedModel(network, ("valence",), 4.0).save(
        tmp_path / "plain.pt")).postprocessing is None


def test_check_recordings_names_the_crop_size_and_the_step_rate(tmp_path):
    from types import SimpleNamespace

    trained = TrainedModel(create_model("cnn3d", crop_size=16, clip_length=4,
                                        targets=["valence"]), ("valence",), 4.0)
    trained.check_recordings([SimpleNamespace(crop_size=16, step_rate=4.0)], "m.pt", "store")
    with pytest.raises(AvstanError, match=r"crops are \[24\] px but m.pt was trained on 16"):
        trained.check_recordings([SimpleNamespace(crop_size=24, step_rate=4.0)], "m.pt", "s")
    with pytest.raises(AvstanError, match=r"step rate \[5.0\] but m.pt"):
        trained.check_recordings([SimpleNamespace(crop_size=16, step_rate=5.0)], "m.pt", "s")


def test_a_frame_model_or_one_trained_on_images_reads_any_step_rate():
    from types import SimpleNamespace

    at_eight = [SimpleNamespace(crop_size=16, step_rate=8.0)]
    frame = TrainedModel(create_model("frame2d", crop_size=16, channels=[4, 8], fc_hidden=8),
                         ("valence", "arousal"), 4.0)
    frame.check_recordings(at_eight, "frame.pt", "store")  # one crop per step: any rate
    clips = TrainedModel(create_model("cnn3d", crop_size=16, clip_length=4,
                                      targets=["valence"]), ("valence",), 4.0)
    with pytest.raises(AvstanError, match=r"step rate \[8.0\] but clips.pt"):
        clips.check_recordings(at_eight, "clips.pt", "store")  # a clip spans 1 s at 4/s
    from_images = TrainedModel(clips.network, ("valence",), 4.0, {"trained_on": "images"})
    from_images.check_recordings(at_eight, "images.pt", "store")  # still faces: no rate


def test_a_network_built_for_other_targets_is_refused_before_writing():
    network = create_model("cnn2d", crop_size=16, clip_length=4)  # valence and arousal
    with pytest.raises(ValueError, match="predicts"):
        TrainedModel(network, ("valence",), 4.0)


@pytest.mark.parametrize(("edit", "words"), [
    (lambda p: p["metadata"].update(redetect_every="abc"), "redetect_every must be int"),
    (lambda p: p["metadata"].update(redetect_every=0), "redetect_every 0: use an integer"),
    (lambda p: p["metadata"].update(alignment_template=[[1, 2]]), "alignment_template "
                                                                  "[[1.0, 2.0]]: use three"),
    (lambda p: p.update(postprocessing={"valence": 3}), "postprocessing {'valence': 3}: use "
                                                        "one mapping"),
    (lambda p: p.update(step_rate=float("nan")), "step_rate must be a finite number"),
    (lambda p: p["metadata"].update(audio_window_seconds=-4), "audio_window_seconds -4"),
])
def test_edited_settings_in_a_model_file_are_one_line_naming_the_key(tmp_path, edit, words):
    """Issue 32 §3: what predict reads back from a model file is checked by declaration."""
    _, path = saved_model(tmp_path)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    with pytest.raises(AvstanError) as info:
        TrainedModel.load(edited)
    message = str(info.value)
    assert message.startswith(str(edited)) and words in message and "\n" not in message
    assert "edited or damaged" in message
