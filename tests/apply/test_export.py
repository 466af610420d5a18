"""Export: ONNX (onnxruntime) and TorchScript outputs equal PyTorch's on the same clips."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from avstan.cli import EXIT_USER_ERROR, main
from avstan.models import create_model
from avstan.models.model_file import TrainedModel

LSTM_TA = {"audio_features": 6, "hidden": 8, "layers": 2, "lookahead": 3}
# case: (model, options); a case's name holds "lstm_ta" where the model reads ahead
OPTIONS = {"sta3d": ("sta3d", {"crop_size": 16}), "cnn2d": ("cnn2d", {"crop_size": 16}),
           "static3d": ("static3d", {"crop_size": 16}), "lstm_ta": ("lstm_ta", LSTM_TA),
           "lstm_ta_pooling": ("lstm_ta", {**LSTM_TA, "attention_pooling": True}),
           "lstm_ta_frames": ("lstm_ta", {**LSTM_TA, "frame_descriptors": 3}),
           "av_sta": ("av_sta", {"crop_size": 16, "audio_features": 6, "audio": {"hidden": 8}}),
           "frame2d": ("frame2d", {"crop_size": 16, "expression_classes": 8}),
           "frame2d_va": ("frame2d", {"crop_size": 16, "expression_classes": 8,
                                      "va_from_expressions": True, "flip_average": True})}


@pytest.fixture(scope="module", params=list(OPTIONS))
def model_path(request, tmp_path_factory):
    torch.manual_seed(0)
    name, options = OPTIONS[request.param]
    model = create_model(name, clip_length=4, **options)
    if hasattr(model, "audio_standardiser"):  # statistics fitted on train travel inside
        model.audio_standardiser.set_statistics(np.arange(6.0), np.linspace(0.5, 30, 6))
    path = tmp_path_factory.mktemp(request.param) / "model.pt"
    TrainedModel(model, ("valence", "arousal"), 4.0).save(path)
    return path


def clips(model, seed=1):
    """Inputs the model reads, by name: face clips and raw (unstandardised) audio."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"clip": (5, 3, 4, 16, 16), "audio": (5, 4, 6)}
    inputs = {n: torch.rand(shapes[n], generator=generator) for n in model.input_names}
    if "audio" in inputs:
        inputs["audio"] = inputs["audio"] * 60 - 10
    return inputs


def test_onnx_matches_pytorch_within_1e_4(model_path, capsys):
    assert main(["export", str(model_path), "--format", "onnx"]) == 0
    exported = model_path.with_suffix(".onnx")
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    model = TrainedModel.load(model_path).network
    x = clips(model)
    # Another batch size than the export's.
    outputs = session.run(None, {n: v.numpy() for n, v in x.items()})
    with torch.no_grad():
        reference = model(**x)
    names = [o.name for o in session.get_outputs()]
    assert names[0] == "prediction" and set(names) <= set(reference)
    for name, output in zip(names, outputs, strict=True):
        np.testing.assert_allclose(output, reference[name].numpy(), atol=1e-4)
    metadata = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    info = json.loads(metadata["avstan"])
    assert info["targets"] == ["valence", "arousal"] and info["clip_length"] == 4
    assert info["lookahead"] == (3 if "lstm_ta" in str(model_path) else 0)


def test_exported_program_matches_pytorch_at_another_batch_size(model_path, tmp_path):
    """--format exported: the torch.export program (.pt2) PyTorch recommends."""
    assert main(["export", str(model_path), "--format", "exported"]) == 0
    exported = model_path.with_suffix(".pt2")
    extra = {"avstan.json": ""}
    program = torch.export.load(str(exported), extra_files=extra)
    model = TrainedModel.load(model_path).network
    x = clips(model, 3)  # 5 clips; the export traced 3
    with torch.no_grad():
        got = program.module()(*x.values())
        reference = model(**x)
    np.testing.assert_allclose(got[0].numpy(), reference["prediction"].numpy(), atol=1e-4)
    info = json.loads(extra["avstan.json"])
    assert info["outputs"][0] == "prediction" and info["clip_length"] == 4


def test_torchscript_matches_pytorch(model_path, tmp_path):
    output = tmp_path / "model.ts"
    # PyTorch deprecated torch.jit.trace: said once, in avstan's words (its own notice,
    # raised at avstan's call, would fail the suite: pyproject's filterwarnings)
    with pytest.warns(UserWarning, match="TorchScript is deprecated in PyTorch"):
        assert main(["export", str(model_path), "--format", "torchscript", "--output",
                     str(output)]) == 0
    extra = {"avstan.json": ""}
    loaded = torch.jit.load(str(output), _extra_files=extra)
    model = TrainedModel.load(model_path).network
    x = clips(model, 2)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(*x.values())[0].numpy(),
                                   model(**x)["prediction"].numpy(), atol=1e-4)
    info = json.loads(extra["avstan.json"])
    assert info["crop_size"] == (16 if "clip" in model.input_names else None)
    assert len(info["inputs"]) == len(model.input_names)


def test_export_errors_are_one_line(tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"nope")
    assert main(["export", str(fake)]) == EXIT_USER_ERROR
    assert "not a readable avstan model file" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_refused_before_the_export(tmp_path, capsys):
    """Issue 32 §5: a read-only or folder --output was found only after the export."""
    import os
    import time

    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    TrainedModel(create_model("sta3d", crop_size=16, clip_length=4), ("valence", "arousal"),
                 4.0).save(path)
    folder = tmp_path / "exports"
    folder.mkdir()
    started = time.monotonic()
    assert main(["export", str(path), "--output", str(folder)]) == EXIT_USER_ERROR
    assert f"{folder}: is a folder; give the file to write" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["export", str(path), "--output", str(locked / "m.onnx")]) == \
            EXIT_USER_ERROR
        assert "permission denied" in capsys.readouterr().err
    assert time.monotonic() - started < 5  # refused before the sta3d export (~10 s) is built


@pytest.mark.parametrize("fmt", ["onnx", "exported"])
def test_torch_output_stays_out_of_avstans_messages(model_path, capsys, fmt):
    """Issue 32 §5: torch's own warnings and progress lines were printed as avstan's
    ("avstan: warning: ..."): no warning is raised, and the output is the path alone."""
    import warnings

    output = model_path.with_name(f"quiet.{fmt}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", str(model_path), "--format", fmt, "--output",
                     str(output)]) == 0
    assert [str(w.message)[:80] for w in caught] == []
    captured = capsys.readouterr()
    assert captured.out.strip() == str(output)
    assert "warning" not in captured.err and "torch" not in captured.err
