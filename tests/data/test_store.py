"""The recording store: round trips, atomic writes, validation, manifest."""

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest

from avstan.data.store import Recording, RecordingStore, read_recording, write_recording
from avstan.errors import AvstanError


def make_recording(name="rec", n=20, size=8, partition="train", audio=False, mask=True,
                   landmarks=False):
    rng = np.random.default_rng(0)
    labels = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    labels[:3, 1] = np.nan
    return Recording(
        name=name, frames=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        times=np.arange(n) / 4.0, face_found=rng.random(n) > 0.2, labels=labels,
        partition=partition, corpus="test", source="memory",
        audio_features=rng.normal(size=(n, 5)).astype(np.float32) if audio else None,
        salient_mask=rng.random((n, size, size)) > 0.5 if mask else None,
        landmarks=rng.uniform(0, size, (n, 68, 2)) if landmarks else None,
        frame_times=np.arange(n) / 4.0 + 0.01 if landmarks else None,
        alignment_template=[[0.3, 0.4], [0.7, 0.4], [0.5, 0.6]] if landmarks else None,
        alignment_matrices=rng.normal(size=(n, 2, 3)) if landmarks else None)


def test_round_trip_keeps_every_array_and_attribute(tmp_path):
    rec = make_recording(audio=True, landmarks=True)
    write_recording(tmp_path / "r.h5", rec)
    back = read_recording(tmp_path / "r.h5")
    assert back.alignment_template == rec.alignment_template
    for key in ("frames", "times", "face_found", "audio_features", "salient_mask", "landmarks",
                "frame_times", "alignment_matrices"):
        np.testing.assert_array_equal(getattr(back, key), getattr(rec, key))
    np.testing.assert_array_equal(np.isnan(back.labels), np.isnan(rec.labels))
    np.testing.assert_allclose(back.labels, rec.labels)
    assert (back.name, back.partition, back.corpus, back.step_rate, back.crop_size) == \
        ("rec", "train", "test", 4.0, 8)


def test_audio_only_recording_round_trips_without_frames(tmp_path):
    rec = make_recording(audio=True, mask=False)
    rec.frames = None
    write_recording(tmp_path / "a.h5", rec)
    with h5py.File(tmp_path / "a.h5") as h5:
        assert "frames" not in h5
    back = read_recording(tmp_path / "a.h5")
    assert back.frames is None and not back.has_video and back.has_audio
    assert back.num_steps == 20 and back.crop_size == 0
    np.testing.assert_array_equal(back.audio_features, rec.audio_features)


def test_a_recording_needs_frames_or_audio(tmp_path):
    rec = make_recording(mask=False)
    rec.frames = None
    with pytest.raises(AvstanError, match="frames, audio_features or both"):
        write_recording(tmp_path / "x.h5", rec)


def test_labels_only_read_skips_frames(tmp_path):
    write_recording(tmp_path / "r.h5", make_recording())
    back = read_recording(tmp_path / "r.h5", load_frames=False)
    assert back.frames.shape == (0, 8, 8, 3) and back.labels.shape == (20, 2)


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    write_recording(path, make_recording(n=20))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.File, "create_dataset", broken)
    with pytest.raises(OSError):
        write_recording(path, make_recording(n=30))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]


def with_gold_track(rec, m=130):
    """``rec`` with a 40 ms gold track: M rows, arousal unknown on the first ten."""
    times = np.arange(m) * 0.04
    values = np.stack([np.sin(times), np.cos(times) / 2], axis=1)  # float64 in, float32 kept
    values[:10, 1] = np.nan
    return replace(rec, gold_times=times, gold_labels=values)


def test_gold_track_round_trips_at_full_precision_and_is_optional(tmp_path):
    rec = with_gold_track(make_recording())
    write_recording(tmp_path / "g.h5", rec)
    for load_frames in (True, False):
        back = read_recording(tmp_path / "g.h5", load_frames=load_frames)
        assert back.has_gold_track
        assert back.gold_times.dtype == np.float64 and back.gold_labels.dtype == np.float32
        np.testing.assert_array_equal(back.gold_times, rec.gold_times)
        np.testing.assert_array_equal(back.gold_labels, rec.gold_labels)  # NaN where NaN
    write_recording(tmp_path / "plain.h5", make_recording())
    plain = read_recording(tmp_path / "plain.h5")
    assert not plain.has_gold_track and plain.gold_labels is None
    with h5py.File(tmp_path / "plain.h5") as h5:
        assert "gold_times" not in h5 and "gold_labels" not in h5


@pytest.mark.parametrize("change, message", [
    (lambda r: setattr(r, "gold_labels", None), "come together"),
    (lambda r: setattr(r, "gold_times", None), "come together"),
    (lambda r: setattr(r, "gold_labels", r.gold_labels[:-1]), r"gold_labels must be \(130, 2\)"),
    (lambda r: setattr(r, "gold_labels", r.gold_labels[:, :1]), r"gold_labels must be"),
    (lambda r: setattr(r, "gold_times", r.gold_times[::-1].copy()),
     "gold_times must be finite and strictly increasing"),
    (lambda r: r.gold_times.__setitem__(3, np.nan), "gold_times must be finite"),
    (lambda r: setattr(r, "gold_labels", r.gold_labels * 2), r"gold_labels must lie in \[-1, 1\]"),
    (lambda r: r.gold_labels.__setitem__((2, 0), np.inf), r"gold_labels must lie in \[-1, 1\]"),
    (lambda r: r.labels.__setitem__((5, 1), -np.inf), r"labels must lie in \[-1, 1\] \(NaN "
                                                       r"where unknown, never ±inf\)"),
    (lambda r: setattr(r, "gold_times", np.zeros(0)), r"gold_times must be \(M,\) with M"),
])
def test_gold_track_validation_names_the_problem(change, message):
    rec = with_gold_track(make_recording())
    rec.validate()
    change(rec)
    with pytest.raises(AvstanError, match=message):
        rec.validate()


