"""The trained models shipped in the package: found, loadable, listed, used by default."""

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from avstan.cli import EXIT_USER_ERROR, main, model_and_input
from avstan.data.faces import DEFAULT_REDETECT_EVERY
from avstan.errors import AvstanError
from avstan.models import packaged
from avstan.models.model_file import TrainedModel
from avstan.models.packaged import DEFAULT_PACKAGED_MODEL, PACKAGED_MODELS, packaged_model_path

MEDIA = Path(__file__).resolve().parents[1] / "data" / "media"


def test_every_packaged_model_is_in_the_package_and_loads_with_its_file_metadata():
    for name, entry in PACKAGED_MODELS.items():
        path = packaged_model_path(name)
        assert path.name == entry.file and path.stat().st_size < 10 * 2 ** 20
        trained = TrainedModel.load(path)
        assert trained.model_name == "frame2d"
        assert trained.metadata["trained_on"] == "images"
        # on video: the face followed between searches as prepare does by default, and
        # the fixed smoothing of image models
        assert trained.redetect_every == DEFAULT_REDETECT_EVERY
        assert {c["median_window"] for c in trained.postprocessing.values()} == {5}
        assert trained.crop_size == 48 and trained.clip_length == 1
        # the config that reproduces it is shipped too
        from avstan.training.config import load_config, packaged_config

        config = load_config(packaged_config(entry.config))
        assert config.model.name == trained.model_name
        assert config.model.options["crop_size"] == trained.crop_size


def test_an_unknown_packaged_name_lists_the_known_ones():
    with pytest.raises(AvstanError, match=f"no packaged model 'nope'.*{DEFAULT_PACKAGED_MODEL}"):
        packaged_model_path("nope")


def fake_package(monkeypatch, tmp_path, content: bytes | None) -> Path:
    folder = tmp_path / packaged.PACKAGE_FOLDER
    folder.mkdir()
    monkeypatch.setattr(packaged.resources, "files", lambda _: tmp_path)
    file = folder / PACKAGED_MODELS[DEFAULT_PACKAGED_MODEL].file
    if content is not None:
        file.write_bytes(content)
    return file


def test_a_missing_packaged_model_says_to_reinstall(monkeypatch, tmp_path, capsys):
    fake_package(monkeypatch, tmp_path, None)
    assert main(["predict", str(MEDIA / "single_face.mp4"),
                 "--output", str(tmp_path / "out")]) == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "missing from this installation" in error and "reinstall avstan" in error
    assert not (tmp_path / "out").exists()


