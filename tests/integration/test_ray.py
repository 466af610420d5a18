"""`--engine ray`: prepare and predict over many files as Ray tasks on a local instance
(2 CPUs, no dashboard), against the local process pool; failures, killed workers, and the
cluster's bad input."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import avstan.cluster as cluster
from avstan.cli import EXIT_USER_ERROR, main
from avstan.data.corpora import find_corpus
from avstan.data.corpora.base import LabelTrack, RecordingSource
from avstan.data.prepare import PrepareConfig, prepare_corpus
from avstan.data.store import MANIFEST_NAME, RecordingStore
from avstan.errors import AvstanError

ray = pytest.importorskip("ray")
MEDIA = Path(__file__).parents[1] / "data" / "media"
CONFIG = PrepareConfig(crop_size=32, audio_window=None)


@pytest.fixture(scope="module")
def ray_instance():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for index in range(3):
        shutil.copy(MEDIA / "single_face.mp4", root / f"clip{index}.mp4")
    shutil.copy(MEDIA / "face_noface.mov", root / "leaves.mov")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 300)
    return root


def store_contents(root: Path) -> dict:
    """Every dataset and attribute of every recording file, and the manifest's entries
    without the input signatures (their mtimes differ between copies)."""
    store = RecordingStore.open(root)
    entries = {name: (e.status, e.num_steps, e.message) for name, e in store.entries.items()}
    arrays = {}
    for name in store.names():
        with h5py.File(store.path_of(name)) as h5:
            arrays[name] = ({key: h5[key][()] for key in h5},
                            {key: str(h5.attrs[key]) for key in h5.attrs})
    return {"entries": entries, "arrays": arrays, "attrs": store.attrs}


def test_a_corpus_prepared_on_ray_is_the_one_the_local_pool_prepares(ray_instance, corpus,
                                                                     tmp_path):
    _, sources = find_corpus(corpus)
    local = prepare_corpus(sources, tmp_path / "local", CONFIG, workers=2, progress=False)
    on_ray = prepare_corpus(sources, tmp_path / "ray", CONFIG, progress=False, engine="ray")
    assert sorted(local.prepared) == sorted(on_ray.prepared) == ["clip0", "clip1", "clip2",
                                                                 "leaves"]
    # a recording failing on a worker is reported as locally
    assert local.failed == on_ray.failed and local.failed[0][0] == "broken"
    expected, got = store_contents(tmp_path / "local"), store_contents(tmp_path / "ray")
    assert got["entries"] == expected["entries"] and got["attrs"] == expected["attrs"]
    assert got["arrays"].keys() == expected["arrays"].keys()
    for name, (datasets, attrs) in expected["arrays"].items():
        assert got["arrays"][name][1] == attrs
        assert datasets.keys() == got["arrays"][name][0].keys()
        for key, value in datasets.items():
            np.testing.assert_array_equal(got["arrays"][name][0][key], value, err_msg=key)
    # a rerun on Ray skips what is complete, as the local pool does
    again = prepare_corpus(sources, tmp_path / "ray", CONFIG, progress=False, engine="ray")
    assert sorted(again.skipped) == sorted(local.prepared) and not again.prepared


def kill_worker_once(source: RecordingSource) -> LabelTrack:
    """Labels of a recording whose first attempt kills its worker process mid-task."""
    marker = Path(source.extra["marker"])
    if not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return LabelTrack(np.array([0.0, 2.0]), np.array([[0.1, 0.2], [0.3, 0.4]]), "labels")


def killer_sources(tmp_path: Path) -> list[RecordingSource]:
    return [RecordingSource("plain", "train", media=MEDIA / "single_face.mp4"),
            RecordingSource("killer", "train", media=MEDIA / "single_face.mp4",
                            read_labels=kill_worker_once,
                            extra={"marker": str(tmp_path / "killed")})]


def test_a_worker_killed_mid_task_is_retried_and_the_corpus_completes(ray_instance,
                                                                     tmp_path):
    summary = prepare_corpus(killer_sources(tmp_path), tmp_path / "store", CONFIG,
                             progress=False, engine="ray")
    assert (tmp_path / "killed").exists()  # the first attempt did die
    assert sorted(summary.prepared) == ["killer", "plain"] and not summary.failed
    assert RecordingStore.open(tmp_path / "store").load("killer").labels[0, 0] == \
        pytest.approx(0.1)


def test_without_retries_the_killed_recording_fails_and_a_rerun_completes(
        ray_instance, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "RAY_TASK_RETRIES", 0)
    sources = killer_sources(tmp_path)
    first = prepare_corpus(sources, tmp_path / "store", CONFIG, progress=False, engine="ray")
    assert first.prepared == ["plain"]
    assert first.failed[0][0] == "killer" and "its Ray worker died" in first.failed[0][1]
    second = prepare_corpus(sources, tmp_path / "store", CONFIG, progress=False,
                            engine="ray")
    assert second.prepared == ["killer"] and second.skipped == ["plain"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from avstan.models import create_model
    from avstan.models.model_file import TrainedModel

    torch.manual_seed(0)
    return TrainedModel(create_model("cnn3d", crop_size=16, clip_length=4),
                        ("valence", "arousal"), 4.0).save(tmp_path_factory.mktemp("m") / "m.pt")


def test_predict_on_ray_writes_what_local_predict_writes(ray_instance, corpus, model,
                                                         tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("clip0.mp4", "leaves.mov", "broken.mp4"):
        shutil.copy(corpus / name, videos / name)
    assert main(["predict", str(model), str(videos), "--output", str(tmp_path / "local")]) == 1
    assert main(["predict", str(model), str(videos), "--output", str(tmp_path / "ray"),
                 "--engine", "ray"]) == 1
    printed = capsys.readouterr().out
    assert "failed broken.mp4:" in printed and "predicted 2, failed 1" in printed
    for name in ("clip0.csv", "leaves.csv"):
        with open(tmp_path / "local" / name) as a, open(tmp_path / "ray" / name) as b:
            assert list(csv.reader(a)) == list(csv.reader(b))
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [
        ".avstan-predict.json", "clip0.csv", "clip0.png", "leaves.csv", "leaves.png"]


def one_error_line(args, capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("avstan: error: "), err
    return lines[0]


def test_an_unreachable_ray_address_is_one_line(corpus, tmp_path, capsys):
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"), "--engine", "ray",
                           "--ray-address", "127.0.0.1:1"], capsys)
    assert "--ray-address 127.0.0.1:1: no Ray cluster answers there" in line
    assert not (tmp_path / "store").exists()
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"), "--engine", "ray",
                           "--ray-address", "nowhere"], capsys)
    assert "use HOST:PORT, ray://HOST:PORT or auto" in line


@pytest.fixture
def http_server():
    """A plain HTTP/1 server on a free local port (a service that is not Ray)."""
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # the server's own log would share stderr
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_address_that_answers_but_is_not_ray_is_one_line_at_once(corpus, tmp_path, capsys,
                                                                      http_server):
    """Issue 32: Ray itself would retry such a port for minutes, printing its log lines."""
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"), "--engine", "ray",
                           "--ray-address", http_server], capsys)
    assert f"--ray-address {http_server}: something answers there but not Ray" in line
    assert not (tmp_path / "store").exists()


def test_a_running_ray_cluster_passes_the_address_check(ray_instance):
    """The control: the GCS of a real Ray instance answers the gRPC probe."""
    address = ray.get_runtime_context().gcs_address
    cluster.check_reachable(address)  # raises AvstanError if it did not answer as gRPC


def test_ray_not_installed_names_the_extra(corpus, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    line = one_error_line(["prepare", str(corpus), str(tmp_path / "store"), "--engine",
                           "ray"], capsys)
    assert "pip install 'avstan[ray]'" in line


class OtherNodeRun:
    """A stand-in for a Ray run whose workers are on a node that does not mount the
    driver's folder: the task runs here, after the driver's probe file is gone."""

    def map_unordered(self, function, jobs, num_gpus=0):
        for index, (folder, token) in enumerate(jobs):
            (Path(folder) / token).unlink()
            yield index, function(folder, token)


def test_an_output_folder_the_workers_do_not_see_is_one_line(tmp_path):
    with pytest.raises(AvstanError, match="the workers do not see .* put the output on "
                                          "storage every Ray node mounts at the same path"):
        cluster.check_shared_folder(OtherNodeRun(), tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind
    assert not (tmp_path / MANIFEST_NAME).exists()
