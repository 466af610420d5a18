"""The torch device a user names (``--device``), checked before any work starts.

At the bottom of the package (imports torch and :mod:`avstan.errors` only), so the CLI's
stages, the model file and the demo check a device the same way.
"""

from __future__ import annotations

import contextlib

import torch

from avstan.errors import AvstanError

# Lightning's precision names that avstan's inference also runs (train takes any of
# Lightning's through training.precision)
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def checked_device(name: str | torch.device) -> torch.device:
    """``name`` as a ``torch.device``; a malformed name, or a device this machine does not
    have (CUDA without a GPU, ``cuda:3`` on a one-GPU machine), is one AvstanError."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise AvstanError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AvstanError(f"--device {name}: CUDA is not available on this machine; use "
                              "--device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AvstanError(f"--device {name}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s); use cuda:0 to "
                              f"cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise AvstanError(f"--device {name}: MPS is not available on this machine; use "
                          "--device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise AvstanError(f"--device {name}: avstan runs on cpu, cuda or mps")
    return device


def autocast_for(device: str | torch.device, precision: str = "32-true"
                 ) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` for inference: none for
    ``32-true``; bfloat16 (CPU or CUDA) for ``bf16-mixed``; float16 (CUDA only) for
    ``16-mixed``, as Lightning's mixed precision trains."""
    if precision not in PRECISIONS:
        raise AvstanError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    device = checked_device(device)
    if precision == "32-true":
        return contextlib.nullcontext()
    if precision == "16-mixed" and device.type != "cuda":
        raise AvstanError("--precision 16-mixed runs on CUDA only; use bf16-mixed or 32-true "
                          "on this device")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
