"""Progress: a bar on a terminal, a few plain lines in a log (no carriage returns)."""

import io

from avstan.progress import PlainProgress, on_terminal, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_writes_the_start_each_quarter_and_the_end():
    log = io.StringIO()
    with progress_bar(8, "preparing", "rec", stream=log) as bar:
        assert isinstance(bar, PlainProgress)
        for _ in range(8):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(" (")[0] for line in lines] == [
        "preparing: 0/8 rec", "preparing: 2/8 rec", "preparing: 4/8 rec",
        "preparing: 6/8 rec", "preparing: 8/8 rec"]


def test_a_long_run_still_writes_a_handful_of_lines():
    log = io.StringIO()
    bar = progress_bar(1000, "predicting", stream=log, initial=100)
    for _ in range(900):
        bar.update(1)
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = log.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].startswith("predicting: 100/1000")
    assert lines[-1].startswith("predicting: 1000/1000")


def test_a_terminal_gets_the_redrawn_bar_and_disabled_gets_nothing():
    screen = Terminal()
    assert on_terminal(screen) and not on_terminal(io.StringIO())
    with progress_bar(3, "synthetic corpus", stream=screen) as bar:
        assert not isinstance(bar, PlainProgress)
        for _ in range(3):
            bar.update(1)
    assert "\r" in screen.getvalue() and "3/3" in screen.getvalue()
    quiet = io.StringIO()
    with progress_bar(3, "x", enabled=False, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_training_in_a_log_writes_one_line_per_epoch(tiny_store, tmp_path, capsys):
    from avstan.training.config import config_from_dict
    from avstan.training.fit import train_experiment
    from tests.conftest import tiny_config_dict

    config = config_from_dict(tiny_config_dict(tiny_store, tmp_path / "run", "cnn2d",
                                               max_epochs=2, patience=5))
    train_experiment(config, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    epochs = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("train loss" in line and "devel CCC" in line for line in epochs)
