"""cnn3d with fixed attention: the bounds of the attention study (mask and uniform)."""

import pytest
import torch

from avstan.errors import AvstanError
from avstan.metrics import attention_in_mask_ratio
from avstan.models import create_model
from avstan.models.video import mask_attention

TINY = {"crop_size": 16, "clip_length": 4, "trunk_channels": [4, 8, 8, 8], "fc_hidden": 8}


def tiny(**options):
    torch.manual_seed(0)
    return create_model("cnn3d", **TINY, **options).eval()


def random_mask(batch=2, generator=None):
    mask = torch.zeros(batch, 4, 16, 16, dtype=torch.bool)
    mask[..., 10:14, 3:12] = True  # a "mouth" box
    mask[:, 1, :, :] = False  # one frame without a mask
    mask[0, 2, 0:3, 0:3] = True  # frames differ
    return mask


def test_mask_attention_spreads_each_frame_evenly_over_its_mask():
    mask = random_mask()
    attention = mask_attention(mask)
    torch.testing.assert_close(attention.sum(dim=(-2, -1)), torch.ones(2, 4))
    for b in range(2):
        for t in range(4):
            inside = attention[b, t][mask[b, t]]
            if mask[b, t].any():
                assert torch.allclose(inside, torch.full_like(inside, 1 / mask[b, t].sum()))
                assert attention[b, t][~mask[b, t]].abs().max() == 0
            else:  # an empty mask: uniform
                assert torch.allclose(attention[b, t], torch.full((16, 16), 1 / 256))


def test_the_mask_bound_reads_the_mask_and_attends_only_inside_it():
    model = tiny(fixed_attention="mask")
    assert model.input_names == ("clip", "mask")
    assert model.attention_branch is None
    clip, mask = torch.rand(2, 3, 4, 16, 16), random_mask()
    out = model(clip=clip, mask=mask)
    torch.testing.assert_close(out["attention"], mask_attention(mask))
    frames = mask.flatten(-2).any(-1)  # frames with a mask: all mass inside it
    ratio = attention_in_mask_ratio(out["attention"].numpy(), mask.numpy(), reduction="none")
    area = mask.float().mean(dim=(-2, -1)).numpy()
    torch.testing.assert_close(torch.from_numpy(ratio[frames.numpy()]),
                               torch.from_numpy(1 / area[frames.numpy()]).double())
    # The prediction depends on what is inside the mask only (the stem's 3x3x3 receptive
    # field aside): changing pixels far outside the box leaves it unchanged.
    outside = clip.clone()
    outside[..., 0:6, 13:16] = torch.rand_like(outside[..., 0:6, 13:16])
    one_frame_mask = mask.clone()
    one_frame_mask[:, 1] = one_frame_mask[:, 0]  # no uniform frame, no stray box
    one_frame_mask[0, 2] = one_frame_mask[0, 0]
    torch.testing.assert_close(model(clip=clip, mask=one_frame_mask)["prediction"],
                               model(clip=outside, mask=one_frame_mask)["prediction"])
    with pytest.raises(ValueError, match="mask"):
        model(clip=clip)


def test_uniform_fixed_attention_is_the_plain_3d_cnn():
    plain, uniform = tiny(), tiny(fixed_attention="uniform")
    assert uniform.input_names == ("clip",)
    clip = torch.rand(2, 3, 4, 16, 16)
    out = uniform(clip=clip)
    torch.testing.assert_close(out["prediction"], plain(clip=clip)["prediction"])
    torch.testing.assert_close(out["attention"], torch.full((2, 4, 16, 16), 1 / 256))
    assert "attention" not in plain(clip=clip)


def test_fixed_attention_values_are_checked():
    with pytest.raises(AvstanError, match="model 'cnn3d': fixed_attention must be"):
        tiny(fixed_attention="face")
