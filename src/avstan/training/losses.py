"""Training losses: MSE (the papers) and 1 - CCC (an option; optimises the AVEC metric)."""

from __future__ import annotations

import torch
from torch import Tensor

from avstan.errors import AvstanError


def concordance_cc_torch(prediction: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """CCC per column of (N, K) tensors with biased variances (eq. 4), differentiable: (K,)."""
    pred_mean, target_mean = prediction.mean(0), target.mean(0)
    pred_var = prediction.var(0, unbiased=False)
    target_var = target.var(0, unbiased=False)
    covariance = ((prediction - pred_mean) * (target - target_mean)).mean(0)
    return 2 * covariance / (pred_var + target_var + (pred_mean - target_mean) ** 2 + eps)


def mse_loss(prediction: Tensor, target: Tensor) -> Tensor:
    return torch.mean((prediction - target) ** 2)


def ccc_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - CCC over the batch, averaged over the targets."""
    return 1.0 - concordance_cc_torch(prediction, target).mean()


LOSSES = {"mse": mse_loss, "ccc": ccc_loss}


def get_loss(name: str):
    if name not in LOSSES:
        raise AvstanError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")
    return LOSSES[name]
