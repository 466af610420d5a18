"""Face-image corpora on the command line (issue 30): `avstan prepare` of a labelled image
folder, bad images reported one line each while the rest is stored, and bad corpora as
one error line with nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avstan.cli import EXIT_PARTIAL_FAILURE, main
from avstan.data.store import RecordingStore
from tests.integration.test_bad_input import one_error_line

MEDIA = Path(__file__).parents[1] / "data" / "media"


def face_images(folder: Path, count: int) -> list[str]:
    """``count`` small grey face images cut from a real photo (FER2013-like), shifted a little
    each, written as PNG; their names relative to ``folder``."""
    photo = Image.open(MEDIA / "2008_002470.jpg").convert("L")
    names = []
    for index in range(count):
        box = (170 + 3 * index, 60, 290 + 3 * index, 180)  # one face of the photo
        face = photo.crop(box).resize((48, 48), Image.Resampling.BOX)
        name = f"faces/face{index}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        face.save(folder / name)
        names.append(name)
    return names


def labels_csv(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "expression", "partition"])
        writer.writerows(rows)


def test_prepare_stores_the_good_images_and_names_each_bad_one(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = face_images(corpus, 3)
    good = (corpus / names[0]).read_bytes()
    (corpus / "faces" / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(corpus / "faces" / "tiny.png")
    labels_csv(corpus, [(names[0], "happy", "train"), (names[1], "sad", "devel"),
                        (names[2], "angry", "test"), ("faces/cut.png", "fear", "train"),
                        ("faces/tiny.png", "neutral", "train")])
    store = tmp_path / "store"
    code = main(["prepare", str(corpus), str(store), "--crop-size", "32", "--workers", "1",
                 "--preview"])
    out = capsys.readouterr().out
    assert code == EXIT_PARTIAL_FAILURE
    failed = [line for line in out.splitlines() if line.startswith("failed image")]
    assert len(failed) == 2
    assert any("cut.png" in line for line in failed) and any("tiny.png" in line
                                                              for line in failed)
    assert "crops aligned from:" in out and "images layout, 5 images" in out
    opened = RecordingStore.open(store)
    assert opened.attrs["kind"] == "images"
    stored = sorted(n.decode() for name in opened.names()
                    for n in opened.load(name).image_names)
    assert stored == sorted(Path(n).with_suffix("").as_posix() for n in names)
    with open(store / "failed_images.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert sorted(p.name for p in (store / "preview").glob("*.png")) == [
        "devel-0000.png", "test-0000.png", "train-0000.png"]
    # the same command again: every shard kept, nothing redone
    before = json.loads((store / "manifest.json").read_text())
    main(["prepare", str(corpus), str(store), "--crop-size", "32", "--workers", "1"])
    assert "skipped 3 (already complete)" in capsys.readouterr().out
    assert json.loads((store / "manifest.json").read_text()) == before


@pytest.mark.parametrize("problem, expected", [
    ("missing", "faces/gone.png"),
    ("expression", "'grumpy'"),
])
def test_a_bad_labels_file_is_one_line_and_writes_nothing(problem, expected, tmp_path,
                                                          capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = face_images(corpus, 3)
    rows = [(names[0], "happy", "train"), (names[1], "sad", "devel")]
    rows.append(("faces/gone.png", "fear", "test") if problem == "missing"
                else (names[2], "grumpy", "test"))
    labels_csv(corpus, rows)
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"),
                           "--layout", "images"], capsys)
    assert "labels.csv" in line and expected in line
    assert not (tmp_path / "store").exists()


def test_an_affectnet_image_without_its_annotation_is_one_line(tmp_path, capsys):
    root = tmp_path / "affectnet"
    (root / "train_set" / "images").mkdir(parents=True)
    (root / "train_set" / "annotations").mkdir()
    face = Image.open(MEDIA / "2008_002470.jpg").crop((170, 60, 290, 180))
    face.save(root / "train_set" / "images" / "7.jpg")
    for kind, value in (("val", "0.5"), ("aro", "0.1")):  # no 7_exp.npy
        np.save(root / "train_set" / "annotations" / f"7_{kind}.npy", np.array(value))
    line = one_error_line(["prepare", str(root), str(tmp_path / "store")], capsys)
    assert "7_exp.npy" in line


def test_an_image_corpus_without_devel_is_said_at_prepare_and_at_train(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = face_images(corpus, 2)
    labels_csv(corpus, [(names[0], "happy", "train"), (names[1], "sad", "train")])
    store = tmp_path / "store"
    assert main(["prepare", str(corpus), str(store), "--crop-size", "16",
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "no devel and no test images" in out
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{name: frame2d, options: {{crop_size: 16}}}}\n"
                      f"data: {{store: {store}, clip_length: 1, train_stride: 1}}\n"
                      f"output: {tmp_path / 'run'}\n")
    line = one_error_line(["train", "--config", str(config)], capsys)
    assert "devel partition" in line
