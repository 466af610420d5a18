"""Export: ONNX (onnxruntime) and TorchScript outputs equal PyTorch's on the same clips."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from avstan.cli import EXIT_USER_ERROR, main
from avstan.models import create_model
from avstan.training.model_file import load_model_file, save_model_file


@pytest.fixture(scope="module", params=["sta3d", "cnn2d"])
def model_path(request, tmp_path_factory):
    torch.manual_seed(0)
    model = create_model(request.param, crop_size=16, clip_length=4)
    path = tmp_path_factory.mktemp(request.param) / "model.pt"
    save_model_file(path, model, ["valence", "arousal"], 4.0)
    return path


def clips(seed=1):
    return torch.rand(5, 3, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_onnx_matches_pytorch_within_1e_4(model_path, capsys):
    assert main(["export", str(model_path), "--format", "onnx"]) == 0
    exported = model_path.with_suffix(".onnx")
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    model, _ = load_model_file(model_path)
    x = clips()
    outputs = session.run(None, {"clip": x.numpy()})  # another batch size than the export's
    with torch.no_grad():
        reference = model(x)
    np.testing.assert_allclose(outputs[0], reference["prediction"].numpy(), atol=1e-4)
    if "attention" in reference:
        np.testing.assert_allclose(outputs[1], reference["attention"].numpy(), atol=1e-4)
    metadata = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    info = json.loads(metadata["avstan"])
    assert info["targets"] == ["valence", "arousal"] and info["clip_length"] == 4


def test_torchscript_matches_pytorch(model_path, tmp_path):
    output = tmp_path / "model.ts"
    assert main(["export", str(model_path), "--format", "torchscript", "--output",
                 str(output)]) == 0
    extra = {"avstan.json": ""}
    loaded = torch.jit.load(str(output), _extra_files=extra)
    model, _ = load_model_file(model_path)
    x = clips(2)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x)[0].numpy(), model(x)["prediction"].numpy(),
                                   atol=1e-4)
    assert json.loads(extra["avstan.json"])["crop_size"] == 16


def test_export_errors_are_one_line(tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"nope")
    assert main(["export", str(fake)]) == EXIT_USER_ERROR
    assert "not a readable avstan model file" in capsys.readouterr().err
