"""`avstan reproduce` in a reduced form: every row trained, scored and reported."""

import pytest

from avstan.cli import EXIT_USER_ERROR, main
from avstan.reproduce import TABLES

REDUCED = ["--set", "model.options.crop_size=16", "--set", "data.clip_length=4",
           "--set", "training.max_epochs=1", "--set", "data.val_stride=4",
           "--set", "training.threads=1"]


@pytest.mark.slow
def test_reduced_icassp_table1(tiny_store, tmp_path, capsys):
    assert main(["reproduce", "--table", "icassp-table1", "--corpus", str(tiny_store),
                 "--output", str(tmp_path), *REDUCED]) == 0
    report = (tmp_path / "icassp-table1" / "report.md").read_text()
    for row in TABLES["icassp-table1"].rows:
        line = next(li for li in report.splitlines() if li.startswith(f"| {row.label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert [float(c) for c in cells[1:4]] == list(row.published)
        ours = [float(c) for c in cells[4:]]
        assert ours[0] > 0 and -1 <= ours[1] <= 1 and -1 <= ours[2] <= 1
    assert "Command: `" in report and "commit" in report
    assert (tmp_path / "icassp-table1" / "icassp_sta3d" / "model.pt").is_file()


def test_tables_that_need_audio_say_so(tiny_store, tmp_path, capsys):
    assert main(["reproduce", "--table", "mm-table3", "--corpus", str(tiny_store),
                 "--output", str(tmp_path)]) == EXIT_USER_ERROR
    assert "needs the audio and audio-visual fusion models" in capsys.readouterr().err
    assert main(["reproduce", "--table", "table9", "--corpus", str(tiny_store),
                 "--output", str(tmp_path)]) == EXIT_USER_ERROR
    assert "unknown table 'table9'" in capsys.readouterr().err
