"""Corpus landmarks (AFEW-VA ships 68 points per frame) and what each crop was aligned from,
down to the preview's caption."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avstan.cli import main
from avstan.data.faces import DEFAULT_TEMPLATE, FaceAligner, anchor_points, similarity_transform
from avstan.data.preview import sheet_caption
from avstan.data.store import ANCHOR_CODES, RecordingStore
from avstan.data.video import sample_video

MEDIA = Path(__file__).parent / "media"
SHIFT = np.array([3.0, -2.0])  # the corpus's points differ from dlib's fit by this


@pytest.fixture(scope="module")
def afewva_corpus(tmp_path_factory):
    """One AFEW-VA clip: 26 frames of single_face.mp4 at 25 fps, labels on every frame,
    landmarks (dlib's fit, shifted) on all frames but the last."""
    root = tmp_path_factory.mktemp("afewva")
    clip = root / "001"
    clip.mkdir()
    fitter = FaceAligner(detector="hog")
    frames, given = {}, {}
    for index, sample in enumerate(sample_video(MEDIA / "single_face.mp4", step_rate=25.0)):
        if index == 26:
            break
        Image.fromarray(sample.image).save(clip / f"{index:05d}.png")
        entry = {"valence": 2, "arousal": -3}
        if index < 25:
            points = fitter.landmarks(sample.image, fitter.detect(sample.image)) + SHIFT
            given[index] = points
            entry["landmarks"] = points.tolist()
        frames[f"{index:05d}"] = entry
    (clip / "001.json").write_text(json.dumps({"frames": frames}))
    return root, given


@pytest.mark.parametrize("landmarks", ["corpus", "detect"])
def test_corpus_landmarks_align_the_crops_where_the_corpus_has_them(afewva_corpus, tmp_path,
                                                                    landmarks, capsys):
    root, given = afewva_corpus
    out = tmp_path / "store"
    assert main(["prepare", str(root), str(out), "--crop-size", "48", "--no-audio",
                 "--landmarks", landmarks, "--preview"]) == 0
    store = RecordingStore.open(out)
    assert store.attrs["landmarks"] == landmarks and store.attrs["detector"] == "yunet"
    recording = store.load("001")
    assert recording.face_detector == "yunet"
    np.testing.assert_allclose(recording.times, [0.0, 0.25, 0.5, 0.75, 1.0])
    frame_index = np.round(recording.frame_times * 25).astype(int)
    assert recording.face_found.all()
    target = np.array(DEFAULT_TEMPLATE) * 47
    for step, index in enumerate(frame_index):
        if landmarks == "corpus" and index in given:
            assert recording.aligned_from[step] == ANCHOR_CODES["corpus"]
            expected = similarity_transform(anchor_points(given[index]), target)
            np.testing.assert_allclose(recording.alignment_matrices[step], expected,
                                       rtol=1e-5, atol=1e-4)
        else:  # detected and fitted (the last frame has no corpus landmarks)
            assert recording.aligned_from[step] in (ANCHOR_CODES["landmarks"],
                                                    ANCHOR_CODES["detector"])
    corpus_steps = int((recording.aligned_from == ANCHOR_CODES["corpus"]).sum())
    assert corpus_steps == (4 if landmarks == "corpus" else 0)
    caption = sheet_caption(recording)
    assert caption.startswith("detector yunet; ")
    assert ("corpus landmarks 4" in caption) == (landmarks == "corpus")
    sheet = Image.open(out / "preview" / "001.png")
    assert sheet.size == (8 * 96, 96 + 16)  # one row of 5 steps under the caption line


def test_a_store_is_resumed_only_with_the_same_landmark_source(afewva_corpus, tmp_path,
                                                               capsys):
    root, _ = afewva_corpus
    out = tmp_path / "store"
    assert main(["prepare", str(root), str(out), "--crop-size", "48", "--no-audio"]) == 0
    assert main(["prepare", str(root), str(out), "--crop-size", "48", "--no-audio",
                 "--landmarks", "detect"]) == 2
    assert "was prepared with --landmarks corpus" in capsys.readouterr().err


def test_malformed_corpus_landmarks_are_one_line(afewva_corpus, tmp_path, capsys):
    root, _ = afewva_corpus
    broken = tmp_path / "broken" / "001"
    broken.mkdir(parents=True)
    for png in sorted((root / "001").glob("*.png"))[:5]:
        (broken / png.name).symlink_to(png)
    (broken / "001.json").write_text(json.dumps({"frames": {"00000": {
        "valence": 1, "arousal": 1, "landmarks": [[1, 2]] * 5}}}))
    assert main(["prepare", str(broken.parent), str(tmp_path / "store"), "--no-audio"]) == 1
    out = capsys.readouterr().out
    assert "001.json: frame 00000: 5 landmarks, expected 68 [x, y] points; fix the file or " \
           "prepare with --landmarks detect" in out


@pytest.mark.parametrize("far", [1e30, -5000.0])
def test_corpus_landmarks_outside_the_frame_are_no_face_with_a_warning(afewva_corpus, tmp_path,
                                                                      capsys, far):
    """Issue 32 §3: landmarks of 1e30 or -5000 px were stored as a found face with a black
    crop; now those steps have no face, and one warning names the file."""
    root, given = afewva_corpus
    moved = tmp_path / "moved" / "001"
    moved.mkdir(parents=True)
    for png in sorted((root / "001").glob("*.png")):
        (moved / png.name).symlink_to(png)
    frames = json.loads((root / "001" / "001.json").read_text())["frames"]
    frames["00000"]["landmarks"] = (np.asarray(given[0]) * 0 + far).tolist()
    (moved / "001.json").write_text(json.dumps({"frames": frames}))
    assert main(["prepare", str(moved.parent), str(tmp_path / "store"), "--crop-size",
                 "48", "--no-audio", "--workers", "1"]) == 0
    assert ("001.json: the corpus's landmarks lie outside the frame on 1 steps (first at "
            "0.00 s); those steps have no face") in capsys.readouterr().out
    recording = RecordingStore.open(tmp_path / "store").load("001")
    assert not recording.face_found[0] and recording.face_found[1:].all()
    assert recording.frames[1].mean() > 20  # the other crops are faces, not black
