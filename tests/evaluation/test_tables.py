"""Result tables: markdown layout and CSV round trip."""

import csv

from avstan.evaluation.tables import format_results_table, write_csv_table

ROWS = [
    {"model": "cnn3d", "valence": {"rmse": 0.1, "cc": 0.5, "ccc": 0.49},
     "arousal": {"rmse": 0.2, "cc": 0.6, "ccc": 0.55}, "attention_in_mask": None},
    {"model": "sta3d", "valence": {"rmse": 0.09, "cc": 0.57, "ccc": 0.5461},
     "arousal": {"rmse": 0.19, "cc": 0.62, "ccc": 0.6}, "attention_in_mask": 2.345},
]


def test_markdown_layout():
    lines = format_results_table(ROWS).splitlines()
    assert lines[0].startswith("| Model | Valence RMSE | Valence CC | Valence CCC | Arousal RMSE")
    assert lines[0].endswith("| Attention in mask |")
    assert set(lines[1]) <= set("|-:")
    assert len(lines) == 4
    assert lines[2].startswith("| cnn3d | 0.100 | 0.500 | 0.490 |") and lines[2].endswith("| — |")
    assert "0.546" in lines[3] and lines[3].endswith("| 2.345 |")


def test_csv_round_trip(tmp_path):
    path = write_csv_table(ROWS, tmp_path / "sub" / "t.csv")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["cnn3d", "sta3d"]
    assert float(rows[1]["valence_ccc"]) == 0.5461
    assert rows[0]["attention_in_mask"] == "" and float(rows[1]["attention_in_mask"]) == 2.345
