"""The random states a checkpoint carries, and the CSV log a resumed run keeps."""

import random

import numpy as np
import torch

from avstan.training.resume import random_states, rows_through_epoch, set_random_states


def draws() -> tuple:
    return (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)],
            np.random.randn(), random.gauss(0, 1))


def test_random_states_survive_a_weights_only_checkpoint_and_replay_the_draws(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    random.gauss(0, 1)  # and in Python's
    path = tmp_path / "states.ckpt"
    torch.save({"random_states": random_states()}, path)
    expected = draws()
    draws()  # move every generator on
    set_random_states(torch.load(path, weights_only=True)["random_states"])
    again = draws()
    assert torch.equal(again[0], expected[0])
    np.testing.assert_array_equal(again[1], expected[1])
    assert again[2:] == expected[2:]


def test_rows_after_the_checkpoint_epoch_are_dropped():
    rows = [{"epoch": "", "step": "0"}, {"epoch": "0", "step": "9"}, {"epoch": "1", "step": "19"},
            {"epoch": "1.0", "step": "29"}, {"epoch": "2", "step": "39"}]
    assert [r["step"] for r in rows_through_epoch(rows, 1)] == ["0", "9", "19", "29"]
    assert [r["step"] for r in rows_through_epoch(rows, 0)] == ["0", "9"]
