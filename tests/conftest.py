"""Shared fixtures: a tiny synthetic recording store and a tiny experiment config."""

import contextlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from avstan.data.store import RecordingStore
from avstan.data.synthetic import PRESETS, generate_corpus

TINY_CROP = 16
TINY_CLIP = 4
AV_FEATURES = 6


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run on 2 cores next to other work; one thread keeps timings stable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A synthetic store: 16×16 crops, 40 steps per recording, 2 train / 1 devel / 1 test."""
    root = tmp_path_factory.mktemp("tiny_store")
    config = replace(PRESETS["default"], crop_size=TINY_CROP, steps_per_recording=40,
                     num_train=2, num_devel=1, num_test=1)
    generate_corpus(root, config, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_silent_store(tmp_path_factory) -> Path:
    """The tiny synthetic store without the voice: no recording has audio features."""
    root = tmp_path_factory.mktemp("tiny_silent_store")
    config = replace(PRESETS["default"], crop_size=TINY_CROP, steps_per_recording=40,
                     num_train=2, num_devel=1, num_test=1, audio=False)
    generate_corpus(root, config, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_av_store(tiny_store, tmp_path_factory):
    """The tiny store with audio features that follow the labels (plus noise, in different
    units per feature): the first train recording has no audio, and an extra audio-only
    recording is in train and in test."""
    root = tmp_path_factory.mktemp("av_store")
    source = RecordingStore.open(tiny_store)
    store = RecordingStore.create(root, corpus="tiny-av")
    rng = np.random.default_rng(0)
    units = np.array([1.0, 10.0, 0.1, 100.0, 1.0, 5.0], dtype=np.float32)
    first_train = source.names("train")[0]
    for recording in source:
        labels = np.nan_to_num(recording.labels)
        features = np.concatenate([labels, labels ** 2, rng.normal(size=(len(labels), 2))],
                                  axis=1).astype(np.float32) * units
        features += rng.normal(0, 0.1, features.shape).astype(np.float32) * units
        no_audio = recording.name == first_train
        store.add(replace(recording, audio_features=None if no_audio else features))
        if recording.partition in ("train", "test") and not no_audio:
            store.add(replace(recording, name=f"{recording.name}-audio-only", frames=None,
                              salient_mask=None, landmarks=None, audio_features=features * 1.1,
                              face_found=np.zeros(recording.num_steps, bool)))
    return root


def tiny_config_dict(store: Path, output: Path, model: str = "cnn3d", **training) -> dict:
    return {
        "name": f"tiny-{model}",
        "output": str(output),
        "model": {"name": model, "options": {"crop_size": TINY_CROP}},
        "data": {"store": str(store), "clip_length": TINY_CLIP, "train_stride": 4,
                 "val_stride": 4},
        "training": {"max_epochs": 2, "batch_size": 4, "patience": 5, "threads": 1,
                     "accelerator": "cpu", **training},
    }


@pytest.fixture
def tiny_config_file(tiny_store, tmp_path):
    """Write a tiny experiment YAML; returns a function(model=..., **training) -> path."""
    def write(model: str = "cnn3d", name: str = "tiny.yaml", **training) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_config_dict(tiny_store, tmp_path / "run", model,
                                                        **training)))
        return path
    return write


def one_track_copy(source: Path, destination: Path, options: dict | None = None,
                     kind: str = "video") -> Path:
    """``source``'s video packets (or with ``kind="audio"`` its sound's) remuxed into
    ``destination`` (no re-encode, the other tracks left out; an MP4 written this way has
    its index, moov, at its end unless ``options`` say ``{"movflags": "faststart"}``)."""
    import av

    with av.open(str(source)) as media, \
            av.open(str(destination), "w", options=options or {}) as sink:
        track = getattr(media.streams, kind)[0]
        stream = sink.add_stream_from_template(track)
        for packet in media.demux(track):
            if packet.dts is not None:
                packet.stream = stream
                sink.mux(packet)
    return destination


def mount_small_tmpfs(mount_point: Path, size: str) -> Path:
    """A tmpfs of ``size`` (e.g. "100k") mounted at ``mount_point`` (created), for full-disk
    tests; pytest.skip where one cannot be mounted (not root, no mount privilege). Unmount
    it with ``umount``."""
    import os
    import subprocess

    mount_point.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root)")
    return mount_point


@contextlib.contextmanager
def growing_file(data: bytes, path: Path, first: int = 2000, piece: int = 20000,
                 pause: float = 0.15):
    """``path`` holding the first ``first`` bytes of ``data``, the rest appended by a thread
    in pieces every ``pause`` seconds while the block runs (a recording still being
    written); the thread is joined on exit."""
    import threading
    import time

    path.write_bytes(data[:first])

    def write_the_rest():
        with path.open("ab") as handle:
            for start in range(first, len(data), piece):
                time.sleep(pause)
                handle.write(data[start:start + piece])
                handle.flush()

    writer = threading.Thread(target=write_the_rest)
    writer.start()
    try:
        yield path
    finally:
        writer.join()
