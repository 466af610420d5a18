"""Result tables: markdown layout and CSV round trip."""

import csv
import math

import numpy as np
import pytest

from avstan.errors import AvstanError
from avstan.evaluation.tables import (
    flatten_row,
    format_markdown_table,
    format_results_table,
    row_targets,
    write_csv_table,
)

ROWS = [
    {"model": "cnn3d", "valence": {"rmse": 0.1, "cc": 0.5, "ccc": 0.49},
     "arousal": {"rmse": 0.2, "cc": 0.6, "ccc": 0.55}, "attention_in_mask": None},
    {"model": "sta3d", "valence": {"rmse": 0.09, "cc": 0.57, "ccc": 0.5461},
     "arousal": {"rmse": 0.19, "cc": 0.62, "ccc": float("nan")}, "attention_in_mask": 2.345},
]


def cells(line):
    assert line.startswith("|") and line.endswith("|")
    return [cell.strip() for cell in line[1:-1].split("|")]


def test_markdown_layout():
    lines = format_results_table(ROWS).splitlines()
    assert len(lines) == 4  # header, separator, one line per model
    assert cells(lines[0]) == ["Model", "Valence RMSE", "Valence CC", "Valence CCC",
                               "Arousal RMSE", "Arousal CC", "Arousal CCC", "Attention in mask"]
    separator = cells(lines[1])
    assert all(set(cell) <= set("-:") and "-" in cell for cell in separator)
    assert not separator[0].endswith(":") and separator[1].endswith(":")  # numbers right
    assert cells(lines[2]) == ["cnn3d", "0.100", "0.500", "0.490", "0.200", "0.600", "0.550",
                               "—"]
    assert cells(lines[3]) == ["sta3d", "0.090", "0.570", "0.546", "0.190", "0.620", "—",
                               "2.345"]
    assert len({len(line) for line in lines}) == 1  # padded to aligned columns


def test_valence_only_results_get_valence_columns_only():
    rows = [{"model": "sta3d", "valence": {"rmse": 0.102, "cc": 0.572, "ccc": 0.546}}]
    assert row_targets(rows) == ["valence"]
    header, _, line = format_results_table(rows).splitlines()
    assert cells(header) == ["Model", "Valence RMSE", "Valence CC", "Valence CCC",
                             "Attention in mask"]
    assert cells(line) == ["sta3d", "0.102", "0.572", "0.546", "—"]
    assert flatten_row(rows[0], ["valence", "arousal"])["arousal_ccc"] is None


def test_generic_markdown_table():
    text = format_markdown_table([{"a": "x|y", "b": np.float32(1.23456)}, {"a": "z", "b": 2}],
                                 ["a", "b"], ["Name", "Value"])
    lines = text.splitlines()
    assert cells(lines[0]) == ["Name", "Value"]
    assert lines[2].startswith(r"| x\|y") and cells(lines[2])[-1] == "1.235"
    assert cells(lines[3]) == ["z", "2"]


def test_csv_round_trip(tmp_path):
    path = write_csv_table(ROWS, tmp_path / "sub" / "t.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["model", "valence_rmse", "valence_cc", "valence_ccc",
                             "arousal_rmse", "arousal_cc", "arousal_ccc", "attention_in_mask"]
    assert [r["model"] for r in rows] == ["cnn3d", "sta3d"]
    for original, read in zip(ROWS, rows, strict=True):
        for target in ("valence", "arousal"):
            for metric, value in original[target].items():
                cell = read[f"{target}_{metric}"]
                if math.isnan(value):
                    assert cell == ""
                else:
                    assert float(cell) == value  # full precision, exact
    assert rows[0]["attention_in_mask"] == "" and float(rows[1]["attention_in_mask"]) == 2.345
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind


def test_csv_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvstanError, match="cannot write .*file/t.csv"):
        write_csv_table(ROWS, blocker / "t.csv")
