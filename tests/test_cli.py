"""The command line: help on every sub-command, one-line errors with a non-zero exit."""

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from avstan.cli import EXIT_USER_ERROR, build_parser, main
from avstan.models.model_file import TrainedModel

SUBCOMMANDS = ["demo", "prepare", "synthesize", "train", "evaluate", "predict", "export",
               "reproduce", "models", "baseline"]

# avstan.progress's plain lines in a log, e.g. "predicting: 1/3 rec (0 s)"
PROGRESS_LINE = re.compile(r"^[\w ]+: \d+/\d+ \w+ \(\d+ s\)$")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: avstan {command}" in capsys.readouterr().out


def test_the_parser_knows_every_subcommand():
    actions = [a for a in build_parser()._actions if a.dest == "command"]
    assert set(actions[0].choices) == set(SUBCOMMANDS)


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "avstan", "models"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    assert "sta3d:" in result.stdout and "crop_size=" in result.stdout


def run_error(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and "it/s" not in line and "rec/s" not in line
             and not PROGRESS_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("avstan: error: "), err
    return lines[0]


def test_missing_config(tmp_path, capsys):
    line = run_error(["train", "--config", str(tmp_path / "none.yaml")], capsys)
    assert "none.yaml: config file not found" in line


def test_malformed_config(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: sta3d\n")
    assert "bad.yaml: not valid YAML" in run_error(["train", "--config", str(path)], capsys)


def test_unknown_model(tiny_config_file, capsys):
    path = tiny_config_file(model="sta4d")
    assert "unknown model 'sta4d'" in run_error(["train", "--config", str(path)], capsys)
    assert not (path.parent / "run").exists()  # no output folder left behind


def test_unwritable_output(tiny_config_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = run_error(["train", "--config", str(tiny_config_file()), "--output",
                      str(blocker / "out")], capsys)
    assert "cannot write the training output" in line and "file/out" in line


def test_store_with_wrong_shapes(tiny_store, tiny_config_file, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken_store"
    shutil.copytree(tiny_store, broken)
    victim = sorted(broken.glob("train_*.h5"))[0]
    with h5py.File(victim, "a") as h5:
        del h5["labels"]
        h5["labels"] = np.zeros((3, 2), np.float32)
    line = run_error(["train", "--config", str(tiny_config_file()), "--store", str(broken)],
                     capsys)
    assert victim.name in line and "labels must be" in line


def test_missing_store(tiny_config_file, tmp_path, capsys):
    line = run_error(["train", "--config", str(tiny_config_file()), "--store",
                      str(tmp_path / "nowhere")], capsys)
    assert "no recording store here" in line


def test_evaluate_with_a_file_that_is_not_a_model(tiny_store, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"not a model")
    line = run_error(["evaluate", str(fake), str(tiny_store)], capsys)
    assert "model.pt: not a readable avstan model file" in line


def test_unknown_preset(tmp_path, capsys):
    assert "unknown synthetic preset 'x'" in run_error(["synthesize", str(tmp_path), "--preset",
                                                      "x"], capsys)


def test_synthesize_writes_the_store_with_audio_features_and_the_wavs(tmp_path, monkeypatch,
                                                                     capsys):
    from dataclasses import replace

    from avstan.data import synthetic
    from avstan.data.store import RecordingStore

    tiny = replace(synthetic.PRESETS["easy"], crop_size=16, steps_per_recording=20,
                   num_train=1, num_devel=1, num_test=0)
    monkeypatch.setitem(synthetic.PRESETS, "easy", tiny)
    assert main(["synthesize", str(tmp_path / "voiced"), "--preset", "easy", "--wav"]) == 0
    assert "2 recordings (train 1, devel 1, test 0)" in capsys.readouterr().out
    store = RecordingStore.open(tmp_path / "voiced")
    assert store.load("train_000").audio_features.shape == (20, 88)
    wavs = sorted(p.name for p in (tmp_path / "voiced" / "audio").iterdir())
    assert wavs == ["devel_000.wav", "train_000.wav"]
    assert main(["synthesize", str(tmp_path / "silent"), "--preset", "easy", "--no-audio"]) == 0
    silent = RecordingStore.open(tmp_path / "silent").load("train_000")
    assert silent.audio_features is None
    np.testing.assert_array_equal(silent.frames, store.load("train_000").frames)


def test_train_then_evaluate_from_the_command_line(tiny_config_file, tiny_store, tmp_path,
                                                   capsys):
    config = tiny_config_file(model="cnn2d", max_epochs=1)
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "best devel CCC" in printed and "post-processing fitted on devel" in printed
    stored = TrainedModel.load(tmp_path / "run" / "model.pt").postprocessing
    assert set(stored) == {"valence", "arousal"}
    report = tmp_path / "report"
    assert main(["evaluate", str(tmp_path / "run" / "model.pt"), str(tiny_store),
                 "--output", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "raw" in printed and "post-processed" in printed and "| cnn2d |" in printed
    for name in ("metrics.json", "metrics.md", "predictions.csv"):
        assert (report / name).is_file()
    assert list((report / "plots").glob("test_000_*.png"))
    header = (report / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("recording,time,face_found,pred_valence,pred_arousal,"
                             "postprocessed_valence")

    # The chain is fitted on devel only: other test labels change the scores, not the chain.
    import json
    import shutil

    altered = tmp_path / "altered_store"
    shutil.copytree(tiny_store, altered)
    with h5py.File(altered / "test_000.h5", "a") as h5:
        h5["labels"][...] = -h5["labels"][()]
    report_b = tmp_path / "report_b"
    assert main(["evaluate", str(tmp_path / "run" / "model.pt"), str(altered),
                 "--output", str(report_b)]) == 0
    a = json.loads((report / "metrics.json").read_text())
    b = json.loads((report_b / "metrics.json").read_text())
    assert a["postprocessing"] == b["postprocessing"] == stored  # applied unchanged
    assert a["scores"]["valence"]["concatenated"]["cc"] == pytest.approx(
        -b["scores"]["valence"]["concatenated"]["cc"])


@pytest.fixture(scope="module")
def trained_cnn2d(tiny_store, tmp_path_factory):
    from avstan.training.config import config_from_dict
    from avstan.training.fit import train_experiment
    from tests.conftest import tiny_config_dict

    output = tmp_path_factory.mktemp("trained")
    config = config_from_dict(tiny_config_dict(tiny_store, output, "cnn2d", max_epochs=1))
    return train_experiment(config, progress=False).model_path


def test_evaluate_refuses_a_store_of_another_crop_size(trained_cnn2d, tmp_path, capsys):
    from dataclasses import replace

    from avstan.data.synthetic import PRESETS, generate_corpus

    other = tmp_path / "crops24"
    generate_corpus(other, replace(PRESETS["easy"], crop_size=24, steps_per_recording=20,
                                   num_train=0, num_devel=1, num_test=1), progress=False)
    line = run_error(["evaluate", str(trained_cnn2d), str(other)], capsys)
    assert "crops are [24] px" in line and "trained on 16 px" in line


def test_evaluate_a_partition_without_labels(trained_cnn2d, tiny_store, tmp_path, capsys):
    import shutil

    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(tiny_store, unlabelled)
    with h5py.File(unlabelled / "test_000.h5", "a") as h5:
        h5["labels"][...] = np.nan
    line = run_error(["evaluate", str(trained_cnn2d), str(unlabelled), "--no-postprocess"],
                     capsys)
    assert "the test partition has no valence labels to score" in line


def test_a_reader_that_goes_away_ends_the_program_quietly():
    """`avstan … | head -1`: the pipe closes before avstan writes; no traceback, the exit
    status a shell gives a tool whose reader left (issue 32)."""
    from avstan.cli import EXIT_BROKEN_PIPE

    process = subprocess.Popen([sys.executable, "-m", "avstan", "models"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the program has started writing (its imports take ~1 s)
    error = process.stderr.read().decode()
    assert process.wait() == EXIT_BROKEN_PIPE
    assert error == ""


def readme_commands() -> list[str]:
    """Every `avstan …` command the README shows: in code blocks and in inline code."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found = re.findall(r"`((?:\.venv/bin/)?avstan [^`]+)`", text)
    # inline code naming a sub-command's flag without the program, e.g. `predict --hop 2`
    found += ["avstan " + code for code in re.findall(
        r"`((?:prepare|synthesize|train|evaluate|baseline|predict|export|reproduce|models|demo)"
        r" --[^`]+)`", text)]
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        found += [line for line in block.splitlines()
                  if re.match(r"^(\.venv/bin/)?avstan ", line.strip())]
    return [command.split(" #")[0].strip() for command in found]


def test_every_command_and_flag_the_readme_shows_is_one_the_program_has():
    """Issue 32: the README matches the program (sub-commands and their flags)."""
    import argparse

    parser = build_parser()
    subcommands = next(a for a in parser._actions
                       if isinstance(a, argparse._SubParsersAction)).choices
    commands = readme_commands()
    assert len(commands) > 20  # the README shows many; the reader must find them
    wrong = []
    for command in commands:
        words = command.replace("…", "").split()
        if words[0].endswith("avstan") and len(words) > 1 and not words[1].startswith("-"):
            name = words[1]
            if name not in subcommands:
                wrong.append(f"{command!r}: no sub-command {name}")
                continue
            known = subcommands[name]._option_string_actions
            wrong += [f"{command!r}: {name} has no {flag}" for flag in
                      (w.split("=")[0] for w in words[2:] if w.startswith("--"))
                      if flag not in known]
    assert not wrong, "\n".join(wrong)


def test_every_flag_the_readme_names_belongs_to_a_sub_command():
    import argparse
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    parser = build_parser()
    subcommands = next(a for a in parser._actions
                       if isinstance(a, argparse._SubParsersAction)).choices
    known = {flag for sub in subcommands.values() for flag in sub._option_string_actions}
    other_programs = {"--force-reinstall"}  # pip's, in the reinstall advice
    inline = [code for code in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
              if ".py" not in code]  # not other programs' blocks, nor benchmark scripts
    named = {flag for code in inline
             for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", code)}
    assert named - known - other_programs == set()