def test_reader_rejects_a_damaged_gold_track_with_frames_or_without(tmp_path):
    path = tmp_path / "bad_gold.h5"
    write_recording(path, with_gold_track(make_recording()))
    with h5py.File(path, "a") as h5:
        del h5["gold_labels"]
        h5["gold_labels"] = np.zeros((7, 2), np.float32)
    for load_frames in (True, False):
        with pytest.raises(AvstanError, match=r"bad_gold\.h5: gold_labels must be \(130, 2\)"):
            read_recording(path, load_frames=load_frames)


@pytest.mark.parametrize("change, message", [
    (lambda r: setattr(r, "labels", r.labels[:-1]), "labels must be"),
    (lambda r: setattr(r, "frames", r.frames[..., 0]), "frames must be"),
    (lambda r: setattr(r, "times", r.times[::-1].copy()), "strictly increasing"),
    (lambda r: setattr(r, "labels", r.labels * 3), r"\[-1, 1\]"),
    (lambda r: setattr(r, "partition", "dev"), "partition must be"),
    (lambda r: setattr(r, "salient_mask", r.salient_mask[:, :4]), "but the salient mask is 4×"),
])
def test_validation_names_the_problem(change, message):
    rec = make_recording()
    change(rec)
    with pytest.raises(AvstanError, match=message):
        rec.validate()


def test_reader_rejects_a_file_with_wrong_shapes(tmp_path):
    path = tmp_path / "bad.h5"
    write_recording(path, make_recording())
    with h5py.File(path, "a") as h5:
        del h5["labels"]
        h5["labels"] = np.zeros((5, 2), np.float32)
    with pytest.raises(AvstanError, match=r"bad\.h5: labels must be \(20, 2\)"):
        read_recording(path)
    with pytest.raises(AvstanError, match="bad.h5"):
        read_recording(path, load_frames=False)


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 50])
def test_reader_rejects_garbage_with_one_line(tmp_path, content):
    path = tmp_path / "garbage.h5"
    path.write_bytes(content)
    with pytest.raises(AvstanError, match="garbage.h5") as info:
        read_recording(path)
    assert "\n" not in str(info.value)


def test_reader_rejects_other_hdf5_and_other_versions(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(AvstanError, match="not an avstan recording"):
        read_recording(other)
    path = tmp_path / "old.h5"
    write_recording(path, make_recording())
    with h5py.File(path, "a") as h5:
        h5.attrs["store_version"] = 99
    with pytest.raises(AvstanError, match="store version 99"):
        read_recording(path)


def test_store_manifest_lists_partitions_and_failures(tmp_path):
    store = RecordingStore.create(tmp_path / "s", corpus="test")
    store.add(make_recording("a", partition="train"))
    store.add(make_recording("b", partition="devel"))
    store.mark_failed("c", "test", "no face found")
    reopened = RecordingStore.open(tmp_path / "s")
    assert reopened.names() == ["a", "b"]
    assert reopened.names("devel") == ["b"]
    assert reopened.entries["c"].status == "failed"
    assert reopened.entries["c"].message == "no face found"
    assert reopened.is_complete("a") and not reopened.is_complete("c")
    assert [r.name for r in reopened.load_partition("train")] == ["a"]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["corpus"] == "test" and len(manifest["recordings"]) == 3


def test_store_notices_a_listed_file_that_was_deleted(tmp_path):
    store = RecordingStore.create(tmp_path / "s")
    store.add(make_recording("a"))
    (tmp_path / "s" / "a.h5").unlink()
    assert not RecordingStore.open(tmp_path / "s").is_complete("a")


def test_store_errors_are_one_clear_line(tmp_path):
    with pytest.raises(AvstanError, match="no recording store here"):
        RecordingStore.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(AvstanError, match="manifest.json: not UTF-8 JSON .*damaged or not "
                                          "written by avstan; remove it"):
        RecordingStore.open(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvstanError, match="cannot write the recording store"):
        RecordingStore.create(blocker / "store")


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: m.update(attrs=[]), "attrs must be dict"),
    (lambda m: m.update(recordings={}), "recordings must be a list"),
    (lambda m: m["recordings"][0].update(partition="dev"), "recordings.partition 'dev': use "
                                                           "train or devel or test"),
    (lambda m: m["recordings"][0].update(num_steps=-3), "recordings.num_steps -3"),
    (lambda m: m["recordings"][0].update(file="../../etc/passwd"), "recordings.file "
                                                                   "'../../etc/passwd'"),
    (lambda m: m["recordings"][0].pop("name"), "missing"),
    (lambda m: m.update(store_version=99), "store_version 99"),
    (lambda m: m.update(extra=1), "unknown key extra"),
])
def test_a_damaged_manifest_is_one_line_naming_the_file_and_the_key(tmp_path, change, words):
    """Issue 32 §3: the manifest is read through typed declarations, like the configs."""
    import json

    store = RecordingStore.create(tmp_path / "s", corpus="test")
    store.add(make_recording("a"))
    path = tmp_path / "s" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(AvstanError) as info:
        RecordingStore.open(tmp_path / "s")
    message = str(info.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message
    assert message.endswith("remove it and prepare the corpus into this folder again")


def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path):
    store = RecordingStore.create(tmp_path / "s")
    store.add(make_recording("a"))
    (tmp_path / "s" / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(AvstanError, match="manifest.json: not UTF-8 JSON"):
        RecordingStore.open(tmp_path / "s")
