"""The controlled attention study (issue 7): does sta3d's attention learn, and does it help?

Every setting of a study file (``benchmarks/attention_study.yaml``) is trained on every
corpus with every seed, for the same number of epochs, and scored on the test partition:
CCC of valence and arousal (all test recordings concatenated, the AVEC convention, raw
predictions of the checkpoint with the best devel CCC) and the attention-in-mask ratio
(1.0 = uniform). The settings include the two bounds: ``cnn3d`` (no attention, which is
exactly uniform attention: the trunk rescales maps by S·S) and the trunk with the
ground-truth salient mask as fixed attention (``cnn3d`` with ``fixed_attention: mask``).

    nice -n 10 .venv/bin/python benchmarks/attention_study.py --pictures docs/attention
    .venv/bin/python benchmarks/attention_study.py --settings cnn3d mask --corpora cluttered
    .venv/bin/python benchmarks/attention_study.py --set experiment.training.max_epochs=2

The first line is the full study: every setting not marked ``optional`` (81 runs, about
2 h 15 min on 2 idle CPU cores; docs/attention.md has its results and those of the optional
settings).
Besides the scores, each row records why the attention does what it does: the gradient
balance and direction on devel clips, and how far the maps are from uniform and what they
carry (``attention_stats``).

One command, resumable: each finished run appends one JSON line to
``<output>/results.jsonl`` and is skipped when the study is run again; an interrupted
training resumes from its last checkpoint. After every run the tables of finished runs are
rewritten (``<output>/summary.md``, mean ± sd over seeds: the scores, and what the maps
carry: CCC with each clip's own maps, another clip's and uniform ones), and at the end one
attention figure per corpus (the paper's Fig. 5: a row per setting, seed 0, a test clip) is
written to ``--pictures`` (default ``<output>/pictures``).

Run it on a shared CPU machine as ``nice -n 10`` with one torch thread (the study file
sets ``threads: 1``).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from avstan.data.clips import ClipDataset, clip_indices
from avstan.data.store import RecordingStore
from avstan.data.synthetic import SyntheticConfig, generate_corpus
from avstan.errors import AvstanError
from avstan.evaluation.plots import plot_attention_rows
from avstan.evaluation.scoring import evaluate_model
from avstan.io import atomic_write_bytes
from avstan.models.model_file import TrainedModel
from avstan.training.config import apply_overrides, config_from_dict
from avstan.training.diagnostics import attention_gradient_report
from avstan.training.fit import train_experiment
from avstan.training.losses import get_loss

DEFAULT_STUDY = Path(__file__).with_suffix(".yaml")  # benchmarks/attention_study.yaml
RESULTS_NAME = "results.jsonl"
STUDY_KEYS = {"corpus", "corpora", "experiment", "seeds", "settings"}
SETTING_KEYS = {"model", "options", "data", "training", "about", "optional"}


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a study file and apply ``key.path=value`` overrides; checks its keys."""
    path = Path(path)
    if not path.is_file():
        raise AvstanError(f"{path}: study file not found")
    study = apply_overrides(yaml.safe_load(path.read_text()) or {}, list(overrides))
    unknown = sorted(set(study) - STUDY_KEYS)
    missing = sorted(STUDY_KEYS - set(study) - {"corpus"})
    if unknown or missing:
        raise AvstanError(f"{path}: unknown keys {unknown} / missing keys {missing}; a study "
                          f"has {', '.join(sorted(STUDY_KEYS))}")
    for name, setting in study["settings"].items():
        bad = sorted(set(setting) - SETTING_KEYS)
        if bad or "model" not in setting:
            raise AvstanError(f"{path}: setting {name!r} needs 'model' and may have "
                              f"{', '.join(sorted(SETTING_KEYS))}; got {sorted(setting)}")
    return study


def corpus_config(study: dict[str, Any], name: str) -> SyntheticConfig:
    """The synthetic corpus ``name``: its preset and overrides, then the shared sizes."""
    fields = {**dict(study["corpora"][name]), **dict(study.get("corpus") or {})}
    fields.setdefault("name", name)
    return SyntheticConfig.from_dict(fields)


