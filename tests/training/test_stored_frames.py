"""Training from frames left in the store's files (``data.frames_in_memory: false``): the
same clips, each DataLoader worker opening its own handles, the same model."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avstan.data.clips import ClipDataset
from avstan.data.store import RecordingStore, StoredFrames
from avstan.errors import AvstanError
from avstan.training.config import config_from_dict
from avstan.training.fit import train_experiment
from tests.conftest import tiny_config_dict


def test_stored_frames_read_the_same_pixels_as_the_loaded_array(tiny_store):
    store = RecordingStore.open(tiny_store)
    name = store.names("train")[0]
    loaded = store.load(name).frames
    stored = store.load(name, lazy_frames=True).frames
    assert isinstance(stored, StoredFrames) and stored.shape == loaded.shape
    for steps in ([0, 0, 0, 1, 2], [3, 4, 5, 6], [7]):  # first-frame padding repeats step 0
        np.testing.assert_array_equal(stored[np.array(steps)], loaded[steps])
    np.testing.assert_array_equal(np.asarray(stored), loaded)
    copy = pickle.loads(pickle.dumps(stored))  # no handle travels with it
    assert copy._dataset is None
    np.testing.assert_array_equal(copy[np.array([2, 3])], loaded[[2, 3]])


def test_clips_from_the_files_equal_clips_from_memory_in_worker_processes(tiny_store):
    store = RecordingStore.open(tiny_store)
    recordings = {lazy: store.load_partition("train", lazy_frames=lazy)
                  for lazy in (False, True)}
    datasets = {lazy: ClipDataset(recordings[lazy], clip_length=4, stride=3)
                for lazy in recordings}
    assert len(datasets[True]) == len(datasets[False]) > 0
    for item in range(len(datasets[True])):
        torch.testing.assert_close(datasets[True][item]["clip"], datasets[False][item]["clip"],
                                   rtol=0, atol=0)
    fresh = ClipDataset(store.load_partition("train", lazy_frames=True), clip_length=4,
                        stride=3)
    batches = list(DataLoader(fresh, batch_size=4, num_workers=2))
    expected = list(DataLoader(datasets[False], batch_size=4))
    for got, want in zip(batches, expected, strict=True):
        torch.testing.assert_close(got["clip"], want["clip"], rtol=0, atol=0)
    # the workers opened the files; this process never did
    assert all(frames._dataset is None for frames in fresh._frames)


def test_a_damaged_frames_file_is_one_line(tiny_store, tmp_path):
    store = RecordingStore.open(tiny_store)
    stored = store.load(store.names("train")[0], lazy_frames=True).frames
    broken = StoredFrames(tmp_path / "gone.h5", stored.shape, stored.dtype)
    with pytest.raises(AvstanError, match="gone.h5: cannot read its frames"):
        broken[np.array([0])]


@pytest.mark.slow
def test_training_from_the_files_gives_the_model_training_from_memory_gives(tiny_store,
                                                                          tmp_path):
    weights = {}
    for in_memory in (True, False):
        raw = tiny_config_dict(tiny_store, tmp_path / f"run{in_memory}", "cnn3d", max_epochs=1)
        raw["data"]["frames_in_memory"] = in_memory
        result = train_experiment(config_from_dict(raw), progress=False)
        state = torch.load(result.model_path, weights_only=True)["state_dict"]
        weights[in_memory] = state
    assert weights[True].keys() == weights[False].keys()
    for key, value in weights[True].items():
        torch.testing.assert_close(weights[False][key], value, rtol=0, atol=0, msg=key)
