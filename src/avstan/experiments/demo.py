"""The demo: the papers' ablations on synthetic faces with a synthetic voice.

The rows are the ICASSP paper's Table 1 (2D-CNN, 3D-CNN, 3D-CNN + STA) and the MM paper's
Table 3: audio (LSTM-RNN, LSTM-RNN + TA), video (3D-CNN, 3D-CNN + STA) and audio-visual
(LSTM-RNN + TA + 3D-CNN + STA, started from the two trained branches).

``run_demo`` generates the synthetic corpus, trains each model from its packaged config
(``avstan/configs/demo_<model>.yaml``), scores all of them on the test partition, and
writes into the output folder:

    corpus/                   the synthetic recording store
    models/<model>/           each training run (checkpoints, logs, model.pt)
    results.md, results.csv   the table (Table 1 layout + attention-in-mask ratio), raw;
    results_postprocessed.csv the same after the AVEC chain fitted on devel
    results.json              every score, both conventions
    predictions_<rec>.png     predicted vs gold valence and arousal, test recordings (Figs. 3–4)
    attention.png             sta3d's attention over a test clip, with the salient mask (Fig. 5)
    attention_diagnostics.json  gradient balance and direction of the attention branch
    training_curves.png       train loss and devel CCC per epoch
    real_faces/               with a ``real_clips`` step (``avstan demo`` has one): the
                              packaged real-face model's predictions on real clips (CSV,
                              curves, HTML page each), whose table ends results.md
    report.html               all of the above in one self-contained page

Every stage is resumable: rerunning the demo skips finished recordings and runs and
resumes an interrupted training from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avstan.data.clips import ClipDataset, clip_indices
from avstan.data.store import RecordingStore
from avstan.data.synthetic import generate_corpus, preset_config
from avstan.devices import checked_device
from avstan.errors import AvstanError
from avstan.evaluation.html_report import image_html, paragraph, write_html_report
from avstan.evaluation.plots import plot_attention_rows, plot_predictions, plot_training_curves
from avstan.evaluation.postprocess import chains_from_dicts
from avstan.evaluation.reports import score_tables_html
from avstan.evaluation.scoring import Evaluation, evaluate_model
from avstan.evaluation.tables import format_results_table, write_csv_table
from avstan.experiments.calibrated_training import resolve_init_branches, train_and_calibrate
from avstan.io import write_report_file
from avstan.models.model_file import TrainedModel
from avstan.training.config import (
    ExperimentConfig,
    load_config,
    overrides_for_model,
    packaged_config,
)
from avstan.training.diagnostics import attention_gradient_report
from avstan.training.losses import get_loss

REAL_FACES_FOLDER = "real_faces"
# Order matters: av_sta starts from the trained lstm_ta and sta3d.
DEMO_MODELS = ("cnn2d", "cnn3d", "sta3d", "lstm", "lstm_ta", "av_sta")
# 16 training recordings, not the preset's 8: with 8 face identities the 3D-CNN memorises
# identity instead of learning valence (devel valence CCC < 0 while train loss falls).
DEMO_CORPUS = {"num_train": 16}


@dataclass
class DemoResult:
    output: Path
    evaluations: list[Evaluation]
    table: str


@dataclass
class DemoAddition:
    """What a final step adds to the demo's report: a markdown table (appended to
    results.md and the printed table) and HTML parts (a section of report.html)."""

    title: str
    table: str
    html: list[str]


def demo_config(model: str, output: Path, overrides: list[str]) -> ExperimentConfig:
    """The packaged demo config of ``model`` with ``overrides``; a ``model.options.<key>``
    override skips models without that option (e.g. crop_size for the audio models)."""
    config = load_config(packaged_config(f"demo_{model}"), overrides_for_model(overrides, model))
    config.output = str(output / "models" / model)
    config.data.store = str(output / "corpus")
    # Branches named by model (e.g. {audio: lstm_ta}) are this demo's own trained runs.
    resolve_init_branches(config, lambda name: output / "models" / name / "model.pt")
    return config


def run_demo(output: str | Path = "runs/demo", preset: str = "default",
             models: tuple[str, ...] = DEMO_MODELS, overrides: list[str] | None = None,
             device: str = "cpu", progress: bool = True, log=print,
             corpus: dict[str, Any] | None = None,
             final_step: Callable[[Path], DemoAddition] | None = None) -> DemoResult:
    """Generate the corpus, train ``models``, evaluate on test and write the report.

    ``overrides`` apply to every model's config (``section.key=value``); ``corpus``
    overrides fields of the synthetic preset (default: :data:`DEMO_CORPUS`).
    ``final_step(output)`` runs last and its table and pictures join the report (the CLI
    passes the packaged real-face model on real clips, ``apply.real_clips``, which this
    layer cannot import).
    """
    output = Path(output)
    checked_device(device)  # before the training, not after it
    overrides = list(overrides or [])
    configs = {m: demo_config(m, output, overrides) for m in models}
    crop = {c.model.options["crop_size"] for c in configs.values()
            if "crop_size" in c.model.options}
    if len(crop) > 1:
        raise AvstanError("the demo's video configs must all set model.options.crop_size to "
                          "one value")
    missing = sorted({Path(path).parent.name for c in configs.values()
                      for path in c.training.init_branches.values()
                      if Path(path).parent.name not in models and not Path(path).is_file()})
    if missing:
        raise AvstanError(f"av_sta starts from trained {', '.join(missing)}: add "
                          f"{' and '.join(missing)} to --models (before av_sta)")
    corpus_config = preset_config(preset, crop_size=crop.pop() if crop else 48,
                                  **(DEMO_CORPUS if corpus is None else corpus))
    log(f"[1/3] synthetic corpus ({preset}) -> {output / 'corpus'}")
    generate_corpus(output / "corpus", corpus_config, progress=progress)
    evaluations = []
    for number, (model, config) in enumerate(configs.items(), start=1):
        log(f"[2/3] training {model} ({number}/{len(configs)}) -> {config.output}")
        run = train_and_calibrate(config, progress=progress, device=device)
        log(f"      best devel CCC {run.result.best_val_ccc:.3f} after {run.result.epochs} "
            "epochs")
    store = RecordingStore.open(output / "corpus")
    test = store.load_partition("test")
    log(f"[3/3] evaluating on {len(test)} test recordings (post-processing fitted on devel)")
    for model, config in configs.items():
        trained = TrainedModel.load(Path(config.output) / "model.pt", device)
        evaluations.append(evaluate_model(trained.network, test, trained.targets,
                                          trained.clip_length, model, "test", device=device,
                                          progress=progress,
                                          chains=chains_from_dicts(trained.postprocessing)))
    addition = None
    if final_step is not None:
        log("[4/4] the packaged real-face model on real clips -> "
            f"{output / REAL_FACES_FOLDER}")
        addition = final_step(output / REAL_FACES_FOLDER)
    table = write_demo_report(output, evaluations, configs, store, addition)
    log("")
    log(table)
    return DemoResult(output, evaluations, table)


def write_demo_report(output: Path, evaluations: list[Evaluation],
                      configs: dict[str, ExperimentConfig], store: RecordingStore,
                      addition: DemoAddition | None = None) -> str:
    rows = [e.table_row("concatenated") for e in evaluations]
    processed_rows = [e.table_row("concatenated", postprocessed=True) for e in evaluations]
    table = (f"Test partition, concatenated (AVEC convention), scored on the "
             f"{evaluations[0].timeline} timeline, raw predictions. "
             "Attention in mask: 1.0 = uniform.\n\n" + format_results_table(rows)
             + "\n\nAfter the AVEC post-processing chain (median smoothing, centring, scaling; "
             "each kept only if it helps on devel; fitted on devel):\n\n"
             + format_results_table(processed_rows))
    if addition is not None:
        table += "\n\n" + addition.table
    write_report_file(output / "results.md", (table + "\n").encode())
    write_csv_table(rows, output / "results.csv")
    write_csv_table(processed_rows, output / "results_postprocessed.csv")
    write_report_file(output / "results.json",
                      json.dumps([e.to_dict() for e in evaluations], indent=1).encode())
    for index in range(min(2, len(evaluations[0].recordings))):
        name = evaluations[0].recordings[index].name
        for column, target in enumerate(evaluations[0].targets):
            first = evaluations[0].recordings[index]
            plot_predictions(first.times, first.gold[:, column],
                             {e.model: e.recordings[index].prediction[:, column]
                              for e in evaluations},
                             f"{name}: {target}", output / f"predictions_{name}_{target}.png",
                             target_name=target, missing=~first.face_found)
    write_attention_figure(output, configs, store)
    write_training_curves(output, configs)
    diagnostics = attention_diagnostics(configs, store)
    if diagnostics:
        write_report_file(output / "attention_diagnostics.json",
                          json.dumps(diagnostics, indent=1).encode())
        table += "\n\n" + format_diagnostics(diagnostics)
    write_demo_html(output, evaluations, diagnostics, addition)
    return table


def write_demo_html(output: Path, evaluations: list[Evaluation],
                    diagnostics: dict[str, dict[str, float]],
                    addition: DemoAddition | None = None) -> None:
    """report.html: the tables and every picture of the demo in one self-contained file."""
    pictures = sorted(output.glob("predictions_*.png"))
    sections = [
        ("Scores on the test partition", score_tables_html(evaluations)),
        ("Predicted vs gold over time (Figs. 3–4)",
         [image_html(p, p.stem.replace("predictions_", "")) for p in pictures]),
    ]
    if (output / "attention.png").is_file():
        sections.append(("Attention (Fig. 5)", [
            image_html(output / "attention.png", "attention × S·S over a test clip; white: "
                       "ground-truth salient mask"),
            *([paragraph(format_diagnostics(diagnostics))] if diagnostics else [])]))
    if (output / "training_curves.png").is_file():
        sections.append(("Training", [image_html(output / "training_curves.png",
                                                 "train loss and devel CCC per epoch")]))
    if addition is not None:
        sections.append((addition.title, addition.html))
    write_html_report(output / "report.html", "avstan demo: the papers' ablations on "
                      "synthetic faces and voices", sections)


def write_attention_figure(output: Path, configs: dict[str, ExperimentConfig],
                           store: RecordingStore) -> None:
    """Fig. 5: frames of one test clip with the maps of each model that has attention."""
    recording = store.load(store.names("test")[0])
    rows, frames, mask = {}, None, None
    for model, config in configs.items():
        network = TrainedModel.load(Path(config.output) / "model.pt").network
        length = network.clip_length
        end = min(recording.num_steps - 1, 4 * length - 1)
        steps = clip_indices(end, length)
        frames = recording.frames[steps]
        mask = recording.salient_mask[steps] if recording.salient_mask is not None else None
        if "clip" not in network.input_names:
            continue
        inputs = {"clip": torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(255)[None]}
        if "audio" in network.input_names:
            inputs["audio"] = torch.from_numpy(recording.audio_features[steps])[None]
        with torch.inference_mode():
            out = network(**inputs)
        if "attention" in out:
            rows[model] = out["attention"][0].numpy()
    if rows:
        plot_attention_rows(frames, rows, output / "attention.png", mask=mask,
                            title=f"attention on {recording.name} (×S·S: 1 = uniform)")


def attention_diagnostics(configs: dict[str, ExperimentConfig], store: RecordingStore,
                          clips: int = 64) -> dict[str, dict[str, float]]:
    """Gradient balance and direction of each trained attention model on devel clips."""
    devel = store.load_partition("devel")
    if not devel or any(r.salient_mask is None for r in devel):
        return {}
    results = {}
    for model, config in configs.items():
        trained = TrainedModel.load(Path(config.output) / "model.pt")
        network = trained.network
        if getattr(network, "attention_branch", None) is None or \
                trained.input_names != ("clip",):
            continue
        dataset = ClipDataset(devel, network.clip_length, stride=1, targets=trained.targets,
                              labelled_only=True, with_masks=True)
        chosen = np.linspace(0, len(dataset) - 1, min(clips, len(dataset))).astype(int)
        batch = [dataset[int(i)] for i in chosen]
        torch.manual_seed(0)
        results[model] = attention_gradient_report(
            network, torch.stack([b["clip"] for b in batch]),
            torch.stack([b["target"] for b in batch]), torch.stack([b["mask"] for b in batch]),
            get_loss(config.training.loss))
    return results


def format_diagnostics(diagnostics: dict[str, dict[str, float]]) -> str:
    lines = ["Attention gradients on devel clips (trained model): gradient norm per part, and "
             "the correlation of the descent direction on the attention logits with the "
             "salient mask (> 0: the loss pulls attention onto mouth and brows)."]
    for model, report in diagnostics.items():
        norms = ", ".join(f"{k.split('/', 1)[1]} {v:.2g}" for k, v in report.items()
                          if k.startswith("grad_norm/"))
        lines.append(f"- {model}: {norms}; descent–mask correlation "
                     f"{report['logit_descent_mask_correlation_mean']:+.3f} "
                     f"± {report['logit_descent_mask_correlation_sd']:.3f}")
    return "\n".join(lines)


def write_training_curves(output: Path, configs: dict[str, ExperimentConfig]) -> None:
    history: dict[str, list[float | None]] = {}
    for model, config in configs.items():
        for metric, values in read_epoch_metrics(Path(config.output) / "logs" / "metrics.csv",
                                                 ("train/loss_epoch", "val/ccc")).items():
            history[f"{model}/{metric}"] = values
    if history:
        plot_training_curves(history, output / "training_curves.png", title="demo training")


def read_epoch_metrics(path: Path, columns: tuple[str, ...]) -> dict[str, list[float | None]]:
    """Per-epoch values of ``columns`` from a Lightning CSV log (one row per logged step)."""
    if not path.is_file():
        return {}
    by_epoch: dict[int, dict[str, Any]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for column in columns:
                if row.get(column):
                    by_epoch.setdefault(epoch, {})[column] = float(row[column])
    epochs = sorted(by_epoch)
    return {column.replace("/", "_"): [by_epoch[e].get(column, np.nan) for e in epochs]
            for column in columns}