def experiment_config(study: dict[str, Any], setting: str, corpus_root: Path, seed: int,
                      output: Path):
    """The ExperimentConfig of one run: the shared experiment plus the setting's lines."""
    spec = study["settings"][setting]
    raw = copy.deepcopy(study["experiment"])
    raw["name"] = f"study-{setting}-seed{seed}"
    raw["output"] = str(output)
    model = raw.setdefault("model", {})
    model["name"] = spec["model"]
    model["options"] = {**model.get("options", {}), **spec.get("options", {})}
    data = raw.setdefault("data", {})
    for key, value in spec.get("data", {}).items():  # e.g. augment: {shift: 0.15}
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    data["store"] = str(corpus_root)
    training = raw.setdefault("training", {})
    training.update(spec.get("training", {}))
    training["seed"] = seed
    return config_from_dict(raw, f"study setting {setting!r}")


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_key(corpus: str, setting: str, seed: int) -> str:
    return f"{corpus}/{setting}/seed{seed}"


def devel_curve(run_output: Path) -> list[float]:
    """The devel in-mask ratio after each epoch, from the run's CSV log."""
    from avstan.experiments.demo import read_epoch_metrics

    values = read_epoch_metrics(run_output / "logs" / "metrics.csv",
                                ("val/attention_in_mask",)).get("val_attention_in_mask", [])
    return [round(float(v), 4) for v in values]


def gradient_report(network: torch.nn.Module, devel: list, targets: Sequence[str],
                    loss: str, clips: int = 32) -> dict[str, float]:
    """Gradient balance and direction on devel clips, for models with an attention branch."""
    if getattr(network, "attention_branch", None) is None:
        return {}
    dataset = ClipDataset(devel, network.clip_length, stride=1, targets=targets,
                          labelled_only=True, with_masks=True)
    chosen = np.linspace(0, len(dataset) - 1, min(clips, len(dataset))).astype(int)
    batch = [dataset[int(i)] for i in chosen]
    torch.manual_seed(0)
    report = attention_gradient_report(
        network, torch.stack([b["clip"] for b in batch]),
        torch.stack([b["target"] for b in batch]), torch.stack([b["mask"] for b in batch]),
        get_loss(loss))
    return {k: round(v, 6) for k, v in report.items()}


