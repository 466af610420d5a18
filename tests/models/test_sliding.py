"""Sliding-window prediction with shared per-frame work against the model on every clip."""

import numpy as np
import pytest
import torch

from avstan.data.clips import ClipDataset
from avstan.data.store import Recording
from avstan.models import create_model
from avstan.models.sliding import iter_window_outputs, shares_frame_work

CROP, CLIP, STEPS = 16, 4, 23


def recording(seed=0) -> Recording:
    rng = np.random.default_rng(seed)
    return Recording("r", rng.integers(0, 256, (STEPS, CROP, CROP, 3), dtype=np.uint8),
                     np.arange(STEPS) / 4, np.ones(STEPS, bool),
                     np.full((STEPS, 2), np.nan, np.float32))


def randomised(name, **options):
    torch.manual_seed(1)
    model = create_model(name, crop_size=CROP, clip_length=CLIP, **options)
    with torch.no_grad():
        for parameter in model.parameters():  # peepholes and attention logits non-zero too
            parameter.add_(torch.randn_like(parameter) * 0.03)
        if getattr(model, "attention_branch", None) is not None:
            model.attention_branch.attention.logit.weight.mul_(300.0)  # far from uniform
    return model.eval()


def naive_outputs(model, rec, ends):
    """The model on each clip, one clip at a time, as ClipDataset cuts them."""
    dataset = ClipDataset([rec], CLIP, stride=1)
    outputs = [model(clip=dataset[int(end)]["clip"][None]) for end in ends]
    return {key: torch.cat([o[key] for o in outputs]) for key in outputs[0]}


@pytest.mark.parametrize("name, options", [
    ("sta3d", {}),
    ("sta3d", {"upsampling": "resize_conv", "attention_from": "current",
               "padding_mode": "reflect", "encoder_channels": (4, 8), "decoder_channels": (8, 4)}),
    ("cnn3d", {}),
    ("cnn2d", {}),
])
@pytest.mark.parametrize("ends", [np.arange(STEPS), np.arange(0, STEPS, 3), np.array([1, 9, 22])])
def test_shared_sliding_equals_the_model_on_every_clip(name, options, ends):
    model, rec = randomised(name, **options), recording()
    with torch.inference_mode():
        expected = naive_outputs(model, rec, ends)
    batches = list(iter_window_outputs(model, rec.frames, ends, CLIP, batch_size=5))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), ends)
    for key, value in expected.items():
        got = torch.cat([b[1][key] for b in batches])
        assert got.shape == value.shape
        if key == "attention":  # as the trunk uses it: S·S·A, 1 where uniform
            got, value = got * CROP**2, value * CROP**2
            assert value.std() > 0.2  # far from uniform, so the comparison means something
        torch.testing.assert_close(got, value, atol=1e-5, rtol=1e-5)


def test_each_frame_is_encoded_once():
    model, rec = randomised("sta3d"), recording()
    assert shares_frame_work(model) and not shares_frame_work(randomised("cnn3d"))
    encoded = []
    model.attention_branch.encoder.register_forward_hook(
        lambda module, args, out: encoded.append(args[0].shape[0] * args[0].shape[1]))
    list(iter_window_outputs(model, rec.frames, np.arange(STEPS), CLIP, batch_size=4))
    assert sum(encoded) == STEPS and len(encoded) == -(-STEPS // 4)
