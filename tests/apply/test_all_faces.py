"""`avstan predict --all-faces`: every person followed with a stable identity, one curve each;
faces at the border, overlapping faces, a person who leaves and another who enters."""

import csv
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from avstan.cli import main
from avstan.data.faces import FaceAligner
from avstan.data.people import SAME_PERSON_DISTANCE, _Track, assign, prepare_people
from avstan.data.video import SampledFrame, sample_video

MEDIA = Path(__file__).parents[1] / "data" / "media"
# man for 4 steps, nobody for 2, a woman for 4, the man again for 3
EXPECTED_MAN = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1]
EXPECTED_WOMAN = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]


def scene_frames():
    man = [s.image for s in sample_video(MEDIA / "single_face.mp4")][:4]
    woman = [s.image for s in sample_video(MEDIA / "moving_face.mp4")][:4]
    return man + [np.zeros_like(man[0])] * 2 + woman + man[:3]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The frames above as a 4 fps H.264 video (one frame per step)."""
    path = tmp_path_factory.mktemp("scene") / "scene.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for image in scene_frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "cnn3d.pt"
    return TrainedModel(create_model("cnn3d", crop_size=16, clip_length=4),
                        ("valence", "arousal"), 4.0).save(path)


def read_found(path):
    with path.open() as handle:
        return [int(row["face_found"]) for row in csv.DictReader(handle)]


def test_a_person_who_leaves_and_returns_keeps_their_identity_another_gets_a_new_one():
    samples = [SampledFrame(i, i / 4, i / 4, image) for i, image in enumerate(scene_frames())]
    people = prepare_people(samples, FaceAligner(crop_size=32), "scene", 4.0)
    assert [p.number for p in people] == [1, 2]
    assert people[0].recording.face_found.astype(int).tolist() == EXPECTED_MAN
    assert people[1].recording.face_found.astype(int).tolist() == EXPECTED_WOMAN
    for person in people:  # boxes only where the person is seen; crops held elsewhere
        found = person.recording.face_found
        assert np.isfinite(person.boxes[found]).all() and np.isnan(person.boxes[~found]).all()
        assert person.recording.name == f"scene.person{person.number}"
        assert person.recording.frames.shape == (13, 32, 32, 3)


def test_spooled_people_read_the_same_crops_from_one_nameless_file(tmp_path):
    from avstan.data.spool import RemappedRows

    samples = [SampledFrame(i, i / 4, i / 4, image) for i, image in enumerate(scene_frames())]
    held = prepare_people(samples, FaceAligner(crop_size=32), "scene", 4.0)
    spooled = prepare_people(samples, FaceAligner(crop_size=32), "scene", 4.0,
                             spool_folder=tmp_path)
    assert list(tmp_path.iterdir()) == []  # the spool has no name
    assert [p.number for p in spooled] == [p.number for p in held]
    for kept, read in zip(held, spooled, strict=True):
        assert isinstance(read.recording.frames, RemappedRows)
        np.testing.assert_array_equal(np.asarray(read.recording.frames),
                                      kept.recording.frames)
        np.testing.assert_array_equal(read.recording.frames[[12, 0, 5]],
                                      kept.recording.frames[[12, 0, 5]])
        np.testing.assert_array_equal(read.boxes, kept.boxes)
    assert spooled[0].recording.frames.rows is spooled[1].recording.frames.rows
    spooled[0].recording.close_frames()  # one file for all: closed for every person
    with pytest.raises(ValueError, match="closed"):
        spooled[1].recording.frames[0]


def test_every_face_of_a_group_photo_is_its_own_person_on_every_step():
    from PIL import Image

    group = np.asarray(Image.open(MEDIA / "2008_007676.jpg").convert("RGB"))
    frames = [np.roll(group, (i % 2, 2 * (i % 3)), axis=(0, 1)) for i in range(4)]
    samples = [SampledFrame(i, i / 4, i / 4, image) for i, image in enumerate(frames)]
    people = prepare_people(samples, FaceAligner(crop_size=32), "group", 4.0)
    assert len(people) == 7
    assert all(p.recording.face_found.all() for p in people)
    centres = np.array([np.nanmean(p.boxes[:, [0, 2]], axis=1) for p in people])
    assert np.ptp(centres, axis=1).max() < 6  # each identity stays on one face
    assert (np.diff(centres[:, 0]) != 0).all()


def test_overlapping_faces_of_one_step_never_join_the_same_person():
    near = np.zeros(128)
    track = _Track(descriptors=[near], last_box=(0, 0, 10, 10), last_step=0)
    # two overlapping faces, both like the track: the nearer in descriptor and box joins it
    faces = [near + 0.1 * SAME_PERSON_DISTANCE, near + 0.05 * SAME_PERSON_DISTANCE]
    chosen = assign(faces, [(5, 0, 15, 10), (1, 0, 11, 10)], [track], step=1)
    assert chosen == [None, 0]
    far = [near + SAME_PERSON_DISTANCE]  # at the threshold: a new person
    assert assign(far, [(0, 0, 10, 10)], [track], step=1) == [None]


def test_a_face_cut_by_the_frame_border_is_aligned_with_black_outside():
    frame = next(iter(sample_video(MEDIA / "single_face.mp4"))).image
    aligner = FaceAligner(crop_size=48)
    box = aligner.detect(frame)
    cut = int((box[0] + box[2]) / 2)  # the frame now starts at the middle of the face
    face = FaceAligner(crop_size=48)(np.ascontiguousarray(frame[:, cut:]))
    assert face is not None and face.crop.shape == (48, 48, 3)
    assert face.box[0] < 5  # found at the left border
    assert (face.crop[:, :8] == 0).all()  # outside the frame is black


def test_predict_all_faces_writes_one_curve_per_person_and_shows_each(scene, model, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    assert main(["predict", str(model), str(scene), "--output", str(out), "--all-faces",
                 "--overlay", "--html"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".avstan-predict.json", "scene.html", "scene.overlay.mp4", "scene.person1.csv",
        "scene.person1.png", "scene.person2.csv", "scene.person2.png"]
    assert read_found(out / "scene.person1.csv") == EXPECTED_MAN
    assert read_found(out / "scene.person2.csv") == EXPECTED_WOMAN
    page = (out / "scene.html").read_text()
    data = json.loads(re.search(r"id='predictions'>(.*?)</script>", page).group(1))
    assert sorted(data["values"]) == ["person 1 arousal", "person 1 valence",
                                      "person 2 arousal", "person 2 valence"]
    assert len(set(data["colours"].values())) == 4
    with av.open(str(out / "scene.overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 13
    # the man's box is drawn in the first person's colour (tab10 blue) on his steps
    blue = np.array([31, 119, 180])
    near_blue = np.abs(frames[0].astype(int) - blue).sum(axis=2) < 60
    assert near_blue.sum() > 200
    assert "2 people" in capsys.readouterr().out
    # again without --overwrite: refused, nothing lost
    assert main(["predict", str(model), str(scene), "--output", str(out), "--all-faces"]) == 2
    assert "scene.person1.csv: exists" in capsys.readouterr().err
    # a rerun over the outputs of a run that found more people: theirs go (issue 32)
    for suffix in ("csv", "png"):
        (out / f"scene.person3.{suffix}").write_bytes(b"an earlier run's third person")
    assert main(["predict", str(model), str(scene), "--output", str(out), "--all-faces",
                 "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("scene.person*")) == [
        "scene.person1.csv", "scene.person1.png", "scene.person2.csv", "scene.person2.png"]


def test_the_default_follows_the_main_face_and_reports_the_gap(scene, model, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(model), str(scene), "--output", str(out)]) == 0
    assert read_found(out / "scene.csv") == [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1]


def test_all_faces_with_an_audio_model_is_one_line(tmp_path, capsys):
    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    path = TrainedModel(create_model("lstm", clip_length=4), ("valence", "arousal"),
                        4.0).save(tmp_path / "lstm.pt")
    code = main(["predict", str(path), str(MEDIA / "single_face.mp4"), "--output",
                 str(tmp_path / "out"), "--all-faces"])
    assert code == 1
    assert "--all-faces follows faces, and lstm reads only the sound" in capsys.readouterr().out
