"""One run per output folder (issue 32): a second run into a folder another run is writing
stops at once with one line naming the folder and that process; the lock dies with its
process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from avstan.errors import AvstanError
from avstan.io import exclusive_output
from tests.conftest import tiny_config_dict
from tests.integration.test_bad_input import MEDIA, one_error_line


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((MEDIA / "single_face.mp4").read_bytes())
    return folder


def commands(tmp_path, corpus, tiny_store) -> dict[str, tuple[list[str], Path]]:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_store, tmp_path / "run")))
    return {
        "prepare": (["prepare", str(corpus), str(tmp_path / "store"), "--crop-size", "16",
                     "--no-audio", "--workers", "1"], tmp_path / "store"),
        "train": (["train", "--config", str(config)], tmp_path / "run"),
        "predict": (["predict", str(corpus / "a.mp4"), "--output", str(tmp_path / "out")],
                    tmp_path / "out"),
        "demo": (["demo", "--output", str(tmp_path / "demo")], tmp_path / "demo"),
        "evaluate": (["evaluate", str(tmp_path / "model.pt"), str(tiny_store), "--output",
                      str(tmp_path / "report")], tmp_path / "report"),
        "baseline": (["baseline", str(tiny_store), str(tmp_path / "baseline")],
                     tmp_path / "baseline"),
        "reproduce": (["reproduce", "--table", "icassp-table1", "--corpus", str(tiny_store),
                       "--output", str(tmp_path / "reproduce")],
                      tmp_path / "reproduce" / "icassp-table1"),
    }


@pytest.mark.parametrize("command", ["prepare", "train", "predict", "demo", "evaluate",
                                     "baseline", "reproduce"])
def test_a_second_run_into_a_held_folder_stops_at_once(command, tmp_path, corpus, tiny_store,
                                                       capsys):
    args, folder = commands(tmp_path, corpus, tiny_store)[command]
    with exclusive_output(folder, "the output", "test"):
        started = time.monotonic()
        line = one_error_line(args, capsys)
        assert time.monotonic() - started < 30  # at once, not after the work
        assert not list(folder.iterdir())  # nothing written, not even a lock file
    assert str(folder) in line and f"process {os.getpid()}: " in line
    assert "another avstan run" in line


def test_the_folder_is_free_again_after_the_run_and_the_command_then_works(tmp_path, corpus,
                                                                            capsys):
    from avstan.cli import main

    store = tmp_path / "store"
    with exclusive_output(store, "the store", "test"):
        pass
    assert main(["prepare", str(corpus), str(store), "--crop-size", "16", "--no-audio",
                 "--workers", "1"]) == 0
    assert (store / "a.h5").is_file()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom avstan.io import exclusive_output\n"
         f"with exclusive_output({str(folder)!r}, 'x', 'test'):\n"
         "    print('held', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"held"
    with pytest.raises(AvstanError, match=f"process {holder.pid}: .*exclusive_output"):
        with exclusive_output(folder, "x", "second"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with exclusive_output(folder, "x", "third"):  # the OS released the dead process's lock
        pass
    assert folder.is_dir()  # not created by the third run: kept


def test_a_run_that_fails_before_writing_leaves_no_new_folder(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(RuntimeError), exclusive_output(folder, "x", "test"):
        raise RuntimeError("failed before writing anything")
    assert not folder.exists()
    kept = tmp_path / "kept"
    with exclusive_output(kept, "x", "test"):
        (kept / "result.csv").write_text("1")
    assert sorted(p.name for p in kept.iterdir()) == ["result.csv"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def pool_workers(process: subprocess.Popen) -> list[int]:
    """The pids of ``process``'s children once it has two (its pool's workers), from
    ``/proc``; fails the test if they do not appear within a minute."""
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children) < 2 and process.poll() is None:
        tasks = Path(f"/proc/{process.pid}/task")
        children = [int(pid) for task in tasks.glob("*/children")
                    for pid in task.read_text().split()] if tasks.exists() else []
        time.sleep(0.05)
    assert len(children) >= 2 and process.poll() is None, "no pool workers seen"
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_pool_workers_die_with_a_prepare_killed_outright(tmp_path):
    """Issue 32: kill -9 to `prepare --workers 2` left both workers alive, idle, for 10
    minutes, holding the caller's pipes."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in "abcd":
        (corpus / f"{name}.mp4").write_bytes((MEDIA / "moving_face.mp4").read_bytes())
    process = subprocess.Popen([sys.executable, "-m", "avstan", "prepare", str(corpus),
                                str(tmp_path / "store"), "--workers", "2", "--no-audio",
                                "--crop-size", "16"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    children = pool_workers(process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_sigterm_to_prepare_is_ctrl_c_its_workers_stop_and_the_same_command_resumes(tmp_path):
    """Issue 32: SIGTERM is handled like Ctrl-C (one line, exit 130, resumable), and the
    pool's workers stop with it instead of finishing the queue; the resumed store is the
    store an uninterrupted run makes."""
    import json

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in "abcdef":
        (corpus / f"{name}.mp4").write_bytes((MEDIA / "moving_face.mp4").read_bytes())
    command = [sys.executable, "-m", "avstan", "prepare", str(corpus), str(tmp_path / "store"),
               "--workers", "2", "--no-audio", "--crop-size", "16"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    children = pool_workers(process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == \
        "avstan: interrupted; run the same command again to resume", err
    assert "Traceback" not in err
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children)
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    reference = subprocess.run(command[:5] + [str(tmp_path / "reference")] + command[6:],
                               capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr

    def entries(store):
        manifest = json.loads((tmp_path / store / "manifest.json").read_text())
        recordings = manifest["recordings"]
        return {name: (entry["status"], entry.get("checksum")) for name, entry in
                (recordings.items() if isinstance(recordings, dict) else
                 ((e["name"], e) for e in recordings))}

    assert entries("store") == entries("reference")
    assert all(status == "complete" for status, _ in entries("store").values())
