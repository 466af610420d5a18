"""Reproduce a table of the papers on a prepared corpus: ``avstan reproduce``.

Each row of a table is a config under ``configs/paper/`` with the papers' settings. The
runner trains every row (resumably, one output folder per row), fits the AVEC
post-processing chain on devel (smoothing, centring, scaling; no time shift, as the
papers), scores the requested partition, and writes ``report.md``: the papers' published
numbers beside ours, row by row, with the command, the avstan version and git commit, and
the corpus that produced them.

The papers report valence on RECOLA's and AV+EC 2017's development partitions (their test
labels are not public), so the default partition is devel; the chain is then fitted and
scored on the same partition, as in the challenges' own baselines — say so when quoting.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from avstan import __version__
from avstan.data.store import PARTITIONS, RecordingStore
from avstan.errors import AvstanError
from avstan.evaluation.baseline import run_baseline
from avstan.evaluation.evaluate import evaluate_model_file
from avstan.experiments.calibrated_training import resolve_init_branches, train_and_calibrate
from avstan.io import write_report_file
from avstan.training.config import (
    ExperimentConfig,
    load_config,
    overrides_for_model,
    packaged_config,
)


@dataclass(frozen=True)
class PaperRow:
    """One row: a packaged config under configs/paper/ to train, or ``BASELINE`` for the
    AVEC 2017 audio baseline (`avstan baseline`); ``published`` is (RMSE, CC, CCC), None
    where the paper gives no value."""

    label: str
    config: str
    published: tuple[float | None, float | None, float | None]


BASELINE = "avec2017_audio_baseline"


@dataclass(frozen=True)
class PaperTable:
    title: str
    target: str
    rows: tuple[PaperRow, ...]


TABLES = {
    "icassp-table1": PaperTable(
        "Lee et al., ICASSP 2018, Table 1: components, RECOLA valence (development set)",
        "valence",
        (PaperRow("2D-CNN", "icassp_cnn2d", (0.113, 0.426, 0.326)),
         PaperRow("3D-CNN", "icassp_cnn3d", (0.104, 0.510, 0.493)),
         PaperRow("3D-CNN + STA", "icassp_sta3d", (0.102, 0.572, 0.546)))),
    "mm-table2": PaperTable(
        "Lee et al., MM 2018 workshop, Table 2: video networks, AV+EC 2017 valence "
        "(development set)",
        "valence",
        (PaperRow("2D-CNN", "mm_cnn2d", (0.110, 0.512, 0.452)),
         PaperRow("3D-CNN", "mm_cnn3d", (0.103, 0.585, 0.567)),
         PaperRow("3D-CNN + STA", "mm_sta3d", (0.099, 0.638, 0.612)))),
}
TABLES["mm-table1"] = PaperTable(
    "Lee et al., MM 2018 workshop, Table 1: audio networks, AV+EC 2017 valence "
    "(development set)",
    "valence",
    (PaperRow("LSTM-RNN", "mm_lstm", (0.122, 0.496, 0.454)),
     PaperRow("LSTM-RNN + TA", "mm_lstm_ta", (0.109, 0.621, 0.551))))
# Table 3's fusion row is not legible in the text we have (../shared/papers): shown as "—".
# Its video-only AVEC baseline (0.400) is the challenge's video geometry features, which
# avstan does not compute; the audio baseline row is run (`avstan baseline`).
TABLES["mm-table3"] = PaperTable(
    "Lee et al., MM 2018 workshop, Table 3: audio, video and audio-visual, AV+EC 2017 "
    "valence (development set)",
    "valence",
    (PaperRow("Audio: AVEC 2017 baseline (SVR on eGeMAPS)", BASELINE, (None, None, 0.351)),
     PaperRow("Audio: LSTM-RNN + TA", "mm_lstm_ta", (0.109, 0.621, 0.551)),
     PaperRow("Video: 3D-CNN + STA", "mm_sta3d", (0.099, 0.638, 0.612)),
     PaperRow("Audio-visual: LSTM-RNN + TA + 3D-CNN + STA", "mm_av_sta", (None, None, None))))


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def paper_config(name: str, overrides: list[str] | None) -> ExperimentConfig:
    """configs/paper/<name>.yaml with the overrides its model has options for."""
    path = packaged_config(f"paper/{name}")
    model = load_config(path).model.name
    return load_config(path, overrides_for_model(overrides or [], model))


def reproduce_table(table: str, store: str | Path, output: str | Path,
                    partition: str = "devel", overrides: list[str] | None = None,
                    progress: bool = True, log=print) -> Path:
    """Train, post-process and score every row of ``table``; returns the report's path."""
    if table not in TABLES:
        raise AvstanError(f"unknown table {table!r}; available: {', '.join(TABLES)}")
    # before the first row trains (minutes to hours): the partition to score must be there
    if partition not in PARTITIONS:
        raise AvstanError(f"--partition {partition!r}: use one of {', '.join(PARTITIONS)}")
    if not RecordingStore.open(store).names(partition):
        raise AvstanError(f"{store}: no complete recordings in the {partition} partition to "
                          "score; choose another --partition or prepare it")
    spec = TABLES[table]
    output = Path(output)
    results = []
    timelines: set[str] = set()
    for number, row in enumerate(spec.rows, start=1):
        if row.config == BASELINE:
            log(f"[{number}/{len(spec.rows)}] {row.label} -> {output / row.config}")
            evaluation, _ = run_baseline(store, output / row.config, partition,
                                         targets=[spec.target])
            results.append((row, evaluation.postprocessed_scores[spec.target]["concatenated"]))
            timelines.add(evaluation.timeline)
            continue
        config = paper_config(row.config, overrides)
        config.data.store = str(store)
        config.output = str(output / row.config)

        def trained_row(name: str, label: str = row.label) -> Path:
            # A branch named by config (e.g. {audio: mm_lstm_ta}) is this run's trained
            # row, trained first if the table does not list it (or not yet).
            dependency = paper_config(name, overrides)
            dependency.data.store, dependency.output = str(store), str(output / name)
            log(f"      {label} starts from {name}: training -> {dependency.output}")
            return train_and_calibrate(dependency, progress=progress).model_path

        resolve_init_branches(config, trained_row)
        log(f"[{number}/{len(spec.rows)}] {row.label}: training -> {config.output}")
        trained = train_and_calibrate(config, progress=progress)
        evaluation = evaluate_model_file(trained.model_path, store, partition, progress=progress)
        scores = evaluation.postprocessed_scores[spec.target]["concatenated"]
        results.append((row, scores))
        timelines.add(evaluation.timeline)
    command = " ".join(["avstan", *sys.argv[1:]]) if sys.argv[0].endswith("avstan") else \
        f"avstan reproduce --table {table} --corpus {store} --output {output}"
    lines = [f"# {spec.title}", "",
             f"Ours: {partition} partition of `{store}`, {spec.target}, all recordings "
             "concatenated, after the AVEC chain (median smoothing, centring, scaling; no time "
             f"shift) fitted on devel, scored on the {'; '.join(sorted(timelines))} timeline. "
             "Papers: as published.", "",
             "| Row | Paper RMSE | Paper CC | Paper CCC | Ours RMSE | Ours CC | Ours CCC |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row, scores in results:
        paper = " | ".join("—" if v is None else f"{v:.3f}" for v in row.published)
        ours = " | ".join(f"{scores[m]:.3f}" for m in ("rmse", "cc", "ccc"))
        lines.append(f"| {row.label} | {paper} | {ours} |")
    lines += ["", f"Command: `{command}`", "",
              f"avstan {__version__}, commit {git_commit()}, {date.today().isoformat()}.",
              "Configs: " + ", ".join(f"`configs/paper/{r.config}.yaml`" for r, _ in results
                                      if r.config != BASELINE)
              + "; training runs under " + f"`{output}`."]
    report = write_report_file(output / "report.md", ("\n".join(lines) + "\n").encode())
    log("\n".join(lines[4:4 + 2 + len(results)]))
    return report
