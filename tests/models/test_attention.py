"""The spatial softmax attention against its literal definition (eq. 2)."""

import pytest
import torch
import torch.nn.functional as F

from avstan.models.attention import SpatialSoftmaxAttention


def literal_attention(layer, states, attention_from, bias=None):
    """A 1×1 convolution of H_{t-1} (zeros before the first step) or H_t, then a softmax over
    each frame's locations, one step at a time; ``bias`` adds a constant to every logit."""
    maps = []
    for step in range(states.shape[1]):
        if attention_from == "previous":
            state = states[:, step - 1] if step else torch.zeros_like(states[:, 0])
        else:
            state = states[:, step]
        logits = F.conv2d(state, layer.logit.weight, bias)[:, 0]
        maps.append((logits / layer.temperature).flatten(1).softmax(-1).view_as(logits))
    return torch.stack(maps, dim=1)


@pytest.mark.parametrize("attention_from", ["previous", "current"])
def test_attention_equals_the_literal_definition(attention_from):
    torch.manual_seed(0)
    layer = SpatialSoftmaxAttention(5, attention_from, temperature=0.7)
    with torch.no_grad():
        layer.logit.weight.mul_(10)
    states = torch.randn(3, 4, 5, 6, 7)
    maps = layer(states)
    assert maps.shape == (3, 4, 6, 7)
    torch.testing.assert_close(maps, literal_attention(layer, states, attention_from),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(3, 4))
    assert maps.std() > 1e-2  # far from uniform


@pytest.mark.parametrize("attention_from", ["previous", "current"])
def test_the_logit_layer_has_no_bias_because_the_softmax_ignores_one(attention_from):
    """A bias adds the same constant to every logit of a frame: the literal definition with
    one gives the same maps, so such a bias could never learn."""
    torch.manual_seed(0)
    layer = SpatialSoftmaxAttention(5, attention_from)
    assert layer.logit.bias is None
    states = torch.randn(2, 3, 5, 6, 7)
    torch.testing.assert_close(
        literal_attention(layer, states, attention_from, bias=torch.tensor([2.5])),
        layer(states), atol=1e-6, rtol=1e-5)


def test_a_state_dict_written_with_the_old_logit_bias_still_loads():
    torch.manual_seed(0)
    layer = SpatialSoftmaxAttention(5, "previous")
    states = torch.randn(2, 3, 5, 6, 7)
    old = {"logit.weight": layer.logit.weight.detach().clone() * 3,
           "logit.bias": torch.tensor([0.7])}
    loaded = SpatialSoftmaxAttention(5, "previous")
    loaded.load_state_dict(old)  # strict: the stored bias is dropped, not reported as unexpected
    torch.testing.assert_close(loaded.logit.weight, old["logit.weight"])
    reference = literal_attention(loaded, states, "previous", bias=old["logit.bias"])
    torch.testing.assert_close(loaded(states), reference, atol=1e-6, rtol=1e-5)


def test_nearest_upsampling_equals_torch_upsample():
    from avstan.models.attention import NearestUpsample2x

    x = torch.randn(3, 4, 5, 7)
    assert torch.equal(NearestUpsample2x()(x), F.interpolate(x, scale_factor=2, mode="nearest"))