@torch.inference_mode()
def attention_stats(network: torch.nn.Module, recordings: list, targets: Sequence[str],
                    clips: int = 192) -> dict[str, float]:
    """How far from uniform a model's maps are, and how much of that is on the mask.

    On ``clips`` test clips spread evenly over the recordings, with G = S·S·A (1 = uniform):
    ``spread`` the mean per-frame standard deviation of G (0 for uniform maps), ``peak``
    the mean per-frame maximum of G, ``mask_correlation`` the mean per-frame Pearson
    correlation of G with the salient mask, and ``last_frame_in_mask`` the in-mask ratio of
    the clips' last frames only (the frame whose label is predicted; with H_{t-1} the first
    frame's map is uniform by construction). Empty for models without attention.

    What the maps carry, as the mean CCC over targets on these clips: ``ccc_own_maps`` with
    each clip's own maps, ``ccc_swapped_maps`` with the maps of a clip from elsewhere in the
    test set (a different face position and expression), ``ccc_uniform_maps`` with uniform
    maps (the trunk alone). Own ≫ swapped means the trunk relies on clip-specific maps.
    """
    from avstan.metrics import attention_in_mask_ratio, concordance_cc
    from avstan.training.diagnostics import mask_correlation

    dataset = ClipDataset(recordings, network.clip_length, stride=1, targets=targets,
                          with_masks=True)
    chosen = np.linspace(0, len(dataset) - 1, min(clips, len(dataset))).astype(int)
    batch = [dataset[int(i)] for i in chosen]
    inputs = {"clip": torch.stack([b["clip"] for b in batch]),
              "mask": torch.stack([b["mask"] for b in batch])}
    out = network.eval()(**{k: inputs[k] for k in network.input_names})
    if "attention" not in out:
        return {}
    attention, mask = out["attention"].float(), inputs["mask"]
    gain = attention * attention.shape[-1] * attention.shape[-2]
    last = attention_in_mask_ratio(attention[:, -1].numpy(), mask[:, -1].numpy())
    gold = torch.stack([b["target"] for b in batch]).numpy()

    def mean_ccc(maps: torch.Tensor) -> float:
        prediction = network(clip=inputs["clip"], attention=maps)["prediction"].numpy()
        return round(float(np.mean([concordance_cc(prediction[:, k], gold[:, k])
                                    for k in range(gold.shape[1])])), 4)

    return {"spread": round(float(gain.flatten(-2).std(-1).mean()), 4),
            "peak": round(float(gain.flatten(-2).amax(-1).mean()), 4),
            "mask_correlation": round(float(np.nanmean(mask_correlation(gain, mask))), 4),
            "last_frame_in_mask": round(float(last), 4),
            "ccc_own_maps": mean_ccc(attention),
            "ccc_swapped_maps": mean_ccc(attention.roll(len(attention) // 2, dims=0)),
            "ccc_uniform_maps": mean_ccc(torch.full_like(attention, 1.0 / gain[0, 0].numel()))}


def run_one(study: dict[str, Any], corpus: str, setting: str, seed: int, output: Path,
            progress: bool) -> dict[str, Any]:
    """Train one (corpus, setting, seed), score it on test, return its result row."""
    corpus_root = output / "corpora" / corpus
    run_output = output / "runs" / corpus / setting / f"seed{seed}"
    config = experiment_config(study, setting, corpus_root, seed, run_output)
    start = time.perf_counter()
    trained = train_experiment(config, progress=progress)
    train_seconds = time.perf_counter() - start
    store = RecordingStore.open(corpus_root)
    model_file = TrainedModel.load(trained.model_path)
    network, targets = model_file.network, model_file.targets
    test = store.load_partition("test")
    start = time.perf_counter()
    evaluation = evaluate_model(network, test, targets, network.clip_length, setting, "test")
    row = {
        "key": run_key(corpus, setting, seed), "corpus": corpus, "setting": setting,
        "seed": seed, "epochs": trained.epochs, "best_val_ccc": round(trained.best_val_ccc, 4),
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(time.perf_counter() - start, 1),
        "attention_in_mask": evaluation.attention_in_mask,
        "devel_attention_in_mask_by_epoch": devel_curve(run_output),
    }
    for target in targets:
        concatenated = evaluation.scores[target]["concatenated"]
        row[f"ccc_{target}"] = round(concatenated["ccc"], 4)
        row[f"rmse_{target}"] = round(concatenated["rmse"], 4)
    row["gradients"] = gradient_report(network, store.load_partition("devel"), targets,
                                       config.training.loss)
    row["attention_stats"] = attention_stats(network, test, targets)
    return row


def backfill_attention_stats(rows: list[dict[str, Any]], output: Path) -> bool:
    """Add or complete ``attention_stats`` of rows written by an earlier version of this
    runner (from their saved models); True if any row changed."""
    changed = False
    for row in rows:
        stats = row.get("attention_stats")
        if stats is not None and (not stats or "ccc_swapped_maps" in stats):
            continue
        corpus, setting, seed = row["corpus"], row["setting"], row["seed"]
        model_path = output / "runs" / corpus / setting / f"seed{seed}" / "model.pt"
        model_file = TrainedModel.load(model_path)
        test = RecordingStore.open(output / "corpora" / corpus).load_partition("test")
        row["attention_stats"] = attention_stats(model_file.network, test, model_file.targets)
        changed = True
    return changed


def mean_sd(values: Sequence[float | None]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan, 0
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return float(np.mean(values)), sd, len(values)


def _cell(values: Sequence[float | None], decimals: int = 3) -> str:
    mean, sd, count = mean_sd(values)
    if count == 0:
        return "—"
    if count == 1:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def summary_table(rows: list[dict[str, Any]], study: dict[str, Any]) -> str:
    """Markdown: per corpus, a line per setting with mean ± sd (sample sd) over seeds."""
    lines = []
    for corpus in study["corpora"]:
        header = [f"**{corpus}** corpus (test partition, concatenated, raw; mean ± sd over "
                  "seeds)", "",
                  "| setting | seeds | CCC valence | CCC arousal | CCC mean | in-mask ratio "
                  "| map spread | devel CCC | min / run |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        table_started = False
        for setting in study["settings"]:
            done = [r for r in rows if r["corpus"] == corpus and r["setting"] == setting]
            if not done:
                continue
            if not table_started:
                lines += header
                table_started = True
            means = [(r["ccc_valence"] + r["ccc_arousal"]) / 2 for r in done
                     if "ccc_valence" in r and "ccc_arousal" in r]
            minutes = [(r["train_seconds"] + r["eval_seconds"]) / 60 for r in done]
            lines.append(
                f"| {setting} | {len(done)} | {_cell([r.get('ccc_valence') for r in done])} "
                f"| {_cell([r.get('ccc_arousal') for r in done])} | {_cell(means)} "
                f"| {_cell([r['attention_in_mask'] for r in done], 2)} "
                f"| {_cell([r.get('attention_stats', {}).get('spread') for r in done], 2)} "
                f"| {_cell([r['best_val_ccc'] for r in done])} "
                f"| {np.mean(minutes):.1f} |")
        if table_started:
            lines.append("")
    return "\n".join(lines)


MAPS_COLUMNS = (("ccc_own_maps", "own maps"), ("ccc_swapped_maps", "swapped maps"),
                ("ccc_uniform_maps", "uniform maps"), ("mask_correlation", "map–mask correlation"))


def maps_table(rows: list[dict[str, Any]], study: dict[str, Any]) -> str:
    """Markdown: what the maps carry (``attention_stats``), mean ± sd over seeds, for every
    setting with attention maps: the mean test CCC with each clip's own maps, with another
    clip's maps and with uniform maps. Own ≫ swapped: the maps follow the clip."""
    lines = ["What the maps carry (mean CCC over targets on 192 test clips; mean ± sd over "
             "seeds)", "",
             "| corpus | setting | " + " | ".join(name for _, name in MAPS_COLUMNS) + " |",
             "|---|---|" + "---:|" * len(MAPS_COLUMNS)]
    count = 0
    for corpus in study["corpora"]:
        for setting in study["settings"]:
            stats = [r.get("attention_stats") or {} for r in rows
                     if r["corpus"] == corpus and r["setting"] == setting]
            stats = [s for s in stats if s]
            if not stats:
                continue
            cells = [_cell([s.get(key) for s in stats], 2) for key, _ in MAPS_COLUMNS]
            lines.append(f"| {corpus} | {setting} | " + " | ".join(cells) + " |")
            count += 1
    return "\n".join(lines) + "\n" if count else ""


def write_summary(rows: list[dict[str, Any]], study: dict[str, Any], output: Path) -> None:
    """``<output>/summary.md``: the score tables and the maps table, written atomically."""
    text = summary_table(rows, study) + "\n" + maps_table(rows, study)
    atomic_write_bytes(output / "summary.md", text.encode())


def attention_figure(study: dict[str, Any], corpus: str, output: Path, path: Path,
                     seed: int, columns: int = 8) -> Path | None:
    """Fig. 5 for one corpus: a test clip's frames and each setting's maps (seed ``seed``)."""
    store = RecordingStore.open(output / "corpora" / corpus)
    recording = store.load(store.names("test")[0])
    rows, frames, mask = {}, None, None
    for setting in study["settings"]:
        model_path = output / "runs" / corpus / setting / f"seed{seed}" / "model.pt"
        if not model_path.is_file():
            continue
        network = TrainedModel.load(model_path).network
        length = network.clip_length
        end = min(recording.num_steps - 1, 4 * length - 1)
        steps = clip_indices(end, length)
        frames = recording.frames[steps]
        mask = recording.salient_mask[steps]
        inputs = {"clip": torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(255)[None],
                  "mask": torch.from_numpy(mask)[None]}
        with torch.inference_mode():
            out = network.eval()(**{k: inputs[k] for k in network.input_names})
        if "attention" in out:
            rows[setting] = out["attention"][0].numpy()
    if not rows:
        return None
    figure = plot_attention_rows(frames, rows, path, mask=mask, max_columns=columns,
                                 title=f"{corpus}, seed {seed} (white: salient mask)")
    _shrink_png(figure, path)
    return path


def _shrink_png(figure: Any, path: Path) -> None:
    """Re-save the figure as a 256-colour PNG: the docs keep the pictures small."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def plan_runs(study: dict[str, Any], settings: Sequence[str] | None = None,
              corpora: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """(corpus, setting, seed) of every run, in the study file's order of settings.

    ``settings`` defaults to every setting not marked ``optional`` in the study file (the
    optional ones are the levers the time budget did not cover; name them to run them).
    """
    settings = list(settings or [name for name, spec in study["settings"].items()
                                 if not spec.get("optional", False)])
    corpora = list(corpora or study["corpora"])
    for name, known in (("setting", study["settings"]), ("corpus", study["corpora"])):
        chosen = settings if name == "setting" else corpora
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise AvstanError(f"unknown {name} {unknown}; the study has {', '.join(known)}")
    return [(corpus, setting, seed) for setting in settings for corpus in corpora
            for seed in study["seeds"]]


def run_study(study: dict[str, Any], output: Path, settings: Sequence[str] | None = None,
              corpora: Sequence[str] | None = None, pictures: Path | None = None,
              progress: bool = False, log=print, picture_seeds: Sequence[int] = ()
              ) -> list[dict[str, Any]]:
    """Run every planned (setting, corpus, seed) not yet in ``results.jsonl`` (see
    :func:`plan_runs`); returns the rows of all finished runs. The figures show the first
    seed (``<corpus>.png``) and each of ``picture_seeds`` (``<corpus>_seed<n>.png``)."""
    plan = plan_runs(study, settings, corpora)
    corpora = list(dict.fromkeys(corpus for corpus, _, _ in plan))
    output.mkdir(parents=True, exist_ok=True)
    results_path = output / RESULTS_NAME
    rows = read_results(results_path)
    if backfill_attention_stats(rows, output):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        temporary = results_path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(results_path)
    finished = {r["key"] for r in rows}
    todo = [p for p in plan if run_key(*p) not in finished]
    log(f"attention study: {len(plan)} runs, {len(plan) - len(todo)} finished, "
        f"{len(todo)} to do -> {output}")
    for corpus in corpora:
        generate_corpus(output / "corpora" / corpus, corpus_config(study, corpus),
                        progress=progress)
    study_start = time.perf_counter()
    for number, (corpus, setting, seed) in enumerate(todo, start=1):
        log(f"[{number}/{len(todo)}] {run_key(corpus, setting, seed)} ...")
        row = run_one(study, corpus, setting, seed, output, progress)
        with results_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        rows.append(row)
        ratio = row["attention_in_mask"]
        elapsed = (time.perf_counter() - study_start) / 60
        log(f"    CCC valence {row.get('ccc_valence', math.nan):.3f}, arousal "
            f"{row.get('ccc_arousal', math.nan):.3f}, in-mask "
            f"{'—' if ratio is None else f'{ratio:.2f}'}; {row['train_seconds']:.0f} s "
            f"training, {elapsed:.1f} min so far")
        write_summary(rows, study, output)
    write_summary(rows, study, output)
    pictures = pictures or output / "pictures"
    pictures.mkdir(parents=True, exist_ok=True)
    first = min(study["seeds"])
    for corpus in corpora:
        for seed in dict.fromkeys([first, *picture_seeds]):
            name = f"{corpus}.png" if seed == first else f"{corpus}_seed{seed}.png"
            written = attention_figure(study, corpus, output, pictures / name, seed=seed)
            if written:
                log(f"attention pictures: {written}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(DEFAULT_STUDY), help="study YAML file")
    parser.add_argument("--output", default="runs/attention_study", help="output folder")
    parser.add_argument("--settings", nargs="*",
                        help="only these settings (default: all not marked optional)")
    parser.add_argument("--corpora", nargs="*", help="only these corpora (default: all)")
    parser.add_argument("--pictures", help="folder for the attention figures "
                                           "(default: <output>/pictures)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a study key, e.g. "
                        "experiment.training.max_epochs=2 (repeatable)")
    parser.add_argument("--picture-seeds", type=int, nargs="*", default=[],
                        help="also draw the figures for these seeds (default: the first only)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    try:
        study = load_study(args.study, args.overrides)
        rows = run_study(study, Path(args.output), args.settings, args.corpora,
                         Path(args.pictures) if args.pictures else None, args.progress,
                         picture_seeds=args.picture_seeds)
    except AvstanError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print()
    print(summary_table(rows, study))
    print(maps_table(rows, study))
    return 0


if __name__ == "__main__":
    import logging
    import warnings

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    sys.exit(main())