def test_a_damaged_packaged_model_says_to_reinstall(monkeypatch, tmp_path, capsys):
    real = packaged_model_path().read_bytes()
    fake_package(monkeypatch, tmp_path, real[: len(real) // 2])  # a cut copy
    assert main(["predict", str(MEDIA / "single_face.mp4"),
                 "--output", str(tmp_path / "out")]) == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "is damaged" in error and "reinstall" in error


def test_predict_arguments_one_video_means_the_packaged_model(tmp_path):
    video = str(MEDIA / "single_face.mp4")
    default = str(packaged_model_path())
    assert model_and_input(video, None, None) == (default, video)
    assert model_and_input(str(MEDIA), None, None) == (default, str(MEDIA))  # a folder
    assert model_and_input(DEFAULT_PACKAGED_MODEL, video, None) == (default, video)
    assert model_and_input("runs/x/model.pt", video, None) == ("runs/x/model.pt", video)
    assert model_and_input(DEFAULT_PACKAGED_MODEL, None, "-") == (default, None)
    # a model file alone is still a model file (predict then asks for the input)
    assert model_and_input("runs/x/model.pt", None, None) == ("runs/x/model.pt", None)


def test_models_lists_the_packaged_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, entry in PACKAGED_MODELS.items():
        assert f"{name}: " in out and f"configs/{entry.config}.yaml" in out
    assert "frame2d: " in out  # the registered architecture too


def test_predict_with_only_a_video_writes_curves_from_the_packaged_model(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    shutil.copy(MEDIA / "single_face.mp4", video)
    assert main(["predict", str(video), "--output", str(tmp_path / "out"), "--html"]) == 0
    with open(tmp_path / "out" / "clip.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) >= {"time", "valence", "arousal", "face_found"}
    values = np.array([[float(r["valence"]), float(r["arousal"])] for r in rows])
    assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
    assert all(r["face_found"] in ("1", "True", "true") for r in rows)
    assert (tmp_path / "out" / "clip.png").is_file() and (tmp_path / "out" / "clip.html").is_file()
    # the page shows, beside the values, the expression of each step as the CSV names it
    page = (tmp_path / "out" / "clip.html").read_text()
    data = json.loads(re.search(r"id='predictions'>(.*?)</script>", page).group(1))
    assert [label.split()[0] for label in data["labels"]] == [r["expression"] for r in rows]


def test_the_real_clips_step_reads_a_happy_face_as_more_pleasant_than_an_angry_one(tmp_path):
    """The demo's last step, on the two shipped CREMA-D clips (one actor, one sentence):
    a table row per clip with its expression, and pages; the happy delivery's mean valence
    above the angry one's (what a model that learned anything from real faces must do)."""
    from avstan.apply.real_clips import predict_real_clips

    result = predict_real_clips(tmp_path, progress=False, log=lambda line: None)
    rows = {line.split("|")[1].strip(): line for line in result.table.splitlines()
            if line.startswith("| 1001_")}
    assert set(rows) == {"1001_DFA_ANG_XX", "1001_DFA_HAP_XX"}
    assert "| anger |" in rows["1001_DFA_ANG_XX"] and "| happiness |" in rows["1001_DFA_HAP_XX"]

    def mean_valence(row):
        return float(row.split("|")[4].split("/")[0])

    assert mean_valence(rows["1001_DFA_HAP_XX"]) > mean_valence(rows["1001_DFA_ANG_XX"])
    # the expression head reads the happy delivery as happiness, with most of its mass
    read = rows["1001_DFA_HAP_XX"].split("|")[5].strip()
    assert read.startswith("happiness (") and float(read[len("happiness ("):-1]) > 0.5
    assert len(result.pages) == 2 and all(page.is_file() for page in result.pages)


def read_csv_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_predict_writes_the_expression_heads_probabilities_as_the_network_gives_them(tmp_path):
    """The packaged model has an expression head: each row names its most probable class
    and gives every class's probability, equal to the head's softmax on that step's crop
    computed here by hand; --hop 2 interpolates them between predicted steps, and
    --all-faces writes them per person."""
    import torch

    from avstan.apply.predict import Predictor
    from avstan.apply.stream import stream_predict
    from avstan.data.corpora.images import EXPRESSIONS
    from tests.apply.test_stream import remux

    video = MEDIA / "single_face.mp4"
    assert main(["predict", str(video), "--output", str(tmp_path / "one")]) == 0
    rows = read_csv_rows(tmp_path / "one" / "single_face.csv")
    columns = [f"p_{name}" for name in EXPRESSIONS]
    assert list(rows[0])[4:] == ["expression", *columns]
    written = np.array([[float(r[c]) for c in columns] for r in rows])
    assert np.allclose(written.sum(axis=1), 1.0, atol=5e-3)
    assert [r["expression"] for r in rows] == [EXPRESSIONS[k] for k in written.argmax(axis=1)]

    predictor = Predictor.load(packaged_model_path())
    recording = predictor.prepare_media(video)
    assert recording.face_found.all()
    network = predictor.trained.network.eval()
    crops = torch.from_numpy(np.asarray(recording.frames)).float() / 255.0  # (N, S, S, 3)
    with torch.no_grad():  # → (N, 3, 1, S, S): one-frame clips
        logits = network(clip=crops.permute(0, 3, 1, 2).unsqueeze(2))["expression_logits"]
    assert np.allclose(written, logits.softmax(dim=-1).numpy(), atol=2e-4)

    assert main(["predict", str(video), "--output", str(tmp_path / "hop"), "--hop", "2"]) == 0
    hopped = read_csv_rows(tmp_path / "hop" / "single_face.csv")
    every = np.array([[float(r[c]) for c in columns] for r in hopped])
    assert np.allclose(every[::2], written[::2], atol=2e-4)  # the steps it predicted
    between = (every[:-2:2] + every[2::2]) / 2  # and the steps between, interpolated
    assert np.allclose(every[1:-1:2], between, atol=2e-4)

    assert main(["predict", str(video), "--output", str(tmp_path / "all"), "--all-faces"]) == 0
    person = read_csv_rows(tmp_path / "all" / "single_face.person1.csv")
    assert list(person[0])[4:] == ["expression", *columns]

    # the stream writes the same columns, each line as offline wrote that step
    out = io.StringIO()
    streamable = remux(video, tmp_path / "single_face.mkv")  # the same packets, streamable
    stream_predict(packaged_model_path(), str(streamable), out=out, log=io.StringIO(),
                   idle_timeout=0.2)
    streamed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(streamed[0]) == list(rows[0]) and len(streamed) == len(rows)
    assert [r["expression"] for r in streamed] == [r["expression"] for r in rows]
    assert np.allclose([[float(r[c]) for c in columns] for r in streamed], written, atol=2e-4)
