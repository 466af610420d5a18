"""frame2d: the luminance against PIL's, the last frame only, grey input, size and options."""

import numpy as np
import pytest
import torch
from PIL import Image

from avstan.errors import AvstanError
from avstan.models import create_model
from avstan.models.frame import to_grey

TINY = {"crop_size": 16, "channels": [4, 8], "fc_hidden": 8}


def tiny_frame_model(**options):
    torch.manual_seed(0)
    return create_model("frame2d", **{**TINY, **options}).eval()


def test_to_grey_matches_pil_luma():
    # PIL's "L" conversion is ITU-R 601-2 luma (L = R 299/1000 + G 587/1000 + B 114/1000),
    # computed in fixed point and rounded to whole grey levels.
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                  [255, 255, 0], [0, 255, 255], [128, 64, 32]]
    reference = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    frames = torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255.0  # (1, 3, H, W)
    grey = to_grey(frames)
    assert grey.shape == (1, 1, 37, 53)
    levels = grey[0, 0].numpy() * 255.0
    assert np.abs(levels - reference).max() <= 1.0


def test_frame2d_reads_only_the_last_frame():
    model = tiny_frame_model()
    clip = torch.rand(3, 3, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(clip)["prediction"]
        earlier_changed = clip.clone()
        earlier_changed[:, :, :-1] = torch.rand(3, 3, 4, 16, 16,
                                                generator=torch.Generator().manual_seed(2))
        assert torch.equal(model(earlier_changed)["prediction"], before)
        last_changed = clip.clone()
        last_changed[:, :, -1] = torch.rand(3, 3, 16, 16,
                                            generator=torch.Generator().manual_seed(3))
        after = model(last_changed)["prediction"]
    assert before.shape == (3, 2)
    # every clip's prediction moves when its last frame changes
    assert ((after - before).abs().amax(dim=1) > 1e-4).all()


def luminance_clip(clip: torch.Tensor) -> torch.Tensor:
    """The clip (B, 3, T, S, S) as its BT.601 luminance, written out per channel (not
    through to_grey), replicated to 3 channels."""
    luma = 0.299 * clip[:, 0] + 0.587 * clip[:, 1] + 0.114 * clip[:, 2]
    return luma[:, None].expand(-1, 3, -1, -1, -1).contiguous()


def test_a_grey_model_reads_colour_as_its_luminance():
    clip = torch.rand(4, 3, 2, 16, 16, generator=torch.Generator().manual_seed(4))
    grey_clip = luminance_clip(clip)
    grey_model = tiny_frame_model(grey=True)
    colour_model = tiny_frame_model(grey=False)
    with torch.no_grad():
        torch.testing.assert_close(grey_model(clip)["prediction"],
                                   grey_model(grey_clip)["prediction"], atol=1e-5, rtol=1e-5)
        # the control: a colour model tells the two apart
        difference = colour_model(clip)["prediction"] - colour_model(grey_clip)["prediction"]
    assert difference.abs().max() > 1e-3
    assert grey_model.body[0].in_channels == 1 and colour_model.body[0].in_channels == 3


def test_default_frame2d_is_small_and_has_an_expression_head():
    model = create_model("frame2d", expression_classes=8).eval()
    weights_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert weights_bytes < 10 * 1024 ** 2
    clip = torch.rand(2, 3, 1, 48, 48)
    with torch.no_grad():
        out = model(clip)
    assert out["prediction"].shape == (2, 2)
    assert out["expression_logits"].shape == (2, 8)
    assert "expression_logits" not in tiny_frame_model()(torch.rand(1, 3, 1, 16, 16))


def test_crop_size_must_survive_the_pooling_stages():
    with pytest.raises(AvstanError, match="crop_size 44 must be divisible by 8"):
        create_model("frame2d", crop_size=44)
    # two stages pool once: 18 is fine there
    assert create_model("frame2d", crop_size=18, channels=[4, 8]).crop_size == 18
