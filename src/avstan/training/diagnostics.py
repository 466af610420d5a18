"""Why does (or doesn't) the attention learn? Gradient balance and gradient direction.

Two measurements on a batch of labelled clips, without changing the model:

* **Gradient balance** — the gradient norm of each part of the model (attention logit
  layer, encoder, decoder, recognition trunk, head). The attention branch is trained only
  through the product A ⊙ X', so if its gradient is orders of magnitude below the trunk's,
  plain Adam at one learning rate barely moves it.
* **Gradient direction** — does the loss *want* attention on the salient regions? For each
  frame, the descent direction on the attention logits, −∂L/∂z (z = the pre-softmax
  logits), is correlated with the ground-truth salient mask. Clearly positive: a gradient
  step moves attention towards the mask; near zero: the loss is indifferent to where the
  model looks, and no optimiser setting will make the attention find the face.

The softmax's Jacobian gives ∂L/∂z from ∂L/∂A: ∂L/∂z = A ⊙ (∂L/∂A − Σ_j A_j ∂L/∂A_j), so only
the attention maps need their gradient kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

PARTS = {
    "attention logits": "attention_branch.attention.",
    "static map": "attention_branch.logits",  # static3d's one learnt map
    "encoder": "attention_branch.encoder.",
    "decoder": "attention_branch.decoder.",
    "trunk stem": "trunk.stem.",
    "trunk body": "trunk.body.",
    "head": "trunk.head.",
}


def logit_gradient(attention: Tensor, attention_grad: Tensor) -> Tensor:
    """∂L/∂z from the attention maps A (…, H, W) and ∂L/∂A, through the spatial softmax."""
    inner = (attention * attention_grad).sum(dim=(-2, -1), keepdim=True)
    return attention * (attention_grad - inner)


def mask_correlation(descent: Tensor, mask: Tensor) -> np.ndarray:
    """Per-frame Pearson correlation of a descent direction (…, H, W) with a mask (…, H, W);
    NaN for frames whose mask or direction is constant."""
    d = descent.flatten(-2).double()
    m = mask.flatten(-2).double()
    d = d - d.mean(-1, keepdim=True)
    m = m - m.mean(-1, keepdim=True)
    denominator = (d.square().sum(-1) * m.square().sum(-1)).sqrt()
    correlation = (d * m).sum(-1) / denominator
    correlation[denominator == 0] = float("nan")
    return correlation.numpy().ravel()


def attention_gradient_report(model: nn.Module, clip: Tensor, target: Tensor, mask: Tensor,
                              loss_fn: Callable[[Tensor, Tensor], Tensor]) -> dict[str, float]:
    """Gradient norms per part and the logit-descent / mask correlation on one batch.

    clip (B, 3, T, S, S), target (B, K), mask (B, T, S, S) bool. The model must return
    ``attention``. Gradients are computed in train mode (dropout on, as in training) and
    the model's parameter gradients are left zeroed afterwards.
    """
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(clip)
    attention = out["attention"]
    attention.retain_grad()
    loss_fn(out["prediction"], target).backward()
    report = {}
    for part, prefix in PARTS.items():
        grads = [p.grad for n, p in model.named_parameters()
                 if n.startswith(prefix) and p.grad is not None]
        if grads:
            report[f"grad_norm/{part}"] = float(torch.sqrt(sum(g.square().sum() for g in grads)))
    descent = -logit_gradient(attention.detach(), attention.grad)
    correlation = mask_correlation(descent, mask)
    report["logit_descent_mask_correlation_mean"] = float(np.nanmean(correlation))
    report["logit_descent_mask_correlation_sd"] = float(np.nanstd(correlation))
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return report
