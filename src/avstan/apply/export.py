"""Export a trained model to ONNX or TorchScript, so it can ship without avstan.

The exported graph takes the model's inputs, in its ``input_names`` order: ``clip``
(B, 3, T, S, S) float32 RGB in [0, 1] for video models, ``audio`` (B, T, D) float32 raw
eGeMAPS functionals for audio models (the standardisation fitted on train is inside the
graph), both for the fusion. It returns ``prediction`` (B, K) and, where the model has
them, ``attention`` (B, T, S, S) and ``temporal_attention`` (B, T). Everything else a user
needs to feed it and read it — targets, crop size, clip length, step rate, alignment
template, the post-processing chain, the ``lookahead`` (the prediction for step e comes
from the clip ending at e + lookahead, the steps past the end repeating the last) —
travels inside the file as JSON: ONNX ``metadata_props["avstan"]``, TorchScript extra
file ``avstan.json``.

Each export is checked before it is kept: the exported model is run (onnxruntime /
``torch.jit.load``) on random clips and must match PyTorch within ``tolerance``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes
from avstan.models.model_file import TrainedModel

FORMATS = ("onnx", "torchscript")


OUTPUTS = ("prediction", "attention", "temporal_attention")
INPUT_DOCS = {"clip": "clip (B, 3, T, S, S) float32 RGB in [0, 1]",
              "audio": "audio (B, T, D) float32 eGeMAPS functionals, not standardised"}


class ExportWrapper(nn.Module):
    """A model with positional inputs (its ``input_names`` order) and a tuple of outputs:
    prediction, then attention and temporal_attention where it has them (``output_names``)."""

    def __init__(self, model: nn.Module, output_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(model.input_names)
        self.output_names = output_names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.input_names, inputs, strict=True)))
        return tuple(out[name] for name in self.output_names)


def example_inputs(model: nn.Module, count: int) -> tuple[torch.Tensor, ...]:
    """Random inputs for every entry the model reads; audio spread like raw features."""
    examples = []
    for name in model.input_names:
        if name == "clip":
            examples.append(torch.rand(count, 3, model.clip_length, model.crop_size,
                                       model.crop_size))
        elif name == "audio":
            standardiser = model.audio_standardiser
            z = torch.randn(count, model.clip_length, standardiser.center.shape[0])
            examples.append(standardiser.center + 2 * z * standardiser.scale)
        else:
            raise AvstanError(f"cannot export a model that reads {name!r} (a measurement "
                              "bound, not a deployable model)")
    return tuple(examples)


def export_metadata(trained: TrainedModel, output_names: tuple[str, ...]) -> dict[str, Any]:
    """What a user needs to drive the exported graph, as JSON-ready values."""
    template = trained.alignment_template
    return {"format": "avstan-export", "model_name": trained.model_name,
            "targets": list(trained.targets), "crop_size": trained.crop_size,
            "clip_length": trained.clip_length, "step_rate": trained.step_rate,
            "lookahead": int(getattr(trained.network, "lookahead", 0)),
            "inputs": [INPUT_DOCS[n] for n in trained.input_names],
            "outputs": list(output_names),
            "audio_window_seconds": trained.audio_window,
            "alignment_template": None if template is None else [list(p) for p in template],
            "postprocessing": trained.postprocessing}


def export_model(model_path: str | Path, output: str | Path | None = None, fmt: str = "onnx",
                 tolerance: float = 1e-4, check_clips: int = 3) -> Path:
    """Export ``model_path`` to ``output`` in ``fmt`` (default: beside the model, ``.onnx``
    or ``.ts``); returns the path written."""
    if fmt not in FORMATS:
        raise AvstanError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    output = Path(output) if output is not None else \
        Path(model_path).with_suffix(".onnx" if fmt == "onnx" else ".ts")
    if not output.parent.is_dir():
        raise AvstanError(f"{output.parent}: no such folder for the exported model")
    trained = TrainedModel.load(model_path)
    model = trained.network
    torch.manual_seed(0)
    example = example_inputs(model, check_clips)
    with torch.no_grad():
        produced = model(**dict(zip(model.input_names, example, strict=True)))
    output_names = tuple(name for name in OUTPUTS if name in produced)
    wrapper = ExportWrapper(model, output_names).eval()
    with torch.no_grad():
        reference = [t.numpy() for t in wrapper(*example)]
    metadata = json.dumps(export_metadata(trained, output_names))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model"
        if fmt == "onnx":
            outputs = _export_onnx(wrapper, example, path, metadata)
        else:
            outputs = _export_torchscript(wrapper, example, path, metadata)
        for name, got, want in zip(output_names, outputs, reference, strict=True):
            error = float(np.abs(got - want).max())
            if error > tolerance:
                raise AvstanError(f"{model_path}: the {fmt} export differs from PyTorch by "
                                  f"{error:.2g} on {name} (tolerance {tolerance:g}); not written")
        try:
            atomic_write_bytes(output, path.read_bytes())
        except OSError as exc:
            raise AvstanError(f"{output}: cannot write ({exc.strerror})") from None
    return output


def _export_onnx(wrapper: ExportWrapper, example: tuple[torch.Tensor, ...], path: Path,
                 metadata: str) -> list[np.ndarray]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise AvstanError("ONNX export needs the onnx and onnxruntime packages: "
                          "pip install 'avstan[export]'") from None
    names = list(wrapper.output_names)
    inputs = list(wrapper.input_names)
    torch.onnx.export(wrapper, example, str(path), dynamo=False, input_names=inputs,
                      output_names=names,
                      dynamic_axes={n: {0: "batch"} for n in inputs + names})
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "avstan", metadata
    onnx.save(graph, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {n: t.numpy() for n, t in zip(inputs, example, strict=True)})


def _export_torchscript(wrapper: ExportWrapper, example: tuple[torch.Tensor, ...], path: Path,
                        metadata: str) -> list[np.ndarray]:
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"avstan.json": metadata})
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return [t.numpy() for t in loaded(*example)]
