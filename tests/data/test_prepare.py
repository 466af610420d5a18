"""`avstan prepare` on a generic folder of real clips: store, summary, resume, bad input."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from avstan.cli import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR, main
from avstan.data.store import RecordingStore

MEDIA = Path(__file__).parent / "media"


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ("single_face.mp4", "face_noface.mov", "no_face.mp4"):
        shutil.copy(MEDIA / name, root / name)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 300)
    times = np.arange(0, 2.5, 0.1)
    rows = "\n".join(f"{t:.1f},{np.sin(t) * 0.5:.4f},{np.cos(t) * 0.5:.4f}" for t in times)
    (root / "single_face.csv").write_text("time,valence,arousal\n" + rows + "\n")
    (root / "face_noface.csv").write_text("time,valence\n0.0,0.1\n3.0,0.4\n")  # 3 of 6.4 s
    (root / "split.csv").write_text("recording,partition\nsingle_face,train\n"
                                    "face_noface,devel\nno_face,test\nbroken,test\n")
    return root


def test_prepare_a_generic_folder(corpus, tmp_path, capsys):
    out = tmp_path / "store"
    code = main(["prepare", str(corpus), str(out), "--crop-size", "48", "--workers", "2",
                 "--preview"])
    printed = capsys.readouterr().out
    assert code == EXIT_PARTIAL_FAILURE
    assert "generic layout, 4 recordings" in printed
    assert "prepared 2, skipped 0 (already complete), failed 2" in printed
    assert "failed broken:" in printed and "broken.mp4" in printed
    assert "failed no_face:" in printed and "no face found" in printed

    store = RecordingStore.open(out)
    assert store.names() == ["face_noface", "single_face"]
    assert store.entries["no_face"].status == "no_face"
    single = store.load("single_face")
    assert single.partition == "train" and single.crop_size == 48
    assert single.face_found.mean() >= 0.9
    np.testing.assert_allclose(single.labels[:, 0], np.sin(single.times) * 0.5, atol=2e-3)
    leaves = store.load("face_noface")
    assert leaves.partition == "devel"
    labelled = np.isfinite(leaves.labels[:, 0])
    assert labelled[leaves.times <= 3.0].all() and not labelled[leaves.times > 3.0].any()
    assert np.isnan(leaves.labels[:, 1]).all()  # no arousal column
    np.testing.assert_array_equal(leaves.gold_times, [0.0, 3.0])  # the CSV's own rows
    np.testing.assert_array_equal(leaves.gold_labels[:, 0], np.float32([0.1, 0.4]))
    assert np.isnan(leaves.gold_labels[:, 1]).all()
    assert "no face in" in store.entries["face_noface"].message
    assert (out / "preview" / "single_face.png").stat().st_size > 0

    # A rerun skips what is complete, tries the failures again, writes nothing twice.
    stamp = (out / "single_face.h5").stat().st_mtime_ns
    code = main(["prepare", str(corpus), str(out), "--crop-size", "48", "--workers", "1"])
    assert code == EXIT_PARTIAL_FAILURE
    assert "prepared 0, skipped 2" in capsys.readouterr().out
    assert (out / "single_face.h5").stat().st_mtime_ns == stamp

    # Other settings into the same store are refused.
    assert main(["prepare", str(corpus), str(out), "--crop-size", "64"]) == EXIT_USER_ERROR
    assert "holds crops of 48 px" in capsys.readouterr().err


def test_bad_labels_fail_that_recording_only(corpus, tmp_path, capsys):
    (corpus / "single_face.csv").write_text("time,valence,arousal\n0.0,3.0,0.1\n1.0,0.2,0.1\n")
    out = tmp_path / "store"
    assert main(["prepare", str(corpus), str(out), "--crop-size", "48", "--workers", "1"]) \
        == EXIT_PARTIAL_FAILURE
    printed = capsys.readouterr().out
    assert "failed single_face:" in printed and "single_face.csv" in printed
    assert "outside [-1, 1]" in printed
    assert RecordingStore.open(out).names() == ["face_noface"]


def test_unwritable_output_and_unknown_layout(corpus, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["prepare", str(corpus), str(blocker / "store")]) == EXIT_USER_ERROR
    assert "cannot write the recording store" in capsys.readouterr().err
    assert main(["prepare", str(corpus), str(tmp_path / "s"), "--layout", "voxceleb"]) \
        == EXIT_USER_ERROR
    assert "voxceleb" in capsys.readouterr().err


def write_video(path, frames, fps=10):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_face_that_leaves_and_comes_back(tmp_path, capsys):
    from avstan.data.video import sample_video

    face = [s.image for s in sample_video(MEDIA / "single_face.mp4", 10.0)][:10]
    black = [np.zeros_like(face[0])] * 10
    root = tmp_path / "corpus"
    root.mkdir()
    write_video(root / "back.mp4", face + black + face)  # 1 s face, 1 s none, 1 s face
    # Labels longer than the video are cut to it.
    (root / "back.csv").write_text("time,valence,arousal\n0,0.1,0.2\n30,0.1,0.2\n")
    (root / ".back.h5.1234.tmp").write_text("left by a killed run")
    out = tmp_path / "store"
    out.mkdir()
    (out / ".back.h5.99.tmp").write_text("left by a killed run")
    assert main(["prepare", str(root), str(out), "--crop-size", "48", "--workers", "1"]) == 0
    recording = RecordingStore.open(out).load("back")
    found = recording.face_found
    assert found[:4].all() and not found[5:8].any() and found[9:].all()
    assert np.isfinite(recording.labels).all()
    assert not list(out.glob(".*.tmp"))


def test_a_damaged_store_file_is_prepared_again(corpus, tmp_path, capsys):
    out = tmp_path / "store"
    main(["prepare", str(corpus), str(out), "--crop-size", "48", "--workers", "1"])
    (out / "single_face.h5").write_bytes(b"damaged")
    main(["prepare", str(corpus), str(out), "--crop-size", "48", "--workers", "1"])
    assert "prepared 1, skipped 1" in capsys.readouterr().out.splitlines()[-3]
    assert RecordingStore.open(out).load("single_face").face_found.any()


def test_redetect_every_reaches_the_aligner_and_bad_values_are_refused(corpus, tmp_path,
                                                                        capsys, monkeypatch):
    import avstan.data.prepare as prepare

    made = []
    make_aligner = prepare.make_aligner
    monkeypatch.setattr(prepare, "make_aligner",
                        lambda config: made.append(make_aligner(config)) or made[-1])
    for name in ("face_noface.mov", "no_face.mp4", "broken.mp4"):
        (corpus / name).unlink()
    code = main(["prepare", str(corpus), str(tmp_path / "once"), "--crop-size", "48",
                 "--workers", "1", "--no-audio", "--redetect-every", "1"])
    assert code == 0 and made[-1].redetect_every == 1
    main(["prepare", str(corpus), str(tmp_path / "default"), "--crop-size", "48",
          "--workers", "1", "--no-audio"])
    assert made[-1].redetect_every == 4  # the default: a search once a second
    # Following changed the crops a little but not which steps have a face.
    once = RecordingStore.open(tmp_path / "once").load("single_face")
    default = RecordingStore.open(tmp_path / "default").load("single_face")
    np.testing.assert_array_equal(once.face_found, default.face_found)
    assert not np.array_equal(once.landmarks, default.landmarks)
    capsys.readouterr()
    assert main(["prepare", str(corpus), str(tmp_path / "s"), "--redetect-every", "0"]) \
        == EXIT_USER_ERROR
    assert "--redetect-every 0" in capsys.readouterr().err
