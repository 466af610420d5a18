"""Weight initialisation as in the papers: Xavier-uniform (Glorot & Bengio 2010)."""

from torch import nn


def xavier_uniform_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every conv and linear layer of ``module``.

    Recurrent-specific parameters (ConvLSTM peepholes, forget-gate bias) are set by their
    own modules after this runs; call this first.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
