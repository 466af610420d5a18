"""The spatial softmax attention against its literal definition (eq. 2)."""

import pytest
import torch
import torch.nn.functional as F

from avstan.models.attention import SpatialSoftmaxAttention


def literal_attention(layer, states, attention_from):
    """A 1×1 convolution of H_{t-1} (zeros before the first step) or H_t, then a softmax over
    each frame's locations, one step at a time."""
    maps = []
    for step in range(states.shape[1]):
        if attention_from == "previous":
            state = states[:, step - 1] if step else torch.zeros_like(states[:, 0])
        else:
            state = states[:, step]
        logits = F.conv2d(state, layer.logit.weight, layer.logit.bias)[:, 0]
        maps.append((logits / layer.temperature).flatten(1).softmax(-1).view_as(logits))
    return torch.stack(maps, dim=1)


@pytest.mark.parametrize("attention_from", ["previous", "current"])
def test_attention_equals_the_literal_definition(attention_from):
    torch.manual_seed(0)
    layer = SpatialSoftmaxAttention(5, attention_from, temperature=0.7)
    with torch.no_grad():
        layer.logit.weight.mul_(10)
        layer.logit.bias.fill_(0.3)
    states = torch.randn(3, 4, 5, 6, 7)
    maps = layer(states)
    assert maps.shape == (3, 4, 6, 7)
    torch.testing.assert_close(maps, literal_attention(layer, states, attention_from),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(3, 4))
    assert maps.std() > 1e-2  # far from uniform


def test_nearest_upsampling_equals_torch_upsample():
    from avstan.models.attention import NearestUpsample2x

    x = torch.randn(3, 4, 5, 7)
    assert torch.equal(NearestUpsample2x()(x), F.interpolate(x, scale_factor=2, mode="nearest"))
