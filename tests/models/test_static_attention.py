"""static3d: one learnt map for every clip and frame, starting as the plain 3D-CNN."""

import numpy as np
import torch

from avstan.models import create_model
from avstan.models.attention import attention_entropy


def test_static3d_starts_as_cnn3d_and_puts_one_map_on_every_frame():
    torch.manual_seed(0)
    static = create_model("static3d", crop_size=16, clip_length=4).eval()
    plain = create_model("cnn3d", crop_size=16, clip_length=4).eval()
    plain.trunk.load_state_dict(static.trunk.state_dict())
    clip = torch.rand(2, 3, 4, 16, 16)
    with torch.no_grad():
        out = static(clip=clip)
        torch.testing.assert_close(out["prediction"], plain(clip=clip)["prediction"])
        assert torch.allclose(out["attention"], torch.full((2, 4, 16, 16), 1 / 256))

        static.attention_branch.logits.copy_(torch.randn(16, 16))
        maps = static(clip=clip)["attention"]
    expected = np.exp(static.attention_branch.logits.detach().numpy())
    expected /= expected.sum()
    for clip_maps in maps:
        for frame_map in clip_maps:  # the same map, whatever the clip and frame
            np.testing.assert_allclose(frame_map.numpy(), expected, rtol=1e-5)


def test_attention_entropy_is_one_for_uniform_and_zero_for_a_point_map():
    uniform = torch.full((2, 3, 8, 8), 1 / 64)
    point = torch.zeros(2, 3, 8, 8)
    point[..., 4, 5] = 1
    assert abs(attention_entropy(uniform).item() - 1.0) < 1e-6
    assert abs(attention_entropy(point).item()) < 1e-6
    half = torch.zeros(1, 1, 8, 8)
    half[..., :2, :] = 1 / 16  # 16 equal locations: log 16 / log 64
    assert abs(attention_entropy(half).item() - np.log(16) / np.log(64)) < 1e-6
