"""The demo in a reduced form: every stage runs and every promised output is there."""

import csv
import re

import pytest

from avstan.apply.real_clips import predict_real_clips
from avstan.experiments.demo import DEMO_MODELS, DemoAddition, run_demo


def real_clips_step(folder):
    """What `avstan demo` ends with: the packaged real-face model on the shipped clips."""
    result = predict_real_clips(folder, progress=False, log=lambda line: None)
    return DemoAddition("The packaged real-face model on real video", result.table,
                        result.html)


@pytest.mark.slow
def test_reduced_demo_writes_the_table_and_pictures(tmp_path):
    lines = []
    result = run_demo(
        tmp_path / "demo", overrides=["training.max_epochs=1", "model.options.crop_size=16",
                                      "data.clip_length=4", "data.train_stride=4",
                                      "data.val_stride=4", "training.threads=1"],
        progress=False, log=lines.append,
        corpus={"steps_per_recording": 40, "num_train": 2, "num_devel": 1, "num_test": 2},
        final_step=real_clips_step)
    out = tmp_path / "demo"
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == list(DEMO_MODELS)
    assert rows[0]["attention_in_mask"] == "" and float(rows[2]["attention_in_mask"]) > 0
    for row in rows:
        for key in ("valence_ccc", "arousal_ccc", "valence_rmse"):
            assert -1.0 <= float(row[key]) <= 1.5
    for name in ("results.md", "results_postprocessed.csv", "attention.png", "training_curves.png",
                 "predictions_test_000_valence.png", "predictions_test_001_arousal.png"):
        assert (out / name).stat().st_size > 0, name
    for model in DEMO_MODELS:
        assert re.search(rf"\| {model}\s+\|", result.table), model
    assert any("[3/3]" in line for line in lines)
    # the last step: the packaged model on the two real clips, in the table and the page
    assert any("[4/4]" in line for line in lines)
    results = (out / "results.md").read_text()
    assert "| 1001_DFA_ANG_XX | anger |" in results and "| 1001_DFA_HAP_XX | happiness |" \
        in results
    assert "The packaged real-face model on real video" in (out / "report.html").read_text()
    assert (out / "real_faces" / "1001_DFA_HAP_XX.html").is_file()
    by_model = {r["model"]: r for r in rows}
    assert by_model["lstm_ta"]["attention_in_mask"] == ""  # temporal attention only
    assert float(by_model["av_sta"]["attention_in_mask"]) > 0  # its video branch's
    # A second run reuses everything: no training, same table.
    again = run_demo(out, overrides=["training.max_epochs=1", "model.options.crop_size=16",
                                     "data.clip_length=4", "data.train_stride=4",
                                     "data.val_stride=4", "training.threads=1"],
                     progress=False, log=lines.append,
                     corpus={"steps_per_recording": 40, "num_train": 2, "num_devel": 1,
                             "num_test": 2}, final_step=real_clips_step)
    assert again.table == result.table
