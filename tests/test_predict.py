"""`avstan predict` on real clips with a model trained on the synthetic corpus."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from avstan.cli import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR, main
from avstan.evaluation.evaluate import attach_postprocessing
from avstan.training.config import config_from_dict
from avstan.training.fit import train_experiment
from tests.conftest import tiny_config_dict

MEDIA = Path(__file__).parent / "data" / "media"


@pytest.fixture(scope="module")
def model(tiny_store, tmp_path_factory):
    raw = tiny_config_dict(tiny_store, tmp_path_factory.mktemp("model"), "sta3d", max_epochs=1)
    raw["data"]["clip_length"] = 16
    result = train_experiment(config_from_dict(raw), progress=False)
    attach_postprocessing(result.model_path, tiny_store)
    return result.model_path


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("single_face.mp4", "face_noface.mov", "no_face.mp4"):
        shutil.copy(MEDIA / name, folder / name)
    return folder


def read_rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_predict_a_folder(model, videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(model), str(videos), "--output", str(out)]) \
        == EXIT_PARTIAL_FAILURE
    printed = capsys.readouterr().out
    assert "predicted 1, failed 2" in printed
    assert "no_face.mp4: no face found" in printed
    assert "single_face.mp4: shorter than one clip (10 steps, the model needs 16" in printed
    rows = read_rows(out / "face_noface.csv")
    assert list(rows[0]) == ["time", "valence", "arousal", "face_found"]
    assert len(rows) == 26
    values = np.array([[float(r["valence"]), float(r["arousal"])] for r in rows])
    assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
    found = np.array([r["face_found"] == "1" for r in rows])
    assert found[:8].all() and not found[-10:].any()
    assert (out / "face_noface.png").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["face_noface.csv", "face_noface.png"]

    # Existing outputs are refused unless --overwrite.
    assert main(["predict", str(model), str(videos / "face_noface.mov"), "--output",
                 str(out)]) == EXIT_USER_ERROR
    assert "face_noface.csv: exists; pass --overwrite" in capsys.readouterr().err


def test_hop_predicts_every_kth_step_and_interpolates(model, videos, tmp_path):
    video = str(videos / "face_noface.mov")
    assert main(["predict", str(model), video, "--output", str(tmp_path / "a"),
                 "--no-postprocess"]) == 0
    assert main(["predict", str(model), video, "--output", str(tmp_path / "b"),
                 "--no-postprocess", "--hop", "3"]) == 0
    every = np.array([float(r["valence"]) for r in read_rows(tmp_path / "a" / "face_noface.csv")])
    hopped = np.array([float(r["valence"]) for r in read_rows(tmp_path / "b" / "face_noface.csv")])
    np.testing.assert_allclose(hopped[::3], every[::3], atol=1e-5)
    steps = np.arange(len(every))
    np.testing.assert_allclose(hopped, np.interp(steps, steps[::3], every[::3]), atol=1e-5)


def test_bad_model_file_and_missing_input(videos, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"nope")
    assert main(["predict", str(fake), str(videos)]) == EXIT_USER_ERROR
    assert "model.pt: not a readable avstan model file" in capsys.readouterr().err
