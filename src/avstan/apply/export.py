"""Export a trained model to ONNX, a ``torch.export`` program or TorchScript, so it can ship
without avstan.

* ``onnx`` (default): written through ``torch.export`` (PyTorch's exporter since 2.9; the
  legacy TorchScript-based one is deprecated), checked with onnxruntime. Every registered
  model exports this way within the tolerance (``tests/apply/test_export.py``).
* ``exported``: the ``torch.export`` program itself (``.pt2``, ``torch.export.load``), the
  format PyTorch now recommends for deployment in Python and AOTInductor.
* ``torchscript`` (``.ts``): for runtimes that still read TorchScript; PyTorch has
  deprecated ``torch.jit.trace``, so this export says so once (its own warning silenced).

The exported graph takes the model's inputs, in its ``input_names`` order: ``clip``
(B, 3, T, S, S) float32 RGB in [0, 1] for video models, ``audio`` (B, T, D) float32 raw
eGeMAPS functionals for audio models (the standardisation fitted on train is inside the
graph), both for the fusion. It returns ``prediction`` (B, K) and, where the model has
them, ``attention`` (B, T, S, S) and ``temporal_attention`` (B, T). Everything else a user
needs to feed it and read it — targets, crop size, clip length, step rate, alignment
template, the post-processing chain, the ``lookahead`` (the prediction for step e comes
from the clip ending at e + lookahead, the steps past the end repeating the last) —
travels inside the file as JSON: ONNX ``metadata_props["avstan"]``, the ``.pt2`` and
TorchScript files' extra file ``avstan.json``. The batch dimension is free in all three.

Each export is checked before it is kept: the exported model is run (onnxruntime /
``torch.export.load`` / ``torch.jit.load``) on random clips of another batch size than the
export's and must match PyTorch within ``tolerance``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes
from avstan.models.model_file import TrainedModel

FORMATS = ("onnx", "exported", "torchscript")
SUFFIXES = {"onnx": ".onnx", "exported": ".pt2", "torchscript": ".ts"}


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
    """Export ``model_path`` to ``output`` in ``fmt`` (default: beside the model, with the
    format's suffix: ``.onnx``, ``.pt2`` or ``.ts``); returns the path written."""
    if fmt not in FORMATS:
        raise AvstanError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    output = Path(output) if output is not None else \
        Path(model_path).with_suffix(SUFFIXES[fmt])
    check_destination(output)
    trained = TrainedModel.load(model_path)
    model = trained.network
    torch.manual_seed(0)
    example = example_inputs(model, check_clips)
    with torch.no_grad():
        produced = model(**dict(zip(model.input_names, example, strict=True)))
    output_names = tuple(name for name in OUTPUTS if name in produced)
    wrapper = ExportWrapper(model, output_names).eval()
    metadata = json.dumps(export_metadata(trained, output_names))
    check = example_inputs(model, check_clips + 2)  # another batch size than the export's
    with torch.no_grad():
        reference = [t.numpy() for t in wrapper(*check)]
    exporters = {"onnx": _export_onnx, "exported": _export_program,
                 "torchscript": _export_torchscript}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"model{SUFFIXES[fmt]}"  # torch.export.load wants .pt2
        outputs = exporters[fmt](wrapper, example, check, path, metadata)
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


def check_destination(output: Path) -> None:
    """Refuse an output the export could not write before the (slow) export is built: a
    missing or read-only folder, or a folder where the file should go."""
    import os

    if not output.parent.is_dir():
        raise AvstanError(f"{output.parent}: no such folder for the exported model")
    if output.is_dir():
        raise AvstanError(f"{output}: is a folder; give the file to write, e.g. "
                          f"{output / 'model.onnx'}")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise AvstanError(f"{output.parent}: cannot write the exported model here (permission "
                          "denied); choose another --output")


def batch_free(example: tuple[torch.Tensor, ...]) -> tuple[tuple[dict, ...]]:
    """``torch.export`` dynamic shapes: every input's first dimension (the batch) free; one
    tuple for the wrapper's ``*inputs``."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    return (tuple({0: batch} for _ in example),)


@contextlib.contextmanager
def quiet_exporter():
    """Keep PyTorch's exporter to itself: its progress lines on stdout, its notes about
    packages avstan does not use (torchvision's operators) in its logs."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # torch's own calls of a pytree API it deprecates, and its note on saving
            # weights that are all on the CPU anyway: nothing avstan can act on
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            warnings.filterwarnings("ignore", message=".*No complete tensor found.*")
            # nn.LSTM's cached _flat_weights, which torch.export re-assigns itself
            warnings.filterwarnings("ignore", message=r"(?s).*_flat_weights.*were assigned "
                                                      "during export.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def exported_program(wrapper: ExportWrapper, example: tuple[torch.Tensor, ...]):
    try:
        with quiet_exporter():
            return torch.export.export(wrapper, example, dynamic_shapes=batch_free(example))
    except Exception as exc:  # noqa: BLE001 - a model torch.export cannot trace: one line
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise AvstanError(f"{wrapper.model.model_name}: torch.export cannot trace this model "
                          f"({reason}); use --format torchscript") from None


def _export_onnx(wrapper: ExportWrapper, example: tuple[torch.Tensor, ...],
                 check: tuple[torch.Tensor, ...], path: Path, metadata: str
                 ) -> list[np.ndarray]:
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.export's ONNX exporter needs it
    except ImportError:
        raise AvstanError("ONNX export needs the onnx, onnxscript and onnxruntime packages: "
                          "pip install 'avstan[export]'") from None
    names = list(wrapper.output_names)
    inputs = list(wrapper.input_names)
    program = exported_program(wrapper, example)
    with quiet_exporter():
        torch.onnx.export(program, example, str(path), dynamo=True, input_names=inputs,
                          output_names=names, verbose=False)
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "avstan", metadata
    onnx.save(graph, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {n: t.numpy() for n, t in zip(inputs, check, strict=True)})


def _export_program(wrapper: ExportWrapper, example: tuple[torch.Tensor, ...],
                    check: tuple[torch.Tensor, ...], path: Path, metadata: str
                    ) -> list[np.ndarray]:
    program = exported_program(wrapper, example)
    with quiet_exporter():
        torch.export.save(program, str(path), extra_files={"avstan.json": metadata})
        loaded = torch.export.load(str(path))
    with torch.no_grad():
        return [t.detach().numpy() for t in loaded.module()(*check)]


def _export_torchscript(wrapper: ExportWrapper, example: tuple[torch.Tensor, ...],
                        check: tuple[torch.Tensor, ...], path: Path, metadata: str
                        ) -> list[np.ndarray]:
    warnings.warn("TorchScript is deprecated in PyTorch (torch.jit.trace); this export still "
                  "works, but prefer --format exported (a torch.export program) or onnx",
                  UserWarning, stacklevel=3)
    with torch.no_grad(), warnings.catch_warnings():
        # torch's own deprecation notice for the call above: said once, in our words
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.*")
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"avstan.json": metadata})
        loaded = torch.jit.load(str(path))
        return [t.numpy() for t in loaded(*check)]
