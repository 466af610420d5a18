"""Result tables: markdown in the layout of Table 1 of the ICASSP paper, and CSV.

The markdown table has one line per model and the columns::

    Model | Valence RMSE | Valence CC | Valence CCC | Arousal RMSE | ... | Attention in mask

with numbers to 3 decimals and "—" where a value is missing (a model without attention, a
target not predicted). The CSV holds the same rows at full precision, empty where missing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avstan.io import write_report_file
from avstan.metrics import METRIC_NAMES

MISSING = "—"
METRICS = METRIC_NAMES  # ("rmse", "cc", "ccc"), the column order within a target
_METRIC_HEADERS = {"rmse": "RMSE", "cc": "CC", "ccc": "CCC"}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _format_cell(value: Any, decimals: int) -> str:
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) or hasattr(value, "dtype"):  # numpy scalars too
        return f"{float(value):.{decimals}f}"
    return str(value).replace("|", r"\|")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return hasattr(value, "dtype") and value.dtype.kind in ("i", "u", "f")  # numpy scalars


def format_markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    headers: Sequence[str] | None = None,
    decimals: int = 3,
) -> str:
    """Render rows as a markdown (pipe) table.

    Args:
        rows: one mapping per table line; a key absent from a row is shown as "—".
        columns: the keys to show, in order; default: the keys in first-seen order.
        headers: the header text of each column; default: the keys themselves.
        decimals: digits after the point for float values.

    Returns:
        The table: header line, separator line (numeric columns right-aligned), one line
        per row, ending with a newline.
    """
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    if headers is None:
        headers = list(columns)
    if len(headers) != len(columns):
        raise ValueError(f"{len(headers)} headers for {len(columns)} columns")

    cells = [[_format_cell(row.get(key), decimals) for key in columns] for row in rows]
    numeric = [
        any(_is_number(row.get(key)) for row in rows)
        and all(_is_number(row.get(key)) or _is_missing(row.get(key)) for row in rows)
        for key in columns
    ]
    widths = [
        max(3, len(header), *(len(line[index]) for line in cells))
        for index, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join(
        ("-" * (width + 1) + ":") if right else ("-" * (width + 2))
        for width, right in zip(widths, numeric, strict=True)
    ) + "|"
    return "\n".join([line(headers), separator, *(line(values) for values in cells)]) + "\n"


def _flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """``{"valence": {"ccc": x}}`` -> ``{"valence_ccc": x}``; flat keys stay as they are."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in _flatten(value).items():
                flat[f"{key}_{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def write_csv_table(
    rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None
) -> Path:
    """Write rows as CSV (header = the keys), atomically.

    Nested mappings are flattened with ``_`` (a result dict's ``{"valence": {"ccc": x}}``
    becomes the column ``valence_ccc``), so both result dicts (see
    :func:`format_results_table`) and flat rows can be written. Floats are written at full
    precision (``repr``), so they read back exactly; missing values (None, NaN, absent
    keys) are empty cells.

    Args:
        rows: one mapping per CSV line.
        path: the CSV file; its folder is created if needed.
        columns: the (flattened) keys to write, in order; default: all keys, first-seen order.

    Returns:
        ``path`` as a Path.

    Raises:
        AvstanError: naming ``path`` if it cannot be written.
    """
    flat_rows = [_flatten(row) for row in rows]
    if columns is None:
        columns = list(dict.fromkeys(key for row in flat_rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in flat_rows:
        writer.writerow(["" if _is_missing(row.get(key)) else _csv_value(row.get(key))
                         for key in columns])
    return write_report_file(path, buffer.getvalue().encode("utf-8"))


def _csv_value(value: Any) -> str:
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    return repr(value) if isinstance(value, float) else str(value)


def row_targets(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The targets scored in ``results`` (keys whose value is a score dict), first-seen order.

    The valence-only tables of the paper thus get valence columns only.
    """
    return list(dict.fromkeys(
        key for result in results for key, value in result.items() if isinstance(value, Mapping)
    ))


def flatten_row(result: Mapping[str, Any], targets: Sequence[str]) -> dict[str, Any]:
    """One result dict as a flat table row.

    Args:
        result: e.g. ``{"model": "sta3d", "valence": {"rmse": .., "cc": .., "ccc": ..},
            "arousal": {...}, "attention_in_mask": 1.7 or None}``.
        targets: the targets to give columns, e.g. from :func:`row_targets`.

    Returns:
        ``{"model", "<target>_<metric>" for each target and metric of METRICS,
        "attention_in_mask"}``; a missing target, metric or NaN becomes None.
    """
    row: dict[str, Any] = {"model": result.get("model", "")}
    for target in targets:
        scores = result.get(target) or {}
        for metric in METRICS:
            value = scores.get(metric)
            row[f"{target}_{metric}"] = None if _is_missing(value) else float(value)
    ratio = result.get("attention_in_mask")
    row["attention_in_mask"] = None if _is_missing(ratio) else float(ratio)
    return row


def format_results_table(
    results: Sequence[Mapping[str, Any]], targets: Sequence[str] | None = None
) -> str:
    """The markdown results table in the layout of Table 1 of the ICASSP paper.

    Columns ``Model | Valence RMSE | Valence CC | Valence CCC | Arousal RMSE | ... |
    Attention in mask``, 3 decimals, "—" where missing.

    Args:
        results: one dict per model, as taken by :func:`flatten_row`.
        targets: the targets to show; default: those present (:func:`row_targets`).
    """
    if targets is None:
        targets = row_targets(results)
    keys = ["model"] + [f"{t}_{m}" for t in targets for m in METRICS] + ["attention_in_mask"]
    headers = (["Model"] + [f"{t.capitalize()} {_METRIC_HEADERS[m]}" for t in targets
                            for m in METRICS] + ["Attention in mask"])
    rows = [flatten_row(result, targets) for result in results]
    return format_markdown_table(rows, keys, headers)
