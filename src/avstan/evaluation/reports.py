"""What an evaluation writes: metrics.json / .md, per-step CSVs, plots, report.html."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avstan.evaluation.html_report import (
    image_html,
    paragraph,
    results_table_html,
    write_html_report,
)
from avstan.evaluation.plots import plot_predictions
from avstan.evaluation.postprocess import describe_notes
from avstan.evaluation.scoring import Evaluation
from avstan.evaluation.tables import format_results_table
from avstan.evaluation.timeline import on_gold_timeline, scored_series
from avstan.io import write_report_file


def predictions_csv(evaluation: Evaluation) -> bytes:
    """Per-step predictions next to gold: recording, time, face_found, pred_*, gold_*."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    processed = evaluation.postprocessed
    writer.writerow(["recording", "time", "face_found",
                     *[f"pred_{t}" for t in evaluation.targets],
                     *([f"postprocessed_{t}" for t in evaluation.targets] if processed else []),
                     *[f"gold_{t}" for t in evaluation.targets]])
    for number, rec in enumerate(evaluation.recordings):
        for i in range(len(rec.times)):
            writer.writerow([rec.name, f"{rec.times[i]:.3f}", int(rec.face_found[i]),
                             *[f"{v:.5f}" for v in rec.prediction[i]],
                             *([f"{v:.5f}" for v in processed[number][i]] if processed else []),
                             *["" if np.isnan(v) else f"{v:.5f}" for v in rec.gold[i]]])
    return buffer.getvalue().encode()


def gold_timeline_csv(evaluation: Evaluation) -> bytes:
    """What was scored on the gold timeline, one row per gold time: recording, time,
    pred_* (and postprocessed_*) interpolated there, gold_*."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    processed = evaluation.postprocessed
    writer.writerow(["recording", "time", *[f"pred_{t}" for t in evaluation.targets],
                     *([f"postprocessed_{t}" for t in evaluation.targets] if processed else []),
                     *[f"gold_{t}" for t in evaluation.targets]])
    raw, golds = scored_series(evaluation.recordings,
                               [r.prediction for r in evaluation.recordings])
    after = scored_series(evaluation.recordings, processed)[0] if processed else None
    for number, rec in enumerate(evaluation.recordings):
        for i, time in enumerate(rec.gold_times):
            writer.writerow([rec.name, f"{time:.3f}", *[f"{v:.5f}" for v in raw[number][i]],
                             *([f"{v:.5f}" for v in after[number][i]] if after else []),
                             *["" if np.isnan(v) else f"{v:.5f}" for v in golds[number][i]]])
    return buffer.getvalue().encode()


def metrics_markdown(evaluation: Evaluation) -> str:
    """Raw (and post-processed) tables, concatenated and per-recording mean."""
    variants = [(False, "raw")]
    if evaluation.postprocessed_scores is not None:
        variants.append((True, "post-processed (chain fitted on devel)"))
    table = "\n\n".join(
        f"**{label}, {kind}** ({evaluation.partition}, timeline: {evaluation.timeline})\n\n"
        + format_results_table([evaluation.table_row(convention, processed)])
        for processed, kind in variants
        for label, convention in (("Concatenated (AVEC)", "concatenated"),
                                  ("Mean over recordings", "per_recording_mean")))
    notes = describe_notes(evaluation.postprocessing)
    if notes is not None:
        table += f"\n\n**Warning, post-processing**: {notes}"
    for note in evaluation.notes:
        table += f"\n\n**Note**: {note}"
    return table


def score_tables_html(evaluations: Sequence[Evaluation]) -> list[str]:
    """HTML tables: raw and post-processed, concatenated and per-recording mean."""
    fragments = []
    variants = [(False, "raw")]
    if all(e.postprocessed_scores is not None for e in evaluations):
        variants.append((True, "after the AVEC post-processing chain fitted on devel"))
    timeline = " / ".join(dict.fromkeys(e.timeline for e in evaluations))
    for processed, kind in variants:
        for label, convention in (("concatenated recordings (AVEC)", "concatenated"),
                                  ("mean over recordings", "per_recording_mean")):
            fragments.append(results_table_html(
                [e.table_row(convention, processed) for e in evaluations],
                f"{evaluations[0].partition} partition, {label}, {kind}, timeline: {timeline}"))
    return fragments


def chain_html(evaluation: Evaluation) -> list[str]:
    if not evaluation.postprocessing:
        return [paragraph("No post-processing.")]
    return [paragraph(
        f"{target}: median window {c.median_window} steps, centring {c.centre_offset:+.3f}, "
        f"scaling ×{c.scale_factor:.3f}, time shift {c.shift_steps} steps; devel CCC "
        f"{c.devel_ccc_raw:.3f} → {c.devel_ccc:.3f}"
        + "".join(f". Warning: {note}" for note in c.notes))
        for target, c in evaluation.postprocessing.items()]


def write_evaluation(evaluation: Evaluation, output: Path) -> None:
    """metrics.json, metrics.md, predictions.csv (per step), plots/<recording>_<target>.png
    and a self-contained report.html under ``output``; when scored on the gold timeline also
    predictions_gold_timeline.csv (exactly the pairs that were scored)."""
    write_report_file(output / "metrics.json", json.dumps(evaluation.to_dict(), indent=1).encode())
    write_report_file(output / "metrics.md", (metrics_markdown(evaluation) + "\n").encode())
    write_report_file(output / "predictions.csv", predictions_csv(evaluation))
    if on_gold_timeline(evaluation.recordings):
        write_report_file(output / "predictions_gold_timeline.csv",
                          gold_timeline_csv(evaluation))
    for number, rec in enumerate(evaluation.recordings):
        for column, target in enumerate(evaluation.targets):
            lines = {evaluation.model: rec.prediction[:, column]}
            if evaluation.postprocessed is not None:
                lines[f"{evaluation.model}, post-processed"] = \
                    evaluation.postprocessed[number][:, column]
            plot_predictions(rec.times, rec.gold[:, column], lines, f"{rec.name} — {target}",
                             output / "plots" / f"{rec.name}_{target}.png",
                             target_name=target, missing=~rec.face_found)
    plots = [image_html(output / "plots" / f"{rec.name}_{target}.png",
                        f"{rec.name}: predicted and gold {target} (grey: no face)")
             for rec in evaluation.recordings for target in evaluation.targets]
    write_html_report(output / "report.html", f"avstan evaluation: {evaluation.model}",
                      [("Scores", score_tables_html([evaluation])
                        + [paragraph(f"Note: {note}") for note in evaluation.notes]),
                       ("Post-processing", chain_html(evaluation)),
                       ("Predictions over time", plots)])
