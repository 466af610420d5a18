"""Export a trained model to ONNX or TorchScript, so it can ship without avstan.

The exported graph takes ``clip`` (B, 3, T, S, S) float32 RGB in [0, 1] and returns
``prediction`` (B, K) and, for attention models, ``attention`` (B, T, S, S). Everything
else a user needs to feed it and read it — targets, crop size, clip length, step rate,
alignment template, the post-processing chain — travels inside the file as JSON: ONNX
``metadata_props["avstan"]``, TorchScript extra file ``avstan.json``.

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

from avstan.data.store import atomic_write_bytes
from avstan.errors import AvstanError
from avstan.training.model_file import load_model_file

FORMATS = ("onnx", "torchscript")


class ExportWrapper(nn.Module):
    """A model's dict output as a tuple: (prediction,) or (prediction, attention)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(clip)
        if "attention" in out:
            return out["prediction"], out["attention"]
        return (out["prediction"],)


def export_metadata(info: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    return {"format": "avstan-export", "model_name": info["model_name"],
            "targets": info["targets"], "crop_size": model.crop_size,
            "clip_length": model.clip_length, "step_rate": info["step_rate"],
            "input": "clip (B, 3, T, S, S) float32 RGB in [0, 1]",
            "alignment_template": info.get("metadata", {}).get("alignment_template"),
            "postprocessing": info.get("postprocessing")}


def export_model(model_path: str | Path, output: str | Path, fmt: str = "onnx",
                 tolerance: float = 1e-4, check_clips: int = 3) -> Path:
    """Export ``model_path`` to ``output`` in ``fmt``; returns the path written."""
    if fmt not in FORMATS:
        raise AvstanError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    output = Path(output)
    if not output.parent.is_dir():
        raise AvstanError(f"{output.parent}: no such folder for the exported model")
    model, info = load_model_file(model_path)
    wrapper = ExportWrapper(model).eval()
    torch.manual_seed(0)
    example = torch.rand(check_clips, 3, model.clip_length, model.crop_size, model.crop_size)
    with torch.no_grad():
        reference = [t.numpy() for t in wrapper(example)]
    metadata = json.dumps(export_metadata(info, model))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model"
        if fmt == "onnx":
            outputs = _export_onnx(wrapper, example, path, metadata)
        else:
            outputs = _export_torchscript(wrapper, example, path, metadata)
        for name, got, want in zip(("prediction", "attention"), outputs, reference,
                                   strict=False):
            error = float(np.abs(got - want).max())
            if error > tolerance:
                raise AvstanError(f"{model_path}: the {fmt} export differs from PyTorch by "
                                  f"{error:.2g} on {name} (tolerance {tolerance:g}); not written")
        try:
            atomic_write_bytes(output, path.read_bytes())
        except OSError as exc:
            raise AvstanError(f"{output}: cannot write ({exc.strerror})") from None
    return output


def _export_onnx(wrapper: nn.Module, example: torch.Tensor, path: Path,
                 metadata: str) -> list[np.ndarray]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise AvstanError("ONNX export needs the onnx and onnxruntime packages: "
                          "pip install 'avstan[export]'") from None
    names = ["prediction", "attention"][:len(wrapper(example[:1]))]
    torch.onnx.export(wrapper, (example,), str(path), dynamo=False, input_names=["clip"],
                      output_names=names, dynamic_axes={"clip": {0: "batch"},
                                                        **{n: {0: "batch"} for n in names}})
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "avstan", metadata
    onnx.save(graph, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"clip": example.numpy()})


def _export_torchscript(wrapper: nn.Module, example: torch.Tensor, path: Path,
                        metadata: str) -> list[np.ndarray]:
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={"avstan.json": metadata})
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return [t.numpy() for t in loaded(example)]
