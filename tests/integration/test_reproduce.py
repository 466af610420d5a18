"""`avstan reproduce` in a reduced form: every row trained, scored and reported."""

import pytest

from avstan.cli import EXIT_USER_ERROR, main
from avstan.experiments.reproduce import TABLES
from tests.conftest import AV_FEATURES

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
    assert "scored on the steps (250 ms) timeline" in report
    assert (tmp_path / "icassp-table1" / "icassp_sta3d" / "model.pt").is_file()


@pytest.mark.slow
def test_reduced_mm_table3_with_the_baseline_and_fusion_from_trained_branches(
        tiny_av_store, tmp_path):
    reduced = [*REDUCED, "--set", f"model.options.audio_features={AV_FEATURES}",
               "--set", "model.options.hidden=8", "--set", "model.options.layers=2",
               "--set", "model.options.audio={hidden: 8, layers: 2}"]
    assert main(["reproduce", "--table", "mm-table3", "--corpus", str(tiny_av_store),
                 "--output", str(tmp_path), *reduced]) == 0
    report = (tmp_path / "mm-table3" / "report.md").read_text()
    for row in TABLES["mm-table3"].rows:
        line = next(li for li in report.splitlines() if li.startswith(f"| {row.label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:4] == ["—" if v is None else f"{v:.3f}" for v in row.published]
        ours = [float(c) for c in cells[4:]]
        assert ours[0] > 0 and -1 <= ours[1] <= 1 and -1 <= ours[2] <= 1
    out = tmp_path / "mm-table3"
    assert (out / "avec2017_audio_baseline" / "baseline.json").is_file()
    # The fusion started from this run's trained lstm_ta and sta3d rows.
    from avstan.training.config import load_config

    fused = load_config(out / "mm_av_sta" / "config.yaml")
    assert fused.training.init_branches == {"audio": str(out / "mm_lstm_ta" / "model.pt"),
                                            "video": str(out / "mm_sta3d" / "model.pt")}


def test_audio_tables_on_a_store_without_audio_and_unknown_tables_say_so(
        tiny_silent_store, tiny_store, tmp_path, capsys):
    assert main(["reproduce", "--table", "mm-table1", "--corpus", str(tiny_silent_store),
                 "--output", str(tmp_path), *REDUCED]) == EXIT_USER_ERROR
    assert "no complete recordings with audio in the train partition" in \
        capsys.readouterr().err
    assert main(["reproduce", "--table", "table9", "--corpus", str(tiny_store),
                 "--output", str(tmp_path)]) == EXIT_USER_ERROR
    assert "unknown table 'table9'" in capsys.readouterr().err


def test_a_partition_to_score_that_is_not_there_is_said_before_any_row_trains(
        tiny_store, tmp_path, capsys):
    """Issue 32 §5: `--partition tst` was reported only after the first row had trained."""
    import time

    started = time.monotonic()
    assert main(["reproduce", "--table", "icassp-table1", "--corpus", str(tiny_store),
                 "--output", str(tmp_path / "out"), "--partition", "tst"]) == EXIT_USER_ERROR
    assert "--partition 'tst': use one of train, devel, test" in capsys.readouterr().err
    assert time.monotonic() - started < 10 and not (tmp_path / "out").exists()
