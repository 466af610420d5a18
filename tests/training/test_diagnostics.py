"""Attention gradient diagnostics against autograd and explicit loops."""

import numpy as np
import pytest
import torch

from avstan.models import create_model
from avstan.training.diagnostics import (
    attention_gradient_report,
    logit_gradient,
    mask_correlation,
)
from avstan.training.losses import mse_loss


def test_logit_gradient_equals_autograd_through_the_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, requires_grad=True)
    weights = torch.randn(2, 3, 5, 6)
    attention = logits.flatten(-2).softmax(-1).view_as(logits)
    attention.retain_grad()
    (attention * weights).sum().square().backward()
    torch.testing.assert_close(logit_gradient(attention.detach(), attention.grad), logits.grad)


def test_mask_correlation_against_numpy_corrcoef():
    rng = np.random.default_rng(0)
    descent = rng.normal(size=(4, 6, 7))
    mask = rng.random((4, 6, 7)) > 0.6
    ours = mask_correlation(torch.from_numpy(descent), torch.from_numpy(mask))
    reference = [np.corrcoef(descent[i].ravel(), mask[i].ravel())[0, 1] for i in range(4)]
    np.testing.assert_allclose(ours, reference, rtol=1e-10)
    constant = mask_correlation(torch.ones(1, 3, 3), torch.from_numpy(mask[:1, :3, :3]))
    assert np.isnan(constant[0])


def test_report_covers_every_part_and_leaves_no_gradients():
    torch.manual_seed(0)
    model = create_model("sta3d", crop_size=16, clip_length=4)
    mask = torch.zeros(2, 4, 16, 16, dtype=torch.bool)
    mask[..., 10:, 4:12] = True
    report = attention_gradient_report(model, torch.rand(2, 3, 4, 16, 16), torch.rand(2, 2),
                                       mask, mse_loss)
    for part in ("attention logits", "encoder", "decoder", "trunk stem", "trunk body", "head"):
        assert report[f"grad_norm/{part}"] > 0
    assert -1 <= report["logit_descent_mask_correlation_mean"] <= 1
    assert all(p.grad is None for p in model.parameters())


def test_the_descent_direction_finds_a_mask_the_loss_depends_on():
    """A model whose output reads only the masked pixels: its descent direction must point
    at the mask (strongly positive correlation)."""

    class ReadsTheMask(torch.nn.Module):
        def __init__(self, mask):
            super().__init__()
            self.mask = mask
            self.logits = torch.nn.Parameter(torch.zeros(1, 4, 16, 16))

        def forward(self, clip):
            attention = self.logits.flatten(-2).softmax(-1).view(1, 4, 16, 16).expand(
                clip.shape[0], -1, -1, -1)
            signal = (attention * self.mask * 256).flatten(1).sum(1, keepdim=True) / 4
            return {"prediction": signal, "attention": attention}

    mask = torch.zeros(2, 4, 16, 16, dtype=torch.bool)
    mask[..., :5, :] = True
    model = ReadsTheMask(mask.float())
    target = torch.full((2, 1), 200.0)  # uniform attention gives 80: more mass on the mask helps
    report = attention_gradient_report(model, torch.rand(2, 3, 4, 16, 16), target, mask,
                                       mse_loss)
    assert report["logit_descent_mask_correlation_mean"] == pytest.approx(1.0, abs=1e-6)
