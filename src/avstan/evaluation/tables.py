"""Result tables in the layout of the ICASSP paper's Table 1, as markdown and CSV.

A result row is ``{"model": name, "<target>": {"rmse", "cc", "ccc"}, ...,
"attention_in_mask": ratio or None}``; targets are the keys that hold a score dict.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avstan.evaluation._files import write_report_file

METRICS = ("rmse", "cc", "ccc")
MISSING = "—"


def row_targets(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Targets present in any row, in first-seen order (valence before arousal as given)."""
    seen: list[str] = []
    for row in rows:
        for key, value in row.items():
            if isinstance(value, dict) and key not in seen:
                seen.append(key)
    return seen


def flatten_row(row: dict[str, Any], targets: Sequence[str]) -> dict[str, Any]:
    """``{"model", "valence_rmse", ..., "attention_in_mask"}`` with None where missing."""
    flat: dict[str, Any] = {"model": row.get("model", "")}
    for target in targets:
        scores = row.get(target) or {}
        for metric in METRICS:
            flat[f"{target}_{metric}"] = scores.get(metric)
    flat["attention_in_mask"] = row.get("attention_in_mask")
    return flat


def _format(value: Any) -> str:
    return MISSING if value is None else f"{value:.3f}"


def format_results_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: Model | <target> RMSE CC CCC ... | Attention in mask."""
    targets = row_targets(rows)
    header = ["Model", *[f"{t.capitalize()} {m.upper()}" for t in targets for m in METRICS],
              "Attention in mask"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        flat = flatten_row(row, targets)
        cells = [str(flat["model"])] + [_format(flat[f"{t}_{m}"]) for t in targets
                                        for m in METRICS] + [_format(flat["attention_in_mask"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv_table(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """The rows as CSV, one column per target and metric; empty cells where missing."""
    targets = row_targets(rows)
    flats = [flatten_row(row, targets) for row in rows]
    buffer = io.StringIO()
    columns = list(flats[0]) if flats else ["model"]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for flat in flats:
        writer.writerow({k: "" if v is None else v for k, v in flat.items()})
    return write_report_file(path, buffer.getvalue().encode())
