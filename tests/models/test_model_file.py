"""The model file: round trip, and refusal of anything that is not ours (nothing executed)."""

import pickle

import pytest
import torch

from avstan.errors import AvstanError
from avstan.models import create_model
from avstan.training.model_file import load_model_file, save_model_file


def saved_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("sta3d", crop_size=16, clip_length=4)
    path = tmp_path / "model.pt"
    save_model_file(path, model, ["valence", "arousal"], 4.0, {"note": ("a", 1)})
    return model, path


def test_round_trip_gives_the_same_predictions(tmp_path):
    model, path = saved_model(tmp_path)
    loaded, info = load_model_file(path)
    clip = torch.rand(2, 3, 4, 16, 16)
    torch.testing.assert_close(loaded(clip)["prediction"], model.eval()(clip)["prediction"])
    assert info["model_options"]["crop_size"] == 16 and info["metadata"]["note"] == ["a", 1]
    assert not loaded.training


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_with_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "avstan-model", "payload": Exploit()}, path)
    with pytest.raises(AvstanError, match="evil.pt: not a readable avstan model file"):
        load_model_file(path)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_foreign_and_future_files_are_refused(tmp_path):
    _, path = saved_model(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvstanError, match="truncated.pt: not a readable"):
        load_model_file(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(AvstanError, match="foreign.pt: not an avstan model file"):
        load_model_file(foreign)
    future = tmp_path / "future.pt"
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, future)
    with pytest.raises(AvstanError, match="format version 99"):
        load_model_file(future)
    text = tmp_path / "text.pt"
    text.write_bytes(pickle.dumps("just a string"))
    with pytest.raises(AvstanError, match="text.pt"):
        load_model_file(text)


def test_weights_of_another_architecture_are_refused(tmp_path):
    _, path = saved_model(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["model_name"] = "cnn3d"
    torch.save(payload, tmp_path / "mixed.pt")
    with pytest.raises(AvstanError, match="does not match its architecture"):
        load_model_file(tmp_path / "mixed.pt")


def test_unwritable_destination_is_a_clear_error(tmp_path):
    model = create_model("cnn2d", crop_size=16, clip_length=4)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvstanError, match="cannot write the model file"):
        save_model_file(blocker / "model.pt", model, ["valence"], 4.0)
