"""Data-parallel training is a flag: two DDP processes on CPU (gloo), from the CLI."""

import os
import subprocess
import sys

import pytest
import torch

from avstan.models.model_file import TrainedModel


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_and_writes_one_model(tiny_config_file, tmp_path):
    config = tiny_config_file(model="cnn3d", max_epochs=1)
    output = tmp_path / "ddp"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533",
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "avstan", "train", "--config", str(config), "--output",
         str(output), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "world_size: 2" in result.stderr or "GLOBAL_RANK: 1" in result.stderr, \
        result.stderr[-2000:]
    trained = TrainedModel.load(output / "model.pt")
    model = trained.network
    assert trained.model_name == "cnn3d"
    assert torch.isfinite(model(torch.rand(1, 3, 4, 16, 16))["prediction"]).all()
