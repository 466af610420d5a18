"""Losses against the independent numpy metrics."""

import numpy as np
import torch

from avstan.metrics import concordance_cc
from avstan.training.losses import ccc_loss, concordance_cc_torch, mse_loss


def test_torch_ccc_equals_the_numpy_metric():
    rng = np.random.default_rng(0)
    for _ in range(5):
        gold = rng.normal(size=(200, 2))
        pred = 0.6 * gold + rng.normal(0.3, 0.5, size=(200, 2))
        ours = concordance_cc_torch(torch.from_numpy(pred), torch.from_numpy(gold)).numpy()
        reference = [concordance_cc(pred[:, k], gold[:, k]) for k in range(2)]
        np.testing.assert_allclose(ours, reference, rtol=1e-6)


def test_ccc_loss_is_zero_for_perfect_and_its_gradient_improves_ccc():
    gold = torch.randn(64, 2)
    assert ccc_loss(gold.clone(), gold).item() < 1e-6
    pred = (0.2 * gold + 0.5).requires_grad_()
    loss = ccc_loss(pred, gold)
    loss.backward()
    stepped = pred - 0.5 * pred.grad
    assert ccc_loss(stepped, gold) < loss


def test_mse():
    assert mse_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]])).item() == 5.0
